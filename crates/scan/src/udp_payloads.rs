//! UDP probe payloads: the request a UDP scan sends to a well-known port so that the
//! service behind it answers.
//!
//! The payloads are data, in `data/udp-payloads.toml` (written for portgate from the
//! protocol specifications; the file's header describes the format). The file is
//! compiled in and parsed once, on first use, by [`udp_payloads`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde::Deserialize;

/// The payload data compiled into the binary.
const UDP_PAYLOADS_TOML: &str = include_str!("../data/udp-payloads.toml");

/// One request to send to a UDP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Payload {
    /// Short name from the data file (`dns`, `snmp-v2c`, ...).
    pub(crate) name: String,
    /// The datagram's bytes (never empty).
    pub(crate) bytes: Vec<u8>,
}

/// Every payload, indexed by the ports it is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UdpPayloads {
    by_port: BTreeMap<u16, Vec<Payload>>,
}

/// The data file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadFile {
    payload: Vec<PayloadEntry>,
}

/// One `[[payload]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadEntry {
    name: String,
    ports: Vec<u16>,
    /// Where the format comes from; only checked to be present.
    spec: String,
    hex: String,
}

impl UdpPayloads {
    /// Parses and checks the TOML data: names unique and non-empty, at least one
    /// port, no port 0 or duplicate port within an entry, a non-empty `spec`, and
    /// `hex` decoding to at least one byte.
    fn parse(text: &str) -> Result<UdpPayloads, String> {
        let file: PayloadFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut names = BTreeSet::new();
        let mut by_port: BTreeMap<u16, Vec<Payload>> = BTreeMap::new();
        for entry in file.payload {
            let name = entry.name.trim();
            if name.is_empty() {
                return Err("a payload has an empty name".to_owned());
            }
            if !names.insert(name.to_owned()) {
                return Err(format!("payload `{name}` is listed twice"));
            }
            if entry.spec.trim().is_empty() {
                return Err(format!("payload `{name}` has no spec"));
            }
            if entry.ports.is_empty() {
                return Err(format!("payload `{name}` has no ports"));
            }
            let bytes = decode_hex(&entry.hex).map_err(|e| format!("payload `{name}`: {e}"))?;
            if bytes.is_empty() {
                return Err(format!("payload `{name}` is empty"));
            }
            let mut seen = BTreeSet::new();
            for &port in &entry.ports {
                if port == 0 {
                    return Err(format!("payload `{name}` lists port 0"));
                }
                if !seen.insert(port) {
                    return Err(format!("payload `{name}` lists port {port} twice"));
                }
                by_port.entry(port).or_default().push(Payload {
                    name: name.to_owned(),
                    bytes: bytes.clone(),
                });
            }
        }
        Ok(UdpPayloads { by_port })
    }

    /// The payloads to send to `port`, in data-file order; empty when the port has
    /// none (the scanner then sends an empty datagram or whatever its default is).
    pub(crate) fn for_port(&self, port: u16) -> &[Payload] {
        self.by_port.get(&port).map_or(&[], Vec::as_slice)
    }

    /// The ports that have at least one payload, ascending.
    #[cfg(test)]
    pub(crate) fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.by_port.keys().copied()
    }
}

/// The payloads compiled into the binary, parsed on first use.
pub(crate) fn udp_payloads() -> &'static UdpPayloads {
    static PAYLOADS: OnceLock<UdpPayloads> = OnceLock::new();
    PAYLOADS.get_or_init(|| {
        // The data is compiled in and checked by this module's tests, so a failure
        // here is a build defect, not something a user can cause.
        UdpPayloads::parse(UDP_PAYLOADS_TOML).expect("data/udp-payloads.toml is valid")
    })
}

/// Decodes hex written as two digits per byte; ASCII whitespace may separate bytes
/// but not split one.
fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(text.len() / 2);
    for token in text.split_ascii_whitespace() {
        let digits = token.as_bytes();
        if digits.len() % 2 != 0 {
            return Err(format!("hex group `{token}` has an odd number of digits"));
        }
        for pair in digits.chunks_exact(2) {
            let high = hex_digit(pair[0]);
            let low = hex_digit(pair[1]);
            match (high, low) {
                (Some(high), Some(low)) => bytes.push(high << 4 | low),
                _ => return Err(format!("`{token}` is not hex")),
            }
        }
    }
    Ok(bytes)
}

