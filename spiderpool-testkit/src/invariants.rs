//! What must hold in a store after every completed operation.

use std::collections::BTreeMap;

use spiderpool_core::model::{AddressSpec, Object, SpiderEndpoint, SpiderIPPool};
use spiderpool_core::store::Store;

/// Checks, over everything in `store`:
/// - no address is held twice (by two records, in one pool or across pools);
/// - every record lies in its pool's usable addresses (`ips − excludeIPs`);
/// - every pool's `allocatedIPCount` equals its number of records;
/// - every address a SpiderEndpoint lists is recorded in its pool for the endpoint's pod uid,
///   and every record is listed by the endpoint of its pod.
///
/// Returns every violation found, one sentence each.
pub async fn check_invariants<S: Store + ?Sized>(store: &S) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    let pools: Vec<SpiderIPPool> = store
        .list(SpiderIPPool::KIND)
        .await
        .map_err(|e| vec![e.to_string()])?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::IpPool(p) => Some(p),
            _ => None,
        })
        .collect();
    let endpoints: Vec<SpiderEndpoint> = store
        .list(SpiderEndpoint::KIND)
        .await
        .map_err(|e| vec![e.to_string()])?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::Endpoint(e) => Some(e),
            _ => None,
        })
        .collect();
    // (pool, ip) -> (pod, uid)
    let mut held: BTreeMap<String, String> = BTreeMap::new();
    let mut records: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    for p in &pools {
        let name = &p.metadata.name;
        let recs = match p.allocations() {
            Ok(r) => r,
            Err(e) => {
                errs.push(e.to_string());
                continue;
            }
        };
        if p.status.allocated_ip_count.unwrap_or(0) != recs.len() as i64 {
            errs.push(format!(
                "pool {name}: allocatedIPCount {:?} but {} records",
                p.status.allocated_ip_count,
                recs.len()
            ));
        }
        let usable = p.spec.total_ips();
        for (ip, r) in &recs {
            if let Some(other) = held.insert(ip.clone(), name.clone()) {
                errs.push(format!("{ip} is held in pool {other} and in pool {name}"));
            }
            match (&usable, ip.parse()) {
                (Ok(u), Ok(addr)) if u.contains(addr) => {}
                _ => errs.push(format!("pool {name}: record {ip} is not a usable address")),
            }
            records.insert(
                (name.clone(), ip.clone()),
                (r.pod.clone(), r.pod_uid.clone()),
            );
        }
    }
    let mut listed = BTreeMap::new();
    for e in &endpoints {
        let pod = format!(
            "{}/{}",
            e.metadata.namespace.clone().unwrap_or_default(),
            e.metadata.name
        );
        for d in &e.status.current.ips {
            for (addr, pool) in [(&d.ipv4, &d.ipv4_pool), (&d.ipv6, &d.ipv6_pool)] {
                let (Some(addr), Some(pool)) = (addr, pool) else {
                    continue;
                };
                let ip = addr.split('/').next().unwrap_or(addr).to_string();
                match records.get(&(pool.clone(), ip.clone())) {
                    Some((p, uid)) if *p == pod && *uid == e.status.current.uid => {}
                    Some((p, uid)) => errs.push(format!(
                        "endpoint {pod} lists {ip} of {pool}, recorded for {p} uid {uid} instead of uid {}",
                        e.status.current.uid
                    )),
                    None => errs.push(format!("endpoint {pod} lists {ip} of {pool}, which has no record")),
                }
                listed.insert((pool.clone(), ip), pod.clone());
            }
        }
    }
    for ((pool, ip), (pod, _)) in &records {
        if listed.get(&(pool.clone(), ip.clone())) != Some(pod) {
            errs.push(format!(
                "pool {pool}: {ip} is recorded for {pod}, whose endpoint does not list it"
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}
