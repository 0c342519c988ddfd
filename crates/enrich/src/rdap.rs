//! RDAP lookups (RFC 9082 queries, RFC 9083 answers) of domains (`/domain/{name}`) and
//! addresses (`/ip/{addr}`), their server found through the IANA bootstrap files
//! (RFC 9224).
//!
//! The bootstrap files `dns.json`, `ipv4.json` and `ipv6.json` are built in (a subset of
//! IANA's, see `data/`); each can be replaced by a file of the same format
//! ([`Bootstrap::load_path`], [`Bootstrap::from_path`]), which is also how a private or
//! test registry is reached: its base URL (`http://127.0.0.1:8080/`) in a service's
//! URL list.
//!
//! Read from a domain answer: `ldhName`, `status`, the `events` `registration`,
//! `expiration` and `last changed`, the entity with the role `registrar` (its vCard
//! `fn` and its `IANA Registrar ID` among `publicIds`) and `nameservers[].ldhName`.
//! From an address answer: `handle`, `name`, `country`, `startAddress`, `endAddress`,
//! `type`, `parentHandle`, `status`.
//!
//! Every answer is read within a cap (1 MiB by default) and a time limit (10 s by
//! default); a status other than 200, a body that is not a JSON object, or an object
//! of another class is an error naming the URL.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::EnrichError;
use crate::ratelimit::ServerRateLimiter;
use crate::registration::{IpRegistration, Registration, RegistrationSource, parse_date};
use crate::text::{escape_text, excerpt};

/// Largest bootstrap file read, in bytes.
const MAX_BOOTSTRAP_BYTES: u64 = 8 << 20;
/// Most entries (TLDs or prefixes) in one bootstrap file.
const MAX_BOOTSTRAP_ENTRIES: usize = 100_000;
/// Longest service URL accepted.
const MAX_URL_LEN: usize = 2048;
/// Longest text kept from an answer, in characters.
const MAX_TEXT: usize = 256;
/// Most status values, name servers or entities read from an answer.
const MAX_ITEMS: usize = 64;

const BUILTIN_DNS: &str = include_str!("../data/dns.json");
const BUILTIN_IPV4: &str = include_str!("../data/ipv4.json");
const BUILTIN_IPV6: &str = include_str!("../data/ipv6.json");

/// Which registry a bootstrap file covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootstrapKind {
    /// Domain names by TLD (`dns.json`).
    Dns,
    /// IPv4 prefixes (`ipv4.json`).
    Ipv4,
    /// IPv6 prefixes (`ipv6.json`).
    Ipv6,
}

/// One service of a bootstrap file: the TLDs or prefixes it serves and its base URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapService {
    /// TLDs (lower case, ASCII) or prefixes (`198.18.0.0/15`).
    pub entries: Vec<String>,
    /// Base URLs, each ending with `/`.
    pub urls: Vec<String>,
}

impl BootstrapService {
    /// The URL to use: the first `https` one, else the first.
    pub fn base_url(&self) -> Option<&str> {
        self.urls
            .iter()
            .find(|u| u.starts_with("https://"))
            .or_else(|| self.urls.first())
            .map(String::as_str)
    }
}

/// One bootstrap file (RFC 9224 section 3), checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapFile {
    /// What it covers, told from its entries.
    pub kind: BootstrapKind,
    /// Where it came from (a path, or `built-in dns.json`).
    pub origin: String,
    /// Its `publication` date.
    pub publication: DateTime<Utc>,
    /// Its `description`.
    pub description: Option<String>,
    /// Its services.
    pub services: Vec<BootstrapService>,
}

#[derive(Deserialize)]
struct RawBootstrap {
    #[serde(default)]
    description: Option<String>,
    publication: String,
    services: Vec<(Vec<String>, Vec<String>)>,
    #[serde(default)]
    #[allow(dead_code)]
    version: Option<String>,
}

