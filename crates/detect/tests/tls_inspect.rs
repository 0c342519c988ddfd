//! TLS inspection against real TLS servers on 127.0.0.1 with certificates made here.

use std::error::Error;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portgate_detect::{TlsError, TlsOptions, inspect_tls, inspect_tls_at};
use portgate_model::CertFailure;
use portgate_test_support::certs::{Ca, DAY, Leaf, ca_file, make_ca, make_leaf, server_config};
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tempfile::NamedTempFile;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

type TestResult = Result<(), Box<dyn Error>>;

/// A TLS server on 127.0.0.1 that serves one connection at a time.
async fn tls_server(config: ServerConfig) -> Result<SocketAddr, Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 1024];
                    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await;
                }
            });
        }
    });
    Ok(addr)
}

async fn serve_leaf(leaf: &Leaf, ca: Option<&Ca>) -> Result<SocketAddr, Box<dyn Error>> {
    let mut chain = vec![leaf.der.clone()];
    if let Some(ca) = ca {
        chain.push(CertificateDer::from_pem_slice(ca.pem.as_bytes())?);
    }
    tls_server(server_config(chain, &leaf.key, false)?).await
}

fn opts_with(file: &NamedTempFile) -> TlsOptions {
    TlsOptions {
        ca_file: Some(file.path().to_path_buf()),
        timeout: Duration::from_secs(5),
        ..TlsOptions::default()
    }
}

use rustls_pki_types::pem::PemObject;

fn rfc3339(t: OffsetDateTime) -> Result<String, Box<dyn Error>> {
    Ok(t.format(&time::format_description::well_known::Rfc3339)?)
}

#[tokio::test]
async fn valid_chain() -> TestResult {
    let ca = make_ca()?;
    let leaf = make_leaf(
        &["app.pg.test"],
        -DAY,
        DAY * 30 + time::Duration::hours(1),
        Some(&ca),
    )?;
    let addr = serve_leaf(&leaf, Some(&ca)).await?;
    let file = ca_file(&ca)?;
    let info = inspect_tls_at(addr, Some("app.pg.test"), &opts_with(&file)).await?;
    assert!(info.valid, "{info:?}");
    assert!(info.reasons.is_empty(), "{info:?}");
    assert_eq!(info.protocol, "TLSv1.3");
    assert!(
        info.cipher_suite.starts_with("TLS13_"),
        "{}",
        info.cipher_suite
    );
    assert_eq!(info.subject, "CN=app.pg.test");
    assert_eq!(info.issuer, "CN=PG Test CA");
    assert_eq!(info.san_dns, vec!["app.pg.test".to_string()]);
    assert!(info.san_ips.is_empty());
    assert_eq!(info.days_left, Some(30));
    assert_eq!(
        info.not_after.as_deref(),
        Some(rfc3339(leaf.not_after)?.as_str())
    );
    assert!(info.not_before.is_some());
    assert!(!info.self_signed);
    assert_eq!(info.chain_len, 2);
    assert_eq!(info.alpn, None);
    assert_eq!(info.server_name.as_deref(), Some("app.pg.test"));
    let json = serde_json::to_value(&info)?;
    assert_eq!(json["protocol"], "TLSv1.3");
    assert_eq!(json["valid"], true);
    Ok(())
}

#[tokio::test]
async fn valid_chain_without_name_over_generic_stream() -> TestResult {
    let ca = make_ca()?;
    let leaf = make_leaf(&["app.pg.test"], -DAY, DAY * 30, Some(&ca))?;
    let addr = serve_leaf(&leaf, Some(&ca)).await?;
    let file = ca_file(&ca)?;
    let tcp = TcpStream::connect(addr).await?;
    let info = inspect_tls(tcp, None, &opts_with(&file)).await?;
    assert!(info.valid, "{info:?}");
    assert!(info.reasons.is_empty(), "{info:?}");
    Ok(())
}

#[tokio::test]
async fn expired_leaf() -> TestResult {
    let ca = make_ca()?;
    let leaf = make_leaf(&["app.pg.test"], -DAY * 30, -DAY * 2, Some(&ca))?;
    let addr = serve_leaf(&leaf, Some(&ca)).await?;
    let file = ca_file(&ca)?;
    let info = inspect_tls_at(addr, Some("app.pg.test"), &opts_with(&file)).await?;
    assert!(!info.valid);
    assert_eq!(info.reasons, vec![CertFailure::Expired]);
    assert!(
        info.days_left.is_some_and(|d| d < 0),
        "{:?}",
        info.days_left
    );
    let json = serde_json::to_value(&info)?;
    assert_eq!(json["reasons"][0], "expired");
    Ok(())
}

#[tokio::test]
async fn not_yet_valid_leaf() -> TestResult {
    let ca = make_ca()?;
    let leaf = make_leaf(&["app.pg.test"], DAY * 2, DAY * 30, Some(&ca))?;
    let addr = serve_leaf(&leaf, Some(&ca)).await?;
    let file = ca_file(&ca)?;
    let info = inspect_tls_at(addr, Some("app.pg.test"), &opts_with(&file)).await?;
    assert!(!info.valid);
    assert_eq!(info.reasons, vec![CertFailure::NotYetValid]);
    let json = serde_json::to_value(&info)?;
    assert_eq!(json["reasons"][0], "not-yet-valid");
    Ok(())
}

