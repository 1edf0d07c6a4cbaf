//! Pool selection: which pools may serve each NIC and family of a pod, in which order, and why
//! the others may not.
//!
//! Sources, the first that names pools wins (Spiderpool's precedence):
//! 1. `ipam.spidernet.io/subnets` / `subnet`: the application's auto-created pools;
//! 2. pod `ipam.spidernet.io/ippools` (every NIC listed, in one call);
//! 3. pod `ipam.spidernet.io/ippool` (the NIC being configured);
//! 4. the namespace's `default-ipv4-ippool` / `default-ipv6-ippool`;
//! 5. the netconf's `default_ipv4_ippool` / `default_ipv6_ippool`;
//! 6. every pool with `spec.default: true`.
//!
//! Names may be shell patterns (`default-v4-*`). Each pool then passes Spiderpool's filters
//! in order (terminating, disabled, family, node, namespace, pod affinity, Multus), and the
//! survivors are sorted by how specific their affinities are, ties keeping the order written.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::Value;

use crate::annotations::{
    NamespaceAnnotations, PodAnnotations, PoolChoice, ANNO_IPPOOL, ANNO_IPPOOLS,
    ANNO_NS_DEFAULT_IPV4_IPPOOL, ANNO_SUBNET, ANNO_SUBNETS, DEFAULT_INTERFACE, LABEL_APP_API_GROUP,
    LABEL_APP_API_VERSION, LABEL_APP_KIND, LABEL_APP_NAME, LABEL_APP_NAMESPACE, LABEL_INTERFACE,
    LABEL_IP_VERSION, LABEL_OWNER_APPLICATION_UID, LABEL_OWNER_SPIDER_SUBNET,
    MULTUS_DEFAULT_NETWORK, MULTUS_NETWORKS,
};
use crate::ip::IpFamily;
use crate::model::{AddressSpec, SpiderIPPool};
use crate::request::{AllocateRequest, IpamConfig};
use crate::store::Revision;
use crate::validate::is_auto_created;
use crate::Error;

/// Where a NIC's candidate pools came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `ipam.spidernet.io/subnets` or `subnet`.
    SubnetAnnotation,
    /// `ipam.spidernet.io/ippools`.
    IpPoolsAnnotation,
    /// `ipam.spidernet.io/ippool`.
    IpPoolAnnotation,
    /// The namespace's default pools.
    NamespaceDefault,
    /// The netconf's default pools.
    Netconf,
    /// Pools with `spec.default: true`.
    ClusterDefault,
}

impl Source {
    fn describe(self) -> &'static str {
        match self {
            Source::SubnetAnnotation => ANNO_SUBNETS,
            Source::IpPoolsAnnotation => ANNO_IPPOOLS,
            Source::IpPoolAnnotation => ANNO_IPPOOL,
            Source::NamespaceDefault => ANNO_NS_DEFAULT_IPV4_IPPOOL,
            Source::Netconf => "netconf default_ipv4_ippool/default_ipv6_ippool",
            Source::ClusterDefault => "cluster default pools",
        }
    }
}

/// Why a pool cannot serve a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Being deleted.
    Terminating,
    /// `spec.disable: true`.
    Disabled,
    /// Of the other family.
    WrongFamily,
    /// `nodeName` does not list the pod's node.
    NodeName,
    /// `nodeAffinity` does not match the node's labels.
    NodeAffinity,
    /// `namespaceName` does not list the pod's namespace.
    NamespaceName,
    /// `namespaceAffinity` does not match the namespace's labels.
    NamespaceAffinity,
    /// `podAffinity` does not match the pod's labels.
    PodAffinity,
    /// An auto-created pool of another application.
    OtherApplication,
    /// `multusName` does not list the NIC's network attachment.
    MultusMismatch,
    /// Every usable address is allocated.
    Exhausted {
        /// Usable addresses.
        total: String,
    },
    /// Addresses are unallocated, but every one of them is reserved.
    AllFreeReserved {
        /// How many unallocated addresses are reserved.
        reserved: String,
    },
    /// The pool holds the most records it may (`max_records_per_pool`).
    TooManyRecords {
        /// The cap.
        max: usize,
    },
    /// The pool's spec or status cannot be read.
    Corrupt {
        /// What is wrong.
        reason: String,
    },
}