impl BootstrapFile {
    /// Parses and checks a bootstrap file. Its kind is told from its entries (all TLDs,
    /// all IPv4 prefixes or all IPv6 prefixes), or from its description when it has no
    /// service.
    pub fn parse(origin: &str, bytes: &[u8]) -> Result<BootstrapFile, EnrichError> {
        if bytes.len() as u64 > MAX_BOOTSTRAP_BYTES {
            return Err(EnrichError::too_large(
                origin,
                "the bootstrap file",
                format!("{MAX_BOOTSTRAP_BYTES} bytes"),
            ));
        }
        let raw: RawBootstrap = crate::read::json_document(origin, bytes)?;
        let bad = |at: String, value: &str, why: &str| EnrichError::Json {
            origin: origin.to_owned(),
            at,
            message: format!("{:?}: {why}", crate::error::quote(value)),
        };
        let publication = parse_date(&raw.publication)
            .ok_or_else(|| bad("publication".into(), &raw.publication, "not a date"))?;
        let total: usize = raw.services.iter().map(|s| s.0.len()).sum();
        if total > MAX_BOOTSTRAP_ENTRIES {
            return Err(EnrichError::too_large(
                origin,
                "the number of entries",
                format!("{MAX_BOOTSTRAP_ENTRIES} entries"),
            ));
        }
        let mut kind: Option<BootstrapKind> = None;
        let mut services = Vec::with_capacity(raw.services.len());
        for (i, (entries, urls)) in raw.services.into_iter().enumerate() {
            let mut checked = Vec::with_capacity(entries.len());
            for (j, entry) in entries.iter().enumerate() {
                let at = format!("services[{i}][0][{j}]");
                let (this_kind, normal) = match entry.parse::<IpNet>() {
                    Ok(IpNet::V4(net)) => (BootstrapKind::Ipv4, net.trunc().to_string()),
                    Ok(IpNet::V6(net)) => (BootstrapKind::Ipv6, net.trunc().to_string()),
                    Err(_) => {
                        let ascii = crate::registration::host_to_ascii(entry).map_err(|_| {
                            bad(
                                at.clone(),
                                entry,
                                "neither a domain suffix nor an IP prefix",
                            )
                        })?;
                        (BootstrapKind::Dns, ascii)
                    }
                };
                match kind {
                    None => kind = Some(this_kind),
                    Some(k) if k != this_kind => {
                        return Err(bad(
                            at,
                            entry,
                            "a different kind of entry from the ones before it",
                        ));
                    }
                    Some(_) => {}
                }
                checked.push(normal);
            }
            if urls.is_empty() {
                return Err(bad(
                    format!("services[{i}][1]"),
                    "",
                    "a service with no URL",
                ));
            }
            let mut good_urls = Vec::with_capacity(urls.len());
            for (j, url) in urls.iter().enumerate() {
                let at = format!("services[{i}][1][{j}]");
                if url.len() > MAX_URL_LEN
                    || !(url.starts_with("https://") || url.starts_with("http://"))
                    || reqwest::Url::parse(url).map_or(true, |u| u.host_str().is_none())
                {
                    return Err(bad(at, url, "not an http:// or https:// URL"));
                }
                let mut url = url.clone();
                if !url.ends_with('/') {
                    url.push('/');
                }
                good_urls.push(url);
            }
            services.push(BootstrapService {
                entries: checked,
                urls: good_urls,
            });
        }
        let kind = match kind {
            Some(k) => k,
            None => {
                let d = raw
                    .description
                    .as_deref()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if d.contains("ipv4") {
                    BootstrapKind::Ipv4
                } else if d.contains("ipv6") {
                    BootstrapKind::Ipv6
                } else if d.contains("domain") {
                    BootstrapKind::Dns
                } else {
                    return Err(EnrichError::format(
                        origin,
                        "no service and no description saying what the file covers",
                    ));
                }
            }
        };
        Ok(BootstrapFile {
            kind,
            origin: origin.to_owned(),
            publication,
            description: raw.description.map(|d| escape_text(&d, MAX_TEXT)),
            services,
        })
    }
}

/// The three bootstrap registries (domains, IPv4, IPv6), with indexes for lookups.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    files: HashMap<BootstrapKind, BootstrapFile>,
    /// TLD (or longer suffix) → (service index) of the DNS file.
    dns_index: HashMap<String, usize>,
    /// (prefix, service index) of the two address files.
    ip_index: Vec<(IpNet, BootstrapKind, usize)>,
}

impl Bootstrap {
    /// No registry: every lookup has no service.
    pub fn empty() -> Bootstrap {
        Bootstrap::default()
    }

