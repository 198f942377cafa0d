//! Serialized size of a session, for the size cap.
//!
//! The size is that of the session's values as one JSON object, which is what the stores keep:
//! each entry counts its key, its value's JSON text and four bytes of punctuation.

use std::io;

use serde_json::Value;

use super::State;
use crate::store::Data;

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

/// Bytes `key: value` takes in the session's JSON object.
pub(super) fn of_entry(key: &str, value: &Value) -> usize {
    let mut counter = Counter(0);
    // Writing a `Value` to a counter cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    key.len() + counter.0 + 4
}

fn of_data(data: &Data) -> usize {
    2 + data.iter().map(|(k, v)| of_entry(k, v)).sum::<usize>()
}

/// The session's size if `key` is set to `value`. Computes the total once per request, then
/// adjusts it per change.
pub(super) fn after_insert(state: &mut State, key: &str, value: &Value) -> usize {
    let current = match state.size {
        Some(size) => size,
        None => of_data(&state.data),
    };
    state.size = Some(current);
    let old = state.data.get(key).map_or(0, |old| of_entry(key, old));
    current.saturating_sub(old) + of_entry(key, value)
}
