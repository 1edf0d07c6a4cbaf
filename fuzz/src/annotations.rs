//! `annotations`: the typed `ipam.spidernet.io/*` pod and namespace annotation parsers, and
//! what consumes them: auto-pool planning and an allocation on an in-memory store.
//!
//! Input: text, one annotation per line as `key<TAB>value`; a key without `/` is taken under
//! `ipam.spidernet.io/` (so `ippool<TAB>{"ipv4":["pool-v4"]}` is the `ippool` annotation). A
//! line without a TAB is a value tried alone under every known key.
//!
//! Checked: no panic and no hang (an `ippool-ip-number` of 99999999 against a /64 subnet must
//! not enumerate addresses); what the parsers accept, the planners and the engine handle;
//! after the allocation the store's invariants hold.

use std::collections::BTreeMap;

use backend_memory::MemoryStore;
use spiderpool_core::annotations::{
    IpNumber, NamespaceAnnotations, PodAnnotations, ANNO_IPPOOL, ANNO_IPPOOLS,
    ANNO_IPPOOL_IP_NUMBER, ANNO_IPPOOL_RECLAIM, ANNO_NS_DEFAULT_IPV4_IPPOOL,
    ANNO_NS_DEFAULT_IPV6_IPPOOL, ANNO_ROUTES, ANNO_SUBNET, ANNO_SUBNETS, MULTUS_DEFAULT_NETWORK,
    MULTUS_NETWORKS, PREFIX,
};
use spiderpool_core::autopool::{intent, plan_auto_pools, Application, AutoPoolConfig};
use spiderpool_core::ip::IpFamily;
use spiderpool_core::ipam::Ipam;
use spiderpool_core::model::{
    parse_documents, Object, SpiderIPPool, SpiderReservedIP, SpiderSubnet,
};
use spiderpool_core::request::AllocateRequest;
use spiderpool_core::store::{Revision, Store};
use spiderpool_testkit::check_invariants;
use spiderpool_testkit::fixtures::{add, deployment};

use crate::util::{block_on_ready, text};

const KEYS: [&str; 11] = [
    ANNO_IPPOOL,
    ANNO_IPPOOLS,
    ANNO_ROUTES,
    ANNO_SUBNET,
    ANNO_SUBNETS,
    ANNO_IPPOOL_IP_NUMBER,
    ANNO_IPPOOL_RECLAIM,
    ANNO_NS_DEFAULT_IPV4_IPPOOL,
    ANNO_NS_DEFAULT_IPV6_IPPOOL,
    MULTUS_DEFAULT_NETWORK,
    MULTUS_NETWORKS,
];

