//! Test lab for portgate: throw-away "hosts" whose port states are known exactly.
//!
//! A [`LabHost`] is a Linux network namespace (`pglab-<pid>-<n>`) connected to
//! the root namespace by a veth pair, with TCP listeners on its open ports and
//! an iptables profile ([`Profile`]) that makes the remaining ports closed
//! (RST), filtered (silently dropped) or lossy. Optionally
//! ([`LabConfig::udp_services`]) it runs real UDP services: dnsmasq (DNS, 53),
//! chronyd (NTP, 123) and snmpd (SNMP, 161). [`GroundTruth`] says what a
//! correct scanner must report for every TCP and UDP port. Integration tests
//! use the library; the benchmark script uses the `portgate-lab` binary.
//!
//! Optionally ([`LabConfig::delay`]) a delay line holds every packet that
//! reaches the lab host for a configured time, with jitter, random loss and a
//! packet-rate ceiling ([`DelayConfig`]), so scanners meet a real round-trip
//! time: an `iptables -t mangle -A PREROUTING -i <veth> -j NFQUEUE` rule (and its
//! ip6tables twin) inside the namespace hands those packets to a thread of
//! this process that releases them when due ([`DelayStats`] says how well it
//! kept up).
//!
//! A [`LabNetwork`] is one namespace that answers for every address of a
//! prefix of 198.19.0.0/16 (up to a /20: 4096 scan targets), each address a
//! dark, RST-only, firewalled or open host with its own open ports drawn from
//! a seed, all enforced by one nftables ruleset; [`NetworkTruth`] is its
//! ground truth. Lab hosts' /30s stay inside 198.18.0.0/16, so the two never
//! collide.
//!
//! # What this crate must not do
//!
//! It must never send packets to, or configure, any address outside
//! 198.18.0.0/15 (RFC 2544 benchmarking range) and 2001:db8::/32 (RFC 3849
//! documentation range): every address it derives lies in those ranges (see
//! [`in_lab_range`]), and the only traffic it generates itself is readiness
//! probes to the lab host's own addresses (or to addresses of a lab
//! network's prefix). It only creates and deletes
//! namespaces named `pglab-*` and veth interfaces named `pgh*`/`pgn*`, never
//! touches the root namespace's firewall (its own rules live in the lab
//! namespace's filter table and, with a delay line, its mangle table's
//! PREROUTING chain; a lab network's nftables table lives in its namespace),
//! routes (other than the veth's own connected routes and, for a
//! [`LabNetwork`], one route to its 198.19.0.0/16 prefix via its own veth,
//! added only after checking the prefix against every root-namespace address
//! and route, and deleted at teardown), sysctls or other interfaces, and
//! never kills a process
//! other than the UDP service daemons it started itself (by their pid).
//! Creating a lab needs root (CAP_NET_ADMIN); see [`skip_reason`] and
//! [`udp_services_skip_reason`].

mod addr;
mod cmd;
mod config;
mod delay;
mod error;
mod firewall;
mod host;
mod listener;
mod network;
mod rng;
mod services;
mod zoo;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use addr::in_lab_range;
use addr::{SUBNET_COUNT, Subnet, candidate_index};
pub use delay::{DEFAULT_DELAY_SEED, DelayConfig, DelayLine, DelayStats, MAX_DELAY};
use listener::ListenerHandle;
pub use network::{
    DEFAULT_DARK_SHARE, DEFAULT_FIREWALLED_SHARE, DEFAULT_OPEN_SHARE, DEFAULT_RST_ONLY_SHARE,
    HostKind, HostTruth, KindCounts, LabNetwork, MAX_NETWORK_HOSTS, MAX_OPEN_PER_HOST,
    MAX_REJECT_PER_HOST, NetworkConfig, NetworkPrefix, NetworkTruth, common_ports,
    network_skip_reason,
};
use services::Services;
pub use zoo::{
    Transport, ZOO_HOST_NAME, ZOO_PACKAGES, Zoo, ZooApplication, ZooService, ZooSkip,
    installed_version, upstream_version, zoo_skip_reason,
};

/// The 17 ports that are open by default.
pub const DEFAULT_OPEN_PORTS: [u16; 17] = [
    1, 22, 80, 443, 3306, 5432, 6379, 8080, 8443, 9090, 11211, 27017, 31337, 40000, 50000, 60000,
    65535,
];

/// The ports that answer with a TCP reset by default under [`Profile::Firewalled`].
pub const DEFAULT_REJECT_PORTS: [u16; 5] = [113, 2000, 7000, 12345, 54321];

