//! The bad-input catalogue (issue 10): tables of malformed inputs on every surface, each with
//! the error kind it must give and a fragment of its message. `docs/errors.md` lists the same
//! cases; keep the two in step.
//!
//! Every case asserts that nothing panics (library calls run under `catch_unwind`; processes
//! must not die of a signal nor print "panicked"), the error kind (the enum variant, named as
//! [`cni_kind`], [`core_kind`] and [`mem_kind`] name them), the message fragment, and, where a
//! store is involved, that the store's files are byte-for-byte what they were before.
//!
//! Surfaces, one module and one table each:
//! - [`objects`]: YAML/JSON documents of the four kinds through `spiderpoolctl apply`'s
//!   library path (parse, defaulting, admission) against a seeded local store;
//! - [`annotations`]: `ipam.spidernet.io/*` pod and namespace annotations, and the auto-pool
//!   planner's reading of them;
//! - [`plugin`]: the CNI plugin binary: netconf on stdin, `CNI_*` environment;
//! - [`cli`]: the `spiderpoolctl` binary's arguments and input files;
//! - [`store`]: damaged local store directories, through the library and the plugin binary.
#![allow(clippy::unwrap_used)]

mod annotations;
mod cli;
mod objects;
mod plugin;
mod store;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One bad input: a short id, the input, the error kind expected and a fragment of the message.
#[derive(Debug, Clone)]
pub struct Case<I> {
    /// Short id, unique in the catalogue (`obj-bad-cidr`).
    pub id: &'static str,
    /// The input.
    pub input: I,
    /// The error kind: the enum variant (`Ipam::Invalid`, `InvalidNetconf`, …).
    pub kind: &'static str,
    /// A fragment the message must contain, exactly.
    pub fragment: &'static str,
}

/// A case.
pub fn case<I>(id: &'static str, input: I, kind: &'static str, fragment: &'static str) -> Case<I> {
    Case {
        id,
        input,
        kind,
        fragment,
    }
}

/// The variant of a core error.
pub fn core_kind(e: &spiderpool_core::Error) -> &'static str {
    use spiderpool_core::Error as E;
    match e {
        E::InvalidIpVersion { .. } => "InvalidIpVersion",
        E::InvalidIp { .. } => "InvalidIp",
        E::InvalidIpRange { .. } => "InvalidIpRange",
        E::InvalidCidr { .. } => "InvalidCidr",
        E::UnformattedSubnet { .. } => "UnformattedSubnet",
        E::InvalidRoute { .. } => "InvalidRoute",
        E::Decode { .. } => "Decode",
        E::UnsupportedObject { .. } => "UnsupportedObject",
        E::CorruptStatus { .. } => "CorruptStatus",
        E::Invalid { .. } => "Invalid",
        E::AlreadyExists { .. } => "AlreadyExists",
        E::Forbidden { .. } => "Forbidden",
        E::NotFound { .. } => "NotFound",
        E::Conflict { .. } => "Conflict",
        E::Unavailable { .. } => "Unavailable",
        E::Busy { .. } => "Busy",
        E::Expired { .. } => "Expired",
        E::Storage { .. } => "Storage",
        E::Unsupported { .. } => "Unsupported",
        E::UnknownPool { .. } => "UnknownPool",
        E::NoPoolSelected { .. } => "NoPoolSelected",
        E::AutoPool { .. } => "AutoPool",
        E::NoIpAvailable { .. } => "NoIpAvailable",
        E::Annotation { .. } => "Annotation",
    }
}

/// The variant of a local store error.
pub fn mem_kind(e: &backend_memory::Error) -> &'static str {
    use backend_memory::Error as E;
    match e {
        E::Io { .. } => "Io",
        E::Corrupt { .. } => "Corrupt",
        E::UnknownFormat { .. } => "UnknownFormat",
        E::LockTimeout { .. } => "LockTimeout",
        E::InsecureDirectory { .. } => "InsecureDirectory",
        E::NotADirectory { .. } => "NotADirectory",
    }
}

