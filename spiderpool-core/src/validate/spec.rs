//! Checks shared by SpiderIPPool and SpiderSubnet: family, CIDR, ranges, gateway, routes.

use ipnet::IpNet;

use super::{AdmissionConfig, FieldError, FieldErrorKind};
use crate::ip::{parse_cidr, parse_cidr_canonical, parse_ip, IpFamily, IpRange, IpSet};
use crate::model::{AddressSpec, Route};

pub(crate) const TOTAL_IPS_NOTE: &str =
    "total IP addresses of an IPPool are jointly determined by 'spec.ips' and 'spec.excludeIPs'";

/// `spec.ipVersion`: set, 4 or 6, and of an enabled family.
pub(crate) fn check_ip_version(
    version: Option<i64>,
    cfg: &AdmissionConfig,
    missing_detail: &str,
) -> Result<IpFamily, FieldError> {
    let path = "spec.ipVersion";
    let Some(v) = version else {
        return Err(FieldError::new(
            FieldErrorKind::Invalid,
            path,
            "null",
            missing_detail,
        ));
    };
    let family = IpFamily::from_version(v).map_err(|_| {
        FieldError::new(
            FieldErrorKind::NotSupported,
            path,
            v.to_string(),
            "supported values: \"4\", \"6\"",
        )
    })?;
    let enabled = match family {
        IpFamily::V4 => cfg.enable_ipv4,
        IpFamily::V6 => cfg.enable_ipv6,
    };
    if !enabled {
        return Err(FieldError::new(
            FieldErrorKind::Forbidden,
            path,
            "",
            format!("{} is disabled", family.label()),
        ));
    }
    Ok(family)
}

/// The causes when `spec.ipVersion` is refused: that error, and when the version was to be
/// derived from `spec.subnet` and could not be, the subnet and its value.
pub(crate) fn version_causes(e: FieldError, version: Option<i64>, subnet: &str) -> Vec<FieldError> {
    let mut causes = vec![e];
    if version.is_none() {
        if let Err(why) = parse_cidr(None, subnet) {
            causes.push(FieldError::new(
                FieldErrorKind::Invalid,
                "spec.subnet",
                subnet,
                why.to_string(),
            ));
        }
    }
    causes
}

/// `spec.subnet`: a CIDR of the family, written canonically.
pub(crate) fn check_cidr(family: IpFamily, subnet: &str) -> Result<IpNet, FieldError> {
    let invalid = |e: crate::Error| {
        FieldError::new(
            FieldErrorKind::Invalid,
            "spec.subnet",
            subnet,
            e.to_string(),
        )
    };
    parse_cidr(Some(family), subnet).map_err(invalid)?;
    parse_cidr_canonical(Some(family), subnet).map_err(invalid)
}

/// The ranges of `list` (`spec.ips` or `spec.excludeIPs`): each a valid range of the family
/// inside `net`. With `disjoint`, entries must not overlap each other (Spiderpool's `NewCIDR`
/// rule for a pool's `ips`). Returns the parsed ranges, or every error found.
pub(crate) fn check_ranges(
    family: IpFamily,
    net: &IpNet,
    list: &[String],
    field: &str,
    owner_word: &str,
    disjoint: bool,
) -> Result<Vec<IpRange>, Vec<FieldError>> {
    let mut errs = Vec::new();
    let mut ranges: Vec<(usize, IpRange)> = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        let path = format!("{field}[{i}]");
        match IpRange::parse(Some(family), raw) {
            Err(e) => errs.push(FieldError::new(
                FieldErrorKind::Invalid,
                path,
                raw,
                e.to_string(),
            )),
            Ok(r) if !r.is_within(net) => errs.push(FieldError::new(
                FieldErrorKind::Invalid,
                path,
                raw,
                format!("not pertains to the 'spec.subnet' {net} of {owner_word}"),
            )),
            Ok(r) => {
                if disjoint {
                    if let Some((j, other)) = ranges.iter().find(|(_, o)| o.overlaps(&r)) {
                        let (a, b) = (r.interval(), other.interval());
                        let how = if a.0 >= b.0 && a.1 <= b.1 {
                            "is already covered by"
                        } else if a.0 <= b.0 && a.1 >= b.1 {
                            "covers"
                        } else {
                            "overlaps with"
                        };
                        errs.push(FieldError::new(
                            FieldErrorKind::Invalid,
                            path,
                            raw,
                            format!("range {raw} {how} {} ({field}[{j}])", list[*j]),
                        ));
                        continue;
                    }
                }
                ranges.push((i, r));
            }
        }
    }
    if errs.is_empty() {
        Ok(ranges.into_iter().map(|(_, r)| r).collect())
    } else {
        Err(errs)
    }
}

