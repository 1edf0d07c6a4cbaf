//! An in-memory [`Store`] for spiderpool-rs: the reference store for tests, and a store for
//! programs that embed the engine and keep state themselves.
//!
//! Every operation holds one lock, so each is atomic and linearizable, and [`Store::commit`]
//! applies a whole plan or nothing (unless built with [`MemoryStore::non_atomic`], which
//! behaves like the Kubernetes API: write by write). Faults can be injected to test callers:
//! conflicts on the next updates, or an unavailable store.
//!
//! ```
//! use backend_memory::MemoryStore;
//! use spiderpool_core::ipam::Ipam;
//! use spiderpool_core::model::{IPPoolSpec, Object, SpiderIPPool};
//! use spiderpool_core::request::{AllocateRequest, PodRef};
//! use spiderpool_core::store::Store;
//!
//! # async fn demo() -> Result<(), spiderpool_core::Error> {
//! let store = MemoryStore::new();
//! let spec = IPPoolSpec {
//!     subnet: "10.6.0.0/24".into(),
//!     ips: vec!["10.6.0.10-10.6.0.20".into()],
//!     default: Some(true),
//!     ..IPPoolSpec::default()
//! };
//! store.create(Object::IpPool(SpiderIPPool::new("pool", spec))).await?;
//! let ipam = Ipam::new(store);
//! let req = AllocateRequest {
//!     pod: PodRef::new("default", "web-1", "uid-1"),
//!     ifname: "eth0".into(),
//!     ..AllocateRequest::default()
//! };
//! let ips = ipam.allocate(&req).await?;
//! assert_eq!(ips[0].ipv4.as_deref(), Some("10.6.0.10/24"));
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use spiderpool_core::model::Object;
use spiderpool_core::store::{Change, Key, Revision, Store, Stored, Write};
use spiderpool_core::Error;

/// A fault to inject into the next operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next `count` updates (or commits) of objects of `kind` fail with a conflict.
    Conflicts {
        /// Kind of the objects (`SpiderIPPool`, …); `None` for any.
        kind: Option<String>,
        /// How many.
        count: usize,
    },
    /// The next `count` operations of any kind fail as unavailable.
    Unavailable {
        /// How many.
        count: usize,
    },
    /// After `passing` more updates succeed, the next update fails with a conflict: a
    /// conflict in the middle of a plan, for stores that apply plans write by write.
    ConflictAfter {
        /// Updates that still succeed first.
        passing: usize,
    },
}

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, (Object, u64)>,
    revision: u64,
    log: Vec<(u64, Change)>,
    faults: Vec<Fault>,
}

/// The in-memory store. Cheap to create; share it behind an `Arc` between tasks.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    non_atomic: bool,
}

/// How many changes the feed keeps.
const LOG_CAPACITY: usize = 100_000;

impl MemoryStore {
    /// An empty store whose [`Store::commit`] is atomic.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// An empty store that applies plans write by write, like the Kubernetes API, so that
    /// callers can be tested against partial application.
    pub fn non_atomic() -> Self {
        MemoryStore {
            state: Mutex::default(),
            non_atomic: true,
        }
    }

