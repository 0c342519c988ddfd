//! Which service a process runs (`data/process-services.toml`), so a listener's risk follows
//! the service and not only the port number.

use serde::Deserialize;
use std::sync::OnceLock;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    process: Vec<ProcessService>,
}

/// One line of the process table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessService {
    /// Process names (the kernel's `comm`, or the file name of `argv[0]`).
    pub names: Vec<String>,
    /// Substrings of the command line, one of which must be present (when not empty).
    #[serde(default)]
    pub cmdline: Vec<String>,
    /// The service, named as in the risk table.
    pub service: String,
}

const SERVICES_TOML: &str = include_str!("../data/process-services.toml");

/// The table, parsed once from the data compiled into the binary.
pub fn process_services() -> &'static [ProcessService] {
    static TABLE: OnceLock<Vec<ProcessService>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // Compiled in and checked by this crate's tests: a failure is a build defect.
        toml::from_str::<ServiceFile>(SERVICES_TOML)
            .map(|f| f.process)
            .unwrap_or_default()
    })
}

/// The file name of the command line's first word (`/usr/bin/redis-server` → `redis-server`).
pub(crate) fn program_name(cmdline: &[String]) -> Option<&str> {
    let first = cmdline.first()?;
    // Some daemons rewrite argv[0] into a title such as `redis-server 127.0.0.1:6379`.
    let word = first.split_whitespace().next()?;
    let name = word.rsplit('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// The service a process runs, from its name and command line, if the table knows it.
pub fn service_of(name: &str, cmdline: &[String]) -> Option<&'static str> {
    let program = program_name(cmdline);
    let joined = cmdline.join(" ");
    process_services()
        .iter()
        .find(|entry| {
            let named = entry
                .names
                .iter()
                .any(|n| n == name || Some(n.as_str()) == program);
            named && (entry.cmdline.is_empty() || entry.cmdline.iter().any(|c| joined.contains(c)))
        })
        .map(|entry| entry.service.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn the_table_loads() {
        assert!(
            toml::from_str::<ServiceFile>(SERVICES_TOML).is_ok(),
            "data/process-services.toml parses"
        );
        assert!(process_services().len() >= 20);
    }

    #[test]
    fn processes_map_to_services() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "redis-server",
                "/usr/bin/redis-server 127.0.0.1:6379",
                Some("redis"),
            ),
            (
                "postgres",
                "/usr/lib/postgresql/15/bin/postgres -D /var/lib/x",
                Some("postgresql"),
            ),
            ("mariadbd", "/usr/sbin/mariadbd", Some("mysql")),
            (
                "java",
                "/usr/bin/java -cp x org.elasticsearch.bootstrap.Elasticsearch",
                Some("elasticsearch"),
            ),
            ("java", "/usr/bin/java -jar app.jar", None),
            ("python3", "/usr/bin/python3 -m http.server", None),
            (
                "python3",
                "/usr/bin/python3 /usr/bin/jupyter-notebook",
                Some("jupyter"),
            ),
            ("sshd", "sshd: /usr/sbin/sshd -D [listener]", Some("ssh")),
            // A renamed binary is still recognised by argv[0].
            ("srv", "/opt/redis/bin/redis-server *:6379", Some("redis")),
        ];
        for (name, cmdline, want) in cases {
            assert_eq!(service_of(name, &words(cmdline)), *want, "{name} {cmdline}");
        }
    }
}
