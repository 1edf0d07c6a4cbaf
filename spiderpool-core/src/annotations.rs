//! Typed `ipam.spidernet.io/*` annotations of pods and namespaces, and the label keys
//! Spiderpool writes.
//!
//! Values are JSON (or plain strings for the counts and flags) and are read as Go's
//! `encoding/json` reads them into Spiderpool's types: keys match case-insensitively, unknown
//! keys are ignored, `null` means absent. A value of the wrong shape is an
//! [`Error::Annotation`] that names the key, the value and what is wrong.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::ip::{parse_cidr, parse_ip, IpFamily};
use crate::model::Route;
use crate::Error;

/// Prefix of every Spiderpool annotation and label.
pub const PREFIX: &str = "ipam.spidernet.io/";

/// Pod: pools for the NIC being configured, `{"ipv4":[…],"ipv6":[…]}`.
pub const ANNO_IPPOOL: &str = "ipam.spidernet.io/ippool";
/// Pod: pools per NIC, `[{"interface":"eth0","ipv4":[…],"ipv6":[…],"cleangateway":false}]`.
pub const ANNO_IPPOOLS: &str = "ipam.spidernet.io/ippools";
/// Pod: extra routes, `[{"dst":"10.0.0.0/16","gw":"192.168.1.1"}]`.
pub const ANNO_ROUTES: &str = "ipam.spidernet.io/routes";
/// Pod: declared by Spiderpool, never read (no DNS on pools).
pub const ANNO_DNS: &str = "ipam.spidernet.io/dns";
/// Pod: the NIC carrying the default route (coordinator only, not IPAM).
pub const ANNO_DEFAULT_ROUTE_NIC: &str = "ipam.spidernet.io/default-route-nic";
/// Pod template: SpiderSubnet for an auto-created pool, `{"interface":"eth0","ipv4":[…],"ipv6":[…]}`.
pub const ANNO_SUBNET: &str = "ipam.spidernet.io/subnet";
/// Pod template: SpiderSubnets per NIC, a list of [`ANNO_SUBNET`] values.
pub const ANNO_SUBNETS: &str = "ipam.spidernet.io/subnets";
/// Pod template and auto pool: size of the auto pool, `"N"` or `"+N"`.
pub const ANNO_IPPOOL_IP_NUMBER: &str = "ipam.spidernet.io/ippool-ip-number";
/// Pod template: delete the auto pool with its application (`"true"`, the default).
pub const ANNO_IPPOOL_RECLAIM: &str = "ipam.spidernet.io/ippool-reclaim";
/// Namespace: default IPv4 pools, a JSON list of names.
pub const ANNO_NS_DEFAULT_IPV4_IPPOOL: &str = "ipam.spidernet.io/default-ipv4-ippool";
/// Namespace: default IPv6 pools, a JSON list of names.
pub const ANNO_NS_DEFAULT_IPV6_IPPOOL: &str = "ipam.spidernet.io/default-ipv6-ippool";

