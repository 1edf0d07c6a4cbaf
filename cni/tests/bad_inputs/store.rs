//! Damaged local store directories. Each case starts from a store holding pools `p1` (in the
//! snapshot `store.json`) and `p2`, `p3` (two journal records), damages it, then reads it
//! through the library (`LocalStore::open`, then `list`) and runs a CNI ADD with the plugin
//! binary: both must fail with a named error, and every file must stay byte-for-byte as it
//! was (and no file appear).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use backend_memory::LocalStore;
use serde_json::Value;
use spiderpool_core::model::Object;
use spiderpool_core::store::Store;
use spiderpool_testkit::fixtures::pool;

use crate::{case, check, core_kind, each, mem_kind, no_panic, run, runtime, snapshot, Case};

/// Damage done to the store directory.
pub type Damage = fn(&Path);

const HEADER_V2: &str =
    "{\"format\":\"spiderpool-rs/local-store/v2\",\"objects\":1,\"revision\":1}";

fn data(dir: &Path) -> std::path::PathBuf {
    dir.join("store.json")
}

fn journal(dir: &Path) -> std::path::PathBuf {
    dir.join("store.journal")
}

/// The snapshot with its first line replaced.
fn set_header(dir: &Path, header: &str) {
    let text = std::fs::read_to_string(data(dir)).unwrap();
    let body = text.split_once('\n').unwrap().1;
    std::fs::write(data(dir), format!("{header}\n{body}")).unwrap();
}

/// The snapshot's object line for `p1`, changed by `f`.
fn edit_line(dir: &Path, f: impl Fn(&str) -> String) {
    let text = std::fs::read_to_string(data(dir)).unwrap();
    let (header, line) = text.split_once('\n').unwrap();
    let line = line.strip_suffix('\n').unwrap();
    std::fs::write(data(dir), format!("{header}\n{}", f(line))).unwrap();
}

/// 64-bit FNV-1a, the journal's record checksum.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A well-checksummed journal record: `#before count len checksum`, then the body.
fn record(before: u64, count: u64, body: &[u8]) -> Vec<u8> {
    let mut out = format!("#{before} {count} {} {:016x}\n", body.len(), fnv(body)).into_bytes();
    out.extend_from_slice(body);
    out
}

/// A pool's JSON as the journal holds it.
const P9: &str = r#"{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderIPPool","metadata":{"name":"p9"},"spec":{"subnet":"10.9.0.0/24"}}"#;

