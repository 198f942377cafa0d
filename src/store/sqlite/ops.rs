//! The store's operations as statements on one connection: what
//! [`SqliteStore`](super::SqliteStore) runs on its reader or writer connection.

use std::sync::Arc;

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Params, Row};

use super::change_text::{
    condition_args, conditions_text, data_args, data_text, first_args, tie_args, Shape,
};
use super::statements::{Queries, DATA_IS_OBJECT};
use crate::clock::{from_ms, to_ms};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::sql::Arg;
use crate::store::sql::{self, Columns, Split};
use crate::store::{Applied, Created, Cycled, Listed, Record, Rekey, Touched, MOVED_MARKER_MS};

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::backend(e)
}

/// Runs one of the table's fixed statements (prepared once per connection); the rows it changed.
fn execute(conn: &Connection, statement: &str, params: impl Params) -> Result<usize, StoreError> {
    conn.prepare_cached(statement)
        .and_then(|mut statement| statement.execute(params))
        .map_err(backend)
}

/// The live session under `key` at `now`.
pub(super) fn load(
    conn: &Connection,
    sql: &Queries,
    key: &StoreKey,
    now: i64,
) -> Result<Option<Record>, StoreError> {
    let mut statement = conn.prepare_cached(&sql.schema.load).map_err(backend)?;
    let mut rows = statement
        .query(params![key.to_string(), now])
        .map_err(backend)?;
    match rows.next().map_err(backend)? {
        Some(row) => decode(key, row).map(Some),
        None => Ok(None),
    }
}

/// A row of `load` (`data, created_at, expires_at, expiry, principal, label, tied_at`) as a
/// record; a
/// column of the wrong type or data that is not a JSON object is [`StoreError::Corrupt`].
fn decode(key: &StoreKey, row: &Row<'_>) -> Result<Record, StoreError> {
    let data: String = sql::column(key, "data", row.get(0))?;
    let columns = Columns {
        created_at: sql::column(key, "created_at", row.get(1))?,
        expires_at: sql::column(key, "expires_at", row.get(2))?,
        expiry: sql::column(key, "expiry", row.get(3))?,
        principal: sql::column(key, "principal", row.get(4))?,
        label: sql::column(key, "label", row.get(5))?,
        tied_at: sql::column(key, "tied_at", row.get(6))?,
    };
    sql::record_from(key, sql::data_from_text(key, &data)?, columns)
}

/// The live sessions tied to `principal` at `now`.
pub(super) fn list(
    conn: &Connection,
    sql: &Queries,
    principal: &str,
    now: i64,
) -> Result<Vec<Listed>, StoreError> {
    let mut statement = conn
        .prepare_cached(&sql.schema.common.list)
        .map_err(backend)?;
    let mut rows = statement.query(params![principal, now]).map_err(backend)?;
    let mut listed = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let key: String = row.get(0).map_err(backend)?;
        // A row whose key is not a store key cannot be any session's: skipped, not an error.
        let Some(key) = StoreKey::from_hex(&key) else {
            continue;
        };
        let tied_at: Option<i64> = sql::column(&key, "tied_at", row.get(4))?;
        let created_at: i64 = sql::column(&key, "created_at", row.get(1))?;
        let expires_at: i64 = sql::column(&key, "expires_at", row.get(2))?;
        listed.push(
            Listed::new(
                key,
                from_ms(created_at),
                from_ms(expires_at),
                sql::column(&key, "label", row.get(3))?,
            )
            .with_tied_at(tied_at.map(from_ms)),
        );
    }
    Ok(listed)
}

/// The columns of a new row, encoded on the caller's thread.
pub(super) struct NewRow {
    data: String,
    created_at: i64,
    expires_at: i64,
    expiry: Option<String>,
    principal: Option<String>,
    label: Option<String>,
    tied_at: Option<i64>,
}

impl NewRow {
    pub(super) fn of(record: &Record) -> Result<Self, StoreError> {
        let owner = record.owner.as_ref();
        Ok(Self {
            data: sql::encode_data(&record.data)?,
            created_at: to_ms(record.created_at),
            expires_at: to_ms(record.expires_at),
            expiry: record.expiry.encode(),
            principal: owner.map(|o| o.principal.clone()),
            label: owner.and_then(|o| o.label.clone()),
            tied_at: owner.and_then(|o| o.tied_at).map(to_ms),
        })
    }
}

