//! Request paths and queries: which collection or object a request names, resource names
//! (plural, kind, scope), and URL decoding.

use std::collections::BTreeMap;

/// Where an object lives: its API prefix, resource, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectKey {
    /// `v1` for the core group, `group/version` otherwise (the object's `apiVersion`).
    pub prefix: String,
    /// The resource's plural name (`pods`, `spiderippools`).
    pub plural: String,
    /// The namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

/// A parsed request path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub prefix: String,
    pub plural: String,
    /// Empty: cluster-scoped, or a namespaced resource across all namespaces.
    pub namespace: String,
    pub name: Option<String>,
    pub status: bool,
}

impl Route {
    pub(crate) fn key(&self, name: &str) -> ObjectKey {
        ObjectKey {
            prefix: self.prefix.clone(),
            plural: self.plural.clone(),
            namespace: self.namespace.clone(),
            name: name.to_string(),
        }
    }
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...` paths.
pub(crate) fn route(path: &str) -> Option<Route> {
    let (prefix, rest) = if let Some(rest) = path.strip_prefix("/api/v1/") {
        ("v1".to_string(), rest)
    } else {
        let rest = path.strip_prefix("/apis/")?;
        let mut it = rest.splitn(3, '/');
        let (group, version, rest) = (it.next()?, it.next()?, it.next()?);
        (format!("{group}/{version}"), rest)
    };
    let parts: Vec<String> = rest
        .trim_end_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    // `namespaces/{ns}/{plural}...` has at least 3 segments; `namespaces/{name}/status` is the
    // status of a Namespace object itself.
    let namespaced =
        parts.first() == Some(&"namespaces") && parts.len() >= 3 && parts[2..] != ["status"];
    let (namespace, parts) = if namespaced {
        (parts[1].to_string(), &parts[2..])
    } else {
        (String::new(), &parts[..])
    };
    let (plural, name, status) = match parts {
        [plural] => (plural, None, false),
        [plural, name] => (plural, Some(name.to_string()), false),
        [plural, name, "status"] => (plural, Some(name.to_string()), true),
        _ => return None,
    };
    if plural.is_empty() || name.as_deref() == Some("") {
        return None;
    }
    Some(Route {
        prefix,
        plural: plural.to_string(),
        namespace,
        name,
        status,
    })
}

/// The query parameters of a URI, URL-decoded (`+` is a space).
pub(crate) fn query(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap() * 16 + hex(l).unwrap()) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resources whose plural is not simply the lowercase kind plus `s`.
const KINDS: &[(&str, &str)] = &[
    ("Endpoints", "endpoints"),
    (
        "NetworkAttachmentDefinition",
        "network-attachment-definitions",
    ),
    ("Ingress", "ingresses"),
    ("IngressClass", "ingressclasses"),
    ("NetworkPolicy", "networkpolicies"),
    ("StorageClass", "storageclasses"),
    ("PriorityClass", "priorityclasses"),
    ("RuntimeClass", "runtimeclasses"),
    ("EndpointSlice", "endpointslices"),
    ("ResourceClaim", "resourceclaims"),
];

/// Kinds whose objects are cluster-scoped; every other kind is namespaced.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "RuntimeClass",
    "IngressClass",
    "SpiderIPPool",
    "SpiderSubnet",
    "SpiderReservedIP",
    "SpiderCoordinator",
];

/// The plural resource name of a kind (`Pod` → `pods`, `SpiderIPPool` → `spiderippools`).
pub fn plural_of(kind: &str) -> String {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| format!("{}s", kind.to_lowercase()))
}

/// The kind served under a plural, where known (the inverse of [`plural_of`] for the kinds
/// tests use).
pub(crate) fn kind_of(plural: &str) -> Option<String> {
    if let Some((k, _)) = KINDS.iter().find(|(_, p)| *p == plural) {
        return Some(k.to_string());
    }
    const KNOWN: &[&str] = &[
        "Pod",
        "Namespace",
        "Node",
        "Service",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Event",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Deployment",
        "StatefulSet",
        "ReplicaSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "Lease",
        "CustomResourceDefinition",
        "SpiderIPPool",
        "SpiderSubnet",
        "SpiderReservedIP",
        "SpiderEndpoint",
        "SpiderMultusConfig",
        "SpiderCoordinator",
        "VirtualMachine",
        "VirtualMachineInstance",
    ];
    KNOWN
        .iter()
        .find(|k| plural_of(k) == plural)
        .map(|k| k.to_string())
}

/// Whether objects of `kind` are cluster-scoped.
pub fn is_cluster_scoped(kind: &str) -> bool {
    CLUSTER_SCOPED.contains(&kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(prefix: &str, plural: &str, ns: &str, name: Option<&str>, status: bool) -> Route {
        Route {
            prefix: prefix.into(),
            plural: plural.into(),
            namespace: ns.into(),
            name: name.map(Into::into),
            status,
        }
    }

    #[test]
    fn routes() {
        let g = "spiderpool.spidernet.io/v2beta1";
        assert_eq!(
            route("/api/v1/pods"),
            Some(r("v1", "pods", "", None, false))
        );
        assert_eq!(
            route("/api/v1/namespaces"),
            Some(r("v1", "namespaces", "", None, false))
        );
        assert_eq!(
            route("/api/v1/namespaces/kube-system"),
            Some(r("v1", "namespaces", "", Some("kube-system"), false))
        );
        assert_eq!(
            route("/api/v1/namespaces/x/status"),
            Some(r("v1", "namespaces", "", Some("x"), true))
        );
        assert_eq!(
            route("/api/v1/namespaces/x/pods"),
            Some(r("v1", "pods", "x", None, false))
        );
        assert_eq!(
            route("/api/v1/namespaces/x/pods/p/status"),
            Some(r("v1", "pods", "x", Some("p"), true))
        );
        assert_eq!(
            route("/apis/spiderpool.spidernet.io/v2beta1/spiderippools/a%2Eb"),
            Some(r(g, "spiderippools", "", Some("a.b"), false))
        );
        assert_eq!(
            route("/apis/apps/v1/namespaces/d/deployments/w"),
            Some(r("apps/v1", "deployments", "d", Some("w"), false))
        );
        assert_eq!(
            route("/apis/apps/v1/namespaces/d/deployments/w/scale/x"),
            None
        );
        assert_eq!(route("/version"), None);
    }

    #[test]
    fn names() {
        assert_eq!(plural_of("SpiderIPPool"), "spiderippools");
        assert_eq!(plural_of("Endpoints"), "endpoints");
        assert_eq!(kind_of("leases").as_deref(), Some("Lease"));
        assert_eq!(
            kind_of("network-attachment-definitions").as_deref(),
            Some("NetworkAttachmentDefinition")
        );
        assert!(is_cluster_scoped("Namespace") && !is_cluster_scoped("Pod"));
        let q = query(Some("labelSelector=app%3Dweb%2C%21x&watch=true&a+b=c+d"));
        assert_eq!(q["labelSelector"], "app=web,!x");
        assert_eq!(q["a b"], "c d");
    }
}
