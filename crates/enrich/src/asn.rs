//! The network owner of an address: its origin AS number(s), the AS's organisation and
//! country, from tables the user downloads and imports. Nothing here touches the
//! network.
//!
//! Three formats, each read into the same list of [`AsnRange`]s:
//!
//! * **iptoasn** (`ip2asn-v4.tsv`, `ip2asn-v6.tsv`, `ip2asn-combined.tsv`, plain or
//!   gzip): `range_start<TAB>range_end<TAB>AS_number<TAB>country_code<TAB>AS_description`.
//!   Rows of AS 0 (`Not routed`) are **skipped**: an address in no range is unrouted,
//!   and [`AsnDataset::unrouted_rows`] counts them. A country `None` is no country.
//! * **CAIDA prefix-to-AS** (`routeviews-rv2-YYYYMMDD-HHMM.pfx2as`, plain or gzip):
//!   `prefix<TAB>length<TAB>asns`, where `asns` is one AS, several origins of a
//!   multi-origin prefix (`64500_64501`), an AS set (`64500,64501`) or both; every AS
//!   named is kept, in order, once. The file has no organisation or country. The date
//!   is taken from the file name when it has one (`20250101`).
//! * **MaxMind GeoLite2-ASN** (`.mmdb`): the fields `autonomous_system_number` and
//!   `autonomous_system_organization` of every network in the database, found by
//!   walking the whole search tree (`::/0` in an IPv6 database, its IPv4 networks
//!   included once; `0.0.0.0/0` in an IPv4 one). The date is the database's build
//!   date.
//!
//! The format is told from the content (a MaxMind DB metadata marker; five or three
//! tab-separated fields on the first data line), then from the file name's extension
//! (`.mmdb`, `.tsv`, `.pfx2as`).
//!
//! Input is hostile: a file is read within a cap (2 GiB, after decompression), a line
//! within 4,096 bytes, a file within 5,000,000 rows ([`AsnLimits`]); a line that
//! cannot be used is an error naming the file, the line, the field and the value, and
//! the import takes nothing from that file.
//!
//! [`AsnTable`] answers lookups: where ranges overlap or nest (a /16 and a /24 within
//! it), the smallest range holding the address wins.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::EnrichError;
use crate::text::escape_text;

/// Longest organisation name kept, in characters.
const MAX_ORG: usize = 256;

/// The format of an ASN table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AsnFormat {
    /// iptoasn.com TSV.
    Iptoasn,
    /// CAIDA Routeviews prefix-to-AS.
    CaidaPfx2as,
    /// MaxMind GeoLite2-ASN (or GeoIP2-ISP) database.
    MaxmindAsn,
}

impl std::fmt::Display for AsnFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AsnFormat::Iptoasn => "iptoasn",
            AsnFormat::CaidaPfx2as => "caida-pfx2as",
            AsnFormat::MaxmindAsn => "maxmind-asn",
        })
    }
}

/// A range of addresses (both ends included, both of one family) and who originates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnRange {
    /// The first address.
    pub start: IpAddr,
    /// The last address.
    pub end: IpAddr,
    /// The origin AS numbers: one, or several for a multi-origin prefix or an AS set.
    pub asns: Vec<u32>,
    /// The AS's organisation or description (escaped), when the table has one.
    pub org: Option<String>,
    /// The country code, when the table has one.
    pub country: Option<String>,
}

impl AsnRange {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.start.is_ipv4() == ip.is_ipv4() && self.start <= ip && ip <= self.end
    }

    /// The range's start as a sortable key ([`ip_key`]).
    pub fn start_key(&self) -> [u8; 16] {
        ip_key(self.start)
    }

    /// The range's end as a sortable key ([`ip_key`]).
    pub fn end_key(&self) -> [u8; 16] {
        ip_key(self.end)
    }
}

/// One imported table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnDataset {
    /// The file's name.
    pub name: String,
    /// Its format.
    pub format: AsnFormat,
    /// The date of the data: from a CAIDA file's name, or a MaxMind database's build
    /// time; `None` when the table does not say.
    pub date: Option<NaiveDate>,
    /// The ranges, in the file's order.
    pub ranges: Vec<AsnRange>,
    /// iptoasn rows of AS 0 (`Not routed`), skipped.
    pub unrouted_rows: u64,
    /// MaxMind networks with no AS number, skipped.
    pub networks_without_asn: u64,
}

impl AsnDataset {
    /// A lookup table of the dataset's ranges.
    pub fn into_table(self) -> AsnTable {
        AsnTable::new(self.ranges)
    }
}

