//! The daemon zoo: real server daemons from Debian packages inside a lab
//! namespace, each on its standard port, with the service, product and
//! version a correct detector must report, and for web applications the
//! application, its exposures and its default login.
//!
//! [`Zoo::start`] creates a [`LabHost`] without listeners of its own and runs
//! every daemon whose package is installed under `ip netns exec <namespace>`
//! in the foreground, so the [`Child`] spawned here *is* the daemon. Docker
//! Engine is the exception: `ip netns exec` remounts `/sys`, hiding the
//! cgroup hierarchies dockerd needs, so it enters the network namespace with
//! `nsenter` in a copy of the host's mounts (`unshare --mount`) that keeps
//! its own mounts (a bind mount of its data root) from the host. Daemons that
//! fork workers or helpers (nginx, Apache, Exim, Dovecot, inetd, dockerd's
//! containerd, the Erlang VM's port programs) are stopped with their
//! descendants, each by pid, found through `/proc` before the parent is
//! killed; what daemonised away from its parent (RabbitMQ's epmd) is still in
//! the namespace and killed from its process list. Configuration, keys,
//! certificates, data, spools and logs live in one private temporary
//! directory; nothing outside it is written except `/run/sshd` (OpenSSH's
//! privilege-separation directory, created empty when missing),
//! `/run/docker/plugins` (created empty by dockerd when missing),
//! `/run/mount` (libmount's, created empty by `unshare` when missing) and the
//! namespace's own `net.ipv4.ip_unprivileged_port_start` sysctl (so daemons
//! that drop privileges can still bind their port).
//!
//! A daemon whose package is not installed is skipped and listed in
//! [`Zoo::skipped`] with the reason; one that is installed but does not come
//! up fails [`Zoo::start`] with the end of its log.
//!
//! The zoo makes a small CA and a server certificate signed by it (with the
//! `openssl` command) for the TLS and STARTTLS ports; [`Zoo::ca_pem`] and
//! [`Zoo::cert_pem`] give them to tests.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{LabConfig, LabError, LabHost, Profile, cmd, in_lab_range};

mod recipes;

use recipes::*;

/// How long [`Zoo::start`] waits for every daemon to accept connections
/// (Tomcat and RabbitMQ take seconds, all starting at once on few cores).
const ZOO_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The host name the daemons announce and the certificate names.
pub const ZOO_HOST_NAME: &str = "zoo.portgate.test";

/// How a zoo port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Plain text (or the protocol's own binary framing) from the first byte.
    Plain,
    /// Plain text with a STARTTLS upgrade offered (SMTP, IMAP, POP3).
    StartTls,
    /// TLS from the first byte (HTTPS, SMTPS, IMAPS, POP3S).
    Tls,
}

/// One zoo port and what a correct detector reports for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZooService {
    /// The daemon (`sshd`, `nginx`, ...).
    pub daemon: &'static str,
    /// The Debian package it comes from.
    pub package: &'static str,
    /// The TCP port.
    pub port: u16,
    /// Plain, STARTTLS or TLS.
    pub transport: Transport,
    /// Expected service name (inside TLS for [`Transport::Tls`] ports).
    pub service: &'static str,
    /// Expected product, when the daemon tells it.
    pub product: Option<String>,
    /// Expected version, when the daemon tells it (read from the installed
    /// package or the daemon itself, never hard-coded).
    pub version: Option<String>,
    /// A word the detection's `info` must contain (`auth required`, ...).
    pub info: Option<&'static str>,
    /// The web application behind the port, for HTTP ports that serve one.
    pub application: Option<ZooApplication>,
}

/// The web application a correct detector names behind a zoo port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZooApplication {
    /// Its id in the application database (`jupyter`, `tomcat`, ...).
    pub id: &'static str,
    /// Its version, as the application itself reports it (read from the
    /// installed package).
    pub version: Option<String>,
    /// The ids of the exposure checks it must fail (empty: none).
    pub exposures: Vec<&'static str>,
    /// The user of the default login that works on it, if one does.
    pub default_login: Option<&'static str>,
}

/// A daemon that was not started, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZooSkip {
    /// The daemon.
    pub daemon: &'static str,
    /// The Debian package it needs.
    pub package: &'static str,
    /// Why it was skipped.
    pub reason: String,
}

