//! `spiderpool-controller`: the admission webhook (every replica) and the leader-elected
//! controller that keeps auto-pools and garbage collection in step with the cluster.
//!
//! The API server is found through `--kubeconfig`, else `KUBECONFIG`/`~/.kube/config`, else the
//! in-cluster service account. `--once` takes the Lease, reconciles once, prints the report
//! as JSON and exits (exit code 3 when another replica leads).

use std::path::PathBuf;
use std::time::Duration;

use backend_kube::controller::run::{run, Observer, RunOptions};
use backend_kube::controller::{Controller, ControllerConfig, Report};
use backend_kube::lease::{LeaderElector, Leadership};
use backend_kube::webhook_server;
use clap::Parser;
use spiderpool_core::validate::AdmissionConfig;
use spiderpool_core::Error;

#[derive(Parser, Debug)]
#[command(name = "spiderpool-controller", version, about)]
struct Args {
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "spiderpool-controller")]
    identity: String,
    /// Namespace of the Lease.
    #[arg(long, default_value = "kube-system")]
    lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, default_value = "spiderpool-rs-controller")]
    lease_name: String,
    /// Lease duration, seconds.
    #[arg(long, default_value_t = 15)]
    lease_seconds: i32,
    /// Full reconcile at least this often, seconds.
    #[arg(long, default_value_t = 60)]
    resync_seconds: u64,
    /// Namespace of the `spiderpool-conf` ConfigMap.
    #[arg(long, default_value = "kube-system")]
    settings_namespace: String,
    /// Seconds added to a terminating pod's grace period before GC frees its addresses.
    #[arg(long, default_value_t = 0)]
    gc_extra_grace_seconds: i64,
    /// Do not free addresses (auto-pools and finalizers only).
    #[arg(long)]
    no_gc: bool,
    /// Port of the admission webhook (HTTPS).
    #[arg(long, default_value_t = 5722)]
    webhook_port: u16,
    /// Webhook certificate (PEM); the webhook is served when both files are given.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Webhook private key (PEM).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// One election step and one reconcile, the report printed as JSON, then exit.
    #[arg(long)]
    once: bool,
}

struct Log;

impl Observer for Log {
    fn leadership(&self, l: &Leadership) {
        match l {
            Leadership::Leading => eprintln!("spiderpool-controller: leading"),
            Leadership::Following { holder } => {
                eprintln!("spiderpool-controller: following {holder:?}")
            }
        }
    }

    fn reconciled(&self, r: &Result<Report, Error>) {
        match r {
            Ok(r) if r.is_quiet() && r.errors.is_empty() => {}
            Ok(r) => eprintln!("spiderpool-controller: {}", report_json(r)),
            Err(e) => eprintln!("spiderpool-controller: error: {e}"),
        }
    }
}

fn report_json(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "autopools": r.autopools,
        "reclaimed": r.reclaimed,
        "finalizers": r.finalizers,
        "released": r.released,
        "conflicts": r.conflicts,
        "errors": r.errors,
    })
}

async fn client(args: &Args) -> Result<kube::Client, String> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("no kubeconfig and not in a cluster: {e}"))?,
    };
    kube::Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn main_async(args: Args) -> Result<i32, String> {
    let client = client(&args).await?;
    let controller_config = ControllerConfig {
        settings_namespace: args.settings_namespace.clone(),
        gc_enabled: !args.no_gc,
        gc_extra_grace_seconds: args.gc_extra_grace_seconds,
    };
    if args.once {
        let elector = LeaderElector::new(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &args.identity,
            args.lease_seconds,
        );
        let now = jiff::Timestamp::now();
        match elector
            .step(now.as_microsecond())
            .await
            .map_err(|e| e.to_string())?
        {
            Leadership::Leading => {}
            Leadership::Following { holder } => {
                eprintln!("spiderpool-controller: {holder:?} leads; nothing done");
                return Ok(3);
            }
        }
        let report = Controller::new(client, controller_config)
            .reconcile(now)
            .await
            .map_err(|e| e.to_string())?;
        println!("{}", report_json(&report));
        return Ok(0);
    }
    let webhook = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let tls =
                webhook_server::tls_config_from_files(cert, key).map_err(|e| e.to_string())?;
            let listener = tokio::net::TcpListener::bind(("0.0.0.0", args.webhook_port))
                .await
                .map_err(|e| format!("webhook port {}: {e}", args.webhook_port))?;
            eprintln!("spiderpool-controller: webhook on :{}", args.webhook_port);
            let store = backend_kube::KubeStore::new(client.clone());
            Some(tokio::spawn(webhook_server::serve(
                listener,
                tls,
                store,
                AdmissionConfig::default(),
                shutdown_signal(),
            )))
        }
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    let options = RunOptions {
        identity: args.identity.clone(),
        lease_namespace: args.lease_namespace.clone(),
        lease_name: args.lease_name.clone(),
        lease_seconds: args.lease_seconds,
        resync: Duration::from_secs(args.resync_seconds.max(1)),
        controller: controller_config,
    };
    run(client, options, &Log, shutdown_signal()).await;
    if let Some(w) = webhook {
        w.abort();
    }
    Ok(0)
}

fn main() {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("spiderpool-controller: cannot start: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(main_async(args)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("spiderpool-controller: {e}");
            std::process::exit(1);
        }
    }
}
