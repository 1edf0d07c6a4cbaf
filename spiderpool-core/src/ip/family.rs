//! The IP family of an address, range, pool or subnet.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::Error;

/// IPv4 or IPv6. Spiderpool writes it as `ipVersion: 4` or `ipVersion: 6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    /// IPv4 (`ipVersion: 4`).
    V4,
    /// IPv6 (`ipVersion: 6`).
    V6,
}

impl IpFamily {
    /// Both families, IPv4 first (the order Spiderpool allocates and prints them in).
    pub const ALL: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

    /// The family of a Spiderpool `ipVersion` value; anything but 4 or 6 is
    /// `invalid IP version '<n>'`.
    pub fn from_version(version: i64) -> Result<Self, Error> {
        match version {
            4 => Ok(IpFamily::V4),
            6 => Ok(IpFamily::V6),
            other => Err(Error::InvalidIpVersion { version: other }),
        }
    }

    /// The `ipVersion` number: 4 or 6.
    pub fn version(self) -> i64 {
        match self {
            IpFamily::V4 => 4,
            IpFamily::V6 => 6,
        }
    }

    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// Number of bits in an address of this family.
    pub fn bits(self) -> u8 {
        match self {
            IpFamily::V4 => 32,
            IpFamily::V6 => 128,
        }
    }

    /// The highest address of the family as an integer.
    pub fn max_value(self) -> u128 {
        match self {
            IpFamily::V4 => u128::from(u32::MAX),
            IpFamily::V6 => u128::MAX,
        }
    }

    /// The address with integer value `value`; `None` when it does not fit the family.
    pub fn addr(self, value: u128) -> Option<IpAddr> {
        match self {
            IpFamily::V4 => u32::try_from(value)
                .ok()
                .map(|v| IpAddr::V4(Ipv4Addr::from(v))),
            IpFamily::V6 => Some(IpAddr::V6(Ipv6Addr::from(value))),
        }
    }

    /// Spiderpool's label value for the family: `IPv4` or `IPv6`.
    pub fn label(self) -> &'static str {
        match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The integer value of an address (IPv4 addresses are their 32-bit value).
pub(crate) fn addr_value(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_and_reject_others() {
        assert_eq!(IpFamily::from_version(4), Ok(IpFamily::V4));
        assert_eq!(IpFamily::from_version(6), Ok(IpFamily::V6));
        assert_eq!(IpFamily::V6.version(), 6);
        let err = IpFamily::from_version(5).unwrap_err();
        assert_eq!(err.to_string(), "invalid IP version '5'");
    }

    #[test]
    fn addr_conversion_checks_width() {
        assert_eq!(
            IpFamily::V4.addr(0x0a00_0001),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(IpFamily::V4.addr(1 << 32), None);
        assert_eq!(addr_value("::1".parse().unwrap()), 1);
    }
}
