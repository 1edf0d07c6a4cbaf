//! The admission webhook served over TLS: a self-signed certificate, the store on the mock API
//! server, a rustls client that trusts only that certificate.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use backend_kube::webhook_server::{serve, tls_config, WebhookError};
use backend_kube::KubeStore;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::{json, Value};
use spiderpool_core::model::object_from_value;
use spiderpool_core::store::Store;
use spiderpool_core::validate::AdmissionConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

/// A running server: its address, the certificate clients should trust, and its stop switch.
struct Server {
    addr: SocketAddr,
    cert: CertificateDer<'static>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(store: KubeStore) -> Server {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let tls = tls_config(
            certified.cert.pem().as_bytes(),
            certified.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            tls,
            store,
            AdmissionConfig::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            cert: certified.cert.der().clone(),
            stop: Some(stop),
            task,
        }
    }

    /// A client configuration that trusts this server's certificate only.
    fn trusting(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        client_config(roots)
    }

    async fn post(&self, path: &str, body: impl Into<Bytes>) -> (StatusCode, Bytes) {
        request(self.addr, self.trusting(), Method::POST, path, body.into())
            .await
            .unwrap()
    }

    async fn review(&self, path: &str, review: &Value) -> Value {
        let (status, body) = self.post(path, review.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(std::time::Duration::from_secs(15), self.task)
            .await
            .expect("the server stops when asked")
            .unwrap();
    }
}

fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One HTTPS request on a fresh connection to `localhost` at `addr`.
async fn request(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<(StatusCode, Bytes), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

fn review(operation: &str, object: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
           "request": {"uid": "uid-7", "operation": operation,
                       "kind": {"group": "spiderpool.spidernet.io", "version": "v2beta1", "kind": "SpiderIPPool"},
                       "object": object, "oldObject": null}})
}

fn pool(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
           "metadata": {"name": name}, "spec": spec})
}

fn patch_of(review: &Value) -> Value {
    let encoded = review["response"]["patch"].as_str().expect("a patch");
    serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_valid_pool_is_allowed_and_mutated_with_the_finalizer() {
    let server = Server::start(common::store()).await;
    let object = pool(
        "p1",
        json!({"ipVersion": 4, "subnet": "10.6.0.0/24", "ips": ["10.6.0.10-10.6.0.20"]}),
    );
    let verdict = server
        .review("/validate", &review("CREATE", object.clone()))
        .await;
    assert_eq!(verdict["kind"], "AdmissionReview");
    assert_eq!(verdict["response"]["uid"], "uid-7");
    assert_eq!(verdict["response"]["allowed"], true, "{verdict}");

    // Spiderpool's per-kind path is served too.
    let mutated = server
        .review(
            "/mutate-spiderpool-spidernet-io-v2beta1-spiderippool",
            &review("CREATE", object),
        )
        .await;
    assert_eq!(mutated["response"]["allowed"], true, "{mutated}");
    assert_eq!(mutated["response"]["patchType"], "JSONPatch");
    let patch = patch_of(&mutated);
    let meta = patch
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["path"] == "/metadata")
        .expect("the patch sets metadata");
    assert_eq!(meta["op"], "add");
    assert_eq!(
        meta["value"]["finalizers"],
        json!(["spiderpool.spidernet.io"])
    );
    server.stop().await;
}

#[tokio::test]
async fn an_invalid_pool_is_denied_with_422_naming_the_field() {
    let server = Server::start(common::store()).await;
    let object = pool(
        "p1",
        json!({"ipVersion": 4, "subnet": "10.6.0.0/24", "ips": ["10.7.0.1-10.7.0.5"]}),
    );
    let verdict = server
        .review(
            "/validate-spiderpool-spidernet-io-v2beta1-spiderippool",
            &review("CREATE", object),
        )
        .await;
    let resp = &verdict["response"];
    assert_eq!(resp["allowed"], false, "{verdict}");
    assert_eq!(resp["status"]["code"], 422, "{verdict}");
    let message = resp["status"]["message"].as_str().unwrap();
    assert!(message.contains("spec."), "{message}");
    assert!(message.contains("10.7.0.1"), "{message}");
    server.stop().await;
}

