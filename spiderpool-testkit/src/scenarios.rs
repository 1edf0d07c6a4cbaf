//! The conformance scenarios. Each takes a fresh store; see [`crate::conformance_tests`].

use std::sync::Arc;

use spiderpool_core::allocate::Outcome;
use spiderpool_core::annotations::{ANNO_IPPOOL, ANNO_IPPOOLS, ANNO_NS_DEFAULT_IPV4_IPPOOL};
use spiderpool_core::ipam::Ipam;
use spiderpool_core::model::{IPAllocationDetail, Object, SpiderIPPool, SpiderReservedIP};
use spiderpool_core::request::NetconfDefaults;
use spiderpool_core::store::{Change, Key, Revision, Store, Write};
use spiderpool_core::Error;

use crate::check_invariants;
use crate::fixtures::*;

async fn invariants<S: Store + ?Sized>(store: &S) {
    if let Err(errs) = check_invariants(store).await {
        panic!("store invariants broken:\n  {}", errs.join("\n  "));
    }
}

fn v4(ips: &[IPAllocationDetail], nic: &str) -> String {
    let d = ips
        .iter()
        .find(|d| d.nic == nic)
        .unwrap_or_else(|| panic!("no NIC {nic} in {ips:?}"));
    d.ipv4.clone().unwrap_or_default()
}

fn v6(ips: &[IPAllocationDetail], nic: &str) -> String {
    let d = ips.iter().find(|d| d.nic == nic).unwrap();
    d.ipv6.clone().unwrap_or_default()
}

async fn pool_of<S: Store + ?Sized>(store: &S, name: &str) -> (SpiderIPPool, Revision) {
    let s = store.get(&Key::pool(name)).await.unwrap().unwrap();
    match s.object {
        Object::IpPool(p) => (p, s.revision),
        _ => panic!("not a pool"),
    }
}

// ----- store primitives -----

/// Create, get, list (in key order, by kind) and delete.
pub async fn crud_create_get_list_delete<S: Store + 'static>(store: Arc<S>) {
    let r1 = store
        .create(Object::IpPool(pool("b", "subnet: 10.0.0.0/24")))
        .await
        .unwrap();
    store
        .create(Object::IpPool(pool("a", "subnet: 10.0.1.0/24")))
        .await
        .unwrap();
    store
        .create(Object::ReservedIp(reserved("r", &["10.0.0.1"])))
        .await
        .unwrap();
    let got = store.get(&Key::pool("b")).await.unwrap().unwrap();
    assert_eq!(got.revision, r1);
    let Object::IpPool(p) = &got.object else {
        panic!()
    };
    assert_eq!(p.spec.subnet, "10.0.0.0/24");
    let names: Vec<String> = store
        .list(SpiderIPPool::KIND)
        .await
        .unwrap()
        .iter()
        .map(|s| Key::of(&s.object).name)
        .collect();
    assert_eq!(names, vec!["a", "b"]);
    assert_eq!(store.list(SpiderReservedIP::KIND).await.unwrap().len(), 1);
    store.delete(&Key::pool("b"), &r1).await.unwrap();
    assert!(store.get(&Key::pool("b")).await.unwrap().is_none());
    assert_eq!(store.list(SpiderIPPool::KIND).await.unwrap().len(), 1);
}

/// Create-if-absent.
pub async fn crud_create_twice_is_already_exists<S: Store + 'static>(store: Arc<S>) {
    store
        .create(Object::IpPool(pool("p", "subnet: 10.0.0.0/24")))
        .await
        .unwrap();
    let err = store
        .create(Object::IpPool(pool("p", "subnet: 10.9.0.0/24")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    let (p, _) = pool_of(&*store, "p").await;
    assert_eq!(
        p.spec.subnet, "10.0.0.0/24",
        "the first object is untouched"
    );
}

/// Compare-and-swap: a write from a stale revision fails and changes nothing.
pub async fn crud_stale_update_and_delete_conflict<S: Store + 'static>(store: Arc<S>) {
    let r1 = store
        .create(Object::IpPool(pool("p", "subnet: 10.0.0.0/24")))
        .await
        .unwrap();
    let mut p = pool("p", "subnet: 10.0.0.0/24\nips: [10.0.0.1]");
    let r2 = store.update(Object::IpPool(p.clone()), &r1).await.unwrap();
    assert_ne!(r1, r2, "every write gives a new revision");
    p.spec.ips = vec!["10.0.0.2".into()];
    let err = store
        .update(Object::IpPool(p.clone()), &r1)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let err = store.delete(&Key::pool("p"), &r1).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let (now, rev) = pool_of(&*store, "p").await;
    assert_eq!(now.spec.ips, vec!["10.0.0.1"]);
    assert_eq!(rev, r2);
}

