//! A [`Store`] on the Kubernetes API server: Spiderpool's own CRDs
//! (`spiderpool.spidernet.io/v2beta1`), so that our engine runs under the same objects and the
//! same `kubectl get sp` as Spiderpool.
//!
//! - revisions are `metadata.resourceVersion`; every write sends the revision it expects and
//!   the API server's 409 becomes [`Error::Conflict`], 404
//!   [`Error::NotFound`];
//! - the kinds have a status subresource: an update writes the object, then its status, each
//!   with the revision the previous step returned; an update of a pool or subnet that changes
//!   only the status (every allocation and release) is one PUT on `/status` with the expected
//!   revision, when the store knows the object at that revision (it keeps the last pools and
//!   subnets it read or wrote, see [`KubeStore`]);
//! - the API server has no multi-object transactions ([`Store::is_atomic`] is false): the
//!   engine orders its writes so that every prefix of a plan is safe;
//! - a deletion first drops the object's finalizers (the engine deletes pools and endpoints
//!   only once they hold nothing), then deletes with the revision as precondition.
//!
//! Only the four Spiderpool kinds live here; other kinds (the emulation's pods and workloads)
//! belong to the cluster itself and are [`Unsupported`](spiderpool_core::Error::Unsupported).
//!
//! Around the store:
//! - [`crd`]: the CRDs, generated from the core's types (`spiderpoolctl crds`,
//!   `deploy/crds.yaml`);
//! - [`webhook`], [`webhook_server`]: the admission webhook's decisions and serving them over
//!   TLS (rustls);
//! - [`controller`]: auto-pools, reclaim, finalizers and GC in step with the workloads and pods
//!   (the `spiderpool-controller` binary runs it on the replica holding the [`lease`]);
//! - `deploy/`: the manifests (CRDs, RBAC, controller, webhook configurations, the plugin's
//!   DaemonSet); `docs/kubernetes.md` explains installing them.
//!
//! # Example
//!
//! ```
//! // The CRDs `spiderpoolctl crds` prints, generated from the core's types.
//! let crds = backend_kube::crd::crds();
//! let names: Vec<&str> = crds.iter().map(|c| c["metadata"]["name"].as_str().unwrap()).collect();
//! assert_eq!(names[0], "spiderippools.spiderpool.spidernet.io");
//! assert_eq!(crds[0]["spec"]["names"]["shortNames"][0], "sp");
//!
//! // Leader election's rule: a free Lease is taken, a live one held by another is waited on.
//! use backend_kube::lease::{decide, Decision};
//! assert_eq!(decide(None, "controller-0", 0), Decision::Take);
//! // With a client: `let store = backend_kube::KubeStore::new(kube::Client::try_default().await?);`
//! ```
#![deny(missing_docs)]

pub mod controller;
pub mod crd;
pub mod lease;
pub mod webhook;
pub mod webhook_server;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::TryStreamExt;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use serde_json::Value;
use spiderpool_core::model::{object_from_value, Object};
use spiderpool_core::store::{Change, Key, Revision, Store, Stored};
use spiderpool_core::Error;

/// The API resource of one of Spiderpool's kinds.
pub fn api_resource(kind: &str) -> Option<(ApiResource, bool)> {
    let (plural, namespaced) = match kind {
        "SpiderIPPool" => ("spiderippools", false),
        "SpiderSubnet" => ("spidersubnets", false),
        "SpiderReservedIP" => ("spiderreservedips", false),
        "SpiderEndpoint" => ("spiderendpoints", true),
        _ => return None,
    };
    let gvk = GroupVersionKind::gvk("spiderpool.spidernet.io", "v2beta1", kind);
    Some((ApiResource::from_gvk_with_plural(&gvk, plural), namespaced))
}

