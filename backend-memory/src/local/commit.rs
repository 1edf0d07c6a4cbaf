//! Writing: a commit appended to the journal as one checksummed record and flushed, or, when
//! the journal has grown, folded with everything into a new snapshot (temporary file, flush,
//! rename, directory flush, journal emptied). Every step is a failpoint.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::ops::Range;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt};
use std::path::Path;

use super::codec::{
    checksum_field, encode_key, reassemble, snapshot_body, split_object_keeping, Field,
};
use super::failpoint::failpoint;
use super::{
    cut, journal_file_id, journal_size, Entry, Flat, JournalFile, LocalStore, Src, State, DATA,
    FORMAT, JOURNAL, JOURNAL_ROOM, MAX_RECORDS, MIN_COMPACT_BYTES, TEMP,
};
use crate::Error;
use spiderpool_core::model::Object;
use spiderpool_core::store::Write;

impl LocalStore {
    /// Applies `writes` (all or none) and makes them durable.
    pub(super) fn commit_writes(
        &self,
        state: &mut State,
        writes: Vec<Write>,
    ) -> Result<u64, spiderpool_core::Error> {
        let storage = |e: serde_json::Error| spiderpool_core::Error::Storage {
            store: self.dir.display().to_string(),
            reason: e.to_string(),
        };
        state.written.clear();
        let mut keys = Vec::with_capacity(writes.len());
        for w in &writes {
            let key = w.key();
            let encoded = encode_key(&key);
            state.load_key(&encoded, &self.dir.join(DATA))?;
            if keys.iter().any(|k| k == &encoded) {
                return Err(spiderpool_core::Error::Unsupported {
                    what: format!("two writes to {key} in one commit"),
                });
            }
            crate::objects::check_revision(w, &key, state.lookup(&encoded).map(|e| e.rev))?;
            keys.push(encoded);
        }
        let before = state.revision;
        if before.checked_add(writes.len() as u64 + 1).is_none() {
            return Err(Error::Corrupt {
                path: self.dir.join(DATA),
                reason: format!("revision {before} leaves no room for another commit"),
            }
            .into());
        }
        // The record's body, and per change where its parts are in the body.
        let mut body = Vec::new();
        let mut changes: Vec<(Vec<u8>, Option<BodyEntry>)> = Vec::with_capacity(writes.len());
        // The objects written, to be kept for the next read (see `State::written`).
        let mut given: Vec<(Vec<u8>, u64, Object, Option<Field>)> = Vec::new();
        for (i, (w, encoded)) in writes.into_iter().zip(keys).enumerate() {
            let rev = before + i as u64 + 1;
            let object = match w {
                Write::Create(o) | Write::Update { object: o, .. } => o,
                Write::Delete { .. } => {
                    body.extend_from_slice(b"-\t");
                    body.extend_from_slice(&encoded);
                    body.extend_from_slice(format!("\t{rev}\n").as_bytes());
                    changes.push((encoded, None));
                    continue;
                }
            };
            let (json, field, rest) =
                split_object_keeping(crate::objects::with_revision(object, rev))
                    .map_err(storage)?;
            // The field as stored: the marker and the escaped text (nothing when absent),
            // compared piece by piece with the stored one, never copied whole.
            let new: Vec<&[u8]> = field
                .as_ref()
                .map_or_else(Vec::new, |f| vec![b"s", f.bytes()]);
            let new_len: usize = new.iter().map(|p| p.len()).sum();
            let old: Vec<&[u8]> = state
                .lookup(&encoded)
                .map(|e| e.extra.iter().map(|s| state.bytes(s)).collect())
                .unwrap_or_default();
            let old_len: usize = old.iter().map(|p| p.len()).sum();
            let prefix = common_prefix(&old, &new);
            let room = old_len.min(new_len) - prefix;
            let suffix = common_suffix(&old, &new, room);
            let mid = prefix..new_len - suffix;
            let patch = old_len > 0 && mid.len() < new_len / 2;
            body.extend_from_slice(if patch { b"~\t" } else { b"+\t" });
            body.extend_from_slice(&encoded);
            body.extend_from_slice(format!("\t{rev}\t").as_bytes());
            let j = body.len();
            body.extend_from_slice(&json);
            let json_range = j..body.len();
            let extra_part = if patch {
                body.extend_from_slice(format!("\t{prefix}\t{suffix}\t").as_bytes());
                let m = body.len();
                extend_range(&mut body, &new, mid);
                BodyExtra::Patch {
                    prefix,
                    suffix,
                    old_len,
                    mid: m..body.len(),
                }
            } else {
                body.push(b'\t');
                let m = body.len();
                extend_range(&mut body, &new, 0..new_len);
                BodyExtra::Full(m..body.len())
            };
            body.push(b'\n');
            given.push((encoded.clone(), rev, rest, field));
            changes.push((encoded, Some((rev, json_range, extra_part))));
        }
        let count = changes.len() as u64;
        if count == 0 {
            return Ok(before);
        }
        let header = format!(
            "#{before} {count} {} {}\n",
            body.len(),
            checksum_field(&body)
        );
        // The changes as entries over the journal once the record is appended at `offset`.
        let journal_len = state.journal.len();
        let offset = journal_len + header.len();
        let entries: Vec<(Vec<u8>, Option<Entry>)> = changes
            .into_iter()
            .map(|(k, change)| {
                let entry = change.map(|(rev, json, extra)| {
                    let shift = |r: Range<usize>| r.start + offset..r.end + offset;
                    let extra = match extra {
                        BodyExtra::Full(r) if r.is_empty() => Vec::new(),
                        BodyExtra::Full(r) => vec![(Src::Journal, shift(r))],
                        BodyExtra::Patch {
                            prefix,
                            suffix,
                            old_len,
                            mid,
                        } => {
                            let old = state
                                .lookup(&k)
                                .map(|e| e.extra.clone())
                                .unwrap_or_default();
                            let mut spans = cut(&old, 0..prefix);
                            if !mid.is_empty() {
                                spans.push((Src::Journal, shift(mid)));
                            }
                            spans.extend(cut(&old, old_len - suffix..old_len));
                            spans
                        }
                    };
                    Entry {
                        rev,
                        json: (Src::Journal, shift(json)),
                        extra,
                    }
                });
                (k, entry)
            })
            .collect();
        let compact = state.legacy
            || state.snapshot_id.is_none()
            || state.records >= MAX_RECORDS
            || journal_len + body.len() > MIN_COMPACT_BYTES.max(state.base.len() / 16);
        let mut record = header.into_bytes();
        record.extend_from_slice(&body);
        // The record joins the in-memory journal first (the entries point into it); if writing
        // it fails, the caller drops the whole state.
        state.journal.extend_from_slice(&record);
        for (k, e) in entries {
            state.put(k, e);
        }
        state.records += 1;
        state.revision = before + count;
        if compact {
            // The first write, a v1 file, or a journal large next to the snapshot: fold
            // everything into a new snapshot; the state is read again next time.
            state.load_all(&self.dir.join(DATA))?;
            self.save_snapshot(state.revision, &state.all())?;
            state.snapshot_id = None;
            state.journal_id = None;
            return Ok(state.revision);
        }
        let jpath = self.dir.join(JOURNAL);
        let io = |source| Error::Io {
            path: jpath.clone(),
            source,
        };
        // The journal this state was read from or last wrote is held open, and the state's
        // identity of it (size included) was checked under this lock: write through it. Else
        // open it (creating it: its directory entry is flushed before any record counts).
        let (journal, mut size, opened) = match (state.journal_file.take(), state.journal_id) {
            (Some(j), Some((_, _, size, _, _))) if j.writable && !state.journal_torn => {
                (j, size, false)
            }
            _ => {
                let created = journal_file_id(&jpath)?.is_none();
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .read(true)
                    .write(true)
                    .mode(0o600)
                    .open(&jpath)
                    .map_err(io)?;
                if created {
                    failpoint("journal-created");
                    fsync_dir(&self.dir)?;
                }
                let size = journal_size(&file).map_err(io)?;
                let j = JournalFile {
                    file,
                    writable: true,
                };
                (j, size, true)
            }
        };
        let file = &journal.file;
        // Cut off a record a crash left unfinished (its commit never returned), and anything
        // after it.
        if state.journal_torn || size < journal_len as u64 {
            file.set_len(journal_len as u64).map_err(io)?;
            failpoint("journal-tail-cut");
            size = journal_len as u64;
        }
        // The record goes over the zeros kept after the last one; when they are too few, it
        // brings zeros for the next records along.
        let len = record.len();
        if (journal_len + len) as u64 > size {
            record.resize(len + JOURNAL_ROOM, 0);
            size = (journal_len + record.len()) as u64;
        }
        failpoint("journal-before-write");
        // One write, or two in a `failpoints` build so that a test can die between them.
        let half = if cfg!(feature = "failpoints") {
            len / 2
        } else {
            record.len()
        };
        file.write_all_at(&record[..half], journal_len as u64)
            .map_err(io)?;
        failpoint("journal-half-written");
        file.write_all_at(&record[half..], (journal_len + half) as u64)
            .map_err(io)?;
        failpoint("journal-written");
        file.sync_data().map_err(io)?;
        failpoint("journal-synced");
        state.journal_torn = false;
        state.written = given
            .into_iter()
            .filter_map(|(k, rev, rest, field)| reassemble(rest, field).map(|o| (k, rev, o)))
            .collect();
        state.journal_id = if opened {
            journal_file_id(&jpath)?
        } else {
            // The same file, grown (or not) by what was just written.
            state
                .journal_id
                .map(|(dev, ino, _, _, _)| (dev, ino, size, 0, 0))
        };
        state.journal_file = Some(journal);
        Ok(state.revision)
    }

