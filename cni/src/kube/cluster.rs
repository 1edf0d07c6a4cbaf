//! The API server as the plugin reads it ([`Cluster`]): the client built from the netconf's
//! kubeconfig, every request bounded, and what ADD needs to know of a pod ([`PodContext`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use backend_kube::controller::cluster::resource;
use backend_kube::KubeStore;
use kube::api::{Api, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::ApiResource;
use kube::Client;
use serde_json::Value;
use spiderpool_core::ipam::IndexCache;
use spiderpool_core::request::{AllocateRequest, NetconfDefaults, Owner, PodRef};
use spiderpool_core::settings::Settings;
use spiderpool_core::workload::{self, controller_ref, map_at, str_at};

use super::{is_alive, SETTINGS_NAMESPACE};
use crate::netconf::NetConf;
use crate::Error;

/// A client built from the kubeconfig at `path`, every request bounded by `timeout`. A missing
/// or unreadable file is an [`Error::Kubeconfig`] naming it.
pub async fn client_from_kubeconfig(path: &str, timeout: Duration) -> Result<Client, Error> {
    let bad = |reason: String| Error::Kubeconfig {
        path: path.to_string(),
        reason,
    };
    if !Path::new(path).exists() {
        return Err(bad(
            "not found (the netconf's ipam.kubeconfig names the file)".into(),
        ));
    }
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
    // An exec credential plugin may take its time: bound it like a request.
    let config = tokio::time::timeout(
        timeout,
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()),
    )
    .await
    .map_err(|_| Error::KubeUnavailable {
        what: format!("loading kubeconfig {path}"),
        reason: format!("no credentials within {} ms", timeout.as_millis()),
    })?
    .map_err(|e| bad(e.to_string()))?;
    client_from_config(config, timeout).map_err(|e| bad(e.to_string()))
}

/// A client from `config` whose connects, reads and writes are bounded by `timeout`.
pub fn client_from_config(mut config: kube::Config, timeout: Duration) -> kube::Result<Client> {
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    Client::try_from(config)
}

/// Maps a failed API request: no answer, a server error or throttling is
/// [`Error::KubeUnavailable`]; a refusal (forbidden, invalid) is [`Error::Kube`].
pub(super) fn api_error(what: &str, e: kube::Error) -> Error {
    match &e {
        kube::Error::Api(s) if s.code < 500 && s.code != 429 && s.code != 408 => Error::Kube {
            what: what.to_string(),
            reason: format!("{} ({})", s.message, s.code),
        },
        _ => Error::KubeUnavailable {
            what: what.to_string(),
            reason: e.to_string(),
        },
    }
}

/// The API server as the plugin reads it: a client and the bound on each request.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    pub(super) timeout: Duration,
    /// The pools decoded by the engines of earlier requests (an agent keeps the cluster, and
    /// builds an engine per request): a pool is then recognised, or another node's changes
    /// followed, instead of decoded again.
    indexes: IndexCache,
}

impl Cluster {
    /// A cluster over `client`, each request bounded by `timeout`.
    pub fn new(client: Client, timeout: Duration) -> Self {
        Cluster {
            client,
            timeout,
            indexes: IndexCache::default(),
        }
    }

