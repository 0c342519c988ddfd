//! Layered settings: a flag on the command line wins over its `PORTGATE_*` environment
//! variable, which wins over the configuration file, which wins over the built-in default.
//!
//! The environment layer is clap's own (`env = "PORTGATE_…"` on the arguments). The file
//! layer is generic: every value the file gives becomes the default of its argument before
//! the command line is parsed, so clap's own order (command line, environment, default)
//! is the whole precedence, for every flag of every command, with no code per flag.
//!
//! The file (`--config FILE`, else `$PORTGATE_CONFIG`, else
//! `$XDG_CONFIG_HOME/portgate/config.yaml` or `~/.config/portgate/config.yaml` when there
//! is one) has a section per command, keyed by the long flags' names with `_`:
//!
//! ```yaml
//! scan:
//!   ports: top100
//!   retries: 2
//! serve:
//!   listen: 127.0.0.1:8080
//!   scope: [198.18.0.0/15]
//! db:
//!   prune:
//!     keep_days: 90
//! ```
//!
//! A file without command sections whose keys are `serve`'s (the form `portgate serve
//! --config FILE` has always read) is the `serve:` section, and the other commands ignore
//! it.

use crate::Failure;
use clap::parser::ValueSource;
use clap::{ArgMatches, Command, FromArgMatches};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable naming the configuration file.
pub(crate) const CONFIG_ENV: &str = "PORTGATE_CONFIG";

/// Largest configuration file read.
const MAX_CONFIG: usize = 256 * 1024;

/// Settings that read an environment variable in their own code instead of through clap
/// (so that clap's conflicts, such as `--db` against `--save`, do not count it as given):
/// (argument id, variable).
pub(crate) const OWN_ENV: &[(&str, &str)] = &[("db", portgate_store::DB_ENV)];

/// The keys of `serve:` that are no flag: read by `serve` itself (`crate::serve::ServeFile`).
pub(crate) const SERVE_FILE_KEYS: &[&str] = &[
    "manifests",
    "schedules",
    "alerts",
    "windows",
    "escalation",
    "repeat_interval",
    "public_url",
    "link_secret",
    "ack_link_valid",
];

/// Other spellings of a key: (command, key, the flag's key).
const ALIASES: &[(&str, &str, &str)] = &[("serve", "database", "db")];

/// Flags the file does not set: (command, argument id, why).
const NOT_IN_FILE: &[(&str, &str)] = &[
    // `manifests:` (a list, or a map of names to files relative to the file) instead.
    ("serve", "manifests"),
];

/// A YAML node with the place of everything in it.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// A scalar, as written (`true`, `8080`, `10s`).
    Scalar(String),
    /// `~` or nothing.
    Null,
    /// A sequence.
    List(Vec<Spanned<Node>>),
    /// A mapping, in the file's order.
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Node>>()? {
                    items.push(item);
                }
                Ok(Node::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<Spanned<Node>>()?;
                    entries.push((key, value));
                }
                Ok(Node::Map(entries))
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// The configuration file read, with where it came from.
#[derive(Debug, Clone)]
pub(crate) struct ConfigFile {
    /// Its path.
    pub(crate) path: PathBuf,
    /// Its text.
    pub(crate) text: String,
    /// Whether it is a serve file without sections (the whole file is `serve:`).
    pub(crate) serve_only: bool,
    root: Vec<(Spanned<String>, Spanned<Node>)>,
}

impl ConfigFile {
    /// `path:line:column` of a place in the file.
    fn at(&self, place: &serde_saphyr::Location) -> String {
        format!(
            "{}:{}:{}",
            self.path.display(),
            place.line(),
            place.column()
        )
    }
}

/// A setting the file gives: the command (path of subcommand names), the argument, the
/// values and where.
#[derive(Debug, Clone)]
struct FileSetting {
    command: Vec<String>,
    id: String,
    values: Vec<String>,
    place: String,
}

