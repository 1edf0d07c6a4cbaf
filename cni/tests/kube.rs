//! The plugin binary in the Kubernetes mode (`"store": "kube"`) against the mock API server
//! served over HTTP: pods, namespaces, owners and Spiderpool's CRDs read and written through a
//! kubeconfig, as on a node.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use backend_kube::KubeStore;
use serde_json::{json, Value};
use spiderpool_core::annotations::{LABEL_OWNER_APPLICATION_KIND, LABEL_OWNER_APPLICATION_UID};
use spiderpool_core::model::{AddressSpec, Object, SpiderEndpoint, SpiderIPPool};
use spiderpool_core::store::{Key, Store};
use spiderpool_testkit::fixtures::put_pool;
use spiderpool_testkit::kube_api::{client, kubeconfig, serve_http, Shared};

/// The mock cluster, its store and a kubeconfig file pointing at it.
struct Lab {
    state: Shared,
    store: KubeStore,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Lab {
    async fn new() -> Self {
        let (kclient, state) = client();
        let addr = serve_http(state.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spiderpool-rs.kubeconfig");
        std::fs::write(&path, kubeconfig(addr)).unwrap();
        Lab {
            state,
            store: KubeStore::new(kclient),
            dir,
            kubeconfig: path,
        }
    }

    fn insert(&self, object: Value) -> Value {
        self.state.lock().unwrap().insert(object)
    }

    fn remove(&self, api_version: &str, kind: &str, ns: &str, name: &str) {
        self.state
            .lock()
            .unwrap()
            .remove(api_version, kind, Some(ns), name)
            .unwrap();
    }

    /// A netconf in the Kubernetes mode with this lab's kubeconfig, plus `extra` in `ipam`.
    fn conf(&self, extra: Value) -> String {
        conf_with(&self.kubeconfig.display().to_string(), extra)
    }

    /// The addresses of pool `name`: ip → holder uid.
    async fn allocated(&self, pool: &str) -> BTreeMap<String, String> {
        match self
            .store
            .get(&Key::cluster(SpiderIPPool::KIND, pool))
            .await
            .unwrap()
            .map(|s| s.object)
        {
            Some(Object::IpPool(p)) => p
                .allocations()
                .unwrap()
                .into_iter()
                .map(|(ip, r)| (ip, r.pod_uid))
                .collect(),
            other => panic!("pool {pool}: {other:?}"),
        }
    }

    async fn endpoint(&self, ns: &str, name: &str) -> Option<SpiderEndpoint> {
        match self
            .store
            .get(&Key::endpoint(ns, name))
            .await
            .unwrap()
            .map(|s| s.object)
        {
            Some(Object::Endpoint(e)) => Some(e),
            None => None,
            other => panic!("endpoint {ns}/{name}: {other:?}"),
        }
    }

    /// A namespace whose default IPv4 pool is `pool`.
    fn namespace_with_default_pool(&self, ns: &str, pool: &str) {
        self.insert(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"team": "a"},
                "annotations": {"ipam.spidernet.io/default-ipv4-ippool": format!("[\"{pool}\"]")}}}));
    }

    /// A pod on `node-1` owned by `owner` (`(apiVersion, kind, name, uid)`); returns its uid.
    fn pod(&self, ns: &str, name: &str, owner: Option<(&str, &str, &str, &str)>) -> String {
        self.pod_annotated(ns, name, owner, json!({}))
    }

    fn pod_annotated(
        &self,
        ns: &str,
        name: &str,
        owner: Option<(&str, &str, &str, &str)>,
        annotations: Value,
    ) -> String {
        let refs: Vec<Value> = owner
            .iter()
            .map(|(v, k, n, u)| {
                json!({"apiVersion": v, "kind": k, "name": n, "uid": u, "controller": true})
            })
            .collect();
        let pod = self.insert(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "x"},
                "annotations": annotations, "ownerReferences": refs},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Pending"}}));
        pod["metadata"]["uid"].as_str().unwrap().to_string()
    }
}

fn conf_with(kubeconfig: &str, extra: Value) -> String {
    let mut ipam = json!({"type": "spiderpool", "store": "kube", "kubeconfig": kubeconfig,
        "kube_timeout_ms": 3000});
    if let (Some(m), Some(extra)) = (ipam.as_object_mut(), extra.as_object()) {
        m.extend(extra.clone());
    }
    json!({"cniVersion": "1.0.0", "name": "k8s-net", "type": "macvlan", "ipam": ipam}).to_string()
}

