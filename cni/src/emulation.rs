//! Workload emulation: namespaces, nodes, workloads and pods kept in the store, and the
//! controllers that act on them, so that IP plans can be tried without a cluster.
//!
//! After every state-changing `spiderpoolctl` command, [`reconcile`] runs what Kubernetes and
//! Spiderpool's controllers would: workloads get their pods (StatefulSet pods `<name>-<i>`,
//! others `<name>-<suffix>`, DaemonSets one per node), applications get their auto-pools,
//! pending pods are allocated exactly as the CNI plugin would allocate them (a failure leaves
//! the pod `Pending` with the IPAM error as its message, retried next time), pods that are gone
//! release their addresses, deleted applications have their auto-pools reclaimed, and GC
//! frees whatever no live pod needs.
//!
//! Settings come from Spiderpool's ConfigMap `spiderpool-conf` (`data."conf.yml"`), when
//! applied.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use spiderpool_core::autopool::{gone_applications, plan_auto_pools, plan_reclaim, Application};
use spiderpool_core::gc::{gc_decisions, PodInfo};
use spiderpool_core::ipam::Ipam;
use spiderpool_core::model::{
    Object, OtherObject, SpiderEndpoint, SpiderIPPool, SpiderReservedIP, SpiderSubnet,
};
use spiderpool_core::request::{AllocateRequest, Owner, PodRef, ReleaseRequest};
use spiderpool_core::store::{Key, Revision, Store, Write};
use spiderpool_core::workload;

use crate::Error;

/// The network name the emulation's allocations are recorded under.
pub const EMULATION_NETWORK: &str = "spiderpool-rs.io/emulation";

pub use spiderpool_core::request::BUILTIN_WORKLOADS;

/// The kinds the emulation stores besides Spiderpool's own.
pub fn is_emulated(o: &OtherObject) -> bool {
    is_workload(o) || matches!(o.kind.as_str(), "Namespace" | "Node" | "Pod") || is_settings(o)
}

/// A workload: a built-in kind, or any kind with `spec.replicas` and a pod template.
pub fn is_workload(o: &OtherObject) -> bool {
    spiderpool_core::request::is_builtin_workload(&o.api_version, &o.kind)
        || (o.value.pointer("/spec/template").is_some()
            && o.value.pointer("/spec/replicas").is_some())
}

/// Spiderpool's ConfigMap.
pub fn is_settings(o: &OtherObject) -> bool {
    o.kind == "ConfigMap" && o.name == "spiderpool-conf"
}

pub use spiderpool_core::settings::Settings;

fn others(objects: &[Object], kind: &str) -> Vec<OtherObject> {
    objects
        .iter()
        .filter_map(|o| match o {
            Object::Other(x) if x.kind == kind => Some(x.clone()),
            _ => None,
        })
        .collect()
}

/// Reads the settings from the ConfigMap, if applied.
pub fn settings(configmaps: &[OtherObject]) -> Result<Settings, Error> {
    match configmaps.iter().find(|o| is_settings(o)) {
        Some(cm) => Ok(Settings::from_configmap(&cm.value)?),
        None => Ok(Settings::default()),
    }
}

fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    workload::str_at(v, path)
}

fn map_at(v: &Value, path: &str) -> BTreeMap<String, String> {
    workload::map_at(v, path)
}

fn uid_of(o: &OtherObject) -> String {
    workload::uid(&o.value)
}

fn ns_of(o: &OtherObject) -> String {
    o.namespace.clone().unwrap_or_else(|| "default".into())
}

/// How many pods a workload wants (a DaemonSet one per emulated node).
fn replicas(w: &OtherObject, nodes: usize) -> u64 {
    workload::replicas(&w.value, &w.kind, nodes)
}

/// The application view of a workload.
fn application(w: &OtherObject, nodes: usize) -> Application {
    workload::application(&with_namespace(w), nodes)
}

