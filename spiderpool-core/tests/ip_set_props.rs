//! Property tests: every `IpSet` operation against a naive model.
//!
//! Small sets are compared with a `BTreeSet<IpAddr>`; addresses are drawn from windows that
//! straddle the 2^32-offset chunk borders, so the full-chunk/partial-chunk logic is exercised.
//! Huge IPv6 sets are compared with a naive sorted interval list.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use proptest::prelude::*;
use spiderpool_core::ip::{IpCount, IpFamily, IpRange, IpSet};

/// A window of addresses: (family, subnet, first address value, width).
fn windows() -> Vec<(IpFamily, &'static str, u128, u128)> {
    vec![
        (IpFamily::V4, "10.6.0.0/16", 0x0a06_0000, 64),
        (IpFamily::V4, "0.0.0.0/0", u128::from(u32::MAX) - 40, 41),
        // fd00::/64: offsets around the first chunk border (2^32).
        (
            IpFamily::V6,
            "fd00::/64",
            (0xfd00u128 << 112) + (1u128 << 32) - 30,
            60,
        ),
        // The very top of the IPv6 space.
        (IpFamily::V6, "ffff::/16", u128::MAX - 45, 46),
    ]
}

fn addr(family: IpFamily, v: u128) -> IpAddr {
    family.addr(v).unwrap()
}

