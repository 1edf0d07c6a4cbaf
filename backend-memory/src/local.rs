//! The local file store: one directory, shared by every plugin process on the host.
//!
//! Files in the directory:
//! - `store.json`: a snapshot of every object with its revision;
//! - `store.journal`: the transactions committed since that snapshot, appended in order;
//! - `store.lock`: held exclusively (`flock`) around every read–decide–write;
//! - `.store.json.tmp`: the next snapshot while it is being written.
//!
//! A commit appends one checksummed record to the journal and flushes it (`fdatasync`) before
//! it returns, so a returned commit survives a crash. When the journal outgrows the snapshot,
//! the next commit writes a new snapshot instead: to the temporary file, flushed, renamed over
//! `store.json`, and the directory flushed, so a crash leaves either the old or the new
//! snapshot, never a torn one; the journal is then emptied (records the snapshot already holds
//! are skipped if a crash comes first). A record cut short at the end of the journal is one
//! whose commit never returned: it is ignored, and the next writer cuts it off. Anything else
//! that does not decode, or of an unknown format, is an error that names the file; it is never
//! overwritten.
//!
//! The snapshot (format `spiderpool-rs/local-store/v2`) is a JSON header line, then one line
//! per object, sorted by key: `kind TAB namespace TAB name TAB revision TAB object-json`. A
//! process indexes the lines without decoding them and decodes only the objects it reads, so
//! an allocation does not pay for the thousands of endpoints a full pool has. Within one
//! process the state is kept between operations and read again only when the files changed
//! (checked under the lock). The older single-document format (`…/v1`) is still read; the
//! first commit rewrites it as a v2 snapshot. Files are created `0600`, the directory `0700`,
//! and a directory writable by others is refused.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek as _, SeekFrom, Write as _};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use spiderpool_core::model::{object_from_value, Object};
use spiderpool_core::store::{Key, Revision, Store, Stored, Write};

use crate::Error;

const FORMAT_V1: &str = "spiderpool-rs/local-store/v1";
const FORMAT: &str = "spiderpool-rs/local-store/v2";
const DATA: &str = "store.json";
const JOURNAL: &str = "store.journal";
const LOCK: &str = "store.lock";
const TEMP: &str = ".store.json.tmp";
/// The journal is folded into a new snapshot once it is larger than this and the snapshot.
const MIN_COMPACT_BYTES: usize = 1 << 20;

/// The local file store. See the module docs for the on-disk layout and guarantees.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
    lock_timeout: Duration,
    cache: Cache,
}

/// The state read by this process, shared by clones of the store.
#[derive(Clone, Default)]
struct Cache(Arc<Mutex<Option<State>>>);

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cache")
    }
}

/// What identifies the files' contents cheaply: device, inode, size and modification time.
type FileId = Option<(u64, u64, u64, i64, i64)>;

