//! Property tests: the pool allocation index against the naive computation.
//!
//! Random sequences of allocate, release, hold-a-given-address and undo run on a
//! [`PoolIndex`]; after every step the index's lowest free address must equal
//! `min(usable − allocated − reserved)` computed address by address, its invariants hold, its
//! encoding equals what `SpiderIPPool::set_allocations` writes for the model's records, and
//! decoding that encoding gives the same index. Pools straddle the 2^32-offset chunk borders
//! (IPv6), and one starts on whole free chunks so that full chunks are split and rejoined.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;
use spiderpool_core::allocate::{Held, PoolIndex};
use spiderpool_core::ip::{IpFamily, IpRange, IpSet};
use spiderpool_core::model::{IPPoolSpec, PoolIPAllocation, PoolIPAllocations, SpiderIPPool};
use spiderpool_core::select::Rejection;

/// (subnet, ips, excludeIPs, first value of the window addresses are drawn from, width)
fn pools() -> Vec<(&'static str, &'static str, &'static str, u128, u128)> {
    vec![
        (
            "10.6.0.0/16",
            "10.6.0.1-10.6.0.40",
            "10.6.0.7-10.6.0.9",
            0x0a06_0000,
            48,
        ),
        // Around the first chunk border.
        (
            "fd00::/64",
            "fd00::ffff:ffe0-fd00::1:0:20",
            "fd00::1:0:3",
            (0xfd00u128 << 112) + (1u128 << 32) - 40,
            80,
        ),
        // Whole free chunks 1..=3: allocations split a full chunk, releases rejoin it.
        (
            "fd00::/64",
            "fd00::1:0:0-fd00::3:ffff:ffff",
            "fd00::1:0:5",
            (0xfd00u128 << 112) + (1u128 << 32) - 8,
            48,
        ),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    /// Allocate the lowest free address for a new holder.
    Allocate,
    /// Release the k-th record (if any).
    Release(usize),
    /// Hold the window's address at offset `i` (whether usable or not).
    Hold(u128),
    /// Undo everything since the last undo point.
    Undo,
    /// Start a new undo point.
    Mark,
    /// Write the pool: later encodings copy its unchanged records from this text.
    Write,
    /// Decode the index again from the pool's current text (an undo point).
    Reload,
    /// Build the lookup by pod name (kept up to date from then on).
    IndexPodNames,
    /// Build the lookup by pod uid (kept up to date from then on).
    IndexLookups,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Allocate),
        3 => (0usize..64).prop_map(Op::Release),
        2 => (0u128..96).prop_map(Op::Hold),
        1 => Just(Op::Undo),
        1 => Just(Op::Mark),
        1 => Just(Op::Write),
        1 => Just(Op::Reload),
        1 => Just(Op::IndexPodNames),
        1 => Just(Op::IndexLookups),
    ]
}

fn spec(subnet: &str, ips: &str, exclude: &str) -> IPPoolSpec {
    IPPoolSpec {
        subnet: subnet.into(),
        ips: vec![ips.into()],
        exclude_ips: vec![exclude.into()],
        ..IPPoolSpec::default()
    }
}

