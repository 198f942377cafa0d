//! The SQL core: what the SQL stores ([`SqliteStore`](super::SqliteStore),
//! [`PostgresStore`](super::PostgresStore)) share. Table and schema names and their validation,
//! the statements both spell the same way ([`Schema`]), the splitting of a [`ChangeSet`] into
//! bind parameters, and the decoding of a row's columns into a [`Record`]. The drivers differ:
//! PostgreSQL goes through sqlx with group commit (see its module); SQLite runs in process
//! through rusqlite (see its module).
//!
//! Both stores keep the same columns (see their module docs for the exact DDL):
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `key` | `TEXT PRIMARY KEY` | 64 lowercase hex digits: the SHA-256 of the session id ([`StoreKey`]); never the id itself |
//! | `data` | `JSONB` (PostgreSQL), `TEXT` holding JSON (SQLite) | a JSON object: the session's values by key |
//! | `created_at` | `BIGINT` | creation time, Unix milliseconds (the base of the absolute timeout) |
//! | `expires_at` | `BIGINT` | deadline, Unix milliseconds; a row whose deadline is not in the future is dead |
//! | `expiry` | `TEXT NULL` | the session's own expiry settings in the [`ExpirySettings::encode`] format, `NULL` for the layer's defaults |
//! | `principal` | `TEXT NULL`, indexed where not `NULL` | the user the session is tied to ([`Owner`]); `migrate()` adds it to a 0.1 table |
//! | `label` | `TEXT NULL` | the label of the session in its owner's device list |
//! | `tied_at` | `BIGINT NULL` | when the session was tied to its principal, Unix milliseconds ([`Owner::tied_at`]); `NULL` if unknown (rows written before it existed); `migrate()` adds it |
//! | `size` | `BIGINT NULL` (PostgreSQL only) | the session's size as the size cap counts it ([`data_size`](crate::store::data_size)), kept up to date by each write; `migrate()` adds and fills it |
//! | `sizes` | `JSONB NULL` (PostgreSQL only) | each value's share of `size` by key ([`entry_size`](crate::store::entry_size)): what a write subtracts for the keys it replaces or removes; `migrate()` adds and fills it |
//! | `purge_at` | `BIGINT NULL`, indexed (PostgreSQL only) | when the purge looks at the row next, never later than `expires_at` ([`purge_at`]); SQLite indexes `expires_at` instead; `migrate()` adds it |
//!
//! PostgreSQL keeps the size beside the data because `jsonb` does not keep the JSON text it was
//! given (it writes `1e300` as 301 digits and adds spaces), so the size the cap is checked
//! against cannot be read off the stored value; SQLite keeps the text as given, and counts it.
//!
//! A second table, `<table>_moved` (shortened with a hash past 63 characters), holds the keys
//! a [`cycle`](crate::store::SessionStore::cycle) moved a session away from, written in the
//! same transaction as the move, until when the marker lasts
//! ([`MOVED_MARKER`](crate::defaults::MOVED_MARKER) later):
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `key` | `TEXT PRIMARY KEY` | the old key |
//! | `until` | `BIGINT`, indexed | when the marker ends, Unix milliseconds; purged by `delete_expired` |
//!
//! Only `was_moved` reads it; every other operation works on the sessions table alone.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{ChangeSet, Data, ExpiryChange, KeyChange, Owner, Precondition, Record};
use crate::clock::{from_ms, to_ms};
use crate::error::StoreError;
use crate::expiry::ExpirySettings;
use crate::id::StoreKey;

pub(crate) mod purge_at;

/// The table the SQL stores use unless told otherwise.
pub(crate) const DEFAULT_TABLE: &str = "sessionware_sessions";

/// At most this many writes per transaction in either backend's group commit, so that one
/// commit never holds the write lock for long.
pub(crate) const MAX_BATCH: usize = 64;

