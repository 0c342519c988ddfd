//! The git revision of a manifest: recorded with every saved check, so a stored decision
//! names the version of the policy it applied.

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a git command may take before the revision is left unknown.
const GIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The git commit of the manifest when it lies in a git work tree, with `-dirty` when the
/// file differs from that commit (modified, staged or untracked). None without git, outside
/// a work tree, in a repository without commits, or when git does not answer in time: the
/// revision is recorded when known, never required.
pub fn manifest_revision(manifest: &Path) -> Option<String> {
    revision_with(Path::new("git"), GIT_TIMEOUT, manifest)
}

/// [`manifest_revision`] with this git program and time limit per git command.
pub fn revision_with(program: &Path, timeout: Duration, manifest: &Path) -> Option<String> {
    let dir = match manifest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file = manifest.file_name()?;
    let git = |args: &[&OsStr]| git_output(program, timeout, dir, args);
    let head = git(&["rev-parse", "--verify", "HEAD"].map(OsStr::new))?;
    let head = head.trim();
    if head.is_empty() || !head.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // Unknown is not clean: a failed status leaves the revision unknown.
    let status = git(&[
        OsStr::new("status"),
        OsStr::new("--porcelain"),
        OsStr::new("--"),
        file,
    ])?;
    Some(if status.trim().is_empty() {
        head.to_string()
    } else {
        format!("{head}-dirty")
    })
}

/// Runs `program -C dir args…`; its standard output when it exits successfully within
/// `timeout` (at most 64 KiB of it), else None (a late one is killed). Takes no optional
/// lock on the repository and never prompts.
fn git_output(program: &Path, timeout: Duration, dir: &Path, args: &[&OsStr]) -> Option<String> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(64 * 1024).read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let out = reader.join().ok()?;
    if !status.success() {
        return None;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.test"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .output()
            .expect("git runs");
        assert!(status.status.success(), "git {args:?}: {status:?}");
    }

    fn head(dir: &Path) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", "HEAD"])
            .output()
            .expect("git runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn the_revision_is_the_commit_and_dirty_when_the_file_differs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = dir.path().join("exposure.yaml");
        std::fs::write(&manifest, "version: 1\n").expect("write");
        // Not a repository.
        assert_eq!(manifest_revision(&manifest), None);
        // A repository without a commit.
        git(dir.path(), &["init", "-q"]);
        assert_eq!(manifest_revision(&manifest), None);
        // Another file committed, the manifest untracked.
        std::fs::write(dir.path().join("other"), "x").expect("write");
        git(dir.path(), &["add", "other"]);
        git(dir.path(), &["commit", "-q", "-m", "other"]);
        let first = head(dir.path());
        assert_eq!(manifest_revision(&manifest), Some(format!("{first}-dirty")));
        // Committed: clean; another file's change does not make it dirty.
        git(dir.path(), &["add", "exposure.yaml"]);
        git(dir.path(), &["commit", "-q", "-m", "manifest"]);
        let second = head(dir.path());
        std::fs::write(dir.path().join("other"), "y").expect("write");
        assert_eq!(manifest_revision(&manifest), Some(second.clone()));
        // Modified, then staged: dirty.
        std::fs::write(&manifest, "version: 1\n# edit\n").expect("write");
        assert_eq!(
            manifest_revision(&manifest),
            Some(format!("{second}-dirty"))
        );
        git(dir.path(), &["add", "exposure.yaml"]);
        assert_eq!(
            manifest_revision(&manifest),
            Some(format!("{second}-dirty"))
        );
    }

    #[test]
    fn no_git_or_a_git_that_hangs_leaves_the_revision_unknown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = dir.path().join("exposure.yaml");
        let missing = dir.path().join("no-such-git");
        assert_eq!(
            revision_with(&missing, Duration::from_secs(1), &manifest),
            None
        );
        let hangs = dir.path().join("git-hangs");
        std::fs::write(&hangs, "#!/bin/sh\ntouch \"$0.ran\"\nexec sleep 30\n").expect("write");
        Command::new("chmod")
            .arg("+x")
            .arg(&hangs)
            .status()
            .expect("chmod");
        let started = Instant::now();
        assert_eq!(
            revision_with(&hangs, Duration::from_millis(200), &manifest),
            None
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(
            dir.path().join("git-hangs.ran").exists(),
            "the stand-in git ran and was stopped"
        );
    }
}
