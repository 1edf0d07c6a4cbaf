//! The deployment manifests of `backend-kube/deploy/`: well-formed, consistent with one another
//! and with what the code serves, least privilege.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use backend_kube::webhook_server::{endpoint, Endpoint};
use serde_json::Value;

const REGENERATE: &str =
    "cargo run -p spiderpool-cni --bin spiderpoolctl -- crds > backend-kube/deploy/crds.yaml";

fn deploy_dir() -> PathBuf {
    spiderpool_testkit::fixtures::package_dir().join("deploy")
}

/// The YAML documents of one file (split on `---` lines; empty documents skipped).
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut flush = |current: &mut String| {
        if current.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        }) {
            let v: Value = yaml_serde::from_str(current)
                .unwrap_or_else(|e| panic!("{}: a document does not parse: {e}", path.display()));
            docs.push(v);
        }
        current.clear();
    };
    for line in text.lines() {
        if line.trim_end() == "---" {
            flush(&mut current);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut current);
    docs
}

/// Every document of every `deploy/*.yaml`, with the file it comes from.
fn all_documents() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        for d in documents(&f) {
            out.push((name.clone(), d));
        }
    }
    out
}

fn find<'a>(docs: &'a [(String, Value)], file: &str, kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|(f, d)| f == file && d["kind"] == kind)
        .map(|(_, d)| d)
        .collect()
}

fn one<'a>(docs: &'a [(String, Value)], file: &str, kind: &str) -> &'a Value {
    let found = find(docs, file, kind);
    assert_eq!(found.len(), 1, "{file}: expected one {kind}");
    found[0]
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn the_checked_in_crds_are_the_generated_ones() {
    let path = deploy_dir().join("crds.yaml");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = backend_kube::crd::crds_yaml();
    if checked_in != generated {
        let line = checked_in
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "the lengths differ".to_string(),
                |i| format!("first difference at line {}", i + 1),
            );
        panic!(
            "{} is out of date with backend_kube::crd::crds() ({line}); regenerate it with\n    {REGENERATE}",
            path.display()
        );
    }
    // And it is what the API server gets: one CRD per kind.
    let docs = documents(&path);
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "spiderippools.spiderpool.spidernet.io",
            "spidersubnets.spiderpool.spidernet.io",
            "spiderreservedips.spiderpool.spidernet.io",
            "spiderendpoints.spiderpool.spidernet.io"
        ]
    );
}

#[test]
fn every_document_names_its_api_version_kind_and_name() {
    let docs = all_documents();
    let files: BTreeSet<&str> = docs.iter().map(|(f, _)| f.as_str()).collect();
    for expected in [
        "certs.yaml",
        "controller.yaml",
        "crds.yaml",
        "plugin-daemonset.yaml",
        "rbac.yaml",
        "webhook.yaml",
    ] {
        assert!(files.contains(expected), "deploy/{expected} is missing");
    }
    let cluster_scoped = [
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ];
    for (file, d) in &docs {
        for field in ["apiVersion", "kind"] {
            assert!(
                d[field].as_str().is_some_and(|s| !s.is_empty()),
                "{file}: a document without {field}: {d}"
            );
        }
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        assert!(!name.is_empty(), "{file}: a {} without a name", d["kind"]);
        let kind = d["kind"].as_str().unwrap();
        if cluster_scoped.contains(&kind) {
            assert!(
                d["metadata"]["namespace"].is_null(),
                "{file}: {kind} {name}"
            );
        } else {
            assert_eq!(
                d["metadata"]["namespace"], "kube-system",
                "{file}: {kind} {name}"
            );
        }
        if file != "crds.yaml" {
            assert!(
                name.starts_with("spiderpool-rs-"),
                "{file}: {kind} {name} is not named spiderpool-rs-*"
            );
        }
    }
}

