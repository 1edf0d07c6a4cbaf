//! `SpiderEndpoint`: what a pod (or KubeVirt VM) holds, NIC by NIC.

use serde::{Deserialize, Serialize};

use super::meta::{note_unknown, Extra, ObjectMeta};
use super::{Route, API_VERSION};

/// A SpiderEndpoint (`spiderpool.spidernet.io/v2beta1`, namespaced, short name `se`), named
/// like its pod (or KubeVirt VM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpiderEndpoint {
    /// `spiderpool.spidernet.io/v2beta1`.
    pub api_version: String,
    /// `SpiderEndpoint`.
    pub kind: String,
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The allocation.
    #[serde(default)]
    pub status: WorkloadEndpointStatus,
    /// Unknown top-level fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `status` of a SpiderEndpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEndpointStatus {
    /// The current allocation.
    #[serde(default)]
    pub current: PodIPAllocation,
    /// Kind of the top owner: `Pod`, `Deployment`, `StatefulSet`, `KubevirtVMI`, a third-party
    /// kind, …
    #[serde(default)]
    pub owner_controller_type: String,
    /// Name of the top owner.
    #[serde(default)]
    pub owner_controller_name: String,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `status.current`: the pod instance and its addresses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodIPAllocation {
    /// The pod's uid.
    #[serde(default)]
    pub uid: String,
    /// The node the pod runs on.
    #[serde(default)]
    pub node: String,
    /// One entry per NIC.
    #[serde(default)]
    pub ips: Vec<IPAllocationDetail>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The addresses of one NIC.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPAllocationDetail {
    /// NIC name (`eth0`, `net1`).
    #[serde(rename = "interface")]
    pub nic: String,
    /// IPv4 address with prefix length (`172.31.199.193/20`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    /// IPv6 address with prefix length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    /// Pool of the IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_pool: Option<String>,
    /// Pool of the IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_pool: Option<String>,
    /// VLAN id, 0..=4094 (always 0 in v2beta1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<i64>,
    /// IPv4 gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_gateway: Option<String>,
    /// IPv6 gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_gateway: Option<String>,
    /// No default route for this NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_gateway: Option<bool>,
    /// Routes for this NIC.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// MAC address given by an external provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

impl SpiderEndpoint {
    /// The kind name.
    pub const KIND: &'static str = "SpiderEndpoint";

    /// An endpoint `namespace/name` with an empty status.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        let mut metadata = ObjectMeta::named(name);
        metadata.namespace = Some(namespace.into());
        SpiderEndpoint {
            api_version: API_VERSION.to_string(),
            kind: Self::KIND.to_string(),
            metadata,
            status: WorkloadEndpointStatus::default(),
            extra: Extra::new(),
        }
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Dotted paths of the fields this library did not recognise.
    pub fn unknown_fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        note_unknown("", &self.extra, &mut out);
        self.metadata.unknown_fields(&mut out);
        note_unknown("status", &self.status.extra, &mut out);
        note_unknown("status.current", &self.status.current.extra, &mut out);
        for (i, d) in self.status.current.ips.iter().enumerate() {
            let p = format!("status.current.ips[{i}]");
            note_unknown(&p, &d.extra, &mut out);
            for (j, r) in d.routes.iter().enumerate() {
                note_unknown(&format!("{p}.routes[{j}]"), &r.extra, &mut out);
            }
        }
        out
    }
}
