//! [`PostgresStore`]: sessions in PostgreSQL (feature `postgres`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection};

use self::group_commit::WriteQueue;
use self::writer::PgWriter;
use crate::error::StoreError;
use crate::store::sql;
use crate::store::sql::{purge_at, upsert, ExtraColumns, Flavor, Schema};
use crate::store::MOVED_MARKER_MS;

mod group_commit;
mod ops;
mod rows;
mod writer;

/// How many batches may commit at once: half the pool (the rest serves loads), at most 4.
fn write_lanes(pool: &PgPool) -> usize {
    usize::try_from(pool.options().get_max_connections() / 2)
        .unwrap_or(1)
        .clamp(1, 4)
}

/// The advisory lock `migrate` holds: "SESSIONW" in ASCII.
const MIGRATE_LOCK: i64 = 0x5345_5353_494F_4E57;

/// Sessions in a PostgreSQL database, through sqlx.
///
/// Cloning a `PostgresStore` gives another handle to the same pool; any number of application
/// instances can share one database. Expired rows are never served; to reclaim their space, run
/// [`PurgeTask`](crate::store::PurgeTask) on one or more instances (concurrent purges skip each
/// other's rows) or call [`delete_expired`](crate::store::SessionStore::delete_expired) yourself.
///
/// ```
/// use std::time::Duration;
/// use sessionware::store::{now, Created, Record, SessionStore};
/// use sessionware::{PostgresStore, SessionId, SessionLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sessionware::StoreError> {
/// // `DATABASE_URL` is e.g. "postgres://app:secret@localhost/app" (CI sets it; without it this
/// // example has nothing to talk to and stops here).
/// let Ok(url) = std::env::var("DATABASE_URL") else { return Ok(()) };
/// let store = PostgresStore::connect(&url).await?.with_schema_name("auth")?;
/// store.migrate().await?;
///
/// // What the layer does when a new session is saved, and on the next request:
/// let key = SessionId::generate().store_key();
/// let record = Record::new([("user".to_owned(), "alice".into())].into(), now() + Duration::from_secs(60));
/// assert_eq!(store.create(&key, &record).await?, Created::Done);
/// assert_eq!(store.load(&key).await?.unwrap().data["user"], "alice");
///
/// let layer = SessionLayer::new(store);
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
///
/// The rest of this page is the operator's manual: [Schema](#schema) and what follows.
#[doc = include_str!("manual.md")]
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Group commit of single-statement writes, through `pool`.
    writes: Arc<WriteQueue<PgWriter>>,
    schema: Option<Arc<str>>,
    table: Arc<str>,
    sql: Arc<Queries>,
}

/// The statements of one table, built once.
struct Queries {
    /// The table's name as SQL writes it: quoted, schema-qualified if a schema is set.
    table: String,
    schema: Schema,
    apply: Arc<str>,
    live_data_type: Arc<str>,
    cycle: Arc<str>,
    /// The index on `expires_at` that tables created before `purge_at` have (quoted,
    /// schema-qualified as needed): `migrate` drops it.
    expires_at_index: String,
}

/// How PostgreSQL spells the shared statements: sizes kept beside the `jsonb` data, and a
/// [`purge_at`] column so that writes can update rows in place.
const FLAVOR: Flavor = Flavor::new(
    '$',
    "JSONB",
    "::jsonb",
    " FOR UPDATE SKIP LOCKED",
    ExtraColumns::SizesAndPurgeAt,
);

/// A row's entry sizes (the `sizes` column) counted from its `jsonb` data, for rows that have
/// none (written by a version that did not keep them): each key's JSON text, its value's as
/// `jsonb` writes it (never shorter than serde_json's, so the count errs on the large side)
/// and two bytes. Data that is not an object counts as empty (writes refuse it anyway).
const SIZES_FROM_DATA: &str = "(SELECT coalesce(jsonb_object_agg(e.key, \
     octet_length(to_jsonb(e.key)::text) + octet_length(e.value::text) + 2), '{}'::jsonb) \
     FROM jsonb_each(CASE WHEN jsonb_typeof(data) = 'object' THEN data ELSE '{}'::jsonb END) \
     AS e)";

/// The same rows' `size`: two bytes and the entries' sizes as [`SIZES_FROM_DATA`] counts them.
const SIZE_FROM_DATA: &str = "(SELECT 2 + coalesce(sum(octet_length(to_jsonb(e.key)::text) \
     + octet_length(e.value::text) + 2), 0) \
     FROM jsonb_each(CASE WHEN jsonb_typeof(data) = 'object' THEN data ELSE '{}'::jsonb END) \
     AS e)::bigint";

