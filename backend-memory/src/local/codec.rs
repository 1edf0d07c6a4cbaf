//! The text of the store's files: keys and object lines, the `%`-escaping of their fields,
//! the large `allocatedIPs` field kept apart, record checksums.

use std::ops::Range;

use super::find::{find, find3, find_n};

use serde_json::Value;
use spiderpool_core::model::Object;
use spiderpool_core::store::Key;

use super::{Entry, Flat, Src};

/// Splits the object's JSON into the JSON without `status.allocatedIPs` and that field
/// escaped (the one field that grows with a pool's allocations), `None` when absent. The
/// field is stored after a marker byte `s` (see [`with_marker`]).
pub(super) fn split_object(
    object: Object,
) -> Result<(Vec<u8>, Option<Vec<u8>>), serde_json::Error> {
    let (json, field, _) = split_object_keeping(object)?;
    Ok((json, field.map(Field::into_bytes)))
}

/// A `status.allocatedIPs` as stored: the text itself when it has nothing to escape (kept as
/// the string it was, so that the object can be put back together without a copy), else
/// escaped.
pub(super) enum Field {
    Plain(String),
    Escaped(Vec<u8>),
}

impl Field {
    /// `s` as stored: escaped as [`escape_into`] does, or itself, without a copy, when
    /// nothing needs escaping (compact JSON has no TAB, CR or LF, and `%` only in strings).
    pub(super) fn of(s: String) -> Self {
        let bytes = s.as_bytes();
        if find3(b'\t', b'\n', b'\r', bytes).is_none() && find(b'%', bytes).is_none() {
            return Field::Plain(s);
        }
        let mut out = Vec::new();
        escape_into(&mut out, &s);
        Field::Escaped(out)
    }

    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Field::Plain(s) => s.as_bytes(),
            Field::Escaped(b) => b,
        }
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        match self {
            Field::Plain(s) => s.into_bytes(),
            Field::Escaped(b) => b,
        }
    }
}

/// [`split_object`], also giving back the object: a pool without its `allocatedIPs` (see
/// [`reassemble`]), any other object as it was.
pub(super) fn split_object_keeping(
    mut object: Object,
) -> Result<(Vec<u8>, Option<Field>, Object), serde_json::Error> {
    // A pool's records are taken out before the object becomes JSON: the largest field is
    // then neither copied into the value nor escaped as a JSON string on the way.
    if let Object::IpPool(pool) = &mut object {
        if let Some(s) = pool.status.allocated_ips.take() {
            let field = Field::of(s);
            // As if the field were removed from the JSON: the status stays, if only `{}`.
            let mut value = object.to_value();
            if let Some(fields) = value.as_object_mut() {
                fields
                    .entry("status")
                    .or_insert_with(|| Value::Object(Default::default()));
            }
            return Ok((serde_json::to_vec(&value)?, Some(field), object));
        }
    }
    let mut value = object.to_value();
    let mut extra = None;
    if let Some(status) = value.get_mut("status").and_then(Value::as_object_mut) {
        match status.remove("allocatedIPs") {
            Some(Value::String(s)) => extra = Some(Field::of(s)),
            Some(other) => {
                status.insert("allocatedIPs".into(), other);
            }
            None => {}
        }
    }
    Ok((serde_json::to_vec(&value)?, extra, object))
}

/// The object [`split_object_keeping`] split, whole again: `None` when that would need a
/// copy (a pool whose records had to be escaped).
pub(super) fn reassemble(mut object: Object, field: Option<Field>) -> Option<Object> {
    if let Object::IpPool(pool) = &mut object {
        match field {
            Some(Field::Plain(s)) => pool.status.allocated_ips = Some(s),
            Some(Field::Escaped(_)) => return None,
            None => {}
        }
    }
    Some(object)
}

/// The stored form of an escaped `status.allocatedIPs`: the marker `s` and the text; empty
/// when absent.
pub(super) fn with_marker(extra: Option<Vec<u8>>) -> Vec<u8> {
    match extra {
        None => Vec::new(),
        Some(text) => {
            let mut out = Vec::with_capacity(text.len() + 1);
            out.push(b's');
            out.extend_from_slice(&text);
            out
        }
    }
}

/// Undoes [`escape_into`].
#[cfg(test)]
pub(super) fn unescape(bytes: &[u8]) -> Option<String> {
    unescape_from(bytes.to_vec(), 0)
}

/// Undoes [`escape_into`] on `bytes[skip..]`, in place: no second copy of a large field.
pub(super) fn unescape_from(mut bytes: Vec<u8>, skip: usize) -> Option<String> {
    let (mut read, mut write) = (skip, 0);
    while let Some(p) = find(b'%', bytes.get(read..)?) {
        bytes.copy_within(read..read + p, write);
        write += p;
        read += p;
        let hex = bytes.get(read + 1..read + 3)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        bytes[write] = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
        write += 1;
        read += 3;
    }
    let len = bytes.len();
    bytes.copy_within(read..len, write);
    bytes.truncate(write + len - read);
    String::from_utf8(bytes).ok()
}

/// The positions of the first `n` TABs of `line` (fewer if it has fewer).
pub(super) fn tabs(line: &str, n: usize) -> Vec<usize> {
    find_n(b'\t', line.as_bytes(), n)
}

