//! SQLite's own statements: the table's fixed ones, built once, and the `apply`/`cycle`
//! statements built per change set (the new `data` as an SQL expression over the old one).

use std::sync::Arc;

use rusqlite::types::{ToSqlOutput, Value as SqlValue};
use rusqlite::ToSql;
use serde_json::Value;

use crate::id::StoreKey;
use crate::store::sql::arg::Arg;
use crate::store::sql::{self, Flavor, Schema, Split};
use crate::store::Rekey;

/// At most this many `json_remove` paths or `json_set` pairs per SQL function call (calls are
/// nested beyond that), well under SQLite's limit on function arguments (127 before 3.48).
const JSON_ARGS_PER_CALL: usize = 50;

/// Whether a `data` column holds a JSON object. `CASE` keeps `json_type` from ever seeing text
/// that is not JSON (which would be an SQL error instead of a clean "corrupt").
pub(super) const DATA_IS_OBJECT: &str =
    "(CASE WHEN json_valid(data) THEN json_type(data) = 'object' ELSE 0 END)";

/// How SQLite spells the shared statements.
const FLAVOR: Flavor = Flavor::new('?', "TEXT", "", "");

/// The statements of one table, built once.
pub(super) struct Queries {
    /// The table name as given.
    pub(super) name: Arc<str>,
    /// The quoted table name.
    pub(super) table: String,
    pub(super) schema: Schema,
    /// Whether the live row under `?1` holds a JSON object (no row: no live row).
    pub(super) live_is_object: String,
}

impl Queries {
    pub(super) fn new(name: &str) -> Self {
        let t = sql::quote(name);
        Self {
            name: name.into(),
            schema: Schema::new(&t, name, &FLAVOR),
            live_is_object: format!(
                "SELECT {DATA_IS_OBJECT} FROM {t} WHERE key = ?1 AND expires_at > ?2"
            ),
            table: t,
        }
    }
}

impl ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Arg::Text(text) => ToSqlOutput::from(text.as_str()),
            Arg::OptText(Some(text)) => ToSqlOutput::from(text.as_str()),
            Arg::OptText(None) => ToSqlOutput::Owned(SqlValue::Null),
            Arg::Int(n) => ToSqlOutput::from(*n),
            Arg::Bool(b) => ToSqlOutput::from(*b),
            #[cfg(feature = "postgres")]
            Arg::OptInt(n) => match n {
                Some(n) => ToSqlOutput::from(*n),
                None => ToSqlOutput::Owned(SqlValue::Null),
            },
            // SQLite has no arrays: a JSON array (its statements never bind a list).
            #[cfg(feature = "postgres")]
            Arg::TextArray(list) => ToSqlOutput::Owned(SqlValue::Text(
                serde_json::Value::from(list.clone()).to_string(),
            )),
        })
    }
}

/// The dynamic part of `apply` and `cycle`: the new `data` as an SQL expression over the old
/// one, with its bind parameters numbered from `first`.
///
/// `clear` starts from `'{}'`; removals nest `json_remove(data, path, ..)`; sets nest
/// `json_set(.., path, json(value), ..)`. Paths are `$."<key>"` with the key written as a JSON
/// string literal, so keys with dots, brackets, quotes or any Unicode address one member.
pub(super) fn data_expr(split: &Split<'_>, first: usize) -> (String, Vec<String>) {
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
pub(super) fn conditions(split: &Split<'_>, data: &str, args: &mut Vec<Arg>) -> String {
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

/// `?1` key, `?2` now, `?3` expires_at, `?4` expiry changed, `?5` expiry: the parameters
/// `apply` and `cycle` start with.
pub(super) fn first_args(key: &StoreKey, split: &Split<'_>) -> Vec<Arg> {
    vec![
        Arg::Text(key.to_string()),
        Arg::Int(split.now),
        Arg::Int(split.expires_at),
        Arg::Bool(split.expiry_changed),
        Arg::OptText(split.expiry.clone()),
    ]
}

/// The owner columns' values of a cycle: whether to tie, and to whom.
pub(super) fn tie_args(keys: &Rekey<'_>) -> [Arg; 3] {
    let owner = keys.tie;
    [
        Arg::Bool(owner.is_some()),
        Arg::OptText(owner.map(|owner| owner.principal.clone())),
        Arg::OptText(owner.and_then(|owner| owner.label.clone())),
    ]
}

/// The SQLite JSON path of one top-level member.
pub(super) fn json_path(key: &str) -> String {
    format!("$.{}", Value::from(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_quote_every_key() {
        assert_eq!(json_path("a"), "$.\"a\"");
        assert_eq!(json_path("a.b"), "$.\"a.b\"");
        assert_eq!(json_path("q\"\\"), "$.\"q\\\"\\\\\"");
    }
}
