//! `store/etcd/alloc_{1,8,64}`: allocations per second with 1, 8 and 64 concurrent allocators
//! (tasks sharing one `EtcdStore`) on one pool of a real loopback etcd, started by the
//! benchmark with its data on tmpfs ([`BenchEtcd`]; `SPIDERPOOL_BENCH_ETCD_DIR` moves it) and
//! stopped with it. Each iteration uses a fresh key prefix and a fresh pool; every allocator
//! allocates for `max(256 / allocators, 4)` pods; duplicates fail the benchmark.
//!
//! The process uses mimalloc, as `spiderpoolctl` does: a third of the client's CPU here was
//! glibc's `malloc`/`free` and its arena locks (64 tasks on 2 threads). With glibc's allocator
//! the figures are 15–25 % lower (docs/performance.md).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backend_etcd::{EtcdConfig, EtcdStore};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use spiderpool_benches::{concurrent_allocations, BenchEtcd};

static ROUND: AtomicUsize = AtomicUsize::new(0);

/// See the module docs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn etcd(c: &mut Criterion) {
    let server = BenchEtcd::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("store/etcd");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for allocators in [1usize, 8, 64] {
        let per = (256 / allocators).max(4);
        group.throughput(Throughput::Elements((allocators * per) as u64));
        group.bench_function(format!("alloc_{allocators}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let n = ROUND.fetch_add(1, Ordering::SeqCst);
                    let mut cfg = EtcdConfig::new(&[]);
                    cfg.endpoints = server.endpoints();
                    cfg.prefix = format!("/bench-{n}/");
                    total += rt.block_on(async {
                        let store = Arc::new(EtcdStore::connect(&cfg).await.unwrap());
                        concurrent_allocations(store, "p", allocators, per).await
                    });
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, etcd);
criterion_main!(benches);
