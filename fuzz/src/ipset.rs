//! `ipset`: every `IpSet` operation, differential against a naive model.
//!
//! The input picks a window of the address space (the same ones as
//! `spiderpool-core/tests/ip_set_props.rs`: inside an IPv4 /16, at the top of IPv4, around a
//! 2^32-offset chunk border of an IPv6 /64, at the very top of IPv6) and a sequence of
//! inserts and removals of addresses and ranges on two sets `a` and `b`. Offsets are either
//! small (inside the window) or whole chunks of 2^32 addresses away, so full-chunk runs and
//! partial chunks are both exercised. The model is a sorted list of disjoint, non-adjacent
//! inclusive intervals of address values, with operations written the obvious way.
//! Compared: contents, counts, runs, first/last, membership at every interval edge,
//! `next_at_or_after`, `next_absent_at_or_after`, `first_free`, union, intersection,
//! difference (both orders, methods and operators), subset, intersects, equality, iteration
//! and the range strings.

use std::net::IpAddr;

use arbitrary::{Arbitrary, Unstructured};
use ipnet::IpNet;
use spiderpool_core::ip::{IpCount, IpFamily, IpRange, IpSet};

/// (family, subnet the sets are built for, first address value of the window).
const WINDOWS: [(IpFamily, &str, u128); 5] = [
    (IpFamily::V4, "10.6.0.0/16", 0x0a06_0000),
    (IpFamily::V4, "0.0.0.0/0", u32::MAX as u128 - 40),
    (
        IpFamily::V6,
        "fd00::/64",
        (0xfd00u128 << 112) + (1u128 << 32) - 30,
    ),
    (IpFamily::V6, "fd00::/48", 0xfd00u128 << 112),
    (IpFamily::V6, "ffff::/16", u128::MAX - (9u128 << 32)),
];