fn owner_of_workload(w: &OtherObject, nodes: usize, exists: bool) -> Owner {
    Owner {
        exists,
        ..workload::owner(&with_namespace(w), nodes)
    }
}

/// The workload's JSON with the namespace the emulation defaults.
fn with_namespace(w: &OtherObject) -> Value {
    let mut v = w.value.clone();
    v["metadata"]["namespace"] = json!(ns_of(w));
    v["apiVersion"] = json!(w.api_version);
    v["kind"] = json!(w.kind);
    v["metadata"]["name"] = json!(w.name);
    v
}

/// A pod as the emulation stores it.
fn new_pod(w: &OtherObject, name: &str, uid: String, node: &str) -> Object {
    let template = workload::pod_template_path(&w.kind);
    let node = str_at(&w.value, &format!("{template}/spec/nodeName")).unwrap_or(node);
    let value = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns_of(w),
            "uid": uid,
            "labels": map_at(&w.value, &format!("{template}/metadata/labels")),
            "annotations": map_at(&w.value, &format!("{template}/metadata/annotations")),
            "ownerReferences": [{"apiVersion": w.api_version, "kind": w.kind, "name": w.name, "uid": uid_of(w), "controller": true}],
        },
        "spec": {"nodeName": node},
        "status": {"phase": "Pending"},
    });
    Object::Other(OtherObject {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: name.into(),
        namespace: Some(ns_of(w)),
        value,
    })
}

/// Runs the controllers until nothing changes (bounded). `uid` makes uids and name suffixes.
pub async fn reconcile<S: Store>(store: &S, uid: &mut dyn FnMut() -> String) -> Result<(), Error> {
    for _ in 0..4 {
        if !pass(store, uid).await? {
            return Ok(());
        }
    }
    Ok(())
}

async fn list_all<S: Store>(store: &S, kinds: &[&str]) -> Result<Vec<(Object, Revision)>, Error> {
    let mut out = Vec::new();
    for k in kinds {
        out.extend(
            store
                .list(k)
                .await?
                .into_iter()
                .map(|s| (s.object, s.revision)),
        );
    }
    Ok(out)
}

