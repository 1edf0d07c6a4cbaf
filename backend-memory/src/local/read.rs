//! Reading the snapshot: a small one whole, a large one in parts as operations need them.
//!
//! The object lines are sorted by key, so one object is found by a binary search over the
//! file (a few small `pread`s) and the objects of one kind are one run of lines, read at once.
//! A plugin process that allocates reads the reserved IPs, the pools and one endpoint, not the
//! thousands of endpoints a full pool has. The state's `base` is then an image of the file with
//! only the parts read filled in (allocated zeroed, so the pages never read are never touched),
//! which keeps every byte at its offset in the file: a line indexed later, or the whole file
//! read for a fold, finds the spans it already handed out unchanged.
//!
//! What is checked: every line read is checked as when the file is read whole (its fields,
//! its revision against the header's, the order of a kind's lines); the header's object count
//! and the order of the whole file are checked when the file is read whole, which every fold
//! (rewrite of the snapshot) does first: a damaged line is reported when it is read, at the
//! latest by the next fold, and the file is never rewritten past it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use serde_json::Value;
use spiderpool_core::model::object_from_value;
use spiderpool_core::store::Key;

use super::codec::{encode_key, escape_into, snapshot_body, split_object, tabs, with_marker};
use super::find::{find, find_n};
use super::{Entry, LocalStore, Src, State, DATA, FORMAT, FORMAT_V1};
use crate::Error;

/// A snapshot larger than this is read in parts (the first read is this long).
pub(super) const FIRST_READ: usize = 64 << 10;
/// The most a probe of the binary search reads at once.
const PROBE: usize = 4 << 10;

/// What is read of the snapshot file of a state read in parts.
pub(super) struct Unread {
    /// Where the object lines start (after the header line).
    body: usize,
    /// The header's revision (no line may be newer) and object count.
    revision: u64,
    count: u64,
    /// The most a probe reads at once.
    probe: usize,
    /// The parts of the state's `base` filled from the file: sorted, disjoint.
    filled: Vec<Range<usize>>,
    /// Kinds (encoded key prefix `kind TAB`) whose lines are all indexed.
    kinds: BTreeSet<Vec<u8>>,
}

/// The error for a damaged snapshot.
fn corrupt(path: &Path, reason: String) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        reason,
    }
}