/// Offsets inside a window: `Small` addresses near its start, `Chunk` addresses near a
/// multiple of 2^32 after it (IPv6 windows only; IPv4 windows fold it into a small offset).
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Off {
    Small(u8),
    Chunk { chunks: u8, delta: i8 },
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Op {
    Insert(bool, Off),
    Remove(bool, Off),
    InsertRange(bool, Off, Off),
    RemoveRange(bool, Off, Off),
    Optimize(bool),
    /// `a` becomes `a ∪ b`, `a ∩ b` or `a − b` (0, 1, 2).
    Combine(u8),
    Swap,
}

#[derive(Debug, Arbitrary)]
struct Input {
    window: u8,
    /// `b` is built for the window's subnet, else for the whole family (another base).
    b_same_base: bool,
    ops: Vec<Op>,
    cursors: Vec<Off>,
}

struct Window {
    family: IpFamily,
    subnet: IpNet,
    lo: u128,
}

impl Window {
    fn max(&self) -> u128 {
        self.family.max_value()
    }

    fn value(&self, off: Off) -> u128 {
        let rel: i128 = match off {
            Off::Small(s) => i128::from(s % 64),
            Off::Chunk { chunks, delta } if self.family == IpFamily::V6 => {
                (i128::from(chunks % 8) << 32) + i128::from(delta % 4)
            }
            Off::Chunk { chunks, delta } => i128::from((chunks ^ delta as u8) % 64),
        };
        let v = if rel < 0 {
            self.lo.saturating_sub(rel.unsigned_abs())
        } else {
            self.lo.saturating_add(rel as u128)
        };
        v.min(self.max())
    }

    fn addr(&self, v: u128) -> IpAddr {
        self.family.addr(v).unwrap()
    }
}

/// Sorted, disjoint, non-adjacent inclusive intervals.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model(Vec<(u128, u128)>);

impl Model {
    fn normalize(mut list: Vec<(u128, u128)>) -> Model {
        list.sort();
        let mut out: Vec<(u128, u128)> = Vec::new();
        for (s, e) in list {
            if let Some(last) = out.last_mut() {
                if last.1 == u128::MAX || s <= last.1 + 1 {
                    last.1 = last.1.max(e);
                    continue;
                }
            }
            out.push((s, e));
        }
        Model(out)
    }

    fn insert(&mut self, s: u128, e: u128) {
        let mut list = std::mem::take(&mut self.0);
        list.push((s, e));
        *self = Model::normalize(list);
    }

    fn remove(&mut self, s: u128, e: u128) {
        let mut out = Vec::new();
        for &(a, b) in &self.0 {
            if b < s || a > e {
                out.push((a, b));
                continue;
            }
            if a < s {
                out.push((a, s - 1));
            }
            if b > e {
                out.push((e + 1, b));
            }
        }
        self.0 = out;
    }

    fn contains(&self, v: u128) -> bool {
        self.0.iter().any(|&(s, e)| s <= v && v <= e)
    }

    fn union(&self, o: &Model) -> Model {
        Model::normalize(self.0.iter().chain(&o.0).copied().collect())
    }

    fn difference(&self, o: &Model) -> Model {
        let mut m = self.clone();
        for &(s, e) in &o.0 {
            m.remove(s, e);
        }
        m
    }

    fn intersection(&self, o: &Model) -> Model {
        self.difference(&self.difference(o))
    }

    fn len(&self) -> IpCount {
        self.0.iter().fold(IpCount::ZERO, |acc, &(s, e)| {
            acc + IpCount::from(e - s) + IpCount::from(1u128)
        })
    }

    fn next_at_or_after(&self, v: u128) -> Option<u128> {
        self.0
            .iter()
            .find(|&&(_, e)| e >= v)
            .map(|&(s, _)| s.max(v))
    }

    fn next_absent_at_or_after(&self, v: u128, max: u128) -> Option<u128> {
        let mut v = v;
        for &(s, e) in &self.0 {
            if e < v {
                continue;
            }
            if s > v {
                return Some(v);
            }
            if e >= max {
                return None;
            }
            v = e + 1;
        }
        Some(v)
    }
}

fn value(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The `ipset` target.
pub fn ipset(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let (family, subnet, lo) = WINDOWS[usize::from(input.window) % WINDOWS.len()];
    let w = Window {
        family,
        subnet: subnet.parse().unwrap(),
        lo,
    };
    let mut a = IpSet::for_subnet(&w.subnet);
    let mut b = if input.b_same_base {
        IpSet::for_subnet(&w.subnet)
    } else {
        IpSet::new(family)
    };
    let (mut ma, mut mb) = (Model::default(), Model::default());
    for op in input.ops.iter().take(48) {
        match *op {
            Op::Insert(on_a, o) => {
                let (s, m) = if on_a {
                    (&mut a, &mut ma)
                } else {
                    (&mut b, &mut mb)
                };
                let v = w.value(o);
                assert_eq!(s.insert(w.addr(v)), !m.contains(v), "insert {}", w.addr(v));
                m.insert(v, v);
            }
            Op::Remove(on_a, o) => {
                let (s, m) = if on_a {
                    (&mut a, &mut ma)
                } else {
                    (&mut b, &mut mb)
                };
                let v = w.value(o);
                assert_eq!(s.remove(w.addr(v)), m.contains(v), "remove {}", w.addr(v));
                m.remove(v, v);
            }
            Op::InsertRange(on_a, x, y) | Op::RemoveRange(on_a, x, y) => {
                let (s, m) = if on_a {
                    (&mut a, &mut ma)
                } else {
                    (&mut b, &mut mb)
                };
                let (x, y) = (w.value(x), w.value(y));
                let (lo, hi) = (x.min(y), x.max(y));
                let r = IpRange::new(w.addr(lo), w.addr(hi)).unwrap();
                if matches!(op, Op::InsertRange(..)) {
                    s.insert_range(&r);
                    m.insert(lo, hi);
                } else {
                    s.remove_range(&r);
                    m.remove(lo, hi);
                }
            }
            Op::Optimize(on_a) => {
                let s = if on_a { &mut a } else { &mut b };
                let before = s.clone();
                s.optimize();
                assert_eq!(*s, before);
            }
            Op::Combine(k) => {
                (a, ma) = match k % 3 {
                    0 => (a.union(&b), ma.union(&mb)),
                    1 => (a.intersection(&b), ma.intersection(&mb)),
                    _ => (a.difference(&b), ma.difference(&mb)),
                };
            }
            Op::Swap => {
                std::mem::swap(&mut a, &mut b);
                std::mem::swap(&mut ma, &mut mb);
            }
        }
        a.validate_invariants().unwrap();
        b.validate_invariants().unwrap();
    }
    let cursors: Vec<u128> = input.cursors.iter().take(8).map(|&o| w.value(o)).collect();
    check_same(&w, &a, &ma, &cursors);
    check_same(&w, &b, &mb, &cursors);
    let (u, i, d, d2) = (
        ma.union(&mb),
        ma.intersection(&mb),
        ma.difference(&mb),
        mb.difference(&ma),
    );
    check_same(&w, &a.union(&b), &u, &cursors);
    check_same(&w, &(&b | &a), &u, &cursors);
    check_same(&w, &a.intersection(&b), &i, &cursors);
    check_same(&w, &(&b & &a), &i, &cursors);
    check_same(&w, &a.difference(&b), &d, &cursors);
    check_same(&w, &(&b - &a), &d2, &cursors);
    assert_eq!(a.is_subset(&b), d.0.is_empty());
    assert_eq!(a.intersects(&b), !i.0.is_empty());
    assert_eq!(a == b, ma == mb);
    for &c in &cursors {
        let free = d.next_at_or_after(c).map(|v| w.addr(v));
        assert_eq!(a.first_free(&[&b], w.addr(c)), free, "first_free from {c}");
        let none = IpSet::new(family);
        assert_eq!(a.first_free(&[&none, &b], w.addr(c)), free);
    }
}

fn check_same(w: &Window, set: &IpSet, m: &Model, cursors: &[u128]) {
    set.validate_invariants().unwrap();
    assert_eq!(set.family(), w.family);
    assert_eq!(set.len(), m.len());
    assert_eq!(set.is_empty(), m.0.is_empty());
    let runs: Vec<(u128, u128)> = set
        .runs()
        .map(|r| (value(r.start()), value(r.end())))
        .collect();
    assert_eq!(runs, m.0, "runs");
    assert_eq!(set.first(), m.0.first().map(|&(s, _)| w.addr(s)));
    assert_eq!(set.last(), m.0.last().map(|&(_, e)| w.addr(e)));
    let mut probes: Vec<u128> = cursors.to_vec();
    for &(s, e) in &m.0 {
        probes.extend([s.saturating_sub(1), s, e, e.saturating_add(1).min(w.max())]);
    }
    for v in probes {
        let x = w.addr(v);
        assert_eq!(set.contains(x), m.contains(v), "contains {x}");
        assert_eq!(
            set.next_at_or_after(x),
            m.next_at_or_after(v).map(|v| w.addr(v)),
            "next_at_or_after {x}"
        );
        assert_eq!(
            set.next_absent_at_or_after(x),
            m.next_absent_at_or_after(v, w.max()).map(|v| w.addr(v)),
            "next_absent_at_or_after {x}"
        );
    }
    let listed: Vec<IpAddr> = set.iter().take(200).collect();
    let expected: Vec<IpAddr> =
        m.0.iter()
            .flat_map(|&(s, e)| (s..=e).map(|v| w.addr(v)))
            .take(200)
            .collect();
    assert_eq!(listed, expected);
    let strings = set.to_range_strings();
    let reparsed = IpSet::from_ranges(
        w.family,
        Some(&w.subnet),
        &strings
            .iter()
            .map(|s| s.parse().unwrap())
            .collect::<Vec<IpRange>>(),
    );
    assert_eq!(&reparsed, set);
    assert_eq!(set.clone(), *set);
}
