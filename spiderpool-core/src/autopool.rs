//! Auto-created pools: a SpiderSubnet carves a pool per application, NIC and family.
//!
//! [`plan_auto_pools`] is the controller's decision for one application: from its pod-template
//! annotations (`ipam.spidernet.io/subnet(s)`, `ippool-ip-number`, `ippool-reclaim`), its
//! replica count and the current subnets, pools and reserved IPs, the writes that create, grow
//! or shrink its pools and keep the subnets' `status.controlledIPPools` exact.
//! [`plan_reclaim`] is the decision when the application is deleted.
//!
//! Sizes: `N` is exactly N addresses; `+N` is replicas + N; absent is `+default` (1 unless
//! configured). Growth takes the subnet's lowest free addresses (not in any pool of the subnet,
//! not reserved); shrinking gives back the pool's lowest unallocated addresses and never an
//! allocated one. Third-party controllers (kinds Kubernetes does not define) need a fixed `N`.

use std::collections::BTreeMap;

use crate::annotations::{
    IpNumber, NicSubnets, PodAnnotations, ANNO_IPPOOL_IP_NUMBER, DEFAULT_INTERFACE,
    LABEL_APP_API_GROUP, LABEL_APP_API_VERSION, LABEL_APP_KIND, LABEL_APP_NAME,
    LABEL_APP_NAMESPACE, LABEL_INTERFACE, LABEL_IPPOOL_CIDR, LABEL_IPPOOL_RECLAIM,
    LABEL_IP_VERSION, LABEL_OWNER_APPLICATION_GV, LABEL_OWNER_APPLICATION_KIND,
    LABEL_OWNER_APPLICATION_NAME, LABEL_OWNER_APPLICATION_NAMESPACE, LABEL_OWNER_APPLICATION_UID,
    LABEL_OWNER_SPIDER_SUBNET,
};
use crate::ip::{cidr_to_label_value, parse_ip_ranges, IpFamily, IpSet};
use crate::model::{
    AddressSpec, IPPoolSpec, LabelSelector, Object, OwnerReference, PoolIPPreAllocation,
    SpiderIPPool, SpiderReservedIP, SpiderSubnet, API_VERSION, FINALIZER,
};
use crate::store::{Key, Revision, Write};
use crate::Error;

/// An application (the top controller of pods) as auto-pools see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Application {
    /// `apps/v1`, `batch/v1`, `apps.kruise.io/v1alpha1`, …
    pub api_version: String,
    /// `Deployment`, `StatefulSet`, `CloneSet`, …
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
    /// The replica count when the kind is known (`None` for third-party controllers).
    pub replicas: Option<u64>,
    /// Pod-template annotations.
    pub annotations: BTreeMap<String, String>,
}

impl Application {
    /// Whether Kubernetes itself defines the kind (Deployment, ReplicaSet, StatefulSet,
    /// DaemonSet, Job, CronJob).
    pub fn is_builtin(&self) -> bool {
        matches!(
            (self.api_version.as_str(), self.kind.as_str()),
            (
                "apps/v1",
                "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
            ) | ("batch/v1", "Job" | "CronJob")
        )
    }

    /// Spiderpool's application key, `<group>_<version>_<Kind>_<ns>_<name>` (no group for the
    /// core API), as `status.controlledIPPools` records it.
    pub fn key(&self) -> String {
        match self.api_version.split_once('/') {
            Some((g, v)) => format!("{g}_{v}_{}_{}_{}", self.kind, self.namespace, self.name),
            None => format!(
                "{}_{}_{}_{}",
                self.api_version, self.kind, self.namespace, self.name
            ),
        }
    }
}

/// Cluster settings for auto-pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoPoolConfig {
    /// `+N` when `ippool-ip-number` is absent (`clusterSubnetDefaultFlexibleIPNumber`; 1).
    pub default_flexible_ip_number: u64,
    /// The cluster default IPv4 subnet, used when a workload gives only `ippool-ip-number`.
    pub default_ipv4_subnet: Option<String>,
    /// The cluster default IPv6 subnet.
    pub default_ipv6_subnet: Option<String>,
}

impl Default for AutoPoolConfig {
    fn default() -> Self {
        AutoPoolConfig {
            default_flexible_ip_number: 1,
            default_ipv4_subnet: None,
            default_ipv6_subnet: None,
        }
    }
}

