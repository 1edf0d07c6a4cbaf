//! [`Part`]: the addresses of one partial chunk of an [`super::IpSet`] (the low 32 bits of
//! their offsets), kept as whichever side is smaller: the offsets present, or, for a chunk
//! that is mostly full, the offsets absent (its *holes*).
//!
//! A roaring bitmap costs one container per 65,536 values it touches, so a chunk holding all
//! but a few of its 2^32 offsets (an IPv6 range such as `fd00::2-fd00::ffff:ffff`, the first
//! chunk of a whole /64) would be 65,536 containers, and every copy, union or difference of
//! it as many allocations: milliseconds. Kept as its holes it is a few bytes. Every operation
//! below returns the smaller side again ([`Part::normalized`]).

use roaring::RoaringBitmap;

/// Offsets of a chunk.
const CHUNK: u64 = 1 << 32;
/// Past this many offsets, the other side is the smaller one.
const HALF: u64 = 1 << 31;

/// The offsets of one partial chunk. See the [module docs](self).
#[derive(Clone, Debug)]
pub(super) enum Part {
    /// The offsets present.
    Bits(RoaringBitmap),
    /// Every offset but these.
    Holes(RoaringBitmap),
}

impl Part {
    /// No offset (the start of a chunk filled one offset at a time).
    pub(super) fn empty() -> Part {
        Part::Bits(RoaringBitmap::new())
    }

    /// Every offset (a full chunk about to lose some).
    pub(super) fn full() -> Part {
        Part::Holes(RoaringBitmap::new())
    }

    /// The offsets `lo..=hi`, on the smaller side.
    pub(super) fn range(lo: u32, hi: u32) -> Part {
        let count = u64::from(hi) - u64::from(lo) + 1;
        if count > HALF {
            let mut holes = RoaringBitmap::new();
            holes.insert_range(..lo);
            if let Some(after) = hi.checked_add(1) {
                holes.insert_range(after..);
            }
            Part::Holes(holes)
        } else {
            let mut bits = RoaringBitmap::new();
            bits.insert_range(lo..=hi);
            Part::Bits(bits)
        }
    }

    /// The same offsets, on the smaller side.
    fn normalized(self) -> Part {
        match self {
            Part::Bits(m) if m.len() > HALF => Part::Holes(complement(&m)),
            Part::Holes(h) if h.len() > HALF => Part::Bits(complement(&h)),
            p => p,
        }
    }

    /// The bitmap stored (present or absent offsets).
    pub(super) fn stored(&self) -> &RoaringBitmap {
        match self {
            Part::Bits(m) | Part::Holes(m) => m,
        }
    }

