//! Property tests: a cached [`PoolIndex`] following another writer's revision of its pool
//! ([`PoolIndex::followed`]) ends as the index decoded from that revision.
//!
//! The follower's text comes from either encoder (Spiderpool's map encoding or the index's
//! own splicing), it may hold changes a failed plan undid, and the newer text is written by
//! either encoder too, IPv6 keys sometimes spelled in capitals. A text our encoders write with
//! a few changes must be followed; a text cut or garbled at random is either refused or
//! followed to the index `from_pool` decodes (never to another one).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;
use spiderpool_core::allocate::{Held, PoolIndex};
use spiderpool_core::ip::{IpFamily, IpSet};
use spiderpool_core::model::{IPPoolSpec, PoolIPAllocation, PoolIPAllocations, SpiderIPPool};

/// (subnet, ips, first value of the window records are placed in)
const POOLS: [(&str, &str, u128); 2] = [
    ("10.6.0.0/24", "10.6.0.1-10.6.0.60", 0x0a06_0001),
    ("fd00::/120", "fd00::1-fd00::3c", (0xfd00u128 << 112) + 1),
];

fn spec(which: usize) -> IPPoolSpec {
    IPPoolSpec {
        subnet: POOLS[which].0.into(),
        ips: vec![POOLS[which].1.into()],
        ..IPPoolSpec::default()
    }
}

fn family(which: usize) -> IpFamily {
    if which == 0 {
        IpFamily::V4
    } else {
        IpFamily::V6
    }
}

fn rec(n: usize) -> PoolIPAllocation {
    PoolIPAllocation {
        pod: format!("ns/pod-{}", n % 5),
        pod_uid: format!("uid-{n}"),
        interface: (!n.is_multiple_of(3)).then(|| "eth0".to_string()),
        extra: Default::default(),
    }
}

/// Records by offset in the window: (record number, key in capitals).
type Model = BTreeMap<u128, (usize, bool)>;

/// The pool as Spiderpool's encoder writes `model` (keys in capitals where asked, IPv6 only).
fn wire(which: usize, model: &Model) -> SpiderIPPool {
    let records: PoolIPAllocations = model
        .iter()
        .map(|(off, (n, caps))| {
            let a = family(which)
                .addr(POOLS[which].2 + off)
                .unwrap()
                .to_string();
            (if *caps { a.to_uppercase() } else { a }, rec(*n))
        })
        .collect();
    let mut pool = SpiderIPPool::new("p", spec(which));
    pool.set_allocations(&records);
    pool
}

fn with_text(which: usize, text: Option<String>) -> SpiderIPPool {
    let mut pool = SpiderIPPool::new("p", spec(which));
    pool.status.allocated_ips = text;
    pool
}

fn addr(which: usize, off: u128) -> IpAddr {
    family(which).addr(POOLS[which].2 + off).unwrap()
}

/// Applies `changes` (offset, Some(record number) or None) to `index` through `set`.
fn apply(which: usize, index: &mut PoolIndex, changes: &[(u128, Option<usize>)]) {
    for &(off, n) in changes {
        index.set(addr(which, off), n.map(|n| Held::new(Arc::new(rec(n)))));
    }
}

fn changes() -> impl Strategy<Value = Vec<(u128, Option<usize>)>> {
    proptest::collection::vec(
        (0u128..60, proptest::option::weighted(0.7, 100usize..200)),
        0..12,
    )
}

