//! Services that cannot run on this machine (MongoDB, Elasticsearch, OpenSearch, the
//! Docker Engine API, the Kubernetes API server), served by an in-test TCP server on
//! 127.0.0.1 that replays their side of the exchange.
//!
//! Every recording is written from the protocol's own documentation: the MongoDB wire
//! protocol and BSON specifications with the documented `hello`/`isMaster` and
//! `buildInfo` replies; the Elasticsearch and OpenSearch "GET /" root endpoint examples
//! and Elasticsearch's security error body; the Docker Engine API `GET /version`
//! (`SystemVersion`) schema and its `Server`/`Api-Version` headers; the Kubernetes API
//! `Status` object and `version.Info` from `GET /version`. The servers answer on an
//! ephemeral port, so these also show that applications are named on any port.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portgate_detect::{DetectOptions, ProbeDb, detect};
use portgate_model::Detection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How a recording answers one request (the bytes received so far); `None`: wait for more.
type Answer = Arc<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// Serves `answer` on 127.0.0.1:0: reads until `answer` has a reply, sends it, closes.
async fn serve(answer: Answer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                    if let Some(reply) = answer(&got) {
                        let _ = stream.write_all(&reply).await;
                        let _ = stream.shutdown().await;
                        return;
                    }
                    if got.len() > 65536 {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn run(addr: SocketAddr) -> (Detection, Duration) {
    let db = ProbeDb::builtin().expect("db");
    let start = Instant::now();
    let d = detect(addr, &db, &DetectOptions::default()).await;
    (d, start.elapsed())
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

/// The request line's path, once the header block is complete.
fn http_path(req: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(req);
    if !text.contains("\r\n\r\n") {
        return None;
    }
    let line = text.lines().next()?;
    Some(line.split(' ').nth(1)?.to_owned())
}

fn http_response(status: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    out.into_bytes()
}

/// An HTTP recording: `routes` maps a path to (status, headers, body); others get `fallback`.
fn http_recording(
    routes: Vec<(&'static str, &'static str, Vec<&'static str>, String)>,
    fallback: (&'static str, Vec<&'static str>, String),
) -> Answer {
    Arc::new(move |req| {
        let path = http_path(req)?;
        let (status, headers, body) = routes
            .iter()
            .find(|(p, ..)| *p == path)
            .map(|(_, s, h, b)| (*s, h.clone(), b.clone()))
            .unwrap_or_else(|| fallback.clone());
        Some(http_response(status, &headers, &body))
    })
}

const ES_ROOT: &str = r#"{
  "name" : "instance-0000000000",
  "cluster_name" : "my_cluster",
  "cluster_uuid" : "5QaxoN0pRZuOmWSxstBBwQ",
  "version" : {
    "number" : "8.15.0",
    "build_flavor" : "default",
    "build_type" : "docker",
    "build_hash" : "1a77947f34deddb41af25e6f0ddb8e830159c179",
    "build_date" : "2024-08-05T10:05:34.233336849Z",
    "build_snapshot" : false,
    "lucene_version" : "9.11.1",
    "minimum_wire_compatibility_version" : "7.17.0",
    "minimum_index_compatibility_version" : "7.0.0"
  },
  "tagline" : "You Know, for Search"
}
"#;

const ES_401: &str = r#"{"error":{"root_cause":[{"type":"security_exception","reason":"missing authentication credentials for REST request [/]","header":{"WWW-Authenticate":["Basic realm=\"security\" charset=\"UTF-8\"","ApiKey"]}}],"type":"security_exception","reason":"missing authentication credentials for REST request [/]","header":{"WWW-Authenticate":["Basic realm=\"security\" charset=\"UTF-8\"","ApiKey"]}},"status":401}"#;

const OPENSEARCH_ROOT: &str = r#"{
  "name" : "opensearch-node1",
  "cluster_name" : "opensearch-cluster",
  "cluster_uuid" : "W0B8gPotTAajhMPbC9D4ww",
  "version" : {
    "distribution" : "opensearch",
    "number" : "2.11.0",
    "build_type" : "tar",
    "build_hash" : "4dcad6dd1fd45b6bd91f041a041829c8687278fa",
    "build_date" : "2023-10-13T02:55:55.511945994Z",
    "build_snapshot" : false,
    "lucene_version" : "9.7.0",
    "minimum_wire_compatibility_version" : "7.10.0",
    "minimum_index_compatibility_version" : "7.0.0"
  },
  "tagline" : "The OpenSearch Project: https://opensearch.org/"
}
"#;

const DOCKER_VERSION: &str = r#"{"Platform":{"Name":"Docker Engine - Community"},"Components":[{"Name":"Engine","Version":"24.0.7","Details":{"ApiVersion":"1.43","Arch":"amd64","BuildTime":"2023-10-26T09:08:02.000000000+00:00","Experimental":"false","GitCommit":"311b9ff","GoVersion":"go1.20.10","KernelVersion":"6.1.0-13-amd64","MinAPIVersion":"1.12","Os":"linux"}}],"Version":"24.0.7","ApiVersion":"1.43","MinAPIVersion":"1.12","GitCommit":"311b9ff","GoVersion":"go1.20.10","Os":"linux","Arch":"amd64","KernelVersion":"6.1.0-13-amd64","BuildTime":"2023-10-26T09:08:02.000000000+00:00"}
"#;

const K8S_FORBIDDEN: &str = r#"{
  "kind": "Status",
  "apiVersion": "v1",
  "metadata": {},
  "status": "Failure",
  "message": "forbidden: User \"system:anonymous\" cannot get path \"/\"",
  "reason": "Forbidden",
  "details": {},
  "code": 403
}"#;

const K8S_UNAUTHORIZED: &str = r#"{
  "kind": "Status",
  "apiVersion": "v1",
  "metadata": {},
  "status": "Failure",
  "message": "Unauthorized",
  "reason": "Unauthorized",
  "code": 401
}"#;

