//! Context around the scanned targets (`--enrich`, and the network tables always): the
//! network (AS, organisation, country) of every address from the tables imported into the
//! history database, and — when lookups are asked for — the DNS records of each host
//! name and the registration of its domain (RDAP, WHOIS where a registry has none),
//! cached on disk for a day by default.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use portgate_enrich::{
    Bootstrap, DnsEvidence, DnsOptions, DnsResolver, Registration, RegistrationCache,
    RegistrationClient, RegistrationOptions, WhoisServers, ip_key, registrable_domain,
};
use portgate_model::{
    AddressNetwork, AddressRegistration, DnsRecords, DomainRegistration, NetworkOwnerInfo,
    ScanReport, TargetContext,
};
use portgate_store::Store;

use crate::Error;

/// How to enrich.
#[derive(Debug, Clone, Default)]
pub struct EnrichOptions {
    /// Look up DNS records and registrations (network calls) for every target. Without
    /// it only the imported network tables are read, and the targets of
    /// `lookup_targets`.
    pub lookups: bool,
    /// Targets (as given) to look up even without `lookups` (the manifest's assets with
    /// `enrich: true`).
    pub lookup_targets: Vec<String>,
    /// The DNS server to ask (else the system's resolver).
    pub dns_server: Option<SocketAddr>,
    /// RDAP bootstrap files (IANA's `dns.json`, `ipv4.json`, `ipv6.json` formats), each
    /// replacing the built-in one of its kind.
    pub rdap_bootstrap: Vec<PathBuf>,
    /// A WHOIS server table (`suffix server` lines) replacing the built-in one.
    pub whois_servers: Option<PathBuf>,
    /// Where registrations are cached [default: `$XDG_CACHE_HOME/portgate/registrations.json`,
    /// else `~/.cache/portgate/registrations.json`]; none at all when no home is known.
    pub cache_file: Option<PathBuf>,
    /// How long a cached registration is reused [default: one day].
    pub cache_ttl: Option<Duration>,
    /// Shortest time between two requests to one registration server [default: 1 s].
    pub per_server_interval: Option<Duration>,
}

impl EnrichOptions {
    /// Refuses tables that cannot be read before anything is scanned.
    pub fn check(&self) -> Result<(), Error> {
        self.registration_client().map(|_| ())
    }

    fn registration_client(&self) -> Result<RegistrationClient, Error> {
        let input = |e: portgate_enrich::EnrichError| Error::Input(e.to_string());
        let mut bootstrap = Bootstrap::builtin().map_err(input)?;
        for path in &self.rdap_bootstrap {
            bootstrap.load_path(path).map_err(input)?;
        }
        let whois = match &self.whois_servers {
            Some(path) => WhoisServers::from_path(path).map_err(input)?,
            None => WhoisServers::builtin().map_err(input)?,
        };
        let mut options = RegistrationOptions::default();
        if let Some(ttl) = self.cache_ttl {
            options.cache_ttl = ttl;
        }
        if let Some(interval) = self.per_server_interval {
            options.per_server_interval = interval;
        }
        RegistrationClient::new(bootstrap, whois, options).map_err(input)
    }

    fn cache_path(&self) -> Option<PathBuf> {
        self.cache_file.clone().or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .filter(|v| !v.is_empty())
                        .map(|h| PathBuf::from(h).join(".cache"))
                })?;
            Some(base.join("portgate").join("registrations.json"))
        })
    }
}

/// Adds what is known around `report`'s targets: the network of every address when
/// `store` holds network tables, and with `options.lookups` the DNS records and domain
/// registration of every host-name target. A lookup that fails is a note in the report,
/// not an error; a table or cache file that cannot be read is an error.
pub async fn enrich(
    report: &mut ScanReport,
    store: Option<&Store>,
    options: &EnrichOptions,
) -> Result<(), Error> {
    let mut enrichment = report.enrichment.take().unwrap_or_default();
    if let Some(store) = store {
        enrichment.networks = networks(report, store).await?;
    }
    let chosen =
        |target: &str| options.lookups || options.lookup_targets.iter().any(|t| t == target);
    if options.lookups || !options.lookup_targets.is_empty() {
        let client = options.registration_client()?;
        let cache_path = options.cache_path();
        if let Some(path) = &cache_path {
            let ttl = options.cache_ttl.unwrap_or(Duration::from_secs(86_400));
            client.set_cache(
                RegistrationCache::load(path, ttl).map_err(|e| Error::Input(e.to_string()))?,
            );
        }
        enrichment.targets = lookups(report, options, &client, &chosen).await?;
        address_registrations(report, &client, &chosen, &mut enrichment.networks).await;
        if let Some(path) = &cache_path {
            save_cache(&client.cache(), path)?;
        }
    }
    if !enrichment.networks.is_empty() || !enrichment.targets.is_empty() {
        report.enrichment = Some(enrichment);
    }
    Ok(())
}

