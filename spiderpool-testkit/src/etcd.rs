//! Real etcd servers for tests: started on free loopback ports in a temporary directory,
//! stopped when the test process ends (a watchdog shell kills them), never assumed running.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One etcd member.
#[derive(Debug)]
pub struct Member {
    /// Member name.
    pub name: String,
    /// Client port.
    pub client: u16,
    /// Peer port.
    pub peer: u16,
    /// Data directory.
    pub dir: PathBuf,
    /// `--initial-cluster`.
    pub cluster: String,
    /// The watchdog shell.
    pub child: Option<Child>,
}

impl Member {
    /// Starts (or restarts) the member under a watchdog that kills it when this test process
    /// exits.
    pub fn start(&mut self, state: &str) {
        let args = format!(
            "--name {n} --data-dir {d} --listen-client-urls http://127.0.0.1:{c} --advertise-client-urls http://127.0.0.1:{c} \
             --listen-peer-urls http://127.0.0.1:{p} --initial-advertise-peer-urls http://127.0.0.1:{p} \
             --initial-cluster {cl} --initial-cluster-state {state} --log-level error",
            n = self.name,
            d = self.dir.display(),
            c = self.client,
            p = self.peer,
            cl = self.cluster,
        );
        let script = format!(
            "etcd {args} >/dev/null 2>&1 & e=$!; while kill -0 {parent} 2>/dev/null && kill -0 $e 2>/dev/null; do sleep 0.2; done; kill -9 $e 2>/dev/null",
            parent = std::process::id()
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh");
        self.child = Some(child);
    }

    /// Kills the member hard (the watchdog shell and etcd).
    pub fn kill(&mut self) {
        let _ = Command::new("pkill")
            .args([
                "-9",
                "-f",
                "--",
                &format!("--name {} --data-dir {}", self.name, self.dir.display()),
            ])
            .status();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the member answers on its client port.
    pub fn is_up(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.client)).is_ok()
    }

    /// `http://127.0.0.1:<client port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }
}

/// A cluster of `n` members in a fresh temporary directory.
#[derive(Debug)]
pub struct Cluster {
    /// The members.
    pub members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` members and waits until the cluster takes writes.
    pub fn start(n: usize) -> Cluster {
        assert!(
            which_etcd(),
            "etcd is not installed: scripts/test.sh installs Debian's etcd-server"
        );
        let dir = tempfile::tempdir().unwrap();
        let id = std::process::id();
        let mut members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}-{id}"),
                client: free_port(),
                peer: free_port(),
                dir: dir.path().join(format!("m{i}")),
                cluster: String::new(),
                child: None,
            })
            .collect();
        let cluster: Vec<String> = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect();
        for m in &mut members {
            m.cluster = cluster.join(",");
            m.start("new");
        }
        let c = Cluster { members, _dir: dir };
        c.wait_healthy();
        c
    }

    /// Every member's client endpoint.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// Waits until a write goes through.
    pub fn wait_healthy(&self) {
        let start = Instant::now();
        loop {
            let ok = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args([
                    "--endpoints",
                    &self.endpoints().join(","),
                    "--command-timeout=1s",
                    "put",
                    "/health",
                    "ok",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "etcd did not become healthy"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn which_etcd() -> bool {
    Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

static SHARED: OnceLock<Cluster> = OnceLock::new();

/// The single-member server shared by the tests of this process, started on first use.
pub fn shared() -> &'static Cluster {
    SHARED.get_or_init(|| Cluster::start(1))
}
