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
#![deny(missing_docs)]

pub mod allocate;
pub mod annotations;
pub mod error;
pub mod ip;
pub mod ipam;
pub mod model;
pub mod request;
pub mod select;
pub mod store;
pub mod table;
pub mod validate;

pub use error::Error;
