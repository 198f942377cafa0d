//! One conformance suite, run against every store this build has.
//!
//! Server stores read their address from the environment (`DATABASE_URL`, `REDIS_URL`,
//! `REDIS_CLUSTER_URLS`); with the store's feature on and the variable missing, their tests fail
//! and say which variable to set. `.ci/run` starts the servers and sets them.

mod apps;
mod caching;
#[path = "../common/mod.rs"]
mod common;
mod instances;
mod owners;
mod purge;
mod stores;
mod suite;

/// Generates one `#[tokio::test]` per contract point for the store that `$make` (an async
/// expression) builds.
macro_rules! conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            conformance!(@each suite, $make,
                create_load_apply_delete,
                create_never_overwrites,
                no_resurrection_after_delete,
                cycle_moves_the_session,
                touch_moves_only_the_deadline,
                expired_sessions_are_gone,
                delete_expired_purges,
                concurrent_distinct_keys_all_survive,
                concurrent_writes_to_one_key_leave_one_winner,
                a_thousand_sessions,
                a_session_with_many_values,
                size_cap_holds_for_what_is_stored,
                preconditions_guard_a_change,
                a_change_set_with_thousands_of_keys,
                one_failed_precondition_of_thousands_changes_nothing,
                through_the_layer,
                size_at_the_cap_is_data_size,
                size_at_the_cap_through_the_layer);
            conformance!(@each owners, $make,
                owners_are_kept_and_listed,
                listing_skips_expired_and_destroyed,
                purge_removes_index_entries,
                cycle_keeps_the_owner_under_the_new_key,
                delete_all_ends_the_principals_sessions,
                log_in_racing_delete_all_is_listed_or_dead,
                the_cap_per_principal_revokes_the_oldest,
                tie_time_is_kept_and_listed,
                a_cycle_marks_the_old_key_moved);
            conformance!(@each apps, $make,
                flash_is_taken_once,
                csrf_secret_is_agreed,
                compare_and_set_after_own_changes,
                a_kept_handle_learns_the_session_ended,
                an_empty_principal_is_refused,
                a_stale_request_keeps_a_new_expiry_policy);
        }
    };
    (@each $module:ident, $make:expr, $($test:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                crate::$module::$test($make).await;
            }
        )*
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
