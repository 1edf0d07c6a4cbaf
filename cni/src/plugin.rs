//! The CNI commands: ADD, DEL, CHECK, VERSION, STATUS, GC.
//!
//! [`run`] takes the environment and stdin and returns what to print and the exit code, so
//! the whole plugin is testable in-process; `src/bin/spiderpool.rs` only does the I/O.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};
use spiderpool_core::allocate::Snapshot;
use spiderpool_core::annotations::{ANNO_ENDPOINT_CONTAINER_ID, ANNO_ENDPOINT_NETWORK};
use spiderpool_core::ip::IpFamily;
use spiderpool_core::ipam::Ipam;
use spiderpool_core::model::{
    AddressSpec, IPAllocationDetail, Object, SpiderEndpoint, SpiderReservedIP,
};
use spiderpool_core::request::{AllocateRequest, NetconfDefaults, PodRef, ReleaseRequest};
use spiderpool_core::store::Store;

use crate::netconf::{CniEnv, NetConf, SUPPORTED_VERSIONS};
use crate::store::AnyStore;
use crate::Error;

/// What the plugin prints and how it exits (also what the agent sends back, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    /// JSON for stdout (empty for a successful DEL or GC).
    pub stdout: String,
    /// 0 on success, 1 on error.
    pub exit_code: i32,
    /// A line for stderr (errors that DEL forgives, for the runtime's logs).
    pub stderr: String,
}

impl Reply {
    /// The reply for a failed command: `e`'s CNI error object in `version`, exit code 1.
    pub fn error(version: &str, e: &Error) -> Self {
        Reply {
            stdout: e.to_reply(version).to_string(),
            exit_code: 1,
            stderr: String::new(),
        }
    }
}

/// Set by the plugin binary, which exits as soon as it has replied.
static EXITS_AFTER_REPLY: AtomicBool = AtomicBool::new(false);

/// Tells [`run`] that the process exits right after the reply (the plugin binary): the engine
/// and the store state it decoded are then left to the exit rather than freed one allocation
/// at a time (~1 ms for a pool of a few thousand records). Writes are durable before a
/// command returns, so nothing depends on these values being dropped. A long-lived caller
/// (tests, an agent) leaves this unset.
pub fn exit_after_reply() {
    EXITS_AFTER_REPLY.store(true, Ordering::Relaxed);
}

/// Drops `value`, or leaves it to the process's exit (see [`exit_after_reply`]).
fn finish<T>(value: T) {
    if EXITS_AFTER_REPLY.load(Ordering::Relaxed) {
        std::mem::forget(value);
    }
}

/// Runs one CNI invocation. `node` is this host's name (for pools pinned to nodes).
///
/// VERSION is answered at once. Otherwise, when the netconf names an agent socket
/// (`ipam.ipam_unix_socket_path`) and an agent listens there, the invocation is handed to it
/// ([`crate::agent`]); when nothing listens there, the command runs in this process on the
/// same store (the store is locked, so either way is safe).
pub fn run(env: &CniEnv, stdin: &[u8], node: &str) -> Reply {
    if env.command == "VERSION" {
        return version(stdin);
    }
    if let Some(reply) = crate::agent::forward(env, stdin, node) {
        return reply;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return fail(
                &reply_version(stdin),
                &Error::NotAvailable {
                    reason: e.to_string(),
                },
            )
        }
    };
    runtime.block_on(run_with(env, stdin, node, &Engines::per_call()))
}

/// The version replies are given in: the netconf's, if it is one we support.
fn reply_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.1.0".to_string())
}

fn version(stdin: &[u8]) -> Reply {
    ok(json!({ "cniVersion": reply_version(stdin), "supportedVersions": SUPPORTED_VERSIONS }))
}