/// Reads parts of the snapshot file into the state's image of it.
struct Reader<'a> {
    file: &'a File,
    base: &'a mut [u8],
    filled: &'a mut Vec<Range<usize>>,
    probe: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn over(
        file: &'a File,
        base: &'a mut [u8],
        filled: &'a mut Vec<Range<usize>>,
        probe: usize,
        path: &'a Path,
    ) -> Self {
        Reader {
            file,
            base,
            filled,
            probe,
            path,
        }
    }

    fn len(&self) -> usize {
        self.base.len()
    }

    /// Makes sure bytes `range` of the file are in the image.
    fn fill(&mut self, range: Range<usize>) -> Result<(), Error> {
        let range = range.start..range.end.min(self.len());
        if range.is_empty()
            || self
                .filled
                .iter()
                .any(|f| f.start <= range.start && range.end <= f.end)
        {
            return Ok(());
        }
        self.file
            .read_exact_at(&mut self.base[range.clone()], range.start as u64)
            .map_err(|source| Error::Io {
                path: self.path.to_path_buf(),
                source,
            })?;
        self.filled.push(range);
        self.filled.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(self.filled.len());
        for r in self.filled.drain(..) {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        *self.filled = merged;
        Ok(())
    }

    /// The position of the first newline at or after `from`, if any.
    fn newline(&mut self, from: usize) -> Result<Option<usize>, Error> {
        let mut at = from;
        let mut step = self.probe;
        while at < self.len() {
            let end = at.saturating_add(step).min(self.len());
            self.fill(at..end)?;
            if let Some(p) = find(b'\n', &self.base[at..end]) {
                return Ok(Some(at + p));
            }
            at = end;
            step = step.saturating_mul(2).min(1 << 20);
        }
        Ok(None)
    }

    /// The start of the first line starting at or after `pos` (the file's length if none).
    fn line_start(&mut self, pos: usize, body: usize) -> Result<usize, Error> {
        if pos <= body {
            return Ok(body);
        }
        Ok(self.newline(pos - 1)?.map_or(self.len(), |p| p + 1))
    }

    /// The key of the line starting at `start`: up to its third TAB.
    fn key(&mut self, start: usize) -> Result<Range<usize>, Error> {
        let mut step = self.probe;
        loop {
            let end = start.saturating_add(step).min(self.len());
            self.fill(start..end)?;
            let text = &self.base[start..end];
            let line = find(b'\n', text).map_or(text, |nl| &text[..nl]);
            if let Some(t3) = find_n(b'\t', line, 3).get(2).copied() {
                return Ok(start..start + t3);
            }
            if line.len() < text.len() || end == self.len() {
                return Err(corrupt(
                    self.path,
                    format!("line at byte {start}: not an object line"),
                ));
            }
            step = step.saturating_mul(2);
        }
    }

    /// The start of the first line whose key is `target` or after it (the file's length if
    /// none): a binary search over byte positions, each probe moved to the next line start.
    /// `from` is a line start known to be at or before the answer; `body` the first line's.
    fn first_at_or_after(
        &mut self,
        body: usize,
        from: usize,
        target: &[u8],
    ) -> Result<usize, Error> {
        let (mut lo, mut hi) = (from, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let start = self.line_start(mid, body)?;
            if start >= self.len() {
                hi = mid;
                continue;
            }
            let key = self.key(start)?;
            if self.base[key] >= *target {
                hi = mid;
            } else {
                // Every position up to `start` leads to this line: all before the target.
                lo = start + 1;
            }
        }
        if lo == from {
            return Ok(from);
        }
        self.line_start(lo, body)
    }
}

/// Indexes the object line `at..end` (without its newline) of `base`: key and entry. `revision`
/// is the header's: no object of the snapshot may be newer.
fn index_line(
    base: &[u8],
    at: usize,
    end: usize,
    revision: u64,
) -> Result<(Range<usize>, Entry), String> {
    // The decoder's words: which byte of the line is not UTF-8.
    let line = std::str::from_utf8(&base[at..end]).map_err(|e| e.to_string())?;
    // kind, namespace, name, revision, object, extra.
    let t = tabs(line, 5);
    let [_, _, t3, t4, t5] = t[..] else {
        return Err("not an object line".into());
    };
    let rev = line[t3 + 1..t4]
        .parse::<u64>()
        .ok()
        .filter(|r| *r <= revision)
        .ok_or("bad revision")?;
    let extra = at + t5 + 1..end;
    let entry = Entry {
        rev,
        json: (Src::Base, at + t4 + 1..at + t5),
        extra: if extra.is_empty() {
            Vec::new()
        } else {
            vec![(Src::Base, extra)]
        },
    };
    Ok((at..at + t3, entry))
}

/// Indexes every object line of `base` from `body` on, checking their order and count.
fn index_all(
    base: &[u8],
    body: usize,
    revision: u64,
    count: u64,
    path: &Path,
) -> Result<Vec<(Range<usize>, Entry)>, Error> {
    // The header's count is only a hint: never trust it for an allocation.
    let mut lines: Vec<(Range<usize>, Entry)> =
        Vec::with_capacity(usize::try_from(count.min(1 << 16)).unwrap_or(0));
    let mut at = body;
    while at < base.len() {
        let n = lines.len() + 2;
        let end = find(b'\n', &base[at..])
            .map(|p| at + p)
            .ok_or_else(|| corrupt(path, format!("line {n}: not terminated")))?;
        let (key, entry) = index_line(base, at, end, revision)
            .map_err(|reason| corrupt(path, format!("line {n}: {reason}")))?;
        if let Some((prev, _)) = lines.last() {
            if base[prev.clone()] >= base[key.clone()] {
                return Err(corrupt(path, format!("line {n}: keys out of order")));
            }
        }
        lines.push((key, entry));
        at = end + 1;
    }
    if lines.len() as u64 != count {
        return Err(corrupt(
            path,
            format!("{} objects, the header says {count}", lines.len()),
        ));
    }
    Ok(lines)
}

