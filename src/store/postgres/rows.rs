//! What PostgreSQL binds and reads beyond the statements both SQL stores share: a change set's
//! parts as parameters, the `size` and `sizes` columns a write keeps (see
//! [`PostgresStore`](super::PostgresStore)'s manual), and rows decoded into records.

use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;

use crate::clock::from_ms;
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::sql::{self, Columns, Split};
use crate::store::{entry_size, Data, Listed, Record, EMPTY_SIZE};

/// Serializes session values as a JSON object, borrowing them.
pub(super) struct JsonObject<'a>(pub(super) &'a [(&'a str, &'a Value)]);

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

/// The keys that must hold a value, with it, as one JSON object.
pub(super) fn expected_present(split: &Split<'_>) -> Result<String, StoreError> {
    let present: Vec<(&str, &Value)> = split.expected_present().collect();
    serde_json::to_string(&JsonObject(&present)).map_err(StoreError::backend)
}

/// The keys that must be absent.
pub(super) fn expected_absent(split: &Split<'_>) -> Vec<String> {
    split.expected_absent().map(str::to_owned).collect()
}

/// The size cap as a statement parameter (`NULL` for none).
pub(super) fn cap(split: &Split<'_>) -> Option<i64> {
    split.size_cap.map(to_i64)
}

/// The keys whose old entries go (removed, or set anew), as a PostgreSQL `text[]`.
pub(super) fn touched(split: &Split<'_>) -> Vec<String> {
    let removed = split.removed.iter().copied();
    removed
        .chain(split.sets.iter().map(|(key, _)| *key))
        .map(str::to_owned)
        .collect()
}

/// The entries set, each with its share of the size ([`entry_size`]): a JSON object of sizes
/// by key, and their sum.
pub(super) fn set_sizes(split: &Split<'_>) -> Result<(String, i64), StoreError> {
    let sizes: Vec<(&str, usize)> = split
        .sets
        .iter()
        .map(|(key, value)| (*key, entry_size(key, value)))
        .collect();
    let total = sizes.iter().map(|(_, size)| *size).sum::<usize>();
    Ok((entry_sizes_json(&sizes)?, to_i64(total)))
}

/// The `size` and `sizes` columns of a new row holding `data`.
pub(super) fn sizes_of(data: &Data) -> Result<(i64, String), StoreError> {
    let sizes: Vec<(&str, usize)> = data
        .iter()
        .map(|(key, value)| (key.as_str(), entry_size(key, value)))
        .collect();
    let total = EMPTY_SIZE + sizes.iter().map(|(_, size)| *size).sum::<usize>();
    Ok((to_i64(total), entry_sizes_json(&sizes)?))
}

/// A size as a `BIGINT` (sizes never come near `i64::MAX`; saturating rather than failing).
fn to_i64(size: usize) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// A JSON object of entry sizes by key (the `sizes` column, or the part a write adds to it).
fn entry_sizes_json(sizes: &[(&str, usize)]) -> Result<String, StoreError> {
    use serde::ser::SerializeMap;
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut out);
    let mut map = serde::Serializer::serialize_map(&mut serializer, Some(sizes.len()))
        .map_err(StoreError::backend)?;
    for (key, size) in sizes {
        map.serialize_entry(key, size)
            .map_err(StoreError::backend)?;
    }
    map.end().map_err(StoreError::backend)?;
    String::from_utf8(out).map_err(StoreError::backend)
}

/// A row of the `load` statement as a [`Record`].
pub(super) fn decode(key: &StoreKey, row: &PgRow) -> Result<Record, StoreError> {
    let Json(data): Json<Value> = sql::column(key, "data", row.try_get("data"))?;
    let data = sql::data_from_value(key, data)?;
    let text = |name: &str| sql::column::<Option<String>, _>(key, name, row.try_get(name));
    let columns = Columns {
        created_at: sql::column(key, "created_at", row.try_get("created_at"))?,
        expires_at: sql::column(key, "expires_at", row.try_get("expires_at"))?,
        expiry: text("expiry")?,
        principal: text("principal")?,
        label: text("label")?,
        tied_at: sql::column(key, "tied_at", row.try_get("tied_at"))?,
    };
    sql::record_from(key, data, columns)
}

/// Reads a row of the `list` statement; `None` for a row whose key is not a store key (it
/// cannot be any session's: skipped rather than failing the whole list).
pub(super) fn listed(row: &PgRow) -> Result<Option<Listed>, StoreError> {
    let key: String = row.try_get("key").map_err(StoreError::backend)?;
    let Some(key) = StoreKey::from_hex(&key) else {
        return Ok(None);
    };
    let tied_at: Option<i64> = sql::column(&key, "tied_at", row.try_get("tied_at"))?;
    let created_at: i64 = sql::column(&key, "created_at", row.try_get("created_at"))?;
    let expires_at: i64 = sql::column(&key, "expires_at", row.try_get("expires_at"))?;
    Ok(Some(
        Listed::new(
            key,
            from_ms(created_at),
            from_ms(expires_at),
            sql::column(&key, "label", row.try_get("label"))?,
        )
        .with_tied_at(tied_at.map(from_ms)),
    ))
}
