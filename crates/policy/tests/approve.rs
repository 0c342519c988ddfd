//! The format-preserving approval editor: the change is the new entry and nothing else
//! (compared line by line with the original), in every layout a manifest is written in,
//! and every approval that would not load or is already there is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use portgate_policy::approve::{Approval, ApproveError, plan};
use portgate_policy::{ApprovalDate, ApprovedPort, Manifest, ProtocolName, TlsPolicy};

fn entry(port: u16, justification: &str) -> ApprovedPort {
    ApprovedPort {
        port,
        protocol: ProtocolName::Tcp,
        service: None,
        tls: TlsPolicy::Optional,
        justification: justification.into(),
        approved_until: None,
        application: None,
        accept: Vec::new(),
        addresses: Vec::new(),
    }
}

fn approve(text: &str, asset: Option<&str>, entry: ApprovedPort) -> Result<String, ApproveError> {
    let manifest = Manifest::from_yaml(text, "exposure.yaml").unwrap();
    let edit = plan(
        &manifest,
        &Approval {
            asset: asset.map(str::to_string),
            entry,
            comment: Vec::new(),
        },
    )?;
    Ok(edit.apply(text))
}

/// The lines `after` has that `before` has not, asserting that nothing of `before` was
/// changed or removed: `after` is `before` with one run of lines inserted.
fn inserted_lines(before: &str, after: &str) -> (usize, Vec<String>) {
    let old: Vec<&str> = before.split_inclusive('\n').collect();
    let new: Vec<&str> = after.split_inclusive('\n').collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    assert_eq!(
        prefix + suffix,
        old.len(),
        "a line of the original changed:\n--- before\n{before}\n--- after\n{after}"
    );
    let added = new[prefix..new.len() - suffix]
        .iter()
        .map(|l| l.to_string())
        .collect();
    (prefix + 1, added)
}

const EXAMPLE: &str = include_str!("../../../examples/exposure.yaml");

#[test]
fn the_change_is_the_new_entry_and_nothing_else() {
    let mut e = entry(9090, "metrics scraped by the monitoring network");
    e.service = Some("http".into());
    e.approved_until = Some(ApprovalDate::try_from("2027-06-30".to_string()).unwrap());
    let after = approve(EXAMPLE, Some("web"), e).unwrap();
    let (line, added) = inserted_lines(EXAMPLE, &after);
    // After the last entry of web's list (8080, which ends with its approved_until line).
    let anchor = EXAMPLE
        .lines()
        .position(|l| l.contains("approved_until: 2027-06-30"))
        .unwrap();
    assert_eq!(line, anchor + 2, "{after}");
    assert_eq!(
        added,
        [
            "      - port: 9090\n",
            "        service: http\n",
            "        justification: metrics scraped by the monitoring network\n",
            "        approved_until: 2027-06-30\n",
        ]
    );
    // The other list, the global one, and a list in a file's last asset.
    let after = approve(EXAMPLE, Some("database"), entry(6379, "cache for the app")).unwrap();
    let (_, added) = inserted_lines(EXAMPLE, &after);
    assert_eq!(
        added,
        [
            "      - port: 6379\n",
            "        justification: cache for the app\n"
        ]
    );
    assert!(after.ends_with("        justification: cache for the app\n"));
    let after = approve(EXAMPLE, None, entry(443, "public site everywhere")).unwrap();
    let (line, added) = inserted_lines(EXAMPLE, &after);
    assert_eq!(
        added,
        [
            "  - port: 443\n",
            "    justification: public site everywhere\n"
        ]
    );
    assert_eq!(
        EXAMPLE.lines().nth(line - 2).unwrap().trim(),
        "justification: SSH from the bastion network, key authentication only"
    );
}

