//! 64 plugin processes at once on one local store, a random part of them killed with SIGKILL
//! at random moments or dying at a random write step (`SPIDERPOOL_FAILPOINT`, the store's
//! `failpoints` feature, on in test builds). Afterwards the store loads, the pool's records,
//! its count and the endpoints agree, no address is held twice, every ADD that returned holds
//! what it returned, GC and DEL clean up what killed ADDs left, and 64 ADDs succeed again.
//! The seed is printed; `CRASH_SEED=<n>` replays one.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use backend_memory::{LocalStore, FAILPOINT_ENV, FAILPOINT_STEPS};
use serde_json::{json, Value};
use spiderpool_core::model::{Object, SpiderEndpoint};
use spiderpool_core::store::{Key, Store};
use spiderpool_testkit::check_invariants;
use spiderpool_testkit::fixtures::block_on_ready;

mod common;

const PROCESSES: usize = 64;
const ROUNDS: usize = 5;

/// SplitMix64: a small seeded generator, enough to pick victims and delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `true` once in `n` times.
    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How a plugin process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Exited 0, printing this (the ADD result, or nothing).
    Returned(String),
    /// Killed: by the test or at its failpoint.
    Killed,
}

/// Starts one plugin invocation for container `c`, dying at `step` if given.
fn spawn(command: &str, c: &str, conf: &str, step: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spiderpool"));
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", c)
        .env("CNI_NETNS", "/var/run/netns/none")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "")
        .env(
            "CNI_ARGS",
            format!("K8S_POD_NAMESPACE=crash;K8S_POD_NAME=pod-{c};K8S_POD_UID=uid-{c}"),
        )
        .env_remove(FAILPOINT_ENV);
    if let Some(step) = step {
        cmd.env(FAILPOINT_ENV, step);
    }
    common::spawn_fed(&mut cmd, conf)
}

/// What the plugin processes of one batch did, and how many the test killed.
struct Batch {
    ends: BTreeMap<String, End>,
    killed_by_test: usize,
    armed: usize,
}

/// Runs `command` for every container at once. With `rng`, one process in three gets a SIGKILL
/// 0–40 ms after it started and one in four a random failpoint; every process must either exit
/// 0 or be killed.
fn batch(command: &str, containers: &[String], conf: &str, mut rng: Option<&mut Rng>) -> Batch {
    let mut children = Vec::new();
    let mut kills = Vec::new();
    let mut armed = 0;
    for c in containers {
        let mut step = None;
        if let Some(rng) = rng.as_deref_mut() {
            if rng.one_in(4) {
                step = Some(FAILPOINT_STEPS[rng.below(FAILPOINT_STEPS.len() as u64) as usize]);
                armed += 1;
            }
            if rng.one_in(3) {
                let at = Instant::now() + Duration::from_micros(rng.below(40_000));
                kills.push((at, children.len()));
            }
        }
        children.push(spawn(command, c, conf, step));
    }
    kills.sort();
    for (at, i) in &kills {
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        // A process that already exited is a zombie until waited for: the signal is lost.
        let _ = children[*i].kill();
    }
    let mut ends = BTreeMap::new();
    for (c, child) in containers.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let end = match out.status.signal() {
            Some(9) => End::Killed,
            _ => {
                assert!(
                    out.status.success(),
                    "{command} {c}: {} {stdout} {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                End::Returned(stdout)
            }
        };
        ends.insert(c.clone(), end);
    }
    Batch {
        ends,
        killed_by_test: kills.len(),
        armed,
    }
}

/// The address an ADD result gives.
fn address(result: &str) -> String {
    let v: Value = serde_json::from_str(result).unwrap();
    v["ips"][0]["address"].as_str().unwrap().to_string()
}

/// What the store holds, read by a fresh `LocalStore`: container → address per endpoint,
/// after checking that records, count and endpoints agree and that no address is held twice.
fn holdings(store: &Path) -> BTreeMap<String, String> {
    let local = LocalStore::open(store).unwrap();
    block_on_ready(check_invariants(&local)).unwrap_or_else(|e| panic!("{e:#?}"));
    let s = block_on_ready(local.get(&Key::pool("big")))
        .unwrap()
        .unwrap();
    let Object::IpPool(pool) = s.object else {
        panic!("not a pool")
    };
    let records = pool.allocations().unwrap();
    let mut held = BTreeMap::new();
    for s in block_on_ready(local.list(SpiderEndpoint::KIND)).unwrap() {
        let Object::Endpoint(ep) = s.object else {
            continue;
        };
        let d = &ep.status.current.ips[0];
        let container = ep.metadata.name.strip_prefix("pod-").unwrap().to_string();
        held.insert(container, d.ipv4.clone().unwrap());
    }
    assert_eq!(records.len(), held.len(), "records and endpoints");
    assert_eq!(
        pool.status.allocated_ip_count.unwrap_or(0),
        held.len() as i64
    );
    held
}

