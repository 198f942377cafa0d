//! Property test: thousands of random `Cookie` headers (and id headers) against four layers.
//!
//! Four layers share one `MemoryStore`: plain, signed, private, and plain with an id header.
//! Each seeds two sessions whose counter is `(k + 1) << 40` for session `k`, so a response body
//! tells which session a request reached. Every value known for a seeded id is collected: its
//! plain id, the values the layers issued, and the values the `cookie` crate gives it signed and
//! encrypted with the layers' key and with another key.
//!
//! [`proptest`] strategies ([`Strategies`]) build each request: no, one or several `Cookie`
//! headers and, one time in three, an id header. A `Cookie` header is one of these shapes: a
//! known value alone (`id=<value>`); a known value tampered with (one to three bytes flipped,
//! replaced, inserted or removed, a letter's case changed, a `=` appended, the value cut short);
//! a few `name=value` pairs; the name `id` two to four times; 20 to 319 pairs; a very long value
//! (200 to 20,199 bytes, sometimes after a known value); a soup of `;`, `=`, spaces, quotes,
//! commas, tabs, `id`, bytes over 0x7f, text and known values; random bytes (non-UTF-8 and, one
//! time in eight, control bytes that `http` refuses before any server sees them). Names are
//! mostly `id` or look-alikes (`ID`, ` id `, `i d`); values are known ones, intact, tampered or
//! quoted, or noise. Every request goes to all four layers, which must:
//!
//! - never panic and never answer `5xx`;
//! - reach seeded session `k` only if the request offers, under the name `id` in a `Cookie`
//!   header (or as the whole id header), a value that layer could have issued for `k`, byte for
//!   byte (surrounding whitespace and double quotes aside): a tampered value never reaches it;
//! - otherwise give a fresh session (`/read` answers 0, `/write` 1) whose new id appears
//!   nowhere in the request (a client-chosen id is never adopted).
//!
//! A failure is shrunk to a minimal request (fewer headers, pairs and edits, shorter values,
//! intact values and simple bytes where they still fail) and reported with the check it broke,
//! header values printed as byte strings. A panic in a layer is such a failure too: panics stay
//! quiet while proptest shrinks, and the first one is printed with its place.
//!
//! **Reproducing.** The seed is fixed ([`SEED`]), not persisted: every run, on every machine and
//! in CI, tries the same cases, as the hand-rolled generator this test replaced did, so a
//! failure reruns with the same command (`cargo test --test property`) and no regressions file
//! has to be committed or kept in step with the strategies. The seeded session ids are random
//! per run, so the cases have the same shape each time (which known value, which edit where)
//! but not the same bytes. `PROPTEST_RNG_SEED=<n>` tries another sequence (the failure message
//! names the seed), `PROPTEST_CASES=<n>` another count ([`CASES`] by default: about as long as
//! the 5,000 cases of the old generator took in a debug build), and the other `PROPTEST_*`
//! variables work as proptest documents. The random number generator is proptest's XorShift
//! rather than its default ChaCha, which dominated the run time in an unoptimized test build.

#[path = "../common/mod.rs"]
mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Request};
use axum::routing::get;
use axum::Router;
use proptest::prelude::*;
use proptest::test_runner::{RngAlgorithm, RngSeed, TestCaseError, TestRunner};
use sessionware::{Error, Key, MemoryStore, Session, SessionLayer};

use common::send_request;

/// Random requests per run, unless `PROPTEST_CASES` says otherwise; each goes to all four layers.
const CASES: u32 = 3_000;
/// The proptest seed, unless `PROPTEST_RNG_SEED` says otherwise.
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

mod strategies;

use strategies::{Case, Strategies};

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

/// The configuration: `ProptestConfig::default()` reads the `PROPTEST_*` environment
/// variables; the case count, seed and generator they leave unset are ours, and nothing is
/// persisted (see the module docs).
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    if std::env::var_os("PROPTEST_RNG_ALGORITHM").is_none() {
        config.rng_algorithm = RngAlgorithm::XorShift;
    }
    config.failure_persistence = None;
    config
}

/// Keeps panics quiet until the hook is taken back: proptest catches a panic in a case as a
/// failure and shrinks it, and the default hook would print every panic on the way (hundreds,
/// each with a backtrace under `RUST_BACKTRACE`). The first one, with its place, is kept.
fn quiet_panics() -> Arc<Mutex<Option<String>>> {
    let first = Arc::new(Mutex::new(None));
    let keep = Arc::clone(&first);
    std::panic::set_hook(Box::new(move |info| {
        keep.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| info.to_string());
    }));
    first
}

#[test]
fn random_cookie_headers_never_fail_and_never_reach_a_session_they_do_not_own() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let world = runtime.block_on(World::build());
    let config = config();
    let cases = config.cases;
    let RngSeed::Fixed(seed) = config.rng_seed else {
        unreachable!("config() fixes the seed")
    };
    let tally = RefCell::new(Tally::default());
    let mut runner = TestRunner::new(config);
    let first_panic = quiet_panics();
    let result = runner.run(&Strategies::new(&world.tokens).case(), |case| {
        for mode in MODES {
            let mut tally = tally.borrow_mut();
            runtime
                .block_on(check(&world, mode, &case, &mut tally))
                .map_err(TestCaseError::fail)?;
        }
        Ok(())
    });
    drop(std::panic::take_hook());
    if let Err(failure) = result {
        if let Some(panic) = first_panic.lock().unwrap().take() {
            eprintln!("the first case failed by a panic: {panic}");
        }
        panic!(
            "{failure}\nrerun: PROPTEST_RNG_SEED={seed} PROPTEST_CASES={cases} \
             cargo test --test property"
        );
    }
    let tally = tally.into_inner();
    println!("{cases} cases, seed {seed}: {tally:?}");
    // The strategies must actually exercise both sides of the property.
    if cases >= CASES {
        let cases = cases as usize;
        assert!(tally.sent >= cases, "too few requests sent: {tally:?}");
        assert!(tally.reached >= cases / 50, "too few genuine: {tally:?}");
        assert!(
            tally.tampered_refused >= cases / 5,
            "too few tampered: {tally:?}"
        );
    }
}
