//! `devenv offload` on two API server doubles (the local minikube cluster `devenv-shop` and the
//! shared dev cluster `dev-cluster`) with the real helm: the listing and its savings, a service
//! moved to the remote cluster behind a bridge with the same DNS name and brought back, and the
//! refusals (unknown service, tunnel mode, a Service devenv did not make, a missing context).

mod support;

use serde_json::{Value, json};
use support::Env;
use support::apiserver::ApiServer;

/// The example project with `connect = "direct"`, the local and the remote cluster doubles
/// (workloads ready as soon as they are written) and one kubeconfig list holding both contexts.
fn offload_env() -> Option<(Env, ApiServer, ApiServer)> {
    offload_env_with(true)
}

fn offload_env_with(remote_context: bool) -> Option<(Env, ApiServer, ApiServer)> {
    let helm = support::real_tool("helm")?;
    let local = ApiServer::start_as("devenv-shop").auto_ready();
    let remote = ApiServer::start_as("dev-cluster").auto_ready();
    let env = Env::new();
    let kube = env.home.path().join("kube");
    // The minikube double rewrites the first file on start; the remote context stays in its own.
    let mut files = vec![local.kubeconfig(&kube)];
    if remote_context {
        files.push(remote.kubeconfig(&kube));
    }
    let bin = env.home.path().join("helm-bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(&helm, bin.join("helm")).unwrap();
    let env = env
        .kvm_host()
        .prepend_path(&bin)
        .with_env("FAKE_MINIKUBE_APISERVER", local.url())
        .with_env("KUBECONFIG", std::env::join_paths(files).unwrap());
    env.example();
    set_connect(&env, "direct");
    Some((env, local, remote))
}

fn set_connect(env: &Env, mode: &str) {
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    let toml = toml
        .replace("connect = \"tunnel\"", &format!("connect = \"{mode}\""))
        .replace("connect = \"direct\"", &format!("connect = \"{mode}\""));
    env.write("devenv.toml", &toml);
}

fn output(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let out = env.devenv().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn labels(obj: &Value) -> &Value {
    &obj["metadata"]["labels"]
}

#[test]
fn postgres_moves_to_the_remote_cluster_behind_a_bridge_and_comes_back() {
    let Some((env, local, remote)) = offload_env() else {
        return;
    };
    // The remote copy's routable address: a node at 127.0.0.1 and a NodePort this test listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let node_port = listener.local_addr().unwrap().port();
    remote.create(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "dev-node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}
    }));

    // The team's values for the subchart reach the remote release too.
    let values = env.project.join("deploy/values-dev.yaml");
    let text = std::fs::read_to_string(&values).unwrap();
    std::fs::write(
        &values,
        format!("{text}\npostgresql:\n  database: orders\n"),
    )
    .unwrap();

    // The subchart's Service is a ClusterIP: nothing routable, said clearly, nothing bridged.
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("error at 'bridge:postgres'"), "{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("type ClusterIP"),
        "{stdout}\n{stderr}"
    );
    assert!(local.get("services", "shop", "postgres").is_none());

    let ns = remote
        .get("namespaces", "", "devenv-ann-shop")
        .expect("namespace");
    assert_eq!(labels(&ns)["app.kubernetes.io/managed-by"], "devenv");
    assert_eq!(labels(&ns)["devenv.dev/owner"], "ann");
    assert_eq!(labels(&ns)["devenv.dev/project"], "shop");
    let release = remote.list_selected(
        "secrets",
        Some("devenv-ann-shop"),
        "owner=helm,name=postgres",
    );
    assert_eq!(release.len(), 1, "the subchart is its own release");
    assert_eq!(
        remote.names("statefulsets", "devenv-ann-shop"),
        ["postgres"]
    );
    let sts = remote
        .get("statefulsets", "devenv-ann-shop", "postgres")
        .unwrap();
    let env_vars = &sts["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env_vars[0]["name"], "POSTGRES_DB");
    assert_eq!(env_vars[0]["value"], "orders", "{env_vars}");

    // The platform exposes it as a NodePort; the next up bridges it and installs the release.
    let patch = json!({"spec": {"type": "NodePort", "ports": [{
        "name": "postgres", "port": 5432, "targetPort": "postgres", "protocol": "TCP",
        "nodePort": node_port
    }]}});
    let answer = remote.http(
        "PATCH",
        "/api/v1/namespaces/devenv-ann-shop/services/postgres",
        Some("application/merge-patch+json"),
        &patch.to_string(),
    );
    assert_eq!(answer.status, 200);
    let (code, stdout, stderr) = output(&env, &["up"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("postgres     remote"), "{stdout}");

    assert!(
        !local
            .names("statefulsets", "shop")
            .contains(&"postgres".to_string()),
        "the local subchart is disabled"
    );
    assert_eq!(local.names("deployments", "shop"), ["api", "worker"]);
    let svc = local
        .get("services", "shop", "postgres")
        .expect("bridge Service");
    assert_eq!(labels(&svc)["app.kubernetes.io/managed-by"], "devenv");
    assert!(svc["spec"]["selector"].is_null(), "selector-less: {svc}");
    assert_eq!(svc["spec"]["ports"][0]["port"], 5432);
    let slice = local
        .get("endpointslices", "shop", "postgres")
        .expect("bridge EndpointSlice");
    assert_eq!(labels(&slice)["kubernetes.io/service-name"], "postgres");
    assert_eq!(labels(&slice)["app.kubernetes.io/managed-by"], "devenv");
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(slice["endpoints"][0]["addresses"][0], "127.0.0.1");
    assert_eq!(slice["ports"][0]["port"], node_port);
    assert_eq!(slice["ports"][0]["name"], svc["spec"]["ports"][0]["name"]);

    // Nothing changed: a second up only reads and verifies, on both clusters.
    remote.clear_requests();
    let (code, stdout, stderr) = output(&env, &["up"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("(0 stages changed something)"), "{stdout}");
    assert!(
        remote.requests().iter().all(|r| r.is_read_only()),
        "{:?}",
        remote.requests()
    );

    // The listing shows the user's choice.
    let (_, stdout, _) = output(&env, &["offload"]);
    assert!(stdout.contains("postgres     remote   local"), "{stdout}");
    assert!(stdout.contains("(your choice)"), "{stdout}");

    // Back to the laptop: bridge gone, subchart back, remote release uninstalled, data kept.
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--local"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        local.get("endpointslices", "shop", "postgres").is_none(),
        "the bridge EndpointSlice is deleted"
    );
    let svc = local
        .get("services", "shop", "postgres")
        .expect("chart's Service");
    assert_eq!(labels(&svc)["app.kubernetes.io/managed-by"], "Helm");
    assert!(!svc["spec"]["selector"].is_null());
    assert!(
        local
            .names("statefulsets", "shop")
            .contains(&"postgres".to_string())
    );
    assert!(
        remote
            .list_selected(
                "secrets",
                Some("devenv-ann-shop"),
                "owner=helm,name=postgres"
            )
            .is_empty(),
        "the remote release is uninstalled"
    );
    assert!(
        remote.get("namespaces", "", "devenv-ann-shop").is_some(),
        "the data is kept"
    );

    // --purge removes the user's remote namespace once nothing of the project runs there.
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--local", "--purge"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("deleted namespace devenv-ann-shop"),
        "{stdout}"
    );
    assert!(remote.get("namespaces", "", "devenv-ann-shop").is_none());
    drop(listener);
}

