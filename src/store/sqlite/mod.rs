//! [`SqliteStore`]: sessions in an embedded SQLite database (feature `sqlite`).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use self::connections::{Connections, Location};
use self::statements::Queries;
use crate::clock::{now_ms, to_ms};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::sql::{self, Split};
use crate::store::{
    Applied, ChangeSet, Created, Cycled, Listed, Record, Rekey, SessionStore, Touched,
};

mod change_text;
mod checkpoints;
mod connections;
mod ops;
#[cfg(test)]
mod scratch;
mod statements;
mod writer;

/// Sessions in an SQLite database (a file, or memory), run in the process through rusqlite.
///
/// Reads run on the calling task's thread, with no hand-off to a driver thread: a primary-key
/// read takes microseconds. Writes go to a writer thread that commits whatever has queued up
/// as one transaction (group commit). Cloning a `SqliteStore` gives
/// another handle to the same connections. Expired rows are never served; to reclaim their
/// space, run [`PurgeTask`](crate::store::PurgeTask) (or call
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
    connections: Arc<Connections>,
    sql: Arc<Queries>,
}

/// Where `url` points: `sqlite::memory:` (or `mode=memory`), else a file path after `sqlite://`
/// or `sqlite:`, created if missing with `mode=rwc`.
fn location(url: &str) -> Result<Location, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            StoreError::backend(format!(
                "not an SQLite URL: {url:?} (use sqlite://<path>?mode=rwc or sqlite::memory:)"
            ))
        })?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mode = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("mode="))
        .unwrap_or("rw");
    if path == ":memory:" || mode == "memory" {
        return Ok(Location::Memory);
    }
    if path.is_empty() {
        return Err(StoreError::backend(format!(
            "no file in the SQLite URL {url:?}"
        )));
    }
    match mode {
        "rw" | "rwc" => Ok(Location::File {
            path: PathBuf::from(path),
            create: mode == "rwc",
        }),
        other => Err(StoreError::backend(format!(
            "SQLite URL {url:?}: mode {other:?} is not supported (rw, rwc or memory)"
        ))),
    }
}