/// Label of a pool: its CIDR as a label value.
pub const LABEL_IPPOOL_CIDR: &str = "ipam.spidernet.io/ippool-cidr";
/// Label of a subnet: its CIDR as a label value.
pub const LABEL_SUBNET_CIDR: &str = "ipam.spidernet.io/subnet-cidr";
/// Label of a pool: the SpiderSubnet that controls it.
pub const LABEL_OWNER_SPIDER_SUBNET: &str = "ipam.spidernet.io/owner-spider-subnet";
/// Label of an auto pool: the application's group/version (`apps_v1`, `v1`).
pub const LABEL_OWNER_APPLICATION_GV: &str = "ipam.spidernet.io/owner-application-gv";
/// Label of an auto pool: the application's kind.
pub const LABEL_OWNER_APPLICATION_KIND: &str = "ipam.spidernet.io/owner-application-kind";
/// Label of an auto pool: the application's namespace.
pub const LABEL_OWNER_APPLICATION_NAMESPACE: &str = "ipam.spidernet.io/owner-application-namespace";
/// Label of an auto pool: the application's name.
pub const LABEL_OWNER_APPLICATION_NAME: &str = "ipam.spidernet.io/owner-application-name";
/// Label of an auto pool: the application's uid.
pub const LABEL_OWNER_APPLICATION_UID: &str = "ipam.spidernet.io/owner-application-uid";
/// Label of an auto pool: the NIC it serves.
pub const LABEL_INTERFACE: &str = "ipam.spidernet.io/interface";
/// Label of an auto pool: `IPv4` or `IPv6`.
pub const LABEL_IP_VERSION: &str = "ipam.spidernet.io/ip-version";
/// Label of an auto pool: `true`/`false`, copied from [`ANNO_IPPOOL_RECLAIM`].
pub const LABEL_IPPOOL_RECLAIM: &str = ANNO_IPPOOL_RECLAIM;
/// Auto pool `podAffinity` key: the application's API group (empty for core).
pub const LABEL_APP_API_GROUP: &str = "ipam.spidernet.io/app-api-group";
/// Auto pool `podAffinity` key: the application's API version.
pub const LABEL_APP_API_VERSION: &str = "ipam.spidernet.io/app-api-version";
/// Auto pool `podAffinity` key: the application's kind.
pub const LABEL_APP_KIND: &str = "ipam.spidernet.io/app-kind";
/// Auto pool `podAffinity` key: the application's namespace.
pub const LABEL_APP_NAMESPACE: &str = "ipam.spidernet.io/app-namespace";
/// Auto pool `podAffinity` key: the application's name.
pub const LABEL_APP_NAME: &str = "ipam.spidernet.io/app-name";
/// The five `podAffinity` keys an auto pool may carry.
pub const AUTO_POOL_AFFINITY_KEYS: [&str; 5] = [
    LABEL_APP_API_GROUP,
    LABEL_APP_API_VERSION,
    LABEL_APP_KIND,
    LABEL_APP_NAMESPACE,
    LABEL_APP_NAME,
];

/// Multus: the pod's default network (`ns/name` or `name`).
pub const MULTUS_DEFAULT_NETWORK: &str = "v1.multus-cni.io/default-network";
/// Multus: the pod's extra networks.
pub const MULTUS_NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";

/// SpiderEndpoint annotation written by this engine: the container (sandbox) id of the last
/// ADD, for CNI GC (Spiderpool's endpoints have no such field).
pub const ANNO_ENDPOINT_CONTAINER_ID: &str = "spiderpool-rs.io/container-id";
/// SpiderEndpoint annotation written by this engine: the network (netconf `name`) of the
/// attachment, for CNI GC.
pub const ANNO_ENDPOINT_NETWORK: &str = "spiderpool-rs.io/network";

/// The NIC name Spiderpool assumes when none is given.
pub const DEFAULT_INTERFACE: &str = "eth0";

/// Pools per family (`ipam.spidernet.io/ippool`, and one NIC of `ippools`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolChoice {
    /// IPv4 pool names (shell wildcards allowed), in the order written.
    pub ipv4: Vec<String>,
    /// IPv6 pool names, in the order written.
    pub ipv6: Vec<String>,
}

impl PoolChoice {
    /// The names for one family.
    pub fn for_family(&self, family: IpFamily) -> &[String] {
        match family {
            IpFamily::V4 => &self.ipv4,
            IpFamily::V6 => &self.ipv6,
        }
    }

    /// True when neither family names a pool.
    pub fn is_empty(&self) -> bool {
        self.ipv4.is_empty() && self.ipv6.is_empty()
    }
}

/// One NIC of `ipam.spidernet.io/ippools`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicPools {
    /// The NIC. When the annotation names no interface, items are named by their index
    /// (`"0"`, `"1"`, …) as Spiderpool does.
    pub interface: String,
    /// Its pools.
    pub pools: PoolChoice,
    /// No default route through this NIC.
    pub clean_gateway: bool,
}

