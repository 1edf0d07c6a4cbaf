//! Fuzz target bodies of spiderpool-rs, one public function per target.
//!
//! Each function takes the raw input bytes and panics only on a bug: a parser that panics, a
//! property that does not hold (a round trip that changes the value, a set operation that
//! disagrees with a naive model, a store invariant broken). The libFuzzer binaries in
//! `fuzz_targets/` call them under `cargo fuzz`; `tests/replay.rs` calls them on every file of
//! `corpus/<target>/` and `artifacts/<target>/` on the stable toolchain.
//!
//! Structured targets decode their input with [`arbitrary::Unstructured`], so any byte string
//! is a valid input and the replay needs nothing but the bytes.
#![allow(clippy::unwrap_used)]

mod admission;
mod allocated_ips;
mod annotations;
mod cni;
mod etcd_value;
mod ipset;
mod local_store;
mod objects;
mod range;
mod state_machine;
mod util;

pub use allocated_ips::allocated_ips;
pub use annotations::annotations;
pub use cni::{cni_args, netconf};
pub use etcd_value::etcd_value;
pub use ipset::ipset;
pub use local_store::local_store;
pub use objects::{object_json, object_yaml};
pub use range::range;
pub use state_machine::state_machine;

/// A target body: takes the input bytes, panics on a bug.
pub type Body = fn(&[u8]);

/// Every target: its name (the folder under `corpus/` and `artifacts/`) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("range", range),
    ("ipset", ipset),
    ("object_json", object_json),
    ("object_yaml", object_yaml),
    ("annotations", annotations),
    ("netconf", netconf),
    ("cni_args", cni_args),
    ("local_store", local_store),
    ("etcd_value", etcd_value),
    ("state_machine", state_machine),
    ("allocated_ips", allocated_ips),
];
