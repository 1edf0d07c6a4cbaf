//! Writes the generated part of the seed corpora: store files written by `LocalStore` itself
//! (snapshot and journal after a few commits, a torn journal, the v1 format), etcd values as
//! the etcd store keeps them, objects as JSON, and `arbitrary`-encoded inputs for the
//! structured targets. Hand-written seeds (YAML, netconfs, annotations, ranges) are plain
//! files next to these. Run from the repository root:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus
//! ```
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use backend_memory::LocalStore;
use spiderpool_core::ipam::Ipam;
use spiderpool_core::model::{parse_documents, Object};
use spiderpool_core::store::{Key, Store};
use spiderpool_testkit::fixtures::{add, block_on_ready, del, pool, reserved};

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    fs::write(corpus(target).join(name), bytes).unwrap();
}

fn store_input(dir: &Path) -> Vec<u8> {
    let mut out = fs::read(dir.join("store.json")).unwrap_or_default();
    if let Ok(j) = fs::read(dir.join("store.journal")) {
        out.extend_from_slice(b"\0JOURNAL\0");
        out.extend_from_slice(&j);
    }
    out
}

fn local_store_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = LocalStore::open(&dir).unwrap();
    let lab = pool(
        "lab-pool",
        "subnet: 10.250.0.0/24\nips: [10.250.0.10-10.250.0.30]\ngateway: 10.250.0.1\ndefault: true",
    );
    block_on_ready(store.create(Object::IpPool(lab))).unwrap();
    write("local_store", "one-pool", &store_input(&dir));
    block_on_ready(store.create(Object::ReservedIp(reserved("r", &["10.250.0.10"])))).unwrap();
    let ipam = Ipam::new(&store);
    for i in 0..3 {
        block_on_ready(ipam.allocate(&add("default", &format!("web-{i}"), &format!("uid-{i}"))))
            .unwrap();
    }
    block_on_ready(ipam.release(&del("default", "web-1", "uid-1"))).unwrap();
    let full = store_input(&dir);
    write("local_store", "snapshot-and-journal", &full);
    // A journal whose last record a crash cut short.
    let cut = full.len() - 20;
    write("local_store", "torn-journal", &full[..cut]);
    // Only the journal (no snapshot: not a state a store leaves, must be read or refused).
    if let Some(i) = full.windows(9).position(|w| w == b"\0JOURNAL\0") {
        write("local_store", "journal-only", &full[i..]);
    }
    // The v1 format, one JSON document.
    let pool_json =
        Object::IpPool(pool("old", "subnet: 10.0.0.0/24\nips: [10.0.0.1-10.0.0.5]")).to_value();
    let v1 = serde_json::json!({
        "format": "spiderpool-rs/local-store/v1", "revision": 3,
        "objects": [{"revision": 2, "object": pool_json}]
    });
    write("local_store", "v1", v1.to_string().as_bytes());
    write(
        "local_store",
        "v2-header-only",
        br#"{"format":"spiderpool-rs/local-store/v2","revision":0,"objects":0}
"#,
    );
    write(
        "local_store",
        "unknown-format",
        br#"{"format":"spiderpool-rs/local-store/v9"}"#,
    );

    // Objects as the stores keep them: JSON for object_json, key + value for etcd_value.
    let mut n = 0;
    for kind in ["SpiderIPPool", "SpiderReservedIP", "SpiderEndpoint"] {
        for s in block_on_ready(store.list(kind)).unwrap() {
            n += 1;
            let json = serde_json::to_vec(&s.object.to_value()).unwrap();
            write("object_json", &format!("stored-{n}"), &json);
            let key = Key::of(&s.object);
            let etcd_key = format!(
                "/spiderpool/o/{}/{}/{}\n",
                key.kind,
                key.namespace.as_deref().unwrap_or("_"),
                key.name
            );
            let mut v = etcd_key.into_bytes();
            v.extend_from_slice(&json);
            write("etcd_value", &format!("object-{n}"), &v);
        }
    }
}

fn yaml_as_json() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/object_yaml");
    let mut names: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        let text = fs::read_to_string(&path).unwrap();
        let Ok(docs) = parse_documents("seed", &text) else {
            continue;
        };
        let values: Vec<serde_json::Value> = docs.iter().map(|d| d.object.to_value()).collect();
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": values});
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".yaml", ".json");
        write(
            "object_json",
            &format!("list-{name}"),
            list.to_string().as_bytes(),
        );
    }
}

/// Deterministic pseudo-random bytes for the `arbitrary`-decoded targets.
fn random_seeds(target: &str, count: usize, len: usize, mut seed: u64) {
    for i in 0..count {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        write(target, &format!("random-{i}"), &bytes);
    }
}

fn main() {
    local_store_seeds();
    yaml_as_json();
    random_seeds("ipset", 6, 256, 0x9e37_79b9_7f4a_7c15);
    random_seeds("state_machine", 6, 512, 0x2545_f491_4f6c_dd1d);
    println!(
        "seed corpora written under {}/corpus",
        env!("CARGO_MANIFEST_DIR")
    );
}
