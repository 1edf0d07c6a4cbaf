//! State-machine property test: random sequences of pool, reserved-IP and pod operations
//! against the in-memory store, checking after every step that no address is held twice,
//! counts equal records, endpoints and records agree, every new address is the lowest free
//! one of the first pool with room (never reserved, never excluded), released addresses are
//! reusable and stateful pods keep theirs.
//!
//! Cases: 10,000 by default (`PROPTEST_CASES` overrides).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use backend_memory::{Fault, MemoryStore};
use proptest::prelude::*;
use spiderpool_core::allocate::Outcome;
use spiderpool_core::ip::{IpFamily, IpSet};
use spiderpool_core::ipam::Ipam;
use spiderpool_core::model::{AddressSpec, Object, SpiderIPPool, SpiderReservedIP};
use spiderpool_core::request::{AllocateRequest, Owner};
use spiderpool_core::store::{Key, Store};
use spiderpool_core::validate::{validate_ippool_update, AdmissionConfig, Cluster};
use spiderpool_core::Error;
use spiderpool_testkit::check_invariants;
use spiderpool_testkit::fixtures::{add, block_on_ready, del, pool, reserved, statefulset};

const POOLS: u8 = 3;
const STATELESS: u8 = 5;
const STATEFUL: u8 = 4;

#[derive(Debug, Clone)]
enum Op {
    /// Resize pool `p` to `size` addresses (refused by admission if it drops an address in use).
    ResizePool { p: u8, size: u8 },
    /// Disable or enable pool `p`.
    DisablePool { p: u8, disable: bool },
    /// Delete pool `p` (its finalizer holds it while addresses are allocated: then nothing
    /// happens), or create it again (4 addresses) if it is gone.
    TogglePool { p: u8 },
    /// Create or replace reserved-IP object `r` with `len` addresses from `.start`.
    Reserve { r: u8, start: u8, len: u8 },
    /// Delete reserved-IP object `r`.
    Unreserve { r: u8 },
    /// ADD for stateless pod `k` (a repeat if it runs).
    AddStateless { k: u8 },
    /// Stateless pod `k` is re-created under the same name with a new uid, then ADD.
    RecreateStateless { k: u8 },
    /// Stateless pod `k` is deleted: DEL.
    DelStateless { k: u8 },
    /// ADD for StatefulSet pod `db-<k>` (ordinals below the replicas only).
    AddStateful { k: u8 },
    /// StatefulSet pod `db-<k>` restarts: DEL (kept), new uid, ADD: same address.
    RestartStateful { k: u8 },
    /// Scale the StatefulSet to `replicas`: DELs of the pods beyond free their addresses.
    ScaleStatefulSet { replicas: u8 },
    /// `n` injected conflicts on pools, then an ADD for stateless pod `k`: retried through.
    ConflictStorm { n: u8, k: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..POOLS, 1u8..=12).prop_map(|(p, size)| Op::ResizePool { p, size }),
        (0..POOLS, any::<bool>()).prop_map(|(p, disable)| Op::DisablePool { p, disable }),
        (0..POOLS).prop_map(|p| Op::TogglePool { p }),
        (0u8..2, 0u8..48, 1u8..4).prop_map(|(r, start, len)| Op::Reserve { r, start, len }),
        (0u8..2).prop_map(|r| Op::Unreserve { r }),
        (0..STATELESS).prop_map(|k| Op::AddStateless { k }),
        (0..STATELESS).prop_map(|k| Op::AddStateless { k }),
        (0..STATELESS).prop_map(|k| Op::RecreateStateless { k }),
        (0..STATELESS).prop_map(|k| Op::DelStateless { k }),
        (0..STATEFUL).prop_map(|k| Op::AddStateful { k }),
        (0..STATEFUL).prop_map(|k| Op::RestartStateful { k }),
        (0..=STATEFUL).prop_map(|replicas| Op::ScaleStatefulSet { replicas }),
        (1u8..5, 0..STATELESS).prop_map(|(n, k)| Op::ConflictStorm { n, k }),
    ]
}

/// Pool `p` holds `10.6.0.{16p+1}` up to `10.6.0.{16p+size}`: pools never overlap.
fn pool_spec(p: u8, size: u8, disable: bool) -> String {
    let first = u32::from(p) * 16 + 1;
    let last = first + u32::from(size) - 1;
    format!("subnet: 10.6.0.0/24\nips: [10.6.0.{first}-10.6.0.{last}]\ndefault: true\ndisable: {disable}")
}

