//! `portgate-lab`: start a lab host for the benchmark script, or clean up
//! namespaces left behind by crashed runs.
//!
//! Never touches addresses outside 198.18.0.0/15 and 2001:db8::/32.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use nix::sys::signal::{SigSet, Signal};
use portgate_lab::{DEFAULT_DELAY_SEED, DelayConfig, LabConfig, LabHost, Profile};
use serde::Serialize;

/// Network-namespace lab hosts with known open, closed and filtered ports.
#[derive(Debug, Parser)]
#[command(name = "portgate-lab", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a lab host, print one JSON line describing it, and keep it up
    /// until SIGINT, SIGTERM, SIGHUP or EOF on stdin; then tear it down.
    Up(UpArgs),
    /// Start the daemon zoo (real daemons in a lab host), print one JSON
    /// line describing it, and keep it up like `up`.
    Zoo(ZooArgs),
    /// Start a lab network (one namespace answering for a whole prefix of
    /// 198.19.0.0/16, each address a dark, RST-only, firewalled or open host
    /// drawn from the seed), print one JSON line describing it, write its
    /// full ground truth to a JSON file, and keep it up like `up`.
    Net(NetArgs),
    /// Delete `pglab-*` namespaces whose process no longer runs.
    Clean,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// Firewall profile: open, firewalled or lossy.
    #[arg(long, default_value_t = Profile::Open)]
    profile: Profile,
    /// Open ports, comma separated [default: 1,22,80,443,3306,5432,6379,8080,
    /// 8443,9090,11211,27017,31337,40000,50000,60000,65535].
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    open: Option<Vec<u16>>,
    /// Ports answering RST under the firewalled profile, comma separated
    /// [default: 113,2000,7000,12345,54321].
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    reject: Option<Vec<u16>>,
    /// SYN drop probability of the lossy profile [default: 0.02].
    #[arg(long)]
    loss: Option<f64>,
    /// Run real UDP services on the lab host: dnsmasq (DNS, 53), chronyd
    /// (NTP, 123) and snmpd (SNMP, 161, community "public").
    #[arg(long)]
    udp_services: bool,
    /// UDP ports answering ICMP port unreachable under the firewalled
    /// profile, comma separated [default: 1000,1001].
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    udp_reject: Option<Vec<u16>>,
    /// ICMP error rate limit inside the namespace in milliseconds (0: none)
    /// [default: the kernel's, 1000].
    #[arg(long)]
    icmp_ratelimit_ms: Option<u32>,
    #[command(flatten)]
    delay: DelayArgs,
    /// Do not tear down on EOF on stdin; wait for a signal only. Needed when
    /// started in the background by a non-interactive shell, whose background
    /// jobs get /dev/null as stdin.
    #[arg(long)]
    ignore_stdin: bool,
}

/// The delay line's flags, shared by `up` and `net`.
#[derive(Debug, clap::Args)]
struct DelayArgs {
    /// Hold every packet that reaches the lab host (or network) for DURATION (e.g. 80ms,
    /// 1.5s, 250us) before its stack sees it: the round trip a scanner sees. Any of
    /// --delay, --jitter, --path-loss and --rate-pps turns the delay line on
    /// (delay 0 unless given).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    delay: Option<Duration>,
    /// Add a uniform random offset in [-DURATION, +DURATION] to each
    /// packet's delay (reorders packets; at most --delay).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    jitter: Option<Duration>,
    /// Drop each packet that reaches the lab host (or network) with probability P
    /// (0..=1), in the delay line. Unlike --loss, which drops only the
    /// lossy profile's SYNs, this hits every packet: SYNs, ACKs, UDP, data.
    #[arg(long, value_name = "P")]
    path_loss: Option<f64>,
    /// Release at most N packets per second from the delay line (the queue
    /// grows beyond that).
    #[arg(long, value_name = "N")]
    rate_pps: Option<u32>,
    /// Seed of the delay line's jitter and loss choices.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_DELAY_SEED)]
    delay_seed: u64,
}

impl DelayArgs {
    /// The delay line the flags ask for, if any.
    fn config(&self) -> Option<DelayConfig> {
        if self.delay.is_none()
            && self.jitter.is_none()
            && self.path_loss.is_none()
            && self.rate_pps.is_none()
        {
            return None;
        }
        let mut config =
            DelayConfig::new(self.delay.unwrap_or(Duration::ZERO)).seed(self.delay_seed);
        if let Some(jitter) = self.jitter {
            config = config.jitter(jitter);
        }
        if let Some(loss) = self.path_loss {
            config = config.loss(loss);
        }
        if let Some(rate) = self.rate_pps {
            config = config.rate_pps(rate);
        }
        Some(config)
    }
}

