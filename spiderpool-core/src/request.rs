//! What an allocation or release is asked for, and the IPAM configuration that shapes it.

use std::collections::BTreeMap;

/// Spiderpool's agent configuration as far as allocation depends on it (`spiderpool-conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    /// `enableIPv4`: IPv4 candidates are used.
    pub enable_ipv4: bool,
    /// `enableIPv6`: IPv6 candidates are used.
    pub enable_ipv6: bool,
    /// `enableStatefulSet`: StatefulSet pods keep their addresses across restarts.
    pub enable_statefulset: bool,
    /// `enableKubevirtStaticIP`: KubeVirt VMs keep their addresses.
    pub enable_kubevirt_static_ip: bool,
    /// `enableSpiderSubnet`.
    pub enable_spider_subnet: bool,
    /// `enableAutoPoolForApplication`: `subnet(s)` annotations select auto-created pools.
    pub enable_auto_pool: bool,
    /// Multus `clusterNetwork` (`ns/name` or `name`): the attachment of the first NIC when the
    /// pod names none.
    pub cluster_network: Option<String>,
    /// Namespace in which bare Multus names of the first NIC are looked up (the agent's).
    pub agent_namespace: String,
    /// Cap on allocation records per pool (`SPIDERPOOL_IPPOOL_MAX_ALLOCATED_IPS`). `None`: no
    /// cap (our default outside Kubernetes; the cap exists only for the API object size).
    pub max_records_per_pool: Option<usize>,
}

impl Default for IpamConfig {
    fn default() -> Self {
        IpamConfig {
            enable_ipv4: true,
            enable_ipv6: true,
            enable_statefulset: true,
            enable_kubevirt_static_ip: true,
            enable_spider_subnet: true,
            enable_auto_pool: true,
            cluster_network: None,
            agent_namespace: "kube-system".to_string(),
            max_records_per_pool: None,
        }
    }
}

/// The workload kinds Kubernetes itself defines, with their `apiVersion`; any other
/// controller is a third-party one.
pub const BUILTIN_WORKLOADS: [(&str, &str); 6] = [
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
];

/// Whether `kind` of `api_version` is one of [`BUILTIN_WORKLOADS`].
pub fn is_builtin_workload(api_version: &str, kind: &str) -> bool {
    BUILTIN_WORKLOADS
        .iter()
        .any(|(v, k)| *v == api_version && *k == kind)
}

/// A pod's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Uid: a new pod of the same name has a new uid.
    pub uid: String,
}

impl PodRef {
    /// A pod reference.
    pub fn new(namespace: &str, name: &str, uid: &str) -> Self {
        PodRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
        }
    }

    /// `namespace/name`, as pool records write it.
    pub fn namespaced_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The top controller of a pod (a ReplicaSet's Deployment, a Job's CronJob, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    /// `apps/v1`, `batch/v1`, `kubevirt.io/v1`, `apps.kruise.io/v1alpha1`, …
    pub api_version: String,
    /// `Deployment`, `StatefulSet`, `VirtualMachineInstance`, `CloneSet`, …
    pub kind: String,
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
    /// Whether the owner still exists (and is not terminating).
    pub exists: bool,
    /// `spec.replicas`, for StatefulSets.
    pub replicas: Option<i64>,
    /// `spec.ordinals.start`, for StatefulSets.
    pub ordinals_start: Option<i64>,
}

impl Owner {
    /// Whether this owner is a StatefulSet.
    pub fn is_statefulset(&self) -> bool {
        self.kind == "StatefulSet" && self.api_version == "apps/v1"
    }

    /// Whether this owner is a KubeVirt VM instance.
    pub fn is_kubevirt_vmi(&self) -> bool {
        self.kind == "VirtualMachineInstance" && self.api_version.starts_with("kubevirt.io/")
    }

    /// Whether it is one of Kubernetes' own workload controllers.
    pub fn is_builtin(&self) -> bool {
        matches!(
            (self.api_version.as_str(), self.kind.as_str()),
            (
                "apps/v1",
                "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
            ) | ("batch/v1", "Job" | "CronJob")
        )
    }

    /// Whether pod `pod_name` of this StatefulSet is still wanted: the ordinal parsed from
    /// `<name>-<ordinal>` lies in `[start, start + replicas)` and the StatefulSet exists.
    pub fn keeps_stateful_pod(&self, pod_name: &str) -> bool {
        if !self.exists {
            return false;
        }
        if self.is_kubevirt_vmi() {
            return true;
        }
        let Some((_, ordinal)) = pod_name.rsplit_once('-') else {
            return false;
        };
        let Ok(ordinal) = ordinal.parse::<i64>() else {
            return false;
        };
        let start = self.ordinals_start.unwrap_or(0);
        let replicas = self.replicas.unwrap_or(0);
        ordinal >= start && ordinal < start.saturating_add(replicas)
    }
}

/// The netconf's part in pool selection (`ipam` section of the CNI configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetconfDefaults {
    /// `default_ipv4_ippool`.
    pub default_ipv4_ippool: Vec<String>,
    /// `default_ipv6_ippool`.
    pub default_ipv6_ippool: Vec<String>,
    /// `clean_gateway`: no default route through this NIC.
    pub clean_gateway: bool,
}

/// An allocation request: one CNI ADD.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllocateRequest {
    /// The pod.
    pub pod: PodRef,
    /// The container (sandbox) id.
    pub container_id: String,
    /// The NIC being configured (`CNI_IFNAME`).
    pub ifname: String,
    /// The node the pod runs on.
    pub node: String,
    /// The node's labels (for `nodeAffinity`).
    pub node_labels: BTreeMap<String, String>,
    /// The pod's labels (for `podAffinity`).
    pub pod_labels: BTreeMap<String, String>,
    /// The pod's annotations (`ipam.spidernet.io/*`, Multus).
    pub pod_annotations: BTreeMap<String, String>,
    /// The namespace's labels (for `namespaceAffinity`).
    pub namespace_labels: BTreeMap<String, String>,
    /// The namespace's annotations (default pools).
    pub namespace_annotations: BTreeMap<String, String>,
    /// The pod's top controller; `None` for a bare pod.
    pub owner: Option<Owner>,
    /// The netconf's defaults.
    pub netconf: NetconfDefaults,
    /// The network (netconf `name`) the attachment belongs to; recorded on the endpoint so that
    /// CNI GC can tell the attachments of one network from another's. Empty when unknown.
    pub network: String,
}

/// A release request: one CNI DEL (or a garbage-collection decision).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseRequest {
    /// The pod (its uid may be empty when unknown: then nothing is released).
    pub pod: PodRef,
    /// The NIC being torn down (`CNI_IFNAME`).
    pub ifname: String,
    /// The pod's top controller; decides whether a stateful pod keeps its addresses.
    pub owner: Option<Owner>,
    /// The pod is still alive (a sandbox restart): a stateless pod keeps its addresses too.
    pub pod_alive: bool,
}
