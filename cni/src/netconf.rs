//! The network configuration on stdin and the `CNI_*` environment.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::Error;

/// CNI versions we answer to, oldest first.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Where the local store lives when the netconf names none.
pub const DEFAULT_STORE: &str = "/var/lib/spiderpool";

/// The `store` value that selects the Kubernetes mode.
pub const KUBE_STORE: &str = "kube";

/// The kubeconfig of the Kubernetes mode when the netconf names none.
pub const DEFAULT_KUBECONFIG: &str = "/etc/cni/net.d/spiderpool-rs.kubeconfig";

/// How long one Kubernetes API request may take when the netconf says nothing, in ms.
pub const DEFAULT_KUBE_TIMEOUT_MS: u64 = 10_000;

/// How many times ADD looks again for an auto-created pool the controller has not created yet.
pub const DEFAULT_AUTOPOOL_WAIT_RETRIES: u32 = 10;

/// The pause between two of those looks, in ms.
pub const DEFAULT_AUTOPOOL_WAIT_INTERVAL_MS: u64 = 1_000;

/// Default bound on a whole CNI command (`ipam.command_timeout_ms`): past it the plugin answers
/// "try again later" (code 11) instead of waiting on a store that does not answer.
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 60_000;

/// Largest netconf accepted on stdin.
pub const MAX_NETCONF_BYTES: usize = 1 << 20;

/// The parts of the network configuration the plugin reads. Unknown fields are ignored, as
/// CNI plugins do.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// `cniVersion`.
    #[serde(default)]
    pub cni_version: String,
    /// The network's name.
    #[serde(default)]
    pub name: String,
    /// The plugin that delegates to us (`bridge`, `macvlan`, …) or `spiderpool` itself.
    #[serde(default, rename = "type")]
    pub plugin_type: String,
    /// The `ipam` section.
    #[serde(default)]
    pub ipam: IpamConf,
    /// DNS settings, passed through to the result.
    #[serde(default)]
    pub dns: Option<Value>,
    /// `args`: `{"cni": {"annotations": {…}}}` carries Spiderpool pod annotations.
    #[serde(default)]
    pub args: Option<Value>,
    /// `runtimeConfig`; `podAnnotations` there are read too.
    #[serde(default)]
    pub runtime_config: Option<Value>,
    /// GC: the attachments that are still valid.
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// One valid attachment of a GC request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name.
    #[serde(default)]
    pub ifname: String,
}

/// The `ipam` section: Spiderpool's plugin fields, plus ours (`store`, `lock_timeout_ms`, and
/// for the Kubernetes mode `kubeconfig`, `kube_timeout_ms`, `autopool_wait_retries`,
/// `autopool_wait_interval_ms`).
///
/// The Kubernetes mode (`"store": "kube"`) reads everything it needs from the netconf: the
/// kubeconfig file is `kubeconfig` (default [`DEFAULT_KUBECONFIG`]); the `KUBECONFIG`
/// environment variable and `~/.kube/config` are not consulted, because a container runtime
/// starts the plugin with an environment of its own.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpamConf {
    /// `spiderpool`.
    #[serde(default, rename = "type")]
    pub ipam_type: String,
    /// The store: an absolute local directory (default [`DEFAULT_STORE`]), `etcd://host:port[,…][/prefix]`
    /// for etcd, or `kube` for the Kubernetes mode (Spiderpool's CRDs on the API server; the
    /// pod, its namespace, node and owner are read from the API server too).
    #[serde(default)]
    pub store: Option<String>,
    /// Default IPv4 pools.
    #[serde(default)]
    pub default_ipv4_ippool: Vec<String>,
    /// Default IPv6 pools.
    #[serde(default)]
    pub default_ipv6_ippool: Vec<String>,
    /// No default route through this NIC.
    #[serde(default)]
    pub clean_gateway: bool,
    /// Log level (accepted; logging goes to stderr).
    #[serde(default)]
    pub log_level: Option<String>,
    /// Log file (accepted for compatibility).
    #[serde(default)]
    pub log_file_path: Option<String>,
    /// Log rotation size in MB (an integer, as in Spiderpool).
    #[serde(default)]
    pub log_file_max_size: Option<i64>,
    /// Log retention in days.
    #[serde(default)]
    pub log_file_max_age: Option<i64>,
    /// Log files kept.
    #[serde(default)]
    pub log_file_max_count: Option<i64>,
    /// SR-IOV master-subnet matching (accepted, host-specific, not applied).
    #[serde(default)]
    pub match_master_subnet: bool,
    /// The node agent's socket (`spiderpoolctl agent`, [`crate::agent`]): when an agent
    /// listens there the plugin hands it the command; otherwise the plugin runs it itself.
    #[serde(default)]
    pub ipam_unix_socket_path: Option<String>,
    /// Ours: how long to wait for another process's store lock before answering "try again
    /// later" (code 11), in milliseconds (default 10000).
    #[serde(default)]
    pub lock_timeout_ms: Option<u64>,
    /// Ours, Kubernetes mode: the kubeconfig file the plugin uses to reach the API server
    /// (default [`DEFAULT_KUBECONFIG`]).
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// Ours, Kubernetes mode: how long one API request may take, in milliseconds (default
    /// [`DEFAULT_KUBE_TIMEOUT_MS`]). An API server that does not answer in time gives "try
    /// again later" (code 11).
    #[serde(default)]
    pub kube_timeout_ms: Option<u64>,
    /// Ours, Kubernetes mode: how many more times ADD looks for the auto-created pool of a
    /// built-in workload (the controller creates it) before failing (default
    /// [`DEFAULT_AUTOPOOL_WAIT_RETRIES`]; Spiderpool's agent waits 25 times).
    #[serde(default)]
    pub autopool_wait_retries: Option<u32>,
    /// Ours, Kubernetes mode: the pause between those looks, in milliseconds (default
    /// [`DEFAULT_AUTOPOOL_WAIT_INTERVAL_MS`]; Spiderpool's agent waits 2 s).
    #[serde(default)]
    pub autopool_wait_interval_ms: Option<u64>,
    /// Ours: the bound on a whole ADD, DEL, CHECK, STATUS or GC, in milliseconds (default
    /// [`DEFAULT_COMMAND_TIMEOUT_MS`]). Each store request has its own timeout, but retries of a
    /// store that keeps timing out would add up; past this bound the plugin answers "try again
    /// later" (code 11).
    #[serde(default)]
    pub command_timeout_ms: Option<u64>,
}

