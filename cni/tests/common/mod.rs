//! Helpers shared by the binary-level tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Runs `spiderpoolctl` on the store at `store` with `args`, feeding `stdin`.
pub fn spiderpoolctl(store: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spiderpoolctl"));
    cmd.args(args).env("SPIDERPOOL_STORE", store);
    spawn_fed(&mut cmd, stdin.unwrap_or(""))
        .wait_with_output()
        .unwrap()
}

/// Starts `cmd` with piped stdout and stderr, writes `input` to its stdin and closes it.
pub fn spawn_fed(cmd: &mut Command, input: &str) -> Child {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child
}
