//! Unit tests of the probe database: escapes, templates, load errors, the built-in DB.

use std::io::Write as _;

use portgate_detect::{ProbeDb, Template, parse_escapes};
use regex::bytes::Regex;

#[test]
fn escapes_plain_and_special() {
    assert_eq!(
        parse_escapes(r"GET / HTTP/1.0\r\n\r\n").ok(),
        Some(b"GET / HTTP/1.0\r\n\r\n".to_vec())
    );
    assert_eq!(
        parse_escapes(r"\x00\x00\x00\x08\x04\xd2\x16\x2f").ok(),
        Some(vec![0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f])
    );
    assert_eq!(
        parse_escapes(r"a\tb\0c\\d\'e\x41").ok(),
        Some(b"a\tb\0c\\d'eA".to_vec())
    );
    assert_eq!(parse_escapes("").ok(), Some(Vec::new()));
    assert_eq!(parse_escapes("é").ok(), Some("é".as_bytes().to_vec()));
}

#[test]
fn escapes_rejected() {
    for bad in [r"abc\", r"\q", r"\x4", r"\xzz", r"\x"] {
        let err = parse_escapes(bad).err();
        assert!(err.is_some(), "{bad:?} should be rejected");
    }
    let err = parse_escapes(r"ab\q")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("\\q") && err.contains('2'), "{err}");
}