/// Caps on an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnLimits {
    /// Largest file, after decompression: 2 GiB by default.
    pub max_file_bytes: u64,
    /// Longest line of a text table: 4,096 bytes by default.
    pub max_line_bytes: usize,
    /// Most rows (or MaxMind networks) of one file: 5,000,000 by default.
    pub max_rows: usize,
}

impl Default for AsnLimits {
    fn default() -> Self {
        AsnLimits {
            max_file_bytes: 2 << 30,
            max_line_bytes: 4096,
            max_rows: 5_000_000,
        }
    }
}

/// The 16-byte key of an address, for storing ranges where keys compare as bytes (a
/// database index): an IPv6 address as its 16 bytes, an IPv4 address as its
/// IPv4-mapped IPv6 form (`::ffff:a.b.c.d`), big-endian. Keys of one family compare
/// as the addresses do, and the IPv4 keys are one contiguous block
/// (`::ffff:0:0/96`), so a range of either family is one contiguous interval of keys.
/// (IPv6 addresses below `::ffff:0:0` sort before that block and the others after it.)
///
/// ```
/// use portgate_enrich::asn::{ip_from_key, ip_key};
/// let k = ip_key("198.18.0.1".parse().unwrap());
/// assert_eq!(&k[10..], &[0xff, 0xff, 198, 18, 0, 1]);
/// assert_eq!(ip_from_key(k), "198.18.0.1".parse::<std::net::IpAddr>().unwrap());
/// assert!(ip_key("198.18.0.1".parse().unwrap()) < ip_key("198.19.0.0".parse().unwrap()));
/// ```
pub fn ip_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address of a key made by [`ip_key`] (a key in `::ffff:0:0/96` is IPv4).
pub fn ip_from_key(key: [u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(key)).to_canonical()
}

/// Reads an ASN table, its format told from its content and name unless `format` is
/// given; gzip files are decompressed.
pub fn load_path(
    path: &Path,
    format: Option<AsnFormat>,
    limits: &AsnLimits,
) -> Result<AsnDataset, EnrichError> {
    let bytes = crate::read::read_file_capped(path, limits.max_file_bytes)?;
    parse_bytes(&path.display().to_string(), bytes, format, limits)
}

/// Reads an ASN table from memory; `name` is the file's name (for the format, the
/// date and errors).
pub fn parse_bytes(
    name: &str,
    bytes: Vec<u8>,
    format: Option<AsnFormat>,
    limits: &AsnLimits,
) -> Result<AsnDataset, EnrichError> {
    let bytes = crate::read::maybe_gunzip(bytes, limits.max_file_bytes, name)?;
    let base = name.strip_suffix(".gz").unwrap_or(name);
    let format = match format {
        Some(f) => f,
        None => detect_format(base, &bytes).ok_or_else(|| {
            EnrichError::format(
                name,
                "cannot tell the format: not a MaxMind DB, and the first data line has \
                 neither the 5 tab-separated fields of iptoasn nor the 3 of CAIDA pfx2as",
            )
        })?,
    };
    match format {
        AsnFormat::Iptoasn => parse_text(name, &bytes, limits, AsnFormat::Iptoasn),
        AsnFormat::CaidaPfx2as => parse_text(name, &bytes, limits, AsnFormat::CaidaPfx2as),
        AsnFormat::MaxmindAsn => parse_mmdb(name, bytes, limits),
    }
}

/// The MaxMind DB metadata marker.
const MMDB_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";

/// Tells the format of a (decompressed) table from its content, then from `name`'s
/// extension.
pub fn detect_format(name: &str, bytes: &[u8]) -> Option<AsnFormat> {
    // The metadata section is at the end, within its last 128 KiB.
    let tail = &bytes[bytes.len().saturating_sub(128 << 10)..];
    if tail.windows(MMDB_MARKER.len()).any(|w| w == MMDB_MARKER) {
        return Some(AsnFormat::MaxmindAsn);
    }
    let first = bytes
        .split(|&b| b == b'\n')
        .take(1000)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| !l.is_empty() && !l.starts_with(b"#"));
    if let Some(line) = first {
        let fields = line.split(|&b| b == b'\t').count();
        let first_field = line.split(|&b| b == b'\t').next().unwrap_or_default();
        let is_ip = std::str::from_utf8(first_field).is_ok_and(|f| f.parse::<IpAddr>().is_ok());
        match fields {
            5 if is_ip => return Some(AsnFormat::Iptoasn),
            3 if is_ip => return Some(AsnFormat::CaidaPfx2as),
            _ => {}
        }
    }
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".mmdb") {
        Some(AsnFormat::MaxmindAsn)
    } else if lower.ends_with(".pfx2as") {
        Some(AsnFormat::CaidaPfx2as)
    } else if lower.ends_with(".tsv") {
        Some(AsnFormat::Iptoasn)
    } else {
        None
    }
}

