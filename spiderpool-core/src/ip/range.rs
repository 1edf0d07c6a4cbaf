//! Spiderpool's IP range strings: `A` or `A-B`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::family::addr_value;
use super::intervals::{self, Interval};
use super::{parse_ip, IpCount, IpFamily};
use crate::Error;

/// An inclusive range of addresses of one family, written `A` (one address) or `A-B`.
///
/// Parsing follows Spiderpool: exactly one `-`, no spaces, both ends of the same family,
/// `A <= B`. CIDRs are not ranges. Printing gives Go's canonical spelling, and a one-address
/// range prints as the bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpRange {
    start: IpAddr,
    end: IpAddr,
}

impl IpRange {
    /// A range from `start` to `end` inclusive; `None` when the families differ or
    /// `start > end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Option<Self> {
        (IpFamily::of(start) == IpFamily::of(end) && addr_value(start) <= addr_value(end))
            .then_some(IpRange { start, end })
    }

    /// The range holding only `addr`.
    pub fn single(addr: IpAddr) -> Self {
        IpRange {
            start: addr,
            end: addr,
        }
    }

    /// Parses a range string; with `family` set, both ends must be of that family.
    pub fn parse(family: Option<IpFamily>, input: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidIpRange {
            family,
            input: input.to_string(),
        };
        let mut parts = input.split('-');
        let first = parts.next().ok_or_else(bad)?;
        let second = parts.next();
        if parts.next().is_some() {
            return Err(bad());
        }
        let start = parse_ip(family, first).map_err(|_| bad())?;
        let end = match second {
            Some(s) => parse_ip(Some(IpFamily::of(start)), s).map_err(|_| bad())?,
            None => start,
        };
        IpRange::new(start, end).ok_or_else(bad)
    }

    /// First address.
    pub fn start(&self) -> IpAddr {
        self.start
    }

    /// Last address.
    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// The family of both ends.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.start)
    }

    /// Number of addresses in the range.
    pub fn len(&self) -> IpCount {
        let (s, e) = self.interval();
        IpCount::from(e - s) + IpCount::from(1u128)
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `addr` lies in the range.
    pub fn contains(&self, addr: IpAddr) -> bool {
        IpFamily::of(addr) == self.family() && {
            let v = addr_value(addr);
            let (s, e) = self.interval();
            s <= v && v <= e
        }
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.family() == other.family() && {
            let (a, b) = (self.interval(), other.interval());
            a.0 <= b.1 && b.0 <= a.1
        }
    }

    /// Whether both ends lie inside `net` (Spiderpool's `ContainsIPRange`).
    pub fn is_within(&self, net: &IpNet) -> bool {
        net.contains(&self.start) && net.contains(&self.end)
    }

    pub(crate) fn interval(&self) -> Interval {
        (addr_value(self.start), addr_value(self.end))
    }

    pub(crate) fn from_interval(family: IpFamily, (s, e): Interval) -> Option<Self> {
        IpRange::new(family.addr(s)?, family.addr(e)?)
    }

    /// Sorts, de-duplicates and coalesces ranges of one family into the shortest list.
    /// Ranges of the other family are dropped, so pass ranges of `family` only.
    pub fn merge(family: IpFamily, ranges: &[IpRange]) -> Vec<IpRange> {
        let list = ranges
            .iter()
            .filter(|r| r.family() == family)
            .map(IpRange::interval)
            .collect();
        intervals::normalize(list)
            .into_iter()
            .filter_map(|iv| IpRange::from_interval(family, iv))
            .collect()
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl FromStr for IpRange {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        IpRange::parse(None, s)
    }
}

impl Serialize for IpRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a list of range strings of `family` (Spiderpool's `ParseIPRanges`), in input order.
pub fn parse_ip_ranges<S: AsRef<str>>(family: IpFamily, list: &[S]) -> Result<Vec<IpRange>, Error> {
    list.iter()
        .map(|s| IpRange::parse(Some(family), s.as_ref()))
        .collect()
}

/// Spiderpool's `MergeIPRanges`: parses, de-duplicates, sorts and coalesces, and prints the
/// shortest canonical list (`["172.18.40.10","172.18.40.1-172.18.40.2","172.18.40.2-172.18.40.3"]`
/// gives `["172.18.40.1-172.18.40.3","172.18.40.10"]`).
pub fn merge_ip_ranges<S: AsRef<str>>(family: IpFamily, list: &[S]) -> Result<Vec<String>, Error> {
    let ranges = parse_ip_ranges(family, list)?;
    Ok(IpRange::merge(family, &ranges)
        .iter()
        .map(ToString::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let r: IpRange = "172.18.40.1-172.18.40.10".parse().unwrap();
        assert_eq!(r.to_string(), "172.18.40.1-172.18.40.10");
        assert_eq!(r.len(), IpCount::from(10u128));
        let single: IpRange = "10.6.0.1-10.6.0.1".parse().unwrap();
        assert_eq!(single.to_string(), "10.6.0.1");
        let v6 = IpRange::parse(Some(IpFamily::V6), "ABCD:1234::A-abcd:1234::0:F").unwrap();
        assert_eq!(v6.to_string(), "abcd:1234::a-abcd:1234::f");
    }

    #[test]
    fn rejects_what_spiderpool_rejects() {
        for bad in [
            "172.18.40.0 - 172.18.40.10",
            "172.18.40.1-2001:db8::1",
            "172.18.40.10-172.18.40.1",
            "a-b-c",
            "172.18.40.1-",
            "-172.18.40.1",
            "invalid IP range",
            "10.6.0.1/24",
            "",
        ] {
            let err = IpRange::parse(Some(IpFamily::V4), bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidIpRange { .. }),
                "{bad}: {err:?}"
            );
        }
        assert!(IpRange::parse(Some(IpFamily::V6), "10.0.0.1").is_err());
    }

    #[test]
    fn merges_like_spiderpool() {
        let merged = merge_ip_ranges(
            IpFamily::V4,
            &[
                "172.18.40.10",
                "172.18.40.1-172.18.40.2",
                "172.18.40.2-172.18.40.3",
            ],
        )
        .unwrap();
        assert_eq!(merged, vec!["172.18.40.1-172.18.40.3", "172.18.40.10"]);
        let merged = merge_ip_ranges(IpFamily::V6, &["abcd:1234::2", "abcd:1234::1"]).unwrap();
        assert_eq!(merged, vec!["abcd:1234::1-abcd:1234::2"]);
    }

    #[test]
    fn overlap_containment_and_membership() {
        let a: IpRange = "172.18.40.1-172.18.40.2".parse().unwrap();
        let b: IpRange = "172.18.40.2-172.18.40.3".parse().unwrap();
        let c: IpRange = "172.18.40.3-172.18.40.4".parse().unwrap();
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&c));
        let net: IpNet = "172.18.40.0/24".parse().unwrap();
        assert!(a.is_within(&net));
        let across: IpRange = "172.18.40.254-172.18.41.1".parse().unwrap();
        assert!(!across.is_within(&net));
        assert!(a.contains("172.18.40.2".parse().unwrap()));
        assert!(!a.contains("172.18.40.3".parse().unwrap()));
        assert!(!a.contains("::1".parse().unwrap()));
    }
}
