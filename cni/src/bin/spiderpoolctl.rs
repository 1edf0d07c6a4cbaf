//! `spiderpoolctl`: manage Spiderpool objects in a store, kubectl-style.
// The doc comments below are clap's `--help` text, where `[…]` is the usual notation for an
// optional part, not a link.
#![allow(rustdoc::broken_intra_doc_links)]
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use clap::{Parser, Subcommand};
use spiderpool_cni::ctl::{self, Kind, Output};
use spiderpool_cni::netconf::DEFAULT_STORE;
use spiderpool_cni::Error;
use spiderpool_core::model::Object;
use spiderpool_core::store::{Change, Key, Revision, Store, Stored, Write};
use spiderpool_core::Error as CoreError;

/// See the `mimalloc` entry of Cargo.toml: big text buffers reused instead of mapped anew.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Manage SpiderSubnets, SpiderIPPools, SpiderReservedIPs and SpiderEndpoints in a
/// spiderpool-rs store, and emulate namespaces, nodes, workloads and pods to try IP plans
/// without a cluster.
#[derive(Parser)]
#[command(name = "spiderpoolctl", version, about)]
struct Cli {
    /// The store: a local store directory, or etcd://host:port[,host:port…][/prefix].
    #[arg(long, global = true, env = "SPIDERPOOL_STORE", default_value = DEFAULT_STORE)]
    store: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or update objects from YAML/JSON (`-` for stdin); all or nothing.
    Apply {
        /// The file to apply.
        #[arg(short = 'f', long = "filename")]
        file: String,
    },
    /// List objects, or show one (KIND: sp, ss, sr, se or their long names).
    Get {
        /// The kind.
        kind: String,
        /// A name.
        name: Option<String>,
        /// Namespace (SpiderEndpoints).
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// All namespaces (SpiderEndpoints).
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Output: wide, json or yaml.
        #[arg(short = 'o', long)]
        output: Option<String>,
    },
    /// Delete an object, or every object of a file.
    Delete {
        /// The kind.
        kind: Option<String>,
        /// The name.
        name: Option<String>,
        /// Delete the objects this file names.
        #[arg(short = 'f', long = "filename")]
        file: Option<String>,
        /// Namespace (SpiderEndpoints).
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// Delete even a pool with allocations or a subnet that controls pools.
        #[arg(long)]
        force: bool,
    },
    /// Set the replicas of a workload: `scale deploy/nginx --replicas 3`.
    Scale {
        /// `KIND/NAME` (or KIND, with NAME next).
        target: String,
        /// The name, when KIND is given alone.
        name: Option<String>,
        /// The new replica count.
        #[arg(long)]
        replicas: u64,
        /// Namespace.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// Print the CustomResourceDefinitions of the four kinds (for `kubectl apply -f -`).
    Crds,
    /// Run the node agent: the plugin hands its commands to it when the netconf names this
    /// socket (`ipam_unix_socket_path`); stores stay open and pools decoded between commands.
    Agent {
        /// The socket to listen on (created 0600; one left by a stopped agent is replaced).
        #[arg(long, default_value = "/run/spiderpool-rs/agent.sock")]
        socket: std::path::PathBuf,
    },
    /// Show one object in full, with its allocations.
    Describe {
        /// The kind.
        kind: String,
        /// The name.
        name: String,
        /// Namespace (SpiderEndpoints).
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
}

/// A fresh uid from the kernel (no randomness of our own).
fn new_uid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| format!("{:x}", std::process::id()))
}

