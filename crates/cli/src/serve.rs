//! `portgate serve` (the scan service) and `portgate keys` (its API keys).

use crate::Failure;
use crate::history::DbArg;
use clap::{Args, Subcommand};
use portgate_model::Scope;
use portgate_pipeline as pipeline;
use portgate_serve::{Config, State};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub(crate) listen: SocketAddr,

    #[command(flatten)]
    pub(crate) db: DbArg,

    /// What the server may scan: CIDRs (v4 and v6), repeated or comma-separated. Required:
    /// a scanner on a network must be told what it may touch.
    #[arg(long, value_name = "CIDR", required = true, value_delimiter = ',')]
    pub(crate) scope: Vec<String>,

    /// Scans running at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub(crate) workers: usize,

    /// Scans queued or running at once for one key.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub(crate) per_key_scans: i64,

    /// Requests a minute for one key.
    #[arg(long, default_value_t = 120, value_name = "N")]
    pub(crate) rate: u32,

    /// How long a port check's answer is served from the cache.
    #[arg(long, default_value = "60s", value_parser = crate::args::parse_duration, value_name = "DURATION")]
    pub(crate) cache_ttl: Duration,

    /// Take addresses and ranges only: refuse target names, so that the server never asks
    /// DNS.
    #[arg(long)]
    pub(crate) addresses_only: bool,

    /// How long running scans may take to finish on SIGTERM before they are queued again.
    #[arg(long, default_value = "60s", value_parser = crate::args::parse_duration, value_name = "DURATION")]
    pub(crate) drain_timeout: Duration,
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

pub(crate) fn run(args: ServeArgs) -> Result<u8, Failure> {
    let scope = scope_of(&args.scope)?;
    crate::scan::raise_open_file_limit();
    let location = pipeline::location(args.db.db.as_deref())?;
    let runtime = crate::runtime()?;
    runtime.block_on(async {
        let store = pipeline::open_store(&location).await?;
        let mut config = Config::new(args.listen, scope);
        config.workers = args.workers.max(1);
        config.per_key_scans = args.per_key_scans.max(1);
        config.requests_per_minute = args.rate.max(1);
        config.cache_ttl = args.cache_ttl;
        config.resolve_names = !args.addresses_only;
        let listener = portgate_serve::bind(args.listen)
            .await
            .map_err(|e| Failure::usage(e.to_string()))?;
        let bound = listener.local_addr().unwrap_or(args.listen);
        eprintln!("portgate serve: listening on http://{bound} (history: {location})");
        portgate_serve::run(State::new(store, config), listener, args.drain_timeout)
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
