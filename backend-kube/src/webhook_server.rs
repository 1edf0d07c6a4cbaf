//! The admission webhook served over HTTPS: rustls (the `ring` provider), hyper 1.
//!
//! Routes (the API server calls them through the webhook configurations of
//! `backend-kube/deploy/webhook.yaml`):
//!
//! - `POST /mutate…`: [`webhook::mutate`](crate::webhook::mutate) with the SpiderSubnets that
//!   exist; any path starting with `/mutate` (Spiderpool's per-kind paths such as
//!   `/mutate-spiderpool-spidernet-io-v2beta1-spiderippool` included);
//! - `POST /validate…`: [`webhook::validate`](crate::webhook::validate) with the SpiderIPPools
//!   and SpiderSubnets that exist;
//! - `GET /healthz`: `200 ok` (the readiness probe).
//!
//! A body over [`MAX_BODY`] bytes or one that is not an AdmissionReview is a 400 with a
//! message; a store that cannot be read is a denied review (code 500), so that with
//! `failurePolicy: Fail` nothing is admitted unchecked. A connection that fails its TLS
//! handshake is dropped alone: the server goes on serving the others.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use spiderpool_core::model::{Object, SpiderIPPool, SpiderSubnet};
use spiderpool_core::store::Store;
use spiderpool_core::validate::{AdmissionConfig, Cluster};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::KubeStore;

/// The largest request body accepted (3 MiB, the API server's own limit on an object).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// How long a client has for its TLS handshake, and for sending its request headers.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long in-flight requests may take to finish once shutdown is asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the webhook server cannot start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WebhookError {
    /// A PEM input is unreadable, empty or malformed; `what` names it (a file or "certificate").
    #[error("{what}: {reason}")]
    Pem {
        /// The file or input concerned.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificate and key (for example a key that does not match).
    #[error("tls configuration: {reason}")]
    Tls {
        /// rustls's reason.
        reason: String,
    },
}

/// What a request path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The mutating webhook (`/mutate…`).
    Mutate,
    /// The validating webhook (`/validate…`).
    Validate,
    /// The health check (`/healthz`).
    Healthz,
}

/// The endpoint a request path is served by, if any: paths starting with `/mutate` or
/// `/validate` (so Spiderpool's per-kind paths work), and `/healthz`.
pub fn endpoint(path: &str) -> Option<Endpoint> {
    if path == "/healthz" {
        Some(Endpoint::Healthz)
    } else if path.starts_with("/mutate") {
        Some(Endpoint::Mutate)
    } else if path.starts_with("/validate") {
        Some(Endpoint::Validate)
    } else {
        None
    }
}

fn pem_error(what: &str, e: rustls_pki_types::pem::Error) -> WebhookError {
    use rustls_pki_types::pem::Error as P;
    let reason = match e {
        P::NoItemsFound => "no PEM section of the expected type found".to_string(),
        P::MissingSectionEnd { end_marker } => format!(
            "PEM section not terminated (missing {})",
            String::from_utf8_lossy(&end_marker)
        ),
        P::IllegalSectionStart { line } => format!(
            "illegal PEM section start: {}",
            String::from_utf8_lossy(&line)
        ),
        P::Base64Decode(reason) => format!("invalid base64 in PEM section: {reason}"),
        other => other.to_string(),
    };
    WebhookError::Pem {
        what: what.to_string(),
        reason,
    }
}

fn build(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, WebhookError> {
    let tls = |e: rustls::Error| WebhookError::Tls {
        reason: e.to_string(),
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(tls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn parse(
    cert_pem: &[u8],
    cert_what: &str,
    key_pem: &[u8],
    key_what: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), WebhookError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert_what, e))?;
    if certs.is_empty() {
        return Err(WebhookError::Pem {
            what: cert_what.to_string(),
            reason: "no CERTIFICATE section found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => WebhookError::Pem {
            what: key_what.to_string(),
            reason: "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY section found".into(),
        },
        e => pem_error(key_what, e),
    })?;
    Ok((certs, key))
}

/// The server's TLS configuration from a PEM certificate chain (leaf first) and a PEM private
/// key (PKCS#8, PKCS#1 or SEC1), with the `ring` provider, TLS 1.2 and 1.3, ALPN `http/1.1`.
pub fn tls_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, WebhookError> {
    let (certs, key) = parse(cert_pem, "certificate", key_pem, "private key")?;
    build(certs, key)
}

/// [`tls_config`] from files (the `--tls-cert` and `--tls-key` of the controller); errors
/// name the file.
pub fn tls_config_from_files(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, WebhookError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| WebhookError::Pem {
            what: p.display().to_string(),
            reason: format!("cannot read: {e}"),
        })
    };
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    let (certs, key_der) = parse(
        &cert_pem,
        &format!("certificate {}", cert.display()),
        &key_pem,
        &format!("private key {}", key.display()),
    )?;
    build(certs, key_der)
}