/// What an application's pod template asks of auto-pools: per NIC, the subnet per family,
/// the size and the reclaim flag. `None` when it uses no subnet (the normal pool chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoPoolIntent {
    /// NICs and their subnets.
    pub nics: Vec<NicSubnets>,
    /// The size rule, as written (or the default).
    pub ip_number: IpNumber,
    /// Delete the pools with the application.
    pub reclaim: bool,
}

/// Reads the intent of `app`'s annotations.
pub fn intent(app: &Application, cfg: &AutoPoolConfig) -> Result<Option<AutoPoolIntent>, Error> {
    let a = PodAnnotations::parse(&app.annotations)?;
    let nics = match (a.subnets, a.subnet) {
        (Some(items), _) => items,
        (None, Some(item)) => vec![item],
        (None, None) if a.ip_number.is_some() => {
            // Only a size: the cluster default subnets, if configured.
            let item = NicSubnets {
                interface: DEFAULT_INTERFACE.to_string(),
                ipv4: cfg.default_ipv4_subnet.iter().cloned().collect(),
                ipv6: cfg.default_ipv6_subnet.iter().cloned().collect(),
            };
            if item.ipv4.is_empty() && item.ipv6.is_empty() {
                return Ok(None);
            }
            vec![item]
        }
        (None, None) => return Ok(None),
    };
    let ip_number = match (a.ip_number, app.is_builtin()) {
        (Some(n @ IpNumber::Fixed(_)), _) => n,
        (Some(n @ IpNumber::Flexible(_)), true) => n,
        (None, true) => IpNumber::Flexible(cfg.default_flexible_ip_number),
        (Some(IpNumber::Flexible(n)), false) => {
            return Err(auto_error(app, format!(
                "'+{n}' in {ANNO_IPPOOL_IP_NUMBER} needs the replica count, which a third-party controller does not expose; use a fixed number such as \"{n}\""
            )))
        }
        (None, false) => {
            return Err(auto_error(app, format!(
                "{}/{}/{} only supports fixed auto-created IPPool IP Number: set {ANNO_IPPOOL_IP_NUMBER}",
                app.kind, app.namespace, app.name
            )))
        }
    };
    Ok(Some(AutoPoolIntent {
        nics,
        ip_number,
        reclaim: a.reclaim.unwrap_or(true),
    }))
}

fn auto_error(app: &Application, reason: String) -> Error {
    Error::AutoPool {
        pod: format!("{}/{}", app.namespace, app.name),
        reason,
    }
}

/// Spiderpool's auto-pool name: `auto4-<app>-<nic>-<first 5 of the uid's last segment>`.
pub fn auto_pool_name(app_name: &str, family: IpFamily, nic: &str, uid: &str) -> String {
    let last = uid.rsplit('-').next().unwrap_or(uid);
    let suffix: String = last.chars().take(5).collect();
    // "auto4" and three dashes are 8 characters; Spiderpool counts 7 and can produce a name
    // of 254 characters, which Kubernetes refuses. We keep names within 253.
    let max = 253usize.saturating_sub(suffix.len() + 8);
    let mut name = app_name.to_string();
    if name.len() + nic.len() > max {
        name.truncate(max.saturating_sub(nic.len()));
    }
    format!(
        "auto{}-{}-{}-{}",
        family.version(),
        name.to_lowercase(),
        nic.to_lowercase(),
        suffix.to_lowercase()
    )
}

/// The pool of `app` for `nic` and `family`: by its labels, or (with reclaim off) a pool of the
/// same application kind, namespace and name left by an earlier incarnation.
fn find_pool<'a>(
    pools: &'a [(SpiderIPPool, Revision)],
    app: &Application,
    nic: &str,
    family: IpFamily,
) -> Option<&'a (SpiderIPPool, Revision)> {
    let l = |p: &SpiderIPPool, k: &str| p.metadata.labels.get(k).cloned().unwrap_or_default();
    let same_slot =
        |p: &SpiderIPPool| l(p, LABEL_INTERFACE) == nic && l(p, LABEL_IP_VERSION) == family.label();
    pools
        .iter()
        .find(|(p, _)| same_slot(p) && l(p, LABEL_OWNER_APPLICATION_UID) == app.uid)
        .or_else(|| {
            pools.iter().find(|(p, _)| {
                same_slot(p)
                    && l(p, LABEL_IPPOOL_RECLAIM) == "false"
                    && l(p, LABEL_OWNER_APPLICATION_KIND) == app.kind
                    && l(p, LABEL_OWNER_APPLICATION_NAMESPACE) == app.namespace
                    && l(p, LABEL_OWNER_APPLICATION_NAME) == app.name
            })
        })
}

