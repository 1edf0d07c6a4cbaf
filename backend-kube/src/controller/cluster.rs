//! Reading the cluster: the workloads, pods and nodes the controller judges, and the
//! settings ConfigMap. Objects are kept as JSON and read with [`spiderpool_core::workload`].

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use serde_json::Value;
use spiderpool_core::settings::{Settings, CONFIGMAP_NAME};
use spiderpool_core::Error;

/// The kinds the controller watches besides pods: `(group, version, kind, plural)`.
pub const WORKLOAD_KINDS: [(&str, &str, &str, &str); 8] = [
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "ReplicaSet", "replicasets"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("batch", "v1", "Job", "jobs"),
    ("batch", "v1", "CronJob", "cronjobs"),
    ("kubevirt.io", "v1", "VirtualMachine", "virtualmachines"),
    (
        "kubevirt.io",
        "v1",
        "VirtualMachineInstance",
        "virtualmachineinstances",
    ),
];

/// The API resource of `(group, version, kind, plural)`.
pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// What the controller knows of the cluster at one moment.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Every object of [`WORKLOAD_KINDS`], with `apiVersion` and `kind` set.
    pub workloads: Vec<Value>,
    /// Every pod.
    pub pods: Vec<Value>,
    /// How many nodes there are (a DaemonSet without status wants one pod per node).
    pub nodes: usize,
}

fn unavailable(what: &str, e: kube::Error) -> Error {
    Error::Unavailable {
        reason: format!("listing {what}: {e}"),
    }
}

/// Lists every object of a kind in all namespaces, with `apiVersion` and `kind` filled in (a
/// real API server leaves them out of list items). A kind the cluster does not serve (404:
/// KubeVirt not installed) lists as empty.
pub async fn list_kind(client: &Client, ar: &ApiResource) -> Result<Vec<Value>, Error> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
        Err(e) => return Err(unavailable(&ar.plural, e)),
    };
    list.items
        .into_iter()
        .map(|d| {
            let mut v = serde_json::to_value(&d).map_err(|e| Error::Storage {
                store: "kubernetes".into(),
                reason: format!("{}: {e}", ar.plural),
            })?;
            v["apiVersion"] = Value::String(ar.api_version.clone());
            v["kind"] = Value::String(ar.kind.clone());
            Ok(v)
        })
        .collect()
}

/// Every pod in the cluster.
pub async fn list_pods(client: &Client) -> Result<Vec<Value>, Error> {
    list_kind(client, &resource("", "v1", "Pod", "pods")).await
}

/// Every workload of [`WORKLOAD_KINDS`].
pub async fn list_workloads(client: &Client) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for (g, v, k, p) in WORKLOAD_KINDS {
        out.extend(list_kind(client, &resource(g, v, k, p)).await?);
    }
    Ok(out)
}

/// Reads workloads, pods and the node count.
pub async fn read(client: &Client) -> Result<ClusterView, Error> {
    let nodes = list_kind(client, &resource("", "v1", "Node", "nodes"))
        .await?
        .len();
    Ok(ClusterView {
        workloads: list_workloads(client).await?,
        pods: list_pods(client).await?,
        nodes,
    })
}

/// The settings from ConfigMap `spiderpool-conf` in `namespace` (defaults when it is absent).
pub async fn settings(client: &Client, namespace: &str) -> Result<Settings, Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("", "v1", "ConfigMap", "configmaps"),
    );
    match api.get_opt(CONFIGMAP_NAME).await {
        Ok(Some(cm)) => {
            let v = serde_json::to_value(&cm).map_err(|e| Error::Storage {
                store: "kubernetes".into(),
                reason: format!("ConfigMap {namespace}/{CONFIGMAP_NAME}: {e}"),
            })?;
            Settings::from_configmap(&v)
        }
        Ok(None) => Ok(Settings::default()),
        Err(e) => Err(unavailable(
            &format!("ConfigMap {namespace}/{CONFIGMAP_NAME}"),
            e,
        )),
    }
}