    /// Number of offsets present.
    pub(super) fn len(&self) -> u64 {
        match self {
            Part::Bits(m) => m.len(),
            Part::Holes(h) => CHUNK - h.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        match self {
            Part::Bits(m) => m.is_empty(),
            Part::Holes(h) => h.is_full(),
        }
    }

    pub(super) fn is_full(&self) -> bool {
        match self {
            Part::Bits(m) => m.is_full(),
            Part::Holes(h) => h.is_empty(),
        }
    }

    pub(super) fn contains(&self, x: u32) -> bool {
        match self {
            Part::Bits(m) => m.contains(x),
            Part::Holes(h) => !h.contains(x),
        }
    }

    /// Adds `x`; true when it was absent.
    pub(super) fn insert(&mut self, x: u32) -> bool {
        match self {
            Part::Bits(m) => m.insert(x),
            Part::Holes(h) => h.remove(x),
        }
    }

    /// Removes `x`; true when it was present.
    pub(super) fn remove(&mut self, x: u32) -> bool {
        match self {
            Part::Bits(m) => m.remove(x),
            Part::Holes(h) => h.insert(x),
        }
    }

    /// Adds `lo..=hi`.
    pub(super) fn insert_range(&mut self, lo: u32, hi: u32) {
        let big = u64::from(hi) - u64::from(lo) + 1 > HALF;
        match self {
            Part::Bits(m) if !big => {
                m.insert_range(lo..=hi);
            }
            Part::Holes(h) => {
                h.remove_range(lo..=hi);
            }
            Part::Bits(_) => *self = self.union(&Part::range(lo, hi)),
        }
        self.normalize();
    }

    /// Removes `lo..=hi`.
    pub(super) fn remove_range(&mut self, lo: u32, hi: u32) {
        let big = u64::from(hi) - u64::from(lo) + 1 > HALF;
        match self {
            Part::Bits(m) => {
                m.remove_range(lo..=hi);
            }
            Part::Holes(h) if !big => {
                h.insert_range(lo..=hi);
            }
            Part::Holes(_) => *self = self.difference(&Part::range(lo, hi)),
        }
        self.normalize();
    }

    fn normalize(&mut self) {
        let p = std::mem::replace(self, Part::empty());
        *self = p.normalized();
    }

    /// Offsets in either.
    pub(super) fn union(&self, other: &Part) -> Part {
        use Part::{Bits, Holes};
        match (self, other) {
            (Bits(a), Bits(b)) => Bits(a | b),
            (Holes(h), Bits(b)) | (Bits(b), Holes(h)) => Holes(h - b),
            (Holes(a), Holes(b)) => Holes(a & b),
        }
        .normalized()
    }

    /// Offsets in both.
    pub(super) fn intersection(&self, other: &Part) -> Part {
        use Part::{Bits, Holes};
        match (self, other) {
            (Bits(a), Bits(b)) => Bits(a & b),
            (Holes(h), Bits(b)) | (Bits(b), Holes(h)) => Bits(b - h),
            (Holes(a), Holes(b)) => Holes(a | b),
        }
        .normalized()
    }

    /// Offsets in `self` but not in `other`.
    pub(super) fn difference(&self, other: &Part) -> Part {
        use Part::{Bits, Holes};
        match (self, other) {
            (Bits(a), Bits(b)) => Bits(a - b),
            (Bits(a), Holes(h)) => Bits(a & h),
            (Holes(h), Bits(b)) => Holes(h | b),
            (Holes(a), Holes(b)) => Bits(b - a),
        }
        .normalized()
    }

    /// The chunk's other offsets.
    pub(super) fn complement(&self) -> Part {
        match self {
            Part::Bits(m) => Part::Holes(m.clone()),
            Part::Holes(h) => Part::Bits(h.clone()),
        }
    }

    pub(super) fn min(&self) -> Option<u32> {
        self.next_at_or_after(0)
    }

    pub(super) fn max(&self) -> Option<u32> {
        match self {
            Part::Bits(m) => m.max(),
            Part::Holes(h) => match h.iter().next_range_back() {
                Some(run) if *run.end() == u32::MAX => run.start().checked_sub(1),
                _ => Some(u32::MAX),
            },
        }
    }

    /// The lowest offset present at or after `lo`.
    pub(super) fn next_at_or_after(&self, lo: u32) -> Option<u32> {
        match self {
            Part::Bits(m) => m.range(lo..).next(),
            Part::Holes(h) => first_absent(h, lo),
        }
    }

    /// The lowest offset absent at or after `lo`.
    pub(super) fn next_absent_at_or_after(&self, lo: u32) -> Option<u32> {
        match self {
            Part::Bits(m) => first_absent(m, lo),
            Part::Holes(h) => h.range(lo..).next(),
        }
    }

    /// Run-length encodes the stored bitmap's containers where that is smaller.
    pub(super) fn optimize(&mut self) {
        match self {
            Part::Bits(m) | Part::Holes(m) => {
                m.optimize();
            }
        }
    }

    /// The maximal runs of offsets present, ascending.
    pub(super) fn runs(&self) -> PartRuns<'_> {
        match self {
            Part::Bits(m) => PartRuns::Bits(m.iter()),
            Part::Holes(h) => PartRuns::Holes {
                holes: h.iter(),
                next: Some(0),
            },
        }
    }
}

/// The runs of a [`Part`]; see [`Part::runs`].
pub(super) enum PartRuns<'a> {
    Bits(roaring::bitmap::Iter<'a>),
    Holes {
        holes: roaring::bitmap::Iter<'a>,
        /// Where the next run may start (`None`: past the chunk's end).
        next: Option<u32>,
    },
}

impl PartRuns<'_> {
    pub(super) fn next_run(&mut self) -> Option<(u32, u32)> {
        match self {
            PartRuns::Bits(it) => it.next_range().map(|r| (*r.start(), *r.end())),
            PartRuns::Holes { holes, next } => loop {
                let start = (*next)?;
                match holes.next_range() {
                    Some(hole) => {
                        let (hs, he) = (*hole.start(), *hole.end());
                        *next = he.checked_add(1);
                        if hs > start {
                            return Some((start, hs - 1));
                        }
                    }
                    None => {
                        *next = None;
                        return Some((start, u32::MAX));
                    }
                }
            },
        }
    }
}

/// The lowest value at or after `lo` that is not in `used`.
pub(super) fn first_absent(used: &RoaringBitmap, lo: u32) -> Option<u32> {
    let mut it = used.range(lo..);
    match it.next_range() {
        Some(run) if *run.start() == lo => run.end().checked_add(1),
        _ => Some(lo),
    }
}