#[tokio::test]
async fn self_signed_leaf() -> TestResult {
    let ca = make_ca()?;
    let leaf = make_leaf(&["app.pg.test"], -DAY, DAY * 30, None)?;
    let addr = serve_leaf(&leaf, None).await?;
    let file = ca_file(&ca)?;
    let info = inspect_tls_at(addr, Some("app.pg.test"), &opts_with(&file)).await?;
    assert!(!info.valid);
    assert!(info.self_signed);
    assert_eq!(info.chain_len, 1);
    assert!(info.reasons.contains(&CertFailure::SelfSigned), "{info:?}");
    assert!(
        info.reasons.contains(&CertFailure::UntrustedIssuer),
        "{info:?}"
    );
    assert_eq!(info.reasons.len(), 2, "{info:?}");
    Ok(())
}

#[tokio::test]
async fn self_signed_leaf_pinned_as_root_is_valid() -> TestResult {
    let leaf = make_leaf(&["app.pg.test"], -DAY, DAY * 30, None)?;
    let addr = serve_leaf(&leaf, None).await?;
    let mut file = NamedTempFile::new()?;
    file.write_all(leaf.pem.as_bytes())?;
    file.flush()?;
    let info = inspect_tls_at(addr, Some("app.pg.test"), &opts_with(&file)).await?;
    assert!(info.self_signed);
    assert!(info.valid, "{info:?}");
    Ok(())
}

#[tokio::test]
async fn name_mismatch() -> TestResult {
    let ca = make_ca()?;
    let leaf = make_leaf(&["other.test"], -DAY, DAY * 30, Some(&ca))?;
    let addr = serve_leaf(&leaf, Some(&ca)).await?;
    let file = ca_file(&ca)?;
    let info = inspect_tls_at(addr, Some("app.pg.test"), &opts_with(&file)).await?;
    assert!(!info.valid);
    assert_eq!(info.reasons, vec![CertFailure::NameMismatch]);
    assert_eq!(info.san_dns, vec!["other.test".to_string()]);
    Ok(())
}

#[tokio::test]
async fn expired_self_signed_wrong_name_reports_all() -> TestResult {
    let ca = make_ca()?;
    let leaf = make_leaf(&["other.test"], -DAY * 30, -DAY, None)?;
    let addr = serve_leaf(&leaf, None).await?;
    let file = ca_file(&ca)?;
    let info = inspect_tls_at(addr, Some("app.pg.test"), &opts_with(&file)).await?;
    assert!(!info.valid);
    for r in [
        CertFailure::Expired,
        CertFailure::SelfSigned,
        CertFailure::UntrustedIssuer,
        CertFailure::NameMismatch,
    ] {
        assert!(info.reasons.contains(&r), "missing {r:?} in {info:?}");
    }
    Ok(())
}

#[tokio::test]
async fn ip_target_matches_ip_san() -> TestResult {
    let ca = make_ca()?;
    let leaf = make_leaf(&["127.0.0.1"], -DAY, DAY * 30, Some(&ca))?;
    let addr = serve_leaf(&leaf, Some(&ca)).await?;
    let file = ca_file(&ca)?;
    let info = inspect_tls_at(addr, Some("127.0.0.1"), &opts_with(&file)).await?;
    assert_eq!(info.san_ips, vec![IpAddr::from([127, 0, 0, 1])]);
    assert!(
        !info.reasons.contains(&CertFailure::NameMismatch),
        "{info:?}"
    );
    assert!(info.valid, "{info:?}");

    let info = inspect_tls_at(addr, Some("127.0.0.2"), &opts_with(&file)).await?;
    assert_eq!(info.reasons, vec![CertFailure::NameMismatch]);
    Ok(())
}

#[tokio::test]
async fn tls12_only_server() -> TestResult {
    let ca = make_ca()?;
    let leaf = make_leaf(&["app.pg.test"], -DAY, DAY * 30, Some(&ca))?;
    let config = server_config(vec![leaf.der.clone()], &leaf.key, true)?;
    let addr = tls_server(config).await?;
    let file = ca_file(&ca)?;
    let info = inspect_tls_at(addr, Some("app.pg.test"), &opts_with(&file)).await?;
    assert_eq!(info.protocol, "TLSv1.2");
    assert!(
        info.cipher_suite.starts_with("TLS_ECDHE_"),
        "{}",
        info.cipher_suite
    );
    assert!(info.valid, "{info:?}");
    Ok(())
}

#[tokio::test]
async fn alpn_is_reported() -> TestResult {
    let ca = make_ca()?;
    let leaf = make_leaf(&["app.pg.test"], -DAY, DAY * 30, Some(&ca))?;
    let mut config = server_config(vec![leaf.der.clone()], &leaf.key, false)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let addr = tls_server(config).await?;
    let file = ca_file(&ca)?;
    let opts = TlsOptions {
        alpn: vec!["h2".into(), "http/1.1".into()],
        ..opts_with(&file)
    };
    let info = inspect_tls_at(addr, Some("app.pg.test"), &opts).await?;
    assert_eq!(info.alpn.as_deref(), Some("h2"));
    Ok(())
}

