//! The store contract, one test function per point. Each takes a fresh store handle; tests use
//! random keys, so they may share a backend and run in parallel.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sessionware::store::{
    now, Applied, ChangeSet, Created, Cycled, Record, Rekey, SessionStore, Touched,
};
use sessionware::{Expiry, ExpirySettings, SessionId, SessionLayer, StoreError, StoreKey};
use tokio::time::sleep;

use crate::common::{self, send_ok};

fn key() -> StoreKey {
    SessionId::generate().store_key()
}

fn record(data: Value, ttl_ms: i64) -> Record {
    let data = match data {
        Value::Object(map) => map.into_iter().collect(),
        _ => panic!("record data must be an object"),
    };
    let t = now();
    Record::new(data, t + ttl_ms).with_created_at(t)
}

const HOUR: i64 = 3_600_000;

async fn must_load(store: &impl SessionStore, key: &StoreKey) -> Record {
    store
        .load(key)
        .await
        .unwrap()
        .expect("session should exist")
}

pub async fn create_load_apply_delete(store: impl SessionStore) {
    let k = key();
    assert!(store.load(&k).await.unwrap().is_none());
    let rec = record(
        json!({"a": 1, "b": "two", "nested": {"x": [1, 2, null]}, "u": "żółć 😀"}),
        HOUR,
    );
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    let loaded = must_load(&store, &k).await;
    assert_eq!(loaded.data, rec.data);
    assert_eq!(loaded.created_at, rec.created_at);
    assert_eq!(loaded.expires_at, rec.expires_at);
    assert_eq!(loaded.expiry, ExpirySettings::default());

    // The session's own settings, "keep me signed in" included, are kept by every store.
    let own = ExpirySettings::from(Some(Expiry::OnInactivity(Duration::from_secs(90))))
        .with_absolute_timeout(Some(Duration::from_secs(30 * 24 * 3600)));
    let changes = ChangeSet::new(rec.expires_at + 1000)
        .with_update("a", Some(json!(2)))
        .with_update("b", None)
        .with_update("c", Some(json!({"deep": true})))
        .with_expiry(own);
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    let loaded = must_load(&store, &k).await;
    assert_eq!(loaded.data.get("a"), Some(&json!(2)));
    assert_eq!(loaded.data.get("b"), None);
    assert_eq!(loaded.data.get("c"), Some(&json!({"deep": true})));
    assert_eq!(loaded.data.get("nested"), rec.data.get("nested"));
    assert_eq!(loaded.data.get("u"), Some(&json!("żółć 😀")));
    assert_eq!(loaded.expires_at, rec.expires_at + 1000);
    assert_eq!(loaded.created_at, rec.created_at);
    assert_eq!(loaded.expiry, own);

    let cleared = ChangeSet::new(rec.expires_at)
        .with_clear()
        .with_update("fresh", Some(json!(1)));
    assert_eq!(store.apply(&k, &cleared).await.unwrap(), Applied::Done);
    let loaded = must_load(&store, &k).await;
    assert_eq!(loaded.data.len(), 1);
    assert_eq!(loaded.data.get("fresh"), Some(&json!(1)));
    assert_eq!(loaded.expiry, own, "untouched expiry settings changed");

    // A cycle keeps them; a change back to the layer's settings drops them.
    let moved = key();
    let cycle = ChangeSet::new(rec.expires_at);
    assert_eq!(
        store.cycle(Rekey::new(&k, &moved), &cycle).await.unwrap(),
        Cycled::Done
    );
    assert_eq!(must_load(&store, &moved).await.expiry, own);
    let reset = ChangeSet::new(rec.expires_at).with_expiry(ExpirySettings::default());
    assert_eq!(store.apply(&moved, &reset).await.unwrap(), Applied::Done);
    assert_eq!(
        must_load(&store, &moved).await.expiry,
        ExpirySettings::default()
    );
    let k = moved;

    store.delete(&k).await.unwrap();
    assert!(store.load(&k).await.unwrap().is_none());
    store.delete(&k).await.unwrap();
}

pub async fn create_never_overwrites(store: impl SessionStore) {
    let k = key();
    assert_eq!(
        store
            .create(&k, &record(json!({"owner": "first"}), HOUR))
            .await
            .unwrap(),
        Created::Done
    );
    assert_eq!(
        store
            .create(&k, &record(json!({"owner": "second"}), HOUR))
            .await
            .unwrap(),
        Created::Collision
    );
    assert_eq!(
        must_load(&store, &k).await.data.get("owner"),
        Some(&json!("first"))
    );
}

