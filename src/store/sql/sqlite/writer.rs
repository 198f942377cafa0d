//! SQLite's side of group commit ([`group_commit`](super::super::group_commit)): the writer
//! pool, whose batches run in one `BEGIN IMMEDIATE` transaction, and WAL checkpoints in the
//! background.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::sqlite::SqlitePool;
use sqlx::Sqlite;

use crate::store::sql::group_commit::{pool_batcher, Dialect};

impl Dialect for Sqlite {
    /// SQLite has no arrays: a JSON array (its statements never bind a list today).
    #[cfg(feature = "postgres")]
    fn add_text_array(args: &mut Self::Arguments, list: &[String]) {
        use sqlx::Arguments as _;
        let _ = args.add(serde_json::Value::from(list.to_vec()).to_string());
    }
}

pool_batcher!(
    SqliteWriter,
    Sqlite,
    begin = "BEGIN IMMEDIATE",
    on_batch = start_checkpoint
);

/// The writer pool, and where checkpoints run.
pub(crate) struct SqliteWriter {
    pool: SqlitePool,
    /// `None` when there is no separate connection for checkpoints (one shared pool, or an
    /// in-memory database).
    checkpoints: Option<Checkpoints>,
}

impl SqliteWriter {
    /// Writes through `pool`; `checkpoint_pool`, other connections to the same WAL database
    /// file, runs checkpoints in the background.
    pub(super) fn new(pool: SqlitePool, checkpoint_pool: Option<SqlitePool>) -> Self {
        Self {
            pool,
            checkpoints: checkpoint_pool.map(|pool| Checkpoints {
                pool,
                running: AtomicBool::new(false),
                completed: AtomicU64::new(0),
            }),
        }
    }

    /// Background checkpoints completed so far (`None`: they are off for this store).
    pub(super) fn checkpoints(&self) -> Option<u64> {
        let checkpoints = self.checkpoints.as_ref()?;
        Some(checkpoints.completed.load(Ordering::Relaxed))
    }
}

impl SqliteWriter {
    /// Starts a background checkpoint unless one is running (or they are off). Called as each
    /// batch starts.
    fn start_checkpoint(self: &Arc<Self>) {
        let Some(checkpoints) = &self.checkpoints else {
            return;
        };
        if checkpoints.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Some(checkpoints) = &this.checkpoints {
                checkpoints.run().await;
            }
        });
    }
}

/// WAL checkpoints in the background.
///
/// In WAL mode every commit appends pages to the log, and by default the connection whose commit
/// makes the log pass 1,000 pages copies the log back into the database file and syncs it to
/// disk while holding the write lock: under sustained writes that stalled every queued write
/// for tens to hundreds of milliseconds (the p99 latency). A `PASSIVE` checkpoint on another
/// connection does the copying and syncing without blocking the writer, so the writer's own
/// automatic checkpoint (kept, and raised to 10,000 pages by `SqliteStore::connect`: it is what
/// lets the log restart from its beginning) finds little left to do. A passive checkpoint never
/// waits for the writer or for readers.
struct Checkpoints {
    pool: SqlitePool,
    /// At most one at a time; the next one starts with the next batch after it.
    running: AtomicBool,
    completed: AtomicU64,
}