/// The size after a change, from the row's `size` and `sizes` (or their fallbacks): `clear`
/// starts from an empty object's 2 bytes, else the entries of the keys `touched` (removed or
/// set anew) are taken off; the entries set add `added` (their sizes, summed by the caller).
/// The work is in proportion to the keys changed, not to the session.
fn new_size(clear: &str, touched: &str, added: &str) -> String {
    format!(
        "((CASE WHEN {clear} THEN 2 ELSE coalesce(size, {SIZE_FROM_DATA}) - \
         (SELECT coalesce(sum((coalesce(sizes, {SIZES_FROM_DATA}) ->> k)::bigint), 0) \
          FROM unnest({touched}::text[]) AS k) END) + {added}::bigint)"
    )
}

/// The entry sizes after a change: those of the keys `touched` go, those set (`set_sizes`, a
/// JSON object by key) come in.
fn new_sizes(clear: &str, touched: &str, set_sizes: &str) -> String {
    format!(
        "((CASE WHEN {clear} THEN '{{}}'::jsonb \
         ELSE coalesce(sizes, {SIZES_FROM_DATA}) - {touched}::text[] END) || {set_sizes}::jsonb)"
    )
}

impl Queries {
    fn new(schema: Option<&str>, table: &str) -> Self {
        let t = match schema {
            Some(schema) => format!("{}.{}", sql::quote(schema), sql::quote(table)),
            None => sql::quote(table),
        };
        let shared = Schema::new(schema, table, &FLAVOR);
        let index = sql::quote(&sql::index_name(table, "_expires_at_idx", "exp"));
        let expires_at_index = match schema {
            Some(schema) => format!("{}.{index}", sql::quote(schema)),
            None => index,
        };
        let m = shared.moved.clone();
        Self {
            table: t.clone(),
            schema: shared,
            expires_at_index,
            // $1 key, $2 now, $3 expires_at, $4 clear, $5 removed keys, $6 set values,
            // $7 expiry changed, $8 expiry, $9 the size cap (NULL for none), $10 and $11 the
            // preconditions, $12 the keys touched (removed or set), $13 the sizes of the entries
            // set by key, $14 their sum. The cap is checked on the size kept in the row.
            apply: format!(
                "UPDATE {t} SET \
                 data = ((CASE WHEN $4 THEN '{{}}'::jsonb ELSE data END) - $5::text[]) || $6::jsonb, \
                 size = {size}, \
                 sizes = {sizes}, \
                 expires_at = $3, \
                 purge_at = {purge_at}, \
                 expiry = CASE WHEN $7 THEN $8 ELSE expiry END \
                 WHERE key = $1 AND expires_at > $2 AND jsonb_typeof(data) = 'object' \
                 AND ($9::bigint IS NULL OR {size} <= $9) \
                 AND {holds}",
                size = new_size("$4", "$12", "$14"),
                sizes = new_sizes("$4", "$12", "$13"),
                holds = holds("$10", "$11"),
                purge_at = purge_at::lower_to("$3"),
            )
            .into(),
            // After an apply that changed nothing: the type of the live row's data and, for an
            // object, whether the preconditions ($6 present, $7 absent) hold and the size the
            // apply's changes ($3 clear, $4 keys touched, $5 the sizes set) give it.
            live_data_type: format!(
                "SELECT jsonb_typeof(data), CASE WHEN jsonb_typeof(data) = 'object' THEN {} END, \
                 CASE WHEN jsonb_typeof(data) = 'object' THEN {}::bigint END \
                 FROM {t} WHERE key = $1 AND expires_at > $2",
                holds("$6", "$7"),
                new_size("$3", "$4", "$5"),
            )
            .into(),
            // $1 old key, $2 new key, $3 now, $4 expires_at, $5 clear, $6 removed keys,
            // $7 set values, $8 expiry changed, $9 expiry, $10 size cap (NULL for none),
            // $11 preconditions: keys with the values they must hold, $12 keys that must be absent,
            // $13 tie to an owner, $14 its principal, $15 its label, $16 its tie time,
            // $17 the keys touched (removed or set), $18 the sizes of the entries set, $19 their
            // sum.
            //
            // `src` locks the old row (re-reading it if a concurrent write committed first);
            // `ins` writes the new row unless a live one holds the key (the upsert also waits
            // for and sees rows committed after this statement's snapshot); `del` removes the
            // old row only if `ins` wrote, and `mark` leaves the moved-key marker only if `del`
            // removed it. Everything happens or nothing does.
            cycle: format!(
                "WITH locked AS MATERIALIZED ( \
                   SELECT data, created_at, expiry, principal, label, tied_at, size, sizes \
                   FROM {t} \
                   WHERE key = $1 AND expires_at > $3 AND jsonb_typeof(data) = 'object' \
                   FOR UPDATE \
                 ), src AS MATERIALIZED ( \
                   SELECT ((CASE WHEN $5 THEN '{{}}'::jsonb ELSE data END) - $6::text[]) \
                     || $7::jsonb AS new_data, {size}::bigint AS new_size, \
                     {sizes} AS new_sizes, created_at, expiry, principal, label, tied_at, \
                     {holds} AS holds \
                   FROM locked \
                 ), ins AS ( \
                   INSERT INTO {t} AS cur \
                     (key, data, created_at, expires_at, expiry, principal, label, tied_at, \
                      size, sizes, purge_at) \
                   SELECT $2, src.new_data, \
                     src.created_at, $4, CASE WHEN $8 THEN $9 ELSE src.expiry END, \
                     CASE WHEN $13 THEN $14 ELSE src.principal END, \
                     CASE WHEN $13 THEN $15 ELSE src.label END, \
                     CASE WHEN $13 THEN $16::bigint ELSE src.tied_at END, \
                     src.new_size, src.new_sizes, $4 \
                   FROM src WHERE src.holds AND ($10::bigint IS NULL OR src.new_size <= $10) \
                   {upsert} \
                   RETURNING 1 \
                 ), del AS ( \
                   DELETE FROM {t} WHERE key = $1 AND EXISTS (SELECT 1 FROM ins) \
                   RETURNING 1 \
                 ), mark AS ( \
                   INSERT INTO {m} (key, until) \
                   SELECT $1, $3::bigint + {marker} WHERE EXISTS (SELECT 1 FROM del) {renew} \
                   RETURNING 1 \
                 ) \
                 SELECT (SELECT count(*) FROM src) AS found, \
                   (SELECT count(*) FROM del) AS moved, \
                   (SELECT new_size FROM src) AS size, \
                   (SELECT holds FROM src) AS holds, \
                   EXISTS (SELECT 1 FROM {t} WHERE key = $1 AND expires_at > $3 \
                     AND jsonb_typeof(data) <> 'object') AS corrupt",
                upsert = upsert("$3", &FLAVOR),
                holds = holds("$11", "$12"),
                size = new_size("$5", "$17", "$19"),
                sizes = new_sizes("$5", "$17", "$18"),
                marker = MOVED_MARKER_MS,
                renew = sql::RENEW_MARKER,
            )
            .into(),
        }
    }
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}

