//! One hot pool through the Kubernetes store: Spiderpool's limit test (1,000 pods from 100
//! Deployments of 10 replicas on a SpiderIPPool of exactly 1,000 addresses), allocated by 1,
//! 2, 5 and 10 concurrent "nodes", each with its own `kube::Client`, over real HTTP round
//! trips to the mock API server of `spiderpool_testkit::kube_api` on loopback, optionally
//! with a per-request latency (the API server and etcd of a real cluster).
//!
//! Every node writes the same SpiderIPPool object, so the pool's resourceVersion is the one
//! serialization point: the run prints the 409s, the requests per allocation by method, the
//! throughput and the latency of one allocation, and checks the result (1,000 pods, no
//! duplicate, no leaked address).
//!
//! `cargo bench -p spiderpool-benches --bench kube_hot_pool`; choose the grid with
//! `HOT_POOL_LATENCY_MS=0,1,5` and `HOT_POOL_ALLOCATORS=1,2,5,10`. `-- --test` runs one
//! small round (the test script's check that benches still work).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use backend_kube::KubeStore;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use kube::config::{KubeConfigOptions, Kubeconfig};
use spiderpool_benches::Backoff;
use spiderpool_core::ipam::Ipam;
use spiderpool_core::model::{Object, SpiderEndpoint, SpiderIPPool};
use spiderpool_core::request::{AllocateRequest, Owner};
use spiderpool_core::store::{Key, Store};
use spiderpool_testkit::fixtures::{add, pool};
use spiderpool_testkit::kube_api::{self, Shared};

/// The pool: 10.50.0.1-10.50.3.232 is exactly 1,000 addresses.
const POOL: &str = "hot";
const POOL_SPEC: &str = "subnet: 10.50.0.0/22\nips: [10.50.0.1-10.50.3.232]\ndefault: true";
const DEPLOYMENTS: usize = 100;
const REPLICAS: usize = 10;
/// Large enough that no allocation gives up (any that does is reported).
const RETRIES: u32 = 10_000;

