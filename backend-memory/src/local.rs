//! The local file store: one directory, shared by every plugin process on the host.
//!
//! Files in the directory:
//! - `store.json`: a snapshot of every object with its revision;
//! - `store.journal`: the transactions committed since that snapshot, appended in order;
//! - `store.lock`: held exclusively (`flock`) around every read–decide–write;
//! - `.store.json.tmp`: the next snapshot while it is being written.
//!
//! A commit writes one checksummed record after the journal's last and flushes it
//! (`fdatasync`) before it returns, so a returned commit survives a crash. The journal keeps
//! zeros after its last record (`JOURNAL_ROOM`, written with the record that found too few),
//! so that a record lands in blocks the file already has and its flush need not write the
//! file's size too; readers stop at the zeros. When the journal outgrows the snapshot,
//! the next commit writes a new snapshot instead: to the temporary file, flushed, renamed over
//! `store.json`, and the directory flushed, so a crash leaves either the old or the new
//! snapshot, never a torn one; the journal is then emptied (records the snapshot already holds
//! are skipped if a crash comes first). A record cut short at the end of the journal is one
//! whose commit never returned: it is ignored, and the next writer cuts it off. Anything else
//! that does not decode, or of an unknown format, is an error that names the file; it is never
//! overwritten.
//!
//! The snapshot (format `spiderpool-rs/local-store/v2`) is a JSON header line, then one line
//! per object, sorted by key: `kind TAB namespace TAB name TAB revision TAB json TAB extra`,
//! where `extra` is the object's `status.allocatedIPs` kept apart (the one field that grows
//! with a pool's allocations; `%`, TAB, CR and LF escaped as `%XX`). A journal record is a
//! header `#revision-before count body-length checksum` (`x` and the body's XXH3-64 in hex;
//! FNV-1a in 16 hex digits in records of earlier versions, still read) and one line per
//! change: `+` (the object's line), `-` (a deletion) or `~` (the object's JSON and a patch
//! of its `extra`: common prefix length, common suffix length, the bytes between), so an
//! allocation writes a few hundred bytes however full the pool. A process reads a large snapshot in parts, as
//! its operations need them (one object by a binary search over the sorted lines, one kind
//! as one run of lines: see `read.rs`), indexes the lines without decoding them and decodes
//! only the objects it reads, so an allocation does not pay for the thousands of endpoints a
//! full pool has. Within one process the state is kept between operations and read again
//! only when the files changed (checked under the lock: the files' identity, size and time,
//! and whether a byte other than zero follows the journal's records; the journal read is held
//! open, so that this check and the next record need no new `open`). The older single-document
//! format (`…/v1`) is still read; the first commit rewrites it as a v2 snapshot. Files are
//! created `0600`, the directory `0700`; a directory writable by others, or a store path that
//! is not a directory, is refused.
//!
//! Built with the `failpoints` feature (tests only), every write step is named (see
//! [`FAILPOINT_STEPS`]) and the process dies like `kill -9` at the step the environment
//! variable [`FAILPOINT_ENV`] names; without the feature the steps compile to nothing.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
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

mod codec;
mod commit;
mod failpoint;
mod find;
mod read;
mod replay;

use codec::{encode_key, escape_into, unescape_from};
#[cfg(feature = "failpoints")]
pub use failpoint::{FAILPOINT_ENV, FAILPOINT_STEPS};
use replay::replay;