/// Updates and deletes of missing objects are not-found, not conflicts.
pub async fn crud_missing_objects_are_not_found<S: Store + 'static>(store: Arc<S>) {
    let r = store
        .create(Object::IpPool(pool("p", "subnet: 10.0.0.0/24")))
        .await
        .unwrap();
    store.delete(&Key::pool("p"), &r).await.unwrap();
    let err = store
        .update(Object::IpPool(pool("p", "subnet: 10.0.0.0/24")), &r)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = store.delete(&Key::pool("p"), &r).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(store
        .get(&Key::endpoint("ns", "nobody"))
        .await
        .unwrap()
        .is_none());
}

/// An atomic store applies a commit whole or not at all; any store applies a good commit.
pub async fn crud_commit_is_all_or_nothing_when_atomic<S: Store + 'static>(store: Arc<S>) {
    let r = store
        .create(Object::IpPool(pool("p", "subnet: 10.0.0.0/24")))
        .await
        .unwrap();
    let good = vec![
        Write::Create(Object::IpPool(pool("q", "subnet: 10.0.1.0/24"))),
        Write::Update {
            object: Object::IpPool(pool("p", "subnet: 10.0.0.0/24\nips: [10.0.0.5]")),
            expected: r.clone(),
        },
    ];
    store.commit(good).await.unwrap();
    assert!(store.get(&Key::pool("q")).await.unwrap().is_some());
    let bad = vec![
        Write::Create(Object::IpPool(pool("z", "subnet: 10.0.2.0/24"))),
        Write::Update {
            object: Object::IpPool(pool("p", "subnet: 10.0.0.0/24\nips: [10.0.0.6]")),
            expected: r,
        },
    ];
    let err = store.commit(bad).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    if store.is_atomic() {
        assert!(
            store.get(&Key::pool("z")).await.unwrap().is_none(),
            "atomic commit left a partial write"
        );
    }
    let (p, _) = pool_of(&*store, "p").await;
    assert_eq!(p.spec.ips, vec!["10.0.0.5"]);
}

/// The change feed, when the store offers one: puts and deletes after a revision, in order.
pub async fn crud_change_feed_when_offered<S: Store + 'static>(store: Arc<S>) {
    let r1 = store
        .create(Object::IpPool(pool("p", "subnet: 10.0.0.0/24")))
        .await
        .unwrap();
    let changes = match store.changes(SpiderIPPool::KIND, Some(&r1)).await {
        Err(Error::Unsupported { .. }) => return,
        other => other.unwrap(),
    };
    assert!(
        changes.is_empty(),
        "nothing after the last write: {changes:?}"
    );
    let r2 = store
        .update(
            Object::IpPool(pool("p", "subnet: 10.0.0.0/24\nips: [10.0.0.1]")),
            &r1,
        )
        .await
        .unwrap();
    store
        .create(Object::ReservedIp(reserved("r", &["10.0.0.9"])))
        .await
        .unwrap();
    store.delete(&Key::pool("p"), &r2).await.unwrap();
    let changes = store.changes(SpiderIPPool::KIND, Some(&r1)).await.unwrap();
    // A store may report each change (a Kubernetes deletion is two: the finalizers go, then
    // the object), or coalesce an object's changes into its latest state: either way the
    // feed ends with the deletion and holds nothing from before r1.
    assert!(
        matches!(changes.last(), Some(Change::Deleted { key, .. }) if key.name == "p"),
        "{changes:?}"
    );
    assert!(changes.len() <= 3, "{changes:?}");
    for c in &changes {
        if let Change::Put(s) = c {
            assert_ne!(s.revision, r1, "{changes:?}");
        }
    }
    if changes.len() > 1 {
        assert!(
            matches!(&changes[0], Change::Put(s) if s.revision == r2),
            "{changes:?}"
        );
    }
    let reserved = store
        .changes(SpiderReservedIP::KIND, Some(&r1))
        .await
        .unwrap();
    assert!(
        matches!(reserved.as_slice(), [Change::Put(s)] if Key::of(&s.object).name == "r"),
        "{reserved:?}"
    );
}