/// The UDP ports served by real daemons when [`LabConfig::udp_services`] is on:
/// DNS (dnsmasq), NTP (chronyd), SNMP (snmpd).
pub const UDP_SERVICE_PORTS: [u16; 3] =
    [services::DNS_PORT, services::NTP_PORT, services::SNMP_PORT];

/// The UDP ports that answer ICMP port unreachable by default under
/// [`Profile::Firewalled`].
pub const DEFAULT_UDP_REJECT_PORTS: [u16; 2] = [1000, 1001];

/// The `sysDescr.0` value the lab's SNMP agent reports.
pub const SNMP_SYS_DESCR: &str = services::SNMP_SYS_DESCR;

/// The name the lab's DNS server resolves to the lab host's own addresses.
pub const DNS_HOST_RECORD: &str = services::DNS_HOST_RECORD;

/// Default probability that [`Profile::Lossy`] drops an incoming SYN.
pub const DEFAULT_LOSS_PROBABILITY: f64 = 0.02;

/// Prefix of every namespace this crate creates.
pub const NAMESPACE_PREFIX: &str = "pglab-";

/// How long [`LabHost::start`] waits for the host to become reachable.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Tools that must be in `PATH`.
const REQUIRED_TOOLS: [&str; 3] = ["ip", "iptables-restore", "ip6tables-restore"];

/// Per-process counter for namespace names.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Serialises subnet allocation between lab hosts of this process.
static ALLOCATION: Mutex<()> = Mutex::new(());

