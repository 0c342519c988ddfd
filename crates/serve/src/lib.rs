//! portgate as a service: an HTTP API that takes scan requests (`POST /v1/scans` → a scan
//! id to poll), answers a synchronous port check (`GET /v1/port-scanner`), and runs the
//! scans from a job queue kept in the history store, so that a job whose server died is
//! run again. Every request carries an API key; every target is resolved once and checked
//! against the authorised scope before a single probe.
//!
//! [`router`] builds the whole API for a [`State`] (tests need no socket); [`run`] serves
//! it with its workers until SIGTERM/SIGINT, then drains.

mod api;
mod budget;
mod checks;
mod client;
mod findings;
mod keys;
mod links;
mod maintenance;
mod metrics;
mod monitor;
mod outbox;
mod problem;
mod queue;
mod targets;
mod windows;
mod worker;

pub use api::{ApiDoc, ScanRequest, openapi_json};
pub use budget::{BYTES_PER_PAIR, BYTES_PER_SCAN, Budget, Usage};
pub use checks::CheckRequest;
pub use client::{Client, ClientError};
pub use keys::{KEY_PREFIX, create as create_key, hash as key_hash};
pub use links::AckLinks;
pub use maintenance::{WindowRequest, WindowView, window_of};
pub use metrics::Metrics;
pub use monitor::{AlertRoute, Escalation, Schedule};
pub use problem::{PROBLEM_BASE, Problem};
pub use queue::{Queue, StoreQueue};
pub use targets::{Checked, MAX_TARGETS};
pub use windows::{Window, WindowScope, WindowTime, parse_cron, parse_timezone};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use portgate_model::Scope;
use portgate_store::Store;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// What the server may scan; a key may narrow it further.
    pub scope: Scope,
    /// Scans running at once, all keys together (the workers); by default the machine's
    /// cores.
    pub workers: usize,
    /// Memory the scans running at once may take together, in bytes: a scan waits for its
    /// estimate ([`Budget::estimate`]) to fit beside the running ones.
    pub scan_memory: u64,
    /// Scans queued or running at once for one key.
    pub per_key_scans: i64,
    /// Requests per minute for one key.
    pub requests_per_minute: u32,
    /// How long a synchronous port check's answer is served from the cache.
    pub cache_ttl: Duration,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// How long a worker's lease of a job lasts without a heartbeat.
    pub lease: Duration,
    /// Longest scan a request may ask for (`timeout`).
    pub max_scan_time: Duration,
    /// Bound on resolving one target name.
    pub resolve_timeout: Duration,
    /// Manifests the server checks by name (`POST /v1/checks {"manifest": NAME}`).
    pub manifests: std::collections::BTreeMap<String, std::path::PathBuf>,
    /// Scan tiers that queue checks of the configured manifests on a cron.
    pub schedules: Vec<Schedule>,
    /// Where the news of scheduled checks goes.
    pub alerts: Vec<AlertRoute>,
    /// Maintenance windows of the configuration file (those of the API are in the store).
    pub windows: Vec<Window>,
    /// Unacknowledged findings that go to a second channel after a while.
    pub escalations: Vec<Escalation>,
    /// The opening of a finding is not sent again within this long (it was resolved and
    /// reopened meanwhile).
    pub repeat_interval: Duration,
    /// Signed acknowledgement links in the alerts.
    pub ack_links: Option<AckLinks>,
    /// Whether target names are resolved (`false`: only addresses and ranges are taken,
    /// and the server never asks DNS).
    pub resolve_names: bool,
}

impl Config {
    /// The defaults, listening on `listen` with `scope`.
    pub fn new(listen: SocketAddr, scope: Scope) -> Self {
        Config {
            listen,
            scope,
            workers: default_workers(),
            scan_memory: DEFAULT_SCAN_MEMORY,
            per_key_scans: 4,
            requests_per_minute: 120,
            cache_ttl: Duration::from_secs(60),
            max_body: 64 * 1024,
            lease: Duration::from_secs(15),
            max_scan_time: Duration::from_secs(900),
            resolve_timeout: Duration::from_secs(5),
            resolve_names: true,
            manifests: std::collections::BTreeMap::new(),
            schedules: Vec::new(),
            alerts: Vec::new(),
            windows: Vec::new(),
            escalations: Vec::new(),
            repeat_interval: Duration::from_secs(4 * 3600),
            ack_links: None,
        }
    }
}