/// The store over a Kubernetes client.
///
/// It remembers the pools and subnets it last read or wrote (at which revision, and what they
/// held): an update computed from one of them that changes only the status then skips the
/// main PUT, which would change nothing. A resourceVersion names one state of one object, so
/// this is exact; a stale or missing entry only costs the main PUT.
#[derive(Clone)]
pub struct KubeStore {
    client: Client,
    seen: Arc<Mutex<HashMap<Key, Seen>>>,
}

/// A pool or subnet as last read or written: its revision, and the object without status and
/// resourceVersion, and its status.
struct Seen {
    revision: Revision,
    main: Value,
    status: Option<Value>,
}

/// The object without status and resourceVersion, and its status.
fn split(object: &Object) -> (Value, Option<Value>) {
    let mut main = object.to_value();
    let status = main
        .as_object_mut()
        .and_then(|m| m.remove("status"))
        .filter(|s| !s.is_null());
    if let Some(meta) = main.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    (main, status)
}

impl KubeStore {
    /// A store over `client` (from a kubeconfig, in-cluster config, or a test service).
    pub fn new(client: Client) -> Self {
        KubeStore {
            client,
            seen: Arc::default(),
        }
    }

    /// Remembers `stored` if it is a pool or subnet.
    fn remember(&self, stored: &Stored) {
        if !matches!(stored.object, Object::IpPool(_) | Object::Subnet(_)) {
            return;
        }
        let (main, status) = split(&stored.object);
        let seen = Seen {
            revision: stored.revision.clone(),
            main,
            status,
        };
        if let Ok(mut map) = self.seen.lock() {
            map.insert(Key::of(&stored.object), seen);
        }
    }

    /// Whether the object at `expected` is known to equal `main` apart from its status, and
    /// if so, whether its status equals `status` too (`None`: not known).
    fn known(
        &self,
        key: &Key,
        expected: &Revision,
        main: &Value,
        status: &Option<Value>,
    ) -> Option<bool> {
        let map = self.seen.lock().ok()?;
        let seen = map.get(key)?;
        (seen.revision == *expected && seen.main == *main).then(|| seen.status == *status)
    }

    fn api(&self, kind: &str, namespace: Option<&str>) -> Result<Api<DynamicObject>, Error> {
        let (ar, namespaced) = api_resource(kind).ok_or_else(|| Error::Unsupported {
            what: format!("{kind} objects in the Kubernetes store (they belong to the cluster)"),
        })?;
        Ok(match (namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            (true, None) => Api::all_with(self.client.clone(), &ar),
            (false, _) => Api::all_with(self.client.clone(), &ar),
        })
    }

    fn api_for(&self, key: &Key) -> Result<Api<DynamicObject>, Error> {
        self.api(&key.kind, key.namespace.as_deref())
    }
}

/// Maps an API error for `key`: 409 conflict or exists, 404 not found, the rest unavailable.
fn api_error(key: &Key, expected: Option<&Revision>, e: kube::Error) -> Error {
    match &e {
        kube::Error::Api(status) if status.code == 404 => Error::NotFound {
            key: key.to_string(),
        },
        kube::Error::Api(status) if status.code == 409 && status.reason == "AlreadyExists" => {
            Error::AlreadyExists {
                kind: key.kind.clone(),
                name: key
                    .namespace
                    .as_ref()
                    .map_or(key.name.clone(), |ns| format!("{ns}/{}", key.name)),
            }
        }
        kube::Error::Api(status) if status.code == 409 => Error::Conflict {
            key: key.to_string(),
            expected: expected.map(|r| r.0.clone()).unwrap_or_default(),
        },
        kube::Error::Api(status) if status.code == 422 || status.code == 400 => Error::Storage {
            store: "kubernetes".into(),
            reason: format!("{key}: {}", status.message),
        },
        _ => Error::Unavailable {
            reason: format!("{key}: {e}"),
        },
    }
}

