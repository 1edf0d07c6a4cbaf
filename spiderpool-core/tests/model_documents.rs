//! Objects read and written as YAML and JSON: every field, unknown fields kept, lists, errors.
#![allow(clippy::unwrap_used)]

use spiderpool_core::model::{parse_documents, to_yaml, Object};
use spiderpool_core::Error;

const FULL: &str = r#"
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: full
  uid: 1b5c2f7e-0000-4000-8000-000000000001
  resourceVersion: "4711"
  generation: 3
  creationTimestamp: "2026-01-02T03:04:05Z"
  deletionTimestamp: "2026-01-03T00:00:00Z"
  deletionGracePeriodSeconds: 30
  labels: {ipam.spidernet.io/ippool-cidr: 10-6-0-0-16}
  annotations: {note: kept}
  ownerReferences:
  - {apiVersion: spiderpool.spidernet.io/v2beta1, kind: SpiderSubnet, name: s, uid: u-s, controller: true, blockOwnerDeletion: true}
  finalizers: [spiderpool.spidernet.io]
  managedFields: [{manager: kubectl}]
spec:
  ipVersion: 4
  subnet: 10.6.0.0/16
  ips: [10.6.0.1-10.6.0.10]
  excludeIPs: [10.6.0.5]
  gateway: 10.6.0.254
  routes: [{dst: 10.7.0.0/16, gw: 10.6.0.253}]
  podAffinity: {matchLabels: {app: web}}
  namespaceAffinity: {matchExpressions: [{key: team, operator: In, values: [a, b]}]}
  namespaceName: [default]
  nodeAffinity: {matchLabels: {zone: z1}}
  nodeName: [worker-1]
  multusName: [kube-system/macvlan]
  default: true
  disable: false
  futureField: {x: 1}
status:
  allocatedIPs: '{"10.6.0.2":{"pod":"default/web-1","podUid":"p1"},"10.6.0.3":{"pod":"default/web-2","podUid":"p2","interface":"net1"}}'
  totalIPCount: 9
  allocatedIPCount: 2
"#;

fn only(text: &str) -> Object {
    let mut docs = parse_documents("t", text).unwrap();
    assert_eq!(docs.len(), 1);
    docs.remove(0).object
}

#[test]
fn every_pool_field_round_trips_through_yaml_and_json() {
    let obj = only(FULL);
    let Object::IpPool(p) = &obj else { panic!() };
    assert_eq!(p.metadata.resource_version.as_deref(), Some("4711"));
    assert_eq!(p.metadata.generation, Some(3));
    assert!(p.metadata.is_terminating());
    assert_eq!(p.metadata.controller().unwrap().name, "s");
    assert_eq!(p.spec.namespace_name, vec!["default"]);
    assert_eq!(p.spec.multus_name, vec!["kube-system/macvlan"]);
    assert_eq!(p.status.total_ip_count, Some(9));
    let records = p.allocations().unwrap();
    assert_eq!(records["10.6.0.3"].interface.as_deref(), Some("net1"));
    assert_eq!(records["10.6.0.2"].interface, None);
    assert_eq!(p.metadata.extra["managedFields"][0]["manager"], "kubectl");
    assert_eq!(p.spec.extra["futureField"]["x"], 1);

    let yaml = to_yaml(std::slice::from_ref(&obj));
    assert_eq!(only(&yaml), obj, "YAML round trip");
    let json = obj.to_value().to_string();
    assert_eq!(only(&json), obj, "JSON round trip");
    assert!(
        json.contains("\"futureField\":{\"x\":1}"),
        "unknown fields are written back"
    );
    assert!(json.contains("\"excludeIPs\":[\"10.6.0.5\"]"));
    assert!(json.contains("\"creationTimestamp\":\"2026-01-02T03:04:05Z\""));
}

#[test]
fn unknown_fields_are_reported_once_each() {
    let docs = parse_documents("t", FULL).unwrap();
    assert_eq!(
        docs[0].warnings,
        vec![
            "SpiderIPPool \"full\": unknown field \"metadata.managedFields\" (kept, not used)",
            "SpiderIPPool \"full\": unknown field \"spec.futureField\" (kept, not used)",
        ]
    );
}

