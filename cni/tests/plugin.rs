//! The plugin in-process: every command, every error code, every result version.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use spiderpool_cni::netconf::CniEnv;
use spiderpool_cni::plugin::{run, Reply};

struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    /// A store holding a pool 10.99.0.10-13 (default, gateway .1), a reserved .10, and a v6
    /// pool.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab { dir };
        let yaml = r#"
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: v4}
spec: {subnet: 10.99.0.0/24, ips: [10.99.0.10-10.99.0.13], gateway: 10.99.0.1, default: true, routes: [{dst: 10.100.0.0/16, gw: 10.99.0.254}]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: v6}
spec: {subnet: "fd99::/120", ips: ["fd99::10-fd99::11"], gateway: "fd99::1"}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderReservedIP
metadata: {name: r}
spec: {ips: [10.99.0.10]}
"#;
        let store = backend_memory::LocalStore::open(lab.store()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(spiderpool_cni::ctl::apply(
            &store,
            "lab.yaml",
            yaml,
            &mut || "uid".into(),
            "2026-01-01T00:00:00Z",
        ))
        .unwrap();
        lab
    }

    fn store(&self) -> String {
        self.dir.path().join("store").display().to_string()
    }

    fn conf(&self, version: &str, ipam_extra: Value) -> Vec<u8> {
        let mut ipam = json!({"type": "spiderpool", "store": self.store()});
        if let (Some(m), Some(extra)) = (ipam.as_object_mut(), ipam_extra.as_object()) {
            m.extend(extra.clone());
        }
        json!({"cniVersion": version, "name": "lab", "type": "bridge", "ipam": ipam, "dns": {"nameservers": ["10.99.0.53"]}})
            .to_string()
            .into_bytes()
    }

    fn call(&self, command: &str, container: &str, pod: &str, stdin: &[u8]) -> Reply {
        let env = CniEnv {
            command: command.into(),
            container_id: container.into(),
            netns: "/var/run/netns/test".into(),
            ifname: "eth0".into(),
            args: [
                ("K8S_POD_NAMESPACE", "default"),
                ("K8S_POD_NAME", pod),
                ("K8S_POD_UID", &format!("uid-{pod}")),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        };
        run(&env, stdin, "node-1")
    }
}

fn json_of(r: &Reply) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", r.stdout))
}

#[track_caller]
fn assert_error(r: &Reply, code: u64, fragment: &str) {
    assert_eq!(r.exit_code, 1, "{r:?}");
    let v = json_of(r);
    assert_eq!(v["code"], code, "{v}");
    let text = format!(
        "{} {}",
        v["msg"].as_str().unwrap_or_default(),
        v["details"].as_str().unwrap_or_default()
    );
    assert!(text.contains(fragment), "{fragment:?} not in {v}");
}

#[test]
fn add_returns_address_gateway_routes_and_dns_and_is_idempotent() {
    let lab = Lab::new();
    let conf = lab.conf("1.0.0", json!({}));
    let r = lab.call("ADD", "c1", "web-1", &conf);
    assert_eq!(r.exit_code, 0, "{r:?}");
    let v = json_of(&r);
    assert_eq!(v["cniVersion"], "1.0.0");
    assert_eq!(
        v["ips"],
        json!([{"address": "10.99.0.11/24", "gateway": "10.99.0.1"}]),
        "the reserved .10 is skipped"
    );
    assert_eq!(
        v["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.99.0.1"}, {"dst": "10.100.0.0/16", "gw": "10.99.0.254"}])
    );
    assert_eq!(v["dns"], json!({"nameservers": ["10.99.0.53"]}));
    assert_eq!(
        lab.call("ADD", "c1", "web-1", &conf),
        r,
        "ADD twice returns the same result"
    );
    // CHECK agrees; DEL twice and DEL of a stranger succeed.
    assert_eq!(lab.call("CHECK", "c1", "web-1", &conf).exit_code, 0);
    assert_eq!(lab.call("DEL", "c1", "web-1", &conf).exit_code, 0);
    assert_error(
        &lab.call("CHECK", "c1", "web-1", &conf),
        103,
        "no allocation for pod default/web-1",
    );
    assert_eq!(lab.call("DEL", "c1", "web-1", &conf).exit_code, 0);
    assert_eq!(lab.call("DEL", "zz", "never-added", &conf).exit_code, 0);
    // The freed address is given again.
    let again = json_of(&lab.call("ADD", "c2", "web-2", &conf));
    assert_eq!(again["ips"][0]["address"], "10.99.0.11/24");
}

