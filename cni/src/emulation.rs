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

mod batch;

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

/// How [`reconcile_with`] runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only these workloads (their keys): their pods, their auto-pools and the allocation of
    /// their pods. `None` runs every controller on everything: orphans, gone nodes, auto-pool
    /// reclaim and GC included. A command that only applied workloads reconciles just those,
    /// so that concurrent appliers each handle theirs instead of all racing for everything.
    pub scope: Option<BTreeSet<Key>>,
    /// At most this many pods allocated in one commit, on stores that commit atomically (a
    /// pod costs about three etcd transaction operations, and etcd allows 128 by default).
    pub batch: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scope: None,
            batch: 32,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Nothing left to do.
    Done,
    /// Changed something another pass must look at.
    Changed,
    /// Left some of a large workload's pods for the next pass (not counted as a round).
    More,
}

/// Rounds of the controllers that change something before reconcile stops.
const ROUNDS: usize = 4;
/// Passes started again from a fresh read after a conflict with a concurrent writer.
const CONFLICT_RETRIES: u32 = 64;

/// Runs the controllers until nothing changes (bounded). `uid` makes uids and name suffixes.
pub async fn reconcile<S: Store>(store: &S, uid: &mut dyn FnMut() -> String) -> Result<(), Error> {
    reconcile_with(store, uid, &Options::default()).await
}