/// Parses `80ms`, `1.5s`, `250us`, `100ns` (or `0`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` has no unit (ns, us, ms or s)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{number}` is not a number"))?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        other => return Err(format!("unknown unit `{other}` (ns, us, ms or s)")),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("`{text}`: {e}"))
}

/// The delay settings in the line `up` prints.
#[derive(Debug, Serialize)]
struct DelayInfo {
    delay_ms: f64,
    jitter_ms: f64,
    path_loss: f64,
    rate_pps: Option<u32>,
    seed: u64,
}

impl From<&DelayConfig> for DelayInfo {
    fn from(config: &DelayConfig) -> Self {
        DelayInfo {
            delay_ms: config.delay.as_secs_f64() * 1e3,
            jitter_ms: config.jitter.as_secs_f64() * 1e3,
            path_loss: config.loss,
            rate_pps: config.rate_pps,
            seed: config.seed,
        }
    }
}

#[derive(Debug, clap::Args)]
struct ZooArgs {
    /// Wait for a signal only, not for EOF on stdin (see `up`).
    #[arg(long)]
    ignore_stdin: bool,

    #[command(flatten)]
    delay: DelayArgs,
}

/// The line `zoo` prints.
#[derive(Debug, Serialize)]
struct ZooInfo<'a> {
    namespace: &'a str,
    ipv4: Ipv4Addr,
    ipv6: Ipv6Addr,
    ports: Vec<u16>,
    tls_ports: Vec<u16>,
    starttls_ports: Vec<u16>,
    services: &'a [portgate_lab::ZooService],
    skipped: &'a [portgate_lab::ZooSkip],
    ca_pem: &'a str,
}

/// The line `up` prints.
#[derive(Debug, Serialize)]
struct UpInfo<'a> {
    namespace: &'a str,
    profile: Profile,
    ipv4: Ipv4Addr,
    ipv6: Ipv6Addr,
    host_ipv4: Ipv4Addr,
    host_ipv6: Ipv6Addr,
    host_interface: &'a str,
    target_mac: &'a str,
    open: Vec<u16>,
    reject: Vec<u16>,
    loss_probability: f64,
    udp_open: Vec<u16>,
    udp_reject: Vec<u16>,
    icmp_ratelimit_ms: Option<u32>,
    /// `null` without a delay line.
    delay: Option<DelayInfo>,
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help / --version go to stdout and succeed; usage errors exit 1.
            let code = if err.use_stderr() { 1 } else { 0 };
            let _ = err.print();
            std::process::exit(code);
        }
    };
    let result = match cli.command {
        Command::Up(args) => up(args),
        Command::Zoo(args) => zoo(args),
        Command::Net(args) => net(args),
        Command::Clean => clean(),
    };
    if let Err(err) = result {
        eprintln!("portgate-lab: error: {err:#}");
        std::process::exit(1);
    }
}

fn up(args: UpArgs) -> Result<()> {
    let signals = block_stop_signals()?;

    let delay = args.delay.config();
    let mut config = LabConfig::new(args.profile);
    if let Some(open) = args.open {
        config = config.open_ports(open);
    }
    if let Some(reject) = args.reject {
        config = config.reject_ports(reject);
    }
    if let Some(loss) = args.loss {
        config = config.loss_probability(loss);
    }
    config = config.udp_services(args.udp_services);
    if let Some(udp_reject) = args.udp_reject {
        config = config.udp_reject_ports(udp_reject);
    }
    if let Some(ms) = args.icmp_ratelimit_ms {
        config = config.icmp_ratelimit_ms(ms);
    }
    if let Some(delay) = delay {
        config = config.delay(delay);
    }
    let mut host = LabHost::start(config).context("starting the lab host")?;

    let truth = host.truth();
    let info = UpInfo {
        namespace: host.namespace(),
        profile: truth.profile,
        ipv4: host.ipv4(),
        ipv6: host.ipv6(),
        host_ipv4: host.host_ipv4(),
        host_ipv6: host.host_ipv6(),
        host_interface: host.host_interface(),
        target_mac: host.target_mac(),
        open: truth.open.iter().copied().collect(),
        reject: truth.reject.iter().copied().collect(),
        loss_probability: host.loss_probability(),
        udp_open: truth.udp_open.iter().copied().collect(),
        udp_reject: truth.udp_reject.iter().copied().collect(),
        icmp_ratelimit_ms: host.icmp_ratelimit_ms(),
        delay: host.delay_config().map(DelayInfo::from),
    };
    print_line(&info, "host")?;

    let reason = wait_for_stop(signals, args.ignore_stdin)?;
    eprintln!("portgate-lab: {reason}; tearing down {}", host.namespace());
    print_delay_stats(host.stop_delay());
    drop(host);
    // The waiter threads may still be blocked; exiting ends them.
    std::process::exit(0);
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread, before any other thread
/// exists: every thread inherits the mask and only the waiter thread
/// ([`wait_for_stop`]) receives them.
fn block_stop_signals() -> Result<SigSet> {
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(signal);
    }
    signals.thread_block().context("blocking signals")?;
    Ok(signals)
}

