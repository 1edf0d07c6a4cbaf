//! The local store reads a large snapshot in parts (the objects an operation needs, found by
//! a binary search over the sorted file): every object reads the same as from a whole read,
//! and a damaged line is reported when it is read and stops any rewrite of the file.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use backend_memory::LocalStore;
use serde_json::json;
use spiderpool_core::model::{object_from_value, Object};
use spiderpool_core::store::{Key, Store, Stored, Write};
use spiderpool_core::Error;
use spiderpool_testkit::fixtures::{block_on_ready, pool, reserved};

const KINDS: [&str; 5] = [
    "SpiderEndpoint",
    "SpiderIPPool",
    "SpiderReservedIP",
    "SpiderSubnet",
    "Zone",
];

fn endpoint(ns: &str, name: &str, ip: &str) -> Object {
    object_from_value(
        name,
        json!({
            "apiVersion": "spiderpool.spidernet.io/v2beta1",
            "kind": "SpiderEndpoint",
            "metadata": {"name": name, "namespace": ns},
            "status": {"current": {"uid": format!("uid-{name}"), "node": "n1",
                "ips": [{"interface": "eth0", "ipv4": ip, "ipv4Pool": "p0"}]}}
        }),
    )
    .unwrap()
}

fn other(name: &str) -> Object {
    object_from_value(
        name,
        json!({"apiVersion": "example.io/v1", "kind": "Zone", "metadata": {"name": name}}),
    )
    .unwrap()
}

/// A store whose snapshot holds 3 pools (one with 300 records), 300 endpoints in two
/// namespaces, reserved IPs, other objects; then a journal of updates, a patch and deletions
/// over it. Returns every key it holds and keys it does not.
fn build(dir: &Path) -> (Vec<Key>, Vec<Key>) {
    let store = LocalStore::open(dir).unwrap();
    let mut writes = Vec::new();
    let mut p0 = pool("p0", "subnet: 10.0.0.0/16");
    let records: Vec<String> = (0..300)
        .map(|i| {
            format!(
                "\"10.0.{}.{}\":{{\"pod\":\"default/e{i:03}\"}}",
                i / 200,
                i % 200 + 1
            )
        })
        .collect();
    p0.status.allocated_ips = Some(format!("{{{}}}", records.join(",")));
    writes.push(Write::Create(Object::IpPool(p0)));
    writes.push(Write::Create(Object::IpPool(pool(
        "p1",
        "subnet: 10.1.0.0/24",
    ))));
    writes.push(Write::Create(Object::IpPool(pool(
        "p2",
        "subnet: 10.2.0.0/24",
    ))));
    writes.push(Write::Create(Object::ReservedIp(reserved(
        "r0",
        &["10.0.0.250"],
    ))));
    for i in 0..300 {
        let ns = if i % 3 == 0 { "kube-system" } else { "default" };
        let ip = format!("10.0.{}.{}/16", i / 200, i % 200 + 1);
        writes.push(Write::Create(endpoint(ns, &format!("e{i:03}"), &ip)));
    }
    for name in ["a", "m", "z"] {
        writes.push(Write::Create(other(name)));
    }
    block_on_ready(store.commit(writes)).unwrap();
    // The journal over the snapshot: an update, a patch of the large field, deletions, a
    // creation between existing keys.
    let key = Key::pool("p0");
    let Stored { object, revision } = block_on_ready(store.get(&key)).unwrap().unwrap();
    let Object::IpPool(mut p0) = object else {
        panic!("not a pool")
    };
    let text = p0.status.allocated_ips.take().unwrap();
    p0.status.allocated_ips = Some(text.replacen("default/e007", "default/e007-again", 1));
    block_on_ready(store.update(Object::IpPool(p0), &revision)).unwrap();
    for gone in [Key::endpoint("default", "e001"), Key::cluster("Zone", "m")] {
        let now = block_on_ready(store.get(&gone)).unwrap().unwrap();
        block_on_ready(store.delete(&gone, &now.revision)).unwrap();
    }
    block_on_ready(store.create(endpoint("default", "e001x", "10.0.9.9/16"))).unwrap();
    let mut present = Vec::new();
    for kind in KINDS {
        for s in block_on_ready(store.list(kind)).unwrap() {
            present.push(Key::of(&s.object));
        }
    }
    let absent = vec![
        Key::endpoint("default", "e001"),
        Key::endpoint("default", "a"),
        Key::endpoint("default", "e0015"),
        Key::endpoint("zzz", "e001"),
        Key::endpoint("", ""),
        Key::pool("p"),
        Key::pool("p00"),
        Key::pool("zzzz"),
        Key::cluster("Zone", "m"),
        Key::cluster("AAA", "x"),
        Key::cluster("Zzzz", "x"),
    ];
    (present, absent)
}