impl Rejection {
    /// Whether the pool had no address to give (as opposed to not being eligible).
    pub fn is_exhaustion(&self) -> bool {
        matches!(
            self,
            Rejection::Exhausted { .. }
                | Rejection::AllFreeReserved { .. }
                | Rejection::TooManyRecords { .. }
        )
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Terminating => f.write_str("terminating IPPool"),
            Rejection::Disabled => f.write_str("disabled IPPool"),
            Rejection::WrongFamily => f.write_str("IPPool of the other IP version"),
            Rejection::NodeName => f.write_str("unmatched Node name"),
            Rejection::NodeAffinity => f.write_str("unmatched Node affinity"),
            Rejection::NamespaceName => f.write_str("unmatched Namespace name"),
            Rejection::NamespaceAffinity => f.write_str("unmatched Namespace affinity"),
            Rejection::PodAffinity => f.write_str("unmatched Pod affinity"),
            Rejection::OtherApplication => {
                f.write_str("unmatched Pod affinity of auto-created IPPool (another application's)")
            }
            Rejection::MultusMismatch => f.write_str("unmatched multusName"),
            Rejection::Exhausted { total } => {
                write!(f, "exhausted, all {total} addresses allocated")
            }
            Rejection::AllFreeReserved { reserved } => {
                write!(
                    f,
                    "no free address, the {reserved} unallocated ones are reserved"
                )
            }
            Rejection::TooManyRecords { max } => {
                write!(f, "threshold of IP records(<={max}) exceeded")
            }
            Rejection::Corrupt { reason } => write!(f, "unreadable: {reason}"),
        }
    }
}

/// The pools that may serve one NIC and family, best first, and the ones filtered out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyCandidates {
    /// The family.
    pub family: IpFamily,
    /// Eligible pools, in the order to try them.
    pub pools: Vec<String>,
    /// Pools filtered out, in the order written, with the reason.
    pub rejected: Vec<(String, Rejection)>,
}

/// The candidates of one NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicCandidates {
    /// The NIC.
    pub nic: String,
    /// No default route through this NIC.
    pub clean_gateway: bool,
    /// Where the pools came from.
    pub source: Source,
    /// Per family, IPv4 first; a family with no pool named is absent.
    pub families: Vec<FamilyCandidates>,
}

/// A list of pools selection reads: a slice of pools, or of pools with revisions (a
/// snapshot's).
pub trait PoolList {
    /// Number of pools.
    fn count(&self) -> usize;
    /// The pool at position `i` (`i < count()`).
    fn at(&self, i: usize) -> &SpiderIPPool;
}

impl PoolList for [&SpiderIPPool] {
    fn count(&self) -> usize {
        self.len()
    }
    fn at(&self, i: usize) -> &SpiderIPPool {
        self[i]
    }
}

impl PoolList for [(SpiderIPPool, Revision)] {
    fn count(&self) -> usize {
        self.len()
    }
    fn at(&self, i: usize) -> &SpiderIPPool {
        &self[i].0
    }
}

fn iter_pools<L: PoolList + ?Sized>(pools: &L) -> impl Iterator<Item = &SpiderIPPool> {
    (0..pools.count()).map(move |i| pools.at(i))
}

/// What selection looks pools up by, built once per list of pools (O(pools)) so that a
/// selection touches only the pools it names: positions by name, the cluster default pools
/// per family in list order, and the pools of each application uid (auto-pool label).
#[derive(Debug, Clone, Default)]
pub struct PoolCatalog {
    count: usize,
    by_name: HashMap<String, usize>,
    defaults: [Vec<usize>; 2],
    by_app: HashMap<String, Vec<usize>>,
}

