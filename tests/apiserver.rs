//! The Kubernetes API double (`support/apiserver.rs`) behaves like kube-apiserver wherever devenv
//! and Helm depend on it. First its own semantics, over raw HTTP; then the real Helm 3 and Helm 4
//! binaries installing, upgrading, listing and uninstalling the example project's chart against
//! it, including `--wait` on workloads that only become ready when the test says so.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::apiserver::{ApiServer, Request, Response};
use support::{Env, real_tool};

// ----- helpers -----

fn send(api: &ApiServer, method: &str, target: &str, content_type: &str, body: &Value) -> Response {
    api.http(method, target, Some(content_type), &body.to_string())
}

fn post(api: &ApiServer, target: &str, body: Value) -> Response {
    send(api, "POST", target, "application/json", &body)
}

fn put(api: &ApiServer, target: &str, body: &Value) -> Response {
    send(api, "PUT", target, "application/json", body)
}

fn get(api: &ApiServer, target: &str) -> Response {
    api.http("GET", target, None, "")
}

fn configmap(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"},
    })
}

fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "main",
                    "image": image,
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                }]},
            },
        },
    })
}

const CM: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

// ----- errors: 404 and 409 as Status objects -----

#[test]
fn getting_a_missing_object_is_404_with_a_not_found_status() {
    let api = ApiServer::start();
    let r = get(&api, "/apis/apps/v1/namespaces/default/deployments/nope");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "deployments.apps \"nope\" not found", "reason": "NotFound",
            "details": {"name": "nope", "group": "apps", "kind": "deployments"}, "code": 404,
        })
    );
    let r = get(&api, "/api/v1/namespaces/default/secrets/nope");
    assert_eq!(r.json()["message"], "secrets \"nope\" not found");
    assert_eq!(get(&api, "/apis/example.com/v1/widgets").status, 404);
}

#[test]
fn creating_an_existing_name_is_409_already_exists() {
    let api = ApiServer::start();
    assert_eq!(post(&api, CM, configmap("a", json!({}))).status, 201);
    let r = post(&api, CM, configmap("a", json!({})));
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["reason"], "AlreadyExists");
    assert_eq!(r.json()["message"], "configmaps \"a\" already exists");
}

#[test]
fn creating_in_a_missing_namespace_is_404_but_listing_it_is_empty() {
    let api = ApiServer::start();
    let r = post(
        &api,
        "/api/v1/namespaces/shop/secrets",
        json!({"metadata": {"name": "s"}}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "namespaces \"shop\" not found");
    // Helm's history lookup lists release secrets before the namespace exists.
    let r = get(
        &api,
        "/api/v1/namespaces/shop/secrets?labelSelector=name%3Dshop%2Cowner%3Dhelm",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["kind"], "SecretList");
    assert_eq!(r.json()["items"], json!([]));
}

#[test]
fn updating_with_a_stale_resource_version_is_409_conflict() {
    let api = ApiServer::start();
    let created = post(&api, CM, configmap("a", json!({}))).json();
    let mut changed = created.clone();
    changed["data"]["k"] = json!("v2");
    let updated = put(&api, &format!("{CM}/a"), &changed);
    assert_eq!(updated.status, 200);
    assert!(rv(&updated.json()) > rv(&created));

    // `changed` still carries the first resourceVersion.
    changed["data"]["k"] = json!("v3");
    let r = put(&api, &format!("{CM}/a"), &changed);
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["reason"], "Conflict");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );

    // Without a resourceVersion the update is unconditional.
    changed["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    assert_eq!(put(&api, &format!("{CM}/a"), &changed).status, 200);
    assert_eq!(
        api.get("configmaps", "default", "a").unwrap()["data"]["k"],
        "v3"
    );
    assert_eq!(
        put(
            &api,
            &format!("{CM}/missing"),
            &configmap("missing", json!({}))
        )
        .status,
        404
    );
}

// ----- bookkeeping -----

