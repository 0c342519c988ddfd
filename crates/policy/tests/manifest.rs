//! Loading the manifest: errors name file, line, column and key; unknown keys are refused
//! everywhere in every example; arbitrary bytes never panic; the committed JSON Schema
//! matches the types.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use portgate_policy::{Manifest, ManifestError, manifest_schema};
use proptest::prelude::*;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every manifest under examples/.
fn examples() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join("examples")).expect("examples/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml")
            && std::fs::read_to_string(&path).is_ok_and(|t| t.contains("\nassets:"))
        {
            let text = std::fs::read_to_string(&path).expect("readable");
            out.push((path.display().to_string(), text));
        }
    }
    assert!(!out.is_empty(), "no example manifest found");
    out
}

#[test]
fn examples_load() {
    for (file, text) in examples() {
        let manifest = Manifest::from_yaml(&text, &file).unwrap_or_else(|e| panic!("{e}"));
        assert!(!manifest.assets.is_empty(), "{file}");
    }
}

/// The line's indentation and whether it starts a key (`key:` or `- key:`).
fn key_line(line: &str) -> Option<usize> {
    let trimmed = line.trim_start();
    let indent = line.len() - trimmed.len();
    let body = trimmed.strip_prefix("- ").unwrap_or(trimmed);
    let is_key = body.split_once(':').is_some_and(|(k, rest)| {
        !k.is_empty()
            && k.chars().all(|c| c.is_alphanumeric() || c == '_')
            && (rest.is_empty() || rest.starts_with(' '))
    });
    if !is_key || trimmed.starts_with('#') {
        return None;
    }
    // A list item's keys are indented past the dash.
    Some(if trimmed.starts_with("- ") {
        indent + 2
    } else {
        indent
    })
}

#[test]
fn an_unknown_key_anywhere_in_every_example_is_refused_with_its_line() {
    for (file, text) in examples() {
        let lines: Vec<&str> = text.lines().collect();
        let mut injected = 0;
        // `tags` is a free-form map: any key is a tag there.
        let mut tags_indent: Option<usize> = None;
        for (index, line) in lines.iter().enumerate() {
            let Some(indent) = key_line(line) else {
                continue;
            };
            if tags_indent.is_some_and(|t| indent > t) {
                continue;
            }
            tags_indent = line
                .trim_start()
                .trim_start_matches("- ")
                .starts_with("tags:")
                .then_some(indent);
            // Insert the unknown key as the next line, a sibling of this line's key (for a
            // list item, inside the item).
            let is_item = line.trim_start().starts_with("- ");
            let without_comment = line.split(" #").next().unwrap_or(line);
            let has_block_value = without_comment.trim_end().ends_with(':');
            // A sibling right after a key that opens a block would land inside the block:
            // put it before the key instead.
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            let at = if has_block_value && !is_item {
                index
            } else {
                index + 1
            };
            out.insert(at, format!("{}portgate_unknown_key: 1", " ".repeat(indent)));
            let modified = out.join("\n") + "\n";
            let Err(err) = Manifest::from_yaml(&modified, &file) else {
                panic!("{file}: unknown key at line {} accepted", at + 1);
            };
            match &err {
                ManifestError::Invalid { line, key, .. } => {
                    assert_eq!(*line, at as u64 + 1, "{file}: {err}");
                    assert_eq!(key.as_deref(), Some("portgate_unknown_key"), "{err}");
                }
                other => panic!("{file}: unexpected error {other}"),
            }
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("{file}:{}:", at + 1))
                    && text.contains("portgate_unknown_key"),
                "{text}"
            );
            injected += 1;
        }
        assert!(injected > 20, "{file}: only {injected} places tried");
    }
}