/// One NIC of `ipam.spidernet.io/subnet(s)`: the SpiderSubnets its auto pools come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicSubnets {
    /// The NIC (`eth0` when not given).
    pub interface: String,
    /// IPv4 subnet names; only the first one is used.
    pub ipv4: Vec<String>,
    /// IPv6 subnet names; only the first one is used.
    pub ipv6: Vec<String>,
}

impl NicSubnets {
    /// The subnet used for `family`: the first name, if any.
    pub fn subnet(&self, family: IpFamily) -> Option<&str> {
        match family {
            IpFamily::V4 => self.ipv4.first(),
            IpFamily::V6 => self.ipv6.first(),
        }
        .map(String::as_str)
    }
}

/// `ipam.spidernet.io/ippool-ip-number`: a fixed size or replicas plus a margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpNumber {
    /// `"N"`: exactly N addresses.
    Fixed(u64),
    /// `"+N"`: replicas + N addresses.
    Flexible(u64),
}

impl IpNumber {
    /// Parses `"N"` or `"+N"` (Spiderpool's `GetPoolIPNumber`).
    pub fn parse(value: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::Annotation {
            owner: "Pod".into(),
            key: ANNO_IPPOOL_IP_NUMBER.into(),
            value: value.into(),
            reason: reason.into(),
        };
        let (flexible, digits) = match value.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let syntax = !digits.starts_with('+') && is_go_int(digits);
        let n: i64 = parse_go_int(digits).filter(|_| syntax).ok_or_else(|| {
            // Go's words: digits that do not fit are out of range, anything else bad syntax.
            let why = if syntax {
                "value out of range"
            } else {
                "invalid syntax"
            };
            bad(&format!(
                "invalid input '{value}': strconv.Atoi: parsing {digits:?}: {why}"
            ))
        })?;
        let n = u64::try_from(n).map_err(|_| {
            bad(&format!(
                "subnet '{ANNO_IPPOOL_IP_NUMBER}' value must equal or greater than 0"
            ))
        })?;
        Ok(if flexible {
            IpNumber::Flexible(n)
        } else {
            IpNumber::Fixed(n)
        })
    }

    /// The pool size for `replicas`.
    pub fn size(self, replicas: u64) -> u64 {
        match self {
            IpNumber::Fixed(n) => n,
            IpNumber::Flexible(n) => replicas.saturating_add(n),
        }
    }
}

impl std::fmt::Display for IpNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpNumber::Fixed(n) => write!(f, "{n}"),
            IpNumber::Flexible(n) => write!(f, "+{n}"),
        }
    }
}