const FORMAT_V1: &str = "spiderpool-rs/local-store/v1";
const FORMAT: &str = "spiderpool-rs/local-store/v2";
const DATA: &str = "store.json";
const JOURNAL: &str = "store.journal";
const LOCK: &str = "store.lock";
const TEMP: &str = ".store.json.tmp";
/// The journal is folded into a new snapshot once it is larger than this and a sixteenth of
/// the snapshot, or holds more records than `MAX_RECORDS` (each patch adds pieces to replay).
/// Every process reads and replays the whole journal, so it is kept small next to the
/// snapshot; a fold writes the snapshot once (two flushes), which these bounds spread over
/// many commits. (Measured on a 2.8 MB store, 300 ADD+DEL pairs: a quarter cost ~15 % more
/// per pair than a sixteenth; a thirty-second was no better.)
const MIN_COMPACT_BYTES: usize = 64 << 10;
const MAX_RECORDS: usize = 512;
/// Zeros written after a journal record when the file has no room left for the next: a record
/// written over zeros leaves the file's size as it was, so its flush writes the data alone
/// (appending would also write the inode, a second synchronous write: ~0.18 against ~0.12 ms
/// per flush measured on this machine's disk).
const JOURNAL_ROOM: usize = 32 << 10;
/// A field in more pieces than this is rebuilt in one piece.
const MAX_PIECES: usize = 64;

/// The local file store. See the module docs for the on-disk layout and guarantees.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
    lock_timeout: Duration,
    first_read: usize,
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

/// The journal's identity and size, asked for without its times. A process that asks for a
/// file's modification time makes the kernel (multigrain timestamps, Linux 6.13 and later)
/// stamp the file's next write with a fine-grained time, which dirties its inode, and ext4
/// then writes the inode with the flush of every record, as if the file had grown (~0.05 ms
/// per commit here). Records written within the file are found by
/// [`LocalStore::journal_grew`] instead.
fn journal_file_id(path: &Path) -> Result<FileId, Error> {
    use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
    match statx(
        CWD,
        path,
        AtFlags::empty(),
        StatxFlags::INO | StatxFlags::SIZE,
    ) {
        Ok(s) => Ok(Some((
            (u64::from(s.stx_dev_major) << 32) | u64::from(s.stx_dev_minor),
            s.stx_ino,
            s.stx_size,
            0,
            0,
        ))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(rustix::io::Errno::NOSYS) => file_id(path),
        Err(e) => Err(Error::Io {
            path: path.to_path_buf(),
            source: e.into(),
        }),
    }
}

/// The size of the open journal, asked for without its times (see [`journal_file_id`]).
fn journal_size(file: &File) -> std::io::Result<u64> {
    use rustix::fs::{statx, AtFlags, StatxFlags};
    match statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::SIZE) {
        Ok(s) => Ok(s.stx_size),
        Err(rustix::io::Errno::NOSYS) => file.metadata().map(|m| m.len()),
        Err(e) => Err(e.into()),
    }
}

/// The journal as an operation holds it: open for reading, and for writing when the process
/// may (a reader without write permission gets it read-only, and a commit opens it anew).
struct JournalFile {
    file: File,
    writable: bool,
}

