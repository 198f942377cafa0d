//! The writer: a thread that owns the store's writer connection and runs the writes queued
//! while its previous transaction ran as one transaction (group commit).
//!
//! Why a thread: SQLite takes one writer at a time, and a commit costs a write to the log
//! (and file-lock system calls) whatever it holds. Writes queued while one transaction runs
//! share the next one, so `n` concurrent writes cost one commit, and the same page changed by
//! all of them (many requests of one session) goes to the log once. A lone write runs at once.
//! A write that waits for another process's lock waits on this thread, never on a runtime
//! thread.
//!
//! Every caller learns its own write's outcome only after the commit: an answer is never given
//! for a write that could still roll back. In a batch, each write runs inside a savepoint, so
//! one that fails is undone alone and the others commit. If the commit itself fails, every
//! write of the batch gets the error.
//!
//! A write that panics (a bug in a [`with_connection`](super::SqliteStore::with_connection)
//! closure, say) fails alone, like a write that returns an error: the panic is caught around
//! that write, logged, its changes are rolled back, its caller gets an error naming the panic,
//! and the writer carries on with the rest of the batch and the writes after it.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::StoreError;
use crate::store::sql::MAX_BATCH;

/// What a write sends back once its transaction ended: its result, or the error that ended
/// the transaction (a write that failed keeps its own error).
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A queued write. Given the writer connection, it runs (inside a savepoint when `batched`)
/// and says how that went; given none, it did not run (its batch could not begin). Either way
/// it returns how to deliver its result.
type Job = Box<dyn FnOnce(Option<&Connection>, bool) -> (Deliver, Ran) + Send>;

/// How a write left the transaction it ran in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    /// It succeeded: its changes are in the transaction.
    Done,
    /// It failed (or panicked, or did not run). In a batch its savepoint undid its changes; a
    /// lone write's are undone by rolling the transaction back.
    Failed,
    /// It ran in a batch and its changes could not be undone alone (rolling back to or
    /// releasing its savepoint failed): only rolling back the whole transaction undoes them.
    Tainted,
}

/// The handle on the writer thread; the thread ends when the last handle is gone.
pub(super) struct Writer {
    jobs: Sender<Job>,
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the thread on `connection`; `after_commit` runs on that thread after each commit.
    pub(super) fn start(
        connection: Connection,
        mut after_commit: impl FnMut() + Send + 'static,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commits);
        std::thread::Builder::new()
            .name("sessionware-sqlite-writer".into())
            .spawn(move || run(&connection, &queue, &counter, &mut after_commit))
            .map_err(StoreError::backend)?;
        Ok(Self { jobs, commits })
    }

    /// Runs `work` on the writer connection, in a transaction with whatever else is queued,
    /// and returns its result once that transaction has committed.
    ///
    /// # Errors
    ///
    /// What `work` returns; [`StoreError::Backend`] if the transaction could not begin or
    /// commit, or if the writer thread is gone.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move |connection, batched| {
            let (outcome, ran) = match connection {
                Some(connection) if batched => in_savepoint(connection, work),
                Some(connection) => {
                    let outcome = guarded(connection, work);
                    let ran = if outcome.is_ok() {
                        Ran::Done
                    } else {
                        Ran::Failed
                    };
                    (outcome, ran)
                }
                None => (Err(gone()), Ran::Failed),
            };
            let deliver: Deliver = Box::new(move |ended: Result<(), String>| {
                let _ = reply.send(match (ended, outcome) {
                    (Ok(()), outcome) => outcome,
                    (Err(_), Err(own)) => Err(own),
                    (Err(error), Ok(_)) => Err(StoreError::backend(error)),
                });
            });
            (deliver, ran)
        });
        self.jobs.send(job).map_err(|_| gone())?;
        result.await.map_err(|_| unanswered())?
    }

    /// Transactions committed so far.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

fn gone() -> StoreError {
    StoreError::backend("the SQLite writer thread has stopped")
}

/// A write whose answer was dropped: the writer panicked outside any write's own work (logged
/// then), so whether it was committed is not known.
fn unanswered() -> StoreError {
    StoreError::backend(
        "the SQLite writer failed before answering this write (see the error log): \
         whether it was committed is not known",
    )
}

/// A panic's message, when it has one (`panic!` with a literal or a format string).
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "(no message)"
    }
}

/// Runs `work`, turning a panic into an error for its caller (logged): one write's bug must not
/// unwind the writer thread, which every other write (and an in-memory database's reads) needs.
fn guarded<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Unwind safety: `work` is consumed, and whatever it left half-done on the connection is
    // rolled back by the caller (its savepoint, or the lone write's transaction).
    panic::catch_unwind(AssertUnwindSafe(|| work(connection))).unwrap_or_else(|payload| {
        let message = panic_message(payload.as_ref());
        tracing::error!(
            panic = message,
            "a write panicked on the SQLite writer thread: it fails and is rolled back, \
             the writer carries on"
        );
        Err(StoreError::backend(format!(
            "the write panicked on the SQLite writer thread and was rolled back: {message}"
        )))
    })
}
/// Runs one transaction-control statement, prepared once per connection: they run several
/// times per batch, and parsing one costs more than running it.
fn control(connection: &Connection, statement: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(statement)?.execute([])?;
    Ok(())
}

