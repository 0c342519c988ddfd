//! The syslog channel against UDP, TCP and TLS receivers; what arrives is parsed as RFC
//! 5424 and CEF, un-escaped, and compared with the alert.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::DateTime;
use portgate_alert::cef::signature_id;
use portgate_alert::{Alert, Failure, ItemState};
use portgate_model::{Rule, Severity};
use portgate_test_support::certs;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::timeout;

use crate::common::{HOSTILE, WAIT, alert, channel, created_at, hostile_item, item};

/// An RFC 5424 message.
#[derive(Debug)]
struct Syslog {
    pri: u16,
    version: String,
    timestamp: String,
    hostname: String,
    app_name: String,
    procid: String,
    msgid: String,
    structured_data: String,
    msg: String,
}

fn parse_syslog(line: &str) -> Syslog {
    let rest = line.strip_prefix('<').expect("starts with <PRI>");
    let (pri, rest) = rest.split_once('>').unwrap();
    let fields: Vec<&str> = rest.splitn(8, ' ').collect();
    assert_eq!(fields.len(), 8, "{line}");
    Syslog {
        pri: pri.parse().unwrap(),
        version: fields[0].to_string(),
        timestamp: fields[1].to_string(),
        hostname: fields[2].to_string(),
        app_name: fields[3].to_string(),
        procid: fields[4].to_string(),
        msgid: fields[5].to_string(),
        structured_data: fields[6].to_string(),
        msg: fields[7].to_string(),
    }
}

/// A CEF event: the seven header fields and the extensions, un-escaped.
#[derive(Debug)]
struct Cef {
    header: Vec<String>,
    extensions: BTreeMap<String, String>,
}

/// Splits the header at unescaped `|` and un-escapes `\|` and `\\`; splits extensions
/// at the unescaped `=` (each preceded by its key) and un-escapes `\=`, `\\`, `\n`, `\r`.
fn parse_cef(msg: &str) -> Cef {
    let body = msg.strip_prefix("CEF:").expect("CEF:");
    let mut header = Vec::new();
    let mut field = String::new();
    let mut chars = body.char_indices();
    let mut rest_at = body.len();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('\\' | '|'))) => field.push(e),
                other => panic!("bad header escape {other:?} in {msg}"),
            },
            '|' => {
                header.push(std::mem::take(&mut field));
                if header.len() == 7 {
                    rest_at = i + 1;
                    break;
                }
            }
            c => field.push(c),
        }
    }
    assert_eq!(header.len(), 7, "{msg}");
    let ext = &body[rest_at..];
    // The positions of unescaped `=`: each ends a key that starts after a space.
    let mut equals = Vec::new();
    let bytes = ext.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' => {
                equals.push(i);
                i += 1;
            }
            _ => i += 1,
        }
    }
    let key_start = |eq: usize| ext[..eq].rfind(' ').map_or(0, |s| s + 1);
    let mut extensions = BTreeMap::new();
    for (n, &eq) in equals.iter().enumerate() {
        let key = &ext[key_start(eq)..eq];
        assert!(
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric()),
            "key {key:?} in {ext}"
        );
        let end = equals
            .get(n + 1)
            .map_or(ext.len(), |&next| key_start(next).saturating_sub(1));
        let raw = &ext[eq + 1..end];
        let mut value = String::new();
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    Some(e @ ('\\' | '=')) => value.push(e),
                    other => panic!("bad extension escape {other:?} in {raw}"),
                }
            } else {
                value.push(c);
            }
        }
        assert!(
            extensions.insert(key.to_string(), value).is_none(),
            "{key} twice"
        );
    }
    Cef { header, extensions }
}

/// The alert every receiver gets: a plain item and a hostile one.
fn two_items() -> Alert {
    alert(
        "alert-syslog-1",
        vec![
            item(Rule::TlsInvalid, Severity::Medium, 443, ItemState::Resolved),
            hostile_item(),
        ],
    )
}

/// Checks the messages of [`two_items`] against the alert.
fn check(messages: &[String], app_name: &str, facility: u16) {
    let sent = two_items();
    assert_eq!(messages.len(), 2, "{messages:?}");
    for (message, item) in messages.iter().zip(&sent.items) {
        let syslog = parse_syslog(message);
        let severity = match item.finding.severity {
            Severity::Critical => 2,
            Severity::High => 3,
            Severity::Medium => 4,
            Severity::Low => 5,
            Severity::Info => 6,
        };
        assert_eq!(syslog.pri, facility * 8 + severity);
        assert_eq!(syslog.version, "1");
        assert_eq!(
            DateTime::parse_from_rfc3339(&syslog.timestamp).unwrap(),
            created_at()
        );
        assert!(!syslog.hostname.is_empty());
        assert_eq!(syslog.app_name, app_name);
        assert_eq!(syslog.procid, std::process::id().to_string());
        let signature = signature_id(item.finding.rule, item.state);
        assert_eq!(syslog.msgid, signature);
        assert_eq!(syslog.structured_data, "-");

        let cef = parse_cef(&syslog.msg);
        assert_eq!(cef.header[0], "0");
        assert_eq!(cef.header[1], "portgate");
        assert_eq!(cef.header[2], "portgate");
        assert_eq!(cef.header[3], env!("CARGO_PKG_VERSION"));
        assert_eq!(cef.header[4], signature);
        assert!(
            cef.header[5].contains(item.finding.rule.title()),
            "{:?}",
            cef.header
        );
        let e = &cef.extensions;
        let get = |k: &str| {
            e.get(k)
                .map(String::as_str)
                .unwrap_or_else(|| panic!("{k} in {e:?}"))
        };
        assert_eq!(get("rt"), created_at().timestamp_millis().to_string());
        assert_eq!(get("dst"), "198.18.0.7");
        assert_eq!(get("dpt"), item.finding.port.unwrap().to_string());
        assert_eq!(get("proto"), "TCP");
        assert_eq!(get("act"), item.state.as_str());
        assert_eq!(get("cs1Label"), "fingerprint");
        assert_eq!(get("cs1"), item.fingerprint);
        assert_eq!(get("cs2Label"), "asset");
        assert_eq!(get("cs2"), item.finding.asset.as_deref().unwrap());
        assert_eq!(get("msg"), item.finding.message);
        assert!(!e.contains_key("src"));
    }
    // The hostile text came through whole.
    let hostile = parse_cef(&parse_syslog(&messages[1]).msg);
    assert_eq!(cef_severity_of(&hostile), "10");
    assert_eq!(hostile.extensions["msg"], HOSTILE);
    assert_eq!(hostile.extensions["cs2"], HOSTILE);
    assert_eq!(
        parse_cef(&parse_syslog(&messages[0]).msg).header[4],
        "tls.invalid.resolved"
    );
}

