//! The one clock of the crate, and the conversions between the public time type
//! ([`SystemTime`]) and the Unix milliseconds that deadlines are stored and compared in.
//!
//! The public API speaks [`SystemTime`] for instants and [`Duration`] for spans. Inside, the
//! deadline arithmetic and every store work in whole Unix milliseconds (an `i64`): that is the
//! precision stores keep, and the form SQL columns, Redis TTLs and Lua scripts compare.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current time, truncated to the millisecond: the clock of every deadline, in the layer
/// and in every store (which compare it with `expires_at`). The one way to get "now" in this
/// crate.
///
/// Truncated so that a time read from a store (which keeps milliseconds) compares equal to the
/// time that was written.
///
/// ```
/// use std::time::{Duration, SystemTime};
///
/// let now = sessionware::store::now();
/// assert!(now <= SystemTime::now());
/// assert!(SystemTime::now().duration_since(now).unwrap() < Duration::from_secs(1));
/// ```
pub fn now() -> SystemTime {
    from_ms(now_ms())
}

/// The current time in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

/// `at` in whole Unix milliseconds (rounded down); a time before 1970 reads as 0, one past the
/// year 292 million as `i64::MAX`.
pub(crate) fn to_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The instant `ms` Unix milliseconds after 1970 (a negative count reads as 1970).
pub(crate) fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A span in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_trip_and_out_of_range_times_saturate() {
        for ms in [0, 1, 1_700_000_000_123, i64::MAX / 2] {
            assert_eq!(to_ms(from_ms(ms)), ms);
        }
        assert_eq!(from_ms(-5), UNIX_EPOCH);
        assert_eq!(to_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(to_ms(UNIX_EPOCH + Duration::from_nanos(1_999_999)), 1);
    }
}
