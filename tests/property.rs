//! Property test: thousands of random `Cookie` headers (and id headers) against four layers.
//!
//! Four layers share one `MemoryStore`: plain, signed, private, and plain with an id header.
//! Each seeds two sessions whose counter is `(k + 1) << 40` for session `k`, so a response body
//! tells which session a request reached. Random requests are built from random bytes (with
//! `;`, `=`, spaces, quotes, commas, non-UTF-8), very long values, many pairs, several `Cookie`
//! headers, duplicated names, and every known encoding of every seeded id (plain, signed and
//! encrypted by the layers and by the `cookie` crate, signed with another key), intact or with
//! bytes flipped, inserted, removed or cut. Every request goes to all four layers, which must:
//!
//! - never panic and never answer `5xx`;
//! - reach seeded session `k` only if the request offers, under the name `id` in a `Cookie`
//!   header (or as the whole id header), a value that layer could have issued for `k`, byte for
//!   byte (surrounding whitespace and double quotes aside): a tampered value never reaches it;
//! - otherwise give a fresh session (`/read` answers 0, `/write` 1) whose new id appears
//!   nowhere in the request (a client-chosen id is never adopted).
//!
//! The generator is a fixed-seed xorshift, so a failure reproduces; `PROPERTY_SEED=<n>` runs
//! another sequence and `PROPERTY_CASES=<n>` another count.

mod common;

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Request};
use axum::routing::get;
use axum::Router;
use sessionware::{Error, Key, MemoryStore, Session, SessionLayer};

use common::send_request;

/// Random requests per run; each goes to all four layers.
const CASES: usize = 5_000;
const SEED: u64 = 0x5e55_10e5_f022_2024;
const ID_HEADER: &str = "x-session-id";
const SEEDS_PER_MODE: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Signed,
    Private,
    Header,
}

const MODES: [Mode; 4] = [Mode::Plain, Mode::Signed, Mode::Private, Mode::Header];

fn key(seed: u8) -> Key {
    let bytes: Vec<u8> = (0..64u8)
        .map(|i| seed.wrapping_mul(i + 1).wrapping_add(i.wrapping_mul(31)))
        .collect();
    Key::from(&bytes)
}

/// xorshift64*: small, deterministic, good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

async fn seed(session: Session, Path(n): Path<i64>) -> Result<(), Error> {
    session.insert("counter", n).await
}

async fn session_id(session: Session) -> Result<String, Error> {
    session.get::<i64>("counter").await?;
    Ok(session
        .id()
        .map(|id| id.expose().to_owned())
        .unwrap_or_default())
}

fn app(mode: Mode, store: &MemoryStore) -> Router {
    let layer = SessionLayer::new(store.clone());
    let layer = match mode {
        Mode::Plain => layer,
        Mode::Signed => layer.with_signed(key(3)),
        Mode::Private => layer.with_private(key(3)),
        Mode::Header => layer.with_header(HeaderName::from_static(ID_HEADER)),
    };
    common::routes()
        .route("/seed/{n}", get(seed))
        .route("/id", get(session_id))
        .layer(layer)
}

/// The value the `cookie` crate gives `id` under `key`, signed or encrypted.
fn protect(key: &Key, id: &str, private: bool) -> Vec<u8> {
    let mut jar = cookie::CookieJar::new();
    let cookie = cookie::Cookie::new("id", id.to_owned());
    if private {
        jar.private_mut(key).add(cookie);
    } else {
        jar.signed_mut(key).add(cookie);
    }
    jar.get("id").unwrap().value().as_bytes().to_vec()
}

/// The values of a response's `Set-Cookie` headers and its id header.
fn issued(headers: &HeaderMap) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| {
            let pair = v
                .as_bytes()
                .split(|b| *b == b';')
                .next()
                .unwrap_or_default();
            let eq = pair.iter().position(|b| *b == b'=').map_or(0, |eq| eq + 1);
            pair[eq..].to_vec()
        })
        .collect();
    if let Some(value) = headers.get(ID_HEADER) {
        out.push(value.as_bytes().to_vec());
    }
    out
}

/// The apps, the seeded sessions and every value known for them.
struct World {
    apps: Vec<Router>,
    /// Every known value, intact: what the generator places and tampers with.
    tokens: Vec<Vec<u8>>,
    /// Per mode: the values that legitimately reach seeded session `k`.
    genuine: Vec<HashMap<Vec<u8>, usize>>,
    sessions: usize,
}

