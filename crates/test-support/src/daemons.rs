//! Daemons started for one test as child processes on a free port, never the machine's
//! own: a test must not depend on what this machine happens to run.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's redis-server package puts the server.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// How long a started daemon may take to answer.
const STARTUP: Duration = Duration::from_secs(15);

/// How a [`Redis`] is started.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// The address it binds (`--bind`); 127.0.0.1 unless set.
    pub bind: IpAddr,
    /// Run as this user and group (through `setpriv`, which needs root); as this process's
    /// user when `None`.
    pub run_as: Option<(String, String)>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            run_as: None,
        }
    }
}

/// A redis-server of its own on a free port, without persistence, without a password;
/// killed (by its pid) and reaped on drop.
pub struct Redis {
    /// The port it listens on.
    pub port: u16,
    /// The address it binds.
    pub bind: IpAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// A Redis on a free port of 127.0.0.1, as this user. `None` after [`crate::skip`]
    /// when redis-server is not installed.
    #[track_caller]
    pub fn start(test: &str) -> Option<Redis> {
        Redis::start_with(test, &RedisOptions::default())
    }

    /// A Redis started as `options` say. `None` after [`crate::skip`] when redis-server
    /// is not installed; panics when it is but does not answer.
    #[track_caller]
    pub fn start_with(test: &str, options: &RedisOptions) -> Option<Redis> {
        if !Path::new(REDIS_SERVER).exists() {
            crate::skip(
                test,
                "redis-server is not installed (Debian package redis-server)",
            );
            return None;
        }
        let mut failures = Vec::new();
        // Another process may take the free port before redis-server binds it: try again
        // on another.
        for _ in 0..5 {
            match Redis::try_start(options) {
                Ok(redis) => return Some(redis),
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "{test}: redis-server did not start:\n{}",
            failures.join("\n")
        );
    }

    fn try_start(options: &RedisOptions) -> Result<Redis, String> {
        let port = free_port(options.bind);
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        if options.run_as.is_some() {
            // Writable by the user it runs as.
            std::fs::set_permissions(
                dir.path(),
                std::os::unix::fs::PermissionsExt::from_mode(0o777),
            )
            .map_err(|e| format!("chmod the temporary directory: {e}"))?;
        }
        let log_path = dir.path().join("redis.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("log file: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("log file: {e}"))?;
        let mut command = match &options.run_as {
            Some((user, group)) => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid", user, "--regid", group, "--clear-groups"])
                    .arg(REDIS_SERVER);
                c
            }
            None => Command::new(REDIS_SERVER),
        };
        command
            .args(["--port", &port.to_string()])
            .args(["--bind", &options.bind.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--protected-mode", "yes", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = command
            .spawn()
            .map_err(|e| format!("spawn {REDIS_SERVER}: {e}"))?;
        let mut redis = Redis {
            port,
            bind: options.bind,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            if redis.answers() {
                return Ok(redis);
            }
            let exited = redis.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let what = match exited {
                    Some(status) => format!("exited ({status})"),
                    None => format!("no answer on port {port} after {STARTUP:?}"),
                };
                // Dropping `redis` kills and reaps the child.
                return Err(format!("port {port}: {what}; its log:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address a client connects to (127.0.0.1 when it binds all addresses).
    pub fn addr(&self) -> SocketAddr {
        let ip = match self.bind {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it answers `PING` with `+PONG`.
    pub fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut answer = [0u8; 7];
        stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free on `ip` just now (the listener that found it is closed).
pub fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind(SocketAddr::new(ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_answers_and_is_gone_after_drop() {
        let Some(redis) = Redis::start("redis_answers_and_is_gone_after_drop") else {
            return;
        };
        assert!(redis.answers());
        let pid = redis.pid();
        let addr = redis.addr();
        assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        drop(redis);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "reaped");
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    }
}