#[test]
fn semantic_errors_name_file_line_column_and_key() {
    let base = "version: 1\nassets:\n  - name: web\n    targets: [198.18.0.2]\n";
    let cases: &[(&str, &str)] = &[
        (
            "    expected_network: [198.18.0.0/33]\n",
            "m.yaml:5:24: expected_network: invalid CIDR range \"198.18.0.0/33\"",
        ),
        (
            "    expected_network:\n      - 198.18.0.300/8\n",
            "m.yaml:6:9: expected_network: invalid CIDR range",
        ),
        (
            "    ports: 90-80\n",
            "m.yaml:5:12: ports: invalid port specification: range \"90-80\" is reversed",
        ),
        (
            "    ports: top9\n",
            "m.yaml:5:12: ports: invalid port specification: \"top9\" is not a port",
        ),
        (
            "    approved:\n      - port: 443\n        justification: x\n        approved_until: 30/06/2027\n",
            "m.yaml:8:25: approved_until: invalid date \"30/06/2027\"",
        ),
        (
            "    approved:\n      - port: 0\n        justification: x\n",
            "m.yaml:6:9: assets[0].approved[0].port: port 0 is not a port",
        ),
        (
            "    approved:\n      - port: 443\n        justification: \"  \"\n",
            "assets[0].approved[0].justification: the approval of port 443 has an empty justification",
        ),
        (
            "    approved:\n      - port: 443\n        justification: a\n      - port: 443\n        justification: b\n",
            "m.yaml:8:9: assets[0].approved[1].port: port 443/tcp is approved twice",
        ),
        (
            "    approved:\n      - port: 443\n        justification: a\n        tls: maybe\n",
            "m.yaml:8:14: tls: unknown variant `maybe`",
        ),
        (
            "    approved:\n      - port: 443\n",
            "missing field `justification`",
        ),
        (
            "  - name: web\n    targets: [198.18.0.9]\n",
            "m.yaml:5:5: assets[1].name: asset name \"web\" is used twice",
        ),
        (
            "  - name: web2\n    targets: [198.18.0.2]\n",
            "m.yaml:6:15: assets[1].targets[0]: target \"198.18.0.2\" is already listed by asset \"web\"",
        ),
        (
            "    targets2: []\n",
            "m.yaml:5:5: targets2: unknown field `targets2`",
        ),
        (
            "    environment: \"\"\n",
            "assets[0].environment: the environment is empty",
        ),
        ("    tags: { role: [1] }\n", "m.yaml:5"),
    ];
    for (extra, want) in cases {
        let text = format!("{base}{extra}");
        let err = Manifest::from_yaml(&text, "m.yaml")
            .expect_err(extra)
            .to_string();
        assert!(err.contains(want), "{extra:?}\n got: {err}\nwant: {want}");
    }
    let top: &[(&str, &str)] = &[
        (
            "version: 2\nassets: []\n",
            "m.yaml:1:1: version: unsupported manifest version 2",
        ),
        ("assets: []\n", "missing field `version`"),
        (
            "version: 1\nmode: strict\n",
            "m.yaml:2:7: mode: unknown variant `strict`",
        ),
        (
            "version: 1\ndefaults:\n  fail_on: severe\n",
            "m.yaml:3:12: fail_on: unknown variant `severe`",
        ),
        (
            "version: 1\ndefaults:\n  port: 22\n",
            "m.yaml:3:3: port: unknown field `port`",
        ),
        ("version: 1\nassets: [\n", "m.yaml:2"),
        ("- 1\n- 2\n", "m.yaml:1:1"),
        (
            "version: 1\nassets:\n  - name: web\n    targets: [\"198.18.1.300/8\"]\n",
            "m.yaml:4:15: targets: invalid target",
        ),
    ];
    for (text, want) in top {
        let err = Manifest::from_yaml(text, "m.yaml")
            .expect_err(text)
            .to_string();
        assert!(err.contains(want), "{text:?}\n got: {err}\nwant: {want}");
    }
}

