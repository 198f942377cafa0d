//! Every value sessionware uses unless told otherwise, and the fixed bounds it works within,
//! in one place.
//!
//! The configurable ones name the builder method that changes them.
//!
//! ```
//! use std::time::Duration;
//! use sessionware::defaults;
//!
//! assert_eq!(defaults::ABSOLUTE_TIMEOUT, Duration::from_secs(7 * 24 * 3600));
//! assert_eq!(defaults::MAX_SESSION_SIZE, 256 * 1024);
//! ```

use std::time::Duration;

/// The server-side idle timeout of [`Expiry::OnSessionEnd`](crate::Expiry::OnSessionEnd)
/// sessions: 24 hours. Change it with
/// [`SessionLayer::with_session_end_idle_timeout`](crate::SessionLayer::with_session_end_idle_timeout).
pub const SESSION_END_IDLE: Duration = Duration::from_secs(24 * 3600);

/// The absolute timeout: 7 days after creation a session ends, however active. Change it with
/// [`SessionLayer::with_absolute_timeout`](crate::SessionLayer::with_absolute_timeout).
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The bound on a session's own absolute timeout
/// ([`Session::set_absolute_timeout`](crate::Session::set_absolute_timeout), for "keep me
/// signed in"): 30 days. Change it with
/// [`SessionLayer::with_max_absolute_timeout`](crate::SessionLayer::with_max_absolute_timeout).
pub const MAX_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// The cap on a session's serialized size: 256 KiB, far above what sessions usually hold, low
/// enough that a runaway handler cannot grow one without bound. Change it with
/// [`SessionLayer::with_max_session_size`](crate::SessionLayer::with_max_session_size).
pub const MAX_SESSION_SIZE: usize = 256 * 1024;

/// How stale a [`CachingStore`](crate::store::CachingStore)'s copy of a session may be: 2
/// seconds. Change it with
/// [`CachingStore::with_max_staleness`](crate::store::CachingStore::with_max_staleness).
pub const MAX_STALENESS: Duration = Duration::from_secs(2);

/// A read-only request extends a rolling deadline only once at least `1 / TOUCH_FRACTION` of
/// the idle period has passed since the deadline was last set (a quarter): with a 30-minute idle
/// timeout, a session read every second is written at most once every 7.5 minutes, and its real
/// idle timeout is between 22.5 and 30 minutes. Fixed.
pub const TOUCH_FRACTION: u32 = 4;

/// How many unread flash messages a session keeps: adding one more drops the oldest. (Requests
/// adding messages at the same moment can each keep theirs, so a session can briefly hold a
/// few more.) Fixed.
pub const MAX_UNREAD_FLASHES: usize = 50;

/// How many times [`Session::update`](crate::Session::update) reads again and reruns its
/// closure when other requests keep changing the key between its read and its write. Fixed.
pub const UPDATE_ATTEMPTS: usize = 16;

/// How long a [`SessionStore::cycle`](crate::store::SessionStore::cycle) marks the old key as
/// moved: longer than any request that loaded the session before the cycle takes to finish.
/// Part of the store contract.
pub const MOVED_MARKER: Duration = Duration::from_secs(60);
