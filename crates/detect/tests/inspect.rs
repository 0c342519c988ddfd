//! `inspect_port` end to end: STARTTLS dialogues, TLS from the first byte with HTTP or a
//! greeting inside, plain HTTP, the machine's real PostgreSQL (its SSLRequest), and
//! servers that misbehave. Every server is real: a socket on 127.0.0.1 speaking the
//! protocol, a rustls TLS server with a certificate made here.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portgate_detect::ProbeDb;
use portgate_detect::{InspectOptions, inspect_port};
use portgate_detect::{StartTlsError, StartTlsOptions, Upgrade, upgrade};
use portgate_test_support::certs::{DAY, make_ca, make_leaf, server_config};
use portgate_test_support::skip;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

type TestResult = Result<(), Box<dyn Error>>;

/// The plaintext dialogue before TLS.
#[derive(Clone, Copy, PartialEq)]
enum Plain {
    /// TLS from the first byte.
    Direct,
    /// SMTP with STARTTLS offered (Postfix-like greeting).
    Smtp,
    /// SMTP without STARTTLS in its EHLO answer.
    SmtpWithoutTls,
    /// IMAP (Dovecot-like greeting).
    Imap,
    /// POP3 (Dovecot-like greeting).
    Pop3,
    /// FTP (vsftpd-like greeting).
    Ftp,
    /// MySQL protocol 10 handshake advertising CLIENT_SSL.
    Mysql,
}

/// A MySQL 8.0 server's initial handshake packet (HandshakeV10, as the MySQL client/server
/// protocol documentation lays it out), advertising CLIENT_SSL.
fn mysql_handshake() -> Vec<u8> {
    let mut p = vec![10u8];
    p.extend_from_slice(b"8.0.36\0");
    p.extend_from_slice(&42u32.to_le_bytes()); // connection id
    p.extend_from_slice(b"abcdefgh"); // auth-plugin-data part 1
    p.push(0); // filler
    p.extend_from_slice(&0xffffu16.to_le_bytes()); // capabilities, lower (CLIENT_SSL set)
    p.push(0xff); // utf8mb4_0900_ai_ci
    p.extend_from_slice(&0x0002u16.to_le_bytes()); // status: autocommit
    p.extend_from_slice(&0xdfffu16.to_le_bytes()); // capabilities, upper
    p.push(21); // auth-plugin-data length
    p.extend_from_slice(&[0u8; 10]); // reserved
    p.extend_from_slice(b"ijklmnopqrst\0"); // auth-plugin-data part 2
    p.extend_from_slice(b"caching_sha2_password\0");
    let len = p.len() as u32;
    let mut packet = len.to_le_bytes()[..3].to_vec();
    packet.push(0); // sequence id
    packet.extend_from_slice(&p);
    packet
}

/// What the service does once TLS is up.
#[derive(Clone, Copy)]
enum App {
    /// Answers any request with this HTTP response.
    Http(&'static str),
    /// Greets with this line, then answers every line with `BAD`.
    Greeting(&'static str),
}

/// A test certificate for `app.pg.test`, signed by a test CA.
fn tls_config() -> Result<(ServerConfig, String), Box<dyn Error>> {
    let ca = make_ca()?;
    let leaf = make_leaf(&["app.pg.test"], -DAY, DAY * 90, Some(&ca))?;
    let chain = vec![
        leaf.der.clone(),
        CertificateDer::from_pem_slice(ca.pem.as_bytes())?,
    ];
    Ok((server_config(chain, &leaf.key, false)?, ca.pem))
}

/// A server on 127.0.0.1 running `plain`, then TLS, then `app`, on every connection.
async fn server(plain: Plain, app: App) -> Result<SocketAddr, Box<dyn Error>> {
    let (config, _) = tls_config()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(10),
                    serve_one(tcp, plain, app, acceptor),
                )
                .await;
            });
        }
    });
    Ok(addr)
}

async fn serve_one(
    tcp: TcpStream,
    plain: Plain,
    app: App,
    acceptor: TlsAcceptor,
) -> std::io::Result<()> {
    let mut tcp = BufReader::new(tcp);
    if plain != Plain::Direct && !plain_dialogue(&mut tcp, plain).await? {
        return Ok(());
    }
    let tls = acceptor.accept(tcp.into_inner()).await?;
    serve_app(BufReader::new(tls), app).await
}

