//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};
use portgate_model::PortSpec;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What is reachable on the addresses you own, whether it should be, and what is behind it.
#[derive(Debug, Parser)]
#[command(name = "portgate", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Settings from this YAML file: a section per command (`scan:`, `check:`, `serve:`, …)
    /// whose keys are the long flags' names with `_` [default:
    /// $XDG_CONFIG_HOME/portgate/config.yaml, else ~/.config/portgate/config.yaml, when
    /// present]. A flag wins over its environment variable, which wins over the file.
    #[arg(long, global = true, value_name = "FILE", env = "PORTGATE_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// Print each setting of the command, its value and where it came from (flag, env,
    /// file or default), and exit.
    #[arg(long, global = true)]
    pub(crate) print_config: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Scan TCP and UDP ports of hosts, addresses and ranges.
    ///
    /// Exit status: 0 when the scan completed, 2 on a usage or input error, 3 when the scan
    /// could not complete (a target did not resolve, or the deadline was reached).
    Scan(ScanArgs),
    /// Scan the targets of a manifest and check them against it: the CI gate.
    ///
    /// With --db, --save or $PORTGATE_DB, each target is compared with its last scan in
    /// the history (changed service, version or certificate: a warning), and the scan and
    /// the findings are saved there with the manifest's git revision.
    ///
    /// Exit status: 0 pass (warnings allowed; always in monitor mode), 1 policy failure,
    /// 2 manifest or usage error (including a history database that cannot be opened),
    /// 3 the scan could not complete, or the check could not be saved to the history.
    Check(crate::check::CheckArgs),
    /// Start a manifest from today's state.
    Baseline(crate::baseline::BaselineArgs),
    /// The manifest format.
    Manifest(crate::baseline::ManifestArgs),
    /// What listens on this host: process, user and binding of every listening socket;
    /// tunnels; this host against a scan of it from outside.
    ///
    /// Exit status: 0 pass (always without --expect), 1 a finding at or above --fail-on
    /// with --expect, 2 usage or input error, 3 the socket tables could not be read.
    Audit(crate::audit::AuditArgs),
    /// A target's exposure timeline from the scan history: open ports per scan, what
    /// opened (+) and closed (-) since the scan before.
    History(crate::history::HistoryArgs),
    /// What changed between two stored scans, or on a target over a period (with flap
    /// control: changes not yet confirmed are shown as pending).
    Diff(crate::history::DiffArgs),
    /// Maintain the history database: prune old scans, export to JSON lines.
    Db(crate::history::DbArgs),
    /// Offline data for scans and checks: vulnerability feeds (NVD, OSV), kept in the
    /// history database. With it, `scan --detect --db` and `check` list the known
    /// vulnerabilities of every detected version.
    Data(crate::data::DataArgs),
    /// Shell completions (bash, zsh, fish) on standard output.
    Completions(crate::docs::CompletionsArgs),
    /// Write the manual pages (portgate.1 and one per subcommand) to a directory.
    Man(crate::docs::ManArgs),
    /// Store a scan made elsewhere in the history: nmap's XML (-oX), masscan's JSON (-oJ)
    /// or list (-oL), or a portgate JSON report (the format is recognised). Later checks
    /// and `history`/`diff` see it like a scan made here.
    ///
    /// Exit status: 0 stored, 2 an unreadable file or history database.
    Import(crate::history::ImportArgs),
    /// Run the scan service: an HTTP API (scan ids, a synchronous port check) with API
    /// keys and an authorised scope, and the workers that run its scans.
    Serve(crate::serve::ServeArgs),
    /// The scan service's API keys: create, list, revoke.
    Keys(crate::serve::KeysArgs),
    /// Acknowledge a finding of the service's scheduled checks (it stops escalating and is
    /// not sent again until it is resolved and reopened).
    Ack(crate::serve::AckArgs),
    /// Maintenance windows of the service: findings raised inside one are kept, marked
    /// suppressed and told in one digest when it closes.
    Window(crate::serve::WindowArgs),
}

/// The command line's definition: the arguments of every command, with their environment
/// variables.
pub(crate) fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns for people.
    Table,
    /// Versioned JSON (schema portgate.scan.v1).
    Json,
    /// nmap's XML output format (for ndiff, DefectDojo, Faraday, IVRE, Metasploit).
    NmapXml,
}

