//! Admission of SpiderIPPool: defaulting, then create/update/delete validation.

use std::collections::BTreeMap;

use super::labels::check_selector;
use super::spec::{
    check_address_spec, check_cidr, check_ip_version, check_no_nested_cidr, check_update_identity,
    go_list, version_causes, TOTAL_IPS_NOTE,
};
use super::{
    check_name, invalid, terminating_update, AdmissionConfig, Cluster, FieldError, FieldErrorKind,
};
use crate::annotations::{
    AUTO_POOL_AFFINITY_KEYS, LABEL_IPPOOL_CIDR, LABEL_OWNER_APPLICATION_NAME,
    LABEL_OWNER_SPIDER_SUBNET,
};
use crate::ip::{cidr_to_label_value, merge_ip_ranges, parse_cidr, IpFamily, IpSet};
use crate::model::{
    AddressSpec, OwnerReference, SpiderIPPool, SpiderSubnet, API_VERSION, FINALIZER,
};
use crate::Error;

const KIND: &str = SpiderIPPool::KIND;

/// Whether the pool was created for an application from a SpiderSubnet (it carries the
/// `ipam.spidernet.io/owner-application-name` label).
pub fn is_auto_created(pool: &SpiderIPPool) -> bool {
    pool.metadata
        .labels
        .contains_key(LABEL_OWNER_APPLICATION_NAME)
}

/// Spiderpool's mutating webhook for pools, plus the CRD's schema defaults. In order: nothing
/// for a terminating pool; the finalizer; `ipVersion` from `subnet`; the
/// `ipam.spidernet.io/ippool-cidr` label; with SpiderSubnet enabled, the SpiderSubnet of the
/// very same `spec.subnet` becomes the controller owner and the pool inherits its gateway
/// (when it has none) and routes (when absent); `ips` and `excludeIPs` of more than one entry
/// are merged into canonical ranges; `default`/`disable` default to false.
///
/// Like Spiderpool, a step that cannot be done (an unparsable subnet, a range that does not
/// parse) leaves the field as it is: validation then reports it.
pub fn mutate_ippool(pool: &mut SpiderIPPool, subnets: &[SpiderSubnet], cfg: &AdmissionConfig) {
    if pool.metadata.is_terminating() {
        return;
    }
    if !pool.metadata.finalizers.iter().any(|f| f == FINALIZER) {
        pool.metadata.finalizers.push(FINALIZER.to_string());
    }
    pool.spec.default.get_or_insert(false);
    pool.spec.disable.get_or_insert(false);
    if pool.spec.ip_version.is_none() {
        match parse_cidr(None, &pool.spec.subnet) {
            Ok(net) => pool.spec.ip_version = Some(IpFamily::of(net.addr()).version()),
            Err(_) => return,
        }
    }
    let Ok(family) = pool.spec.family() else {
        return;
    };
    if parse_cidr(Some(family), &pool.spec.subnet).is_err() {
        return;
    }
    pool.metadata.labels.insert(
        LABEL_IPPOOL_CIDR.to_string(),
        cidr_to_label_value(&pool.spec.subnet),
    );
    if cfg.enable_spider_subnet {
        set_controller_subnet(pool, subnets);
    }
    for list in [&mut pool.spec.ips, &mut pool.spec.exclude_ips] {
        if list.len() > 1 {
            if let Ok(merged) = merge_ip_ranges(family, list) {
                *list = merged;
            }
        }
    }
}

fn set_controller_subnet(pool: &mut SpiderIPPool, subnets: &[SpiderSubnet]) {
    let labelled = pool.metadata.labels.get(LABEL_OWNER_SPIDER_SUBNET);
    if labelled.is_some()
        && labelled.map(String::as_str) == pool.metadata.controller().map(|o| o.name.as_str())
    {
        return;
    }
    let Some(subnet) = subnets.iter().find(|s| s.spec.subnet == pool.spec.subnet) else {
        return;
    };
    let controlled = pool
        .metadata
        .controller()
        .is_some_and(|o| o.kind == SpiderSubnet::KIND && o.name == subnet.metadata.name);
    if !controlled {
        pool.metadata
            .owner_references
            .retain(|o| o.controller != Some(true));
        pool.metadata.owner_references.push(OwnerReference {
            api_version: API_VERSION.to_string(),
            kind: SpiderSubnet::KIND.to_string(),
            name: subnet.metadata.name.clone(),
            uid: subnet.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
            extra: Default::default(),
        });
    }
    pool.metadata.labels.insert(
        LABEL_OWNER_SPIDER_SUBNET.to_string(),
        subnet.metadata.name.clone(),
    );
    if pool.spec.gateway.is_none() {
        pool.spec.gateway = subnet.spec.gateway.clone();
    }
    if pool.spec.routes.is_none() && !subnet.spec.routes().is_empty() {
        pool.spec.routes = subnet.spec.routes.clone();
    }
}