/// Go's `strconv.Atoi` syntax: optional sign, ASCII digits, no spaces.
fn is_go_int(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Go's `strconv.Atoi`: [`is_go_int`] and fits in 64 bits.
fn parse_go_int(s: &str) -> Option<i64> {
    if !is_go_int(s) {
        return None;
    }
    s.parse().ok()
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Every IPAM annotation of a pod (or of a workload's pod template), parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodAnnotations {
    /// `ipam.spidernet.io/ippool`.
    pub ippool: Option<PoolChoice>,
    /// `ipam.spidernet.io/ippools`, checked and with unnamed NICs named by index.
    pub ippools: Option<Vec<NicPools>>,
    /// `ipam.spidernet.io/subnet`.
    pub subnet: Option<NicSubnets>,
    /// `ipam.spidernet.io/subnets`, checked.
    pub subnets: Option<Vec<NicSubnets>>,
    /// `ipam.spidernet.io/ippool-ip-number`.
    pub ip_number: Option<IpNumber>,
    /// `ipam.spidernet.io/ippool-reclaim` (absent means reclaim).
    pub reclaim: Option<bool>,
    /// `ipam.spidernet.io/routes`, each checked.
    pub routes: Vec<Route>,
}

impl PodAnnotations {
    /// Parses the IPAM annotations among `annotations`; other keys are ignored.
    pub fn parse(annotations: &BTreeMap<String, String>) -> Result<Self, Error> {
        let mut out = PodAnnotations::default();
        if let Some(v) = annotations.get(ANNO_IPPOOL) {
            // Present but `null` or `{}`: this source is chosen and names no pool.
            out.ippool = Some(
                parse_json(ANNO_IPPOOL, v, |j| pool_choice(ANNO_IPPOOL, v, j))?.unwrap_or_default(),
            );
        }
        if let Some(v) = annotations.get(ANNO_IPPOOLS) {
            out.ippools = Some(
                parse_json(ANNO_IPPOOLS, v, |j| nic_pools(v, j))?.ok_or_else(|| {
                    pod_error(ANNO_IPPOOLS, v, "value requires at least one item")
                })?,
            );
        }
        if let Some(v) = annotations.get(ANNO_SUBNETS) {
            // `subnets` wins; `subnet` is then ignored, as in Spiderpool.
            out.subnets = Some(
                parse_json(ANNO_SUBNETS, v, |j| subnets(v, j))?
                    .ok_or_else(|| pod_error(ANNO_SUBNETS, v, "no subnets specified"))?,
            );
        } else if let Some(v) = annotations.get(ANNO_SUBNET) {
            let item = parse_json(ANNO_SUBNET, v, |j| {
                let mut item = nic_subnets(ANNO_SUBNET, v, j)?;
                if item.interface.is_empty() {
                    item.interface = DEFAULT_INTERFACE.to_string();
                }
                check_subnet_item(ANNO_SUBNET, v, &item, "single interface")?;
                Ok(item)
            })?;
            out.subnet =
                Some(item.ok_or_else(|| pod_error(ANNO_SUBNET, v, "no subnets specified"))?);
        }
        if let Some(v) = annotations.get(ANNO_IPPOOL_IP_NUMBER) {
            out.ip_number = Some(IpNumber::parse(v)?);
        }
        if let Some(v) = annotations.get(ANNO_IPPOOL_RECLAIM) {
            out.reclaim = Some(parse_go_bool(v).ok_or_else(|| {
                pod_error(
                    ANNO_IPPOOL_RECLAIM,
                    v,
                    format!("strconv.ParseBool: parsing {v:?}: invalid syntax"),
                )
            })?);
        }
        if let Some(v) = annotations.get(ANNO_ROUTES) {
            out.routes = parse_json(ANNO_ROUTES, v, |j| routes(v, j))?.unwrap_or_default();
        }
        Ok(out)
    }

    /// The `ippools` NIC list for a CNI call on `ifname`: the named NICs must include it
    /// (`interface X must be specified`). Unnamed lists (NICs `"0"`, `"1"`, …) always apply.
    pub fn nic_pools_for(&self, ifname: &str) -> Result<Option<&[NicPools]>, Error> {
        let Some(items) = &self.ippools else {
            return Ok(None);
        };
        let unnamed = items
            .iter()
            .enumerate()
            .all(|(i, n)| n.interface == i.to_string());
        if !unnamed && !items.iter().any(|n| n.interface == ifname) {
            return Err(pod_error(
                ANNO_IPPOOLS,
                "",
                format!("interface {ifname} must be specified"),
            ));
        }
        Ok(Some(items))
    }
}

/// The IPAM annotations of a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceAnnotations {
    /// `ipam.spidernet.io/default-ipv4-ippool`.
    pub default_ipv4_ippool: Vec<String>,
    /// `ipam.spidernet.io/default-ipv6-ippool`.
    pub default_ipv6_ippool: Vec<String>,
}

impl NamespaceAnnotations {
    /// Parses the namespace's default-pool annotations.
    pub fn parse(annotations: &BTreeMap<String, String>) -> Result<Self, Error> {
        let list = |key: &str| -> Result<Vec<String>, Error> {
            match annotations.get(key) {
                None => Ok(Vec::new()),
                Some(v) => {
                    let json: Value = serde_json::from_str(v).map_err(|e| Error::Annotation {
                        owner: "Namespace".into(),
                        key: key.into(),
                        value: v.clone(),
                        reason: e.to_string(),
                    })?;
                    string_list(&json).map_err(|reason| Error::Annotation {
                        owner: "Namespace".into(),
                        key: key.into(),
                        value: v.clone(),
                        reason,
                    })
                }
            }
        };
        Ok(NamespaceAnnotations {
            default_ipv4_ippool: list(ANNO_NS_DEFAULT_IPV4_IPPOOL)?,
            default_ipv6_ippool: list(ANNO_NS_DEFAULT_IPV6_IPPOOL)?,
        })
    }

    /// The default pools as a choice per family.
    pub fn pools(&self) -> PoolChoice {
        PoolChoice {
            ipv4: self.default_ipv4_ippool.clone(),
            ipv6: self.default_ipv6_ippool.clone(),
        }
    }
}

// ----- helpers -----

fn pod_error(key: &str, value: &str, reason: impl Into<String>) -> Error {
    Error::Annotation {
        owner: "Pod".into(),
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// Parses JSON, treats `null` as absent, and hands the rest to `f`.
fn parse_json<T>(
    key: &str,
    value: &str,
    f: impl FnOnce(&Value) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    let json: Value =
        serde_json::from_str(value).map_err(|e| pod_error(key, value, e.to_string()))?;
    if json.is_null() {
        return Ok(None);
    }
    f(&json).map(Some)
}

/// Looks up a key the way Go's `encoding/json` matches fields: exact first, then ASCII
/// case-insensitively.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name)
        .or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

fn string_list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("expected a list of strings, found {other}")),
            })
            .collect(),
        other => Err(format!("expected a list of strings, found {other}")),
    }
}