/// The addresses of the subnet no pool may take: those of every pool of its CIDR (by
/// `controlledIPPools` and by `spec.subnet`), plus the reserved ones.
fn taken_in_subnet(
    subnet: &SpiderSubnet,
    pools: &[(SpiderIPPool, Revision)],
    reserved: &[SpiderReservedIP],
    family: IpFamily,
) -> Result<IpSet, Error> {
    let mut taken = SpiderReservedIP::reserved_set(reserved, family);
    for pre in subnet.controlled_pools()?.values() {
        let ranges = parse_ip_ranges(family, &pre.ips)?;
        taken = taken.union(&IpSet::from_ranges(family, None, &ranges));
    }
    for (p, _) in pools {
        if p.spec.subnet == subnet.spec.subnet {
            taken = taken.union(&p.spec.total_ips()?);
        }
    }
    Ok(taken)
}

/// The writes that bring `app`'s auto-pools to their desired size (subnet status first, then
/// the pool). Empty when nothing changes or the application uses no subnet.
pub fn plan_auto_pools(
    app: &Application,
    subnets: &[(SpiderSubnet, Revision)],
    pools: &[(SpiderIPPool, Revision)],
    reserved: &[SpiderReservedIP],
    cfg: &AutoPoolConfig,
) -> Result<Vec<Write>, Error> {
    let Some(intent) = intent(app, cfg)? else {
        return Ok(Vec::new());
    };
    let desired = intent.ip_number.size(app.replicas.unwrap_or(0));
    let mut subnet_updates: BTreeMap<String, (SpiderSubnet, Revision)> = BTreeMap::new();
    let mut pool_writes = Vec::new();
    for nic in &intent.nics {
        for family in IpFamily::ALL {
            let Some(subnet_name) = nic.subnet(family) else {
                continue;
            };
            let (subnet, srev) = match subnet_updates.get(subnet_name) {
                Some(s) => s.clone(),
                None => subnets
                    .iter()
                    .find(|(s, _)| s.metadata.name == subnet_name)
                    .cloned()
                    .ok_or_else(|| {
                        auto_error(app, format!("SpiderSubnet {subnet_name} not found"))
                    })?,
            };
            if subnet.spec.family()? != family {
                return Err(auto_error(
                    app,
                    format!("SpiderSubnet {subnet_name} is not an {family} subnet"),
                ));
            }
            let existing = find_pool(pools, app, &nic.interface, family);
            if let Some((p, _)) = existing {
                if p.spec.subnet != subnet.spec.subnet {
                    return Err(auto_error(app, format!(
                        "auto-created IPPool {} belongs to subnet {}, not to SpiderSubnet {subnet_name}; an auto-created pool cannot move",
                        p.metadata.name, p.spec.subnet
                    )));
                }
            }
            let name = existing
                .map(|(p, _)| p.metadata.name.clone())
                .unwrap_or_else(|| auto_pool_name(&app.name, family, &nic.interface, &app.uid));
            let current = match existing {
                Some((p, _)) => p.spec.total_ips()?,
                None => IpSet::for_subnet(&subnet.spec.subnet_net()?),
            };
            let count = current.len().to_u128().unwrap_or(u128::MAX);
            let want = u128::from(desired);
            let new_ips = if count < want {
                let need = want - count;
                let free = subnet
                    .spec
                    .total_ips()?
                    .difference(&taken_in_subnet(&subnet, pools, reserved, family)?);
                let available = free.len().to_u128().unwrap_or(u128::MAX);
                if available < need {
                    return Err(auto_error(app, format!(
                        "insufficient subnet FreeIPs, required '{need}' but only left '{available}' in SpiderSubnet {subnet_name}"
                    )));
                }
                let picked = take_lowest(&free, need);
                current.union(&picked)
            } else if count > want {
                let (pool, _) = existing.ok_or_else(|| auto_error(app, "pool vanished".into()))?;
                let unallocated = current.difference(&pool.allocated_set()?);
                let give_back = count - want;
                if unallocated.len().to_u128().unwrap_or(u128::MAX) < give_back {
                    return Err(auto_error(app, format!(
                        "failed to scale down IPPool {name} IPs: IPPool available free IPs are not enough"
                    )));
                }
                current.difference(&take_lowest(&unallocated, give_back))
            } else {
                current.clone()
            };
            let labels_now = pool_labels(app, &subnet, &nic.interface, family, intent.reclaim);
            let ip_number = intent.ip_number.to_string();
            match existing {
                Some((p, rev)) => {
                    let mut p = p.clone();
                    let mut changed = new_ips != current;
                    if changed {
                        p.spec.ips = new_ips.to_range_strings();
                    }
                    for (k, v) in &labels_now {
                        if p.metadata.labels.get(k) != Some(v) {
                            p.metadata.labels.insert(k.clone(), v.clone());
                            changed = true;
                        }
                    }
                    if p.metadata.annotations.get(ANNO_IPPOOL_IP_NUMBER) != Some(&ip_number) {
                        p.metadata
                            .annotations
                            .insert(ANNO_IPPOOL_IP_NUMBER.into(), ip_number.clone());
                        changed = true;
                    }
                    if p.spec.pod_affinity.as_ref() != Some(&app_affinity(app)) {
                        p.spec.pod_affinity = Some(app_affinity(app));
                        changed = true;
                    }
                    if changed {
                        p.refresh_status()?;
                        pool_writes.push(Write::Update {
                            object: Object::IpPool(p),
                            expected: rev.clone(),
                        });
                    }
                }
                None => {
                    let mut p = SpiderIPPool::new(
                        &name,
                        IPPoolSpec {
                            ip_version: Some(family.version()),
                            subnet: subnet.spec.subnet.clone(),
                            ips: new_ips.to_range_strings(),
                            gateway: subnet.spec.gateway.clone(),
                            routes: subnet.spec.routes.clone(),
                            pod_affinity: Some(app_affinity(app)),
                            default: Some(false),
                            disable: Some(false),
                            ..IPPoolSpec::default()
                        },
                    );
                    p.metadata.labels = labels_now;
                    p.metadata
                        .annotations
                        .insert(ANNO_IPPOOL_IP_NUMBER.into(), ip_number);
                    p.metadata.finalizers.push(FINALIZER.into());
                    p.metadata.owner_references.push(OwnerReference {
                        api_version: API_VERSION.into(),
                        kind: SpiderSubnet::KIND.into(),
                        name: subnet.metadata.name.clone(),
                        uid: subnet.metadata.uid.clone().unwrap_or_default(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                        extra: Default::default(),
                    });
                    p.refresh_status()?;
                    pool_writes.push(Write::Create(Object::IpPool(p)));
                }
            }
            // The subnet records what it handed out, before the pool shows it.
            let mut subnet = subnet;
            let mut controlled = subnet.controlled_pools()?;
            let entry = PoolIPPreAllocation {
                ips: new_ips.to_range_strings(),
                application: Some(app.key()),
                extra: Default::default(),
            };
            if controlled.get(&name) != Some(&entry) {
                controlled.insert(name.clone(), entry);
                subnet.set_controlled_pools(&controlled);
                refresh_subnet_counts(&mut subnet)?;
                subnet_updates.insert(subnet_name.to_string(), (subnet, srev));
            }
        }
    }
    let mut writes: Vec<Write> = subnet_updates
        .into_values()
        .map(|(s, rev)| Write::Update {
            object: Object::Subnet(s),
            expected: rev,
        })
        .collect();
    writes.extend(pool_writes);
    Ok(writes)
}

/// The applications whose auto-pools are to be reclaimed: the uids recorded on auto-pools
/// (label `owner-application-uid`) of a built-in kind that are not in `live`. Pools of
/// third-party kinds are never reclaimed automatically, as in Spiderpool.
pub fn gone_applications(
    pools: &[(SpiderIPPool, Revision)],
    live: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    let mut gone: Vec<String> = pools
        .iter()
        .filter_map(|(p, _)| {
            let l = &p.metadata.labels;
            let uid = l.get(LABEL_OWNER_APPLICATION_UID)?;
            let kind = l.get(LABEL_OWNER_APPLICATION_KIND)?;
            let builtin = crate::request::BUILTIN_WORKLOADS
                .iter()
                .any(|(_, k)| k == kind);
            (builtin && !live.contains(uid)).then(|| uid.clone())
        })
        .collect();
    gone.sort();
    gone.dedup();
    gone
}

/// When `app` is deleted: its auto-pools with reclaim on and no allocation left are deleted
/// and their addresses return to the subnet. Pools still holding addresses are kept until a
/// later reconcile (their pods' releases come first).
pub fn plan_reclaim(
    app_uid: &str,
    subnets: &[(SpiderSubnet, Revision)],
    pools: &[(SpiderIPPool, Revision)],
) -> Result<Vec<Write>, Error> {
    let mut subnet_updates: BTreeMap<String, (SpiderSubnet, Revision)> = BTreeMap::new();
    let mut deletes = Vec::new();
    for (p, rev) in pools {
        let l = &p.metadata.labels;
        if l.get(LABEL_OWNER_APPLICATION_UID).map(String::as_str) != Some(app_uid)
            || l.get(LABEL_IPPOOL_RECLAIM).map(String::as_str) != Some("true")
            || !p.allocations()?.is_empty()
        {
            continue;
        }
        deletes.push(Write::Delete {
            key: Key::pool(&p.metadata.name),
            expected: rev.clone(),
        });
        let Some(owner) = l.get(LABEL_OWNER_SPIDER_SUBNET) else {
            continue;
        };
        let entry = match subnet_updates.remove(owner) {
            Some(e) => Some(e),
            None => subnets
                .iter()
                .find(|(s, _)| &s.metadata.name == owner)
                .cloned(),
        };
        if let Some((mut s, srev)) = entry {
            let mut controlled = s.controlled_pools()?;
            controlled.remove(&p.metadata.name);
            s.set_controlled_pools(&controlled);
            refresh_subnet_counts(&mut s)?;
            subnet_updates.insert(owner.clone(), (s, srev));
        }
    }
    let mut writes = deletes;
    writes.extend(subnet_updates.into_values().map(|(s, rev)| Write::Update {
        object: Object::Subnet(s),
        expected: rev,
    }));
    Ok(writes)
}

/// `totalIPCount` and `allocatedIPCount` (addresses handed to pools) of a subnet from its
/// spec and `controlledIPPools`.
pub fn refresh_subnet_counts(subnet: &mut SpiderSubnet) -> Result<(), Error> {
    let family = subnet.spec.family()?;
    let mut handed = IpSet::new(family);
    for pre in subnet.controlled_pools()?.values() {
        handed = handed.union(&IpSet::from_ranges(
            family,
            None,
            &parse_ip_ranges(family, &pre.ips)?,
        ));
    }
    subnet.status.total_ip_count = Some(subnet.spec.total_ips()?.len().to_i64_saturating());
    subnet.status.allocated_ip_count = Some(handed.len().to_i64_saturating());
    Ok(())
}

/// The lowest `n` addresses of `set`.
fn take_lowest(set: &IpSet, n: u128) -> IpSet {
    let mut out = IpSet::new(set.family());
    let mut left = n;
    for r in set.runs() {
        if left == 0 {
            break;
        }
        let (s, e) = r.interval();
        let len = e - s + 1;
        let take = len.min(left);
        if let Some(end) = set.family().addr(s + take - 1) {
            if let Some(part) = crate::ip::IpRange::new(r.start(), end) {
                out.insert_range(&part);
            }
        }
        left -= take;
    }
    out
}

fn pool_labels(
    app: &Application,
    subnet: &SpiderSubnet,
    nic: &str,
    family: IpFamily,
    reclaim: bool,
) -> BTreeMap<String, String> {
    let gv = match app.api_version.split_once('/') {
        Some((g, v)) => format!("{g}_{v}"),
        None => app.api_version.clone(),
    };
    [
        (LABEL_OWNER_SPIDER_SUBNET, subnet.metadata.name.clone()),
        (LABEL_OWNER_APPLICATION_GV, gv),
        (LABEL_OWNER_APPLICATION_KIND, app.kind.clone()),
        (LABEL_OWNER_APPLICATION_NAMESPACE, app.namespace.clone()),
        (LABEL_OWNER_APPLICATION_NAME, app.name.clone()),
        (LABEL_OWNER_APPLICATION_UID, app.uid.clone()),
        (LABEL_INTERFACE, nic.to_string()),
        (LABEL_IP_VERSION, family.label().to_string()),
        (LABEL_IPPOOL_RECLAIM, reclaim.to_string()),
        (LABEL_IPPOOL_CIDR, cidr_to_label_value(&subnet.spec.subnet)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The `podAffinity` that keeps an auto-pool to its application's pods.
fn app_affinity(app: &Application) -> LabelSelector {
    let (group, version) = match app.api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), app.api_version.clone()),
    };
    LabelSelector {
        match_labels: [
            (LABEL_APP_API_GROUP, group),
            (LABEL_APP_API_VERSION, version),
            (LABEL_APP_KIND, app.kind.clone()),
            (LABEL_APP_NAMESPACE, app.namespace.clone()),
            (LABEL_APP_NAME, app.name.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        ..LabelSelector::default()
    }
}