#[test]
fn the_listing_shows_placements_defaults_and_what_the_laptop_saves() {
    let Some((env, _local, _remote)) = offload_env() else {
        return;
    };
    let (code, stdout, stderr) = output(&env, &["offload"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("postgres     local    local    250m CPU, 512Mi"),
        "{stdout}"
    );
    assert!(
        stdout.contains("search       local    local    500m CPU, 1Gi"),
        "{stdout}"
    );
    assert!(stdout.contains("api          local    local    - (not offloadable)"));
    assert!(stdout.contains("namespace devenv-ann-shop"), "{stdout}");

    let (code, stdout, _) = output(&env, &["offload", "search", "--remote", "--no-apply"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("`devenv up` applies it"), "{stdout}");

    let (code, stdout, _) = output(&env, &["--json", "offload"]);
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let by = |name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == name)
            .unwrap()
            .clone()
    };
    let pg = by("postgres");
    assert_eq!(pg["placement"], "local");
    assert_eq!(pg["saves"]["cpu_millis"], 250);
    assert_eq!(pg["saves"]["memory_bytes"], 512u64 << 20);
    let search = by("search");
    assert_eq!(search["placement"], "remote");
    assert_eq!(search["default"], "local");
    assert_eq!(search["overridden"], true);
    assert_eq!(by("api")["offloadable"], false);
    assert!(by("api")["saves"].is_null());

    // Choosing the team default again drops the override.
    output(&env, &["offload", "search", "--local", "--no-apply"]);
    let (_, stdout, _) = output(&env, &["--json", "offload"]);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|s| s["overridden"] == false)
    );
}

