//! Shared helpers of the integration tests: fixture paths and indexes built from them.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

use portgate_vuln::{ImportOptions, VulnIndex};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// NVD's CVE-2024-6387 only.
pub fn nvd_index() -> VulnIndex {
    let mut index = VulnIndex::new();
    index
        .import_nvd_path(
            &fixture("nvd-cve-2024-6387.json"),
            &ImportOptions::default(),
        )
        .unwrap();
    index
}

/// NVD's CVE-2024-6387 and the Debian and Ubuntu records for it.
pub fn full_index() -> VulnIndex {
    let mut index = nvd_index();
    index
        .import_osv_path(&fixture("osv"), &ImportOptions::default())
        .unwrap();
    index
}

/// The NVD test cases (CVE-2099-*).
pub fn edge_index() -> VulnIndex {
    let mut index = VulnIndex::new();
    index
        .import_nvd_path(&fixture("nvd-edge-cases.json"), &ImportOptions::default())
        .unwrap();
    index
}

/// The CVE ids found for OpenSSH at a version (no banner).
pub fn ssh_ids(index: &VulnIndex, version: &str) -> Vec<String> {
    index
        .lookup("OpenSSH", version, None)
        .into_iter()
        .map(|m| m.cve)
        .collect()
}
