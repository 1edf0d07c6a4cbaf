//! A JSON value read from a user's document with repeated mapping keys refused. serde's
//! `Value` keeps the last of two equal keys, so `kind: SpiderIPPool` followed by
//! `kind: SpiderSubnet` would silently apply a subnet; the Kubernetes API server (and
//! `kubectl`'s strict decoding) refuse such a document, and so do we.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A [`Value`] whose mappings had no repeated key.
pub(crate) struct Strict(pub(crate) Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        // As serde_json's own `Value`: a non-finite number has no JSON form.
        Ok(Strict(
            Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_none<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Strict, D::Error> {
        Strict::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            out.insert(key, value);
        }
        Ok(Strict(Value::Object(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_refused_at_any_depth_in_yaml_and_json() {
        let yaml = |t: &str| yaml_serde::from_str::<Strict>(t).map(|s| s.0);
        let json = |t: &str| serde_json::from_str::<Strict>(t).map(|s| s.0);
        let v = yaml("a: 1\nb: [x, {c: 2.5, d: null}]\ne: true\n").unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "b": ["x", {"c": 2.5, "d": null}], "e": true})
        );
        let err = yaml("kind: SpiderIPPool\nkind: SpiderSubnet\n").unwrap_err();
        assert!(err.to_string().contains("duplicate key `kind`"), "{err}");
        let err = yaml("spec:\n  ips: [a]\n  ips: [b]\n").unwrap_err();
        assert!(err.to_string().contains("duplicate key `ips`"), "{err}");
        let err = json(r#"{"spec": {"subnet": "a", "subnet": "b"}}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate key `subnet`"), "{err}");
        assert_eq!(
            json(r#"[1, -2, "x"]"#).unwrap(),
            serde_json::json!([1, -2, "x"])
        );
    }
}
