//! RDAP lookups against a real HTTP server on 127.0.0.1 (hyper), reached through
//! bootstrap files naming its base URL: answers parsed, error answers, caps, time
//! limits, the cache and the rate limit per server.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Bytes, Frame};
use hyper::{Request, Response, StatusCode};
use portgate_enrich::rdap::{Bootstrap, BootstrapKind, RdapClient, RdapOptions};
use portgate_enrich::{
    EnrichError, LookupOverrides, RegistrationCache, RegistrationClient, RegistrationOptions,
    RegistrationSource, ServerRateLimiter, WhoisServers, domain_expiring,
};

type Body = BoxBody<Bytes, Infallible>;

/// The requests the server received: path and time.
type Hits = Arc<Mutex<Vec<(String, Instant)>>>;

struct Server {
    addr: SocketAddr,
    hits: Hits,
}

impl Server {
    fn base(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn hits(&self, path: &str) -> Vec<Instant> {
        self.hits
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, t)| *t)
            .collect()
    }
}

const DOMAIN: &str = r#"{
  "objectClassName": "domain",
  "rdapConformance": ["rdap_level_0", "icann_rdap_technical_implementation_guide_0"],
  "handle": "2336799_DOMAIN_TEST-VRSN",
  "ldhName": "EXAMPLE.TEST",
  "status": ["client delete prohibited", "client transfer prohibited", "client update prohibited", "evil\u001b[2J"],
  "events": [
    {"eventAction": "registration", "eventDate": "1995-08-14T04:00:00Z"},
    {"eventAction": "expiration", "eventDate": "2026-08-13T04:00:00Z"},
    {"eventAction": "last changed", "eventDate": "2025-08-14T07:01:38Z"},
    {"eventAction": "last update of RDAP database", "eventDate": "2025-09-01T12:00:00Z"}
  ],
  "entities": [
    {
      "objectClassName": "entity",
      "handle": "376",
      "roles": ["registrar"],
      "publicIds": [{"type": "IANA Registrar ID", "identifier": "376"}],
      "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "Example Registrar, Inc."]]],
      "entities": [
        {
          "objectClassName": "entity",
          "roles": ["abuse"],
          "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "Abuse Desk"], ["tel", {"type": "voice"}, "uri", "tel:+1.5555550100"]]]
        }
      ]
    }
  ],
  "nameservers": [
    {"objectClassName": "nameserver", "ldhName": "A.IANA-SERVERS.EXAMPLE.TEST."},
    {"objectClassName": "nameserver", "ldhName": "b.iana-servers.example.test"}
  ],
  "secureDNS": {"delegationSigned": false},
  "notices": [{"title": "Terms of Use", "description": ["Service subject to Terms of Use."]}]
}"#;

const SECOND: &str = r#"{"objectClassName": "domain", "ldhName": "second.test",
  "events": [{"eventAction": "expiration", "eventDate": "not a date"}]}"#;

const IPV4: &str = r#"{
  "objectClassName": "ip network",
  "rdapConformance": ["rdap_level_0", "cidr0"],
  "handle": "NET-198-18-0-0-1",
  "startAddress": "198.18.0.0",
  "endAddress": "198.19.255.255",
  "ipVersion": "v4",
  "name": "SPECIAL-IPV4-BENCHMARK-TESTING-IANA-RESERVED",
  "type": "IANA Special Use",
  "country": "US",
  "parentHandle": "NET-198-0-0-0-0",
  "status": ["active"],
  "cidr0_cidrs": [{"v4prefix": "198.18.0.0", "length": 15}]
}"#;

const IPV6: &str = r#"{
  "objectClassName": "ip network",
  "handle": "2001:db8::/32",
  "startAddress": "2001:db8::",
  "endAddress": "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
  "ipVersion": "v6",
  "name": "IPV6-DOC-AP",
  "type": "ALLOCATED PORTABLE",
  "country": "AU",
  "status": ["active"]
}"#;

/// A body of `left` bytes sent in 64 KiB chunks, with no `Content-Length`.
struct Chunks {
    left: usize,
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(64 << 10);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; n])))))
    }
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).boxed()
}

