//! How a session's hash reads back into a [`Record`]: the field names and their decoding.

use ::redis::Value as Reply;
use serde_json::Value;

use crate::clock::from_ms;
use crate::error::StoreError;
use crate::expiry::ExpirySettings;
use crate::id::StoreKey;
use crate::store::{Data, Owner, Record};

/// Prefix of the fields holding session values: `d:<name>`.
pub(super) const DATA_PREFIX: &[u8] = b"d:";
/// Prefix of metadata fields; unknown ones are ignored (reserved for later versions).
const META_PREFIX: &[u8] = b"m:";
/// Creation time, Unix ms.
const FIELD_CREATED: &[u8] = b"m:c";
/// Deadline, Unix ms.
const FIELD_EXPIRES: &[u8] = b"m:e";
/// The session's own expiry settings ([`ExpirySettings::encode`]); absent for the layer's.
const FIELD_EXPIRY: &[u8] = b"m:x";
/// The principal the session is tied to; absent for a session nobody logged in to.
const FIELD_PRINCIPAL: &[u8] = b"m:p";
/// The label of a tied session.
const FIELD_LABEL: &[u8] = b"m:l";
/// When the session was tied to its principal ([`Owner::tied_at`]), Unix ms; absent for a
/// session tied without one (or before this field existed).
const FIELD_TIED: &[u8] = b"m:t";
/// How many change sets were applied to the hash (`apply`, and the standalone `cycle`); absent
/// before the first. A cluster cycle releases the old key only if it is unchanged since read.
pub(super) const FIELD_VERSION: &[u8] = b"m:v";

/// The `m:v` field of an `HGETALL` reply, empty if there is none (the hash has seen no change
/// set, or is absent).
pub(super) fn version(reply: &Reply) -> Vec<u8> {
    let is_version = |field: &Reply| matches!(field, Reply::BulkString(name) if name.as_slice() == FIELD_VERSION);
    let found = match reply {
        Reply::Map(pairs) => pairs
            .iter()
            .find(|(field, _)| is_version(field))
            .map(|(_, value)| value),
        Reply::Array(items) => items
            .chunks_exact(2)
            .find(|pair| is_version(&pair[0]))
            .map(|pair| &pair[1]),
        _ => None,
    };
    match found {
        Some(Reply::BulkString(value)) => value.clone(),
        _ => Vec::new(),
    }
}

/// Decodes an `HGETALL` reply: `Ok(None)` for an absent or expired session (expired at `now`,
/// on the application's clock), [`StoreError::Corrupt`] for anything this store did not write.
pub(super) fn decode(reply: Reply, key: &StoreKey, now: i64) -> Result<Option<Record>, StoreError> {
    let pairs = pairs(reply)?;
    if pairs.is_empty() {
        return Ok(None);
    }
    let corrupt = |what: String| StoreError::Corrupt(format!("session {}: {what}", key.short()));

    let field = |name: &[u8]| {
        pairs
            .iter()
            .find(|(field, _)| field.as_slice() == name)
            .map(|(_, value)| value.as_slice())
    };
    let millis = |name: &[u8]| -> Result<i64, StoreError> {
        let text = field(name).ok_or_else(|| corrupt(format!("no `{}` field", show(name))))?;
        std::str::from_utf8(text)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| corrupt(format!("`{}` is not a timestamp", show(name))))
    };

    let expires_at = millis(FIELD_EXPIRES)?;
    if expires_at <= now {
        return Ok(None);
    }
    let created_at = millis(FIELD_CREATED)?;
    let expiry = match field(FIELD_EXPIRY) {
        None => ExpirySettings::default(),
        Some(text) => std::str::from_utf8(text)
            .ok()
            .and_then(ExpirySettings::decode)
            .ok_or_else(|| corrupt("`m:x` is not encoded expiry settings".to_owned()))?,
    };

    let text = |name: &[u8]| -> Result<Option<String>, StoreError> {
        field(name)
            .map(|bytes| {
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| corrupt(format!("`{}` is not UTF-8", show(name))))
            })
            .transpose()
    };
    let owner = match text(FIELD_PRINCIPAL)? {
        Some(principal) => {
            let mut owner = Owner::new(principal);
            owner.label = text(FIELD_LABEL)?;
            // Absent for a session stored before tie times were kept: it reads `None`.
            if field(FIELD_TIED).is_some() {
                owner.tied_at = Some(from_ms(millis(FIELD_TIED)?));
            }
            Some(owner)
        }
        None => None,
    };

    let mut data = Data::new();
    for (field, value) in &pairs {
        if let Some(name) = field.strip_prefix(DATA_PREFIX) {
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| corrupt("a value name is not UTF-8".to_owned()))?;
            let value: Value = serde_json::from_slice(value)
                .map_err(|e| corrupt(format!("value `{name}` is not JSON: {e}")))?;
            data.insert(name, value);
        } else if !field.starts_with(META_PREFIX) {
            return Err(corrupt(format!("unexpected field `{}`", show(field))));
        }
    }
    // A literal, not `Record::new`: that reads the clock for a `created_at` replaced at once.
    Ok(Some(Record {
        data,
        created_at: from_ms(created_at),
        expires_at: from_ms(expires_at),
        expiry,
        owner,
    }))
}

/// A field name for an error message (lossy, length-capped).
fn show(field: &[u8]) -> String {
    String::from_utf8_lossy(&field[..field.len().min(64)]).into_owned()
}

