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

/// Fixtures of the core benchmarks (`benches/core.rs`): pools filled to a level, many pools
/// with affinities, an application on a /16 subnet, and the memory report.
pub mod core_fixtures {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use backend_memory::MemoryStore;
    use spiderpool_core::allocate::{PoolIndex, Snapshot};
    use spiderpool_core::annotations::{ANNO_IPPOOL, ANNO_IPPOOL_IP_NUMBER, ANNO_SUBNET};
    use spiderpool_core::autopool::{plan_auto_pools, Application, AutoPoolConfig};
    use spiderpool_core::ip::{IpFamily, IpRange, IpSet};
    use spiderpool_core::model::{
        parse_documents, IPPoolSpec, LabelSelector, Object, PoolIPAllocation, SpiderIPPool,
        SpiderReservedIP, SpiderSubnet,
    };
    use spiderpool_core::request::{AllocateRequest, ReleaseRequest};
    use spiderpool_core::store::{Revision, Store};
    use spiderpool_testkit::fixtures::{add, block_on_ready, del};

    /// The pool sizes: (benchmark id, subnet, ips).
    pub const SIZES: [(&str, &str, &str); 5] = [
        ("v4_24", "10.0.0.0/24", "10.0.0.1-10.0.0.254"),
        ("v4_16", "10.0.0.0/16", "10.0.0.1-10.0.255.254"),
        ("v4_10", "10.0.0.0/10", "10.0.0.1-10.63.255.254"),
        ("v4_8", "10.0.0.0/8", "10.0.0.1-10.255.255.254"),
        ("v6_64", "fd00::/64", "fd00::1-fd00::ffff:ffff:ffff:ffff"),
    ];

    fn value(a: std::net::IpAddr) -> u128 {
        match a {
            std::net::IpAddr::V4(a) => u128::from(u32::from(a)),
            std::net::IpAddr::V6(a) => u128::from(a),
        }
    }

    fn size(id: &str) -> (&'static str, &'static str) {
        let (_, subnet, ips) = SIZES.iter().find(|(i, _, _)| *i == id).unwrap();
        (subnet, ips)
    }

    /// A record as a pod of a Deployment would have: a UUID-shaped uid.
    pub fn holder(i: u64) -> PoolIPAllocation {
        PoolIPAllocation {
            pod: format!("default/app-{i}"),
            pod_uid: format!("{:08x}-9a7b-4c1e-8f00-{:012x}", i >> 16, i),
            interface: Some("eth0".into()),
            extra: Default::default(),
        }
    }

    /// The index of pool `id` with `fill` % of its usable addresses allocated (the lowest
    /// ones, as allocations leave them), and an empty reserved set.
    ///
    /// IPv4: every filled address gets a record through [`PoolIndex::allocate`], a distinct
    /// holder per address up to /16; for /10 and /8 one holder per 256 addresses (each still
    /// its own record entry) to keep the fixture near 1.5 GB. IPv6 /64: 50 % or 99 % of 2^64
    /// records cannot exist; the filled part is excluded (`excludeIPs`) instead, which gives
    /// the free set the same shape (its lowest address deep inside whole free chunks) with few
    /// records.
    pub fn filled_index(id: &str, fill: u32) -> (PoolIndex, IpSet) {
        let (subnet, ips) = size(id);
        let family = if subnet.contains(':') {
            IpFamily::V6
        } else {
            IpFamily::V4
        };
        let mut spec = IPPoolSpec {
            subnet: subnet.into(),
            ips: vec![ips.into()],
            ..IPPoolSpec::default()
        };
        let range = IpRange::parse(Some(family), ips).unwrap();
        let (s, e) = (value(range.start()), value(range.end()));
        let filled = (e - s + 1) * u128::from(fill) / 100;
        if family == IpFamily::V6 && filled > 0 {
            let last = family.addr(s + filled - 1).unwrap();
            spec.exclude_ips = vec![format!("{}-{last}", family.addr(s).unwrap())];
        }
        let mut index = PoolIndex::empty(&spec).unwrap();
        let reserved = IpSet::new(family);
        if family == IpFamily::V4 {
            let share = if filled > 70_000 { 256 } else { 1 };
            let mut journal = Vec::new();
            let mut rec = Arc::new(holder(0));
            for i in 0..filled as u64 {
                if i % share == 0 {
                    rec = Arc::new(holder(i));
                }
                index
                    .allocate(rec.clone(), &reserved, &mut journal)
                    .unwrap();
                journal.clear();
            }
        }
        // The lookup by uid a long-lived engine keeps for a pool it uses again (a plugin
        // process that decodes a pool once does without): maintained by every change.
        index.index_lookups();
        (index, reserved)
    }

