//! An in-memory [`Store`](spiderpool_core::store::Store) for spiderpool-rs: the reference
//! store for tests, and a store for programs that embed the engine and keep state themselves.
//!
//! Every operation holds one lock, so each is atomic and linearizable, and
//! [`Store::commit`](spiderpool_core::store::Store::commit) applies a whole plan or nothing
//! (unless built with [`MemoryStore::non_atomic`], which behaves like the Kubernetes API: write
//! by write). Faults can be injected to test callers:
//! conflicts on the next updates, or an unavailable store.
//!
//! ```
//! use backend_memory::MemoryStore;
//! use spiderpool_core::ipam::Ipam;
//! use spiderpool_core::model::{IPPoolSpec, Object, SpiderIPPool};
//! use spiderpool_core::request::{AllocateRequest, PodRef};
//! use spiderpool_core::store::Store;
//!
//! # async fn demo() -> Result<(), spiderpool_core::Error> {
//! let store = MemoryStore::new();
//! let spec = IPPoolSpec {
//!     subnet: "10.6.0.0/24".into(),
//!     ips: vec!["10.6.0.10-10.6.0.20".into()],
//!     default: Some(true),
//!     ..IPPoolSpec::default()
//! };
//! store.create(Object::IpPool(SpiderIPPool::new("pool", spec))).await?;
//! let ipam = Ipam::new(store);
//! let req = AllocateRequest {
//!     pod: PodRef::new("default", "web-1", "uid-1"),
//!     ifname: "eth0".into(),
//!     ..AllocateRequest::default()
//! };
//! let ips = ipam.allocate(&req).await?;
//! assert_eq!(ips[0].ipv4.as_deref(), Some("10.6.0.10/24"));
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```
#![deny(missing_docs)]

mod error;
mod local;
mod memory;
mod objects;

pub use error::Error;
pub use local::LocalStore;
#[cfg(feature = "failpoints")]
pub use local::{FAILPOINT_ENV, FAILPOINT_STEPS};
pub use memory::{Fault, MemoryStore};
