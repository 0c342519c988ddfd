//! Services not running on this machine, tested with tiny in-test listeners on
//! 127.0.0.1:0 that replay what the real daemons send: the exact greetings / replies in
//! the format of OpenSSH 9.2p1 on Debian 12, Postfix, vsftpd 3.0.3, Dovecot, nginx
//! 1.22.1, memcached 1.6.18 and a password-protected Redis (written from the daemons'
//! documented output, not captured on this machine, where none of them runs).
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use portgate_detect::{DetectOptions, ProbeDb, detect};
use portgate_model::Detection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a recorded service behaves on each connection.
#[derive(Clone, Copy)]
enum Script {
    /// Sends a greeting on connect, then waits for the client to leave.
    Banner(&'static [u8]),
    /// Stays silent; answers `reply` to a request starting with `request`, else closes.
    Reply {
        request: &'static [u8],
        reply: &'static [u8],
    },
}

async fn serve(mut s: TcpStream, script: Script) {
    let mut buf = [0u8; 1024];
    match script {
        Script::Banner(banner) => {
            let _ = s.write_all(banner).await;
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
        }
        Script::Reply { request, reply } => {
            let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await
            else {
                return;
            };
            if buf.get(..n).is_some_and(|got| got.starts_with(request)) {
                let _ = s.write_all(reply).await;
                let _ = s.shutdown().await;
            }
        }
    }
}

async fn detect_recorded(script: Script) -> Detection {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s, script));
        }
    });
    let db = ProbeDb::builtin().expect("db");
    let opts = DetectOptions {
        total_timeout: Duration::from_secs(10),
        ..DetectOptions::default()
    };
    let start = Instant::now();
    let d = detect(addr, &db, &opts).await;
    assert!(start.elapsed() < Duration::from_secs(12));
    println!("{d:?}");
    d
}

fn fields(d: &Detection) -> (Option<&str>, Option<&str>, Option<&str>) {
    (
        d.service.as_deref(),
        d.product.as_deref(),
        d.version.as_deref(),
    )
}

#[tokio::test]
async fn ssh_openssh() {
    // sshd is not running here: the listener replays a recording of the real exchange
    // (the identification string OpenSSH 9.2p1 on Debian 12 sends on connect).
    let d = detect_recorded(Script::Banner(
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
    ))
    .await;
    assert_eq!(fields(&d), (Some("ssh"), Some("OpenSSH"), Some("9.2p1")));
    assert_eq!(d.info.as_deref(), Some("protocol 2.0 Debian-2+deb12u3"));
    assert_eq!(d.cpe.as_deref(), Some("cpe:/a:openbsd:openssh:9.2p1"));
    assert_eq!(d.probe.as_deref(), Some("null"));
    assert_eq!(
        d.evidence.as_bytes(),
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
    );
}

#[tokio::test]
async fn smtp_postfix() {
    let d = detect_recorded(Script::Banner(
        b"220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n",
    ))
    .await;
    assert_eq!(fields(&d), (Some("smtp"), Some("Postfix smtpd"), None));
    assert_eq!(d.info.as_deref(), Some("Debian/GNU"));
}

#[tokio::test]
async fn ftp_vsftpd() {
    let d = detect_recorded(Script::Banner(b"220 (vsFTPd 3.0.3)\r\n")).await;
    assert_eq!(fields(&d), (Some("ftp"), Some("vsftpd"), Some("3.0.3")));
}

#[tokio::test]
async fn pop3_dovecot() {
    let d = detect_recorded(Script::Banner(b"+OK Dovecot (Debian) ready.\r\n")).await;
    assert_eq!(fields(&d), (Some("pop3"), Some("Dovecot pop3d"), None));
    assert_eq!(d.info.as_deref(), Some("Debian"));
}

#[tokio::test]
async fn imap_dovecot() {
    let d = detect_recorded(Script::Banner(
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n",
    ))
    .await;
    assert_eq!(fields(&d), (Some("imap"), Some("Dovecot imapd"), None));
}

#[tokio::test]
async fn http_nginx() {
    let d = detect_recorded(Script::Reply {
        request: b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n",
        reply: b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 23 Nov 2026 20:00:00 GMT\r\n\
Content-Type: text/html\r\nContent-Length: 615\r\nLast-Modified: Tue, 04 Jun 2024 10:00:00 GMT\r\n\
Connection: close\r\nETag: \"665ee6a0-267\"\r\nAccept-Ranges: bytes\r\n\r\n<!DOCTYPE html>\n<html>\n",
    })
    .await;
    assert_eq!(fields(&d), (Some("http"), Some("nginx"), Some("1.22.1")));
    assert_eq!(d.probe.as_deref(), Some("http-get"));
}

#[tokio::test]
async fn http_generic_server_header() {
    let d = detect_recorded(Script::Reply {
        request: b"GET / ",
        reply: b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nServer: Caddy/2.7.6 extra\r\n\r\nnope",
    })
    .await;
    assert_eq!(fields(&d), (Some("http"), Some("Caddy"), Some("2.7.6")));
}

#[tokio::test]
async fn memcached() {
    // memcached is not installed here: replay of its reply to `version`.
    let d = detect_recorded(Script::Reply {
        request: b"version\r\n",
        reply: b"VERSION 1.6.18\r\n",
    })
    .await;
    assert_eq!(
        fields(&d),
        (Some("memcached"), Some("Memcached"), Some("1.6.18"))
    );
    assert_eq!(d.probe.as_deref(), Some("memcached"));
}

#[tokio::test]
async fn redis_requiring_auth() {
    // Replay of a Redis 7 with `requirepass` answering the pipelined PING / INFO.
    let d = detect_recorded(Script::Reply {
        request: b"PING\r\n",
        reply: b"-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n",
    })
    .await;
    assert_eq!(fields(&d), (Some("redis"), Some("Redis"), None));
    assert_eq!(d.info.as_deref(), Some("auth required"));
}
