//! A versioned map of objects: the state both stores keep, with compare-and-swap writes.

use std::collections::{BTreeMap, BTreeSet};

use spiderpool_core::model::Object;
use spiderpool_core::store::{Change, Key, Revision, Stored, Write};
use spiderpool_core::Error;

/// Objects by key, each with the store revision of its last write.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Objects {
    pub(crate) objects: BTreeMap<Key, (Object, u64)>,
    /// The store's revision: incremented by every write.
    pub(crate) revision: u64,
}

fn stored(o: &Object, r: u64) -> Stored {
    Stored {
        object: o.clone(),
        revision: Revision(r.to_string()),
    }
}

impl Objects {
    pub(crate) fn get(&self, key: &Key) -> Option<Stored> {
        self.objects.get(key).map(|(o, r)| stored(o, *r))
    }

    pub(crate) fn list(&self, kind: &str) -> Vec<Stored> {
        self.objects
            .iter()
            .filter(|(k, _)| k.kind == kind)
            .map(|(_, (o, r))| stored(o, *r))
            .collect()
    }

    /// Whether `write` may be applied now.
    pub(crate) fn check(&self, write: &Write) -> Result<(), Error> {
        let key = write.key();
        check_revision(write, &key, self.objects.get(&key).map(|(_, r)| *r))
    }

    /// Applies a checked write; returns the change.
    pub(crate) fn apply(&mut self, write: Write) -> Change {
        let key = write.key();
        self.revision += 1;
        let rev = self.revision;
        match write {
            Write::Create(o) | Write::Update { object: o, .. } => {
                let o = with_revision(o, rev);
                self.objects.insert(key, (o.clone(), rev));
                Change::Put(stored(&o, rev))
            }
            Write::Delete { .. } => {
                self.objects.remove(&key);
                Change::Deleted {
                    key,
                    revision: Revision(rev.to_string()),
                }
            }
        }
    }

    /// Checks and applies one write.
    pub(crate) fn one(&mut self, write: Write) -> Result<Change, Error> {
        self.check(&write)?;
        Ok(self.apply(write))
    }

    /// Applies all writes or none.
    pub(crate) fn all(&mut self, writes: Vec<Write>) -> Result<Vec<Change>, Error> {
        let mut seen = BTreeSet::new();
        for w in &writes {
            if !seen.insert(w.key()) {
                return Err(Error::Unsupported {
                    what: format!("two writes to {} in one commit", w.key()),
                });
            }
            self.check(w)?;
        }
        Ok(writes.into_iter().map(|w| self.apply(w)).collect())
    }
}

/// Writes the store revision into the object's `metadata.resourceVersion`.
pub(crate) fn with_revision(mut o: Object, rev: u64) -> Object {
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

/// Whether `write` may be applied to the object at `key`, now at revision `current` (`None`:
/// absent): the compare-and-swap rule both stores apply.
pub(crate) fn check_revision(write: &Write, key: &Key, current: Option<u64>) -> Result<(), Error> {
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