/// Appends `s` with `%`, TAB and newline escaped, so that key fields split on TAB.
pub(super) fn escape_into(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len());
    // Runs without a byte to escape are copied whole (compact JSON has none but `%`).
    for piece in s
        .as_bytes()
        .split_inclusive(|b| matches!(b, b'%' | b'\t' | b'\n' | b'\r'))
    {
        let (last, run) = piece.split_last().map_or((0, piece), |(l, r)| (*l, r));
        let escaped: &[u8] = match last {
            b'%' => b"%25",
            b'\t' => b"%09",
            b'\n' => b"%0A",
            b'\r' => b"%0D",
            _ => {
                out.extend_from_slice(piece);
                continue;
            }
        };
        out.extend_from_slice(run);
        out.extend_from_slice(escaped);
    }
}

/// `kind TAB (empty | "+" namespace) TAB name`, escaped.
pub(super) fn encode_key(key: &Key) -> Vec<u8> {
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

/// A journal record's checksum as its header writes it: `x` and the body's XXH3-64 in 16 hex
/// digits.
pub(super) fn checksum_field(body: &[u8]) -> String {
    format!("x{:016x}", twox_hash::XxHash3_64::oneshot(body))
}

/// Whether a header's checksum `field` is that of `body`: `x` and XXH3-64 (records written
/// now), or 16 hex digits of FNV-1a 64 (records of earlier versions, byte by byte and ~8×
/// slower, still read). `None`: not a checksum field.
pub(super) fn checksum_matches(field: &str, body: &[u8]) -> Option<bool> {
    let (hex, sum): (&str, fn(&[u8]) -> u64) = match field.strip_prefix('x') {
        Some(hex) => (hex, twox_hash::XxHash3_64::oneshot),
        None => (field, fnv1a),
    };
    let want = u64::from_str_radix(hex, 16).ok()?;
    Some(sum(body) == want)
}

/// 64-bit FNV-1a: the checksum of journal records written before XXH3.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Appends object lines (sorted by key) to `out`; returns their index over `out`.
pub(super) fn snapshot_body(objects: &[Flat], out: &mut Vec<u8>) -> Vec<(Range<usize>, Entry)> {
    let mut lines = Vec::with_capacity(objects.len());
    for (k, rev, json, extra) in objects {
        let start = out.len();
        out.extend_from_slice(k);
        let key = start..out.len();
        out.extend_from_slice(format!("\t{rev}\t").as_bytes());
        let j = out.len();
        out.extend_from_slice(json);
        let json = j..out.len();
        out.push(b'\t');
        let x = out.len();
        out.extend_from_slice(extra);
        let extra = if extra.is_empty() {
            Vec::new()
        } else {
            vec![(Src::Base, x..out.len())]
        };
        out.push(b'\n');
        let entry = Entry {
            rev: *rev,
            json: (Src::Base, json),
            extra,
        };
        lines.push((key, entry));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::{checksum_field, checksum_matches, escape_into, unescape, unescape_from, Field};

    #[test]
    fn escaping_round_trips_and_leaves_no_separator() {
        for s in [
            "",
            "plain {\"10.0.0.1\":{\"pod\":\"a/b\"}}",
            "%",
            "a%b\tc\nd\re%%",
            "\t\n\r%x",
            "ünïcödé\t€%",
        ] {
            let mut out = Vec::new();
            escape_into(&mut out, s);
            assert!(
                !out.iter().any(|b| matches!(b, b'\t' | b'\n' | b'\r')),
                "{s:?}"
            );
            assert_eq!(unescape(&out).as_deref(), Some(s), "{s:?}");
            assert_eq!(Field::of(s.to_string()).into_bytes(), out, "{s:?}");
            let mut marked = b"s".to_vec();
            marked.extend_from_slice(&out);
            assert_eq!(unescape_from(marked, 1).as_deref(), Some(s), "{s:?}");
        }
        assert_eq!(unescape(b"a%0"), None);
        assert_eq!(unescape(b"a%zz"), None);
        assert_eq!(unescape(b"a%+1"), None);
        assert_eq!(unescape_from(b"s%".to_vec(), 1), None);
        assert_eq!(unescape_from(b"s".to_vec(), 1).as_deref(), Some(""));
    }

    #[test]
    fn records_are_checksummed_with_xxh3_and_older_fnv_records_still_check() {
        // Reference values: XXH3-64 and FNV-1a 64 of "" and of "a".
        assert_eq!(checksum_field(b""), "x2d06800538d394c2");
        assert_eq!(checksum_matches("x2d06800538d394c2", b""), Some(true));
        assert_eq!(checksum_matches("xe6c632b61e964e1f", b"a"), Some(true));
        assert_eq!(checksum_matches("cbf29ce484222325", b""), Some(true));
        assert_eq!(checksum_matches("af63dc4c8601ec8c", b"a"), Some(true));
        // The other algorithm's value, a flipped bit, not a checksum.
        assert_eq!(checksum_matches("af63dc4c8601ec8c", b"b"), Some(false));
        assert_eq!(checksum_matches("xaf63dc4c8601ec8c", b"a"), Some(false));
        assert_eq!(checksum_matches("x2d06800538d394c3", b""), Some(false));
        for bad in ["", "x", "xyz", "g0", "x-1"] {
            assert_eq!(checksum_matches(bad, b""), None, "{bad:?}");
        }
    }
}
