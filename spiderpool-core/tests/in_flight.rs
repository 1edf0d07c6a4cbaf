//! The driver hands the planner what other commits of the process are adding
//! (`Store::in_flight`), and a new allocation passes over those addresses.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

use async_trait::async_trait;
use backend_memory::MemoryStore;
use spiderpool_core::ipam::Ipam;
use spiderpool_core::model::{Object, SpiderIPPool};
use spiderpool_core::store::{Change, Key, Revision, Store, Stored, Write};
use spiderpool_core::Error;
use spiderpool_testkit::fixtures::{add, block_on_ready, put_pool};

/// A memory store whose process has commits adding `adding` to pool `p` on their way.
struct Busy {
    inner: MemoryStore,
    adding: Vec<IpAddr>,
    /// The revision of `p` the driver said it read, and what it said of a pool it did not.
    seen: Mutex<Vec<(Option<Revision>, Option<Revision>)>>,
}

#[async_trait]
impl Store for Busy {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, Error> {
        self.inner.get(key).await
    }
    async fn list(&self, kind: &str) -> Result<Vec<Stored>, Error> {
        self.inner.list(kind).await
    }
    async fn create(&self, object: Object) -> Result<Revision, Error> {
        self.inner.create(object).await
    }
    async fn update(&self, object: Object, expected: &Revision) -> Result<Revision, Error> {
        self.inner.update(object, expected).await
    }
    async fn delete(&self, key: &Key, expected: &Revision) -> Result<(), Error> {
        self.inner.delete(key, expected).await
    }
    fn is_atomic(&self) -> bool {
        self.inner.is_atomic()
    }
    async fn commit(&self, writes: Vec<Write>) -> Result<(), Error> {
        self.inner.commit(writes).await
    }
    async fn changes(&self, kind: &str, since: Option<&Revision>) -> Result<Vec<Change>, Error> {
        self.inner.changes(kind, since).await
    }
    fn in_flight(&self, seen: &dyn Fn(&str) -> Option<Revision>) -> BTreeMap<String, Vec<IpAddr>> {
        self.seen
            .lock()
            .unwrap()
            .push((seen("p"), seen("not-a-pool")));
        BTreeMap::from([("p".to_string(), self.adding.clone())])
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn an_allocation_passes_over_what_other_commits_of_the_process_add() {
    let store = Busy {
        inner: MemoryStore::new(),
        adding: vec![ip("10.25.0.1"), ip("10.25.0.2")],
        seen: Mutex::default(),
    };
    block_on_ready(put_pool(
        &store,
        "p",
        "subnet: 10.25.0.0/24\nips: [10.25.0.1-10.25.0.3]\ndefault: true",
    ));
    let read = block_on_ready(store.get(&Key::pool("p"))).unwrap().unwrap();
    let ipam = Ipam::new(&store);
    let got = block_on_ready(ipam.allocate(&add("ns", "a", "ua"))).unwrap();
    assert_eq!(got[0].ipv4.as_deref(), Some("10.25.0.3/24"));
    assert_eq!(
        store.seen.lock().unwrap().clone(),
        [(Some(read.revision), None)],
        "the driver names the revision it read the pool at, and no revision for other names"
    );
    // Only the addresses on their way left: the lowest of them, and the commit will tell.
    let got = block_on_ready(ipam.allocate(&add("ns", "b", "ub"))).unwrap();
    assert_eq!(got[0].ipv4.as_deref(), Some("10.25.0.1/24"));
    let Object::IpPool(p) = block_on_ready(store.get(&Key::pool("p")))
        .unwrap()
        .unwrap()
        .object
    else {
        panic!("not a pool")
    };
    let held: Vec<String> = p.allocations().unwrap().into_keys().collect();
    assert_eq!(held, ["10.25.0.1", "10.25.0.3"], "{}", SpiderIPPool::KIND);
}
