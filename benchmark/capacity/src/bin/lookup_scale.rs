//! What a session lookup costs at 100,000 and at 10,000,000 sessions, in `MemoryStore` and in
//! the hand-written floor's map, on one thread, with nothing else running.
//!
//! ```text
//! cargo run --release --manifest-path benchmark/capacity/Cargo.toml --bin lookup_scale
//! SIZES=100000,1000000,10000000 LOOKUPS=2000000 cargo run --release --manifest-path benchmark/capacity/Cargo.toml --bin lookup_scale
//! ```
//!
//! For each size, the store (or the floor's `HashMap<Uuid, String>`, as
//! `benchmark/src/bin/floor.rs` keeps it) is filled with sessions of one small value, then
//! `LOOKUPS` loads (the floor: a `get` and a clone of the JSON text, what its `/read` does) of
//! sessions drawn at random, and as many one-key writes (`apply`; the floor: `insert` of new
//! text), are timed. The ratio of the largest size to the smallest is what the size of the
//! store alone costs a request: when the floor's ratio is the store's, the cost is the
//! machine's (caches and TLB missing on a table of gigabytes), not the store's code.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::json;
use sessionware::store::{now, ChangeSet, Created, Record, SessionStore};
use sessionware::{MemoryStore, SessionId};

/// A small, fast generator for the random picks (xorshift64*): the picks must not cost more
/// than the lookups they choose.
struct Picks(u64);

impl Picks {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % below as u64) as usize
    }
}

fn per_op(elapsed: Duration, ops: usize) -> f64 {
    elapsed.as_nanos() as f64 / ops as f64
}

/// ns per load and per write in a `MemoryStore` of `size` sessions.
async fn store(size: usize, lookups: usize) -> (f64, f64) {
    let store = MemoryStore::default();
    let keys: Vec<_> = (0..size)
        .map(|_| SessionId::generate().store_key())
        .collect();
    let deadline = now() + Duration::from_secs(3600);
    for (n, key) in keys.iter().enumerate() {
        let record = Record::new([("counter".to_owned(), json!(n))].into(), deadline);
        let created = store.create(key, &record).await.expect("memory store");
        assert_eq!(created, Created::Done);
    }
    let mut picks = Picks(0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    for _ in 0..lookups {
        let key = &keys[picks.next(size)];
        black_box(store.load(key).await.expect("memory store"));
    }
    let load = per_op(started.elapsed(), lookups);
    let started = Instant::now();
    for n in 0..lookups {
        let key = &keys[picks.next(size)];
        let changes = ChangeSet::new(deadline).with_set("counter", json!(n));
        let _ = black_box(store.apply(key, &changes).await.expect("memory store"));
    }
    (load, per_op(started.elapsed(), lookups))
}

/// The same for the floor's map.
fn floor(size: usize, lookups: usize) -> (f64, f64) {
    let ids: Vec<_> = (0..size).map(|_| uuid::Uuid::new_v4()).collect();
    let mut map = HashMap::with_capacity(0);
    for (n, id) in ids.iter().enumerate() {
        map.insert(*id, json!({ "counter": n }).to_string());
    }
    let mut picks = Picks(0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    for _ in 0..lookups {
        let id = &ids[picks.next(size)];
        black_box(map.get(id).cloned());
    }
    let load = per_op(started.elapsed(), lookups);
    let started = Instant::now();
    for n in 0..lookups {
        let id = ids[picks.next(size)];
        black_box(map.insert(id, json!({ "counter": n }).to_string()));
    }
    (load, per_op(started.elapsed(), lookups))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sizes: Vec<usize> = std::env::var("SIZES")
        .unwrap_or_else(|_| "100000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let lookups: usize = std::env::var("LOOKUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    println!("| sessions | MemoryStore load ns | apply ns | floor get+clone ns | insert ns |");
    println!("|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for &size in &sizes {
        let (load, apply) = store(size, lookups).await;
        let (get, insert) = floor(size, lookups);
        println!("| {size} | {load:.0} | {apply:.0} | {get:.0} | {insert:.0} |");
        rows.push((load, apply, get, insert));
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        println!(
            "largest / smallest: load {:.2}, apply {:.2}; floor get {:.2}, insert {:.2}",
            last.0 / first.0,
            last.1 / first.1,
            last.2 / first.2,
            last.3 / first.3
        );
    }
}
