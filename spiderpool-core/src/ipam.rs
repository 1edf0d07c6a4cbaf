//! The driver: read a snapshot, plan in the core, write with compare-and-swap, retry.
//!
//! [`Ipam`] is generic over the [`Store`]. Each operation reads the objects it needs, asks
//! [`crate::allocate`] for a [`Plan`], and commits the plan's writes, each guarded by the
//! revision it was computed from. A conflict (someone else wrote first) means the plan was
//! computed from stale data: it is thrown away, and the operation starts again from a fresh
//! read, up to [`Ipam::with_retries`] times with the pauses of an injected [`Pause`]. A
//! decision is therefore never applied on top of data it did not see.
//!
//! Conflicts are kept cheap, because on a hot pool (every node allocating from one object)
//! they are the common case:
//! - the snapshot reads the pools last, so the window between reading a pool and writing it
//!   back (in which another writer makes the write conflict) spans as few round trips as
//!   possible;
//! - after a [`Error::Conflict`] on an object the plan wrote, only that object and the ones
//!   the plan wrote before it (which a store without transactions may have applied) are read
//!   again; the rest of the snapshot (other pools, reserved IPs) is kept, since the writes
//!   are guarded by revisions anyway. Any other retryable error, and every
//!   [`FULL_READ_EVERY`]th retry, reads everything again;
//! - concurrent allocations of one process avoid each other: before planning, the driver asks
//!   the store which addresses its commits on their way add ([`Store::in_flight`]), and a new
//!   allocation passes over them to the next free address.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::allocate::{
    endpoint_name, plan_allocate_cached, plan_cleanup_after_failure_cached, plan_release_cached,
    Outcome, Plan, PoolIndexes, Snapshot,
};
use crate::model::{IPAllocationDetail, Object, SpiderIPPool, SpiderReservedIP};
use crate::request::{AllocateRequest, IpamConfig, ReleaseRequest};
use crate::store::{Key, Store, Write};
use crate::Error;

/// After a conflict only what conflicted is read again, but every this many retries the whole
/// snapshot is, so that pools created meanwhile and reserved IPs are never long out of date.
pub const FULL_READ_EVERY: u32 = 8;

/// Waits between retries. The core has no clock or runtime: the caller supplies the pause
/// (e.g. `tokio::time::sleep` with exponential backoff and jitter).
#[async_trait]
pub trait Pause: Send + Sync {
    /// Waits before retry number `attempt` (1 for the first retry).
    async fn pause(&self, attempt: u32);
}

/// Retries at once. Fine for in-process stores; real deployments inject a backoff.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPause;

#[async_trait]
impl Pause for NoPause {
    async fn pause(&self, _attempt: u32) {}
}

/// The IPAM engine over a store.
///
/// It keeps the decoded allocation state of the pools it worked on ([`PoolIndexes`], at most
/// [`PoolIndexes::DEFAULT_CAPACITY`] pools; see [`Ipam::with_index_cache`]), so that a
/// long-lived engine decodes a pool's `status.allocatedIPs` again only when another writer
/// changed it, and then only the records that writer changed when it can
/// ([`PoolIndex::followed`](crate::allocate::PoolIndex::followed)).
pub struct Ipam<S: Store> {
    store: S,
    cfg: IpamConfig,
    retries: u32,
    pause: Box<dyn Pause>,
    indexes: IndexCache,
}

/// A cache of decoded pools ([`PoolIndexes`]) for engines to share: an engine built with it
/// ([`Ipam::with_shared_index_cache`]) finds the pools the others decoded or wrote, as one
/// long-lived engine would (an agent building an engine per request, say). Clones share the
/// cache. An entry is recognised by the pool's content, never trusted by name alone, so
/// engines over different stores can share one too.
#[derive(Debug, Clone, Default)]
pub struct IndexCache(Arc<Mutex<PoolIndexes>>);

impl IndexCache {
    /// A cache holding at most `pools` pools (see [`PoolIndexes::new`]).
    pub fn new(pools: usize) -> Self {
        IndexCache(Arc::new(Mutex::new(PoolIndexes::new(pools))))
    }
}

impl<S: Store> Ipam<S> {
    /// An engine with the default configuration, 16 retries and no pause between them.
    pub fn new(store: S) -> Self {
        Ipam {
            store,
            cfg: IpamConfig::default(),
            retries: 16,
            pause: Box::new(NoPause),
            indexes: IndexCache::default(),
        }
    }