/// A date `YYYYMMDD` in a file name (`routeviews-rv2-20250101-1200.pfx2as`).
fn date_in_name(name: &str) -> Option<NaiveDate> {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let bytes = file.as_bytes();
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let run = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if run == 8 {
            let text = std::str::from_utf8(&bytes[i..i + 8]).ok()?;
            if let Ok(d) = NaiveDate::parse_from_str(text, "%Y%m%d")
                && (1990..=2200).contains(&chrono::Datelike::year(&d))
            {
                return Some(d);
            }
        }
        i += run.max(1);
    }
    None
}

fn parse_text(
    name: &str,
    bytes: &[u8],
    limits: &AsnLimits,
    format: AsnFormat,
) -> Result<AsnDataset, EnrichError> {
    let mut dataset = AsnDataset {
        name: name.to_owned(),
        format,
        date: if format == AsnFormat::CaidaPfx2as {
            date_in_name(name)
        } else {
            None
        },
        ranges: Vec::new(),
        unrouted_rows: 0,
        networks_without_asn: 0,
    };
    let mut rows = 0usize;
    for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = n as u64 + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > limits.max_line_bytes {
            return Err(EnrichError::line(
                name,
                line_no,
                "line",
                &String::from_utf8_lossy(&raw[..80.min(raw.len())]),
                format!("longer than {} bytes", limits.max_line_bytes),
            ));
        }
        if raw.is_empty() || raw.starts_with(b"#") {
            continue;
        }
        let line = std::str::from_utf8(raw).map_err(|e| {
            EnrichError::line(
                name,
                line_no,
                "line",
                &String::from_utf8_lossy(raw),
                format!("not UTF-8 (byte {})", e.valid_up_to() + 1),
            )
        })?;
        rows += 1;
        if rows > limits.max_rows {
            return Err(EnrichError::too_large(
                name,
                "the number of rows",
                format!("{} rows", limits.max_rows),
            ));
        }
        let range = match format {
            AsnFormat::Iptoasn => iptoasn_row(name, line_no, line)?,
            _ => Some(caida_row(name, line_no, line)?),
        };
        match range {
            Some(r) => dataset.ranges.push(r),
            None => dataset.unrouted_rows += 1,
        }
    }
    Ok(dataset)
}

fn parse_ip(name: &str, line_no: u64, field: &str, value: &str) -> Result<IpAddr, EnrichError> {
    value
        .parse::<IpAddr>()
        .map_err(|_| EnrichError::line(name, line_no, field, value, "not an IP address"))
}

fn parse_asn(name: &str, line_no: u64, field: &str, value: &str) -> Result<u32, EnrichError> {
    let digits = value.strip_prefix("AS").unwrap_or(value);
    digits.parse::<u32>().map_err(|_| {
        EnrichError::line(
            name,
            line_no,
            field,
            value,
            "not an AS number (0 to 4294967295)",
        )
    })
}

/// Both ends of one family and in order; IPv4-mapped IPv6 ends as IPv4.
fn check_ends(
    name: &str,
    line_no: u64,
    start: IpAddr,
    end: IpAddr,
    end_text: &str,
) -> Result<(IpAddr, IpAddr), EnrichError> {
    let (start, end) = match (start, end) {
        (IpAddr::V6(s), IpAddr::V6(e))
            if s.to_ipv4_mapped().is_some() && e.to_ipv4_mapped().is_some() =>
        {
            (start.to_canonical(), end.to_canonical())
        }
        _ => (start, end),
    };
    if start.is_ipv4() != end.is_ipv4() {
        return Err(EnrichError::line(
            name,
            line_no,
            "range_end",
            end_text,
            "not of the same address family as range_start",
        ));
    }
    if end < start {
        return Err(EnrichError::line(
            name,
            line_no,
            "range_end",
            end_text,
            "before range_start",
        ));
    }
    Ok((start, end))
}

