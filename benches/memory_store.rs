//! `MemoryStore` create / load / apply, on 1 and 2 threads, with 10,000 and 1,000,000 sessions
//! already present: the cost per operation should not grow with the count (no global lock, no
//! scan).
//!
//! What does grow is the price of memory itself: 10,000 sessions fit in the CPU caches,
//! 1,000,000 (about 200 MiB) do not, so every lookup of a random session misses them. The
//! `baseline/load` rows measure that floor, a lookup in one plain `std` `HashMap` of the same
//! size with no lock and no store around it; the store's own cost is the difference, and that
//! stays flat.
//!
//! ```text
//! cargo bench --bench memory_store
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::json;
use sessionware::store::{now, Applied, ChangeSet, Created, Record, SessionStore};
use sessionware::{MemoryStore, SessionId, StoreKey};

fn record() -> Record {
    let t = now();
    Record::new(
        [("counter".to_owned(), json!(1))].into(),
        t + Duration::from_secs(3600),
    )
    .with_created_at(t)
}

/// A store holding `count` sessions, and their keys.
fn filled(count: usize) -> (MemoryStore, Arc<Vec<StoreKey>>) {
    let store = MemoryStore::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let keys: Vec<StoreKey> = (0..count)
        .map(|_| SessionId::generate().store_key())
        .collect();
    rt.block_on(async {
        for key in &keys {
            let _ = store.create(key, &record()).await;
        }
    });
    (store, Arc::new(keys))
}

/// Runs `iters` operations split over `threads` threads; returns the wall time.
fn run<F>(threads: usize, iters: u64, op: F) -> Duration
where
    F: Fn(u64) + Send + Sync + 'static,
{
    let op = Arc::new(op);
    let per_thread = iters / threads as u64 + 1;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let op = op.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    op(i * threads as u64 + t as u64);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed()
}

/// Polls a `MemoryStore` future, which never waits, without a runtime in the measured loop.
fn now_or_never<F: std::future::Future>(future: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("MemoryStore operations complete immediately"),
    }
}

fn memory_store(c: &mut Criterion) {
    let mut group = c.benchmark_group("memory_store");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    for count in [10_000, 1_000_000] {
        let (store, keys) = filled(count);
        let baseline: Arc<HashMap<StoreKey, Box<str>>> = Arc::new(
            keys.iter()
                .map(|key| (*key, Box::from(r#"{"counter":1}"#)))
                .collect(),
        );
        group.bench_function(BenchmarkId::new("baseline/load/1t", count), |b| {
            let (map, keys) = (baseline.clone(), keys.clone());
            b.iter_custom(|iters| {
                let (map, keys) = (map.clone(), keys.clone());
                run(1, iters, move |i| {
                    let key = &keys[i as usize % keys.len()];
                    assert!(std::hint::black_box(map.get(key)).is_some());
                })
            });
        });
        drop(baseline);
        for threads in [1, 2] {
            let id = |op: &str| BenchmarkId::new(format!("{op}/{threads}t"), count);
            group.bench_function(id("load"), |b| {
                let (store, keys) = (store.clone(), keys.clone());
                b.iter_custom(|iters| {
                    let (store, keys) = (store.clone(), keys.clone());
                    run(threads, iters, move |i| {
                        let key = &keys[i as usize % keys.len()];
                        assert!(now_or_never(store.load(key)).unwrap().is_some());
                    })
                });
            });
            group.bench_function(id("apply"), |b| {
                let (store, keys) = (store.clone(), keys.clone());
                b.iter_custom(|iters| {
                    let (store, keys) = (store.clone(), keys.clone());
                    run(threads, iters, move |i| {
                        let key = &keys[i as usize % keys.len()];
                        let changes = ChangeSet::new(now() + Duration::from_millis(3_600_000))
                            .with_set("counter", json!(i));
                        assert_eq!(
                            now_or_never(store.apply(key, &changes)).unwrap(),
                            Applied::Done
                        );
                    })
                });
            });
            group.bench_function(id("create"), |b| {
                let store = store.clone();
                b.iter_custom(|iters| {
                    // Fresh keys drawn outside the timed loop; the sessions are removed after.
                    let fresh: Arc<Vec<StoreKey>> = Arc::new(
                        (0..iters as usize + threads)
                            .map(|_| SessionId::generate().store_key())
                            .collect(),
                    );
                    let (s, f) = (store.clone(), fresh.clone());
                    let elapsed = run(threads, iters, move |i| {
                        assert_eq!(
                            now_or_never(s.create(&f[i as usize], &record())).unwrap(),
                            Created::Done
                        );
                    });
                    for key in fresh.iter() {
                        now_or_never(store.delete(key)).unwrap();
                    }
                    elapsed
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, memory_store);
criterion_main!(benches);
