//! An etcd v3 [`Store`] for spiderpool-rs.
//!
//! # Key layout
//! Under a configurable prefix `P` (default `/spiderpool/`):
//! - `P o/<Kind>/<namespace or _>/<name>`: an object as JSON. A SpiderIPPool is stored without
//!   `status.allocatedIPs` and `status.allocatedIPCount`;
//! - `P a/<pool>/<ip>`: one key per allocated address, its record (`{"pod","podUid","interface"}`).
//!
//! A pool's allocation state therefore never grows with the size of its range, only with the
//! addresses actually allocated, and two hosts allocating from one pool only conflict when they
//! want the same address (see [Contention](#contention)).
//!
//! - `P d/<pool>`: rewritten whenever records of the pool are deleted, so that a deletion, too,
//!   moves the pool's revision.
//!
//! # Revisions
//! Objects carry their key's `mod_revision`. A pool's revision is the highest `mod_revision`
//! among its spec key, its record keys and its `d/` key: it changes exactly when the pool's
//! content does. An update of the pool reads the pool as it was at that revision and commits
//! a transaction that checks that its spec and every record the plan changes or relies on are
//! unchanged since, and that every address it adds is still free (`create_revision == 0`).
//! Multi-object plans are one transaction: all or nothing.
//!
//! # Contention
//! Every allocation from a pool used to rewrite the pool object, which serialises a cluster's
//! allocations on one key. Here an allocation writes only its address's key and the pod's
//! endpoint; the pool spec key is written only when the pool itself changes. A transaction
//! compares only what its decision relies on: the new address keys absent
//! (`create_revision == 0`), the records it changes or relies on unchanged, the endpoint; so
//! allocators of different addresses never conflict, and no address is ever written twice.
//! Concurrent allocators that choose the same address conflict; the driver retries, and a
//! retry takes a free address a little past the lowest (`spiderpool_core::allocate::spread`:
//! k from the pod uid and the attempt), so that they spread out instead of chasing the same
//! lowest free address again. An uncontended allocation still takes the lowest free one.
//!
//! Allocators of one process (tasks sharing an [`EtcdStore`]) do not even meet: the store
//! remembers the addresses its commits add, from just before a commit is sent until it fails,
//! or, once applied, for planners still working from a read older than it (the last 256
//! applied addresses over all pools), and lists them to the driver ([`Store::in_flight`]);
//! the planner passes over them to the next free address. 64 allocators of one process: 1.2
//! failed commits per allocation before, 0.2 after.
//!
//! # Batching
//! Concurrent requests of one process (one [`EtcdStore`] and its clones) share round trips
//! (group commit): while a transaction is in flight, the next requests queue, and the first
//! of them sends all queued ones as one transaction when it returns.
//! - Reads (every `get` and `list`) go out as one read-only transaction of their ranges,
//!   identical ranges read once. A read waits for a transaction that starts after it was made,
//!   so it stays linearizable.
//! - Plans go out as nested transactions of one request (up to 64, 1 MiB): each keeps its own
//!   compares and is applied or not on its own, and they cost one round trip and one raft
//!   entry (one fsync) together. Two plans of one batch that write the same key cannot share
//!   a request (etcd refuses it): the later one fails as a conflict at once, as it would after
//!   the first is applied, and its caller retries. Big plans and pool deletions go alone.
//! - A failed transaction answers, in its failure branch, whether each key it writes exists,
//!   so the error (`AlreadyExists`, `NotFound`, `Conflict`) costs no further read.
//! - Pools are decoded once per revision and cached (32 revisions per store): readers of the
//!   same revision share the decoded pool, a new revision decodes only the records that
//!   changed, and a commit diffs against the cached records instead of reading the past.
//!
//! # Throughput
//! `cargo bench -p spiderpool-benches --bench etcd`: one loopback etcd 3.4 member with its data
//! on tmpfs, tasks sharing one store, each allocating for `max(256 / allocators, 4)` pods from
//! one fresh pool. On this project's 2-core machine (`docs/performance.md` has every round):
//!
//! | concurrent allocators | first version (data on disk) | quiet hour, before claims | one hour: before claims / now |
//! |---|---|---|---|
//! | 1  | 323/s | 565/s | 337/s / 471–736/s |
//! | 8  | 241/s | 1,070/s | 606/s / 1,329–2,032/s |
//! | 64 | 122/s | 2,330/s | 1,523–1,605/s / 3,878–5,538/s |
//!
//! (The benchmark process uses mimalloc; with glibc's allocator 15–25 % less.) At 64
//! allocators an allocation costs about 0.16 etcd transactions (4 without batching) and 0.2
//! failed commits (1.2 before the claims); an uncontended one costs 2 transactions. What
//! limits it: CPU on both sides, O(records of
//! the pool) per allocation: every snapshot reads the whole pool (etcd reads every key of the
//! range, even with a revision filter), the store folds the records into Spiderpool's JSON map
//! once per revision, and each driver decodes it. fsync is amortised by group commit (a plain
//! put costs ~4 ms of fsync on this disk; with data on disk, 64 allocators measured the same
//! as on tmpfs). The next steps: a structured allocation state between core and store, a
//! watch-fed pool cache (reads local after a linearizable revision check). One CNI plugin
//! process per ADD cannot batch with others; a node daemon can.
//!
//! # Example
//!
//! ```
//! use backend_etcd::EtcdConfig;
//! // What `spiderpoolctl --store` and the netconf's `ipam.store` accept.
//! let cfg = EtcdConfig::from_url("etcd://10.0.0.1:2379,10.0.0.2:2379/lab").unwrap();
//! assert_eq!(cfg.endpoints, ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]);
//! assert_eq!(cfg.prefix, "/lab/");
//! // Then: `let store = EtcdStore::connect(&cfg).await?;` and use it as any `Store`.
//! ```
#![deny(missing_docs)]

