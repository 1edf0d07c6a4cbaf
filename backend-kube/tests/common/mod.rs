//! A faithful in-process Kubernetes API server for the four Spiderpool kinds, served to kube-rs
//! as a `tower` service (the kube-rs way of testing without a cluster). It keeps objects,
//! increments resourceVersions, honours the status subresource (status ignored on create and
//! on main-resource updates, only status taken on `/status`), answers 409 on a stale update or
//! an existing name, 404 on a missing object, honours delete preconditions and finalizers.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{json, Value};

#[derive(Default)]
pub struct State {
    /// (plural, namespace, name) -> object.
    objects: BTreeMap<(String, String, String), Value>,
    revision: u64,
    uids: u64,
    /// Requests served, by method: for tests that count round trips.
    pub requests: BTreeMap<String, u64>,
    /// (revision, plural, namespace, type, object) of every change, for watches.
    log: Vec<(u64, String, String, &'static str, Value)>,
    /// Revisions at or below this are compacted: a watch from them gets 410 Gone.
    pub compacted: u64,
}

impl State {
    fn record(&mut self, plural: &str, ns: &str, kind: &'static str, object: &Value) {
        self.log.push((
            self.revision,
            plural.to_string(),
            ns.to_string(),
            kind,
            object.clone(),
        ));
    }

    /// Forgets history up to the current revision, as etcd compaction does.
    pub fn compact(&mut self) {
        self.compacted = self.revision;
        self.log.clear();
    }
}

/// The mock server's state, shared with the test.
pub type Shared = Arc<Mutex<State>>;

fn status(code: StatusCode, reason: &str, message: String) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code.as_u16()});
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string().into_bytes()))
        .unwrap()
}

/// The API server's 404 for a missing object.
fn not_found(plural: &str, name: &str) -> Response<Body> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{plural} \"{name}\" not found"),
    )
}

fn ok(code: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string().into_bytes()))
        .unwrap()
}

/// (plural, namespace, name, is status) from a path.
fn route(path: &str) -> Option<(String, String, Option<String>, bool)> {
    let rest = path.strip_prefix("/apis/spiderpool.spidernet.io/v2beta1/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let (ns, parts) = if parts.first() == Some(&"namespaces") && parts.len() >= 3 {
        (parts[1].to_string(), &parts[2..])
    } else {
        (String::new(), &parts[..])
    };
    match parts {
        [plural] => Some((plural.to_string(), ns, None, false)),
        [plural, name] => Some((plural.to_string(), ns, Some(name.to_string()), false)),
        [plural, name, "status"] => Some((plural.to_string(), ns, Some(name.to_string()), true)),
        _ => None,
    }
}

