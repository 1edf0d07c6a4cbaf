//! Garbage collection: which addresses to free, given the pods that exist.
//!
//! [`gc_decisions`] looks at every SpiderEndpoint and every pool record and returns the
//! releases to make, each a [`ReleaseRequest`] that [`crate::ipam::Ipam::release`] carries
//! out (with its usual uid checks, so a decision made on stale data frees nothing it should
//! not). Freed: the addresses of pods that are gone, of stateless pods replaced by a new uid,
//! of pods that finished (succeeded, failed, evicted), of pods terminating past their grace
//! period, and of stateful pods whose ordinal is beyond the replicas or whose owner is gone.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use crate::model::{SpiderEndpoint, SpiderIPPool};
use crate::request::{Owner, PodRef, ReleaseRequest};

/// A pod's lifecycle phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    /// Not running yet.
    Pending,
    /// Running.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error (or evicted).
    Failed,
}

/// What GC needs to know of a pod that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// Identity.
    pub pod: PodRef,
    /// Phase.
    pub phase: PodPhase,
    /// Deletion requested at.
    pub deletion_timestamp: Option<Timestamp>,
    /// Grace period of the deletion, seconds.
    pub deletion_grace_period_seconds: Option<i64>,
}

/// One release decided by GC, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcDecision {
    /// What to release.
    pub release: ReleaseRequest,
    /// Why, for logs and `describe`.
    pub reason: String,
}

/// Decides what to free. `owner_of` gives the current state of a stateful endpoint's owner
/// (a StatefulSet's replicas, whether a VM exists), `None` when the owner is gone. `now` and
/// `extra_grace_seconds` (Spiderpool's `SPIDERPOOL_GC_ADDITIONAL_GRACE_DELAY`) judge
/// terminating pods.
pub fn gc_decisions(
    pods: &[PodInfo],
    pools: &[SpiderIPPool],
    endpoints: &[SpiderEndpoint],
    owner_of: &dyn Fn(&SpiderEndpoint) -> Option<Owner>,
    now: Timestamp,
    extra_grace_seconds: i64,
) -> Vec<GcDecision> {
    let by_name: BTreeMap<(String, String), &PodInfo> = pods
        .iter()
        .map(|p| ((p.pod.namespace.clone(), p.pod.name.clone()), p))
        .collect();
    let mut out = Vec::new();
    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
    for ep in endpoints {
        let ns = ep.metadata.namespace.clone().unwrap_or_default();
        let name = ep.metadata.name.clone();
        covered.insert((format!("{ns}/{name}"), ep.status.current.uid.clone()));
        let release = |reason: String, owner: Option<Owner>| GcDecision {
            release: ReleaseRequest {
                pod: PodRef::new(&ns, &name, &ep.status.current.uid),
                ifname: String::new(),
                owner,
                pod_alive: false,
            },
            reason,
        };
        let stateful = matches!(
            ep.status.owner_controller_type.as_str(),
            "StatefulSet" | "KubevirtVMI"
        );
        if stateful {
            let owner = owner_of(ep).unwrap_or_else(|| gone_owner(ep));
            if !owner.keeps_stateful_pod(&name) {
                let why = if owner.exists {
                    format!(
                        "{ns}/{name} is beyond the {} replicas of {} {}",
                        owner.replicas.unwrap_or(0),
                        owner.kind,
                        owner.name
                    )
                } else {
                    format!(
                        "the owner {} {} of {ns}/{name} is gone",
                        owner.kind, owner.name
                    )
                };
                out.push(release(why, Some(owner)));
            }
            continue;
        }
        match by_name.get(&(ns.clone(), name.clone())) {
            None => out.push(release(format!("pod {ns}/{name} is gone"), None)),
            Some(p) if p.pod.uid != ep.status.current.uid => out.push(release(
                format!(
                    "pod {ns}/{name} was re-created (uid {} replaced {})",
                    p.pod.uid, ep.status.current.uid
                ),
                None,
            )),
            Some(p) => {
                if let Some(why) = finished(p, now, extra_grace_seconds) {
                    out.push(release(why, None));
                }
            }
        }
    }
    // Records no endpoint explains (an interrupted allocation): freed once their pod is gone.
    let mut strays: BTreeSet<(String, String)> = BTreeSet::new();
    for pool in pools {
        let Ok(records) = pool.allocations() else {
            continue;
        };
        for r in records.values() {
            if !covered.contains(&(r.pod.clone(), r.pod_uid.clone())) {
                strays.insert((r.pod.clone(), r.pod_uid.clone()));
            }
        }
    }
    for (pod, uid) in strays {
        let Some((ns, name)) = pod.split_once('/') else {
            continue;
        };
        let alive = by_name
            .get(&(ns.to_string(), name.to_string()))
            .is_some_and(|p| p.pod.uid == uid && finished(p, now, extra_grace_seconds).is_none());
        if !alive {
            out.push(GcDecision {
                release: ReleaseRequest {
                    pod: PodRef::new(ns, name, &uid),
                    ifname: String::new(),
                    owner: None,
                    pod_alive: false,
                },
                reason: format!("record of {pod} (uid {uid}) has no endpoint and no live pod"),
            });
        }
    }
    out
}

/// Why a pod that exists no longer needs its addresses, if it does not.
fn finished(p: &PodInfo, now: Timestamp, extra_grace_seconds: i64) -> Option<String> {
    let id = format!("{}/{}", p.pod.namespace, p.pod.name);
    match p.phase {
        PodPhase::Succeeded => return Some(format!("pod {id} succeeded")),
        PodPhase::Failed => return Some(format!("pod {id} failed")),
        PodPhase::Pending | PodPhase::Running => {}
    }
    let deleted = p.deletion_timestamp?;
    let grace = p
        .deletion_grace_period_seconds
        .unwrap_or(0)
        .saturating_add(extra_grace_seconds);
    let deadline = deleted
        .checked_add(jiff::SignedDuration::from_secs(grace))
        .ok()?;
    (now > deadline).then(|| format!("pod {id} is terminating past its {grace} s grace period"))
}

/// An owner that no longer exists, as the endpoint names it.
fn gone_owner(ep: &SpiderEndpoint) -> Owner {
    let (api_version, kind) = match ep.status.owner_controller_type.as_str() {
        "KubevirtVMI" => ("kubevirt.io/v1", "VirtualMachineInstance"),
        _ => ("apps/v1", "StatefulSet"),
    };
    Owner {
        api_version: api_version.into(),
        kind: kind.into(),
        name: ep.status.owner_controller_name.clone(),
        exists: false,
        ..Owner::default()
    }
}
