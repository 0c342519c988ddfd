//! Detection against real daemons: a Redis started here on a free port, and the daemons
//! of this machine (PostgreSQL, MariaDB, RabbitMQ, Mosquitto, NATS on their default ports
//! on 127.0.0.1). A daemon that is not listening is skipped through
//! `portgate_test_support::skip` (a failure under strict mode).

use std::net::SocketAddr;
use std::time::Duration;

use portgate_detect::{DetectOptions, ProbeDb, detect};
use portgate_model::Detection;
use portgate_test_support::daemons::Redis;
use portgate_test_support::skip;
use regex::Regex;

/// Detection on the machine's daemon on 127.0.0.1:`port`; `None` after a skip when
/// nothing listens there.
async fn run(name: &str, port: u16) -> Option<Detection> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            skip(name, format_args!("127.0.0.1:{port}: {e}"));
            return None;
        }
        Err(_) => {
            skip(name, format_args!("127.0.0.1:{port}: connect timed out"));
            return None;
        }
    }
    Some(detect_at(name, addr).await)
}

async fn detect_at(name: &str, addr: SocketAddr) -> Detection {
    let db = ProbeDb::builtin().expect("built-in db");
    let opts = DetectOptions {
        total_timeout: Duration::from_secs(10),
        ..DetectOptions::default()
    };
    let d = detect(addr, &db, &opts).await;
    println!("{name}: {d:?}");
    d
}

fn assert_versionish(d: &Detection) {
    let re = Regex::new(r"^\d+\.\d+").expect("regex");
    let v = d.version.as_deref().unwrap_or("");
    assert!(
        re.is_match(v),
        "version {v:?} does not look like a version: {d:?}"
    );
}

#[tokio::test]
async fn redis() {
    // A Redis of its own, on a port that is not Redis's: the probes still find it.
    let Some(redis) = Redis::start("redis") else {
        return;
    };
    let d = detect_at("redis", redis.addr()).await;
    assert_eq!(d.service.as_deref(), Some("redis"));
    assert_eq!(d.product.as_deref(), Some("Redis"));
    assert_eq!(d.probe.as_deref(), Some("redis"));
    assert!(!d.soft);
    assert_versionish(&d);
    // It runs without a password.
    assert_eq!(d.info.as_deref(), Some("no authentication"));
}

#[tokio::test]
async fn postgresql() {
    let Some(d) = run("postgresql", 5432).await else {
        return;
    };
    assert_eq!(d.service.as_deref(), Some("postgresql"));
    assert_eq!(d.product.as_deref(), Some("PostgreSQL"));
    assert_eq!(d.probe.as_deref(), Some("postgresql-startup"));
    assert!(!d.soft);
    // PostgreSQL discloses server_version only after authentication; our probe user does
    // not exist, so no version is expected here (but one is accepted if it shows).
    if d.version.is_some() {
        assert_versionish(&d);
    }
}

#[tokio::test]
async fn mariadb() {
    let Some(d) = run("mariadb", 3306).await else {
        return;
    };
    assert_eq!(d.service.as_deref(), Some("mysql"));
    assert_eq!(d.product.as_deref(), Some("MariaDB"));
    assert_eq!(d.probe.as_deref(), Some("null"));
    assert_versionish(&d);
    assert!(
        d.cpe
            .as_deref()
            .unwrap_or("")
            .starts_with("cpe:/a:mariadb:mariadb:")
    );
}

#[tokio::test]
async fn rabbitmq() {
    let Some(d) = run("rabbitmq", 5672).await else {
        return;
    };
    assert_eq!(d.service.as_deref(), Some("amqp"));
    assert_eq!(d.product.as_deref(), Some("RabbitMQ"));
    assert_eq!(d.probe.as_deref(), Some("amqp"));
    assert_versionish(&d);
    assert!(
        d.info.as_deref().unwrap_or("").starts_with("Erlang/OTP"),
        "{d:?}"
    );
}

#[tokio::test]
async fn mosquitto() {
    let Some(d) = run("mosquitto", 1883).await else {
        return;
    };
    assert_eq!(d.service.as_deref(), Some("mqtt"));
    assert_eq!(d.probe.as_deref(), Some("mqtt"));
    // A CONNACK does not tell which broker sent it.
    assert_eq!(d.product, None);
    assert!(d.info.is_some());
}

#[tokio::test]
async fn nats() {
    let Some(d) = run("nats", 4222).await else {
        return;
    };
    assert_eq!(d.service.as_deref(), Some("nats"));
    assert_eq!(d.product.as_deref(), Some("NATS"));
    assert_eq!(d.probe.as_deref(), Some("null"));
    assert_versionish(&d);
}
