//! `spiderpoolctl apply -f`: admission for every object first, then one atomic write.

use std::collections::{BTreeMap, BTreeSet};

use spiderpool_core::model::{
    parse_documents, Object, ObjectMeta, OtherObject, SpiderIPPool, SpiderSubnet,
};
use spiderpool_core::store::{Key, Revision, Store, Stored, Write};
use spiderpool_core::validate::{
    mutate_ippool, mutate_reservedip, mutate_subnet, validate_ippool_create,
    validate_ippool_update, validate_reservedip_create, validate_reservedip_update,
    validate_subnet_create, validate_subnet_update, AdmissionConfig, Cluster,
};

use super::Kind;
use crate::Error;

/// What apply did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Created,
    Configured,
    Unchanged,
}

/// One object being applied: the stored version (if any) and the new one.
struct Pending {
    index: usize,
    kind: Kind,
    old: Option<(Object, Revision)>,
    new: Object,
}

/// Applies every object of `text` (multi-document YAML or JSON) as the webhooks would admit
/// them, in order, each seeing the ones before it. All or nothing: one invalid object and
/// nothing is written. `uid` gives new objects their uid and `now` their creation time.
/// Returns kubectl's lines, and warnings (unknown fields, legacy forms) separately.
pub async fn apply<S: Store>(
    store: &S,
    source: &str,
    text: &str,
    uid: &mut dyn FnMut() -> String,
    now: &str,
) -> Result<(String, Vec<String>), Error> {
    let docs = parse_documents(source, text)?;
    let mut warnings = Vec::new();
    for d in &docs {
        warnings.extend(d.warnings.iter().cloned());
        match &d.object {
            Object::Other(o) if !crate::emulation::is_emulated(o) => {
                return Err(Error::Usage(format!(
                    "{source}: document {}: {} {} {:?} is not managed here (Spiderpool objects, Namespace, Node, Pod, workloads, ConfigMap spiderpool-conf)",
                    d.index, o.api_version, o.kind, o.name
                )))
            }
            Object::Other(o) if o.name.is_empty() => {
                return Err(Error::Usage(format!("{source}: document {}: {} without metadata.name", d.index, o.kind)))
            }
            Object::Endpoint(e) => {
                return Err(Error::Usage(format!(
                    "{source}: document {}: SpiderEndpoint {:?} is written by the IPAM, not applied",
                    d.index, e.metadata.name
                )))
            }
            _ => {}
        }
    }
    // A conflict means an allocation or another apply wrote meanwhile: start again from a
    // fresh read; admission sees the new state.
    let mut attempts = 0;
    loop {
        let (lines, writes) = plan(store, &docs, uid, now).await?;
        if writes.is_empty() {
            return Ok((lines, warnings));
        }
        match store.commit(writes).await {
            Ok(()) => return Ok((lines, warnings)),
            Err(e) if spiderpool_core::ipam::is_retryable(&e) && attempts < 8 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

async fn plan<S: Store>(
    store: &S,
    docs: &[spiderpool_core::model::Document],
    uid: &mut dyn FnMut() -> String,
    now: &str,
) -> Result<(String, Vec<Write>), Error> {
    let cfg = AdmissionConfig::default();
    // Pools and subnets only matter to Spiderpool objects: a file of workloads reads none.
    let spider = docs.iter().any(|d| !matches!(d.object, Object::Other(_)));
    let mut pools: Vec<(SpiderIPPool, Option<Revision>)> = Vec::new();
    let mut subnets: Vec<(SpiderSubnet, Option<Revision>)> = Vec::new();
    if spider {
        for s in store.list(SpiderIPPool::KIND).await? {
            if let Object::IpPool(p) = s.object {
                pools.push((p, Some(s.revision)));
            }
        }
        for s in store.list(SpiderSubnet::KIND).await? {
            if let Object::Subnet(x) = s.object {
                subnets.push((x, Some(s.revision)));
            }
        }
    }
    // Other kinds with several documents are listed once rather than read one by one.
    let mut per_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for d in docs {
        if let Object::Other(o) = &d.object {
            *per_kind.entry(o.kind.as_str()).or_default() += 1;
        }
    }
    let mut listed: BTreeMap<String, BTreeMap<Key, Stored>> = BTreeMap::new();
    for (kind, n) in per_kind {
        if n > 1 {
            let objects = store
                .list(kind)
                .await?
                .into_iter()
                .map(|s| (Key::of(&s.object), s))
                .collect();
            listed.insert(kind.to_string(), objects);
        }
    }
    let mut pending: Vec<Pending> = Vec::new();
    let mut lines: Vec<(usize, String)> = Vec::new();
    let mut other_writes = Vec::new();
    for (doc_index, doc) in docs.iter().enumerate() {
        if let Object::Other(o) = &doc.object {
            let key = Key::of(&Object::Other(with_default_namespace(o)));
            let stored = match listed.get(&o.kind) {
                Some(objects) => objects.get(&key).cloned(),
                None => store.get(&key).await?,
            };
            let (line, write) = plan_other(o, stored, uid, now);
            lines.push((doc_index, line));
            other_writes.extend(write);
            if crate::emulation::is_workload(o) {
                if let Some(w) = crate::emulation::index_kind(store, &o.kind).await? {
                    if !other_writes.iter().any(|x: &Write| x.key() == w.key()) {
                        other_writes.push(w);
                    }
                }
            }
            continue;
        }
        let Some(kind) = Kind::of(&doc.object) else {
            continue;
        };
        let name = doc.object.name().to_string();
        let stored = match pending
            .iter()
            .position(|p| p.kind == kind && p.new.name() == name)
        {
            Some(i) => {
                let p = pending.remove(i);
                p.old.clone().map(|(o, r)| (o, r, Some(p.new)))
            }
            None => store
                .get(&Key::of(&doc.object))
                .await?
                .map(|s| (s.object, s.revision, None)),
        };
        let (old, rev, _) = match &stored {
            Some((o, r, n)) => (
                Some(n.clone().unwrap_or_else(|| o.clone())),
                Some(r.clone()),
                (),
            ),
            None => (None, None, ()),
        };
        let subnet_list: Vec<SpiderSubnet> = subnets.iter().map(|(s, _)| s.clone()).collect();
        let pool_list: Vec<SpiderIPPool> = pools.iter().map(|(p, _)| p.clone()).collect();
        let cluster = Cluster {
            pools: &pool_list,
            subnets: &subnet_list,
        };
        let new = match (&doc.object, &old) {
            (Object::IpPool(p), old) => {
                let mut p = p.clone();
                if let Some(Object::IpPool(o)) = old {
                    carry(&mut p.metadata, &o.metadata);
                    p.status = o.status.clone();
                }
                mutate_ippool(&mut p, &subnet_list, &cfg);
                match old {
                    Some(Object::IpPool(o)) => validate_ippool_update(o, &p, &cluster, &cfg)?,
                    _ => validate_ippool_create(&p, &cluster, &cfg)?,
                }
                pools.retain(|(x, _)| x.metadata.name != p.metadata.name);
                pools.push((p.clone(), rev.clone()));
                Object::IpPool(p)
            }
            (Object::Subnet(s), old) => {
                let mut s = s.clone();
                if let Some(Object::Subnet(o)) = old {
                    carry(&mut s.metadata, &o.metadata);
                    s.status = o.status.clone();
                }
                mutate_subnet(&mut s);
                match old {
                    Some(Object::Subnet(o)) => validate_subnet_update(o, &s, &cfg)?,
                    _ => validate_subnet_create(&s, &cluster, &cfg)?,
                }
                subnets.retain(|(x, _)| x.metadata.name != s.metadata.name);
                subnets.push((s.clone(), rev.clone()));
                Object::Subnet(s)
            }
            (Object::ReservedIp(r), old) => {
                let mut r = r.clone();
                if let Some(Object::ReservedIp(o)) = old {
                    carry(&mut r.metadata, &o.metadata);
                }
                mutate_reservedip(&mut r);
                match old {
                    Some(Object::ReservedIp(o)) => validate_reservedip_update(o, &r, &cfg)?,
                    _ => validate_reservedip_create(&r, &cfg)?,
                }
                Object::ReservedIp(r)
            }
            _ => continue,
        };
        pending.push(Pending {
            index: doc_index,
            kind,
            old: stored.map(|(o, r, _)| (o, r)),
            new,
        });
    }
    // Status as the controllers keep it: pool totals, subnet hand-outs.
    for (p, _) in &mut pools {
        p.refresh_status()?;
    }
    let pool_list: Vec<SpiderIPPool> = pools.iter().map(|(p, _)| p.clone()).collect();
    for (s, _) in &mut subnets {
        s.refresh_status(&pool_list)?;
    }
    let mut writes = Vec::new();
    for p in &mut pending {
        match &mut p.new {
            Object::IpPool(x) => {
                if let Some((refreshed, _)) = pools
                    .iter()
                    .find(|(q, _)| q.metadata.name == x.metadata.name)
                {
                    x.status = refreshed.status.clone();
                }
            }
            Object::Subnet(x) => {
                if let Some((refreshed, _)) = subnets
                    .iter()
                    .find(|(q, _)| q.metadata.name == x.metadata.name)
                {
                    x.status = refreshed.status.clone();
                }
            }
            _ => {}
        }
        let verb = match &p.old {
            None => Verb::Created,
            Some((o, _)) if same(o, &p.new) => Verb::Unchanged,
            Some(_) => Verb::Configured,
        };
        lines.push((
            p.index,
            format!(
                "{}/{} {}\n",
                p.kind.resource(),
                p.new.name(),
                match verb {
                    Verb::Created => "created",
                    Verb::Configured => "configured",
                    Verb::Unchanged => "unchanged",
                }
            ),
        ));
        match (&p.old, verb) {
            (_, Verb::Unchanged) => {}
            (None, _) => {
                stamp(&mut p.new, uid(), now);
                writes.push(Write::Create(p.new.clone()));
            }
            (Some((_, rev)), _) => writes.push(Write::Update {
                object: p.new.clone(),
                expected: rev.clone(),
            }),
        }
    }
    // Subnets whose hand-outs changed because of the pools applied.
    for (s, rev) in &subnets {
        let Some(rev) = rev else { continue };
        if pending
            .iter()
            .any(|p| p.kind == Kind::Subnet && p.new.name() == s.metadata.name)
        {
            continue;
        }
        if let Some(stored) = store
            .get(&Key::cluster(SpiderSubnet::KIND, &s.metadata.name))
            .await?
        {
            if stored.object != Object::Subnet(s.clone()) && &stored.revision == rev {
                writes.push(Write::Update {
                    object: Object::Subnet(s.clone()),
                    expected: rev.clone(),
                });
            }
        }
    }
    writes.extend(other_writes);
    lines.sort_by_key(|(i, _)| *i);
    Ok((lines.into_iter().map(|(_, l)| l).collect(), writes))
}

/// kubectl's resource name of another kind: `deployment.apps`, `pod`, `cloneset.apps.kruise.io`.
pub(crate) fn other_resource(o: &OtherObject) -> String {
    let kind = o.kind.to_ascii_lowercase();
    match o.api_version.split_once('/') {
        Some((group, _)) => format!("{kind}.{group}"),
        None => kind,
    }
}

/// Applies a namespace, node, pod, workload or the settings ConfigMap: stored as given, with
/// the uid and creation time of the stored version (or new ones).
fn plan_other(
    o: &OtherObject,
    stored: Option<Stored>,
    uid: &mut dyn FnMut() -> String,
    now: &str,
) -> (String, Option<Write>) {
    let mut new = with_default_namespace(o);
    let old_meta = stored.as_ref().and_then(|s| match &s.object {
        Object::Other(x) => x.value.get("metadata").cloned(),
        _ => None,
    });
    for field in ["uid", "creationTimestamp"] {
        let carried = old_meta.as_ref().and_then(|m| m.get(field)).cloned();
        let value = match (carried, field) {
            (Some(v), _) => v,
            (None, "uid") => serde_json::json!(uid()),
            (None, _) => serde_json::json!(now),
        };
        if new.value["metadata"].get(field).is_none() {
            new.value["metadata"][field] = value;
        }
    }
    if let Some(old) = stored.as_ref().and_then(|s| match &s.object {
        Object::Other(x) => x.value.get("status").cloned(),
        _ => None,
    }) {
        if new.value.get("status").is_none() {
            new.value["status"] = old;
        }
    }
    let resource = other_resource(o);
    match stored {
        None => (
            format!("{resource}/{} created\n", o.name),
            Some(Write::Create(Object::Other(new))),
        ),
        Some(s) if s.object == Object::Other(new.clone()) => {
            (format!("{resource}/{} unchanged\n", o.name), None)
        }
        Some(s) => (
            format!("{resource}/{} configured\n", o.name),
            Some(Write::Update {
                object: Object::Other(new),
                expected: s.revision,
            }),
        ),
    }
}

/// The object with the namespace apply gives namespaced kinds that name none.
fn with_default_namespace(o: &OtherObject) -> OtherObject {
    let mut new = o.clone();
    if new.namespace.is_none() && !matches!(o.kind.as_str(), "Namespace" | "Node") {
        new.namespace = Some("default".into());
        new.value["metadata"]["namespace"] = serde_json::json!("default");
    }
    new
}

/// The workloads of `text` (their keys), if the file holds nothing but workloads: the objects
/// a reconcile after applying it needs to look at (see [`crate::emulation::Options::scope`]).
/// `None` for any other file (or one that does not parse).
pub fn workload_scope(source: &str, text: &str) -> Option<BTreeSet<Key>> {
    let docs = parse_documents(source, text).ok()?;
    let mut keys = BTreeSet::new();
    for d in &docs {
        match &d.object {
            Object::Other(o) if crate::emulation::is_workload(o) => {
                keys.insert(Key::of(&Object::Other(with_default_namespace(o))));
            }
            _ => return None,
        }
    }
    (!keys.is_empty()).then_some(keys)
}

/// Keeps what the store owns when an object is applied again: uid, creation time,
/// resourceVersion, finalizers, and owner references the applied object does not set.
fn carry(new: &mut ObjectMeta, old: &ObjectMeta) {
    new.uid.clone_from(&old.uid);
    new.creation_timestamp = old.creation_timestamp;
    new.resource_version.clone_from(&old.resource_version);
    new.generation = old.generation;
    for f in &old.finalizers {
        if !new.finalizers.contains(f) {
            new.finalizers.push(f.clone());
        }
    }
    if new.owner_references.is_empty() {
        new.owner_references.clone_from(&old.owner_references);
    }
}

/// Gives a new object its uid and creation time.
fn stamp(object: &mut Object, uid: String, now: &str) {
    let meta = match object {
        Object::IpPool(x) => &mut x.metadata,
        Object::Subnet(x) => &mut x.metadata,
        Object::ReservedIp(x) => &mut x.metadata,
        Object::Endpoint(x) => &mut x.metadata,
        Object::Other(_) => return,
    };
    meta.uid.get_or_insert(uid);
    if meta.creation_timestamp.is_none() {
        meta.creation_timestamp = now.parse().ok();
    }
    meta.generation.get_or_insert(1);
}

/// Whether applying changed nothing (status included, which apply recomputes).
fn same(old: &Object, new: &Object) -> bool {
    old == new
}
