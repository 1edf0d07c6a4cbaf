//! [`PoolIndex`]: one pool's allocation state decoded once and kept up to date, and
//! [`PoolIndexes`], a bounded cache of them keyed by pool name and revision.
//!
//! A pool's `status.allocatedIPs` is Spiderpool's wire format: a JSON map from address strings
//! to records. Decoding it and computing `usable − allocated − reserved` costs O(records) and
//! O(pool size) per decision. The index keeps, per pool:
//! - `usable` (`ips − excludeIPs`) and the free addresses (`usable −` the records'
//!   addresses), kept as a *mark* (no record at or above it: every usable address from the
//!   mark up is free) and the [`IpSet`] of the free addresses below the mark, maintained
//!   incrementally. Pools fill from the bottom, so taking and giving back the address at the
//!   top of the allocated ones moves the mark and touches no bitmap; the free set below the
//!   mark stays small (an IPv6 /64 never becomes a 2^32-bit bitmap of free addresses);
//! - the records by address ([`super::records`]: those decoded from the text in a sorted
//!   array, the changes since in a hash map keyed by the address's integer value), each
//!   record kept as spans of the text until asked for ([`Held`]);
//! - which addresses each pod uid and each pod name holds: maps built when the index is used
//!   again or a stateful pod is looked up by name, then kept up to date (a plugin process
//!   decodes a pool, makes one change and exits: it looks its pod up by scanning instead).
//!
//! Allocating and releasing one address are O(log n) updates of these. Every change goes
//! through [`PoolIndex::set`], which returns what it replaced, so a plan's changes can be
//! undone ([`PoolIndex::undo`]) when its commit fails and the index stays the one of the
//! revision it was built from.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

mod follow;

use super::by_key::ByKey;
use super::encoded::{self, Encoded};
pub use super::held::Held;
use super::records::{key_hash, AddrKey, Records};
use crate::ip::{addr_value, parse_ip, IpCount, IpFamily, IpRange, IpSet};
use crate::model::{parse_plain_fields, AddressSpec, IPPoolSpec, PoolIPAllocation, SpiderIPPool};
use crate::select::Rejection;
use crate::Error;

/// One change made to a [`PoolIndex`]: the address and what it held before.
pub type Change = (IpAddr, Option<Held>);

/// One pool's allocation state: the usable and free addresses (a mark over the records with
/// the free addresses below it), the records by address, lookups by pod uid and name, and the
/// text it was decoded from or last wrote, with each record's place in it.
#[derive(Debug, Clone)]
pub struct PoolIndex {
    family: IpFamily,
    prefix: u8,
    usable: IpSet,
    /// The free usable addresses below `mark`.
    free: IpSet,
    /// No record at or above this address value; every usable address from it up is free.
    /// `None`: past the family's last address.
    mark: Option<u128>,
    /// Address values known to be all usable (inclusive; empty when start > end): the run
    /// the mark was last found in. While the mark stays inside it, allocating and releasing
    /// at the mark need no lookup of `usable`.
    known: (u128, u128),
    /// The records by the address's value ([`addr_value`]).
    records: Records,
    /// Addresses by a hash of the record's pod uid (lookups check the record itself, so a
    /// collision costs a comparison, never a wrong answer): built when an index is used again
    /// ([`PoolIndex::index_lookups`]), then kept. Until then a lookup looks at every record,
    /// which costs less than building the map for a decode used once (a plugin process).
    by_uid: Option<ByKey>,
    /// Addresses by a hash of the record's pod name: built when first needed
    /// ([`PoolIndex::index_pod_names`]; only stateful pods are looked up by name), then kept.
    /// Until then each allocation and release updates one map less.
    by_pod: Option<ByKey>,
    /// The `status.allocatedIPs` text the records were decoded from or last written as,
    /// with each record's place in it: the next write copies what did not change. `None`:
    /// the next write encodes every record.
    encoded: Option<Encoded>,
    /// Addresses changed since `encoded` (unsorted, repeats allowed).
    dirty: Vec<IpAddr>,
}

/// Changes tracked against the last written text beyond the records held; past this the
/// text is dropped and the next write encodes everything (a long run of plans never written).
const MAX_DIRTY: usize = 4096;

