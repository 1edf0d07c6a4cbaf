//! `state_machine`: sequences of allocations, releases and restarts decoded with `arbitrary`,
//! driving `spiderpool_core::ipam::Ipam` over `backend_memory::MemoryStore` or
//! `backend_memory::LocalStore` (in a private temporary directory).
//!
//! Two engines share the store (for the local store: two `LocalStore` instances on one
//! directory, as two plugin processes are), so that each engine's cached pool state must
//! notice the other's writes. "Restart" drops the engines (and, for the local store, reopens
//! the directory) and checks that every object reads back unchanged. The memory store also
//! takes injected conflicts and outages, the pools are resized through admission and
//! addresses reserved under running pods.
//!
//! Checked after every step: `spiderpool_testkit::check_invariants` (no address held twice,
//! counts equal records, records within their pool, endpoints and records agree); a repeated
//! ADD of a running pod returns its addresses; a StatefulSet pod restarted with a new uid gets
//! its addresses back when nothing reserved or removed them meanwhile; a stateless pod's DEL
//! leaves no record of it; an ADD fails only for lack of addresses or an injected fault.

use std::collections::BTreeMap;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use backend_memory::{Fault, LocalStore, MemoryStore};
use spiderpool_core::ipam::Ipam;
use spiderpool_core::model::{IPAllocationDetail, Object, SpiderIPPool};
use spiderpool_core::request::{AllocateRequest, ReleaseRequest};
use spiderpool_core::store::{Key, Store, Stored};
use spiderpool_core::validate::{validate_ippool_update, AdmissionConfig, Cluster};
use spiderpool_core::Error;
use spiderpool_testkit::check_invariants;
use spiderpool_testkit::fixtures::{add, block_on_ready, pool, reserved, statefulset};

const STATELESS: u8 = 6;
const STATEFUL: u8 = 4;
const KINDS: [&str; 4] = [
    "SpiderIPPool",
    "SpiderSubnet",
    "SpiderReservedIP",
    "SpiderEndpoint",
];

#[derive(Debug, Arbitrary)]
struct Input {
    local: bool,
    /// Size of the default IPv4 pool `pool-a` (1 to 8 addresses from `10.6.0.1`).
    size: u8,
    /// A default IPv6 pool too: pods get one address of each family.
    dual_stack: bool,
    ops: Vec<Op>,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Op {
    /// ADD for stateless pod `k` (a repeat when it runs), through engine `e`; `pool_b`: the
    /// pod names `pool-b` in its `ipam.spidernet.io/ippool` annotation.
    Add { k: u8, e: bool, pool_b: bool },
    /// The stateless pod is deleted (DEL), or its sandbox restarts (`alive`: keeps its address).
    Del { k: u8, e: bool, alive: bool },
    /// The stateless pod is re-created under its name with a new uid (no DEL for the old one).
    Recreate { k: u8 },
    /// ADD for StatefulSet pod `db-<k>` (only ordinals below the replicas run).
    AddStateful { k: u8, e: bool },
    /// The StatefulSet pod restarts: DEL (kept), a new uid, then ADD.
    RestartStateful { k: u8, e: bool },
    /// Scale the StatefulSet; the pods beyond are deleted (DEL frees their addresses).
    Scale { replicas: u8 },
    /// Resize `pool-a` through admission (refused when it would drop an allocated address).
    Resize { size: u8 },
    /// Reserve `10.6.0.<start>` and the `len - 1` next (0: no reservation).
    Reserve { start: u8, len: u8 },
    /// Drop the engines (and reopen the local store); every object must read back unchanged.
    Restart,
    /// Memory store: the next `n` (1..=4) pool updates conflict, then an ADD for pod `k`.
    Conflicts { n: u8, k: u8 },
    /// Memory store: the next operation fails as unavailable, then an ADD for pod `k`.
    Outage { k: u8 },
}

/// Addresses a pod holds, and the epoch they were given in.
type Held = (Vec<IPAllocationDetail>, u32);

enum Backend {
    Memory(Arc<MemoryStore>),
    Local(tempfile::TempDir),
}

struct World {
    backend: Backend,
    /// What the checks read through (for the local store: a third instance, reading afresh).
    store: Arc<dyn Store>,
    engines: [Ipam<Arc<dyn Store>>; 2],
    /// Stateless pod k: uid and addresses held.
    stateless: BTreeMap<u8, (String, Option<Vec<IPAllocationDetail>>)>,
    /// Stateful ordinal: uid, addresses, and the epoch they were given in.
    stateful: BTreeMap<u8, (String, Option<Held>)>,
    replicas: u8,
    uids: u32,
    /// Incremented whenever reserved addresses or the pool's range change.
    epoch: u32,
}

fn local_store(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(LocalStore::open(dir).unwrap())
}

impl World {
    fn new(local: bool) -> World {
        let (backend, store, engines): (Backend, Arc<dyn Store>, [Arc<dyn Store>; 2]) = if local {
            let dir = crate::util::tempdir();
            let path = dir.path().join("store");
            let s = local_store(&path);
            let engines = [local_store(&path), local_store(&path)];
            (Backend::Local(dir), s, engines)
        } else {
            let m = Arc::new(MemoryStore::new());
            let s: Arc<dyn Store> = m.clone();
            (Backend::Memory(m), s.clone(), [s.clone(), s])
        };
        let [a, b] = engines;
        World {
            backend,
            store,
            engines: [Ipam::new(a), Ipam::new(b)],
            stateless: BTreeMap::new(),
            stateful: BTreeMap::new(),
            replicas: STATEFUL,
            uids: 0,
            epoch: 0,
        }
    }

