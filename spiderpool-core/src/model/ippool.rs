//! `SpiderIPPool`: the pool pods take addresses from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::{note_unknown, Extra, LabelSelector, ObjectMeta};
use super::{AddressSpec, Route, API_VERSION};
use crate::ip::{parse_ip, IpSet};
use crate::Error;

/// A SpiderIPPool (`spiderpool.spidernet.io/v2beta1`, cluster-scoped, short name `sp`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpiderIPPool {
    /// `spiderpool.spidernet.io/v2beta1`.
    pub api_version: String,
    /// `SpiderIPPool`.
    pub kind: String,
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: IPPoolSpec,
    /// Observed state, written by the IPAM.
    #[serde(default, skip_serializing_if = "IPPoolStatus::is_empty")]
    pub status: IPPoolStatus,
    /// Unknown top-level fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec` of a SpiderIPPool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolSpec {
    /// 4 or 6; derived from `subnet` by defaulting when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<i64>,
    /// The pool's network, canonical CIDR (`172.18.41.0/24`); required, immutable.
    #[serde(default)]
    pub subnet: String,
    /// Addresses the pool may hand out: range strings inside `subnet`.
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "ips")]
    pub ips: Vec<String>,
    /// Addresses never handed out even when listed in `ips`.
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "excludeIPs")]
    pub exclude_ips: Vec<String>,
    /// Gateway returned to the CNI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Extra routes returned to the CNI. `None` (absent) differs from `Some(vec![])`: only an
    /// absent list inherits the SpiderSubnet's routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Route>>,
    /// Only pods whose labels match may use the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_affinity: Option<LabelSelector>,
    /// Only pods in namespaces whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_affinity: Option<LabelSelector>,
    /// Only pods in these namespaces (takes priority over `namespaceAffinity`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_name: Vec<String>,
    /// Only pods on nodes whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<LabelSelector>,
    /// Only pods on these nodes (takes priority over `nodeAffinity`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_name: Vec<String>,
    /// Only these Multus network attachments (`ns/name` or `name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub multus_name: Vec<String>,
    /// A cluster default pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
    /// Closed to new allocations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable: Option<bool>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `status` of a SpiderIPPool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolStatus {
    /// JSON-encoded [`PoolIPAllocations`]; see [`SpiderIPPool::allocations`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "allocatedIPs"
    )]
    pub allocated_ips: Option<String>,
    /// |ips − excludeIPs| (reserved IPs are not subtracted).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "totalIPCount"
    )]
    pub total_ip_count: Option<i64>,
    /// Number of allocation records.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "allocatedIPCount"
    )]
    pub allocated_ip_count: Option<i64>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

impl IPPoolStatus {
    /// True when no status field is set.
    pub fn is_empty(&self) -> bool {
        *self == IPPoolStatus::default()
    }
}

/// One record of `status.allocatedIPs`: who holds the address.
///
/// Decoded by hand (see `record_de`): a pool holds thousands of these in one string, and
/// serde's `flatten` would buffer every field of every record on the way to `extra`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PoolIPAllocation {
    /// `<namespace>/<name>` of the pod (of the VM for KubeVirt).
    pub pod: String,
    /// The holder's uid.
    #[serde(rename = "podUid")]
    pub pod_uid: String,
    /// The pod's interface; our extension so that two NICs of one pod may hold two addresses
    /// of one pool. Absent in records written by Spiderpool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `status.allocatedIPs` decoded: bare IP string → record, in Go's sorted key order.
pub type PoolIPAllocations = BTreeMap<String, PoolIPAllocation>;

impl SpiderIPPool {
    /// A copy without `status.allocatedIPs` (the largest field by far), for a writer that
    /// sets a new one.
    pub fn clone_without_allocations(&self) -> SpiderIPPool {
        let IPPoolStatus {
            allocated_ips: _,
            total_ip_count,
            allocated_ip_count,
            extra,
        } = &self.status;
        SpiderIPPool {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            metadata: self.metadata.clone(),
            spec: self.spec.clone(),
            status: IPPoolStatus {
                allocated_ips: None,
                total_ip_count: *total_ip_count,
                allocated_ip_count: *allocated_ip_count,
                extra: extra.clone(),
            },
            extra: self.extra.clone(),
        }
    }

    /// A pool with `name` and `spec`, empty status.
    pub fn new(name: impl Into<String>, spec: IPPoolSpec) -> Self {
        SpiderIPPool {
            api_version: API_VERSION.to_string(),
            kind: Self::KIND.to_string(),
            metadata: ObjectMeta::named(name),
            spec,
            status: IPPoolStatus::default(),
            extra: Extra::new(),
        }
    }