/// Inserts the session, or replaces an expired row under its key.
pub(super) fn create(
    conn: &Connection,
    sql: &Queries,
    key: &StoreKey,
    row: &NewRow,
    now: i64,
) -> Result<Created, StoreError> {
    let values = params![
        key.to_string(),
        row.data,
        row.created_at,
        row.expires_at,
        row.expiry,
        row.principal,
        row.label,
        now,
        row.tied_at,
    ];
    Ok(if execute(conn, &sql.schema.common.create, values)? == 1 {
        Created::Done
    } else {
        Created::Collision
    })
}

pub(super) fn touch(
    conn: &Connection,
    sql: &Queries,
    key: &StoreKey,
    expires_at: i64,
    now: i64,
) -> Result<Touched, StoreError> {
    let values = params![key.to_string(), now, expires_at];
    Ok(if execute(conn, &sql.schema.common.touch, values)? == 1 {
        Touched::Done
    } else {
        Touched::Missing
    })
}

pub(super) fn delete(conn: &Connection, sql: &Queries, key: &StoreKey) -> Result<(), StoreError> {
    execute(conn, &sql.schema.common.delete, params![key.to_string()])?;
    Ok(())
}

/// Deletes the live sessions of `principal` in one statement: a session tied by a racing
/// create or cycle is either deleted with the rest or committed after, and so still listed.
pub(super) fn delete_all(
    conn: &Connection,
    sql: &Queries,
    principal: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let rows = execute(conn, &sql.schema.common.delete_all, params![principal, now])?;
    Ok(rows as u64)
}

/// How many expired rows one `DELETE` of the purge removes at most. Each batch is a job of the
/// one writer thread, so the writes of requests queued behind it wait for it: 100 rows take
/// some 3 ms (1,000 took 30 ms, and a purge of a million expired sessions put p99 of the
/// requests' mix at ten times its usual; `benchmark/scale/purge.sh`).
pub(super) const PURGE_BATCH: i64 = 100;

/// Deletes at most [`PURGE_BATCH`] rows expired at `now`.
pub(super) fn purge_batch(conn: &Connection, sql: &Queries, now: i64) -> Result<u64, StoreError> {
    let rows = execute(conn, &sql.schema.common.purge, params![now, PURGE_BATCH])?;
    Ok(rows as u64)
}

/// Deletes at most [`PURGE_BATCH`] moved-key markers that ran out at `now`.
pub(super) fn purge_moved_batch(
    conn: &Connection,
    sql: &Queries,
    now: i64,
) -> Result<u64, StoreError> {
    let rows = execute(
        conn,
        &sql.schema.common.purge_moved,
        params![now, PURGE_BATCH],
    )?;
    Ok(rows as u64)
}

/// Whether a marker says a cycle moved `key` away less than
/// [`MOVED_MARKER`](crate::defaults::MOVED_MARKER) before `now`.
pub(super) fn was_moved(
    conn: &Connection,
    sql: &Queries,
    key: &StoreKey,
    now: i64,
) -> Result<bool, StoreError> {
    let mut statement = conn
        .prepare_cached(&sql.schema.common.was_moved)
        .map_err(backend)?;
    statement
        .exists(params![key.to_string(), now])
        .map_err(backend)
}

/// What a size check needs after a capped write changed nothing: the new `data` expression,
/// whose parameters end at `?{params_end}` of the write's arguments (`?1` the key, `?2` now).
pub(super) struct Probe {
    data: Arc<str>,
    params_end: usize,
    cap: usize,
}

/// A write of a change set, built on the caller's thread (owned, for the writer thread).
pub(super) struct ChangeWrite {
    key: StoreKey,
    now: i64,
    statement: Arc<str>,
    args: Vec<Arg>,
    expect: std::collections::BTreeMap<String, crate::store::Precondition>,
    probe: Option<Probe>,
}

