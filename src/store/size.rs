//! How big a session is, for the size cap: the one definition every store and the layer use.
//!
//! The size of a session's values is that of their JSON object in compact form, counted per
//! entry so that it can be kept up to date change by change: `2` for the braces, plus for each
//! entry its key as a JSON string (quotes and escapes included), its value's JSON text, and two
//! bytes for the `:` and the `,`. That is one byte more than the exact text of a non-empty
//! object (there is no comma after the last entry): the count never understates what is stored.

use std::io;

use serde_json::Value;

use super::Data;

/// Counts the bytes written to it.
struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = Counter(0);
    // Writing a string or a `Value` to a counter cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// The bytes one entry `key: value` adds to a session, as [`data_size`] counts them.
///
/// ```
/// use serde_json::json;
/// use sessionware::store::entry_size;
///
/// // `"a":1,`
/// assert_eq!(entry_size("a", &json!(1)), 6);
/// // A key that needs escaping counts as escaped: `"a\"b":1,`
/// assert_eq!(entry_size("a\"b", &json!(1)), 9);
/// ```
pub fn entry_size(key: &str, value: &Value) -> usize {
    string_len(key) + value_len(value) + 2
}

/// The length of `value`'s compact JSON text. Strings without characters to escape, integers,
/// booleans and `null` are counted directly (most session values are these); anything else
/// is serialized into a counter.
fn value_len(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::String(text) => string_len(text),
        Value::Number(number) => match (number.as_u64(), number.as_i64()) {
            (Some(n), _) => digits(n),
            (None, Some(n)) => 1 + digits(n.unsigned_abs()),
            _ => json_len(value),
        },
        Value::Array(_) | Value::Object(_) => json_len(value),
    }
}

/// The length of `text` as a JSON string: quotes, plus escapes if it needs any.
fn string_len(text: &str) -> usize {
    let plain = text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        text.len() + 2
    } else {
        json_len(text)
    }
}

/// Decimal digits of `n`.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// The size of a session's values, as the size cap counts it; `2` for an empty session.
///
/// It is their JSON object in compact form, counted per entry so that it can be kept up to date
/// change by change: `2` for the braces, plus for each entry its key as a JSON string (quotes
/// and escapes included), its value's JSON text, and two bytes for the `:` and the `,`: one
/// byte more than the exact text of a non-empty object, so the count never understates what
/// is stored.
///
/// ```
/// use serde_json::json;
/// use sessionware::store::{data_size, Data};
///
/// assert_eq!(data_size(&Data::new()), 2);
/// let data: Data = [("a".to_owned(), json!(1))].into();
/// assert_eq!(data_size(&data), 8); // `{"a":1}` and one comma
/// ```
pub fn data_size(data: &Data) -> usize {
    EMPTY + data.iter().map(|(k, v)| entry_size(k, v)).sum::<usize>()
}

/// The size of an empty session: `{}`.
pub(crate) const EMPTY: usize = 2;

/// The size of a session's values after `changes`, from the entries it holds before them;
/// `Err(size)` if that is over the change set's cap. One pass: each entry kept as it is counts
/// once, each key the change set sets counts with its new value. Through
/// [`ChangeSet::check_size`](super::ChangeSet::check_size), for stores that keep parsed values
/// without their size (`MemoryStore` keeps the size, and counts only what a change touches).
pub(crate) fn check_after<'v>(
    changes: &super::ChangeSet,
    current: impl Iterator<Item = (&'v str, &'v Value)>,
) -> Result<(), usize> {
    let Some(cap) = changes.size_cap() else {
        return Ok(());
    };
    let changed = |key: &str| changes.updates.contains_key(key);
    let kept: usize = if changes.clear {
        0
    } else {
        current
            .filter(|(key, _)| !changed(key))
            .map(|(key, value)| entry_size(key, value))
            .sum()
    };
    let set: usize = changes
        .updates
        .iter()
        .filter_map(|(key, change)| change.value().map(|value| entry_size(key, value)))
        .sum();
    let size = EMPTY.saturating_add(kept).saturating_add(set);
    if size > cap {
        Err(size)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{string_len, value_len};

    #[test]
    fn the_fast_paths_count_what_serde_json_writes() {
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(9),
            json!(10),
            json!(-1),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!(""),
            json!("plain text, żółć 😀 \u{7f}"),
            json!("quote \" backslash \\ newline \n tab \t nul \u{0}"),
            json!([1, "a"]),
            json!({"k": [true]}),
        ];
        for value in &values {
            assert_eq!(value_len(value), value.to_string().len(), "{value}");
        }
        for key in ["counter", "with \"quote\"", "back\\slash", "\u{1}", ""] {
            let written = serde_json::to_string(key).unwrap().len();
            assert_eq!(string_len(key), written, "{key:?}");
        }
    }
}
