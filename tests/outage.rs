//! Store outages (issue 5, point 6): the PostgreSQL or Redis server stops while an app serves
//! mixed traffic, then comes back. Checked, for `PostgresStore` and `RedisStore`:
//!
//! - routes that do not touch the session answer `200` all along;
//! - while the server is down, session routes answer `500` with the generic body, each within
//!   [`ERROR_BOUND`] (measured with `tokio::time::timeout`: no request may hang);
//! - once the server is back, the same app (same store, same pool or connection manager, never
//!   rebuilt) serves sessions again within [`RECOVERY_BOUND`];
//! - no session saved before the outage is lost, and no acknowledged write either.
//!
//! The servers are those of `.ci/services.sh`: each test reads its store's URL and
//! `SESSIONWARE_SERVICES` (the script's path; `start` prints both) and fails, naming the
//! variable, if one is missing. Stopping a server that other tests use is safe because this is
//! a test binary of its own and cargo runs test binaries one after another; the two tests here
//! stop different servers, so they may run in parallel. A guard restarts the server even if a
//! test fails, so later test binaries find it up.

#![cfg(any(feature = "redis", feature = "postgres"))]

mod common;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use sessionware::store::SessionStore;
use sessionware::SessionLayer;

use common::{env_var, send_within, Reply};

/// The longest a session request may take while the server is down: it makes one store call,
/// which must fail by then (the stores' own deadlines are 2 s).
const ERROR_BOUND: Duration = Duration::from_secs(3);
/// The longest any other request may take: a request makes at most two store calls (load,
/// then save).
const REQUEST_BOUND: Duration = Duration::from_secs(6);
/// The longest a request that does not touch the session may take, whatever the store does.
const PLAIN_BOUND: Duration = Duration::from_secs(1);
/// How soon after the server is back the app must serve sessions again.
const RECOVERY_BOUND: Duration = Duration::from_secs(15);
/// How long the server stays down at least, and at most (if the traffic is too slow to
/// produce enough samples).
const MIN_DOWN: Duration = Duration::from_secs(4);
const MAX_DOWN: Duration = Duration::from_secs(30);
/// Session requests of each route that must start and end while the server is down.
const MIN_DOWN_SAMPLES: usize = 3;
/// Sessions created before the outage; the first `WRITTEN` are also written during the
/// traffic, the others only read.
const SESSIONS: usize = 20;
const WRITTEN: usize = 10;
const READERS: usize = 3;
const WRITERS: usize = 2;
const PLAIN: usize = 2;
/// The body of the layer's and `Error`'s 500 responses.
const GENERIC_BODY: &str = "Internal Server Error";

// ---------------------------------------------------------------------------------------------
// The app: one router, built once.

fn app(store: impl SessionStore) -> Router {
    Router::new()
        .route("/plain", get(|| async { "plain" }))
        .route("/read", get(common::read))
        .route("/write", get(common::write))
        .layer(SessionLayer::new(store))
}

// ---------------------------------------------------------------------------------------------
// Stopping and starting the server.

/// A stopped server. Dropping it starts the server again (blocking), so that a failing test
/// does not leave it down for the test binaries that run after this one.
struct Outage {
    script: String,
    service: &'static str,
    down: bool,
}

impl Outage {
    /// Runs `<script> stop-<service>`: returns once the server has stopped.
    async fn begin(script: String, service: &'static str) -> Self {
        // Armed before the stop: a stop that fails halfway must still be undone.
        let outage = Self {
            script,
            service,
            down: true,
        };
        outage.run("stop").await;
        outage
    }

    /// Runs `<script> start-<service>`: returns once the server answers again.
    async fn end(&mut self) {
        self.run("start").await;
        self.down = false;
    }

    fn command(&self, verb: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(&self.script)
            .arg(format!("{verb}-{}", self.service))
            // The script logs to stderr; let it through to the test's output.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        cmd
    }

