//! Opening the store a netconf or the command line names.

use std::time::Duration;

use backend_etcd::{EtcdConfig, EtcdStore};
use backend_memory::LocalStore;
use spiderpool_core::store::Store;

use crate::Error;

/// A store chosen at run time.
pub type AnyStore = Box<dyn Store>;

/// Opens the store at `location`: `etcd://host:port[,host:port…][/prefix]` for etcd, `kube`
/// for Spiderpool's CRDs on the Kubernetes API server (see [`open_kube_store`]), otherwise a
/// local store directory (`lock_timeout` bounds the wait for another process's lock).
///
/// The CNI plugin opens its Kubernetes store through
/// [`NetConf::open_store`](crate::netconf::NetConf::open_store), from the netconf's kubeconfig.
pub async fn open_store(location: &str, lock_timeout: Option<Duration>) -> Result<AnyStore, Error> {
    if location.starts_with("etcd://") {
        let cfg = EtcdConfig::from_url(location).ok_or_else(|| {
            Error::Usage(format!(
                "{location:?} is not etcd://host:port[,host:port…][/prefix]"
            ))
        })?;
        return Ok(Box::new(EtcdStore::connect(&cfg).await?));
    }
    if location == crate::netconf::KUBE_STORE {
        return open_kube_store().await;
    }
    let store = LocalStore::open(location)?;
    Ok(Box::new(match lock_timeout {
        Some(t) => store.with_lock_timeout(t),
        None => store,
    }))
}

/// The Kubernetes store for a command-line tool: the client kube-rs infers (`KUBECONFIG`,
/// `~/.kube/config`, or the in-cluster service account), each request bounded by
/// [`DEFAULT_KUBE_TIMEOUT_MS`](crate::netconf::DEFAULT_KUBE_TIMEOUT_MS).
pub async fn open_kube_store() -> Result<AnyStore, Error> {
    let timeout = Duration::from_millis(crate::netconf::DEFAULT_KUBE_TIMEOUT_MS);
    let bad = |reason: String| Error::Kubeconfig {
        path: std::env::var("KUBECONFIG").unwrap_or_else(|_| "(inferred)".into()),
        reason,
    };
    let config = tokio::time::timeout(timeout, kube::Config::infer())
        .await
        .map_err(|_| bad(format!("no credentials within {} ms", timeout.as_millis())))?
        .map_err(|e| bad(e.to_string()))?;
    let client =
        crate::kube::client_from_config(config, timeout).map_err(|e| bad(e.to_string()))?;
    Ok(Box::new(backend_kube::KubeStore::new(client)))
}

/// Whether `location` is a local store directory that does not exist yet (nothing was ever
/// allocated there).
pub fn is_missing_local(location: &str) -> bool {
    !location.starts_with("etcd://")
        && location != crate::netconf::KUBE_STORE
        && !std::path::Path::new(location).exists()
}
