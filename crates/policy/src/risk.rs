//! The risk table (`data/risk.toml`): how severe an exposed service is, decided by the
//! service detected on the port before the port number.

use portgate_model::{Protocol, Severity};
use serde::Deserialize;
use std::sync::OnceLock;

/// Severity of a service in no entry of the table.
pub const UNKNOWN_SERVICE_SEVERITY: Severity = Severity::Medium;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RiskFile {
    service: Vec<RiskEntry>,
    #[serde(default)]
    application: Vec<AppRiskEntry>,
}

/// One line of the application table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRiskEntry {
    /// What kind of surface it is.
    pub category: String,
    /// Application identifiers it covers.
    pub ids: Vec<String>,
    /// Severity of its findings.
    pub severity: Severity,
}

/// Severity of an application in no entry of the application table.
pub const UNKNOWN_APPLICATION_SEVERITY: Severity = Severity::High;

/// One line of the risk table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskEntry {
    /// What kind of surface it is (`database`, `remote shell`, ...).
    pub category: String,
    /// Detected service names it covers.
    pub names: Vec<String>,
    /// Substrings of detected product names it covers (lower case).
    #[serde(default)]
    pub products: Vec<String>,
    /// The usual TCP ports, used when nothing is detected.
    pub ports: Vec<u16>,
    /// Severity when exposed without approval.
    pub severity: Severity,
    /// `role` tag values that expect the service (severity one step lower there).
    #[serde(default)]
    pub roles: Vec<String>,
    /// A carrier (HTTP, TLS) that other services speak over.
    #[serde(default)]
    pub generic: bool,
}

/// The risk of one exposed port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Risk {
    /// How severe.
    pub severity: Severity,
    /// What kind of surface (`database`, ...); `unknown service` when no entry matched.
    pub category: String,
}

const RISK_TOML: &str = include_str!("../data/risk.toml");

fn risk_file() -> &'static RiskFile {
    static FILE: OnceLock<RiskFile> = OnceLock::new();
    // Compiled in and checked by this crate's tests: a failure is a build defect.
    FILE.get_or_init(|| toml::from_str::<RiskFile>(RISK_TOML).expect("data/risk.toml is valid"))
}

/// The table, parsed once from the data compiled into the binary.
pub fn risk_table() -> &'static [RiskEntry] {
    &risk_file().service
}

/// The application table.
pub fn application_table() -> &'static [AppRiskEntry] {
    &risk_file().application
}

/// The risk of an application's findings, by its identifier.
pub fn assess_application(id: &str) -> Risk {
    match application_table()
        .iter()
        .find(|e| e.ids.iter().any(|x| x.eq_ignore_ascii_case(id)))
    {
        Some(e) => Risk {
            severity: e.severity,
            category: e.category.clone(),
        },
        None => Risk {
            severity: UNKNOWN_APPLICATION_SEVERITY,
            category: "application".to_string(),
        },
    }
}

fn by_product(product: &str) -> Option<&'static RiskEntry> {
    let product = product.to_ascii_lowercase();
    risk_table()
        .iter()
        .find(|e| e.products.iter().any(|p| product.contains(p.as_str())))
}

fn by_name(service: &str) -> Option<&'static RiskEntry> {
    let service = service.to_ascii_lowercase();
    risk_table().iter().find(|e| e.names.contains(&service))
}

fn by_port(protocol: Protocol, port: u16) -> Option<&'static RiskEntry> {
    if protocol != Protocol::Tcp {
        return None;
    }
    risk_table().iter().find(|e| e.ports.contains(&port))
}

/// The risk of an exposed port: from the detected product, else the detected service,
/// else the port number; generic carriers (HTTP, TLS) keep the port's risk when it is
/// higher. `role` (the asset's `role` tag) lowers the severity of a service it expects.
pub fn assess(
    service: Option<&str>,
    product: Option<&str>,
    protocol: Protocol,
    port: u16,
    role: Option<&str>,
) -> Risk {
    let detected = product
        .and_then(by_product)
        .or_else(|| service.and_then(by_name));
    let entry = match detected {
        Some(entry) if entry.generic => match by_port(protocol, port) {
            Some(port_entry) if port_entry.severity > entry.severity => Some(port_entry),
            _ => Some(entry),
        },
        Some(entry) => Some(entry),
        None if service.is_some() => None,
        None => by_port(protocol, port),
    };
    match entry {
        Some(entry) => {
            let expected =
                role.is_some_and(|r| entry.roles.iter().any(|x| x.eq_ignore_ascii_case(r)));
            Risk {
                severity: if expected {
                    entry.severity.lowered()
                } else {
                    entry.severity
                },
                category: entry.category.clone(),
            }
        }
        None => Risk {
            severity: UNKNOWN_SERVICE_SEVERITY,
            category: "unknown service".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Case<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        u16,
        Option<&'a str>,
        Severity,
    );

    #[test]
    fn the_table_loads_and_covers_the_design() {
        let table = risk_table();
        assert!(table.len() >= 15);
        let cases: &[Case<'_>] = &[
            // Port numbers alone, as in the design's table.
            (None, None, 23, None, Severity::Critical),
            (None, None, 22, None, Severity::Medium),
            (None, None, 3306, None, Severity::Critical),
            (None, None, 5432, None, Severity::Critical),
            (None, None, 1433, None, Severity::Critical),
            (None, None, 1521, None, Severity::Critical),
            (None, None, 27017, None, Severity::Critical),
            (None, None, 6379, None, Severity::Critical),
            (None, None, 11211, None, Severity::Critical),
            (None, None, 9200, None, Severity::Critical),
            (None, None, 9300, None, Severity::Critical),
            (None, None, 8086, None, Severity::Critical),
            (None, None, 2379, None, Severity::Critical),
            (None, None, 2375, None, Severity::Critical),
            (None, None, 3389, None, Severity::High),
            (None, None, 5900, None, Severity::High),
            (None, None, 8888, None, Severity::Critical),
            (None, None, 6443, None, Severity::Critical),
            (None, None, 10250, None, Severity::Critical),
            (None, None, 25, None, Severity::Medium),
            (None, None, 995, None, Severity::Medium),
            (None, None, 80, None, Severity::Low),
            (None, None, 8443, None, Severity::Low),
            (None, None, 31337, None, Severity::Medium),
            (Some("mqtt"), None, 1883, None, Severity::High),
            (None, None, 4369, None, Severity::High),
            (Some("amqp"), None, 5672, Some("broker"), Severity::Medium),
            // The detected service decides: Redis on 8080 is Redis.
            (Some("redis"), None, 8080, None, Severity::Critical),
            // HTTP on 6379 keeps the port's risk (a generic carrier never lowers it).
            (Some("http"), None, 6379, None, Severity::Critical),
            (Some("http"), None, 8000, None, Severity::Low),
            // Elasticsearch speaks HTTP; the product decides.
            (
                Some("http"),
                Some("Elasticsearch"),
                8000,
                None,
                Severity::Critical,
            ),
            // SSH on 2222, an unknown service on 80.
            (Some("ssh"), None, 2222, None, Severity::Medium),
            (Some("gopher"), None, 80, None, Severity::Medium),
            // Role tags lower what the role expects, and only that.
            (
                Some("postgresql"),
                None,
                5432,
                Some("database"),
                Severity::High,
            ),
            (Some("redis"), None, 6379, Some("web"), Severity::Critical),
        ];
        for (service, product, port, role, want) in cases {
            let got = assess(*service, *product, Protocol::Tcp, *port, *role);
            assert_eq!(
                got.severity, *want,
                "{service:?} {product:?} {port} {role:?}"
            );
        }
    }
}
