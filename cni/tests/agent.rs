//! The node agent: the plugin hands its commands to it over the socket the netconf names, and
//! runs them itself when nothing listens there.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spiderpool_cni::agent::{Request, HELLO};
use spiderpool_cni::netconf::CniEnv;
use spiderpool_cni::plugin::{run, Engines, Reply};

/// A store holding pool `p` of 10.98.0.10-10.98.0.19 (gateway .1) and a socket path beside it.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = common::spiderpoolctl(
            &dir.path().join("store"),
            &["apply", "-f", "-"],
            Some(
                "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\n\
                 metadata: {name: p}\n\
                 spec: {subnet: 10.98.0.0/24, ips: [10.98.0.10-10.98.0.19], gateway: 10.98.0.1, default: true}\n",
            ),
        );
        assert!(out.status.success(), "{out:?}");
        Lab { dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run/agent.sock")
    }

    fn conf(&self, socket: Option<&Path>) -> Vec<u8> {
        let mut ipam = json!({"type": "spiderpool", "store": self.dir.path().join("store")});
        if let Some(s) = socket {
            ipam["ipam_unix_socket_path"] = json!(s);
        }
        json!({"cniVersion": "1.0.0", "name": "lab", "type": "bridge", "ipam": ipam})
            .to_string()
            .into_bytes()
    }
}

fn env(command: &str, container: &str) -> CniEnv {
    CniEnv {
        command: command.into(),
        container_id: container.into(),
        netns: "/var/run/netns/t".into(),
        ifname: "eth0".into(),
        args: [("K8S_POD_NAME".to_string(), format!("pod-{container}"))].into(),
    }
}

fn address(r: &Reply) -> String {
    assert_eq!(r.exit_code, 0, "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    v["ips"][0]["address"].as_str().unwrap().to_string()
}

/// Starts an agent on `socket` in a thread of its own, keeping its engines in `engines`.
fn start_agent(socket: &Path, engines: Arc<Engines>) {
    let socket = socket.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = spiderpool_cni::agent::bind(&socket).unwrap();
            tx.send(()).unwrap();
            tokio::task::LocalSet::new()
                .run_until(spiderpool_cni::agent::serve(listener, engines, socket))
                .await;
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
}

#[test]
fn the_agent_runs_every_command_and_keeps_the_store_open() {
    let lab = Lab::new();
    let engines = Arc::new(Engines::kept());
    start_agent(&lab.socket(), Arc::clone(&engines));
    let conf = lab.conf(Some(&lab.socket()));
    let first = run(&env("ADD", "c1"), &conf, "node-1");
    assert_eq!(address(&first), "10.98.0.10/24");
    assert_eq!(
        engines.kept_count(),
        1,
        "the agent ran the ADD and kept its store"
    );
    assert_eq!(
        run(&env("ADD", "c1"), &conf, "node-1"),
        first,
        "ADD again: same result"
    );
    assert_eq!(
        address(&run(&env("ADD", "c2"), &conf, "node-1")),
        "10.98.0.11/24"
    );
    assert_eq!(run(&env("CHECK", "c2"), &conf, "node-1").exit_code, 0);
    assert_eq!(run(&env("DEL", "c1"), &conf, "node-1").exit_code, 0);
    let check = run(&env("CHECK", "c1"), &conf, "node-1");
    assert_eq!(check.exit_code, 1, "{check:?}");
    assert!(check.stdout.contains("no allocation for pod"), "{check:?}");
    assert_eq!(run(&env("STATUS", ""), &conf, "node-1").exit_code, 0);
    // GC with only c2 valid keeps c2.
    let mut gc: Value = serde_json::from_slice(&conf).unwrap();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c2", "ifname": "eth0"}]);
    let gc = gc.to_string().into_bytes();
    assert_eq!(run(&env("GC", ""), &gc, "node-1").exit_code, 0);
    assert_eq!(run(&env("CHECK", "c2"), &conf, "node-1").exit_code, 0);
    assert_eq!(engines.kept_count(), 1, "one store, one engine");
    // VERSION never needs the agent; an unknown command is refused by it as by the plugin.
    assert_eq!(run(&env("VERSION", ""), &conf, "node-1").exit_code, 0);
    let bad = run(&env("FROB", "c3"), &conf, "node-1");
    assert_eq!(bad.exit_code, 1);
    assert!(bad.stdout.contains("unknown command"), "{bad:?}");
}

#[test]
fn the_agent_sees_what_plugin_processes_committed_meanwhile() {
    let lab = Lab::new();
    start_agent(&lab.socket(), Arc::new(Engines::kept()));
    let via_agent = lab.conf(Some(&lab.socket()));
    let alone = lab.conf(None);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..10 {
        let conf = if i % 2 == 0 { &via_agent } else { &alone };
        let a = address(&run(&env("ADD", &format!("c{i}")), conf, "node-1"));
        assert!(seen.insert(a.clone()), "{a} handed out twice");
    }
    let full = run(&env("ADD", "c10"), &via_agent, "node-1");
    assert_eq!(full.exit_code, 1, "the pool is full: {full:?}");
    // Released by a plugin process, taken again through the agent.
    assert_eq!(run(&env("DEL", "c3"), &alone, "node-1").exit_code, 0);
    assert_eq!(
        address(&run(&env("ADD", "c10"), &via_agent, "node-1")),
        "10.98.0.13/24"
    );
}

#[test]
fn with_nothing_listening_the_plugin_does_the_work_itself() {
    let lab = Lab::new();
    // No socket file at all.
    let conf = lab.conf(Some(&lab.socket()));
    assert_eq!(
        address(&run(&env("ADD", "c1"), &conf, "node-1")),
        "10.98.0.10/24"
    );
    // A socket file left by an agent that stopped.
    std::fs::create_dir_all(lab.socket().parent().unwrap()).unwrap();
    drop(UnixListener::bind(lab.socket()).unwrap());
    assert!(lab.socket().exists());
    assert_eq!(
        address(&run(&env("ADD", "c2"), &conf, "node-1")),
        "10.98.0.11/24"
    );
    // An agent started on it replaces the stale file and carries on from the store.
    start_agent(&lab.socket(), Arc::new(Engines::kept()));
    assert_eq!(
        address(&run(&env("ADD", "c3"), &conf, "node-1")),
        "10.98.0.12/24"
    );
}

/// Serves one connection on `socket` with `answer`, returning what the plugin sent.
fn fake_agent(socket: &Path, answer: &'static [u8]) -> std::thread::JoinHandle<Vec<String>> {
    slow_fake_agent(socket, vec![(Duration::ZERO, answer)])
}

/// Serves one connection on `socket`: the answer's parts, each after its pause.
fn slow_fake_agent(
    socket: &Path,
    parts: Vec<(Duration, &'static [u8])>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let listener = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut lines = vec![String::new(), String::new()];
        for l in &mut lines {
            reader.read_line(l).unwrap();
        }
        for (pause, part) in parts {
            std::thread::sleep(pause);
            (&stream).write_all(part).unwrap();
        }
        lines
    })
}