impl PoolCatalog {
    /// The catalog of `pools`.
    pub fn new<L: PoolList + ?Sized>(pools: &L) -> Self {
        let mut c = PoolCatalog {
            count: pools.count(),
            by_name: HashMap::with_capacity(pools.count()),
            ..PoolCatalog::default()
        };
        for (i, p) in iter_pools(pools).enumerate() {
            // The first pool of a name wins, as a linear search would find it.
            c.by_name.entry(p.metadata.name.clone()).or_insert(i);
            if p.is_default() {
                match p.spec.family() {
                    Ok(IpFamily::V4) => c.defaults[0].push(i),
                    Ok(IpFamily::V6) => c.defaults[1].push(i),
                    Err(_) => {}
                }
            }
            if let Some(uid) = p.metadata.labels.get(LABEL_OWNER_APPLICATION_UID) {
                c.by_app.entry(uid.clone()).or_default().push(i);
            }
        }
        c
    }

    /// Whether the catalog was built for a list of `count` pools.
    pub fn covers(&self, count: usize) -> bool {
        self.count == count
    }

    /// The position of the pool named `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The positions of the cluster default pools of `family`, in list order.
    pub fn defaults(&self, family: IpFamily) -> &[usize] {
        match family {
            IpFamily::V4 => &self.defaults[0],
            IpFamily::V6 => &self.defaults[1],
        }
    }

    /// The positions of the pools labelled with application uid `uid`.
    pub fn of_application(&self, uid: &str) -> &[usize] {
        self.by_app.get(uid).map_or(&[], Vec::as_slice)
    }
}

/// The candidates of every NIC the request allocates: the `ippools` annotation allocates all
/// its NICs at once; every other source serves the NIC being configured.
pub fn candidates(
    req: &AllocateRequest,
    pools: &[&SpiderIPPool],
    cfg: &IpamConfig,
) -> Result<Vec<NicCandidates>, Error> {
    candidates_in(req, pools, &PoolCatalog::new(pools), cfg)
}

/// [`candidates`] with a catalog built beforehand (for example once per snapshot): the work is
/// that of the pools the request names (or of the default pools), not of every pool.
/// `catalog` must be [`PoolCatalog::new`] of `pools`.
pub fn candidates_in<L: PoolList + ?Sized>(
    req: &AllocateRequest,
    pools: &L,
    catalog: &PoolCatalog,
    cfg: &IpamConfig,
) -> Result<Vec<NicCandidates>, Error> {
    if !catalog.covers(pools.count()) {
        return candidates_in(req, pools, &PoolCatalog::new(pools), cfg);
    }
    let annotations = PodAnnotations::parse(&req.pod_annotations)?;
    let by_name = |name: &str| -> Option<&SpiderIPPool> {
        let p = pools.at(catalog.position(name)?);
        (p.metadata.name == name).then_some(p)
    };
    let mut nics = choose_source(req, &annotations, pools, catalog, cfg)?;
    for (_, _, choice, _) in &mut nics {
        if !cfg.enable_ipv4 {
            choice.ipv4.clear();
        }
        if !cfg.enable_ipv6 {
            choice.ipv6.clear();
        }
        expand_wildcards(choice, pools);
    }
    let mut out = Vec::with_capacity(nics.len());
    for (nic, clean_gateway, choice, source) in nics {
        let mut families = Vec::new();
        for family in IpFamily::ALL {
            let names = choice.for_family(family);
            if names.is_empty() {
                continue;
            }
            let mut eligible = Vec::new();
            let mut rejected = Vec::new();
            for (i, name) in names.iter().enumerate() {
                if names[..i].contains(name) {
                    return Err(Error::Annotation {
                        owner: "Pod".into(),
                        key: source.describe().into(),
                        value: String::new(),
                        reason: format!("duplicate IPPool {name} specified for NIC {nic}"),
                    });
                }
                let Some(pool) = by_name(name.as_str()) else {
                    return Err(Error::UnknownPool {
                        pool: name.clone(),
                        nic: nic.clone(),
                        named_by: source.describe().to_string(),
                    });
                };
                match filter(pool, family, &nic, req, cfg) {
                    None => eligible.push(pool),
                    Some(why) => rejected.push((name.clone(), why)),
                }
            }
            eligible.sort_by_key(|p| priority(p));
            families.push(FamilyCandidates {
                family,
                pools: eligible.iter().map(|p| p.metadata.name.clone()).collect(),
                rejected,
            });
        }
        out.push(NicCandidates {
            nic,
            clean_gateway,
            source,
            families,
        });
    }
    Ok(out)
}

