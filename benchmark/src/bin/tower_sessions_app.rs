//! tower-sessions with the store from `STORE`: its in-memory `MemoryStore`, or
//! tower-sessions-redis-store (fred) / tower-sessions-sqlx-store (Postgres, SQLite).
use axum::{http::StatusCode, routing::get, Router};
use sessionware_benchmark::Store;
use tower_sessions::{
    session::{Id, Record},
    session_store, MemoryStore, Session, SessionManagerLayer, SessionStore,
};
use tower_sessions_core_014 as core014;
use tower_sessions_redis_store::{fred::prelude::*, RedisStore};
use tower_sessions_sqlx_store::{sqlx, PostgresStore, SqliteStore};

type Res<T> = Result<T, StatusCode>;

fn err(_: tower_sessions::session::Error) -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn read(session: Session) -> Res<String> {
    let n: i64 = session.get("counter").await.map_err(err)?.unwrap_or(0);
    Ok(n.to_string())
}

async fn write(session: Session) -> Res<String> {
    let n = session.get::<i64>("counter").await.map_err(err)?.unwrap_or(0) + 1;
    session.insert("counter", n).await.map_err(err)?;
    Ok(n.to_string())
}

async fn login(session: Session) -> Res<&'static str> {
    session.insert("user_id", 42i64).await.map_err(err)?;
    session.cycle_id().await.map_err(err)?;
    Ok("ok")
}

fn app(store: impl SessionStore + Clone) -> Router {
    Router::new()
        .route("/plain", get(sessionware_benchmark::plain))
        .route("/read", get(read))
        .route("/write", get(write))
        .route("/login", get(login))
        .layer(SessionManagerLayer::new(store).with_secure(false))
}

/// The newest Redis and SQLx stores (0.16 / 0.15) implement tower-sessions-core 0.14's
/// `SessionStore`; tower-sessions 0.15 wants 0.15's, the same trait in a new semver
/// version. This forwards one to the other (the record and id types have the same fields).
#[derive(Debug, Clone)]
struct Compat<S>(S);

fn record014(r: &Record) -> core014::session::Record {
    let (id, data) = (core014::session::Id(r.id.0), r.data.clone());
    core014::session::Record { id, data, expiry_date: r.expiry_date }
}

fn error014(e: core014::session_store::Error) -> session_store::Error {
    use core014::session_store::Error as E;
    match e {
        E::Encode(s) => session_store::Error::Encode(s),
        E::Decode(s) => session_store::Error::Decode(s),
        E::Backend(s) => session_store::Error::Backend(s),
    }
}

#[async_trait::async_trait]
impl<S: core014::SessionStore> SessionStore for Compat<S> {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let mut r = record014(record);
        self.0.create(&mut r).await.map_err(error014)?;
        record.id = Id(r.id.0); // the store may have picked a new id
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.0.save(&record014(record)).await.map_err(error014)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let r = self.0.load(&core014::session::Id(id.0)).await.map_err(error014)?;
        Ok(r.map(|r| Record { id: Id(r.id.0), data: r.data, expiry_date: r.expiry_date }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.0.delete(&core014::session::Id(id.0)).await.map_err(error014)
    }
}

/// The SQLx stores' README setup: migrate, then a task deleting expired sessions.
fn with_deletion_task<S: core014::ExpiredDeletion + Clone>(store: S) -> Compat<S> {
    let period = std::time::Duration::from_secs(60);
    tokio::spawn(store.clone().continuously_delete_expired(period));
    Compat(store)
}

fn main() {
    sessionware_benchmark::serve(|| async {
        match sessionware_benchmark::store() {
            Store::Memory => app(MemoryStore::default()),
            Store::Redis(url) => {
                let config = Config::from_url(&url).expect("REDIS_URL");
                let pool = Pool::new(config, None, None, None, 6).expect("redis pool");
                pool.connect();
                pool.wait_for_connect().await.expect("connect to redis");
                app(Compat(RedisStore::new(pool)))
            }
            Store::Postgres(url) => {
                let pool = sqlx::PgPool::connect(&url).await.expect("connect to postgres");
                let store = PostgresStore::new(pool);
                store.migrate().await.expect("migrate");
                app(with_deletion_task(store))
            }
            Store::Sqlite(url) => {
                let pool = sqlx::SqlitePool::connect(&url).await.expect("open sqlite");
                let store = SqliteStore::new(pool);
                store.migrate().await.expect("migrate");
                app(with_deletion_task(store))
            }
        }
    });
}
