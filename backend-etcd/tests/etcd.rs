//! The etcd store under load and failure: 64 concurrent allocators, a member killed and
//! restarted, undecodable data, random allocation sequences against a model, and a stale
//! update that relies on a record deleted meanwhile.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use spiderpool_core::allocate::Outcome;
use spiderpool_core::ipam::{Ipam, Pause};
use spiderpool_core::model::{Object, SpiderIPPool};
use spiderpool_core::store::{Key, Store};
use spiderpool_core::Error;
use spiderpool_testkit::check_invariants;
use spiderpool_testkit::etcd::Cluster;
use spiderpool_testkit::fixtures::{add, del, pool, put_pool};

/// Exponential backoff with jitter from the pod index (no randomness needed).
struct Backoff(u64);

#[async_trait::async_trait]
impl Pause for Backoff {
    async fn pause(&self, attempt: u32) {
        let base = 2u64.saturating_pow(attempt.min(7));
        tokio::time::sleep(Duration::from_millis(base + self.0 % 7)).await;
    }
}

async fn allocate_many<S: Store + 'static>(store: Arc<S>, n: usize) -> Vec<String> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let ipam = Ipam::new(store).with_retries(500, Backoff(i as u64));
            let got = ipam
                .allocate(&add("ns", &format!("pod-{i}"), &format!("u{i}")))
                .await
                .unwrap();
            got[0].ipv4.clone().unwrap()
        }));
    }
    let mut ips = Vec::new();
    for t in tasks {
        ips.push(t.await.unwrap());
    }
    ips
}

