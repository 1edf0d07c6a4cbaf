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
///
/// Small (32 bytes), since the index moves records in and out of its maps and undo journal.
#[derive(Clone)]
pub struct Held {
    record: Record,
    /// The key as written, when it differs from the canonical spelling (rare: boxed twice to
    /// keep `Held` small, 8 bytes instead of 16).
    #[allow(
        clippy::box_collection,
        reason = "a thin pointer keeps every record smaller"
    )]
    key: Option<Box<String>>,
}

/// Where a record's fields are.
#[derive(Clone)]
enum Record {
    Decoded(Arc<PoolIPAllocation>),
    /// In the plain shape, in `text` from `start`: the pod, the pod uid and the interface as
    /// (offset from `start`, length) (`NO_FIELD` for an absent interface). Records of
    /// 64 KiB or more, or starting 4 GiB or more into the text, are kept decoded.
    Plain {
        text: Arc<String>,
        start: u32,
        fields: [Field; 3],
    },
}

/// Offset from the record's start and length of a field.
type Field = (u16, u16);

const NO_FIELD: Field = (u16::MAX, u16::MAX);
const POD: usize = 0;
const UID: usize = 1;
const INTERFACE: usize = 2;

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
            key: key.map(|k| Box::new(k.into_string())),
        }
    }

    /// The record whose `fields` are in `text` (borrowed from it), starting at `record` (the
    /// record's text, borrowed from it too), under `key` when that is not the canonical
    /// spelling. Built at once when the spans do not fit.
    pub(crate) fn in_text(
        text: &Arc<String>,
        record: &str,
        fields: PlainRecord<'_>,
        key: Option<Box<str>>,
    ) -> Self {
        let start = encoded::offset(text, record);
        let field = |part: &str| -> Option<Field> {
            let off = u16::try_from(encoded::offset(text, part).checked_sub(start)?).ok()?;
            let len = u16::try_from(part.len()).ok()?;
            // Fits in the record, and never mistaken for an absent field.
            (usize::from(off) + usize::from(len) <= record.len() && off != u16::MAX)
                .then_some((off, len))
        };
        let interface = match fields.interface {
            Some(i) => field(i),
            None => Some(NO_FIELD),
        };
        let kept = (|| {
            Some(Record::Plain {
                text: text.clone(),
                start: u32::try_from(start).ok()?,
                fields: [field(fields.pod)?, field(fields.pod_uid)?, interface?],
            })
        })();
        Held {
            record: kept.unwrap_or_else(|| Record::Decoded(Arc::new(fields.to_record()))),
            key: key.map(|k| Box::new(k.into_string())),
        }
    }

    /// The key as written, when it differs from the address's canonical spelling.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref().map(String::as_str)
    }

    fn field(&self, which: usize) -> Option<&str> {
        match &self.record {
            Record::Decoded(_) => None,
            Record::Plain {
                text,
                start,
                fields,
            } => {
                let (off, len) = fields[which];
                if (off, len) == NO_FIELD {
                    return None;
                }
                let at = *start as usize + usize::from(off);
                text.get(at..at + usize::from(len))
            }
        }
    }

    /// `<namespace>/<name>` of the holder.
    pub fn pod(&self) -> &str {
        match &self.record {
            Record::Decoded(r) => &r.pod,
            Record::Plain { .. } => self.field(POD).unwrap_or_default(),
        }
    }

    /// The holder's uid.
    pub fn pod_uid(&self) -> &str {
        match &self.record {
            Record::Decoded(r) => &r.pod_uid,
            Record::Plain { .. } => self.field(UID).unwrap_or_default(),
        }
    }

    /// The holder's interface, when the record names one.
    pub fn interface(&self) -> Option<&str> {
        match &self.record {
            Record::Decoded(r) => r.interface.as_deref(),
            Record::Plain { .. } => self.field(INTERFACE),
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
            let kept = Held::in_text(&text, &text[at..at + value.len()], fields, None);
            let decoded: PoolIPAllocation = serde_json::from_str(value).unwrap();
            assert!(matches!(kept.record, Record::Plain { .. }), "{value}");
            assert_eq!(*kept.record(), decoded, "{value}");
            assert_eq!(kept.pod(), decoded.pod);
            assert_eq!(kept.pod_uid(), decoded.pod_uid);
            assert_eq!(kept.interface(), decoded.interface.as_deref());
            assert_eq!(kept, Held::new(Arc::new(decoded)));
        }
    }

    #[test]
    fn a_record_is_small() {
        assert!(
            std::mem::size_of::<Held>() <= 32,
            "{}",
            std::mem::size_of::<Held>()
        );
    }
}
