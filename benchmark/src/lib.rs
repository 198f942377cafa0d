//! Shared scaffolding for the benchmark apps.
//!
//! Every app is a binary in `src/bin/` that builds a `Router` with the same four
//! routes (`/plain`, `/read`, `/write`, `/login`) and hands it to [`serve`]; the
//! session apps pick their store with [`store`].

use axum::Router;
use std::future::Future;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Builds the app inside a multi-thread tokio runtime with `WORKERS` worker
/// threads (default 1) and serves it on `127.0.0.1:PORT` (default 3000).
pub fn serve<F, Fut>(make_app: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Router>,
{
    let workers = env_or("WORKERS", 1usize);
    let port = env_or("PORT", 3000u16);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("build tokio runtime")
        .block_on(async move {
            // Built inside the runtime: some layers spawn background tasks.
            let app = make_app().await;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind 127.0.0.1:PORT");
            axum::serve(listener, app).await.expect("serve");
        });
}

/// The session store a peer app uses: `STORE` (default `memory`) and its URL.
pub enum Store {
    Memory,
    /// `REDIS_URL`, default `redis://127.0.0.1:6379`.
    Redis(String),
    /// `DATABASE_URL`, default `postgres://bench:bench@127.0.0.1:5432/bench` (`.ci/services.sh`
    /// prints the URL of its own server).
    Postgres(String),
    /// `SQLITE_URL`, default `sqlite://$TMPDIR/sessionware-benchmark.db?mode=rwc`.
    Sqlite(String),
}

pub fn store() -> Store {
    let url = |key: &str, default: String| std::env::var(key).unwrap_or(default);
    match std::env::var("STORE").as_deref().unwrap_or("memory") {
        "memory" => Store::Memory,
        "redis" => Store::Redis(url("REDIS_URL", "redis://127.0.0.1:6379".into())),
        "postgres" => Store::Postgres(url(
            "DATABASE_URL",
            "postgres://bench:bench@127.0.0.1:5432/bench".into(),
        )),
        "sqlite" => Store::Sqlite(url(
            "SQLITE_URL",
            format!("sqlite://{}?mode=rwc", std::env::temp_dir().join("sessionware-benchmark.db").display()),
        )),
        other => panic!("unknown STORE={other} (memory, redis, postgres, sqlite)"),
    }
}

/// `GET /plain`: never touches the session.
pub async fn plain() -> &'static str {
    "ok"
}
