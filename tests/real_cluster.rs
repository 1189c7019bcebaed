//! devenv against a real Kubernetes control plane (`support::controlplane`: kube-apiserver,
//! kube-controller-manager and kube-scheduler v1.20.2 with etcd) and the kubelet stand-in
//! (`support::kubelet`): the release installed by the real helm 3 and helm 4, the rollout watched
//! while the real controllers create ReplicaSets and pods and the scheduler binds them, requests
//! counted from the server's own audit log, and a namespace's real termination.
//!
//! Version skew: devenv targets the Kubernetes minikube starts (1.31+). What 1.20 cannot show stays
//! on the API double (`support::apiserver`): EndpointSlice `discovery.k8s.io/v1` (the offload
//! bridge), port-forward, exec and logs (a kubelet serves them), and the 1.21+ refusal of loopback
//! addresses in Endpoints and EndpointSlices. The offload round trip's hand-over of the bridge's
//! Service to the release runs here on its own (the real helm 3 and 4 adopt it; the fields move
//! between field managers as the conformance test checks) and whole on the double.

mod support;

use std::time::Instant;

use support::controlplane::ControlPlane;

/// What devenv and helm send, by their User-Agents.
const OURS: &[&str] = &["devenv/", "Helm/"];

fn up_succeeds(env: &support::Env, round: &str) -> String {
    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{round}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn cold_up_rolls_out_and_a_no_op_up_sends_no_mutating_request(helm: &str) {
    let _one = ControlPlane::exclusive();
    let Some((env, plane, _node)) = support::real_cluster_env(helm) else {
        return;
    };
    let mark = plane.audit_mark();
    let started = Instant::now();
    let stdout = up_succeeds(&env, "cold up");
    assert!(stdout.contains("rollout: "), "{stdout}");
    eprintln!(
        "{helm}: cold up on the real control plane in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The release is there, rolled out by the real controllers.
    assert_eq!(plane.namespace_phase("shop").as_deref(), Some("Active"));
    let agents = plane.agents_since(mark);
    assert!(
        agents.iter().any(|a| a.starts_with("devenv/")),
        "devenv names itself in the audit log: {agents:?}"
    );
    assert!(
        !plane.mutations_since(mark, OURS).is_empty(),
        "the cold up's writes are counted: {agents:?}"
    );

    // status reads the release and the workloads the real controllers rolled out.
    let out = env.devenv().args(["--json", "status"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["release"]["status"], "deployed", "{v}");
    let workloads = v["workloads"].as_array().unwrap();
    assert_eq!(workloads.len(), 4, "{v}");
    for w in workloads {
        assert_eq!(w["ready"], w["desired"], "{w}");
    }

    let mark = plane.audit_mark();
    let stdout = up_succeeds(&env, "no-op up");
    let writes = plane.mutations_since(mark, OURS);
    eprintln!(
        "{helm}: no-op up sent {} mutating requests (audit log)",
        writes.len()
    );
    assert!(writes.is_empty(), "{writes:#?}\n{stdout}");

    // A changed value: the release is upgraded and the new ReplicaSet rolled out for real.
    let values = env.project.join("deploy/values-dev.yaml");
    let text = std::fs::read_to_string(&values).unwrap();
    std::fs::write(
        &values,
        text.replace("api:\n  replicas: 1", "api:\n  replicas: 2"),
    )
    .unwrap();
    let stdout = up_succeeds(&env, "up with api.replicas=2");
    assert!(stdout.contains("rollout: "), "{stdout}");
    let out = env.devenv().args(["--json", "status"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["release"]["revision"], 2, "{v}");
    let api = v["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"].as_str().is_some_and(|n| n.ends_with("api")))
        .unwrap_or_else(|| panic!("api in {v}"))
        .clone();
    assert_eq!(
        (api["ready"].clone(), api["desired"].clone()),
        (2.into(), 2.into()),
        "{v}"
    );

    // down --purge uninstalls the release (and deletes the VM, which holds the namespace).
    let (code, text) = run(&env, &["down", "--purge", "--yes"]);
    assert_eq!(code, Some(0), "{text}");
    let helm_release = support::docker::block_on(async {
        let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(plane.client().await, "shop");
        api.list(&kube::api::ListParams::default().labels("owner=helm,name=shop"))
            .await
            .unwrap()
            .items
            .len()
    });
    assert_eq!(helm_release, 0, "the release was uninstalled");
}

#[test]
fn cold_up_rolls_out_on_a_real_api_server_with_helm_3_and_a_no_op_up_writes_nothing() {
    cold_up_rolls_out_and_a_no_op_up_sends_no_mutating_request("helm3");
}

#[test]
fn cold_up_rolls_out_on_a_real_api_server_with_helm_4_and_a_no_op_up_writes_nothing() {
    cold_up_rolls_out_and_a_no_op_up_sends_no_mutating_request("helm4");
}

/// The bridge's Service, handed over as `offload --local` hands it (`hand_to_helm`), is adopted
/// by the real `helm` on the real server: the same object (uid and address kept), now with the
/// chart's selector and ports, and with Helm 4's server-side apply no conflict over the fields
/// devenv wrote. (The bridge's EndpointSlice is `discovery.k8s.io/v1`, which 1.20 does not
/// serve: the whole round trip runs on the double in `tests/offload.rs`.)
fn the_release_adopts_the_handed_over_bridge_service(helm: &str) {
    use k8s_openapi::api::core::v1::{Namespace, Service};
    use kube::api::{Api, Patch, PatchParams, PostParams};
    use serde_json::json;
    let _one = ControlPlane::exclusive();
    let Some((env, plane, _node)) = support::real_cluster_env(helm) else {
        return;
    };
    let spec = devenv::offload::bridge::BridgeSpec {
        context: "devenv-shop",
        namespace: "shop",
        service: "postgres",
        host: "postgres",
    };
    let bridge = support::docker::block_on(async {
        let client = plane.client().await;
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        // The bridge as `BridgeSpec::apply` writes it: selector-less, devenv's field manager.
        let services: Api<Service> = Api::namespaced(client.clone(), "shop");
        let bridge = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "postgres", "namespace": "shop", "labels": {
                "app.kubernetes.io/managed-by": "devenv", "devenv.dev/offload": "postgres"}},
            "spec": {"ports": [{"name": "postgres", "port": 5432, "targetPort": 31000, "protocol": "TCP"}]}});
        let bridge = services
            .patch(
                "postgres",
                &PatchParams::apply("devenv").force(),
                &Patch::Apply(&bridge),
            )
            .await
            .unwrap();
        assert!(spec.hand_to_helm(client.clone(), "shop").await.unwrap());
        assert!(
            !spec.hand_to_helm(client, "shop").await.unwrap(),
            "a second hand-over changes nothing"
        );
        bridge
    });
    let kubeconfig = plane.kubeconfig(env.home.path(), "devenv-shop");
    let out = std::process::Command::new(env.home.path().join("helm-bin/helm"))
        .args(["upgrade", "--install", "shop"])
        .arg(env.project.join("deploy/chart"))
        .args([
            "--namespace",
            "shop",
            "--kube-context",
            "devenv-shop",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{helm} adopts the handed-over Service:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svc = support::docker::block_on(async {
        Api::<Service>::namespaced(plane.client().await, "shop")
            .get("postgres")
            .await
            .unwrap()
    });
    assert_eq!(svc.metadata.uid, bridge.metadata.uid, "the same object");
    let (got, was) = (svc.spec.unwrap(), bridge.spec.unwrap());
    assert_eq!(got.cluster_ip, was.cluster_ip, "the same address");
    assert!(
        got.selector.is_some_and(|s| !s.is_empty()),
        "the chart's selector"
    );
    let port = &got.ports.unwrap()[0];
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("postgres".into())),
        "the chart's target port"
    );
    let labels = svc.metadata.labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
    assert_eq!(
        labels["devenv.dev/offload"], "postgres",
        "devenv's hand-over mark stays until the local copy is rolled out"
    );
    plane.forget_namespace("shop");
}

