//! The local file store: the conformance suite, and its file guarantees.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use async_trait::async_trait;
use backend_memory::LocalStore;
use spiderpool_core::model::Object;
use spiderpool_core::store::{Key, Revision, Store, Stored, Write};
use spiderpool_core::Error;
use spiderpool_testkit::fixtures::{block_on_ready, pool};

/// A local store in a temporary directory that is removed with it.
struct TempLocal {
    store: LocalStore,
    _dir: tempfile::TempDir,
}

impl TempLocal {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path().join("store")).unwrap();
        TempLocal { store, _dir: dir }
    }

    /// A store that reads its snapshot in parts of a few bytes: every object found by the
    /// binary search over the file, every probe cut short in the middle of a line.
    fn in_parts() -> Self {
        let mut t = Self::new();
        t.store = t.store.with_read_size(23);
        t
    }
}

#[async_trait]
impl Store for TempLocal {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, Error> {
        self.store.get(key).await
    }
    async fn list(&self, kind: &str) -> Result<Vec<Stored>, Error> {
        self.store.list(kind).await
    }
    async fn create(&self, object: Object) -> Result<Revision, Error> {
        self.store.create(object).await
    }
    async fn update(&self, object: Object, expected: &Revision) -> Result<Revision, Error> {
        self.store.update(object, expected).await
    }
    async fn delete(&self, key: &Key, expected: &Revision) -> Result<(), Error> {
        self.store.delete(key, expected).await
    }
    fn is_atomic(&self) -> bool {
        self.store.is_atomic()
    }
    async fn commit(&self, writes: Vec<Write>) -> Result<(), Error> {
        self.store.commit(writes).await
    }
}

spiderpool_testkit::conformance_tests!(TempLocal::new());

mod read_in_parts {
    spiderpool_testkit::conformance_tests!(super::TempLocal::in_parts());
}

#[test]
fn files_are_private_and_the_state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = LocalStore::open(&path).unwrap();
    block_on_ready(store.create(Object::IpPool(pool("p", "subnet: 10.0.0.0/24")))).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&path.join("store.json")), 0o600);
    assert_eq!(mode(&path.join("store.lock")), 0o600);
    let again = LocalStore::open(&path).unwrap();
    let got = block_on_ready(again.get(&Key::pool("p"))).unwrap().unwrap();
    assert_eq!(got.revision, Revision("1".into()));
}

#[test]
fn a_directory_writable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("open");
    std::fs::create_dir(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = LocalStore::open(&path).unwrap_err();
    assert!(
        err.to_string().contains("writable by group or others"),
        "{err}"
    );
}

#[test]
fn a_corrupt_file_is_reported_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("s")).unwrap();
    let data = store.dir().join("store.json");
    for bad in [
        "{\"format\":\"spiderpool-rs/local-store/v1\",\"revision\":1,\"objects\":[{\"revision\":1}]}",
        "not json at all",
        "{\"format\":\"spiderpool-rs/local-store/v1\",\"revision\":1,\"objects\":[{\"revision\":1,\"object\":{\"apiVersion\":\"spiderpool.spidernet.io/v2beta1\",\"kind\":\"SpiderIPPool\",\"spec\":{\"ips\":5}}}]}",
    ] {
        std::fs::write(&data, bad).unwrap();
        let err = block_on_ready(store.create(Object::IpPool(pool("p", "subnet: 10.0.0.0/24")))).unwrap_err();
        assert!(matches!(err, Error::Storage { .. }), "{err:?}");
        assert!(err.to_string().contains("store.json: corrupt store file, left untouched"), "{err}");
        assert_eq!(std::fs::read_to_string(&data).unwrap(), bad, "the file was modified");
    }
    std::fs::write(
        &data,
        "{\"format\":\"spiderpool-rs/local-store/v9\",\"revision\":0,\"objects\":[]}",
    )
    .unwrap();
    let err = block_on_ready(store.list("SpiderIPPool")).unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown store format \"spiderpool-rs/local-store/v9\""),
        "{err}"
    );
}

