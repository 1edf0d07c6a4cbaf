//! Auto-pools from SpiderSubnets, and GC decisions.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use backend_memory::MemoryStore;
use proptest::prelude::*;
use spiderpool_core::annotations::*;
use spiderpool_core::autopool::{
    auto_pool_name, plan_auto_pools, plan_reclaim, Application, AutoPoolConfig,
};
use spiderpool_core::gc::{gc_decisions, PodInfo, PodPhase};
use spiderpool_core::ipam::Ipam;
use spiderpool_core::model::{AddressSpec, Object, SpiderIPPool, SpiderReservedIP, SpiderSubnet};
use spiderpool_core::request::{AllocateRequest, Owner, PodRef, ReleaseRequest};
use spiderpool_core::store::{Revision, Store};
use spiderpool_core::Error;
use spiderpool_testkit::check_invariants;
use spiderpool_testkit::fixtures::{block_on_ready, reserved};

fn subnet(name: &str, cidr: &str, ips: &str) -> SpiderSubnet {
    let yaml = format!("apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderSubnet\nmetadata: {{name: {name}}}\nspec: {{subnet: \"{cidr}\", ips: [\"{ips}\"]}}\n");
    let Object::Subnet(mut s) = spiderpool_core::model::parse_documents("t", &yaml)
        .unwrap()
        .remove(0)
        .object
    else {
        panic!()
    };
    spiderpool_core::validate::mutate_subnet(&mut s);
    s
}

