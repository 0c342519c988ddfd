//! Serde helpers for fields typed with the model's enums that are written by their names
//! (`open|filtered`, `syn-ack`) — the names of the v1 documents and of the history — rather
//! than by their serde identifiers.

use crate::{PortState, Reason};
use serde::{Deserialize, Deserializer, Serializer};

/// `text` as the value it names, or an error saying which name was not known.
fn by_name<T, E: serde::de::Error>(
    text: &str,
    what: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, E> {
    parse(text).ok_or_else(|| E::custom(format!("unknown {what} \"{text}\"")))
}

fn named<'de, D: Deserializer<'de>, T>(
    de: D,
    what: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, D::Error> {
    by_name(&String::deserialize(de)?, what, parse)
}

/// A [`PortState`] by its name (`#[serde(with = "portgate_model::wire::state")]`).
pub mod state {
    use super::*;

    /// Writes the name.
    pub fn serialize<S: Serializer>(state: &PortState, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(state.as_str())
    }

    /// Reads the name.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<PortState, D::Error> {
        named(de, "port state", PortState::from_name)
    }
}

/// An optional [`PortState`] by its name.
pub mod state_opt {
    use super::*;

    /// Writes the name, or null.
    pub fn serialize<S: Serializer>(state: &Option<PortState>, ser: S) -> Result<S::Ok, S::Error> {
        match state {
            Some(state) => ser.serialize_str(state.as_str()),
            None => ser.serialize_none(),
        }
    }

    /// Reads the name, or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<PortState>, D::Error> {
        Option::<String>::deserialize(de)?
            .map(|text| by_name(&text, "port state", PortState::from_name))
            .transpose()
    }
}

/// A [`Reason`] by its name.
pub mod reason {
    use super::*;

    /// Writes the name.
    pub fn serialize<S: Serializer>(reason: &Reason, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(reason.as_str())
    }

    /// Reads the name.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Reason, D::Error> {
        named(de, "reason", Reason::from_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Row {
        #[serde(with = "state")]
        state: PortState,
        #[serde(with = "state_opt")]
        unlisted: Option<PortState>,
        #[serde(with = "reason")]
        reason: Reason,
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for state in PortState::ALL {
            for reason in Reason::ALL {
                let row = Row {
                    state,
                    unlisted: Some(state),
                    reason,
                };
                let text = serde_json::to_string(&row).expect("serialises");
                assert!(
                    text.contains(&format!("\"state\":\"{}\"", state.as_str())),
                    "{text}"
                );
                assert_eq!(serde_json::from_str::<Row>(&text).expect("reads"), row);
            }
        }
        let none = r#"{"state":"open|filtered","unlisted":null,"reason":"syn-ack"}"#;
        let row: Row = serde_json::from_str(none).expect("reads");
        assert_eq!((row.state, row.unlisted), (PortState::OpenFiltered, None));
        let err =
            serde_json::from_str::<Row>(r#"{"state":"ajar","unlisted":null,"reason":"reset"}"#)
                .expect_err("unknown state");
        assert!(
            err.to_string().contains("unknown port state \"ajar\""),
            "{err}"
        );
    }
}
