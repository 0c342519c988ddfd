//! What listens, and who holds it: the socket tables of a network namespace joined to the
//! processes whose file descriptors hold each socket.

use crate::AuditError;
use crate::services::{program_name, service_of};
use portgate_model::Protocol;
use procfs::FromReadSI;
use procfs::net::{TcpNetEntries, TcpState, UdpNetEntries, UdpState};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Which network namespace to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// The one this process runs in.
    Current,
    /// A named namespace (`ip netns add NAME`: `/run/netns/NAME`).
    Named(String),
    /// The namespace of a process.
    Process(i32),
}

impl Namespace {
    /// `NAME` (a name under /run/netns) or a pid (all digits).
    pub fn parse(text: &str) -> Namespace {
        match text.parse::<i32>() {
            Ok(pid) if pid > 0 => Namespace::Process(pid),
            _ => Namespace::Named(text.to_string()),
        }
    }

    /// How reports name it: `current`, the name, or `pid N`.
    pub fn label(&self) -> String {
        match self {
            Namespace::Current => "current".to_string(),
            Namespace::Named(name) => name.clone(),
            Namespace::Process(pid) => format!("pid {pid}"),
        }
    }

    fn path(&self) -> Option<String> {
        match self {
            Namespace::Current => None,
            Namespace::Named(name) => Some(format!("/run/netns/{name}")),
            Namespace::Process(pid) => Some(format!("/proc/{pid}/ns/net")),
        }
    }
}

/// How far a bound address reaches.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum BindScope {
    /// 127.0.0.0/8 or ::1: only this host.
    Loopback,
    /// One address of one interface.
    Interface,
    /// 0.0.0.0 or ::: every interface, present and future.
    AllInterfaces,
}

impl BindScope {
    /// `loopback`, `interface` or `all-interfaces`.
    pub fn as_str(self) -> &'static str {
        match self {
            BindScope::Loopback => "loopback",
            BindScope::Interface => "interface",
            BindScope::AllInterfaces => "all-interfaces",
        }
    }
}

/// Which address families a socket takes connections or datagrams from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Families {
    /// IPv4 only (an IPv4 socket, or an IPv6 socket bound to an IPv4-mapped address).
    Ipv4,
    /// IPv6 only (a specific IPv6 address, or `::` with IPV6_V6ONLY).
    Ipv6,
    /// `::` without IPV6_V6ONLY: IPv6 and IPv4.
    #[serde(rename = "ipv4+ipv6")]
    Dual,
    /// `::`, and the IPv6-only flag could not be read: IPv6, and IPv4 too unless v6-only.
    #[serde(rename = "ipv6(+ipv4?)")]
    Ipv6OrDual,
}

impl Families {
    /// `ipv4`, `ipv6`, `ipv4+ipv6` or `ipv6(+ipv4?)`.
    pub fn as_str(self) -> &'static str {
        match self {
            Families::Ipv4 => "ipv4",
            Families::Ipv6 => "ipv6",
            Families::Dual => "ipv4+ipv6",
            Families::Ipv6OrDual => "ipv6(+ipv4?)",
        }
    }
}

/// A process that holds a socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: i32,
    /// The kernel's name for it (`comm`, at most 15 characters).
    pub name: String,
    /// Its command line, word by word (empty for kernel threads and zombies).
    pub cmdline: Vec<String>,
    /// Its effective user id.
    pub uid: u32,
    /// The user's name, when the password database has one.
    pub user: Option<String>,
    /// How long it has been running, in seconds.
    pub age_s: Option<u64>,
}

impl ProcessInfo {
    /// Whether `name` is this process: its `comm` or the file name of its `argv[0]`.
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || program_name(&self.cmdline) == Some(name)
    }
}

