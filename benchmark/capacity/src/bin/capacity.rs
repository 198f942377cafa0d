//! Bytes per session in each store, measured by the stores' own servers: the figures behind
//! benchmark/RESULTS.md's "Capacity on paper". From the repository root:
//!
//! ```text
//! env=$(bash .ci/services.sh start) && eval "$env"   # PostgreSQL and Redis (`--bench`: Redis without persistence)
//! cargo run --release --manifest-path benchmark/capacity/Cargo.toml --bin capacity
//! bash .ci/services.sh stop
//! ```
//!
//! For a small session (`{"user_id": 42, "counter": 7}`, 29 bytes of JSON) and a 4 KiB one, it
//! creates `N` sessions (`N` from the environment, default 20,000) through each store, logged
//! in (so with a principal index entry) or not, and reads:
//! - Redis: `MEMORY USAGE` of a sample of session keys and index keys, and the growth of
//!   `used_memory` (which includes the keyspace's dictionary overhead);
//! - PostgreSQL: `pg_total_relation_size` of the table (heap, TOAST, indexes) per row;
//! - SQLite: `page_count × page_size` of the database file per row.
//!
//! Then the servers' own cost per request kind: `N` loads, changes (`apply`) and new sessions
//! (`create`) of small sessions, timed by the server (Redis `INFO commandstats`, PostgreSQL
//! `pg_stat_statements`, which `.ci/services.sh` installs): server CPU per operation, whatever
//! the network and the app cost.
//!
//! Each store gets its own table or key prefix, dropped at the end.

use std::time::Duration;

use serde_json::{json, Value};
use sessionware::store::{now, Data, Owner, Record, SessionStore};
use sessionware::{PostgresStore, RedisStore, SessionId, SqliteStore};

fn data(size: Size) -> Data {
    let mut data = Data::new();
    data.insert("user_id".into(), json!(42));
    data.insert("counter".into(), json!(7));
    if size == Size::Large {
        // 4 KiB of JSON in all: a typical "big" session (a cart, some preferences). Random hex,
        // so that no store's compression (PostgreSQL's TOAST) makes it look smaller.
        let mut blob = String::with_capacity(4096);
        while blob.len() < 4096 - 40 {
            blob.push_str(SessionId::generate().expose());
        }
        blob.truncate(4096 - 40);
        data.insert("blob".into(), Value::from(blob));
    }
    data
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Size {
    Small,
    Large,
}

fn record(size: Size, tied: bool, i: usize) -> Record {
    let mut record = Record::new(data(size), now() + Duration::from_millis(3_600_000));
    if tied {
        // Ten sessions per user: an index entry each, ten per index key.
        record = record
            .with_owner(Owner::new(format!("user-{}", i / 10)).with_label("Firefox on Linux"));
    }
    record
}

async fn fill(
    store: &impl SessionStore,
    n: usize,
    size: Size,
    tied: bool,
) -> Vec<sessionware::StoreKey> {
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let key = SessionId::generate().store_key();
        let _ = store
            .create(&key, &record(size, tied, i))
            .await
            .expect("create");
        keys.push(key);
    }
    keys
}

async fn redis(n: usize) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    for size in [Size::Small, Size::Large] {
        for tied in [false, true] {
            let prefix = format!("capacity-{}:", SessionId::generate().store_key().short());
            let store = RedisStore::connect(&url)
                .await
                .unwrap()
                .with_key_prefix(&prefix);
            let used = |info: String| -> i64 {
                info.lines()
                    .find_map(|l| l.strip_prefix("used_memory:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            };
            let before: String = redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut admin)
                .await
                .unwrap();
            let keys = fill(&store, n, size, tied).await;
            let after: String = redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut admin)
                .await
                .unwrap();
            let mut sampled = 0i64;
            let sample = keys.iter().take(1000);
            let count = sample.len() as i64;
            for key in sample {
                let usage: Option<i64> = redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(format!("{prefix}{key}"))
                    .query_async(&mut admin)
                    .await
                    .unwrap();
                sampled += usage.unwrap_or(0);
            }
            let mut index = 0i64;
            if tied {
                for user in 0..(n / 10).min(100) {
                    let usage: Option<i64> = redis::cmd("MEMORY")
                        .arg("USAGE")
                        .arg(format!("{prefix}p:user-{user}"))
                        .query_async(&mut admin)
                        .await
                        .unwrap();
                    index += usage.unwrap_or(0);
                }
                index /= (n / 10).min(100) as i64;
            }
            println!(
                "redis\t{size:?}\t{}\tMEMORY USAGE per session {}\tindex key per user (10 sessions) {}\tused_memory growth per session {}",
                if tied { "logged in" } else { "anonymous" },
                sampled / count,
                index,
                (used(after) - used(before)) / n as i64
            );
            // Clean up.
            let pattern = format!("{prefix}*");
            let names: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut admin)
                .await
                .unwrap();
            for chunk in names.chunks(1000) {
                let _: i64 = redis::cmd("UNLINK")
                    .arg(chunk)
                    .query_async(&mut admin)
                    .await
                    .unwrap();
            }
        }
    }
}

