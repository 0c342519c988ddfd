//! Real UDP services inside a lab namespace: dnsmasq (DNS, UDP 53), chronyd
//! (NTP, UDP 123) and snmpd (SNMP, UDP 161).
//!
//! Each daemon runs in the foreground under `ip netns exec <namespace>`, which
//! execs the daemon in place, so the [`Child`] this module spawns *is* the
//! daemon: it is stopped by that pid and nothing else. Every daemon binds only
//! the lab host's own IPv4 and IPv6 address; its configuration, pid and log
//! files live in a private temporary directory.
//!
//! dnsmasq also answers DNS over TCP on port 53; the firewall module turns
//! TCP 53 into a closed (RST) or filtered port, so the TCP ground truth does
//! not change when the services run.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{LabError, cmd, in_lab_range};

/// The UDP port of the DNS service.
pub(crate) const DNS_PORT: u16 = 53;
/// The UDP port of the NTP service.
pub(crate) const NTP_PORT: u16 = 123;
/// The UDP port of the SNMP service.
pub(crate) const SNMP_PORT: u16 = 161;

/// The daemons (program names) the services need.
pub(crate) const TOOLS: [&str; 3] = ["dnsmasq", "chronyd", "snmpd"];

/// How long one readiness query waits for its reply.
const QUERY_TIMEOUT: Duration = Duration::from_millis(200);

/// The `sysDescr.0` value snmpd reports.
pub(crate) const SNMP_SYS_DESCR: &str = "portgate-lab";

/// The name dnsmasq answers with the lab host's addresses.
pub(crate) const DNS_HOST_RECORD: &str = "lab.portgate.test";

// Readiness queries: copies of portgate-scan's payloads in
// crates/scan/data/udp-payloads.toml (see the specifications cited there).

/// DNS query: ID "PG", RD, one question `version.bind` TXT CH (RFC 1035 4.1).
const DNS_QUERY: [u8; 30] = [
    0x50, 0x47, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, b'v', b'e', b'r',
    b's', b'i', b'o', b'n', 0x04, b'b', b'i', b'n', b'd', 0x00, 0x00, 0x10, 0x00, 0x03,
];

/// NTPv4 client request (RFC 5905 7.3): 0x23 = LI 0, VN 4, mode 3; non-zero
/// transmit timestamp.
const NTP_QUERY: [u8; 48] = {
    let mut packet = [0u8; 48];
    packet[0] = 0x23;
    packet[40] = 0x50;
    packet[41] = 0x47;
    packet[47] = 0x01;
    packet
};

/// SNMPv2c GetRequest for sysDescr.0, community "public" (RFC 1901, RFC 3416).
const SNMP_QUERY: [u8; 43] = [
    0x30, 0x29, 0x02, 0x01, 0x01, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', 0xa0, 0x1c, 0x02,
    0x04, 0x50, 0x47, 0x00, 0x02, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x0e, 0x30, 0x0c, 0x06,
    0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x01, 0x00, 0x05, 0x00,
];

/// One service: what to send to its port and how to recognise the reply.
#[derive(Debug, Clone, Copy)]
struct Probe {
    service: &'static str,
    port: u16,
    query: &'static [u8],
    is_reply: fn(&[u8]) -> bool,
}

const PROBES: [Probe; 3] = [
    Probe {
        service: "dnsmasq",
        port: DNS_PORT,
        query: &DNS_QUERY,
        // Same ID, QR bit set.
        is_reply: |r| r.len() >= 12 && r[..2] == DNS_QUERY[..2] && r[2] & 0x80 != 0,
    },
    Probe {
        service: "chronyd",
        port: NTP_PORT,
        query: &NTP_QUERY,
        // 48 bytes or more, mode 4 (server).
        is_reply: |r| r.len() >= 48 && r[0] & 0x07 == 4,
    },
    Probe {
        service: "snmpd",
        port: SNMP_PORT,
        query: &SNMP_QUERY,
        // A BER SEQUENCE (an SNMP message).
        is_reply: |r| r.first() == Some(&0x30),
    },
];

/// A daemon started by this module.
#[derive(Debug)]
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// The running daemons of one lab host. Dropping it stops them.
#[derive(Debug)]
pub(crate) struct Services {
    namespace: String,
    daemons: Vec<Daemon>,
    // Last field: removed after the daemons are gone.
    dir: tempfile::TempDir,
}