impl PoolIndex {
    /// Decodes `pool`: its spec (family, subnet, usable addresses) and its records. A record
    /// key that is not an address of the pool's family, or two keys spelling one address, is a
    /// [`Error::CorruptStatus`].
    pub fn from_pool(pool: &SpiderIPPool) -> Result<Self, Error> {
        let mut index = PoolIndex::empty(&pool.spec)?;
        let corrupt = |reason: String| Error::CorruptStatus {
            kind: SpiderIPPool::KIND.to_string(),
            name: pool.metadata.name.clone(),
            field: "status.allocatedIPs".to_string(),
            reason,
        };
        let text = match pool.status.allocated_ips.as_deref() {
            None | Some("") | Some("null") => return Ok(index),
            Some(text) => Arc::new(text.to_owned()),
        };
        let mut base = Vec::new();
        let mut spans = Vec::new();
        if let Some(entries) = encoded::scan(&text) {
            base.reserve(entries.len());
            spans.reserve(entries.len());
            for e in entries {
                let addr =
                    parse_ip(Some(index.family), e.key).map_err(|e| corrupt(e.to_string()))?;
                // Rust's IPv4 parser accepts only the canonical spelling.
                let canonical = addr.is_ipv4() || addr.to_string() == e.key;
                let key = (!canonical).then(|| e.key.into());
                let held = match parse_plain_fields(e.value.get()) {
                    Some(fields) => Held::in_text(&text, e.value.get(), fields, key),
                    None => Held::with_key(
                        serde_json::from_str::<PoolIPAllocation>(e.value.get())
                            .map(Arc::new)
                            .map_err(|err| corrupt(format!("record of {}: {err}", e.key)))?,
                        key,
                    ),
                };
                base.push((AddrKey::of(addr), held));
                let end = encoded::offset(&text, e.value.get()) + e.value.get().len();
                spans.push((addr, e.start, e.start + 1 + e.key.len(), end));
            }
        } else {
            for (key, record) in pool.allocations()? {
                let addr =
                    parse_ip(Some(index.family), &key).map_err(|e| corrupt(e.to_string()))?;
                let key = (addr.to_string() != key).then(|| key.into_boxed_str());
                base.push((AddrKey::of(addr), Held::with_key(Arc::new(record), key)));
            }
        }
        index.records = Records::decoded(base).map_err(|v| {
            let addr = index
                .family
                .addr(v)
                .map_or(v.to_string(), |a| a.to_string());
            corrupt(format!("two records for address {addr}"))
        })?;
        index.place_decoded();
        index.encoded = (!spans.is_empty())
            .then(|| Encoded::new(text.clone(), &spans))
            .filter(Encoded::spanned);
        Ok(index)
    }

    /// Sets the mark and the free set for the records just decoded (the index held none):
    /// the mark goes past the highest record at or above it, and the usable addresses below
    /// it that no record holds are free: the gaps between records, found in one pass.
    fn place_decoded(&mut self) {
        let Some(top) = self.records.base_values().last() else {
            return;
        };
        let Some(mark) = self.mark else {
            return;
        };
        if top < mark {
            // Every record below the first usable address: nothing free below the mark.
            return;
        }
        self.mark = self.after(top);
        let mut gaps = IpSet::new(self.family);
        let mut from = mark;
        for v in self.records.base_values() {
            if v > from {
                let range = self
                    .family
                    .addr(from)
                    .zip(self.family.addr(v - 1))
                    .and_then(|(a, b)| IpRange::new(a, b));
                if let Some(r) = range {
                    gaps.insert_range(&r);
                }
            }
            from = from.max(v.saturating_add(1));
        }
        self.free = gaps.intersection(&self.usable);
        self.find_known();
    }

    /// An index of a pool with `spec` and no record.
    pub fn empty(spec: &IPPoolSpec) -> Result<Self, Error> {
        let family = spec.family()?;
        let net = spec.subnet_net()?;
        let usable = spec.total_ips()?;
        let mut index = PoolIndex {
            family,
            prefix: net.prefix_len(),
            free: IpSet::for_subnet(&net),
            mark: None,
            known: (1, 0),
            usable,
            records: Records::default(),
            by_uid: None,
            by_pod: None,
            encoded: Some(Encoded::empty()),
            dirty: Vec::new(),
        };
        // The mark starts at the first usable address (none: past the end, nothing free).
        index.mark = index.usable.min().map(addr_value);
        index.find_known();
        Ok(index)
    }

    /// The pool's family.
    pub fn family(&self) -> IpFamily {
        self.family
    }

    /// The prefix length of the pool's subnet.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// `ips − excludeIPs`.
    pub fn usable(&self) -> &IpSet {
        &self.usable
    }

    /// The addresses records name (some may lie outside `usable` after a spec change). Built
    /// on each call from the records: O(records); the allocation path uses [`PoolIndex::get`].
    pub fn allocated(&self) -> IpSet {
        let mut set = IpSet::new(self.family);
        for addr in self.addrs() {
            set.insert(addr);
        }
        set
    }

