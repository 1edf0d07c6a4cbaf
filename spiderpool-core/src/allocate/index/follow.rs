//! Following another writer: a [`PoolIndex`] brought to a newer revision of its pool by
//! comparing the new `status.allocatedIPs` with the text the index holds, record by record
//! ([`Encoded::follow`]), instead of decoding it whole.
//!
//! Several writers on one pool (nodes on one etcd, agents on one Kubernetes pool) each see a
//! revision they did not write before nearly every plan. Decoding it costs a parse of every
//! record; following it costs one memory comparison per record the other writers kept and a
//! parse of the few they changed.

use std::sync::Arc;

use super::{Held, PoolIndex};
use crate::ip::parse_ip;
use crate::model::{parse_plain_fields, AddressSpec, PoolIPAllocation, SpiderIPPool};

/// Records a follow may parse, whatever the pool's size.
const FRESH_ALLOWANCE: usize = 8;

impl PoolIndex {
    /// This index brought to `pool`, a newer revision of the pool it was built for: the
    /// records `pool` changed are decoded, the others kept. Holds the same records, keys and
    /// free addresses as [`PoolIndex::from_pool`] on `pool` whenever it is `Some`.
    ///
    /// `None` when the index cannot follow: `pool`'s family or usable addresses differ from the
    /// index's (another spec), the index holds no text to compare with, `pool` has no
    /// `allocatedIPs` text, more records to parse than 8 plus a quarter of the index's (decoding
    /// is then cheaper), or a text this does not follow (see `Encoded::follow`; also a key
    /// that is not an address of the family, a record that does not decode, two keys for one
    /// address). Decode the pool then: that also reports what is wrong with it.
    pub fn followed(mut self, pool: &SpiderIPPool) -> Option<PoolIndex> {
        let newer = match pool.status.allocated_ips.as_deref() {
            None | Some("") | Some("null") => return None,
            Some(text) => Arc::new(text.to_owned()),
        };
        let same_spec = pool.spec.family().ok() == Some(self.family)
            && pool.spec.subnet_net().ok().map(|n| n.prefix_len()) == Some(self.prefix)
            && pool.spec.total_ips().ok().as_ref() == Some(&self.usable);
        if !same_spec {
            return None;
        }
        let base = self.encoded.take()?;
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        // A fresh record costs a few times what decoding one costs (its own allocations, an
        // update of every map); past a quarter of the records, decoding them all is cheaper.
        let max_fresh = FRESH_ALLOWANCE + base.records() / 4;
        let mut followed = base.follow(newer.clone(), &dirty, max_fresh)?;
        // Without `encoded`, these changes are not tracked as dirty: the new text is the base.
        for addr in followed.gone.iter().chain(&dirty) {
            self.set(*addr, None);
        }
        for fresh in &followed.fresh {
            let key = &newer[fresh.key.clone()];
            let value = &newer[fresh.value.clone()];
            let addr = parse_ip(Some(self.family), key).ok()?;
            if self.get(addr).is_some() {
                return None;
            }
            let canonical = addr.is_ipv4() || addr.to_string() == key;
            let key = (!canonical).then(|| key.into());
            // Decoded, not spans of the new text: a long-lived index following many revisions
            // would otherwise keep each text alive for a few records.
            let record = match parse_plain_fields(value) {
                Some(fields) => fields.to_record(),
                None => serde_json::from_str::<PoolIPAllocation>(value).ok()?,
            };
            self.set(addr, Some(Held::with_key(Arc::new(record), key)));
            followed.text.set_addr(fresh.span, addr);
        }
        self.encoded = Some(followed.text);
        Some(self)
    }

    /// Whether `self` holds the records (under the same keys) and free addresses of `other`,
    /// and encodes them as `other` does (so its spans are right for the next write): debug
    /// builds check every follow against a decode of the same revision with it.
    pub(crate) fn agrees_with(&self, other: &PoolIndex) -> bool {
        self.len() == other.len()
            && self.free() == other.free()
            && self.encode() == other.encode()
            && self
                .addrs()
                .all(|a| self.get(a).is_some_and(|h| other.get(a) == Some(h)))
    }
}
