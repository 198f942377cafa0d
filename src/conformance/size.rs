//! The size cap: what is stored stays under it whatever concurrent change sets merge, and its
//! edge is exactly `data_size`, in the store and through the layer.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use crate::store::{now, Applied, ChangeSet, Created, Cycled, Record, Rekey, SessionStore};
use crate::SessionLayer;
use serde_json::{json, Value};

use super::http::{self, send_ok};

use super::{key, must_load, record, HOUR};

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
                    .with_set(format!("k{i}"), json!("x".repeat(1200)))
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
    let stored = crate::store::data_size(&loaded.data);
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
        .with_set(quotes.clone(), json!(1))
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
        .with_remove(some_key)
        .with_max_size(10);
    assert_eq!(store.apply(&k, &shrink).await.unwrap(), Applied::Done);
    // Clearing makes room for what follows it.
    let replace = ChangeSet::new(rec.expires_at)
        .with_clear()
        .with_set("big", json!("y".repeat(3500)))
        .with_max_size(CAP);
    assert_eq!(store.apply(&k, &replace).await.unwrap(), Applied::Done);

    // A cycle is refused whole: the old key keeps the session, the new one stays free.
    let new = key();
    let grow = ChangeSet::new(rec.expires_at)
        .with_set("more", json!("z".repeat(1000)))
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
        .with_set("small", json!(1))
        .with_max_size(CAP);
    assert_eq!(
        store.cycle(Rekey::new(&k, &new), &fits).await.unwrap(),
        Cycled::Done
    );
    assert!(must_load(&*store, &new).await.data.contains_key("small"));
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
/// [`data_size`](crate::store::data_size) bytes fits a cap of that size and not one
/// byte less, for `apply` and `cycle`, whatever its keys and values need escaped. (A store
/// that counts a key or a number otherwise refuses what the layer accepted, or the reverse.)
pub async fn size_at_the_cap_is_data_size(store: impl SessionStore) {
    let entries = awkward_entries();
    let (first, second) = entries.split_at(entries.len() / 2);
    let base: crate::store::Data = first.iter().cloned().collect();
    let mut changes = ChangeSet::new(now() + HOUR)
        // Replaces a stored value, and removes another: both count with what stays.
        .with_set(first[0].0.clone(), json!("replaced/\"\u{1}é"))
        .with_remove(first[1].0.clone());
    for (key, value) in second {
        changes = changes.with_set(key.clone(), value.clone());
    }
    let mut after = Record::new(base.clone(), UNIX_EPOCH);
    changes.apply_to(&mut after);
    let size = crate::store::data_size(&after.data);
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

/// The same edge through the layer, which counts as its inserts go: a session filled to
/// exactly the cap is saved whether it is new (`create`), stored (`apply`) or moved to a new
/// id (`cycle`), and one more byte is refused by the insert, never later by the store.
pub async fn size_at_the_cap_through_the_layer(store: impl SessionStore) {
    use crate::{Error, Session};
    use axum::routing::get;

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
    let all: crate::store::Data = awkward_entries().into_iter().collect();
    let cap = crate::store::data_size(&all);
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
    let over = http::send(&app, "/one-more", Some(&created)).await;
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