/// The plaintext part; `true` when the client asked for TLS and got the go-ahead.
async fn plain_dialogue(tcp: &mut BufReader<TcpStream>, plain: Plain) -> std::io::Result<bool> {
    let greeting: &[u8] = match plain {
        Plain::Smtp | Plain::SmtpWithoutTls => b"220 mail.pg.test ESMTP Postfix (Debian/GNU)\r\n",
        Plain::Imap => b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED] Dovecot (Debian) ready.\r\n",
        Plain::Pop3 => b"+OK Dovecot (Debian) ready.\r\n",
        Plain::Ftp => b"220 (vsFTPd 3.0.3)\r\n",
        Plain::Mysql => {
            use tokio::io::AsyncReadExt;
            tcp.get_mut().write_all(&mysql_handshake()).await?;
            // SSLRequest: 4-byte header, then capability flags with CLIENT_SSL (0x800).
            let mut request = [0u8; 36];
            tcp.get_mut().read_exact(&mut request).await?;
            let flags = u32::from_le_bytes([request[4], request[5], request[6], request[7]]);
            return Ok(request[..4] == [32, 0, 0, 1] && flags & 0x800 != 0);
        }
        Plain::Direct => b"",
    };
    tcp.get_mut().write_all(greeting).await?;
    let mut line = String::new();
    loop {
        line.clear();
        if tcp.read_line(&mut line).await? == 0 {
            return Ok(false);
        }
        let command = line.trim_end().to_ascii_uppercase();
        let (answer, go): (&[u8], bool) = match (plain, command.as_str()) {
            (Plain::Smtp, c) if c.starts_with("EHLO") => (
                b"250-mail.pg.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
                false,
            ),
            (Plain::SmtpWithoutTls, c) if c.starts_with("EHLO") => (
                b"250-mail.pg.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
                false,
            ),
            (Plain::Smtp, "STARTTLS") => (b"220 2.0.0 Ready to start TLS\r\n", true),
            (Plain::Smtp | Plain::SmtpWithoutTls, _) => {
                (b"502 5.5.2 Error: command not recognized\r\n", false)
            }
            (Plain::Imap, c) if c.ends_with(" STARTTLS") => {
                let tag = line.split_whitespace().next().unwrap_or("*").to_string();
                let answer = format!("{tag} OK Begin TLS negotiation now.\r\n");
                tcp.get_mut().write_all(answer.as_bytes()).await?;
                return Ok(true);
            }
            (Plain::Imap, _) => (b"* BAD Error in IMAP command received by server.\r\n", false),
            (Plain::Pop3, "STLS") => (b"+OK Begin TLS negotiation now.\r\n", true),
            (Plain::Pop3, _) => (b"-ERR Unknown command.\r\n", false),
            (Plain::Ftp, "AUTH TLS") => (b"234 Proceed with negotiation.\r\n", true),
            (Plain::Ftp, _) => (b"530 Please login with USER and PASS.\r\n", false),
            (Plain::Direct | Plain::Mysql, _) => (b"", false),
        };
        tcp.get_mut().write_all(answer).await?;
        if go {
            return Ok(true);
        }
    }
}

async fn serve_app<S>(mut tls: BufReader<S>, app: App) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match app {
        App::Http(response) => {
            // Read the request head, then answer and close.
            let mut line = String::new();
            loop {
                line.clear();
                if tls.read_line(&mut line).await? == 0 || line == "\r\n" {
                    break;
                }
            }
            tls.get_mut().write_all(response.as_bytes()).await?;
            tls.get_mut().shutdown().await
        }
        App::Greeting(greeting) => {
            tls.get_mut().write_all(greeting.as_bytes()).await?;
            let mut line = String::new();
            while tls.read_line(&mut line).await? > 0 {
                tls.get_mut().write_all(b"* BAD\r\n").await?;
                line.clear();
            }
            Ok(())
        }
    }
}

const HTTP_OK: &str = "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\nStrict-Transport-Security: max-age=31536000\r\nContent-Length: 46\r\nConnection: close\r\n\r\n<html><title>Inside TLS</title><body></body>\r\n";

fn db() -> ProbeDb {
    ProbeDb::builtin().expect("built-in probes load")
}

fn quick() -> InspectOptions {
    let mut opts = InspectOptions::default();
    opts.detect.total_timeout = Duration::from_secs(8);
    opts
}