#[test]
fn the_server_owns_uid_timestamps_generation_and_resource_versions() {
    let api = ApiServer::start();
    let created = post(&api, DEPLOY, deployment("web", "web:1")).json();
    let meta = &created["metadata"];
    assert_eq!(meta["uid"].as_str().unwrap().len(), 36);
    assert!(meta["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(meta["generation"], 1);
    assert_eq!(
        created["status"],
        json!({}),
        "a new object starts with an empty status"
    );

    // A label is metadata: no new generation. The image is spec: generation 2.
    let mut obj = created.clone();
    obj["metadata"]["labels"]["team"] = json!("shop");
    let relabelled = put(&api, &format!("{DEPLOY}/web"), &obj).json();
    assert_eq!(relabelled["metadata"]["generation"], 1);
    assert!(rv(&relabelled) > rv(&created));
    let mut obj = relabelled.clone();
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
    let rolled = put(&api, &format!("{DEPLOY}/web"), &obj).json();
    assert_eq!(rolled["metadata"]["generation"], 2);
    assert_eq!(rolled["metadata"]["uid"], meta["uid"]);

    // Writing the same object again changes nothing, not even the resourceVersion.
    let again = put(&api, &format!("{DEPLOY}/web"), &rolled).json();
    assert_eq!(rv(&again), rv(&rolled));
    assert_eq!(api.resource_version(), rv(&rolled));
}

#[test]
fn status_is_written_only_through_the_status_subresource() {
    let api = ApiServer::start();
    let created = post(&api, DEPLOY, deployment("web", "web:1")).json();
    let mut obj = created.clone();
    obj["status"] = json!({"replicas": 9});
    let r = put(&api, &format!("{DEPLOY}/web"), &obj).json();
    assert_eq!(
        r["status"],
        json!({}),
        "the object's PUT keeps the stored status"
    );

    let r = put(&api, &format!("{DEPLOY}/web/status"), &obj).json();
    assert_eq!(r["status"], json!({"replicas": 9}));
    assert_eq!(r["metadata"]["generation"], 1);
    let r = send(
        &api,
        "PATCH",
        &format!("{DEPLOY}/web/status"),
        "application/merge-patch+json",
        &json!({"status": {"readyReplicas": 9}}),
    );
    assert_eq!(
        r.json()["status"],
        json!({"replicas": 9, "readyReplicas": 9})
    );
}

#[test]
fn defaults_that_clients_read_back_are_filled_in() {
    let api = ApiServer::start();
    let svc = post(
        &api,
        "/api/v1/namespaces/default/services",
        json!({"metadata": {"name": "api"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .json();
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("10.96.")
    );
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"port": 80, "protocol": "TCP", "targetPort": 80}])
    );

    let secret = post(
        &api,
        "/api/v1/namespaces/default/secrets",
        json!({"metadata": {"name": "s"}, "stringData": {"password": "devenv"}}),
    )
    .json();
    assert_eq!(secret["data"], json!({"password": "ZGV2ZW52"}));
    assert_eq!(secret["type"], "Opaque");
    assert!(secret.get("stringData").is_none());

    let dep = post(&api, DEPLOY, deployment("web", "web:1")).json();
    assert_eq!(dep["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(dep["spec"]["progressDeadlineSeconds"], 600);
}

// ----- list and watch -----

#[test]
fn list_filters_by_label_and_field_selectors() {
    let api = ApiServer::start();
    for (name, labels) in [
        ("a", json!({"app": "shop", "tier": "web"})),
        ("b", json!({"app": "shop", "tier": "db"})),
        ("c", json!({"app": "other"})),
    ] {
        assert_eq!(post(&api, CM, configmap(name, labels)).status, 201);
    }
    let names = |query: &str| -> Vec<String> {
        let list = get(&api, &format!("{CM}?{query}")).json();
        assert_eq!(list["kind"], "ConfigMapList");
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                assert!(i.get("kind").is_none(), "list items carry no kind");
                i["metadata"]["name"].as_str().unwrap().to_string()
            })
            .collect()
    };
    assert_eq!(names(""), ["a", "b", "c"]);
    assert_eq!(names("labelSelector=app%3Dshop%2Ctier%3Dweb"), ["a"]);
    assert_eq!(names("labelSelector=app%3Dshop,tier!%3Dweb"), ["b"]);
    assert_eq!(names("labelSelector=tier"), ["a", "b"]);
    assert_eq!(names("labelSelector=!tier"), ["c"]);
    assert_eq!(names("labelSelector=tier+in+(db,cache)"), ["b"]);
    assert_eq!(names("fieldSelector=metadata.name%3Dc"), ["c"]);
    assert_eq!(names("labelSelector=app%3Dnone"), Vec::<String>::new());
    assert_eq!(get(&api, &format!("{CM}?labelSelector=a>1")).status, 400);
}

#[test]
fn watch_from_a_resource_version_replays_later_changes_then_streams_live_ones() {
    let api = ApiServer::start();
    let first = post(&api, CM, configmap("one", json!({}))).json();
    post(&api, CM, configmap("two", json!({})));
    let mut two = api.get("configmaps", "default", "two").unwrap();
    two["data"]["k"] = json!("changed");
    put(&api, &format!("{CM}/two"), &two);

    let mut watch = api.watch(&format!("{CM}?watch=true&resourceVersion={}", rv(&first)));
    assert_eq!(watch.status, 200);
    let header = |name: &str| {
        watch
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    let wait = Duration::from_secs(5);
    let event = |e: Option<Value>| {
        let e = e.expect("an event");
        (
            e["type"].as_str().unwrap().to_string(),
            e["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    assert_eq!(event(watch.next(wait)), ("ADDED".into(), "two".into()));
    assert_eq!(event(watch.next(wait)), ("MODIFIED".into(), "two".into()));
    assert_eq!(
        watch.next(Duration::from_millis(200)),
        None,
        "nothing else happened yet"
    );

    post(&api, CM, configmap("three", json!({})));
    assert_eq!(event(watch.next(wait)), ("ADDED".into(), "three".into()));
    assert_eq!(
        api.http("DELETE", &format!("{CM}/one"), None, "").status,
        200
    );
    let deleted = watch.next(wait).unwrap();
    assert_eq!(deleted["type"], "DELETED");
    assert_eq!(deleted["object"]["kind"], "ConfigMap");
    assert_eq!(rv(&deleted["object"]), api.resource_version());
}

#[test]
fn watch_without_resource_version_starts_with_the_current_objects() {
    let api = ApiServer::start();
    post(&api, CM, configmap("a", json!({"app": "shop"})));
    post(&api, CM, configmap("b", json!({"app": "other"})));

    let mut plain = api.watch(&format!("{CM}?watch=1&labelSelector=app%3Dshop"));
    let e = plain.next(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("a"))
    );

    // client-go's streaming list (Helm 4's watcher) ends the initial state with a bookmark.
    let mut streaming = api.watch(&format!(
        "{CM}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    ));
    let wait = Duration::from_secs(5);
    assert_eq!(streaming.next(wait).unwrap()["type"], "ADDED");
    assert_eq!(streaming.next(wait).unwrap()["type"], "ADDED");
    let bookmark = streaming.next(wait).unwrap();
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(
        bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    // Leaving the selection is a DELETED for that watch; entering it an ADDED.
    let mut b = api.get("configmaps", "default", "b").unwrap();
    b["metadata"]["labels"]["app"] = json!("shop");
    put(&api, &format!("{CM}/b"), &b);
    assert_eq!(plain.next(wait).unwrap()["type"], "ADDED");
    let mut a = api.get("configmaps", "default", "a").unwrap();
    a["metadata"]["labels"]["app"] = json!("gone");
    put(&api, &format!("{CM}/a"), &a);
    assert_eq!(plain.next(wait).unwrap()["type"], "DELETED");
}

#[test]
fn watch_closes_after_its_timeout() {
    let api = ApiServer::start();
    let started = Instant::now();
    let mut watch = api.watch(&format!(
        "{CM}?watch=true&resourceVersion=1&timeoutSeconds=1"
    ));
    assert_eq!(watch.next(Duration::from_secs(5)), None);
    assert!(started.elapsed() < Duration::from_secs(4));
}

// ----- patch -----

#[test]
fn merge_patch_merges_maps_and_deletes_nulls() {
    let api = ApiServer::start();
    post(
        &api,
        CM,
        json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}, "data": {"k": "v"}}),
    );
    let r = send(
        &api,
        "PATCH",
        &format!("{CM}/a"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"x": null, "z": "3"}}, "data": {"k2": "v2"}}),
    );
    assert_eq!(r.status, 200);
    let obj = r.json();
    assert_eq!(obj["metadata"]["labels"], json!({"y": "2", "z": "3"}));
    assert_eq!(obj["data"], json!({"k": "v", "k2": "v2"}));
    let missing = send(
        &api,
        "PATCH",
        &format!("{CM}/nope"),
        "application/merge-patch+json",
        &json!({}),
    );
    assert_eq!(missing.status, 404);
}

#[test]
fn strategic_merge_patch_merges_lists_by_their_keys() {
    let api = ApiServer::start();
    post(&api, DEPLOY, deployment("web", "web:1"));
    // What Helm 3's three-way patch sends for a new image and one env var changed.
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "main"}],
        "containers": [{
            "name": "main",
            "image": "web:2",
            "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
            "env": [{"name": "B", "value": "3"}],
        }],
    }}}});
    let r = send(
        &api,
        "PATCH",
        &format!("{DEPLOY}/web"),
        "application/strategic-merge-patch+json",
        &patch,
    );
    assert_eq!(r.status, 200);
    let c = &r.json()["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        c,
        &json!([{
            "name": "main",
            "image": "web:2",
            "ports": [{"name": "http", "containerPort": 8080}],
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}],
        }])
    );
    assert_eq!(r.json()["metadata"]["generation"], 2);

    let delete_a = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "main", "env": [{"name": "A", "$patch": "delete"}]},
    ]}}}});
    let r = send(
        &api,
        "PATCH",
        &format!("{DEPLOY}/web"),
        "application/strategic-merge-patch+json",
        &delete_a,
    );
    assert_eq!(
        r.json()["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "B", "value": "3"}])
    );
}