/// The objects the allocations run against: default pools of both families, a pool only an
/// annotation names, a reserved address, and subnets for auto-pools (a small IPv4 one and an
/// IPv6 /64 whose range is 2^64 addresses).
const WORLD: &str = r#"
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: pool-v4}
spec: {subnet: 10.6.0.0/24, ips: [10.6.0.10-10.6.0.20], gateway: 10.6.0.1, default: true}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: pool-v6}
spec: {subnet: "fd00::/120", ips: ["fd00::10-fd00::20"], default: true}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: pool-b}
spec: {subnet: 10.7.0.0/24, ips: [10.7.0.1-10.7.0.2], routes: [{dst: 10.8.0.0/16, gw: 10.7.0.254}]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderReservedIP
metadata: {name: reserved}
spec: {ips: [10.6.0.10, 10.7.0.2]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderSubnet
metadata: {name: subnet-v4}
spec: {subnet: 10.244.0.0/16, ips: [10.244.0.1-10.244.0.200]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderSubnet
metadata: {name: subnet-v6}
spec: {subnet: "fd00:244::/64", ips: ["fd00:244::1-fd00:244::ffff:ffff:ffff:fffe"]}
"#;

/// The `annotations` target.
pub fn annotations(data: &[u8]) {
    let Some(input) = text(data) else { return };
    let mut map = BTreeMap::new();
    for line in input.lines().take(32) {
        match line.split_once('\t') {
            Some((k, v)) => {
                let key = if k.contains('/') {
                    k.to_string()
                } else {
                    format!("{PREFIX}{k}")
                };
                map.insert(key, v.to_string());
            }
            None => {
                for key in KEYS {
                    one(&BTreeMap::from([(key.to_string(), line.to_string())]));
                }
            }
        }
    }
    if !map.is_empty() {
        one(&map);
    }
}

fn one(map: &BTreeMap<String, String>) {
    if let Some(v) = map.get(ANNO_IPPOOL_IP_NUMBER) {
        if let Ok(n) = IpNumber::parse(v) {
            assert_eq!(IpNumber::parse(&n.to_string()).ok(), Some(n));
            for replicas in [0, 3, u64::MAX] {
                let _ = n.size(replicas);
            }
        }
    }
    let ns = NamespaceAnnotations::parse(map);
    if let Ok(ns) = &ns {
        let _ = ns.pools();
    }
    let pod = PodAnnotations::parse(map);
    if let Ok(pod) = &pod {
        for ifname in ["eth0", "net1", "0"] {
            let _ = pod.nic_pools_for(ifname);
        }
        if let Some(s) = &pod.subnet {
            let _ = (s.subnet(IpFamily::V4), s.subnet(IpFamily::V6));
        }
    }
    let world = world();
    auto_pools(map, &world);
    if pod.is_ok() || ns.is_ok() {
        allocate(map, &world);
    }
}

fn world() -> Vec<Object> {
    let mut out = Vec::new();
    for d in parse_documents("world", WORLD).unwrap() {
        let mut o = d.object;
        match &mut o {
            Object::IpPool(p) => {
                spiderpool_core::validate::mutate_ippool(p, &[], &Default::default())
            }
            Object::ReservedIp(r) => spiderpool_core::validate::mutate_reservedip(r),
            Object::Subnet(s) => spiderpool_core::validate::mutate_subnet(s),
            _ => {}
        }
        out.push(o);
    }
    out
}

/// The auto-pool controller's decision for a Deployment and a third-party controller with
/// these pod-template annotations.
fn auto_pools(map: &BTreeMap<String, String>, world: &[Object]) {
    let rev = || Revision("1".into());
    let subnets: Vec<(SpiderSubnet, Revision)> = world
        .iter()
        .filter_map(|o| match o {
            Object::Subnet(s) => Some((s.clone(), rev())),
            _ => None,
        })
        .collect();
    let pools: Vec<(SpiderIPPool, Revision)> = world
        .iter()
        .filter_map(|o| match o {
            Object::IpPool(p) => Some((p.clone(), rev())),
            _ => None,
        })
        .collect();
    let reserved: Vec<SpiderReservedIP> = world
        .iter()
        .filter_map(|o| match o {
            Object::ReservedIp(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    let cfg = AutoPoolConfig {
        default_ipv4_subnet: Some("subnet-v4".into()),
        default_ipv6_subnet: Some("subnet-v6".into()),
        ..AutoPoolConfig::default()
    };
    for (api_version, kind, replicas) in [
        ("apps/v1", "Deployment", Some(3)),
        ("apps.kruise.io/v1alpha1", "CloneSet", None),
    ] {
        let app = Application {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: "default".into(),
            name: "app".into(),
            uid: "uid-app".into(),
            replicas,
            annotations: map.clone(),
        };
        let _ = intent(&app, &cfg);
        let _ = plan_auto_pools(&app, &subnets, &pools, &reserved, &cfg);
    }
}

/// An ADD for a bare pod and for a Deployment's pod with these pod (and namespace)
/// annotations; then the invariants, then DELs.
fn allocate(map: &BTreeMap<String, String>, world: &[Object]) {
    let store = MemoryStore::new();
    for o in world {
        block_on_ready(store.create(o.clone())).unwrap();
    }
    let ipam = Ipam::new(&store);
    for (i, owner) in [None, Some(deployment("web"))].into_iter().enumerate() {
        let req = AllocateRequest {
            pod_annotations: map.clone(),
            namespace_annotations: map.clone(),
            owner,
            ..add("default", &format!("pod-{i}"), &format!("uid-{i}"))
        };
        let first = block_on_ready(ipam.allocate(&req));
        if let Ok(got) = &first {
            // A repeated ADD gives the same addresses.
            let again = block_on_ready(ipam.allocate(&req))
                .unwrap_or_else(|e| panic!("a repeated ADD failed: {e}"));
            assert_eq!(&again, got, "a repeated ADD changed the addresses");
        }
        if let Err(errs) = block_on_ready(check_invariants(&store)) {
            panic!("invariants broken after ADD ({first:?}): {errs:?}");
        }
    }
    for i in 0..2 {
        let del =
            spiderpool_testkit::fixtures::del("default", &format!("pod-{i}"), &format!("uid-{i}"));
        let _ = block_on_ready(ipam.release(&del));
        if let Err(errs) = block_on_ready(check_invariants(&store)) {
            panic!("invariants broken after DEL: {errs:?}");
        }
    }
}