/// One round of every controller; true if it changed something.
async fn pass<S: Store>(store: &S, uid: &mut dyn FnMut() -> String) -> Result<bool, Error> {
    let mut changed = false;
    let workload_kinds: BTreeSet<String> = store_kinds(store).await?;
    let settings = settings(&others(
        &list_all(store, &["ConfigMap"])
            .await?
            .into_iter()
            .map(|(o, _)| o)
            .collect::<Vec<_>>(),
        "ConfigMap",
    ))?;
    let nodes: Vec<OtherObject> = others(
        &list_all(store, &["Node"])
            .await?
            .into_iter()
            .map(|(o, _)| o)
            .collect::<Vec<_>>(),
        "Node",
    );
    let node_names: Vec<String> = if nodes.is_empty() {
        vec!["node1".into()]
    } else {
        nodes.iter().map(|n| n.name.clone()).collect()
    };
    let namespaces: Vec<OtherObject> = others(
        &list_all(store, &["Namespace"])
            .await?
            .into_iter()
            .map(|(o, _)| o)
            .collect::<Vec<_>>(),
        "Namespace",
    );
    let mut workloads: Vec<OtherObject> = Vec::new();
    for k in &workload_kinds {
        for (o, _) in list_all(store, &[k.as_str()]).await? {
            if let Object::Other(x) = o {
                if is_workload(&x) {
                    workloads.push(x);
                }
            }
        }
    }
    let pods: Vec<(OtherObject, Revision)> = list_all(store, &["Pod"])
        .await?
        .into_iter()
        .filter_map(|(o, r)| match o {
            Object::Other(x) => Some((x, r)),
            _ => None,
        })
        .collect();
    let owner_uid =
        |p: &OtherObject| str_at(&p.value, "/metadata/ownerReferences/0/uid").map(str::to_string);

    // 1. Pods of workloads: create the missing, delete the extra and the orphaned.
    let mut round_robin = 0usize;
    for w in &workloads {
        let mine: Vec<&(OtherObject, Revision)> = pods
            .iter()
            .filter(|(p, _)| owner_uid(p).as_deref() == Some(uid_of(w).as_str()))
            .collect();
        let want = replicas(w, node_names.len()) as usize;
        if w.kind == "StatefulSet" {
            let start = w
                .value
                .pointer("/spec/ordinals/start")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize;
            let wanted: Vec<String> = (start..start + want)
                .map(|i| format!("{}-{i}", w.name))
                .collect();
            for (i, name) in wanted.iter().enumerate() {
                if !mine.iter().any(|(p, _)| &p.name == name) {
                    let node = &node_names[(start + i) % node_names.len()];
                    store.create(new_pod(w, name, uid(), node)).await?;
                    changed = true;
                }
            }
            for (p, rev) in &mine {
                if !wanted.contains(&p.name) {
                    delete_pod(
                        store,
                        p,
                        rev,
                        Some(owner_of_workload(w, node_names.len(), true)),
                        &settings,
                    )
                    .await?;
                    changed = true;
                }
            }
        } else if w.kind == "DaemonSet" {
            for node in &node_names {
                let name = format!("{}-{node}", w.name);
                if !mine.iter().any(|(p, _)| p.name == name) {
                    store.create(new_pod(w, &name, uid(), node)).await?;
                    changed = true;
                }
            }
        } else {
            for _ in mine.len()..want {
                let suffix: String = uid()
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .take(5)
                    .collect::<String>()
                    .to_lowercase();
                let node = &node_names[round_robin % node_names.len()];
                round_robin += 1;
                store
                    .create(new_pod(w, &format!("{}-{suffix}", w.name), uid(), node))
                    .await?;
                changed = true;
            }
            for (p, rev) in mine.iter().skip(want) {
                delete_pod(store, p, rev, None, &settings).await?;
                changed = true;
            }
        }
    }
    for (p, rev) in &pods {
        let orphaned =
            owner_uid(p).is_some_and(|owner| !workloads.iter().any(|w| uid_of(w) == owner));
        // A node that is gone takes its pods with it (their addresses are freed).
        let node_gone = !nodes.is_empty()
            && !node_names
                .iter()
                .any(|n| Some(n.as_str()) == str_at(&p.value, "/spec/nodeName"));
        if orphaned || node_gone {
            // A StatefulSet pod still wanted keeps its address for its replacement.
            let owner = owner_uid(p)
                .and_then(|u| {
                    workloads
                        .iter()
                        .find(|w| uid_of(w) == u && w.kind == "StatefulSet")
                })
                .map(|w| owner_of_workload(w, node_names.len(), true));
            delete_pod(store, p, rev, owner, &settings).await?;
            changed = true;
        }
    }
    if changed {
        return Ok(true);
    }

    // 2. Auto-pools follow the applications; reclaim those of deleted applications.
    let subnets = typed_subnets(store).await?;
    let pools = typed_pools(store).await?;
    let reserved: Vec<SpiderReservedIP> = store
        .list(SpiderReservedIP::KIND)
        .await?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::ReservedIp(r) => Some(r),
            _ => None,
        })
        .collect();
    let mut autopool_errors: BTreeMap<String, String> = BTreeMap::new();
    if settings.ipam.enable_spider_subnet && settings.ipam.enable_auto_pool {
        for w in &workloads {
            let app = application(w, node_names.len());
            match plan_auto_pools(&app, &subnets, &pools, &reserved, &settings.autopool) {
                Ok(writes) if !writes.is_empty() => {
                    store.commit(writes).await?;
                    return Ok(true);
                }
                Ok(_) => {}
                Err(e) => {
                    autopool_errors.insert(uid_of(w), e.to_string());
                }
            }
        }
        let live: BTreeSet<String> = workloads.iter().map(uid_of).collect();
        for gone in gone_applications(&pools, &live) {
            let writes = plan_reclaim(&gone, &subnets, &pools)?;
            if !writes.is_empty() {
                store.commit(writes).await?;
                return Ok(true);
            }
        }
    }

    // 3. Pending pods are allocated as the CNI plugin would.
    let ipam = Ipam::new(store).with_config(settings.ipam.clone());
    for (p, rev) in &pods {
        if str_at(&p.value, "/status/phase") == Some("Running") {
            continue;
        }
        let ns = ns_of(p);
        let namespace = namespaces.iter().find(|n| n.name == ns);
        let node = str_at(&p.value, "/spec/nodeName")
            .unwrap_or("node1")
            .to_string();
        let workload = owner_uid(p).and_then(|u| workloads.iter().find(|w| uid_of(w) == u));
        let req = AllocateRequest {
            pod: PodRef::new(&ns, &p.name, &uid_of(p)),
            container_id: format!("emulated-{}", uid_of(p)),
            ifname: "eth0".into(),
            node: node.clone(),
            node_labels: nodes
                .iter()
                .find(|n| n.name == node)
                .map(|n| map_at(&n.value, "/metadata/labels"))
                .unwrap_or_default(),
            pod_labels: map_at(&p.value, "/metadata/labels"),
            pod_annotations: map_at(&p.value, "/metadata/annotations"),
            namespace_labels: namespace
                .map(|n| map_at(&n.value, "/metadata/labels"))
                .unwrap_or_default(),
            namespace_annotations: namespace
                .map(|n| map_at(&n.value, "/metadata/annotations"))
                .unwrap_or_default(),
            owner: workload.map(|w| owner_of_workload(w, node_names.len(), true)),
            network: EMULATION_NETWORK.into(),
            ..AllocateRequest::default()
        };
        let mut value = p.value.clone();
        match ipam.allocate(&req).await {
            Ok(nics) => {
                let ips: Vec<String> = nics
                    .iter()
                    .filter(|d| d.nic == "eth0")
                    .flat_map(|d| [d.ipv4.clone(), d.ipv6.clone()])
                    .flatten()
                    .map(|a| a.split('/').next().unwrap_or(&a).to_string())
                    .collect();
                value["status"] = json!({
                    "phase": "Running",
                    "podIP": ips.first(),
                    "podIPs": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
                });
            }
            Err(e) => {
                let mut message = e.to_string();
                if let Some(auto) = workload.and_then(|w| autopool_errors.get(&uid_of(w))) {
                    message = format!("{message} (auto-pool: {auto})");
                }
                if str_at(&value, "/status/message") == Some(message.as_str()) {
                    continue;
                }
                value["status"] = json!({"phase": "Pending", "message": message});
            }
        }
        let mut updated = p.clone();
        updated.value = value;
        store.update(Object::Other(updated), rev).await?;
    }

    // 4. GC: whatever no live pod needs.
    let pods_now: Vec<PodInfo> = list_all(store, &["Pod"])
        .await?
        .into_iter()
        .filter_map(|(o, _)| match o {
            Object::Other(p) => Some(PodInfo {
                pod: PodRef::new(&ns_of(&p), &p.name, &uid_of(&p)),
                ..workload::pod_info(&p.value)
            }),
            _ => None,
        })
        .collect();
    // Only what the emulation allocated: the CNI plugin's attachments on the same store
    // belong to real containers the emulation knows nothing about (and their stray records
    // are left to the plugin's own retries and GC).
    let endpoints: Vec<SpiderEndpoint> = store
        .list(SpiderEndpoint::KIND)
        .await?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::Endpoint(e) => Some(e),
            _ => None,
        })
        .filter(|e| {
            e.metadata
                .annotations
                .get(spiderpool_core::annotations::ANNO_ENDPOINT_NETWORK)
                .map(String::as_str)
                == Some(EMULATION_NETWORK)
        })
        .collect();
    let pools_now: Vec<SpiderIPPool> = Vec::new();
    let owner_of = |ep: &SpiderEndpoint| {
        workloads
            .iter()
            .find(|w| {
                w.name == ep.status.owner_controller_name
                    && w.kind == ep.status.owner_controller_type
                    && Some(ns_of(w)) == ep.metadata.namespace
            })
            .map(|w| owner_of_workload(w, node_names.len(), true))
    };
    let now = jiff::Timestamp::now();
    for d in gc_decisions(&pods_now, &pools_now, &endpoints, &owner_of, now, 0) {
        if !matches!(
            ipam.release(&d.release).await?,
            spiderpool_core::allocate::Outcome::Unchanged
        ) {
            changed = true;
        }
    }
    Ok(changed)
}

