//! The workload emulation through the `spiderpoolctl` binary: the seed scenarios under
//! `examples/scenarios/`, and failure modes other IPAMs have had.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde_json::Value;
mod common;

use spiderpool_testkit::check_invariants;
use spiderpool_testkit::fixtures::block_on_ready;

struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Self {
        Lab {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn ctl(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = common::spiderpoolctl(&self.store(), args, stdin);
        assert!(
            out.status.success(),
            "spiderpoolctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn apply_example(&self, path: &str) -> String {
        let file = spiderpool_testkit::fixtures::package_dir()
            .join("..")
            .join(path);
        self.ctl(&["apply", "-f", file.to_str().unwrap()], None)
    }

    /// (name, phase, IPs, message) of every pod, by name.
    fn pods(&self) -> Vec<(String, String, Vec<String>, String)> {
        let v: Value =
            serde_json::from_str(&self.ctl(&["get", "pods", "-A", "-o", "json"], None)).unwrap();
        let mut out: Vec<_> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let ips = p["status"]["podIPs"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|i| i["ip"].as_str().unwrap().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    p["status"]["phase"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    ips,
                    p["status"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn running(&self) -> Vec<(String, Vec<String>)> {
        self.pods()
            .into_iter()
            .filter(|p| p.1 == "Running")
            .map(|p| (p.0, p.2))
            .collect()
    }

    /// (allocated, total) of pool `name` from `get sp -o json`.
    fn pool(&self, prefix: &str) -> (i64, i64) {
        let v: Value = serde_json::from_str(&self.ctl(&["get", "sp", "-o", "json"], None)).unwrap();
        let p = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["metadata"]["name"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no pool {prefix}"));
        (
            p["status"]["allocatedIPCount"].as_i64().unwrap_or(0),
            p["status"]["totalIPCount"].as_i64().unwrap(),
        )
    }

    fn invariants(&self) {
        let store = backend_memory::LocalStore::open(self.store()).unwrap();
        block_on_ready(check_invariants(&store)).unwrap();
        // Every running pod's addresses are distinct.
        let mut all: Vec<String> = self
            .running()
            .into_iter()
            .flat_map(|(_, ips)| ips)
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "an address is held by two pods");
    }
}

#[test]
fn seed_003_reserved_ip() {
    let lab = Lab::new();
    lab.apply_example("examples/scenarios/003-reserved-ip/app.yaml");
    let pods = lab.pods();
    assert_eq!(pods.len(), 2);
    let running: Vec<_> = pods.iter().filter(|p| p.1 == "Running").collect();
    assert_eq!(running.len(), 1, "{pods:?}");
    assert_eq!(running[0].2, vec!["10.6.168.133"]);
    let pending = pods.iter().find(|p| p.1 == "Pending").unwrap();
    assert!(
        pending.3.starts_with("all IP addresses used out"),
        "{}",
        pending.3
    );
    // Reserve the running pod's address too, and delete the pod: the replacement is pending.
    let text = std::fs::read_to_string(
        spiderpool_testkit::fixtures::package_dir()
            .join("../examples/scenarios/003-reserved-ip/app.yaml"),
    )
    .unwrap();
    lab.ctl(
        &["apply", "-f", "-"],
        Some(&text.replace("10.6.168.131-10.6.168.132", "10.6.168.131-10.6.168.133")),
    );
    lab.ctl(&["delete", "pod", &running[0].0], None);
    let pods = lab.pods();
    assert_eq!(pods.len(), 2);
    assert!(
        pods.iter()
            .all(|p| p.1 == "Pending" && p.3.contains("all IP addresses used out")),
        "{pods:?}"
    );
    // Deleting the reservation lets both run.
    lab.ctl(&["delete", "sr", "test-reservedip"], None);
    assert_eq!(lab.running().len(), 2);
    assert_eq!(lab.pool("test-ippool"), (2, 3));
    lab.invariants();
}

#[test]
fn seed_002_flexible_auto_pool_follows_the_deployment() {
    let lab = Lab::new();
    lab.apply_example("examples/scenarios/002-deployment-auto-pool/app.yaml");
    assert_eq!(lab.pool("auto4-nginx-eth0-"), (2, 5), "replicas 2 + 3");
    assert_eq!(
        lab.pool("nginx-v4-ippool"),
        (2, 11),
        "the manual pool of 11"
    );
    let in_auto = |ip: &str| {
        [
            "10.244.100.90",
            "10.244.100.91",
            "10.244.100.92",
            "10.244.100.93",
            "10.244.100.94",
            "10.244.100.95",
        ]
        .contains(&ip)
    };
    for (name, ips) in lab.running() {
        if name.starts_with("nginx-m-") {
            assert!(ips[0].starts_with("10.244.120."), "{name} {ips:?}");
        } else {
            assert!(in_auto(&ips[0]), "{name} {ips:?}");
        }
    }
    // A restarted pod (deleted, re-created by its Deployment) stays inside the pool.
    let victim = lab
        .running()
        .into_iter()
        .find(|(n, _)| n.starts_with("nginx-") && !n.starts_with("nginx-m"))
        .unwrap();
    lab.ctl(&["delete", "pod", &victim.0], None);
    assert!(lab
        .running()
        .iter()
        .filter(|(n, _)| !n.starts_with("nginx-m"))
        .all(|(_, ips)| in_auto(&ips[0])));
    // Scale up: the pool grows to replicas + 3.
    assert_eq!(
        lab.ctl(&["scale", "deploy/nginx", "--replicas", "3"], None),
        "deployment.apps/nginx scaled\n"
    );
    assert_eq!(lab.pool("auto4-nginx-eth0-"), (3, 6));
    assert!(lab
        .running()
        .iter()
        .filter(|(n, _)| !n.starts_with("nginx-m"))
        .all(|(_, ips)| in_auto(&ips[0])));
    let ss = lab.ctl(&["get", "ss"], None);
    assert!(
        ss.contains("nginx-subnet-v4   4         10.244.0.0/16   17                   122"),
        "{ss}"
    );
    // Deleting the Deployment reclaims its pool; the subnet gets the addresses back.
    lab.ctl(&["delete", "deploy", "nginx"], None);
    assert!(!lab.ctl(&["get", "sp"], None).contains("auto4-nginx"));
    assert!(lab
        .ctl(&["get", "ss"], None)
        .contains("nginx-subnet-v4   4         10.244.0.0/16   11 "));
    lab.invariants();
}

#[test]
fn seed_000_cloneset_with_a_fixed_number_on_dual_stack() {
    let lab = Lab::new();
    lab.apply_example("examples/scenarios/000-cloneset-auto-pools/app.yaml");
    assert_eq!(lab.pool("auto4-custom-kruise-cloneset-eth0-"), (3, 5));
    assert_eq!(lab.pool("auto6-custom-kruise-cloneset-eth0-"), (3, 5));
    assert!(
        lab.running().iter().all(|(_, ips)| ips.len() == 2),
        "dual-stack pods"
    );
    // No growth on scale: 6 replicas, 5 addresses, one pod pending.
    lab.ctl(
        &[
            "scale",
            "cloneset/custom-kruise-cloneset",
            "--replicas",
            "6",
        ],
        None,
    );
    assert_eq!(lab.pool("auto4-custom-kruise-cloneset-eth0-"), (5, 5));
    assert_eq!(lab.pods().iter().filter(|p| p.1 == "Pending").count(), 1);
    // Third-party pools are not deleted with their controller.
    lab.ctl(&["delete", "cloneset", "custom-kruise-cloneset"], None);
    assert!(lab.pods().is_empty());
    assert_eq!(lab.pool("auto4-custom-kruise-cloneset-eth0-"), (0, 5));
    lab.invariants();
}

const STS: &str = r#"
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: p}
spec: {subnet: 10.7.0.0/24, ips: [10.7.0.10-10.7.0.30], default: true}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 3
  template:
    metadata: {labels: {app: db}}
"#;

#[test]
fn a_statefulset_pod_recreated_at_once_keeps_its_address_without_duplicates() {
    // Spiderpool 1187, Whereabouts 176.
    let lab = Lab::new();
    lab.ctl(&["apply", "-f", "-"], Some(STS));
    let before = lab.running();
    assert_eq!(before.len(), 3);
    lab.ctl(&["delete", "pod", "db-1"], None);
    let after = lab.running();
    assert_eq!(
        before
            .iter()
            .map(|(n, ips)| (n.clone(), ips.clone()))
            .collect::<Vec<_>>(),
        after,
        "same names, same addresses"
    );
    lab.invariants();
}

#[test]
fn a_statefulset_scaled_down_and_up_loses_and_duplicates_nothing() {
    // Spiderpool 2442, 3778.
    let lab = Lab::new();
    lab.ctl(&["apply", "-f", "-"], Some(STS));
    let db0 = lab.running()[0].1.clone();
    lab.ctl(&["scale", "sts/db", "--replicas", "1"], None);
    assert_eq!(lab.running().len(), 1);
    assert_eq!(
        lab.pool("p"),
        (1, 21),
        "scaled-down ordinals released their addresses"
    );
    lab.ctl(&["scale", "statefulset", "db", "--replicas", "3"], None);
    let now = lab.running();
    assert_eq!(now.len(), 3);
    assert_eq!(now[0], ("db-0".to_string(), db0), "db-0 kept its address");
    lab.invariants();
}

#[test]
fn a_node_that_disappears_does_not_keep_its_pods_addresses() {
    // Whereabouts 75.
    let lab = Lab::new();
    lab.ctl(&["apply", "-f", "-"], Some("apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n2}\n---\napiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {name: p}\nspec: {subnet: 10.7.0.0/24, ips: [10.7.0.10-10.7.0.30], default: true}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 4\n  template:\n    metadata: {labels: {app: web}}\n"));
    assert_eq!(lab.running().len(), 4);
    lab.ctl(&["delete", "node", "n2"], None);
    let pods: Value = serde_json::from_str(&lab.ctl(&["get", "pods", "-o", "json"], None)).unwrap();
    assert!(pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["spec"]["nodeName"] == "n1"));
    assert_eq!(
        lab.running().len(),
        4,
        "the Deployment re-created them on n1"
    );
    assert_eq!(
        lab.pool("p"),
        (4, 21),
        "the pods of n2 freed their addresses"
    );
    lab.invariants();
}

#[test]
fn a_partly_failed_multi_nic_pod_leaks_nothing() {
    // Spiderpool 4295, 412.
    let lab = Lab::new();
    lab.ctl(&["apply", "-f", "-"], Some(r#"
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: roomy}
spec: {subnet: 10.7.0.0/24, ips: [10.7.0.10-10.7.0.30]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: full}
spec: {subnet: 10.8.0.0/24, ips: [10.8.0.10]}
---
apiVersion: v1
kind: Pod
metadata:
  name: first
  annotations: {ipam.spidernet.io/ippool: '{"ipv4":["full"]}'}
---
apiVersion: v1
kind: Pod
metadata:
  name: two-nics
  annotations:
    ipam.spidernet.io/ippools: '[{"interface":"eth0","ipv4":["roomy"]},{"interface":"net1","ipv4":["full"]}]'
"#));
    let pods = lab.pods();
    let two = pods.iter().find(|p| p.0 == "two-nics").unwrap();
    assert_eq!(two.1, "Pending");
    assert!(two.3.contains("NIC net1"), "{}", two.3);
    assert_eq!(lab.pool("roomy"), (0, 21), "eth0's address was not kept");
    lab.invariants();
    // Once `full` has room, both NICs are allocated on the next command.
    lab.ctl(&["delete", "pod", "first"], None);
    assert_eq!(
        lab.running()
            .iter()
            .find(|(n, _)| n == "two-nics")
            .unwrap()
            .1,
        vec!["10.7.0.10"]
    );
    assert_eq!(lab.pool("full"), (1, 1));
    lab.invariants();
}

#[test]
fn settings_come_from_the_spiderpool_configmap() {
    let lab = Lab::new();
    lab.ctl(&["apply", "-f", "-"], Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: spiderpool-conf, namespace: kube-system}\ndata:\n  conf.yml: |\n    enableIPv4: true\n    enableIPv6: false\n    clusterSubnetDefaultFlexibleIPNumber: 2\n---\napiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderSubnet\nmetadata: {name: s}\nspec: {subnet: 10.9.0.0/24, ips: [10.9.0.1-10.9.0.50]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  template:\n    metadata:\n      annotations: {ipam.spidernet.io/subnet: '{\"ipv4\":[\"s\"]}'}\n"));
    assert_eq!(
        lab.pool("auto4-web-eth0-"),
        (1, 3),
        "1 replica + the configured default 2"
    );
}

#[test]
fn concurrent_appliers_fill_an_exact_pool_without_duplicates_or_leaks() {
    // Spiderpool's "limit" test, small: 10 Deployments x 10 replicas on a pool of exactly 100
    // addresses, applied by 5 `spiderpoolctl` processes at once (benches/limit-1000.sh runs
    // the full 100 x 10).
    let lab = Lab::new();
    let mut setup = String::from("apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {name: limit}\nspec: {subnet: 10.8.0.0/16, ips: [10.8.0.1-10.8.0.100], default: true}\n");
    for n in 1..=5 {
        setup.push_str(&format!(
            "---\napiVersion: v1\nkind: Node\nmetadata: {{name: node-{n}}}\n"
        ));
    }
    lab.ctl(&["apply", "-f", "-"], Some(&setup));
    let files: Vec<String> = (0..5)
        .map(|k| {
            (0..2)
                .map(|j| {
                    let d = k * 2 + j;
                    format!("---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app-{d}}}\nspec:\n  replicas: 10\n  template:\n    metadata: {{labels: {{app: app-{d}}}}}\n")
                })
                .collect()
        })
        .collect();
    let children: Vec<_> = files
        .iter()
        .map(|f| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spiderpoolctl"));
            cmd.args(["apply", "-f", "-"])
                .env("SPIDERPOOL_STORE", lab.store());
            common::spawn_fed(&mut cmd, f)
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "an applier failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pods = lab.pods();
    assert_eq!(pods.len(), 100, "{pods:?}");
    let running = lab.running();
    assert_eq!(running.len(), 100, "every pod Running: {pods:?}");
    assert!(running.iter().all(|(_, ips)| ips.len() == 1));
    assert_eq!(
        lab.pool("limit"),
        (100, 100),
        "every address held, none leaked"
    );
    // Every pod's address is the one the pool records for it.
    let v: Value =
        serde_json::from_str(&lab.ctl(&["get", "sp", "limit", "-o", "json"], None)).unwrap();
    let records: Value =
        serde_json::from_str(v["status"]["allocatedIPs"].as_str().unwrap()).unwrap();
    for (name, ips) in &running {
        assert_eq!(
            records[&ips[0]]["pod"].as_str(),
            Some(format!("default/{name}").as_str()),
            "{name} holds {} but the pool says otherwise",
            ips[0]
        );
    }
    // The pods spread over the nodes.
    let v: Value = serde_json::from_str(&lab.ctl(&["get", "pods", "-o", "json"], None)).unwrap();
    let nodes: std::collections::BTreeSet<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    assert_eq!(nodes.len(), 5);
    lab.invariants();
}
