//! Running `ip` / `iptables-restore` and turning failures into [`LabError`]s.

use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::LabError;

/// Renders a command line for error messages.
pub(crate) fn render(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{a}'")
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `args[0]` with the remaining arguments; returns its stdout.
pub(crate) fn run(args: &[&str]) -> Result<String, LabError> {
    run_with_input(args, None)
}

/// Like [`run`], feeding `input` to the command's stdin.
pub(crate) fn run_with_input(args: &[&str], input: Option<&str>) -> Result<String, LabError> {
    let Some((program, rest)) = args.split_first() else {
        return Err(LabError::InvalidConfig("empty command line".to_owned()));
    };
    let mut command = Command::new(program);
    command
        .args(rest)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            LabError::ToolMissing {
                tool: (*program).to_owned(),
            }
        } else {
            LabError::Io {
                context: format!("spawning `{}`", render(args)),
                source,
            }
        }
    })?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // Dropping `stdin` at the end of this block closes the pipe.
        stdin
            .write_all(input.as_bytes())
            .map_err(|source| LabError::Io {
                context: format!("writing stdin of `{}`", render(args)),
                source,
            })?;
    }
    let output = child.wait_with_output().map_err(|source| LabError::Io {
        context: format!("waiting for `{}`", render(args)),
        source,
    })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command: render(args),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Runs a command and ignores every outcome (used during teardown).
pub(crate) fn run_quiet(args: &[&str]) -> bool {
    run(args).is_ok()
}

/// Whether `tool` is an executable file in one of the `PATH` directories.
pub(crate) fn tool_available(tool: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(tool)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Whether a failed command failed because the object already exists.
pub(crate) fn is_already_exists(err: &LabError) -> bool {
    matches!(err, LabError::Command { stderr, .. } if stderr.contains("File exists"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_quotes_whitespace() {
        assert_eq!(render(&["ip", "netns", "add", "a b"]), "ip netns add 'a b'");
        assert_eq!(render(&["x", ""]), "x ''");
    }

    #[test]
    fn failing_command_carries_stderr() {
        let err = run(&["sh", "-c", "echo oops >&2; exit 3"]).expect_err("must fail");
        match err {
            LabError::Command {
                command,
                stderr,
                status,
            } => {
                assert!(command.starts_with("sh -c"));
                assert_eq!(stderr, "oops");
                assert!(status.contains('3'));
            }
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn missing_tool_is_reported() {
        let err = run(&["portgate-lab-no-such-tool"]).expect_err("must fail");
        assert!(
            matches!(err, LabError::ToolMissing { tool } if tool == "portgate-lab-no-such-tool")
        );
        assert!(!tool_available("portgate-lab-no-such-tool"));
        assert!(tool_available("sh"));
    }

    #[test]
    fn stdin_is_fed() {
        let out = run_with_input(&["cat"], Some("hello")).expect("cat works");
        assert_eq!(out, "hello");
    }
}
