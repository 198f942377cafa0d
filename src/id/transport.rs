//! Carrying the session id: reading it from a request, writing it into a response.
//!
//! The id travels in a cookie and, if configured, in a header, encoded one of three ways
//! ([`Protection`]): plain, signed or private, the latter two by the `cookie` crate (HMAC-SHA256,
//! AES-256-GCM). Reading tries the current key, then each previous key; a value verified with a
//! previous key is re-issued under the current one. Anything that does not verify and parse is
//! treated as "no id": the request gets a fresh session.

use std::borrow::Cow;
use std::fmt::Write as _;

use cookie::{Cookie, CookieJar};
use http::{HeaderMap, HeaderValue};

use crate::config::Protection;
use crate::config::Settings;
use crate::id::SessionId;

/// Longest cookie value worth looking at. An encrypted id is under 100 bytes; anything much
/// longer is garbage, refused before any crypto runs on it.
const MAX_VALUE_LEN: usize = 256;

/// The raw id-carrying header values of a request, captured when it enters the layer and only
/// parsed and verified if the handler uses the session.
///
/// HTTP/1.1 clients send one `Cookie` header, HTTP/2 clients may split it into several: the
/// first is kept inline so the common case allocates nothing.
#[derive(Default)]
pub(crate) struct Incoming {
    cookie: Option<HeaderValue>,
    more_cookies: Vec<HeaderValue>,
    header: IdHeader,
}

impl Incoming {
    /// Whether the request carries its session id in the id header (a client that is not a
    /// browser page: a browser never adds that header on its own, so it carries no ambient
    /// authority a forged cross-site request could ride on).
    pub(crate) fn id_in_header(&self) -> bool {
        matches!(self.header, IdHeader::One(_))
    }
}

/// The counts only: the values may hold an id, which must never reach a log.
impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("cookie_headers", &self.cookies().count())
            .field("id_header", &self.header)
            .finish()
    }
}

/// What the request sent in the id header (when one is configured).
#[derive(Default)]
enum IdHeader {
    /// None, or only empty ones: the cookie is used.
    #[default]
    Absent,
    One(HeaderValue),
    /// Two or more different non-empty values: like two different id cookies, neither is used.
    Conflicting,
}

impl std::fmt::Debug for IdHeader {
    /// Which case, without the value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IdHeader::Absent => "Absent",
            IdHeader::One(_) => "One(..)",
            IdHeader::Conflicting => "Conflicting",
        })
    }
}

impl IdHeader {
    fn capture(headers: &HeaderMap, name: &http::HeaderName) -> Self {
        let mut found = IdHeader::Absent;
        // An empty value is what a client sends after the layer told it the session ended (the
        // header is emptied on removal): it means "no id", not a refused one.
        for value in headers.get_all(name).iter().filter(|v| !v.is_empty()) {
            found = match found {
                IdHeader::Absent => IdHeader::One(value.clone()),
                IdHeader::One(first) if first == value => IdHeader::One(first),
                _ => return IdHeader::Conflicting,
            };
        }
        found
    }
}

impl Incoming {
    pub(crate) fn capture(headers: &HeaderMap, settings: &Settings) -> Self {
        let mut cookies = headers.get_all(http::header::COOKIE).iter();
        Self {
            cookie: cookies.next().cloned(),
            more_cookies: cookies.cloned().collect(),
            header: settings
                .header
                .as_ref()
                .map_or(IdHeader::Absent, |name| IdHeader::capture(headers, name)),
        }
    }

    fn cookies(&self) -> impl Iterator<Item = &HeaderValue> {
        self.cookie.iter().chain(&self.more_cookies)
    }
}

/// What a request says about its session.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadId {
    /// No cookie (or header) of ours.
    Absent,
    /// A valid id. `reissue` is set when it was verified with a previous key.
    Valid { id: SessionId, reissue: bool },
    /// Something was sent but refused; the reason is for logs.
    Rejected(&'static str),
}