/// Where the file is: `--config FILE` on the command line, else `$PORTGATE_CONFIG`, else the
/// default place when a file is there. `Some(true)` when it was named (it must exist).
fn locate(argv: &[OsString]) -> Option<(PathBuf, bool)> {
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return args.next().map(|p| (PathBuf::from(p), true));
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some((PathBuf::from(path), true));
        }
    }
    if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(path), true));
    }
    default_path().filter(|p| p.is_file()).map(|p| (p, false))
}

/// `$XDG_CONFIG_HOME/portgate/config.yaml`, else `~/.config/portgate/config.yaml`.
pub(crate) fn default_path() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".config"))
    })?;
    Some(base.join("portgate").join("config.yaml"))
}

/// Reads and parses the file (its structure; the settings are checked against the commands
/// by [`settings_of`]).
pub(crate) fn read(path: &Path) -> Result<ConfigFile, Failure> {
    let shown = path.display();
    let bytes =
        std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {shown}: {e}")))?;
    let at = |e: portgate_policy::yaml::YamlError| {
        let key = e.key.map(|k| format!("{k}: ")).unwrap_or_default();
        Failure::usage(format!(
            "{shown}:{}:{}: {key}{}",
            e.line, e.column, e.message
        ))
    };
    let text = portgate_policy::yaml::text(&bytes, MAX_CONFIG, "configuration file").map_err(at)?;
    let root: Spanned<Node> = if text.trim().is_empty() {
        Spanned::new(
            Node::Null,
            serde_saphyr::Location::UNKNOWN,
            serde_saphyr::Location::UNKNOWN,
        )
    } else {
        portgate_policy::yaml::parse(text).map_err(at)?
    };
    let root = match root.value {
        Node::Map(entries) => entries,
        Node::Null => Vec::new(),
        _ => {
            return Err(Failure::usage(format!(
                "{shown}:{}:{}: the configuration file is a mapping of command sections (scan:, check:, serve:, …)",
                root.referenced.line(),
                root.referenced.column()
            )));
        }
    };
    Ok(ConfigFile {
        path: path.to_path_buf(),
        text: text.to_string(),
        serve_only: false,
        root,
    })
}

/// The settings of `file` for the commands of `cli`, each checked: a section or key that
/// names nothing is refused with its place, and so is a value the flag would refuse.
fn settings_of(cli: &Command, file: &mut ConfigFile) -> Result<Vec<FileSetting>, Failure> {
    let commands: Vec<&str> = cli.get_subcommands().map(Command::get_name).collect();
    // The old serve file: serve's keys at the top.
    let serve = cli.find_subcommand("serve");
    file.serve_only = file.root.iter().any(|(key, _)| {
        let serve_key = SERVE_FILE_KEYS.contains(&key.value.as_str())
            || serve.is_some_and(|s| key_arg(s, &key.value).is_some());
        serve_key && !commands.contains(&key.value.as_str())
    });
    let mut out = Vec::new();
    if file.serve_only {
        if let Some(serve) = serve {
            let root = file.root.clone();
            section(file, serve, &["serve".to_string()], &root, &mut out)?;
        }
        return Ok(out);
    }
    let root = file.root.clone();
    for (key, value) in &root {
        let Some(command) = cli.find_subcommand(&key.value) else {
            return Err(Failure::usage(format!(
                "{}: unknown section \"{}\": the sections are the commands ({})",
                file.at(&key.referenced),
                key.value,
                commands.join(", ")
            )));
        };
        match &value.value {
            Node::Map(entries) => section(
                file,
                command,
                &[command.get_name().to_string()],
                entries,
                &mut out,
            )?,
            Node::Null => {}
            _ => {
                return Err(Failure::usage(format!(
                    "{}: {}: a section is a mapping of the command's settings (key: value)",
                    file.at(&value.referenced),
                    key.value
                )));
            }
        }
    }
    Ok(out)
}

/// The argument a file key names in `command`: its long flag with `_` for `-`.
fn key_arg<'a>(command: &'a Command, key: &str) -> Option<&'a clap::Arg> {
    let key = ALIASES
        .iter()
        .find(|(c, alias, _)| *c == command.get_name() && *alias == key)
        .map_or(key, |(_, _, to)| to);
    command.get_arguments().find(|arg| {
        in_file(command, arg) && arg.get_long().is_some_and(|l| l.replace('-', "_") == key)
    })
}

