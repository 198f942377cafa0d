//! The Postgres store for the suite (on `DATABASE_URL`) and the Postgres-only checks: garbage
//! rows, migrations from older tables, markers, the hashed id, cycle races, values surviving
//! exactly, schema and table names.

use super::*;
use crate::common::unix_ms;
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
            .bind(unix_ms(now()))
            .bind(unix_ms(now() + HOUR))
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
            .bind(unix_ms(now()))
            .bind(unix_ms(now() + HOUR))
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
    migrate_upgrades_a_table_without_tie_times(store, &principal, create, insert, migrate).await;
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

mod purge_at;