fn respond(status: StatusCode, content_type: &str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    hits: Hits,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    hits.lock()
        .expect("lock")
        .push((path.clone(), Instant::now()));
    let json = "application/rdap+json";
    Ok(match path.as_str() {
        "/domain/example.test" => respond(StatusCode::OK, json, full(DOMAIN)),
        "/domain/second.test" => respond(StatusCode::OK, json, full(SECOND)),
        "/domain/missing.test" => respond(
            StatusCode::NOT_FOUND,
            json,
            full(r#"{"errorCode": 404, "title": "Not Found", "description": ["No such domain."]}"#),
        ),
        "/domain/html.test" => respond(
            StatusCode::OK,
            "text/html",
            full("<html><body>Service moved</body></html>"),
        ),
        "/domain/big.test" => respond(StatusCode::OK, json, full(vec![b' '; 2 << 20])),
        "/domain/stream.test" => respond(StatusCode::OK, json, Chunks { left: 2 << 20 }.boxed()),
        "/domain/slow.test" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            respond(StatusCode::OK, json, full(DOMAIN))
        }
        "/domain/entity.test" => respond(
            StatusCode::OK,
            json,
            full(r#"{"objectClassName": "entity", "handle": "X"}"#),
        ),
        "/domain/array.test" => respond(StatusCode::OK, json, full("[1, 2, 3]")),
        "/ip/198.18.0.1" => respond(StatusCode::OK, json, full(IPV4)),
        "/ip/2001:db8::1" => respond(StatusCode::OK, json, full(IPV6)),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", full("")),
    })
}

async fn start_server() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    let hits: Hits = Arc::default();
    let server_hits = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let hits = Arc::clone(&server_hits);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(req, Arc::clone(&hits)));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server { addr, hits }
}

/// Bootstrap files (all three kinds) naming only the test server.
fn write_bootstrap(dir: &Path, base: &str) -> [PathBuf; 3] {
    let dns = dir.join("dns.json");
    let v4 = dir.join("ipv4.json");
    let v6 = dir.join("ipv6.json");
    let file = |description: &str, entries: &str| {
        format!(
            r#"{{"description": "{description}", "publication": "2025-06-01T00:00:00Z",
               "services": [[[{entries}], ["{base}"]]], "version": "1.0"}}"#
        )
    };
    std::fs::write(
        &dns,
        file(
            "RDAP bootstrap file for Domain Name System registrations",
            r#""test""#,
        ),
    )
    .expect("write dns.json");
    std::fs::write(
        &v4,
        file(
            "RDAP bootstrap file for IPv4 address allocations",
            r#""198.18.0.0/15""#,
        ),
    )
    .expect("write ipv4.json");
    std::fs::write(
        &v6,
        file(
            "RDAP bootstrap file for IPv6 address allocations",
            r#""2001:db8::/32""#,
        ),
    )
    .expect("write ipv6.json");
    [dns, v4, v6]
}

fn bootstrap(dir: &Path, base: &str) -> Bootstrap {
    let [dns, v4, v6] = write_bootstrap(dir, base);
    let mut b = Bootstrap::from_path(&dns).expect("dns.json loads");
    assert_eq!(
        b.load_path(&v4).expect("ipv4.json loads"),
        BootstrapKind::Ipv4
    );
    assert_eq!(
        b.load_path(&v6).expect("ipv6.json loads"),
        BootstrapKind::Ipv6
    );
    b
}

fn options(interval: Duration, timeout: Duration) -> RegistrationOptions {
    let mut o = RegistrationOptions {
        per_server_interval: interval,
        ..RegistrationOptions::default()
    };
    o.rdap.timeout = timeout;
    o.rdap.system_proxy = false;
    o
}

fn client(dir: &Path, server: &Server, interval: Duration) -> RegistrationClient {
    RegistrationClient::new(
        bootstrap(dir, &server.base()),
        WhoisServers::empty(),
        options(interval, Duration::from_secs(5)),
    )
    .expect("client")
}

