//! End to end with real processes: 64 plugin processes at once on one store, and Debian's
//! `bridge` plugin delegating IPAM to our binary inside network namespaces the test creates.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
mod common;

use spiderpool_testkit::check_invariants;
use spiderpool_testkit::fixtures::block_on_ready;

fn plugin() -> &'static str {
    env!("CARGO_BIN_EXE_spiderpool")
}

fn ctl(store: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let out = common::spiderpoolctl(store, args, stdin);
    assert!(
        out.status.success(),
        "spiderpoolctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn pool_yaml(name: &str, subnet: &str, ips: &str, gateway: &str) -> String {
    format!(
        "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {{name: {name}}}\n\
         spec: {{subnet: {subnet}, ips: [{ips}], gateway: {gateway}, default: true}}\n"
    )
}

/// Starts one CNI invocation of `binary` without waiting for it.
fn spawn_cni(
    binary: &str,
    command: &str,
    container: &str,
    netns: &str,
    conf: &str,
    cni_path: &str,
    wrap_netns: Option<&str>,
) -> std::process::Child {
    let mut cmd = match wrap_netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, binary]);
            c
        }
        None => Command::new(binary),
    };
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", cni_path)
        .env("CNI_ARGS", format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=e2e;K8S_POD_NAME=pod-{container};K8S_POD_UID=uid-{container}"));
    common::spawn_fed(&mut cmd, conf)
}

/// Starts 64 ADDs of the plugin at once with `conf`; returns the distinct addresses given.
fn sixty_four_adds(conf: &str) -> Vec<String> {
    let children: Vec<_> = (0..64)
        .map(|i| {
            spawn_cni(
                plugin(),
                "ADD",
                &format!("c{i}"),
                "/var/run/netns/none",
                conf,
                "",
                None,
            )
        })
        .collect();
    let mut addresses = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        addresses.push(v["ips"][0]["address"].as_str().unwrap().to_string());
    }
    addresses.sort();
    addresses.dedup();
    addresses
}

#[test]
fn sixty_four_plugin_processes_at_once_get_distinct_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ctl(
        &store,
        &["apply", "-f", "-"],
        Some(&pool_yaml(
            "big",
            "10.232.0.0/24",
            "10.232.0.10-10.232.0.200",
            "10.232.0.1",
        )),
    );
    let conf = json!({"cniVersion": "1.0.0", "name": "many", "type": "spiderpool", "ipam": {"type": "spiderpool", "store": store}}).to_string();
    let addresses = sixty_four_adds(&conf);
    assert_eq!(addresses.len(), 64, "an address was handed out twice");
    let local = backend_memory::LocalStore::open(&store).unwrap();
    block_on_ready(check_invariants(&local)).unwrap();
    let sp = String::from_utf8(ctl(&store, &["get", "sp"], None).stdout).unwrap();
    assert!(
        sp.contains("big    4         10.232.0.0/24   64                   191"),
        "{sp}"
    );
    // And all 64 DELs at once free everything.
    let children: Vec<_> = (0..64)
        .map(|i| {
            spawn_cni(
                plugin(),
                "DEL",
                &format!("c{i}"),
                "/var/run/netns/none",
                &conf,
                "",
                None,
            )
        })
        .collect();
    for child in children {
        assert!(child.wait_with_output().unwrap().status.success());
    }
    block_on_ready(check_invariants(&local)).unwrap();
    let sp = String::from_utf8(ctl(&store, &["get", "sp"], None).stdout).unwrap();
    assert!(sp.contains("big    4         10.232.0.0/24   0 "), "{sp}");
}

/// Network namespaces made by this test, removed when it ends (even on failure).
struct Netns(Vec<String>);

