//! `allocated_ips`: a pool's `status.allocatedIPs` as the pool index reads and writes it. The
//! index decodes the text on a fast path (borrowed keys, raw values, byte spans kept so that
//! a later write copies unchanged records) and falls back to the general decoder; this target
//! checks both against `SpiderIPPool::allocations` (serde into a map), then a write that
//! changes a few records against the same change made to the decoded map. A cached index
//! following the text (`PoolIndex::followed`, from another text of the pool) must end as the
//! index decoded from it, or refuse.

use std::collections::BTreeSet;
use std::sync::Arc;

use spiderpool_core::allocate::PoolIndex;
use spiderpool_core::ip::{parse_ip, IpSet};
use spiderpool_core::model::{IPPoolSpec, PoolIPAllocation, PoolIPAllocations, SpiderIPPool};

/// The pools the text is tried against: an IPv4 /16 and an IPv6 /120.
fn pools() -> Vec<SpiderIPPool> {
    [
        ("10.0.0.0/16", "10.0.0.1-10.0.255.254"),
        ("fd00::/120", "fd00::1-fd00::ff"),
    ]
    .iter()
    .map(|(subnet, ips)| {
        let spec: IPPoolSpec =
            serde_json::from_value(serde_json::json!({"subnet": subnet, "ips": [ips]})).unwrap();
        SpiderIPPool::new("p", spec)
    })
    .collect()
}

/// The records of a written text, `{}` when there is none.
fn records(text: &Option<String>) -> PoolIPAllocations {
    match text {
        None => PoolIPAllocations::new(),
        Some(t) => serde_json::from_str(t).expect("the index wrote a text that does not decode"),
    }
}

/// The keys of a JSON object in the order the text has them.
struct KeysInOrder(Vec<String>);

impl<'de> serde::Deserialize<'de> for KeysInOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = KeysInOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<KeysInOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    m.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(KeysInOrder(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// Keys in strictly increasing string order, as a later write's merge needs.
fn assert_sorted(text: &Option<String>) {
    let Some(t) = text else { return };
    let KeysInOrder(keys) = serde_json::from_str(t).unwrap();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "keys out of order in {t}"
    );
}

/// `a` and `b` hold the same records under the same keys, free addresses and encoding.
fn assert_same(a: &PoolIndex, b: &PoolIndex, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: record count");
    assert_eq!(a.allocated(), b.allocated(), "{what}: addresses");
    assert_eq!(a.free(), b.free(), "{what}: free addresses");
    assert_eq!(a.encode(), b.encode(), "{what}: encoding");
}

/// An index of `pool`'s spec holding one record at its first usable address, as written.
fn one_record(pool: &SpiderIPPool) -> Option<PoolIndex> {
    let mut index = PoolIndex::empty(&pool.spec).ok()?;
    let none = IpSet::new(index.family());
    let record = PoolIPAllocation {
        pod: "fuzz/base".into(),
        pod_uid: "uid-base".into(),
        interface: None,
        extra: Default::default(),
    };
    index
        .allocate(Arc::new(record), &none, &mut Vec::new())
        .ok()?;
    index.encode_written();
    Some(index)
}

pub fn allocated_ips(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for mut pool in pools() {
        pool.status.allocated_ips = Some(text.to_string());
        let general = pool.allocations();
        // An index of another text following this one: the decoded index, or a refusal.
        if let Some(followed) = one_record(&pool).and_then(|base| base.followed(&pool)) {
            let decoded = PoolIndex::from_pool(&pool).expect("followed a text decoding refuses");
            assert_same(&followed, &decoded, "followed");
        }
        let Ok(mut index) = PoolIndex::from_pool(&pool) else {
            // The index also refuses keys that are not addresses of the pool's family and two
            // spellings of one address, which the general decoder accepts; nothing else.
            if let (Ok(records), Ok(family)) =
                (&general, PoolIndex::empty(&pool.spec).map(|i| i.family()))
            {
                let addrs: Result<BTreeSet<_>, _> =
                    records.keys().map(|k| parse_ip(Some(family), k)).collect();
                if let Ok(addrs) = addrs {
                    assert!(addrs.len() < records.len(), "the index refused a good text");
                }
            }
            continue;
        };
        let mut model = general.expect("the index read a text the general decoder refuses");
        assert_eq!(index.len(), model.len());
        for (key, record) in &model {
            let (_, held) = index.get_key(key).expect("a record the index lost");
            assert_eq!(&*held.record(), record, "record of {key}");
        }
        let written = index.encode();
        assert_eq!(records(&written), model, "the first write changed records");
        assert_sorted(&written);

        // A write taken as the base, then a release and an allocation: the next text (copied
        // records and encoded ones, merged) must hold exactly the changed map.
        let base = index.encode_written();
        assert_eq!(base, written);
        let follower = index.clone();
        let mut journal = Vec::new();
        if let Some(first) = model.keys().next().cloned() {
            let (addr, _) = index.get_key(&first).unwrap();
            assert!(index.release(addr, &mut journal));
            model.remove(&first);
        }
        let record = PoolIPAllocation {
            pod: "fuzz/new".into(),
            pod_uid: "uid-new".into(),
            interface: Some("eth0".into()),
            extra: Default::default(),
        };
        let reserved = IpSet::new(index.family());
        if let Ok(addr) = index.allocate(Arc::new(record.clone()), &reserved, &mut journal) {
            model.insert(index.key_of(addr), record);
        }
        let next = index.encode();
        assert_eq!(
            records(&next),
            model,
            "the spliced write differs from the change"
        );
        assert_sorted(&next);
        // And what was written reads back into the same index.
        let mut again = pool.clone();
        again.status.allocated_ips = next.clone();
        let reread = PoolIndex::from_pool(&again).expect("the index refuses its own text");
        assert_eq!(reread.len(), model.len());
        assert_eq!(reread.allocated(), index.allocated());
        // An index of the base follows the two changes.
        let followed = follower.followed(&again).expect("two changes not followed");
        assert_same(&followed, &reread, "followed write");
        // Undone, the index writes the base again (records equal; copied text identical).
        index.undo(&mut journal);
        assert_eq!(records(&index.encode()), records(&base));
    }
}
