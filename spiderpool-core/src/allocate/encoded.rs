//! A pool's `status.allocatedIPs` text kept with where each record sits in it.
//!
//! Spiderpool keeps every allocation of a pool in this one JSON string. Encoding all of it
//! again on every allocation made a pool write O(records) (35 ms on a half-full /16); with the
//! spans, a write copies the records that did not change as text and encodes only the changed
//! ones: still a copy of the text, but no formatting of thousands of addresses and records.

use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::model::PoolIPAllocation;

/// An `allocatedIPs` text and the span of each of its records, in text order, which is key
/// order.
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    /// Shared as the `String` it was built as: an `Arc<str>` would copy it once more.
    text: Arc<String>,
    spans: Vec<Span>,
    /// False for a text too large for the spans' 32-bit offsets (over 4 GiB): it is written
    /// whole, and the next write encodes every record again.
    spanned: bool,
}

/// Where one record sits: `text[start..end]` is `"key":value`, `text[start + 1..key_end]` the
/// key.
#[derive(Debug, Clone, Copy)]
struct Span {
    addr: IpAddr,
    start: u32,
    key_end: u32,
    end: u32,
}

/// One entry of a text being scanned: its key, where the key's opening quote is, its value.
pub(crate) struct Scanned<'a> {
    pub(crate) key: &'a str,
    pub(crate) start: usize,
    pub(crate) value: &'a RawValue,
}

impl Encoded {
    /// The text of a pool without records.
    pub(crate) fn empty() -> Self {
        Encoded {
            text: Arc::new(String::new()),
            spans: Vec::new(),
            spanned: true,
        }
    }

    /// `text` with its entries: (address, start of the key's quote, end of the key, end of
    /// the value).
    pub(crate) fn new(text: Arc<String>, entries: &[(IpAddr, usize, usize, usize)]) -> Self {
        if u32::try_from(text.len()).is_err() {
            return Encoded {
                text,
                spans: Vec::new(),
                spanned: false,
            };
        }
        let spans = entries
            .iter()
            .map(|&(addr, start, key_end, end)| Span {
                addr,
                start: start as u32,
                key_end: key_end as u32,
                end: end as u32,
            })
            .collect();
        Encoded {
            text,
            spans,
            spanned: true,
        }
    }

    /// How many records the text holds.
    pub(crate) fn records(&self) -> usize {
        self.spans.len()
    }

    /// Whether later writes can start from this text (see `spanned`).
    pub(crate) fn spanned(&self) -> bool {
        self.spanned
    }

    /// The text as `status.allocatedIPs` holds it: `None` without records.
    pub(crate) fn status(&self) -> Option<String> {
        (!self.text.is_empty()).then(|| self.text.as_str().to_owned())
    }

    /// The text as [`Encoded::status`] gives it, shared rather than copied.
    pub(crate) fn shared_status(&self) -> Option<Arc<String>> {
        (!self.text.is_empty()).then(|| self.text.clone())
    }

    fn key(&self, s: &Span) -> &str {
        &self.text[s.start as usize + 1..s.key_end as usize]
    }

    /// A new text: the entries of `self` whose address is not in `dirty` (sorted) copied,
    /// and `fresh` (the records now at the dirty addresses, sorted by key) encoded, merged
    /// in key order. `None` if a record cannot be encoded (serde_json cannot fail on these
    /// types; the caller still refuses to write rather than drop records). Entries that stay
    /// are copied in runs (one copy per run of neighbours, not one per entry), and the text is
    /// built as a string from pieces that are strings already, so it is not checked again.
    pub(crate) fn splice(
        &self,
        dirty: &[IpAddr],
        fresh: &[(String, IpAddr, &PoolIPAllocation)],
    ) -> Option<Encoded> {
        let mut out = String::with_capacity(self.text.len() + 160 * fresh.len() + 2);
        let mut spans = Vec::with_capacity(self.spans.len() + fresh.len());
        out.push('{');
        let mut at = 0;
        for (key, addr, record) in fresh {
            let before = at + self.spans[at..].partition_point(|s| self.key(s) < key.as_str());
            self.copy_kept(at..before, dirty, &mut out, &mut spans);
            at = before;
            if !spans.is_empty() {
                out.push(',');
            }
            let start = out.len();
            out.push_str(&serde_json::to_string(key).ok()?);
            let key_end = out.len() - 1;
            out.push(':');
            out.push_str(&serde_json::to_string(record).ok()?);
            spans.push((*addr, start, key_end, out.len()));
        }
        self.copy_kept(at..self.spans.len(), dirty, &mut out, &mut spans);
        out.push('}');
        if spans.is_empty() {
            return Some(Encoded::empty());
        }
        Some(Encoded::new(Arc::new(out), &spans))
    }

