//! The crate's errors and their CNI error codes, decided in one place.

use serde_json::json;

/// Everything the plugin and `spiderpoolctl` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The netconf's `cniVersion` is not one we speak.
    #[error("unsupported CNI version {version:?}, supported: {supported}")]
    IncompatibleVersion {
        /// The version asked for.
        version: String,
        /// What we support.
        supported: String,
    },
    /// The network configuration on stdin is malformed.
    #[error("invalid network configuration: {reason}")]
    InvalidNetconf {
        /// What is wrong, with the field.
        reason: String,
    },
    /// A `CNI_*` environment variable is missing or malformed.
    #[error("invalid environment variable {var}: {reason}")]
    InvalidEnv {
        /// The variable.
        var: String,
        /// What is wrong.
        reason: String,
    },
    /// CHECK found no allocation matching the container.
    #[error("check failed: {reason}")]
    CheckFailed {
        /// What does not match.
        reason: String,
    },
    /// STATUS: the plugin cannot serve ADDs now.
    #[error("not available: {reason}")]
    NotAvailable {
        /// Why.
        reason: String,
    },
    /// A decision or store error of the engine.
    #[error(transparent)]
    Ipam(#[from] spiderpool_core::Error),
    /// The local store could not be opened.
    #[error(transparent)]
    Store(#[from] backend_memory::Error),
    /// The etcd store could not be reached or holds bad data.
    #[error(transparent)]
    Etcd(#[from] backend_etcd::Error),
    /// A file given on the command line could not be read.
    #[error("{path}: {reason}")]
    Input {
        /// The file (`-` for stdin).
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A file given on the command line is larger than `spiderpoolctl` reads.
    #[error("{path}: larger than the {limit} bytes accepted; split it into several files")]
    InputTooLarge {
        /// The file (`-` for stdin).
        path: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The kubeconfig the netconf names (`ipam.kubeconfig`) is missing or unusable.
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What is wrong (`not found`, a parse error, …).
        reason: String,
    },
    /// The Kubernetes API server did not answer in time, could not be reached or is
    /// overloaded: the runtime should try again later.
    #[error("kubernetes API server unavailable, try again later: {what}: {reason}")]
    KubeUnavailable {
        /// The request (`reading Pod ns/name`).
        what: String,
        /// Why.
        reason: String,
    },
    /// The Kubernetes API server refused a request (forbidden, invalid), or an object it
    /// served does not allow the operation (the pod is gone or finished).
    #[error("{what}: {reason}")]
    Kube {
        /// The request or object (`Pod ns/name`).
        what: String,
        /// Why.
        reason: String,
    },
    /// The agent's socket could not be set up (`spiderpoolctl agent`).
    #[error("agent socket {path}: {source}")]
    AgentSocket {
        /// The socket's path.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A command-line request that cannot be carried out (unknown kind, object not found, …).
    #[error("{0}")]
    Usage(String),
    /// A CNI command did not finish within `ipam.command_timeout_ms` (a store that accepts
    /// connections but never answers, retries that keep failing): the runtime should try again
    /// later.
    #[error(
        "{command} did not finish within {millis} ms (the store is not answering), try again later"
    )]
    DeadlineExceeded {
        /// The CNI command.
        command: String,
        /// The bound, in milliseconds.
        millis: u128,
    },
}

/// CNI error codes (spec 1.1: 1–99 reserved; ours from 100).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Invalid network config.
    pub const INVALID_NETCONF: u32 = 4;
    /// Invalid environment variables.
    pub const INVALID_ENV: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// The plugin is not available (STATUS).
    pub const NOT_AVAILABLE: u32 = 50;
    /// No address could be allocated (every candidate pool explained in `details`).
    pub const NO_IP_AVAILABLE: u32 = 100;
    /// Wrong input in pod annotations or pool names.
    pub const WRONG_INPUT: u32 = 101;
    /// The store failed (corrupt or unreadable).
    pub const STORE_FAILED: u32 = 102;
    /// CHECK found a mismatch.
    pub const CHECK_FAILED: u32 = 103;
    /// Anything else.
    pub const INTERNAL: u32 = 199;
}

impl Error {
    /// The CNI error code.
    pub fn code(&self) -> u32 {
        use spiderpool_core::Error as E;
        match self {
            Error::IncompatibleVersion { .. } => code::INCOMPATIBLE_VERSION,
            Error::InvalidNetconf { .. } | Error::Kubeconfig { .. } => code::INVALID_NETCONF,
            Error::KubeUnavailable { .. } | Error::DeadlineExceeded { .. } => code::TRY_AGAIN,
            Error::Kube { .. } => code::INTERNAL,
            Error::InvalidEnv { .. } => code::INVALID_ENV,
            Error::CheckFailed { .. } => code::CHECK_FAILED,
            Error::NotAvailable { .. } => code::NOT_AVAILABLE,
            Error::Store(backend_memory::Error::LockTimeout { .. }) => code::TRY_AGAIN,
            Error::Store(_) => code::STORE_FAILED,
            Error::Etcd(backend_etcd::Error::Corrupt { .. } | backend_etcd::Error::Tls { .. }) => {
                code::STORE_FAILED
            }
            Error::Etcd(_) => code::TRY_AGAIN,
            Error::Ipam(e) => match e {
                E::NoIpAvailable { .. } | E::NoPoolSelected { .. } => code::NO_IP_AVAILABLE,
                E::Annotation { .. } | E::UnknownPool { .. } => code::WRONG_INPUT,
                E::Unavailable { .. }
                | E::Busy { .. }
                | E::Conflict { .. }
                | E::AutoPool { .. } => code::TRY_AGAIN,
                E::Storage { .. } | E::CorruptStatus { .. } => code::STORE_FAILED,
                _ => code::INTERNAL,
            },
            Error::Input { .. }
            | Error::InputTooLarge { .. }
            | Error::Usage(_)
            | Error::AgentSocket { .. } => code::INTERNAL,
        }
    }

    /// The CNI error object: `{"cniVersion","code","msg","details"}`. `msg` is the cause in
    /// one line; `details` the full explanation (for allocation failures, every pool and why).
    pub fn to_reply(&self, cni_version: &str) -> serde_json::Value {
        let full = self.to_string();
        let msg = match self {
            Error::Ipam(spiderpool_core::Error::NoIpAvailable { .. }) => full
                .split(": failed to allocate")
                .next()
                .unwrap_or(&full)
                .to_string(),
            _ => full.clone(),
        };
        json!({
            "cniVersion": cni_version,
            "code": self.code(),
            "msg": msg,
            "details": full,
        })
    }
}