#[tokio::test]
async fn a_pool_overlapping_one_in_the_store_is_denied() {
    let (client, _state) = common::client();
    let store = KubeStore::new(client);
    let existing = object_from_value(
        "test",
        pool(
            "first",
            json!({"ipVersion": 4, "subnet": "10.6.0.0/24", "ips": ["10.6.0.1-10.6.0.50"]}),
        ),
    )
    .unwrap();
    store.create(existing).await.unwrap();
    let server = Server::start(store).await;

    let second = pool(
        "second",
        json!({"ipVersion": 4, "subnet": "10.6.0.0/24", "ips": ["10.6.0.40-10.6.0.60"]}),
    );
    let verdict = server.review("/validate", &review("CREATE", second)).await;
    assert_eq!(verdict["response"]["allowed"], false, "{verdict}");
    let message = verdict["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("overlap with IPPool first"), "{message}");

    // Disjoint addresses in the same subnet are fine.
    let third = pool(
        "third",
        json!({"ipVersion": 4, "subnet": "10.6.0.0/24", "ips": ["10.6.0.51-10.6.0.60"]}),
    );
    let verdict = server.review("/validate", &review("CREATE", third)).await;
    assert_eq!(verdict["response"]["allowed"], true, "{verdict}");
    server.stop().await;
}

#[tokio::test]
async fn an_untrusting_client_fails_the_handshake_and_the_server_keeps_serving() {
    let server = Server::start(common::store()).await;
    // A client that trusts nothing, then one that trusts another certificate.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let mut other_roots = RootCertStore::empty();
    other_roots.add(other.cert.der().clone()).unwrap();
    for config in [
        client_config(RootCertStore::empty()),
        client_config(other_roots),
    ] {
        let err = request(server.addr, config, Method::GET, "/healthz", Bytes::new())
            .await
            .expect_err("the handshake fails");
        assert!(err.starts_with("handshake"), "{err}");
    }
    // A client that hangs up mid-way, and one that speaks plain HTTP.
    drop(TcpStream::connect(server.addr).await.unwrap());
    {
        use tokio::io::AsyncWriteExt;
        let mut plain = TcpStream::connect(server.addr).await.unwrap();
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
    }
    let (status, body) = request(
        server.addr,
        server.trusting(),
        Method::GET,
        "/healthz",
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_ref(), b"ok\n");
    server.stop().await;
}

#[tokio::test]
async fn garbage_is_a_400_and_healthz_is_a_200() {
    let server = Server::start(common::store()).await;
    let (status, body) = server.post("/validate", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("not JSON"));
    let (status, body) = server.post("/mutate", "[1, 2, 3]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("not an AdmissionReview"));
    let (status, body) = server
        .post(
            "/validate",
            vec![b' '; backend_kube::webhook_server::MAX_BODY + 1],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("over"));
    let (status, _) = server.post("/elsewhere", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = request(
        server.addr,
        server.trusting(),
        Method::GET,
        "/healthz",
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_ref(), b"ok\n");
    let (status, _) = request(
        server.addr,
        server.trusting(),
        Method::GET,
        "/validate",
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    server.stop().await;
}

#[test]
fn a_bad_pem_is_a_clear_error() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = certified.cert.pem();
    let key = certified.signing_key.serialize_pem();
    assert!(tls_config(cert.as_bytes(), key.as_bytes()).is_ok());
    match tls_config(b"hello", key.as_bytes()) {
        Err(WebhookError::Pem { what, reason }) => {
            assert_eq!(what, "certificate");
            assert!(reason.contains("CERTIFICATE"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match tls_config(cert.as_bytes(), cert.as_bytes()) {
        Err(WebhookError::Pem { what, reason }) => {
            assert_eq!(what, "private key");
            assert!(reason.contains("PRIVATE KEY"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // A key that is not the certificate's.
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    assert!(matches!(
        tls_config(cert.as_bytes(), other.as_bytes()),
        Err(WebhookError::Tls { .. })
    ));
    let truncated = &cert[..cert.len() - 30];
    let err = tls_config(truncated.as_bytes(), key.as_bytes()).unwrap_err();
    assert!(err.to_string().starts_with("certificate: "), "{err}");
    let missing = backend_kube::webhook_server::tls_config_from_files(
        std::path::Path::new("/nonexistent/tls.crt"),
        std::path::Path::new("/nonexistent/tls.key"),
    )
    .unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/tls.crt"),
        "{missing}"
    );
}
