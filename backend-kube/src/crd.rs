//! The four CustomResourceDefinitions, generated from the core's types.
//!
//! The JSON schema of each Rust type (schemars) is turned into a Kubernetes structural schema:
//! references inlined, `null` alternatives turned into `nullable`, fields we keep without
//! interpreting (`extra` maps) into `x-kubernetes-preserve-unknown-fields`, `metadata` left to
//! the API server. Names, scopes, short names and printer columns are Spiderpool's.

use serde_json::{json, Map, Value};
use spiderpool_core::model::{SpiderEndpoint, SpiderIPPool, SpiderReservedIP, SpiderSubnet};

struct Kind {
    kind: &'static str,
    plural: &'static str,
    short: &'static str,
    namespaced: bool,
    status: bool,
    columns: Value,
    schema: Value,
}

fn column(name: &str, path: &str, ty: &str, description: &str, priority: u32) -> Value {
    let mut c = json!({"name": name, "jsonPath": path, "type": ty, "description": description});
    if priority > 0 {
        c["priority"] = json!(priority);
    }
    c
}

fn kinds() -> Vec<Kind> {
    let count = |name: &str, path: &str, d: &str| column(name, path, "integer", d, 0);
    vec![
        Kind {
            kind: SpiderIPPool::KIND,
            plural: "spiderippools",
            short: "sp",
            namespaced: false,
            status: true,
            columns: json!([
                column("VERSION", ".spec.ipVersion", "string", "ipVersion", 0),
                column("SUBNET", ".spec.subnet", "string", "subnet", 0),
                count(
                    "ALLOCATED-IP-COUNT",
                    ".status.allocatedIPCount",
                    "allocatedIPCount"
                ),
                count("TOTAL-IP-COUNT", ".status.totalIPCount", "totalIPCount"),
                column("DEFAULT", ".spec.default", "boolean", "default", 0),
                column("DISABLE", ".spec.disable", "boolean", "disable", 10),
                column("NodeName", ".spec.nodeName", "string", "nodeName", 10),
                column("MultusName", ".spec.multusName", "string", "multusName", 10),
                column(
                    "APP-NAMESPACE",
                    ".spec.podAffinity.matchLabels['ipam\\.spidernet\\.io/app\\-namespace']",
                    "string",
                    "AppNamespace",
                    10
                ),
            ]),
            schema: schema::<SpiderIPPool>(),
        },
        Kind {
            kind: SpiderSubnet::KIND,
            plural: "spidersubnets",
            short: "ss",
            namespaced: false,
            status: true,
            columns: json!([
                column("VERSION", ".spec.ipVersion", "string", "ipVersion", 0),
                column("SUBNET", ".spec.subnet", "string", "subnet", 0),
                count(
                    "ALLOCATED-IP-COUNT",
                    ".status.allocatedIPCount",
                    "allocatedIPCount"
                ),
                count("TOTAL-IP-COUNT", ".status.totalIPCount", "totalIPCount"),
            ]),
            schema: schema::<SpiderSubnet>(),
        },
        Kind {
            kind: SpiderReservedIP::KIND,
            plural: "spiderreservedips",
            short: "sr",
            namespaced: false,
            status: false,
            columns: json!([column(
                "VERSION",
                ".spec.ipVersion",
                "string",
                "ipVersion",
                0
            )]),
            schema: schema::<SpiderReservedIP>(),
        },
        Kind {
            kind: SpiderEndpoint::KIND,
            plural: "spiderendpoints",
            short: "se",
            namespaced: true,
            status: true,
            columns: json!([
                column(
                    "INTERFACE",
                    ".status.current.ips[0].interface",
                    "string",
                    "interface",
                    0
                ),
                column(
                    "IPV4POOL",
                    ".status.current.ips[0].ipv4Pool",
                    "string",
                    "ipv4Pool",
                    0
                ),
                column("IPV4", ".status.current.ips[0].ipv4", "string", "ipv4", 0),
                column(
                    "IPV6POOL",
                    ".status.current.ips[0].ipv6Pool",
                    "string",
                    "ipv6Pool",
                    0
                ),
                column("IPV6", ".status.current.ips[0].ipv6", "string", "ipv6", 0),
                column("NODE", ".status.current.node", "string", "node", 0),
            ]),
            schema: schema::<SpiderEndpoint>(),
        },
    ]
}

