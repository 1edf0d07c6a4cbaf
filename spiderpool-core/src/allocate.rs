//! The allocation path: from a request and the objects it concerns to a [`Plan`].
//!
//! [`plan_allocate`] and [`plan_release`] are pure: they read a [`Snapshot`] and return the
//! writes to make (each with the revision it was computed from) and the outcome. The driver
//! ([`crate::ipam`]) reads the snapshot, applies the plan and retries on conflict.
//!
//! Ownership:
//! - stateless pods (Deployment, ReplicaSet, Job, DaemonSet, bare pods, third-party
//!   controllers): a repeated ADD of the same pod uid returns what its SpiderEndpoint records;
//!   a new uid under the same name frees the old addresses and takes fresh ones; DEL frees.
//! - stateful pods (StatefulSet, KubeVirt VM): the SpiderEndpoint keeps the addresses across
//!   pod restarts (the pool records follow the new uid); DEL frees only when the ordinal is
//!   beyond the replicas or the owner is gone. If the pod's candidate pools for the NIC no
//!   longer include the recorded pool, the NIC moves to a new address from the new pools.
//!
//! Write order makes every prefix of a plan safe on stores without transactions: pool records
//! first (they name the pod uid, so a retry finds and reuses them, and GC can free them), the
//! SpiderEndpoint last.

mod by_key;
mod encoded;
mod held;
mod index;
mod records;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use index::Pending;
pub use index::{Change, Held, Parked, PoolIndex, PoolIndexes};

use crate::annotations::{
    PodAnnotations, ANNO_ENDPOINT_CONTAINER_ID, ANNO_ENDPOINT_NETWORK, DEFAULT_INTERFACE,
};
use crate::ip::{IpFamily, IpSet};
use crate::model::{
    IPAllocationDetail, Object, ObjectMeta, OwnerReference, PoolIPAllocation, Route,
    SpiderEndpoint, SpiderIPPool, SpiderReservedIP, FINALIZER,
};
use crate::request::{AllocateRequest, IpamConfig, ReleaseRequest};
use crate::select::{candidates_in, PoolCatalog, Rejection};
use crate::store::{Key, Revision, Write};
use crate::Error;

/// The objects a decision reads: every pool (selection looks at defaults, wildcards and auto
/// pools), every reserved IP, and the pod's SpiderEndpoint if it exists.
///
/// The snapshot builds, on first use, a [`PoolCatalog`] of its pools (by name, defaults per
/// family) so that a decision looks up only the pools it names. After changing `pools`, call
/// [`Snapshot::pools_changed`].
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every SpiderIPPool with its revision.
    pub pools: Vec<(SpiderIPPool, Revision)>,
    /// Every SpiderReservedIP.
    pub reserved: Vec<SpiderReservedIP>,
    /// The pod's SpiderEndpoint, if any, with its revision.
    pub endpoint: Option<(SpiderEndpoint, Revision)>,
    /// How many times this decision has been retried after a conflict ([`crate::ipam`] sets
    /// it). 0 takes the lowest free address, as Spiderpool does; a retry takes a free address
    /// a little further ([`spread`]), so that allocators that met on the lowest one spread out.
    pub attempt: u32,
    /// Addresses that commits of this process now on their way add, by pool, sorted
    /// ([`crate::store::Store::in_flight`]; the driver sets them): a new allocation leaves
    /// them to those commits unless nothing else is free.
    pub in_flight: BTreeMap<String, Vec<IpAddr>>,
    catalog: OnceLock<PoolCatalog>,
}

/// How many free addresses a new allocation skips: none on the first try; on retry `attempt`
/// a number from the pod uid, the NIC and the attempt below a window that doubles with each
/// retry (64, 128, … 2048), so that concurrent allocators of one pool pick different
/// addresses with high probability and never all the same one.
pub fn spread(attempt: u32, uid: &str, nic: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    if attempt == 0 {
        return 0;
    }
    let window = 64u64 << (attempt - 1).min(5);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (uid, nic, attempt).hash(&mut h);
    h.finish() % window
}