    /// The cluster the netconf names (its kubeconfig and timeout).
    pub async fn connect(conf: &NetConf) -> Result<Self, Error> {
        let timeout = conf.kube_timeout();
        let client = client_from_kubeconfig(conf.kubeconfig(), timeout).await?;
        Ok(Cluster::new(client, timeout))
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The pool-index cache the engines over this cluster share.
    pub fn index_cache(&self) -> &IndexCache {
        &self.indexes
    }

    /// The store over this cluster.
    pub fn store(&self) -> KubeStore {
        KubeStore::new(self.client.clone())
    }

    /// Runs `fut` within `limit`; past it, [`Error::KubeUnavailable`] for `what`.
    pub(super) async fn bounded<T>(
        &self,
        what: &str,
        limit: Duration,
        fut: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
            Err(Error::KubeUnavailable {
                what: what.to_string(),
                reason: format!("no answer within {} ms", limit.as_millis()),
            })
        })
    }

    /// How long an engine operation (several requests, retried on conflicts) may take.
    pub(super) fn operation_limit(&self) -> Duration {
        self.timeout.saturating_mul(3)
    }

    /// One object as JSON with `apiVersion` and `kind` set, `None` when it does not exist.
    pub async fn get(
        &self,
        ar: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, Error> {
        let what = match namespace {
            Some(ns) => format!("reading {} {ns}/{name}", ar.kind),
            None => format!("reading {} {name}", ar.kind),
        };
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, ar),
            None => Api::all_with(self.client.clone(), ar),
        };
        let found = self
            .bounded(&what, self.timeout, async {
                api.get_opt(name).await.map_err(|e| api_error(&what, e))
            })
            .await?;
        let Some(object) = found else {
            return Ok(None);
        };
        let mut v = serde_json::to_value(&object).map_err(|e| Error::Kube {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        // The API server sets them on a GET, but a DynamicObject may lack them.
        v["apiVersion"] = Value::String(ar.api_version.clone());
        v["kind"] = Value::String(ar.kind.clone());
        Ok(Some(v))
    }

    /// Spiderpool's settings (ConfigMap `spiderpool-conf` in `kube-system`; defaults when
    /// absent).
    pub async fn settings(&self) -> Result<Settings, Error> {
        let what = format!("reading ConfigMap {SETTINGS_NAMESPACE}/spiderpool-conf");
        self.bounded(&what, self.timeout, async {
            backend_kube::controller::cluster::settings(&self.client, SETTINGS_NAMESPACE)
                .await
                .map_err(|e| match e {
                    spiderpool_core::Error::Unavailable { reason } => Error::KubeUnavailable {
                        what: what.clone(),
                        reason,
                    },
                    other => Error::Ipam(other),
                })
        })
        .await
    }

    /// The pod `namespace/name`, if it exists.
    pub async fn pod(&self, namespace: &str, name: &str) -> Result<Option<Value>, Error> {
        self.get(&resource("", "v1", "Pod", "pods"), Some(namespace), name)
            .await
    }

    /// A workload of a built-in or KubeVirt kind by its `apiVersion`, if it exists.
    async fn workload(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, Error> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let plural = format!("{}s", kind.to_ascii_lowercase());
        self.get(
            &resource(group, version, kind, &plural),
            Some(namespace),
            name,
        )
        .await
    }

    /// The pod's top controller, resolved as Spiderpool does: a ReplicaSet's Deployment, a
    /// Job's CronJob, a StatefulSet with its replicas and ordinals, a KubeVirt
    /// VirtualMachineInstance (existing while it or its VirtualMachine lives), any other kind
    /// as referenced. `None` for a pod without a controller.
    pub async fn owner_of(&self, pod: &Value) -> Result<Option<Owner>, Error> {
        let Some(cref) = controller_ref(pod) else {
            return Ok(None);
        };
        let ns = workload::namespace(pod);
        let referenced = |exists: bool| Owner {
            api_version: cref.api_version.clone(),
            kind: cref.kind.clone(),
            name: cref.name.clone(),
            uid: cref.uid.clone(),
            exists,
            replicas: None,
            ordinals_start: None,
        };
        let parent = match (cref.api_version.as_str(), cref.kind.as_str()) {
            ("apps/v1", "ReplicaSet") => Some(("apps/v1", "Deployment")),
            ("batch/v1", "Job") => Some(("batch/v1", "CronJob")),
            ("apps/v1", "StatefulSet" | "DaemonSet") => None,
            (v, "VirtualMachineInstance") if v.starts_with("kubevirt.io/") => {
                return self.vmi_owner(&ns, referenced(true)).await.map(Some);
            }
            // A third-party controller (or a kind we do not resolve): as referenced.
            _ => return Ok(Some(referenced(true))),
        };
        let Some(object) = self
            .workload(&cref.api_version, &cref.kind, &ns, &cref.name)
            .await?
        else {
            return Ok(Some(referenced(false)));
        };
        if let (Some((pv, pk)), Some(up)) = (parent, controller_ref(&object)) {
            if up.api_version == pv && up.kind == pk {
                return Ok(Some(match self.workload(pv, pk, &ns, &up.name).await? {
                    Some(top) => workload::owner(&top, 0),
                    None => Owner {
                        api_version: up.api_version,
                        kind: up.kind,
                        name: up.name,
                        uid: up.uid,
                        exists: false,
                        replicas: None,
                        ordinals_start: None,
                    },
                }));
            }
        }
        Ok(Some(workload::owner(&object, 0)))
    }

    /// A KubeVirt VMI owner: it exists while the VMI lives, or else while its VirtualMachine
    /// (same name) lives.
    async fn vmi_owner(&self, namespace: &str, mut owner: Owner) -> Result<Owner, Error> {
        let alive = |o: &Option<Value>| {
            o.as_ref()
                .is_some_and(|v| v.pointer("/metadata/deletionTimestamp").is_none())
        };
        let vmi = self
            .workload(&owner.api_version, &owner.kind, namespace, &owner.name)
            .await?;
        owner.exists = alive(&vmi)
            || alive(
                &self
                    .workload(&owner.api_version, "VirtualMachine", namespace, &owner.name)
                    .await?,
            );
        Ok(owner)
    }

    /// The StatefulSet `namespace/name` as an owner; gone, an owner with `exists: false`.
    pub async fn statefulset_owner(&self, namespace: &str, name: &str) -> Result<Owner, Error> {
        Ok(
            match self
                .workload("apps/v1", "StatefulSet", namespace, name)
                .await?
            {
                Some(sts) => workload::owner(&sts, 0),
                None => Owner {
                    api_version: "apps/v1".into(),
                    kind: "StatefulSet".into(),
                    name: name.to_string(),
                    exists: false,
                    ..Owner::default()
                },
            },
        )
    }

    /// Reads what ADD needs of pod `namespace/name`: it must exist, carry `cni_uid` (when the
    /// runtime gave one) and be alive. The node is the pod's `spec.nodeName`, else `host_node`.
    pub async fn pod_context(
        &self,
        namespace: &str,
        name: &str,
        cni_uid: Option<&str>,
        host_node: &str,
    ) -> Result<PodContext, Error> {
        let pod = self
            .pod(namespace, name)
            .await?
            .ok_or_else(|| Error::Kube {
                what: format!("Pod {namespace}/{name}"),
                reason: "not found on the API server".into(),
            })?;
        let api_uid = workload::uid(&pod);
        if let Some(cni_uid) = cni_uid {
            if cni_uid != api_uid {
                return Err(Error::InvalidEnv {
                    var: "CNI_ARGS".into(),
                    reason: format!(
                        "K8S_POD_UID {cni_uid} is not the uid of Pod {namespace}/{name} on the API server ({api_uid}): the sandbox belongs to an older pod of that name"
                    ),
                });
            }
        }
        if !is_alive(&pod) {
            return Err(Error::Kube {
                what: format!("Pod {namespace}/{name}"),
                reason: "dead Pod (terminating or finished), we cannot allocate IP addresses to it"
                    .into(),
            });
        }
        let node = str_at(&pod, "/spec/nodeName")
            .filter(|n| !n.is_empty())
            .unwrap_or(host_node)
            .to_string();
        let ns = self
            .get(
                &resource("", "v1", "Namespace", "namespaces"),
                None,
                namespace,
            )
            .await?
            .unwrap_or_default();
        let node_object = if node.is_empty() {
            Value::Null
        } else {
            self.get(&resource("", "v1", "Node", "nodes"), None, &node)
                .await?
                .unwrap_or_default()
        };
        let owner = self.owner_of(&pod).await?;
        Ok(PodContext {
            pod_ref: PodRef::new(namespace, name, &api_uid),
            node,
            node_labels: map_at(&node_object, "/metadata/labels"),
            namespace_labels: map_at(&ns, "/metadata/labels"),
            namespace_annotations: map_at(&ns, "/metadata/annotations"),
            owner,
            pod,
        })
    }
}