/// Runs `work` inside a savepoint: undone alone if it fails or panics. [`Ran::Tainted`] if its
/// changes could not be undone alone. (The savepoint's name is unlikely to be one that a
/// `with_connection` closure uses for its own.)
fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> (Result<T, StoreError>, Ran) {
    if let Err(error) = control(connection, "SAVEPOINT sessionware_write") {
        return (Err(StoreError::backend(error)), Ran::Failed);
    }
    let outcome = guarded(connection, work);
    let ran = if outcome.is_ok() {
        Ran::Done
    } else {
        match control(connection, "ROLLBACK TO sessionware_write") {
            Ok(()) => Ran::Failed,
            Err(_) => return (outcome, Ran::Tainted),
        }
    };
    match control(connection, "RELEASE sessionware_write") {
        Ok(()) => (outcome, ran),
        Err(error) => (outcome.and(Err(StoreError::backend(error))), Ran::Tainted),
    }
}

/// Moves the writes queued meanwhile into `batch`, up to [`MAX_BATCH`].
fn take_queued(queue: &Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// The thread: waits for a write, takes whatever else has queued up, runs it all in one
/// `BEGIN IMMEDIATE` transaction, commits, then answers every caller.
fn run(
    connection: &Connection,
    queue: &Receiver<Job>,
    commits: &AtomicU64,
    after_commit: &mut dyn FnMut(),
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        take_queued(queue, &mut batch);
        if batch.len() == 1 {
            // Woken by a lone write, give way once to threads ready to run on this CPU (the
            // runtime thread that sent it, with more requests in hand) and look again: where
            // they share a CPU, the writer otherwise runs as soon as one write arrives and
            // commits batches of one or two. Returns at once when nothing else is ready to
            // run; the price, on a CPU busy with other work, is up to a scheduler slice.
            std::thread::yield_now();
            take_queued(queue, &mut batch);
        }
        let mut batch = VecDeque::from(batch);
        while !batch.is_empty() {
            // Each write's panic is caught around it (`guarded`); this catches one anywhere else
            // (`after_commit`, say), so that the thread never stops. The answers not yet sent
            // are dropped: their callers get an error.
            let ran = panic::catch_unwind(AssertUnwindSafe(|| {
                run_transaction(connection, &mut batch, commits, after_commit);
            }));
            if let Err(payload) = ran {
                tracing::error!(
                    panic = panic_message(payload.as_ref()),
                    "the SQLite writer panicked outside a write: the writes of its transaction \
                     fail, the writer carries on"
                );
                batch.clear();
                if !connection.is_autocommit() {
                    let _ = connection.execute_batch("ROLLBACK");
                }
            }
        }
    }
}

/// Runs the writes of `batch` in one transaction, taking them from its front, and answers them.
/// Returns with writes left in `batch` only when one of them tainted the transaction: that one
/// and those before it are answered with an error (the transaction rolled back), the rest run
/// in the next transaction.
fn run_transaction(
    connection: &Connection,
    batch: &mut VecDeque<Job>,
    commits: &AtomicU64,
    after_commit: &mut dyn FnMut(),
) {
    if !connection.is_autocommit() {
        // A transaction left open (a rollback that failed): writes must not join it.
        let _ = connection.execute_batch("ROLLBACK");
    }
    if let Err(error) = control(connection, "BEGIN IMMEDIATE") {
        // Another process held the lock past the busy timeout, or the file is gone:
        // every write of the batch fails, none ran.
        let error = error.to_string();
        for job in batch.drain(..) {
            let (deliver, _) = job(None, false);
            deliver(Err(error.clone()));
        }
        return;
    }
    let batched = batch.len() > 1;
    let mut all_ok = true;
    let mut deliveries = Vec::with_capacity(batch.len());
    while let Some(job) = batch.pop_front() {
        let (deliver, ran) = job(Some(connection), batched);
        deliveries.push(deliver);
        match ran {
            Ran::Done => {}
            Ran::Failed => all_ok = false,
            Ran::Tainted => {
                // A failed write's changes are still in the transaction: it must not commit.
                // Nothing of it is kept; the writes that ran in it learn so, and the others
                // run in a new one.
                let _ = connection.execute_batch("ROLLBACK");
                let error = "rolled back: a write in the same SQLite transaction could not \
                             be undone alone";
                for deliver in deliveries {
                    deliver(Err(error.to_owned()));
                }
                return;
            }
        }
    }
    // A lone write that failed may have changed something before it failed (a cycle's
    // insert, say): roll it back. In a batch, its savepoint already did.
    let end = if batched || all_ok {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    let ended = match control(connection, end) {
        Ok(()) => {
            if end == "COMMIT" {
                commits.fetch_add(1, Ordering::Relaxed);
                after_commit();
            }
            Ok(())
        }
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(error.to_string())
        }
    };
    for deliver in deliveries {
        deliver(ended.clone());
    }
}
