//! [`IpSet`]: an exact set of addresses of one family on `roaring` bitmaps.
//!
//! Layout: an address is stored as its offset from the set's base address (normally the
//! subnet's network address). The offset space is cut into chunks of 2^32 offsets. A chunk is
//! either *full*, kept in `full` as part of a run of consecutive full chunks, or *partial*, a
//! [`Part`] in `bits`: a `RoaringBitmap` of the low 32 bits present, or of those absent when
//! that is smaller (see `part.rs`). A pool `fd00::/64` with `ips: [fd00::1-fd00::ffff:ffff:ffff:ffff]`
//! is one partial chunk and one run of 2^32−1 full chunks: a few hundred bytes. Every operation
//! is exact; nothing is truncated and nothing walks addresses one by one.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use super::family::addr_value;
use super::intervals::{self, Interval};
use super::part::{Part, PartRuns};
use super::{IpCount, IpFamily, IpRange};
use ipnet::IpNet;

const CHUNK_BITS: u32 = 32;
const LOW_MASK: u128 = 0xFFFF_FFFF;

/// A set of addresses of one family.
///
/// Sets built for one subnet share its network address as base, and their binary operations
/// then work bitmap by bitmap. Sets with different bases still combine exactly (the result
/// takes the lower base); inserting an address below the base lowers the base.
#[derive(Clone)]
pub struct IpSet {
    family: IpFamily,
    base: u128,
    /// Runs of full chunks (chunk indices), normalised.
    full: Vec<Interval>,
    /// Partial chunks: non-empty, not full, not inside `full`.
    bits: BTreeMap<u128, Part>,
}

enum Chunk<'a> {
    Full,
    Part(&'a Part),
}

impl IpSet {
    /// An empty set of `family` whose base is the family's first address.
    pub fn new(family: IpFamily) -> Self {
        IpSet {
            family,
            base: 0,
            full: Vec::new(),
            bits: BTreeMap::new(),
        }
    }

    /// An empty set whose offsets count from `subnet`'s network address.
    pub fn for_subnet(subnet: &IpNet) -> Self {
        let network = subnet.network();
        IpSet {
            base: addr_value(network),
            ..IpSet::new(IpFamily::of(network))
        }
    }

    /// A set holding the ranges of `family`, with offsets from `subnet`'s network address when
    /// given. Ranges of the other family are ignored.
    pub fn from_ranges(family: IpFamily, subnet: Option<&IpNet>, ranges: &[IpRange]) -> Self {
        let mut set = match subnet {
            Some(net) if IpFamily::of(net.network()) == family => IpSet::for_subnet(net),
            _ => IpSet::new(family),
        };
        for r in ranges {
            set.insert_range(r);
        }
        set
    }

    /// Every address of `subnet`, network and broadcast addresses included.
    pub fn from_subnet(subnet: &IpNet) -> Self {
        let mut set = IpSet::for_subnet(subnet);
        if let Some(r) = IpRange::new(subnet.network(), subnet.broadcast()) {
            set.insert_range(&r);
        }
        set
    }

    /// The family of the set.
    pub fn family(&self) -> IpFamily {
        self.family
    }

    /// The address offsets count from.
    pub fn base(&self) -> IpAddr {
        self.addr_at(0).unwrap_or(IpAddr::V4(0.into()))
    }

    /// Exact number of addresses.
    pub fn len(&self) -> IpCount {
        let mut total = IpCount::ZERO;
        for &(s, e) in &self.full {
            total = total + IpCount::from((e - s) << CHUNK_BITS) + IpCount::from(1u128 << 32);
        }
        for b in self.bits.values() {
            total = total + IpCount::from(b.len());
        }
        total
    }

    /// True when the set holds no address.
    pub fn is_empty(&self) -> bool {
        self.full.is_empty() && self.bits.is_empty()
    }

    /// Whether `addr` is in the set.
    pub fn contains(&self, addr: IpAddr) -> bool {
        if self.is_empty() {
            return false;
        }
        match self.offset(addr) {
            Some(off) => self.contains_offset(off),
            None => false,
        }
    }