const K8S_VERSION: &str = r#"{
  "major": "1",
  "minor": "30",
  "gitVersion": "v1.30.2",
  "gitCommit": "39683505b630ff2121012f3c5b16215a1449d5ed",
  "gitTreeState": "clean",
  "buildDate": "2024-06-11T20:21:00Z",
  "goVersion": "go1.22.4",
  "compiler": "gc",
  "platform": "linux/amd64"
}"#;

const JSON: &str = "Content-Type: application/json";

struct Case {
    name: &'static str,
    answer: Answer,
    service: &'static str,
    product: &'static str,
    version: Option<&'static str>,
    info: Option<&'static str>,
}

fn http_cases() -> Vec<Case> {
    let k8s_headers = vec![
        "Audit-Id: 5e4d33c1-5b5b-4f0b-9d3c-8f7b7f0a1c2d",
        "Cache-Control: no-cache, private",
        JSON,
        "X-Content-Type-Options: nosniff",
    ];
    vec![
        Case {
            name: "elasticsearch",
            answer: http_recording(
                vec![(
                    "/",
                    "200 OK",
                    vec!["X-elastic-product: Elasticsearch", JSON],
                    ES_ROOT.to_owned(),
                )],
                (
                    "404 Not Found",
                    vec!["X-elastic-product: Elasticsearch", JSON],
                    r#"{"error":"no handler found","status":404}"#.to_owned(),
                ),
            ),
            service: "http",
            product: "Elasticsearch",
            version: Some("8.15.0"),
            info: Some("REST API"),
        },
        Case {
            name: "elasticsearch with security",
            answer: http_recording(
                vec![],
                (
                    "401 Unauthorized",
                    vec![
                        r#"WWW-Authenticate: Basic realm="security" charset="UTF-8""#,
                        "WWW-Authenticate: ApiKey",
                        JSON,
                    ],
                    ES_401.to_owned(),
                ),
            ),
            service: "http",
            product: "Elasticsearch",
            version: None,
            info: Some("auth required"),
        },
        Case {
            name: "opensearch",
            answer: http_recording(
                vec![(
                    "/",
                    "200 OK",
                    vec!["content-type: application/json; charset=UTF-8"],
                    OPENSEARCH_ROOT.to_owned(),
                )],
                ("404 Not Found", vec![JSON], "{}".to_owned()),
            ),
            service: "http",
            product: "OpenSearch",
            version: Some("2.11.0"),
            info: Some("REST API"),
        },
        Case {
            name: "docker engine api",
            answer: http_recording(
                vec![(
                    "/version",
                    "200 OK",
                    vec![
                        "Api-Version: 1.43",
                        JSON,
                        "Docker-Experimental: false",
                        "Ostype: linux",
                        "Server: Docker/24.0.7 (linux)",
                    ],
                    DOCKER_VERSION.to_owned(),
                )],
                (
                    "404 Not Found",
                    vec![
                        "Api-Version: 1.43",
                        JSON,
                        "Docker-Experimental: false",
                        "Ostype: linux",
                        "Server: Docker/24.0.7 (linux)",
                    ],
                    "{\"message\":\"page not found\"}\n".to_owned(),
                ),
            ),
            service: "http",
            product: "Docker",
            version: Some("24.0.7"),
            info: Some("Engine API"),
        },
        Case {
            // The same API behind a reverse proxy that replaces the Server header: the
            // generic match is provisional and GET /version names the application.
            name: "docker engine api behind nginx",
            answer: http_recording(
                vec![(
                    "/version",
                    "200 OK",
                    vec!["Server: nginx/1.25.3", JSON, "Api-Version: 1.43"],
                    DOCKER_VERSION.to_owned(),
                )],
                (
                    "404 Not Found",
                    vec!["Server: nginx/1.25.3", JSON, "Api-Version: 1.43"],
                    "{\"message\":\"page not found\"}\n".to_owned(),
                ),
            ),
            service: "http",
            product: "Docker",
            version: Some("24.0.7"),
            info: Some("Engine API 1.43"),
        },
        Case {
            name: "kubernetes api server (anonymous forbidden)",
            answer: http_recording(
                vec![(
                    "/version",
                    "200 OK",
                    k8s_headers.clone(),
                    K8S_VERSION.to_owned(),
                )],
                (
                    "403 Forbidden",
                    k8s_headers.clone(),
                    K8S_FORBIDDEN.to_owned(),
                ),
            ),
            service: "http",
            product: "Kubernetes API server",
            version: Some("1.30.2"),
            info: None,
        },
        Case {
            name: "kubernetes api server (anonymous auth off)",
            answer: http_recording(
                vec![],
                (
                    "401 Unauthorized",
                    k8s_headers.clone(),
                    K8S_UNAUTHORIZED.to_owned(),
                ),
            ),
            service: "http",
            product: "Kubernetes API server",
            version: None,
            info: Some("anonymous request refused"),
        },
    ]
}