/// The value of one hex digit (either case).
fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every protocol the data file must cover, with the port it is sent to.
    const EXPECTED: [(&str, u16); 14] = [
        ("dns", 53),
        ("ntp", 123),
        ("snmp-v1", 161),
        ("snmp-v2c", 161),
        ("netbios-ns", 137),
        ("ssdp", 1900),
        ("mdns", 5353),
        ("ike", 500),
        ("ike-nat-t", 4500),
        ("openvpn", 1194),
        ("memcached", 11211),
        ("cldap", 389),
        ("tftp", 69),
        ("sip", 5060),
    ];

    /// The single payload called `name` sent to `port`.
    fn payload(port: u16, name: &str) -> &'static [u8] {
        let found: Vec<&Payload> = udp_payloads()
            .for_port(port)
            .iter()
            .filter(|p| p.name == name)
            .collect();
        assert_eq!(found.len(), 1, "payload {name} on port {port}");
        &found[0].bytes
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn be16(bytes: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([bytes[at], bytes[at + 1]])
    }

    fn be32(bytes: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    }

    /// Walks DNS labels from `at`; returns the dotted name and the offset after it.
    fn dns_name(bytes: &[u8], mut at: usize) -> (String, usize) {
        let mut labels = Vec::new();
        loop {
            let len = usize::from(bytes[at]);
            assert!(len < 64, "label length {len} (no compression in a query)");
            at += 1;
            if len == 0 {
                return (labels.join("."), at);
            }
            labels.push(String::from_utf8(bytes[at..at + len].to_vec()).expect("ASCII label"));
            at += len;
        }
    }

    /// A BER TLV with a short-form length at `at`: (tag, content range end).
    fn ber(bytes: &[u8], at: usize) -> (u8, usize, usize) {
        let tag = bytes[at];
        let len = bytes[at + 1];
        assert!(len < 0x80, "short-form length expected at {at}");
        (tag, at + 2, at + 2 + usize::from(len))
    }

    #[test]
    fn the_file_parses_and_every_payload_decodes() {
        let file: PayloadFile = toml::from_str(UDP_PAYLOADS_TOML).expect("valid TOML");
        assert!(!file.payload.is_empty());
        for entry in &file.payload {
            let bytes = decode_hex(&entry.hex)
                .unwrap_or_else(|e| panic!("payload {} does not decode: {e}", entry.name));
            assert!(!bytes.is_empty(), "payload {} is empty", entry.name);
            assert!(
                !entry.ports.is_empty(),
                "payload {} has no ports",
                entry.name
            );
            assert!(
                !entry.spec.trim().is_empty(),
                "payload {} has no spec",
                entry.name
            );
        }
        let payloads = UdpPayloads::parse(UDP_PAYLOADS_TOML).expect("valid payload data");
        assert_eq!(&payloads, udp_payloads());
        for port in payloads.ports() {
            for p in payloads.for_port(port) {
                assert!(!p.bytes.is_empty(), "{} on {port}", p.name);
                // Every payload fits a minimal-MTU datagram without fragmentation.
                assert!(
                    p.bytes.len() <= 1232,
                    "{} is {} bytes",
                    p.name,
                    p.bytes.len()
                );
            }
        }
    }

    #[test]
    fn every_listed_protocol_is_present() {
        for (name, port) in EXPECTED {
            assert!(
                udp_payloads().for_port(port).iter().any(|p| p.name == name),
                "{name} missing on port {port}"
            );
        }
        let names: BTreeSet<&str> = udp_payloads()
            .ports()
            .flat_map(|port| udp_payloads().for_port(port))
            .map(|p| p.name.as_str())
            .collect();
        let expected: BTreeSet<&str> = EXPECTED.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, expected, "unexpected or missing payloads");
    }

    #[test]
    fn ports_without_payloads_get_none_and_snmp_gets_two_in_order() {
        assert!(udp_payloads().for_port(9).is_empty());
        assert!(udp_payloads().for_port(0).is_empty());
        let snmp: Vec<&str> = udp_payloads()
            .for_port(161)
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(snmp, ["snmp-v1", "snmp-v2c"]);
        assert_eq!(
            udp_payloads().ports().collect::<Vec<_>>(),
            [
                53, 69, 123, 137, 161, 389, 500, 1194, 1900, 4500, 5060, 5353, 11211
            ]
        );
    }

    #[test]
    fn dns_is_a_standard_query_for_version_bind_ch_txt() {
        let p = payload(53, "dns");
        assert_eq!(be16(p, 2), 0x0100, "QR=0, OPCODE=QUERY, RD=1");
        assert_eq!(be16(p, 4), 1, "QDCOUNT");
        assert_eq!(&p[6..12], [0; 6], "AN/NS/ARCOUNT");
        let (name, end) = dns_name(p, 12);
        assert_eq!(name, "version.bind");
        assert_eq!(be16(p, end), 16, "QTYPE TXT");
        assert_eq!(be16(p, end + 2), 3, "QCLASS CH");
        assert_eq!(p.len(), end + 4, "nothing after the question");
    }

    #[test]
    fn mdns_asks_for_the_service_type_enumeration() {
        let p = payload(5353, "mdns");
        assert_eq!(be16(p, 2), 0, "standard query, no RD");
        assert_eq!(be16(p, 4), 1, "QDCOUNT");
        assert_eq!(&p[6..12], [0; 6]);
        let (name, end) = dns_name(p, 12);
        assert_eq!(name, "_services._dns-sd._udp.local");
        assert_eq!(be16(p, end), 12, "QTYPE PTR");
        assert_eq!(be16(p, end + 2), 1, "QCLASS IN");
        assert_eq!(p.len(), end + 4);
    }

    #[test]
    fn ntp_is_a_48_byte_v4_client_request() {
        let p = payload(123, "ntp");
        assert_eq!(p.len(), 48);
        assert_eq!(p[0], 0x23, "LI 0, VN 4, mode 3");
        assert_eq!(p[0] >> 6, 0);
        assert_eq!((p[0] >> 3) & 7, 4);
        assert_eq!(p[0] & 7, 3);
        assert_ne!(&p[40..48], [0; 8], "transmit timestamp set");
    }

    #[test]
    fn snmp_get_requests_for_sys_descr_with_community_public() {
        const SYS_DESCR_OID: [u8; 10] = [0x06, 0x08, 0x2b, 6, 1, 2, 1, 1, 1, 0];
        for (name, version) in [("snmp-v1", 0u8), ("snmp-v2c", 1)] {
            let p = payload(161, name);
            assert_eq!(p[0], 0x30, "{name}: Message SEQUENCE");
            let (_, body, end) = ber(p, 0);
            assert_eq!(end, p.len(), "{name}: length covers the datagram");
            assert_eq!(&p[body..body + 3], [0x02, 0x01, version], "{name}: version");
            assert_eq!(&p[body + 3..body + 11], b"\x04\x06public", "{name}");
            let (tag, pdu, pdu_end) = ber(p, body + 11);
            assert_eq!(tag, 0xa0, "{name}: GetRequest-PDU");
            assert_eq!(pdu_end, p.len());
            assert_eq!(p[pdu], 0x02, "{name}: request-id INTEGER");
            assert!(contains(p, &SYS_DESCR_OID), "{name}: sysDescr.0");
            assert!(p.ends_with(&[0x05, 0x00]), "{name}: value NULL");
            // Nested lengths are consistent: varbind list and varbind end with the PDU.
            let (_, _, rid_end) = ber(p, pdu);
            let (_, _, status_end) = ber(p, rid_end);
            let (_, _, index_end) = ber(p, status_end);
            let (list_tag, list, list_end) = ber(p, index_end);
            assert_eq!((list_tag, list_end), (0x30, p.len()), "{name}");
            let (bind_tag, _, bind_end) = ber(p, list);
            assert_eq!((bind_tag, bind_end), (0x30, p.len()), "{name}");
        }
        assert_ne!(payload(161, "snmp-v1"), payload(161, "snmp-v2c"));
    }

    #[test]
    fn netbios_is_a_node_status_request_for_star() {
        let p = payload(137, "netbios-ns");
        assert_eq!(be16(p, 2), 0, "query, no flags");
        assert_eq!(be16(p, 4), 1, "QDCOUNT");
        assert_eq!(p[12], 32, "encoded name length");
        let name = &p[13..45];
        // Decode the first-level encoding: two letters 'A'+nibble per byte.
        let decoded: Vec<u8> = name
            .chunks_exact(2)
            .map(|c| ((c[0] - b'A') << 4) | (c[1] - b'A'))
            .collect();
        assert_eq!(decoded[0], b'*');
        assert!(decoded[1..].iter().all(|&b| b == 0));
        assert_eq!(p[45], 0, "end of name");
        assert_eq!(be16(p, 46), 0x21, "NBSTAT");
        assert_eq!(be16(p, 48), 1, "IN");
        assert_eq!(p.len(), 50);
    }

    #[test]
    fn ssdp_is_an_m_search() {
        let p = payload(1900, "ssdp");
        let text = std::str::from_utf8(p).expect("ASCII");
        assert!(text.starts_with("M-SEARCH * HTTP/1.1\r\n"));
        assert!(text.contains("\r\nHOST: 239.255.255.250:1900\r\n"));
        assert!(text.contains("\r\nMAN: \"ssdp:discover\"\r\n"));
        assert!(text.contains("\r\nST: ssdp:all\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    /// Checks an IKEv2 IKE_SA_INIT message and its payload chain.
    fn check_ike_sa_init(p: &[u8]) {
        assert_eq!(&p[0..8], b"portgate", "initiator SPI");
        assert_eq!(&p[8..16], [0; 8], "responder SPI zero");
        assert_eq!(p[17], 0x20, "version 2.0");
        assert_eq!(p[18], 34, "IKE_SA_INIT");
        assert_eq!(p[19], 0x08, "initiator flag");
        assert_eq!(be32(p, 20), 0, "message ID");
        assert_eq!(be32(p, 24) as usize, p.len(), "length");
        // Walk the generic payload headers: SA, KE, Nonce, then nothing.
        let mut next = p[16];
        let mut at = 28;
        let mut seen = Vec::new();
        while next != 0 {
            seen.push(next);
            let len = usize::from(be16(p, at + 2));
            assert!(
                len >= 4 && at + len <= p.len(),
                "payload {next} length {len}"
            );
            if next == 34 {
                assert_eq!(be16(p, at + 4), 31, "KE group matches a proposed group");
                assert_eq!(len, 8 + 32, "X25519 public value is 32 bytes");
            }
            if next == 40 {
                assert!((16..=256).contains(&(len - 4)), "nonce size");
            }
            next = p[at];
            at += len;
        }
        assert_eq!(seen, [33, 34, 40], "SA, KE, Nonce");
        assert_eq!(at, p.len());
        // The single proposal: protocol IKE, 5 transforms, lengths consistent.
        let proposal = 28 + 4;
        assert_eq!(p[proposal], 0, "last proposal");
        assert_eq!(usize::from(be16(p, proposal + 2)), be16(p, 30) as usize - 4);
        assert_eq!(p[proposal + 5], 1, "protocol IKE");
        assert_eq!(p[proposal + 6], 0, "no SPI");
        let count = p[proposal + 7];
        let mut transform = proposal + 8;
        let mut types = Vec::new();
        for i in 0..count {
            let last = i + 1 == count;
            assert_eq!(p[transform], if last { 0 } else { 3 });
            types.push((p[transform + 4], be16(p, transform + 6)));
            transform += usize::from(be16(p, transform + 2));
        }
        assert_eq!(transform, 28 + usize::from(be16(p, 30)));
        assert_eq!(types, [(1, 12), (2, 5), (3, 12), (4, 31), (4, 14)]);
    }

    #[test]
    fn ike_is_an_ikev2_sa_init_and_nat_t_adds_the_non_esp_marker() {
        let ike = payload(500, "ike");
        check_ike_sa_init(ike);
        let natt = payload(4500, "ike-nat-t");
        assert_eq!(&natt[..4], [0; 4], "non-ESP marker");
        assert_eq!(&natt[4..], ike);
    }

    #[test]
    fn openvpn_is_a_hard_reset_client_v2() {
        let p = payload(1194, "openvpn");
        assert_eq!(p[0] >> 3, 7, "P_CONTROL_HARD_RESET_CLIENT_V2");
        assert_eq!(p[0] & 7, 0, "key_id 0");
        assert_eq!(&p[1..9], b"portgate", "session ID");
        assert_eq!(p[9], 0, "no ACKs");
        assert_eq!(be32(p, 10), 0, "packet-ID 0");
        assert_eq!(p.len(), 14);
    }

    #[test]
    fn memcached_has_the_udp_frame_header() {
        let p = payload(11211, "memcached");
        assert_eq!(be16(p, 2), 0, "sequence number");
        assert_eq!(be16(p, 4), 1, "one datagram");
        assert_eq!(be16(p, 6), 0, "reserved");
        assert_eq!(&p[8..], b"version\r\n");
    }

    #[test]
    fn cldap_searches_the_root_dse() {
        let p = payload(389, "cldap");
        let (tag, body, end) = ber(p, 0);
        assert_eq!((tag, end), (0x30, p.len()), "LDAPMessage");
        assert_eq!(&p[body..body + 3], [0x02, 0x01, 0x01], "messageID 1");
        let (tag, search, search_end) = ber(p, body + 3);
        assert_eq!((tag, search_end), (0x63, p.len()), "searchRequest");
        assert_eq!(&p[search..search + 2], [0x04, 0x00], "baseObject \"\"");
        assert_eq!(&p[search + 2..search + 5], [0x0a, 0x01, 0x00], "scope base");
        assert!(contains(p, b"\x87\x0bobjectClass"), "(objectClass=*)");
        assert!(p.ends_with(&[0x30, 0x00]), "attribute list");
    }

    #[test]
    fn tftp_is_a_read_request_in_octet_mode() {
        let p = payload(69, "tftp");
        assert_eq!(be16(p, 0), 1, "RRQ");
        assert_eq!(&p[2..], b"portgate-probe\0octet\0");
    }

    #[test]
    fn sip_is_an_options_request_with_mandatory_headers() {
        let p = payload(5060, "sip");
        let text = std::str::from_utf8(p).expect("ASCII");
        assert!(text.starts_with("OPTIONS sip:"));
        let request_line = text.split("\r\n").next().unwrap_or_default();
        assert!(request_line.ends_with(" SIP/2.0"), "{request_line}");
        for header in [
            "\r\nVia: SIP/2.0/UDP ",
            ";rport;branch=z9hG4bK",
            "\r\nMax-Forwards: 70\r\n",
            "\r\nFrom: ",
            ";tag=",
            "\r\nTo: ",
            "\r\nCall-ID: ",
            "\r\nCSeq: 1 OPTIONS\r\n",
            "\r\nContent-Length: 0\r\n",
        ] {
            assert!(text.contains(header), "missing {header:?}");
        }
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(
            decode_hex("00 ff\n\tAb 1234"),
            Ok(vec![0, 0xff, 0xab, 0x12, 0x34])
        );
        assert_eq!(decode_hex("  "), Ok(vec![]));
        assert!(
            decode_hex("0 0").is_err(),
            "whitespace must not split a byte"
        );
        assert!(decode_hex("abc").is_err());
        assert!(decode_hex("zz").is_err());
        assert!(decode_hex("0x12").is_err());
    }

    #[test]
    fn bad_data_is_rejected() {
        let ok = "[[payload]]\nname = \"a\"\nports = [1]\nspec = \"s\"\nhex = \"01\"\n";
        assert!(UdpPayloads::parse(ok).is_ok());
        let cases = [
            ok.replace("hex = \"01\"", "hex = \"\""),
            ok.replace("hex = \"01\"", "hex = \"0g\""),
            ok.replace("ports = [1]", "ports = []"),
            ok.replace("ports = [1]", "ports = [0]"),
            ok.replace("ports = [1]", "ports = [1, 1]"),
            ok.replace("ports = [1]", "ports = [70000]"),
            ok.replace("name = \"a\"", "name = \" \""),
            ok.replace("spec = \"s\"", "spec = \"\""),
            ok.replace("spec = \"s\"\n", ""),
            format!("{ok}extra = 1\n"),
            format!("{ok}{ok}"),
            "payloads = []\n".to_owned(),
        ];
        for case in cases {
            assert!(UdpPayloads::parse(&case).is_err(), "accepted:\n{case}");
        }
    }
}