    /// The addresses of the records, in no particular order.
    fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let family = self.family;
        self.records
            .iter()
            .filter_map(move |(k, _)| family.addr(k.value()))
    }

    /// `usable − allocated` (reserved IPs not subtracted). Built on each call from the free
    /// set below the mark and the usable addresses above it; the allocation path uses
    /// [`PoolIndex::lowest_free`].
    pub fn free(&self) -> IpSet {
        let mut out = self.free.clone();
        for run in self.usable_from_mark_to(None) {
            out.insert_range(&run);
        }
        out
    }

    /// The usable addresses from the mark up to `end` (excluded; `None`: to the family's
    /// end), as runs.
    fn usable_from_mark_to(&self, end: Option<u128>) -> Vec<IpRange> {
        let Some(from) = self.mark.and_then(|m| self.family.addr(m)) else {
            return Vec::new();
        };
        let last = match end {
            Some(e) => e.checked_sub(1).and_then(|l| self.family.addr(l)),
            None => self.family.addr(self.family.max_value()),
        };
        let Some(span) = last.and_then(|l| IpRange::new(from, l)) else {
            return Vec::new();
        };
        let mut above = IpSet::new(self.family);
        above.insert_range(&span);
        above.intersection(&self.usable).runs().collect()
    }

    /// The lowest free address at or after `cursor`: in the free set below the mark, else the
    /// first usable address from the mark.
    fn next_free_at_or_after(&self, cursor: IpAddr) -> Option<IpAddr> {
        if let Some(a) = self.free.next_at_or_after(cursor) {
            return Some(a);
        }
        let from = addr_value(cursor).max(self.mark?);
        if self.known.0 <= from && from <= self.known.1 {
            return self.family.addr(from);
        }
        self.usable.next_at_or_after(self.family.addr(from)?)
    }

    /// The first usable address value at or after the mark, if the known run holds the mark.
    fn known_first(&self) -> Option<u128> {
        let m = self.mark?;
        (self.known.0 <= m && m <= self.known.1).then_some(m)
    }

    /// The first usable address value at or after the mark: the mark itself while the known
    /// run holds it, else a lookup of `usable`.
    fn first_from_mark(&self) -> Option<u128> {
        self.known_first().or_else(|| {
            let from = self.family.addr(self.mark?)?;
            self.usable.next_at_or_after(from).map(addr_value)
        })
    }

    /// Sets `known` to the run of usable addresses starting at the first one at or after the
    /// mark (empty when there is none).
    fn find_known(&mut self) {
        self.known = (1, 0);
        let Some(first) = self
            .mark
            .and_then(|m| self.usable.next_at_or_after(self.family.addr(m)?))
        else {
            return;
        };
        let end = self
            .usable
            .next_absent_at_or_after(first)
            .map_or(self.family.max_value(), |a| addr_value(a) - 1);
        self.known = (addr_value(first), end);
    }

    /// The address value after `v`, `None` past the family's end (how the mark says it).
    fn after(&self, v: u128) -> Option<u128> {
        v.checked_add(1).filter(|n| *n <= self.family.max_value())
    }

    /// `addr` gets a record: it leaves the free set, or the mark moves past it (the usable
    /// addresses it skips join the free set).
    fn take(&mut self, addr: IpAddr) {
        let v = addr_value(addr);
        if self.mark.is_none_or(|m| v < m) {
            self.free.remove_lazy(addr);
            return;
        }
        if self.first_from_mark().is_some_and(|f| f < v) {
            for run in self.usable_from_mark_to(Some(v)) {
                self.free.insert_range(&run);
            }
        }
        self.mark = self.after(v);
        if self.known_first().is_none() {
            self.find_known();
        }
    }

    /// `addr` loses its record: the mark comes down to it when it was the top one, else it
    /// joins the free set if usable.
    fn give_back(&mut self, addr: IpAddr) {
        let v = addr_value(addr);
        if self.mark == self.after(v) {
            self.mark = Some(v);
        } else if self.usable.contains(addr) {
            self.free.insert_lazy(addr);
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the pool holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.len() == 0
    }

    /// The record of `addr`.
    pub fn get(&self, addr: IpAddr) -> Option<&Held> {
        self.records.get(AddrKey::of(addr))
    }

    /// The record whose key is exactly `key` (as `status.allocatedIPs` spells it), with its
    /// address.
    pub fn get_key(&self, key: &str) -> Option<(IpAddr, &Held)> {
        let addr: IpAddr = parse_ip(Some(self.family), key).ok()?;
        let held = self.get(addr)?;
        let same = match held.key() {
            Some(k) => k == key,
            None => addr.to_string() == key,
        };
        same.then_some((addr, held))
    }

    /// The key of `addr`'s record as written on the wire.
    pub fn key_of(&self, addr: IpAddr) -> String {
        match self.get(addr).and_then(Held::key) {
            Some(k) => k.to_string(),
            None => addr.to_string(),
        }
    }

    /// Addresses whose record has pod uid `uid`, and possibly a few others (check the
    /// record). Without [`PoolIndex::index_lookups`] first, this looks at every record.
    pub fn held_by_uid(&self, uid: &str) -> Cow<'_, [IpAddr]> {
        self.held_by(self.by_uid.as_ref(), uid, Held::pod_uid)
    }

    /// Addresses whose record names pod `pod` (`namespace/name`), and possibly a few others
    /// (check the record). Without [`PoolIndex::index_pod_names`] first, this looks at every
    /// record.
    pub fn held_by_pod(&self, pod: &str) -> Cow<'_, [IpAddr]> {
        self.held_by(self.by_pod.as_ref(), pod, Held::pod)
    }

    fn held_by<'a>(
        &'a self,
        map: Option<&'a ByKey>,
        value: &str,
        field: fn(&Held) -> &str,
    ) -> Cow<'a, [IpAddr]> {
        match map {
            Some(map) => map.get(key_hash(value)).into(),
            None => self
                .records
                .iter()
                .filter(|(_, h)| field(h) == value)
                .filter_map(|(k, _)| self.family.addr(k.value()))
                .collect::<Vec<_>>()
                .into(),
        }
    }

    /// Builds the lookup by pod uid (once; later changes keep it up to date): for an index
    /// kept to be used again, as [`PoolIndexes`] does when it hands a cached index out.
    pub fn index_lookups(&mut self) {
        if self.by_uid.is_none() {
            self.by_uid = Some(self.build(Held::pod_uid));
        }
    }

    /// Builds the lookup by pod name (once; later changes keep it up to date), for a caller
    /// about to look records up by pod name, as the planner does for stateful pods.
    pub fn index_pod_names(&mut self) {
        if self.by_pod.is_none() {
            self.by_pod = Some(self.build(Held::pod));
        }
    }

    fn build(&self, field: fn(&Held) -> &str) -> ByKey {
        let mut map = ByKey::with_capacity(self.records.len());
        for (k, held) in self.records.iter() {
            if let Some(addr) = self.family.addr(k.value()) {
                map.add(key_hash(field(held)), addr);
            }
        }
        map
    }

    /// The record a pod already holds for `nic`: the first, in `status.allocatedIPs` key order,
    /// whose interface is `nic` or absent and whose uid is `uid` (or, with `pod`, whose pod is
    /// `pod`). Work: the records of that uid and pod only.
    pub fn find_held(&self, uid: &str, pod: Option<&str>, nic: &str) -> Option<(IpAddr, &Held)> {
        let by_pod = pod.map_or(Cow::Borrowed(&[][..]), |p| self.held_by_pod(p));
        let mut best: Option<(String, IpAddr, &Held)> = None;
        for &addr in self.held_by_uid(uid).iter().chain(by_pod.iter()) {
            let Some(held) = self.get(addr) else {
                continue;
            };
            let same_nic = held.interface().is_none_or(|i| i == nic);
            if !(same_nic && (held.pod_uid() == uid || pod.is_some_and(|p| held.pod() == p))) {
                continue;
            }
            let key = self.key_of(addr);
            if best.as_ref().is_none_or(|(k, _, _)| key < *k) {
                best = Some((key, addr, held));
            }
        }
        best.map(|(_, addr, held)| (addr, held))
    }

    /// The address Spiderpool hands out next: the lowest of `free − reserved`. Work: one
    /// lookup, plus one per run of reserved addresses skipped.
    #[inline(always)]
    pub fn lowest_free(&self, reserved: &IpSet) -> Option<IpAddr> {
        let first = match self.free.min() {
            Some(a) => a,
            None => self.family.addr(self.first_from_mark()?)?,
        };
        if !reserved.contains(first) {
            return Some(first);
        }
        let mut cursor = reserved.next_absent_at_or_after(first)?;
        loop {
            let candidate = self.next_free_at_or_after(cursor)?;
            if !reserved.contains(candidate) {
                return Some(candidate);
            }
            cursor = reserved.next_absent_at_or_after(candidate)?;
        }
    }

    /// Why nothing can be taken (when [`PoolIndex::lowest_free`] is `None`).
    pub fn exhaustion(&self) -> Rejection {
        let free = self.free();
        if free.is_empty() {
            Rejection::Exhausted {
                total: self.usable.len().to_string(),
            }
        } else {
            Rejection::AllFreeReserved {
                reserved: free.len().to_string(),
            }
        }
    }

    /// Takes the lowest free, unreserved address for `record`; the change made is pushed to
    /// `journal`.
    pub fn allocate(
        &mut self,
        record: Arc<PoolIPAllocation>,
        reserved: &IpSet,
        journal: &mut Vec<Change>,
    ) -> Result<IpAddr, Rejection> {
        self.allocate_spread(record, reserved, 0, journal)
    }

    /// The free, unreserved address `skip` places after the lowest one (the highest one when
    /// there are fewer). Work: one lookup per address skipped.
    #[inline(always)]
    pub fn nth_free(&self, reserved: &IpSet, skip: u64) -> Option<IpAddr> {
        let mut found = self.lowest_free(reserved)?;
        for _ in 0..skip {
            match self.free_after(found, reserved) {
                Some(next) => found = next,
                None => return Some(found),
            }
        }
        Some(found)
    }

    /// Like [`PoolIndex::allocate`], but takes the free address `skip` places after the lowest
    /// ([`PoolIndex::nth_free`]): retries after a conflict use it so that concurrent
    /// allocators do not all chase the same lowest free address.
    pub fn allocate_spread(
        &mut self,
        record: Arc<PoolIPAllocation>,
        reserved: &IpSet,
        skip: u64,
        journal: &mut Vec<Change>,
    ) -> Result<IpAddr, Rejection> {
        let Some(addr) = self.nth_free(reserved, skip) else {
            return Err(self.exhaustion());
        };
        let old = self.set(addr, Some(Held::new(record)));
        journal.push((addr, old));
        Ok(addr)
    }

    /// Like [`PoolIndex::allocate_spread`], but passes over the addresses of `in_flight`
    /// (sorted; those other commits of this process are about to take) to the next free one,
    /// unless none is left past them. Work: one lookup per address passed over.
    pub fn allocate_avoiding(
        &mut self,
        record: Arc<PoolIPAllocation>,
        reserved: &IpSet,
        skip: u64,
        in_flight: &[IpAddr],
        journal: &mut Vec<Change>,
    ) -> Result<IpAddr, Rejection> {
        if in_flight.is_empty() {
            // The common case, as lean as the plain allocation (the core benchmark's pair went
            // from 88 to 105 ns when it took the general path).
            return self.allocate_spread(record, reserved, skip, journal);
        }
        debug_assert!(
            in_flight.windows(2).all(|w| w[0] <= w[1]),
            "in_flight unsorted"
        );
        let Some(first) = self.nth_free(reserved, skip) else {
            return Err(self.exhaustion());
        };
        // Past the first choice; else from the lowest free address; else the first choice, and
        // the commit will tell.
        let addr = self
            .free_not_in(first, reserved, in_flight)
            .or_else(|| {
                let lowest = self.lowest_free(reserved)?;
                self.free_not_in(lowest, reserved, in_flight)
            })
            .unwrap_or(first);
        let old = self.set(addr, Some(Held::new(record)));
        journal.push((addr, old));
        Ok(addr)
    }

    /// The first address from `from` (free and unreserved) on that is free, unreserved and
    /// not in `in_flight` (sorted).
    fn free_not_in(&self, from: IpAddr, reserved: &IpSet, in_flight: &[IpAddr]) -> Option<IpAddr> {
        let mut addr = from;
        while in_flight.binary_search(&addr).is_ok() {
            addr = self.free_after(addr, reserved)?;
        }
        Some(addr)
    }

    /// The lowest free, unreserved address above `after`.
    fn free_after(&self, after: IpAddr, reserved: &IpSet) -> Option<IpAddr> {
        let mut next = match after {
            IpAddr::V4(a) => u32::from(a)
                .checked_add(1)
                .map(|v| IpAddr::from(std::net::Ipv4Addr::from(v))),
            IpAddr::V6(a) => u128::from(a)
                .checked_add(1)
                .map(|v| IpAddr::from(std::net::Ipv6Addr::from(v))),
        };
        loop {
            let c = next.and_then(|c| self.next_free_at_or_after(c))?;
            if !reserved.contains(c) {
                return Some(c);
            }
            next = reserved.next_absent_at_or_after(c);
        }
    }

    /// Frees `addr`; the change made is pushed to `journal`. False when it held no record.
    pub fn release(&mut self, addr: IpAddr, journal: &mut Vec<Change>) -> bool {
        match self.set(addr, None) {
            Some(old) => {
                journal.push((addr, Some(old)));
                true
            }
            None => false,
        }
    }

    /// Sets what `addr` holds (`None`: frees it) and returns what it held: the one primitive
    /// every change goes through, keeping the sets and maps consistent. O(log n).
    #[inline(always)]
    pub fn set(&mut self, addr: IpAddr, new: Option<Held>) -> Option<Held> {
        if self.encoded.is_some() {
            if self.dirty.len() > MAX_DIRTY + self.records.len() {
                self.encoded = None;
                self.dirty = Vec::new();
            } else {
                self.dirty.push(addr);
            }
        }
        let holds = new.is_some();
        let k = AddrKey::of(addr);
        let (old, keys) = match new {
            Some(held) => {
                let uid = key_hash(held.pod_uid());
                let pod = self.by_pod.is_some().then(|| key_hash(held.pod()));
                (self.records.insert(k, held, uid), Some((uid, pod)))
            }
            None => (self.records.remove(k), None),
        };
        // The old record's entries go stale first: the new one may take them again.
        if old.is_some() {
            self.by_uid.iter_mut().for_each(ByKey::went_stale);
            self.by_pod.iter_mut().for_each(ByKey::went_stale);
        }
        if let Some((uid, pod)) = keys {
            if let Some(by_uid) = &mut self.by_uid {
                by_uid.add(uid, addr);
            }
            if let (Some(by_pod), Some(pod)) = (&mut self.by_pod, pod) {
                by_pod.add(pod, addr);
            }
        }
        let live = self.records.len();
        if self.by_uid.as_ref().is_some_and(|m| m.needs_rebuild(live)) {
            self.by_uid = Some(self.build(Held::pod_uid));
        }
        if self.by_pod.as_ref().is_some_and(|m| m.needs_rebuild(live)) {
            self.by_pod = Some(self.build(Held::pod));
        }
        match (old.is_some(), holds) {
            (false, true) => self.take(addr),
            (true, false) => self.give_back(addr),
            _ => {}
        }
        old.map(|(held, _)| held)
    }

    /// Reverts the changes of `journal` (newest first), leaving it empty.
    pub fn undo(&mut self, journal: &mut Vec<Change>) {
        while let Some((addr, old)) = journal.pop() {
            self.set(addr, old);
        }
    }

    /// The records as `status.allocatedIPs` writes them: `None` when there is none, else the
    /// JSON map in key order. Records unchanged since the text the index was decoded from
    /// (or last wrote) are copied from it as they were written; the others are encoded as
    /// [`SpiderIPPool::set_allocations`] writes them.
    pub fn encode(&self) -> Option<String> {
        self.encode_next()?.status()
    }

    /// Encodes the records as [`PoolIndex::encode`] does and takes the text as written: later
    /// encodings copy its unchanged records. For a caller that writes the pool itself (the
    /// planner does this through its plan's commit).
    pub fn encode_written(&mut self) -> Option<String> {
        let next = self.encode_next()?;
        let status = next.status();
        self.rebase(next);
        status
    }

    /// The next text with its spans (see [`PoolIndex::encode`]), for [`PoolIndex::rebase`]
    /// once it is written. `None` only if a record cannot be encoded.
    pub(crate) fn encode_next(&self) -> Option<Encoded> {
        let empty;
        let (base, changed) = match &self.encoded {
            Some(base) => {
                let mut dirty = self.dirty.clone();
                dirty.sort_unstable();
                dirty.dedup();
                (base, dirty)
            }
            None => {
                empty = Encoded::empty();
                let mut all: Vec<IpAddr> = self.addrs().collect();
                all.sort_unstable();
                (&empty, all)
            }
        };
        let records: Vec<(String, IpAddr, Arc<PoolIPAllocation>)> = changed
            .iter()
            .filter_map(|a| Some((self.key_of(*a), *a, self.get(*a)?.record())))
            .collect();
        let mut fresh: Vec<(String, IpAddr, &PoolIPAllocation)> = records
            .iter()
            .map(|(k, a, r)| (k.clone(), *a, &**r))
            .collect();
        fresh.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        base.splice(&changed, &fresh)
    }

    /// Takes `written` (from [`PoolIndex::encode_next`] on this index, now stored) as the
    /// text later writes start from.
    pub(crate) fn rebase(&mut self, written: Encoded) {
        self.encoded = Some(written).filter(Encoded::spanned);
        self.dirty.clear();
    }

    /// Writes the records into `pool`'s status (`allocatedIPs`, `allocatedIPCount`).
    pub fn write_status(&self, pool: &mut SpiderIPPool) {
        pool.status.allocated_ips = self.encode();
        pool.status.allocated_ip_count = Some(i64::try_from(self.len()).unwrap_or(i64::MAX));
    }

    /// Checks that the sets and maps agree with the records; used by property tests.
    #[doc(hidden)]
    pub fn validate_invariants(&self) -> Result<(), String> {
        let allocated = self.allocated();
        if allocated.len() != IpCount::from(self.records.len() as u64) {
            return Err("a record's key is not an address of the pool's family".into());
        }
        if self.free() != self.usable.difference(&allocated) {
            return Err("free set differs from usable − allocated".into());
        }
        if let Some(m) = self.mark {
            let below = |a: IpAddr| addr_value(a) < m;
            if !self.free.last().is_none_or(below) || !self.addrs().all(below) {
                return Err("a free address or a record at or above the mark".into());
            }
        }
        let (ks, ke) = self.known;
        if ks <= ke {
            let start = self.family.addr(ks).ok_or("known run outside the family")?;
            let gap = self.usable.next_absent_at_or_after(start).map(addr_value);
            if !self.usable.contains(start) || gap.is_some_and(|g| g <= ke) {
                return Err("the known run holds an address that is not usable".into());
            }
        }
        let live = |m: &ByKey| {
            let (entries, stale) = m.entries();
            entries.checked_sub(stale)
        };
        let uids = self.by_uid.as_ref().map_or(Some(self.records.len()), live);
        let pods = self.by_pod.as_ref().map_or(Some(self.records.len()), live);
        if uids != Some(self.records.len()) || pods != Some(self.records.len()) {
            return Err("uid or pod index out of step with the records".into());
        }
        for (addr, h) in self.addrs().filter_map(|a| Some((a, self.get(a)?))) {
            if !self.held_by_uid(h.pod_uid()).contains(&addr)
                || !self.held_by_pod(h.pod()).contains(&addr)
            {
                return Err(format!("{addr} missing from the uid or pod index"));
            }
        }
        Ok(())
    }
}

