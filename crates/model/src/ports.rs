//! Port specifications (`22,80,8000-8100`, `-`, `all`, `top100`, `T:`/`U:`) and the
//! named port sets, which are data in `data/port-sets.toml`.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// A transport protocol.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// `tcp` → TCP, `udp` → UDP.
    pub fn from_name(name: &str) -> Option<Protocol> {
        [Protocol::Tcp, Protocol::Udp]
            .into_iter()
            .find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which ports to scan, per protocol; each list sorted and without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortSpec {
    tcp: Vec<u16>,
    udp: Vec<u16>,
}

/// Why a port specification was rejected; every variant names the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortSpecError {
    /// Nothing was given.
    #[error("the port specification is empty")]
    Empty,
    /// Two commas in a row, or a trailing comma.
    #[error("empty item at position {position} in port specification \"{spec}\"")]
    EmptyItem {
        /// The whole specification.
        spec: String,
        /// 1-based position of the empty item.
        position: usize,
    },
    /// A number outside 1–65535.
    #[error("port {value} in \"{token}\" is out of range (ports are 1-65535)")]
    OutOfRange {
        /// The offending item.
        token: String,
        /// The number as written.
        value: String,
    },
    /// A range whose start is past its end.
    #[error("range \"{token}\" is reversed: start {start} is greater than end {end}")]
    ReversedRange {
        /// The offending item.
        token: String,
        /// Range start.
        start: u16,
        /// Range end.
        end: u16,
    },
    /// Neither a number, a range nor a known set.
    #[error("\"{token}\" is not a port, a range (N-M) or a named set (top100, top1000, all, -)")]
    NotAPort {
        /// The offending item.
        token: String,
    },
}

impl PortSpec {
    /// A specification of the given TCP ports.
    pub fn tcp(ports: impl IntoIterator<Item = u16>) -> Self {
        let set: BTreeSet<u16> = ports.into_iter().filter(|p| *p != 0).collect();
        PortSpec {
            tcp: set.into_iter().collect(),
            udp: Vec::new(),
        }
    }

    /// TCP ports, ascending.
    pub fn tcp_ports(&self) -> &[u16] {
        &self.tcp
    }

    /// UDP ports, ascending.
    pub fn udp_ports(&self) -> &[u16] {
        &self.udp
    }

    /// Ports of one protocol, ascending.
    pub fn ports(&self, protocol: Protocol) -> &[u16] {
        match protocol {
            Protocol::Tcp => &self.tcp,
            Protocol::Udp => &self.udp,
        }
    }

    /// Number of (protocol, port) pairs.
    pub fn len(&self) -> usize {
        self.tcp.len() + self.udp.len()
    }

    /// True when no port is selected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The specification in its own syntax, ranges joined: `T:22,80-82,U:53`. Parses back to
/// the same ports.
impl std::fmt::Display for PortSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (prefix, ports) in [("T:", &self.tcp), ("U:", &self.udp)] {
            let mut i = 0;
            let mut head = true;
            while let Some(&start) = ports.get(i) {
                let mut end = start;
                while ports
                    .get(i + 1)
                    .is_some_and(|&next| Some(next) == end.checked_add(1))
                {
                    i += 1;
                    end = ports[i];
                }
                if !first {
                    f.write_str(",")?;
                }
                if head {
                    f.write_str(prefix)?;
                    head = false;
                }
                if start == end {
                    write!(f, "{start}")?;
                } else {
                    write!(f, "{start}-{end}")?;
                }
                first = false;
                i += 1;
            }
        }
        Ok(())
    }
}

impl FromStr for PortSpec {
    type Err = PortSpecError;