    /// Writes a new snapshot atomically and empties the journal.
    pub(super) fn save_snapshot(&self, revision: u64, objects: &[Flat]) -> Result<(), Error> {
        let header =
            serde_json::json!({"format": FORMAT, "revision": revision, "objects": objects.len()});
        let mut bytes = header.to_string().into_bytes();
        bytes.push(b'\n');
        snapshot_body(objects, &mut bytes);
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
        failpoint("snapshot-tmp-created");
        file.write_all(&bytes).map_err(io(&tmp))?;
        failpoint("snapshot-tmp-written");
        file.sync_all().map_err(io(&tmp))?;
        failpoint("snapshot-tmp-synced");
        drop(file);
        let data = self.dir.join(DATA);
        fs::rename(&tmp, &data).map_err(io(&data))?;
        failpoint("snapshot-renamed");
        fsync_dir(&self.dir)?;
        failpoint("snapshot-dir-synced");
        // The snapshot holds every journal record now; a crash before this point leaves
        // records it already holds, which are skipped on reading.
        let jpath = self.dir.join(JOURNAL);
        match OpenOptions::new().write(true).open(&jpath) {
            Ok(f) => {
                f.set_len(0).map_err(io(&jpath))?;
                failpoint("journal-emptied");
                f.sync_all().map_err(io(&jpath))?;
                failpoint("journal-emptied-synced");
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
}

/// Where a change's extra field is in a record body.
pub(super) enum BodyExtra {
    Full(Range<usize>),
    Patch {
        prefix: usize,
        suffix: usize,
        old_len: usize,
        mid: Range<usize>,
    },
}

/// A put in a record body: revision, JSON range, extra field.
pub(super) type BodyEntry = (u64, Range<usize>, BodyExtra);

/// The length of the common prefix of two byte strings given in pieces.
fn common_prefix(a: &[&[u8]], b: &[&[u8]]) -> usize {
    let (mut a, mut b) = (Bytes::new(a.iter().copied()), Bytes::new(b.iter().copied()));
    let mut n = 0;
    loop {
        let (x, y) = (a.chunk(), b.chunk());
        let m = x.len().min(y.len());
        if m == 0 {
            return n;
        }
        let same = prefix_len(&x[..m], &y[..m]);
        n += same;
        if same < m {
            return n;
        }
        a.advance(m);
        b.advance(m);
    }
}

/// The length, at most `limit`, of the common suffix of two byte strings given in pieces.
fn common_suffix(a: &[&[u8]], b: &[&[u8]], limit: usize) -> usize {
    let (mut a, mut b) = (
        Bytes::new(a.iter().rev().copied()),
        Bytes::new(b.iter().rev().copied()),
    );
    let mut n = 0;
    loop {
        let (x, y) = (a.chunk_back(), b.chunk_back());
        let m = x.len().min(y.len()).min(limit - n);
        if m == 0 {
            return n;
        }
        let same = suffix_len(&x[x.len() - m..], &y[y.len() - m..]);
        n += same;
        if same < m {
            return n;
        }
        a.advance_back(m);
        b.advance_back(m);
    }
}

/// How many leading bytes `x` and `y` (of one length) share: blocks compared at once.
fn prefix_len(x: &[u8], y: &[u8]) -> usize {
    const BLOCK: usize = 256;
    let mut n = 0;
    while n + BLOCK <= x.len() && x[n..n + BLOCK] == y[n..n + BLOCK] {
        n += BLOCK;
    }
    n + x[n..]
        .iter()
        .zip(&y[n..])
        .take_while(|(p, q)| p == q)
        .count()
}

/// How many trailing bytes `x` and `y` (of one length) share: blocks compared at once.
fn suffix_len(x: &[u8], y: &[u8]) -> usize {
    const BLOCK: usize = 256;
    let (lx, ly) = (x.len(), y.len());
    let mut n = 0;
    while n + BLOCK <= lx && x[lx - n - BLOCK..lx - n] == y[ly - n - BLOCK..ly - n] {
        n += BLOCK;
    }
    n + x[..lx - n]
        .iter()
        .rev()
        .zip(y[..ly - n].iter().rev())
        .take_while(|(p, q)| p == q)
        .count()
}

/// A cursor over a byte string in pieces (front to back, or back to front for the reversed
/// list of pieces).
struct Bytes<'a, I: Iterator<Item = &'a [u8]>> {
    pieces: I,
    current: &'a [u8],
}

impl<'a, I: Iterator<Item = &'a [u8]>> Bytes<'a, I> {
    fn new(pieces: I) -> Self {
        Bytes {
            pieces,
            current: &[],
        }
    }

    /// The bytes from the cursor to the end of the current piece (empty at the end).
    fn chunk(&mut self) -> &'a [u8] {
        while self.current.is_empty() {
            match self.pieces.next() {
                Some(p) => self.current = p,
                None => return &[],
            }
        }
        self.current
    }

    fn advance(&mut self, n: usize) {
        self.current = &self.current[n..];
    }

    /// As [`Bytes::chunk`], from the back: the pieces were given last first.
    fn chunk_back(&mut self) -> &'a [u8] {
        self.chunk()
    }