#[derive(Default)]
struct World {
    /// Stateless pod k: (uid, address).
    stateless: BTreeMap<u8, (String, Option<String>)>,
    /// Stateful pod k: (uid, address).
    stateful: BTreeMap<u8, (String, Option<String>)>,
    replicas: u8,
    uids: u32,
}

impl World {
    fn uid(&mut self) -> String {
        self.uids += 1;
        format!("uid-{}", self.uids)
    }
}

fn owner(replicas: u8) -> Owner {
    statefulset("db", i64::from(replicas))
}

/// The address the engine must give next: the lowest free address of the first enabled pool
/// (by name) that has one, or `None`. `freed` is an address the same plan frees first.
fn expected_next(store: &MemoryStore, freed: Option<IpAddr>) -> Option<IpAddr> {
    let pools = pools(store);
    let reserved = reserved_now(store);
    pools.iter().filter(|p| !p.is_disabled()).find_map(|p| {
        let mut free = p.free_ips(&reserved).unwrap();
        if let Some(ip) = freed {
            if p.spec.total_ips().unwrap().contains(ip) && !reserved.contains(ip) {
                free.insert(ip);
            }
        }
        free.first()
    })
}

/// Every free, unreserved address of the enabled pools.
fn free_now(store: &MemoryStore) -> std::collections::BTreeSet<IpAddr> {
    let reserved = reserved_now(store);
    pools(store)
        .iter()
        .filter(|p| !p.is_disabled())
        .flat_map(|p| p.free_ips(&reserved).unwrap().iter().collect::<Vec<_>>())
        .collect()
}

