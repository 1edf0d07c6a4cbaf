//! The request handler: one function from (method, URI, body) to (status, JSON body), used by
//! both the tower service and the HTTP server.

use std::time::{Duration, Instant};

use http::{Method, StatusCode, Uri};
use serde_json::{json, Value};

use super::path::{kind_of, query, route};
use super::select::Selector;
use super::state::{ApiError, Deleted, Replace, State};
use super::Shared;

/// The longest a watch waits for a first event before ending the response.
const WATCH_CAP: Duration = Duration::from_secs(1);
/// How often a waiting watch looks at the state.
const POLL: Duration = Duration::from_millis(10);

fn status_body(e: &ApiError) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": e.message, "reason": e.reason, "code": e.code.as_u16()})
}

fn reply(result: Result<(StatusCode, Value), ApiError>) -> (StatusCode, Vec<u8>) {
    match result {
        Ok((code, v)) => (code, v.to_string().into_bytes()),
        Err(e) => (e.code, status_body(&e).to_string().into_bytes()),
    }
}

/// Answers one request against `state`.
pub(crate) async fn respond(
    state: &Shared,
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> (StatusCode, Vec<u8>) {
    state.lock().unwrap().count(method.as_str());
    if uri.path() == "/version" {
        let v = json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-spiderpool-testkit",
                       "platform": "linux/amd64"});
        return (StatusCode::OK, v.to_string().into_bytes());
    }
    let q = query(uri.query());
    let selector = Selector::parse(
        q.get("labelSelector").map(String::as_str),
        q.get("fieldSelector").map(String::as_str),
    );
    let watching = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    let Some(route) = route(uri.path()) else {
        return reply(Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "the server could not find the requested resource ({})",
                uri.path()
            ),
        )));
    };
    if watching && *method == Method::GET && route.name.is_none() {
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map_or(WATCH_CAP, |s| Duration::from_secs(s).min(WATCH_CAP));
        return watch(state, &route, q.get("resourceVersion"), &selector, timeout).await;
    }
    let input: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    let result = match (method.clone(), route.name.as_deref()) {
        (Method::GET, None) => {
            let items = s.select(&route.prefix, &route.plural, &route.namespace, &selector);
            let kind = items
                .first()
                .and_then(|i| i.get("kind"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| kind_of(&route.plural))
                .map_or_else(|| "List".to_string(), |k| format!("{k}List"));
            Ok((
                StatusCode::OK,
                json!({"apiVersion": route.prefix, "kind": kind,
                       "metadata": {"resourceVersion": s.revision().to_string()}, "items": items}),
            ))
        }
        (Method::GET, Some(name)) => s.read(&route.key(name)).map(|v| (StatusCode::OK, v)),
        (Method::POST, None) => {
            let name = input
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if name.is_empty() {
                Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("{}: metadata.name: Required value", route.plural),
                ))
            } else {
                s.create(route.key(&name), input, false)
                    .map(|v| (StatusCode::CREATED, v))
            }
        }
        (Method::PUT, Some(name)) => {
            let mode = if route.status {
                Replace::Status
            } else {
                Replace::Main
            };
            s.replace(&route.key(name), input, mode)
                .map(|v| (StatusCode::OK, v))
        }
        (Method::DELETE, Some(name)) if !route.status => {
            let pre = |f: &str| {
                input
                    .pointer(&format!("/preconditions/{f}"))
                    .and_then(Value::as_str)
            };
            match s.delete(&route.key(name), pre("resourceVersion"), pre("uid")) {
                Ok(Deleted::Terminating(v)) => Ok((StatusCode::OK, v)),
                Ok(Deleted::Gone(v)) => Ok((
                    StatusCode::OK,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Success",
                           "details": {"name": name, "kind": route.plural,
                                       "uid": v.pointer("/metadata/uid")}}),
                )),
                Err(e) => Err(e),
            }
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not supported on {}", uri.path()),
        )),
    };
    reply(result)
}

/// One watch response: the events after `resourceVersion` (or, without one, the current
/// objects as ADDED), waiting up to `timeout` for a first event.
async fn watch(
    state: &Shared,
    route: &super::path::Route,
    rv: Option<&String>,
    selector: &Selector,
    timeout: Duration,
) -> (StatusCode, Vec<u8>) {
    let line =
        |kind: &str, object: &Value| format!("{}\n", json!({"type": kind, "object": object}));
    let from = match rv
        .and_then(|rv| rv.parse::<u64>().ok())
        .filter(|rv| *rv > 0)
    {
        Some(from) => from,
        None => {
            // No revision: the current state as ADDED, then what follows.
            let s = state.lock().unwrap();
            let items = s.select(&route.prefix, &route.plural, &route.namespace, selector);
            if !items.is_empty() {
                let body: String = items.iter().map(|o| line("ADDED", o)).collect();
                return (StatusCode::OK, body.into_bytes());
            }
            s.revision()
        }
    };
    let deadline = Instant::now() + timeout;
    loop {
        {
            let s: std::sync::MutexGuard<'_, State> = state.lock().unwrap();
            match s.events_after(
                from,
                &route.prefix,
                &route.plural,
                &route.namespace,
                selector,
            ) {
                Err(e) => {
                    return (StatusCode::OK, line("ERROR", &status_body(&e)).into_bytes());
                }
                Ok(events) if !events.is_empty() || Instant::now() >= deadline => {
                    let body: String = events.iter().map(|(k, o)| line(k, o)).collect();
                    return (StatusCode::OK, body.into_bytes());
                }
                Ok(_) => {}
            }
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}
