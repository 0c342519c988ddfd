//! Who writes a running scan: host name, pid and process start time. A `running` scan whose
//! writer is a process of this host that no longer exists was interrupted (kill -9, crash,
//! power loss) and is marked incomplete the next time the store is opened.

/// This process, as `host:pid:start`.
pub(crate) fn current() -> String {
    let pid = std::process::id();
    format!(
        "{}:{pid}:{}",
        host_name(),
        start_time(pid).unwrap_or_default()
    )
}

/// Whether the writer recorded as `host:pid:start` is certainly gone: it ran on this host
/// and no process with that pid and start time exists. Unknown (another host, no /proc)
/// counts as alive.
pub(crate) fn is_dead(writer: &str) -> bool {
    let mut parts = writer.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if host != host_name() || !std::path::Path::new("/proc/self/stat").exists() {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match process(pid) {
        None => true,
        // A zombie has ended; only its parent has not read its exit status yet.
        Some((state, _)) if state == 'Z' || state == 'X' => true,
        // Same pid, other start time: the pid was reused by another process.
        Some((_, now)) => now.to_string() != start,
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Start time in clock ticks since boot (field 22 of /proc/PID/stat).
fn start_time(pid: u32) -> Option<u64> {
    process(pid).map(|(_, start)| start)
}

/// State (field 3) and start time (field 22) of /proc/PID/stat.
fn process(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_one_is_not() {
        let me = current();
        assert!(!is_dead(&me), "{me}");
        let host = host_name();
        // pid_max is at most 2^22: this pid cannot exist.
        assert!(is_dead(&format!("{host}:99999999:1")));
        assert!(!is_dead("another-host:99999999:1"));
        assert!(!is_dead("garbage"));
        let pid = std::process::id();
        assert!(is_dead(&format!("{host}:{pid}:0")), "pid reused");
    }
}
