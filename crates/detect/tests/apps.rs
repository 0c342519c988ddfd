//! Application fingerprints and exposure checks.
//!
//! - The database: the built-in one loads, a user file merges in, and every kind of
//!   mistake in a file is refused with the file, line, column and application.
//! - Replays (`fixtures/apps/*.toml`): for the applications no registry here ships, a real
//!   HTTP server on 127.0.0.x answers as each product's documentation says it does (each
//!   fixture names its sources and says it is a replay), on the application's usual port;
//!   the engine must name exactly the expected application, version and exposures (`{path}`
//!   in a replayed body is the path asked, for error pages that name it) — and
//!   nothing for the negative fixtures (nginx's default page, an Apache index, a
//!   catch-all, a redirect-everything-to-login server).
//! - Hostile servers: a slow one (the series ends at the first timeout, within its bound),
//!   one that closes at once, one that answers garbage; the request budget holds.
//! - Default logins are sent only when asked for, and each attempt is recorded.
//! - HTTPS: the same requests inside TLS.
//!
//! The real applications (Jupyter, Prometheus, Alertmanager, node exporter, etcd,
//! InfluxDB, Tomcat, RabbitMQ, Docker) are checked in the daemon zoo's test
//! (crates/cli/tests/detect_zoo.rs).

use std::collections::BTreeMap;
use std::error::Error;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portgate_detect::{AppDb, AppOptions, AppTarget, TlsOptions, identify_application};
use portgate_model::ApplicationReport;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type TestResult = Result<(), Box<dyn Error>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    expect: Expect,
    #[serde(default)]
    route: Vec<Route>,
    fallback: Option<Route>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    application: String,
    version: Option<String>,
    #[serde(default)]
    exposures: Vec<String>,
    #[serde(default)]
    default_login: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Route {
    path: Option<String>,
    auth: Option<String>,
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apps")
}

fn load(path: &Path) -> Result<Fixture, Box<dyn Error>> {
    let text = std::fs::read_to_string(path)?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// What the replay server saw.
#[derive(Debug, Default)]
struct Seen {
    requests: AtomicUsize,
    /// (path, Authorization header) of every request.
    log: Mutex<Vec<(String, Option<String>)>>,
}

/// The answer of `fixture` to `path` with the `Authorization` value `auth`.
fn answer(fixture: &Fixture, path: &str, auth: Option<&str>) -> Route {
    use base64::Engine;
    let sent = auth
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let for_path = |r: &&Route| r.path.as_deref() == Some(path);
    fixture
        .route
        .iter()
        .filter(for_path)
        .find(|r| r.auth.is_some() && r.auth == sent)
        .or_else(|| {
            fixture
                .route
                .iter()
                .filter(for_path)
                .find(|r| r.auth.is_none())
        })
        .or(fixture.fallback.as_ref())
        .cloned()
        .unwrap_or(Route {
            path: None,
            auth: None,
            status: 404,
            headers: BTreeMap::new(),
            body: String::new(),
        })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Serve one request on `stream` as `fixture` answers it.
async fn serve_one<S>(mut stream: S, fixture: Arc<Fixture>, seen: Arc<Seen>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let auth = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("authorization")
            .then(|| value.trim().to_owned())
    });
    seen.requests.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut log) = seen.log.lock() {
        log.push((path.clone(), auth.clone()));
    }
    let route = answer(&fixture, &path, auth.as_deref());
    let mut out = format!("HTTP/1.1 {} {}\r\n", route.status, reason(route.status));
    for (name, value) in &route.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    // `{path}` in a body is the path asked (error pages that name it).
    let body = route.body.replace("{path}", &path);
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    out.push_str(&body);
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A replay server for `fixture` on `addr`, plain or (with `tls`) HTTPS.
async fn replay(
    addr: SocketAddr,
    fixture: Fixture,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(SocketAddr, Arc<Seen>), Box<dyn Error>> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let fixture = Arc::new(fixture);
    let seen = Arc::new(Seen::default());
    let s = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (fixture, seen) = (Arc::clone(&fixture), Arc::clone(&s));
            match &tls {
                None => {
                    tokio::spawn(serve_one(stream, fixture, seen));
                }
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(config));
                    tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            serve_one(stream, fixture, seen).await;
                        }
                    });
                }
            }
        }
    });
    Ok((bound, seen))
}

