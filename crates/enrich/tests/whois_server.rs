//! WHOIS: the common answer formats (fixtures of Verisign, TCI `paid-till`, DENIC
//! without an expiry, Nominet's indented blocks), and lookups against a real TCP
//! server on 127.0.0.1.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use portgate_enrich::rdap::Bootstrap;
use portgate_enrich::whois::{WhoisClient, WhoisOptions, WhoisServers, parse_whois};
use portgate_enrich::{
    EnrichError, LookupOverrides, RegistrationClient, RegistrationOptions, RegistrationSource,
    ServerRateLimiter,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/whois")
        .join(name);
    std::fs::read_to_string(&path).expect("fixture")
}

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> Option<chrono::DateTime<Utc>> {
    Utc.with_ymd_and_hms(y, m, d, h, min, s).single()
}

#[test]
fn verisign_format() {
    let now = Utc::now();
    let reg = parse_whois(
        "example.com",
        "whois.example.test:43",
        &fixture("verisign.txt"),
        now,
    );
    assert_eq!(reg.source, RegistrationSource::Whois);
    assert_eq!(
        reg.registrar.as_deref(),
        Some("RESERVED-Internet Assigned Numbers Authority")
    );
    assert_eq!(reg.registrar_iana_id, Some(376));
    assert_eq!(reg.created, utc(1995, 8, 14, 4, 0, 0));
    assert_eq!(reg.expires, utc(2025, 8, 13, 4, 0, 0));
    assert_eq!(reg.last_changed, utc(2024, 8, 14, 7, 1, 34));
    assert_eq!(
        reg.status,
        [
            "clientDeleteProhibited",
            "clientTransferProhibited",
            "clientUpdateProhibited"
        ]
    );
    assert_eq!(
        reg.nameservers,
        ["a.iana-servers.net", "b.iana-servers.net"]
    );
    assert!(reg.warnings.is_empty(), "{:?}", reg.warnings);
    assert_eq!(reg.fetched_at, now);
}

#[test]
fn paid_till_format() {
    let reg = parse_whois("example.ru", "s", &fixture("tcinet.txt"), Utc::now());
    assert_eq!(reg.registrar.as_deref(), Some("RU-CENTER-RU"));
    assert_eq!(reg.created, utc(2004, 2, 11, 21, 0, 0));
    assert_eq!(reg.expires, utc(2026, 2, 28, 21, 0, 0));
    assert_eq!(reg.status, ["REGISTERED", "DELEGATED", "VERIFIED"]);
    assert_eq!(reg.nameservers, ["ns1.example.test", "ns2.example.test"]);
    assert!(reg.warnings.is_empty(), "{:?}", reg.warnings);
}

#[test]
fn denic_format_without_expiry() {
    let reg = parse_whois("example.de", "s", &fixture("denic.txt"), Utc::now());
    assert_eq!(reg.registrar, None);
    assert_eq!(reg.expires, None);
    assert_eq!(reg.created, None);
    assert_eq!(reg.last_changed, utc(2021, 3, 18, 9, 44, 43));
    assert_eq!(reg.status, ["connect"]);
    assert_eq!(reg.nameservers, ["ns1.example.test", "ns2.example.test"]);
    assert!(reg.warnings.is_empty(), "{:?}", reg.warnings);
}

#[test]
fn nominet_indented_blocks() {
    let reg = parse_whois("example.co.uk", "s", &fixture("nominet.txt"), Utc::now());
    assert_eq!(
        reg.registrar.as_deref(),
        Some("Example Registrar Ltd t/a Example [Tag = EXAMPLE]")
    );
    assert_eq!(reg.created, utc(1996, 6, 26, 0, 0, 0));
    assert_eq!(reg.expires, utc(2026, 6, 26, 0, 0, 0));
    assert_eq!(reg.last_changed, utc(2025, 5, 3, 0, 0, 0));
    assert_eq!(reg.nameservers, ["ns1.example.test", "ns2.example.test"]);
}

#[test]
fn dates_in_other_forms_and_hostile_values() {
    let text = "Registrar: Evil\x1b]0;pwned\x07 Registrar\n\
                Expiry Date: 2026.03.01\n\
                Creation Date: sometime in 1999\n\
                Registrar IANA ID: not-a-number\n";
    let reg = parse_whois("example.test", "s", text, Utc::now());
    assert_eq!(
        reg.registrar.as_deref(),
        Some("Evil\\u{1b}]0;pwned\\u{7} Registrar")
    );
    assert_eq!(reg.expires, utc(2026, 3, 1, 0, 0, 0));
    assert_eq!(reg.created, None);
    assert_eq!(
        reg.warnings,
        [
            "line 3: creation = \"sometime in 1999\": not a date in a known form",
            "line 4: Registrar IANA ID = \"not-a-number\": not a number",
        ]
    );
}

