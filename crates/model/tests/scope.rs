//! The authorised scan scope: addresses and ranges inside, outside, and in the IPv6
//! forms that reach IPv4 hosts.

use ipnet::IpNet;
use portgate_model::{Scope, ScopeError, ScopeParseError};
use std::net::IpAddr;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn scope(entries: &[&str]) -> Scope {
    Scope::parse(entries).unwrap_or_else(|e| panic!("{entries:?}: {e}"))
}

/// A server's scope for most tests.
fn server() -> Scope {
    scope(&["10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32"])
}

/// Checks an address: `Ok(canonical)` or `Err(fragments of the message)`.
fn check_addrs(scope: &Scope, table: &[(&str, Result<&str, &[&str]>)]) {
    let mut failures = Vec::new();
    for (input, want) in table {
        let got = scope.check_addr(ip(input));
        match (want, &got) {
            (Ok(addr), Ok(canonical)) if ip(addr) == *canonical => {}
            (Err(fragments), Err(err)) => {
                let message = err.to_string();
                if let Some(missing) = fragments.iter().find(|f| !message.contains(*f)) {
                    failures.push(format!("{input}: {message:?} lacks {missing:?}"));
                }
            }
            _ => failures.push(format!("{input}: got {got:?}, want {want:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Checks a range: `Ok(range to scan)` or `Err(fragments of the message)`.
fn check_nets(scope: &Scope, table: &[(&str, Result<&str, &[&str]>)]) {
    let mut failures = Vec::new();
    for (input, want) in table {
        let got = scope.check_net(net(input));
        match (want, &got) {
            (Ok(range), Ok(checked)) if net(range) == *checked => {}
            (Err(fragments), Err(err)) => {
                let message = err.to_string();
                if let Some(missing) = fragments.iter().find(|f| !message.contains(*f)) {
                    failures.push(format!("{input}: {message:?} lacks {missing:?}"));
                }
            }
            _ => failures.push(format!("{input}: got {got:?}, want {want:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn addresses_inside_outside_and_in_disguise() {
    check_addrs(
        &server(),
        &[
            // Inside and outside.
            ("10.1.2.3", Ok("10.1.2.3")),
            ("10.255.255.255", Ok("10.255.255.255")),
            ("192.168.1.77", Ok("192.168.1.77")),
            ("2001:db8::5", Ok("2001:db8::5")),
            (
                "11.0.0.1",
                Err(&["11.0.0.1 is outside the authorised scan scope"]),
            ),
            ("192.168.2.1", Err(&["192.168.2.1 is outside"])),
            ("2001:db9::1", Err(&["2001:db9::1 is outside"])),
            ("127.0.0.1", Err(&["127.0.0.1 is outside"])),
            // IPv4-mapped: checked and returned as IPv4.
            ("::ffff:10.0.0.1", Ok("10.0.0.1")),
            ("::ffff:192.168.1.1", Ok("192.168.1.1")),
            ("::ffff:11.0.0.1", Err(&["11.0.0.1 is outside"])),
            ("::ffff:127.0.0.1", Err(&["127.0.0.1 is outside"])),
            // NAT64: checked by the embedded IPv4 address, scanned through the translator.
            ("64:ff9b::10.0.0.1", Ok("64:ff9b::a00:1")),
            ("64:ff9b:1::10.0.0.1", Ok("64:ff9b:1::a00:1")),
            (
                "64:ff9b::11.0.0.1",
                Err(&["64:ff9b::b00:1 is the NAT64 form of 11.0.0.1, which is outside"]),
            ),
            (
                "64:ff9b::127.0.0.1",
                Err(&["64:ff9b::7f00:1", "127.0.0.1", "outside"]),
            ),
            (
                "64:ff9b:1::127.0.0.1",
                Err(&["64:ff9b:1::7f00:1 is the NAT64 form of 127.0.0.1"]),
            ),
            (
                "64:ff9b:1:2::10.0.0.1",
                Err(&[
                    "64:ff9b:1:2::a00:1",
                    "depends on the translator's prefix length",
                ]),
            ),
            (
                "64:ff9b:1:0:a00:1::",
                Err(&["64:ff9b:1:0:a00:1::", "NAT64 local-use prefix"]),
            ),
            // IPv4-compatible: refused, even when its IPv4 address is in scope.
            (
                "::10.0.0.1",
                Err(&[
                    "::a00:1 is a deprecated IPv4-compatible IPv6 address",
                    "10.0.0.1 instead",
                ]),
            ),
            ("::2", Err(&["IPv4-compatible", "0.0.0.2"])),
        ],
    );
}

#[test]
fn an_ipv6_wide_scope_does_not_let_ipv4_in_through_ipv6() {
    check_addrs(
        &scope(&["::/0", "10.0.0.0/8"]),
        &[
            ("2606:4700::1", Ok("2606:4700::1")),
            ("::1", Ok("::1")),
            ("::ffff:8.8.8.8", Err(&["8.8.8.8 is outside"])),
            (
                "64:ff9b::8.8.8.8",
                Err(&["64:ff9b::808:808 is the NAT64 form of 8.8.8.8"]),
            ),
            ("64:ff9b::10.0.0.8", Ok("64:ff9b::a00:8")),
            ("::8.8.8.8", Err(&["IPv4-compatible"])),
            (
                "::",
                Err(&[":: is the unspecified address, which reaches the scanning host itself"]),
            ),
        ],
    );
}

#[test]
fn the_unspecified_address_is_never_scanned() {
    check_addrs(
        &scope(&["0.0.0.0/0", "::/0"]),
        &[
            ("0.0.0.0", Err(&["0.0.0.0 is the unspecified address"])),
            (
                "::ffff:0.0.0.0",
                Err(&["0.0.0.0 is the unspecified address"]),
            ),
            ("::", Err(&[":: is the unspecified address"])),
            ("1.1.1.1", Ok("1.1.1.1")),
        ],
    );
    check_nets(
        &scope(&["0.0.0.0/0", "::/0"]),
        &[
            (
                "0.0.0.0/8",
                Err(&["0.0.0.0/8 covers 0.0.0.0/32, the unspecified address"]),
            ),
            ("0.0.0.0/32", Err(&["0.0.0.0 is the unspecified address"])),
            (
                "::/127",
                Err(&["::/127 covers ::/128, the unspecified address"]),
            ),
            ("::1/128", Ok("::1/128")),
        ],
    );
}

#[test]
fn ranges_inside_across_the_edge_and_outside() {
    check_nets(
        &server(),
        &[
            // Inside.
            ("10.0.0.0/8", Ok("10.0.0.0/8")),
            ("10.1.0.0/16", Ok("10.1.0.0/16")),
            ("10.1.2.3/16", Ok("10.1.0.0/16")),
            ("192.168.1.128/25", Ok("192.168.1.128/25")),
            ("2001:db8:1::/48", Ok("2001:db8:1::/48")),
            ("10.9.9.9/32", Ok("10.9.9.9/32")),
            // Across the edge: refused, naming the first addresses outside.
            (
                "192.168.0.0/23",
                Err(&[
                    "192.168.0.0/23 is not entirely inside the authorised scan scope",
                    "from 192.168.0.0 to 192.168.0.255 are outside",
                ]),
            ),
            (
                "10.0.0.0/7",
                Err(&["from 11.0.0.0 to 11.255.255.255 are outside"]),
            ),
            (
                "2001:db8::/31",
                Err(&["from 2001:db9:: to 2001:db9:ffff:ffff:ffff:ffff:ffff:ffff are outside"]),
            ),
            // Outside.
            (
                "172.16.0.0/12",
                Err(&["172.16.0.0/12 is outside the authorised scan scope"]),
            ),
            ("2001:db9::/32", Err(&["2001:db9::/32 is outside"])),
            ("11.0.0.1/32", Err(&["11.0.0.1 is outside"])),
            // IPv4-mapped ranges are their IPv4 range.
            ("::ffff:10.1.0.0/112", Ok("10.1.0.0/16")),
            (
                "::ffff:10.0.0.0/103",
                Err(&["10.0.0.0/7 is not entirely inside", "11.0.0.0"]),
            ),
            ("::ffff:10.0.0.1/128", Ok("10.0.0.1/32")),
            // NAT64 ranges are checked by their IPv4 range.
            ("64:ff9b::a00:0/104", Ok("64:ff9b::a00:0/104")),
            ("64:ff9b:1::a01:0/112", Ok("64:ff9b:1::a01:0/112")),
            (
                "64:ff9b::a00:0/103",
                Err(&[
                    "64:ff9b::a00:0/103 is the NAT64 form of 10.0.0.0/7",
                    "11.0.0.0 is outside it",
                ]),
            ),
            (
                "64:ff9b:1:2::/96",
                Err(&["64:ff9b:1:2::/96", "NAT64 local-use prefix"]),
            ),
            ("64:ff9b:1::/64", Err(&["NAT64 local-use prefix"])),
            // IPv4-compatible ranges, and ranges covering whole special prefixes.
            (
                "::a00:0/104",
                Err(&[
                    "range of deprecated IPv4-compatible IPv6 addresses",
                    "10.0.0.0/8 instead",
                ]),
            ),
            (
                "::/64",
                Err(&["::/64 covers ::ffff:0.0.0.0/96, the IPv4-mapped addresses"]),
            ),
            (
                "::/88",
                Err(&["::/88 covers ::/96, the deprecated IPv4-compatible addresses"]),
            ),
            (
                "64:ff9b::/64",
                Err(&["64:ff9b::/64 covers 64:ff9b::/96, a NAT64 prefix"]),
            ),
            ("64:ff9b::/32", Err(&["covers 64:ff9b::/96"])),
            (
                "64:ff9b::/47",
                Err(&["64:ff9b::/47 covers 64:ff9b::/96, a NAT64 prefix"]),
            ),
        ],
    );
}

#[test]
fn a_range_is_checked_against_several_entries_and_the_gaps_between_them() {
    let pieces = scope(&["10.0.0.0/24", "10.0.2.0/23", "10.0.4.0/25"]);
    check_nets(
        &pieces,
        &[
            ("10.0.2.0/23", Ok("10.0.2.0/23")),
            ("10.0.2.0/24", Ok("10.0.2.0/24")),
            (
                "10.0.0.0/22",
                Err(&["from 10.0.1.0 to 10.0.1.255 are outside"]),
            ),
            (
                "10.0.2.0/22",
                Err(&["10.0.0.0/22", "from 10.0.1.0 to 10.0.1.255"]),
            ),
            (
                "10.0.4.0/24",
                Err(&["from 10.0.4.128 to 10.0.4.255 are outside"]),
            ),
        ],
    );
    // Adjacent entries merge, so a range spanning them is inside.
    let halves = scope(&["10.0.0.0/25", "10.0.0.128/25", "10.0.1.0/24"]);
    assert_eq!(halves.nets(), &[net("10.0.0.0/23")]);
    check_nets(&halves, &[("10.0.0.0/23", Ok("10.0.0.0/23"))]);
}

#[test]
fn an_api_key_narrows_the_server_scope() {
    let server = server();
    let key = scope(&[
        "10.1.0.0/16",
        "10.200.0.0/15",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "2001:db8:1::/48",
    ]);
    let narrowed = server.narrow(&key);
    assert_eq!(
        narrowed.nets(),
        &[
            net("10.1.0.0/16"),
            net("10.200.0.0/15"),
            net("192.168.1.0/24"),
            net("2001:db8:1::/48"),
        ]
    );
    assert_eq!(key.narrow(&server), narrowed, "narrowing is symmetric");
    check_addrs(
        &narrowed,
        &[
            ("10.1.2.3", Ok("10.1.2.3")),
            ("10.201.0.1", Ok("10.201.0.1")),
            ("192.168.1.5", Ok("192.168.1.5")),
            ("2001:db8:1::1", Ok("2001:db8:1::1")),
            // In the server's scope, not the key's.
            ("10.2.0.1", Err(&["10.2.0.1 is outside"])),
            ("2001:db8:2::1", Err(&["2001:db8:2::1 is outside"])),
            // In the key's scope, not the server's.
            ("172.16.0.1", Err(&["172.16.0.1 is outside"])),
            ("192.168.2.1", Err(&["192.168.2.1 is outside"])),
            ("64:ff9b::10.2.0.1", Err(&["NAT64 form of 10.2.0.1"])),
        ],
    );
    // Partly overlapping lists: the key's /15 reaches past the server's first /16.
    let server = scope(&["10.0.0.0/16", "10.2.0.0/16"]);
    let key = scope(&["10.0.0.0/15"]);
    let narrowed = server.narrow(&key);
    assert_eq!(narrowed.nets(), &[net("10.0.0.0/16")]);
    check_nets(
        &narrowed,
        &[
            ("10.0.0.0/16", Ok("10.0.0.0/16")),
            (
                "10.0.0.0/15",
                Err(&["from 10.1.0.0 to 10.1.255.255 are outside"]),
            ),
            ("10.2.0.0/16", Err(&["10.2.0.0/16 is outside"])),
        ],
    );
    // A key scope covering everything leaves the server's; an empty one allows nothing.
    assert_eq!(server.narrow(&scope(&["0.0.0.0/0", "::/0"])), server);
    let nothing = server.narrow(&Scope::default());
    assert!(nothing.is_empty());
    assert_eq!(
        nothing.check_addr(ip("10.0.0.1")),
        Err(ScopeError::OutOfScope {
            addr: ip("10.0.0.1")
        })
    );
}

#[test]
fn entries_are_parsed_strictly() {
    let ok: &[(&str, &str)] = &[
        ("10.0.0.0/8", "10.0.0.0/8"),
        (" 10.0.0.0/8 ", "10.0.0.0/8"),
        ("10.0.0.1", "10.0.0.1/32"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:0:0/96", "0.0.0.0/0"),
        ("::/0", "::/0"),
        ("::1/128", "::1/128"),
    ];
    for (entry, want) in ok {
        assert_eq!(Scope::parse_entry(entry), Ok(net(want)), "{entry}");
    }
    let bad: &[(&str, &str)] = &[
        ("", "it is empty"),
        (
            "10.0.0.1/8",
            "10.0.0.1 is not the first address of a /8; did you mean 10.0.0.0/8?",
        ),
        ("2001:db8::1/32", "did you mean 2001:db8::/32?"),
        (
            "10.1/16",
            "\"10.1\" is not a dotted-quad address; write 10.0.0.1",
        ),
        ("167772160/8", "write 10.0.0.0"),
        ("host.test/8", "\"host.test\" is not an IP address"),
        ("10.0.0.0/33", "prefix /33 is longer than /32"),
        ("10.0.0.0/+8", "prefix \"+8\" is not a number"),
        (
            "::ffff:10.0.0.0/80",
            "IPv4-mapped address, so its prefix must be /96 or longer",
        ),
        (
            "::10.0.0.0/104",
            "IPv4-compatible IPv6 addresses, which are never scanned; write the IPv4 range 10.0.0.0/8",
        ),
        ("::/96", "IPv4-compatible"),
        ("64:ff9b::/96", "64:ff9b::/96 is a NAT64 range"),
        ("64:ff9b::a00:0/104", "list the IPv4 range instead"),
        ("64:ff9b:1::/48", "NAT64 range"),
    ];
    for (entry, want) in bad {
        let err = Scope::parse_entry(entry).expect_err(entry);
        let message = err.to_string();
        assert!(
            message.contains(want) && message.contains(&format!("\"{}\"", entry.trim())),
            "{entry}: got {message:?}, want {want:?}"
        );
    }
    assert_eq!(
        Scope::parse(&["10.0.0.0/8", "10.0.0.1/8"]).map_err(|e| e.to_string()),
        Err("invalid scope entry \"10.0.0.1/8\": 10.0.0.1 is not the first address of a /8; did you mean 10.0.0.0/8?".to_string())
    );
}

#[test]
fn new_canonicalises_without_refusing() {
    let scope = Scope::new(vec![
        net("::ffff:10.0.0.0/104"),
        net("10.1.2.3/16"),
        net("2001:db8::/32"),
        net("192.168.0.0/24"),
    ]);
    assert_eq!(
        scope.nets(),
        &[
            net("10.0.0.0/8"),
            net("192.168.0.0/24"),
            net("2001:db8::/32")
        ]
    );
}

#[test]
fn text_and_serde_forms() {
    let scope: Scope = "10.0.0.0/8, 2001:db8::/32 192.168.1.0/24"
        .parse()
        .expect("a list");
    assert_eq!(scope, server());
    assert_eq!(
        scope.to_string(),
        "10.0.0.0/8, 192.168.1.0/24, 2001:db8::/32"
    );
    assert_eq!(Scope::default().to_string(), "(empty)");
    assert_eq!(" , ".parse::<Scope>(), Err(ScopeParseError::Empty));
    assert!("10.0.0.0/8, 10.1/16".parse::<Scope>().is_err());

    let json = serde_json::to_string(&scope).expect("serialise");
    assert_eq!(json, r#"["10.0.0.0/8","192.168.1.0/24","2001:db8::/32"]"#);
    let back: Scope = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(back, scope);
    let empty: Scope = serde_json::from_str("[]").expect("empty list");
    assert!(empty.is_empty());
    let err = serde_json::from_str::<Scope>(r#"["10.0.0.0/8", "10.0.0.1/8"]"#)
        .expect_err("host bits")
        .to_string();
    assert!(err.contains("invalid scope entry \"10.0.0.1/8\""), "{err}");
    assert!(serde_json::from_str::<Scope>(r#""10.0.0.0/8""#).is_err());
}

#[test]
fn errors_carry_the_addresses() {
    let scope = server();
    assert_eq!(
        scope.check_addr(ip("64:ff9b::11.0.0.1")),
        Err(ScopeError::Nat64OutOfScope {
            addr: "64:ff9b::b00:1".parse().expect("literal"),
            ipv4: "11.0.0.1".parse().expect("literal"),
        })
    );
    assert_eq!(
        scope.check_net(net("10.0.0.0/7")),
        Err(ScopeError::NetPartlyOutOfScope {
            net: net("10.0.0.0/7"),
            first_outside: ip("11.0.0.0"),
            last_outside: ip("11.255.255.255"),
        })
    );
    assert_eq!(
        scope.check_addr(ip("::10.0.0.1")),
        Err(ScopeError::Ipv4Compatible {
            addr: "::10.0.0.1".parse().expect("literal"),
            ipv4: "10.0.0.1".parse().expect("literal"),
        })
    );
}
