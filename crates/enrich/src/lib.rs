//! portgate's enrichment of targets: what the DNS says about a host name, who
//! registered its domain (or an address's block) and until when, and which network
//! (AS) an address belongs to.
//!
//! * [`dns`] gathers the DNS evidence of a name: CNAME chain, A, AAAA, MX, NS, TXT and
//!   CAA records, from the system's resolver or a given name server.
//! * [`registration`] looks registrations up: RDAP ([`rdap`], servers found through
//!   the IANA bootstrap files, a subset built in) and WHOIS ([`whois`]) where a registry
//!   has no RDAP service; with a cache ([`cache`]) and a rate limit per server
//!   ([`ratelimit`]). [`registration::domain_expiring`] is the test of the
//!   `domain-expiring` warning.
//! * [`asn`] reads ASN tables the user downloads (iptoasn TSV, CAIDA prefix-to-AS,
//!   MaxMind GeoLite2-ASN) into one list of ranges, and answers lookups.
//!
//! Nothing here sends a packet unless a lookup is called: importing tables, parsing
//! answers and reading the built-in data are offline.
//!
//! ```
//! use portgate_enrich::asn::{AsnLimits, parse_bytes};
//! use portgate_enrich::registration::registrable_domain;
//!
//! assert_eq!(registrable_domain("www.shop.example.co.uk")?, "example.co.uk");
//!
//! let tsv = "198.18.0.0\t198.19.255.255\t64500\tZZ\tEXAMPLE-TRANSIT\n";
//! let table = parse_bytes("ip2asn-v4.tsv", tsv.into(), None, &AsnLimits::default())?.into_table();
//! let owner = table.lookup("198.18.7.1".parse().expect("an address")).expect("a range");
//! assert_eq!(owner.asns, vec![64500]);
//! # Ok::<(), portgate_enrich::EnrichError>(())
//! ```
//!
//! # Input is hostile
//!
//! Answers from the network and imported files are read within caps (an RDAP answer
//! 1 MiB, a WHOIS answer 256 KiB, a TXT record 1,024 bytes, 64 records of a DNS type,
//! an ASN table 5,000,000 rows), every request within a time limit, every text kept is
//! escaped ([`text`]), and no input makes this crate panic. An error names the file
//! and line (and field and value) of a table, or the URL or server of a lookup and
//! what it answered.

pub mod asn;
pub mod cache;
pub mod dns;
mod error;
mod http;
pub mod ratelimit;
pub mod rdap;
mod read;
pub mod registration;
pub mod text;
pub mod whois;

pub use asn::{AsnDataset, AsnFormat, AsnLimits, AsnRange, AsnTable, ip_key};
pub use cache::RegistrationCache;
pub use dns::{DnsEvidence, DnsOptions, DnsResolver, MxRecord};
pub use error::EnrichError;
pub use ratelimit::ServerRateLimiter;
pub use rdap::{Bootstrap, BootstrapFile, BootstrapKind, RdapClient, RdapOptions};
pub use registration::{
    IpRegistration, LookupOverrides, Registration, RegistrationClient, RegistrationOptions,
    RegistrationSource, domain_expiring, registrable_domain,
};
pub use whois::{WhoisClient, WhoisOptions, WhoisServers};
