//! The size of the session as this request sees it, for the size cap: counted the way the
//! stores count it ([`data_size`]), kept up to date change by change.

use serde_json::Value;

use super::State;
use crate::store::entry_size;
pub(super) use crate::store::EMPTY_SIZE as EMPTY;

/// The session's size if `key` is set to `value`. Computes the total once per request (in one
/// pass that leaves out the entry being replaced), then adjusts it per change.
pub(super) fn after_insert(state: &State, key: &str, value: &Value) -> usize {
    let others = match state.size {
        Some(size) => {
            let old = state.data.get(key).map_or(0, |old| entry_size(key, old));
            size.saturating_sub(old)
        }
        None => {
            EMPTY
                + state
                    .data
                    .iter()
                    .filter(|(k, _)| k.as_str() != key)
                    .map(|(k, v)| entry_size(k, v))
                    .sum::<usize>()
        }
    };
    others + entry_size(key, value)
}

/// The size after `key` (holding `value`) is removed, if the size is being tracked.
pub(super) fn after_remove(size: Option<usize>, key: &str, value: &Value) -> Option<usize> {
    size.map(|size| size.saturating_sub(entry_size(key, value)))
}