async fn run(cli: Cli) -> Result<String, Error> {
    // Printing the CRDs needs no store.
    if let Command::Crds = cli.command {
        return Ok(backend_kube::crd::crds_yaml());
    }
    // The agent names its stores per request (the netconf's), not on the command line.
    if let Command::Agent { socket } = &cli.command {
        spiderpool_cni::agent::run(socket).await?;
        return Ok(String::new());
    }
    let started = Instant::now();
    let store = Counting::new(spiderpool_cni::store::open_store(&cli.store, None).await?);
    let opened = started.elapsed();
    let mut opts = spiderpool_cni::emulation::Options::default();
    if !cli.store.starts_with("etcd://") && cli.store != spiderpool_cni::netconf::KUBE_STORE {
        // The local store has no transaction size limit: one commit per reconcile round.
        opts.batch = 4096;
    }
    let out = match cli.command {
        Command::Apply { file } => {
            let text = ctl::read_input(&file)?;
            let now = now();
            let (out, warnings) = ctl::apply(&store, &file, &text, &mut new_uid, &now).await?;
            for w in warnings {
                eprintln!("Warning: {w}");
            }
            // A file of workloads only: the reconcile looks after those (a concurrent apply
            // looks after its own).
            opts.scope = ctl::workload_scope(&file, &text);
            out
        }
        Command::Get {
            kind,
            name,
            namespace,
            all_namespaces,
            output,
        } => {
            let output = output
                .as_deref()
                .map(Output::parse)
                .transpose()?
                .unwrap_or_default();
            return match Kind::parse(&kind) {
                Ok(k) => {
                    ctl::get(
                        &store,
                        k,
                        name.as_deref(),
                        &namespace,
                        all_namespaces,
                        output,
                    )
                    .await
                }
                Err(e) => match ctl::other_kind(&store, &kind).await? {
                    Some(k) => {
                        ctl::get_other(
                            &store,
                            &k,
                            name.as_deref(),
                            &namespace,
                            all_namespaces,
                            output,
                        )
                        .await
                    }
                    None => Err(e),
                },
            };
        }
        Command::Delete {
            kind,
            name,
            file,
            namespace,
            force,
        } => match (kind, name, file) {
            (None, None, Some(file)) => {
                ctl::delete_file(&store, &file, &ctl::read_input(&file)?, force).await?
            }
            (Some(kind), Some(name), None) => match Kind::parse(&kind) {
                Ok(k) => ctl::delete(&store, k, &name, &namespace, force).await?,
                Err(e) => match ctl::other_kind(&store, &kind).await? {
                    Some(k) => {
                        let settings = current_settings(&store).await?;
                        ctl::delete_other(&store, &k, &name, &namespace, &settings).await?
                    }
                    None => return Err(e),
                },
            },
            _ => return Err(Error::Usage("delete takes KIND NAME, or -f FILE".into())),
        },
        Command::Scale {
            target,
            name,
            replicas,
            namespace,
        } => {
            let (kind, name) = match (target.split_once('/'), name) {
                (Some((k, n)), None) => (k.to_string(), n.to_string()),
                (None, Some(n)) => (target.clone(), n),
                _ => return Err(Error::Usage("scale takes KIND/NAME or KIND NAME".into())),
            };
            let kind = ctl::other_kind(&store, &kind).await?.ok_or_else(|| {
                Error::Usage(format!(
                    "the server doesn't have a resource type \"{kind}\""
                ))
            })?;
            ctl::scale(&store, &kind, &name, &namespace, replicas).await?
        }
        Command::Crds => return Ok(backend_kube::crd::crds_yaml()),
        Command::Agent { .. } => return Ok(String::new()),
        Command::Describe {
            kind,
            name,
            namespace,
        } => return ctl::describe(&store, Kind::parse(&kind)?, &name, &namespace).await,
    };
    let command = store.snapshot_counts();
    let applied = started.elapsed();
    // Every state-changing command ends with the controllers catching up.
    spiderpool_cni::emulation::reconcile_with(&store, &mut new_uid, &opts).await?;
    if std::env::var_os("SPIDERPOOLCTL_PROFILE").is_some() {
        let total = store.snapshot_counts();
        eprintln!(
            "profile: open {:.1} ms; command {:.1} ms, store calls {}; reconcile{} {:.1} ms, store calls {}",
            opened.as_secs_f64() * 1e3,
            (applied - opened).as_secs_f64() * 1e3,
            command,
            if opts.scope.is_some() { " (scoped)" } else { "" },
            (started.elapsed() - applied).as_secs_f64() * 1e3,
            total.minus(&command),
        );
    }
    Ok(out)
}