/// Finds, verifies and parses the id of a request. The header, when configured and present, wins
/// over the cookie.
pub(crate) fn read_id(settings: &Settings, incoming: &Incoming) -> ReadId {
    match &incoming.header {
        IdHeader::One(value) => return decode(settings, value.as_bytes()),
        IdHeader::Conflicting => return ReadId::Rejected("duplicate session id headers"),
        IdHeader::Absent => {}
    }
    let name = settings.cookie_name.as_bytes();
    let mut found: Option<&[u8]> = None;
    for header in incoming.cookies() {
        for pair in header.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() != name {
                continue;
            }
            let value = pair[eq + 1..].trim_ascii();
            match found {
                // Two different values under our name: a stale cookie from another path or a
                // cookie planted from a sibling domain. Choosing either could bind the user to
                // an attacker's session, so neither is used.
                Some(first) if first != value => {
                    return ReadId::Rejected("duplicate session cookies")
                }
                _ => found = Some(value),
            }
        }
    }
    found.map_or(ReadId::Absent, |value| decode(settings, value))
}

fn decode(settings: &Settings, raw: &[u8]) -> ReadId {
    if raw.is_empty() {
        return ReadId::Rejected("empty session id");
    }
    if raw.len() > MAX_VALUE_LEN {
        return ReadId::Rejected("oversized session id");
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return ReadId::Rejected("session id is not UTF-8");
    };
    let signed = match settings.protection {
        // The common case, without a copy: the id is checked as it lies in the header.
        Protection::Plain => return parsed(text, 0),
        Protection::Signed(_) => true,
        Protection::Private(_) => false,
    };
    let jar = CookieJar::new();
    let opened = settings.keys().enumerate().find_map(|(index, key)| {
        let cookie = Cookie::new(settings.cookie_name.clone(), text.to_owned());
        let opened = if signed {
            jar.signed(key).verify(cookie)
        } else {
            jar.private(key).decrypt(cookie)
        };
        opened.map(|c| (c.value().to_owned(), index))
    });
    match opened {
        Some((value, key_index)) => parsed(&value, key_index),
        None => ReadId::Rejected("session id failed verification"),
    }
}

/// The verdict on a verified cookie value; `key_index` > 0 means a previous key verified it.
fn parsed(value: &str, key_index: usize) -> ReadId {
    match SessionId::parse(value) {
        Some(id) => ReadId::Valid {
            id,
            reissue: key_index > 0,
        },
        None => ReadId::Rejected("malformed session id"),
    }
}

/// The value written to the client for `id`: the id itself, signed or encrypted.
pub(crate) fn encode<'a>(settings: &Settings, id: &'a SessionId) -> Cow<'a, str> {
    let cookie = || Cookie::new(settings.cookie_name.clone(), id.expose().to_owned());
    let mut jar = CookieJar::new();
    match &settings.protection {
        // A plain cookie is the id itself: nothing to build.
        Protection::Plain => return Cow::Borrowed(id.expose()),
        Protection::Signed(key) => jar.signed_mut(key).add(cookie()),
        Protection::Private(key) => jar.private_mut(key).add(cookie()),
    }
    Cow::Owned(
        jar.get(&settings.cookie_name)
            .map_or_else(|| id.expose().to_owned(), |c| c.value().to_owned()),
    )
}

/// The `Set-Cookie` value carrying `value`, with `Max-Age` in seconds if the session has one.
///
/// The attributes are the same on every response, so they were formatted once, by the `cookie`
/// crate, when the layer was applied ([`Settings`]); each response only glues name, value and
/// `Max-Age` around them: the same text the crate would write (it puts `Max-Age` after every
/// attribute we use), at a fraction of the cost.
pub(crate) fn set_cookie(
    settings: &Settings,
    value: &str,
    max_age: Option<i64>,
) -> Option<HeaderValue> {
    let attributes = &settings.cookie_attributes;
    let max_age = max_age.map(|seconds| seconds.max(0));
    // The exact length: a `String` with spare room would cost the header value an allocation
    // of its own (`Bytes` keeps a full buffer as is, and wraps any other).
    let max_age_len = max_age.map_or(0, |seconds| "; Max-Age=".len() + digits(seconds));
    let mut text = String::with_capacity(
        settings.cookie_name.len() + 1 + value.len() + attributes.len() + max_age_len,
    );
    text.push_str(&settings.cookie_name);
    text.push('=');
    text.push_str(value);
    text.push_str(attributes);
    if let Some(seconds) = max_age {
        // Writing to a `String` cannot fail.
        let _ = write!(text, "; Max-Age={seconds}");
    }
    let value = HeaderValue::try_from(text);
    if value.is_err() {
        tracing::error!(
            "session cookie is not a valid header value; check the cookie name, path and domain"
        );
    }
    value.ok()
}

