//! The SQL stores for the suite, and the SQL-only checks: garbage written straight into a row,
//! the raw id never reaching the table, values surviving exactly, names validated.

#![allow(dead_code)]

use std::future::Future;

use axum::http::header;
use serde_json::{json, Value};
use sessionware::store::{now, Applied, ChangeSet, Created, Cycled, Record, Rekey, SessionStore};
use sessionware::{SessionId, StoreError, StoreKey};
#[cfg(feature = "postgres")]
use sqlx::AssertSqlSafe;

use crate::common::send_ok;

const HOUR: i64 = 3_600_000;

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
        changes = changes.with_update(*name, Some(values[(i + 3) % values.len()].clone()));
    }
    for name in odd_keys.iter().step_by(2) {
        changes = changes.with_update(format!("initial {name}"), None);
    }
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    changes.apply_to(&mut reference);
    assert_eq!(store.load(&k).await.unwrap().unwrap(), reference);

    // Overwrite every odd key once more and remove half of them again.
    let mut changes = ChangeSet::new(t + 2 * HOUR);
    for (i, name) in odd_keys.iter().enumerate() {
        let value = (i % 2 == 0).then(|| values[(i + 5) % values.len()].clone());
        changes = changes.with_update(*name, value);
    }
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    changes.apply_to(&mut reference);
    assert_eq!(store.load(&k).await.unwrap().unwrap(), reference);

    // Many keys in one change set (more than one SQL function call's worth).
    let mut changes = ChangeSet::new(t + 2 * HOUR);
    for i in 0..300 {
        changes = changes.with_update(format!("bulk{i}"), Some(json!(i)));
    }
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    changes.apply_to(&mut reference);
    let mut removals = ChangeSet::new(t + 2 * HOUR);
    for i in (0..300).step_by(3) {
        removals = removals.with_update(format!("bulk{i}"), None);
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
    let change = ChangeSet::new(t + HOUR).with_update("b", Some(json!(2)));
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
                let change = ChangeSet::new(t + HOUR).with_update(format!("w{i}"), Some(json!(i)));
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
    let change = ChangeSet::new(now() + HOUR).with_update("m", Some(json!([1, "two"])));
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
        .with_update("k", Some(json!("v")))
        .with_max_size(size + 8);
    assert_eq!(store.cycle(rekey, &change).await.unwrap(), Cycled::Done);
    assert!(store.was_moved(&old).await.unwrap());
    let listed = store.list(principal).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].key, listed[0].tied_at), (new, Some(tied_at)));
    store.delete_expired().await.unwrap();
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
    let purged = store.delete_expired().await.unwrap();
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
                crate::suite::corrupt_row_is_not_a_panic(S::open().await, corrupt).await
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
mod sqlite {
    use super::*;
    use sessionware::SqliteStore;
    use tokio::sync::OnceCell;