/// Prints `info` as the one JSON line describing what is up (`what`: host,
/// zoo, network).
fn print_line(info: &impl Serialize, what: &str) -> Result<()> {
    let line = serde_json::to_string(info)
        .with_context(|| format!("serializing the {what} description"))?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}").context("writing to stdout")?;
    stdout.flush().context("flushing stdout")
}

/// Blocks until one of `signals` arrives or (unless `ignore_stdin`) stdin
/// reaches EOF; returns why.
fn wait_for_stop(signals: SigSet, ignore_stdin: bool) -> Result<String> {
    let (stop_tx, stop_rx) = mpsc::channel::<String>();
    let signal_tx = stop_tx.clone();
    std::thread::Builder::new()
        .name("signal-wait".to_owned())
        .spawn(move || {
            let reason = match signals.wait() {
                Ok(signal) => format!("received {signal}"),
                Err(err) => format!("waiting for signals failed: {err}"),
            };
            let _ = signal_tx.send(reason);
        })
        .context("spawning the signal thread")?;
    // With --ignore-stdin this keeps the channel open, so only a signal ends the wait.
    let mut _keep_open = None;
    if !ignore_stdin {
        std::thread::Builder::new()
            .name("stdin-wait".to_owned())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                let mut stdin = io::stdin().lock();
                loop {
                    match stdin.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                let _ = stop_tx.send("stdin closed".to_owned());
            })
            .context("spawning the stdin thread")?;
    } else {
        _keep_open = Some(stop_tx);
    }

    let reason = stop_rx
        .recv()
        .unwrap_or_else(|_| "all waiters gone".to_owned());
    Ok(reason)
}

fn zoo(args: ZooArgs) -> Result<()> {
    let signals = block_stop_signals()?;
    let zoo = portgate_lab::Zoo::start_with(args.delay.config()).context("starting the zoo")?;
    for skip in zoo.skipped() {
        eprintln!(
            "portgate-lab: zoo: skipped {}: {}",
            skip.daemon, skip.reason
        );
    }
    let info = ZooInfo {
        namespace: zoo.lab().namespace(),
        ipv4: zoo.lab().ipv4(),
        ipv6: zoo.lab().ipv6(),
        ports: zoo.ports(),
        tls_ports: zoo.tls_ports(),
        starttls_ports: zoo.starttls_ports(),
        services: zoo.services(),
        skipped: zoo.skipped(),
        ca_pem: zoo.ca_pem(),
    };
    print_line(&info, "zoo")?;
    let reason = wait_for_stop(signals, args.ignore_stdin)?;
    eprintln!(
        "portgate-lab: {reason}; stopping the zoo in {}",
        zoo.lab().namespace()
    );
    drop(zoo);
    std::process::exit(0);
}

#[derive(Debug, clap::Args)]
struct NetArgs {
    /// Number of hosts (addresses), a power of two from 1 to 4096.
    #[arg(long, default_value_t = portgate_lab::MAX_NETWORK_HOSTS)]
    hosts: u32,
    /// Seed of the per-host kinds and ports.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The ports whose states vary between hosts, comma separated
    /// [default: nmap's 100 most common TCP ports].
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    ports: Option<Vec<u16>>,
    /// Share of dark hosts (every packet dropped) [default: 0.5].
    #[arg(long, value_name = "SHARE")]
    dark: Option<f64>,
    /// Share of RST-only hosts (every port closed) [default: 0.15].
    #[arg(long, value_name = "SHARE")]
    rst_only: Option<f64>,
    /// Share of firewalled hosts (open ports accept, 0-3 reject ports
    /// answer RST, all else dropped) [default: 0.2].
    #[arg(long, value_name = "SHARE")]
    firewalled: Option<f64>,
    /// Share of open hosts (open ports accept, all else RST) [default: 0.15].
    #[arg(long, value_name = "SHARE")]
    open: Option<f64>,
    /// Write the ground truth here (kept afterwards) instead of to a
    /// temporary file that is removed at teardown.
    #[arg(long, value_name = "PATH")]
    truth_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    delay: DelayArgs,
    /// Wait for a signal only, not for EOF on stdin (see `up`).
    #[arg(long)]
    ignore_stdin: bool,
}