impl Services {
    /// Writes the configuration and starts the three daemons in `namespace`,
    /// bound to `v4` and `v6` (the namespace's own addresses). Does not wait
    /// for them; see [`Services::wait_ready`]. On failure, the daemons started
    /// so far are stopped again.
    pub(crate) fn start(namespace: &str, v4: Ipv4Addr, v6: Ipv6Addr) -> Result<Services, LabError> {
        if let Some(tool) = TOOLS.iter().find(|t| !cmd::tool_available(t)) {
            return Err(LabError::ToolMissing {
                tool: (*tool).to_owned(),
            });
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("{namespace}-udp-"))
            .tempdir()
            .map_err(|source| LabError::Io {
                context: "creating the services' temporary directory".to_owned(),
                source,
            })?;
        let mut services = Services {
            namespace: namespace.to_owned(),
            daemons: Vec::with_capacity(3),
            dir,
        };
        let root = services.dir.path().to_owned();

        let host_record = format!("--host-record={DNS_HOST_RECORD},{v4},{v6}");
        let listen_v4 = format!("--listen-address={v4}");
        let listen_v6 = format!("--listen-address={v6}");
        services.spawn(
            "dnsmasq",
            &[
                "dnsmasq",
                "--keep-in-foreground",
                "--log-facility=-",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                &listen_v4,
                &listen_v6,
                &host_record,
                "--pid-file=",
                "--user=root",
                "--group=root",
            ],
            &[],
        )?;

        let chrony_conf = root.join("chrony.conf");
        write_file(
            &chrony_conf,
            &format!(
                "# portgate-lab: NTP server on the lab host's addresses only\n\
                 allow all\n\
                 local stratum 10\n\
                 port {NTP_PORT}\n\
                 cmdport 0\n\
                 bindcmdaddress /\n\
                 pidfile {}\n\
                 bindaddress {v4}\n\
                 bindaddress {v6}\n",
                root.join("chronyd.pid").display()
            ),
        )?;
        let chrony_conf = path_str(&chrony_conf)?;
        // -d: foreground; -x: never touch the system clock; -u root: no
        // privilege drop (the files are in a root-only temporary directory).
        services.spawn(
            "chronyd",
            &["chronyd", "-d", "-x", "-u", "root", "-f", &chrony_conf],
            &[],
        )?;

        let snmpd_conf = root.join("snmpd.conf");
        write_file(
            &snmpd_conf,
            &format!(
                "# portgate-lab: SNMP agent on the lab host's addresses only\n\
                 rocommunity public default\n\
                 rocommunity6 public default\n\
                 sysDescr {SNMP_SYS_DESCR}\n"
            ),
        )?;
        let snmpd_conf = path_str(&snmpd_conf)?;
        let persistent = path_str(&root.join("snmp-persistent"))?;
        let transports = format!("udp:{v4}:{SNMP_PORT},udp6:[{v6}]:{SNMP_PORT}");
        // -f: foreground; -Lo: log to stdout; -C: only the given config;
        // -I -smux: no SMUX listener (it would open TCP 199 on every address).
        services.spawn(
            "snmpd",
            &[
                "snmpd",
                "-f",
                "-Lo",
                "-C",
                "-I",
                "-smux",
                "-c",
                &snmpd_conf,
                &transports,
            ],
            // No MIB files are needed; the persistent store stays private.
            &[("MIBS", ""), ("SNMP_PERSISTENT_DIR", &persistent)],
        )?;
        Ok(services)
    }