/// Whether the file may set `arg` of `command`.
pub(crate) fn in_file(command: &Command, arg: &clap::Arg) -> bool {
    let id = arg.get_id().as_str();
    arg.get_long().is_some()
        && !arg.is_global_set()
        && !matches!(id, "help" | "version" | "config" | "print_config")
        && !NOT_IN_FILE.contains(&(command.get_name(), id))
}

fn section(
    file: &ConfigFile,
    command: &Command,
    path: &[String],
    entries: &[(Spanned<String>, Spanned<Node>)],
    out: &mut Vec<FileSetting>,
) -> Result<(), Failure> {
    let name = path.join(" ");
    for (key, value) in entries {
        if let Some(arg) = key_arg(command, &key.value) {
            let values = values_of(file, &name, key, value, arg)?;
            for v in &values {
                check_value(arg, v).map_err(|e| {
                    Failure::usage(format!(
                        "{}: {name}: {}: \"{v}\": {}",
                        file.at(&value.referenced),
                        key.value,
                        clap_reason(&e)
                    ))
                })?;
            }
            out.push(FileSetting {
                command: path.to_vec(),
                id: arg.get_id().to_string(),
                values,
                place: file.at(&key.referenced),
            });
        } else if let Some(sub) = command.find_subcommand(&key.value) {
            match &value.value {
                Node::Map(inner) => {
                    let mut deeper = path.to_vec();
                    deeper.push(sub.get_name().to_string());
                    section(file, sub, &deeper, inner, out)?;
                }
                Node::Null => {}
                _ => {
                    return Err(Failure::usage(format!(
                        "{}: {name}: {}: a section is a mapping of the command's settings",
                        file.at(&value.referenced),
                        key.value
                    )));
                }
            }
        } else if command.get_name() == "serve" && SERVE_FILE_KEYS.contains(&key.value.as_str()) {
            // Read by serve itself.
        } else {
            let mut known: Vec<String> = command
                .get_arguments()
                .filter(|a| in_file(command, a))
                .filter_map(|a| a.get_long().map(|l| l.replace('-', "_")))
                .collect();
            known.extend(command.get_subcommands().map(|s| s.get_name().to_string()));
            if command.get_name() == "serve" {
                known.extend(SERVE_FILE_KEYS.iter().map(|k| k.to_string()));
            }
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            return Err(Failure::usage(format!(
                "{}: {name}: unknown key \"{}\" (known: {known})",
                file.at(&key.referenced),
                key.value
            )));
        }
    }
    Ok(())
}

/// The values a file node gives an argument: one scalar, or a list where the flag may be
/// repeated. A relative path is taken from the file's directory.
fn values_of(
    file: &ConfigFile,
    command: &str,
    key: &Spanned<String>,
    value: &Spanned<Node>,
    arg: &clap::Arg,
) -> Result<Vec<String>, Failure> {
    let many = arg.get_num_args().is_some_and(|n| n.max_values() > 1)
        || matches!(arg.get_action(), clap::ArgAction::Append);
    let refuse = |what: &str| {
        Failure::usage(format!(
            "{}: {command}: {}: {what}",
            file.at(&value.referenced),
            key.value
        ))
    };
    let mut values = match &value.value {
        Node::Scalar(s) => vec![s.clone()],
        Node::List(items) if many => items
            .iter()
            .map(|item| match &item.value {
                Node::Scalar(s) => Ok(s.clone()),
                _ => Err(refuse("a list of plain values")),
            })
            .collect::<Result<_, _>>()?,
        Node::List(_) => return Err(refuse("takes one value, not a list")),
        Node::Null => return Err(refuse("no value")),
        Node::Map(_) => return Err(refuse("a value, not a mapping")),
    };
    if matches!(
        arg.get_value_hint(),
        clap::ValueHint::AnyPath | clap::ValueHint::FilePath | clap::ValueHint::DirPath
    ) && let Some(base) = file.path.parent()
    {
        for v in &mut values {
            if Path::new(v).is_relative() && v != "-" {
                *v = base.join(&*v).display().to_string();
            }
        }
    }
    Ok(values)
}