#[test]
fn a_lock_held_too_long_is_a_retryable_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("s"))
        .unwrap()
        .with_lock_timeout(Duration::from_millis(50));
    let holder = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(store.dir().join("store.lock"))
        .unwrap();
    holder.lock().unwrap();
    let err = block_on_ready(store.list("SpiderIPPool")).unwrap_err();
    assert!(matches!(err, Error::Busy { waited_ms: 50, .. }), "{err:?}");
    assert!(err.to_string().contains("try again later"));
    // The engine does not wait again: the lock timeout is the bound.
    assert!(!spiderpool_core::ipam::is_retryable(&err));
    holder.unlock().unwrap();
    assert!(block_on_ready(store.list("SpiderIPPool"))
        .unwrap()
        .is_empty());
}

#[test]
fn a_v1_file_is_read_and_rewritten_as_v2() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("s")).unwrap();
    let data = store.dir().join("store.json");
    std::fs::write(
        &data,
        "{\"format\":\"spiderpool-rs/local-store/v1\",\"revision\":3,\"objects\":[{\"revision\":2,\"object\":{\"apiVersion\":\"spiderpool.spidernet.io/v2beta1\",\"kind\":\"SpiderIPPool\",\"metadata\":{\"name\":\"old\"},\"spec\":{\"subnet\":\"10.0.0.0/24\"}}}]}",
    )
    .unwrap();
    let got = block_on_ready(store.get(&Key::pool("old")))
        .unwrap()
        .unwrap();
    assert_eq!(got.revision, Revision("2".into()));
    let rev =
        block_on_ready(store.create(Object::IpPool(pool("new", "subnet: 10.1.0.0/24")))).unwrap();
    assert_eq!(rev, Revision("4".into()));
    let text = std::fs::read_to_string(&data).unwrap();
    assert!(
        text.starts_with("{\"format\":\"spiderpool-rs/local-store/v2\""),
        "{text}"
    );
    let again = LocalStore::open(store.dir()).unwrap();
    let names: Vec<_> = block_on_ready(again.list("SpiderIPPool"))
        .unwrap()
        .into_iter()
        .map(|s| Key::of(&s.object).name)
        .collect();
    assert_eq!(names, ["new", "old"]);
}

#[test]
fn writes_go_to_the_journal_and_every_process_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    let a = LocalStore::open(dir.path().join("s")).unwrap();
    let b = LocalStore::open(dir.path().join("s")).unwrap();
    block_on_ready(a.create(Object::IpPool(pool("p0", "subnet: 10.0.0.0/24")))).unwrap();
    for i in 1..20 {
        let (w, r) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let name = format!("p{i}");
        block_on_ready(w.create(Object::IpPool(pool(&name, "subnet: 10.0.0.0/24")))).unwrap();
        assert!(block_on_ready(r.get(&Key::pool(&name))).unwrap().is_some());
        let prev = Key::pool(&format!("p{}", i - 1));
        let stored = block_on_ready(r.get(&prev)).unwrap().unwrap();
        block_on_ready(r.delete(&prev, &stored.revision)).unwrap();
        assert!(block_on_ready(w.get(&prev)).unwrap().is_none());
    }
    let journal = dir.path().join("s/store.journal");
    assert!(std::fs::metadata(&journal).unwrap().len() > 0);
    let fresh = LocalStore::open(dir.path().join("s")).unwrap();
    let all = block_on_ready(fresh.list("SpiderIPPool")).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].revision, Revision("38".into()));
}

