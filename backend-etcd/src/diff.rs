//! Which records of a pool an update changes, without parsing all of its new
//! `status.allocatedIPs`.
//!
//! The store serves a pool's records as one JSON map it assembles itself, and knows where each
//! record lies in that text ([`Assembled`]). A planner (spiderpool-core) writes the new text by
//! keeping the records it did not touch byte for byte, so the old and the new text share a
//! long start and a long end. [`middle`] finds the old records inside those shared parts and
//! parses only the new text between them. Records it keeps are the same bytes, hence the same
//! records; anything it cannot account for exactly (a text written some other way, keys out of
//! order, a separator missing) returns `None`, and the caller parses the whole text instead.

use std::collections::BTreeMap;
use std::ops::Range;

use spiderpool_core::model::{PoolIPAllocation, PoolIPAllocations};

/// A pool's records as the store serves them: the JSON map and where each record (`"ip":{…}`)
/// lies in it, in key order.
pub(crate) struct Assembled {
    /// `{"ip":{…},…}`, or `None` for no records.
    pub(crate) text: Option<String>,
    /// Byte range of each record in `text`, in key order.
    pub(crate) spans: Vec<Range<usize>>,
}

/// Assembles `records` (key order) into Spiderpool's map encoding, noting each record's span.
pub(crate) fn assemble<'a, I>(records: I) -> Assembled
where
    I: IntoIterator<Item = (&'a String, &'a PoolIPAllocation)>,
{
    let mut text = String::from("{");
    let mut spans = Vec::new();
    for (ip, rec) in records {
        if spans.is_empty() {
            text.reserve(64);
        } else {
            text.push(',');
        }
        let start = text.len();
        // Neither a string nor this record can fail to serialise.
        text.push_str(&serde_json::to_string(ip).unwrap_or_default());
        text.push(':');
        text.push_str(&serde_json::to_string(rec).unwrap_or_default());
        spans.push(start..text.len());
    }
    text.push('}');
    Assembled {
        text: (!spans.is_empty()).then_some(text),
        spans,
    }
}

/// What a new text changes against the old one: the old records (by position in key order)
/// it replaces, and the records it has in their place.
#[derive(Debug, PartialEq)]
pub(crate) struct Middle {
    /// Positions of the old records the new text does not keep byte for byte.
    pub(crate) old: Range<usize>,
    /// The new text's records in their place.
    pub(crate) new: PoolIPAllocations,
}

