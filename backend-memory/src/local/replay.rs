//! Replaying the journal over the snapshot: record by record, checksums checked; a record cut
//! short at the end is a commit that never returned (ignored), anything else malformed is
//! corruption. The zeros after the last record (room kept for the next ones) are not content.

use std::ops::Range;
use std::path::Path;

use super::codec::{checksum_matches, tabs};
use super::find::find;
use super::{cut, Entry, Src, State};
use crate::Error;

/// Replays the journal (`path`) over the snapshot (`snapshot_path`).
pub(super) fn replay(
    state: &mut State,
    bytes: Vec<u8>,
    path: &Path,
    snapshot_path: &Path,
) -> Result<(), Error> {
    let corrupt = |at: usize, reason: &str| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("byte {at}: {reason}"),
    };
    // Only whole records are valid UTF-8 for sure: check up to the last one later.
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
    };
    let mut at = 0;
    let mut valid = 0;
    let mut revision = state.revision;
    // The zeros kept after the last record for the next ones are not part of the journal.
    let content_end = content_end(&bytes);
    // The fields' pieces point into the journal: it is in the state while replaying.
    state.journal = bytes[..content_end].to_vec();
    while at < content_end {
        if bytes[at] == 0 {
            break; // a record whose first bytes never reached the disk: torn
        }
        let header = text
            .as_bytes()
            .get(at..)
            .and_then(|t| find(b'\n', t))
            .and_then(|nl| text.get(at..at + nl));
        let Some(header) = header else {
            break; // a header cut short: torn
        };
        let nl = header.len();
        let fields: Vec<&str> = header.split(' ').collect();
        let parsed = match &fields[..] {
            [before, count, len, sum] if before.starts_with('#') => before[1..]
                .parse::<u64>()
                .ok()
                .zip(count.parse::<u64>().ok())
                .zip(len.parse::<usize>().ok())
                .map(|bcl| (bcl, *sum)),
            _ => None,
        };
        let Some((((before, count), len), sum)) = parsed else {
            return Err(corrupt(at, "not a journal record"));
        };
        let body_start = at + nl + 1;
        let body_end = body_start.saturating_add(len);
        if body_end > content_end {
            break; // a body cut short: torn
        }
        let Some(sum_ok) = checksum_matches(sum, &bytes[body_start..body_end]) else {
            return Err(corrupt(at, "not a journal record"));
        };
        if !sum_ok {
            if body_end == content_end {
                break; // the last record, damaged by the crash that cut it: torn
            }
            return Err(corrupt(at, "checksum mismatch"));
        }
        let Some(body) = text.get(body_start..body_end) else {
            return Err(corrupt(at, "not UTF-8"));
        };
        let Some(end) = before.checked_add(count) else {
            return Err(corrupt(at, "revision out of range"));
        };
        if end <= revision {
            // Already in the snapshot (a crash came between the snapshot and emptying us).
        } else if before == revision {
            let mut line_at = body_start;
            for line in body.split_terminator('\n') {
                revision = revision
                    .checked_add(1)
                    .ok_or_else(|| corrupt(line_at, "revision out of range"))?;
                let t = tabs(line, 8);
                let rev_ok = |r: &str| r.parse::<u64>().ok() == Some(revision);
                let span = |r: Range<usize>| (Src::Journal, line_at + r.start..line_at + r.end);
                let change = match (line.as_bytes().first(), &t[..]) {
                    (Some(b'+'), [_, _, _, t4, t5, t6]) if rev_ok(&line[t4 + 1..*t5]) => {
                        let extra = t6 + 1..line.len();
                        Some(Entry {
                            rev: revision,
                            json: span(t5 + 1..*t6),
                            extra: if extra.is_empty() {
                                Vec::new()
                            } else {
                                vec![span(extra)]
                            },
                        })
                    }
                    (Some(b'~'), [_, _, _, t4, t5, t6, t7, t8]) if rev_ok(&line[t4 + 1..*t5]) => {
                        let key = &line.as_bytes()[2..*t4];
                        state.load_key(key, snapshot_path)?;
                        let old = state
                            .overlay
                            .get(key)
                            .cloned()
                            .unwrap_or_else(|| state.lookup(key).cloned())
                            .ok_or_else(|| corrupt(line_at, "a patch of a missing object"))?;
                        let old_len: usize = old.extra.iter().map(|s| s.1.len()).sum();
                        let prefix = line[t6 + 1..*t7].parse::<usize>().ok();
                        let suffix = line[t7 + 1..*t8].parse::<usize>().ok();
                        let (Some(prefix), Some(suffix)) = (prefix, suffix) else {
                            return Err(corrupt(line_at, "a bad patch"));
                        };
                        if prefix.checked_add(suffix).is_none_or(|n| n > old_len) {
                            return Err(corrupt(line_at, "a patch beyond the object"));
                        }
                        let mut extra = cut(&old.extra, 0..prefix);
                        if t8 + 1 < line.len() {
                            extra.push(span(t8 + 1..line.len()));
                        }
                        extra.extend(cut(&old.extra, old_len - suffix..old_len));
                        Some(Entry {
                            rev: revision,
                            json: span(t5 + 1..*t6),
                            extra,
                        })
                    }
                    (Some(b'-'), [_, _, _, t4]) if rev_ok(&line[t4 + 1..]) => None,
                    _ => return Err(corrupt(line_at, "not a change in sequence")),
                };
                let key = line.get(2..t[3]).unwrap_or_default().as_bytes().to_vec();
                state.put(key, change);
                line_at += line.len() + 1;
            }
            if revision != end {
                return Err(corrupt(at, "fewer changes than announced"));
            }
            state.records += 1;
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
    state.journal_torn = content_end > valid;
    Ok(())
}

/// Where the journal's content ends: past its last byte that is not zero.
fn content_end(bytes: &[u8]) -> usize {
    const WORD: usize = 16;
    let mut end = bytes.len();
    // Word by word through the zeros (up to `JOURNAL_ROOM` of them), then byte by byte.
    while end >= WORD {
        let word: [u8; WORD] = bytes[end - WORD..end].try_into().unwrap_or([1; WORD]);
        if u128::from_ne_bytes(word) != 0 {
            break;
        }
        end -= WORD;
    }
    while end > 0 && bytes[end - 1] == 0 {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::content_end;

    #[test]
    fn content_ends_after_the_last_byte_that_is_not_zero() {
        for (bytes, end) in [
            (&b""[..], 0),
            (b"\0\0\0", 0),
            (b"#1\n", 3),
            (b"#1\n\0", 3),
            (b"a\0b\0\0", 3),
        ] {
            assert_eq!(content_end(bytes), end, "{bytes:?}");
        }
        for zeros in [0, 1, 15, 16, 17, 31, 32, 33, 1000] {
            for lead in [0, 1, 5, 16, 17] {
                let mut v = vec![b'x'; lead];
                v.extend(std::iter::repeat_n(0u8, zeros));
                assert_eq!(content_end(&v), lead, "{lead} then {zeros} zeros");
            }
        }
    }
}