    /// The built-in files (`data/dns.json`, `data/ipv4.json`, `data/ipv6.json`).
    pub fn builtin() -> Result<Bootstrap, EnrichError> {
        let mut b = Bootstrap::empty();
        for (name, text) in [
            ("dns.json", BUILTIN_DNS),
            ("ipv4.json", BUILTIN_IPV4),
            ("ipv6.json", BUILTIN_IPV6),
        ] {
            b.set(BootstrapFile::parse(
                &format!("built-in {name}"),
                text.as_bytes(),
            )?);
        }
        Ok(b)
    }

    /// A bootstrap with only the registry of the file at `path`.
    pub fn from_path(path: &Path) -> Result<Bootstrap, EnrichError> {
        let mut b = Bootstrap::empty();
        b.load_path(path)?;
        Ok(b)
    }

    /// Reads the file at `path` and puts it in place of the registry of its kind; the
    /// kind is returned.
    pub fn load_path(&mut self, path: &Path) -> Result<BootstrapKind, EnrichError> {
        let bytes = crate::read::read_file_capped(path, MAX_BOOTSTRAP_BYTES)?;
        let file = BootstrapFile::parse(&path.display().to_string(), &bytes)?;
        let kind = file.kind;
        self.set(file);
        Ok(kind)
    }

    /// Puts `file` in place of the registry of its kind.
    pub fn set(&mut self, file: BootstrapFile) {
        self.files.insert(file.kind, file);
        self.reindex();
    }

    /// The file of a registry, if there is one.
    pub fn file(&self, kind: BootstrapKind) -> Option<&BootstrapFile> {
        self.files.get(&kind)
    }

    fn reindex(&mut self) {
        self.dns_index.clear();
        self.ip_index.clear();
        for (kind, file) in &self.files {
            for (i, service) in file.services.iter().enumerate() {
                for entry in &service.entries {
                    match kind {
                        BootstrapKind::Dns => {
                            // The first service naming an entry wins.
                            self.dns_index.entry(entry.clone()).or_insert(i);
                        }
                        BootstrapKind::Ipv4 | BootstrapKind::Ipv6 => {
                            if let Ok(net) = entry.parse::<IpNet>() {
                                self.ip_index.push((net, *kind, i));
                            }
                        }
                    }
                }
            }
        }
        // Longest prefix first, so the first match is the most specific.
        self.ip_index
            .sort_by_key(|(net, _, _)| std::cmp::Reverse(net.prefix_len()));
    }

    /// The base URL of the RDAP service of `domain` (ASCII, lower case): the service
    /// of its longest suffix in the DNS registry.
    pub fn domain_service(&self, domain: &str) -> Option<&str> {
        let file = self.files.get(&BootstrapKind::Dns)?;
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut rest = domain.as_str();
        loop {
            if let Some(&i) = self.dns_index.get(rest) {
                return file.services.get(i)?.base_url();
            }
            rest = rest.split_once('.')?.1;
        }
    }

    /// The base URL of the RDAP service of `ip`: the service of the longest prefix
    /// holding it.
    pub fn ip_service(&self, ip: IpAddr) -> Option<&str> {
        let ip = ip.to_canonical();
        let (_, kind, i) = self.ip_index.iter().find(|(net, _, _)| net.contains(&ip))?;
        self.files.get(kind)?.services.get(*i)?.base_url()
    }
}

/// How RDAP requests are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdapOptions {
    /// Time limit of one request, answer included: 10 s by default.
    pub timeout: Duration,
    /// Largest answer read: 1 MiB by default.
    pub max_response_bytes: u64,
    /// The `User-Agent` sent.
    pub user_agent: String,
    /// Whether the proxy named by the environment (`HTTPS_PROXY`, `HTTP_PROXY`,
    /// `NO_PROXY`) is used: yes by default.
    pub system_proxy: bool,
}

impl Default for RdapOptions {
    fn default() -> Self {
        RdapOptions {
            timeout: Duration::from_secs(10),
            max_response_bytes: 1 << 20,
            user_agent: concat!("portgate-enrich/", env!("CARGO_PKG_VERSION")).to_owned(),
            system_proxy: true,
        }
    }
}