fn cef_severity_of(cef: &Cef) -> &str {
    &cef.header[6]
}

/// Reads octet-counted frames until the sender closes.
async fn read_frames(mut stream: impl AsyncRead + Unpin) -> Vec<String> {
    let mut bytes = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .unwrap()
        .unwrap();
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ').unwrap();
        let len: usize = std::str::from_utf8(&rest[..space])
            .unwrap()
            .parse()
            .unwrap();
        let frame = &rest[space + 1..space + 1 + len];
        frames.push(String::from_utf8(frame.to_vec()).unwrap());
        rest = &rest[space + 1 + len..];
    }
    frames
}

#[tokio::test]
async fn udp_one_datagram_per_item_within_8_kib() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let syslog = channel(&format!(
        "syslog: {{address: '{address}', transport: udp, facility: local3}}"
    ));
    let delivery = syslog.deliver(&two_items()).await.unwrap();
    assert_eq!(delivery.messages, 2);
    let mut messages = Vec::new();
    let mut buffer = vec![0u8; 65536];
    for _ in 0..2 {
        let (n, _) = timeout(WAIT, socket.recv_from(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        messages.push(String::from_utf8(buffer[..n].to_vec()).unwrap());
    }
    check(&messages, "portgate", 19);

    // A message too long for a datagram is cut in its msg.
    let mut long = hostile_item();
    long.finding.message = "x=\\|\n".repeat(5000);
    syslog
        .deliver(&alert("alert-syslog-2", vec![long]))
        .await
        .unwrap();
    let (n, _) = timeout(WAIT, socket.recv_from(&mut buffer))
        .await
        .unwrap()
        .unwrap();
    assert!(n <= 8192, "{n}");
    let cef = parse_cef(&parse_syslog(std::str::from_utf8(&buffer[..n]).unwrap()).msg);
    let msg = &cef.extensions["msg"];
    assert!(msg.ends_with('…'), "{msg}");
    assert!(
        "x=\\|\n"
            .repeat(5000)
            .starts_with(msg.trim_end_matches('…'))
    );
}

#[tokio::test]
async fn tcp_octet_counted() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let received = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        read_frames(stream).await
    });
    let syslog = channel(&format!(
        "syslog:\n  address: '{address}'\n  transport: tcp\n  app_name: pg-test\n  facility: 4\n"
    ));
    syslog.deliver(&two_items()).await.unwrap();
    let messages = timeout(WAIT, received).await.unwrap().unwrap();
    check(&messages, "pg-test", 4);

    // Nothing listens any more: worth a retry.
    let err = syslog.deliver(&two_items()).await.unwrap_err();
    assert!(err.retryable, "{err}");
    assert!(matches!(err.cause, Failure::Connect(_)), "{err}");
}

#[tokio::test]
async fn tls_verified_against_the_given_ca() {
    let ca = certs::make_ca().unwrap();
    let leaf =
        certs::make_leaf(&["syslog.pg.test"], -certs::DAY, certs::DAY * 30, Some(&ca)).unwrap();
    let server =
        certs::server_config(vec![leaf.der.clone(), ca.der.clone()], &leaf.key, false).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let received = tokio::spawn(async move {
        let mut all = Vec::new();
        // The first connection is the trusted client; the second the one that refuses.
        for _ in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            match timeout(WAIT, acceptor.accept(stream)).await.unwrap() {
                Ok(tls) => all.push(read_frames(tls).await),
                Err(_) => all.push(Vec::new()),
            }
        }
        all
    });
    let ca_file = certs::ca_file(&ca).unwrap();
    let syslog = channel(&format!(
        "syslog: {{address: '{address}', transport: tls, ca: '{}', server_name: syslog.pg.test, timeout: 5}}",
        ca_file.path().display()
    ));
    assert_eq!(syslog.label(), format!("syslog tls {address}"));
    syslog.deliver(&two_items()).await.unwrap();

    // A client trusting another CA refuses the server, and says a retry will not help.
    let other = certs::make_ca().unwrap();
    let other_file = certs::ca_file(&other).unwrap();
    let untrusting = channel(&format!(
        "syslog: {{address: '{address}', transport: tls, ca: '{}', server_name: syslog.pg.test, timeout: 5}}",
        other_file.path().display()
    ));
    let err = untrusting.deliver(&two_items()).await.unwrap_err();
    assert!(!err.retryable, "{err}");
    assert!(matches!(err.cause, Failure::Tls(_)), "{err}");

    let all = timeout(WAIT, received).await.unwrap().unwrap();
    check(&all[0], "portgate", 16);
    assert!(all[1].is_empty());
}
