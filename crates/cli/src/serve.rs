//! `portgate serve` (the scan service) and `portgate keys` (its API keys).

use crate::Failure;
use crate::history::DbArg;
use clap::{Args, Subcommand};
use portgate_model::Scope;
use portgate_pipeline as pipeline;
use portgate_serve::{Config, State};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address and port to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR:PORT", env = "PORTGATE_LISTEN")]
    pub(crate) listen: Option<SocketAddr>,

    #[command(flatten)]
    pub(crate) db: DbArg,

    /// What the server may scan: CIDRs (v4 and v6), repeated or comma-separated. Required
    /// (here or in the file): a scanner on a network must be told what it may touch.
    #[arg(
        long,
        value_name = "CIDR",
        value_delimiter = ',',
        env = "PORTGATE_SERVE_SCOPE"
    )]
    pub(crate) scope: Vec<String>,

    /// Scans running at once [default: the cores].
    #[arg(long, value_name = "N", env = "PORTGATE_WORKERS")]
    pub(crate) workers: Option<usize>,

    /// Memory the scans running at once may take together, e.g. 512MiB or 2GiB; a scan
    /// waits until its estimate (100 bytes per address × port pair, plus 4 MiB) fits [default: 1GiB].
    #[arg(long, value_parser = parse_size, value_name = "SIZE", env = "PORTGATE_SCAN_MEMORY")]
    pub(crate) scan_memory: Option<u64>,

    /// Scans queued or running at once for one key [default: 4].
    #[arg(long, value_name = "N", env = "PORTGATE_PER_KEY_SCANS")]
    pub(crate) per_key_scans: Option<i64>,

    /// Requests a minute for one key [default: 120].
    #[arg(long, value_name = "N", env = "PORTGATE_SERVE_RATE")]
    pub(crate) rate: Option<u32>,

    /// How long a port check's answer is served from the cache [default: 60s].
    #[arg(long, value_parser = crate::args::parse_duration, value_name = "DURATION", env = "PORTGATE_CACHE_TTL")]
    pub(crate) cache_ttl: Option<Duration>,

    /// Take addresses and ranges only: refuse target names, so that the server never asks
    /// DNS.
    #[arg(long, env = "PORTGATE_ADDRESSES_ONLY")]
    pub(crate) addresses_only: bool,

    /// A manifest clients may check by name (`POST /v1/checks {"manifest": "NAME"}`),
    /// repeated.
    #[arg(long = "manifest", value_name = "NAME=PATH", value_parser = parse_named)]
    pub(crate) manifests: Vec<(String, PathBuf)>,

    /// How long running scans may take to finish on SIGTERM before they are queued again
    /// [default: 60s].
    #[arg(long, value_parser = crate::args::parse_duration, value_name = "DURATION", env = "PORTGATE_DRAIN_TIMEOUT")]
    pub(crate) drain_timeout: Option<Duration>,

    /// How the log on standard error is written: text (a line per event) or json (an
    /// object per line: timestamp, level, target, message and the event's fields).
    #[arg(long, value_enum, default_value_t = crate::log::LogFormat::Text, env = "PORTGATE_LOG_FORMAT")]
    pub(crate) log_format: crate::log::LogFormat,

    /// Which events are logged: a level (error, warn, info, debug, trace) or directives
    /// such as `info,portgate_serve=debug`.
    #[arg(
        long,
        value_name = "FILTER",
        default_value = "info",
        env = "PORTGATE_LOG"
    )]
    pub(crate) log_level: String,
}

