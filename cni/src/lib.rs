//! The `spiderpool` CNI IPAM plugin and the `spiderpoolctl` management tool.
//!
//! - [`plugin::run`]: one CNI invocation (ADD, DEL, CHECK, VERSION, STATUS, GC) from its
//!   environment and stdin to its stdout and exit code.
//! - [`ctl`]: `spiderpoolctl apply/get/delete/describe` against a store.
//!
//! The plugin is configured in the netconf's `ipam` section:
//!
//! ```json
//! {"cniVersion": "1.0.0", "name": "net1", "type": "bridge", "bridge": "br0",
//!  "ipam": {"type": "spiderpool", "store": "/var/lib/spiderpool",
//!           "default_ipv4_ippool": ["pool-a"]}}
//! ```
//!
//! ```
//! use spiderpool_cni::netconf::CniEnv;
//! let env = CniEnv { command: "VERSION".into(), ..CniEnv::default() };
//! let reply = spiderpool_cni::plugin::run(&env, br#"{"cniVersion":"1.0.0"}"#, "node-1");
//! assert!(reply.stdout.contains("\"supportedVersions\""));
//! ```
#![deny(missing_docs)]

pub mod ctl;
pub mod emulation;
pub mod error;
pub mod netconf;
pub mod plugin;
pub mod result;
pub mod store;

pub use error::Error;
