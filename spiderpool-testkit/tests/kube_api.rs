//! The mock API server through a real kube-rs client: typed core and apps objects, dynamic
//! Spiderpool objects, conflicts, selectors, watches, finalizers and the HTTP path.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta,
    PostParams, Preconditions, WatchEvent, WatchParams,
};
use kube::ResourceExt;
use serde_json::json;
use spiderpool_testkit::kube_api::{client, client_with, kubeconfig, serve_http, Shared};

fn pod(name: &str, labels: &[(&str, &str)], node: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason),
        other => panic!("not an API error: {other:?}"),
    }
}

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    items
        .iter()
        .map(|o| o.meta().name.clone().unwrap())
        .collect()
}

#[tokio::test]
async fn pod_crud_conflicts_and_not_found() {
    let (client, state) = client();
    let pods: Api<Pod> = Api::namespaced(client, "ns1");
    let pp = PostParams::default();
    let created = pods.create(&pp, &pod("a", &[], "n1")).await.unwrap();
    let rv1 = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.namespace.as_deref(), Some("ns1"));
    assert_eq!(pods.get("a").await.unwrap(), created);

    let again = pods.create(&pp, &pod("a", &[], "n1")).await.unwrap_err();
    assert_eq!(api_error(again), (409, "AlreadyExists".into()));

    let mut changed = created.clone();
    changed.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
    let replaced = pods.replace("a", &pp, &changed).await.unwrap();
    let rv2 = replaced.metadata.resource_version.clone().unwrap();
    assert!(rv2.parse::<u64>().unwrap() > rv1.parse::<u64>().unwrap());
    assert_eq!(replaced.metadata.uid, created.metadata.uid);

    // `changed` still carries rv1: stale.
    let stale = pods.replace("a", &pp, &changed).await.unwrap_err();
    assert_eq!(api_error(stale), (409, "Conflict".into()));
    assert_eq!(state.lock().unwrap().conflicts, 2);

    // No resourceVersion: an unconditional update.
    changed.metadata.resource_version = None;
    changed.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    let forced = pods.replace("a", &pp, &changed).await.unwrap();
    assert_eq!(forced.labels()["app"], "db");
    assert_ne!(
        forced.metadata.resource_version.as_deref(),
        Some(rv2.as_str())
    );

    assert!(pods
        .delete("a", &DeleteParams::default())
        .await
        .unwrap()
        .is_right());
    assert_eq!(
        api_error(pods.get("a").await.unwrap_err()),
        (404, "NotFound".into())
    );
    let missing = pods
        .delete("a", &DeleteParams::default())
        .await
        .unwrap_err();
    assert_eq!(api_error(missing), (404, "NotFound".into()));
    let other_ns: Api<Pod> = Api::namespaced(client_with(state.clone()), "ns2");
    assert!(other_ns.get_opt("a").await.unwrap().is_none());
    let counts = state.lock().unwrap().requests.clone();
    assert_eq!(counts["POST"], 2);
    assert_eq!(counts["PUT"], 3);
    assert_eq!(counts["DELETE"], 2);
}

#[tokio::test]
async fn deployment_status_is_a_subresource() {
    let (client, _state) = client();
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    let pp = PostParams::default();
    let mut d = Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        },
        status: Some(DeploymentStatus {
            replicas: Some(3),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = deployments.create(&pp, &d).await.unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert!(created.status.is_none(), "status is ignored on create");

    d = created.clone();
    d.status = Some(DeploymentStatus {
        replicas: Some(2),
        ..Default::default()
    });
    let with_status = deployments.replace_status("web", &pp, &d).await.unwrap();
    assert_eq!(with_status.status.as_ref().unwrap().replicas, Some(2));

    let mut main = with_status.clone();
    main.status = None;
    main.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    let replaced = deployments.replace("web", &pp, &main).await.unwrap();
    assert_eq!(replaced.status.unwrap().replicas, Some(2), "status is kept");
    let listed = deployments.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&listed.items), ["web"]);
}

#[tokio::test]
async fn lease_delete_preconditions_and_finalizers() {
    let (client, state) = client();
    let leases: Api<Lease> = Api::namespaced(client, "kube-system");
    let pp = PostParams::default();
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("leader".into()),
            finalizers: Some(vec!["test/hold".into()]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("me".into()),
            ..Default::default()
        }),
    };
    let created = leases.create(&pp, &lease).await.unwrap();
    let bad_uid = DeleteParams::default().preconditions(Preconditions {
        uid: Some("someone-else".into()),
        resource_version: None,
    });
    assert_eq!(
        api_error(leases.delete("leader", &bad_uid).await.unwrap_err()).0,
        409
    );
    let bad_rv = DeleteParams::default().preconditions(Preconditions {
        uid: None,
        resource_version: Some("1000".into()),
    });
    assert_eq!(
        api_error(leases.delete("leader", &bad_rv).await.unwrap_err()).0,
        409
    );
    let good = DeleteParams::default().preconditions(Preconditions {
        uid: created.metadata.uid.clone(),
        resource_version: created.metadata.resource_version.clone(),
    });
    let terminating = leases
        .delete("leader", &good)
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert!(leases.get_opt("leader").await.unwrap().is_some());
    let mut last = terminating;
    last.metadata.finalizers = None;
    leases.replace("leader", &pp, &last).await.unwrap();
    assert!(leases.get_opt("leader").await.unwrap().is_none());
    assert_eq!(state.lock().unwrap().conflicts, 2);
}

