//! Benchmarks of the core: allocate+release through the pool index the planner uses, pool
//! selection among many pools, the auto-pool scale-up decision, and (printed before the
//! benchmarks run) the memory of a fully allocated pool's allocation bitmap.
//!
//! `cargo bench -p spiderpool-benches --bench core`
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion};
use spiderpool_benches::core_fixtures::{
    autopool_world, filled_index, holder, memory_report, plan_world, select_world, SIZES,
};
use spiderpool_core::allocate::{
    plan_allocate_cached, plan_release_cached, PoolIndex, PoolIndexes,
};
use spiderpool_core::autopool::{plan_auto_pools, AutoPoolConfig};
use spiderpool_core::ip::IpSet;
use spiderpool_core::model::{Object, PoolIPAllocation};
use spiderpool_core::request::IpamConfig;
use spiderpool_core::select::candidates_in;
use spiderpool_core::store::Write;

/// Short measurements: the whole run takes a few minutes.
fn short() -> Criterion {
    Criterion::default()
        .sample_size(15)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

fn alloc_release(c: &mut Criterion) {
    let mut g = c.benchmark_group("core/alloc_release");
    for (size, _, _) in SIZES {
        for fill in [0u32, 50, 99] {
            let (mut index, reserved) = filled_index(size, fill);
            let record = Arc::new(PoolIPAllocation {
                pod: "bench/pod-0".into(),
                pod_uid: "0d6e1f5c-9a7b-4c1e-8f00-000000000000".into(),
                interface: Some("eth0".into()),
                extra: Default::default(),
            });
            let mut journal = Vec::new();
            g.bench_function(BenchmarkId::new(size, format!("fill_{fill}")), |b| {
                b.iter(|| {
                    let ip = index
                        .allocate(record.clone(), &reserved, &mut journal)
                        .unwrap();
                    index.release(ip, &mut journal);
                    journal.clear();
                    black_box(ip)
                })
            });
        }
    }
    g.finish();
}

/// The whole planner (plan_allocate then plan_release, the pool write's JSON encoding
/// included) with a warm index cache, on the pool's snapshot updated as a store would.
fn plan_alloc_release(c: &mut Criterion) {
    let mut g = c.benchmark_group("core/plan_alloc_release");
    for size in ["v4_24", "v4_16"] {
        for fill in [0u32, 50, 99] {
            let (mut snap, add, del) = plan_world(size, fill);
            let cfg = IpamConfig::default();
            let mut cache = PoolIndexes::default();
            let apply = |snap: &mut spiderpool_core::allocate::Snapshot, writes: Vec<Write>| {
                for w in writes {
                    match w {
                        Write::Update {
                            object: Object::IpPool(p),
                            ..
                        } => snap.pools[0].0 = p,
                        Write::Create(Object::Endpoint(e)) => {
                            snap.endpoint = Some((e, spiderpool_core::store::Revision("1".into())))
                        }
                        Write::Delete { .. } => snap.endpoint = None,
                        _ => {}
                    }
                }
            };
            g.bench_function(BenchmarkId::new(size, format!("fill_{fill}")), |b| {
                b.iter(|| {
                    let plan = plan_allocate_cached(&add, &snap, &cfg, &mut cache).unwrap();
                    cache.settle(true);
                    apply(&mut snap, plan.writes);
                    let plan = plan_release_cached(&del, &snap, &cfg, &mut cache).unwrap();
                    cache.settle(true);
                    apply(&mut snap, plan.writes);
                })
            });
        }
    }
    g.finish();
}

/// Decoding a stored pool, as a plugin process does once per call: the spec's usable
/// addresses, then every record of `status.allocatedIPs` (`PoolIndex::from_pool`). The /64 is
/// a pool over the whole subnet, whose first and last 2^32 blocks are all but full.
fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("core/decode");
    for (size, fill) in [("v4_24", 99u32), ("v4_16", 0), ("v4_16", 50), ("v6_64", 0)] {
        let (snap, _, _) = plan_world(size, fill);
        let pool = snap.pools[0].0.clone();
        g.bench_function(BenchmarkId::new(size, format!("fill_{fill}")), |b| {
            b.iter(|| PoolIndex::from_pool(black_box(&pool)).unwrap())
        });
    }
    g.finish();
}

/// Following another writer's revision of a pool this process has decoded before, as a
/// long-lived engine sharing the pool with others does before a plan
/// (`PoolIndex::followed`): the other writer released 8 addresses and gave 4 of them to new
/// pods since.
/// Compare with `core/decode` of the same pool: what following saves on each such plan.
fn follow(c: &mut Criterion) {
    let mut g = c.benchmark_group("core/follow");
    for (size, fill) in [("v4_24", 99u32), ("v4_16", 50)] {
        let (snap, _, _) = plan_world(size, fill);
        let pool = snap.pools[0].0.clone();
        let follower = PoolIndex::from_pool(&pool).unwrap();
        let mut writer = follower.clone();
        let mut journal = Vec::new();
        let none = IpSet::new(writer.family());
        // 8 records released, 4 of their addresses given to new holders: 8 changed.
        let held: Vec<_> = writer.allocated().iter().step_by(7).take(8).collect();
        for a in held {
            writer.release(a, &mut journal);
        }
        for i in 0..4 {
            let holder = Arc::new(holder(900_000 + i));
            writer.allocate(holder, &none, &mut journal).unwrap();
        }
        let mut newer = pool.clone();
        newer.status.allocated_ips = writer.encode_written();
        g.bench_function(
            BenchmarkId::new(size, format!("fill_{fill}_changed_8")),
            |b| {
                b.iter_batched(
                    || follower.clone(),
                    |f| black_box(f.followed(&newer).unwrap()),
                    BatchSize::LargeInput,
                )
            },
        );
    }
    g.finish();
}

fn select(c: &mut Criterion) {
    let mut g = c.benchmark_group("core/select");
    let cfg = IpamConfig::default();
    for n in [10usize, 1000, 10000] {
        let (snap, named, defaults) = select_world(n);
        // Built once per snapshot (O(pools)); measured separately below.
        let catalog = snap.catalog();
        g.bench_function(format!("pools_{n}"), |b| {
            b.iter(|| black_box(candidates_in(&named, &snap.pools[..], catalog, &cfg).unwrap()))
        });
        g.bench_function(format!("defaults_pools_{n}"), |b| {
            b.iter(|| black_box(candidates_in(&defaults, &snap.pools[..], catalog, &cfg).unwrap()))
        });
        g.bench_function(format!("catalog_build_pools_{n}"), |b| {
            b.iter(|| black_box(spiderpool_core::select::PoolCatalog::new(&snap.pools[..])))
        });
    }
    g.finish();
}

fn autopool(c: &mut Criterion) {
    let mut g = c.benchmark_group("core/autopool");
    for n in [10u64, 1000] {
        let (app, subnets, pools, reserved) = autopool_world(n);
        let cfg = AutoPoolConfig::default();
        g.bench_function(format!("scale_{n}"), |b| {
            b.iter(|| {
                let w = plan_auto_pools(&app, &subnets, &pools, &reserved, &cfg).unwrap();
                assert!(!w.is_empty());
                black_box(w)
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = short();
    let list = std::env::args().any(|a| a == "--list");
    if !list {
        memory_report();
    }
    alloc_release(&mut c);
    plan_alloc_release(&mut c);
    decode(&mut c);
    follow(&mut c);
    select(&mut c);
    autopool(&mut c);
    c.final_summary();
}