mod batch;
mod claims;
mod diff;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, TxnOp, TxnOpResponse};
use serde_json::Value;
use spiderpool_core::model::{object_from_value, Object, PoolIPAllocation, SpiderIPPool};
use spiderpool_core::store::{Change, Key, Revision, Store, Stored, Write};

use batch::{Batcher, CommitA, CommitQ, ReadA, ReadQ};

/// Errors of the etcd store; converted into [`spiderpool_core::Error`] at the trait boundary
/// (connection trouble is retryable `Unavailable`, undecodable data a `Storage` error naming
/// the key).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No endpoint could be reached.
    #[error("cannot connect to etcd {endpoints:?}: {reason}")]
    Connect {
        /// The endpoints tried.
        endpoints: Vec<String>,
        /// Why.
        reason: String,
    },
    /// A request failed (timeout, leader change, …).
    #[error("etcd request failed: {0}")]
    Request(String),
    /// A value does not decode: reported, never overwritten.
    #[error("etcd key {key}: value does not decode, left untouched: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// The decoder's message.
        reason: String,
    },
    /// A TLS file could not be read.
    #[error("{path}: {reason}")]
    Tls {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl From<Error> for spiderpool_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Corrupt { ref key, .. } => spiderpool_core::Error::Storage {
                store: format!("etcd key {key}"),
                reason: e.to_string(),
            },
            Error::Tls { ref path, .. } => spiderpool_core::Error::Storage {
                store: path.clone(),
                reason: e.to_string(),
            },
            other => spiderpool_core::Error::Unavailable {
                reason: other.to_string(),
            },
        }
    }
}

pub(crate) fn request(e: etcd_client::Error) -> spiderpool_core::Error {
    Error::Request(e.to_string()).into()
}

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Endpoints (`http://127.0.0.1:2379`, …); requests fail over between them.
    pub endpoints: Vec<String>,
    /// Key prefix of this store.
    pub prefix: String,
    /// User and password, if authentication is on.
    pub user: Option<(String, String)>,
    /// CA certificate, client certificate and key files (PEM), for TLS.
    pub tls: Option<(String, Option<(String, String)>)>,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl EtcdConfig {
    /// Endpoints with the default prefix `/spiderpool/`, no auth, no TLS, 5 s timeouts.
    pub fn new(endpoints: &[&str]) -> Self {
        EtcdConfig {
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            prefix: "/spiderpool/".into(),
            user: None,
            tls: None,
            timeout: Duration::from_secs(5),
        }
    }

    /// Parses `etcd://host:port[,host:port…][/prefix]`.
    pub fn from_url(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("etcd://")?;
        let (hosts, prefix) = match rest.split_once('/') {
            Some((h, p)) => (h, format!("/{}/", p.trim_matches('/'))),
            None => (rest, "/spiderpool/".to_string()),
        };
        let endpoints: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
            .collect();
        (!endpoints.is_empty()).then(|| EtcdConfig {
            endpoints,
            prefix,
            ..EtcdConfig::new(&[])
        })
    }
}

/// The etcd store. Clones share one connection, and concurrent requests of one process
/// share round trips (see [Batching](crate#batching)).
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    prefix: String,
    reads: Arc<Batcher<ReadQ, ReadA>>,
    commits: Arc<Batcher<CommitQ, CommitA>>,
    pools: Arc<Mutex<VecDeque<Arc<CachedPool>>>>,
    claims: Arc<claims::Claims>,
}

/// A pool as read at its revision, decoded once: reads of the same revision reuse it, and a
/// commit computed from it needs no read of the past.
struct CachedPool {
    name: String,
    revision: i64,
    /// The spec key's mod revision.
    spec_revision: i64,
    /// The pool as its spec key holds it ([`EtcdStore::spec_of`]).
    spec: SpiderIPPool,
    /// Its records by address, with their mod revisions.
    records: BTreeMap<String, (PoolIPAllocation, i64)>,
    /// The pool with its records folded in.
    pool: SpiderIPPool,
    /// Where each record lies in the pool's `status.allocatedIPs`, in key order.
    spans: Vec<std::ops::Range<usize>>,
}

/// Decoded pool revisions kept per store.
const CACHED_POOLS: usize = 32;

