//! DNS evidence of a host name: its CNAME chain and its A, AAAA, MX, NS, TXT and CAA
//! records, as the system's resolver or a given name server answers them.
//!
//! A record type the name has none of is an empty list, not an error; what did fail (a
//! timeout, a refusal, a name that does not exist) is said in
//! [`DnsEvidence::errors`], one line per query, and the other types are still there.
//! Every query has its own time limit ([`DnsOptions::query_timeout`], 2 s by default)
//! and all of them together one more ([`DnsOptions::deadline`], 10 s by default).
//!
//! Records are hostile input: at most [`DnsOptions::max_records`] records of each type
//! are kept (64 by default), each TXT record at most [`DnsOptions::max_txt_bytes`]
//! bytes (1,024 by default), and every text is escaped ([`crate::text`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), portgate_enrich::EnrichError> {
//! use portgate_enrich::dns::{DnsOptions, DnsResolver};
//!
//! let options = DnsOptions {
//!     server: Some("127.0.0.1:5353".parse().expect("an address")),
//!     ..DnsOptions::default()
//! };
//! let evidence = DnsResolver::new(options)?.evidence("www.example.test").await?;
//! println!("{:?} via {}", evidence.a, evidence.resolver);
//! # Ok(())
//! # }
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfigGroup, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{ResolveError, TokioResolver};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::{EnrichError, show_duration};
use crate::text::{escape_bytes, escape_text};

/// Most CNAME hops followed.
const MAX_CNAME_HOPS: usize = 16;
/// Longest name kept from a record, in characters (a DNS name has at most 253).
const MAX_NAME_CHARS: usize = 300;

/// How DNS evidence is gathered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsOptions {
    /// The name server to ask (over UDP, and TCP when an answer is truncated); `None`
    /// for the system's configuration (`/etc/resolv.conf` and the hosts file).
    pub server: Option<SocketAddr>,
    /// Time limit of one query: 2 s by default.
    pub query_timeout: Duration,
    /// Time limit of all the queries for one name together: 10 s by default.
    pub deadline: Duration,
    /// Most records kept of each type: 64 by default.
    pub max_records: usize,
    /// Longest TXT record kept, in bytes (its character-strings joined); longer ones are
    /// cut and marked with `…`: 1,024 by default.
    pub max_txt_bytes: usize,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            server: None,
            query_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
            max_records: 64,
            max_txt_bytes: 1024,
        }
    }
}

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MxRecord {
    /// The preference (lower is preferred).
    pub preference: u16,
    /// The mail exchanger's name, without the final dot.
    pub exchange: String,
}

/// What the DNS says about one name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsEvidence {
    /// The name asked, in its ASCII (IDNA) form, without the final dot.
    pub name: String,
    /// The resolver that answered: `127.0.0.1:5353`, or `system`.
    pub resolver: String,
    /// The CNAME chain from the name: each hop's target, in order (empty when the name
    /// is no alias).
    pub cname_chain: Vec<String>,
    /// IPv4 addresses (sorted).
    pub a: Vec<Ipv4Addr>,
    /// IPv6 addresses (sorted).
    pub aaaa: Vec<Ipv6Addr>,
    /// Mail exchangers (sorted by preference, then name).
    pub mx: Vec<MxRecord>,
    /// Name servers (sorted).
    pub ns: Vec<String>,
    /// TXT records, each record's character-strings joined, escaped (sorted).
    pub txt: Vec<String>,
    /// CAA records as `flags tag "value"`, the value escaped (sorted).
    pub caa: Vec<String>,
    /// What failed, one line per query (`MX: no answer within 2s`); empty when every
    /// query was answered, even with no record.
    pub errors: Vec<String>,
}

/// A resolver for DNS evidence, set up once and used for many names.
pub struct DnsResolver {
    resolver: TokioResolver,
    options: DnsOptions,
}

