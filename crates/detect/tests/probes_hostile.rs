//! Hostile services: detect() must stay within its total timeout and byte cap.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use portgate_detect::{DetectOptions, ProbeDb, detect};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const TOTAL: Duration = Duration::from_secs(3);
const MAX_BYTES: usize = 2048;

/// Listen on 127.0.0.1:0 and hand every accepted connection to `serve`.
async fn listener<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s));
        }
    });
    addr
}

async fn check(addr: SocketAddr, what: &str, slow: bool) {
    let db = ProbeDb::builtin().expect("db");
    let opts = DetectOptions {
        total_timeout: TOTAL,
        max_bytes: MAX_BYTES,
        ..DetectOptions::default()
    };
    let start = Instant::now();
    let d = detect(addr, &db, &opts).await;
    let took = start.elapsed();
    println!(
        "{what}: {took:?}, {} evidence bytes, service {:?}",
        d.evidence.len(),
        d.service
    );
    assert!(took < TOTAL * 2, "{what}: took {took:?}");
    if slow {
        // Silent and dripping services use up the time budget, not the byte cap.
        assert!(
            took >= TOTAL / 2,
            "{what}: gave up suspiciously early ({took:?})"
        );
    }
    assert!(
        d.evidence.len() <= MAX_BYTES,
        "{what}: {} bytes",
        d.evidence.len()
    );
}

#[tokio::test]
async fn silent_server() {
    let addr = listener(|s| async move {
        // Accept, never speak, never close.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(s);
    })
    .await;
    check(addr, "silent", true).await;
}

#[tokio::test]
async fn endless_banner() {
    let addr = listener(|mut s| async move {
        let junk = [b'A'; 8192];
        while s.write_all(&junk).await.is_ok() {}
    })
    .await;
    check(addr, "endless", false).await;
}

#[tokio::test]
async fn dripping_server() {
    let addr = listener(|mut s| async move {
        loop {
            if s.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    check(addr, "drip", true).await;
}

#[tokio::test]
async fn closed_port_returns_quickly() {
    // Bind then drop, so the port is (very likely) closed.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let db = ProbeDb::builtin().expect("db");
    let start = Instant::now();
    let d = detect(addr, &db, &DetectOptions::default()).await;
    assert!(start.elapsed() < Duration::from_secs(4));
    assert_eq!(d.service, None);
}

#[tokio::test]
async fn garbage_after_probe_does_not_panic() {
    // Replies to anything with binary garbage, then closes.
    let addr = listener(|mut s| async move {
        let mut buf = [0u8; 512];
        let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
        let garbage: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let _ = s.write_all(&garbage).await;
    })
    .await;
    check_quick(addr).await;
}

async fn check_quick(addr: SocketAddr) {
    let db = ProbeDb::builtin().expect("db");
    let opts = DetectOptions {
        total_timeout: TOTAL,
        max_bytes: MAX_BYTES,
        ..DetectOptions::default()
    };
    let start = Instant::now();
    let d = detect(addr, &db, &opts).await;
    assert!(start.elapsed() < TOTAL * 2);
    assert!(d.evidence.len() <= MAX_BYTES);
}