#[test]
fn helm_3_on_a_real_api_server_adopts_the_handed_over_bridge_service() {
    the_release_adopts_the_handed_over_bridge_service("helm3");
}

#[test]
fn helm_4_on_a_real_api_server_adopts_the_handed_over_bridge_service() {
    the_release_adopts_the_handed_over_bridge_service("helm4");
}

#[test]
fn a_crash_looping_pod_on_the_real_server_stops_the_rollout_with_its_events() {
    let _one = ControlPlane::exclusive();
    let Some((env, _plane, node)) = support::real_cluster_env("helm3") else {
        return;
    };
    let _healed = node.crash("worker-");
    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("error at 'rollout'"), "{stderr}");
    assert!(
        stderr.contains("cannot start: CrashLoopBackOff"),
        "{stderr}"
    );
    assert!(
        stdout.contains("Back-off restarting failed container"),
        "the pod's events: {stdout}"
    );
    // A real server proxies logs to the node's kubelet, which is not there: the report says
    // why its log lines are missing, and no library log line reaches the output.
    assert!(
        stdout.contains("its last log lines:\n  (could not read them: the Kubernetes API "),
        "{stdout}"
    );
    assert!(
        !stdout.contains("ERROR") && !stderr.contains("ERROR"),
        "{stdout}\n{stderr}"
    );

    // top counts the restarts the node reports, read through the real API server.
    let out = env
        .devenv()
        .args(["--json", "top", "--once"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let sample: serde_json::Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    let restarts = |service: &str| {
        sample["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == service)
            .unwrap_or_else(|| panic!("{service} in {sample}"))["restarts"]
            .as_u64()
            .unwrap_or_else(|| panic!("restarts of {service} in {sample}"))
    };
    assert!(restarts("worker") >= 1, "{sample}");
    assert_eq!(restarts("api"), 0, "{sample}");
}

/// The example with the API double as the local cluster (1.20 serves no EndpointSlice v1 for
/// the bridge) and the real control plane as the shared dev cluster `dev-cluster`, with
/// `connect = "direct"`.
fn remote_on_real_server() -> Option<(
    support::Env,
    support::apiserver::ApiServer,
    &'static ControlPlane,
    std::sync::MutexGuard<'static, ()>,
)> {
    let one = ControlPlane::exclusive();
    let (env, local) = support::cluster_env_with("helm3")?;
    let (_, plane, _node) = support::real_cluster_env("helm3")?;
    plane.forget_namespace("devenv-ann-shop");
    let kube = env.home.path().join("kube");
    std::fs::create_dir_all(&kube).unwrap();
    let files = [
        local.kubeconfig(&kube),
        plane.kubeconfig(&kube, "dev-cluster"),
    ];
    let env = env.with_env("KUBECONFIG", std::env::join_paths(files).unwrap());
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    env.write(
        "devenv.toml",
        &toml.replace("connect = \"tunnel\"", "connect = \"direct\""),
    );
    Some((env, local, plane, one))
}

fn run(env: &support::Env, args: &[&str]) -> (Option<i32>, String) {
    let out = env.devenv().args(args).output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn down_purge_returns_once_the_remote_namespace_is_really_gone_and_offload_waits_for_a_terminating_one()
 {
    let Some((env, _local, plane, _one)) = remote_on_real_server() else {
        return;
    };
    // The remote side (namespace, the subchart's release) is made on the real server; the
    // bridge then stops (the subchart's Service is a ClusterIP, not routable from a laptop).
    let (_, text) = run(&env, &["offload", "postgres", "--remote"]);
    assert_eq!(
        plane.namespace_phase("devenv-ann-shop").as_deref(),
        Some("Active"),
        "{text}"
    );

    let started = Instant::now();
    let (code, text) = run(&env, &["down", "--purge", "--yes"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        plane.namespace_phase("devenv-ann-shop"),
        None,
        "down --purge returned while the namespace was still there: {text}"
    );
    eprintln!(
        "down --purge with the remote namespace's real termination: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // A namespace deleted by someone a moment ago: offload waits for it, then makes it again.
    let (_, text) = run(&env, &["offload", "postgres", "--remote"]);
    assert_eq!(
        plane.namespace_phase("devenv-ann-shop").as_deref(),
        Some("Active"),
        "{text}"
    );
    support::docker::block_on(async {
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(plane.client().await);
        api.delete("devenv-ann-shop", &Default::default())
            .await
            .unwrap();
    });
    assert_eq!(
        plane.namespace_phase("devenv-ann-shop").as_deref(),
        Some("Terminating")
    );
    let (_, text) = run(&env, &["offload", "postgres", "--remote"]);
    assert!(
        !text.contains("because it is being terminated"),
        "offload ran into the terminating namespace: {text}"
    );
    assert!(text.contains("is still terminating: waiting"), "{text}");
    assert_eq!(
        plane.namespace_phase("devenv-ann-shop").as_deref(),
        Some("Active"),
        "{text}"
    );
    plane.forget_namespace("devenv-ann-shop");
}

/// One raw request through a kube client: the status code and the JSON body (`null` when the
/// body is not JSON).
async fn exchange(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .body(kube::client::Body::from(
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        ))
        .unwrap();
    let response = client.send(request).await.expect("an answer");
    let code = response.status().as_u16();
    let bytes = response.into_body().collect_bytes().await.unwrap();
    (
        code,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// What both servers answered to one request, reduced to what devenv reads.
#[derive(Debug, PartialEq)]
struct Answer {
    code: u16,
    reason: String,
    phase: String,
    details_kind: String,
    /// A Service's ports as `name:port->targetPort`, and its selector.
    ports: String,
}

impl Answer {
    fn of((code, body): (u16, serde_json::Value)) -> Answer {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
        Answer {
            code,
            reason: text(&body["reason"]),
            phase: text(&body["status"]["phase"]),
            details_kind: text(&body["details"]["kind"]),
            ports: match body["spec"]["ports"].as_array() {
                Some(ports) => format!(
                    "{} selector {}",
                    ports
                        .iter()
                        .map(|p| format!("{}:{}->{}", text(&p["name"]), p["port"], p["targetPort"]))
                        .collect::<Vec<_>>()
                        .join(","),
                    body["spec"]["selector"]
                ),
                None => String::new(),
            },
        }
    }
}

/// The requests whose answers devenv depends on, in order, to one server.
async fn conformance_answers(client: &kube::Client, ns: &str) -> Vec<(String, Answer)> {
    use serde_json::json;
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    let config_map = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}});
    let bad_service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad"},
        "spec": {"ports": [{"port": 0, "protocol": "TCP"}]}});
    let ns_path = format!("/api/v1/namespaces/{ns}");
    let cm_path = format!("/api/v1/namespaces/{ns}/configmaps");
    // A bridge Service as devenv applies it, handed to Helm: Helm's apply of other values
    // conflicts while devenv owns them; Helm (forced) takes over the same values, devenv stops
    // sending them, and they stay; Helm's next apply then changes them without a conflict.
    let svc_path = format!("/api/v1/namespaces/{ns}/services/postgres");
    let service = |labels: serde_json::Value, spec: serde_json::Value| {
        let mut s = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "postgres", "labels": labels}});
        if !spec.is_null() {
            s["spec"] = spec;
        }
        Some(s)
    };
    let bridge_ports = json!({"ports": [{"name": "tcp-5432", "port": 5432, "targetPort": 31000, "protocol": "TCP"}]});
    let chart_spec = json!({"selector": {"app": "postgres"},
        "ports": [{"name": "tcp-postgresql", "port": 5432, "targetPort": "tcp-postgresql", "protocol": "TCP"}]});
    let devenv =
        json!({"app.kubernetes.io/managed-by": "devenv", "devenv.dev/offload": "postgres"});
    let helm = json!({"app.kubernetes.io/managed-by": "Helm"});
    const JSON: &str = "application/json";
    const APPLY: &str = "application/apply-patch+yaml";
    let steps: Vec<(&str, String, &str, Option<serde_json::Value>)> = vec![
        (
            "POST",
            "/api/v1/namespaces".into(),
            JSON,
            Some(namespace.clone()),
        ),
        ("POST", "/api/v1/namespaces".into(), JSON, Some(namespace)),
        (
            "GET",
            format!("/apis/devenv.example/v1/namespaces/{ns}/widgets"),
            JSON,
            None,
        ),
        (
            "GET",
            format!("/api/v1/namespaces/{ns}/widgets"),
            JSON,
            None,
        ),
        (
            "POST",
            format!("/api/v1/namespaces/{ns}/services"),
            JSON,
            Some(bad_service),
        ),
        (
            "PATCH",
            format!("{svc_path}?fieldManager=devenv&force=true"),
            APPLY,
            service(devenv.clone(), bridge_ports.clone()),
        ),
        (
            "PATCH",
            format!("{svc_path}?fieldManager=helm&force=false"),
            APPLY,
            service(helm.clone(), chart_spec.clone()),
        ),
        (
            "PATCH",
            format!("{svc_path}?fieldManager=helm&force=true"),
            APPLY,
            service(helm.clone(), bridge_ports),
        ),
        (
            "PATCH",
            format!("{svc_path}?fieldManager=devenv&force=true"),
            APPLY,
            service(
                json!({"devenv.dev/offload": "postgres"}),
                serde_json::Value::Null,
            ),
        ),
        (
            "PATCH",
            format!("{svc_path}?fieldManager=helm&force=false"),
            APPLY,
            service(helm, chart_spec),
        ),
        ("POST", cm_path.clone(), JSON, Some(config_map("one"))),
        ("GET", format!("{cm_path}/missing"), JSON, None),
        ("DELETE", ns_path.clone(), JSON, None),
        ("GET", ns_path.clone(), JSON, None),
        ("POST", cm_path.clone(), JSON, Some(config_map("two"))),
    ];
    let mut answers = Vec::new();
    for (method, path, content_type, body) in steps {
        let answer = Answer::of(exchange(client, method, &path, content_type, body).await);
        answers.push((format!("{method} {path}"), answer));
    }
    // The namespace goes once the namespace controller has emptied it.
    let started = Instant::now();
    loop {
        let (code, _) = exchange(client, "GET", &ns_path, "application/json", None).await;
        if code == 404 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "namespace {ns} never went"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    answers
}