/// Deletes a pod: its addresses are released as a CNI DEL for a pod that is gone would (a
/// StatefulSet pod still wanted keeps them).
pub async fn delete_pod<S: Store>(
    store: &S,
    pod: &OtherObject,
    rev: &Revision,
    owner: Option<Owner>,
    settings: &Settings,
) -> Result<(), Error> {
    store
        .delete(&Key::namespaced("Pod", &ns_of(pod), &pod.name), rev)
        .await?;
    let req = ReleaseRequest {
        pod: PodRef::new(&ns_of(pod), &pod.name, &uid_of(pod)),
        ifname: "eth0".into(),
        owner,
        pod_alive: false,
    };
    Ipam::new(store)
        .with_config(settings.ipam.clone())
        .release(&req)
        .await?;
    Ok(())
}

async fn typed_pools<S: Store>(store: &S) -> Result<Vec<(SpiderIPPool, Revision)>, Error> {
    Ok(store
        .list(SpiderIPPool::KIND)
        .await?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::IpPool(p) => Some((p, s.revision)),
            _ => None,
        })
        .collect())
}

async fn typed_subnets<S: Store>(store: &S) -> Result<Vec<(SpiderSubnet, Revision)>, Error> {
    Ok(store
        .list(SpiderSubnet::KIND)
        .await?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::Subnet(x) => Some((x, s.revision)),
            _ => None,
        })
        .collect())
}

