//! `kubectl get`-style tables of the objects, with the CRDs' printer columns.

use serde_json::Value;

use crate::annotations::LABEL_APP_NAMESPACE;
use crate::model::{SpiderEndpoint, SpiderIPPool, SpiderReservedIP, SpiderSubnet};

/// Lays out rows as `kubectl` does: left-aligned columns separated by three spaces.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        String::new()
    } else {
        Value::from(v.to_vec()).to_string()
    }
}

/// `kubectl get sp` (with `wide`: `-o wide`).
pub fn ippool_table(pools: &[SpiderIPPool], wide: bool) -> String {
    let mut header = vec![
        "NAME",
        "VERSION",
        "SUBNET",
        "ALLOCATED-IP-COUNT",
        "TOTAL-IP-COUNT",
        "DEFAULT",
        "DISABLE",
    ];
    if wide {
        header.extend(["NodeName", "MultusName", "APP-NAMESPACE"]);
    }
    let rows: Vec<Vec<String>> = pools
        .iter()
        .map(|p| {
            let mut row = vec![
                p.metadata.name.clone(),
                opt(p.spec.ip_version),
                p.spec.subnet.clone(),
                opt(p.status.allocated_ip_count),
                opt(p.status.total_ip_count),
                opt(p.spec.default),
                opt(p.spec.disable),
            ];
            if wide {
                row.extend([
                    list(&p.spec.node_name),
                    list(&p.spec.multus_name),
                    opt(p
                        .spec
                        .pod_affinity
                        .as_ref()
                        .and_then(|a| a.match_labels.get(LABEL_APP_NAMESPACE))),
                ]);
            }
            row
        })
        .collect();
    render(&header, &rows)
}

/// `kubectl get ss`.
pub fn subnet_table(subnets: &[SpiderSubnet]) -> String {
    let header = [
        "NAME",
        "VERSION",
        "SUBNET",
        "ALLOCATED-IP-COUNT",
        "TOTAL-IP-COUNT",
    ];
    let rows: Vec<Vec<String>> = subnets
        .iter()
        .map(|s| {
            vec![
                s.metadata.name.clone(),
                opt(s.spec.ip_version),
                s.spec.subnet.clone(),
                opt(s.status.allocated_ip_count),
                opt(s.status.total_ip_count),
            ]
        })
        .collect();
    render(&header, &rows)
}

/// `kubectl get sr`.
pub fn reservedip_table(reserved: &[SpiderReservedIP]) -> String {
    let rows: Vec<Vec<String>> = reserved
        .iter()
        .map(|r| vec![r.metadata.name.clone(), opt(r.spec.ip_version)])
        .collect();
    render(&["NAME", "VERSION"], &rows)
}

/// `kubectl get se` (columns from the endpoint's first NIC); with `namespaces`, a NAMESPACE
/// column first (`-A`).
pub fn endpoint_table(endpoints: &[SpiderEndpoint], namespaces: bool) -> String {
    let header = [
        "NAME",
        "INTERFACE",
        "IPV4POOL",
        "IPV4",
        "IPV6POOL",
        "IPV6",
        "NODE",
    ];
    let rows: Vec<Vec<String>> = endpoints
        .iter()
        .map(|e| {
            let first = e.status.current.ips.first();
            let get = |f: fn(&crate::model::IPAllocationDetail) -> Option<&String>| {
                opt(first.and_then(f))
            };
            vec![
                e.metadata.name.clone(),
                opt(first.map(|d| &d.nic)),
                get(|d| d.ipv4_pool.as_ref()),
                get(|d| d.ipv4.as_ref()),
                get(|d| d.ipv6_pool.as_ref()),
                get(|d| d.ipv6.as_ref()),
                e.status.current.node.clone(),
            ]
        })
        .collect();
    if !namespaces {
        return render(&header, &rows);
    }
    let mut with_ns = vec!["NAMESPACE"];
    with_ns.extend(header);
    let rows: Vec<Vec<String>> = endpoints
        .iter()
        .zip(rows)
        .map(|(e, mut r)| {
            r.insert(0, e.metadata.namespace.clone().unwrap_or_default());
            r
        })
        .collect();
    render(&with_ns, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_like_kubectl() {
        let out = render(
            &["NAME", "VERSION"],
            &[vec![
                "auto4-custom-kruise-cloneset-eth0-028d6".into(),
                "4".into(),
            ]],
        );
        assert_eq!(
            out,
            "NAME                                      VERSION\n\
             auto4-custom-kruise-cloneset-eth0-028d6   4\n"
        );
    }
}
