//! Admission rules, one row per rule with a passing and a failing case.
#![allow(clippy::unwrap_used)]

use spiderpool_core::model::{
    parse_documents, Object, SpiderIPPool, SpiderReservedIP, SpiderSubnet,
};
use spiderpool_core::validate::*;
use spiderpool_core::Error;

fn objects(yaml: &str) -> (Vec<SpiderIPPool>, Vec<SpiderSubnet>, Vec<SpiderReservedIP>) {
    let (mut pools, mut subnets, mut reserved) = (vec![], vec![], vec![]);
    for d in parse_documents("test", yaml).unwrap() {
        match d.object {
            Object::IpPool(p) => pools.push(p),
            Object::Subnet(s) => subnets.push(s),
            Object::ReservedIp(r) => reserved.push(r),
            other => panic!("unexpected {other:?}"),
        }
    }
    (pools, subnets, reserved)
}

fn pool(spec: &str) -> SpiderIPPool {
    pool_named("p", spec)
}

fn pool_named(name: &str, spec: &str) -> SpiderIPPool {
    let yaml = format!(
        "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata:\n  name: {name}\nspec:\n{}",
        indent(spec)
    );
    objects(&yaml).0.remove(0)
}

fn subnet_named(name: &str, spec: &str) -> SpiderSubnet {
    let yaml = format!(
        "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderSubnet\nmetadata:\n  name: {name}\nspec:\n{}",
        indent(spec)
    );
    objects(&yaml).1.remove(0)
}

