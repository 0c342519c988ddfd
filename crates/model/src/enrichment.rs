//! Context around the scanned targets: the DNS records of each host name, who registered
//! its domain and until when, and which network (AS, organisation, country) each address
//! belongs to. Network owners come from tables the user imported; DNS and registration
//! are looked up only when asked (`--enrich`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The context of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Enrichment {
    /// Per host-name target: DNS and registration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetContext>,
    /// Per scanned address: the network it belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<AddressNetwork>,
}

impl Enrichment {
    /// The network owners of an address.
    pub fn network_of(&self, ip: IpAddr) -> Option<&AddressNetwork> {
        self.networks.iter().find(|n| n.ip == ip)
    }

    /// The context of a target.
    pub fn target(&self, name: &str) -> Option<&TargetContext> {
        self.targets.iter().find(|t| t.name == name)
    }
}

/// DNS and registration of one host name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TargetContext {
    /// The host name as given.
    pub name: String,
    /// Its registrable domain (public-suffix list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registrable_domain: Option<String>,
    /// Its DNS records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsRecords>,
    /// The registration of its registrable domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<DomainRegistration>,
    /// What could not be found out, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The DNS records of a name (texts escaped).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DnsRecords {
    /// The resolver asked (`198.18.0.53:53`, or `system`).
    pub resolver: String,
    /// The CNAME chain, first alias first.
    pub cname_chain: Vec<String>,
    /// A records.
    pub a: Vec<String>,
    /// AAAA records.
    pub aaaa: Vec<String>,
    /// MX records (`10 mail.example.test`).
    pub mx: Vec<String>,
    /// NS records.
    pub ns: Vec<String>,
    /// TXT records.
    pub txt: Vec<String>,
    /// CAA records.
    pub caa: Vec<String>,
    /// Queries that failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// A domain's registration, from RDAP or WHOIS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DomainRegistration {
    /// The registered domain.
    pub domain: String,
    /// `rdap` or `whois`.
    pub source: String,
    /// The server that answered.
    pub server: String,
    /// The registrar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registrar: Option<String>,
    /// EPP status values.
    pub status: Vec<String>,
    /// Registered on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub created: Option<DateTime<Utc>>,
    /// Expires on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub expires: Option<DateTime<Utc>>,
    /// Days from the scan to the expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    /// Name servers.
    pub nameservers: Vec<String>,
    /// When the answer was fetched (earlier than the scan when it came from the cache).
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub fetched_at: DateTime<Utc>,
}

/// The network an address belongs to, by each imported table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AddressNetwork {
    /// The address.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub ip: IpAddr,
    /// One entry per table that knows the address.
    pub owners: Vec<NetworkOwnerInfo>,
    /// The address block's registration (RDAP), with `--enrich`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<AddressRegistration>,
    /// What could not be found out, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The registration of the address block an address belongs to (RDAP).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AddressRegistration {
    /// The server that answered.
    pub server: String,
    /// The registry's handle of the block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// The block's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ISO country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The block's first and last address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// When the answer was fetched.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub fetched_at: DateTime<Utc>,
}

/// One table's word on an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NetworkOwnerInfo {
    /// AS numbers (more than one for a multi-origin prefix).
    pub asns: Vec<u32>,
    /// The organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// ISO country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The table (`asn:<name>`).
    pub dataset: String,
    /// The table's date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub date: Option<DateTime<Utc>>,
}
