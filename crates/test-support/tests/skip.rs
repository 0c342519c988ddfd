//! `skip` in a child process of this test binary: a printed line normally, a failure
//! naming the test and the reason under strict mode.

use portgate_test_support::STRICT_ENV;
use std::process::{Command, Output};

/// Run by [`skip_prints_or_fails`] only, in a child process of its own.
#[test]
#[ignore = "run by skip_prints_or_fails in a child process"]
fn child_that_skips() {
    portgate_test_support::skip("a_test", "the tool is missing (Debian package tool)");
}

fn child(strict: Option<&str>, ci: Option<&str>) -> Output {
    let mut command = Command::new(std::env::current_exe().expect("this test binary"));
    command
        .args(["--exact", "child_that_skips", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env_remove(STRICT_ENV)
        .env_remove("CI");
    if let Some(value) = strict {
        command.env(STRICT_ENV, value);
    }
    if let Some(value) = ci {
        command.env("CI", value);
    }
    command.output().expect("the test binary runs")
}

#[test]
fn skip_prints_or_fails() {
    for (strict, ci) in [(None, None), (Some("0"), None), (Some(""), None)] {
        let out = child(strict, ci);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{strict:?} {ci:?}: {stderr}");
        assert!(
            stderr.contains("SKIP a_test: the tool is missing (Debian package tool)\n"),
            "{stderr}"
        );
    }
    for (strict, ci) in [(Some("1"), None), (None, Some("true"))] {
        let out = child(strict, ci);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{strict:?} {ci:?}: {all}");
        assert!(
            all.contains(&format!(
                "a_test cannot run under {STRICT_ENV}: the tool is missing (Debian package tool)"
            )),
            "{all}"
        );
        assert!(!all.contains("SKIP a_test"), "{all}");
        // The panic points at the caller, not at the helper.
        assert!(all.contains("tests/skip.rs"), "{all}");
    }
}