#[test]
fn json_patch_applies_its_operations_or_none() {
    let api = ApiServer::start();
    post(&api, CM, configmap("a", json!({"x": "1"})));
    let ops = json!([
        {"op": "add", "path": "/metadata/labels/y", "value": "2"},
        {"op": "replace", "path": "/data/k", "value": "w"},
        {"op": "remove", "path": "/metadata/labels/x"},
    ]);
    let r = send(
        &api,
        "PATCH",
        &format!("{CM}/a"),
        "application/json-patch+json",
        &ops,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["metadata"]["labels"], json!({"y": "2"}));
    assert_eq!(r.json()["data"], json!({"k": "w"}));
    let failing = json!([{"op": "add", "path": "/data/z", "value": "1"}, {"op": "test", "path": "/data/k", "value": "no"}]);
    let r = send(
        &api,
        "PATCH",
        &format!("{CM}/a"),
        "application/json-patch+json",
        &failing,
    );
    assert_eq!(r.status, 422);
    assert!(
        api.get("configmaps", "default", "a").unwrap()["data"]
            .get("z")
            .is_none()
    );
}

#[test]
fn server_side_apply_creates_then_merges_and_drops_what_the_manager_stopped_applying() {
    let api = ApiServer::start();
    let target = format!("{CM}/a?fieldManager=helm&force=false");
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v", "old": "x"}});
    let r = send(
        &api,
        "PATCH",
        &target,
        "application/apply-patch+yaml",
        &first,
    );
    assert_eq!(r.status, 201, "apply creates a missing object");

    // Another writer adds a key; the manager's next apply drops `old` but keeps that key.
    send(
        &api,
        "PATCH",
        &format!("{CM}/a"),
        "application/merge-patch+json",
        &json!({"data": {"mine": "y"}}),
    );
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v2\n";
    let r = api.http("PATCH", &target, Some("application/apply-patch+yaml"), yaml);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"], json!({"k": "v2", "mine": "y"}));

    let r = api.http(
        "PATCH",
        &format!("{CM}/a"),
        Some("application/apply-patch+yaml"),
        yaml,
    );
    assert_eq!(r.status, 422, "apply needs a fieldManager");
    let r = api.http("PATCH", &format!("{CM}/a"), Some("text/plain"), "{}");
    assert_eq!(r.status, 415);
}