fn app(kind: &str, name: &str, replicas: Option<u64>, annotations: &[(&str, &str)]) -> Application {
    let api_version = if kind == "CloneSet" {
        "apps.kruise.io/v1alpha1"
    } else {
        "apps/v1"
    };
    Application {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: "default".into(),
        name: name.into(),
        uid: format!("{name}-4000-8000-452e737e5e12"),
        replicas,
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

struct World {
    store: MemoryStore,
}

impl World {
    fn new(subnets: &[SpiderSubnet]) -> Self {
        let store = MemoryStore::new();
        for s in subnets {
            block_on_ready(store.create(Object::Subnet(s.clone()))).unwrap();
        }
        World { store }
    }

    fn list<T>(&self, kind: &str, f: fn(Object) -> Option<T>) -> Vec<(T, Revision)> {
        block_on_ready(self.store.list(kind))
            .unwrap()
            .into_iter()
            .filter_map(|s| f(s.object).map(|o| (o, s.revision)))
            .collect()
    }

    fn subnets(&self) -> Vec<(SpiderSubnet, Revision)> {
        self.list(SpiderSubnet::KIND, |o| match o {
            Object::Subnet(s) => Some(s),
            _ => None,
        })
    }

    fn pools(&self) -> Vec<(SpiderIPPool, Revision)> {
        self.list(SpiderIPPool::KIND, |o| match o {
            Object::IpPool(p) => Some(p),
            _ => None,
        })
    }

    fn reserved(&self) -> Vec<SpiderReservedIP> {
        self.list(SpiderReservedIP::KIND, |o| match o {
            Object::ReservedIp(r) => Some(r),
            _ => None,
        })
        .into_iter()
        .map(|(r, _)| r)
        .collect()
    }

    fn reconcile(&self, a: &Application) -> Result<(), Error> {
        let writes = plan_auto_pools(
            a,
            &self.subnets(),
            &self.pools(),
            &self.reserved(),
            &AutoPoolConfig::default(),
        )?;
        block_on_ready(self.store.commit(writes))
    }

    fn pool(&self, name: &str) -> SpiderIPPool {
        self.pools()
            .into_iter()
            .find(|(p, _)| p.metadata.name == name)
            .unwrap_or_else(|| panic!("no pool {name}"))
            .0
    }

    fn allocate(&self, a: &Application, pod: &str) -> Result<String, Error> {
        let req = AllocateRequest {
            pod: PodRef::new("default", pod, &format!("uid-{pod}")),
            ifname: "eth0".into(),
            pod_annotations: a.annotations.clone(),
            owner: Some(Owner {
                api_version: a.api_version.clone(),
                kind: a.kind.clone(),
                name: a.name.clone(),
                uid: a.uid.clone(),
                exists: true,
                ..Owner::default()
            }),
            ..AllocateRequest::default()
        };
        let got = block_on_ready(Ipam::new(&self.store).allocate(&req))?;
        Ok(got[0].ipv4.clone().or(got[0].ipv6.clone()).unwrap())
    }

    fn release(&self, pod: &str) {
        let req = ReleaseRequest {
            pod: PodRef::new("default", pod, &format!("uid-{pod}")),
            ..Default::default()
        };
        block_on_ready(Ipam::new(&self.store).release(&req)).unwrap();
    }

    /// Subnet status agrees with the pools, and the store invariants hold.
    fn check(&self) {
        block_on_ready(check_invariants(&self.store)).unwrap();
        for (s, _) in self.subnets() {
            let controlled = s.controlled_pools().unwrap();
            let mut handed = 0i64;
            for (name, pre) in &controlled {
                let pool = self.pool(name);
                assert_eq!(
                    &pool.spec.ips, &pre.ips,
                    "subnet {} and pool {name} disagree",
                    s.metadata.name
                );
                let count = pool.spec.total_ips().unwrap().len().to_i64_saturating();
                assert!(
                    count >= pool.allocations().unwrap().len() as i64,
                    "pool smaller than its allocations"
                );
                assert!(pool
                    .spec
                    .total_ips()
                    .unwrap()
                    .is_subset(&s.spec.total_ips().unwrap()));
                handed += count;
            }
            assert_eq!(
                s.status.allocated_ip_count,
                Some(handed),
                "subnet {} count",
                s.metadata.name
            );
        }
    }
}

const SUBNET_ANNO: &str = ANNO_SUBNET;

#[test]
fn names_follow_spiderpool() {
    assert_eq!(
        auto_pool_name(
            "test-name",
            spiderpool_core::ip::IpFamily::V4,
            "test-nic",
            "a-b-c-d"
        ),
        "auto4-test-name-test-nic-d"
    );
    assert_eq!(
        auto_pool_name(
            "test-name",
            spiderpool_core::ip::IpFamily::V4,
            "test-nic",
            "a-b-c-defghi"
        ),
        "auto4-test-name-test-nic-defgh"
    );
    let long = "x".repeat(300);
    assert_eq!(
        auto_pool_name(&long, spiderpool_core::ip::IpFamily::V6, "eth0", "u-12345").len(),
        253
    );
}

#[test]
fn a_flexible_pool_follows_the_replicas_seed_002() {
    // Seed 002: nginx, 2 replicas, "+3": a pool of 5 that grows to 6 with a third replica.
    let w = World::new(&[subnet(
        "nginx-subnet-v4",
        "10.244.0.0/16",
        "10.244.100.90-10.244.100.200",
    )]);
    let mut nginx = app(
        "Deployment",
        "nginx",
        Some(2),
        &[
            (SUBNET_ANNO, r#"{"ipv4":["nginx-subnet-v4"]}"#),
            (ANNO_IPPOOL_IP_NUMBER, "+3"),
        ],
    );
    w.reconcile(&nginx).unwrap();
    let name = "auto4-nginx-eth0-452e7";
    let p = w.pool(name);
    assert_eq!(p.spec.ips, vec!["10.244.100.90-10.244.100.94"]);
    assert_eq!(p.status.total_ip_count, Some(5));
    assert_eq!(p.metadata.labels[LABEL_OWNER_APPLICATION_GV], "apps_v1");
    assert_eq!(
        p.metadata.labels[LABEL_OWNER_APPLICATION_KIND],
        "Deployment"
    );
    assert_eq!(p.metadata.labels[LABEL_IP_VERSION], "IPv4");
    assert_eq!(p.metadata.labels[LABEL_IPPOOL_RECLAIM], "true");
    assert_eq!(p.metadata.annotations[ANNO_IPPOOL_IP_NUMBER], "+3");
    assert_eq!(
        p.spec.pod_affinity.as_ref().unwrap().match_labels[LABEL_APP_NAME],
        "nginx"
    );
    let s = &w.subnets()[0].0;
    assert_eq!(
        s.controlled_pools().unwrap()[name].application.as_deref(),
        Some("apps_v1_Deployment_default_nginx")
    );
    // Pods take addresses inside the pool; a restart (new uid) stays inside it.
    for pod in ["nginx-a", "nginx-b"] {
        let ip = w.allocate(&nginx, pod).unwrap();
        assert!(ip.starts_with("10.244.100.9"), "{ip}");
    }
    w.release("nginx-a");
    assert!(w
        .allocate(&nginx, "nginx-c")
        .unwrap()
        .starts_with("10.244.100.9"));
    nginx.replicas = Some(3);
    w.reconcile(&nginx).unwrap();
    assert_eq!(w.pool(name).spec.ips, vec!["10.244.100.90-10.244.100.95"]);
    assert_eq!(w.pool(name).status.allocated_ip_count, Some(2));
    w.check();
    // Reconciling again changes nothing.
    assert!(plan_auto_pools(
        &nginx,
        &w.subnets(),
        &w.pools(),
        &w.reserved(),
        &AutoPoolConfig::default()
    )
    .unwrap()
    .is_empty());
    // Other applications' pods may not use it.
    let other = app(
        "Deployment",
        "other",
        Some(1),
        &[(SUBNET_ANNO, r#"{"ipv4":["nginx-subnet-v4"]}"#)],
    );
    let err = w.allocate(&other, "other-a").unwrap_err();
    assert!(
        err.to_string().contains("no matching auto-created IPPool"),
        "{err}"
    );
}

#[test]
fn scale_down_gives_back_only_unallocated_addresses() {
    let w = World::new(&[subnet("s", "10.9.0.0/24", "10.9.0.1-10.9.0.100")]);
    let mut a = app(
        "StatefulSet",
        "db",
        Some(4),
        &[
            (SUBNET_ANNO, r#"{"ipv4":["s"]}"#),
            (ANNO_IPPOOL_IP_NUMBER, "+0"),
        ],
    );
    w.reconcile(&a).unwrap();
    let name = "auto4-db-eth0-452e7";
    assert_eq!(w.pool(name).spec.ips, vec!["10.9.0.1-10.9.0.4"]);
    w.allocate(&a, "db-0").unwrap();
    w.allocate(&a, "db-1").unwrap();
    // db-0 goes away; db-1 keeps .2. Scale to 1: the pool keeps .2 and loses the lowest free.
    w.release("db-0");
    a.replicas = Some(1);
    w.reconcile(&a).unwrap();
    assert_eq!(
        w.pool(name).spec.ips,
        vec!["10.9.0.2"],
        "the allocated address stays"
    );
    // A fixed size below the allocations is refused until they are released.
    a.annotations
        .insert(ANNO_IPPOOL_IP_NUMBER.into(), "0".into());
    let err = w.reconcile(&a).unwrap_err();
    assert!(err.to_string().contains("failed to scale down IPPool auto4-db-eth0-452e7 IPs: IPPool available free IPs are not enough"), "{err}");
    w.check();
}

#[test]
fn reclaim_on_delete_unless_told_otherwise() {
    let w = World::new(&[subnet("s", "10.9.0.0/24", "10.9.0.1-10.9.0.100")]);
    let a = app(
        "Deployment",
        "web",
        Some(1),
        &[(SUBNET_ANNO, r#"{"ipv4":["s"]}"#)],
    );
    w.reconcile(&a).unwrap();
    w.allocate(&a, "web-x").unwrap();
    // Pods first: a pool with allocations is not deleted yet.
    assert!(plan_reclaim(&a.uid, &w.subnets(), &w.pools())
        .unwrap()
        .is_empty());
    w.release("web-x");
    block_on_ready(
        w.store
            .commit(plan_reclaim(&a.uid, &w.subnets(), &w.pools()).unwrap()),
    )
    .unwrap();
    assert!(w.pools().is_empty());
    assert_eq!(w.subnets()[0].0.status.allocated_ip_count, Some(0));
    assert!(w.subnets()[0].0.controlled_pools().unwrap().is_empty());

    // reclaim false: the pool stays, and the re-created application (new uid) reuses it.
    let keep = app(
        "Deployment",
        "keep",
        Some(1),
        &[
            (SUBNET_ANNO, r#"{"ipv4":["s"]}"#),
            (ANNO_IPPOOL_RECLAIM, "false"),
        ],
    );
    w.reconcile(&keep).unwrap();
    assert!(plan_reclaim(&keep.uid, &w.subnets(), &w.pools())
        .unwrap()
        .is_empty());
    let mut again = keep.clone();
    again.uid = "9999-new-uid-abcdef".into();
    w.reconcile(&again).unwrap();
    assert_eq!(w.pools().len(), 1, "reused, not a second pool");
    assert_eq!(
        w.pools()[0].0.metadata.labels[LABEL_OWNER_APPLICATION_UID],
        again.uid
    );
    w.check();
}

#[test]
fn third_party_controllers_need_a_fixed_number_seed_000() {
    // Seed 000: a CloneSet with "5" on a dual-stack subnet pair: two pools of 5.
    let w = World::new(&[
        subnet(
            "subnet-demo-v4",
            "172.16.0.0/16",
            "172.16.41.1-172.16.41.100",
        ),
        subnet(
            "subnet-demo-v6",
            "fc00:f853:ccd:e790::/64",
            "fc00:f853:ccd:e790::1-fc00:f853:ccd:e790::100",
        ),
    ]);
    let anno = r#"{"ipv4": ["subnet-demo-v4"], "ipv6": ["subnet-demo-v6"]}"#;
    let clone = app(
        "CloneSet",
        "custom-kruise-cloneset",
        None,
        &[(SUBNET_ANNO, anno), (ANNO_IPPOOL_IP_NUMBER, "5")],
    );
    w.reconcile(&clone).unwrap();
    let names: Vec<String> = w
        .pools()
        .iter()
        .map(|(p, _)| p.metadata.name.clone())
        .collect();
    assert_eq!(
        names,
        vec![
            "auto4-custom-kruise-cloneset-eth0-452e7",
            "auto6-custom-kruise-cloneset-eth0-452e7"
        ]
    );
    for (p, _) in w.pools() {
        assert_eq!(p.status.total_ip_count, Some(5));
    }
    let flexible = app(
        "CloneSet",
        "c2",
        None,
        &[(SUBNET_ANNO, anno), (ANNO_IPPOOL_IP_NUMBER, "+5")],
    );
    let err = w.reconcile(&flexible).unwrap_err();
    assert!(
        err.to_string()
            .contains("'+5' in ipam.spidernet.io/ippool-ip-number needs the replica count"),
        "{err}"
    );
    let absent = app("CloneSet", "c3", None, &[(SUBNET_ANNO, anno)]);
    let err = w.reconcile(&absent).unwrap_err();
    assert!(
        err.to_string()
            .contains("CloneSet/default/c3 only supports fixed auto-created IPPool IP Number"),
        "{err}"
    );
    w.check();
}

#[test]
fn growth_skips_reserved_and_other_pools_and_fails_clearly_when_short() {
    let w = World::new(&[subnet("s", "10.9.0.0/24", "10.9.0.1-10.9.0.10")]);
    block_on_ready(
        w.store
            .create(Object::ReservedIp(reserved("r", &["10.9.0.1"]))),
    )
    .unwrap();
    let mut manual = spiderpool_testkit::fixtures::pool(
        "manual",
        "subnet: 10.9.0.0/24\nips: [10.9.0.2-10.9.0.3]",
    );
    manual
        .metadata
        .labels
        .insert(LABEL_IPPOOL_CIDR.into(), "10-9-0-0-24".into());
    block_on_ready(w.store.create(Object::IpPool(manual))).unwrap();
    let a = app(
        "Deployment",
        "web",
        Some(2),
        &[
            (SUBNET_ANNO, r#"{"ipv4":["s"]}"#),
            (ANNO_IPPOOL_IP_NUMBER, "4"),
        ],
    );
    w.reconcile(&a).unwrap();
    assert_eq!(
        w.pool("auto4-web-eth0-452e7").spec.ips,
        vec!["10.9.0.4-10.9.0.7"]
    );
    let big = app(
        "Deployment",
        "big",
        Some(1),
        &[
            (SUBNET_ANNO, r#"{"ipv4":["s"]}"#),
            (ANNO_IPPOOL_IP_NUMBER, "9"),
        ],
    );
    let err = w.reconcile(&big).unwrap_err();
    assert!(
        err.to_string()
            .contains("insufficient subnet FreeIPs, required '9' but only left '3'"),
        "{err}"
    );
}

#[test]
fn the_cluster_default_subnet_serves_a_bare_ip_number() {
    let w = World::new(&[subnet(
        "default-v4-subnet",
        "172.18.0.0/16",
        "172.18.40.1-172.18.40.50",
    )]);
    let clone = app(
        "CloneSet",
        "custom-kruise-cloneset",
        None,
        &[(ANNO_IPPOOL_IP_NUMBER, "5")],
    );
    let cfg = AutoPoolConfig {
        default_ipv4_subnet: Some("default-v4-subnet".into()),
        ..AutoPoolConfig::default()
    };
    let writes = plan_auto_pools(&clone, &w.subnets(), &w.pools(), &w.reserved(), &cfg).unwrap();
    block_on_ready(w.store.commit(writes)).unwrap();
    assert_eq!(w.pools()[0].0.spec.ips, vec!["172.18.40.1-172.18.40.5"]);
    // Without a default subnet, a bare number means the normal pool chain.
    assert!(plan_auto_pools(
        &clone,
        &w.subnets(),
        &w.pools(),
        &w.reserved(),
        &AutoPoolConfig::default()
    )
    .unwrap()
    .is_empty());
}

#[derive(Debug, Clone)]
enum Step {
    Scale(u64),
    Number(String),
    Start(u8),
    Stop(u8),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the sequence of scales, size changes, pod starts and stops: the pool is never
    /// smaller than its allocations, the subnet's counts are exact, no address is in two pools.
    #[test]
    fn auto_pools_keep_their_invariants(steps in prop::collection::vec(prop_oneof![
        (0u64..8).prop_map(Step::Scale),
        prop_oneof![Just("+0"), Just("+2"), Just("3"), Just("6")].prop_map(|s| Step::Number(s.to_string())),
        (0u8..6).prop_map(Step::Start),
        (0u8..6).prop_map(Step::Stop),
    ], 1..25)) {
        let w = World::new(&[subnet("s", "10.9.0.0/24", "10.9.0.1-10.9.0.40")]);
        let mut manual = spiderpool_testkit::fixtures::pool("manual", "subnet: 10.9.0.0/24\nips: [10.9.0.5-10.9.0.6]");
        manual.metadata.labels.insert(LABEL_IPPOOL_CIDR.into(), "10-9-0-0-24".into());
        block_on_ready(w.store.create(Object::IpPool(manual))).unwrap();
        let mut a = app("Deployment", "web", Some(2), &[(SUBNET_ANNO, r#"{"ipv4":["s"]}"#)]);
        let mut running: BTreeMap<u8, String> = BTreeMap::new();
        for step in steps {
            match step {
                Step::Scale(r) => a.replicas = Some(r),
                Step::Number(n) => { a.annotations.insert(ANNO_IPPOOL_IP_NUMBER.into(), n); }
                Step::Start(k) => {
                    if let std::collections::btree_map::Entry::Vacant(slot) = running.entry(k) {
                        if let Ok(ip) = w.allocate(&a, &format!("web-{k}")) {
                            slot.insert(ip);
                        }
                    }
                }
                Step::Stop(k) => {
                    if running.remove(&k).is_some() {
                        w.release(&format!("web-{k}"));
                    }
                }
            }
            match w.reconcile(&a) {
                Ok(()) => {}
                Err(Error::AutoPool { reason, .. }) => prop_assert!(reason.contains("free IPs are not enough") || reason.contains("insufficient"), "{}", reason),
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            }
            w.check();
            for ip in running.values() {
                let addr: std::net::IpAddr = ip.split('/').next().unwrap().parse().unwrap();
                prop_assert!(w.pool("auto4-web-eth0-452e7").spec.total_ips().unwrap().contains(addr), "a running pod's address left its pool");
            }
        }
    }
}

#[test]
fn gc_frees_what_no_live_pod_needs() {
    let w = World::new(&[]);
    block_on_ready(
        w.store
            .create(Object::IpPool(spiderpool_testkit::fixtures::pool(
                "p",
                "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.20]\ndefault: true",
            ))),
    )
    .unwrap();
    let ipam = Ipam::new(&w.store);
    let sts = Owner {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        name: "db".into(),
        exists: true,
        replicas: Some(1),
        ..Owner::default()
    };
    for (name, owner) in [
        ("gone", None),
        ("replaced", None),
        ("done", None),
        ("dying", None),
        ("fine", None),
        ("db-0", Some(sts.clone())),
        ("db-1", Some(sts.clone())),
    ] {
        let req = AllocateRequest {
            pod: PodRef::new("ns", name, &format!("uid-{name}")),
            ifname: "eth0".into(),
            owner,
            ..AllocateRequest::default()
        };
        block_on_ready(ipam.allocate(&req)).unwrap();
    }
    let now: jiff::Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
    let pod = |name: &str, uid: &str, phase| PodInfo {
        pod: PodRef::new("ns", name, uid),
        phase,
        deletion_timestamp: None,
        deletion_grace_period_seconds: None,
    };
    let mut dying = pod("dying", "uid-dying", PodPhase::Running);
    dying.deletion_timestamp = Some("2026-01-01T00:00:00Z".parse().unwrap());
    dying.deletion_grace_period_seconds = Some(30);
    let mut young = pod("fine", "uid-fine", PodPhase::Running);
    young.deletion_timestamp = Some("2026-01-01T00:09:50Z".parse().unwrap());
    young.deletion_grace_period_seconds = Some(30);
    let pods = vec![
        pod("replaced", "uid-new", PodPhase::Running),
        pod("done", "uid-done", PodPhase::Succeeded),
        dying,
        young,
    ];
    let pools: Vec<SpiderIPPool> = w.pools().into_iter().map(|(p, _)| p).collect();
    let endpoints: Vec<_> = block_on_ready(w.store.list("SpiderEndpoint"))
        .unwrap()
        .into_iter()
        .filter_map(|s| match s.object {
            Object::Endpoint(e) => Some(e),
            _ => None,
        })
        .collect();
    let owner_of = |_: &spiderpool_core::model::SpiderEndpoint| Some(sts.clone());
    let decisions = gc_decisions(&pods, &pools, &endpoints, &owner_of, now, 0);
    let mut freed: Vec<String> = decisions
        .iter()
        .map(|d| d.release.pod.name.clone())
        .collect();
    freed.sort();
    assert_eq!(
        freed,
        vec!["db-1", "done", "dying", "gone", "replaced"],
        "{decisions:#?}"
    );
    for d in &decisions {
        block_on_ready(ipam.release(&d.release)).unwrap();
    }
    block_on_ready(check_invariants(&w.store)).unwrap();
    let p = &w.pools()[0].0;
    let holders: Vec<String> = p
        .allocations()
        .unwrap()
        .values()
        .map(|r| r.pod.clone())
        .collect();
    assert_eq!(holders, vec!["ns/fine", "ns/db-0"]);
    let _ = ReleaseRequest::default();
}
