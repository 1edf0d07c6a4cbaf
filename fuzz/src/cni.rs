//! `netconf` and `cni_args`: the CNI plugin's inputs, parsed and then run through the plugin
//! (`spiderpool_cni::plugin::run`, in-process) against a fresh local store in a temporary
//! directory that holds one pool.
//!
//! The plugin is only ever run on a netconf whose `ipam.store` was replaced by that directory
//! and whose `log_file_path` and `kubeconfig` were removed: fuzz input never names a file the
//! plugin writes.

use std::collections::BTreeMap;
use std::path::Path;

use backend_etcd::EtcdConfig;
use backend_memory::LocalStore;
use serde_json::{json, Value};
use spiderpool_cni::netconf::{CniEnv, NetConf};
use spiderpool_cni::plugin::run;
use spiderpool_core::annotations::PodAnnotations;
use spiderpool_core::model::{IPAllocationDetail, Object, SpiderIPPool};
use spiderpool_core::store::Store;
use spiderpool_testkit::check_invariants;
use spiderpool_testkit::fixtures::pool;

use crate::util::{block_on_ready, tempdir, text};

/// The `netconf` target: the input is the netconf on stdin.
pub fn netconf(data: &[u8]) {
    let conf = match NetConf::parse(data) {
        Ok(conf) => conf,
        Err(e) => {
            let reply = e.to_reply("1.0.0");
            assert_eq!(reply["code"], json!(e.code()));
            assert!(reply["msg"].is_string());
            return;
        }
    };
    let _ = (conf.store(), conf.is_kube(), conf.kubeconfig());
    let _ = (conf.kube_timeout(), conf.autopool_wait());
    let _ = EtcdConfig::from_url(conf.store());
    let _ = spiderpool_cni::store::is_missing_local(conf.store());
    if let Ok(annotations) = conf.pod_annotations() {
        let _ = PodAnnotations::parse(&annotations);
    }
    let detail = IPAllocationDetail {
        nic: "eth0".into(),
        ipv4: Some("10.6.0.10/24".into()),
        ipv4_gateway: Some("10.6.0.1".into()),
        ..Default::default()
    };
    let _ =
        spiderpool_cni::result::add_result(&conf.cni_version, &[detail], "eth0", conf.dns.as_ref());

    // The whole plugin on this netconf, its store redirected to a temporary directory.
    let Ok(Value::Object(mut value)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let dir = tempdir();
    let store_dir = dir.path().join("store");
    let ipam = value
        .entry("ipam")
        .or_insert_with(|| Value::Object(Default::default()));
    let Value::Object(ipam) = ipam else { return };
    for unsafe_field in ["log_file_path", "kubeconfig", "ipam_unix_socket_path"] {
        ipam.remove(unsafe_field);
    }
    ipam.insert("store".into(), json!(store_dir.to_str().unwrap()));
    let stdin = serde_json::to_vec(&value).unwrap();
    match NetConf::parse(&stdin) {
        Ok(c)
            if Path::new(c.store()) == store_dir.as_path()
                && c.ipam.log_file_path.is_none()
                && !c.is_kube() => {}
        _ => return,
    }
    let args = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1;K8S_POD_UID=uid-1";
    plugin_round(&store_dir, &stdin, &env_of(&[("CNI_ARGS", args)]));
}

/// The `cni_args` target. Input: lines `NAME=value` setting `CNI_COMMAND`, `CNI_CONTAINERID`,
/// `CNI_IFNAME`, `CNI_NETNS` or `CNI_ARGS` (the last one wins); any other line is appended to
/// `CNI_ARGS` (`;`-joined). Unset variables get sane defaults. The environment is parsed and
/// checked, and when it passes, ADD, CHECK and DEL run with it.
pub fn cni_args(data: &[u8]) {
    let Some(input) = text(data) else { return };
    let mut vars: BTreeMap<&str, String> = BTreeMap::new();
    let mut extra: Vec<&str> = Vec::new();
    for line in input.lines().take(16) {
        match line.split_once('=') {
            Some((k, v))
                if matches!(
                    k,
                    "CNI_COMMAND" | "CNI_CONTAINERID" | "CNI_IFNAME" | "CNI_NETNS" | "CNI_ARGS"
                ) =>
            {
                vars.insert(k, v.to_string());
            }
            _ => extra.push(line),
        }
    }
    if !extra.is_empty() {
        let args = vars.entry("CNI_ARGS").or_default();
        for e in extra {
            if !args.is_empty() {
                args.push(';');
            }
            args.push_str(e);
        }
    }
    let lookup = |k: &str| vars.get(k).cloned();
    let env = match CniEnv::from_lookup(lookup) {
        Ok(env) => env,
        Err(e) => {
            assert!(e.to_reply("1.0.0")["msg"].is_string());
            return;
        }
    };
    // Every KEY=VALUE pair is kept (the last of a key wins).
    if let Some(raw) = vars.get("CNI_ARGS") {
        for pair in raw.split(';').filter(|p| !p.is_empty()) {
            let (k, _) = pair.split_once('=').unwrap();
            assert!(env.args.contains_key(k), "{k:?} lost from {raw:?}");
        }
    }
    let mut full = env.clone();
    for (var, default) in [
        ("CNI_CONTAINERID", "ctr-1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_NETNS", "/var/run/netns/fuzz"),
    ] {
        let field = match var {
            "CNI_CONTAINERID" => &mut full.container_id,
            "CNI_IFNAME" => &mut full.ifname,
            _ => &mut full.netns,
        };
        if !vars.contains_key(var) {
            *field = default.to_string();
        }
    }
    if full
        .require(&["CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"])
        .is_err()
    {
        return;
    }
    // Names that passed the checks never reach outside the store directory.
    for v in [&full.container_id, &full.ifname] {
        assert!(!v.contains('/') && !v.contains('\0') && v != ".." && !v.is_empty());
    }
    let dir = tempdir();
    let store_dir = dir.path().join("store");
    let stdin = serde_json::to_vec(&json!({
        "cniVersion": "1.0.0", "name": "lab", "type": "spiderpool",
        "ipam": {"type": "spiderpool", "store": store_dir.to_str().unwrap(),
                 "default_ipv4_ippool": ["lab-pool"]}
    }))
    .unwrap();
    plugin_round(&store_dir, &stdin, &full);
}

fn env_of(vars: &[(&str, &str)]) -> CniEnv {
    let vars: BTreeMap<&str, &str> = vars.iter().copied().collect();
    let mut env = CniEnv::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
    env.container_id = "ctr-1".into();
    env.ifname = "eth0".into();
    env.netns = "/var/run/netns/fuzz".into();
    env
}

/// ADD, CHECK, ADD again, DEL, DEL again on a store holding `lab-pool` (and whatever the
/// netconf names does not exist). After each: the reply is well-formed, the store's
/// invariants hold; a DEL after a successful ADD succeeds; after a DEL nothing is held.
fn plugin_round(store_dir: &Path, stdin: &[u8], env: &CniEnv) {
    let store = LocalStore::open(store_dir).unwrap();
    let lab = pool(
        "lab-pool",
        "subnet: 10.250.0.0/24\nips: [10.250.0.10-10.250.0.30]\ngateway: 10.250.0.1\ndefault: true",
    );
    block_on_ready(store.create(Object::IpPool(lab))).unwrap();
    let mut added = None;
    for command in ["ADD", "CHECK", "ADD", "DEL", "DEL"] {
        let env = CniEnv {
            command: command.into(),
            ..env.clone()
        };
        let reply = run(&env, stdin, "node-1");
        assert!(reply.exit_code == 0 || reply.exit_code == 1);
        if !(reply.exit_code == 0 && reply.stdout.is_empty()) {
            let out: Value = serde_json::from_str(&reply.stdout).unwrap_or_else(|e| {
                panic!("{command}: stdout is not JSON ({e}): {:?}", reply.stdout)
            });
            if reply.exit_code == 1 {
                assert!(
                    out["code"].is_u64() && out["msg"].is_string(),
                    "{command}: {out}"
                );
            }
        }
        if command == "ADD" && reply.exit_code == 0 {
            // A repeated ADD gives the same result.
            if let Some(first) = &added {
                assert_eq!(first, &reply.stdout, "a repeated ADD changed the result");
            }
            added = Some(reply.stdout.clone());
        }
        if command == "DEL" && added.is_some() {
            // What an ADD accepted, a DEL must be able to undo.
            assert_eq!(
                reply.exit_code, 0,
                "DEL after a successful ADD failed: {}",
                reply.stdout
            );
        }
        // Read the files afresh: another process's view.
        let fresh = LocalStore::open(store_dir).unwrap();
        if let Err(errs) = block_on_ready(check_invariants(&fresh)) {
            panic!("after {command}: invariants broken: {errs:?}");
        }
        if command == "DEL" {
            for s in block_on_ready(fresh.list(SpiderIPPool::KIND)).unwrap() {
                if let Object::IpPool(p) = s.object {
                    assert_eq!(
                        p.allocations().unwrap().len(),
                        0,
                        "pool {} still holds addresses after DEL",
                        p.metadata.name
                    );
                }
            }
        }
    }
}
