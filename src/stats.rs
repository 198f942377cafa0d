//! Counts of suspicious ids, for alerting on session-id guessing.

use std::sync::atomic::{AtomicU64, Ordering};

/// How many session ids a [`SessionLayer`](crate::SessionLayer) refused or did not find, since it
/// was built. Get it with [`SessionLayer::stats`](crate::SessionLayer::stats).
///
/// Each count also goes out as a `tracing` event with target `sessionware::security`, carrying
/// the running total, so both a metrics scraper and a log alert can watch for guessing:
/// - `session id refused` (warn): the cookie or header was malformed, empty, oversized,
///   duplicated with different values, not UTF-8, or failed signature or decryption (field
///   `reason`, and `refused_total`);
/// - `unknown session id` (info): a well-formed, verified id that no live session has: expired,
///   destroyed, or guessed (field `unknown_total`). With signed or private cookies a guessed id
///   cannot get this far.
///
/// Neither event carries the id; at most an 8-hex-digit prefix of its hash.
///
/// ```
/// use sessionware::{MemoryStore, SessionLayer};
///
/// let layer = SessionLayer::new(MemoryStore::default());
/// let stats = layer.stats();
/// // ... serve; later, from a metrics endpoint:
/// assert_eq!(stats.refused_ids(), 0);
/// assert_eq!(stats.unknown_ids(), 0);
/// ```
#[derive(Debug, Default)]
pub struct SessionStats {
    refused: AtomicU64,
    unknown: AtomicU64,
}

impl SessionStats {
    /// Ids refused before any store call: malformed, tampered, duplicated.
    pub fn refused_ids(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Well-formed ids with no live session behind them.
    pub fn unknown_ids(&self) -> u64 {
        self.unknown.load(Ordering::Relaxed)
    }

    pub(crate) fn refused(&self, reason: &'static str) {
        let total = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(
            target: "sessionware::security",
            reason,
            refused_total = total,
            "session id refused; starting a fresh session"
        );
    }

    pub(crate) fn unknown(&self, session: &str) {
        let total = self.unknown.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(
            target: "sessionware::security",
            session,
            unknown_total = total,
            "unknown session id (expired, destroyed or guessed); starting a fresh session"
        );
    }
}
