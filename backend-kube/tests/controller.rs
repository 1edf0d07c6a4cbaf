//! The controller's reconcile through the mock API server: auto-pools for each workload kind,
//! scaling and reclaim, GC of gone pods, finalizers, and two controllers at once.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use backend_kube::controller::{Controller, ControllerConfig};
use backend_kube::KubeStore;
use serde_json::{json, Value};
use spiderpool_core::annotations::{
    LABEL_OWNER_APPLICATION_KIND, LABEL_OWNER_APPLICATION_NAME, LABEL_OWNER_APPLICATION_UID,
};
use spiderpool_core::ipam::Ipam;
use spiderpool_core::model::{Object, SpiderIPPool, SpiderSubnet};
use spiderpool_core::store::{Key, Store};
use spiderpool_testkit::fixtures::{add, put_pool, statefulset, with_annotations};
use spiderpool_testkit::kube_api::{client, client_with, Shared};

const SUBNET_ANNOTATIONS: &str = r#"{"ipam.spidernet.io/subnet": "{\"ipv4\":[\"s\"]}", "ipam.spidernet.io/ippool-ip-number": "+1"}"#;

fn now() -> jiff::Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

fn subnet(state: &Shared) {
    state.lock().unwrap().insert(json!({
        "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderSubnet",
        "metadata": {"name": "s", "finalizers": ["spiderpool.spidernet.io"]},
        "spec": {"ipVersion": 4, "subnet": "10.20.0.0/16", "ips": ["10.20.0.1-10.20.3.254"]}
    }));
}

fn annotations() -> Value {
    serde_json::from_str(SUBNET_ANNOTATIONS).unwrap()
}

/// A workload of `kind` with the subnet annotations on its pod template.
fn workload(kind: &str, name: &str, spec: Value) -> Value {
    let api_version = match kind {
        "Job" | "CronJob" => "batch/v1",
        _ => "apps/v1",
    };
    let mut spec = spec;
    let template = json!({"metadata": {"annotations": annotations()}, "spec": {}});
    if kind == "CronJob" {
        spec["jobTemplate"] = json!({"spec": {"template": template}});
    } else {
        spec["template"] = template;
    }
    json!({"apiVersion": api_version, "kind": kind,
           "metadata": {"name": name, "namespace": "apps"}, "spec": spec})
}