/// The default memory budget of the scans running at once: 1 GiB.
pub const DEFAULT_SCAN_MEMORY: u64 = 1 << 30;

/// The default number of workers: one per core this process may use. A scan already keeps
/// thousands of probes in flight; more scans than cores only share the cores (and the API's
/// answers wait behind them): `bench/serve.py` measured 50 loopback scans done in 90 s two
/// at a time on 2 cores, 149 s four at a time, 269 s fifty at a time.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Answers of the synchronous port check, by resolved address, port set and options.
type Cache = Mutex<HashMap<String, (Instant, serde_json::Value)>>;

/// What the handlers and the workers share.
pub struct Inner {
    /// The store: keys, jobs, scans.
    pub store: Store,
    /// The settings.
    pub config: Config,
    /// The queue the workers take jobs from.
    pub queue: Arc<dyn Queue>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// The memory the running scans share.
    pub budget: Budget,
    /// Wakes the alert sender when a message is written to the outbox.
    pub outbox_wake: tokio::sync::Notify,
    /// The tags of each manifest asset, as the last check read them (windows by tag).
    pub asset_tags: Mutex<monitor::AssetTags>,
    limiter: DefaultKeyedRateLimiter<i64>,
    cache: Cache,
    port_checks: Semaphore,
    draining: AtomicBool,
}

/// The shared state of one server.
#[derive(Clone)]
pub struct State(pub Arc<Inner>);

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("store", &self.0.store)
            .field("listen", &self.0.config.listen)
            .finish()
    }
}

impl State {
    /// The state of a server on `store` with `config`, its queue in this process.
    pub fn new(store: Store, config: Config) -> State {
        let per_minute =
            NonZeroU32::new(config.requests_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let workers = config.workers.max(1);
        let store_queue: Arc<dyn Queue> = Arc::new(StoreQueue::new());
        State(Arc::new(Inner {
            store,
            queue: store_queue,
            metrics: Metrics::default(),
            budget: Budget::new(config.scan_memory),
            outbox_wake: tokio::sync::Notify::new(),
            asset_tags: Mutex::new(monitor::AssetTags::new()),
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            cache: Mutex::new(HashMap::new()),
            port_checks: Semaphore::new(workers),
            draining: AtomicBool::new(false),
            config,
        }))
    }

    /// Stops taking new jobs and refusing readiness; running jobs go on.
    pub fn drain(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
        self.0.queue.wake_all();
    }

    /// Whether the server is draining.
    pub fn draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }
}

/// The whole API.
pub fn router(state: State) -> axum::Router {
    api::router(state)
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] portgate_store::StoreError),
    /// Serving failed.
    #[error("server: {0}")]
    Io(std::io::Error),
}

/// Serves the API on `listener` with `state`'s workers until SIGTERM or SIGINT; then stops
/// taking jobs, lets running scans finish (or, past `drain_timeout`, queues them again)
/// and returns.
pub async fn run(
    state: State,
    listener: tokio::net::TcpListener,
    drain_timeout: Duration,
) -> Result<(), ServeError> {
    // Jobs of a server that died on this host are run again.
    let requeued = state.0.store.requeue_dead_workers().await?;
    if requeued > 0 {
        tracing::warn!(
            jobs = requeued,
            "{requeued} interrupted job(s) queued again"
        );
    }
    let mut workers = worker::spawn(&state);
    workers.push(tokio::spawn(monitor::run_schedules(state.clone())));
    workers.push(tokio::spawn(outbox::run(state.clone())));
    let app = router(state.clone());
    let shutdown_state = state.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("draining");
        shutdown_state.drain();
    });
    server.await.map_err(ServeError::Io)?;
    let wait_all = async {
        for w in workers {
            let _ = w.await;
        }
    };
    if tokio::time::timeout(drain_timeout, wait_all).await.is_err() {
        let owner = portgate_store::worker_id();
        let n = state
            .0
            .store
            .requeue_jobs(chrono::Utc::now(), Some(&owner))
            .await?;
        tracing::warn!(
            jobs = n,
            "{n} running job(s) queued again for the next start"
        );
    }
    Ok(())
}

/// Binds `addr`.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