impl World {
    async fn build() -> Self {
        let store = MemoryStore::default();
        let apps: Vec<Router> = MODES.iter().map(|mode| app(*mode, &store)).collect();
        let (ours, other) = (key(3), key(101));
        let mut tokens = Vec::new();
        let mut genuine = vec![HashMap::new(); MODES.len()];
        let mut k = 0;
        for (m, mode) in MODES.iter().enumerate() {
            for _ in 0..SEEDS_PER_MODE {
                let counter = ((k + 1) as i64) << 40;
                let req = Request::get(format!("/seed/{counter}"))
                    .body(Body::empty())
                    .unwrap();
                let reply = send_request(&apps[m], req).await;
                assert!(reply.status.is_success(), "seeding {mode:?}");
                let value = issued(&reply.headers).swap_remove(0);

                let mut cookie = b"id=".to_vec();
                cookie.extend_from_slice(&value);
                let req = Request::get("/id")
                    .header(header::COOKIE, HeaderValue::from_bytes(&cookie).unwrap())
                    .body(Body::empty())
                    .unwrap();
                let id = send_request(&apps[m], req).await.body;
                assert_eq!(id.len(), 32, "the seeded {mode:?} cookie lost its session");

                let plain = id.as_bytes().to_vec();
                let signed = protect(&ours, &id, false);
                let private = protect(&ours, &id, true);
                for token in [&plain, &signed, &private, &value] {
                    if !tokens.contains(token) {
                        tokens.push(token.clone());
                    }
                }
                tokens.push(protect(&other, &id, false));
                tokens.push(protect(&other, &id, true));
                genuine[0].insert(plain.clone(), k);
                genuine[3].insert(plain, k);
                genuine[1].insert(signed, k);
                genuine[2].insert(private, k);
                let by = match mode {
                    Mode::Signed => 1,
                    Mode::Private => 2,
                    Mode::Plain | Mode::Header => 0,
                };
                genuine[by].insert(value, k);
                k += 1;
            }
        }
        World {
            apps,
            tokens,
            genuine,
            sessions: k,
        }
    }
}

/// What one random request looks like.
struct Case {
    write: bool,
    cookies: Vec<Vec<u8>>,
    id_header: Option<Vec<u8>>,
}

/// Builds random header values from the known tokens.
struct Gen<'a> {
    rng: Rng,
    tokens: &'a [Vec<u8>],
}

