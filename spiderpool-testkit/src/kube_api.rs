//! A faithful in-process Kubernetes API server for tests, for any resource.
//!
//! It serves `/api/v1/[namespaces/{ns}/]{plural}[/{name}[/status]]` and
//! `/apis/{group}/{version}/[namespaces/{ns}/]{plural}[/{name}[/status]]` from one
//! [`State`], as the real API server does:
//!
//! - one global resourceVersion counter; uid and creationTimestamp set on create;
//! - 409 `AlreadyExists` on creating an existing name, 409 `Conflict` on a PUT with a stale
//!   resourceVersion (a PUT without one is unconditional), 404 `NotFound`, 405 for PATCH;
//! - the status subresource: status ignored on create and on the main PUT, only status taken
//!   on `/status`;
//! - delete preconditions (resourceVersion, uid); finalizers: a delete sets the
//!   deletionTimestamp, the object goes when its last finalizer is removed;
//! - lists (all namespaces without one) and watches with `labelSelector` (`k=v`, `k!=v`, `k`,
//!   `!k`, `k in (a,b)`, `k notin (a,b)`) and `fieldSelector` (`metadata.name=x`,
//!   `spec.nodeName=n`, any dotted path); a watch from revision N answers the events after
//!   N, waiting up to `timeoutSeconds` (at most 1 s) for a first one, and 410 `Expired` for
//!   a compacted revision ([`State::compact`]).
//!
//! Use it in process with [`client`] (a [`kube::Client`] over a tower service), or over real
//! HTTP for another process with [`serve_http`] and [`kubeconfig`]. The test keeps the
//! [`Shared`] state to seed objects ([`State::insert`]), look at them, and count requests
//! and conflicts.
//!
//! Objects are keyed by (apiVersion prefix, plural, namespace, name); the namespace comes
//! from the request path, so a namespaced object created through a cluster-wide path is
//! stored without one. Namespaces are not required to exist.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use kube::client::Body;

mod handler;
mod path;
mod select;
mod state;

pub use path::{is_cluster_scoped, plural_of, ObjectKey};
pub use state::State;

/// The mock server's state, shared between the server and the test.
pub type Shared = Arc<Mutex<State>>;

fn json_response<B: From<Vec<u8>>>((code, body): (http::StatusCode, Vec<u8>)) -> Response<B> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(B::from(body))
        .unwrap()
}

/// Answers one request from a kube-rs client against `state`.
pub async fn handle(state: Shared, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let bytes = body.collect_bytes().await.unwrap_or_default();
    json_response(handler::respond(&state, &parts.method, &parts.uri, &bytes).await)
}

/// A kube client answered in process by the server over `state`.
pub fn client_with(state: Shared) -> kube::Client {
    let service = tower::service_fn(move |req: Request<Body>| {
        let s = state.clone();
        async move { Ok::<_, Infallible>(handle(s, req).await) }
    });
    kube::Client::new(service, "default")
}

/// A kube client answered by a fresh mock server, and the server's state.
pub fn client() -> (kube::Client, Shared) {
    let state = Shared::default();
    (client_with(state.clone()), state)
}

/// Serves `state` over plain HTTP/1.1 on `127.0.0.1` (a free port) from a task on the current
/// tokio runtime, for clients in other processes; returns the address.
///
/// The server runs on the test's runtime: a test that then blocks its thread (for example
/// `std::process::Command::output`) must run on a multi-threaded runtime or block in
/// `spawn_blocking`, or the server cannot answer.
pub async fn serve_http(state: Shared) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let bytes = match body.collect().await {
                                Ok(b) => b.to_bytes(),
                                Err(_) => Bytes::new(),
                            };
                            let answer =
                                handler::respond(&state, &parts.method, &parts.uri, &bytes).await;
                            Ok::<Response<Full<Bytes>>, Infallible>(json_response(answer))
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                // A client hanging up mid-request is not the server's failure.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    addr
}

/// A kubeconfig (YAML) for the server at `addr`: cluster `mock` at `http://127.0.0.1:PORT`,
/// user `mock` with a bearer token, current context `mock` in namespace `default`.
pub fn kubeconfig(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: mock
  cluster:
    server: http://{addr}
users:
- name: mock
  user:
    token: mock-token
contexts:
- name: mock
  context:
    cluster: mock
    user: mock
    namespace: default
current-context: mock
preferences: {{}}
"
    )
}