/// `spec.gateway`: an address of the family inside the subnet, and not one of the usable
/// addresses unless it is also excluded.
pub(crate) fn check_gateway(
    family: IpFamily,
    net: &IpNet,
    spec: &dyn AddressSpec,
    ips: &[IpRange],
    excluded: &[IpRange],
    owner_word: &str,
) -> Result<(), FieldError> {
    let Some(gw) = spec.gateway() else {
        return Ok(());
    };
    let addr = parse_ip(Some(family), gw)
        .map_err(|e| FieldError::new(FieldErrorKind::Invalid, "spec.gateway", gw, e.to_string()))?;
    if !net.contains(&addr) {
        return Err(FieldError::new(
            FieldErrorKind::Invalid,
            "spec.gateway",
            gw,
            format!("not pertains to the 'spec.subnet' {net} of {owner_word}"),
        ));
    }
    if excluded.iter().any(|r| r.contains(addr)) {
        return Ok(());
    }
    if let Some(i) = ips.iter().position(|r| r.contains(addr)) {
        return Err(FieldError::new(
            FieldErrorKind::Invalid,
            format!("spec.ips[{i}]"),
            spec.ips().get(i).cloned().unwrap_or_default(),
            format!(
                "conflicts with 'spec.gateway' {gw}, add the gateway IP address to \
                 'spec.excludeIPs' or remove it from 'spec.ips'"
            ),
        ));
    }
    Ok(())
}

/// `spec.routes`: no default route (the gateway makes it), no duplicate destination, `dst` a
/// CIDR of the family, `gw` an address inside the subnet.
pub(crate) fn check_routes(
    family: IpFamily,
    net: &IpNet,
    routes: &[Route],
    owner_word: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen: Vec<IpNet> = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let dst_path = format!("spec.routes[{i}].dst");
        let dst = match parse_cidr(Some(family), &r.dst) {
            Ok(d) => d,
            Err(e) => {
                errs.push(FieldError::new(
                    FieldErrorKind::Invalid,
                    dst_path,
                    &r.dst,
                    e.to_string(),
                ));
                continue;
            }
        };
        if dst.prefix_len() == 0 {
            errs.push(FieldError::new(
                FieldErrorKind::Invalid,
                dst_path,
                &r.dst,
                "please specify 'spec.gateway' to configure the default route",
            ));
            continue;
        }
        if seen.contains(&dst.trunc()) {
            errs.push(FieldError::new(
                FieldErrorKind::Invalid,
                dst_path,
                &r.dst,
                "duplicate route with the same dst",
            ));
            continue;
        }
        seen.push(dst.trunc());
        let gw_path = format!("spec.routes[{i}].gw");
        match parse_ip(Some(family), &r.gw) {
            Err(e) => errs.push(FieldError::new(
                FieldErrorKind::Invalid,
                gw_path,
                &r.gw,
                e.to_string(),
            )),
            Ok(gw) if !net.contains(&gw) => errs.push(FieldError::new(
                FieldErrorKind::Invalid,
                gw_path,
                &r.gw,
                format!("not pertains to the 'spec.subnet' {net} of {owner_word}"),
            )),
            Ok(_) => {}
        }
    }
    errs
}

