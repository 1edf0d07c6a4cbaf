//! The controller's loop and binary through the mock API server: watch events wake the leader,
//! only one replica leads, shutdown hands the Lease over; `spiderpool-controller --once`.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backend_kube::controller::run::{run, Observer, RunOptions};
use backend_kube::controller::Report;
use backend_kube::lease::Leadership;
use serde_json::{json, Value};
use spiderpool_core::Error;
use spiderpool_testkit::kube_api::{client, client_with, kubeconfig, serve_http, Shared};

#[derive(Default)]
struct Seen {
    leadership: Mutex<Vec<Leadership>>,
    reconciles: Mutex<usize>,
}

impl Observer for Seen {
    fn leadership(&self, l: &Leadership) {
        self.leadership.lock().unwrap().push(l.clone());
    }
    fn reconciled(&self, _: &Result<Report, Error>) {
        *self.reconciles.lock().unwrap() += 1;
    }
}

impl Seen {
    fn leading(&self) -> bool {
        self.leadership.lock().unwrap().last() == Some(&Leadership::Leading)
    }
}

fn seed(state: &Shared) {
    let mut s = state.lock().unwrap();
    s.insert(json!({
        "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderSubnet",
        "metadata": {"name": "s"},
        "spec": {"ipVersion": 4, "subnet": "10.60.0.0/24", "ips": ["10.60.0.1-10.60.0.200"]}
    }));
}

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"replicas": 2, "template": {"metadata": {"annotations": {
            "ipam.spidernet.io/subnet": "{\"ipv4\":[\"s\"]}"}}}}})
}

fn pool_count(state: &Shared) -> usize {
    state
        .lock()
        .unwrap()
        .list("spiderpool.spidernet.io/v2beta1", "SpiderIPPool")
        .len()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn options(identity: &str) -> RunOptions {
    RunOptions {
        identity: identity.into(),
        lease_seconds: 3,
        // Far beyond the test: only watch events and the lease make the loop act.
        resync: Duration::from_secs(3600),
        ..RunOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wake_the_single_leader_and_shutdown_hands_over() {
    let (ca, state) = client();
    seed(&state);
    let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
    let (stop_b, stopped_b) = tokio::sync::oneshot::channel::<()>();
    let a = {
        let seen = seen_a.clone();
        tokio::spawn(async move {
            run(ca, options("a"), seen.as_ref(), async {
                let _ = stopped_a.await;
            })
            .await
        })
    };
    wait_for("a to lead", || seen_a.leading()).await;
    let b = {
        let (seen, cb) = (seen_b.clone(), client_with(state.clone()));
        tokio::spawn(async move {
            run(cb, options("b"), seen.as_ref(), async {
                let _ = stopped_b.await;
            })
            .await
        })
    };
    wait_for("b to follow", || {
        !seen_b.leadership.lock().unwrap().is_empty()
    })
    .await;
    assert!(!seen_b.leading(), "two leaders");

    // A new Deployment: the watch wakes the leader, which creates its pool.
    state.lock().unwrap().insert(deployment("web"));
    wait_for("the auto-pool of web", || pool_count(&state) == 1).await;
    assert_eq!(
        *seen_b.reconciles.lock().unwrap(),
        0,
        "the follower reconciled"
    );

    // a stops: it gives the Lease up and b leads, then serves the next Deployment.
    stop_a.send(()).unwrap();
    a.await.unwrap();
    wait_for("b to lead", || seen_b.leading()).await;
    state.lock().unwrap().insert(deployment("api"));
    wait_for("the auto-pool of api", || pool_count(&state) == 2).await;
    stop_b.send(()).unwrap();
    b.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reconciles_once_and_defers_to_a_live_leader() {
    let (_, state) = client();
    seed(&state);
    state.lock().unwrap().insert(deployment("web"));
    let addr = serve_http(state.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, kubeconfig(addr)).unwrap();
    let once = |identity: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_spiderpool-controller"))
            .args(["--once", "--identity", identity, "--kubeconfig"])
            .arg(&kc)
            .output()
    };
    let out = once("first").await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["autopools"], json!(["Deployment apps/web"]));
    assert_eq!(pool_count(&state), 1);
    let out = once("second").await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"first\" leads"));
    // A missing kubeconfig is a clear error.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_spiderpool-controller"))
        .args(["--once", "--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/kubeconfig"));
}
