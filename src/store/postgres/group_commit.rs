//! Group commit for [`PostgresStore`](super::PostgresStore): single-statement writes queue here, and one task runs
//! whatever has queued up meanwhile in one transaction.
//!
//! Why: a database commits one transaction at a time per connection and pays per commit (the
//! WAL flush to disk, and writers of one row wait for each other's commits). Under load, most of a write's cost was that per-commit work.
//! Here a batch of `n` writes costs one commit, and a lone write (no load) runs at once, in its
//! own transaction, so batching adds no latency.
//!
//! Every caller learns its own statement's outcome, and only after the commit: an answer is
//! never given for a write that could still roll back. If a statement or the commit fails, the
//! batch is rolled back and its writes run again one by one, so one bad write cannot fail the
//! others. If the database cannot be reached (no connection within the pool's timeout, a
//! broken connection), every write of the batch fails at once with that error: trying them one
//! by one would make the last caller wait one timeout per write ahead of it.
//!
//! Writes are spread over *lanes* by session key: each lane is one queue and one task, and
//! every write of a session goes to the same lane, in order. PostgreSQL takes several writers
//! at once, so unrelated sessions are written in parallel; since two lanes never touch the same
//! row, their transactions cannot deadlock on each other's row locks. (SQLite, with its single
//! writer, batches on a thread of its own: see its `writer` module.)
//!
//! A lane's task runs on the Tokio runtime of its first write. If that runtime shuts down (as
//! between two `#[tokio::test]`s sharing a store), the next write starts a new task. It ends
//! when the last handle to the store is dropped.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};

use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::sql::Arg;
use crate::store::sql::MAX_BATCH;

/// A statement with its parameters, runnable more than once.
#[derive(Debug)]
pub(crate) struct Statement {
    pub(crate) sql: Arc<str>,
    pub(crate) args: Vec<Arg>,
}

/// How the database runs statements, alone or together: [`PgWriter`](super::writer::PgWriter)
/// on the store's pool; the tests below implement it to inject faults and count commits.
pub(crate) trait Batcher: Send + Sync + 'static {
    /// Runs `statement` in its own transaction; the rows it changed.
    fn run_alone(
        &self,
        statement: &Statement,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// Runs `statements` in one transaction, in order; the rows each changed. On error nothing
    /// of it may be kept (the transaction is rolled back).
    fn run_together(
        &self,
        statements: &[&Statement],
    ) -> impl Future<Output = Result<Vec<u64>, sqlx::Error>> + Send;
}

/// A queued write and where its outcome (rows changed) goes.
struct Write {
    statement: Statement,
    done: oneshot::Sender<Result<u64, sqlx::Error>>,
}

/// The queues in front of a store's writer, shared by every clone of the store.
pub(crate) struct WriteQueue<B: Batcher> {
    shared: Arc<Shared<B>>,
    /// Per lane, the running batch task's inbox; replaced when that task is gone. Only the
    /// queue holds them, so the tasks end when the last store handle is dropped.
    lanes: Box<[Inbox]>,
}

/// A lane's way to its batch task, if one is running.
type Inbox = Mutex<Option<mpsc::UnboundedSender<Write>>>;

/// What the batch task works with.
struct Shared<B> {
    batcher: Arc<B>,
    /// Transactions committed by the batch task (a lone write counts as one).
    commits: AtomicU64,
}

impl<B: Batcher> WriteQueue<B> {
    /// A queue with `lanes` lanes (at least one), each committing on its own.
    pub(crate) fn new(batcher: B, lanes: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                batcher: Arc::new(batcher),
                commits: AtomicU64::new(0),
            }),
            lanes: (0..lanes.max(1)).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// The database side (for its own counters).
    #[cfg(test)]
    pub(crate) fn batcher(&self) -> &B {
        &self.shared.batcher
    }

    /// Runs `statement`, a write to the session under `key`, batched with whatever else is
    /// being written in its lane, and returns the number of rows it changed once its
    /// transaction has committed.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the statement or its commit failed, or if the runtime shut
    /// down before the write ran.
    pub(crate) async fn execute(
        &self,
        key: &StoreKey,
        statement: Statement,
    ) -> Result<u64, StoreError> {
        let (done, outcome) = oneshot::channel();
        // Keys are SHA-256 digests: any byte spreads them evenly.
        let lane = usize::from(key.as_bytes()[0]) % self.lanes.len();
        match self.enqueue(lane, Write { statement, done }) {
            Ok(()) => match outcome.await {
                Ok(result) => result.map_err(StoreError::backend),
                Err(_) => Err(StoreError::backend(
                    "the store's writer task stopped before this write ran (runtime shut down)",
                )),
            },
            // Not on a Tokio runtime, so no task to batch on: write directly.
            Err(write) => self
                .shared
                .run_alone(&write.statement)
                .await
                .map_err(StoreError::backend),
        }
    }

    /// Runs `statement` at once in its own transaction, outside the lanes (for statements that
    /// are not about one session, such as a purge).
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the statement or its commit failed.
    pub(crate) async fn run_alone(&self, statement: &Statement) -> Result<u64, StoreError> {
        self.shared
            .run_alone(statement)
            .await
            .map_err(StoreError::backend)
    }

    /// Transactions committed so far (for `Debug` and tests).
    pub(crate) fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    fn enqueue(&self, lane: usize, write: Write) -> Result<(), Write> {
        let Some(inbox) = self.lanes.get(lane) else {
            return Err(write);
        };
        let mut inbox = inbox.lock().unwrap_or_else(PoisonError::into_inner);
        let write = match inbox.as_ref() {
            Some(sender) => match sender.send(write) {
                Ok(()) => return Ok(()),
                // The task's runtime is gone: start another below.
                Err(mpsc::error::SendError(write)) => write,
            },
            None => write,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(write);
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        runtime.spawn(Arc::clone(&self.shared).run_batches(receiver));
        let sent = sender.send(write).map_err(|e| e.0);
        *inbox = Some(sender);
        sent
    }
}