#[tokio::test]
async fn https_is_told_apart_from_tls_and_inspected_inside() -> TestResult {
    let addr = server(Plain::Direct, App::Http(HTTP_OK)).await?;
    let found = inspect_port(addr, Some("app.pg.test"), &db(), &quick())
        .await
        .detection;
    assert_eq!(found.service.as_deref(), Some("https"), "{found:?}");
    assert_eq!(found.product.as_deref(), Some("nginx"), "{found:?}");
    assert_eq!(found.version.as_deref(), Some("1.22.1"), "{found:?}");
    let tls = found.tls.as_ref().expect("TLS recorded");
    assert_eq!(tls.starttls, None);
    assert_eq!(tls.subject, "CN=app.pg.test");
    assert_eq!(tls.server_name.as_deref(), Some("app.pg.test"));
    // The test CA is not among the system roots.
    assert!(
        tls.reasons
            .contains(&portgate_model::CertFailure::UntrustedIssuer),
        "{tls:?}"
    );
    let http = found.http.as_ref().expect("HTTP recorded");
    assert_eq!(http.status, 200);
    assert_eq!(http.title.as_deref(), Some("Inside TLS"));
    assert!(http.security_headers.hsts.is_some(), "{http:?}");
    Ok(())
}

#[tokio::test]
async fn the_ca_option_makes_the_chain_trusted() -> TestResult {
    let (config, ca_pem) = tls_config()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = serve_app(BufReader::new(tls), App::Http(HTTP_OK)).await;
                }
            });
        }
    });
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, ca_pem)?;
    let mut opts = quick();
    opts.tls.ca_file = Some(file);
    let found = inspect_port(addr, Some("app.pg.test"), &db(), &opts)
        .await
        .detection;
    let tls = found.tls.as_ref().expect("TLS recorded");
    assert!(tls.valid, "{tls:?}");
    assert!(tls.reasons.is_empty(), "{tls:?}");
    assert_eq!(tls.fingerprint_sha256.len(), 64);
    Ok(())
}

#[tokio::test]
async fn a_service_that_greets_inside_tls_is_named() -> TestResult {
    let addr = server(
        Plain::Direct,
        App::Greeting("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Dovecot (Debian) ready.\r\n"),
    )
    .await?;
    let found = inspect_port(addr, Some("app.pg.test"), &db(), &quick())
        .await
        .detection;
    assert_eq!(found.service.as_deref(), Some("imaps"), "{found:?}");
    assert_eq!(found.product.as_deref(), Some("Dovecot imapd"), "{found:?}");
    assert!(found.tls.is_some());
    assert!(found.http.is_none());
    Ok(())
}

#[tokio::test]
async fn starttls_is_used_for_mail_and_ftp() -> TestResult {
    for (plain, upgrade_name, service) in [
        (Plain::Smtp, "smtp", "smtp"),
        (Plain::Imap, "imap", "imap"),
        (Plain::Pop3, "pop3", "pop3"),
        (Plain::Ftp, "ftp", "ftp"),
        (Plain::Mysql, "mysql", "mysql"),
    ] {
        let addr = server(plain, App::Greeting("* OK inside\r\n")).await?;
        let found = inspect_port(addr, Some("app.pg.test"), &db(), &quick())
            .await
            .detection;
        assert_eq!(found.service.as_deref(), Some(service), "{found:?}");
        let tls = found
            .tls
            .as_ref()
            .unwrap_or_else(|| panic!("{upgrade_name}: no TLS: {found:?}"));
        assert_eq!(tls.starttls.as_deref(), Some(upgrade_name));
        assert_eq!(tls.subject, "CN=app.pg.test");
        assert!(tls.protocol.starts_with("TLSv1."), "{tls:?}");
    }
    Ok(())
}

#[tokio::test]
async fn smtp_without_starttls_says_so() -> TestResult {
    let addr = server(Plain::SmtpWithoutTls, App::Greeting("")).await?;
    let found = inspect_port(addr, None, &db(), &quick()).await.detection;
    assert_eq!(found.service.as_deref(), Some("smtp"));
    assert!(found.tls.is_none());
    assert!(
        found
            .notes
            .iter()
            .any(|n| n.contains("STARTTLS not offered") && n.contains("8BITMIME")),
        "{:?}",
        found.notes
    );
    Ok(())
}

#[tokio::test]
async fn plain_http_is_inspected() -> TestResult {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve_app(
                BufReader::new(tcp),
                App::Http(
                    "HTTP/1.1 301 Moved Permanently\r\nServer: nginx/1.22.1\r\nLocation: https://app.pg.test/\r\nContent-Length: 0\r\n\r\n",
                ),
            ));
        }
    });
    let found = inspect_port(addr, Some("app.pg.test"), &db(), &quick())
        .await
        .detection;
    assert_eq!(found.service.as_deref(), Some("http"), "{found:?}");
    assert!(found.tls.is_none());
    let http = found.http.as_ref().expect("HTTP recorded");
    assert_eq!(http.status, 301);
    assert_eq!(http.redirects_to_https, Some(true), "{http:?}");
    Ok(())
}

