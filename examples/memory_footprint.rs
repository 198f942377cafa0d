//! Measures what `MemoryStore` costs per session.
//!
//! ```text
//! cargo run --release --example memory_footprint            # 1,000,000 sessions
//! SESSIONS=100000 cargo run --release --example memory_footprint
//! ```
//!
//! Each session holds one small value, `{"counter": n}`, as in the benchmarks. The figure is the
//! growth of the process's resident memory (Linux `/proc/self/status`) divided by the count.

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
    // Draw the ids first, so only the store's own memory is measured.
    let keys: Vec<_> = (0..count)
        .map(|_| SessionId::generate().store_key())
        .collect();
    let store = MemoryStore::default();
    let Some(before) = resident_kib() else {
        eprintln!("this example reads /proc/self/status and needs Linux");
        return;
    };
    let t = now();
    for (n, key) in keys.iter().enumerate() {
        let data = [("counter".to_owned(), serde_json::json!(n))].into();
        let record = Record::new(data, t + 3_600_000).with_created_at(t);
        let _ = store.create(key, &record).await;
    }
    let after = resident_kib().unwrap_or(before);
    let bytes = (after.saturating_sub(before)) * 1024;
    println!(
        "MemoryStore: {count} sessions, {:.1} MiB resident, {:.0} bytes per session",
        bytes as f64 / (1024.0 * 1024.0),
        bytes as f64 / count as f64
    );
    assert_eq!(store.len(), count);
}