// ----- delete -----

#[test]
fn delete_is_404_when_missing_and_takes_dependents_unless_orphaned() {
    let api = ApiServer::start();
    assert_eq!(
        api.http("DELETE", &format!("{DEPLOY}/web"), None, "")
            .status,
        404
    );
    post(&api, DEPLOY, deployment("web", "web:1"));
    api.mark_ready("deployments", "default", "web");
    assert_eq!(api.names("replicasets", "default").len(), 1);
    assert_eq!(api.names("pods", "default").len(), 2);

    let r = api.http(
        "DELETE",
        &format!("{DEPLOY}/web"),
        Some("application/json"),
        r#"{"propagationPolicy":"Background"}"#,
    );
    assert_eq!(r.status, 200);
    assert!(api.names("replicasets", "default").is_empty());
    assert!(
        api.names("pods", "default").is_empty(),
        "the ReplicaSet's pods went too"
    );

    post(&api, DEPLOY, deployment("web", "web:1"));
    api.mark_ready("deployments", "default", "web");
    let r = api.http(
        "DELETE",
        &format!("{DEPLOY}/web?propagationPolicy=Orphan"),
        None,
        "",
    );
    assert_eq!(r.status, 200);
    let rs = api.list("replicasets", Some("default"));
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0]["metadata"]["ownerReferences"], json!([]));
}

#[test]
fn finalizers_hold_a_deleted_object_until_they_are_removed() {
    let api = ApiServer::start();
    post(
        &api,
        CM,
        json!({"metadata": {"name": "a", "finalizers": ["example.com/hold"]}}),
    );
    let r = api.http("DELETE", &format!("{CM}/a"), None, "").json();
    assert!(r["metadata"]["deletionTimestamp"].is_string());
    assert!(api.get("configmaps", "default", "a").is_some());
    let patch = json!({"metadata": {"finalizers": null}});
    send(
        &api,
        "PATCH",
        &format!("{CM}/a"),
        "application/merge-patch+json",
        &patch,
    );
    assert!(api.get("configmaps", "default", "a").is_none());
}

#[test]
fn a_deleted_namespace_is_terminating_refuses_new_content_then_goes_with_its_contents() {
    let api = ApiServer::start();
    post(
        &api,
        "/api/v1/namespaces",
        json!({"metadata": {"name": "shop"}}),
    );
    post(
        &api,
        "/api/v1/namespaces/shop/configmaps",
        configmap("a", json!({})),
    );
    assert_eq!(
        api.get("namespaces", "", "shop").unwrap()["status"]["phase"],
        "Active"
    );
    assert_eq!(
        api.http("DELETE", "/api/v1/namespaces/shop", None, "")
            .status,
        200
    );
    // As on the real server: Terminating while the namespace controller empties it, and the
    // NamespaceLifecycle plugin refuses anything new in it.
    let ns = api.get("namespaces", "", "shop").expect("still there");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string());
    let refused = api.http(
        "POST",
        "/api/v1/namespaces/shop/configmaps",
        Some("application/json"),
        &configmap("b", json!({})).to_string(),
    );
    assert_eq!(refused.status, 403);
    assert!(
        refused.json()["message"].as_str().unwrap().ends_with(
            "unable to create new content in namespace shop because it is being terminated"
        ),
        "{:?}",
        refused.json()
    );
    let started = std::time::Instant::now();
    while api.get("namespaces", "", "shop").is_some() {
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(api.list("configmaps", Some("shop")).is_empty());
}