fn file_id(path: &Path) -> Result<FileId, Error> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some((
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// One object line of the snapshot, by byte ranges into it.
#[derive(Debug, Clone)]
struct Line {
    key: Range<usize>,
    rev: u64,
    json: Range<usize>,
}

/// The store's state: the snapshot's lines, undecoded, and the journal's changes over them.
struct State {
    snapshot_id: FileId,
    journal_id: FileId,
    /// The store revision: incremented by every write.
    revision: u64,
    /// The snapshot file (or a v1 file converted to lines: `legacy`).
    base: Vec<u8>,
    lines: Vec<Line>,
    legacy: bool,
    /// The journal's valid records, and its changes: encoded key → revision and object JSON
    /// (a range of `journal`), or `None` when deleted.
    journal: Vec<u8>,
    overlay: BTreeMap<Vec<u8>, Option<(u64, Range<usize>)>>,
}

impl State {
    fn empty(snapshot_id: FileId, journal_id: FileId) -> Self {
        State {
            snapshot_id,
            journal_id,
            revision: 0,
            base: Vec::new(),
            lines: Vec::new(),
            legacy: false,
            journal: Vec::new(),
            overlay: BTreeMap::new(),
        }
    }

    /// The revision and JSON of `key` (encoded), if present.
    fn lookup(&self, key: &[u8]) -> Option<(u64, &[u8])> {
        if let Some(change) = self.overlay.get(key) {
            return change
                .as_ref()
                .map(|(rev, r)| (*rev, &self.journal[r.clone()]));
        }
        let i = self
            .lines
            .binary_search_by(|l| self.base[l.key.clone()].cmp(key))
            .ok()?;
        let l = &self.lines[i];
        Some((l.rev, &self.base[l.json.clone()]))
    }

    /// Every object of `kind`: encoded key, revision, JSON.
    fn of_kind(&self, kind: &str) -> Vec<(&[u8], u64, &[u8])> {
        let mut prefix = Vec::new();
        escape_into(&mut prefix, kind);
        prefix.push(b'\t');
        let start = self
            .lines
            .partition_point(|l| self.base[l.key.clone()] < prefix[..]);
        let mut out: Vec<(&[u8], u64, &[u8])> = self.lines[start..]
            .iter()
            .map(|l| (&self.base[l.key.clone()], l))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !self.overlay.contains_key(*k))
            .map(|(k, l)| (k, l.rev, &self.base[l.json.clone()]))
            .collect();
        for (k, change) in self.overlay.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            if let Some((rev, r)) = change {
                out.push((k, *rev, &self.journal[r.clone()]));
            }
        }
        out
    }

    /// Every object, sorted by encoded key.
    fn all(&self) -> Vec<(&[u8], u64, &[u8])> {
        let mut out: Vec<(&[u8], u64, &[u8])> = self
            .lines
            .iter()
            .map(|l| (&self.base[l.key.clone()], l))
            .filter(|(k, _)| !self.overlay.contains_key(*k))
            .map(|(k, l)| (k, l.rev, &self.base[l.json.clone()]))
            .collect();
        for (k, change) in &self.overlay {
            if let Some((rev, r)) = change {
                out.push((k, *rev, &self.journal[r.clone()]));
            }
        }
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }
}

/// Appends `s` with `%`, TAB and newline escaped, so that key fields split on TAB.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'%' => out.extend_from_slice(b"%25"),
            b'\t' => out.extend_from_slice(b"%09"),
            b'\n' => out.extend_from_slice(b"%0A"),
            b'\r' => out.extend_from_slice(b"%0D"),
            _ => out.push(b),
        }
    }
}

/// `kind TAB (empty | "+" namespace) TAB name`, escaped.
fn encode_key(key: &Key) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.kind.len() + key.name.len() + 24);
    escape_into(&mut out, &key.kind);
    out.push(b'\t');
    if let Some(ns) = &key.namespace {
        out.push(b'+');
        escape_into(&mut out, ns);
    }
    out.push(b'\t');
    escape_into(&mut out, &key.name);
    out
}