/// The `serve:` section of the configuration file (or a whole file of serve's keys). The
/// keys that are flags are taken by the configuration layer (`crate::config`) as the flags'
/// defaults; the monitoring settings below are read here.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServeFile {
    #[serde(rename = "listen")]
    _listen: Option<IgnoredAny>,
    #[serde(rename = "db", alias = "database")]
    _db: Option<IgnoredAny>,
    #[serde(rename = "scope")]
    _scope: Option<IgnoredAny>,
    #[serde(rename = "workers")]
    _workers: Option<IgnoredAny>,
    #[serde(rename = "scan_memory")]
    _scan_memory: Option<IgnoredAny>,
    #[serde(rename = "per_key_scans")]
    _per_key_scans: Option<IgnoredAny>,
    #[serde(rename = "rate")]
    _rate: Option<IgnoredAny>,
    #[serde(rename = "cache_ttl")]
    _cache_ttl: Option<IgnoredAny>,
    #[serde(rename = "drain_timeout")]
    _drain_timeout: Option<IgnoredAny>,
    #[serde(rename = "addresses_only")]
    _addresses_only: Option<IgnoredAny>,
    #[serde(rename = "log_format")]
    _log_format: Option<IgnoredAny>,
    #[serde(rename = "log_level")]
    _log_level: Option<IgnoredAny>,
    manifests: Option<Manifests>,
    schedules: Option<Vec<ScheduleFile>>,
    alerts: Option<Vec<AlertFile>>,
    windows: Option<Vec<WindowFile>>,
    escalation: Option<Vec<EscalationFile>>,
    repeat_interval: Option<String>,
    public_url: Option<String>,
    link_secret: Option<String>,
    ack_link_valid: Option<String>,
}

/// One of `windows:`: a name, what it covers (none of `asset`, `target`, `tag`: all), and
/// when (`start` and `end`, or `cron` and `duration`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFile {
    name: String,
    asset: Option<String>,
    target: Option<String>,
    /// `key=value`.
    tag: Option<String>,
    start: Option<chrono::DateTime<chrono::Utc>>,
    end: Option<chrono::DateTime<chrono::Utc>>,
    cron: Option<String>,
    timezone: Option<String>,
    duration: Option<String>,
    comment: Option<String>,
}

/// One of `escalation:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalationFile {
    min_severity: Option<portgate_model::Severity>,
    after: String,
    repeat: Option<String>,
    to: String,
}

/// `manifests:` as a list of files (each named by its file stem) or a map of names to files;
/// a relative path is taken from the configuration file's directory.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Manifests {
    List(Vec<PathBuf>),
    Named(std::collections::BTreeMap<String, PathBuf>),
}

/// One of `schedules:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFile {
    name: String,
    /// The ports scanned on every asset; each asset's own when absent.
    ports: Option<String>,
    cron: String,
    jitter: Option<String>,
    /// The cron's time zone (IANA; UTC when absent).
    timezone: Option<String>,
    /// The configured manifests it checks, by name; all when absent.
    manifests: Option<Vec<String>>,
    env: Option<String>,
}

/// One of `alerts:`: a name, what goes to it, and one channel (`webhook:`, `slack:`,
/// `syslog:` or `email:`).
#[derive(Debug, Deserialize)]
struct AlertFile {
    name: String,
    min_severity: Option<portgate_model::Severity>,
    /// Only these assets' findings.
    #[serde(default)]
    assets: Vec<String>,
    /// Only the findings of these owners' assets.
    #[serde(default)]
    owners: Vec<String>,
    #[serde(flatten)]
    channel: portgate_alert::ChannelConfig,
}

impl Manifests {
    fn named(&self, base: &Path) -> Result<Vec<(String, PathBuf)>, Failure> {
        let at = |p: &PathBuf| {
            if p.is_relative() {
                base.join(p)
            } else {
                p.clone()
            }
        };
        match self {
            Manifests::Named(map) => Ok(map.iter().map(|(n, p)| (n.clone(), at(p))).collect()),
            Manifests::List(list) => list
                .iter()
                .map(|p| {
                    let name = p
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| {
                            Failure::usage(format!("manifests: {}: not a file name", p.display()))
                        })?;
                    Ok((name, at(p)))
                })
                .collect(),
        }
    }
}

