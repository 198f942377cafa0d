//! The app the side-by-side benchmark runs as `project` (README, Performance); `benchmark/ab.sh`,
//! `benchmark/durability.sh` and `benchmark/incr.sh` drive it from this repository (the index of
//! them all: `benchmark/README.md`).
//!
//! Routes: `/plain` (never touches the session), `/read` (the `counter`), `/write` (increments
//! it: read, then insert; concurrent writes of one key race, the last one wins), `/incr`
//! (increments `hits` with `Session::update`, a compare-and-set that loses no increment, and
//! answers the new value), `/login` (stores `user_id`, cycles the id). Environment: `PORT` (3000), `WORKERS` (1),
//! `STORE` = `memory` (default) | `sqlite` | `postgres` | `redis` | `caching` (memory in front of
//! PostgreSQL), with `SQLITE_URL`, `DATABASE_URL`, `REDIS_URL`; the server stores need their
//! cargo feature:
//!
//! ```text
//! cargo run --release --example bench_server
//! STORE=postgres cargo run --release --features postgres --example bench_server
//! ```
//!
//! `WRAP_ROUTER=1` puts the layer around the whole router (`Layer::layer(&layer, router)`, served
//! with `into_make_service`) instead of adding it with `Router::layer`, which wraps each route
//! in a boxed service of its own (README, Performance: what scenario A costs).
//!
//! `SESSIONWARE_STORE`, when set, overrides `STORE` for this app only: the peers harness passes
//! one `STORE` to every app, so the `caching` row runs as `STORE=postgres
//! SESSIONWARE_STORE=caching` (the peers on PostgreSQL, this app on memory over PostgreSQL).
//! `STORE=redis-cluster` uses the Redis Cluster at `REDIS_CLUSTER_URLS` (comma-separated).
//!
//! `PREFILL=N` fills the store with `N` sessions through the store API before serving (the
//! scale harness, `benchmark/scale/`), each `{"counter": 1}`, under ids derived from their
//! number `i` (`5e55` + the group's seed as 8 hex digits + `40008` + `i` as 15 hex digits: a valid
//! v4-shaped id a load generator can compute), with a progress line on standard error. More
//! groups, comma-separated, each `count[:seconds]` (how long its sessions live from the start of
//! its fill; default a day), get seeds 0, 1, ...: `PREFILL=1000000,1000000:90` adds a million
//! sessions that all expire 90 s after their fill began. `PREFILL_ONLY=1` exits after filling
//! (for a server store filled once, measured many times). `PURGE_EVERY=s` runs
//! `delete_expired` every `s` seconds and prints what each purge removed and how long it took.
//!
//! Cookies are not `Secure` (plain HTTP on loopback); everything else is the safe default:
//! strict ids, hashed keys, per-key conditional saves.

// A command-line tool: a wrong setting ends it with a message and exit status 2.
#![allow(clippy::exit)]

use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::routing::get;
use axum::{Router, ServiceExt};
use sessionware::store::{now, Created, Record, SessionStore};
use sessionware::{Error, MemoryStore, Session, SessionId, SessionLayer};

async fn read(session: Session) -> Result<String, Error> {
    Ok(session
        .get::<i64>("counter")
        .await?
        .unwrap_or(0)
        .to_string())
}

async fn write(session: Session) -> Result<String, Error> {
    let n = session.get::<i64>("counter").await?.unwrap_or(0) + 1;
    session.insert("counter", n).await?;
    Ok(n.to_string())
}

async fn incr(session: Session) -> Result<String, Error> {
    let n = session
        .update("hits", |n: Option<i64>| n.unwrap_or(0) + 1)
        .await?;
    Ok(n.to_string())
}

async fn login(session: Session) -> Result<&'static str, Error> {
    session.insert("user_id", 42_i64).await?;
    session.cycle_id().await?;
    Ok("ok")
}

