//! A lab host: its namespace, veth pair, listeners and firewall, made and torn down.

use crate::*;

/// Everything that has to be undone, in creation order. Dropping it undoes it.
#[derive(Debug, Default)]
pub(crate) struct Resources {
    pub(crate) namespace: Option<String>,
    pub(crate) host_if: Option<String>,
    pub(crate) listener: Option<ListenerHandle>,
    pub(crate) services: Option<Services>,
    pub(crate) delay: Option<DelayLine>,
}

impl Resources {
    /// Stops the delay line (its iptables rules first, then its thread), the
    /// listeners and the UDP service daemons, deletes the veth and the
    /// namespace. Idempotent; never panics.
    pub(crate) fn teardown(&mut self) {
        // The delay line was set up last and goes first: its rules must not
        // outlive its thread, and its thread lives in the namespace.
        if let Some(mut delay) = self.delay.take() {
            delay.stop();
        }
        // The listener thread and the daemons are inside the namespace and
        // keep it alive.
        if let Some(mut listener) = self.listener.take() {
            listener.stop();
        }
        if let Some(mut services) = self.services.take() {
            services.stop();
        }
        // Deleting one end deletes both; doing it explicitly makes the
        // host-side address disappear at once instead of asynchronously.
        if let Some(host_if) = self.host_if.take() {
            let _ = cmd::run_quiet(&["ip", "link", "del", &host_if]);
        }
        if let Some(namespace) = self.namespace.take()
            && let Err(err) = cmd::run(&["ip", "netns", "del", &namespace])
        {
            eprintln!("portgate-lab: warning: could not delete namespace {namespace}: {err}");
        }
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// A lab host: a network namespace with listeners, optional UDP services and
/// a firewall profile.
///
/// Dropping it stops the listeners and the service daemons and deletes the
/// namespace (the veth pair goes with it).
#[derive(Debug)]
pub struct LabHost {
    pub(crate) resources: Resources,
    pub(crate) namespace: String,
    pub(crate) subnet: Subnet,
    pub(crate) host_if: String,
    pub(crate) ns_if: String,
    pub(crate) target_mac: String,
    pub(crate) truth: GroundTruth,
    pub(crate) loss_probability: f64,
    pub(crate) greetings: BTreeMap<u16, Vec<u8>>,
    pub(crate) icmp_ratelimit_ms: Option<u32>,
}

impl LabHost {
    /// Creates the namespace, veth pair, addresses, listeners, UDP services
    /// and firewall rules; returns once listeners accept, every UDP service
    /// answers its query on both addresses, and the rules are in place.
    ///
    /// On failure everything created so far is removed again.
    pub fn start(config: LabConfig) -> Result<LabHost, LabError> {
        let truth = config.validate()?;
        if !nix::unistd::geteuid().is_root() {
            return Err(LabError::NotRoot);
        }
        let service_tools: &[&str] = if config.udp_services {
            &services::TOOLS
        } else {
            &[]
        };
        let sysctl_tool: &[&str] = if config.icmp_ratelimit_ms.is_some() {
            &["sysctl"]
        } else {
            &[]
        };
        let delay_tools: &[&str] = if config.delay.is_some() {
            &["iptables", "ip6tables"]
        } else {
            &[]
        };
        if let Some(tool) = REQUIRED_TOOLS
            .iter()
            .chain(service_tools)
            .chain(sysctl_tool)
            .chain(delay_tools)
            .find(|t| !cmd::tool_available(t))
        {
            return Err(LabError::ToolMissing {
                tool: (*tool).to_owned(),
            });
        }

        let mut resources = Resources::default();
        let (namespace, counter) = create_namespace()?;
        resources.namespace = Some(namespace.clone());
        let subnet = create_veth(counter)?;
        let host_if = subnet.host_if();
        let ns_if = subnet.ns_if();
        resources.host_if = Some(host_if.clone());

        configure_link(&namespace, subnet)?;
        let target_mac = read_mac(&namespace, &ns_if)?;
        if let Some(ms) = config.icmp_ratelimit_ms {
            set_icmp_ratelimit(&namespace, ms)?;
        }

        let ports: Vec<u16> = truth.open.iter().copied().collect();
        resources.listener = Some(listener::spawn(
            &namespace,
            ports,
            config.greetings.clone(),
        )?);

        // Probe before the firewall goes up, so a lossy or firewalled profile
        // cannot get in the way of the readiness check.
        let probe_port = truth.open.first().copied();
        wait_reachable(IpAddr::V4(subnet.ns_v4()), probe_port)?;
        wait_reachable(IpAddr::V6(subnet.ns_v6()), probe_port)?;

        if config.udp_services {
            let services = resources.services.insert(Services::start(
                &namespace,
                subnet.ns_v4(),
                subnet.ns_v6(),
            )?);
            services.wait_ready(subnet.ns_v4(), subnet.ns_v6(), READY_TIMEOUT)?;
        }

        let hidden_tcp = config.hidden_tcp_ports();
        firewall::apply(
            &namespace,
            truth.profile,
            firewall::Ports {
                open: &truth.open,
                reject: &truth.reject,
                udp_open: &truth.udp_open,
                udp_reject: &truth.udp_reject,
                tcp_hidden: &hidden_tcp,
            },
            config.effective_loss(),
        )?;

        // Last, so the readiness checks above were not delayed; nothing
        // probes through it (a lossy delay line could fail any probe).
        if let Some(delay) = config.delay {
            resources.delay = Some(DelayLine::start(&namespace, &ns_if, delay)?);
        }

        Ok(LabHost {
            resources,
            namespace,
            subnet,
            host_if,
            ns_if,
            target_mac,
            truth,
            loss_probability: config.effective_loss(),
            greetings: config.greetings,
            icmp_ratelimit_ms: config.icmp_ratelimit_ms,
        })
    }

    /// The namespace-side IPv4 address (scan target).
    pub fn ipv4(&self) -> Ipv4Addr {
        self.subnet.ns_v4()
    }

    /// The namespace-side IPv6 address (scan target).
    pub fn ipv6(&self) -> Ipv6Addr {
        self.subnet.ns_v6()
    }

    /// The root-namespace side IPv4 address (scan source).
    pub fn host_ipv4(&self) -> Ipv4Addr {
        self.subnet.host_v4()
    }

    /// The root-namespace side IPv6 address (scan source).
    pub fn host_ipv6(&self) -> Ipv6Addr {
        self.subnet.host_v6()
    }

    /// The root-namespace side veth interface (`pgh<hex>`).
    pub fn host_interface(&self) -> &str {
        &self.host_if
    }

    /// The namespace side veth interface (`pgn<hex>`, lives in the namespace).
    pub fn ns_interface(&self) -> &str {
        &self.ns_if
    }

    /// MAC address of the namespace-side veth (masscan's `--router-mac`).
    pub fn target_mac(&self) -> &str {
        &self.target_mac
    }

    /// The namespace name (`pglab-<pid>-<n>`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The state of every port.
    pub fn truth(&self) -> &GroundTruth {
        &self.truth
    }

    /// The SYN drop probability in effect (0 unless the profile is lossy).
    pub fn loss_probability(&self) -> f64 {
        self.loss_probability
    }

    /// The greetings sent by open ports.
    pub fn greetings(&self) -> &BTreeMap<u16, Vec<u8>> {
        &self.greetings
    }

    /// The ICMP rate limit set in the namespace, in milliseconds (`None`:
    /// the kernel default).
    pub fn icmp_ratelimit_ms(&self) -> Option<u32> {
        self.icmp_ratelimit_ms
    }

    /// The delay line's configuration, if the host has one.
    pub fn delay_config(&self) -> Option<&DelayConfig> {
        self.resources.delay.as_ref().map(DelayLine::config)
    }

    /// The delay line's counters so far (final ones after
    /// [`LabHost::stop_delay`]); `None` without a delay line.
    pub fn delay_stats(&self) -> Option<DelayStats> {
        self.resources.delay.as_ref().map(DelayLine::stats)
    }

    /// The delay line, if the host has one.
    pub fn delay_line(&self) -> Option<&DelayLine> {
        self.resources.delay.as_ref()
    }

    /// Removes the delay line (rules, then thread; held packets are released
    /// at once) and returns its final counters; `None` without a delay line.
    /// Afterwards the host answers without delay, and [`LabHost::delay_stats`]
    /// keeps returning these final counters. Dropping the host does this too.
    pub fn stop_delay(&mut self) -> Option<DelayStats> {
        self.resources.delay.as_mut().map(DelayLine::stop)
    }

    /// `(program, pid)` of each UDP service daemon; empty without
    /// [`LabConfig::udp_services`]. The daemons are gone once the host is
    /// dropped.
    pub fn udp_service_pids(&self) -> Vec<(&'static str, u32)> {
        self.resources
            .services
            .as_ref()
            .map(Services::pids)
            .unwrap_or_default()
    }
}

impl Drop for LabHost {
    fn drop(&mut self) {
        self.resources.teardown();
    }
}

/// Moves the calling thread into the network namespace at `ns_path`
/// (`/var/run/netns/<name>`): every socket it creates afterwards belongs there.
pub(crate) fn enter_namespace(ns_path: &std::path::Path) -> Result<(), LabError> {
    let ns_file = std::fs::File::open(ns_path).map_err(|source| LabError::Io {
        context: format!("opening {}", ns_path.display()),
        source,
    })?;
    nix::sched::setns(&ns_file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|errno| {
        LabError::Io {
            context: format!("setns into {}", ns_path.display()),
            source: io::Error::from(errno),
        }
    })
}

/// Creates `pglab-<pid>-<counter>`, skipping names left over by a dead
/// process that had the same pid.
pub(crate) fn create_namespace() -> Result<(String, u32), LabError> {
    let pid = std::process::id();
    let mut last = None;
    for _ in 0..64 {
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{NAMESPACE_PREFIX}{pid}-{counter}");
        match cmd::run(&["ip", "netns", "add", &name]) {
            Ok(_) => return Ok((name, counter)),
            Err(err) if cmd::is_already_exists(&err) => last = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or_else(|| LabError::InvalidConfig("no namespace name".to_owned())))
}

/// Picks a free /30 and creates the veth pair for it (both ends in the root
/// namespace for now).
pub(crate) fn create_veth(counter: u32) -> Result<Subnet, LabError> {
    // Another thread of this process could pick the same subnet between the
    // check and the creation; veth names (which encode the index) make
    // creation fail for other processes.
    let _guard = ALLOCATION
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let addresses = cmd::run(&["ip", "-o", "addr", "show"])?;
    let mut subnet = Subnet::new(candidate_index(std::process::id(), counter));
    const ATTEMPTS: u32 = 1024;
    for _ in 0..ATTEMPTS.min(u32::from(SUBNET_COUNT)) {
        let in_use = [
            format!("inet {}/", subnet.host_v4()),
            format!("inet {}/", subnet.ns_v4()),
            format!("inet6 {}/", subnet.host_v6()),
            format!("inet6 {}/", subnet.ns_v6()),
        ]
        .iter()
        .any(|needle| addresses.contains(needle.as_str()));
        if !in_use {
            let host_if = subnet.host_if();
            let ns_if = subnet.ns_if();
            match cmd::run(&[
                "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ]) {
                Ok(_) => return Ok(subnet),
                Err(err) if cmd::is_already_exists(&err) => {}
                Err(err) => return Err(err),
            }
        }
        subnet = subnet.next();
    }
    Err(LabError::NoFreeSubnet { attempts: ATTEMPTS })
}

/// Moves the peer into the namespace and configures addresses and links.
pub(crate) fn configure_link(namespace: &str, subnet: Subnet) -> Result<(), LabError> {
    let host_if = subnet.host_if();
    let ns_if = subnet.ns_if();
    let host_v4 = format!("{}/30", subnet.host_v4());
    let ns_v4 = format!("{}/30", subnet.ns_v4());
    let host_v6 = format!("{}/64", subnet.host_v6());
    let ns_v6 = format!("{}/64", subnet.ns_v6());
    let steps: [&[&str]; 8] = [
        &["ip", "link", "set", &ns_if, "netns", namespace],
        &["ip", "addr", "add", &host_v4, "dev", &host_if],
        &[
            "ip", "-6", "addr", "add", &host_v6, "dev", &host_if, "nodad",
        ],
        &["ip", "link", "set", &host_if, "up"],
        &["ip", "-n", namespace, "link", "set", "lo", "up"],
        &["ip", "-n", namespace, "addr", "add", &ns_v4, "dev", &ns_if],
        &[
            "ip", "-n", namespace, "-6", "addr", "add", &ns_v6, "dev", &ns_if, "nodad",
        ],
        &["ip", "-n", namespace, "link", "set", &ns_if, "up"],
    ];
    for step in steps {
        cmd::run(step)?;
    }
    Ok(())
}

/// Sets the ICMP error rate limit of both address families inside `namespace`.
pub(crate) fn set_icmp_ratelimit(namespace: &str, ms: u32) -> Result<(), LabError> {
    for key in ["net.ipv4.icmp_ratelimit", "net.ipv6.icmp.ratelimit"] {
        let setting = format!("{key}={ms}");
        cmd::run(&["ip", "netns", "exec", namespace, "sysctl", "-w", &setting])?;
    }
    Ok(())
}

/// Reads the MAC address of `interface` inside `namespace`.
pub(crate) fn read_mac(namespace: &str, interface: &str) -> Result<String, LabError> {
    let args = [
        "ip", "-n", namespace, "-j", "link", "show", "dev", interface,
    ];
    let out = cmd::run(&args)?;
    let unexpected = |detail: &str| LabError::UnexpectedOutput {
        command: cmd::render(&args),
        detail: detail.to_owned(),
    };
    let json: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| unexpected(&format!("not JSON: {e}")))?;
    json.get(0)
        .and_then(|link| link.get("address"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| unexpected("no \"address\" field"))
}

/// Connects from the root namespace until the host answers (accept or RST).
/// Probes `port` if given, else a port that is certainly closed.
pub(crate) fn wait_reachable(ip: IpAddr, port: Option<u16>) -> Result<(), LabError> {
    if !in_lab_range(ip) {
        // Cannot happen: every address comes from `Subnet`.
        return Err(LabError::InvalidConfig(format!(
            "refusing to probe {ip}: outside 198.18.0.0/15 and 2001:db8::/32"
        )));
    }
    // Without open ports there is no listener; port 9 is then closed for sure.
    let address = SocketAddr::new(ip, port.unwrap_or(9));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let error = match TcpStream::connect_timeout(&address, Duration::from_millis(500)) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(LabError::NotReachable {
                address,
                timeout: READY_TIMEOUT,
                last_error: error.to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deletes `pglab-<pid>-*` namespaces whose process no longer runs (left over
/// by crashed runs). Returns the names removed.
pub fn clean_stale_namespaces() -> Result<Vec<String>, LabError> {
    let listing = cmd::run(&["ip", "netns", "list"])?;
    let mut removed = Vec::new();
    for name in listing.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = namespace_pid(name) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        cmd::run(&["ip", "netns", "del", name])?;
        removed.push(name.to_owned());
    }
    Ok(removed)
}

/// The pid part of a namespace name `pglab-<pid>-<n>`.
pub(crate) fn namespace_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAMESPACE_PREFIX)?;
    let (pid, counter) = rest.split_once('-')?;
    counter.parse::<u32>().ok()?;
    pid.parse().ok()
}