/// One bind parameter of a statement, the same for both drivers: owned, so a statement can run
/// again after its batch rolled back (PostgreSQL's group commit). JSON travels as text
/// (PostgreSQL casts it with `::jsonb`).
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    /// A `BIGINT` that may be `NULL` (PostgreSQL types a `NULL` parameter by its Rust type).
    OptInt(Option<i64>),
    Bool(bool),
    /// A PostgreSQL `text[]`.
    #[cfg(feature = "postgres")]
    TextArray(Vec<String>),
}

/// The longest table or schema name accepted (PostgreSQL's identifier limit, `NAMEDATALEN - 1`).
const MAX_NAME_LEN: usize = 63;

/// Checks a table or schema name: 1 to 63 ASCII letters, digits or underscores, not starting
/// with a digit. Such a name needs no escaping, so it can be pasted into SQL (always quoted, so
/// its case is kept and reserved words are fine).
///
/// The error is a [`StoreError::Backend`], the same kind of error that `connect` returns for a
/// malformed URL.
pub(crate) fn validate_name(kind: &str, name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        let shown: String = name.chars().take(80).collect();
        Err(StoreError::backend(format!(
            "invalid session {kind} name {shown:?}: use 1 to {MAX_NAME_LEN} ASCII letters, \
             digits or underscores, not starting with a digit"
        )))
    }
}

/// A validated name, double-quoted for SQL.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// The name of the table of moved-key markers of `table`: `<table>_moved`, or, when that would
/// exceed the identifier limit, a prefix of the table name with a hash of the whole name.
pub(crate) fn moved_table_name(table: &str) -> String {
    const SUFFIX: &str = "_moved";
    if table.len() + SUFFIX.len() <= MAX_NAME_LEN {
        return format!("{table}{SUFFIX}");
    }
    let digest = Sha256::digest(table.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    // Validated names are ASCII, so any byte index is a char boundary.
    let prefix = table.get(..40).unwrap_or(table);
    format!("{prefix}_{hash}{SUFFIX}")
}

/// The name of an index of `table`: `<table><suffix>` (`sessions_expires_at_idx`), or, when that
/// would exceed the identifier limit, a prefix of the table name with a hash of the whole name
/// and `short`, so that two long table names never share an index name.
pub(crate) fn index_name(table: &str, suffix: &str, short: &str) -> String {
    if table.len() + suffix.len() <= MAX_NAME_LEN {
        return format!("{table}{suffix}");
    }
    let digest = Sha256::digest(table.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    // Validated names are ASCII, so any byte index is a char boundary.
    let prefix = table.get(..40).unwrap_or(table);
    format!("{prefix}_{hash}_{short}_idx")
}

/// A [`ChangeSet`] taken apart into what the SQL statements bind.
#[derive(Debug)]
pub(crate) struct Split<'a> {
    /// The application's clock when the operation started (Unix ms): what "live" is measured
    /// against.
    pub(crate) now: i64,
    /// Start from an empty object instead of the stored data.
    pub(crate) clear: bool,
    /// Keys to remove (after `clear`, before `sets`; disjoint from `sets`).
    pub(crate) removed: Vec<&'a str>,
    /// Keys to set, with their new values.
    pub(crate) sets: Vec<(&'a str, &'a Value)>,
    /// The new deadline.
    pub(crate) expires_at: i64,
    /// Whether the `expiry` column changes at all.
    pub(crate) expiry_changed: bool,
    /// The new `expiry` column when it changes ([`ExpirySettings::encode`], `None` for `NULL`).
    pub(crate) expiry: Option<String>,
    /// The size cap the write must keep ([`ChangeSet::size_cap`]).
    pub(crate) size_cap: Option<usize>,
    /// The whole change set, for its preconditions ([`ChangeSet::expect`]).
    pub(crate) changes: &'a ChangeSet,
}

impl<'a> Split<'a> {
    pub(crate) fn new(changes: &'a ChangeSet, now: i64) -> Self {
        let mut removed = Vec::new();
        let mut sets = Vec::new();
        for (key, change) in &changes.updates {
            match change {
                KeyChange::Set(value) => sets.push((key.as_str(), value)),
                KeyChange::Remove => removed.push(key.as_str()),
            }
        }
        Self {
            now,
            clear: changes.clear,
            removed,
            sets,
            expires_at: to_ms(changes.expires_at),
            expiry_changed: matches!(changes.expiry, ExpiryChange::Set(_)),
            expiry: match changes.expiry {
                ExpiryChange::Set(settings) => settings.encode(),
                ExpiryChange::Keep => None,
            },
            size_cap: changes.size_cap(),
            changes,
        }
    }

    /// The keys that must hold a value, with it ([`Precondition::Equals`]).
    pub(crate) fn expected_present(&self) -> impl Iterator<Item = (&'a str, &'a Value)> {
        self.changes
            .expect
            .iter()
            .filter_map(|(key, expected)| expected.expected().map(|value| (key.as_str(), value)))
    }

    /// The keys that must be absent ([`Precondition::Absent`]).
    pub(crate) fn expected_absent(&self) -> impl Iterator<Item = &'a str> {
        self.changes
            .expect
            .iter()
            .filter(|(_, expected)| **expected == Precondition::Absent)
            .map(|(key, _)| key.as_str())
    }

    /// Whether the data is left as it is (only the deadline or expiry moves).
    #[cfg(feature = "sqlite")]
    pub(crate) fn data_unchanged(&self) -> bool {
        !self.clear && self.removed.is_empty() && self.sets.is_empty()
    }
}

