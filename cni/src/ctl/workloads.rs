//! `spiderpoolctl` on the emulated objects: pods, workloads, namespaces, nodes.

use serde_json::{json, Value};
use spiderpool_core::model::{Object, OtherObject};
use spiderpool_core::store::{Key, Store, Write};
use spiderpool_core::table::render;

use super::Output;
use crate::emulation::{self, Settings, BUILTIN_WORKLOADS, KINDS_INDEX};
use crate::Error;

/// The kind an emulated resource name means (`po`, `deploy`, `sts`, …, or any applied
/// third-party kind by its name or lower-case plural).
pub async fn other_kind<S: Store>(store: &S, name: &str) -> Result<Option<String>, Error> {
    let lower = name.to_ascii_lowercase();
    let known = match lower.as_str() {
        "po" | "pod" | "pods" => Some("Pod"),
        "deploy" | "deployment" | "deployments" => Some("Deployment"),
        "rs" | "replicaset" | "replicasets" => Some("ReplicaSet"),
        "sts" | "statefulset" | "statefulsets" => Some("StatefulSet"),
        "ds" | "daemonset" | "daemonsets" => Some("DaemonSet"),
        "job" | "jobs" => Some("Job"),
        "cj" | "cronjob" | "cronjobs" => Some("CronJob"),
        "ns" | "namespace" | "namespaces" => Some("Namespace"),
        "no" | "node" | "nodes" => Some("Node"),
        "cm" | "configmap" | "configmaps" => Some("ConfigMap"),
        _ => None,
    };
    if let Some(k) = known {
        return Ok(Some(k.to_string()));
    }
    for s in store.list(KINDS_INDEX).await? {
        let Object::Other(o) = s.object else { continue };
        let kind = o.name.to_ascii_lowercase();
        if lower == kind || lower == format!("{kind}s") {
            return Ok(Some(o.name));
        }
    }
    Ok(None)
}

fn text<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn namespaced(kind: &str) -> bool {
    !matches!(kind, "Namespace" | "Node")
}

/// `get` of an emulated kind.
pub async fn get_other<S: Store>(
    store: &S,
    kind: &str,
    name: Option<&str>,
    namespace: &str,
    all_namespaces: bool,
    output: Output,
) -> Result<String, Error> {
    let mut items: Vec<OtherObject> = store
        .list(kind)
        .await?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::Other(o) => Some(o),
            _ => None,
        })
        .filter(|o| {
            !namespaced(kind) || all_namespaces || o.namespace.as_deref() == Some(namespace)
        })
        .collect();
    if let Some(n) = name {
        items.retain(|o| o.name == n);
        if items.is_empty() {
            return Err(Error::Usage(format!(
                "Error from server (NotFound): {}s \"{n}\" not found",
                kind.to_ascii_lowercase()
            )));
        }
    }
    match output {
        Output::Json | Output::Yaml => {
            let value = match (name, items.as_slice()) {
                (Some(_), [one]) => one.value.clone(),
                _ => {
                    json!({"apiVersion": "v1", "kind": "List", "items": items.iter().map(|o| o.value.clone()).collect::<Vec<_>>()})
                }
            };
            Ok(match output {
                Output::Json => serde_json::to_string_pretty(&value).unwrap_or_default() + "\n",
                _ => yaml_serde::to_string(&value).unwrap_or_default(),
            })
        }
        Output::Table | Output::Wide => {
            if items.is_empty() {
                return Ok(if namespaced(kind) && !all_namespaces {
                    format!("No resources found in {namespace} namespace.\n")
                } else {
                    "No resources found\n".into()
                });
            }
            let wide = output == Output::Wide;
            let (mut header, rows): (Vec<&str>, Vec<Vec<String>>) = if kind == "Pod" {
                let mut h = vec!["NAME", "READY", "STATUS", "IP", "NODE"];
                if wide {
                    h.extend(["IPS", "MESSAGE"]);
                }
                let rows = items
                    .iter()
                    .map(|p| {
                        let phase = text(&p.value, "/status/phase");
                        let mut r = vec![
                            p.name.clone(),
                            if phase == "Running" { "1/1" } else { "0/1" }.to_string(),
                            if phase.is_empty() {
                                "Pending".into()
                            } else {
                                phase.to_string()
                            },
                            match text(&p.value, "/status/podIP") {
                                "" => "<none>".to_string(),
                                ip => ip.to_string(),
                            },
                            text(&p.value, "/spec/nodeName").to_string(),
                        ];
                        if wide {
                            let ips: Vec<&str> = p
                                .value
                                .pointer("/status/podIPs")
                                .and_then(Value::as_array)
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|i| i.get("ip").and_then(Value::as_str))
                                        .collect()
                                })
                                .unwrap_or_default();
                            r.push(ips.join(","));
                            r.push(text(&p.value, "/status/message").to_string());
                        }
                        r
                    })
                    .collect();
                (h, rows)
            } else if BUILTIN_WORKLOADS.iter().any(|(_, k)| *k == kind)
                || items.iter().any(emulation::is_workload)
            {
                let pods: Vec<OtherObject> = store
                    .list("Pod")
                    .await?
                    .into_iter()
                    .filter_map(|s| match s.object {
                        Object::Other(o) => Some(o),
                        _ => None,
                    })
                    .collect();
                let rows = items
                    .iter()
                    .map(|w| {
                        let uid = text(&w.value, "/metadata/uid");
                        let mine: Vec<&OtherObject> = pods
                            .iter()
                            .filter(|p| text(&p.value, "/metadata/ownerReferences/0/uid") == uid)
                            .collect();
                        let ready = mine
                            .iter()
                            .filter(|p| text(&p.value, "/status/phase") == "Running")
                            .count();
                        vec![w.name.clone(), format!("{ready}/{}", mine.len())]
                    })
                    .collect();
                (vec!["NAME", "READY"], rows)
            } else {
                (
                    vec!["NAME"],
                    items.iter().map(|o| vec![o.name.clone()]).collect(),
                )
            };
            if all_namespaces && namespaced(kind) {
                header.insert(0, "NAMESPACE");
                let rows: Vec<Vec<String>> = items
                    .iter()
                    .zip(rows)
                    .map(|(o, mut r)| {
                        r.insert(0, o.namespace.clone().unwrap_or_default());
                        r
                    })
                    .collect();
                return Ok(render(&header, &rows));
            }
            Ok(render(&header, &rows))
        }
    }
}