/// What a raw test server does on one connection: the bytes to send, and whether to hold
/// the connection open for a minute afterwards (a server that stalls).
struct Raw {
    send: Vec<u8>,
    hold: bool,
}

/// A server on 127.0.0.1 that reads a request head and answers with `answer(head, n)` (the
/// n-th connection, from 0); returns its address and the count of connections.
fn raw_server(
    rt: &tokio::runtime::Runtime,
    answer: impl Fn(&str, usize) -> Raw + Send + Sync + 'static,
) -> Result<(SocketAddr, Arc<AtomicUsize>), Box<dyn Error>> {
    let count = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(answer);
    let counter = Arc::clone(&count);
    let addr = rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let answer = Arc::clone(&answer);
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let got = s.read(&mut buf).await.unwrap_or(0);
                    let raw = answer(&String::from_utf8_lossy(&buf[..got]), n);
                    let _ = s.write_all(&raw.send).await;
                    if raw.hold {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                });
            }
        });
        Ok::<_, Box<dyn Error>>(addr)
    })?;
    Ok((addr, count))
}

fn target(addr: SocketAddr) -> AppTarget {
    AppTarget {
        addr,
        host: addr.ip().to_string(),
        tls: None,
    }
}

fn opts(try_default_credentials: bool) -> AppOptions {
    AppOptions {
        try_default_credentials,
        ..AppOptions::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// What a report says, in the fixture's terms: (application, version, exposures).
fn summary(report: &ApplicationReport) -> Vec<(String, Option<String>, Vec<String>)> {
    report
        .found
        .iter()
        .map(|a| {
            let mut checks: Vec<String> = a
                .exposures
                .iter()
                .filter(|e| e.kind != portgate_model::ExposureKind::DefaultCredentials)
                .map(|e| e.check.clone())
                .collect();
            checks.sort();
            (a.id.clone(), a.version.clone(), checks)
        })
        .collect()
}

/// Every fixture, served on its application's usual port of its own loopback address:
/// exactly the expected application, version and exposures, within the request budget;
/// the default login only with the option, and then exactly as the fixture says.
#[test]
fn replayed_applications_are_named_and_their_exposures_proven() -> TestResult {
    let db = AppDb::builtin()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "{} fixtures", files.len());
    let rt = runtime();
    let mut failures = Vec::new();
    let mut covered = std::collections::BTreeSet::new();
    for (i, file) in files.iter().enumerate() {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let fixture = load(file)?;
        let want_app = fixture.expect.application.clone();
        let port = match db.app(&want_app) {
            Some(app) => app.ports().first().copied().unwrap_or(8080),
            None if want_app.is_empty() => 8080,
            None => {
                failures.push(format!("{name}: no application {want_app:?} in apps.toml"));
                continue;
            }
        };
        let text = std::fs::read_to_string(file)?;
        assert!(
            text.contains("A replay of documented responses over a real socket")
                || want_app.is_empty(),
            "{name} does not say it is a replay"
        );
        for with_login in [false, true] {
            // Each server on a loopback address of its own (they live as long as the test).
            let ip = IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                40 + u8::from(with_login),
                1 + u8::try_from(i)?,
            ));
            let fixture = load(file)?;
            let expect_login = fixture.expect.default_login;
            let (addr, seen) = rt.block_on(replay(SocketAddr::new(ip, port), fixture, None))?;
            let report = rt.block_on(identify_application(&target(addr), &db, &opts(with_login)));
            let got = summary(&report);
            let mut want_exposures = load(file)?.expect.exposures;
            want_exposures.sort();
            let want = if want_app.is_empty() {
                Vec::new()
            } else {
                vec![(want_app.clone(), load(file)?.expect.version, want_exposures)]
            };
            if got != want {
                failures.push(format!(
                    "{name} (logins {with_login}): got {got:?}, want {want:?}; notes {:?}; requests {:?}",
                    report.notes,
                    seen.log.lock().map(|l| l.clone()).unwrap_or_default()
                ));
            }
            let sent = seen.requests.load(Ordering::SeqCst);
            if sent as u32 != report.requests
                || report.requests > AppOptions::default().max_requests
            {
                failures.push(format!(
                    "{name}: {sent} requests seen, {} counted",
                    report.requests
                ));
            }
            let logins: Vec<_> = report
                .found
                .iter()
                .flat_map(|a| &a.credential_attempts)
                .collect();
            let with_auth = seen
                .log
                .lock()
                .map(|l| l.iter().filter(|(_, a)| a.is_some()).count())
                .unwrap_or(0);
            if !with_login && (with_auth > 0 || !logins.is_empty()) {
                failures.push(format!(
                    "{name}: credentials sent without --try-default-credentials"
                ));
            }
            if with_login {
                if with_auth != logins.len() {
                    failures.push(format!(
                        "{name}: {with_auth} requests with credentials, {} attempts recorded",
                        logins.len()
                    ));
                }
                let accepted = report.found.iter().any(|a| {
                    a.exposures
                        .iter()
                        .any(|e| e.kind == portgate_model::ExposureKind::DefaultCredentials)
                });
                if accepted != expect_login {
                    failures.push(format!(
                        "{name}: default login accepted {accepted}, want {expect_login}; attempts {logins:?}"
                    ));
                }
            }
        }
        if !want_app.is_empty() {
            covered.insert(want_app);
        }
    }
    // Every application of the database is covered by a replay or by the zoo.
    let in_zoo = [
        "jupyter",
        "prometheus",
        "alertmanager",
        "node-exporter",
        "etcd",
        "influxdb",
        "tomcat",
        "rabbitmq-management",
        "docker-engine",
    ];
    for app in db.apps() {
        if !covered.contains(app.id()) && !in_zoo.contains(&app.id()) {
            failures.push(format!("{}: neither a replay nor a zoo daemon", app.id()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// A fixture's exposures carry their proof: the request and the first bytes of the answer.
#[test]
fn a_proof_names_the_request_and_the_answer() -> TestResult {
    let db = AppDb::builtin()?;
    let rt = runtime();
    let fixture: Fixture = toml::from_str(
        r#"
[expect]
application = "jupyter"
[[route]]
path = "/"
status = 302
headers = { "Location" = "/tree?" }
[[route]]
path = "/api"
status = 200
headers = { "Content-Type" = "application/json" }
body = '{"version": "6.4.12"}'
[[route]]
path = "/api/kernels"
status = 200
headers = { "Content-Type" = "application/json" }
body = '[{"id": "k1", "name": "python3", "execution_state": "idle"}]'
[fallback]
status = 404
body = "not found \u001b[31m"
"#,
    )?;
    let (addr, _) = rt.block_on(replay("127.0.0.1:0".parse()?, fixture, None))?;
    let report = rt.block_on(identify_application(&target(addr), &db, &opts(false)));
    let app = report.found.first().ok_or("no application")?;
    assert_eq!(app.id, "jupyter");
    assert_eq!(app.version.as_deref(), Some("6.4.12"));
    let e = app
        .exposures
        .iter()
        .find(|e| e.check == "jupyter-kernels")
        .ok_or("no kernels exposure")?;
    assert_eq!(
        e.proof.request,
        format!("GET http://127.0.0.1:{}/api/kernels", addr.port())
    );
    assert_eq!(e.proof.status, 200);
    let shown = e.proof.answer.escaped();
    assert!(shown.starts_with("HTTP/1.1 200 OK\\r\\n"), "{shown}");
    assert!(shown.contains("execution_state"), "{shown}");
    assert!(
        app.evidence[0].contains("Location /tree?"),
        "{:?}",
        app.evidence
    );
    Ok(())
}

/// A server that answers nothing in time: the series ends at the first timeout, with a
/// note, well within its bounds.
#[test]
fn a_slow_server_ends_the_series_at_the_first_timeout() -> TestResult {
    let db = AppDb::builtin()?;
    let rt = runtime();
    // One byte of a head, then nothing for a minute.
    let (addr, count) = raw_server(&rt, |_, _| Raw {
        send: b"HTTP/1.1 2".to_vec(),
        hold: true,
    })?;
    let options = AppOptions {
        timeout: Duration::from_millis(500),
        ..AppOptions::default()
    };
    let start = Instant::now();
    let report = rt.block_on(identify_application(&target(addr), &db, &options));
    let took = start.elapsed();
    assert!(report.found.is_empty());
    // `/` and the absent path go out together; nothing after them.
    assert_eq!(report.requests, 2, "{report:?}");
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(
        report.notes.iter().any(|n| n.contains("timed out")),
        "{:?}",
        report.notes
    );
    rt.shutdown_background();
    Ok(())
}

/// A service that is not HTTP after all, or closes at once: no application, a note, no
/// request after the first wave.
#[test]
fn garbage_and_closed_connections_give_a_note_not_an_application() -> TestResult {
    let db = AppDb::builtin()?;
    let rt = runtime();
    for answer in [&b"\x00\x01\x02 not http at all\r\n\r\n"[..], b""] {
        let (addr, _) = raw_server(&rt, move |_, _| Raw {
            send: answer.to_vec(),
            hold: false,
        })?;
        let report = rt.block_on(identify_application(&target(addr), &db, &opts(true)));
        assert!(report.found.is_empty(), "{report:?}");
        // `/` and the absent path go out together; nothing after them.
        assert_eq!(report.requests, 2, "{report:?}");
        assert!(
            report.notes.iter().any(|n| n.contains("GET /")),
            "{:?}",
            report.notes
        );
    }
    Ok(())
}

/// The budget holds even when every path is worth asking: a server that answers every
/// path with a distinct 200 page gets at most `max_requests`.
#[test]
fn the_request_budget_holds() -> TestResult {
    let db = AppDb::builtin()?;
    let rt = runtime();
    let (addr, count) = raw_server(&rt, |_, n| {
        let body = format!("page {n}");
        Raw {
            send: format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
            hold: false,
        }
    })?;
    let options = AppOptions {
        max_requests: 5,
        ..AppOptions::default()
    };
    let report = rt.block_on(identify_application(&target(addr), &db, &options));
    assert!(report.found.is_empty(), "{report:?}");
    assert!(report.requests <= 5, "{report:?}");
    assert_eq!(count.load(Ordering::SeqCst), report.requests as usize);
    Ok(())
}

/// The same requests inside TLS: a replayed Jupyter on HTTPS with a certificate made here.
#[test]
fn applications_are_found_inside_tls() -> TestResult {
    use portgate_test_support::certs::{DAY, make_leaf, server_config};
    let db = AppDb::builtin()?;
    let rt = runtime();
    let leaf = make_leaf(&["localhost"], -DAY, DAY, None)?;
    let config = Arc::new(server_config(vec![leaf.der.clone()], &leaf.key, false)?);
    let fixture: Fixture = toml::from_str(
        r#"
[expect]
application = "jupyter"
[[route]]
path = "/"
status = 302
headers = { "Location" = "/login?next=%2Ftree%3F" }
[[route]]
path = "/api"
status = 200
body = '{"version": "7.0.6"}'
[[route]]
path = "/api/kernels"
status = 403
body = '{"message": "Forbidden"}'
"#,
    )?;
    let (addr, seen) = rt.block_on(replay("127.0.0.1:0".parse()?, fixture, Some(config)))?;
    let mut t = target(addr);
    t.tls = Some((None, TlsOptions::default()));
    let report = rt.block_on(identify_application(&t, &db, &opts(false)));
    assert_eq!(
        summary(&report),
        vec![("jupyter".to_owned(), Some("7.0.6".to_owned()), Vec::new())],
        "{report:?}"
    );
    assert_eq!(
        seen.requests.load(Ordering::SeqCst),
        report.requests as usize
    );
    let url = &report.found[0].evidence[0];
    assert!(url.starts_with("GET / → 302"), "{url}");
    Ok(())
}

#[test]
fn the_builtin_database_loads_and_covers_the_applications() -> TestResult {
    let db = AppDb::builtin()?;
    for id in [
        "spring-boot-actuator",
        "jupyter",
        "grafana",
        "jenkins",
        "airflow",
        "rabbitmq-management",
        "kibana",
        "elasticsearch",
        "opensearch",
        "prometheus",
        "node-exporter",
        "alertmanager",
        "docker-engine",
        "kubernetes-api",
        "kubelet",
        "etcd",
        "consul",
        "vault",
        "minio",
        "phpmyadmin",
        "adminer",
        "tomcat",
        "traefik",
        "haproxy-stats",
        "influxdb",
        "couchdb",
        "solr",
        "webmin",
        "portainer",
    ] {
        assert!(db.app(id).is_some(), "{id} missing");
    }
    // Check identifiers are unique across the database (approvals name them).
    let mut checks: Vec<&str> = db.apps().iter().flat_map(|a| a.check_ids()).collect();
    let n = checks.len();
    checks.sort_unstable();
    checks.dedup();
    assert_eq!(checks.len(), n, "a check id is used twice");
    // The management interfaces with a documented default login have one.
    for id in ["rabbitmq-management", "grafana", "tomcat"] {
        assert!(db.app(id).is_some_and(|a| a.has_default_login()), "{id}");
    }
    Ok(())
}

#[test]
fn a_user_file_merges_in_and_replaces_by_id() -> TestResult {
    let mut file = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(
        &mut file,
        br#"
[[app]]
id = "grafana"
name = "Grafana (ours)"
category = "management-ui"
  [[app.identify]]
  path = "/"
  title = "^Our Grafana$"

[[app]]
id = "in-house-admin"
name = "In-house admin"
category = "management-ui"
ports = [7000]
  [[app.identify]]
  title = "^Admin console$"
  [[app.check]]
  id = "in-house-users"
  kind = "unauthenticated-api"
  proves = "the user list answers without a login"
  path = "/users.json"
  status = [200]
"#,
    )?;
    let builtin = AppDb::builtin()?;
    let db = AppDb::from_file(file.path())?;
    assert_eq!(db.apps().len(), builtin.apps().len() + 1);
    assert_eq!(db.app("grafana").map(|a| a.name()), Some("Grafana (ours)"));
    let position = |d: &AppDb, id: &str| d.apps().iter().position(|a| a.id() == id);
    assert_eq!(position(&db, "grafana"), position(&builtin, "grafana"));
    assert_eq!(db.apps().last().map(|a| a.id()), Some("in-house-admin"));
    Ok(())
}

/// Every mistake is refused with the file, the line and column, the application and what
/// is wrong.
#[test]
fn bad_files_are_refused_with_the_place() {
    let head = "[[app]]\nid = \"x\"\nname = \"X\"\ncategory = \"api\"\n";
    let cases: &[(&str, &str, &str)] = &[
        (
            "  [[app.identify]]\n  body = \"(unclosed\"\n",
            "extra.toml:6:",
            "bad regex in `body`",
        ),
        (
            "  [[app.identify]]\n  path = \"no-slash\"\n",
            "extra.toml:6:",
            "must start with '/'",
        ),
        (
            "  [[app.identify]]\n  colour = \"red\"\n",
            "extra.toml:6:",
            "unknown field `colour`",
        ),
        (
            "  [[app.identify]]\n  title = \"a\"\n  [[app.check]]\n  id = \"c\"\n  kind = \"default-credentials\"\n  proves = \"p\"\n",
            "extra.toml:9:",
            "kind = \"default-credentials\"",
        ),
        (
            "  [[app.identify]]\n  title = \"a\"\n  [[app.check]]\n  id = \"c\"\n  kind = \"unauthenticated-api\"\n",
            "extra.toml",
            "needs `id`, `kind` and `proves`",
        ),
        (
            "  [[app.identify]]\n  title = \"a\"\n  user = \"admin\"\n",
            "extra.toml:7:",
            "`user` does not belong in [[app.identify]]",
        ),
        (
            "  [[app.identify]]\n  version = { from = \"cookie\", pattern = \"(.*)\" }\n",
            "extra.toml:6:",
            "version.from = \"cookie\"",
        ),
        (
            "  [[app.identify]]\n  version = { from = \"body\", pattern = \"no group\" }\n",
            "extra.toml:6:",
            "has no group",
        ),
        ("", "extra.toml:2:", "no [[app.identify]] entry"),
        (
            "  [[app.identify]]\n  status = [999]\n",
            "extra.toml",
            "status 999",
        ),
    ];
    for (body, place, message) in cases {
        let src = format!("{head}{body}");
        let err = AppDb::parse(&src, "extra.toml")
            .expect_err(&format!("accepted:\n{src}"))
            .to_string();
        assert!(err.starts_with(place), "{err} (want {place})\n{src}");
        assert!(err.contains(message), "{err} (want {message})\n{src}");
    }
    let dup = format!(
        "{head}  [[app.identify]]\n  title = \"a\"\n{head}  [[app.identify]]\n  title = \"a\"\n"
    );
    let err = AppDb::parse(&dup, "extra.toml")
        .expect_err("duplicate")
        .to_string();
    assert!(err.contains("duplicate application id"), "{err}");
    let missing = AppDb::from_file("/nonexistent/portgate-apps.toml")
        .expect_err("missing")
        .to_string();
    assert!(missing.contains("cannot read"), "{missing}");
}

/// Behind a proxy whose own page hides everything else, an application is still named by
/// its favicon: the real favicon file of Debian's python3-notebook, served at
/// `/favicon.ico`, against the Shodan-style hash in the database.
#[test]
fn an_application_is_named_by_its_favicon() -> TestResult {
    let icon = Path::new("/usr/lib/python3/dist-packages/notebook/static/favicon.ico");
    let Ok(bytes) = std::fs::read(icon) else {
        portgate_test_support::skip(
            "an_application_is_named_by_its_favicon",
            "Debian package python3-notebook is not installed (its favicon is the fixture)",
        );
        return Ok(());
    };
    let db = AppDb::builtin()?;
    let rt = runtime();
    let (addr, _) = raw_server(&rt, move |head, _| {
        let (status, body): (&str, Vec<u8>) = if head.starts_with("GET /favicon.ico ") {
            ("200 OK", bytes.clone())
        } else if head.starts_with("GET / ") {
            (
                "200 OK",
                b"<html><title>Company portal</title></html>".to_vec(),
            )
        } else {
            ("404 Not Found", b"not here".to_vec())
        };
        let mut send = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        send.extend_from_slice(&body);
        Raw { send, hold: false }
    })?;
    let report = rt.block_on(identify_application(&target(addr), &db, &opts(false)));
    let app = report
        .found
        .first()
        .ok_or_else(|| format!("nothing named: {report:?}"))?;
    assert_eq!(app.id, "jupyter");
    assert!(
        app.evidence
            .iter()
            .any(|e| e.starts_with("GET /favicon.ico → 200")),
        "{:?}",
        app.evidence
    );
    Ok(())
}