/// The JSON text of a session's values, as stored.
pub(crate) fn encode_data(data: &Data) -> Result<String, StoreError> {
    // A map with string keys of JSON values always serializes; the error path is unreachable
    // in practice and reported rather than unwrapped.
    serde_json::to_string(data).map_err(StoreError::backend)
}

/// A [`StoreError::Corrupt`] naming the session (by its short key) and the problem.
pub(crate) fn corrupt(key: &StoreKey, problem: impl fmt::Display) -> StoreError {
    StoreError::Corrupt(format!(
        "session {}.. in the SQL store: {problem}",
        key.short()
    ))
}

/// Maps a failure to read a column of a fetched row (a type mismatch, a value that does not
/// decode) to [`StoreError::Corrupt`]: the row exists, its content is wrong.
pub(crate) fn column<T, E: fmt::Display>(
    key: &StoreKey,
    name: &str,
    read: Result<T, E>,
) -> Result<T, StoreError> {
    read.map_err(|e| corrupt(key, format_args!("column `{name}` does not decode: {e}")))
}

/// Turns the JSON read from the `data` column into session values; anything but an object is
/// corrupt.
pub(crate) fn data_from_value(key: &StoreKey, value: Value) -> Result<Data, StoreError> {
    match value {
        Value::Object(map) => Ok(map.into_iter().collect()),
        other => Err(corrupt(
            key,
            format_args!("`data` is a JSON {}, not an object", json_kind(&other)),
        )),
    }
}

/// Parses the JSON text of the `data` column (SQLite).
#[cfg(feature = "sqlite")]
pub(crate) fn data_from_text(key: &StoreKey, text: &str) -> Result<Data, StoreError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| corrupt(key, format_args!("`data` is not valid JSON: {e}")))?;
    data_from_value(key, value)
}

/// A row's columns other than `data`, read by either driver.
pub(crate) struct Columns {
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) expiry: Option<String>,
    pub(crate) principal: Option<String>,
    pub(crate) label: Option<String>,
    pub(crate) tied_at: Option<i64>,
}