/// Every daemon the zoo knows, with its Debian package, in start order.
pub const ZOO_PACKAGES: [(&str, &str); 19] = [
    ("sshd", "openssh-server"),
    ("nginx", "nginx"),
    ("apache2", "apache2"),
    ("exim4", "exim4-daemon-light"),
    ("dovecot", "dovecot-imapd"),
    ("vsftpd", "vsftpd"),
    ("telnetd", "inetutils-telnetd"),
    ("memcached", "memcached"),
    ("redis-server", "redis-server"),
    ("node-exporter", "prometheus-node-exporter"),
    ("prometheus", "prometheus"),
    ("alertmanager", "prometheus-alertmanager"),
    ("etcd", "etcd-server"),
    ("influxd", "influxdb"),
    ("jupyter", "python3-notebook"),
    ("tomcat", "tomcat10"),
    ("rabbitmq", "rabbitmq-server"),
    ("dockerd", "docker.io"),
    ("xrdp", "xrdp"),
];

/// The VNC server's package (started after the others).
const VNC_PACKAGE: (&str, &str) = ("Xvnc", "tigervnc-standalone-server");

/// Extra packages some daemons need besides their own.
const EXTRA_PACKAGES: [(&str, &str); 4] = [
    ("dovecot", "dovecot-pop3d"),
    ("telnetd", "inetutils-inetd"),
    ("exim4", "openssl"),
    ("tomcat", "tomcat10-admin"),
];

/// A started daemon.
#[derive(Debug)]
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
    /// Ports that must accept before the zoo is ready.
    ports: Vec<u16>,
}

/// The running zoo. Dropping it stops every daemon and deletes the namespace.
#[derive(Debug)]
pub struct Zoo {
    daemons: Vec<Daemon>,
    services: Vec<ZooService>,
    skipped: Vec<ZooSkip>,
    ca_pem: String,
    cert_pem: String,
    // Dropped after the daemons are stopped (see Drop).
    host: Option<LabHost>,
    dir: Option<tempfile::TempDir>,
}

/// `Some(reason)` when the zoo cannot run here at all (not root, or a lab
/// tool or `openssl` is missing). Missing daemon packages only skip those
/// daemons; see [`Zoo::skipped`].
pub fn zoo_skip_reason() -> Option<String> {
    crate::skip_reason().or_else(|| {
        (!cmd::tool_available("openssl"))
            .then(|| "`openssl` not found in PATH (Debian package openssl)".to_owned())
    })
}

/// The installed version of a Debian package, `None` when not installed.
pub fn installed_version(package: &str) -> Option<String> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}\t${Version}", package])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (status, version) = text.split_once('\t')?;
    (status.ends_with("installed") && !status.contains("not-installed") && !version.is_empty())
        .then(|| version.trim().to_owned())
}

/// The upstream part of a Debian version: no epoch (`1:`), no Debian
/// revision (`-2+deb12u10`), no repack suffix (`+dfsg`, `~rc0`, ...).
pub fn upstream_version(debian: &str) -> String {
    let full = upstream_with_suffix(debian);
    full.split(['+', '~']).next().unwrap_or(&full).to_owned()
}

/// The upstream part of a Debian version with its repack or pre-release
/// suffix, as daemons built by Debian report themselves (`2.42.0+ds`,
/// `1.6.7~rc0`, `20.10.24+dfsg1`): no epoch, no Debian revision.
fn upstream_with_suffix(debian: &str) -> String {
    let no_epoch = debian.split_once(':').map_or(debian, |(_, rest)| rest);
    no_epoch
        .rsplit_once('-')
        .map_or(no_epoch, |(up, _)| up)
        .to_owned()
}

impl Zoo {
    /// Creates a lab host and starts every installed zoo daemon in it;
    /// returns once each accepts connections on its ports.
    pub fn start() -> Result<Zoo, LabError> {
        Self::start_with(None)
    }

    /// [`Zoo::start`] behind a delay line (a real round trip, jitter, loss) when `delay`
    /// is given.
    pub fn start_with(delay: Option<crate::DelayConfig>) -> Result<Zoo, LabError> {
        if let Some(reason) = zoo_skip_reason() {
            return Err(LabError::InvalidConfig(format!(
                "the zoo cannot run: {reason}"
            )));
        }
        let mut config = LabConfig::new(Profile::Open).open_ports([]);
        if let Some(delay) = delay {
            config = config.delay(delay);
        }
        let host = LabHost::start(config)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-zoo-", host.namespace()))
            .tempdir()
            .map_err(|source| io_err("creating the zoo's temporary directory", source))?;
        set_mode(dir.path(), 0o755)?;
        let mut zoo = Zoo {
            daemons: Vec::new(),
            services: Vec::new(),
            skipped: Vec::new(),
            ca_pem: String::new(),
            cert_pem: String::new(),
            host: Some(host),
            dir: Some(dir),
        };
        zoo.populate()?;
        Ok(zoo)
    }