/// A pool's index as of one revision, or as of a plan not yet committed.
#[derive(Debug)]
struct Entry {
    /// The spec and `status.allocatedIPs` the index was built from or wrote, to recognise
    /// the pool under a new revision.
    spec: IPPoolSpec,
    status: Option<Arc<String>>,
    index: PoolIndex,
    used: u64,
}

/// A bounded cache of [`PoolIndex`]es keyed by pool name, valid for one revision. The driver
/// ([`crate::ipam::Ipam`]) keeps one across calls, so that a long-lived process decodes a
/// pool's records again only when another writer changed it. No clock, no I/O: eviction is
/// least-recently-used by a counter.
#[derive(Debug)]
pub struct PoolIndexes {
    entries: HashMap<String, Entry>,
    capacity: usize,
    tick: u64,
    /// Indexes checked out by a plan, with the changes it made to them.
    pending: Vec<Pending>,
    decoded: u64,
    followed: u64,
}

/// Indexes a plan checked out, waiting for its commit; see [`PoolIndexes::take_parked`].
#[derive(Debug, Default)]
pub struct Parked(Vec<Pending>);

/// An index checked out by a plan.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) name: String,
    /// The `status.allocatedIPs` the plan wrote (if it wrote the pool), with its spans for the
    /// index to start the next write from.
    pub(crate) encoded: Option<Encoded>,
    pub(crate) spec: IPPoolSpec,
    pub(crate) status: Option<Arc<String>>,
    pub(crate) index: PoolIndex,
    pub(crate) journal: Vec<Change>,
}