/// A listening TCP socket or a bound (unconnected) UDP socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Listener {
    /// `tcp` or `udp`.
    pub protocol: Protocol,
    /// The bound address (an IPv4-mapped IPv6 address is shown as the IPv4 address).
    pub address: IpAddr,
    /// The port.
    pub port: u16,
    /// How far the address reaches.
    pub scope: BindScope,
    /// Which families it takes.
    pub families: Families,
    /// The socket is IPv6 and bound to an IPv4-mapped address (`::ffff:a.b.c.d`).
    pub ipv4_mapped: bool,
    /// IPV6_V6ONLY of an IPv6 socket, when the kernel told it.
    pub v6only: Option<bool>,
    /// The user the socket belongs to (the creator's effective uid).
    pub uid: u32,
    /// That user's name, when the password database has one.
    pub user: Option<String>,
    /// The socket's inode.
    pub inode: u64,
    /// Every process holding it (a forking server's workers share it), by pid.
    pub processes: Vec<ProcessInfo>,
    /// Why no process could be named, when none could.
    pub owner_hidden: Option<String>,
    /// The service: from the process when the process table knows it, else the usual
    /// service of the port number.
    pub service: Option<String>,
    /// The service was recognised from the process (not guessed from the port).
    pub service_from_process: bool,
}

impl Listener {
    /// `127.0.0.1:6379/tcp`, `[::]:22/tcp`.
    pub fn endpoint(&self) -> String {
        format!(
            "{}/{}",
            SocketAddr::new(self.address, self.port),
            self.protocol
        )
    }

    /// The first process holding it.
    pub fn process(&self) -> Option<&ProcessInfo> {
        self.processes.first()
    }

    /// Whether a connection or datagram to `ip` reaches this socket by its binding
    /// (`None`: it depends on the IPv6-only flag, which could not be read).
    pub fn covers(&self, ip: IpAddr) -> Option<bool> {
        let ip = canonical(ip);
        if self.scope != BindScope::AllInterfaces {
            return Some(self.address == ip);
        }
        match (self.families, ip) {
            (Families::Ipv4, IpAddr::V4(_)) | (Families::Dual, _) => Some(true),
            (Families::Ipv6 | Families::Ipv6OrDual, IpAddr::V6(_)) => Some(true),
            (Families::Ipv6OrDual, IpAddr::V4(_)) => None,
            _ => Some(false),
        }
    }
}

/// An established TCP connection this host opened (its local port is no listener's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Connection {
    /// The local end.
    pub local: SocketAddr,
    /// The remote end.
    pub remote: SocketAddr,
    /// The socket's user id.
    pub uid: u32,
    /// That user's name.
    pub user: Option<String>,
    /// The socket's inode.
    pub inode: u64,
    /// Every process holding it.
    pub processes: Vec<ProcessInfo>,
    /// Why no process could be named, when none could.
    pub owner_hidden: Option<String>,
}

/// Everything read from one namespace.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    /// The namespace audited.
    pub namespace: String,
    /// Whether the audit ran as root (without it, other users' processes stay hidden).
    pub privileged: bool,
    /// Listening TCP and bound UDP sockets, by protocol, port and address.
    pub listeners: Vec<Listener>,
    /// Established outbound TCP connections.
    pub outbound: Vec<Connection>,
    /// What could not be read, and what follows from it.
    pub notes: Vec<String>,
}

/// The socket tables of one namespace, as read.
struct Tables {
    tcp: Vec<procfs::net::TcpNetEntry>,
    udp: Vec<procfs::net::UdpNetEntry>,
    v6only: Result<HashMap<u64, bool>, String>,
}

/// Processes by the socket inodes they hold.
struct ProcessTable {
    by_inode: HashMap<u64, Vec<i32>>,
    processes: HashMap<i32, ProcessInfo>,
    /// Processes whose descriptors could not be read.
    unreadable: usize,
}