fn schedules_of(file: &ServeFile, path: &Path) -> Result<Vec<portgate_serve::Schedule>, Failure> {
    let mut out = Vec::new();
    for (i, entry) in file.schedules.iter().flatten().enumerate() {
        let what = format!("{}: schedules[{i}] ({})", path.display(), entry.name);
        let jitter = duration_in(path, "jitter", entry.jitter.as_ref())?.unwrap_or_default();
        let mut schedule = portgate_serve::Schedule::new(
            &entry.name,
            entry.ports.as_deref(),
            &entry.cron,
            jitter,
            &what,
        )
        .map_err(Failure::usage)?;
        schedule.manifests = entry.manifests.clone().unwrap_or_default();
        schedule.env = entry.env.clone();
        if let Some(tz) = &entry.timezone {
            schedule.timezone =
                portgate_serve::parse_timezone(tz, &what).map_err(Failure::usage)?;
        }
        if out
            .iter()
            .any(|s: &portgate_serve::Schedule| s.name == schedule.name)
        {
            return Err(Failure::usage(format!(
                "{what}: a second schedule with this name"
            )));
        }
        out.push(schedule);
    }
    Ok(out)
}

fn alerts_of(file: &ServeFile, path: &Path) -> Result<Vec<portgate_serve::AlertRoute>, Failure> {
    let mut out: Vec<portgate_serve::AlertRoute> = Vec::new();
    for (i, entry) in file.alerts.iter().flatten().enumerate() {
        if entry.name.is_empty() || out.iter().any(|r| r.name == entry.name) {
            return Err(Failure::usage(format!(
                "{}: alerts[{i}]: name \"{}\": give each channel its own name",
                path.display(),
                entry.name
            )));
        }
        // Checked now (URL, secret, CA file, addresses), not at the first alert.
        portgate_alert::Channel::new(&entry.channel).map_err(|e| {
            Failure::usage(format!(
                "{}: alerts[{i}] ({}): {e}",
                path.display(),
                entry.name
            ))
        })?;
        out.push(portgate_serve::AlertRoute {
            name: entry.name.clone(),
            min_severity: entry.min_severity.unwrap_or(portgate_model::Severity::Info),
            assets: entry.assets.clone(),
            owners: entry.owners.clone(),
            channel: entry.channel.clone(),
        });
    }
    Ok(out)
}

fn windows_of(file: &ServeFile, path: &Path) -> Result<Vec<portgate_serve::Window>, Failure> {
    use portgate_serve::{Window, WindowScope};
    let mut out: Vec<Window> = Vec::new();
    for (i, entry) in file.windows.iter().flatten().enumerate() {
        let what = format!("{}: windows[{i}] ({})", path.display(), entry.name);
        let scope = match (&entry.asset, &entry.target, &entry.tag) {
            (None, None, None) => WindowScope::All,
            (Some(a), None, None) => WindowScope::Asset(a.clone()),
            (None, Some(t), None) => WindowScope::Target(t.clone()),
            (None, None, Some(tag)) => WindowScope::parse(&format!("tag:{tag}"))
                .map_err(|e| Failure::usage(format!("{what}: tag: {e}")))?,
            _ => {
                return Err(Failure::usage(format!(
                    "{what}: give one of asset, target or tag (none: every finding)"
                )));
            }
        };
        let mut window = match (&entry.cron, entry.start, entry.end) {
            (Some(cron), None, None) => {
                let duration =
                    duration_in(path, "duration", entry.duration.as_ref())?.ok_or_else(|| {
                        Failure::usage(format!(
                            "{what}: duration: a recurring window needs how long it lasts, e.g. 2h"
                        ))
                    })?;
                Window::recurring(
                    &entry.name,
                    scope,
                    cron,
                    entry.timezone.as_deref(),
                    duration,
                    &what,
                )
            }
            (None, Some(start), Some(end)) if entry.duration.is_none() => {
                Window::once(&entry.name, scope, start, end, &what)
            }
            _ => {
                return Err(Failure::usage(format!(
                    "{what}: give start and end (RFC 3339), or cron and duration"
                )));
            }
        }
        .map_err(Failure::usage)?;
        window.comment.clone_from(&entry.comment);
        if out.iter().any(|w| w.name == window.name) {
            return Err(Failure::usage(format!(
                "{what}: a second window with this name"
            )));
        }
        out.push(window);
    }
    Ok(out)
}

