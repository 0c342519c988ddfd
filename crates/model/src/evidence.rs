//! Bytes a scanned service sent, kept as the evidence of a claim about it.
//!
//! A service may send anything: evidence is written as text that escapes every byte that
//! is not printable ASCII, and only its first [`Evidence::SHOWN`] bytes are written.

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Bytes a service sent. Serialised as text: printable ASCII kept, `\\`, `\r`, `\n` and `\t`
/// escaped, every other byte as `\xNN`; at most [`Evidence::SHOWN`] bytes, then `...`.
/// Reading the text back gives the bytes it shows (a report read from the store keeps the
/// shown part, the `...` included); an array of byte values is read too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence(Vec<u8>);

impl Evidence {
    /// Bytes written out; the rest is summarised by `...`.
    pub const SHOWN: usize = 512;

    /// The bytes as received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// No byte was received.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of bytes kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The text form (see the type's documentation).
    pub fn escaped(&self) -> String {
        let mut out = String::new();
        for &b in self.0.iter().take(Self::SHOWN) {
            match b {
                b'\\' => out.push_str("\\\\"),
                b'\r' => out.push_str("\\r"),
                b'\n' => out.push_str("\\n"),
                b'\t' => out.push_str("\\t"),
                0x20..=0x7e => out.push(char::from(b)),
                _ => out.push_str(&format!("\\x{b:02x}")),
            }
        }
        if self.0.len() > Self::SHOWN {
            out.push_str("...");
        }
        out
    }

    /// The bytes a text form stands for (the inverse of [`Evidence::escaped`] up to the cap).
    pub fn from_escaped(text: &str) -> Result<Self, String> {
        let mut out = Vec::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            match chars.next() {
                Some('\\') => out.push(b'\\'),
                Some('r') => out.push(b'\r'),
                Some('n') => out.push(b'\n'),
                Some('t') => out.push(b'\t'),
                Some('x') => {
                    let hex: String = chars.by_ref().take(2).collect();
                    let byte = u8::from_str_radix(&hex, 16)
                        .map_err(|_| format!("bad escape \"\\x{hex}\" in evidence"))?;
                    out.push(byte);
                }
                other => {
                    return Err(format!(
                        "bad escape \"\\{}\" in evidence",
                        other.map(String::from).unwrap_or_default()
                    ));
                }
            }
        }
        Ok(Self(out))
    }
}

impl From<Vec<u8>> for Evidence {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for Evidence {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl Serialize for Evidence {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&self.escaped())
    }
}

impl<'de> Deserialize<'de> for Evidence {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Evidence;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("evidence text or an array of byte values")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Evidence, E> {
                Evidence::from_escaped(text).map_err(E::custom)
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Evidence, E> {
                Ok(Evidence(bytes.to_vec()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Evidence, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Evidence(out))
            }
        }
        de.deserialize_any(Text)
    }
}

/// A JSON Schema of a plain string for a type that serialises as text.
macro_rules! schema_as_string {
    ($name:ty) => {
        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                "String".into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                String::json_schema(generator)
            }
        }
    };
}
pub(crate) use schema_as_string;

schema_as_string!(Evidence);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_bytes_are_escaped_and_capped() {
        let e = Evidence::from(b"OK\r\n\x00\xff\\\t~".to_vec());
        assert_eq!(e.escaped(), "OK\\r\\n\\x00\\xff\\\\\\t~");
        let long = Evidence::from(vec![b'a'; 600]);
        let text = long.escaped();
        assert_eq!(text.len(), 515);
        assert!(text.ends_with("a..."));
    }

    #[test]
    fn text_reads_back_to_the_bytes_it_shows() {
        for bytes in [
            b"SSH-2.0-x\r\n".to_vec(),
            (0u8..=255).collect::<Vec<u8>>(),
            vec![b'.'; 3],
        ] {
            let e = Evidence::from(bytes.clone());
            let json = serde_json::to_string(&e).expect("serialises");
            let back: Evidence = serde_json::from_str(&json).expect("reads");
            assert_eq!(back.escaped(), e.escaped());
            if bytes.len() <= Evidence::SHOWN {
                assert_eq!(back, e);
            }
        }
        // A long one keeps its shown part and still writes the same text.
        let long = Evidence::from(vec![0x01; 2000]);
        let back: Evidence =
            serde_json::from_str(&serde_json::to_string(&long).expect("serialises"))
                .expect("reads");
        assert_eq!(back.escaped(), long.escaped());
        // Older stored reports hold an array of byte values.
        let old: Evidence = serde_json::from_str("[83,83,72]").expect("reads");
        assert_eq!(old.as_bytes(), b"SSH");
        let err = serde_json::from_str::<Evidence>("\"\\\\xzz\"").expect_err("bad escape");
        assert!(err.to_string().contains("bad escape"), "{err}");
    }
}