#[test]
fn an_unknown_service_is_refused_with_the_valid_ones() {
    let env = Env::new();
    env.example();
    let (code, _, stderr) = output(&env, &["offload", "redis", "--remote"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("redis is not a service"), "{stderr}");
    assert!(stderr.contains("postgres, search"), "{stderr}");
    let (code, _, stderr) = output(&env, &["offload", "api", "--remote"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn a_service_devenv_did_not_make_is_never_touched() {
    let Some((env, local, _remote)) = offload_env() else {
        return;
    };
    local.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    let foreign = local.create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "postgres", "namespace": "shop"},
        "spec": {"ports": [{"port": 5432}]}
    }));
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "Service postgres in namespace shop (context devenv-shop) exists but was not made by devenv"
        ),
        "{stderr}"
    );
    let after = local.get("services", "shop", "postgres").unwrap();
    assert_eq!(
        after["metadata"]["resourceVersion"],
        foreign["metadata"]["resourceVersion"]
    );
    assert!(local.get("endpointslices", "shop", "postgres").is_none());
}

#[test]
fn tunnel_mode_is_refused_in_preflight_pointing_at_direct() {
    let Some((env, _local, remote)) = offload_env() else {
        return;
    };
    set_connect(&env, "tunnel");
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("error at 'preflight'"), "{stderr}");
    assert!(
        stderr.contains("connect = \"tunnel\" in [remote] is not available"),
        "{stderr}"
    );
    assert!(stderr.contains("connect = \"direct\" is"), "{stderr}");
    assert!(remote.requests().iter().all(|r| r.is_read_only()));
}

#[test]
fn a_missing_remote_context_names_it_with_the_kubectl_command_and_the_way_back() {
    let Some((env, _local, _remote)) = offload_env_with(false) else {
        return;
    };
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("error at 'remote:postgres'"), "{stderr}");
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains("cannot use the remote cluster of kubeconfig context dev-cluster"),
        "{all}"
    );
    assert!(
        all.contains("kubectl --context dev-cluster get namespaces"),
        "{all}"
    );
    assert!(all.contains("devenv offload postgres --local"), "{all}");
}

#[test]
fn a_remote_release_that_never_gets_ready_stops_with_the_rollout_error() {
    let Some((env, _local, remote)) = offload_env() else {
        return;
    };
    remote.set_auto_ready(false);
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    env.write(
        "devenv.toml",
        &toml.replace(
            "values = [\"deploy/values-dev.yaml\"]",
            "values = [\"deploy/values-dev.yaml\"]\nrollout_timeout = \"2s\"",
        ),
    );
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("error at 'remote:postgres'"), "{stderr}");
    assert!(
        stderr.contains("not ready after 2s in namespace devenv-ann-shop: statefulset/postgres"),
        "{stderr}"
    );
}

#[test]
fn the_dry_run_shows_the_remote_and_bridge_stages_of_a_direct_offload() {
    let env = Env::new();
    env.example();
    set_connect(&env, "direct");
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    env.write(
        "devenv.toml",
        &toml.replacen(
            "port = 5432\noffload = \"local\"",
            "port = 5432\noffload = \"remote\"",
            1,
        ),
    );
    let (code, stdout, stderr) = output(&env, &["up", "--dry-run"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("namespace devenv-ann-shop on context dev-cluster exists"),
        "{stdout}"
    );
    assert!(
        stdout.contains("helm upgrade --install postgres"),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("Service postgres (ports 5432) and EndpointSlice postgres in namespace shop"),
        "{stdout}"
    );
    assert!(!stdout.contains("tunnel"), "{stdout}");
}
