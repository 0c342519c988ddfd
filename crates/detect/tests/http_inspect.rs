//! HTTP inspection against real servers on 127.0.0.1 started here: hyper for well-formed
//! answers, raw sockets for exact (malformed, hostile) bytes, rustls for HTTPS.
//!
//! The hostile cases assert a time bound and a bound on the peak heap held by the
//! inspection (and the test's server, which runs on the same thread) while it ran,
//! counted by an allocator that counts per thread.

use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use portgate_detect::{
    CORS_PROBE_ORIGIN, HttpError, HttpOptions, USER_AGENT, inspect_http, inspect_http_at,
};
use portgate_model::HttpInfo;
use portgate_test_support::certs::{DAY, make_ca, make_leaf, provider, server_config};
use portgate_test_support::skip;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};

type TestResult = Result<(), Box<dyn Error>>;

fn opts() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_secs(3),
        ..HttpOptions::default()
    }
}

/// Timeout for the hostile cases.
const HOSTILE_TIMEOUT: Duration = Duration::from_millis(1500);

fn hostile_opts() -> HttpOptions {
    HttpOptions {
        timeout: HOSTILE_TIMEOUT,
        ..HttpOptions::default()
    }
}

/// Listen on 127.0.0.1:0 and hand every accepted connection to `serve`.
async fn listen<F, Fut>(serve: F) -> Result<SocketAddr, Box<dyn Error>>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s));
        }
    });
    Ok(addr)
}

/// Read a request head (bounded in bytes and time).
async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match timeout(Duration::from_secs(3), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    buf
}

/// A server that reads the request, sends exactly `answer` and closes; every request it
/// got is sent on the returned channel.
async fn answer(
    answer: impl Into<Vec<u8>>,
) -> Result<(SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>), Box<dyn Error>> {
    let answer = Arc::new(answer.into());
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = listen(move |mut s| {
        let answer = answer.clone();
        let tx = tx.clone();
        async move {
            let _ = tx.send(read_request(&mut s).await);
            let _ = s.write_all(&answer).await;
            let _ = s.shutdown().await;
        }
    })
    .await?;
    Ok((addr, rx))
}

type Body = BoxBody<Bytes, Infallible>;

fn full(body: &'static str) -> Body {
    Full::new(Bytes::from_static(body.as_bytes())).boxed()
}