fn object<'a>(key: &str, value: &str, v: &'a Value) -> Result<&'a Map<String, Value>, Error> {
    v.as_object()
        .ok_or_else(|| pod_error(key, value, format!("expected a JSON object, found {v}")))
}

fn text_field(
    key: &str,
    value: &str,
    obj: &Map<String, Value>,
    name: &str,
) -> Result<String, Error> {
    match field(obj, name) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(pod_error(
            key,
            value,
            format!("\"{name}\" must be a string, found {other}"),
        )),
    }
}

fn list_field(
    key: &str,
    value: &str,
    obj: &Map<String, Value>,
    name: &str,
) -> Result<Vec<String>, Error> {
    field(obj, name)
        .map(|v| string_list(v).map_err(|r| pod_error(key, value, format!("\"{name}\": {r}"))))
        .transpose()
        .map(Option::unwrap_or_default)
}

fn pool_choice(key: &str, value: &str, v: &Value) -> Result<PoolChoice, Error> {
    let obj = object(key, value, v)?;
    Ok(PoolChoice {
        ipv4: list_field(key, value, obj, "ipv4")?,
        ipv6: list_field(key, value, obj, "ipv6")?,
    })
}

fn nic_pools(value: &str, v: &Value) -> Result<Vec<NicPools>, Error> {
    let key = ANNO_IPPOOLS;
    let items = v
        .as_array()
        .ok_or_else(|| pod_error(key, value, format!("expected a JSON list, found {v}")))?;
    if items.is_empty() {
        return Err(pod_error(key, value, "value requires at least one item"));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let obj = object(key, value, item)?;
        let clean_gateway = match field(obj, "cleangateway") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(pod_error(
                    key,
                    value,
                    format!("\"cleangateway\" must be a boolean, found {other}"),
                ))
            }
        };
        out.push(NicPools {
            interface: text_field(key, value, obj, "interface")?,
            pools: pool_choice(key, value, item)?,
            clean_gateway,
        });
    }
    let named = out.iter().filter(|n| !n.interface.is_empty()).count();
    if named != 0 && named != out.len() {
        return Err(pod_error(
            key,
            value,
            "NIC should be either all specified or all unspecified",
        ));
    }
    if named == 0 {
        for (i, n) in out.iter_mut().enumerate() {
            n.interface = i.to_string();
        }
    }
    for (i, n) in out.iter().enumerate() {
        if out[..i].iter().any(|m| m.interface == n.interface) {
            return Err(pod_error(
                key,
                value,
                format!("duplicate interface {}", n.interface),
            ));
        }
    }
    Ok(out)
}

