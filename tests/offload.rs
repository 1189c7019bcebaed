//! `devenv offload` on two API server doubles (the local minikube cluster `devenv-shop` and the
//! shared dev cluster `dev-cluster`) with the real helm: the listing and its savings, a service
//! moved to the remote cluster behind a bridge with the same DNS name and brought back — reached
//! directly or through the tunnel, whose bytes are real PostgreSQL traffic — and the refusals
//! (unknown service, a Service devenv did not make, a missing context).

mod support;

use serde_json::{Value, json};
use support::Env;
use support::apiserver::ApiServer;
use support::offload::{
    expose_as_node_port, expose_remote_postgres, node_listener, offload_env, offload_env_with,
    output, set_connect,
};
use support::postgres::Postgres;

fn labels(obj: &Value) -> &Value {
    &obj["metadata"]["labels"]
}

#[test]
fn postgres_moves_to_the_remote_cluster_behind_a_bridge_and_comes_back() {
    let Some((env, local, remote)) = offload_env() else {
        return;
    };
    // The remote copy's routable address: a node at an address of this machine and a NodePort
    // this test listens on.
    let Some(listener) = node_listener() else {
        return;
    };
    let node_ip = listener.local_addr().unwrap().ip().to_string();
    let node_port = listener.local_addr().unwrap().port();
    remote.create(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "dev-node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": node_ip}]}
    }));

    // The team's values for the subchart reach the remote release too.
    let values = env.project.join("deploy/values-dev.yaml");
    let text = std::fs::read_to_string(&values).unwrap();
    std::fs::write(
        &values,
        format!("{text}\npostgresql:\n  database: orders\n"),
    )
    .unwrap();

    // The subchart's Service is a ClusterIP: nothing routable, said clearly, nothing bridged,
    // and the local release (which would turn the laptop's copy off) is not run.
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("error at 'reach:postgres'"), "{stderr}");
    assert!(
        stdout.contains("release: skipped: reach:postgres did not finish"),
        "{stdout}"
    );
    assert!(
        format!("{stdout}{stderr}").contains("type ClusterIP"),
        "{stdout}\n{stderr}"
    );
    assert!(
        local.get("services", "shop", "postgres").is_none(),
        "the local release waits for a remote copy that answers"
    );

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
    expose_as_node_port(&remote, node_port);
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
    assert_eq!(slice["endpoints"][0]["addresses"][0], node_ip.as_str());
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
    assert!(
        stdout.contains("postgres     remote   local    remote   yes        250m CPU, 512Mi"),
        "{stdout}"
    );
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
    let (code, stdout, stderr) = output(
        &env,
        &["offload", "postgres", "--local", "--purge", "--yes"],
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("deleted namespace devenv-ann-shop"),
        "{stdout}"
    );
    assert!(remote.get("namespaces", "", "devenv-ann-shop").is_none());
    drop(listener);
}