async fn pools(store: &KubeStore) -> Vec<SpiderIPPool> {
    store
        .list(SpiderIPPool::KIND)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|s| match s.object {
            Object::IpPool(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn size(p: &SpiderIPPool) -> i64 {
    p.status.total_ip_count.unwrap_or(-1)
}

fn auto_pool<'a>(pools: &'a [SpiderIPPool], kind: &str, name: &str) -> Option<&'a SpiderIPPool> {
    pools.iter().find(|p| {
        p.metadata
            .labels
            .get(LABEL_OWNER_APPLICATION_KIND)
            .map(String::as_str)
            == Some(kind)
            && p.metadata
                .labels
                .get(LABEL_OWNER_APPLICATION_NAME)
                .map(String::as_str)
                == Some(name)
    })
}

/// Every address of a pool's `spec.ips` (IPv4 ranges `a-b` or single addresses).
fn addresses(p: &SpiderIPPool) -> Vec<std::net::Ipv4Addr> {
    p.spec
        .ips
        .iter()
        .flat_map(|r| {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            let (a, b): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
                (a.parse().unwrap(), b.parse().unwrap());
            (u32::from(a)..=u32::from(b)).map(std::net::Ipv4Addr::from)
        })
        .collect()
}

fn assert_disjoint(pools: &[SpiderIPPool]) {
    let mut seen = BTreeSet::new();
    for p in pools {
        for ip in addresses(p) {
            assert!(seen.insert(ip), "{ip} handed to two pools");
        }
    }
}

/// The SpiderSubnet `s` as stored.
async fn subnet_s(store: &KubeStore) -> SpiderSubnet {
    match store
        .get(&Key::cluster(SpiderSubnet::KIND, "s"))
        .await
        .unwrap()
        .unwrap()
        .object
    {
        Object::Subnet(s) => s,
        _ => unreachable!(),
    }
}

fn controller(state: &Shared) -> Controller {
    Controller::new(client_with(state.clone()), ControllerConfig::default())
}

#[tokio::test]
async fn every_workload_kind_gets_its_auto_pool_sized_as_spiderpool() {
    let (client, state) = client();
    subnet(&state);
    let deploy = {
        let mut s = state.lock().unwrap();
        let deploy = s.insert(workload("Deployment", "web", json!({"replicas": 3})));
        s.insert(workload("StatefulSet", "db", json!({"replicas": 2})));
        let mut ds = workload("DaemonSet", "agent", json!({}));
        ds["status"] = json!({"desiredNumberScheduled": 4});
        s.insert(ds);
        s.insert(workload(
            "Job",
            "batch",
            json!({"completions": 2, "parallelism": 5}),
        ));
        s.insert(workload(
            "CronJob",
            "nightly",
            json!({"schedule": "0 0 * * *"}),
        ));
        s.insert(workload("ReplicaSet", "bare", json!({"replicas": 2})));
        // The Deployment's own ReplicaSet is not an application.
        let mut rs = workload("ReplicaSet", "web-6d4f", json!({"replicas": 3}));
        rs["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment",
            "name": "web", "uid": deploy["metadata"]["uid"], "controller": true}]);
        s.insert(rs);
        // A third-party controller, known through its pod: a fixed pool size.
        s.insert(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "clone-1", "namespace": "apps",
                "annotations": {"ipam.spidernet.io/subnet": "{\"ipv4\":[\"s\"]}",
                                "ipam.spidernet.io/ippool-ip-number": "5"},
                "ownerReferences": [{"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                    "name": "clone", "uid": "clone-uid", "controller": true}]},
            "spec": {"nodeName": "n1"}}));
        // Host-network workloads are left alone.
        let mut host = workload("Deployment", "host", json!({"replicas": 1}));
        host["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
        s.insert(host);
        deploy
    };
    let c = Controller::new(client.clone(), ControllerConfig::default());
    let report = c.reconcile(now()).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let store = KubeStore::new(client);
    let all = pools(&store).await;
    let expect = [
        ("Deployment", "web", 4),
        ("StatefulSet", "db", 3),
        ("DaemonSet", "agent", 5),
        ("Job", "batch", 3),
        ("CronJob", "nightly", 2),
        ("ReplicaSet", "bare", 3),
        ("CloneSet", "clone", 5),
    ];
    for (kind, name, n) in expect {
        let p = auto_pool(&all, kind, name).unwrap_or_else(|| panic!("no pool for {kind} {name}"));
        assert_eq!(size(p), n, "{kind} {name}: {:?}", p.spec.ips);
    }
    assert_eq!(all.len(), expect.len(), "one pool per application: {all:?}");
    assert_eq!(
        auto_pool(&all, "Deployment", "web")
            .unwrap()
            .metadata
            .labels[LABEL_OWNER_APPLICATION_UID],
        deploy["metadata"]["uid"].as_str().unwrap()
    );
    // No two pools share an address, and the subnet records each.
    let subnet = subnet_s(&store).await;
    let controlled = subnet.controlled_pools().unwrap();
    let names: BTreeSet<&str> = all.iter().map(|p| p.metadata.name.as_str()).collect();
    assert_eq!(
        controlled
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        names
    );
    assert_disjoint(&all);
    // Level-triggered: a second reconcile has nothing to do.
    let again = c.reconcile(now()).await.unwrap();
    assert!(again.is_quiet(), "{again:?}");
}

#[tokio::test]
async fn pools_follow_scale_and_are_reclaimed_with_their_workload() {
    let (client, state) = client();
    subnet(&state);
    let d = state
        .lock()
        .unwrap()
        .insert(workload("Deployment", "web", json!({"replicas": 3})));
    let c = controller(&state);
    c.reconcile(now()).await.unwrap();
    let store = KubeStore::new(client);
    assert_eq!(
        size(auto_pool(&pools(&store).await, "Deployment", "web").unwrap()),
        4
    );

    let mut scaled = state
        .lock()
        .unwrap()
        .get("apps/v1", "Deployment", Some("apps"), "web")
        .unwrap();
    scaled["spec"]["replicas"] = json!(6);
    state.lock().unwrap().update(scaled);
    let report = c.reconcile(now()).await.unwrap();
    assert!(
        report.autopools.contains("Deployment apps/web"),
        "{report:?}"
    );
    assert_eq!(
        size(auto_pool(&pools(&store).await, "Deployment", "web").unwrap()),
        7
    );

    state
        .lock()
        .unwrap()
        .remove("apps/v1", "Deployment", Some("apps"), "web")
        .unwrap();
    let report = c.reconcile(now()).await.unwrap();
    assert!(
        report
            .reclaimed
            .contains(d["metadata"]["uid"].as_str().unwrap()),
        "{report:?}"
    );
    assert!(pools(&store).await.is_empty());
    let subnet = subnet_s(&store).await;
    assert!(
        subnet.controlled_pools().unwrap().is_empty(),
        "addresses back in the subnet"
    );
}

