//! The mock server's state: objects, the revision counter, the event log, and the write
//! operations the API server performs (create, replace, delete), shared by the HTTP handler
//! and the test helpers.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::{json, Value};

use super::path::{is_cluster_scoped, plural_of, ObjectKey};
use super::select::Selector;

/// The creation timestamp of every object (the mock has no clock).
const CREATED: &str = "2026-01-01T00:00:00Z";
/// The deletion timestamp set when a delete waits for finalizers.
const DELETING: &str = "2026-01-01T00:00:01Z";

/// One change, for watches.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub revision: u64,
    pub key: ObjectKey,
    pub kind: &'static str,
    pub object: Value,
}

/// A failed request: the `Status` the API server answers.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(code: StatusCode, reason: &'static str, message: String) -> Self {
        ApiError {
            code,
            reason,
            message,
        }
    }

    fn not_found(key: &ObjectKey) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{}\" not found", key.plural, key.name),
        )
    }
}

/// What a PUT replaces.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Replace {
    /// The main resource: status is kept from the stored object.
    Main,
    /// The status subresource: only status is taken.
    Status,
    /// Everything, unconditionally (the test helper `update`).
    Whole,
}

/// The outcome of a delete.
pub(crate) enum Deleted {
    /// Finalizers remain: the object now has a deletionTimestamp.
    Terminating(Value),
    /// The object is gone; its last state.
    Gone(Value),
}

/// The API server's state, shared between the server and the test as [`super::Shared`].
#[derive(Default)]
pub struct State {
    objects: BTreeMap<ObjectKey, Value>,
    revision: u64,
    uids: u64,
    log: Vec<Event>,
    /// Requests served, by method (`GET`, `POST`, ...): for tests that count round trips.
    pub requests: BTreeMap<String, u64>,
    /// Revisions below this are compacted: a watch from them gets 410 Expired.
    pub compacted: u64,
    /// 409 answers given (AlreadyExists and Conflict): proof that contention happened.
    pub conflicts: u64,
}

fn rv_of(v: &Value) -> Option<&str> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

