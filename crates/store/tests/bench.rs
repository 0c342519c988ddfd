//! Storing a full TCP scan (65,535 ports) of 100 hosts and reading one target's history, on
//! SQLite and PostgreSQL. Figures, not assertions: run by hand with
//! `cargo test --release -p portgate-store --test bench -- --ignored --nocapture`
//! (`PORTGATE_BENCH_SCANS=N` stores N such scans, default 3).

mod common;

use common::*;
use portgate_model::{HostReport, PortState, ScanReport};
use portgate_store::Store;
use std::time::Instant;

const HOSTS: usize = 100;
const OPEN_PER_HOST: u16 = 20;
const FILTERED_PER_HOST: u16 = 200;

/// 100 hosts × 65,535 TCP ports: 20 open (with detection results) and 200 filtered per
/// host, the rest closed.
fn full_scan(minute: i64) -> ScanReport {
    let hosts: Vec<HostReport> = (0..HOSTS)
        .map(|h| {
            let ip = format!("198.18.{}.{}", h / 250, h % 250 + 1);
            let ports = (1..=u16::MAX)
                .map(|p| {
                    let state = if p % 3271 == 0 && p / 3271 <= OPEN_PER_HOST {
                        PortState::Open
                    } else if (40_000..40_000 + FILTERED_PER_HOST).contains(&p) {
                        PortState::Filtered
                    } else {
                        PortState::Closed
                    };
                    port(p, state)
                })
                .collect();
            let mut host = host(&ip, &ip, ports);
            host.services = host
                .ports
                .iter()
                .filter(|p| p.state == PortState::Open)
                .map(|p| {
                    let mut s = service(p.port, "https", "nginx", "1.24.0");
                    s.detection.tls = Some(tls("CN=Bench CA", "ab12cd34", true));
                    s
                })
                .collect();
            host
        })
        .collect();
    report(at(minute), hosts)
}

async fn bench(db: &TestDb, scans: usize) {
    let store = Store::open(&location(db)).await.expect("open");
    let report = full_scan(0);
    let summary = report.summary();
    // Per host: its row, a row per open or filtered port, a row per detected service.
    let rows_per_scan =
        HOSTS as u64 * (1 + 2 * u64::from(OPEN_PER_HOST) + u64::from(FILTERED_PER_HOST)) + 1;
    // The part of a save that is the compressed report (JSON through zstd, as the store
    // does it); the rest is the database's.
    let t = Instant::now();
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd");
    {
        let mut writer = std::io::BufWriter::new(&mut encoder);
        serde_json::to_writer(&mut writer, &report).expect("json");
        std::io::Write::flush(&mut writer).expect("flush");
    }
    let compressed = encoder.finish().expect("zstd").len();
    let compress_secs = t.elapsed().as_secs_f64();
    println!(
        "{}: report JSON → zstd: {:.1} MiB in {compress_secs:.2} s",
        db.name,
        compressed as f64 / 1048576.0
    );
    let mut total = 0.0;
    for i in 0..scans {
        let mut r = report.clone();
        r.started_at = at(i as i64 * 60);
        r.finished_at = r.started_at + chrono::Duration::seconds(30);
        let t = Instant::now();
        store.save_scan(&r, None).await.expect("save");
        let secs = t.elapsed().as_secs_f64();
        total += secs;
        println!(
            "{}: scan {}: saved {} port results ({} rows) in {secs:.2} s: {:.0} port results/s; \
             rows alone (save minus compression): {:.0} rows/s",
            db.name,
            i + 1,
            summary.ports_scanned,
            rows_per_scan,
            summary.ports_scanned as f64 / secs,
            rows_per_scan as f64 / (secs - compress_secs).max(0.001),
        );
    }
    println!("{}: {scans} scans saved in {total:.2} s", db.name);
    let target = &report.hosts[57].target;
    for _ in 0..2 {
        let t = Instant::now();
        let history = store.history(target, 50).await.expect("history");
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(history.len(), scans);
        println!(
            "{}: history of {target}: {} snapshots, {} port rows, in {ms:.1} ms",
            db.name,
            history.len(),
            history.iter().map(|h| h.ports.len()).sum::<usize>()
        );
    }
    let t = Instant::now();
    let back = store
        .load_report(portgate_store::ScanId(1))
        .await
        .expect("reload");
    println!(
        "{}: reload of a whole scan ({} port results) in {:.2} s",
        db.name,
        back.summary().ports_scanned,
        t.elapsed().as_secs_f64()
    );
    if let Some(path) = db.sqlite_path.as_deref() {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(path.with_extension("db-wal"))
                .map(|m| m.len())
                .unwrap_or(0);
        println!(
            "{}: database file + WAL: {:.1} MiB",
            db.name,
            size as f64 / 1048576.0
        );
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by hand, see the module documentation"]
async fn store_full_port_scans_of_100_hosts() {
    let scans = std::env::var("PORTGATE_BENCH_SCANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let json = serde_json::to_vec(&full_scan(0)).expect("json").len();
    println!("report JSON: {:.1} MiB", json as f64 / 1048576.0);
    for db in backends().await {
        bench(&db, scans).await;
    }
}