#[test]
fn the_api_double_answers_what_devenv_reads_as_the_real_server_does() {
    let _one = ControlPlane::exclusive();
    let Some(plane) = ControlPlane::shared() else {
        return;
    };
    let double = support::apiserver::ApiServer::start_as("double");
    let dir = tempfile::tempdir().unwrap();
    let double_config = double.kubeconfig(dir.path());
    support::docker::block_on(async {
        let real = plane.client().await;
        let kc = kube::config::Kubeconfig::read_from(&double_config).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let fake = kube::Client::try_from(config).unwrap();
        let from_real = conformance_answers(&real, "devenv-conformance").await;
        let from_double = conformance_answers(&fake, "devenv-conformance").await;
        for ((request, real), (_, double)) in from_real.iter().zip(&from_double) {
            eprintln!("{request}: real {real:?}");
            assert_eq!(
                double, real,
                "{request}: the double differs from the real server"
            );
        }
    });
}

#[test]
fn requires_kubernetes_is_checked_against_the_real_servers_version() {
    let Some((env, _local, _plane, _one)) = remote_on_real_server() else {
        return;
    };
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    let toml = toml.replacen("offload = \"local\"", "offload = \"remote\"", 1);
    env.write(
        "devenv.toml",
        &format!("{toml}\n[requires]\nkubernetes = \">=1.27\"\n"),
    );
    // doctor asks through kubectl.
    let check = version_check(&env);
    assert_eq!(check["state"], "fail", "{check}");
    assert_eq!(
        check["reason"],
        "the shared cluster runs Kubernetes 1.20.2, and devenv.toml's [requires] kubernetes is \">=1.27\""
    );
    // up asks through its own client, before anything is sent there.
    let (code, plan) = env.json_dry_run();
    assert_eq!(code, Some(1), "{plan}");
    let stop = plan["would_stop"][0]["error"].as_str().unwrap_or_default();
    assert!(
        stop.starts_with("the shared cluster runs Kubernetes 1.20.2"),
        "{plan}"
    );

    env.write(
        "devenv.toml",
        &format!("{toml}\n[requires]\nkubernetes = \"~1.20\"\n"),
    );
    assert_eq!(version_check(&env)["state"], "ok");
}

