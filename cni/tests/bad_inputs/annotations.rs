//! Pod and namespace annotations (`ipam.spidernet.io/*`) through the core's parser, and the
//! auto-pool planner's reading of a workload's annotations against real subnets.

use std::collections::BTreeMap;

use spiderpool_core::annotations::{NamespaceAnnotations, PodAnnotations};
use spiderpool_core::autopool::{plan_auto_pools, Application, AutoPoolConfig};
use spiderpool_core::model::{parse_documents, Object, SpiderSubnet};
use spiderpool_core::store::Revision;
use spiderpool_core::validate::mutate_subnet;

use crate::{case, check, core_kind, each, no_panic, Case};

const IPPOOL: &str = "ipam.spidernet.io/ippool";
const IPPOOLS: &str = "ipam.spidernet.io/ippools";
const SUBNET: &str = "ipam.spidernet.io/subnet";
const SUBNETS: &str = "ipam.spidernet.io/subnets";
const IP_NUMBER: &str = "ipam.spidernet.io/ippool-ip-number";
const RECLAIM: &str = "ipam.spidernet.io/ippool-reclaim";
const ROUTES: &str = "ipam.spidernet.io/routes";
const NS_V4: &str = "ipam.spidernet.io/default-ipv4-ippool";
const NS_V6: &str = "ipam.spidernet.io/default-ipv6-ippool";

/// One annotation: whose it is, its key and its value.
#[derive(Debug, Clone)]
pub struct Anno {
    namespace: bool,
    key: &'static str,
    value: String,
}

fn pod(key: &'static str, value: &str) -> Anno {
    Anno {
        namespace: false,
        key,
        value: value.into(),
    }
}

fn ns(key: &'static str, value: &str) -> Anno {
    Anno {
        namespace: true,
        key,
        value: value.into(),
    }
}