    /// Parses `22,80,443`, `8000-8100`, `1024-` (to 65535), `-1024` (from 1), `-` or `all`
    /// (every port), `top100`, `top1000`, and `T:`/`U:` prefixes that set the protocol of
    /// the item they start and of the items after it (`T:22,80,U:53,161`).
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let trimmed = spec.trim();
        if trimmed.is_empty() {
            return Err(PortSpecError::Empty);
        }
        let mut tcp = BTreeSet::new();
        let mut udp = BTreeSet::new();
        let mut protocol = Protocol::Tcp;
        for (index, raw) in trimmed.split(',').enumerate() {
            let mut item = raw.trim();
            if let Some(rest) = strip_prefix_ci(item, "t:") {
                protocol = Protocol::Tcp;
                item = rest.trim();
            } else if let Some(rest) = strip_prefix_ci(item, "u:") {
                protocol = Protocol::Udp;
                item = rest.trim();
            }
            if item.is_empty() {
                return Err(PortSpecError::EmptyItem {
                    spec: trimmed.to_string(),
                    position: index + 1,
                });
            }
            let target = match protocol {
                Protocol::Tcp => &mut tcp,
                Protocol::Udp => &mut udp,
            };
            parse_item(item, protocol, target)?;
        }
        Ok(PortSpec {
            tcp: tcp.into_iter().collect(),
            udp: udp.into_iter().collect(),
        })
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // `get`: a multi-byte character where the prefix would end is simply no match.
    match (s.get(..prefix.len()), s.get(prefix.len()..)) {
        (Some(head), Some(rest)) if head.eq_ignore_ascii_case(prefix) => Some(rest),
        _ => None,
    }
}

fn parse_item(
    item: &str,
    protocol: Protocol,
    out: &mut BTreeSet<u16>,
) -> Result<(), PortSpecError> {
    let lower = item.to_ascii_lowercase();
    match lower.as_str() {
        "-" | "all" => {
            out.extend(1..=u16::MAX);
            return Ok(());
        }
        "top100" => {
            out.extend(port_sets().top100(protocol).iter().copied());
            return Ok(());
        }
        "top1000" => {
            out.extend(port_sets().top1000(protocol).iter().copied());
            return Ok(());
        }
        _ => {}
    }
    if let Some((start, end)) = item.split_once('-') {
        let start = if start.trim().is_empty() {
            1
        } else {
            parse_port(start.trim(), item)?
        };
        let end = if end.trim().is_empty() {
            u16::MAX
        } else {
            parse_port(end.trim(), item)?
        };
        if start > end {
            return Err(PortSpecError::ReversedRange {
                token: item.to_string(),
                start,
                end,
            });
        }
        out.extend(start..=end);
    } else {
        out.insert(parse_port(item, item)?);
    }
    Ok(())
}

fn parse_port(number: &str, token: &str) -> Result<u16, PortSpecError> {
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortSpecError::NotAPort {
            token: token.to_string(),
        });
    }
    match number.parse::<u32>() {
        Ok(value @ 1..=65535) => Ok(value as u16),
        _ => Err(PortSpecError::OutOfRange {
            token: token.to_string(),
            value: number.to_string(),
        }),
    }
}

/// Where an entry of the port-set data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortSetSource {
    /// The risk table of the design.
    Risk,
    /// An assignment in IANA's service name and port number registry.
    Iana,
    /// A widely used default or alternate port of common software.
    Alternate,
}

/// One line of `data/port-sets.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSetEntry {
    /// Port number.
    pub port: u16,
    /// Short service name.
    pub name: String,
    /// 100 (in `top100`) or 1000 (in `top1000` only).
    pub tier: u16,
    /// Where the entry comes from.
    pub source: PortSetSource,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortSetFile {
    tcp: Vec<PortSetEntry>,
    udp: Vec<PortSetEntry>,
}

/// The named port sets and service names, built from `data/port-sets.toml`.
#[derive(Debug)]
pub struct PortSet {
    top100_tcp: Vec<u16>,
    top1000_tcp: Vec<u16>,
    top100_udp: Vec<u16>,
    top1000_udp: Vec<u16>,
    names: HashMap<(Protocol, u16), String>,
}

/// The size of `top1000`.
const TOP1000_SIZE: usize = 1000;