/// The workload kinds present in the store (the built-in ones and any other applied kind).
async fn store_kinds<S: Store>(store: &S) -> Result<BTreeSet<String>, Error> {
    let mut kinds: BTreeSet<String> = BUILTIN_WORKLOADS
        .iter()
        .map(|(_, k)| k.to_string())
        .collect();
    for s in store.list(KINDS_INDEX).await? {
        if let Object::Other(o) = s.object {
            kinds.insert(o.name);
        }
    }
    Ok(kinds)
}

/// An index object per applied third-party kind, so that the controllers find them.
pub const KINDS_INDEX: &str = "spiderpool-rs.io/WorkloadKind";

/// The index entry for kind `kind`.
pub fn kind_index_entry(kind: &str) -> Object {
    Object::Other(OtherObject {
        api_version: "spiderpool-rs.io/v1".into(),
        kind: KINDS_INDEX.into(),
        name: kind.into(),
        namespace: None,
        value: json!({"apiVersion": "spiderpool-rs.io/v1", "kind": KINDS_INDEX, "metadata": {"name": kind}}),
    })
}

/// The write that records third-party kind `kind` in the index, if it is not there.
pub async fn index_kind<S: Store>(store: &S, kind: &str) -> Result<Option<Write>, Error> {
    if BUILTIN_WORKLOADS.iter().any(|(_, k)| *k == kind) {
        return Ok(None);
    }
    Ok(match store.get(&Key::cluster(KINDS_INDEX, kind)).await? {
        Some(_) => None,
        None => Some(Write::Create(kind_index_entry(kind))),
    })
}