/// One iptoasn row; `None` for an AS 0 (not routed) row.
fn iptoasn_row(name: &str, line_no: u64, line: &str) -> Result<Option<AsnRange>, EnrichError> {
    let fields: Vec<&str> = line.split('\t').collect();
    if fields.len() != 5 {
        return Err(EnrichError::line(
            name,
            line_no,
            "line",
            line,
            format!(
                "{} tab-separated fields, not the 5 of iptoasn (range_start, range_end, \
                 AS_number, country_code, AS_description)",
                fields.len()
            ),
        ));
    }
    let start = parse_ip(name, line_no, "range_start", fields[0])?;
    let end = parse_ip(name, line_no, "range_end", fields[1])?;
    let (start, end) = check_ends(name, line_no, start, end, fields[1])?;
    let asn = parse_asn(name, line_no, "AS_number", fields[2])?;
    if asn == 0 {
        return Ok(None);
    }
    let country = match fields[3].trim() {
        "" | "None" | "Unknown" | "-" => None,
        c if c.len() <= 8 && c.bytes().all(|b| b.is_ascii_alphanumeric()) => Some(c.to_owned()),
        c => {
            return Err(EnrichError::line(
                name,
                line_no,
                "country_code",
                c,
                "not a country code",
            ));
        }
    };
    let org = match fields[4].trim() {
        "" | "Not routed" | "None" => None,
        d => Some(escape_text(d, MAX_ORG)),
    };
    Ok(Some(AsnRange {
        start,
        end,
        asns: vec![asn],
        org,
        country,
    }))
}

/// One CAIDA pfx2as row.
fn caida_row(name: &str, line_no: u64, line: &str) -> Result<AsnRange, EnrichError> {
    let fields: Vec<&str> = line.split('\t').collect();
    if fields.len() != 3 {
        return Err(EnrichError::line(
            name,
            line_no,
            "line",
            line,
            format!(
                "{} tab-separated fields, not the 3 of CAIDA pfx2as (prefix, length, asns)",
                fields.len()
            ),
        ));
    }
    let prefix = parse_ip(name, line_no, "prefix", fields[0])?;
    let max_len = if prefix.is_ipv4() { 32 } else { 128 };
    let len: u8 = fields[1]
        .parse()
        .ok()
        .filter(|l| *l <= max_len)
        .ok_or_else(|| {
            EnrichError::line(
                name,
                line_no,
                "length",
                fields[1],
                format!("not a prefix length (0 to {max_len})"),
            )
        })?;
    let net = ipnet::IpNet::new(prefix, len).map_err(|_| {
        EnrichError::line(name, line_no, "length", fields[1], "not a prefix length")
    })?;
    if net.network() != prefix {
        return Err(EnrichError::line(
            name,
            line_no,
            "prefix",
            fields[0],
            format!("has bits set past its length /{len}"),
        ));
    }
    let mut asns: Vec<u32> = Vec::new();
    for part in fields[2].split(['_', ',']) {
        let asn = parse_asn(name, line_no, "asns", part).map_err(|_| {
            EnrichError::line(
                name,
                line_no,
                "asns",
                fields[2],
                "not AS numbers joined by '_' (multi-origin) or ',' (AS set)",
            )
        })?;
        if !asns.contains(&asn) {
            asns.push(asn);
        }
        if asns.len() > 256 {
            return Err(EnrichError::line(
                name,
                line_no,
                "asns",
                fields[2],
                "more than 256 AS numbers",
            ));
        }
    }
    let (start, end) = (net.network(), net.broadcast());
    let (start, end) = (start.to_canonical(), end.to_canonical());
    Ok(AsnRange {
        start,
        end,
        asns,
        org: None,
        country: None,
    })
}

/// A GeoLite2-ASN record.
#[derive(Deserialize)]
struct MmdbAsn<'a> {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(default, borrow)]
    autonomous_system_organization: Option<&'a str>,
}