#[test]
fn every_object_reads_the_same_whole_and_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let (present, absent) = build(&path);
    assert_eq!(present.len(), 3 + 300 + 1 + 2);
    let snapshot = std::fs::metadata(path.join("store.json")).unwrap().len();
    assert!(snapshot > 100_000, "snapshot {snapshot} bytes");
    let whole = LocalStore::open(&path).unwrap().with_read_size(usize::MAX);
    for size in [1, 7, 23, 100, 4096, 65_536] {
        // Objects one by one, then kinds; and kinds first, then objects.
        for kinds_first in [false, true] {
            let parts = LocalStore::open(&path).unwrap().with_read_size(size);
            let lists = |s: &LocalStore| {
                KINDS
                    .iter()
                    .map(|k| block_on_ready(s.list(k)).unwrap())
                    .collect::<Vec<_>>()
            };
            if kinds_first {
                assert_eq!(lists(&parts), lists(&whole), "size {size}");
            }
            for key in present.iter().chain(&absent) {
                assert_eq!(
                    block_on_ready(parts.get(key)).unwrap(),
                    block_on_ready(whole.get(key)).unwrap(),
                    "size {size}: {key}"
                );
            }
            assert_eq!(lists(&parts), lists(&whole), "size {size}");
        }
    }
    for key in &absent {
        assert_eq!(block_on_ready(whole.get(key)).unwrap(), None, "{key}");
    }
}

#[test]
fn writes_on_a_store_read_in_parts_survive_a_fold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    build(&path);
    let parts = LocalStore::open(&path).unwrap().with_read_size(64);
    // Enough large writes through the store read in parts to fold the journal.
    let key = Key::pool("p1");
    for i in 0..8 {
        let now = block_on_ready(parts.get(&key)).unwrap().unwrap();
        let Object::IpPool(mut p1) = now.object else {
            panic!("not a pool")
        };
        p1.status.allocated_ips = Some(format!("{i}").repeat(40_000));
        block_on_ready(parts.update(Object::IpPool(p1), &now.revision)).unwrap();
    }
    let journal = std::fs::read(path.join("store.journal")).unwrap();
    let journal = journal.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    assert!(journal < 200_000, "the journal was never folded: {journal}");
    let whole = LocalStore::open(&path).unwrap().with_read_size(usize::MAX);
    let Object::IpPool(p1) = block_on_ready(whole.get(&key)).unwrap().unwrap().object else {
        panic!("not a pool")
    };
    assert_eq!(p1.status.allocated_ips, Some("7".repeat(40_000)));
    assert_eq!(
        block_on_ready(whole.list("SpiderEndpoint")).unwrap().len(),
        300
    );
}

#[test]
fn a_damaged_line_is_reported_when_read_and_the_file_never_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    build(&path);
    let data = path.join("store.json");
    let text = std::fs::read_to_string(&data).unwrap();
    let damaged = text.replacen("\t+default\te151\t", "\t+default\te151\tseven", 1);
    assert!(damaged != text, "nothing damaged");
    std::fs::write(&data, &damaged).unwrap();
    let store = LocalStore::open(&path).unwrap().with_read_size(4096);
    // Objects elsewhere in the file read and write as before.
    let other = Key::endpoint("default", "e152");
    assert!(block_on_ready(store.get(&other)).unwrap().is_some());
    let now = block_on_ready(store.get(&Key::pool("p2")))
        .unwrap()
        .unwrap();
    block_on_ready(store.update(now.object.clone(), &now.revision)).unwrap();
    // The damaged one, and its kind, are an error naming the file and the reason.
    let bad = Key::endpoint("default", "e151");
    for err in [
        block_on_ready(store.get(&bad)).unwrap_err(),
        block_on_ready(store.list("SpiderEndpoint")).unwrap_err(),
    ] {
        assert!(matches!(err, Error::Storage { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("store.json: corrupt store file, left untouched")
                && text.contains("bad revision"),
            "{text}"
        );
    }
    // A write that folds the journal reads the whole file first: refused, file untouched.
    let now = block_on_ready(store.get(&Key::pool("p1")))
        .unwrap()
        .unwrap();
    let Object::IpPool(mut p1) = now.object else {
        panic!("not a pool")
    };
    p1.status.allocated_ips = Some("x".repeat(300_000));
    let err = block_on_ready(store.update(Object::IpPool(p1), &now.revision)).unwrap_err();
    assert!(err.to_string().contains("bad revision"), "{err}");
    assert!(
        std::fs::read_to_string(&data).unwrap() == damaged,
        "store.json was rewritten"
    );
}