/// Runs one CNI invocation in this process, on engines from `engines` (the agent keeps them
/// across invocations; [`run`] opens them per call).
pub async fn run_with(env: &CniEnv, stdin: &[u8], node: &str, engines: &Engines) -> Reply {
    if env.command == "VERSION" {
        return version(stdin);
    }
    let outcome = async {
        let conf = NetConf::parse(stdin)?;
        let command = async {
            match env.command.as_str() {
                "ADD" => add(env, &conf, node, engines).await.map(Some),
                "DEL" => del(env, &conf, engines).await.map(|()| None),
                "CHECK" => check(env, &conf, engines).await.map(|()| None),
                "STATUS" => status(&conf, engines).await.map(|()| None),
                "GC" => gc(&conf, node, engines).await.map(|()| None),
                other => Err(Error::InvalidEnv {
                    var: "CNI_COMMAND".into(),
                    reason: format!(
                        "unknown command {other:?} (ADD, DEL, CHECK, VERSION, STATUS, GC)"
                    ),
                }),
            }
        };
        // Dropping the command at the bound is safe: a local-store commit has no await point
        // inside, and an etcd or Kubernetes write either applied or not; an ADD that failed is
        // followed by the runtime's DEL, and a repeated ADD returns what was recorded.
        let limit = conf.command_timeout();
        let out = tokio::time::timeout(limit, command)
            .await
            .unwrap_or_else(|_| {
                Err(Error::DeadlineExceeded {
                    command: env.command.clone(),
                    millis: limit.as_millis(),
                })
            });
        if let Err(e) = &out {
            if store_trouble(e) {
                // The next invocation opens the store afresh.
                engines.forget(&conf);
            }
        }
        out
    }
    .await;
    if let Ok(conf) = NetConf::parse(stdin) {
        log(&conf, env, outcome.as_ref().err());
    }
    match outcome {
        Ok(Some(result)) => ok(result),
        Ok(None) => Reply {
            stdout: String::new(),
            exit_code: 0,
            stderr: String::new(),
        },
        Err(e) => fail(&reply_version(stdin), &e),
    }
}

/// Whether `e` may come from the store or the connection to it (rather than from the request
/// or the pools' contents: no free address, a bad annotation, …).
fn store_trouble(e: &Error) -> bool {
    use crate::error::code;
    matches!(
        e.code(),
        code::TRY_AGAIN | code::STORE_FAILED | code::NOT_AVAILABLE | code::INTERNAL
    )
}

/// Most stores an agent keeps open at once (naming one more drops those kept, which are then
/// opened again as they are named).
const MAX_KEPT_ENGINES: usize = 16;

/// Where the commands get their engine (a store and the decoded pools it keeps between
/// decisions): opened for each invocation (the plugin process), or kept across invocations
/// (the agent), one per store location and lock timeout.
pub struct Engines {
    kept: Option<Mutex<Kept>>,
}

/// What an agent keeps, by [`Engines::key`].
#[derive(Default)]
struct Kept {
    engines: HashMap<String, Arc<Ipam<AnyStore>>>,
    /// Kubernetes mode: the API server's client (its connections are reused).
    clusters: HashMap<String, crate::kube::Cluster>,
}

impl Engines {
    /// A new engine for every invocation.
    pub fn per_call() -> Self {
        Engines { kept: None }
    }

    /// Engines kept across invocations.
    pub fn kept() -> Self {
        Engines {
            kept: Some(Mutex::new(Kept::default())),
        }
    }

    /// How many stores (engines, and Kubernetes clients) are kept open.
    pub fn kept_count(&self) -> usize {
        self.kept.as_ref().map_or(0, |k| {
            let k = lock(k);
            k.engines.len() + k.clusters.len()
        })
    }

    /// What tells stores apart: the location and lock timeout, or in the Kubernetes mode the
    /// kubeconfig and request timeout.
    fn key(conf: &NetConf) -> String {
        if conf.is_kube() {
            format!(
                "kube\0{}\0{:?}",
                conf.kubeconfig(),
                conf.ipam.kube_timeout_ms
            )
        } else {
            format!("{}\0{:?}", conf.store(), conf.ipam.lock_timeout_ms)
        }
    }

    /// The engine for the store `conf` names.
    async fn engine(&self, conf: &NetConf, container: &str) -> Result<Arc<Ipam<AnyStore>>, Error> {
        // The retry jitter's seed: the container in a plugin process, the store in an agent.
        let seed = match self.kept {
            Some(_) => Self::key(conf),
            None => container.to_string(),
        };
        let open = async { Ok(Arc::new(engine(conf.open_store().await?, &seed))) };
        self.kept_or_open(conf, |k| &mut k.engines, open).await
    }

