//! How the suite builds each store.

use sessionware::store::{CachingStore, SessionStore};
use sessionware::MemoryStore;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
use sessionware::{Error, Session, SessionLayer};

/// What the owner checks need to see of a store besides the contract: how many index entries
/// `principal` has (live or not), and how long a store may keep an entry whose session is not
/// there (its in-flight bound).
#[async_trait::async_trait]
pub trait IndexProbe {
    async fn index_entries(&self, principal: &str) -> usize;
    fn settle(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

#[async_trait::async_trait]
impl IndexProbe for MemoryStore {
    // Every test has a fresh memory store, so its whole index is the principal's.
    async fn index_entries(&self, _: &str) -> usize {
        self.indexed()
    }
}

#[async_trait::async_trait]
impl<C: SessionStore, B: SessionStore + IndexProbe> IndexProbe for CachingStore<C, B> {
    async fn index_entries(&self, principal: &str) -> usize {
        self.backing().index_entries(principal).await
    }
    fn settle(&self) -> std::time::Duration {
        self.backing().settle()
    }
}

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