/// The annotation table: every case is an `Annotation` error naming the key and the value.
fn cases() -> Vec<Case<Anno>> {
    const A: &str = "Annotation";
    vec![
        case("anno-ippool-not-json", pod(IPPOOL, "{ipv4: nope}"), A, "key must be a string at line 1 column 2"),
        case("anno-ippool-a-list", pod(IPPOOL, "[\"a\"]"), A, "expected a JSON object, found [\"a\"]"),
        case("anno-ippool-ipv4-string", pod(IPPOOL, "{\"ipv4\":\"pool-a\"}"), A, "\"ipv4\": expected a list of strings, found \"pool-a\""),
        case("anno-ippool-ipv6-numbers", pod(IPPOOL, "{\"ipv6\":[1]}"), A, "\"ipv6\": expected a list of strings, found 1"),
        case("anno-ippool-empty-string", pod(IPPOOL, ""), A, "EOF while parsing a value"),
        case("anno-ippools-an-object", pod(IPPOOLS, "{\"interface\":\"eth0\"}"), A, "expected a JSON list, found {\"interface\":\"eth0\"}"),
        case("anno-ippools-empty-list", pod(IPPOOLS, "[]"), A, "value requires at least one item"),
        case("anno-ippools-null", pod(IPPOOLS, "null"), A, "value requires at least one item"),
        case(
            "anno-ippools-half-named",
            pod(IPPOOLS, "[{\"interface\":\"eth0\",\"ipv4\":[\"a\"]},{\"ipv4\":[\"b\"]}]"),
            A,
            "NIC should be either all specified or all unspecified",
        ),
        case(
            "anno-ippools-duplicate-nic",
            pod(IPPOOLS, "[{\"interface\":\"eth0\",\"ipv4\":[\"a\"]},{\"interface\":\"eth0\",\"ipv4\":[\"b\"]}]"),
            A,
            "duplicate interface eth0",
        ),
        case(
            "anno-ippools-cleangateway-string",
            pod(IPPOOLS, "[{\"interface\":\"eth0\",\"cleangateway\":\"yes\"}]"),
            A,
            "\"cleangateway\" must be a boolean, found \"yes\"",
        ),
        case(
            "anno-ippools-interface-number",
            pod(IPPOOLS, "[{\"interface\":1}]"),
            A,
            "\"interface\" must be a string, found 1",
        ),
        case("anno-subnet-empty-object", pod(SUBNET, "{}"), A, "it's invalid to set dual empty subnet with single interface"),
        case("anno-subnet-empty-name", pod(SUBNET, "{\"ipv4\":[\"\"]}"), A, "it's invalid to set an empty IPv4 subnet with single interface"),
        case("anno-subnet-null", pod(SUBNET, "null"), A, "no subnets specified"),
        case("anno-subnet-a-list", pod(SUBNET, "[{\"ipv4\":[\"s\"]}]"), A, "expected a JSON object"),
        case("anno-subnets-empty-list", pod(SUBNETS, "[]"), A, "no subnets specified"),
        case(
            "anno-subnets-same-nic",
            pod(SUBNETS, "[{\"interface\":\"eth0\",\"ipv4\":[\"a\"]},{\"interface\":\"eth0\",\"ipv4\":[\"b\"]}]"),
            A,
            "it's invalid to use the same Interface name for multiple interfaces (\"eth0\")",
        ),
        case(
            "anno-subnets-same-subnet",
            pod(SUBNETS, "[{\"interface\":\"eth0\",\"ipv4\":[\"a\"]},{\"interface\":\"net1\",\"ipv4\":[\"a\"]}]"),
            A,
            "it's invalid to use the same subnet for multiple interfaces (a on eth0 and net1)",
        ),
        case("anno-ip-number-plus-abc", pod(IP_NUMBER, "+abc"), A, "invalid input '+abc': strconv.Atoi: parsing \"abc\": invalid syntax"),
        case("anno-ip-number-minus-1", pod(IP_NUMBER, "-1"), A, "subnet 'ipam.spidernet.io/ippool-ip-number' value must equal or greater than 0"),
        case("anno-ip-number-empty", pod(IP_NUMBER, ""), A, "strconv.Atoi: parsing \"\": invalid syntax"),
        case("anno-ip-number-space", pod(IP_NUMBER, " 3"), A, "strconv.Atoi: parsing \" 3\": invalid syntax"),
        case("anno-ip-number-double-plus", pod(IP_NUMBER, "++1"), A, "invalid input '++1'"),
        case("anno-ip-number-hex", pod(IP_NUMBER, "0x10"), A, "strconv.Atoi: parsing \"0x10\": invalid syntax"),
        case(
            "anno-ip-number-20-digits",
            pod(IP_NUMBER, "99999999999999999999"),
            A,
            "strconv.Atoi: parsing \"99999999999999999999\": value out of range",
        ),
        case("anno-reclaim-yes", pod(RECLAIM, "yes"), A, "strconv.ParseBool: parsing \"yes\": invalid syntax"),
        case("anno-reclaim-empty", pod(RECLAIM, ""), A, "strconv.ParseBool: parsing \"\": invalid syntax"),
        case("anno-routes-an-object", pod(ROUTES, "{\"dst\":\"10.0.0.0/8\"}"), A, "expected a JSON list"),
        case(
            "anno-routes-bad-dst",
            pod(ROUTES, "[{\"dst\":\"10.0.0.0/40\",\"gw\":\"10.1.0.1\"}]"),
            A,
            "invalid route format 'dst: 10.0.0.0/40, gw: 10.1.0.1' (invalid CIDR format '10.0.0.0/40')",
        ),
        case(
            "anno-routes-mixed-families",
            pod(ROUTES, "[{\"dst\":\"10.0.0.0/8\",\"gw\":\"fd00::1\"}]"),
            A,
            "invalid route format in IPv4 'dst: 10.0.0.0/8, gw: fd00::1'",
        ),
        case("anno-routes-no-gw", pod(ROUTES, "[{\"dst\":\"10.0.0.0/8\"}]"), A, "invalid IP format in IPv4 ''"),
        case("anno-ns-v4-not-json", ns(NS_V4, "[pool-a]"), A, "Namespace annotation 'ipam.spidernet.io/default-ipv4-ippool'"),
        case("anno-ns-v6-a-string", ns(NS_V6, "\"pool-a\""), A, "expected a list of strings, found \"pool-a\""),
    ]
}

/// A workload with annotations, for the auto-pool planner.
#[derive(Debug, Clone)]
pub struct Workload {
    kind: &'static str,
    replicas: Option<u64>,
    annotations: Vec<(&'static str, &'static str)>,
}

fn deployment(annotations: Vec<(&'static str, &'static str)>) -> Workload {
    Workload {
        kind: "Deployment",
        replicas: Some(3),
        annotations,
    }
}