/// `value` given to `arg` alone: what the flag's parser says of it.
fn check_value(arg: &clap::Arg, value: &str) -> Result<(), clap::Error> {
    let long = arg.get_long().unwrap_or("value");
    let mut alone = clap::Arg::new("value")
        .long(long.to_string())
        .value_parser(arg.get_value_parser().clone())
        .action(clap::ArgAction::Set);
    if let Some(names) = arg.get_value_names() {
        alone = alone.value_names(names.to_vec());
    }
    clap::Command::new("portgate")
        .no_binary_name(true)
        .arg(alone)
        .try_get_matches_from([format!("--{long}={value}")])
        .map(|_| ())
}

/// The reason of clap's refusal of a value, without its "error:" and usage lines.
fn clap_reason(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// Where each setting of the command run came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// The command line.
    Flag,
    /// An environment variable.
    Env(String),
    /// The configuration file, at `file:line:column`.
    File(String),
    /// The built-in default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::File(place) => write!(f, "file {place}"),
            Source::Default => f.write_str("default"),
        }
    }
}

/// The command line parsed with every layer under it.
pub(crate) struct Layered {
    /// The arguments.
    pub(crate) cli: crate::args::Cli,
    /// The configuration file read, if any.
    pub(crate) file: Option<ConfigFile>,
    /// The subcommand path run.
    pub(crate) path: Vec<String>,
    /// Each setting of it.
    pub(crate) settings: Vec<Setting>,
}

/// One setting of the command run: its file key, values and source.
pub(crate) struct Setting {
    key: String,
    values: Vec<String>,
    source: Source,
}

