//! The controller's main loop: watch, elect, reconcile.
//!
//! Every replica watches pods, the workload kinds and Spiderpool's pools and subnets; any
//! event wakes the loop (debounced), as does a timer. Each wake-up is one Lease step
//! ([`crate::lease`]); the leader then runs [`Controller::reconcile`]. On shutdown the leader
//! gives the Lease up so that another replica takes over at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::core::ApiResource;
use kube::Client;
use spiderpool_core::Error;
use tokio::sync::Notify;

use super::cluster::{resource, WORKLOAD_KINDS};
use super::{Controller, ControllerConfig, Report};
use crate::lease::{LeaderElector, Leadership};

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// This replica's identity in the Lease (the pod name).
    pub identity: String,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// Lease duration; the leader renews every third of it.
    pub lease_seconds: i32,
    /// Full reconcile at least this often, events or not.
    pub resync: Duration,
    /// The reconcile's own settings.
    pub controller: ControllerConfig,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            identity: "spiderpool-controller".into(),
            lease_namespace: "kube-system".into(),
            lease_name: "spiderpool-rs-controller".into(),
            lease_seconds: 15,
            resync: Duration::from_secs(60),
            controller: ControllerConfig::default(),
        }
    }
}

/// What the loop reports as it goes (a logger, or a test's channel).
pub trait Observer: Send + Sync {
    /// Leadership changed.
    fn leadership(&self, leadership: &Leadership);
    /// A reconcile ran.
    fn reconciled(&self, result: &Result<Report, Error>);
}

fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// The kinds whose events wake the loop.
fn watched() -> Vec<ApiResource> {
    let mut out = vec![resource("", "v1", "Pod", "pods")];
    out.extend(
        WORKLOAD_KINDS
            .iter()
            .map(|(g, v, k, p)| resource(g, v, k, p)),
    );
    out.push(resource(
        "spiderpool.spidernet.io",
        "v2beta1",
        "SpiderIPPool",
        "spiderippools",
    ));
    out.push(resource(
        "spiderpool.spidernet.io",
        "v2beta1",
        "SpiderSubnet",
        "spidersubnets",
    ));
    out
}

/// Watches one kind forever, waking `notify` on every change; relists after an expiry or an
/// error, and waits before retrying a kind the cluster does not serve.
async fn watch_kind(client: Client, ar: ApiResource, notify: Arc<Notify>) {
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    loop {
        let rv = match api.list(&ListParams::default().limit(1)).await {
            Ok(list) => list.metadata.resource_version.unwrap_or_default(),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                continue;
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Something may have changed while we were not watching.
        notify.notify_one();
        let mut rv = rv;
        'watch: loop {
            let params = WatchParams::default().timeout(290);
            let Ok(stream) = api.watch(&params, &rv).await else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                break 'watch;
            };
            let mut stream = stream.boxed();
            loop {
                match stream.try_next().await {
                    Ok(Some(
                        WatchEvent::Added(d) | WatchEvent::Modified(d) | WatchEvent::Deleted(d),
                    )) => {
                        if let Some(v) = d.metadata.resource_version {
                            rv = v;
                        }
                        notify.notify_one();
                    }
                    Ok(Some(WatchEvent::Bookmark(b))) => rv = b.metadata.resource_version,
                    // 410 Gone or any error event: list again.
                    Ok(Some(WatchEvent::Error(_))) | Err(_) => break 'watch,
                    // The server ended the watch (timeout): watch again from where we are.
                    Ok(None) => break,
                }
            }
        }
    }
}

/// Runs until `shutdown` completes: watches, elects, reconciles (see the module doc).
pub async fn run(
    client: Client,
    options: RunOptions,
    observer: &dyn Observer,
    shutdown: impl Future<Output = ()>,
) {
    let notify = Arc::new(Notify::new());
    let watchers: Vec<_> = watched()
        .into_iter()
        .map(|ar| tokio::spawn(watch_kind(client.clone(), ar, notify.clone())))
        .collect();
    let elector = LeaderElector::new(
        client.clone(),
        &options.lease_namespace,
        &options.lease_name,
        &options.identity,
        options.lease_seconds,
    );
    let controller = Controller::new(client, options.controller.clone());
    let renew = Duration::from_secs(u64::try_from(options.lease_seconds.max(3)).unwrap_or(15) / 3);
    let mut last: Option<Leadership> = None;
    let mut last_full = tokio::time::Instant::now();
    let mut woken = true;
    tokio::pin!(shutdown);
    loop {
        let step = elector.step(now_us()).await;
        let leadership = match step {
            Ok(l) => l,
            Err(e) => {
                observer.reconciled(&Err(e));
                Leadership::Following {
                    holder: String::new(),
                }
            }
        };
        if last.as_ref() != Some(&leadership) {
            observer.leadership(&leadership);
            // A new leader reconciles everything at once.
            woken = true;
        }
        let leading = leadership == Leadership::Leading;
        last = Some(leadership);
        if leading && (woken || last_full.elapsed() >= options.resync) {
            observer.reconciled(&controller.reconcile(jiff::Timestamp::now()).await);
            last_full = tokio::time::Instant::now();
        }
        woken = false;
        tokio::select! {
            _ = notify.notified() => {
                woken = true;
                // Debounce: a burst of events makes one reconcile.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ = tokio::time::sleep(renew.min(options.resync)) => {}
            _ = &mut shutdown => break,
        }
    }
    for w in watchers {
        w.abort();
    }
    if last == Some(Leadership::Leading) {
        if let Err(e) = elector.release().await {
            observer.reconciled(&Err(e));
        }
    }
}
