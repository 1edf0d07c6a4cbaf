//! Spiderpool's objects (`spiderpool.spidernet.io/v2beta1`), wire-compatible with its CRDs.
//!
//! - [`SpiderIPPool`], [`SpiderSubnet`], [`SpiderReservedIP`], [`SpiderEndpoint`] with full
//!   [`ObjectMeta`], every spec and status field under Spiderpool's JSON names.
//! - [`parse_documents`] reads YAML (multi-document, `List` objects too) or JSON, and converts
//!   the legacy `spiderpool.spidernet.io/v1` form.
//!
//! # Unknown fields are kept
//!
//! A field this library does not know is **kept verbatim** (in the `extra` map of the struct
//! that holds it) and written back unchanged, at every level of every object. A store that
//! reads, changes and writes an object therefore never loses what a newer Spiderpool or
//! another tool wrote. Such fields are not interpreted: [`parse_documents`] reports each one as
//! a warning (`unknown field "metadata.spec"`), as `kubectl` does, so a typo or a mis-indented
//! block is visible. Values of known fields must have the right JSON type, else parsing fails
//! with the path of the field.

mod document;
mod endpoint;
mod ippool;
mod legacy;
mod meta;
mod record_de;
pub(crate) use record_de::{parse_plain_fields, PlainRecord};
mod reservedip;
mod strict;
mod subnet;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use document::{object_from_value, parse_documents, to_yaml, Document, Object, OtherObject};
pub use endpoint::{IPAllocationDetail, PodIPAllocation, SpiderEndpoint, WorkloadEndpointStatus};
pub use ippool::{IPPoolSpec, IPPoolStatus, PoolIPAllocation, PoolIPAllocations, SpiderIPPool};
pub use meta::{Extra, LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference};
pub use reservedip::{ReservedIPSpec, SpiderReservedIP};
pub use subnet::{
    PoolIPPreAllocation, PoolIPPreAllocations, SpiderSubnet, SubnetSpec, SubnetStatus,
};

use crate::ip::{parse_cidr, parse_ip_ranges, IpFamily, IpSet};
use crate::Error;

/// The API group of Spiderpool's objects.
pub const GROUP: &str = "spiderpool.spidernet.io";
/// The current `apiVersion`.
pub const API_VERSION: &str = "spiderpool.spidernet.io/v2beta1";
/// The legacy `apiVersion`, accepted and converted on input.
pub const LEGACY_API_VERSION: &str = "spiderpool.spidernet.io/v1";
/// The finalizer Spiderpool puts on pools, subnets and endpoints.
pub const FINALIZER: &str = "spiderpool.spidernet.io";

/// A route handed to the CNI: destination CIDR and gateway.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Route {
    /// Destination CIDR.
    pub dst: String,
    /// Next hop.
    pub gw: String,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Route {
    /// A route to `dst` via `gw`.
    pub fn new(dst: impl Into<String>, gw: impl Into<String>) -> Self {
        Route {
            dst: dst.into(),
            gw: gw.into(),
            extra: Extra::new(),
        }
    }
}

/// The address fields SpiderIPPool and SpiderSubnet share, and what follows from them.
pub trait AddressSpec {
    /// `spec.ipVersion`.
    fn ip_version(&self) -> Option<i64>;
    /// `spec.subnet`.
    fn subnet(&self) -> &str;
    /// `spec.ips`.
    fn ips(&self) -> &[String];
    /// `spec.excludeIPs`.
    fn exclude_ips(&self) -> &[String];
    /// `spec.gateway`.
    fn gateway(&self) -> Option<&str>;
    /// `spec.routes` (empty when absent).
    fn routes(&self) -> &[Route];

    /// The family: `spec.ipVersion`, or the family of `spec.subnet` when unset.
    fn family(&self) -> Result<IpFamily, Error> {
        match self.ip_version() {
            Some(v) => IpFamily::from_version(v),
            None => Ok(IpFamily::of(parse_cidr(None, self.subnet())?.addr())),
        }
    }

    /// `spec.subnet` as a network.
    fn subnet_net(&self) -> Result<IpNet, Error> {
        Ok(parse_cidr(Some(self.family()?), self.subnet())?.trunc())
    }

    /// The usable addresses, `ips − excludeIPs`, as a set based on the subnet.
    fn total_ips(&self) -> Result<IpSet, Error> {
        let family = self.family()?;
        let net = self.subnet_net()?;
        let ips = IpSet::from_ranges(family, Some(&net), &parse_ip_ranges(family, self.ips())?);
        let excluded = IpSet::from_ranges(
            family,
            Some(&net),
            &parse_ip_ranges(family, self.exclude_ips())?,
        );
        Ok(ips.difference(&excluded))
    }
}