const POOL: &str = SpiderIPPool::KIND;

impl EtcdStore {
    /// Connects to etcd.
    pub async fn connect(cfg: &EtcdConfig) -> Result<Self, Error> {
        let mut opts = ConnectOptions::new()
            .with_timeout(cfg.timeout)
            .with_connect_timeout(cfg.timeout);
        if let Some((user, password)) = &cfg.user {
            opts = opts.with_user(user.clone(), password.clone());
        }
        if let Some((ca, identity)) = &cfg.tls {
            let read = |p: &str| {
                std::fs::read(p).map_err(|e| Error::Tls {
                    path: p.to_string(),
                    reason: e.to_string(),
                })
            };
            let mut tls = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
            if let Some((cert, key)) = identity {
                tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
            }
            opts = opts.with_tls(tls);
        }
        let client = Client::connect(&cfg.endpoints, Some(opts))
            .await
            .map_err(|e| Error::Connect {
                endpoints: cfg.endpoints.clone(),
                reason: e.to_string(),
            })?;
        Ok(EtcdStore {
            client,
            prefix: cfg.prefix.clone(),
            reads: Arc::default(),
            commits: Arc::default(),
            pools: Arc::default(),
            claims: Arc::default(),
        })
    }

    fn object_key(&self, key: &Key) -> String {
        format!(
            "{}o/{}/{}/{}",
            self.prefix,
            key.kind,
            key.namespace.as_deref().unwrap_or("_"),
            key.name
        )
    }

    fn kind_prefix(&self, kind: &str) -> String {
        format!("{}o/{kind}/", self.prefix)
    }

    fn alloc_prefix(&self, pool: &str) -> String {
        format!("{}a/{pool}/", self.prefix)
    }

    fn deletions_key(&self, pool: &str) -> String {
        format!("{}d/{pool}", self.prefix)
    }