    /// The kind name.
    pub const KIND: &'static str = "SpiderIPPool";

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// `spec.default == true`.
    pub fn is_default(&self) -> bool {
        self.spec.default == Some(true)
    }

    /// `spec.disable == true`.
    pub fn is_disabled(&self) -> bool {
        self.spec.disable == Some(true)
    }

    /// Decodes `status.allocatedIPs`. A value that is not the expected JSON map is an error
    /// naming the pool; it is never treated as empty.
    pub fn allocations(&self) -> Result<PoolIPAllocations, Error> {
        match self.status.allocated_ips.as_deref() {
            None | Some("") | Some("null") => Ok(PoolIPAllocations::new()),
            Some(text) => serde_json::from_str(text).map_err(|e| Error::CorruptStatus {
                kind: Self::KIND.to_string(),
                name: self.metadata.name.clone(),
                field: "status.allocatedIPs".to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Writes `status.allocatedIPs` and `status.allocatedIPCount` from `records`
    /// (absent when empty, as Spiderpool does).
    pub fn set_allocations(&mut self, records: &PoolIPAllocations) {
        self.status.allocated_ips = if records.is_empty() {
            None
        } else {
            serde_json::to_string(records).ok()
        };
        self.status.allocated_ip_count = Some(i64::try_from(records.len()).unwrap_or(i64::MAX));
    }

    /// The allocated addresses as a set based on the pool's subnet. A record whose key is not
    /// an address of the pool's family is a [`Error::CorruptStatus`].
    pub fn allocated_set(&self) -> Result<IpSet, Error> {
        let family = self.spec.family()?;
        let mut set = IpSet::for_subnet(&self.spec.subnet_net()?);
        for ip in self.allocations()?.keys() {
            let addr = parse_ip(Some(family), ip).map_err(|e| Error::CorruptStatus {
                kind: Self::KIND.to_string(),
                name: self.metadata.name.clone(),
                field: "status.allocatedIPs".to_string(),
                reason: e.to_string(),
            })?;
            set.insert(addr);
        }
        Ok(set)
    }

    /// The addresses the pool can still hand out: `ips − excludeIPs − allocated − reserved`.
    /// `reserved` is the family's [`SpiderReservedIP::reserved_set`](super::SpiderReservedIP::reserved_set).
    pub fn free_ips(&self, reserved: &IpSet) -> Result<IpSet, Error> {
        let usable = self.spec.total_ips()?;
        Ok(usable
            .difference(&self.allocated_set()?)
            .difference(reserved))
    }

    /// Recomputes `status.totalIPCount` (|ips − excludeIPs|, reserved IPs not subtracted, as
    /// Spiderpool counts) and `status.allocatedIPCount` (number of records), as the pool
    /// controller does.
    pub fn refresh_status(&mut self) -> Result<(), Error> {
        let total = self.spec.total_ips()?.len().to_i64_saturating();
        let allocated = self.allocations()?.len();
        self.status.total_ip_count = Some(total);
        self.status.allocated_ip_count = Some(i64::try_from(allocated).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Dotted paths of the fields this library did not recognise (kept, not interpreted).
    pub fn unknown_fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        note_unknown("", &self.extra, &mut out);
        self.metadata.unknown_fields(&mut out);
        note_unknown("spec", &self.spec.extra, &mut out);
        for (i, r) in self.spec.routes.iter().flatten().enumerate() {
            note_unknown(&format!("spec.routes[{i}]"), &r.extra, &mut out);
        }
        for (name, sel) in [
            ("spec.podAffinity", &self.spec.pod_affinity),
            ("spec.namespaceAffinity", &self.spec.namespace_affinity),
            ("spec.nodeAffinity", &self.spec.node_affinity),
        ] {
            if let Some(sel) = sel {
                sel.unknown_fields(name, &mut out);
            }
        }
        note_unknown("status", &self.status.extra, &mut out);
        out
    }
}

impl AddressSpec for IPPoolSpec {
    fn ip_version(&self) -> Option<i64> {
        self.ip_version
    }
    fn subnet(&self) -> &str {
        &self.subnet
    }
    fn ips(&self) -> &[String] {
        &self.ips
    }
    fn exclude_ips(&self) -> &[String] {
        &self.exclude_ips
    }
    fn gateway(&self) -> Option<&str> {
        self.gateway.as_deref()
    }
    fn routes(&self) -> &[Route] {
        self.routes.as_deref().unwrap_or_default()
    }
}
