//! What `CachingStore` adds to the contract: coherence on this instance, bounded staleness
//! across instances.

use std::future::{pending, poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use serde_json::json;
use sessionware::store::{
    now, Applied, CachingStore, ChangeSet, Created, Cycled, Listed, Record, Rekey, SessionStore,
};
use sessionware::{MemoryStore, SessionId};

fn record() -> Record {
    let t = now();
    Record::new(
        [("a".to_owned(), json!(1))].into(),
        t + Duration::from_millis(3_600_000),
    )
    .with_created_at(t)
}

#[tokio::test]
async fn a_destroyed_session_is_never_served_from_this_instance_cache() {
    let store = CachingStore::new(MemoryStore::default(), MemoryStore::default());
    let key = SessionId::generate().store_key();
    assert_eq!(store.create(&key, &record()).await.unwrap(), Created::Done);
    assert!(store.load(&key).await.unwrap().is_some());
    assert_eq!(store.cache().len(), 1);
    store.delete(&key).await.unwrap();
    assert!(store.load(&key).await.unwrap().is_none());

    // Cycle: the old key is gone from the cache too.
    let (old, new) = (
        SessionId::generate().store_key(),
        SessionId::generate().store_key(),
    );
    assert_eq!(store.create(&old, &record()).await.unwrap(), Created::Done);
    store.load(&old).await.unwrap();
    assert_eq!(
        store
            .cycle(
                Rekey::new(&old, &new),
                &ChangeSet::new(now() + Duration::from_millis(60_000))
            )
            .await
            .unwrap(),
        Cycled::Done
    );
    assert!(store.load(&old).await.unwrap().is_none());
    assert_eq!(
        store.load(&new).await.unwrap().unwrap().data.get("a"),
        Some(&json!(1))
    );
}

#[tokio::test]
async fn another_instance_sees_a_destroy_within_the_staleness_bound() {
    let backing = MemoryStore::default();
    let one = CachingStore::new(MemoryStore::default(), backing.clone());
    let two = CachingStore::new(MemoryStore::default(), backing.clone())
        .with_max_staleness(Duration::from_millis(300));
    let key = SessionId::generate().store_key();
    assert_eq!(one.create(&key, &record()).await.unwrap(), Created::Done);
    assert!(
        two.load(&key).await.unwrap().is_some(),
        "instance two could not read the session"
    );

    one.delete(&key).await.unwrap();
    // Instance two refuses to write to it at once, and evicts its copy...
    let write = ChangeSet::new(now() + Duration::from_millis(60_000)).with_set("b", json!(2));
    assert_eq!(two.apply(&key, &write).await.unwrap(), Applied::Missing);
    assert!(two.load(&key).await.unwrap().is_none());
    assert!(
        backing.is_empty(),
        "the refused write resurrected the session"
    );

    // ...and a read-only copy expires within the bound.
    let other = SessionId::generate().store_key();
    assert_eq!(one.create(&other, &record()).await.unwrap(), Created::Done);
    two.load(&other).await.unwrap();
    one.delete(&other).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        two.load(&other).await.unwrap().is_none(),
        "a stale copy outlived max_staleness"
    );
}

#[tokio::test]
async fn cached_loads_keep_the_real_deadline() {
    let store = CachingStore::new(MemoryStore::default(), MemoryStore::default());
    let key = SessionId::generate().store_key();
    let rec = record();
    assert_eq!(store.create(&key, &rec).await.unwrap(), Created::Done);
    for _ in 0..2 {
        let loaded = store.load(&key).await.unwrap().unwrap();
        assert_eq!(loaded.expires_at, rec.expires_at);
        assert_eq!(
            loaded.data, rec.data,
            "the cache's bookkeeping leaked into the data"
        );
    }
}

/// A backing store whose writes take a varying time after they land, so that concurrent writes
/// finish in another order than they were applied (fault injection only).
#[derive(Debug, Clone, Default)]
struct Jittery(MemoryStore);

#[async_trait::async_trait]
impl SessionStore for Jittery {
    async fn load(
        &self,
        key: &sessionware::StoreKey,
    ) -> Result<Option<Record>, sessionware::StoreError> {
        self.0.load(key).await
    }
    async fn create(
        &self,
        key: &sessionware::StoreKey,
        record: &Record,
    ) -> Result<Created, sessionware::StoreError> {
        self.0.create(key, record).await
    }
    async fn apply(
        &self,
        key: &sessionware::StoreKey,
        changes: &ChangeSet,
    ) -> Result<Applied, sessionware::StoreError> {
        let outcome = self.0.apply(key, changes).await;
        let jitter = changes
            .updates
            .values()
            .next()
            .and_then(|v| v.value()?.as_u64())
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis((jitter * 7) % 20)).await;
        outcome
    }
    async fn cycle(
        &self,
        keys: Rekey<'_>,
        changes: &ChangeSet,
    ) -> Result<Cycled, sessionware::StoreError> {
        self.0.cycle(keys, changes).await
    }
    async fn delete(&self, key: &sessionware::StoreKey) -> Result<(), sessionware::StoreError> {
        self.0.delete(key).await
    }
    async fn delete_expired(&self) -> Result<u64, sessionware::StoreError> {
        self.0.delete_expired().await
    }
    async fn list(&self, principal: &str) -> Result<Vec<Listed>, sessionware::StoreError> {
        self.0.list(principal).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_leave_the_cache_agreeing_with_the_backing_store() {
    let backing = Jittery::default();
    let store = std::sync::Arc::new(CachingStore::new(MemoryStore::default(), backing.clone()));
    let key = SessionId::generate().store_key();
    assert_eq!(store.create(&key, &record()).await.unwrap(), Created::Done);
    let tasks: Vec<_> = (0..32_u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.load(&key).await.unwrap();
                let changes =
                    ChangeSet::new(now() + Duration::from_millis(60_000)).with_set("a", json!(i));
                store.apply(&key, &changes).await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Applied::Done);
    }
    let cached = store.load(&key).await.unwrap().unwrap().data;
    let stored = backing.load(&key).await.unwrap().unwrap().data;
    assert_eq!(cached, stored, "the cache and the backing store disagree");
}