/// Validation of a new pool against the pools and subnets that exist.
pub fn validate_ippool_create(
    pool: &SpiderIPPool,
    cluster: &Cluster<'_>,
    cfg: &AdmissionConfig,
) -> Result<(), Error> {
    let name = pool.metadata.name.as_str();
    check_name(KIND, &pool.metadata)?;
    let family = check_ip_version(
        pool.spec.ip_version,
        cfg,
        "is not generated correctly, 'spec.subnet' may be invalid",
    )
    .map_err(|e| {
        let causes = version_causes(e, pool.spec.ip_version, &pool.spec.subnet);
        invalid(KIND, name, causes)
    })?;
    let net = check_cidr(family, &pool.spec.subnet).map_err(|e| invalid(KIND, name, vec![e]))?;
    if cluster.pools.iter().any(|p| p.metadata.name == name) {
        return Err(Error::AlreadyExists {
            kind: KIND.to_string(),
            name: name.to_string(),
        });
    }
    let one = |e: FieldError| invalid(KIND, name, vec![e]);
    let pools = cluster
        .pools
        .iter()
        .map(|p| (p.metadata.name.as_str(), &p.spec as &dyn AddressSpec));
    check_no_nested_cidr(family, &net, &pool.spec.subnet, ("IPPool", true), pools).map_err(one)?;
    // Ours (spec/README.md decision 11): a pool may not nest in a SpiderSubnet's CIDR
    // without being exactly that CIDR.
    let subnets = cluster
        .subnets
        .iter()
        .map(|s| (s.metadata.name.as_str(), &s.spec as &dyn AddressSpec));
    check_no_nested_cidr(
        family,
        &net,
        &pool.spec.subnet,
        ("SpiderSubnet", true),
        subnets,
    )
    .map_err(one)?;
    let mut errs = Vec::new();
    check_spec(pool, family, &net, cluster, &mut errs);
    errs.extend(check_affinities(pool));
    if !errs.is_empty() {
        return Err(invalid(KIND, name, errs));
    }
    if cfg.enable_spider_subnet {
        check_within_controller_subnet(pool, cluster).map_err(|e| invalid(KIND, name, vec![e]))?;
    }
    Ok(())
}

/// Validation of a change from `old` to `new`.
pub fn validate_ippool_update(
    old: &SpiderIPPool,
    new: &SpiderIPPool,
    cluster: &Cluster<'_>,
    cfg: &AdmissionConfig,
) -> Result<(), Error> {
    let name = new.metadata.name.as_str();
    if let Some(verdict) =
        terminating_update(KIND, &new.metadata, "cannot update a terminating IPPool")
    {
        return verdict;
    }
    let (family, net) = check_update_identity(&old.spec, &new.spec, cfg)
        .map_err(|e| invalid(KIND, name, vec![e]))?;
    let mut errs = Vec::new();
    let usable = check_spec(new, family, &net, cluster, &mut errs);
    errs.extend(check_affinities(new));
    if !errs.is_empty() {
        return Err(invalid(KIND, name, errs));
    }
    if let Some(usable) = usable {
        check_in_use(new, &usable).map_err(|e| invalid(KIND, name, vec![e]))?;
    }
    if cfg.enable_spider_subnet {
        check_within_controller_subnet(new, cluster).map_err(|e| invalid(KIND, name, vec![e]))?;
    }
    Ok(())
}

/// Validation of a deletion: with `enableValidatingResourcesDeletedWebhook`, a pool that still
/// has allocations cannot be deleted.
pub fn validate_ippool_delete(pool: &SpiderIPPool, cfg: &AdmissionConfig) -> Result<(), Error> {
    if !cfg.enable_validating_resources_deleted_webhook {
        return Ok(());
    }
    match pool.status.allocated_ip_count {
        Some(n) if n > 0 => Err(Error::Forbidden {
            kind: KIND.to_string(),
            name: pool.metadata.name.clone(),
            reason: format!("cannot delete an IPPool with allocated IPs({n})"),
        }),
        _ => Ok(()),
    }
}

/// Ranges, gateway, routes, and no usable address shared with a sibling pool of the same
/// `spec.subnet`. Returns the usable set when the ranges are valid.
fn check_spec(
    pool: &SpiderIPPool,
    family: IpFamily,
    net: &ipnet::IpNet,
    cluster: &Cluster<'_>,
    errs: &mut Vec<FieldError>,
) -> Option<IpSet> {
    let usable = check_address_spec(family, net, &pool.spec, "IPPool", true, errs)?;
    for other in cluster.pools {
        if other.metadata.name == pool.metadata.name || other.spec.subnet != pool.spec.subnet {
            continue;
        }
        let Ok(theirs) = other.spec.total_ips() else {
            continue;
        };
        let shared = usable.intersection(&theirs);
        if !shared.is_empty() {
            errs.push(FieldError::new(
                FieldErrorKind::Forbidden,
                "spec.ips",
                "",
                format!(
                    "overlap with IPPool {} in IP ranges {}, {TOTAL_IPS_NOTE}",
                    other.metadata.name,
                    go_list(&shared)
                ),
            ));
        }
    }
    Some(usable)
}

