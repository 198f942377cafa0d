//! `PurgeTask` deletes expired sessions in the background and stops when told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sessionware::store::{
    now, Applied, ChangeSet, Created, Cycled, Listed, PurgeTask, Record, Rekey, SessionStore,
};
use sessionware::{MemoryStore, SessionId, StoreError, StoreKey};
use tokio::sync::Notify;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

#[tokio::test]
async fn purge_task_removes_expired_sessions_until_stopped() {
    let store = MemoryStore::default();
    let t = now();
    let short = Record::new(
        [("a".to_owned(), json!(1))].into(),
        t + Duration::from_millis(200),
    )
    .with_created_at(t);
    let long =
        Record::new(short.data.clone(), t + Duration::from_millis(3_600_000)).with_created_at(t);
    for _ in 0..10 {
        let outcome = store
            .create(&SessionId::generate().store_key(), &short)
            .await
            .unwrap();
        assert_eq!(outcome, Created::Done);
    }
    let live = SessionId::generate().store_key();
    assert_eq!(store.create(&live, &long).await.unwrap(), Created::Done);

    let task = PurgeTask::spawn(store.clone(), Duration::from_millis(100));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.len(), 1, "expired sessions were not purged");
    assert!(store.load(&live).await.unwrap().is_some());
    assert!(task.stop().await.is_ok());

    // Stopped: new expired entries stay until someone else purges them.
    let late =
        Record::new(short.data.clone(), now() + Duration::from_millis(50)).with_created_at(now());
    assert_eq!(
        store
            .create(&SessionId::generate().store_key(), &late)
            .await
            .unwrap(),
        Created::Done
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn try_spawn_refuses_a_zero_or_overflowing_period() {
    let refused = PurgeTask::try_spawn(MemoryStore::default(), Duration::ZERO).unwrap_err();
    assert_eq!(refused.to_string(), "the period is zero");
    let refused = PurgeTask::try_spawn(MemoryStore::default(), Duration::MAX).unwrap_err();
    assert!(refused.to_string().contains("too long"), "{refused}");

    // A long period that fits is fine: the task starts, and stops at once.
    let century = Duration::from_secs(100 * 366 * 24 * 3600);
    let task = PurgeTask::try_spawn(MemoryStore::default(), century).unwrap();
    assert!(task.stop().await.is_ok());
}

#[tokio::test]
#[should_panic(expected = "Invalid purge period: the period is zero")]
async fn spawn_panics_at_the_call_site_on_a_zero_period() {
    // Not in the task, where nobody would see it: the panic reaches this test.
    let _task = PurgeTask::spawn(MemoryStore::default(), Duration::ZERO);
}

/// Records the `tracing` error events of the thread it is the default subscriber of.
#[derive(Clone, Debug, Default)]
struct Errors(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for Errors {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            let mut text = String::new();
            event.record(
                &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                    text.push_str(&format!("{}={value:?} ", field.name()));
                },
            );
            self.0.lock().unwrap().push(text);
        }
    }
}

impl Errors {
    /// Makes this the current thread's subscriber until the guard is dropped.
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
    }

    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A store whose `delete_expired` panics, after saying it started (fault injection only).
#[derive(Debug, Default)]
struct PanickingPurge(Arc<Notify>);

#[async_trait::async_trait]
impl SessionStore for PanickingPurge {
    async fn load(&self, _: &StoreKey) -> Result<Option<Record>, StoreError> {
        Ok(None)
    }
    async fn create(&self, _: &StoreKey, _: &Record) -> Result<Created, StoreError> {
        Ok(Created::Done)
    }
    async fn apply(&self, _: &StoreKey, _: &ChangeSet) -> Result<Applied, StoreError> {
        Ok(Applied::Missing)
    }
    async fn cycle(&self, _: Rekey<'_>, _: &ChangeSet) -> Result<Cycled, StoreError> {
        Ok(Cycled::Missing)
    }
    async fn delete(&self, _: &StoreKey) -> Result<(), StoreError> {
        Ok(())
    }
    async fn delete_expired(&self) -> Result<u64, StoreError> {
        self.0.notify_one();
        panic!("purge query exploded");
    }
    async fn list(&self, _: &str) -> Result<Vec<Listed>, StoreError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_panicking_purge_is_logged_at_once_and_reported_by_stop() {
    let errors = Errors::default();
    let _capture = errors.capture();
    let store = PanickingPurge::default();
    let purging = store.0.clone();
    let task = PurgeTask::spawn(store, Duration::from_millis(10));

    // Two purges start: the task carried on after the first one panicked. (The timeout only
    // keeps a broken task from hanging the test.)
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), purging.notified())
            .await
            .expect("the task stopped purging after a panic");
    }
    let failure = task.stop().await.unwrap_err().to_string();
    assert!(failure.contains("2 purge(s) panicked"), "{failure}");
    assert!(failure.contains("purge query exploded"), "{failure}");

    let events = errors.events();
    assert_eq!(events.len(), 2, "one error event per panic: {events:?}");
    for event in events {
        assert!(event.contains("session purge task"), "{event}");
        assert!(event.contains("purge query exploded"), "{event}");
    }
}

#[test]
fn a_purge_task_whose_runtime_shut_down_is_reported_by_stop() {
    let errors = Errors::default();
    let _capture = errors.capture();
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let first = runtime();
    let task =
        first.block_on(async { PurgeTask::spawn(MemoryStore::default(), Duration::from_secs(60)) });
    drop(first);

    let failure = runtime().block_on(task.stop()).unwrap_err().to_string();
    assert!(failure.contains("died before it was stopped"), "{failure}");
    let events = errors.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("session purge task died"), "{events:?}");
}
