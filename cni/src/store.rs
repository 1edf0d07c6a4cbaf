//! Opening the store a netconf or the command line names.

use std::time::Duration;

use backend_etcd::{EtcdConfig, EtcdStore};
use backend_memory::LocalStore;
use spiderpool_core::store::Store;

use crate::Error;

/// A store chosen at run time.
pub type AnyStore = Box<dyn Store>;

/// Opens the store at `location`: `etcd://host:port[,host:port…][/prefix]` for etcd, otherwise
/// a local store directory (`lock_timeout` bounds the wait for another process's lock).
pub async fn open_store(location: &str, lock_timeout: Option<Duration>) -> Result<AnyStore, Error> {
    if location.starts_with("etcd://") {
        let cfg = EtcdConfig::from_url(location).ok_or_else(|| {
            Error::Usage(format!(
                "{location:?} is not etcd://host:port[,host:port…][/prefix]"
            ))
        })?;
        return Ok(Box::new(EtcdStore::connect(&cfg).await?));
    }
    if location == "kube" {
        return Err(Error::Usage(
            "the Kubernetes store comes with the Kubernetes backend".into(),
        ));
    }
    let store = LocalStore::open(location)?;
    Ok(Box::new(match lock_timeout {
        Some(t) => store.with_lock_timeout(t),
        None => store,
    }))
}

/// Whether `location` is a local store directory that does not exist yet (nothing was ever
/// allocated there).
pub fn is_missing_local(location: &str) -> bool {
    !location.starts_with("etcd://")
        && location != "kube"
        && !std::path::Path::new(location).exists()
}
