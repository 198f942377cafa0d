//! Floor: sessions written by hand with the least work a session needs, on the same clients
//! as the session apps (redis-rs, sqlx). No middleware, no signing, no hashing, no expiry
//! sweeps: a `sid` cookie holding a UUID v4, one JSON object per session, and per request the
//! fewest store round trips the route allows (load: 1; load + save: 2; new session: 1).
//! It is what a user could write instead of a session crate, and the figure a crate's
//! overhead is measured against.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use sessionware_benchmark::Store;
use redis::aio::ConnectionManager;
use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;

const TTL_MS: i64 = 24 * 3600 * 1000;

#[derive(Clone)]
enum Backend {
    Memory(Arc<Mutex<HashMap<Uuid, String>>>),
    Redis(ConnectionManager),
    Postgres(PgPool),
    Sqlite { reader: SqlitePool, writer: SqlitePool },
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn sid(headers: &HeaderMap) -> Option<Uuid> {
    headers.get_all(header::COOKIE).iter().find_map(|v| {
        v.to_str().ok()?.split(';').find_map(|c| {
            let v = c.trim().strip_prefix("sid=")?;
            Uuid::try_parse(v).ok()
        })
    })
}

fn counter_of(data: &str) -> i64 {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(data)
        .ok()
        .and_then(|m| m.get("counter").and_then(|v| v.as_i64()))
        .unwrap_or(0)
}

type Res<T> = Result<T, StatusCode>;
fn fail<E: std::fmt::Display>(e: E) -> StatusCode {
    eprintln!("store error: {e}");
    StatusCode::INTERNAL_SERVER_ERROR
}

impl Backend {
    async fn load(&self, id: Uuid) -> Res<Option<String>> {
        match self {
            Backend::Memory(m) => Ok(m.lock().unwrap().get(&id).cloned()),
            Backend::Redis(c) => {
                let mut c = c.clone();
                redis::cmd("GET").arg(id.as_bytes()).query_async(&mut c).await.map_err(fail)
            }
            Backend::Postgres(p) => sqlx::query_scalar(
                "SELECT data::text FROM floor_sessions WHERE id = $1 AND expires_at > $2",
            )
            .bind(id.to_string())
            .bind(now_ms())
            .fetch_optional(p)
            .await
            .map_err(fail),
            Backend::Sqlite { reader, .. } => sqlx::query_scalar(
                "SELECT data FROM floor_sessions WHERE id = ? AND expires_at > ?",
            )
            .bind(id.to_string())
            .bind(now_ms())
            .fetch_optional(reader)
            .await
            .map_err(fail),
        }
    }

    /// Writes an existing session (update) or a new one (insert).
    async fn save(&self, id: Uuid, data: String, new: bool) -> Res<()> {
        let expires = now_ms() + TTL_MS;
        match self {
            Backend::Memory(m) => {
                m.lock().unwrap().insert(id, data);
                Ok(())
            }
            Backend::Redis(c) => {
                let mut c = c.clone();
                let mut cmd = redis::cmd("SET");
                cmd.arg(id.as_bytes()).arg(data).arg("PX").arg(TTL_MS);
                if new {
                    cmd.arg("NX");
                }
                cmd.query_async::<Option<String>>(&mut c).await.map(drop).map_err(fail)
            }
            Backend::Postgres(p) => {
                let sql = if new {
                    "INSERT INTO floor_sessions (id, data, expires_at) VALUES ($1, $2::jsonb, $3)"
                } else {
                    "UPDATE floor_sessions SET data = $2::jsonb, expires_at = $3 WHERE id = $1"
                };
                sqlx::query(sql).bind(id.to_string()).bind(data).bind(expires).execute(p).await.map(drop).map_err(fail)
            }
            Backend::Sqlite { writer, .. } => {
                let sql = if new {
                    "INSERT INTO floor_sessions (id, data, expires_at) VALUES (?1, ?2, ?3)"
                } else {
                    "UPDATE floor_sessions SET data = ?2, expires_at = ?3 WHERE id = ?1"
                };
                sqlx::query(sql).bind(id.to_string()).bind(data).bind(expires).execute(writer).await.map(drop).map_err(fail)
            }
        }
    }