fn reserved(spec: &str) -> SpiderReservedIP {
    let yaml = format!(
        "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderReservedIP\nmetadata:\n  name: r\nspec:\n{}",
        indent(spec)
    );
    objects(&yaml).2.remove(0)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

/// Mutates and validates a new pool against existing pools/subnets (mutated and admitted too).
fn create_pool(
    new: &str,
    pools: &[(&str, &str)],
    subnets: &[(&str, &str)],
) -> Result<SpiderIPPool, Error> {
    create_pool_cfg(new, pools, subnets, &AdmissionConfig::default())
}

fn create_pool_cfg(
    new: &str,
    pools: &[(&str, &str)],
    subnets: &[(&str, &str)],
    cfg: &AdmissionConfig,
) -> Result<SpiderIPPool, Error> {
    let mut existing_subnets = Vec::new();
    for (n, s) in subnets {
        let mut s = subnet_named(n, s);
        mutate_subnet(&mut s);
        existing_subnets.push(s);
    }
    let mut existing_pools = Vec::new();
    for (n, p) in pools {
        let mut p = pool_named(n, p);
        mutate_ippool(&mut p, &existing_subnets, cfg);
        existing_pools.push(p);
    }
    let mut p = pool(new);
    mutate_ippool(&mut p, &existing_subnets, cfg);
    let cluster = Cluster {
        pools: &existing_pools,
        subnets: &existing_subnets,
    };
    validate_ippool_create(&p, &cluster, cfg).map(|_| p)
}

/// Asserts a refusal whose first cause has `path` and a detail containing `fragment`.
#[track_caller]
fn assert_refused(result: Result<impl std::fmt::Debug, Error>, path: &str, fragment: &str) {
    match result {
        Err(Error::Invalid { causes, .. }) => {
            assert!(
                causes
                    .iter()
                    .any(|c| c.path == path && c.detail.contains(fragment)),
                "expected {path}: …{fragment}…, got {causes:#?}"
            );
        }
        other => panic!("expected Invalid at {path} ({fragment}), got {other:?}"),
    }
}

// ----- SpiderIPPool: mutation -----

#[test]
fn mutation_derives_version_label_finalizer_and_merges_ranges() {
    let p = create_pool(
        "subnet: 172.18.40.0/24\nips: [172.18.40.10, 172.18.40.1-172.18.40.2, 172.18.40.2-172.18.40.3]\nexcludeIPs: [172.18.40.3]",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(p.spec.ip_version, Some(4));
    assert_eq!(p.spec.ips, vec!["172.18.40.1-172.18.40.3", "172.18.40.10"]);
    assert_eq!(
        p.spec.exclude_ips,
        vec!["172.18.40.3"],
        "a single entry is kept verbatim"
    );
    assert_eq!(
        p.metadata.labels["ipam.spidernet.io/ippool-cidr"],
        "172-18-40-0-24"
    );
    assert_eq!(p.metadata.finalizers, vec!["spiderpool.spidernet.io"]);
    assert_eq!(p.spec.default, Some(false));
    assert_eq!(p.spec.disable, Some(false));
    let v6 = create_pool("subnet: fd00::/120\nips: [fd00::2, fd00::1]", &[], &[]).unwrap();
    assert_eq!(v6.spec.ip_version, Some(6));
    assert_eq!(v6.spec.ips, vec!["fd00::1-fd00::2"]);
}

#[test]
fn mutation_attaches_the_subnet_of_the_same_cidr_and_inherits_gateway_and_routes() {
    let subnets = [(
        "s1",
        "subnet: 10.6.0.0/16\nips: [10.6.0.1-10.6.0.200]\ngateway: 10.6.0.254\nroutes: [{dst: 10.7.0.0/16, gw: 10.6.0.253}]",
    )];
    let p = create_pool(
        "subnet: 10.6.0.0/16\nips: [10.6.0.10-10.6.0.20]",
        &[],
        &subnets,
    )
    .unwrap();
    assert_eq!(
        p.metadata.labels["ipam.spidernet.io/owner-spider-subnet"],
        "s1"
    );
    let owner = p.metadata.controller().unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("SpiderSubnet", "s1")
    );
    assert_eq!(p.spec.gateway.as_deref(), Some("10.6.0.254"));
    assert_eq!(p.spec.routes.as_ref().unwrap()[0].dst, "10.7.0.0/16");
    // An explicitly empty route list and an own gateway are kept.
    let p = create_pool(
        "subnet: 10.6.0.0/16\nips: [10.6.0.10-10.6.0.20]\ngateway: 10.6.0.1\nroutes: []",
        &[],
        &[("s1", "subnet: 10.6.0.0/16\nips: [10.6.0.1-10.6.0.200]\nexcludeIPs: [10.6.0.1]\nroutes: [{dst: 10.7.0.0/16, gw: 10.6.0.253}]")],
    )
    .unwrap();
    assert_eq!(p.spec.gateway.as_deref(), Some("10.6.0.1"));
    assert_eq!(p.spec.routes, Some(vec![]));
    // With SpiderSubnet disabled nothing is attached.
    let cfg = AdmissionConfig {
        enable_spider_subnet: false,
        ..AdmissionConfig::default()
    };
    let p = create_pool_cfg("subnet: 10.6.0.0/16\nips: [10.6.0.10]", &[], &subnets, &cfg).unwrap();
    assert!(p.metadata.controller().is_none());
}

// ----- SpiderIPPool: create -----

#[test]
fn ip_version_must_be_derivable_supported_and_enabled() {
    assert_refused(
        create_pool("subnet: not-a-cidr", &[], &[]),
        "spec.ipVersion",
        "is not generated correctly",
    );
    assert!(matches!(
        create_pool("ipVersion: 5\nsubnet: 10.0.0.0/8", &[], &[]),
        Err(Error::Invalid { ref causes, .. }) if causes[0].kind == FieldErrorKind::NotSupported
    ));
    let no_v6 = AdmissionConfig {
        enable_ipv6: false,
        ..AdmissionConfig::default()
    };
    assert_refused(
        create_pool_cfg("subnet: fd00::/64", &[], &[], &no_v6),
        "spec.ipVersion",
        "IPv6 is disabled",
    );
    assert!(create_pool_cfg("subnet: 10.0.0.0/8", &[], &[], &no_v6).is_ok());
}

#[test]
fn subnet_must_be_a_canonical_cidr_of_the_family() {
    assert_refused(
        create_pool("subnet: 172.18.40.1/24", &[], &[]),
        "spec.subnet",
        "unformatted subnet 172.18.40.1/24, please change it to 172.18.40.0/24",
    );
    assert_refused(
        create_pool("ipVersion: 4\nsubnet: abcd::/64", &[], &[]),
        "spec.subnet",
        "invalid CIDR format in IPv4 'abcd::/64'",
    );
    assert_refused(
        create_pool("subnet: 10.0.0.0/33", &[], &[]),
        "spec.ipVersion",
        "not generated",
    );
    assert!(
        create_pool("subnet: 172.18.40.0/24", &[], &[]).is_ok(),
        "an empty pool is fine"
    );
}

#[test]
fn names_are_unique_and_cidrs_nest_only_when_equal() {
    let existing = [("p", "subnet: 10.1.0.0/16")];
    assert!(matches!(
        create_pool("subnet: 10.9.0.0/16", &existing, &[]),
        Err(Error::AlreadyExists { ref name, .. }) if name == "p"
    ));
    let existing = [("other", "subnet: 10.1.0.0/16\nips: [10.1.0.1-10.1.0.10]")];
    assert_refused(
        create_pool("subnet: 10.1.2.0/24", &existing, &[]),
        "spec.subnet",
        "overlap with IPPool other which 'spec.subnet' is 10.1.0.0/16",
    );
    assert!(create_pool("subnet: 10.1.0.0/16\nips: [10.1.0.11]", &existing, &[]).is_ok());
    assert!(create_pool("subnet: 10.2.0.0/16", &existing, &[]).is_ok());
    // Ours: nesting in a SpiderSubnet's CIDR is refused too.
    let subnets = [("s", "subnet: 10.3.0.0/16\nips: [10.3.0.1-10.3.0.9]")];
    assert_refused(
        create_pool("subnet: 10.3.1.0/24", &[], &subnets),
        "spec.subnet",
        "overlap with SpiderSubnet s",
    );
}

#[test]
fn ranges_must_parse_lie_in_the_subnet_and_not_overlap_each_other() {
    let base = "subnet: 172.18.40.0/24\n";
    for (ips, path, fragment) in [
        (
            "[172.18.40.0 - 172.18.40.10]",
            "spec.ips[0]",
            "invalid IP range format in IPv4",
        ),
        (
            "[172.18.40.10-172.18.40.1]",
            "spec.ips[0]",
            "invalid IP range format",
        ),
        ("[172.18.40.1/24]", "spec.ips[0]", "invalid IP range format"),
        (
            "[172.18.40.254-172.18.41.1]",
            "spec.ips[0]",
            "not pertains to the 'spec.subnet' 172.18.40.0/24",
        ),
        (
            "[fd00::1]",
            "spec.ips[0]",
            "invalid IP range format in IPv4 'fd00::1'",
        ),
    ] {
        assert_refused(
            create_pool(&format!("{base}ips: {ips}"), &[], &[]),
            path,
            fragment,
        );
    }
    assert_refused(
        create_pool(
            &format!("{base}ips: [172.18.40.1]\nexcludeIPs: [172.18.41.1]"),
            &[],
            &[],
        ),
        "spec.excludeIPs[0]",
        "not pertains",
    );
    // A merged list never overlaps; the check bites on a list the merge could not handle.
    let mut p = pool(&format!(
        "{base}ips: [172.18.40.1-172.18.40.10, 172.18.40.10-172.18.40.20]"
    ));
    p.spec.ip_version = Some(4);
    let r = validate_ippool_create(&p, &Cluster::default(), &AdmissionConfig::default());
    assert_refused(r, "spec.ips[1]", "overlaps with 172.18.40.1-172.18.40.10");
    assert!(create_pool(
        &format!("{base}ips: [172.18.40.1-172.18.40.10, 172.18.40.11-172.18.40.20]"),
        &[],
        &[]
    )
    .is_ok());
}

#[test]
fn sibling_pools_of_one_subnet_must_not_share_usable_addresses() {
    let existing = [(
        "a",
        "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.10]\nexcludeIPs: [10.6.0.5]",
    )];
    assert!(matches!(
        create_pool("subnet: 10.6.0.0/24\nips: [10.6.0.8-10.6.0.12]", &existing, &[]),
        Err(Error::Invalid { ref causes, .. })
            if causes[0].kind == FieldErrorKind::Forbidden
                && causes[0].detail.starts_with("overlap with IPPool a in IP ranges [10.6.0.8-10.6.0.10]")
    ));
    // An address excluded by one pool may be used by another.
    assert!(create_pool(
        "subnet: 10.6.0.0/24\nips: [10.6.0.5, 10.6.0.11]",
        &existing,
        &[]
    )
    .is_ok());
}

#[test]
fn gateway_must_be_in_the_subnet_and_not_usable() {
    let base = "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.10]\n";
    assert_refused(
        create_pool(&format!("{base}gateway: 10.7.0.1"), &[], &[]),
        "spec.gateway",
        "not pertains",
    );
    assert_refused(
        create_pool(&format!("{base}gateway: fd00::1"), &[], &[]),
        "spec.gateway",
        "invalid IP format in IPv4",
    );
    assert_refused(
        create_pool(&format!("{base}gateway: 10.6.0.1"), &[], &[]),
        "spec.ips[0]",
        "conflicts with 'spec.gateway' 10.6.0.1, add the gateway IP address to 'spec.excludeIPs' or remove it from 'spec.ips'",
    );
    assert!(create_pool(
        &format!("{base}gateway: 10.6.0.1\nexcludeIPs: [10.6.0.1]"),
        &[],
        &[]
    )
    .is_ok());
    assert!(create_pool(&format!("{base}gateway: 10.6.0.254"), &[], &[]).is_ok());
}

#[test]
fn routes_have_no_default_no_duplicates_and_a_gateway_in_the_subnet() {
    let base = "subnet: 10.6.0.0/24\n";
    for (routes, path, fragment) in [
        (
            "[{dst: 0.0.0.0/0, gw: 10.6.0.1}]",
            "spec.routes[0].dst",
            "please specify 'spec.gateway' to configure the default route",
        ),
        (
            "[{dst: 10.7.0.0/16, gw: 10.6.0.1}, {dst: 10.7.0.0/16, gw: 10.6.0.2}]",
            "spec.routes[1].dst",
            "duplicate route with the same dst",
        ),
        (
            "[{dst: fd00::/64, gw: 10.6.0.1}]",
            "spec.routes[0].dst",
            "invalid CIDR format in IPv4",
        ),
        (
            "[{dst: 10.7.0.0/16, gw: 10.8.0.1}]",
            "spec.routes[0].gw",
            "not pertains",
        ),
    ] {
        assert_refused(
            create_pool(&format!("{base}routes: {routes}"), &[], &[]),
            path,
            fragment,
        );
    }
    assert!(create_pool(
        &format!("{base}routes: [{{dst: 10.7.0.0/16, gw: 10.6.0.1}}]"),
        &[],
        &[]
    )
    .is_ok());
}

#[test]
fn pod_affinity_must_be_a_valid_non_empty_selector() {
    let base = "subnet: 10.6.0.0/24\n";
    assert_refused(
        create_pool(&format!("{base}podAffinity: {{}}"), &[], &[]),
        "spec.podAffinity",
        "empty podAffinity is invalid for SpiderIPPool",
    );
    assert_refused(
        create_pool(
            &format!("{base}podAffinity: {{matchLabels: {{'bad key': x}}}}"),
            &[],
            &[],
        ),
        "spec.podAffinity.matchLabels",
        "name part must consist of alphanumeric characters",
    );
    assert_refused(
        create_pool(
            &format!("{base}nodeAffinity: {{matchExpressions: [{{key: zone, operator: Near}}]}}"),
            &[],
            &[],
        ),
        "spec.nodeAffinity.matchExpressions[0].operator",
        "not a valid selector operator",
    );
    assert!(create_pool(
        &format!("{base}podAffinity: {{matchLabels: {{app: web}}}}"),
        &[],
        &[]
    )
    .is_ok());
}

#[test]
fn auto_pools_may_only_carry_the_application_affinity() {
    let yaml = "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata:\n  name: auto4-nginx-eth0-452e7\n  labels:\n    ipam.spidernet.io/owner-application-name: nginx\nspec:\n  subnet: 10.6.0.0/24\n  podAffinity:\n    matchLabels:\n      ipam.spidernet.io/app-name: nginx\n      extra: x\n";
    let mut p = objects(yaml).0.remove(0);
    mutate_ippool(&mut p, &[], &AdmissionConfig::default());
    let r = validate_ippool_create(&p, &Cluster::default(), &AdmissionConfig::default());
    assert_refused(
        r,
        "spec.podAffinity",
        "it's invalid to add additional podAffinity matchLabels for auto-created SpiderIPPool",
    );
    p.spec
        .pod_affinity
        .as_mut()
        .unwrap()
        .match_labels
        .remove("extra");
    assert!(validate_ippool_create(&p, &Cluster::default(), &AdmissionConfig::default()).is_ok());
}

#[test]
fn pools_controlled_by_a_subnet_stay_inside_it() {
    let subnets = [(
        "s",
        "subnet: 10.6.0.0/16\nips: [10.6.0.1-10.6.0.100]\nexcludeIPs: [10.6.0.50]",
    )];
    let r = create_pool(
        "subnet: 10.6.0.0/16\nips: [10.6.0.40-10.6.0.60]",
        &[],
        &subnets,
    );
    match r {
        Err(Error::Invalid { causes, .. }) => {
            assert_eq!(causes[0].kind, FieldErrorKind::Forbidden);
            assert!(
                causes[0].detail.starts_with(
                    "add some IP ranges [10.6.0.50] that are not contained in controller Subnet s"
                ),
                "{causes:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(create_pool(
        "subnet: 10.6.0.0/16\nips: [10.6.0.40-10.6.0.60]\nexcludeIPs: [10.6.0.50]",
        &[],
        &subnets
    )
    .is_ok());
}

// ----- SpiderIPPool: update and delete -----

fn admitted(spec: &str) -> SpiderIPPool {
    create_pool(spec, &[], &[]).unwrap()
}

#[test]
fn subnet_and_version_are_immutable() {
    let old = admitted("subnet: 10.6.0.0/24");
    let mut new = old.clone();
    new.spec.subnet = "10.7.0.0/24".into();
    assert_refused(
        validate_ippool_update(&old, &new, &Cluster::default(), &AdmissionConfig::default()),
        "spec.subnet",
        "is not changeable",
    );
    let mut new = old.clone();
    new.spec.ip_version = Some(6);
    assert_refused(
        validate_ippool_update(&old, &new, &Cluster::default(), &AdmissionConfig::default()),
        "spec.ipVersion",
        "is not changeable",
    );
    let mut new = old.clone();
    new.spec.ips = vec!["10.6.0.9".into()];
    assert!(
        validate_ippool_update(&old, &new, &Cluster::default(), &AdmissionConfig::default())
            .is_ok()
    );
}

#[test]
fn addresses_in_use_cannot_be_removed_or_excluded() {
    let mut old = admitted("subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.10]");
    old.status.allocated_ips = Some(r#"{"10.6.0.2":{"pod":"default/web-1","podUid":"u1"}}"#.into());
    let cfg = AdmissionConfig::default();
    let mut new = old.clone();
    new.spec.exclude_ips = vec!["10.6.0.2".into()];
    assert!(matches!(
        validate_ippool_update(&old, &new, &Cluster::default(), &cfg),
        Err(Error::Invalid { ref causes, .. }) if causes[0].detail.starts_with(
            "remove an IP address 10.6.0.2 that is being used by Pod default/web-1")
    ));
    let mut new = old.clone();
    new.spec.ips = vec!["10.6.0.2-10.6.0.3".into()];
    assert!(validate_ippool_update(&old, &new, &Cluster::default(), &cfg).is_ok());
    let mut new = old.clone();
    new.status.allocated_ips = Some("{corrupt".into());
    assert!(matches!(
        validate_ippool_update(&old, &new, &Cluster::default(), &cfg),
        Err(Error::Invalid { ref causes, .. }) if causes[0].kind == FieldErrorKind::Internal
    ));
}

#[test]
fn terminating_pools_accept_only_the_finalizer_removal() {
    let old = admitted("subnet: 10.6.0.0/24");
    let mut new = old.clone();
    new.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".parse().unwrap());
    let cfg = AdmissionConfig::default();
    assert!(matches!(
        validate_ippool_update(&old, &new, &Cluster::default(), &cfg),
        Err(Error::Forbidden { ref reason, .. }) if reason == "cannot update a terminating IPPool"
    ));
    new.metadata.finalizers.clear();
    assert!(validate_ippool_update(&old, &new, &Cluster::default(), &cfg).is_ok());
}

#[test]
fn deletion_check_is_opt_in() {
    let mut p = admitted("subnet: 10.6.0.0/24\nips: [10.6.0.1]");
    p.status.allocated_ip_count = Some(1);
    assert!(validate_ippool_delete(&p, &AdmissionConfig::default()).is_ok());
    let cfg = AdmissionConfig {
        enable_validating_resources_deleted_webhook: true,
        ..AdmissionConfig::default()
    };
    let err = validate_ippool_delete(&p, &cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SpiderIPPool \"p\" is forbidden: cannot delete an IPPool with allocated IPs(1)"
    );
    p.status.allocated_ip_count = Some(0);
    assert!(validate_ippool_delete(&p, &cfg).is_ok());
}

// ----- SpiderSubnet -----

fn create_subnet(
    spec: &str,
    subnets: &[(&str, &str)],
    pools: &[(&str, &str)],
) -> Result<SpiderSubnet, Error> {
    let cfg = AdmissionConfig::default();
    let mut existing_subnets = Vec::new();
    for (n, s) in subnets {
        let mut s = subnet_named(n, s);
        mutate_subnet(&mut s);
        existing_subnets.push(s);
    }
    let mut existing_pools = Vec::new();
    for (n, p) in pools {
        let mut p = pool_named(n, p);
        mutate_ippool(&mut p, &[], &cfg);
        existing_pools.push(p);
    }
    let mut s = subnet_named("s", spec);
    mutate_subnet(&mut s);
    let cluster = Cluster {
        pools: &existing_pools,
        subnets: &existing_subnets,
    };
    validate_subnet_create(&s, &cluster, &cfg).map(|_| s)
}

#[test]
fn subnet_mutation_and_create_rules() {
    let s = create_subnet(
        "subnet: 10.6.0.0/16\nips: [10.6.0.3, 10.6.0.1-10.6.0.2]",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(s.spec.ip_version, Some(4));
    assert_eq!(s.spec.ips, vec!["10.6.0.1-10.6.0.3"]);
    assert_eq!(
        s.metadata.labels["ipam.spidernet.io/subnet-cidr"],
        "10-6-0-0-16"
    );
    assert_eq!(s.metadata.finalizers, vec!["spiderpool.spidernet.io"]);

    // Identical or nested CIDRs of two subnets are refused.
    assert_refused(
        create_subnet("subnet: 10.6.0.0/16", &[("t", "subnet: 10.6.0.0/16")], &[]),
        "spec.subnet",
        "overlap with Subnet t",
    );
    assert_refused(
        create_subnet("subnet: 10.6.0.0/16", &[("t", "subnet: 10.6.8.0/24")], &[]),
        "spec.subnet",
        "overlap with Subnet t",
    );
    assert!(create_subnet("subnet: 10.6.0.0/16", &[("t", "subnet: 10.7.0.0/16")], &[]).is_ok());
    // Orphan pools: nested CIDR refused; same CIDR must fit.
    assert_refused(
        create_subnet("subnet: 10.6.0.0/16", &[], &[("p", "subnet: 10.6.1.0/24")]),
        "spec.subnet",
        "overlap with SpiderIPPool 'p' resource 'spec.subnet' 10.6.1.0/24",
    );
    assert_refused(
        create_subnet(
            "subnet: 10.6.0.0/16\nips: [10.6.0.1-10.6.0.9]",
            &[],
            &[("p", "subnet: 10.6.0.0/16\nips: [10.6.0.9-10.6.0.10]")],
        ),
        "spec.ips",
        "SpiderIPPool 'p' owns some IP addresses that SpiderSubnet 's' can't control",
    );
    assert!(create_subnet(
        "subnet: 10.6.0.0/16\nips: [10.6.0.1-10.6.0.10]",
        &[],
        &[("p", "subnet: 10.6.0.0/16\nips: [10.6.0.9-10.6.0.10]")]
    )
    .is_ok());
    // Spec rules shared with pools.
    assert_refused(
        create_subnet("subnet: 10.6.0.0/16\nips: [10.7.0.1]", &[], &[]),
        "spec.ips[0]",
        "not pertains to the 'spec.subnet' 10.6.0.0/16 of Subnet",
    );
    assert_refused(
        create_subnet(
            "subnet: 10.6.0.0/16\nips: [10.6.0.1]\ngateway: 10.6.0.1",
            &[],
            &[],
        ),
        "spec.ips[0]",
        "conflicts with 'spec.gateway'",
    );
    assert_refused(
        create_subnet(
            "subnet: 10.6.0.0/16\nroutes: [{dst: 0.0.0.0/0, gw: 10.6.0.1}]",
            &[],
            &[],
        ),
        "spec.routes[0].dst",
        "default route",
    );
}

#[test]
fn subnet_update_keeps_addresses_handed_to_pools() {
    let old = create_subnet("subnet: 10.6.0.0/16\nips: [10.6.0.1-10.6.0.100]", &[], &[]).unwrap();
    let mut old = old;
    old.status.controlled_ip_pools = Some(r#"{"p1":{"ips":["10.6.0.10-10.6.0.12"]}}"#.into());
    let cfg = AdmissionConfig::default();
    let mut new = old.clone();
    new.spec.ips = vec!["10.6.0.1-10.6.0.10".into()];
    assert!(matches!(
        validate_subnet_update(&old, &new, &cfg),
        Err(Error::Invalid { ref causes, .. }) if causes[0].detail.starts_with(
            "remove some IP ranges [10.6.0.11-10.6.0.12] that is being used by IPPool p1")
    ));
    new.spec.ips = vec!["10.6.0.5-10.6.0.20".into()];
    assert!(validate_subnet_update(&old, &new, &cfg).is_ok());
    new.spec.subnet = "10.7.0.0/16".into();
    assert_refused(
        validate_subnet_update(&old, &new, &cfg),
        "spec.subnet",
        "is not changeable",
    );
    let mut term = old.clone();
    term.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".parse().unwrap());
    assert!(matches!(
        validate_subnet_update(&old, &term, &cfg),
        Err(Error::Forbidden { .. })
    ));
}

// ----- SpiderReservedIP -----

#[test]
fn reserved_ip_rules() {
    let cfg = AdmissionConfig::default();
    let mut r = reserved("ips: [10.6.168.132, 10.6.168.131]");
    mutate_reservedip(&mut r);
    assert_eq!(r.spec.ip_version, Some(4));
    assert_eq!(r.spec.ips, vec!["10.6.168.131-10.6.168.132"]);
    assert!(r.metadata.finalizers.is_empty());
    assert!(validate_reservedip_create(&r, &cfg).is_ok());

    let mut empty = reserved("ips: []");
    mutate_reservedip(&mut empty);
    assert_refused(
        validate_reservedip_create(&empty, &cfg),
        "spec.ipVersion",
        "'spec.ips' is empty or 'spec.ips[0]' may be invalid",
    );

    let mut bad = reserved("ipVersion: 4\nips: [10.0.0.1, fd00::1]");
    mutate_reservedip(&mut bad);
    assert_refused(
        validate_reservedip_create(&bad, &cfg),
        "spec.ips[1]",
        "invalid IP range format in IPv4 'fd00::1'",
    );

    let mut new = r.clone();
    new.spec.ip_version = Some(6);
    new.spec.ips = vec!["fd00::1".into()];
    assert_refused(
        validate_reservedip_update(&r, &new, &cfg),
        "spec.ipVersion",
        "is not changeable",
    );
    let mut deleting = r.clone();
    deleting.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".parse().unwrap());
    assert!(validate_reservedip_update(&r, &deleting, &cfg).is_ok());
    assert!(validate_reservedip_update(&deleting, &deleting, &cfg).is_err());
}

#[test]
fn error_messages_name_object_path_and_value() {
    let err = create_pool("subnet: 172.18.40.0/24\nips: [172.18.40.300]", &[], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SpiderIPPool \"p\" is invalid: spec.ips[0]: Invalid value: \"172.18.40.300\": invalid IP range format in IPv4 '172.18.40.300'"
    );
}

#[test]
fn auto_pool_addresses_must_equal_what_the_subnet_recorded() {
    let cfg = AdmissionConfig::default();
    let mut subnet = subnet_named("s", "subnet: 10.6.0.0/16\nips: [10.6.0.1-10.6.0.100]");
    mutate_subnet(&mut subnet);
    subnet.status.controlled_ip_pools =
        Some(r#"{"auto4-web-eth0-1a2b3":{"ips":["10.6.0.1-10.6.0.3"],"application":"apps_v1_Deployment_default_web"}}"#.into());
    let yaml = "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata:\n  name: auto4-web-eth0-1a2b3\n  labels:\n    ipam.spidernet.io/owner-application-name: web\nspec:\n  subnet: 10.6.0.0/16\n  ips: [10.6.0.1-10.6.0.3]\n";
    let mut p = objects(yaml).0.remove(0);
    mutate_ippool(&mut p, std::slice::from_ref(&subnet), &cfg);
    let subnets = [subnet];
    let cluster = Cluster {
        pools: &[],
        subnets: &subnets,
    };
    assert!(validate_ippool_create(&p, &cluster, &cfg).is_ok());
    let old = p.clone();
    p.spec.ips = vec!["10.6.0.1-10.6.0.4".into()];
    assert!(matches!(
        validate_ippool_update(&old, &p, &cluster, &cfg),
        Err(Error::Invalid { ref causes, .. }) if causes[0].detail.starts_with(
            "it's illegal to update AutoPool.Spec.IPs that are different from corresponding SpiderSubnet.Status.ControlledIPPools")
    ));
}

#[test]
fn disabled_families_and_subnet_deletion() {
    let no_v4 = AdmissionConfig {
        enable_ipv4: false,
        ..AdmissionConfig::default()
    };
    let mut r = reserved("ips: [10.0.0.1]");
    mutate_reservedip(&mut r);
    assert_refused(
        validate_reservedip_create(&r, &no_v4),
        "spec.ipVersion",
        "IPv4 is disabled",
    );
    let mut s = subnet_named("s", "subnet: 10.0.0.0/8");
    mutate_subnet(&mut s);
    assert_refused(
        validate_subnet_create(&s, &Cluster::default(), &no_v4),
        "spec.ipVersion",
        "IPv4 is disabled",
    );
    let mut bad = subnet_named("s", "subnet: 10.0.0.1/8");
    mutate_subnet(&mut bad);
    assert_refused(
        validate_subnet_create(&bad, &Cluster::default(), &AdmissionConfig::default()),
        "spec.subnet",
        "unformatted subnet 10.0.0.1/8",
    );

    s.status.allocated_ip_count = Some(3);
    let strict = AdmissionConfig {
        enable_validating_resources_deleted_webhook: true,
        ..AdmissionConfig::default()
    };
    assert!(matches!(
        validate_subnet_delete(&s, &strict),
        Err(Error::Forbidden { .. })
    ));
    assert!(validate_subnet_delete(&s, &AdmissionConfig::default()).is_ok());
    s.status.allocated_ip_count = Some(0);
    assert!(validate_subnet_delete(&s, &strict).is_ok());
}