fn pod(name: &str, extra: Value) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            p["metadata"][k] = v;
        }
    }
    p
}

async fn allocated(store: &KubeStore, pool: &str) -> BTreeSet<String> {
    let p = pools(store)
        .await
        .into_iter()
        .find(|p| p.metadata.name == pool)
        .unwrap();
    p.allocations()
        .unwrap()
        .values()
        .map(|r| r.pod.clone())
        .collect()
}

#[tokio::test]
async fn gc_frees_gone_finished_and_overdue_pods_and_keeps_wanted_statefulset_pods() {
    let (client, state) = client();
    let store = KubeStore::new(client);
    put_pool(
        &store,
        "p",
        "subnet: 10.30.0.0/24\nips: [10.30.0.1-10.30.0.50]",
    )
    .await;
    let ipam = Ipam::new(store.clone());
    let via_p = |ns: &str, name: &str, uid: &str| {
        with_annotations(
            add(ns, name, uid),
            &[("ipam.spidernet.io/ippool", r#"{"ipv4":["p"]}"#)],
        )
    };
    // The API server gives uids: the pods first, then their allocations under those uids.
    let uid_of = |v: Value| v["metadata"]["uid"].as_str().unwrap().to_string();
    let pods = {
        let mut s = state.lock().unwrap();
        let mut done = pod("done", json!({}));
        done["status"]["phase"] = json!("Succeeded");
        let late =
            json!({"deletionTimestamp": "2026-05-31T23:59:00Z", "deletionGracePeriodSeconds": 30});
        let graceful =
            json!({"deletionTimestamp": "2026-05-31T23:59:50Z", "deletionGracePeriodSeconds": 30});
        [
            ("gone", s.insert(pod("gone", json!({})))),
            ("done", s.insert(done)),
            ("late", s.insert(pod("late", late))),
            ("graceful", s.insert(pod("graceful", graceful))),
            ("live", s.insert(pod("live", json!({})))),
        ]
    };
    for (name, p) in pods {
        ipam.allocate(&via_p("apps", name, &uid_of(p)))
            .await
            .unwrap();
    }
    let mut sts = via_p("apps", "db-0", "u6");
    sts.owner = Some(statefulset("db", 1));
    ipam.allocate(&sts).await.unwrap();
    {
        let mut s = state.lock().unwrap();
        s.remove("v1", "Pod", Some("apps"), "gone").unwrap();
        s.insert(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "apps"}, "spec": {"replicas": 1}}));
    }
    let report = controller(&state).reconcile(now()).await.unwrap();
    assert_eq!(report.released.len(), 3, "{report:?}");
    assert_eq!(
        allocated(&store, "p").await,
        ["apps/db-0", "apps/graceful", "apps/live"]
            .map(String::from)
            .into(),
        "db-0 is gone but still wanted by its StatefulSet"
    );

    // The StatefulSet scales to zero: its pod's address is no longer wanted.
    let mut db = state
        .lock()
        .unwrap()
        .get("apps/v1", "StatefulSet", Some("apps"), "db")
        .unwrap();
    db["spec"]["replicas"] = json!(0);
    state.lock().unwrap().update(db);
    let report = controller(&state).reconcile(now()).await.unwrap();
    assert_eq!(report.released.len(), 1, "{report:?}");
    assert!(!allocated(&store, "p").await.contains("apps/db-0"));
}