/// Serves `state` over loopback HTTP; with a latency, every answer waits that long first
/// (outside the server's lock, as network and etcd time would).
async fn serve(state: Shared, latency: Duration) -> SocketAddr {
    if latency.is_zero() {
        return kube_api::serve_http(state).await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let bytes = body.collect().await.map(|b| b.to_bytes());
                            let req = Request::from_parts(
                                parts,
                                kube::client::Body::from(bytes.unwrap_or_default().to_vec()),
                            );
                            tokio::time::sleep(latency).await;
                            let (parts, body) = kube_api::handle(state, req).await.into_parts();
                            let body = body.collect_bytes().await.unwrap_or_default();
                            Ok::<_, Infallible>(Response::from_parts(parts, Full::new(body)))
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    addr
}

/// A client of its own (its own connections) for the server at `addr`.
async fn client(addr: SocketAddr) -> kube::Client {
    let kubeconfig = Kubeconfig::from_yaml(&kube_api::kubeconfig(addr)).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Pod `i` of Deployment `app-d`, on `node`: `app-d-xxxxx` with a distinct uid.
fn request(d: usize, i: usize, node: usize) -> AllocateRequest {
    let k = d * REPLICAS + i;
    let suffix = (k as u64 * 2_654_435_761) & 0xf_ffff;
    let mut req = add(
        "bench",
        &format!("app-{d}-{suffix:05x}"),
        &format!("uid-{d}-{i}"),
    );
    req.node = format!("node-{node}");
    req.owner = Some(Owner {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: format!("app-{d}"),
        uid: format!("deploy-{d}"),
        exists: true,
        ..Owner::default()
    });
    req
}

/// What one run measured.
struct Run {
    latency: Duration,
    allocators: usize,
    allocated: usize,
    failed: usize,
    duplicates: usize,
    leaked: usize,
    conflicts: u64,
    requests: BTreeMap<String, u64>,
    wall: Duration,
    latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Allocates `pods` pods (of the 1,000) with `allocators` nodes, then checks the pool and the
/// endpoints.
async fn run(latency: Duration, allocators: usize, pods: usize) -> Run {
    let state = Shared::default();
    let addr = serve(state.clone(), latency).await;
    let admin = KubeStore::new(client(addr).await);
    admin
        .create(Object::IpPool(pool(POOL, POOL_SPEC)))
        .await
        .unwrap();
    let (before_requests, before_conflicts) = {
        let s = state.lock().unwrap();
        (s.requests.clone(), s.conflicts)
    };

    let start = Instant::now();
    let mut tasks = Vec::new();
    for node in 0..allocators {
        let store = KubeStore::new(client(addr).await);
        tasks.push(tokio::spawn(async move {
            let seed = (node as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let ipam = Ipam::new(store).with_retries(RETRIES, Backoff(seed));
            let mut got = Vec::new();
            let mut failed = 0;
            for k in (node..pods).step_by(allocators) {
                let req = request(k / REPLICAS, k % REPLICAS, node);
                let t = Instant::now();
                match ipam.allocate(&req).await {
                    Ok(ips) => got.push((ips[0].ipv4.clone().unwrap(), t.elapsed())),
                    Err(e) => {
                        eprintln!("allocation of {} failed: {e}", req.pod.name);
                        failed += 1;
                    }
                }
            }
            (got, failed)
        }));
    }
    let mut answers = Vec::new();
    let mut latencies = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (got, f) = t.await.unwrap();
        failed += f;
        for (ip, took) in got {
            answers.push(ip);
            latencies.push(took);
        }
    }
    let wall = start.elapsed();
    let (requests, conflicts) = {
        let s = state.lock().unwrap();
        let mut r = s.requests.clone();
        for (m, n) in &before_requests {
            *r.entry(m.clone()).or_default() -= n;
        }
        r.retain(|_, n| *n > 0);
        (r, s.conflicts - before_conflicts)
    };

    // The checks: every answer distinct, every endpoint's address recorded for it in the pool,
    // every pool record held by an endpoint.
    let allocated = answers.len();
    let distinct: BTreeSet<&String> = answers.iter().collect();
    let mut duplicates = allocated - distinct.len();
    let Some(Object::IpPool(p)) = admin.get(&Key::pool(POOL)).await.unwrap().map(|s| s.object)
    else {
        panic!("pool {POOL} is gone")
    };
    let records = SpiderIPPool::allocations(&p).unwrap();
    let mut held: BTreeMap<String, String> = BTreeMap::new();
    for s in admin.list(SpiderEndpoint::KIND).await.unwrap() {
        let Object::Endpoint(ep) = s.object else {
            continue;
        };
        let pod = format!(
            "{}/{}",
            ep.metadata.namespace.unwrap_or_default(),
            ep.metadata.name
        );
        for d in &ep.status.current.ips {
            let ip = d.ipv4.clone().unwrap_or_default();
            let ip = ip.split('/').next().unwrap_or_default().to_string();
            let consistent = records.get(&ip).is_some_and(|r| r.pod == pod);
            if held.insert(ip, pod.clone()).is_some() || !consistent {
                duplicates += 1;
            }
        }
    }
    let leaked = records.keys().filter(|ip| !held.contains_key(*ip)).count();
    Run {
        latency,
        allocators,
        allocated,
        failed,
        duplicates,
        leaked,
        conflicts,
        requests,
        wall,
        latencies,
    }
}

fn print_header() {
    println!(
        "| latency | nodes | pods | failed | dup | leaked | 409s | 409/alloc | GET/alloc | PUT/alloc | POST/alloc | req/alloc | wall s | alloc/s | p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
}

fn print(r: &Run) {
    let mut sorted = r.latencies.clone();
    sorted.sort();
    let n = r.allocated.max(1) as f64;
    let per = |m: &str| r.requests.get(m).copied().unwrap_or(0) as f64 / n;
    let total: u64 = r.requests.values().sum();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {} ms | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} | {:.1} |",
        r.latency.as_millis(),
        r.allocators,
        r.allocated,
        r.failed,
        r.duplicates,
        r.leaked,
        r.conflicts,
        r.conflicts as f64 / n,
        per("GET"),
        per("PUT"),
        per("POST"),
        total as f64 / n,
        r.wall.as_secs_f64(),
        r.allocated as f64 / r.wall.as_secs_f64(),
        ms(percentile(&sorted, 0.50)),
        ms(percentile(&sorted, 0.99)),
    );
}

fn list(var: &str, default: &[u64]) -> Vec<u64> {
    match std::env::var(var) {
        Ok(v) => v.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) => default.to_vec(),
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (latencies, allocators, pods) = if quick {
        (vec![0], vec![2], 20)
    } else {
        (
            list("HOT_POOL_LATENCY_MS", &[0, 1, 5]),
            list("HOT_POOL_ALLOCATORS", &[1, 2, 5, 10]),
            DEPLOYMENTS * REPLICAS,
        )
    };
    println!(
        "kube_hot_pool: {pods} pods ({DEPLOYMENTS} Deployments x {REPLICAS}) on one pool of 1000 IPs, \
         KubeStore over loopback HTTP to kube_api, retries {RETRIES} with the plugin's backoff"
    );
    print_header();
    let mut bad = false;
    for &ms in &latencies {
        for &a in &allocators {
            let r = rt.block_on(run(Duration::from_millis(ms), a as usize, pods));
            print(&r);
            bad |= r.allocated != pods || r.failed > 0 || r.duplicates > 0 || r.leaked > 0;
        }
    }
    assert!(
        !bad,
        "a run lost, duplicated or leaked addresses (see the table)"
    );
}