impl PostgresStore {
    /// How long the pool of [`connect`](Self::connect) waits for a connection before an
    /// operation fails: 2 seconds (sqlx's default is 30).
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

    /// A store on your pool. Call [`migrate`](Self::migrate) before use.
    pub fn new(pool: PgPool) -> Self {
        Self {
            writes: Arc::new(WriteQueue::new(
                PgWriter { pool: pool.clone() },
                write_lanes(&pool),
            )),
            pool,
            schema: None,
            table: sql::DEFAULT_TABLE.into(),
            sql: Arc::new(Queries::new(None, sql::DEFAULT_TABLE)),
        }
    }

    /// Connects a pool with sqlx's default settings, except an acquire timeout of
    /// [`DEFAULT_ACQUIRE_TIMEOUT`](Self::DEFAULT_ACQUIRE_TIMEOUT) (2 s), to `url`
    /// (`postgres://user:password@host:port/database`). Call [`migrate`](Self::migrate)
    /// before use.
    ///
    /// One connection is tried first, so that an unreachable server fails at once with the
    /// driver's error ("Connection refused") instead of the pool retrying until its acquire
    /// timeout and reporting a timeout. See [Outages](Self#outages).
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the URL is malformed, the server cannot be reached or refuses
    /// the credentials.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(backend)?;
        let probe = PgConnection::connect_with(&options)
            .await
            .map_err(backend)?;
        // The probe only surfaces a clear error; failing to close it politely changes nothing.
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .acquire_timeout(Self::DEFAULT_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(backend)?;
        Ok(Self::new(pool))
    }

