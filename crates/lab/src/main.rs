//! `portgate-lab`: start a lab host for the benchmark script, or clean up
//! namespaces left behind by crashed runs.
//!
//! Never touches addresses outside 198.18.0.0/15 and 2001:db8::/32.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::mpsc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use nix::sys::signal::{SigSet, Signal};
use portgate_lab::{LabConfig, LabHost, Profile};
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
    /// Do not tear down on EOF on stdin; wait for a signal only. Needed when
    /// started in the background by a non-interactive shell, whose background
    /// jobs get /dev/null as stdin.
    #[arg(long)]
    ignore_stdin: bool,
}

#[derive(Debug, clap::Args)]
struct ZooArgs {
    /// Wait for a signal only, not for EOF on stdin (see `up`).
    #[arg(long)]
    ignore_stdin: bool,
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
        Command::Clean => clean(),
    };
    if let Err(err) = result {
        eprintln!("portgate-lab: error: {err:#}");
        std::process::exit(1);
    }
}

fn up(args: UpArgs) -> Result<()> {
    // Block the termination signals before any thread exists, so every
    // thread inherits the mask and only the waiter thread receives them.
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(signal);
    }
    signals.thread_block().context("blocking signals")?;

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
    let host = LabHost::start(config).context("starting the lab host")?;

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
    };
    let line = serde_json::to_string(&info).context("serializing the host description")?;
    {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{line}").context("writing to stdout")?;
        stdout.flush().context("flushing stdout")?;
    }

    let reason = wait_for_stop(signals, args.ignore_stdin)?;
    eprintln!("portgate-lab: {reason}; tearing down {}", host.namespace());
    drop(host);
    // The waiter threads may still be blocked; exiting ends them.
    std::process::exit(0);
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
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(signal);
    }
    signals.thread_block().context("blocking signals")?;
    let zoo = portgate_lab::Zoo::start().context("starting the zoo")?;
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
    let line = serde_json::to_string(&info).context("serializing the zoo description")?;
    {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{line}").context("writing to stdout")?;
        stdout.flush().context("flushing stdout")?;
    }
    let reason = wait_for_stop(signals, args.ignore_stdin)?;
    eprintln!(
        "portgate-lab: {reason}; stopping the zoo in {}",
        zoo.lab().namespace()
    );
    drop(zoo);
    std::process::exit(0);
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