#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// Hostnames (every A and AAAA record is scanned), IPv4 or IPv6 addresses, CIDR ranges.
    #[arg(value_name = "TARGET")]
    pub(crate) targets: Vec<String>,

    /// Read targets from FILE (also `-iL FILE`): one or more per line, `#` starts a comment.
    #[arg(long = "input-list", value_name = "FILE")]
    pub(crate) input_list: Vec<PathBuf>,

    /// Ports: 22,80,443  8000-8100  1024-  -  all  top100  top1000  T:22,U:53.
    #[arg(
        short = 'p',
        long,
        value_name = "PORTS",
        default_value = "top1000",
        allow_hyphen_values = true,
        env = "PORTGATE_PORTS"
    )]
    pub(crate) ports: PortSpec,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table, env = "PORTGATE_SCAN_OUTPUT")]
    pub(crate) format: Format,

    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "PATH")]
    pub(crate) output_file: Option<PathBuf>,

    /// List only open ports (the others are still counted).
    #[arg(long, conflicts_with = "all_ports")]
    pub(crate) open: bool,

    /// List every port; by default a state with more than 25 ports on a host is summarised.
    #[arg(long)]
    pub(crate) all_ports: bool,

    /// Probe TCP with raw SYNs (the default when raw sockets are permitted: root or
    /// CAP_NET_RAW). Without the privilege, falls back to --connect with a notice.
    #[arg(long, conflicts_with = "connect")]
    pub(crate) syn: bool,

    /// Probe TCP with full handshakes through the operating system (needs no privilege).
    #[arg(long)]
    pub(crate) connect: bool,

    /// Confirm every port a SYN scan finds open with a full handshake before reporting it.
    #[arg(long)]
    pub(crate) verify: bool,

    /// Find out what answers on every open TCP port: service, product, version, with the
    /// answer kept as evidence (probes from the built-in probe database).
    #[arg(long)]
    pub(crate) detect: bool,

    /// Add the probes of this file to the built-in probe database (same format as
    /// crates/detect/data/probes.toml; a probe with a built-in's name replaces it).
    #[arg(long, value_name = "FILE", requires = "detect")]
    pub(crate) probes: Option<PathBuf>,

    /// Verify TLS certificates against the CA certificates of this PEM file instead of the
    /// system's trust roots (with --detect).
    #[arg(long = "ca", value_name = "FILE", requires = "detect")]
    pub(crate) ca_file: Option<PathBuf>,

    /// Add the applications of this file to the built-in application database (same format
    /// as crates/detect/data/apps.toml; an application with a built-in's id replaces it).
    #[arg(long, value_name = "FILE", requires = "detect")]
    pub(crate) apps: Option<PathBuf>,

    /// Try the vendors' documented default logins (e.g. RabbitMQ guest/guest, Grafana
    /// admin/admin, Tomcat manager tomcat/tomcat) on the management interfaces found, as
    /// HTTP Basic; every attempt is recorded. Only for your own assets.
    #[arg(long, requires = "detect")]
    pub(crate) try_default_credentials: bool,

    /// Name services without asking HTTP ports for their application (no fingerprint or
    /// exposure requests beyond the one `GET /` of the HTTP inspection).
    #[arg(long, requires = "detect", conflicts_with_all = ["apps", "try_default_credentials"])]
    pub(crate) no_app_checks: bool,

    /// Retries of an unanswered port (a host that shows loss gets more).
    #[arg(long, default_value_t = 1, value_name = "N", env = "PORTGATE_RETRIES")]
    pub(crate) retries: u8,

    /// Shortest wait for an answer, whatever the measured round trip.
    #[arg(long, value_parser = parse_duration, default_value = "100ms", value_name = "DURATION", env = "PORTGATE_MIN_RTT_TIMEOUT")]
    pub(crate) min_rtt_timeout: Duration,

    /// Longest wait for an answer.
    #[arg(long, value_parser = parse_duration, default_value = "3s", value_name = "DURATION", env = "PORTGATE_MAX_RTT_TIMEOUT")]
    pub(crate) max_rtt_timeout: Duration,

    /// Wait before any round trip has been measured.
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "DURATION", env = "PORTGATE_INITIAL_RTT_TIMEOUT")]
    pub(crate) initial_rtt_timeout: Duration,

    /// Ceiling of attempts in flight at once [default: 8192, less if the open-file limit is lower].
    #[arg(long, value_name = "N", env = "PORTGATE_MAX_IN_FLIGHT")]
    pub(crate) max_in_flight: Option<usize>,

    /// Attempts in flight to one address at most [default: the in-flight ceiling].
    #[arg(long, value_name = "N", env = "PORTGATE_HOST_CONCURRENCY")]
    pub(crate) host_concurrency: Option<usize>,

    /// Probes per second across the scan [default: unlimited].
    #[arg(long, value_name = "PER_SECOND", env = "PORTGATE_SCAN_RATE")]
    pub(crate) rate: Option<std::num::NonZeroU32>,

    /// Stop after this long and report the scan as incomplete (exit 3), e.g. 30s, 5m.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", env = "PORTGATE_DEADLINE")]
    pub(crate) deadline: Option<Duration>,

    #[command(flatten)]
    pub(crate) remote: crate::remote::ServerArgs,

    /// Refuse scans covering more addresses than this.
    #[arg(long, default_value_t = portgate_scan::DEFAULT_MAX_ADDRESSES, value_name = "N", env = "PORTGATE_MAX_HOSTS")]
    pub(crate) max_hosts: u64,

    /// Resolve names with this DNS server (IP or IP:PORT) instead of the system's (also
    /// for the DNS records of --enrich).
    #[arg(long, value_parser = parse_dns_server, value_name = "ADDR", env = "PORTGATE_DNS_SERVER")]
    pub(crate) dns_server: Option<SocketAddr>,

    #[command(flatten)]
    pub(crate) enrich: EnrichArgs,

    /// Seed of the random probe order, to repeat a scan's order exactly.
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u64>,

    /// Never draw a progress bar (it is drawn only when standard error is a terminal).
    #[arg(long, env = "PORTGATE_NO_PROGRESS")]
    pub(crate) no_progress: bool,

    /// Save the scan to this history database: a SQLite file (created on first use) or a
    /// postgres:// URL. When $PORTGATE_DB is set, every scan is saved there.
    #[arg(long, value_name = "PATH|URL")]
    pub(crate) db: Option<String>,

    /// Save the scan to the history database: $PORTGATE_DB, else
    /// $XDG_DATA_HOME/portgate/history.db, else ~/.local/share/portgate/history.db.
    #[arg(long, conflicts_with = "db")]
    pub(crate) save: bool,
}

