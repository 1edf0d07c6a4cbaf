//! The plugin's Kubernetes mode (`"store": "kube"`): Spiderpool's CRDs on the API server as the
//! store, and the pod, its namespace, its node and its top controller read from the API server,
//! as Spiderpool's agent reads them.
//!
//! - ADD: the pod must exist with the uid of `K8S_POD_UID` and be alive; its labels and
//!   annotations, its namespace's, its node's labels and its owner fill the
//!   [`AllocateRequest`](spiderpool_core::request::AllocateRequest) ([`PodContext`], read by
//!   [`Cluster`] in `kube/cluster.rs`). A third-party owner (a kind Kubernetes does not define)
//!   gets its auto-created pools here, before allocating, as Spiderpool's agent does; for
//!   built-in kinds the controller creates them and ADD waits a bounded time for them.
//! - DEL: a pod that still exists with the same uid and is alive keeps its addresses (a
//!   sandbox restart). Otherwise the addresses are released, unless the owner keeps them (a
//!   StatefulSet pod whose ordinal is still wanted, a KubeVirt VM).
//!
//! Every API request is bounded by the netconf's `kube_timeout_ms`; an API server that does not
//! answer gives [`Error::KubeUnavailable`] (CNI code 11, try again later), never a hang.

use std::time::Duration;

use backend_kube::KubeStore;
use serde_json::Value;
use spiderpool_core::autopool::{intent, plan_auto_pools, Application, AutoPoolConfig};
use spiderpool_core::ipam::{is_retryable, Ipam};
use spiderpool_core::model::{
    IPAllocationDetail, Object, SpiderIPPool, SpiderReservedIP, SpiderSubnet,
};
use spiderpool_core::request::{PodRef, ReleaseRequest};
use spiderpool_core::store::{Key, Store};
use spiderpool_core::workload::{self, str_at};

use crate::netconf::{CniEnv, NetConf};
use crate::Error;

/// The namespace of Spiderpool's ConfigMap `spiderpool-conf`.
pub const SETTINGS_NAMESPACE: &str = "kube-system";

/// How many times the auto-pools of a third-party owner are planned again after a conflict.
const AUTOPOOL_CONFLICT_RETRIES: u32 = 5;

mod cluster;

pub use cluster::{client_from_config, client_from_kubeconfig, Cluster, PodContext};

/// Whether a pod is alive as Spiderpool judges it: not terminating, and not finished for
/// good (Succeeded without `restartPolicy: Always`, Failed with `Never`, evicted).
pub fn is_alive(pod: &Value) -> bool {
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return false;
    }
    let restart = str_at(pod, "/spec/restartPolicy").unwrap_or("Always");
    match str_at(pod, "/status/phase") {
        Some("Succeeded") => restart == "Always",
        Some("Failed") => restart != "Never" && str_at(pod, "/status/reason") != Some("Evicted"),
        _ => true,
    }
}

/// `K8S_POD_NAMESPACE`, `K8S_POD_NAME` (both required in the Kubernetes mode) and
/// `K8S_POD_UID` (optional) of `CNI_ARGS`.
fn pod_args(env: &CniEnv) -> Result<(String, String, Option<String>), Error> {
    let get = |k: &str| env.args.get(k).filter(|v| !v.is_empty()).cloned();
    let required = |k: &str| {
        get(k).ok_or_else(|| Error::InvalidEnv {
            var: "CNI_ARGS".into(),
            reason: format!("{k} must be set when the store is kube"),
        })
    };
    let (ns, name) = (required("K8S_POD_NAMESPACE")?, required("K8S_POD_NAME")?);
    // The same name checks as outside Kubernetes.
    crate::plugin::pod_ref(env)?;
    Ok((ns, name, get("K8S_POD_UID")))
}

