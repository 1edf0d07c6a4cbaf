//! The records of a [`super::PoolIndex`] by address: those decoded from the pool's text in a
//! sorted array, and the changes made since in a hash map over it.
//!
//! Decoding a pool of thousands of records then builds no hash map (one allocation, no
//! hashing: a plugin process decodes the pool, makes one change and exits), while an index
//! built by allocations (or long after its decode) works on the map alone.

use std::collections::HashMap;
use std::hash::BuildHasher;

use foldhash::fast::FixedState;

use super::held::Held;
use crate::ip::addr_value;

/// A record's address as a map key: its value in two halves, so that a bucket of the map
/// needs 8-byte alignment, not the 16 of a `u128` (smaller buckets), hashed as one `u128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AddrKey {
    hi: u64,
    lo: u64,
}

impl AddrKey {
    pub(super) fn of(addr: std::net::IpAddr) -> Self {
        Self::from_value(addr_value(addr))
    }

    pub(super) fn from_value(v: u128) -> Self {
        AddrKey {
            hi: (v >> 64) as u64,
            lo: v as u64,
        }
    }

    pub(super) fn value(self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }
}

impl std::hash::Hash for AddrKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.value());
    }
}

/// The hash of a pod uid or name, as the index's lookups key them. A fixed seed: no
/// randomness in the core (a collision costs a comparison, not a wrong answer).
pub(super) fn key_hash(s: &str) -> u64 {
    FixedState::default().hash_one(s)
}

/// A changed record with the hash of its pod uid, so that removing it from the lookup by uid
/// does not hash the uid again.
#[derive(Debug, Clone)]
struct Slot {
    held: Held,
    uid: u64,
}

/// Records by address. See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub(super) struct Records {
    /// Decoded records, sorted by address, each address once.
    base: Vec<(AddrKey, Held)>,
    /// Changes over `base`: the record now at an address (`None`: none any more).
    changed: HashMap<AddrKey, Option<Slot>, FixedState>,
    len: usize,
}

impl Records {
    /// Records decoded in any order; `Err` with an address given twice.
    pub(super) fn decoded(mut base: Vec<(AddrKey, Held)>) -> Result<Self, u128> {
        base.sort_unstable_by_key(|(k, _)| k.value());
        if let Some(w) = base.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(w[0].0.value());
        }
        Ok(Records {
            len: base.len(),
            base,
            changed: HashMap::default(),
        })
    }

    fn in_base(&self, k: AddrKey) -> Option<&Held> {
        let v = k.value();
        let i = self
            .base
            .binary_search_by_key(&v, |(b, _)| b.value())
            .ok()?;
        Some(&self.base[i].1)
    }

    /// Number of records.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The record at `k`.
    pub(super) fn get(&self, k: AddrKey) -> Option<&Held> {
        match self.changed.get(&k) {
            Some(now) => now.as_ref().map(|s| &s.held),
            None => self.in_base(k),
        }
    }

    /// A record of the base with its uid's hash.
    fn base_with_uid(&self, k: AddrKey) -> Option<(Held, u64)> {
        self.in_base(k).map(|h| (h.clone(), key_hash(h.pod_uid())))
    }

    /// Puts `held` (whose pod uid hashes to `uid`) at `k`; returns what was there, with its
    /// uid's hash.
    pub(super) fn insert(&mut self, k: AddrKey, held: Held, uid: u64) -> Option<(Held, u64)> {
        let slot = Some(Slot { held, uid });
        let old = if self.base.is_empty() {
            self.changed
                .insert(k, slot)
                .flatten()
                .map(|s| (s.held, s.uid))
        } else if let Some(now) = self.changed.get_mut(&k) {
            std::mem::replace(now, slot).map(|s| (s.held, s.uid))
        } else {
            let old = self.base_with_uid(k);
            self.changed.insert(k, slot);
            old
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes the record at `k`; returns it, with its uid's hash.
    pub(super) fn remove(&mut self, k: AddrKey) -> Option<(Held, u64)> {
        let old = if self.base.is_empty() {
            self.changed.remove(&k).flatten().map(|s| (s.held, s.uid))
        } else if let Some(now) = self.changed.get_mut(&k) {
            let old = now.take().map(|s| (s.held, s.uid));
            if self.in_base(k).is_none() {
                // Nothing to hide in the base: no need to remember the removal.
                self.changed.remove(&k);
            }
            old
        } else {
            let old = self.base_with_uid(k);
            if old.is_some() {
                self.changed.insert(k, None);
            }
            old
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Every record, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (AddrKey, &Held)> + '_ {
        let changed = &self.changed;
        self.base
            .iter()
            .filter(move |(k, _)| changed.is_empty() || !changed.contains_key(k))
            .map(|(k, h)| (*k, h))
            .chain(
                changed
                    .iter()
                    .filter_map(|(k, now)| now.as_ref().map(|s| (*k, &s.held))),
            )
    }

    /// The decoded records' addresses, sorted (changes since not applied).
    pub(super) fn base_values(&self) -> impl Iterator<Item = u128> + '_ {
        self.base.iter().map(|(k, _)| k.value())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::model::PoolIPAllocation;

    fn held(n: u32) -> Held {
        Held::new(Arc::new(PoolIPAllocation {
            pod: format!("ns/p{n}"),
            pod_uid: format!("u{n}"),
            interface: None,
            extra: Default::default(),
        }))
    }

    #[test]
    fn changes_over_decoded_records_read_as_one_map() {
        let k = AddrKey::from_value;
        assert_eq!(
            Records::decoded(vec![(k(3), held(1)), (k(3), held(2))]).err(),
            Some(3)
        );
        let mut records = Records::decoded(vec![(k(5), held(5)), (k(1), held(1))]).unwrap();
        let mut model: BTreeMap<u128, u32> = BTreeMap::from([(1, 1), (5, 5)]);
        // Insert over a decoded one, remove a decoded one, insert and remove new ones, put a
        // removed decoded one back.
        let steps: [(u128, Option<u32>); 8] = [
            (5, Some(50)),
            (1, None),
            (9, Some(9)),
            (9, None),
            (7, Some(7)),
            (1, Some(10)),
            (5, None),
            (3, None),
        ];
        for (v, now) in steps {
            let old = match now {
                Some(n) => records.insert(k(v), held(n), key_hash(&format!("u{n}"))),
                None => records.remove(k(v)),
            };
            if let Some((h, uid)) = &old {
                assert_eq!(*uid, key_hash(h.pod_uid()), "{v}");
            }
            let old = old.map(|(h, _)| h);
            let want = match now {
                Some(n) => model.insert(v, n),
                None => model.remove(&v),
            };
            assert_eq!(old, want.map(held), "{v}");
            assert_eq!(records.len(), model.len());
            let mut all: Vec<(u128, Held)> = records
                .iter()
                .map(|(k, h)| (k.value(), h.clone()))
                .collect();
            all.sort_by_key(|(v, _)| *v);
            let want: Vec<(u128, Held)> = model.iter().map(|(v, n)| (*v, held(*n))).collect();
            assert_eq!(all, want);
            for v in 0..12 {
                assert_eq!(records.get(k(v)), model.get(&v).map(|n| held(*n)).as_ref());
            }
        }
    }
}