/// Parses `argv` (already normalised) with the environment and the configuration file.
/// Clap's own errors (and --help, --version) end the process as clap does.
pub(crate) fn parse(argv: Vec<OsString>) -> Result<Layered, Failure> {
    let mut file = match locate(&argv) {
        Some((path, _)) => Some(read(&path)?),
        None => None,
    };
    let base = crate::args::command();
    let settings = match &mut file {
        Some(file) => settings_of(&base, file)?,
        None => Vec::new(),
    };
    // A file setting is left out where an environment variable of the flag's own code
    // gives it, or where a flag it conflicts with is given.
    let mut dropped: Vec<(Vec<String>, String)> = Vec::new();
    for (_, variable) in OWN_ENV
        .iter()
        .filter(|(_, v)| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
    {
        for s in &settings {
            if OWN_ENV.iter().any(|(id, v)| v == variable && *id == s.id) {
                dropped.push((s.command.clone(), s.id.clone()));
            }
        }
    }
    loop {
        let command = with_defaults(base.clone(), &settings, &dropped);
        let matches = command
            .clone()
            .try_get_matches_from(&argv)
            .unwrap_or_else(|e| e.exit());
        let (path, leaf) = leaf(&matches);
        let leaf_command = find(&command, &path);
        let mut more = Vec::new();
        for s in settings.iter().filter(|s| s.command == path) {
            if dropped.contains(&(s.command.clone(), s.id.clone())) {
                continue;
            }
            let Some(arg) = leaf_command
                .get_arguments()
                .find(|a| a.get_id().as_str() == s.id)
            else {
                continue;
            };
            let given = |id: &str| {
                matches!(
                    leaf.value_source(id),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
            };
            if rivals(leaf_command, arg).iter().any(|id| given(id)) {
                more.push((s.command.clone(), s.id.clone()));
            }
        }
        if !more.is_empty() {
            dropped.extend(more);
            continue;
        }
        // In the order of the definition (the file's values moved the arguments they set).
        let sources = sources_of(find(&base, &path), leaf, &settings, &path, &dropped);
        let cli = crate::args::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        return Ok(Layered {
            cli,
            file,
            path,
            settings: sources,
        });
    }
}

/// `command` with the file's values as its arguments' defaults.
fn with_defaults(
    mut command: Command,
    settings: &[FileSetting],
    dropped: &[(Vec<String>, String)],
) -> Command {
    for s in settings {
        if dropped.contains(&(s.command.clone(), s.id.clone())) {
            continue;
        }
        command = apply(command, &s.command, s);
    }
    command
}

fn apply(command: Command, path: &[String], setting: &FileSetting) -> Command {
    match path.split_first() {
        Some((first, rest)) => command.mut_subcommand(first, |sub| apply(sub, rest, setting)),
        None => {
            let groups: Vec<String> = command
                .get_groups()
                .filter(|g| g.get_args().any(|a| a.as_str() == setting.id))
                .map(|g| g.get_id().to_string())
                .collect();
            let mut command = command.mut_arg(setting.id.as_str(), |arg| {
                arg.default_values(setting.values.clone()).required(false)
            });
            // A group the file fills is no longer required on the command line.
            for group in groups {
                command = command.mut_group(group, |g| g.required(false));
            }
            command
        }
    }
}

/// The arguments `arg` cannot be given with: its conflicts, those that name it, and the
/// other members of its one-of groups.
pub(crate) fn rivals(command: &Command, arg: &clap::Arg) -> Vec<String> {
    let id = arg.get_id().as_str();
    let mut out: Vec<String> = command
        .get_arg_conflicts_with(arg)
        .iter()
        .map(|a| a.get_id().to_string())
        .collect();
    out.extend(
        command
            .get_arguments()
            .filter(|other| {
                command
                    .get_arg_conflicts_with(other)
                    .iter()
                    .any(|c| c.get_id() == id)
            })
            .map(|other| other.get_id().to_string()),
    );
    out.extend(group_rivals(command, id));
    out
}

/// The other members of the one-of groups `id` belongs to.
fn group_rivals(command: &Command, id: &str) -> Vec<String> {
    command
        .get_groups()
        .filter(|g| {
            let mut group = (*g).clone();
            g.get_args().any(|a| a.as_str() == id) && !group.is_multiple()
        })
        .flat_map(|g| g.get_args().map(|a| a.to_string()).collect::<Vec<_>>())
        .filter(|a| a != id)
        .collect()
}

/// The subcommand path run and its matches.
fn leaf(matches: &ArgMatches) -> (Vec<String>, &ArgMatches) {
    let mut path = Vec::new();
    let mut current = matches;
    while let Some((name, sub)) = current.subcommand() {
        path.push(name.to_string());
        current = sub;
    }
    (path, current)
}

fn find<'a>(command: &'a Command, path: &[String]) -> &'a Command {
    path.iter()
        .fold(command, |c, name| c.find_subcommand(name).unwrap_or(c))
}

fn sources_of(
    command: &Command,
    matches: &ArgMatches,
    settings: &[FileSetting],
    path: &[String],
    dropped: &[(Vec<String>, String)],
) -> Vec<Setting> {
    let mut out = Vec::new();
    for arg in command.get_arguments().filter(|a| in_file(command, a)) {
        let id = arg.get_id().as_str();
        let key = arg.get_long().unwrap_or(id).replace('-', "_");
        let mut values: Vec<String> = matches
            .get_raw(id)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable) => Source::Env(
                arg.get_env()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            _ => {
                let from_file = settings.iter().find(|s| {
                    s.command == path
                        && s.id == id
                        && !dropped.contains(&(s.command.clone(), s.id.clone()))
                });
                let own_env = OWN_ENV
                    .iter()
                    .find(|(own, _)| *own == id)
                    .and_then(|(_, v)| {
                        std::env::var(v)
                            .ok()
                            .filter(|x| !x.is_empty())
                            .map(|x| (v, x))
                    });
                match (from_file, own_env) {
                    (_, Some((variable, value))) => {
                        values = vec![value];
                        Source::Env((*variable).to_string())
                    }
                    (Some(s), None) => Source::File(s.place.clone()),
                    (None, None) => Source::Default,
                }
            }
        };
        out.push(Setting {
            key,
            values,
            source,
        });
    }
    out
}

