//! The driver against injected faults: conflicts are retried from fresh reads, give up after
//! the retry budget, and a plan interrupted half-way on a write-by-write store leaks nothing.
#![allow(clippy::unwrap_used)]

use backend_memory::{Fault, MemoryStore};
use spiderpool_core::annotations::ANNO_IPPOOLS;
use spiderpool_core::ipam::{Ipam, NoPause};
use spiderpool_core::model::{Object, SpiderIPPool};
use spiderpool_core::store::{Key, Store};
use spiderpool_core::Error;
use spiderpool_testkit::check_invariants;
use spiderpool_testkit::fixtures::{add, block_on_ready, put_pool, with_annotations};

fn two_nic_store(store: MemoryStore) -> MemoryStore {
    block_on_ready(put_pool(
        &store,
        "p",
        "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.9]",
    ));
    block_on_ready(put_pool(
        &store,
        "q",
        "subnet: 10.7.0.0/24\nips: [10.7.0.1-10.7.0.9]",
    ));
    store
}

fn two_nics() -> spiderpool_core::request::AllocateRequest {
    with_annotations(
        add("ns", "a", "ua"),
        &[(
            ANNO_IPPOOLS,
            r#"[{"interface":"eth0","ipv4":["p"]},{"interface":"net1","ipv4":["q"]}]"#,
        )],
    )
}

fn records(store: &MemoryStore, pool: &str) -> usize {
    let s = block_on_ready(store.get(&Key::pool(pool)))
        .unwrap()
        .unwrap();
    let Object::IpPool(p) = s.object else {
        panic!()
    };
    p.allocations().unwrap().len()
}

#[test]
fn conflicts_are_retried_from_fresh_reads() {
    let store = two_nic_store(MemoryStore::new());
    store.inject(Fault::Conflicts {
        kind: Some(SpiderIPPool::KIND.into()),
        count: 3,
    });
    let ipam = Ipam::new(&store).with_retries(5, NoPause);
    let got = block_on_ready(ipam.allocate(&two_nics())).unwrap();
    assert_eq!(got.len(), 2);
    block_on_ready(check_invariants(&store)).unwrap();
}

#[test]
fn too_many_conflicts_give_up_with_a_retryable_error() {
    let store = two_nic_store(MemoryStore::new());
    store.inject(Fault::Conflicts {
        kind: Some(SpiderIPPool::KIND.into()),
        count: 10,
    });
    let ipam = Ipam::new(&store).with_retries(2, NoPause);
    let err = block_on_ready(ipam.allocate(&two_nics())).unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { ref reason } if reason.starts_with("exhaust all retries (2 times)")),
        "{err}"
    );
    store.clear_faults();
    assert_eq!(
        records(&store, "p") + records(&store, "q"),
        0,
        "nothing taken"
    );
    block_on_ready(check_invariants(&store)).unwrap();
}

#[test]
fn a_plan_interrupted_half_way_is_completed_by_the_retry() {
    let store = two_nic_store(MemoryStore::non_atomic());
    // The pool `p` update passes, the `q` update conflicts: `p` holds a record and no
    // endpoint exists yet. The retry reuses that record rather than taking a second address.
    store.inject(Fault::ConflictAfter { passing: 1 });
    let ipam = Ipam::new(&store).with_retries(3, NoPause);
    let got = block_on_ready(ipam.allocate(&two_nics())).unwrap();
    assert_eq!(got[0].ipv4.as_deref(), Some("10.6.0.1/24"));
    // After a conflict the retry takes a free address a little past the lowest (concurrent
    // allocators spread out), so `q`'s address is any of its own.
    let q = got[1].ipv4.as_deref().unwrap_or_default();
    assert!(q.starts_with("10.7.0.") && q.ends_with("/24"), "{q}");
    assert_eq!(records(&store, "p"), 1);
    assert_eq!(records(&store, "q"), 1);
    block_on_ready(check_invariants(&store)).unwrap();
}

#[test]
fn a_plan_interrupted_half_way_that_fails_leaks_nothing() {
    let store = two_nic_store(MemoryStore::non_atomic());
    store.inject(Fault::ConflictAfter { passing: 1 });
    let ipam = Ipam::new(&store).with_retries(0, NoPause);
    assert!(block_on_ready(ipam.allocate(&two_nics())).is_err());
    assert_eq!(records(&store, "p"), 0, "the half-applied record was freed");
    block_on_ready(check_invariants(&store)).unwrap();
    // And the pod can try again.
    assert_eq!(block_on_ready(ipam.allocate(&two_nics())).unwrap().len(), 2);
}

#[test]
fn an_unavailable_store_is_retried_then_reported() {
    let store = two_nic_store(MemoryStore::new());
    store.inject(Fault::Unavailable { count: 2 });
    let ipam = Ipam::new(&store).with_retries(3, NoPause);
    assert_eq!(
        block_on_ready(ipam.allocate(&two_nics())).unwrap().len(),
        2,
        "a passing outage is retried"
    );
    store.inject(Fault::Unavailable { count: 100 });
    let err =
        block_on_ready(ipam.allocate(&with_annotations(add("ns", "b", "ub"), &[]))).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("try again later"));
    assert!(
        err.to_string().contains("exhaust all retries (3 times)"),
        "{err}"
    );
}

#[test]
fn the_change_feed_reports_expiry() {
    let store = MemoryStore::new();
    let err = block_on_ready(store.changes(
        SpiderIPPool::KIND,
        Some(&spiderpool_core::store::Revision("x".into())),
    ))
    .unwrap_err();
    assert!(matches!(err, Error::Expired { .. }));
}