type NicChoice = (String, bool, PoolChoice, Source);

fn choose_source<L: PoolList + ?Sized>(
    req: &AllocateRequest,
    annotations: &PodAnnotations,
    pools: &L,
    catalog: &PoolCatalog,
    cfg: &IpamConfig,
) -> Result<Vec<NicChoice>, Error> {
    let ifname = req.ifname.as_str();
    let clean = req.netconf.clean_gateway;
    let has_subnet = annotations.subnet.is_some() || annotations.subnets.is_some();
    if cfg.enable_spider_subnet && has_subnet {
        if !cfg.enable_auto_pool {
            return Err(Error::Annotation {
                owner: "Pod".into(),
                key: ANNO_SUBNETS.into(),
                value: String::new(),
                reason: format!(
                    "it's invalid to use '{ANNO_SUBNETS}' or '{ANNO_SUBNET}' annotation when Auto-Pool feature is disabled"
                ),
            });
        }
        return auto_pools(req, annotations, pools, catalog)
            .map(|c| vec![(ifname.to_string(), clean, c, Source::SubnetAnnotation)]);
    }
    if annotations.ippools.is_some() {
        let items = annotations.nic_pools_for(ifname)?.unwrap_or_default();
        // Unnamed NICs are numbered "0", "1", …; the first is the NIC being configured.
        let unnamed = items
            .iter()
            .enumerate()
            .all(|(i, n)| n.interface == i.to_string());
        return Ok(items
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let nic = if unnamed && i == 0 {
                    ifname.to_string()
                } else {
                    n.interface.clone()
                };
                (
                    nic,
                    n.clean_gateway,
                    n.pools.clone(),
                    Source::IpPoolsAnnotation,
                )
            })
            .collect());
    }
    if let Some(choice) = &annotations.ippool {
        return Ok(vec![(
            ifname.to_string(),
            clean,
            choice.clone(),
            Source::IpPoolAnnotation,
        )]);
    }
    let ns = NamespaceAnnotations::parse(&req.namespace_annotations)?.pools();
    if !ns.is_empty() {
        return Ok(vec![(
            ifname.to_string(),
            clean,
            ns,
            Source::NamespaceDefault,
        )]);
    }
    let netconf = PoolChoice {
        ipv4: req.netconf.default_ipv4_ippool.clone(),
        ipv6: req.netconf.default_ipv6_ippool.clone(),
    };
    if !netconf.is_empty() {
        return Ok(vec![(ifname.to_string(), clean, netconf, Source::Netconf)]);
    }
    let names = |family| -> Vec<String> {
        catalog
            .defaults(family)
            .iter()
            .map(|&i| pools.at(i).metadata.name.clone())
            .collect()
    };
    let defaults = PoolChoice {
        ipv4: names(IpFamily::V4),
        ipv6: names(IpFamily::V6),
    };
    if defaults.is_empty() {
        return Err(Error::NoPoolSelected {
            pod: req.pod.namespaced_name(),
            nic: ifname.to_string(),
        });
    }
    Ok(vec![(
        ifname.to_string(),
        clean,
        defaults,
        Source::ClusterDefault,
    )])
}