/// 64-bit FNV-1a: the journal records' checksum (detects torn and damaged records).
fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn parse_u64(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Writes the store revision into the object's `metadata.resourceVersion`.
fn with_revision(mut o: Object, rev: u64) -> Object {
    let meta = match &mut o {
        Object::IpPool(x) => Some(&mut x.metadata),
        Object::Subnet(x) => Some(&mut x.metadata),
        Object::ReservedIp(x) => Some(&mut x.metadata),
        Object::Endpoint(x) => Some(&mut x.metadata),
        Object::Other(_) => None,
    };
    if let Some(m) = meta {
        m.resource_version = Some(rev.to_string());
    }
    o
}

/// Whether `write` may be applied to an object now at revision `current`.
fn check(write: &Write, key: &Key, current: Option<u64>) -> Result<(), spiderpool_core::Error> {
    use spiderpool_core::Error as E;
    match (write, current) {
        (Write::Create(_), Some(_)) => Err(E::AlreadyExists {
            kind: key.kind.clone(),
            name: key
                .namespace
                .as_ref()
                .map_or(key.name.clone(), |ns| format!("{ns}/{}", key.name)),
        }),
        (Write::Update { .. } | Write::Delete { .. }, None) => Err(E::NotFound {
            key: key.to_string(),
        }),
        (Write::Update { expected, .. } | Write::Delete { expected, .. }, Some(r))
            if expected.0 != r.to_string() =>
        {
            Err(E::Conflict {
                key: key.to_string(),
                expected: expected.0.clone(),
            })
        }
        _ => Ok(()),
    }
}

impl LocalStore {
    /// Opens (creating if needed, mode 0700) the store directory `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        let io = |source| Error::Io {
            path: dir.clone(),
            source,
        };
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io)?;
        }
        let mode = fs::metadata(&dir).map_err(io)?.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(Error::InsecureDirectory {
                path: dir,
                mode: mode & 0o7777,
            });
        }
        Ok(LocalStore {
            dir,
            lock_timeout: Duration::from_secs(10),
            cache: Cache::default(),
        })
    }

    /// Sets how long an operation waits for another process's lock before giving up with a
    /// retryable error (default 10 s).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `f` on the current state under the exclusive lock.
    fn with_state<T>(
        &self,
        f: impl FnOnce(&mut State, &Self) -> Result<T, spiderpool_core::Error>,
    ) -> Result<T, spiderpool_core::Error> {
        let mut cache = self.cache.0.lock().unwrap_or_else(|p| p.into_inner());
        let _lock = self.lock()?;
        let snapshot_id = file_id(&self.dir.join(DATA))?;
        let journal_id = file_id(&self.dir.join(JOURNAL))?;
        let fresh = matches!(&*cache, Some(s) if s.snapshot_id == snapshot_id && s.journal_id == journal_id);
        if !fresh {
            // Drop what may be stale before reading: a failed read leaves nothing cached.
            *cache = None;
            *cache = Some(self.load(snapshot_id, journal_id)?);
        }
        let state = cache
            .as_mut()
            .ok_or_else(|| spiderpool_core::Error::Storage {
                store: self.dir.display().to_string(),
                reason: "no state".into(),
            })?;
        let out = f(state, self);
        if out.is_err() {
            // A failed write may have left the files and the cache apart: read again next time.
            *cache = None;
        }
        out
    }

    fn lock(&self) -> Result<File, Error> {
        let path = self.dir.join(LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        let start = Instant::now();
        let mut pause = Duration::from_micros(200);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(source)) => return Err(Error::Io { path, source }),
            }
            if start.elapsed() >= self.lock_timeout {
                return Err(Error::LockTimeout {
                    path,
                    millis: self.lock_timeout.as_millis(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Reads the snapshot and replays the journal.
    fn load(&self, snapshot_id: FileId, journal_id: FileId) -> Result<State, Error> {
        let path = self.dir.join(DATA);
        let mut state = State::empty(snapshot_id, journal_id);
        match fs::read(&path) {
            Ok(bytes) => self.load_snapshot(&mut state, bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Io { path, source }),
        }
        let jpath = self.dir.join(JOURNAL);
        match fs::read(&jpath) {
            Ok(bytes) => replay(&mut state, bytes, &jpath)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    path: jpath,
                    source,
                })
            }
        }
        Ok(state)
    }

    fn load_snapshot(&self, state: &mut State, bytes: Vec<u8>) -> Result<(), Error> {
        let path = self.dir.join(DATA);
        let corrupt = |reason: String| Error::Corrupt {
            path: path.clone(),
            reason,
        };
        let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
        let header: Option<Value> = serde_json::from_slice(first).ok();
        let format = header
            .as_ref()
            .and_then(|h| h.get("format"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if format != FORMAT {
            return self.load_v1(state, &bytes);
        }
        let header = header.unwrap_or_default();
        let revision = header
            .get("revision")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt("header: missing revision".into()))?;
        let count = header
            .get("objects")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt("header: missing objects".into()))?;
        let mut lines = Vec::with_capacity(count as usize);
        let mut at = first.len() + 1;
        while at < bytes.len() {
            let n = lines.len() + 1;
            let end = bytes[at..]
                .iter()
                .position(|b| *b == b'\n')
                .map(|p| at + p)
                .ok_or_else(|| corrupt(format!("line {}: not terminated", n + 1)))?;
            let line = &bytes[at..end];
            // kind, namespace, name, revision, object.
            let tabs: Vec<usize> = line
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\t')
                .map(|(i, _)| i)
                .take(4)
                .collect();
            let [_, _, t3, t4] = tabs[..] else {
                return Err(corrupt(format!("line {}: not an object line", n + 1)));
            };
            let rev = parse_u64(&line[t3 + 1..t4])
                .filter(|r| *r <= revision)
                .ok_or_else(|| corrupt(format!("line {}: bad revision", n + 1)))?;
            let l = Line {
                key: at..at + t3,
                rev,
                json: at + t4 + 1..end,
            };
            if let Some(prev) = lines.last() {
                let prev: &Line = prev;
                if bytes[prev.key.clone()] >= bytes[l.key.clone()] {
                    return Err(corrupt(format!("line {}: keys out of order", n + 1)));
                }
            }
            lines.push(l);
            at = end + 1;
        }
        if lines.len() as u64 != count {
            return Err(corrupt(format!(
                "{} objects, the header says {count}",
                lines.len()
            )));
        }
        state.revision = revision;
        state.base = bytes;
        state.lines = lines;
        Ok(())
    }

    /// The v1 format: one JSON document; decoded fully and converted to lines.
    fn load_v1(&self, state: &mut State, bytes: &[u8]) -> Result<(), Error> {
        let path = self.dir.join(DATA);
        let corrupt = |reason: String| Error::Corrupt {
            path: path.clone(),
            reason,
        };
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        let format = doc
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if format != FORMAT_V1 {
            return Err(Error::UnknownFormat {
                path,
                found: format.to_string(),
                expected: FORMAT.to_string(),
            });
        }
        let revision = doc
            .get("revision")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt("missing revision".into()))?;
        let items = doc
            .get("objects")
            .and_then(Value::as_array)
            .ok_or_else(|| corrupt("missing objects".into()))?;
        let mut objects = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let rev = item
                .get("revision")
                .and_then(Value::as_u64)
                .ok_or_else(|| corrupt(format!("objects[{i}]: missing revision")))?;
            let value = item
                .get("object")
                .cloned()
                .ok_or_else(|| corrupt(format!("objects[{i}]: missing object")))?;
            let object = object_from_value(&format!("objects[{i}]"), value)
                .map_err(|e| corrupt(e.to_string()))?;
            if rev > revision {
                return Err(corrupt(format!(
                    "objects[{i}]: revision {rev} beyond the store revision {revision}"
                )));
            }
            let json =
                serde_json::to_vec(&object.to_value()).map_err(|e| corrupt(e.to_string()))?;
            if objects
                .insert(encode_key(&Key::of(&object)), (rev, json))
                .is_some()
            {
                return Err(corrupt(format!("objects[{i}]: duplicate key")));
            }
        }
        let (base, lines) = snapshot_lines(objects.iter().map(|(k, (r, j))| (&k[..], *r, &j[..])));
        state.revision = revision;
        state.base = base;
        state.lines = lines;
        state.legacy = true;
        Ok(())
    }

    /// Applies `writes` (all or none) and makes them durable.
    fn commit_writes(
        &self,
        state: &mut State,
        writes: Vec<Write>,
    ) -> Result<u64, spiderpool_core::Error> {
        let mut keys = Vec::with_capacity(writes.len());
        for w in &writes {
            let key = w.key();
            let encoded = encode_key(&key);
            if keys.iter().any(|(k, _)| k == &encoded) {
                return Err(spiderpool_core::Error::Unsupported {
                    what: format!("two writes to {key} in one commit"),
                });
            }
            check(w, &key, state.lookup(&encoded).map(|(r, _)| r))?;
            keys.push((encoded, key));
        }
        let before = state.revision;
        let mut body = Vec::new();
        let mut changes = Vec::with_capacity(writes.len());
        for (i, (w, (encoded, _))) in writes.into_iter().zip(keys).enumerate() {
            let rev = before + i as u64 + 1;
            match w {
                Write::Create(o) | Write::Update { object: o, .. } => {
                    let json =
                        serde_json::to_vec(&with_revision(o, rev).to_value()).map_err(|e| {
                            spiderpool_core::Error::Storage {
                                store: self.dir.display().to_string(),
                                reason: e.to_string(),
                            }
                        })?;
                    body.extend_from_slice(b"+\t");
                    body.extend_from_slice(&encoded);
                    body.extend_from_slice(format!("\t{rev}\t").as_bytes());
                    let start = body.len();
                    body.extend_from_slice(&json);
                    changes.push((encoded, Some((rev, start..body.len()))));
                    body.push(b'\n');
                }
                Write::Delete { .. } => {
                    body.extend_from_slice(b"-\t");
                    body.extend_from_slice(&encoded);
                    body.extend_from_slice(format!("\t{rev}\n").as_bytes());
                    changes.push((encoded, None));
                }
            }
        }
        let count = changes.len() as u64;
        if count == 0 {
            return Ok(before);
        }
        let header = format!(
            "#{before} {count} {} {:016x}\n",
            body.len(),
            checksum(&body)
        );
        let journal_len = state.journal.len();
        let compact = state.legacy
            || state.snapshot_id.is_none()
            || journal_len + body.len() > MIN_COMPACT_BYTES.max(state.base.len());
        if compact {
            // The first write, a v1 file, or a journal larger than the snapshot: fold
            // everything into a new snapshot; the state is read again next time.
            let mut all: BTreeMap<Vec<u8>, (u64, Vec<u8>)> = state
                .all()
                .into_iter()
                .map(|(k, r, j)| (k.to_vec(), (r, j.to_vec())))
                .collect();
            for (k, change) in changes {
                match change {
                    Some((rev, r)) => {
                        all.insert(k, (rev, body[r].to_vec()));
                    }
                    None => {
                        all.remove(&k);
                    }
                }
            }
            self.save_snapshot(before + count, &all)?;
            state.snapshot_id = None;
            state.journal_id = None;
            return Ok(before + count);
        }
        let jpath = self.dir.join(JOURNAL);
        let io = |source| Error::Io {
            path: jpath.clone(),
            source,
        };
        let created = !jpath.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&jpath)
            .map_err(io)?;
        if created {
            fsync_dir(&self.dir)?;
        }
        // Cut off a record a crash left unfinished: its commit never returned.
        if file.metadata().map_err(io)?.len() != journal_len as u64 {
            file.set_len(journal_len as u64).map_err(io)?;
        }
        file.seek(SeekFrom::Start(journal_len as u64)).map_err(io)?;
        let mut record = header.into_bytes();
        let offset = journal_len + record.len();
        record.extend_from_slice(&body);
        file.write_all(&record).map_err(io)?;
        file.sync_data().map_err(io)?;
        state.journal.extend_from_slice(&record);
        for (k, change) in changes {
            let change = change.map(|(rev, r)| (rev, r.start + offset..r.end + offset));
            state.overlay.insert(k, change);
        }
        state.revision = before + count;
        state.journal_id = file_id(&jpath)?;
        Ok(state.revision)
    }

    /// Writes a new snapshot atomically and empties the journal.
    fn save_snapshot(
        &self,
        revision: u64,
        objects: &BTreeMap<Vec<u8>, (u64, Vec<u8>)>,
    ) -> Result<(), Error> {
        let bytes = snapshot_with_header(
            revision,
            objects.iter().map(|(k, (r, j))| (&k[..], *r, &j[..])),
        );
        let tmp = self.dir.join(TEMP);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        let data = self.dir.join(DATA);
        fs::rename(&tmp, &data).map_err(io(&data))?;
        fsync_dir(&self.dir)?;
        // The snapshot holds every journal record now; a crash before this point leaves
        // records it already holds, which are skipped on reading.
        let jpath = self.dir.join(JOURNAL);
        match OpenOptions::new().write(true).open(&jpath) {
            Ok(f) => {
                f.set_len(0).map_err(io(&jpath))?;
                f.sync_all().map_err(io(&jpath))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    path: jpath,
                    source,
                })
            }
        }
        Ok(())
    }

    fn decode(&self, key: &[u8], rev: u64, json: &[u8]) -> Result<Stored, spiderpool_core::Error> {
        let name = String::from_utf8_lossy(key).replace('\t', " ");
        let corrupt = |reason: String| Error::Corrupt {
            path: self.dir.join(DATA),
            reason: format!("{name}: {reason}"),
        };
        let value: Value = serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))?;
        let object = object_from_value(&name, value).map_err(|e| corrupt(e.to_string()))?;
        if encode_key(&Key::of(&object)) != key {
            return Err(corrupt("the object does not match its key".into()).into());
        }
        Ok(Stored {
            object,
            revision: Revision(rev.to_string()),
        })
    }
}

