//! Who registered a domain or an address block, and until when: RDAP first
//! ([`crate::rdap`]), WHOIS for the domains whose registry has no RDAP service
//! ([`crate::whois`]), answers kept in a [`RegistrationCache`] for a day, requests to
//! each server rate-limited ([`ServerRateLimiter`]).
//!
//! A host name is looked up by its registrable domain ([`registrable_domain`]):
//! `www.shop.example.co.uk` by `example.co.uk`, the domain the registry knows.
//!
//! Nothing here sends a request unless a lookup is called.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cache::RegistrationCache;
use crate::error::EnrichError;
use crate::ratelimit::ServerRateLimiter;
use crate::rdap::{Bootstrap, RdapClient, RdapOptions};
use crate::whois::{WhoisClient, WhoisOptions, WhoisServers};

/// Longest host name accepted, in bytes of its ASCII form.
const MAX_HOST_LEN: usize = 253;

/// Where a registration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationSource {
    /// An RDAP server (RFC 9083).
    Rdap,
    /// A WHOIS server (port 43).
    Whois,
}

impl std::fmt::Display for RegistrationSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RegistrationSource::Rdap => "rdap",
            RegistrationSource::Whois => "whois",
        })
    }
}

/// The registration of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The registrable domain, in its ASCII form (`example.co.uk`).
    pub domain: String,
    /// RDAP or WHOIS.
    pub source: RegistrationSource,
    /// The URL asked (RDAP) or the server as `host:port` (WHOIS).
    pub server: String,
    /// The registrar's name.
    pub registrar: Option<String>,
    /// The registrar's IANA id.
    pub registrar_iana_id: Option<u32>,
    /// The EPP status values (`client transfer prohibited`, `clientTransferProhibited`,
    /// `connect` …) as the registry wrote them.
    pub status: Vec<String>,
    /// When the domain was registered.
    pub created: Option<DateTime<Utc>>,
    /// When the registration expires.
    pub expires: Option<DateTime<Utc>>,
    /// When the registration last changed.
    pub last_changed: Option<DateTime<Utc>>,
    /// The name servers, lower case, without the final dot.
    pub nameservers: Vec<String>,
    /// When the answer was received.
    pub fetched_at: DateTime<Utc>,
    /// What in the answer could not be used (`events[2].eventDate = "soon": not a
    /// date`); empty for a clean answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The registration of the address block an address belongs to (RDAP `ip network`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRegistration {
    /// The address asked.
    pub query: IpAddr,
    /// RDAP (the only source of address registrations here).
    pub source: RegistrationSource,
    /// The URL asked.
    pub server: String,
    /// The registry's handle of the block (`NET-198-18-0-0-1`).
    pub handle: Option<String>,
    /// The block's name.
    pub name: Option<String>,
    /// The block's country code, as the registry wrote it.
    pub country: Option<String>,
    /// The first address of the block.
    pub start_address: Option<IpAddr>,
    /// The last address of the block.
    pub end_address: Option<IpAddr>,
    /// The block's type (`ASSIGNED PA`, `DIRECT ALLOCATION` …).
    pub kind: Option<String>,
    /// The handle of the enclosing block.
    pub parent_handle: Option<String>,
    /// The status values.
    pub status: Vec<String>,
    /// When the answer was received.
    pub fetched_at: DateTime<Utc>,
    /// What in the answer could not be used; empty for a clean answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The ASCII (IDNA) form of a host name, lower case, without a final dot.