/// The RDAP registration of the block of every address of a chosen target whose block
/// has an RDAP service in the bootstrap (loopback, private and documentation ranges have
/// none).
async fn address_registrations(
    report: &ScanReport,
    client: &RegistrationClient,
    chosen: &(dyn Fn(&str) -> bool + Sync),
    networks: &mut Vec<AddressNetwork>,
) {
    for host in &report.hosts {
        if !chosen(&host.target) || !client.has_ip_service(host.ip) {
            continue;
        }
        let at = match networks.iter().position(|n| n.ip == host.ip) {
            Some(i) => i,
            None => {
                networks.push(AddressNetwork {
                    ip: host.ip,
                    owners: Vec::new(),
                    registration: None,
                    notes: Vec::new(),
                });
                networks.len() - 1
            }
        };
        if networks[at].registration.is_some() {
            continue;
        }
        match client.lookup_ip(host.ip).await {
            Ok(r) => {
                networks[at].registration = Some(AddressRegistration {
                    server: r.server,
                    handle: r.handle,
                    name: r.name,
                    country: r.country,
                    range: match (r.start_address, r.end_address) {
                        (Some(a), Some(b)) => Some(format!("{a} - {b}")),
                        _ => None,
                    },
                    fetched_at: r.fetched_at,
                });
            }
            Err(e) => networks[at].notes.push(format!("registration: {e}")),
        }
    }
}

async fn networks(report: &ScanReport, store: &Store) -> Result<Vec<AddressNetwork>, Error> {
    let mut ips: Vec<IpAddr> = Vec::new();
    let mut seen: HashSet<IpAddr> = HashSet::new();
    for host in &report.hosts {
        if seen.insert(host.ip) {
            ips.push(host.ip);
        }
    }
    let keys: Vec<[u8; 16]> = ips.iter().map(|ip| ip_key(*ip)).collect();
    let Some(owners) = store.network_owners(&keys).await.map_err(Error::history)? else {
        return Ok(Vec::new());
    };
    Ok(ips
        .into_iter()
        .zip(owners)
        .map(|(ip, owners)| AddressNetwork {
            registration: None,
            notes: Vec::new(),
            ip,
            owners: owners
                .into_iter()
                .map(|o| NetworkOwnerInfo {
                    asns: o.asns,
                    org: o.org,
                    country: o.country,
                    dataset: o.dataset,
                    date: o.date,
                })
                .collect(),
        })
        .collect())
}

async fn lookups(
    report: &ScanReport,
    options: &EnrichOptions,
    client: &RegistrationClient,
    chosen: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<TargetContext>, Error> {
    let mut names: Vec<String> = Vec::new();
    for t in &report.targets {
        let host_name = t.input.parse::<IpAddr>().is_err() && !t.input.contains('/');
        if host_name && chosen(&t.input) && !names.contains(&t.input) {
            names.push(t.input.clone());
        }
    }
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let resolver = DnsResolver::new(DnsOptions {
        server: options.dns_server,
        ..DnsOptions::default()
    })
    .map_err(|e| Error::Input(e.to_string()))?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let mut ctx = TargetContext {
            name: name.clone(),
            ..TargetContext::default()
        };
        match resolver.evidence(&name).await {
            Ok(e) => ctx.dns = Some(dns_records(e)),
            Err(e) => ctx.notes.push(format!("DNS: {e}")),
        }
        match registrable_domain(&name) {
            Ok(domain) => {
                ctx.registrable_domain = Some(domain);
                match client.lookup_domain(&name).await {
                    Ok(r) => ctx.registration = Some(registration(r)),
                    Err(e) => ctx.notes.push(format!("registration: {e}")),
                }
            }
            Err(e) => ctx.notes.push(format!("registration: {e}")),
        }
        out.push(ctx);
    }
    Ok(out)
}

fn save_cache(cache: &RegistrationCache, path: &Path) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Input(format!(
                "cannot create the cache directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    cache.save(path).map_err(|e| Error::Input(e.to_string()))
}

fn dns_records(e: DnsEvidence) -> DnsRecords {
    DnsRecords {
        resolver: e.resolver,
        cname_chain: e.cname_chain,
        a: e.a.iter().map(ToString::to_string).collect(),
        aaaa: e.aaaa.iter().map(ToString::to_string).collect(),
        mx: e
            .mx
            .iter()
            .map(|m| format!("{} {}", m.preference, m.exchange))
            .collect(),
        ns: e.ns,
        txt: e.txt,
        caa: e.caa,
        errors: e.errors,
    }
}

fn registration(r: Registration) -> DomainRegistration {
    let now = Utc::now();
    DomainRegistration {
        days_left: r.expires.map(|e| (e - now).num_days()),
        domain: r.domain,
        source: match r.source {
            portgate_enrich::RegistrationSource::Rdap => "rdap".into(),
            portgate_enrich::RegistrationSource::Whois => "whois".into(),
        },
        server: r.server,
        registrar: r.registrar,
        status: r.status,
        created: r.created,
        expires: r.expires,
        nameservers: r.nameservers,
        fetched_at: r.fetched_at,
    }
}
