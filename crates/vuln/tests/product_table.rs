//! The product table covers the probe database: every product name the probes give
//! literally (not one taken from the answer, `$1`) maps to CPEs, so a detected version of
//! it can be looked up.

use portgate_vuln::ProductTable;

#[test]
fn every_product_the_probe_database_names_is_in_the_table() {
    let probes = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../detect/data/probes.toml"),
    )
    .expect("the probe database");
    let table = ProductTable::builtin();
    let mut missing = Vec::new();
    let mut named = 0;
    for line in probes.lines() {
        let Some(rest) = line.trim().strip_prefix("product = \"") else {
            continue;
        };
        let Some(name) = rest.split('"').next() else {
            continue;
        };
        if name.starts_with('$') {
            continue;
        }
        named += 1;
        match table.get(name) {
            Some(entry) if !entry.cpes.is_empty() => {}
            _ => missing.push(name.to_owned()),
        }
    }
    assert!(named >= 30, "{named} product lines read");
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "not in products.toml: {missing:?}");
}