impl Gen<'_> {
    fn token(&mut self) -> Vec<u8> {
        self.rng.pick(self.tokens).clone()
    }

    /// A known value with one to three edits.
    fn tampered(&mut self) -> Vec<u8> {
        let mut value = self.token();
        for _ in 0..1 + self.rng.below(3) {
            let len = value.len();
            let at = self.rng.below(len.max(1));
            match self.rng.below(6) {
                0 if len > 0 => value[at] ^= 1 << self.rng.below(8),
                1 if len > 0 => value[at] = self.header_byte(),
                2 => {
                    let byte = self.header_byte();
                    value.insert(self.rng.below(len + 1), byte);
                }
                3 if len > 0 => {
                    value.remove(at);
                }
                4 => value.truncate(at),
                _ if len > 0 && value[at].is_ascii_alphabetic() => value[at] ^= 0x20,
                _ => value.push(b'='),
            }
        }
        value
    }

    /// Any byte `http` accepts in a header value: tab, space, visible ASCII, 0x80 to 0xff.
    fn header_byte(&mut self) -> u8 {
        loop {
            let b = self.rng.byte();
            if b == b'\t' || (b >= 0x20 && b != 0x7f) {
                break b;
            }
        }
    }

    fn random_bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.rng.below(max + 1);
        if self.rng.chance(8) {
            // Everything from NUL to 0xff: mostly refused by `http` before any server.
            return (0..len).map(|_| self.rng.byte()).collect();
        }
        (0..len).map(|_| self.header_byte()).collect()
    }

    /// Printable ASCII other than `;`, or a hex digit.
    fn text(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| match self.rng.below(3) {
                0 => *self.rng.pick(b"0123456789abcdef"),
                _ => loop {
                    let b = 0x21 + self.rng.below(0x5e) as u8;
                    if b != b';' {
                        break b;
                    }
                },
            })
            .collect()
    }

    /// A cookie value: a token, intact or tampered, or noise.
    fn value(&mut self) -> Vec<u8> {
        match self.rng.below(8) {
            0 | 1 => self.token(),
            2..=4 => self.tampered(),
            5 => {
                let len = self.rng.below(48);
                self.text(len)
            }
            6 => self.random_bytes(48),
            _ => {
                let mut quoted = b"\"".to_vec();
                quoted.extend(self.token());
                quoted.push(b'"');
                quoted
            }
        }
    }

    fn name(&mut self) -> Vec<u8> {
        let names: [&[u8]; 8] = [
            b"id", b"id", b"id", b"ID", b" id ", b"i d", b"session", b"a",
        ];
        match self.rng.below(10) {
            0 => {
                let len = 1 + self.rng.below(8);
                self.text(len)
            }
            _ => self.rng.pick(&names).to_vec(),
        }
    }

    fn separator(&mut self) -> &'static [u8] {
        const SEPARATORS: [&[u8]; 7] = [b"; ", b";", b" ;  ", b";;", b",", b", ", b"\t;"];
        SEPARATORS[self.rng.below(SEPARATORS.len())]
    }

    /// One `Cookie` header value, of one of several shapes.
    fn cookie(&mut self) -> Vec<u8> {
        match self.rng.below(11) {
            // Random bytes, non-UTF-8 included.
            0 => self.random_bytes(96),
            // A known value alone, the way a browser sends it back.
            9 | 10 => {
                let mut out = b"id=".to_vec();
                out.extend(self.token());
                out
            }
            // A soup of separators, names, tokens and noise.
            1 => {
                let mut out = Vec::new();
                for _ in 0..self.rng.below(24) {
                    match self.rng.below(12) {
                        0 => out.push(b';'),
                        1 => out.push(b'='),
                        2 => out.push(b' '),
                        3 => out.push(b'"'),
                        4 => out.push(b','),
                        5 => out.extend_from_slice(b"id"),
                        6 => out.push(0x80 + self.rng.below(0x80) as u8),
                        7 => out.extend(self.token()),
                        8 => out.extend(self.tampered()),
                        9 => out.push(b'\t'),
                        _ => {
                            let len = 1 + self.rng.below(6);
                            out.extend(self.text(len));
                        }
                    }
                }
                out
            }
            // A very long value, sometimes after a genuine prefix.
            2 => {
                let mut out = b"id=".to_vec();
                if self.rng.chance(2) {
                    out.extend(self.token());
                }
                let len = 200 + self.rng.below(20_000);
                out.extend(self.text(len));
                out
            }
            // Many pairs.
            3 => {
                let mut out = Vec::new();
                for i in 0..20 + self.rng.below(300) {
                    if i > 0 {
                        out.extend_from_slice(self.separator());
                    }
                    out.extend(self.name());
                    out.push(b'=');
                    out.extend(self.value());
                }
                out
            }
            // The same name twice or more.
            4 => {
                let mut out = Vec::new();
                for i in 0..2 + self.rng.below(3) {
                    if i > 0 {
                        out.extend_from_slice(self.separator());
                    }
                    out.extend_from_slice(b"id=");
                    out.extend(self.value());
                }
                out
            }
            // A known value with a byte changed: the plain tampering case.
            5 | 6 => {
                let mut out = b"id=".to_vec();
                out.extend(self.tampered());
                out
            }
            // A few pairs, one of them ours.
            _ => {
                let mut out = Vec::new();
                for i in 0..1 + self.rng.below(5) {
                    if i > 0 {
                        out.extend_from_slice(self.separator());
                    }
                    let name = self.name();
                    out.extend(name);
                    if !self.rng.chance(8) {
                        out.extend_from_slice(if self.rng.chance(6) { b" = " } else { b"=" });
                    }
                    out.extend(self.value());
                }
                out
            }
        }
    }

    fn case(&mut self) -> Case {
        let cookies = match self.rng.below(8) {
            0 => Vec::new(),
            1..=5 => vec![self.cookie()],
            _ => (0..2 + self.rng.below(4)).map(|_| self.cookie()).collect(),
        };
        let id_header = match self.rng.below(3) {
            0 => Some(match self.rng.below(4) {
                0 => self.token(),
                1 => self.tampered(),
                2 => self.value(),
                _ => self.cookie(),
            }),
            _ => None,
        };
        Case {
            write: self.rng.chance(2),
            cookies,
            id_header,
        }
    }
}

/// Strips one pair of surrounding double quotes.
fn unquoted(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    }
}