#[tokio::test]
async fn domain_answer_is_parsed() {
    let server = start_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let client = client(dir.path(), &server, Duration::ZERO);

    let reg = client
        .lookup_domain("www.Example.TEST")
        .await
        .expect("a registration");
    assert_eq!(reg.domain, "example.test");
    assert_eq!(reg.source, RegistrationSource::Rdap);
    assert_eq!(reg.server, format!("{}domain/example.test", server.base()));
    assert_eq!(reg.registrar.as_deref(), Some("Example Registrar, Inc."));
    assert_eq!(reg.registrar_iana_id, Some(376));
    assert_eq!(
        reg.status,
        [
            "client delete prohibited",
            "client transfer prohibited",
            "client update prohibited",
            "evil\\u{1b}[2J",
        ]
    );
    assert_eq!(
        reg.created,
        Utc.with_ymd_and_hms(1995, 8, 14, 4, 0, 0).single()
    );
    assert_eq!(
        reg.expires,
        Utc.with_ymd_and_hms(2026, 8, 13, 4, 0, 0).single()
    );
    assert_eq!(
        reg.last_changed,
        Utc.with_ymd_and_hms(2025, 8, 14, 7, 1, 38).single()
    );
    assert_eq!(
        reg.nameservers,
        ["a.iana-servers.example.test", "b.iana-servers.example.test"]
    );
    assert!(reg.warnings.is_empty(), "{:?}", reg.warnings);

    let now = Utc
        .with_ymd_and_hms(2026, 7, 30, 4, 0, 0)
        .single()
        .expect("date");
    assert_eq!(domain_expiring(&reg, now, 30), Some(14));
    assert_eq!(domain_expiring(&reg, now, 7), None);
    let later = Utc
        .with_ymd_and_hms(2026, 9, 1, 0, 0, 0)
        .single()
        .expect("date");
    assert_eq!(domain_expiring(&reg, later, 30), Some(-19));

    // A bad date is a warning naming its place, not a failed lookup.
    let second = client.lookup_domain("second.test").await.expect("second");
    assert_eq!(second.expires, None);
    assert_eq!(
        second.warnings,
        ["events[0].eventDate = \"not a date\": not a date"]
    );
}

#[tokio::test]
async fn ip_answers_are_parsed() {
    let server = start_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let client = client(dir.path(), &server, Duration::ZERO);

    let v4 = client
        .lookup_ip("198.18.0.1".parse().expect("ip"))
        .await
        .expect("v4 registration");
    assert_eq!(v4.handle.as_deref(), Some("NET-198-18-0-0-1"));
    assert_eq!(
        v4.name.as_deref(),
        Some("SPECIAL-IPV4-BENCHMARK-TESTING-IANA-RESERVED")
    );
    assert_eq!(v4.country.as_deref(), Some("US"));
    assert_eq!(v4.start_address, "198.18.0.0".parse::<IpAddr>().ok());
    assert_eq!(v4.end_address, "198.19.255.255".parse::<IpAddr>().ok());
    assert_eq!(v4.kind.as_deref(), Some("IANA Special Use"));
    assert_eq!(v4.parent_handle.as_deref(), Some("NET-198-0-0-0-0"));
    assert_eq!(v4.status, ["active"]);
    assert_eq!(v4.server, format!("{}ip/198.18.0.1", server.base()));

    // An IPv4-mapped address is asked as IPv4.
    let mapped = client
        .lookup_ip("::ffff:198.18.0.1".parse().expect("ip"))
        .await
        .expect("mapped");
    assert_eq!(mapped.query, "198.18.0.1".parse::<IpAddr>().expect("ip"));

    let v6 = client
        .lookup_ip("2001:db8::1".parse().expect("ip"))
        .await
        .expect("v6 registration");
    assert_eq!(v6.name.as_deref(), Some("IPV6-DOC-AP"));
    assert_eq!(v6.country.as_deref(), Some("AU"));
    assert_eq!(
        v6.end_address,
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
            .parse::<IpAddr>()
            .ok()
    );

    // No service for the address: nothing is sent.
    let err = client
        .lookup_ip("203.0.113.9".parse().expect("ip"))
        .await
        .expect_err("no service");
    assert!(matches!(err, EnrichError::NoServer { .. }), "{err}");
}

