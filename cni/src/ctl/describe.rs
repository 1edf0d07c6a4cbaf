//! `spiderpoolctl describe`: one object in full, with its allocations and their owners.

use std::fmt::Write as _;

use spiderpool_core::model::{AddressSpec, Object};
use spiderpool_core::store::{Key, Store};
use spiderpool_core::table::render;

use super::{not_found, Kind};
use crate::Error;

/// Describes `kind/name` (endpoints in `namespace`).
pub async fn describe<S: Store>(
    store: &S,
    kind: Kind,
    name: &str,
    namespace: &str,
) -> Result<String, Error> {
    let key = match kind {
        Kind::Endpoint => Key::namespaced(kind.kind(), namespace, name),
        _ => Key::cluster(kind.kind(), name),
    };
    let Some(stored) = store.get(&key).await? else {
        return Err(not_found(kind, name));
    };
    let mut out = String::new();
    let field = |out: &mut String, k: &str, v: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{:<20}{v}", format!("{k}:"));
    };
    field(&mut out, "Name", &name);
    field(&mut out, "Kind", &kind.kind());
    let meta = match &stored.object {
        Object::IpPool(x) => &x.metadata,
        Object::Subnet(x) => &x.metadata,
        Object::ReservedIp(x) => &x.metadata,
        Object::Endpoint(x) => &x.metadata,
        Object::Other(_) => return Err(not_found(kind, name)),
    };
    if let Some(ns) = &meta.namespace {
        field(&mut out, "Namespace", ns);
    }
    field(&mut out, "Labels", &join_map(&meta.labels));
    field(&mut out, "Annotations", &join_map(&meta.annotations));
    field(&mut out, "Resource Version", &stored.revision);
    match &stored.object {
        Object::IpPool(p) => {
            let s = &p.spec;
            field(&mut out, "IP Version", &opt(s.ip_version));
            field(&mut out, "Subnet", &s.subnet);
            field(&mut out, "IPs", &s.ips.join(", "));
            field(&mut out, "Exclude IPs", &s.exclude_ips.join(", "));
            field(&mut out, "Gateway", &opt(s.gateway.as_ref()));
            let routes: Vec<String> = s
                .routes()
                .iter()
                .map(|r| format!("{} via {}", r.dst, r.gw))
                .collect();
            field(&mut out, "Routes", &routes.join(", "));
            field(&mut out, "Default", &opt(s.default));
            field(&mut out, "Disable", &opt(s.disable));
            field(&mut out, "Total IP Count", &opt(p.status.total_ip_count));
            field(
                &mut out,
                "Allocated IP Count",
                &opt(p.status.allocated_ip_count),
            );
            let mut rows: Vec<(std::net::IpAddr, Vec<String>)> = p
                .allocations()?
                .into_iter()
                .map(|(ip, r)| {
                    let key = ip.parse().unwrap_or(std::net::IpAddr::V4(0.into()));
                    (
                        key,
                        vec![ip, r.pod, r.pod_uid, r.interface.unwrap_or_default()],
                    )
                })
                .collect();
            rows.sort_by_key(|r| r.0);
            let rows: Vec<Vec<String>> = rows.into_iter().map(|(_, r)| r).collect();
            out.push_str("Allocated IPs:\n");
            if rows.is_empty() {
                out.push_str("  <none>\n");
            } else {
                for line in render(&["IP", "POD", "POD-UID", "INTERFACE"], &rows).lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
        }
        Object::Subnet(x) => {
            field(&mut out, "IP Version", &opt(x.spec.ip_version));
            field(&mut out, "Subnet", &x.spec.subnet);
            field(&mut out, "IPs", &x.spec.ips.join(", "));
            field(&mut out, "Exclude IPs", &x.spec.exclude_ips.join(", "));
            field(&mut out, "Gateway", &opt(x.spec.gateway.as_ref()));
            field(&mut out, "Total IP Count", &opt(x.status.total_ip_count));
            field(
                &mut out,
                "Allocated IP Count",
                &opt(x.status.allocated_ip_count),
            );
            out.push_str("Controlled IPPools:\n");
            let pools = x.controlled_pools()?;
            if pools.is_empty() {
                out.push_str("  <none>\n");
            }
            for (pool, pre) in pools {
                let app = pre
                    .application
                    .map(|a| format!(" (application {a})"))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {pool}: {}{app}", pre.ips.join(", "));
            }
        }
        Object::ReservedIp(r) => {
            field(&mut out, "IP Version", &opt(r.spec.ip_version));
            field(&mut out, "IPs", &r.spec.ips.join(", "));
        }
        Object::Endpoint(e) => {
            field(&mut out, "Pod UID", &e.status.current.uid);
            field(&mut out, "Node", &e.status.current.node);
            field(
                &mut out,
                "Owner",
                &format!(
                    "{} {}",
                    e.status.owner_controller_type, e.status.owner_controller_name
                ),
            );
            out.push_str("Interfaces:\n");
            for d in &e.status.current.ips {
                let _ = writeln!(
                    out,
                    "  {}: {} {}",
                    d.nic,
                    [
                        d.ipv4.as_ref().zip(d.ipv4_pool.as_ref()),
                        d.ipv6.as_ref().zip(d.ipv6_pool.as_ref())
                    ]
                    .into_iter()
                    .flatten()
                    .map(|(ip, pool)| format!("{ip} (IPPool {pool})"))
                    .collect::<Vec<_>>()
                    .join(", "),
                    if d.clean_gateway == Some(true) {
                        "clean gateway"
                    } else {
                        ""
                    }
                );
            }
        }
        Object::Other(_) => {}
    }
    Ok(out)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "<none>".into())
}

fn join_map(m: &std::collections::BTreeMap<String, String>) -> String {
    if m.is_empty() {
        return "<none>".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