    /// Keeps sessions in the table `name` instead of `sessionware_sessions`.
    ///
    /// The name is used as is (quoted, so case matters); its index is named
    /// `<name>_purge_at_idx` (shortened with a hash if that exceeds 63 characters).
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] wrapping an [`sqlx::Error::Configuration`] unless `name` is 1 to
    /// 63 ASCII letters, digits or underscores, not starting with a digit.
    pub fn with_table_name(mut self, name: &str) -> Result<Self, StoreError> {
        sql::validate_name("table", name)?;
        self.table = name.into();
        self.sql = Arc::new(Queries::new(self.schema.as_deref(), name));
        Ok(self)
    }

    /// Keeps the table in the schema `name` instead of the first schema of the connection's
    /// `search_path`. [`migrate`](Self::migrate) creates the schema if it does not exist.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] wrapping an [`sqlx::Error::Configuration`] unless `name` is 1 to
    /// 63 ASCII letters, digits or underscores, not starting with a digit.
    pub fn with_schema_name(mut self, name: &str) -> Result<Self, StoreError> {
        sql::validate_name("schema", name)?;
        self.schema = Some(name.into());
        self.sql = Arc::new(Queries::new(Some(name), &self.table));
        Ok(self)
    }

    /// The table the sessions live in.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The schema of the table, if one was set with [`with_schema_name`](Self::with_schema_name).
    pub fn schema_name(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The pool (for health checks or your own queries).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the schema (if one was set), the table and its index if they do not exist yet.
    ///
    /// Safe to call on every start, from many instances at once: it runs in one transaction
    /// under an advisory lock.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the server refuses (for example, the role may not create
    /// tables or schemas).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // `IF NOT EXISTS` reports "already exists, skipping" as a notice; nobody needs it.
        sqlx::query("SET LOCAL client_min_messages = warning")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATE_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if let Some(schema) = &self.schema {
            // Checked first: `CREATE SCHEMA IF NOT EXISTS` needs the CREATE privilege on the
            // database even when the schema exists.
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                    .bind(&**schema)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(backend)?;
            if !exists {
                let create = format!("CREATE SCHEMA IF NOT EXISTS {}", sql::quote(schema));
                sqlx::query(AssertSqlSafe(create))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
        }
        let schema = &self.sql.schema;
        let t = &self.sql.table;
        sqlx::query(AssertSqlSafe(schema.create_table.clone()))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // Whether the table kept sizes before this call: if not, its rows get theirs below
        // (once; rows written later by an older version fall back to counting at write time).
        let (had_sizes, had_purge_at): (bool, bool) = sqlx::query_as(
            "SELECT bool_or(attname = 'sizes'), bool_or(attname = 'purge_at') FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND NOT attisdropped",
        )
        .bind(t)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        // A table created by 0.1 lacks the owner columns; one created before tie times,
        // sizes and purge times were kept lacks those.
        let add_columns = format!(
            "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS principal TEXT, \
             ADD COLUMN IF NOT EXISTS label TEXT, \
             ADD COLUMN IF NOT EXISTS tied_at BIGINT, \
             ADD COLUMN IF NOT EXISTS size BIGINT, \
             ADD COLUMN IF NOT EXISTS sizes JSONB, \
             ADD COLUMN IF NOT EXISTS purge_at BIGINT"
        );
        let mut statements = vec![add_columns];
        if !had_sizes {
            statements.push(format!(
                "UPDATE {t} SET size = {SIZE_FROM_DATA}, sizes = {SIZES_FROM_DATA} \
                 WHERE size IS NULL OR sizes IS NULL"
            ));
        }
        if !had_purge_at {
            // The rows there keep `purge_at` NULL (no rewrite here): the next purge looks at
            // each once. The index on `expires_at` goes: it kept every write from being an
            // in-place update. The fill factor applies to pages written from now on.
            statements.push(format!("ALTER TABLE {t} SET ({})", purge_at::STORAGE));
            statements.push(format!(
                "DROP INDEX IF EXISTS {}",
                self.sql.expires_at_index
            ));
        }
        statements.extend(
            [
                &schema.create_index,
                &schema.create_principal_index,
                &schema.create_moved_table,
                &schema.create_moved_index,
            ]
            .map(|statement| statement.to_string()),
        );
        for statement in statements {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }
}

fn holds(present: &str, absent: &str) -> String {
    format!(
        "(SELECT bool_and((data -> e.key) IS NOT DISTINCT FROM e.value) \
           FROM jsonb_each({present}::jsonb) AS e) IS NOT FALSE \
         AND NOT (data ?| {absent}::text[])"
    )
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("pool_size", &self.pool.size())
            .field("commits", &self.writes.commits())
            .finish_non_exhaustive()
    }
}