#[test]
fn a_torn_last_record_is_ignored_and_a_damaged_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("s")).unwrap();
    for name in ["p1", "p2", "p3"] {
        block_on_ready(store.create(Object::IpPool(pool(name, "subnet: 10.0.0.0/24")))).unwrap();
    }
    let journal = store.dir().join("store.journal");
    let good = content(&journal);
    // A crash in the middle of the last append: that commit never returned.
    std::fs::write(&journal, &good[..good.len() - 7]).unwrap();
    let torn = LocalStore::open(store.dir()).unwrap();
    assert!(block_on_ready(torn.get(&Key::pool("p3")))
        .unwrap()
        .is_none());
    assert!(block_on_ready(torn.get(&Key::pool("p2")))
        .unwrap()
        .is_some());
    // The next writer cuts the torn record off and appends after the last whole one.
    block_on_ready(torn.create(Object::IpPool(pool("p4", "subnet: 10.0.0.0/24")))).unwrap();
    let fresh = LocalStore::open(store.dir()).unwrap();
    assert_eq!(block_on_ready(fresh.list("SpiderIPPool")).unwrap().len(), 3);
    // A damaged record followed by others is corruption: refused, left untouched.
    let mut bad = std::fs::read(&journal).unwrap();
    let at = bad.iter().position(|b| *b == b'\n').unwrap() + 10;
    bad[at] ^= 1;
    std::fs::write(&journal, &bad).unwrap();
    let damaged = LocalStore::open(store.dir()).unwrap();
    let err = block_on_ready(damaged.create(Object::IpPool(pool("p5", "subnet: 10.0.0.0/24"))))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("store.journal: corrupt store file"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        bad,
        "the journal was modified"
    );
}

#[test]
fn a_large_field_is_journaled_as_a_patch_and_replayed_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("s")).unwrap();
    let mut p = pool("p", "subnet: 10.0.0.0/24");
    block_on_ready(store.create(Object::IpPool(p.clone()))).unwrap();
    // Records inserted at the front, the back and the middle; characters the files escape.
    let mut records: Vec<String> = Vec::new();
    for i in 0..40 {
        let at = [0, records.len(), records.len() / 2][i % 3];
        records.insert(at, format!("r{i}:%09\t\n\r%{}", "x".repeat(200)));
        p.status.allocated_ips = Some(records.concat());
        let key = Key::pool("p");
        let current = block_on_ready(store.get(&key)).unwrap().unwrap();
        block_on_ready(store.update(Object::IpPool(p.clone()), &current.revision)).unwrap();
        let fresh = LocalStore::open(store.dir()).unwrap();
        let Object::IpPool(got) = block_on_ready(fresh.get(&key)).unwrap().unwrap().object else {
            panic!("not a pool")
        };
        assert_eq!(
            got.status.allocated_ips, p.status.allocated_ips,
            "after {i}"
        );
    }
    let journal = content(&store.dir().join("store.journal")).len();
    let snapshot = std::fs::metadata(store.dir().join("store.json"))
        .unwrap()
        .len();
    // 40 updates of a field of up to 9 KB: patches, not copies.
    assert!(
        journal < 40 * 1024,
        "journal {journal} bytes, snapshot {snapshot}"
    );
}

#[test]
fn a_journal_larger_than_the_snapshot_is_folded_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("s")).unwrap();
    let mut p = pool("p", "subnet: 10.0.0.0/24");
    block_on_ready(store.create(Object::IpPool(p.clone()))).unwrap();
    block_on_ready(store.create(Object::IpPool(pool("q", "subnet: 10.1.0.0/24")))).unwrap();
    let key = Key::pool("p");
    let mut folded = false;
    for i in 0..12 {
        // Whole new contents (full records), then a small change (a patch).
        let big = format!("{i}").repeat(300_000);
        for value in [big.clone(), format!("{big}+{i}")] {
            p.status.allocated_ips = Some(value);
            let current = block_on_ready(store.get(&key)).unwrap().unwrap();
            block_on_ready(store.update(Object::IpPool(p.clone()), &current.revision)).unwrap();
        }
        let journal = content(&store.dir().join("store.journal")).len();
        folded |= journal < 300_000;
        let fresh = LocalStore::open(store.dir()).unwrap();
        let Object::IpPool(got) = block_on_ready(fresh.get(&key)).unwrap().unwrap().object else {
            panic!("not a pool")
        };
        assert_eq!(
            got.status.allocated_ips, p.status.allocated_ips,
            "after {i}"
        );
        assert_eq!(block_on_ready(fresh.list("SpiderIPPool")).unwrap().len(), 2);
    }
    assert!(folded, "the journal was never folded into the snapshot");
}

