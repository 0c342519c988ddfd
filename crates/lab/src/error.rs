//! Why a lab could not be made, and why a test cannot use one here.

use crate::*;

/// Why a lab host could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// The process is not root (euid != 0); namespaces need CAP_NET_ADMIN.
    #[error("the lab needs root (CAP_NET_ADMIN) to create network namespaces")]
    NotRoot,
    /// A required program is not installed.
    #[error("required tool `{tool}` not found in PATH")]
    ToolMissing {
        /// The program name.
        tool: String,
    },
    /// An external command exited unsuccessfully.
    #[error("command `{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// A listener could not be bound inside the namespace.
    #[error("cannot listen on [::]:{port} in namespace {namespace}: {source}")]
    Bind {
        /// The port.
        port: u16,
        /// The namespace.
        namespace: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Some other I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The listener thread failed or did not report in time.
    #[error("listener thread of namespace {namespace}: {reason}")]
    Listener {
        /// The namespace.
        namespace: String,
        /// What went wrong.
        reason: String,
    },
    /// The configuration is inconsistent.
    #[error("invalid lab configuration: {0}")]
    InvalidConfig(String),
    /// Every candidate /30 in 198.18.0.0/16 is in use.
    #[error("no free subnet in 198.18.0.0/16 after {attempts} attempts")]
    NoFreeSubnet {
        /// How many subnets were tried.
        attempts: u32,
    },
    /// The lab host did not become reachable from the root namespace in time.
    #[error("{address} not reachable from the root namespace within {timeout:?}: {last_error}")]
    NotReachable {
        /// The probed address.
        address: SocketAddr,
        /// How long it was tried.
        timeout: Duration,
        /// The last connect error.
        last_error: String,
    },
    /// A UDP service daemon exited or did not answer in time.
    #[error("UDP service {service}: {reason}")]
    Service {
        /// The daemon (`dnsmasq`, `chronyd`, `snmpd`).
        service: String,
        /// What went wrong, with the end of its log.
        reason: String,
    },
    /// A zoo daemon exited or did not accept connections in time.
    #[error("zoo daemon {daemon}: {reason}")]
    ZooDaemon {
        /// The daemon (`sshd`, `nginx`, ...).
        daemon: String,
        /// What went wrong, with the end of its log.
        reason: String,
    },
    /// The delay line failed to start or to bind its NFQUEUE queue.
    #[error("delay line of namespace {namespace}: {reason}")]
    DelayLine {
        /// The namespace.
        namespace: String,
        /// What went wrong.
        reason: String,
    },
    /// No /`len` of 198.19.0.0/16 is free for a [`LabNetwork`] (every
    /// candidate overlaps an address or route of the root namespace).
    #[error("no free /{len} in 198.19.0.0/16 for a lab network after {attempts} attempts")]
    NoFreePrefix {
        /// The prefix length wanted.
        len: u8,
        /// How many prefixes were tried.
        attempts: u32,
    },
    /// A command printed something this crate could not understand.
    #[error("unexpected output from `{command}`: {detail}")]
    UnexpectedOutput {
        /// The command line.
        command: String,
        /// What was wrong.
        detail: String,
    },
}

/// For tests: `Some(reason)` when the lab cannot run here (not root, or a
/// required tool is missing). Tests pass the reason to `portgate_test_support::skip`
/// (which prints `SKIP <test>: <reason>`, or fails under strict mode) and return.
pub fn skip_reason() -> Option<String> {
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        return Some(format!(
            "not root (euid {euid}); the lab needs CAP_NET_ADMIN to create network namespaces"
        ));
    }
    REQUIRED_TOOLS
        .iter()
        .find(|tool| !cmd::tool_available(tool))
        .map(|tool| format!("required tool `{tool}` not found in PATH"))
}

/// Like [`skip_reason`], for labs with [`LabConfig::udp_services`]: also
/// `Some(reason)` when dnsmasq, chronyd or snmpd is not installed (Debian
/// packages `dnsmasq-base`, `chrony`, `snmpd`).
pub fn udp_services_skip_reason() -> Option<String> {
    skip_reason().or_else(|| {
        services::TOOLS
            .iter()
            .find(|tool| !cmd::tool_available(tool))
            .map(|tool| format!("UDP service program `{tool}` not found in PATH"))
    })
}
