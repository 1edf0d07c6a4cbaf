//! `spiderpoolctl` as a user runs it: the real binary, a temporary store.
#![allow(clippy::unwrap_used)]

use std::process::Command;

mod common;

use serde_json::Value;

struct Ctl {
    dir: tempfile::TempDir,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ctl {
    fn new() -> Self {
        Ctl {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let out = common::spiderpoolctl(&self.dir.path().join("store"), args, stdin);
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    fn apply(&self, yaml: &str) -> Out {
        self.run(&["apply", "-f", "-"], Some(yaml))
    }

    fn add(&self, container: &str, pod: &str) -> String {
        let conf = format!(
            r#"{{"cniVersion":"1.0.0","name":"lab","type":"bridge","ipam":{{"type":"spiderpool","store":"{}"}}}}"#,
            self.dir.path().join("store").display()
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spiderpool"));
        cmd.env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", container)
            .env("CNI_NETNS", "/var/run/netns/x")
            .env("CNI_IFNAME", "eth0")
            .env(
                "CNI_ARGS",
                format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_UID=u-{pod}"),
            );
        let out = common::spawn_fed(&mut cmd, &conf)
            .wait_with_output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

const OBJECTS: &str = r#"
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderSubnet
metadata: {name: lab}
spec: {subnet: 10.99.0.0/24, ips: [10.99.0.10-10.99.0.100], gateway: 10.99.0.1}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: lab-pool}
spec: {subnet: 10.99.0.0/24, ips: [10.99.0.10-10.99.0.20], default: true}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderReservedIP
metadata: {name: lab-reserved}
spec: {ips: [10.99.0.10-10.99.0.11]}
"#;

#[test]
fn apply_reports_created_unchanged_configured() {
    let ctl = Ctl::new();
    let out = ctl.apply(OBJECTS);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "spidersubnet.spiderpool.spidernet.io/lab created\n\
         spiderippool.spiderpool.spidernet.io/lab-pool created\n\
         spiderreservedip.spiderpool.spidernet.io/lab-reserved created\n"
    );
    let again = ctl.apply(OBJECTS);
    assert!(
        again.stdout.contains("lab-pool unchanged"),
        "{}",
        again.stdout
    );
    let changed = ctl.apply(&OBJECTS.replace("10.99.0.10-10.99.0.20]", "10.99.0.10-10.99.0.30]"));
    assert!(
        changed
            .stdout
            .contains("spiderippool.spiderpool.spidernet.io/lab-pool configured"),
        "{}",
        changed.stdout
    );
    let sp = ctl.run(&["get", "sp"], None);
    assert_eq!(
        sp.stdout,
        "NAME       VERSION   SUBNET         ALLOCATED-IP-COUNT   TOTAL-IP-COUNT   DEFAULT   DISABLE\n\
         lab-pool   4         10.99.0.0/24   0                    21               true      false\n"
    );
    let ss = ctl.run(&["get", "spidersubnets"], None);
    assert!(
        ss.stdout
            .contains("lab    4         10.99.0.0/24   21                   91"),
        "{}",
        ss.stdout
    );
}

#[test]
fn an_invalid_file_changes_nothing() {
    let ctl = Ctl::new();
    let bad = format!("{OBJECTS}---\napiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {{name: broken}}\nspec: {{subnet: 10.99.0.0/24, ips: [10.99.0.300]}}\n");
    let out = ctl.apply(&bad);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(
            "SpiderIPPool \"broken\" is invalid: spec.ips[0]: Invalid value: \"10.99.0.300\""
        ),
        "{}",
        out.stderr
    );
    let sp = ctl.run(&["get", "sp"], None);
    assert_eq!(
        sp.stdout, "No resources found\n",
        "nothing of the file was stored"
    );
    let yaml_error = ctl.apply("apiVersion: [");
    assert_eq!(yaml_error.code, 1);
    assert!(
        yaml_error.stderr.contains("-: document 1:"),
        "{}",
        yaml_error.stderr
    );
}

#[test]
fn get_outputs_json_lists_and_single_objects_like_kubectl() {
    let ctl = Ctl::new();
    ctl.apply(OBJECTS);
    let list: Value =
        serde_json::from_str(&ctl.run(&["get", "sp", "-o", "json"], None).stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["items"][0]["metadata"]["name"], "lab-pool");
    let one: Value = serde_json::from_str(
        &ctl.run(&["get", "sp", "lab-pool", "-o", "json"], None)
            .stdout,
    )
    .unwrap();
    assert_eq!(one["kind"], "SpiderIPPool");
    assert_eq!(one["status"]["totalIPCount"], 11);
    let yaml = ctl.run(&["get", "sr", "-o", "yaml"], None).stdout;
    assert!(
        yaml.contains("kind: List") && yaml.contains("lab-reserved"),
        "{yaml}"
    );
    let missing = ctl.run(&["get", "sp", "nope"], None);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains("Error from server (NotFound): spiderippools \"nope\" not found"),
        "{}",
        missing.stderr
    );
    let wrong_kind = ctl.run(&["get", "widgets"], None);
    assert_eq!(wrong_kind.code, 1);
    assert!(wrong_kind
        .stderr
        .contains("doesn't have a resource type \"widgets\""));
    let wide = ctl.run(&["get", "sp", "-o", "wide"], None).stdout;
    assert!(wide.starts_with("NAME       VERSION   SUBNET         ALLOCATED-IP-COUNT   TOTAL-IP-COUNT   DEFAULT   DISABLE   NodeName   MultusName   APP-NAMESPACE"), "{wide}");
}

#[test]
fn allocations_show_in_get_and_describe_and_guard_deletion() {
    let ctl = Ctl::new();
    ctl.apply(OBJECTS);
    for i in 0..3 {
        ctl.add(&format!("c{i}"), &format!("pod-{i}"));
    }
    let sp = ctl.run(&["get", "sp"], None).stdout;
    assert!(
        sp.contains("lab-pool   4         10.99.0.0/24   3                    11"),
        "{sp}"
    );
    let se = ctl.run(&["get", "se", "-A"], None).stdout;
    assert!(
        se.contains("default     pod-0   eth0        lab-pool   10.99.0.12/24"),
        "{se}"
    );
    let d = ctl.run(&["describe", "sp", "lab-pool"], None).stdout;
    assert!(
        d.contains("10.99.0.12   default/pod-0   u-pod-0   eth0"),
        "{d}"
    );
    let refused = ctl.run(&["delete", "sp", "lab-pool"], None);
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("has 3 allocated IPs; release them first or use --force"),
        "{}",
        refused.stderr
    );
    let forced = ctl.run(&["delete", "sp", "lab-pool", "--force"], None);
    assert_eq!(
        forced.stdout,
        "spiderippool.spiderpool.spidernet.io \"lab-pool\" deleted\n"
    );
    assert_eq!(
        ctl.run(&["get", "se", "-A"], None).stdout,
        "No resources found\n",
        "endpoints no longer point into it"
    );
    let by_file = ctl.run(&["delete", "-f", "-"], Some("apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderReservedIP\nmetadata: {name: lab-reserved}\n"));
    assert_eq!(
        by_file.stdout,
        "spiderreservedip.spiderpool.spidernet.io \"lab-reserved\" deleted\n"
    );
}

#[test]
fn every_command_has_help() {
    let ctl = Ctl::new();
    for cmd in [
        vec!["--help"],
        vec!["apply", "--help"],
        vec!["get", "--help"],
        vec!["delete", "--help"],
        vec!["describe", "--help"],
    ] {
        let out = ctl.run(&cmd, None);
        assert_eq!(out.code, 0, "{cmd:?}");
        assert!(out.stdout.contains("Usage:"), "{cmd:?}: {}", out.stdout);
    }
    assert_eq!(
        ctl.run(&["frobnicate"], None).code,
        2,
        "usage errors exit 2"
    );
}
