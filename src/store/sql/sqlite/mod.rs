//! [`SqliteStore`]: sessions in an embedded SQLite database (feature `sqlite`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite};

use self::writer::SqliteWriter;
use super::group_commit::{bind, Arg, Statement, WriteQueue};
use super::{sql_session_store, Flavor, Schema, Split};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::sql;
use crate::store::{now, Applied, Cycled, Record, Rekey};

mod writer;

/// How long a connection waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Log pages after which a commit checkpoints (SQLite's default is 1,000). Background
/// checkpoints do the copying; this one lets the log restart, and each costs the writer a stall.
const WAL_AUTOCHECKPOINT_PAGES: &str = "10000";

/// At most this many `json_remove` paths or `json_set` pairs per SQL function call (calls are
/// nested beyond that), well under SQLite's limit on function arguments (127 before 3.48).
const JSON_ARGS_PER_CALL: usize = 50;

/// Whether a `data` column holds a JSON object. `CASE` keeps `json_type` from ever seeing text
/// that is not JSON (which would be an SQL error instead of a clean "corrupt").
const DATA_IS_OBJECT: &str =
    "(CASE WHEN json_valid(data) THEN json_type(data) = 'object' ELSE 0 END)";

/// Sessions in an SQLite database (a file, or memory), through sqlx.
///
/// Cloning a `SqliteStore` gives another handle to the same pools. Expired rows are never
/// served; to reclaim their space, run [`PurgeTask`](crate::store::PurgeTask) (or call
/// [`delete_expired`](crate::store::SessionStore::delete_expired) yourself).
///
/// ```
/// use sessionware::{SessionLayer, SqliteStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sessionware::StoreError> {
/// // A file: "sqlite://sessions.db?mode=rwc" (rwc creates it if missing).
/// let store = SqliteStore::connect("sqlite::memory:").await?;
/// store.migrate().await?;
/// let layer = SessionLayer::new(store.clone());
/// # let _ = layer;
/// assert_eq!(store.table_name(), "sessionware_sessions");
/// # Ok(())
/// # }
/// ```
///
/// The rest of this page is the operator's manual: [Schema](#schema) and what follows.
#[doc = include_str!("manual.md")]
#[derive(Clone)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    /// Group commit of single-statement writes, through `writer`.
    writes: Arc<WriteQueue<SqliteWriter>>,
    table: Arc<str>,
    sql: Arc<Queries>,
}

/// The statements of one table, built once.
struct Queries {
    /// The quoted table name.
    table: String,
    schema: Schema,
    /// Whether the live row under `?1` holds a JSON object (`None`: no live row).
    live_is_object: Arc<str>,
}

/// How SQLite spells the shared statements.
const FLAVOR: Flavor = Flavor::new('?', "TEXT", "", "");

impl Queries {
    fn new(table: &str) -> Self {
        let t = sql::quote(table);
        Self {
            schema: Schema::new(&t, table, &FLAVOR),
            live_is_object: format!(
                "SELECT {DATA_IS_OBJECT} FROM {t} WHERE key = ?1 AND expires_at > ?2"
            )
            .into(),
            table: t,
        }
    }
}

/// The dynamic part of `apply` and `cycle`: the new `data` as an SQL expression over the old
/// one, with its bind parameters numbered from `first`.
///
/// `clear` starts from `'{}'`; removals nest `json_remove(data, path, ..)`; sets nest
/// `json_set(.., path, json(value), ..)`. Paths are `$."<key>"` with the key written as a JSON
/// string literal, so keys with dots, brackets, quotes or any Unicode address one member.
fn data_expr(split: &Split<'_>, first: usize) -> (String, Vec<String>) {
    let mut n = first;
    let mut params = Vec::with_capacity(split.removed.len() + 2 * split.sets.len());
    let mut expr = if split.clear {
        "'{}'".to_owned()
    } else {
        "data".to_owned()
    };
    if !split.clear {
        for chunk in split.removed.chunks(JSON_ARGS_PER_CALL) {
            let mut call = format!("json_remove({expr}");
            for key in chunk {
                call.push_str(&format!(", ?{n}"));
                params.push(json_path(key));
                n += 1;
            }
            call.push(')');
            expr = call;
        }
    }
    for chunk in split.sets.chunks(JSON_ARGS_PER_CALL) {
        let mut call = format!("json_set({expr}");
        for (key, value) in chunk {
            call.push_str(&format!(", ?{n}, json(?{})", n + 1));
            params.push(json_path(key));
            params.push(value.to_string());
            n += 2;
        }
        call.push(')');
        expr = call;
    }
    (expr, params)
}

