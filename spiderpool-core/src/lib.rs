//! Spiderpool's IPAM model as a pure library: the engine behind spiderpool-rs.
//!
//! Spiderpool (Kubernetes IPAM for underlay and multi-NIC networks) keeps its state in four
//! objects: SpiderSubnet, SpiderIPPool, SpiderReservedIP and SpiderEndpoint. This crate reads
//! and writes them wire-compatibly, computes with their addresses, and decides what
//! Spiderpool's admission webhooks would decide. It does no I/O: no files, network, clock,
//! threads or randomness; storage backends and the CNI plugin live in other crates.
//!
//! - [`ip`]: range strings (`10.6.0.1-10.6.0.9`), CIDRs, and [`ip::IpSet`], exact address sets
//!   on `roaring` bitmaps for any prefix length.
//! - [`model`]: the objects, YAML/JSON documents, the legacy `v1` form.
//! - [`validate`]: the webhooks' defaulting and validation.
//! - [`annotations`]: typed `ipam.spidernet.io/*` pod and namespace annotations.
//! - [`table`]: `kubectl get`-style tables.
//! - [`select`], [`allocate`]: the allocation path, pure: candidate pools, then a [`allocate::Plan`]
//!   of writes for a request ([`request`]) and a [`allocate::Snapshot`] of the objects.
//! - [`store`]: the storage trait; [`ipam`]: the driver that reads, plans, writes with
//!   compare-and-swap and retries.
//!
//! # Example: a pool and its free addresses
//!
//! ```
//! use spiderpool_core::ip::IpFamily;
//! use spiderpool_core::model::{parse_documents, AddressSpec, Object, SpiderReservedIP};
//! use spiderpool_core::validate::{mutate_ippool, validate_ippool_create, AdmissionConfig, Cluster};
//!
//! // The pool and reserved IPs of seed 003 (Spiderpool's reserved-IP guide).
//! let yaml = r#"
//! apiVersion: spiderpool.spidernet.io/v2beta1
//! kind: SpiderIPPool
//! metadata:
//!   name: test-ippool
//! spec:
//!   subnet: 10.6.0.0/16
//!   ips:
//!   - 10.6.168.131-10.6.168.133
//! ---
//! apiVersion: spiderpool.spidernet.io/v2beta1
//! kind: SpiderReservedIP
//! metadata:
//!   name: test-reservedip
//! spec:
//!   ips:
//!   - 10.6.168.131-10.6.168.132
//! "#;
//! let docs = parse_documents("example.yaml", yaml)?;
//! let (mut pool, reserved) = match (&docs[0].object, &docs[1].object) {
//!     (Object::IpPool(p), Object::ReservedIp(r)) => (p.clone(), vec![r.clone()]),
//!     _ => unreachable!("the document holds a pool and a reserved IP"),
//! };
//!
//! // Admission, as Spiderpool's webhook does it: defaults, then validation.
//! let cfg = AdmissionConfig::default();
//! mutate_ippool(&mut pool, &[], &cfg);
//! validate_ippool_create(&pool, &Cluster::default(), &cfg)?;
//! assert_eq!(pool.spec.ip_version, Some(4));
//!
//! // Nothing is allocated yet; reserved addresses are never handed out.
//! let reserved = SpiderReservedIP::reserved_set(&reserved, IpFamily::V4);
//! let free = pool.free_ips(&reserved)?;
//! println!("free in {}: {:?}", pool.metadata.name, free.to_range_strings());
//! assert_eq!(free.to_range_strings(), vec!["10.6.168.133"]);
//! assert_eq!(pool.spec.total_ips()?.len().to_u128(), Some(3));
//! # Ok::<(), spiderpool_core::Error>(())
//! ```
//!
//! # Example: allocating through a store
//!
//! A pool, a stateless pod, a StatefulSet pod that restarts with a new uid and keeps its
//! address, and releases. `backend_memory::MemoryStore` is the in-memory store; any
//! [`store::Store`] works the same.
//!
//! ```
//! use backend_memory::MemoryStore;
//! use spiderpool_core::allocate::Outcome;
//! use spiderpool_core::ipam::Ipam;
//! use spiderpool_core::model::{IPPoolSpec, Object, SpiderIPPool};
//! use spiderpool_core::request::{AllocateRequest, Owner, PodRef, ReleaseRequest};
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
//!
//! // A stateless pod gets the lowest free address.
//! let web = AllocateRequest {
//!     pod: PodRef::new("default", "web-5d8f", "uid-1"),
//!     ifname: "eth0".into(),
//!     ..AllocateRequest::default()
//! };
//! assert_eq!(ipam.allocate(&web).await?[0].ipv4.as_deref(), Some("10.6.0.10/24"));
//!
//! // A StatefulSet pod keeps its address when it restarts with a new uid.
//! let owner = Owner {
//!     api_version: "apps/v1".into(),
//!     kind: "StatefulSet".into(),
//!     name: "db".into(),
//!     exists: true,
//!     replicas: Some(3),
//!     ..Owner::default()
//! };
//! let mut db = AllocateRequest {
//!     pod: PodRef::new("default", "db-0", "uid-2"),
//!     ifname: "eth0".into(),
//!     owner: Some(owner.clone()),
//!     ..AllocateRequest::default()
//! };
//! assert_eq!(ipam.allocate(&db).await?[0].ipv4.as_deref(), Some("10.6.0.11/24"));
//! let mut gone = ReleaseRequest { pod: db.pod.clone(), owner: Some(owner.clone()), ..Default::default() };
//! assert_eq!(ipam.release(&gone).await?, Outcome::Unchanged); // still one of 3 replicas
//! db.pod.uid = "uid-3".into(); // the restarted pod
//! assert_eq!(ipam.allocate(&db).await?[0].ipv4.as_deref(), Some("10.6.0.11/24"));
//!
//! // Releases: the stateless pod is deleted; the StatefulSet is scaled to zero.
//! let web_gone = ReleaseRequest { pod: web.pod.clone(), ..Default::default() };
//! assert!(matches!(ipam.release(&web_gone).await?, Outcome::Released(_)));
//! gone.pod.uid = "uid-3".into();
//! gone.owner = Some(Owner { replicas: Some(0), ..owner });
//! assert_eq!(
//!     ipam.release(&gone).await?,
//!     Outcome::Released(vec![("10.6.0.11".into(), "pool".into())])
//! );
//! # Ok(())
//! # }
//! # // The memory store never waits, so polling once per step is enough: no runtime needed.
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let mut f = std::pin::pin!(f);
//! #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
//! #     loop {
//! #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
//! #     }
//! # }
//! # block_on(demo()).unwrap();
//! ```
#![deny(missing_docs)]

pub mod allocate;
pub mod annotations;
pub mod autopool;
pub mod error;
pub mod gc;
pub mod ip;
pub mod ipam;
pub mod model;
pub mod request;
pub mod select;
pub mod settings;
pub mod store;
pub mod table;
pub mod validate;
pub mod workload;

pub use error::Error;
