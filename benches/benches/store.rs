//! `store/memory/alloc` and `store/local/alloc`: allocations per second through the driver
//! ([`spiderpool_core::ipam::Ipam`]) on the in-process stores, one allocator, a fresh store
//! and pool per iteration (`concurrent_allocations` with one allocator). The local store
//! writes its journal with `fsync` in a fresh directory under the system temp directory
//! (`TMPDIR`), as the plugin does in `/var/lib/spiderpool`.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backend_memory::{LocalStore, MemoryStore};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use spiderpool_benches::concurrent_allocations;

/// Allocations per iteration on the memory store.
const MEMORY_ALLOCS: usize = 256;
/// Allocations per iteration on the local store (each one an fsync'd journal append).
const LOCAL_ALLOCS: usize = 64;

static ROUND: AtomicUsize = AtomicUsize::new(0);

fn store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("store");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.throughput(Throughput::Elements(MEMORY_ALLOCS as u64));
    group.bench_function("memory/alloc", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(concurrent_allocations(
                    Arc::new(MemoryStore::new()),
                    "p",
                    1,
                    MEMORY_ALLOCS,
                ));
            }
            total
        });
    });

    group.throughput(Throughput::Elements(LOCAL_ALLOCS as u64));
    group.bench_function("local/alloc", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = std::env::temp_dir().join(format!(
                    "spiderpool-bench-local-{}-{}",
                    std::process::id(),
                    ROUND.fetch_add(1, Ordering::SeqCst)
                ));
                let store = Arc::new(LocalStore::open(&dir).unwrap());
                total += rt.block_on(concurrent_allocations(store, "p", 1, LOCAL_ALLOCS));
                let _ = std::fs::remove_dir_all(&dir);
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