/// The structural schema of `T`.
fn schema<T: schemars::JsonSchema>() -> Value {
    let root = serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null);
    let defs = root.get("$defs").cloned().unwrap_or(Value::Null);
    let mut s = structural(&root, &defs);
    if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("metadata".into(), json!({"type": "object"}));
        props.insert("apiVersion".into(), json!({"type": "string"}));
        props.insert("kind".into(), json!({"type": "string"}));
    }
    if let Some(o) = s.as_object_mut() {
        o.remove("required");
    }
    s
}

fn structural(node: &Value, defs: &Value) -> Value {
    let Some(obj) = node.as_object() else {
        return node.clone();
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        return structural(defs.get(name).unwrap_or(&Value::Null), defs);
    }
    // `anyOf: [X, null]` (an optional struct) is X, nullable.
    if let Some(any) = obj.get("anyOf").and_then(Value::as_array) {
        let non_null: Vec<&Value> = any
            .iter()
            .filter(|v| v.get("type") != Some(&json!("null")))
            .collect();
        if non_null.len() == 1 {
            let mut inner = structural(non_null[0], defs);
            inner["nullable"] = json!(true);
            return inner;
        }
    }
    let mut out = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "$schema" | "$defs" | "title" | "default" | "examples" => {}
            "type" => match v {
                Value::Array(types) => {
                    let real: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                    if let Some(t) = real.first() {
                        out.insert("type".into(), (*t).clone());
                    }
                    if real.len() < types.len() {
                        out.insert("nullable".into(), json!(true));
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "format" => {
                if matches!(v.as_str(), Some("int64" | "int32")) {
                    out.insert("format".into(), v.clone());
                }
            }
            "properties" => {
                let props: Map<String, Value> = v
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(pk, pv)| (pk.clone(), structural(pv, defs)))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert("properties".into(), Value::Object(props));
            }
            "items" => {
                out.insert("items".into(), structural(v, defs));
            }
            "additionalProperties" => {
                if obj.contains_key("properties") {
                    // Fields we keep without knowing them.
                    out.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
                } else if v.is_object() {
                    out.insert("additionalProperties".into(), structural(v, defs));
                } else if *v == json!(true) {
                    out.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
                }
            }
            "minimum" | "maximum" => {
                // schemars bounds unsigned integers at 0; Kubernetes takes the same keyword.
                out.insert(k.clone(), v.clone());
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    // An object with no declared fields keeps whatever it gets (e.g. an `extra` map alone).
    if out.get("type") == Some(&json!("object"))
        && !out.contains_key("properties")
        && !out.contains_key("additionalProperties")
    {
        out.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
    }
    Value::Object(out)
}

/// The four CRDs as `apiextensions.k8s.io/v1` objects.
pub fn crds() -> Vec<Value> {
    kinds()
        .into_iter()
        .map(|k| {
            let mut version = json!({
                "name": "v2beta1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": k.schema},
                "additionalPrinterColumns": k.columns,
            });
            if k.status {
                version["subresources"] = json!({"status": {}});
            }
            json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": format!("{}.spiderpool.spidernet.io", k.plural)},
                "spec": {
                    "group": "spiderpool.spidernet.io",
                    "names": {
                        "kind": k.kind,
                        "listKind": format!("{}List", k.kind),
                        "plural": k.plural,
                        "singular": k.kind.to_ascii_lowercase(),
                        "shortNames": [k.short],
                        "categories": ["spiderpool"],
                    },
                    "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
                    "versions": [version],
                },
            })
        })
        .collect()
}

/// The CRDs as one multi-document YAML stream (what `spiderpoolctl crds` prints).
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|c| yaml_serde::to_string(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}
