//! `Deserialize` for [`PoolIPAllocation`] without `#[serde(flatten)]`: known fields are read
//! in place, unknown ones go to `extra` as they come. A pool's `status.allocatedIPs` holds one
//! record per address, so this is on the allocation path of every process that reads a pool.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use super::ippool::PoolIPAllocation;
use super::meta::Extra;

impl<'de> Deserialize<'de> for PoolIPAllocation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RecordVisitor)
    }
}

struct RecordVisitor;

/// A field name, borrowed from the input when it can be.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(v.to_string().into()))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = PoolIPAllocation;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an allocation record (an object with pod and podUid)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pod: Option<String> = None;
        let mut uid: Option<String> = None;
        let mut interface: Option<Option<String>> = None;
        let mut extra = Extra::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                "pod" => set_once(&mut pod, "pod", map.next_value()?)?,
                "podUid" => set_once(&mut uid, "podUid", map.next_value()?)?,
                "interface" => set_once(&mut interface, "interface", map.next_value()?)?,
                _ => {
                    let value = map.next_value()?;
                    if extra.insert(key.into_owned(), value).is_some() {
                        return Err(de::Error::custom("duplicate field in an allocation record"));
                    }
                }
            }
        }
        Ok(PoolIPAllocation {
            pod: pod.ok_or_else(|| de::Error::missing_field("pod"))?,
            pod_uid: uid.ok_or_else(|| de::Error::missing_field("podUid"))?,
            interface: interface.flatten(),
            extra,
        })
    }
}

fn set_once<T, E: de::Error>(slot: &mut Option<T>, name: &'static str, v: T) -> Result<(), E> {
    if slot.replace(v).is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    Ok(())
}

/// The fields of a record in the plain shape, borrowed from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PlainRecord<'a> {
    pub(crate) pod: &'a str,
    pub(crate) pod_uid: &'a str,
    pub(crate) interface: Option<&'a str>,
}

impl PlainRecord<'_> {
    /// The record these fields make (a plain record has no other field).
    pub(crate) fn to_record(self) -> PoolIPAllocation {
        PoolIPAllocation {
            pod: self.pod.to_string(),
            pod_uid: self.pod_uid.to_string(),
            interface: self.interface.map(str::to_string),
            extra: Extra::new(),
        }
    }
}

/// The common shape of a record, read without serde: an object of `pod`, `podUid` and
/// optionally `interface` (any order, each once), string values without escapes or control
/// characters, no whitespace: what this crate and Spiderpool write. Anything else is `None`,
/// and the caller decodes it with serde (which also gives the error for a bad record); for
/// what it accepts the result is the one serde gives.
#[cfg(test)]
fn parse_plain(text: &str) -> Option<PoolIPAllocation> {
    parse_plain_fields(text).map(PlainRecord::to_record)
}

/// [`parse_plain`] without copying the fields out of `text`.
pub(crate) fn parse_plain_fields(text: &str) -> Option<PlainRecord<'_>> {
    let mut rest = text.strip_prefix('{')?.strip_suffix('}')?;
    let (mut pod, mut uid, mut interface) = (None, None, None);
    loop {
        let key;
        (key, rest) = plain_string(rest)?;
        rest = rest.strip_prefix(':')?;
        let value;
        (value, rest) = plain_string(rest)?;
        let slot = match key {
            "pod" => &mut pod,
            "podUid" => &mut uid,
            "interface" => &mut interface,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
        match rest.strip_prefix(',') {
            Some(r) => rest = r,
            None if rest.is_empty() => break,
            None => return None,
        }
    }
    Some(PlainRecord {
        pod: pod?,
        pod_uid: uid?,
        interface,
    })
}

/// A JSON string at the start of `s` with no escape and no control character: its content
/// and what follows it.
fn plain_string(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('"')?;
    // Bytes: no byte of a multi-byte UTF-8 sequence is ASCII.
    let end = body
        .bytes()
        .position(|b| b == b'"' || b == b'\\' || b < b' ')?;
    if body.as_bytes()[end] != b'"' {
        return None;
    }
    Some((&body[..end], &body[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_shape_reads_as_serde_does_and_the_rest_is_left_to_serde() {
        for text in [
            r#"{"pod":"ns/p","podUid":"u","interface":"eth0"}"#,
            r#"{"interface":"net1","podUid":"u-1","pod":"a/b"}"#,
            r#"{"pod":"ns/p","podUid":"u"}"#,
            r#"{"pod":"","podUid":"é"}"#,
        ] {
            let serde: PoolIPAllocation = serde_json::from_str(text).unwrap();
            assert_eq!(parse_plain(text), Some(serde), "{text}");
        }
        for text in [
            r#"{"pod":"ns/p","podUid":"u","nic":"eth0"}"#,
            r#"{"pod":"n\u0073/p","podUid":"u"}"#,
            r#"{"pod":"ns/p","podUid":"u","interface":null}"#,
            r#"{"pod":"ns/p", "podUid":"u"}"#,
            r#"{"pod":"ns/p","pod":"ns/q","podUid":"u"}"#,
            r#"{"pod":"ns/p"}"#,
            r#"{"pod":"a	b","podUid":"u"}"#,
            r#"{"pod":"ns/p","podUid":"u",}"#,
            r#"{"pod":"ns/p","podUid":"u"#,
            r#"{}"#,
        ] {
            assert_eq!(parse_plain(text), None, "{text}");
        }
    }

    #[test]
    fn known_fields_in_place_and_unknown_ones_kept() {
        let r: PoolIPAllocation = serde_json::from_str(
            r#"{"x":{"a":[1,2.5]},"podUid":"u","pod":"ns/p","interface":"net1","nic":"eth0"}"#,
        )
        .unwrap();
        assert_eq!((r.pod.as_str(), r.pod_uid.as_str()), ("ns/p", "u"));
        assert_eq!(r.interface.as_deref(), Some("net1"));
        assert_eq!(r.extra["nic"], "eth0");
        assert_eq!(r.extra["x"]["a"][1], 2.5);
        // And back, unknown fields included.
        let again: PoolIPAllocation =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn escaped_names_null_interface_and_errors() {
        let r: PoolIPAllocation =
            serde_json::from_str(r#"{"p\u006fd":"a/b","podUid":"u","interface":null}"#).unwrap();
        assert_eq!((r.pod.as_str(), r.interface), ("a/b", None));
        for (text, want) in [
            (r#"{"podUid":"u"}"#, "missing field `pod`"),
            (r#"{"pod":"a/b"}"#, "missing field `podUid`"),
            (
                r#"{"pod":"a/b","pod":"c/d","podUid":"u"}"#,
                "duplicate field `pod`",
            ),
            (r#"{"pod":1,"podUid":"u"}"#, "invalid type"),
            (r#"["a/b","u"]"#, "invalid type"),
        ] {
            let err = serde_json::from_str::<PoolIPAllocation>(text).unwrap_err();
            assert!(err.to_string().contains(want), "{text}: {err}");
        }
    }
}