// ----- discovery -----

#[test]
fn discovery_serves_plain_documents_for_the_groups_helm_and_devenv_use() {
    let api = ApiServer::start();
    assert_eq!(get(&api, "/version").json()["gitVersion"], "v1.34.0");
    assert_eq!(get(&api, "/api").json()["versions"], json!(["v1"]));
    // Asked for aggregated discovery, the double answers the plain list; client-go falls back.
    let groups = api.http(
        "GET",
        "/apis",
        Some(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        ),
        "",
    );
    assert_eq!(groups.content_type, "application/json");
    let names: Vec<String> = groups.json()["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    for group in ["apps", "batch", "networking.k8s.io", "discovery.k8s.io"] {
        assert!(names.iter().any(|n| n == group), "{group} in {names:?}");
    }
    let core = get(&api, "/api/v1").json();
    let core: Vec<&str> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for r in [
        "namespaces",
        "secrets",
        "configmaps",
        "services",
        "pods",
        "pods/log",
        "events",
        "endpoints",
        "serviceaccounts",
        "persistentvolumeclaims",
    ] {
        assert!(core.contains(&r), "{r} in {core:?}");
    }
    let apps = get(&api, "/apis/apps/v1").json();
    assert_eq!(apps["groupVersion"], "apps/v1");
    assert!(
        apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "deployments/status")
    );

    let openapi = api.http("GET", "/openapi/v2", None, "");
    assert_eq!(openapi.status, 200);
    let pb = client_get(
        &api,
        "/openapi/v2",
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    );
    assert_eq!(
        (pb.status, pb.content_type.as_str(), pb.body.len()),
        (
            200,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            0
        )
    );
    assert_eq!(get(&api, "/openapi/v3").status, 404);
}

/// A GET with a chosen Accept header (the raw client sends `application/json`).
fn client_get(api: &ApiServer, path: &str, accept: &str) -> Response {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(api.addr()).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    Response {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        content_type: header("content-type"),
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn pod_logs_serve_what_the_test_provided() {
    let api = ApiServer::start();
    post(&api, DEPLOY, deployment("web", "web:1"));
    api.mark_ready("deployments", "default", "web");
    let pod = api.names("pods", "default")[0].clone();
    api.set_pod_log("default", &pod, "main", "one\ntwo\nthree\n");
    let r = get(
        &api,
        &format!("/api/v1/namespaces/default/pods/{pod}/log?container=main&tailLines=2"),
    );
    assert_eq!((r.status, r.text().as_str()), (200, "two\nthree\n"));
}

#[test]
fn two_doubles_coexist_with_their_own_contexts_and_objects() {
    let local = ApiServer::start_as("devenv-shop");
    let remote = ApiServer::start_as("remote");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (local.kubeconfig(dir.path()), remote.kubeconfig(dir.path()));
    assert_ne!(a, b);
    assert_ne!(local.url(), remote.url());
    let text = std::fs::read_to_string(&a).unwrap();
    assert!(text.contains("current-context: devenv-shop"));
    assert!(text.contains(&format!("server: {}", local.url())));
    post(&local, CM, configmap("only-local", json!({})));
    assert!(local.get("configmaps", "default", "only-local").is_some());
    assert!(remote.get("configmaps", "default", "only-local").is_none());
}

// ----- readiness, as the controllers would write it -----

#[test]
fn mark_ready_writes_what_the_deployment_controller_and_kubelet_would() {
    let api = ApiServer::start();
    post(&api, DEPLOY, deployment("web", "web:1"));
    api.mark_ready("deployments", "default", "web");
    let dep = api.get("deployments", "default", "web").unwrap();
    let status = &dep["status"];
    assert_eq!(status["observedGeneration"], dep["metadata"]["generation"]);
    for field in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        assert_eq!(status[field], 2, "{field}");
    }
    let conditions: Vec<(&str, &str, &str)> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        conditions,
        [
            ("Available", "True", "MinimumReplicasAvailable"),
            ("Progressing", "True", "NewReplicaSetAvailable")
        ]
    );

    // The ReplicaSet that Helm 3 looks for: controlled by the Deployment, same template
    // plus the pod-template-hash label, found through the Deployment's selector.
    let rs = api.list_selected("replicasets", Some("default"), "app=web");
    assert_eq!(rs.len(), 1);
    let rs = &rs[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(
        rs["metadata"]["ownerReferences"][0]["uid"],
        dep["metadata"]["uid"]
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
    let mut template = rs["spec"]["template"].clone();
    template["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("pod-template-hash");
    assert_eq!(template, dep["spec"]["template"]);
    assert_eq!(rs["status"]["readyReplicas"], 2);
    assert_eq!(
        rs["status"]["observedGeneration"],
        rs["metadata"]["generation"]
    );
    let pods = api.list_selected(
        "pods",
        Some("default"),
        &format!("pod-template-hash={hash}"),
    );
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| {
        p["status"]["phase"] == "Running"
            && p["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
    }));

    // A new template rolls out a new ReplicaSet; the old one is scaled to zero.
    let mut dep = dep.clone();
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
    put(&api, &format!("{DEPLOY}/web"), &dep);
    api.mark_ready("deployments", "default", "web");
    let sizes: Vec<i64> = api
        .list("replicasets", Some("default"))
        .iter()
        .map(|r| r["spec"]["replicas"].as_i64().unwrap())
        .collect();
    assert_eq!(sizes.iter().sum::<i64>(), 2);
    assert!(sizes.contains(&0));
    assert_eq!(api.names("pods", "default").len(), 2);
}

#[test]
fn auto_ready_rolls_workloads_out_a_moment_after_they_are_written() {
    let api = ApiServer::start().auto_ready();
    let sts = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "pg"}]}}},
    });
    post(&api, "/apis/apps/v1/namespaces/default/statefulsets", sts);
    // Not at once, as no real rollout is ready at once.
    let sts = api.get("statefulsets", "default", "db").unwrap();
    assert!(sts["status"]["readyReplicas"].is_null(), "{sts}");
    let written = std::time::Instant::now();
    while api.get("statefulsets", "default", "db").unwrap()["status"]["readyReplicas"] != 2 {
        assert!(written.elapsed() < std::time::Duration::from_secs(5));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let sts = api.get("statefulsets", "default", "db").unwrap();
    let status = &sts["status"];
    assert_eq!(status["readyReplicas"], 2);
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["currentRevision"], status["updateRevision"]);
    assert_eq!(api.names("pods", "default"), ["db-0", "db-1"]);
}

