//! The generated CRDs: structural, Spiderpool's names and columns, and every example object
//! (the seed documents' included) valid against them.
#![allow(clippy::unwrap_used)]

use backend_kube::crd::{crds, crds_yaml};
use serde_json::Value;
use spiderpool_core::model::{parse_documents, Object};

/// Checks `v` against a structural schema: types, nullable, properties (unknown fields only
/// where preserved), items, additionalProperties. Returns the first violation's path.
fn check(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    if v.is_null() {
        return if schema.get("nullable") == Some(&Value::Bool(true)) {
            Ok(())
        } else {
            Err(format!("{path}: null not allowed"))
        };
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let ok = match ty {
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        _ => true,
    };
    if !ok {
        return Err(format!("{path}: expected {ty:?}, found {v}"));
    }
    if let (Some(props), Some(obj)) = (
        schema.get("properties").and_then(Value::as_object),
        v.as_object(),
    ) {
        let preserve =
            schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        for (k, val) in obj {
            match props.get(k) {
                Some(s) => check(s, val, &format!("{path}.{k}"))?,
                None if preserve => {}
                None => return Err(format!("{path}.{k}: unknown field would be pruned")),
            }
        }
    } else if let (Some(ap), Some(obj)) = (schema.get("additionalProperties"), v.as_object()) {
        for (k, val) in obj {
            check(ap, val, &format!("{path}.{k}"))?;
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, val) in arr.iter().enumerate() {
            check(items, val, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

/// No `$ref`, no type arrays, no `additionalProperties` next to `properties`.
fn assert_structural(s: &Value, path: &str) {
    if let Some(o) = s.as_object() {
        assert!(!o.contains_key("$ref"), "{path}: $ref");
        assert!(
            !o.get("type").is_some_and(Value::is_array),
            "{path}: type array"
        );
        assert!(
            !(o.contains_key("properties") && o.contains_key("additionalProperties")),
            "{path}: properties and additionalProperties"
        );
        for (k, v) in o {
            assert_structural(v, &format!("{path}.{k}"));
        }
    }
}

fn schema_of(kind: &str) -> Value {
    crds()
        .into_iter()
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .unwrap()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        .clone()
}

#[test]
fn the_crds_are_structural_and_named_like_spiderpool() {
    let all = crds();
    let names: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|c| {
            (
                c["metadata"]["name"].as_str().unwrap(),
                c["spec"]["names"]["shortNames"][0].as_str().unwrap(),
                c["spec"]["scope"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("spiderippools.spiderpool.spidernet.io", "sp", "Cluster"),
            ("spidersubnets.spiderpool.spidernet.io", "ss", "Cluster"),
            ("spiderreservedips.spiderpool.spidernet.io", "sr", "Cluster"),
            (
                "spiderendpoints.spiderpool.spidernet.io",
                "se",
                "Namespaced"
            ),
        ]
    );
    for c in &all {
        assert_structural(&c["spec"]["versions"][0]["schema"], "schema");
    }
    let sp = &all[0]["spec"]["versions"][0];
    assert!(sp["subresources"]["status"].is_object());
    let cols: Vec<&str> = sp["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        [
            "VERSION",
            "SUBNET",
            "ALLOCATED-IP-COUNT",
            "TOTAL-IP-COUNT",
            "DEFAULT",
            "DISABLE",
            "NodeName",
            "MultusName",
            "APP-NAMESPACE"
        ]
    );
    assert!(
        all[2]["spec"]["versions"][0].get("subresources").is_none(),
        "reserved IPs have no status"
    );
    assert_eq!(
        crds_yaml()
            .matches("kind: CustomResourceDefinition")
            .count(),
        4
    );
    // The spec's fields are there, with Spiderpool's JSON names.
    let spec = &schema_of("SpiderIPPool")["properties"]["spec"]["properties"];
    for f in [
        "ipVersion",
        "subnet",
        "ips",
        "excludeIPs",
        "gateway",
        "routes",
        "podAffinity",
        "namespaceAffinity",
        "namespaceName",
        "nodeAffinity",
        "nodeName",
        "multusName",
        "default",
        "disable",
    ] {
        assert!(spec.get(f).is_some(), "spec.{f} missing");
    }
}

#[test]
fn every_example_object_validates_against_its_crd() {
    let root = spiderpool_testkit::fixtures::package_dir().join("../examples");
    let mut stack = vec![root];
    let mut checked = 0;
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if p.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        for d in parse_documents("x", &std::fs::read_to_string(&p).unwrap()).unwrap() {
            if matches!(d.object, Object::Other(_)) {
                continue;
            }
            let schema = schema_of(d.object.kind());
            check(&schema, &d.object.to_value(), d.object.name())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            checked += 1;
        }
    }
    assert!(checked >= 12, "{checked}");
    // And a wrong type is caught.
    let bad: Value = serde_json::json!({"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool", "spec": {"subnet": "10.0.0.0/8", "ips": "10.0.0.1"}});
    assert!(check(&schema_of("SpiderIPPool"), &bad, "bad").is_err());
}