#[test]
fn indentation_and_style_of_the_list_are_followed() {
    // Entries at the key's column, keys three spaces after the dash, CRLF line breaks.
    let text = "version: 1\r\nassets:\r\n- name: a\r\n  targets: [198.18.0.1]\r\n  approved:\r\n  -   port: 22\r\n      justification: ssh\r\n- name: b\r\n  targets: [198.18.0.2]\r\n";
    let after = approve(text, Some("a"), entry(80, "web")).unwrap();
    let (_, added) = inserted_lines(text, &after);
    assert_eq!(
        added,
        ["  -   port: 80\r\n", "      justification: web\r\n"]
    );

    // No list yet: `approved:` at the end of the asset's mapping, before the next asset.
    let after = approve(text, Some("b"), entry(80, "web")).unwrap();
    let (_, added) = inserted_lines(text, &after);
    assert_eq!(
        added,
        [
            "  approved:\r\n",
            "    - port: 80\r\n",
            "      justification: web\r\n"
        ]
    );

    // An empty flow list becomes a block list; its comment stays on the key's line.
    let text = "version: 1\nassets:\n  - name: a\n    targets: [198.18.0.1]\n    approved: []   # none yet\n    on_missing: warn\n";
    let after = approve(text, Some("a"), entry(80, "web")).unwrap();
    assert_eq!(
        after,
        "version: 1\nassets:\n  - name: a\n    targets: [198.18.0.1]\n    approved: # none yet\n      - port: 80\n        justification: web\n    on_missing: warn\n"
    );

    // A file without a final line break, and a global list written before the assets.
    let text = "version: 1\n# the assets\nassets:\n  - name: a\n    targets: [198.18.0.1]\n    approved:\n      - port: 22\n        justification: ssh";
    let after = approve(text, Some("a"), entry(80, "web")).unwrap();
    assert!(after.ends_with("justification: ssh\n      - port: 80\n        justification: web\n"));
    let after = approve(text, None, entry(443, "web")).unwrap();
    assert!(
        after.starts_with(
            "version: 1\napproved:\n  - port: 443\n    justification: web\n# the assets\nassets:"
        ),
        "{after}"
    );
}

#[test]
fn values_are_quoted_when_they_must_be() {
    let text = "version: 1\nassets:\n  - name: a\n    targets: [198.18.0.1]\n";
    let mut e = entry(161, "monitoring: read-only # community");
    e.protocol = ProtocolName::Udp;
    e.service = Some("snmp".into());
    e.tls = TlsPolicy::Required;
    e.application = Some("grafana".into());
    e.addresses = vec![
        "198.18.0.1".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
    ];
    let after = approve(text, Some("a"), e.clone()).unwrap();
    let (_, added) = inserted_lines(text, &after);
    assert_eq!(
        added,
        [
            "    approved:\n",
            "      - port: 161\n",
            "        protocol: udp\n",
            "        service: snmp\n",
            "        tls: required\n",
            "        justification: \"monitoring: read-only # community\"\n",
            "        application: grafana\n",
            "        addresses: [198.18.0.1, \"2001:db8::1\"]\n",
        ]
    );
    // Read back, it is the same approval (the editor checks this itself, too).
    let read = Manifest::from_yaml(&after, "exposure.yaml").unwrap();
    let got = &read.assets[0].value.approved[0].value;
    assert_eq!(got.justification, e.justification);
    assert_eq!(got.addresses, e.addresses);
    for tricky in [
        "yes",
        "12",
        "2027-01-01",
        "'quoted'",
        "- dash",
        "[x]",
        "a\"b",
        "ünïcode ok",
    ] {
        let after = approve(text, Some("a"), entry(1, tricky)).unwrap();
        let read = Manifest::from_yaml(&after, "exposure.yaml").unwrap();
        assert_eq!(read.assets[0].value.approved[0].value.justification, tricky);
    }
}

#[test]
fn refusals_name_the_place_and_change_nothing() {
    let err = approve(EXAMPLE, Some("web"), entry(8080, "again")).unwrap_err();
    let line = EXAMPLE
        .lines()
        .position(|l| l.contains("- port: 8080"))
        .unwrap()
        + 1;
    assert!(
        err.to_string()
            .starts_with(&format!("exposure.yaml:{line}:")),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("asset web already approves 8080/tcp"),
        "{err}"
    );

    let err = approve(EXAMPLE, Some("nope"), entry(1, "x")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "exposure.yaml: no asset named \"nope\" (assets: web, database)"
    );

    // An approval the loader refuses (a default login accepted) is not written.
    let mut e = entry(8080, "tomcat");
    e.accept = vec!["default-credentials".into()];
    let err = approve(EXAMPLE, Some("database"), e).unwrap_err();
    assert!(matches!(err, ApproveError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("cannot be accepted"), "{err}");

    // A list written in flow style with entries is not rewritten.
    let text = "version: 1\nassets:\n  - name: a\n    targets: [198.18.0.1]\n    approved: [{port: 22, justification: ssh}]\n";
    let err = approve(text, Some("a"), entry(80, "web")).unwrap_err();
    assert!(err.to_string().starts_with("exposure.yaml:5: "), "{err}");
    assert!(err.to_string().contains("block list"), "{err}");
}