/// Compares `new` with `old`, the text [`assemble`]d from `records` with record spans `spans`:
/// `None` when the new text cannot be accounted for as the old one with a run of records
/// replaced.
pub(crate) fn middle<V>(
    old: &str,
    spans: &[Range<usize>],
    records: &BTreeMap<String, V>,
    new: &str,
) -> Option<Middle> {
    let (o, n) = (old.as_bytes(), new.as_bytes());
    if spans.len() != records.len() || !old.starts_with('{') || !old.ends_with('}') {
        return None;
    }
    let most = o.len().min(n.len());
    let prefix = o.iter().zip(n).take_while(|(a, b)| a == b).count();
    // Records wholly inside the shared start; the new text between them and the end starts
    // after `{` or the last of them.
    let kept_start = spans.partition_point(|s| s.end <= prefix);
    let from = kept_start
        .checked_sub(1)
        .and_then(|i| spans.get(i))
        .map_or(1, |s| s.end);
    // Not even the `{` shared (a new text that is empty or not a map).
    if from > prefix {
        return None;
    }
    // The shared end, not reaching into the kept start (so that a record whose first bytes
    // happen to match an added one's can still be kept at the end).
    let suffix = o
        .iter()
        .rev()
        .zip(n.iter().rev())
        .take(most - from)
        .take_while(|(a, b)| a == b)
        .count();
    let count = spans.len();
    // From which record on they are wholly inside the shared end; the new text between ends
    // where the first of them (or the closing `}`) begins.
    let kept_end = kept_start + spans[kept_start..].partition_point(|s| s.start < o.len() - suffix);
    let to_old = spans.get(kept_end).map_or(o.len() - 1, |s| s.start);
    if o.len() - to_old > suffix {
        return None;
    }
    let mid = new.get(from..n.len() - (o.len() - to_old))?;
    let (before, after) = (kept_start > 0, kept_end < count);
    let inner = match (before, after) {
        (true, true) if mid == "," => "",
        (true, true) => mid.strip_prefix(',')?.strip_suffix(',')?,
        _ if mid.is_empty() => "",
        (true, false) => mid.strip_prefix(',')?,
        (false, true) => mid.strip_suffix(',')?,
        (false, false) => mid,
    };
    let new_records: PoolIPAllocations = if inner.is_empty() {
        // Nothing between the kept records: valid only as exactly one comma between two of
        // them, or nothing at all next to `{` or `}`.
        if !(mid.is_empty() || (before && after && mid == ",")) {
            return None;
        }
        PoolIPAllocations::new()
    } else {
        let parsed: PoolIPAllocations = serde_json::from_str(&format!("{{{inner}}}")).ok()?;
        // An empty map from a text that was not empty (`{ }`) has no place between records.
        if parsed.is_empty() {
            return None;
        }
        parsed
    };
    // The kept records keep their places only if the new ones sort between them.
    let mut keys = records.keys();
    let last_before = kept_start.checked_sub(1).and_then(|i| keys.nth(i));
    let first_after = records.keys().nth(kept_end);
    if let (Some(lo), Some(first)) = (last_before, new_records.keys().next()) {
        if first <= lo {
            return None;
        }
    }
    if let (Some(hi), Some(last)) = (first_after, new_records.keys().next_back()) {
        if last >= hi {
            return None;
        }
    }
    Some(Middle {
        old: kept_start..kept_end,
        new: new_records,
    })
}

