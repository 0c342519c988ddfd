//! Every spelling trick a target can play: what each input normalises to, or the part
//! of the error that says why it is refused.

use portgate_model::{TargetSpec, TargetSpecError};

/// What parsing an input must give.
enum Want {
    /// Parsed: the kind and the normalised form.
    Ok(&'static str, &'static str),
    /// Refused: a fragment of the message (the input itself is checked separately).
    Err(&'static str),
}

use Want::{Err, Ok};

const TABLE: &[(&str, Want)] = &[
    // Standard forms, unchanged.
    ("127.0.0.1", Ok("ip", "127.0.0.1")),
    ("  198.18.0.2  ", Ok("ip", "198.18.0.2")),
    ("2001:db8::1", Ok("ip", "2001:db8::1")),
    ("[2001:db8::1]", Ok("ip", "2001:db8::1")),
    ("::", Ok("ip", "::")),
    ("::1", Ok("ip", "::1")),
    // IPv4-mapped IPv6: the IPv4 address.
    ("::ffff:127.0.0.1", Ok("ip", "127.0.0.1")),
    ("::ffff:7f00:1", Ok("ip", "127.0.0.1")),
    ("::FFFF:7F00:1", Ok("ip", "127.0.0.1")),
    ("0:0:0:0:0:ffff:7f00:1", Ok("ip", "127.0.0.1")),
    ("[::ffff:192.0.2.1]", Ok("ip", "192.0.2.1")),
    // IPv4-compatible IPv6 (deprecated): refused, with the IPv4 form.
    (
        "::127.0.0.1",
        Err("deprecated IPv4-compatible IPv6 address; write the IPv4 address 127.0.0.1 instead"),
    ),
    ("::7f00:1", Err("write the IPv4 address 127.0.0.1 instead")),
    (
        "[::192.0.2.1]",
        Err("write the IPv4 address 192.0.2.1 instead"),
    ),
    ("::2", Err("write the IPv4 address 0.0.0.2 instead")),
    // NAT64 addresses are ordinary IPv6 targets; the scope reads their IPv4 address.
    ("64:ff9b::192.0.2.1", Ok("ip", "64:ff9b::c000:201")),
    // Legacy IPv4 literals, as inet_aton reads them.
    ("2130706433", Ok("ip", "127.0.0.1")),
    ("0177.0.0.1", Ok("ip", "127.0.0.1")),
    ("0x7f.1", Ok("ip", "127.0.0.1")),
    ("0X7F.0X1", Ok("ip", "127.0.0.1")),
    ("0x7f000001", Ok("ip", "127.0.0.1")),
    ("017700000001", Ok("ip", "127.0.0.1")),
    ("127.1", Ok("ip", "127.0.0.1")),
    ("10.1.2", Ok("ip", "10.1.0.2")),
    ("127.0.1", Ok("ip", "127.0.0.1")),
    ("1.65535", Ok("ip", "1.0.255.255")),
    ("1.2.65535", Ok("ip", "1.2.255.255")),
    ("0x7f.0.0.0x1", Ok("ip", "127.0.0.1")),
    ("010.0.0.1", Ok("ip", "8.0.0.1")),
    ("00000127.0.0.1", Ok("ip", "87.0.0.1")),
    ("4294967295", Ok("ip", "255.255.255.255")),
    ("0", Ok("ip", "0.0.0.0")),
    // A bare number is an address, as nmap and ping read it.
    ("80", Ok("ip", "0.0.0.80")),
    // A trailing dot on an IPv4 literal is dropped.
    ("127.0.0.1.", Ok("ip", "127.0.0.1")),
    ("2130706433.", Ok("ip", "127.0.0.1")),
    ("0x7f.1.", Ok("ip", "127.0.0.1")),
    // Numbers only, but not an address: an error, never a hostname.
    (
        "1.2.3.4.5",
        Err("it has 5 dot-separated numbers; an IPv4 address has at most 4"),
    ),
    ("999.1.1.1", Err("\"999\" is 999, larger than 255")),
    (
        "127.0.0.300",
        Err("looks like an IP address but is not a valid one"),
    ),
    ("127.0.0.256", Err("\"256\" is 256, larger than 255")),
    (
        "1.16777216",
        Err("larger than 16777215 (the last of 2 numbers fills 24 bits)"),
    ),
    (
        "10.1.65536",
        Err("larger than 65535 (the last of 3 numbers fills 16 bits)"),
    ),
    (
        "4294967296",
        Err("\"4294967296\" is larger than 4294967295"),
    ),
    ("0x100000000", Err("is larger than 4294967295")),
    (
        "99999999999999999999999999",
        Err("is larger than 4294967295"),
    ),
    (
        "08.1.1.1",
        Err("\"08\" is octal (it starts with 0) but has the digit '8'"),
    ),
    ("0x", Err("\"0x\" has no hexadecimal digits after 0x")),
    ("1.2.3.0x", Err("\"0x\" has no hexadecimal digits after 0x")),
    ("127.0.0.1..", Err("empty label")),
    ("::1.", Err("an IPv6 address takes no trailing dot")),
    // Names that merely start with a number stay names; names ending in one do not.
    ("0x7f.example.test", Ok("hostname", "0x7f.example.test")),
    (
        "127.0.0.1.example.test",
        Ok("hostname", "127.0.0.1.example.test"),
    ),
    ("1e100.example.test", Ok("hostname", "1e100.example.test")),
    ("host.123", Err("its last label is a number")),
    ("example.0x10", Err("its last label is a number")),
    ("0x7g.1", Err("its last label is a number")),
    // CIDR ranges: standard bases only, IPv4-mapped bases become IPv4 ranges.
    ("10.0.0.0/8", Ok("cidr", "10.0.0.0/8")),
    ("10.1.2.3/8", Ok("cidr", "10.0.0.0/8")),
    ("2001:db8::/32", Ok("cidr", "2001:db8::/32")),
    ("::ffff:10.0.0.0/104", Ok("cidr", "10.0.0.0/8")),
    ("::ffff:10.1.2.3/120", Ok("cidr", "10.1.2.0/24")),
    ("::ffff:0:0/96", Ok("cidr", "0.0.0.0/0")),
    ("::ffff:10.0.0.1/128", Ok("cidr", "10.0.0.1/32")),
    ("::/127", Ok("cidr", "::/127")),
    (
        "::ffff:10.0.0.0/95",
        Err("IPv4-mapped address, so its prefix must be /96 or longer"),
    ),
    (
        "::ffff:10.0.0.0/80",
        Err("/80 reaches beyond ::ffff:0.0.0.0/96"),
    ),
    (
        "::10.0.0.0/104",
        Err("deprecated IPv4-compatible IPv6 address; write the IPv4 range 10.0.0.0/8 instead"),
    ),
    (
        "::10.0.0.0/8",
        Err("::10.0.0.0 is a deprecated IPv4-compatible IPv6 address"),
    ),
    (
        "::/96",
        Err("range of deprecated IPv4-compatible IPv6 addresses; write the IPv4 range 0.0.0.0/0"),
    ),
    ("::2/127", Err("write the IPv4 range 0.0.0.2/31 instead")),
    (
        "::/120",
        Err("range of deprecated IPv4-compatible IPv6 addresses"),
    ),
    ("0x7f.1/8", Err("\"0x7f.1\" is not a dotted-quad address")),
    ("127.1/8", Err("(did you mean 127.0.0.1?)")),
    ("2130706433/8", Err("(did you mean 127.0.0.1?)")),
    ("0177.0.0.1/8", Err("(did you mean 127.0.0.1?)")),
    ("127.0.0.1./8", Err("\"127.0.0.1.\" is not an IP address")),
    ("host.test/8", Err("\"host.test\" is not an IP address")),
    ("10.0.0.0/+8", Err("prefix \"+8\" is not a number")),
    ("10.0.0.0/ 8", Err("prefix \" 8\" is not a number")),
    ("10.0.0.0/", Err("prefix \"\" is not a number")),
    ("10.0.0.0/0008", Err("prefix \"0008\" is not a number")),
    ("10.0.0.0/33", Err("prefix /33 is longer than /32")),
    ("2001:db8::/129", Err("prefix /129 is longer than /128")),
    // Hostnames: lower-cased, one trailing dot dropped.
    ("Example.TEST", Ok("hostname", "example.test")),
    ("host.example.test.", Ok("hostname", "host.example.test")),
    ("_srv.a-b.test", Ok("hostname", "_srv.a-b.test")),
    ("ab--cd.test", Ok("hostname", "ab--cd.test")),
    ("host.example.test..", Err("empty label")),
    ("a..b", Err("empty label")),
    ("bad host", Err("only letters, digits")),
    ("fe80::1%eth0", Err("only letters, digits")),
    ("-a.test", Err("starts or ends with '-'")),
    // IDNA: Unicode names become their ASCII form.
    (
        "bücher.example.test",
        Ok("hostname", "xn--bcher-kva.example.test"),
    ),
    (
        "BÜCHER.Example.Test.",
        Ok("hostname", "xn--bcher-kva.example.test"),
    ),
    (
        "xn--bcher-kva.example.test",
        Ok("hostname", "xn--bcher-kva.example.test"),
    ),
    (
        "XN--BCHER-KVA.example.test",
        Ok("hostname", "xn--bcher-kva.example.test"),
    ),
    (
        "faß.example.test",
        Ok("hostname", "xn--fa-hia.example.test"),
    ),
    ("☃.example.test", Ok("hostname", "xn--n3h.example.test")),
    ("ＥＸＡＭＰＬＥ.test", Ok("hostname", "example.test")),
    ("example。test", Ok("hostname", "example.test")),
    ("ex\u{ad}ample.test", Ok("hostname", "example.test")),
    // Full-width digits map to ASCII digits, and so to the address.
    ("１２７.０.０.１", Ok("ip", "127.0.0.1")),
    ("１２７。０。０。１", Ok("ip", "127.0.0.1")),
    (
        "１２７.０.０.３００",
        Err("\"300\" is 300, larger than 255"),
    ),
    // IDNA refusals, with the reason.
    (
        "xn--zz.test",
        Err("the label \"xn--zz\" is not valid Punycode"),
    ),
    (
        "a\u{2488}b.test",
        Err("the character U+2488 ('⒈') is not allowed"),
    ),
    ("a\u{200d}b.test", Err("the character U+200D")),
    ("\u{ffff}.test", Err("the character U+FFFF")),
    ("\u{301}a.test", Err("breaks an IDNA rule")),
    ("aא.test", Err("the label \"aא\" breaks an IDNA rule")),
    ("abcא.test", Err("the label \"abcא\" breaks an IDNA rule")),
    (
        "XN--ZZ.test",
        Err("the label \"XN--ZZ\" is not valid Punycode"),
    ),
    ("", Err("empty target")),
    ("   ", Err("empty target")),
];

#[test]
fn every_trick_normalises_or_is_refused() {
    let mut failures = Vec::new();
    for (input, want) in TABLE {
        let got = input.parse::<TargetSpec>();
        match (want, &got) {
            (Ok(kind, text), Result::Ok(spec))
                if spec.kind() == *kind && spec.to_string() == *text => {}
            (Err(fragment), Result::Err(err)) => {
                let message = err.to_string();
                let names_input =
                    matches!(err, TargetSpecError::Empty) || message.contains(input.trim());
                if !message.contains(fragment) || !names_input {
                    failures.push(format!("{input:?}: got {message:?}, want {fragment:?}"));
                }
            }
            (Ok(kind, text), _) => {
                failures.push(format!("{input:?}: got {got:?}, want {kind} {text}"))
            }
            (Err(fragment), Result::Ok(spec)) => failures.push(format!(
                "{input:?}: got {spec:?}, want an error with {fragment:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn normalised_forms_parse_to_themselves() {
    for (input, want) in TABLE {
        if let Ok(_, text) = want {
            let again: TargetSpec = text
                .parse()
                .unwrap_or_else(|e| panic!("{input:?} -> {text:?}: {e}"));
            assert_eq!(again.to_string(), *text, "{input:?}");
        }
    }
}

#[test]
fn errors_keep_their_structure() {
    assert_eq!(
        "::127.0.0.1".parse::<TargetSpec>(),
        Result::Err(TargetSpecError::Ipv4Compatible {
            input: "::127.0.0.1".to_string(),
            ipv4: std::net::Ipv4Addr::LOCALHOST,
        })
    );
    assert!(matches!(
        "999.1.1.1".parse::<TargetSpec>(),
        Result::Err(TargetSpecError::BadIpv4 { .. })
    ));
    assert!(matches!(
        "xn--zz.test".parse::<TargetSpec>(),
        Result::Err(TargetSpecError::BadIdna { .. })
    ));
}