    fn advance_back(&mut self, n: usize) {
        self.current = &self.current[..self.current.len() - n];
    }
}

/// Appends bytes `range` of the byte string given in `pieces`.
fn extend_range(out: &mut Vec<u8>, pieces: &[&[u8]], range: std::ops::Range<usize>) {
    let mut at = 0;
    for p in pieces {
        let (start, end) = (at, at + p.len());
        at = end;
        let lo = range.start.max(start);
        let hi = range.end.min(end);
        if lo < hi {
            out.extend_from_slice(&p[lo - start..hi - start]);
        }
    }
}

pub(super) fn fsync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::{common_prefix, common_suffix, extend_range};

    /// `text` cut into pieces at `cuts` (positions, any order, repeats allowed).
    fn pieces<'a>(text: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (text.len() + 1)).collect();
        at.extend([0, text.len()]);
        at.sort_unstable();
        at.windows(2).map(|w| &text[w[0]..w[1]]).collect()
    }

    #[test]
    fn prefix_and_suffix_of_texts_in_pieces_are_those_of_the_whole_texts() {
        let long = |c: u8, n: usize| vec![c; n];
        let mut cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"".to_vec(), b"".to_vec()),
            (b"abc".to_vec(), b"".to_vec()),
            (b"abcdef".to_vec(), b"abcxef".to_vec()),
            (b"aaaa".to_vec(), b"aa".to_vec()),
        ];
        let mut a = long(b'x', 1000);
        a.extend(b"middle");
        a.extend(long(b'y', 700));
        let mut b = long(b'x', 1000);
        b.extend(b"MIDDLE!");
        b.extend(long(b'y', 700));
        cases.push((a.clone(), b));
        cases.push((a.clone(), a));
        for (x, y) in &cases {
            let prefix = x.iter().zip(y).take_while(|(p, q)| p == q).count();
            let room = x.len().min(y.len()) - prefix;
            let suffix = x
                .iter()
                .rev()
                .zip(y.iter().rev())
                .take(room)
                .take_while(|(p, q)| p == q)
                .count();
            for cuts in [&[][..], &[1], &[3, 257, 999], &[5, 5, 600, 1003, 1010]] {
                let (px, py) = (pieces(x, cuts), pieces(y, &[2, 300, 1005]));
                assert_eq!(common_prefix(&px, &py), prefix, "{cuts:?}");
                assert_eq!(common_suffix(&px, &py, room), suffix, "{cuts:?}");
                let mut out = Vec::new();
                extend_range(&mut out, &py, prefix..y.len() - suffix);
                assert_eq!(out, y[prefix..y.len() - suffix], "{cuts:?}");
            }
        }
    }
}