/// Everything about the address fields of a pool or subnet whose family and CIDR are already
/// known good: ranges, gateway, routes. Returns the usable set when the ranges are valid.
pub(crate) fn check_address_spec(
    family: IpFamily,
    net: &IpNet,
    spec: &dyn AddressSpec,
    owner_word: &str,
    disjoint_ips: bool,
    errs: &mut Vec<FieldError>,
) -> Option<IpSet> {
    let ips = check_ranges(
        family,
        net,
        spec.ips(),
        "spec.ips",
        owner_word,
        disjoint_ips,
    );
    let excluded = check_ranges(
        family,
        net,
        spec.exclude_ips(),
        "spec.excludeIPs",
        owner_word,
        false,
    );
    let usable = match (ips, excluded) {
        (Ok(ips), Ok(excluded)) => {
            if let Err(e) = check_gateway(family, net, spec, &ips, &excluded, owner_word) {
                errs.push(e);
            }
            let all = IpSet::from_ranges(family, Some(net), &ips);
            Some(all.difference(&IpSet::from_ranges(family, Some(net), &excluded)))
        }
        (ips, excluded) => {
            errs.extend(ips.err().unwrap_or_default());
            errs.extend(excluded.err().unwrap_or_default());
            None
        }
    };
    errs.extend(check_routes(family, net, spec.routes(), owner_word));
    usable
}

/// Whether two CIDRs nest (Spiderpool's `IsCIDROverlap`: CIDRs are disjoint or nested).
pub(crate) fn cidrs_overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Formats ranges like Go's `%v` of a string slice: `[a b c]`.
pub(crate) fn go_list(set: &IpSet) -> String {
    format!("[{}]", set.to_range_strings().join(" "))
}

/// The first of `others` (name, spec) of `family` whose CIDR nests with `net`: the error says
/// `overlap with <what> <name> which 'spec.subnet' is <cidr>`. With `allow_same`, an identical
/// `spec.subnet` string is not an overlap (pools may share one subnet; subnets may not).
pub(crate) fn check_no_nested_cidr<'a>(
    family: IpFamily,
    net: &IpNet,
    subnet: &str,
    (what, allow_same): (&str, bool),
    others: impl IntoIterator<Item = (&'a str, &'a dyn AddressSpec)>,
) -> Result<(), FieldError> {
    for (name, other) in others {
        if (allow_same && other.subnet() == subnet) || other.family().ok() != Some(family) {
            continue;
        }
        if let Ok(other_net) = other.subnet_net() {
            if cidrs_overlap(net, &other_net) {
                return Err(FieldError::new(
                    FieldErrorKind::Invalid,
                    "spec.subnet",
                    subnet,
                    format!(
                        "overlap with {what} {name} which 'spec.subnet' is {}",
                        other.subnet()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// On update: `ipVersion` (when both are set) and `subnet` never change. Returns the family
/// and network of the new spec once its `ipVersion` passes [`check_ip_version`].
pub(crate) fn check_update_identity(
    old: &dyn AddressSpec,
    new: &dyn AddressSpec,
    cfg: &AdmissionConfig,
) -> Result<(IpFamily, IpNet), FieldError> {
    let frozen =
        |path: &str| FieldError::new(FieldErrorKind::Forbidden, path, "", "is not changeable");
    if let (Some(a), Some(b)) = (old.ip_version(), new.ip_version()) {
        if a != b {
            return Err(frozen("spec.ipVersion"));
        }
    }
    if old.subnet() != new.subnet() {
        return Err(frozen("spec.subnet"));
    }
    let family = check_ip_version(
        new.ip_version(),
        cfg,
        "is not generated correctly, 'spec.subnet' may be invalid",
    )?;
    let net = parse_cidr(Some(family), new.subnet())
        .map(|n| n.trunc())
        .map_err(|e| {
            FieldError::new(
                FieldErrorKind::Invalid,
                "spec.subnet",
                new.subnet(),
                e.to_string(),
            )
        })?;
    Ok((family, net))
}
