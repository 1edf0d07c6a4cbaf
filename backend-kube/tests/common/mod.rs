//! The mock Kubernetes API server of `spiderpool_testkit::kube_api`, and a store on it.
#![allow(dead_code, unused_imports)]

pub use spiderpool_testkit::kube_api::*;

/// A store on a fresh mock server.
pub fn store() -> backend_kube::KubeStore {
    backend_kube::KubeStore::new(client().0)
}