    /// Keeps the decoded state of at most `pools` pools across calls (0: decode every pool
    /// a decision touches, every time).
    pub fn with_index_cache(mut self, pools: usize) -> Self {
        self.indexes = IndexCache::new(pools);
        self
    }

    /// Works with `cache`, shared with the other engines given it, instead of a cache of its
    /// own; the counts below are then the shared cache's.
    pub fn with_shared_index_cache(mut self, cache: &IndexCache) -> Self {
        self.indexes = cache.clone();
        self
    }

    /// How many times a pool's records were decoded (cache misses) so far.
    pub fn decoded_pools(&self) -> u64 {
        self.lock_indexes().decoded()
    }

    /// How many times a cached pool was brought to another writer's revision by following
    /// the records it changed, instead of being decoded (see [`PoolIndex::followed`]).
    ///
    /// [`PoolIndex::followed`]: crate::allocate::PoolIndex::followed
    pub fn followed_pools(&self) -> u64 {
        self.lock_indexes().followed()
    }

    fn lock_indexes(&self) -> MutexGuard<'_, PoolIndexes> {
        // A panic while planning leaves at worst a cache entry missing: still usable.
        self.indexes
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the configuration.
    pub fn with_config(mut self, cfg: IpamConfig) -> Self {
        self.cfg = cfg;
        self
    }

