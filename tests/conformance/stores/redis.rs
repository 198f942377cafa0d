//! `RedisStore` on a standalone server (`REDIS_URL`) and on a Redis Cluster
//! (`REDIS_CLUSTER_URLS`, comma-separated node URLs), plus the tests only Redis needs: corrupt
//! data written straight into Redis, no raw id anywhere in Redis, native TTLs, and an outage.
//!
//! Every store gets its own random key prefix, so tests share the servers and run in parallel.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use serde_json::json;
use sessionware::store::{
    now, Applied, ChangeSet, Created, Cycled, Record, Rekey, SessionStore, Touched,
};
use sessionware::{RedisStore, SessionId, StoreError, StoreKey};

use crate::common::{env_url, send_ok};

fn unique_prefix() -> String {
    format!(
        "sessionware-test:{}:",
        SessionId::generate().store_key().short()
    )
}

fn cluster_urls() -> Vec<String> {
    env_url("REDIS_CLUSTER_URLS")
        .split(',')
        .map(|url| url.trim().to_owned())
        .filter(|url| !url.is_empty())
        .collect()
}

/// A second for each command: the index keeps an entry without its session for twice that.
const TIMEOUT: Duration = Duration::from_secs(1);

pub async fn redis() -> RedisStore {
    let url = env_url("REDIS_URL");
    RedisStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to REDIS_URL: {e}"))
        .with_key_prefix(unique_prefix())
        .with_timeout(TIMEOUT)
}

pub async fn redis_cluster() -> RedisStore {
    RedisStore::connect_cluster(cluster_urls())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to REDIS_CLUSTER_URLS: {e}"))
        .with_key_prefix(unique_prefix())
        .with_timeout(TIMEOUT)
}

#[async_trait::async_trait]
impl super::IndexProbe for RedisStore {
    async fn index_entries(&self, principal: &str) -> usize {
        let name = format!("{}p:{principal}", self.key_prefix());
        let mut count = redis::cmd("ZCARD");
        count.arg(name);
        if self.is_cluster() {
            let client = redis::cluster::ClusterClient::new(cluster_urls()).unwrap();
            let mut conn = client.get_async_connection().await.unwrap();
            count.query_async(&mut conn).await.unwrap()
        } else {
            count.query_async(&mut raw().await).await.unwrap()
        }
    }
    fn settle(&self) -> Duration {
        2 * TIMEOUT
    }
}