#[test]
fn the_plugin_sends_the_whole_invocation_and_prints_the_agents_reply() {
    let lab = Lab::new();
    let conf = lab.conf(Some(&lab.socket()));
    let reply = b"spiderpool-rs-agent/1\n{\"stdout\":\"{\\\"canned\\\":true}\",\"exitCode\":0,\"stderr\":\"\"}\n";
    let fake = fake_agent(&lab.socket(), reply);
    let r = run(&env("ADD", "c9"), &conf, "node-7");
    assert_eq!(r.stdout, r#"{"canned":true}"#);
    assert_eq!(r.exit_code, 0);
    let lines = fake.join().unwrap();
    assert_eq!(lines[0].trim_end(), HELLO);
    let req: Request = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(req.env.command, "ADD");
    assert_eq!(req.env.container_id, "c9");
    assert_eq!(req.env.ifname, "eth0");
    assert_eq!(req.env.netns, "/var/run/netns/t");
    assert_eq!(
        req.env.args.get("K8S_POD_NAME").map(String::as_str),
        Some("pod-c9")
    );
    assert_eq!(req.node, "node-7");
    assert_eq!(req.netconf.as_bytes(), &conf[..]);
    // Nothing was allocated by the plugin itself.
    let store =
        std::fs::read_to_string(lab.dir.path().join("store/store.json")).unwrap_or_default();
    assert!(!store.contains("pod-c9"), "the plugin allocated too");
}

#[test]
fn a_reply_that_comes_late_or_in_parts_is_read_whole() {
    // The plugin polls for the reply for a moment, then sleeps on the socket: a reply after
    // that, or one whose first part comes within it and the rest later, arrives whole.
    let late = Duration::from_millis(30);
    let cases: Vec<Vec<(Duration, &'static [u8])>> = vec![
        vec![(
            late,
            b"spiderpool-rs-agent/1\n{\"stdout\":\"late\",\"exitCode\":0,\"stderr\":\"\"}\n",
        )],
        vec![
            (Duration::ZERO, b"spiderpool-rs-agent/1\n{\"stdout\":\"in "),
            (late, b"parts\",\"exitCode\":0,\"stderr\":\"\"}\n"),
        ],
    ];
    for (parts, expected) in cases.into_iter().zip(["late", "in parts"]) {
        let lab = Lab::new();
        let conf = lab.conf(Some(&lab.socket()));
        let fake = slow_fake_agent(&lab.socket(), parts);
        let r = run(&env("ADD", "c3"), &conf, "node-3");
        fake.join().unwrap();
        assert_eq!(r.exit_code, 0, "{r:?}");
        assert_eq!(r.stdout, expected);
    }
}

#[test]
fn a_socket_that_is_not_an_agent_gives_try_later_naming_it() {
    let lab = Lab::new();
    let conf = lab.conf(Some(&lab.socket()));
    let fake = fake_agent(&lab.socket(), b"HTTP/1.1 400 Bad Request\r\n\r\n");
    let r = run(&env("ADD", "c1"), &conf, "node-1");
    fake.join().unwrap();
    assert_eq!(r.exit_code, 1, "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["code"], 50, "{v}");
    let msg = v["msg"].as_str().unwrap();
    assert!(msg.contains(&lab.socket().display().to_string()), "{msg}");
    assert!(msg.contains("not a spiderpool-rs agent"), "{msg}");
}

#[test]
fn a_second_agent_on_a_live_socket_is_refused() {
    let lab = Lab::new();
    start_agent(&lab.socket(), Arc::new(Engines::kept()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt
        .block_on(async { spiderpool_cni::agent::bind(&lab.socket()).err() })
        .unwrap();
    assert!(e.to_string().contains("an agent already listens on"), "{e}");
}

#[test]
fn plugin_processes_use_an_agent_process_and_survive_its_death() {
    let lab = Lab::new();
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_spiderpoolctl"))
        .args(["agent", "--socket"])
        .arg(lab.socket())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::os::unix::net::UnixStream::connect(lab.socket()).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the agent never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let conf = String::from_utf8(lab.conf(Some(&lab.socket()))).unwrap();
    let plugin = |container: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spiderpool"));
        cmd.env_clear()
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", container)
            .env("CNI_NETNS", "/var/run/netns/t")
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/opt/cni/bin");
        let out = common::spawn_fed(&mut cmd, &conf)
            .wait_with_output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["ips"][0]["address"].as_str().unwrap().to_string()
    };
    assert_eq!(plugin("c1"), "10.98.0.10/24");
    assert_eq!(plugin("c2"), "10.98.0.11/24");
    agent.kill().unwrap();
    agent.wait().unwrap();
    // The agent is gone (its socket file stays): the plugin carries on alone.
    assert!(lab.socket().exists());
    assert_eq!(plugin("c3"), "10.98.0.12/24");
    assert_eq!(
        plugin("c1"),
        "10.98.0.10/24",
        "what the agent recorded holds"
    );
}

#[test]
fn a_client_that_sends_nothing_does_not_hold_up_the_others() {
    let lab = Lab::new();
    start_agent(&lab.socket(), Arc::new(Engines::kept()));
    let silent = std::os::unix::net::UnixStream::connect(lab.socket()).unwrap();
    let half = std::os::unix::net::UnixStream::connect(lab.socket()).unwrap();
    (&half).write_all(HELLO.as_bytes()).unwrap();
    let conf = lab.conf(Some(&lab.socket()));
    assert_eq!(
        address(&run(&env("ADD", "c1"), &conf, "node-1")),
        "10.98.0.10/24"
    );
    drop((silent, half));
}

#[test]
fn the_agent_keeps_its_store_after_a_refusal_and_drops_it_after_store_trouble() {
    let lab = Lab::new();
    let engines = Arc::new(Engines::kept());
    start_agent(&lab.socket(), Arc::clone(&engines));
    let conf = lab.conf(Some(&lab.socket()));
    for i in 0..10 {
        address(&run(&env("ADD", &format!("c{i}")), &conf, "node-1"));
    }
    // The pool is full: a refusal about the request, not the store.
    let full = run(&env("ADD", "c10"), &conf, "node-1");
    assert_eq!(full.exit_code, 1, "{full:?}");
    assert_eq!(engines.kept_count(), 1, "kept after a refusal");
    // A store that cannot be read: dropped, and opened afresh next time.
    let journal = lab.dir.path().join("store/store.journal");
    let good = std::fs::read(&journal).unwrap();
    std::fs::write(&journal, b"garbage\n").unwrap();
    let broken = run(&env("DEL", "c1"), &conf, "node-1");
    assert_eq!(broken.exit_code, 1, "{broken:?}");
    assert!(broken.stdout.contains("store.journal"), "{broken:?}");
    assert_eq!(engines.kept_count(), 0, "dropped after store trouble");
    std::fs::write(&journal, good).unwrap();
    assert_eq!(run(&env("DEL", "c1"), &conf, "node-1").exit_code, 0);
    assert_eq!(engines.kept_count(), 1);
}