fn escalations_of(
    file: &ServeFile,
    path: &Path,
    routes: &[portgate_serve::AlertRoute],
) -> Result<Vec<portgate_serve::Escalation>, Failure> {
    let mut out = Vec::new();
    for (i, entry) in file.escalation.iter().flatten().enumerate() {
        let what = format!("{}: escalation[{i}]", path.display());
        if !routes.iter().any(|r| r.name == entry.to) {
            return Err(Failure::usage(format!(
                "{what}: to: no alert channel named \"{}\" is configured",
                entry.to.escape_default()
            )));
        }
        let after = crate::args::parse_duration(&entry.after)
            .map_err(|e| Failure::usage(format!("{what}: after: {e}")))?;
        let repeat = entry
            .repeat
            .as_deref()
            .map(|r| {
                crate::args::parse_duration(r)
                    .map_err(|e| Failure::usage(format!("{what}: repeat: {e}")))
            })
            .transpose()?;
        if repeat.is_some_and(|r| r.is_zero()) {
            return Err(Failure::usage(format!(
                "{what}: repeat: give a duration above zero"
            )));
        }
        out.push(portgate_serve::Escalation {
            min_severity: entry.min_severity.unwrap_or(portgate_model::Severity::High),
            after,
            repeat,
            to: entry.to.clone(),
        });
    }
    Ok(out)
}

fn ack_links_of(
    file: &ServeFile,
    path: &Path,
) -> Result<Option<portgate_serve::AckLinks>, Failure> {
    let at = |e: String| Failure::usage(format!("{}: {e}", path.display()));
    match (&file.public_url, &file.link_secret) {
        (None, None) => Ok(None),
        (Some(url), Some(secret)) => {
            let valid = duration_in(path, "ack_link_valid", file.ack_link_valid.as_ref())?
                .unwrap_or(Duration::from_secs(7 * 24 * 3600));
            portgate_serve::AckLinks::new(url, secret, valid)
                .map(Some)
                .map_err(at)
        }
        _ => Err(at(
            "public_url and link_secret go together (acknowledgement links in the alerts)".into(),
        )),
    }
}

/// A size such as `512MiB`, `2GiB` or `1500000000`.
fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("\"{text}\": not a size such as 512MiB or 2GiB ({e})"))
}

fn parse_named(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("\"{text}\": give NAME=PATH")),
    }
}

/// The whole file with sections: only `serve:` is read here (the configuration layer has
/// checked the others).
#[derive(Debug, Deserialize)]
struct Sections {
    serve: Option<ServeFile>,
}

/// The serve settings of the configuration file that are no flag.
fn read_config(file: &crate::config::ConfigFile) -> Result<ServeFile, Failure> {
    let shown = file.path.display();
    let at = |e: portgate_policy::yaml::YamlError| {
        let key = e.key.map(|k| format!("{k}: ")).unwrap_or_default();
        Failure::usage(format!(
            "{shown}:{}:{}: {key}{}",
            e.line, e.column, e.message
        ))
    };
    if file.serve_only {
        portgate_policy::yaml::parse(&file.text).map_err(at)
    } else {
        let sections: Option<Sections> = portgate_policy::yaml::parse(&file.text).map_err(at)?;
        Ok(sections.and_then(|s| s.serve).unwrap_or_default())
    }
}

fn duration_in(
    file: &Path,
    key: &str,
    value: Option<&String>,
) -> Result<Option<Duration>, Failure> {
    value
        .map(|v| {
            crate::args::parse_duration(v)
                .map_err(|e| Failure::usage(format!("{}: {key}: {e}", file.display())))
        })
        .transpose()
}

