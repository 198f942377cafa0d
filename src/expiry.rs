//! When sessions end: the [`Expiry`] policy and the deadline arithmetic behind it.
//!
//! Every session carries one server-side deadline, `expires_at` (Unix milliseconds), that the
//! store enforces on every load and write. It is the earlier of:
//! - the policy's deadline: `now + idle` for the rolling policies, a fixed instant for
//!   [`Expiry::AtDateTime`];
//! - the absolute deadline: creation time plus the layer's absolute timeout, which no activity
//!   extends (OWASP's "absolute timeout").
//!
//! The cookie's `Max-Age` only tells the browser when to forget the id; it is never trusted.

use std::time::{Duration, SystemTime};

use crate::clock::{from_ms, millis, to_ms};
use crate::defaults;

/// How long a session lives.
///
/// Set the default for every session with
/// [`SessionLayer::with_expiry`](crate::SessionLayer::with_expiry), or per session with
/// [`Session::set_expiry`](crate::Session::set_expiry) (for example a longer
/// [`OnInactivity`](Expiry::OnInactivity) after "remember me").
///
/// ```
/// use std::time::Duration;
/// use sessionware::{Expiry, MemoryStore, SessionLayer};
///
/// // Sessions end after 30 idle minutes, and in any case 12 hours after they were created.
/// let layer = SessionLayer::new(MemoryStore::default())
///     .with_expiry(Expiry::OnInactivity(Duration::from_secs(30 * 60)))
///     .with_absolute_timeout(Duration::from_secs(12 * 3600));
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Expiry {
    /// A browser-session cookie (no `Max-Age`): the browser drops it when it closes. The server
    /// still ends the session after an idle period, set by
    /// [`SessionLayer::with_session_end_idle_timeout`](crate::SessionLayer::with_session_end_idle_timeout)
    /// (default [`SESSION_END_IDLE`](crate::defaults::SESSION_END_IDLE)), because browsers that restore tabs may never
    /// "end" the session. The default.
    #[default]
    OnSessionEnd,
    /// Rolling expiry: the session ends after this long without a request that uses it. Reads
    /// extend the deadline at most once per [`TOUCH_FRACTION`](crate::defaults::TOUCH_FRACTION) of the period, so read-mostly
    /// traffic does not write to the store on every request.
    OnInactivity(Duration),
    /// The session ends at this instant, whatever the activity.
    AtDateTime(SystemTime),
}

/// A session's own expiry settings, saved with it: what a handler chose with
/// [`Session::set_expiry`](crate::Session::set_expiry) and
/// [`Session::set_absolute_timeout`](crate::Session::set_absolute_timeout). `None` means the
/// layer's setting; the default is the layer's for both.
///
/// Stores keep it as one short text ([`encode`](Self::encode)), so it needs no column or field
/// of its own per setting.
///
/// ```
/// use std::time::Duration;
/// use sessionware::{Expiry, ExpirySettings};
///
/// // "Keep me signed in": 30 idle days, at most 30 days in all.
/// let month = Duration::from_secs(30 * 24 * 3600);
/// let settings = ExpirySettings::from(Some(Expiry::OnInactivity(month)))
///     .with_absolute_timeout(Some(month));
/// let text = settings.encode().unwrap();
/// assert_eq!(text, "idle:2592000000;abs:2592000000");
/// assert_eq!(ExpirySettings::decode(&text), Some(settings));
/// assert_eq!(ExpirySettings::default().encode(), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExpirySettings {
    /// The session's own [`Expiry`]; `None` for the layer's
    /// ([`SessionLayer::with_expiry`](crate::SessionLayer::with_expiry)).
    pub expiry: Option<Expiry>,
    /// The session's own absolute timeout, counted from its creation; `None` for the layer's
    /// ([`SessionLayer::with_absolute_timeout`](crate::SessionLayer::with_absolute_timeout)).
    /// The layer bounds it by
    /// [`SessionLayer::with_max_absolute_timeout`](crate::SessionLayer::with_max_absolute_timeout).
    pub absolute_timeout: Option<Duration>,
}

impl From<Option<Expiry>> for ExpirySettings {
    /// Settings with this expiry and the layer's absolute timeout.
    fn from(expiry: Option<Expiry>) -> Self {
        Self {
            expiry,
            absolute_timeout: None,
        }
    }
}