/// The `WHERE` conditions a change set adds to a write whose new data is `data`: the size cap
/// (on the JSON text the row will hold) and the preconditions (each key's JSON, as SQLite's `->`
/// writes it, against the expected value made minimal by `json()`; absent keys give `NULL`).
/// Their bind parameters are appended to `args`, numbered after those already there.
fn conditions(split: &Split<'_>, data: &str, args: &mut Vec<Arg>) -> String {
    let mut conditions = String::new();
    if let Some(cap) = split.size_cap {
        args.push(Arg::Int(i64::try_from(cap).unwrap_or(i64::MAX)));
        conditions.push_str(&format!(
            " AND length(CAST({data} AS BLOB)) <= ?{}",
            args.len()
        ));
    }
    for (key, value) in split.expected_present() {
        args.push(Arg::Text(json_path(key)));
        args.push(Arg::Text(value.to_string()));
        let (path, value) = (args.len() - 1, args.len());
        conditions.push_str(&format!(" AND (data -> ?{path}) IS json(?{value})"));
    }
    for key in split.expected_absent() {
        args.push(Arg::Text(json_path(key)));
        conditions.push_str(&format!(" AND (data -> ?{}) IS NULL", args.len()));
    }
    conditions
}

/// The SQLite JSON path of one top-level member.
/// `?1` key, `?2` now, `?3` expires_at, `?4` expiry changed, `?5` expiry: the parameters
/// `apply` and `cycle` start with.
fn first_args(key: &StoreKey, split: &Split<'_>) -> Vec<Arg> {
    vec![
        Arg::Text(key.to_string()),
        Arg::Int(split.now),
        Arg::Int(split.expires_at),
        Arg::Bool(split.expiry_changed),
        Arg::OptText(split.expiry.clone()),
    ]
}

/// The owner columns' values of a cycle: whether to tie, and to whom.
fn tie_args(keys: &Rekey<'_>) -> [Arg; 3] {
    let owner = keys.tie;
    [
        Arg::Bool(owner.is_some()),
        Arg::OptText(owner.map(|owner| owner.principal.clone())),
        Arg::OptText(owner.and_then(|owner| owner.label.clone())),
    ]
}

fn json_path(key: &str) -> String {
    format!("$.{}", Value::from(key))
}

/// Whether a URL names an in-memory database (`sqlite::memory:`, `mode=memory`).
fn is_memory_url(url: &str) -> bool {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    path.ends_with(":memory:") || query.split('&').any(|pair| pair == "mode=memory")
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}