#[test]
fn older_versions_carry_the_ip_version_and_dual_stack_works() {
    let lab = Lab::new();
    let conf = lab.conf("0.4.0", json!({"default_ipv4_ippool": ["v4"], "default_ipv6_ippool": ["v6"], "clean_gateway": true}));
    let v = json_of(&lab.call("ADD", "c1", "a", &conf));
    assert_eq!(v["cniVersion"], "0.4.0");
    assert_eq!(
        v["ips"],
        json!([
            {"address": "10.99.0.11/24", "gateway": "10.99.0.1", "version": "4"},
            {"address": "fd99::10/120", "gateway": "fd99::1", "version": "6"}
        ])
    );
    assert_eq!(
        v["routes"],
        json!([{"dst": "10.100.0.0/16", "gw": "10.99.0.254"}]),
        "clean gateway: no default routes"
    );
}

#[test]
fn annotations_in_the_netconf_select_pools() {
    let lab = Lab::new();
    let mut conf: Value = serde_json::from_slice(&lab.conf("1.1.0", json!({}))).unwrap();
    conf["args"] =
        json!({"cni": {"annotations": {"ipam.spidernet.io/ippool": "{\"ipv6\":[\"v6\"]}"}}});
    let v = json_of(&lab.call("ADD", "c1", "a", conf.to_string().as_bytes()));
    assert_eq!(v["ips"][0]["address"], "fd99::10/120");
    conf["args"] = json!({"cni": {"annotations": {"ipam.spidernet.io/ippool": "{ipv6: nope}"}}});
    assert_error(
        &lab.call("ADD", "c2", "b", conf.to_string().as_bytes()),
        101,
        "wrong input",
    );
}

#[test]
fn errors_have_cni_codes() {
    let lab = Lab::new();
    let conf = lab.conf("1.0.0", json!({}));
    assert_error(
        &lab.call("ADD", "c1", "a", b"{not json"),
        4,
        "invalid network configuration",
    );
    assert_error(
        &lab.call("ADD", "c1", "a", br#"{"cniVersion":"9.9.9"}"#),
        1,
        "unsupported CNI version \"9.9.9\"",
    );
    assert_error(
        &lab.call("ADD", "", "a", &conf),
        7,
        "CNI_CONTAINERID: must be set",
    );
    assert_error(
        &lab.call("ADD", "../etc", "a", &conf),
        7,
        "must not contain '/'",
    );
    assert_error(&lab.call("NOPE", "c1", "a", &conf), 7, "unknown command");
    let bad_type = lab.conf("1.0.0", json!({"log_file_max_size": "100M"}));
    assert_error(
        &lab.call("ADD", "c1", "a", &bad_type),
        4,
        "log_file_max_size",
    );
    // Exhaustion: .11, .12, .13 then nothing; every pool is explained.
    for (c, p) in [("c1", "a"), ("c2", "b"), ("c3", "c")] {
        assert_eq!(lab.call("ADD", c, p, &conf).exit_code, 0);
    }
    let r = lab.call("ADD", "c4", "d", &conf);
    assert_error(&r, 100, "all IP addresses used out");
    assert!(json_of(&r)["details"]
        .as_str()
        .unwrap()
        .contains("IPPool v4: no free address, the 1 unallocated ones are reserved"));
    // A corrupt store is a store error, and it is left alone.
    let data = std::path::Path::new(&lab.store()).join("store.json");
    std::fs::write(&data, "garbage").unwrap();
    assert_error(
        &lab.call("ADD", "c5", "e", &conf),
        102,
        "corrupt store file",
    );
    assert_error(
        &lab.call("DEL", "c1", "a", &conf),
        102,
        "corrupt store file",
    );
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "garbage");
}

