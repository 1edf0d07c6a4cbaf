//! Reading and writing objects as YAML or JSON documents.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::legacy;
use super::strict::Strict;
use super::{SpiderEndpoint, SpiderIPPool, SpiderReservedIP, SpiderSubnet};
use super::{API_VERSION, GROUP, LEGACY_API_VERSION};
use crate::Error;

/// One object read from a document stream.
// Objects are read once and moved around rarely; boxing would only make matching noisier.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Object {
    /// A SpiderIPPool.
    IpPool(SpiderIPPool),
    /// A SpiderSubnet.
    Subnet(SpiderSubnet),
    /// A SpiderReservedIP.
    ReservedIp(SpiderReservedIP),
    /// A SpiderEndpoint.
    Endpoint(SpiderEndpoint),
    /// Any other object (a Deployment, a Namespace, a SpiderMultusConfig, …), kept as JSON.
    Other(OtherObject),
}

/// An object of a kind this module does not model, with its identity pulled out.
#[derive(Debug, Clone, PartialEq)]
pub struct OtherObject {
    /// Its `apiVersion`.
    pub api_version: String,
    /// Its `kind`.
    pub kind: String,
    /// `metadata.name` (empty when missing).
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// The whole object.
    pub value: Value,
}

/// An object with where it came from and what was noticed while reading it.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 1-based position of the document in the stream (items of a `List` share it).
    pub index: usize,
    /// The object.
    pub object: Object,
    /// Unknown fields, legacy conversions and the like, one sentence each.
    pub warnings: Vec<String>,
}

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> &str {
        match self {
            Object::IpPool(_) => SpiderIPPool::KIND,
            Object::Subnet(_) => SpiderSubnet::KIND,
            Object::ReservedIp(_) => SpiderReservedIP::KIND,
            Object::Endpoint(_) => SpiderEndpoint::KIND,
            Object::Other(o) => &o.kind,
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        match self {
            Object::IpPool(o) => &o.metadata.name,
            Object::Subnet(o) => &o.metadata.name,
            Object::ReservedIp(o) => &o.metadata.name,
            Object::Endpoint(o) => &o.metadata.name,
            Object::Other(o) => &o.name,
        }
    }

    /// The object as a JSON value.
    pub fn to_value(&self) -> Value {
        let v = match self {
            Object::IpPool(o) => serde_json::to_value(o),
            Object::Subnet(o) => serde_json::to_value(o),
            Object::ReservedIp(o) => serde_json::to_value(o),
            Object::Endpoint(o) => serde_json::to_value(o),
            Object::Other(o) => Ok(o.value.clone()),
        };
        // Serialising these types to a JSON value cannot fail: all map keys are strings.
        v.unwrap_or(Value::Null)
    }
}

/// Parses a stream of YAML documents (`---`-separated) or JSON values. `source_name` names the
/// input in errors. `List` objects (`kind: List` or `SpiderIPPoolList`, …) are expanded into
/// their items. Empty documents are skipped. The first malformed document fails the whole
/// stream, with its position and the field path.
pub fn parse_documents(source_name: &str, text: &str) -> Result<Vec<Document>, Error> {
    let mut out = Vec::new();
    for (i, value) in raw_values(source_name, text)?.into_iter().enumerate() {
        let index = i + 1;
        if value.is_null() {
            continue;
        }
        let items = match list_items(&value) {
            Some(items) => items,
            None => vec![value],
        };
        for item in items {
            let mut warnings = Vec::new();
            let object = parse_object(source_name, index, item, &mut warnings)?;
            out.push(Document {
                index,
                object,
                warnings,
            });
        }
    }
    Ok(out)
}

/// Reads one object from a JSON value (as a store keeps it), with the same rules as
/// [`parse_documents`]; `source_name` names the origin in errors.
pub fn object_from_value(source_name: &str, value: Value) -> Result<Object, Error> {
    let mut warnings = Vec::new();
    parse_object(source_name, 1, value, &mut warnings)
}

/// Serialises objects as one multi-document YAML stream.
pub fn to_yaml(objects: &[Object]) -> String {
    let mut out = String::new();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        // A JSON value always serialises as YAML.
        out.push_str(&yaml_serde::to_string(&o.to_value()).unwrap_or_default());
    }
    out
}