// ----- allocation -----

/// The lowest free address in `spec.ips` order; a released address is given again.
pub async fn alloc_lowest_free_and_reuse_after_release<S: Store + 'static>(store: Arc<S>) {
    put_pool(&*store, "p", "subnet: 10.6.0.0/24\nips: [10.6.0.10-10.6.0.12, 10.6.0.2]\nexcludeIPs: [10.6.0.10]\ndefault: true").await;
    let ipam = Ipam::new(store.clone());
    let a = ipam.allocate(&add("ns", "a", "ua")).await.unwrap();
    let b = ipam.allocate(&add("ns", "b", "ub")).await.unwrap();
    let c = ipam.allocate(&add("ns", "c", "uc")).await.unwrap();
    assert_eq!(
        [v4(&a, "eth0"), v4(&b, "eth0"), v4(&c, "eth0")],
        ["10.6.0.2/24", "10.6.0.11/24", "10.6.0.12/24"]
    );
    let err = ipam.allocate(&add("ns", "d", "ud")).await.unwrap_err();
    assert!(
        err.to_string().starts_with("all IP addresses used out"),
        "{err}"
    );
    invariants(&*store).await;
    let out = ipam.release(&del("ns", "b", "ub")).await.unwrap();
    assert_eq!(
        out,
        Outcome::Released(vec![("10.6.0.11".into(), "p".into())])
    );
    let d = ipam.allocate(&add("ns", "d", "ud")).await.unwrap();
    assert_eq!(v4(&d, "eth0"), "10.6.0.11/24");
    let (p, _) = pool_of(&*store, "p").await;
    assert_eq!(p.status.allocated_ip_count, Some(3));
    invariants(&*store).await;
}

/// Seed 003: a pool of three with two reserved gives .133, then "all IP addresses used out";
/// once the reservation is gone the second pod gets .131.
pub async fn alloc_reserved_ips_seed_003<S: Store + 'static>(store: Arc<S>) {
    let r = store
        .create(Object::ReservedIp(reserved(
            "test-reservedip",
            &["10.6.168.131-10.6.168.132"],
        )))
        .await
        .unwrap();
    put_pool(
        &*store,
        "test-ippool",
        "subnet: 10.6.0.0/16\nips: [10.6.168.131-10.6.168.133]",
    )
    .await;
    let ipam = Ipam::new(store.clone());
    let anno = [(ANNO_IPPOOL, r#"{"ipv4": ["test-ippool"]}"#)];
    let first = ipam
        .allocate(&with_annotations(add("default", "test-app-1", "u1"), &anno))
        .await
        .unwrap();
    assert_eq!(v4(&first, "eth0"), "10.6.168.133/16");
    let err = ipam
        .allocate(&with_annotations(add("default", "test-app-2", "u2"), &anno))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("all IP addresses used out"), "{msg}");
    assert!(
        msg.contains("IPPool test-ippool: no free address, the 2 unallocated ones are reserved"),
        "{msg}"
    );
    store
        .delete(&Key::cluster(SpiderReservedIP::KIND, "test-reservedip"), &r)
        .await
        .unwrap();
    let second = ipam
        .allocate(&with_annotations(add("default", "test-app-2", "u2"), &anno))
        .await
        .unwrap();
    assert_eq!(v4(&second, "eth0"), "10.6.168.131/16");
    invariants(&*store).await;
}