fn pools(store: &MemoryStore) -> Vec<SpiderIPPool> {
    block_on_ready(store.list(SpiderIPPool::KIND))
        .unwrap()
        .into_iter()
        .filter_map(|s| match s.object {
            Object::IpPool(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn pools_exist(store: &MemoryStore) -> bool {
    !block_on_ready(store.list(SpiderIPPool::KIND))
        .unwrap()
        .is_empty()
}

fn reserved_now(store: &MemoryStore) -> IpSet {
    let all: Vec<SpiderReservedIP> = block_on_ready(store.list(SpiderReservedIP::KIND))
        .unwrap()
        .into_iter()
        .filter_map(|s| match s.object {
            Object::ReservedIp(r) => Some(r),
            _ => None,
        })
        .collect();
    SpiderReservedIP::reserved_set(&all, IpFamily::V4)
}

fn ip_of(got: &[spiderpool_core::model::IPAllocationDetail]) -> String {
    got[0]
        .ipv4
        .clone()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

/// An ADD whose outcome must be exactly what the model predicts.
fn checked_add(
    ipam: &Ipam<&MemoryStore>,
    store: &MemoryStore,
    req: &AllocateRequest,
    held: Option<&String>,
    freed: Option<IpAddr>,
    contended: bool,
) -> Result<Option<String>, TestCaseError> {
    if let Some(ip) = held {
        // Already holding: the same address comes back, whatever else changed.
        let got = block_on_ready(ipam.allocate(req))
            .map_err(|e| TestCaseError::fail(format!("re-ADD failed: {e}")))?;
        prop_assert_eq!(&ip_of(&got), ip);
        return Ok(Some(ip.clone()));
    }
    let expected = expected_next(store, freed);
    let free_before = free_now(store);
    let reserved = reserved_now(store);
    match (block_on_ready(ipam.allocate(req)), expected) {
        (Ok(got), Some(want)) => {
            let ip = ip_of(&got);
            let addr = ip.parse::<IpAddr>().unwrap();
            if contended {
                // After a conflict the retry spreads: any address that was free will do.
                prop_assert!(free_before.contains(&addr), "{addr} was not free");
            } else {
                prop_assert_eq!(addr, want, "not the lowest free address");
            }
            prop_assert!(!reserved.contains(want), "handed out a reserved address");
            Ok(Some(ip))
        }
        (Err(Error::NoIpAvailable { .. }), None) if pools_exist(store) => Ok(None),
        (Err(Error::NoPoolSelected { .. }), None) if !pools_exist(store) => Ok(None),
        (got, want) => Err(TestCaseError::fail(format!(
            "ADD gave {got:?}, expected {want:?}"
        ))),
    }
}

fn run(ops: &[Op], store: MemoryStore) -> Result<(), TestCaseError> {
    for p in 0..POOLS {
        block_on_ready(store.create(Object::IpPool(pool(
            &format!("pool-{p}"),
            &pool_spec(p, 4, false),
        ))))
        .unwrap();
    }
    let ipam = Ipam::new(&store);
    let mut w = World {
        replicas: STATEFUL,
        ..World::default()
    };
    let cfg = AdmissionConfig::default();
    for op in ops {
        match *op {
            Op::TogglePool { p } => {
                let name = format!("pool-{p}");
                match block_on_ready(store.get(&Key::pool(&name))).unwrap() {
                    Some(s) => {
                        let Object::IpPool(old) = &s.object else {
                            unreachable!()
                        };
                        if old.allocations().unwrap().is_empty() {
                            block_on_ready(store.delete(&Key::pool(&name), &s.revision)).unwrap();
                        }
                    }
                    None => {
                        let fresh = pool(&name, &pool_spec(p, 4, false));
                        block_on_ready(store.create(Object::IpPool(fresh))).unwrap();
                    }
                }
            }
            Op::ResizePool { p, size } => {
                let name = format!("pool-{p}");
                let Some(s) = block_on_ready(store.get(&Key::pool(&name))).unwrap() else {
                    continue;
                };
                let Object::IpPool(old) = s.object else {
                    unreachable!()
                };
                let mut new = old.clone();
                new.spec.ips = pool(&name, &pool_spec(p, size, false)).spec.ips;
                let all: Vec<SpiderIPPool> = Vec::new();
                let cluster = Cluster {
                    pools: &all,
                    subnets: &[],
                };
                if validate_ippool_update(&old, &new, &cluster, &cfg).is_ok() {
                    block_on_ready(store.update(Object::IpPool(new), &s.revision)).unwrap();
                } else {
                    // Refused only because an address in use would go.
                    let usable = new.spec.total_ips().unwrap();
                    let in_use = old.allocated_set().unwrap();
                    prop_assert!(
                        !in_use.is_subset(&usable),
                        "admission refused a harmless resize"
                    );
                }
            }
            Op::DisablePool { p, disable } => {
                let name = format!("pool-{p}");
                let Some(s) = block_on_ready(store.get(&Key::pool(&name))).unwrap() else {
                    continue;
                };
                let Object::IpPool(mut pool) = s.object else {
                    unreachable!()
                };
                pool.spec.disable = Some(disable);
                block_on_ready(store.update(Object::IpPool(pool), &s.revision)).unwrap();
            }
            Op::Reserve { r, start, len } => {
                let name = format!("r{r}");
                let range = format!("10.6.0.{}-10.6.0.{}", start, start + len - 1);
                let obj = Object::ReservedIp(reserved(&name, &[&range]));
                match block_on_ready(store.get(&Key::cluster(SpiderReservedIP::KIND, &name)))
                    .unwrap()
                {
                    Some(s) => block_on_ready(store.update(obj, &s.revision))
                        .map(|_| ())
                        .unwrap(),
                    None => block_on_ready(store.create(obj)).map(|_| ()).unwrap(),
                }
            }
            Op::Unreserve { r } => {
                let key = Key::cluster(SpiderReservedIP::KIND, &format!("r{r}"));
                if let Some(s) = block_on_ready(store.get(&key)).unwrap() {
                    block_on_ready(store.delete(&key, &s.revision)).unwrap();
                }
            }
            Op::AddStateless { k } | Op::ConflictStorm { k, .. } => {
                if let Op::ConflictStorm { n, .. } = *op {
                    store.inject(Fault::Conflicts {
                        kind: Some(SpiderIPPool::KIND.into()),
                        count: usize::from(n),
                    });
                }
                let (uid, held) = match w.stateless.get(&k) {
                    Some(e) => e.clone(),
                    None => (w.uid(), None),
                };
                let req = add("web", &format!("web-{k}"), &uid);
                let contended = matches!(op, Op::ConflictStorm { .. });
                let got = checked_add(&ipam, &store, &req, held.as_ref(), None, contended)?;
                w.stateless.insert(k, (uid, got));
                // A storm the ADD did not consume must not leak into the next steps.
                store.clear_faults();
            }
            Op::RecreateStateless { k } => {
                let uid = w.uid();
                let req = add("web", &format!("web-{k}"), &uid);
                // The plan frees the old pod's address before it picks the lowest free one.
                let freed = w
                    .stateless
                    .remove(&k)
                    .and_then(|(_, ip)| ip)
                    .map(|ip| ip.parse().unwrap());
                let got = checked_add(&ipam, &store, &req, None, freed, false)?;
                w.stateless.insert(k, (uid, got));
            }
            Op::DelStateless { k } => {
                if let Some((uid, held)) = w.stateless.remove(&k) {
                    let out = block_on_ready(ipam.release(&del("web", &format!("web-{k}"), &uid)))
                        .unwrap();
                    match (held, out) {
                        (Some(ip), Outcome::Released(freed)) => {
                            prop_assert_eq!(freed.len(), 1);
                            prop_assert_eq!(&freed[0].0, &ip);
                        }
                        (None, Outcome::Unchanged) => {}
                        (held, out) => {
                            return Err(TestCaseError::fail(format!(
                                "DEL of {held:?} gave {out:?}"
                            )))
                        }
                    }
                }
            }
            Op::AddStateful { k } => {
                if k >= w.replicas {
                    continue;
                }
                let (uid, held) = match w.stateful.get(&k) {
                    Some(e) => e.clone(),
                    None => (w.uid(), None),
                };
                let mut req = add("db", &format!("db-{k}"), &uid);
                req.owner = Some(owner(w.replicas));
                let got = checked_add(&ipam, &store, &req, held.as_ref(), None, false)?;
                w.stateful.insert(k, (uid, got));
            }
            Op::RestartStateful { k } => {
                let Some((uid, held)) = w.stateful.get(&k).cloned() else {
                    continue;
                };
                let mut rel = del("db", &format!("db-{k}"), &uid);
                rel.owner = Some(owner(w.replicas));
                prop_assert_eq!(
                    block_on_ready(ipam.release(&rel)).unwrap(),
                    Outcome::Unchanged
                );
                let new_uid = w.uid();
                let mut req = add("db", &format!("db-{k}"), &new_uid);
                req.owner = Some(owner(w.replicas));
                let got = checked_add(&ipam, &store, &req, held.as_ref(), None, false)?;
                w.stateful.insert(k, (new_uid, got));
            }
            Op::ScaleStatefulSet { replicas } => {
                w.replicas = replicas;
                let gone: Vec<u8> = w
                    .stateful
                    .keys()
                    .copied()
                    .filter(|k| *k >= replicas)
                    .collect();
                for k in gone {
                    let (uid, held) = w.stateful.remove(&k).unwrap();
                    let mut rel = del("db", &format!("db-{k}"), &uid);
                    rel.owner = Some(owner(replicas));
                    let out = block_on_ready(ipam.release(&rel)).unwrap();
                    match (held, out) {
                        (Some(ip), Outcome::Released(freed)) => prop_assert_eq!(&freed[0].0, &ip),
                        (None, Outcome::Unchanged) => {}
                        (held, out) => {
                            return Err(TestCaseError::fail(format!(
                                "scale-down DEL of {held:?} gave {out:?}"
                            )))
                        }
                    }
                }
            }
        }
        if let Err(errs) = block_on_ready(check_invariants(&store)) {
            return Err(TestCaseError::fail(format!(
                "after {op:?}: {}",
                errs.join("; ")
            )));
        }
        // Every address the model holds is recorded for the right pod.
        let held: Vec<&String> = w
            .stateless
            .values()
            .chain(w.stateful.values())
            .filter_map(|(_, ip)| ip.as_ref())
            .collect();
        let mut sorted = held.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), held.len(), "the model holds an address twice");
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn random_operation_sequences_keep_the_invariants(ops in prop::collection::vec(op(), 1..30)) {
        run(&ops, MemoryStore::new())?;
    }

    /// The same on a store that applies plans write by write, like the Kubernetes API.
    #[test]
    fn the_same_holds_write_by_write(ops in prop::collection::vec(op(), 1..30)) {
        run(&ops, MemoryStore::non_atomic())?;
    }
}