impl Snapshot {
    /// The catalog of `pools`, built on first use. Users of it check that it still covers
    /// `pools` ([`PoolCatalog::covers`]) and verify names, so a forgotten
    /// [`Snapshot::pools_changed`] after adding or removing pools costs a rebuild, not a wrong
    /// answer.
    pub fn catalog(&self) -> &PoolCatalog {
        self.catalog
            .get_or_init(|| PoolCatalog::new(&self.pools[..]))
    }

    /// Forgets the catalog after `pools` changed.
    pub fn pools_changed(&mut self) {
        self.catalog = OnceLock::new();
    }

    /// The pool named `name`, with its revision.
    pub fn pool(&self, name: &str) -> Option<&(SpiderIPPool, Revision)> {
        match self
            .catalog()
            .position(name)
            .and_then(|i| self.pools.get(i))
        {
            Some(found) if found.0.metadata.name == name => Some(found),
            _ => self.pools.iter().find(|(p, _)| p.metadata.name == name),
        }
    }
}

/// A decision: writes to apply in order, and what the caller gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Writes, each with the revision it was computed from; pools first, endpoint last.
    pub writes: Vec<Write>,
    /// The outcome.
    pub outcome: Outcome,
}

/// What a plan gives the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The pod's addresses, one entry per NIC (all NICs of the endpoint).
    Allocated(Vec<IPAllocationDetail>),
    /// Addresses freed (bare IP strings with their pool).
    Released(Vec<(String, String)>),
    /// Nothing to do (unknown pod, a stateful pod that keeps its addresses, …).
    Unchanged,
}

/// The name of the pod's SpiderEndpoint (the VM's name for KubeVirt).
pub fn endpoint_name(
    pod_name: &str,
    owner: Option<&crate::request::Owner>,
    cfg: &IpamConfig,
) -> String {
    match owner {
        Some(o) if cfg.enable_kubevirt_static_ip && o.is_kubevirt_vmi() => o.name.clone(),
        _ => pod_name.to_string(),
    }
}

fn is_stateful(owner: Option<&crate::request::Owner>, cfg: &IpamConfig) -> bool {
    owner.is_some_and(|o| {
        (cfg.enable_statefulset && o.is_statefulset())
            || (cfg.enable_kubevirt_static_ip && o.is_kubevirt_vmi())
    })
}

/// A pool being worked on during planning: its index, checked out of the cache, and the
/// changes the plan made to it.
struct PoolWork<'a> {
    pool: &'a SpiderIPPool,
    revision: Revision,
    p: Pending,
}

impl PoolWork<'_> {
    fn index(&self) -> &PoolIndex {
        &self.p.index
    }

    fn dirty(&self) -> bool {
        !self.p.journal.is_empty()
    }

    fn insert(&mut self, ip: IpAddr, record: PoolIPAllocation) {
        let old = self.p.index.set(ip, Some(Held::new(Arc::new(record))));
        self.p.journal.push((ip, old));
    }

    /// Frees the record whose key is exactly `ip`.
    fn remove(&mut self, ip: &str) {
        if let Some((addr, _)) = self.p.index.get_key(ip) {
            self.p.index.release(addr, &mut self.p.journal);
        }
    }
}

/// An address taken for a NIC: the address, the pool's prefix length, the pool's gateway.
type Taken = (IpAddr, u8, Option<String>);

/// The working state of one plan.
struct Planner<'a> {
    snap: &'a Snapshot,
    cfg: &'a IpamConfig,
    cache: &'a mut PoolIndexes,
    work: BTreeMap<String, PoolWork<'a>>,
    reserved: [IpSet; 2],
}

impl<'a> Planner<'a> {
    fn new(snap: &'a Snapshot, cfg: &'a IpamConfig, cache: &'a mut PoolIndexes) -> Self {
        Planner {
            snap,
            cfg,
            cache,
            work: BTreeMap::new(),
            reserved: [
                SpiderReservedIP::reserved_set(&snap.reserved, IpFamily::V4),
                SpiderReservedIP::reserved_set(&snap.reserved, IpFamily::V6),
            ],
        }
    }