    async fn delete(&self, id: Uuid) -> Res<()> {
        match self {
            Backend::Memory(m) => {
                m.lock().unwrap().remove(&id);
                Ok(())
            }
            Backend::Redis(c) => {
                let mut c = c.clone();
                redis::cmd("DEL").arg(id.as_bytes()).query_async::<i64>(&mut c).await.map(drop).map_err(fail)
            }
            Backend::Postgres(p) => sqlx::query("DELETE FROM floor_sessions WHERE id = $1")
                .bind(id.to_string())
                .execute(p)
                .await
                .map(drop)
                .map_err(fail),
            Backend::Sqlite { writer, .. } => sqlx::query("DELETE FROM floor_sessions WHERE id = ?")
                .bind(id.to_string())
                .execute(writer)
                .await
                .map(drop)
                .map_err(fail),
        }
    }
}

fn with_cookie(id: Uuid, body: String) -> Response {
    let cookie = format!("sid={id}; HttpOnly; SameSite=Lax; Path=/; Max-Age=86400");
    ([(header::SET_COOKIE, cookie)], body).into_response()
}

async fn read(State(b): State<Backend>, headers: HeaderMap) -> Res<String> {
    let n = match sid(&headers) {
        Some(id) => b.load(id).await?.map(|d| counter_of(&d)).unwrap_or(0),
        None => 0,
    };
    Ok(n.to_string())
}

async fn write(State(b): State<Backend>, headers: HeaderMap) -> Res<Response> {
    if let Some(id) = sid(&headers) {
        if let Some(data) = b.load(id).await? {
            let n = counter_of(&data) + 1;
            b.save(id, format!("{{\"counter\":{n}}}"), false).await?;
            return Ok(n.to_string().into_response());
        }
    }
    let id = Uuid::new_v4();
    b.save(id, "{\"counter\":1}".to_owned(), true).await?;
    Ok(with_cookie(id, "1".to_owned()))
}

async fn login(State(b): State<Backend>, headers: HeaderMap) -> Res<Response> {
    let old = sid(&headers);
    let mut data = serde_json::Map::new();
    if let Some(id) = old {
        if let Some(d) = b.load(id).await? {
            data = serde_json::from_str(&d).unwrap_or_default();
        }
    }
    data.insert("user_id".into(), 42.into());
    let new = Uuid::new_v4();
    b.save(new, serde_json::Value::Object(data).to_string(), true).await?;
    if let Some(id) = old {
        b.delete(id).await?;
    }
    Ok(with_cookie(new, "ok".to_owned()))
}

async fn backend() -> Backend {
    match sessionware_benchmark::store() {
        Store::Memory => Backend::Memory(Arc::default()),
        Store::Redis(url) => {
            let client = redis::Client::open(url).expect("REDIS_URL");
            Backend::Redis(ConnectionManager::new(client).await.expect("connect to Redis"))
        }
        Store::Postgres(url) => {
            let pool = PgPool::connect(&url).await.expect("connect to PostgreSQL");
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS floor_sessions \
                 (id text PRIMARY KEY, data jsonb NOT NULL, expires_at bigint NOT NULL)",
            )
            .execute(&pool)
            .await
            .expect("create table");
            Backend::Postgres(pool)
        }
        Store::Sqlite(url) => {
            use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
            use std::str::FromStr;
            let opts = SqliteConnectOptions::from_str(&url)
                .expect("SQLITE_URL")
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            let writer = SqlitePoolOptions::new().max_connections(1).connect_with(opts.clone()).await.expect("open SQLite");
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS floor_sessions \
                 (id TEXT PRIMARY KEY, data TEXT NOT NULL, expires_at INTEGER NOT NULL)",
            )
            .execute(&writer)
            .await
            .expect("create table");
            let reader = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await.expect("open SQLite");
            Backend::Sqlite { reader, writer }
        }
    }
}

fn main() {
    sessionware_benchmark::serve(|| async {
        Router::new()
            .route("/plain", get(sessionware_benchmark::plain))
            .route("/read", get(read))
            .route("/write", get(write))
            .route("/login", get(login))
            .with_state(backend().await)
    });
}
