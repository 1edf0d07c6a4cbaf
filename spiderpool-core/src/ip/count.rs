//! Exact address counts.

use std::fmt;
use std::ops::Add;

/// An exact number of addresses, from 0 up to 2^128 (the whole IPv6 space).
///
/// `u128` stops one short of 2^128, so the count carries that one extra value. Kubernetes
/// status fields are `int64`: [`IpCount::to_i64_saturating`] clamps the way Spiderpool does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct IpCount {
    /// True only for exactly 2^128 (then `low` is 0).
    overflow: bool,
    low: u128,
}

impl IpCount {
    /// No addresses.
    pub const ZERO: IpCount = IpCount {
        overflow: false,
        low: 0,
    };
    /// 2^128 addresses: every IPv6 address.
    pub const ALL_IPV6: IpCount = IpCount {
        overflow: true,
        low: 0,
    };

    /// The count as a `u128`; `None` only for 2^128.
    pub fn to_u128(self) -> Option<u128> {
        (!self.overflow).then_some(self.low)
    }

    /// The count as a `u64`, when it fits.
    pub fn to_u64(self) -> Option<u64> {
        self.to_u128().and_then(|v| u64::try_from(v).ok())
    }

    /// The count clamped to `i64::MAX`, as Spiderpool writes `status.totalIPCount`.
    pub fn to_i64_saturating(self) -> i64 {
        self.to_u128()
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or(i64::MAX)
    }

    /// True when the count is zero.
    pub fn is_zero(self) -> bool {
        self == IpCount::ZERO
    }

    /// Adds two counts; `None` beyond 2^128 (impossible for counts of one family's addresses).
    pub fn checked_add(self, other: IpCount) -> Option<IpCount> {
        let (low, carry) = self.low.overflowing_add(other.low);
        let overflow = match (self.overflow, other.overflow, carry) {
            (false, false, false) => false,
            (false, false, true) | (true, false, false) | (false, true, false) => true,
            _ => return None,
        };
        if overflow && low != 0 {
            return None;
        }
        Some(IpCount { overflow, low })
    }
}

impl From<u128> for IpCount {
    fn from(low: u128) -> Self {
        IpCount {
            overflow: false,
            low,
        }
    }
}

impl From<u64> for IpCount {
    fn from(v: u64) -> Self {
        IpCount::from(u128::from(v))
    }
}

impl Add for IpCount {
    type Output = IpCount;

    /// Adds two counts, saturating at 2^128 (the largest count of one family).
    fn add(self, other: IpCount) -> IpCount {
        self.checked_add(other).unwrap_or(IpCount::ALL_IPV6)
    }
}

impl fmt::Display for IpCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.overflow {
            f.write_str("340282366920938463463374607431768211456")
        } else {
            write!(f, "{}", self.low)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_to_two_to_the_128() {
        let half = IpCount::from(1u128 << 127);
        let all = half + half;
        assert_eq!(all, IpCount::ALL_IPV6);
        assert_eq!(all.to_u128(), None);
        assert_eq!(all.to_string(), "340282366920938463463374607431768211456");
        assert_eq!(all.to_i64_saturating(), i64::MAX);
        assert_eq!(
            half.checked_add(half)
                .and_then(|a| a.checked_add(1u128.into())),
            None
        );
        assert_eq!(IpCount::from(13u64).to_i64_saturating(), 13);
        assert!(IpCount::from(12u128) < IpCount::ALL_IPV6);
    }
}