    fn pool(&mut self, name: &str) -> Result<Option<&mut PoolWork<'a>>, Error> {
        if !self.work.contains_key(name) {
            let snap: &'a Snapshot = self.snap;
            let Some((pool, rev)) = snap.pool(name) else {
                return Ok(None);
            };
            let p = self.cache.checkout(pool)?;
            self.work.insert(
                name.to_string(),
                PoolWork {
                    pool,
                    revision: rev.clone(),
                    p,
                },
            );
        }
        Ok(self.work.get_mut(name))
    }

    fn reserved(&self, family: IpFamily) -> &IpSet {
        match family {
            IpFamily::V4 => &self.reserved[0],
            IpFamily::V6 => &self.reserved[1],
        }
    }

    /// Takes one address of `pool` for the pod's NIC: its existing record if it has one,
    /// else the lowest free address. `Err(rejection)` when the pool has nothing to give.
    fn take(
        &mut self,
        pool_name: &str,
        uid: &str,
        record_pod: &str,
        nic: &str,
        reuse_by_name: bool,
    ) -> Result<Result<Taken, Rejection>, Error> {
        let max = self.cfg.max_records_per_pool;
        if self.pool(pool_name)?.is_none() {
            return Ok(Err(Rejection::Corrupt {
                reason: "not found".into(),
            }));
        }
        let skip = spread(self.snap.attempt, uid, nic);
        let Planner {
            work,
            reserved,
            snap,
            ..
        } = self;
        let Some(w) = work.get_mut(pool_name) else {
            return Ok(Err(Rejection::Corrupt {
                reason: "not found".into(),
            }));
        };
        let prefix = w.index().prefix();
        let gateway = w.pool.spec.gateway.clone();
        let by_name = reuse_by_name.then_some(record_pod);
        if by_name.is_some() {
            w.p.index.index_pod_names();
        }
        if let Some((addr, held)) = w.index().find_held(uid, by_name, nic) {
            if held.pod_uid() != uid || held.interface().is_none() {
                w.insert(addr, record(record_pod, uid, nic));
            }
            return Ok(Ok((addr, prefix, gateway)));
        }
        if let Some(max) = max {
            if w.index().len() >= max {
                return Ok(Err(Rejection::TooManyRecords { max }));
            }
        }
        let reserved = match w.index().family() {
            IpFamily::V4 => &reserved[0],
            IpFamily::V6 => &reserved[1],
        };
        let rec = Arc::new(record(record_pod, uid, nic));
        let in_flight = snap.in_flight.get(pool_name).map_or(&[][..], Vec::as_slice);
        Ok(w.p
            .index
            .allocate_avoiding(rec, reserved, skip, in_flight, &mut w.p.journal)
            .map(|ip| (ip, prefix, gateway)))
    }

    /// Drops the records of `uid` (and, for a stateful pod, of `record_pod`) for `ip` in
    /// `pool`; returns whether something was freed.
    fn free(
        &mut self,
        pool_name: &str,
        ip: &str,
        uid: &str,
        record_pod: Option<&str>,
    ) -> Result<bool, Error> {
        let Some(w) = self.pool(pool_name)? else {
            return Ok(false);
        };
        let matches = w
            .index()
            .get_key(ip)
            .is_some_and(|(_, h)| h.pod_uid() == uid || record_pod.is_some_and(|p| h.pod() == p));
        if matches {
            w.remove(ip);
        }
        Ok(matches)
    }

    /// The keys of the records of pod uid `uid` and pod `record_pod` in `pool`, in key order,
    /// without decoding pools that cannot hold one: a pool whose `status.allocatedIPs` text
    /// does not contain the uid is skipped. `None` when the pool's records cannot be read
    /// (such pools are skipped, as before the index existed).
    fn records_of(
        &mut self,
        pool: &SpiderIPPool,
        uid: &str,
        record_pod: &str,
    ) -> Result<Option<Vec<String>>, Error> {
        let name = pool.metadata.name.as_str();
        let plain = !uid.chars().any(|c| c == '"' || c == '\\' || c.is_control());
        let may_hold = self.work.contains_key(name)
            || self.cache.peek(pool).is_some()
            || !plain
            || pool
                .status
                .allocated_ips
                .as_deref()
                .is_some_and(|t| t.contains(uid));
        if !may_hold {
            return Ok(Some(Vec::new()));
        }
        let w = match self.pool(name) {
            Ok(Some(w)) => w,
            Ok(None) => return Ok(Some(Vec::new())),
            Err(e) => {
                return if pool.allocations().is_err() {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        };
        let index = w.index();
        let mut keys: Vec<String> = index
            .held_by_uid(uid)
            .iter()
            .filter(|a| {
                index
                    .get(**a)
                    .is_some_and(|h| h.pod_uid() == uid && h.pod() == record_pod)
            })
            .map(|a| index.key_of(*a))
            .collect();
        keys.sort();
        Ok(Some(keys))
    }

    /// The pool writes, in pool-name order.
    fn pool_writes(&mut self) -> Result<Vec<Write>, Error> {
        let mut out = Vec::new();
        for w in self.work.values_mut() {
            if !w.dirty() {
                continue;
            }
            let mut pool = w.pool.clone_without_allocations();
            // Never write a pool whose records could not be encoded: that would drop them.
            let encoded =
                w.p.index
                    .encode_next()
                    .ok_or_else(|| Error::CorruptStatus {
                        kind: SpiderIPPool::KIND.to_string(),
                        name: pool.metadata.name.clone(),
                        field: "status.allocatedIPs".to_string(),
                        reason: "the records cannot be encoded".to_string(),
                    })?;
            pool.status.allocated_ips = encoded.status();
            w.p.encoded = Some(encoded);
            pool.status.allocated_ip_count =
                Some(i64::try_from(w.p.index.len()).unwrap_or(i64::MAX));
            out.push(Write::Update {
                object: Object::IpPool(pool),
                expected: w.revision.clone(),
            });
        }
        Ok(out)
    }

    /// Ends the plan: with `Some(plan)` the indexes wait in the cache for
    /// [`PoolIndexes::settle`]; on an error they go back unchanged.
    fn finish(self, plan: Result<Plan, Error>) -> Result<Plan, Error> {
        let pending: Vec<Pending> = self.work.into_values().map(|w| w.p).collect();
        match &plan {
            Ok(_) => self.cache.park(pending),
            Err(_) => self.cache.check_in(pending, false),
        }
        plan
    }
}

fn record(pod: &str, uid: &str, nic: &str) -> PoolIPAllocation {
    PoolIPAllocation {
        pod: pod.to_string(),
        pod_uid: uid.to_string(),
        interface: Some(nic.to_string()),
        extra: Default::default(),
    }
}

/// The addresses an endpoint entry holds: (family, ip string, pool).
fn entry_ips(d: &IPAllocationDetail) -> Vec<(IpFamily, String, String)> {
    let mut out = Vec::new();
    for (family, addr, pool) in [
        (IpFamily::V4, &d.ipv4, &d.ipv4_pool),
        (IpFamily::V6, &d.ipv6, &d.ipv6_pool),
    ] {
        if let (Some(addr), Some(pool)) = (addr, pool) {
            let ip = addr.split('/').next().unwrap_or(addr).to_string();
            out.push((family, ip, pool.clone()));
        }
    }
    out
}

/// Decides a CNI ADD.
pub fn plan_allocate(
    req: &AllocateRequest,
    snap: &Snapshot,
    cfg: &IpamConfig,
) -> Result<Plan, Error> {
    plan_allocate_cached(req, snap, cfg, &mut PoolIndexes::new(0))
}

/// [`plan_allocate`] reading pool indexes from `cache` (decoding only pools it does not hold
/// as of the snapshot's content). The indexes the plan changed wait in the cache until the
/// caller says whether the plan was committed: [`PoolIndexes::settle`].
pub fn plan_allocate_cached(
    req: &AllocateRequest,
    snap: &Snapshot,
    cfg: &IpamConfig,
    cache: &mut PoolIndexes,
) -> Result<Plan, Error> {
    let mut planner = Planner::new(snap, cfg, cache);
    let plan = allocate_with(&mut planner, req, snap, cfg);
    planner.finish(plan)
}

fn allocate_with<'a>(
    planner: &mut Planner<'a>,
    req: &AllocateRequest,
    snap: &'a Snapshot,
    cfg: &IpamConfig,
) -> Result<Plan, Error> {
    let owner = req.owner.as_ref();
    let ep_name = endpoint_name(&req.pod.name, owner, cfg);
    let record_pod = format!("{}/{}", req.pod.namespace, ep_name);
    let stateful = is_stateful(owner, cfg);
    let uid = req.pod.uid.as_str();
    let pools = &snap.pools[..];
    let catalog = snap.catalog();
    let mut kept: Vec<IPAllocationDetail> = Vec::new();
    let mut endpoint_changed = false;
    if let Some((ep, _)) = &snap.endpoint {
        let same_pod = ep.status.current.uid == uid;
        if stateful {
            // Drop NICs whose recorded pools are no longer candidates for the NIC being
            // configured; keep the rest, following the new uid.
            let current = candidates_in(req, pools, catalog, cfg)?;
            let wanted: Vec<&str> = current
                .iter()
                .filter(|n| n.nic == req.ifname)
                .flat_map(|n| n.families.iter())
                .flat_map(|f| {
                    f.pools
                        .iter()
                        .map(String::as_str)
                        .chain(f.rejected.iter().map(|(p, _)| p.as_str()))
                })
                .collect();
            for d in &ep.status.current.ips {
                let outdated = d.nic == req.ifname
                    && entry_ips(d)
                        .iter()
                        .any(|(_, _, pool)| !wanted.contains(&pool.as_str()));
                if outdated {
                    for (_, ip, pool) in entry_ips(d) {
                        planner.free(&pool, &ip, &ep.status.current.uid, Some(&record_pod))?;
                    }
                    endpoint_changed = true;
                    continue;
                }
                // Set when a lost record cannot be taken back: the NIC then gets new addresses.
                let mut gone = false;
                for (family, ip, pool) in entry_ips(d) {
                    let reserved = ip
                        .parse::<IpAddr>()
                        .is_ok_and(|a| planner.reserved(family).contains(a));
                    if let Some(w) = planner.pool(&pool)? {
                        let held = w.index().get_key(&ip).map(|(_, h)| h.record());
                        if let Some(r) = held {
                            if r.pod != record_pod {
                                return Err(Error::CorruptStatus {
                                    kind: SpiderIPPool::KIND.into(),
                                    name: pool.clone(),
                                    field: "status.allocatedIPs".into(),
                                    reason: format!(
                                        "data broken: {ip} is recorded for {} but endpoint {record_pod} holds it",
                                        r.pod
                                    ),
                                });
                            }
                            if r.pod_uid != uid {
                                let addr: IpAddr =
                                    ip.parse().map_err(|_| Error::CorruptStatus {
                                        kind: SpiderIPPool::KIND.into(),
                                        name: pool.clone(),
                                        field: "status.allocatedIPs".into(),
                                        reason: format!("record key {ip:?} is not an IP address"),
                                    })?;
                                w.insert(addr, record(&record_pod, uid, &d.nic));
                            }
                        } else if let Ok(addr) = ip.parse::<IpAddr>() {
                            // The record was lost (e.g. freed by hand): take it back if it
                            // is still free, usable and not reserved; otherwise give it up.
                            let index = w.index();
                            if index.get(addr).is_none()
                                && index.usable().contains(addr)
                                && !reserved
                            {
                                w.insert(addr, record(&record_pod, uid, &d.nic));
                            } else {
                                gone = true;
                            }
                        }
                    }
                }
                if gone {
                    for (_, ip, pool) in entry_ips(d) {
                        planner.free(&pool, &ip, uid, Some(&record_pod))?;
                    }
                    endpoint_changed = true;
                    continue;
                }
                kept.push(d.clone());
            }
            if !same_pod || ep.status.current.node != req.node {
                endpoint_changed = true;
            }
        } else if same_pod {
            kept = ep.status.current.ips.clone();
        } else {
            // A new pod under the same name: free what the old one held.
            for d in &ep.status.current.ips {
                for (_, ip, pool) in entry_ips(d) {
                    planner.free(&pool, &ip, &ep.status.current.uid, None)?;
                }
            }
            endpoint_changed = true;
        }
    }

    let has_nic = |nic: &str, kept: &[IPAllocationDetail]| kept.iter().any(|d| d.nic == nic);
    let attachment_changed = snap.endpoint.as_ref().is_some_and(|(ep, _)| {
        let a = &ep.metadata.annotations;
        a.get(ANNO_ENDPOINT_CONTAINER_ID).map(String::as_str) != Some(req.container_id.as_str())
            || a.get(ANNO_ENDPOINT_NETWORK).map(String::as_str) != Some(req.network.as_str())
    });
    if has_nic(&req.ifname, &kept)
        && !endpoint_changed
        && !attachment_changed
        && planner.work.values().all(|w| !w.dirty())
    {
        return Ok(Plan {
            writes: Vec::new(),
            outcome: Outcome::Allocated(kept),
        });
    }

    let mut fresh: Vec<IPAllocationDetail> = Vec::new();
    if !has_nic(&req.ifname, &kept) {
        let annotations = PodAnnotations::parse(&req.pod_annotations)?;
        for nic in candidates_in(req, pools, catalog, cfg)? {
            if has_nic(&nic.nic, &kept) {
                continue;
            }
            let mut detail = IPAllocationDetail {
                nic: nic.nic.clone(),
                vlan: Some(0),
                clean_gateway: Some(nic.clean_gateway),
                ..IPAllocationDetail::default()
            };
            let mut subnets: Vec<ipnet::IpNet> = Vec::new();
            for fam in &nic.families {
                let mut tried: Vec<(String, Rejection)> = Vec::new();
                let mut got = None;
                for pool in &fam.pools {
                    match planner.take(pool, uid, &record_pod, &nic.nic, stateful)? {
                        Ok(taken) => {
                            got = Some((pool.clone(), taken));
                            break;
                        }
                        Err(why) => tried.push((pool.clone(), why)),
                    }
                }
                let Some((pool, (ip, prefix, gateway))) = got else {
                    tried.extend(fam.rejected.iter().cloned());
                    return Err(Error::NoIpAvailable {
                        pod: req.pod.namespaced_name(),
                        nic: nic.nic.clone(),
                        family: fam.family,
                        candidates: tried,
                    });
                };
                let net = ipnet::IpNet::new(ip, prefix).map(|n| n.trunc());
                if let Ok(net) = net {
                    subnets.push(net);
                }
                let routes = planner
                    .work
                    .get(&pool)
                    .map(|w| crate::model::AddressSpec::routes(&w.pool.spec).to_vec())
                    .unwrap_or_default();
                detail.routes.extend(routes);
                let address = Some(format!("{ip}/{prefix}"));
                match fam.family {
                    IpFamily::V4 => {
                        detail.ipv4 = address;
                        detail.ipv4_pool = Some(pool);
                        detail.ipv4_gateway = gateway;
                    }
                    IpFamily::V6 => {
                        detail.ipv6 = address;
                        detail.ipv6_pool = Some(pool);
                        detail.ipv6_gateway = gateway;
                    }
                }
            }
            // Custom routes go to the NIC whose subnet holds their gateway.
            for r in &annotations.routes {
                if let Ok(gw) = r.gw.parse::<IpAddr>() {
                    if subnets.iter().any(|n| n.contains(&gw)) {
                        detail.routes.push(Route::new(&r.dst, &r.gw));
                    }
                }
            }
            fresh.push(detail);
        }
    }

    let mut ips = kept;
    ips.extend(fresh);
    let mut writes = planner.pool_writes()?;
    let endpoint = build_endpoint(req, snap, &ep_name, stateful, ips.clone());
    writes.push(match &snap.endpoint {
        Some((_, rev)) => Write::Update {
            object: Object::Endpoint(endpoint),
            expected: rev.clone(),
        },
        None => Write::Create(Object::Endpoint(endpoint)),
    });
    Ok(Plan {
        writes,
        outcome: Outcome::Allocated(ips),
    })
}

