//! YAML/JSON objects: parse, defaulting and admission, as `spiderpoolctl apply` runs them,
//! against a store holding [`crate::SEED`]. Nothing of a refused file is stored.

use crate::{case, check, cni_kind, each, no_panic, runtime, seeded_store, snapshot, Case};

const V2: &str = "spiderpool.spidernet.io/v2beta1";

/// A SpiderIPPool document.
fn pool(name: &str, spec: &str) -> String {
    format!("apiVersion: {V2}\nkind: SpiderIPPool\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

fn subnet(name: &str, spec: &str) -> String {
    format!("apiVersion: {V2}\nkind: SpiderSubnet\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

fn reserved(name: &str, spec: &str) -> String {
    format!("apiVersion: {V2}\nkind: SpiderReservedIP\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

/// The table.
fn cases() -> Vec<Case<String>> {
    let ok_pool = pool("fine", "{subnet: 10.40.0.0/24, ips: [10.40.0.10]}");
    vec![
        // --- SpiderIPPool ---
        case(
            "obj-pool-cidr-prefix-33",
            pool("p", "{subnet: 10.1.0.0/33, ips: [10.1.0.10]}"),
            "Ipam::Invalid",
            "SpiderIPPool \"p\" is invalid: [spec.ipVersion: Invalid value: \"null\": is not generated correctly, 'spec.subnet' may be invalid, spec.subnet: Invalid value: \"10.1.0.0/33\": invalid CIDR format '10.1.0.0/33']",
        ),
        case(
            "obj-pool-cidr-not-an-address",
            pool("p", "{subnet: ten.one/24}"),
            "Ipam::Invalid",
            "spec.subnet: Invalid value: \"ten.one/24\": invalid CIDR format 'ten.one/24'",
        ),
        case(
            "obj-pool-cidr-host-bits",
            pool("p", "{subnet: 10.1.0.5/24}"),
            "Ipam::Invalid",
            "spec.subnet: Invalid value: \"10.1.0.5/24\": unformatted subnet 10.1.0.5/24, please change it to 10.1.0.0/24",
        ),
        case(
            "obj-pool-ip-outside-subnet",
            pool("p", "{subnet: 10.1.0.0/24, ips: [10.2.0.5]}"),
            "Ipam::Invalid",
            "spec.ips[0]: Invalid value: \"10.2.0.5\": not pertains to the 'spec.subnet' 10.1.0.0/24 of IPPool",
        ),
        case(
            "obj-pool-ip-octet-300",
            pool("p", "{subnet: 10.1.0.0/24, ips: [10.1.0.300]}"),
            "Ipam::Invalid",
            "spec.ips[0]: Invalid value: \"10.1.0.300\": invalid IP range format in IPv4 '10.1.0.300'",
        ),
        case(
            "obj-pool-mixed-families",
            pool("p", "{subnet: 10.1.0.0/24, ips: [10.1.0.10, \"fd00::1\"]}"),
            "Ipam::Invalid",
            "spec.ips[1]: Invalid value: \"fd00::1\": invalid IP range format in IPv4 'fd00::1'",
        ),
        case(
            "obj-pool-ipversion-vs-subnet",
            pool("p", "{ipVersion: 6, subnet: 10.1.0.0/24}"),
            "Ipam::Invalid",
            "spec.subnet: Invalid value: \"10.1.0.0/24\": invalid CIDR format in IPv6 '10.1.0.0/24'",
        ),
        case(
            "obj-pool-ipversion-5",
            pool("p", "{ipVersion: 5, subnet: 10.1.0.0/24}"),
            "Ipam::Invalid",
            "spec.ipVersion: Unsupported value: 5: supported values: \"4\", \"6\"",
        ),
        case(
            "obj-pool-descending-range",
            pool("p", "{subnet: 10.1.0.0/24, ips: [10.1.0.20-10.1.0.10]}"),
            "Ipam::Invalid",
            "spec.ips[0]: Invalid value: \"10.1.0.20-10.1.0.10\": invalid IP range format in IPv4 '10.1.0.20-10.1.0.10'",
        ),
        case(
            "obj-pool-three-part-range",
            pool("p", "{subnet: 10.1.0.0/24, ips: [10.1.0.1-10.1.0.2-10.1.0.3]}"),
            "Ipam::Invalid",
            "spec.ips[0]: Invalid value: \"10.1.0.1-10.1.0.2-10.1.0.3\"",
        ),
        case(
            "obj-pool-exclude-outside-subnet",
            pool("p", "{subnet: 10.1.0.0/24, ips: [10.1.0.10], excludeIPs: [10.9.0.1]}"),
            "Ipam::Invalid",
            "spec.excludeIPs[0]: Invalid value: \"10.9.0.1\": not pertains to the 'spec.subnet' 10.1.0.0/24 of IPPool",
        ),
        case(
            "obj-pool-overlaps-sibling",
            pool("p", "{subnet: 10.20.0.0/16, ips: [10.20.0.15-10.20.0.25]}"),
            "Ipam::Invalid",
            "spec.ips: Forbidden: overlap with IPPool base-pool in IP ranges [10.20.0.15-10.20.0.20]",
        ),
        case(
            "obj-pool-nested-in-pool-cidr",
            pool("p", "{subnet: 10.20.5.0/24, ips: [10.20.5.1]}"),
            "Ipam::Invalid",
            "spec.subnet: Invalid value: \"10.20.5.0/24\": overlap with IPPool base-pool which 'spec.subnet' is 10.20.0.0/16",
        ),
        case(
            "obj-pool-outside-controller-subnet",
            pool("p", "{subnet: 10.20.0.0/16, ips: [10.20.1.1]}"),
            "Ipam::Invalid",
            "add some IP ranges [10.20.1.1] that are not contained in controller Subnet base",
        ),
        case(
            "obj-pool-gateway-outside-subnet",
            pool("p", "{subnet: 10.1.0.0/24, gateway: 10.9.9.9}"),
            "Ipam::Invalid",
            "spec.gateway: Invalid value: \"10.9.9.9\": not pertains to the 'spec.subnet' 10.1.0.0/24 of IPPool",
        ),
        case(
            "obj-pool-gateway-not-an-ip",
            pool("p", "{subnet: 10.1.0.0/24, gateway: router}"),
            "Ipam::Invalid",
            "spec.gateway: Invalid value: \"router\": invalid IP format in IPv4 'router'",
        ),
        case(
            "obj-pool-gateway-in-ips",
            pool("p", "{subnet: 10.1.0.0/24, ips: [10.1.0.1-10.1.0.9], gateway: 10.1.0.1}"),
            "Ipam::Invalid",
            "spec.ips[0]: Invalid value: \"10.1.0.1-10.1.0.9\": conflicts with 'spec.gateway' 10.1.0.1",
        ),
        case(
            "obj-pool-default-route",
            pool("p", "{subnet: 10.1.0.0/24, routes: [{dst: 0.0.0.0/0, gw: 10.1.0.1}]}"),
            "Ipam::Invalid",
            "spec.routes[0].dst: Invalid value: \"0.0.0.0/0\": please specify 'spec.gateway' to configure the default route",
        ),
        case(
            "obj-pool-route-gw-outside",
            pool("p", "{subnet: 10.1.0.0/24, routes: [{dst: 10.8.0.0/16, gw: 10.2.0.1}]}"),
            "Ipam::Invalid",
            "spec.routes[0].gw: Invalid value: \"10.2.0.1\": not pertains to the 'spec.subnet' 10.1.0.0/24 of IPPool",
        ),
        case(
            "obj-pool-bad-affinity-key",
            pool("p", "{subnet: 10.1.0.0/24, podAffinity: {matchLabels: {\"bad key!\": x}}}"),
            "Ipam::Invalid",
            "spec.podAffinity.matchLabels: Invalid value: \"bad key!\"",
        ),
        case(
            "obj-pool-ips-wrong-type",
            pool("p", "{subnet: 10.1.0.0/24, ips: 5}"),
            "Ipam::Decode",
            "case.yaml: document 1: SpiderIPPool \"p\": spec.ips: invalid type: integer `5`, expected a sequence",
        ),
        case(
            "obj-repeated-kind",
            format!("apiVersion: {V2}\nkind: SpiderIPPool\nkind: SpiderSubnet\nmetadata: {{name: p}}\nspec: {{subnet: 10.1.0.0/24}}\n"),
            "Ipam::Decode",
            "case.yaml: document 1: duplicate key `kind`",
        ),
        case(
            "obj-repeated-key-json",
            format!("{{\"apiVersion\": \"{V2}\", \"kind\": \"SpiderIPPool\", \"metadata\": {{\"name\": \"p\"}}, \"spec\": {{\"subnet\": \"10.1.0.0/24\", \"subnet\": \"10.2.0.0/24\"}}}}"),
            "Ipam::Decode",
            "case.yaml: document 1: duplicate key `subnet`",
        ),
        case(
            "obj-pool-name-uppercase",
            pool("Bad_Name", "{subnet: 10.1.0.0/24}"),
            "Ipam::Invalid",
            "SpiderIPPool \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain",
        ),
        case(
            "obj-pool-name-path",
            pool("\"../../etc\"", "{subnet: 10.1.0.0/24}"),
            "Ipam::Invalid",
            "metadata.name: Invalid value: \"../../etc\": a lowercase RFC 1123 subdomain",
        ),
        case(
            "obj-pool-name-missing",
            format!("apiVersion: {V2}\nkind: SpiderIPPool\nspec: {{subnet: 10.1.0.0/24}}\n"),
            "Ipam::Invalid",
            "SpiderIPPool \"\" is invalid: metadata.name: Required value: name or generateName is required",
        ),
        case(
            "obj-pool-name-254-chars",
            pool(&"a".repeat(254), "{subnet: 10.1.0.0/24}"),
            "Ipam::Invalid",
            "metadata.name: Invalid value: \"aaaa",
        ),
        // --- SpiderSubnet ---
        case(
            "obj-subnet-nested",
            subnet("s", "{subnet: 10.20.1.0/24}"),
            "Ipam::Invalid",
            "SpiderSubnet \"s\" is invalid: spec.subnet: Invalid value: \"10.20.1.0/24\": overlap with Subnet base which 'spec.subnet' is 10.20.0.0/16",
        ),
        case(
            "obj-subnet-same-cidr",
            subnet("s", "{subnet: 10.20.0.0/16}"),
            "Ipam::Invalid",
            "overlap with Subnet base which 'spec.subnet' is 10.20.0.0/16",
        ),
        case(
            "obj-subnet-change-cidr",
            subnet("base", "{subnet: 10.21.0.0/16}"),
            "Ipam::Invalid",
            "SpiderSubnet \"base\" is invalid: spec.subnet: Forbidden: is not changeable",
        ),
        case(
            "obj-subnet-shrink-below-pool",
            subnet("base", "{subnet: 10.20.0.0/16, ips: [10.20.0.100-10.20.0.200], gateway: 10.20.0.1}"),
            "Ipam::Invalid",
            "remove some IP ranges [10.20.0.10-10.20.0.20] that is being used by IPPool base-pool",
        ),
        case(
            "obj-subnet-corrupt-status",
            format!("apiVersion: {V2}\nkind: SpiderSubnet\nmetadata: {{name: s}}\nspec: {{subnet: 10.50.0.0/16}}\nstatus: {{controlledIPPools: \"not json\"}}\n"),
            "Ipam::CorruptStatus",
            "SpiderSubnet \"s\": status.controlledIPPools is corrupt",
        ),
        case(
            "obj-subnet-ipv4-range-in-ipv6",
            subnet("s6", "{subnet: \"fd50::/64\", ips: [10.0.0.1]}"),
            "Ipam::Invalid",
            "spec.ips[0]: Invalid value: \"10.0.0.1\": invalid IP range format in IPv6 '10.0.0.1'",
        ),
        // --- SpiderReservedIP ---
        case(
            "obj-reserved-bad-ip",
            reserved("r", "{ips: [10.1.0.300]}"),
            "Ipam::Invalid",
            "SpiderReservedIP \"r\" is invalid: [spec.ipVersion: Invalid value: \"null\": is not generated correctly, 'spec.ips' is empty or 'spec.ips[0]' may be invalid, spec.ips[0]: Invalid value: \"10.1.0.300\": invalid IP range format '10.1.0.300']",
        ),
        case(
            "obj-reserved-empty",
            reserved("r", "{ips: []}"),
            "Ipam::Invalid",
            "'spec.ips' is empty or 'spec.ips[0]' may be invalid",
        ),
        case(
            "obj-reserved-mixed-families",
            reserved("r", "{ips: [10.1.0.1, \"fd00::1\"]}"),
            "Ipam::Invalid",
            "spec.ips[1]: Invalid value: \"fd00::1\": invalid IP range format in IPv4 'fd00::1'",
        ),
        // --- SpiderEndpoint ---
        case(
            "obj-endpoint-applied",
            format!("apiVersion: {V2}\nkind: SpiderEndpoint\nmetadata: {{name: pod-1, namespace: default}}\n"),
            "Usage",
            "document 1: SpiderEndpoint \"pod-1\" is written by the IPAM, not applied",
        ),
        case(
            "obj-endpoint-bad-status",
            format!("apiVersion: {V2}\nkind: SpiderEndpoint\nmetadata: {{name: pod-1}}\nstatus: {{current: {{ips: 7}}}}\n"),
            "Ipam::Decode",
            "SpiderEndpoint \"pod-1\": status.current.ips: invalid type: integer `7`",
        ),
        // --- documents ---
        case(
            "obj-unknown-kind",
            format!("apiVersion: {V2}\nkind: SpiderWidget\nmetadata: {{name: w}}\n"),
            "Usage",
            "document 1: spiderpool.spidernet.io/v2beta1 SpiderWidget \"w\" is not managed here",
        ),
        case(
            "obj-wrong-api-version",
            "apiVersion: spiderpool.spidernet.io/v9\nkind: SpiderIPPool\nmetadata: {name: p}\n".into(),
            "Ipam::UnsupportedObject",
            "case.yaml: document 1: unsupported object spiderpool.spidernet.io/v9 SpiderIPPool",
        ),
        case(
            "obj-missing-kind",
            format!("apiVersion: {V2}\nmetadata: {{name: p}}\n"),
            "Ipam::Decode",
            "case.yaml: document 1: missing kind",
        ),
        case(
            "obj-missing-api-version",
            "kind: SpiderIPPool\nmetadata: {name: p}\n".into(),
            "Ipam::Decode",
            "case.yaml: document 1: missing apiVersion",
        ),
        case(
            "obj-top-level-scalar",
            "just a sentence\n".into(),
            "Ipam::Decode",
            "document 1: expected an object with apiVersion and kind, found a string",
        ),
        case(
            "obj-yaml-syntax",
            "apiVersion: [".into(),
            "Ipam::Decode",
            "case.yaml: document 1:",
        ),
        case(
            "obj-json-trailing-garbage",
            format!("{{\"apiVersion\":\"{V2}\",\"kind\":\"SpiderIPPool\",\"metadata\":{{\"name\":\"p\"}}}} ]"),
            "Ipam::Decode",
            "case.yaml: document 2: expected value",
        ),
        case(
            "obj-yaml-deep-nesting",
            format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            "Ipam::Decode",
            "document 1: recursion limit exceeded",
        ),
        case(
            "obj-json-deep-nesting",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
            "Ipam::Decode",
            "document 1: recursion limit exceeded",
        ),
        case(
            "obj-yaml-alias-bomb",
            (b'a'..=b'i')
                .map(|c| {
                    let c = c as char;
                    let prev = (c as u8 - 1) as char;
                    if c == 'a' {
                        "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n".to_string()
                    } else {
                        format!("{c}: &{c} [{}]\n", vec![format!("*{prev}"); 9].join(", "))
                    }
                })
                .collect(),
            "Ipam::Decode",
            "document 1: repetition limit exceeded",
        ),
        case(
            "obj-second-document-bad",
            format!("{ok_pool}---\n{}", pool("q", "{subnet: 10.41.0.0/24, ips: [10.41.1.1]}")),
            "Ipam::Invalid",
            "SpiderIPPool \"q\" is invalid: spec.ips[0]: Invalid value: \"10.41.1.1\"",
        ),
    ]
}

/// The ids of the table.
pub fn ids() -> Vec<&'static str> {
    cases().iter().map(|c| c.id).collect()
}

#[test]
fn bad_objects_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = seeded_store(&path);
    let rt = runtime();
    each(cases(), |c| {
        let before = snapshot(&path);
        let result = no_panic(c.id, || {
            rt.block_on(spiderpool_cni::ctl::apply(
                &store,
                "case.yaml",
                &c.input,
                &mut || "uid-case".into(),
                "2026-01-01T00:00:00Z",
            ))
        });
        let err = match result {
            Ok(out) => panic!("{}: accepted: {out:?}", c.id),
            Err(e) => e,
        };
        check(c, &cni_kind(&err), &err.to_string());
        assert_eq!(snapshot(&path), before, "{}: the store changed", c.id);
    });
}
