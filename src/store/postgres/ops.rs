//! The [`SessionStore`] operations of [`PostgresStore`]. The single-row writes (`create`,
//! `touch`, `delete`, `apply`) go through the group-commit queue
//! ([`group_commit`](super::group_commit)); `cycle` is one statement of its own on the pool,
//! and `delete_all` and `delete_expired` run alone, outside the queue's lanes.

use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Row};

use super::group_commit::Statement;
use super::rows::{
    cap, decode, expected_absent, expected_present, listed, set_sizes, sizes_of, touched,
    JsonObject,
};
use super::{backend, PostgresStore};
use crate::clock::{now_ms, to_ms};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::sql::Arg;
use crate::store::sql::{self, encode_data, Split};
use crate::store::{
    Applied, ChangeSet, Created, Cycled, Listed, Record, Rekey, SessionStore, Touched,
};

/// How many rows one statement of `delete_expired` looks at (and deletes or postpones) at most,
/// so that no statement holds its locks for long (`benchmark/scale/purge.sh`: a purge of a
/// million rows keeps the requests' p99 within 2x).
pub(super) const PURGE_BATCH: i64 = 1000;

#[async_trait]
impl SessionStore for PostgresStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(self.sql.schema.load.clone()))
            .bind(key.to_string())
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|row| decode(key, &row)).transpose()
    }

    // One upsert through the write queue that takes the key only if it is free or its row
    // has expired.
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<Created, StoreError> {
        let (size, sizes) = sizes_of(&record.data)?;
        let statement = Statement {
            sql: self.sql.schema.common.create.clone(),
            args: vec![
                Arg::Text(key.to_string()),
                Arg::Text(encode_data(&record.data)?),
                Arg::Int(to_ms(record.created_at)),
                Arg::Int(to_ms(record.expires_at)),
                Arg::OptText(record.expiry.encode()),
                Arg::OptText(record.owner.as_ref().map(|o| o.principal.clone())),
                Arg::OptText(record.owner.as_ref().and_then(|o| o.label.clone())),
                Arg::Int(now_ms()),
                Arg::OptInt(record.owner.as_ref().and_then(|o| o.tied_at).map(to_ms)),
                Arg::Int(size),
                Arg::Text(sizes),
            ],
        };
        Ok(if self.writes.execute(key, statement).await? == 1 {
            Created::Done
        } else {
            Created::Collision
        })
    }

    async fn apply(&self, key: &StoreKey, changes: &ChangeSet) -> Result<Applied, StoreError> {
        let split = &Split::new(changes, now_ms());

        let now = split.now;
        let sets = serde_json::to_string(&JsonObject(&split.sets)).map_err(StoreError::backend)?;
        let (set_sizes, added) = set_sizes(split)?;
        let rows = self
            .writes
            .execute(
                key,
                Statement {
                    sql: self.sql.apply.clone(),
                    args: vec![
                        Arg::Text(key.to_string()),
                        Arg::Int(now),
                        Arg::Int(split.expires_at),
                        Arg::Bool(split.clear),
                        Arg::TextArray(split.removed.iter().map(|k| (*k).to_owned()).collect()),
                        Arg::Text(sets),
                        Arg::Bool(split.expiry_changed),
                        Arg::OptText(split.expiry.clone()),
                        Arg::OptInt(cap(split)),
                        Arg::Text(expected_present(split)?),
                        Arg::TextArray(expected_absent(split)),
                        Arg::TextArray(touched(split)),
                        Arg::Text(set_sizes),
                        Arg::Int(added),
                    ],
                },
            )
            .await?;
        if rows == 1 {
            return Ok(Applied::Done);
        }
        // Rarely taken: tell a corrupt row, a failed precondition and a refused size from a
        // missing row.
        let row: Option<(Option<String>, Option<bool>, Option<i64>)> =
            sqlx::query_as(AssertSqlSafe(self.sql.live_data_type.clone()))
                .bind(key.to_string())
                .bind(now)
                .bind(split.clear)
                .bind(touched(split))
                .bind(added)
                .bind(expected_present(split)?)
                .bind(expected_absent(split))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        match row {
            None => Ok(Applied::Missing),
            Some((kind, _, _)) if kind.as_deref() != Some("object") => Err(sql::corrupt(
                key,
                "`data` is not a JSON object; not updated",
            )),
            Some((_, Some(false), _)) => Ok(Applied::Conflict),
            Some((_, _, size)) => {
                let size = size.and_then(|size| usize::try_from(size).ok());
                match (size, split.size_cap) {
                    (Some(size), Some(cap)) if size > cap => Ok(Applied::TooLarge { size }),
                    _ => Ok(Applied::Missing),
                }
            }
        }
    }

    async fn cycle(&self, keys: Rekey<'_>, changes: &ChangeSet) -> Result<Cycled, StoreError> {
        let split = &Split::new(changes, now_ms());

        let now = split.now;
        let Rekey { old, new, tie, .. } = keys;
        let (set_sizes, added) = set_sizes(split)?;
        let row = sqlx::query(AssertSqlSafe(self.sql.cycle.clone()))
            .bind(old.to_string())
            .bind(new.to_string())
            .bind(now)
            .bind(split.expires_at)
            .bind(split.clear)
            .bind(&split.removed)
            .bind(Json(JsonObject(&split.sets)))
            .bind(split.expiry_changed)
            .bind(split.expiry.as_deref())
            .bind(cap(split))
            .bind(expected_present(split)?)
            .bind(expected_absent(split))
            .bind(tie.is_some())
            .bind(tie.map(|owner| owner.principal.as_str()))
            .bind(tie.and_then(|owner| owner.label.as_deref()))
            .bind(tie.and_then(|owner| owner.tied_at).map(to_ms))
            .bind(touched(split))
            .bind(set_sizes)
            .bind(added)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        let found: i64 = row.try_get("found").map_err(backend)?;
        let moved: i64 = row.try_get("moved").map_err(backend)?;
        let corrupt: bool = row.try_get("corrupt").map_err(backend)?;
        let size: Option<i64> = row.try_get("size").map_err(backend)?;
        let holds: Option<bool> = row.try_get("holds").map_err(backend)?;
        let too_large = size
            .and_then(|size| usize::try_from(size).ok())
            .filter(|size| split.size_cap.is_some_and(|cap| *size > cap));
        Ok(match (found, moved) {
            (0, _) if corrupt => {
                return Err(sql::corrupt(old, "`data` is not a JSON object; not cycled"))
            }
            (0, _) => Cycled::Missing,
            (_, 0) if holds == Some(false) => Cycled::Conflict,
            (_, 0) => match too_large {
                Some(size) => Cycled::TooLarge { size },
                None => Cycled::Collision,
            },
            _ => Cycled::Done,
        })
    }

    async fn was_moved(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let row: Option<i32> =
            sqlx::query_scalar(AssertSqlSafe(self.sql.schema.common.was_moved.clone()))
                .bind(key.to_string())
                .bind(now_ms())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(row.is_some())
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let statement = Statement {
            sql: self.sql.schema.common.delete.clone(),
            args: vec![Arg::Text(key.to_string())],
        };
        self.writes.execute(key, statement).await?;
        Ok(())
    }

    async fn touch(&self, key: &StoreKey, expires_at: SystemTime) -> Result<Touched, StoreError> {
        let statement = Statement {
            sql: self.sql.schema.common.touch.clone(),
            args: vec![
                Arg::Text(key.to_string()),
                Arg::Int(now_ms()),
                Arg::Int(to_ms(expires_at)),
            ],
        };
        Ok(if self.writes.execute(key, statement).await? == 1 {
            Touched::Done
        } else {
            Touched::Missing
        })
    }

    // Statements that look at most `PURGE_BATCH` due rows each, in their own transactions,
    // until one finds fewer (see `sql::purge_at`); then `DELETE`s of the moved-key markers that
    // ran out, the same way (not counted: they are not sessions).
    async fn delete_expired(&self) -> Result<u64, StoreError> {
        // One cut-off for every batch, so the loop ends even while sessions keep expiring.
        let now = now_ms();
        let mut total = 0;
        loop {
            let row = sqlx::query(AssertSqlSafe(self.sql.schema.common.purge.clone()))
                .bind(now)
                .bind(PURGE_BATCH)
                .fetch_one(&self.pool)
                .await
                .map_err(backend)?;
            let looked_at: i64 = row.try_get("looked_at").map_err(backend)?;
            let deleted: i64 = row.try_get("deleted").map_err(backend)?;
            total += deleted.unsigned_abs();
            if looked_at < PURGE_BATCH {
                break;
            }
        }
        self.purge_markers(now).await?;
        Ok(total)
    }

    async fn list(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(self.sql.schema.common.list.clone()))
            .bind(principal)
            .bind(now_ms())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let mut sessions = Vec::with_capacity(rows.len());
        for row in &rows {
            sessions.extend(listed(row)?);
        }
        Ok(sessions)
    }

    // Deletes the live sessions of `principal` in one statement: a session tied by a racing
    // create or cycle is either deleted with the rest or committed after, and so still listed.
    async fn delete_all(&self, principal: &str) -> Result<u64, StoreError> {
        let statement = Statement {
            sql: self.sql.schema.common.delete_all.clone(),
            args: vec![Arg::Text(principal.to_owned()), Arg::Int(now_ms())],
        };
        self.writes.run_alone(&statement).await
    }
}

impl PostgresStore {
    /// Deletes the moved-key markers that ran out by `now`, [`PURGE_BATCH`] at a time, until a
    /// batch finds fewer.
    async fn purge_markers(&self, now: i64) -> Result<(), StoreError> {
        let statement = Statement {
            sql: self.sql.schema.common.purge_moved.clone(),
            args: vec![Arg::Int(now), Arg::Int(PURGE_BATCH)],
        };
        while self.writes.run_alone(&statement).await? >= PURGE_BATCH.unsigned_abs() {}
        Ok(())
    }
}