fn raw_values(source_name: &str, text: &str) -> Result<Vec<Value>, Error> {
    let decode = |document: usize, message: String| Error::Decode {
        source_name: source_name.to_string(),
        document,
        message,
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let mut values = Vec::new();
        for (i, v) in serde_json::Deserializer::from_str(text)
            .into_iter::<Strict>()
            .enumerate()
        {
            let Strict(v) = v.map_err(|e| decode(i + 1, e.to_string()))?;
            match v {
                Value::Array(items) => values.extend(items),
                other => values.push(other),
            }
        }
        return Ok(values);
    }
    let mut values = Vec::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let Strict(v) = Strict::deserialize(doc).map_err(|e| decode(i + 1, e.to_string()))?;
        values.push(v);
    }
    Ok(values)
}

fn list_items(value: &Value) -> Option<Vec<Value>> {
    let kind = value.get("kind")?.as_str()?;
    if kind == "List" || kind.ends_with("List") {
        return value.get("items")?.as_array().cloned();
    }
    None
}

fn parse_object(
    source_name: &str,
    document: usize,
    mut value: Value,
    warnings: &mut Vec<String>,
) -> Result<Object, Error> {
    let decode = |message: String| Error::Decode {
        source_name: source_name.to_string(),
        document,
        message,
    };
    if !value.is_object() {
        return Err(decode(format!(
            "expected an object with apiVersion and kind, found {}",
            type_name(&value)
        )));
    }
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    let api_version = field("apiVersion").ok_or_else(|| decode("missing apiVersion".into()))?;
    let kind = field("kind").ok_or_else(|| decode("missing kind".into()))?;
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    if group != GROUP {
        let meta = value.get("metadata");
        let text = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
        return Ok(Object::Other(OtherObject {
            name: text("name").unwrap_or_default().to_string(),
            namespace: text("namespace").map(str::to_string),
            api_version,
            kind,
            value,
        }));
    }
    if api_version == LEGACY_API_VERSION {
        legacy::convert_v1(&kind, &mut value, warnings)
            .map_err(|m| decode(format!("{kind}: legacy {LEGACY_API_VERSION} form: {m}")))?;
    } else if api_version != API_VERSION {
        return Err(Error::UnsupportedObject {
            source_name: source_name.to_string(),
            document,
            api_version,
            kind,
        });
    }
    let object = match kind.as_str() {
        "SpiderIPPool" => Object::IpPool(typed(&kind, value).map_err(decode)?),
        "SpiderSubnet" => Object::Subnet(typed(&kind, value).map_err(decode)?),
        "SpiderReservedIP" => Object::ReservedIp(typed(&kind, value).map_err(decode)?),
        "SpiderEndpoint" => Object::Endpoint(typed(&kind, value).map_err(decode)?),
        _ => {
            // Other kinds of the group (SpiderMultusConfig, SpiderCoordinator, …).
            let meta = value.get("metadata");
            let text = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
            return Ok(Object::Other(OtherObject {
                name: text("name").unwrap_or_default().to_string(),
                namespace: text("namespace").map(str::to_string),
                api_version: API_VERSION.to_string(),
                kind,
                value,
            }));
        }
    };
    let unknown = match &object {
        Object::IpPool(o) => o.unknown_fields(),
        Object::Subnet(o) => o.unknown_fields(),
        Object::ReservedIp(o) => o.unknown_fields(),
        Object::Endpoint(o) => o.unknown_fields(),
        Object::Other(_) => Vec::new(),
    };
    for path in unknown {
        let hint = match path.as_str() {
            "metadata.spec" | "metadata.status" => {
                " (kept, not used; is it indented under metadata by mistake?)"
            }
            _ => " (kept, not used)",
        };
        warnings.push(format!(
            "{kind} \"{}\": unknown field \"{path}\"{hint}",
            object.name()
        ));
    }
    Ok(object)
}

fn typed<T: DeserializeOwned + Serialize>(kind: &str, value: Value) -> Result<T, String> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        format!("{kind} \"{name}\": {path}: {}", e.into_inner())
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