fn cases() -> Vec<Case<Damage>> {
    const S: &str = "Ipam::Storage";
    vec![
        case("store-data-garbage", |d| std::fs::write(data(d), "not json at all").unwrap(), S, "store.json: corrupt store file, left untouched: expected ident at line 1 column 2"),
        case("store-data-empty-object", |d| std::fs::write(data(d), "{}").unwrap(), S, "store.json: unknown store format \"\" (this version reads \"spiderpool-rs/local-store/v2\"), left untouched"),
        case("store-format-v9", |d| set_header(d, "{\"format\":\"spiderpool-rs/local-store/v9\",\"objects\":1,\"revision\":1}"), S, "store.json: unknown store format \"spiderpool-rs/local-store/v9\" (this version reads \"spiderpool-rs/local-store/v2\"), left untouched"),
        case("store-format-a-number", |d| set_header(d, "{\"format\":2,\"objects\":1,\"revision\":1}"), S, "store.json: unknown store format \"2\""),
        case("store-header-no-revision", |d| set_header(d, "{\"format\":\"spiderpool-rs/local-store/v2\",\"objects\":1}"), S, "store.json: corrupt store file, left untouched: header: missing revision"),
        case("store-header-count-wrong", |d| set_header(d, "{\"format\":\"spiderpool-rs/local-store/v2\",\"objects\":5,\"revision\":1}"), S, "corrupt store file, left untouched: 1 objects, the header says 5"),
        case("store-header-count-u64-max", |d| set_header(d, "{\"format\":\"spiderpool-rs/local-store/v2\",\"objects\":18446744073709551615,\"revision\":1}"), S, "1 objects, the header says 18446744073709551615"),
        case("store-line-no-tabs", |d| edit_line(d, |_| "garbage\n".into()), S, "store.json: corrupt store file, left untouched: line 2: not an object line"),
        case("store-line-revision-ahead", |d| edit_line(d, |l| format!("{}\n", l.replacen("\tp1\t1\t", "\tp1\t7\t", 1))), S, "line 2: bad revision"),
        case("store-line-revision-text", |d| edit_line(d, |l| format!("{}\n", l.replacen("\tp1\t1\t", "\tp1\tone\t", 1))), S, "line 2: bad revision"),
        case("store-lines-out-of-order", |d| edit_line(d, |l| format!("{l}\n{l}\n")), S, "line 3: keys out of order"),
        case("store-line-truncated", |d| edit_line(d, |l| l[..l.len() - 20].to_string()), S, "line 2: not terminated"),
        case("store-object-garbled", |d| edit_line(d, |l| format!("{}\n", l.replacen("{\"apiVersion\"", "{apiVersion", 1))), S, "store.json: corrupt store file, left untouched: SpiderIPPool  p1: key must be a string"),
        case("store-object-wrong-key", |d| edit_line(d, |l| format!("{}\n", l.replacen("\"name\":\"p1\"", "\"name\":\"p0\"", 1))), S, "SpiderIPPool  p1: the object does not match its key"),
        case("store-object-bad-field", |d| edit_line(d, |l| format!("{}\n", l.replacen("\"subnet\":\"10.1.0.0/24\"", "\"subnet\":5", 1))), S, "store.json: corrupt store file, left untouched: SpiderIPPool  p1: SpiderIPPool \"p1\": spec.subnet: invalid type: integer `5`"),
        case("store-data-not-utf8", |d| {
            let bytes = std::fs::read(data(d)).unwrap();
            let at = bytes.windows(4).position(|w| w == b"\tp1\t").unwrap() + 2;
            let mut bad = bytes.clone();
            bad[at] = 0xff;
            std::fs::write(data(d), bad).unwrap();
        }, S, "store.json: corrupt store file, left untouched: line 2: invalid utf-8 sequence of 1 bytes from index"),
        case("store-v1-object-no-revision", |d| std::fs::write(data(d), r#"{"format":"spiderpool-rs/local-store/v1","revision":1,"objects":[{"object":{}}]}"#).unwrap(), S, "corrupt store file, left untouched: objects[0]: missing revision"),
        case("store-v1-revision-ahead", |d| std::fs::write(data(d), format!(r#"{{"format":"spiderpool-rs/local-store/v1","revision":1,"objects":[{{"revision":9,"object":{P9}}}]}}"#)).unwrap(), S, "objects[0]: revision 9 beyond the store revision 1"),
        case("store-journal-checksum-middle", |d| {
            let mut j = std::fs::read(journal(d)).unwrap();
            let at = j.iter().position(|b| *b == b'\n').unwrap() + 10;
            j[at] ^= 1;
            std::fs::write(journal(d), j).unwrap();
        }, S, "store.journal: corrupt store file, left untouched: byte 0: checksum mismatch"),
        case("store-journal-garbage-middle", |d| {
            let j = std::fs::read(journal(d)).unwrap();
            let mut out = b"garbage line\n".to_vec();
            out.extend(j);
            std::fs::write(journal(d), out).unwrap();
        }, S, "store.journal: corrupt store file, left untouched: byte 0: not a journal record"),
        case("store-journal-revision-gap", |d| {
            std::fs::write(journal(d), record(7, 1, format!("+\tSpiderIPPool\t\tp9\t8\t{P9}\t\n").as_bytes())).unwrap();
        }, S, "byte 0: starts at revision 7, the store is at 1"),
        case("store-journal-out-of-sequence", |d| {
            std::fs::write(journal(d), record(1, 1, format!("+\tSpiderIPPool\t\tp9\t5\t{P9}\t\n").as_bytes())).unwrap();
        }, S, "store.journal: corrupt store file, left untouched: byte 26: not a change in sequence"),
        case("store-journal-fewer-changes", |d| {
            std::fs::write(journal(d), record(1, 2, format!("+\tSpiderIPPool\t\tp9\t2\t{P9}\t\n").as_bytes())).unwrap();
        }, S, "byte 0: fewer changes than announced"),
        case("store-journal-patch-missing-object", |d| {
            std::fs::write(journal(d), record(1, 1, format!("~\tSpiderIPPool\t\tp9\t2\t{P9}\t0\t0\tx\n").as_bytes())).unwrap();
        }, S, "a patch of a missing object"),
        case("store-journal-patch-beyond-object", |d| {
            std::fs::write(journal(d), record(1, 1, format!("~\tSpiderIPPool\t\tp1\t2\t{P9}\t5\t5\tx\n").as_bytes())).unwrap();
        }, S, "a patch beyond the object"),
        case("store-journal-not-utf8", |d| {
            std::fs::write(journal(d), record(1, 1, b"+\tSpiderIPPool\t\tp\xff\t2\t{}\t\n")).unwrap();
        }, S, "byte 0: not UTF-8"),
        case("store-data-a-directory", |d| {
            std::fs::remove_file(data(d)).unwrap();
            std::fs::create_dir(data(d)).unwrap();
        }, S, "store.json: Is a directory"),
        case("store-dir-world-writable", |d| {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        }, "Store::InsecureDirectory", "store directory is writable by group or others (mode 777); make it 0700"),
        case("store-dir-group-writable", |d| {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o770)).unwrap();
        }, "Store::InsecureDirectory", "(mode 770)"),
        case("store-dir-a-file", |d| {
            std::fs::remove_dir_all(d).unwrap();
            std::fs::write(d, "not a directory").unwrap();
        }, "Store::NotADirectory", "store: the store location is not a directory"),
    ]
}

/// The ids of the table.
pub fn ids() -> Vec<&'static str> {
    cases().iter().map(|c| c.id).collect()
}

/// A store with `p1` in the snapshot and `p2`, `p3` in two journal records.
fn seed(dir: &Path) {
    let store = LocalStore::open(dir).unwrap();
    let rt = runtime();
    for (name, subnet) in [
        ("p1", "10.1.0.0/24"),
        ("p2", "10.2.0.0/24"),
        ("p3", "10.3.0.0/24"),
    ] {
        let p = pool(
            name,
            &format!(
                "subnet: {subnet}\nips: [{}]",
                subnet.replace(".0/24", ".10")
            ),
        );
        rt.block_on(store.create(Object::IpPool(p))).unwrap();
    }
    assert!(std::fs::metadata(journal(dir)).unwrap().len() > 0);
    let text = std::fs::read_to_string(data(dir)).unwrap();
    assert!(text.starts_with(HEADER_V2), "{text}");
}

#[test]
fn damaged_stores_give_named_errors_and_stay_untouched() {
    let rt = runtime();
    each(cases(), |c| {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("store");
        seed(&dir);
        (c.input)(&dir);
        let before = snapshot(top.path());
        // The library.
        let (kind, message) = no_panic(c.id, || match LocalStore::open(&dir) {
            Err(e) => (format!("Store::{}", mem_kind(&e)), e.to_string()),
            Ok(store) => match rt.block_on(store.list("SpiderIPPool")) {
                Err(e) => (format!("Ipam::{}", core_kind(&e)), e.to_string()),
                Ok(all) => panic!("{}: read {} pools", c.id, all.len()),
            },
        });
        check(c, &kind, &message);
        assert_eq!(
            snapshot(top.path()),
            before,
            "{}: reading changed the files",
            c.id
        );
        // The plugin: an ADD that would write an endpoint and an allocation.
        let conf = format!(
            r#"{{"cniVersion":"1.0.0","name":"lab","type":"bridge","ipam":{{"type":"spiderpool","store":"{}","default_ipv4_ippool":["p1"]}}}}"#,
            dir.display()
        );
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_spiderpool"));
        cmd.env_clear().envs([
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/var/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
        ]);
        let out = run(c.id, &mut cmd, conf.as_bytes());
        assert_eq!(out.code, 1, "{}: {out:?}", c.id);
        let reply: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(reply["code"], 102, "{}: {reply}", c.id);
        check(c, &kind, reply["msg"].as_str().unwrap_or_default());
        assert_eq!(
            snapshot(top.path()),
            before,
            "{}: the ADD changed the files",
            c.id
        );
        // Let the temporary directory be removed.
        if dir.is_dir() {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
    });
}
