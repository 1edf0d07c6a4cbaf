//! `range`: the address, CIDR and range-string parsers of `spiderpool_core::ip`.
//!
//! The input is text. The whole of it is parsed as one address, CIDR and range of either
//! family and of each; then its lines are parsed as a `spec.ips` list and merged. Checked:
//! no panic; what parses prints back to something that parses to the same value; a parsed
//! family is the one asked for; a canonical CIDR is its own truncation; merging is idempotent
//! and keeps exactly the addresses of the list.

use spiderpool_core::ip::{
    cidr_to_label_value, merge_ip_ranges, parse_cidr, parse_cidr_canonical, parse_ip,
    parse_ip_ranges, IpFamily, IpRange, IpSet,
};

use crate::util::text;

const FAMILIES: [Option<IpFamily>; 3] = [None, Some(IpFamily::V4), Some(IpFamily::V6)];

/// The `range` target.
pub fn range(data: &[u8]) {
    let Some(input) = text(data) else { return };
    one(input);
    if input.contains('\n') {
        for line in input.lines().take(64) {
            one(line);
        }
    }
    list(input);
}

fn one(input: &str) {
    let _ = cidr_to_label_value(input);
    for family in FAMILIES {
        if let Ok(addr) = parse_ip(family, input) {
            assert!(family.is_none_or(|f| f == IpFamily::of(addr)));
            assert_eq!(parse_ip(family, &addr.to_string()).ok(), Some(addr));
        }
        if let Ok(net) = parse_cidr(family, input) {
            assert!(family.is_none_or(|f| f == IpFamily::of(net.addr())));
            assert_eq!(parse_cidr(family, &net.to_string()).ok(), Some(net));
            let canonical = net.trunc();
            assert_eq!(
                parse_cidr_canonical(family, &canonical.to_string()).ok(),
                Some(canonical),
                "{canonical} is canonical"
            );
            // A subnet's whole address set, however large, is exact and small.
            let set = IpSet::from_subnet(&net);
            assert_eq!(set.first(), Some(canonical.network()));
            assert_eq!(set.last(), Some(canonical.broadcast()));
            set.validate_invariants().unwrap();
        }
        if let Ok(net) = parse_cidr_canonical(family, input) {
            assert_eq!(net.to_string(), input);
        }
        if let Ok(r) = IpRange::parse(family, input) {
            assert!(family.is_none_or(|f| f == r.family()));
            assert!(r.contains(r.start()) && r.contains(r.end()));
            assert!(!r.is_empty());
            let printed = r.to_string();
            assert_eq!(printed.parse::<IpRange>().ok(), Some(r), "{printed}");
            assert_eq!(IpRange::parse(family, &printed).ok(), Some(r));
        }
    }
    assert_eq!(
        input.parse::<IpRange>().ok(),
        IpRange::parse(None, input).ok()
    );
}

fn list(input: &str) {
    let lines: Vec<&str> = input.lines().take(64).collect();
    for family in [IpFamily::V4, IpFamily::V6] {
        let Ok(ranges) = parse_ip_ranges(family, &lines) else {
            assert!(merge_ip_ranges(family, &lines).is_err());
            continue;
        };
        let merged = merge_ip_ranges(family, &lines).unwrap();
        assert_eq!(merge_ip_ranges(family, &merged).unwrap(), merged);
        let set = IpSet::from_ranges(family, None, &ranges);
        set.validate_invariants().unwrap();
        assert_eq!(set.to_range_strings(), merged);
        let reparsed = parse_ip_ranges(family, &merged).unwrap();
        let again = IpSet::from_ranges(family, None, &reparsed);
        assert_eq!(again, set);
        assert_eq!(again.len(), set.len());
        for r in &ranges {
            assert!(set.contains(r.start()) && set.contains(r.end()));
        }
        for w in reparsed.windows(2) {
            assert!(w[0].end() < w[1].start() && !w[0].overlaps(&w[1]));
        }
    }
}
