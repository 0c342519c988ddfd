//! Backends for the store tests (from portgate-test-support: a SQLite file in a temporary
//! directory and a fresh database on the PostgreSQL server of 127.0.0.1:5432, dropped
//! afterwards), and report fixtures.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use portgate_model::{
    DetectedService, HostReport, PortResult, PortState, Protocol, Reason, ScanMethod, ScanReport,
    ScanStatus, TargetReport, TlsSummary,
};
use portgate_store::Location;
use std::net::IpAddr;

pub use portgate_test_support::db::{TestDb, backends};

/// Where the store of `db` lies.
pub fn location(db: &TestDb) -> Location {
    match &db.sqlite_path {
        Some(path) => Location::Sqlite(path.clone()),
        None => Location::Postgres(db.url.clone()),
    }
}

pub fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("fixed date")
        + Duration::minutes(minutes)
}

pub fn port(port: u16, state: PortState) -> PortResult {
    PortResult {
        port,
        protocol: Protocol::Tcp,
        state,
        reason: match state {
            PortState::Open => Reason::SynAck,
            PortState::Closed => Reason::Reset,
            _ => Reason::NoResponse,
        },
        rtt_us: (state != PortState::Filtered).then_some(150),
        attempts: 1,
        at_ms: 3,
    }
}

pub fn service(port: u16, name: &str, product: &str, version: &str) -> DetectedService {
    DetectedService {
        port,
        protocol: Protocol::Tcp,
        detection: portgate_model::Detection {
            service: Some(name.into()),
            product: Some(product.into()),
            version: Some(version.into()),
            info: None,
            cpe: None,
            probe: Some("null".into()),
            soft: false,
            evidence: b"SSH-2.0-OpenSSH_9.6\r\n".to_vec().into(),
            tls: None,
            http: None,
            notes: vec![],
            vulnerabilities: None,
            applications: None,
        },
    }
}

pub fn tls(issuer: &str, fingerprint: &str, valid: bool) -> TlsSummary {
    TlsSummary {
        starttls: None,
        protocol: "TLSv1.3".into(),
        cipher_suite: "TLS13_AES_256_GCM_SHA384".into(),
        alpn: None,
        server_name: Some("app.example".into()),
        subject: "CN=app.example".into(),
        issuer: issuer.into(),
        san_dns: vec!["app.example".into()],
        san_ips: vec![],
        not_before: Some("2026-01-01T00:00:00Z".into()),
        not_after: Some("2027-01-01T00:00:00Z".into()),
        days_left: Some(31),
        self_signed: false,
        chain_len: 2,
        fingerprint_sha256: fingerprint.into(),
        valid,
        reasons: if valid {
            vec![]
        } else {
            vec![portgate_model::CertFailure::Expired]
        },
    }
}

pub fn host(target: &str, ip: &str, ports: Vec<PortResult>) -> HostReport {
    HostReport {
        target: target.into(),
        hostname: None,
        ip: ip.parse::<IpAddr>().expect("fixture address"),
        ports_requested: ports.len() as u32,
        ports,
        services: vec![],
        tarpit: None,
    }
}

pub fn report(started: DateTime<Utc>, hosts: Vec<HostReport>) -> ScanReport {
    let mut targets: Vec<TargetReport> = Vec::new();
    for h in &hosts {
        if let Some(t) = targets.iter_mut().find(|t| t.input == h.target) {
            t.addresses.push(h.ip);
            t.address_count += 1;
        } else {
            targets.push(TargetReport {
                input: h.target.clone(),
                kind: "ip".into(),
                addresses: vec![h.ip],
                address_count: 1,
                cname_chain: vec![],
                error: None,
            });
        }
    }
    ScanReport {
        method: ScanMethod::Connect,
        started_at: started,
        finished_at: started + Duration::seconds(2),
        status: ScanStatus::Completed,
        incomplete_reasons: vec![],
        targets,
        hosts,
        enrichment: None,
    }
}

/// A web host with ssh and https, one closed and one filtered port.
pub fn web_report(started: DateTime<Utc>, target: &str, ip: &str) -> ScanReport {
    let mut h = host(
        target,
        ip,
        vec![
            port(22, PortState::Open),
            port(80, PortState::Closed),
            port(443, PortState::Open),
            port(8080, PortState::Filtered),
        ],
    );
    let mut https = service(443, "https", "nginx", "1.24.0");
    https.detection.tls = Some(tls("CN=Test CA", "ab12", true));
    https.detection.http = Some(portgate_model::HttpInfo {
        url: format!("https://{ip}/"),
        tls: true,
        version: "HTTP/1.1".into(),
        status: 200,
        reason: "OK".into(),
        location: None,
        redirect_url: None,
        redirects_to_https: None,
        server: Some("nginx/1.24.0".into()),
        content_type: Some("text/html".into()),
        title: Some("Welcome".into()),
        security_headers: Default::default(),
        missing_security_headers: vec![],
        cookies: vec![],
        cors: None,
        head: b"HTTP/1.1 200 OK\r\n\r\n".to_vec().into(),
        head_truncated: false,
        body_bytes_read: 0,
        notes: vec![],
    });
    h.services = vec![service(22, "ssh", "OpenSSH", "9.6"), https];
    report(started, vec![h])
}