    /// Adds one address; false when it was already there or is of the other family.
    pub fn insert(&mut self, addr: IpAddr) -> bool {
        if IpFamily::of(addr) != self.family {
            return false;
        }
        let off = self.make_room(addr_value(addr));
        if self.contains_offset(off) {
            return false;
        }
        self.insert_offsets(off, off);
        true
    }

    /// Removes one address; false when it was not there.
    pub fn remove(&mut self, addr: IpAddr) -> bool {
        match self.offset(addr) {
            Some(off) if self.contains_offset(off) => {
                self.remove_offsets(off, off);
                true
            }
            _ => false,
        }
    }

    /// Adds every address of `range` (nothing when it is of the other family).
    pub fn insert_range(&mut self, range: &IpRange) {
        if range.family() != self.family {
            return;
        }
        let (s, e) = range.interval();
        let s = self.make_room(s);
        self.insert_offsets(s, e - self.base);
    }

    /// Removes every address of `range`.
    pub fn remove_range(&mut self, range: &IpRange) {
        if range.family() != self.family {
            return;
        }
        let (s, e) = range.interval();
        if e < self.base {
            return;
        }
        self.remove_offsets(s.saturating_sub(self.base), e - self.base);
    }

    /// Addresses in either set.
    pub fn union(&self, other: &IpSet) -> IpSet {
        let (a, b) = self.aligned(other);
        let (a, b) = (a.as_ref().unwrap_or(self), b.as_ref().unwrap_or(other));
        if a.family != b.family {
            return a.clone();
        }
        let mut full = intervals::union(&a.full, &b.full);
        let mut bits = BTreeMap::new();
        let mut promoted = Vec::new();
        for k in a.bits.keys().chain(b.bits.keys()) {
            if bits.contains_key(k) || intervals::contains(&full, *k) {
                continue;
            }
            let m = match (a.bits.get(k), b.bits.get(k)) {
                (Some(x), Some(y)) => x.union(y),
                (Some(x), None) | (None, Some(x)) => x.clone(),
                (None, None) => continue,
            };
            if m.is_full() {
                promoted.push((*k, *k));
            } else {
                bits.insert(*k, m);
            }
        }
        if !promoted.is_empty() {
            full = intervals::union(&full, &intervals::normalize(promoted));
        }
        a.with_parts(full, bits)
    }

    /// Addresses in both sets.
    pub fn intersection(&self, other: &IpSet) -> IpSet {
        let (a, b) = self.aligned(other);
        let (a, b) = (a.as_ref().unwrap_or(self), b.as_ref().unwrap_or(other));
        if a.family != b.family {
            return IpSet::new(self.family);
        }
        let full = intervals::intersect(&a.full, &b.full);
        let mut bits = BTreeMap::new();
        for (k, m) in &a.bits {
            let r = match b.chunk(*k) {
                Some(Chunk::Full) => m.clone(),
                Some(Chunk::Part(o)) => m.intersection(o),
                None => continue,
            };
            if !r.is_empty() {
                bits.insert(*k, r);
            }
        }
        for (k, m) in &b.bits {
            if intervals::contains(&a.full, *k) {
                bits.insert(*k, m.clone());
            }
        }
        a.with_parts(full, bits)
    }

    /// Addresses in `self` but not in `other`.
    pub fn difference(&self, other: &IpSet) -> IpSet {
        let (a, b) = self.aligned(other);
        let (a, b) = (a.as_ref().unwrap_or(self), b.as_ref().unwrap_or(other));
        if a.family != b.family {
            return a.clone();
        }
        let b_touched =
            intervals::union(&b.full, &b.bits.keys().map(|&k| (k, k)).collect::<Vec<_>>());
        let full = intervals::subtract(&a.full, &b_touched);
        let mut bits = BTreeMap::new();
        for (k, m) in &a.bits {
            let r = match b.chunk(*k) {
                Some(Chunk::Full) => continue,
                Some(Chunk::Part(o)) => m.difference(o),
                None => m.clone(),
            };
            if !r.is_empty() {
                bits.insert(*k, r);
            }
        }
        for (k, m) in &b.bits {
            if intervals::contains(&a.full, *k) {
                bits.insert(*k, m.complement());
            }
        }
        a.with_parts(full, bits)
    }