/// `scale KIND/NAME --replicas N`.
pub async fn scale<S: Store>(
    store: &S,
    kind: &str,
    name: &str,
    namespace: &str,
    replicas: u64,
) -> Result<String, Error> {
    let key = Key::namespaced(kind, namespace, name);
    for _ in 0..8 {
        let Some(s) = store.get(&key).await? else {
            return Err(Error::Usage(format!(
                "Error from server (NotFound): {}s \"{name}\" not found",
                kind.to_ascii_lowercase()
            )));
        };
        let Object::Other(mut o) = s.object else {
            break;
        };
        if o.value.pointer("/spec/replicas").is_none()
            && !matches!(kind, "Deployment" | "ReplicaSet" | "StatefulSet")
        {
            return Err(Error::Usage(format!(
                "{kind} {name} has no spec.replicas to scale"
            )));
        }
        o.value["spec"]["replicas"] = json!(replicas);
        let resource = super::apply::other_resource(&o);
        match store
            .commit(vec![Write::Update {
                object: Object::Other(o),
                expected: s.revision,
            }])
            .await
        {
            Ok(()) => return Ok(format!("{resource}/{name} scaled\n")),
            Err(e) if spiderpool_core::ipam::is_retryable(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Usage(format!(
        "{kind} {name} kept changing; try again"
    )))
}

/// `delete KIND NAME` of an emulated object. A pod's addresses are released as for a pod that
/// is gone (its controller, if any, creates a replacement on the next reconcile); a workload's
/// pods and auto-pools follow it on the next reconcile.
pub async fn delete_other<S: Store>(
    store: &S,
    kind: &str,
    name: &str,
    namespace: &str,
    settings: &Settings,
) -> Result<String, Error> {
    let key = if namespaced(kind) {
        Key::namespaced(kind, namespace, name)
    } else {
        Key::cluster(kind, name)
    };
    let Some(s) = store.get(&key).await? else {
        return Err(Error::Usage(format!(
            "Error from server (NotFound): {}s \"{name}\" not found",
            kind.to_ascii_lowercase()
        )));
    };
    let Object::Other(o) = &s.object else {
        return Err(Error::Usage(format!(
            "{kind} {name} is not an emulated object"
        )));
    };
    if kind == "Pod" {
        let owner = stateful_owner(store, o).await?;
        emulation::delete_pod(store, o, &s.revision, owner, settings).await?;
    } else {
        store.delete(&key, &s.revision).await?;
    }
    Ok(format!(
        "{} \"{name}\" deleted\n",
        super::apply::other_resource(o)
    ))
}

/// For a StatefulSet pod, its owner as it is now (so that a deleted pod still wanted keeps its
/// address for its replacement).
async fn stateful_owner<S: Store>(
    store: &S,
    pod: &OtherObject,
) -> Result<Option<spiderpool_core::request::Owner>, Error> {
    let owner_kind = text(&pod.value, "/metadata/ownerReferences/0/kind");
    if owner_kind != "StatefulSet" {
        return Ok(None);
    }
    let ns = pod.namespace.clone().unwrap_or_default();
    let name = text(&pod.value, "/metadata/ownerReferences/0/name");
    let Some(s) = store
        .get(&Key::namespaced("StatefulSet", &ns, name))
        .await?
    else {
        return Ok(None);
    };
    let Object::Other(sts) = s.object else {
        return Ok(None);
    };
    Ok(Some(spiderpool_core::request::Owner {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        name: name.into(),
        uid: text(&sts.value, "/metadata/uid").into(),
        exists: true,
        replicas: Some(
            sts.value
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1),
        ),
        ordinals_start: sts
            .value
            .pointer("/spec/ordinals/start")
            .and_then(Value::as_i64),
    }))
}