impl ExpirySettings {
    /// The same settings with this absolute timeout (`None`: the layer's).
    #[must_use]
    pub fn with_absolute_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.absolute_timeout = timeout;
        self
    }

    /// Whether both settings are the layer's.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The stored form: [`Expiry::encode`], then `;abs:<ms>` for an absolute timeout (just
    /// `abs:<ms>` without an expiry); `None` when both are the layer's (stores keep no value).
    pub fn encode(&self) -> Option<String> {
        let abs = self
            .absolute_timeout
            .map(|timeout| format!("abs:{}", millis(timeout)));
        match (self.expiry.map(|e| e.encode()), abs) {
            (None, None) => None,
            (Some(expiry), None) => Some(expiry),
            (None, Some(abs)) => Some(abs),
            (Some(expiry), Some(abs)) => Some(format!("{expiry};{abs}")),
        }
    }

    /// Reads what [`encode`](Self::encode) wrote (and what 0.1 wrote: an [`Expiry`] alone);
    /// `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let mut settings = Self::default();
        for part in text.split(';') {
            if let Some(ms) = part.strip_prefix("abs:") {
                if settings.absolute_timeout.is_some() {
                    return None;
                }
                settings.absolute_timeout = Some(Duration::from_millis(ms.parse().ok()?));
            } else {
                if settings.expiry.is_some() {
                    return None;
                }
                settings.expiry = Some(Expiry::decode(part)?);
            }
        }
        Some(settings)
    }
}

/// The deadline rules of one layer, applied to one session.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadlines {
    pub(crate) session_end_idle: Duration,
    pub(crate) absolute: Duration,
    /// The bound on a session's own absolute timeout.
    pub(crate) max_absolute: Duration,
}

impl Deadlines {
    /// The idle period of a rolling policy, `None` for a fixed one.
    pub(crate) fn idle(&self, expiry: Expiry) -> Option<Duration> {
        match expiry {
            Expiry::OnSessionEnd => Some(self.session_end_idle),
            Expiry::OnInactivity(idle) => Some(idle),
            Expiry::AtDateTime(_) => None,
        }
    }

    /// The absolute timeout of a session with these settings: its own (bounded by the layer's
    /// maximum), or the layer's.
    pub(crate) fn absolute(&self, settings: &ExpirySettings) -> Duration {
        settings
            .absolute_timeout
            .map_or(self.absolute, |own| own.min(self.max_absolute))
    }

    /// The deadline a session created at `created_at` gets if it is saved at `now`.
    pub(crate) fn expires_at(
        &self,
        expiry: Expiry,
        absolute: Duration,
        created_at: i64,
        now: i64,
    ) -> i64 {
        let policy = match (expiry, self.idle(expiry)) {
            (Expiry::AtDateTime(at), _) => to_ms(at),
            (_, Some(idle)) => now.saturating_add(millis(idle)),
            (_, None) => now,
        };
        policy.min(created_at.saturating_add(millis(absolute)))
    }

    /// Whether a read at `now` should move the deadline from `current` to `next`: only when it
    /// gains at least a [`TOUCH_FRACTION`](crate::defaults::TOUCH_FRACTION) of the idle period.
    pub(crate) fn touch_due(&self, expiry: Expiry, current: i64, next: i64) -> bool {
        match self.idle(expiry) {
            Some(idle) => {
                next.saturating_sub(current) >= millis(idle) / i64::from(defaults::TOUCH_FRACTION)
            }
            None => false,
        }
    }
}

/// The store encoding of a per-session [`Expiry`]: a short text, documented for operators.
///
/// `"end"` for [`Expiry::OnSessionEnd`], `"idle:<ms>"` for [`Expiry::OnInactivity`], `"at:<unix
/// ms>"` for [`Expiry::AtDateTime`].
impl Expiry {
    /// Encodes the policy for storage (see the type docs for the format).
    ///
    /// ```
    /// use std::time::Duration;
    /// use sessionware::Expiry;
    ///
    /// let e = Expiry::OnInactivity(Duration::from_secs(60));
    /// assert_eq!(e.encode(), "idle:60000");
    /// assert_eq!(Expiry::decode(&e.encode()), Some(e));
    /// ```
    pub fn encode(&self) -> String {
        match self {
            Expiry::OnSessionEnd => "end".to_owned(),
            Expiry::OnInactivity(d) => format!("idle:{}", millis(*d)),
            Expiry::AtDateTime(at) => format!("at:{}", to_ms(*at)),
        }
    }

