//! Registrable domains by the public-suffix list, IDNs through IDNA, and names
//! refused.

use portgate_enrich::registration::{host_to_ascii, registrable_domain};

#[test]
fn registrable_domains() {
    let cases = [
        ("a.b.example.co.uk", "example.co.uk"),
        ("example.co.uk", "example.co.uk"),
        ("WWW.Example.COM.", "example.com"),
        ("deep.er.example.test", "example.test"),
        // A wildcard rule (*.ck) and its exception (!www.ck).
        ("a.b.example.ck", "b.example.ck"),
        ("www.ck", "www.ck"),
        // A private-section suffix is under a registry's domain: that domain.
        ("project.github.io", "github.io"),
    ];
    for (host, domain) in cases {
        assert_eq!(
            registrable_domain(host).ok().as_deref(),
            Some(domain),
            "{host}"
        );
    }
}

#[test]
fn internationalised_names() {
    // The IANA test IDN TLD テスト (xn--zckzah).
    assert_eq!(
        registrable_domain("www.例え.テスト").ok().as_deref(),
        Some("xn--r8jz45g.xn--zckzah")
    );
    // 公司.cn is a public suffix in its Unicode form on the list.
    assert_eq!(
        registrable_domain("shop.example.公司.cn").ok().as_deref(),
        Some("example.xn--55qx5d.cn")
    );
    assert_eq!(
        host_to_ascii("Bücher.Example.TEST").ok().as_deref(),
        Some("xn--bcher-kva.example.test")
    );
}

#[test]
fn public_suffixes_and_bad_names_are_errors() {
    for suffix in ["co.uk", "com", "公司.cn", "test", "uk."] {
        let err = registrable_domain(suffix).expect_err(suffix).to_string();
        assert!(
            err.contains("is a public suffix: it has no registrable domain"),
            "{err}"
        );
    }
    let refused = [
        ("", "an empty name"),
        (".", "an empty name"),
        ("a..example.test", "an empty label"),
        ("198.18.0.1", "an IP address"),
        ("2001:db8::1", "an IP address"),
        (
            "bad name.example.test",
            "not a valid internationalised domain name",
        ),
        (
            "a/b.example.test",
            "not a valid internationalised domain name",
        ),
    ];
    for (name, why) in refused {
        let err = registrable_domain(name).expect_err(name).to_string();
        assert!(err.contains(why), "{name:?}: {err}");
    }
    let long_label = format!("{}.example.test", "a".repeat(64));
    assert!(
        host_to_ascii(&long_label)
            .expect_err("label")
            .to_string()
            .contains("a label longer than 63 bytes")
    );
    let long_name = format!("{}example.test", "abcdefghi.".repeat(25));
    assert!(host_to_ascii(&long_name).is_err());
    // Hostile names are quoted and escaped in the error.
    let err = host_to_ascii("evil\u{202e}\u{1b}[2J")
        .expect_err("hostile")
        .to_string();
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{202e}'),
        "{err:?}"
    );
}