/// Serves the webhook on `listener` until `shutdown` completes, then lets in-flight requests
/// finish (for up to 10 seconds). The objects a review is checked against are read through
/// `store` for each review.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    store: KubeStore,
    cfg: AdmissionConfig,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let state = Arc::new((store, cfg));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                // Out of descriptors and the like: wait a little rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // A failed or stalled handshake drops this connection only.
            let Ok(Ok(stream)) = tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req, &state.0, &state.1).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(CLIENT_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = watcher.watch(conn).await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

fn reply(code: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = code;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

fn text(code: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    let mut m = message.into();
    m.push('\n');
    reply(code, "text/plain; charset=utf-8", m)
}

/// One HTTP request, answered; never panics on input.
async fn handle(
    req: Request<Incoming>,
    store: &KubeStore,
    cfg: &AdmissionConfig,
) -> Response<Full<Bytes>> {
    let Some(endpoint) = endpoint(req.uri().path()) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no such path {}", req.uri().path()),
        );
    };
    match (endpoint, req.method()) {
        (Endpoint::Healthz, &Method::GET) => return text(StatusCode::OK, "ok"),
        (Endpoint::Healthz, _) => return text(StatusCode::METHOD_NOT_ALLOWED, "use GET"),
        (_, &Method::POST) => {}
        _ => return text(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
    }
    let review = match read_review(req).await {
        Ok(review) => review,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let answer = match answer(endpoint, &review, store, cfg).await {
        Ok(answer) => answer,
        Err(message) => denied(&review, 500, "InternalError", message),
    };
    reply(StatusCode::OK, "application/json", answer.to_string())
}

/// The AdmissionReview in the body, or the reason it is refused.
async fn read_review(req: Request<Incoming>) -> Result<Value, String> {
    let too_big = || format!("request body over {MAX_BODY} bytes");
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_big());
    }
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_big()
            } else {
                format!("cannot read the request body: {e}")
            }
        })?
        .to_bytes();
    let review: Value =
        serde_json::from_slice(&body).map_err(|e| format!("the request body is not JSON: {e}"))?;
    if !review.get("request").is_some_and(Value::is_object) {
        return Err("the request body is not an AdmissionReview: no \"request\" object".into());
    }
    Ok(review)
}

/// A denied review of the request, for a failure of our own (the store unreadable).
fn denied(review: &Value, code: u16, reason: &str, message: String) -> Value {
    let uid = review
        .pointer("/request/uid")
        .cloned()
        .unwrap_or_else(|| json!(""));
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
           "response": {"uid": uid, "allowed": false,
                        "status": {"code": code, "reason": reason, "message": message}}})
}

/// The kind under review (`request.kind.kind`, else the object's or old object's `kind`).
fn review_kind(review: &Value) -> &str {
    [
        "/request/kind/kind",
        "/request/object/kind",
        "/request/oldObject/kind",
    ]
    .iter()
    .find_map(|p| review.pointer(p).and_then(Value::as_str))
    .unwrap_or_default()
}

async fn subnets(store: &KubeStore) -> Result<Vec<SpiderSubnet>, String> {
    Ok(store
        .list(SpiderSubnet::KIND)
        .await
        .map_err(|e| format!("cannot read the SpiderSubnets: {e}"))?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::Subnet(s) => Some(s),
            _ => None,
        })
        .collect())
}

async fn pools(store: &KubeStore) -> Result<Vec<SpiderIPPool>, String> {
    Ok(store
        .list(SpiderIPPool::KIND)
        .await
        .map_err(|e| format!("cannot read the SpiderIPPools: {e}"))?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::IpPool(p) => Some(p),
            _ => None,
        })
        .collect())
}

/// The decision on `review`, with the objects it depends on read from the store.
async fn answer(
    endpoint: Endpoint,
    review: &Value,
    store: &KubeStore,
    cfg: &AdmissionConfig,
) -> Result<Value, String> {
    let kind = review_kind(review);
    Ok(match endpoint {
        Endpoint::Mutate => {
            // Only a pool's defaults depend on other objects (its SpiderSubnet).
            let subnets = if kind == SpiderIPPool::KIND && cfg.enable_spider_subnet {
                subnets(store).await?
            } else {
                Vec::new()
            };
            crate::webhook::mutate(review, &subnets, cfg)
        }
        Endpoint::Validate => {
            // Reserved IPs and endpoints are checked on their own.
            let (pools, subnets) = if kind == SpiderIPPool::KIND || kind == SpiderSubnet::KIND {
                (pools(store).await?, subnets(store).await?)
            } else {
                (Vec::new(), Vec::new())
            };
            let cluster = Cluster {
                pools: &pools,
                subnets: &subnets,
            };
            crate::webhook::validate(review, &cluster, cfg)
        }
        Endpoint::Healthz => json!({}),
    })
}