fn check_affinities(pool: &SpiderIPPool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(aff) = &pool.spec.pod_affinity {
        let path = "spec.podAffinity";
        let shown = serde_json::to_string(aff).unwrap_or_default();
        if is_auto_created(pool) {
            if aff
                .match_labels
                .keys()
                .any(|k| !AUTO_POOL_AFFINITY_KEYS.contains(&k.as_str()))
            {
                errs.push(FieldError::new(
                    FieldErrorKind::Invalid,
                    path,
                    &shown,
                    "it's invalid to add additional podAffinity matchLabels for auto-created SpiderIPPool",
                ));
            }
            if !aff.match_expressions.is_empty() {
                errs.push(FieldError::new(
                    FieldErrorKind::Invalid,
                    path,
                    &shown,
                    "it's invalid to add additional podAffinity matchExpressions for auto-created SpiderIPPool",
                ));
            }
        } else {
            errs.extend(check_selector(aff, path));
            if aff.is_empty() {
                errs.push(FieldError::new(
                    FieldErrorKind::Invalid,
                    path,
                    &shown,
                    "empty podAffinity is invalid for SpiderIPPool",
                ));
            }
        }
    }
    for (path, sel) in [
        ("spec.namespaceAffinity", &pool.spec.namespace_affinity),
        ("spec.nodeAffinity", &pool.spec.node_affinity),
    ] {
        if let Some(sel) = sel {
            errs.extend(check_selector(sel, path));
        }
    }
    errs
}

/// Every allocated address must stay usable.
fn check_in_use(pool: &SpiderIPPool, usable: &IpSet) -> Result<(), FieldError> {
    let records = pool.allocations().map_err(|e| {
        FieldError::new(
            FieldErrorKind::Internal,
            "status.allocatedIPs",
            "",
            e.to_string(),
        )
    })?;
    let mut gone: BTreeMap<std::net::IpAddr, &str> = BTreeMap::new();
    for (ip, rec) in &records {
        match ip.parse::<std::net::IpAddr>() {
            Ok(addr) if usable.contains(addr) => {}
            Ok(addr) => {
                gone.insert(addr, &rec.pod);
            }
            Err(_) => {
                return Err(FieldError::new(
                    FieldErrorKind::Internal,
                    "status.allocatedIPs",
                    ip,
                    "allocation record key is not an IP address",
                ))
            }
        }
    }
    let Some((ip, pod)) = gone.iter().next() else {
        return Ok(());
    };
    let more = match gone.len() {
        1 => String::new(),
        n => format!(" (and {} more addresses in use)", n - 1),
    };
    Err(FieldError::new(
        FieldErrorKind::Forbidden,
        "spec.ips",
        "",
        format!(
            "remove an IP address {ip} that is being used by Pod {pod}, {TOTAL_IPS_NOTE}{more}"
        ),
    ))
}

/// With SpiderSubnet enabled, a pool controlled by a subnet stays inside the subnet's usable
/// addresses; an auto-created pool's addresses are exactly what the subnet recorded for it.
fn check_within_controller_subnet(
    pool: &SpiderIPPool,
    cluster: &Cluster<'_>,
) -> Result<(), FieldError> {
    let Some(owner) = pool
        .metadata
        .controller()
        .filter(|o| o.kind == SpiderSubnet::KIND)
    else {
        return Ok(());
    };
    let internal = |path: &str, e: String| FieldError::new(FieldErrorKind::Internal, path, "", e);
    let usable = pool
        .spec
        .total_ips()
        .map_err(|e| internal("spec.ips", e.to_string()))?;
    if usable.is_empty() {
        return Ok(());
    }
    let subnet = cluster
        .subnets
        .iter()
        .find(|s| s.metadata.name == owner.name)
        .ok_or_else(|| {
            internal(
                "spec.subnet",
                format!("failed to get controller Subnet {}: not found", owner.name),
            )
        })?;
    let subnet_ips = subnet
        .spec
        .total_ips()
        .map_err(|e| internal("spec.ips", e.to_string()))?;
    let outside = usable.difference(&subnet_ips);
    if !outside.is_empty() {
        return Err(FieldError::new(
            FieldErrorKind::Forbidden,
            "spec.ips",
            "",
            format!(
                "add some IP ranges {} that are not contained in controller Subnet {}, {TOTAL_IPS_NOTE}",
                go_list(&outside),
                subnet.metadata.name
            ),
        ));
    }
    if is_auto_created(pool) {
        let controlled = subnet
            .controlled_pools()
            .map_err(|e| internal("spec.subnet", e.to_string()))?;
        let family = pool
            .spec
            .family()
            .map_err(|e| internal("spec.ipVersion", e.to_string()))?;
        let recorded = match controlled.get(&pool.metadata.name) {
            Some(pre) => crate::ip::parse_ip_ranges(family, &pre.ips)
                .map(|r| IpSet::from_ranges(family, None, &r))
                .map_err(|e| internal("spec.subnet", e.to_string()))?,
            None => IpSet::new(family),
        };
        if recorded != usable {
            return Err(FieldError::new(
                FieldErrorKind::Forbidden,
                "spec.ips",
                "",
                "it's illegal to update AutoPool.Spec.IPs that are different from corresponding \
                 SpiderSubnet.Status.ControlledIPPools",
            ));
        }
    }
    Ok(())
}
