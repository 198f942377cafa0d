//! PostgreSQL's side of group commit ([`group_commit`](super::group_commit)): batches
//! run in one transaction on connections of the store's pool.
//!
//! What it saves: with `synchronous_commit = on` (the default, and what "acknowledged means
//! stored" needs) every commit waits for a WAL flush to disk, and writers of one row wait for
//! each other's commits on the row lock. A batch pays one flush, and its writes to one row
//! (concurrent requests of one session) follow each other inside the transaction instead of
//! queuing for the lock.

use sqlx::postgres::{PgArguments, PgPool};
use sqlx::query::Query;
use sqlx::{Arguments as _, Postgres};

use super::group_commit::{Batcher, Statement};
use crate::store::sql::Arg;

/// Runs batches on connections of the store's pool (one at a time).
pub(crate) struct PgWriter {
    pub(super) pool: PgPool,
}

impl Batcher for PgWriter {
    async fn run_alone(&self, statement: &Statement) -> Result<u64, sqlx::Error> {
        Ok(bind(statement).execute(&self.pool).await?.rows_affected())
    }

    async fn run_together(&self, statements: &[&Statement]) -> Result<Vec<u64>, sqlx::Error> {
        // Dropping `tx` on an error rolls it back.
        let mut tx = self.pool.begin_with("BEGIN").await?;
        let mut rows = Vec::with_capacity(statements.len());
        for statement in statements {
            rows.push(bind(statement).execute(&mut *tx).await?.rows_affected());
        }
        tx.commit().await?;
        Ok(rows)
    }
}

/// `statement` as an sqlx query with its parameters bound.
fn bind(statement: &Statement) -> Query<'static, Postgres, PgArguments> {
    let mut args = PgArguments::default();
    for arg in &statement.args {
        // Encoding these types cannot fail; if it ever did, sqlx reports the failure when the
        // statement runs.
        let _ = match arg {
            Arg::Text(s) => args.add(s.clone()),
            Arg::OptText(s) => args.add(s.clone()),
            Arg::Int(n) => args.add(*n),
            Arg::OptInt(n) => args.add(*n),
            Arg::Bool(b) => args.add(*b),
            Arg::TextArray(list) => args.add(list.clone()),
        };
    }
    sqlx::query_with(sqlx::AssertSqlSafe(statement.sql.clone()), args)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::group_commit::WriteQueue;
    use super::*;
    use crate::error::StoreError;
    use crate::id::{SessionId, StoreKey};
    use sqlx::AssertSqlSafe;

    /// Any key: these queues have one lane.
    static KEY: std::sync::LazyLock<StoreKey> =
        std::sync::LazyLock::new(|| SessionId::generate().store_key());

    /// A table of its own per test, in the database of `DATABASE_URL` (`.ci/services.sh`).
    async fn table(name: &str) -> (PgPool, Arc<str>) {
        let url = std::env::var("DATABASE_URL")
            .expect("DATABASE_URL must name a PostgreSQL database (.ci/services.sh start)");
        let pool = PgPool::connect(&url).await.unwrap();
        let table = format!("batch_test_{name}_{}", std::process::id());
        for statement in [
            format!("DROP TABLE IF EXISTS {table}"),
            format!("CREATE TABLE {table} (x BIGINT NOT NULL)"),
        ] {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&pool)
                .await
                .unwrap();
        }
        (pool, format!("INSERT INTO {table} (x) VALUES ($1)").into())
    }

    async fn values(pool: &PgPool, insert: &str) -> Vec<i64> {
        let table = insert.split_whitespace().nth(2).unwrap();
        let values = sqlx::query_scalar(AssertSqlSafe(format!("SELECT x FROM {table} ORDER BY x")))
            .fetch_all(pool)
            .await
            .unwrap();
        sqlx::query(AssertSqlSafe(format!("DROP TABLE {table}")))
            .execute(pool)
            .await
            .unwrap();
        values
    }

    fn insert(sql: &Arc<str>, x: Option<i64>) -> Statement {
        Statement {
            sql: sql.clone(),
            args: vec![x.map_or(Arg::OptText(None), Arg::Int)],
        }
    }

    // On a current-thread runtime the writers queue their writes before the batch task runs.
    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_writes_share_one_commit() {
        let (pool, sql) = table("share").await;
        let queue = Arc::new(WriteQueue::new(PgWriter { pool: pool.clone() }, 1));
        let mut writers = tokio::task::JoinSet::new();
        for x in 1..=10 {
            let (queue, sql) = (Arc::clone(&queue), sql.clone());
            writers.spawn(async move { queue.execute(&KEY, insert(&sql, Some(x))).await });
        }
        for result in writers.join_all().await {
            assert_eq!(result.unwrap(), 1);
        }
        assert_eq!(queue.commits(), 1);
        assert_eq!(values(&pool, &sql).await, (1..=10).collect::<Vec<_>>());
    }

    // PostgreSQL aborts the whole transaction on an error: the other writes must still land.
    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_write_fails_alone() {
        let (pool, sql) = table("fail").await;
        let queue = WriteQueue::new(PgWriter { pool: pool.clone() }, 1);
        let (a, bad, b) = tokio::join!(
            queue.execute(&KEY, insert(&sql, Some(1))),
            queue.execute(&KEY, insert(&sql, None)), // NOT NULL
            queue.execute(&KEY, insert(&sql, Some(2))),
        );
        assert_eq!(a.unwrap(), 1);
        assert!(matches!(bad, Err(StoreError::Backend(_))), "{bad:?}");
        assert_eq!(b.unwrap(), 1);
        assert_eq!(values(&pool, &sql).await, vec![1, 2]);
        assert_eq!(queue.commits(), 2);
    }
}
