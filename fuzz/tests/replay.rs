//! Replays every checked-in input of every fuzz target on the stable toolchain: each file of
//! `corpus/<target>/` and `artifacts/<target>/` goes through the target's body, as the
//! libFuzzer binary would run it. Crash reproducers in `artifacts/` are thereby regression
//! tests. One test per target, so a failure names the target; the panic names the file.
//!
//! `FUZZ_REPLAY_DIR=<dir>` replays the files of `<dir>/<target>/` instead (e.g. a corpus a
//! long fuzzing run grew in `fuzz/target/corpus`).
#![allow(clippy::unwrap_used)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = spiderpool_testkit::fixtures::package_dir();
    let dirs: Vec<PathBuf> = match std::env::var_os("FUZZ_REPLAY_DIR") {
        Some(d) => vec![PathBuf::from(d).join(target)],
        None => vec![
            root.join("corpus").join(target),
            root.join("artifacts").join(target),
        ],
    };
    let mut files = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_file() && !name.starts_with('.') {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn replay(target: &str) {
    let body = spiderpool_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap()
        .1;
    let files = inputs(target);
    let mut failed = Vec::new();
    for path in &files {
        let data = std::fs::read(path).unwrap();
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs panicked (messages above):\n  {}",
        failed.len(),
        files.len(),
        failed.join("\n  ")
    );
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn every_target_has_a_corpus() {
    for (target, _) in spiderpool_fuzz::TARGETS {
        let root = spiderpool_testkit::fixtures::package_dir();
        assert!(
            root.join("fuzz_targets")
                .join(format!("{target}.rs"))
                .is_file(),
            "{target}: no fuzz_targets/{target}.rs"
        );
        if std::env::var_os("FUZZ_REPLAY_DIR").is_none() {
            assert!(!inputs(target).is_empty(), "{target}: empty corpus");
        }
    }
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            replay(stringify!($name));
        }
    )*};
}

replay_tests!(
    range,
    ipset,
    object_json,
    object_yaml,
    annotations,
    netconf,
    cni_args,
    local_store,
    etcd_value,
    state_machine,
    allocated_ips,
);