// ----- the real Helm 3 and Helm 4 against the double -----

/// One Helm binary pointed at one double, in a project made by `devenv init --example`.
struct Helm {
    name: &'static str,
    bin: PathBuf,
    project: PathBuf,
    helm_home: PathBuf,
    kubeconfig: PathBuf,
    context: String,
}

impl Helm {
    fn new(name: &'static str, bin: PathBuf, env: &Env, api: &ApiServer) -> Helm {
        Helm {
            name,
            bin,
            project: env.project.clone(),
            helm_home: env.home.path().join("helm"),
            kubeconfig: api.kubeconfig(&env.home.path().join("kube")),
            context: api.context().to_string(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--kube-context", &self.context])
            .current_dir(&self.project)
            .env("HELM_CACHE_HOME", self.helm_home.join("cache"))
            .env("HELM_CONFIG_HOME", self.helm_home.join("config"))
            .env("HELM_DATA_HOME", self.helm_home.join("data"));
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert_success(self.name, args, &out);
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

fn assert_success(name: &str, args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const UPGRADE: &[&str] = &[
    "upgrade",
    "--install",
    "shop",
    "deploy/chart",
    "-n",
    "shop",
    "--create-namespace",
    "-f",
    "deploy/values-dev.yaml",
    "--wait",
    "--timeout",
    "60s",
];

/// Each Helm that is installed (under CI both must be), with a fresh example project and double.
fn each_helm(auto_ready: bool, test: impl Fn(&Helm, &ApiServer)) {
    for name in ["helm3", "helm4"] {
        let Some(bin) = real_tool(name) else { continue };
        let env = Env::new();
        env.example();
        let api = ApiServer::start_as("devenv-shop");
        api.set_auto_ready(auto_ready);
        test(&Helm::new(name, bin, &env, &api), &api);
    }
}

/// Requests in order, consecutive repeats folded into `×N`, discovery of each group folded too.
fn condensed(requests: &[Request]) -> Vec<String> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for r in requests {
        let mut line = format!("{} {}", r.method, r.path);
        if line.starts_with("GET /apis/") && r.path.matches('/').count() == 3 {
            line = "GET /apis/<group>/<version>".into();
        }
        if let Some(q) = r
            .query
            .split('&')
            .find(|p| p.starts_with("labelSelector=") || p.starts_with("watch="))
        {
            line.push_str(&format!("?{q}"));
        }
        if r.method != "GET" && r.method != "DELETE" {
            line.push_str(&format!(
                " [{}]",
                r.content_type.split(';').next().unwrap_or("")
            ));
        }
        line.push_str(&format!(" {}", r.status));
        match out.last_mut() {
            Some((last, n)) if *last == line => *n += 1,
            _ => out.push((line, 1)),
        }
    }
    out.into_iter()
        .map(|(l, n)| if n > 1 { format!("{l} ×{n}") } else { l })
        .collect()
}

fn release_secrets(api: &ApiServer) -> Vec<(String, String)> {
    api.list_selected("secrets", Some("shop"), "owner=helm,name=shop")
        .iter()
        .map(|s| {
            (
                s["metadata"]["name"].as_str().unwrap().to_string(),
                s["metadata"]["labels"]["status"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

fn has(requests: &[Request], method: &str, path: &str, content_type: &str) -> bool {
    requests
        .iter()
        .any(|r| r.method == method && r.path == path && r.content_type.starts_with(content_type))
}

#[test]
fn helm_installs_upgrades_lists_and_uninstalls_the_example_chart() {
    each_helm(true, |helm, api| {
        let started = Instant::now();
        helm.ok(UPGRADE);
        let install = api.requests();
        eprintln!(
            "{} install ({:?}):\n  {}",
            helm.name,
            started.elapsed(),
            condensed(&install).join("\n  ")
        );

        // Contract §8: reachability, history, discovery, validation, release record.
        assert_eq!(install[0].path, "/version");
        assert!(
            install
                .iter()
                .any(|r| r.path == "/api/v1/namespaces/shop/secrets"
                    && r.query == "labelSelector=name=shop,owner=helm")
        );
        assert!(has(&install, "GET", "/openapi/v2", ""));
        assert!(has(
            &install,
            "POST",
            "/api/v1/namespaces/shop/secrets",
            "application/vnd.kubernetes.protobuf"
        ));
        assert!(has(
            &install,
            "PUT",
            "/api/v1/namespaces/shop/secrets/sh.helm.release.v1.shop.v1",
            ""
        ));
        if helm.name == "helm3" {
            assert!(has(
                &install,
                "POST",
                "/api/v1/namespaces",
                "application/json"
            ));
            assert!(has(
                &install,
                "POST",
                "/apis/apps/v1/namespaces/shop/deployments",
                "application/json"
            ));
        } else {
            assert!(has(
                &install,
                "PATCH",
                "/api/v1/namespaces/shop",
                "application/apply-patch+yaml"
            ));
            assert!(has(
                &install,
                "PATCH",
                "/apis/apps/v1/namespaces/shop/deployments/api",
                "application/apply-patch+yaml"
            ));
            assert!(
                install
                    .iter()
                    .any(|r| r.query.contains("watch=true") && r.path.ends_with("/deployments"))
            );
        }

        let status = helm.json(&["status", "shop", "-n", "shop", "-o", "json"]);
        assert_eq!(status["info"]["status"], "deployed", "{}", helm.name);
        assert_eq!(status["version"], 1);
        assert_eq!(api.names("deployments", "shop"), ["api", "worker"]);
        assert_eq!(api.names("statefulsets", "shop"), ["postgres", "search"]);
        assert_eq!(api.names("ingresses", "shop"), ["api"]);

        api.clear_requests();
        helm.ok(UPGRADE);
        eprintln!(
            "{} upgrade:\n  {}",
            helm.name,
            condensed(&api.requests()).join("\n  ")
        );
        let status = helm.json(&["status", "shop", "-n", "shop", "-o", "json"]);
        assert_eq!(
            (
                status["version"].as_i64(),
                status["info"]["status"].as_str()
            ),
            (Some(2), Some("deployed"))
        );
        assert_eq!(
            release_secrets(api),
            [
                (
                    "sh.helm.release.v1.shop.v1".to_string(),
                    "superseded".to_string()
                ),
                (
                    "sh.helm.release.v1.shop.v2".to_string(),
                    "deployed".to_string()
                ),
            ]
        );
        let list = helm.json(&["list", "-n", "shop", "-o", "json"]);
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["name"], "shop");
        assert_eq!(list[0]["revision"], "2");
        assert_eq!(list[0]["status"], "deployed");
        assert_eq!(list[0]["chart"], "shop-0.1.0");

        api.clear_requests();
        helm.ok(&["uninstall", "shop", "-n", "shop"]);
        eprintln!(
            "{} uninstall:\n  {}",
            helm.name,
            condensed(&api.requests()).join("\n  ")
        );
        for resource in [
            "deployments",
            "statefulsets",
            "replicasets",
            "pods",
            "services",
            "ingresses",
            "secrets",
        ] {
            assert_eq!(
                api.names(resource, "shop"),
                Vec::<String>::new(),
                "{}: {resource} left",
                helm.name
            );
        }
        assert!(
            api.get("namespaces", "", "shop").is_some(),
            "helm leaves the namespace"
        );
    });
}

#[test]
fn helm_upgrade_with_a_new_image_changes_only_that_field() {
    each_helm(true, |helm, api| {
        helm.ok(UPGRADE);
        let before = api.get("deployments", "shop", "api").unwrap();
        let mut args = UPGRADE.to_vec();
        args.extend(["--set", "api.image.tag=v2"]);
        api.clear_requests();
        helm.ok(&args);
        let requests = api.requests();
        let path = "/apis/apps/v1/namespaces/shop/deployments/api";
        let patch = if helm.name == "helm3" {
            "application/strategic-merge-patch+json"
        } else {
            "application/apply-patch+yaml"
        };
        assert!(
            has(&requests, "PATCH", path, patch),
            "{}:\n{}",
            helm.name,
            condensed(&requests).join("\n")
        );

        let after = api.get("deployments", "shop", "api").unwrap();
        let mut expected = before["spec"].clone();
        expected["template"]["spec"]["containers"][0]["image"] = json!("shop-api:v2");
        assert_eq!(after["spec"], expected, "{}", helm.name);
        assert_eq!(after["metadata"]["generation"], 2);
        // auto-ready rolled out a second ReplicaSet and scaled the first to zero.
        let mut sizes: Vec<i64> = api
            .list_selected("replicasets", Some("shop"), "app.kubernetes.io/name=api")
            .iter()
            .map(|r| r["spec"]["replicas"].as_i64().unwrap())
            .collect();
        sizes.sort();
        assert_eq!(sizes, [0, 1]);
    });
}

/// Wait until `check` holds, polling; panics after `limit`.
fn eventually(limit: Duration, what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn helm_wait_blocks_until_the_workloads_are_marked_ready() {
    each_helm(false, |helm, api| {
        let mut child = helm
            .command(UPGRADE)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        eventually(
            Duration::from_secs(30),
            "the workloads to be created",
            || {
                api.names("deployments", "shop").len() == 2
                    && api.names("statefulsets", "shop").len() == 2
            },
        );
        // Nothing rolls out by itself: Helm keeps waiting, the release pending.
        std::thread::sleep(Duration::from_millis(2500));
        assert!(
            child.try_wait().unwrap().is_none(),
            "{} stopped waiting",
            helm.name
        );
        assert_eq!(
            release_secrets(api),
            [(
                "sh.helm.release.v1.shop.v1".to_string(),
                "pending-install".to_string()
            )]
        );
        let requests = api.requests();
        if helm.name == "helm3" {
            // Helm 3 polls: GET each workload, and the Deployment's ReplicaSets.
            assert!(
                api.count_requests("GET", "/apis/apps/v1/namespaces/shop/deployments/api") >= 1
            );
            assert!(
                requests
                    .iter()
                    .any(|r| r.path == "/apis/apps/v1/namespaces/shop/replicasets"
                        && r.query.contains("labelSelector"))
            );
        } else {
            // Helm 4 watches each kind.
            assert!(
                requests
                    .iter()
                    .any(|r| r.path == "/apis/apps/v1/namespaces/shop/statefulsets"
                        && r.query.contains("watch=true"))
            );
        }

        let marked = Instant::now();
        let mut names = api.mark_all_ready("shop");
        names.sort();
        assert_eq!(
            names,
            [
                "Deployment/api",
                "Deployment/worker",
                "StatefulSet/postgres",
                "StatefulSet/search"
            ]
        );
        let out = child.wait_with_output().unwrap();
        assert_success(helm.name, UPGRADE, &out);
        eprintln!(
            "{}: done {:?} after the workloads were marked ready",
            helm.name,
            marked.elapsed()
        );
        assert_eq!(
            release_secrets(api),
            [(
                "sh.helm.release.v1.shop.v1".to_string(),
                "deployed".to_string()
            )]
        );
    });
}

#[test]
fn helm_wait_times_out_on_a_workload_that_never_becomes_ready() {
    each_helm(false, |helm, api| {
        let mut args = UPGRADE.to_vec();
        let timeout = args.iter().position(|a| *a == "60s").unwrap();
        args[timeout] = "3s";
        let out = helm.command(&args).output().unwrap();
        assert!(
            !out.status.success(),
            "{} succeeded with nothing ready",
            helm.name
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("context deadline exceeded") || stderr.contains("not ready"),
            "{}: {stderr}",
            helm.name
        );
        assert_eq!(
            release_secrets(api),
            [(
                "sh.helm.release.v1.shop.v1".to_string(),
                "failed".to_string()
            )]
        );
    });
}

#[test]
fn a_loopback_endpoint_is_refused_as_every_server_since_1_21_refuses_it() {
    let api = ApiServer::start();
    let slice = |ip: &str| {
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("db-{}", ip.replace('.', "-")), "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip]}],
            "ports": [{"name": "tcp-5432", "port": 5432, "protocol": "TCP"}],
        })
        .to_string()
    };
    let path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
    let refused = api.http("POST", path, Some("application/json"), &slice("127.0.0.1"));
    assert_eq!(refused.status, 422);
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("may not be in the loopback range"),
        "{:?}",
        refused.json()
    );
    let accepted = api.http("POST", path, Some("application/json"), &slice("172.17.0.1"));
    assert_eq!(accepted.status, 201);
}
