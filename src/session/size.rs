//! The size of the session as this request sees it, for the size cap: counted the way the
//! stores count it ([`data_size`]), kept up to date change by change.

use serde_json::Value;

use super::State;
pub(super) use crate::store::EMPTY_SIZE as EMPTY;
use crate::store::{data_size, entry_size};

/// The session's size if `key` is set to `value`. Computes the total once per request, then
/// adjusts it per change.
pub(super) fn after_insert(state: &mut State, key: &str, value: &Value) -> usize {
    let current = match state.size {
        Some(size) => size,
        None => data_size(&state.data),
    };
    state.size = Some(current);
    let old = state.data.get(key).map_or(0, |old| entry_size(key, old));
    current.saturating_sub(old) + entry_size(key, value)
}

/// The size after `key` (holding `value`) is removed, if the size is being tracked.
pub(super) fn after_remove(size: Option<usize>, key: &str, value: &Value) -> Option<usize> {
    size.map(|size| size.saturating_sub(entry_size(key, value)))
}
