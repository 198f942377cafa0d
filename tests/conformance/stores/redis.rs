//! `RedisStore` on a standalone server (`REDIS_URL`) and on a Redis Cluster
//! (`REDIS_CLUSTER_URLS`, comma-separated node URLs), plus the tests only Redis needs: corrupt
//! data written straight into Redis, no raw id anywhere in Redis, native TTLs, and an outage.
//!
//! Every store gets its own random key prefix, so tests share the servers and run in parallel.
//!
//! This file builds the stores and holds the helpers; the Redis-only checks are in `redis/`:
//! `garbage.rs`, `layout.rs`, `cluster.rs` and `outage.rs`.

use std::time::Duration;

use redis::aio::ConnectionLike;
use serde_json::json;
use sessionware::store::{now, Record};
use sessionware::{RedisStore, SessionId, StoreKey};

use crate::common::env_url;

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

/// Two seconds for each command (the store's default): the index keeps an entry without its
/// session for twice that. With one second, a command to the cluster now and then ran out of
/// time while CI ran the whole suite at once on two cores, and a racing request answered 500.
const TIMEOUT: Duration = Duration::from_secs(2);

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

fn record(ttl: Duration) -> Record {
    let t = now();
    let data = [("a".to_owned(), json!(1))].into_iter().collect();
    Record::new(data, t + ttl).with_created_at(t)
}

const HOUR: Duration = Duration::from_secs(3600);

async fn pttl(conn: &mut impl ConnectionLike, name: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(name)
        .query_async(conn)
        .await
        .unwrap()
}

mod cluster;
mod garbage;
mod kept_size;
mod layout;
mod outage;