fn has_finalizers(v: &Value) -> bool {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// The key of a stored object, from its apiVersion, kind, namespace and name.
fn key_of_parts(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
    let namespace = if is_cluster_scoped(kind) {
        String::new()
    } else {
        namespace.unwrap_or("default").to_string()
    };
    ObjectKey {
        prefix: api_version.to_string(),
        plural: plural_of(kind),
        namespace,
        name: name.to_string(),
    }
}

fn key_of(object: &Value) -> ObjectKey {
    let field = |p: &str| object.pointer(p).and_then(Value::as_str);
    let (Some(api_version), Some(kind), Some(name)) = (
        field("/apiVersion"),
        field("/kind"),
        field("/metadata/name"),
    ) else {
        panic!("an object needs apiVersion, kind and metadata.name: {object}");
    };
    key_of_parts(api_version, kind, field("/metadata/namespace"), name)
}

impl State {
    /// The current revision (the last resourceVersion handed out).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Forgets history up to the current revision, as etcd compaction does: a watch from an
    /// older revision gets 410 Expired.
    pub fn compact(&mut self) {
        self.compacted = self.revision;
        self.log.clear();
    }

    /// Stores `object` as if created (path from apiVersion and kind: the plural is the
    /// lowercase kind plus `s`; Namespace, Node and the Spiderpool pool kinds are
    /// cluster-scoped, other kinds namespaced, defaulting to `default`), status included.
    /// Returns the stored object with uid, resourceVersion and creationTimestamp.
    /// Panics if the object exists.
    pub fn insert(&mut self, object: Value) -> Value {
        let key = key_of(&object);
        self.create(key, object, true).unwrap()
    }

    /// The stored object, if any (`namespace` is ignored for cluster-scoped kinds and
    /// defaults to `default` for namespaced ones).
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.objects
            .get(&key_of_parts(api_version, kind, namespace, name))
            .cloned()
    }

    /// Replaces a stored object unconditionally (status included), bumps its
    /// resourceVersion and records MODIFIED (or DELETED when a terminating object loses its
    /// last finalizer). Returns the stored object. Panics if the object does not exist.
    pub fn update(&mut self, object: Value) -> Value {
        let key = key_of(&object);
        self.replace(&key, object, Replace::Whole).unwrap()
    }

    /// Deletes an object as a DELETE does: with finalizers it only gets a deletionTimestamp.
    /// Returns the object's last state, `None` if it did not exist.
    pub fn remove(
        &mut self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let key = key_of_parts(api_version, kind, namespace, name);
        match self.delete(&key, None, None).ok()? {
            Deleted::Terminating(v) | Deleted::Gone(v) => Some(v),
        }
    }

    /// Every stored object of a kind, in all namespaces.
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let plural = plural_of(kind);
        self.objects
            .iter()
            .filter(|(k, _)| k.prefix == api_version && k.plural == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub(crate) fn count(&mut self, method: &str) {
        *self.requests.entry(method.to_string()).or_default() += 1;
    }

    pub(crate) fn conflict(&mut self, e: ApiError) -> ApiError {
        if e.code == StatusCode::CONFLICT {
            self.conflicts += 1;
        }
        e
    }

    fn record(&mut self, key: &ObjectKey, kind: &'static str, object: &Value) {
        self.log.push(Event {
            revision: self.revision,
            key: key.clone(),
            kind,
            object: object.clone(),
        });
    }

    fn bump(&mut self, v: &mut Value) {
        self.revision += 1;
        v["metadata"]["resourceVersion"] = json!(self.revision.to_string());
    }

    pub(crate) fn read(&self, key: &ObjectKey) -> Result<Value, ApiError> {
        self.objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(key))
    }

    /// Objects of a collection (all namespaces when `namespace` is empty) that `selector`
    /// selects.
    pub(crate) fn select(
        &self,
        prefix: &str,
        plural: &str,
        namespace: &str,
        selector: &Selector,
    ) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, v)| {
                k.prefix == prefix
                    && k.plural == plural
                    && (namespace.is_empty() || k.namespace == namespace)
                    && selector.matches(v)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Events after revision `from` in a collection, or `Err` with the 410 when `from` was
    /// compacted.
    pub(crate) fn events_after(
        &self,
        from: u64,
        prefix: &str,
        plural: &str,
        namespace: &str,
        selector: &Selector,
    ) -> Result<Vec<(&'static str, Value)>, ApiError> {
        if from < self.compacted {
            return Err(ApiError::new(
                StatusCode::GONE,
                "Expired",
                format!("too old resource version: {from} ({})", self.compacted),
            ));
        }
        Ok(self
            .log
            .iter()
            .filter(|e| {
                e.revision > from
                    && e.key.prefix == prefix
                    && e.key.plural == plural
                    && (namespace.is_empty() || e.key.namespace == namespace)
                    && selector.matches(&e.object)
            })
            .map(|e| (e.kind, e.object.clone()))
            .collect())
    }

    /// Creates the object at `key`: 409 AlreadyExists if the name is taken. Status is
    /// dropped unless `keep_status`.
    pub(crate) fn create(
        &mut self,
        key: ObjectKey,
        input: Value,
        keep_status: bool,
    ) -> Result<Value, ApiError> {
        if self.objects.contains_key(&key) {
            return Err(self.conflict(ApiError::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} \"{}\" already exists", key.plural, key.name),
            )));
        }
        let mut v = input;
        if !keep_status {
            if let Some(o) = v.as_object_mut() {
                o.remove("status");
            }
        }
        self.uids += 1;
        v["metadata"]["uid"] = json!(format!("uid-{}", self.uids));
        v["metadata"]["creationTimestamp"] = json!(CREATED);
        v["metadata"]["name"] = json!(key.name);
        if !key.namespace.is_empty() {
            v["metadata"]["namespace"] = json!(key.namespace);
        }
        self.bump(&mut v);
        self.objects.insert(key.clone(), v.clone());
        self.record(&key, "ADDED", &v);
        Ok(v)
    }

    /// Replaces the object at `key`. A resourceVersion in `input` must match (409 Conflict
    /// otherwise); none means an unconditional update. A no-op keeps the revision.
    pub(crate) fn replace(
        &mut self,
        key: &ObjectKey,
        input: Value,
        mode: Replace,
    ) -> Result<Value, ApiError> {
        let current = self.read(key)?;
        if let Some(rv) = rv_of(&input) {
            if mode != Replace::Whole && Some(rv) != rv_of(&current) {
                return Err(self.conflict(ApiError::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{}\": the object has been \
                         modified; please apply your changes to the latest version and try again",
                        key.plural, key.name
                    ),
                )));
            }
        }
        let mut next = match mode {
            Replace::Status => {
                let mut n = current.clone();
                n["status"] = input.get("status").cloned().unwrap_or(Value::Null);
                n
            }
            Replace::Main | Replace::Whole => {
                let mut n = input;
                if mode == Replace::Main {
                    match current.get("status") {
                        Some(st) => n["status"] = st.clone(),
                        None => {
                            if let Some(o) = n.as_object_mut() {
                                o.remove("status");
                            }
                        }
                    }
                }
                for f in ["uid", "creationTimestamp", "deletionTimestamp", "name"] {
                    match current["metadata"].get(f) {
                        Some(v) => n["metadata"][f] = v.clone(),
                        None => {
                            if let Some(m) = n["metadata"].as_object_mut() {
                                m.remove(f);
                            }
                        }
                    }
                }
                if !key.namespace.is_empty() {
                    n["metadata"]["namespace"] = json!(key.namespace);
                }
                n
            }
        };
        next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        if next == current {
            return Ok(current);
        }
        self.bump(&mut next);
        // An object being deleted goes once its last finalizer does.
        if current["metadata"].get("deletionTimestamp").is_some() && !has_finalizers(&next) {
            self.objects.remove(key);
            self.record(key, "DELETED", &next);
            return Ok(next);
        }
        self.objects.insert(key.clone(), next.clone());
        self.record(key, "MODIFIED", &next);
        Ok(next)
    }

    /// Deletes the object at `key`, if the preconditions (resourceVersion, uid) hold.
    pub(crate) fn delete(
        &mut self,
        key: &ObjectKey,
        want_rv: Option<&str>,
        want_uid: Option<&str>,
    ) -> Result<Deleted, ApiError> {
        let mut current = self.read(key)?;
        for (field, want) in [("resourceVersion", want_rv), ("uid", want_uid)] {
            let Some(want) = want else { continue };
            if current["metadata"].get(field).and_then(Value::as_str) != Some(want) {
                let name = if field == "uid" {
                    "UID"
                } else {
                    "ResourceVersion"
                };
                return Err(self.conflict(ApiError::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{}\": Precondition failed: \
                         {name} in precondition: {want}",
                        key.plural, key.name
                    ),
                )));
            }
        }
        if has_finalizers(&current) {
            if current["metadata"].get("deletionTimestamp").is_some() {
                return Ok(Deleted::Terminating(current));
            }
            current["metadata"]["deletionTimestamp"] = json!(DELETING);
            self.bump(&mut current);
            self.objects.insert(key.clone(), current.clone());
            self.record(key, "MODIFIED", &current);
            return Ok(Deleted::Terminating(current));
        }
        self.objects.remove(key);
        self.bump(&mut current);
        self.record(key, "DELETED", &current);
        Ok(Deleted::Gone(current))
    }
}