impl PortSet {
    fn from_toml(text: &str) -> Result<PortSet, String> {
        let file: PortSetFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut names = HashMap::new();
        for (protocol, entries) in [(Protocol::Tcp, &file.tcp), (Protocol::Udp, &file.udp)] {
            for entry in entries {
                if entry.port == 0 || !(entry.tier == 100 || entry.tier == 1000) {
                    return Err(format!("bad {protocol} entry for port {}", entry.port));
                }
                if names
                    .insert((protocol, entry.port), entry.name.clone())
                    .is_some()
                {
                    return Err(format!("{protocol} port {} is listed twice", entry.port));
                }
            }
        }
        let tier = |entries: &[PortSetEntry], max: u16| -> Vec<u16> {
            let set: BTreeSet<u16> = entries
                .iter()
                .filter(|e| e.tier <= max)
                .map(|e| e.port)
                .collect();
            set.into_iter().collect()
        };
        // top1000 (TCP): the curated entries, then the IANA system ports 1-1023 in
        // ascending order until there are exactly 1000 (see the data file's header).
        let mut top1000: BTreeSet<u16> = tier(&file.tcp, 1000).into_iter().collect();
        for port in 1..1024u16 {
            if top1000.len() >= TOP1000_SIZE {
                break;
            }
            top1000.insert(port);
        }
        Ok(PortSet {
            top100_tcp: tier(&file.tcp, 100),
            top1000_tcp: top1000.into_iter().collect(),
            top100_udp: tier(&file.udp, 100),
            top1000_udp: tier(&file.udp, 1000),
            names,
        })
    }

    /// The `top100` set of a protocol, ascending.
    pub fn top100(&self, protocol: Protocol) -> &[u16] {
        match protocol {
            Protocol::Tcp => &self.top100_tcp,
            Protocol::Udp => &self.top100_udp,
        }
    }

    /// The `top1000` set of a protocol, ascending.
    pub fn top1000(&self, protocol: Protocol) -> &[u16] {
        match protocol {
            Protocol::Tcp => &self.top1000_tcp,
            Protocol::Udp => &self.top1000_udp,
        }
    }

    /// The usual service on a port, if the data names one.
    pub fn name(&self, protocol: Protocol, port: u16) -> Option<&str> {
        self.names.get(&(protocol, port)).map(String::as_str)
    }
}

const PORT_SETS_TOML: &str = include_str!("../data/port-sets.toml");

/// The named port sets, parsed once from the data compiled into the binary.
pub fn port_sets() -> &'static PortSet {
    static SETS: OnceLock<PortSet> = OnceLock::new();
    SETS.get_or_init(|| {
        // The data is compiled in and checked by this crate's tests, so a failure here
        // is a build defect, not something a user can cause.
        PortSet::from_toml(PORT_SETS_TOML).expect("data/port-sets.toml is valid")
    })
}

