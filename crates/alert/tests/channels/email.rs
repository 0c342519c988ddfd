//! The email channel against a real SMTP server: aiosmtpd (PyPI) with STARTTLS required
//! and authentication, started as a child process on a free port of 127.0.0.1.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portgate_alert::{Failure, ItemState};
use portgate_model::{Rule, Severity};
use portgate_test_support::{certs, skip};

use crate::common::{WAIT, alert, channel, hostile_item, item};

/// The SMTP server: writes each message it accepts, parsed by Python's email package, as
/// JSON to `msg-N.json` in the output folder, and `ready` once it listens.
const SERVER: &str = r#"
import email, json, logging, os, ssl, sys, time
from email import policy
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# aiosmtpd logs a deprecation of its own on every login.
logging.getLogger("mail.log").setLevel(logging.ERROR)
port, cert, key, out, user, password = sys.argv[1:7]

class Handler:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        parts = [
            {"type": part.get_content_type(), "content": part.get_content()}
            for part in message.walk()
            if part.get_content_maintype() != "multipart"
        ]
        self.count += 1
        document = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["subject"]),
            "from": str(message["from"]),
            "to": str(message["to"]),
            "message_id": str(message["message-id"]),
            "content_type": message.get_content_type(),
            "tls": getattr(session, "ssl", None) is not None,
            "authenticated": bool(getattr(session, "authenticated", False)),
            "parts": parts,
        }
        path = os.path.join(out, "msg-%d.json" % self.count)
        with open(path + ".tmp", "w") as f:
            json.dump(document, f)
        os.rename(path + ".tmp", path)
        return "250 OK"

def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == user.encode() and auth_data.password == password.encode())
    return AuthResult(success=ok)

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(Handler(), hostname="127.0.0.1", port=int(port), tls_context=context,
                        require_starttls=True, authenticator=authenticate, auth_required=True,
                        auth_require_tls=True)
controller.start()
open(os.path.join(out, "ready"), "w").close()
while True:
    time.sleep(3600)
"#;

/// The server process, killed (by its pid) and reaped when dropped.
struct SmtpServer {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether python3 with aiosmtpd is here; the reason to skip when not.
fn aiosmtpd_missing() -> Option<String> {
    match Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => None,
        Ok(_) => Some("the Python package aiosmtpd is not installed (pip install aiosmtpd)".into()),
        Err(e) => Some(format!("python3 cannot run: {e}")),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &Path, cert: &Path, key: &Path) -> SmtpServer {
    let script = dir.join("smtp_server.py");
    std::fs::write(&script, SERVER).unwrap();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let port = free_port();
    let child = Command::new("python3")
        .arg(&script)
        .arg(port.to_string())
        .arg(cert)
        .arg(key)
        .arg(&out)
        .args(["alerts", "s3cret"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut server = SmtpServer { child, port, out };
    let started = Instant::now();
    while !server.out.join("ready").exists() {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("the SMTP server exited: {status}");
        }
        assert!(started.elapsed() < WAIT, "the SMTP server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

async fn received(out: &Path, n: usize) -> serde_json::Value {
    let path = out.join(format!("msg-{n}.json"));
    let started = Instant::now();
    while !path.exists() {
        assert!(started.elapsed() < WAIT, "no message {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn starttls_required_delivers_text_and_html() {
    const TEST: &str = "starttls_required_delivers_text_and_html";
    if let Some(reason) = aiosmtpd_missing() {
        skip(TEST, reason);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = certs::make_ca().unwrap();
    let leaf = certs::make_leaf(&["127.0.0.1"], -certs::DAY, certs::DAY * 30, Some(&ca)).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, format!("{}{}", leaf.pem, ca.pem)).unwrap();
    let mut key_file = std::fs::File::create(&key).unwrap();
    key_file
        .write_all(leaf.key.serialize_pem().as_bytes())
        .unwrap();
    let ca_file = certs::ca_file(&ca).unwrap();
    let server = start(dir.path(), &cert, &key);

    let mail = channel(&format!(
        "email:
  smtp: 127.0.0.1:{}
  from: 'portgate <portgate@pg.test>'
  to: [secops@pg.test, 'On Call <oncall@pg.test>']
  username: alerts
  password: s3cret
  starttls: required
  ca: '{}'
  timeout: 5
",
        server.port,
        ca_file.path().display()
    ));
    let sent = alert(
        "alert-email-1",
        vec![
            item(Rule::UnapprovedPort, Severity::High, 8080, ItemState::Open),
            hostile_item(),
        ],
    );
    let delivery = mail.deliver(&sent).await.unwrap();
    assert_eq!(delivery.messages, 1);

    let message = received(&server.out, 1).await;
    assert_eq!(message["tls"], true, "{message}");
    assert_eq!(message["authenticated"], true, "{message}");
    assert_eq!(message["mail_from"], "portgate@pg.test");
    assert_eq!(
        message["rcpt_tos"],
        serde_json::json!(["secops@pg.test", "oncall@pg.test"])
    );
    assert_eq!(message["subject"], "[CRITICAL] Exposure on web");
    assert!(
        message["from"]
            .as_str()
            .unwrap()
            .contains("portgate@pg.test")
    );
    assert!(message["to"].as_str().unwrap().contains("oncall@pg.test"));
    assert_eq!(message["message_id"], "<alert-email-1@portgate>");
    assert_eq!(message["content_type"], "multipart/alternative");
    let parts = message["parts"].as_array().unwrap();
    let part = |kind: &str| {
        parts
            .iter()
            .find(|p| p["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} part in {message}"))["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let text = part("text/plain");
    let html = part("text/html");
    assert!(
        text.contains("8080/tcp is open and no approval covers it"),
        "{text}"
    );
    assert!(
        text.contains("evil|pipe=eq\\back line cr <script>"),
        "{text}"
    );
    assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
    assert!(!html.contains("<script>"), "{html}");

    // Without the CA the server's certificate is not trusted, and nothing is sent.
    let untrusting = channel(&format!(
        "email: {{smtp: '127.0.0.1:{}', from: portgate@pg.test, to: [secops@pg.test], timeout: 5}}",
        server.port
    ));
    let err = untrusting.deliver(&sent).await.unwrap_err();
    assert!(!err.retryable, "{err}");
    assert!(matches!(err.cause, Failure::Tls(_)), "{err}");
    assert!(!server.out.join("msg-2.json").exists());
    drop(server);
}