    /// Whether every address of `self` is in `other`.
    pub fn is_subset(&self, other: &IpSet) -> bool {
        self.difference(other).is_empty()
    }

    /// Whether the sets share an address.
    pub fn intersects(&self, other: &IpSet) -> bool {
        !self.intersection(other).is_empty()
    }

    /// The lowest address.
    pub fn first(&self) -> Option<IpAddr> {
        self.runs().next().map(|r| r.start())
    }

    /// The highest address.
    pub fn last(&self) -> Option<IpAddr> {
        let full_last = self.full.last().map(|&(_, e)| (e << CHUNK_BITS) | LOW_MASK);
        let bits_last = self
            .bits
            .iter()
            .next_back()
            .and_then(|(k, m)| m.max().map(|low| (k << CHUNK_BITS) | u128::from(low)));
        let off = full_last.max(bits_last)?;
        self.addr_at(off)
    }

    /// The lowest address at or after `cursor` (`None` when there is none or `cursor` is of the
    /// other family). Work: a lookup of the chunk and of the bitmap container, whatever the
    /// size of the set.
    pub fn next_at_or_after(&self, cursor: IpAddr) -> Option<IpAddr> {
        let start = self.offset_at_or_after(cursor)?;
        let mut k = start >> CHUNK_BITS;
        loop {
            let (chunk_k, chunk) = self.next_chunk(k)?;
            let lo = if chunk_k == start >> CHUNK_BITS {
                (start & LOW_MASK) as u32
            } else {
                0
            };
            let found = match chunk {
                Chunk::Full => Some(lo),
                Chunk::Part(m) => m.next_at_or_after(lo),
            };
            if let Some(low) = found {
                return self.addr_at((chunk_k << CHUNK_BITS) | u128::from(low));
            }
            k = chunk_k.checked_add(1)?;
        }
    }

    /// The lowest address of the family at or after `cursor` that is *not* in the set (`None`
    /// when every address from `cursor` to the end of the family is in it, or `cursor` is of
    /// the other family). Work: one step per chunk or bitmap run skipped.
    pub fn next_absent_at_or_after(&self, cursor: IpAddr) -> Option<IpAddr> {
        if IpFamily::of(cursor) != self.family {
            return None;
        }
        let value = addr_value(cursor);
        let Some(mut off) = value.checked_sub(self.base) else {
            return Some(cursor);
        };
        loop {
            let k = off >> CHUNK_BITS;
            let lo = (off & LOW_MASK) as u32;
            let next = match self.chunk(k) {
                None => return self.addr_at(off),
                Some(Chunk::Full) => {
                    let idx = self.full.partition_point(|&(_, e)| e < k);
                    let end = self.full.get(idx).map_or(k, |&(_, e)| e);
                    end.checked_add(1)?.checked_mul(1u128 << CHUNK_BITS)?
                }
                Some(Chunk::Part(m)) => match m.next_absent_at_or_after(lo) {
                    Some(low) => return self.addr_at((k << CHUNK_BITS) | u128::from(low)),
                    None => k.checked_add(1)?.checked_mul(1u128 << CHUNK_BITS)?,
                },
            };
            // Beyond the family's last address: nothing absent is left.
            if next > self.family.max_value().checked_sub(self.base)? {
                return None;
            }
            off = next;
        }
    }

    /// The lowest address, found by a lookup of the first chunk and its first container
    /// (where [`IpSet::first`] builds a run iterator).
    pub fn min(&self) -> Option<IpAddr> {
        if self.is_empty() {
            return None;
        }
        let off = match self.next_chunk(0)? {
            (k, Chunk::Full) => k << CHUNK_BITS,
            (k, Chunk::Part(m)) => (k << CHUNK_BITS) | u128::from(m.min()?),
        };
        self.addr_at(off)
    }

    /// The smallest offset at or after `cursor` that the set could hold.
    fn offset_at_or_after(&self, cursor: IpAddr) -> Option<u128> {
        if IpFamily::of(cursor) != self.family {
            return None;
        }
        Some(addr_value(cursor).saturating_sub(self.base))
    }

