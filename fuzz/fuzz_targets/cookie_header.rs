//! Fuzzes how a session id gets in: `Cookie` headers (one or several), the id header, signed
//! and private verification and id parsing, through the public surface only: an axum app behind
//! `SessionLayer`, driven with `tower::ServiceExt::oneshot`.
//!
//! Run it (stable toolchain; from the repository root, see fuzz/README.md):
//!
//! ```sh
//! cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run cookie_header -- -max_total_time=600
//! ```
//!
//! Four layers share one `MemoryStore`: plain, signed, private, and plain with an id header.
//! Each seeds two sessions whose counter is `(k + 1) << 40` for session `k`, so a response body
//! tells which session a request reached. Every known encoding of every seeded id (the plain
//! id, its signed and encrypted values made by the layer and by the `cookie` crate with the same
//! key, a value signed with another key) is a token the input can place, intact or tampered,
//! anywhere in its headers. For every input:
//!
//! - no panic, never a `5xx`;
//! - a request that reaches seeded session `k` carries, under the name `id` in a `Cookie`
//!   header (or as the id header's whole value), a value that this layer could have issued for
//!   `k`, byte for byte (surrounding whitespace and double quotes aside): a tampered, forged,
//!   re-encoded or wrongly protected value never reaches the session;
//! - any other request gets a fresh session (`/read` answers 0, `/write` answers 1), and the id
//!   it is given appears nowhere in the request: a client-chosen id is never adopted.

#![no_main]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, Request, Response};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sessionware::{Error, Key, MemoryStore, Session, SessionLayer};
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// The id header of the `Header` layer.
const ID_HEADER: &str = "x-session-id";
/// Sessions seeded through each layer.
const SEEDS_PER_MODE: usize = 2;
/// Fresh sessions made by `/write` pile up in the store; start over this often.
const REBUILD_EVERY: u64 = 20_000;
/// Caps that keep one run fast.
const MAX_COOKIE_HEADERS: usize = 16;
const MAX_RUN: usize = 16 * 1024;

/// What the runs did, printed every 10,000 requests when `SESSIONWARE_FUZZ_STATS` is set:
/// requests sent (the other inputs `http` refused), and the ones that reached a seeded session.
static SENT: AtomicU64 = AtomicU64::new(0);
static REACHED: AtomicU64 = AtomicU64::new(0);

/// The key of the signed and private layers (a fixed key: failures reproduce).
const KEY: [u8; 64] = key_bytes(3);
/// A key no layer uses: what it signs must never verify.
const OTHER_KEY: [u8; 64] = key_bytes(101);

const fn key_bytes(seed: u8) -> [u8; 64] {
    let mut bytes = [0; 64];
    let mut i = 0;
    while i < 64 {
        bytes[i] = seed
            .wrapping_mul(i as u8 + 1)
            .wrapping_add((i as u8).wrapping_mul(31));
        i += 1;
    }
    bytes
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Signed,
    Private,
    Header,
}

const MODES: [Mode; 4] = [Mode::Plain, Mode::Signed, Mode::Private, Mode::Header];

/// One request: which layer and route, the `Cookie` headers, the id header.
#[derive(Arbitrary, Debug)]
struct Input {
    mode: Mode,
    write: bool,
    cookies: Vec<Vec<Piece>>,
    header: Option<Vec<Piece>>,
}

/// A part of a header value.
#[derive(Arbitrary, Debug)]
enum Piece {
    Bytes(Vec<u8>),
    Sep(Sep),
    /// The cookie name, `id`.
    Name,
    /// A known value (any encoding of any seeded id), intact.
    Token(u8),
    /// `id=` and a known value, intact.
    Pair(u8),
    /// A known value, edited.
    Tampered(u8, Vec<Edit>),
    /// One byte many times: long values.
    Run(u8, u16),
}