/// Reserved addresses below the pool's subnet (here in another ReservedIP) do not hide the
/// pool's own reserved addresses: the first pod gets .4, never a reserved .1-.3.
pub async fn alloc_reserved_ips_outside_the_subnet<S: Store + 'static>(store: Arc<S>) {
    store
        .create(Object::ReservedIp(reserved(
            "low",
            &["10.0.0.5", "192.168.0.1-192.168.0.3"],
        )))
        .await
        .unwrap();
    put_pool(
        &*store,
        "p",
        "subnet: 192.168.0.0/24\nips: [192.168.0.1-192.168.0.10]",
    )
    .await;
    let ipam = Ipam::new(store.clone());
    let anno = [(ANNO_IPPOOL, r#"{"ipv4": ["p"]}"#)];
    let d = ipam
        .allocate(&with_annotations(add("default", "a", "u1"), &anno))
        .await
        .unwrap();
    assert_eq!(v4(&d, "eth0"), "192.168.0.4/24");
    invariants(&*store).await;
}

/// A repeated ADD returns the same addresses and writes nothing; repeated and unknown DELs
/// succeed and change nothing.
pub async fn alloc_idempotent_add_and_del<S: Store + 'static>(store: Arc<S>) {
    put_pool(
        &*store,
        "p",
        "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.9]\ndefault: true",
    )
    .await;
    let ipam = Ipam::new(store.clone());
    let req = add("ns", "a", "ua");
    let first = ipam.allocate(&req).await.unwrap();
    let (_, rev) = pool_of(&*store, "p").await;
    let again = ipam.allocate(&req).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(
        pool_of(&*store, "p").await.1,
        rev,
        "a repeated ADD writes nothing"
    );
    assert!(matches!(
        ipam.release(&del("ns", "a", "ua")).await.unwrap(),
        Outcome::Released(_)
    ));
    assert_eq!(
        ipam.release(&del("ns", "a", "ua")).await.unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(
        ipam.release(&del("ns", "ghost", "ug")).await.unwrap(),
        Outcome::Unchanged
    );
    let mut alive = del("ns", "b", "ub");
    ipam.allocate(&add("ns", "b", "ub")).await.unwrap();
    alive.pod_alive = true;
    assert_eq!(
        ipam.release(&alive).await.unwrap(),
        Outcome::Unchanged,
        "a live pod keeps its address"
    );
    invariants(&*store).await;
}

/// A stateless pod re-created under the same name (new uid) frees the old address and takes
/// the lowest free one.
pub async fn alloc_stateless_new_uid_gets_fresh_ip<S: Store + 'static>(store: Arc<S>) {
    put_pool(
        &*store,
        "p",
        "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.9]\ndefault: true",
    )
    .await;
    let ipam = Ipam::new(store.clone());
    let mut req = add("ns", "web", "u1");
    req.owner = Some(deployment("web"));
    ipam.allocate(&add("ns", "other", "u0")).await.unwrap();
    let old = ipam.allocate(&req).await.unwrap();
    assert_eq!(v4(&old, "eth0"), "10.6.0.2/24");
    ipam.allocate(&add("ns", "third", "u3")).await.unwrap();
    req.pod.uid = "u2".into();
    let new = ipam.allocate(&req).await.unwrap();
    assert_eq!(
        v4(&new, "eth0"),
        "10.6.0.2/24",
        "the old address was freed first and is the lowest"
    );
    // The release of the old uid does not touch the new pod.
    assert_eq!(
        ipam.release(&del("ns", "web", "u1")).await.unwrap(),
        Outcome::Unchanged
    );
    invariants(&*store).await;
    let (p, _) = pool_of(&*store, "p").await;
    let recs = p.allocations().unwrap();
    assert_eq!(recs["10.6.0.2"].pod_uid, "u2");
}

/// A StatefulSet pod whose pool record was lost (removed by hand) and whose address was
/// reserved meanwhile does not take the reserved address back: its NIC gets a fresh one.
pub async fn alloc_stateful_lost_record_is_not_retaken_when_reserved<S: Store + 'static>(
    store: Arc<S>,
) {
    put_pool(
        &*store,
        "p",
        "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.9]\ndefault: true",
    )
    .await;
    let ipam = Ipam::new(store.clone());
    let mut req = add("db", "mysql-1", "u1");
    req.owner = Some(statefulset("mysql", 3));
    let first = ipam.allocate(&req).await.unwrap();
    assert_eq!(v4(&first, "eth0"), "10.6.0.1/24");
    // Someone drops the record from the pool's status and reserves the address.
    let (mut p, rev) = pool_of(&*store, "p").await;
    let mut records = p.allocations().unwrap();
    records.remove("10.6.0.1");
    p.set_allocations(&records);
    store.update(Object::IpPool(p), &rev).await.unwrap();
    store
        .create(Object::ReservedIp(reserved("r", &["10.6.0.1"])))
        .await
        .unwrap();
    // The restarted pod gets a fresh address, and the endpoint says so.
    req.pod.uid = "u2".into();
    let again = ipam.allocate(&req).await.unwrap();
    assert_eq!(v4(&again, "eth0"), "10.6.0.2/24");
    let (p, _) = pool_of(&*store, "p").await;
    let records = p.allocations().unwrap();
    assert!(!records.contains_key("10.6.0.1"), "{records:?}");
    assert_eq!(records["10.6.0.2"].pod_uid, "u2");
    invariants(&*store).await;
}

