//! [`PurgeTask`]: deleting expired sessions in the background.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};

use super::SessionStore;

/// A background task that calls [`SessionStore::delete_expired`] periodically, until stopped.
///
/// Stores already treat expired sessions as absent; purging only reclaims space. Errors are
/// logged (`tracing` warn) and the task carries on at the next period. Dropping the handle
/// stops the task too, and cancels a purge under way.
///
/// # Panics in the store
///
/// Each purge runs in a task of its own, so a store whose `delete_expired` panics does not take
/// the purge task down with it: the panic is logged when it happens (a `tracing` error event,
/// "session purge task: a purge panicked") and the task carries on at the next period, as it
/// does after an error; the next purge may well succeed, and requests keep using the store
/// anyway. [`stop`](Self::stop) then returns [`PurgeError::Panicked`], so that a shutdown
/// reports it; and [`PurgeError::Died`] if the task itself ended before it was stopped
/// (its runtime shut down).
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
/// let stopped = purge.stop().await;
/// assert!(stopped.is_ok(), "the purge task failed: {stopped:?}");
/// # let _ = layer;
/// # });
/// ```
#[derive(Debug)]
pub struct PurgeTask {
    stop: Arc<Notify>,
    handle: Option<JoinHandle<Option<PurgeError>>>,
}