///
/// Refused: an empty name, an IP address, a name longer than 253 bytes or with a label
/// longer than 63 or empty, characters no host name has.
///
/// ```
/// use portgate_enrich::registration::host_to_ascii;
/// assert_eq!(host_to_ascii("WWW.Example.TEST.").unwrap(), "www.example.test");
/// assert_eq!(host_to_ascii("bücher.example.test").unwrap(), "xn--bcher-kva.example.test");
/// assert!(host_to_ascii("198.18.0.1").is_err());
/// ```
pub fn host_to_ascii(host: &str) -> Result<String, EnrichError> {
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    if trimmed.is_empty() {
        return Err(EnrichError::name(host, "an empty name"));
    }
    if trimmed.len() > 4 * MAX_HOST_LEN {
        return Err(EnrichError::name(
            host,
            format!("longer than {MAX_HOST_LEN} bytes"),
        ));
    }
    if trimmed.parse::<IpAddr>().is_ok() {
        return Err(EnrichError::name(host, "an IP address, not a host name"));
    }
    let ascii = idna::domain_to_ascii_cow(trimmed.as_bytes(), idna::AsciiDenyList::URL)
        .map_err(|_| EnrichError::name(host, "not a valid internationalised domain name"))?
        .to_ascii_lowercase();
    if ascii.len() > MAX_HOST_LEN {
        return Err(EnrichError::name(
            host,
            format!("longer than {MAX_HOST_LEN} bytes in its ASCII form"),
        ));
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(EnrichError::name(host, "an empty label"));
        }
        if label.len() > 63 {
            return Err(EnrichError::name(host, "a label longer than 63 bytes"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(EnrichError::name(
                host,
                "a character other than a letter, a digit, '-' or '_'",
            ));
        }
    }
    Ok(ascii)
}

/// The registrable domain of a host name: one label more than its public suffix, by
/// the ICANN section of the public-suffix list (compiled in). The private section
/// (`github.io`, `blogspot.com` …) is not used: its suffixes are names under a domain
/// that a registry holds, and that registry is the one to ask. A suffix the list does
/// not know (`test`) counts as a public suffix of one label.
///
/// A public suffix itself (`co.uk`) has no registrable domain and is an error.
///
/// ```
/// use portgate_enrich::registration::registrable_domain;
/// assert_eq!(registrable_domain("a.b.example.co.uk").unwrap(), "example.co.uk");
/// assert_eq!(registrable_domain("www.example.test").unwrap(), "example.test");
/// assert!(registrable_domain("co.uk").is_err());
/// ```
pub fn registrable_domain(host: &str) -> Result<String, EnrichError> {
    let ascii = host_to_ascii(host)?;
    let suffix = icann_suffix(&ascii);
    if suffix.len() >= ascii.len() {
        return Err(EnrichError::name(
            host,
            format!("{ascii} is a public suffix: it has no registrable domain"),
        ));
    }
    let head = &ascii[..ascii.len() - suffix.len() - 1];
    let label = head.rsplit('.').next().unwrap_or(head);
    Ok(format!("{label}.{suffix}"))
}

/// The public suffix of `ascii` by the ICANN section of the list.
fn icann_suffix(ascii: &str) -> &str {
    let mut candidate = match psl::suffix(ascii.as_bytes()) {
        Some(s) => std::str::from_utf8(s.as_bytes()).unwrap_or(ascii),
        None => ascii.rsplit('.').next().unwrap_or(ascii),
    };
    // A private suffix: walk up to the ICANN suffix it extends.
    while psl::suffix(candidate.as_bytes()).and_then(|s| s.typ()) == Some(psl::Type::Private) {
        match candidate.split_once('.') {
            Some((_, parent)) => {
                candidate = match psl::suffix(parent.as_bytes()) {
                    Some(s) => std::str::from_utf8(s.as_bytes()).unwrap_or(parent),
                    None => parent,
                };
            }
            None => break,
        }
    }
    candidate
}

/// Days left before `reg` expires, when that is at most `days` days from `now` (or
/// already past: then the number is negative); `None` when it expires later or its
/// expiry is unknown. Whole days, rounded down: 12 hours left is 0. This is the
/// `domain-expiring` warning's test.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use portgate_enrich::registration::{domain_expiring, Registration, RegistrationSource};
/// let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
/// let reg = Registration {
///     domain: "example.test".into(), source: RegistrationSource::Rdap,
///     server: "http://127.0.0.1:8080/domain/example.test".into(), registrar: None,
///     registrar_iana_id: None, status: vec![], created: None,
///     expires: Some(Utc.with_ymd_and_hms(2025, 1, 21, 12, 0, 0).unwrap()),
///     last_changed: None, nameservers: vec![], fetched_at: now, warnings: vec![],
/// };
/// assert_eq!(domain_expiring(&reg, now, 30), Some(20));
/// assert_eq!(domain_expiring(&reg, now, 14), None);
/// ```
pub fn domain_expiring(reg: &Registration, now: DateTime<Utc>, days: i64) -> Option<i64> {
    let expires = reg.expires?;
    let left = expires.signed_duration_since(now);
    let window = chrono::TimeDelta::try_days(days)?;
    if left > window {
        return None;
    }
    Some(left.num_seconds().div_euclid(86_400))
}

/// Parses a registry's date in the forms registries write: RFC 3339
/// (`2025-08-13T04:00:00Z`, `2025-08-13T04:00:00.0Z`, `2025-08-13T06:00:00+02:00`),
/// without a zone (`2025-08-13T04:00:00`, `2025-08-13 04:00:00`, taken as UTC, also
/// with ` UTC` or ` GMT` after), `2025-08-13`, `2025.08.13`, `2025/08/13`,
/// `13-Aug-2025` and `13.08.2025` (dates alone are midnight UTC).
///
/// ```
/// use portgate_enrich::registration::parse_date;
/// assert!(parse_date("2025.08.13").is_some());
/// assert_eq!(parse_date("2025-08-13"), parse_date("2025-08-13T00:00:00Z"));
/// assert!(parse_date("next year").is_none());
/// ```
pub fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.len() > 64 {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let bare = text
        .strip_suffix(" UTC")
        .or_else(|| text.strip_suffix(" GMT"))
        .or_else(|| text.strip_suffix('Z'))
        .or_else(|| text.strip_suffix('z'))
        .unwrap_or(text)
        .trim_end();
    for form in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y.%m.%d %H:%M:%S",
        "%Y/%m/%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(bare, form) {
            return Some(t.and_utc());
        }
    }
    if let Ok(t) = DateTime::parse_from_str(bare, "%Y-%m-%d %H:%M:%S %z") {
        return Some(t.with_timezone(&Utc));
    }
    for form in ["%Y-%m-%d", "%Y.%m.%d", "%Y/%m/%d", "%d-%b-%Y", "%d.%m.%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(bare, form) {
            return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        }
    }
    None
}

