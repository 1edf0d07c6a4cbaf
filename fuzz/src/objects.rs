//! `object_json` and `object_yaml`: every object kind read from JSON and YAML documents
//! (`parse_documents`, `object_from_value`), then admitted (see [`crate::admission`]).
//!
//! Checked: no panic; every object read writes back to a JSON value that reads back to the
//! same object (what the stores rely on: they keep `to_value()` and read it with
//! `object_from_value`); the YAML of the objects (`to_yaml`, what `spiderpoolctl get -o yaml`
//! prints) reads back to the same objects; the tables print.

use serde_json::Value;
use spiderpool_core::model::{object_from_value, parse_documents, to_yaml, Document, Object};

use crate::admission::admit;
use crate::util::text;

/// The `object_json` target: the input as a JSON document stream, and as one JSON value read
/// directly by `object_from_value` (as a store reads what it kept).
pub fn object_json(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        if let Ok(object) = object_from_value("fuzz.json", value) {
            round_trip(&object);
            admit(std::slice::from_ref(&object));
        }
    }
    if let Some(input) = text(data) {
        documents("fuzz.json", input);
    }
}

/// The `object_yaml` target: the input as a YAML (or JSON) document stream.
pub fn object_yaml(data: &[u8]) {
    if let Some(input) = text(data) {
        documents("fuzz.yaml", input);
    }
}

fn documents(source: &str, input: &str) {
    let Ok(docs) = parse_documents(source, input) else {
        return;
    };
    let objects: Vec<Object> = docs.into_iter().map(|d: Document| d.object).collect();
    for o in &objects {
        let _ = (o.kind(), o.name());
        round_trip(o);
    }
    let yaml = to_yaml(&objects);
    let again: Vec<Object> = parse_documents("to_yaml", &yaml)
        .unwrap_or_else(|e| panic!("to_yaml output does not read back: {e}\n{yaml}"))
        .into_iter()
        .map(|d| d.object)
        .collect();
    assert_eq!(again, objects, "to_yaml round trip\n{yaml}");
    admit(&objects);
}

/// What a store keeps reads back as the same object.
fn round_trip(o: &Object) {
    let value = o.to_value();
    let back = object_from_value("round trip", value.clone())
        .unwrap_or_else(|e| panic!("to_value output does not read back: {e}\n{value}"));
    assert_eq!(&back, o, "to_value round trip\n{value}");
    // And once more through bytes, as the local and etcd stores keep it.
    let bytes = serde_json::to_vec(&value).unwrap();
    let reread: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(object_from_value("bytes", reread).ok().as_ref(), Some(o));
}