/// doctor's `remote.version` check.
fn version_check(env: &support::Env) -> serde_json::Value {
    let out = env.devenv().args(["--json", "doctor"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "remote.version")
        .cloned()
        .unwrap_or_else(|| panic!("no remote.version: {v}"))
}

/// `[remote.quota]` as devenv writes it, admitted by the real server: the LimitRange fills in
/// the requests of a container that has none (the LimitRanger plugin), the quota refuses a pod
/// beyond it (the ResourceQuota plugin), a second pass writes nothing although the server
/// stores `0.5` as `500m`, and both go when the keys do.
#[test]
fn remote_quota_is_enforced_by_the_real_servers_admission() {
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::api::{Api, DeleteParams, PostParams};
    use serde_json::json;
    let _one = ControlPlane::exclusive();
    let Some(plane) = ControlPlane::shared() else {
        return;
    };
    let ns = "devenv-quota-test";
    plane.forget_namespace(ns);
    let quota = devenv::config::Quota {
        cpu: Some("0.5".into()),
        memory: Some("256Mi".into()),
        pods: Some(3),
    };
    support::docker::block_on(async {
        let client = plane.client().await;
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        let ensure = |q: Option<devenv::config::Quota>| {
            let client = client.clone();
            async move { devenv::offload::quota::ensure(client, "real", ns, q.as_ref()).await }
        };
        let wrote = ensure(Some(quota.clone())).await.unwrap();
        assert_eq!(wrote.len(), 2, "{wrote:?}");
        assert_eq!(
            ensure(Some(quota.clone())).await.unwrap(),
            Vec::<String>::new(),
            "unchanged: nothing written"
        );

        // The quota binds once the resource-quota controller has counted the namespace (its
        // status), and pods are admitted once the service-account controller has made the
        // namespace's `default` account: each a moment after it is written.
        let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> =
            Api::namespaced(client.clone(), ns);
        let counted = std::time::Instant::now();
        while quotas
            .get("devenv-quota")
            .await
            .unwrap()
            .status
            .and_then(|s| s.hard)
            .is_none()
        {
            assert!(
                counted.elapsed().as_secs() < 30,
                "the quota was never counted"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), ns);
        while accounts.get_opt("default").await.unwrap().is_none() {
            assert!(
                counted.elapsed().as_secs() < 30,
                "no default service account"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let pod = |name: &str, cpu: Option<&str>| -> Pod {
            let resources = match cpu {
                Some(cpu) => json!({"requests": {"cpu": cpu, "memory": "64Mi"}}),
                None => json!({}),
            };
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}]}
            }))
            .unwrap()
        };
        let admitted = pods
            .create(&PostParams::default(), &pod("plain", None))
            .await
            .unwrap();
        let requests = admitted.spec.unwrap().containers[0]
            .resources
            .clone()
            .unwrap()
            .requests
            .unwrap();
        assert_eq!(requests["cpu"].0, "100m");
        assert_eq!(requests["memory"].0, "128Mi");
        let refused = pods
            .create(&PostParams::default(), &pod("greedy", Some("1")))
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("exceeded quota"), "{refused}");

        let gone = ensure(None).await.unwrap();
        assert_eq!(gone.len(), 2, "{gone:?}");
        pods.delete("plain", &DeleteParams::default()).await.ok();
    });
    plane.forget_namespace(ns);
}