    async fn run(&self, verb: &str) {
        let what = format!("bash {} {verb}-{}", self.script, self.service);
        let mut cmd = tokio::process::Command::from(self.command(verb));
        cmd.kill_on_drop(true);
        let status = tokio::time::timeout(Duration::from_secs(90), cmd.status())
            .await
            .unwrap_or_else(|_| panic!("`{what}` did not finish within 90 s"))
            .unwrap_or_else(|e| panic!("`{what}` could not run: {e}"));
        assert!(
            status.success(),
            "`{what}` failed ({status}); see its output above"
        );
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if self.down {
            eprintln!(
                "outage test: starting {} again after a failure",
                self.service
            );
            match self.command("start").status() {
                Ok(status) if status.success() => {}
                other => eprintln!(
                    "outage test: could not start {} again ({other:?}); later tests will fail",
                    self.service
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mixed traffic, recorded per request with the phase it started and ended in.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Phase {
    /// The server is up.
    Up,
    /// The stop command is running.
    Stopping,
    /// The server is down.
    Down,
    /// The start command is running, or has returned and no session request succeeded yet.
    Starting,
    /// A session request succeeded after the restart.
    Recovered,
}

impl Phase {
    fn from_u8(n: u8) -> Self {
        [
            Phase::Up,
            Phase::Stopping,
            Phase::Down,
            Phase::Starting,
            Phase::Recovered,
        ][usize::from(n)]
    }
}

#[derive(Debug)]
struct Sample {
    route: &'static str,
    session: Option<usize>,
    started: Phase,
    ended: Phase,
    latency: Duration,
    /// The deadline the request was given.
    bound: Duration,
    /// `None`: no answer within `bound`.
    status: Option<StatusCode>,
    body: String,
}

struct Traffic {
    app: Router,
    phase: AtomicU8,
    stop: AtomicBool,
    samples: Mutex<Vec<Sample>>,
    /// `id=...` of each session.
    cookies: Vec<String>,
    /// Per session: the last value a `/write` answered `200` with, and how many `/write`s
    /// failed (they may or may not have been saved).
    acked: Vec<AtomicI64>,
    failed_writes: Vec<AtomicI64>,
}

impl Traffic {
    fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::SeqCst))
    }

    fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    async fn request(&self, route: &'static str, session: Option<usize>) -> Option<Reply> {
        let started = self.phase();
        let bound = match (route, started) {
            ("/plain", _) => PLAIN_BOUND,
            (_, Phase::Down) => ERROR_BOUND,
            _ => REQUEST_BOUND,
        };
        let t = Instant::now();
        let reply = send_within(&self.app, route, session.map(|i| &*self.cookies[i]), bound).await;
        let latency = t.elapsed();
        self.samples.lock().unwrap().push(Sample {
            route,
            session,
            started,
            ended: self.phase(),
            latency,
            bound,
            status: reply.as_ref().map(|r| r.status),
            body: reply.as_ref().map(|r| r.body.clone()).unwrap_or_default(),
        });
        reply
    }

    /// A task sending `/plain`, `/read` or `/write` (worker `n` of its kind) until told to stop.
    async fn worker(self: Arc<Self>, route: &'static str, n: usize) {
        let mut round = 0;
        while !self.stop.load(Ordering::SeqCst) {
            match route {
                "/plain" => {
                    self.request(route, None).await;
                }
                "/read" => {
                    let i = (n + round * READERS) % SESSIONS;
                    self.request(route, Some(i)).await;
                }
                _ => {
                    // Each written session has one writer, so its counter never loses an
                    // update to a concurrent write of the same key (last write wins).
                    let mine: Vec<usize> = (n..WRITTEN).step_by(WRITERS).collect();
                    let i = mine[round % mine.len()];
                    match self.request(route, Some(i)).await {
                        Some(r) if r.status == StatusCode::OK => {
                            self.acked[i].store(r.body.parse().unwrap(), Ordering::SeqCst)
                        }
                        _ => {
                            self.failed_writes[i].fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }
            round += 1;
            // Keeps the sample count reasonable; does not bound or measure anything.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario.

async fn outage(store: impl SessionStore, service: &'static str, script: String) {
    let app = app(store);

    // Sessions saved before the outage.
    let mut cookies = Vec::new();
    for _ in 0..SESSIONS {
        let r = send_within(&app, "/write", None, REQUEST_BOUND)
            .await
            .expect("creating a session timed out");
        assert_eq!(
            (r.status, &*r.body),
            (StatusCode::OK, "1"),
            "{service}: seeding"
        );
        cookies.push(r.first_cookie().expect("a new session sets a cookie"));
    }
    let traffic = Arc::new(Traffic {
        app,
        phase: AtomicU8::new(Phase::Up as u8),
        stop: AtomicBool::new(false),
        samples: Mutex::new(Vec::new()),
        cookies,
        acked: (0..SESSIONS).map(|_| AtomicI64::new(1)).collect(),
        failed_writes: (0..SESSIONS).map(|_| AtomicI64::new(0)).collect(),
    });

    let mut workers = Vec::new();
    for (route, count) in [("/plain", PLAIN), ("/read", READERS), ("/write", WRITERS)] {
        for n in 0..count {
            workers.push(tokio::spawn(traffic.clone().worker(route, n)));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The outage, under traffic.
    traffic.set_phase(Phase::Stopping);
    let mut outage = Outage::begin(script, service).await;
    traffic.set_phase(Phase::Down);
    let down_at = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let enough = {
            let samples = traffic.samples.lock().unwrap();
            ["/read", "/write"].iter().all(|route| {
                samples
                    .iter()
                    .filter(|s| s.route == *route && s.started == Phase::Down)
                    .filter(|s| s.ended == Phase::Down)
                    .count()
                    >= MIN_DOWN_SAMPLES
            })
        };
        if (enough && down_at.elapsed() >= MIN_DOWN) || down_at.elapsed() >= MAX_DOWN {
            break;
        }
    }

    // Back up: the same app must serve sessions again, without being rebuilt.
    traffic.set_phase(Phase::Starting);
    outage.end().await;
    let up_at = Instant::now();
    let probe = &traffic.cookies[SESSIONS - 1];
    let recovered = tokio::time::timeout(RECOVERY_BOUND, async {
        loop {
            if let Some(r) = send_within(&traffic.app, "/read", Some(probe), REQUEST_BOUND).await {
                if r.status == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let recovery = up_at.elapsed();
    assert!(
        recovered.is_ok(),
        "{service}: session routes still failed {RECOVERY_BOUND:?} after the server was back"
    );
    traffic.set_phase(Phase::Recovered);
    tokio::time::sleep(Duration::from_secs(1)).await;
    traffic.stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.unwrap();
    }

    let samples = std::mem::take(&mut *traffic.samples.lock().unwrap());
    check_traffic(service, &samples, recovery);
    check_sessions(service, &traffic).await;
}

fn check_traffic(service: &str, samples: &[Sample], recovery: Duration) {
    let count = |route: &str, phase: Phase| {
        samples
            .iter()
            .filter(|s| s.route == route && s.started == phase && s.ended == phase)
            .count()
    };
    // The requests made while the server was down first: they are the point of the test.
    let down = |s: &&Sample| s.started == Phase::Down && s.ended == Phase::Down;
    let (first, rest): (Vec<&Sample>, Vec<&Sample>) = samples.iter().partition(down);
    for s in first.into_iter().chain(rest) {
        // Nothing hangs, whatever the phase: a store must fail fast while its server is down.
        assert!(
            s.status.is_some(),
            "{service}: {} (session {:?}, {:?} -> {:?}) got no answer within {:?}{}",
            s.route,
            s.session,
            s.started,
            s.ended,
            s.bound,
            if s.route == "/plain" {
                ": a route without the session was held up by the store"
            } else {
                ": the store does not fail fast while its server is down"
            }
        );
        let status = s.status.unwrap();
        if s.route == "/plain" {
            assert_eq!(
                (status, &*s.body),
                (StatusCode::OK, "plain"),
                "{service}: a route without the session failed ({:?} -> {:?})",
                s.started,
                s.ended
            );
            continue;
        }
        match (s.started, s.ended) {
            (Phase::Down, Phase::Down) => {
                assert_eq!(
                    (status, &*s.body),
                    (StatusCode::INTERNAL_SERVER_ERROR, GENERIC_BODY),
                    "{service}: {} while the server was down",
                    s.route
                );
            }
            (Phase::Up, Phase::Up) | (Phase::Recovered, Phase::Recovered) => assert_eq!(
                status,
                StatusCode::OK,
                "{service}: {} failed while the server was up ({:?}): {}",
                s.route,
                s.started,
                s.body
            ),
            // In transition: either outcome, but a failure is the generic 500.
            _ => assert!(
                status == StatusCode::OK
                    || (status == StatusCode::INTERNAL_SERVER_ERROR && s.body == GENERIC_BODY),
                "{service}: {} answered {status} {:?} during a transition",
                s.route,
                s.body
            ),
        }
    }
    for route in ["/plain", "/read", "/write"] {
        for phase in [Phase::Up, Phase::Down, Phase::Recovered] {
            assert!(
                count(route, phase) > 0,
                "{service}: no {route} request started and ended in phase {phase:?}"
            );
        }
    }
    assert!(
        count("/read", Phase::Down) >= MIN_DOWN_SAMPLES
            && count("/write", Phase::Down) >= MIN_DOWN_SAMPLES,
        "{service}: too few session requests while the server was down"
    );

    let mut errors: Vec<Duration> = samples
        .iter()
        .filter(|s| s.route != "/plain" && s.started == Phase::Down && s.ended == Phase::Down)
        .map(|s| s.latency)
        .collect();
    errors.sort();
    let plain_max = samples
        .iter()
        .filter(|s| s.route == "/plain" && s.started == Phase::Down && s.ended == Phase::Down)
        .map(|s| s.latency)
        .max()
        .unwrap();
    println!(
        "{service}: {} requests; while down: {} /plain (all 200, max {plain_max:?}), \
         {} session requests (all 500; latency min {:?}, median {:?}, max {:?}); \
         sessions served again {recovery:?} after the server was back",
        samples.len(),
        count("/plain", Phase::Down),
        errors.len(),
        errors[0],
        errors[errors.len() / 2],
        errors[errors.len() - 1],
    );
}

/// Every session saved before the outage is still there, with its last acknowledged value.
async fn check_sessions(service: &str, traffic: &Traffic) {
    for (i, cookie) in traffic.cookies.iter().enumerate() {
        let r = send_within(&traffic.app, "/read", Some(cookie), REQUEST_BOUND)
            .await
            .expect("reading a session timed out");
        assert_eq!(r.status, StatusCode::OK, "{service}: reading session {i}");
        let value: i64 = r.body.parse().unwrap();
        let acked = traffic.acked[i].load(Ordering::SeqCst);
        // A write that failed may still have been saved (its reply was lost), never more.
        let unsure = traffic.failed_writes[i].load(Ordering::SeqCst);
        assert!(
            (acked..=acked + unsure).contains(&value),
            "{service}: session {i} reads {value} after the outage; its last acknowledged \
             write was {acked} (and {unsure} writes failed){}",
            if value == 0 {
                ": the session was lost"
            } else {
                ""
            }
        );
        if i >= WRITTEN {
            assert_eq!(value, 1, "{service}: read-only session {i} changed");
        }
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage() {
    let url = env_var("DATABASE_URL", "a PostgreSQL server");
    let script = env_var(
        "SESSIONWARE_SERVICES",
        "the path of .ci/services.sh, which stops and starts the servers",
    );
    let store = sessionware::PostgresStore::connect(&url)
        .await
        .unwrap()
        .with_table_name("sessionware_outage_test")
        .unwrap();
    store.migrate().await.unwrap();
    // A fast shutdown checkpoints, so every committed session survives the restart.
    outage(store, "postgres", script).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage() {
    let url = env_var("REDIS_URL", "a standalone Redis server");
    let script = env_var(
        "SESSIONWARE_SERVICES",
        "the path of .ci/services.sh, which stops and starts the servers",
    );
    let store = sessionware::RedisStore::connect(&url)
        .await
        .unwrap()
        .with_key_prefix("sessionware-test-outage:");
    // Sessions survive the restart only because .ci/services.sh runs the standalone Redis with
    // `appendonly yes` and `appendfsync always` (every acknowledged write is in the AOF before
    // the reply, and SHUTDOWN flushes it). Without persistence, Redis would come back empty and
    // the session check at the end would fail: that is Redis's configuration, not sessionware.
    outage(store, "redis", script).await;
}