    /// Kubernetes mode: the API server `conf` names.
    pub(crate) async fn cluster(&self, conf: &NetConf) -> Result<crate::kube::Cluster, Error> {
        let open = crate::kube::Cluster::connect(conf);
        self.kept_or_open(conf, |k| &mut k.clusters, open).await
    }

    /// What `pick` keeps under `conf`'s key, or what `open` gives (kept, in an agent).
    async fn kept_or_open<T: Clone>(
        &self,
        conf: &NetConf,
        pick: fn(&mut Kept) -> &mut HashMap<String, T>,
        open: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let Some(kept) = &self.kept else {
            return open.await;
        };
        let key = Self::key(conf);
        if let Some(v) = pick(&mut lock(kept)).get(&key) {
            return Ok(v.clone());
        }
        let fresh = open.await?;
        let mut kept = lock(kept);
        let map = pick(&mut kept);
        if map.len() >= MAX_KEPT_ENGINES {
            map.clear();
        }
        Ok(map.entry(key).or_insert(fresh).clone())
    }

    fn forget(&self, conf: &NetConf) {
        if let Some(kept) = &self.kept {
            let key = Self::key(conf);
            let mut kept = lock(kept);
            kept.engines.remove(&key);
            kept.clusters.remove(&key);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Appends one line per invocation to `ipam.log_file_path`, if set: best effort, a logging
/// failure never fails the CNI call.
fn log(conf: &NetConf, env: &CniEnv, error: Option<&Error>) {
    use std::io::Write as _;
    let Some(path) = conf.ipam.log_file_path.as_deref().filter(|p| !p.is_empty()) else {
        return;
    };
    let level = conf
        .ipam
        .log_level
        .as_deref()
        .unwrap_or("info")
        .to_ascii_lowercase();
    if error.is_none() && matches!(level.as_str(), "warn" | "warning" | "error") {
        return;
    }
    let when = jiff::Timestamp::now();
    let line = match error {
        None => format!(
            "{when} INFO {} container={} ifname={} ok\n",
            env.command, env.container_id, env.ifname
        ),
        Some(e) => format!(
            "{when} ERROR {} container={} ifname={} code={}: {e}\n",
            env.command,
            env.container_id,
            env.ifname,
            e.code()
        ),
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut f) = file {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Backoff between retries of a conflicting allocation: exponential up to 25 ms, with a
/// jitter derived from the container id so that concurrent plugins spread out.
struct Backoff {
    seed: u64,
}

impl Backoff {
    fn for_container(id: &str) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        Backoff { seed: h.finish() }
    }
}

#[async_trait::async_trait]
impl spiderpool_core::ipam::Pause for Backoff {
    async fn pause(&self, attempt: u32) {
        let cap = 2u64.saturating_pow(attempt.min(5)).min(25);
        let jitter = self.seed.rotate_left(attempt) % (cap + 1);
        tokio::time::sleep(std::time::Duration::from_millis(cap / 2 + jitter)).await;
    }
}

/// The engine the plugin runs: retries with [`Backoff`].
pub(crate) fn engine<S: Store>(store: S, container: &str) -> Ipam<S> {
    Ipam::new(store).with_retries(200, Backoff::for_container(container))
}

fn ok(v: Value) -> Reply {
    Reply {
        stdout: v.to_string(),
        exit_code: 0,
        stderr: String::new(),
    }
}

fn fail(version: &str, e: &Error) -> Reply {
    Reply::error(version, e)
}

/// The pod behind the attachment: `K8S_POD_*` from `CNI_ARGS`, or, for a runtime without
/// Kubernetes, the container itself (namespace `default`, name and uid the container id).
pub(crate) fn pod_ref(env: &CniEnv) -> Result<PodRef, Error> {
    let get = |k: &str| env.args.get(k).filter(|v| !v.is_empty()).cloned();
    let pod = PodRef {
        namespace: get("K8S_POD_NAMESPACE").unwrap_or_else(|| "default".into()),
        name: get("K8S_POD_NAME").unwrap_or_else(|| env.container_id.clone()),
        uid: get("K8S_POD_UID").unwrap_or_else(|| env.container_id.clone()),
    };
    for (what, v) in [
        ("K8S_POD_NAMESPACE", &pod.namespace),
        ("K8S_POD_NAME", &pod.name),
    ] {
        if v.len() > 253 || v.contains('/') || v.contains('\0') || v == ".." || v == "." {
            return Err(Error::InvalidEnv {
                var: "CNI_ARGS".into(),
                reason: format!("{what} {v:?} is not a valid name"),
            });
        }
    }
    Ok(pod)
}

async fn add(env: &CniEnv, conf: &NetConf, node: &str, engines: &Engines) -> Result<Value, Error> {
    env.require(&["CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"])?;
    let nics = if conf.is_kube() {
        crate::kube::add(env, conf, node, engines).await?
    } else {
        add_local(env, conf, node, engines).await?
    };
    let has_ip = nics
        .iter()
        .any(|d| d.nic == env.ifname && (d.ipv4.is_some() || d.ipv6.is_some()));
    if !has_ip {
        return Err(Error::Ipam(spiderpool_core::Error::Annotation {
            owner: "Pod".into(),
            key: "pool selection".into(),
            value: String::new(),
            reason: format!(
                "no Interface {} IP allocation found: no pool is named for it",
                env.ifname
            ),
        }));
    }
    Ok(crate::result::add_result(
        &conf.cni_version,
        &nics,
        &env.ifname,
        conf.dns.as_ref(),
    ))
}

/// ADD outside Kubernetes: the pod is what `CNI_ARGS` and the netconf say.
async fn add_local(
    env: &CniEnv,
    conf: &NetConf,
    node: &str,
    engines: &Engines,
) -> Result<Vec<IPAllocationDetail>, Error> {
    let ipam = engines.engine(conf, &env.container_id).await?;
    let req = AllocateRequest {
        pod: pod_ref(env)?,
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
        node: node.to_string(),
        pod_annotations: conf.pod_annotations()?,
        netconf: NetconfDefaults {
            default_ipv4_ippool: conf.ipam.default_ipv4_ippool.clone(),
            default_ipv6_ippool: conf.ipam.default_ipv6_ippool.clone(),
            clean_gateway: conf.ipam.clean_gateway,
        },
        network: conf.name.clone(),
        ..AllocateRequest::default()
    };
    let out = ipam.allocate(&req).await;
    finish(ipam);
    Ok(out?)
}

async fn del(env: &CniEnv, conf: &NetConf, engines: &Engines) -> Result<(), Error> {
    env.require(&["CNI_CONTAINERID", "CNI_IFNAME"])?;
    if conf.is_kube() {
        return crate::kube::del(env, conf, engines).await;
    }
    if crate::store::is_missing_local(conf.store()) {
        // Nothing was ever stored there: nothing to release.
        return Ok(());
    }
    let ipam = engines.engine(conf, &env.container_id).await?;
    let req = ReleaseRequest {
        pod: pod_ref(env)?,
        ifname: env.ifname.clone(),
        ..ReleaseRequest::default()
    };
    let out = ipam.release(&req).await;
    finish(ipam);
    match out {
        Ok(_) => Ok(()),
        // Store trouble: report it so that the runtime retries and nothing leaks.
        Err(
            e @ (spiderpool_core::Error::Unavailable { .. }
            | spiderpool_core::Error::Busy { .. }
            | spiderpool_core::Error::Storage { .. }),
        ) => Err(e.into()),
        // Anything else about this pod (already gone, never added) is a successful DEL.
        Err(_) => Ok(()),
    }
}

async fn check(env: &CniEnv, conf: &NetConf, engines: &Engines) -> Result<(), Error> {
    env.require(&["CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"])?;
    let ipam = engines.engine(conf, &env.container_id).await?;
    let pod = pod_ref(env)?;
    let snap: Snapshot = ipam.snapshot(&pod.namespace, &pod.name).await?;
    let fail = |reason: String| Err(Error::CheckFailed { reason });
    let Some((ep, _)) = &snap.endpoint else {
        return fail(format!(
            "no allocation for pod {}/{}",
            pod.namespace, pod.name
        ));
    };
    if ep.status.current.uid != pod.uid {
        return fail(format!(
            "the allocation of {}/{} belongs to uid {}, not {}",
            pod.namespace, pod.name, ep.status.current.uid, pod.uid
        ));
    }
    let Some(d) = ep.status.current.ips.iter().find(|d| d.nic == env.ifname) else {
        return fail(format!("no allocation for interface {}", env.ifname));
    };
    for (addr, pool) in [(&d.ipv4, &d.ipv4_pool), (&d.ipv6, &d.ipv6_pool)] {
        let (Some(addr), Some(pool)) = (addr, pool) else {
            continue;
        };
        let ip = addr.split('/').next().unwrap_or(addr);
        let held = snap
            .pools
            .iter()
            .find(|(p, _)| &p.metadata.name == pool)
            .and_then(|(p, _)| p.allocations().ok())
            .and_then(|r| r.get(ip).map(|r| r.pod_uid == pod.uid))
            .unwrap_or(false);
        if !held {
            return fail(format!(
                "{ip} of IPPool {pool} is not recorded for uid {}",
                pod.uid
            ));
        }
    }
    Ok(())
}

async fn status(conf: &NetConf, engines: &Engines) -> Result<(), Error> {
    let unavailable = |reason: String| Error::NotAvailable { reason };
    let ipam = engines
        .engine(conf, &conf.name)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let store = ipam.store();
    let pools = store
        .list("SpiderIPPool")
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let reserved: Vec<SpiderReservedIP> = store
        .list(SpiderReservedIP::KIND)
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::ReservedIp(r) => Some(r),
            _ => None,
        })
        .collect();
    let named: BTreeSet<&String> = conf
        .ipam
        .default_ipv4_ippool
        .iter()
        .chain(&conf.ipam.default_ipv6_ippool)
        .collect();
    let mut considered = Vec::new();
    for s in pools {
        let Object::IpPool(p) = s.object else {
            continue;
        };
        let wanted = if named.is_empty() {
            p.is_default()
        } else {
            named.contains(&p.metadata.name)
        };
        if !wanted || p.is_disabled() || p.metadata.is_terminating() {
            continue;
        }
        let family = p.spec.family().unwrap_or(IpFamily::V4);
        let free = p.free_ips(&SpiderReservedIP::reserved_set(&reserved, family));
        if free.is_ok_and(|f| !f.is_empty()) {
            return Ok(());
        }
        considered.push(p.metadata.name.clone());
    }
    Err(unavailable(format!(
        "no free IP address in the configured IPPools {considered:?}"
    )))
}

/// GC: releases this network's attachments the runtime no longer lists. The runtime lists only
/// its own host's attachments, so with a store shared by hosts (etcd, Kubernetes) only the
/// endpoints recorded on this node (`node`) are judged.
async fn gc(conf: &NetConf, node: &str, engines: &Engines) -> Result<(), Error> {
    let shared = conf.is_kube() || conf.store().starts_with("etcd://");
    let valid: BTreeSet<(String, String)> = conf
        .valid_attachments
        .iter()
        .flatten()
        .map(|a| (a.container_id.clone(), a.ifname.clone()))
        .collect();
    let ipam = engines.engine(conf, &conf.name).await?;
    let endpoints = ipam.store().list(SpiderEndpoint::KIND).await?;
    for s in endpoints {
        let Object::Endpoint(ep) = s.object else {
            continue;
        };
        let a = &ep.metadata.annotations;
        let (Some(container), Some(network)) = (
            a.get(ANNO_ENDPOINT_CONTAINER_ID),
            a.get(ANNO_ENDPOINT_NETWORK),
        ) else {
            continue;
        };
        let stateful = matches!(
            ep.status.owner_controller_type.as_str(),
            "StatefulSet" | "KubevirtVMI"
        );
        let elsewhere = shared && ep.status.current.node != node;
        if network != &conf.name || stateful || elsewhere {
            continue;
        }
        let alive = ep
            .status
            .current
            .ips
            .iter()
            .any(|d| valid.contains(&(container.clone(), d.nic.clone())));
        if alive {
            continue;
        }
        let req = ReleaseRequest {
            pod: PodRef::new(
                ep.metadata.namespace.as_deref().unwrap_or_default(),
                &ep.metadata.name,
                &ep.status.current.uid,
            ),
            ..ReleaseRequest::default()
        };
        ipam.release(&req).await?;
    }
    Ok(())
}