    fn populate(&mut self) -> Result<(), LabError> {
        let (namespace, v4, v6) = {
            let host = self.host()?;
            (host.namespace().to_owned(), host.ipv4(), host.ipv6())
        };
        let root = self
            .dir
            .as_ref()
            .map(|d| d.path().to_owned())
            .ok_or_else(|| LabError::InvalidConfig("zoo directory gone".to_owned()))?;
        cmd::run(&[
            "ip",
            "netns",
            "exec",
            &namespace,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_unprivileged_port_start=0",
        ])?;
        self.make_certificates(&root, v4, v6)?;
        let ctx = Ctx {
            namespace,
            root,
            v4,
            v6,
        };
        for (daemon, package) in ZOO_PACKAGES.into_iter().chain([VNC_PACKAGE]) {
            let missing = std::iter::once((daemon, package))
                .chain(EXTRA_PACKAGES.into_iter().filter(|(d, _)| *d == daemon))
                .find(|(_, p)| installed_version(p).is_none());
            if let Some((_, p)) = missing {
                self.skipped.push(ZooSkip {
                    daemon,
                    package,
                    reason: format!("Debian package {p} is not installed"),
                });
                continue;
            }
            self.start_daemon(&ctx, daemon)?;
        }
        self.wait_ready(v4)
    }

    fn host(&self) -> Result<&LabHost, LabError> {
        self.host
            .as_ref()
            .ok_or_else(|| LabError::InvalidConfig("zoo host gone".to_owned()))
    }

    /// A CA and a server certificate for [`ZOO_HOST_NAME`] and the lab
    /// addresses, valid for two days.
    fn make_certificates(
        &mut self,
        root: &Path,
        v4: Ipv4Addr,
        v6: Ipv6Addr,
    ) -> Result<(), LabError> {
        let p = |name: &str| path_str(&root.join(name));
        let (ca_key, ca, key, csr, cert, ext) = (
            p("ca.key")?,
            p("ca.pem")?,
            p("key.pem")?,
            p("server.csr")?,
            p("cert.pem")?,
            p("server.ext")?,
        );
        write_file(
            &root.join("server.ext"),
            &format!(
                "basicConstraints=CA:FALSE\n\
                 keyUsage=digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth\n\
                 subjectAltName=DNS:{ZOO_HOST_NAME},IP:{v4},IP:{v6}\n"
            ),
        )?;
        let rsa = "rsa:2048";
        cmd::run(&[
            "openssl",
            "req",
            "-x509",
            "-newkey",
            rsa,
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            "/CN=portgate zoo CA",
        ])?;
        cmd::run(&[
            "openssl",
            "req",
            "-newkey",
            rsa,
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={ZOO_HOST_NAME}"),
        ])?;
        cmd::run(&[
            "openssl",
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ])?;
        // Daemons that drop privileges (Exim, xrdp) read them as another user.
        set_mode(&root.join("key.pem"), 0o644)?;
        self.ca_pem = read_string(&root.join("ca.pem"))?;
        self.cert_pem = read_string(&root.join("cert.pem"))?;
        Ok(())
    }

    /// The lab host the daemons run in.
    pub fn lab(&self) -> &LabHost {
        // Present from start until drop.
        self.host
            .as_ref()
            .unwrap_or_else(|| unreachable!("zoo host present until drop"))
    }

    /// The zoo's IPv4 address (the scan target).
    pub fn ipv4(&self) -> Ipv4Addr {
        self.lab().ipv4()
    }

    /// Every port of every started daemon, with its expected detection.
    pub fn services(&self) -> &[ZooService] {
        &self.services
    }

    /// The expectation for `port`, if a zoo daemon serves it.
    pub fn service(&self, port: u16) -> Option<&ZooService> {
        self.services.iter().find(|s| s.port == port)
    }

    /// The daemons not started, with the reason.
    pub fn skipped(&self) -> &[ZooSkip] {
        &self.skipped
    }

