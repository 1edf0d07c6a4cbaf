//! `SpiderSubnet`: a network from which pools, manual or automatic, are carved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::{note_unknown, Extra, ObjectMeta};
use super::{AddressSpec, Route, SpiderIPPool, API_VERSION};
use crate::ip::{parse_ip_ranges, IpCount, IpSet};
use crate::Error;

/// A SpiderSubnet (`spiderpool.spidernet.io/v2beta1`, cluster-scoped, short name `ss`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpiderSubnet {
    /// `spiderpool.spidernet.io/v2beta1`.
    pub api_version: String,
    /// `SpiderSubnet`.
    pub kind: String,
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: SubnetSpec,
    /// Observed state.
    #[serde(default, skip_serializing_if = "SubnetStatus::is_empty")]
    pub status: SubnetStatus,
    /// Unknown top-level fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec` of a SpiderSubnet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubnetSpec {
    /// 4 or 6; derived from `subnet` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<i64>,
    /// The network, canonical CIDR; required, immutable.
    #[serde(default)]
    pub subnet: String,
    /// Addresses pools may be given.
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "ips")]
    pub ips: Vec<String>,
    /// Addresses never given to pools.
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "excludeIPs")]
    pub exclude_ips: Vec<String>,
    /// Gateway, inherited by pools without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Routes, inherited by pools whose `routes` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<Route>>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `status` of a SpiderSubnet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubnetStatus {
    /// JSON-encoded [`PoolIPPreAllocations`]; see [`SpiderSubnet::controlled_pools`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "controlledIPPools"
    )]
    pub controlled_ip_pools: Option<String>,
    /// |ips − excludeIPs|.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "totalIPCount"
    )]
    pub total_ip_count: Option<i64>,
    /// Number of addresses handed to pools.
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

impl SubnetStatus {
    /// True when no status field is set.
    pub fn is_empty(&self) -> bool {
        *self == SubnetStatus::default()
    }
}

/// Addresses of a subnet handed to one pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PoolIPPreAllocation {
    /// Range strings.
    #[serde(default)]
    pub ips: Vec<String>,
    /// Owner application of an auto-created pool (`<group>_<version>_<Kind>_<ns>_<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `status.controlledIPPools` decoded: pool name → its addresses.
pub type PoolIPPreAllocations = BTreeMap<String, PoolIPPreAllocation>;

impl SpiderSubnet {
    /// The kind name.
    pub const KIND: &'static str = "SpiderSubnet";

    /// A subnet with `name` and `spec`, empty status.
    pub fn new(name: impl Into<String>, spec: SubnetSpec) -> Self {
        SpiderSubnet {
            api_version: API_VERSION.to_string(),
            kind: Self::KIND.to_string(),
            metadata: ObjectMeta::named(name),
            spec,
            status: SubnetStatus::default(),
            extra: Extra::new(),
        }
    }

    /// The subnet's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Decodes `status.controlledIPPools`; a malformed value is an error naming the subnet.
    pub fn controlled_pools(&self) -> Result<PoolIPPreAllocations, Error> {
        match self.status.controlled_ip_pools.as_deref() {
            None | Some("") | Some("null") => Ok(PoolIPPreAllocations::new()),
            Some(text) => serde_json::from_str(text).map_err(|e| Error::CorruptStatus {
                kind: Self::KIND.to_string(),
                name: self.metadata.name.clone(),
                field: "status.controlledIPPools".to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Writes `status.controlledIPPools` (absent when empty).
    pub fn set_controlled_pools(&mut self, pools: &PoolIPPreAllocations) {
        self.status.controlled_ip_pools = if pools.is_empty() {
            None
        } else {
            serde_json::to_string(pools).ok()
        };
    }

    /// Recomputes the status as the subnet controller does: `totalIPCount` = |ips −
    /// excludeIPs|; `controlledIPPools` records, for every pool this subnet controls (its
    /// controller owner reference), the pool's usable addresses inside the subnet, keeping the
    /// `application` of auto-created pools and the entries of auto pools not yet created;
    /// `allocatedIPCount` = addresses handed to pools.
    pub fn refresh_status(&mut self, pools: &[SpiderIPPool]) -> Result<(), Error> {
        let family = self.spec.family()?;
        let total = self.spec.total_ips()?;
        let previous = self.controlled_pools()?;
        let mut controlled = PoolIPPreAllocations::new();
        for (name, pre) in &previous {
            let exists = pools.iter().any(|p| &p.metadata.name == name);
            if pre.application.is_some() && !exists {
                controlled.insert(name.clone(), pre.clone());
            }
        }
        for pool in pools {
            let owned = pool
                .metadata
                .controller()
                .is_some_and(|o| o.kind == SpiderSubnet::KIND && o.name == self.metadata.name);
            if !owned || pool.spec.family().ok() != Some(family) {
                continue;
            }
            let ips = pool.spec.total_ips()?.intersection(&total);
            let application = previous
                .get(&pool.metadata.name)
                .and_then(|p| p.application.clone());
            controlled.insert(
                pool.metadata.name.clone(),
                PoolIPPreAllocation {
                    ips: ips.to_range_strings(),
                    application,
                    extra: Extra::new(),
                },
            );
        }
        let mut handed = IpCount::ZERO;
        for pre in controlled.values() {
            let ranges = parse_ip_ranges(family, &pre.ips)?;
            handed = handed + IpSet::from_ranges(family, None, &ranges).len();
        }
        self.set_controlled_pools(&controlled);
        self.status.total_ip_count = Some(total.len().to_i64_saturating());
        self.status.allocated_ip_count = Some(handed.to_i64_saturating());
        Ok(())
    }

    /// Dotted paths of the fields this library did not recognise.
    pub fn unknown_fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        note_unknown("", &self.extra, &mut out);
        self.metadata.unknown_fields(&mut out);
        note_unknown("spec", &self.spec.extra, &mut out);
        for (i, r) in self.spec.routes.iter().flatten().enumerate() {
            note_unknown(&format!("spec.routes[{i}]"), &r.extra, &mut out);
        }
        note_unknown("status", &self.status.extra, &mut out);
        out
    }
}

impl AddressSpec for SubnetSpec {
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