impl Default for PoolIndexes {
    fn default() -> Self {
        PoolIndexes::new(Self::DEFAULT_CAPACITY)
    }
}

impl PoolIndexes {
    /// Pools kept by default.
    pub const DEFAULT_CAPACITY: usize = 256;

    /// A cache holding at most `capacity` pools (0: keeps nothing across plans).
    pub fn new(capacity: usize) -> Self {
        PoolIndexes {
            entries: HashMap::new(),
            capacity,
            tick: 0,
            pending: Vec::new(),
            decoded: 0,
            followed: 0,
        }
    }

    /// Pools currently cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many times a pool's records were decoded (cache misses) since creation.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// How many times a cached index followed another writer's revision of its pool instead
    /// of decoding it (see [`PoolIndex::followed`]).
    pub fn followed(&self) -> u64 {
        self.followed
    }

    /// The cached index of `pool` at `revision`, if any (without checking it out).
    pub fn peek(&self, pool: &SpiderIPPool) -> Option<&PoolIndex> {
        let e = self.entries.get(&pool.metadata.name)?;
        matches(e, pool).then_some(&e.index)
    }

    /// Takes `pool`'s index out of the cache, or decodes it.
    pub(crate) fn checkout(&mut self, pool: &SpiderIPPool) -> Result<Pending, Error> {
        let name = &pool.metadata.name;
        let (index, status) = match self.entries.remove(name) {
            Some(e) if matches(&e, pool) => {
                // Used again: worth the maps a single use does without.
                let mut index = e.index;
                index.index_lookups();
                (index, e.status)
            }
            // Another writer's revision: followed from the text this index holds.
            Some(e) if e.spec == pool.spec => match e.index.followed(pool) {
                Some(mut index) => {
                    debug_assert!(
                        PoolIndex::from_pool(pool).is_ok_and(|d| index.agrees_with(&d)),
                        "pool {name}: the followed index differs from the decoded one"
                    );
                    self.followed += 1;
                    index.index_lookups();
                    let status = (index.encoded.as_ref())
                        .and_then(Encoded::shared_status)
                        .or_else(|| pool.status.allocated_ips.clone().map(Arc::new));
                    (index, status)
                }
                None => self.decode(pool)?,
            },
            _ => self.decode(pool)?,
        };
        Ok(Pending {
            name: name.clone(),
            encoded: None,
            spec: pool.spec.clone(),
            status,
            index,
            journal: Vec::new(),
        })
    }