#[derive(Arbitrary, Debug)]
enum Sep {
    Semi,
    SemiSpace,
    Eq,
    Space,
    Tab,
    Quote,
    Comma,
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Flip(u16, u8),
    Set(u16, u8),
    Insert(u16, u8),
    Remove(u16),
    Truncate(u16),
    Swap(u16, u16),
    ToggleCase(u16),
}

/// The apps, the seeded sessions and what is known about them.
struct World {
    apps: Vec<Router>,
    /// Every known value, for the input to place.
    tokens: Vec<Vec<u8>>,
    /// Per mode: the values that legitimately reach seeded session `k`.
    genuine: Vec<HashMap<Vec<u8>, usize>>,
    sessions: usize,
    runs: u64,
}

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

async fn read(session: Session) -> Result<String, Error> {
    Ok(session
        .get::<i64>("counter")
        .await?
        .unwrap_or(0)
        .to_string())
}

async fn write(session: Session) -> Result<String, Error> {
    let n = session.get::<i64>("counter").await?.unwrap_or(0) + 1;
    session.insert("counter", n).await?;
    Ok(n.to_string())
}

async fn seed(session: Session, Path(n): Path<i64>) -> Result<(), Error> {
    session.insert("counter", n).await
}

async fn whoami(session: Session) -> Result<String, Error> {
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
        Mode::Signed => layer.with_signed(Key::from(&KEY)),
        Mode::Private => layer.with_private(Key::from(&KEY)),
        Mode::Header => layer.with_header(HeaderName::from_static(ID_HEADER)),
    };
    Router::new()
        .route("/read", get(read))
        .route("/write", get(write))
        .route("/seed/{n}", get(seed))
        .route("/whoami", get(whoami))
        .layer(layer)
}

fn signed(key: &Key, id: &str) -> Vec<u8> {
    let mut jar = cookie::CookieJar::new();
    jar.signed_mut(key)
        .add(cookie::Cookie::new("id", id.to_owned()));
    jar.get("id")
        .expect("just added")
        .value()
        .as_bytes()
        .to_vec()
}

fn private(key: &Key, id: &str) -> Vec<u8> {
    let mut jar = cookie::CookieJar::new();
    jar.private_mut(key)
        .add(cookie::Cookie::new("id", id.to_owned()));
    jar.get("id")
        .expect("just added")
        .value()
        .as_bytes()
        .to_vec()
}

/// The value of the first `Set-Cookie` of a response.
fn set_cookie_value(res: &Response<Body>) -> Vec<u8> {
    let set = res.headers()[header::SET_COOKIE].as_bytes();
    let pair = set.split(|b| *b == b';').next().unwrap_or_default();
    let eq = pair.iter().position(|b| *b == b'=').expect("name=value");
    pair[eq + 1..].to_vec()
}

async fn body(res: Response<Body>) -> String {
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("UTF-8 body")
}

impl World {
    async fn build() -> Self {
        let store = MemoryStore::default();
        let apps: Vec<Router> = MODES.iter().map(|mode| app(*mode, &store)).collect();
        let key = Key::from(&KEY);
        let other = Key::from(&OTHER_KEY);
        let mut tokens = Vec::new();
        let mut genuine = vec![HashMap::new(); MODES.len()];
        let mut k = 0;
        for (m, mode) in MODES.iter().enumerate() {
            for _ in 0..SEEDS_PER_MODE {
                let counter = ((k + 1) as i64) << 40;
                let req = Request::get(format!("/seed/{counter}"))
                    .body(Body::empty())
                    .unwrap();
                let res = apps[m].clone().oneshot(req).await.unwrap();
                assert!(res.status().is_success(), "seeding failed: {mode:?}");
                let issued = set_cookie_value(&res);

                let mut cookie = b"id=".to_vec();
                cookie.extend_from_slice(&issued);
                let req = Request::get("/whoami")
                    .header(header::COOKIE, HeaderValue::from_bytes(&cookie).unwrap())
                    .body(Body::empty())
                    .unwrap();
                let res = apps[m].clone().oneshot(req).await.unwrap();
                let id = body(res).await;
                assert_eq!(id.len(), 32, "the seeded cookie does not reach its session");

                let plain = id.as_bytes().to_vec();
                let sig = signed(&key, &id);
                let enc = private(&key, &id);
                for value in [&plain, &sig, &enc, &issued] {
                    if !tokens.contains(value) {
                        tokens.push(value.clone());
                    }
                }
                tokens.push(signed(&other, &id));
                tokens.push(private(&other, &id));
                genuine[0].insert(plain.clone(), k);
                genuine[3].insert(plain, k);
                genuine[1].insert(sig, k);
                genuine[2].insert(enc, k);
                match mode {
                    Mode::Signed => genuine[1].insert(issued, k),
                    Mode::Private => genuine[2].insert(issued, k),
                    Mode::Plain | Mode::Header => genuine[0].insert(issued, k),
                };
                k += 1;
            }
        }
        World {
            apps,
            tokens,
            genuine,
            sessions: k,
            runs: 0,
        }
    }