    /// One database file per test process, shared by every test, as instances of an app would
    /// share it: each test opens its own store (its own writer and readers) on it.
    async fn database_url() -> &'static str {
        static URL: OnceCell<String> = OnceCell::const_new();
        URL.get_or_init(|| async {
            let dir = env!("CARGO_TARGET_TMPDIR");
            remove_stale_databases(dir);
            let path = format!("{dir}/sessionware-conformance-{}.db", std::process::id());
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
            let url = format!("sqlite://{path}?mode=rwc");
            let store = SqliteStore::connect(&url).await.unwrap();
            store.migrate().await.unwrap();
            url
        })
        .await
    }

    /// Removes the databases of earlier test runs (an hour old or more: a run that may still be
    /// going, perhaps another checkout sharing this target directory, keeps its file).
    fn remove_stale_databases(dir: &str) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(3600));
            let ours = entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with("sessionware-conformance-"));
            if ours && stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    #[async_trait::async_trait]
    impl crate::stores::IndexProbe for SqliteStore {
        async fn index_entries(&self, principal: &str) -> usize {
            let sql = "SELECT count(*) FROM sessionware_sessions WHERE principal = ?1";
            let principal = principal.to_owned();
            let count: i64 = self
                .with_connection(move |db| db.query_row(sql, [principal], |row| row.get(0)))
                .await
                .unwrap();
            count.try_into().unwrap()
        }
    }

    pub async fn sqlite() -> SqliteStore {
        let store = SqliteStore::connect(database_url().await).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    async fn memory() -> SqliteStore {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    impl SqlStore for SqliteStore {
        const NAME: &'static str = "sqlite";
        const FIRST_PARAM: &'static str = "?1";
        async fn open() -> Self {
            sqlite().await
        }
        async fn exec(&self, sql: &str, key: StoreKey) -> u64 {
            let sql = sql.to_owned();
            let rows = self.with_connection(move |db| db.execute(&sql, [key.to_string()]));
            rows.await.unwrap().try_into().unwrap()
        }
    }

    #[tokio::test]
    async fn sqlite_garbage_json_is_not_a_panic() {
        with_garbage::<SqliteStore>(Check::NotAPanic, &[("data", r#"'{"a": 1'"#)]).await;
    }

    #[tokio::test]
    async fn sqlite_non_object_data_is_not_a_panic() {
        with_garbage::<SqliteStore>(Check::NotAPanic, &[("data", "'[1, 2]'")]).await;
    }

    #[tokio::test]
    async fn sqlite_garbage_expiry_and_types_are_not_a_panic() {
        with_garbage::<SqliteStore>(
            Check::NotAPanic,
            &[
                ("expiry", "'forever'"),
                ("principal", "x'ff00'"),
                ("data", "42"),
                ("data", "x'00ff'"),
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn sqlite_writes_to_garbage_are_refused() {
        with_garbage::<SqliteStore>(
            Check::WritesRefused,
            &[("data", "'garbage'"), ("data", r#"'"text"'"#)],
        )
        .await;
    }

    #[tokio::test]
    async fn sqlite_migrate_upgrades_a_01_table() {
        let store = SqliteStore::connect("sqlite::memory:")
            .await
            .unwrap()
            .with_table_name("legacy")
            .unwrap();
        let raw = store.clone();
        let create = async {
            let ddl = table_01("legacy", "TEXT");
            raw.with_connection(move |db| db.execute_batch(&ddl))
                .await
                .unwrap();
        };
        let insert = async {
            let key = SessionId::generate().store_key();
            let row = (key.to_string(), now(), now() + HOUR);
            let sql = "INSERT INTO legacy VALUES (?1, '{\"n\": 1}', ?2, ?3, NULL)";
            raw.with_connection(move |db| db.execute(sql, row))
                .await
                .unwrap();
            key
        };
        let migrating = store.clone();
        let migrate = move || {
            let store = migrating.clone();
            Box::pin(async move { store.migrate().await.unwrap() }) as _
        };
        migrate_upgrades_a_01_table(store, create, insert, migrate).await;
    }
    #[tokio::test]
    async fn sqlite_migrate_upgrades_a_table_without_tie_times() {
        let store = SqliteStore::connect("sqlite::memory:")
            .await
            .unwrap()
            .with_table_name("before_ties")
            .unwrap();
        let raw = store.clone();
        let principal = "user-before-ties";
        let create = async {
            let ddl = table_02("before_ties", "TEXT");
            raw.with_connection(move |db| db.execute_batch(&ddl))
                .await
                .unwrap();
        };
        let insert = async {
            let key = SessionId::generate().store_key();
            let row = (key.to_string(), now(), now() + HOUR, principal);
            let sql = "INSERT INTO before_ties VALUES \
                       (?1, '{\"n\":1,\"s\":\"x\"}', ?2, ?3, NULL, ?4, 'laptop')";
            raw.with_connection(move |db| db.execute(sql, row))
                .await
                .unwrap();
            key
        };
        let migrating = store.clone();
        let migrate = move || {
            let store = migrating.clone();
            Box::pin(async move { store.migrate().await.unwrap() }) as _
        };
        migrate_upgrades_a_table_without_tie_times(store, principal, create, insert, migrate).await;
    }

    #[tokio::test]
    async fn sqlite_markers_run_out_and_are_purged() {
        let expire = |store: SqliteStore| async move {
            let sql = "UPDATE sessionware_sessions_moved SET until = 0";
            store
                .with_connection(move |db| db.execute(sql, []))
                .await
                .unwrap();
        };
        let markers = |store: SqliteStore| async move {
            let sql = "SELECT count(*) FROM sessionware_sessions_moved";
            let n: i64 = store
                .with_connection(move |db| db.query_row(sql, [], |row| row.get(0)))
                .await
                .unwrap();
            n.try_into().unwrap()
        };
        markers_run_out_and_are_purged(memory().await, expire, markers).await;
    }

    #[tokio::test]
    async fn sqlite_stores_only_the_hashed_id() {
        let store = sqlite().await;
        let id = id_issued_by(store.clone()).await;
        let expected = id.store_key().to_string();
        let rows: Vec<(String, String)> = store
            .with_connection(|db| {
                let mut statement = db.prepare("SELECT key, data FROM sessionware_sessions")?;
                let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect()
            })
            .await
            .unwrap();
        assert!(
            rows.iter().any(|(key, _)| *key == expected),
            "the session's row is missing"
        );
        for (key, data) in &rows {
            assert_eq!(key.len(), 64, "{key}");
            assert!(
                key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "{key}"
            );
            assert!(
                !key.contains(id.expose()) && !data.contains(id.expose()),
                "raw id stored"
            );
        }
        let exposed = id.expose().to_owned();
        let anywhere: i64 = store
            .with_connection(move |db| {
                db.query_row(
                    "SELECT count(*) FROM sessionware_sessions WHERE instr(key, ?1) > 0 \
                     OR instr(data, ?1) > 0 OR instr(coalesce(expiry, ''), ?1) > 0",
                    [exposed],
                    |row| row.get(0),
                )
            })
            .await
            .unwrap();
        assert_eq!(anywhere, 0);
        let wanted = expected.clone();
        let row: String = store
            .with_connection(move |db| {
                let sql = "SELECT data FROM sessionware_sessions WHERE key = ?1";
                db.query_row(sql, [wanted], |row| row.get(0))
            })
            .await
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&row).unwrap(),
            json!({"user": "alice"})
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_cycle_races() {
        cycle_races(sqlite().await).await;
    }

    #[tokio::test]
    async fn sqlite_values_survive_exactly() {
        values_survive_exactly(sqlite().await, true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_in_memory_keeps_the_contract_under_concurrency() {
        crate::suite::concurrent_distinct_keys_all_survive(memory().await).await;
        crate::suite::a_thousand_sessions(memory().await).await;
        crate::suite::cycle_moves_the_session(memory().await).await;
        crate::suite::through_the_layer(memory().await).await;
    }

    /// Several stores on one file, as several processes of an app would open it, each with its
    /// own writer: writers contend for SQLite's file lock (the busy timeout and `BEGIN
    /// IMMEDIATE` keep "database is locked" away), and the contract holds across them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_stores_sharing_a_file_keep_the_contract_under_concurrency() {
        let background = sqlite().await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Another process writing to the same file all along.
        let writer = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let rec = Record::new(Default::default(), now() + HOUR);
                    assert_eq!(
                        background.create(&key(), &rec).await.unwrap(),
                        Created::Done
                    );
                    n += 1;
                    tokio::task::yield_now().await;
                }
                n
            })
        };
        crate::suite::concurrent_distinct_keys_all_survive(sqlite().await).await;
        crate::suite::concurrent_writes_to_one_key_leave_one_winner(sqlite().await).await;
        crate::suite::a_thousand_sessions(sqlite().await).await;
        cycle_races(sqlite().await).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(writer.await.unwrap() > 0);
    }

    #[tokio::test]
    async fn sqlite_table_names_are_validated_and_used() {
        for bad in ["", "9lives", "drop table x;", "a-b", &"a".repeat(64)] {
            let err = memory().await.with_table_name(bad).unwrap_err();
            assert!(matches!(err, StoreError::Backend(_)), "{bad}");
            assert!(
                err.to_string().contains("invalid session table name"),
                "{err}"
            );
        }
        let store = memory().await.with_table_name("Custom_Sessions").unwrap();
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        assert_eq!(store.table_name(), "Custom_Sessions");
        let k = key();
        let t = now();
        let rec = Record::new(Default::default(), t + HOUR).with_created_at(t);
        assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
        let n: i64 = store
            .with_connection(|db| {
                db.query_row("SELECT count(*) FROM \"Custom_Sessions\"", [], |row| {
                    row.get(0)
                })
            })
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
}

#[cfg(feature = "postgres")]
pub use self::postgres::postgres;

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use sessionware::PostgresStore;
    use sqlx::postgres::PgPoolOptions;

    async fn pool() -> sqlx::PgPool {
        PgPoolOptions::new()
            .max_connections(8)
            .connect(&crate::common::env_url("DATABASE_URL"))
            .await
            .unwrap()
    }

    #[async_trait::async_trait]
    impl crate::stores::IndexProbe for PostgresStore {
        async fn index_entries(&self, principal: &str) -> usize {
            let sql = "SELECT count(*) FROM sessionware_sessions WHERE principal = $1";
            let count: i64 = sqlx::query_scalar(sql)
                .bind(principal)
                .fetch_one(self.pool())
                .await
                .unwrap();
            count.try_into().unwrap()
        }
    }

    pub async fn postgres() -> PostgresStore {
        let store = PostgresStore::new(pool().await);
        store.migrate().await.unwrap();
        store
    }

    impl SqlStore for PostgresStore {
        const NAME: &'static str = "postgres";
        const FIRST_PARAM: &'static str = "$1";
        async fn open() -> Self {
            postgres().await
        }
        async fn exec(&self, sql: &str, key: StoreKey) -> u64 {
            let query = sqlx::query(AssertSqlSafe(sql)).bind(key.to_string());
            query.execute(self.pool()).await.unwrap().rows_affected()
        }
    }

    #[tokio::test]
    async fn postgres_non_object_data_is_not_a_panic() {
        with_garbage::<PostgresStore>(
            Check::NotAPanic,
            &[
                ("data", r#"'"a string"'::jsonb"#),
                ("data", r#"'[1, {"a": 2}]'::jsonb"#),
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn postgres_garbage_expiry_is_not_a_panic() {
        with_garbage::<PostgresStore>(
            Check::NotAPanic,
            &[
                ("expiry", "'forever'"),
                ("expiry", "'at:99999999999999999999999999'"),
                ("expiry", "'idle:-5'"),
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn postgres_writes_to_garbage_are_refused() {
        with_garbage::<PostgresStore>(
            Check::WritesRefused,
            &[("data", "'null'::jsonb"), ("data", r#"'["a"]'::jsonb"#)],
        )
        .await;
    }

    #[tokio::test]
    async fn postgres_migrate_upgrades_a_01_table() {
        let pool = pool().await;
        let table = format!("legacy_{}", SessionId::generate().store_key().short());
        let store = PostgresStore::new(pool.clone())
            .with_table_name(&table)
            .unwrap();
        let create = async {
            let ddl = table_01(&table, "JSONB");
            sqlx::query(AssertSqlSafe(ddl))
                .execute(&pool)
                .await
                .unwrap();
        };
        let insert = async {
            let key = SessionId::generate().store_key();
            let sql = format!("INSERT INTO {table} VALUES ($1, '{{\"n\": 1}}', $2, $3, NULL)");
            sqlx::query(AssertSqlSafe(sql))
                .bind(key.to_string())
                .bind(now())
                .bind(now() + HOUR)
                .execute(&pool)
                .await
                .unwrap();
            key
        };
        let migrating = store.clone();
        let migrate = move || {
            let store = migrating.clone();
            Box::pin(async move { store.migrate().await.unwrap() }) as _
        };
        migrate_upgrades_a_01_table(store, create, insert, migrate).await;
        let drop = format!("DROP TABLE {table}");
        sqlx::query(AssertSqlSafe(drop))
            .execute(&pool)
            .await
            .unwrap();
    }
    #[tokio::test]
    async fn postgres_migrate_upgrades_a_table_without_tie_times() {
        let pool = pool().await;
        let table = format!("before_ties_{}", SessionId::generate().store_key().short());
        let store = PostgresStore::new(pool.clone())
            .with_table_name(&table)
            .unwrap();
        let principal = format!("user-{table}");
        let create = async {
            let ddl = table_02(&table, "JSONB");
            sqlx::query(AssertSqlSafe(ddl))
                .execute(&pool)
                .await
                .unwrap();
        };
        let insert = async {
            let key = SessionId::generate().store_key();
            let sql = format!(
                "INSERT INTO {table} VALUES \
                 ($1, '{{\"n\": 1, \"s\": \"x\"}}', $2, $3, NULL, $4, 'laptop')"
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(key.to_string())
                .bind(now())
                .bind(now() + HOUR)
                .bind(&principal)
                .execute(&pool)
                .await
                .unwrap();
            key
        };
        let migrating = store.clone();
        let migrate = move || {
            let store = migrating.clone();
            Box::pin(async move { store.migrate().await.unwrap() }) as _
        };
        migrate_upgrades_a_table_without_tie_times(store, &principal, create, insert, migrate)
            .await;
        for drop in [
            format!("DROP TABLE {table}"),
            format!("DROP TABLE {table}_moved"),
        ] {
            sqlx::query(AssertSqlSafe(drop))
                .execute(&pool)
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn postgres_markers_run_out_and_are_purged() {
        // A table of its own: other tests' markers come and go in the shared one.
        let pool = pool().await;
        let table = format!("markers_{}", SessionId::generate().store_key().short());
        let store = PostgresStore::new(pool.clone())
            .with_table_name(&table)
            .unwrap();
        store.migrate().await.unwrap();
        let moved = format!("{table}_moved");
        let expire = |store: PostgresStore| {
            let sql = format!("UPDATE {moved} SET until = 0");
            async move {
                sqlx::query(AssertSqlSafe(sql))
                    .execute(store.pool())
                    .await
                    .unwrap();
            }
        };
        let markers = |store: PostgresStore| {
            let sql = format!("SELECT count(*) FROM {moved}");
            async move {
                let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                    .fetch_one(store.pool())
                    .await
                    .unwrap();
                n.try_into().unwrap()
            }
        };
        markers_run_out_and_are_purged(store, expire, markers).await;
        for drop in [format!("DROP TABLE {table}"), format!("DROP TABLE {moved}")] {
            sqlx::query(AssertSqlSafe(drop))
                .execute(&pool)
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn postgres_stores_only_the_hashed_id() {
        let store = postgres().await;
        let id = id_issued_by(store.clone()).await;
        let expected = id.store_key().to_string();
        let (key, data): (String, Value) =
            sqlx::query_as("SELECT key, data FROM sessionware_sessions WHERE key = $1")
                .bind(&expected)
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(key, expected);
        assert_eq!(data, json!({"user": "alice"}));
        // Other tests share the table: check every row, not just ours.
        let malformed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sessionware_sessions WHERE key !~ '^[0-9a-f]{64}$'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(malformed, 0, "a key that is not a SHA-256 in hex");
        let anywhere: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sessionware_sessions \
             WHERE strpos(key, $1) > 0 OR strpos(data::text, $1) > 0 \
             OR strpos(coalesce(expiry, ''), $1) > 0",
        )
        .bind(id.expose())
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(anywhere, 0, "the raw session id is in the table");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_cycle_races() {
        for _ in 0..5 {
            cycle_races(postgres().await).await;
        }
    }

    #[tokio::test]
    async fn postgres_values_survive_exactly() {
        values_survive_exactly(postgres().await, false).await;
    }

    #[tokio::test]
    async fn postgres_names_are_validated_and_used() {
        let store = postgres().await;
        for bad in [
            "",
            "9lives",
            "x\"; drop table y; --",
            "a.b",
            &"a".repeat(64),
        ] {
            let err = store.clone().with_schema_name(bad).unwrap_err();
            assert!(
                err.to_string().contains("invalid session schema name"),
                "{err}"
            );
            let err = store.clone().with_table_name(bad).unwrap_err();
            assert!(
                err.to_string().contains("invalid session table name"),
                "{err}"
            );
        }
        let custom = PostgresStore::new(pool().await)
            .with_table_name("Conformance_Sessions")
            .unwrap()
            .with_schema_name("sessionware_conformance")
            .unwrap();
        assert_eq!(custom.schema_name(), Some("sessionware_conformance"));
        // Concurrent migrations (app instances starting together) must not trip over each other.
        let runs: Vec<_> = (0..4)
            .map(|_| {
                let custom = custom.clone();
                tokio::spawn(async move { custom.migrate().await })
            })
            .collect();
        for run in runs {
            run.await.unwrap().unwrap();
        }
        let k = key();
        let t = now();
        let rec = Record::new([("x".to_owned(), json!(1))].into(), t + HOUR).with_created_at(t);
        assert_eq!(custom.create(&k, &rec).await.unwrap(), Created::Done);
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sessionware_conformance.\"Conformance_Sessions\" WHERE key = $1",
        )
        .bind(k.to_string())
        .fetch_one(custom.pool())
        .await
        .unwrap();
        assert_eq!(n, 1);
        assert!(
            store.load(&k).await.unwrap().is_none(),
            "default table saw a custom-table row"
        );
        custom.delete(&k).await.unwrap();
    }
}