    /// `pool`'s index decoded from scratch, with the text it was decoded from.
    fn decode(&mut self, pool: &SpiderIPPool) -> Result<(PoolIndex, Option<Arc<String>>), Error> {
        self.decoded += 1;
        let index = PoolIndex::from_pool(pool)?;
        // The text the index was decoded from, shared when it kept it.
        let status = pool.status.allocated_ips.as_deref().map(|s| {
            index
                .encoded
                .as_ref()
                .and_then(Encoded::shared_status)
                .filter(|text| text.as_str() == s)
                .unwrap_or_else(|| Arc::new(s.to_owned()))
        });
        Ok((index, status))
    }

    /// Hands back indexes checked out by a plan; `committed` says whether the plan's writes
    /// were applied. Committed: written pools are kept as of what was written (recognised by
    /// content when read again); otherwise their changes are undone and they are kept as of
    /// the revision they were read at.
    pub(crate) fn check_in(&mut self, pending: Vec<Pending>, committed: bool) {
        for mut p in pending {
            let status = match p.encoded {
                Some(written) if committed => {
                    let status = written.shared_status();
                    p.index.rebase(written);
                    status
                }
                _ => {
                    p.index.undo(&mut p.journal);
                    p.status
                }
            };
            self.insert(
                p.name,
                Entry {
                    spec: p.spec,
                    status,
                    index: p.index,
                    used: 0,
                },
            );
        }
    }