fn nic_subnets(key: &str, value: &str, v: &Value) -> Result<NicSubnets, Error> {
    let obj = object(key, value, v)?;
    Ok(NicSubnets {
        interface: text_field(key, value, obj, "interface")?,
        ipv4: list_field(key, value, obj, "ipv4")?,
        ipv6: list_field(key, value, obj, "ipv6")?,
    })
}

fn check_subnet_item(key: &str, value: &str, item: &NicSubnets, mode: &str) -> Result<(), Error> {
    // Only the first name per family is used, so only it must be non-empty.
    for (family, names) in [("IPv4", &item.ipv4), ("IPv6", &item.ipv6)] {
        if names.first().is_some_and(String::is_empty) {
            return Err(pod_error(
                key,
                value,
                format!("it's invalid to set an empty {family} subnet with {mode}"),
            ));
        }
    }
    if item.ipv4.is_empty() && item.ipv6.is_empty() {
        return Err(pod_error(
            key,
            value,
            format!(
                "it's invalid to set dual empty subnet with {mode} (interface {:?})",
                item.interface
            ),
        ));
    }
    Ok(())
}

fn subnets(value: &str, v: &Value) -> Result<Vec<NicSubnets>, Error> {
    let key = ANNO_SUBNETS;
    let items = v
        .as_array()
        .ok_or_else(|| pod_error(key, value, format!("expected a JSON list, found {v}")))?;
    if items.is_empty() {
        return Err(pod_error(key, value, "no subnets specified"));
    }
    let mut out: Vec<NicSubnets> = Vec::with_capacity(items.len());
    for item in items {
        let mut s = nic_subnets(key, value, item)?;
        if s.interface.is_empty() && items.len() == 1 {
            // Ours: a lone unnamed item serves the first NIC (Spiderpool leaves it unnamed).
            s.interface = DEFAULT_INTERFACE.to_string();
        }
        check_subnet_item(key, value, &s, "multiple interfaces")?;
        if out.iter().any(|o| o.interface == s.interface) {
            return Err(pod_error(
                key,
                value,
                format!(
                    "it's invalid to use the same Interface name for multiple interfaces ({:?})",
                    s.interface
                ),
            ));
        }
        for family in IpFamily::ALL {
            if let Some(name) = s.subnet(family) {
                if let Some(o) = out.iter().find(|o| o.subnet(family) == Some(name)) {
                    return Err(pod_error(
                        key,
                        value,
                        format!(
                            "it's invalid to use the same subnet for multiple interfaces ({name} on {} and {})",
                            o.interface, s.interface
                        ),
                    ));
                }
            }
        }
        out.push(s);
    }
    Ok(out)
}

fn routes(value: &str, v: &Value) -> Result<Vec<Route>, Error> {
    let key = ANNO_ROUTES;
    let items = v
        .as_array()
        .ok_or_else(|| pod_error(key, value, format!("expected a JSON list, found {v}")))?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let obj = object(key, value, item)?;
        let route = Route::new(
            text_field(key, value, obj, "dst")?,
            text_field(key, value, obj, "gw")?,
        );
        check_route_any_family(&route).map_err(|e| pod_error(key, value, e.to_string()))?;
        out.push(route);
    }
    Ok(out)
}

/// A route whose `dst` is a CIDR and `gw` an address, both of one family.
fn check_route_any_family(route: &Route) -> Result<(), Error> {
    let input = format!("dst: {}, gw: {}", route.dst, route.gw);
    let dst = parse_cidr(None, &route.dst).map_err(|e| Error::InvalidRoute {
        family: None,
        input: input.clone(),
        reason: e.to_string(),
    })?;
    let family = IpFamily::of(dst.addr());
    parse_ip(Some(family), &route.gw).map_err(|e| Error::InvalidRoute {
        family: Some(family),
        input,
        reason: e.to_string(),
    })?;
    Ok(())
}