    /// Adds one address without turning a chunk that becomes full into a full run. The set
    /// stays exact (every operation reads a full partial chunk correctly); only its normal
    /// form differs, which [`IpSet::validate_invariants`] would report. For sets that gain and
    /// lose single addresses at a chunk's edge (a pool index's free addresses), so that
    /// alternating insert and remove never rebuild a 2^32-bit bitmap.
    pub(crate) fn insert_lazy(&mut self, addr: IpAddr) -> bool {
        if IpFamily::of(addr) != self.family {
            return false;
        }
        let off = self.make_room(addr_value(addr));
        let k = off >> CHUNK_BITS;
        if intervals::contains(&self.full, k) {
            return false;
        }
        self.bits
            .entry(k)
            .or_insert_with(Part::empty)
            .insert((off & LOW_MASK) as u32)
    }

    /// Removes one address, splitting a full chunk into a partial one if needed; the partial
    /// chunk is kept (see [`IpSet::insert_lazy`]).
    pub(crate) fn remove_lazy(&mut self, addr: IpAddr) -> bool {
        let Some(off) = self.offset(addr) else {
            return false;
        };
        let k = off >> CHUNK_BITS;
        let lo = (off & LOW_MASK) as u32;
        if intervals::contains(&self.full, k) {
            self.full = intervals::subtract(&self.full, &[(k, k)]);
            let mut m = Part::full();
            m.remove(lo);
            self.bits.insert(k, m);
            return true;
        }
        let Some(m) = self.bits.get_mut(&k) else {
            return false;
        };
        let removed = m.remove(lo);
        if m.is_empty() {
            self.bits.remove(&k);
        }
        removed
    }

    /// Run-length encodes the bitmaps' containers where that is smaller (roaring's
    /// `optimize`); the set is unchanged.
    pub fn optimize(&mut self) {
        for m in self.bits.values_mut() {
            m.optimize();
        }
    }

    /// Sizes of the set's bitmaps: `(serialized, in_memory)` bytes. Serialized is the sum of
    /// roaring's portable `serialized_size()` of every partial chunk plus 32 bytes per run of
    /// full chunks; in memory counts the containers' payload and headers (roaring's
    /// statistics) plus the chunk map's keys, without allocator overhead.
    pub fn byte_sizes(&self) -> (usize, usize) {
        let mut serialized = self.full.len() * 32;
        let mut in_memory = std::mem::size_of::<IpSet>() + self.full.len() * 32;
        for m in self.bits.values().map(Part::stored) {
            serialized += m.serialized_size();
            let st = m.statistics();
            let payload = st.n_bytes_array_containers
                + st.n_bytes_run_containers
                + st.n_bytes_bitset_containers;
            // Each container: its key, its store's header (a Vec or a boxed array).
            let headers = u64::from(st.n_containers) * 32;
            in_memory += usize::try_from(payload + headers).unwrap_or(usize::MAX)
                + std::mem::size_of::<Part>()
                + 16;
        }
        (serialized, in_memory)
    }

    /// The lowest address of `self` at or after `cursor` that is in none of `taken`: with
    /// `self` a pool's usable addresses and `taken` its allocated and reserved addresses, this
    /// is the address Spiderpool hands out next. Work is proportional to the chunks visited,
    /// not to the number of addresses.
    pub fn first_free(&self, taken: &[&IpSet], cursor: IpAddr) -> Option<IpAddr> {
        if IpFamily::of(cursor) != self.family {
            return None;
        }
        let value = addr_value(cursor);
        let start = value.saturating_sub(self.base);
        let rebased: Vec<IpSet> = taken
            .iter()
            .filter(|t| t.family == self.family && t.base != self.base)
            .map(|t| t.rebased(self.base))
            .collect();
        let taken: Vec<&IpSet> = taken
            .iter()
            .copied()
            .filter(|t| t.family == self.family && t.base == self.base)
            .chain(rebased.iter())
            .collect();
        let taken_full = taken
            .iter()
            .fold(Vec::new(), |acc, t| intervals::union(&acc, &t.full));
        let mut k = start >> CHUNK_BITS;
        loop {
            let (chunk_k, chunk) = self.next_chunk(k)?;
            let lo = if chunk_k == start >> CHUNK_BITS {
                (start & LOW_MASK) as u32
            } else {
                0
            };
            let covered = taken_full.partition_point(|&(_, e)| e < chunk_k);
            if let Some(&(ts, te)) = taken_full.get(covered) {
                if ts <= chunk_k {
                    k = te.checked_add(1)?;
                    continue;
                }
            }
            let mut used: Option<Part> = None;
            for t in &taken {
                if let Some(m) = t.bits.get(&chunk_k) {
                    used = Some(match used {
                        Some(u) => u.union(m),
                        None => m.clone(),
                    });
                }
            }
            let found = match (chunk, &used) {
                (Chunk::Full, None) => Some(lo),
                (Chunk::Full, Some(u)) => u.next_absent_at_or_after(lo),
                (Chunk::Part(m), None) => m.next_at_or_after(lo),
                (Chunk::Part(m), Some(u)) => m.difference(u).next_at_or_after(lo),
            };
            if let Some(low) = found {
                return self.addr_at((chunk_k << CHUNK_BITS) | u128::from(low));
            }
            k = chunk_k.checked_add(1)?;
        }
    }