pub use config::*;
pub use error::*;
pub use host::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_open_and_lossy() {
        for profile in [Profile::Open, Profile::Lossy] {
            let truth = LabConfig::new(profile)
                .reject_ports([113])
                .validate()
                .expect("valid");
            assert_eq!(truth.expected(22), ExpectedState::Open);
            assert_eq!(truth.expected(65535), ExpectedState::Open);
            assert_eq!(truth.expected(113), ExpectedState::Closed);
            assert_eq!(truth.expected(23), ExpectedState::Closed);
            assert!(
                truth.reject.is_empty(),
                "reject ports only exist when firewalled"
            );
        }
    }

    #[test]
    fn expected_firewalled() {
        let truth = LabConfig::new(Profile::Firewalled)
            .validate()
            .expect("valid");
        assert_eq!(truth.open.len(), 17);
        assert_eq!(truth.reject.len(), 5);
        assert_eq!(truth.expected(1), ExpectedState::Open);
        assert_eq!(truth.expected(443), ExpectedState::Open);
        assert_eq!(truth.expected(113), ExpectedState::Closed);
        assert_eq!(truth.expected(54321), ExpectedState::Closed);
        assert_eq!(truth.expected(23), ExpectedState::Filtered);
        assert_eq!(truth.expected(0), ExpectedState::Filtered);
    }

    #[test]
    fn expected_udp_per_profile() {
        for profile in [Profile::Open, Profile::Lossy] {
            let truth = LabConfig::new(profile)
                .udp_services(true)
                .udp_reject_ports([1000])
                .validate()
                .expect("valid");
            assert_eq!(truth.udp_open, BTreeSet::from(UDP_SERVICE_PORTS));
            assert!(truth.udp_reject.is_empty(), "only firewalled rejects");
            for port in UDP_SERVICE_PORTS {
                assert_eq!(truth.expected_udp(port), ExpectedUdpState::Open);
            }
            assert_eq!(truth.expected_udp(1000), ExpectedUdpState::Closed);
            assert_eq!(truth.expected_udp(69), ExpectedUdpState::Closed);
            // TCP is untouched: 53 is closed like any non-open port.
            assert_eq!(truth.expected(53), ExpectedState::Closed);
        }
        let truth = LabConfig::new(Profile::Firewalled)
            .udp_services(true)
            .validate()
            .expect("valid");
        assert_eq!(truth.udp_reject, BTreeSet::from(DEFAULT_UDP_REJECT_PORTS));
        assert_eq!(truth.expected_udp(53), ExpectedUdpState::Open);
        assert_eq!(truth.expected_udp(123), ExpectedUdpState::Open);
        assert_eq!(truth.expected_udp(161), ExpectedUdpState::Open);
        assert_eq!(truth.expected_udp(1000), ExpectedUdpState::Closed);
        assert_eq!(truth.expected_udp(1001), ExpectedUdpState::Closed);
        assert_eq!(truth.expected_udp(69), ExpectedUdpState::OpenFiltered);
        assert_eq!(truth.expected_udp(113), ExpectedUdpState::OpenFiltered);
        assert_eq!(truth.expected(53), ExpectedState::Filtered);
        // Without services nothing is open over UDP.
        let truth = LabConfig::new(Profile::Open).validate().expect("valid");
        assert!(truth.udp_open.is_empty());
        assert_eq!(truth.expected_udp(53), ExpectedUdpState::Closed);
    }

    #[test]
    fn udp_truth_serializes() {
        assert_eq!(
            serde_json::to_string(&ExpectedUdpState::OpenFiltered).expect("serialize"),
            "\"open|filtered\""
        );
        assert_eq!(ExpectedUdpState::OpenFiltered.to_string(), "open|filtered");
        assert_eq!(ExpectedUdpState::Closed.to_string(), "closed");
        // Ground truth written before UDP existed still parses.
        let old = r#"{"profile":"open","open":[22],"reject":[]}"#;
        let truth: GroundTruth = serde_json::from_str(old).expect("parse");
        assert!(truth.udp_open.is_empty() && truth.udp_reject.is_empty());
    }

    #[test]
    fn defaults() {
        let open = LabConfig::new(Profile::Open);
        assert_eq!(open.open_ports, DEFAULT_OPEN_PORTS);
        assert!(open.reject_ports.is_empty());
        assert_eq!(open.loss_probability, 0.0);
        let lossy = LabConfig::new(Profile::Lossy);
        assert_eq!(lossy.loss_probability, DEFAULT_LOSS_PROBABILITY);
        let fw = LabConfig::new(Profile::Firewalled);
        assert_eq!(fw.reject_ports, DEFAULT_REJECT_PORTS);
        assert_eq!(LabConfig::default().profile, Profile::Open);
        assert!(!open.udp_services);
        assert!(open.udp_reject_ports.is_empty());
        assert_eq!(open.icmp_ratelimit_ms, None);
        assert_eq!(open.delay, None);
        let delayed =
            LabConfig::new(Profile::Open).delay(DelayConfig::new(Duration::from_millis(80)));
        assert_eq!(
            delayed.delay.map(|d| d.delay),
            Some(Duration::from_millis(80))
        );
        assert!(delayed.validate().is_ok());
        assert_eq!(fw.udp_reject_ports, DEFAULT_UDP_REJECT_PORTS);
        assert_eq!(
            LabConfig::new(Profile::Open)
                .icmp_ratelimit_ms(0)
                .icmp_ratelimit_ms,
            Some(0)
        );
    }

    #[test]
    fn invalid_configs() {
        let cases = [
            LabConfig::new(Profile::Open).open_ports([0, 22]),
            LabConfig::new(Profile::Firewalled).reject_ports([22]),
            LabConfig::new(Profile::Lossy).loss_probability(1.5),
            LabConfig::new(Profile::Lossy).loss_probability(f64::NAN),
            LabConfig::new(Profile::Open).greeting(23, b"hi".to_vec()),
            LabConfig::new(Profile::Firewalled).udp_reject_ports([0]),
            LabConfig::new(Profile::Firewalled)
                .udp_services(true)
                .udp_reject_ports([123]),
            LabConfig::new(Profile::Open)
                .open_ports([22, 53])
                .udp_services(true),
            LabConfig::new(Profile::Open).icmp_ratelimit_ms(u32::MAX),
            LabConfig::new(Profile::Open)
                .delay(DelayConfig::new(Duration::from_millis(5)).jitter(Duration::from_millis(6))),
            LabConfig::new(Profile::Open).delay(DelayConfig::new(Duration::ZERO).loss(2.0)),
        ];
        for config in cases {
            assert!(
                matches!(config.validate(), Err(LabError::InvalidConfig(_))),
                "{config:?} must be invalid"
            );
        }
    }

    #[test]
    fn profile_text_round_trip() {
        for profile in Profile::ALL {
            assert_eq!(profile.to_string().parse::<Profile>(), Ok(profile));
            let json = serde_json::to_string(&profile).expect("serialize");
            assert_eq!(json, format!("\"{profile}\""));
            assert_eq!(
                serde_json::from_str::<Profile>(&json).expect("parse"),
                profile
            );
        }
        assert_eq!("Firewalled".parse::<Profile>(), Ok(Profile::Firewalled));
        assert!("closed".parse::<Profile>().is_err());
        assert_eq!(
            serde_json::to_string(&ExpectedState::Filtered).expect("serialize"),
            "\"filtered\""
        );
    }

    #[test]
    fn namespace_pid_parsing() {
        assert_eq!(namespace_pid("pglab-1234-0"), Some(1234));
        assert_eq!(namespace_pid("pglab-1234-17"), Some(1234));
        assert_eq!(namespace_pid("pglab-x-1"), None);
        assert_eq!(namespace_pid("pglab-1234"), None);
        assert_eq!(namespace_pid("other-1234-1"), None);
    }
}
