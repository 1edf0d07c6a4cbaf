//! The CNI plugin binary: bad netconf on stdin and bad `CNI_*` environment. Each case runs the
//! real `spiderpool` binary against a store holding [`crate::SEED`] and checks the CNI error
//! object (`code`, `msg`) and that the store is untouched. Where the error comes from the
//! netconf parser, the kind is also checked in-process through `NetConf::parse`.

use serde_json::Value;
use spiderpool_cni::netconf::{CniEnv, NetConf, MAX_NETCONF_BYTES};

use crate::{case, check, cni_kind, each, no_panic, run, seeded_store, snapshot, Case};

/// Replaced by the store directory in netconfs.
const STORE: &str = "@STORE@";

/// A good netconf with `ipam` fields replaced or added (`extra` is JSON object members).
fn conf(extra: &str) -> Vec<u8> {
    let mut v: Value = serde_json::json!({
        "cniVersion": "1.0.0", "name": "lab", "type": "bridge",
        "ipam": {"type": "spiderpool", "store": STORE, "default_ipv4_ippool": ["base-pool"]}
    });
    let extra: Value = serde_json::from_str(&format!("{{{extra}}}")).unwrap();
    for (k, x) in extra.as_object().unwrap() {
        v["ipam"][k] = x.clone();
    }
    v.to_string().into_bytes()
}

/// A good netconf with the given pod annotations in `args.cni.annotations` (a JSON object).
fn with_annotations(annotations: &str) -> Vec<u8> {
    format!(
        r#"{{"cniVersion": "1.0.0", "name": "lab", "type": "bridge", "ipam": {{"type": "spiderpool", "store": "{STORE}"}}, "args": {{"cni": {{"annotations": {annotations}}}}}}}"#
    )
    .into_bytes()
}

