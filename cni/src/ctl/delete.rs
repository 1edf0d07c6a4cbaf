//! `spiderpoolctl delete`.

use spiderpool_core::model::{parse_documents, Object, SpiderEndpoint};
use spiderpool_core::store::{Key, Store, Write};

use super::{not_found, Kind};
use crate::Error;

/// Deletes one object. A pool that still has allocations, or a subnet that still controls
/// pools, is refused unless `force`; a forced pool deletion also drops the pool's addresses
/// from the endpoints that hold them, so no endpoint points into a missing pool.
pub async fn delete<S: Store>(
    store: &S,
    kind: Kind,
    name: &str,
    namespace: &str,
    force: bool,
) -> Result<String, Error> {
    let key = match kind {
        Kind::Endpoint => Key::namespaced(kind.kind(), namespace, name),
        _ => Key::cluster(kind.kind(), name),
    };
    for _ in 0..8 {
        let Some(stored) = store.get(&key).await? else {
            return Err(not_found(kind, name));
        };
        let mut writes = Vec::new();
        match &stored.object {
            Object::IpPool(p) => {
                let records = p.allocations()?;
                if !records.is_empty() {
                    if !force {
                        return Err(Error::Usage(format!(
                            "{}/{name} has {} allocated IPs; release them first or use --force",
                            kind.resource(),
                            records.len()
                        )));
                    }
                    writes.extend(drop_pool_from_endpoints(store, name).await?);
                }
            }
            Object::Subnet(s) => {
                let controlled = s.controlled_pools()?;
                if !controlled.is_empty() && !force {
                    let names: Vec<&String> = controlled.keys().collect();
                    return Err(Error::Usage(format!(
                        "{}/{name} still controls IPPools {names:?}; delete them first or use --force",
                        kind.resource()
                    )));
                }
            }
            _ => {}
        }
        writes.push(Write::Delete {
            key: key.clone(),
            expected: stored.revision.clone(),
        });
        match store.commit(writes).await {
            Ok(()) => return Ok(format!("{} \"{name}\" deleted\n", kind.resource())),
            Err(e) if spiderpool_core::ipam::is_retryable(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Ipam(spiderpool_core::Error::Unavailable {
        reason: format!("{} {name} kept changing; try again", kind.resource()),
    }))
}

/// Endpoint writes that forget every address of pool `pool`.
async fn drop_pool_from_endpoints<S: Store>(store: &S, pool: &str) -> Result<Vec<Write>, Error> {
    let mut writes = Vec::new();
    for s in store.list(SpiderEndpoint::KIND).await? {
        let Object::Endpoint(mut ep) = s.object else {
            continue;
        };
        let before = ep.clone();
        for d in &mut ep.status.current.ips {
            if d.ipv4_pool.as_deref() == Some(pool) {
                d.ipv4 = None;
                d.ipv4_pool = None;
                d.ipv4_gateway = None;
            }
            if d.ipv6_pool.as_deref() == Some(pool) {
                d.ipv6 = None;
                d.ipv6_pool = None;
                d.ipv6_gateway = None;
            }
        }
        ep.status
            .current
            .ips
            .retain(|d| d.ipv4.is_some() || d.ipv6.is_some());
        if ep == before {
            continue;
        }
        let key = Key::endpoint(
            ep.metadata.namespace.as_deref().unwrap_or_default(),
            &ep.metadata.name,
        );
        writes.push(if ep.status.current.ips.is_empty() {
            Write::Delete {
                key,
                expected: s.revision,
            }
        } else {
            Write::Update {
                object: Object::Endpoint(ep),
                expected: s.revision,
            }
        });
    }
    Ok(writes)
}

/// `delete -f FILE`: deletes every object the file names, in order; reports each, and fails
/// (after trying all) if any could not be deleted.
pub async fn delete_file<S: Store>(
    store: &S,
    source: &str,
    text: &str,
    force: bool,
) -> Result<String, Error> {
    let mut out = String::new();
    let mut failures = Vec::new();
    for d in parse_documents(source, text)? {
        let Some(kind) = Kind::of(&d.object) else {
            failures.push(format!(
                "document {}: {} is not managed here",
                d.index,
                d.object.kind()
            ));
            continue;
        };
        let ns = match &d.object {
            Object::Endpoint(e) => e
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            _ => String::new(),
        };
        match delete(store, kind, d.object.name(), &ns, force).await {
            Ok(line) => out.push_str(&line),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if failures.is_empty() {
        Ok(out)
    } else {
        Err(Error::Usage(format!("{out}{}", failures.join("\n"))))
    }
}
