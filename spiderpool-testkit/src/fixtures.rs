//! Builders for objects and requests used by the scenarios.

use std::collections::BTreeMap;

use spiderpool_core::model::{parse_documents, Object, SpiderIPPool, SpiderReservedIP};
use spiderpool_core::request::{AllocateRequest, Owner, PodRef, ReleaseRequest};
use spiderpool_core::store::Store;
use spiderpool_core::validate::{mutate_ippool, mutate_reservedip, AdmissionConfig};

/// A pool named `name` from a YAML `spec` body (indented by the caller or not), defaulted as
/// admission would.
pub fn pool(name: &str, spec: &str) -> SpiderIPPool {
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    let yaml = format!(
        "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata:\n  name: {name}\nspec:\n{body}"
    );
    let Object::IpPool(mut p) = parse_documents("fixture", &yaml).unwrap().remove(0).object else {
        panic!("not a pool")
    };
    mutate_ippool(&mut p, &[], &AdmissionConfig::default());
    p
}

/// A reserved-IP object.
pub fn reserved(name: &str, ips: &[&str]) -> SpiderReservedIP {
    let mut r = SpiderReservedIP::new(
        name,
        spiderpool_core::model::ReservedIPSpec {
            ips: ips.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    );
    mutate_reservedip(&mut r);
    r
}

/// Stores a pool.
pub async fn put_pool<S: Store + ?Sized>(store: &S, name: &str, spec: &str) {
    store
        .create(Object::IpPool(pool(name, spec)))
        .await
        .unwrap();
}

/// A request for pod `ns/name` with `uid` on NIC `eth0` of node `node-1`.
pub fn add(ns: &str, name: &str, uid: &str) -> AllocateRequest {
    AllocateRequest {
        pod: PodRef::new(ns, name, uid),
        container_id: format!("ctr-{uid}"),
        ifname: "eth0".into(),
        node: "node-1".into(),
        ..AllocateRequest::default()
    }
}

/// The same request with pod annotations.
pub fn with_annotations(mut req: AllocateRequest, pairs: &[(&str, &str)]) -> AllocateRequest {
    req.pod_annotations = map(pairs);
    req
}

/// A string map.
pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A release of pod `ns/name` with `uid` (pod gone).
pub fn del(ns: &str, name: &str, uid: &str) -> ReleaseRequest {
    ReleaseRequest {
        pod: PodRef::new(ns, name, uid),
        ifname: "eth0".into(),
        ..ReleaseRequest::default()
    }
}

/// A StatefulSet owner with `replicas`.
pub fn statefulset(name: &str, replicas: i64) -> Owner {
    Owner {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        name: name.into(),
        uid: format!("sts-{name}"),
        exists: true,
        replicas: Some(replicas),
        ordinals_start: None,
    }
}

/// A Deployment owner.
pub fn deployment(name: &str) -> Owner {
    Owner {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: name.into(),
        uid: format!("deploy-{name}"),
        exists: true,
        replicas: None,
        ordinals_start: None,
    }
}

/// Runs a future that never waits (the in-memory store answers at once) to completion on the
/// current thread, without a runtime: cheap enough for thousands of property-test cases.
///
/// # Panics
/// If the future waits, which means it needs a real runtime.
pub fn block_on_ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the future waited: run it on a runtime"),
    }
}

/// The directory of the package whose test is running, as `cargo test` gives it to the test
/// process (`CARGO_MANIFEST_DIR` at run time; else the working directory, where cargo runs
/// tests). Not the path compiled in with `env!`: the build cache is shared by clones at other
/// paths (CI's fresh clones), and a test binary built in one clone and found fresh in another
/// would read the first clone's files.
pub fn package_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default()
}