    /// Appends the entries of `self.spans[range]` whose address is not in `dirty` to `out`
    /// (comma-separated after what `out` holds), and their spans in `out` to `spans`.
    fn copy_kept(
        &self,
        range: std::ops::Range<usize>,
        dirty: &[IpAddr],
        out: &mut String,
        spans: &mut Vec<(IpAddr, usize, usize, usize)>,
    ) {
        let kept = &self.spans[range];
        let mut i = 0;
        while i < kept.len() {
            if dirty.binary_search(&kept[i].addr).is_ok() {
                i += 1;
                continue;
            }
            // A run: neighbours in the text, separated by one comma, none of them dirty.
            let mut j = i + 1;
            while j < kept.len()
                && kept[j].start == kept[j - 1].end + 1
                && self.text.as_bytes().get(kept[j - 1].end as usize) == Some(&b',')
                && dirty.binary_search(&kept[j].addr).is_err()
            {
                j += 1;
            }
            if !spans.is_empty() {
                out.push(',');
            }
            let from = kept[i].start as usize;
            let base = out.len();
            out.push_str(&self.text[from..kept[j - 1].end as usize]);
            let moved = |x: u32| x as usize - from + base;
            spans.extend(
                kept[i..j]
                    .iter()
                    .map(|s| (s.addr, moved(s.start), moved(s.key_end), moved(s.end))),
            );
            i = j;
        }
    }
}

/// A record of a newer text that [`Encoded::follow`] did not find in this one as it is.
pub(crate) struct Fresh {
    /// Its place among the newer text's spans (whose address is not set yet).
    pub(crate) span: usize,
    /// Where its key and its value are in the newer text.
    pub(crate) key: Range<usize>,
    pub(crate) value: Range<usize>,
}

/// A newer text compared with this one (see [`Encoded::follow`]).
pub(crate) struct Followed {
    /// The newer text with its spans; the addresses of the fresh records' spans are set by
    /// the caller once it has decoded their keys ([`Encoded::set_addr`]).
    pub(crate) text: Encoded,
    pub(crate) fresh: Vec<Fresh>,
    /// Addresses whose record in this text the newer one does not keep as it is (removed or
    /// changed).
    pub(crate) gone: Vec<IpAddr>,
}

impl Encoded {
    /// Compares `newer`, another `allocatedIPs` text of the same pool, with this one record by
    /// record. A record of this text found at its place in `newer` byte for byte (and not in
    /// `dirty`, sorted: addresses whose record may differ from this text's) is kept, found
    /// with one memory comparison; only the others are parsed, and only as far as where their
    /// value ends. Writers put the map in key order and copy what they did not change, so
    /// between two revisions most records are kept.
    ///
    /// `None` for a text this cannot follow: not a JSON object without whitespace (but before
    /// a value), keys not strictly increasing or escaped, a value not JSON; also past
    /// `max_fresh` records to parse, where decoding the whole text costs less. The caller then
    /// decodes it whole, which also says what is wrong with it.
    pub(crate) fn follow(
        &self,
        newer: Arc<String>,
        dirty: &[IpAddr],
        max_fresh: usize,
    ) -> Option<Followed> {
        if !self.spanned || u32::try_from(newer.len()).is_err() {
            return None;
        }
        let text = newer.as_str();
        let bytes = text.as_bytes();
        let old = self.text.as_bytes();
        let mut spans = Vec::with_capacity(self.spans.len() + 4);
        let mut fresh = Vec::new();
        let mut gone = Vec::new();
        let mut i = 0;
        match bytes {
            // No record: every one of this text is gone.
            [b'{', b'}'] => {}
            [b'{', _, ..] => {
                // An entry `"key":value` at `q`, then `,` or the closing `}`.
                let mut q = 1;
                let mut prev: &str = "";
                loop {
                    // The next record of this text, kept as it was (not yet reading the key).
                    let keeps = |s: &&Span| {
                        let was = &old[s.start as usize..s.end as usize];
                        bytes.get(q..q + was.len()) == Some(was)
                            && matches!(bytes.get(q + was.len()), Some(b',' | b'}'))
                            && (dirty.is_empty() || dirty.binary_search(&s.addr).is_err())
                    };
                    let mut kept = self.spans.get(i).filter(keeps);
                    let mut end = 0;
                    if kept.is_none() {
                        if bytes.get(q) != Some(&b'"') {
                            return None;
                        }
                        let key_end = q + 1 + text.get(q + 1..)?.find('"')?;
                        let key = &text[q + 1..key_end];
                        if key.contains('\\') || prev >= key {
                            return None;
                        }
                        // Records of this text before the key are gone; the one under it is
                        // kept, or gone when changed.
                        while let Some(s) = self.spans.get(i).filter(|s| self.key(s) < key) {
                            gone.push(s.addr);
                            i += 1;
                        }
                        let same = self.spans.get(i).filter(|s| self.key(s) == key);
                        kept = same.filter(keeps);
                        if kept.is_none() {
                            if let Some(s) = same {
                                gone.push(s.addr);
                                i += 1;
                            }
                            prev = key;
                            end = parse_fresh(text, q, key_end, max_fresh, &mut fresh, &mut spans)?;
                        }
                    }
                    if let Some(s) = kept {
                        i += 1;
                        prev = self.key(s);
                        let moved = |x: u32| x - s.start + q as u32;
                        spans.push(Span {
                            addr: s.addr,
                            start: q as u32,
                            key_end: moved(s.key_end),
                            end: moved(s.end),
                        });
                        end = q + (s.end - s.start) as usize;
                    }
                    match bytes.get(end) {
                        Some(b',') => q = end + 1,
                        Some(b'}') if end + 1 == bytes.len() => break,
                        _ => return None,
                    }
                }
            }
            _ => return None,
        }
        gone.extend(self.spans[i..].iter().map(|s| s.addr));
        Some(Followed {
            text: Encoded {
                text: newer,
                spans,
                spanned: true,
            },
            fresh,
            gone,
        })
    }

