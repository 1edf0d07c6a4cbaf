//! The crate's error type.

use crate::ip::IpFamily;
use crate::validate::FieldError;

/// Everything that can go wrong in `spiderpool-core`.
///
/// Messages are lower-case, name the object, the field and the offending value where there is
/// one, and keep Spiderpool's own wording (`invalid IP range format`, `unformatted subnet`, …)
/// so that users can search for them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An `ipVersion` other than 4 or 6.
    #[error("invalid IP version '{version}'")]
    InvalidIpVersion {
        /// The value given.
        version: i64,
    },
    /// A string that is not an address (of the expected family).
    #[error("invalid IP format{} '{input}'", family_suffix(.family))]
    InvalidIp {
        /// The family required, if any.
        family: Option<IpFamily>,
        /// The string given.
        input: String,
    },
    /// A string that is not an IP range `A` or `A-B` (of the expected family).
    #[error("invalid IP range format{} '{input}'", family_suffix(.family))]
    InvalidIpRange {
        /// The family required, if any.
        family: Option<IpFamily>,
        /// The string given.
        input: String,
    },
    /// A string that is not a CIDR (of the expected family).
    #[error("invalid CIDR format{} '{input}'", family_suffix(.family))]
    InvalidCidr {
        /// The family required, if any.
        family: Option<IpFamily>,
        /// The string given.
        input: String,
    },
    /// A CIDR that is not written as its network address.
    #[error("unformatted subnet {input}, please change it to {canonical}")]
    UnformattedSubnet {
        /// The string given.
        input: String,
        /// How it must be written.
        canonical: String,
    },
    /// A route whose `dst` or `gw` is malformed.
    #[error("invalid route format{} '{input}' ({reason})", family_suffix(.family))]
    InvalidRoute {
        /// The family required, if any.
        family: Option<IpFamily>,
        /// The route as given (`dst via gw`).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A YAML or JSON document that cannot be read.
    #[error("{source_name}: document {document}: {message}")]
    Decode {
        /// Where the text came from (a file name, `<stdin>`, …).
        source_name: String,
        /// 1-based index of the document in a multi-document stream.
        document: usize,
        /// What the parser said, with line and column when known.
        message: String,
    },
    /// A document whose `apiVersion`/`kind` this library does not handle where one is required.
    #[error("{source_name}: document {document}: unsupported object {api_version} {kind}")]
    UnsupportedObject {
        /// Where the text came from.
        source_name: String,
        /// 1-based index of the document.
        document: usize,
        /// Its `apiVersion`.
        api_version: String,
        /// Its `kind`.
        kind: String,
    },
    /// A status field that does not decode (e.g. `status.allocatedIPs` is not a JSON map). It
    /// is never treated as empty: that would hand out addresses that are in use.
    #[error("{kind} \"{name}\": {field} is corrupt: {reason}")]
    CorruptStatus {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The field path.
        field: String,
        /// What the decoder said.
        reason: String,
    },
    /// An object that admission refuses: every field error found, Kubernetes style.
    #[error("{kind} \"{name}\" is invalid: {}", join_causes(.causes))]
    Invalid {
        /// The object's kind (`SpiderIPPool`, …).
        kind: String,
        /// The object's name.
        name: String,
        /// The field errors, in the order the rules ran.
        causes: Vec<FieldError>,
    },
    /// An object of that name exists (admission, or a store's create-if-absent).
    #[error("{kind} \"{name}\" already exists")]
    AlreadyExists {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
    },
    /// Admission refuses the operation as a whole (update of a terminating object, deletion of
    /// a pool that still has allocations).
    #[error("{kind} \"{name}\" is forbidden: {reason}")]
    Forbidden {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// Spiderpool's reason.
        reason: String,
    },
    /// A store has no object under the key.
    #[error("{key} not found")]
    NotFound {
        /// The key (`SpiderIPPool pool-a`, `SpiderEndpoint ns/pod`).
        key: String,
    },
    /// A compare-and-swap failed: the object changed since it was read. Retryable.
    #[error("{key} was modified concurrently (expected revision {expected})")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the write expected.
        expected: String,
    },
    /// The store cannot answer now (lock held too long, connection lost). Retryable.
    #[error("store unavailable, try again later: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The store stayed busy (its lock held by another process) for longer than the caller
    /// agreed to wait. Not retried by the engine: the wait already happened; the caller (a CNI
    /// runtime) tries again later.
    #[error("store {store} busy for more than {waited_ms} ms, try again later")]
    Busy {
        /// The store (its directory).
        store: String,
        /// How long the caller waited.
        waited_ms: u128,
    },
    /// The store's change feed no longer holds the requested revision: list again.
    #[error("change feed expired at revision {revision}")]
    Expired {
        /// The revision asked for.
        revision: String,
    },
    /// The store failed in a way a retry will not fix (an unreadable or corrupt file, …).
    #[error("store {store}: {reason}")]
    Storage {
        /// The store (a directory, an endpoint list).
        store: String,
        /// What went wrong.
        reason: String,
    },
    /// The store does not offer this operation.
    #[error("unsupported: {what}")]
    Unsupported {
        /// The operation.
        what: String,
    },
    /// A pool named for a NIC does not exist.
    #[error("wrong input, IPPool \"{pool}\" named by {named_by} for NIC {nic} does not exist")]
    UnknownPool {
        /// The pool name.
        pool: String,
        /// The NIC.
        nic: String,
        /// Which annotation or setting named it.
        named_by: String,
    },
    /// No source names any pool for the pod.
    #[error("no IPPool available, no pool selection rules of any type are specified for pod {pod} NIC {nic}")]
    NoPoolSelected {
        /// `namespace/name` of the pod.
        pod: String,
        /// The NIC.
        nic: String,
    },
    /// The application's auto-created pool cannot be used.
    #[error("pod {pod}: {reason}")]
    AutoPool {
        /// `namespace/name` of the pod.
        pod: String,
        /// Why.
        reason: String,
    },
    /// No pool could give an address to a NIC and family: each candidate with its reason.
    #[error("{}", crate::allocate::no_ip_message(.pod, .nic, *.family, .candidates))]
    NoIpAvailable {
        /// `namespace/name` of the pod.
        pod: String,
        /// The NIC.
        nic: String,
        /// The family.
        family: IpFamily,
        /// Every pool considered, in order, and why it gave nothing.
        candidates: Vec<(String, crate::select::Rejection)>,
    },
    /// A malformed `ipam.spidernet.io/*` annotation.
    #[error(
        "wrong input, invalid format of {owner} annotation '{key}': {reason} (value {value:?})"
    )]
    Annotation {
        /// `Pod` or `Namespace`.
        owner: String,
        /// The annotation key.
        key: String,
        /// The annotation value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn family_suffix(family: &Option<IpFamily>) -> String {
    match family {
        Some(f) => format!(" in IPv{}", f.version()),
        None => String::new(),
    }
}

fn join_causes(causes: &[FieldError]) -> String {
    match causes {
        [one] => one.to_string(),
        many => {
            let parts: Vec<String> = many.iter().map(ToString::to_string).collect();
            format!("[{}]", parts.join(", "))
        }
    }
}
