//! Measures what `MemoryStore` costs per session, against the hand-written floor's map.
//!
//! ```text
//! cargo run --release --manifest-path benchmark/capacity/Cargo.toml --bin memory_footprint   # 1,000,000 sessions
//! SESSIONS=100000 cargo run --release --manifest-path benchmark/capacity/Cargo.toml --bin memory_footprint
//! MAP=floor cargo run --release --manifest-path benchmark/capacity/Cargo.toml --bin memory_footprint  # the floor's map
//! ```
//!
//! Each session holds one small value, `{"counter": n}`, as in the benchmarks. The figure is the
//! growth of the process's resident memory (Linux `/proc/self/status`) divided by the count.
//! `MAP=floor` fills what `benchmark/src/bin/floor.rs` keeps instead: one `HashMap` from a UUID
//! to the session's JSON text, no hashed key, no expiry, no sharding.

use std::collections::HashMap;
use std::time::Duration;

use sessionware::store::{now, Record, SessionStore};
use sessionware::{MemoryStore, SessionId};

fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let count: usize = std::env::var("SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let floor = std::env::var("MAP").is_ok_and(|map| map == "floor");
    // Draw the ids first, so only the map's own memory is measured.
    let keys: Vec<_> = (0..count)
        .map(|_| SessionId::generate().store_key())
        .collect();
    let uuids: Vec<_> = (0..if floor { count } else { 0 })
        .map(|_| uuid::Uuid::new_v4())
        .collect();
    let Some(before) = resident_kib() else {
        eprintln!("this tool reads /proc/self/status and needs Linux");
        return;
    };
    // Measured while the map is alive: dropping it may hand its pages back.
    let report = |name: &str| {
        let after = resident_kib().unwrap_or(before);
        let bytes = (after.saturating_sub(before)) * 1024;
        println!(
            "{name}: {count} sessions, {:.1} MiB resident, {:.0} bytes per session",
            bytes as f64 / (1024.0 * 1024.0),
            bytes as f64 / count as f64
        );
    };
    if floor {
        let mut map = HashMap::new();
        for (n, id) in uuids.iter().enumerate() {
            map.insert(*id, serde_json::json!({ "counter": n }).to_string());
        }
        report("floor's HashMap<Uuid, String>");
        assert_eq!(map.len(), count);
    } else {
        let store = MemoryStore::default();
        let t = now();
        for (n, key) in keys.iter().enumerate() {
            let data = [("counter".to_owned(), serde_json::json!(n))].into();
            let record = Record::new(data, t + Duration::from_secs(3600)).with_created_at(t);
            let _ = store.create(key, &record).await;
        }
        report("MemoryStore");
        assert_eq!(store.len(), count);
    }
}
