//! PostgreSQL's `purge_at` column: how the purge finds expired rows without an index on
//! `expires_at`, so that writes can update rows in place.
//!
//! Every write moves `expires_at` (the idle timeout). Were it indexed, no write could be a
//! heap-only tuple (HOT) update: PostgreSQL adds an entry to every index for each new row
//! version unless no indexed column changed, so the table and its indexes grow with the write
//! rate until vacuum catches up (`benchmark/scale/hot.sh` counted 1 HOT update in 429,738 with
//! the index on `expires_at`). `purge_at` is indexed instead, and writes leave it alone as long
//! as a deadline only moves later:
//!
//! - a new row's `purge_at` is its `expires_at`;
//! - a write sets it to `LEAST(purge_at, <new expires_at>)`: the same value when the deadline
//!   moves later (the common case), lowered when it moves earlier, so `purge_at` is never later
//!   than `expires_at` and the purge never misses an expired row;
//! - the purge looks at the rows whose `purge_at` has passed: those whose `expires_at` has too
//!   are deleted, the others (live: their deadline moved since) get `purge_at = expires_at` and
//!   are looked at again when that passes. A live session costs the purge one update per
//!   deadline it outlives, instead of each of its writes costing an index entry.
//!
//! A row without `purge_at` (written by a version that did not know the column) counts as due:
//! the next purge deletes it or gives it one.
//!
//! The table also leaves room on each page ([`STORAGE`]): a HOT update needs the new version of
//! the row to fit on the page of the old one.

/// The storage parameters of a table with a `purge_at` column: 10% of each page left free for
/// new versions of its rows (PostgreSQL's default fills pages to 100%, so that the first update
/// of a row on a full page could not stay on it).
pub(crate) const STORAGE: &str = "fillfactor = 90";

/// The `purge_at` a write that sets the deadline to `expires_at` leaves: never later than the
/// deadline, unchanged if the deadline moves later.
pub(crate) fn lower_to(expires_at: &str) -> String {
    format!("LEAST(purge_at, {expires_at})")
}

/// `now, limit`: look at up to `limit` rows whose `purge_at` has passed at `now` (or that have
/// none); delete the expired ones, give the live ones `purge_at = expires_at` (PostgreSQL runs
/// every data-modifying `WITH` part whether or not the query reads it). One row: how many it
/// `looked_at` (fewer than `limit`: nothing more is due) and how many it `deleted`.
///
/// `due` locks the rows it looks at (skipping those another purge holds) and reads their
/// current deadline, so a write committed meanwhile is seen: a session a write kept alive is
/// never deleted.
pub(crate) fn purge(table: &str, now: &str, limit: &str) -> String {
    format!(
        "WITH due AS MATERIALIZED ( \
           SELECT key, expires_at FROM {table} \
           WHERE purge_at <= {now} OR purge_at IS NULL \
           LIMIT {limit} FOR UPDATE SKIP LOCKED \
         ), deleted AS ( \
           DELETE FROM {table} AS t USING due \
           WHERE t.key = due.key AND due.expires_at <= {now} \
           RETURNING 1 \
         ), later AS ( \
           UPDATE {table} AS t SET purge_at = due.expires_at FROM due \
           WHERE t.key = due.key AND due.expires_at > {now} \
         ) \
         SELECT (SELECT count(*) FROM due) AS looked_at, \
           (SELECT count(*) FROM deleted) AS deleted"
    )
}