impl std::fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsResolver")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl DnsResolver {
    /// A resolver asking `options.server`, or the system's name servers.
    ///
    /// Without a readable system configuration, only the hosts file answers.
    pub fn new(options: DnsOptions) -> Result<DnsResolver, EnrichError> {
        if options.query_timeout.is_zero() || options.deadline.is_zero() {
            return Err(EnrichError::Resolver {
                message: "the query timeout and the deadline must be longer than zero".into(),
            });
        }
        let (config, mut opts) = match options.server {
            Some(server) => (
                ResolverConfig::from_parts(
                    None,
                    Vec::new(),
                    NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true),
                ),
                ResolverOpts::default(),
            ),
            None => hickory_resolver::system_conf::read_system_conf().unwrap_or_else(|_| {
                (
                    ResolverConfig::from_parts(None, Vec::new(), NameServerConfigGroup::new()),
                    ResolverOpts::default(),
                )
            }),
        };
        // The time limit is this crate's (so its message is the same whatever the
        // transport); the resolver's own one only backs it up.
        opts.timeout = options.query_timeout + Duration::from_millis(250);
        opts.attempts = 1;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.use_hosts_file = if options.server.is_some() {
            ResolveHosts::Never
        } else {
            ResolveHosts::Auto
        };
        // Evidence is what the server says now, not what an earlier answer said.
        opts.cache_size = 0;
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();
        Ok(DnsResolver { resolver, options })
    }

    /// The options this resolver was made with.
    pub fn options(&self) -> &DnsOptions {
        &self.options
    }

    /// Gathers the evidence of `name` (a host name; Unicode names are taken in their
    /// IDNA form; a final dot is allowed). Only an invalid name is an error: failed
    /// queries are listed in [`DnsEvidence::errors`].
    pub async fn evidence(&self, name: &str) -> Result<DnsEvidence, EnrichError> {
        let ascii = crate::registration::host_to_ascii(name)?;
        let fqdn = format!("{ascii}.");
        let deadline = Instant::now() + self.options.deadline;
        let mut evidence = DnsEvidence {
            name: ascii.clone(),
            resolver: self
                .options
                .server
                .map_or_else(|| "system".to_owned(), |s| s.to_string()),
            ..DnsEvidence::default()
        };

        let (a, aaaa, mx, ns, txt, caa, chain) = tokio::join!(
            self.query(&fqdn, RecordType::A, deadline),
            self.query(&fqdn, RecordType::AAAA, deadline),
            self.query(&fqdn, RecordType::MX, deadline),
            self.query(&fqdn, RecordType::NS, deadline),
            self.query(&fqdn, RecordType::TXT, deadline),
            self.query(&fqdn, RecordType::CAA, deadline),
            self.cname_chain(&fqdn, deadline),
        );
        let max = self.options.max_records;
        let mut errors = Vec::new();
        evidence.cname_chain = chain.unwrap_or_else(|e| {
            errors.push(e);
            Vec::new()
        });
        for (kind, result) in [
            ("A", a),
            ("AAAA", aaaa),
            ("MX", mx),
            ("NS", ns),
            ("TXT", txt),
            ("CAA", caa),
        ] {
            let records = match result {
                Ok(records) => records,
                Err(e) => {
                    errors.push(format!("{kind}: {e}"));
                    continue;
                }
            };
            for data in records {
                match data {
                    RData::A(a) if kind == "A" => evidence.a.push(a.0),
                    RData::AAAA(a) if kind == "AAAA" => evidence.aaaa.push(a.0),
                    RData::MX(mx) if kind == "MX" => evidence.mx.push(MxRecord {
                        preference: mx.preference(),
                        exchange: show_name(mx.exchange()),
                    }),
                    RData::NS(ns) if kind == "NS" => evidence.ns.push(show_name(&ns.0)),
                    RData::TXT(txt) if kind == "TXT" => {
                        let joined: Vec<u8> = txt.iter().flat_map(|s| s.iter().copied()).collect();
                        evidence
                            .txt
                            .push(escape_bytes(&joined, self.options.max_txt_bytes));
                    }
                    RData::CAA(caa) if kind == "CAA" => evidence.caa.push(format!(
                        "{} {} \"{}\"",
                        caa.flags(),
                        escape_text(caa.tag().as_str(), 64),
                        escape_bytes(caa.raw_value(), self.options.max_txt_bytes)
                    )),
                    // CNAMEs of the chain, and anything a server added.
                    _ => {}
                }
            }
        }
        // A name that does not exist is said once, not once per type.
        if let Some(nx) = errors.iter().find(|e| e.ends_with("(NXDOMAIN)")).cloned() {
            errors.retain(|e| !e.ends_with("(NXDOMAIN)"));
            let plain = nx.split_once(": ").map_or(nx.as_str(), |(_, rest)| rest);
            errors.insert(0, plain.to_owned());
        }
        evidence.errors = errors;
        sort_cap(&mut evidence.a, max);
        sort_cap(&mut evidence.aaaa, max);
        sort_cap(&mut evidence.mx, max);
        sort_cap(&mut evidence.ns, max);
        sort_cap(&mut evidence.txt, max);
        sort_cap(&mut evidence.caa, max);
        Ok(evidence)
    }

    /// The records of one type; no record is an empty list.
    async fn query(
        &self,
        fqdn: &str,
        kind: RecordType,
        deadline: Instant,
    ) -> Result<Vec<RData>, String> {
        let now = Instant::now();
        let (limit, what) = if now + self.options.query_timeout <= deadline {
            (
                now + self.options.query_timeout,
                format!("within {}", show_duration(self.options.query_timeout)),
            )
        } else {
            (
                deadline,
                format!(
                    "before the deadline of {} for the name",
                    show_duration(self.options.deadline)
                ),
            )
        };
        match tokio::time::timeout_at(limit, self.resolver.lookup(fqdn, kind)).await {
            Err(_) => Err(format!("no answer {what}")),
            Ok(Err(e)) if e.is_no_records_found() && !e.is_nx_domain() => Ok(Vec::new()),
            Ok(Err(e)) => Err(describe(fqdn, &e)),
            Ok(Ok(lookup)) => Ok(lookup
                .record_iter()
                .filter(|r| r.record_type() == kind)
                .map(|r| r.data().clone())
                .take(self.options.max_records.saturating_mul(4))
                .collect()),
        }
    }

    /// Follows CNAME records from `fqdn`, one query per hop.
    async fn cname_chain(&self, fqdn: &str, deadline: Instant) -> Result<Vec<String>, String> {
        let mut chain: Vec<String> = Vec::new();
        let mut current = fqdn.to_owned();
        for _ in 0..MAX_CNAME_HOPS {
            let records = match self.query(&current, RecordType::CNAME, deadline).await {
                Ok(records) => records,
                // The other queries report a missing name.
                Err(e) if e.ends_with("(NXDOMAIN)") => return Ok(chain),
                Err(e) => return Err(format!("CNAME: {e}")),
            };
            // A CNAME answer may carry the whole chain; take the record of this name.
            let target = records.iter().find_map(|r| match r {
                RData::CNAME(c) => Some(c.0.clone()),
                _ => None,
            });
            let Some(target) = target else {
                return Ok(chain);
            };
            let shown = show_name(&target);
            if chain.contains(&shown) || shown == fqdn.trim_end_matches('.') {
                return Err(format!("CNAME: a loop at {shown}"));
            }
            chain.push(shown);
            current = target.to_ascii();
            if !current.ends_with('.') {
                current.push('.');
            }
        }
        Err(format!("CNAME: more than {MAX_CNAME_HOPS} hops"))
    }
}

/// Gathers the DNS evidence of `name` with a resolver made for this one call.
pub async fn evidence(name: &str, options: &DnsOptions) -> Result<DnsEvidence, EnrichError> {
    DnsResolver::new(options.clone())?.evidence(name).await
}

fn show_name(name: &hickory_resolver::proto::rr::Name) -> String {
    let ascii = name.to_ascii();
    escape_text(ascii.trim_end_matches('.'), MAX_NAME_CHARS)
}

fn describe(fqdn: &str, error: &ResolveError) -> String {
    let name = fqdn.trim_end_matches('.');
    if error.is_nx_domain() {
        format!("{name} does not exist (NXDOMAIN)")
    } else {
        escape_text(&error.to_string(), 300)
    }
}

fn sort_cap<T: Ord>(list: &mut Vec<T>, max: usize) {
    list.sort();
    list.dedup();
    list.truncate(max);
}

impl DnsEvidence {
    /// Every address of the name, IPv4 first.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.a
            .iter()
            .map(|a| IpAddr::V4(*a))
            .chain(self.aaaa.iter().map(|a| IpAddr::V6(*a)))
            .collect()
    }
}