fn routes() -> Router {
    Router::new()
        .route("/plain", get(|| async { "ok" }))
        .route("/read", get(read))
        .route("/write", get(write))
        .route("/incr", get(incr))
        .route("/login", get(login))
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[allow(dead_code)]
fn url(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

#[allow(dead_code)]
fn needs(feature: &str) -> ! {
    eprintln!("STORE needs the `{feature}` feature: cargo run --release --features {feature} --example bench_server");
    std::process::exit(2)
}

/// The store to use: `SESSIONWARE_STORE`, else `STORE`, else `memory`.
fn store_name() -> String {
    std::env::var("SESSIONWARE_STORE")
        .or_else(|_| std::env::var("STORE"))
        .unwrap_or_else(|_| "memory".into())
}

/// The id of prefilled session number `i` (see the file's header).
fn prefill_id(seed: u32, i: u64) -> String {
    format!("5e55{seed:08x}40008{i:015x}")
}

/// The process's resident memory, in bytes (Linux; 0 elsewhere).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// One group of `PREFILL` (see the file's header): how many sessions, their seed, how long
/// they live from the start of the group's fill.
struct Group {
    count: u64,
    seed: u32,
    lives: Duration,
}

/// The groups `PREFILL` names; a malformed one ends the process with a message.
fn prefill_groups() -> Vec<Group> {
    let spec = std::env::var("PREFILL").unwrap_or_default();
    let mut groups = Vec::new();
    for (seed, part) in spec
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .enumerate()
    {
        let (count, lives) = part
            .trim()
            .split_once(':')
            .unwrap_or((part.trim(), "86400"));
        let (Ok(count), Ok(lives), Ok(seed)) = (count.parse(), lives.parse(), u32::try_from(seed))
        else {
            eprintln!("PREFILL={spec}: each group is count[:seconds]");
            std::process::exit(2)
        };
        groups.push(Group {
            count,
            seed,
            lives: Duration::from_secs(lives),
        });
    }
    groups
}

/// Fills `store` with the `PREFILL` groups (see the file's header), `IN_FLIGHT` creates at a
/// time.
async fn prefill<S: SessionStore + Clone>(store: S) -> S {
    const IN_FLIGHT: usize = 128;
    let groups = prefill_groups();
    if groups.is_empty() {
        return store;
    }
    for group in groups {
        let Group { count, seed, lives } = group;
        let (rss_before, start) = (resident_bytes(), Instant::now());
        let expires_at = now() + lives;
        let mut tasks = tokio::task::JoinSet::new();
        let mut next_report = Instant::now() + Duration::from_secs(5);
        for i in 0..count {
            while tasks.len() >= IN_FLIGHT {
                if let Some(result) = tasks.join_next().await {
                    result.expect("a create task panicked");
                }
            }
            let store = store.clone();
            tasks.spawn(async move {
                let Some(id) = SessionId::parse(&prefill_id(seed, i)) else {
                    panic!("prefill id {i} does not parse");
                };
                let data = [("counter".to_owned(), serde_json::json!(1))].into();
                let record = Record::new(data, expires_at);
                let created = store.create(&id.store_key(), &record).await;
                match created.expect("prefill create") {
                    Created::Done | Created::Collision => {}
                }
            });
            if Instant::now() >= next_report {
                next_report += Duration::from_secs(5);
                let rate = i as f64 / start.elapsed().as_secs_f64();
                let share = 100.0 * i as f64 / count as f64;
                eprintln!("prefill {seed}: {i} / {count} ({share:.0}%), {rate:.0}/s");
            }
        }
        while let Some(result) = tasks.join_next().await {
            result.expect("a create task panicked");
        }
        let took = start.elapsed();
        let grown = resident_bytes().saturating_sub(rss_before);
        eprintln!(
            "prefill {seed}: {count} sessions in {:.1} s ({:.0}/s), living {} s; \
             this process grew {:.0} bytes per session",
            took.as_secs_f64(),
            count as f64 / took.as_secs_f64(),
            lives.as_secs(),
            grown as f64 / count as f64
        );
    }
    if env_or("PREFILL_ONLY", 0_u8) == 1 {
        std::process::exit(0);
    }
    store
}

/// With `PURGE_EVERY=s`, a task that purges the store every `s` seconds and reports each
/// purge that removed something (count and time) on standard error.
fn purge_every<S: SessionStore + Clone>(store: S) -> S {
    let every: u64 = env_or("PURGE_EVERY", 0);
    if every == 0 {
        return store;
    }
    let purging = store.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(every));
        loop {
            ticks.tick().await;
            let start = Instant::now();
            match purging.delete_expired().await {
                Ok(0) => {}
                Ok(n) => eprintln!("purge: {n} sessions in {} ms", start.elapsed().as_millis()),
                Err(error) => eprintln!("purge failed: {error}"),
            }
        }
    });
    store
}

async fn layer() -> SessionLayer {
    let name = store_name();
    match name.as_str() {
        "memory" => SessionLayer::new(purge_every(prefill(MemoryStore::default()).await)),
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            let default = format!(
                "sqlite://{}?mode=rwc",
                std::env::temp_dir().join("sessionware-bench.db").display()
            );
            let store = sessionware::SqliteStore::connect(&url("SQLITE_URL", &default))
                .await
                .expect("open SQLITE_URL");
            store.migrate().await.expect("migrate");
            SessionLayer::new(purge_every(prefill(store).await))
        }
        #[cfg(feature = "postgres")]
        "postgres" | "caching" => {
            let default = "postgres://bench:bench@127.0.0.1:5432/bench";
            let store = sessionware::PostgresStore::connect(&url("DATABASE_URL", default))
                .await
                .expect("connect to DATABASE_URL");
            store.migrate().await.expect("migrate");
            if name == "caching" {
                SessionLayer::new(sessionware::store::CachingStore::new(
                    MemoryStore::default(),
                    store,
                ))
            } else {
                SessionLayer::new(purge_every(prefill(store).await))
            }
        }
        #[cfg(feature = "redis")]
        "redis" => {
            let store =
                sessionware::RedisStore::connect(&url("REDIS_URL", "redis://127.0.0.1:6379"))
                    .await
                    .expect("connect to REDIS_URL");
            SessionLayer::new(purge_every(prefill(store).await))
        }
        #[cfg(feature = "redis")]
        "redis-cluster" => {
            let urls = url("REDIS_CLUSTER_URLS", "redis://127.0.0.1:7000");
            let urls: Vec<&str> = urls.split(',').map(str::trim).collect();
            let store = sessionware::RedisStore::connect_cluster(urls)
                .await
                .expect("connect to REDIS_CLUSTER_URLS");
            SessionLayer::new(purge_every(prefill(store).await))
        }
        #[cfg(not(feature = "sqlite"))]
        "sqlite" => needs("sqlite"),
        #[cfg(not(feature = "postgres"))]
        "postgres" | "caching" => needs("postgres"),
        #[cfg(not(feature = "redis"))]
        "redis" | "redis-cluster" => needs("redis"),
        other => {
            eprintln!(
                "unknown STORE={other} (memory, sqlite, postgres, redis, redis-cluster, caching)"
            );
            std::process::exit(2)
        }
    }
}

fn main() -> std::io::Result<()> {
    let workers = env_or("WORKERS", 1_usize);
    let port = env_or("PORT", 3000_u16);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(async move {
            let layer = layer().await.with_secure(false);
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            if env_or("WRAP_ROUTER", 0_u8) == 1 {
                let app = tower::Layer::layer(&layer, routes());
                axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await
            } else {
                axum::serve(listener, routes().layer(layer)).await
            }
        })
}
