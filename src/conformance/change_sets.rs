//! Change sets with preconditions: compare-and-set guards a change, and change sets with
//! thousands of keys apply (or fail) whole.

use std::sync::Arc;

use crate::store::{
    Applied, ChangeSet, Created, Cycled, Precondition, Record, Rekey, SessionStore,
};
use serde_json::{json, Value};

use super::{key, must_load, record, HOUR};

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
        .with_expected("n", Precondition::Equals(json!(1)))
        .with_set("n", json!(2));
    assert_eq!(store.apply(&k, &incr).await.unwrap(), Applied::Done);
    assert_eq!(store.apply(&k, &incr).await.unwrap(), Applied::Conflict);
    assert_eq!(must_load(&*store, &k).await.data["n"], json!(2));

    // Absent means absent; the same value with its keys in another order is the same value.
    let first = ChangeSet::new(at)
        .with_expected("flash", Precondition::Absent)
        .with_set("flash", json!("hi"));
    assert_eq!(store.apply(&k, &first).await.unwrap(), Applied::Done);
    assert_eq!(store.apply(&k, &first).await.unwrap(), Applied::Conflict);
    let same = ChangeSet::new(at)
        .with_expected("obj", Precondition::Equals(json!({"a": [2, "x"], "b": 1})))
        .with_expected("flash", Precondition::Equals(json!("hi")))
        .with_remove("flash");
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
            .with_expected("n", Precondition::Equals(json!(n)))
            .with_expected("gone", Precondition::Absent)
            .with_remove("flash")
            .with_set("m", json!(n))
    };
    assert_eq!(store.apply(&k, &mixed(1)).await.unwrap(), Applied::Conflict);
    assert_eq!(store.apply(&k, &mixed(2)).await.unwrap(), Applied::Done);
    assert_eq!(must_load(&*store, &k).await.data["m"], json!(2));
    let now_present = ChangeSet::new(at).with_set("gone", json!(0));
    assert_eq!(store.apply(&k, &now_present).await.unwrap(), Applied::Done);
    assert_eq!(store.apply(&k, &mixed(2)).await.unwrap(), Applied::Conflict);

    // A cycle with a failing precondition changes nothing; a holding one moves the session.
    let new = key();
    let stale = ChangeSet::new(at).with_expected("n", Precondition::Equals(json!(1)));
    assert_eq!(
        store.cycle(Rekey::new(&k, &new), &stale).await.unwrap(),
        Cycled::Conflict
    );
    assert!(store.load(&new).await.unwrap().is_none());
    let fresh = ChangeSet::new(at)
        .with_expected("n", Precondition::Equals(json!(2)))
        .with_set("n", json!(3));
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
                        .with_expected("n", Precondition::Equals(n))
                        .with_set("n", next);
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
            .with_expected(key.clone(), Precondition::Equals(value))
            .with_remove(key)
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
                c.with_set(format!("set {i}"), json!({"i": i}))
            })
            .with_expected("n", Precondition::Equals(json!(1)))
            .with_set("n", json!(2))
            .with_expected("never set", Precondition::Absent)
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
    let changes = changes.with_set("n", json!(2));
    // Another request took message 1,234 meanwhile.
    let stale = changes.clone().with_expected(
        format!("__flash.{:08x}", 1234),
        Precondition::Equals(json!("message 4321")),
    );
    assert_eq!(store.apply(&k, &stale).await.unwrap(), Applied::Conflict);
    assert_eq!(must_load(&store, &k).await.data, rec.data);
    // A key that must be absent is there.
    let present = changes.clone().with_expected("user", Precondition::Absent);
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
