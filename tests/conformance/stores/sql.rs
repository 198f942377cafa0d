//! The SQL stores for the suite, and the SQL-only checks both share: garbage written straight
//! into a row, the raw id never reaching the table, values surviving exactly, migrations and
//! markers, each written once over a store. Each store, and its tests calling these, is in
//! `sql/sqlite.rs` and `sql/postgres.rs`.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use axum::http::header;
use serde_json::{json, Value};
use sessionware::store::{now, Applied, ChangeSet, Created, Cycled, Record, Rekey, SessionStore};
use sessionware::{SessionId, StoreError, StoreKey};
#[cfg(feature = "postgres")]
use sqlx::AssertSqlSafe;

use crate::common::send_ok;

const HOUR: Duration = Duration::from_secs(3600);

fn key() -> StoreKey {
    SessionId::generate().store_key()
}

/// Sends one request through a session layer on `store` that writes a value, and returns the
/// session id the response's cookie carries.
async fn id_issued_by(store: impl SessionStore) -> SessionId {
    let reply = send_ok(&super::login_app(store), "/login", None).await;
    let cookie = reply.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    let value = cookie
        .split(';')
        .next()
        .and_then(|pair| pair.strip_prefix("id="))
        .unwrap_or_else(|| panic!("unexpected cookie {cookie}"));
    SessionId::parse(value).expect("a plain session id in the cookie")
}

/// Keys and values that stress quoting and number handling, set and removed through `apply`,
/// must come back exactly as the in-memory reference semantics say.
async fn values_survive_exactly(store: impl SessionStore, nul_allowed: bool) {
    let odd_keys = [
        "",
        "a.b",
        "a[0]",
        "$",
        "q\"uote",
        "back\\slash",
        "żółć 😀",
        "tab\tnew\nline",
        "with space",
        "'single'",
    ];
    let mut values = vec![
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1e300),
        json!(0.1),
        json!(-2.5e-8),
        json!(null),
        json!(true),
        json!("żółć 😀 \"quoted\" \\ back"),
        json!({"nested": {"deep": [1, {"x": null}, "s"]}, "": 0}),
        json!([]),
        json!({}),
    ];
    if nul_allowed {
        values.push(json!("nul\u{0}inside"));
    }
    let k = key();
    let t = now();
    let mut data = sessionware::store::Data::new();
    for (i, name) in odd_keys.iter().enumerate() {
        data.insert(format!("initial {name}"), values[i % values.len()].clone());
    }
    let mut reference = Record::new(data, t + HOUR).with_created_at(t);
    assert_eq!(store.create(&k, &reference).await.unwrap(), Created::Done);
    assert_eq!(store.load(&k).await.unwrap().unwrap(), reference);

    let mut changes = ChangeSet::new(t + 2 * HOUR);
    for (i, name) in odd_keys.iter().enumerate() {
        changes = changes.with_set(*name, values[(i + 3) % values.len()].clone());
    }
    for name in odd_keys.iter().step_by(2) {
        changes = changes.with_remove(format!("initial {name}"));
    }
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    changes.apply_to(&mut reference);
    assert_eq!(store.load(&k).await.unwrap().unwrap(), reference);

    // Overwrite every odd key once more and remove half of them again.
    let mut changes = ChangeSet::new(t + 2 * HOUR);
    for (i, name) in odd_keys.iter().enumerate() {
        changes = if i % 2 == 0 {
            changes.with_set(*name, values[(i + 5) % values.len()].clone())
        } else {
            changes.with_remove(*name)
        };
    }
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    changes.apply_to(&mut reference);
    assert_eq!(store.load(&k).await.unwrap().unwrap(), reference);

    // Many keys in one change set (more than one SQL function call's worth).
    let mut changes = ChangeSet::new(t + 2 * HOUR);
    for i in 0..300 {
        changes = changes.with_set(format!("bulk{i}"), json!(i));
    }
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    changes.apply_to(&mut reference);
    let mut removals = ChangeSet::new(t + 2 * HOUR);
    for i in (0..300).step_by(3) {
        removals = removals.with_remove(format!("bulk{i}"));
    }
    assert_eq!(store.apply(&k, &removals).await.unwrap(), Applied::Done);
    removals.apply_to(&mut reference);
    let new = key();
    assert_eq!(
        store
            .cycle(Rekey::new(&k, &new), &ChangeSet::new(t + HOUR))
            .await
            .unwrap(),
        Cycled::Done
    );
    reference.expires_at = t + HOUR;
    assert_eq!(store.load(&new).await.unwrap().unwrap(), reference);
    store.delete(&new).await.unwrap();
}