#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    pub(crate) command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key and print it (once: only its hash is kept).
    Create {
        /// A name to tell it apart (`ci-staging`).
        #[arg(long)]
        name: String,
        /// Narrow the key to these CIDRs (within the server's scope).
        #[arg(long, value_name = "CIDR", value_delimiter = ',')]
        scope: Vec<String>,
        #[command(flatten)]
        db: DbArg,
    },
    /// List the keys (prefix, name, scope, created, revoked).
    List {
        #[command(flatten)]
        db: DbArg,
    },
    /// Revoke the keys with this name, prefix or id.
    Revoke {
        /// Name, prefix (`pg_1a2b3c4d`) or id.
        key: String,
        #[command(flatten)]
        db: DbArg,
    },
}

fn scope_of(entries: &[String]) -> Result<Scope, Failure> {
    Scope::parse(entries).map_err(|e| Failure::usage(format!("--scope: {e}")))
}

/// `portgate serve`: the flags (with their environment variables and the configuration
/// file's values under them) and the file's monitoring settings.
pub(crate) fn run(
    args: ServeArgs,
    config_file: Option<&crate::config::ConfigFile>,
) -> Result<u8, Failure> {
    crate::log::init(args.log_format, &args.log_level)?;
    let (file, path) = match config_file {
        Some(config_file) => (read_config(config_file)?, config_file.path.clone()),
        None => (ServeFile::default(), PathBuf::new()),
    };
    if args.scope.is_empty() {
        return Err(Failure::usage(
            "--scope (or scope: in the configuration file) is required: the CIDRs the server may scan",
        ));
    }
    let scope = scope_of(&args.scope)?;
    let listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let cache_ttl = args.cache_ttl.unwrap_or(Duration::from_secs(60));
    let drain_timeout = args.drain_timeout.unwrap_or(Duration::from_secs(60));
    let scan_memory = args
        .scan_memory
        .unwrap_or(portgate_serve::DEFAULT_SCAN_MEMORY);
    crate::scan::raise_open_file_limit();
    let location = pipeline::location(args.db.db.as_deref())?;
    let runtime = crate::runtime()?;
    runtime.block_on(async {
        let store = pipeline::open_store(&location).await?;
        let mut config = Config::new(listen, scope);
        config.workers = args
            .workers
            .unwrap_or_else(portgate_serve::default_workers)
            .max(1);
        config.scan_memory = scan_memory;
        config.per_key_scans = args.per_key_scans.unwrap_or(4).max(1);
        config.requests_per_minute = args.rate.unwrap_or(120).max(1);
        config.cache_ttl = cache_ttl;
        config.resolve_names = !args.addresses_only;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if let Some(manifests) = &file.manifests {
            config.manifests.extend(manifests.named(&base)?);
        }
        config.manifests.extend(args.manifests.iter().cloned());
        config.schedules = schedules_of(&file, &path)?;
        config.alerts = alerts_of(&file, &path)?;
        config.windows = windows_of(&file, &path)?;
        config.escalations = escalations_of(&file, &path, &config.alerts)?;
        config.ack_links = ack_links_of(&file, &path)?;
        if let Some(repeat) = duration_in(&path, "repeat_interval", file.repeat_interval.as_ref())?
        {
            config.repeat_interval = repeat;
        }
        for schedule in &config.schedules {
            for name in &schedule.manifests {
                if !config.manifests.contains_key(name) {
                    return Err(Failure::usage(format!(
                        "{}: schedule {}: no manifest named \"{name}\" is configured",
                        path.display(),
                        schedule.name
                    )));
                }
            }
        }
        for (name, path) in &config.manifests {
            portgate_policy::Manifest::load(path)
                .map_err(|e| Failure::usage(format!("--manifest {name}: {e}")))?;
        }
        let listener = portgate_serve::bind(listen)
            .await
            .map_err(|e| Failure::usage(e.to_string()))?;
        let bound = listener.local_addr().unwrap_or(listen);
        tracing::info!(
            listen = %bound,
            history = %location,
            "listening on http://{bound} (history: {location})"
        );
        portgate_serve::run(State::new(store, config), listener, drain_timeout)
            .await
            .map_err(|e| Failure::scan(e.to_string()))
    })?;
    Ok(0)
}

