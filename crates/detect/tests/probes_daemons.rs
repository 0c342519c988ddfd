//! Detection against the real daemons of this machine (Redis, PostgreSQL, MariaDB,
//! RabbitMQ, Mosquitto, NATS on their default ports on 127.0.0.1). A daemon that is not
//! listening is skipped with a `SKIP <name>: <reason>` line.

use std::net::SocketAddr;
use std::time::Duration;

use portgate_detect::probes::{DetectOptions, Detection, ProbeDb, detect};
use regex::Regex;

async fn run(name: &str, port: u16) -> Option<Detection> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            println!("SKIP {name}: 127.0.0.1:{port}: {e}");
            return None;
        }
        Err(_) => {
            println!("SKIP {name}: 127.0.0.1:{port}: connect timed out");
            return None;
        }
    }
    let db = ProbeDb::builtin().expect("built-in db");
    let opts = DetectOptions {
        total_timeout: Duration::from_secs(10),
        ..DetectOptions::default()
    };
    let d = detect(addr, &db, &opts).await;
    println!("{name}: {d:?}");
    Some(d)
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
    let Some(d) = run("redis", 6379).await else {
        return;
    };
    assert_eq!(d.service.as_deref(), Some("redis"));
    assert_eq!(d.product.as_deref(), Some("Redis"));
    assert_eq!(d.probe.as_deref(), Some("redis"));
    assert!(!d.soft);
    assert_versionish(&d);
    // The local Redis runs without a password.
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