#[test]
fn the_webhooks_call_the_controllers_service_on_paths_the_server_serves() {
    let docs = all_documents();
    let deployment = one(&docs, "controller.yaml", "Deployment");
    let service = one(&docs, "controller.yaml", "Service");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args = strs(&container["args"]);
    let port: u64 = args
        .iter()
        .find_map(|a| a.strip_prefix("--webhook-port="))
        .expect("--webhook-port")
        .parse()
        .unwrap();
    assert_eq!(container["ports"][0]["containerPort"], port);
    assert_eq!(container["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    let probe_path = container["readinessProbe"]["httpGet"]["path"]
        .as_str()
        .unwrap();
    assert_eq!(endpoint(probe_path), Some(Endpoint::Healthz));
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], port);
    // The Service selects the controller's pods and forwards to the webhook port.
    let selector = service["spec"]["selector"].as_object().unwrap();
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in selector {
        assert_eq!(&labels[k], v, "the Service selects label {k}");
    }
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(service_port["targetPort"], port);
    let service_name = service["metadata"]["name"].as_str().unwrap();

    let mut kinds_seen = BTreeSet::new();
    for (config, expected) in [
        ("MutatingWebhookConfiguration", Endpoint::Mutate),
        ("ValidatingWebhookConfiguration", Endpoint::Validate),
    ] {
        let c = one(&docs, "webhook.yaml", config);
        assert_eq!(
            c["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "kube-system/spiderpool-rs-webhook"
        );
        let hooks = c["webhooks"].as_array().unwrap();
        assert_eq!(hooks.len(), 3, "{config}: one webhook per cluster kind");
        for h in hooks {
            let svc = &h["clientConfig"]["service"];
            assert_eq!(svc["name"], service_name, "{config}: {}", h["name"]);
            assert_eq!(svc["namespace"], "kube-system");
            assert_eq!(svc["port"], service_port["port"]);
            let path = svc["path"].as_str().unwrap();
            assert_eq!(endpoint(path), Some(expected), "{config}: path {path}");
            assert_eq!(strs(&h["admissionReviewVersions"]), ["v1"]);
            assert_eq!(h["sideEffects"], "None");
            assert_eq!(h["failurePolicy"], "Fail");
            let rule = &h["rules"][0];
            assert_eq!(strs(&rule["apiGroups"]), ["spiderpool.spidernet.io"]);
            let ops = strs(&rule["operations"]);
            let wanted: &[&str] = match expected {
                Endpoint::Validate => &["CREATE", "UPDATE", "DELETE"],
                _ => &["CREATE", "UPDATE"],
            };
            assert_eq!(ops, wanted, "{config}: {}", h["name"]);
            for r in strs(&rule["resources"]) {
                kinds_seen.insert((config, r.to_string()));
            }
        }
    }
    for config in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        for r in ["spiderippools", "spidersubnets", "spiderreservedips"] {
            assert!(
                kinds_seen.contains(&(config, r.to_string())),
                "{config} misses {r}"
            );
        }
    }

    // The certificate: the Secret the controller mounts, for the Service's DNS name, and the
    // one the CA injection annotation names.
    let cert = one(&docs, "certs.yaml", "Certificate");
    assert_eq!(cert["metadata"]["name"], "spiderpool-rs-webhook");
    let dns = strs(&cert["spec"]["dnsNames"]);
    assert!(dns.contains(&format!("{service_name}.kube-system.svc").as_str()));
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    assert!(volumes
        .iter()
        .any(|v| v["secret"]["secretName"] == cert["spec"]["secretName"]));
    assert_eq!(
        cert["spec"]["issuerRef"]["name"],
        one(&docs, "certs.yaml", "Issuer")["metadata"]["name"]
    );
    let script = std::fs::read_to_string(deploy_dir().join("gen-certs.sh")).unwrap();
    assert!(script.contains(&format!(
        "SECRET=${{SECRET:-{}}}",
        cert["spec"]["secretName"].as_str().unwrap()
    )));
    assert!(script.contains(&format!("SERVICE=${{SERVICE:-{service_name}}}")));
}