/// How registrations are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationOptions {
    /// RDAP requests.
    pub rdap: RdapOptions,
    /// WHOIS requests.
    pub whois: WhoisOptions,
    /// Shortest time between two requests to the same server: 1 s by default; zero is
    /// no limit.
    pub per_server_interval: Duration,
    /// How long an answer is reused: one day by default.
    pub cache_ttl: Duration,
}

impl Default for RegistrationOptions {
    fn default() -> Self {
        RegistrationOptions {
            rdap: RdapOptions::default(),
            whois: WhoisOptions::default(),
            per_server_interval: Duration::from_secs(1),
            cache_ttl: Duration::from_secs(86_400),
        }
    }
}

/// What one lookup may do differently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupOverrides {
    /// Ask this WHOIS server (`host` or `host:port`) instead of the table's, and use
    /// WHOIS even where RDAP has a service.
    pub whois_server: Option<String>,
    /// Ask the server even when the cache has a fresh answer (the new answer is
    /// cached).
    pub skip_cache: bool,
}

/// Looks registrations up: RDAP where the bootstrap names a service, WHOIS otherwise,
/// through a cache and a rate limit per server.
#[derive(Debug)]
pub struct RegistrationClient {
    rdap: RdapClient,
    whois: WhoisClient,
    cache: Mutex<RegistrationCache>,
}

impl RegistrationClient {
    /// A client with these bootstrap files and WHOIS servers, an empty cache.
    pub fn new(
        bootstrap: Bootstrap,
        whois_servers: WhoisServers,
        options: RegistrationOptions,
    ) -> Result<RegistrationClient, EnrichError> {
        let limiter = Arc::new(ServerRateLimiter::new(options.per_server_interval));
        Ok(RegistrationClient {
            rdap: RdapClient::new(bootstrap, options.rdap, Arc::clone(&limiter))?,
            whois: WhoisClient::new(whois_servers, options.whois, limiter),
            cache: Mutex::new(RegistrationCache::new(options.cache_ttl)),
        })
    }