/// Merges `new` lines into `lines`, keeping them sorted by key and each key once.
fn insert_lines(
    lines: &mut Vec<(Range<usize>, Entry)>,
    base: &[u8],
    new: Vec<(Range<usize>, Entry)>,
) {
    lines.extend(new);
    lines.sort_by(|a, b| base[a.0.clone()].cmp(&base[b.0.clone()]));
    lines.dedup_by(|a, b| base[a.0.clone()] == base[b.0.clone()]);
}

impl State {
    /// Makes sure the line of `key` (encoded), if the snapshot has one, is indexed.
    pub(super) fn load_key(&mut self, key: &[u8], path: &Path) -> Result<(), Error> {
        let State {
            base,
            unread,
            lines,
            overlay,
            snapshot_file,
            ..
        } = self;
        let (Some(u), Some(file)) = (unread.as_mut(), snapshot_file.as_ref()) else {
            return Ok(());
        };
        let known = overlay.contains_key(key)
            || u.kinds.iter().any(|k| key.starts_with(k))
            || lines
                .binary_search_by(|(k, _)| base[k.clone()].cmp(key))
                .is_ok();
        if known {
            return Ok(());
        }
        let mut r = Reader::over(file, base, &mut u.filled, u.probe, path);
        let start = r.first_at_or_after(u.body, u.body, key)?;
        if start >= r.len() {
            return Ok(());
        }
        let found = r.key(start)?;
        if r.base[found] != *key {
            return Ok(());
        }
        let end = r
            .newline(start)?
            .ok_or_else(|| corrupt(path, format!("line at byte {start}: not terminated")))?;
        let line = index_line(base, start, end, u.revision)
            .map_err(|reason| corrupt(path, format!("line at byte {start}: {reason}")))?;
        insert_lines(lines, base, vec![line]);
        Ok(())
    }

    /// Makes sure every line of `kind` is indexed.
    pub(super) fn load_kind(&mut self, kind: &str, path: &Path) -> Result<(), Error> {
        let State {
            base,
            unread,
            lines,
            snapshot_file,
            ..
        } = self;
        let (Some(u), Some(file)) = (unread.as_mut(), snapshot_file.as_ref()) else {
            return Ok(());
        };
        let mut prefix = Vec::new();
        escape_into(&mut prefix, kind);
        prefix.push(b'\t');
        if u.kinds.contains(&prefix) {
            return Ok(());
        }
        let mut r = Reader::over(file, base, &mut u.filled, u.probe, path);
        let start = r.first_at_or_after(u.body, u.body, &prefix)?;
        // Keys of the kind are `kind TAB …`: all below `kind LF` (a key holds no raw LF).
        let mut upper = prefix.clone();
        upper.pop();
        upper.push(b'\n');
        let end = r.first_at_or_after(u.body, start, &upper)?;
        r.fill(start..end)?;
        let mut new: Vec<(Range<usize>, Entry)> = Vec::new();
        let mut at = start;
        while at < end {
            let stop = find(b'\n', &base[at..end])
                .map(|p| at + p)
                .ok_or_else(|| corrupt(path, format!("line at byte {at}: not terminated")))?;
            let (key, entry) = index_line(base, at, stop, u.revision)
                .map_err(|reason| corrupt(path, format!("line at byte {at}: {reason}")))?;
            let ordered = new
                .last()
                .is_none_or(|(prev, _)| base[prev.clone()] < base[key.clone()]);
            if !ordered || !base[key.clone()].starts_with(&prefix) {
                return Err(corrupt(
                    path,
                    format!("line at byte {at}: keys out of order"),
                ));
            }
            new.push((key, entry));
            at = stop + 1;
        }
        insert_lines(lines, base, new);
        u.kinds.insert(prefix);
        Ok(())
    }