/// The (kind, name) of the roles bound to `service_account`.
fn roles_of(docs: &[(String, Value)], service_account: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        for b in find(docs, "rbac.yaml", kind) {
            let bound = b["subjects"].as_array().unwrap().iter().any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == service_account
                    && s["namespace"] == "kube-system"
            });
            if bound {
                out.push((
                    b["roleRef"]["kind"].as_str().unwrap().to_string(),
                    b["roleRef"]["name"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

/// Every (apiGroup, resource, verb) granted to `service_account`.
fn grants(docs: &[(String, Value)], service_account: &str) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for (kind, name) in roles_of(docs, service_account) {
        let role = find(docs, "rbac.yaml", &kind)
            .into_iter()
            .find(|r| r["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{kind} {name} is bound but not defined"));
        for rule in role["rules"].as_array().unwrap() {
            for g in strs(&rule["apiGroups"]) {
                for r in strs(&rule["resources"]) {
                    for v in strs(&rule["verbs"]) {
                        out.insert((g.to_string(), r.to_string(), v.to_string()));
                    }
                }
            }
        }
    }
    out
}

fn has(g: &BTreeSet<(String, String, String)>, group: &str, resource: &str, verb: &str) -> bool {
    g.contains(&(group.to_string(), resource.to_string(), verb.to_string()))
}

#[test]
fn the_service_accounts_are_bound_with_least_privilege() {
    let docs = all_documents();
    for kind in ["ClusterRole", "Role"] {
        for role in find(&docs, "rbac.yaml", kind) {
            for rule in role["rules"].as_array().unwrap() {
                for field in ["apiGroups", "resources", "verbs"] {
                    assert!(
                        !strs(&rule[field]).contains(&"*"),
                        "{kind} {} grants * {field}",
                        role["metadata"]["name"]
                    );
                }
                assert!(rule.get("nonResourceURLs").is_none());
                for v in strs(&rule["verbs"]) {
                    assert!(
                        ![
                            "escalate",
                            "bind",
                            "impersonate",
                            "patch",
                            "deletecollection"
                        ]
                        .contains(&v),
                        "{kind} {} grants {v}",
                        role["metadata"]["name"]
                    );
                }
            }
        }
    }
    let accounts: Vec<&str> = find(&docs, "rbac.yaml", "ServiceAccount")
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap())
        .collect();

    let controller_sa = one(&docs, "controller.yaml", "Deployment")["spec"]["template"]["spec"]
        ["serviceAccountName"]
        .as_str()
        .unwrap();
    let agent_sa = one(&docs, "plugin-daemonset.yaml", "DaemonSet")["spec"]["template"]["spec"]
        ["serviceAccountName"]
        .as_str()
        .unwrap();
    assert_eq!(controller_sa, "spiderpool-rs-controller");
    assert_eq!(agent_sa, "spiderpool-rs-agent");
    let spider = [
        "spiderippools",
        "spidersubnets",
        "spiderreservedips",
        "spiderendpoints",
    ];
    for sa in [controller_sa, agent_sa] {
        assert!(accounts.contains(&sa), "ServiceAccount {sa} not defined");
        let g = grants(&docs, sa);
        assert!(!g.is_empty(), "ServiceAccount {sa} is bound to nothing");
        for r in spider {
            for v in ["get", "list", "watch", "create", "update", "delete"] {
                assert!(has(&g, "spiderpool.spidernet.io", r, v), "{sa}: {v} {r}");
            }
            for v in ["get", "update"] {
                let status = format!("{r}/status");
                assert!(
                    has(&g, "spiderpool.spidernet.io", &status, v),
                    "{sa}: {v} {status}"
                );
            }
        }
        // Secrets are never readable: the webhook's key comes from a mounted volume.
        assert!(
            !g.iter().any(|(_, r, _)| r == "secrets"),
            "{sa} reads secrets"
        );
    }

    let controller = grants(&docs, controller_sa);
    for (group, r) in [
        ("", "pods"),
        ("", "namespaces"),
        ("", "nodes"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("kubevirt.io", "virtualmachines"),
        ("kubevirt.io", "virtualmachineinstances"),
    ] {
        for v in ["get", "list", "watch"] {
            assert!(has(&controller, group, r, v), "controller: {v} {group}/{r}");
        }
        assert!(!has(&controller, group, r, "update"), "controller: {r}");
    }
    // Leader election: Leases through a Role in kube-system, not cluster-wide.
    for v in ["get", "create", "update"] {
        assert!(has(&controller, "coordination.k8s.io", "leases", v));
    }
    let lease_roles: Vec<_> = roles_of(&docs, controller_sa)
        .into_iter()
        .filter(|(kind, name)| {
            let role = find(&docs, "rbac.yaml", kind)
                .into_iter()
                .find(|r| r["metadata"]["name"] == name.as_str())
                .unwrap();
            role.to_string().contains("leases")
        })
        .collect();
    assert!(lease_roles.iter().all(|(kind, _)| kind == "Role"));

    let agent = grants(&docs, agent_sa);
    assert!(has(&agent, "", "pods", "get"));
    assert!(has(&agent, "apps", "statefulsets", "get"));
    assert!(has(&agent, "kubevirt.io", "virtualmachineinstances", "get"));
    assert!(!has(&agent, "", "pods", "list"), "the agent lists no pods");
    assert!(!agent.iter().any(|(g, _, _)| g == "coordination.k8s.io"));
}

#[test]
fn the_agent_installs_the_plugin_and_its_kubeconfig() {
    let docs = all_documents();
    let ds = one(&docs, "plugin-daemonset.yaml", "DaemonSet");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["tolerations"][0]["operator"], "Exists");
    let init = spec["initContainers"][0].to_string();
    assert!(init.contains("/usr/local/bin/spiderpool"));
    assert!(init.contains("/etc/cni/net.d/spiderpool-rs.kubeconfig"));
    let host_paths: Vec<&str> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str())
        .collect();
    assert!(host_paths.contains(&"/opt/cni/bin"));
    assert!(host_paths.contains(&"/etc/cni/net.d"));
}
