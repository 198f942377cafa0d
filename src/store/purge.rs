//! [`PurgeTask`]: deleting expired sessions in the background.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::SessionStore;

/// A background task that calls [`SessionStore::delete_expired`] periodically, until stopped.
///
/// Stores already treat expired sessions as absent; purging only reclaims space. Errors are
/// logged (`tracing` warn) and the task carries on at the next period. Dropping the handle
/// stops the task too.
///
/// ```
/// use std::time::Duration;
/// use sessionware::store::PurgeTask;
/// use sessionware::{MemoryStore, SessionLayer};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = MemoryStore::default();
/// let purge = PurgeTask::spawn(store.clone(), Duration::from_secs(60));
/// let layer = SessionLayer::new(store);
/// // ... serve ...
/// purge.stop().await;
/// # let _ = layer;
/// # });
/// ```
#[derive(Debug)]
pub struct PurgeTask {
    stop: Arc<Notify>,
    handle: Option<JoinHandle<()>>,
}

impl PurgeTask {
    /// Starts purging `store` every `period` (the first run after one period), on the current
    /// tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`] does.
    pub fn spawn(store: impl SessionStore, period: Duration) -> Self {
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let handle = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stopped.notified() => break,
                    _ = ticks.tick() => match store.delete_expired().await {
                        Ok(count) => tracing::debug!(count, "purged expired sessions"),
                        Err(error) => tracing::warn!(%error, "purging expired sessions failed"),
                    },
                }
            }
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the task and waits until it has finished (a purge under way completes first).
    pub async fn stop(mut self) {
        self.stop.notify_one();
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }
}

impl Drop for PurgeTask {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }
}
