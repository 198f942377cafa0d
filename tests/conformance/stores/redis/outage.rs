//! Configuration and outages: `Debug` never shows credentials, a bad configuration is an error,
//! and through a TCP proxy that cuts, refuses or swallows connections, an outage fails fast and
//! the store recovers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sessionware::store::{Created, SessionStore};
use sessionware::{RedisStore, StoreError};

use crate::common::env_url;

use super::{cluster_urls, key, record, redis_cluster, unique_prefix, HOUR};

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
