//! Opening the store a netconf or the command line names.

use backend_memory::LocalStore;

/// Opens the store at `location`: a directory path for the local store. (`etcd://…` and
/// `kube` are added by their backends.)
pub fn open_store(location: &str) -> Result<LocalStore, backend_memory::Error> {
    LocalStore::open(location)
}