    /// Makes sure the whole snapshot is read and every line indexed (and checked).
    pub(super) fn load_all(&mut self, path: &Path) -> Result<(), Error> {
        let (Some(u), Some(file)) = (self.unread.as_mut(), self.snapshot_file.as_ref()) else {
            return Ok(());
        };
        let len = self.base.len();
        Reader::over(file, &mut self.base, &mut u.filled, u.probe, path).fill(0..len)?;
        self.lines = index_all(&self.base, u.body, u.revision, u.count, path)?;
        self.unread = None;
        Ok(())
    }
}

impl LocalStore {
    /// Reads the snapshot `file`: its header, then the whole file if it is small (or not in
    /// the v2 format), else nothing more until operations need it.
    pub(super) fn load_snapshot(&self, state: &mut State, file: File) -> Result<(), Error> {
        let path = self.dir.join(DATA);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let len = usize::try_from(file.metadata().map_err(io)?.len())
            .map_err(|_| corrupt(&path, "larger than memory".into()))?;
        // Zeroed: the pages of the parts never read are never touched.
        let mut base = vec![0u8; len];
        let mut filled = Vec::new();
        let probe = PROBE.min(self.first_read).max(1);
        let mut r = Reader::over(&file, &mut base, &mut filled, probe, &path);
        r.fill(0..self.first_read)?;
        let header_end = r.newline(0)?;
        let first = &r.base[..header_end.unwrap_or(len)];
        let header: Option<Value> = serde_json::from_slice(first).ok();
        // A first line that is a JSON object names the format; anything else may be a v1
        // document written over several lines.
        match header.as_ref().and_then(|h| h.get("format")) {
            Some(Value::String(f)) if f == FORMAT => {}
            Some(Value::String(f)) if f == FORMAT_V1 => {
                r.fill(0..len)?;
                return self.load_v1(state, &base);
            }
            Some(other) => {
                return Err(Error::UnknownFormat {
                    path,
                    found: other
                        .as_str()
                        .map_or_else(|| other.to_string(), str::to_string),
                    expected: FORMAT.to_string(),
                })
            }
            None => {
                r.fill(0..len)?;
                return self.load_v1(state, &base);
            }
        }
        let header = header.unwrap_or_default();
        let revision = header
            .get("revision")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt(&path, "header: missing revision".into()))?;
        let count = header
            .get("objects")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt(&path, "header: missing objects".into()))?;
        let body = header_end.map_or(len, |e| e + 1);
        state.revision = revision;
        if len <= self.first_read {
            state.lines = index_all(&base, body, revision, count, &path)?;
        } else {
            state.unread = Some(Unread {
                body,
                revision,
                count,
                probe,
                filled,
                kinds: BTreeSet::new(),
            });
        }
        state.base = base;
        state.snapshot_file = Some(file);
        Ok(())
    }

    /// The v1 format: one JSON document; decoded fully and converted to lines.
    fn load_v1(&self, state: &mut State, bytes: &[u8]) -> Result<(), Error> {
        let path = self.dir.join(DATA);
        let corrupt = |reason: String| corrupt(&path, reason);
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
            let key = encode_key(&Key::of(&object));
            let (json, extra) = split_object(object).map_err(|e| corrupt(e.to_string()))?;
            if objects
                .insert(key, (rev, json, with_marker(extra)))
                .is_some()
            {
                return Err(corrupt(format!("objects[{i}]: duplicate key")));
            }
        }
        let objects: Vec<_> = objects
            .into_iter()
            .map(|(k, (r, j, x))| (k, r, j, x))
            .collect();
        let mut base = Vec::new();
        state.lines = snapshot_body(&objects, &mut base);
        state.revision = revision;
        state.base = base;
        state.legacy = true;
        Ok(())
    }
}
