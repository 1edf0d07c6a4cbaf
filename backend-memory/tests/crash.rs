//! Kill -9 at every write step of the local store (the `failpoints` feature): this test binary
//! runs itself again as a child that commits with `SPIDERPOOL_FAILPOINT` naming a step and
//! dies there; the parent then reopens the store. It must load, hold exactly the old or the
//! new state (whichever the step implies), and take the next commit. The same with the
//! allocation driver: ADDs killed at every step leave the pool's records, its count and the
//! endpoints agreeing, and every ADD that returned still recorded.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use backend_memory::{LocalStore, FAILPOINT_ENV, FAILPOINT_STEPS};
use serde_json::Value;
use spiderpool_core::ipam::{Ipam, NoPause};
use spiderpool_core::model::{Object, SpiderEndpoint, SpiderIPPool, SpiderReservedIP};
use spiderpool_core::store::{Key, Store, Write};
use spiderpool_testkit::check_invariants;
use spiderpool_testkit::fixtures::{add, block_on_ready, del, pool, reserved};

/// The child's role (`commit-small`, `commit-big`, `add`), its store and its argument.
const ROLE: &str = "CRASH_TEST_ROLE";
const DIR: &str = "CRASH_TEST_DIR";
const ARG: &str = "CRASH_TEST_ARG";

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Exited 0, with what it printed on lines starting `OUT `.
    Returned(Vec<String>),
    /// Killed by a signal (the failpoint).
    Killed,
}

/// Runs this test binary again as a child playing `role` on the store `dir`, dying at `step`.
fn child(role: &str, dir: &Path, arg: &str, step: &str) -> End {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(DIR, dir)
        .env(ARG, arg)
        .env(FAILPOINT_ENV, step)
        .output()
        .unwrap();
    if let Some(sig) = out.status.signal() {
        assert_eq!(
            sig, 9,
            "{role} at {step}: killed by signal {sig}, not SIGKILL"
        );
        return End::Killed;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{role} at {step}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("OUT "))
        .map(str::to_string)
        .collect();
    assert!(
        role != "add" || printed.len() == 1,
        "{role} at {step}: {stdout}"
    );
    End::Returned(printed)
}

/// The child's side: does nothing unless this process was started by [`child`].
#[test]
fn child_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let store = LocalStore::open(std::env::var(DIR).unwrap()).unwrap();
    let arg = std::env::var(ARG).unwrap();
    match role.as_str() {
        "commit-small" => the_commit(&store, false),
        "commit-big" => the_commit(&store, true),
        "add" => {
            let got = block_on_ready(ipam(&store).allocate(&pod(&arg))).unwrap();
            println!("\nOUT {}", got[0].ipv4.as_deref().unwrap());
        }
        other => panic!("unknown role {other}"),
    }
}

/// An annotation of `len` bytes: makes an object's every journal record that large.
fn padded(mut object: SpiderIPPool, len: usize) -> Object {
    object
        .metadata
        .annotations
        .insert("padding".into(), "x".repeat(len));
    Object::IpPool(object)
}

/// The commit that the children die in: three writes at once (update `p`, delete `r`, create
/// `n`), small, or big enough (> 64 KiB) that the journal is folded into a new snapshot.
fn the_commit(store: &LocalStore, big: bool) {
    let p = block_on_ready(store.get(&Key::pool("p"))).unwrap().unwrap();
    let Object::IpPool(mut object) = p.object else {
        panic!("p is not a pool")
    };
    object
        .metadata
        .annotations
        .insert("changed".into(), "yes".into());
    let r = block_on_ready(store.get(&Key::cluster(SpiderReservedIP::KIND, "r")))
        .unwrap()
        .unwrap();
    let n = pool("n", "subnet: 10.9.0.0/24\nips: [10.9.0.1-10.9.0.9]");
    block_on_ready(store.commit(vec![
        Write::Update {
            object: Object::IpPool(object),
            expected: p.revision,
        },
        Write::Delete {
            key: Key::cluster(SpiderReservedIP::KIND, "r"),
            expected: r.revision,
        },
        Write::Create(padded(n, if big { 80 << 10 } else { 10 })),
    ]))
    .unwrap();
}