/// The line `net` prints.
#[derive(Debug, Serialize)]
struct NetInfo<'a> {
    namespace: &'a str,
    prefix: String,
    hosts: u32,
    seed: u64,
    ports: &'a [u16],
    counts: portgate_lab::KindCounts,
    listening_ports: &'a [u16],
    host_interface: &'a str,
    host_ipv4: Ipv4Addr,
    gateway_ipv4: Ipv4Addr,
    target_mac: &'a str,
    truth_file: &'a std::path::Path,
    delay: Option<DelayInfo>,
}

fn net(args: NetArgs) -> Result<()> {
    let signals = block_stop_signals()?;

    let mut config = portgate_lab::NetworkConfig::new()
        .hosts(args.hosts)
        .seed(args.seed);
    if let Some(ports) = args.ports {
        config = config.ports(ports);
    }
    if let Some(share) = args.dark {
        config = config.dark(share);
    }
    if let Some(share) = args.rst_only {
        config = config.rst_only(share);
    }
    if let Some(share) = args.firewalled {
        config = config.firewalled(share);
    }
    if let Some(share) = args.open {
        config = config.open(share);
    }
    let delay = args.delay.config();
    if let Some(delay) = delay {
        config = config.delay(delay);
    }
    let hosts = config.hosts;
    let network = portgate_lab::LabNetwork::start(config).context("starting the lab network")?;

    // The temporary directory (if any) lives until teardown.
    let (temp_dir, truth_path) = match args.truth_file {
        Some(path) => (None, path),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("pglab-net-")
                .tempdir()
                .context("creating a temporary directory for the ground truth")?;
            let path = dir.path().join("truth.json");
            (Some(dir), path)
        }
    };
    let truth_json = serde_json::to_vec(network.truth()).context("serializing the ground truth")?;
    std::fs::write(&truth_path, truth_json)
        .with_context(|| format!("writing the ground truth to {}", truth_path.display()))?;

    let info = NetInfo {
        namespace: network.namespace(),
        prefix: network.prefix().to_string(),
        hosts,
        seed: network.truth().seed,
        ports: &network.truth().ports,
        counts: network.counts(),
        listening_ports: network.listening_ports(),
        host_interface: network.host_interface(),
        host_ipv4: network.host_ipv4(),
        gateway_ipv4: network.gateway_ipv4(),
        target_mac: network.target_mac(),
        truth_file: &truth_path,
        delay: delay.as_ref().map(DelayInfo::from),
    };
    print_line(&info, "network")?;

    let reason = wait_for_stop(signals, args.ignore_stdin)?;
    eprintln!(
        "portgate-lab: {reason}; tearing down {} ({})",
        network.namespace(),
        network.prefix()
    );
    print_delay_stats(network.delay_stats());
    drop(network);
    drop(temp_dir);
    // The waiter threads may still be blocked; exiting ends them.
    std::process::exit(0);
}

/// The delay line's final counters, as one `delay-stats: {...}` line on stderr.
fn print_delay_stats(stats: Option<portgate_lab::DelayStats>) {
    if let Some(stats) = stats {
        match serde_json::to_string(&stats) {
            Ok(line) => eprintln!("delay-stats: {line}"),
            Err(err) => eprintln!("portgate-lab: cannot serialize the delay stats: {err}"),
        }
    }
}

fn clean() -> Result<()> {
    let removed = portgate_lab::clean_stale_namespaces().context("cleaning namespaces")?;
    if removed.is_empty() {
        println!("no stale pglab-* namespaces");
    }
    for name in removed {
        println!("removed {name}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("80ms"), Ok(Duration::from_millis(80)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("100ns"), Ok(Duration::from_nanos(100)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["80", "ms", "80 m", "-5ms", "1e3ms", "", "x5ms"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn delay_flags_make_a_delay_config() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(["portgate-lab", "up"].iter().chain(args))
                .expect("valid arguments");
            match cli.command {
                Command::Up(up) => up.delay.config(),
                _ => None,
            }
        };
        assert_eq!(parse(&[]), None);
        let config = parse(&[
            "--delay",
            "80ms",
            "--jitter",
            "5ms",
            "--path-loss",
            "0.1",
            "--rate-pps",
            "1000",
            "--delay-seed",
            "7",
        ])
        .expect("delay configured");
        assert_eq!(
            config,
            DelayConfig::new(Duration::from_millis(80))
                .jitter(Duration::from_millis(5))
                .loss(0.1)
                .rate_pps(1000)
                .seed(7)
        );
        // Path loss alone turns the delay line on, with no delay.
        let config = parse(&["--path-loss", "0.5"]).expect("delay configured");
        assert_eq!(config.delay, Duration::ZERO);
        assert_eq!(config.loss, 0.5);
        let info = serde_json::to_value(DelayInfo::from(&config)).expect("serialize");
        assert_eq!(info["path_loss"], 0.5);
        assert_eq!(info["delay_ms"], 0.0);
        assert!(info["rate_pps"].is_null());
    }
}
