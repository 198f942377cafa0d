//! WAL checkpoints of a file database: when the writer asks for one, and the background thread
//! that runs them.
//!
//! In WAL mode every commit appends the pages it changed to the log, and a checkpoint copies
//! them back into the database file, syncing log and file to disk. SQLite's own automatic
//! checkpoint runs on the writer connection right after the commit that makes the log pass a
//! size, so every write queued behind it waits: under sustained writes, for tens to hundreds
//! of milliseconds (the p99 latency of a write-heavy load). Here a checkpoint thread
//! with a connection of its own does that work with `PRAGMA wal_checkpoint(PASSIVE)`, which
//! never blocks the writer or readers, and the writer asks for one whenever the log has grown
//! by [`LOG_PAGES_PER_CHECKPOINT`]. Kept small, each checkpoint finds little to sync, and one
//! that catches up with the writer lets the next transaction restart the log from its
//! beginning, so the writer's own checkpoint (still there, at [`WRITER_CHECKPOINT_PAGES`]: it
//! bounds the log if the thread falls behind, or readers keep the log from restarting) rarely
//! runs.
//!
//! The log's size comes from a commit hook on the writer connection, which replaces SQLite's
//! automatic checkpoint (itself such a hook): `PRAGMA wal_autocheckpoint` on that connection
//! would remove it, and with it the background checkpoints.

use std::cell::Cell;
use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;

use rusqlite::hooks::Wal;
use rusqlite::Connection;

use crate::error::StoreError;

/// Log pages (of 4 KiB by default) after which the writer asks for a background checkpoint.
/// Smaller: shorter write stalls, but the checkpoint thread copies and syncs the pages every
/// commit rewrites (a table's last page) more often. Measured with new sessions written at
/// full speed on one CPU: every 32 pages gave a p99 of 13 to 16 ms, every 512 pages 31 ms,
/// every 200 commits (the rule before) 73 to 160 ms; at 32 the thread's CPU per write was
/// five times that at 200 commits.
pub(super) const LOG_PAGES_PER_CHECKPOINT: u32 = 64;

/// Log pages after which the writer checkpoints itself, stalling writes (SQLite's automatic
/// checkpoint, whose default is 1,000): only reached when background checkpoints fall behind.
pub(super) const WRITER_CHECKPOINT_PAGES: u32 = 10_000;

thread_local! {
    /// The pages in the log after the last commit on this thread's writer connection (each
    /// store's writer connection lives on a thread of its own).
    static LOG_PAGES: Cell<u32> = const { Cell::new(0) };
}

/// Reports the log's size after each commit of `connection` (read with [`log_pages`] on the
/// same thread) and checkpoints on it once the log reaches [`WRITER_CHECKPOINT_PAGES`]. Replaces
/// SQLite's automatic checkpoint, which is a hook of the same kind.
pub(super) fn watch_log(connection: &Connection) {
    connection.wal_hook(Some(after_commit));
}

/// SQLite calls this after each commit, once per database written (`main`, and any attached
/// by the application), with the pages in that database's log. It must not fail: the commit
/// has happened, and an error here would be reported as the commit's.
fn after_commit(wal: &Wal, pages: c_int) -> rusqlite::Result<()> {
    let pages = u32::try_from(pages).unwrap_or(0);
    if wal.name() == c"main" {
        LOG_PAGES.set(pages);
    }
    if pages >= WRITER_CHECKPOINT_PAGES {
        // What SQLite's own hook does (a passive checkpoint). A failure (busy: the background
        // checkpoint is running) leaves the log as it is, to be checkpointed later.
        if let Err(error) = wal.checkpoint() {
            tracing::trace!(%error, "SQLite WAL checkpoint on the writer did not run");
        }
    }
    Ok(())
}

/// The pages in the log after the last commit on this thread.
pub(super) fn log_pages() -> u32 {
    LOG_PAGES.get()
}

/// Decides after each commit whether to ask for a background checkpoint: when the log has
/// grown by [`LOG_PAGES_PER_CHECKPOINT`] since the last time it asked.
#[derive(Debug, Default)]
pub(super) struct Pace {
    /// The log's size when a checkpoint was last asked for.
    asked_at: u32,
    /// The log's size after the last commit.
    last: u32,
}