/// An RDAP client.
#[derive(Debug)]
pub struct RdapClient {
    http: reqwest::Client,
    bootstrap: Bootstrap,
    options: RdapOptions,
    limiter: Arc<ServerRateLimiter>,
}

impl RdapClient {
    /// A client finding servers in `bootstrap`, its requests spaced by `limiter`.
    pub fn new(
        bootstrap: Bootstrap,
        options: RdapOptions,
        limiter: Arc<ServerRateLimiter>,
    ) -> Result<RdapClient, EnrichError> {
        let http = crate::http::client(options.timeout, &options.user_agent, options.system_proxy)?;
        Ok(RdapClient {
            http,
            bootstrap,
            options,
            limiter,
        })
    }

    /// The bootstrap registries used.
    pub fn bootstrap(&self) -> &Bootstrap {
        &self.bootstrap
    }

    /// The registration of `domain` (a registrable domain in ASCII, see
    /// [`crate::registration::registrable_domain`]).
    pub async fn lookup_domain(&self, domain: &str) -> Result<Registration, EnrichError> {
        let domain = crate::registration::host_to_ascii(domain)?;
        let base = self
            .bootstrap
            .domain_service(&domain)
            .ok_or_else(|| EnrichError::NoServer {
                query: domain.clone(),
                message: "no RDAP service in the DNS bootstrap for its suffix".into(),
            })?;
        let url = format!("{base}domain/{domain}");
        let answer = self.get(&url).await?;
        parse_domain(&url, &domain, &answer, Utc::now())
    }

    /// The registration of the address block holding `ip`.
    pub async fn lookup_ip(&self, ip: IpAddr) -> Result<IpRegistration, EnrichError> {
        let ip = ip.to_canonical();
        let base = self
            .bootstrap
            .ip_service(ip)
            .ok_or_else(|| EnrichError::NoServer {
                query: ip.to_string(),
                message: "no RDAP service in the address bootstrap for it".into(),
            })?;
        let url = format!("{base}ip/{ip}");
        let answer = self.get(&url).await?;
        parse_ip(&url, ip, &answer, Utc::now())
    }

    /// GETs `url` after its server's turn, and parses the body as a JSON object.
    async fn get(&self, url: &str) -> Result<Value, EnrichError> {
        let server = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
            })
            .unwrap_or_else(|| url.to_owned());
        self.limiter.wait(&server).await;
        let answer = crate::http::get(
            &self.http,
            url,
            "application/rdap+json, application/json;q=0.9",
            self.options.max_response_bytes,
            self.options.timeout,
        )
        .await?;
        let value: Value = serde_json::from_slice(&answer.body).map_err(|e| EnrichError::Json {
            origin: url.to_owned(),
            at: format!("line {}, column {}", e.line(), e.column()),
            message: format!(
                "the answer is not JSON (Content-Type {:?}; it starts {:?})",
                answer.content_type,
                excerpt(&answer.body)
            ),
        })?;
        if !value.is_object() {
            return Err(EnrichError::Json {
                origin: url.to_owned(),
                at: ".".into(),
                message: "the answer is not a JSON object".into(),
            });
        }
        Ok(value)
    }
}