/// The application's auto-created pools for the NIC, found by their labels.
fn auto_pools<L: PoolList + ?Sized>(
    req: &AllocateRequest,
    annotations: &PodAnnotations,
    pools: &L,
    catalog: &PoolCatalog,
) -> Result<PoolChoice, Error> {
    let Some(owner) = &req.owner else {
        return Err(Error::AutoPool {
            pod: req.pod.namespaced_name(),
            reason: "SpiderSubnet feature doesn't support no-controller pod".to_string(),
        });
    };
    let item = match (&annotations.subnets, &annotations.subnet) {
        (Some(items), _) => items.iter().find(|i| i.interface == req.ifname).cloned(),
        (None, Some(item)) => Some(item.clone()),
        (None, None) => None,
    };
    let Some(item) = item else {
        return Ok(PoolChoice::default());
    };
    let mut choice = PoolChoice::default();
    for family in IpFamily::ALL {
        let Some(subnet) = item.subnet(family) else {
            continue;
        };
        let found: Vec<&SpiderIPPool> = catalog
            .of_application(&owner.uid)
            .iter()
            .map(|&i| pools.at(i))
            .filter(|p| {
                let l = &p.metadata.labels;
                l.get(LABEL_OWNER_APPLICATION_UID) == Some(&owner.uid)
                    && l.get(LABEL_INTERFACE).map(String::as_str) == Some(req.ifname.as_str())
                    && l.get(LABEL_IP_VERSION).map(String::as_str) == Some(family.label())
                    && l.get(LABEL_OWNER_SPIDER_SUBNET).map(String::as_str) == Some(subnet)
            })
            .collect();
        match found.as_slice() {
            [one] => {
                let names = match family {
                    IpFamily::V4 => &mut choice.ipv4,
                    IpFamily::V6 => &mut choice.ipv6,
                };
                names.push(one.metadata.name.clone());
            }
            [] => {
                return Err(Error::AutoPool {
                    pod: req.pod.namespaced_name(),
                    reason: format!(
                        "no matching auto-created IPPool candidate for {} {}/{} (uid {}) on {} {} from SpiderSubnet {subnet}; it may not be created yet, try again later",
                        owner.kind, req.pod.namespace, owner.name, owner.uid, req.ifname, family
                    ),
                })
            }
            many => {
                return Err(Error::AutoPool {
                    pod: req.pod.namespaced_name(),
                    reason: format!(
                        "{} auto-created IPPools match {} {}/{} on {} {}",
                        many.len(),
                        owner.kind,
                        req.pod.namespace,
                        owner.name,
                        req.ifname,
                        family
                    ),
                })
            }
        }
    }
    Ok(choice)
}

/// Replaces shell patterns (`*`, `?`, `[…]`) by the names of the pools of that family that
/// match, in pool order; literal names stay in place.
fn expand_wildcards<L: PoolList + ?Sized>(choice: &mut PoolChoice, pools: &L) {
    for family in IpFamily::ALL {
        let names = match family {
            IpFamily::V4 => &mut choice.ipv4,
            IpFamily::V6 => &mut choice.ipv6,
        };
        if !names.iter().any(|n| is_pattern(n)) {
            continue;
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names.iter() {
            if !is_pattern(name) {
                out.push(name.clone());
                continue;
            }
            let Ok(pattern) = glob::Pattern::new(name) else {
                out.push(name.clone());
                continue;
            };
            for p in iter_pools(pools) {
                if p.spec.family().ok() == Some(family) && pattern.matches(&p.metadata.name) {
                    out.push(p.metadata.name.clone());
                }
            }
        }
        *names = out;
    }
}

/// Spiderpool's `HasWildcardInStr`: `*`, `?`, or a `[…]` class.
fn is_pattern(name: &str) -> bool {
    name.contains(['*', '?']) || (name.contains('[') && name.contains(']'))
}

/// Spiderpool's filters, in its order; `None` when the pool is eligible.
fn filter(
    pool: &SpiderIPPool,
    family: IpFamily,
    nic: &str,
    req: &AllocateRequest,
    cfg: &IpamConfig,
) -> Option<Rejection> {
    let spec = &pool.spec;
    if pool.metadata.is_terminating() {
        return Some(Rejection::Terminating);
    }
    if pool.is_disabled() {
        return Some(Rejection::Disabled);
    }
    if spec.family().ok() != Some(family) {
        return Some(Rejection::WrongFamily);
    }
    if !spec.node_name.is_empty() {
        if !spec.node_name.contains(&req.node) {
            return Some(Rejection::NodeName);
        }
    } else if let Some(sel) = &spec.node_affinity {
        if !sel.matches(&req.node_labels) {
            return Some(Rejection::NodeAffinity);
        }
    }
    if !spec.namespace_name.is_empty() {
        if !spec.namespace_name.contains(&req.pod.namespace) {
            return Some(Rejection::NamespaceName);
        }
    } else if let Some(sel) = &spec.namespace_affinity {
        if !sel.matches(&req.namespace_labels) {
            return Some(Rejection::NamespaceAffinity);
        }
    }
    if let Some(sel) = &spec.pod_affinity {
        if is_auto_created(pool) {
            let app = app_labels(req);
            let ok = sel
                .match_labels
                .iter()
                .all(|(k, v)| app.get(k.as_str()) == Some(&v.as_str()));
            return (!ok).then_some(Rejection::OtherApplication);
        }
        if !sel.matches(&req.pod_labels) {
            return Some(Rejection::PodAffinity);
        }
    }
    if !spec.multus_name.is_empty() {
        let Some(attachment) = nic_attachment(req, nic, cfg) else {
            return Some(Rejection::MultusMismatch);
        };
        let listed = spec.multus_name.iter().any(|m| {
            let full = if m.contains('/') {
                m.clone()
            } else {
                format!("{}/{m}", cfg.agent_namespace)
            };
            full == attachment
        });
        if !listed {
            return Some(Rejection::MultusMismatch);
        }
    }
    None
}

/// The five application labels an auto pool's `podAffinity` matches against.
fn app_labels(req: &AllocateRequest) -> BTreeMap<&'static str, &str> {
    let mut out = BTreeMap::new();
    if let Some(o) = &req.owner {
        let (group, version) = match o.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", o.api_version.as_str()),
        };
        out.insert(LABEL_APP_API_GROUP, group);
        out.insert(LABEL_APP_API_VERSION, version);
        out.insert(LABEL_APP_KIND, o.kind.as_str());
        out.insert(LABEL_APP_NAMESPACE, req.pod.namespace.as_str());
        out.insert(LABEL_APP_NAME, o.name.as_str());
    }
    out
}