/// `--print-config`: each setting of the command, its value and where it came from.
pub(crate) fn print(layered: &Layered) -> String {
    let path = &layered.path;
    let mut rows = vec![[
        "SETTING".to_string(),
        "VALUE".to_string(),
        "SOURCE".to_string(),
    ]];
    for Setting {
        key,
        values,
        source,
    } in &layered.settings
    {
        let value = if values.is_empty() {
            "-".to_string()
        } else {
            values
                .iter()
                .map(|v| redact(v))
                .collect::<Vec<_>>()
                .join(",")
        };
        rows.push([
            format!("{}.{key}", path.join(".")),
            value,
            source.to_string(),
        ]);
    }
    let file = match &layered.file {
        Some(file) => format!("# configuration file: {}\n", file.path.display()),
        None => "# configuration file: none\n".to_string(),
    };
    format!("{file}{}", portgate_report::columns(&rows))
}

/// A URL's password replaced by `***`.
fn redact(value: &str) -> String {
    if let Some((scheme, rest)) = value.split_once("://")
        && let Some((credentials, host)) = rest.split_once('@')
        && let Some((user, _)) = credentials.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    value.to_string()
}

/// The configuration table of the README: each setting of each command, its flag,
/// environment variable, file key and default.
#[cfg(test)]
pub(crate) fn table() -> String {
    let command = crate::args::command();
    let mut out = String::from(
        "| command | flag | environment variable | file key | default |\n|---|---|---|---|---|\n",
    );
    rows(&command, &[], &mut out);
    out.push_str("| (all) | `--config FILE` | `PORTGATE_CONFIG` | | `$XDG_CONFIG_HOME/portgate/config.yaml`, else `~/.config/portgate/config.yaml`, when present |\n");
    out.push_str(
        "| `scan`, `check`, `ack`, `window` with `--server` | | `PORTGATE_API_KEY` | | |\n",
    );
    out
}

#[cfg(test)]
fn rows(command: &Command, path: &[&str], out: &mut String) {
    let name = path.join(" ");
    if !path.is_empty() {
        for arg in command.get_arguments().filter(|a| in_file(command, a)) {
            let Some(long) = arg.get_long() else { continue };
            let value = arg
                .get_value_names()
                .and_then(|v| v.first())
                .filter(|_| arg.get_action().takes_values())
                .map(|v| format!(" {v}"))
                .unwrap_or_default();
            let env = arg
                .get_env()
                .map(|e| e.to_string_lossy().into_owned())
                .or_else(|| {
                    OWN_ENV
                        .iter()
                        .find(|(id, _)| *id == arg.get_id().as_str())
                        .map(|(_, v)| (*v).to_string())
                })
                .map(|e| format!("`{e}`"))
                .unwrap_or_default();
            let key = if command.get_name() == "serve" && arg.get_id().as_str() == "manifests" {
                "`manifests`".to_string()
            } else {
                format!("`{}`", long.replace('-', "_"))
            };
            // A `|` in a cell, even in code, would end it.
            let value = value.replace('|', "\\|");
            let default = default_of(arg).replace('|', "\\|");
            out.push_str(&format!(
                "| `{name}` | `--{long}{value}` | {env} | {key} | {default} |\n"
            ));
        }
    }
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let mut deeper = path.to_vec();
        deeper.push(sub.get_name());
        rows(sub, &deeper, out);
    }
}