pub async fn handle(state: Shared, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let bytes = body.collect_bytes().await.unwrap_or_default();
    let input: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    *s.requests.entry(parts.method.to_string()).or_default() += 1;
    let Some((plural, ns, name, is_status)) = route(parts.uri.path()) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no route {}", parts.uri.path()),
        );
    };
    let rv_of = |v: &Value| {
        v.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match (parts.method.clone(), name) {
        (Method::GET, None)
            if parts
                .uri
                .query()
                .is_some_and(|q| q.contains("watch=true") || q.contains("watch=1")) =>
        {
            let query = parts.uri.query().unwrap_or_default();
            let from: u64 = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("resourceVersion="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = String::new();
            if from < s.compacted {
                body.push_str(&json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": format!("too old resource version: {from}"), "reason": "Expired", "code": 410}}).to_string());
                body.push('\n');
            } else {
                for (rev, p, n, kind, obj) in &s.log {
                    if *rev > from && *p == plural && (ns.is_empty() || *n == ns) {
                        body.push_str(&json!({"type": kind, "object": obj}).to_string());
                        body.push('\n');
                    }
                }
            }
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(Body::from(body.into_bytes()))
                .unwrap()
        }
        (Method::GET, None) => {
            let items: Vec<Value> = s
                .objects
                .iter()
                .filter(|((p, n, _), _)| *p == plural && (ns.is_empty() || *n == ns))
                .map(|(_, v)| v.clone())
                .collect();
            ok(
                StatusCode::OK,
                &json!({"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "List", "metadata": {"resourceVersion": s.revision.to_string()}, "items": items}),
            )
        }
        (Method::GET, Some(name)) => {
            match s.objects.get(&(plural.clone(), ns.clone(), name.clone())) {
                Some(v) => ok(StatusCode::OK, v),
                None => not_found(&plural, &name),
            }
        }
        (Method::POST, None) => {
            let name = input
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let key = (plural.clone(), ns.clone(), name.clone());
            if s.objects.contains_key(&key) {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    format!("{plural} \"{name}\" already exists"),
                );
            }
            s.revision += 1;
            s.uids += 1;
            let mut v = input.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("status");
            }
            v["metadata"]["resourceVersion"] = json!(s.revision.to_string());
            v["metadata"]["uid"] = json!(format!("uid-{}", s.uids));
            v["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            if !ns.is_empty() {
                v["metadata"]["namespace"] = json!(ns);
            }
            s.objects.insert(key, v.clone());
            s.record(&plural, &ns, "ADDED", &v);
            ok(StatusCode::CREATED, &v)
        }
        (Method::PUT, Some(name)) => {
            let key = (plural.clone(), ns.clone(), name.clone());
            let Some(current) = s.objects.get(&key).cloned() else {
                return not_found(&plural, &name);
            };
            if rv_of(&input) != rv_of(&current) {
                return status(StatusCode::CONFLICT, "Conflict", format!("Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"));
            }
            let mut next = if is_status {
                let mut n = current.clone();
                n["status"] = input.get("status").cloned().unwrap_or(Value::Null);
                n
            } else {
                let mut n = input.clone();
                match current.get("status") {
                    Some(st) => n["status"] = st.clone(),
                    None => {
                        if let Some(o) = n.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
                for f in ["uid", "creationTimestamp", "deletionTimestamp"] {
                    if let Some(v) = current["metadata"].get(f) {
                        n["metadata"][f] = v.clone();
                    }
                }
                n
            };
            if next == current {
                return ok(StatusCode::OK, &current);
            }
            // An object being deleted goes once its last finalizer does.
            let finalizers_gone = next
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty());
            if current["metadata"].get("deletionTimestamp").is_some() && finalizers_gone {
                s.revision += 1;
                s.objects.remove(&key);
                next["metadata"]["resourceVersion"] = json!(s.revision.to_string());
                s.record(&plural, &ns, "DELETED", &next);
                return ok(StatusCode::OK, &next);
            }
            s.revision += 1;
            next["metadata"]["resourceVersion"] = json!(s.revision.to_string());
            s.objects.insert(key, next.clone());
            s.record(&plural, &ns, "MODIFIED", &next);
            ok(StatusCode::OK, &next)
        }
        (Method::DELETE, Some(name)) => {
            let key = (plural.clone(), ns.clone(), name.clone());
            let Some(current) = s.objects.get(&key).cloned() else {
                return not_found(&plural, &name);
            };
            if let Some(want) = input
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
            {
                if Some(want.to_string()) != rv_of(&current) {
                    return status(
                        StatusCode::CONFLICT,
                        "Conflict",
                        format!("Precondition failed: ResourceVersion in precondition: {want}"),
                    );
                }
            }
            s.revision += 1;
            if current
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty())
            {
                let mut n = current;
                n["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:01Z");
                n["metadata"]["resourceVersion"] = json!(s.revision.to_string());
                s.objects.insert(key, n.clone());
                s.record(&plural, &ns, "MODIFIED", &n);
                return ok(StatusCode::OK, &n);
            }
            s.objects.remove(&key);
            let mut gone = current;
            gone["metadata"]["resourceVersion"] = json!(s.revision.to_string());
            s.record(&plural, &ns, "DELETED", &gone);
            ok(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            )
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{} not served", parts.method),
        ),
    }
}

/// A kube client answered by a fresh mock server, and the server's state.
pub fn client() -> (kube::Client, Shared) {
    let state: Shared = Arc::default();
    let s = state.clone();
    let service = tower::service_fn(move |req: Request<Body>| {
        let s = s.clone();
        async move { Ok::<_, Infallible>(handle(s, req).await) }
    });
    (kube::Client::new(service, "default"), state)
}

/// A store on a fresh mock server.
pub fn store() -> backend_kube::KubeStore {
    backend_kube::KubeStore::new(client().0)
}