impl NetConf {
    /// Parses and checks the netconf: JSON, a supported `cniVersion`, a usable `ipam.store`.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_NETCONF_BYTES {
            return Err(Error::InvalidNetconf {
                reason: format!(
                    "{} bytes is more than the {MAX_NETCONF_BYTES} accepted",
                    bytes.len()
                ),
            });
        }
        // serde would read a JSON list as the fields in order: only an object is a netconf.
        if let Some(b) = bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            if *b != b'{' {
                return Err(Error::InvalidNetconf {
                    reason: format!(
                        "expected a JSON object, found {:?} at the start",
                        char::from(*b)
                    ),
                });
            }
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let conf: NetConf = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            Error::InvalidNetconf {
                // `?` is where the document itself is malformed: no field to name.
                reason: if path == "." || path == "?" {
                    e.into_inner().to_string()
                } else {
                    format!("{path}: {}", e.into_inner())
                },
            }
        })?;
        if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
            return Err(Error::IncompatibleVersion {
                version: conf.cni_version.clone(),
                supported: SUPPORTED_VERSIONS.join(", "),
            });
        }
        if let Some(store) = &conf.ipam.store {
            check_store(store)?;
        }
        Ok(conf)
    }

    /// The store location.
    pub fn store(&self) -> &str {
        self.ipam.store.as_deref().unwrap_or(DEFAULT_STORE)
    }

    /// Whether the netconf selects the Kubernetes mode (`"store": "kube"`).
    pub fn is_kube(&self) -> bool {
        self.store() == KUBE_STORE
    }

    /// The kubeconfig file of the Kubernetes mode.
    pub fn kubeconfig(&self) -> &str {
        self.ipam
            .kubeconfig
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_KUBECONFIG)
    }

    /// The bound on a whole CNI command.
    pub fn command_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.ipam
                .command_timeout_ms
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_COMMAND_TIMEOUT_MS),
        )
    }

    /// The bound on one Kubernetes API request.
    pub fn kube_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.ipam
                .kube_timeout_ms
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_KUBE_TIMEOUT_MS),
        )
    }

    /// How many more looks for a built-in workload's auto-created pool, and the pause between
    /// them.
    pub fn autopool_wait(&self) -> (u32, std::time::Duration) {
        (
            self.ipam
                .autopool_wait_retries
                .unwrap_or(DEFAULT_AUTOPOOL_WAIT_RETRIES),
            std::time::Duration::from_millis(
                self.ipam
                    .autopool_wait_interval_ms
                    .unwrap_or(DEFAULT_AUTOPOOL_WAIT_INTERVAL_MS),
            ),
        )
    }

    /// Opens the store the netconf names, with its lock timeout; in the Kubernetes mode, over a
    /// client from [`NetConf::kubeconfig`] bounded by [`NetConf::kube_timeout`].
    pub async fn open_store(&self) -> Result<crate::store::AnyStore, Error> {
        if self.is_kube() {
            let client =
                crate::kube::client_from_kubeconfig(self.kubeconfig(), self.kube_timeout()).await?;
            return Ok(Box::new(backend_kube::KubeStore::new(client)));
        }
        let timeout = self
            .ipam
            .lock_timeout_ms
            .map(std::time::Duration::from_millis);
        crate::store::open_store(self.store(), timeout).await
    }

    /// Pod annotations passed in the netconf: `args.cni.annotations`, then
    /// `runtimeConfig.podAnnotations` (later ones win).
    pub fn pod_annotations(&self) -> Result<BTreeMap<String, String>, Error> {
        let mut out = BTreeMap::new();
        let sources = [
            (
                "args.cni.annotations",
                self.args
                    .as_ref()
                    .and_then(|a| a.pointer("/cni/annotations")),
            ),
            (
                "runtimeConfig.podAnnotations",
                self.runtime_config
                    .as_ref()
                    .and_then(|r| r.get("podAnnotations")),
            ),
        ];
        for (path, value) in sources {
            let Some(value) = value else { continue };
            let map = value.as_object().ok_or_else(|| Error::InvalidNetconf {
                reason: format!("{path} must be an object of strings"),
            })?;
            for (k, v) in map {
                let v = v.as_str().ok_or_else(|| Error::InvalidNetconf {
                    reason: format!("{path}.{k} must be a string"),
                })?;
                out.insert(k.clone(), v.to_string());
            }
        }
        Ok(out)
    }
}