/// Whether `records` (old, in key order) with `m` applied are exactly `whole` (the new text
/// parsed in full): what [`middle`] promises.
pub(crate) fn agrees<V>(
    records: &BTreeMap<String, (PoolIPAllocation, V)>,
    m: &Middle,
    whole: Option<&PoolIPAllocations>,
) -> bool {
    let Some(whole) = whole else {
        return false;
    };
    let kept = records
        .iter()
        .enumerate()
        .filter(|(i, _)| !m.old.contains(i))
        .map(|(_, (k, (r, _)))| (k, r));
    let mut applied: BTreeMap<&String, &PoolIPAllocation> = kept.collect();
    let kept_len = applied.len();
    applied.extend(m.new.iter());
    applied.len() == kept_len + m.new.len()
        && applied.len() == whole.len()
        && applied.iter().all(|(k, r)| whole.get(*k) == Some(*r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(pod: &str) -> PoolIPAllocation {
        PoolIPAllocation {
            pod: pod.to_string(),
            pod_uid: format!("uid-{pod}"),
            interface: Some("eth0".into()),
            extra: Default::default(),
        }
    }

    fn map(entries: &[(&str, &str)]) -> PoolIPAllocations {
        entries
            .iter()
            .map(|(ip, pod)| (ip.to_string(), rec(pod)))
            .collect()
    }

    /// What the whole-text path concludes: the new records replace every old one.
    fn apply(old: &PoolIPAllocations, m: &Middle) -> PoolIPAllocations {
        let mut out: PoolIPAllocations = old
            .iter()
            .enumerate()
            .filter(|(i, _)| !m.old.contains(i))
            .map(|(_, (k, v))| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &m.new {
            assert!(
                out.insert(k.clone(), v.clone()).is_none(),
                "{k} kept and new"
            );
        }
        out
    }

    #[test]
    fn an_added_record_is_the_only_one_parsed() {
        let old = map(&[("10.0.0.1", "ns/a"), ("10.0.0.3", "ns/c")]);
        let asm = assemble(&old);
        let mut new = old.clone();
        new.insert("10.0.0.2".into(), rec("ns/b"));
        let text = serde_json::to_string(&new).unwrap();
        let m = at(&asm, &old, &text).unwrap();
        assert_eq!(m.new, map(&[("10.0.0.2", "ns/b")]));
        assert_eq!(apply(&old, &m), new);
    }

    #[test]
    fn a_text_with_a_separator_missing_is_refused() {
        let old = map(&[
            ("10.0.0.1", "ns/a"),
            ("10.0.0.2", "ns/b"),
            ("10.0.0.3", "ns/c"),
        ]);
        let asm = assemble(&old);
        let t = asm.text.clone().unwrap();
        // The middle record cut out together with both of its commas.
        let s = &asm.spans[1];
        let broken = format!("{}{}", &t[..s.start - 1], &t[s.end + 1..]);
        assert_eq!(at(&asm, &old, &broken), None);
        // Cut out with one comma: a valid deletion.
        let ok = format!("{}{}", &t[..s.start], &t[s.end + 1..]);
        let m = at(&asm, &old, &ok).unwrap();
        assert_eq!(
            apply(&old, &m),
            map(&[("10.0.0.1", "ns/a"), ("10.0.0.3", "ns/c")])
        );
    }

    #[test]
    fn a_record_out_of_key_order_is_refused() {
        let old = map(&[("10.0.0.1", "ns/a"), ("10.0.0.5", "ns/c")]);
        let asm = assemble(&old);
        // A duplicate of a kept key placed between the kept records.
        let t = asm.text.clone().unwrap();
        let s = &asm.spans[0];
        let dup = format!("{},{}{}", &t[..s.end], &t[s.start..s.end], &t[s.end..]);
        assert_eq!(at(&asm, &old, &dup), None);
    }

    fn at(asm: &Assembled, old: &PoolIPAllocations, new: &str) -> Option<Middle> {
        middle(asm.text.as_deref()?, &asm.spans, old, new)
    }

    #[test]
    fn a_text_that_is_not_a_map_is_refused() {
        let old = map(&[("10.0.0.1", "ns/a")]);
        for text in ["", "[]", "null", "{", "}"] {
            assert_eq!(at(&assemble(&old), &old, text), None, "{text:?}");
        }
    }

    fn ip(i: u8) -> String {
        format!("10.0.0.{i}")
    }

    proptest! {
        /// Whatever the change, a middle that is found gives exactly the records of the whole
        /// new text; and the core's kind of edit (records added, changed or removed, the rest
        /// kept byte for byte) is always found.
        #[test]
        fn the_middle_and_the_kept_records_are_the_whole_new_text(
            old in proptest::collection::btree_map(0u8..40, 0u8..4, 0..12),
            new in proptest::collection::btree_map(0u8..40, 0u8..4, 0..12),
        ) {
            let old: PoolIPAllocations =
                old.iter().map(|(i, p)| (ip(*i), rec(&format!("p{p}")))).collect();
            let new: PoolIPAllocations =
                new.iter().map(|(i, p)| (ip(*i), rec(&format!("p{p}")))).collect();
            let asm = assemble(&old);
            let text = serde_json::to_string(&new).unwrap();
            match at(&asm, &old, &text) {
                Some(m) => prop_assert_eq!(apply(&old, &m), new),
                None => prop_assert!(old.is_empty(), "not found for a canonical text"),
            }
            // Arbitrary cuts of the new text: never a wrong answer.
            for cut in [1usize, 7, 13] {
                if text.len() > cut {
                    let mut t = text.clone();
                    t.remove((text.len() - 1) / cut);
                    if let Some(m) = at(&asm, &old, &t) {
                        let whole: Result<PoolIPAllocations, _> = serde_json::from_str(&t);
                        prop_assert_eq!(Some(apply(&old, &m)), whole.ok());
                    }
                }
            }
        }
    }
}