/// What went wrong with a [`PurgeTask`]: a period [`PurgeTask::try_spawn`] refused
/// ([`ZeroPeriod`](Self::ZeroPeriod), [`PeriodTooLong`](Self::PeriodTooLong)), or how the task
/// failed, as [`PurgeTask::stop`] reports it ([`Panicked`](Self::Panicked),
/// [`Died`](Self::Died)).
///
/// ```
/// use std::time::Duration;
/// use sessionware::store::PurgeTask;
/// use sessionware::MemoryStore;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let refused = PurgeTask::try_spawn(MemoryStore::default(), Duration::ZERO).unwrap_err();
/// assert_eq!(refused.to_string(), "the period is zero");
/// let refused = PurgeTask::try_spawn(MemoryStore::default(), Duration::MAX).unwrap_err();
/// assert!(refused.to_string().contains("too long"));
/// # });
/// ```
///
/// A purge that panics is reported when the task is stopped:
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use sessionware::store::{
///     Applied, ChangeSet, Created, Cycled, Listed, PurgeTask, Record, Rekey, SessionStore,
/// };
/// use sessionware::{StoreError, StoreKey};
/// use tokio::sync::Notify;
///
/// /// A store whose purge panics (and says when it starts).
/// #[derive(Debug, Default)]
/// struct Broken(Arc<Notify>);
///
/// #[async_trait::async_trait]
/// impl SessionStore for Broken {
///     // load, create, apply, cycle, delete ...
/// #   async fn load(&self, _: &StoreKey) -> Result<Option<Record>, StoreError> { Ok(None) }
/// #   async fn create(&self, _: &StoreKey, _: &Record) -> Result<Created, StoreError> {
/// #       Ok(Created::Done)
/// #   }
/// #   async fn apply(&self, _: &StoreKey, _: &ChangeSet) -> Result<Applied, StoreError> {
/// #       Ok(Applied::Missing)
/// #   }
/// #   async fn cycle(&self, _: Rekey<'_>, _: &ChangeSet) -> Result<Cycled, StoreError> {
/// #       Ok(Cycled::Missing)
/// #   }
/// #   async fn delete(&self, _: &StoreKey) -> Result<(), StoreError> { Ok(()) }
/// #   async fn list(&self, _: &str) -> Result<Vec<Listed>, StoreError> { Ok(Vec::new()) }
///     async fn delete_expired(&self) -> Result<u64, StoreError> {
///         self.0.notify_one();
///         panic!("the purge query is broken")
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = Broken::default();
/// let purging = store.0.clone();
/// let purge = PurgeTask::spawn(store, Duration::from_millis(10));
/// purging.notified().await;
/// let failure = purge.stop().await.unwrap_err();
/// assert!(failure.to_string().contains("the purge query is broken"), "{failure}");
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PurgeError {
    /// The period is zero: the task would purge in a busy loop (and tokio's interval refuses
    /// it).
    #[error("the period is zero")]
    ZeroPeriod,
    /// The period is so long that the time of the second purge does not fit in an
    /// [`Instant`](std::time::Instant) (hundreds of billions of years on Linux): it would
    /// overflow.
    #[error("the period {period:?} is too long: the time of the second purge overflows")]
    PeriodTooLong {
        /// The period refused.
        period: Duration,
    },
    /// [`SessionStore::delete_expired`] panicked, `panics` times; the task carried on after
    /// each (each was logged as it happened).
    #[error("session purge task: {panics} purge(s) panicked, the last with: {message}")]
    Panicked {
        /// How many purges panicked.
        panics: u64,
        /// The last panic's message.
        message: String,
    },
    /// The task ended before it was stopped: its runtime shut down (or it panicked itself).
    #[error("session purge task died before it was stopped: {message}")]
    Died {
        /// What ended it.
        message: String,
    },
}

impl PurgeTask {
    /// Starts purging `store` every `period` (the first run after one period), on the current
    /// tokio runtime.
    ///
    /// # Panics
    ///
    /// At the call site, with a message starting `Invalid purge period:`, if `period` is zero
    /// or too long ([`try_spawn`](Self::try_spawn) returns the error instead). Outside a tokio
    /// runtime, as [`tokio::spawn`] does.
    ///
    /// ```should_panic
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use sessionware::store::PurgeTask;
    /// use sessionware::MemoryStore;
    ///
    /// // Panics here: "Invalid purge period: the period is zero".
    /// let _purge = PurgeTask::spawn(MemoryStore::default(), Duration::ZERO);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn(store: impl SessionStore, period: Duration) -> Self {
        match Self::try_spawn(store, period) {
            Ok(task) => task,
            Err(error) => panic!("Invalid purge period: {error}"),
        }
    }

    /// Like [`spawn`](Self::spawn), but returns an error for a period it cannot use (zero, or
    /// too long) instead of panicking.
    ///
    /// # Errors
    ///
    /// [`PurgeError::ZeroPeriod`] and [`PurgeError::PeriodTooLong`]; no task was started.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`] does.
    ///
    /// ```
    /// use std::time::Duration;
    /// use sessionware::store::PurgeTask;
    /// use sessionware::MemoryStore;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let purge = PurgeTask::try_spawn(MemoryStore::default(), Duration::from_secs(60));
    /// assert!(purge.is_ok());
    /// assert!(PurgeTask::try_spawn(MemoryStore::default(), Duration::ZERO).is_err());
    /// # });
    /// ```
    #[track_caller]
    pub fn try_spawn(store: impl SessionStore, period: Duration) -> Result<Self, PurgeError> {
        if period.is_zero() {
            return Err(PurgeError::ZeroPeriod);
        }
        // Checked here rather than left to tokio, which would panic inside the task: the
        // interval adds the period to the time of each purge (and the timer rounds a deadline
        // up by a millisecond), so two periods from now must fit.
        let now = Instant::now();
        let first = period
            .checked_mul(2)
            .and_then(|twice| now.checked_add(twice))
            .and_then(|_| now.checked_add(period))
            .ok_or(PurgeError::PeriodTooLong { period })?;
        let stop = Arc::new(Notify::new());
        let handle = tokio::spawn(run(Arc::new(store), first, period, stop.clone()));
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the task and waits until it has finished (a purge under way completes first).
    ///
    /// # Errors
    ///
    /// [`PurgeError::Panicked`] if any purge panicked while the task ran (it carried on);
    /// [`PurgeError::Died`] if the task had ended before (logged now, as a `tracing` error
    /// event).
    ///
    /// ```
    /// use std::time::Duration;
    /// use sessionware::store::PurgeTask;
    /// use sessionware::MemoryStore;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let purge = PurgeTask::spawn(MemoryStore::default(), Duration::from_millis(10));
    /// assert_eq!(purge.stop().await, Ok(()));
    /// # });
    /// ```
    pub async fn stop(mut self) -> Result<(), PurgeError> {
        self.stop.notify_one();
        // Always `Some` here: only `stop` takes it, and `stop` takes `self`.
        let Some(handle) = self.handle.take() else {
            return Ok(());
        };
        match handle.await {
            Ok(None) => Ok(()),
            Ok(Some(failure)) => Err(failure),
            Err(error) => {
                let message = panic_message(error);
                tracing::error!(%message, "session purge task died before it was stopped");
                Err(PurgeError::Died { message })
            }
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

/// The task: purges at `first`, then every `period`, until `stop` is notified. Returns what went
/// wrong meanwhile, if anything did.
async fn run<S: SessionStore>(
    store: Arc<S>,
    first: Instant,
    period: Duration,
    stop: Arc<Notify>,
) -> Option<PurgeError> {
    let mut ticks = tokio::time::interval_at(first, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut panics = 0_u64;
    let mut last_panic = String::new();
    loop {
        tokio::select! {
            // A stop asked during a purge ends the task right after it, not after one more.
            biased;
            () = stop.notified() => break,
            _ = ticks.tick() => {
                // In a task of its own, so that a panic in the store is caught here; the set
                // aborts it if this task is aborted (the handle dropped).
                let mut purge = JoinSet::new();
                let store = store.clone();
                purge.spawn(async move { store.delete_expired().await });
                match purge.join_next().await {
                    Some(Ok(Ok(count))) => tracing::debug!(count, "purged expired sessions"),
                    Some(Ok(Err(error))) => {
                        tracing::warn!(%error, "purging expired sessions failed");
                    }
                    Some(Err(error)) => {
                        panics += 1;
                        last_panic = panic_message(error);
                        tracing::error!(
                            panic = %last_panic,
                            panics,
                            "session purge task: a purge panicked; purging carries on at the \
                             next period"
                        );
                    }
                    // One task was spawned, so there is one result.
                    None => {}
                }
            }
        }
    }
    (panics > 0).then_some(PurgeError::Panicked {
        panics,
        message: last_panic,
    })
}

/// The message of a task's panic, or why it was cancelled.
fn panic_message(error: JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload_message(&*payload),
        // Cancelled: the runtime is shutting down.
        Err(error) => error.to_string(),
    }
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a payload that is not a string".to_owned()
    }
}