pub async fn no_resurrection_after_delete(store: impl SessionStore) {
    let k = key();
    let rec = record(json!({"a": 1}), HOUR);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    store.delete(&k).await.unwrap();
    let changes = ChangeSet::new(rec.expires_at).with_update("a", Some(json!(2)));
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Missing);
    assert_eq!(
        store.touch(&k, rec.expires_at + HOUR).await.unwrap(),
        Touched::Missing
    );
    assert_eq!(
        store.cycle(Rekey::new(&k, &key()), &changes).await.unwrap(),
        Cycled::Missing
    );
    assert!(store.load(&k).await.unwrap().is_none());
}

pub async fn cycle_moves_the_session(store: impl SessionStore) {
    let (old, new, taken) = (key(), key(), key());
    let rec = record(json!({"user": 7, "drop": true}), HOUR);
    assert_eq!(store.create(&old, &rec).await.unwrap(), Created::Done);
    assert_eq!(
        store
            .create(&taken, &record(json!({"other": 1}), HOUR))
            .await
            .unwrap(),
        Created::Done
    );

    let changes = ChangeSet::new(rec.expires_at + 5)
        .with_update("drop", None)
        .with_update("role", Some(json!("admin")));
    // A taken target: nothing changes anywhere.
    assert_eq!(
        store
            .cycle(Rekey::new(&old, &taken), &changes)
            .await
            .unwrap(),
        Cycled::Collision
    );
    assert_eq!(must_load(&store, &old).await.data, rec.data);
    assert_eq!(
        must_load(&store, &taken).await.data.get("other"),
        Some(&json!(1))
    );

    assert_eq!(
        store.cycle(Rekey::new(&old, &new), &changes).await.unwrap(),
        Cycled::Done
    );
    assert!(store.load(&old).await.unwrap().is_none());
    let moved = must_load(&store, &new).await;
    assert_eq!(moved.data.get("user"), Some(&json!(7)));
    assert_eq!(moved.data.get("role"), Some(&json!("admin")));
    assert_eq!(moved.data.get("drop"), None);
    assert_eq!(
        moved.created_at, rec.created_at,
        "cycling must not reset the absolute timeout"
    );
    assert_eq!(moved.expires_at, rec.expires_at + 5);

    // The old key is dead for writes too.
    let late = ChangeSet::new(rec.expires_at).with_update("late", Some(json!(1)));
    assert_eq!(store.apply(&old, &late).await.unwrap(), Applied::Missing);
    assert!(store.load(&old).await.unwrap().is_none());
}

pub async fn touch_moves_only_the_deadline(store: impl SessionStore) {
    let k = key();
    let rec = record(json!({"a": 1}), 2_000);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    assert_eq!(
        store.touch(&k, rec.expires_at + HOUR).await.unwrap(),
        Touched::Done
    );
    let loaded = must_load(&store, &k).await;
    assert_eq!(loaded.expires_at, rec.expires_at + HOUR);
    assert_eq!(loaded.data, rec.data);
}

pub async fn expired_sessions_are_gone(store: impl SessionStore) {
    let (short, long) = (key(), key());
    let rec = record(json!({"a": 1}), 1_000);
    assert_eq!(store.create(&short, &rec).await.unwrap(), Created::Done);
    assert_eq!(
        store
            .create(&long, &record(json!({"b": 2}), HOUR))
            .await
            .unwrap(),
        Created::Done
    );
    assert!(store.load(&short).await.unwrap().is_some());
    sleep(Duration::from_millis(1_200)).await;

    assert!(
        store.load(&short).await.unwrap().is_none(),
        "an expired session was served"
    );
    let changes = ChangeSet::new(now() + HOUR).with_update("a", Some(json!(2)));
    assert_eq!(
        store.apply(&short, &changes).await.unwrap(),
        Applied::Missing
    );
    assert_eq!(
        store.touch(&short, now() + HOUR).await.unwrap(),
        Touched::Missing
    );
    assert_eq!(
        store
            .cycle(Rekey::new(&short, &key()), &changes)
            .await
            .unwrap(),
        Cycled::Missing
    );
    assert!(
        store.load(&short).await.unwrap().is_none(),
        "a write resurrected an expired session"
    );

    // An expired key is free again (ids never repeat in practice, but the store must not refuse).
    assert!(store.delete_expired().await.unwrap() <= 1_000_000);
    assert!(
        store.load(&long).await.unwrap().is_some(),
        "delete_expired removed a live session"
    );
    assert_eq!(
        store
            .create(&short, &record(json!({"c": 3}), HOUR))
            .await
            .unwrap(),
        Created::Done
    );
    assert_eq!(
        must_load(&store, &short).await.data.get("c"),
        Some(&json!(3))
    );
}

