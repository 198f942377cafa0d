//! One conformance suite, run against every store this build has.
//!
//! Server stores read their address from the environment (`DATABASE_URL`, `REDIS_URL`,
//! `REDIS_CLUSTER_URLS`); with the store's feature on and the variable missing, their tests fail
//! and say which variable to set. `.ci/run` starts the servers and sets them.

mod caching;
#[path = "../common/mod.rs"]
mod common;
mod index;
mod instances;
mod purge;
mod stores;

/// One `#[tokio::test]` per contract point for the store that `$make` (an async expression)
/// builds: the public suite (`sessionware::store_conformance!`, what a store of any crate
/// runs), and the index check only this crate's stores can answer.
macro_rules! conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            sessionware::store_conformance!($make);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn purge_removes_index_entries() {
                crate::index::purge_removes_index_entries($make).await;
            }
        }
    };
}

conformance!(memory, stores::memory().await);
conformance!(caching_memory, stores::caching_memory().await);
#[cfg(feature = "sqlite")]
conformance!(caching_sqlite, stores::caching_sqlite().await);
#[cfg(feature = "sqlite")]
conformance!(sqlite, stores::sqlite().await);
#[cfg(feature = "postgres")]
conformance!(postgres, stores::postgres().await);
#[cfg(feature = "redis")]
conformance!(redis, stores::redis().await);
#[cfg(feature = "redis")]
conformance!(redis_cluster, stores::redis_cluster().await);
