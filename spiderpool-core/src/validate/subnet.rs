//! Admission of SpiderSubnet: defaulting, then create/update/delete validation.

use super::spec::{
    check_address_spec, check_cidr, check_ip_version, check_no_nested_cidr, check_update_identity,
    cidrs_overlap, go_list, version_causes,
};
use super::{
    check_name, invalid, terminating_update, AdmissionConfig, Cluster, FieldError, FieldErrorKind,
};
use crate::annotations::LABEL_SUBNET_CIDR;
use crate::ip::{
    cidr_to_label_value, merge_ip_ranges, parse_cidr, parse_ip_ranges, IpFamily, IpSet,
};
use crate::model::{AddressSpec, SpiderSubnet, FINALIZER};
use crate::Error;

const KIND: &str = SpiderSubnet::KIND;

/// Spiderpool's mutating webhook for subnets: nothing for a terminating subnet; the finalizer;
/// `ipVersion` from `subnet`; the `ipam.spidernet.io/subnet-cidr` label; `ips` and
/// `excludeIPs` of more than one entry merged into canonical ranges.
pub fn mutate_subnet(subnet: &mut SpiderSubnet) {
    if subnet.metadata.is_terminating() {
        return;
    }
    if !subnet.metadata.finalizers.iter().any(|f| f == FINALIZER) {
        subnet.metadata.finalizers.push(FINALIZER.to_string());
    }
    if subnet.spec.ip_version.is_none() {
        match parse_cidr(None, &subnet.spec.subnet) {
            Ok(net) => subnet.spec.ip_version = Some(IpFamily::of(net.addr()).version()),
            Err(_) => return,
        }
    }
    let Ok(family) = subnet.spec.family() else {
        return;
    };
    if parse_cidr(Some(family), &subnet.spec.subnet).is_err() {
        return;
    }
    subnet.metadata.labels.insert(
        LABEL_SUBNET_CIDR.to_string(),
        cidr_to_label_value(&subnet.spec.subnet),
    );
    for list in [&mut subnet.spec.ips, &mut subnet.spec.exclude_ips] {
        if list.len() > 1 {
            if let Ok(merged) = merge_ip_ranges(family, list) {
                *list = merged;
            }
        }
    }
}

/// Validation of a new subnet against the subnets and pools that exist.
pub fn validate_subnet_create(
    subnet: &SpiderSubnet,
    cluster: &Cluster<'_>,
    cfg: &AdmissionConfig,
) -> Result<(), Error> {
    let name = subnet.metadata.name.as_str();
    check_name(KIND, &subnet.metadata)?;
    // A status that does not decode would be refused by every later update: refuse it now.
    subnet.controlled_pools()?;
    let one = |e: FieldError| invalid(KIND, name, vec![e]);
    let family = check_ip_version(
        subnet.spec.ip_version,
        cfg,
        "is not generated correctly, 'spec.subnet' may be invalid",
    )
    .map_err(|e| {
        let causes = version_causes(e, subnet.spec.ip_version, &subnet.spec.subnet);
        invalid(KIND, name, causes)
    })?;
    let net = check_cidr(family, &subnet.spec.subnet).map_err(one)?;
    if cluster.subnets.iter().any(|s| s.metadata.name == name) {
        return Err(Error::AlreadyExists {
            kind: KIND.to_string(),
            name: name.to_string(),
        });
    }
    // Unlike pools, two subnets may not even share one CIDR.
    let others = cluster
        .subnets
        .iter()
        .map(|s| (s.metadata.name.as_str(), &s.spec as &dyn AddressSpec));
    check_no_nested_cidr(family, &net, &subnet.spec.subnet, ("Subnet", false), others)
        .map_err(one)?;
    let mut errs = Vec::new();
    let usable = check_address_spec(family, &net, &subnet.spec, "Subnet", false, &mut errs);
    if !errs.is_empty() {
        return Err(invalid(KIND, name, errs));
    }
    check_orphan_pools(subnet, family, &net, usable.as_ref(), cluster).map_err(one)
}

