//! The controller: keeps auto-pools and garbage collection in step with the cluster's
//! workloads and pods, with the core's decisions ([`spiderpool_core::autopool`],
//! [`spiderpool_core::gc`]) written through the [`KubeStore`].
//!
//! One [`Controller::reconcile`] call is level-triggered: it reads the cluster and Spiderpool's
//! objects and makes them agree, so it can be run on every watch event, on a timer, or after
//! a restart, by whichever replica holds the Lease ([`crate::lease`]). Every write carries the
//! resourceVersion it was planned on; a 409 (another controller, a CNI plugin) makes it read
//! again and re-plan, so two controllers running at once never create duplicate pools or free
//! an address twice. In order:
//!
//! 1. **Auto-pools**: every top-level application (Deployment, ReplicaSet without Deployment,
//!    StatefulSet, DaemonSet, Job, CronJob, and third-party controllers found through the
//!    pods' ownerReferences) gets its pools created or resized from its SpiderSubnet.
//! 2. **Reclaim**: auto-pools of deleted built-in applications, once empty, are deleted and
//!    their addresses returned to the subnet (the workloads are listed again after the pools
//!    are read, so a pool is never reclaimed for an application created meanwhile).
//! 3. **Finalizers**: a pool keeps the `spiderpool.spidernet.io` finalizer while it exists;
//!    a terminating pool loses it once it holds no allocation (so a pool with allocations is
//!    never lost), a terminating subnet once it controls no pool.
//! 4. **GC**: the addresses of pods that are gone, finished, replaced or past their deletion
//!    grace, and of stateful pods no longer wanted, are released (pods are listed after the
//!    endpoints are read, so a pod allocated meanwhile is never taken for gone).

pub mod cluster;
pub mod run;

use std::collections::{BTreeMap, BTreeSet};

use kube::Client;
use serde_json::Value;
use spiderpool_core::allocate::Outcome;
use spiderpool_core::autopool::{gone_applications, plan_auto_pools, plan_reclaim, Application};
use spiderpool_core::gc::gc_decisions;
use spiderpool_core::ipam::{is_retryable, Ipam};
use spiderpool_core::model::{
    Object, SpiderEndpoint, SpiderIPPool, SpiderReservedIP, SpiderSubnet, FINALIZER,
};
use spiderpool_core::request::{is_builtin_workload, Owner};
use spiderpool_core::settings::Settings;
use spiderpool_core::store::{Revision, Store, Write};
use spiderpool_core::workload;
use spiderpool_core::Error;

use crate::KubeStore;
pub use cluster::ClusterView;

/// How the controller behaves.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Namespace of the `spiderpool-conf` ConfigMap (`kube-system`).
    pub settings_namespace: String,
    /// Whether GC frees addresses (Spiderpool's `SPIDERPOOL_GC_IP_ENABLED`).
    pub gc_enabled: bool,
    /// Seconds added to a terminating pod's grace period before its addresses are freed
    /// (`SPIDERPOOL_GC_ADDITIONAL_GRACE_DELAY`).
    pub gc_extra_grace_seconds: i64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            settings_namespace: "kube-system".into(),
            gc_enabled: true,
            gc_extra_grace_seconds: 0,
        }
    }
}

/// What one reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Auto-pool plans written, by application (`Kind ns/name`).
    pub autopools: BTreeSet<String>,
    /// Applications whose auto-pools were reclaimed (uids).
    pub reclaimed: BTreeSet<String>,
    /// Finalizer changes (`added pool x`, `removed pool y`).
    pub finalizers: Vec<String>,
    /// Releases made by GC, with why.
    pub released: Vec<String>,
    /// Plans that met a concurrent write (409) and were planned again.
    pub conflicts: usize,
    /// Applications the auto-pool planner refused, with why (retried next reconcile).
    pub errors: BTreeMap<String, String>,
}

impl Report {
    /// Whether the reconcile changed nothing.
    pub fn is_quiet(&self) -> bool {
        self.autopools.is_empty()
            && self.reclaimed.is_empty()
            && self.finalizers.is_empty()
            && self.released.is_empty()
    }
}

/// The controller over one cluster.
#[derive(Clone)]
pub struct Controller {
    client: Client,
    store: KubeStore,
    config: ControllerConfig,
}

/// How many times a step re-plans after meeting a concurrent write before leaving the rest to
/// the next reconcile.
const MAX_REPLANS: usize = 16;

struct SpiderState {
    subnets: Vec<(SpiderSubnet, Revision)>,
    pools: Vec<(SpiderIPPool, Revision)>,
    reserved: Vec<SpiderReservedIP>,
}

fn app_id(app: &Application) -> String {
    format!("{} {}/{}", app.kind, app.namespace, app.name)
}

fn is_conflict(e: &Error) -> bool {
    matches!(
        e,
        Error::Conflict { .. } | Error::AlreadyExists { .. } | Error::NotFound { .. }
    )
}

impl Controller {
    /// A controller on `client`.
    pub fn new(client: Client, config: ControllerConfig) -> Self {
        Controller {
            store: KubeStore::new(client.clone()),
            client,
            config,
        }
    }

