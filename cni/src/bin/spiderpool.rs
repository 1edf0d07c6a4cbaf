//! The `spiderpool` CNI IPAM plugin.
use std::io::{Read, Write};

use spiderpool_cni::netconf::{CniEnv, MAX_NETCONF_BYTES};
use spiderpool_cni::plugin::Reply;

fn main() {
    spiderpool_cni::plugin::exit_after_reply();
    let env = CniEnv::from_lookup(|k| std::env::var(k).ok());
    let mut stdin = Vec::new();
    let read = std::io::stdin()
        .take(MAX_NETCONF_BYTES as u64 + 1)
        .read_to_end(&mut stdin);
    let reply = match (env, read) {
        (Ok(env), Ok(_)) => spiderpool_cni::plugin::run(&env, &stdin, &node_name()),
        (Err(e), _) => Reply::error("1.1.0", &e),
        (_, Err(e)) => Reply::error(
            "1.1.0",
            &spiderpool_cni::Error::InvalidNetconf {
                reason: format!("reading stdin: {e}"),
            },
        ),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(reply.stdout.as_bytes());
    let _ = out.flush();
    if !reply.stderr.is_empty() {
        eprintln!("{}", reply.stderr);
    }
    std::process::exit(reply.exit_code);
}

/// This host's name: `NODE_NAME` if set (as in Kubernetes), else the kernel's hostname.
fn node_name() -> String {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|n| n.trim().to_string())
        .unwrap_or_default()
}