fn value(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn range(family: IpFamily, s: &str) -> (u128, u128) {
    let r = IpRange::parse(Some(family), s).unwrap();
    (value(r.start()), value(r.end()))
}

fn rec(n: usize) -> PoolIPAllocation {
    PoolIPAllocation {
        pod: format!("ns/pod-{}", n % 7),
        pod_uid: format!("uid-{n}"),
        interface: (!n.is_multiple_of(3)).then(|| "eth0".to_string()),
        extra: Default::default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn index_agrees_with_naive(
        which in 0usize..3,
        reserved_at in proptest::collection::vec((0u128..96, 0u128..6), 0..4),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let (subnet, ips, exclude, lo, width) = pools()[which];
        let spec = spec(subnet, ips, exclude);
        let family = if subnet.contains(':') { IpFamily::V6 } else { IpFamily::V4 };
        let (us, ue) = range(family, ips);
        let (xs, xe) = range(family, exclude);
        let usable = |v: u128| us <= v && v <= ue && !(xs <= v && v <= xe);
        let mut reserved = IpSet::new(family);
        let mut reserved_naive = Vec::new();
        for (at, len) in &reserved_at {
            let s = lo + at;
            let r = IpRange::new(family.addr(s).unwrap(), family.addr(s + len).unwrap()).unwrap();
            reserved.insert_range(&r);
            reserved_naive.push((s, s + len));
        }
        let is_reserved = |v: u128| reserved_naive.iter().any(|&(s, e)| s <= v && v <= e);

        let mut index = PoolIndex::empty(&spec).unwrap();
        let mut model: BTreeMap<u128, PoolIPAllocation> = BTreeMap::new();
        let mut journal = Vec::new();
        let mut marked: BTreeMap<u128, PoolIPAllocation> = BTreeMap::new();
        let mut n = 0usize;
        let wire = |model: &BTreeMap<u128, PoolIPAllocation>| {
            let records: PoolIPAllocations = model
                .iter()
                .map(|(v, r)| (family.addr(*v).unwrap().to_string(), r.clone()))
                .collect();
            let mut pool = SpiderIPPool::new("p", spec.clone());
            pool.set_allocations(&records);
            pool
        };
        for op in ops {
            match op {
                Op::Allocate => {
                    n += 1;
                    let got = index.allocate(Arc::new(rec(n)), &reserved, &mut journal);
                    // Naive: the lowest usable address neither allocated nor reserved.
                    let mut v = us;
                    let want = loop {
                        if v > ue { break None; }
                        if usable(v) && !model.contains_key(&v) && !is_reserved(v) { break Some(v); }
                        v += 1;
                    };
                    match (got, want) {
                        (Ok(a), Some(w)) => {
                            prop_assert_eq!(value(a), w);
                            model.insert(w, rec(n));
                        }
                        (Err(Rejection::Exhausted { .. }), None) => {
                            prop_assert!((us..=ue).all(|v| !usable(v) || model.contains_key(&v)));
                        }
                        (Err(Rejection::AllFreeReserved { .. }), None) => {
                            prop_assert!((us..=ue).any(|v| usable(v) && !model.contains_key(&v)));
                        }
                        (got, want) => prop_assert!(false, "index {:?}, naive {:?}", got, want),
                    }
                }
                Op::Release(k) => {
                    let Some(&v) = model.keys().nth(k % model.len().max(1)) else { continue };
                    prop_assert!(index.release(family.addr(v).unwrap(), &mut journal));
                    model.remove(&v);
                }
                Op::Hold(i) => {
                    n += 1;
                    let v = lo + i % width;
                    let a = family.addr(v).unwrap();
                    let old = index.set(a, Some(Held::new(Arc::new(rec(n)))));
                    journal.push((a, old));
                    model.insert(v, rec(n));
                }
                Op::Undo => {
                    index.undo(&mut journal);
                    model = marked.clone();
                }
                Op::Mark => {
                    journal.clear();
                    marked = model.clone();
                }
                Op::Write => {
                    prop_assert_eq!(index.encode_written(), wire(&model).status.allocated_ips);
                }
                Op::Reload => {
                    index = PoolIndex::from_pool(&wire(&model)).unwrap();
                    journal.clear();
                    marked = model.clone();
                }
                Op::IndexPodNames => index.index_pod_names(),
                Op::IndexLookups => index.index_lookups(),
            }
            index.validate_invariants().map_err(TestCaseError::fail)?;
            // Lowest free = min(usable − allocated − reserved), also through IpSet::first_free.
            let naive = (us..=ue).find(|&v| usable(v) && !model.contains_key(&v) && !is_reserved(v));
            prop_assert_eq!(index.lowest_free(&reserved).map(value), naive);
            let first_free = index.usable().first().and_then(|start| {
                index.usable().first_free(&[&index.allocated(), &reserved], start)
            });
            prop_assert_eq!(first_free.map(value), naive);
            // The wire encoding is the one of the naive records, and decodes to the same index.
            let pool = wire(&model);
            prop_assert_eq!(index.encode(), pool.status.allocated_ips.clone());
            let decoded = PoolIndex::from_pool(&pool).unwrap();
            prop_assert_eq!(decoded.free(), index.free());
            prop_assert_eq!(decoded.allocated(), index.allocated());
            prop_assert_eq!(decoded.len(), index.len());
            // Lookups by uid and by pod name (with or without its map) agree with a scan.
            for (v, r) in &model {
                let a = family.addr(*v).unwrap();
                prop_assert!(index.held_by_uid(&r.pod_uid).contains(&a));
                prop_assert!(index.held_by_pod(&r.pod).contains(&a));
                prop_assert!(decoded.held_by_pod(&r.pod).contains(&a));
                prop_assert!(decoded.held_by_uid(&r.pod_uid).contains(&a));
                let key = a.to_string();
                prop_assert_eq!(index.get_key(&key).map(|(x, _)| x), Some(a));
            }
        }
    }

    /// `allocate_avoiding` passes over the in-flight addresses to the next free one past its
    /// first choice, else to the lowest free one not in flight, else takes its first choice.
    #[test]
    fn allocation_passes_over_in_flight_addresses(
        which in 0usize..3,
        held in proptest::collection::vec(0u128..96, 0..60),
        reserved_at in proptest::collection::vec(0u128..96, 0..8),
        in_flight in proptest::collection::vec(0u128..96, 0..12),
        skip in 0u64..6,
    ) {
        let (subnet, ips, exclude, lo, _) = pools()[which];
        let spec = spec(subnet, ips, exclude);
        let family = if subnet.contains(':') { IpFamily::V6 } else { IpFamily::V4 };
        let (us, ue) = range(family, ips);
        let (xs, xe) = range(family, exclude);
        let usable = |v: u128| us <= v && v <= ue && !(xs <= v && v <= xe);
        let mut index = PoolIndex::empty(&spec).unwrap();
        let mut journal = Vec::new();
        let mut taken = std::collections::BTreeSet::new();
        for (n, h) in held.iter().enumerate() {
            let v = lo + h;
            if usable(v) {
                index.set(family.addr(v).unwrap(), Some(Held::new(Arc::new(rec(n)))));
                taken.insert(v);
            }
        }
        let mut reserved = IpSet::new(family);
        for r in &reserved_at {
            reserved.insert(family.addr(lo + r).unwrap());
        }
        let mut avoid: Vec<IpAddr> = in_flight.iter().map(|v| family.addr(lo + v).unwrap()).collect();
        avoid.sort();
        avoid.dedup();
        let free = |v: u128| usable(v) && !taken.contains(&v) && !reserved_at.contains(&(v - lo));
        // The first choice: `skip` free addresses past the lowest (the highest when fewer).
        // (Lazily: a pool's range may be 2^64 addresses.)
        let first = (us..=ue).filter(|&v| free(v)).take(skip as usize + 1).last();
        let open = |v: &u128| free(*v) && !in_flight.contains(&(*v - lo));
        let past = first.and_then(|f| (f..=ue).find(open));
        let below = (us..=ue).find(open);
        let got = index.allocate_avoiding(Arc::new(rec(999)), &reserved, skip, &avoid, &mut journal);
        match (got, past.or(below).or(first)) {
            (Ok(a), Some(want)) => prop_assert_eq!(value(a), want),
            (Err(_), None) => {}
            (got, want) => prop_assert!(false, "index {:?}, naive {:?}", got, want),
        }
    }

    /// `next_at_or_after` and `next_absent_at_or_after` against a scan.
    #[test]
    fn cursors_agree_with_naive(
        which in 0usize..3,
        held in proptest::collection::vec(0u128..96, 0..40),
        cursor in 0u128..96,
    ) {
        let (subnet, ips, _, lo, _) = pools()[which];
        let family = if subnet.contains(':') { IpFamily::V6 } else { IpFamily::V4 };
        let mut set = IpSet::new(family);
        for h in &held {
            set.insert(family.addr(lo + h).unwrap());
        }
        let _ = ips;
        let c = family.addr(lo + cursor).unwrap();
        let present = |v: u128| held.contains(&(v - lo));
        let next = (lo + cursor..lo + 96).find(|&v| present(v));
        prop_assert_eq!(set.next_at_or_after(c).map(value), next);
        let absent = (lo + cursor..).find(|&v| !present(v));
        prop_assert_eq!(set.next_absent_at_or_after(c).map(value), absent);
    }
}

#[test]
fn full_chunks_absent_and_lazy_free() {
    // A set of whole chunks: the first absent address is past them.
    let mut set = IpSet::new(IpFamily::V6);
    let r = IpRange::parse(Some(IpFamily::V6), "fd00::1:0:0-fd00::3:ffff:ffff").unwrap();
    set.insert_range(&r);
    let a: IpAddr = "fd00::1:0:5".parse().unwrap();
    assert_eq!(
        set.next_absent_at_or_after(a),
        Some("fd00::4:0:0".parse().unwrap())
    );
    // The very end of the family: nothing absent after it.
    let mut top = IpSet::new(IpFamily::V6);
    top.insert_range(
        &IpRange::parse(
            Some(IpFamily::V6),
            "ffff::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        )
        .unwrap(),
    );
    assert_eq!(
        top.next_absent_at_or_after("ffff::1".parse().unwrap()),
        None
    );
}

/// A retry's first choice (`skip` past the lowest) with every free address from it on in
/// flight: the lowest free one not in flight, below it, rather than a certain conflict.
#[test]
fn in_flight_past_a_spread_choice_falls_back_below_it() {
    let spec = spec("10.9.0.0/24", "10.9.0.1-10.9.0.6", "10.9.0.200");
    let mut index = PoolIndex::empty(&spec).unwrap();
    let reserved = IpSet::new(IpFamily::V4);
    let in_flight: Vec<IpAddr> = ["10.9.0.4", "10.9.0.5", "10.9.0.6"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let got = index
        .allocate_avoiding(Arc::new(rec(1)), &reserved, 3, &in_flight, &mut Vec::new())
        .unwrap();
    assert_eq!(got.to_string(), "10.9.0.1");
    // All in flight: the first choice.
    let all: Vec<IpAddr> = (2..=6)
        .map(|i| format!("10.9.0.{i}").parse().unwrap())
        .collect();
    let got = index
        .allocate_avoiding(Arc::new(rec(2)), &reserved, 1, &all, &mut Vec::new())
        .unwrap();
    assert_eq!(got.to_string(), "10.9.0.3");
}
