//! DNS evidence from a real name server: dnsmasq on 127.0.0.1 at a free port, its
//! records given on its command line (every record type, a CNAME chain, TXT records
//! that need escaping, cutting and TCP). When dnsmasq cannot be started the tests say
//! why and pass, unless `PORTGATE_TEST_STRICT=1`, where they fail with the reason.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portgate_enrich::dns::{DnsOptions, DnsResolver, MxRecord};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// A DNS name in wire format, as hex.
fn wire_name(name: &str) -> String {
    let mut out = String::new();
    for label in name.split('.') {
        out.push_str(&format!("{:02x}", label.len()));
        out.extend(label.bytes().map(|b| format!("{b:02x}")));
    }
    out.push_str("00");
    out
}

/// TXT record data (character-strings) as hex.
fn wire_txt(parts: &[&[u8]]) -> String {
    let mut out = String::new();
    for part in parts {
        out.push_str(&format!("{:02x}", part.len()));
        out.extend(part.iter().map(|b| format!("{b:02x}")));
    }
    out
}

/// The running server; killed (by its pid) and reaped when dropped.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1.
fn free_port() -> Option<u16> {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
        let port = udp.local_addr().ok()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Some(port);
        }
    }
    None
}

fn records() -> Vec<String> {
    // Five character-strings of 255 bytes (dnsmasq splits a TXT at its commas).
    let long: Vec<String> = (0..5u8)
        .map(|i| char::from(b'a' + i).to_string().repeat(255))
        .collect();
    vec![
        "--local=/example.test/".into(),
        "--host-record=example.test,198.18.0.1".into(),
        "--host-record=www.example.test,198.18.0.10,2001:db8::10".into(),
        "--host-record=www.example.test,198.18.0.11".into(),
        "--host-record=mail.example.test,198.18.0.25".into(),
        "--cname=alias.example.test,www.example.test".into(),
        "--cname=alias2.example.test,alias.example.test".into(),
        "--mx-host=example.test,mail.example.test,10".into(),
        "--mx-host=example.test,backup-mx.example.test,20".into(),
        "--txt-record=example.test,v=spf1 mx -all".into(),
        "--txt-record=example.test,google-site-verification=abc123".into(),
        "--caa-record=example.test,0,issue,letsencrypt.org".into(),
        "--caa-record=example.test,128,iodef,mailto:security@example.test".into(),
        format!("--dns-rr=example.test,2,{}", wire_name("ns1.example.test")),
        format!("--dns-rr=example.test,2,{}", wire_name("ns2.example.test")),
        format!(
            "--dns-rr=txt.example.test,16,{}",
            wire_txt(&[b"evil\x1b[2J\xff"])
        ),
        format!(
            "--dns-rr=txt.example.test,16,{}",
            wire_txt(&[b"part one ", b"part two"])
        ),
        format!("--txt-record=long.example.test,{}", long.join(",")),
    ]
}

/// Starts dnsmasq, or says why it could not.
fn start() -> Result<Dnsmasq, String> {
    if !std::path::Path::new(DNSMASQ).exists() {
        return Err(format!(
            "{DNSMASQ} is not installed (Debian package dnsmasq-base)"
        ));
    }
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port().ok_or("no free port on 127.0.0.1")?;
        let mut child = Command::new(DNSMASQ)
            .args([
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--keep-in-foreground",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--pid-file=",
                "--log-facility=-",
                &format!("--port={port}"),
            ])
            .args(records())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {DNSMASQ}: {e}"))?;
        // dnsmasq binds before it says it started; a failure ends it at once.
        std::thread::sleep(Duration::from_millis(300));
        match child.try_wait() {
            Ok(None) => {
                return Ok(Dnsmasq {
                    child,
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                });
            }
            Ok(Some(status)) => {
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                last = format!("dnsmasq exited ({status}): {}", stderr.trim());
            }
            Err(e) => last = format!("dnsmasq: {e}"),
        }
    }
    Err(last)
}

/// dnsmasq, or `None` after printing why the test is skipped (a failure under
/// `PORTGATE_TEST_STRICT=1`).
fn dnsmasq_or_skip(test: &str) -> Option<Dnsmasq> {
    match start() {
        Ok(d) => Some(d),
        Err(reason) => {
            if std::env::var("PORTGATE_TEST_STRICT").as_deref() == Ok("1") {
                panic!("{test}: dnsmasq could not be started: {reason}");
            }
            eprintln!("{test}: skipped: dnsmasq could not be started: {reason}");
            None
        }
    }
}

fn resolver(server: SocketAddr) -> DnsResolver {
    DnsResolver::new(DnsOptions {
        server: Some(server),
        query_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(10),
        ..DnsOptions::default()
    })
    .expect("resolver")
}