    /// Decodes what [`Expiry::encode`] wrote; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        if text == "end" {
            return Some(Expiry::OnSessionEnd);
        }
        if let Some(ms) = text.strip_prefix("idle:") {
            return Some(Expiry::OnInactivity(Duration::from_millis(
                ms.parse().ok()?,
            )));
        }
        let ms: i64 = text.strip_prefix("at:")?.parse().ok()?;
        (ms >= 0).then(|| Expiry::AtDateTime(from_ms(ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600 * 1000;

    fn rules() -> Deadlines {
        Deadlines {
            session_end_idle: Duration::from_secs(3600),
            absolute: Duration::from_secs(24 * 3600),
            max_absolute: Duration::from_secs(48 * 3600),
        }
    }

    const ABS: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn rolling_deadline_is_capped_by_the_absolute_one() {
        let idle = Expiry::OnInactivity(Duration::from_secs(60));
        assert_eq!(rules().expires_at(idle, ABS, 0, 1000), 61_000);
        assert_eq!(rules().expires_at(idle, ABS, 0, DAY - 1000), DAY);
        assert_eq!(
            rules().expires_at(Expiry::OnSessionEnd, ABS, 0, 0),
            3_600_000
        );
    }

    #[test]
    fn a_session_may_live_longer_than_the_default_but_not_past_the_maximum() {
        let own = |timeout| ExpirySettings::default().with_absolute_timeout(Some(timeout));
        assert_eq!(rules().absolute(&ExpirySettings::default()), ABS);
        assert_eq!(rules().absolute(&own(2 * ABS)), 2 * ABS);
        assert_eq!(
            rules().absolute(&own(10 * ABS)),
            2 * ABS,
            "bounded by the maximum"
        );
        let idle = Expiry::OnInactivity(Duration::from_secs(60));
        let absolute = rules().absolute(&own(2 * ABS));
        assert_eq!(rules().expires_at(idle, absolute, 0, DAY), DAY + 60_000);
    }

    #[test]
    fn fixed_deadline_ignores_activity() {
        let at = from_ms(100_000);
        let e = Expiry::AtDateTime(at);
        assert_eq!(rules().expires_at(e, ABS, 0, 5), 100_000);
        assert_eq!(rules().expires_at(e, ABS, 0, 50_000), 100_000);
        assert!(!rules().touch_due(e, 0, DAY));
    }

    #[test]
    fn touch_waits_for_a_quarter_of_the_idle_period() {
        let e = Expiry::OnInactivity(Duration::from_secs(100));
        assert!(!rules().touch_due(e, 100_000, 124_999));
        assert!(rules().touch_due(e, 100_000, 125_000));
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let at = from_ms(1_700_000_000_000);
        for e in [
            Expiry::OnSessionEnd,
            Expiry::OnInactivity(Duration::from_millis(1500)),
            Expiry::AtDateTime(at),
        ] {
            assert_eq!(Expiry::decode(&e.encode()), Some(e));
        }
        for bad in ["", "idle:", "idle:-1", "at:x", "forever"] {
            assert_eq!(Expiry::decode(bad), None, "{bad}");
        }
        let abs = Some(Duration::from_millis(1500));
        for settings in [
            ExpirySettings::default().with_absolute_timeout(abs),
            ExpirySettings::from(Some(Expiry::OnSessionEnd)).with_absolute_timeout(abs),
            ExpirySettings::from(Some(Expiry::AtDateTime(at))),
        ] {
            assert_eq!(
                ExpirySettings::decode(&settings.encode().unwrap()),
                Some(settings)
            );
        }
        for bad in ["", ";", "end;end", "abs:1;abs:2", "abs:-1", "end;forever"] {
            assert_eq!(ExpirySettings::decode(bad), None, "{bad}");
        }
    }
}