/// `ipam.store`: an absolute directory (a runtime starts the plugin in a directory of its own
/// choosing: a relative one would be created there), a well-formed `etcd://` URL, or `kube`.
fn check_store(store: &str) -> Result<(), Error> {
    let ok = if store.starts_with("etcd://") {
        backend_etcd::EtcdConfig::from_url(store).is_some()
    } else {
        store == KUBE_STORE || std::path::Path::new(store).is_absolute()
    };
    if ok {
        return Ok(());
    }
    Err(Error::InvalidNetconf {
        reason: format!(
            "ipam.store: {store:?} is not an absolute directory, etcd://host:port[,host:port…][/prefix] or kube"
        ),
    })
}

/// The `CNI_*` environment of one invocation (also how the plugin hands it to the agent).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`, parsed (`K=V;K=V`).
    pub args: BTreeMap<String, String>,
}

impl CniEnv {
    /// Reads the environment through `get` (so that tests need not touch the process's).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut args = BTreeMap::new();
        if let Some(raw) = get("CNI_ARGS") {
            for pair in raw.split(';').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| Error::InvalidEnv {
                    var: "CNI_ARGS".into(),
                    reason: format!("{pair:?} is not KEY=VALUE"),
                })?;
                args.insert(k.to_string(), v.to_string());
            }
        }
        Ok(CniEnv {
            command: get("CNI_COMMAND").unwrap_or_default(),
            container_id: get("CNI_CONTAINERID").unwrap_or_default(),
            netns: get("CNI_NETNS").unwrap_or_default(),
            ifname: get("CNI_IFNAME").unwrap_or_default(),
            args,
        })
    }

    /// Checks that the variables a command needs are set and sane: container ids and
    /// interface names become store keys and must not carry path tricks.
    pub fn require(&self, vars: &[&str]) -> Result<(), Error> {
        for var in vars {
            let (value, max) = match *var {
                "CNI_CONTAINERID" => (&self.container_id, 256),
                "CNI_IFNAME" => (&self.ifname, 15),
                "CNI_NETNS" => (&self.netns, 4096),
                _ => continue,
            };
            let bad = |reason: &str| Error::InvalidEnv {
                var: var.to_string(),
                reason: reason.to_string(),
            };
            if value.is_empty() {
                return Err(bad("must be set"));
            }
            if value.len() > max {
                return Err(bad(&format!("longer than {max} characters")));
            }
            if *var != "CNI_NETNS"
                && (value.contains('/')
                    || value.contains('\0')
                    || value.contains(char::is_whitespace)
                    || value == "."
                    || value == "..")
            {
                return Err(bad("must not contain '/', NUL or spaces"));
            }
        }
        Ok(())
    }
}
