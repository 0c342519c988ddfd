//! What a check scans: the assets of an environment, their port sets, the scan plan.

use super::*;

impl Manifest {
    /// The environments the assets name, sorted.
    pub fn environments(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .assets
            .iter()
            .filter_map(|a| a.value.environment.as_deref())
            .collect();
        set.into_iter().map(str::to_string).collect()
    }

    /// Checks that `env` (if any) is an environment of the manifest.
    pub fn check_environment(&self, env: Option<&str>) -> Result<(), ManifestError> {
        match env {
            Some(env) if !self.environments().iter().any(|e| e == env) => {
                Err(ManifestError::UnknownEnvironment {
                    file: self.source.clone(),
                    env: env.to_string(),
                    known: self.environments(),
                })
            }
            _ => Ok(()),
        }
    }

    /// The assets checked in `env`: those of that environment and those without one; every
    /// asset when no environment is given.
    pub fn assets_in<'a>(
        &'a self,
        env: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Spanned<Asset>> {
        self.assets
            .iter()
            .filter(move |a| match (env, &a.value.environment) {
                (None, _) | (_, None) => true,
                (Some(env), Some(asset_env)) => env == asset_env,
            })
    }

    /// Where an item of this manifest is written.
    pub fn location<T>(&self, spanned: &Spanned<T>) -> portgate_model::ManifestLocation {
        let (line, column) = position(spanned);
        portgate_model::ManifestLocation {
            file: self.source.clone(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

impl Asset {
    /// The ports to scan on this asset: its own or the default set, plus its approved ports.
    pub fn scan_ports(&self, defaults: &Defaults) -> PortSpec {
        let base = self.ports.as_ref().unwrap_or(&defaults.ports).spec();
        with_approved(base, &self.approved)
    }
}

/// `base` plus every port of `approved`.
pub fn with_approved(base: &PortSpec, approved: &[Spanned<ApprovedPort>]) -> PortSpec {
    let mut tcp: BTreeSet<u16> = base.tcp_ports().iter().copied().collect();
    let mut udp: BTreeSet<u16> = base.udp_ports().iter().copied().collect();
    for a in approved {
        match a.value.protocol {
            ProtocolName::Tcp => tcp.insert(a.value.port),
            ProtocolName::Udp => udp.insert(a.value.port),
        };
    }
    let text = format!("T:{},U:{}", join(&tcp), join(&udp));
    // Built from valid ports, so it parses; empty lists are left out.
    let text = match (tcp.is_empty(), udp.is_empty()) {
        (false, false) => text,
        (false, true) => format!("T:{}", join(&tcp)),
        (true, false) => format!("U:{}", join(&udp)),
        (true, true) => return PortSpec::default(),
    };
    PortSpec::from_str(&text).unwrap_or_default()
}

fn join(ports: &BTreeSet<u16>) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Targets to scan with one port set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanGroup {
    /// The ports.
    pub ports: PortSpec,
    /// The targets, in manifest order.
    pub targets: Vec<TargetSpec>,
}

impl Manifest {
    /// What to scan for a check in `env`: the targets of the selected assets, or only
    /// `only` when given (a target no asset lists is scanned with the default ports and
    /// the globally approved ones), grouped by port set.
    pub fn scan_plan(&self, env: Option<&str>, only: &[TargetSpec]) -> Vec<ScanGroup> {
        let mut groups: Vec<ScanGroup> = Vec::new();
        let mut add = |ports: PortSpec, target: TargetSpec| match groups
            .iter_mut()
            .find(|g| g.ports == ports)
        {
            Some(group) => {
                if !group.targets.contains(&target) {
                    group.targets.push(target);
                }
            }
            None => groups.push(ScanGroup {
                ports,
                targets: vec![target],
            }),
        };
        let for_asset = |asset: &Asset| {
            let ports = asset.scan_ports(&self.defaults);
            with_approved(&ports, &self.approved)
        };
        if only.is_empty() {
            for asset in self.assets_in(env) {
                for target in &asset.value.targets {
                    add(for_asset(&asset.value), target.value.0.clone());
                }
            }
        } else {
            for target in only {
                let asset = self.assets_in(env).find(|a| {
                    a.value
                        .targets
                        .iter()
                        .any(|t| t.value.0.to_string() == target.to_string())
                });
                let ports = match asset {
                    Some(asset) => for_asset(&asset.value),
                    None => with_approved(self.defaults.ports.spec(), &self.approved),
                };
                add(ports, target.clone());
            }
        }
        groups
    }
}