#[tokio::test]
async fn oversized_chain_is_flagged() -> TestResult {
    let ca = make_ca()?;
    let leaf = make_leaf(&["app.pg.test"], -DAY, DAY * 30, Some(&ca))?;
    let addr = serve_leaf(&leaf, Some(&ca)).await?;
    let file = ca_file(&ca)?;
    let opts = TlsOptions {
        max_chain_certs: 1,
        ..opts_with(&file)
    };
    let info = inspect_tls_at(addr, Some("app.pg.test"), &opts).await?;
    assert!(!info.valid);
    assert!(
        info.reasons
            .iter()
            .any(|r| matches!(r, CertFailure::Other(m) if m.contains("chain too large"))),
        "{info:?}"
    );
    Ok(())
}

#[tokio::test]
async fn garbage_server_fails_fast() -> TestResult {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 2048];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n\xff\xfe\x00garbage garbage")
                .await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    });
    let opts = TlsOptions {
        timeout: Duration::from_secs(5),
        ..TlsOptions::default()
    };
    let start = Instant::now();
    let res = inspect_tls_at(addr, Some("app.pg.test"), &opts).await;
    assert!(matches!(res, Err(TlsError::Handshake(_))), "{res:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn silent_server_times_out() -> TestResult {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Ok((tcp, _)) = listener.accept().await {
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(tcp);
        }
    });
    let opts = TlsOptions {
        timeout: Duration::from_millis(500),
        ..TlsOptions::default()
    };
    let start = Instant::now();
    let res = inspect_tls_at(addr, Some("app.pg.test"), &opts).await;
    assert!(matches!(res, Err(TlsError::Timeout(_))), "{res:?}");
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    Ok(())
}

#[tokio::test]
async fn bad_ca_file_is_named() -> TestResult {
    let opts = TlsOptions {
        ca_file: Some("/nonexistent/portgate-ca.pem".into()),
        ..TlsOptions::default()
    };
    let res = inspect_tls_at("127.0.0.1:9".parse()?, Some("app.pg.test"), &opts).await;
    match res {
        Err(e @ TlsError::CaFile { .. }) => {
            assert!(
                e.to_string().contains("/nonexistent/portgate-ca.pem"),
                "{e}"
            );
        }
        other => panic!("expected CaFile error, got {other:?}"),
    }

    let mut junk = NamedTempFile::new()?;
    junk.write_all(b"not a certificate\n")?;
    junk.flush()?;
    let res = inspect_tls_at(
        "127.0.0.1:9".parse()?,
        Some("app.pg.test"),
        &opts_with(&junk),
    )
    .await;
    match res {
        Err(e @ TlsError::CaFile { .. }) => {
            assert!(
                e.to_string().contains(&junk.path().display().to_string()),
                "{e}"
            );
        }
        other => panic!("expected CaFile error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn system_roots_do_not_trust_test_ca() -> TestResult {
    let ca = make_ca()?;
    let leaf = make_leaf(&["app.pg.test"], -DAY, DAY * 30, Some(&ca))?;
    let addr = serve_leaf(&leaf, Some(&ca)).await?;
    let opts = TlsOptions {
        timeout: Duration::from_secs(5),
        ..TlsOptions::default()
    };
    let info = inspect_tls_at(addr, Some("app.pg.test"), &opts).await?;
    assert!(!info.valid);
    assert_eq!(info.reasons, vec![CertFailure::UntrustedIssuer]);
    assert!(!info.self_signed);
    Ok(())
}

/// A hostile server sending a giant certificate chain (1,000 certificates, several
/// hundred KiB): the client gives up quickly instead of buffering or verifying it all.
#[tokio::test]
async fn giant_chain_is_bounded() -> TestResult {
    let ca = make_ca()?;
    let leaf = make_leaf(&["app.pg.test"], -DAY, DAY * 30, Some(&ca))?;
    let ca_der = CertificateDer::from_pem_slice(ca.pem.as_bytes())?;
    let mut chain = vec![leaf.der.clone()];
    chain.extend(std::iter::repeat_n(ca_der, 1000));
    let total: usize = chain.iter().map(|c| c.len()).sum();
    assert!(total > 256 * 1024, "{total}");
    let addr = tls_server(server_config(chain, &leaf.key, false)?).await?;
    let started = Instant::now();
    let result = inspect_tls_at(addr, Some("app.pg.test"), &TlsOptions::default()).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    match result {
        // rustls refuses a handshake message that large ...
        Err(TlsError::Handshake(message)) => assert!(!message.is_empty()),
        // ... or, if it ever accepts it, the chain is flagged and not verified.
        Ok(info) => {
            assert!(!info.valid);
            assert!(
                info.reasons
                    .iter()
                    .any(|r| matches!(r, CertFailure::Other(m) if m.contains("chain too large"))),
                "{info:?}"
            );
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
    Ok(())
}
