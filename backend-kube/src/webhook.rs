//! The admission webhook's decisions: an `admission.k8s.io/v1` AdmissionReview in, the
//! review's response out, with the core's defaulting ([`mutate`]) and validation
//! ([`validate`]). [`crate::webhook_server`] serves them over TLS.

use base64::Engine as _;
use serde_json::{json, Value};
use spiderpool_core::model::{object_from_value, Object};
use spiderpool_core::validate::{
    mutate_ippool, mutate_reservedip, mutate_subnet, validate_ippool_create,
    validate_ippool_delete, validate_ippool_update, validate_reservedip_create,
    validate_reservedip_update, validate_subnet_create, validate_subnet_delete,
    validate_subnet_update, AdmissionConfig, Cluster,
};
use spiderpool_core::Error;

fn request_field<'a>(review: &'a Value, field: &str) -> Option<&'a Value> {
    review
        .get("request")
        .and_then(|r| r.get(field))
        .filter(|v| !v.is_null())
}

fn response(
    review: &Value,
    allowed: bool,
    status: Option<(u16, &str, String)>,
    patch: Option<Value>,
) -> Value {
    let uid = request_field(review, "uid").cloned().unwrap_or(json!(""));
    let mut resp = json!({"uid": uid, "allowed": allowed});
    if let Some((code, reason, message)) = status {
        resp["status"] = json!({"code": code, "reason": reason, "message": message});
    }
    if let Some(patch) = patch {
        resp["patchType"] = json!("JSONPatch");
        resp["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})
}

fn deny(review: &Value, e: &Error) -> Value {
    let (code, reason) = match e {
        Error::AlreadyExists { .. } => (409, "AlreadyExists"),
        Error::Forbidden { .. } => (403, "Forbidden"),
        Error::Invalid { .. } => (422, "Invalid"),
        _ => (400, "BadRequest"),
    };
    response(review, false, Some((code, reason, e.to_string())), None)
}

fn object(review: &Value, field: &str) -> Result<Option<Object>, Error> {
    request_field(review, field)
        .map(|v| object_from_value(&format!("admission request {field}"), v.clone()))
        .transpose()
}

/// The mutating webhook: Spiderpool's defaults as a JSON patch (whole `metadata` and `spec`).
pub fn mutate(
    review: &Value,
    subnets: &[spiderpool_core::model::SpiderSubnet],
    cfg: &AdmissionConfig,
) -> Value {
    let mut obj = match object(review, "object") {
        Ok(Some(o)) => o,
        Ok(None) => return response(review, true, None, None),
        Err(e) => return deny(review, &e),
    };
    match &mut obj {
        Object::IpPool(p) => mutate_ippool(p, subnets, cfg),
        Object::Subnet(s) => mutate_subnet(s),
        Object::ReservedIp(r) => mutate_reservedip(r),
        _ => return response(review, true, None, None),
    }
    let v = obj.to_value();
    let mut ops = vec![json!({"op": "add", "path": "/metadata", "value": v["metadata"]})];
    if let Some(spec) = v.get("spec") {
        ops.push(json!({"op": "add", "path": "/spec", "value": spec}));
    }
    response(review, true, None, Some(Value::Array(ops)))
}

/// The validating webhook: the request's operation checked against the objects that exist.
pub fn validate(review: &Value, cluster: &Cluster<'_>, cfg: &AdmissionConfig) -> Value {
    let operation = request_field(review, "operation")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let new = object(review, "object");
    let old = object(review, "oldObject");
    let (new, old) = match (new, old) {
        (Ok(n), Ok(o)) => (n, o),
        (Err(e), _) | (_, Err(e)) => return deny(review, &e),
    };
    let verdict = match (operation, &new, &old) {
        ("CREATE", Some(Object::IpPool(p)), _) => validate_ippool_create(p, cluster, cfg),
        ("CREATE", Some(Object::Subnet(s)), _) => validate_subnet_create(s, cluster, cfg),
        ("CREATE", Some(Object::ReservedIp(r)), _) => validate_reservedip_create(r, cfg),
        ("UPDATE", Some(Object::IpPool(n)), Some(Object::IpPool(o))) => {
            validate_ippool_update(o, n, cluster, cfg)
        }
        ("UPDATE", Some(Object::Subnet(n)), Some(Object::Subnet(o))) => {
            validate_subnet_update(o, n, cfg)
        }
        ("UPDATE", Some(Object::ReservedIp(n)), Some(Object::ReservedIp(o))) => {
            validate_reservedip_update(o, n, cfg)
        }
        ("DELETE", _, Some(Object::IpPool(o))) => validate_ippool_delete(o, cfg),
        ("DELETE", _, Some(Object::Subnet(o))) => validate_subnet_delete(o, cfg),
        _ => Ok(()),
    };
    match verdict {
        Ok(()) => response(review, true, None, None),
        Err(e) => deny(review, &e),
    }
}