pub async fn delete_expired_purges(store: impl SessionStore) {
    let keys: Vec<StoreKey> = (0..5).map(|_| key()).collect();
    for k in &keys {
        assert_eq!(
            store
                .create(k, &record(json!({"a": 1}), 500))
                .await
                .unwrap(),
            Created::Done
        );
    }
    let live = key();
    assert_eq!(
        store
            .create(&live, &record(json!({"a": 1}), HOUR))
            .await
            .unwrap(),
        Created::Done
    );
    sleep(Duration::from_millis(700)).await;
    // Other tests may share the backend, so at least ours were purged.
    let purged = store.delete_expired().await.unwrap();
    assert!(
        purged >= 5 || store_uses_native_ttl(&store),
        "purged only {purged}"
    );
    for k in &keys {
        assert!(store.load(k).await.unwrap().is_none());
    }
    assert!(store.load(&live).await.unwrap().is_some());
}

/// Stores whose backend expires keys by itself (Redis) may have purged them before we ask.
fn store_uses_native_ttl(store: &impl SessionStore) -> bool {
    format!("{store:?}").starts_with("RedisStore")
}

pub async fn concurrent_distinct_keys_all_survive(store: impl SessionStore) {
    let store = Arc::new(store);
    let k = key();
    let rec = record(json!({"seed": 0}), HOUR);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let changes =
                    ChangeSet::new(rec.expires_at).with_update(format!("k{i}"), Some(json!(i)));
                store.apply(&k, &changes).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), Applied::Done);
    }
    let loaded = must_load(&*store, &k).await;
    for i in 0..32 {
        assert_eq!(
            loaded.data.get(&format!("k{i}")),
            Some(&json!(i)),
            "k{i} lost"
        );
    }
    assert_eq!(loaded.data.get("seed"), Some(&json!(0)));
}

pub async fn concurrent_writes_to_one_key_leave_one_winner(store: impl SessionStore) {
    let store = Arc::new(store);
    let k = key();
    let rec = record(json!({}), HOUR);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let changes = ChangeSet::new(rec.expires_at).with_update("same", Some(json!(i)));
                store.apply(&k, &changes).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), Applied::Done);
    }
    let value = must_load(&*store, &k)
        .await
        .data
        .get("same")
        .cloned()
        .unwrap();
    assert!((0..32).any(|i| value == json!(i)), "{value}");
}

/// More values than any store sends in one call (Redis: 512 fields per command, SQLite: 50
/// paths per JSON function), created, changed, partly removed and cycled.
pub async fn a_session_with_many_values(store: impl SessionStore) {
    let k = key();
    let data: serde_json::Map<String, Value> =
        (0..1500).map(|i| (format!("k{i}"), json!(i))).collect();
    let rec = record(Value::Object(data), HOUR);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    assert_eq!(must_load(&store, &k).await.data, rec.data);

    // Set 1,200 (400 of them new), remove 700.
    let mut changes = ChangeSet::new(rec.expires_at + 1000);
    for i in 800..2000 {
        changes = changes.with_update(format!("k{i}"), Some(json!(-i)));
    }
    for i in 0..700 {
        changes = changes.with_update(format!("k{i}"), None);
    }
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    let expected: std::collections::BTreeMap<String, Value> = (700..2000)
        .map(|i| (format!("k{i}"), json!(if i < 800 { i } else { -i })))
        .collect();
    let check = |loaded: Record| {
        let got: std::collections::BTreeMap<String, Value> = loaded.data.into_iter().collect();
        assert_eq!(got, expected);
        assert_eq!(loaded.expires_at, rec.expires_at + 1000);
    };
    check(must_load(&store, &k).await);

    let new = key();
    let keep = ChangeSet::new(rec.expires_at + 1000);
    assert_eq!(
        store.cycle(Rekey::new(&k, &new), &keep).await.unwrap(),
        Cycled::Done
    );
    assert!(store.load(&k).await.unwrap().is_none());
    check(must_load(&store, &new).await);
}