/// Waits until the server answers.
async fn ready(resolver: &DnsResolver) {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if let Ok(e) = resolver.evidence("www.example.test").await
            && !e.a.is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_record_type_from_dnsmasq() {
    let Some(server) = dnsmasq_or_skip("every_record_type_from_dnsmasq") else {
        return;
    };
    let resolver = resolver(server.addr);
    ready(&resolver).await;

    let e = resolver.evidence("example.test").await.expect("evidence");
    assert_eq!(e.name, "example.test");
    assert_eq!(e.resolver, server.addr.to_string());
    assert!(e.errors.is_empty(), "{:?}", e.errors);
    assert!(e.cname_chain.is_empty());
    assert_eq!(
        e.a,
        ["198.18.0.1".parse::<std::net::Ipv4Addr>().expect("ip")]
    );
    assert!(e.aaaa.is_empty(), "no AAAA is an empty list");
    assert_eq!(
        e.mx,
        [
            MxRecord {
                preference: 10,
                exchange: "mail.example.test".into()
            },
            MxRecord {
                preference: 20,
                exchange: "backup-mx.example.test".into()
            },
        ]
    );
    assert_eq!(e.ns, ["ns1.example.test", "ns2.example.test"]);
    assert_eq!(e.txt, ["google-site-verification=abc123", "v=spf1 mx -all"]);
    assert_eq!(
        e.caa,
        [
            "0 issue \"letsencrypt.org\"",
            "128 iodef \"mailto:security@example.test\"",
        ]
    );

    let www = resolver.evidence("WWW.example.test.").await.expect("www");
    assert_eq!(www.name, "www.example.test");
    assert_eq!(
        www.a,
        [
            "198.18.0.10".parse::<std::net::Ipv4Addr>().expect("ip"),
            "198.18.0.11".parse().expect("ip")
        ]
    );
    assert_eq!(
        www.aaaa,
        ["2001:db8::10".parse::<std::net::Ipv6Addr>().expect("ip")]
    );
    assert!(www.mx.is_empty() && www.ns.is_empty() && www.txt.is_empty() && www.caa.is_empty());
    assert!(www.errors.is_empty(), "{:?}", www.errors);
}

#[tokio::test]
async fn cname_chain_and_missing_names() {
    let Some(server) = dnsmasq_or_skip("cname_chain_and_missing_names") else {
        return;
    };
    let resolver = resolver(server.addr);
    ready(&resolver).await;

    let e = resolver
        .evidence("alias2.example.test")
        .await
        .expect("evidence");
    assert_eq!(e.cname_chain, ["alias.example.test", "www.example.test"]);
    assert_eq!(
        e.addresses(),
        [
            "198.18.0.10".parse::<std::net::IpAddr>().expect("ip"),
            "198.18.0.11".parse().expect("ip"),
            "2001:db8::10".parse().expect("ip"),
        ]
    );
    assert!(e.errors.is_empty(), "{:?}", e.errors);

    let missing = resolver
        .evidence("missing.example.test")
        .await
        .expect("evidence");
    assert!(missing.a.is_empty() && missing.aaaa.is_empty() && missing.cname_chain.is_empty());
    assert_eq!(
        missing.errors,
        ["missing.example.test does not exist (NXDOMAIN)"]
    );

    // An invalid name is the only error of the call itself.
    assert!(resolver.evidence("bad name.example.test").await.is_err());
    assert!(resolver.evidence("198.18.0.1").await.is_err());
}

#[tokio::test]
async fn txt_records_are_escaped_cut_and_fetched_over_tcp() {
    let Some(server) = dnsmasq_or_skip("txt_records_are_escaped_cut_and_fetched_over_tcp") else {
        return;
    };
    let resolver = resolver(server.addr);
    ready(&resolver).await;

    let e = resolver
        .evidence("txt.example.test")
        .await
        .expect("evidence");
    assert_eq!(e.txt, ["evil\\u{1b}[2J\\xff", "part one part two"]);

    // 1,275 bytes: the answer is truncated over UDP and fetched again over TCP; the
    // record is cut to 1,024 bytes.
    let long = resolver
        .evidence("long.example.test")
        .await
        .expect("evidence");
    assert!(long.errors.is_empty(), "{:?}", long.errors);
    assert_eq!(long.txt.len(), 1);
    let expected: String = (0..5u8)
        .flat_map(|i| std::iter::repeat_n(char::from(b'a' + i), 255))
        .take(1024)
        .chain(['…'])
        .collect();
    assert_eq!(long.txt[0], expected);

    // Fewer records kept when asked.
    let capped = DnsResolver::new(DnsOptions {
        server: Some(server.addr),
        max_records: 1,
        max_txt_bytes: 8,
        ..DnsOptions::default()
    })
    .expect("resolver")
    .evidence("example.test")
    .await
    .expect("evidence");
    assert_eq!(capped.txt, ["google-s…"]);
    assert_eq!(capped.mx.len(), 1);
}

#[tokio::test]
async fn a_silent_server_times_out_within_the_deadline() {
    // A UDP socket on loopback that never answers (and no TCP listener).
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("address");
    let resolver = DnsResolver::new(DnsOptions {
        server: Some(addr),
        query_timeout: Duration::from_millis(300),
        deadline: Duration::from_millis(600),
        ..DnsOptions::default()
    })
    .expect("resolver");
    let started = Instant::now();
    let e = resolver
        .evidence("www.example.test")
        .await
        .expect("evidence");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(e.a.is_empty());
    assert!(
        e.errors.iter().any(|m| m == "A: no answer within 300ms"),
        "{:?}",
        e.errors
    );
    assert_eq!(e.errors.len(), 7, "one per query: {:?}", e.errors);

    // The deadline for the name cuts queries short.
    let hurried = DnsResolver::new(DnsOptions {
        server: Some(addr),
        query_timeout: Duration::from_secs(5),
        deadline: Duration::from_millis(300),
        ..DnsOptions::default()
    })
    .expect("resolver");
    let started = Instant::now();
    let e = hurried
        .evidence("www.example.test")
        .await
        .expect("evidence");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        e.errors
            .iter()
            .any(|m| m == "MX: no answer before the deadline of 300ms for the name"),
        "{:?}",
        e.errors
    );
}