    /// Spawns `ip netns exec <namespace> <args...>` with output to a log file.
    fn spawn(
        &mut self,
        name: &'static str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<(), LabError> {
        let log = self.dir.path().join(format!("{name}.log"));
        let file = File::create(&log).map_err(|source| LabError::Io {
            context: format!("creating {}", log.display()),
            source,
        })?;
        let stderr = file.try_clone().map_err(|source| LabError::Io {
            context: format!("duplicating the handle of {}", log.display()),
            source,
        })?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr);
        let child = command.spawn().map_err(|source| LabError::Io {
            context: format!("spawning {name} in namespace {}", self.namespace),
            source,
        })?;
        self.daemons.push(Daemon { name, child, log });
        Ok(())
    }

    /// Sends each service its query from the root namespace, on `v4` and `v6`,
    /// until it answers; fails when a daemon exits or `timeout` passes.
    pub(crate) fn wait_ready(
        &mut self,
        v4: Ipv4Addr,
        v6: Ipv6Addr,
        timeout: Duration,
    ) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        for probe in PROBES {
            for ip in [IpAddr::V4(v4), IpAddr::V6(v6)] {
                let address = SocketAddr::new(ip, probe.port);
                loop {
                    self.check_running(probe.service)?;
                    let last_error = match query(address, probe.query, QUERY_TIMEOUT) {
                        Ok(reply) if (probe.is_reply)(&reply) => break,
                        Ok(reply) => format!("unexpected reply {reply:02x?}"),
                        Err(err) => err.to_string(),
                    };
                    if Instant::now() >= deadline {
                        return Err(LabError::Service {
                            service: probe.service.to_owned(),
                            reason: format!(
                                "no answer on {address} within {timeout:?} ({last_error}); log: {}",
                                self.log_tail(probe.service)
                            ),
                        });
                    }
                    // A refused query returns at once; do not spin.
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        Ok(())
    }

    /// Fails if the daemon `name` has exited.
    fn check_running(&mut self, name: &str) -> Result<(), LabError> {
        let Some(daemon) = self.daemons.iter_mut().find(|d| d.name == name) else {
            return Ok(());
        };
        match daemon.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                let log = self.log_tail(name);
                Err(LabError::Service {
                    service: name.to_owned(),
                    reason: format!("exited ({status}); log: {log}"),
                })
            }
            Err(source) => Err(LabError::Io {
                context: format!("checking on {name}"),
                source,
            }),
        }
    }

    /// The last lines of a daemon's log, on one line.
    fn log_tail(&self, name: &str) -> String {
        let Some(daemon) = self.daemons.iter().find(|d| d.name == name) else {
            return String::new();
        };
        read_tail(&daemon.log, 2048)
            .map(|text| {
                let lines: Vec<&str> = text.lines().rev().take(8).collect();
                lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
            })
            .unwrap_or_else(|e| format!("(unreadable: {e})"))
    }

    /// `(program, pid)` of every daemon.
    pub(crate) fn pids(&self) -> Vec<(&'static str, u32)> {
        self.daemons
            .iter()
            .map(|d| (d.name, d.child.id()))
            .collect()
    }

    /// Stops every daemon: SIGKILL to its own pid, then reaps it. Idempotent;
    /// never panics.
    ///
    /// SIGKILL rather than SIGTERM: the daemons keep no state worth saving,
    /// and a caller that blocks SIGTERM (as the `portgate-lab` binary does,
    /// to wait for it) passes that signal mask on to its children, which
    /// would then ignore SIGTERM.
    pub(crate) fn stop(&mut self) {
        for mut daemon in self.daemons.drain(..) {
            // Fails only if it has already exited; wait() reaps it either way.
            let _ = daemon.child.kill();
            let _ = daemon.child.wait();
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One query/reply exchange over a connected socket from the root namespace.
fn query(address: SocketAddr, payload: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    if !in_lab_range(address.ip()) {
        // Cannot happen: every address comes from `Subnet`.
        return Err(io::Error::other(format!(
            "refusing to send to {address}: outside 198.18.0.0/15 and 2001:db8::/32"
        )));
    }
    let local: SocketAddr = match address {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(address)?;
    socket.set_read_timeout(Some(timeout))?;
    socket.send(payload)?;
    let mut buf = vec![0u8; 2048];
    let n = socket.recv(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn write_file(path: &Path, contents: &str) -> Result<(), LabError> {
    std::fs::write(path, contents).map_err(|source| LabError::Io {
        context: format!("writing {}", path.display()),
        source,
    })
}

fn path_str(path: &Path) -> Result<String, LabError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| LabError::InvalidConfig(format!("{} is not UTF-8", path.display())))
}

/// The last `max` bytes of a file, lossily decoded.
fn read_tail(path: &Path, max: u64) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_queries_are_well_formed() {
        // DNS: ID "PG", RD, QDCOUNT 1, version.bind TXT CH.
        assert_eq!(&DNS_QUERY[..6], [0x50, 0x47, 0x01, 0x00, 0x00, 0x01]);
        assert_eq!(&DNS_QUERY[12..26], b"\x07version\x04bind\x00");
        assert_eq!(&DNS_QUERY[26..], [0x00, 0x10, 0x00, 0x03]);
        // NTP: v4 client request.
        assert_eq!(NTP_QUERY[0], 0x23);
        assert_ne!(&NTP_QUERY[40..], [0; 8]);
        // SNMP: SEQUENCE covering the datagram, v2c, community public, sysDescr.0.
        assert_eq!(usize::from(SNMP_QUERY[1]) + 2, SNMP_QUERY.len());
        assert_eq!(&SNMP_QUERY[2..13], b"\x02\x01\x01\x04\x06public");
        assert!(
            SNMP_QUERY
                .windows(10)
                .any(|w| w == [0x06, 0x08, 0x2b, 6, 1, 2, 1, 1, 1, 0])
        );
    }

    #[test]
    fn reply_recognition() {
        let dns = PROBES[0].is_reply;
        let mut reply = DNS_QUERY.to_vec();
        assert!(!dns(&reply), "a query is not a reply");
        reply[2] |= 0x80;
        assert!(dns(&reply));
        reply[0] = 0;
        assert!(!dns(&reply), "wrong ID");
        let ntp = PROBES[1].is_reply;
        let mut reply = NTP_QUERY;
        assert!(!ntp(&reply));
        reply[0] = 0x24;
        assert!(ntp(&reply));
        assert!(!ntp(&reply[..47]));
        let snmp = PROBES[2].is_reply;
        assert!(snmp(&[0x30, 0x00]));
        assert!(!snmp(&[]));
    }
}
