//! Carrying the session id: reading it from a request, writing it into a response.
//!
//! The id travels in a cookie and, if configured, in a header, encoded one of three ways
//! ([`Protection`]): plain, signed or private, the latter two by the `cookie` crate (HMAC-SHA256,
//! AES-256-GCM). Reading tries the current key, then each previous key; a value verified with a
//! previous key is re-issued under the current one. Anything that does not verify and parse is
//! treated as "no id": the request gets a fresh session.

use std::fmt::Write as _;

use ::cookie::{Cookie, CookieJar};
use http::{HeaderMap, HeaderValue};

use crate::config::{Config, Protection};
use crate::id::SessionId;

/// Longest cookie value worth looking at. An encrypted id is under 100 bytes; anything much
/// longer is garbage, refused before any crypto runs on it.
const MAX_VALUE_LEN: usize = 256;

/// The raw id-carrying header values of a request, captured when it enters the layer and only
/// parsed and verified if the handler uses the session.
///
/// HTTP/1.1 clients send one `Cookie` header, HTTP/2 clients may split it into several: the
/// first is kept inline so the common case allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Incoming {
    cookie: Option<HeaderValue>,
    more_cookies: Vec<HeaderValue>,
    header: IdHeader,
}

/// What the request sent in the id header (when one is configured).
#[derive(Debug, Default)]
enum IdHeader {
    /// None, or only empty ones: the cookie is used.
    #[default]
    Absent,
    One(HeaderValue),
    /// Two or more different non-empty values: like two different id cookies, neither is used.
    Conflicting,
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
    pub(crate) fn capture(headers: &HeaderMap, config: &Config) -> Self {
        let mut cookies = headers.get_all(http::header::COOKIE).iter();
        Self {
            cookie: cookies.next().cloned(),
            more_cookies: cookies.cloned().collect(),
            header: config
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
pub(crate) fn read_id(config: &Config, incoming: &Incoming) -> ReadId {
    match &incoming.header {
        IdHeader::One(value) => return decode(config, value.as_bytes()),
        IdHeader::Conflicting => return ReadId::Rejected("duplicate session id headers"),
        IdHeader::Absent => {}
    }
    let name = config.cookie_name.as_bytes();
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
    found.map_or(ReadId::Absent, |value| decode(config, value))
}

fn decode(config: &Config, raw: &[u8]) -> ReadId {
    if raw.is_empty() {
        return ReadId::Rejected("empty session id");
    }
    if raw.len() > MAX_VALUE_LEN {
        return ReadId::Rejected("oversized session id");
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return ReadId::Rejected("session id is not UTF-8");
    };
    let (value, key_index) = match config.protection {
        // The common case, without a copy: the id is checked as it lies in the header.
        Protection::Plain => return parsed(text, 0),
        Protection::Signed | Protection::Private => {
            let jar = CookieJar::new();
            let keys = config.key.iter().chain(&config.previous_keys);
            let opened = keys.enumerate().find_map(|(index, key)| {
                let cookie = Cookie::new(config.cookie_name.clone(), text.to_owned());
                let opened = match config.protection {
                    Protection::Signed => jar.signed(key).verify(cookie),
                    _ => jar.private(key).decrypt(cookie),
                };
                opened.map(|c| (c.value().to_owned(), index))
            });
            match opened {
                Some(opened) => opened,
                None => return ReadId::Rejected("session id failed verification"),
            }
        }
    };
    parsed(&value, key_index)
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
pub(crate) fn encode(config: &Config, id: &SessionId) -> String {
    let key = match (&config.protection, &config.key) {
        (Protection::Signed | Protection::Private, Some(key)) => key,
        _ => return id.expose().to_owned(),
    };
    let cookie = Cookie::new(config.cookie_name.clone(), id.expose().to_owned());
    let mut jar = CookieJar::new();
    if matches!(config.protection, Protection::Signed) {
        jar.signed_mut(key).add(cookie);
    } else {
        jar.private_mut(key).add(cookie);
    }
    jar.get(&config.cookie_name)
        .map_or_else(|| id.expose().to_owned(), |c| c.value().to_owned())
}

fn base(config: &Config, value: String) -> Cookie<'static> {
    let mut cookie = Cookie::build((config.cookie_name.clone(), value))
        .path(config.path.clone())
        .secure(config.secure)
        .http_only(config.http_only)
        .same_site(config.same_site)
        .build();
    if let Some(domain) = &config.domain {
        cookie.set_domain(domain.clone());
    }
    cookie
}

/// The `Set-Cookie` value carrying `value`, with `Max-Age` in seconds if the session has one.
///
/// The attributes are the same on every response, so the `cookie` crate formats them once per
/// layer and each response only glues name, value and `Max-Age` around them: the same text
/// the crate would write (it puts `Max-Age` after every attribute we use), at a fraction of
/// the cost.
pub(crate) fn set_cookie(
    config: &Config,
    value: String,
    max_age: Option<i64>,
) -> Option<HeaderValue> {
    let attributes = config
        .cookie_attributes
        .get_or_init(|| attributes_of(config));
    let mut text =
        String::with_capacity(config.cookie_name.len() + 1 + value.len() + attributes.len() + 24);
    text.push_str(&config.cookie_name);
    text.push('=');
    text.push_str(&value);
    text.push_str(attributes);
    if let Some(seconds) = max_age {
        // Writing to a `String` cannot fail.
        let _ = write!(text, "; Max-Age={}", seconds.max(0));
    }
    header_value(text)
}

/// What the `cookie` crate writes after `name=value` for this configuration.
fn attributes_of(config: &Config) -> String {
    let formatted = base(config, String::new()).to_string();
    formatted
        .get(config.cookie_name.len() + 1..)
        .unwrap_or_default()
        .to_owned()
}

/// The `Set-Cookie` value that makes the browser forget the id: same name, path, domain, Secure,
/// HttpOnly and SameSite as when it was set, so it replaces exactly that cookie.
pub(crate) fn removal_cookie(config: &Config) -> Option<HeaderValue> {
    let mut cookie = base(config, String::new());
    cookie.make_removal();
    header_value(cookie.to_string())
}

fn header_value(text: String) -> Option<HeaderValue> {
    let value = HeaderValue::try_from(text);
    if value.is_err() {
        tracing::error!(
            "session cookie is not a valid header value; check the cookie name, path and domain"
        );
    }
    value.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Key, SameSite};

    fn incoming(cookie: &str) -> Incoming {
        Incoming {
            cookie: Some(HeaderValue::from_str(cookie).unwrap()),
            ..Incoming::default()
        }
    }

    #[test]
    fn plain_id_is_found_among_other_cookies() {
        let config = Config::default();
        let id = SessionId::generate();
        let got = read_id(&config, &incoming(&format!("a=b; id={}; c=d", id.expose())));
        assert_eq!(got, ReadId::Valid { id, reissue: false });
    }

    #[test]
    fn signed_and_private_values_round_trip_and_rotate() {
        for protection in [Protection::Signed, Protection::Private] {
            let old = Key::generate();
            let mut config = Config {
                protection,
                key: Some(old.clone()),
                ..Config::default()
            };
            let id = SessionId::generate();
            let value = encode(&config, &id);
            assert_ne!(value, id.expose());
            let got = read_id(&config, &incoming(&format!("id={value}")));
            assert_eq!(
                got,
                ReadId::Valid {
                    id: id.clone(),
                    reissue: false
                }
            );

            config.key = Some(Key::generate());
            let got = read_id(&config, &incoming(&format!("id={value}")));
            assert!(matches!(got, ReadId::Rejected(_)));
            config.previous_keys = vec![old];
            let got = read_id(&config, &incoming(&format!("id={value}")));
            assert_eq!(got, ReadId::Valid { id, reissue: true });
        }
    }

    /// The fast path writes exactly what the `cookie` crate writes, for every attribute.
    #[test]
    fn set_cookie_matches_the_cookie_crate() {
        let configs = [
            Config::default(),
            Config {
                cookie_name: "__Host-sid".to_owned(),
                same_site: SameSite::Strict,
                ..Config::default()
            },
            Config {
                secure: false,
                http_only: false,
                same_site: SameSite::None,
                path: "/app".to_owned(),
                domain: Some("example.com".to_owned()),
                ..Config::default()
            },
        ];
        for config in configs {
            for max_age in [None, Some(0), Some(86_400), Some(-5)] {
                let mut expected = base(&config, "v4lue".to_owned());
                if let Some(seconds) = max_age {
                    expected.set_max_age(::cookie::time::Duration::seconds(seconds.max(0)));
                }
                let got = set_cookie(&config, "v4lue".to_owned(), max_age).unwrap();
                assert_eq!(got.to_str().unwrap(), expected.to_string(), "{config:?}");
            }
        }
    }

    #[test]
    fn a_plain_id_is_refused_where_a_signed_one_is_expected() {
        let config = Config {
            protection: Protection::Signed,
            key: Some(Key::generate()),
            ..Config::default()
        };
        let id = SessionId::generate();
        let got = read_id(&config, &incoming(&format!("id={}", id.expose())));
        assert!(matches!(got, ReadId::Rejected(_)));
    }
}