async fn allocated(store: &dyn Store, name: &str) -> i64 {
    // Right after a member restart the client may still route one request to a dead
    // connection (`Unavailable`, try again later): retry a little, as a caller would.
    let mut tries = 0;
    let s = loop {
        match store.get(&Key::pool(name)).await {
            Ok(s) => break s.unwrap(),
            Err(e) if tries < 50 && spiderpool_core::ipam::is_retryable(&e) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("reading pool {name}: {e}"),
        }
    };
    let Object::IpPool(p) = s.object else {
        panic!()
    };
    p.status.allocated_ip_count.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_allocators_get_distinct_addresses() {
    let store = Arc::new(common::store().await);
    put_pool(
        &*store,
        "p",
        "subnet: 10.20.0.0/16\nips: [10.20.0.1-10.20.1.0]\ndefault: true",
    )
    .await;
    let mut ips = allocate_many(store.clone(), 64).await;
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 64, "an address was handed out twice");
    assert_eq!(allocated(&*store, "p").await, 64);
    check_invariants(&*store).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allocations_continue_while_a_member_is_killed_and_restarted() {
    let mut cluster = Cluster::start(3);
    let store = Arc::new(common::connect(&cluster.endpoints()).await);
    put_pool(
        &*store,
        "p",
        "subnet: 10.21.0.0/16\nips: [10.21.0.1-10.21.1.0]\ndefault: true",
    )
    .await;
    let load = tokio::spawn(allocate_many(store.clone(), 64));
    tokio::time::sleep(Duration::from_millis(150)).await;
    cluster.members[0].kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!cluster.members[0].is_up(), "the member was not killed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.members[0].start("existing");
    let mut ips = load.await.unwrap();
    ips.sort();
    ips.dedup();
    assert_eq!(
        ips.len(),
        64,
        "duplicates or losses across the member restart"
    );
    cluster.wait_healthy();
    assert_eq!(allocated(&*store, "p").await, 64);
    // The client may still hold a broken connection to the restarted member: a read can be
    // `Unavailable` (try again later) until it reconnects, which must happen quickly.
    let mut last = None;
    for _ in 0..50 {
        match check_invariants(&*store).await {
            Ok(()) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(last.is_none(), "{last:?}");
}

#[tokio::test]
async fn undecodable_data_is_reported_with_its_key_and_left_alone() {
    let store = common::store().await;
    put_pool(
        &store,
        "corruption-victim",
        "subnet: 10.22.0.0/24\nips: [10.22.0.1-10.22.0.9]\ndefault: true",
    )
    .await;
    let prefix = format!("/t{}-", std::process::id());
    // Find this store's prefix through the pool key, then write garbage next to it.
    let endpoints = spiderpool_testkit::etcd::shared().endpoints().join(",");
    let keys = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &endpoints,
            "get",
            "--prefix",
            "--keys-only",
            &prefix,
        ])
        .output()
        .unwrap();
    let keys = String::from_utf8(keys.stdout).unwrap();
    let pool_key = keys
        .lines()
        .find(|k| k.ends_with("o/SpiderIPPool/_/corruption-victim") && k.contains(&prefix))
        .unwrap()
        .to_string();
    let ours = pool_key.trim_end_matches("o/SpiderIPPool/_/corruption-victim");
    let bad_key = format!("{ours}o/SpiderIPPool/_/broken");
    let put = |k: &str, v: &str| {
        std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &endpoints, "put", k, v])
            .output()
            .unwrap()
    };
    put(&bad_key, "{not json");
    let err = store.list(SpiderIPPool::KIND).await.unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "{err:?}");
    assert!(err.to_string().contains(&bad_key), "{err}");
    let ipam = Ipam::new(&store);
    assert!(
        ipam.allocate(&add("ns", "a", "u")).await.is_err(),
        "no allocation from an unreadable store"
    );
    let value = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &endpoints,
            "get",
            "--print-value-only",
            &bad_key,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(value.stdout).unwrap().trim(),
        "{not json",
        "left untouched"
    );
    // A bad allocation record, too.
    put(
        &bad_key,
        &serde_json::to_string(&Object::IpPool(pool("broken", "subnet: 10.23.0.0/24")).to_value())
            .unwrap(),
    );
    let bad_record = format!("{ours}a/corruption-victim/10.22.0.5");
    put(&bad_record, "garbage");
    let err = store
        .get(&Key::pool("corruption-victim"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&bad_record), "{err}");
}

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    Recreate(u8),
    Del(u8),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Random allocation sequences on etcd: the lowest free address every time, released
    /// addresses reused, the invariants after every step.
    #[test]
    fn random_allocation_sequences(ops in prop::collection::vec(prop_oneof![
        (0u8..6).prop_map(Op::Add),
        (0u8..6).prop_map(Op::Recreate),
        (0u8..6).prop_map(Op::Del),
    ], 1..20)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = common::store().await;
            put_pool(&store, "p", "subnet: 10.30.0.0/24\nips: [10.30.0.1-10.30.0.4]\ndefault: true").await;
            let ipam = Ipam::new(&store);
            let mut uids = [0u32; 6];
            let mut held: [Option<String>; 6] = Default::default();
            for op in ops {
                match op {
                    Op::Add(k) | Op::Recreate(k) => {
                        let k = usize::from(k);
                        if matches!(op, Op::Recreate(_)) {
                            uids[k] += 1;
                            held[k] = None;
                        }
                        let req = add("ns", &format!("p{k}"), &format!("u{k}-{}", uids[k]));
                        // The lowest address no other pod holds.
                        let taken: Vec<&String> = held.iter().enumerate().filter(|(i, _)| *i != k).filter_map(|(_, h)| h.as_ref()).collect();
                        let want = (1..=4).map(|i| format!("10.30.0.{i}/24")).find(|a| !taken.contains(&a));
                        match (ipam.allocate(&req).await, held[k].clone(), want) {
                            (Ok(got), Some(h), _) => prop_assert_eq!(got[0].ipv4.clone().unwrap(), h),
                            (Ok(got), None, Some(w)) => {
                                prop_assert_eq!(got[0].ipv4.clone().unwrap(), w.clone());
                                held[k] = Some(w);
                            }
                            (Err(Error::NoIpAvailable { .. }), None, None) => {}
                            (got, h, w) => prop_assert!(false, "ADD gave {:?}, held {:?}, expected {:?}", got, h, w),
                        }
                    }
                    Op::Del(k) => {
                        let k = usize::from(k);
                        let out = ipam.release(&del("ns", &format!("p{k}"), &format!("u{k}-{}", uids[k]))).await.unwrap();
                        prop_assert_eq!(matches!(out, Outcome::Released(_)), held[k].is_some());
                        held[k] = None;
                    }
                }
                if let Err(errs) = check_invariants(&store).await {
                    prop_assert!(false, "{}", errs.join("; "));
                }
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_plan_relying_on_a_record_deleted_meanwhile_conflicts() {
    let store = common::store().await;
    put_pool(
        &store,
        "p",
        "subnet: 10.23.0.0/24\nips: [10.23.0.1-10.23.0.9]",
    )
    .await;
    // Pod a holds .1 on eth0.
    let (mut p, rev) = match store.get(&Key::cluster(SpiderIPPool::KIND, "p")).await {
        Ok(Some(v)) => match v.object {
            Object::IpPool(p) => (p, v.revision),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let mut records = p.allocations().unwrap();
    let eth0 = spiderpool_core::model::PoolIPAllocation {
        pod: "ns/a".into(),
        pod_uid: "ua".into(),
        interface: Some("eth0".into()),
        extra: Default::default(),
    };
    records.insert("10.23.0.1".into(), eth0.clone());
    p.set_allocations(&records);
    let rev = store.update(Object::IpPool(p.clone()), &rev).await.unwrap();
    // Two writers start from the same revision: one frees .1, the other adds .2 for a's
    // eth1 relying on .1 still being a's.
    let mut freed = p.clone();
    freed.set_allocations(&Default::default());
    let mut grown = p.clone();
    records.insert(
        "10.23.0.2".into(),
        spiderpool_core::model::PoolIPAllocation {
            interface: Some("eth1".into()),
            ..eth0
        },
    );
    grown.set_allocations(&records);
    store.update(Object::IpPool(freed), &rev).await.unwrap();
    let err = store.update(Object::IpPool(grown), &rev).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
}

/// etcd transactions served so far, from the member's `/metrics`.
fn transactions(endpoint: &str) -> u64 {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(conn, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("grpc_server_handled_total{") && l.contains("grpc_method=\"Txn\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// An uncontended allocation costs two etcd transactions: the snapshot's three reads (reserved
/// IPs, the endpoint, the pools) share one, and the commit is the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncontended_allocation_costs_two_transactions() {
    let cluster = Cluster::start(1);
    let endpoint = cluster.endpoints()[0].clone();
    let store = common::connect(&cluster.endpoints()).await;
    put_pool(
        &store,
        "p",
        "subnet: 10.26.0.0/24\nips: [10.26.0.1-10.26.0.9]\ndefault: true",
    )
    .await;
    let ipam = Ipam::new(&store);
    for i in 0..3 {
        let before = transactions(&endpoint);
        let got = ipam
            .allocate(&add("ns", &format!("a{i}"), &format!("ua{i}")))
            .await
            .unwrap();
        assert_eq!(
            got[0].ipv4.as_deref(),
            Some(format!("10.26.0.{}/24", i + 1).as_str())
        );
        assert_eq!(transactions(&endpoint) - before, 2, "allocation {i}");
    }
}

/// The store lists the addresses its commits add (`Store::in_flight`) to a reader of the pool
/// at a revision that does not show them yet, not to one that does, and not those of a commit
/// that failed.
#[tokio::test]
async fn what_a_commit_adds_is_news_only_to_older_reads() {
    use spiderpool_core::store::Revision;
    let store = common::store().await;
    put_pool(
        &store,
        "p",
        "subnet: 10.24.0.0/24\nips: [10.24.0.1-10.24.0.9]",
    )
    .await;
    let read = |store: &backend_etcd::EtcdStore| {
        let store = store.clone();
        async move {
            let s = store.get(&Key::pool("p")).await.unwrap().unwrap();
            match s.object {
                Object::IpPool(p) => (p, s.revision),
                other => panic!("{other:?}"),
            }
        }
    };
    let listed = |at: &Revision| {
        let at = at.clone();
        store
            .in_flight(&move |pool| (pool == "p").then(|| at.clone()))
            .remove("p")
            .unwrap_or_default()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
    };
    let record = |pod: &str| spiderpool_core::model::PoolIPAllocation {
        pod: format!("ns/{pod}"),
        pod_uid: format!("u{pod}"),
        interface: Some("eth0".into()),
        extra: Default::default(),
    };
    let (before, r0) = read(&store).await;
    let mut one = before.clone();
    one.set_allocations(&[("10.24.0.1".to_string(), record("a"))].into());
    store.update(Object::IpPool(one), &r0).await.unwrap();
    let (_, r1) = read(&store).await;
    assert_eq!(listed(&r0), ["10.24.0.1"]);
    assert!(listed(&r1).is_empty(), "{:?}", listed(&r1));
    // A stale plan adding .1 (taken meanwhile) and .3 fails: .3 is not claimed.
    let mut stale = before.clone();
    stale.set_allocations(
        &[
            ("10.24.0.1".to_string(), record("b")),
            ("10.24.0.3".to_string(), record("b")),
        ]
        .into(),
    );
    store.update(Object::IpPool(stale), &r0).await.unwrap_err();
    assert_eq!(listed(&r0), ["10.24.0.1"]);
    // Pools not read are not asked about.
    assert!(store.in_flight(&|_| None).is_empty());
}

/// Concurrent commits of one store share etcd transactions; each keeps its own compares: of
/// 32 creates of one endpoint exactly one succeeds, 32 creates of distinct endpoints all
/// do, and of 16 updates from one revision exactly one succeeds, whatever the batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_transactions_keep_their_own_compares() {
    use spiderpool_core::model::SpiderEndpoint;
    let store = Arc::new(common::store().await);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        let name = if i % 2 == 0 {
            "same".to_string()
        } else {
            format!("ep-{i}")
        };
        tasks.push(tokio::spawn(async move {
            let ok = store
                .create(Object::Endpoint(SpiderEndpoint::new("ns", name)))
                .await;
            (i, ok)
        }));
    }
    let (mut same, mut distinct) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (i, Ok(_)) if i % 2 == 0 => same += 1,
            (_, Ok(_)) => distinct += 1,
            (i, Err(e)) => {
                assert_eq!(i % 2, 0, "a create of a free key failed: {e}");
                assert!(
                    matches!(e, Error::AlreadyExists { .. } | Error::Conflict { .. }),
                    "{e}"
                );
            }
        }
    }
    assert_eq!((same, distinct), (1, 32));

    let key = Key::endpoint("ns", "same");
    let stored = store.get(&key).await.unwrap().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, stored) = (store.clone(), stored.clone());
        tasks.push(tokio::spawn(async move {
            store.update(stored.object, &stored.revision).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert!(matches!(e, Error::Conflict { .. }), "{e}"),
        }
    }
    assert_eq!(won, 1);
}