    /// A client with the built-in bootstrap files and WHOIS servers.
    pub fn with_builtin_tables(
        options: RegistrationOptions,
    ) -> Result<RegistrationClient, EnrichError> {
        RegistrationClient::new(Bootstrap::builtin()?, WhoisServers::builtin()?, options)
    }

    /// Replaces the cache (one loaded from a file, say); its entries are kept for the
    /// cache's own TTL.
    pub fn set_cache(&self, cache: RegistrationCache) {
        *self.lock_cache() = cache;
    }

    /// A copy of the cache as it is now, to save.
    pub fn cache(&self) -> RegistrationCache {
        self.lock_cache().clone()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, RegistrationCache> {
        // A panic while holding the lock cannot leave the map half-changed.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registration of `host`'s registrable domain.
    pub async fn lookup_domain(&self, host: &str) -> Result<Registration, EnrichError> {
        self.lookup_domain_with(host, &LookupOverrides::default())
            .await
    }

    /// [`lookup_domain`](Self::lookup_domain) with overrides.
    pub async fn lookup_domain_with(
        &self,
        host: &str,
        overrides: &LookupOverrides,
    ) -> Result<Registration, EnrichError> {
        let domain = registrable_domain(host)?;
        let now = Utc::now();
        if !overrides.skip_cache
            && let Some(hit) = self.lock_cache().domain(&domain, now)
        {
            return Ok(hit);
        }
        let reg = match &overrides.whois_server {
            Some(server) => self.whois.lookup(&domain, Some(server)).await?,
            None if self.rdap.bootstrap().domain_service(&domain).is_some() => {
                self.rdap.lookup_domain(&domain).await?
            }
            None if self.whois.servers().server_for(&domain).is_some() => {
                self.whois.lookup(&domain, None).await?
            }
            None => {
                return Err(EnrichError::NoServer {
                    query: domain,
                    message: "no RDAP service in the bootstrap and no WHOIS server in the table for its suffix".into(),
                });
            }
        };
        self.lock_cache().put_domain(reg.clone());
        Ok(reg)
    }

    /// Whether the bootstrap names an RDAP service for `ip`'s block.
    pub fn has_ip_service(&self, ip: IpAddr) -> bool {
        self.rdap.bootstrap().ip_service(ip).is_some()
    }

    /// The registration of the address block `ip` belongs to (RDAP).
    pub async fn lookup_ip(&self, ip: IpAddr) -> Result<IpRegistration, EnrichError> {
        let ip = ip.to_canonical();
        let now = Utc::now();
        if let Some(hit) = self.lock_cache().ip(ip, now) {
            return Ok(hit);
        }
        let reg = self.rdap.lookup_ip(ip).await?;
        self.lock_cache().put_ip(reg.clone());
        Ok(reg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_suffixes_are_not_registrable_domains() {
        assert_eq!(
            registrable_domain("user.github.io").ok().as_deref(),
            Some("github.io")
        );
        assert_eq!(
            registrable_domain("x.y.example.com").ok().as_deref(),
            Some("example.com")
        );
    }

    #[test]
    fn dates() {
        let d = |s| parse_date(s).map(|t| t.to_rfc3339());
        assert_eq!(
            d("2025-08-13T04:00:00Z").as_deref(),
            Some("2025-08-13T04:00:00+00:00")
        );
        assert_eq!(
            d("2025-08-13T04:00:00.000Z").as_deref(),
            Some("2025-08-13T04:00:00+00:00")
        );
        assert_eq!(
            d("2025-08-13 04:00:00 UTC").as_deref(),
            Some("2025-08-13T04:00:00+00:00")
        );
        assert_eq!(
            d("13-Aug-2025").as_deref(),
            Some("2025-08-13T00:00:00+00:00")
        );
        assert_eq!(
            d("2025.08.13").as_deref(),
            Some("2025-08-13T00:00:00+00:00")
        );
        assert_eq!(d("2025-13-45"), None);
    }
}