/// The variant of a plugin/`spiderpoolctl` error; wrapped errors as `Ipam::Invalid`,
/// `Store::Corrupt`.
pub fn cni_kind(e: &spiderpool_cni::Error) -> String {
    use spiderpool_cni::Error as E;
    match e {
        E::IncompatibleVersion { .. } => "IncompatibleVersion".into(),
        E::InvalidNetconf { .. } => "InvalidNetconf".into(),
        E::InvalidEnv { .. } => "InvalidEnv".into(),
        E::CheckFailed { .. } => "CheckFailed".into(),
        E::NotAvailable { .. } => "NotAvailable".into(),
        E::Ipam(e) => format!("Ipam::{}", core_kind(e)),
        E::Store(e) => format!("Store::{}", mem_kind(e)),
        E::Etcd(_) => "Etcd".into(),
        E::Input { .. } => "Input".into(),
        E::InputTooLarge { .. } => "InputTooLarge".into(),
        E::Kubeconfig { .. } => "Kubeconfig".into(),
        E::KubeUnavailable { .. } => "KubeUnavailable".into(),
        E::Kube { .. } => "Kube".into(),
        E::Usage(_) => "Usage".into(),
        E::AgentSocket { .. } => "AgentSocket".into(),
        E::DeadlineExceeded { .. } => "DeadlineExceeded".into(),
    }
}

/// Runs `f`, failing the case (not the whole process) if it panics.
#[track_caller]
pub fn no_panic<T>(id: &str, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{id}: panicked: {what}")
        }
    }
}

/// Runs `f` on every case, then fails with every case that failed (not just the first).
pub fn each<I>(cases: Vec<Case<I>>, mut f: impl FnMut(&Case<I>)) {
    let mut failed = Vec::new();
    for c in &cases {
        if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c))) {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {what}", c.id));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

/// Asserts the kind and the message fragment of a case.
#[track_caller]
pub fn check<I>(c: &Case<I>, kind: &str, message: &str) {
    assert_eq!(
        kind, c.kind,
        "{}: wrong error kind; message: {message}",
        c.id
    );
    assert!(
        message.contains(c.fragment),
        "{}: {:?} not in the message {message:?}",
        c.id,
        c.fragment
    );
}

/// Every file under `path` (or `path` itself if it is a file) with its permission bits and
/// contents: two equal snapshots mean nothing was written, created or removed.
pub fn snapshot(path: &Path) -> BTreeMap<PathBuf, (u32, Option<Vec<u8>>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![path.to_path_buf()];
    while let Some(p) = todo.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if meta.is_dir() {
            out.insert(p.clone(), (mode, None));
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        } else {
            out.insert(p.clone(), (mode, Some(std::fs::read(&p).unwrap())));
        }
    }
    out
}

/// What a process did.
#[derive(Debug)]
pub struct Exit {
    /// Its exit status.
    pub code: i32,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// Runs `cmd` with `stdin`, and checks that it exited by itself (no signal) without panicking.
pub fn run(id: &str, cmd: &mut Command, stdin: &[u8]) -> Exit {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // The process may stop reading (an oversize netconf): a broken pipe is fine.
    let _ = input.write_all(stdin);
    drop(input);
    let out = child.wait_with_output().unwrap();
    let exit = Exit {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    };
    assert!(
        out.status.signal().is_none(),
        "{id}: killed by signal {:?}: {exit:?}",
        out.status.signal()
    );
    assert!(
        !exit.stderr.contains("panicked"),
        "{id}: panicked: {exit:?}"
    );
    exit
}

/// A current-thread runtime for the async library calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The objects every store-backed surface starts from: a subnet, a pool inside it, a reserved
/// address and an IPv6 pool; no default pool.
pub const SEED: &str = r#"
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderSubnet
metadata: {name: base}
spec: {subnet: 10.20.0.0/16, ips: [10.20.0.10-10.20.0.200], gateway: 10.20.0.1}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: base-pool}
spec: {subnet: 10.20.0.0/16, ips: [10.20.0.10-10.20.0.20]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderReservedIP
metadata: {name: base-reserved}
spec: {ips: [10.20.0.30]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: v6-pool}
spec: {subnet: "fd20::/120", ips: ["fd20::10-fd20::20"]}
"#;

/// A local store at `dir` holding [`SEED`].
pub fn seeded_store(dir: &Path) -> backend_memory::LocalStore {
    let store = backend_memory::LocalStore::open(dir).unwrap();
    runtime()
        .block_on(spiderpool_cni::ctl::apply(
            &store,
            "seed.yaml",
            SEED,
            &mut || "uid-seed".into(),
            "2026-01-01T00:00:00Z",
        ))
        .unwrap();
    store
}

/// Ids are unique across the catalogue.
#[test]
fn ids_are_unique_and_the_catalogue_has_at_least_70_cases() {
    let ids: Vec<&str> = objects::ids()
        .into_iter()
        .chain(annotations::ids())
        .chain(plugin::ids())
        .chain(cli::ids())
        .chain(store::ids())
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for id in &ids {
        assert!(seen.insert(*id), "duplicate id {id}");
    }
    assert!(ids.len() >= 70, "only {} cases", ids.len());
}
