//! The lookups of a [`super::PoolIndex`] by pod uid and by pod name: addresses under the hash
//! of the string. A lookup returns a superset: callers check the record itself, so a hash
//! collision costs a comparison, never a wrong answer.
//!
//! A released record's entry is left in place (*stale*) rather than removed: the next record
//! of the same pod at the same address (a pod released and allocated again: a restart, a
//! retried ADD) finds it and writes nothing, and a release writes nothing at all. Removing and
//! inserting the same entry over and over stalls on the map's own writes. Stale entries are
//! counted, and the map is built again from the records once they outnumber the live ones.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::IpAddr;

use foldhash::fast::FixedState;

/// The addresses under one key: almost always one, without a heap allocation.
#[derive(Debug, Clone)]
enum Addrs {
    One(IpAddr),
    Many(Vec<IpAddr>),
}

impl Addrs {
    fn as_slice(&self) -> &[IpAddr] {
        match self {
            Addrs::One(a) => std::slice::from_ref(a),
            Addrs::Many(v) => v,
        }
    }
}

/// Stale entries kept in any case (a small map is not rebuilt for a few).
const KEEP_STALE: usize = 64;

/// Addresses by a `u64` key (the hash of a pod uid or name). A fixed seed: no randomness in
/// the core.
#[derive(Debug, Clone, Default)]
pub(super) struct ByKey {
    map: HashMap<u64, Addrs, FixedState>,
    /// Entries whose address no longer holds a record under that key.
    stale: usize,
}

impl ByKey {
    pub(super) fn with_capacity(n: usize) -> Self {
        ByKey {
            map: HashMap::with_capacity_and_hasher(n, FixedState::default()),
            stale: 0,
        }
    }

    /// The addresses under `key`: every live one, and possibly stale ones.
    pub(super) fn get(&self, key: u64) -> &[IpAddr] {
        self.map.get(&key).map_or(&[], Addrs::as_slice)
    }

    /// `addr` now holds a record under `key` (an entry already there was stale: it is live
    /// again).
    pub(super) fn add(&mut self, key: u64, addr: IpAddr) {
        match self.map.entry(key) {
            Entry::Vacant(e) => {
                e.insert(Addrs::One(addr));
            }
            Entry::Occupied(mut e) => match e.get_mut() {
                Addrs::One(a) if *a == addr => self.stale -= 1,
                Addrs::Many(v) if v.contains(&addr) => self.stale -= 1,
                slot @ Addrs::One(_) => {
                    let first = slot.as_slice()[0];
                    *slot = Addrs::Many(vec![first, addr]);
                }
                Addrs::Many(v) => v.push(addr),
            },
        }
    }

    /// A record indexed here left its address: its entry is stale now.
    pub(super) fn went_stale(&mut self) {
        self.stale += 1;
    }

    /// Whether stale entries outnumber the `live` ones enough to build the map again.
    pub(super) fn needs_rebuild(&self, live: usize) -> bool {
        self.stale > KEEP_STALE && self.stale > live
    }

    /// Entries, stale ones included, and how many of them are stale.
    pub(super) fn entries(&self) -> (usize, usize) {
        let total = self.map.values().map(|a| a.as_slice().len()).sum();
        (total, self.stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn released_entries_stay_until_taken_again_or_outnumbering() {
        let mut by = ByKey::default();
        by.add(1, ip(1));
        by.add(1, ip(2));
        by.add(2, ip(3));
        assert_eq!(by.get(1), &[ip(1), ip(2)]);
        assert_eq!(by.entries(), (3, 0));
        // ip(2) released: still listed (callers check the record), counted stale.
        by.went_stale();
        assert_eq!(by.get(1), &[ip(1), ip(2)]);
        assert_eq!(by.entries(), (3, 1));
        // Taken again under the same key: live again, nothing added.
        by.add(1, ip(2));
        assert_eq!(by.entries(), (3, 0));
        by.went_stale();
        by.add(2, ip(2));
        assert_eq!(by.get(2), &[ip(3), ip(2)]);
        assert_eq!(by.entries(), (4, 1));
        assert!(by.get(7).is_empty());
        assert!(!by.needs_rebuild(0));
        for _ in 0..KEEP_STALE {
            by.went_stale();
        }
        assert!(by.needs_rebuild(3) && !by.needs_rebuild(1000));
    }
}
