//! `spiderpoolctl get`.

use serde_json::{json, Value};
use spiderpool_core::model::{
    Object, SpiderEndpoint, SpiderIPPool, SpiderReservedIP, SpiderSubnet,
};
use spiderpool_core::store::Store;
use spiderpool_core::table;

use super::{list, not_found, Kind};
use crate::Error;

/// Output formats of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// The printer columns.
    #[default]
    Table,
    /// All printer columns (`-o wide`).
    Wide,
    /// JSON (`-o json`).
    Json,
    /// YAML (`-o yaml`).
    Yaml,
}

impl Output {
    /// Parses `-o`.
    pub fn parse(s: &str) -> Result<Output, Error> {
        match s {
            "wide" => Ok(Output::Wide),
            "json" => Ok(Output::Json),
            "yaml" => Ok(Output::Yaml),
            other => Err(Error::Usage(format!("unable to match a printer suitable for the output format {other:?}, allowed formats are: json,wide,yaml"))),
        }
    }
}

/// `get KIND [NAME]`: endpoints are looked up in `namespace` unless `all_namespaces`.
pub async fn get<S: Store>(
    store: &S,
    kind: Kind,
    name: Option<&str>,
    namespace: &str,
    all_namespaces: bool,
    output: Output,
) -> Result<String, Error> {
    let mut objects: Vec<Object> = list(store, kind)
        .await?
        .into_iter()
        .map(|s| s.object)
        .filter(|o| match o {
            Object::Endpoint(e) => {
                all_namespaces || e.metadata.namespace.as_deref() == Some(namespace)
            }
            _ => true,
        })
        .collect();
    if let Some(name) = name {
        objects.retain(|o| o.name() == name);
        if objects.is_empty() {
            return Err(not_found(kind, name));
        }
    }
    let single = name.is_some();
    match output {
        Output::Json | Output::Yaml => {
            let value = if single {
                objects[0].to_value()
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": objects.iter().map(Object::to_value).collect::<Vec<Value>>()})
            };
            Ok(match output {
                Output::Json => serde_json::to_string_pretty(&value).unwrap_or_default() + "\n",
                _ => yaml_serde::to_string(&value).unwrap_or_default(),
            })
        }
        Output::Table | Output::Wide => {
            if objects.is_empty() {
                return Ok(if kind == Kind::Endpoint && !all_namespaces {
                    format!("No resources found in {namespace} namespace.\n")
                } else {
                    "No resources found\n".to_string()
                });
            }
            let wide = output == Output::Wide;
            Ok(match kind {
                Kind::IpPool => table::ippool_table(&typed::<SpiderIPPool>(&objects), wide),
                Kind::Subnet => table::subnet_table(&typed::<SpiderSubnet>(&objects)),
                Kind::ReservedIp => table::reservedip_table(&typed::<SpiderReservedIP>(&objects)),
                Kind::Endpoint => {
                    table::endpoint_table(&typed::<SpiderEndpoint>(&objects), all_namespaces)
                }
            })
        }
    }
}

/// The objects of one kind, typed.
pub(crate) fn typed<T: FromObject>(objects: &[Object]) -> Vec<T> {
    objects.iter().filter_map(T::from_object).collect()
}

/// Extracts one kind from an [`Object`].
pub(crate) trait FromObject: Sized {
    fn from_object(o: &Object) -> Option<Self>;
}

impl FromObject for SpiderIPPool {
    fn from_object(o: &Object) -> Option<Self> {
        match o {
            Object::IpPool(x) => Some(x.clone()),
            _ => None,
        }
    }
}

impl FromObject for SpiderSubnet {
    fn from_object(o: &Object) -> Option<Self> {
        match o {
            Object::Subnet(x) => Some(x.clone()),
            _ => None,
        }
    }
}

impl FromObject for SpiderReservedIP {
    fn from_object(o: &Object) -> Option<Self> {
        match o {
            Object::ReservedIp(x) => Some(x.clone()),
            _ => None,
        }
    }
}

impl FromObject for SpiderEndpoint {
    fn from_object(o: &Object) -> Option<Self> {
        match o {
            Object::Endpoint(x) => Some(x.clone()),
            _ => None,
        }
    }
}
