//! Allocating many pods in one commit: each pod is planned by the core exactly as one CNI ADD
//! would be ([`plan_allocate`]), on the state the pods before it left, and the plans' writes
//! are merged (one write per object: the pool once, with the revision it was read at) and
//! committed together with the pods' own writes. One read of the pools and one
//! compare-and-swap commit then serve a whole batch instead of a snapshot and a commit per pod.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use spiderpool_core::allocate::{
    endpoint_name, plan_allocate, plan_cleanup_after_failure, Outcome, Snapshot,
};
use spiderpool_core::model::{Object, OtherObject, SpiderEndpoint, SpiderIPPool, SpiderReservedIP};
use spiderpool_core::request::{AllocateRequest, IpamConfig};
use spiderpool_core::store::{Key, Revision, Write};

/// The revision given to objects a batch creates, so that later plans in the same batch can
/// update them (the merged write stays a create).
const CREATED: &str = "~created-in-batch";

/// One pod to allocate: its object as it is (or will be created), and its request.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The pod.
    pub pod: OtherObject,
    /// Its revision; `None` for a pod the batch creates.
    pub revision: Option<Revision>,
    /// What the CNI plugin would ask for.
    pub req: AllocateRequest,
    /// Why the pod's auto-pool could not be made, added to an allocation error.
    pub autopool_error: Option<String>,
}

/// Endpoints by (namespace, name), with their revisions.
pub(crate) type Endpoints = BTreeMap<(String, String), (SpiderEndpoint, Revision)>;

/// Writes, at most one per key, in the order each key was first written.
#[derive(Default)]
struct Merged {
    writes: Vec<Option<Write>>,
    index: HashMap<Key, usize>,
}

impl Merged {
    fn push(&mut self, w: Write) {
        let key = w.key();
        let Some(&i) = self.index.get(&key) else {
            self.index.insert(key, self.writes.len());
            self.writes.push(Some(w));
            return;
        };
        let merged = match (self.writes[i].take(), w) {
            (None, w) => Some(w),
            (Some(Write::Create(_)), Write::Update { object, .. }) => Some(Write::Create(object)),
            (Some(Write::Create(_)), Write::Delete { .. }) => None,
            (Some(Write::Update { expected, .. }), Write::Update { object, .. }) => {
                Some(Write::Update { object, expected })
            }
            (Some(Write::Update { expected, .. }), Write::Delete { key, .. })
            | (Some(Write::Delete { expected, .. }), Write::Delete { key, .. }) => {
                Some(Write::Delete { key, expected })
            }
            (Some(Write::Delete { expected, .. }), Write::Create(object))
            | (Some(Write::Delete { expected, .. }), Write::Update { object, .. }) => {
                Some(Write::Update { object, expected })
            }
            (Some(_), w) => Some(w),
        };
        self.writes[i] = merged;
    }

    fn into_writes(self) -> Vec<Write> {
        self.writes.into_iter().flatten().collect()
    }
}

/// Plans every job of `jobs` on `pools`, `reserved` and `endpoints` (as read from the store),
/// each on the state the previous ones left. Returns the merged writes: pools, endpoints, then
/// the pods (created, or updated with their new status). A pod whose allocation fails gets
/// `Pending` with the error as its message (no write if that is already its status).
pub(crate) fn plan(
    jobs: &[Job],
    mut pools: Vec<(SpiderIPPool, Revision)>,
    reserved: &[SpiderReservedIP],
    endpoints: &Endpoints,
    cfg: &IpamConfig,
) -> Vec<Write> {
    let mut merged = Merged::default();
    // Endpoints the batch wrote: Some(new state) or None (deleted).
    let mut touched: BTreeMap<(String, String), Option<(SpiderEndpoint, Revision)>> =
        BTreeMap::new();
    let mut pod_writes = Vec::new();
    for job in jobs {
        let ns = job.req.pod.namespace.clone();
        let ep = endpoint_name(&job.req.pod.name, job.req.owner.as_ref(), cfg);
        let slot = (ns, ep);
        // A fresh snapshot per pod (the core may index its pools on first use).
        let mut snap = Snapshot::default();
        snap.pools = std::mem::take(&mut pools);
        snap.reserved = reserved.to_vec();
        snap.endpoint = match touched.get(&slot) {
            Some(state) => state.clone(),
            None => endpoints.get(&slot).cloned(),
        };
        let result = match plan_allocate(&job.req, &snap, cfg) {
            Ok(p) => match p.outcome {
                Outcome::Allocated(ips) => {
                    absorb(&mut snap, &mut touched, &slot, &mut merged, p.writes);
                    Ok(ips)
                }
                other => Err(spiderpool_core::Error::Unsupported {
                    what: format!("allocation planned {other:?}"),
                }),
            },
            Err(e) => {
                // As the driver does: free what an older pod of the same name left.
                if let Ok(cleanup) = plan_cleanup_after_failure(&job.req, &snap, cfg) {
                    absorb(&mut snap, &mut touched, &slot, &mut merged, cleanup.writes);
                }
                Err(e)
            }
        };
        pools = snap.pools;
        let mut value = job.pod.value.clone();
        match result {
            Ok(nics) => value["status"] = super::running_status(&nics),
            Err(e) => {
                let mut message = e.to_string();
                if let Some(auto) = &job.autopool_error {
                    message = format!("{message} (auto-pool: {auto})");
                }
                if job.revision.is_some()
                    && value.pointer("/status/message").and_then(Value::as_str)
                        == Some(message.as_str())
                {
                    continue;
                }
                value["status"] = json!({"phase": "Pending", "message": message});
            }
        }
        let mut pod = job.pod.clone();
        pod.value = value;
        pod_writes.push(match &job.revision {
            None => Write::Create(Object::Other(pod)),
            Some(rev) => Write::Update {
                object: Object::Other(pod),
                expected: rev.clone(),
            },
        });
    }
    let mut writes = merged.into_writes();
    writes.extend(pod_writes);
    writes
}