fn returned(b: &Batch) -> BTreeMap<String, String> {
    b.ends
        .iter()
        .filter_map(|(c, e)| match e {
            End::Returned(out) => Some((c.clone(), address(out))),
            End::Killed => None,
        })
        .collect()
}

fn killed(b: &Batch) -> Vec<String> {
    b.ends
        .iter()
        .filter(|(_, e)| **e == End::Killed)
        .map(|(c, _)| c.clone())
        .collect()
}

#[test]
fn sixty_four_plugin_processes_killed_at_random_leave_a_consistent_store() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let pool = "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata: {name: big}\n\
         spec: {subnet: 10.234.0.0/24, ips: [10.234.0.10-10.234.0.200], gateway: 10.234.0.1, default: true}\n";
    let out = common::spiderpoolctl(&store, &["apply", "-f", "-"], Some(pool));
    assert!(out.status.success());
    let conf = json!({"cniVersion": "1.1.0", "name": "crash", "type": "spiderpool", "ipam": {"type": "spiderpool", "store": store}}).to_string();

    // The plugin binary has the failpoints: an ADD dies before writing its record.
    let mut c = spawn("ADD", "first", &conf, Some("journal-before-write"));
    drop(c.stdin.take());
    assert_eq!(
        c.wait().unwrap().signal(),
        Some(9),
        "no failpoints in the plugin"
    );
    assert!(holdings(&store).is_empty());

    let (mut killed_adds, mut killed_dels, mut test_kills, mut armed) = (0, 0, 0, 0);
    for round in 0..ROUNDS {
        let containers: Vec<String> = (0..PROCESSES).map(|i| format!("r{round}c{i}")).collect();
        // 64 ADDs, some killed: what returned is held, as returned; killed ones may hold or not.
        let b = batch("ADD", &containers, &conf, Some(&mut rng));
        (test_kills, armed) = (test_kills + b.killed_by_test, armed + b.armed);
        let done = returned(&b);
        killed_adds += PROCESSES - done.len();
        let ips: BTreeSet<_> = done.values().collect();
        assert_eq!(
            ips.len(),
            done.len(),
            "round {round}: an address given twice"
        );
        let held = holdings(&store);
        for (c, ip) in &done {
            assert_eq!(
                held.get(c),
                Some(ip),
                "round {round}: the ADD of {c} returned"
            );
        }
        // GC with the ADDs that returned as the valid attachments frees what killed ones took.
        let mut gc: Value = serde_json::from_str(&conf).unwrap();
        gc["cni.dev/valid-attachments"] = done
            .keys()
            .map(|c| json!({"containerID": c, "ifname": "eth0"}))
            .collect();
        let g = batch("GC", &["gc".to_string()], &gc.to_string(), None);
        assert!(matches!(g.ends["gc"], End::Returned(_)));
        assert_eq!(holdings(&store), done, "round {round}: after GC");
        // 64 DELs, some killed; the runtime repeats those, and the pool is empty.
        let d = batch("DEL", &containers, &conf, Some(&mut rng));
        (test_kills, armed) = (test_kills + d.killed_by_test, armed + d.armed);
        let again = killed(&d);
        killed_dels += again.len();
        holdings(&store);
        let r = batch("DEL", &again, &conf, None);
        assert!(killed(&r).is_empty());
        assert!(
            holdings(&store).is_empty(),
            "round {round}: DEL left records"
        );
        // And 64 ADDs succeed with distinct addresses; then all are freed.
        let a = batch("ADD", &containers, &conf, None);
        let all = returned(&a);
        assert_eq!(all.len(), PROCESSES);
        assert_eq!(all.values().collect::<BTreeSet<_>>().len(), PROCESSES);
        assert_eq!(holdings(&store), all);
        let _ = batch("DEL", &containers, &conf, None);
        assert!(holdings(&store).is_empty());
        eprintln!(
            "round {round}: {} of {PROCESSES} ADDs and {} DELs killed",
            PROCESSES - done.len(),
            again.len()
        );
    }
    eprintln!(
        "seed {seed}: {ROUNDS} rounds, {test_kills} SIGKILLs sent, {armed} failpoints armed, \
         {killed_adds} ADDs and {killed_dels} DELs died"
    );
}