/// The usual service name of a port (`ssh` for TCP 22), from the port-set data.
pub fn service_name(protocol: Protocol, port: u16) -> Option<&'static str> {
    port_sets().name(protocol, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<PortSpec, PortSpecError> {
        s.parse()
    }

    #[test]
    fn accepts_lists_ranges_sets_and_prefixes() {
        let cases: &[(&str, &[u16], &[u16])] = &[
            ("22,80,443", &[22, 80, 443], &[]),
            ("443, 22 ,22", &[22, 443], &[]),
            ("8000-8003", &[8000, 8001, 8002, 8003], &[]),
            ("65530-", &[65530, 65531, 65532, 65533, 65534, 65535], &[]),
            ("-3", &[1, 2, 3], &[]),
            ("T:22,U:53,161", &[22], &[53, 161]),
            ("u:53,t:80", &[80], &[53]),
            ("1", &[1], &[]),
            ("65535", &[65535], &[]),
        ];
        for (spec, tcp, udp) in cases {
            let parsed = parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(parsed.tcp_ports(), *tcp, "{spec}");
            assert_eq!(parsed.udp_ports(), *udp, "{spec}");
        }
        assert_eq!(parse("-").unwrap_or_default().tcp_ports().len(), 65535);
        assert_eq!(parse("all").unwrap_or_default().tcp_ports().len(), 65535);
        assert_eq!(parse("ALL").unwrap_or_default().tcp_ports().len(), 65535);
        assert_eq!(parse("top100").unwrap_or_default().tcp_ports().len(), 100);
        assert_eq!(parse("top1000").unwrap_or_default().tcp_ports().len(), 1000);
    }

    #[test]
    fn rejects_bad_specs_naming_the_token() {
        let cases: &[(&str, &str)] = &[
            ("0", "port 0 in \"0\" is out of range"),
            ("65536", "port 65536 in \"65536\" is out of range"),
            ("22,99999", "port 99999 in \"99999\""),
            (
                "90-80",
                "range \"90-80\" is reversed: start 90 is greater than end 80",
            ),
            ("abc", "\"abc\" is not a port"),
            ("22,abc,80", "\"abc\" is not a port"),
            ("", "the port specification is empty"),
            ("   ", "the port specification is empty"),
            ("22,,80", "empty item at position 2"),
            ("22,", "empty item at position 2"),
            ("T:", "empty item at position 1"),
            ("1-2-3", "\"1-2-3\" is not a port"),
            ("0-10", "port 0 in \"0-10\" is out of range"),
            ("+5", "\"+5\" is not a port"),
            // Multi-byte characters where a `T:`/`U:` prefix would end.
            ("\u{800}", "\"\u{800}\" is not a port"),
            ("0\u{80}", "is not a port"),
            ("T\u{e9}22", "is not a port"),
        ];
        for (spec, expected) in cases {
            let err = parse(spec).expect_err(spec).to_string();
            assert!(
                err.contains(expected),
                "{spec}: got {err:?}, want {expected:?}"
            );
        }
    }

    #[test]
    fn a_spec_prints_in_its_own_syntax_and_parses_back() {
        for spec in [
            "T:22,80-82,443,U:53,161-162",
            "1-65535",
            "top1000",
            "U:53",
            "T:8080",
        ] {
            let parsed = parse(spec).expect(spec);
            let text = parsed.to_string();
            assert_eq!(parse(&text).expect(&text), parsed, "{spec} -> {text}");
        }
        assert_eq!(
            parse("22,80,81,82").expect("spec").to_string(),
            "T:22,80-82"
        );
        assert_eq!(parse("-").expect("spec").to_string(), "T:1-65535");
    }

    #[test]
    fn named_sets_follow_the_documented_derivation() {
        let sets = port_sets();
        let top100 = sets.top100(Protocol::Tcp);
        let top1000 = sets.top1000(Protocol::Tcp);
        assert_eq!(top100.len(), 100);
        assert_eq!(top1000.len(), 1000);
        assert!(
            top100.iter().all(|p| top1000.contains(p)),
            "top100 ⊂ top1000"
        );
        // Every port of the design's risk table is in top100.
        for port in [
            22, 23, 3306, 5432, 1433, 1521, 27017, 6379, 11211, 9200, 9300, 8086, 2379, 2375, 3389,
            5900, 8888, 6443, 10250, 25, 465, 587, 993, 995, 80, 443, 8080, 8443,
        ] {
            assert!(
                top100.contains(&port),
                "risk port {port} missing from top100"
            );
        }
        assert_eq!(sets.name(Protocol::Tcp, 22), Some("ssh"));
        assert!(!sets.top100(Protocol::Udp).is_empty());
        assert!(sets.top100(Protocol::Udp).contains(&53));
    }

    #[test]
    fn data_errors_are_reported() {
        let dup = "tcp = [{ port = 1, name = \"a\", tier = 100, source = \"iana\" }, { port = 1, name = \"b\", tier = 100, source = \"iana\" }]\nudp = []";
        assert!(PortSet::from_toml(dup).is_err_and(|e| e.contains("listed twice")));
        let unknown =
            "tcp = [{ port = 1, name = \"a\", tier = 100, source = \"iana\", x = 1 }]\nudp = []";
        assert!(PortSet::from_toml(unknown).is_err_and(|e| e.contains("unknown field")));
    }
}
