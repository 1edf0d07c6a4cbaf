//! Times whole-process CNI calls for `benches/cni-vs-host-local.sh` (std only; built with
//! `rustc -O`, so the harness adds no interpreter start-up to what it measures).
//!
//! Usage: cni_time PLUGIN NETCONF_FILE MODE COUNT PREFIX
//!
//! MODE:
//! - `fill`: COUNT ADDs of containers PREFIX-0 … untimed; fails on the first error;
//! - `add`: COUNT timed ADDs, each followed by an untimed DEL of the same container, so that
//!   the range stays at the fill level it had before;
//! - `version`: COUNT timed VERSION calls.
//!
//! Each call is one process with a clean environment holding only the CNI variables, the
//! netconf on stdin, stdout and stderr captured. Timed modes print one line:
//! `median_ms p90_ms` (wall time from spawn to exit, as a container runtime sees it).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

fn call(plugin: &str, conf: &[u8], command: &str, container: &str) -> f64 {
    let start = Instant::now();
    let mut child = Command::new(plugin)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", "/var/run/netns/cni-bench")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {plugin}: {e}"));
    // A plugin may exit without reading all of stdin (VERSION): a broken pipe is fine.
    let written = child.stdin.take().expect("stdin").write_all(conf);
    if let Err(e) = written {
        assert!(
            e.kind() == std::io::ErrorKind::BrokenPipe,
            "writing the netconf: {e}"
        );
    }
    let out = child.wait_with_output().expect("waiting for the plugin");
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        panic!(
            "{plugin} {command} {container}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ms
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: cni_time PLUGIN NETCONF_FILE fill|add|version COUNT PREFIX");
        std::process::exit(2);
    }
    let (plugin, mode, prefix) = (&args[1], args[3].as_str(), &args[5]);
    let conf = std::fs::read(&args[2]).expect("reading the netconf file");
    let count: usize = args[4].parse().expect("COUNT is a number");
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let id = format!("{prefix}-{i}");
        match mode {
            "fill" => {
                call(plugin, &conf, "ADD", &id);
            }
            "add" => {
                times.push(call(plugin, &conf, "ADD", &id));
                call(plugin, &conf, "DEL", &id);
            }
            "version" => times.push(call(plugin, &conf, "VERSION", &id)),
            other => panic!("unknown mode {other:?}"),
        }
    }
    if !times.is_empty() {
        times.sort_by(f64::total_cmp);
        println!(
            "{:.3} {:.3}",
            percentile(&times, 0.5),
            percentile(&times, 0.9)
        );
    }
}