impl JournalFile {
    /// Opens the journal for reading and, when allowed, writing.
    fn open(path: &Path) -> std::io::Result<Self> {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => Ok(JournalFile {
                file,
                writable: true,
            }),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                Ok(JournalFile {
                    file: File::open(path)?,
                    writable: false,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The whole journal, read without asking for its times (`fs::read` asks for them to
    /// size its buffer; see [`journal_file_id`]).
    fn read_all(&self) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut buf = vec![0; usize::try_from(journal_size(&self.file)?).unwrap_or(0)];
        let mut len = 0;
        let mut file = &self.file;
        loop {
            if len == buf.len() {
                buf.resize(len + (len / 2).max(4096), 0);
            }
            match file.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(len);
        Ok(buf)
    }
}

/// An object written out: encoded key, revision, JSON, extra.
type Flat = (Vec<u8>, u64, Vec<u8>, Vec<u8>);

/// Where bytes of the state live: the snapshot file or the journal, both kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    Base,
    Journal,
    /// Fields rebuilt in memory when a long run of patches left them in many pieces.
    Scratch,
}

/// A byte range of the snapshot or the journal.
type Span = (Src, Range<usize>);

/// One object: its revision, its JSON without `status.allocatedIPs`, and that field apart
/// (escaped; empty when absent, else `s` and the string), as pieces: a journal record may
/// patch a few bytes of a large field without repeating it.
#[derive(Debug, Clone)]
struct Entry {
    rev: u64,
    json: Span,
    extra: Vec<Span>,
}

/// The store's state: the snapshot's lines, undecoded, and the journal's changes over them.
struct State {
    snapshot_id: FileId,
    journal_id: FileId,
    /// The snapshot file this state was read from, held open: parts of it not read yet are
    /// read from it, and its inode cannot be given to a later snapshot while the state is
    /// cached (two folds by other processes within one tick of the (coarse) file clock could
    /// otherwise leave a new snapshot with this one's inode, size and time).
    snapshot_file: Option<File>,
    /// The journal file this state was read from (or last wrote), held open for the same
    /// reason: later operations look for records past the state's through it (one `pread`)
    /// and write theirs through it, without opening the file again.
    journal_file: Option<JournalFile>,
    /// The store revision: incremented by every write.
    revision: u64,
    /// The snapshot file (or a v1 file converted to lines: `legacy`), and its object lines
    /// (encoded key, entry) sorted by key. A large snapshot is read in parts (`unread`):
    /// `base` is then the file's image with only those parts filled in, and `lines` the
    /// lines indexed so far.
    base: Vec<u8>,
    lines: Vec<(Range<usize>, Entry)>,
    legacy: bool,
    unread: Option<read::Unread>,
    /// The journal's valid records, and its changes by encoded key (`None`: deleted).
    journal: Vec<u8>,
    /// Bytes other than zeros follow the valid records in the file (a record a crash left
    /// unfinished): the next commit cuts them off.
    journal_torn: bool,
    records: usize,
    overlay: BTreeMap<Vec<u8>, Option<Entry>>,
    scratch: Vec<u8>,
    /// Objects this process's last commit wrote, as it was given them (encoded key, revision,
    /// object): the next read of one takes it instead of decoding the stored text again. A
    /// node agent reads each pool it wrote once, for the next command; for a full pool that
    /// decoding is a few passes over a text of hundreds of kilobytes.
    written: Vec<Written>,
}

/// An object a commit wrote: encoded key, revision, the object.
type Written = (Vec<u8>, u64, Object);

impl State {
    fn empty(snapshot_id: FileId, journal_id: FileId) -> Self {
        State {
            snapshot_id,
            journal_id,
            snapshot_file: None,
            journal_file: None,
            revision: 0,
            base: Vec::new(),
            lines: Vec::new(),
            legacy: false,
            unread: None,
            journal: Vec::new(),
            journal_torn: false,
            records: 0,
            overlay: BTreeMap::new(),
            scratch: Vec::new(),
            written: Vec::new(),
        }
    }

    fn bytes(&self, span: &Span) -> &[u8] {
        match span.0 {
            Src::Base => &self.base[span.1.clone()],
            Src::Journal => &self.journal[span.1.clone()],
            Src::Scratch => &self.scratch[span.1.clone()],
        }
    }

    /// Sets the entry of `key`, rebuilding a field left in too many pieces.
    fn put(&mut self, key: Vec<u8>, mut entry: Option<Entry>) {
        if let Some(e) = &mut entry {
            if e.extra.len() > MAX_PIECES {
                let bytes = self.concat(&e.extra);
                let start = self.scratch.len();
                self.scratch.extend_from_slice(&bytes);
                e.extra = vec![(Src::Scratch, start..self.scratch.len())];
            }
        }
        self.overlay.insert(key, entry);
    }

    fn concat(&self, spans: &[Span]) -> Vec<u8> {
        let mut out = Vec::with_capacity(spans.iter().map(|s| s.1.len()).sum());
        for s in spans {
            out.extend_from_slice(self.bytes(s));
        }
        out
    }

    /// The entry of `key` (encoded), if present.
    fn lookup(&self, key: &[u8]) -> Option<&Entry> {
        if let Some(change) = self.overlay.get(key) {
            return change.as_ref();
        }
        let i = self
            .lines
            .binary_search_by(|(k, _)| self.base[k.clone()].cmp(key))
            .ok()?;
        Some(&self.lines[i].1)
    }

    /// Every object of `kind`: encoded key and entry.
    fn of_kind(&self, kind: &str) -> Vec<(&[u8], &Entry)> {
        let mut prefix = Vec::new();
        escape_into(&mut prefix, kind);
        prefix.push(b'\t');
        let start = self
            .lines
            .partition_point(|(k, _)| self.base[k.clone()] < prefix[..]);
        let mut out: Vec<(&[u8], &Entry)> = self.lines[start..]
            .iter()
            .map(|(k, e)| (&self.base[k.clone()], e))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !self.overlay.contains_key(*k))
            .collect();
        for (k, change) in self.overlay.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            if let Some(e) = change {
                out.push((k, e));
            }
        }
        out
    }

    /// Every object, sorted by encoded key: key, revision, JSON, extra.
    fn all(&self) -> Vec<Flat> {
        let mut out: Vec<Flat> = self
            .lines
            .iter()
            .map(|(k, e)| (&self.base[k.clone()], e))
            .filter(|(k, _)| !self.overlay.contains_key(*k))
            .chain(
                self.overlay
                    .iter()
                    .filter_map(|(k, e)| e.as_ref().map(|e| (&k[..], e))),
            )
            .map(|(k, e)| {
                (
                    k.to_vec(),
                    e.rev,
                    self.bytes(&e.json).to_vec(),
                    self.concat(&e.extra),
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// The spans covering bytes `range` of the field made of `spans`.
fn cut(spans: &[Span], range: Range<usize>) -> Vec<Span> {
    let mut out = Vec::new();
    let mut at = 0;
    for (src, r) in spans {
        let (start, end) = (at, at + r.len());
        at = end;
        let lo = range.start.max(start);
        let hi = range.end.min(end);
        if lo < hi {
            out.push((*src, r.start + (lo - start)..r.start + (hi - start)));
        }
    }
    out
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
        let meta = fs::metadata(&dir).map_err(io)?;
        if !meta.is_dir() {
            return Err(Error::NotADirectory { path: dir });
        }
        let mode = meta.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(Error::InsecureDirectory {
                path: dir,
                mode: mode & 0o7777,
            });
        }
        Ok(LocalStore {
            dir,
            lock_timeout: Duration::from_secs(10),
            first_read: read::FIRST_READ,
            cache: Cache::default(),
        })
    }

    /// Sets how long an operation waits for another process's lock before giving up with a
    /// retryable error (default 10 s).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Sets the size above which a snapshot is read in parts, as operations need them,
    /// instead of whole (default 64 KiB; at least 1). Also bounds each probe of the search
    /// for an object in the file (at most 4 KiB). Tests use tiny sizes to read every
    /// snapshot in parts.
    pub fn with_read_size(mut self, bytes: usize) -> Self {
        self.first_read = bytes.max(1);
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
        let journal_id = journal_file_id(&self.dir.join(JOURNAL))?;
        let fresh = match &*cache {
            Some(s) if s.snapshot_id == snapshot_id && s.journal_id == journal_id => {
                journal_id.is_none() || !self.journal_grew(s)?
            }
            _ => false,
        };
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

    /// Whether a record follows the state's journal records in the file. Records are written
    /// into zeros kept after the last one, so the file's size does not tell, nor does its
    /// (coarse) modification time when another process wrote within the same tick.
    fn journal_grew(&self, state: &State) -> Result<bool, Error> {
        use std::os::unix::fs::FileExt;
        let path = self.dir.join(JOURNAL);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let opened;
        let file = match &state.journal_file {
            // The state's journal_id matched the file's: the one held is that file.
            Some(held) => &held.file,
            None => match File::open(&path) {
                Ok(f) => {
                    opened = f;
                    &opened
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
                Err(e) => return Err(io(e)),
            },
        };
        let mut byte = [0u8; 1];
        let read = file
            .read_at(&mut byte, state.journal.len() as u64)
            .map_err(io)?;
        Ok(read == 1 && byte[0] != 0)
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
        match File::open(&path) {
            Ok(file) => self.load_snapshot(&mut state, file)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Io { path, source }),
        }
        let jpath = self.dir.join(JOURNAL);
        match JournalFile::open(&jpath).and_then(|j| Ok((j.read_all()?, j))) {
            Ok((bytes, held)) => {
                replay(&mut state, bytes, &jpath, &path)?;
                state.journal_file = Some(held);
                if state.journal_torn {
                    // A torn record at the end. Whoever cuts it off and writes a record may
                    // leave a file of the same inode, size and (coarse) time: this reading is
                    // never taken as current, lest our next commit cut that record off.
                    state.journal_id = None;
                }
            }
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

    /// The object of `key` (its entry `e`): the one this process's last commit wrote, taken
    /// out of `written` (see `State::written`) when it is of that revision, else decoded.
    fn read_entry(
        &self,
        state: &State,
        written: &mut Vec<Written>,
        key: &[u8],
        e: &Entry,
    ) -> Result<Stored, spiderpool_core::Error> {
        match written.iter().position(|(w, r, _)| w == key && *r == e.rev) {
            Some(i) => Ok(Stored {
                object: written.swap_remove(i).2,
                revision: Revision(e.rev.to_string()),
            }),
            None => self.decode(state, key, e),
        }
    }

    fn decode(
        &self,
        state: &State,
        key: &[u8],
        e: &Entry,
    ) -> Result<Stored, spiderpool_core::Error> {
        let name = String::from_utf8_lossy(key).replace('\t', " ");
        let corrupt = |reason: String| Error::Corrupt {
            path: self.dir.join(DATA),
            reason: format!("{name}: {reason}"),
        };
        let mut value: Value =
            serde_json::from_slice(state.bytes(&e.json)).map_err(|e| corrupt(e.to_string()))?;
        if !e.extra.is_empty() {
            let extra = state.concat(&e.extra);
            let field = (extra.first() == Some(&b's'))
                .then(|| unescape_from(extra, 1))
                .flatten()
                .ok_or_else(|| corrupt("bad status.allocatedIPs".into()))?;
            value
                .get_mut("status")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| corrupt("status.allocatedIPs without a status".into()))?
                .insert("allocatedIPs".into(), Value::String(field));
        }
        let object = object_from_value(&name, value).map_err(|e| match e {
            // The key already names the object: keep what the decoder said of it.
            spiderpool_core::Error::Decode { message, .. } => corrupt(message),
            other => corrupt(other.to_string()),
        })?;
        if encode_key(&Key::of(&object)) != key {
            return Err(corrupt("the object does not match its key".into()).into());
        }
        Ok(Stored {
            object,
            revision: Revision(e.rev.to_string()),
        })
    }
}

#[async_trait]
impl Store for LocalStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, spiderpool_core::Error> {
        self.with_state(|s, me| {
            let encoded = encode_key(key);
            s.load_key(&encoded, &me.dir.join(DATA))?;
            let mut written = std::mem::take(&mut s.written);
            let out = s
                .lookup(&encoded)
                .map(|e| me.read_entry(s, &mut written, &encoded, e))
                .transpose();
            s.written = written;
            out
        })
    }

    async fn list(&self, kind: &str) -> Result<Vec<Stored>, spiderpool_core::Error> {
        self.with_state(|s, me| {
            s.load_kind(kind, &me.dir.join(DATA))?;
            let mut written = std::mem::take(&mut s.written);
            let mut out = s
                .of_kind(kind)
                .into_iter()
                .map(|(k, e)| me.read_entry(s, &mut written, k, e))
                .collect::<Result<Vec<_>, _>>()?;
            s.written = written;
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
