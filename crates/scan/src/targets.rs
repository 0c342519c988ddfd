//! Turning what the user wrote into addresses: CIDR expansion and DNS resolution
//! (every A and AAAA record, with the CNAME chain kept as evidence).

use crate::{ScanConfig, ScanError};
use futures::stream::{self, StreamExt};
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfigGroup, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{ResolveError, TokioResolver};
use portgate_model::{TargetReport, TargetSpec};
use std::collections::HashSet;
use std::net::IpAddr;

/// One address to probe and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostEntry {
    pub(crate) target: String,
    pub(crate) hostname: Option<String>,
    pub(crate) ip: IpAddr,
}

/// Refuses targets that cover more addresses than the configured limit, before any
/// packet is sent or name looked up.
pub(crate) fn check_limits(targets: &[TargetSpec], config: &ScanConfig) -> Result<(), ScanError> {
    if targets.is_empty() {
        return Err(ScanError::NoTargets);
    }
    let mut total: u128 = 0;
    for target in targets {
        let count = target.address_count();
        if count > u128::from(config.max_addresses) {
            return Err(ScanError::TooManyAddresses {
                target: target.to_string(),
                count,
                limit: config.max_addresses,
            });
        }
        total = total.saturating_add(count);
    }
    if total > u128::from(config.max_addresses) {
        return Err(ScanError::TooManyAddresses {
            target: format!("all {} targets together", targets.len()),
            count: total,
            limit: config.max_addresses,
        });
    }
    Ok(())
}

/// Resolves and expands every target. A name that does not resolve becomes an error on
/// its own [`TargetReport`]; the other targets go on. Each address is probed once, for
/// the first target that names it.
pub(crate) async fn resolve(
    targets: &[TargetSpec],
    config: &ScanConfig,
) -> Result<(Vec<TargetReport>, Vec<HostEntry>), ScanError> {
    let needs_dns = targets.iter().any(|t| matches!(t, TargetSpec::Hostname(_)));
    let resolver = if needs_dns {
        Some(build_resolver(config)?)
    } else {
        None
    };
    let resolver = resolver.as_ref();
    // Owned targets: the future stays `Send` for any caller (a server's worker task).
    let resolved: Vec<(TargetReport, Vec<Address>)> = stream::iter(targets.iter().cloned())
        .map(|target| async move { resolve_one(&target, resolver).await })
        .buffered(16)
        .collect()
        .await;

    let mut seen = HashSet::new();
    let mut reports = Vec::with_capacity(resolved.len());
    let mut hosts = Vec::new();
    for (report, addresses) in resolved {
        for (ip, hostname) in addresses {
            if seen.insert(ip) {
                hosts.push(HostEntry {
                    target: report.input.clone(),
                    hostname,
                    ip,
                });
            }
        }
        reports.push(report);
    }
    Ok((reports, hosts))
}

/// An address and the name it was resolved from.
type Address = (IpAddr, Option<String>);

async fn resolve_one(
    target: &TargetSpec,
    resolver: Option<&TokioResolver>,
) -> (TargetReport, Vec<Address>) {
    let mut report = TargetReport {
        input: target.to_string(),
        kind: target.kind().to_string(),
        addresses: Vec::new(),
        address_count: 0,
        cname_chain: Vec::new(),
        error: None,
    };
    let addresses: Vec<Address> = match target {
        TargetSpec::Ip(ip) => vec![(ip.to_canonical(), None)],
        TargetSpec::Cidr(net) => net.hosts_or_all().map(|ip| (ip, None)).collect(),
        TargetSpec::Hostname(name) => match resolver {
            None => Vec::new(),
            Some(resolver) => match lookup(resolver, name).await {
                Ok((ips, chain)) => {
                    report.cname_chain = chain;
                    // A name may answer with an IPv4-mapped IPv6 address: probe the IPv4
                    // address it stands for (a SYN to the mapped form finds nothing).
                    ips.into_iter()
                        .map(|ip| (ip.to_canonical(), Some(name.clone())))
                        .collect()
                }
                Err(message) => {
                    report.error = Some(message);
                    Vec::new()
                }
            },
        },
    };
    report.address_count = addresses.len() as u64;
    // A range lists its count, not every address.
    if !matches!(target, TargetSpec::Cidr(_)) {
        report.addresses = addresses.iter().map(|(ip, _)| *ip).collect();
    }
    (report, addresses)
}

/// Addresses a CIDR range stands for: every address of a /31, /32, /127 or /128, the
/// usable hosts otherwise for IPv4 (no network or broadcast address), all for IPv6.
trait HostsOrAll {
    fn hosts_or_all(&self) -> Box<dyn Iterator<Item = IpAddr> + '_>;
}

impl HostsOrAll for ipnet::IpNet {
    fn hosts_or_all(&self) -> Box<dyn Iterator<Item = IpAddr> + '_> {
        match self {
            ipnet::IpNet::V4(net) if net.prefix_len() >= 31 => Box::new(
                net.subnets(32)
                    .into_iter()
                    .flatten()
                    .map(|n| IpAddr::V4(n.addr())),
            ),
            ipnet::IpNet::V4(net) => Box::new(net.hosts().map(IpAddr::V4)),
            ipnet::IpNet::V6(net) => Box::new(
                net.subnets(128)
                    .into_iter()
                    .flatten()
                    .map(|n| IpAddr::V6(n.addr())),
            ),
        }
    }
}

fn build_resolver(config: &ScanConfig) -> Result<TokioResolver, ScanError> {
    let (resolver_config, mut options) = match config.dns_server {
        Some(server) => (
            ResolverConfig::from_parts(
                None,
                Vec::new(),
                NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true),
            ),
            ResolverOpts::default(),
        ),
        None => hickory_resolver::system_conf::read_system_conf().unwrap_or_else(|_| {
            // No resolv.conf: the hosts file still answers.
            (
                ResolverConfig::from_parts(None, Vec::new(), NameServerConfigGroup::new()),
                ResolverOpts::default(),
            )
        }),
    };
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    options.timeout = config.dns_timeout;
    options.attempts = 1;
    options.use_hosts_file = if config.dns_server.is_some() {
        ResolveHosts::Never
    } else {
        ResolveHosts::Always
    };
    Ok(
        TokioResolver::builder_with_config(resolver_config, TokioConnectionProvider::default())
            .with_options(options)
            .build(),
    )
}

async fn lookup(
    resolver: &TokioResolver,
    name: &str,
) -> Result<(Vec<IpAddr>, Vec<String>), String> {
    // A fully qualified query: the name is what the user wrote, not a search-list stem.
    let fqdn = format!("{name}.");
    let lookup = resolver
        .lookup_ip(fqdn.as_str())
        .await
        .map_err(|e| describe_error(name, &e))?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for ip in lookup.iter() {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let mut chain: Vec<String> = Vec::new();
    for record in lookup.as_lookup().records() {
        if let RData::CNAME(target) = record.data() {
            let target = target.0.to_utf8();
            let target = target.trim_end_matches('.').to_string();
            if !chain.contains(&target) {
                chain.push(target);
            }
        }
    }
    if ips.is_empty() {
        return Err(format!("\"{name}\" has no A or AAAA record"));
    }
    Ok((ips, chain))
}

fn describe_error(name: &str, error: &ResolveError) -> String {
    if error.is_nx_domain() {
        format!("\"{name}\" does not exist (NXDOMAIN)")
    } else if error.is_no_records_found() {
        format!("\"{name}\" has no A or AAAA record")
    } else {
        format!("could not resolve \"{name}\": {error}")
    }
}