    fn token(&self, index: u8) -> &[u8] {
        &self.tokens[usize::from(index) % self.tokens.len()]
    }

    fn render(&self, pieces: &[Piece]) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Bytes(bytes) => out.extend_from_slice(bytes),
                Piece::Sep(sep) => out.extend_from_slice(match sep {
                    Sep::Semi => b";",
                    Sep::SemiSpace => b"; ",
                    Sep::Eq => b"=",
                    Sep::Space => b" ",
                    Sep::Tab => b"\t",
                    Sep::Quote => b"\"",
                    Sep::Comma => b",",
                }),
                Piece::Name => out.extend_from_slice(b"id"),
                Piece::Token(i) => out.extend_from_slice(self.token(*i)),
                Piece::Pair(i) => {
                    out.extend_from_slice(b"id=");
                    out.extend_from_slice(self.token(*i));
                }
                Piece::Tampered(i, edits) => {
                    let mut value = self.token(*i).to_vec();
                    for edit in edits {
                        apply(&mut value, edit);
                    }
                    out.extend_from_slice(&value);
                }
                Piece::Run(byte, n) => {
                    out.extend(std::iter::repeat_n(*byte, usize::from(*n).min(MAX_RUN)))
                }
            }
        }
        out
    }
}

fn apply(value: &mut Vec<u8>, edit: &Edit) {
    let at = |pos: u16, len: usize| usize::from(pos) % len.max(1);
    match *edit {
        Edit::Flip(pos, bit) if !value.is_empty() => {
            let i = at(pos, value.len());
            value[i] ^= 1 << (bit % 8);
        }
        Edit::Set(pos, byte) if !value.is_empty() => {
            let i = at(pos, value.len());
            value[i] = byte;
        }
        Edit::Insert(pos, byte) => {
            let i = at(pos, value.len() + 1);
            value.insert(i, byte);
        }
        Edit::Remove(pos) if !value.is_empty() => {
            let i = at(pos, value.len());
            value.remove(i);
        }
        Edit::Truncate(len) => value.truncate(usize::from(len) % (value.len() + 1)),
        Edit::Swap(a, b) if !value.is_empty() => {
            let (a, b) = (at(a, value.len()), at(b, value.len()));
            value.swap(a, b);
        }
        Edit::ToggleCase(pos) if !value.is_empty() => {
            let i = at(pos, value.len());
            if value[i].is_ascii_alphabetic() {
                value[i] ^= 0x20;
            }
        }
        _ => {}
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
fn offered<'a>(mode: Mode, cookies: &'a [Vec<u8>], id_header: Option<&'a [u8]>) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    if mode == Mode::Header {
        if let Some(value) = id_header {
            let value = value.trim_ascii();
            out.extend([value, unquoted(value)]);
        }
    }
    for cookie in cookies {
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

fn run(world: &World, input: &Input) {
    let cookies: Vec<Vec<u8>> = input
        .cookies
        .iter()
        .take(MAX_COOKIE_HEADERS)
        .map(|pieces| world.render(pieces))
        .collect();
    let id_header = input.header.as_ref().map(|pieces| world.render(pieces));

    let path = if input.write { "/write" } else { "/read" };
    let mut req = Request::get(path).body(Body::empty()).unwrap();
    for cookie in &cookies {
        // What `http` refuses never reaches a server.
        let Ok(value) = HeaderValue::from_bytes(cookie) else {
            return;
        };
        req.headers_mut().append(header::COOKIE, value);
    }
    if let Some(value) = &id_header {
        let Ok(value) = HeaderValue::from_bytes(value) else {
            return;
        };
        req.headers_mut()
            .insert(HeaderName::from_static(ID_HEADER), value);
    }

    let sent = SENT.fetch_add(1, Ordering::Relaxed) + 1;
    if sent.is_multiple_of(10_000) && std::env::var_os("SESSIONWARE_FUZZ_STATS").is_some() {
        let reached = REACHED.load(Ordering::Relaxed);
        eprintln!("stats: {sent} requests sent, {reached} reached a seeded session");
    }
    let app = world.apps[input.mode as usize].clone();
    let (status, issued, text) = runtime().block_on(async move {
        let res = app.oneshot(req).await.unwrap();
        let status = res.status();
        let mut issued: Vec<Vec<u8>> = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| {
                let pair = v
                    .as_bytes()
                    .split(|b| *b == b';')
                    .next()
                    .unwrap_or_default();
                let eq = pair.iter().position(|b| *b == b'=').unwrap_or(0);
                pair[(eq + 1).min(pair.len())..].to_vec()
            })
            .collect();
        if let Some(value) = res.headers().get(ID_HEADER) {
            issued.push(value.as_bytes().to_vec());
        }
        (status, issued, body(res).await)
    });

    assert!(
        !status.is_server_error(),
        "{status} from {:?} {path}: {text:?}",
        input.mode
    );
    if !status.is_success() {
        return;
    }
    let n: i64 = text
        .parse()
        .unwrap_or_else(|_| panic!("unexpected body {text:?}"));
    if n >> 40 == 0 {
        // A fresh session, whatever was sent.
        let fresh = i64::from(input.write);
        assert_eq!(
            n, fresh,
            "{:?} {path} reached a session no seed made (an adopted id?)",
            input.mode
        );
        for value in issued.iter().filter(|v| !v.is_empty()) {
            let adopted = cookies.iter().chain(&id_header).any(|h| contains(h, value));
            assert!(
                !adopted,
                "{:?}: the id the client sent was adopted: {:?}",
                input.mode,
                String::from_utf8_lossy(value)
            );
        }
        return;
    }
    REACHED.fetch_add(1, Ordering::Relaxed);
    let k = usize::try_from((n >> 40) - 1).expect("a seeded counter");
    assert!(k < world.sessions, "unexpected counter {n}");
    let genuine = &world.genuine[input.mode as usize];
    let legit = offered(input.mode, &cookies, id_header.as_deref())
        .iter()
        .any(|value| genuine.get(*value) == Some(&k));
    assert!(
        legit,
        "{:?} {path} reached seeded session {k} without its genuine value: cookies {:?}, header {:?}",
        input.mode,
        cookies.iter().map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>(),
        id_header.as_deref().map(String::from_utf8_lossy),
    );
}

fuzz_target!(|input: Input| {
    static WORLD: Mutex<Option<World>> = Mutex::new(None);
    let mut guard = WORLD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if guard.as_ref().is_none_or(|w| w.runs >= REBUILD_EVERY) {
        *guard = Some(runtime().block_on(World::build()));
    }
    let world = guard.as_mut().expect("built above");
    world.runs += 1;
    run(world, &input);
});