/// `a` and `b` hold the same records under the same keys, and decide alike.
fn same(which: usize, a: &PoolIndex, b: &PoolIndex) -> Result<(), TestCaseError> {
    a.validate_invariants().map_err(TestCaseError::fail)?;
    prop_assert_eq!(a.len(), b.len());
    prop_assert_eq!(a.allocated(), b.allocated());
    prop_assert_eq!(a.free(), b.free());
    for off in 0..64 {
        let x = addr(which, off);
        let (ra, rb) = (a.get(x), b.get(x));
        prop_assert_eq!(
            ra.map(Held::record),
            rb.map(Held::record),
            "record at {}",
            x
        );
        prop_assert_eq!(
            ra.and_then(Held::key),
            rb.and_then(Held::key),
            "key at {}",
            x
        );
    }
    let none = IpSet::new(family(which));
    prop_assert_eq!(a.lowest_free(&none), b.lowest_free(&none));
    prop_assert_eq!(a.encode(), b.encode());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_followed_index_is_the_decoded_one(
        which in 0usize..2,
        start in proptest::collection::btree_map(0u128..60, (0usize..100, any::<bool>()), 0..40),
        own_text in any::<bool>(),
        undone in changes(),
        theirs in changes(),
        newer_by_wire in any::<bool>(),
        caps in proptest::collection::btree_set(0u128..60, 0..6),
        after in changes(),
    ) {
        let mut start = start;
        if which == 0 {
            start.values_mut().for_each(|(_, c)| *c = false);
        }
        // The follower, as decoded from Spiderpool's text or as it wrote the pool itself.
        let decoded = PoolIndex::from_pool(&wire(which, &start)).unwrap();
        let mut follower = if own_text {
            let mut own = PoolIndex::empty(&spec(which)).unwrap();
            for (off, (n, _)) in &start {
                own.set(addr(which, *off), Some(Held::new(Arc::new(rec(*n)))));
            }
            own.encode_written();
            own
        } else {
            decoded.clone()
        };
        let base = follower.clone();
        // A plan's changes, undone after its commit failed: the records are the text's again.
        let mut journal = Vec::new();
        for &(off, n) in &undone {
            let old = follower.set(addr(which, off), n.map(|n| Held::new(Arc::new(rec(n)))));
            journal.push((addr(which, off), old));
        }
        follower.undo(&mut journal);
        // Another writer's revision, from the same start.
        let newer = if newer_by_wire {
            let mut model = start.clone();
            for &(off, n) in &theirs {
                match n {
                    Some(n) => model.insert(off, (n, which == 1 && caps.contains(&off))),
                    None => model.remove(&off),
                };
            }
            wire(which, &model)
        } else {
            let mut writer = base;
            apply(which, &mut writer, &theirs);
            with_text(which, writer.encode_written())
        };
        let Ok(want) = PoolIndex::from_pool(&newer) else {
            // Two spellings of one address: refused, as decoding refuses it.
            prop_assert!(follower.followed(&newer).is_none());
            return Ok(());
        };
        if newer.status.allocated_ips.is_none() {
            prop_assert!(follower.followed(&newer).is_none(), "nothing to follow");
            return Ok(());
        }
        // Few records to parse (changed by the other writer, or by the undone plan): followed.
        // More may be decoded instead (cheaper), never followed wrong.
        let respelled = which == 1 && newer_by_wire && own_text && start.values().any(|r| r.1);
        let few = theirs.len() + undone.len() <= 8 && !respelled;
        let Some(mut got) = follower.followed(&newer) else {
            prop_assert!(!few, "a text with {} changes is followed", theirs.len());
            return Ok(());
        };
        let mut want = want;
        same(which, &got, &want)?;
        // And they go on alike: the followed index's next text is the decoded one's.
        apply(which, &mut got, &after);
        apply(which, &mut want, &after);
        same(which, &got, &want)?;
    }

    #[test]
    fn a_garbled_text_is_refused_or_followed_to_the_decoded_index(
        which in 0usize..2,
        start in proptest::collection::btree_map(0u128..60, 0usize..100, 1..30),
        theirs in changes(),
        cut in any::<proptest::sample::Index>(),
        len in 0usize..40,
        with in proptest::sample::select(vec!["", ",", "}", "{", "\"", ":", " ", "\"10.6.0.9\":{}", "x"]),
    ) {
        let model: Model = start.iter().map(|(o, n)| (*o, (*n, false))).collect();
        let follower = PoolIndex::from_pool(&wire(which, &model)).unwrap();
        let mut writer = follower.clone();
        apply(which, &mut writer, &theirs);
        let Some(text) = writer.encode_written() else { return Ok(()) };
        let at = cut.index(text.len());
        let end = (at + len).min(text.len());
        if !text.is_char_boundary(at) || !text.is_char_boundary(end) {
            return Ok(());
        }
        let garbled = format!("{}{}{}", &text[..at], with, &text[end..]);
        let newer = with_text(which, Some(garbled));
        match (follower.followed(&newer), PoolIndex::from_pool(&newer)) {
            (Some(got), Ok(want)) => same(which, &got, &want)?,
            (Some(_), Err(e)) => prop_assert!(false, "followed a text decoding refuses: {}", e),
            (None, _) => {}
        }
    }
}

#[test]
fn a_key_out_of_order_or_spelled_twice_is_not_followed() {
    let records: PoolIPAllocations = [("fd00::2".to_string(), rec(1))].into_iter().collect();
    let mut pool = SpiderIPPool::new("p", spec(1));
    pool.set_allocations(&records);
    let follower = PoolIndex::from_pool(&pool).unwrap();
    let r = serde_json::to_string(&rec(2)).unwrap();
    for text in [
        format!(r#"{{"fd00::3":{r},"fd00::2":{r}}}"#),
        format!(r#"{{"FD00::2":{r},"fd00::2":{r}}}"#),
        format!(r#"{{"10.6.0.1":{r}}}"#),
        format!(r#"{{"fd00::2":{r}}} "#),
    ] {
        let newer = with_text(1, Some(text.clone()));
        assert!(follower.clone().followed(&newer).is_none(), "{text}");
    }
    // A space before a value is JSON the walk reads (whitespace elsewhere is not followed).
    let spaced = with_text(1, Some(format!(r#"{{"fd00::2": {r}}}"#)));
    let got = follower.clone().followed(&spaced).unwrap();
    assert_eq!(
        got.get(addr(1, 1)).map(Held::record),
        Some(Arc::new(rec(2)))
    );
    // Every record removed: `{}` is followed to an empty index.
    let emptied = follower.followed(&with_text(1, Some("{}".into()))).unwrap();
    assert!(emptied.is_empty());
    assert_eq!(
        emptied.lowest_free(&IpSet::new(IpFamily::V6)),
        Some(addr(1, 0))
    );
}

#[test]
fn a_pool_with_another_spec_is_not_followed() {
    let model: Model = [(1, (1, false)), (2, (2, false))].into_iter().collect();
    let follower = PoolIndex::from_pool(&wire(0, &model)).unwrap();
    let mut newer = wire(0, &[(1, (1, false))].into_iter().collect());
    assert!(
        follower.clone().followed(&newer).is_some(),
        "same spec: followed"
    );
    // Another address excluded since: the index's usable addresses would be stale.
    newer.spec.exclude_ips = vec!["10.6.0.9".into()];
    assert!(follower.clone().followed(&newer).is_none());
    let mut other = wire(0, &[(1, (1, false))].into_iter().collect());
    other.spec.subnet = "10.6.0.0/16".into();
    assert!(follower.followed(&other).is_none());
}