/// The `UPDATE` that applies `split` to the live session `key`, checking the size cap and
/// the preconditions on the row. Its text comes from the table's [`Queries`], built once per
/// shape of change set; only the arguments are built here.
pub(super) fn apply_write(sql: &Queries, key: &StoreKey, split: &Split<'_>) -> ChangeWrite {
    let mut args = first_args(key, split);
    let mut probe = None;
    let statement = if split.data_unchanged() && split.changes.expect.is_empty() {
        Arc::clone(&sql.apply_deadline)
    } else {
        let text = sql.apply_text(Shape::of(split));
        data_args(split, &mut args);
        debug_assert_eq!(args.len(), text.data_end);
        probe = split.size_cap.map(|cap| Probe {
            data: Arc::clone(&text.data),
            params_end: args.len(),
            cap,
        });
        condition_args(split, &mut args);
        Arc::clone(&text.statement)
    };
    ChangeWrite {
        key: *key,
        now: split.now,
        statement,
        args,
        expect: split.changes.expect.clone(),
        probe,
    }
}

/// Runs an `apply` built by [`apply_write`]; if it changed nothing, says why.
pub(super) fn apply(
    conn: &Connection,
    sql: &Queries,
    write: &ChangeWrite,
) -> Result<Applied, StoreError> {
    let rows = execute(conn, &write.statement, params_from_iter(&write.args))?;
    if rows == 1 {
        return Ok(Applied::Done);
    }
    Ok(match unwritten(conn, sql, write, "not updated")? {
        Unwritten::Missing | Unwritten::Otherwise => Applied::Missing,
        Unwritten::Conflict => Applied::Conflict,
        Unwritten::TooLarge { size } => Applied::TooLarge { size },
    })
}

/// The statement that moves the live session `keys.old` to `keys.new` with `split`: the new row
/// is built from the old one in SQL, and takes the new key only if it is free or expired.
pub(super) fn cycle_write(sql: &Queries, keys: &Rekey<'_>, split: &Split<'_>) -> ChangeWrite {
    let t = &sql.table;
    let mut args = first_args(keys.old, split);
    args.push(Arg::Text(keys.new.to_string()));
    // ?7 tie, ?8 principal, ?9 label, ?10 tied_at
    args.extend(tie_args(keys));
    let shape = Shape::of(split);
    let (data, next) = data_text(&shape, args.len() + 1);
    data_args(split, &mut args);
    debug_assert_eq!(args.len(), next - 1);
    let probe_args = args.len();
    let conditions = conditions_text(&shape, &data, next);
    condition_args(split, &mut args);
    let statement = format!(
        "INSERT INTO {t} \
         (key, data, created_at, expires_at, expiry, principal, label, tied_at) \
         SELECT ?6, {data}, created_at, ?3, CASE WHEN ?4 THEN ?5 ELSE expiry END, \
         CASE WHEN ?7 THEN ?8 ELSE principal END, CASE WHEN ?7 THEN ?9 ELSE label END, \
         CASE WHEN ?7 THEN ?10 ELSE tied_at END \
         FROM {t} WHERE key = ?1 AND expires_at > ?2 AND {DATA_IS_OBJECT}{conditions} \
         ON CONFLICT (key) DO UPDATE SET data = excluded.data, \
         created_at = excluded.created_at, expires_at = excluded.expires_at, \
         expiry = excluded.expiry, principal = excluded.principal, \
         label = excluded.label, tied_at = excluded.tied_at WHERE {t}.expires_at <= ?2"
    );
    ChangeWrite {
        key: *keys.old,
        now: split.now,
        statement: statement.into(),
        probe: split.size_cap.map(|cap| Probe {
            data: data.into(),
            params_end: probe_args,
            cap,
        }),
        args,
        expect: split.changes.expect.clone(),
    }
}

/// Runs a `cycle` built by [`cycle_write`], inside the writer's transaction: the insert, the
/// old row's delete and the moved-key marker under the old key commit together.
pub(super) fn cycle(
    conn: &Connection,
    sql: &Queries,
    write: &ChangeWrite,
) -> Result<Cycled, StoreError> {
    let moved = execute(conn, &write.statement, params_from_iter(&write.args))?;
    if moved == 1 {
        delete(conn, sql, &write.key)?;
        let until = write.now.saturating_add(MOVED_MARKER_MS);
        execute(conn, &sql.mark_moved, params![write.key.to_string(), until])?;
        return Ok(Cycled::Done);
    }
    Ok(match unwritten(conn, sql, write, "not cycled")? {
        Unwritten::Missing => Cycled::Missing,
        Unwritten::Conflict => Cycled::Conflict,
        Unwritten::TooLarge { size } => Cycled::TooLarge { size },
        // The old session is live and the change fits: the new key is taken.
        Unwritten::Otherwise => Cycled::Collision,
    })
}

