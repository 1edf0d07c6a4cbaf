//! Watches through kube-rs: events after a revision, and 410 Gone as `Expired` (relist).
#![allow(clippy::unwrap_used)]

mod common;

use backend_kube::KubeStore;
use spiderpool_core::model::{Object, SpiderIPPool};
use spiderpool_core::store::{Change, Key, Store};
use spiderpool_core::Error;
use spiderpool_testkit::fixtures::pool;

#[tokio::test]
async fn watch_reports_changes_and_expiry_forces_a_relist() {
    let (client, state) = common::client();
    let store = KubeStore::new(client);
    let r1 = store
        .create(Object::IpPool(pool("a", "subnet: 10.0.0.0/24")))
        .await
        .unwrap();
    store
        .create(Object::IpPool(pool("b", "subnet: 10.0.1.0/24")))
        .await
        .unwrap();
    let changes = store.changes(SpiderIPPool::KIND, Some(&r1)).await.unwrap();
    assert!(
        matches!(changes.as_slice(), [Change::Put(s)] if Key::of(&s.object).name == "b"),
        "{changes:?}"
    );
    state.lock().unwrap().compact();
    let err = store
        .changes(SpiderIPPool::KIND, Some(&r1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Expired { .. }), "{err:?}");
    let relist = store.changes(SpiderIPPool::KIND, None).await.unwrap();
    assert_eq!(relist.len(), 2);
    // Writes are counted: an allocation-free update of an unchanged object is one request.
    let before = state
        .lock()
        .unwrap()
        .requests
        .get("PUT")
        .copied()
        .unwrap_or(0);
    let got = store
        .get(&spiderpool_core::store::Key::pool("a"))
        .await
        .unwrap()
        .unwrap();
    store.update(got.object, &got.revision).await.unwrap();
    assert_eq!(
        state
            .lock()
            .unwrap()
            .requests
            .get("PUT")
            .copied()
            .unwrap_or(0),
        before + 1
    );
}