#[test]
fn version_status_and_gc() {
    let lab = Lab::new();
    let conf = lab.conf("1.1.0", json!({}));
    let v = json_of(&lab.call("VERSION", "", "", br#"{"cniVersion":"1.1.0"}"#));
    assert_eq!(
        v["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
    assert_eq!(lab.call("STATUS", "", "", &conf).exit_code, 0);
    for (c, p) in [("c1", "a"), ("c2", "b"), ("c3", "c")] {
        assert_eq!(lab.call("ADD", c, p, &conf).exit_code, 0);
    }
    assert_error(
        &lab.call("STATUS", "", "", &conf),
        50,
        "no free IP address in the configured IPPools [\"v4\"]",
    );
    // GC: only c2 is still valid; c1 and c3 are released.
    let mut gc: Value = serde_json::from_slice(&conf).unwrap();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c2", "ifname": "eth0"}]);
    let r = lab.call("GC", "", "", gc.to_string().as_bytes());
    assert_eq!(r.exit_code, 0, "{r:?}");
    assert_eq!(lab.call("CHECK", "c2", "b", &conf).exit_code, 0);
    assert_eq!(lab.call("CHECK", "c1", "a", &conf).exit_code, 1);
    assert_eq!(
        lab.call("STATUS", "", "", &conf).exit_code,
        0,
        "addresses are free again"
    );
    // Another network's GC does not touch ours.
    gc["name"] = json!("other");
    gc["cni.dev/valid-attachments"] = json!([]);
    assert_eq!(
        lab.call("GC", "", "", gc.to_string().as_bytes()).exit_code,
        0
    );
    assert_eq!(lab.call("CHECK", "c2", "b", &conf).exit_code, 0);
}

#[test]
fn a_held_store_lock_answers_try_again_later() {
    let lab = Lab::new();
    let conf = lab.conf("1.0.0", json!({"lock_timeout_ms": 50}));
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(std::path::Path::new(&lab.store()).join("store.lock"))
        .unwrap();
    lock.lock().unwrap();
    assert_error(&lab.call("ADD", "c1", "a", &conf), 11, "try again later");
    lock.unlock().unwrap();
    assert_eq!(lab.call("ADD", "c1", "a", &conf).exit_code, 0);
}

#[test]
fn invocations_are_logged_when_a_log_file_is_set() {
    let lab = Lab::new();
    let log = lab.dir.path().join("plugin.log");
    let conf = lab.conf("1.0.0", json!({"log_file_path": log, "log_level": "info"}));
    assert_eq!(lab.call("ADD", "c1", "a", &conf).exit_code, 0);
    assert_eq!(lab.call("ADD", "", "a", &conf).exit_code, 1);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("INFO ADD container=c1 ifname=eth0 ok"),
        "{text}"
    );
    assert!(
        lines[1].contains("ERROR ADD container= ifname=eth0 code=7"),
        "{text}"
    );
}

#[test]
fn an_unreachable_etcd_answers_try_again_later_without_hanging() {
    let lab = Lab::new();
    // Nothing listens on loopback port 1: every connection is refused.
    let conf = lab.conf("1.0.0", json!({"store": "etcd://127.0.0.1:1/spiderpool"}));
    let start = std::time::Instant::now();
    assert_error(&lab.call("ADD", "c1", "a", &conf), 11, "try again later");
    // DEL reports it too, so that the runtime retries and nothing leaks.
    assert_error(&lab.call("DEL", "c1", "a", &conf), 11, "try again later");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn an_etcd_that_accepts_but_never_answers_gives_try_again_later_in_bounded_time() {
    // A blackholed endpoint: connections are accepted and then nothing is ever said, so only
    // the store's own timeouts can end the call.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let lab = Lab::new();
    let store = format!("etcd://127.0.0.1:{port}/spiderpool");
    let conf = lab.conf("1.0.0", json!({"store": store, "command_timeout_ms": 3000}));
    let start = std::time::Instant::now();
    for command in ["ADD", "DEL"] {
        let reply = lab.call(command, "c1", "a", &conf);
        assert_error(&reply, 11, "try again later");
        assert!(reply.stdout.contains("within 3000 ms"), "{reply:?}");
    }
    // Each call ends at the bound (a store request alone may take 5 s), not after the
    // engine's many retries of a store that keeps timing out.
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
}
