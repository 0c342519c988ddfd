//! Measures the vulnerability index at a realistic size: the import of a generated NVD
//! feed (`--cves`, 4 `cpeMatch` entries each) into a history database, its size, the
//! same import again (nothing changes), and the lookup of `--services` detected services
//! (half OpenSSH with Debian banners, half products known only by name) through the
//! path `scan --detect --db` takes. Prints one JSON object.
//!
//! `cargo run --release -p portgate-pipeline --example vuln_bench -- --cves 250000 --services 10000`

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use chrono::Utc;
use portgate_model::{
    DetectedService, Detection, HostReport, PortResult, PortState, Protocol, Reason, ScanMethod,
    ScanReport, ScanStatus,
};
use portgate_pipeline::{
    VulnFeed, annotate_vulnerabilities, annotate_with, import_vulnerabilities, open_store,
    vulnerability_keys,
};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn service(i: usize, cves: usize) -> DetectedService {
    let (product, version, banner) = if i.is_multiple_of(2) {
        let (a, b) = (5 + i % 5, i % 9);
        let version = format!("{a}.{b}p1");
        let banner = format!(
            "SSH-2.0-OpenSSH_{version} Debian-{}+deb12u{}\r\n",
            1 + i % 3,
            i % 12
        );
        ("OpenSSH".to_owned(), version, banner)
    } else {
        let k = (i * 7) % (cves / 10).max(1);
        let version = format!("{}.{}.0", i % 5, i % 7);
        (
            format!("synthproduct{k}"),
            version.clone(),
            format!("synthproduct{k}/{version}\r\n"),
        )
    };
    DetectedService {
        port: (i % 60_000) as u16 + 1,
        protocol: Protocol::Tcp,
        detection: Detection {
            service: Some("ssh".into()),
            product: Some(product),
            version: Some(version),
            evidence: banner.into_bytes().into(),
            ..Detection::default()
        },
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cves = arg("--cves", 250_000);
    let services = arg("--services", 10_000);
    let dir = tempfile::tempdir()?;
    let feed = dir.path().join("nvdcve-2.0-synthetic.json");
    let started = Instant::now();
    std::fs::write(&feed, portgate_vuln::synthetic_nvd_feed(cves, 4, 7))?;
    let generate_s = started.elapsed().as_secs_f64();
    let feed_bytes = std::fs::metadata(&feed)?.len();

    let db = dir.path().join("history.db");
    let location = portgate_store::Location::parse(&db.display().to_string())?;
    let store = open_store(&location).await?;
    let started = Instant::now();
    let first = import_vulnerabilities(&store, VulnFeed::Nvd, &feed, None).await?;
    let import_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let again = import_vulnerabilities(&store, VulnFeed::Nvd, &feed, None).await?;
    let reimport_s = started.elapsed().as_secs_f64();
    store.close().await;
    let db_bytes: u64 = std::fs::read_dir(dir.path())?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("history.db"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();

    let store = open_store(&location).await?;
    let now = Utc::now();
    let mut hosts = Vec::new();
    for h in 0..services.div_ceil(100) {
        let ip = IpAddr::V4(Ipv4Addr::from(0xC612_0000u32 + h as u32));
        let list: Vec<DetectedService> = (h * 100..((h + 1) * 100).min(services))
            .map(|i| service(i, cves))
            .collect();
        hosts.push(HostReport {
            target: ip.to_string(),
            hostname: None,
            ip,
            ports_requested: list.len() as u32,
            ports: list
                .iter()
                .map(|s| PortResult {
                    port: s.port,
                    protocol: Protocol::Tcp,
                    state: PortState::Open,
                    reason: Reason::SynAck,
                    rtt_us: None,
                    attempts: 1,
                    at_ms: 0,
                })
                .collect(),
            services: list,
            tarpit: None,
        });
    }
    let mut report = ScanReport {
        method: ScanMethod::Connect,
        started_at: now,
        finished_at: now,
        status: ScanStatus::Completed,
        incomplete_reasons: Vec::new(),
        targets: Vec::new(),
        hosts,
        enrichment: None,
    };
    // The two halves of `annotate_vulnerabilities`, timed apart: the rows of the products
    // found read from the store, then every service assessed.
    let started = Instant::now();
    let keys = vulnerability_keys(&report);
    let index = store.vulnerability_index(&keys).await?;
    let read_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    annotate_with(&mut report, &index);
    let assess_s = started.elapsed().as_secs_f64();
    let lookup_s = read_s + assess_s;
    // The whole path once more, as `scan --detect --db` runs it.
    let mut rerun = report.clone();
    let started = Instant::now();
    annotate_vulnerabilities(&mut rerun, &store).await?;
    let path_s = started.elapsed().as_secs_f64();
    let (mut matches, mut with_matches) = (0usize, 0usize);
    let mut distinct = std::collections::HashSet::new();
    for s in report.hosts.iter().flat_map(|h| &h.services) {
        distinct.insert((
            s.detection.product.clone(),
            s.detection.version.clone(),
            s.detection.evidence.escaped(),
        ));
        let n = s
            .detection
            .vulnerabilities
            .as_ref()
            .map_or(0, |v| v.matches.len());
        matches += n;
        with_matches += usize::from(n > 0);
    }
    store.close().await;
    println!(
        "{}",
        serde_json::json!({
            "cves": cves,
            "cpe_matches": cves * 4,
            "feed_bytes": feed_bytes,
            "generate_s": generate_s,
            "import_s": import_s,
            "import_added": first.added,
            "import_records_per_s": first.records as f64 / import_s,
            "reimport_s": reimport_s,
            "reimport_unchanged": again.unchanged,
            "db_bytes": db_bytes,
            "services": services,
            "lookup_s": lookup_s,
            "lookup_read_s": read_s,
            "lookup_assess_s": assess_s,
            "lookup_rows": index.stats().nvd_cves,
            "lookup_path_s": path_s,
            "lookups_per_s": services as f64 / lookup_s,
            "services_with_matches": with_matches,
            "distinct_services": distinct.len(),
            "matches": matches,
        })
    );
    Ok(())
}