#[tokio::test]
async fn error_answers_are_clear() {
    let server = start_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = RdapOptions {
        timeout: Duration::from_millis(800),
        system_proxy: false,
        ..RdapOptions::default()
    };
    let rdap = RdapClient::new(
        bootstrap(dir.path(), &server.base()),
        options,
        Arc::new(ServerRateLimiter::new(Duration::ZERO)),
    )
    .expect("client");
    let base = server.base();

    let err = rdap.lookup_domain("missing.test").await.expect_err("404");
    assert!(
        matches!(err, EnrichError::Http { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{base}domain/missing.test: HTTP status 404: Not Found: {{\"errorCode\": 404, \
             \"title\": \"Not Found\", \"description\": [\"No such domain.\"]}}"
        )
    );

    let err = rdap.lookup_domain("html.test").await.expect_err("HTML");
    let text = err.to_string();
    assert!(matches!(err, EnrichError::Json { .. }), "{err:?}");
    assert!(
        text.starts_with(&format!(
            "{base}domain/html.test: at line 1, column 1: the answer is not JSON"
        )) && text.contains("text/html")
            && text.contains("<html><body>Service moved"),
        "{text}"
    );

    for name in ["big.test", "stream.test"] {
        let err = rdap.lookup_domain(name).await.expect_err("over the cap");
        assert_eq!(
            err.to_string(),
            format!("{base}domain/{name}: the answer is larger than the cap of 1048576 bytes")
        );
    }

    let started = Instant::now();
    let err = rdap.lookup_domain("slow.test").await.expect_err("slow");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the time limit held"
    );
    assert_eq!(
        err.to_string(),
        format!("{base}domain/slow.test: no complete answer within 800ms")
    );

    let err = rdap.lookup_domain("entity.test").await.expect_err("entity");
    assert!(
        err.to_string().contains("objectClassName") && err.to_string().contains("\"entity\""),
        "{err}"
    );
    let err = rdap.lookup_domain("array.test").await.expect_err("array");
    assert!(err.to_string().contains("not a JSON object"), "{err}");

    // A port with nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let dir2 = tempfile::tempdir().expect("tempdir");
    let refused = RdapClient::new(
        bootstrap(dir2.path(), &format!("http://127.0.0.1:{port}/")),
        RdapOptions {
            system_proxy: false,
            ..RdapOptions::default()
        },
        Arc::new(ServerRateLimiter::new(Duration::ZERO)),
    )
    .expect("client");
    let err = refused
        .lookup_domain("example.test")
        .await
        .expect_err("refused");
    assert!(matches!(err, EnrichError::Request { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("http://127.0.0.1:{port}/domain/example.test: "))
    );
}

#[tokio::test]
async fn cache_answers_a_second_lookup_without_a_request() {
    let server = start_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let client = client(dir.path(), &server, Duration::ZERO);

    let first = client.lookup_domain("example.test").await.expect("first");
    let second = client
        .lookup_domain("mail.example.test")
        .await
        .expect("second");
    assert_eq!(first, second);
    assert_eq!(server.hits("/domain/example.test").len(), 1);
    let ip: IpAddr = "198.18.0.1".parse().expect("ip");
    client.lookup_ip(ip).await.expect("ip");
    client.lookup_ip(ip).await.expect("ip again");
    assert_eq!(server.hits("/ip/198.18.0.1").len(), 1);

    // skip_cache asks again.
    let overrides = LookupOverrides {
        skip_cache: true,
        ..LookupOverrides::default()
    };
    client
        .lookup_domain_with("example.test", &overrides)
        .await
        .expect("asked again");
    assert_eq!(server.hits("/domain/example.test").len(), 2);

    // Saved and loaded, the cache still answers: a new client sends nothing.
    let path = dir.path().join("registrations.json");
    client.cache().save(&path).expect("save");
    let loaded = RegistrationCache::load(&path, Duration::from_secs(86_400)).expect("load");
    assert_eq!(loaded.len(), 2);
    let fresh_client = self::client(dir.path(), &server, Duration::ZERO);
    fresh_client.set_cache(loaded.clone());
    let again = fresh_client
        .lookup_domain("example.test")
        .await
        .expect("cached");
    assert_eq!(again.registrar.as_deref(), Some("Example Registrar, Inc."));
    assert_eq!(server.hits("/domain/example.test").len(), 2);

    // Past the TTL an entry is stale.
    let tomorrow = Utc::now() + chrono::TimeDelta::hours(25);
    assert!(loaded.domain("example.test", tomorrow).is_none());
    assert!(loaded.domain("example.test", Utc::now()).is_some());
    // A file that does not exist is an empty cache; one that is not a cache is an error.
    let none = RegistrationCache::load(&dir.path().join("absent.json"), Duration::from_secs(60))
        .expect("empty");
    assert!(none.is_empty());
    std::fs::write(
        dir.path().join("bad.json"),
        "{\"version\": 1, \"entries\": 5}",
    )
    .expect("write");
    let err = RegistrationCache::load(&dir.path().join("bad.json"), Duration::from_secs(60))
        .expect_err("bad")
        .to_string();
    assert!(err.contains("bad.json: at entries"), "{err}");
}

#[tokio::test]
async fn rate_limit_spaces_requests_to_one_server() {
    let server = start_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let interval = Duration::from_millis(400);
    let client = client(dir.path(), &server, interval);

    let (a, b) = tokio::join!(
        client.lookup_domain("example.test"),
        client.lookup_domain("second.test")
    );
    a.expect("first");
    b.expect("second");
    let mut times = server.hits("/domain/example.test");
    times.extend(server.hits("/domain/second.test"));
    times.sort();
    assert_eq!(times.len(), 2);
    let gap = times[1] - times[0];
    assert!(gap >= Duration::from_millis(350), "requests {gap:?} apart");

    // Different servers do not wait for each other; the same one does.
    let limiter = ServerRateLimiter::new(Duration::from_millis(300));
    let started = Instant::now();
    limiter.wait("rdap.one.example.test:443").await;
    limiter.wait("rdap.two.example.test:443").await;
    assert!(started.elapsed() < Duration::from_millis(150));
    limiter.wait("rdap.one.example.test:443").await;
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[test]
fn bootstrap_files_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dns.json");
    std::fs::write(
        &path,
        r#"{"publication": "2025-01-01T00:00:00Z", "services": [[["test"], ["ftp://127.0.0.1/"]]]}"#,
    )
    .expect("write");
    let err = Bootstrap::from_path(&path).expect_err("ftp").to_string();
    assert!(
        err.contains("services[0][1][0]") && err.contains("not an http:// or https:// URL"),
        "{err}"
    );
    std::fs::write(
        &path,
        r#"{"publication": "2025-01-01T00:00:00Z", "services": [[["test"]]]}"#,
    )
    .expect("write");
    let err = Bootstrap::from_path(&path).expect_err("short").to_string();
    assert!(err.contains("services[0]"), "{err}");
    std::fs::write(&path, r#"{"publication": "soon", "services": []}"#).expect("write");
    let err = Bootstrap::from_path(&path).expect_err("date").to_string();
    assert!(err.contains("publication"), "{err}");

    // A user file replaces the built-in registry of its kind, and only that one.
    let [dns, _, _] = write_bootstrap(dir.path(), "http://127.0.0.1:9/");
    let mut b = Bootstrap::builtin().expect("built-in");
    assert!(b.domain_service("example.test").is_none());
    b.load_path(&dns).expect("loads");
    assert_eq!(
        b.domain_service("example.test"),
        Some("http://127.0.0.1:9/")
    );
    assert_eq!(b.domain_service("example.com"), None);
    assert!(b.ip_service("8.8.8.8".parse().expect("ip")).is_some());
}
