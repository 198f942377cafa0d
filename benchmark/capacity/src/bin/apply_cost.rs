//! What one write costs as a session grows: `apply` of a one-key change (size cap on, as the
//! layer sends it) to sessions of 2, 20 and 200 values, timed by the server where there is one.
//! From the repository root:
//!
//! ```text
//! env=$(bash .ci/services.sh start --bench) && eval "$env"
//! cargo run --release --manifest-path benchmark/capacity/Cargo.toml --bin apply_cost
//! bash .ci/services.sh stop
//! ```
//!
//! - Redis: `usec_per_call` of `EVALSHA` in `INFO commandstats` (reset before each size), the
//!   server's own time for the script;
//! - PostgreSQL: `mean_exec_time` of the apply statement in `pg_stat_statements`;
//! - SQLite and `MemoryStore`: wall time per `apply` in this process (the stores are embedded).
//!
//! `SESSIONS` sessions per size (default 1,000), each changed `ROUNDS` times (default 5);
//! `STORES` picks stores (default `redis,postgres,sqlite,memory`; `memory` needs no server).

use std::time::{Duration, Instant};

use serde_json::json;
use sessionware::store::{now, ChangeSet, Data, Record, SessionStore};
use sessionware::{MemoryStore, PostgresStore, RedisStore, SessionId, SqliteStore, StoreKey};

const SIZES: [usize; 3] = [2, 20, 200];

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// `values` values of about 20 bytes of JSON each.
fn data(values: usize) -> Data {
    (0..values)
        .map(|i| (format!("key-{i:03}"), json!(format!("value number {i:05}"))))
        .collect()
}

/// Creates `sessions` sessions of `values` values on `store`.
async fn fill(store: &impl SessionStore, sessions: usize, values: usize) -> Vec<StoreKey> {
    let mut keys = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let key = SessionId::generate().store_key();
        let record = Record::new(data(values), now() + Duration::from_secs(3600));
        let _ = store.create(&key, &record).await.expect("create");
        keys.push(key);
    }
    keys
}

/// `rounds` one-key changes of each session, capped as the layer caps them; the time they took.
async fn change(store: &impl SessionStore, keys: &[StoreKey], rounds: usize) -> Duration {
    let start = Instant::now();
    for round in 0..rounds {
        for key in keys {
            let changes = ChangeSet::new(now() + Duration::from_secs(3600))
                .with_set("key-000", json!(format!("value number {round:05}")))
                .with_max_size(sessionware::defaults::MAX_SESSION_SIZE);
            let _ = store.apply(key, &changes).await.expect("apply");
        }
    }
    start.elapsed()
}

async fn redis(sessions: usize, rounds: usize) {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let prefix = format!("apply-cost-{}:", SessionId::generate().store_key().short());
    let store = RedisStore::connect(&url)
        .await
        .unwrap()
        .with_key_prefix(&prefix);
    for values in SIZES {
        let keys = fill(&store, sessions, values).await;
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut admin)
            .await
            .unwrap();
        change(&store, &keys, rounds).await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut admin)
            .await
            .unwrap();
        let evalsha = info
            .lines()
            .find(|line| line.starts_with("cmdstat_evalsha"))
            .unwrap_or("cmdstat_evalsha: none");
        println!("redis\t{values} values\t{evalsha}");
        for key in &keys {
            store.delete(key).await.unwrap();
        }
    }
}

async fn postgres(sessions: usize, rounds: usize) {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let table = format!("apply_cost_{}", SessionId::generate().store_key().short());
    let store = PostgresStore::connect(&url)
        .await
        .unwrap()
        .with_table_name(&table)
        .unwrap();
    store.migrate().await.unwrap();
    let pool = store.pool().clone();
    for values in SIZES {
        let keys = fill(&store, sessions, values).await;
        let _ = sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&pool)
            .await;
        change(&store, &keys, rounds).await;
        let rows: Vec<(i64, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT calls, mean_exec_time FROM pg_stat_statements \
             WHERE query LIKE 'UPDATE%{table}%' ORDER BY calls DESC LIMIT 1"
        )))
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        for (calls, mean_ms) in rows {
            println!(
                "postgres\t{values} values\t{calls} calls\tmean {:.1} µs",
                mean_ms * 1000.0
            );
        }
        for key in &keys {
            store.delete(key).await.unwrap();
        }
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(&pool)
        .await
        .unwrap();
}

async fn sqlite(sessions: usize, rounds: usize) {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    for values in SIZES {
        let keys = fill(&store, sessions, values).await;
        let took = change(&store, &keys, rounds).await;
        let per = took / u32::try_from(sessions * rounds).unwrap_or(u32::MAX);
        println!(
            "sqlite\t{values} values\t{:.1} µs per apply",
            per.as_secs_f64() * 1e6
        );
    }
}

async fn memory(sessions: usize, rounds: usize) {
    let store = MemoryStore::default();
    for values in SIZES {
        let keys = fill(&store, sessions, values).await;
        let took = change(&store, &keys, rounds).await;
        let per = took / u32::try_from(sessions * rounds).unwrap_or(u32::MAX);
        println!(
            "memory\t{values} values\t{:.2} µs per apply",
            per.as_secs_f64() * 1e6
        );
    }
}

#[tokio::main]
async fn main() {
    let sessions = env_number("SESSIONS", 1_000);
    let rounds = env_number("ROUNDS", 5);
    let stores = std::env::var("STORES").unwrap_or_else(|_| "redis,postgres,sqlite,memory".into());
    let wanted = |name: &str| stores.split(',').any(|s| s.trim() == name);
    println!("store\tsession\tapply of one key, size cap on ({sessions} sessions × {rounds})");
    if wanted("redis") {
        redis(sessions, rounds).await;
    }
    if wanted("postgres") {
        postgres(sessions, rounds).await;
    }
    if wanted("sqlite") {
        sqlite(sessions, rounds).await;
    }
    if wanted("memory") {
        memory(sessions, rounds).await;
    }
}