    fn uid(&mut self) -> String {
        self.uids += 1;
        format!("uid-{}", self.uids)
    }

    fn engine(&self, e: bool) -> &Ipam<Arc<dyn Store>> {
        &self.engines[usize::from(e)]
    }

    fn memory(&self) -> Option<&MemoryStore> {
        match &self.backend {
            Backend::Memory(m) => Some(m),
            Backend::Local(_) => None,
        }
    }

    fn restart(&mut self) {
        let before = self.everything();
        let (store, a, b): (Arc<dyn Store>, Arc<dyn Store>, Arc<dyn Store>) = match &self.backend {
            Backend::Memory(m) => (m.clone(), m.clone(), m.clone()),
            Backend::Local(dir) => {
                let path = dir.path().join("store");
                (local_store(&path), local_store(&path), local_store(&path))
            }
        };
        self.store = store;
        self.engines = [Ipam::new(a), Ipam::new(b)];
        assert_eq!(
            self.everything(),
            before,
            "objects changed across a restart"
        );
    }

    fn everything(&self) -> Vec<Stored> {
        KINDS
            .iter()
            .flat_map(|k| {
                block_on_ready(self.store.list(k)).unwrap_or_else(|e| panic!("list {k}: {e}"))
            })
            .collect()
    }

    fn pool_a(&self) -> (SpiderIPPool, Stored) {
        let stored = block_on_ready(self.store.get(&Key::pool("pool-a")))
            .unwrap()
            .expect("pool-a exists");
        match &stored.object {
            Object::IpPool(p) => (p.clone(), stored.clone()),
            _ => unreachable!("a pool"),
        }
    }

    fn check(&self, after: &str) {
        if let Err(errs) = block_on_ready(check_invariants(&*self.store)) {
            panic!("after {after}: invariants broken: {errs:#?}");
        }
    }

