//! ASN tables in the three formats, read from fixtures in their real formats: lookups
//! at range edges, nested prefixes, multi-origin CAIDA rows, malformed lines, gzip,
//! and the MaxMind DB fixture (made by `tests/fixtures/make_asn_mmdb.py`).

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use portgate_enrich::asn::{
    AsnFormat, AsnLimits, AsnRange, AsnTable, detect_format, ip_from_key, ip_key, load_path,
    parse_bytes,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

fn asns(table: &AsnTable, address: &str) -> Option<Vec<u32>> {
    table.lookup(ip(address)).map(|r| r.asns.clone())
}

#[test]
fn iptoasn_v4_and_v6() {
    let limits = AsnLimits::default();
    let v4 = load_path(&fixture("ip2asn-v4.tsv"), None, &limits).expect("v4 loads");
    assert_eq!(v4.format, AsnFormat::Iptoasn);
    assert_eq!(v4.date, None);
    assert_eq!(v4.ranges.len(), 5);
    assert_eq!(v4.unrouted_rows, 2, "AS 0 rows are skipped and counted");
    let v6 = load_path(&fixture("ip2asn-v6.tsv"), None, &limits).expect("v6 loads");
    assert_eq!(v6.ranges.len(), 2);
    assert_eq!(v6.unrouted_rows, 1);

    let mut ranges = v4.ranges;
    ranges.extend(v6.ranges);
    let table = AsnTable::new(ranges);

    // Range edges.
    assert_eq!(asns(&table, "198.17.255.255"), None);
    assert_eq!(asns(&table, "198.18.0.0"), Some(vec![64500]));
    assert_eq!(asns(&table, "198.18.255.255"), Some(vec![64500]));
    assert_eq!(asns(&table, "198.19.0.0"), Some(vec![64501]));
    assert_eq!(asns(&table, "198.19.0.255"), Some(vec![64501]));
    // Not routed (AS 0, skipped).
    assert_eq!(asns(&table, "198.19.1.0"), None);
    assert_eq!(asns(&table, "0.0.0.1"), None);
    assert_eq!(asns(&table, "203.0.113.255"), Some(vec![4_200_000_000]));
    // IPv4-mapped IPv6 is looked up as IPv4.
    assert_eq!(asns(&table, "::ffff:198.19.0.7"), Some(vec![64501]));

    let hosting = table.lookup(ip("198.19.0.1")).expect("a range");
    assert_eq!(hosting.country.as_deref(), Some("DE"));
    assert_eq!(
        hosting.org.as_deref(),
        Some("EXAMPLE-HOSTING Example Hosting GmbH")
    );
    let no_country = table.lookup(ip("198.19.200.1")).expect("a range");
    assert_eq!(no_country.country, None);

    assert_eq!(asns(&table, "2001:db7:ffff::1"), None);
    assert_eq!(asns(&table, "2001:db8::"), Some(vec![64502]));
    assert_eq!(
        asns(&table, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
        Some(vec![64502])
    );
    let six = table.lookup(ip("2001:db9::5")).expect("a range");
    assert_eq!(six.org.as_deref(), Some("EXAMPLE-SIX-B Exemple Réseau SAS"));
    assert_eq!(asns(&table, "2001:db9:1::"), None);
}

#[test]
fn caida_nested_prefixes_and_multi_origin() {
    let dataset = load_path(
        &fixture("routeviews-rv2-20250101-1200.pfx2as"),
        None,
        &AsnLimits::default(),
    )
    .expect("CAIDA loads");
    assert_eq!(dataset.format, AsnFormat::CaidaPfx2as);
    assert_eq!(dataset.date, NaiveDate::from_ymd_opt(2025, 1, 1));
    assert_eq!(dataset.ranges.len(), 9);
    let table = dataset.into_table();

    // The /15 holds a /24 which holds a /25: the most specific wins.
    assert_eq!(asns(&table, "198.18.0.1"), Some(vec![64500]));
    assert_eq!(asns(&table, "198.18.4.255"), Some(vec![64500]));
    assert_eq!(asns(&table, "198.18.5.0"), Some(vec![64501]));
    assert_eq!(asns(&table, "198.18.5.127"), Some(vec![64501]));
    assert_eq!(asns(&table, "198.18.5.128"), Some(vec![64500, 64510]));
    assert_eq!(asns(&table, "198.18.5.255"), Some(vec![64500, 64510]));
    assert_eq!(asns(&table, "198.18.6.0"), Some(vec![64511, 64512]));
    assert_eq!(asns(&table, "198.18.7.9"), Some(vec![64500, 64501, 64502]));
    assert_eq!(asns(&table, "198.18.8.0"), Some(vec![64500]));
    assert_eq!(asns(&table, "198.19.255.255"), Some(vec![64500]));
    assert_eq!(asns(&table, "198.20.0.0"), None);

    assert_eq!(asns(&table, "2001:db8::1"), Some(vec![64502]));
    assert_eq!(asns(&table, "2001:db8:1:ffff::"), Some(vec![64503, 64504]));
    assert_eq!(asns(&table, "2001:db8:2::"), Some(vec![64502]));
    let r = table.lookup(ip("2001:db8:1::1")).expect("a range");
    assert_eq!(r.start, ip("2001:db8:1::"));
    assert_eq!(r.end, ip("2001:db8:1:ffff:ffff:ffff:ffff:ffff"));
    assert_eq!(r.org, None);
}

#[test]
fn maxmind_database_walked_into_ranges() {
    let dataset = load_path(&fixture("asn-test.mmdb"), None, &AsnLimits::default())
        .expect("the MaxMind DB loads");
    assert_eq!(dataset.format, AsnFormat::MaxmindAsn);
    assert_eq!(dataset.date, NaiveDate::from_ymd_opt(2025, 1, 1));
    assert_eq!(
        dataset.networks_without_asn, 1,
        "192.0.2.0/24 has no number"
    );
    // IPv4 networks come out as IPv4, once each.
    assert!(
        dataset
            .ranges
            .iter()
            .any(|r| r.start == ip("198.18.0.0") && r.asns == vec![64500])
    );
    assert!(dataset.ranges.iter().all(|r| match r.start {
        IpAddr::V6(v6) => v6.segments()[0] == 0x2001,
        IpAddr::V4(_) => r.end.is_ipv4(),
    }));
    let table = dataset.into_table();
    assert_eq!(asns(&table, "198.17.255.255"), None);
    assert_eq!(asns(&table, "198.18.0.0"), Some(vec![64500]));
    assert_eq!(asns(&table, "198.18.4.255"), Some(vec![64500]));
    assert_eq!(asns(&table, "198.18.5.0"), Some(vec![64501]));
    assert_eq!(asns(&table, "198.18.5.255"), Some(vec![64501]));
    assert_eq!(asns(&table, "198.18.6.0"), Some(vec![64500]));
    assert_eq!(asns(&table, "198.19.255.255"), Some(vec![64500]));
    assert_eq!(asns(&table, "192.0.2.1"), None);
    let hosting = table.lookup(ip("198.18.5.9")).expect("a range");
    assert_eq!(hosting.org.as_deref(), Some("Example Hosting"));
    assert_eq!(hosting.country, None);
    assert_eq!(asns(&table, "2001:db8::1"), Some(vec![64502]));
    assert_eq!(asns(&table, "2001:db8:abcd::1"), Some(vec![4_200_000_000]));
    assert_eq!(asns(&table, "2001:db8:abce::"), Some(vec![64502]));
    assert_eq!(asns(&table, "2001:db9::"), None);
}

#[test]
fn gzip_tables_and_format_detection() {
    let text = std::fs::read(fixture("ip2asn-v4.tsv")).expect("fixture");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&text).expect("compress");
    let gz = gz.finish().expect("compress");
    let dir = tempfile::tempdir().expect("tempdir");
    // A name that says nothing: the content tells.
    let path = dir.path().join("download.bin");
    std::fs::write(&path, &gz).expect("write");
    let dataset = load_path(&path, None, &AsnLimits::default()).expect("gzip loads");
    assert_eq!(dataset.format, AsnFormat::Iptoasn);
    assert_eq!(dataset.ranges.len(), 5);

    assert_eq!(
        detect_format("x", b"# comment\n198.18.0.0\t15\t64500\n"),
        Some(AsnFormat::CaidaPfx2as)
    );
    assert_eq!(
        detect_format("table.pfx2as", b"garbage"),
        Some(AsnFormat::CaidaPfx2as)
    );
    assert_eq!(detect_format("x.txt", b"hello world\n"), None);
    let err = parse_bytes(
        "x.txt",
        b"hello world\n".to_vec(),
        None,
        &AsnLimits::default(),
    )
    .expect_err("unknown format")
    .to_string();
    assert!(err.starts_with("x.txt: cannot tell the format"), "{err}");
}

/// Parses `text` as `format` and returns the error's text.
fn error_of(name: &str, text: &str, format: AsnFormat) -> String {
    parse_bytes(
        name,
        text.as_bytes().to_vec(),
        Some(format),
        &AsnLimits::default(),
    )
    .expect_err("a malformed table")
    .to_string()
}

#[test]
fn malformed_lines_name_file_line_field_and_value() {
    let good = "198.18.0.0\t198.18.0.255\t64500\tUS\tEXAMPLE\n";
    let cases = [
        (
            format!("{good}198.18.1.0\t198.18.1.255\t64500\tUS\n"),
            "t.tsv:2: field line",
            "4 tab-separated fields",
        ),
        (
            format!("{good}198.18.1.x\t198.18.1.255\t64500\tUS\tX\n"),
            "t.tsv:2: field range_start = \"198.18.1.x\"",
            "not an IP address",
        ),
        (
            format!("{good}\n198.18.2.0\t198.18.1.255\t64500\tUS\tX\n"),
            "t.tsv:3: field range_end = \"198.18.1.255\"",
            "before range_start",
        ),
        (
            format!("{good}198.18.2.0\t2001:db8::\t64500\tUS\tX\n"),
            "t.tsv:2: field range_end",
            "same address family",
        ),
        (
            format!("{good}198.18.2.0\t198.18.2.255\t4294967296\tUS\tX\n"),
            "t.tsv:2: field AS_number = \"4294967296\"",
            "not an AS number",
        ),
        (
            format!("{good}198.18.2.0\t198.18.2.255\t64500\tU S\x1b\tX\n"),
            "t.tsv:2: field country_code = \"U S\\u{1b}\"",
            "not a country code",
        ),
    ];
    for (text, prefix, reason) in cases {
        let err = error_of("t.tsv", &text, AsnFormat::Iptoasn);
        assert!(
            err.starts_with(prefix) && err.contains(reason),
            "{err:?} should start with {prefix:?} and say {reason:?}"
        );
    }

    let caida = [
        (
            "198.18.0.0\t33\t64500\n",
            "c.pfx2as:1: field length = \"33\"",
        ),
        (
            "198.18.0.1\t24\t64500\n",
            "c.pfx2as:1: field prefix = \"198.18.0.1\"",
        ),
        (
            "198.18.0.0\t24\t64500_x\n",
            "c.pfx2as:1: field asns = \"64500_x\"",
        ),
        ("198.18.0.0\t24\t\n", "c.pfx2as:1: field asns = \"\""),
        ("198.18.0.0 24 64500\n", "c.pfx2as:1: field line"),
    ];
    for (text, prefix) in caida {
        let err = error_of("c.pfx2as", text, AsnFormat::CaidaPfx2as);
        assert!(
            err.starts_with(prefix),
            "{err:?} should start with {prefix:?}"
        );
    }

    // Not UTF-8, and a line over the cap.
    let err = parse_bytes(
        "b.tsv",
        b"198.18.0.0\t198.18.0.255\t64500\tUS\t\xff\n".to_vec(),
        Some(AsnFormat::Iptoasn),
        &AsnLimits::default(),
    )
    .expect_err("not UTF-8")
    .to_string();
    assert!(
        err.starts_with("b.tsv:1: field line") && err.contains("not UTF-8"),
        "{err}"
    );
    let long = format!(
        "198.18.0.0\t198.18.0.255\t64500\tUS\t{}\n",
        "x".repeat(5000)
    );
    let err = error_of("l.tsv", &long, AsnFormat::Iptoasn);
    assert!(
        err.starts_with("l.tsv:1:") && err.contains("longer than 4096 bytes"),
        "{err}"
    );
}

#[test]
fn row_cap_and_bad_mmdb() {
    let limits = AsnLimits {
        max_rows: 3,
        ..AsnLimits::default()
    };
    let text = std::fs::read(fixture("routeviews-rv2-20250101-1200.pfx2as")).expect("fixture");
    let err = parse_bytes("big.pfx2as", text, None, &limits)
        .expect_err("over the row cap")
        .to_string();
    assert_eq!(
        err,
        "big.pfx2as: the number of rows is larger than the cap of 3 rows"
    );

    let mut mmdb = std::fs::read(fixture("asn-test.mmdb")).expect("fixture");
    let err = parse_bytes("m.mmdb", mmdb[..200].to_vec(), None, &AsnLimits::default())
        .expect_err("truncated")
        .to_string();
    assert!(err.starts_with("m.mmdb: not a MaxMind DB"), "{err}");
    // Damage the search tree: the walk must end in an error or in ranges, not a panic.
    for b in mmdb.iter_mut().take(64) {
        *b ^= 0x5a;
    }
    let _ = parse_bytes("d.mmdb", mmdb, None, &AsnLimits::default());
}

#[test]
fn sortable_keys() {
    let v4 = ip("198.18.0.1");
    let key = ip_key(v4);
    assert_eq!(&key[..10], &[0u8; 10]);
    assert_eq!(&key[10..], &[0xff, 0xff, 198, 18, 0, 1]);
    assert_eq!(ip_from_key(key), v4);
    assert_eq!(ip_key(ip("::ffff:198.18.0.1")), key);
    let v6 = ip("2001:db8::1");
    assert_eq!(ip_from_key(ip_key(v6)), v6);
    let mut addresses = [
        ip("2001:db8::1"),
        ip("198.19.0.0"),
        ip("198.18.255.255"),
        ip("2001:db8::"),
        ip("0.0.0.0"),
        ip("255.255.255.255"),
    ];
    addresses.sort_by_key(|a| ip_key(*a));
    assert_eq!(
        addresses,
        [
            ip("0.0.0.0"),
            ip("198.18.255.255"),
            ip("198.19.0.0"),
            ip("255.255.255.255"),
            ip("2001:db8::"),
            ip("2001:db8::1"),
        ]
    );
    let r = AsnRange {
        start: ip("198.18.0.0"),
        end: ip("198.19.255.255"),
        asns: vec![64500],
        org: None,
        country: None,
    };
    assert!(r.start_key() < ip_key(ip("198.18.7.7")) && ip_key(ip("198.18.7.7")) < r.end_key());
    assert!(r.contains(ip("::ffff:198.19.0.1")));
    assert!(!r.contains(ip("2001:db8::")));
}