/// A plain connection to the standalone server, to look at and tamper with what the store wrote.
async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(env_url("REDIS_URL"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A plain cluster connection (routes each command by its key).
async fn raw_cluster() -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClient::new(cluster_urls())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

fn key() -> StoreKey {
    SessionId::generate().store_key()
}

fn redis_key(store: &RedisStore, key: &StoreKey) -> String {
    format!("{}{key}", store.key_prefix())
}

fn record(ttl_ms: i64) -> Record {
    let t = now();
    let data = [("a".to_owned(), json!(1))].into_iter().collect();
    Record::new(data, t + ttl_ms).with_created_at(t)
}

const HOUR: i64 = 3_600_000;

// ---------------------------------------------------------------------------------------------
// Corrupt data

/// Ways to damage a session in Redis; each must load as `StoreError::Corrupt`. `{key}` stands
/// for the session's Redis key.
const CORRUPTIONS: &[&[&[u8]]] = &[
    &[b"HSET", b"{key}", b"d:a", b"{not json"],
    &[b"HSET", b"{key}", b"d:a", b"\xff\xfe"],
    &[b"HSET", b"{key}", b"d:\xff", b"1"],
    &[b"HSET", b"{key}", b"m:e", b"soon"],
    &[b"HSET", b"{key}", b"m:x", b"forever"],
    &[b"HSET", b"{key}", b"stray", b"1"],
    &[b"HDEL", b"{key}", b"m:c"],
    // A key of the wrong type: a plain string.
    &[b"SET", b"{key}", b"garbage"],
];

async fn corrupt_rows<C>(store: RedisStore, conn: C)
where
    C: ConnectionLike + Clone + Send + 'static,
{
    for corruption in CORRUPTIONS {
        let conn = conn.clone();
        crate::suite::corrupt_row_is_not_a_panic(store.clone(), move |store, key| {
            let mut conn = conn.clone();
            async move {
                let name = redis_key(&store, &key);
                let mut cmd = redis::cmd(std::str::from_utf8(corruption[0]).unwrap());
                for arg in &corruption[1..] {
                    cmd.arg(if *arg == b"{key}" {
                        name.as_bytes()
                    } else {
                        arg
                    });
                }
                let _: redis::Value = cmd.query_async(&mut conn).await.unwrap();
                match store.load(&key).await {
                    Err(StoreError::Corrupt(message)) => {
                        assert!(message.contains(&key.short()), "{message}")
                    }
                    other => panic!("{corruption:?} loaded as {other:?}"),
                }
            }
        })
        .await;
    }
}

#[tokio::test]
async fn corrupt_row_is_not_a_panic() {
    corrupt_rows(redis().await, raw().await).await;
}

#[tokio::test]
async fn corrupt_row_is_not_a_panic_cluster() {
    corrupt_rows(redis_cluster().await, raw_cluster().await).await;
}

/// A hash whose deadline is unreadable is not a live session: writes say `Missing`, and create
/// takes the key over, whole: nothing of the dead hash shows through.
#[tokio::test]
async fn unreadable_deadline_is_not_live() {
    let store = redis().await;
    let mut conn = raw().await;
    let k = key();
    assert_eq!(
        store.create(&k, &record(HOUR)).await.unwrap(),
        Created::Done
    );
    let _: () = redis::cmd("HSET")
        .arg(redis_key(&store, &k))
        .arg("m:e")
        .arg("soon")
        .arg("d:stale")
        .arg("\"left over\"")
        .query_async(&mut conn)
        .await
        .unwrap();
    let changes = ChangeSet::new(now() + HOUR).with_update("b", Some(json!(2)));
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Missing);
    assert_eq!(
        store.touch(&k, now() + HOUR).await.unwrap(),
        Touched::Missing
    );
    let fresh = record(HOUR);
    assert_eq!(store.create(&k, &fresh).await.unwrap(), Created::Done);
    assert_eq!(store.load(&k).await.unwrap().unwrap().data, fresh.data);
    store.delete(&k).await.unwrap();
}

/// The store sends scripts by SHA-1; a server that lost them (restart, failover, `SCRIPT
/// FLUSH`) answers `NOSCRIPT`, and every operation loads its script and goes on. On a cluster
/// the flush reaches every node, and a cycle runs as create and release scripts.
async fn survives_script_flushes<C>(store: RedisStore, conn: C)
where
    C: ConnectionLike + Clone,
{
    let flush = || {
        let mut conn = conn.clone();
        async move {
            let _: () = redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    };
    let (k, moved) = (key(), key());
    flush().await;
    assert_eq!(
        store.create(&k, &record(HOUR)).await.unwrap(),
        Created::Done
    );
    flush().await;
    let changes = ChangeSet::new(now() + HOUR).with_update("b", Some(json!(2)));
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    flush().await;
    assert_eq!(store.touch(&k, now() + HOUR).await.unwrap(), Touched::Done);
    flush().await;
    let changes = ChangeSet::new(now() + HOUR).with_update("c", Some(json!(3)));
    assert_eq!(
        store.cycle(Rekey::new(&k, &moved), &changes).await.unwrap(),
        Cycled::Done
    );
    let data = store.load(&moved).await.unwrap().unwrap().data;
    assert_eq!(
        (data["a"].clone(), data["b"].clone(), data["c"].clone()),
        (json!(1), json!(2), json!(3))
    );
    let exists: i64 = redis::cmd("EXISTS")
        .arg(redis_key(&store, &k))
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    assert_eq!(exists, 0, "the old key is gone after the cycle");
    store.delete(&moved).await.unwrap();
}

#[tokio::test]
async fn scripts_survive_a_script_flush() {
    survives_script_flushes(redis().await, raw().await).await;
}

#[tokio::test]
async fn scripts_survive_a_script_flush_cluster() {
    survives_script_flushes(redis_cluster().await, raw_cluster().await).await;
}

// ---------------------------------------------------------------------------------------------
// No raw id in Redis

/// Every key under `prefix`, on one server.
async fn scan(conn: &mut impl ConnectionLike, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// Creates and cycles a session through the layer, then reads every key and value under the
/// store's prefix, on every server in `nodes`: only SHA-256 keys, never a raw id.
async fn ids_never_reach_redis(store: RedisStore, nodes: Vec<String>) {
    let prefix = store.key_prefix().to_owned();
    let app = super::login_app(store);
    // The id in the session cookie a reply sets.
    let id_set_by = |reply: crate::common::Reply| {
        let pair = reply.first_cookie().unwrap();
        pair.split_once('=').unwrap().1.to_owned()
    };
    let first = id_set_by(send_ok(&app, "/login", None).await);
    let second = id_set_by(send_ok(&app, "/cycle", Some(&format!("id={first}"))).await);
    assert_ne!(first, second);
    for id in [&first, &second] {
        assert!(
            SessionId::parse(id).is_some(),
            "the cookie holds a plain id"
        );
    }
    let expected = format!("{prefix}{}", SessionId::parse(&second).unwrap().store_key());

    let mut found = Vec::new();
    for node in nodes {
        let mut conn = redis::Client::open(node)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        for name in scan(&mut conn, &prefix).await {
            let fields: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL")
                .arg(&name)
                .query_async(&mut conn)
                .await
                .unwrap();
            for id in [&first, &second] {
                assert!(!name.contains(id.as_str()), "raw id in key {name}");
                for (field, value) in &fields {
                    for bytes in [field, value] {
                        let text = String::from_utf8_lossy(bytes);
                        assert!(!text.contains(id.as_str()), "raw id in {name}: {text}");
                    }
                }
            }
            found.push(name);
        }
    }
    // Only the cycled session is left, under the SHA-256 of its id.
    assert_eq!(found, vec![expected.clone()]);
    let digest = &expected[prefix.len()..];
    assert_eq!(digest.len(), 64);
    assert!(digest
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
}

#[tokio::test]
async fn raw_ids_never_reach_redis() {
    ids_never_reach_redis(redis().await, vec![env_url("REDIS_URL")]).await;
}

#[tokio::test]
async fn raw_ids_never_reach_redis_cluster() {
    // Every master: a cluster node's SCAN sees only its own slots.
    ids_never_reach_redis(redis_cluster().await, cluster_urls()).await;
}

// ---------------------------------------------------------------------------------------------
// Native TTL

async fn pttl(conn: &mut impl ConnectionLike, name: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(name)
        .query_async(conn)
        .await
        .unwrap()
}

/// Asserts that Redis will drop `key` close to `expires_at`.
async fn assert_ttl(
    conn: &mut impl ConnectionLike,
    store: &RedisStore,
    key: &StoreKey,
    expires_at: i64,
) {
    let ttl = pttl(conn, &redis_key(store, key)).await;
    let expected = expires_at - now();
    assert!(
        (ttl - expected).abs() < 1_000,
        "PTTL {ttl} ms, expected about {expected} ms"
    );
}

async fn native_ttl_follows_the_deadline(store: RedisStore, mut conn: impl ConnectionLike) {
    let (k, moved) = (key(), key());
    let rec = record(60_000);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    assert_ttl(&mut conn, &store, &k, rec.expires_at).await;

    let later = now() + 120_000;
    let changes = ChangeSet::new(later).with_update("b", Some(json!(2)));
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    assert_ttl(&mut conn, &store, &k, later).await;

    let sooner = now() + 30_000;
    assert_eq!(store.touch(&k, sooner).await.unwrap(), Touched::Done);
    assert_ttl(&mut conn, &store, &k, sooner).await;

    let cycled = now() + 90_000;
    assert_eq!(
        store
            .cycle(Rekey::new(&k, &moved), &ChangeSet::new(cycled))
            .await
            .unwrap(),
        Cycled::Done
    );
    assert_ttl(&mut conn, &store, &moved, cycled).await;
    assert_eq!(
        pttl(&mut conn, &redis_key(&store, &k)).await,
        -2,
        "the old key is gone"
    );

    // A deadline in the past: Redis drops the key at once.
    let past = ChangeSet::new(now() - 1);
    assert_eq!(store.apply(&moved, &past).await.unwrap(), Applied::Done);
    assert_eq!(pttl(&mut conn, &redis_key(&store, &moved)).await, -2);
    assert!(store.load(&moved).await.unwrap().is_none());
}

#[tokio::test]
async fn native_ttl_is_set() {
    native_ttl_follows_the_deadline(redis().await, raw().await).await;
}

#[tokio::test]
async fn native_ttl_is_set_cluster() {
    native_ttl_follows_the_deadline(redis_cluster().await, raw_cluster().await).await;
}

// ---------------------------------------------------------------------------------------------
// Cycle on a cluster

/// A cluster cycle onto a taken key changes neither session (step 2 stops it).
#[tokio::test]
async fn cluster_cycle_leaves_nothing_when_the_target_is_taken() {
    let store = redis_cluster().await;
    let mut conn = raw_cluster().await;
    let (old, taken) = (key(), key());
    assert_eq!(
        store.create(&old, &record(HOUR)).await.unwrap(),
        Created::Done
    );
    assert_eq!(
        store.create(&taken, &record(HOUR)).await.unwrap(),
        Created::Done
    );
    let changes = ChangeSet::new(now() + HOUR).with_update("a", Some(json!(2)));
    assert_eq!(
        store
            .cycle(Rekey::new(&old, &taken), &changes)
            .await
            .unwrap(),
        Cycled::Collision
    );
    assert_eq!(
        store.load(&old).await.unwrap().unwrap().data.get("a"),
        Some(&json!(1))
    );
    assert_eq!(
        store.load(&taken).await.unwrap().unwrap().data.get("a"),
        Some(&json!(1))
    );
    assert!(pttl(&mut conn, &redis_key(&store, &old)).await > 0);
}

/// A cycle's moved-id marker is a string next to the old key, in its slot (`{<old key>}:moved`),
/// holding its end on the application's clock and expiring then; the old key itself is gone, a
/// create may take it (the marker is no session), and a marker that is not a timestamp is
/// corrupt data rather than a panic.
async fn moved_marker_layout<C>(store: RedisStore, conn: C)
where
    C: ConnectionLike + Clone,
{
    let mut conn = conn;
    let (old, new) = (key(), key());
    assert_eq!(
        store.create(&old, &record(HOUR)).await.unwrap(),
        Created::Done
    );
    let before = now();
    assert_eq!(
        store
            .cycle(Rekey::new(&old, &new), &ChangeSet::new(now() + HOUR))
            .await
            .unwrap(),
        Cycled::Done
    );
    let marker = format!("{{{}}}:moved", redis_key(&store, &old));
    let until: i64 = redis::cmd("GET")
        .arg(&marker)
        .query_async(&mut conn)
        .await
        .unwrap();
    let lifetime = sessionware::store::MOVED_MARKER_MS;
    assert!(
        (before + lifetime..=now() + lifetime).contains(&until),
        "{until}"
    );
    let ttl = pttl(&mut conn, &marker).await;
    assert!(0 < ttl && ttl <= lifetime, "{ttl}");
    let exists: i64 = redis::cmd("EXISTS")
        .arg(redis_key(&store, &old))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    assert!(store.was_moved(&old).await.unwrap());

    assert_eq!(
        store.create(&old, &record(HOUR)).await.unwrap(),
        Created::Done
    );
    assert!(store.load(&old).await.unwrap().is_some());

    let _: () = redis::cmd("SET")
        .arg(&marker)
        .arg("soon")
        .query_async(&mut conn)
        .await
        .unwrap();
    match store.was_moved(&old).await {
        Err(StoreError::Corrupt(message)) => assert!(message.contains(&old.short()), "{message}"),
        other => panic!("a garbled marker read as {other:?}"),
    }
    for name in [marker, redis_key(&store, &old), redis_key(&store, &new)] {
        let _: i64 = redis::cmd("UNLINK")
            .arg(name)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn moved_marker() {
    moved_marker_layout(redis().await, raw().await).await;
}

#[tokio::test]
async fn moved_marker_cluster() {
    moved_marker_layout(redis_cluster().await, raw_cluster().await).await;
}

/// Cycles racing each other or a destroy: at most one new session, and it exists exactly when
/// its cycle says `Done`. On a cluster this exercises the last step's check that the old
/// session is still live (without it, two racing cycles would both "succeed" and copy the
/// session twice, and a cycle racing a logout would resurrect it under a new id).
async fn racing_cycles_leave_one_session(store: RedisStore) {
    let store = Arc::new(store);
    let changes = ChangeSet::new(now() + HOUR).with_update("b", Some(json!(2)));
    for _ in 0..20 {
        let (old, a, b) = (key(), key(), key());
        assert_eq!(
            store.create(&old, &record(HOUR)).await.unwrap(),
            Created::Done
        );
        let cycle = |new: StoreKey| {
            let (store, changes) = (store.clone(), changes.clone());
            tokio::spawn(
                async move { store.cycle(Rekey::new(&old, &new), &changes).await.unwrap() },
            )
        };
        let (first, second) = (cycle(a), cycle(b));
        let outcomes = [first.await.unwrap(), second.await.unwrap()];
        let mut live = 0;
        for (new, outcome) in [(a, outcomes[0]), (b, outcomes[1])] {
            let loaded = store.load(&new).await.unwrap();
            assert_eq!(loaded.is_some(), outcome == Cycled::Done, "{outcomes:?}");
            live += usize::from(loaded.is_some());
        }
        assert_eq!(live, 1, "{outcomes:?}");
        assert!(store.load(&old).await.unwrap().is_none());

        let (old, new) = (key(), key());
        assert_eq!(
            store.create(&old, &record(HOUR)).await.unwrap(),
            Created::Done
        );
        let destroy = {
            let store = store.clone();
            tokio::spawn(async move { store.delete(&old).await.unwrap() })
        };
        let outcome = store.cycle(Rekey::new(&old, &new), &changes).await.unwrap();
        destroy.await.unwrap();
        let loaded = store.load(&new).await.unwrap();
        assert_eq!(loaded.is_some(), outcome == Cycled::Done, "{outcome:?}");
        assert!(store.load(&old).await.unwrap().is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_cycles() {
    racing_cycles_leave_one_session(redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_cycles_cluster() {
    racing_cycles_leave_one_session(redis_cluster().await).await;
}

/// Thousands of values in one create or change set: the scripts send them in slices (Lua's
/// `unpack` has a limit of a few thousand values).
async fn large_sessions_round_trip(store: RedisStore) {
    let (k, moved) = (key(), key());
    let t = now();
    let data = (0..5_000).map(|i| (format!("k{i}"), json!(i))).collect();
    let rec = Record::new(data, t + HOUR).with_created_at(t);
    assert_eq!(store.create(&k, &rec).await.unwrap(), Created::Done);
    assert_eq!(store.load(&k).await.unwrap().unwrap().data, rec.data);

    let mut changes = ChangeSet::new(t + HOUR);
    for i in 0..5_000 {
        let value = (i % 2 == 0).then(|| json!(format!("v{i}")));
        changes = changes.with_update(format!("k{i}"), value);
    }
    for i in 5_000..9_000 {
        changes = changes.with_update(format!("k{i}"), Some(json!(i)));
    }
    let mut expected = rec.clone();
    changes.apply_to(&mut expected);
    assert_eq!(store.apply(&k, &changes).await.unwrap(), Applied::Done);
    assert_eq!(store.load(&k).await.unwrap().unwrap().data, expected.data);

    let cleared = changes.with_clear();
    cleared.apply_to(&mut expected);
    assert_eq!(
        store.cycle(Rekey::new(&k, &moved), &cleared).await.unwrap(),
        Cycled::Done
    );
    assert_eq!(
        store.load(&moved).await.unwrap().unwrap().data,
        expected.data
    );
    store.delete(&moved).await.unwrap();
}

#[tokio::test]
async fn large_sessions() {
    large_sessions_round_trip(redis().await).await;
}

#[tokio::test]
async fn large_sessions_cluster() {
    large_sessions_round_trip(redis_cluster().await).await;
}

// ---------------------------------------------------------------------------------------------
// Configuration and outages

#[tokio::test]
async fn debug_never_shows_credentials() {
    let url = env_url("REDIS_URL");
    let with_password = url.replacen("redis://", "redis://default:s3cret-pw@", 1);
    let store = RedisStore::connect(with_password.as_str()).await.unwrap();
    let debug = format!("{store:?}");
    assert!(debug.starts_with("RedisStore"), "{debug}");
    assert!(!debug.contains("s3cret-pw"), "{debug}");
    assert!(!store.is_cluster());
    assert_eq!(store.key_prefix(), RedisStore::DEFAULT_KEY_PREFIX);

    let cluster = redis_cluster().await;
    assert!(format!("{cluster:?}").starts_with("RedisStore"));
    assert!(cluster.is_cluster());

    // A server that is not there: a quick error that does not repeat the password.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = RedisStore::connect(format!("redis://default:s3cret-pw@127.0.0.1:{port}").as_str())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("s3cret-pw"), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bad_configuration_is_an_error() {
    for url in ["", "not a url", "http://127.0.0.1:6379"] {
        let result = RedisStore::connect(url).await;
        assert!(
            matches!(result, Err(StoreError::Backend(_))),
            "{url:?}: {result:?}"
        );
    }
    let none: [&str; 0] = [];
    for urls in [&none[..], &[" ", ""], &["not a url"]] {
        let result = RedisStore::connect_cluster(urls).await;
        assert!(
            matches!(result, Err(StoreError::Backend(_))),
            "{urls:?}: {result:?}"
        );
    }
    // Spaces around the URLs, as in `REDIS_CLUSTER_URLS="a, b"`, are fine.
    let spaced: Vec<String> = cluster_urls().iter().map(|u| format!(" {u} ")).collect();
    assert!(RedisStore::connect_cluster(&spaced)
        .await
        .unwrap()
        .is_cluster());
}

/// A TCP proxy in front of the standalone server that can cut, refuse or swallow connections.
struct Proxy {
    addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Forward,
    /// Connections are closed as soon as they are accepted.
    Refuse,
    /// Connections are accepted and never answered.
    BlackHole,
}

struct ProxyState {
    mode: Mode,
    connections: Vec<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ProxyState {
            mode: Mode::Forward,
            connections: Vec::new(),
        }));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut state = shared.lock().unwrap();
                let task = match state.mode {
                    Mode::Refuse => continue,
                    Mode::BlackHole => tokio::spawn(async move {
                        let _held = inbound;
                        std::future::pending::<()>().await
                    }),
                    Mode::Forward => tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    }),
                };
                state.connections.push(task);
            }
        });
        Self {
            addr,
            state,
            accept,
        }
    }

    /// Switches mode and cuts every open connection.
    fn set(&self, mode: Mode) {
        let mut state = self.state.lock().unwrap();
        state.mode = mode;
        for connection in state.connections.drain(..) {
            connection.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(Mode::Refuse);
        self.accept.abort();
    }
}

async fn redis_addr() -> SocketAddr {
    let url = env_url("REDIS_URL");
    let host_port = url
        .trim_start_matches("redis://")
        .rsplit('@')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    tokio::net::lookup_host(host_port)
        .await
        .unwrap()
        .next()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_fast_and_the_store_recovers() {
    let proxy = Proxy::start(redis_addr().await).await;
    let timeout = Duration::from_millis(1_000);
    let store = RedisStore::connect(format!("redis://{}", proxy.addr).as_str())
        .await
        .unwrap()
        .with_key_prefix(unique_prefix())
        .with_timeout(timeout);
    let k = key();
    assert_eq!(
        store.create(&k, &record(HOUR)).await.unwrap(),
        Created::Done
    );

    for mode in [Mode::Refuse, Mode::BlackHole] {
        proxy.set(mode);
        for _ in 0..3 {
            let started = Instant::now();
            let result = store.load(&k).await;
            assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
            let took = started.elapsed();
            assert!(
                took < timeout + Duration::from_millis(1_000),
                "took {took:?}"
            );
        }
    }

    // Redis is back: the connection manager reconnects by itself.
    proxy.set(Mode::Forward);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match store.load(&k).await {
            Ok(Some(record)) => {
                assert_eq!(record.data.get("a"), Some(&json!(1)));
                break;
            }
            other => assert!(
                Instant::now() < deadline,
                "not back after the outage: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.delete(&k).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// A cluster cycle racing writes to the old key

/// How many times each race below is run.
const RACES: usize = 200;

/// A cluster cycle is three steps (read, create the new key, release the old), so writes to the
/// old key can land between the read and the release. Whatever interleaving: every increment
/// and every take the store answered `Done` is in the session under its new key (an increment)
/// or gone from it (a take), and the values nobody took are still there, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_cycle_loses_no_racing_write() {
    let store = Arc::new(redis_cluster().await);
    let flashes: Vec<String> = (0..4).map(|i| format!("f{i}")).collect();
    for round in 0..RACES {
        let (old, new) = (key(), key());
        let expires_at = now() + HOUR;
        let mut data = sessionware::store::Data::new();
        data.insert("n".to_owned(), json!(0));
        for name in &flashes {
            data.insert(name.clone(), json!(true));
        }
        let record = Record::new(data, expires_at);
        assert_eq!(store.create(&old, &record).await.unwrap(), Created::Done);
        let barrier = Arc::new(tokio::sync::Barrier::new(3));

        // Increments n by compare-and-set until the session is gone from the old key.
        let incrementer = tokio::spawn({
            let (store, barrier) = (store.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                let mut saved = 0;
                while let Some(record) = store.load(&old).await.unwrap() {
                    let n = record.data["n"].clone();
                    let next = json!(n.as_i64().unwrap() + 1);
                    let change = ChangeSet::new(expires_at)
                        .with_expected("n", Some(n))
                        .with_update("n", Some(next));
                    match store.apply(&old, &change).await.unwrap() {
                        Applied::Done => saved += 1,
                        Applied::Conflict => {}
                        Applied::Missing => break,
                        other => panic!("{other:?}"),
                    }
                    if saved == 3 {
                        break;
                    }
                }
                saved
            }
        });
        // Takes the flash-like values one by one, as `take_flashes` does: each must still hold
        // what was read, and is removed.
        let taker = tokio::spawn({
            let (store, barrier, flashes) = (store.clone(), barrier.clone(), flashes.clone());
            async move {
                barrier.wait().await;
                let mut taken = Vec::new();
                for name in flashes {
                    let take = ChangeSet::new(expires_at)
                        .with_expected(name.clone(), Some(json!(true)))
                        .with_update(name.clone(), None);
                    match store.apply(&old, &take).await.unwrap() {
                        Applied::Done => taken.push(name),
                        Applied::Missing => break,
                        other => panic!("{other:?}"),
                    }
                }
                taken
            }
        });
        barrier.wait().await;
        // Spread the cycle over the writers' steps from one round to the next.
        tokio::time::sleep(Duration::from_micros((round % 10) as u64 * 150)).await;
        let cycled = store
            .cycle(Rekey::new(&old, &new), &ChangeSet::new(expires_at))
            .await
            .unwrap();
        assert_eq!(cycled, Cycled::Done, "round {round}");
        let saved = incrementer.await.unwrap();
        let taken = taker.await.unwrap();

        assert!(store.load(&old).await.unwrap().is_none());
        let moved = store.load(&new).await.unwrap().expect("the cycled session");
        assert_eq!(
            moved.data["n"],
            json!(saved),
            "round {round}: an increment answered Done is not in the cycled session"
        );
        let left: Vec<&String> = flashes
            .iter()
            .filter(|name| moved.data.contains_key(*name))
            .collect();
        for name in &flashes {
            let kept = moved.data.contains_key(name);
            assert!(
                kept != taken.contains(name),
                "round {round}: {name} was taken {} and is {} in the cycled session \
                 (taken {taken:?}, left {left:?})",
                if taken.contains(name) {
                    "once"
                } else {
                    "never"
                },
                if kept { "still" } else { "not" },
            );
        }
    }
}

/// The same race through the layer on a cluster: one request cycles the id while another runs
/// `update` and a third takes the flash messages. The update is in the session under its new id,
/// or `update` reported the session ended (`f(None)`, unsaved); each message is shown once, by
/// the racing page or under the new id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_cycle_racing_update_and_flashes_through_the_layer() {
    use axum::routing::get;
    use sessionware::{Error, Level, Session, SessionLayer};

    let app = crate::common::flash_routes()
        .route(
            "/start",
            get(|s: Session| async move {
                s.insert("n", 0).await?;
                for text in ["a", "b", "c"] {
                    s.flash(Level::Info, text).await?;
                }
                Ok::<_, Error>(())
            }),
        )
        .route(
            "/cycle",
            get(|s: Session| async move { s.cycle_id().await }),
        )
        .route(
            "/incr",
            get(|s: Session| async move {
                // -1: the session ended under the update (f(None) is never saved).
                let n = s
                    .update("n", |n: Option<i64>| n.map_or(-1, |n| n + 1))
                    .await?;
                Ok::<_, Error>(n.to_string())
            }),
        )
        .route(
            "/n",
            get(|s: Session| async move {
                Ok::<_, Error>(s.get::<i64>("n").await?.unwrap_or(-2).to_string())
            }),
        )
        .layer(SessionLayer::new(redis_cluster().await));
    let app = Arc::new(app);
    for round in 0..RACES {
        let cookie = send_ok(&app, "/start", None).await.cookie();
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let request = |path: &'static str| {
            let (app, barrier, cookie) = (app.clone(), barrier.clone(), cookie.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                send_ok(&app, path, Some(&cookie)).await
            })
        };
        let (cycle, incr, show) = (request("/cycle"), request("/incr"), request("/show"));
        let (cycle, incr, show) = (
            cycle.await.unwrap(),
            incr.await.unwrap(),
            show.await.unwrap(),
        );
        let moved = cycle.cookie();
        let n = send_ok(&app, "/n", Some(&moved)).await.body;
        match incr.body.as_str() {
            "1" => assert_eq!(n, "1", "round {round}: an update reported saved was lost"),
            "-1" => assert_eq!(n, "0", "round {round}: an unsaved update was saved"),
            other => panic!("round {round}: update answered {other}"),
        }
        let left = send_ok(&app, "/show", Some(&moved)).await.body;
        let mut shown: Vec<&str> = [show.body.as_str(), left.as_str()]
            .into_iter()
            .filter(|body| !body.is_empty())
            .flat_map(|body| body.split(','))
            .collect();
        shown.sort_unstable();
        assert_eq!(
            shown,
            ["info:a", "info:b", "info:c"],
            "round {round}: shown by the racing page {:?}, left under the new id {left:?}",
            show.body
        );
    }
}