#[test]
fn a_process_holding_the_journal_sees_another_fold_it_and_write_on() {
    // A store keeps the journal it read open and writes through it; another process folding
    // the journal into a new snapshot (the journal emptied in place) and writing after that
    // must be seen, and nothing of it overwritten by the first store's next record.
    let dir = tempfile::tempdir().unwrap();
    let a = LocalStore::open(dir.path().join("s")).unwrap();
    let b = LocalStore::open(dir.path().join("s")).unwrap();
    block_on_ready(a.create(Object::IpPool(pool("p", "subnet: 10.0.0.0/24")))).unwrap();
    block_on_ready(a.create(Object::IpPool(pool("q", "subnet: 10.1.0.0/24")))).unwrap();
    let key = Key::pool("p");
    let journal = dir.path().join("s/store.journal");
    let mut p = pool("p", "subnet: 10.0.0.0/24");
    let mut folded = false;
    for i in 0..6 {
        p.status.allocated_ips = Some(format!("{i}").repeat(200_000));
        let current = block_on_ready(b.get(&key)).unwrap().unwrap();
        block_on_ready(b.update(Object::IpPool(p.clone()), &current.revision)).unwrap();
        folded |= content(&journal).len() < 200_000;
        if folded {
            break;
        }
    }
    assert!(folded, "the journal was never folded");
    // One record after the fold, then the first store reads and writes.
    block_on_ready(b.create(Object::IpPool(pool("r", "subnet: 10.2.0.0/24")))).unwrap();
    let Object::IpPool(seen) = block_on_ready(a.get(&key)).unwrap().unwrap().object else {
        panic!("not a pool")
    };
    assert_eq!(seen.status.allocated_ips, p.status.allocated_ips);
    assert!(block_on_ready(a.get(&Key::pool("r"))).unwrap().is_some());
    let q = block_on_ready(a.get(&Key::pool("q"))).unwrap().unwrap();
    block_on_ready(a.delete(&Key::pool("q"), &q.revision)).unwrap();
    for reader in [&b, &LocalStore::open(dir.path().join("s")).unwrap()] {
        let names: Vec<String> = block_on_ready(reader.list("SpiderIPPool"))
            .unwrap()
            .into_iter()
            .map(|s| s.object.name().to_string())
            .collect();
        assert_eq!(names, ["p", "r"]);
    }
}