fn to_dynamic(object: &Object) -> Result<DynamicObject, Error> {
    serde_json::from_value(object.to_value()).map_err(|e| Error::Storage {
        store: "kubernetes".into(),
        reason: format!("{}: {e}", Key::of(object)),
    })
}

fn from_dynamic(d: DynamicObject) -> Result<Stored, Error> {
    let value = serde_json::to_value(&d).map_err(|e| Error::Storage {
        store: "kubernetes".into(),
        reason: e.to_string(),
    })?;
    let revision = Revision(d.metadata.resource_version.clone().unwrap_or_default());
    let name = d.metadata.name.clone().unwrap_or_default();
    let object = object_from_value(&format!("kubernetes object {name}"), value).map_err(|e| {
        Error::Storage {
            store: "kubernetes".into(),
            reason: e.to_string(),
        }
    })?;
    Ok(Stored { object, revision })
}

fn status_of(object: &Object) -> Option<Value> {
    object
        .to_value()
        .get("status")
        .cloned()
        .filter(|s| !s.is_null())
}

#[async_trait]
impl Store for KubeStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, Error> {
        let api = self.api_for(key)?;
        match api
            .get_opt(&key.name)
            .await
            .map_err(|e| api_error(key, None, e))?
        {
            Some(d) => {
                let stored = from_dynamic(d)?;
                self.remember(&stored);
                Ok(Some(stored))
            }
            None => Ok(None),
        }
    }

    async fn list(&self, kind: &str) -> Result<Vec<Stored>, Error> {
        let api = self.api(kind, None)?;
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| api_error(&Key::cluster(kind, ""), None, e))?;
        let mut out: Vec<Stored> = list
            .items
            .into_iter()
            .map(from_dynamic)
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|s| Key::of(&s.object));
        for s in &out {
            self.remember(s);
        }
        Ok(out)
    }

    async fn create(&self, object: Object) -> Result<Revision, Error> {
        let key = Key::of(&object);
        let api = self.api_for(&key)?;
        let created = api
            .create(&PostParams::default(), &to_dynamic(&object)?)
            .await
            .map_err(|e| api_error(&key, None, e))?;
        let rv = Revision(
            created
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default(),
        );
        match status_of(&object) {
            // The status subresource ignores status on create: write it next.
            Some(status) => self.write_status(&key, &api, status, &rv).await,
            None => Ok(rv),
        }
    }

    async fn update(&self, object: Object, expected: &Revision) -> Result<Revision, Error> {
        let key = Key::of(&object);
        let api = self.api_for(&key)?;
        let (main, wanted) = split(&object);
        // Only the status changes: the PUT on /status checks the revision just as the main PUT
        // would, and the main part at that revision is what the caller sent. (An update that
        // changes nothing still goes to the API server, which checks the revision.)
        if self.known(&key, expected, &main, &wanted) == Some(false) {
            let status = wanted.unwrap_or(Value::Object(Default::default()));
            return self.write_status(&key, &api, status, expected).await;
        }
        let mut d = to_dynamic(&object)?;
        d.metadata.resource_version = Some(expected.0.clone());
        let replaced = api
            .replace(&key.name, &PostParams::default(), &d)
            .await
            .map_err(|e| api_error(&key, Some(expected), e))?;
        let rv = Revision(
            replaced
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default(),
        );
        let stored_status = serde_json::to_value(&replaced)
            .ok()
            .and_then(|v| v.get("status").cloned())
            .filter(|s| !s.is_null());
        if wanted == stored_status {
            if let Ok(stored) = from_dynamic(replaced) {
                self.remember(&stored);
            }
            return Ok(rv);
        }
        self.write_status(
            &key,
            &api,
            wanted.unwrap_or(Value::Object(Default::default())),
            &rv,
        )
        .await
    }

    async fn delete(&self, key: &Key, expected: &Revision) -> Result<(), Error> {
        let api = self.api_for(key)?;
        let mut rv = expected.clone();
        // Finalizers would keep the object terminating: the engine deletes only what holds
        // nothing, so it drops them first (with the revision as precondition).
        if let Some(current) = api
            .get_opt(&key.name)
            .await
            .map_err(|e| api_error(key, Some(expected), e))?
        {
            if current.metadata.resource_version.as_deref() != Some(expected.0.as_str()) {
                return Err(Error::Conflict {
                    key: key.to_string(),
                    expected: expected.0.clone(),
                });
            }
            if current
                .metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| !f.is_empty())
            {
                let mut d = current.clone();
                d.metadata.finalizers = None;
                let replaced = api
                    .replace(&key.name, &PostParams::default(), &d)
                    .await
                    .map_err(|e| api_error(key, Some(expected), e))?;
                rv = Revision(replaced.metadata.resource_version.unwrap_or_default());
            }
        } else {
            return Err(Error::NotFound {
                key: key.to_string(),
            });
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(rv.0.clone()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        api.delete(&key.name, &params)
            .await
            .map_err(|e| api_error(key, Some(&rv), e))?;
        if let Ok(mut map) = self.seen.lock() {
            map.remove(key);
        }
        Ok(())
    }

    async fn changes(&self, kind: &str, since: Option<&Revision>) -> Result<Vec<Change>, Error> {
        let Some(since) = since else {
            return Ok(self
                .list(kind)
                .await?
                .into_iter()
                .map(Change::Put)
                .collect());
        };
        let api = self.api(kind, None)?;
        let key = Key::cluster(kind, "");
        let params = WatchParams::default().timeout(Self::WATCH_SECONDS);
        let stream = api
            .watch(&params, &since.0)
            .await
            .map_err(|e| api_error(&key, None, e))?;
        let events: Vec<WatchEvent<DynamicObject>> = stream
            .try_collect()
            .await
            .map_err(|e| api_error(&key, None, e))?;
        let mut out = Vec::new();
        for event in events {
            match event {
                WatchEvent::Added(d) | WatchEvent::Modified(d) => {
                    out.push(Change::Put(from_dynamic(d)?))
                }
                WatchEvent::Deleted(d) => {
                    let revision =
                        Revision(d.metadata.resource_version.clone().unwrap_or_default());
                    let stored = from_dynamic(d)?;
                    out.push(Change::Deleted {
                        key: Key::of(&stored.object),
                        revision,
                    });
                }
                WatchEvent::Bookmark(_) => {}
                // 410 Gone: the revision was compacted away; the caller lists again.
                WatchEvent::Error(e) if e.code == 410 => {
                    return Err(Error::Expired {
                        revision: since.0.clone(),
                    })
                }
                WatchEvent::Error(e) => {
                    return Err(Error::Unavailable {
                        reason: format!("watch of {kind}: {}", e.message),
                    })
                }
            }
        }
        Ok(out)
    }
}

impl KubeStore {
    /// How long one watch call waits for further events after the backlog (seconds).
    const WATCH_SECONDS: u32 = 1;

    async fn write_status(
        &self,
        key: &Key,
        api: &Api<DynamicObject>,
        status: Value,
        rv: &Revision,
    ) -> Result<Revision, Error> {
        let body = serde_json::json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1",
            "kind": key.kind,
            "metadata": {"name": key.name, "namespace": key.namespace, "resourceVersion": rv.0},
            "status": status,
        });
        let d: DynamicObject = serde_json::from_value(body).map_err(|e| Error::Storage {
            store: "kubernetes".into(),
            reason: e.to_string(),
        })?;
        let done = api
            .replace_status(&key.name, &PostParams::default(), &d)
            .await
            .map_err(|e| api_error(key, Some(rv), e))?;
        let revision = Revision(done.metadata.resource_version.clone().unwrap_or_default());
        if let Ok(stored) = from_dynamic(done) {
            self.remember(&stored);
        }
        Ok(revision)
    }
}
