//! `docs/audit-report.schema.json` is what the types generate. To refresh it after a
//! deliberate change: `PORTGATE_BLESS=1 cargo test -p portgate-audit --test schema`.

use portgate_audit::{AUDIT_SCHEMA_ID, audit_schema};

#[test]
fn committed_schema_matches_the_types() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/audit-report.schema.json"
    );
    let generated = audit_schema();
    if std::env::var_os("PORTGATE_BLESS").is_some() {
        std::fs::write(path, &generated).expect("write the schema");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/audit-report.schema.json is out of date; run PORTGATE_BLESS=1 cargo test -p portgate-audit --test schema"
    );
    let schema: serde_json::Value = serde_json::from_str(&generated).expect("schema JSON");
    assert_eq!(schema["$id"], AUDIT_SCHEMA_ID);
    for field in ["schema", "namespace", "listeners", "tunnels", "findings"] {
        assert!(
            schema["required"]
                .as_array()
                .expect("required")
                .iter()
                .any(|f| f == field),
            "{field} is required"
        );
    }
}
