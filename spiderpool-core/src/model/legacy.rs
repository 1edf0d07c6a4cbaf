//! Conversion of the legacy `spiderpool.spidernet.io/v1` objects to v2beta1.
//!
//! v1 differs from v2beta1 in a few fields only:
//! - pools and subnets had `spec.vlan`, subnets `spec.default`: v2beta1 has neither, so they
//!   are dropped with a warning;
//! - pool allocation records had an `interface` (kept: it is our extension too), and in older
//!   releases a separate `namespace` next to the pod name and a `uid` instead of `podUid`;
//! - the oldest releases stored `status.allocatedIPs` as an object instead of a JSON string,
//!   with records that carried no pod uid, and had `status.default` and
//!   `status.autoDesiredIPCount`.

use serde_json::{Map, Value};

use super::API_VERSION;

/// Rewrites a v1 object in place into its v2beta1 form; returns a message on bad input.
pub(crate) fn convert_v1(
    kind: &str,
    value: &mut Value,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut warn = |text: String| warnings.push(format!("{kind} \"{name}\": {text}"));
    warn("converted from spiderpool.spidernet.io/v1".to_string());
    if let Some(obj) = value.as_object_mut() {
        obj.insert("apiVersion".into(), Value::String(API_VERSION.into()));
    }
    let dropped_spec: &[&str] = match kind {
        "SpiderIPPool" => &["vlan"],
        "SpiderSubnet" => &["vlan", "default"],
        _ => &[],
    };
    if let Some(spec) = value.get_mut("spec").and_then(Value::as_object_mut) {
        for field in dropped_spec {
            if let Some(v) = spec.remove(*field) {
                warn(format!(
                    "spec.{field} ({v}) dropped: v2beta1 has no such field"
                ));
            }
        }
    }
    if kind == "SpiderIPPool" {
        if let Some(status) = value.get_mut("status").and_then(Value::as_object_mut) {
            for field in ["default", "autoDesiredIPCount"] {
                if status.remove(field).is_some() {
                    warn(format!("status.{field} dropped: v2beta1 has no such field"));
                }
            }
            if let Some(records) = status.get("allocatedIPs").cloned() {
                let converted = convert_records(records)?;
                status.insert("allocatedIPs".into(), converted);
            }
        }
    }
    Ok(())
}

/// Converts `status.allocatedIPs` of any v1 generation to v2beta1's JSON string.
fn convert_records(records: Value) -> Result<Value, String> {
    let map = match records {
        Value::Null => return Ok(Value::Null),
        Value::String(s) if s.is_empty() || s == "null" => return Ok(Value::Null),
        Value::String(s) => serde_json::from_str::<Map<String, Value>>(&s)
            .map_err(|e| format!("status.allocatedIPs is not a JSON map: {e}"))?,
        Value::Object(m) => m,
        other => return Err(format!("status.allocatedIPs has unexpected value {other}")),
    };
    let mut out = Map::new();
    for (ip, record) in map {
        let Value::Object(mut rec) = record else {
            return Err(format!("status.allocatedIPs[{ip}] is not an object"));
        };
        let text = |rec: &mut Map<String, Value>, k: &str| match rec.remove(k) {
            Some(Value::String(s)) => s,
            _ => String::new(),
        };
        let namespace = text(&mut rec, "namespace");
        let pod = text(&mut rec, "pod");
        let uid = match text(&mut rec, "podUid") {
            u if u.is_empty() => text(&mut rec, "uid"),
            u => u,
        };
        let interface = text(&mut rec, "interface");
        let pod = if namespace.is_empty() || pod.contains('/') {
            pod
        } else {
            format!("{namespace}/{pod}")
        };
        let mut new = Map::new();
        new.insert("pod".into(), Value::String(pod));
        new.insert("podUid".into(), Value::String(uid));
        if !interface.is_empty() {
            new.insert("interface".into(), Value::String(interface));
        }
        out.insert(ip, Value::Object(new));
    }
    serde_json::to_string(&out)
        .map(Value::String)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_object_records_become_a_json_string() {
        let records = serde_json::json!({
            "10.0.0.2": {"containerID": "c1", "interface": "eth0", "node": "n1",
                         "namespace": "default", "pod": "web-1",
                         "ownerControllerType": "Deployment", "ownerControllerName": "web"}
        });
        let out = convert_records(records).unwrap();
        assert_eq!(
            out.as_str().unwrap(),
            r#"{"10.0.0.2":{"interface":"eth0","pod":"default/web-1","podUid":""}}"#
        );
    }

    #[test]
    fn namespaced_records_with_uid_are_renamed() {
        let records = Value::String(
            r#"{"10.0.0.3":{"interface":"net1","namespace":"ns","pod":"p","uid":"u-1"}}"#.into(),
        );
        let out = convert_records(records).unwrap();
        assert_eq!(
            out.as_str().unwrap(),
            r#"{"10.0.0.3":{"interface":"net1","pod":"ns/p","podUid":"u-1"}}"#
        );
        assert!(convert_records(Value::String("{not json".into())).is_err());
    }
}