/// The YAML blocks of docs/platform.md that define the roles.
fn platform_rbac_yaml() -> Vec<String> {
    let doc = include_str!("../docs/platform.md");
    doc.split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .filter(|block| block.contains("kind: ClusterRole\n"))
        .map(str::to_string)
        .collect()
}

/// `kubectl apply` as the admin.
fn apply_as_admin(plane: &ControlPlane, dir: &std::path::Path, yaml: &str) {
    let kubectl = support::real_tool("kubectl").expect("kubectl");
    let file = dir.join("apply.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = std::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(plane.kubeconfig(dir, "admin"))
        .args(["apply", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{yaml}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_roles_of_docs_platform_md_are_enough_for_a_developer_and_for_gc_on_a_real_rbac_server() {
    use support::controlplane::{DEVELOPER_TOKEN, GC_TOKEN};
    let _one = ControlPlane::exclusive();
    let Some((env, local)) = support::cluster_env_with("helm3") else {
        return;
    };
    let Some((_, plane, _node)) = support::real_cluster_env("helm3") else {
        return;
    };
    plane.forget_namespace("devenv-ann-shop");
    let kube = env.home.path().join("kube");
    std::fs::create_dir_all(&kube).unwrap();
    apply_as_admin(
        plane,
        &kube,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: platform}\n",
    );
    let blocks = platform_rbac_yaml();
    assert_eq!(blocks.len(), 2, "the developer's and gc's roles");
    for block in &blocks {
        apply_as_admin(plane, &kube, block);
    }
    // The docs bind gc's role to a service account; the test's gc-bot is a user in a group.
    apply_as_admin(
        plane,
        &kube,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: devenv-gc-test}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: devenv-gc}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: devenv-gc}\n",
    );
    let developer = kube.join("dev-cluster.kubeconfig");
    std::fs::write(
        &developer,
        plane.kubeconfig_as("dev-cluster", DEVELOPER_TOKEN),
    )
    .unwrap();
    let gc = kube.join("gc.kubeconfig");
    std::fs::write(&gc, plane.kubeconfig_as("gc", GC_TOKEN)).unwrap();
    let files = [local.kubeconfig(&kube), developer, gc];
    let env = env.with_env("KUBECONFIG", std::env::join_paths(files).unwrap());
    env.edit_config(|toml| {
        format!(
            "{}\n[remote.quota]\ncpu = \"4\"\nmemory = \"4Gi\"\npods = 10\n",
            toml.replace("connect = \"tunnel\"", "connect = \"direct\"")
        )
    });

    // As ann, with only devenv-developer: the namespace, the release and the quota.
    let (_, text) = run(&env, &["offload", "postgres", "--remote"]);
    assert!(!text.contains("forbidden"), "{text}");
    assert_eq!(
        plane.namespace_phase("devenv-ann-shop").as_deref(),
        Some("Active"),
        "{text}"
    );
    let (code, text) = run(&env, &["--json", "remote", "list"]);
    assert_eq!(code, Some(0), "{text}");
    let listed: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        listed["namespaces"][0]["namespace"], "devenv-ann-shop",
        "{listed}"
    );
    assert_eq!(
        listed["namespaces"][0]["services"],
        serde_json::json!(["postgres"]),
        "{listed}"
    );

    // As gc-bot, with only devenv-gc: an idle namespace goes; creating one is refused.
    support::docker::block_on(async {
        use k8s_openapi::api::core::v1::Namespace;
        use kube::api::{Api, Patch, PatchParams, PostParams};
        let api: Api<Namespace> = Api::all(plane.client().await);
        let old = serde_json::json!({"metadata": {"annotations": {"devenv.dev/last-used": "2026-01-01T00:00:00Z"}}});
        api.patch(
            "devenv-ann-shop",
            &PatchParams::default(),
            &Patch::Merge(&old),
        )
        .await
        .unwrap();
        let kc = kube::config::Kubeconfig::from_yaml(&plane.kubeconfig_as("gc", GC_TOKEN)).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let as_gc: Api<Namespace> = Api::all(kube::Client::try_from(config).unwrap());
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "gc-may-not"}}))
                .unwrap();
        let refused = as_gc.create(&PostParams::default(), &ns).await.unwrap_err();
        assert!(refused.to_string().contains("forbidden"), "{refused}");
    });
    let (code, text) = run(
        &env,
        &["remote", "gc", "--idle", "14d", "--yes", "--context", "gc"],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("deleted devenv-ann-shop"), "{text}");
    plane.forget_namespace("devenv-ann-shop");
}
