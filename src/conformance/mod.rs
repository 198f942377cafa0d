//! The store contract as a test suite: prove that a [`SessionStore`] of your own keeps every
//! point of the [contract](crate::store::SessionStore#contract), with the checks this crate's
//! own stores pass. Cargo feature `store-conformance`.
//!
//! Each point is an `async fn` that takes a fresh store handle and panics, with a message
//! naming what broke, if the store does not keep it. The [`store_conformance!`](crate::store_conformance) macro writes
//! one `#[tokio::test]` per point, so a store's test file is one line:
//!
//! ```toml
//! [dev-dependencies]
//! sessionware = { version = "0.1", features = ["store-conformance"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! ```ignore
//! // tests/conformance.rs of a crate with a `DynamoStore`:
//! sessionware::store_conformance!(my_crate::DynamoStore::connect("http://127.0.0.1:8000").await);
//! ```
//!
//! The expression is evaluated once per test, on the test's own runtime, so each gets a fresh
//! handle. The checks use random keys and principals: they may share one backend (a database
//! the tests start once) and run in parallel. Some wait on expiries of a second or so; the
//! whole suite takes some seconds per store. A purge removes every test's expired sessions, so
//! the suite's purges take turns with the one point that counts what a purge removed; a test of
//! your own that purges the same backend calls [`delete_expired_in_turn`] instead of
//! `delete_expired`.
//!
//! # A worked example
//!
//! `examples/custom_store.rs` (in full [below](#the-worked-example-in-full)) is a complete
//! store in about 200 lines: sessions in a map
//! behind a mutex, with the owner index, preconditions, the size cap and moved-id markers,
//! built on the reference helpers [`ChangeSet::apply_to`](crate::store::ChangeSet::apply_to),
//! [`ChangeSet::preconditions_hold`](crate::store::ChangeSet::preconditions_hold) and
//! [`ChangeSet::check_size`](crate::store::ChangeSet::check_size). Its tests are the macro
//! above; `cargo test --features store-conformance --example custom_store` runs them.
//!
//! One point can also be run by hand, for instance while a store is half written:
//!
//! ```
//! use sessionware::MemoryStore;
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! sessionware::conformance::create_load_apply_delete(MemoryStore::default()).await;
//! sessionware::conformance::preconditions_guard_a_change(MemoryStore::default()).await;
//! # });
//! ```
//!
//! The crate's own stores (memory, SQLite, PostgreSQL, Redis, Redis Cluster, and
//! [`CachingStore`](crate::store::CachingStore) over memory and SQLite) run through this same
//! macro in `tests/conformance/`. What it cannot check from outside a store (that a purge drops
//! the owner index's stale entries, how a backend lays out its rows) each store's own tests
//! check; [`corrupt_row_is_not_a_panic`] helps with garbage written straight into a backend.
//!
//! # The worked example in full
#![doc = concat!("```rust,ignore\n", include_str!("../../examples/custom_store.rs"), "```")]

// A test suite: a failed check is a panic whose message says what broke, which is what
// `unwrap` and `expect` on a store's answer do here.

mod apps;
mod change_sets;
mod http;
mod lifecycle;
mod owners;
mod size;
mod volume;

use std::time::Duration;

use serde_json::Value;

use crate::store::{now, Record, SessionStore};
use crate::{SessionId, StoreError, StoreKey};

pub use apps::*;
pub use change_sets::*;
pub use lifecycle::*;
pub use owners::*;
pub use size::*;
pub use volume::*;

fn key() -> StoreKey {
    SessionId::generate().store_key()
}

fn record(data: Value, ttl: Duration) -> Record {
    let data = match data {
        Value::Object(map) => map.into_iter().collect(),
        _ => panic!("record data must be an object"),
    };
    let t = now();
    Record::new(data, t + ttl).with_created_at(t)
}

const HOUR: Duration = Duration::from_secs(3600);

/// Held by [`delete_expired_purges`] from its first session to its count, and by every other
/// purge of the suite for the purge's length: on a backend the tests share, a purge removes
/// every test's expired sessions, and one running meanwhile would take that point's from its
/// count.
static PURGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `store.delete_expired()` while no point of this suite counts what a purge removed: for
/// tests of your own that purge a backend these points share.
///
/// # Errors
///
/// The store's.
pub async fn delete_expired_in_turn(store: &impl SessionStore) -> Result<u64, StoreError> {
    let _turn = PURGES.lock().await;
    store.delete_expired().await
}

async fn must_load(store: &impl SessionStore, key: &StoreKey) -> Record {
    store
        .load(key)
        .await
        .expect("load failed")
        .expect("session should exist")
}

/// Writes one `#[tokio::test]` per point of the store contract for the store that `$make` (an
/// expression, `.await` allowed) builds; see the [module docs](crate::conformance).
///
/// The tests run on tokio's multi-threaded runtime: the crate that uses the macro needs
/// `tokio` with the `macros` and `rt-multi-thread` features among its dev-dependencies.
///
/// ```ignore
/// sessionware::store_conformance!(my_crate::MyStore::new());
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@points $make,
            // One session's life.
            create_load_apply_delete,
            create_never_overwrites,
            no_resurrection_after_delete,
            cycle_moves_the_session,
            touch_moves_only_the_deadline,
            expired_sessions_are_gone,
            delete_expired_purges,
            delete_expired_follows_moved_deadlines,
            through_the_layer,
            // Concurrency and volume.
            concurrent_distinct_keys_all_survive,
            concurrent_writes_to_one_key_leave_one_winner,
            a_thousand_sessions,
            a_session_with_many_values,
            // Change sets: preconditions, thousands of keys.
            preconditions_guard_a_change,
            a_change_set_with_thousands_of_keys,
            one_failed_precondition_of_thousands_changes_nothing,
            // The size cap.
            size_cap_holds_for_what_is_stored,
            size_at_the_cap_is_data_size,
            size_at_the_cap_through_the_layer,
            // Sessions by user.
            owners_are_kept_and_listed,
            listing_skips_expired_and_destroyed,
            cycle_keeps_the_owner_under_the_new_key,
            delete_all_ends_the_principals_sessions,
            log_in_racing_delete_all_is_listed_or_dead,
            the_cap_per_principal_revokes_the_oldest,
            tie_time_is_kept_and_listed,
            a_cycle_marks_the_old_key_moved,
            // What apps build on it.
            flash_is_taken_once,
            csrf_secret_is_agreed,
            compare_and_set_after_own_changes,
            a_kept_handle_learns_the_session_ended,
            an_empty_principal_is_refused,
            a_stale_request_keeps_a_new_expiry_policy
        );
    };
    (@points $make:expr, $($point:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $point() {
                $crate::conformance::$point($make).await;
            }
        )*
    };
}