/// A string field, escaped and cut; a value of another type is a warning.
fn text_field(value: &Value, key: &str, at: &str, warnings: &mut Vec<String>) -> Option<String> {
    match value.get(key)? {
        Value::String(s) => Some(escape_text(s.trim(), MAX_TEXT)),
        Value::Null => None,
        other => {
            warnings.push(format!(
                "{at}{key}: a {} where text was expected",
                type_name(other)
            ));
            None
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The array at `key`, at most `cap` items (a longer one is cut, with a warning).
fn array_field<'a>(
    value: &'a Value,
    key: &str,
    cap: usize,
    warnings: &mut Vec<String>,
) -> &'a [Value] {
    match value.get(key) {
        Some(Value::Array(items)) => {
            if items.len() > cap {
                warnings.push(format!(
                    "{key}: {} items, the first {cap} read",
                    items.len()
                ));
                &items[..cap]
            } else {
                items
            }
        }
        None | Some(Value::Null) => &[],
        Some(other) => {
            warnings.push(format!(
                "{key}: a {} where an array was expected",
                type_name(other)
            ));
            &[]
        }
    }
}

fn status_list(value: &Value, warnings: &mut Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, s) in array_field(value, "status", MAX_ITEMS, warnings)
        .iter()
        .enumerate()
    {
        match s.as_str() {
            Some(s) => {
                let s = escape_text(s.trim(), MAX_TEXT);
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            None => warnings.push(format!("status[{i}]: not text")),
        }
    }
    out
}

fn check_class(url: &str, value: &Value, expected: &str) -> Result<(), EnrichError> {
    match value.get("objectClassName").and_then(Value::as_str) {
        Some(class) if class.eq_ignore_ascii_case(expected) => Ok(()),
        Some(class) => Err(EnrichError::Json {
            origin: url.to_owned(),
            at: "objectClassName".into(),
            message: format!(
                "{:?}, not {expected:?}: not the answer to this query",
                escape_text(class, 64)
            ),
        }),
        None => Err(EnrichError::Json {
            origin: url.to_owned(),
            at: "objectClassName".into(),
            message: format!("missing: not an RDAP {expected} object"),
        }),
    }
}

/// Reads an RDAP domain answer (RFC 9083 section 5.3). `fetched_at` is when it was
/// received.
pub fn parse_domain(
    url: &str,
    query: &str,
    value: &Value,
    fetched_at: DateTime<Utc>,
) -> Result<Registration, EnrichError> {
    check_class(url, value, "domain")?;
    let mut warnings = Vec::new();
    let domain = text_field(value, "ldhName", "", &mut warnings)
        .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_else(|| query.to_owned());
    let status = status_list(value, &mut warnings);

    let (mut created, mut expires, mut last_changed) = (None, None, None);
    for (i, event) in array_field(value, "events", MAX_ITEMS, &mut warnings)
        .iter()
        .enumerate()
    {
        let action = event
            .get("eventAction")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let slot = match action.to_ascii_lowercase().as_str() {
            "registration" => &mut created,
            "expiration" => &mut expires,
            "last changed" => &mut last_changed,
            _ => continue,
        };
        let Some(date) = event.get("eventDate").and_then(Value::as_str) else {
            warnings.push(format!("events[{i}].eventDate: missing or not text"));
            continue;
        };
        match parse_date(date) {
            Some(d) if slot.is_none() => *slot = Some(d),
            Some(_) => {}
            None => warnings.push(format!(
                "events[{i}].eventDate = {:?}: not a date",
                escape_text(date, 64)
            )),
        }
    }

    let (registrar, registrar_iana_id) = registrar(value, &mut warnings);

    let mut nameservers: Vec<String> = Vec::new();
    for (i, ns) in array_field(value, "nameservers", MAX_ITEMS, &mut warnings)
        .iter()
        .enumerate()
    {
        match text_field(ns, "ldhName", &format!("nameservers[{i}]."), &mut warnings) {
            Some(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if !nameservers.contains(&name) {
                    nameservers.push(name);
                }
            }
            None => warnings.push(format!("nameservers[{i}].ldhName: missing")),
        }
    }

    Ok(Registration {
        domain,
        source: RegistrationSource::Rdap,
        server: url.to_owned(),
        registrar,
        registrar_iana_id,
        status,
        created,
        expires,
        last_changed,
        nameservers,
        fetched_at,
        warnings,
    })
}

/// The registrar entity (role `registrar`, at the top or one level down): its vCard
/// `fn` (or its handle) and its IANA id.
fn registrar(value: &Value, warnings: &mut Vec<String>) -> (Option<String>, Option<u32>) {
    let top = array_field(value, "entities", MAX_ITEMS, warnings);
    let nested = top.iter().flat_map(|e| match e.get("entities") {
        Some(Value::Array(inner)) => &inner[..inner.len().min(MAX_ITEMS)],
        _ => &[],
    });
    let Some(entity) = top.iter().chain(nested).find(|e| {
        e.get("roles")
            .and_then(Value::as_array)
            .is_some_and(|roles| {
                roles.iter().take(MAX_ITEMS).any(|r| {
                    r.as_str()
                        .is_some_and(|r| r.eq_ignore_ascii_case("registrar"))
                })
            })
    }) else {
        return (None, None);
    };
    let name = vcard_fn(entity).or_else(|| {
        entity
            .get("handle")
            .and_then(Value::as_str)
            .map(|h| escape_text(h.trim(), MAX_TEXT))
    });
    let mut iana = None;
    if let Some(Value::Array(ids)) = entity.get("publicIds") {
        for id in ids.iter().take(MAX_ITEMS) {
            let kind = id.get("type").and_then(Value::as_str).unwrap_or_default();
            if !kind.eq_ignore_ascii_case("IANA Registrar ID") {
                continue;
            }
            let raw = match id.get("identifier") {
                Some(Value::String(s)) => s.trim().to_owned(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            match raw.parse::<u32>() {
                Ok(n) => iana = Some(n),
                Err(_) => warnings.push(format!(
                    "registrar publicIds identifier = {:?}: not an IANA id",
                    escape_text(&raw, 64)
                )),
            }
            break;
        }
    }
    (name, iana)
}

/// The `fn` property of an entity's jCard (`["vcard", [["fn", {}, "text", "Name"], …]]`).
fn vcard_fn(entity: &Value) -> Option<String> {
    let props = entity.get("vcardArray")?.as_array()?.get(1)?.as_array()?;
    props.iter().take(256).find_map(|p| {
        let p = p.as_array()?;
        if p.first()?.as_str()?.eq_ignore_ascii_case("fn") {
            let v = p.get(3)?.as_str()?.trim();
            (!v.is_empty()).then(|| escape_text(v, MAX_TEXT))
        } else {
            None
        }
    })
}

/// Reads an RDAP IP network answer (RFC 9083 section 5.4).
pub fn parse_ip(
    url: &str,
    query: IpAddr,
    value: &Value,
    fetched_at: DateTime<Utc>,
) -> Result<IpRegistration, EnrichError> {
    check_class(url, value, "ip network")?;
    let mut warnings = Vec::new();
    let address = |key: &str, warnings: &mut Vec<String>| -> Option<IpAddr> {
        let text = text_field(value, key, "", warnings)?;
        match text.parse::<IpAddr>() {
            Ok(ip) => Some(ip.to_canonical()),
            Err(_) => {
                warnings.push(format!("{key} = {text:?}: not an IP address"));
                None
            }
        }
    };
    let start_address = address("startAddress", &mut warnings);
    let end_address = address("endAddress", &mut warnings);
    if let (Some(start), Some(end)) = (start_address, end_address)
        && !(start <= query && query <= end)
    {
        warnings.push(format!(
            "the block {start} - {end} does not hold the address asked, {query}"
        ));
    }
    Ok(IpRegistration {
        query,
        source: RegistrationSource::Rdap,
        server: url.to_owned(),
        handle: text_field(value, "handle", "", &mut warnings),
        name: text_field(value, "name", "", &mut warnings),
        country: text_field(value, "country", "", &mut warnings),
        start_address,
        end_address,
        kind: text_field(value, "type", "", &mut warnings),
        parent_handle: text_field(value, "parentHandle", "", &mut warnings),
        status: status_list(value, &mut warnings),
        fetched_at,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_bootstrap_parses_and_answers() {
        let b = Bootstrap::builtin().expect("the built-in files parse");
        assert_eq!(
            b.domain_service("example.com"),
            Some("https://rdap.verisign.com/com/v1/")
        );
        assert_eq!(b.domain_service("example.de"), None);
        assert_eq!(
            b.ip_service("8.8.8.8".parse().expect("ip")),
            Some("https://rdap.arin.net/registry/")
        );
        assert_eq!(
            b.ip_service("2a00:1450::1".parse().expect("ip")),
            Some("https://rdap.db.ripe.net/")
        );
        assert_eq!(b.ip_service("198.18.0.1".parse().expect("ip")), None);
        assert!(b.file(BootstrapKind::Dns).is_some());
    }

    #[test]
    fn mixed_entries_are_refused() {
        let text = br#"{"publication":"2025-01-01T00:00:00Z","services":[[["com","10.0.0.0/8"],["https://rdap.example.test/"]]]}"#;
        let err = BootstrapFile::parse("mixed.json", text)
            .expect_err("mixed kinds")
            .to_string();
        assert!(err.contains("services[0][0][1]"), "{err}");
    }
}
