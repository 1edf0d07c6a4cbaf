//! `spiderpoolctl` arguments and input files: the real binary against a store holding
//! [`crate::SEED`]. Each case checks the exit status (2 for usage errors clap reports, 1 for
//! the rest), a fragment of stderr, and that the store is untouched. The kinds of errors the
//! library decides are checked in-process too (see [`library_kind`]).

use std::path::Path;

use spiderpool_cni::ctl::{Kind, Output};

use crate::{case, check, cni_kind, each, no_panic, run, runtime, seeded_store, snapshot, Case};

/// One `spiderpoolctl` run: arguments (`@DIR@` is the test's directory), stdin, exit status.
#[derive(Debug, Clone)]
pub struct Args {
    args: Vec<&'static str>,
    stdin: Vec<u8>,
    status: i32,
}

fn args(args: &[&'static str], status: i32) -> Args {
    Args {
        args: args.to_vec(),
        stdin: Vec::new(),
        status,
    }
}

fn stdin(args: &[&'static str], stdin: Vec<u8>, status: i32) -> Args {
    Args {
        args: args.to_vec(),
        stdin,
        status,
    }
}

/// Usage errors clap reports before any command runs (exit 2).
const CLAP: &str = "clap";

/// The files the cases read, written under the test's directory.
fn write_files(dir: &Path) {
    std::fs::write(dir.join("bad.yaml"), "apiVersion: [").unwrap();
    std::fs::write(dir.join("latin1.yaml"), b"kind: Spider\xefP\xf6ol\n").unwrap();
    std::fs::write(dir.join("big.yaml"), big_yaml()).unwrap();
    std::fs::create_dir(dir.join("a-directory")).unwrap();
    std::fs::write(dir.join("a-file"), "").unwrap();
}

/// A valid document a little over 4 MiB: a comment pads it.
fn big_yaml() -> Vec<u8> {
    let mut text = b"# ".to_vec();
    text.extend(std::iter::repeat_n(b'x', 4 << 20));
    text.extend_from_slice(
        b"\napiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderReservedIP\nmetadata: {name: r}\nspec: {ips: [10.1.0.1]}\n",
    );
    text
}

fn cases() -> Vec<Case<Args>> {
    vec![
        case(
            "ctl-unknown-subcommand",
            args(&["frobnicate"], 2),
            CLAP,
            "error: unrecognized subcommand 'frobnicate'",
        ),
        case(
            "ctl-no-subcommand",
            args(&[], 2),
            CLAP,
            "Usage: spiderpoolctl",
        ),
        case(
            "ctl-unknown-flag",
            args(&["apply", "-f", "-", "--frob"], 2),
            CLAP,
            "error: unexpected argument '--frob' found",
        ),
        case(
            "ctl-apply-without-file",
            args(&["apply"], 2),
            CLAP,
            "error: the following required arguments were not provided",
        ),
        case(
            "ctl-scale-negative",
            args(&["scale", "deploy/web", "--replicas", "-1"], 2),
            CLAP,
            "error: unexpected argument '-1' found",
        ),
        case(
            "ctl-scale-not-a-number",
            args(&["scale", "deploy/web", "--replicas", "many"], 2),
            CLAP,
            "error: invalid value 'many' for '--replicas <REPLICAS>'",
        ),
        case(
            "ctl-describe-without-name",
            args(&["describe", "sp"], 2),
            CLAP,
            "error: the following required arguments were not provided",
        ),
        case(
            "ctl-apply-missing-file",
            args(&["apply", "-f", "@DIR@/missing.yaml"], 1),
            "Input",
            "missing.yaml: No such file or directory",
        ),
        case(
            "ctl-apply-a-directory",
            args(&["apply", "-f", "@DIR@/a-directory"], 1),
            "Input",
            "a-directory: Is a directory",
        ),
        case(
            "ctl-apply-bad-yaml",
            args(&["apply", "-f", "@DIR@/bad.yaml"], 1),
            "Ipam::Decode",
            "bad.yaml: document 1:",
        ),
        case(
            "ctl-apply-not-utf8",
            args(&["apply", "-f", "@DIR@/latin1.yaml"], 1),
            "Input",
            "latin1.yaml: not UTF-8 text: invalid byte at offset 12",
        ),
        case(
            "ctl-apply-over-4-mib",
            args(&["apply", "-f", "@DIR@/big.yaml"], 1),
            "InputTooLarge",
            "big.yaml: larger than the 4194304 bytes accepted",
        ),
        case(
            "ctl-apply-stdin-over-4-mib",
            stdin(&["apply", "-f", "-"], big_yaml(), 1),
            "InputTooLarge",
            "-: larger than the 4194304 bytes accepted",
        ),
        case(
            "ctl-apply-stdin-not-utf8",
            stdin(&["apply", "-f", "-"], b"\xff\xfe".to_vec(), 1),
            "Input",
            "-: not UTF-8 text: invalid byte at offset 0",
        ),
        case(
            "ctl-delete-missing-file",
            args(&["delete", "-f", "@DIR@/missing.yaml"], 1),
            "Input",
            "missing.yaml: No such file or directory",
        ),
        case(
            "ctl-get-unknown-kind",
            args(&["get", "widgets"], 1),
            "Usage",
            "the server doesn't have a resource type \"widgets\" (use sp, ss, sr or se)",
        ),
        case(
            "ctl-get-bad-output",
            args(&["get", "sp", "-o", "xml"], 1),
            "Usage",
            "unable to match a printer suitable for the output format \"xml\"",
        ),
        case(
            "ctl-get-missing-object",
            args(&["get", "sp", "nope"], 1),
            "Usage",
            "Error from server (NotFound): spiderippools \"nope\" not found",
        ),
        case(
            "ctl-delete-kind-only",
            args(&["delete", "sp"], 1),
            "Usage",
            "delete takes KIND NAME, or -f FILE",
        ),
        case(
            "ctl-delete-missing-object",
            args(&["delete", "ss", "nope"], 1),
            "Usage",
            "spidersubnets \"nope\" not found",
        ),
        case(
            "ctl-describe-unknown-kind",
            args(&["describe", "pools", "x"], 1),
            "Usage",
            "doesn't have a resource type \"pools\"",
        ),
        case(
            "ctl-scale-unknown-kind",
            args(&["scale", "widget/x", "--replicas", "3"], 1),
            "Usage",
            "the server doesn't have a resource type \"widget\"",
        ),
        case(
            "ctl-store-bad-etcd-url",
            args(&["--store", "etcd://", "get", "sp"], 1),
            "Usage",
            "\"etcd://\" is not etcd://host:port[,host:port…][/prefix]",
        ),
        case(
            "ctl-agent-socket-a-file",
            args(&["agent", "--socket", "@DIR@/a-file"], 1),
            "Usage",
            "a-file exists and is not a socket",
        ),
        case(
            "ctl-agent-socket-under-a-file",
            args(&["agent", "--socket", "@DIR@/a-file/agent.sock"], 1),
            "AgentSocket",
            "agent socket",
        ),
        case(
            "ctl-store-a-file",
            args(&["--store", "@DIR@/a-file", "get", "sp"], 1),
            "Store::NotADirectory",
            "a-file: the store location is not a directory",
        ),
    ]
}

/// The ids of the table.
pub fn ids() -> Vec<&'static str> {
    cases().iter().map(|c| c.id).collect()
}

/// The error the library gives for the parts of a case it decides alone, if any.
fn library_kind(c: &Case<Args>, dir: &Path) -> Option<spiderpool_cni::Error> {
    let a: Vec<String> = c
        .input
        .args
        .iter()
        .map(|a| a.replace("@DIR@", &dir.display().to_string()))
        .collect();
    match a.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["apply" | "delete", "-f", file] if file != "-" => {
            spiderpool_cni::ctl::read_input(file).err()
        }
        ["get", kind] | ["describe", kind, _] => Kind::parse(kind).err(),
        ["get", _, "-o", output] => Output::parse(output).err(),
        ["agent", "--socket", socket] => {
            runtime().block_on(async { spiderpool_cni::agent::bind(Path::new(socket)).err() })
        }
        ["--store", store, ..] => runtime()
            .block_on(spiderpool_cni::store::open_store(store, None))
            .err(),
        _ => None,
    }
}

#[test]
fn bad_arguments_exit_with_a_message_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    seeded_store(&store);
    write_files(dir.path());
    each(cases(), |c| {
        let before = snapshot(&store);
        let args: Vec<String> = c
            .input
            .args
            .iter()
            .map(|a| a.replace("@DIR@", &dir.path().display().to_string()))
            .collect();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spiderpoolctl"));
        cmd.args(&args).env("SPIDERPOOL_STORE", &store);
        let out = run(c.id, &mut cmd, &c.input.stdin);
        assert_eq!(out.code, c.input.status, "{});: {out:?}", c.id);
        assert!(out.stdout.is_empty(), "{}: printed {:?}", c.id, out.stdout);
        if c.kind == CLAP {
            check(c, CLAP, &out.stderr);
        } else {
            let e = no_panic(c.id, || library_kind(c, dir.path()));
            let kind = e
                .as_ref()
                .map(cni_kind)
                .unwrap_or_else(|| c.kind.to_string());
            check(c, &kind, &out.stderr);
            assert!(
                out.stderr.starts_with("error: "),
                "{}: {}",
                c.id,
                out.stderr
            );
        }
        assert_eq!(snapshot(&store), before, "{}: the store changed", c.id);
    });
}
