//! Parsing of single addresses and CIDRs with Spiderpool's (Go's) rules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::IpFamily;
use crate::Error;

/// Parses one address of `family` (or of either family when `None`).
///
/// Like Go's `net.ParseIP`: no leading zeros in IPv4 octets, no octet above 255, no zone, no
/// surrounding spaces. An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is an IPv6 address here.
pub fn parse_ip(family: Option<IpFamily>, input: &str) -> Result<IpAddr, Error> {
    let bad = || Error::InvalidIp {
        family,
        input: input.to_string(),
    };
    let addr = if input.contains(':') {
        IpAddr::V6(input.parse::<Ipv6Addr>().map_err(|_| bad())?)
    } else {
        IpAddr::V4(input.parse::<Ipv4Addr>().map_err(|_| bad())?)
    };
    match family {
        Some(f) if IpFamily::of(addr) != f => Err(bad()),
        _ => Ok(addr),
    }
}

/// Parses a CIDR (`10.6.0.0/16`, `fd00::/64`) of `family` (or of either family when `None`).
///
/// The address part need not be the network address; see [`parse_cidr_canonical`] for the
/// stricter form that `spec.subnet` requires.
pub fn parse_cidr(family: Option<IpFamily>, input: &str) -> Result<IpNet, Error> {
    let bad = || Error::InvalidCidr {
        family,
        input: input.to_string(),
    };
    let (addr, prefix) = input.split_once('/').ok_or_else(bad)?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let addr = parse_ip(family, addr).map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    IpNet::new(addr, prefix).map_err(|_| bad())
}

/// Parses a CIDR that must already be written in canonical form: the network address and
/// Go's spelling of it (`172.18.40.0/24`, `fd00::/64`). Otherwise the error is Spiderpool's
/// `unformatted subnet <input>, please change it to <canonical>`.
pub fn parse_cidr_canonical(family: Option<IpFamily>, input: &str) -> Result<IpNet, Error> {
    let net = parse_cidr(family, input)?;
    let canonical = net.trunc();
    if canonical.to_string() != input {
        return Err(Error::UnformattedSubnet {
            input: input.to_string(),
            canonical: canonical.to_string(),
        });
    }
    Ok(canonical)
}

/// Spiderpool's label value for a CIDR (`CIDRToLabelValue`): the first three `.`, the first
/// seven `:` and the first `/` become `-`. `172.18.40.0/24` gives `172-18-40-0-24`.
pub fn cidr_to_label_value(cidr: &str) -> String {
    let mut out = String::with_capacity(cidr.len());
    let (mut dots, mut colons, mut slashes) = (0, 0, 0);
    for c in cidr.chars() {
        let replace = match c {
            '.' if dots < 3 => {
                dots += 1;
                true
            }
            ':' if colons < 7 => {
                colons += 1;
                true
            }
            '/' if slashes < 1 => {
                slashes += 1;
                true
            }
            _ => false,
        };
        out.push(if replace { '-' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_like_go() {
        assert!(parse_ip(Some(IpFamily::V4), "172.18.40.1").is_ok());
        for bad in [
            "172.018.0.1",
            "10.6.0.300",
            " 10.6.0.1",
            "10.6.0",
            "fe80::1%eth0",
            "",
        ] {
            assert!(parse_ip(None, bad).is_err(), "{bad} should be rejected");
        }
        assert!(parse_ip(Some(IpFamily::V4), "fd00::1").is_err());
        assert!(parse_ip(Some(IpFamily::V6), "10.0.0.1").is_err());
        assert_eq!(
            parse_ip(Some(IpFamily::V6), "FD00::0001")
                .unwrap()
                .to_string(),
            "fd00::1"
        );
    }

    #[test]
    fn parses_cidrs() {
        assert_eq!(
            parse_cidr(None, "10.6.0.1/16").unwrap().to_string(),
            "10.6.0.1/16"
        );
        for bad in [
            "10.6.0.0/33",
            "10.6.0.0",
            "10.6.0.0/",
            "10.6.0.0/+1",
            "fd00::/129",
            "x/8",
        ] {
            assert!(parse_cidr(None, bad).is_err(), "{bad} should be rejected");
        }
        assert!(parse_cidr(Some(IpFamily::V4), "abcd::/64").is_err());
    }

    #[test]
    fn canonical_cidr_is_required_for_subnets() {
        assert!(parse_cidr_canonical(None, "172.18.40.0/24").is_ok());
        let err = parse_cidr_canonical(None, "172.18.40.1/24").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unformatted subnet 172.18.40.1/24, please change it to 172.18.40.0/24"
        );
        assert!(parse_cidr_canonical(None, "fd00:0::/64").is_err());
        assert!(parse_cidr_canonical(None, "fd00::/64").is_ok());
    }

    #[test]
    fn label_values() {
        assert_eq!(cidr_to_label_value("172.18.40.0/24"), "172-18-40-0-24");
        assert_eq!(cidr_to_label_value("fd00::/64"), "fd00---64");
    }
}