/// A WHOIS server on 127.0.0.1 answering from a table of (query, answer); it records
/// the queries it was sent. `delay` holds every answer back.
async fn start_server(
    answers: Vec<(&'static str, String)>,
    delay: Duration,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("address").port();
    let queries: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = Arc::clone(&queries);
    let answers = Arc::new(answers);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&seen);
            let answers = Arc::clone(&answers);
            tokio::spawn(async move {
                let mut query = Vec::new();
                let mut byte = [0u8; 1];
                while !query.ends_with(b"\r\n") && query.len() < 512 {
                    match stream.read(&mut byte).await {
                        Ok(1) => query.push(byte[0]),
                        _ => return,
                    }
                }
                let query = String::from_utf8_lossy(&query).to_string();
                seen.lock().expect("lock").push(query.clone());
                tokio::time::sleep(delay).await;
                let name = query.trim_end();
                let answer = answers
                    .iter()
                    .find(|(q, _)| *q == name)
                    .map(|(_, a)| a.clone())
                    .unwrap_or_else(|| format!("No match for \"{}\".\r\n", name.to_uppercase()));
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, queries)
}

#[tokio::test]
async fn lookup_through_the_server_table_and_per_call_override() {
    let answers = vec![
        (
            "example.test",
            fixture("verisign.txt").replace("\n", "\r\n"),
        ),
        ("example.ru", fixture("tcinet.txt")),
    ];
    let (port, queries) = start_server(answers, Duration::ZERO).await;
    let server = format!("127.0.0.1:{port}");
    let mut table = WhoisServers::empty();
    table.insert("test", &server).expect("insert");
    let options = RegistrationOptions {
        per_server_interval: Duration::ZERO,
        ..RegistrationOptions::default()
    };
    // No RDAP service at all: WHOIS is the fallback.
    let client = RegistrationClient::new(Bootstrap::empty(), table, options).expect("client");

    let reg = client
        .lookup_domain("www.example.test")
        .await
        .expect("registration");
    assert_eq!(reg.domain, "example.test");
    assert_eq!(reg.source, RegistrationSource::Whois);
    assert_eq!(reg.server, server);
    assert_eq!(reg.registrar_iana_id, Some(376));
    assert_eq!(reg.expires, utc(2025, 8, 13, 4, 0, 0));
    assert_eq!(
        queries.lock().expect("lock").as_slice(),
        ["example.test\r\n"]
    );

    // A suffix the table lacks, with the server given for this call.
    let overrides = LookupOverrides {
        whois_server: Some(server.clone()),
        ..LookupOverrides::default()
    };
    let ru = client
        .lookup_domain_with("example.ru", &overrides)
        .await
        .expect("override");
    assert_eq!(ru.expires, utc(2026, 2, 28, 21, 0, 0));
    // Without it, there is no server to ask.
    let err = client
        .lookup_domain("other.ru")
        .await
        .expect_err("no server");
    assert!(matches!(err, EnrichError::NoServer { .. }), "{err}");

    // "No match" is not registered.
    let err = client
        .lookup_domain("unregistered.test")
        .await
        .expect_err("no match");
    assert_eq!(
        err.to_string(),
        format!("unregistered.test: not registered according to {server}")
    );
}

#[tokio::test]
async fn caps_time_limits_and_refusals() {
    let huge = "Registrar: X\r\n".repeat(30_000);
    let (port, _) = start_server(vec![("huge.test", huge)], Duration::ZERO).await;
    let limiter = Arc::new(ServerRateLimiter::new(Duration::ZERO));
    let client = WhoisClient::new(
        WhoisServers::empty(),
        WhoisOptions::default(),
        Arc::clone(&limiter),
    );
    let server = format!("127.0.0.1:{port}");
    let err = client
        .lookup("huge.test", Some(&server))
        .await
        .expect_err("over the cap");
    assert_eq!(
        err.to_string(),
        format!("{server}: the answer is larger than the cap of 262144 bytes")
    );

    let (slow_port, _) = start_server(vec![], Duration::from_secs(5)).await;
    let quick = WhoisClient::new(
        WhoisServers::empty(),
        WhoisOptions {
            timeout: Duration::from_millis(300),
            ..WhoisOptions::default()
        },
        Arc::clone(&limiter),
    );
    let started = Instant::now();
    let slow = format!("127.0.0.1:{slow_port}");
    let err = quick
        .lookup("slow.test", Some(&slow))
        .await
        .expect_err("slow");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        err.to_string(),
        format!("{slow}: no complete answer within 300ms")
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("address").port();
    drop(closed);
    let err = client
        .lookup("example.test", Some(&format!("127.0.0.1:{closed_port}")))
        .await
        .expect_err("refused");
    assert!(
        err.to_string()
            .starts_with(&format!("127.0.0.1:{closed_port}: connect: ")),
        "{err}"
    );

    let err = client
        .lookup("example.test", Some("127.0.0.1:0"))
        .await
        .expect_err("port 0");
    assert!(matches!(err, EnrichError::Name { .. }), "{err}");
}
