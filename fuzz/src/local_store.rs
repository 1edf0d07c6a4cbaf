//! `local_store`: the local store's file format (`store.json` snapshot, `store.journal`),
//! read through `backend_memory::LocalStore`.
//!
//! Input: the bytes of `store.json`, optionally followed by [`SEPARATOR`] and the bytes of
//! `store.journal`. An empty snapshot part means no `store.json`; no separator means no
//! journal. The files are written into a fresh private directory, the store is opened, every
//! kind listed, then one object created.
//!
//! Checked: no panic; a store that could not be read refuses the write and leaves both files
//! byte for byte as they were (nothing it could not read is ever rewritten); a store that
//! could be read takes the write, and a fresh process then reads every object it read before,
//! unchanged, plus the new one at a higher revision; a kind that did not read before still
//! does not (a damaged object is never dropped silently).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use backend_memory::LocalStore;
use spiderpool_core::model::{
    Object, SpiderEndpoint, SpiderIPPool, SpiderReservedIP, SpiderSubnet,
};
use spiderpool_core::store::{Key, Store, Stored};
use spiderpool_testkit::fixtures::pool;

use crate::util::{block_on_ready, tempdir};

/// Separates the snapshot from the journal in an input.
pub const SEPARATOR: &[u8] = b"\0JOURNAL\0";

const KINDS: [&str; 5] = [
    SpiderIPPool::KIND,
    SpiderSubnet::KIND,
    SpiderReservedIP::KIND,
    SpiderEndpoint::KIND,
    "Namespace",
];
const NEW_POOL: &str = "zz-fuzz-new-pool";

fn split(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        Some(i) => (&data[..i], Some(&data[i + SEPARATOR.len()..])),
        None => (data, None),
    }
}

fn write_private(path: &Path, bytes: &[u8]) {
    use std::io::Write as _;
    let mut f = fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// The files of the store directory other than the lock, with their contents.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "store.lock")
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

type Listing = BTreeMap<&'static str, Result<Vec<Stored>, String>>;

fn list_all(store: &LocalStore) -> Listing {
    KINDS
        .iter()
        .map(|&k| (k, block_on_ready(store.list(k)).map_err(|e| e.to_string())))
        .collect()
}

fn revision(s: &Stored) -> u64 {
    s.revision.0.parse().unwrap()
}

/// The `local_store` target.
pub fn local_store(data: &[u8]) {
    let (snapshot, journal) = split(data);
    let tmp = tempdir();
    let dir = tmp.path().join("store");
    fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
    if !snapshot.is_empty() {
        write_private(&dir.join("store.json"), snapshot);
    }
    if let Some(journal) = journal {
        write_private(&dir.join("store.journal"), journal);
    }
    let before = files(&dir);

    let store = LocalStore::open(&dir).unwrap();
    let probe = block_on_ready(store.get(&Key::pool("fuzz-probe-absent")));
    let listing = list_all(&store);
    for stored in listing.values().flatten().flatten() {
        // What a list returns, a get returns too.
        let got = block_on_ready(store.get(&Key::of(&stored.object)));
        assert_eq!(got.ok().flatten().as_ref(), Some(stored));
    }
    let new = Object::IpPool(pool(
        NEW_POOL,
        "subnet: 10.9.0.0/24\nips: [10.9.0.1-10.9.0.9]",
    ));
    let created = block_on_ready(store.create(new.clone()));

    if let Err(e) = &probe {
        // Unreadable: nothing may change.
        let _ = e.to_string();
        assert!(
            created.is_err(),
            "a store that failed to read ({e}) took a write"
        );
        assert_eq!(
            files(&dir),
            before,
            "an unreadable store ({e}) was rewritten"
        );
        return;
    }
    assert!(probe.unwrap().is_none());
    let created = match created {
        Ok(rev) => rev,
        Err(e) => {
            assert_eq!(
                files(&dir),
                before,
                "a refused write ({e}) changed the files"
            );
            return;
        }
    };
    let new_rev: u64 = created.0.parse().unwrap();
    for stored in listing.values().flatten().flatten() {
        assert!(
            revision(stored) < new_rev,
            "the new revision {new_rev} is not above {}",
            revision(stored)
        );
    }
    // Another process reads the files afresh.
    let fresh = LocalStore::open(&dir).unwrap();
    let got = block_on_ready(fresh.get(&Key::pool(NEW_POOL)))
        .unwrap_or_else(|e| panic!("the store does not read back after a write: {e}"))
        .expect("the created pool is there");
    assert_eq!(got.revision, created);
    let after = list_all(&fresh);
    for (kind, was) in &listing {
        match (was, &after[kind]) {
            (Ok(was), Ok(now)) => {
                let now: Vec<&Stored> =
                    now.iter().filter(|s| s.object.name() != NEW_POOL).collect();
                let was: Vec<&Stored> = was.iter().collect();
                assert_eq!(now, was, "{kind}: objects changed by an unrelated write");
            }
            (Err(_), Err(_)) => {}
            (Ok(_), Err(e)) => panic!("{kind}: readable before the write, not after: {e}"),
            (Err(e), Ok(_)) => panic!("{kind}: unreadable before the write ({e}), readable after"),
        }
    }
}