/// How many decimal digits `n` (not negative) is written with.
fn digits(n: i64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cookie::Key;

    use super::*;
    use crate::config::Config;

    fn incoming(cookie: &str) -> Incoming {
        Incoming {
            cookie: Some(HeaderValue::from_str(cookie).unwrap()),
            ..Incoming::default()
        }
    }

    #[test]
    fn debug_output_never_shows_the_values() {
        let incoming = Incoming {
            cookie: Some(HeaderValue::from_static("id=secret-1")),
            more_cookies: vec![HeaderValue::from_static("id=secret-2")],
            header: IdHeader::One(HeaderValue::from_static("secret-3")),
        };
        let shown = format!("{incoming:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains('2') && shown.contains("One"), "{shown}");
    }

    fn settings(protection: Protection, previous_keys: Vec<Key>) -> Settings {
        let config = Config {
            protection,
            previous_keys,
            ..Config::default()
        };
        Settings::new(
            &config,
            Arc::default(),
            Arc::new(crate::MemoryStore::default()),
            &crate::events::Observer::new(None, "test"),
        )
    }

    #[test]
    fn plain_id_is_found_among_other_cookies() {
        let settings = settings(Protection::Plain, Vec::new());
        let id = SessionId::generate();
        let got = read_id(
            &settings,
            &incoming(&format!("a=b; id={}; c=d", id.expose())),
        );
        assert_eq!(got, ReadId::Valid { id, reissue: false });
    }

    /// `set_cookie` sizes its buffer with `digits`: it must agree with how numbers are written.
    #[test]
    fn digits_counts_what_display_writes() {
        let mut samples = vec![0, 1, 9, 10, 11, 99, 100, 86_400, i64::MAX];
        samples.extend((0..19).map(|power| 10_i64.pow(power) - 1));
        for n in samples {
            assert_eq!(digits(n), n.to_string().len(), "{n}");
        }
    }

    #[test]
    fn signed_and_private_values_round_trip_and_rotate() {
        let kinds: [fn(Key) -> Protection; 2] = [Protection::Signed, Protection::Private];
        for protection in kinds {
            let old = Key::generate();
            let id = SessionId::generate();
            let value = encode(&settings(protection(old.clone()), Vec::new()), &id);
            assert_ne!(value, id.expose());
            let same = settings(protection(old.clone()), Vec::new());
            let got = read_id(&same, &incoming(&format!("id={value}")));
            assert_eq!(
                got,
                ReadId::Valid {
                    id: id.clone(),
                    reissue: false
                }
            );

            let rotated = settings(protection(Key::generate()), Vec::new());
            let got = read_id(&rotated, &incoming(&format!("id={value}")));
            assert!(matches!(got, ReadId::Rejected(_)));
            let with_old = settings(protection(Key::generate()), vec![old]);
            let got = read_id(&with_old, &incoming(&format!("id={value}")));
            assert_eq!(got, ReadId::Valid { id, reissue: true });
        }
    }

    #[test]
    fn a_plain_id_is_refused_where_a_signed_one_is_expected() {
        let settings = settings(Protection::Signed(Key::generate()), Vec::new());
        let id = SessionId::generate();
        let got = read_id(&settings, &incoming(&format!("id={}", id.expose())));
        assert!(matches!(got, ReadId::Rejected(_)));
    }
}