fn fsync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Object lines (sorted by key) and their index.
fn snapshot_lines<'a>(
    objects: impl Iterator<Item = (&'a [u8], u64, &'a [u8])>,
) -> (Vec<u8>, Vec<Line>) {
    let mut out = Vec::new();
    let mut lines = Vec::new();
    for (k, rev, json) in objects {
        let start = out.len();
        out.extend_from_slice(k);
        let key = start..out.len();
        out.extend_from_slice(format!("\t{rev}\t").as_bytes());
        let j = out.len();
        out.extend_from_slice(json);
        lines.push(Line {
            key,
            rev,
            json: j..out.len(),
        });
        out.push(b'\n');
    }
    (out, lines)
}

/// A v2 snapshot file: the header line, then the object lines.
fn snapshot_with_header<'a>(
    revision: u64,
    objects: impl ExactSizeIterator<Item = (&'a [u8], u64, &'a [u8])>,
) -> Vec<u8> {
    let header =
        serde_json::json!({"format": FORMAT, "revision": revision, "objects": objects.len()});
    let mut out = header.to_string().into_bytes();
    out.push(b'\n');
    let (body, _) = snapshot_lines(objects);
    out.extend_from_slice(&body);
    out
}

/// Replays the journal's records over the snapshot.
fn replay(state: &mut State, bytes: Vec<u8>, path: &Path) -> Result<(), Error> {
    let corrupt = |at: usize, reason: &str| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("byte {at}: {reason}"),
    };
    let mut at = 0;
    let mut valid = 0;
    let mut overlay = BTreeMap::new();
    let mut revision = state.revision;
    while at < bytes.len() {
        let Some(nl) = bytes[at..].iter().position(|b| *b == b'\n') else {
            break; // a header cut short: torn
        };
        let header = &bytes[at..at + nl];
        let fields: Vec<&[u8]> = header.split(|b| *b == b' ').collect();
        let parsed = match (header.first(), &fields[..]) {
            (Some(b'#'), [before, count, len, sum]) => parse_u64(&before[1..])
                .zip(parse_u64(count))
                .zip(parse_u64(len))
                .zip(
                    std::str::from_utf8(sum)
                        .ok()
                        .and_then(|s| u64::from_str_radix(s, 16).ok()),
                ),
            _ => None,
        };
        let Some((((before, count), len), sum)) = parsed else {
            return Err(corrupt(at, "not a journal record"));
        };
        let body_start = at + nl + 1;
        let body_end = body_start.saturating_add(len as usize);
        if body_end > bytes.len() {
            break; // a body cut short: torn
        }
        let body = &bytes[body_start..body_end];
        if checksum(body) != sum {
            if body_end == bytes.len() {
                break; // the last record, damaged by the crash that cut it: torn
            }
            return Err(corrupt(at, "checksum mismatch"));
        }
        if before + count <= revision {
            // Already in the snapshot (a crash came between the snapshot and emptying us).
        } else if before == revision {
            let mut line_at = body_start;
            for line in body.split(|b| *b == b'\n').take(count as usize) {
                let fields: Vec<usize> = line
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\t')
                    .map(|(i, _)| i)
                    .take(5)
                    .collect();
                revision += 1;
                match (line.first(), &fields[..]) {
                    (Some(b'+'), [_, _, _, t4, t5]) => {
                        if parse_u64(&line[t4 + 1..*t5]) != Some(revision) {
                            return Err(corrupt(line_at, "revision out of sequence"));
                        }
                        overlay.insert(
                            line[2..*t4].to_vec(),
                            Some((revision, line_at + t5 + 1..line_at + line.len())),
                        );
                    }
                    (Some(b'-'), [_, _, _, t4]) => {
                        if parse_u64(&line[t4 + 1..]) != Some(revision) {
                            return Err(corrupt(line_at, "revision out of sequence"));
                        }
                        overlay.insert(line[2..*t4].to_vec(), None);
                    }
                    _ => return Err(corrupt(line_at, "not a change")),
                }
                line_at += line.len() + 1;
            }
            if revision != before + count {
                return Err(corrupt(at, "fewer changes than announced"));
            }
        } else {
            return Err(corrupt(
                at,
                &format!("starts at revision {before}, the store is at {revision}"),
            ));
        }
        at = body_end;
        valid = at;
    }
    let mut bytes = bytes;
    bytes.truncate(valid);
    state.revision = revision;
    state.journal = bytes;
    state.overlay = overlay;
    Ok(())
}