/// What ADD knows of a pod from the API server.
#[derive(Debug, Clone)]
pub struct PodContext {
    /// The pod as served (JSON).
    pub pod: Value,
    /// Its identity (uid from the API server).
    pub pod_ref: PodRef,
    /// Its node.
    pub node: String,
    /// The node's labels (empty when the node is not found).
    pub node_labels: BTreeMap<String, String>,
    /// The namespace's labels (empty when the namespace is not found).
    pub namespace_labels: BTreeMap<String, String>,
    /// The namespace's annotations.
    pub namespace_annotations: BTreeMap<String, String>,
    /// The top controller.
    pub owner: Option<Owner>,
}

impl PodContext {
    /// The allocation request for NIC `ifname` of container `container_id`.
    pub fn request(&self, container_id: &str, ifname: &str, conf: &NetConf) -> AllocateRequest {
        AllocateRequest {
            pod: self.pod_ref.clone(),
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
            node: self.node.clone(),
            node_labels: self.node_labels.clone(),
            pod_labels: map_at(&self.pod, "/metadata/labels"),
            pod_annotations: map_at(&self.pod, "/metadata/annotations"),
            namespace_labels: self.namespace_labels.clone(),
            namespace_annotations: self.namespace_annotations.clone(),
            owner: self.owner.clone(),
            netconf: NetconfDefaults {
                default_ipv4_ippool: conf.ipam.default_ipv4_ippool.clone(),
                default_ipv6_ippool: conf.ipam.default_ipv6_ippool.clone(),
                clean_gateway: conf.ipam.clean_gateway,
            },
            network: conf.name.clone(),
        }
    }
}
