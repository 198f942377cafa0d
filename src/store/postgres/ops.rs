//! The operations whose statements take the same parameters in both SQL backends, run through
//! the group-commit queue (`create`, `touch`, `delete`, `delete_all`, `delete_expired`), and the
//! [`SessionStore`](crate::store::SessionStore) impl that puts them together
//! ([`sql_session_store!`]). PostgreSQL's; SQLite runs its statements in process (see its
//! module).

use super::group_commit::{Batcher, Statement, WriteQueue};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::sql::arg::Arg;
use crate::store::sql::{encode_data, sizes_of, Common, PURGE_BATCH};
use crate::store::{now, Created, Record, Touched};

/// What the shared operations need from a backend.
pub(crate) trait SqlBackend {
    type Writer: Batcher;
    /// The group-commit queue in front of the backend's writer.
    fn writes(&self) -> &WriteQueue<Self::Writer>;
    /// The backend's shared statements.
    fn common(&self) -> &Common;
}

/// `create` through the write queue: one upsert that takes the key only if it is free or its
/// row has expired.
pub(crate) async fn create<B: SqlBackend>(
    backend: &B,
    key: &StoreKey,
    record: &Record,
) -> Result<Created, StoreError> {
    let (size, sizes) = sizes_of(&record.data)?;
    let statement = Statement {
        sql: backend.common().create.clone(),
        args: vec![
            Arg::Text(key.to_string()),
            Arg::Text(encode_data(&record.data)?),
            Arg::Int(record.created_at),
            Arg::Int(record.expires_at),
            Arg::OptText(record.expiry.encode()),
            Arg::OptText(record.owner.as_ref().map(|o| o.principal.clone())),
            Arg::OptText(record.owner.as_ref().and_then(|o| o.label.clone())),
            Arg::Int(now()),
            Arg::OptInt(record.owner.as_ref().and_then(|o| o.tied_at)),
            Arg::Int(size),
            Arg::Text(sizes),
        ],
    };
    Ok(if backend.writes().execute(key, statement).await? == 1 {
        Created::Done
    } else {
        Created::Collision
    })
}

/// `touch` through the write queue.
pub(crate) async fn touch<B: SqlBackend>(
    backend: &B,
    key: &StoreKey,
    expires_at: i64,
) -> Result<Touched, StoreError> {
    let statement = Statement {
        sql: backend.common().touch.clone(),
        args: vec![
            Arg::Text(key.to_string()),
            Arg::Int(now()),
            Arg::Int(expires_at),
        ],
    };
    Ok(if backend.writes().execute(key, statement).await? == 1 {
        Touched::Done
    } else {
        Touched::Missing
    })
}

/// `delete` through the write queue.
pub(crate) async fn delete<B: SqlBackend>(backend: &B, key: &StoreKey) -> Result<(), StoreError> {
    let statement = Statement {
        sql: backend.common().delete.clone(),
        args: vec![Arg::Text(key.to_string())],
    };
    backend.writes().execute(key, statement).await?;
    Ok(())
}

/// Deletes the live sessions of `principal` in one statement: a session tied by a racing
/// create or cycle is either deleted with the rest or committed after, and so still listed.
pub(crate) async fn delete_all<B: SqlBackend>(
    backend: &B,
    principal: &str,
) -> Result<u64, StoreError> {
    let statement = Statement {
        sql: backend.common().delete_all.clone(),
        args: vec![Arg::Text(principal.to_owned()), Arg::Int(now())],
    };
    backend.writes().run_alone(&statement).await
}

/// `delete_expired`: `DELETE`s of at most [`PURGE_BATCH`] rows, each its own transaction, until
/// one removes fewer; then the same for the moved-key markers that ran out (not counted: they
/// are not sessions).
pub(crate) async fn delete_expired<B: SqlBackend>(backend: &B) -> Result<u64, StoreError> {
    // One cut-off for every batch, so the loop ends even while sessions keep expiring.
    let now = now();
    let total = purge_in_batches(backend, &backend.common().purge, now).await?;
    purge_in_batches(backend, &backend.common().purge_moved, now).await?;
    Ok(total)
}