/// Existing pools of the family: a pool of a nested CIDR is refused; a pool of the very same
/// CIDR (which the subnet will control) must hold only addresses the subnet can give.
fn check_orphan_pools(
    subnet: &SpiderSubnet,
    family: IpFamily,
    net: &ipnet::IpNet,
    usable: Option<&IpSet>,
    cluster: &Cluster<'_>,
) -> Result<(), FieldError> {
    for pool in cluster.pools {
        if pool.spec.family().ok() != Some(family) {
            continue;
        }
        if pool.spec.subnet != subnet.spec.subnet {
            if let Ok(pool_net) = pool.spec.subnet_net() {
                if cidrs_overlap(net, &pool_net) {
                    return Err(FieldError::new(
                        FieldErrorKind::Invalid,
                        "spec.subnet",
                        &subnet.spec.subnet,
                        format!(
                            "overlap with SpiderIPPool '{}' resource 'spec.subnet' {}",
                            pool.metadata.name, pool.spec.subnet
                        ),
                    ));
                }
            }
        } else if let (Some(usable), Ok(pool_ips)) = (usable, pool.spec.total_ips()) {
            if !pool_ips.is_subset(usable) {
                return Err(FieldError::new(
                    FieldErrorKind::Invalid,
                    "spec.ips",
                    format!("{:?}", subnet.spec.ips),
                    format!(
                        "SpiderIPPool '{}' owns some IP addresses that SpiderSubnet '{}' can't control",
                        pool.metadata.name, subnet.metadata.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Validation of a change from `old` to `new`.
pub fn validate_subnet_update(
    old: &SpiderSubnet,
    new: &SpiderSubnet,
    cfg: &AdmissionConfig,
) -> Result<(), Error> {
    let name = new.metadata.name.as_str();
    let one = |e: FieldError| invalid(KIND, name, vec![e]);
    if let Some(verdict) =
        terminating_update(KIND, &new.metadata, "cannot update a terminating Subnet")
    {
        return verdict;
    }
    let (family, net) = check_update_identity(&old.spec, &new.spec, cfg).map_err(one)?;
    let mut errs = Vec::new();
    let usable = check_address_spec(family, &net, &new.spec, "Subnet", false, &mut errs);
    if !errs.is_empty() {
        return Err(invalid(KIND, name, errs));
    }
    if let Some(usable) = usable {
        check_handed_out(new, family, &usable).map_err(one)?;
    }
    Ok(())
}

/// Addresses handed to pools (`status.controlledIPPools`) must stay in the subnet.
fn check_handed_out(
    subnet: &SpiderSubnet,
    family: IpFamily,
    usable: &IpSet,
) -> Result<(), FieldError> {
    let pools = subnet.controlled_pools().map_err(|e| {
        FieldError::new(
            FieldErrorKind::Internal,
            "status.controlledIPPools",
            "",
            e.to_string(),
        )
    })?;
    for (pool, pre) in &pools {
        let ranges = parse_ip_ranges(family, &pre.ips).map_err(|e| {
            FieldError::new(
                FieldErrorKind::Internal,
                "status.controlledIPPools",
                pool,
                format!("failed to parse the pre-allocation of the IPPool {pool}: {e}"),
            )
        })?;
        let given = IpSet::from_ranges(family, None, &ranges);
        let removed = given.difference(usable);
        if !removed.is_empty() {
            return Err(FieldError::new(
                FieldErrorKind::Forbidden,
                "spec.ips",
                "",
                format!(
                    "remove some IP ranges {} that is being used by IPPool {pool}, total IP \
                     addresses of an Subnet are jointly determined by 'spec.ips' and 'spec.excludeIPs'",
                    go_list(&removed)
                ),
            ));
        }
    }
    Ok(())
}

/// Validation of a deletion: with `enableValidatingResourcesDeletedWebhook`, a subnet that
/// still hands addresses to pools cannot be deleted.
pub fn validate_subnet_delete(subnet: &SpiderSubnet, cfg: &AdmissionConfig) -> Result<(), Error> {
    if !cfg.enable_validating_resources_deleted_webhook {
        return Ok(());
    }
    match subnet.status.allocated_ip_count {
        Some(n) if n > 0 => Err(Error::Forbidden {
            kind: KIND.to_string(),
            name: subnet.metadata.name.clone(),
            reason: format!("cannot delete a Subnet with allocated IPs({n})"),
        }),
        _ => Ok(()),
    }
}