    /// The zoo ports, sorted.
    pub fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.services.iter().map(|s| s.port).collect();
        ports.sort_unstable();
        ports
    }

    /// Ports speaking TLS from the first byte.
    pub fn tls_ports(&self) -> Vec<u16> {
        self.ports_with(Transport::Tls)
    }

    /// Ports offering STARTTLS.
    pub fn starttls_ports(&self) -> Vec<u16> {
        self.ports_with(Transport::StartTls)
    }

    fn ports_with(&self, transport: Transport) -> Vec<u16> {
        self.services
            .iter()
            .filter(|s| s.transport == transport)
            .map(|s| s.port)
            .collect()
    }

    /// The PEM of the CA that signed the zoo's server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The PEM of the server certificate every TLS and STARTTLS port presents
    /// (names: [`ZOO_HOST_NAME`], the lab IPv4 and IPv6 address).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// `(daemon, pid)` of every started daemon (the parent process).
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.daemons
            .iter()
            .map(|d| (d.name, d.child.id()))
            .collect()
    }

    fn start_daemon(&mut self, ctx: &Ctx, daemon: &'static str) -> Result<(), LabError> {
        let started = match daemon {
            "sshd" => sshd(ctx)?,
            "nginx" => nginx(ctx)?,
            "apache2" => apache(ctx)?,
            "exim4" => exim(ctx)?,
            "dovecot" => dovecot(ctx)?,
            "vsftpd" => vsftpd(ctx)?,
            "telnetd" => telnet(ctx)?,
            "memcached" => memcached(ctx)?,
            "redis-server" => redis(ctx)?,
            "node-exporter" => node_exporter(ctx)?,
            "prometheus" => prometheus(ctx)?,
            "alertmanager" => alertmanager(ctx)?,
            "etcd" => etcd(ctx)?,
            "influxd" => influxdb(ctx)?,
            "jupyter" => jupyter(ctx)?,
            "tomcat" => tomcat(ctx)?,
            "rabbitmq" => rabbitmq(ctx)?,
            "dockerd" => docker(ctx)?,
            "xrdp" => xrdp(ctx)?,
            "Xvnc" => vnc(ctx)?,
            other => {
                return Err(LabError::InvalidConfig(format!(
                    "unknown zoo daemon {other}"
                )));
            }
        };
        for plan in started {
            let ports = plan.services.iter().map(|s| s.port).collect();
            let (child, log) = ctx.spawn(plan.name, plan.entry, &plan.args, &plan.env)?;
            self.daemons.push(Daemon {
                name: plan.name,
                child,
                log,
                ports,
            });
            self.services.extend(plan.services);
        }
        Ok(())
    }

    /// Connects to every port until it accepts; fails when a daemon exits or
    /// the time is up.
    fn wait_ready(&mut self, v4: Ipv4Addr) -> Result<(), LabError> {
        let deadline = Instant::now() + ZOO_READY_TIMEOUT;
        for i in 0..self.daemons.len() {
            let ports = self
                .daemons
                .get(i)
                .map(|d| d.ports.clone())
                .unwrap_or_default();
            for port in ports {
                let address = SocketAddr::new(IpAddr::V4(v4), port);
                while let Some(daemon) = self.daemons.get_mut(i) {
                    if let Ok(Some(status)) = daemon.child.try_wait() {
                        return Err(LabError::ZooDaemon {
                            daemon: daemon.name.to_owned(),
                            reason: format!("exited ({status}); log: {}", log_tail(&daemon.log)),
                        });
                    }
                    let error = match connect(address) {
                        Ok(()) => break,
                        Err(e) => e,
                    };
                    if Instant::now() >= deadline {
                        return Err(LabError::ZooDaemon {
                            daemon: daemon.name.to_owned(),
                            reason: format!(
                                "port {port} not accepting within {ZOO_READY_TIMEOUT:?} ({error}); log: {}",
                                log_tail(&daemon.log)
                            ),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        Ok(())
    }

    /// Stops every daemon and its descendants, each by pid (SIGKILL), and
    /// reaps the daemons. Idempotent; never panics.
    fn stop(&mut self) {
        for mut daemon in self.daemons.drain(..) {
            let pid = daemon.child.id();
            // Collect the whole tree first: once the parent is gone, its
            // children are re-parented and can no longer be found this way.
            let tree = descendants(pid);
            let _ = daemon.child.kill();
            for child in tree {
                kill_pid(child);
            }
            let _ = daemon.child.wait();
            // Workers forked while the list was being made.
            for child in descendants(pid) {
                kill_pid(child);
            }
        }
    }
}

impl Drop for Zoo {
    fn drop(&mut self) {
        self.stop();
        // Stray workers re-parented to init are still in the namespace: kill
        // each process left in it (all started by this zoo) before deleting it.
        if let Some(host) = &self.host
            && let Ok(listing) = cmd::run(&["ip", "netns", "pids", host.namespace()])
        {
            let me = std::process::id();
            for pid in listing
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
            {
                if pid != me {
                    kill_pid(pid);
                }
            }
        }
        self.host.take();
        self.dir.take();
    }
}

/// How a daemon enters the zoo's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// `ip netns exec`: the network namespace, in a mount namespace of its
    /// own where `/sys` is the namespace's (no cgroup hierarchies).
    NetnsExec,
    /// `nsenter --net` then `unshare --mount`: the network namespace, in a
    /// copy of the host's mounts (cgroup hierarchies included) that receives
    /// the host's mount events (deleted namespaces go) but sends none: the
    /// mounts the daemon makes vanish with it, even when it is killed.
    HostMounts,
}

/// A daemon to spawn and the ports it serves.
struct Plan {
    name: &'static str,
    entry: Entry,
    args: Vec<String>,
    env: Vec<(String, String)>,
    services: Vec<ZooService>,
}

impl Plan {
    fn new(name: &'static str, args: &[&str]) -> Self {
        Self::with_args(name, args.iter().map(|s| (*s).to_owned()).collect())
    }

    fn with_args(name: &'static str, args: Vec<String>) -> Self {
        Self {
            name,
            entry: Entry::NetnsExec,
            args,
            env: Vec::new(),
            services: Vec::new(),
        }
    }

    fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sees the host's mounts (see [`Entry::HostMounts`]).
    fn host_mounts(mut self) -> Self {
        self.entry = Entry::HostMounts;
        self
    }

    #[allow(clippy::too_many_arguments)]
    fn serve(
        mut self,
        package: &'static str,
        port: u16,
        transport: Transport,
        service: &'static str,
        product: Option<&str>,
        version: Option<&str>,
        info: Option<&'static str>,
    ) -> Self {
        self.services.push(ZooService {
            daemon: self.name,
            package,
            port,
            transport,
            service,
            product: product.map(str::to_owned),
            version: version.map(str::to_owned),
            info,
            application: None,
        });
        self
    }

    /// The web application behind the last [`Plan::serve`]d port.
    fn app(
        mut self,
        id: &'static str,
        version: Option<&str>,
        exposures: &[&'static str],
        default_login: Option<&'static str>,
    ) -> Self {
        if let Some(service) = self.services.last_mut() {
            service.application = Some(ZooApplication {
                id,
                version: version.map(str::to_owned),
                exposures: exposures.to_vec(),
                default_login,
            });
        }
        self
    }
}

/// Where and how daemons are started.
struct Ctx {
    namespace: String,
    root: PathBuf,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
}

impl Ctx {
    fn path(&self, name: &str) -> String {
        self.root.join(name).to_string_lossy().into_owned()
    }

    fn mkdir(&self, name: &str, mode: u32) -> Result<String, LabError> {
        let path = self.root.join(name);
        std::fs::create_dir_all(&path)
            .map_err(|source| io_err(&format!("creating {}", path.display()), source))?;
        set_mode(&path, mode)?;
        path_str(&path)
    }

    fn write(&self, name: &str, contents: &str) -> Result<String, LabError> {
        let path = self.root.join(name);
        write_file(&path, contents)?;
        path_str(&path)
    }

    fn cert(&self) -> String {
        self.path("cert.pem")
    }

    fn key(&self) -> String {
        self.path("key.pem")
    }

    /// `ip netns exec <namespace> <args...>` or `nsenter
    /// --net=/var/run/netns/<namespace> unshare --mount --propagation slave
    /// <args...>` (each execs the next, so the child is the daemon), output
    /// to `<name>.log`.
    fn spawn(
        &self,
        name: &str,
        entry: Entry,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<(Child, PathBuf), LabError> {
        let log = self.root.join(format!("{name}.log"));
        let file = File::create(&log)
            .map_err(|source| io_err(&format!("creating {}", log.display()), source))?;
        let stderr = file
            .try_clone()
            .map_err(|source| io_err(&format!("duplicating {}", log.display()), source))?;
        let mut command = match entry {
            Entry::NetnsExec => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", &self.namespace]);
                command
            }
            Entry::HostMounts => {
                let mut command = Command::new("nsenter");
                command
                    .arg(format!("--net=/var/run/netns/{}", self.namespace))
                    .args(["unshare", "--mount", "--propagation", "slave"]);
                command
            }
        };
        let child = command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr)
            .spawn()
            .map_err(|source| io_err(&format!("spawning {name} in {}", self.namespace), source))?;
        Ok((child, log))
    }
}

fn pkg_upstream(package: &str) -> Option<String> {
    installed_version(package).map(|v| upstream_version(&v))
}

/// The installed package's upstream version with its suffix (see
/// [`upstream_with_suffix`]).
fn pkg_upstream_with_suffix(package: &str) -> Option<String> {
    installed_version(package).map(|v| upstream_with_suffix(&v))
}

/// The first capture of `marker` followed by a version in a command's output
/// (stdout and stderr), e.g. `("exim4 -bV", "Exim version ")`.
fn version_from_output(args: &[&str], marker: &str) -> Option<String> {
    let (program, rest) = args.split_first()?;
    let output = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let start = text.find(marker)? + marker.len();
    let version: String = text
        .get(start..)?
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '~' | '-' | '_'))
        .collect();
    (!version.is_empty()).then_some(version)
}

/// One connect to a zoo port from the root namespace.
fn connect(address: SocketAddr) -> io::Result<()> {
    if !in_lab_range(address.ip()) {
        return Err(io::Error::other(format!(
            "refusing to connect to {address}: outside 198.18.0.0/15 and 2001:db8::/32"
        )));
    }
    TcpStream::connect_timeout(&address, Duration::from_millis(300)).map(|_| ())
}

/// Every descendant of `pid`, from `/proc/*/stat` parent links.
fn descendants(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may contain spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((child, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while let Some(&current) = found.get(i) {
        for (child, ppid) in &parents {
            if *ppid == current && !found.contains(child) {
                found.push(*child);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

fn kill_pid(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn io_err(context: &str, source: io::Error) -> LabError {
    LabError::Io {
        context: context.to_owned(),
        source,
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|source| io_err(&format!("chmod {mode:o} {}", path.display()), source))
}

fn write_file(path: &Path, contents: &str) -> Result<(), LabError> {
    let mut file = File::create(path)
        .map_err(|source| io_err(&format!("creating {}", path.display()), source))?;
    file.write_all(contents.as_bytes())
        .map_err(|source| io_err(&format!("writing {}", path.display()), source))
}

fn read_string(path: &Path) -> Result<String, LabError> {
    let mut text = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|source| io_err(&format!("reading {}", path.display()), source))?;
    Ok(text)
}

fn path_str(path: &Path) -> Result<String, LabError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| LabError::InvalidConfig(format!("{} is not UTF-8", path.display())))
}

/// The last lines of a log, on one line.
fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text =
                String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(2048)..]).into_owned();
            let lines: Vec<&str> = text.lines().rev().take(8).collect();
            lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
        }
        Err(e) => format!("(unreadable: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_versions() {
        for (debian, upstream) in [
            ("1:9.2p1-2+deb12u10", "9.2p1"),
            ("1.22.1-9+deb12u11", "1.22.1"),
            ("1.6.7~rc0-1+b13", "1.6.7"),
            ("3.0.3-13+b2", "3.0.3"),
            ("5:7.0.15-1~deb12u10", "7.0.15"),
            ("6.4.12-2.2", "6.4.12"),
            ("1.0", "1.0"),
        ] {
            assert_eq!(upstream_version(debian), upstream, "{debian}");
        }
    }

    #[test]
    fn upstream_versions_with_suffix() {
        for (debian, upstream) in [
            ("2.42.0+ds-5+deb12u1", "2.42.0+ds"),
            ("1.6.7~rc0-1+b13", "1.6.7~rc0"),
            ("20.10.24+dfsg1-1+deb12u1+b6", "20.10.24+dfsg1"),
            ("1:9.2p1-2+deb12u10", "9.2p1"),
            ("10.1.60-1~deb12u1", "10.1.60"),
            ("1.0", "1.0"),
        ] {
            assert_eq!(upstream_with_suffix(debian), upstream, "{debian}");
        }
    }
}