/// Reads the sockets of `namespace` and the processes that hold them.
pub fn collect(namespace: &Namespace) -> Result<Inventory, AuditError> {
    let tables = match namespace.path() {
        None => read_tables()?,
        Some(path) => read_tables_in(namespace, path)?,
    };
    let privileged = nix::unistd::geteuid().is_root();
    let processes = read_processes();
    let mut users = UserNames::default();
    let mut notes = Vec::new();
    if let Err(reason) = &tables.v6only {
        notes.push(format!(
            "the IPv6-only flag of IPv6 sockets could not be read ({reason}): `::` listeners show ipv6(+ipv4?)"
        ));
    }
    if processes.unreadable > 0 {
        notes.push(format!(
            "the open files of {} processes could not be read{}: sockets they hold show no process",
            processes.unreadable,
            if privileged {
                ""
            } else {
                " (run as root to see them)"
            }
        ));
    }
    let v6only = tables.v6only.as_ref().ok();

    let mut listeners = Vec::new();
    let mut outbound_candidates = Vec::new();
    for entry in &tables.tcp {
        match entry.state {
            TcpState::Listen => {
                listeners.push((Protocol::Tcp, entry.local_address, entry.uid, entry.inode))
            }
            TcpState::Established => outbound_candidates.push(entry),
            _ => {}
        }
    }
    for entry in &tables.udp {
        // A connected UDP socket is a client's; an unconnected bound one receives from anyone.
        if entry.state == UdpState::Close && entry.remote_address.ip().is_unspecified() {
            listeners.push((Protocol::Udp, entry.local_address, entry.uid, entry.inode));
        }
    }

    let mut built: Vec<Listener> = listeners
        .iter()
        .map(|&(protocol, local, uid, inode)| {
            let (address, ipv4_mapped) = match local.ip() {
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => (IpAddr::V4(v4), true),
                    None => (IpAddr::V6(v6), false),
                },
                v4 => (v4, false),
            };
            let is_v6_socket = local.is_ipv6();
            let flag = if is_v6_socket {
                v6only.and_then(|m| m.get(&inode).copied())
            } else {
                None
            };
            let scope = scope_of(address);
            let families = if !is_v6_socket || ipv4_mapped {
                Families::Ipv4
            } else if !address.is_unspecified() {
                Families::Ipv6
            } else {
                match flag {
                    Some(true) => Families::Ipv6,
                    Some(false) => Families::Dual,
                    // An IPv4 wildcard on the same port can only coexist with a v6-only one.
                    None if listeners.iter().any(|&(p, l, _, _)| {
                        p == protocol
                            && l.port() == local.port()
                            && l.ip() == IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                    }) =>
                    {
                        Families::Ipv6
                    }
                    None => Families::Ipv6OrDual,
                }
            };
            let (held_by, owner_hidden) = owners(&processes, inode, uid, privileged);
            let (service, from_process) =
                match held_by.iter().find_map(|p| service_of(&p.name, &p.cmdline)) {
                    Some(service) => (Some(service.to_string()), true),
                    None => (
                        portgate_model::service_name(protocol, local.port()).map(str::to_string),
                        false,
                    ),
                };
            Listener {
                protocol,
                address,
                port: local.port(),
                scope,
                families,
                ipv4_mapped,
                v6only: flag,
                uid,
                user: users.name(uid),
                inode,
                processes: held_by,
                owner_hidden,
                service,
                service_from_process: from_process,
            }
        })
        .collect();
    built.sort_by(|a, b| {
        (a.protocol, a.port, a.address, a.inode).cmp(&(b.protocol, b.port, b.address, b.inode))
    });

    let mut outbound: Vec<Connection> = outbound_candidates
        .into_iter()
        .filter(|c| {
            // Accepted connections arrive on a listening port of this namespace.
            !built.iter().any(|l| {
                l.protocol == Protocol::Tcp
                    && l.port == c.local_address.port()
                    && l.covers(c.local_address.ip()).unwrap_or(true)
            })
        })
        .map(|c| {
            let (held_by, owner_hidden) = owners(&processes, c.inode, c.uid, privileged);
            Connection {
                local: canonical_addr(c.local_address),
                remote: canonical_addr(c.remote_address),
                uid: c.uid,
                user: users.name(c.uid),
                inode: c.inode,
                processes: held_by,
                owner_hidden,
            }
        })
        .collect();
    outbound.sort_by_key(|c| (c.remote, c.local));

    Ok(Inventory {
        namespace: namespace.label(),
        privileged,
        listeners: built,
        outbound,
        notes,
    })
}

fn scope_of(address: IpAddr) -> BindScope {
    if address.is_unspecified() {
        BindScope::AllInterfaces
    } else if address.is_loopback() {
        BindScope::Loopback
    } else {
        BindScope::Interface
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it stands for.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical(addr.ip()), addr.port())
}

fn owners(
    table: &ProcessTable,
    inode: u64,
    uid: u32,
    privileged: bool,
) -> (Vec<ProcessInfo>, Option<String>) {
    let held: Vec<ProcessInfo> = table
        .by_inode
        .get(&inode)
        .map(|pids| {
            pids.iter()
                .filter_map(|pid| table.processes.get(pid).cloned())
                .collect()
        })
        .unwrap_or_default();
    if !held.is_empty() {
        return (held, None);
    }
    let reason = if !privileged && uid != nix::unistd::geteuid().as_raw() {
        "held by another user's process, which this user may not inspect (run as root)"
    } else if table.unreadable > 0 {
        "no readable process holds it (a process whose open files could not be read, another PID namespace or container, or the kernel)"
    } else {
        "no process of this PID namespace holds it (a process in another PID namespace or container, or the kernel)"
    };
    (Vec::new(), Some(reason.to_string()))
}