    /// A snapshot with one default pool `id` filled to `fill` % (records in
    /// `status.allocatedIPs`), and an ADD and a DEL of one pod. (`v6_64` only empty: its
    /// usable addresses are 2^64.)
    pub fn plan_world(id: &str, fill: u32) -> (Snapshot, AllocateRequest, ReleaseRequest) {
        let (subnet, ips) = size(id);
        let family = if subnet.contains(':') {
            IpFamily::V6
        } else {
            IpFamily::V4
        };
        let spec = IPPoolSpec {
            ip_version: Some(if family == IpFamily::V6 { 6 } else { 4 }),
            subnet: subnet.into(),
            ips: vec![ips.into()],
            default: Some(true),
            ..IPPoolSpec::default()
        };
        let mut pool = SpiderIPPool::new("bench", spec.clone());
        let mut index = PoolIndex::empty(&spec).unwrap();
        let reserved = IpSet::new(family);
        let filled = index.usable().len().to_i64_saturating() as u64 * u64::from(fill) / 100;
        let mut journal = Vec::new();
        for i in 0..filled {
            index
                .allocate(Arc::new(holder(i)), &reserved, &mut journal)
                .unwrap();
        }
        index.write_status(&mut pool);
        let mut snap = Snapshot::default();
        snap.pools.push((pool, Revision("1".into())));
        let uid = "5c1f0e2d-0000-4000-8000-00000000beef";
        (
            snap,
            add("default", "bench-pod", uid),
            del("default", "bench-pod", uid),
        )
    }

    fn selector(pairs: &[(&str, String)]) -> Option<LabelSelector> {
        Some(LabelSelector {
            match_labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..LabelSelector::default()
        })
    }