/// Runs `purge` (`now, limit`) until a run deletes fewer than [`PURGE_BATCH`] rows; how many
/// it deleted in all.
async fn purge_in_batches<B: SqlBackend>(
    backend: &B,
    purge: &std::sync::Arc<str>,
    now: i64,
) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let statement = Statement {
            sql: purge.clone(),
            args: vec![Arg::Int(now), Arg::Int(PURGE_BATCH)],
        };
        let deleted = backend.writes().run_alone(&statement).await?;
        total += deleted;
        if deleted < PURGE_BATCH.unsigned_abs() {
            return Ok(total);
        }
    }
}

/// Implements [`SessionStore`](crate::store::SessionStore) and [`SqlBackend`] for an SQL
/// backend `$store`, whose fields are `writes` (its queue, of `$writer`), `sql` (its statements,
/// with a [`Schema`] in `schema`) and `$reads` (the pool loads use), and whose module has a function
/// `decode(key, row)`. `create`, `touch`, `delete` and `delete_expired` come from the core,
/// `load` is written here, `apply` and `cycle` are the backend's methods `apply_split` and
/// `cycle_split`, given the change set taken apart with the time ([`Split`]).
macro_rules! sql_session_store {
    ($store:ty, writer = $writer:ty, reads = $reads:ident) => {
        impl $crate::store::postgres::ops::SqlBackend for $store {
            type Writer = $writer;

            fn writes(&self) -> &$crate::store::postgres::group_commit::WriteQueue<$writer> {
                &self.writes
            }

            fn common(&self) -> &$crate::store::sql::Common {
                &self.sql.schema.common
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::SessionStore for $store {
            async fn load(
                &self,
                key: &$crate::StoreKey,
            ) -> Result<Option<$crate::store::Record>, $crate::StoreError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(self.sql.schema.load.clone()))
                    .bind(key.to_string())
                    .bind($crate::store::now())
                    .fetch_optional(&self.$reads)
                    .await
                    .map_err($crate::StoreError::backend)?;
                row.map(|row| decode(key, &row)).transpose()
            }

            async fn create(
                &self,
                key: &$crate::StoreKey,
                record: &$crate::store::Record,
            ) -> Result<$crate::store::Created, $crate::StoreError> {
                $crate::store::postgres::ops::create(self, key, record).await
            }

            async fn apply(
                &self,
                key: &$crate::StoreKey,
                changes: &$crate::store::ChangeSet,
            ) -> Result<$crate::store::Applied, $crate::StoreError> {
                let split = $crate::store::sql::Split::new(changes, $crate::store::now());
                self.apply_split(key, &split).await
            }

            async fn cycle(
                &self,
                keys: $crate::store::Rekey<'_>,
                changes: &$crate::store::ChangeSet,
            ) -> Result<$crate::store::Cycled, $crate::StoreError> {
                let split = $crate::store::sql::Split::new(changes, $crate::store::now());
                self.cycle_split(keys, &split).await
            }

            async fn was_moved(&self, key: &$crate::StoreKey) -> Result<bool, $crate::StoreError> {
                let row: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(
                    self.sql.schema.common.was_moved.clone(),
                ))
                .bind(key.to_string())
                .bind($crate::store::now())
                .fetch_optional(&self.$reads)
                .await
                .map_err($crate::StoreError::backend)?;
                Ok(row.is_some())
            }

            async fn delete(&self, key: &$crate::StoreKey) -> Result<(), $crate::StoreError> {
                $crate::store::postgres::ops::delete(self, key).await
            }

            async fn touch(
                &self,
                key: &$crate::StoreKey,
                expires_at: i64,
            ) -> Result<$crate::store::Touched, $crate::StoreError> {
                $crate::store::postgres::ops::touch(self, key, expires_at).await
            }

            async fn delete_expired(&self) -> Result<u64, $crate::StoreError> {
                $crate::store::postgres::ops::delete_expired(self).await
            }

            async fn list(
                &self,
                principal: &str,
            ) -> Result<Vec<$crate::store::Listed>, $crate::StoreError> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(self.sql.schema.common.list.clone()))
                    .bind(principal)
                    .bind($crate::store::now())
                    .fetch_all(&self.$reads)
                    .await
                    .map_err($crate::StoreError::backend)?;
                let mut listed = Vec::with_capacity(rows.len());
                for row in &rows {
                    listed.extend($crate::store::sql::listed(row)?);
                }
                Ok(listed)
            }

            async fn delete_all(&self, principal: &str) -> Result<u64, $crate::StoreError> {
                $crate::store::postgres::ops::delete_all(self, principal).await
            }
        }
    };
}
pub(crate) use sql_session_store;