fn value(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

#[derive(Debug, Clone)]
struct Case {
    family: IpFamily,
    subnet: IpNet,
    lo: u128,
    width: u128,
    a_add: Vec<(u128, u128)>,
    a_del: Vec<(u128, u128)>,
    b_add: Vec<(u128, u128)>,
    b_other_base: bool,
    /// Also put the family's second address (below every window's subnet but one) in `b`, as
    /// a family-wide reserved set can hold addresses below a pool's subnet.
    b_low: bool,
    cursor: u128,
}

fn ranges(width: u128) -> impl Strategy<Value = Vec<(u128, u128)>> {
    prop::collection::vec(
        (0..width, 0..width / 2).prop_map(move |(s, l)| (s, (s + l).min(width - 1))),
        0..6,
    )
}

fn case() -> impl Strategy<Value = Case> {
    (0..windows().len()).prop_flat_map(|i| {
        let (family, subnet, lo, width) = windows()[i];
        (
            ranges(width),
            ranges(width),
            ranges(width),
            any::<bool>(),
            any::<bool>(),
            0..width,
        )
            .prop_map(
                move |(a_add, a_del, b_add, b_other_base, b_low, cursor)| Case {
                    family,
                    subnet: subnet.parse().unwrap(),
                    lo,
                    width,
                    a_add,
                    a_del,
                    b_add,
                    b_other_base,
                    b_low,
                    cursor,
                },
            )
    })
}

fn to_range(c: &Case, (s, e): (u128, u128)) -> IpRange {
    IpRange::new(addr(c.family, c.lo + s), addr(c.family, c.lo + e)).unwrap()
}

fn build(c: &Case) -> (IpSet, BTreeSet<IpAddr>, IpSet, BTreeSet<IpAddr>) {
    let mut a = IpSet::for_subnet(&c.subnet);
    let mut ma = BTreeSet::new();
    for &r in &c.a_add {
        a.insert_range(&to_range(c, r));
        ma.extend((r.0..=r.1).map(|v| addr(c.family, c.lo + v)));
    }
    for &r in &c.a_del {
        a.remove_range(&to_range(c, r));
        for v in r.0..=r.1 {
            ma.remove(&addr(c.family, c.lo + v));
        }
    }
    let mut b = if c.b_other_base {
        IpSet::new(c.family)
    } else {
        IpSet::for_subnet(&c.subnet)
    };
    let mut mb = BTreeSet::new();
    for &r in &c.b_add {
        b.insert_range(&to_range(c, r));
        mb.extend((r.0..=r.1).map(|v| addr(c.family, c.lo + v)));
    }
    if c.b_low {
        b.insert(addr(c.family, 1));
        mb.insert(addr(c.family, 1));
    }
    (a, ma, b, mb)
}

fn check_same(c: &Case, set: &IpSet, model: &BTreeSet<IpAddr>) -> Result<(), TestCaseError> {
    set.validate_invariants().map_err(TestCaseError::fail)?;
    prop_assert_eq!(set.len(), IpCount::from(model.len() as u128));
    prop_assert_eq!(set.is_empty(), model.is_empty());
    let listed: Vec<IpAddr> = set.iter().collect();
    let expected: Vec<IpAddr> = model.iter().copied().collect();
    prop_assert_eq!(&listed, &expected);
    prop_assert_eq!(set.first(), model.first().copied());
    prop_assert_eq!(set.last(), model.last().copied());
    for v in 0..c.width {
        let a = addr(c.family, c.lo + v);
        prop_assert_eq!(set.contains(a), model.contains(&a), "contains {}", a);
    }
    // Runs are maximal: sorted, with a gap between neighbours, and they cover the model.
    let runs: Vec<IpRange> = set.runs().collect();
    for w in runs.windows(2) {
        prop_assert!(
            value(w[0].end()) + 1 < value(w[1].start()),
            "runs not maximal: {:?}",
            runs
        );
    }
    let strings = set.to_range_strings();
    let reparsed: Vec<IpRange> = strings.iter().map(|s| s.parse().unwrap()).collect();
    prop_assert_eq!(reparsed, runs);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn set_operations_match_btreeset(c in case()) {
        let (a, ma, b, mb) = build(&c);
        check_same(&c, &a, &ma)?;
        check_same(&c, &b, &mb)?;
        let u: BTreeSet<IpAddr> = &ma | &mb;
        let i: BTreeSet<IpAddr> = &ma & &mb;
        let d: BTreeSet<IpAddr> = &ma - &mb;
        check_same(&c, &a.union(&b), &u)?;
        check_same(&c, &b.union(&a), &u)?;
        check_same(&c, &a.intersection(&b), &i)?;
        check_same(&c, &(&b & &a), &i)?;
        check_same(&c, &a.difference(&b), &d)?;
        check_same(&c, &(&b - &a), &(&mb - &ma))?;
        prop_assert_eq!(a.is_subset(&b), ma.is_subset(&mb));
        prop_assert_eq!(a.intersects(&b), !i.is_empty());
        prop_assert_eq!(a == b, ma == mb);

        let cursor = addr(c.family, c.lo + c.cursor);
        prop_assert_eq!(a.next_at_or_after(cursor), ma.range(cursor..).next().copied());
        let free = ma.range(cursor..).find(|x| !mb.contains(x)).copied();
        prop_assert_eq!(a.first_free(&[&b], cursor), free);
        let none: BTreeSet<IpAddr> = BTreeSet::new();
        let free2 = ma.range(cursor..).find(|x| !mb.contains(x) && !none.contains(x)).copied();
        prop_assert_eq!(a.first_free(&[&b, &IpSet::new(c.family)], cursor), free2);
    }

    #[test]
    fn single_element_operations_match_btreeset(
        c in case(),
        ops in prop::collection::vec((any::<bool>(), 0u128..64), 0..40),
    ) {
        let (mut a, mut ma, _, _) = build(&c);
        for (insert, v) in ops {
            let x = addr(c.family, c.lo + v % c.width);
            if insert {
                prop_assert_eq!(a.insert(x), ma.insert(x));
            } else {
                prop_assert_eq!(a.remove(x), ma.remove(&x));
            }
            a.validate_invariants().map_err(TestCaseError::fail)?;
        }
        check_same(&c, &a, &ma)?;
    }
}

// ----- huge IPv6 sets against a naive interval model -----

fn naive_count(mut list: Vec<(u128, u128)>) -> IpCount {
    list.sort();
    let mut merged: Vec<(u128, u128)> = Vec::new();
    for (s, e) in list {
        if let Some(last) = merged.last_mut() {
            if last.1 == u128::MAX || s <= last.1 + 1 {
                last.1 = last.1.max(e);
                continue;
            }
        }
        merged.push((s, e));
    }
    merged.iter().fold(IpCount::ZERO, |acc, &(s, e)| {
        acc + IpCount::from(e - s) + IpCount::from(1u128)
    })
}

proptest! {
    #[test]
    fn huge_ipv6_counts_are_exact(
        spans in prop::collection::vec((0u128..(1 << 70), 0u128..(1 << 66)), 1..6),
        hole in 0u128..(1 << 70),
    ) {
        let base = 0xfd00u128 << 112;
        let subnet: IpNet = "fd00::/48".parse().unwrap();
        let mut set = IpSet::for_subnet(&subnet);
        let mut model = Vec::new();
        for (s, l) in spans {
            let (s, e) = (base + s, base + s + l);
            set.insert_range(&IpRange::new(addr(IpFamily::V6, s), addr(IpFamily::V6, e)).unwrap());
            model.push((s, e));
        }
        set.validate_invariants().map_err(TestCaseError::fail)?;
        prop_assert_eq!(set.len(), naive_count(model.clone()));
        // Removing one address takes exactly one away when it was there.
        let h = addr(IpFamily::V6, base + hole);
        let had = set.contains(h);
        let before = set.len();
        prop_assert_eq!(set.remove(h), had);
        set.validate_invariants().map_err(TestCaseError::fail)?;
        if had {
            prop_assert_eq!(set.len() + IpCount::from(1u128), before);
            prop_assert!(!set.contains(h));
        }
    }
}

/// Sorted, merged intervals.
fn merged(mut list: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    list.sort();
    let mut out: Vec<(u128, u128)> = Vec::new();
    for (s, e) in list {
        match out.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `a` without `b` (both merged).
fn minus(a: &[(u128, u128)], b: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    for &(s, e) in a {
        let mut from = Some(s);
        for &(bs, be) in b {
            let Some(f) = from else { break };
            if be < f || bs > e {
                continue;
            }
            if bs > f {
                out.push((f, bs - 1));
            }
            from = be.checked_add(1).filter(|n| *n <= e);
        }
        if let Some(f) = from {
            out.push((f, e));
        }
    }
    out
}

fn runs_of(set: &IpSet) -> Vec<(u128, u128)> {
    set.runs()
        .map(|r| (value(r.start()), value(r.end())))
        .collect()
}

/// Ranges inside three chunks of a /64, most of them large: whole chunks, chunks all but a
/// few offsets full (kept as their holes), and small pieces.
fn big_ranges() -> impl Strategy<Value = Vec<(u128, u128)>> {
    let chunk = 1u128 << 32;
    let edge = prop_oneof![
        0u128..40,
        (chunk - 40)..chunk + 40,
        (2 * chunk - 40)..(2 * chunk + 40),
        (3 * chunk - 40)..3 * chunk,
        0u128..3 * chunk
    ];
    prop::collection::vec((edge.clone(), edge), 1..5)
        .prop_map(|v| v.into_iter().map(|(a, b)| (a.min(b), a.max(b))).collect())
}

proptest! {
    // Fewer cases: a range ending mid-chunk is tens of thousands of containers either way.
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Set operations on sets whose chunks are mostly full, against interval arithmetic.
    #[test]
    fn large_ranges_combine_exactly(
        a_ranges in big_ranges(),
        b_ranges in big_ranges(),
        probes in prop::collection::vec(0u128..(3u128 << 32), 8),
    ) {
        let base = 0xfd00u128 << 112;
        let subnet: IpNet = "fd00::/64".parse().unwrap();
        let build = |ranges: &[(u128, u128)]| {
            let mut set = IpSet::for_subnet(&subnet);
            for &(s, e) in ranges {
                let r = IpRange::new(addr(IpFamily::V6, base + s), addr(IpFamily::V6, base + e));
                set.insert_range(&r.unwrap());
            }
            set
        };
        let (a, b) = (build(&a_ranges), build(&b_ranges));
        let shift = |v: Vec<(u128, u128)>| -> Vec<(u128, u128)> {
            v.into_iter().map(|(s, e)| (base + s, base + e)).collect()
        };
        let (ma, mb) = (merged(a_ranges.clone()), merged(b_ranges.clone()));
        let mut all = ma.clone();
        all.extend(&mb);
        let union = merged(all);
        let only_a = minus(&ma, &mb);
        let inter = minus(&ma, &only_a);
        for (got, want) in [
            (a.clone(), ma.clone()),
            (&a | &b, union),
            (&a & &b, inter),
            (&a - &b, only_a),
        ] {
            got.validate_invariants().map_err(TestCaseError::fail)?;
            let want = shift(want);
            prop_assert_eq!(runs_of(&got), want.clone());
            let count = want.iter().fold(IpCount::ZERO, |n, &(s, e)| n + IpCount::from(e - s + 1));
            prop_assert_eq!(got.len(), count);
            prop_assert_eq!(got.first().map(value), want.first().map(|r| r.0));
            prop_assert_eq!(got.min().map(value), want.first().map(|r| r.0));
            prop_assert_eq!(got.last().map(value), want.last().map(|r| r.1));
            for &p in &probes {
                let v = base + p;
                let at = addr(IpFamily::V6, v);
                let inside = want.iter().any(|&(s, e)| s <= v && v <= e);
                prop_assert_eq!(got.contains(at), inside);
                let next = want.iter().find(|&&(_, e)| e >= v).map(|&(s, _)| s.max(v));
                prop_assert_eq!(got.next_at_or_after(at).map(value), next);
                let absent = if inside {
                    want.iter().find(|&&(s, e)| s <= v && v <= e).map(|&(_, e)| e + 1)
                } else {
                    Some(v)
                };
                prop_assert_eq!(got.next_absent_at_or_after(at).map(value), absent);
            }
        }
        // Removing ranges of one from the other in place agrees with the difference.
        let mut c = a.clone();
        for &(s, e) in &b_ranges {
            let r = IpRange::new(addr(IpFamily::V6, base + s), addr(IpFamily::V6, base + e));
            c.remove_range(&r.unwrap());
        }
        c.validate_invariants().map_err(TestCaseError::fail)?;
        prop_assert_eq!(runs_of(&c), runs_of(&(&a - &b)));
        // The lowest address of `a` in neither `b` nor the probes' set.
        let mut taken = IpSet::for_subnet(&subnet);
        for &p in &probes {
            taken.insert(addr(IpFamily::V6, base + p));
        }
        let start = addr(IpFamily::V6, base);
        let free = (&(&a - &b) - &taken).first();
        prop_assert_eq!(a.first_free(&[&b, &taken], start), free);
    }
}

#[test]
fn a_full_slash_64_is_small_and_exact() {
    let subnet: IpNet = "fd00::/64".parse().unwrap();
    let all = IpSet::from_subnet(&subnet);
    assert_eq!(all.len().to_u128(), Some(1u128 << 64));
    assert_eq!(
        all.to_range_strings(),
        vec!["fd00::-fd00::ffff:ffff:ffff:ffff"]
    );
    let mut used = IpSet::for_subnet(&subnet);
    used.insert_range(&"fd00::-fd00::1:0:5".parse().unwrap());
    let free = all.first_free(&[&used], "fd00::".parse().unwrap());
    assert_eq!(free, Some("fd00::1:0:6".parse().unwrap()));
    let rest = all.difference(&used);
    assert_eq!(rest.len().to_u128(), Some((1u128 << 64) - ((1 << 32) + 6)));
    assert_eq!(rest.first(), Some("fd00::1:0:6".parse().unwrap()));
    assert_eq!(
        rest.last(),
        Some("fd00::ffff:ffff:ffff:ffff".parse().unwrap())
    );
}

#[test]
fn a_slash_48_count_exceeds_u64() {
    let subnet: IpNet = "fd00:1::/48".parse().unwrap();
    let all = IpSet::from_subnet(&subnet);
    assert_eq!(all.len().to_u128(), Some(1u128 << 80));
    assert_eq!(all.len().to_u64(), None);
    assert_eq!(all.len().to_i64_saturating(), i64::MAX);
}

#[test]
fn the_whole_ipv6_space_counts_two_to_the_128() {
    let all = IpSet::from_subnet(&"::/0".parse().unwrap());
    assert_eq!(all.len(), IpCount::ALL_IPV6);
    let mut one_less = all.clone();
    assert!(one_less.remove("::".parse().unwrap()));
    assert_eq!(one_less.len().to_u128(), Some(u128::MAX));
    assert_eq!(one_less.first(), Some("::1".parse().unwrap()));
    assert_eq!(all.difference(&one_less).to_range_strings(), vec!["::"]);
}

#[test]
fn first_free_skips_reserved_and_allocated_like_the_seed() {
    // Seed 003: pool 10.6.168.131-133, reserved .131-.132: the only free address is .133.
    let subnet: IpNet = "10.6.0.0/16".parse().unwrap();
    let pool = IpSet::from_ranges(
        IpFamily::V4,
        Some(&subnet),
        &["10.6.168.131-10.6.168.133".parse().unwrap()],
    );
    let reserved = IpSet::from_ranges(
        IpFamily::V4,
        None,
        &["10.6.168.131-10.6.168.132".parse().unwrap()],
    );
    let allocated = IpSet::for_subnet(&subnet);
    let start = subnet.network();
    assert_eq!(
        pool.first_free(&[&allocated, &reserved], start),
        Some("10.6.168.133".parse().unwrap())
    );
    let mut allocated = allocated;
    allocated.insert("10.6.168.133".parse().unwrap());
    assert_eq!(pool.first_free(&[&allocated, &reserved], start), None);
}

#[test]
fn first_free_ignores_taken_addresses_below_the_pool_subnet() {
    // A family-wide reserved set holding an address below the pool's subnet must still keep
    // the pool's own reserved addresses out.
    let subnet: IpNet = "192.168.0.0/24".parse().unwrap();
    let pool = IpSet::from_ranges(
        IpFamily::V4,
        Some(&subnet),
        &["192.168.0.1-192.168.0.10".parse().unwrap()],
    );
    let reserved = IpSet::from_ranges(
        IpFamily::V4,
        None,
        &[
            "10.0.0.5".parse().unwrap(),
            "192.168.0.1-192.168.0.3".parse().unwrap(),
        ],
    );
    let allocated = IpSet::for_subnet(&subnet);
    assert_eq!(
        pool.first_free(&[&allocated, &reserved], subnet.network()),
        Some("192.168.0.4".parse().unwrap())
    );
}

// ----- range strings: merge against a BTreeSet -----

proptest! {
    #[test]
    fn merged_range_strings_equal_the_model(spans in prop::collection::vec((0u32..80, 0u32..6), 0..8)) {
        let strings: Vec<String> = spans
            .iter()
            .map(|&(s, l)| {
                let a = std::net::Ipv4Addr::from(0x0a06_0000 + s);
                let b = std::net::Ipv4Addr::from(0x0a06_0000 + s + l);
                if l == 0 { a.to_string() } else { format!("{a}-{b}") }
            })
            .collect();
        let model: BTreeSet<u32> = spans.iter().flat_map(|&(s, l)| s..=s + l).collect();
        let merged = spiderpool_core::ip::merge_ip_ranges(IpFamily::V4, &strings).unwrap();
        let reparsed: BTreeSet<u32> = merged
            .iter()
            .flat_map(|r| {
                let r: IpRange = r.parse().unwrap();
                let (s, e) = (value(r.start()) as u32, value(r.end()) as u32);
                (s..=e).map(|v| v - 0x0a06_0000)
            })
            .collect();
        prop_assert_eq!(&reparsed, &model);
        // Shortest: runs are sorted and separated by a gap.
        let runs: Vec<IpRange> = merged.iter().map(|r| r.parse().unwrap()).collect();
        for w in runs.windows(2) {
            prop_assert!(value(w[0].end()) + 1 < value(w[1].start()));
        }
        // Canonical: merging again changes nothing.
        prop_assert_eq!(spiderpool_core::ip::merge_ip_ranges(IpFamily::V4, &merged).unwrap(), merged.clone());
    }
}

#[test]
fn most_of_a_chunk_is_exact_at_both_ends() {
    // Ranges over all of a 2^32 block but its edges take roaring's full-bitmap path.
    for (range, first, last, len) in [
        (
            "fd00::1-fd00::ffff:ffff",
            "fd00::1",
            "fd00::ffff:ffff",
            (1u128 << 32) - 1,
        ),
        (
            "fd00::2-fd00::ffff:fffe",
            "fd00::2",
            "fd00::ffff:fffe",
            (1u128 << 32) - 3,
        ),
        (
            "fd00::1:0-fd00::ffff:0",
            "fd00::1:0",
            "fd00::ffff:0",
            (1u128 << 32) - 0x2_0000 + 1,
        ),
        (
            "fd00::1:1-fd00::1:0:0",
            "fd00::1:1",
            "fd00::1:0:0",
            (1u128 << 32) - 0x1_0000,
        ),
    ] {
        let set = IpSet::from_ranges(
            IpFamily::V6,
            Some(&"fd00::/64".parse().unwrap()),
            &[range.parse().unwrap()],
        );
        assert_eq!(set.len().to_u128(), Some(len), "{range}");
        assert_eq!(set.first(), Some(first.parse().unwrap()), "{range}");
        assert_eq!(set.last(), Some(last.parse().unwrap()), "{range}");
        assert_eq!(set.to_range_strings(), vec![range.to_string()]);
        set.validate_invariants().unwrap();
    }
}