/// Why an `apply` or a `cycle` changed nothing, found out after the fact.
enum Unwritten {
    /// No live session under the key.
    Missing,
    /// A precondition does not hold.
    Conflict,
    /// The values would be `size` bytes, over the cap.
    TooLarge { size: usize },
    /// None of those: the session is live, its preconditions hold and the change fits.
    Otherwise,
}

/// Why `write` changed nothing; a live row whose `data` is not a JSON object is
/// [`StoreError::Corrupt`] (`what`: what was not done to it).
fn unwritten(
    conn: &Connection,
    sql: &Queries,
    write: &ChangeWrite,
    what: &str,
) -> Result<Unwritten, StoreError> {
    let key = &write.key;
    Ok(match missing_or_corrupt(conn, sql, key, write.now)? {
        None => Unwritten::Missing,
        Some(false) => {
            return Err(sql::corrupt(
                key,
                format!("`data` is not a JSON object; {what}"),
            ))
        }
        Some(true) if !preconditions_hold(conn, sql, write)? => Unwritten::Conflict,
        Some(true) => match size_after(conn, sql, write)? {
            Some(size) => Unwritten::TooLarge { size },
            None => Unwritten::Otherwise,
        },
    })
}

/// Why a write guarded by liveness and [`DATA_IS_OBJECT`] changed nothing: the live row holds
/// garbage (`Some(false)`), or there is no live row (`None`). Only asked when the write already
/// failed.
fn missing_or_corrupt(
    conn: &Connection,
    sql: &Queries,
    key: &StoreKey,
    now: i64,
) -> Result<Option<bool>, StoreError> {
    let row = conn
        .query_row(&sql.live_is_object, params![key.to_string(), now], |row| {
            Ok(row.get::<_, i64>(0))
        })
        .optional()
        .map_err(backend)?;
    match row {
        None => Ok(None),
        Some(is_object) => Ok(Some(sql::column(key, "data", is_object)? != 0)),
    }
}

/// Whether the live session meets the write's preconditions (true without any). Only asked
/// after a write with preconditions changed nothing, to tell a conflict from the other reasons.
fn preconditions_hold(
    conn: &Connection,
    sql: &Queries,
    write: &ChangeWrite,
) -> Result<bool, StoreError> {
    if write.expect.is_empty() {
        return Ok(true);
    }
    let record = load(conn, sql, &write.key, write.now)?;
    Ok(record.is_some_and(|record| {
        write
            .expect
            .iter()
            .all(|(key, expected)| expected.holds(record.data.get(key)))
    }))
}

/// The length of the JSON text the live session would hold after the write, if that is over
/// the change set's size cap; `None` if it fits (or there is no cap). Only asked after a capped
/// write changed nothing, to tell "too large" from the other reasons.
fn size_after(
    conn: &Connection,
    sql: &Queries,
    write: &ChangeWrite,
) -> Result<Option<usize>, StoreError> {
    let Some(probe) = &write.probe else {
        return Ok(None);
    };
    let t = &sql.table;
    // `?3` to `?5` (`?9` for a cycle) go unused; the parameters after the data's (the
    // conditions') are not bound. A capped change set always sets a key (`ChangeSet::size_cap`),
    // so `data` names the last bound parameter.
    // Plus one: see the cap's condition in `conditions_text`.
    let statement = format!(
        "SELECT length(CAST({} AS BLOB)) + 1 FROM {t} \
         WHERE key = ?1 AND expires_at > ?2 AND {DATA_IS_OBJECT}",
        probe.data
    );
    let args = &write.args[..probe.params_end];
    let size: Option<i64> = conn
        .query_row(&statement, rusqlite::params_from_iter(args), |row| {
            row.get(0)
        })
        .optional()
        .map_err(backend)?;
    Ok(size
        .and_then(|size| usize::try_from(size).ok())
        .filter(|size| *size > probe.cap))
}
