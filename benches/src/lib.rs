//! Shared pieces of the benchmarks: concurrent allocators over any store.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use spiderpool_core::ipam::{Ipam, Pause};
use spiderpool_core::store::Store;
use spiderpool_testkit::fixtures::{add, put_pool};

/// Jittered exponential backoff, as the CNI plugin uses.
pub struct Backoff(pub u64);

#[async_trait::async_trait]
impl Pause for Backoff {
    async fn pause(&self, attempt: u32) {
        let cap = 2u64.saturating_pow(attempt.min(7)).min(100);
        let jitter = self.0.rotate_left(attempt) % (cap + 1);
        tokio::time::sleep(Duration::from_millis(cap / 2 + jitter)).await;
    }
}

/// `allocators` tasks each allocate `per_allocator` pods from one fresh pool `name` of
/// `store`; returns the wall time. Panics on a duplicate address.
pub async fn concurrent_allocations<S: Store + 'static>(
    store: Arc<S>,
    name: &str,
    allocators: usize,
    per_allocator: usize,
) -> Duration {
    let total = allocators * per_allocator;
    put_pool(
        &*store,
        name,
        &format!(
            "subnet: 10.64.0.0/16\nips: [10.64.0.1-10.64.{}.255]\ndefault: true",
            total / 256 + 1
        ),
    )
    .await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for a in 0..allocators {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let ipam = Ipam::new(store).with_retries(10_000, Backoff(a as u64 * 0x9E37_79B9));
            let mut ips = Vec::new();
            for i in 0..per_allocator {
                let got = ipam
                    .allocate(&add(
                        "bench",
                        &format!("pod-{a}-{i}"),
                        &format!("u-{a}-{i}"),
                    ))
                    .await
                    .unwrap();
                ips.push(got[0].ipv4.clone().unwrap());
            }
            ips
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "duplicate addresses");
    elapsed
}

/// A single-member etcd for the store benchmarks, its data directory on tmpfs (`/dev/shm`)
/// when there is one, so that the figures measure the store and not this machine's fsync (etcd
/// 3.4 has no `--unsafe-no-fsync`). `SPIDERPOOL_BENCH_ETCD_DIR=<dir>` puts it elsewhere, e.g.
/// on disk. Stopped and removed on drop (and by the watchdog when the process exits).
pub struct BenchEtcd {
    member: spiderpool_testkit::etcd::Member,
    dir: std::path::PathBuf,
}

impl BenchEtcd {
    /// Starts the member and waits until it takes writes.
    pub fn start() -> BenchEtcd {
        use spiderpool_testkit::etcd::{free_port, Member};
        let parent = std::env::var_os("SPIDERPOOL_BENCH_ETCD_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                let shm = std::path::Path::new("/dev/shm");
                if shm.is_dir() {
                    shm.to_path_buf()
                } else {
                    std::env::temp_dir()
                }
            });
        let dir = parent.join(format!("spiderpool-bench-etcd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let name = format!("bench-{}", std::process::id());
        let peer = free_port();
        let mut member = Member {
            cluster: format!("{name}=http://127.0.0.1:{peer}"),
            name,
            client: free_port(),
            peer,
            dir: dir.join("member"),
            child: None,
        };
        member.start("new");
        let start = Instant::now();
        loop {
            let ok = std::process::Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args([
                    "--endpoints",
                    &member.endpoint(),
                    "--command-timeout=1s",
                    "put",
                    "/health",
                    "ok",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "etcd did not become healthy (is etcd-server installed?)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("etcd for the benchmarks: data in {}", dir.display());
        BenchEtcd { member, dir }
    }

    /// The client endpoint.
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.member.endpoint()]
    }
}

impl Drop for BenchEtcd {
    fn drop(&mut self) {
        self.member.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