/// A write to a row whose data is not a JSON object fails cleanly with `Corrupt` and changes
/// nothing; `corrupt` puts the garbage in.
async fn writes_to_garbage_are_refused<S, F, Fut>(store: S, corrupt: F)
where
    S: SessionStore + Clone,
    F: Fn(S, StoreKey) -> Fut,
    Fut: Future<Output = ()>,
{
    let k = key();
    let t = now();
    let rec = Record::new([("a".to_owned(), json!(1))].into(), t + HOUR).with_created_at(t);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    corrupt(store.clone(), k).await;
    let change = ChangeSet::new(t + HOUR).with_set("b", json!(2));
    assert!(matches!(
        store.apply(&k, &change).await,
        Err(StoreError::Corrupt(_))
    ));
    let other = key();
    assert!(matches!(
        store.cycle(Rekey::new(&k, &other), &change).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(
        store.load(&other).await.unwrap().is_none(),
        "cycle moved a corrupt row"
    );
    assert!(matches!(store.load(&k).await, Err(StoreError::Corrupt(_))));
    store.delete(&k).await.unwrap();
    assert!(store.load(&k).await.unwrap().is_none());
    // A dead key is missing, not corrupt.
    assert_eq!(store.apply(&k, &change).await.unwrap(), Applied::Missing);
}

/// Cycles racing each other: many sessions cycling into one new key (one wins, the others
/// keep their session), and one session cycled to many new keys at once (one wins, the others
/// see it missing), with writes racing the move (each lands on the moved session or reports
/// `Missing`, never resurrects the old key).
async fn cycle_races(store: impl SessionStore) {
    use std::sync::Arc;
    let store = Arc::new(store);
    let t = now();
    let rec =
        |n: i64| Record::new([("n".to_owned(), json!(n))].into(), t + HOUR).with_created_at(t);

    let target = key();
    let olds: Vec<StoreKey> = (0..16).map(|_| key()).collect();
    for (i, old) in olds.iter().enumerate() {
        assert_eq!(
            store.create(old, &rec(i as i64)).await.unwrap(),
            Created::Done
        );
    }
    let tasks: Vec<_> = olds
        .iter()
        .map(|old| {
            let (store, old) = (store.clone(), *old);
            tokio::spawn(async move {
                store
                    .cycle(Rekey::new(&old, &target), &ChangeSet::new(t + HOUR))
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap().unwrap() {
            Cycled::Done => {
                winners += 1;
                let moved = store.load(&target).await.unwrap().unwrap();
                assert_eq!(moved.data.get("n"), Some(&json!(i)));
                assert!(store.load(&olds[i]).await.unwrap().is_none());
            }
            Cycled::Collision => {
                let kept = store
                    .load(&olds[i])
                    .await
                    .unwrap()
                    .expect("a losing cycle lost its session");
                assert_eq!(kept.data.get("n"), Some(&json!(i)));
            }
            Cycled::Missing => panic!("cycle of a live session reported Missing"),
            Cycled::TooLarge { .. } | Cycled::Conflict => {
                panic!("a change set without a cap or preconditions was refused")
            }
        }
    }
    assert_eq!(winners, 1);

    let old = key();
    assert_eq!(store.create(&old, &rec(7)).await.unwrap(), Created::Done);
    let news: Vec<StoreKey> = (0..8).map(|_| key()).collect();
    let cycles: Vec<_> = news
        .iter()
        .map(|new| {
            let (store, new) = (store.clone(), *new);
            tokio::spawn(async move {
                store
                    .cycle(Rekey::new(&old, &new), &ChangeSet::new(t + HOUR))
                    .await
            })
        })
        .collect();
    let writes: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let change = ChangeSet::new(t + HOUR).with_set(format!("w{i}"), json!(i));
                store.apply(&old, &change).await
            })
        })
        .collect();
    let mut moved_to = Vec::new();
    for (new, task) in news.iter().zip(cycles) {
        match task.await.unwrap().unwrap() {
            Cycled::Done => moved_to.push(*new),
            Cycled::Missing => assert!(store.load(new).await.unwrap().is_none()),
            Cycled::Collision => panic!("fresh keys collided"),
            Cycled::TooLarge { .. } | Cycled::Conflict => {
                panic!("a change set without a cap or preconditions was refused")
            }
        }
    }
    assert_eq!(moved_to.len(), 1, "one session became {}", moved_to.len());
    let moved = store.load(&moved_to[0]).await.unwrap().unwrap();
    assert_eq!(moved.data.get("n"), Some(&json!(7)));
    for (i, task) in writes.into_iter().enumerate() {
        let landed = moved.data.contains_key(&format!("w{i}"));
        match task.await.unwrap().unwrap() {
            Applied::Done => assert!(landed, "w{i} was applied but lost in the move"),
            Applied::Missing => assert!(!landed),
            Applied::TooLarge { .. } | Applied::Conflict => {
                panic!("a change set without a cap or preconditions was refused")
            }
        }
    }
    assert!(
        store.load(&old).await.unwrap().is_none(),
        "the old key came back"
    );
}

// ---------------------------------------------------------------------------------------------
// Upgrading from 0.1: `migrate()` adds the owner columns to a table created before they existed,
// without losing a session.

/// The 0.1 table, created by `create` (the DDL of 0.1 with the backend's `data` type), holds one
/// session under `key`, inserted by `insert`; `migrate` (run twice) must keep it and make the
/// table usable for owners.
async fn migrate_upgrades_a_01_table<S, C, I, M>(store: S, create: C, insert: I, migrate: M)
where
    S: SessionStore,
    C: std::future::Future<Output = ()>,
    I: std::future::Future<Output = StoreKey>,
    M: Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
{
    create.await;
    let old = insert.await;
    migrate().await;
    migrate().await;
    let loaded = store
        .load(&old)
        .await
        .unwrap()
        .expect("the 0.1 session was lost");
    assert_eq!(loaded.data.get("n"), Some(&json!(1)));
    assert_eq!(loaded.owner, None);

    let principal = format!("user-{}", old.short());
    let owner = sessionware::store::Owner::new(&principal);
    let new = SessionId::generate().store_key();
    let rekey = Rekey::new(&old, &new).with_tie(&owner);
    let change = ChangeSet::new(now() + HOUR);
    assert_eq!(store.cycle(rekey, &change).await.unwrap(), Cycled::Done);
    let listed = store.list(&principal).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, new);
}