/// A hash field and its value, as raw bytes.
type Pair = (Vec<u8>, Vec<u8>);

/// The field/value pairs of an `HGETALL` reply: a flat array (RESP2) or a map (RESP3).
fn pairs(reply: Reply) -> Result<Vec<Pair>, StoreError> {
    let unexpected = || StoreError::backend("unexpected reply to HGETALL");
    match reply {
        Reply::Nil => Ok(Vec::new()),
        Reply::Map(pairs) => pairs
            .into_iter()
            .map(|(field, value)| {
                Ok((
                    bytes(field).ok_or_else(unexpected)?,
                    bytes(value).ok_or_else(unexpected)?,
                ))
            })
            .collect(),
        Reply::Array(items) => {
            if items.len() % 2 != 0 {
                return Err(unexpected());
            }
            let mut items = items.into_iter();
            let mut pairs = Vec::with_capacity(items.len() / 2);
            while let (Some(field), Some(value)) = (items.next(), items.next()) {
                pairs.push((
                    bytes(field).ok_or_else(unexpected)?,
                    bytes(value).ok_or_else(unexpected)?,
                ));
            }
            Ok(pairs)
        }
        _ => Err(unexpected()),
    }
}

fn bytes(reply: Reply) -> Option<Vec<u8>> {
    match reply {
        Reply::BulkString(bytes) => Some(bytes),
        Reply::SimpleString(text) => Some(text.into_bytes()),
        Reply::VerbatimString { text, .. } => Some(text.into_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> StoreKey {
        crate::SessionId::generate().store_key()
    }

    fn reply(pairs: &[(&str, &str)]) -> Reply {
        Reply::Array(
            pairs
                .iter()
                .flat_map(|(f, v)| {
                    [
                        Reply::BulkString(f.as_bytes().to_vec()),
                        Reply::BulkString(v.as_bytes().to_vec()),
                    ]
                })
                .collect(),
        )
    }

    /// `m:v` is read from either reply shape, and is empty when absent.
    #[test]
    fn version_is_read_or_empty() {
        let flat = reply(&[("m:e", "1"), ("m:v", "12"), ("d:m:v", "3")]);
        assert_eq!(version(&flat), b"12");
        let map = Reply::Map(vec![(
            Reply::BulkString(b"m:v".to_vec()),
            Reply::BulkString(b"7".to_vec()),
        )]);
        assert_eq!(version(&map), b"7");
        assert!(version(&reply(&[("m:e", "1")])).is_empty());
        assert!(version(&Reply::Nil).is_empty());
    }

    #[test]
    fn decodes_what_the_scripts_write() {
        let r = reply(&[
            ("m:c", "5"),
            ("m:e", "100"),
            ("m:x", "idle:60000"),
            ("d:a", "{\"x\":[1,null]}"),
            ("m:future", "?"),
        ]);
        let record = decode(r, &key(), 50).unwrap().unwrap();
        assert_eq!(record.created_at, from_ms(5));
        assert_eq!(record.expires_at, from_ms(100));
        assert_eq!(
            record.expiry.expiry,
            Some(crate::Expiry::OnInactivity(std::time::Duration::from_secs(
                60
            )))
        );
        assert_eq!(record.data.get("a"), Some(&json!({"x": [1, null]})));
        assert_eq!(record.owner, None);

        let r = reply(&[
            ("m:c", "5"),
            ("m:e", "100"),
            ("m:p", "ann"),
            ("m:l", "phone"),
            ("m:t", "4"),
        ]);
        let owner = decode(r, &key(), 50).unwrap().unwrap().owner.unwrap();
        assert_eq!(
            (
                owner.principal.as_str(),
                owner.label.as_deref(),
                owner.tied_at
            ),
            ("ann", Some("phone"), Some(from_ms(4)))
        );

        // Stored before tie times were kept.
        let r = reply(&[("m:c", "5"), ("m:e", "100"), ("m:p", "ann")]);
        let owner = decode(r, &key(), 50).unwrap().unwrap().owner.unwrap();
        assert_eq!(owner.tied_at, None);
    }

    #[test]
    fn expired_or_empty_is_absent() {
        assert!(decode(reply(&[]), &key(), 0).unwrap().is_none());
        assert!(decode(Reply::Nil, &key(), 0).unwrap().is_none());
        let r = reply(&[("m:c", "5"), ("m:e", "100"), ("d:a", "not json")]);
        assert!(decode(r, &key(), 100).unwrap().is_none());
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for pairs in [
            &[("m:c", "5"), ("m:e", "soon")][..],
            &[("m:e", "100")],
            &[("m:c", "5"), ("m:e", "100"), ("d:a", "{")],
            &[("m:c", "5"), ("m:e", "100"), ("m:x", "forever")],
            &[("m:c", "5"), ("m:e", "100"), ("stray", "1")],
            &[
                ("m:c", "5"),
                ("m:e", "100"),
                ("m:p", "ann"),
                ("m:t", "then"),
            ],
            &[("d:a", "1")],
        ] {
            match decode(reply(pairs), &key(), 50) {
                Err(StoreError::Corrupt(_)) => {}
                other => panic!("{pairs:?} decoded as {other:?}"),
            }
        }
        assert!(matches!(
            decode(Reply::Int(3), &key(), 0),
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            decode(Reply::Array(vec![Reply::Nil]), &key(), 0),
            Err(StoreError::Backend(_))
        ));
    }
}
