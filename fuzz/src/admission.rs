//! Admission of what parsed: the webhooks' defaulting and validation of every pool, subnet
//! and reserved IP against the others, plus the derived views (sets, counts, tables).
//! Checked: no panic, no hang on a huge range; defaulting is idempotent; an object admitted
//! on create is admitted as an update to itself.

use spiderpool_core::ip::IpFamily;
use spiderpool_core::model::{
    AddressSpec, Object, SpiderEndpoint, SpiderIPPool, SpiderReservedIP, SpiderSubnet,
};
use spiderpool_core::table;
use spiderpool_core::validate::{
    mutate_ippool, mutate_reservedip, mutate_subnet, validate_ippool_create,
    validate_ippool_delete, validate_ippool_update, validate_reservedip_create,
    validate_reservedip_update, validate_subnet_create, validate_subnet_delete,
    validate_subnet_update, AdmissionConfig, Cluster,
};

/// Admits `objects` under the default configuration and with the optional switches flipped.
pub fn admit(objects: &[Object]) {
    let mut pools = Vec::new();
    let mut subnets = Vec::new();
    let mut reserved = Vec::new();
    let mut endpoints = Vec::new();
    for o in objects.iter().take(16) {
        match o {
            Object::IpPool(p) => pools.push(p.clone()),
            Object::Subnet(s) => subnets.push(s.clone()),
            Object::ReservedIp(r) => reserved.push(r.clone()),
            Object::Endpoint(e) => endpoints.push(e.clone()),
            Object::Other(_) => {}
        }
    }
    let configs = [
        AdmissionConfig::default(),
        AdmissionConfig {
            enable_ipv6: false,
            enable_spider_subnet: false,
            enable_validating_resources_deleted_webhook: true,
            ..AdmissionConfig::default()
        },
    ];
    for cfg in &configs {
        admit_with(cfg, &pools, &subnets, &reserved);
    }
    views(&pools, &subnets, &reserved, &endpoints);
}

fn admit_with(
    cfg: &AdmissionConfig,
    pools: &[SpiderIPPool],
    subnets: &[SpiderSubnet],
    reserved: &[SpiderReservedIP],
) {
    let mut admitted_subnets: Vec<SpiderSubnet> = Vec::new();
    for s in subnets {
        let mut s = s.clone();
        mutate_subnet(&mut s);
        let mut twice = s.clone();
        mutate_subnet(&mut twice);
        assert_eq!(twice, s, "mutate_subnet is idempotent");
        let cluster = Cluster {
            pools,
            subnets: &admitted_subnets,
        };
        let created = validate_subnet_create(&s, &cluster, cfg);
        if created.is_ok() && !s.metadata.is_terminating() {
            validate_subnet_update(&s, &s, cfg)
                .unwrap_or_else(|e| panic!("admitted subnet refused as an update of itself: {e}"));
            admitted_subnets.push(s.clone());
        }
        let _ = validate_subnet_delete(&s, cfg);
        if let Some(old) = subnets.first() {
            let _ = validate_subnet_update(old, &s, cfg);
        }
    }
    let mut admitted_pools: Vec<SpiderIPPool> = Vec::new();
    for p in pools {
        let mut p = p.clone();
        mutate_ippool(&mut p, &admitted_subnets, cfg);
        let mut twice = p.clone();
        mutate_ippool(&mut twice, &admitted_subnets, cfg);
        assert_eq!(twice, p, "mutate_ippool is idempotent");
        let cluster = Cluster {
            pools: &admitted_pools,
            subnets: &admitted_subnets,
        };
        let created = validate_ippool_create(&p, &cluster, cfg).is_ok();
        let _ = validate_ippool_delete(&p, cfg);
        if let Some(old) = pools.first() {
            let _ = validate_ippool_update(old, &p, &cluster, cfg);
        }
        if created {
            admitted_pools.push(p.clone());
        }
    }
    for r in reserved {
        let mut r = r.clone();
        mutate_reservedip(&mut r);
        let mut twice = r.clone();
        mutate_reservedip(&mut twice);
        assert_eq!(twice, r, "mutate_reservedip is idempotent");
        if validate_reservedip_create(&r, cfg).is_ok() && !r.metadata.is_terminating() {
            validate_reservedip_update(&r, &r, cfg).unwrap_or_else(|e| {
                panic!("admitted reserved IP refused as an update of itself: {e}")
            });
        }
    }
}

fn views(
    pools: &[SpiderIPPool],
    subnets: &[SpiderSubnet],
    reserved: &[SpiderReservedIP],
    endpoints: &[SpiderEndpoint],
) {
    for family in [IpFamily::V4, IpFamily::V6] {
        let set = SpiderReservedIP::reserved_set(reserved, family);
        set.validate_invariants().unwrap();
        for p in pools {
            if let Ok(free) = p.free_ips(&set) {
                free.validate_invariants().unwrap();
                let _ = free.first();
                let _ = free.len();
            }
        }
    }
    for p in pools {
        let mut p = p.clone();
        let _ = p.refresh_status();
        let _ = p.allocated_set();
        let _ = p.unknown_fields();
    }
    for s in subnets {
        let mut s = s.clone();
        let _ = s.spec.total_ips();
        let _ = s.controlled_pools();
        let _ = s.refresh_status(pools);
    }
    let _ = table::ippool_table(pools, true);
    let _ = table::subnet_table(subnets);
    let _ = table::reservedip_table(reserved);
    let _ = table::endpoint_table(endpoints, true);
}
