//! The engine as a library, against real sockets on 127.0.0.1: events agree with the
//! report, and the per-host cap and the rate limit hold.

#![allow(clippy::unwrap_used)]

use portgate_model::{PortSpec, PortState, ScanStatus, TargetSpec};
use portgate_scan::{ScanEvent, Scanner};
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

fn listeners(n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            std::thread::spawn(move || {
                for s in l.incoming() {
                    drop(s)
                }
            });
            port
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn events_agree_with_the_report() {
    let open = listeners(3);
    let mut spec: Vec<u16> = (2000..2500).collect();
    spec.extend(&open);
    let scanner = Scanner::builder()
        .ports(PortSpec::tcp(spec.clone()))
        .build()
        .unwrap();
    let targets: Vec<TargetSpec> = vec!["127.0.0.1".parse().unwrap()];
    let mut port_events = Vec::new();
    let mut started = None;
    let mut finished = 0;
    let mut resolved = 0;
    let report = runtime()
        .block_on(
            scanner.run(&targets, &mut |event: ScanEvent<'_>| match event {
                ScanEvent::Port { ip, result } => port_events.push((ip, *result)),
                ScanEvent::Started { hosts, ports_total } => started = Some((hosts, ports_total)),
                ScanEvent::TargetResolved(_) => resolved += 1,
                ScanEvent::Finished => finished += 1,
                _ => {}
            }),
        )
        .unwrap();
    assert_eq!(report.status, ScanStatus::Completed);
    assert_eq!(resolved, 1);
    assert_eq!(finished, 1);
    let unique: BTreeSet<u16> = spec.iter().copied().collect();
    assert_eq!(started, Some((1, unique.len() as u64)));
    assert_eq!(port_events.len(), unique.len(), "one event per port");
    let host = &report.hosts[0];
    assert_eq!(host.ports.len(), unique.len());
    let from_events: BTreeSet<u16> = port_events
        .iter()
        .filter(|(_, r)| r.state == PortState::Open)
        .map(|(_, r)| r.port)
        .collect();
    let from_report: BTreeSet<u16> = host
        .ports
        .iter()
        .filter(|r| r.state == PortState::Open)
        .map(|r| r.port)
        .collect();
    assert_eq!(from_events, from_report);
    for port in &open {
        assert!(from_report.contains(port));
    }
    // Events come in probe order, which is random, not ascending.
    let order: Vec<u16> = port_events.iter().map(|(_, r)| r.port).collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_ne!(order, sorted, "probe order is shuffled");
}

#[test]
fn per_host_concurrency_cap_holds() {
    let scanner = Scanner::builder()
        .ports(PortSpec::tcp(1..=3000))
        .host_concurrency(7)
        .build()
        .unwrap();
    let targets: Vec<TargetSpec> = vec!["127.0.0.1".parse().unwrap()];
    let mut most = 0;
    let report = runtime()
        .block_on(scanner.run(&targets, &mut |event: ScanEvent<'_>| {
            if let ScanEvent::Progress(p) = event {
                most = most.max(p.in_flight);
            }
        }))
        .unwrap();
    assert_eq!(report.summary().ports_scanned, 3000);
    assert!(most <= 7, "{most} attempts in flight to one host");
}

#[test]
fn rate_limit_paces_probes() {
    // 600 probes at 2,000 per second cannot take less than about 0.3 s.
    let scanner = Scanner::builder()
        .ports(PortSpec::tcp(3000..3600))
        .rate_limit(NonZeroU32::new(2000))
        .build()
        .unwrap();
    let targets: Vec<TargetSpec> = vec!["127.0.0.1".parse().unwrap()];
    let start = Instant::now();
    let report = runtime()
        .block_on(scanner.run(&targets, &mut portgate_scan::NullSink))
        .unwrap();
    let took = start.elapsed();
    assert_eq!(report.summary().ports_scanned, 600);
    assert!(
        took >= Duration::from_millis(270),
        "600 probes in {took:?} at 2000/s"
    );
}

#[test]
fn targets_beyond_the_limit_are_refused_before_sending() {
    let scanner = Scanner::builder()
        .ports(PortSpec::tcp([80]))
        .max_addresses(16)
        .build()
        .unwrap();
    let targets: Vec<TargetSpec> = vec!["127.0.0.0/27".parse().unwrap()];
    let err = runtime()
        .block_on(scanner.run(&targets, &mut portgate_scan::NullSink))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "target \"127.0.0.0/27\" covers 32 addresses, more than the limit of 16; scan smaller ranges or raise the limit"
    );
    let many: Vec<TargetSpec> = (1..=20)
        .map(|i| format!("127.0.0.{i}").parse().unwrap())
        .collect();
    assert!(
        scanner
            .check_targets(&many)
            .unwrap_err()
            .to_string()
            .contains("all 20 targets together")
    );
}