/// A hyper HTTP/1.1 server on 127.0.0.1 answering every request with `handle`.
async fn hyper_server<F>(handle: F) -> Result<SocketAddr, Box<dyn Error>>
where
    F: Fn(Request<Incoming>) -> Response<Body> + Clone + Send + Sync + 'static,
{
    listen(move |s| {
        let handle = handle.clone();
        async move {
            let svc = service_fn(move |req| {
                let resp = handle(req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .await;
        }
    })
    .await
}

fn head_text(info: &HttpInfo) -> String {
    String::from_utf8_lossy(info.head.as_bytes()).to_lowercase()
}

/// A runtime on this thread only: the inspection and the test's servers all run here, so
/// the allocations counted on this thread are theirs.
fn runtime() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Run [`inspect_http_at`] on `addr` and assert it took less than `time` and held less
/// than `heap` bytes at its peak.
fn bounded(
    rt: &Runtime,
    what: &str,
    time: Duration,
    heap: u64,
    addr: SocketAddr,
    opts: &HttpOptions,
) -> Result<HttpInfo, HttpError> {
    let start = Instant::now();
    let mut result = None;
    let counted = allocation_counter::measure(|| {
        result = Some(rt.block_on(inspect_http_at(addr, "127.0.0.1", opts)));
    });
    let took = start.elapsed();
    println!(
        "{what}: {took:?}, heap peak {} KiB (bounds {time:?}, {} KiB)",
        counted.bytes_max / 1024,
        heap / 1024
    );
    assert!(took < time, "{what}: took {took:?}, bound {time:?}");
    assert!(
        counted.bytes_max < heap,
        "{what}: heap peak {} bytes, bound {heap}",
        counted.bytes_max
    );
    result.unwrap_or_else(|| panic!("{what}: no result"))
}

#[tokio::test]
async fn request_is_one_well_formed_get() -> TestResult {
    let (addr, mut requests) =
        answer("HTTP/1.1 204 No Content\r\nServer: t\r\nContent-Length: 0\r\n\r\n").await?;
    let info = inspect_http_at(addr, "127.0.0.1", &opts()).await?;
    assert_eq!(info.status, 204);
    assert_eq!(info.url, format!("http://127.0.0.1:{}/", addr.port()));
    let request = requests.recv().await.ok_or("no request")?;
    let want = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n\
         Origin: {CORS_PROBE_ORIGIN}\r\nConnection: close\r\n\r\n",
        addr.port()
    );
    assert_eq!(String::from_utf8_lossy(&request), want);
    assert!(USER_AGENT.starts_with("portgate/"));
    Ok(())
}

#[tokio::test]
async fn plain_200_with_title_and_all_security_headers() -> TestResult {
    let addr = hyper_server(|_req| {
        Response::builder()
            .header("server", "hyper-test/1.0")
            .header("content-type", "text/html; charset=utf-8")
            .header(
                "strict-transport-security",
                "max-age=63072000; includeSubDomains",
            )
            .header("content-security-policy", "default-src 'self'")
            .header("x-frame-options", "DENY")
            .header("x-content-type-options", "nosniff")
            .header("referrer-policy", "no-referrer")
            .header("permissions-policy", "geolocation=()")
            .body(full(
                "<!doctype html><html><head><title>Welcome to Test</title></head></html>",
            ))
            .expect("response")
    })
    .await?;
    let info = inspect_http_at(addr, "127.0.0.1", &opts()).await?;
    assert_eq!((info.status, info.reason.as_str()), (200, "OK"));
    assert_eq!(info.version, "HTTP/1.1");
    assert!(!info.tls);
    assert_eq!(info.server.as_deref(), Some("hyper-test/1.0"));
    assert_eq!(info.title.as_deref(), Some("Welcome to Test"));
    let h = &info.security_headers;
    assert_eq!(
        h.hsts.as_deref(),
        Some("max-age=63072000; includeSubDomains")
    );
    assert_eq!(h.csp.as_deref(), Some("default-src 'self'"));
    assert_eq!(h.x_frame_options.as_deref(), Some("DENY"));
    assert_eq!(h.x_content_type_options.as_deref(), Some("nosniff"));
    assert_eq!(h.referrer_policy.as_deref(), Some("no-referrer"));
    assert_eq!(h.permissions_policy.as_deref(), Some("geolocation=()"));
    assert!(info.missing_security_headers.is_empty());
    // HSTS over plain HTTP is recorded and called out.
    assert!(info.notes.iter().any(|n| n.contains("plain HTTP")));
    assert_eq!(info.redirects_to_https, None);
    assert!(info.cookies.is_empty());
    assert_eq!(info.cors, None);
    // Evidence: the raw head, ending with the empty line.
    let head = head_text(&info);
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(head.contains("x-frame-options: deny\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"));
    assert!(!info.head_truncated);
    // The model type survives a JSON round trip.
    let back: HttpInfo = serde_json::from_str(&serde_json::to_string(&info)?)?;
    assert_eq!(back, info);
    Ok(())
}

#[tokio::test]
async fn missing_security_headers_are_listed() -> TestResult {
    let (addr, _) = answer(
        "HTTP/1.1 200 OK\r\nX-Frame-Options: SAMEORIGIN\r\nx-content-type-options: nosniff\r\n\
         Content-Security-Policy: \r\nContent-Length: 0\r\n\r\n",
    )
    .await?;
    let info = inspect_http_at(addr, "127.0.0.1", &opts()).await?;
    assert_eq!(
        info.missing_security_headers,
        [
            "Content-Security-Policy",
            "Referrer-Policy",
            "Permissions-Policy"
        ]
    );
    assert_eq!(
        info.security_headers.x_frame_options.as_deref(),
        Some("SAMEORIGIN")
    );
    assert_eq!(info.title, None);
    // An empty header sets no policy: missing, with a note.
    assert_eq!(info.security_headers.csp, None);
    assert!(
        info.notes
            .iter()
            .any(|n| n == "Content-Security-Policy is empty"),
        "{:?}",
        info.notes
    );
    Ok(())
}

#[tokio::test]
async fn ipv6_loopback_host_is_bracketed() -> TestResult {
    let l = match TcpListener::bind("[::1]:0").await {
        Ok(l) => l,
        Err(e) => {
            skip(
                "ipv6_loopback_host_is_bracketed",
                format_args!("no IPv6 loopback here ({e})"),
            );
            return Ok(());
        }
    };
    let addr = l.local_addr()?;
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        let request = read_request(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n")
            .await;
        request
    });
    let info = inspect_http_at(addr, "[::1]", &opts()).await?;
    let request = String::from_utf8(server.await?)?;
    let host = format!("Host: [::1]:{}\r\n", addr.port());
    assert!(request.contains(&host), "{request}");
    assert_eq!(
        info.redirect_url,
        Some(format!("http://[::1]:{}/x", addr.port()))
    );
    Ok(())
}

#[tokio::test]
async fn redirects_absolute_and_relative() -> TestResult {
    // (status line, Location, resolved URL with {port} for the server's port, to https)
    let cases: &[(&str, &str, Option<&str>, Option<bool>)] = &[
        (
            "301 Moved Permanently",
            "https://127.0.0.1/",
            Some("https://127.0.0.1/"),
            Some(true),
        ),
        (
            "308 Permanent Redirect",
            "https://app.example.test:8443/a?b=1",
            Some("https://app.example.test:8443/a?b=1"),
            Some(true),
        ),
        (
            "302 Found",
            "/login?next=%2F",
            Some("http://127.0.0.1:{port}/login?next=%2F"),
            Some(false),
        ),
        (
            "301 Moved Permanently",
            "login",
            Some("http://127.0.0.1:{port}/login"),
            Some(false),
        ),
        (
            "307 Temporary Redirect",
            "//cdn.example.test/x",
            Some("http://cdn.example.test/x"),
            Some(false),
        ),
        // Not a redirect: Location is kept, nothing resolved.
        ("201 Created", "/items/1", None, None),
        // Not a URL reference.
        ("301 Moved Permanently", "http://[::1", None, None),
    ];
    for (status, location, want_url, want_https) in cases {
        let (addr, _) = answer(format!(
            "HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
        ))
        .await?;
        let info = inspect_http_at(addr, "127.0.0.1", &opts()).await?;
        let want_url = want_url.map(|u| u.replace("{port}", &addr.port().to_string()));
        assert_eq!(info.location.as_deref(), Some(*location), "{status}");
        assert_eq!(info.redirect_url, want_url, "{status} {location}");
        assert_eq!(info.redirects_to_https, *want_https, "{status} {location}");
        if *location == "http://[::1" {
            assert!(
                info.notes.iter().any(|n| n.contains("does not resolve")),
                "{:?}",
                info.notes
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn cookie_flags() -> TestResult {
    let (addr, _) = answer(
        "HTTP/1.1 200 OK\r\n\
         Set-Cookie: sid=abc123; Path=/; Secure; HttpOnly; SameSite=Strict\r\n\
         Set-Cookie: theme=dark\r\n\
         Set-Cookie: pref=1; samesite=lax; httponly\r\n\
         Set-Cookie: track=1; Secure; SameSite=None; Expires=Wed, 21 Oct 2037 07:28:00 GMT\r\n\
         Set-Cookie: odd=1; SameSite=Sometimes\r\n\
         Set-Cookie: novalue\r\n\
         Content-Length: 0\r\n\r\n",
    )
    .await?;
    let info = inspect_http_at(addr, "127.0.0.1", &opts()).await?;
    let got: Vec<(&str, bool, bool, Option<&str>)> = info
        .cookies
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.secure,
                c.http_only,
                c.same_site.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("sid", true, true, Some("Strict")),
            ("theme", false, false, None),
            ("pref", false, true, Some("Lax")),
            ("track", true, false, Some("None")),
            ("odd", false, false, None),
        ]
    );
    assert!(
        info.notes
            .iter()
            .any(|n| n.starts_with("Set-Cookie #6") && n.contains("novalue")),
        "{:?}",
        info.notes
    );
    Ok(())
}

#[tokio::test]
async fn cors_wildcard() -> TestResult {
    let (addr, _) =
        answer("HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: 0\r\n\r\n")
            .await?;
    let info = inspect_http_at(addr, "127.0.0.1", &opts()).await?;
    let cors = info.cors.ok_or("no CORS")?;
    assert_eq!(cors.allow_origin.as_deref(), Some("*"));
    assert!(cors.wildcard);
    assert!(!cors.reflects_origin && !cors.allow_credentials);
    assert!(!cors.any_origin_with_credentials);
    assert_eq!(cors.request_origin, CORS_PROBE_ORIGIN);
    Ok(())
}

#[tokio::test]
async fn cors_reflecting_any_origin_with_credentials() -> TestResult {
    // A real (and common) mistake: echo whatever Origin came, and allow credentials.
    let addr = hyper_server(|req| {
        let mut resp = Response::builder().header("content-type", "application/json");
        if let Some(origin) = req.headers().get("origin") {
            resp = resp
                .header("access-control-allow-origin", origin)
                .header("access-control-allow-credentials", "true")
                .header("vary", "Origin");
        }
        resp.body(full("{}")).expect("response")
    })
    .await?;
    let info = inspect_http_at(addr, "127.0.0.1", &opts()).await?;
    let cors = info.cors.ok_or("no CORS")?;
    assert_eq!(cors.allow_origin.as_deref(), Some(CORS_PROBE_ORIGIN));
    assert!(cors.reflects_origin && cors.allow_credentials);
    assert!(cors.any_origin_with_credentials);
    assert!(!cors.wildcard);
    // JSON: no body read for a title.
    assert_eq!((info.title, info.body_bytes_read), (None, 0));
    Ok(())
}

#[tokio::test]
async fn chunked_body_title() -> TestResult {
    // hyper sends a body of unknown length chunked; the title is split across chunks.
    let addr = hyper_server(|_req| {
        let parts = [
            "<html><head><ti",
            "tle>Chunked ",
            "Title</ti",
            "tle></head>",
            "</html>",
        ];
        let frames = parts
            .into_iter()
            .map(|p| Ok::<_, Infallible>(Frame::data(Bytes::from_static(p.as_bytes()))));
        Response::builder()
            .header("content-type", "text/html")
            .body(StreamBody::new(futures::stream::iter(frames)).boxed())
            .expect("response")
    })
    .await?;
    let info = inspect_http_at(addr, "127.0.0.1", &opts()).await?;
    assert!(
        head_text(&info).contains("transfer-encoding: chunked"),
        "{}",
        head_text(&info)
    );
    assert_eq!(info.title.as_deref(), Some("Chunked Title"));
    Ok(())
}

#[tokio::test]
async fn chunked_body_end_is_not_waited_past() -> TestResult {
    // The last chunk arrives, the server keeps the connection open regardless.
    let addr = listen(|mut s| async move {
        read_request(&mut s).await;
        let _ = s
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n\
                  b\r\n<p>hello</p\r\n1\r\n>\r\n0\r\n\r\n",
            )
            .await;
        sleep(Duration::from_secs(10)).await;
    })
    .await?;
    let start = Instant::now();
    let info = inspect_http_at(addr, "127.0.0.1", &opts()).await?;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(info.title, None);
    assert_eq!(info.body_bytes_read, 27);
    assert!(info.notes.is_empty(), "{:?}", info.notes);
    Ok(())
}

#[tokio::test]
async fn title_with_entities_and_whitespace() -> TestResult {
    let body = "<HTML><Head>\n<TITLE lang=\"en\">\n   Caf&eacute; &amp; Bar\t&#8211;\r\n  \
                &lt;Admin&gt; &quot;Login&quot;\n</TITLE>";
    let (addr, _) = answer(format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
    .await?;
    let info = inspect_http_at(addr, "127.0.0.1", &opts()).await?;
    assert_eq!(info.version, "HTTP/1.0");
    assert_eq!(
        info.title.as_deref(),
        Some("Café & Bar – <Admin> \"Login\"")
    );
    Ok(())
}

#[tokio::test]
async fn ssh_banner_is_not_http() -> TestResult {
    let addr = listen(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n").await;
        sleep(Duration::from_secs(5)).await;
    })
    .await?;
    let err = inspect_http_at(addr, "127.0.0.1", &opts())
        .await
        .err()
        .ok_or("expected an error")?;
    assert!(matches!(err, HttpError::NotHttp { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("not HTTP: the answer starts with \"SSH-2.0-OpenSSH_9.6p1"),
        "{msg}"
    );
    assert!(msg.contains("\\r\\n"), "{msg}");
    Ok(())
}

#[tokio::test]
async fn connection_closed_before_head_and_refused() -> TestResult {
    let (addr, _) = answer("HTTP/1.1 200 OK\r\nServer: half").await?;
    let err = inspect_http_at(addr, "127.0.0.1", &opts())
        .await
        .err()
        .ok_or("expected an error")?;
    assert!(
        matches!(err, HttpError::Closed { received: 29, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("connection closed before the response head was complete (29 bytes"),
        "{err}"
    );

    let l = TcpListener::bind("127.0.0.1:0").await?;
    let gone = l.local_addr()?;
    drop(l);
    let err = inspect_http_at(gone, "127.0.0.1", &opts())
        .await
        .err()
        .ok_or("expected an error")?;
    assert!(matches!(err, HttpError::Connect { .. }), "{err}");

    let err = inspect_http_at(gone, "bad host\r\nX: 1", &opts())
        .await
        .err()
        .ok_or("expected an error")?;
    assert!(err.to_string().starts_with("invalid host"), "{err}");
    Ok(())
}

#[tokio::test]
async fn malformed_head_is_a_clear_error() -> TestResult {
    let (addr, _) = answer("HTTP/1.1 2x0 OK\r\n\r\n").await?;
    let err = inspect_http_at(addr, "127.0.0.1", &opts())
        .await
        .err()
        .ok_or("expected an error")?;
    assert!(matches!(err, HttpError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("HTTP/1.1 2x0 OK"), "{err}");
    Ok(())
}

#[tokio::test]
async fn interim_answers_are_skipped() -> TestResult {
    let (addr, _) = answer(
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
         HTTP/1.1 200 OK\r\nServer: final\r\nContent-Length: 0\r\n\r\n",
    )
    .await?;
    let info = inspect_http_at(addr, "127.0.0.1", &opts()).await?;
    assert_eq!(info.status, 200);
    assert_eq!(info.server.as_deref(), Some("final"));
    assert!(info.notes.iter().any(|n| n.contains("interim answer 103")));
    Ok(())
}

// ---- hostile services: bounded time and heap ----

/// The heap an inspection with default caps may hold at its peak: the head (64 KiB) and
/// body (64 KiB) buffers, their copies, the server's buffers and the runtime's
/// bookkeeping, with a wide margin.
const HEAP_BOUND: u64 = 1024 * 1024;

#[test]
fn hostile_hundred_thousand_headers() -> TestResult {
    let rt = runtime()?;
    let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..100_000 {
        answer.extend_from_slice(format!("X-Header-{i}: value-{i}\r\n").as_bytes());
    }
    answer.extend_from_slice(b"\r\n");
    let answer: &'static [u8] = answer.leak();
    let addr = rt.block_on(listen(move |mut s| async move {
        read_request(&mut s).await;
        let _ = s.write_all(answer).await;
    }))?;

    // Default caps: the head is over 64 KiB long.
    let err = bounded(
        &rt,
        "100,000 headers (default caps)",
        Duration::from_secs(1),
        HEAP_BOUND,
        addr,
        &hostile_opts(),
    )
    .err()
    .ok_or("expected an error")?;
    assert!(
        matches!(err, HttpError::HeadTooLarge { limit: 65536 }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "response head over 65536 bytes (the cap) without an end"
    );

    // A head cap large enough for all of it: the header cap applies, with a note.
    let big = HttpOptions {
        max_head_bytes: 4 * 1024 * 1024,
        ..hostile_opts()
    };
    let info = bounded(
        &rt,
        "100,000 headers (4 MiB head cap)",
        Duration::from_secs(2),
        16 * 1024 * 1024,
        addr,
        &big,
    )?;
    assert_eq!(info.status, 200);
    assert!(
        info.notes
            .iter()
            .any(|n| n == "100000 header lines; only the first 256 were read (the cap)"),
        "{:?}",
        info.notes
    );
    assert!(info.head_truncated);
    assert_eq!(info.head.len(), big.max_evidence_bytes);
    Ok(())
}

#[test]
fn hostile_headers_past_the_header_cap() -> TestResult {
    let rt = runtime()?;
    let mut answer = "HTTP/1.1 200 OK\r\nServer: many\r\n".to_string();
    for i in 0..299 {
        answer.push_str(&format!("X-{i}: v\r\n"));
    }
    // Header 301: past the cap of 256, so not seen.
    answer.push_str("X-Frame-Options: DENY\r\nContent-Length: 0\r\n\r\n");
    let (addr, _requests) = rt.block_on(answer_with(answer))?;
    let info = bounded(
        &rt,
        "302 headers, cap 256",
        Duration::from_secs(1),
        HEAP_BOUND,
        addr,
        &hostile_opts(),
    )?;
    assert_eq!(info.server.as_deref(), Some("many"));
    assert!(
        info.missing_security_headers
            .iter()
            .any(|h| h == "X-Frame-Options")
    );
    assert!(
        info.notes
            .iter()
            .any(|n| n.contains("only the first 256 were read")),
        "{:?}",
        info.notes
    );
    Ok(())
}

async fn answer_with(
    a: String,
) -> Result<(SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>), Box<dyn Error>> {
    answer(a.into_bytes()).await
}

/// A server that reads the request, writes `start` once, then `repeat` until the
/// client goes away.
async fn endless(
    start: &'static [u8],
    repeat: &'static [u8],
) -> Result<SocketAddr, Box<dyn Error>> {
    listen(move |mut s| async move {
        read_request(&mut s).await;
        if s.write_all(start).await.is_err() {
            return;
        }
        while s.write_all(repeat).await.is_ok() {}
    })
    .await
}

#[test]
fn hostile_endless_header_line() -> TestResult {
    let rt = runtime()?;
    let addr = rt.block_on(endless(b"HTTP/1.1 200 OK\r\nX-Endless: ", &[b'a'; 4096]))?;
    let err = bounded(
        &rt,
        "endless header line",
        Duration::from_secs(1),
        HEAP_BOUND,
        addr,
        &hostile_opts(),
    )
    .err()
    .ok_or("expected an error")?;
    assert!(matches!(err, HttpError::HeadTooLarge { .. }), "{err}");
    Ok(())
}

#[test]
fn hostile_endless_body() -> TestResult {
    let rt = runtime()?;
    let addr = rt.block_on(endless(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><body>",
        &[b'x'; 4096],
    ))?;
    let info = bounded(
        &rt,
        "endless body",
        Duration::from_secs(1),
        HEAP_BOUND,
        addr,
        &hostile_opts(),
    )?;
    assert_eq!(info.title, None);
    assert_eq!(info.body_bytes_read, 64 * 1024);
    assert!(
        info.notes
            .iter()
            .any(|n| n == "no title in the first 65536 body bytes (the cap)"),
        "{:?}",
        info.notes
    );

    // An endless chunked body with a title early: reading stops at the title.
    let addr = rt.block_on(endless(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          10\r\n<title>Hi</title>\r\n",
        b"4\r\nxxxx\r\n",
    ))?;
    let info = bounded(
        &rt,
        "endless chunked body, title first",
        Duration::from_secs(1),
        HEAP_BOUND,
        addr,
        &hostile_opts(),
    )?;
    assert_eq!(info.title.as_deref(), Some("Hi"));
    assert!(info.body_bytes_read < 64 * 1024, "{}", info.body_bytes_read);
    Ok(())
}

/// A server that reads the request, then sends `bytes` one byte every 200 ms.
async fn dripping(bytes: &'static [u8]) -> Result<SocketAddr, Box<dyn Error>> {
    listen(move |mut s| async move {
        read_request(&mut s).await;
        for b in bytes {
            if s.write_all(&[*b]).await.is_err() {
                return;
            }
            sleep(Duration::from_millis(200)).await;
        }
    })
    .await
}

#[test]
fn hostile_slow_drip() -> TestResult {
    let rt = runtime()?;
    let addr = rt.block_on(dripping(b"HTTP/1.1 200 OK\r\nServer: slow\r\n\r\n"))?;
    let err = bounded(
        &rt,
        "slow drip head (1 byte / 200 ms)",
        HOSTILE_TIMEOUT + Duration::from_millis(500),
        HEAP_BOUND,
        addr,
        &hostile_opts(),
    )
    .err()
    .ok_or("expected an error")?;
    match &err {
        HttpError::Timeout {
            after,
            stage,
            received,
        } => {
            assert_eq!(*after, HOSTILE_TIMEOUT);
            assert_eq!(*stage, "reading the response head");
            assert!((5..=9).contains(received), "{received}");
        }
        other => return Err(format!("expected a timeout, got {other}").into()),
    }
    assert!(
        err.to_string()
            .starts_with("timed out after 1.5s reading the response head"),
        "{err}"
    );

    // A fast head and a dripping body: the answer is described, the body cut short.
    let addr = rt.block_on(listen(|mut s| async move {
        read_request(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100\r\n\r\n")
            .await;
        for b in b"<html><title>Slow".iter().cycle() {
            if s.write_all(&[*b]).await.is_err() {
                return;
            }
            sleep(Duration::from_millis(200)).await;
        }
    }))?;
    let info = bounded(
        &rt,
        "slow drip body",
        HOSTILE_TIMEOUT + Duration::from_millis(500),
        HEAP_BOUND,
        addr,
        &hostile_opts(),
    )?;
    assert_eq!(info.status, 200);
    assert!(
        info.notes
            .iter()
            .any(|n| n.starts_with("body read stopped by the 1.5s timeout")),
        "{:?}",
        info.notes
    );
    Ok(())
}

#[test]
fn hostile_silent_server() -> TestResult {
    let rt = runtime()?;
    let addr = rt.block_on(listen(|s| async move {
        sleep(Duration::from_secs(10)).await;
        drop(s);
    }))?;
    let start = Instant::now();
    let err = bounded(
        &rt,
        "accepts and never speaks",
        HOSTILE_TIMEOUT + Duration::from_millis(500),
        HEAP_BOUND,
        addr,
        &hostile_opts(),
    )
    .err()
    .ok_or("expected an error")?;
    assert!(start.elapsed() >= HOSTILE_TIMEOUT, "gave up early");
    assert!(
        matches!(
            err,
            HttpError::Timeout {
                stage: "waiting for the response head",
                received: 0,
                ..
            }
        ),
        "{err}"
    );
    Ok(())
}

#[test]
fn hostile_garbage_bytes() -> TestResult {
    let rt = runtime()?;
    // Deterministic pseudo-random bytes (xorshift), endless.
    let addr = rt.block_on(listen(|mut s| async move {
        read_request(&mut s).await;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = [0u8; 4096];
        loop {
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x.to_le_bytes()[0];
            }
            if s.write_all(&buf).await.is_err() {
                return;
            }
        }
    }))?;
    let err = bounded(
        &rt,
        "garbage bytes",
        Duration::from_secs(1),
        HEAP_BOUND,
        addr,
        &hostile_opts(),
    )
    .err()
    .ok_or("expected an error")?;
    assert!(matches!(err, HttpError::NotHttp { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("\\x"), "{msg}");
    assert!(msg.len() < 400, "{msg}");

    // Starts like HTTP, then garbage without an end: the head cap ends it.
    let addr = rt.block_on(endless(b"HTTP/1.1 ", &[0xff; 4096]))?;
    let err = bounded(
        &rt,
        "HTTP/ then garbage",
        Duration::from_secs(1),
        HEAP_BOUND,
        addr,
        &hostile_opts(),
    )
    .err()
    .ok_or("expected an error")?;
    assert!(matches!(err, HttpError::HeadTooLarge { .. }), "{err}");
    Ok(())
}

// ---- HTTPS: inspect_http over a TLS stream the test opens ----

#[tokio::test]
async fn https_over_a_tls_stream() -> TestResult {
    let ca = make_ca()?;
    let leaf = make_leaf(&["localhost"], -DAY, DAY * 30, Some(&ca))?;
    let server_config = server_config(vec![leaf.der.clone(), ca.der.clone()], &leaf.key, false)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let addr = listen(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let request = read_request(&mut tls).await;
            // No Content-Length: the body ends when the server closes, here (as many do)
            // without a TLS close_notify.
            let answer = if request.starts_with(b"GET /status ") {
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<p>all good</p>"
            } else {
                "HTTP/1.1 302 Found\r\nLocation: /app/\r\nServer: tls-test\r\n\
                 Strict-Transport-Security: max-age=31536000\r\n\
                 Set-Cookie: session=x; Secure; HttpOnly; SameSite=Lax\r\n\
                 Content-Type: text/html\r\n\r\n<title>Sign in</title>"
            };
            let _ = tls.write_all(answer.as_bytes()).await;
            let _ = tls.flush().await;
            let (mut tcp, _) = tls.into_inner();
            let _ = tcp.shutdown().await;
        }
    })
    .await?;

    // The client side: trusts the test CA only, verifies the name.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der)?;
    let client_config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let connect = || async {
        let tcp = TcpStream::connect(addr).await?;
        connector
            .connect(ServerName::try_from("localhost")?, tcp)
            .await
            .map_err(Box::<dyn Error>::from)
    };
    let tls = connect().await?;

    let info = inspect_http(tls, "localhost", addr.port(), true, &opts()).await?;
    assert!(info.tls);
    assert_eq!(info.url, format!("https://localhost:{}/", addr.port()));
    assert_eq!(info.status, 302);
    assert_eq!(
        info.redirect_url,
        Some(format!("https://localhost:{}/app/", addr.port()))
    );
    assert_eq!(info.redirects_to_https, Some(true));
    assert_eq!(info.server.as_deref(), Some("tls-test"));
    assert_eq!(info.title.as_deref(), Some("Sign in"));
    assert_eq!(
        info.security_headers.hsts.as_deref(),
        Some("max-age=31536000")
    );
    // Over TLS all six are expected; HSTS is there, the other five are not.
    assert_eq!(info.missing_security_headers.len(), 5);
    assert!(
        !info
            .missing_security_headers
            .iter()
            .any(|h| h == "Strict-Transport-Security")
    );
    assert_eq!(info.cookies.len(), 1);
    assert!(info.cookies[0].secure && info.cookies[0].http_only);
    assert!(info.notes.is_empty(), "{:?}", info.notes);

    // Another path; the body runs to the close (no close_notify), which is no error.
    let status = HttpOptions {
        path: "/status".to_string(),
        ..opts()
    };
    let info = inspect_http(connect().await?, "localhost", addr.port(), true, &status).await?;
    assert_eq!(
        info.url,
        format!("https://localhost:{}/status", addr.port())
    );
    assert_eq!((info.status, info.title), (200, None));
    assert_eq!(info.body_bytes_read, 15);
    assert!(info.notes.is_empty(), "{:?}", info.notes);
    Ok(())
}