    /// Injects a fault; faults apply in the order injected.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Drops the faults not yet consumed.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Every object, in key order (for tests and dumps).
    pub fn objects(&self) -> Vec<Object> {
        self.lock()
            .objects
            .values()
            .map(|(o, _)| o.clone())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-written (every mutation
        // is a single insert or remove), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn fault(&mut self, kind: Option<&str>) -> Result<(), Error> {
        let Some(first) = self.faults.first_mut() else {
            return Ok(());
        };
        let err = match first {
            Fault::ConflictAfter { passing } if kind.is_some() => {
                if *passing == 0 {
                    self.faults.remove(0);
                    return Err(Error::Conflict {
                        key: format!("{} (injected)", kind.unwrap_or_default()),
                        expected: "?".into(),
                    });
                }
                *passing -= 1;
                None
            }
            Fault::ConflictAfter { .. } => None,
            Fault::Unavailable { count } => {
                *count -= 1;
                Some(Error::Unavailable {
                    reason: "injected fault".into(),
                })
            }
            Fault::Conflicts { kind: want, count } => {
                let hit = match (want.as_deref(), kind) {
                    (None, Some(_)) => true,
                    (Some(w), Some(k)) => w == k,
                    _ => false,
                };
                if hit {
                    *count -= 1;
                    Some(Error::Conflict {
                        key: format!("{} (injected)", kind.unwrap_or_default()),
                        expected: "?".into(),
                    })
                } else {
                    None
                }
            }
        };
        if matches!(
            self.faults.first(),
            Some(Fault::Unavailable { count: 0 } | Fault::Conflicts { count: 0, .. })
        ) {
            self.faults.remove(0);
        }
        err.map_or(Ok(()), Err)
    }

    fn bump(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    fn record(&mut self, change: Change) {
        let rev = self.revision;
        self.log.push((rev, change));
        if self.log.len() > LOG_CAPACITY {
            let excess = self.log.len() - LOG_CAPACITY;
            self.log.drain(..excess);
        }
    }

    fn check(&self, write: &Write) -> Result<(), Error> {
        let key = write.key();
        let current = self.objects.get(&key).map(|(_, r)| *r);
        match (write, current) {
            (Write::Create(_), Some(_)) => Err(Error::AlreadyExists {
                kind: key.kind.clone(),
                name: key
                    .namespace
                    .as_ref()
                    .map_or(key.name.clone(), |ns| format!("{ns}/{}", key.name)),
            }),
            (Write::Update { .. } | Write::Delete { .. }, None) => Err(Error::NotFound {
                key: key.to_string(),
            }),
            (Write::Update { expected, .. } | Write::Delete { expected, .. }, Some(r))
                if expected.0 != r.to_string() =>
            {
                Err(Error::Conflict {
                    key: key.to_string(),
                    expected: expected.0.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    fn apply(&mut self, write: Write) -> Revision {
        let key = write.key();
        let rev = self.bump();
        match write {
            Write::Create(o) | Write::Update { object: o, .. } => {
                let o = with_revision(o, rev);
                self.objects.insert(key, (o.clone(), rev));
                self.record(Change::Put(Stored {
                    object: o,
                    revision: Revision(rev.to_string()),
                }));
            }
            Write::Delete { .. } => {
                self.objects.remove(&key);
                self.record(Change::Deleted {
                    key,
                    revision: Revision(rev.to_string()),
                });
            }
        }
        Revision(rev.to_string())
    }

    fn one(&mut self, write: Write) -> Result<Revision, Error> {
        let kind = write.key().kind;
        self.fault(if matches!(write, Write::Update { .. }) {
            Some(&kind)
        } else {
            None
        })?;
        self.check(&write)?;
        Ok(self.apply(write))
    }
}

/// Writes the store revision into the object's `metadata.resourceVersion`.
fn with_revision(mut o: Object, rev: u64) -> Object {
    let meta = match &mut o {
        Object::IpPool(x) => Some(&mut x.metadata),
        Object::Subnet(x) => Some(&mut x.metadata),
        Object::ReservedIp(x) => Some(&mut x.metadata),
        Object::Endpoint(x) => Some(&mut x.metadata),
        Object::Other(_) => None,
    };
    if let Some(m) = meta {
        m.resource_version = Some(rev.to_string());
    }
    o
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, Error> {
        let mut s = self.lock();
        s.fault(None)?;
        Ok(s.objects.get(key).map(|(o, r)| Stored {
            object: o.clone(),
            revision: Revision(r.to_string()),
        }))
    }

    async fn list(&self, kind: &str) -> Result<Vec<Stored>, Error> {
        let mut s = self.lock();
        s.fault(None)?;
        Ok(s.objects
            .iter()
            .filter(|(k, _)| k.kind == kind)
            .map(|(_, (o, r))| Stored {
                object: o.clone(),
                revision: Revision(r.to_string()),
            })
            .collect())
    }

    async fn create(&self, object: Object) -> Result<Revision, Error> {
        self.lock().one(Write::Create(object))
    }

    async fn update(&self, object: Object, expected: &Revision) -> Result<Revision, Error> {
        self.lock().one(Write::Update {
            object,
            expected: expected.clone(),
        })
    }

    async fn delete(&self, key: &Key, expected: &Revision) -> Result<(), Error> {
        self.lock()
            .one(Write::Delete {
                key: key.clone(),
                expected: expected.clone(),
            })
            .map(|_| ())
    }

    fn is_atomic(&self) -> bool {
        !self.non_atomic
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<(), Error> {
        let mut s = self.lock();
        if self.non_atomic {
            for w in writes {
                s.one(w)?;
            }
            return Ok(());
        }
        let kind = writes
            .iter()
            .find(|w| matches!(w, Write::Update { .. }))
            .map(|w| w.key().kind);
        s.fault(kind.as_deref())?;
        for w in &writes {
            s.check(w)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for w in &writes {
            if !seen.insert(w.key()) {
                return Err(Error::Unsupported {
                    what: format!("two writes to {} in one commit", w.key()),
                });
            }
        }
        for w in writes {
            s.apply(w);
        }
        Ok(())
    }

    async fn changes(&self, kind: &str, since: Option<&Revision>) -> Result<Vec<Change>, Error> {
        let s = self.lock();
        let since: u64 = match since {
            None => 0,
            Some(r) => r.0.parse().map_err(|_| Error::Expired {
                revision: r.0.clone(),
            })?,
        };
        if let Some((oldest, _)) = s.log.first() {
            if since + 1 < *oldest && since != 0 {
                return Err(Error::Expired {
                    revision: since.to_string(),
                });
            }
        }
        Ok(s.log
            .iter()
            .filter(|(r, c)| {
                *r > since
                    && match c {
                        Change::Put(st) => Key::of(&st.object).kind == kind,
                        Change::Deleted { key, .. } => key.kind == kind,
                    }
            })
            .map(|(_, c)| c.clone())
            .collect())
    }
}