impl<B: Batcher> Shared<B> {
    /// The batch task: takes everything queued (up to [`MAX_BATCH`]) and writes it in one go.
    async fn run_batches(self: Arc<Self>, mut inbox: mpsc::UnboundedReceiver<Write>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while inbox.recv_many(&mut batch, MAX_BATCH).await > 0 {
            if batch.len() > 1 {
                let statements: Vec<_> = batch.iter().map(|write| &write.statement).collect();
                match self.batcher.run_together(&statements).await {
                    Ok(rows) => {
                        self.commits.fetch_add(1, Ordering::Relaxed);
                        for (write, rows) in batch.drain(..).zip(rows) {
                            let _ = write.done.send(Ok(rows));
                        }
                        continue;
                    }
                    Err(error) if unreachable(&error) => {
                        for write in batch.drain(..) {
                            let _ = write.done.send(Err(copy(&error)));
                        }
                        continue;
                    }
                    Err(error) => tracing::debug!(
                        %error,
                        writes = batch.len(),
                        "batch rolled back; writing its statements one by one"
                    ),
                }
            }
            for write in batch.drain(..) {
                let result = self.run_alone(&write.statement).await;
                let _ = write.done.send(result);
            }
        }
    }

    async fn run_alone(&self, statement: &Statement) -> Result<u64, sqlx::Error> {
        let rows = self.batcher.run_alone(statement).await?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(rows)
    }
}

/// Whether `error` is about reaching the database rather than about a statement: retrying the
/// batch's writes one by one would only repeat it, once per write.
fn unreachable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
    )
}