    /// No record anywhere holds `uid`.
    fn check_released(&self, uid: &str, after: &str) {
        for s in block_on_ready(self.store.list(SpiderIPPool::KIND)).unwrap() {
            if let Object::IpPool(p) = s.object {
                for (ip, r) in p.allocations().unwrap() {
                    assert_ne!(
                        r.pod_uid, uid,
                        "after {after}: {ip} of {} still held",
                        p.metadata.name
                    );
                }
            }
        }
    }
}

fn stateless_req(k: u8, uid: &str, pool_b: bool) -> AllocateRequest {
    let mut req = add("default", &format!("web-{k}"), uid);
    if pool_b {
        req.pod_annotations.insert(
            "ipam.spidernet.io/ippool".into(),
            r#"{"ipv4":["pool-b"]}"#.into(),
        );
    }
    req
}

fn stateful_req(k: u8, uid: &str, replicas: u8) -> AllocateRequest {
    AllocateRequest {
        owner: Some(statefulset("db", i64::from(replicas))),
        ..add("default", &format!("db-{k}"), uid)
    }
}

/// An ADD's error must be one the situation explains.
fn expected_failure(e: &Error, faults: bool) {
    match e {
        Error::NoIpAvailable { .. } | Error::NoPoolSelected { .. } => {}
        Error::Conflict { .. } | Error::Unavailable { .. } if faults => {}
        other => panic!("unexpected ADD failure: {other}"),
    }
}

fn pool_a_spec(size: u8) -> String {
    format!(
        "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.{}]\ngateway: 10.6.0.254\ndefault: true",
        size.clamp(1, 8)
    )
}

/// The `state_machine` target.
pub fn state_machine(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut w = World::new(input.local);
    let setup: Vec<Object> = [
        Some(Object::IpPool(pool(
            "pool-a",
            &pool_a_spec(input.size % 8 + 1),
        ))),
        Some(Object::IpPool(pool(
            "pool-b",
            "subnet: 10.6.1.0/24\nips: [10.6.1.1-10.6.1.3]",
        ))),
        input.dual_stack.then(|| {
            Object::IpPool(pool(
                "pool-c",
                "subnet: fd00::/120\nips: ['fd00::1-fd00::6']\ndefault: true",
            ))
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    for o in setup {
        block_on_ready(w.store.create(o)).unwrap();
    }
    for (step, op) in input.ops.iter().take(40).enumerate() {
        apply(&mut w, *op);
        w.check(&format!("step {step}: {op:?}"));
    }
}

fn apply(w: &mut World, op: Op) {
    match op {
        Op::Add { k, e, pool_b } => add_stateless(w, k % STATELESS, e, pool_b, false),
        Op::Del { k, e, alive } => {
            let k = k % STATELESS;
            let Some((uid, _)) = w.stateless.get(&k).cloned() else {
                return;
            };
            let req = ReleaseRequest {
                pod_alive: alive,
                ..spiderpool_testkit::fixtures::del("default", &format!("web-{k}"), &uid)
            };
            block_on_ready(w.engine(e).release(&req))
                .unwrap_or_else(|err| panic!("DEL of web-{k} failed: {err}"));
            if !alive {
                w.stateless.remove(&k);
                w.check_released(&uid, "DEL");
            }
        }
        Op::Recreate { k } => {
            let k = k % STATELESS;
            if w.stateless.contains_key(&k) {
                let uid = w.uid();
                w.stateless.insert(k, (uid, None));
                add_stateless(w, k, false, false, false);
            }
        }
        Op::AddStateful { k, e } => add_stateful(w, k % STATEFUL, e),
        Op::RestartStateful { k, e } => {
            let k = k % STATEFUL;
            if k >= w.replicas {
                return;
            }
            if let Some((uid, _)) = w.stateful.get(&k).cloned() {
                let req = ReleaseRequest {
                    owner: Some(statefulset("db", i64::from(w.replicas))),
                    ..spiderpool_testkit::fixtures::del("default", &format!("db-{k}"), &uid)
                };
                block_on_ready(w.engine(e).release(&req))
                    .unwrap_or_else(|err| panic!("DEL of db-{k} failed: {err}"));
                let uid = w.uid();
                w.stateful.get_mut(&k).unwrap().0 = uid;
            }
            add_stateful(w, k, !e);
        }
        Op::Scale { replicas } => {
            let replicas = replicas % (STATEFUL + 1);
            w.replicas = replicas;
            let gone: Vec<u8> = w.stateful.range(replicas..).map(|(k, _)| *k).collect();
            for k in gone {
                let (uid, _) = w.stateful.remove(&k).unwrap();
                let req = ReleaseRequest {
                    owner: Some(statefulset("db", i64::from(replicas))),
                    ..spiderpool_testkit::fixtures::del("default", &format!("db-{k}"), &uid)
                };
                block_on_ready(w.engine(false).release(&req))
                    .unwrap_or_else(|err| panic!("DEL of db-{k} after scaling failed: {err}"));
                w.check_released(&uid, "scale-down DEL");
            }
        }
        Op::Resize { size } => {
            let (old, stored) = w.pool_a();
            let mut new = old.clone();
            new.spec.ips = vec![format!("10.6.0.1-10.6.0.{}", size.clamp(1, 8))];
            let pools = [old.clone()];
            let cluster = Cluster {
                pools: &pools,
                subnets: &[],
            };
            if validate_ippool_update(&old, &new, &cluster, &AdmissionConfig::default()).is_ok() {
                block_on_ready(w.store.update(Object::IpPool(new), &stored.revision))
                    .unwrap_or_else(|e| panic!("resize: {e}"));
                w.epoch += 1;
            }
        }
        Op::Reserve { start, len } => {
            let key = Key::cluster("SpiderReservedIP", "reserved");
            let current = block_on_ready(w.store.get(&key)).unwrap();
            let len = len % 4;
            if len == 0 {
                if let Some(s) = current {
                    block_on_ready(w.store.delete(&key, &s.revision)).unwrap();
                }
            } else {
                let first = u32::from(start % 10) + 1;
                let ips = format!("10.6.0.{first}-10.6.0.{}", first + u32::from(len) - 1);
                let r = Object::ReservedIp(reserved("reserved", &[&ips]));
                match current {
                    Some(s) => block_on_ready(w.store.update(r, &s.revision)).map(|_| ()),
                    None => block_on_ready(w.store.create(r)).map(|_| ()),
                }
                .unwrap_or_else(|e| panic!("reserve: {e}"));
            }
            w.epoch += 1;
        }
        Op::Restart => w.restart(),
        Op::Conflicts { n, k } => {
            let Some(m) = w.memory() else { return };
            m.inject(Fault::Conflicts {
                kind: Some(SpiderIPPool::KIND.into()),
                count: usize::from(n % 4 + 1),
            });
            add_stateless(w, k % STATELESS, false, false, true);
            if let Some(m) = w.memory() {
                m.clear_faults();
            }
        }
        Op::Outage { k } => {
            let Some(m) = w.memory() else { return };
            m.inject(Fault::Unavailable { count: 1 });
            add_stateless(w, k % STATELESS, true, false, true);
            if let Some(m) = w.memory() {
                m.clear_faults();
            }
        }
    }
}

fn add_stateless(w: &mut World, k: u8, e: bool, pool_b: bool, faults: bool) {
    let (uid, held) = match w.stateless.get(&k) {
        Some(x) => x.clone(),
        None => {
            let uid = w.uid();
            (uid, None)
        }
    };
    let req = stateless_req(k, &uid, pool_b);
    match block_on_ready(w.engine(e).allocate(&req)) {
        Ok(got) => {
            if let Some(held) = &held {
                assert_eq!(
                    &got, held,
                    "a repeated ADD of web-{k} changed its addresses"
                );
            }
            w.stateless.insert(k, (uid, Some(got)));
        }
        Err(err) => {
            if held.is_some() && !faults {
                panic!("a repeated ADD of web-{k} failed: {err}");
            }
            expected_failure(&err, faults);
            w.stateless.insert(k, (uid, held));
        }
    }
}

fn add_stateful(w: &mut World, k: u8, e: bool) {
    if k >= w.replicas {
        return;
    }
    let (uid, held) = match w.stateful.get(&k) {
        Some(x) => x.clone(),
        None => {
            let uid = w.uid();
            (uid, None)
        }
    };
    let req = stateful_req(k, &uid, w.replicas);
    match block_on_ready(w.engine(e).allocate(&req)) {
        Ok(got) => {
            if let Some((held, epoch)) = &held {
                if *epoch == w.epoch {
                    assert_eq!(
                        &got, held,
                        "StatefulSet pod db-{k} did not get its addresses back"
                    );
                }
            }
            w.stateful.insert(k, (uid, Some((got, w.epoch))));
        }
        Err(err) => {
            expected_failure(&err, false);
            w.stateful.insert(k, (uid, held));
        }
    }
}