fn read_tables() -> Result<Tables, AuditError> {
    let info = procfs::current_system_info();
    let read_tcp = |name: &str| {
        let path = format!("/proc/thread-self/net/{name}");
        TcpNetEntries::from_file(&path, info)
            .map(|e| e.0)
            .map_err(|source| AuditError::Proc { path, source })
    };
    let read_udp = |name: &str| {
        let path = format!("/proc/thread-self/net/{name}");
        UdpNetEntries::from_file(&path, info)
            .map(|e| e.0)
            .map_err(|source| AuditError::Proc { path, source })
    };
    let mut tcp = read_tcp("tcp")?;
    let mut udp = read_udp("udp")?;
    // A kernel without IPv6 has no tcp6/udp6 tables.
    if std::path::Path::new("/proc/thread-self/net/tcp6").exists() {
        tcp.extend(read_tcp("tcp6")?);
        udp.extend(read_udp("udp6")?);
    }
    let v6only = crate::diag::v6only_by_inode().map_err(|e| e.to_string());
    Ok(Tables { tcp, udp, v6only })
}

/// Reads the tables on a thread that entered the namespace, so the rest of the process
/// stays where it is.
fn read_tables_in(namespace: &Namespace, path: String) -> Result<Tables, AuditError> {
    let label = namespace.label();
    let fail = |reason: String| AuditError::Namespace {
        namespace: label.clone(),
        path: path.clone(),
        reason,
    };
    let file = std::fs::File::open(&path).map_err(|e| fail(e.to_string()))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    fail(format!(
                        "{e}{}",
                        if nix::unistd::geteuid().is_root() {
                            ""
                        } else {
                            " (entering a namespace needs root)"
                        }
                    ))
                })?;
                read_tables()
            })
            .join()
            .unwrap_or_else(|_| Err(fail("the reading thread panicked".to_string())))
    })
}

fn read_processes() -> ProcessTable {
    let mut table = ProcessTable {
        by_inode: HashMap::new(),
        processes: HashMap::new(),
        unreadable: 0,
    };
    let Ok(all) = procfs::process::all_processes() else {
        return table;
    };
    let uptime = read_uptime();
    let ticks = procfs::ticks_per_second().max(1);
    let mut users = UserNames::default();
    for process in all.flatten() {
        let fds = match process.fd() {
            Ok(fds) => fds,
            // Gone since the listing, or a kernel thread: nothing to hold.
            Err(procfs::ProcError::NotFound(_)) => continue,
            Err(_) => {
                table.unreadable += 1;
                continue;
            }
        };
        let mut holds = false;
        for fd in fds.flatten() {
            if let procfs::process::FDTarget::Socket(inode) = fd.target {
                table.by_inode.entry(inode).or_default().push(process.pid);
                holds = true;
            }
        }
        if !holds {
            continue;
        }
        let stat = process.stat().ok();
        let uid = process.uid().unwrap_or(u32::MAX);
        let age_s = match (&stat, uptime) {
            (Some(stat), Some(up)) => Some(up.saturating_sub(stat.starttime / ticks)),
            _ => None,
        };
        table.processes.insert(
            process.pid,
            ProcessInfo {
                pid: process.pid,
                name: stat.map(|s| s.comm).unwrap_or_default(),
                cmdline: process.cmdline().unwrap_or_default(),
                uid,
                user: users.name(uid),
                age_s,
            },
        );
    }
    for pids in table.by_inode.values_mut() {
        pids.sort_unstable();
        pids.dedup();
    }
    table
}

/// Seconds since boot.
fn read_uptime() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let seconds: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(seconds as u64)
}

/// uid → name, asked of the password database once per uid.
#[derive(Default)]
struct UserNames(BTreeMap<u32, Option<String>>);

impl UserNames {
    fn name(&mut self, uid: u32) -> Option<String> {
        self.0
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone()
    }
}