    /// The set as the shortest ascending list of ranges.
    pub fn runs(&self) -> Runs<'_> {
        Runs {
            set: self,
            next_chunk: Some(0),
            current: None,
            pending: None,
        }
    }

    /// The set as the shortest list of Spiderpool range strings.
    pub fn to_range_strings(&self) -> Vec<String> {
        self.runs().map(|r| r.to_string()).collect()
    }

    /// Every address in ascending order (lazily; a huge set is fine to iterate partially).
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let family = self.family;
        self.runs().flat_map(move |r| {
            let (s, e) = r.interval();
            (s..=e).filter_map(move |v| family.addr(v))
        })
    }

    /// Checks the internal invariants; used by property and fuzz tests.
    #[doc(hidden)]
    pub fn validate_invariants(&self) -> Result<(), String> {
        if intervals::normalize(self.full.clone()) != self.full {
            return Err(format!("full runs not normalised: {:?}", self.full));
        }
        let max_off = self.family.max_value() - self.base;
        for (k, m) in &self.bits {
            if m.is_empty() || m.is_full() {
                return Err(format!("chunk {k} is empty or full"));
            }
            if intervals::contains(&self.full, *k) {
                return Err(format!("chunk {k} is both full and partial"));
            }
            if let Some(max) = m.max() {
                if (k << CHUNK_BITS) | u128::from(max) > max_off {
                    return Err(format!("chunk {k} holds an offset beyond the family"));
                }
            }
        }
        if let Some(&(_, e)) = self.full.last() {
            if (e << CHUNK_BITS) | LOW_MASK > max_off {
                return Err("a full chunk lies beyond the family".into());
            }
        }
        Ok(())
    }

    // ----- internals -----

    fn with_parts(&self, full: Vec<Interval>, bits: BTreeMap<u128, Part>) -> IpSet {
        IpSet {
            family: self.family,
            base: self.base,
            full,
            bits,
        }
    }

    fn addr_at(&self, off: u128) -> Option<IpAddr> {
        self.family.addr(self.base.checked_add(off)?)
    }

    fn offset(&self, addr: IpAddr) -> Option<u128> {
        if IpFamily::of(addr) != self.family {
            return None;
        }
        addr_value(addr).checked_sub(self.base)
    }

    fn contains_offset(&self, off: u128) -> bool {
        match self.chunk(off >> CHUNK_BITS) {
            Some(Chunk::Full) => true,
            Some(Chunk::Part(m)) => m.contains((off & LOW_MASK) as u32),
            None => false,
        }
    }

    fn chunk(&self, k: u128) -> Option<Chunk<'_>> {
        if intervals::contains(&self.full, k) {
            Some(Chunk::Full)
        } else {
            self.bits.get(&k).map(Chunk::Part)
        }
    }

    /// The first chunk at or after `k` that holds something.
    fn next_chunk(&self, k: u128) -> Option<(u128, Chunk<'_>)> {
        let idx = self.full.partition_point(|&(_, e)| e < k);
        let from_full = self.full.get(idx).map(|&(s, _)| s.max(k));
        let from_bits = self.bits.range(k..).next();
        match (from_full, from_bits) {
            (Some(f), Some((&b, m))) if b < f => Some((b, Chunk::Part(m))),
            (Some(f), _) => Some((f, Chunk::Full)),
            (None, Some((&b, m))) => Some((b, Chunk::Part(m))),
            (None, None) => None,
        }
    }

    /// Lowers the base (by whole chunks, which only re-keys them) so that `value` has an
    /// offset; returns that offset.
    fn make_room(&mut self, value: u128) -> u128 {
        if value < self.base {
            let shift_chunks = (self.base - value).div_ceil(1u128 << CHUNK_BITS);
            let new_base = self.base.saturating_sub(shift_chunks << CHUNK_BITS);
            let delta = (self.base - new_base) >> CHUNK_BITS;
            if (self.base - new_base) & LOW_MASK == 0 {
                self.full = self
                    .full
                    .iter()
                    .map(|&(s, e)| (s + delta, e + delta))
                    .collect();
                self.bits = std::mem::take(&mut self.bits)
                    .into_iter()
                    .map(|(k, m)| (k + delta, m))
                    .collect();
                self.base = new_base;
            } else {
                *self = self.rebased(new_base);
            }
        }
        value - self.base
    }

    /// The addresses at or above `base`, counted from `base`. Addresses below `base` are left
    /// out: inserting them would lower the result's base again, and callers that compare
    /// chunk keys (like [`IpSet::first_free`]) need the result on exactly `base`.
    fn rebased(&self, base: u128) -> IpSet {
        let mut out = IpSet {
            base,
            ..IpSet::new(self.family)
        };
        for r in self.runs() {
            let (s, e) = r.interval();
            if e < base {
                continue;
            }
            out.insert_offsets(s.max(base) - base, e - base);
        }
        out
    }

    /// Both sets on a common base: `None` means "use the original".
    fn aligned(&self, other: &IpSet) -> (Option<IpSet>, Option<IpSet>) {
        use std::cmp::Ordering;
        match self.base.cmp(&other.base) {
            Ordering::Equal => (None, None),
            Ordering::Less => (None, Some(other.rebased(self.base))),
            Ordering::Greater => (Some(self.rebased(other.base)), None),
        }
    }

    fn insert_offsets(&mut self, s: u128, e: u128) {
        for (k, lo, hi) in chunk_pieces(s, e) {
            if intervals::contains(&self.full, k) {
                continue;
            }
            let m = self
                .bits
                .entry(k)
                .and_modify(|m| m.insert_range(lo, hi))
                .or_insert_with(|| Part::range(lo, hi));
            if m.is_full() {
                self.bits.remove(&k);
                self.full = intervals::union(&self.full, &[(k, k)]);
            }
        }
        if let Some((ks, ke)) = full_chunk_span(s, e) {
            let stale: Vec<u128> = self.bits.range(ks..=ke).map(|(k, _)| *k).collect();
            for k in stale {
                self.bits.remove(&k);
            }
            self.full = intervals::union(&self.full, &[(ks, ke)]);
        }
    }

    fn remove_offsets(&mut self, s: u128, e: u128) {
        if let Some((ks, ke)) = full_chunk_span(s, e) {
            let stale: Vec<u128> = self.bits.range(ks..=ke).map(|(k, _)| *k).collect();
            for k in stale {
                self.bits.remove(&k);
            }
            self.full = intervals::subtract(&self.full, &[(ks, ke)]);
        }
        for (k, lo, hi) in chunk_pieces(s, e) {
            if intervals::contains(&self.full, k) {
                self.full = intervals::subtract(&self.full, &[(k, k)]);
                self.bits.insert(k, Part::full());
            }
            if let Some(m) = self.bits.get_mut(&k) {
                m.remove_range(lo, hi);
                if m.is_empty() {
                    self.bits.remove(&k);
                }
            }
        }
    }
}