fn build_endpoint(
    req: &AllocateRequest,
    snap: &Snapshot,
    ep_name: &str,
    stateful: bool,
    ips: Vec<IPAllocationDetail>,
) -> SpiderEndpoint {
    let mut ep = match &snap.endpoint {
        Some((ep, _)) => ep.clone(),
        None => SpiderEndpoint::new(&req.pod.namespace, ep_name),
    };
    if !ep.metadata.finalizers.iter().any(|f| f == FINALIZER) {
        ep.metadata.finalizers.push(FINALIZER.to_string());
    }
    // Stateless endpoints belong to their pod (Kubernetes deletes them with it); stateful
    // ones outlive pods.
    ep.metadata.owner_references.retain(|o| o.kind != "Pod");
    if !stateful {
        ep.metadata.owner_references.push(OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: req.pod.name.clone(),
            uid: req.pod.uid.clone(),
            controller: None,
            block_owner_deletion: None,
            extra: Default::default(),
        });
    }
    ep.metadata.annotations.insert(
        ANNO_ENDPOINT_CONTAINER_ID.to_string(),
        req.container_id.clone(),
    );
    ep.metadata
        .annotations
        .insert(ANNO_ENDPOINT_NETWORK.to_string(), req.network.clone());
    ep.status.current.uid = req.pod.uid.clone();
    ep.status.current.node = req.node.clone();
    ep.status.current.ips = ips;
    let (kind, name) = match &req.owner {
        Some(o) if o.is_kubevirt_vmi() => ("KubevirtVMI".to_string(), o.name.clone()),
        Some(o) => (o.kind.clone(), o.name.clone()),
        None => ("Pod".to_string(), req.pod.name.clone()),
    };
    ep.status.owner_controller_type = kind;
    ep.status.owner_controller_name = name;
    ep.metadata = ObjectMeta {
        namespace: Some(req.pod.namespace.clone()),
        ..ep.metadata
    };
    ep
}

