//! Workloads and pods as Kubernetes serves them (JSON), seen the way the engine needs them:
//! the [`Application`] auto-pools follow, the [`Owner`] that decides whether a stateful pod
//! keeps its addresses, and the [`PodInfo`] garbage collection judges.
//!
//! The same functions serve the Kubernetes controller (objects from the API server), the CNI
//! plugin's Kubernetes mode and `spiderpoolctl`'s workload emulation, so that all three size
//! pools and judge pods identically. Missing fields read as Kubernetes defaults them.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;

use crate::autopool::Application;
use crate::gc::{PodInfo, PodPhase};
use crate::request::{is_builtin_workload, Owner, PodRef};

/// The string at JSON pointer `path`.
pub fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    v.pointer(path).and_then(Value::as_str)
}

/// The string map at JSON pointer `path` (labels, annotations); non-string values are skipped.
pub fn map_at(v: &Value, path: &str) -> BTreeMap<String, String> {
    v.pointer(path)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.uid`, empty when absent.
pub fn uid(object: &Value) -> String {
    str_at(object, "/metadata/uid")
        .unwrap_or_default()
        .to_string()
}

/// `metadata.namespace`, `default` when absent.
pub fn namespace(object: &Value) -> String {
    str_at(object, "/metadata/namespace")
        .unwrap_or("default")
        .to_string()
}

/// `metadata.name`, empty when absent.
pub fn name(object: &Value) -> String {
    str_at(object, "/metadata/name")
        .unwrap_or_default()
        .to_string()
}

/// Where a workload of `kind` keeps its pod template.
pub fn pod_template_path(kind: &str) -> &'static str {
    if kind == "CronJob" {
        "/spec/jobTemplate/spec/template"
    } else {
        "/spec/template"
    }
}

/// A reference to an object's controller (`ownerReferences[]` with `controller: true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerRef {
    /// `apps/v1`, …
    pub api_version: String,
    /// `ReplicaSet`, …
    pub kind: String,
    /// Name (in the object's namespace).
    pub name: String,
    /// Uid.
    pub uid: String,
}

/// The controller of `object`, if it has one.
pub fn controller_ref(object: &Value) -> Option<ControllerRef> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| ControllerRef {
            api_version: str_at(r, "/apiVersion").unwrap_or_default().into(),
            kind: str_at(r, "/kind").unwrap_or_default().into(),
            name: str_at(r, "/name").unwrap_or_default().into(),
            uid: str_at(r, "/uid").unwrap_or_default().into(),
        })
}

/// Whether a workload is an application of its own: a ReplicaSet run by a Deployment and a
/// Job run by a CronJob are not (their parent is the application), as in Spiderpool.
pub fn is_top_level(workload: &Value) -> bool {
    match controller_ref(workload) {
        Some(parent) => !matches!(
            (parent.api_version.as_str(), parent.kind.as_str()),
            ("apps/v1", "Deployment") | ("batch/v1", "CronJob")
        ),
        None => true,
    }
}

/// How many pods a built-in workload wants, as Spiderpool counts them for auto-pools:
/// `spec.replicas` (absent: 1), a DaemonSet's `status.desiredNumberScheduled` (absent:
/// `nodes`), a Job's completions or else parallelism (at least 1), a CronJob 1.
pub fn replicas(workload: &Value, kind: &str, nodes: usize) -> u64 {
    let int = |p: &str| workload.pointer(p).and_then(Value::as_u64);
    match kind {
        "DaemonSet" => int("/status/desiredNumberScheduled").unwrap_or(nodes as u64),
        "Job" => match (int("/spec/parallelism"), int("/spec/completions")) {
            (_, Some(c)) => c.max(1),
            (Some(p), None) => p.max(1),
            (None, None) => 1,
        },
        "CronJob" => 1,
        _ => int("/spec/replicas").unwrap_or(1),
    }
}

fn api_version_kind(object: &Value) -> (String, String) {
    (
        str_at(object, "/apiVersion").unwrap_or_default().into(),
        str_at(object, "/kind").unwrap_or_default().into(),
    )
}

/// The application view of a workload: its pod-template annotations, and its replicas when
/// the kind is built in (`None` for third-party kinds, whose pools have a fixed size).
pub fn application(workload: &Value, nodes: usize) -> Application {
    let (api_version, kind) = api_version_kind(workload);
    let builtin = is_builtin_workload(&api_version, &kind);
    Application {
        replicas: builtin.then(|| replicas(workload, &kind, nodes)),
        annotations: map_at(
            workload,
            &format!("{}/metadata/annotations", pod_template_path(&kind)),
        ),
        namespace: namespace(workload),
        name: name(workload),
        uid: uid(workload),
        api_version,
        kind,
    }
}

