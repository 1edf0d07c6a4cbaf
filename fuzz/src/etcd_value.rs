//! `etcd_value`: the etcd store's value format.
//!
//! `backend_etcd::EtcdStore`'s decoders (`decode`: an object key's JSON through
//! `object_from_value`; `decode_record`: an address key's JSON as a `PoolIPAllocation`;
//! `assemble`: records folded into the pool's `status.allocatedIPs`) are private and reachable
//! only through a connected store, so this target runs the same steps with the same public
//! functions, and the store-URL parser `EtcdConfig::from_url`.
//!
//! Input: the first line is the key (or an `etcd://` URL), the rest the value. Checked: no
//! panic; an object decodes to what it encodes to; a pool stripped of its allocation state
//! (as the spec key keeps it) reads back stripped; records fold into a pool and unfold to the
//! same records.

use backend_etcd::EtcdConfig;
use serde_json::Value;
use spiderpool_core::model::{object_from_value, Object, PoolIPAllocation, PoolIPAllocations};
use spiderpool_testkit::fixtures::pool;

/// The `etcd_value` target.
pub fn etcd_value(data: &[u8]) {
    let (key, value) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let key = String::from_utf8_lossy(key).to_string();
    if let Some(cfg) = EtcdConfig::from_url(&key) {
        assert!(!cfg.endpoints.is_empty());
        assert!(cfg.prefix.starts_with('/') && cfg.prefix.ends_with('/'));
    }
    object(&key, value);
    record(&key, value);
}

/// `EtcdStore::decode` and what the store does with a pool it decoded.
fn object(key: &str, value: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(value) else {
        return;
    };
    let Ok(mut object) = object_from_value(key, v) else {
        return;
    };
    let again = object_from_value(key, object.to_value()).expect("an object re-reads");
    assert_eq!(again, object);
    if let Object::IpPool(p) = &mut object {
        // The spec key: no allocation state.
        let mut spec = p.clone();
        spec.status.allocated_ips = None;
        spec.status.allocated_ip_count = None;
        let stored = serde_json::to_vec(&Object::IpPool(spec.clone()).to_value()).unwrap();
        let back = object_from_value(key, serde_json::from_slice(&stored).unwrap()).unwrap();
        assert_eq!(back, Object::IpPool(spec.clone()));
        // Its records folded in, as `assemble` does.
        if let Ok(records) = p.allocations() {
            spec.set_allocations(&records);
            assert_eq!(spec.allocations().unwrap(), records);
            assert_eq!(spec.status.allocated_ip_count, Some(records.len() as i64));
        }
        let _ = p.allocated_set();
        p.metadata.resource_version = Some(i64::MAX.to_string());
    }
}

/// `EtcdStore::decode_record` and `assemble`: the address is the key's last segment.
fn record(key: &str, value: &[u8]) {
    let Ok(rec) = serde_json::from_slice::<PoolIPAllocation>(value) else {
        return;
    };
    let reread: PoolIPAllocation =
        serde_json::from_slice(&serde_json::to_vec(&rec).unwrap()).unwrap();
    assert_eq!(reread, rec);
    let ip = key.rsplit('/').next().unwrap_or_default().to_string();
    let mut records = PoolIPAllocations::new();
    records.insert(ip, rec.clone());
    records.insert("10.6.0.10".into(), rec);
    let mut p = pool("pool", "subnet: 10.6.0.0/24\nips: [10.6.0.10-10.6.0.20]");
    p.set_allocations(&records);
    assert_eq!(p.allocations().unwrap(), records);
    let _ = p.allocated_set();
    let back = object_from_value("assembled", Object::IpPool(p.clone()).to_value()).unwrap();
    assert_eq!(back, Object::IpPool(p));
}