#[test]
fn endpoints_subnets_and_reserved_ips_round_trip() {
    let text = r#"
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderEndpoint
metadata: {name: web-0, namespace: default}
status:
  current:
    uid: p-uid
    node: worker-1
    ips:
    - interface: eth0
      ipv4: 172.31.199.193/20
      ipv4Pool: pool-v4
      ipv6: fd00::5/64
      ipv6Pool: pool-v6
      vlan: 0
      ipv4Gateway: 172.31.192.1
      cleanGateway: false
      routes: [{dst: 10.0.0.0/8, gw: 172.31.192.1}]
      mac: "aa:bb:cc:dd:ee:ff"
  ownerControllerType: StatefulSet
  ownerControllerName: web
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderSubnet
metadata: {name: s}
spec: {ipVersion: 6, subnet: "fd00::/64", ips: ["fd00::1-fd00::ff"], routes: []}
status: {controlledIPPools: '{"p":{"ips":["fd00::1-fd00::9"],"application":"apps_v1_Deployment_default_web"}}', totalIPCount: 255, allocatedIPCount: 9}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderReservedIP
metadata: {name: r}
spec: {ipVersion: 4, ips: [10.6.168.131-10.6.168.132]}
"#;
    let docs = parse_documents("t", text).unwrap();
    let objects: Vec<Object> = docs.into_iter().map(|d| d.object).collect();
    let again: Vec<Object> = parse_documents("t", &to_yaml(&objects))
        .unwrap()
        .into_iter()
        .map(|d| d.object)
        .collect();
    assert_eq!(again, objects);
    let Object::Endpoint(e) = &objects[0] else {
        panic!()
    };
    assert_eq!(
        e.status.current.ips[0].mac.as_deref(),
        Some("aa:bb:cc:dd:ee:ff")
    );
    let Object::Subnet(s) = &objects[1] else {
        panic!()
    };
    assert_eq!(
        s.spec.routes,
        Some(vec![]),
        "an explicit empty route list stays explicit"
    );
    let pools = s.controlled_pools().unwrap();
    assert_eq!(
        pools["p"].application.as_deref(),
        Some("apps_v1_Deployment_default_web")
    );
}

#[test]
fn lists_and_json_streams_expand_into_objects() {
    let list = r#"{"apiVersion":"v1","kind":"List","items":[
        {"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderIPPool","metadata":{"name":"a"},"spec":{"subnet":"10.0.0.0/8"}},
        {"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderIPPool","metadata":{"name":"b"},"spec":{"subnet":"10.0.0.0/8"}}]}
        {"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderReservedIP","metadata":{"name":"r"},"spec":{"ips":["10.0.0.1"]}}"#;
    let docs = parse_documents("t", list).unwrap();
    let names: Vec<(&str, usize)> = docs.iter().map(|d| (d.object.name(), d.index)).collect();
    assert_eq!(names, vec![("a", 1), ("b", 1), ("r", 2)]);
    // Empty YAML documents are skipped.
    assert!(parse_documents("t", "---\n# nothing\n---\n")
        .unwrap()
        .is_empty());
}

#[test]
fn bad_documents_name_the_document_and_the_field() {
    let err = |text: &str| parse_documents("pools.yaml", text).unwrap_err().to_string();
    assert_eq!(
        err("apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {name: p}\nspec: {subnet: 10.0.0.0/8, ips: 5}\n"),
        "pools.yaml: document 1: SpiderIPPool \"p\": spec.ips: invalid type: integer `5`, expected a sequence"
    );
    assert_eq!(
        err("---\nkind: SpiderIPPool\nmetadata: {name: p}\n"),
        "pools.yaml: document 1: missing apiVersion"
    );
    assert_eq!(
        err("apiVersion: v1\nkind: ConfigMap\n---\napiVersion: spiderpool.spidernet.io/v9\nkind: SpiderIPPool\n"),
        "pools.yaml: document 2: unsupported object spiderpool.spidernet.io/v9 SpiderIPPool"
    );
    assert!(
        err("a: [1, 2\n").starts_with("pools.yaml: document 1: "),
        "{}",
        err("a: [1, 2\n")
    );
    assert!(err("- 1\n- 2\n").contains("expected an object with apiVersion and kind, found a list"));
    assert!(matches!(
        parse_documents("t", "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {name: p, creationTimestamp: yesterday}\n"),
        Err(Error::Decode { .. })
    ));
}

#[test]
fn corrupt_status_is_an_error_never_an_empty_pool() {
    let mut obj = only(FULL);
    let Object::IpPool(p) = &mut obj else {
        panic!()
    };
    p.status.allocated_ips = Some("{\"10.6.0.2\":".into());
    let err = p.allocations().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("SpiderIPPool \"full\": status.allocatedIPs is corrupt:"),
        "{err}"
    );
    p.status.allocated_ips = Some(r#"{"not-an-ip":{"pod":"a/b","podUid":"u"}}"#.into());
    assert!(p.allocated_set().is_err());
}

#[test]
fn legacy_v1_subnet_drops_vlan_and_default_with_warnings() {
    let docs = parse_documents(
        "t",
        "apiVersion: spiderpool.spidernet.io/v1\nkind: SpiderSubnet\nmetadata: {name: s}\nspec: {ipVersion: 4, subnet: 10.0.0.0/8, vlan: 100, default: true}\n",
    )
    .unwrap();
    assert_eq!(
        docs[0].warnings,
        vec![
            "SpiderSubnet \"s\": converted from spiderpool.spidernet.io/v1",
            "SpiderSubnet \"s\": spec.vlan (100) dropped: v2beta1 has no such field",
            "SpiderSubnet \"s\": spec.default (true) dropped: v2beta1 has no such field",
        ]
    );
    let Object::Subnet(s) = &docs[0].object else {
        panic!()
    };
    assert!(s.spec.extra.is_empty());
    assert_eq!(s.api_version, "spiderpool.spidernet.io/v2beta1");
}