impl Checkpoints {
    async fn run(&self) {
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.pool)
            .await
        {
            Ok(_) => {
                self.completed.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => tracing::debug!(%error, "background SQLite WAL checkpoint failed"),
        }
        self.running.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StoreError;
    use crate::id::{SessionId, StoreKey};
    use crate::store::sql::group_commit::{Arg, Statement, WriteQueue};

    /// Any key: these queues have one lane.
    static KEY: std::sync::LazyLock<StoreKey> =
        std::sync::LazyLock::new(|| SessionId::generate().store_key());
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    async fn table() -> SqlitePool {
        let pool = open("sqlite::memory:".parse().unwrap(), 1).await;
        create_table(&pool).await;
        pool
    }

    /// A pool of `connections` on `options`.
    async fn open(options: SqliteConnectOptions, connections: u32) -> SqlitePool {
        SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(options)
            .await
            .unwrap()
    }

    async fn create_table(pool: &SqlitePool) {
        sqlx::query("CREATE TABLE t (x INTEGER NOT NULL)")
            .execute(pool)
            .await
            .unwrap();
    }

    /// A WAL database file in a fresh directory (removed by the caller).
    fn file_db(name: &str) -> (std::path::PathBuf, sqlx::sqlite::SqliteConnectOptions) {
        let dir =
            std::env::temp_dir().join(format!("sessionware-batch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("t.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        (dir, options)
    }

    fn insert(x: Option<i64>) -> Statement {
        Statement {
            sql: "INSERT INTO t (x) VALUES (?1)".into(),
            args: vec![match x {
                Some(x) => Arg::Int(x),
                None => Arg::OptText(None),
            }],
        }
    }

    async fn rows(pool: &SqlitePool) -> Vec<i64> {
        sqlx::query_scalar("SELECT x FROM t ORDER BY x")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    // On a current-thread runtime, the ten writers run (and queue their writes) before the
    // batch task the first of them spawned, so they all land in one batch.
    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_writes_share_one_commit() {
        let pool = table().await;
        let queue = Arc::new(WriteQueue::new(SqliteWriter::new(pool.clone(), None), 1));
        let mut writers = tokio::task::JoinSet::new();
        for x in 1..=10 {
            let queue = Arc::clone(&queue);
            writers.spawn(async move { queue.execute(&KEY, insert(Some(x))).await });
        }
        for result in writers.join_all().await {
            assert_eq!(result.unwrap(), 1);
        }
        assert_eq!(queue.commits(), 1);
        assert_eq!(rows(&pool).await, (1..=10).collect::<Vec<_>>());
    }

    // Writes of one session share a lane (and its order); other sessions spread over lanes,
    // one commit per lane used.
    #[tokio::test(flavor = "current_thread")]
    async fn lanes_partition_writes_by_session() {
        const LANES: usize = 4;
        let pool = table().await;
        let queue = Arc::new(WriteQueue::new(
            SqliteWriter::new(pool.clone(), None),
            LANES,
        ));
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
        let in_order: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY rowid")
            .fetch_all(&pool)
            .await
            .unwrap();
        for k in 0..8 {
            let mine: Vec<i64> = in_order.iter().copied().filter(|x| x / 10 == k).collect();
            assert_eq!(mine, vec![k * 10, k * 10 + 1, k * 10 + 2]);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_write_fails_alone() {
        let pool = table().await;
        let queue = WriteQueue::new(SqliteWriter::new(pool.clone(), None), 1);
        let (a, bad, b) = tokio::join!(
            queue.execute(&KEY, insert(Some(1))),
            queue.execute(&KEY, insert(None)), // NOT NULL
            queue.execute(&KEY, insert(Some(2))),
        );
        assert_eq!(a.unwrap(), 1);
        assert!(matches!(bad, Err(StoreError::Backend(_))), "{bad:?}");
        assert_eq!(b.unwrap(), 1);
        assert_eq!(rows(&pool).await, vec![1, 2]);
        // The rolled-back batch, then each write alone (the failed one commits nothing).
        assert_eq!(queue.commits(), 2);
    }

    // A file, not `:memory:`: the first runtime's connection may close with it.
    #[test]
    fn a_new_runtime_gets_a_new_batch_task() {
        let (dir, options) = file_db("runtime");
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (pool, queue) = first.block_on(async {
            let pool = open(options, 1).await;
            create_table(&pool).await;
            let queue = WriteQueue::new(SqliteWriter::new(pool.clone(), None), 1);
            assert_eq!(queue.execute(&KEY, insert(Some(1))).await.unwrap(), 1);
            (pool, queue)
        });
        drop(first); // its batch task goes with it
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        second.block_on(async {
            assert_eq!(queue.execute(&KEY, insert(Some(2))).await.unwrap(), 1);
            assert_eq!(rows(&pool).await, vec![1, 2]);
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn writes_start_background_checkpoints() {
        let (dir, options) = file_db("checkpoints");
        let writer = open(options.clone(), 1).await;
        let reader = open(options, 2).await;
        create_table(&writer).await;
        let queue = WriteQueue::new(SqliteWriter::new(writer, Some(reader)), 1);
        assert_eq!(queue.batcher().checkpoints(), Some(0));
        for x in 0..20 {
            queue.execute(&KEY, insert(Some(x))).await.unwrap();
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            if queue.batcher().checkpoints() > Some(0) {
                break;
            }
        }
        assert!(
            queue.batcher().checkpoints() > Some(0),
            "no background checkpoint ran"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
