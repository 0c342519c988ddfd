//! Imported data: the vulnerability index (one row per NVD CVE or OSV record, with the
//! lookup keys it answers to), IP-to-network tables, and the date of each dataset.
//!
//! What the records mean is `portgate-vuln`'s; this module keeps them so that a lookup
//! reads only the rows of the products it asks about, and so that a re-import writes only
//! what changed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use portgate_vuln::{
    DataDate, ImportReport, ParsedImport, RecordChange, Source, StoredRecord, VulnIndex,
    stored::BODY_FORMAT,
};
use serde::Serialize;
use sqlx::QueryBuilder;

use crate::{BATCH_ROWS, Pool, Store, StoreError, from_ms, ms};

const ZSTD_LEVEL: i32 = 3;

/// One dataset as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetInfo {
    /// `nvd`, `osv` or `asn:<name>`.
    pub name: String,
    /// `vuln` or `asn`.
    pub kind: String,
    /// The format read.
    pub format: String,
    /// The date the data is of, when the import was told it.
    pub dataset_date: Option<DateTime<Utc>>,
    /// The newest record's date.
    pub newest_record: Option<DateTime<Utc>>,
    /// When it was last imported.
    pub imported_at: DateTime<Utc>,
    /// Records (vulnerability records, or IP ranges) held.
    pub records: i64,
    /// The last file imported.
    pub path: Option<String>,
}

impl DatasetInfo {
    /// The date the data is of: the dataset's, else the newest record's.
    pub fn date(&self) -> Option<DateTime<Utc>> {
        self.dataset_date.or(self.newest_record)
    }
}

/// One IP range of a network-owner dataset, with 16-byte keys (IPv4 as IPv4-mapped IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsnRow {
    /// First address.
    pub start: [u8; 16],
    /// Last address.
    pub end: [u8; 16],
    /// AS numbers (more than one for a multi-origin prefix).
    pub asns: Vec<u32>,
    /// The organisation.
    pub org: Option<String>,
    /// ISO country code.
    pub country: Option<String>,
}

/// The network an address belongs to, by one dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkOwner {
    /// The dataset's name (`asn:<name>`).
    pub dataset: String,
    /// AS numbers.
    pub asns: Vec<u32>,
    /// The organisation.
    pub org: Option<String>,
    /// ISO country code.
    pub country: Option<String>,
    /// The dataset's date.
    pub date: Option<DateTime<Utc>>,
}

type DatasetTuple = (
    String,
    String,
    String,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    Option<String>,
);

/// end_key, asns, org, country.
type AsnTuple = (Vec<u8>, String, Option<String>, Option<String>);

