//! axum_session with the store from `STORE`: memory-only (`SessionNullPool`, no database
//! client), axum_session_redispool, or axum_session_sqlx (Postgres, SQLite); default config.
use axum::{routing::get, Router};
use axum_session::{
    DatabasePool, Session, SessionConfig, SessionLayer, SessionNullPool, SessionStore,
};
use axum_session_redispool::SessionRedisPool;
use axum_session_sqlx::{SessionPgPool, SessionSqlitePool};
use sessionware_benchmark::Store;
use std::fmt::Debug;

/// The bounds axum_session puts on a database pool.
trait Pool: DatabasePool + Clone + Debug + Sync + Send + 'static {}
impl<T: DatabasePool + Clone + Debug + Sync + Send + 'static> Pool for T {}

async fn read<T: Pool>(session: Session<T>) -> String {
    session.get::<i64>("counter").unwrap_or(0).to_string()
}

async fn write<T: Pool>(session: Session<T>) -> String {
    let n = session.get::<i64>("counter").unwrap_or(0) + 1;
    session.set("counter", n);
    n.to_string()
}

async fn login<T: Pool>(session: Session<T>) -> &'static str {
    session.set("user_id", 42i64);
    session.renew(); // new session id, data kept
    "ok"
}

async fn app<T: Pool>(pool: Option<T>) -> Router {
    let config = SessionConfig::default().with_secure(false);
    let store = SessionStore::<T>::new(pool, config).await.expect("session store");
    Router::new()
        .route("/plain", get(sessionware_benchmark::plain))
        .route("/read", get(read::<T>))
        .route("/write", get(write::<T>))
        .route("/login", get(login::<T>))
        .layer(SessionLayer::new(store))
}

fn main() {
    sessionware_benchmark::serve(|| async {
        match sessionware_benchmark::store() {
            Store::Memory => app::<SessionNullPool>(None).await,
            Store::Redis(url) => {
                let client = redis::Client::open(url.as_str()).expect("REDIS_URL");
                app(Some(SessionRedisPool::from(redis_pool::RedisPool::from(client)))).await
            }
            Store::Postgres(url) => {
                let pool = sqlx::PgPool::connect(&url).await.expect("connect to postgres");
                app(Some(SessionPgPool::from(pool))).await
            }
            Store::Sqlite(url) => {
                let pool = sqlx::SqlitePool::connect(&url).await.expect("open sqlite");
                app(Some(SessionSqlitePool::from(pool))).await
            }
        }
    });
}