    /// Parks indexes checked out by a plan until [`PoolIndexes::settle`].
    pub(crate) fn park(&mut self, pending: Vec<Pending>) {
        self.pending.extend(pending);
    }

    /// Settles what the plans made since the last settle parked: with `committed`, the pools
    /// they wrote are kept as written; otherwise their changes are undone.
    pub fn settle(&mut self, committed: bool) {
        let pending = std::mem::take(&mut self.pending);
        self.check_in(pending, committed);
    }

    /// Takes what the plans since the last settle parked, to settle later with
    /// [`PoolIndexes::settle_parked`]: for a caller that shares the cache between tasks and
    /// commits without holding it.
    pub fn take_parked(&mut self) -> Parked {
        Parked(std::mem::take(&mut self.pending))
    }

    /// Settles indexes taken with [`PoolIndexes::take_parked`]; see [`PoolIndexes::settle`].
    pub fn settle_parked(&mut self, parked: Parked, committed: bool) {
        self.check_in(parked.0, committed);
    }

    fn insert(&mut self, name: String, mut entry: Entry) {
        if self.capacity == 0 {
            return;
        }
        self.tick += 1;
        entry.used = self.tick;
        self.entries.insert(name, entry);
        while self.entries.len() > self.capacity {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }
}

/// Whether `e` is the index of `pool`. By content, not by revision: an index is a function of
/// the spec and `status.allocatedIPs`, and a pool deleted and created again may reuse a
/// revision on some stores. Comparing the text is a memory comparison, far cheaper than
/// decoding it.
fn matches(e: &Entry, pool: &SpiderIPPool) -> bool {
    e.spec == pool.spec
        && e.status.as_deref().map(String::as_str) == pool.status.allocated_ips.as_deref()
}

#[cfg(test)]
mod spread_tests {
    use super::*;
    use crate::ip::IpRange;
    use crate::model::IPPoolSpec;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn rec(n: u32) -> Arc<PoolIPAllocation> {
        Arc::new(PoolIPAllocation {
            pod: format!("ns/p{n}"),
            pod_uid: format!("u{n}"),
            interface: Some("eth0".into()),
            extra: Default::default(),
        })
    }