/// A StatefulSet pod keeps its address across restarts (new uid, new node).
pub async fn alloc_stateful_keeps_ip_across_restarts<S: Store + 'static>(store: Arc<S>) {
    put_pool(
        &*store,
        "p",
        "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.9]\ndefault: true",
    )
    .await;
    let ipam = Ipam::new(store.clone());
    let mut req = add("db", "mysql-1", "u1");
    req.owner = Some(statefulset("mysql", 3));
    ipam.allocate(&add("db", "filler", "uf")).await.unwrap();
    let first = ipam.allocate(&req).await.unwrap();
    assert_eq!(v4(&first, "eth0"), "10.6.0.2/24");
    // The pod is deleted: DEL keeps the address (ordinal 1 < 3 replicas).
    let mut rel = del("db", "mysql-1", "u1");
    rel.owner = Some(statefulset("mysql", 3));
    assert_eq!(ipam.release(&rel).await.unwrap(), Outcome::Unchanged);
    // Meanwhile another pod takes the lowest free address, not the kept one.
    let other = ipam.allocate(&add("db", "other", "uo")).await.unwrap();
    assert_eq!(v4(&other, "eth0"), "10.6.0.3/24");
    // The restarted pod (new uid, another node) gets its address back.
    req.pod.uid = "u2".into();
    req.node = "node-2".into();
    let again = ipam.allocate(&req).await.unwrap();
    assert_eq!(v4(&again, "eth0"), "10.6.0.2/24");
    let (p, _) = pool_of(&*store, "p").await;
    assert_eq!(
        p.allocations().unwrap()["10.6.0.2"].pod_uid,
        "u2",
        "the record follows the new uid"
    );
    let ep = store
        .get(&Key::endpoint("db", "mysql-1"))
        .await
        .unwrap()
        .unwrap();
    let Object::Endpoint(ep) = ep.object else {
        panic!()
    };
    assert_eq!(ep.status.current.node, "node-2");
    assert_eq!(ep.status.owner_controller_type, "StatefulSet");
    assert!(
        ep.metadata.owner_references.is_empty(),
        "stateful endpoints do not belong to a pod"
    );
    invariants(&*store).await;
}

/// A StatefulSet pod's address is freed by DEL once its ordinal is beyond the replicas, or
/// once the StatefulSet is gone.
pub async fn alloc_stateful_released_when_scaled_down_or_owner_gone<S: Store + 'static>(
    store: Arc<S>,
) {
    put_pool(
        &*store,
        "p",
        "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.9]\ndefault: true",
    )
    .await;
    let ipam = Ipam::new(store.clone());
    for (i, uid) in [(0, "u0"), (1, "u1"), (2, "u2")] {
        let mut req = add("db", &format!("mysql-{i}"), uid);
        req.owner = Some(statefulset("mysql", 3));
        ipam.allocate(&req).await.unwrap();
    }
    // Scale to 2: ordinal 2 goes.
    let mut rel = del("db", "mysql-2", "u2");
    rel.owner = Some(statefulset("mysql", 2));
    assert_eq!(
        ipam.release(&rel).await.unwrap(),
        Outcome::Released(vec![("10.6.0.3".into(), "p".into())])
    );
    assert!(store
        .get(&Key::endpoint("db", "mysql-2"))
        .await
        .unwrap()
        .is_none());
    // Owner deleted: ordinal 0 goes too, even with a stale uid in the request.
    let mut rel = del("db", "mysql-0", "u-old");
    let mut gone = statefulset("mysql", 2);
    gone.exists = false;
    rel.owner = Some(gone);
    assert!(matches!(
        ipam.release(&rel).await.unwrap(),
        Outcome::Released(_)
    ));
    invariants(&*store).await;
    let (p, _) = pool_of(&*store, "p").await;
    assert_eq!(p.status.allocated_ip_count, Some(1));
}

