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