/// The values of a chunk not in `m`, built run by run (no pass over a full bitmap).
fn complement(m: &RoaringBitmap) -> RoaringBitmap {
    let mut out = RoaringBitmap::new();
    let mut next: Option<u32> = Some(0);
    let mut it = m.iter();
    while let Some(run) = it.next_range() {
        let Some(from) = next else { break };
        if *run.start() > from {
            out.insert_range(from..*run.start());
        }
        next = run.end().checked_add(1);
    }
    if let Some(from) = next {
        out.insert_range(from..);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The part's offsets as runs, through its run iterator.
    fn runs(p: &Part) -> Vec<(u32, u32)> {
        let mut it = p.runs();
        std::iter::from_fn(|| it.next_run()).collect()
    }

    #[test]
    fn a_mostly_full_chunk_is_kept_as_its_holes() {
        let p = Part::range(2, u32::MAX - 1);
        assert!(matches!(&p, Part::Holes(h) if h.len() == 3));
        assert_eq!(p.len(), CHUNK - 3);
        assert_eq!(runs(&p), vec![(2, u32::MAX - 1)]);
        assert_eq!((p.min(), p.max()), (Some(2), Some(u32::MAX - 1)));
        assert!(!p.contains(1) && p.contains(2) && !p.contains(u32::MAX));
        assert_eq!(p.next_absent_at_or_after(5), Some(u32::MAX));
        assert_eq!(p.next_at_or_after(0), Some(2));
        // Taking one address out stays small.
        let mut q = p.clone();
        assert!(q.remove(7));
        assert!(!q.remove(7));
        assert_eq!(runs(&q), vec![(2, 6), (8, u32::MAX - 1)]);
        assert_eq!(q.stored().len(), 4);
        // A small range is kept as its bits.
        assert!(matches!(Part::range(10, 20), Part::Bits(m) if m.len() == 11));
    }

    #[test]
    fn set_operations_agree_across_sides() {
        // (lo, hi) pieces on either side of the half, as bits or holes.
        let pieces = [
            (0, 9),
            (5, 1 << 20),
            (3, u32::MAX - 3),
            (0, u32::MAX - 1),
            (1 << 31, u32::MAX),
        ];
        let member = |p: &Part, x: u32| p.contains(x);
        let probes: Vec<u32> = [0u32, 1, 2, 3, 4, 5, 9, 10, 1 << 20, (1 << 20) + 1, 1 << 31]
            .into_iter()
            .chain([(1u32 << 31) - 1, u32::MAX - 4, u32::MAX - 3, u32::MAX - 2])
            .chain([u32::MAX - 1, u32::MAX])
            .collect();
        for &(a_lo, a_hi) in &pieces {
            for &(b_lo, b_hi) in &pieces {
                let (a, b) = (Part::range(a_lo, a_hi), Part::range(b_lo, b_hi));
                let (u, i, d) = (a.union(&b), a.intersection(&b), a.difference(&b));
                for &x in &probes {
                    let (ia, ib) = (member(&a, x), member(&b, x));
                    assert_eq!(
                        u.contains(x),
                        ia || ib,
                        "{a_lo}-{a_hi} ∪ {b_lo}-{b_hi} @{x}"
                    );
                    assert_eq!(
                        i.contains(x),
                        ia && ib,
                        "{a_lo}-{a_hi} ∩ {b_lo}-{b_hi} @{x}"
                    );
                    assert_eq!(
                        d.contains(x),
                        ia && !ib,
                        "{a_lo}-{a_hi} − {b_lo}-{b_hi} @{x}"
                    );
                    assert_eq!(a.complement().contains(x), !ia);
                }
                for p in [&u, &i, &d] {
                    assert!(p.stored().len() <= HALF);
                    let total: u64 = runs(p)
                        .iter()
                        .map(|(s, e)| u64::from(*e) - u64::from(*s) + 1)
                        .sum();
                    assert_eq!(total, p.len());
                }
                let mut grown = a.clone();
                grown.insert_range(b_lo, b_hi);
                let mut shrunk = a.clone();
                shrunk.remove_range(b_lo, b_hi);
                for &x in &probes {
                    assert_eq!(grown.contains(x), u.contains(x));
                    assert_eq!(shrunk.contains(x), d.contains(x));
                }
            }
        }
        assert!(Part::full().is_full() && Part::empty().is_empty());
        assert_eq!(Part::full().max(), Some(u32::MAX));
        assert_eq!(
            Part::range(0, u32::MAX - 1).complement().max(),
            Some(u32::MAX)
        );
    }
}
