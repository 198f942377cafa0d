//! What the SQL stores ([`SqliteStore`](super::SqliteStore),
//! [`PostgresStore`](super::PostgresStore)) share: table and schema names, the decoding of a row
//! into a [`Record`], the splitting of a [`ChangeSet`] into bind parameters, and the writes
//! whose statements take the same parameters in both (`touch`, `delete`).
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

use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::batch::{Arg, Batcher, Statement, WriteQueue};
use super::{now, ChangeSet, Data, ExpiryChange, Record, Touched};
use crate::error::StoreError;
use crate::expiry::ExpirySettings;
use crate::id::StoreKey;

/// The table the SQL stores use unless told otherwise.
pub(crate) const DEFAULT_TABLE: &str = "sessionware_sessions";

/// How many expired rows one `DELETE` of `delete_expired` removes at most, so that no statement
/// holds its locks for long.
pub(crate) const PURGE_BATCH: i64 = 1000;

/// The longest table or schema name accepted (PostgreSQL's identifier limit, `NAMEDATALEN - 1`).
const MAX_NAME_LEN: usize = 63;

/// Checks a table or schema name: 1 to 63 ASCII letters, digits or underscores, not starting
/// with a digit. Such a name needs no escaping, so it can be pasted into SQL (always quoted, so
/// its case is kept and reserved words are fine).
///
/// The error is a [`StoreError::Backend`] wrapping a [`sqlx::Error::Configuration`], the same
/// kind of error that `connect` returns for a malformed URL.
pub(crate) fn validate_name(kind: &str, name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        let shown: String = name.chars().take(80).collect();
        Err(StoreError::backend(sqlx::Error::Configuration(
            format!(
                "invalid session {kind} name {shown:?}: use 1 to {MAX_NAME_LEN} ASCII letters, \
                 digits or underscores, not starting with a digit"
            )
            .into(),
        )))
    }
}

/// A validated name, double-quoted for SQL.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// The name of the `expires_at` index of `table`: `<table>_expires_at_idx`, or, when that would
/// exceed the identifier limit, a prefix of the table name with a hash of the whole name, so
/// that two long table names never share an index name.
pub(crate) fn index_name(table: &str) -> String {
    const SUFFIX: &str = "_expires_at_idx";
    if table.len() + SUFFIX.len() <= MAX_NAME_LEN {
        return format!("{table}{SUFFIX}");
    }
    let digest = Sha256::digest(table.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    // Validated names are ASCII, so any byte index is a char boundary.
    let prefix = table.get(..40).unwrap_or(table);
    format!("{prefix}_{hash}_exp_idx")
}

/// A [`ChangeSet`] taken apart into what the SQL statements bind.
#[derive(Debug)]
pub(crate) struct Split<'a> {
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
}

impl<'a> Split<'a> {
    pub(crate) fn new(changes: &'a ChangeSet) -> Self {
        let mut removed = Vec::new();
        let mut sets = Vec::new();
        for (key, value) in &changes.updates {
            match value {
                Some(value) => sets.push((key.as_str(), value)),
                None => removed.push(key.as_str()),
            }
        }
        Self {
            clear: changes.clear,
            removed,
            sets,
            expires_at: changes.expires_at,
            expiry_changed: matches!(changes.expiry, ExpiryChange::Set(_)),
            expiry: match changes.expiry {
                ExpiryChange::Set(settings) => settings.encode(),
                ExpiryChange::Keep => None,
            },
            size_cap: changes.size_cap(),
        }
    }

    /// Whether the data is left as it is (only the deadline or expiry moves).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn data_unchanged(&self) -> bool {
        !self.clear && self.removed.is_empty() && self.sets.is_empty()
    }
}

/// Serializes session values as a JSON object, borrowing them.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) struct JsonObject<'a>(pub(crate) &'a [(&'a str, &'a Value)]);

impl serde::Serialize for JsonObject<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
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
pub(crate) fn column<T>(
    key: &StoreKey,
    name: &str,
    read: Result<T, sqlx::Error>,
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
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn data_from_text(key: &StoreKey, text: &str) -> Result<Data, StoreError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| corrupt(key, format_args!("`data` is not valid JSON: {e}")))?;
    data_from_value(key, value)
}

/// Builds the record from its decoded columns, decoding the `expiry` text.
pub(crate) fn record(
    key: &StoreKey,
    data: Data,
    created_at: i64,
    expires_at: i64,
    expiry: Option<String>,
) -> Result<Record, StoreError> {
    let expiry = match expiry {
        None => ExpirySettings::default(),
        Some(text) => ExpirySettings::decode(&text).ok_or_else(|| {
            let shown: String = text.chars().take(40).collect();
            corrupt(
                key,
                format_args!("`expiry` {shown:?} is not encoded expiry settings (`end`, `idle:<ms>`, `at:<unix ms>`, `abs:<ms>`)"),
            )
        })?,
    };
    Ok(Record::new(data, expires_at)
        .with_created_at(created_at)
        .with_expiry(expiry))
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

/// `touch` through the write queue: `sql` updates the deadline of the live row under `?1`/`$1`
/// (now is the second parameter, the new deadline the third).
pub(crate) async fn touch<B: Batcher<Statement = Statement>>(
    writes: &WriteQueue<B>,
    sql: &Arc<str>,
    key: &StoreKey,
    expires_at: i64,
) -> Result<Touched, StoreError> {
    let statement = Statement {
        sql: sql.clone(),
        args: vec![
            Arg::Text(key.to_string()),
            Arg::Int(now()),
            Arg::Int(expires_at),
        ],
    };
    Ok(if writes.execute(key, statement).await? == 1 {
        Touched::Done
    } else {
        Touched::Missing
    })
}

/// `delete` through the write queue: `sql` deletes the row under `?1`/`$1`.
pub(crate) async fn delete<B: Batcher<Statement = Statement>>(
    writes: &WriteQueue<B>,
    sql: &Arc<str>,
    key: &StoreKey,
) -> Result<(), StoreError> {
    let statement = Statement {
        sql: sql.clone(),
        args: vec![Arg::Text(key.to_string())],
    };
    writes.execute(key, statement).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::SessionId;

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
        assert_eq!(index_name("sessions"), "sessions_expires_at_idx");
        let long_a = format!("{}a", "x".repeat(62));
        let long_b = format!("{}b", "x".repeat(62));
        assert!(index_name(&long_a).len() <= 63);
        assert_ne!(index_name(&long_a), index_name(&long_b));
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let key = SessionId::generate().store_key();
        for text in ["", "{", "[1, 2]", "\"s\"", "null", "12"] {
            assert!(
                matches!(data_from_text(&key, text), Err(StoreError::Corrupt(_))),
                "{text}"
            );
        }
        let bad = record(&key, Data::new(), 0, 1, Some("forever".into()));
        assert!(matches!(bad, Err(StoreError::Corrupt(_))));
        let ok = record(&key, Data::new(), 0, 1, Some("idle:5".into())).unwrap();
        assert!(ok.expiry.expiry.is_some());
    }

    #[test]
    fn changes_split_into_sets_and_removes() {
        let changes = ChangeSet::new(5)
            .with_clear()
            .with_update("a", Some(Value::from(1)))
            .with_update("b", None)
            .with_expiry(None);
        let split = Split::new(&changes);
        assert!(split.clear && split.expiry_changed && split.expiry.is_none());
        assert_eq!(split.removed, ["b"]);
        assert_eq!(split.sets.len(), 1);
        assert!(!split.data_unchanged());
        assert!(Split::new(&ChangeSet::new(1)).data_unchanged());
    }
}