impl SqliteStore {
    /// Opens the database at `url` with the settings described in the [type docs](Self):
    /// WAL, `synchronous = NORMAL`, a 5 s busy timeout, one writer connection and a few reader
    /// connections (a single connection for an in-memory database).
    ///
    /// `url` is an sqlx SQLite URL: `sqlite://sessions.db?mode=rwc` (a file, created if
    /// missing), `sqlite://sessions.db` (an existing file), `sqlite::memory:` (in memory). Call
    /// [`migrate`](Self::migrate) before use.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the URL is malformed or the database cannot be opened.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(backend)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES);
        // The writer opens first: the first connection to a new file switches it to WAL, which
        // needs the file to itself.
        let single = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
        if is_memory_url(url) {
            let pool = single.connect_with(options).await.map_err(backend)?;
            return Ok(Self::new(pool));
        }
        let writer = single
            .connect_with(options.clone())
            .await
            .map_err(backend)?;
        // One connection more than the CPUs: a background checkpoint may hold one.
        let readers = std::thread::available_parallelism()
            .map_or(5, |n| n.get().clamp(2, 8) + 1)
            .try_into()
            .unwrap_or(4);
        let reader = SqlitePoolOptions::new()
            .max_connections(readers)
            .connect_with(options)
            .await
            .map_err(backend)?;
        Ok(Self::from_pools(reader, writer))
    }

    /// A store on a pool you configured, used for reads and writes alike.
    ///
    /// Give its connections a busy timeout (sqlx's default is 5 s) and, for a file, WAL
    /// journaling; with several connections, writers then wait for SQLite's file lock rather
    /// than for one another in the pool, which is slower under heavy write load than
    /// [`connect`](Self::connect)'s single writer (see [`from_pools`](Self::from_pools)). For an
    /// in-memory database, use a pool of one connection that never idles out.
    pub fn new(pool: SqlitePool) -> Self {
        Self::with_pools(pool.clone(), pool, false)
    }

    /// A store that loads through `reader` and writes through `writer`.
    ///
    /// `writer` should hold a single connection (`max_connections(1)`): that is what makes
    /// writers queue instead of contending for SQLite's lock. Both pools must open the same
    /// database file, in WAL mode so that readers never wait for the writer; one reader
    /// connection at a time also runs the background WAL checkpoints (see the [type
    /// docs](Self)), so give `reader` one connection more than your loads need.
    pub fn from_pools(reader: SqlitePool, writer: SqlitePool) -> Self {
        Self::with_pools(reader, writer, true)
    }

    /// `separate`: whether `reader` holds connections other than the writer's, which can then
    /// run WAL checkpoints in the background.
    fn with_pools(reader: SqlitePool, writer: SqlitePool, separate: bool) -> Self {
        Self {
            // One lane: SQLite has one writer.
            writes: Arc::new(WriteQueue::new(
                SqliteWriter::new(writer.clone(), separate.then(|| reader.clone())),
                1,
            )),
            reader,
            writer,
            table: sql::DEFAULT_TABLE.into(),
            sql: Arc::new(Queries::new(sql::DEFAULT_TABLE)),
        }
    }

    /// Keeps sessions in the table `name` instead of `sessionware_sessions`.
    ///
    /// The name is used as is (quoted, so case matters); its index is named
    /// `<name>_expires_at_idx`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] wrapping an [`sqlx::Error::Configuration`] unless `name` is 1 to
    /// 63 ASCII letters, digits or underscores, not starting with a digit.
    ///
    /// ```
    /// # async fn demo(store: sessionware::SqliteStore) -> Result<(), sessionware::StoreError> {
    /// let store = store.with_table_name("web_sessions")?;
    /// store.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_table_name(mut self, name: &str) -> Result<Self, StoreError> {
        sql::validate_name("table", name)?;
        self.table = name.into();
        self.sql = Arc::new(Queries::new(name));
        Ok(self)
    }

    /// The table the sessions live in.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The pool writes go through (for health checks or your own queries).
    pub fn pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// Creates the table and its index if they do not exist yet. Safe to call on every start,
    /// from several processes at once.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if SQLite refuses (for example a read-only file).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let schema = &self.sql.schema;
        sqlx::query(AssertSqlSafe(schema.create_table.clone()))
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        // A table created by 0.1 lacks the owner columns; SQLite has no `ADD COLUMN IF NOT
        // EXISTS`, so ask which columns it has.
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?1)")
            .bind(&*self.table)
            .fetch_all(&self.writer)
            .await
            .map_err(backend)?;
        let t = &self.sql.table;
        for column in ["principal", "label"] {
            if !columns.iter().any(|c| c == column) {
                let add = format!("ALTER TABLE {t} ADD COLUMN {column} TEXT");
                sqlx::query(AssertSqlSafe(add))
                    .execute(&self.writer)
                    .await
                    .map_err(backend)?;
            }
        }
        for statement in [&schema.create_index, &schema.create_principal_index] {
            sqlx::query(AssertSqlSafe(statement.clone()))
                .execute(&self.writer)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    /// Why an `UPDATE` guarded by liveness and [`DATA_IS_OBJECT`] changed nothing: the live row
    /// holds garbage ([`StoreError::Corrupt`]), or there is no live row (`Missing`). Only runs
    /// when the write already failed.
    async fn missing_or_corrupt<'c, E>(
        &self,
        executor: E,
        key: &StoreKey,
        now: i64,
    ) -> Result<Option<bool>, StoreError>
    where
        E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
    {
        let row = sqlx::query(AssertSqlSafe(self.sql.live_is_object.clone()))
            .bind(key.to_string())
            .bind(now)
            .fetch_optional(executor)
            .await
            .map_err(backend)?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(sql::column(key, "data", row.try_get::<bool, _>(0))?)),
        }
    }
}