const KINDS: [&str; 3] = [
    SpiderIPPool::KIND,
    SpiderReservedIP::KIND,
    SpiderEndpoint::KIND,
];

/// Every object of the store read by a fresh process (a new `LocalStore`): key, revision,
/// JSON.
fn dump(dir: &Path) -> Vec<(String, String, Value)> {
    let store = LocalStore::open(dir).unwrap();
    let mut out = Vec::new();
    for kind in KINDS {
        for s in block_on_ready(store.list(kind))
            .unwrap_or_else(|e| panic!("{}: the store does not load: {e}", dir.display()))
        {
            let key = Key::of(&s.object).to_string();
            out.push((key, s.revision.0, s.object.to_value()));
        }
    }
    out
}

/// A copy of the store directory `from` at `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The starting states the commit runs on.
struct Templates {
    _root: tempfile::TempDir,
    /// One commit: a snapshot and no journal.
    snapshot_only: PathBuf,
    /// Two more commits in the journal.
    journal: PathBuf,
    /// The same, and a record torn by a child killed half-way through writing it.
    torn: PathBuf,
    /// The first state in the older single-document format, which a commit rewrites.
    v1: PathBuf,
}

fn templates() -> Templates {
    let root = tempfile::tempdir().unwrap();
    let snapshot_only = root.path().join("snapshot-only");
    let store = LocalStore::open(&snapshot_only).unwrap();
    block_on_ready(store.commit(vec![
        Write::Create(Object::IpPool(pool(
            "p",
            "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.50]",
        ))),
        Write::Create(Object::ReservedIp(reserved("r", &["10.6.0.7"]))),
    ]))
    .unwrap();
    assert!(!snapshot_only.join("store.journal").exists());
    let journal = root.path().join("journal");
    copy_dir(&snapshot_only, &journal);
    let store = LocalStore::open(&journal).unwrap();
    let q = pool("q", "subnet: 10.8.0.0/24\nips: [10.8.0.1-10.8.0.9]");
    block_on_ready(store.create(Object::IpPool(q.clone()))).unwrap();
    let rev = block_on_ready(store.get(&Key::pool("q")))
        .unwrap()
        .unwrap()
        .revision;
    block_on_ready(store.update(padded(q, 100), &rev)).unwrap();
    let torn = root.path().join("torn");
    copy_dir(&journal, &torn);
    let before = content(&torn.join("store.journal")).len();
    assert_eq!(
        child("commit-small", &torn, "", "journal-half-written"),
        End::Killed
    );
    let after = content(&torn.join("store.journal")).len();
    assert!(after > before, "no torn record: {before} -> {after} bytes");
    let v1 = root.path().join("v1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::set_permissions(&v1, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let objects: Vec<Value> = dump(&snapshot_only)
        .into_iter()
        .map(|(_, rev, object)| serde_json::json!({"revision": rev.parse::<u64>().unwrap(), "object": object}))
        .collect();
    let doc = serde_json::json!({"format": "spiderpool-rs/local-store/v1", "revision": 2, "objects": objects});
    std::fs::write(v1.join("store.json"), doc.to_string()).unwrap();
    assert_eq!(dump(&v1), dump(&snapshot_only));
    Templates {
        _root: root,
        snapshot_only,
        journal,
        torn,
        v1,
    }
}

/// Whether a kill -9 at `step` leaves the new state (the page cache survives a killed
/// process: once the record is written, or the new snapshot renamed, the commit is visible).
fn leaves_new_state(step: &str) -> bool {
    matches!(
        step,
        "journal-written"
            | "journal-synced"
            | "snapshot-renamed"
            | "snapshot-dir-synced"
            | "journal-emptied"
            | "journal-emptied-synced"
    )
}

#[test]
fn a_kill_at_every_write_step_leaves_the_old_or_the_new_state() {
    let t = templates();
    let work = tempfile::tempdir().unwrap();
    let cases = [
        ("commit-small", &t.snapshot_only),
        ("commit-small", &t.torn),
        ("commit-big", &t.journal),
        ("commit-big", &t.torn),
        ("commit-small", &t.v1),
    ];
    let mut killed_at = BTreeSet::new();
    let (mut runs, mut kills) = (0, 0);
    for (c, (role, template)) in cases.iter().enumerate() {
        // The old state, and the new one: the same commit on a copy, without dying.
        let old = dump(template);
        let reference = work.path().join(format!("new-{c}"));
        copy_dir(template, &reference);
        the_commit(
            &LocalStore::open(&reference).unwrap(),
            *role == "commit-big",
        );
        let new = dump(&reference);
        assert_ne!(old, new);
        for step in FAILPOINT_STEPS {
            runs += 1;
            let dir = work.path().join(format!("{c}-{step}"));
            copy_dir(template, &dir);
            let what = format!("{role} on {} at {step}", template.display());
            let end = child(role, &dir, "", step);
            let got = dump(&dir);
            if end == End::Killed {
                kills += 1;
                killed_at.insert(*step);
                let want = if leaves_new_state(step) { &new } else { &old };
                assert!(
                    &got == want,
                    "{what}: neither the old nor the new state: {got:#?}"
                );
            } else {
                // The step is not on this commit's path: the commit returned.
                assert!(got == new, "{what}: a returned commit is lost");
            }
            // The store takes the next commit, and a fresh process reads it.
            let store = LocalStore::open(&dir).unwrap();
            let z = pool("z", "subnet: 10.10.0.0/24\nips: [10.10.0.1]");
            block_on_ready(store.create(Object::IpPool(z)))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let after = dump(&dir);
            assert_eq!(after.len(), got.len() + 1, "{what}");
            let z = after.iter().find(|(k, _, _)| k.ends_with(" z")).unwrap();
            let top = got.iter().map(|(_, r, _)| r.parse::<u64>().unwrap()).max();
            assert!(z.1.parse::<u64>().unwrap() > top.unwrap(), "{what}: {z:?}");
        }
    }
    let missed: Vec<_> = FAILPOINT_STEPS
        .iter()
        .filter(|s| !killed_at.contains(*s))
        .collect();
    assert!(missed.is_empty(), "steps no commit reached: {missed:?}");
    eprintln!(
        "{} steps, {runs} commits run, {kills} killed",
        FAILPOINT_STEPS.len()
    );
}

fn ipam(store: &LocalStore) -> Ipam<LocalStore> {
    Ipam::new(store.clone()).with_retries(5, NoPause)
}

fn pod(i: &str) -> spiderpool_core::request::AllocateRequest {
    add("ns", &format!("pod{i}"), &format!("uid{i}"))
}

/// The address each pod holds, as its endpoint lists it.
fn held(store: &LocalStore) -> Vec<(String, String)> {
    block_on_ready(store.list(SpiderEndpoint::KIND))
        .unwrap()
        .into_iter()
        .filter_map(|s| match s.object {
            Object::Endpoint(e) => Some(e),
            _ => None,
        })
        .map(|e| {
            let ip = e.status.current.ips[0].ipv4.clone().unwrap_or_default();
            (e.metadata.name, ip)
        })
        .collect()
}

#[test]
fn allocations_killed_at_every_write_step_keep_records_and_endpoints_agreeing() {
    let mut kills = 0;
    for step in FAILPOINT_STEPS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = LocalStore::open(&path).unwrap();
        // Every allocation rewrites the pool's 20 KiB: the journal is folded every few.
        let p = pool(
            "p",
            "subnet: 10.6.0.0/24\nips: [10.6.0.1-10.6.0.200]\ndefault: true",
        );
        block_on_ready(store.create(padded(p, 20 << 10))).unwrap();
        let mut returned: Vec<(String, String)> = Vec::new();
        // The pod being added, and the address it held after its last ADD was killed.
        let (mut i, mut recorded, mut hit) = (0, None, false);
        for attempt in 0.. {
            assert!(attempt < 24, "no ADD reached {step}");
            // The second ADD tears a record, so that the next one cuts it off.
            let arm = if attempt == 1 {
                "journal-half-written"
            } else {
                step
            };
            let name = i.to_string();
            let ip = match child("add", &path, &name, arm) {
                End::Returned(out) => out[0].clone(),
                End::Killed => {
                    kills += 1;
                    let what = format!("ADD pod{i} killed at {arm}");
                    block_on_ready(check_invariants(&store))
                        .unwrap_or_else(|e| panic!("{what}: {e:#?}"));
                    let now = held(&store);
                    for r in &returned {
                        assert!(now.contains(r), "{what}: {r:?} returned, now lost: {now:?}");
                    }
                    recorded = now.into_iter().find(|(n, _)| *n == format!("pod{i}"));
                    if arm != *step {
                        continue; // the runtime retries the ADD
                    }
                    // Reached: the last retry here, without dying.
                    hit = true;
                    let got = block_on_ready(ipam(&store).allocate(&pod(&name))).unwrap();
                    got[0].ipv4.clone().unwrap()
                }
            };
            if let Some((_, was)) = recorded.take() {
                assert_eq!(ip, was, "pod{i}: the retried ADD moved the pod");
            }
            returned.push((format!("pod{i}"), ip));
            block_on_ready(check_invariants(&store)).unwrap();
            if hit {
                break;
            }
            i += 1;
        }
        let ips: BTreeSet<_> = returned.iter().map(|(_, ip)| ip).collect();
        assert_eq!(ips.len(), returned.len(), "an address given twice");
        let mut now = held(&store);
        now.sort();
        returned.sort();
        assert_eq!(
            now, returned,
            "{step}: the endpoints are not the ADDs that returned"
        );
        // DEL of every pod empties the pool.
        for (name, _) in &returned {
            let i = name.trim_start_matches("pod");
            block_on_ready(ipam(&store).release(&del("ns", name, &format!("uid{i}")))).unwrap();
        }
        let s = block_on_ready(LocalStore::open(&path).unwrap().get(&Key::pool("p")))
            .unwrap()
            .unwrap();
        let Object::IpPool(p) = s.object else {
            panic!()
        };
        assert_eq!(p.allocations().unwrap().len(), 0, "{step}");
        assert_eq!(p.status.allocated_ip_count.unwrap_or(0), 0, "{step}");
        assert!(held(&store).is_empty());
    }
    eprintln!("{} steps, {kills} ADDs killed", FAILPOINT_STEPS.len());
}