/// Dual-stack: when the IPv6 pool is exhausted the IPv4 address is not taken either.
pub async fn alloc_dual_stack_all_or_nothing<S: Store + 'static>(store: Arc<S>) {
    put_pool(
        &*store,
        "v4",
        "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.9]",
    )
    .await;
    put_pool(&*store, "v6", "subnet: fd00::/120\nips: [fd00::1]").await;
    let ipam = Ipam::new(store.clone());
    let anno = [(ANNO_IPPOOL, r#"{"ipv4":["v4"],"ipv6":["v6"]}"#)];
    let a = ipam
        .allocate(&with_annotations(add("ns", "a", "ua"), &anno))
        .await
        .unwrap();
    assert_eq!(
        (v4(&a, "eth0"), v6(&a, "eth0")),
        ("10.6.0.1/24".to_string(), "fd00::1/120".to_string())
    );
    let err = ipam
        .allocate(&with_annotations(add("ns", "b", "ub"), &anno))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NoIpAvailable {
                family: spiderpool_core::ip::IpFamily::V6,
                ..
            }
        ),
        "{err:?}"
    );
    let (p, _) = pool_of(&*store, "v4").await;
    assert_eq!(
        p.status.allocated_ip_count,
        Some(1),
        "nothing of the failed request stays taken"
    );
    invariants(&*store).await;
}

/// `ippools` with two NICs on one pool: both NICs allocated in the first call, with distinct
/// addresses; the second call (net1) returns them.
pub async fn alloc_multi_nic_from_one_pool<S: Store + 'static>(store: Arc<S>) {
    put_pool(
        &*store,
        "p",
        "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.9]",
    )
    .await;
    put_pool(
        &*store,
        "q",
        "subnet: 10.7.0.0/24\nips: [10.7.0.1-10.7.0.9]",
    )
    .await;
    let ipam = Ipam::new(store.clone());
    let anno = [(
        ANNO_IPPOOLS,
        r#"[{"interface":"eth0","ipv4":["p"]},{"interface":"net1","ipv4":["p"],"cleangateway":true},{"interface":"net2","ipv4":["q"]}]"#,
    )];
    let req = with_annotations(add("ns", "a", "ua"), &anno);
    let first = ipam.allocate(&req).await.unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(v4(&first, "eth0"), "10.6.0.1/24");
    assert_eq!(v4(&first, "net1"), "10.6.0.2/24");
    assert_eq!(v4(&first, "net2"), "10.7.0.1/24");
    assert_eq!(
        first
            .iter()
            .find(|d| d.nic == "net1")
            .unwrap()
            .clean_gateway,
        Some(true)
    );
    let mut net1 = req.clone();
    net1.ifname = "net1".into();
    assert_eq!(ipam.allocate(&net1).await.unwrap(), first);
    invariants(&*store).await;
    assert!(
        matches!(ipam.release(&del("ns", "a", "ua")).await.unwrap(), Outcome::Released(r) if r.len() == 3)
    );
    invariants(&*store).await;
}