fn parse_mmdb(name: &str, bytes: Vec<u8>, limits: &AsnLimits) -> Result<AsnDataset, EnrichError> {
    let bad = |what: &str, e: maxminddb::MaxMindDbError| {
        EnrichError::format(
            name,
            format!("{what}: {}", escape_text(&e.to_string(), 300)),
        )
    };
    let reader = maxminddb::Reader::from_source(bytes).map_err(|e| bad("not a MaxMind DB", e))?;
    let metadata = reader.metadata().clone();
    let date = i64::try_from(metadata.build_epoch)
        .ok()
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
        .map(|t| t.date_naive());
    let mut dataset = AsnDataset {
        name: name.to_owned(),
        format: AsnFormat::MaxmindAsn,
        date,
        ranges: Vec::new(),
        unrouted_rows: 0,
        networks_without_asn: 0,
    };
    let mut rows = 0usize;
    let networks = reader
        .networks(maxminddb::WithinOptions::default())
        .map_err(|e| bad("cannot walk the search tree", e))?;
    for item in networks {
        let found = item.map_err(|e| bad("a network of the search tree", e))?;
        rows += 1;
        if rows > limits.max_rows {
            return Err(EnrichError::too_large(
                name,
                "the number of networks",
                format!("{} networks", limits.max_rows),
            ));
        }
        let network = found
            .network()
            .map_err(|e| bad("a network of the search tree", e))?;
        let net = ipnet::IpNet::new(network.ip(), network.prefix()).map_err(|_| {
            EnrichError::format(name, format!("a network {network} with a bad prefix"))
        })?;
        let record: Option<MmdbAsn<'_>> = found
            .decode()
            .map_err(|e| bad(&format!("the record of {net}"), e))?;
        let Some(asn) = record.as_ref().and_then(|r| r.autonomous_system_number) else {
            dataset.networks_without_asn += 1;
            continue;
        };
        let org = record
            .and_then(|r| r.autonomous_system_organization)
            .filter(|o| !o.trim().is_empty())
            .map(|o| escape_text(o.trim(), MAX_ORG));
        let (start, end) = (net.network().to_canonical(), net.broadcast().to_canonical());
        if start.is_ipv4() != end.is_ipv4() {
            // An IPv6 network straddling the IPv4-mapped block: kept as IPv6.
            let (IpAddr::V6(_), IpAddr::V6(_)) = (net.network(), net.broadcast()) else {
                continue;
            };
            dataset.ranges.push(AsnRange {
                start: net.network(),
                end: net.broadcast(),
                asns: vec![asn],
                org,
                country: None,
            });
            continue;
        }
        dataset.ranges.push(AsnRange {
            start,
            end,
            asns: vec![asn],
            org,
            country: None,
        });
    }
    if dataset.ranges.is_empty() && dataset.networks_without_asn > 0 {
        return Err(EnrichError::format(
            name,
            format!(
                "no network has an autonomous_system_number (database type {:?}): not an ASN database",
                escape_text(&metadata.database_type, 64)
            ),
        ));
    }
    Ok(dataset)
}

/// A piece of the address space and the range that answers for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: u128,
    end: u128,
    range: usize,
}

/// Ranges with interval lookup. The smallest range holding an address answers for it;
/// between ranges of the same size, the earlier in the list.
#[derive(Debug, Clone, Default)]
pub struct AsnTable {
    ranges: Vec<AsnRange>,
    v4: Vec<Segment>,
    v6: Vec<Segment>,
}

fn v4_num(ip: Ipv4Addr) -> u128 {
    u128::from(u32::from(ip))
}

fn v6_num(ip: Ipv6Addr) -> u128 {
    u128::from(ip)
}

impl AsnTable {
    /// A table of `ranges` (from one or several datasets). A range whose ends are of
    /// different families or out of order can answer no lookup and is dropped.
    pub fn new(ranges: Vec<AsnRange>) -> AsnTable {
        let ranges: Vec<AsnRange> = ranges
            .into_iter()
            .map(|mut r| {
                if let (IpAddr::V6(s), IpAddr::V6(e)) = (r.start, r.end)
                    && s.to_ipv4_mapped().is_some()
                    && e.to_ipv4_mapped().is_some()
                {
                    r.start = r.start.to_canonical();
                    r.end = r.end.to_canonical();
                }
                r
            })
            .filter(|r| r.start.is_ipv4() == r.end.is_ipv4() && r.start <= r.end)
            .collect();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, r) in ranges.iter().enumerate() {
            match (r.start, r.end) {
                (IpAddr::V4(s), IpAddr::V4(e)) => v4.push((v4_num(s), v4_num(e), i)),
                (IpAddr::V6(s), IpAddr::V6(e)) => v6.push((v6_num(s), v6_num(e), i)),
                _ => {}
            }
        }
        AsnTable {
            v4: flatten(&v4),
            v6: flatten(&v6),
            ranges,
        }
    }

    /// The ranges, in the order given.
    pub fn ranges(&self) -> &[AsnRange] {
        &self.ranges
    }

    /// The number of ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the table has no range.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The smallest range holding `ip` (an IPv4-mapped IPv6 address is looked up as
    /// IPv4).
    pub fn lookup(&self, ip: IpAddr) -> Option<&AsnRange> {
        let (segments, key) = match ip.to_canonical() {
            IpAddr::V4(v4) => (&self.v4, v4_num(v4)),
            IpAddr::V6(v6) => (&self.v6, v6_num(v6)),
        };
        let i = segments.partition_point(|s| s.start <= key);
        let segment = segments.get(i.checked_sub(1)?)?;
        (key <= segment.end).then(|| self.ranges.get(segment.range))?
    }
}

