//! A store on the etcd server shared by this test process, with a prefix of its own.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use backend_etcd::{EtcdConfig, EtcdStore};
use spiderpool_testkit::etcd::shared;

static PREFIXES: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty store.
pub async fn store() -> EtcdStore {
    connect(&shared().endpoints()).await
}

/// A fresh, empty store on `endpoints`.
pub async fn connect(endpoints: &[String]) -> EtcdStore {
    let n = PREFIXES.fetch_add(1, Ordering::SeqCst);
    let mut cfg = EtcdConfig::new(&[]);
    cfg.endpoints = endpoints.to_vec();
    cfg.prefix = format!("/t{}-{n}/", std::process::id());
    EtcdStore::connect(&cfg).await.unwrap()
}