#[tokio::test]
async fn a_write_cancelled_after_it_landed_does_not_leave_a_stale_copy() {
    // Jittery sleeps (value * 7) % 20 ms after the write lands: 2 -> 14 ms.
    let backing = Jittery::default();
    let store = CachingStore::new(MemoryStore::default(), backing.clone());
    let key = SessionId::generate().store_key();
    assert_eq!(store.create(&key, &record()).await.unwrap(), Created::Done);
    assert_eq!(store.load(&key).await.unwrap().unwrap().data["a"], json!(1));

    // The request is dropped (client gone) after the backing store took the write, before the
    // cache was evicted.
    let changes = ChangeSet::new(now() + Duration::from_millis(60_000)).with_set("a", json!(2));
    let cancelled =
        tokio::time::timeout(Duration::from_millis(5), store.apply(&key, &changes)).await;
    assert!(cancelled.is_err(), "the write should have been cut short");
    assert_eq!(
        backing.load(&key).await.unwrap().unwrap().data["a"],
        json!(2)
    );
    assert_eq!(
        store.load(&key).await.unwrap().unwrap().data["a"],
        json!(2),
        "served a stale copy"
    );
}

/// A backing store whose writes land (a memory store's do at once) and then never return, so a
/// write polled once and dropped is cancelled after it landed (fault injection only).
#[derive(Debug, Clone, Default)]
struct Hanging(MemoryStore);

#[async_trait::async_trait]
impl SessionStore for Hanging {
    async fn load(
        &self,
        key: &sessionware::StoreKey,
    ) -> Result<Option<Record>, sessionware::StoreError> {
        self.0.load(key).await
    }
    async fn create(
        &self,
        key: &sessionware::StoreKey,
        record: &Record,
    ) -> Result<Created, sessionware::StoreError> {
        self.0.create(key, record).await
    }
    async fn apply(
        &self,
        key: &sessionware::StoreKey,
        changes: &ChangeSet,
    ) -> Result<Applied, sessionware::StoreError> {
        let _landed = self.0.apply(key, changes).await;
        pending().await
    }
    async fn cycle(
        &self,
        keys: Rekey<'_>,
        changes: &ChangeSet,
    ) -> Result<Cycled, sessionware::StoreError> {
        self.0.cycle(keys, changes).await
    }
    async fn delete(&self, key: &sessionware::StoreKey) -> Result<(), sessionware::StoreError> {
        self.0.delete(key).await
    }
    async fn delete_expired(&self) -> Result<u64, sessionware::StoreError> {
        self.0.delete_expired().await
    }
    async fn list(&self, principal: &str) -> Result<Vec<Listed>, sessionware::StoreError> {
        self.0.list(principal).await
    }
}

/// Polls `future` once, checks that it is still pending, and drops it: a request cancelled
/// halfway (client gone), without timers.
async fn cancel_after_one_poll(future: impl Future) {
    let mut future = pin!(future);
    poll_fn(|cx| {
        assert!(
            future.as_mut().poll(cx).is_pending(),
            "it was not cut short"
        );
        Poll::Ready(())
    })
    .await;
}

#[tokio::test]
async fn many_cancelled_writes_never_let_a_stale_copy_be_served() {
    // A long window: no copy expires during the test, so only the store's own bookkeeping can
    // keep a stale copy from being served.
    let backing = Hanging::default();
    let store = CachingStore::new(MemoryStore::default(), backing.clone())
        .with_max_staleness(Duration::from_secs(600));
    let set_a = |value: i64| {
        ChangeSet::new(now() + Duration::from_millis(60_000)).with_set("a", json!(value))
    };
    let (first, last) = (
        SessionId::generate().store_key(),
        SessionId::generate().store_key(),
    );
    for key in [first, last] {
        assert_eq!(store.create(&key, &record()).await.unwrap(), Created::Done);
        assert_eq!(store.load(&key).await.unwrap().unwrap().data["a"], json!(1));
    }

    // Cancelled after it landed, before the cache was evicted: `first` is marked stale...
    cancel_after_one_poll(store.apply(&first, &set_a(2))).await;
    // ...then far more cancelled writes than the store keeps marks for, on sessions never
    // loaded again (here: absent ones)...
    for _ in 0..10_000 {
        let other = SessionId::generate().store_key();
        cancel_after_one_poll(store.apply(&other, &set_a(2))).await;
    }
    // ...and one more on `last`, with the marks at or near their bound.
    cancel_after_one_poll(store.apply(&last, &set_a(2))).await;

    for key in [first, last] {
        assert_eq!(
            backing.load(&key).await.unwrap().unwrap().data["a"],
            json!(2)
        );
        assert_eq!(
            store.load(&key).await.unwrap().unwrap().data["a"],
            json!(2),
            "served a stale copy"
        );
    }
}
