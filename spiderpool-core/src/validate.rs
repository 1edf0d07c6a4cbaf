//! Admission: Spiderpool's mutating (defaulting) and validating webhooks as pure functions.
//!
//! For each kind, `mutate_*` applies the defaults and `validate_*_create/update/delete` check
//! the object against the others that exist ([`Cluster`]) under the feature switches
//! ([`AdmissionConfig`]). A refusal is an [`Error::Invalid`] listing
//! every [`FieldError`] (path, offending value, Spiderpool's reason),
//! [`Error::AlreadyExists`] or
//! [`Error::Forbidden`].
//!
//! Differences from Spiderpool, all stricter or more precise:
//! - range errors point at the entry (`spec.ips[2]`) rather than at `spec.subnet`;
//! - a descending range (`10.0.0.9-10.0.0.1`) is refused instead of silently swapped;
//! - errors within the spec are all reported, not just the first;
//! - a pool whose CIDR nests in a SpiderSubnet's without being equal is refused on create
//!   (spec/README.md decision 11);
//! - `namespaceAffinity` and `nodeAffinity` are checked as label selectors too;
//! - route destinations compare as networks (`10.0.0.0/8` equals `10.0.0.1/8`);
//! - `metadata.name` is checked on create as the API server checks it (a DNS subdomain), so
//!   that stores without an API server (`spiderpoolctl apply`) refuse the same names;
//! - when `spec.ipVersion` cannot be derived, the cause names the bad `spec.subnet` (or
//!   `spec.ips[0]`) and its value too.

mod field;
mod ippool;
mod labels;
mod reservedip;
mod spec;
mod subnet;

pub use field::{FieldError, FieldErrorKind};
pub use ippool::{
    is_auto_created, mutate_ippool, validate_ippool_create, validate_ippool_delete,
    validate_ippool_update,
};
pub use labels::{check_dns_subdomain, check_label_key, check_label_value, check_selector};
pub use reservedip::{mutate_reservedip, validate_reservedip_create, validate_reservedip_update};
pub use subnet::{
    mutate_subnet, validate_subnet_create, validate_subnet_delete, validate_subnet_update,
};

use crate::model::{ObjectMeta, SpiderIPPool, SpiderSubnet, FINALIZER};
use crate::Error;

/// Feature switches of Spiderpool's configuration (`spiderpool-conf`) that admission obeys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// `enableIPv4`: IPv4 objects are accepted.
    pub enable_ipv4: bool,
    /// `enableIPv6`: IPv6 objects are accepted.
    pub enable_ipv6: bool,
    /// `enableSpiderSubnet`: pools are attached to the SpiderSubnet of their CIDR and must stay
    /// inside it.
    pub enable_spider_subnet: bool,
    /// `enableValidatingResourcesDeletedWebhook`: pools and subnets with allocations cannot be
    /// deleted.
    pub enable_validating_resources_deleted_webhook: bool,
}

impl Default for AdmissionConfig {
    /// Spiderpool's Helm defaults: both families, SpiderSubnet on, deletion check off.
    fn default() -> Self {
        AdmissionConfig {
            enable_ipv4: true,
            enable_ipv6: true,
            enable_spider_subnet: true,
            enable_validating_resources_deleted_webhook: false,
        }
    }
}

/// The objects that exist, against which a new or changed object is checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cluster<'a> {
    /// Every SpiderIPPool (for an update, the old version of the object may be among them).
    pub pools: &'a [SpiderIPPool],
    /// Every SpiderSubnet.
    pub subnets: &'a [SpiderSubnet],
}

/// An update of a terminating pool or subnet: only the one that removes the finalizer (or
/// comes after it) passes; `None` when the object is not terminating.
fn terminating_update(kind: &str, meta: &ObjectMeta, reason: &str) -> Option<Result<(), Error>> {
    if !meta.is_terminating() {
        return None;
    }
    if meta.finalizers.iter().any(|f| f == FINALIZER) {
        return Some(Err(Error::Forbidden {
            kind: kind.to_string(),
            name: meta.name.clone(),
            reason: reason.to_string(),
        }));
    }
    Some(Ok(()))
}

/// `metadata.name` as the API server checks it for these cluster-scoped kinds: present, and an
/// RFC 1123 DNS subdomain.
fn check_name(kind: &str, meta: &ObjectMeta) -> Result<(), Error> {
    let cause = if meta.name.is_empty() {
        FieldError::new(
            FieldErrorKind::Required,
            "metadata.name",
            "",
            "name or generateName is required",
        )
    } else {
        match check_dns_subdomain(&meta.name) {
            Ok(()) => return Ok(()),
            Err(e) => FieldError::new(FieldErrorKind::Invalid, "metadata.name", &meta.name, e),
        }
    };
    Err(invalid(kind, &meta.name, vec![cause]))
}

fn invalid(kind: &str, name: &str, causes: Vec<FieldError>) -> Error {
    Error::Invalid {
        kind: kind.to_string(),
        name: name.to_string(),
        causes,
    }
}