#[test]
fn a_toggle_stopped_before_its_bridge_is_undone_by_going_back_to_local() {
    let Some((env, local, remote)) = offload_env() else {
        return;
    };
    // The remote copy is installed, then found unreachable (a ClusterIP Service has no
    // routable address): the toggle stops halfway, with the laptop's copy still on.
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("error at 'reach:postgres'"), "{stderr}");
    assert!(
        stderr.contains("run `devenv up` again to continue"),
        "{stderr}"
    );
    let releases = || {
        remote.list_selected(
            "secrets",
            Some("devenv-ann-shop"),
            "owner=helm,name=postgres",
        )
    };
    assert_eq!(releases().len(), 1);
    let (_, stdout, _) = output(&env, &["offload"]);
    assert!(
        stdout.contains("postgres     remote   local    local    no "),
        "the listing shows the half-done toggle: {stdout}"
    );

    // Going back instead: the subchart runs locally again and the remote release, which never
    // got a bridge, is uninstalled all the same.
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--local"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        releases().is_empty(),
        "nothing is left on the remote cluster"
    );
    assert!(
        local
            .names("statefulsets", "shop")
            .contains(&"postgres".to_string())
    );
    let svc = local.get("services", "shop", "postgres").unwrap();
    assert_eq!(labels(&svc)["app.kubernetes.io/managed-by"], "Helm");
    // And a later up has nothing left to remove.
    remote.clear_requests();
    let (code, stdout, stderr) = output(&env, &["up"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(!stdout.contains("unbridge"), "{stdout}");
    assert!(remote.requests().is_empty(), "{:?}", remote.requests());
}

#[test]
fn the_listing_shows_placements_defaults_and_what_the_laptop_saves() {
    let Some((env, _local, _remote)) = offload_env() else {
        return;
    };
    let (code, stdout, stderr) = output(&env, &["offload"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("postgres     local    local    -        -          250m CPU, 512Mi"),
        "{stdout}"
    );
    assert!(
        stdout.contains("search       local    local    -        -          500m CPU, 1Gi"),
        "{stdout}"
    );
    assert!(
        stdout.contains("api          local    local    -        -          - (not offloadable)"),
        "{stdout}"
    );
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
    let Some((env, local, remote)) = offload_env() else {
        return;
    };
    local.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    let foreign = local.create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "postgres", "namespace": "shop"},
        "spec": {"ports": [{"port": 5432}]}
    }));
    // The remote copy is routable (a NodePort on a node this test listens for), so the toggle
    // goes as far as the bridge.
    let Some(listener) = node_listener() else {
        return;
    };
    expose_remote_postgres(&env, &remote, &listener);
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("error at 'bridge:postgres'"), "{stderr}");
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
fn a_missing_remote_context_names_it_with_the_kubectl_command_and_the_way_back() {
    let Some((env, _local, _remote)) = offload_env_with(false, "helm") else {
        return;
    };
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("no kubeconfig context dev-cluster (the remote cluster of [remote])"),
        "{stderr}"
    );
    assert!(
        stderr.contains("kubectl --context dev-cluster get namespaces"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert!(!stdout.contains("applying"), "{stdout}");
    // The choice was not recorded: postgres still runs on the laptop for this user.
    let (_, stdout, _) = output(&env, &["offload"]);
    assert!(
        stdout.contains("postgres     local    local    "),
        "{stdout}"
    );
}

#[test]
fn purging_the_remote_data_asks_first() {
    let Some((env, _local, remote)) = offload_env() else {
        return;
    };
    let (code, _, stderr) = output(&env, &["offload", "postgres", "--local", "--purge"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("delete your namespace devenv-ann-shop on dev-cluster with its releases, volumes and data"),
        "{stderr}"
    );
    assert!(stderr.contains("pass --yes"), "{stderr}");
    assert!(remote.requests().iter().all(|r| r.is_read_only()));
}

#[test]
fn a_remote_release_that_never_gets_ready_stops_with_the_rollout_error() {
    let Some((env, _local, remote)) = offload_env() else {
        return;
    };
    remote.set_auto_ready(false);
    env.rollout_timeout("2s");
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
    let env = Env::new().kvm_host();
    env.example();
    set_connect(&env, "direct");
    env.postgres_offloaded();
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

/// `devenv --json status`'s entry for `service` under "offloaded".
fn offload_status(env: &Env, service: &str) -> Value {
    let (code, stdout, stderr) = output(env, &["--json", "status"]);
    assert_eq!(code, Some(0), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    v["offloaded"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["service"] == service)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Poll `status` until `check` holds for the first forward of `service` (the supervisor
/// rewrites its status within a quarter second of a change; probes back off up to 5 s).
fn wait_forward(env: &Env, service: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let o = offload_status(env, service);
        let f = o["tunnel"][0].clone();
        if check(&f) {
            return f;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the tunnel never became {what}: {o}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn retry_psql(host: std::net::Ipv4Addr, port: u16, sql: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        match support::postgres::psql_at(&host.to_string(), port, sql) {
            Ok(out) => return out,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "psql through the tunnel kept failing: {e}"
                );
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
    }
}

#[test]
fn postgres_through_the_tunnel_carries_real_queries_and_survives_a_restart() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let Some((env, local, remote)) = offload_env() else {
        return;
    };
    set_connect(&env, "tunnel");
    // The VM's network is the /24 of an address of this machine that is its .1 (Docker's
    // bridge): the host address the VM sees is that one, the tunnel listens there, the bridge
    // points there (an address real clusters accept), and psql on this machine plays the pods
    // of the local cluster.
    let Some(host) = support::bridge_host_address() else {
        return;
    };
    let [a, b, c, _] = host.octets();
    let env = env
        .with_env("FAKE_MINIKUBE_SUBNET", format!("{a}.{b}.{c}"))
        .with_env("FAKE_MINIKUBE_EXPORTS_UNCHECKED", "1");
    let psql = |port: u16, sql: &str| support::postgres::psql_at(&host.to_string(), port, sql);
    // Exports go to a private network, never loopback: name it, as a team on such a setup would.
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    env.write(
        "devenv.toml",
        &toml.replace(
            "[mount]\n",
            "[mount]\nexport_client = \"192.168.39.0/24\"\n",
        ),
    );
    // The remote pod's port 5432 leads to the real server.
    remote.forward("devenv-ann-shop", "postgres-0", 5432, pg.addr());

    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("tunnel supervisor (pid"), "{stdout}");
    assert!(
        !local
            .names("statefulsets", "shop")
            .contains(&"postgres".to_string()),
        "the local subchart is disabled"
    );

    // The bridge points at the tunnel: the host address the VM sees and the port it listens on.
    let o = offload_status(&env, "postgres");
    assert_eq!(o["connect"], "tunnel");
    assert_eq!(o["context"], "dev-cluster");
    let f = &o["tunnel"][0];
    assert_eq!(f["healthy"], true, "{o}");
    assert_eq!(f["pod"], "postgres-0");
    let listen: std::net::SocketAddrV4 = f["listen"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        *listen.ip(),
        host,
        "only the host address the VM sees, never 0.0.0.0"
    );
    let slice = local.get("endpointslices", "shop", "postgres").unwrap();
    assert_eq!(slice["endpoints"][0]["addresses"][0], host.to_string());
    assert_eq!(slice["ports"][0]["port"], listen.port());
    let svc = local.get("services", "shop", "postgres").unwrap();
    assert_eq!(
        svc["spec"]["ports"][0]["port"], 5432,
        "apps keep their port"
    );

    // Real queries, through the port-forward of the remote API server.
    let port = listen.port();
    assert_eq!(psql(port, "select 40 + 2").unwrap(), "42");
    psql(port, "create table orders (id int primary key, item text)").unwrap();
    psql(port, "insert into orders values (1, 'tea'), (2, 'cake')").unwrap();
    assert_eq!(
        psql(port, "select string_agg(item, ',' order by id) from orders").unwrap(),
        "tea,cake"
    );
    assert!(
        remote.requests().iter().any(|r| r.path
            == "/api/v1/namespaces/devenv-ann-shop/pods/postgres-0/portforward"
            && r.query.contains("ports=5432")
            && r.status == 101),
        "each connection is a portforward of the remote API server"
    );
    let (_, stdout, _) = output(&env, &["offload"]);
    assert!(
        stdout.contains("postgres     remote   local    remote   yes "),
        "{stdout}"
    );
    let f = wait_forward(&env, "postgres", "counted", |f| {
        f["bytes_in"].as_u64() > Some(0) && f["connections"].as_u64() >= Some(4)
    });
    assert!(f["bytes_out"].as_u64() > Some(0), "{f}");
    let (_, stdout, _) = output(&env, &["status"]);
    assert!(
        stdout.contains(
            "offload  postgres → Service postgres in devenv-ann-shop on dev-cluster (tunnel)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "tunnel {listen} → postgres:5432 (pod postgres-0) healthy, 0 reconnects"
        )),
        "{stdout}"
    );

    // A session open while PostgreSQL restarts is cut, as it would be without a tunnel; the
    // tunnel sees the pod's port refuse, says so, and recovers once the server is back.
    let session = std::process::Command::new("psql")
        .args([
            "-h",
            &host.to_string(),
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-X",
        ])
        .args(["-c", "select pg_sleep(60)"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    pg.stop();
    let cut = session.wait_with_output().unwrap();
    assert!(
        !cut.status.success(),
        "the open session ends with the server"
    );
    assert!(
        psql(port, "select 1").is_err(),
        "nothing answers while it is down"
    );
    let f = wait_forward(&env, "postgres", "broken", |f| f["healthy"] == false);
    assert!(
        f["error"]
            .as_str()
            .unwrap_or("")
            .contains("connection refused"),
        "{f}"
    );
    pg.restart();
    assert_eq!(
        retry_psql(host, port, "select count(*) from orders"),
        "2",
        "the same port works again, with the same data"
    );
    let f = wait_forward(&env, "postgres", "healthy again", |f| f["healthy"] == true);
    assert!(f["reconnects"].as_u64() >= Some(1), "{f}");

    // Nothing changed: a second up keeps the supervisor and writes nothing on either cluster.
    let pid = std::fs::read_to_string(tunnel_file(&env, "tunnel.pid")).unwrap();
    remote.clear_requests();
    local.clear_requests();
    let (code, stdout, stderr) = output(&env, &["up"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("(0 stages changed something)"), "{stdout}");
    assert!(remote.requests().iter().all(|r| r.is_read_only()));
    assert!(local.requests().iter().all(|r| r.is_read_only()));
    assert_eq!(
        std::fs::read_to_string(tunnel_file(&env, "tunnel.pid")).unwrap(),
        pid
    );

    // Back to the laptop: the supervisor stops, the bridge goes, nothing of devenv's is left
    // on the remote cluster but the kept namespace.
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--local"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("stopped"), "{stdout}");
    assert!(psql(port, "select 1").is_err());
    assert!(offload_status(&env, "postgres").is_null());
    assert!(local.get("endpointslices", "shop", "postgres").is_none());
    assert_eq!(
        local.get("services", "shop", "postgres").unwrap()["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );
    assert!(remote.names("statefulsets", "devenv-ann-shop").is_empty());
    assert!(remote.names("services", "devenv-ann-shop").is_empty());

    // And remote again: a new supervisor takes the same port, so the bridge is the same.
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(psql(port, "select count(*) from orders").unwrap(), "2");

    // `down` stops the tunnel with the VM.
    let (code, stdout, stderr) = output(&env, &["down"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("tunnel supervisor (pid"), "{stdout}");
    assert!(offload_status(&env, "postgres")["tunnel"].is_null());
    assert!(
        psql(port, "select 1").is_err(),
        "nothing listens after down"
    );

    // --purge also deletes the user's remote namespace and the tunnel's files.
    let (code, stdout, stderr) = output(&env, &["down", "--purge", "--yes"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("done: delete your namespace devenv-ann-shop on dev-cluster"),
        "{stdout}"
    );
    assert!(remote.get("namespaces", "", "devenv-ann-shop").is_none());
    for f in [
        "tunnel.json",
        "tunnel-status.json",
        "tunnel.pid",
        "tunnel.log",
    ] {
        assert!(!tunnel_file(&env, f).exists(), "{f} is removed");
    }
}

/// A file of the project's state directory (there is one project in these tests).
fn tunnel_file(env: &Env, name: &str) -> std::path::PathBuf {
    let projects = env.state.join("projects");
    let dir = std::fs::read_dir(&projects)
        .unwrap()
        .next()
        .expect("a project state dir")
        .unwrap()
        .path();
    dir.join(name)
}

/// Whether the name `postgres` of namespace `shop` would get an answer in `local`: its Service
/// exists and has an endpoint for its port, either devenv's EndpointSlice with a port of the
/// same name (the proxy pairs them by name) or, through its selector, the laptop's ready pod.
fn answered(local: &ApiServer) -> bool {
    let Some(svc) = local.get("services", "shop", "postgres") else {
        return false;
    };
    let port_name = &svc["spec"]["ports"][0]["name"];
    let bridged = local
        .get("endpointslices", "shop", "postgres")
        .is_some_and(|slice| &slice["ports"][0]["name"] == port_name);
    let local_pods = !svc["spec"]["selector"].is_null()
        && local
            .get("statefulsets", "shop", "postgres")
            .is_some_and(|sts| sts["status"]["readyReplicas"].as_u64().unwrap_or(0) > 0);
    bridged || local_pods
}

/// The longest time, while `during` runs, that the name `postgres` of namespace `shop` would
/// not have been answered in `local` ([`answered`], polled every 10 ms).
fn longest_gap(local: &ApiServer, during: impl FnOnce()) -> std::time::Duration {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let poller = scope.spawn(|| {
            let mut longest = Duration::ZERO;
            let mut missing_since: Option<Instant> = None;
            while !done.load(Ordering::SeqCst) {
                let present = answered(local);
                match (present, missing_since) {
                    (false, None) => missing_since = Some(Instant::now()),
                    (true, Some(since)) => {
                        longest = longest.max(since.elapsed());
                        missing_since = None;
                    }
                    _ => {}
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Some(since) = missing_since {
                longest = longest.max(since.elapsed());
            }
            longest
        });
        // The poller stops even when `during` panics, so the panic is reported, not a hang.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let stop = Stop(&done);
        during();
        drop(stop);
        poller.join().unwrap()
    })
}

/// remote → local → remote with `helm`, the name `postgres` watched throughout.
fn a_round_trip_keeps_postgres_resolvable(helm: &str) {
    let Some((env, local, remote)) = offload_env_with(true, helm) else {
        return;
    };
    let (code, stdout, stderr) = output(&env, &["up"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let Some(listener) = node_listener() else {
        return;
    };
    expose_remote_postgres(&env, &remote, &listener);
    // A remote copy found unreachable left the laptop's copy running.
    assert!(
        local
            .names("statefulsets", "shop")
            .contains(&"postgres".to_string())
    );

    // The remote copy takes 4 s to become ready; the laptop's copy stays until then, and its
    // Service is never deleted: kept through the release, it becomes the bridge.
    let laptops = local.get("services", "shop", "postgres").expect("Service");
    remote.set_auto_ready(false);
    let gap = longest_gap(&local, || {
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(std::time::Duration::from_secs(4));
                remote.mark_all_ready("devenv-ann-shop");
                remote.set_auto_ready(true);
            });
            let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
            assert_eq!(code, Some(0), "{stdout}\n{stderr}");
        });
    });
    eprintln!(
        "{helm}: offload --remote: postgres unanswered for at most {} ms",
        gap.as_millis()
    );
    let bridge = local.get("services", "shop", "postgres").expect("bridge");
    assert_eq!(labels(&bridge)["app.kubernetes.io/managed-by"], "devenv");
    assert_eq!(
        gap,
        std::time::Duration::ZERO,
        "the Service was never deleted"
    );
    assert_eq!(bridge["metadata"]["uid"], laptops["metadata"]["uid"]);
    assert_eq!(bridge["spec"]["clusterIP"], laptops["spec"]["clusterIP"]);
    assert!(bridge["spec"]["selector"].is_null(), "a bridge: {bridge}");
    let annotations = bridge["metadata"]["annotations"].as_object();
    assert!(
        annotations.is_none_or(|a| a.keys().all(|k| !k.contains("helm.sh"))),
        "Helm's marks are gone: {bridge}"
    );
    // The bridge's ports carry the chart's names (read from the remote copy's Service), so the
    // Service the release adopts on the way back still pairs with the bridge's EndpointSlice.
    assert_eq!(bridge["spec"]["ports"][0]["name"], "postgres", "{bridge}");

    // Back to the laptop, whose copy takes 3 s to become ready: the Service is never deleted
    // (the release adopts it, same address), and the remote address stays in it until then.
    local.set_auto_ready(false);
    let gap = longest_gap(&local, || {
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(std::time::Duration::from_secs(3));
                let svc = local.get("services", "shop", "postgres").expect("Service");
                assert_eq!(svc["metadata"]["uid"], bridge["metadata"]["uid"]);
                assert_eq!(svc["spec"]["clusterIP"], bridge["spec"]["clusterIP"]);
                assert!(!svc["spec"]["selector"].is_null(), "adopted: {svc}");
                let slice = local
                    .get("endpointslices", "shop", "postgres")
                    .expect("the remote address stays until the local copy is ready");
                assert_eq!(slice["ports"][0]["name"], svc["spec"]["ports"][0]["name"]);
                local.mark_all_ready("shop");
                local.set_auto_ready(true);
            });
            let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--local"]);
            assert_eq!(code, Some(0), "{stdout}\n{stderr}");
        });
    });
    eprintln!(
        "{helm}: offload --local: postgres unanswered for at most {} ms",
        gap.as_millis()
    );
    assert_eq!(
        gap,
        std::time::Duration::ZERO,
        "the Service was never deleted"
    );
    let svc = local.get("services", "shop", "postgres").expect("Service");
    assert_eq!(svc["metadata"]["uid"], bridge["metadata"]["uid"]);
    assert_eq!(labels(&svc)["app.kubernetes.io/managed-by"], "Helm");
    assert!(labels(&svc).get("devenv.dev/offload").is_none(), "{svc}");
    assert!(local.get("endpointslices", "shop", "postgres").is_none());

    // And remote again (the remote copy, installed afresh, is exposed again first).
    expose_remote_postgres(&env, &remote, &listener);
    let gap = longest_gap(&local, || {
        let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
        assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    });
    eprintln!(
        "{helm}: offload --remote again: postgres unanswered for at most {} ms",
        gap.as_millis()
    );
    assert_eq!(gap, std::time::Duration::ZERO);
    let svc = local.get("services", "shop", "postgres").expect("bridge");
    assert_eq!(labels(&svc)["app.kubernetes.io/managed-by"], "devenv");
    assert_eq!(
        svc["metadata"]["uid"], laptops["metadata"]["uid"],
        "one Service all along"
    );
    drop(listener);
}

#[test]
fn a_round_trip_keeps_postgres_resolvable_with_helm_3() {
    a_round_trip_keeps_postgres_resolvable("helm3");
}

#[test]
fn a_round_trip_keeps_postgres_resolvable_with_helm_4() {
    a_round_trip_keeps_postgres_resolvable("helm4");
}

/// `[remote] server` set to `servers` (TOML) in the example's devenv.toml.
fn pin_remote_server(env: &Env, servers: &str) {
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    env.write(
        "devenv.toml",
        &toml.replace(
            "context = \"dev-cluster\"\n",
            &format!("context = \"dev-cluster\"\nserver = {servers}\n"),
        ),
    );
}

#[test]
fn a_context_that_points_away_from_the_pinned_dev_cluster_receives_nothing() {
    let Some((env, _local, remote)) = offload_env() else {
        return;
    };
    pin_remote_server(
        &env,
        "[\"https://dev.example.com:6443\", \"https://dev2.example.com\"]",
    );
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "kubeconfig context dev-cluster points at {}, which is not the shared dev cluster",
            remote.url()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("code: remote-not-allowed ("), "{stderr}");
    assert!(
        remote.requests().is_empty(),
        "nothing was sent to that cluster"
    );

    // A team default of "remote" stops `up` at preflight, before anything changes.
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    env.write(
        "devenv.toml",
        &toml.replacen("offload = \"local\"", "offload = \"remote\"", 1),
    );
    let (code, plan) = env.json_dry_run();
    assert_eq!(code, Some(1));
    assert_eq!(plan["would_stop"][0]["stage"], "preflight", "{plan}");
    assert!(
        plan["would_stop"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("which is not the shared dev cluster"),
        "{plan}"
    );
}

#[test]
fn the_pinned_server_matches_without_a_trailing_slash_or_case() {
    let Some((env, _local, remote)) = offload_env() else {
        return;
    };
    let url = remote.url();
    let (scheme, rest) = url.split_once("://").unwrap();
    pin_remote_server(
        &env,
        &format!("\"{}://{}/\"", scheme.to_uppercase(), rest.to_uppercase()),
    );
    let (_, _, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    assert!(!stderr.contains("remote-not-allowed"), "{stderr}");
    assert!(
        !remote.requests().is_empty(),
        "the toggle went on to the cluster"
    );
}

#[test]
fn the_users_remote_namespace_says_whose_it_is_which_devenv_and_when_it_was_last_used() {
    let Some((env, remote)) = remote_postgres_exposed() else {
        return;
    };
    let ns = remote.get("namespaces", "", "devenv-ann-shop").unwrap();
    assert_eq!(labels(&ns)["devenv.dev/owner"], "ann", "{ns}");
    assert_eq!(labels(&ns)["devenv.dev/project"], "shop", "{ns}");
    assert_eq!(
        labels(&ns)["devenv.dev/version"],
        env!("CARGO_PKG_VERSION"),
        "{ns}"
    );
    let last_used = |ns: &Value| {
        ns["metadata"]["annotations"]["devenv.dev/last-used"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let first = last_used(&ns);
    assert!(
        first.starts_with("20") && first.contains('T') && first.ends_with('Z'),
        "RFC 3339 in UTC: {ns}"
    );
    // A use within the hour leaves it (an `up` that changes nothing only reads); a later one,
    // like every `up` and toggle, writes the time again.
    output(&env, &["offload", "postgres", "--remote"]);
    let ns = remote.get("namespaces", "", "devenv-ann-shop").unwrap();
    assert_eq!(last_used(&ns), first);
    let answer = remote.http(
        "PATCH",
        "/api/v1/namespaces/devenv-ann-shop",
        Some("application/merge-patch+json"),
        &json!({"metadata": {"annotations": {"devenv.dev/last-used": "2026-01-02T03:04:05Z"}}})
            .to_string(),
    );
    assert_eq!(answer.status, 200);
    let first = "2026-01-02T03:04:05Z".to_string();
    output(&env, &["offload", "postgres", "--remote"]);
    let again = last_used(&remote.get("namespaces", "", "devenv-ann-shop").unwrap());
    assert!(again > first, "{first} then {again}");
}

#[test]
fn remote_list_shows_devenv_namespaces_with_owner_project_use_and_services_and_nothing_else() {
    let Some((env, remote)) = remote_postgres_exposed() else {
        return;
    };
    // Someone's own namespace, without devenv's labels, is not devenv's to list.
    remote.create(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-tools"}
    }));
    let before = remote.requests().len();
    let (code, stdout, stderr) = output(&env, &["--json", "remote", "list"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        remote.requests()[before..].iter().all(|r| r.is_read_only()),
        "listing only reads"
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["context"], "dev-cluster");
    let namespaces = v["namespaces"].as_array().unwrap();
    assert_eq!(namespaces.len(), 1, "{v}");
    let ns = &namespaces[0];
    assert_eq!(ns["namespace"], "devenv-ann-shop");
    assert_eq!(ns["owner"], "ann");
    assert_eq!(ns["project"], "shop");
    assert_eq!(ns["version"], env!("CARGO_PKG_VERSION"));
    assert!(ns["last_used"].as_str().unwrap().ends_with('Z'), "{ns}");
    assert_eq!(ns["services"], json!(["postgres"]), "{ns}");
    assert!(ns["requests"]["memory_bytes"].as_u64().is_some(), "{ns}");

    let (code, stdout, _) = output(&env, &["remote", "list"]);
    assert_eq!(code, Some(0));
    let row = stdout.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("devenv-ann-shop") && row.contains(" ann ") && row.contains("postgres"),
        "{stdout}"
    );
}

/// The example with its remote postgres installed and exposed, after a first toggle that stops
/// at the bridge; `None` where this machine has no helm or no address for the node.
fn remote_postgres_exposed() -> Option<(Env, ApiServer)> {
    let (env, _local, remote) = offload_env()?;
    let listener = node_listener()?;
    expose_remote_postgres(&env, &remote, &listener);
    Some((env, remote))
}

/// A namespace on `remote` as devenv makes them, for `owner`, last used at `last_used`, with
/// `extra` labels.
fn devenv_namespace(remote: &ApiServer, owner: &str, last_used: &str, extra: Value) {
    let mut labels = json!({
        "app.kubernetes.io/managed-by": "devenv",
        "devenv.dev/owner": owner,
        "devenv.dev/project": "shop",
    });
    labels
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    remote.create(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": format!("devenv-{owner}-shop"),
            "labels": labels,
            "annotations": {"devenv.dev/last-used": last_used},
        }
    }));
}

#[test]
fn remote_gc_deletes_only_devenv_namespaces_idle_longer_than_asked_and_only_with_yes() {
    let Some((env, _local, remote)) = offload_env() else {
        return;
    };
    devenv_namespace(&remote, "bob", "2026-01-01T00:00:00Z", json!({}));
    devenv_namespace(
        &remote,
        "cat",
        "2026-01-01T00:00:00Z",
        json!({"devenv.dev/keep": "true"}),
    );
    // A clock ahead of this one: used just now, not long ago.
    devenv_namespace(&remote, "dan", "2099-01-01T00:00:00Z", json!({}));
    remote.create(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-tools"}
    }));

    let before = remote.requests().len();
    let (code, stdout, stderr) = output(
        &env,
        &[
            "--json",
            "remote",
            "gc",
            "--idle",
            "14d",
            "--context",
            "dev-cluster",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["idle"][0]["namespace"], "devenv-bob-shop", "{v}");
    assert_eq!(v["idle"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["deleted"], json!([]));
    let kept: Vec<&str> = v["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["devenv-cat-shop", "devenv-dan-shop"], "{v}");
    assert!(
        remote.requests()[before..].iter().all(|r| r.is_read_only()),
        "a dry run only reads"
    );

    let (code, stdout, stderr) = output(
        &env,
        &[
            "remote",
            "gc",
            "--idle",
            "14d",
            "--yes",
            "--context",
            "dev-cluster",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("deleted devenv-bob-shop (bob"), "{stdout}");
    let deletes: Vec<String> = remote.requests()[before..]
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(deletes, ["/api/v1/namespaces/devenv-bob-shop"]);
    for name in ["devenv-cat-shop", "devenv-dan-shop", "team-tools"] {
        assert!(remote.get("namespaces", "", name).is_some(), "{name} kept");
    }
    let (code, _, stderr) = output(&env, &["remote", "gc", "--idle", "0d"]);
    assert_eq!(code, Some(2), "{stderr}");
}

/// devenv.toml with `[remote.quota]` set to `table` (TOML lines), or without it.
fn set_quota(env: &Env, table: Option<&str>) {
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    let toml = match toml.split_once("\n[remote.quota]\n") {
        Some((before, _)) => before.to_string(),
        None => toml,
    };
    let toml = match table {
        Some(t) => format!("{toml}\n[remote.quota]\n{t}\n"),
        None => toml,
    };
    env.write("devenv.toml", &toml);
}

#[test]
fn remote_quota_becomes_a_resource_quota_with_default_requests_and_goes_with_its_keys() {
    let Some((env, remote)) = remote_postgres_exposed() else {
        return;
    };
    set_quota(&env, Some("cpu = \"2500m\"\nmemory = \"4Gi\"\npods = 10"));
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    let quota = remote
        .get("resourcequotas", "devenv-ann-shop", "devenv-quota")
        .unwrap_or_else(|| panic!("no quota ({code:?}): {stdout}{stderr}"));
    assert_eq!(
        quota["spec"]["hard"],
        json!({"requests.cpu": "2500m", "requests.memory": "4Gi", "pods": "10"}),
        "{quota}"
    );
    assert_eq!(labels(&quota)["app.kubernetes.io/managed-by"], "devenv");
    let defaults = remote
        .get("limitranges", "devenv-ann-shop", "devenv-defaults")
        .unwrap();
    assert_eq!(
        defaults["spec"]["limits"][0],
        json!({"type": "Container", "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}),
        "{defaults}"
    );

    // Unchanged: read, not written again.
    let before = remote.requests().len();
    output(&env, &["offload", "postgres", "--remote"]);
    let writes: Vec<String> = remote.requests()[before..]
        .iter()
        .filter(|r| {
            !r.is_read_only()
                && (r.path.contains("resourcequotas") || r.path.contains("limitranges"))
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");

    // The keys go: so do the objects.
    set_quota(&env, None);
    output(&env, &["offload", "postgres", "--remote"]);
    assert!(
        remote
            .get("resourcequotas", "devenv-ann-shop", "devenv-quota")
            .is_none()
    );
    assert!(
        remote
            .get("limitranges", "devenv-ann-shop", "devenv-defaults")
            .is_none()
    );
}

#[test]
fn a_quota_devenv_did_not_make_is_never_replaced() {
    let Some((env, remote)) = remote_postgres_exposed() else {
        return;
    };
    remote.create(json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "devenv-quota", "namespace": "devenv-ann-shop"},
        "spec": {"hard": {"pods": "99"}}
    }));
    set_quota(&env, Some("pods = 5"));
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote"]);
    assert_ne!(code, Some(0), "{stdout}");
    assert!(stderr.contains("ResourceQuota devenv-quota"), "{stderr}");
    let quota = remote
        .get("resourcequotas", "devenv-ann-shop", "devenv-quota")
        .unwrap();
    assert_eq!(quota["spec"]["hard"]["pods"], "99");
}

/// devenv.toml with postgres on the shared cluster and `needs` given to api.
fn api_needs(env: &Env, needs: &str) {
    env.postgres_offloaded();
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    let toml: String = toml
        .lines()
        .filter(|l| !l.starts_with("needs = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let toml = toml.replacen(
        "[services.api]\n",
        &format!("[services.api]\nneeds = {needs}\n"),
        1,
    );
    env.write("devenv.toml", &toml);
}

fn stage<'a>(plan: &'a Value, name: &str) -> Option<&'a Value> {
    plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
}

#[test]
fn a_local_service_that_needs_an_offloaded_one_is_released_after_it_is_ready_there() {
    let env = Env::new().kvm_host();
    env.example();
    set_connect(&env, "tunnel");
    api_needs(&env, "[\"postgres\"]");
    let (code, plan) = env.json_dry_run();
    assert_eq!(code, Some(0), "{plan}");
    let gate = stage(&plan, "needs:postgres").unwrap_or_else(|| panic!("{plan}"));
    assert_eq!(gate["after"], json!(["remote:postgres", "tunnel"]));
    assert!(
        gate.to_string()
            .contains("api needs postgres, which runs on the shared cluster: the local release waits until it is ready there and the tunnel forwards it"),
        "{gate}"
    );
    let release = stage(&plan, "release").unwrap();
    assert!(
        release["after"]
            .as_array()
            .unwrap()
            .contains(&json!("needs:postgres")),
        "{release}"
    );

    // Without the need, the laptop's release does not wait for the shared cluster.
    api_needs(&env, "[]");
    let (_, plan) = env.json_dry_run();
    assert!(stage(&plan, "needs:postgres").is_none());
}

#[test]
fn a_needed_service_that_never_gets_ready_keeps_the_local_release_from_starting() {
    let Some((env, local, remote)) = offload_env() else {
        return;
    };
    remote.set_auto_ready(false);
    api_needs(&env, "[\"postgres\"]");
    env.rollout_timeout("2s");
    let (code, stdout, stderr) = output(&env, &["up"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("needs:postgres: skipped"), "{stdout}");
    assert!(stdout.contains("release: skipped"), "{stdout}");
    assert!(
        local.get("deployments", "shop", "api").is_none(),
        "the local release never started: {stdout}"
    );
}

#[test]
fn a_toggle_dry_run_prints_the_plan_with_the_choice_applied_and_records_nothing() {
    let Some((env, local, remote)) = offload_env() else {
        return;
    };
    let (code, stdout, stderr) = output(&env, &["offload", "postgres", "--remote", "--dry-run"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("helm upgrade --install postgres"),
        "{stdout}"
    );
    assert!(
        stdout.contains("namespace devenv-ann-shop on context dev-cluster exists"),
        "{stdout}"
    );
    // Nothing recorded: the listing still has postgres on the laptop, and a plain dry run of
    // up has no remote stage.
    let (_, plan) = env.json_dry_run();
    assert!(
        !plan["stages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "remote:postgres"),
        "{plan}"
    );
    let (code, stdout, stderr) = output(
        &env,
        &["offload", "postgres", "--local", "--purge", "--dry-run"],
    );
    assert_eq!(code, Some(0), "no question asked for a dry run: {stderr}");
    assert!(
        stdout.contains("asks   delete your namespace devenv-ann-shop on dev-cluster"),
        "{stdout}"
    );
    for cluster in [&local, &remote] {
        assert!(
            cluster.requests().iter().all(|r| r.is_read_only()),
            "a dry run only reads"
        );
    }
}