/// The partial-chunk pieces of offsets `s..=e`: `(chunk, lo, hi)`. Whole chunks are reported
/// by [`full_chunk_span`] instead.
fn chunk_pieces(s: u128, e: u128) -> Vec<(u128, u32, u32)> {
    let (ks, ke) = (s >> CHUNK_BITS, e >> CHUNK_BITS);
    let (sl, el) = ((s & LOW_MASK) as u32, (e & LOW_MASK) as u32);
    let mut out = Vec::with_capacity(2);
    if ks == ke {
        if !(sl == 0 && el == u32::MAX) {
            out.push((ks, sl, el));
        }
    } else {
        if sl != 0 {
            out.push((ks, sl, u32::MAX));
        }
        if el != u32::MAX {
            out.push((ke, 0, el));
        }
    }
    out
}

/// The run of whole chunks covered by offsets `s..=e`, if any.
fn full_chunk_span(s: u128, e: u128) -> Option<(u128, u128)> {
    let (ks, ke) = (s >> CHUNK_BITS, e >> CHUNK_BITS);
    let first = if s & LOW_MASK == 0 {
        ks
    } else {
        ks.checked_add(1)?
    };
    let last = if e & LOW_MASK == LOW_MASK {
        ke
    } else {
        ke.checked_sub(1)?
    };
    (first <= last).then_some((first, last))
}