/// The table as it was before tie times, sizes and moved-key markers were kept, created by
/// `create`, holds one tied session under `key`, inserted by `insert` with the values
/// `{"n": 1, "s": "x"}`; `migrate` (run twice) must keep it, read its tie time as unknown, and
/// make the table keep the new points of the contract: tie times, the size cap counted as
/// `data_size`, moved-key markers.
async fn migrate_upgrades_a_table_without_tie_times<S, C, I, M>(
    store: S,
    principal: &str,
    create: C,
    insert: I,
    migrate: M,
) where
    S: SessionStore,
    C: std::future::Future<Output = ()>,
    I: std::future::Future<Output = StoreKey>,
    M: Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
{
    create.await;
    let old = insert.await;
    migrate().await;
    migrate().await;
    let loaded = store
        .load(&old)
        .await
        .unwrap()
        .expect("the session was lost");
    assert_eq!(loaded.data.get("n"), Some(&json!(1)));
    let owner = loaded.owner.expect("the owner was lost");
    assert_eq!((owner.principal.as_str(), owner.tied_at), (principal, None));
    let listed = store.list(principal).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].key, listed[0].tied_at), (old, None));

    // The size of the old row is counted as `data_size` once the change is applied.
    let change = ChangeSet::new(now() + HOUR).with_set("m", json!([1, "two"]));
    let mut after = loaded.data.clone();
    after.insert("m".to_owned(), json!([1, "two"]));
    let size = sessionware::store::data_size(&after);
    assert_eq!(
        store
            .apply(&old, &change.clone().with_max_size(size - 1))
            .await
            .unwrap(),
        Applied::TooLarge { size }
    );
    assert_eq!(
        store
            .apply(&old, &change.with_max_size(size))
            .await
            .unwrap(),
        Applied::Done
    );

    // A log-in: the tie time is kept, the old key marked as moved.
    let tied_at = now();
    let owner = sessionware::store::Owner::new(principal).with_tied_at(tied_at);
    let new = SessionId::generate().store_key();
    let rekey = Rekey::new(&old, &new).with_tie(&owner);
    let change = ChangeSet::new(now() + HOUR)
        .with_set("k", json!("v"))
        .with_max_size(size + 8);
    assert_eq!(store.cycle(rekey, &change).await.unwrap(), Cycled::Done);
    assert!(store.was_moved(&old).await.unwrap());
    let listed = store.list(principal).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].key, listed[0].tied_at), (new, Some(tied_at)));
    sessionware::conformance::delete_expired_in_turn(&store)
        .await
        .unwrap();
    assert!(
        store.was_moved(&old).await.unwrap(),
        "a live marker was purged"
    );
}