/// One plugin invocation: environment changes over a good ADD, and stdin.
#[derive(Debug, Clone)]
pub struct Call {
    /// `(variable, value)`; `None` removes the variable.
    env: Vec<(&'static str, Option<String>)>,
    stdin: Vec<u8>,
    /// The CNI error code expected.
    code: u64,
}

fn call(env: &[(&'static str, Option<&str>)], stdin: Vec<u8>, code: u64) -> Call {
    Call {
        env: env
            .iter()
            .map(|(k, v)| (*k, v.map(str::to_string)))
            .collect(),
        stdin,
        code,
    }
}

fn netconf(stdin: Vec<u8>, code: u64) -> Call {
    call(&[], stdin, code)
}

fn env(var: &'static str, value: Option<&str>) -> Call {
    call(&[(var, value)], conf(""), 7)
}

fn cases() -> Vec<Case<Call>> {
    let long_id = "c".repeat(257);
    let long_ns = "n".repeat(254);
    let oversize = {
        let mut c = conf("");
        c.pop();
        c.extend(format!(r#", "pad": "{}"}}"#, "x".repeat(MAX_NETCONF_BYTES)).into_bytes());
        c
    };
    vec![
        // --- netconf ---
        case("cni-netconf-not-json", netconf(b"{not json".to_vec(), 4), "InvalidNetconf", "invalid network configuration: key must be a string at line 1 column 2"),
        case("cni-netconf-empty", netconf(Vec::new(), 4), "InvalidNetconf", "invalid network configuration: EOF while parsing a value at line 1 column 0"),
        case("cni-netconf-a-list", netconf(b"[]".to_vec(), 4), "InvalidNetconf", "invalid network configuration: expected a JSON object, found '[' at the start"),
        case("cni-netconf-not-utf8", netconf(b"{\"cniVersion\": \"1.0.0\xff\"}".to_vec(), 4), "InvalidNetconf", "invalid network configuration: cniVersion: invalid unicode code point"),
        case("cni-netconf-oversize", netconf(oversize, 4), "InvalidNetconf", "1048577 bytes is more than the 1048576 accepted"),
        case("cni-netconf-duplicate-field", netconf(br#"{"cniVersion":"1.0.0","cniVersion":"1.0.0"}"#.to_vec(), 4), "InvalidNetconf", "duplicate field `cniVersion`"),
        case("cni-version-missing", netconf(br#"{"name":"lab","ipam":{}}"#.to_vec(), 1), "IncompatibleVersion", "unsupported CNI version \"\", supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"),
        case("cni-version-9", netconf(br#"{"cniVersion":"9.9.9"}"#.to_vec(), 1), "IncompatibleVersion", "unsupported CNI version \"9.9.9\""),
        case("cni-version-a-number", netconf(br#"{"cniVersion":1.0}"#.to_vec(), 4), "InvalidNetconf", "cniVersion: invalid type: floating point `1.0`, expected a string"),
        case("cni-ipam-a-string", netconf(br#"{"cniVersion":"1.0.0","ipam":"spiderpool"}"#.to_vec(), 4), "InvalidNetconf", "ipam: invalid type: string \"spiderpool\", expected struct IpamConf"),
        case("cni-ipam-pools-a-string", netconf(conf(r#""default_ipv6_ippool": "v6-pool""#), 4), "InvalidNetconf", "ipam.default_ipv6_ippool: invalid type: string \"v6-pool\", expected a sequence"),
        case("cni-ipam-lock-timeout-negative", netconf(conf(r#""lock_timeout_ms": -5"#), 4), "InvalidNetconf", "ipam.lock_timeout_ms: invalid value: integer `-5`, expected u64"),
        case("cni-ipam-clean-gateway-string", netconf(conf(r#""clean_gateway": "yes""#), 4), "InvalidNetconf", "ipam.clean_gateway: invalid type: string \"yes\", expected a boolean"),
        case("cni-ipam-log-size-string", netconf(conf(r#""log_file_max_size": "100M""#), 4), "InvalidNetconf", "ipam.log_file_max_size: invalid type: string \"100M\", expected i64"),
        case("cni-ipam-store-empty", netconf(conf(r#""store": """#), 4), "InvalidNetconf", "ipam.store: \"\" is not an absolute directory, etcd://host:port[,host:port…][/prefix] or kube"),
        case("cni-ipam-store-relative", netconf(conf(r#""store": "var/lib/spiderpool""#), 4), "InvalidNetconf", "ipam.store: \"var/lib/spiderpool\" is not an absolute directory"),
        case("cni-ipam-store-bad-etcd-url", netconf(conf(r#""store": "etcd://""#), 4), "InvalidNetconf", "ipam.store: \"etcd://\" is not an absolute directory, etcd://host:port[,host:port…][/prefix] or kube"),
        case("cni-ipam-store-a-file", netconf(conf(r#""store": "@STORE@/store.json""#), 102), "Store::NotADirectory", "store.json: the store location is not a directory"),
        case("cni-ipam-kubeconfig-missing", netconf(conf(r#""store": "kube", "kubeconfig": "/nonexistent/kubeconfig""#), 4), "Kubeconfig", "kubeconfig /nonexistent/kubeconfig:"),
        case("cni-ipam-unknown-pool", netconf(conf(r#""default_ipv4_ippool": ["nope"]"#), 101), "Ipam::UnknownPool", "wrong input, IPPool \"nope\" named by netconf default_ipv4_ippool/default_ipv6_ippool for NIC eth0 does not exist"),
        case("cni-ipam-no-pool", netconf(conf(r#""default_ipv4_ippool": []"#), 100), "Ipam::NoPoolSelected", "no IPPool available, no pool selection rules of any type are specified for pod default/web-1 NIC eth0"),
        case("cni-args-annotations-a-list", netconf(with_annotations("[]"), 4), "InvalidNetconf", "args.cni.annotations must be an object of strings"),
        case("cni-args-annotation-a-number", netconf(with_annotations(r#"{"ipam.spidernet.io/ippool": 5}"#), 4), "InvalidNetconf", "args.cni.annotations.ipam.spidernet.io/ippool must be a string"),
        case("cni-args-annotation-bad-json", netconf(with_annotations(r#"{"ipam.spidernet.io/ippool": "{ipv4: nope}"}"#), 101), "Ipam::Annotation", "wrong input, invalid format of Pod annotation 'ipam.spidernet.io/ippool'"),
        case("cni-args-annotation-other-nic", netconf(with_annotations(r#"{"ipam.spidernet.io/ippools": "[{\"interface\":\"net1\",\"ipv4\":[\"base-pool\"]}]"}"#), 101), "Ipam::Annotation", "interface eth0 must be specified"),
        case("cni-args-annotation-ip-number", netconf(with_annotations(r#"{"ipam.spidernet.io/ippool": "{\"ipv4\":[\"base-pool\"]}", "ipam.spidernet.io/ippool-ip-number": "99999999999999999999"}"#), 101), "Ipam::Annotation", "value out of range"),
        // --- environment ---
        case("cni-env-command-missing", env("CNI_COMMAND", None), "InvalidEnv", "invalid environment variable CNI_COMMAND: unknown command \"\" (ADD, DEL, CHECK, VERSION, STATUS, GC)"),
        case("cni-env-command-lowercase", env("CNI_COMMAND", Some("add")), "InvalidEnv", "unknown command \"add\""),
        case("cni-env-containerid-missing", env("CNI_CONTAINERID", None), "InvalidEnv", "invalid environment variable CNI_CONTAINERID: must be set"),
        case("cni-env-containerid-dotdot-slash", env("CNI_CONTAINERID", Some("../etc")), "InvalidEnv", "CNI_CONTAINERID: must not contain '/', NUL or spaces"),
        case("cni-env-containerid-dotdot", env("CNI_CONTAINERID", Some("..")), "InvalidEnv", "CNI_CONTAINERID: must not contain '/', NUL or spaces"),
        case("cni-env-containerid-space", env("CNI_CONTAINERID", Some("a b")), "InvalidEnv", "CNI_CONTAINERID: must not contain '/', NUL or spaces"),
        case("cni-env-containerid-257", env("CNI_CONTAINERID", Some(&long_id)), "InvalidEnv", "CNI_CONTAINERID: longer than 256 characters"),
        case("cni-env-ifname-16", env("CNI_IFNAME", Some("eth0123456789abc")), "InvalidEnv", "CNI_IFNAME: longer than 15 characters"),
        case("cni-env-ifname-slash", env("CNI_IFNAME", Some("eth/0")), "InvalidEnv", "CNI_IFNAME: must not contain '/', NUL or spaces"),
        case("cni-env-ifname-missing-del", call(&[("CNI_COMMAND", Some("DEL")), ("CNI_IFNAME", None)], conf(""), 7), "InvalidEnv", "CNI_IFNAME: must be set"),
        case("cni-env-netns-missing", env("CNI_NETNS", None), "InvalidEnv", "CNI_NETNS: must be set"),
        case("cni-env-netns-missing-check", call(&[("CNI_COMMAND", Some("CHECK")), ("CNI_NETNS", None)], conf(""), 7), "InvalidEnv", "CNI_NETNS: must be set"),
        case("cni-env-args-no-equals", env("CNI_ARGS", Some("IgnoreUnknown")), "InvalidEnv", "CNI_ARGS: \"IgnoreUnknown\" is not KEY=VALUE"),
        case("cni-env-args-pod-path", env("CNI_ARGS", Some("K8S_POD_NAMESPACE=default;K8S_POD_NAME=../x")), "InvalidEnv", "CNI_ARGS: K8S_POD_NAME \"../x\" is not a valid name"),
        case("cni-env-args-namespace-254", env("CNI_ARGS", Some(&format!("K8S_POD_NAMESPACE={long_ns};K8S_POD_NAME=a"))), "InvalidEnv", "K8S_POD_NAMESPACE \"nnnn"),
    ]
}

/// Cases the environment of a process cannot carry (a NUL byte): run in-process.
fn in_process_cases() -> Vec<Case<CniEnv>> {
    let good = CniEnv {
        command: "ADD".into(),
        container_id: "c1".into(),
        netns: "/var/run/netns/x".into(),
        ifname: "eth0".into(),
        args: Default::default(),
    };
    vec![
        case(
            "cni-env-containerid-nul",
            CniEnv {
                container_id: "c1\0../x".into(),
                ..good.clone()
            },
            "InvalidEnv",
            "CNI_CONTAINERID: must not contain '/', NUL or spaces",
        ),
        case(
            "cni-env-ifname-nul",
            CniEnv {
                ifname: "eth\0".into(),
                ..good
            },
            "InvalidEnv",
            "CNI_IFNAME: must not contain '/', NUL or spaces",
        ),
    ]
}

/// The ids of both tables.
pub fn ids() -> Vec<&'static str> {
    cases()
        .iter()
        .map(|c| c.id)
        .chain(in_process_cases().iter().map(|c| c.id))
        .collect()
}

/// The CNI code of each kind, as `Error::code` decides it (docs/errors.md lists the same).
fn code_of(kind: &str) -> u64 {
    match kind {
        "IncompatibleVersion" => 1,
        "InvalidNetconf" | "Kubeconfig" => 4,
        "InvalidEnv" => 7,
        "Ipam::NoIpAvailable" | "Ipam::NoPoolSelected" => 100,
        "Ipam::Annotation" | "Ipam::UnknownPool" => 101,
        k if k.starts_with("Store::") || k == "Ipam::Storage" => 102,
        other => panic!("no code listed for {other}"),
    }
}

#[test]
fn bad_netconf_and_environment_give_cni_errors_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    seeded_store(&store);
    // The plugin's working directory: a relative store must not be created there.
    let cwd = tempfile::tempdir().unwrap();
    each(cases(), |c| {
        let stdin = match String::from_utf8(c.input.stdin.clone()) {
            Ok(text) => text
                .replace(STORE, &store.display().to_string())
                .into_bytes(),
            Err(_) => c.input.stdin.clone(),
        };
        let before = snapshot(dir.path());
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spiderpool"));
        cmd.env_clear().current_dir(cwd.path()).envs([
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/var/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            (
                "CNI_ARGS",
                "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1;K8S_POD_UID=u1",
            ),
            ("NODE_NAME", "node-1"),
        ]);
        for (k, v) in &c.input.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let out = run(c.id, &mut cmd, &stdin);
        assert_eq!(out.code, 1, "{}: {out:?}", c.id);
        let reply: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{}: not a CNI error object ({e}): {out:?}", c.id));
        let msg = reply["msg"].as_str().unwrap_or_default();
        assert_eq!(reply["code"], c.input.code, "{}: {reply}", c.id);
        assert_eq!(
            code_of(c.kind),
            c.input.code,
            "{}: kind and code disagree",
            c.id
        );
        check(c, c.kind, msg);
        if let Err(e) = NetConf::parse(&stdin) {
            assert_eq!(cni_kind(&e), c.kind, "{}: {e}", c.id);
        }
        assert_eq!(snapshot(dir.path()), before, "{}: the store changed", c.id);
        assert_eq!(
            std::fs::read_dir(cwd.path()).unwrap().count(),
            0,
            "{}: the plugin wrote in its working directory",
            c.id
        );
    });
}

#[test]
fn environment_values_no_process_can_carry_are_refused_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    seeded_store(&store);
    let stdin = String::from_utf8(conf(""))
        .unwrap()
        .replace(STORE, &store.display().to_string());
    each(in_process_cases(), |c| {
        let before = snapshot(dir.path());
        let err = no_panic(c.id, || {
            c.input
                .require(&["CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"])
                .expect_err(c.id)
        });
        check(c, &cni_kind(&err), &err.to_string());
        let reply = no_panic(c.id, || {
            spiderpool_cni::plugin::run(&c.input, stdin.as_bytes(), "node-1")
        });
        assert_eq!(reply.exit_code, 1, "{}: {reply:?}", c.id);
        let v: Value = serde_json::from_str(&reply.stdout).unwrap();
        assert_eq!(v["code"], 7, "{}: {v}", c.id);
        check(c, &cni_kind(&err), v["msg"].as_str().unwrap_or_default());
        assert_eq!(snapshot(dir.path()), before, "{}: the store changed", c.id);
    });
}