/// Iterator over the maximal ranges of an [`IpSet`], ascending. See [`IpSet::runs`].
pub struct Runs<'a> {
    set: &'a IpSet,
    next_chunk: Option<u128>,
    current: Option<(u128, PartRuns<'a>)>,
    pending: Option<Interval>,
}

impl Runs<'_> {
    /// The next raw run of offsets (not yet joined across chunk borders).
    fn next_raw(&mut self) -> Option<Interval> {
        loop {
            if let Some((k, it)) = &mut self.current {
                if let Some((s, e)) = it.next_run() {
                    let base = *k << CHUNK_BITS;
                    return Some((base | u128::from(s), base | u128::from(e)));
                }
                self.current = None;
            }
            let k = self.next_chunk?;
            match self.set.next_chunk(k)? {
                (c, Chunk::Full) => {
                    let idx = self.set.full.partition_point(|&(_, e)| e < c);
                    let end = self.set.full.get(idx).map_or(c, |&(_, e)| e);
                    self.next_chunk = end.checked_add(1);
                    return Some((c << CHUNK_BITS, (end << CHUNK_BITS) | LOW_MASK));
                }
                (c, Chunk::Part(m)) => {
                    self.next_chunk = c.checked_add(1);
                    self.current = Some((c, m.runs()));
                }
            }
        }
    }
}

impl Iterator for Runs<'_> {
    type Item = IpRange;

    fn next(&mut self) -> Option<IpRange> {
        loop {
            match (self.pending, self.next_raw()) {
                (Some(p), Some(r)) if p.1.checked_add(1) == Some(r.0) => {
                    self.pending = Some((p.0, r.1));
                }
                (Some(p), next) => {
                    self.pending = next;
                    return self.to_range(p);
                }
                (None, Some(r)) => self.pending = Some(r),
                (None, None) => return None,
            }
        }
    }
}

impl Runs<'_> {
    fn to_range(&self, (s, e): Interval) -> Option<IpRange> {
        IpRange::new(self.set.addr_at(s)?, self.set.addr_at(e)?)
    }
}

impl PartialEq for IpSet {
    fn eq(&self, other: &IpSet) -> bool {
        self.family == other.family && self.runs().eq(other.runs())
    }
}

impl Eq for IpSet {}

impl fmt::Debug for IpSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.runs().take(16).map(|r| r.to_string()).collect();
        f.debug_struct("IpSet")
            .field("family", &self.family)
            .field("base", &self.base())
            .field("len", &self.len().to_string())
            .field("ranges", &shown)
            .finish()
    }
}

impl std::ops::BitOr for &IpSet {
    type Output = IpSet;
    fn bitor(self, rhs: &IpSet) -> IpSet {
        self.union(rhs)
    }
}

impl std::ops::BitAnd for &IpSet {
    type Output = IpSet;
    fn bitand(self, rhs: &IpSet) -> IpSet {
        self.intersection(rhs)
    }
}

impl std::ops::Sub for &IpSet {
    type Output = IpSet;
    fn sub(self, rhs: &IpSet) -> IpSet {
        self.difference(rhs)
    }
}
