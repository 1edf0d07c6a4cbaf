//! The CNI result of an ADD, in the requested version's shape.

use serde_json::{json, Value};
use spiderpool_core::model::IPAllocationDetail;

/// The result for the NIC `ifname` of `nics`: its addresses with prefix and gateway, the
/// pool routes, a default route per family through the gateway unless the NIC has a clean
/// gateway, and the netconf's `dns`. Versions before 1.0.0 add `"version"` to each IP.
pub fn add_result(
    cni_version: &str,
    nics: &[IPAllocationDetail],
    ifname: &str,
    dns: Option<&Value>,
) -> Value {
    let legacy = cni_version.starts_with("0.");
    let mut ips = Vec::new();
    let mut routes = Vec::new();
    for d in nics.iter().filter(|d| d.nic == ifname) {
        let clean = d.clean_gateway == Some(true);
        for (version, address, gateway, default) in [
            ("4", &d.ipv4, &d.ipv4_gateway, "0.0.0.0/0"),
            ("6", &d.ipv6, &d.ipv6_gateway, "::/0"),
        ] {
            let Some(address) = address else { continue };
            let mut ip = json!({ "address": address });
            if let Some(gw) = gateway {
                ip["gateway"] = json!(gw);
                if !clean {
                    routes.push(json!({ "dst": default, "gw": gw }));
                }
            }
            if legacy {
                ip["version"] = json!(version);
            }
            ips.push(ip);
        }
        for r in &d.routes {
            routes.push(json!({ "dst": r.dst, "gw": r.gw }));
        }
    }
    let mut out = json!({ "cniVersion": cni_version, "ips": ips, "routes": routes });
    out["dns"] = dns.cloned().unwrap_or_else(|| json!({}));
    out
}