/// Builds the record holding `data` from a row's other columns, decoding the `expiry` text.
/// The same for both backends: only `data` has a type of its own (`TEXT` or `JSONB`).
pub(crate) fn record_from(
    key: &StoreKey,
    data: Data,
    columns: Columns,
) -> Result<Record, StoreError> {
    let expiry = match columns.expiry {
        None => ExpirySettings::default(),
        Some(text) => ExpirySettings::decode(&text).ok_or_else(|| {
            let shown: String = text.chars().take(40).collect();
            corrupt(
                key,
                format_args!("`expiry` {shown:?} is not encoded expiry settings (`end`, `idle:<ms>`, `at:<unix ms>`, `abs:<ms>`)"),
            )
        })?,
    };
    let owner = columns.principal.map(|principal| {
        let mut owner = Owner::new(principal);
        owner.label = columns.label;
        owner.tied_at = columns.tied_at.map(from_ms);
        owner
    });
    // A literal, not `Record::new`: that reads the clock for a `created_at` replaced at once.
    Ok(Record {
        data,
        created_at: from_ms(columns.created_at),
        expires_at: from_ms(columns.expires_at),
        expiry,
        owner,
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The statements whose parameters are the same in both backends, built once per table.
pub(crate) struct Common {
    /// `principal, now`: the live rows tied to `principal`.
    pub(crate) list: Arc<str>,
    /// `principal, now`: delete the live rows tied to `principal`.
    pub(crate) delete_all: Arc<str>,
    /// `key, data, created_at, expires_at, expiry, principal, label, now, tied_at` (and, with
    /// the extra columns, `size, sizes`): insert, or replace an expired row.
    pub(crate) create: Arc<str>,
    /// `key, now, expires_at`: move the deadline of the live row.
    pub(crate) touch: Arc<str>,
    /// `key`: delete the row.
    pub(crate) delete: Arc<str>,
    /// `now, limit`: delete at most `limit` expired rows. With a [`purge_at`] column, a
    /// query whose one row says how many rows it `looked_at` and how many it `deleted`.
    pub(crate) purge: Arc<str>,
    /// `now, limit`: delete at most `limit` markers of moved keys that have run out.
    pub(crate) purge_moved: Arc<str>,
    /// `key, now`: whether a live marker says `key` was moved.
    pub(crate) was_moved: Arc<str>,
}

/// How a backend spells what differs in the statements both write the same way.
pub(crate) struct Flavor {
    /// What comes before the number of a bind parameter (`?` for SQLite, `$` for PostgreSQL).
    param: char,
    /// The type of the `data` column (`TEXT` holding JSON, or `JSONB`).
    data_type: &'static str,
    /// What turns the JSON text bound for `data` into that type (`::jsonb`, or nothing).
    data_cast: &'static str,
    /// Appended to the purge's row selection (`FOR UPDATE SKIP LOCKED` where rows can be
    /// locked, so concurrent purges skip each other's rows).
    purge_lock: &'static str,
    /// The columns its table has beyond those both keep.
    extra: ExtraColumns,
}

/// The columns a backend's table has beyond those both keep.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExtraColumns {
    /// None (SQLite: it counts the size on the JSON text it keeps, and has no in-place
    /// updates to protect).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    None,
    /// `size` and `sizes` (PostgreSQL's `jsonb` does not keep the text the size is counted on)
    /// and `purge_at`, indexed instead of `expires_at` (see [`purge_at`]).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    SizesAndPurgeAt,
}

impl Flavor {
    /// See the fields, in this order.
    pub(crate) const fn new(
        param: char,
        data_type: &'static str,
        data_cast: &'static str,
        purge_lock: &'static str,
        extra: ExtraColumns,
    ) -> Self {
        Self {
            param,
            data_type,
            data_cast,
            purge_lock,
            extra,
        }
    }
}

/// The statements every backend needs, for one table (`table`, quoted and schema-qualified as
/// needed).
pub(crate) struct Schema {
    pub(crate) create_table: Arc<str>,
    pub(crate) create_index: Arc<str>,
    pub(crate) create_principal_index: Arc<str>,
    /// The table of moved-key markers, and the index its purge uses.
    pub(crate) create_moved_table: Arc<str>,
    pub(crate) create_moved_index: Arc<str>,
    /// The moved-key table's name as SQL writes it (quoted, schema-qualified as needed).
    pub(crate) moved: String,
    /// `key, now`: the live row.
    pub(crate) load: Arc<str>,
    pub(crate) common: Common,
}

impl Schema {
    /// `schema`: the schema to qualify the tables' names with, if any (PostgreSQL).
    pub(crate) fn new(schema: Option<&str>, name: &str, flavor: &Flavor) -> Self {
        let qualified = |table: &str| match schema {
            Some(schema) => format!("{}.{}", quote(schema), quote(table)),
            None => quote(table),
        };
        let t = &qualified(name);
        let moved_name = moved_table_name(name);
        let m = &qualified(&moved_name);
        let p = |n: usize| format!("{}{n}", flavor.param);
        let (p1, p2, p3, p4, p5, p6, p7, p8) = (p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8));
        let principal_index = quote(&index_name(name, "_principal_idx", "prn"));
        let moved_index = quote(&index_name(&moved_name, "_until_idx", "unt"));
        let (data_type, cast, lock) = (flavor.data_type, flavor.data_cast, flavor.purge_lock);
        let p9 = p(9);
        let extra = flavor.extra == ExtraColumns::SizesAndPurgeAt;
        // What the extra columns add to each statement, in the order of the statements below.
        let (columns, table_options, indexed, names, values, touch_purge_at) = if extra {
            (
                ", size BIGINT, sizes JSONB, purge_at BIGINT",
                format!(" WITH ({})", purge_at::STORAGE),
                "purge_at",
                ", size, sizes, purge_at",
                format!(", {}, {}::jsonb, {p4}", p(10), p(11)),
                format!(", purge_at = {}", purge_at::lower_to(&p3)),
            )
        } else {
            (
                "",
                String::new(),
                "expires_at",
                "",
                String::new(),
                String::new(),
            )
        };
        let index = quote(&index_name(name, &format!("_{indexed}_idx"), &indexed[..3]));
        Self {
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                 key TEXT PRIMARY KEY NOT NULL, \
                 data {data_type} NOT NULL, \
                 created_at BIGINT NOT NULL, \
                 expires_at BIGINT NOT NULL, \
                 expiry TEXT, \
                 principal TEXT, \
                 label TEXT, \
                 tied_at BIGINT{columns}){table_options}"
            )
            .into(),
            create_index: format!("CREATE INDEX IF NOT EXISTS {index} ON {t} ({indexed})").into(),
            create_principal_index: format!(
                "CREATE INDEX IF NOT EXISTS {principal_index} ON {t} (principal) \
                 WHERE principal IS NOT NULL"
            )
            .into(),
            create_moved_table: format!(
                "CREATE TABLE IF NOT EXISTS {m} (\
                 key TEXT PRIMARY KEY NOT NULL, \
                 until BIGINT NOT NULL)"
            )
            .into(),
            create_moved_index: format!("CREATE INDEX IF NOT EXISTS {moved_index} ON {m} (until)")
                .into(),
            moved: m.clone(),
            load: format!(
                "SELECT data, created_at, expires_at, expiry, principal, label, tied_at FROM {t} \
                 WHERE key = {p1} AND expires_at > {p2}"
            )
            .into(),
            common: Common {
                list: format!(
                    "SELECT key, created_at, expires_at, label, tied_at FROM {t} \
                     WHERE principal = {p1} AND expires_at > {p2}"
                )
                .into(),
                delete_all: format!("DELETE FROM {t} WHERE principal = {p1} AND expires_at > {p2}")
                    .into(),
                create: format!(
                    "INSERT INTO {t} AS cur \
                     (key, data, created_at, expires_at, expiry, principal, label, \
                     tied_at{names}) \
                     VALUES ({p1}, {p2}{cast}, {p3}, {p4}, {p5}, {p6}, {p7}, \
                     {p9}{values}) {}",
                    upsert(&p8, flavor)
                )
                .into(),
                touch: format!(
                    "UPDATE {t} SET expires_at = {p3}{touch_purge_at} \
                     WHERE key = {p1} AND expires_at > {p2}"
                )
                .into(),
                delete: format!("DELETE FROM {t} WHERE key = {p1}").into(),
                // The outer condition re-checks rows after the selection locked them, so a
                // purge never deletes a row that a create brought back to life meanwhile.
                purge: if extra {
                    purge_at::purge(t, &p1, &p2).into()
                } else {
                    format!(
                        "DELETE FROM {t} WHERE expires_at <= {p1} AND key IN \
                         (SELECT key FROM {t} WHERE expires_at <= {p1} LIMIT {p2}{lock})"
                    )
                    .into()
                },
                // The same for markers: one that a newer cycle renewed meanwhile stays.
                purge_moved: format!(
                    "DELETE FROM {m} WHERE until <= {p1} AND key IN \
                     (SELECT key FROM {m} WHERE until <= {p1} LIMIT {p2}{lock})"
                )
                .into(),
                was_moved: format!("SELECT 1 FROM {m} WHERE key = {p1} AND until > {p2}").into(),
            },
        }
    }
}