/// A process that read the journal with a torn record at its end (left by a process killed
/// while writing it) must not take that reading as current once another process has cut the
/// record off and appended its own: file times are coarse (a few milliseconds), so the file
/// may have the same inode, size and time as when it was read. The cached reading would cut
/// the other process's committed record off as "torn" on its next commit: a lost allocation.
#[test]
fn a_torn_record_replaced_by_one_of_the_same_size_and_time_is_not_cut_off() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("s");
    let a = LocalStore::open(&dir).unwrap();
    let new_pool = |name: &str| Object::IpPool(pool(name, "subnet: 10.1.0.0/24"));
    block_on_ready(a.create(new_pool("p"))).unwrap();
    block_on_ready(a.create(new_pool("q"))).unwrap();
    let journal = dir.join("store.journal");
    let valid = content(&journal);
    // The record B will write, learnt on a copy; the same bytes, damaged, as a torn tail.
    let copy = root.path().join("copy");
    copy_dir(&dir, &copy);
    block_on_ready(LocalStore::open(&copy).unwrap().create(new_pool("b"))).unwrap();
    let record = content(&copy.join("store.journal"))[valid.len()..].to_vec();
    let mut torn = record.clone();
    *torn.last_mut().unwrap() ^= 1;
    std::fs::write(&journal, [valid.clone(), torn].concat()).unwrap();
    // A reads (the torn record ignored); B cuts it off and commits in the same clock tick.
    assert!(block_on_ready(a.get(&Key::pool("b"))).unwrap().is_none());
    let read_at = std::fs::metadata(&journal).unwrap().modified().unwrap();
    block_on_ready(LocalStore::open(&dir).unwrap().create(new_pool("b"))).unwrap();
    assert_eq!(content(&journal), [valid, record].concat());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap();
    f.set_modified(read_at).unwrap();
    drop(f);
    // A commits next: B's record is kept.
    block_on_ready(a.create(new_pool("c"))).unwrap();
    let fresh = LocalStore::open(&dir).unwrap();
    for name in ["p", "q", "b", "c"] {
        let got = block_on_ready(fresh.get(&Key::pool(name))).unwrap();
        assert!(got.is_some(), "pool {name} was lost");
    }
}

/// A journal's records: the file without the zeros kept after them.
fn content(journal: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(journal).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    bytes.truncate(end);
    bytes
}