/// The one duration parser of every flag: `250ms`, `2s`, `5m`, `12h`, `7d`, `2w`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("\"{text}\" is not a duration like 250ms, 90s, 30m, 12h or 7d: {e}"))
}

/// The command line as the reports name it: `portgate` and the arguments.
pub(crate) fn command_line() -> String {
    std::iter::once("portgate".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("\"{text}\" is not an IP address or IP:PORT"))
}

/// nmap users type `-iL FILE`; clap has no two-letter short options, so `-iL` is read
/// as `--input-list` before parsing.
pub(crate) fn normalise(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|arg| {
            if arg == "-iL" {
                OsString::from("--input-list")
            } else if let Some(rest) = arg.to_str().and_then(|s| s.strip_prefix("-iL"))
                && !rest.is_empty()
            {
                OsString::from(format!("--input-list={rest}"))
            } else {
                arg
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn il_is_the_input_list() {
        let got = normalise(["portgate", "scan", "-iL", "f.txt", "-iLg.txt"].map(OsString::from));
        assert_eq!(got[2], OsString::from("--input-list"));
        assert_eq!(got[4], OsString::from("--input-list=g.txt"));
    }

    #[test]
    fn dns_server_takes_ip_or_socket_address() {
        assert_eq!(
            parse_dns_server("127.0.0.1"),
            Ok("127.0.0.1:53".parse().unwrap_or_else(|_| unreachable!()))
        );
        assert_eq!(
            parse_dns_server("127.0.0.1:5353").map(|a| a.port()),
            Ok(5353)
        );
        assert!(parse_dns_server("nope").is_err());
    }
}

/// Enrichment flags of `scan` and `check`.
#[derive(Debug, Clone, Args)]
pub(crate) struct EnrichArgs {
    /// Add the DNS records of each host-name target and the registration of its domain
    /// (RDAP, or WHOIS where the registry has none; cached for a day). The network of
    /// each address (AS, organisation, country) is added whenever the history database
    /// holds an imported table (`portgate data import asn`).
    #[arg(long)]
    pub(crate) enrich: bool,
    /// An RDAP bootstrap file in IANA's format (`dns.json`, `ipv4.json`, `ipv6.json`),
    /// replacing the built-in one of its kind; repeat for each kind.
    #[arg(long, value_name = "FILE", env = "PORTGATE_RDAP_BOOTSTRAP")]
    pub(crate) rdap_bootstrap: Vec<std::path::PathBuf>,
    /// A WHOIS server table (`suffix server[:port]` per line) replacing the built-in one.
    #[arg(long, value_name = "FILE", env = "PORTGATE_WHOIS_SERVERS")]
    pub(crate) whois_servers: Option<std::path::PathBuf>,
    /// The registration cache [default: $XDG_CACHE_HOME/portgate/registrations.json, else
    /// ~/.cache/portgate/registrations.json].
    #[arg(long, value_name = "FILE", env = "PORTGATE_ENRICH_CACHE")]
    pub(crate) enrich_cache: Option<std::path::PathBuf>,
    /// How long a cached registration is reused, e.g. 1d, 12h.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", env = "PORTGATE_ENRICH_CACHE_TTL")]
    pub(crate) enrich_cache_ttl: Option<Duration>,
}

impl EnrichArgs {
    /// The pipeline's options (`dns_server`: the scan's, when it has one).
    pub(crate) fn options(
        &self,
        dns_server: Option<SocketAddr>,
    ) -> portgate_pipeline::EnrichOptions {
        portgate_pipeline::EnrichOptions {
            lookups: self.enrich,
            dns_server,
            rdap_bootstrap: self.rdap_bootstrap.clone(),
            whois_servers: self.whois_servers.clone(),
            cache_file: self.enrich_cache.clone(),
            cache_ttl: self.enrich_cache_ttl,
            per_server_interval: None,
            lookup_targets: Vec::new(),
        }
    }
}
