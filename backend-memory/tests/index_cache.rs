//! The driver's pool-index cache: a long-lived engine decodes a pool once, then recognises
//! the pool as it wrote it, so a run of allocations and releases decodes nothing more; a
//! write by another engine is noticed and followed (only what it changed is decoded).
#![allow(clippy::unwrap_used)]

use backend_memory::MemoryStore;
use spiderpool_core::annotations::ANNO_IPPOOLS;
use spiderpool_core::ipam::{IndexCache, Ipam};
use spiderpool_core::request::AllocateRequest;
use spiderpool_testkit::check_invariants;
use spiderpool_testkit::fixtures::{add, block_on_ready, del, put_pool, with_annotations};

fn pod(i: usize) -> AllocateRequest {
    with_annotations(
        add("ns", &format!("a{i}"), &format!("u{i}")),
        &[(ANNO_IPPOOLS, r#"[{"interface":"eth0","ipv4":["p"]}]"#)],
    )
}

/// A memory store with pool `p`: 10.6.0.1 up to 10.6.0.`last`.
fn store_with_pool(last: u8) -> MemoryStore {
    let store = MemoryStore::new();
    let spec = format!("subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.{last}]");
    block_on_ready(put_pool(&store, "p", &spec));
    store
}

#[test]
fn a_run_of_plans_decodes_the_pool_once_and_a_foreign_write_once_more() {
    let store = store_with_pool(200);
    let ipam = Ipam::new(&store);
    for i in 0..40 {
        let got = block_on_ready(ipam.allocate(&pod(i))).unwrap();
        assert_eq!(
            got[0].ipv4.as_deref(),
            Some(&*format!("10.6.0.{}/24", i + 1))
        );
    }
    for i in (0..40).step_by(3) {
        block_on_ready(ipam.release(&del("ns", &format!("a{i}"), &format!("u{i}")))).unwrap();
    }
    assert_eq!(ipam.decoded_pools(), 1, "decoded once, then recognised");
    // Another engine writes the pool: the first one sees a pool it did not write.
    let other = Ipam::new(&store);
    block_on_ready(other.allocate(&pod(100))).unwrap();
    let got = block_on_ready(ipam.allocate(&pod(101))).unwrap();
    // The lowest free address after the other engine took 10.6.0.1 (freed above).
    assert_eq!(got[0].ipv4.as_deref(), Some("10.6.0.4/24"));
    assert_eq!(
        ipam.decoded_pools(),
        1,
        "the other engine's write is followed"
    );
    assert_eq!(ipam.followed_pools(), 1);
    block_on_ready(check_invariants(&store)).unwrap();
}

#[test]
fn two_engines_taking_turns_follow_each_other_and_never_share_an_address() {
    let store = store_with_pool(120);
    let engines = [Ipam::new(&store), Ipam::new(&store)];
    let mut held: Vec<(usize, String)> = Vec::new();
    for i in 0..90 {
        let e = &engines[i % 2];
        let got = block_on_ready(e.allocate(&pod(i))).unwrap();
        let ip = got[0].ipv4.clone().unwrap();
        assert!(held.iter().all(|(_, h)| *h != ip), "{ip} handed out twice");
        held.push((i, ip));
        // Every third turn one engine or the other releases a pod (the oldest, the newest, or
        // in between), so that each sees removals, additions and reused addresses.
        if i % 3 == 2 {
            let (j, _) = held.remove((i * 7) % held.len());
            let releaser = &engines[(i / 3) % 2];
            block_on_ready(releaser.release(&del("ns", &format!("a{j}"), &format!("u{j}"))))
                .unwrap();
        }
    }
    for e in &engines {
        assert_eq!(
            e.decoded_pools(),
            1,
            "decoded once, then every change followed"
        );
        assert!(e.followed_pools() >= 40, "followed {}", e.followed_pools());
    }
    block_on_ready(check_invariants(&store)).unwrap();
}

#[test]
fn engines_built_per_request_share_one_cache() {
    let store = store_with_pool(200);
    let cache = IndexCache::default();
    for i in 0..20 {
        // An agent building an engine for each request, as in the Kubernetes mode.
        let ipam = Ipam::new(&store).with_shared_index_cache(&cache);
        let got = block_on_ready(ipam.allocate(&pod(i))).unwrap();
        assert_eq!(
            got[0].ipv4.as_deref(),
            Some(&*format!("10.6.0.{}/24", i + 1))
        );
    }
    let ipam = Ipam::new(&store).with_shared_index_cache(&cache);
    block_on_ready(ipam.release(&del("ns", "a3", "u3"))).unwrap();
    // An engine with a cache of its own decodes the pool again, and writes it.
    let alone = Ipam::new(&store);
    assert_eq!(
        block_on_ready(alone.allocate(&pod(50))).unwrap()[0]
            .ipv4
            .as_deref(),
        Some("10.6.0.4/24")
    );
    assert_eq!(alone.decoded_pools(), 1);
    // The next request's engine finds the pool in the shared cache and follows that write.
    let next = Ipam::new(&store).with_shared_index_cache(&cache);
    assert_eq!(
        block_on_ready(next.allocate(&pod(51))).unwrap()[0]
            .ipv4
            .as_deref(),
        Some("10.6.0.21/24")
    );
    assert_eq!((next.decoded_pools(), next.followed_pools()), (1, 1));
    block_on_ready(check_invariants(&store)).unwrap();
}