pub async fn a_thousand_sessions(store: impl SessionStore) {
    let store = Arc::new(store);
    let keys: Vec<StoreKey> = (0..1000).map(|_| key()).collect();
    let chunks: Vec<Vec<(usize, StoreKey)>> = keys
        .iter()
        .copied()
        .enumerate()
        .collect::<Vec<_>>()
        .chunks(100)
        .map(<[_]>::to_vec)
        .collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let store = store.clone();
            tokio::spawn(async move {
                for (i, k) in chunk {
                    assert_eq!(
                        store
                            .create(&k, &record(json!({"n": i}), HOUR))
                            .await
                            .unwrap(),
                        Created::Done
                    );
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut seen = HashSet::new();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(must_load(&*store, k).await.data.get("n"), Some(&json!(i)));
        seen.insert(*k);
    }
    assert_eq!(seen.len(), 1000);
}

/// The store behind a real router: round trip, cycle, destroy, and the absolute timeout.
pub async fn through_the_layer(store: impl SessionStore) {
    let app = common::routes().layer(
        SessionLayer::new(store)
            .with_expiry(Expiry::OnInactivity(Duration::from_secs(60)))
            .with_absolute_timeout(Duration::from_millis(1_500)),
    );
    let first = send_ok(&app, "/write", None).await;
    assert_eq!(first.body, "1");
    let cookie = first.first_cookie().unwrap();
    assert_eq!(send_ok(&app, "/write", Some(&cookie)).await.body, "2");
    let cycled = send_ok(&app, "/cycle", Some(&cookie))
        .await
        .first_cookie()
        .unwrap();
    assert_eq!(
        send_ok(&app, "/write", Some(&cookie)).await.body,
        "1",
        "old id still alive after cycle"
    );
    assert_eq!(send_ok(&app, "/write", Some(&cycled)).await.body, "3");
    sleep(Duration::from_millis(1_600)).await;
    assert_eq!(
        send_ok(&app, "/write", Some(&cycled)).await.body,
        "1",
        "absolute timeout not enforced"
    );

    let fresh = send_ok(&app, "/write", None).await.first_cookie().unwrap();
    send_ok(&app, "/destroy", Some(&fresh)).await;
    assert_eq!(
        send_ok(&app, "/write", Some(&fresh)).await.body,
        "1",
        "destroyed session came back"
    );
}

// Used by the server stores' own corrupt-row tests (tests/conformance/stores/).
#[allow(dead_code)]
/// Garbage written straight into the backend under `k` must give a clear error or no session,
/// never a panic, and the layer must answer with a fresh session.
pub async fn corrupt_row_is_not_a_panic<S, F, Fut>(store: S, corrupt: F)
where
    S: SessionStore + Clone,
    F: Fn(S, StoreKey) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let k = key();
    assert_eq!(
        store
            .create(&k, &record(json!({"a": 1}), HOUR))
            .await
            .unwrap(),
        Created::Done
    );
    corrupt(store.clone(), k).await;
    match store.load(&k).await {
        Ok(None) | Err(StoreError::Corrupt(_)) => {}
        other => panic!("corrupt row loaded as {other:?}"),
    }
    // A write to it must not panic either; it may fail cleanly.
    let _ = store
        .apply(
            &k,
            &ChangeSet::new(now() + HOUR).with_update("b", Some(json!(2))),
        )
        .await;
    store.delete(&k).await.unwrap();
    assert!(store.load(&k).await.unwrap().is_none());
}

/// The size cap holds for what is stored, whatever concurrent change sets merge: eight writers,
/// each well under the cap alone, race on one session; the store keeps it under the cap and
/// refuses the writes that would cross it, whole. The count is the stored JSON's, escapes
/// included; removals are never refused; a cycle is capped too and leaves both keys as they
/// were when refused.
pub async fn size_cap_holds_for_what_is_stored(store: impl SessionStore) {
    const CAP: usize = 4096;
    let store = Arc::new(store);
    let k = key();
    let rec = record(json!({"seed": 0}), HOUR);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let changes = ChangeSet::new(rec.expires_at)
                    .with_update(format!("k{i}"), Some(json!("x".repeat(1200))))
                    .with_max_size(CAP);
                barrier.wait().await;
                store.apply(&k, &changes).await.unwrap()
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        match task.await.unwrap() {
            Applied::Done => done += 1,
            Applied::TooLarge { size } => assert!(size > CAP, "refused at {size} bytes"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let loaded = must_load(&*store, &k).await;
    let stored = sessionware::store::data_size(&loaded.data);
    assert!(
        stored <= CAP,
        "the store holds {stored} bytes, over the cap"
    );
    assert_eq!(
        done,
        loaded.data.len() - 1,
        "a refused write left something behind"
    );
    assert_eq!(
        done, 3,
        "three 1.2 kB values fit in 4 kB, a fourth does not"
    );

    // Keys count as stored: escaped. 300 quotes are 600 bytes of JSON, 300 unescaped.
    let quotes = "\"".repeat(300);
    let escaped = ChangeSet::new(rec.expires_at)
        .with_update(quotes.clone(), Some(json!(1)))
        .with_max_size(stored + 400);
    assert!(
        matches!(
            store.apply(&k, &escaped).await.unwrap(),
            Applied::TooLarge { .. }
        ),
        "a key that needs escaping was counted unescaped"
    );
    let kept = must_load(&*store, &k).await;
    assert!(!kept.data.contains_key(&quotes));

    // Removing never needs room, even under a cap the session is already over.
    let some_key = kept
        .data
        .keys()
        .find(|k| k.starts_with('k'))
        .unwrap()
        .clone();
    let shrink = ChangeSet::new(rec.expires_at)
        .with_update(some_key, None)
        .with_max_size(10);
    assert_eq!(store.apply(&k, &shrink).await.unwrap(), Applied::Done);
    // Clearing makes room for what follows it.
    let replace = ChangeSet::new(rec.expires_at)
        .with_clear()
        .with_update("big", Some(json!("y".repeat(3500))))
        .with_max_size(CAP);
    assert_eq!(store.apply(&k, &replace).await.unwrap(), Applied::Done);

    // A cycle is refused whole: the old key keeps the session, the new one stays free.
    let new = key();
    let grow = ChangeSet::new(rec.expires_at)
        .with_update("more", Some(json!("z".repeat(1000))))
        .with_max_size(CAP);
    assert!(matches!(
        store.cycle(Rekey::new(&k, &new), &grow).await.unwrap(),
        Cycled::TooLarge { .. }
    ));
    assert!(store.load(&new).await.unwrap().is_none());
    let kept = must_load(&*store, &k).await;
    assert!(kept.data.contains_key("big") && !kept.data.contains_key("more"));
    // And a cycle that fits moves it.
    let fits = ChangeSet::new(rec.expires_at)
        .with_update("small", Some(json!(1)))
        .with_max_size(CAP);
    assert_eq!(
        store.cycle(Rekey::new(&k, &new), &fits).await.unwrap(),
        Cycled::Done
    );
    assert!(must_load(&*store, &new).await.data.contains_key("small"));
}

/// Compare-and-set: a change set with preconditions applies only if each key holds the value
/// it expects (absent for `None`), compared as JSON values, atomically with the write; sixteen
/// writers incrementing one key through it lose no increment.
pub async fn preconditions_guard_a_change(store: impl SessionStore) {
    let store = Arc::new(store);
    let k = key();
    let rec = record(json!({"n": 1, "obj": {"b": 1, "a": [2, "x"]}}), HOUR);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    let at = rec.expires_at;

    let incr = ChangeSet::new(at)
        .with_expected("n", Some(json!(1)))
        .with_update("n", Some(json!(2)));
    assert_eq!(store.apply(&k, &incr).await.unwrap(), Applied::Done);
    assert_eq!(store.apply(&k, &incr).await.unwrap(), Applied::Conflict);
    assert_eq!(must_load(&*store, &k).await.data["n"], json!(2));

    // Absent means absent; the same value with its keys in another order is the same value.
    let first = ChangeSet::new(at)
        .with_expected("flash", None)
        .with_update("flash", Some(json!("hi")));
    assert_eq!(store.apply(&k, &first).await.unwrap(), Applied::Done);
    assert_eq!(store.apply(&k, &first).await.unwrap(), Applied::Conflict);
    let same = ChangeSet::new(at)
        .with_expected("obj", Some(json!({"a": [2, "x"], "b": 1})))
        .with_expected("flash", Some(json!("hi")))
        .with_update("flash", None);
    assert_eq!(store.apply(&k, &same).await.unwrap(), Applied::Done);
    let loaded = must_load(&*store, &k).await;
    assert!(
        !loaded.data.contains_key("flash"),
        "a consumed value came back"
    );

    // A value and an absence expected in one write, with a removal and a set: each
    // precondition is checked against its own key.
    let mixed = |n: i64| {
        ChangeSet::new(at)
            .with_expected("n", Some(json!(n)))
            .with_expected("gone", None)
            .with_update("flash", None)
            .with_update("m", Some(json!(n)))
    };
    assert_eq!(store.apply(&k, &mixed(1)).await.unwrap(), Applied::Conflict);
    assert_eq!(store.apply(&k, &mixed(2)).await.unwrap(), Applied::Done);
    assert_eq!(must_load(&*store, &k).await.data["m"], json!(2));
    let now_present = ChangeSet::new(at).with_update("gone", Some(json!(0)));
    assert_eq!(store.apply(&k, &now_present).await.unwrap(), Applied::Done);
    assert_eq!(store.apply(&k, &mixed(2)).await.unwrap(), Applied::Conflict);

    // A cycle with a failing precondition changes nothing; a holding one moves the session.
    let new = key();
    let stale = ChangeSet::new(at).with_expected("n", Some(json!(1)));
    assert_eq!(
        store.cycle(Rekey::new(&k, &new), &stale).await.unwrap(),
        Cycled::Conflict
    );
    assert!(store.load(&new).await.unwrap().is_none());
    let fresh = ChangeSet::new(at)
        .with_expected("n", Some(json!(2)))
        .with_update("n", Some(json!(3)));
    assert_eq!(
        store.cycle(Rekey::new(&k, &new), &fresh).await.unwrap(),
        Cycled::Done
    );
    assert_eq!(must_load(&*store, &new).await.data["n"], json!(3));
    // On a session that is gone, the answer is Missing, not Conflict.
    assert_eq!(store.apply(&k, &incr).await.unwrap(), Applied::Missing);

    // Sixteen writers, each reading and writing back n + 1 until its write is not refused.
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                loop {
                    let n = must_load(&*store, &new).await.data["n"].clone();
                    let next = json!(n.as_i64().unwrap() + 1);
                    let change = ChangeSet::new(at)
                        .with_expected("n", Some(n))
                        .with_update("n", Some(next));
                    match store.apply(&new, &change).await.unwrap() {
                        Applied::Done => return,
                        Applied::Conflict => {}
                        other => panic!("{other:?}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(must_load(&*store, &new).await.data["n"], json!(3 + 16));
}

/// Session values as a list of keys and values.
type Entries = Vec<(String, Value)>;

/// Keys and values whose JSON needs every kind of escape (`/` needs none, but Lua's cjson
/// writes `\/`), characters beyond ASCII, and numbers as serde_json writes them (`0.1`,
/// `1e300`, `-0.0`, the extreme integers). No NUL: PostgreSQL's `jsonb` cannot hold one.
fn awkward_entries() -> Entries {
    [
        ("a/b/c", json!("x/y/z")),
        ("quote\"d", json!("say \"hi\"")),
        ("back\\slash", json!("C:\\dir\\file")),
        (
            "ctl \u{1}\n\t\r\u{8}\u{c}\u{1f}",
            json!("ctl \u{1}\n\t\r\u{1f}"),
        ),
        ("del \u{7f}", json!("del \u{7f}")),
        ("é 😀 ü", json!("é 😀 ü /")),
        ("tenth", json!(0.1)),
        ("huge", json!(1e300)),
        ("minus zero", json!(-0.0)),
        ("u64", json!(u64::MAX)),
        ("i64", json!(i64::MIN)),
        ("tiny", json!(1.5e-7)),
        (
            "nested/obj",
            json!({"k/\"\u{1}é": [0.1, -0.0, 1e300, "a/b", null, true, u64::MAX]}),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    // Every ASCII character but NUL, in a key and in a value.
    .chain([(every_ascii(), json!(every_ascii()))])
    .collect()
}

fn every_ascii() -> String {
    (1u8..=127).map(char::from).collect()
}

/// One definition of size, at the cap's edge: a session whose values are exactly
/// [`data_size`](sessionware::store::data_size) bytes fits a cap of that size and not one
/// byte less, for `apply` and `cycle`, whatever its keys and values need escaped. (A store
/// that counts a key or a number otherwise refuses what the layer accepted, or the reverse.)
pub async fn size_at_the_cap_is_data_size(store: impl SessionStore) {
    let entries = awkward_entries();
    let (first, second) = entries.split_at(entries.len() / 2);
    let base: sessionware::store::Data = first.iter().cloned().collect();
    let mut changes = ChangeSet::new(now() + HOUR)
        // Replaces a stored value, and removes another: both count with what stays.
        .with_update(first[0].0.clone(), Some(json!("replaced/\"\u{1}é")))
        .with_update(first[1].0.clone(), None);
    for (key, value) in second {
        changes = changes.with_update(key.clone(), Some(value.clone()));
    }
    let mut after = Record::new(base.clone(), 0);
    changes.apply_to(&mut after);
    let size = sessionware::store::data_size(&after.data);
    let capped = |cap: usize| changes.clone().with_max_size(cap);

    // apply: one byte short is refused, with the size the values would have; the edge fits.
    let k = key();
    let rec = record(Value::Object(base.clone().into_iter().collect()), HOUR);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    assert_eq!(
        store.apply(&k, &capped(size - 1)).await.unwrap(),
        Applied::TooLarge { size },
        "apply counted another size than data_size"
    );
    assert_eq!(
        must_load(&store, &k).await.data,
        base,
        "a refused apply wrote"
    );
    assert_eq!(
        store.apply(&k, &capped(size)).await.unwrap(),
        Applied::Done,
        "apply refused a session of exactly the cap"
    );
    assert_eq!(must_load(&store, &k).await.data, after.data);

    // cycle: the same edge; a refused cycle leaves the old key whole and the new one free.
    let old = key();
    assert_eq!(store.create(&old, &rec).await.unwrap(), Created::Done);
    let new = key();
    assert_eq!(
        store
            .cycle(Rekey::new(&old, &new), &capped(size - 1))
            .await
            .unwrap(),
        Cycled::TooLarge { size },
        "cycle counted another size than data_size"
    );
    assert!(store.load(&new).await.unwrap().is_none());
    assert_eq!(must_load(&store, &old).await.data, base);
    assert_eq!(
        store
            .cycle(Rekey::new(&old, &new), &capped(size))
            .await
            .unwrap(),
        Cycled::Done,
        "cycle refused a session of exactly the cap"
    );
    assert_eq!(must_load(&store, &new).await.data, after.data);
}

/// The same edge through the layer, which counts as its inserts go: a session filled to
/// exactly the cap is saved whether it is new (`create`), stored (`apply`) or moved to a new
/// id (`cycle`), and one more byte is refused by the insert, never later by the store.
/// `-0.0` as `0.0`: PostgreSQL's `jsonb` has no negative zero, so it reads back the other
/// zero (of the same size: the cap is not what differs).
fn without_negative_zero(value: Value) -> Value {
    match value {
        Value::Number(n) if n.as_f64().is_some_and(|z| z == 0.0 && z.is_sign_negative()) => {
            serde_json::json!(0.0)
        }
        Value::Array(items) => items.into_iter().map(without_negative_zero).collect(),
        Value::Object(entries) => entries
            .into_iter()
            .map(|(key, value)| (key, without_negative_zero(value)))
            .collect(),
        other => other,
    }
}

pub async fn size_at_the_cap_through_the_layer(store: impl SessionStore) {
    use axum::routing::get;
    use sessionware::{Error, Session};

    async fn put(session: &Session, entries: &[(String, Value)]) -> Result<(), Error> {
        for (key, value) in entries {
            session.insert(key, value.clone()).await?;
        }
        Ok(())
    }
    fn halves() -> (Entries, Entries) {
        let mut first = awkward_entries();
        let second = first.split_off(first.len() / 2);
        (first, second)
    }
    let all: sessionware::store::Data = awkward_entries().into_iter().collect();
    let cap = sessionware::store::data_size(&all);
    let app = axum::Router::new()
        .route(
            "/all",
            get(|s: Session| async move { put(&s, &awkward_entries()).await }),
        )
        .route(
            "/first",
            get(|s: Session| async move { put(&s, &halves().0).await }),
        )
        .route(
            "/second",
            get(|s: Session| async move { put(&s, &halves().1).await }),
        )
        .route(
            "/cycle-second",
            get(|s: Session| async move {
                s.cycle_id().await?;
                put(&s, &halves().1).await
            }),
        )
        .route(
            "/one-more",
            get(|s: Session| async move { s.insert("+", 1).await }),
        )
        .route(
            "/dump",
            get(|s: Session| async move {
                let mut shown = serde_json::Map::new();
                for (key, _) in awkward_entries() {
                    if let Some(value) = s.get::<Value>(&key).await? {
                        shown.insert(key, without_negative_zero(value));
                    }
                }
                Ok::<_, Error>(Value::Object(shown).to_string())
            }),
        )
        .layer(SessionLayer::new(store).with_max_session_size(cap));
    let everything = all.clone().into_iter();
    let everything = everything.map(|(key, value)| (key, without_negative_zero(value)));
    let everything = Value::Object(everything.collect()).to_string();
    let dump = |cookie: String| {
        let app = app.clone();
        async move { send_ok(&app, "/dump", Some(&cookie)).await.body }
    };

    // create: a new session of exactly the cap is saved.
    let created = send_ok(&app, "/all", None).await.cookie();
    assert_eq!(dump(created.clone()).await, everything, "create at the cap");
    let over = common::send(&app, "/one-more", Some(&created)).await;
    assert_ne!(over.status, 200, "one byte over the cap was accepted");
    assert_eq!(dump(created).await, everything);

    // apply: a stored session filled up to exactly the cap is saved.
    let stored = send_ok(&app, "/first", None).await.cookie();
    send_ok(&app, "/second", Some(&stored)).await;
    assert_eq!(dump(stored).await, everything, "apply at the cap");

    // cycle: the same, moved to a new id in the same store step.
    let old = send_ok(&app, "/first", None).await.cookie();
    let moved = send_ok(&app, "/cycle-second", Some(&old)).await.cookie();
    assert_ne!(moved, old);
    assert_eq!(dump(moved).await, everything, "cycle at the cap");
}

/// A session holding `count` flash-like messages (`__flash.<hex>`) besides two ordinary values,
/// and a change set that takes them all: each expected with its value, then removed (what
/// `Session::take_flashes` writes).
fn many_messages(count: usize) -> (Record, ChangeSet) {
    let message = |i: usize| (format!("__flash.{i:08x}"), json!(format!("message {i}")));
    let mut data = serde_json::Map::new();
    data.insert("user".into(), json!("alice"));
    data.insert("n".into(), json!(1));
    data.extend((0..count).map(message));
    let rec = record(Value::Object(data), HOUR);
    let changes = (0..count).fold(ChangeSet::new(rec.expires_at), |changes, i| {
        let (key, value) = message(i);
        changes
            .with_expected(key.clone(), Some(value))
            .with_update(key, None)
    });
    (rec, changes)
}

/// A change set with thousands of keys (2,000 expected values removed, plus sets and an absence
/// expected) applies in one step, and cycles: a session holding many unread flash messages can
/// take them all at once, on every store.
pub async fn a_change_set_with_thousands_of_keys(store: impl SessionStore) {
    const COUNT: usize = 2_000;
    let expected: std::collections::BTreeMap<String, Value> = [
        ("user".to_owned(), json!("alice")),
        ("n".to_owned(), json!(2)),
    ]
    .into_iter()
    .chain((0..5).map(|i| (format!("set {i}"), json!({"i": i}))))
    .collect();
    let take_all = |changes: ChangeSet| {
        (0..5)
            .fold(changes, |c, i| {
                c.with_update(format!("set {i}"), Some(json!({"i": i})))
            })
            .with_expected("n", Some(json!(1)))
            .with_update("n", Some(json!(2)))
            .with_expected("never set", None)
    };

    let k = key();
    let (rec, changes) = many_messages(COUNT);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    assert_eq!(must_load(&store, &k).await.data, rec.data);
    assert_eq!(
        store.apply(&k, &take_all(changes)).await.unwrap(),
        Applied::Done
    );
    let loaded = must_load(&store, &k).await;
    let got: std::collections::BTreeMap<String, Value> = loaded.data.into_iter().collect();
    assert_eq!(got, expected);

    // The same change set moving the session to a new key.
    let (old, new) = (key(), key());
    let (rec, changes) = many_messages(COUNT);
    assert_eq!(store.create(&old, &rec).await.unwrap(), Created::Done);
    assert_eq!(
        store
            .cycle(Rekey::new(&old, &new), &take_all(changes))
            .await
            .unwrap(),
        Cycled::Done
    );
    assert!(store.load(&old).await.unwrap().is_none());
    let loaded = must_load(&store, &new).await;
    let got: std::collections::BTreeMap<String, Value> = loaded.data.into_iter().collect();
    assert_eq!(got, expected);
}

/// One failed precondition among 2,000 (a value, or an absence) refuses the whole change set:
/// `Conflict`, and nothing changed.
pub async fn one_failed_precondition_of_thousands_changes_nothing(store: impl SessionStore) {
    const COUNT: usize = 2_000;
    let k = key();
    let (rec, changes) = many_messages(COUNT);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    let changes = changes.with_update("n", Some(json!(2)));
    // Another request took message 1,234 meanwhile.
    let stale = changes
        .clone()
        .with_expected(format!("__flash.{:08x}", 1234), Some(json!("message 4321")));
    assert_eq!(store.apply(&k, &stale).await.unwrap(), Applied::Conflict);
    assert_eq!(must_load(&store, &k).await.data, rec.data);
    // A key that must be absent is there.
    let present = changes.clone().with_expected("user", None);
    assert_eq!(store.apply(&k, &present).await.unwrap(), Applied::Conflict);
    assert_eq!(must_load(&store, &k).await.data, rec.data);
    let new = key();
    assert_eq!(
        store.cycle(Rekey::new(&k, &new), &stale).await.unwrap(),
        Cycled::Conflict
    );
    assert!(store.load(&new).await.unwrap().is_none());
    assert_eq!(must_load(&store, &k).await.data, rec.data);
    // With every precondition holding, the same change set applies.
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    let loaded = must_load(&store, &k).await;
    assert_eq!(loaded.data.len(), 2, "{:?}", loaded.data.keys());
    assert_eq!(loaded.data["n"], json!(2));
}