impl Pace {
    /// Whether to ask now, given the pages in the log after a commit.
    pub(super) fn ask(&mut self, log_pages: u32) -> bool {
        if log_pages < self.last {
            // The log restarted from its beginning: it has grown by what it holds. (A restart
            // followed by a commit larger than the log was is missed: a request comes a step
            // later, which does no harm.)
            self.asked_at = 0;
        }
        self.last = log_pages;
        if log_pages >= self.asked_at.saturating_add(LOG_PAGES_PER_CHECKPOINT) {
            self.asked_at = log_pages;
            true
        } else {
            false
        }
    }
}

/// WAL checkpoints in the background, on a thread and connection of their own.
pub(super) struct Checkpointer {
    /// Holds at most one request: a request while one is pending is dropped.
    requests: SyncSender<()>,
    completed: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Starts the thread; it ends when the store's last handle is gone (its channel closes).
    pub(super) fn start(connection: Connection) -> Result<Self, StoreError> {
        let (requests, wanted) = mpsc::sync_channel::<()>(1);
        let completed = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&completed);
        std::thread::Builder::new()
            .name("sessionware-sqlite-checkpoint".into())
            .spawn(move || {
                while wanted.recv().is_ok() {
                    match connection.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                        Ok(()) => {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            tracing::debug!(%error, "background SQLite WAL checkpoint failed");
                        }
                    }
                }
            })
            .map_err(StoreError::backend)?;
        Ok(Self {
            requests,
            completed,
        })
    }

    /// Asks for a checkpoint; a no-op if one is already asked for and not yet started.
    pub(super) fn nudge(&self) {
        match self.requests.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::debug!("the SQLite checkpoint thread is gone");
            }
        }
    }

    /// Checkpoints completed so far.
    pub(super) fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::scratch::ScratchDir;
    use super::*;

    #[test]
    fn asks_each_time_the_log_grows_by_the_step() {
        let step = LOG_PAGES_PER_CHECKPOINT;
        let mut pace = Pace::default();
        assert!(!pace.ask(step - 1));
        assert!(pace.ask(step));
        assert!(!pace.ask(2 * step - 1));
        assert!(pace.ask(2 * step + 5));
        assert!(!pace.ask(3 * step + 4), "counted from where it last asked");
        assert!(pace.ask(3 * step + 5));
    }

    /// If background checkpoints fall behind, the writer's commit hook checkpoints at the
    /// limit (as SQLite's automatic checkpoint, which the hook replaces, would), and the log
    /// restarts.
    #[test]
    fn the_writer_checkpoints_when_the_log_reaches_its_limit() {
        let dir = ScratchDir::new("wal-limit");
        let connection = Connection::open(dir.path().join("s.db")).unwrap();
        // Pages of 512 bytes, one row each: the limit is reached with 5 MB of log.
        connection
            .execute_batch(
                "PRAGMA page_size = 512; PRAGMA journal_mode = WAL; CREATE TABLE t (v BLOB);",
            )
            .unwrap();
        watch_log(&connection);
        connection
            .execute_batch(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {}) \
                 INSERT INTO t SELECT zeroblob(400) FROM n;",
                WRITER_CHECKPOINT_PAGES + 100
            ))
            .unwrap();
        assert!(log_pages() > WRITER_CHECKPOINT_PAGES, "{}", log_pages());
        // Checkpointed in the hook: the next commit starts the log over.
        connection.execute("INSERT INTO t VALUES (1)", []).unwrap();
        assert!(log_pages() < 10, "{}", log_pages());
        // The database is closed before the directory goes.
        drop(connection);
        drop(dir);
    }

    #[test]
    fn a_restarted_log_counts_from_zero() {
        let step = LOG_PAGES_PER_CHECKPOINT;
        let mut pace = Pace::default();
        assert!(pace.ask(5 * step));
        assert!(!pace.ask(5 * step + 3));
        // The log restarted and holds fewer pages than after the last commit (though more than
        // when it last asked, in the second case): counted from zero.
        assert!(!pace.ask(3));
        assert!(!pace.ask(step - 1));
        assert!(pace.ask(step));
        assert!(!pace.ask(step + 10));
        assert!(
            pace.ask(step + 2),
            "restarted: {step} + 2 pages of log since zero"
        );
    }
}
