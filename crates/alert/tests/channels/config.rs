//! Channel configurations as written in YAML: each kind parses, unknown keys are refused
//! everywhere, and settings that cannot work are refused when the channel is built.

use portgate_alert::{Channel, ChannelConfig};

/// One configuration of each kind, with every key set.
const FIXTURES: [&str; 4] = [
    "webhook:\n  url: https://receiver.pg.test/portgate\n  secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n  timeout: 5\n",
    "slack:\n  url: https://hooks.slack.com/services/T000/B000/XXXX\n  timeout: 2.5\n",
    "syslog:\n  address: siem.pg.test:6514\n  transport: tls\n  server_name: siem.pg.test\n  facility: local4\n  app_name: portgate\n  timeout: 3\n",
    "email:\n  smtp: smtp.pg.test:587\n  from: portgate@pg.test\n  to: [secops@pg.test]\n  username: u\n  password: p\n  starttls: required\n  timeout: 5\n",
];

fn parse(yaml: &str) -> Result<ChannelConfig, String> {
    serde_saphyr::from_str::<ChannelConfig>(yaml).map_err(|e| e.to_string())
}

#[test]
fn every_kind_parses_and_builds() {
    for yaml in FIXTURES {
        let config = parse(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        let channel = Channel::new(&config).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        // Labels never show a URL's path or a secret.
        let label = channel.label();
        assert!(
            !label.contains("XXXX") && !label.contains("whsec"),
            "{label}"
        );
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("MfKQ9r8G") && !debug.contains("XXXX"),
            "{debug}"
        );
    }
}

#[test]
fn unknown_keys_are_refused_in_every_kind() {
    for yaml in FIXTURES {
        let with_unknown = format!("{yaml}  colour: blue\n");
        let err = parse(&with_unknown).expect_err(&with_unknown);
        assert!(err.contains("colour"), "{err}");
    }
    let err = parse("pager:\n  url: https://pager.pg.test/\n").unwrap_err();
    assert!(err.contains("pager"), "{err}");
}

#[test]
fn settings_that_cannot_work_are_refused() {
    for (yaml, want) in [
        (
            "webhook: {url: 'ftp://x.pg.test/', secret: s}",
            "http or https",
        ),
        (
            "webhook: {url: 'https://x.pg.test/', secret: ''}",
            "secret is empty",
        ),
        (
            "webhook: {url: 'https://x.pg.test/', secret: 'whsec_%%%'}",
            "not base64",
        ),
        ("slack: {url: 'hooks.slack.com/services/x'}", "invalid URL"),
        (
            "webhook: {url: 'https://x.pg.test/', secret: s, timeout: 0}",
            "more than 0",
        ),
        (
            "syslog: {address: 'siem.pg.test', transport: udp}",
            "expected host:port",
        ),
        (
            "syslog: {address: 'siem.pg.test:514', transport: udp, ca: /x.pem}",
            "tls only",
        ),
        (
            "syslog: {address: 'siem.pg.test:514', transport: tls, ca: /nonexistent/ca.pem}",
            "cannot read the CA file /nonexistent/ca.pem",
        ),
        (
            "syslog: {address: 'siem.pg.test:514', transport: tcp, app_name: 'two words'}",
            "app_name",
        ),
        (
            "syslog: {address: 'siem.pg.test:514', transport: tcp, facility: local9}",
            "local9",
        ),
        (
            "syslog: {address: 'siem.pg.test:514', transport: smoke}",
            "smoke",
        ),
        (
            "email: {smtp: 'smtp.pg.test:25', from: a@pg.test, to: [b@pg.test], starttls: none, username: u, password: p}",
            "starttls: required",
        ),
        (
            "email: {smtp: 'smtp.pg.test:25', from: a@pg.test, to: []}",
            "at least one recipient",
        ),
        (
            "email: {smtp: 'smtp.pg.test:25', from: 'nobody', to: [b@pg.test]}",
            "invalid email address",
        ),
    ] {
        let err = match parse(yaml) {
            Err(e) => e,
            Ok(config) => Channel::new(&config).unwrap_err().to_string(),
        };
        assert!(err.contains(want), "{yaml}: {err}");
    }
}

#[test]
fn a_ca_file_without_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "not a certificate\n").unwrap();
    let yaml = format!(
        "syslog: {{address: 'siem.pg.test:6514', transport: tls, ca: '{}'}}",
        path.display()
    );
    let err = Channel::new(&parse(&yaml).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds no usable PEM certificate"), "{err}");
}