impl SqliteStore {
    /// Whether the live session `key` meets the preconditions of `split` (true without any).
    /// Only asked after a write with preconditions changed nothing, to tell a conflict from the
    /// other reasons.
    async fn preconditions_hold(
        &self,
        key: &StoreKey,
        split: &Split<'_>,
    ) -> Result<bool, StoreError> {
        if split.changes.expect.is_empty() {
            return Ok(true);
        }
        let record = crate::store::SessionStore::load(self, key).await?;
        Ok(record.is_some_and(|record| split.changes.preconditions_hold(&record.data)))
    }

    /// The length of the JSON text the live session `key` would hold after `split`, if that is
    /// over the change set's size cap; `None` if it fits (or there is no cap). Only asked after
    /// a capped write changed nothing, to tell "too large" from the other reasons.
    async fn size_after<'c, E>(
        &self,
        executor: E,
        key: &StoreKey,
        split: &Split<'_>,
    ) -> Result<Option<usize>, StoreError>
    where
        E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
    {
        let Some(cap) = split.size_cap else {
            return Ok(None);
        };
        let (data, params) = data_expr(split, 3);
        let t = &self.sql.table;
        let statement = format!(
            "SELECT length(CAST({data} AS BLOB)) FROM {t} \
             WHERE key = ?1 AND expires_at > ?2 AND {DATA_IS_OBJECT}"
        );
        let mut query = sqlx::query_scalar::<_, i64>(AssertSqlSafe(statement))
            .bind(key.to_string())
            .bind(now());
        for param in params {
            query = query.bind(param);
        }
        let size = query.fetch_optional(executor).await.map_err(backend)?;
        Ok(size
            .and_then(|size| usize::try_from(size).ok())
            .filter(|size| *size > cap))
    }
}

fn decode(key: &StoreKey, row: &SqliteRow) -> Result<Record, StoreError> {
    let data: String = sql::column(key, "data", row.try_get("data"))?;
    sql::record(key, sql::data_from_text(key, &data)?, row)
}

sql_session_store!(SqliteStore, writer = SqliteWriter, reads = reader);

/// The operations SQLite does its own way (see [`sql_session_store!`]).
impl SqliteStore {
    async fn apply_split(&self, key: &StoreKey, split: &Split<'_>) -> Result<Applied, StoreError> {
        let now = split.now;
        let t = &self.sql.table;
        // Only validated identifiers and numbered placeholders are pasted into the statement.
        let mut args = first_args(key, split);
        let statement = if split.data_unchanged() && split.changes.expect.is_empty() {
            format!(
                "UPDATE {t} SET expires_at = ?3, expiry = CASE WHEN ?4 THEN ?5 ELSE expiry END \
                 WHERE key = ?1 AND expires_at > ?2"
            )
        } else {
            let (data, params) = data_expr(split, args.len() + 1);
            args.extend(params.into_iter().map(Arg::Text));
            // The cap and the preconditions are checked on the row, in the same statement.
            let conditions = conditions(split, &data, &mut args);
            format!(
                "UPDATE {t} SET data = {data}, expires_at = ?3, \
                 expiry = CASE WHEN ?4 THEN ?5 ELSE expiry END \
                 WHERE key = ?1 AND expires_at > ?2 AND {DATA_IS_OBJECT}{conditions}"
            )
        };
        let rows = self
            .writes
            .execute(
                key,
                Statement {
                    sql: statement.into(),
                    args,
                },
            )
            .await?;
        if rows == 1 {
            return Ok(Applied::Done);
        }
        match self.missing_or_corrupt(&self.writer, key, now).await? {
            Some(false) => Err(sql::corrupt(
                key,
                "`data` is not a JSON object; not updated",
            )),
            None => Ok(Applied::Missing),
            // Live and an object, yet not updated: a precondition or the size cap refused it.
            Some(true) => {
                if !self.preconditions_hold(key, split).await? {
                    return Ok(Applied::Conflict);
                }
                Ok(match self.size_after(&self.writer, key, split).await? {
                    Some(size) => Applied::TooLarge { size },
                    None => Applied::Missing,
                })
            }
        }
    }