#[tokio::test]
async fn namespaces_are_cluster_scoped_and_lists_span_namespaces() {
    let (client, state) = client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let pp = PostParams::default();
    for name in ["team-a", "team-b"] {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let created = namespaces.create(&pp, &ns).await.unwrap();
        assert_eq!(created.metadata.namespace, None);
    }
    let mut a = namespaces.get("team-a").await.unwrap();
    a.metadata.labels = Some([("env".to_string(), "prod".to_string())].into());
    namespaces.replace("team-a", &pp, &a).await.unwrap();
    let prod = namespaces
        .list(&ListParams::default().labels("env=prod"))
        .await
        .unwrap();
    assert_eq!(names(&prod.items), ["team-a"]);
    for ns in ["team-a", "team-b"] {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        pods.create(&pp, &pod("p", &[], "n1")).await.unwrap();
    }
    let all: Api<Pod> = Api::all(client.clone());
    let list = all.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 2);
    assert_eq!(
        list.metadata.resource_version,
        Some(state.lock().unwrap().revision().to_string())
    );
    namespaces
        .delete("team-b", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        names(&namespaces.list(&ListParams::default()).await.unwrap().items),
        ["team-a"]
    );
    let s = state.lock().unwrap();
    assert!(s.get("v1", "Namespace", None, "team-a").is_some());
    assert!(s.get("v1", "Pod", Some("team-b"), "p").is_some());
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let (client, _state) = client();
    let pods: Api<Pod> = Api::default_namespaced(client);
    let pp = PostParams::default();
    pods.create(
        &pp,
        &pod("web-1", &[("app", "web"), ("tier", "front")], "n1"),
    )
    .await
    .unwrap();
    pods.create(
        &pp,
        &pod("web-2", &[("app", "web"), ("canary", "yes")], "n2"),
    )
    .await
    .unwrap();
    pods.create(&pp, &pod("db-1", &[("app", "db")], "n1"))
        .await
        .unwrap();
    let select = |labels: &'static str, fields: &'static str| {
        let pods = pods.clone();
        async move {
            let mut lp = ListParams::default();
            if !labels.is_empty() {
                lp = lp.labels(labels);
            }
            if !fields.is_empty() {
                lp = lp.fields(fields);
            }
            names(&pods.list(&lp).await.unwrap().items)
        }
    };
    assert_eq!(select("app=web", "").await, ["web-1", "web-2"]);
    assert_eq!(select("app=web,!canary", "").await, ["web-1"]);
    assert_eq!(select("app!=web", "").await, ["db-1"]);
    assert_eq!(select("canary", "").await, ["web-2"]);
    assert_eq!(select("app in (db,cache)", "").await, ["db-1"]);
    assert_eq!(select("", "spec.nodeName=n1").await, ["db-1", "web-1"]);
    assert_eq!(select("app=web", "spec.nodeName=n1").await, ["web-1"]);
    assert_eq!(select("", "metadata.name=web-2").await, ["web-2"]);
    assert!(select("app=none", "").await.is_empty());
}

async fn watch_events(pods: &Api<Pod>, wp: &WatchParams, rv: &str) -> Vec<WatchEvent<Pod>> {
    pods.watch(wp, rv)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

fn event_names(events: &[WatchEvent<Pod>]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(p) => format!("ADDED {}", p.name_any()),
            WatchEvent::Modified(p) => format!("MODIFIED {}", p.name_any()),
            WatchEvent::Deleted(p) => format!("DELETED {}", p.name_any()),
            WatchEvent::Bookmark(_) => "BOOKMARK".into(),
            WatchEvent::Error(e) => format!("ERROR {}", e.code),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_after_a_revision_waits_and_expires() {
    let (client, state) = client();
    let pods: Api<Pod> = Api::default_namespaced(client);
    let pp = PostParams::default();
    let a = pods
        .create(&pp, &pod("a", &[("app", "web")], "n1"))
        .await
        .unwrap();
    let rv_a = a.metadata.resource_version.clone().unwrap();
    pods.create(&pp, &pod("b", &[("app", "db")], "n1"))
        .await
        .unwrap();
    let mut a2 = a.clone();
    a2.metadata.annotations = Some([("k".to_string(), "v".to_string())].into());
    pods.replace("a", &pp, &a2).await.unwrap();
    pods.delete("b", &DeleteParams::default()).await.unwrap();

    let wp = WatchParams::default().timeout(1);
    let events = watch_events(&pods, &wp, &rv_a).await;
    assert_eq!(event_names(&events), ["ADDED b", "MODIFIED a", "DELETED b"]);
    let web = watch_events(&pods, &wp.clone().labels("app=web"), &rv_a).await;
    assert_eq!(event_names(&web), ["MODIFIED a"]);

    // Nothing new: the watch waits about its timeout (at most 1 s) before ending.
    let now = state.lock().unwrap().revision().to_string();
    let started = Instant::now();
    assert!(watch_events(&pods, &wp, &now).await.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // An event arriving meanwhile is sent at once.
    let writer = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        writer
            .lock()
            .unwrap()
            .insert(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "late"}}));
    });
    let started = Instant::now();
    let late = watch_events(&pods, &wp, &now).await;
    assert_eq!(event_names(&late), ["ADDED late"]);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    state.lock().unwrap().compact();
    let expired = watch_events(&pods, &wp, &rv_a).await;
    assert_eq!(event_names(&expired), ["ERROR 410"]);
}

