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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::StoreError;
use crate::store::sql::MAX_BATCH;

/// What a write sends back once its transaction ended: its result, or the error that ended
/// the transaction.
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A queued write. Given the writer connection, it runs (inside a savepoint when `batched`)
/// and says whether it succeeded; given none, it did not run (its batch could not begin).
/// Either way it returns how to deliver its result.
type Job = Box<dyn FnOnce(Option<&Connection>, bool) -> (Deliver, bool) + Send>;

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
            let outcome = match connection {
                Some(connection) if batched => in_savepoint(connection, work),
                Some(connection) => work(connection),
                None => Err(gone()),
            };
            let ok = outcome.is_ok();
            let deliver: Deliver = Box::new(move |ended: Result<(), String>| {
                let _ = reply.send(match ended {
                    Ok(()) => outcome,
                    Err(error) => Err(StoreError::backend(error)),
                });
            });
            (deliver, ok)
        });
        self.jobs.send(job).map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }

    /// Transactions committed so far.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

fn gone() -> StoreError {
    StoreError::backend("the SQLite writer thread has stopped")
}

/// Runs one transaction-control statement, prepared once per connection: they run several
/// times per batch, and parsing one costs more than running it.
fn control(connection: &Connection, statement: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(statement)?.execute([])?;
    Ok(())
}

/// Runs `work` inside a savepoint: undone alone if it fails.
fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    control(connection, "SAVEPOINT write").map_err(StoreError::backend)?;
    let outcome = work(connection);
    if outcome.is_err() {
        control(connection, "ROLLBACK TO write").map_err(StoreError::backend)?;
    }
    control(connection, "RELEASE write").map_err(StoreError::backend)?;
    outcome
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
        if let Err(error) = control(connection, "BEGIN IMMEDIATE") {
            // Another process held the lock past the busy timeout, or the file is gone:
            // every write of the batch fails, none ran.
            let error = error.to_string();
            for job in batch {
                let (deliver, _) = job(None, false);
                deliver(Err(error.clone()));
            }
            continue;
        }
        let batched = batch.len() > 1;
        let mut all_ok = true;
        let mut deliveries = Vec::with_capacity(batch.len());
        for job in batch {
            let (deliver, ok) = job(Some(connection), batched);
            all_ok &= ok;
            deliveries.push(deliver);
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
}