#[test]
fn template_substitution() {
    let re = Regex::new(r"^SSH-([\d.]+)-OpenSSH_([\w.]+)(?: (\S+))?").expect("regex");
    let caps = re
        .captures(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        .expect("captures");
    let render = |t: &str| Template::parse(t, 3).expect("template").render(&caps);
    assert_eq!(render("$2").as_deref(), Some("9.2p1"));
    assert_eq!(
        render("protocol $1 $3").as_deref(),
        Some("protocol 2.0 Debian-2")
    );
    assert_eq!(render("cost $$5 v$2").as_deref(), Some("cost $5 v9.2p1"));
    assert_eq!(render("OpenSSH").as_deref(), Some("OpenSSH"));

    // An unset group expands to nothing; an empty result is None; spaces collapse.
    let caps = re.captures(b"SSH-2.0-OpenSSH_8.4\r\n").expect("captures");
    let render = |t: &str| Template::parse(t, 3).expect("template").render(&caps);
    assert_eq!(render("$3"), None);
    assert_eq!(
        render("protocol $1 $3 end").as_deref(),
        Some("protocol 2.0 end")
    );

    // Control characters from the response are dropped.
    let re = Regex::new(r"^v=(.*)$").expect("regex");
    let caps = re.captures(b"v=1.2\x07\x00\x1b3").expect("captures");
    assert_eq!(
        Template::parse("$1", 1)
            .expect("t")
            .render(&caps)
            .as_deref(),
        Some("1.23")
    );

    // Bad templates.
    assert!(Template::parse("$4", 3).is_err());
    assert!(Template::parse("$x", 3).is_err());
    assert!(Template::parse("trailing $", 3).is_err());
}

#[test]
fn builtin_loads() {
    let db = ProbeDb::builtin().expect("built-in probe database loads");
    let names: Vec<&str> = db.probes().iter().map(|p| p.name()).collect();
    for want in [
        "null",
        "http-get",
        "redis",
        "postgresql-startup",
        "amqp",
        "mqtt",
        "memcached",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let order: Vec<&str> = db.order_for(6379).iter().map(|p| p.name()).collect();
    assert_eq!(order.first().copied(), Some("null"));
    assert_eq!(order.get(1).copied(), Some("redis"));
    let ordinary = db.probes().iter().filter(|p| !p.is_follow_up()).count();
    assert_eq!(order.len(), ordinary);
    assert!(db.order_for(80).iter().all(|p| !p.is_follow_up()));
    let follow_ups: Vec<&str> = db.follow_ups("http").iter().map(|p| p.name()).collect();
    assert!(follow_ups.contains(&"http-jupyter-api"), "{follow_ups:?}");
    let http = db.probe("http-get").expect("http probe");
    assert!(http.payload().starts_with(b"GET / HTTP/1.0\r\n"));
}

#[test]
fn builtin_matches_recorded_responses() {
    let db = ProbeDb::builtin().expect("db");
    let null = db.probe("null").expect("null");
    let d = null
        .try_match(b"\x64\x00\x00\x00\x0a5.5.5-10.11.6-MariaDB-0+deb12u1\x00\x1a\x00\x00\x00")
        .expect("mariadb");
    assert_eq!(d.product.as_deref(), Some("MariaDB"));
    assert_eq!(d.version.as_deref(), Some("10.11.6"));
    assert_eq!(d.info.as_deref(), Some("0+deb12u1"));
    let d = null
        .try_match(b"\x4a\x00\x00\x00\x0a8.0.36\x00\x08\x00\x00\x00")
        .expect("mysql");
    assert_eq!(d.product.as_deref(), Some("MySQL"));
    assert_eq!(d.version.as_deref(), Some("8.0.36"));
    let redis = db.probe("redis").expect("redis");
    let d = redis
        .try_match(b"-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n")
        .expect("noauth");
    assert_eq!(d.service.as_deref(), Some("redis"));
    assert_eq!(d.info.as_deref(), Some("auth required"));
    let d = redis
        .try_match(b"+PONG\r\n$20\r\n# Server\r\nredis_version:7.2.4\r\n")
        .expect("pong");
    assert_eq!(d.version.as_deref(), Some("7.2.4"));
    assert_eq!(d.info.as_deref(), Some("no authentication"));
    assert_eq!(d.cpe.as_deref(), Some("cpe:/a:redis:redis:7.2.4"));
    let mqtt = db.probe("mqtt").expect("mqtt");
    let d = mqtt.try_match(b"\x20\x02\x00\x05").expect("connack");
    assert_eq!(
        (d.service.as_deref(), d.info.as_deref()),
        (Some("mqtt"), Some("auth required"))
    );
    let pg = db.probe("postgresql-sslrequest").expect("pg ssl");
    let d = pg.try_match(b"N").expect("soft");
    assert!(d.soft);
    assert_eq!(d.service.as_deref(), Some("postgresql"));
    // Garbage matches nothing and does not panic.
    for p in db.probes() {
        assert!(
            p.try_match(b"\xff\xfe\x00garbage\r\n").is_none(),
            "{}",
            p.name()
        );
        let _ = p.try_match(&[0u8; 20000]);
    }
}

fn load_err(src: &str) -> String {
    match ProbeDb::parse(src, "extra.toml") {
        Ok(_) => panic!("should not load:\n{src}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn load_error_bad_regex_names_probe() {
    let src = "[[probe]]\nname = \"mine\"\npayload = 'x'\nwait_ms = 100\n\n[[probe.match]]\npattern = '^(unclosed'\nservice = \"x\"\n";
    let err = load_err(src);
    assert!(err.contains("extra.toml:7:"), "{err}");
    assert!(err.contains("probe \"mine\""), "{err}");
    assert!(err.contains("bad regex"), "{err}");
}

#[test]
fn load_error_unknown_key_names_probe_and_key() {
    let src = "[[probe]]\nname = \"first\"\npayload = ''\nwait_ms = 100\n\n[[probe]]\nname = \"second\"\npaylod = 'x'\npayload = 'x'\nwait_ms = 100\n";
    let err = load_err(src);
    assert!(err.contains("extra.toml:"), "{err}");
    assert!(err.contains("probe \"second\""), "{err}");
    assert!(err.contains("paylod"), "{err}");

    let src = "[[probe]]\nname = \"m\"\npayload = 'x'\nwait_ms = 100\n[[probe.match]]\npattern = 'x'\nservice = \"s\"\nvesion = \"$1\"\n";
    let err = load_err(src);
    assert!(
        err.contains("probe \"m\"") && err.contains("vesion"),
        "{err}"
    );
    assert!(err.contains(":8:"), "{err}");
}

#[test]
fn load_error_bad_values() {
    let bad_type = "[[probe]]\nname = \"t\"\npayload = 'x'\nwait_ms = \"soon\"\n";
    let err = load_err(bad_type);
    assert!(
        err.contains("extra.toml:4:") && err.contains("wait_ms"),
        "{err}"
    );

    let bad_escape = "[[probe]]\nname = \"e\"\npayload = 'a\\qb'\nwait_ms = 10\n";
    let err = load_err(bad_escape);
    assert!(
        err.contains("probe \"e\"") && err.contains("\\q") && err.contains(":3:"),
        "{err}"
    );

    let bad_group = "[[probe]]\nname = \"g\"\npayload = 'x'\nwait_ms = 10\n[[probe.match]]\npattern = '^(a)'\nservice = \"s\"\nversion = \"$2\"\n";
    let err = load_err(bad_group);
    assert!(
        err.contains("probe \"g\"") && err.contains("version") && err.contains("$2"),
        "{err}"
    );

    let soft_product = "[[probe]]\nname = \"s\"\npayload = 'x'\nwait_ms = 10\n[[probe.match]]\npattern = 'a'\nservice = \"s\"\nsoft = true\nproduct = \"P\"\n";
    assert!(load_err(soft_product).contains("product"));

    let udp = "[[probe]]\nname = \"u\"\nprotocol = \"udp\"\npayload = 'x'\nwait_ms = 10\n";
    assert!(load_err(udp).contains("udp"));

    let dup = "[[probe]]\nname = \"d\"\npayload = 'x'\nwait_ms = 10\n[[probe]]\nname = \"d\"\npayload = 'y'\nwait_ms = 10\n";
    assert!(load_err(dup).contains("duplicate"));

    let syntax = "[[probe]]\nname = \"x\npayload = 'x'\n";
    assert!(load_err(syntax).starts_with("extra.toml:2:"));
}

#[test]
fn from_file_merges_after_builtin() {
    let mut file = tempfile::NamedTempFile::new().expect("tempfile");
    write!(
        file,
        "[[probe]]\nname = \"gopher\"\npayload = '\\r\\n'\nports = [70]\nwait_ms = 500\n\n\
         [[probe.match]]\npattern = '^i(.*)\\tfake'\nservice = \"gopher\"\n\n\
         [[probe]]\nname = \"memcached\"\npayload = 'stats\\r\\n'\nwait_ms = 500\n"
    )
    .expect("write");
    let builtin = ProbeDb::builtin().expect("builtin");
    let db = ProbeDb::from_file(file.path()).expect("merged");
    assert_eq!(db.probes().len(), builtin.probes().len() + 1);
    assert_eq!(db.probes().last().map(|p| p.name()), Some("gopher"));
    assert_eq!(
        db.probe("memcached").map(|p| p.payload()),
        Some(&b"stats\r\n"[..])
    );
    let order: Vec<&str> = db.order_for(70).iter().map(|p| p.name()).collect();
    assert_eq!(order.get(1).copied(), Some("gopher"));

    // A broken extra file: the error names the file.
    let mut bad = tempfile::NamedTempFile::new().expect("tempfile");
    write!(
        bad,
        "[[probe]]\nname = \"b\"\npayload = 'x'\nwait_ms = 10\nbogus = 1\n"
    )
    .expect("write");
    let err = ProbeDb::from_file(bad.path())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains(&bad.path().display().to_string()), "{err}");
    assert!(
        err.contains(":5:") && err.contains("bogus") && err.contains("probe \"b\""),
        "{err}"
    );

    let missing = ProbeDb::from_file("/nonexistent/portgate-probes.toml").err();
    assert!(
        missing
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("/nonexistent/portgate-probes.toml")
    );
}

#[test]
fn detection_serializes() {
    let d = portgate_model::Detection {
        service: Some("redis".into()),
        evidence: b"+PONG\r\n".to_vec().into(),
        ..Default::default()
    };
    let json = serde_json::to_string(&d).expect("json");
    assert!(json.contains("\"service\":\"redis\""), "{json}");
    assert!(json.contains(r#""evidence":"+PONG\\r\\n""#), "{json}");
}