/// Decides a CNI DEL (or a garbage-collection release).
pub fn plan_release(
    req: &ReleaseRequest,
    snap: &Snapshot,
    cfg: &IpamConfig,
) -> Result<Plan, Error> {
    plan_release_cached(req, snap, cfg, &mut PoolIndexes::new(0))
}

/// [`plan_release`] with pool indexes from `cache`; see [`plan_allocate_cached`].
pub fn plan_release_cached(
    req: &ReleaseRequest,
    snap: &Snapshot,
    cfg: &IpamConfig,
    cache: &mut PoolIndexes,
) -> Result<Plan, Error> {
    let mut planner = Planner::new(snap, cfg, cache);
    let plan = release_with(&mut planner, req, snap, cfg);
    planner.finish(plan)
}

fn release_with<'a>(
    planner: &mut Planner<'a>,
    req: &ReleaseRequest,
    snap: &'a Snapshot,
    cfg: &IpamConfig,
) -> Result<Plan, Error> {
    let unchanged = Ok(Plan {
        writes: Vec::new(),
        outcome: Outcome::Unchanged,
    });
    let uid = req.pod.uid.as_str();
    if uid.is_empty() {
        return unchanged;
    }
    let owner = req.owner.as_ref();
    let stateful = is_stateful(owner, cfg);
    if stateful && owner.is_some_and(|o| o.keeps_stateful_pod(&req.pod.name)) {
        return unchanged;
    }
    if !stateful && req.pod_alive {
        return unchanged;
    }
    let ep_name = endpoint_name(&req.pod.name, owner, cfg);
    let record_pod = format!("{}/{}", req.pod.namespace, ep_name);
    let mut released = Vec::new();
    let mut delete_endpoint = None;
    if let Some((ep, rev)) = &snap.endpoint {
        let ours = ep.status.current.uid == uid || stateful;
        if ours {
            let holder = ep.status.current.uid.clone();
            for d in &ep.status.current.ips {
                for (_, ip, pool) in entry_ips(d) {
                    let by_name = stateful.then_some(record_pod.as_str());
                    if planner.free(&pool, &ip, &holder, by_name)? {
                        released.push((ip, pool));
                    }
                }
            }
            delete_endpoint = Some(Write::Delete {
                key: Key::endpoint(&req.pod.namespace, &ep_name),
                expected: rev.clone(),
            });
        }
    }
    // Records of this pod uid that no endpoint names (a crash between the pool write and the
    // endpoint write) are freed too.
    for (pool, _) in &snap.pools {
        let name = pool.metadata.name.clone();
        let Some(stray) = planner.records_of(pool, uid, &record_pod)? else {
            continue;
        };
        for ip in stray {
            if planner.free(&name, &ip, uid, None)? {
                released.push((ip, name.clone()));
            }
        }
    }
    let mut writes = planner.pool_writes()?;
    writes.extend(delete_endpoint);
    if writes.is_empty() {
        return unchanged;
    }
    released.sort();
    released.dedup();
    Ok(Plan {
        writes,
        outcome: Outcome::Released(released),
    })
}