/// The machine's PostgreSQL: the SSLRequest is answered, and the certificate it then
/// presents is described (or, when the server has SSL off, a note says so).
#[tokio::test]
async fn real_postgresql_sslrequest() -> TestResult {
    let addr: SocketAddr = "127.0.0.1:5432".parse()?;
    if TcpStream::connect(addr).await.is_err() {
        skip("real_postgresql_sslrequest", "nothing on 127.0.0.1:5432");
        return Ok(());
    }
    let ssl_on = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atc",
            "show ssl",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "on")
        .unwrap_or(false);
    let found = inspect_port(addr, None, &db(), &quick()).await.detection;
    assert_eq!(found.service.as_deref(), Some("postgresql"), "{found:?}");
    if ssl_on {
        let tls = found.tls.as_ref().expect("TLS after SSLRequest");
        assert_eq!(tls.starttls.as_deref(), Some("postgresql"));
        assert!(tls.protocol.starts_with("TLSv1."), "{tls:?}");
        assert!(!tls.subject.is_empty());
    } else {
        assert!(
            found.notes.iter().any(|n| n.contains("does not offer TLS")),
            "{:?}",
            found.notes
        );
    }
    Ok(())
}

/// The machine's MariaDB runs without TLS (`have_ssl` DISABLED here): its handshake does
/// not advertise CLIENT_SSL, and the note says so.
#[tokio::test]
async fn real_mariadb_without_tls_says_so() -> TestResult {
    let addr: SocketAddr = "127.0.0.1:3306".parse()?;
    if TcpStream::connect(addr).await.is_err() {
        skip(
            "real_mariadb_without_tls_says_so",
            "nothing on 127.0.0.1:3306",
        );
        return Ok(());
    }
    let have_ssl = std::process::Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-uroot",
            "-N",
            "-e",
            "show variables like 'have_ssl'",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("YES"))
        .unwrap_or(false);
    let found = inspect_port(addr, None, &db(), &quick()).await.detection;
    assert_eq!(found.service.as_deref(), Some("mysql"), "{found:?}");
    if have_ssl {
        let tls = found.tls.as_ref().expect("TLS after SSLRequest");
        assert_eq!(tls.starttls.as_deref(), Some("mysql"));
    } else {
        assert!(found.tls.is_none());
        assert!(
            found
                .notes
                .iter()
                .any(|n| n.contains("STARTTLS not offered") && n.contains("CLIENT_SSL")),
            "{:?}",
            found.notes
        );
    }
    Ok(())
}

/// STARTTLS against servers that never finish their line, never speak, or refuse.
#[tokio::test]
async fn hostile_starttls_servers_are_bounded() -> TestResult {
    async fn one(behaviour: &'static [u8], endless: bool) -> Result<SocketAddr, Box<dyn Error>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = tcp.write_all(behaviour).await;
                    while endless && tcp.write_all(&[b'x'; 4096]).await.is_ok() {}
                    tokio::time::sleep(Duration::from_secs(20)).await;
                });
            }
        });
        Ok(addr)
    }
    let opts = StartTlsOptions {
        timeout: Duration::from_secs(2),
        ..StartTlsOptions::default()
    };
    // An endless first line.
    let addr = one(b"220 ", true).await?;
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await?;
    let err = upgrade(&mut tcp, Upgrade::Smtp, &opts)
        .await
        .expect_err("endless");
    assert!(matches!(err, StartTlsError::TooLong { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Silence.
    let addr = one(b"", false).await?;
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await?;
    let err = upgrade(&mut tcp, Upgrade::Imap, &opts)
        .await
        .expect_err("silent");
    assert!(matches!(err, StartTlsError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Something else entirely.
    let addr = one(b"SSH-2.0-OpenSSH_9.2p1\r\n", false).await?;
    let mut tcp = TcpStream::connect(addr).await?;
    let err = upgrade(&mut tcp, Upgrade::Pop3, &opts)
        .await
        .expect_err("not POP3");
    assert!(matches!(err, StartTlsError::Unexpected { .. }), "{err}");
    assert!(err.to_string().contains("SSH-2.0"), "{err}");
    Ok(())
}