pub(crate) fn run_keys(args: KeysArgs) -> Result<u8, Failure> {
    let runtime = crate::runtime()?;
    let db = match &args.command {
        KeysCommand::Create { db, .. }
        | KeysCommand::List { db }
        | KeysCommand::Revoke { db, .. } => db,
    };
    let location = pipeline::location(db.db.as_deref())?;
    runtime.block_on(async {
        let store = pipeline::open_store(&location).await?;
        let failed = |e: portgate_store::StoreError| Failure::scan(e.to_string());
        match &args.command {
            KeysCommand::Create { name, scope, .. } => {
                let scope = if scope.is_empty() {
                    None
                } else {
                    Some(scope_of(scope)?)
                };
                let (key, record) = portgate_serve::create_key(&store, name, scope.as_ref())
                    .await
                    .map_err(failed)?;
                crate::write_stdout(&format!("{key}\n"));
                eprintln!(
                    "portgate: key {} ({}) created; it is shown only this once",
                    record.prefix, record.name
                );
                Ok(0)
            }
            KeysCommand::List { .. } => {
                let keys = store.keys().await.map_err(failed)?;
                let mut rows = vec![[
                    "ID".to_string(),
                    "PREFIX".into(),
                    "NAME".into(),
                    "SCOPE".into(),
                    "CREATED (UTC)".into(),
                    "REVOKED (UTC)".into(),
                ]];
                let when =
                    |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
                for k in keys {
                    rows.push([
                        k.id.to_string(),
                        k.prefix,
                        k.name,
                        if k.scope.is_empty() {
                            "(server's)".into()
                        } else {
                            k.scope.join(",")
                        },
                        when(k.created_at),
                        k.revoked_at.map(when).unwrap_or_else(|| "-".into()),
                    ]);
                }
                crate::write_stdout(&portgate_report::columns(&rows));
                Ok(0)
            }
            KeysCommand::Revoke { key, .. } => {
                let n = store.revoke_key(key).await.map_err(failed)?;
                if n == 0 {
                    return Err(Failure::usage(format!("no active key named \"{key}\"")));
                }
                eprintln!("portgate: {n} key(s) revoked");
                Ok(0)
            }
        }
    })
}

#[derive(Debug, Args)]
pub(crate) struct AckArgs {
    /// The finding's fingerprint (`GET /v1/findings`, or the alert's `fingerprint`).
    pub(crate) fingerprint: String,
    /// Who acknowledges.
    #[arg(long, value_name = "NAME")]
    pub(crate) by: String,
    /// Why.
    #[arg(long, value_name = "TEXT")]
    pub(crate) comment: String,
    /// Through this server's API, with the key in $PORTGATE_API_KEY (else in the store
    /// given by --db, as the server there would).
    #[arg(long, value_name = "URL", conflicts_with = "db")]
    pub(crate) server: Option<String>,
    #[command(flatten)]
    pub(crate) db: DbArg,
}

/// `portgate ack`: through a server, or in its store.
pub(crate) fn run_ack(args: AckArgs) -> Result<u8, Failure> {
    let runtime = crate::runtime()?;
    let (by, comment) = (args.by.trim(), args.comment.trim());
    if by.is_empty() || comment.is_empty() {
        return Err(Failure::usage("--by and --comment must not be empty"));
    }
    let state = runtime.block_on(async {
        if let Some(url) = &args.server {
            let client = server_client(url)?;
            let view = client
                .acknowledge(&args.fingerprint, by, comment)
                .await
                .map_err(|e| Failure::usage(e.to_string()))?;
            return Ok::<String, Failure>(view["state"].as_str().unwrap_or_default().to_string());
        }
        let location = pipeline::location(args.db.db.as_deref())?;
        let store = pipeline::open_store(&location).await?;
        let found = store
            .finding(&args.fingerprint)
            .await
            .map_err(|e| Failure::scan(e.to_string()))?
            .ok_or_else(|| {
                Failure::usage(format!("no finding {} in {location}", args.fingerprint))
            })?;
        if found.state == portgate_model::lifecycle::FindingState::Resolved {
            return Err(Failure::usage(format!(
                "finding {} is resolved: nothing to acknowledge",
                args.fingerprint
            )));
        }
        let acked = store
            .acknowledge_finding(&args.fingerprint, by, comment, chrono::Utc::now())
            .await
            .map_err(|e| Failure::scan(e.to_string()))?
            .ok_or_else(|| Failure::usage(format!("no finding {}", args.fingerprint)))?;
        Ok(acked.state.as_str().to_string())
    })?;
    println!("{}: {state}", args.fingerprint);
    Ok(0)
}