impl Netns {
    fn add(&mut self, name: &str) -> bool {
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            self.0.push(name.to_string());
        }
        ok
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn in_netns(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Why the bridge test cannot run here, if it cannot.
fn bridge_unavailable() -> Option<String> {
    if !Path::new("/usr/lib/cni/bridge").exists() {
        return Some(
            "Debian's containernetworking-plugins is not installed (scripts/test.sh installs it)"
                .into(),
        );
    }
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("network namespaces need root".into());
    }
    None
}

#[test]
fn bridge_plugin_delegates_ipam_to_spiderpool_in_network_namespaces() {
    if let Some(why) = bridge_unavailable() {
        eprintln!("skipping the bridge end-to-end test: {why}");
        return;
    }
    let id = std::process::id() % 100_000;
    let (host, ctr1, ctr2) = (
        format!("sp-host-{id}"),
        format!("sp-c1-{id}"),
        format!("sp-c2-{id}"),
    );
    let mut namespaces = Netns(Vec::new());
    for ns in [&host, &ctr1, &ctr2] {
        if !namespaces.add(ns) {
            eprintln!(
                "skipping the bridge end-to-end test: the kernel refused `ip netns add {ns}`"
            );
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ctl(
        &store,
        &["apply", "-f", "-"],
        Some(&pool_yaml(
            "lab",
            "10.231.7.0/24",
            "10.231.7.10-10.231.7.20",
            "10.231.7.1",
        )),
    );
    let plugin_dir: PathBuf = Path::new(plugin()).parent().unwrap().to_path_buf();
    let cni_path = format!("/usr/lib/cni:{}", plugin_dir.display());
    let conf = json!({
        "cniVersion": "1.0.0", "name": "e2e", "type": "bridge",
        "bridge": format!("spbr{}", id % 10_000), "isGateway": true,
        "ipam": {"type": "spiderpool", "store": store}
    })
    .to_string();
    let netns_path = |ns: &str| format!("/var/run/netns/{ns}");
    let cni_with = |command: &str, container: &str, ns: &str, conf: &str| {
        spawn_cni(
            "/usr/lib/cni/bridge",
            command,
            container,
            &netns_path(ns),
            conf,
            &cni_path,
            Some(&host),
        )
        .wait_with_output()
        .unwrap()
    };
    let cni = |command: &str, container: &str, ns: &str| cni_with(command, container, ns, &conf);

    // ADD: the container gets the address, and a default route via the pool's gateway.
    let out = cni("ADD", "ctr1", &ctr1);
    assert!(
        out.status.success(),
        "bridge ADD: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["ips"][0]["address"], "10.231.7.10/24", "{result}");
    assert!(in_netns(&ctr1, &["ip", "-4", "addr", "show", "eth0"]).contains("inet 10.231.7.10/24"));
    assert!(in_netns(&ctr1, &["ip", "route"]).contains("default via 10.231.7.1 dev eth0"));
    assert!(
        in_netns(&host, &["ip", "-4", "addr"]).contains("10.231.7.1/24"),
        "the bridge holds the gateway"
    );

    // A reserved IP applied while pods come and go: the next pod skips it.
    ctl(&store, &["apply", "-f", "-"], Some("apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderReservedIP\nmetadata: {name: r}\nspec: {ips: [10.231.7.11]}\n"));
    let out = cni("ADD", "ctr2", &ctr2);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(in_netns(&ctr2, &["ip", "-4", "addr", "show", "eth0"]).contains("inet 10.231.7.12/24"));
    let sp = String::from_utf8(ctl(&store, &["get", "sp"], None).stdout).unwrap();
    assert!(
        sp.contains("lab    4         10.231.7.0/24   2                    11"),
        "{sp}"
    );

    // CHECK (with the ADD result, as runtimes pass it) passes; DEL removes the interface and
    // frees the address, twice is fine.
    let mut check_conf: Value = serde_json::from_str(&conf).unwrap();
    check_conf["prevResult"] = result.clone();
    let out = cni_with("CHECK", "ctr1", &ctr1, &check_conf.to_string());
    assert!(
        out.status.success(),
        "bridge CHECK: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(cni("DEL", "ctr1", &ctr1).status.success());
    assert!(!in_netns(&ctr1, &["ip", "link"]).contains("eth0"));
    assert!(cni("DEL", "ctr1", &ctr1).status.success());
    ctl(&store, &["delete", "sr", "r"], None);
    let out = cni("ADD", "ctr3", &ctr1);
    assert!(out.status.success());
    assert!(
        in_netns(&ctr1, &["ip", "-4", "addr", "show", "eth0"]).contains("inet 10.231.7.10/24"),
        "the freed address comes back first"
    );
    for (c, ns) in [("ctr2", &ctr2), ("ctr3", &ctr1)] {
        assert!(cni("DEL", c, ns).status.success());
    }
    let local = backend_memory::LocalStore::open(&store).unwrap();
    block_on_ready(check_invariants(&local)).unwrap();
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            &host,
            "ip",
            "link",
            "del",
            &format!("spbr{}", id % 10_000),
        ])
        .status();
}

#[test]
fn sixty_four_plugin_processes_on_etcd_and_the_emulation_on_etcd() {
    let cluster = spiderpool_testkit::etcd::shared();
    let port = cluster.members[0].client;
    let store_url = format!("etcd://127.0.0.1:{port}/e2e-{}", std::process::id());
    let store = Path::new(&store_url);
    ctl(
        store,
        &["apply", "-f", "-"],
        Some(&pool_yaml(
            "big",
            "10.233.0.0/24",
            "10.233.0.10-10.233.0.200",
            "10.233.0.1",
        )),
    );
    let conf = json!({"cniVersion": "1.0.0", "name": "many", "type": "spiderpool", "ipam": {"type": "spiderpool", "store": store_url}}).to_string();
    let addresses = sixty_four_adds(&conf);
    assert_eq!(addresses.len(), 64, "an address was handed out twice");
    let sp = String::from_utf8(ctl(store, &["get", "sp"], None).stdout).unwrap();
    assert!(
        sp.contains("big    4         10.233.0.0/24   64                   191"),
        "{sp}"
    );
    // The workload emulation works the same on etcd (seed 003).
    let scenario = std::fs::read_to_string(
        spiderpool_testkit::fixtures::package_dir()
            .join("../examples/scenarios/003-reserved-ip/app.yaml"),
    )
    .unwrap();
    let other = format!("etcd://127.0.0.1:{port}/e2e-emu-{}", std::process::id());
    ctl(Path::new(&other), &["apply", "-f", "-"], Some(&scenario));
    let pods = String::from_utf8(ctl(Path::new(&other), &["get", "pods"], None).stdout).unwrap();
    assert_eq!(pods.matches("Running").count(), 1, "{pods}");
    assert!(pods.contains("10.6.168.133"), "{pods}");
    assert_eq!(pods.matches("Pending").count(), 1, "{pods}");
}