/// What one run of the plugin binary gave.
struct Run {
    exit: i32,
    out: Value,
}

impl Run {
    fn ip(&self) -> String {
        assert_eq!(self.exit, 0, "{}", self.out);
        let addr = self.out["ips"][0]["address"].as_str().unwrap();
        addr.split('/').next().unwrap().to_string()
    }

    fn code(&self) -> u64 {
        assert_ne!(self.exit, 0, "{}", self.out);
        self.out["code"].as_u64().unwrap()
    }

    fn msg(&self) -> String {
        self.out["msg"].as_str().unwrap_or_default().to_string()
    }
}

/// Runs the plugin binary off the runtime's threads (the mock server runs on them), with a
/// guard against a hang.
async fn cni(command: &str, conf: &str, ns: &str, pod: &str, uid: Option<&str>) -> Run {
    let mut args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod}");
    if let Some(uid) = uid {
        args.push_str(&format!(";K8S_POD_UID={uid}"));
    }
    let container = format!("ctr-{}", uid.unwrap_or(pod));
    let conf = conf.to_string();
    let command = command.to_string();
    let run = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spiderpool"));
        cmd.env("CNI_COMMAND", &command)
            .env("CNI_CONTAINERID", &container)
            .env("CNI_NETNS", "/var/run/netns/test")
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/opt/cni/bin")
            .env("CNI_ARGS", &args)
            .env("NODE_NAME", "node-1")
            .env_remove("KUBECONFIG");
        common::spawn_fed(&mut cmd, &conf)
            .wait_with_output()
            .unwrap()
    });
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the plugin hung")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    Run {
        exit: output.status.code().unwrap_or(-1),
        out: if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_pod_keeps_its_ip_while_alive_and_frees_it_when_gone() {
    let lab = Lab::new().await;
    put_pool(
        &lab.store,
        "p",
        "subnet: 10.1.0.0/24\nips: [10.1.0.10-10.1.0.12]",
    )
    .await;
    lab.namespace_with_default_pool("app", "p");
    let deploy = lab.insert(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "app"}, "spec": {"replicas": 2}}));
    let deploy_uid = deploy["metadata"]["uid"].as_str().unwrap();
    let rs = lab.insert(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-7d9", "namespace": "app", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": deploy_uid, "controller": true}]},
        "spec": {"replicas": 2}}));
    let rs_uid = rs["metadata"]["uid"].as_str().unwrap();
    let uid = lab.pod(
        "app",
        "web-7d9-abcde",
        Some(("apps/v1", "ReplicaSet", "web-7d9", rs_uid)),
    );
    let conf = lab.conf(json!({}));

    let first = cni("ADD", &conf, "app", "web-7d9-abcde", Some(&uid)).await;
    let ip = first.ip();
    assert_eq!(
        lab.allocated("p").await.get(&ip),
        Some(&uid),
        "the address is recorded in pool p for the pod"
    );
    let ep = lab.endpoint("app", "web-7d9-abcde").await.unwrap();
    assert_eq!(ep.status.owner_controller_type, "Deployment");
    assert_eq!(ep.status.owner_controller_name, "web");
    assert_eq!(ep.status.current.uid, uid);
    assert_eq!(ep.status.current.node, "node-1");

    let again = cni("ADD", &conf, "app", "web-7d9-abcde", Some(&uid)).await;
    assert_eq!(again.ip(), ip, "a repeated ADD returns the same address");
    assert_eq!(lab.allocated("p").await.len(), 1);

    // The pod still exists and is alive: a sandbox restart keeps the address.
    let del = cni("DEL", &conf, "app", "web-7d9-abcde", Some(&uid)).await;
    assert_eq!(del.exit, 0, "{}", del.out);
    assert_eq!(lab.allocated("p").await.get(&ip), Some(&uid));
    assert!(lab.endpoint("app", "web-7d9-abcde").await.is_some());

    // Deleted from the API server: DEL frees it, and a repeated DEL still succeeds.
    lab.remove("v1", "Pod", "app", "web-7d9-abcde");
    let del = cni("DEL", &conf, "app", "web-7d9-abcde", Some(&uid)).await;
    assert_eq!(del.exit, 0, "{}", del.out);
    assert!(lab.allocated("p").await.is_empty());
    assert!(lab.endpoint("app", "web-7d9-abcde").await.is_none());
    let del = cni("DEL", &conf, "app", "web-7d9-abcde", Some(&uid)).await;
    assert_eq!(del.exit, 0, "DEL is idempotent: {}", del.out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_pod_keeps_its_ip_until_scaled_down() {
    let lab = Lab::new().await;
    put_pool(
        &lab.store,
        "p",
        "subnet: 10.2.0.0/24\nips: [10.2.0.10-10.2.0.19]",
    )
    .await;
    lab.namespace_with_default_pool("db", "p");
    let sts = lab.insert(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "pg", "namespace": "db"}, "spec": {"replicas": 1}}));
    let sts_uid = sts["metadata"]["uid"].as_str().unwrap().to_string();
    let owner = Some(("apps/v1", "StatefulSet", "pg", sts_uid.as_str()));
    let conf = lab.conf(json!({}));

    let uid1 = lab.pod("db", "pg-0", owner);
    let ip = cni("ADD", &conf, "db", "pg-0", Some(&uid1)).await.ip();
    let ep = lab.endpoint("db", "pg-0").await.unwrap();
    assert_eq!(ep.status.owner_controller_type, "StatefulSet");

    // The pod is deleted and re-created with a new uid: DEL keeps the address, ADD gets it
    // back.
    lab.remove("v1", "Pod", "db", "pg-0");
    let del = cni("DEL", &conf, "db", "pg-0", Some(&uid1)).await;
    assert_eq!(del.exit, 0, "{}", del.out);
    assert!(
        lab.allocated("p").await.contains_key(&ip),
        "a StatefulSet pod still wanted keeps its address"
    );
    let uid2 = lab.pod("db", "pg-0", owner);
    assert_ne!(uid1, uid2);
    let again = cni("ADD", &conf, "db", "pg-0", Some(&uid2)).await;
    assert_eq!(again.ip(), ip, "the re-created pod gets the same address");
    assert_eq!(lab.allocated("p").await.get(&ip), Some(&uid2));

    // Scaled to 0: the pod goes and DEL frees its address.
    let mut sts = lab
        .state
        .lock()
        .unwrap()
        .get("apps/v1", "StatefulSet", Some("db"), "pg")
        .unwrap();
    sts["spec"]["replicas"] = json!(0);
    lab.state.lock().unwrap().update(sts);
    lab.remove("v1", "Pod", "db", "pg-0");
    let del = cni("DEL", &conf, "db", "pg-0", Some(&uid2)).await;
    assert_eq!(del.exit, 0, "{}", del.out);
    assert!(lab.allocated("p").await.is_empty());
    assert!(lab.endpoint("db", "pg-0").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_annotation_selects_the_pool() {
    let lab = Lab::new().await;
    put_pool(
        &lab.store,
        "p",
        "subnet: 10.3.0.0/24\nips: [10.3.0.10-10.3.0.12]",
    )
    .await;
    put_pool(
        &lab.store,
        "q",
        "subnet: 10.4.0.0/24\nips: [10.4.0.10-10.4.0.12]",
    )
    .await;
    lab.namespace_with_default_pool("default", "p");
    let uid = lab.pod_annotated(
        "default",
        "solo",
        None,
        json!({"ipam.spidernet.io/ippool": "{\"ipv4\": [\"q\"]}"}),
    );
    // The netconf names p too: the pod's annotation wins over the namespace and the netconf.
    let conf = lab.conf(json!({"default_ipv4_ippool": ["p"]}));
    let ip = cni("ADD", &conf, "default", "solo", Some(&uid)).await.ip();
    assert!(ip.starts_with("10.4.0."), "{ip}");
    assert_eq!(lab.allocated("q").await.get(&ip), Some(&uid));
    assert!(lab.allocated("p").await.is_empty());
    let ep = lab.endpoint("default", "solo").await.unwrap();
    assert_eq!(ep.status.owner_controller_type, "Pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_party_pod_gets_its_auto_pool_at_add() {
    let lab = Lab::new().await;
    lab.insert(json!({
        "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderSubnet",
        "metadata": {"name": "s", "finalizers": ["spiderpool.spidernet.io"]},
        "spec": {"ipVersion": 4, "subnet": "10.20.0.0/16", "ips": ["10.20.0.1-10.20.0.254"]}
    }));
    let annotations = json!({"ipam.spidernet.io/subnet": "{\"ipv4\": [\"s\"]}",
        "ipam.spidernet.io/ippool-ip-number": "3"});
    let cs_uid = "5c1b2e7a-0d8e-4f43-9b7c-1a2b3c4d5e6f";
    let uid = lab.pod_annotated(
        "apps",
        "cs-x7k2p",
        Some(("apps.kruise.io/v1alpha1", "CloneSet", "cs", cs_uid)),
        annotations,
    );
    let conf = lab.conf(json!({}));
    let ip = cni("ADD", &conf, "apps", "cs-x7k2p", Some(&uid)).await.ip();
    assert!(ip.starts_with("10.20.0."), "{ip}");

    let pools: Vec<SpiderIPPool> = lab
        .store
        .list(SpiderIPPool::KIND)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|s| match s.object {
            Object::IpPool(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(pools.len(), 1, "one auto-created pool");
    let pool = &pools[0];
    let labels = &pool.metadata.labels;
    assert_eq!(
        labels.get(LABEL_OWNER_APPLICATION_UID).map(String::as_str),
        Some(cs_uid)
    );
    assert_eq!(
        labels.get(LABEL_OWNER_APPLICATION_KIND).map(String::as_str),
        Some("CloneSet")
    );
    assert_eq!(
        pool.spec.total_ips().unwrap().len().to_u128(),
        Some(3),
        "ippool-ip-number: 3"
    );
    assert_eq!(
        lab.allocated(&pool.metadata.name).await.get(&ip),
        Some(&uid)
    );
    let ep = lab.endpoint("apps", "cs-x7k2p").await.unwrap();
    assert_eq!(ep.status.owner_controller_type, "CloneSet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_workload_waits_a_bounded_time_for_its_auto_pool() {
    let lab = Lab::new().await;
    lab.insert(json!({
        "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderSubnet",
        "metadata": {"name": "s"},
        "spec": {"ipVersion": 4, "subnet": "10.30.0.0/16", "ips": ["10.30.0.1-10.30.0.254"]}
    }));
    let ds = lab.insert(json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "ops"}}));
    let ds_uid = ds["metadata"]["uid"].as_str().unwrap();
    let uid = lab.pod_annotated(
        "ops",
        "agent-x1",
        Some(("apps/v1", "DaemonSet", "agent", ds_uid)),
        json!({"ipam.spidernet.io/subnet": "{\"ipv4\": [\"s\"]}"}),
    );
    let conf = lab.conf(json!({"autopool_wait_retries": 2, "autopool_wait_interval_ms": 50}));
    let run = cni("ADD", &conf, "ops", "agent-x1", Some(&uid)).await;
    assert_eq!(run.code(), 11, "{}", run.out);
    let msg = run.msg();
    assert!(
        msg.contains("DaemonSet ops/agent") && msg.contains("waited 2"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_api_server_is_try_again_later() {
    // A closed port: the connection is refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let closed = dir.path().join("closed.kubeconfig");
    std::fs::write(&closed, kubeconfig(port)).unwrap();
    let conf = conf_with(&closed.display().to_string(), json!({}));
    for command in ["ADD", "DEL"] {
        let run = cni(command, &conf, "app", "web-1", Some("u1")).await;
        assert_eq!(run.code(), 11, "{command}: {}", run.out);
        assert!(run.msg().contains("try again later"), "{}", run.msg());
    }

    // A server that accepts connections and never answers: the request timeout ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let path = dir.path().join("silent.kubeconfig");
    std::fs::write(&path, kubeconfig(silent.local_addr().unwrap())).unwrap();
    let conf = conf_with(&path.display().to_string(), json!({"kube_timeout_ms": 300}));
    let run = cni("ADD", &conf, "app", "web-1", Some("u1")).await;
    assert_eq!(run.code(), 11, "{}", run.out);
    assert!(run.msg().contains("Pod app/web-1"), "{}", run.msg());
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_kubeconfig_and_stale_uid_are_refused() {
    let lab = Lab::new().await;
    let missing = lab.dir.path().join("nowhere.kubeconfig");
    let conf = conf_with(&missing.display().to_string(), json!({}));
    let run = cni("ADD", &conf, "app", "web-1", Some("u1")).await;
    assert_eq!(run.code(), 4, "{}", run.out);
    let msg = run.msg();
    assert!(
        msg.contains(&missing.display().to_string()) && msg.contains("not found"),
        "{msg}"
    );

    put_pool(
        &lab.store,
        "p",
        "subnet: 10.5.0.0/24\nips: [10.5.0.10-10.5.0.12]",
    )
    .await;
    lab.namespace_with_default_pool("app", "p");
    let uid = lab.pod("app", "web-1", None);
    let conf = lab.conf(json!({}));
    let run = cni("ADD", &conf, "app", "web-1", Some("an-older-uid")).await;
    assert_eq!(run.code(), 7, "{}", run.out);
    assert!(
        run.msg().contains("K8S_POD_UID an-older-uid") && run.msg().contains(&uid),
        "{}",
        run.msg()
    );
    assert!(lab.allocated("p").await.is_empty(), "nothing was allocated");

    // A pod that is not on the API server cannot get an address.
    let run = cni("ADD", &conf, "app", "ghost", Some("u9")).await;
    assert_ne!(run.exit, 0);
    assert!(run.msg().contains("Pod app/ghost"), "{}", run.msg());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_judges_only_this_nodes_attachments() {
    let lab = Lab::new().await;
    put_pool(
        &lab.store,
        "p",
        "subnet: 10.6.0.0/24\nips: [10.6.0.10-10.6.0.19]",
    )
    .await;
    lab.namespace_with_default_pool("app", "p");
    let conf = lab.conf(json!({}));
    let mut uids = Vec::new();
    for (name, node) in [("here", "node-1"), ("there", "node-2")] {
        let pod = lab.insert(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "app"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]}}));
        let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
        cni("ADD", &conf, "app", name, Some(&uid)).await.ip();
        uids.push(uid);
    }
    assert_eq!(lab.allocated("p").await.len(), 2);
    // The runtime of node-1 lists no valid attachment: only node-1's endpoint is released.
    let mut gc: Value = serde_json::from_str(&conf).unwrap();
    gc["cni.dev/valid-attachments"] = json!([]);
    let run = cni("GC", &gc.to_string(), "app", "here", None).await;
    assert_eq!(run.exit, 0, "{}", run.out);
    let left: Vec<String> = lab.allocated("p").await.into_values().collect();
    assert_eq!(
        left,
        vec![uids[1].clone()],
        "node-2's pod keeps its address"
    );
    assert!(lab.endpoint("app", "here").await.is_none());
}

/// Starts `spiderpoolctl agent` on `socket`; it is killed when the guard drops.
fn start_agent(socket: &std::path::Path) -> AgentGuard {
    let child = Command::new(env!("CARGO_BIN_EXE_spiderpoolctl"))
        .args(["agent", "--socket"])
        .arg(socket)
        .env_remove("KUBECONFIG")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the agent never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    AgentGuard(child)
}

struct AgentGuard(std::process::Child);

impl Drop for AgentGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_agent_each_cluster_is_its_own() {
    let one = Lab::new().await;
    let two = Lab::new().await;
    put_pool(
        &one.store,
        "p",
        "subnet: 10.5.0.0/24\nips: [10.5.0.10-10.5.0.12]",
    )
    .await;
    one.namespace_with_default_pool("default", "p");
    let uid = one.pod("default", "solo", None);
    let socket = one.dir.path().join("agent.sock");
    let _agent = start_agent(&socket);
    let with_agent = |lab: &Lab| {
        lab.conf(json!({"ipam_unix_socket_path": socket, "default_ipv4_ippool": ["p"]}))
    };
    let ip = cni("ADD", &with_agent(&one), "default", "solo", Some(&uid))
        .await
        .ip();
    assert_eq!(one.allocated("p").await.get(&ip), Some(&uid));
    assert_eq!(cni("STATUS", &with_agent(&one), "", "", None).await.exit, 0);
    // The second cluster has no pool p: the agent must not answer from the first one's store.
    let status = cni("STATUS", &with_agent(&two), "", "", None).await;
    assert_eq!(status.code(), 50, "{}", status.out);
    // The pod is gone: DEL through the agent frees its address.
    one.remove("v1", "Pod", "default", "solo");
    assert_eq!(
        cni("DEL", &with_agent(&one), "default", "solo", Some(&uid))
            .await
            .exit,
        0
    );
    assert!(one.allocated("p").await.is_empty());
}