    fn decode(&self, key: &[u8], value: &[u8]) -> Result<Object, spiderpool_core::Error> {
        let key = String::from_utf8_lossy(key).to_string();
        let v: Value = serde_json::from_slice(value).map_err(|e| Error::Corrupt {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        object_from_value(&key, v).map_err(|e| {
            Error::Corrupt {
                key,
                reason: e.to_string(),
            }
            .into()
        })
    }

    fn decode_record(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> Result<PoolIPAllocation, spiderpool_core::Error> {
        serde_json::from_slice(value).map_err(|e| {
            Error::Corrupt {
                key: String::from_utf8_lossy(key).to_string(),
                reason: e.to_string(),
            }
            .into()
        })
    }

    /// Records of `pool` from alloc key-values (sorted by key, as etcd returns them); records
    /// whose key and mod revision match `known` (an earlier read) are reused, not decoded.
    fn records_of(
        &self,
        pool: &str,
        kvs: &[etcd_client::KeyValue],
        known: Option<&BTreeMap<String, (PoolIPAllocation, i64)>>,
    ) -> Result<BTreeMap<String, (PoolIPAllocation, i64)>, spiderpool_core::Error> {
        let prefix = self.alloc_prefix(pool);
        let mut out = BTreeMap::new();
        for kv in pool_slice(kvs, &prefix) {
            let ip = String::from_utf8_lossy(&kv.key()[prefix.len()..]).to_string();
            let record = match known.and_then(|k| k.get(&ip)) {
                Some((r, rev)) if *rev == kv.mod_revision() => r.clone(),
                _ => self.decode_record(kv.key(), kv.value())?,
            };
            out.insert(ip, (record, kv.mod_revision()));
        }
        Ok(out)
    }

    /// A pool object with its records folded into its status (as `set_allocations` writes
    /// them), and where each record lies in that text.
    fn assemble(
        mut pool: SpiderIPPool,
        records: &BTreeMap<String, (PoolIPAllocation, i64)>,
    ) -> (SpiderIPPool, Vec<std::ops::Range<usize>>) {
        let assembled = diff::assemble(records.iter().map(|(ip, (r, _))| (ip, r)));
        pool.status.allocated_ips = assembled.text;
        pool.status.allocated_ip_count = Some(i64::try_from(records.len()).unwrap_or(i64::MAX));
        (pool, assembled.spans)
    }

    /// The pool as stored in its spec key: no allocation state, no resource version.
    fn spec_of(pool: &SpiderIPPool) -> SpiderIPPool {
        let mut p = pool.clone_without_allocations();
        p.status.allocated_ip_count = None;
        p.metadata.resource_version = None;
        p
    }

    /// Linearizable reads of `ranges` at one revision, batched with the concurrent reads of
    /// this process.
    async fn read(&self, ranges: ReadQ) -> ReadA {
        let client = &self.client;
        self.reads
            .submit(ranges, |b| batch::flush_reads(client, b))
            .await
            .unwrap_or_else(|| {
                Err(spiderpool_core::Error::Unavailable {
                    reason: "etcd read cancelled".into(),
                })
            })
    }

    async fn range(
        &self,
        prefix: &str,
        revision: Option<i64>,
    ) -> Result<(Vec<etcd_client::KeyValue>, i64), spiderpool_core::Error> {
        let mut opts = GetOptions::new().with_prefix();
        if let Some(r) = revision {
            opts = opts.with_revision(r);
        }
        let resp = self
            .client
            .kv_client()
            .get(prefix, Some(opts))
            .await
            .map_err(request)?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        Ok((resp.kvs().to_vec(), rev))
    }

    /// A decoded pool revision, if cached.
    fn cached(&self, name: &str, revision: i64) -> Option<Arc<CachedPool>> {
        let cache = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .iter()
            .find(|c| c.revision == revision && c.name == name)
            .cloned()
    }

    /// The most recent decoded revision of a pool, if any.
    fn latest(&self, name: &str) -> Option<Arc<CachedPool>> {
        let cache = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .iter()
            .filter(|c| c.name == name)
            .max_by_key(|c| c.revision)
            .cloned()
    }

    fn cache(&self, pool: Arc<CachedPool>) {
        let mut cache = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHED_POOLS {
            cache.pop_front();
        }
        cache.push_back(pool);
    }

    /// Pools (one, or all) with their records, read at one store revision.
    async fn read_pools(&self, only: Option<&str>) -> Result<Vec<Stored>, spiderpool_core::Error> {
        let (spec_range, alloc_range, del_range) = match only {
            Some(name) => (
                self.object_key(&Key::pool(name)),
                self.alloc_prefix(name),
                self.deletions_key(name),
            ),
            None => (
                self.kind_prefix(POOL),
                format!("{}a/", self.prefix),
                format!("{}d/", self.prefix),
            ),
        };
        let mut ranges = self
            .read(vec![
                (spec_range.clone(), only.is_none()),
                (alloc_range, true),
                (del_range, only.is_none()),
            ])
            .await?;
        let deletions = ranges.pop().unwrap_or_default();
        let allocs = ranges.pop().unwrap_or_default();
        let specs = ranges.pop().unwrap_or_default();
        let names_from = format!("{}_/", self.kind_prefix(POOL));
        let mut out = Vec::new();
        for kv in &specs {
            let Some(name) = kv
                .key()
                .strip_prefix(names_from.as_bytes())
                .map(|n| String::from_utf8_lossy(n).to_string())
            else {
                continue;
            };
            let alloc_prefix = self.alloc_prefix(&name);
            let del_key = self.deletions_key(&name);
            let rev = pool_slice(&allocs, &alloc_prefix)
                .iter()
                .map(|r| r.mod_revision())
                .chain(std::iter::once(kv.mod_revision()))
                .chain(
                    deletions
                        .iter()
                        .filter(|d| d.key() == del_key.as_bytes())
                        .map(|d| d.mod_revision()),
                )
                .max()
                .unwrap_or(0);
            let cached = match self.cached(&name, rev) {
                Some(c) => c,
                None => {
                    // An earlier revision of the pool: what did not change is not decoded.
                    let known = self.latest(&name);
                    let (pool, spec) = match &known {
                        Some(k) if k.spec_revision == kv.mod_revision() => {
                            (k.pool.clone_without_allocations(), k.spec.clone())
                        }
                        _ => match self.decode(kv.key(), kv.value())? {
                            Object::IpPool(pool) => {
                                let spec = Self::spec_of(&pool);
                                (pool, spec)
                            }
                            _ => continue,
                        },
                    };
                    let records =
                        self.records_of(&name, &allocs, known.as_ref().map(|k| &k.records))?;
                    let (mut pool, spans) = Self::assemble(pool, &records);
                    pool.metadata.resource_version = Some(rev.to_string());
                    let c = Arc::new(CachedPool {
                        name,
                        revision: rev,
                        spec_revision: kv.mod_revision(),
                        spec,
                        records,
                        pool,
                        spans,
                    });
                    self.cache(c.clone());
                    c
                }
            };
            out.push(Stored {
                object: Object::IpPool(cached.pool.clone()),
                revision: Revision(rev.to_string()),
            });
        }
        Ok(out)
    }

    /// The compares and operations of one write.
    async fn plan_write(
        &self,
        write: Write,
        cmps: &mut Vec<Compare>,
        ops: &mut Ops,
    ) -> Result<(), spiderpool_core::Error> {
        let rev_of = |r: &Revision| -> Result<i64, spiderpool_core::Error> {
            r.0.parse().map_err(|_| spiderpool_core::Error::Conflict {
                key: "etcd".into(),
                expected: r.0.clone(),
            })
        };
        match write {
            Write::Create(object) => {
                let key = Key::of(&object);
                let k = self.object_key(&key);
                cmps.push(Compare::create_revision(k.clone(), CompareOp::Equal, 0));
                match &object {
                    Object::IpPool(p) => {
                        ops.put(k, json(&Object::IpPool(Self::spec_of(p))));
                        for (ip, r) in p.allocations()? {
                            ops.added(&p.metadata.name, &ip);
                            let ak = format!("{}{ip}", self.alloc_prefix(&p.metadata.name));
                            cmps.push(Compare::create_revision(ak.clone(), CompareOp::Equal, 0));
                            ops.put(ak, serde_json::to_string(&r).unwrap_or_default());
                        }
                    }
                    other => ops.put(k, json(other)),
                }
            }
            Write::Update {
                object: Object::IpPool(new),
                expected,
            } => {
                let r = rev_of(&expected)?;
                let name = new.metadata.name.clone();
                let k = self.object_key(&Key::pool(&name));
                // What the planner saw, at its revision: decoded when it was read, or read
                // again as of that revision.
                let held = self.cached(&name, r);
                let read_back;
                let (old_spec_value, old_records, old_text) = match &held {
                    Some(c) => (
                        &c.spec,
                        &c.records,
                        c.pool
                            .status
                            .allocated_ips
                            .as_deref()
                            .map(|t| (t, &c.spans[..])),
                    ),
                    None => {
                        let (old_spec, _) = self
                            .range(&k, Some(r))
                            .await
                            .map_err(|_| conflict(&k, &expected))?;
                        let Some(old_kv) = old_spec.iter().find(|kv| kv.key() == k.as_bytes())
                        else {
                            return Err(spiderpool_core::Error::NotFound {
                                key: Key::pool(&name).to_string(),
                            });
                        };
                        let (old_allocs, _) = self
                            .range(&self.alloc_prefix(&name), Some(r))
                            .await
                            .map_err(|_| conflict(&k, &expected))?;
                        let old_spec = match self.decode(old_kv.key(), old_kv.value())? {
                            Object::IpPool(p) => Self::spec_of(&p),
                            _ => {
                                return Err(Error::Corrupt {
                                    key: k.clone(),
                                    reason: "not a SpiderIPPool".into(),
                                }
                                .into())
                            }
                        };
                        read_back = (old_spec, self.records_of(&name, &old_allocs, None)?);
                        (&read_back.0, &read_back.1, None)
                    }
                };
                cmps.push(Compare::create_revision(k.clone(), CompareOp::Greater, 0));
                cmps.push(Compare::mod_revision(k.clone(), CompareOp::Less, r + 1));
                // Compared as typed objects: a stored spec that decodes to the same pool (other
                // key order, defaults spelled out) is not rewritten.
                let new_spec = Self::spec_of(&new);
                if new_spec != *old_spec_value {
                    // A change of the pool itself (its ranges, …) was decided knowing every
                    // record: none may have changed since.
                    ops.put(k.clone(), json(&Object::IpPool(new_spec)));
                    self.guard_records(&name, r, cmps);
                }
                // The old records the new text does not keep byte for byte (by position), and
                // the new text's records in their place: told apart without parsing what the
                // planner kept when the text allows it, else all of them.
                let (replaced, new_records) = match old_text
                    .zip(new.status.allocated_ips.as_deref())
                    .and_then(|((old, spans), text)| diff::middle(old, spans, old_records, text))
                {
                    Some(m) => {
                        // Tests and debug builds check the shortcut against the whole text.
                        debug_assert!(
                            diff::agrees(old_records, &m, new.allocations().ok().as_ref()),
                            "pool {name}: the changed run disagrees with the whole text"
                        );
                        (m.old, m.new)
                    }
                    None => (0..old_records.len(), new.allocations()?),
                };
                let mut touched_pods: BTreeSet<&str> = BTreeSet::new();
                let prefix = self.alloc_prefix(&name);
                for (ip, rec) in &new_records {
                    let ak = format!("{prefix}{ip}");
                    match old_records.get(ip) {
                        None => {
                            cmps.push(Compare::create_revision(ak.clone(), CompareOp::Equal, 0));
                            ops.put(ak, serde_json::to_string(rec).unwrap_or_default());
                            ops.added(&name, ip);
                            touched_pods.insert(&rec.pod);
                        }
                        Some((old, _)) if old != rec => {
                            cmps.push(Compare::mod_revision(ak.clone(), CompareOp::Less, r + 1));
                            cmps.push(Compare::create_revision(ak.clone(), CompareOp::Greater, 0));
                            ops.put(ak, serde_json::to_string(rec).unwrap_or_default());
                            touched_pods.insert(&rec.pod);
                            touched_pods.insert(&old.pod);
                        }
                        Some(_) => {}
                    }
                }
                let mut deleted = false;
                for (ip, (old, _)) in old_records.iter().skip(replaced.start).take(replaced.len()) {
                    if !new_records.contains_key(ip) {
                        let ak = format!("{prefix}{ip}");
                        cmps.push(Compare::mod_revision(ak.clone(), CompareOp::Less, r + 1));
                        cmps.push(Compare::create_revision(ak.clone(), CompareOp::Greater, 0));
                        ops.delete(ak);
                        touched_pods.insert(&old.pod);
                        deleted = true;
                    }
                }
                if deleted {
                    ops.put(self.deletions_key(&name), r.to_string());
                }
                // Records the plan relies on without changing them (the same pod's other
                // addresses) must still be as they were, and still be there: a missing key
                // has mod revision 0, so the existence check is needed too.
                if !touched_pods.is_empty() {
                    for (i, (ip, (old, _))) in old_records.iter().enumerate() {
                        let unchanged = !replaced.contains(&i) || new_records.get(ip) == Some(old);
                        if unchanged && touched_pods.contains(old.pod.as_str()) {
                            let ak = format!("{prefix}{ip}");
                            cmps.push(Compare::create_revision(ak.clone(), CompareOp::Greater, 0));
                            cmps.push(Compare::mod_revision(ak, CompareOp::Less, r + 1));
                        }
                    }
                }
            }
            Write::Update { object, expected } => {
                let k = self.object_key(&Key::of(&object));
                let r = rev_of(&expected)?;
                cmps.push(Compare::mod_revision(k.clone(), CompareOp::Equal, r));
                ops.put(k, json(&object));
            }
            Write::Delete { key, expected } => {
                let k = self.object_key(&key);
                let r = rev_of(&expected)?;
                if key.kind == POOL {
                    cmps.push(Compare::create_revision(k.clone(), CompareOp::Greater, 0));
                    cmps.push(Compare::mod_revision(k.clone(), CompareOp::Less, r + 1));
                    self.guard_records(&key.name, r, cmps);
                    ops.delete(k);
                    ops.delete_prefix(self.alloc_prefix(&key.name));
                    ops.delete(self.deletions_key(&key.name));
                } else {
                    cmps.push(Compare::mod_revision(k.clone(), CompareOp::Equal, r));
                    ops.delete(k);
                }
            }
        }
        Ok(())
    }

    /// Compares that fail if any record of `pool` was added, changed or deleted after `r`.
    fn guard_records(&self, pool: &str, r: i64, cmps: &mut Vec<Compare>) {
        cmps.push(
            Compare::mod_revision(self.alloc_prefix(pool), CompareOp::Less, r + 1).with_prefix(),
        );
        cmps.push(Compare::mod_revision(
            self.deletions_key(pool),
            CompareOp::Less,
            r + 1,
        ));
    }

    /// Why a transaction failed, from the answers of its failure branch (one count of each
    /// key of `creates`, then of `writes`, read in the same transaction): the first created
    /// key that exists, the first written key that is missing, else a conflict.
    fn explain(
        &self,
        writes: &[Key],
        creates: &[Key],
        counts: &[TxnOpResponse],
    ) -> spiderpool_core::Error {
        let exists = |i: usize| match counts.get(i) {
            Some(TxnOpResponse::Get(g)) => g.count() > 0 || !g.kvs().is_empty(),
            _ => false,
        };
        for (i, key) in creates.iter().enumerate() {
            if exists(i) {
                return spiderpool_core::Error::AlreadyExists {
                    kind: key.kind.clone(),
                    name: key
                        .namespace
                        .as_ref()
                        .map_or(key.name.clone(), |ns| format!("{ns}/{}", key.name)),
                };
            }
        }
        for (i, key) in writes.iter().enumerate() {
            if !exists(creates.len() + i) {
                return spiderpool_core::Error::NotFound {
                    key: key.to_string(),
                };
            }
        }
        self.conflict_on(writes, creates)
    }

    fn conflict_on(&self, writes: &[Key], creates: &[Key]) -> spiderpool_core::Error {
        spiderpool_core::Error::Conflict {
            key: writes
                .first()
                .or(creates.first())
                .map(|k| k.to_string())
                .unwrap_or_default(),
            expected: "a newer revision".into(),
        }
    }
}

/// The operations of one transaction, with the keys they write and their size.
#[derive(Default)]
struct Ops {
    ops: Vec<TxnOp>,
    writes: BTreeSet<String>,
    bytes: usize,
    alone: bool,
    /// Addresses the transaction adds to pools: `(pool, address)`.
    adds: Vec<(String, IpAddr)>,
}

impl Ops {
    fn put(&mut self, key: String, value: String) {
        self.bytes += key.len() + value.len() + 16;
        self.writes.insert(key.clone());
        self.ops.push(TxnOp::put(key, value, None));
    }

    fn delete(&mut self, key: String) {
        self.bytes += key.len() + 16;
        self.writes.insert(key.clone());
        self.ops.push(TxnOp::delete(key, None));
    }

    fn added(&mut self, pool: &str, ip: &str) {
        // A key that is no address is still written; it just cannot be claimed.
        if let Ok(addr) = ip.parse() {
            self.adds.push((pool.to_string(), addr));
        }
    }

    fn delete_prefix(&mut self, prefix: String) {
        self.bytes += prefix.len() + 16;
        self.alone = true;
        self.ops.push(TxnOp::delete(
            prefix,
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        ));
    }
}

/// The key-values of `kvs` (sorted by key) under `prefix`.
fn pool_slice<'a>(kvs: &'a [etcd_client::KeyValue], prefix: &str) -> &'a [etcd_client::KeyValue] {
    let p = prefix.as_bytes();
    let start = kvs.partition_point(|kv| kv.key() < p);
    let len = kvs[start..].partition_point(|kv| kv.key().starts_with(p));
    &kvs[start..start + len]
}

fn conflict(key: &str, expected: &Revision) -> spiderpool_core::Error {
    spiderpool_core::Error::Conflict {
        key: key.to_string(),
        expected: expected.0.clone(),
    }
}

/// An object as stored: its JSON, written straight from the typed object.
fn json(o: &Object) -> String {
    let text = match o {
        Object::IpPool(x) => serde_json::to_string(x),
        Object::Subnet(x) => serde_json::to_string(x),
        Object::ReservedIp(x) => serde_json::to_string(x),
        Object::Endpoint(x) => serde_json::to_string(x),
        Object::Other(x) => serde_json::to_string(&x.value),
    };
    // These types serialise infallibly (every map key is a string).
    text.unwrap_or_default()
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, spiderpool_core::Error> {
        if key.kind == POOL {
            return Ok(self.read_pools(Some(&key.name)).await?.into_iter().next());
        }
        let k = self.object_key(key);
        let kvs = self.read(vec![(k, false)]).await?.pop().unwrap_or_default();
        let Some(kv) = kvs.first() else {
            return Ok(None);
        };
        let mut object = self.decode(kv.key(), kv.value())?;
        set_rv(&mut object, kv.mod_revision());
        Ok(Some(Stored {
            object,
            revision: Revision(kv.mod_revision().to_string()),
        }))
    }

    async fn list(&self, kind: &str) -> Result<Vec<Stored>, spiderpool_core::Error> {
        if kind == POOL {
            return self.read_pools(None).await;
        }
        let kvs = self
            .read(vec![(self.kind_prefix(kind), true)])
            .await?
            .pop()
            .unwrap_or_default();
        kvs.iter()
            .map(|kv| {
                let mut object = self.decode(kv.key(), kv.value())?;
                set_rv(&mut object, kv.mod_revision());
                Ok(Stored {
                    object,
                    revision: Revision(kv.mod_revision().to_string()),
                })
            })
            .collect()
    }

    async fn create(&self, object: Object) -> Result<Revision, spiderpool_core::Error> {
        self.apply(vec![Write::Create(object)]).await
    }

    async fn update(
        &self,
        object: Object,
        expected: &Revision,
    ) -> Result<Revision, spiderpool_core::Error> {
        self.apply(vec![Write::Update {
            object,
            expected: expected.clone(),
        }])
        .await
    }

    async fn delete(&self, key: &Key, expected: &Revision) -> Result<(), spiderpool_core::Error> {
        self.apply(vec![Write::Delete {
            key: key.clone(),
            expected: expected.clone(),
        }])
        .await
        .map(|_| ())
    }

    fn is_atomic(&self) -> bool {
        true
    }

    fn in_flight(&self, seen: &dyn Fn(&str) -> Option<Revision>) -> BTreeMap<String, Vec<IpAddr>> {
        self.claims
            .unseen(&|pool| seen(pool).and_then(|r| r.0.parse().ok()))
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<(), spiderpool_core::Error> {
        self.apply(writes).await.map(|_| ())
    }

    async fn changes(
        &self,
        kind: &str,
        since: Option<&Revision>,
    ) -> Result<Vec<Change>, spiderpool_core::Error> {
        let Some(since) = since else {
            // No starting point: everything there is, as puts.
            return Ok(self
                .list(kind)
                .await?
                .into_iter()
                .map(Change::Put)
                .collect());
        };
        let s: i64 = since
            .0
            .parse()
            .map_err(|_| spiderpool_core::Error::Expired {
                revision: since.0.clone(),
            })?;
        // A marker written now bounds the history to read: the watch is caught up once it
        // delivers the marker.
        let marker = format!("{}~changes", self.prefix);
        let put = self
            .client
            .kv_client()
            .put(marker.as_str(), "", None)
            .await
            .map_err(request)?;
        let now = put.header().map(|h| h.revision()).unwrap_or(0);
        let events = tokio::time::timeout(Duration::from_secs(10), self.events_between(s, now))
            .await
            .map_err(|_| spiderpool_core::Error::Unavailable {
                reason: "etcd watch did not catch up within 10 s".into(),
            })??;
        let object_prefix = self.kind_prefix(kind);
        let mut out = Vec::new();
        let mut pools: Vec<String> = Vec::new();
        for (key, value, rev, put) in events {
            if kind == POOL {
                let name = key
                    .strip_prefix(&object_prefix)
                    .and_then(|r| r.strip_prefix("_/"))
                    .or_else(|| {
                        key.strip_prefix(&format!("{}a/", self.prefix))
                            .and_then(|r| r.split('/').next())
                    })
                    .or_else(|| key.strip_prefix(&format!("{}d/", self.prefix)));
                if let Some(name) = name {
                    pools.retain(|p| p != name);
                    pools.push(name.to_string());
                }
                continue;
            }
            let Some(rest) = key.strip_prefix(&object_prefix) else {
                continue;
            };
            if put {
                let mut object = self.decode(key.as_bytes(), &value)?;
                set_rv(&mut object, rev);
                out.push(Change::Put(Stored {
                    object,
                    revision: Revision(rev.to_string()),
                }));
            } else {
                let mut parts = rest.splitn(2, '/');
                let ns = parts.next().unwrap_or_default();
                let name = parts.next().unwrap_or_default();
                out.push(Change::Deleted {
                    key: Key {
                        kind: kind.to_string(),
                        namespace: (ns != "_").then(|| ns.to_string()),
                        name: name.to_string(),
                    },
                    revision: Revision(rev.to_string()),
                });
            }
        }
        for name in pools {
            match self.get(&Key::pool(&name)).await? {
                Some(stored) => out.push(Change::Put(stored)),
                None => out.push(Change::Deleted {
                    key: Key::pool(&name),
                    revision: Revision(now.to_string()),
                }),
            }
        }
        Ok(out)
    }
}

impl EtcdStore {
    /// Every event under the prefix after revision `s` up to `now`: (key, value, revision,
    /// is a put).
    async fn events_between(
        &self,
        s: i64,
        now: i64,
    ) -> Result<Vec<(String, Vec<u8>, i64, bool)>, spiderpool_core::Error> {
        let opts = etcd_client::WatchOptions::new()
            .with_prefix()
            .with_start_revision(s + 1);
        let mut stream = self
            .client
            .watch_client()
            .watch(self.prefix.as_str(), Some(opts))
            .await
            .map_err(request)?;
        let marker = format!("{}~changes", self.prefix);
        let mut out = Vec::new();
        while let Some(resp) = stream.message().await.map_err(request)? {
            if resp.compact_revision() > 0 || resp.canceled() {
                return Err(spiderpool_core::Error::Expired {
                    revision: s.to_string(),
                });
            }
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                if kv.mod_revision() >= now || kv.key() == marker.as_bytes() {
                    if kv.mod_revision() >= now {
                        return Ok(out);
                    }
                    continue;
                }
                let put = matches!(ev.event_type(), etcd_client::EventType::Put);
                out.push((
                    String::from_utf8_lossy(kv.key()).to_string(),
                    kv.value().to_vec(),
                    kv.mod_revision(),
                    put,
                ));
            }
        }
        Ok(out)
    }

    /// Applies writes in one transaction; returns the store revision it created (the new
    /// `mod_revision` of every key written).
    async fn apply(&self, writes: Vec<Write>) -> Result<Revision, spiderpool_core::Error> {
        let mut seen = BTreeSet::new();
        let mut creates = Vec::new();
        let mut others = Vec::new();
        for w in &writes {
            if !seen.insert(w.key()) {
                return Err(spiderpool_core::Error::Unsupported {
                    what: format!("two writes to {} in one commit", w.key()),
                });
            }
            match w {
                Write::Create(_) => creates.push(w.key()),
                _ => others.push(w.key()),
            }
        }
        let mut cmps = Vec::new();
        let mut ops = Ops::default();
        for w in writes {
            self.plan_write(w, &mut cmps, &mut ops).await?;
        }
        let count = || Some(GetOptions::new().with_count_only());
        let on_failure = creates
            .iter()
            .chain(&others)
            .map(|k| TxnOp::get(self.object_key(k), count()))
            .collect();
        let alone = ops.alone || ops.ops.len() > ALONE_OPS || cmps.len() > ALONE_OPS;
        // Until answered, planners of this process pass over the addresses it adds.
        let claim = self.claims.claim(ops.adds);
        let q = CommitQ {
            cmps,
            ops: ops.ops,
            on_failure,
            writes: ops.writes,
            bytes: ops.bytes,
            alone,
        };
        let client = &self.client;
        let answer = self
            .commits
            .submit(q, |b| batch::flush_commits(client, b))
            .await;
        match answer {
            Some(CommitA::Applied(rev)) => {
                if let Some(c) = claim {
                    c.applied(rev);
                }
                Ok(Revision(rev.to_string()))
            }
            Some(CommitA::Failed(counts)) => Err(self.explain(&others, &creates, &counts)),
            Some(CommitA::Overlap) => Err(self.conflict_on(&others, &creates)),
            Some(CommitA::Error(e)) => Err(e),
            None => Err(spiderpool_core::Error::Unavailable {
                reason: "etcd commit cancelled, outcome unknown".into(),
            }),
        }
    }
}

/// Transactions with more operations or compares than this are sent on their own (etcd's
/// `--max-txn-ops` limit applies to each nested transaction, but a big one would make the
/// whole batch fail with it).
const ALONE_OPS: usize = 48;

fn set_rv(o: &mut Object, rev: i64) {
    let meta = match o {
        Object::IpPool(x) => Some(&mut x.metadata),
        Object::Subnet(x) => Some(&mut x.metadata),
        Object::ReservedIp(x) => Some(&mut x.metadata),
        Object::Endpoint(x) => Some(&mut x.metadata),
        Object::Other(_) => None,
    };
    if let Some(m) = meta {
        m.resource_version = Some(rev.to_string());
    }
}