/// [`reconcile`] with options: a scope and a batch size.
pub async fn reconcile_with<S: Store>(
    store: &S,
    uid: &mut dyn FnMut() -> String,
    opts: &Options,
) -> Result<(), Error> {
    let mut rounds = 0;
    let mut conflicts = 0;
    let mut more = 0;
    while rounds < ROUNDS && more < 1024 {
        match pass(store, uid, opts).await {
            Ok(Progress::Done) => return Ok(()),
            Ok(Progress::Changed) => rounds += 1,
            Ok(Progress::More) => more += 1,
            // Another process wrote meanwhile: start again from a fresh read.
            Err(Error::Ipam(e))
                if spiderpool_core::ipam::is_retryable(&e) && conflicts < CONFLICT_RETRIES =>
            {
                conflicts += 1;
                backoff(uid, conflicts).await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A short jittered pause before retry `attempt` (the jitter from a fresh uid, so that
/// concurrent processes spread out).
async fn backoff(uid: &mut dyn FnMut() -> String, attempt: u32) {
    let jitter = uid()
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let cap = 500u64 << attempt.min(4);
    tokio::time::sleep(std::time::Duration::from_micros(jitter % cap)).await;
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

async fn list_others<S: Store>(
    store: &S,
    kind: &str,
) -> Result<Vec<(OtherObject, Revision)>, Error> {
    Ok(list_all(store, &[kind])
        .await?
        .into_iter()
        .filter_map(|(o, r)| match o {
            Object::Other(x) => Some((x, r)),
            _ => None,
        })
        .collect())
}

fn owner_uid(p: &OtherObject) -> Option<String> {
    str_at(&p.value, "/metadata/ownerReferences/0/uid").map(str::to_string)
}

/// What the controllers read at the start of a pass.
struct World {
    settings: Settings,
    nodes: Vec<OtherObject>,
    node_names: Vec<String>,
    namespaces: Vec<OtherObject>,
    /// The workloads in scope (all of them without a scope), with their revisions.
    workloads: Vec<(OtherObject, Revision)>,
    /// The pods of those workloads (every pod without a scope).
    pods: Vec<(OtherObject, Revision)>,
}

async fn read_world<S: Store>(store: &S, scope: Option<&BTreeSet<Key>>) -> Result<World, Error> {
    let settings = settings(
        &list_others(store, "ConfigMap")
            .await?
            .into_iter()
            .map(|(o, _)| o)
            .collect::<Vec<_>>(),
    )?;
    let nodes: Vec<OtherObject> = list_others(store, "Node")
        .await?
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    let node_names: Vec<String> = if nodes.is_empty() {
        vec!["node1".into()]
    } else {
        nodes.iter().map(|n| n.name.clone()).collect()
    };
    let namespaces: Vec<OtherObject> = list_others(store, "Namespace")
        .await?
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    let kinds: BTreeSet<String> = match scope {
        Some(keys) => keys.iter().map(|k| k.kind.clone()).collect(),
        None => store_kinds(store).await?,
    };
    let mut workloads = Vec::new();
    for k in &kinds {
        for (x, rev) in list_others(store, k).await? {
            let wanted = match scope {
                Some(keys) => keys.contains(&Key::of(&Object::Other(x.clone()))),
                None => true,
            };
            if wanted && is_workload(&x) {
                workloads.push((x, rev));
            }
        }
    }
    let uids: BTreeSet<String> = workloads.iter().map(|(w, _)| uid_of(w)).collect();
    let pods = list_others(store, "Pod")
        .await?
        .into_iter()
        .filter(|(p, _)| scope.is_none() || owner_uid(p).is_some_and(|u| uids.contains(&u)))
        .collect();
    Ok(World {
        settings,
        nodes,
        node_names,
        namespaces,
        workloads,
        pods,
    })
}

/// A pod to delete, with the owner that decides whether it keeps its addresses.
type Doomed<'a> = (&'a OtherObject, &'a Revision, Option<Owner>);

/// The pods workload `w` is missing (name, node) and those it has too many of.
fn pods_wanted<'a>(
    w: &OtherObject,
    world: &'a World,
    uid: &mut dyn FnMut() -> String,
    round_robin: &mut usize,
    create: &mut Vec<(String, String)>,
    delete: &mut Vec<Doomed<'a>>,
) {
    let node_names = &world.node_names;
    let wuid = uid_of(w);
    let mine: Vec<&(OtherObject, Revision)> = world
        .pods
        .iter()
        .filter(|(p, _)| owner_uid(p).as_deref() == Some(wuid.as_str()))
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
                create.push((name.clone(), node.clone()));
            }
        }
        for (p, rev) in &mine {
            if !wanted.contains(&p.name) {
                delete.push((p, rev, Some(owner_of_workload(w, node_names.len(), true))));
            }
        }
    } else if w.kind == "DaemonSet" {
        for node in node_names {
            let name = format!("{}-{node}", w.name);
            if !mine.iter().any(|(p, _)| p.name == name) {
                create.push((name, node.clone()));
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
            let node = &node_names[*round_robin % node_names.len()];
            *round_robin += 1;
            create.push((format!("{}-{suffix}", w.name), node.clone()));
        }
        for (p, rev) in mine.iter().skip(want) {
            delete.push((p, rev, None));
        }
    }
}

/// One round of every controller (of the workloads in scope).
async fn pass<S: Store>(
    store: &S,
    uid: &mut dyn FnMut() -> String,
    opts: &Options,
) -> Result<Progress, Error> {
    let scope = opts.scope.as_ref();
    let world = read_world(store, scope).await?;
    let settings = &world.settings;
    let node_names = &world.node_names;
    let workloads: Vec<&OtherObject> = world.workloads.iter().map(|(w, _)| w).collect();

    // 1. Pods of workloads: the missing ones (created below, with their addresses), the extra
    // and the orphaned deleted.
    let mut round_robin = 0usize;
    let mut new_pods: Vec<(usize, String, String)> = Vec::new();
    let mut doomed: Vec<Doomed<'_>> = Vec::new();
    for (i, w) in workloads.iter().enumerate() {
        let mut create = Vec::new();
        pods_wanted(w, &world, uid, &mut round_robin, &mut create, &mut doomed);
        new_pods.extend(create.into_iter().map(|(name, node)| (i, name, node)));
    }
    if scope.is_none() {
        for (p, rev) in &world.pods {
            let orphaned =
                owner_uid(p).is_some_and(|owner| !workloads.iter().any(|w| uid_of(w) == owner));
            // A node that is gone takes its pods with it (their addresses are freed).
            let node_gone = !world.nodes.is_empty()
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
                doomed.push((p, rev, owner));
            }
        }
    }
    if !doomed.is_empty() {
        for (p, rev, owner) in doomed {
            delete_pod(store, p, rev, owner, settings).await?;
        }
        return Ok(Progress::Changed);
    }

    // 2. Auto-pools follow the applications; reclaim those of deleted applications.
    let mut autopool_errors: BTreeMap<String, String> = BTreeMap::new();
    let mut reserved: Option<Vec<SpiderReservedIP>> = None;
    // Applications that ask for no auto-pool plan nothing even with nothing to look at: a
    // scoped pass of those reads no subnets.
    let wants_auto_pool = |w: &OtherObject| {
        !matches!(
            plan_auto_pools(&application(w, node_names.len()), &[], &[], &[], &settings.autopool),
            Ok(writes) if writes.is_empty()
        )
    };
    if settings.ipam.enable_spider_subnet
        && settings.ipam.enable_auto_pool
        && (scope.is_none() || workloads.iter().any(|w| wants_auto_pool(w)))
    {
        let subnets = typed_subnets(store).await?;
        let all_pools = typed_pools(store).await?;
        let all_reserved = typed_reserved(store).await?;
        for w in &workloads {
            let app = application(w, node_names.len());
            match plan_auto_pools(
                &app,
                &subnets,
                &all_pools,
                &all_reserved,
                &settings.autopool,
            ) {
                Ok(writes) if !writes.is_empty() => {
                    store.commit(writes).await?;
                    return Ok(Progress::Changed);
                }
                Ok(_) => {}
                Err(e) => {
                    autopool_errors.insert(uid_of(w), e.to_string());
                }
            }
        }
        if scope.is_none() {
            let live: BTreeSet<String> = workloads.iter().map(|w| uid_of(w)).collect();
            for gone in gone_applications(&all_pools, &live) {
                let writes = plan_reclaim(&gone, &subnets, &all_pools)?;
                if !writes.is_empty() {
                    store.commit(writes).await?;
                    return Ok(Progress::Changed);
                }
            }
        }
        reserved = Some(all_reserved);
    }

    // 3. New and pending pods are allocated as the CNI plugin would.
    let request = |p: &OtherObject| -> AllocateRequest {
        let ns = ns_of(p);
        let namespace = world.namespaces.iter().find(|n| n.name == ns);
        let node = str_at(&p.value, "/spec/nodeName")
            .unwrap_or("node1")
            .to_string();
        let workload = owner_uid(p).and_then(|u| workloads.iter().find(|w| uid_of(w) == u));
        AllocateRequest {
            pod: PodRef::new(&ns, &p.name, &uid_of(p)),
            container_id: format!("emulated-{}", uid_of(p)),
            ifname: "eth0".into(),
            node: node.clone(),
            node_labels: world
                .nodes
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
        }
    };
    let job = |p: &OtherObject, revision: Option<Revision>| batch::Job {
        req: request(p),
        autopool_error: owner_uid(p).and_then(|u| autopool_errors.get(&u).cloned()),
        pod: p.clone(),
        revision,
    };
    // Groups committed whole: the new pods of one workload (with its guard), or one pending pod.
    let mut groups: Vec<(Option<usize>, Vec<batch::Job>)> = Vec::new();
    for (p, rev) in &world.pods {
        if str_at(&p.value, "/status/phase") != Some("Running") {
            groups.push((None, vec![job(p, Some(rev.clone()))]));
        }
    }
    for (i, name, node) in &new_pods {
        let w = workloads[*i];
        let Object::Other(p) = new_pod(w, name, uid(), node) else {
            continue;
        };
        match groups.last_mut() {
            Some((Some(j), jobs)) if j == i => jobs.push(job(&p, None)),
            _ => groups.push((Some(*i), vec![job(&p, None)])),
        }
    }
    let mut progress = Progress::Done;
    if !groups.is_empty() {
        if store.is_atomic() {
            if allocate_batches(store, uid, opts, &world, groups, reserved).await? {
                progress = Progress::More;
            }
        } else {
            allocate_one_by_one(store, &world, groups).await?;
            return Ok(Progress::Changed);
        }
    }
    if scope.is_some() {
        return Ok(progress);
    }

    // 4. GC: whatever no live pod needs. Endpoints are read before pods: an endpoint that
    // exists before the pods are read belongs to a pod created before too, so a concurrent
    // reconcile's new allocation is never mistaken for a leftover.
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
    let pods_now: Vec<PodInfo> = list_others(store, "Pod")
        .await?
        .into_iter()
        .map(|(p, _)| PodInfo {
            pod: PodRef::new(&ns_of(&p), &p.name, &uid_of(&p)),
            ..workload::pod_info(&p.value)
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
    let ipam = Ipam::new(store).with_config(settings.ipam.clone());
    for d in gc_decisions(&pods_now, &pools_now, &endpoints, &owner_of, now, 0) {
        if !matches!(
            ipam.release(&d.release).await?,
            spiderpool_core::allocate::Outcome::Unchanged
        ) {
            progress = Progress::Changed;
        }
    }
    Ok(progress)
}

/// Allocates the groups' pods in batches of at most `opts.batch` pods, one commit each: one
/// read of the pools per batch, just before planning (and one of the reserved IPs, and of the
/// endpoints of pods that already exist, for all), the
/// core's plans chained in memory, one compare-and-swap commit. A conflict on a pool (another
/// process allocated meanwhile) re-reads the pools and plans the batch again; any other
/// conflict is returned, and the pass starts again from a fresh read. True if some new pods
/// of a workload larger than a batch were left for the next pass.
async fn allocate_batches<S: Store>(
    store: &S,
    uid: &mut dyn FnMut() -> String,
    opts: &Options,
    world: &World,
    groups: Vec<(Option<usize>, Vec<batch::Job>)>,
    reserved: Option<Vec<SpiderReservedIP>>,
) -> Result<bool, Error> {
    let limit = opts.batch.max(1);
    let mut more = false;
    // Batches of whole groups; a workload with more new pods than a batch is cut.
    let mut batches: Vec<(Vec<usize>, Vec<batch::Job>)> = Vec::new();
    for (guard, mut jobs) in groups {
        if jobs.len() > limit {
            jobs.truncate(limit);
            more = true;
        }
        match batches.last_mut() {
            Some((guards, b)) if b.len() + jobs.len() <= limit => {
                b.extend(jobs);
                guards.extend(guard);
            }
            _ => batches.push((guard.into_iter().collect(), jobs)),
        }
    }
    let reserved = match reserved {
        Some(r) => r,
        None => typed_reserved(store).await?,
    };
    // A new pod with a fresh random name has no endpoint (a stale one of the same name makes
    // the create conflict, and the next pass names the pods afresh); pods that wait for an
    // address, and pods whose names come back (a StatefulSet's keep their endpoint), may.
    let mut endpoints = batch::Endpoints::new();
    for (_, jobs) in &batches {
        for job in jobs {
            let ns = job.req.pod.namespace.clone();
            let name = spiderpool_core::allocate::endpoint_name(
                &job.req.pod.name,
                job.req.owner.as_ref(),
                &world.settings.ipam,
            );
            let fresh_name = job.revision.is_none()
                && name == job.req.pod.name
                && job
                    .req
                    .owner
                    .as_ref()
                    .is_some_and(|o| !matches!(o.kind.as_str(), "StatefulSet" | "DaemonSet"));
            if fresh_name {
                continue;
            }
            if let Some(s) = store.get(&Key::endpoint(&ns, &name)).await? {
                if let Object::Endpoint(e) = s.object {
                    endpoints.insert((ns, name), (e, s.revision));
                }
            }
        }
    }
    let mut pools: Option<Vec<(SpiderIPPool, Revision)>> = None;
    for (guards, jobs) in batches {
        let mut attempt = 0;
        loop {
            let current = match pools.take() {
                Some(p) => p,
                None => typed_pools(store).await?,
            };
            let revisions: Vec<(String, Revision)> = current
                .iter()
                .map(|(p, r)| (p.metadata.name.clone(), r.clone()))
                .collect();
            let mut writes =
                batch::plan(&jobs, current, &reserved, &endpoints, &world.settings.ipam);
            if writes.is_empty() {
                break;
            }
            // The workloads whose new pods these are: a concurrent reconcile of the same
            // workload conflicts here instead of creating pods twice.
            for &g in &guards {
                let (w, rev) = &world.workloads[g];
                if !matches!(w.kind.as_str(), "StatefulSet" | "DaemonSet") {
                    writes.push(Write::Update {
                        object: Object::Other(w.clone()),
                        expected: rev.clone(),
                    });
                }
            }
            match store.commit(writes).await {
                Ok(()) => break,
                Err(e) if spiderpool_core::ipam::is_retryable(&e) && attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    // Only a pool that moved is worth planning again here; anything else
                    // (a pod, an endpoint, a workload) needs a fresh read of everything.
                    let fresh = typed_pools(store).await?;
                    let moved = fresh.len() != revisions.len()
                        || fresh
                            .iter()
                            .zip(&revisions)
                            .any(|((p, r), (n, old))| &p.metadata.name != n || r != old);
                    if !moved {
                        return Err(e.into());
                    }
                    backoff(uid, attempt).await;
                    pools = Some(fresh);
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Later batches read the pools again: this commit changed them.
    }
    Ok(more)
}

/// Stores that cannot commit atomically: the pods are created first, then allocated one by
/// one through the driver (which cleans up after a partly applied plan), as before batching.
async fn allocate_one_by_one<S: Store>(
    store: &S,
    world: &World,
    groups: Vec<(Option<usize>, Vec<batch::Job>)>,
) -> Result<(), Error> {
    let ipam = Ipam::new(store).with_config(world.settings.ipam.clone());
    for (_, jobs) in groups {
        for job in jobs {
            let Some(rev) = &job.revision else {
                store.create(Object::Other(job.pod.clone())).await?;
                continue;
            };
            let mut value = job.pod.value.clone();
            match ipam.allocate(&job.req).await {
                Ok(nics) => value["status"] = running_status(&nics),
                Err(e) => {
                    let mut message = e.to_string();
                    if let Some(auto) = &job.autopool_error {
                        message = format!("{message} (auto-pool: {auto})");
                    }
                    if str_at(&value, "/status/message") == Some(message.as_str()) {
                        continue;
                    }
                    value["status"] = json!({"phase": "Pending", "message": message});
                }
            }
            let mut updated = job.pod.clone();
            updated.value = value;
            store.update(Object::Other(updated), rev).await?;
        }
    }
    Ok(())
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

async fn typed_reserved<S: Store>(store: &S) -> Result<Vec<SpiderReservedIP>, Error> {
    Ok(store
        .list(SpiderReservedIP::KIND)
        .await?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::ReservedIp(r) => Some(r),
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

/// The status of a pod the emulation allocated: Running, with its `eth0` addresses.
pub(crate) fn running_status(nics: &[spiderpool_core::model::IPAllocationDetail]) -> Value {
    let ips: Vec<String> = nics
        .iter()
        .filter(|d| d.nic == "eth0")
        .flat_map(|d| [d.ipv4.clone(), d.ipv6.clone()])
        .flatten()
        .map(|a| a.split('/').next().unwrap_or(&a).to_string())
        .collect();
    json!({
        "phase": "Running",
        "podIP": ips.first(),
        "podIPs": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
    })
}