/// Store calls by kind, for `SPIDERPOOLCTL_PROFILE=1`.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    get: u64,
    list: u64,
    write: u64,
    commit: u64,
    conflict: u64,
}

impl Counts {
    fn minus(&self, o: &Counts) -> Counts {
        Counts {
            get: self.get - o.get,
            list: self.list - o.list,
            write: self.write - o.write,
            commit: self.commit - o.commit,
            conflict: self.conflict - o.conflict,
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "get {} list {} write {} commit {} (conflicts {})",
            self.get, self.list, self.write, self.commit, self.conflict
        )
    }
}

/// A store that counts the calls made to it.
struct Counting<S> {
    inner: S,
    counts: Mutex<Counts>,
}

impl<S> Counting<S> {
    fn new(inner: S) -> Self {
        Counting {
            inner,
            counts: Mutex::new(Counts::default()),
        }
    }

    fn count(&self, f: impl FnOnce(&mut Counts)) {
        if let Ok(mut c) = self.counts.lock() {
            f(&mut c);
        }
    }

    fn snapshot_counts(&self) -> Counts {
        self.counts.lock().map(|c| *c).unwrap_or_default()
    }

    fn outcome<T>(&self, r: Result<T, CoreError>) -> Result<T, CoreError> {
        if matches!(
            r,
            Err(CoreError::Conflict { .. } | CoreError::AlreadyExists { .. })
        ) {
            self.count(|c| c.conflict += 1);
        }
        r
    }
}

#[async_trait::async_trait]
impl<S: Store> Store for Counting<S> {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, CoreError> {
        self.count(|c| c.get += 1);
        self.inner.get(key).await
    }
    async fn list(&self, kind: &str) -> Result<Vec<Stored>, CoreError> {
        self.count(|c| c.list += 1);
        self.inner.list(kind).await
    }
    async fn create(&self, object: Object) -> Result<Revision, CoreError> {
        self.count(|c| c.write += 1);
        let r = self.inner.create(object).await;
        self.outcome(r)
    }
    async fn update(&self, object: Object, expected: &Revision) -> Result<Revision, CoreError> {
        self.count(|c| c.write += 1);
        let r = self.inner.update(object, expected).await;
        self.outcome(r)
    }
    async fn delete(&self, key: &Key, expected: &Revision) -> Result<(), CoreError> {
        self.count(|c| c.write += 1);
        let r = self.inner.delete(key, expected).await;
        self.outcome(r)
    }
    fn is_atomic(&self) -> bool {
        self.inner.is_atomic()
    }
    fn in_flight(
        &self,
        seen: &dyn Fn(&str) -> Option<Revision>,
    ) -> std::collections::BTreeMap<String, Vec<std::net::IpAddr>> {
        self.inner.in_flight(seen)
    }
    async fn commit(&self, writes: Vec<Write>) -> Result<(), CoreError> {
        self.count(|c| c.commit += 1);
        let r = self.inner.commit(writes).await;
        self.outcome(r)
    }
    async fn changes(
        &self,
        kind: &str,
        since: Option<&Revision>,
    ) -> Result<Vec<Change>, CoreError> {
        self.inner.changes(kind, since).await
    }
}

async fn current_settings<S: spiderpool_core::store::Store>(
    store: &S,
) -> Result<spiderpool_cni::emulation::Settings, Error> {
    let cms: Vec<_> = store
        .list("ConfigMap")
        .await?
        .into_iter()
        .filter_map(|s| match s.object {
            spiderpool_core::model::Object::Other(o) => Some(o),
            _ => None,
        })
        .collect();
    spiderpool_cni::emulation::settings(&cms)
}

/// The current time as RFC 3339, read here at the edge (the core has no clock).
fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