/// An argument's default: clap's, else the `[default: …]` of its help.
#[cfg(test)]
fn default_of(arg: &clap::Arg) -> String {
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if !matches!(arg.get_action(), clap::ArgAction::SetTrue) && !defaults.is_empty() {
        return format!("`{}`", defaults.join(","));
    }
    let help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    match help.split_once("[default: ") {
        Some((_, rest)) => rest
            .rsplit_once(']')
            .map(|(d, _)| d.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        None if matches!(arg.get_action(), clap::ArgAction::SetTrue) => "off".to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flag names that mean different things in different commands: their variables carry
    /// the command's name (`PORTGATE_SCAN_RATE`, `PORTGATE_SERVE_RATE`).
    const PER_COMMAND: &[&str] = &["rate", "output", "scope", "fail_on", "manifest"];

    /// Variables named otherwise than by the rule, kept as they were or named by the
    /// convention of their kind (`RUST_LOG`-like filters).
    const NAMED: &[(&str, &str)] = &[("log_level", "PORTGATE_LOG")];

    fn each_arg(command: &Command, path: &[String], out: &mut Vec<(Vec<String>, clap::Arg)>) {
        for arg in command.get_arguments() {
            out.push((path.to_vec(), arg.clone()));
        }
        for sub in command.get_subcommands() {
            let mut deeper = path.to_vec();
            deeper.push(sub.get_name().to_string());
            each_arg(sub, &deeper, out);
        }
    }

    /// PORTGATE_ + the long flag in upper snake case; PORTGATE_ + COMMAND + _ + FLAG for the
    /// flags of [`PER_COMMAND`]; and no variable on a flag that conflicts with another (clap
    /// would count the variable as given, and refuse the other flag).
    #[test]
    fn environment_variables_follow_the_naming_rule() {
        let command = crate::args::command();
        let mut args = Vec::new();
        each_arg(&command, &[], &mut args);
        let mut seen = 0;
        for (path, arg) in &args {
            let Some(env) = arg.get_env() else { continue };
            seen += 1;
            let env = env.to_string_lossy();
            let long = arg.get_long().unwrap_or_default().replace('-', "_");
            let expected = if let Some((_, named)) = NAMED.iter().find(|(id, _)| *id == long) {
                (*named).to_string()
            } else if PER_COMMAND.contains(&long.as_str()) {
                format!("PORTGATE_{}_{}", path.join("_"), long).to_uppercase()
            } else {
                format!("PORTGATE_{long}").to_uppercase()
            };
            assert_eq!(env, expected, "{} --{long}", path.join(" "));
            let owner = path
                .iter()
                .fold(&command, |c, n| c.find_subcommand(n).unwrap_or(c));
            assert!(
                rivals(owner, arg).is_empty(),
                "{} --{long} has a variable and conflicts with another flag",
                path.join(" ")
            );
        }
        assert!(seen > 30, "{seen} variables");
    }

    #[test]
    fn file_values_become_defaults_below_the_environment() {
        let dir = std::env::temp_dir().join(format!("portgate-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let path = dir.join("c.yaml");
        std::fs::write(
            &path,
            "scan:\n  retries: 3\n  input_list: [a.txt, /b.txt]\n",
        )
        .unwrap_or_default();
        let mut file = read(&path).unwrap_or_else(|e| panic!("{}", e.message));
        let settings = settings_of(&crate::args::command(), &mut file)
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(settings.len(), 2);
        // A relative path is the file's directory's.
        assert_eq!(
            settings[1].values,
            vec![
                dir.join("a.txt").display().to_string(),
                "/b.txt".to_string()
            ]
        );
        assert_eq!(settings[0].place, format!("{}:2:3", path.display()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://pg:secret@db.example.test/portgate"),
            "postgres://pg:***@db.example.test/portgate"
        );
        assert_eq!(redact("history.db"), "history.db");
    }

    /// The README's configuration table is this table (`PORTGATE_BLESS=1` rewrites it).
    #[test]
    fn the_readme_table_is_the_command_lines() {
        let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let text = std::fs::read_to_string(readme).unwrap_or_default();
        let (begin, end) = (
            "<!-- configuration table: generated -->\n",
            "<!-- end of the configuration table -->",
        );
        let start = text.find(begin).map(|i| i + begin.len());
        let stop = text.find(end);
        let (Some(start), Some(stop)) = (start, stop) else {
            panic!("README.md has no configuration table between {begin:?} and {end:?}")
        };
        let table = table();
        if std::env::var_os("PORTGATE_BLESS").is_some() {
            let updated = format!("{}{table}{}", &text[..start], &text[stop..]);
            std::fs::write(readme, updated).unwrap_or_default();
            return;
        }
        assert!(
            text[start..stop] == table,
            "README.md's configuration table is out of date; run PORTGATE_BLESS=1 cargo test -p portgate --bin portgate"
        );
    }
}
