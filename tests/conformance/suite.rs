//! The store contract, one test function per point. Each takes a fresh store handle; tests use
//! random keys, so they may share a backend and run in parallel. The points are grouped by
//! concept in the modules below and re-exported here, where the `conformance!` macro and the
//! stores' own tests name them (`crate::suite::NAME`); this module holds the helpers they share.

use serde_json::Value;
use sessionware::store::{now, Record, SessionStore};
use sessionware::{SessionId, StoreKey};
use std::time::Duration;

fn key() -> StoreKey {
    SessionId::generate().store_key()
}

fn record(data: Value, ttl: Duration) -> Record {
    let data = match data {
        Value::Object(map) => map.into_iter().collect(),
        _ => panic!("record data must be an object"),
    };
    let t = now();
    Record::new(data, t + ttl).with_created_at(t)
}

const HOUR: Duration = Duration::from_secs(3600);

async fn must_load(store: &impl SessionStore, key: &StoreKey) -> Record {
    store
        .load(key)
        .await
        .unwrap()
        .expect("session should exist")
}

mod change_sets;
mod lifecycle;
mod size;
mod volume;

pub use change_sets::*;
pub use lifecycle::*;
pub use size::*;
pub use volume::*;
