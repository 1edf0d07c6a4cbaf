//! [`Held`]: one record of a [`super::PoolIndex`], kept as where its fields are in the pool's
//! text until someone asks for the record itself.
//!
//! Decoding a pool of thousands of records used to build each record (two or three strings
//! and a reference-counted box: four allocations and a quarter of a kilobyte per record) to
//! then read only its pod uid and pod name. A record in the plain shape (what Spiderpool and
//! we write) is now three spans of the shared text; the record is built when a caller asks
//! for it ([`Held::record`]), which the planner does for the few records it writes.

use std::fmt;
use std::sync::Arc;

use super::encoded;
use crate::model::{PlainRecord, PoolIPAllocation};

/// One record of the index, and its key when it is not the address's canonical spelling (an
/// IPv6 address written `FD00::1` by another writer keeps that key on write).
#[derive(Clone)]
pub struct Held {
    record: Record,
    /// The key as written, when it differs from the canonical spelling.
    pub key: Option<Box<str>>,
}

/// Where a record's fields are.
#[derive(Clone)]
enum Record {
    Decoded(Arc<PoolIPAllocation>),
    /// In the plain shape, in `text`: the spans of the pod, the pod uid and the interface
    /// (`NO_SPAN` when absent). Texts of 4 GiB or more are never kept this way.
    Plain {
        text: Arc<String>,
        pod: Span,
        uid: Span,
        interface: Span,
    },
}

/// Start and length of a field in the text.
type Span = (u32, u32);

const NO_SPAN: Span = (u32::MAX, 0);

impl Held {
    /// A record under the address's canonical key.
    pub fn new(record: Arc<PoolIPAllocation>) -> Self {
        Held {
            record: Record::Decoded(record),
            key: None,
        }
    }

    /// A record under `key` (`None`: the canonical one).
    pub(crate) fn with_key(record: Arc<PoolIPAllocation>, key: Option<Box<str>>) -> Self {
        Held {
            record: Record::Decoded(record),
            key,
        }
    }

    /// The record whose `fields` are in `text` (borrowed from it), under `key` when that is
    /// not the canonical spelling. Built at once when `text` is too large for the spans.
    pub(crate) fn in_text(
        text: &Arc<String>,
        fields: PlainRecord<'_>,
        key: Option<Box<str>>,
    ) -> Self {
        let span = |part: &str| -> Option<Span> {
            let start = u32::try_from(encoded::offset(text, part)).ok()?;
            let len = u32::try_from(part.len()).ok()?;
            start.checked_add(len).map(|_| (start, len))
        };
        let interface = match fields.interface {
            Some(i) => span(i),
            None => Some(NO_SPAN),
        };
        let record = match (span(fields.pod), span(fields.pod_uid), interface) {
            (Some(pod), Some(uid), Some(interface)) => Record::Plain {
                text: text.clone(),
                pod,
                uid,
                interface,
            },
            _ => Record::Decoded(Arc::new(fields.to_record())),
        };
        Held { record, key }
    }

    fn field(text: &str, (start, len): Span) -> &str {
        let start = start as usize;
        text.get(start..start + len as usize).unwrap_or_default()
    }

    /// `<namespace>/<name>` of the holder.
    pub fn pod(&self) -> &str {
        match &self.record {
            Record::Decoded(r) => &r.pod,
            Record::Plain { text, pod, .. } => Self::field(text, *pod),
        }
    }

    /// The holder's uid.
    pub fn pod_uid(&self) -> &str {
        match &self.record {
            Record::Decoded(r) => &r.pod_uid,
            Record::Plain { text, uid, .. } => Self::field(text, *uid),
        }
    }

    /// The holder's interface, when the record names one.
    pub fn interface(&self) -> Option<&str> {
        match &self.record {
            Record::Decoded(r) => r.interface.as_deref(),
            Record::Plain { interface, .. } if *interface == NO_SPAN => None,
            Record::Plain {
                text, interface, ..
            } => Some(Self::field(text, *interface)),
        }
    }

    /// The record (built from the text when it was kept there).
    pub fn record(&self) -> Arc<PoolIPAllocation> {
        match &self.record {
            Record::Decoded(r) => r.clone(),
            Record::Plain { .. } => Arc::new(PoolIPAllocation {
                pod: self.pod().to_string(),
                pod_uid: self.pod_uid().to_string(),
                interface: self.interface().map(str::to_string),
                extra: Default::default(),
            }),
        }
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.record() == other.record()
    }
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Held")
            .field("record", &self.record())
            .field("key", &self.key)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_plain_fields;

    #[test]
    fn a_record_kept_in_the_text_reads_as_the_decoded_one() {
        for value in [
            r#"{"pod":"ns/p","podUid":"u-1","interface":"net1"}"#,
            r#"{"podUid":"u","pod":"a/b"}"#,
            r#"{"pod":"","podUid":"é","interface":""}"#,
        ] {
            let text = Arc::new(format!(r#"{{"10.0.0.1":{value}}}"#));
            let at = text.find(value).unwrap_or_default();
            let fields = parse_plain_fields(&text[at..at + value.len()]).unwrap();
            let kept = Held::in_text(&text, fields, None);
            let decoded: PoolIPAllocation = serde_json::from_str(value).unwrap();
            assert!(matches!(kept.record, Record::Plain { .. }), "{value}");
            assert_eq!(*kept.record(), decoded, "{value}");
            assert_eq!(kept.pod(), decoded.pod);
            assert_eq!(kept.pod_uid(), decoded.pod_uid);
            assert_eq!(kept.interface(), decoded.interface.as_deref());
            assert_eq!(kept, Held::new(Arc::new(decoded)));
        }
    }
}
