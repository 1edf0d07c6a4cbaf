//! `SpiderReservedIP`: addresses no pool ever hands out.

use serde::{Deserialize, Serialize};

use super::meta::{note_unknown, Extra, ObjectMeta};
use super::API_VERSION;
use crate::ip::{IpFamily, IpRange, IpSet};

/// A SpiderReservedIP (`spiderpool.spidernet.io/v2beta1`, cluster-scoped, short name `sr`).
/// Its addresses are excluded from every pool of the family while it exists and is not
/// terminating. It has no status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpiderReservedIP {
    /// `spiderpool.spidernet.io/v2beta1`.
    pub api_version: String,
    /// `SpiderReservedIP`.
    pub kind: String,
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The reserved addresses.
    #[serde(default)]
    pub spec: ReservedIPSpec,
    /// Unknown top-level fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec` of a SpiderReservedIP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservedIPSpec {
    /// 4 or 6; derived from `ips[0]` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<i64>,
    /// Range strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "ips")]
    pub ips: Vec<String>,
    /// Unknown fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

impl SpiderReservedIP {
    /// The kind name.
    pub const KIND: &'static str = "SpiderReservedIP";

    /// A reserved-IP object with `name` and `spec`.
    pub fn new(name: impl Into<String>, spec: ReservedIPSpec) -> Self {
        SpiderReservedIP {
            api_version: API_VERSION.to_string(),
            kind: Self::KIND.to_string(),
            metadata: ObjectMeta::named(name),
            spec,
            extra: Extra::new(),
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The family of the object: `spec.ipVersion`, else that of `ips[0]`.
    pub fn family(&self) -> Option<IpFamily> {
        match self.spec.ip_version {
            Some(v) => IpFamily::from_version(v).ok(),
            None => self
                .spec
                .ips
                .first()
                .and_then(|r| IpRange::parse(None, r).ok())
                .map(|r| r.family()),
        }
    }

    /// Every address of `family` reserved by the live (not terminating) objects in `all`:
    /// the set no pool hands out. Entries that do not parse are skipped (admission refuses
    /// them).
    pub fn reserved_set(all: &[SpiderReservedIP], family: IpFamily) -> IpSet {
        let mut set = IpSet::new(family);
        for r in all {
            if r.metadata.is_terminating() || r.family() != Some(family) {
                continue;
            }
            for raw in &r.spec.ips {
                if let Ok(range) = IpRange::parse(Some(family), raw) {
                    set.insert_range(&range);
                }
            }
        }
        set
    }

    /// Dotted paths of the fields this library did not recognise.
    pub fn unknown_fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        note_unknown("", &self.extra, &mut out);
        self.metadata.unknown_fields(&mut out);
        note_unknown("spec", &self.spec.extra, &mut out);
        out
    }
}