/// The message of [`Error::NoIpAvailable`]: Spiderpool's wording first (`all IP addresses
/// used out` when every eligible pool is exhausted, `no IPPool available` when none is
/// eligible), then each pool and its reason.
pub(crate) fn no_ip_message(
    pod: &str,
    nic: &str,
    family: IpFamily,
    candidates: &[(String, Rejection)],
) -> String {
    let eligible: Vec<&(String, Rejection)> = candidates
        .iter()
        .filter(|(_, r)| r.is_exhaustion())
        .collect();
    let head = if !eligible.is_empty() && eligible.len() == candidates.len() {
        "all IP addresses used out".to_string()
    } else if eligible.is_empty() {
        format!("no IPPool available, all {family} IPPools of {nic} filtered out")
    } else {
        "all IP addresses used out".to_string()
    };
    let detail: Vec<String> = candidates
        .iter()
        .map(|(pool, why)| format!("IPPool {pool}: {why}"))
        .collect();
    format!(
        "{head}: failed to allocate any {family} IP address to NIC {nic} of pod {pod}; {}",
        if detail.is_empty() {
            "no candidate IPPool".to_string()
        } else {
            detail.join("; ")
        }
    )
}

/// The default interface name, for callers building requests.
pub const DEFAULT_NIC: &str = DEFAULT_INTERFACE;