/// Cuts overlapping ranges `(start, end, index)` into disjoint segments, each answered
/// by the smallest range covering it (the lowest index among equals), by a sweep over
/// the ranges' ends.
fn flatten(items: &[(u128, u128, usize)]) -> Vec<Segment> {
    // (position, opens, size, index): a range opens at its start and closes after its
    // end.
    let mut events: Vec<(u128, bool, u128, usize)> = Vec::with_capacity(items.len() * 2);
    for &(start, end, i) in items {
        let size = end - start;
        events.push((start, true, size, i));
        if let Some(after) = end.checked_add(1) {
            events.push((after, false, size, i));
        }
    }
    events.sort_unstable();
    // The ranges covering the current position, smallest first.
    let mut active: BTreeSet<(u128, usize)> = BTreeSet::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut k = 0;
    while k < events.len() {
        let position = events[k].0;
        while let Some(&(p, opens, size, i)) = events.get(k)
            && p == position
        {
            if opens {
                active.insert((size, i));
            } else {
                active.remove(&(size, i));
            }
            k += 1;
        }
        let Some(&(_, winner)) = active.first() else {
            continue;
        };
        // Events are sorted and the next one is at a later position.
        let end = events.get(k).map_or(u128::MAX, |next| next.0 - 1);
        match segments.last_mut() {
            Some(last) if last.range == winner && last.end.checked_add(1) == Some(position) => {
                last.end = end;
            }
            _ => segments.push(Segment {
                start: position,
                end,
                range: winner,
            }),
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: &str, end: &str, asn: u32) -> AsnRange {
        AsnRange {
            start: start.parse().expect("ip"),
            end: end.parse().expect("ip"),
            asns: vec![asn],
            org: None,
            country: None,
        }
    }

    fn asn(t: &AsnTable, ip: &str) -> Option<u32> {
        t.lookup(ip.parse().expect("ip")).map(|r| r.asns[0])
    }

    #[test]
    fn nested_and_overlapping_ranges() {
        let t = AsnTable::new(vec![
            r("198.18.0.0", "198.19.255.255", 1),
            r("198.18.1.0", "198.18.1.255", 2),
            r("198.18.1.128", "198.18.1.191", 3),
            r("198.18.2.0", "198.18.4.255", 4),
            r("198.18.4.0", "198.18.5.255", 5),
        ]);
        assert_eq!(asn(&t, "198.17.255.255"), None);
        assert_eq!(asn(&t, "198.18.0.0"), Some(1));
        assert_eq!(asn(&t, "198.18.1.0"), Some(2));
        assert_eq!(asn(&t, "198.18.1.127"), Some(2));
        assert_eq!(asn(&t, "198.18.1.128"), Some(3));
        assert_eq!(asn(&t, "198.18.1.191"), Some(3));
        assert_eq!(asn(&t, "198.18.1.192"), Some(2));
        assert_eq!(asn(&t, "198.18.2.0"), Some(4));
        // 2.0–4.255 (768 addresses) and 4.0–5.255 (512): the smaller wins.
        assert_eq!(asn(&t, "198.18.4.1"), Some(5));
        assert_eq!(asn(&t, "198.18.6.0"), Some(1));
        assert_eq!(asn(&t, "198.19.255.255"), Some(1));
        assert_eq!(asn(&t, "198.20.0.0"), None);
    }

    #[test]
    fn whole_space_ranges() {
        let t = AsnTable::new(vec![
            r("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1),
            r("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 2),
            r("0.0.0.0", "255.255.255.255", 3),
        ]);
        assert_eq!(asn(&t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), Some(1));
        assert_eq!(asn(&t, "2001:db8::1"), Some(2));
        assert_eq!(asn(&t, "255.255.255.255"), Some(3));
        assert_eq!(asn(&t, "::ffff:198.18.0.1"), Some(3));
    }

    #[test]
    fn file_dates() {
        assert_eq!(
            date_in_name("/x/routeviews-rv2-20250101-1200.pfx2as.gz"),
            NaiveDate::from_ymd_opt(2025, 1, 1)
        );
        assert_eq!(date_in_name("ip2asn-v4.tsv"), None);
    }
}
