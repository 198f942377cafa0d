//! The SQLite store for the suite (one database file per test process) and the SQLite-only
//! checks: garbage rows, migrations from older tables, markers, the hashed id, cycle races,
//! values surviving exactly, concurrency in memory and on a shared file, table names.

use super::*;
use crate::common::unix_ms;
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
        let row = (key.to_string(), unix_ms(now()), unix_ms(now() + HOUR));
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
        let row = (
            key.to_string(),
            unix_ms(now()),
            unix_ms(now() + HOUR),
            principal,
        );
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
    sessionware::conformance::concurrent_distinct_keys_all_survive(memory().await).await;
    sessionware::conformance::a_thousand_sessions(memory().await).await;
    sessionware::conformance::cycle_moves_the_session(memory().await).await;
    sessionware::conformance::through_the_layer(memory().await).await;
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
    sessionware::conformance::concurrent_distinct_keys_all_survive(sqlite().await).await;
    sessionware::conformance::concurrent_writes_to_one_key_leave_one_winner(sqlite().await).await;
    sessionware::conformance::a_thousand_sessions(sqlite().await).await;
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
