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
//!
//! Cookies are not `Secure` (plain HTTP on loopback); everything else is the safe default:
//! strict ids, hashed keys, per-key conditional saves.

// A command-line tool: a wrong setting ends it with a message and exit status 2.
#![allow(clippy::exit)]

use axum::extract::Request;
use axum::routing::get;
use axum::{Router, ServiceExt};
use sessionware::{Error, MemoryStore, Session, SessionLayer};

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

async fn layer() -> SessionLayer {
    let name = store_name();
    match name.as_str() {
        "memory" => SessionLayer::new(MemoryStore::default()),
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
            SessionLayer::new(store)
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
                SessionLayer::new(store)
            }
        }
        #[cfg(feature = "redis")]
        "redis" => {
            let store =
                sessionware::RedisStore::connect(&url("REDIS_URL", "redis://127.0.0.1:6379"))
                    .await
                    .expect("connect to REDIS_URL");
            SessionLayer::new(store)
        }
        #[cfg(not(feature = "sqlite"))]
        "sqlite" => needs("sqlite"),
        #[cfg(not(feature = "postgres"))]
        "postgres" | "caching" => needs("postgres"),
        #[cfg(not(feature = "redis"))]
        "redis" => needs("redis"),
        other => {
            eprintln!("unknown STORE={other} (memory, sqlite, postgres, redis, caching)");
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
