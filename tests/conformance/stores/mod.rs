//! How the suite builds each store.

use sessionware::store::CachingStore;
use sessionware::MemoryStore;

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

/// Reads a server store's address, failing with a message that names the variable.
#[allow(dead_code)]
pub fn env_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: this store's feature is on, so its tests need a server. Set {var} (see README, \"Stores\"), or run .ci/run, which starts the servers and sets it.")
    })
}