#[async_trait]
impl Store for LocalStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, spiderpool_core::Error> {
        self.with_state(|s, me| {
            let encoded = encode_key(key);
            s.lookup(&encoded)
                .map(|(rev, json)| me.decode(&encoded, rev, json))
                .transpose()
        })
    }

    async fn list(&self, kind: &str) -> Result<Vec<Stored>, spiderpool_core::Error> {
        self.with_state(|s, me| {
            let mut out = s
                .of_kind(kind)
                .into_iter()
                .map(|(k, rev, json)| me.decode(k, rev, json))
                .collect::<Result<Vec<_>, _>>()?;
            out.sort_by_cached_key(|s| Key::of(&s.object));
            Ok(out)
        })
    }

    async fn create(&self, object: Object) -> Result<Revision, spiderpool_core::Error> {
        self.with_state(|s, me| {
            me.commit_writes(s, vec![Write::Create(object)])
                .map(|r| Revision(r.to_string()))
        })
    }

    async fn update(
        &self,
        object: Object,
        expected: &Revision,
    ) -> Result<Revision, spiderpool_core::Error> {
        self.with_state(|s, me| {
            let w = Write::Update {
                object,
                expected: expected.clone(),
            };
            me.commit_writes(s, vec![w])
                .map(|r| Revision(r.to_string()))
        })
    }

    async fn delete(&self, key: &Key, expected: &Revision) -> Result<(), spiderpool_core::Error> {
        self.with_state(|s, me| {
            let w = Write::Delete {
                key: key.clone(),
                expected: expected.clone(),
            };
            me.commit_writes(s, vec![w]).map(|_| ())
        })
    }

    fn is_atomic(&self) -> bool {
        true
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<(), spiderpool_core::Error> {
        self.with_state(|s, me| me.commit_writes(s, writes).map(|_| ()))
    }
}
