//! Admission of SpiderReservedIP.

use super::spec::check_ip_version;
use super::{check_name, invalid, AdmissionConfig, FieldError, FieldErrorKind};
use crate::ip::{merge_ip_ranges, IpFamily, IpRange};
use crate::model::SpiderReservedIP;
use crate::Error;

const KIND: &str = SpiderReservedIP::KIND;
const MISSING_VERSION: &str =
    "is not generated correctly, 'spec.ips' is empty or 'spec.ips[0]' may be invalid";

/// Spiderpool's mutating webhook for reserved IPs: nothing for a terminating object;
/// `ipVersion` from the family of `ips[0]`; `ips` of more than one entry merged. (No
/// finalizer: reserved IPs have none.)
pub fn mutate_reservedip(reserved: &mut SpiderReservedIP) {
    if reserved.metadata.is_terminating() {
        return;
    }
    if reserved.spec.ip_version.is_none() {
        let Some(first) = reserved.spec.ips.first() else {
            return;
        };
        match IpRange::parse(None, first) {
            Ok(r) => reserved.spec.ip_version = Some(r.family().version()),
            Err(_) => return,
        }
    }
    let Some(Ok(family)) = reserved.spec.ip_version.map(IpFamily::from_version) else {
        return;
    };
    if reserved.spec.ips.len() > 1 {
        if let Ok(merged) = merge_ip_ranges(family, &reserved.spec.ips) {
            reserved.spec.ips = merged;
        }
    }
}

/// Validation of a new reserved-IP object: a supported, enabled family, and every entry a
/// range of it. Reserved IPs may overlap pools and each other; no subnet is involved.
pub fn validate_reservedip_create(
    reserved: &SpiderReservedIP,
    cfg: &AdmissionConfig,
) -> Result<(), Error> {
    let name = reserved.metadata.name.as_str();
    check_name(KIND, &reserved.metadata)?;
    let family = check_ip_version(reserved.spec.ip_version, cfg, MISSING_VERSION).map_err(|e| {
        let mut causes = vec![e];
        // The version comes from `spec.ips[0]`: name it when it is what failed.
        if let (None, Some(first)) = (reserved.spec.ip_version, reserved.spec.ips.first()) {
            if let Err(why) = IpRange::parse(None, first) {
                causes.push(FieldError::new(
                    FieldErrorKind::Invalid,
                    "spec.ips[0]",
                    first,
                    why.to_string(),
                ));
            }
        }
        invalid(KIND, name, causes)
    })?;
    check_ips(reserved, family)
}

/// Validation of a change: `ipVersion` is immutable, then as on create. An update that starts
/// the deletion is allowed; further updates of a terminating object are not.
pub fn validate_reservedip_update(
    old: &SpiderReservedIP,
    new: &SpiderReservedIP,
    cfg: &AdmissionConfig,
) -> Result<(), Error> {
    let name = new.metadata.name.as_str();
    if new.metadata.is_terminating() {
        if old.metadata.is_terminating() {
            return Err(Error::Forbidden {
                kind: KIND.to_string(),
                name: name.to_string(),
                reason: "cannot update a terminating ReservedIP".to_string(),
            });
        }
        return Ok(());
    }
    if let (Some(a), Some(b)) = (old.spec.ip_version, new.spec.ip_version) {
        if a != b {
            return Err(invalid(
                KIND,
                name,
                vec![FieldError::new(
                    FieldErrorKind::Forbidden,
                    "spec.ipVersion",
                    "",
                    "is not changeable",
                )],
            ));
        }
    }
    let family = check_ip_version(new.spec.ip_version, cfg, MISSING_VERSION)
        .map_err(|e| invalid(KIND, name, vec![e]))?;
    check_ips(new, family)
}

fn check_ips(reserved: &SpiderReservedIP, family: IpFamily) -> Result<(), Error> {
    let errs: Vec<FieldError> = reserved
        .spec
        .ips
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            IpRange::parse(Some(family), raw).err().map(|e| {
                FieldError::new(
                    FieldErrorKind::Invalid,
                    format!("spec.ips[{i}]"),
                    raw,
                    e.to_string(),
                )
            })
        })
        .collect();
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid(KIND, &reserved.metadata.name, errs))
    }
}
