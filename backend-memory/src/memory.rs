//! The in-memory store.

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use spiderpool_core::model::Object;
use spiderpool_core::store::{Change, Key, Revision, Store, Stored, Write};
use spiderpool_core::Error;

use crate::objects::Objects;

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
    objects: Objects,
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
            .objects
            .values()
            .map(|(o, _)| o.clone())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation is a single insert or remove, so a panic elsewhere while the lock
        // was held cannot have left the map half-written: a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// Consumes the first injected fault if it applies to an operation on `kind` (`Some`
    /// for updates and commits, `None` for reads and creates).
    fn fault(&mut self, kind: Option<&str>) -> Result<(), Error> {
        let Some(first) = self.faults.first_mut() else {
            return Ok(());
        };
        let conflict = |kind: Option<&str>| Error::Conflict {
            key: format!("{} (injected)", kind.unwrap_or_default()),
            expected: "?".into(),
        };
        let (err, spent) = match first {
            Fault::ConflictAfter { passing } if kind.is_some() => {
                if *passing == 0 {
                    (Some(conflict(kind)), true)
                } else {
                    *passing -= 1;
                    (None, false)
                }
            }
            Fault::ConflictAfter { .. } => (None, false),
            Fault::Unavailable { count } => {
                *count -= 1;
                let err = Error::Unavailable {
                    reason: "injected fault".into(),
                };
                (Some(err), *count == 0)
            }
            Fault::Conflicts { kind: want, count } => {
                let hit = match (want.as_deref(), kind) {
                    (None, Some(_)) => true,
                    (Some(w), Some(k)) => w == k,
                    _ => false,
                };
                if hit {
                    *count -= 1;
                    (Some(conflict(kind)), *count == 0)
                } else {
                    (None, false)
                }
            }
        };
        if spent {
            self.faults.remove(0);
        }
        err.map_or(Ok(()), Err)
    }

    fn record(&mut self, changes: Vec<Change>) {
        let rev = self.objects.revision;
        self.log.extend(changes.into_iter().map(|c| (rev, c)));
        if self.log.len() > LOG_CAPACITY {
            let excess = self.log.len() - LOG_CAPACITY;
            self.log.drain(..excess);
        }
    }

    fn one(&mut self, write: Write) -> Result<Revision, Error> {
        let kind = write.key().kind;
        let is_update = matches!(write, Write::Update { .. });
        self.fault(if is_update { Some(&kind) } else { None })?;
        let change = self.objects.one(write)?;
        self.record(vec![change]);
        Ok(Revision(self.objects.revision.to_string()))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, Error> {
        let mut s = self.lock();
        s.fault(None)?;
        Ok(s.objects.get(key))
    }

    async fn list(&self, kind: &str) -> Result<Vec<Stored>, Error> {
        let mut s = self.lock();
        s.fault(None)?;
        Ok(s.objects.list(kind))
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
        let changes = s.objects.all(writes)?;
        s.record(changes);
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
            if since != 0 && since + 1 < *oldest {
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