    /// Sets how many times a conflicting operation is retried, and how to wait in between.
    pub fn with_retries(mut self, retries: u32, pause: impl Pause + 'static) -> Self {
        self.retries = retries;
        self.pause = Box::new(pause);
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &IpamConfig {
        &self.cfg
    }

    /// Reads what a decision for `namespace/endpoint` needs.
    pub async fn snapshot(&self, namespace: &str, endpoint: &str) -> Result<Snapshot, Error> {
        let mut snap = Snapshot::default();
        // The three reads at once: a store that batches requests (etcd) answers them in one
        // round trip, at one revision.
        let (reserved, endpoint, pools) = futures_util::future::join3(
            self.store.list(SpiderReservedIP::KIND),
            self.store.get(&Key::endpoint(namespace, endpoint)),
            self.store.list(SpiderIPPool::KIND),
        )
        .await;
        for s in reserved? {
            if let Object::ReservedIp(r) = s.object {
                snap.reserved.push(r);
            }
        }
        if let Some(s) = endpoint? {
            if let Object::Endpoint(e) = s.object {
                snap.endpoint = Some((e, s.revision));
            }
        }
        for s in pools? {
            if let Object::IpPool(p) = s.object {
                snap.pools.push((p, s.revision));
            }
        }
        Ok(snap)
    }

    /// After a conflict on `conflicted`: reads again the objects of `writes` up to and
    /// including that one (the earlier ones may have been applied) and puts them into `snap`.
    /// `None` when the snapshot cannot be patched (the key is not one the plan wrote, or an
    /// object is gone or not a pool or the endpoint): the caller reads everything again.
    async fn refresh(
        &self,
        mut snap: Snapshot,
        writes: &[Key],
        conflicted: &str,
    ) -> Result<Option<Snapshot>, Error> {
        let Some(last) = writes.iter().position(|k| k.to_string() == conflicted) else {
            return Ok(None);
        };
        for key in &writes[..=last] {
            let Some(fresh) = self.store.get(key).await? else {
                return Ok(None);
            };
            match fresh.object {
                Object::IpPool(p) => {
                    let Some(slot) = snap
                        .pools
                        .iter_mut()
                        .find(|(old, _)| old.metadata.name == p.metadata.name)
                    else {
                        return Ok(None);
                    };
                    *slot = (p, fresh.revision);
                    snap.pools_changed();
                }
                // The only endpoint a plan writes is the snapshot's.
                Object::Endpoint(e) => {
                    snap.endpoint = Some((e, fresh.revision));
                }
                _ => return Ok(None),
            }
        }
        Ok(Some(snap))
    }

    /// CNI ADD: the pod's addresses, one entry per NIC (all of the pod's NICs). All or
    /// nothing: on failure, nothing this request took stays taken.
    pub async fn allocate(&self, req: &AllocateRequest) -> Result<Vec<IPAllocationDetail>, Error> {
        let ep = endpoint_name(&req.pod.name, req.owner.as_ref(), &self.cfg);
        let result = self
            .run(&req.pod.namespace, &ep, |snap, cache| {
                plan_allocate_cached(req, snap, &self.cfg, cache)
            })
            .await;
        match result {
            Ok(Outcome::Allocated(ips)) => Ok(ips),
            Ok(other) => Err(Error::Unsupported {
                what: format!("allocation planned {other:?}"),
            }),
            Err(e) => {
                // Free what a partly applied plan or an older pod of the same name left.
                // Best effort: the allocation error is what the caller needs to see, and GC
                // frees anything a failure here leaves.
                let _ = self
                    .run(&req.pod.namespace, &ep, |snap, cache| {
                        plan_cleanup_after_failure_cached(req, snap, &self.cfg, cache)
                    })
                    .await;
                Err(e)
            }
        }
    }

    /// CNI DEL: frees what the pod holds unless it keeps it (a live pod, a stateful pod still
    /// wanted). Unknown pods and repeated releases succeed and change nothing.
    pub async fn release(&self, req: &ReleaseRequest) -> Result<Outcome, Error> {
        let ep = endpoint_name(&req.pod.name, req.owner.as_ref(), &self.cfg);
        self.run(&req.pod.namespace, &ep, |snap, cache| {
            plan_release_cached(req, snap, &self.cfg, cache)
        })
        .await
    }

    /// Read, plan, commit; again from a fresh read on conflict.
    async fn run(
        &self,
        namespace: &str,
        endpoint: &str,
        plan: impl Fn(&Snapshot, &mut PoolIndexes) -> Result<Plan, Error> + Send + Sync,
    ) -> Result<Outcome, Error> {
        let mut attempt = 0;
        // What the last conflict left worth keeping: the snapshot, patched with what changed.
        let mut kept: Option<Snapshot> = None;
        loop {
            // A store that cannot answer now (a lost connection, a leader election) is retried
            // like a conflict: from a fresh read.
            // Planner errors go through the same match: a retryable one (say, an object that
            // vanished between two reads of the snapshot) gets a fresh read too.
            let snap = match kept.take() {
                Some(snap) => Ok(snap),
                None => self.snapshot(namespace, endpoint).await,
            };
            // A retry after a conflict spreads new allocations over the free addresses.
            // What other commits of this process are adding, so as not to choose it too.
            let snap = snap.map(|mut s| {
                s.attempt = attempt;
                s.in_flight = self
                    .store
                    .in_flight(&|pool| s.pool(pool).map(|(_, rev)| rev.clone()));
                s
            });
            let mut written: Vec<Key> = Vec::new();
            let planned = snap.and_then(|s| {
                let mut cache = self.lock_indexes();
                let plan = plan(&s, &mut cache);
                let parked = cache.take_parked();
                plan.map(|p| (s, p, parked))
            });
            let result = match planned {
                Ok((_, plan, parked)) if plan.writes.is_empty() => {
                    self.lock_indexes().settle_parked(parked, true);
                    return Ok(plan.outcome);
                }
                Ok((snap, plan, parked)) => {
                    written = plan.writes.iter().map(Write::key).collect();
                    kept = Some(snap);
                    let result = self.store.commit(plan.writes).await.map(|()| plan.outcome);
                    self.lock_indexes().settle_parked(parked, result.is_ok());
                    result
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(outcome) => return Ok(outcome),
                Err(e) if is_retryable(&e) && attempt < self.retries => {
                    attempt += 1;
                    self.pause.pause(attempt).await;
                    kept = match (kept.take(), &e) {
                        (Some(snap), Error::Conflict { key, .. })
                            if attempt % FULL_READ_EVERY != 0 =>
                        {
                            // A failed re-read falls back to a full one.
                            self.refresh(snap, &written, key).await.ok().flatten()
                        }
                        _ => None,
                    };
                }
                Err(e) if is_retryable(&e) => {
                    return Err(Error::Unavailable {
                        reason: format!(
                            "exhaust all retries ({} times) for {namespace}/{endpoint}: {e}",
                            self.retries
                        ),
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Errors after which a fresh read and a new plan may succeed.
pub fn is_retryable(e: &Error) -> bool {
    matches!(
        e,
        Error::Conflict { .. }
            | Error::AlreadyExists { .. }
            | Error::NotFound { .. }
            | Error::Unavailable { .. }
    )
}