/// What a failed allocation leaves behind, freed: records of `req`'s pod uid that its
/// SpiderEndpoint does not list (a plan partly applied on a store without transactions), and,
/// for a stateless pod, the endpoint and addresses of an older pod of the same name (its uid
/// changed, so it is gone). Used by the driver when an allocation finally fails, so that
/// retries leak nothing and a re-created pod's old address is not held while it waits.
pub fn plan_cleanup_after_failure(
    req: &AllocateRequest,
    snap: &Snapshot,
    cfg: &IpamConfig,
) -> Result<Plan, Error> {
    plan_cleanup_after_failure_cached(req, snap, cfg, &mut PoolIndexes::new(0))
}

/// [`plan_cleanup_after_failure`] with pool indexes from `cache`; see
/// [`plan_allocate_cached`].
pub fn plan_cleanup_after_failure_cached(
    req: &AllocateRequest,
    snap: &Snapshot,
    cfg: &IpamConfig,
    cache: &mut PoolIndexes,
) -> Result<Plan, Error> {
    let mut planner = Planner::new(snap, cfg, cache);
    let plan = cleanup_with(&mut planner, req, snap, cfg);
    planner.finish(plan)
}

fn cleanup_with<'a>(
    planner: &mut Planner<'a>,
    req: &AllocateRequest,
    snap: &'a Snapshot,
    cfg: &IpamConfig,
) -> Result<Plan, Error> {
    let uid = req.pod.uid.as_str();
    let ep_name = endpoint_name(&req.pod.name, req.owner.as_ref(), cfg);
    let record_pod = format!("{}/{}", req.pod.namespace, ep_name);
    let mut released = Vec::new();
    let mut delete_endpoint = None;
    let mut listed: Vec<(String, String)> = Vec::new();
    if let Some((ep, rev)) = &snap.endpoint {
        let stale = ep.status.current.uid != uid && !is_stateful(req.owner.as_ref(), cfg);
        for d in &ep.status.current.ips {
            for (_, ip, pool) in entry_ips(d) {
                if stale && planner.free(&pool, &ip, &ep.status.current.uid, None)? {
                    released.push((ip.clone(), pool.clone()));
                }
                listed.push((pool, ip));
            }
        }
        if stale {
            listed.clear();
            delete_endpoint = Some(Write::Delete {
                key: Key::endpoint(&req.pod.namespace, &ep_name),
                expected: rev.clone(),
            });
        }
    }
    for (pool, _) in &snap.pools {
        let name = &pool.metadata.name;
        let Some(records) = planner.records_of(pool, uid, &record_pod)? else {
            continue;
        };
        for ip in &records {
            let unlisted = !listed.contains(&(name.clone(), ip.clone()));
            if unlisted && planner.free(name, ip, uid, None)? {
                released.push((ip.clone(), name.clone()));
            }
        }
    }
    let mut writes = planner.pool_writes()?;
    writes.extend(delete_endpoint);
    let outcome = if writes.is_empty() {
        Outcome::Unchanged
    } else {
        Outcome::Released(released)
    };
    Ok(Plan { writes, outcome })
}
