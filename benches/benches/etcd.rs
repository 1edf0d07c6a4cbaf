//! `store/etcd/alloc_{1,8,64}`: allocations per second with 1, 8 and 64 concurrent allocators
//! on one pool of a real loopback etcd (started by the benchmark, stopped with it).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backend_etcd::{EtcdConfig, EtcdStore};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use spiderpool_benches::concurrent_allocations;

static ROUND: AtomicUsize = AtomicUsize::new(0);

fn etcd(c: &mut Criterion) {
    let cluster = spiderpool_testkit::etcd::shared();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("store/etcd");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for allocators in [1usize, 8, 64] {
        let per = (256 / allocators).max(4);
        group.throughput(Throughput::Elements((allocators * per) as u64));
        group.bench_function(BenchmarkId::new("alloc", allocators), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let n = ROUND.fetch_add(1, Ordering::SeqCst);
                    let mut cfg = EtcdConfig::new(&[]);
                    cfg.endpoints = cluster.endpoints();
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
