//! The life of one session in a store: created, loaded, changed, cycled, touched, expired,
//! purged and deleted, and the same behind the layer; garbage in the backend is no panic.

use std::time::Duration;

use crate::store::{now, Applied, ChangeSet, Created, Cycled, Rekey, SessionStore, Touched};
use crate::{Expiry, ExpirySettings, SessionLayer, StoreError, StoreKey};
use serde_json::json;
use tokio::time::sleep;

use super::http::{self, send_ok};

use super::{delete_expired_in_turn, key, must_load, record, HOUR};

/// A session is created, loaded as written, changed by a change set (set, remove, clear, new
/// deadline, own expiry settings), and deleted.
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
    let changes = ChangeSet::new(rec.expires_at + Duration::from_millis(1000))
        .with_set("a", json!(2))
        .with_remove("b")
        .with_set("c", json!({"deep": true}))
        .with_expiry(own);
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    let loaded = must_load(&store, &k).await;
    assert_eq!(loaded.data.get("a"), Some(&json!(2)));
    assert_eq!(loaded.data.get("b"), None);
    assert_eq!(loaded.data.get("c"), Some(&json!({"deep": true})));
    assert_eq!(loaded.data.get("nested"), rec.data.get("nested"));
    assert_eq!(loaded.data.get("u"), Some(&json!("żółć 😀")));
    assert_eq!(
        loaded.expires_at,
        rec.expires_at + Duration::from_millis(1000)
    );
    assert_eq!(loaded.created_at, rec.created_at);
    assert_eq!(loaded.expiry, own);

    let cleared = ChangeSet::new(rec.expires_at)
        .with_clear()
        .with_set("fresh", json!(1));
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

/// `create` on a key that holds a live session answers `Collision` and leaves it as it is.
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

/// After `delete`, `apply`, `touch` and `cycle` answer `Missing` and bring nothing back.
pub async fn no_resurrection_after_delete(store: impl SessionStore) {
    let k = key();
    let rec = record(json!({"a": 1}), HOUR);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    store.delete(&k).await.unwrap();
    let changes = ChangeSet::new(rec.expires_at).with_set("a", json!(2));
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

/// `cycle` moves a session to a new key with the change set applied; the old key is gone, a
/// taken new key is a `Collision` and changes nothing.
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

    let changes = ChangeSet::new(rec.expires_at + Duration::from_millis(5))
        .with_remove("drop")
        .with_set("role", json!("admin"));
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
    assert_eq!(moved.expires_at, rec.expires_at + Duration::from_millis(5));

    // The old key is dead for writes too.
    let late = ChangeSet::new(rec.expires_at).with_set("late", json!(1));
    assert_eq!(store.apply(&old, &late).await.unwrap(), Applied::Missing);
    assert!(store.load(&old).await.unwrap().is_none());
}

/// `touch` moves the deadline and leaves the values alone.
pub async fn touch_moves_only_the_deadline(store: impl SessionStore) {
    let k = key();
    let rec = record(json!({"a": 1}), Duration::from_millis(2_000));
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    assert_eq!(
        store.touch(&k, rec.expires_at + HOUR).await.unwrap(),
        Touched::Done
    );
    let loaded = must_load(&store, &k).await;
    assert_eq!(loaded.expires_at, rec.expires_at + HOUR);
    assert_eq!(loaded.data, rec.data);
}

/// A session past its deadline is absent for every operation, purged or not.
pub async fn expired_sessions_are_gone(store: impl SessionStore) {
    let (short, long) = (key(), key());
    let rec = record(json!({"a": 1}), Duration::from_millis(1_000));
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
    let changes = ChangeSet::new(now() + HOUR).with_set("a", json!(2));
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
    assert!(delete_expired_in_turn(&store).await.unwrap() <= 1_000_000);
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

/// `delete_expired` removes expired sessions, counts them, and leaves live ones.
pub async fn delete_expired_purges(store: impl SessionStore) {
    let _alone = super::PURGES.lock().await;
    let keys: Vec<StoreKey> = (0..5).map(|_| key()).collect();
    for k in &keys {
        assert_eq!(
            store
                .create(k, &record(json!({"a": 1}), Duration::from_millis(500)))
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

/// A purge after a session's first deadline keeps it when a touch or a write moved the deadline
/// later, and ends it when a write moved the deadline earlier, as it ends an untouched one. (A
/// store that indexes deadlines lazily, as PostgreSQL's `purge_at` does, must look at the row
/// again rather than trust the deadline it indexed.)
pub async fn delete_expired_follows_moved_deadlines(store: impl SessionStore) {
    let short = Duration::from_millis(500);
    let (touched, written, shortened, untouched) = (key(), key(), key(), key());
    for (k, lasts) in [
        (&touched, short),
        (&written, short),
        (&shortened, HOUR),
        (&untouched, short),
    ] {
        assert_eq!(
            store
                .create(k, &record(json!({"a": 1}), lasts))
                .await
                .unwrap(),
            Created::Done
        );
    }
    assert_eq!(
        store.touch(&touched, now() + HOUR).await.unwrap(),
        Touched::Done
    );
    let later = ChangeSet::new(now() + HOUR).with_set("a", json!(2));
    assert_eq!(store.apply(&written, &later).await.unwrap(), Applied::Done);
    let sooner = ChangeSet::new(now() + short).with_set("a", json!(2));
    assert_eq!(
        store.apply(&shortened, &sooner).await.unwrap(),
        Applied::Done
    );
    sleep(Duration::from_millis(700)).await;

    delete_expired_in_turn(&store).await.unwrap();
    for k in [&touched, &written] {
        assert!(
            store.load(k).await.unwrap().is_some(),
            "the purge removed a session whose deadline had moved later"
        );
    }
    for k in [&shortened, &untouched] {
        assert!(store.load(k).await.unwrap().is_none());
    }
    // Looked at once, the kept sessions are kept by the next purge too.
    delete_expired_in_turn(&store).await.unwrap();
    for k in [&touched, &written] {
        assert_eq!(
            must_load(&store, k).await.data["a"],
            json!(if *k == touched { 1 } else { 2 })
        );
    }
}

/// Stores whose backend expires keys by itself (Redis) may have purged them before we ask.
fn store_uses_native_ttl(store: &impl SessionStore) -> bool {
    format!("{store:?}").starts_with("RedisStore")
}

/// The store behind a real router: round trip, cycle, destroy, and the absolute timeout.
pub async fn through_the_layer(store: impl SessionStore) {
    let app = http::routes().layer(
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
        .apply(&k, &ChangeSet::new(now() + HOUR).with_set("b", json!(2)))
        .await;
    store.delete(&k).await.unwrap();
    assert!(store.load(&k).await.unwrap().is_none());
}