#[derive(Debug, Args)]
pub(crate) struct WindowArgs {
    #[command(subcommand)]
    pub(crate) command: WindowCommand,
}

/// Where the windows are: a server, or a store.
#[derive(Debug, Args)]
pub(crate) struct WindowPlace {
    /// Through this server's API, with the key in $PORTGATE_API_KEY (else in the store
    /// given by --db, which a server on it reads within a second).
    #[arg(long, value_name = "URL", conflicts_with = "db")]
    pub(crate) server: Option<String>,
    #[command(flatten)]
    pub(crate) db: DbArg,
}

#[derive(Debug, Subcommand)]
pub(crate) enum WindowCommand {
    /// Make (or change) a window: one-off (--start, --end) or recurring (--cron,
    /// --duration).
    Add {
        /// Its name (letters, digits, '-', '_', '.').
        name: String,
        /// What it covers: all, asset:NAME, target:TARGET or tag:KEY=VALUE.
        #[arg(long, default_value = "all")]
        scope: String,
        /// Opens (RFC 3339, e.g. 2026-12-05T22:00:00Z).
        #[arg(
            long,
            requires = "end",
            conflicts_with = "cron",
            required_unless_present = "cron"
        )]
        start: Option<chrono::DateTime<chrono::Utc>>,
        /// Closes.
        #[arg(long, requires = "start")]
        end: Option<chrono::DateTime<chrono::Utc>>,
        /// Opens at each time of this cron (five fields, or six with seconds first).
        #[arg(long, requires = "duration")]
        cron: Option<String>,
        /// The cron's time zone (IANA, e.g. Europe/Berlin) [default: UTC].
        #[arg(long, requires = "cron")]
        timezone: Option<String>,
        /// How long each opening lasts (30m, 2h).
        #[arg(long, value_parser = crate::args::parse_duration, requires = "cron")]
        duration: Option<Duration>,
        /// Why.
        #[arg(long)]
        comment: Option<String>,
        /// Who.
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        #[command(flatten)]
        place: WindowPlace,
    },
    /// List the windows.
    List {
        #[command(flatten)]
        place: WindowPlace,
    },
    /// Delete a window made over the API or this command.
    Delete {
        /// Its name.
        name: String,
        #[command(flatten)]
        place: WindowPlace,
    },
}

impl WindowCommand {
    fn place(&self) -> &WindowPlace {
        match self {
            WindowCommand::Add { place, .. }
            | WindowCommand::List { place }
            | WindowCommand::Delete { place, .. } => place,
        }
    }
}