/// Every value the request offers as its session id, read as leniently as any sane reader
/// would: `id=value` pairs split on `;` or `,`, whitespace and quotes around them ignored; the
/// whole id header when the layer reads one.
fn offered(mode: Mode, case: &Case) -> Vec<&[u8]> {
    let mut out = Vec::new();
    if let (Mode::Header, Some(value)) = (mode, &case.id_header) {
        let value = value.trim_ascii();
        out.extend([value, unquoted(value)]);
    }
    for cookie in &case.cookies {
        for pair in cookie.split(|b| *b == b';' || *b == b',') {
            let pair = pair.trim_ascii();
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() == b"id" {
                let value = pair[eq + 1..].trim_ascii();
                out.extend([value, unquoted(value)]);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn show(case: &Case) -> String {
    let cookies: Vec<_> = case
        .cookies
        .iter()
        .map(|c| String::from_utf8_lossy(c))
        .collect();
    let header = case.id_header.as_deref().map(String::from_utf8_lossy);
    format!("cookies {cookies:?}, id header {header:?}")
}

#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    refused_by_http: usize,
    reached: usize,
    tampered_refused: usize,
}

async fn check(world: &World, mode: Mode, case: &Case, tally: &mut Tally) -> Result<(), String> {
    let path = if case.write { "/write" } else { "/read" };
    let mut req = Request::get(path).body(Body::empty()).unwrap();
    for cookie in &case.cookies {
        // What `http` refuses never reaches a server.
        let Ok(value) = HeaderValue::from_bytes(cookie) else {
            tally.refused_by_http += 1;
            return Ok(());
        };
        req.headers_mut().append(header::COOKIE, value);
    }
    if let Some(value) = &case.id_header {
        let Ok(value) = HeaderValue::from_bytes(value) else {
            tally.refused_by_http += 1;
            return Ok(());
        };
        req.headers_mut()
            .insert(HeaderName::from_static(ID_HEADER), value);
    }
    tally.sent += 1;

    let reply = send_request(&world.apps[mode as usize], req).await;
    let (status, text) = (reply.status, reply.body);
    let issued = issued(&reply.headers);
    if status.is_server_error() {
        return Err(format!("{mode:?} {path} answered {status} {text:?}"));
    }
    if !status.is_success() {
        return Ok(());
    }
    let n: i64 = text
        .parse()
        .map_err(|_| format!("{mode:?} {path}: unexpected body {text:?}"))?;
    let offered = offered(mode, case);
    let genuine = &world.genuine[mode as usize];
    if n >> 40 == 0 {
        if n != i64::from(case.write) {
            return Err(format!(
                "{mode:?} {path} answered {n}: a session no seed made (an adopted id?)"
            ));
        }
        for value in issued.iter().filter(|v| !v.is_empty()) {
            if case
                .cookies
                .iter()
                .chain(&case.id_header)
                .any(|h| contains(h, value))
            {
                let value = String::from_utf8_lossy(value);
                return Err(format!(
                    "{mode:?}: the id the client sent was adopted: {value:?}"
                ));
            }
        }
        if !offered.is_empty() && offered.iter().all(|v| !genuine.contains_key(*v)) {
            tally.tampered_refused += 1;
        }
        return Ok(());
    }
    tally.reached += 1;
    let k = usize::try_from((n >> 40) - 1).unwrap_or(usize::MAX);
    if k >= world.sessions {
        return Err(format!("{mode:?} {path}: unexpected counter {n}"));
    }
    if !offered.iter().any(|value| genuine.get(*value) == Some(&k)) {
        return Err(format!(
            "{mode:?} {path} reached seeded session {k} without its genuine value"
        ));
    }
    Ok(())
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
    )
}

#[tokio::test]
async fn random_cookie_headers_never_fail_and_never_reach_a_session_they_do_not_own() {
    let seed = env_number("PROPERTY_SEED").unwrap_or(SEED);
    let cases = env_number("PROPERTY_CASES").map_or(CASES, |n| n as usize);
    let world = World::build().await;
    let mut gen = Gen {
        rng: Rng(seed | 1),
        tokens: &world.tokens,
    };
    let mut tally = Tally::default();
    for i in 0..cases {
        let case = gen.case();
        for mode in MODES {
            if let Err(failure) = check(&world, mode, &case, &mut tally).await {
                panic!(
                    "case {i} (PROPERTY_SEED={seed}): {failure}\nrequest: {}",
                    show(&case)
                );
            }
        }
    }
    println!("{cases} cases, seed {seed}: {tally:?}");
    // The generator must actually exercise both sides of the property.
    if cases >= CASES {
        assert!(tally.sent >= cases, "too few requests sent: {tally:?}");
        assert!(tally.reached >= cases / 50, "too few genuine: {tally:?}");
        assert!(
            tally.tampered_refused >= cases / 5,
            "too few tampered: {tally:?}"
        );
    }
}