    async fn cycle_split(&self, keys: Rekey<'_>, split: &Split<'_>) -> Result<Cycled, StoreError> {
        let now = split.now;
        let Rekey { old, new, .. } = keys;
        let t = &self.sql.table;
        let mut args = first_args(old, split);
        args.push(Arg::Text(new.to_string()));
        // ?7 tie, ?8 principal, ?9 label
        args.extend(tie_args(&keys));
        let (data, params) = data_expr(split, args.len() + 1);
        args.extend(params.into_iter().map(Arg::Text));
        let conditions = conditions(split, &data, &mut args);
        // The new row is built from the old one in SQL; the upsert takes the new key only if it
        // is free or expired (`?2` is now).
        let insert = Statement {
            sql: format!(
                "INSERT INTO {t} (key, data, created_at, expires_at, expiry, principal, label) \
                 SELECT ?6, {data}, created_at, ?3, CASE WHEN ?4 THEN ?5 ELSE expiry END, \
                 CASE WHEN ?7 THEN ?8 ELSE principal END, CASE WHEN ?7 THEN ?9 ELSE label END \
                 FROM {t} WHERE key = ?1 AND expires_at > ?2 AND {DATA_IS_OBJECT}{conditions} \
                 ON CONFLICT (key) DO UPDATE SET data = excluded.data, \
                 created_at = excluded.created_at, expires_at = excluded.expires_at, \
                 expiry = excluded.expiry, principal = excluded.principal, \
                 label = excluded.label WHERE {t}.expires_at <= ?2"
            )
            .into(),
            args,
        };
        let insert = bind::<Sqlite>(&insert);

        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let moved = insert.execute(&mut *tx).await.map_err(backend)?;
        if moved.rows_affected() == 1 {
            sqlx::query(AssertSqlSafe(self.sql.schema.common.delete.clone()))
                .bind(old.to_string())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
            return Ok(Cycled::Done);
        }
        // Nothing was written: say why, then end the transaction.
        let old_state = self.missing_or_corrupt(&mut *tx, old, now).await?;
        let too_large = match old_state {
            Some(true) => self.size_after(&mut *tx, old, split).await?,
            _ => None,
        };
        tx.rollback().await.map_err(backend)?;
        match (old_state, too_large) {
            (None, _) => Ok(Cycled::Missing),
            (Some(false), _) => Err(sql::corrupt(old, "`data` is not a JSON object; not cycled")),
            (Some(true), _) if !self.preconditions_hold(old, split).await? => Ok(Cycled::Conflict),
            (Some(true), Some(size)) => Ok(Cycled::TooLarge { size }),
            (Some(true), None) => Ok(Cycled::Collision),
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("table", &self.table)
            .field(
                "writer_connections",
                &self.writer.options().get_max_connections(),
            )
            .field(
                "reader_connections",
                &self.reader.options().get_max_connections(),
            )
            .field("commits", &self.writes.commits())
            .field(
                "background_checkpoints",
                &self.writes.batcher().checkpoints(),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_urls_are_recognised() {
        assert!(is_memory_url("sqlite::memory:"));
        assert!(is_memory_url("sqlite://file:x?mode=memory&cache=shared"));
        assert!(!is_memory_url("sqlite://sessions.db?mode=rwc"));
        assert!(!is_memory_url("sqlite:memory.db"));
    }

    #[test]
    fn paths_quote_every_key() {
        assert_eq!(json_path("a"), "$.\"a\"");
        assert_eq!(json_path("a.b"), "$.\"a.b\"");
        assert_eq!(json_path("q\"\\"), "$.\"q\\\"\\\\\"");
    }
}