/// The Multus network attachment (`ns/name`) of `nic`: the first NIC's from the pod's
/// default-network annotation or the cluster network; the others' from
/// `k8s.v1.cni.cncf.io/networks` (interface names default to `net1`, `net2`, …).
fn nic_attachment(req: &AllocateRequest, nic: &str, cfg: &IpamConfig) -> Option<String> {
    let qualify = |s: &str, default_ns: &str| -> String {
        let s = s.split('@').next().unwrap_or(s).trim();
        if s.contains('/') {
            s.to_string()
        } else {
            format!("{default_ns}/{s}")
        }
    };
    if nic == DEFAULT_INTERFACE || nic == "0" {
        return req
            .pod_annotations
            .get(MULTUS_DEFAULT_NETWORK)
            .map(|s| qualify(s, &req.pod.namespace))
            .or_else(|| {
                cfg.cluster_network
                    .as_deref()
                    .map(|s| qualify(s, &cfg.agent_namespace))
            });
    }
    let raw = req.pod_annotations.get(MULTUS_NETWORKS)?;
    let entries: Vec<(String, Option<String>)> = match serde_json::from_str::<Value>(raw) {
        Ok(Value::Array(items)) => items
            .iter()
            .filter_map(|i| {
                let name = i.get("name")?.as_str()?;
                let ns = i
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(&req.pod.namespace);
                let iface = i
                    .get("interface")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                Some((format!("{ns}/{name}"), iface))
            })
            .collect(),
        _ => raw
            .split(',')
            .map(|e| {
                let e = e.trim();
                let (name, iface) = match e.split_once('@') {
                    Some((n, i)) => (n, Some(i.to_string())),
                    None => (e, None),
                };
                (qualify(name, &req.pod.namespace), iface)
            })
            .collect(),
    };
    entries
        .into_iter()
        .enumerate()
        .find(|(i, (_, iface))| iface.clone().unwrap_or_else(|| format!("net{}", i + 1)) == nic)
        .map(|(_, (name, _))| name)
}

/// Spiderpool's `ByPoolPriority`: pools with pod affinity first, then node name, node
/// affinity, namespace name, namespace affinity, Multus name.
fn priority(pool: &SpiderIPPool) -> [bool; 6] {
    let s = &pool.spec;
    [
        s.pod_affinity.is_none(),
        s.node_name.is_empty(),
        s.node_affinity.is_none(),
        s.namespace_name.is_empty(),
        s.namespace_affinity.is_none(),
        s.multus_name.is_empty(),
    ]
}