/// Takes a plan's writes into the batch: the snapshot sees them, the merged writes keep them.
fn absorb(
    snap: &mut Snapshot,
    touched: &mut BTreeMap<(String, String), Option<(SpiderEndpoint, Revision)>>,
    slot: &(String, String),
    merged: &mut Merged,
    writes: Vec<Write>,
) {
    for w in writes {
        match &w {
            Write::Create(Object::IpPool(p)) => {
                snap.pools.push((p.clone(), Revision(CREATED.into())));
            }
            Write::Update {
                object: Object::IpPool(p),
                ..
            } => {
                if let Some(s) = snap
                    .pools
                    .iter_mut()
                    .find(|(old, _)| old.metadata.name == p.metadata.name)
                {
                    s.0 = p.clone();
                }
            }
            Write::Delete { key, .. } if key.kind == SpiderIPPool::KIND => {
                snap.pools.retain(|(p, _)| p.metadata.name != key.name);
            }
            Write::Create(Object::Endpoint(e)) => {
                let state = Some((e.clone(), Revision(CREATED.into())));
                snap.endpoint.clone_from(&state);
                touched.insert(slot.clone(), state);
            }
            Write::Update {
                object: Object::Endpoint(e),
                expected,
            } => {
                let state = Some((e.clone(), expected.clone()));
                snap.endpoint.clone_from(&state);
                touched.insert(slot.clone(), state);
            }
            Write::Delete { key, .. } if key.kind == SpiderEndpoint::KIND => {
                snap.endpoint = None;
                touched.insert(slot.clone(), None);
            }
            _ => {}
        }
        merged.push(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> OtherObject {
        OtherObject {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: name.into(),
            namespace: Some("default".into()),
            value: json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")}, "status": {"phase": "Pending"}}),
        }
    }

    fn job(name: &str) -> Job {
        Job {
            pod: pod(name),
            revision: None,
            req: AllocateRequest {
                pod: spiderpool_core::request::PodRef::new("default", name, &format!("uid-{name}")),
                ifname: "eth0".into(),
                ..AllocateRequest::default()
            },
            autopool_error: None,
        }
    }

    #[test]
    fn a_batch_writes_the_pool_once_and_gives_distinct_addresses() {
        let spec = spiderpool_core::model::IPPoolSpec {
            subnet: "10.0.0.0/24".into(),
            ips: vec!["10.0.0.1-10.0.0.3".into()],
            default: Some(true),
            ..Default::default()
        };
        let pool = SpiderIPPool::new("p", spec);
        let jobs: Vec<Job> = ["a", "b", "c", "d"].iter().map(|n| job(n)).collect();
        let writes = plan(
            &jobs,
            vec![(pool, Revision("7".into()))],
            &[],
            &Endpoints::new(),
            &IpamConfig::default(),
        );
        let pools: Vec<&Write> = writes
            .iter()
            .filter(|w| w.key().kind == SpiderIPPool::KIND)
            .collect();
        assert_eq!(pools.len(), 1);
        let Write::Update {
            object: Object::IpPool(p),
            expected,
        } = pools[0]
        else {
            panic!("{:?}", pools[0]);
        };
        assert_eq!(expected, &Revision("7".into()));
        assert_eq!(p.allocations().unwrap().len(), 3);
        let mut ips = Vec::new();
        let mut pending = 0;
        for w in &writes {
            if let Write::Create(Object::Other(o)) = w {
                match o.value["status"]["podIP"].as_str() {
                    Some(ip) => ips.push(ip.to_string()),
                    None => pending += 1,
                }
            }
        }
        ips.sort();
        ips.dedup();
        assert_eq!((ips.len(), pending), (3, 1));
    }
}