    /// `n` IPv4 pools with node, namespace and pod affinities, four of them cluster defaults;
    /// a request naming three pools by annotation (one filtered out by its node affinity),
    /// and one with no annotation (cluster default pools).
    pub fn select_world(n: usize) -> (Snapshot, AllocateRequest, AllocateRequest) {
        let mut snap = Snapshot::default();
        for i in 0..n {
            let spec = IPPoolSpec {
                ip_version: Some(4),
                subnet: format!("10.{}.{}.0/24", i / 256, i % 256),
                ips: vec![format!(
                    "10.{}.{}.1-10.{}.{}.254",
                    i / 256,
                    i % 256,
                    i / 256,
                    i % 256
                )],
                node_affinity: selector(&[("zone", format!("z{}", i % 4))]),
                namespace_affinity: selector(&[("team", format!("t{}", i % 3))]),
                pod_affinity: (i % 2 == 0)
                    .then(|| selector(&[("app", "web".into())]))
                    .flatten(),
                default: Some(i % (n / 4).max(1) == 1),
                ..IPPoolSpec::default()
            };
            snap.pools.push((
                SpiderIPPool::new(format!("pool-{i}"), spec),
                Revision("1".into()),
            ));
        }
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut base = add("default", "web-1", "uid-web-1");
        base.node_labels = labels(&[("zone", "z1")]);
        base.namespace_labels = labels(&[("team", "t1")]);
        base.pod_labels = labels(&[("app", "web")]);
        let defaults = base.clone();
        let mut named = base;
        let last = n - 1;
        let one = 1 % n;
        let five = 5 % n;
        named.pod_annotations = labels(&[(
            ANNO_IPPOOL,
            &format!(r#"{{"ipv4":["pool-{one}","pool-{five}","pool-{last}"]}}"#),
        )]);
        if n <= 5 || one == five || five == last || one == last {
            named.pod_annotations = labels(&[(ANNO_IPPOOL, r#"{"ipv4":["pool-1","pool-5"]}"#)]);
        }
        (snap, named, defaults)
    }

    fn subnet(name: &str, cidr: &str, ips: &str) -> SpiderSubnet {
        let yaml = format!(
            "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderSubnet\nmetadata: {{name: {name}}}\nspec: {{subnet: \"{cidr}\", ips: [\"{ips}\"]}}\n"
        );
        let Object::Subnet(mut s) = parse_documents("bench", &yaml).unwrap().remove(0).object
        else {
            panic!("not a subnet")
        };
        spiderpool_core::validate::mutate_subnet(&mut s);
        s
    }

    /// A Deployment of `n / 2` replicas whose auto-pool exists on a /16 subnet, scaled to
    /// `n` replicas: the inputs of the scale-up decision.
    #[allow(clippy::type_complexity)]
    pub fn autopool_world(
        n: u64,
    ) -> (
        Application,
        Vec<(SpiderSubnet, Revision)>,
        Vec<(SpiderIPPool, Revision)>,
        Vec<SpiderReservedIP>,
    ) {
        let store = MemoryStore::new();
        let s = subnet("bench-subnet", "10.200.0.0/16", "10.200.0.1-10.200.255.254");
        block_on_ready(store.create(Object::Subnet(s))).unwrap();
        let mut app = Application {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "default".into(),
            name: "web".into(),
            uid: "web-4000-8000-452e737e5e12".into(),
            replicas: Some(n / 2),
            annotations: [
                (
                    ANNO_SUBNET.to_string(),
                    r#"{"ipv4":["bench-subnet"]}"#.to_string(),
                ),
                (ANNO_IPPOOL_IP_NUMBER.to_string(), "+0".to_string()),
            ]
            .into_iter()
            .collect(),
        };
        let read = |store: &MemoryStore| {
            let subnets: Vec<(SpiderSubnet, Revision)> =
                block_on_ready(store.list(SpiderSubnet::KIND))
                    .unwrap()
                    .into_iter()
                    .filter_map(|s| match s.object {
                        Object::Subnet(x) => Some((x, s.revision)),
                        _ => None,
                    })
                    .collect();
            let pools: Vec<(SpiderIPPool, Revision)> =
                block_on_ready(store.list(SpiderIPPool::KIND))
                    .unwrap()
                    .into_iter()
                    .filter_map(|s| match s.object {
                        Object::IpPool(x) => Some((x, s.revision)),
                        _ => None,
                    })
                    .collect();
            (subnets, pools)
        };
        let (subnets, pools) = read(&store);
        let cfg = AutoPoolConfig::default();
        let writes = plan_auto_pools(&app, &subnets, &pools, &[], &cfg).unwrap();
        block_on_ready(store.commit(writes)).unwrap();
        app.replicas = Some(n);
        let (subnets, pools) = read(&store);
        (app, subnets, pools, Vec::new())
    }

    /// The bitmap of every usable address of pool `subnet`/`ips`, built address by address as
    /// the index's `allocated` set is.
    fn full_bitmap(subnet: &str, ips: &str) -> IpSet {
        let net = spiderpool_core::ip::parse_cidr(Some(IpFamily::V4), subnet).unwrap();
        let range = IpRange::parse(Some(IpFamily::V4), ips).unwrap();
        let mut set = IpSet::for_subnet(&net);
        let (s, e) = (value(range.start()), value(range.end()));
        for v in s..=e {
            set.insert(IpFamily::V4.addr(v).unwrap());
        }
        set
    }

    /// Bytes of Spiderpool's `status.allocatedIPs` for records of every address of `ips`
    /// (one Deployment pod each, UUID uids, interface `eth0`), counted while streaming.
    fn wire_bytes(ips: &str) -> u64 {
        let range = IpRange::parse(Some(IpFamily::V4), ips).unwrap();
        let (s, e) = (value(range.start()), value(range.end()));
        let mut total = 2u64; // {}
        for (i, v) in (s..=e).enumerate() {
            let h = holder(i as u64);
            // Nothing here needs escaping; the /24 cross-check below compares with the encoder.
            let entry = format!(
                r#""{}":{{"pod":"{}","podUid":"{}","interface":"eth0"}}"#,
                IpFamily::V4.addr(v).unwrap(),
                h.pod,
                h.pod_uid
            );
            total += entry.len() as u64 + u64::from(i > 0);
        }
        total
    }

    /// Prints the serialized and in-memory size of the allocation bitmap of a fully allocated
    /// /16 and /8 pool (as built, and run-length optimised), and the size of the same
    /// allocations in Spiderpool's wire format.
    pub fn memory_report() {
        println!("memory: allocation bitmap of a fully allocated pool (roaring)");
        println!(
            "{:<6} {:>10} {:>14} {:>14} {:>16} {:>16} {:>16}",
            "pool",
            "addresses",
            "serialized",
            "in memory",
            "optimized ser.",
            "optimized mem",
            "allocatedIPs JSON"
        );
        for (id, subnet, ips) in [SIZES[1], SIZES[3]] {
            let mut set = full_bitmap(subnet, ips);
            let (ser, mem) = set.byte_sizes();
            set.optimize();
            let (oser, omem) = set.byte_sizes();
            let json = wire_bytes(ips);
            println!(
                "{id:<6} {:>10} {:>14} {:>14} {:>16} {:>16} {:>16}",
                set.len().to_string(),
                ser,
                mem,
                oser,
                omem,
                json
            );
        }
        // Cross-check the streamed wire size on a real /24 encoding.
        let (_, subnet, ips) = SIZES[0];
        let spec = IPPoolSpec {
            subnet: subnet.into(),
            ips: vec![ips.into()],
            ..IPPoolSpec::default()
        };
        let mut index = PoolIndex::empty(&spec).unwrap();
        let reserved = IpSet::new(IpFamily::V4);
        let mut journal = Vec::new();
        for i in 0..254 {
            index
                .allocate(Arc::new(holder(i)), &reserved, &mut journal)
                .unwrap();
        }
        let encoded = index.encode().unwrap_or_default().len() as u64;
        assert_eq!(encoded, wire_bytes(ips), "wire size estimate");
    }
}