async fn postgres(n: usize) {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    for size in [Size::Small, Size::Large] {
        for tied in [false, true] {
            let table = format!("capacity_{}", SessionId::generate().store_key().short());
            let store = PostgresStore::connect(&url)
                .await
                .unwrap()
                .with_table_name(&table)
                .unwrap();
            store.migrate().await.unwrap();
            fill(&store, n, size, tied).await;
            let pool = store.pool();
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
                .execute(pool)
                .await
                .unwrap();
            let (total, heap): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT pg_total_relation_size('{table}'), pg_relation_size('{table}')"
            )))
            .fetch_one(pool)
            .await
            .unwrap();
            println!(
                "postgres\t{size:?}\t{}\ttotal (heap + TOAST + indexes) per row {}\theap per row {}",
                if tied { "logged in" } else { "anonymous" },
                total / n as i64,
                heap / n as i64
            );
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
                .execute(pool)
                .await
                .unwrap();
        }
    }
}

async fn sqlite(n: usize) {
    for size in [Size::Small, Size::Large] {
        for tied in [false, true] {
            let path = std::env::temp_dir().join(format!(
                "capacity-{}.db",
                SessionId::generate().store_key().short()
            ));
            let url = format!("sqlite://{}?mode=rwc", path.display());
            let store = SqliteStore::connect(&url).await.unwrap();
            store.migrate().await.unwrap();
            fill(&store, n, size, tied).await;
            // Let the writer's background checkpoint finish, then count pages.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (pages, page_size): (i64, i64) = store
                .with_connection(|db| {
                    db.query_row(
                        "SELECT (SELECT page_count FROM pragma_page_count()), \
                         (SELECT page_size FROM pragma_page_size())",
                        [],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                })
                .await
                .unwrap();
            println!(
                "sqlite\t{size:?}\t{}\tfile bytes per row {}",
                if tied { "logged in" } else { "anonymous" },
                pages * page_size / n as i64
            );
            drop(store);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

/// `N` loads, applies and creates of small sessions on `store`.
async fn workload(store: &impl SessionStore, n: usize) {
    let keys = fill(store, n, Size::Small, false).await;
    for key in &keys {
        let _ = store.load(key).await.expect("load");
    }
    for key in &keys {
        let changes = sessionware::store::ChangeSet::new(now() + Duration::from_millis(3_600_000))
            .with_set("counter", json!(8))
            .with_max_size(sessionware::defaults::MAX_SESSION_SIZE);
        let _ = store.apply(key, &changes).await.expect("apply");
    }
}

async fn redis_cost(n: usize) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let prefix = format!("capacity-{}:", SessionId::generate().store_key().short());
    let store = RedisStore::connect(&url)
        .await
        .unwrap()
        .with_key_prefix(&prefix);
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await
        .unwrap();
    workload(&store, n).await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut admin)
        .await
        .unwrap();
    for line in info
        .lines()
        .filter(|l| l.starts_with("cmdstat_hgetall") || l.starts_with("cmdstat_evalsha"))
    {
        println!("redis cost\t{line}");
    }
    let names: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut admin)
        .await
        .unwrap();
    for chunk in names.chunks(1000) {
        let _: i64 = redis::cmd("UNLINK")
            .arg(chunk)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
}

async fn postgres_cost(n: usize) {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let table = format!("capacity_{}", SessionId::generate().store_key().short());
    let store = PostgresStore::connect(&url)
        .await
        .unwrap()
        .with_table_name(&table)
        .unwrap();
    store.migrate().await.unwrap();
    let pool = store.pool().clone();
    let _ = sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(&pool)
        .await;
    workload(&store, n).await;
    let rows: Vec<(String, i64, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 60), calls, mean_exec_time \
         FROM pg_stat_statements WHERE query LIKE '%{table}%' AND calls >= {n} ORDER BY calls DESC"
    )))
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    for (query, calls, mean_ms) in rows {
        println!(
            "postgres cost\t{calls} calls\tmean {:.1} µs\t{query}",
            mean_ms * 1000.0
        );
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    println!("store\tsession\tstate\tfigures (bytes), N = {n}");
    sqlite(n).await;
    postgres(n).await;
    redis(n).await;
    redis_cost(n).await;
    postgres_cost(n).await;
}