/// The application of a pod whose controller is a third-party kind (not built in, not
/// KubeVirt): Spiderpool knows nothing of its replicas, so the pod's own annotations say how
/// big its pool is.
pub fn third_party_application(pod: &Value) -> Option<Application> {
    let owner = controller_ref(pod)?;
    if is_builtin_workload(&owner.api_version, &owner.kind)
        || owner.api_version.starts_with("kubevirt.io/")
        || owner.api_version == "v1"
    {
        return None;
    }
    Some(Application {
        api_version: owner.api_version,
        kind: owner.kind,
        namespace: namespace(pod),
        name: owner.name,
        uid: owner.uid,
        replicas: None,
        annotations: map_at(pod, "/metadata/annotations"),
    })
}

/// A workload as the owner of a pod. `exists` is false for a workload being deleted.
pub fn owner(workload: &Value, nodes: usize) -> Owner {
    let (api_version, kind) = api_version_kind(workload);
    Owner {
        replicas: Some(replicas(workload, &kind, nodes) as i64),
        ordinals_start: workload
            .pointer("/spec/ordinals/start")
            .and_then(Value::as_i64),
        exists: workload.pointer("/metadata/deletionTimestamp").is_none(),
        name: name(workload),
        uid: uid(workload),
        api_version,
        kind,
    }
}

/// A pod's identity.
pub fn pod_ref(pod: &Value) -> PodRef {
    PodRef::new(&namespace(pod), &name(pod), &uid(pod))
}

/// What garbage collection needs to know of a pod.
pub fn pod_info(pod: &Value) -> PodInfo {
    PodInfo {
        pod: pod_ref(pod),
        phase: match str_at(pod, "/status/phase") {
            Some("Succeeded") => PodPhase::Succeeded,
            Some("Failed") => PodPhase::Failed,
            Some("Running") => PodPhase::Running,
            _ => PodPhase::Pending,
        },
        deletion_timestamp: str_at(pod, "/metadata/deletionTimestamp")
            .and_then(|t| t.parse::<Timestamp>().ok()),
        deletion_grace_period_seconds: pod
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64),
    }
}

/// Whether the pod uses the host's network (Spiderpool leaves such pods alone).
pub fn is_host_network(pod_or_template_spec: &Value) -> bool {
    pod_or_template_spec
        .pointer("/spec/hostNetwork")
        .and_then(Value::as_bool)
        == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replicas_follow_spiderpool_counting() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 3}});
        assert_eq!(replicas(&d, "Deployment", 5), 3);
        assert_eq!(replicas(&json!({}), "Deployment", 5), 1);
        let ds = json!({"status": {"desiredNumberScheduled": 7}});
        assert_eq!(replicas(&ds, "DaemonSet", 2), 7);
        assert_eq!(replicas(&json!({}), "DaemonSet", 2), 2);
        assert_eq!(
            replicas(&json!({"spec": {"parallelism": 0}}), "Job", 1),
            1,
            "zero parallelism counts as one"
        );
        assert_eq!(
            replicas(
                &json!({"spec": {"parallelism": 4, "completions": 2}}),
                "Job",
                1
            ),
            2
        );
        assert_eq!(replicas(&json!({"spec": {"replicas": 9}}), "CronJob", 1), 1);
    }

    #[test]
    fn application_reads_the_template_and_top_level() {
        let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "ops", "uid": "u1"},
            "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"annotations": {"a": "b"}}}}}}});
        let app = application(&cj, 1);
        assert_eq!(app.replicas, Some(1));
        assert_eq!(app.annotations.get("a").map(String::as_str), Some("b"));
        assert_eq!((app.namespace.as_str(), app.uid.as_str()), ("ops", "u1"));
        let rs = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d", "controller": true}]}});
        assert!(!is_top_level(&rs));
        assert!(is_top_level(&json!({"metadata": {}})));
    }

    #[test]
    fn third_party_owner_is_an_application_without_replicas() {
        let pod = json!({"metadata": {"namespace": "x", "annotations": {"k": "v"}, "ownerReferences": [
            {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "name": "c", "uid": "u", "controller": true}]}});
        let app = third_party_application(&pod).expect("a CloneSet is third-party");
        assert_eq!((app.kind.as_str(), app.replicas), ("CloneSet", None));
        let rs_pod = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true}]}});
        assert_eq!(third_party_application(&rs_pod), None);
    }

    #[test]
    fn pod_info_reads_phase_and_deletion() {
        let p = json!({"metadata": {"name": "p", "uid": "u", "deletionTimestamp": "2026-01-01T00:00:00Z",
            "deletionGracePeriodSeconds": 30}, "status": {"phase": "Succeeded"}});
        let info = pod_info(&p);
        assert_eq!(info.phase, PodPhase::Succeeded);
        assert_eq!(info.pod.namespace, "default");
        assert_eq!(info.deletion_grace_period_seconds, Some(30));
        assert!(info.deletion_timestamp.is_some());
        let owner_gone = owner(
            &json!({"kind": "StatefulSet", "metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
            1,
        );
        assert!(!owner_gone.exists);
    }
}
