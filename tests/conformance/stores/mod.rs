//! How the suite builds each store.

use sessionware::store::CachingStore;
use sessionware::MemoryStore;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
use sessionware::{store::SessionStore, Error, Session, SessionLayer};

pub async fn memory() -> MemoryStore {
    MemoryStore::default()
}

pub async fn caching_memory() -> CachingStore<MemoryStore, MemoryStore> {
    CachingStore::new(MemoryStore::default(), MemoryStore::default())
}

#[cfg(feature = "sqlite")]
pub async fn caching_sqlite() -> CachingStore<MemoryStore, sessionware::SqliteStore> {
    CachingStore::new(MemoryStore::default(), sqlite().await)
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unused_imports)]
pub use sql::*;

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::*;

/// The shared routes on `store`, and `/login`, which puts `user = "alice"` in the session: what
/// the checks that no raw id reaches a backend send their requests to.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
pub fn login_app(store: impl SessionStore) -> axum::Router {
    async fn login(s: Session) -> Result<&'static str, Error> {
        s.insert("user", "alice").await?;
        Ok("ok")
    }
    crate::common::routes()
        .route("/login", axum::routing::get(login))
        .layer(SessionLayer::new(store))
}
