//! The admission webhook's accept and deny decisions on AdmissionReviews.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use serde_json::{json, Value};
use spiderpool_core::model::{parse_documents, Object, SpiderIPPool};
use spiderpool_core::validate::{AdmissionConfig, Cluster};

fn review(operation: &str, object: Value, old: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
           "request": {"uid": "req-1", "operation": operation, "object": object, "oldObject": old}})
}

fn pool(spec: Value) -> Value {
    json!({"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool", "metadata": {"name": "p"}, "spec": spec})
}

#[test]
fn mutation_returns_spiderpools_defaults_as_a_json_patch() {
    let r = backend_kube::webhook::mutate(
        &review(
            "CREATE",
            pool(json!({"subnet": "10.6.0.0/24", "ips": ["10.6.0.3", "10.6.0.1-10.6.0.2"]})),
            Value::Null,
        ),
        &[],
        &AdmissionConfig::default(),
    );
    let resp = &r["response"];
    assert_eq!(resp["uid"], "req-1");
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["patchType"], "JSONPatch");
    let patch: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(resp["patch"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let spec = patch
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["path"] == "/spec")
        .unwrap();
    assert_eq!(spec["value"]["ipVersion"], 4);
    assert_eq!(spec["value"]["ips"], json!(["10.6.0.1-10.6.0.3"]));
    let meta = patch
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["path"] == "/metadata")
        .unwrap();
    assert_eq!(
        meta["value"]["finalizers"],
        json!(["spiderpool.spidernet.io"])
    );
    assert_eq!(
        meta["value"]["labels"]["ipam.spidernet.io/ippool-cidr"],
        "10-6-0-0-24"
    );
}

#[test]
fn validation_accepts_and_denies_like_spiderpool() {
    let cfg = AdmissionConfig::default();
    let ok = backend_kube::webhook::validate(
        &review(
            "CREATE",
            pool(json!({"ipVersion": 4, "subnet": "10.6.0.0/24", "ips": ["10.6.0.1"]})),
            Value::Null,
        ),
        &Cluster::default(),
        &cfg,
    );
    assert_eq!(ok["response"]["allowed"], true);
    let bad = backend_kube::webhook::validate(
        &review(
            "CREATE",
            pool(json!({"ipVersion": 4, "subnet": "10.6.0.1/24"})),
            Value::Null,
        ),
        &Cluster::default(),
        &cfg,
    );
    assert_eq!(bad["response"]["allowed"], false);
    assert_eq!(bad["response"]["status"]["code"], 422);
    assert!(bad["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("unformatted subnet 10.6.0.1/24, please change it to 10.6.0.0/24"));
    // An existing pool of that name: 409.
    let existing: Vec<SpiderIPPool> = match parse_documents(
        "x",
        &pool(json!({"ipVersion": 4, "subnet": "10.7.0.0/24"})).to_string(),
    )
    .unwrap()
    .remove(0)
    .object
    {
        Object::IpPool(p) => vec![p],
        _ => unreachable!(),
    };
    let dup = backend_kube::webhook::validate(
        &review(
            "CREATE",
            pool(json!({"ipVersion": 4, "subnet": "10.6.0.0/24"})),
            Value::Null,
        ),
        &Cluster {
            pools: &existing,
            subnets: &[],
        },
        &cfg,
    );
    assert_eq!(dup["response"]["status"]["code"], 409);
    // An update that drops an address in use: denied.
    let mut old =
        pool(json!({"ipVersion": 4, "subnet": "10.6.0.0/24", "ips": ["10.6.0.1-10.6.0.2"]}));
    old["status"] = json!({"allocatedIPs": "{\"10.6.0.2\":{\"pod\":\"ns/a\",\"podUid\":\"u\"}}"});
    let mut new = old.clone();
    new["spec"]["ips"] = json!(["10.6.0.1"]);
    let upd = backend_kube::webhook::validate(
        &review("UPDATE", new, old.clone()),
        &Cluster::default(),
        &cfg,
    );
    assert_eq!(upd["response"]["allowed"], false);
    assert!(upd["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("remove an IP address 10.6.0.2 that is being used by Pod ns/a"));
    // Deletion of a pool in use, with the deletion check on: 403.
    old["status"]["allocatedIPCount"] = json!(1);
    let strict = AdmissionConfig {
        enable_validating_resources_deleted_webhook: true,
        ..AdmissionConfig::default()
    };
    let del = backend_kube::webhook::validate(
        &review("DELETE", Value::Null, old),
        &Cluster::default(),
        &strict,
    );
    assert_eq!(del["response"]["status"]["code"], 403);
    // Garbage is a 400, never a panic.
    let garbage = backend_kube::webhook::validate(
        &json!({"request": {"uid": "x", "operation": "CREATE", "object": {"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool", "spec": {"ips": 5}}}}),
        &Cluster::default(),
        &cfg,
    );
    assert_eq!(garbage["response"]["allowed"], false);
    assert_eq!(garbage["response"]["status"]["code"], 400);
}
