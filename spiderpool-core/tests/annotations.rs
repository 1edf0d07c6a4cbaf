//! Typed parsing of `ipam.spidernet.io/*` annotations.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use spiderpool_core::annotations::*;
use spiderpool_core::Error;

fn annos(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn parse(key: &str, value: &str) -> Result<PodAnnotations, Error> {
    PodAnnotations::parse(&annos(&[(key, value)]))
}

#[track_caller]
fn assert_bad(key: &str, value: &str, fragment: &str) {
    match parse(key, value) {
        Err(Error::Annotation { key: k, reason, .. }) => {
            assert_eq!(k, key);
            assert!(reason.contains(fragment), "{key}={value}: {reason}");
        }
        other => panic!("{key}={value}: expected an annotation error, got {other:?}"),
    }
}

#[test]
fn ippool_annotation_as_in_the_seeds() {
    let a = parse(ANNO_IPPOOL, "{\n  \"ipv4\": [\"custom-ipv4-ippool\"]\n}").unwrap();
    let choice = a.ippool.unwrap();
    assert_eq!(choice.ipv4, vec!["custom-ipv4-ippool"]);
    assert!(choice.ipv6.is_empty());
    // Go's encoding/json matches keys case-insensitively and ignores unknown ones.
    let a = parse(ANNO_IPPOOL, r#"{"IPv4":["a","b*"],"IPV6":["c"],"note":1}"#).unwrap();
    assert_eq!(a.ippool.unwrap().ipv6, vec!["c"]);
    // Present but null: the source is chosen and names no pool (Spiderpool does the same).
    assert_eq!(
        parse(ANNO_IPPOOL, "null").unwrap().ippool,
        Some(PoolChoice::default())
    );
    assert_bad(ANNO_IPPOOL, "{ipv4: [a]}", "key must be a string");
    assert_bad(ANNO_IPPOOL, r#"{"ipv4":"a"}"#, "expected a list of strings");
    assert_bad(ANNO_IPPOOL, r#"["a"]"#, "expected a JSON object");
}

#[test]
fn ippools_annotation_rules() {
    let a = parse(
        ANNO_IPPOOLS,
        r#"[{"interface":"eth0","ipv4":["v4a"],"ipv6":["v6a"]},{"interface":"net1","ipv4":["v4b"],"cleangateway":true}]"#,
    )
    .unwrap();
    let nics = a.ippools.clone().unwrap();
    assert_eq!(nics[1].interface, "net1");
    assert!(nics[1].clean_gateway);
    assert!(!nics[0].clean_gateway);
    assert!(a.nic_pools_for("net1").unwrap().is_some());
    assert!(
        matches!(a.nic_pools_for("net2"), Err(Error::Annotation { reason, .. }) if reason == "interface net2 must be specified")
    );

    let unnamed = parse(ANNO_IPPOOLS, r#"[{"ipv4":["a"]},{"ipv4":["b"]}]"#).unwrap();
    let names: Vec<String> = unnamed
        .ippools
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.interface.clone())
        .collect();
    assert_eq!(names, vec!["0", "1"]);
    assert!(unnamed.nic_pools_for("eth0").unwrap().is_some());

    assert_bad(ANNO_IPPOOLS, "[]", "value requires at least one item");
    assert_bad(ANNO_IPPOOLS, "null", "value requires at least one item");
    // Go's decoder matches keys case-insensitively: `cleanGateway` is `cleangateway`.
    let a = parse(
        ANNO_IPPOOLS,
        r#"[{"Interface":"eth0","IPv4":["a"],"cleanGateway":true}]"#,
    )
    .unwrap();
    assert!(a.ippools.unwrap()[0].clean_gateway);
    assert_bad(
        ANNO_IPPOOLS,
        r#"[{"interface":"eth0"},{"ipv4":["b"]}]"#,
        "NIC should be either all specified or all unspecified",
    );
    assert_bad(
        ANNO_IPPOOLS,
        r#"[{"interface":"eth0"},{"interface":"eth0"}]"#,
        "duplicate interface eth0",
    );
    assert_bad(
        ANNO_IPPOOLS,
        r#"[{"interface":"eth0","cleangateway":"yes"}]"#,
        "must be a boolean",
    );
}

#[test]
fn subnet_annotations() {
    let a = parse(
        ANNO_SUBNET,
        r#"{"ipv4": ["subnet-demo-v4"], "ipv6": ["subnet-demo-v6"]}"#,
    )
    .unwrap();
    let s = a.subnet.unwrap();
    assert_eq!(s.interface, "eth0");
    assert_eq!(
        s.subnet(spiderpool_core::ip::IpFamily::V4),
        Some("subnet-demo-v4")
    );
    assert_bad(
        ANNO_SUBNET,
        r#"{"interface":"eth0"}"#,
        "it's invalid to set dual empty subnet with single interface",
    );
    assert_bad(
        ANNO_SUBNET,
        r#"{"ipv4":[""]}"#,
        "it's invalid to set an empty IPv4 subnet with single interface",
    );
    assert_bad(ANNO_SUBNET, "null", "no subnets specified");
    // Only the first name counts, so only it must be non-empty.
    assert!(parse(ANNO_SUBNET, r#"{"ipv4":["s1",""]}"#).is_ok());

    let a = parse(
        ANNO_SUBNETS,
        r#"[{"interface":"eth0","ipv4":["s1"]},{"interface":"net1","ipv4":["s2"],"ipv6":["s6"]}]"#,
    )
    .unwrap();
    assert_eq!(a.subnets.unwrap().len(), 2);
    assert_bad(ANNO_SUBNETS, "[]", "no subnets specified");
    assert_bad(ANNO_SUBNETS, "null", "no subnets specified");
    assert_bad(
        ANNO_SUBNETS,
        r#"[{"interface":"eth0","ipv6":[""]}]"#,
        "it's invalid to set an empty IPv6 subnet with multiple interfaces",
    );
    assert_bad(
        ANNO_SUBNETS,
        r#"[{"interface":"eth0"}]"#,
        "it's invalid to set dual empty subnet with multiple interfaces",
    );
    assert_bad(
        ANNO_SUBNETS,
        r#"[{"interface":"eth0","ipv4":["s1"]},{"interface":"eth0","ipv4":["s2"]}]"#,
        "it's invalid to use the same Interface name for multiple interfaces",
    );
    assert_bad(
        ANNO_SUBNETS,
        r#"[{"ipv4":["a"]},{"ipv4":["b"]}]"#,
        "it's invalid to use the same Interface name for multiple interfaces",
    );
    assert_bad(
        ANNO_SUBNETS,
        r#"[{"interface":"eth0","ipv4":["s1"]},{"interface":"net1","ipv4":["s1"]}]"#,
        "it's invalid to use the same subnet for multiple interfaces (s1 on eth0 and net1)",
    );
    // `subnets` wins over `subnet`.
    let both = PodAnnotations::parse(&annos(&[
        (ANNO_SUBNETS, r#"[{"interface":"eth0","ipv4":["a"]}]"#),
        (ANNO_SUBNET, "not json"),
    ]))
    .unwrap();
    assert!(both.subnet.is_none() && both.subnets.is_some());
}

#[test]
fn ip_number_fixed_and_flexible() {
    assert_eq!(IpNumber::parse("5").unwrap(), IpNumber::Fixed(5));
    assert_eq!(IpNumber::parse("+3").unwrap(), IpNumber::Flexible(3));
    assert_eq!(IpNumber::parse("+3").unwrap().size(2), 5);
    assert_eq!(IpNumber::parse("5").unwrap().size(2), 5);
    assert_eq!(IpNumber::parse("0").unwrap(), IpNumber::Fixed(0));
    assert_eq!(IpNumber::parse("+0").unwrap(), IpNumber::Flexible(0));
    assert_eq!(IpNumber::Flexible(3).to_string(), "+3");
    // Ours: "1+1" is refused (Spiderpool silently reads it as "+1").
    for bad in [
        "++1", "+ 2", "2.0", "", "abc", "+", " 1", "5+", "1+1", "'+3'",
    ] {
        assert_bad(
            ANNO_IPPOOL_IP_NUMBER,
            bad,
            &format!("invalid input '{bad}'"),
        );
    }
    assert_bad(
        ANNO_IPPOOL_IP_NUMBER,
        "a",
        "invalid input 'a': strconv.Atoi: parsing \"a\": invalid syntax",
    );
    let negative = "subnet 'ipam.spidernet.io/ippool-ip-number' value must equal or greater than 0";
    assert_bad(ANNO_IPPOOL_IP_NUMBER, "-1", negative);
    assert_bad(ANNO_IPPOOL_IP_NUMBER, "+-1", negative);
}

#[test]
fn reclaim_flag_is_a_go_bool() {
    for (v, want) in [
        ("true", true),
        ("1", true),
        ("T", true),
        ("TRUE", true),
        ("False", false),
        ("0", false),
        ("F", false),
    ] {
        assert_eq!(
            parse(ANNO_IPPOOL_RECLAIM, v).unwrap().reclaim,
            Some(want),
            "{v}"
        );
    }
    for bad in ["yes", "tRUE", ""] {
        assert_bad(
            ANNO_IPPOOL_RECLAIM,
            bad,
            &format!("strconv.ParseBool: parsing {bad:?}: invalid syntax"),
        );
    }
    assert_eq!(PodAnnotations::parse(&annos(&[])).unwrap().reclaim, None);
}

#[test]
fn routes_annotation() {
    let a = parse(
        ANNO_ROUTES,
        r#"[{"dst":"10.0.0.0/16","gw":"192.168.1.1"},{"dst":"fd00::/64","gw":"fd01::1"}]"#,
    )
    .unwrap();
    assert_eq!(a.routes.len(), 2);
    assert_bad(
        ANNO_ROUTES,
        r#"[{"dst":"10.0.0.0/16","gw":"fd00::1"}]"#,
        "invalid route format in IPv4 'dst: 10.0.0.0/16, gw: fd00::1'",
    );
    assert_bad(
        ANNO_ROUTES,
        r#"[{"dst":"10.0.0.1","gw":"10.0.0.2"}]"#,
        "invalid route format 'dst: 10.0.0.1, gw: 10.0.0.2'",
    );
    assert_bad(
        ANNO_ROUTES,
        r#"[{"dst":"10.0.0.0/16"}]"#,
        "invalid route format",
    );
    assert_bad(ANNO_ROUTES, "{}", "expected a JSON list");
    assert_eq!(parse(ANNO_ROUTES, "null").unwrap().routes, vec![]);
}

#[test]
fn namespace_default_pools() {
    let ns = NamespaceAnnotations::parse(&annos(&[(
        ANNO_NS_DEFAULT_IPV4_IPPOOL,
        r#"["ns-v4-1","ns-v4-2"]"#,
    )]))
    .unwrap();
    assert_eq!(ns.default_ipv4_ippool, vec!["ns-v4-1", "ns-v4-2"]);
    assert!(ns.default_ipv6_ippool.is_empty());
    let err =
        NamespaceAnnotations::parse(&annos(&[(ANNO_NS_DEFAULT_IPV6_IPPOOL, "ns-v6")])).unwrap_err();
    assert!(err.to_string().starts_with(
        "wrong input, invalid format of Namespace annotation 'ipam.spidernet.io/default-ipv6-ippool'"
    ), "{err}");
}

#[test]
fn unrelated_annotations_are_ignored() {
    let a = PodAnnotations::parse(&annos(&[
        ("v1.multus-cni.io/default-network", "kube-system/macvlan"),
        ("x", "{"),
    ]))
    .unwrap();
    assert_eq!(a, PodAnnotations::default());
}