#[tokio::test]
async fn a_deleted_pool_stays_while_it_holds_allocations() {
    let (client, state) = client();
    let store = KubeStore::new(client);
    let mut bare =
        spiderpool_testkit::fixtures::pool("p", "subnet: 10.40.0.0/24\nips: [10.40.0.1-10.40.0.9]");
    bare.metadata.finalizers.clear();
    store.create(Object::IpPool(bare)).await.unwrap();
    // The controller puts the finalizer on a pool created without the webhook.
    let report = controller(&state).reconcile(now()).await.unwrap();
    assert_eq!(report.finalizers, ["added to SpiderIPPool p"]);

    let a = state.lock().unwrap().insert(pod("a", json!({})));
    let uid = a["metadata"]["uid"].as_str().unwrap();
    let req = with_annotations(
        add("apps", "a", uid),
        &[("ipam.spidernet.io/ippool", r#"{"ipv4":["p"]}"#)],
    );
    Ipam::new(store.clone()).allocate(&req).await.unwrap();
    state
        .lock()
        .unwrap()
        .remove("spiderpool.spidernet.io/v2beta1", "SpiderIPPool", None, "p");
    controller(&state).reconcile(now()).await.unwrap();
    let p = pools(&store).await;
    assert_eq!(p.len(), 1, "the pool is terminating, not gone");
    assert!(p[0].metadata.is_terminating());
    assert_eq!(allocated(&store, "p").await.len(), 1);

    // The pod goes; GC frees its address, then the finalizer goes and so does the pool.
    state.lock().unwrap().remove("v1", "Pod", Some("apps"), "a");
    controller(&state).reconcile(now()).await.unwrap();
    controller(&state).reconcile(now()).await.unwrap();
    assert!(pools(&store).await.is_empty());
}

#[tokio::test]
async fn two_controllers_at_once_conflict_but_never_duplicate() {
    let (client, state) = client();
    subnet(&state);
    {
        let mut s = state.lock().unwrap();
        for i in 0..12 {
            s.insert(workload(
                "Deployment",
                &format!("app{i}"),
                json!({"replicas": 1 + i % 3}),
            ));
        }
    }
    let (a, b) = (controller(&state), controller(&state));
    let (ra, rb) = tokio::join!(a.reconcile(now()), b.reconcile(now()));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(
        state.lock().unwrap().conflicts > 0,
        "the two controllers never met"
    );
    assert!(ra.conflicts + rb.conflicts > 0);
    let store = KubeStore::new(client);
    let all = pools(&store).await;
    for i in 0..12 {
        let name = format!("app{i}");
        let mine: Vec<_> = all
            .iter()
            .filter(|p| p.metadata.labels.get(LABEL_OWNER_APPLICATION_NAME) == Some(&name))
            .collect();
        assert_eq!(mine.len(), 1, "{name}: {mine:?}");
        assert_eq!(size(mine[0]), 2 + i64::from(i % 3), "{name}");
    }
    assert_disjoint(&all);
    let subnet = subnet_s(&store).await;
    assert_eq!(subnet.controlled_pools().unwrap().len(), 12);
    assert!(a.reconcile(now()).await.unwrap().is_quiet());
}

#[tokio::test]
async fn a_kubevirt_vm_keeps_its_address_until_the_vm_is_gone() {
    let (client, state) = client();
    let store = KubeStore::new(client);
    put_pool(
        &store,
        "p",
        "subnet: 10.70.0.0/24\nips: [10.70.0.1-10.70.0.9]",
    )
    .await;
    let vm = json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "vm1", "namespace": "apps"}, "spec": {}});
    let vmi = json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "vm1", "namespace": "apps"}, "spec": {}});
    let (vmi_uid, pod_uid) = {
        let mut s = state.lock().unwrap();
        s.insert(vm);
        let vmi = s.insert(vmi);
        let pod = s.insert(pod("virt-launcher-vm1-x7k2p", json!({})));
        (
            vmi["metadata"]["uid"].as_str().unwrap().to_string(),
            pod["metadata"]["uid"].as_str().unwrap().to_string(),
        )
    };
    let mut req = with_annotations(
        add("apps", "virt-launcher-vm1-x7k2p", &pod_uid),
        &[("ipam.spidernet.io/ippool", r#"{"ipv4":["p"]}"#)],
    );
    req.owner = Some(spiderpool_core::request::Owner {
        api_version: "kubevirt.io/v1".into(),
        kind: "VirtualMachineInstance".into(),
        name: "vm1".into(),
        uid: vmi_uid,
        exists: true,
        replicas: None,
        ordinals_start: None,
    });
    Ipam::new(store.clone()).allocate(&req).await.unwrap();
    // The launcher pod goes (a restart, a migration): the VM keeps its address.
    {
        let mut s = state.lock().unwrap();
        s.remove("v1", "Pod", Some("apps"), "virt-launcher-vm1-x7k2p");
        s.remove(
            "kubevirt.io/v1",
            "VirtualMachineInstance",
            Some("apps"),
            "vm1",
        );
    }
    let report = controller(&state).reconcile(now()).await.unwrap();
    assert!(report.released.is_empty(), "{report:?}");
    assert_eq!(
        allocated(&store, "p").await,
        ["apps/vm1".to_string()].into()
    );
    // The VM is deleted: the address is freed.
    state
        .lock()
        .unwrap()
        .remove("kubevirt.io/v1", "VirtualMachine", Some("apps"), "vm1");
    let report = controller(&state).reconcile(now()).await.unwrap();
    assert_eq!(report.released.len(), 1, "{report:?}");
    assert!(allocated(&store, "p").await.is_empty());
}