#[test]
fn what_a_process_reads_back_after_writing_is_what_any_process_decodes() {
    // The writer keeps the objects of its last commit for its next read instead of decoding
    // the stored text again: that must be exactly what another process decodes.
    let dir = tempfile::tempdir().unwrap();
    let a = LocalStore::open(dir.path().join("s")).unwrap();
    // The first commit writes a snapshot; the ones after it are journaled (and kept).
    block_on_ready(a.create(Object::IpPool(pool("first", "subnet: 10.9.0.0/24")))).unwrap();
    let mut plain = pool("plain", "subnet: 10.0.0.0/24");
    plain.status.allocated_ips =
        Some(r#"{"10.0.0.5":{"pod":"ns/p","podUid":"u","interface":"eth0"}}"#.into());
    plain.status.allocated_ip_count = Some(1);
    let mut escaped = pool("escaped", "subnet: 10.1.0.0/24");
    escaped.status.allocated_ips = Some("100%\ttab\r\nline".into());
    let foreign = spiderpool_core::model::parse_documents(
        "test",
        "apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: t}\nstatus: {allocatedIPs: \"x%y\", n: 1}\n",
    )
    .unwrap()
    .remove(0)
    .object;
    let singles = [
        Object::IpPool(plain),
        Object::IpPool(escaped),
        Object::IpPool(pool("empty", "subnet: 10.2.0.0/24")),
        foreign,
    ];
    for object in singles {
        let key = Key::of(&object);
        block_on_ready(a.create(object)).unwrap();
        let kept = block_on_ready(a.get(&key)).unwrap().unwrap();
        let decoded = block_on_ready(LocalStore::open(dir.path().join("s")).unwrap().get(&key))
            .unwrap()
            .unwrap();
        assert_eq!(kept, decoded, "{key}");
        assert_eq!(
            block_on_ready(a.get(&key)).unwrap().unwrap(),
            decoded,
            "{key}"
        );
    }
    // Two objects of one commit, read back as a list.
    let mut q = pool("q", "subnet: 10.3.0.0/24");
    q.status.allocated_ips = Some("{}".into());
    block_on_ready(a.commit(vec![
        Write::Create(Object::IpPool(q)),
        Write::Create(Object::IpPool(pool("r", "subnet: 10.4.0.0/24"))),
    ]))
    .unwrap();
    let kept = block_on_ready(a.list("SpiderIPPool")).unwrap();
    let decoded = block_on_ready(
        LocalStore::open(dir.path().join("s"))
            .unwrap()
            .list("SpiderIPPool"),
    )
    .unwrap();
    assert_eq!(kept, decoded);
    assert_eq!(kept.len(), 6);
}

/// A journal's records: the file without the zeros kept after them for the next.
fn content(journal: &std::path::Path) -> Vec<u8> {
    let mut bytes = std::fs::read(journal).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    bytes.truncate(end);
    bytes
}

#[test]
fn records_are_written_over_zeros_kept_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("s")).unwrap();
    let other = LocalStore::open(store.dir()).unwrap();
    // The first write is a snapshot; the next ones go to the journal.
    block_on_ready(store.create(Object::IpPool(pool("p0", "subnet: 10.0.0.0/24")))).unwrap();
    let journal = store.dir().join("store.journal");
    let mut sizes = Vec::new();
    for i in 1..6 {
        let (w, r) = if i % 2 == 0 {
            (&store, &other)
        } else {
            (&other, &store)
        };
        let name = format!("p{i}");
        let before = std::fs::metadata(&journal)
            .ok()
            .map(|m| m.modified().unwrap());
        block_on_ready(w.create(Object::IpPool(pool(&name, "subnet: 10.0.0.0/24")))).unwrap();
        if let Some(t) = before {
            // As if written within the same tick of the (coarse) file clock.
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&journal)
                .unwrap();
            f.set_modified(t).unwrap();
        }
        // The other store sees it, though the file's size and time did not change.
        assert!(
            block_on_ready(r.get(&Key::pool(&name))).unwrap().is_some(),
            "{name}"
        );
        sizes.push(std::fs::metadata(&journal).unwrap().len());
        assert!(
            std::fs::read(&journal).unwrap().ends_with(&[0; 1024]),
            "no room kept after record {i}"
        );
    }
    assert!(
        sizes.windows(2).all(|w| w[0] == w[1]),
        "records landed in the room kept for them: {sizes:?}"
    );
    assert!(content(&journal).len() < sizes[0] as usize);
    let fresh = LocalStore::open(store.dir()).unwrap();
    assert_eq!(block_on_ready(fresh.list("SpiderIPPool")).unwrap().len(), 6);
}

#[test]
fn a_record_whose_start_never_reached_the_disk_is_torn_and_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("s")).unwrap();
    for name in ["p1", "p2"] {
        block_on_ready(store.create(Object::IpPool(pool(name, "subnet: 10.0.0.0/24")))).unwrap();
    }
    let journal = store.dir().join("store.journal");
    let good = content(&journal);
    // A crash wrote a record's second block but not its first: zeros, then its end.
    let mut file = good.clone();
    file.extend_from_slice(&[0; 4096]);
    file.extend_from_slice(b"tail of a record\t1\n");
    file.extend_from_slice(&[0; 512]);
    std::fs::write(&journal, &file).unwrap();
    let after = LocalStore::open(store.dir()).unwrap();
    assert_eq!(block_on_ready(after.list("SpiderIPPool")).unwrap().len(), 2);
    block_on_ready(after.create(Object::IpPool(pool("p3", "subnet: 10.0.0.0/24")))).unwrap();
    let now = content(&journal);
    assert!(now.starts_with(&good), "the valid records were kept");
    assert!(
        !now.windows(4).any(|w| w == b"tail"),
        "the torn bytes were not cut off"
    );
    let fresh = LocalStore::open(store.dir()).unwrap();
    assert_eq!(block_on_ready(fresh.list("SpiderIPPool")).unwrap().len(), 3);
}