/// The first source that names pools wins: ippools > ippool > namespace > netconf > default.
pub async fn alloc_precedence_of_sources<S: Store + 'static>(store: Arc<S>) {
    for (name, net) in [
        ("pools", "10.1"),
        ("pool", "10.2"),
        ("ns", "10.3"),
        ("netconf", "10.4"),
        ("default", "10.5"),
    ] {
        let extra = if name == "default" {
            "\ndefault: true"
        } else {
            ""
        };
        put_pool(
            &*store,
            name,
            &format!("subnet: {net}.0.0/16\nips: [{net}.0.1-{net}.0.9]{extra}"),
        )
        .await;
    }
    let ipam = Ipam::new(store.clone());
    let mut req = add("ns", "a", "ua");
    req.pod_annotations = map(&[
        (ANNO_IPPOOLS, r#"[{"interface":"eth0","ipv4":["pools"]}]"#),
        (ANNO_IPPOOL, r#"{"ipv4":["pool"]}"#),
    ]);
    req.namespace_annotations = map(&[(ANNO_NS_DEFAULT_IPV4_IPPOOL, r#"["ns"]"#)]);
    req.netconf = NetconfDefaults {
        default_ipv4_ippool: vec!["netconf".into()],
        ..NetconfDefaults::default()
    };
    let mut expect = vec![
        "10.1.0.1/16",
        "10.2.0.1/16",
        "10.3.0.1/16",
        "10.4.0.1/16",
        "10.5.0.1/16",
    ]
    .into_iter();
    for step in 0..5 {
        req.pod.name = format!("a{step}");
        req.pod.uid = format!("u{step}");
        let got = ipam.allocate(&req).await.unwrap();
        assert_eq!(v4(&got, "eth0"), expect.next().unwrap(), "step {step}");
        match step {
            0 => {
                req.pod_annotations.remove(ANNO_IPPOOLS);
            }
            1 => {
                req.pod_annotations.clear();
            }
            2 => req.namespace_annotations.clear(),
            3 => req.netconf = NetconfDefaults::default(),
            _ => {}
        }
    }
    invariants(&*store).await;
}

/// Every candidate appears in the error with its reason.
pub async fn alloc_filters_explain_themselves<S: Store + 'static>(store: Arc<S>) {
    put_pool(
        &*store,
        "off",
        "subnet: 10.1.0.0/24\nips: [10.1.0.1]\ndisable: true",
    )
    .await;
    put_pool(
        &*store,
        "elsewhere",
        "subnet: 10.2.0.0/24\nips: [10.2.0.1]\nnodeName: [node-9]",
    )
    .await;
    put_pool(
        &*store,
        "team-b",
        "subnet: 10.3.0.0/24\nips: [10.3.0.1]\nnamespaceName: [b]",
    )
    .await;
    put_pool(
        &*store,
        "web-only",
        "subnet: 10.4.0.0/24\nips: [10.4.0.1]\npodAffinity: {matchLabels: {app: web}}",
    )
    .await;
    put_pool(&*store, "six", "subnet: fd00::/120\nips: [fd00::1]").await;
    let ipam = Ipam::new(store.clone());
    let anno = [(
        ANNO_IPPOOL,
        r#"{"ipv4":["off","elsewhere","team-b","web-only","six"]}"#,
    )];
    let err = ipam
        .allocate(&with_annotations(add("a", "p", "u"), &anno))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("no IPPool available"), "{msg}");
    for part in [
        "IPPool off: disabled IPPool",
        "IPPool elsewhere: unmatched Node name",
        "IPPool team-b: unmatched Namespace name",
        "IPPool web-only: unmatched Pod affinity",
        "IPPool six: IPPool of the other IP version",
    ] {
        assert!(msg.contains(part), "missing {part:?} in {msg}");
    }
    // The pod that matches gets the affinity pool.
    let mut ok = with_annotations(
        add("b", "p", "u2"),
        &[(ANNO_IPPOOL, r#"{"ipv4":["web-only"]}"#)],
    );
    ok.pod_labels = map(&[("app", "web")]);
    assert_eq!(
        v4(&ipam.allocate(&ok).await.unwrap(), "eth0"),
        "10.4.0.1/24"
    );
    // A pool that does not exist is an error naming it.
    let err = ipam
        .allocate(&with_annotations(
            add("a", "q", "u3"),
            &[(ANNO_IPPOOL, r#"{"ipv4":["nope"]}"#)],
        ))
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("wrong input, IPPool \"nope\""),
        "{err}"
    );
    invariants(&*store).await;
}

/// Shell patterns expand to the matching pools; among equally specific pools the order written
/// wins; more specific (affinity) pools come first.
pub async fn alloc_wildcards_and_priority_keep_written_order<S: Store + 'static>(store: Arc<S>) {
    put_pool(
        &*store,
        "default-v4-b",
        "subnet: 10.2.0.0/24\nips: [10.2.0.1]",
    )
    .await;
    put_pool(
        &*store,
        "default-v4-a",
        "subnet: 10.1.0.0/24\nips: [10.1.0.1]",
    )
    .await;
    put_pool(
        &*store,
        "pinned",
        "subnet: 10.9.0.0/24\nips: [10.9.0.1]\nnodeName: [node-1]",
    )
    .await;
    let ipam = Ipam::new(store.clone());
    let z = ipam
        .allocate(&with_annotations(
            add("ns", "z", "uz"),
            &[(ANNO_IPPOOL, r#"{"ipv4":["default-v4-b","default-v4-a"]}"#)],
        ))
        .await
        .unwrap();
    assert_eq!(
        v4(&z, "eth0"),
        "10.2.0.1/24",
        "the order written, not the name order"
    );
    let w = ipam
        .allocate(&with_annotations(
            add("ns", "w", "uw"),
            &[(ANNO_IPPOOL, r#"{"ipv4":["default-v4-*"]}"#)],
        ))
        .await
        .unwrap();
    assert_eq!(
        v4(&w, "eth0"),
        "10.1.0.1/24",
        "the pattern matched both; b is full"
    );
    put_pool(
        &*store,
        "default-v4-c",
        "subnet: 10.3.0.0/24\nips: [10.3.0.1]",
    )
    .await;
    let p = ipam
        .allocate(&with_annotations(
            add("ns", "p", "up"),
            &[(ANNO_IPPOOL, r#"{"ipv4":["default-v4-*","pinned"]}"#)],
        ))
        .await
        .unwrap();
    assert_eq!(
        v4(&p, "eth0"),
        "10.9.0.1/24",
        "the node-pinned pool sorts first although written last"
    );
    invariants(&*store).await;
}

/// Malformed annotations are "wrong input" errors naming the annotation.
pub async fn alloc_bad_annotations_are_wrong_input<S: Store + 'static>(store: Arc<S>) {
    put_pool(&*store, "p", "subnet: 10.6.0.0/24\nips: [10.6.0.1]").await;
    let ipam = Ipam::new(store.clone());
    for (key, value) in [
        (ANNO_IPPOOL, "{ipv4: p}"),
        (ANNO_IPPOOLS, "[]"),
        (ANNO_IPPOOL, r#"{"ipv4":["p","p"]}"#),
    ] {
        let err = ipam
            .allocate(&with_annotations(add("ns", "a", "u"), &[(key, value)]))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("wrong input") && msg.contains(key),
            "{key}={value}: {msg}"
        );
    }
    invariants(&*store).await;
}

/// 32 concurrent allocators on one pool of 40: all distinct, counts exact; then the pool
/// runs out cleanly.
pub async fn alloc_concurrent_allocators_get_distinct_ips<S: Store + 'static>(store: Arc<S>) {
    put_pool(
        &*store,
        "p",
        "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.40]\ndefault: true",
    )
    .await;
    let ipam = Arc::new(Ipam::new(store.clone()).with_retries(200, spiderpool_core::ipam::NoPause));
    let mut tasks = Vec::new();
    for i in 0..32 {
        let ipam = ipam.clone();
        tasks.push(tokio::spawn(async move {
            let got = ipam
                .allocate(&add("ns", &format!("pod-{i}"), &format!("u{i}")))
                .await
                .unwrap();
            v4(&got, "eth0")
        }));
    }
    let mut ips = Vec::new();
    for t in tasks {
        ips.push(t.await.unwrap());
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 32, "duplicate addresses handed out");
    let (p, _) = pool_of(&*store, "p").await;
    assert_eq!(p.status.allocated_ip_count, Some(32));
    invariants(&*store).await;
}

/// A KubeVirt VM keeps its address across VM pods (live migration, restarts): the endpoint
/// and the record are named after the VM; the address is freed once the VM is gone.
pub async fn alloc_kubevirt_vm_keeps_ip<S: Store + 'static>(store: Arc<S>) {
    put_pool(
        &*store,
        "p",
        "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.9]\ndefault: true",
    )
    .await;
    let ipam = Ipam::new(store.clone());
    let vm = spiderpool_core::request::Owner {
        api_version: "kubevirt.io/v1".into(),
        kind: "VirtualMachineInstance".into(),
        name: "vm1".into(),
        uid: "vmi-uid".into(),
        exists: true,
        ..Default::default()
    };
    let mut req = add("vms", "virt-launcher-vm1-abcde", "u1");
    req.owner = Some(vm.clone());
    let first = ipam.allocate(&req).await.unwrap();
    assert_eq!(v4(&first, "eth0"), "10.6.0.1/24");
    let (p, _) = pool_of(&*store, "p").await;
    assert_eq!(p.allocations().unwrap()["10.6.0.1"].pod, "vms/vm1");
    let ep = store
        .get(&Key::endpoint("vms", "vm1"))
        .await
        .unwrap()
        .unwrap();
    let Object::Endpoint(ep) = ep.object else {
        panic!()
    };
    assert_eq!(ep.status.owner_controller_type, "KubevirtVMI");
    // The migration target pod (another name, another uid) gets the same address.
    let mut target = add("vms", "virt-launcher-vm1-fghij", "u2");
    target.owner = Some(vm.clone());
    assert_eq!(
        v4(&ipam.allocate(&target).await.unwrap(), "eth0"),
        "10.6.0.1/24"
    );
    // The old pod's DEL keeps it while the VM exists.
    let mut rel = del("vms", "virt-launcher-vm1-abcde", "u1");
    rel.owner = Some(vm.clone());
    assert_eq!(ipam.release(&rel).await.unwrap(), Outcome::Unchanged);
    invariants(&*store).await;
    rel.owner = Some(spiderpool_core::request::Owner {
        exists: false,
        ..vm
    });
    rel.pod.uid = "u2".into();
    assert!(matches!(
        ipam.release(&rel).await.unwrap(),
        Outcome::Released(_)
    ));
    invariants(&*store).await;
}