/// `portgate window`: through a server, or in its store.
pub(crate) fn run_window(args: WindowArgs) -> Result<u8, Failure> {
    let runtime = crate::runtime()?;
    let place = args.command.place();
    let lines = runtime.block_on(async {
        if let Some(url) = &place.server {
            let client = server_client(url)?;
            let refused = |e: portgate_serve::ClientError| {
                if e.is_input() {
                    Failure::usage(e.to_string())
                } else {
                    Failure::scan(e.to_string())
                }
            };
            return match &args.command {
                WindowCommand::Add { .. } => {
                    let view = client
                        .put_window(&window_request(&args.command))
                        .await
                        .map_err(refused)?;
                    Ok(vec![window_line(&view)])
                }
                WindowCommand::List { .. } => {
                    let list = client.windows().await.map_err(refused)?;
                    Ok(list["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(window_line)
                        .collect())
                }
                WindowCommand::Delete { name, .. } => {
                    client.delete_window(name).await.map_err(refused)?;
                    Ok(vec![format!("{name}: deleted")])
                }
            };
        }
        let location = pipeline::location(place.db.db.as_deref())?;
        let store = pipeline::open_store(&location).await?;
        let failed = |e: portgate_store::StoreError| Failure::scan(e.to_string());
        let now = chrono::Utc::now();
        match &args.command {
            WindowCommand::Add { name, .. } => {
                let window = portgate_serve::window_of(&window_request(&args.command))
                    .map_err(|p| Failure::usage(p.detail))?;
                let existing = store.windows().await.map_err(failed)?;
                if existing
                    .iter()
                    .any(|w| &w.name == name && w.source == "config")
                {
                    return Err(Failure::usage(format!(
                        "window {name} is in the server's configuration file: change it there"
                    )));
                }
                let row = window.to_stored("api", now);
                store.put_window(&row).await.map_err(failed)?;
                Ok(vec![window_line(
                    &serde_json::to_value(portgate_serve::WindowView::of(&window, &row, now))
                        .unwrap_or_default(),
                )])
            }
            WindowCommand::List { .. } => {
                let rows = store.windows().await.map_err(failed)?;
                let mut lines = Vec::new();
                for row in rows {
                    let window =
                        portgate_serve::Window::from_stored(&row).map_err(Failure::scan)?;
                    let view = portgate_serve::WindowView::of(&window, &row, now);
                    lines.push(window_line(&serde_json::to_value(view).unwrap_or_default()));
                }
                Ok(lines)
            }
            WindowCommand::Delete { name, .. } => {
                let existing = store.windows().await.map_err(failed)?;
                match existing.iter().find(|w| &w.name == name) {
                    None => Err(Failure::usage(format!("no window {name} in {location}"))),
                    Some(w) if w.source == "config" => Err(Failure::usage(format!(
                        "window {name} is in the server's configuration file: remove it there"
                    ))),
                    Some(_) => {
                        store.delete_window(name).await.map_err(failed)?;
                        Ok(vec![format!("{name}: deleted")])
                    }
                }
            }
        }
    })?;
    for line in lines {
        println!("{line}");
    }
    Ok(0)
}

fn window_request(command: &WindowCommand) -> portgate_serve::WindowRequest {
    let WindowCommand::Add {
        name,
        scope,
        start,
        end,
        cron,
        timezone,
        duration,
        comment,
        by,
        ..
    } = command
    else {
        unreachable!("only add makes a request")
    };
    portgate_serve::WindowRequest {
        name: name.clone(),
        scope: scope.clone(),
        start: *start,
        end: *end,
        cron: cron.clone(),
        timezone: timezone.clone(),
        duration_seconds: duration.map(|d| d.as_secs().max(1)),
        comment: comment.clone(),
        created_by: by.clone(),
    }
}

/// One window on one line: name, scope, when, whether open now, source.
fn window_line(view: &serde_json::Value) -> String {
    let text = |key: &str| portgate_alert::render::one_line(view[key].as_str().unwrap_or_default());
    let when = if view["cron"].is_string() {
        format!(
            "cron \"{}\" {} for {}s",
            text("cron"),
            text("timezone"),
            view["durationSeconds"].as_u64().unwrap_or(0)
        )
    } else {
        format!("{} to {}", text("start"), text("end"))
    };
    let open = match view["openUntil"].as_str() {
        Some(until) => format!("open until {until}"),
        None => "closed".to_string(),
    };
    format!(
        "{}\t{}\t{}\t{open}\t{}",
        text("name"),
        text("scope"),
        portgate_alert::render::one_line(&when),
        text("source")
    )
}

/// A client of the server at `url`, with the key in `$PORTGATE_API_KEY`.
fn server_client(url: &str) -> Result<portgate_serve::Client, Failure> {
    let key = std::env::var(crate::remote::KEY_ENV)
        .ok()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            Failure::usage(format!(
                "--server needs the API key in ${}",
                crate::remote::KEY_ENV
            ))
        })?;
    portgate_serve::Client::new(url, &key).map_err(|e| Failure::usage(e.to_string()))
}