#[tokio::test]
async fn http_applications_on_any_port() {
    for case in http_cases() {
        let addr = serve(case.answer).await;
        let (d, took) = run(addr).await;
        println!(
            "{}: {:?} {:?} {:?} {:?} in {took:?}",
            case.name, d.service, d.product, d.version, d.info
        );
        assert_eq!(d.service.as_deref(), Some(case.service), "{}", case.name);
        assert_eq!(d.product.as_deref(), Some(case.product), "{}", case.name);
        assert_eq!(d.version.as_deref(), case.version, "{}", case.name);
        if let Some(info) = case.info {
            let got = d.info.as_deref().unwrap_or_default();
            assert!(got.contains(info), "{}: info {got:?}", case.name);
        }
        assert!(!d.soft, "{}", case.name);
        assert!(!d.evidence.is_empty(), "{}", case.name);
        assert!(
            took < Duration::from_secs(3),
            "{}: took {took:?}",
            case.name
        );
    }
}

/// A plain web server: the follow-up probes cost one round trip, not a timeout.
#[tokio::test]
async fn plain_web_server_stays_fast() {
    let answer = http_recording(
        vec![(
            "/",
            "200 OK",
            vec!["Server: nginx/1.24.0", "Content-Type: text/html"],
            "<html><title>Welcome to nginx!</title></html>".to_owned(),
        )],
        (
            "404 Not Found",
            vec!["Server: nginx/1.24.0", "Content-Type: text/html"],
            "<html><center><h1>404 Not Found</h1></center></html>".to_owned(),
        ),
    );
    let addr = serve(answer).await;
    let (d, took) = run(addr).await;
    assert_eq!(d.product.as_deref(), Some("nginx"));
    assert_eq!(d.version.as_deref(), Some("1.24.0"));
    assert!(
        String::from_utf8_lossy(d.evidence.as_bytes()).contains("Welcome to nginx"),
        "the evidence is the GET / response"
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

// ---------------------------------------------------------------------------------------
// MongoDB (wire protocol and BSON, from their specifications)
// ---------------------------------------------------------------------------------------

enum Bson {
    Double(f64),
    Str(&'static str),
    Doc(Vec<(&'static str, Bson)>),
    Array(Vec<Bson>),
    ObjectId([u8; 12]),
    Bool(bool),
    Date(i64),
    Int32(i32),
    Int64(i64),
}

fn bson_doc(fields: &[(&'static str, Bson)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        let (tag, bytes) = match value {
            Bson::Double(v) => (0x01, v.to_le_bytes().to_vec()),
            Bson::Str(s) => {
                let mut b = ((s.len() + 1) as i32).to_le_bytes().to_vec();
                b.extend_from_slice(s.as_bytes());
                b.push(0);
                (0x02, b)
            }
            Bson::Doc(f) => (0x03, bson_doc(f)),
            Bson::Array(items) => {
                let keyed: Vec<(&'static str, Bson)> = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let key: &'static str = Box::leak(i.to_string().into_boxed_str());
                        (key, clone_bson(v))
                    })
                    .collect();
                (0x04, bson_doc(&keyed))
            }
            Bson::ObjectId(id) => (0x07, id.to_vec()),
            Bson::Bool(b) => (0x08, vec![u8::from(*b)]),
            Bson::Date(ms) => (0x09, ms.to_le_bytes().to_vec()),
            Bson::Int32(v) => (0x10, v.to_le_bytes().to_vec()),
            Bson::Int64(v) => (0x12, v.to_le_bytes().to_vec()),
        };
        body.push(tag);
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(&bytes);
    }
    let mut doc = ((body.len() + 5) as i32).to_le_bytes().to_vec();
    doc.extend_from_slice(&body);
    doc.push(0);
    doc
}

fn clone_bson(v: &Bson) -> Bson {
    match v {
        Bson::Double(x) => Bson::Double(*x),
        Bson::Str(s) => Bson::Str(s),
        Bson::Doc(f) => Bson::Doc(f.iter().map(|(k, v)| (*k, clone_bson(v))).collect()),
        Bson::Array(a) => Bson::Array(a.iter().map(clone_bson).collect()),
        Bson::ObjectId(id) => Bson::ObjectId(*id),
        Bson::Bool(b) => Bson::Bool(*b),
        Bson::Date(d) => Bson::Date(*d),
        Bson::Int32(i) => Bson::Int32(*i),
        Bson::Int64(i) => Bson::Int64(*i),
    }
}

/// Standard message header: messageLength, requestID, responseTo, opCode.
fn mongo_message(request_id: i32, response_to: i32, op_code: i32, body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 16) as i32).to_le_bytes().to_vec();
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&op_code.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The documented `isMaster`/`hello` reply of a standalone mongod 7.0.
fn hello_reply() -> Vec<u8> {
    bson_doc(&[
        ("ismaster", Bson::Bool(true)),
        (
            "topologyVersion",
            Bson::Doc(vec![
                (
                    "processId",
                    Bson::ObjectId(*b"\x66\x1f\x2a\x3b\x4c\x5d\x6e\x7f\x80\x91\xa2\xb3"),
                ),
                ("counter", Bson::Int64(0)),
            ]),
        ),
        ("maxBsonObjectSize", Bson::Int32(16_777_216)),
        ("maxMessageSizeBytes", Bson::Int32(48_000_000)),
        ("maxWriteBatchSize", Bson::Int32(100_000)),
        ("localTime", Bson::Date(1_717_171_717_000)),
        ("logicalSessionTimeoutMinutes", Bson::Int32(30)),
        ("connectionId", Bson::Int32(17)),
        ("minWireVersion", Bson::Int32(0)),
        ("maxWireVersion", Bson::Int32(21)),
        ("readOnly", Bson::Bool(false)),
        ("ok", Bson::Double(1.0)),
    ])
}

/// The documented `buildInfo` reply (abridged to its documented top-level fields).
fn build_info_reply() -> Vec<u8> {
    bson_doc(&[
        ("version", Bson::Str("7.0.14")),
        (
            "gitVersion",
            Bson::Str("ce59cfc6a3c5e5c067dca0d30697edd68d4f5188"),
        ),
        ("modules", Bson::Array(vec![])),
        ("allocator", Bson::Str("tcmalloc")),
        ("javascriptEngine", Bson::Str("mozjs")),
        ("sysInfo", Bson::Str("deprecated")),
        (
            "versionArray",
            Bson::Array(vec![
                Bson::Int32(7),
                Bson::Int32(0),
                Bson::Int32(14),
                Bson::Int32(0),
            ]),
        ),
        (
            "openssl",
            Bson::Doc(vec![
                ("running", Bson::Str("OpenSSL 3.0.2 15 Mar 2022")),
                ("compiled", Bson::Str("OpenSSL 3.0.2 15 Mar 2022")),
            ]),
        ),
        ("bits", Bson::Int32(64)),
        ("debug", Bson::Bool(false)),
        ("maxBsonObjectSize", Bson::Int32(16_777_216)),
        (
            "storageEngines",
            Bson::Array(vec![
                Bson::Str("devnull"),
                Bson::Str("inMemory"),
                Bson::Str("wiredTiger"),
            ]),
        ),
        ("ok", Bson::Double(1.0)),
    ])
}

/// Parses complete messages from `got`; answers OP_QUERY isMaster with OP_REPLY and
/// OP_MSG buildInfo with OP_MSG; replies once every received message is answered.
fn mongo_answer(build_info: bool) -> Answer {
    Arc::new(move |got| {
        let mut out = Vec::new();
        let mut rest = got;
        let mut answered = 0;
        while rest.len() >= 16 {
            let len = i32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            if len < 16 || rest.len() < len {
                break;
            }
            let (msg, tail) = rest.split_at(len);
            rest = tail;
            let request_id = i32::from_le_bytes(msg[4..8].try_into().unwrap());
            let op_code = i32::from_le_bytes(msg[12..16].try_into().unwrap());
            let contains = |needle: &[u8]| msg.windows(needle.len()).any(|w| w == needle);
            match op_code {
                // OP_QUERY: flags, fullCollectionName, skip, return, query.
                2004 if contains(b"isMaster") => {
                    let mut body = 8i32.to_le_bytes().to_vec(); // AwaitCapable
                    body.extend_from_slice(&0i64.to_le_bytes()); // cursorID
                    body.extend_from_slice(&0i32.to_le_bytes()); // startingFrom
                    body.extend_from_slice(&1i32.to_le_bytes()); // numberReturned
                    body.extend_from_slice(&hello_reply());
                    out.extend(mongo_message(1001, request_id, 1, &body));
                }
                // OP_MSG: flagBits, section kind 0, document.
                2013 if contains(b"buildInfo") => {
                    let mut body = 0u32.to_le_bytes().to_vec();
                    body.push(0);
                    if build_info {
                        body.extend_from_slice(&build_info_reply());
                    } else {
                        body.extend_from_slice(&bson_doc(&[
                            ("ok", Bson::Double(0.0)),
                            (
                                "errmsg",
                                Bson::Str("command buildInfo requires authentication"),
                            ),
                            ("code", Bson::Int32(13)),
                            ("codeName", Bson::Str("Unauthorized")),
                        ]));
                    }
                    out.extend(mongo_message(1002, request_id, 2013, &body));
                }
                _ => return Some(Vec::new()),
            }
            answered += 1;
        }
        (answered == 2 && rest.is_empty()).then_some(out)
    })
}

#[tokio::test]
async fn mongodb_wire_protocol() {
    let addr = serve(mongo_answer(true)).await;
    let (d, took) = run(addr).await;
    println!("mongodb: {:?} {:?} in {took:?}", d.product, d.version);
    assert_eq!(d.service.as_deref(), Some("mongodb"));
    assert_eq!(d.product.as_deref(), Some("MongoDB"));
    assert_eq!(d.version.as_deref(), Some("7.0.14"));
    assert_eq!(d.cpe.as_deref(), Some("cpe:/a:mongodb:mongodb:7.0.14"));
    assert_eq!(d.probe.as_deref(), Some("mongodb"));

    let addr = serve(mongo_answer(false)).await;
    let (d, _) = run(addr).await;
    assert_eq!(d.service.as_deref(), Some("mongodb"));
    assert_eq!(d.version, None);
    assert_eq!(d.info.as_deref(), Some("auth required"));
}

/// The probe's bytes are the documented messages: a 58-byte OP_QUERY isMaster on
/// admin.$cmd, then a 56-byte OP_MSG buildInfo on admin.
#[test]
fn mongodb_probe_is_well_formed() {
    let db = ProbeDb::builtin().expect("db");
    let payload = db
        .probe("mongodb")
        .expect("mongodb probe")
        .payload()
        .to_vec();
    assert_eq!(payload.len(), 58 + 56);
    let (query, msg) = payload.split_at(58);
    assert_eq!(&query[..4], &58i32.to_le_bytes());
    assert_eq!(&query[12..16], &2004i32.to_le_bytes());
    assert_eq!(&query[20..31], b"admin.$cmd\0");
    assert_eq!(&query[39..], &bson_doc(&[("isMaster", Bson::Int32(1))])[..]);
    assert_eq!(&msg[..4], &56i32.to_le_bytes());
    assert_eq!(&msg[12..16], &2013i32.to_le_bytes());
    assert_eq!(msg[20], 0, "section kind 0");
    assert_eq!(
        &msg[21..],
        &bson_doc(&[("buildInfo", Bson::Int32(1)), ("$db", Bson::Str("admin"))])[..]
    );
}