#[test]
fn unknown_environment_names_the_known_ones() {
    let (file, text) = examples().remove(0);
    let manifest = Manifest::from_yaml(&text, &file).expect("loads");
    let err = manifest
        .check_environment(Some("qa"))
        .expect_err("qa is unknown")
        .to_string();
    assert!(err.contains("no asset has environment \"qa\""), "{err}");
    assert!(err.contains("production, staging"), "{err}");
    assert!(manifest.check_environment(Some("staging")).is_ok());
    assert!(manifest.check_environment(None).is_ok());
}

#[test]
fn oversized_and_non_utf8_manifests_are_refused() {
    let big = vec![b'#'; portgate_policy::MAX_MANIFEST_BYTES + 1];
    let err = Manifest::from_bytes(&big, "big.yaml")
        .expect_err("too big")
        .to_string();
    assert!(err.contains("more than the limit"), "{err}");
    let err = Manifest::from_bytes(b"version: 1\nx: \xff\n", "bin.yaml")
        .expect_err("not UTF-8")
        .to_string();
    assert!(
        err.starts_with("bin.yaml:2:4: the manifest is not valid UTF-8"),
        "{err}"
    );
}

#[test]
fn alias_bombs_are_refused() {
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nversion: 1\n";
    let started = std::time::Instant::now();
    let result = Manifest::from_yaml(bomb, "bomb.yaml");
    assert!(result.is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// `docs/manifest.schema.json` is what the types generate. To refresh it after a
/// deliberate change: `PORTGATE_BLESS=1 cargo test -p portgate-policy`.
#[test]
fn committed_schema_matches_the_types() {
    let path = repo().join("docs/manifest.schema.json");
    let generated = manifest_schema();
    if std::env::var_os("PORTGATE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the schema");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/manifest.schema.json is out of date; run PORTGATE_BLESS=1 cargo test -p portgate-policy"
    );
    let schema: serde_json::Value = serde_json::from_str(&generated).expect("JSON");
    assert_eq!(schema["$id"], "portgate.manifest.v1");
    assert_eq!(schema["additionalProperties"], false);
    for field in ["version", "mode", "defaults", "approved", "assets"] {
        assert!(
            schema["properties"][field].is_object(),
            "schema lacks {field}"
        );
    }
    let asset = &schema["$defs"]["Asset"];
    assert_eq!(asset["additionalProperties"], false);
    assert_eq!(asset["properties"]["targets"]["type"], "array");
}

/// Found by the fuzz target: a multi-byte character (a byte-order mark) before a `:` on the
/// line of an error made the key lookup slice inside the character.
#[test]
fn regression_multibyte_character_before_a_colon_in_an_error_line() {
    for input in [
        &b"#:[;e TD\xef\xbb\xbf:"[..],
        "é: [\n".as_bytes(),
        "x\u{feff}:\n  - ]".as_bytes(),
    ] {
        let err = Manifest::from_bytes(input, "m.yaml").expect_err("not a manifest");
        assert!(err.to_string().starts_with("m.yaml:"), "{err}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic: a manifest or an error naming the file.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        match Manifest::from_bytes(&bytes, "fuzz.yaml") {
            Ok(_) => {}
            Err(e) => prop_assert!(e.to_string().starts_with("fuzz.yaml")),
        }
    }

    /// Mutations of a real manifest (the shape the parser sees in practice) never panic.
    #[test]
    fn mutated_examples_never_panic(at in 0usize..2000, byte in any::<u8>(), cut in 0usize..2000) {
        let (_, text) = examples().remove(0);
        let mut bytes = text.into_bytes();
        let at = at % bytes.len();
        bytes[at] = byte;
        bytes.truncate(cut.max(at + 1).min(bytes.len()));
        match Manifest::from_bytes(&bytes, "fuzz.yaml") {
            Ok(_) => {}
            Err(e) => prop_assert!(e.to_string().starts_with("fuzz.yaml")),
        }
    }
}