/// The same error for another caller (`sqlx::Error` is not `Clone`).
fn copy(error: &sqlx::Error) -> sqlx::Error {
    match error {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::WorkerCrashed => sqlx::Error::WorkerCrashed,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{SessionId, StoreKey};
    use std::sync::atomic::AtomicUsize;

    /// Fault injection: a database that fails every batch with `error` and counts the writes
    /// it is asked to run alone (which succeed).
    struct Failing {
        error: fn() -> sqlx::Error,
        alone: AtomicUsize,
    }

    impl Batcher for Failing {
        async fn run_alone(&self, _: &Statement) -> Result<u64, sqlx::Error> {
            self.alone.fetch_add(1, Ordering::Relaxed);
            Ok(1)
        }

        async fn run_together(&self, _: &[&Statement]) -> Result<Vec<u64>, sqlx::Error> {
            Err((self.error)())
        }
    }

    /// Ten concurrent writes to one session (one lane, one batch); the results and how many
    /// writes were retried alone.
    async fn ten_writes(error: fn() -> sqlx::Error) -> (Vec<Result<u64, StoreError>>, usize) {
        let queue = Arc::new(WriteQueue::new(
            Failing {
                error,
                alone: AtomicUsize::new(0),
            },
            1,
        ));
        let key = SessionId::generate().store_key();
        let mut writers = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let queue = Arc::clone(&queue);
            let nothing = Statement {
                sql: "".into(),
                args: Vec::new(),
            };
            writers.spawn(async move { queue.execute(&key, nothing).await });
        }
        let results = writers.join_all().await;
        (results, queue.batcher().alone.load(Ordering::Relaxed))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unreachable_database_fails_the_batch_at_once() {
        let (results, alone) = ten_writes(|| sqlx::Error::PoolTimedOut).await;
        assert_eq!(alone, 0, "no write may be retried alone");
        for result in results {
            let error = result.unwrap_err().to_string();
            assert!(error.contains("timed out"), "{error}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_statement_error_retries_each_write_alone() {
        let (results, alone) = ten_writes(|| sqlx::Error::RowNotFound).await;
        assert_eq!(alone, 10);
        assert!(results.iter().all(|r| matches!(r, Ok(1))), "{results:?}");
    }

    /// A database of one table of integers, in memory: a transaction of statements that each
    /// insert their `Arg::Int` (a statement without one violates "NOT NULL" and fails its
    /// transaction, which then keeps nothing). Counts commits; the queue's behaviour is what
    /// these tests check, not a database's.
    #[derive(Default)]
    struct Table {
        rows: std::sync::Mutex<Vec<i64>>,
        commits: AtomicUsize,
    }

    impl Table {
        fn run(&self, statements: &[&Statement]) -> Result<Vec<u64>, sqlx::Error> {
            let mut inserted = Vec::new();
            for statement in statements {
                match statement.args.first() {
                    Some(Arg::Int(x)) => inserted.push(*x),
                    _ => return Err(sqlx::Error::RowNotFound),
                }
            }
            self.rows.lock().unwrap().extend(&inserted);
            self.commits.fetch_add(1, Ordering::Relaxed);
            Ok(vec![1; statements.len()])
        }

        fn rows(&self) -> Vec<i64> {
            self.rows.lock().unwrap().clone()
        }
    }

    impl Batcher for Table {
        async fn run_alone(&self, statement: &Statement) -> Result<u64, sqlx::Error> {
            Ok(self.run(&[statement])?[0])
        }

        async fn run_together(&self, statements: &[&Statement]) -> Result<Vec<u64>, sqlx::Error> {
            self.run(statements)
        }
    }

    fn insert(x: Option<i64>) -> Statement {
        Statement {
            sql: "INSERT INTO t (x) VALUES ($1)".into(),
            args: vec![match x {
                Some(x) => Arg::Int(x),
                None => Arg::OptText(None),
            }],
        }
    }

    // On a current-thread runtime, the ten writers run (and queue their writes) before the
    // batch task the first of them spawned, so they all land in one batch.
    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_writes_share_one_commit() {
        let queue = Arc::new(WriteQueue::new(Table::default(), 1));
        let key = SessionId::generate().store_key();
        let mut writers = tokio::task::JoinSet::new();
        for x in 1..=10 {
            let queue = Arc::clone(&queue);
            writers.spawn(async move { queue.execute(&key, insert(Some(x))).await });
        }
        for result in writers.join_all().await {
            assert_eq!(result.unwrap(), 1);
        }
        assert_eq!(queue.commits(), 1);
        let mut rows = queue.batcher().rows();
        rows.sort_unstable();
        assert_eq!(rows, (1..=10).collect::<Vec<_>>());
    }

    // Writes of one session share a lane (and its order); other sessions spread over lanes,
    // one commit per lane used.
    #[tokio::test(flavor = "current_thread")]
    async fn lanes_partition_writes_by_session() {
        const LANES: usize = 4;
        let queue = Arc::new(WriteQueue::new(Table::default(), LANES));
        let keys: Vec<StoreKey> = (0..8).map(|_| SessionId::generate().store_key()).collect();
        let mut writers = tokio::task::JoinSet::new();
        for round in 0..3 {
            for (k, key) in keys.iter().enumerate() {
                let (queue, key) = (Arc::clone(&queue), *key);
                let x = i64::try_from(k * 10 + round).unwrap();
                writers.spawn(async move { queue.execute(&key, insert(Some(x))).await });
            }
        }
        for result in writers.join_all().await {
            assert_eq!(result.unwrap(), 1);
        }
        let lanes: std::collections::HashSet<usize> = keys
            .iter()
            .map(|key| usize::from(key.as_bytes()[0]) % LANES)
            .collect();
        assert_eq!(queue.commits(), lanes.len() as u64);
        // Per session, the values landed in the order they were written.
        let in_order = queue.batcher().rows();
        for k in 0..8 {
            let mine: Vec<i64> = in_order.iter().copied().filter(|x| x / 10 == k).collect();
            assert_eq!(mine, vec![k * 10, k * 10 + 1, k * 10 + 2]);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_write_fails_alone() {
        let queue = WriteQueue::new(Table::default(), 1);
        let key = SessionId::generate().store_key();
        let (a, bad, b) = tokio::join!(
            queue.execute(&key, insert(Some(1))),
            queue.execute(&key, insert(None)), // NOT NULL
            queue.execute(&key, insert(Some(2))),
        );
        assert_eq!(a.unwrap(), 1);
        assert!(matches!(bad, Err(StoreError::Backend(_))), "{bad:?}");
        assert_eq!(b.unwrap(), 1);
        assert_eq!(queue.batcher().rows(), vec![1, 2]);
        // The rolled-back batch, then each write alone (the failed one commits nothing).
        assert_eq!(queue.commits(), 2);
    }

    #[test]
    fn a_new_runtime_gets_a_new_batch_task() {
        let key = SessionId::generate().store_key();
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let queue = first.block_on(async {
            let queue = WriteQueue::new(Table::default(), 1);
            assert_eq!(queue.execute(&key, insert(Some(1))).await.unwrap(), 1);
            queue
        });
        drop(first); // its batch task goes with it
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        second.block_on(async {
            assert_eq!(queue.execute(&key, insert(Some(2))).await.unwrap(), 1);
            assert_eq!(queue.batcher().rows(), vec![1, 2]);
        });
    }
}
