//! The `spiderpool` CNI IPAM plugin and the `spiderpoolctl` management tool.
//!
//! - [`plugin::run`]: one CNI invocation (ADD, DEL, CHECK, VERSION, STATUS, GC) from its
//!   environment and stdin to its stdout and exit code.
//! - [`ctl`]: `spiderpoolctl apply/get/delete/describe` against a store.
//! - [`agent`]: the node agent (`spiderpoolctl agent`), which runs the plugin's commands with
//!   stores kept open, when the netconf names its socket (`ipam_unix_socket_path`).
//!
//! The plugin is configured in the netconf's `ipam` section:
//!
//! ```json
//! {"cniVersion": "1.0.0", "name": "net1", "type": "bridge", "bridge": "br0",
//!  "ipam": {"type": "spiderpool", "store": "/var/lib/spiderpool",
//!           "default_ipv4_ippool": ["pool-a"]}}
//! ```
//!
//! # Kubernetes mode
//!
//! With `"store": "kube"` the plugin works against the Kubernetes API server, as Spiderpool's
//! agent does, without an agent: pools, subnets, reserved IPs and endpoints are Spiderpool's
//! CRDs (`spiderpool.spidernet.io/v2beta1`, see `backend-kube`), and ADD reads the pod named
//! by `CNI_ARGS` (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_UID`), its namespace, its
//! node and its top controller (a ReplicaSet's Deployment, a Job's CronJob, a StatefulSet, a
//! KubeVirt VM instance, a third-party kind), and the settings in ConfigMap
//! `kube-system/spiderpool-conf`. The pod's annotations select pools as in Spiderpool (the
//! netconf's `args`/`runtimeConfig` annotations are for the other modes). A third-party
//! owner's auto-created pools are created at ADD; a built-in workload's are created by the
//! controller and ADD waits for them (`autopool_wait_retries` × `autopool_wait_interval_ms`).
//! DEL of a pod that is still alive (a sandbox restart) keeps its addresses; a StatefulSet pod
//! whose ordinal is still wanted keeps them too. See [`mod@crate::kube`].
//!
//! ```json
//! {"cniVersion": "1.0.0", "name": "net1", "type": "macvlan", "master": "eth0",
//!  "ipam": {"type": "spiderpool", "store": "kube",
//!           "kubeconfig": "/etc/cni/net.d/spiderpool-rs.kubeconfig",
//!           "kube_timeout_ms": 10000}}
//! ```
//!
//! The kubeconfig is the netconf's `kubeconfig` (default
//! [`netconf::DEFAULT_KUBECONFIG`]), never `KUBECONFIG`: the container runtime decides the
//! plugin's environment. Each API request is bounded by `kube_timeout_ms` (default 10 s): an
//! API server that cannot be reached gives CNI error code 11 (try again later); a missing
//! kubeconfig gives code 4 naming the file.
//!
//! ```
//! use spiderpool_cni::netconf::CniEnv;
//! let env = CniEnv { command: "VERSION".into(), ..CniEnv::default() };
//! let reply = spiderpool_cni::plugin::run(&env, br#"{"cniVersion":"1.0.0"}"#, "node-1");
//! assert!(reply.stdout.contains("\"supportedVersions\""));
//! ```
#![deny(missing_docs)]

pub mod agent;
pub mod ctl;
pub mod emulation;
pub mod error;
pub mod kube;
pub mod netconf;
pub mod plugin;
pub mod result;
pub mod store;

pub use error::Error;