    #[test]
    fn lookups_keep_released_entries_stale_and_rebuild_when_they_outnumber_the_live() {
        let spec = IPPoolSpec {
            subnet: "10.0.0.0/16".into(),
            ips: vec!["10.0.0.1-10.0.255.254".into()],
            ..IPPoolSpec::default()
        };
        let mut index = PoolIndex::empty(&spec).unwrap();
        index.index_lookups();
        index.index_pod_names();
        let none = IpSet::new(IpFamily::V4);
        let mut journal = Vec::new();
        let first = index.allocate(rec(0), &none, &mut journal).unwrap();
        // Pods that come once and go: each leaves a stale entry behind.
        for n in 1..=500 {
            let a = index.allocate(rec(n), &none, &mut journal).unwrap();
            assert!(index.release(a, &mut journal));
            index.validate_invariants().unwrap();
            let (entries, stale) = index.by_uid.as_ref().unwrap().entries();
            assert!(stale <= 64 + 1 && entries == 1 + stale, "{entries} {stale}");
            assert_eq!(index.by_pod.as_ref().unwrap().entries(), (entries, stale));
            // A stale entry is never an answer: its address holds no record of that pod.
            let found = index.find_held(&format!("u{n}"), Some(&format!("ns/p{n}")), "eth0");
            assert!(found.is_none(), "{n}");
        }
        // The same pod released and allocated again takes its stale entry back.
        assert!(index.release(first, &mut journal));
        assert_eq!(index.allocate(rec(0), &none, &mut journal), Ok(first));
        index.validate_invariants().unwrap();
        assert_eq!(
            index.find_held("u0", None, "eth0").map(|(a, _)| a),
            Some(first)
        );
        // Another pod at a stale entry's address: found under its own keys only.
        let next = index.lowest_free(&none).unwrap();
        index.set(next, Some(Held::new(rec(9999))));
        assert!(index.find_held("u1", None, "eth0").is_none());
        assert_eq!(
            index.find_held("u9999", None, "eth0").map(|(a, _)| a),
            Some(next)
        );
        index.validate_invariants().unwrap();
    }

    #[test]
    fn nth_free_skips_allocated_and_reserved_and_stops_at_the_last() {
        let spec = IPPoolSpec {
            subnet: "10.0.0.0/24".into(),
            ips: vec!["10.0.0.1-10.0.0.10".into()],
            ..IPPoolSpec::default()
        };
        let mut index = PoolIndex::empty(&spec).unwrap();
        let mut reserved = IpSet::new(IpFamily::V4);
        reserved.insert_range(&IpRange::new(ip("10.0.0.3"), ip("10.0.0.4")).unwrap());
        let mut journal = Vec::new();
        assert_eq!(
            index.allocate(rec(1), &reserved, &mut journal),
            Ok(ip("10.0.0.1"))
        );
        assert_eq!(index.nth_free(&reserved, 0), Some(ip("10.0.0.2")));
        assert_eq!(index.nth_free(&reserved, 1), Some(ip("10.0.0.5")));
        assert_eq!(index.nth_free(&reserved, 100), Some(ip("10.0.0.10")));
        assert_eq!(
            index.allocate_spread(rec(2), &reserved, 2, &mut journal),
            Ok(ip("10.0.0.6"))
        );
        assert_eq!(index.nth_free(&reserved, 2), Some(ip("10.0.0.7")));
    }

    #[test]
    fn the_mark_follows_the_top_record_and_the_free_set_stays_below_it() {
        let spec = IPPoolSpec {
            subnet: "fd00::/64".into(),
            ips: vec!["fd00::1-fd00::ffff:ffff:ffff:ffff".into()],
            ..IPPoolSpec::default()
        };
        let mut index = PoolIndex::empty(&spec).unwrap();
        let none = IpSet::new(IpFamily::V6);
        let mut journal = Vec::new();
        for n in 1..=3 {
            let want = ip(&format!("fd00::{n}"));
            assert_eq!(index.allocate(rec(n), &none, &mut journal), Ok(want));
        }
        // Taking and giving back the top address moves the mark only.
        assert!(index.release(ip("fd00::3"), &mut journal));
        assert!(index.free.is_empty());
        assert_eq!(index.mark, Some(addr_value(ip("fd00::3"))));
        // A hole below the mark is the free set's, and is taken first.
        assert!(index.release(ip("fd00::1"), &mut journal));
        assert_eq!(index.free.to_range_strings(), ["fd00::1"]);
        assert_eq!(index.lowest_free(&none), Some(ip("fd00::1")));
        // A record far above the mark: the usable addresses skipped become free-set members.
        index.set(ip("fd00::8"), Some(Held::new(rec(8))));
        assert_eq!(
            index.free.to_range_strings(),
            ["fd00::1", "fd00::3-fd00::7"]
        );
        assert_eq!(
            index.free().to_range_strings(),
            [
                "fd00::1",
                "fd00::3-fd00::7",
                "fd00::9-fd00::ffff:ffff:ffff:ffff"
            ]
        );
        assert_eq!(index.nth_free(&none, 6), Some(ip("fd00::9")));
        index.validate_invariants().unwrap();
    }
}