    /// Sets the address of the record at `span` (see [`Followed::text`]).
    pub(crate) fn set_addr(&mut self, span: usize, addr: IpAddr) {
        if let Some(s) = self.spans.get_mut(span) {
            s.addr = addr;
        }
    }
}

/// Parses the value of the entry whose key is `text[q + 1..key_end]` (a record
/// [`Encoded::follow`] did not find in this text), notes it as fresh and gives its span
/// (its address not set yet); gives where its value ends. `None` past `max_fresh` fresh
/// records or for a value that is not JSON.
fn parse_fresh(
    text: &str,
    q: usize,
    key_end: usize,
    max_fresh: usize,
    fresh: &mut Vec<Fresh>,
    spans: &mut Vec<Span>,
) -> Option<usize> {
    if fresh.len() == max_fresh || text.as_bytes().get(key_end + 1) != Some(&b':') {
        return None;
    }
    let rest = &text[key_end + 2..];
    let mut de = serde_json::Deserializer::from_str(rest);
    let value = <&RawValue>::deserialize(&mut de).ok()?.get();
    let from = offset(text, value);
    let end = from + value.len();
    fresh.push(Fresh {
        span: spans.len(),
        key: q + 1..key_end,
        value: from..end,
    });
    spans.push(Span {
        addr: IpAddr::from([0u8; 4]),
        start: q as u32,
        key_end: key_end as u32,
        end: end as u32,
    });
    Some(end)
}

/// The entries of an `allocatedIPs` text in text order, when it is a JSON object whose keys
/// need no unescaping and strictly increase, as Go's and our encoders write them. `None`
/// otherwise (not JSON, escaped or unsorted or repeated keys): the caller then decodes the
/// text the general way, which also reports what is wrong with it.
pub(crate) fn scan(text: &str) -> Option<Vec<Scanned<'_>>> {
    let Entries(entries) = serde_json::from_str(text).ok()?;
    let base = text.as_ptr() as usize;
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        if out.last().is_some_and(|prev: &Scanned| prev.key >= key) {
            return None;
        }
        // The key is borrowed from `text`, just after its opening quote.
        let start = (key.as_ptr() as usize).checked_sub(base + 1)?;
        out.push(Scanned { key, start, value });
    }
    Some(out)
}

/// The offset of `part`, a slice of `text`, in it.
pub(crate) fn offset(text: &str, part: &str) -> usize {
    part.as_ptr() as usize - text.as_ptr() as usize
}

/// A JSON object's entries with borrowed keys and raw values.
struct Entries<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(key) = map.next_key::<&'de str>()? {
                    out.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_spans_and_refuses_what_it_cannot_splice() {
        let text =
            r#" {"10.0.0.1": {"pod":"a/b","podUid":"u"} ,"10.0.0.2":{"pod":"c/d","podUid":"v"}}"#;
        let s = scan(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(&text[s[0].start..s[0].start + 11], "\"10.0.0.1\":");
        assert_eq!(s[1].value.get(), r#"{"pod":"c/d","podUid":"v"}"#);
        assert_eq!(
            offset(text, s[1].value.get()) + s[1].value.get().len(),
            text.len() - 1
        );
        for bad in [
            r#"{"10.0.0.2":{},"10.0.0.1":{}}"#, // unsorted
            r#"{"10.0.0.1":{},"10.0.0.1":{}}"#, // repeated
            r#"{"10.0.0.\u0031":{}}"#,          // escaped key
            r#"["10.0.0.1"]"#,
            r#"{"10.0.0.1":"#,
        ] {
            assert!(scan(bad).is_none(), "{bad}");
        }
    }
}