/// The DDL of the table before tie times were kept (`data` typed by the backend).
fn table_02(table: &str, data_type: &str) -> String {
    format!(
        "CREATE TABLE {table} (key TEXT PRIMARY KEY NOT NULL, data {data_type} NOT NULL, \
         created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, expiry TEXT, \
         principal TEXT, label TEXT)"
    )
}

/// Moved-key markers end: `was_moved` stops reporting one once it ran out, and
/// `delete_expired` removes it without counting it as a session. `expire` makes every marker
/// of the store's table run out; `markers` counts them.
async fn markers_run_out_and_are_purged<S, E, EF, N, NF>(store: S, expire: E, markers: N)
where
    S: SessionStore + Clone,
    E: Fn(S) -> EF,
    EF: std::future::Future<Output = ()>,
    N: Fn(S) -> NF,
    NF: std::future::Future<Output = u64>,
{
    let (old, new) = (key(), key());
    let rec = Record::new(Default::default(), now() + HOUR);
    assert_eq!(store.create(&old, &rec).await.unwrap(), Created::Done);
    let change = ChangeSet::new(now() + HOUR);
    assert_eq!(
        store.cycle(Rekey::new(&old, &new), &change).await.unwrap(),
        Cycled::Done
    );
    assert!(store.was_moved(&old).await.unwrap());
    assert!(markers(store.clone()).await >= 1);
    expire(store.clone()).await;
    assert!(
        !store.was_moved(&old).await.unwrap(),
        "an old marker counts"
    );
    // Markers are not sessions: the purge counts none of them.
    let purged = sessionware::conformance::delete_expired_in_turn(&store)
        .await
        .unwrap();
    assert_eq!(markers(store.clone()).await, 0, "{purged} purged");
    assert!(store.load(&new).await.unwrap().is_some());
}

/// The 0.1 DDL (`data` typed by the backend).
fn table_01(table: &str, data_type: &str) -> String {
    format!(
        "CREATE TABLE {table} (key TEXT PRIMARY KEY NOT NULL, data {data_type} NOT NULL, \
         created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, expiry TEXT)"
    )
}

// ---------------------------------------------------------------------------------------------
// Garbage in a row, table-driven: each backend lists the values it writes straight into a
// column; every row of a table runs on a fresh store.

/// What the garbage checks need of a SQL store besides the contract.
trait SqlStore: SessionStore + Clone {
    /// The backend's name in failure messages.
    const NAME: &'static str;
    /// The placeholder of a statement's first parameter.
    const FIRST_PARAM: &'static str;
    /// A fresh handle on the database the suite uses, migrated.
    async fn open() -> Self;
    /// Runs `sql` on the store's pool with `key` bound to the first parameter; returns how many
    /// rows it changed. (`sql` is built from this file's tables, never from input.)
    async fn exec(&self, sql: &str, key: StoreKey) -> u64;
}

/// A check run against a row with garbage in it.
#[derive(Clone, Copy, Debug)]
enum Check {
    /// The suite's `corrupt_row_is_not_a_panic`.
    NotAPanic,
    /// [`writes_to_garbage_are_refused`].
    WritesRefused,
}

/// Runs `check` once per `(column, value)` row of `garbage`, on a fresh store each time, with
/// `column = value` written straight into the session's row. A failing row is named on stderr
/// (every row fails on the same line).
async fn with_garbage<S: SqlStore>(check: Check, garbage: &[(&str, &str)]) {
    for (column, value) in garbage {
        let sql = format!(
            "UPDATE sessionware_sessions SET {column} = {value} WHERE key = {}",
            S::FIRST_PARAM
        );
        let _case = Case(format!("{} {check:?}: {sql}", S::NAME));
        let corrupt = |store: S, key| {
            let sql = sql.clone();
            async move { assert_eq!(store.exec(&sql, key).await, 1) }
        };
        match check {
            Check::NotAPanic => {
                sessionware::conformance::corrupt_row_is_not_a_panic(S::open().await, corrupt).await
            }
            Check::WritesRefused => writes_to_garbage_are_refused(S::open().await, corrupt).await,
        }
    }
}

/// Names the row a table-driven test was running when it panicked.
struct Case(String);

impl Drop for Case {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("failed case: {}", self.0);
        }
    }
}

#[cfg(feature = "sqlite")]
pub use self::sqlite::sqlite;

#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use self::postgres::postgres;

#[cfg(feature = "postgres")]
mod postgres;