    /// The store it writes through.
    pub fn store(&self) -> &KubeStore {
        &self.store
    }

    async fn spider_state(&self) -> Result<SpiderState, Error> {
        let mut s = SpiderState {
            subnets: Vec::new(),
            pools: Vec::new(),
            reserved: Vec::new(),
        };
        for kind in [
            SpiderSubnet::KIND,
            SpiderIPPool::KIND,
            SpiderReservedIP::KIND,
        ] {
            for stored in self.store.list(kind).await? {
                match stored.object {
                    Object::Subnet(x) => s.subnets.push((x, stored.revision)),
                    Object::IpPool(x) => s.pools.push((x, stored.revision)),
                    Object::ReservedIp(x) => s.reserved.push(x),
                    _ => {}
                }
            }
        }
        Ok(s)
    }

    /// Writes `writes`; a conflict is counted and reported as `Ok(false)` (plan again).
    async fn commit(&self, writes: Vec<Write>, report: &mut Report) -> Result<bool, Error> {
        match self.store.commit(writes).await {
            Ok(()) => Ok(true),
            Err(e) if is_conflict(&e) => {
                report.conflicts += 1;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads the cluster and makes Spiderpool's objects agree with it (see the module doc).
    /// `now` judges terminating pods' grace periods.
    pub async fn reconcile(&self, now: jiff::Timestamp) -> Result<Report, Error> {
        let settings = cluster::settings(&self.client, &self.config.settings_namespace).await?;
        let mut report = Report::default();
        if settings.ipam.enable_spider_subnet && settings.ipam.enable_auto_pool {
            let view = cluster::read(&self.client).await?;
            self.auto_pools(&view, &settings, &mut report).await?;
            self.reclaim(&mut report).await?;
        }
        self.finalizers(&mut report).await?;
        if self.config.gc_enabled {
            self.gc(&settings, now, &mut report).await?;
        }
        Ok(report)
    }

    /// The applications of the cluster: top-level built-in workloads that are not being
    /// deleted and do not use the host network, and third-party controllers of pods.
    pub fn applications(view: &ClusterView) -> Vec<Application> {
        let mut apps: Vec<Application> = view
            .workloads
            .iter()
            .filter(|w| {
                let kind = workload::str_at(w, "/kind").unwrap_or_default();
                let api_version = workload::str_at(w, "/apiVersion").unwrap_or_default();
                let template = w
                    .pointer(workload::pod_template_path(kind))
                    .cloned()
                    .unwrap_or(Value::Null);
                is_builtin_workload(api_version, kind)
                    && workload::is_top_level(w)
                    && w.pointer("/metadata/deletionTimestamp").is_none()
                    && !workload::is_host_network(&template)
            })
            .map(|w| workload::application(w, view.nodes))
            .collect();
        let mut seen: BTreeSet<String> = apps.iter().map(|a| a.uid.clone()).collect();
        for pod in &view.pods {
            if workload::is_host_network(pod) {
                continue;
            }
            if let Some(app) = workload::third_party_application(pod) {
                if seen.insert(app.uid.clone()) {
                    apps.push(app);
                }
            }
        }
        apps
    }

    async fn auto_pools(
        &self,
        view: &ClusterView,
        settings: &Settings,
        report: &mut Report,
    ) -> Result<(), Error> {
        let mut state = self.spider_state().await?;
        for app in Self::applications(view) {
            for _ in 0..MAX_REPLANS {
                let writes = match plan_auto_pools(
                    &app,
                    &state.subnets,
                    &state.pools,
                    &state.reserved,
                    &settings.autopool,
                ) {
                    Ok(w) => w,
                    Err(e) => {
                        report.errors.insert(app_id(&app), e.to_string());
                        break;
                    }
                };
                if writes.is_empty() {
                    break;
                }
                let written = self.commit(writes, report).await?;
                state = self.spider_state().await?;
                if written {
                    report.autopools.insert(app_id(&app));
                    break;
                }
            }
        }
        Ok(())
    }

    async fn reclaim(&self, report: &mut Report) -> Result<(), Error> {
        for _ in 0..MAX_REPLANS {
            let state = self.spider_state().await?;
            // Listed after the pools: an application created meanwhile is seen as live.
            let view = ClusterView {
                workloads: cluster::list_workloads(&self.client).await?,
                pods: cluster::list_pods(&self.client).await?,
                nodes: 0,
            };
            let live: BTreeSet<String> = view
                .workloads
                .iter()
                .map(workload::uid)
                .chain(Self::applications(&view).into_iter().map(|a| a.uid))
                .collect();
            let mut progressed = false;
            let mut conflicted = false;
            for gone in gone_applications(&state.pools, &live) {
                let writes = plan_reclaim(&gone, &state.subnets, &state.pools)?;
                if writes.is_empty() {
                    continue;
                }
                if self.commit(writes, report).await? {
                    report.reclaimed.insert(gone);
                    progressed = true;
                } else {
                    conflicted = true;
                }
                // The subnets changed: read them again before the next application.
                break;
            }
            if !progressed && !conflicted {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn finalizers(&self, report: &mut Report) -> Result<(), Error> {
        for _ in 0..MAX_REPLANS {
            let state = self.spider_state().await?;
            let mut writes = Vec::new();
            let mut done = Vec::new();
            for (pool, rev) in &state.pools {
                let has = pool.metadata.finalizers.iter().any(|f| f == FINALIZER);
                let empty = pool.allocations()?.is_empty();
                let mut next = pool.clone();
                if pool.metadata.is_terminating() && has && empty {
                    next.metadata.finalizers.retain(|f| f != FINALIZER);
                    done.push(format!("removed from SpiderIPPool {}", pool.metadata.name));
                } else if !pool.metadata.is_terminating() && !has {
                    next.metadata.finalizers.push(FINALIZER.into());
                    done.push(format!("added to SpiderIPPool {}", pool.metadata.name));
                } else {
                    continue;
                }
                writes.push(Write::Update {
                    object: Object::IpPool(next),
                    expected: rev.clone(),
                });
            }
            for (subnet, rev) in &state.subnets {
                if subnet.metadata.is_terminating()
                    && subnet.metadata.finalizers.iter().any(|f| f == FINALIZER)
                    && subnet.controlled_pools()?.is_empty()
                {
                    let mut next = subnet.clone();
                    next.metadata.finalizers.retain(|f| f != FINALIZER);
                    done.push(format!(
                        "removed from SpiderSubnet {}",
                        subnet.metadata.name
                    ));
                    writes.push(Write::Update {
                        object: Object::Subnet(next),
                        expected: rev.clone(),
                    });
                }
            }
            if writes.is_empty() {
                return Ok(());
            }
            // Each write stands alone: commit them one by one so that one conflict does not
            // hold back the rest.
            let mut conflicted = false;
            for (w, what) in writes.into_iter().zip(done) {
                if self.commit(vec![w], report).await? {
                    report.finalizers.push(what);
                } else {
                    conflicted = true;
                }
            }
            if !conflicted {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn gc(
        &self,
        settings: &Settings,
        now: jiff::Timestamp,
        report: &mut Report,
    ) -> Result<(), Error> {
        let state = self.spider_state().await?;
        let endpoints: Vec<SpiderEndpoint> = self
            .store
            .list(SpiderEndpoint::KIND)
            .await?
            .into_iter()
            .filter_map(|s| match s.object {
                Object::Endpoint(e) => Some(e),
                _ => None,
            })
            .collect();
        // Listed after the pools and endpoints: a pod allocated meanwhile is in this list.
        let pods = cluster::list_pods(&self.client).await?;
        let workloads = cluster::list_workloads(&self.client).await?;
        let infos: Vec<_> = pods
            .iter()
            .filter(|p| !workload::is_host_network(p))
            .map(workload::pod_info)
            .collect();
        let pools: Vec<SpiderIPPool> = state.pools.into_iter().map(|(p, _)| p).collect();
        let owner_of = |ep: &SpiderEndpoint| stateful_owner(ep, &workloads);
        let ipam = Ipam::new(&self.store).with_config(settings.ipam.clone());
        for d in gc_decisions(
            &infos,
            &pools,
            &endpoints,
            &owner_of,
            now,
            self.config.gc_extra_grace_seconds,
        ) {
            match ipam.release(&d.release).await {
                Ok(Outcome::Unchanged) => {}
                Ok(_) => report.released.push(d.reason),
                // Someone else changed the pool meanwhile: the next reconcile judges again.
                Err(e) if is_retryable(&e) || is_conflict(&e) => report.conflicts += 1,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The current state of a stateful endpoint's owner: its StatefulSet, or for a KubeVirt VM
/// the VMI of the endpoint's name (or else the VM of that name) while not being deleted.
fn stateful_owner(ep: &SpiderEndpoint, workloads: &[Value]) -> Option<Owner> {
    let ns = ep.metadata.namespace.clone().unwrap_or_default();
    let find = |kind: &str, name: &str| {
        workloads.iter().find(|w| {
            workload::str_at(w, "/kind") == Some(kind)
                && workload::namespace(w) == ns
                && workload::name(w) == name
        })
    };
    match ep.status.owner_controller_type.as_str() {
        "StatefulSet" => {
            find("StatefulSet", &ep.status.owner_controller_name).map(|w| workload::owner(w, 0))
        }
        "KubevirtVMI" => {
            let live = |w: &&Value| w.pointer("/metadata/deletionTimestamp").is_none();
            let vmi = find("VirtualMachineInstance", &ep.metadata.name).filter(live);
            let vm = find("VirtualMachine", &ep.metadata.name).filter(live);
            vmi.or(vm).map(|w| Owner {
                api_version: "kubevirt.io/v1".into(),
                kind: "VirtualMachineInstance".into(),
                name: ep.metadata.name.clone(),
                uid: workload::uid(w),
                exists: true,
                replicas: None,
                ordinals_start: None,
            })
        }
        _ => None,
    }
}