impl Store {
    /// Imports the records of one file (see `portgate_vuln::read_nvd_path` and
    /// `read_osv_path`) in one transaction: a record is added, replaced by a newer copy,
    /// or left as it is (the same or an older copy); a rejected or withdrawn record is
    /// removed. Importing the same file again changes nothing.
    pub async fn import_vulnerabilities(
        &self,
        parsed: &ParsedImport,
        format: &str,
    ) -> Result<ImportReport, StoreError> {
        let source = parsed.source.key();
        let existing: Vec<(String, i64)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, modified_ms FROM vuln_records WHERE source = $1")
                .bind(source)
                .fetch_all(pool)
                .await
        })
        .map_err(self.query_err(format!("read the {} records held", parsed.source)))?;
        let mut held: HashMap<String, i64> = existing.into_iter().collect();
        let mut report = ImportReport {
            path: parsed.path.clone(),
            files: parsed.files,
            records: parsed.changes.len() + parsed.skipped,
            skipped: parsed.skipped,
            ..ImportReport::default()
        };
        // The last word per id; ids whose old rows go.
        let mut puts: HashMap<&str, &StoredRecord> = HashMap::new();
        let mut deletes: Vec<&str> = Vec::new();
        for change in &parsed.changes {
            let id = change.id();
            let at = ms(change.modified());
            let old = held.get(id).copied();
            match change {
                RecordChange::Put(record) => match old {
                    Some(o) if o > at => report.older += 1,
                    Some(o) if o == at => report.unchanged += 1,
                    Some(_) => {
                        report.replaced += 1;
                        deletes.push(id);
                        puts.insert(id, record);
                        held.insert(id.to_owned(), at);
                    }
                    None => {
                        report.added += 1;
                        puts.insert(id, record);
                        held.insert(id.to_owned(), at);
                    }
                },
                RecordChange::Remove { .. } => match old {
                    Some(o) if o > at => report.older += 1,
                    Some(_) => {
                        report.removed += 1;
                        deletes.push(id);
                        puts.remove(id);
                        held.remove(id);
                    }
                    None => report.unchanged += 1,
                },
            }
        }
        let mut rows: Vec<(&str, i64, Vec<u8>)> = Vec::with_capacity(puts.len());
        for (id, record) in &puts {
            let body = zstd::bulk::compress(record.body.as_bytes(), ZSTD_LEVEL).map_err(|e| {
                StoreError::Data {
                    db: self.name.clone(),
                    message: format!("cannot compress {} record {id}: {e}", parsed.source),
                }
            })?;
            rows.push((id, ms(record.modified), body));
        }
        let keys: Vec<(&str, &str)> = puts
            .iter()
            .flat_map(|(id, r)| r.keys.iter().map(move |k| (k.as_str(), *id)))
            .collect();
        deletes.sort_unstable();
        deletes.dedup();
        let now = ms(Utc::now());
        let name = source;
        let newest = parsed.newest_record.map(ms);
        let dataset = parsed.dataset_date.map(ms);
        let result: Result<(), sqlx::Error> = on_pool!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                for chunk in deletes.chunks(BATCH_ROWS) {
                    for table in ["vuln_keys", "vuln_records"] {
                        let mut q = QueryBuilder::new(format!("DELETE FROM {table} WHERE source = "));
                        q.push_bind(source).push(" AND id IN (");
                        let mut list = q.separated(", ");
                        for id in chunk {
                            list.push_bind(*id);
                        }
                        list.push_unseparated(")");
                        q.build().execute(&mut *tx).await?;
                    }
                }
                for chunk in rows.chunks(BATCH_ROWS / 2) {
                    let mut q = QueryBuilder::new(
                        "INSERT INTO vuln_records (source, id, modified_ms, body_zstd, body_format) ",
                    );
                    q.push_values(chunk, |mut b, (id, at, body)| {
                        b.push_bind(source)
                            .push_bind(*id)
                            .push_bind(*at)
                            .push_bind(body.as_slice())
                            .push_bind(BODY_FORMAT as i32);
                    });
                    q.build().execute(&mut *tx).await?;
                }
                for chunk in keys.chunks(BATCH_ROWS) {
                    let mut q = QueryBuilder::new("INSERT INTO vuln_keys (key, source, id) ");
                    q.push_values(chunk, |mut b, (key, id)| {
                        b.push_bind(*key).push_bind(source).push_bind(*id);
                    });
                    q.push(" ON CONFLICT DO NOTHING");
                    q.build().execute(&mut *tx).await?;
                }
                let (count,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM vuln_records WHERE source = $1")
                        .bind(source)
                        .fetch_one(&mut *tx)
                        .await?;
                sqlx::query(
                    "INSERT INTO datasets (name, kind, format, dataset_ms, newest_record_ms, \
                     imported_at_ms, records, path) VALUES ($1, 'vuln', $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (name) DO UPDATE SET format = excluded.format, \
                     dataset_ms = CASE WHEN excluded.dataset_ms IS NULL THEN datasets.dataset_ms \
                       WHEN datasets.dataset_ms IS NULL OR excluded.dataset_ms > datasets.dataset_ms \
                       THEN excluded.dataset_ms ELSE datasets.dataset_ms END, \
                     newest_record_ms = CASE WHEN excluded.newest_record_ms IS NULL \
                       THEN datasets.newest_record_ms \
                       WHEN datasets.newest_record_ms IS NULL \
                         OR excluded.newest_record_ms > datasets.newest_record_ms \
                       THEN excluded.newest_record_ms ELSE datasets.newest_record_ms END, \
                     imported_at_ms = excluded.imported_at_ms, records = excluded.records, \
                     path = excluded.path",
                )
                .bind(name)
                .bind(format)
                .bind(dataset)
                .bind(newest)
                .bind(now)
                .bind(count)
                .bind(&parsed.path)
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            }
            .await
        });
        result.map_err(self.query_err(format!("import {}", parsed.path)))?;
        Ok(report)
    }

    /// Every dataset, by name.
    pub async fn datasets(&self) -> Result<Vec<DatasetInfo>, StoreError> {
        let rows: Vec<DatasetTuple> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT name, kind, format, dataset_ms, newest_record_ms, imported_at_ms, \
                 records, path FROM datasets ORDER BY name",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(self.query_err("read the datasets"))?;
        Ok(rows
            .into_iter()
            .map(
                |(name, kind, format, dataset, newest, imported, records, path)| DatasetInfo {
                    name,
                    kind,
                    format,
                    dataset_date: dataset.map(from_ms),
                    newest_record: newest.map(from_ms),
                    imported_at: from_ms(imported),
                    records,
                    path,
                },
            )
            .collect())
    }

    /// Whether any vulnerability record is held (a scan lists CVEs only then).
    pub async fn has_vulnerability_data(&self) -> Result<bool, StoreError> {
        Ok(self
            .datasets()
            .await?
            .iter()
            .any(|d| d.kind == "vuln" && d.records > 0))
    }

    /// The records answering to any of `keys` (see `portgate_vuln::lookup_keys`), as an
    /// index that answers those lookups, with the stored data dates.
    pub async fn vulnerability_index(&self, keys: &[String]) -> Result<VulnIndex, StoreError> {
        let mut dates: HashMap<String, DataDate> = HashMap::new();
        for d in self.datasets().await? {
            dates.insert(
                d.name.clone(),
                DataDate {
                    newest_record: d.newest_record,
                    dataset: d.dataset_date,
                },
            );
        }
        let mut records = Vec::new();
        let mut keys: Vec<&String> = keys.iter().collect();
        keys.sort_unstable();
        keys.dedup();
        for chunk in keys.chunks(BATCH_ROWS) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT r.source, r.id, r.modified_ms, r.body_zstd, r.body_format \
                 FROM vuln_records r JOIN (SELECT DISTINCT source, id FROM vuln_keys \
                 WHERE key IN ({})) k ON r.source = k.source AND r.id = k.id",
                marks.join(", ")
            );
            let rows: Vec<(String, String, i64, Vec<u8>, i32)> = on_pool!(self, pool => {
                let mut q = sqlx::query_as(&sql);
                for k in chunk {
                    q = q.bind(k.as_str());
                }
                q.fetch_all(pool).await
            })
            .map_err(self.query_err("read vulnerability records"))?;
            for (source, id, modified, body, format) in rows {
                records.push(self.record(source, id, modified, &body, format)?);
            }
        }
        records.sort_by(|a, b| (a.source, &a.id).cmp(&(b.source, &b.id)));
        records.dedup_by(|a, b| a.source == b.source && a.id == b.id);
        VulnIndex::from_stored(
            records,
            dates.get("nvd").copied().unwrap_or_default(),
            dates.get("osv").copied().unwrap_or_default(),
        )
        .map_err(|e| StoreError::Data {
            db: self.name.clone(),
            message: e.to_string(),
        })
    }

    fn record(
        &self,
        source: String,
        id: String,
        modified: i64,
        body: &[u8],
        format: i32,
    ) -> Result<StoredRecord, StoreError> {
        let bad = |message: String| StoreError::Data {
            db: self.name.clone(),
            message: format!("stored {source} record {id}: {message}"),
        };
        let Some(src) = Source::from_key(&source) else {
            return Err(bad("unknown source".to_owned()));
        };
        if format != BODY_FORMAT as i32 {
            return Err(bad(format!(
                "body format {format} is not {BODY_FORMAT}: import the data again"
            )));
        }
        // A body is at most a few hundred KiB; 64 MiB caps a corrupt one. The frame says
        // its size (the compressor writes it), so the buffer is exactly that.
        const CAP: u64 = 64 << 20;
        let size = match zstd::zstd_safe::get_frame_content_size(body) {
            Ok(Some(n)) if n <= CAP => n as usize,
            Ok(Some(n)) => return Err(bad(format!("{n} bytes uncompressed, over {CAP}"))),
            _ => return Err(bad("not a zstd frame with its size".to_owned())),
        };
        let body = zstd::bulk::decompress(body, size).map_err(|e| bad(format!("not zstd: {e}")))?;
        let body = String::from_utf8(body).map_err(|e| bad(format!("not UTF-8: {e}")))?;
        Ok(StoredRecord {
            source: src,
            id,
            modified: from_ms(modified),
            keys: Vec::new(),
            body,
        })
    }

    /// Replaces the network-owner dataset `name` with `rows` (disjoint ranges) in one
    /// transaction; `format` and `date` are kept with it.
    pub async fn import_asn(
        &self,
        name: &str,
        format: &str,
        date: Option<DateTime<Utc>>,
        path: &str,
        rows: &[AsnRow],
    ) -> Result<(), StoreError> {
        let dataset = format!("asn:{name}");
        let now = ms(Utc::now());
        let result: Result<(), sqlx::Error> = on_pool!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query("DELETE FROM asn_ranges WHERE dataset = $1")
                    .bind(&dataset)
                    .execute(&mut *tx)
                    .await?;
                for chunk in rows.chunks(BATCH_ROWS / 2) {
                    let mut q = QueryBuilder::new(
                        "INSERT INTO asn_ranges (dataset, start_key, end_key, asns, org, country) ",
                    );
                    q.push_values(chunk, |mut b, r| {
                        b.push_bind(&dataset)
                            .push_bind(r.start.to_vec())
                            .push_bind(r.end.to_vec())
                            .push_bind(
                                r.asns.iter().map(u32::to_string).collect::<Vec<_>>().join(" "),
                            )
                            .push_bind(r.org.clone())
                            .push_bind(r.country.clone());
                    });
                    q.build().execute(&mut *tx).await?;
                }
                sqlx::query(
                    "INSERT INTO datasets (name, kind, format, dataset_ms, newest_record_ms, \
                     imported_at_ms, records, path) VALUES ($1, 'asn', $2, $3, NULL, $4, $5, $6) \
                     ON CONFLICT (name) DO UPDATE SET format = excluded.format, \
                     dataset_ms = excluded.dataset_ms, imported_at_ms = excluded.imported_at_ms, \
                     records = excluded.records, path = excluded.path",
                )
                .bind(&dataset)
                .bind(format)
                .bind(date.map(ms))
                .bind(now)
                .bind(rows.len() as i64)
                .bind(path)
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            }
            .await
        });
        result.map_err(self.query_err(format!("import the network dataset {name} from {path}")))
    }

    /// The network owner of an address (its 16-byte key) by each network dataset held.
    pub async fn network_owner(&self, key: [u8; 16]) -> Result<Vec<NetworkOwner>, StoreError> {
        Ok(self
            .network_owners(&[key])
            .await?
            .and_then(|mut all| all.pop())
            .unwrap_or_default())
    }

    /// The network owners of many addresses (16-byte keys), in their order, by each
    /// network dataset held; `None` when no dataset is held. The dataset list is read once.
    pub async fn network_owners(
        &self,
        keys: &[[u8; 16]],
    ) -> Result<Option<Vec<Vec<NetworkOwner>>>, StoreError> {
        let sets: Vec<DatasetInfo> = self
            .datasets()
            .await?
            .into_iter()
            .filter(|d| d.kind == "asn" && d.records > 0)
            .collect();
        if sets.is_empty() {
            return Ok(None);
        }
        let mut all = Vec::with_capacity(keys.len());
        for key in keys {
            let mut out = Vec::new();
            for d in &sets {
                let row: Option<AsnTuple> = on_pool!(self, pool => {
                    sqlx::query_as(
                        "SELECT end_key, asns, org, country FROM asn_ranges \
                         WHERE dataset = $1 AND start_key <= $2 ORDER BY start_key DESC LIMIT 1",
                    )
                    .bind(&d.name)
                    .bind(key.to_vec())
                    .fetch_optional(pool)
                    .await
                })
                .map_err(self.query_err(format!("look up an address in {}", d.name)))?;
                let Some((end, asns, org, country)) = row else {
                    continue;
                };
                if end.as_slice() < key.as_slice() || is_v4_key(&end) != is_v4_key(key) {
                    continue;
                }
                out.push(NetworkOwner {
                    dataset: d.name.clone(),
                    asns: asns
                        .split_whitespace()
                        .filter_map(|a| a.parse().ok())
                        .collect(),
                    org,
                    country,
                    date: d.date(),
                });
            }
            all.push(out);
        }
        Ok(Some(all))
    }
}

/// Whether a 16-byte key is an IPv4 address (IPv4-mapped IPv6).
fn is_v4_key(key: &[u8]) -> bool {
    key.len() == 16 && key[..10].iter().all(|b| *b == 0) && key[10] == 0xff && key[11] == 0xff
}
