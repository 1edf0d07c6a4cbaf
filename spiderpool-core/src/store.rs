//! The storage trait every backend implements, and the types it speaks.
//!
//! A store holds objects (the four Spiderpool kinds, plus whatever else a caller keeps, e.g.
//! the pods and workloads of the emulation, as [`Object::Other`]) each with an opaque
//! [`Revision`]. The primitives are the ones every backend can honour: get, list,
//! create-if-absent, update-if-revision, delete-if-revision, and an optional change feed.
//! Conflicts and absences are distinct errors ([`Error::Conflict`], [`Error::NotFound`],
//! [`Error::AlreadyExists`]) so the driver can retry exactly the retryable cases.
//!
//! Multi-object atomicity is optional ([`Store::commit`]): stores with transactions (etcd, the
//! local file store) apply a whole plan at once; others (Kubernetes) apply it write by write,
//! and the planner orders writes so that every prefix is safe (see [`crate::ipam`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use async_trait::async_trait;

use crate::model::{Object, SpiderEndpoint, SpiderIPPool, SpiderReservedIP, SpiderSubnet};
use crate::Error;

/// An object's identity in a store: kind, namespace (namespaced kinds only) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Kind name: `SpiderIPPool`, `SpiderSubnet`, `SpiderReservedIP`, `SpiderEndpoint`, or
    /// any other kind a caller stores.
    pub kind: String,
    /// Namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl Key {
    /// The key of a cluster-scoped object.
    pub fn cluster(kind: &str, name: &str) -> Self {
        Key {
            kind: kind.to_string(),
            namespace: None,
            name: name.to_string(),
        }
    }

    /// The key of a namespaced object.
    pub fn namespaced(kind: &str, namespace: &str, name: &str) -> Self {
        Key {
            kind: kind.to_string(),
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }

    /// The key of a SpiderIPPool.
    pub fn pool(name: &str) -> Self {
        Key::cluster(SpiderIPPool::KIND, name)
    }

    /// The key of a SpiderEndpoint.
    pub fn endpoint(namespace: &str, name: &str) -> Self {
        Key::namespaced(SpiderEndpoint::KIND, namespace, name)
    }

    /// The key of an object.
    pub fn of(object: &Object) -> Self {
        let (kind, meta_ns, name) = match object {
            Object::IpPool(o) => (SpiderIPPool::KIND, None, &o.metadata.name),
            Object::Subnet(o) => (SpiderSubnet::KIND, None, &o.metadata.name),
            Object::ReservedIp(o) => (SpiderReservedIP::KIND, None, &o.metadata.name),
            Object::Endpoint(o) => (
                SpiderEndpoint::KIND,
                Some(o.metadata.namespace.clone().unwrap_or_default()),
                &o.metadata.name,
            ),
            Object::Other(o) => (o.kind.as_str(), o.namespace.clone(), &o.name),
        };
        Key {
            kind: kind.to_string(),
            namespace: meta_ns,
            name: name.clone(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// An opaque version of a stored object (etcd `mod_revision`, Kubernetes `resourceVersion`, a
/// counter in the local store). Only equality means anything.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Revision(pub String);

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object as read from a store, with the revision it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The object.
    pub object: Object,
    /// Its revision.
    pub revision: Revision,
}

/// One write of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create; fails with [`Error::AlreadyExists`] if the key is taken.
    Create(Object),
    /// Replace; fails with [`Error::Conflict`] unless the stored revision is `expected`.
    Update {
        /// The new object.
        object: Object,
        /// The revision it was computed from.
        expected: Revision,
    },
    /// Delete; fails with [`Error::Conflict`] unless the stored revision is `expected`.
    Delete {
        /// What to delete.
        key: Key,
        /// The revision the decision was computed from.
        expected: Revision,
    },
}

impl Write {
    /// The key the write touches.
    pub fn key(&self) -> Key {
        match self {
            Write::Create(o) | Write::Update { object: o, .. } => Key::of(o),
            Write::Delete { key, .. } => key.clone(),
        }
    }
}

/// One change seen by [`Store::changes`].
// Changes are produced and consumed one at a time; boxing the object would gain nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Created or updated: the object as it now is.
    Put(Stored),
    /// Deleted.
    Deleted {
        /// The deleted object's key.
        key: Key,
        /// The revision of the deletion.
        revision: Revision,
    },
}

/// Storage for Spiderpool objects. Implementations must make every single-object operation
/// atomic and linearizable: two concurrent updates with the same expected revision never both
/// succeed.
#[async_trait]
pub trait Store: Send + Sync {
    /// The object under `key`, if any.
    async fn get(&self, key: &Key) -> Result<Option<Stored>, Error>;

    /// Every object of `kind`, in key order.
    async fn list(&self, kind: &str) -> Result<Vec<Stored>, Error>;

    /// Creates `object`; [`Error::AlreadyExists`] if its key is taken.
    async fn create(&self, object: Object) -> Result<Revision, Error>;

    /// Replaces the object if its revision is still `expected`; [`Error::Conflict`] if not,
    /// [`Error::NotFound`] if it is gone.
    async fn update(&self, object: Object, expected: &Revision) -> Result<Revision, Error>;

    /// Deletes the object if its revision is still `expected`.
    async fn delete(&self, key: &Key, expected: &Revision) -> Result<(), Error>;

    /// Whether [`Store::commit`] applies all writes or none.
    fn is_atomic(&self) -> bool {
        false
    }

    /// Addresses that commits of this process add to pools and that a read of the pool at the
    /// revision `seen` gives for it (`None`: not read) does not show yet: commits on their way,
    /// and ones applied after that read. Sorted, by pool. The driver hands them to the
    /// planner, which leaves them to those commits and takes the next free address, so that
    /// the concurrent allocations of one process (a node agent, a controller) do not all
    /// choose the same lowest free address and all but one fail. Only a hint: a listed
    /// address may turn out free (its commit failed) and an unlisted one taken (by another
    /// process); the commit's own checks decide. The default lists none (a store whose
    /// commits of one process do not overlap).
    fn in_flight(&self, seen: &dyn Fn(&str) -> Option<Revision>) -> BTreeMap<String, Vec<IpAddr>> {
        let _ = seen;
        BTreeMap::new()
    }

    /// Applies writes in order. Atomic stores apply all or none; the default applies them one
    /// by one and stops at the first failure (earlier writes stay applied).
    async fn commit(&self, writes: Vec<Write>) -> Result<(), Error> {
        for w in writes {
            match w {
                Write::Create(o) => {
                    self.create(o).await?;
                }
                Write::Update { object, expected } => {
                    self.update(object, &expected).await?;
                }
                Write::Delete { key, expected } => self.delete(&key, &expected).await?,
            }
        }
        Ok(())
    }

    /// Changes to objects of `kind` after revision `since` (all retained changes when `None`),
    /// oldest first, for controllers. A store may coalesce several changes of one object into
    /// its latest state (controllers are level-triggered). Stores without a change feed answer
    /// [`Error::Unsupported`]; a feed that no longer holds `since` answers
    /// [`Error::Expired`] and the caller lists again.
    async fn changes(&self, kind: &str, since: Option<&Revision>) -> Result<Vec<Change>, Error> {
        let _ = (kind, since);
        Err(Error::Unsupported {
            what: "change feed".to_string(),
        })
    }
}

/// Delegates every method of [`Store`] to the store a pointer type points to.
macro_rules! delegate_store {
    ($($doc:literal => $ty:ty),* $(,)?) => {$(
        #[doc = $doc]
        #[async_trait]
        impl<T: Store + ?Sized> Store for $ty {
            async fn get(&self, key: &Key) -> Result<Option<Stored>, Error> {
                (**self).get(key).await
            }
            async fn list(&self, kind: &str) -> Result<Vec<Stored>, Error> {
                (**self).list(kind).await
            }
            async fn create(&self, object: Object) -> Result<Revision, Error> {
                (**self).create(object).await
            }
            async fn update(&self, object: Object, expected: &Revision) -> Result<Revision, Error> {
                (**self).update(object, expected).await
            }
            async fn delete(&self, key: &Key, expected: &Revision) -> Result<(), Error> {
                (**self).delete(key, expected).await
            }
            fn is_atomic(&self) -> bool {
                (**self).is_atomic()
            }
            fn in_flight(
                &self,
                seen: &dyn Fn(&str) -> Option<Revision>,
            ) -> BTreeMap<String, Vec<IpAddr>> {
                (**self).in_flight(seen)
            }
            async fn commit(&self, writes: Vec<Write>) -> Result<(), Error> {
                (**self).commit(writes).await
            }
            async fn changes(&self, kind: &str, since: Option<&Revision>) -> Result<Vec<Change>, Error> {
                (**self).changes(kind, since).await
            }
        }
    )*};
}

delegate_store!(
    "A borrowed store is a store (an engine can work on a store its caller keeps)." => &T,
    "A shared store is a store (one store can serve several engines and tasks)." => std::sync::Arc<T>,
    "A boxed store is a store (a binary picks its store at run time: `Box<dyn Store>`)." => Box<T>,
);
