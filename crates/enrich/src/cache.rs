//! Registration answers kept for a while (one day by default), in memory and, when the
//! caller wants, in a JSON file it chooses. An entry is fresh while its
//! [`Registration::fetched_at`] is less than the TTL old; stale entries are never
//! answered and are dropped when the cache is saved.
//!
//! The file is `{"version": 1, "entries": {"domain:example.test": {"domain": {...}},
//! "ip:198.18.0.1": {"ip": {...}}}}`; a file larger than 64 MiB, with more than 1,000,000 entries, or of another
//! version is refused.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::EnrichError;
use crate::registration::{IpRegistration, Registration};

/// Largest cache file read, in bytes.
const MAX_FILE_BYTES: u64 = 64 << 20;
/// Most entries read from a cache file.
const MAX_ENTRIES: usize = 1_000_000;
/// The file format's version.
const VERSION: u32 = 1;

/// One cached answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CachedRecord {
    /// A domain's registration.
    Domain(Registration),
    /// An address block's registration.
    Ip(IpRegistration),
}

impl CachedRecord {
    fn fetched_at(&self) -> DateTime<Utc> {
        match self {
            CachedRecord::Domain(r) => r.fetched_at,
            CachedRecord::Ip(r) => r.fetched_at,
        }
    }
}

/// Registration answers by query (`domain:example.test`, `ip:198.18.0.1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationCache {
    ttl: Duration,
    entries: BTreeMap<String, CachedRecord>,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: BTreeMap<String, CachedRecord>,
}

impl Default for RegistrationCache {
    /// An empty cache whose answers live one day.
    fn default() -> Self {
        RegistrationCache::new(Duration::from_secs(86_400))
    }
}

impl RegistrationCache {
    /// An empty cache whose answers live `ttl`.
    pub fn new(ttl: Duration) -> RegistrationCache {
        RegistrationCache {
            ttl,
            entries: BTreeMap::new(),
        }
    }

    /// How long an answer lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The number of entries, fresh or not.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cache key of a domain.
    pub fn domain_key(domain: &str) -> String {
        format!("domain:{}", domain.to_ascii_lowercase())
    }

    /// The cache key of an address.
    pub fn ip_key(ip: IpAddr) -> String {
        format!("ip:{}", ip.to_canonical())
    }

    fn fresh(&self, record: &CachedRecord, now: DateTime<Utc>) -> bool {
        let age = now.signed_duration_since(record.fetched_at());
        // An answer from the future (a clock set back) is taken as stale.
        age >= chrono::TimeDelta::zero()
            && chrono::TimeDelta::from_std(self.ttl).is_ok_and(|ttl| age < ttl)
    }

    /// The fresh answer for `domain` at `now`, if there is one.
    pub fn domain(&self, domain: &str, now: DateTime<Utc>) -> Option<Registration> {
        match self.entries.get(&Self::domain_key(domain)) {
            Some(record @ CachedRecord::Domain(r)) if self.fresh(record, now) => Some(r.clone()),
            _ => None,
        }
    }

    /// The fresh answer for `ip` at `now`, if there is one.
    pub fn ip(&self, ip: IpAddr, now: DateTime<Utc>) -> Option<IpRegistration> {
        match self.entries.get(&Self::ip_key(ip)) {
            Some(record @ CachedRecord::Ip(r)) if self.fresh(record, now) => Some(r.clone()),
            _ => None,
        }
    }

    /// Keeps a domain's answer (replacing the one before).
    pub fn put_domain(&mut self, reg: Registration) {
        self.entries
            .insert(Self::domain_key(&reg.domain), CachedRecord::Domain(reg));
    }

    /// Keeps an address's answer (replacing the one before).
    pub fn put_ip(&mut self, reg: IpRegistration) {
        self.entries
            .insert(Self::ip_key(reg.query), CachedRecord::Ip(reg));
    }

    /// Drops the entries that are stale at `now`.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let keep: BTreeMap<String, CachedRecord> = std::mem::take(&mut self.entries)
            .into_iter()
            .filter(|(_, r)| self.fresh(r, now))
            .collect();
        self.entries = keep;
    }

    /// Reads a cache file; a file that does not exist is an empty cache. Entries are
    /// kept for `ttl` from when they were fetched.
    pub fn load(path: &Path, ttl: Duration) -> Result<RegistrationCache, EnrichError> {
        let shown = path.display().to_string();
        let bytes = match crate::read::read_file_capped(path, MAX_FILE_BYTES) {
            Ok(bytes) => bytes,
            Err(EnrichError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(RegistrationCache::new(ttl));
            }
            Err(e) => return Err(e),
        };
        let file: CacheFile = crate::read::json_document(&shown, &bytes)?;
        if file.version != VERSION {
            return Err(EnrichError::format(
                &shown,
                format!(
                    "cache file version {} (this program reads version {VERSION})",
                    file.version
                ),
            ));
        }
        if file.entries.len() > MAX_ENTRIES {
            return Err(EnrichError::too_large(
                &shown,
                "the number of entries",
                format!("{MAX_ENTRIES} entries"),
            ));
        }
        Ok(RegistrationCache {
            ttl,
            entries: file.entries,
        })
    }

    /// Writes the fresh entries to `path` (through a temporary file in the same
    /// directory, renamed over it, so a reader never sees half a file).
    pub fn save(&self, path: &Path) -> Result<(), EnrichError> {
        let mut fresh = self.clone();
        fresh.prune(Utc::now());
        let file = CacheFile {
            version: VERSION,
            entries: fresh.entries,
        };
        let shown = path.display().to_string();
        let json = serde_json::to_vec_pretty(&file).map_err(|e| EnrichError::Json {
            origin: shown.clone(),
            at: ".".into(),
            message: e.to_string(),
        })?;
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp_name);
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            EnrichError::io(&shown, e)
        })
    }
}
