//! Concurrency and volume: writers racing on distinct keys and on one key, a session with more
//! values than one backend call carries, and a thousand sessions.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::store::{Applied, ChangeSet, Created, Cycled, Record, Rekey, SessionStore};
use crate::StoreKey;
use serde_json::{json, Value};

use super::{key, must_load, record, HOUR};

/// Change sets of concurrent requests writing different keys of one session all land: none is
/// lost (the delta apply, per key).
pub async fn concurrent_distinct_keys_all_survive(store: impl SessionStore) {
    let store = Arc::new(store);
    let k = key();
    let rec = record(json!({"seed": 0}), HOUR);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let changes = ChangeSet::new(rec.expires_at).with_set(format!("k{i}"), json!(i));
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

/// Concurrent writes to one key leave exactly one of the written values, whole.
pub async fn concurrent_writes_to_one_key_leave_one_winner(store: impl SessionStore) {
    let store = Arc::new(store);
    let k = key();
    let rec = record(json!({}), HOUR);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let changes = ChangeSet::new(rec.expires_at).with_set("same", json!(i));
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
    let mut changes = ChangeSet::new(rec.expires_at + Duration::from_millis(1000));
    for i in 800..2000 {
        changes = changes.with_set(format!("k{i}"), json!(-i));
    }
    for i in 0..700 {
        changes = changes.with_remove(format!("k{i}"));
    }
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    let expected: std::collections::BTreeMap<String, Value> = (700..2000)
        .map(|i| (format!("k{i}"), json!(if i < 800 { i } else { -i })))
        .collect();
    let check = |loaded: Record| {
        let got: std::collections::BTreeMap<String, Value> = loaded.data.into_iter().collect();
        assert_eq!(got, expected);
        assert_eq!(
            loaded.expires_at,
            rec.expires_at + Duration::from_millis(1000)
        );
    };
    check(must_load(&store, &k).await);

    let new = key();
    let keep = ChangeSet::new(rec.expires_at + Duration::from_millis(1000));
    assert_eq!(
        store.cycle(Rekey::new(&k, &new), &keep).await.unwrap(),
        Cycled::Done
    );
    assert!(store.load(&k).await.unwrap().is_none());
    check(must_load(&store, &new).await);
}

/// A thousand sessions created concurrently are each stored under their own key.
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
