//! Writing: a commit appended to the journal as one checksummed record and flushed, or, when
//! the journal has grown, folded with everything into a new snapshot (temporary file, flush,
//! rename, directory flush, journal emptied). Every step is a failpoint.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek as _, SeekFrom, Write as _};
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::codec::{checksum, encode_key, snapshot_body, split_object};
use super::failpoint::failpoint;
use super::{
    cut, file_id, Entry, Flat, LocalStore, Src, State, DATA, FORMAT, JOURNAL, MAX_RECORDS,
    MIN_COMPACT_BYTES, TEMP,
};
use crate::Error;
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
            let (json, extra) =
                split_object(crate::objects::with_revision(object, rev)).map_err(storage)?;
            let old = state
                .lookup(&encoded)
                .map(|e| state.concat(&e.extra))
                .unwrap_or_default();
            let prefix = old.iter().zip(&extra).take_while(|(a, b)| a == b).count();
            let room = old.len().min(extra.len()) - prefix;
            let suffix = old
                .iter()
                .rev()
                .zip(extra.iter().rev())
                .take(room)
                .take_while(|(a, b)| a == b)
                .count();
            let mid = prefix..extra.len() - suffix;
            let patch = !old.is_empty() && mid.len() < extra.len() / 2;
            body.extend_from_slice(if patch { b"~\t" } else { b"+\t" });
            body.extend_from_slice(&encoded);
            body.extend_from_slice(format!("\t{rev}\t").as_bytes());
            let j = body.len();
            body.extend_from_slice(&json);
            let json_range = j..body.len();
            let extra_part = if patch {
                body.extend_from_slice(format!("\t{prefix}\t{suffix}\t").as_bytes());
                let m = body.len();
                body.extend_from_slice(&extra[mid]);
                BodyExtra::Patch {
                    prefix,
                    suffix,
                    old_len: old.len(),
                    mid: m..body.len(),
                }
            } else {
                body.push(b'\t');
                let m = body.len();
                body.extend_from_slice(&extra);
                BodyExtra::Full(m..body.len())
            };
            body.push(b'\n');
            changes.push((encoded, Some((rev, json_range, extra_part))));
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
        let created = !jpath.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&jpath)
            .map_err(io)?;
        if created {
            failpoint("journal-created");
            fsync_dir(&self.dir)?;
        }
        // Cut off a record a crash left unfinished: its commit never returned.
        if file.metadata().map_err(io)?.len() != journal_len as u64 {
            file.set_len(journal_len as u64).map_err(io)?;
            failpoint("journal-tail-cut");
        }
        file.seek(SeekFrom::Start(journal_len as u64)).map_err(io)?;
        failpoint("journal-before-write");
        // One write, or two in a `failpoints` build so that a test can die between them.
        let half = if cfg!(feature = "failpoints") {
            record.len() / 2
        } else {
            record.len()
        };
        file.write_all(&record[..half]).map_err(io)?;
        failpoint("journal-half-written");
        file.write_all(&record[half..]).map_err(io)?;
        failpoint("journal-written");
        file.sync_data().map_err(io)?;
        failpoint("journal-synced");
        state.journal_id = file_id(&jpath)?;
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

pub(super) fn fsync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })
}