fn pool_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "spiderpool.spidernet.io",
        "v2beta1",
        "SpiderIPPool",
    ))
}

#[tokio::test]
async fn helpers_seed_and_inspect_what_clients_see() {
    let (client, state) = client();
    let seeded = state.lock().unwrap().insert(json!({
        "apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
        "metadata": {"name": "pool-a"}, "spec": {"subnet": "10.0.0.0/24"},
        "status": {"allocatedIPCount": 0}}));
    assert_eq!(seeded["metadata"]["uid"], "uid-1");
    state
        .lock()
        .unwrap()
        .insert(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "finalizers": ["x/y"]}}));

    let pools: Api<DynamicObject> = Api::all_with(client.clone(), &pool_resource());
    let got = pools.get("pool-a").await.unwrap();
    assert_eq!(got.data["spec"]["subnet"], "10.0.0.0/24");
    assert_eq!(
        got.data["status"]["allocatedIPCount"], 0,
        "insert keeps status"
    );
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    assert!(pods.get_opt("p").await.unwrap().is_some());

    let mut changed = seeded.clone();
    changed["spec"]["subnet"] = json!("10.0.1.0/24");
    let updated = state.lock().unwrap().update(changed);
    assert_ne!(
        updated["metadata"]["resourceVersion"],
        seeded["metadata"]["resourceVersion"]
    );
    assert_eq!(
        pools.get("pool-a").await.unwrap().data["spec"]["subnet"],
        "10.0.1.0/24"
    );
    assert_eq!(
        state
            .lock()
            .unwrap()
            .list("spiderpool.spidernet.io/v2beta1", "SpiderIPPool")
            .len(),
        1
    );

    {
        let mut s = state.lock().unwrap();
        let held = s.remove("v1", "Pod", None, "p").unwrap();
        assert!(
            held["metadata"]["deletionTimestamp"].is_string(),
            "finalizers hold it"
        );
        assert!(s.get("v1", "Pod", Some("default"), "p").is_some());
        let mut released = held;
        released["metadata"]["finalizers"] = json!([]);
        s.update(released);
        assert!(s.get("v1", "Pod", None, "p").is_none());
        assert!(s.remove("v1", "Pod", None, "p").is_none());
    }

    // PATCH is not served.
    let patch = pools
        .patch(
            "pool-a",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(patch), (405, "MethodNotAllowed".into()));
}

async fn kube_client_over_http(state: Shared) -> kube::Client {
    let addr = serve_http(state).await;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&kubeconfig(addr)).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.cluster_url.to_string(), format!("http://{addr}/"));
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn serves_over_http_with_a_kubeconfig() {
    let state = Shared::default();
    let client = kube_client_over_http(state.clone()).await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "cni");
    let pp = PostParams::default();
    pods.create(&pp, &pod("p", &[("app", "web")], "n1"))
        .await
        .unwrap();
    assert!(state
        .lock()
        .unwrap()
        .get("v1", "Pod", Some("cni"), "p")
        .is_some());
    let listed = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(names(&listed.items), ["p"]);
    let err = pods.create(&pp, &pod("p", &[], "n1")).await.unwrap_err();
    assert_eq!(api_error(err), (409, "AlreadyExists".into()));

    let pools: Api<DynamicObject> = Api::all_with(client, &pool_resource());
    let mut pool = DynamicObject::new("pool-b", &pool_resource());
    pool.data = json!({"spec": {"subnet": "10.1.0.0/24"}});
    pools.create(&pp, &pool).await.unwrap();
    let watched: Vec<WatchEvent<DynamicObject>> = pools
        .watch(&WatchParams::default().timeout(1), "1")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(
        matches!(watched.as_slice(), [WatchEvent::Added(p)] if p.name_any() == "pool-b"),
        "{watched:?}"
    );
    assert_eq!(state.lock().unwrap().requests["POST"], 3);
}