/// Subnets the auto-pool cases carve from: a whole /8, an IPv6 /120, a small IPv4 /24.
const SUBNETS_YAML: &str = r#"
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderSubnet
metadata: {name: big8}
spec: {subnet: 10.0.0.0/8, ips: [10.0.0.1-10.255.255.254]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderSubnet
metadata: {name: six}
spec: {subnet: "fd00::/120", ips: ["fd00::1-fd00::ff"]}
"#;

/// The auto-pool table: what the controller says of a workload's annotations.
fn autopool_cases() -> Vec<Case<Workload>> {
    vec![
        case(
            "auto-ip-number-beyond-a-slash-8",
            deployment(vec![(SUBNET, "{\"ipv4\":[\"big8\"]}"), (IP_NUMBER, "99999999")]),
            "AutoPool",
            "pod default/web: insufficient subnet FreeIPs, required '99999999' but only left '16777214' in SpiderSubnet big8",
        ),
        case(
            "auto-ip-number-i64-max-plus-replicas",
            deployment(vec![(SUBNET, "{\"ipv4\":[\"big8\"]}"), (IP_NUMBER, "+9223372036854775807")]),
            "AutoPool",
            "required '9223372036854775810' but only left '16777214'",
        ),
        case(
            "auto-subnet-not-found",
            deployment(vec![(SUBNET, "{\"ipv4\":[\"nope\"]}")]),
            "AutoPool",
            "pod default/web: SpiderSubnet nope not found",
        ),
        case(
            "auto-subnet-wrong-family",
            deployment(vec![(SUBNET, "{\"ipv4\":[\"six\"]}")]),
            "AutoPool",
            "SpiderSubnet six is not an IPv4 subnet",
        ),
        case(
            "auto-third-party-flexible",
            Workload {
                kind: "CloneSet",
                replicas: None,
                annotations: vec![(SUBNET, "{\"ipv4\":[\"big8\"]}"), (IP_NUMBER, "+2")],
            },
            "AutoPool",
            "'+2' in ipam.spidernet.io/ippool-ip-number needs the replica count",
        ),
        case(
            "auto-third-party-no-number",
            Workload {
                kind: "CloneSet",
                replicas: None,
                annotations: vec![(SUBNET, "{\"ipv4\":[\"big8\"]}")],
            },
            "AutoPool",
            "CloneSet/default/web only supports fixed auto-created IPPool IP Number",
        ),
    ]
}

/// The ids of both tables.
pub fn ids() -> Vec<&'static str> {
    cases()
        .iter()
        .map(|c| c.id)
        .chain(autopool_cases().iter().map(|c| c.id))
        .collect()
}

#[test]
fn bad_annotations_name_the_key_and_the_value() {
    each(cases(), |c| {
        let map: BTreeMap<String, String> =
            [(c.input.key.to_string(), c.input.value.clone())].into();
        let result = no_panic(c.id, || {
            if c.input.namespace {
                NamespaceAnnotations::parse(&map).map(|_| ())
            } else {
                PodAnnotations::parse(&map).map(|_| ())
            }
        });
        let err = result.expect_err(c.id);
        let message = err.to_string();
        check(c, core_kind(&err), &message);
        let owner = if c.input.namespace {
            "Namespace"
        } else {
            "Pod"
        };
        assert!(
            message.contains(&format!("{owner} annotation '{}'", c.input.key))
                && message.contains(&format!("(value {:?})", c.input.value)),
            "{}: the message does not name the key and the value: {message}",
            c.id
        );
    });
}

#[test]
fn auto_pools_refuse_what_the_subnets_cannot_give() {
    let subnets: Vec<(SpiderSubnet, Revision)> = parse_documents("subnets.yaml", SUBNETS_YAML)
        .unwrap()
        .into_iter()
        .map(|d| match d.object {
            Object::Subnet(mut s) => {
                mutate_subnet(&mut s);
                (s, Revision("1".into()))
            }
            other => panic!("not a subnet: {other:?}"),
        })
        .collect();
    each(autopool_cases(), |c| {
        let app = Application {
            api_version: if c.input.kind == "CloneSet" {
                "apps.kruise.io/v1alpha1".into()
            } else {
                "apps/v1".into()
            },
            kind: c.input.kind.into(),
            namespace: "default".into(),
            name: "web".into(),
            uid: "0b1c2d3e-0000-0000-0000-00000000beef".into(),
            replicas: c.input.replicas,
            annotations: c
                .input
                .annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let result = no_panic(c.id, || {
            plan_auto_pools(&app, &subnets, &[], &[], &AutoPoolConfig::default())
        });
        let err = result.expect_err(c.id);
        check(c, core_kind(&err), &err.to_string());
    });
}
