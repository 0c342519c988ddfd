//! The job queue the workers take from. Jobs are kept in the store (they survive the
//! process); the queue says when to look. [`StoreQueue`] is the in-process queue: a job
//! pushed here wakes a worker of this process, and a worker also looks every second (jobs
//! queued again after a crash, or by another server on the same database).

use portgate_store::{Job, Store, StoreError};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::Notify;

/// A boxed future of the queue.
pub type QueueFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where workers take jobs from.
pub trait Queue: Send + Sync + 'static {
    /// A job was stored as queued: tell a worker.
    fn pushed(&self, job: i64);
    /// The next job for `owner` with a lease of `lease`, waiting at most `wait`; `None`
    /// when none came.
    fn next<'a>(
        &'a self,
        store: &'a Store,
        owner: &'a str,
        lease: Duration,
        wait: Duration,
    ) -> QueueFuture<'a, Result<Option<Job>, StoreError>>;
    /// Wake every waiting worker (to see that the server drains).
    fn wake_all(&self);
}

/// The in-process queue over the store's job table.
#[derive(Debug, Default)]
pub struct StoreQueue {
    notify: Notify,
}

impl StoreQueue {
    /// A new queue.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Queue for StoreQueue {
    fn pushed(&self, _job: i64) {
        self.notify.notify_one();
    }

    fn next<'a>(
        &'a self,
        store: &'a Store,
        owner: &'a str,
        lease: Duration,
        wait: Duration,
    ) -> QueueFuture<'a, Result<Option<Job>, StoreError>> {
        Box::pin(async move {
            if let Some(job) = store.claim_job(owner, lease).await? {
                return Ok(Some(job));
            }
            let _ = tokio::time::timeout(wait, self.notify.notified()).await;
            store.claim_job(owner, lease).await
        })
    }

    fn wake_all(&self) {
        self.notify.notify_waiters();
    }
}