/// Creates or resizes the auto-created pools of a third-party owner (Spiderpool's agent does
/// it at ADD: no controller watches such kinds), retrying on conflicts.
pub async fn ensure_third_party_pools<S: Store>(
    store: &S,
    app: &Application,
    cfg: &AutoPoolConfig,
) -> Result<(), Error> {
    if intent(app, cfg)?.is_none() {
        // No subnet annotation: the pod uses ordinary pools.
        return Ok(());
    }
    let mut attempt = 0;
    loop {
        let result = async {
            let mut subnets = Vec::new();
            for s in store.list(SpiderSubnet::KIND).await? {
                if let Object::Subnet(x) = s.object {
                    subnets.push((x, s.revision));
                }
            }
            let mut pools = Vec::new();
            for s in store.list(SpiderIPPool::KIND).await? {
                if let Object::IpPool(p) = s.object {
                    pools.push((p, s.revision));
                }
            }
            let mut reserved = Vec::new();
            for s in store.list(SpiderReservedIP::KIND).await? {
                if let Object::ReservedIp(r) = s.object {
                    reserved.push(r);
                }
            }
            let writes = plan_auto_pools(app, &subnets, &pools, &reserved, cfg)?;
            if !writes.is_empty() {
                store.commit(writes).await?;
            }
            Ok::<_, spiderpool_core::Error>(())
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if is_retryable(&e) && attempt < AUTOPOOL_CONFLICT_RETRIES => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// ADD in the Kubernetes mode: the pod's addresses on every NIC.
pub(crate) async fn add(
    env: &CniEnv,
    conf: &NetConf,
    host_node: &str,
    engines: &crate::plugin::Engines,
) -> Result<Vec<IPAllocationDetail>, Error> {
    let (namespace, name, cni_uid) = pod_args(env)?;
    let cluster = engines.cluster(conf).await?;
    let ctx = cluster
        .pod_context(&namespace, &name, cni_uid.as_deref(), host_node)
        .await?;
    let settings = cluster.settings().await?;
    let ipam = crate::plugin::engine(cluster.store(), &env.container_id)
        .with_shared_index_cache(cluster.index_cache())
        .with_config(settings.ipam.clone());
    let limit = cluster.operation_limit();
    if settings.ipam.enable_spider_subnet && settings.ipam.enable_auto_pool {
        if let Some(app) = workload::third_party_application(&ctx.pod) {
            let what = format!(
                "creating the auto-created IPPools of {} {namespace}/{}",
                app.kind, app.name
            );
            cluster
                .bounded(
                    &what,
                    limit,
                    ensure_third_party_pools(ipam.store(), &app, &settings.autopool),
                )
                .await?;
        }
    }
    let req = ctx.request(&env.container_id, &env.ifname, conf);
    let builtin_owner = ctx.owner.as_ref().filter(|o| o.is_builtin());
    let (retries, pause) = conf.autopool_wait();
    let mut attempt = 0;
    loop {
        let result = cluster
            .bounded(
                &format!("allocating for Pod {namespace}/{name}"),
                limit,
                async { ipam.allocate(&req).await.map_err(Error::from) },
            )
            .await;
        match (result, builtin_owner) {
            (Err(Error::Ipam(spiderpool_core::Error::AutoPool { .. })), Some(_))
                if attempt < retries =>
            {
                attempt += 1;
                tokio::time::sleep(pause).await;
            }
            (Err(Error::Ipam(spiderpool_core::Error::AutoPool { pod, reason })), Some(o)) => {
                return Err(Error::Ipam(spiderpool_core::Error::AutoPool {
                    pod,
                    reason: format!(
                        "{reason} (waited {attempt} × {} ms for spiderpool-controller to create the auto-created IPPool of {} {namespace}/{})",
                        pause.as_millis(),
                        o.kind,
                        o.name
                    ),
                }))
            }
            (other, _) => return other,
        }
    }
}

/// DEL in the Kubernetes mode. Idempotent: a pod or allocation that is gone is a success.
pub(crate) async fn del(
    env: &CniEnv,
    conf: &NetConf,
    engines: &crate::plugin::Engines,
) -> Result<(), Error> {
    let (namespace, name, cni_uid) = pod_args(env)?;
    let cluster = engines.cluster(conf).await?;
    let pod = cluster.pod(&namespace, &name).await?;
    let same_pod = pod
        .as_ref()
        .filter(|p| cni_uid.as_deref().is_none_or(|u| u == workload::uid(p)));
    if same_pod.is_some_and(is_alive) {
        // A sandbox restart: the pod keeps its addresses (Spiderpool's rule).
        return Ok(());
    }
    // Without any uid there is nothing to match records against: GC frees them.
    let uid = cni_uid
        .clone()
        .or_else(|| same_pod.map(workload::uid))
        .unwrap_or_default();
    let settings = cluster.settings().await?;
    let store = cluster.store();
    let owner = match &pod {
        Some(p) => cluster.owner_of(p).await?,
        // The pod is gone: its endpoint says whether a StatefulSet may still want its
        // addresses.
        None => {
            let what = format!("reading SpiderEndpoint {namespace}/{name}");
            let endpoint = cluster
                .bounded(&what, cluster.timeout, async {
                    store
                        .get(&Key::endpoint(&namespace, &name))
                        .await
                        .map_err(Error::from)
                })
                .await?;
            match endpoint.map(|s| s.object) {
                Some(Object::Endpoint(ep)) if ep.status.owner_controller_type == "StatefulSet" => {
                    Some(
                        cluster
                            .statefulset_owner(&namespace, &ep.status.owner_controller_name)
                            .await?,
                    )
                }
                _ => None,
            }
        }
    };
    let ipam: Ipam<KubeStore> = crate::plugin::engine(store, &env.container_id)
        .with_shared_index_cache(cluster.index_cache())
        .with_config(settings.ipam);
    let req = ReleaseRequest {
        pod: PodRef::new(&namespace, &name, &uid),
        ifname: env.ifname.clone(),
        owner,
        pod_alive: false,
    };
    let result = cluster
        .bounded(
            &format!("releasing for Pod {namespace}/{name}"),
            cluster.operation_limit(),
            async { ipam.release(&req).await.map_err(Error::from) },
        )
        .await;
    match result {
        Ok(_) => Ok(()),
        // Store trouble: report it so that the runtime retries and nothing leaks.
        Err(
            e @ (Error::KubeUnavailable { .. }
            | Error::Ipam(
                spiderpool_core::Error::Unavailable { .. } | spiderpool_core::Error::Storage { .. },
            )),
        ) => Err(e),
        // Anything else about this pod (already gone, never added) is a successful DEL.
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::cluster::api_error;
    use super::*;
    use serde_json::json;

    #[test]
    fn alive_follows_spiderpool() {
        assert!(is_alive(&json!({"status": {"phase": "Running"}})));
        assert!(!is_alive(
            &json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}})
        ));
        assert!(!is_alive(
            &json!({"spec": {"restartPolicy": "Never"}, "status": {"phase": "Succeeded"}})
        ));
        assert!(is_alive(&json!({"status": {"phase": "Succeeded"}})));
        assert!(!is_alive(
            &json!({"spec": {"restartPolicy": "Never"}, "status": {"phase": "Failed"}})
        ));
        assert!(!is_alive(
            &json!({"status": {"phase": "Failed", "reason": "Evicted"}})
        ));
        assert!(is_alive(
            &json!({"spec": {"restartPolicy": "OnFailure"}, "status": {"phase": "Failed"}})
        ));
    }

    #[test]
    fn refusals_and_timeouts_have_their_codes() {
        let status = kube::core::Status::failure("forbidden", "Forbidden").with_code(403);
        let e = api_error("reading Pod a/b", kube::Error::Api(status.boxed()));
        assert_eq!(e.code(), crate::error::code::INTERNAL, "{e}");
        let status = kube::core::Status::failure("busy", "TooManyRequests").with_code(429);
        let e = api_error("reading Pod a/b", kube::Error::Api(status.boxed()));
        assert_eq!(e.code(), crate::error::code::TRY_AGAIN, "{e}");
    }
}