/// The end of an insert into the table aliased `cur` (`create`, and PostgreSQL's `cycle`): a
/// conflicting row is replaced only if it has expired at `now` (the placeholder that holds it),
/// with every column the `flavor`'s table has.
pub(crate) fn upsert(now: &str, flavor: &Flavor) -> String {
    let extra = match flavor.extra {
        ExtraColumns::SizesAndPurgeAt => {
            ", size = excluded.size, sizes = excluded.sizes, purge_at = excluded.purge_at"
        }
        ExtraColumns::None => "",
    };
    format!(
        "ON CONFLICT (key) DO UPDATE SET data = excluded.data, \
         created_at = excluded.created_at, expires_at = excluded.expires_at, \
         expiry = excluded.expiry, principal = excluded.principal, label = excluded.label, \
         tied_at = excluded.tied_at{extra} \
         WHERE cur.expires_at <= {now}"
    )
}

/// The moved-key marker a cycle writes under the old key: `INSERT INTO <moved> (key, until)`
/// followed by this and the values; a marker already there (a key cycled away from, recreated
/// and cycled again, which a fresh random key never is) is renewed.
pub(crate) const RENEW_MARKER: &str = "ON CONFLICT (key) DO UPDATE SET until = excluded.until";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_ms;

    #[test]
    fn names_are_validated() {
        for good in ["sessions", "_x", "A1_b2", &"a".repeat(63)] {
            assert!(validate_name("table", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "schema.table",
            "żółć",
            &"a".repeat(64),
        ] {
            let err = validate_name("table", bad).unwrap_err();
            assert!(
                err.to_string().contains("invalid session table name"),
                "{err}"
            );
        }
    }

    #[test]
    fn index_names_fit_and_differ() {
        let index_name = |table: &str| index_name(table, "_expires_at_idx", "exp");
        assert_eq!(index_name("sessions"), "sessions_expires_at_idx");
        let long_a = format!("{}a", "x".repeat(62));
        let long_b = format!("{}b", "x".repeat(62));
        assert!(index_name(&long_a).len() <= 63);
        assert_ne!(index_name(&long_a), index_name(&long_b));
    }

    // Garbage in the other columns is checked against real rows by the conformance suite.
    #[cfg(feature = "sqlite")]
    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let key = crate::id::SessionId::generate().store_key();
        for text in ["", "{", "[1, 2]", "\"s\"", "null", "12"] {
            assert!(
                matches!(data_from_text(&key, text), Err(StoreError::Corrupt(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn changes_split_into_sets_and_removes() {
        let changes = ChangeSet::new(from_ms(5))
            .with_clear()
            .with_set("a", Value::from(1))
            .with_remove("b")
            .with_expiry(None);
        let split = Split::new(&changes, 0);
        assert!(split.clear && split.expiry_changed && split.expiry.is_none());
        assert_eq!(split.removed, ["b"]);
        assert_eq!(split.sets.len(), 1);
        #[cfg(feature = "sqlite")]
        {
            assert!(!split.data_unchanged());
            assert!(Split::new(&ChangeSet::new(from_ms(1)), 0).data_unchanged());
        }
    }
}