impl SqliteStore {
    /// Opens the database at `url` with the settings described in the [type docs](Self):
    /// WAL, `synchronous = NORMAL`, a 5 s busy timeout, one writer connection, reader
    /// connections opened as reads need them, and a background checkpoint thread (a single
    /// connection for an in-memory database).
    ///
    /// `url`: `sqlite://sessions.db?mode=rwc` (a file, created if missing),
    /// `sqlite://sessions.db` (an existing file), `sqlite::memory:` (in memory). Call
    /// [`migrate`](Self::migrate) before use.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the URL is malformed or the database cannot be opened.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let connections = Connections::open(location(url)?)?;
        Ok(Self {
            connections: Arc::new(connections),
            sql: Arc::new(Queries::new(sql::DEFAULT_TABLE)),
        })
    }

    /// Keeps sessions in the table `name` instead of `sessionware_sessions`.
    ///
    /// The name is used as is (quoted, so case matters); its index is named
    /// `<name>_expires_at_idx`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] unless `name` is 1 to 63 ASCII letters, digits or underscores,
    /// not starting with a digit.
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
        self.sql = Arc::new(Queries::new(name));
        Ok(self)
    }

    /// The table the sessions live in.
    pub fn table_name(&self) -> &str {
        &self.sql.name
    }

    /// Runs `f` on the writer connection, as a write: in the writer's transaction (with
    /// whatever other writes queued meanwhile, in a savepoint of its own when there are some),
    /// committed before this returns (for health checks, your own queries, tests). Writes wait
    /// while it runs: keep it short.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sessionware::StoreError> {
    /// let store = sessionware::SqliteStore::connect("sqlite::memory:").await?;
    /// store.migrate().await?;
    /// let rows: i64 = store
    ///     .with_connection(|db| {
    ///         db.query_row("SELECT count(*) FROM sessionware_sessions", [], |row| row.get(0))
    ///     })
    ///     .await?;
    /// assert_eq!(rows, 0);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// What `f` returns, as [`StoreError::Backend`]; [`StoreError::Backend`] if the
    /// transaction failed, or if `f` panicked: the panic is caught on the writer thread and
    /// logged (a `tracing` error), what `f` changed is rolled back, and the store carries on.
    pub async fn with_connection<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.connections
            .write(|conn| f(conn).map_err(StoreError::backend))
            .await
    }

    /// Creates the table, its indexes and the table of moved-key markers if they do not exist
    /// yet, and adds the columns a table made by an earlier version lacks (the owner columns of
    /// 0.1, `tied_at`). Safe to call on every start, from several processes at once.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if SQLite refuses (for example a read-only file).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let sql = Arc::clone(&self.sql);
        self.connections
            .write(move |tx| {
                let schema = &sql.schema;
                tx.execute_batch(&schema.create_table)
                    .map_err(StoreError::backend)?;
                // A table created by 0.1 lacks the owner columns; SQLite has no `ADD COLUMN IF NOT
                // EXISTS`, so ask which columns it has.
                let columns = {
                    let mut statement = tx
                        .prepare("SELECT name FROM pragma_table_info(?1)")
                        .map_err(StoreError::backend)?;
                    let names = statement
                        .query_map([&*sql.name], |row| row.get::<_, String>(0))
                        .map_err(StoreError::backend)?;
                    names
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(StoreError::backend)?
                };
                let t = &sql.table;
                // A table created before tie times were kept lacks `tied_at`: its rows read
                // as tied at an unknown time.
                let added = [
                    ("principal", "TEXT"),
                    ("label", "TEXT"),
                    ("tied_at", "BIGINT"),
                ];
                for (column, kind) in added {
                    if !columns.iter().any(|c| c == column) {
                        tx.execute_batch(&format!("ALTER TABLE {t} ADD COLUMN {column} {kind}"))
                            .map_err(StoreError::backend)?;
                    }
                }
                for statement in [
                    &schema.create_index,
                    &schema.create_principal_index,
                    &schema.create_moved_table,
                    &schema.create_moved_index,
                ] {
                    tx.execute_batch(statement).map_err(StoreError::backend)?;
                }
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let (sql, key) = (Arc::clone(&self.sql), *key);
        self.connections
            .read(move |conn| ops::load(conn, &sql, &key, now_ms()))
            .await
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<Created, StoreError> {
        let (sql, key) = (Arc::clone(&self.sql), *key);
        let row = ops::NewRow::of(record)?;
        self.connections
            .write(move |conn| ops::create(conn, &sql, &key, &row, now_ms()))
            .await
    }

    async fn apply(&self, key: &StoreKey, changes: &ChangeSet) -> Result<Applied, StoreError> {
        let sql = Arc::clone(&self.sql);
        let write = ops::apply_write(&sql, key, &Split::new(changes, now_ms()));
        self.connections
            .write(move |conn| ops::apply(conn, &sql, &write))
            .await
    }

    async fn cycle(&self, keys: Rekey<'_>, changes: &ChangeSet) -> Result<Cycled, StoreError> {
        let sql = Arc::clone(&self.sql);
        let write = ops::cycle_write(&sql, &keys, &Split::new(changes, now_ms()));
        self.connections
            .write(move |conn| ops::cycle(conn, &sql, &write))
            .await
    }

    async fn was_moved(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let (sql, key) = (Arc::clone(&self.sql), *key);
        self.connections
            .read(move |conn| ops::was_moved(conn, &sql, &key, now_ms()))
            .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let (sql, key) = (Arc::clone(&self.sql), *key);
        self.connections
            .write(move |conn| ops::delete(conn, &sql, &key))
            .await
    }

    async fn touch(&self, key: &StoreKey, expires_at: SystemTime) -> Result<Touched, StoreError> {
        let (sql, key, expires_at) = (Arc::clone(&self.sql), *key, to_ms(expires_at));
        self.connections
            .write(move |conn| ops::touch(conn, &sql, &key, expires_at, now_ms()))
            .await
    }

    /// `DELETE`s of at most 100 rows, each its own job of the writer thread (so that the
    /// requests' writes queued behind one wait a few milliseconds at most), until one removes
    /// fewer; then the same for moved-key markers that ran out (not counted: they are not
    /// sessions).
    async fn delete_expired(&self) -> Result<u64, StoreError> {
        // One cut-off for every batch, so the loop ends even while sessions keep expiring.
        let now = now_ms();
        let total = self.purge_in_batches(ops::purge_batch, now).await?;
        self.purge_in_batches(ops::purge_moved_batch, now).await?;
        Ok(total)
    }

    async fn list(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        let (sql, principal) = (Arc::clone(&self.sql), principal.to_owned());
        self.connections
            .read(move |conn| ops::list(conn, &sql, &principal, now_ms()))
            .await
    }

    async fn delete_all(&self, principal: &str) -> Result<u64, StoreError> {
        let (sql, principal) = (Arc::clone(&self.sql), principal.to_owned());
        self.connections
            .write(move |conn| ops::delete_all(conn, &sql, &principal, now_ms()))
            .await
    }
}

impl SqliteStore {
    /// Runs `purge` (a batch of at most [`PURGE_BATCH`](ops::PURGE_BATCH) deletes) as writes of
    /// their own until one deletes fewer, so other writes get their turn between batches; how
    /// many it deleted in all.
    async fn purge_in_batches(
        &self,
        purge: fn(&rusqlite::Connection, &statements::Queries, i64) -> Result<u64, StoreError>,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let sql = Arc::clone(&self.sql);
            let deleted = self
                .connections
                .write(move |conn| purge(conn, &sql, now))
                .await?;
            total += deleted;
            if deleted < ops::PURGE_BATCH.unsigned_abs() {
                return Ok(total);
            }
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("table", &self.sql.name)
            .field("location", self.connections.location())
            .field("commits", &self.connections.commits())
            .field("background_checkpoints", &self.connections.checkpoints())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
