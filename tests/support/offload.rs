//! The offload scenes several test files share: the example project with a local and a
//! shared cluster (API server doubles) and the real helm, and the remote postgres exposed as a
//! platform team would expose it.

use serde_json::json;

use super::Env;
use super::apiserver::ApiServer;

/// The example project with `connect = "direct"`, the local and the remote cluster doubles
/// (workloads ready as soon as they are written) and one kubeconfig list holding both contexts.
pub fn offload_env() -> Option<(Env, ApiServer, ApiServer)> {
    offload_env_with(true, "helm")
}

/// The example project with a local and a remote cluster (API doubles), `helm` (`helm`,
/// `helm3`, `helm4`) as the helm it runs, and the remote context in its own kubeconfig file
/// when `remote_context`.
pub fn offload_env_with(remote_context: bool, helm: &str) -> Option<(Env, ApiServer, ApiServer)> {
    let helm = super::real_tool(helm)?;
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

pub fn set_connect(env: &Env, mode: &str) {
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    let toml = toml
        .replace("connect = \"tunnel\"", &format!("connect = \"{mode}\""))
        .replace("connect = \"direct\"", &format!("connect = \"{mode}\""));
    env.write("devenv.toml", &toml);
}

/// `devenv ARGS` in `env`: its exit code, stdout and stderr.
pub fn output(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let out = env.devenv().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port this test listens on at an address of this machine that a real cluster accepts in
/// an EndpointSlice (never loopback): where "the remote node" of the direct tests answers.
pub fn node_listener() -> Option<std::net::TcpListener> {
    let ip = super::bridge_host_address()?;
    Some(std::net::TcpListener::bind((ip, 0)).unwrap())
}

/// The remote copy of postgres installed and exposed as a NodePort on a node at the address
/// `node` listens on, as a platform team would expose it (the first toggle stops where it
/// finds only a ClusterIP).
pub fn expose_remote_postgres(env: &Env, remote: &ApiServer, node: &std::net::TcpListener) {
    let addr = node.local_addr().unwrap();
    let node_port = addr.port();
    if remote.get("nodes", "", "dev-node-1").is_none() {
        remote.create(json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "dev-node-1"},
            "status": {"addresses": [{"type": "InternalIP", "address": addr.ip().to_string()}]}
        }));
    }
    let (code, stdout, stderr) = output(env, &["offload", "postgres", "--remote"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("error at 'reach:postgres'"), "{stderr}");
    expose_as_node_port(remote, node_port);
}

/// The remote postgres Service made a NodePort on `node_port`, as the platform team would.
pub fn expose_as_node_port(remote: &ApiServer, node_port: u16) {
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
}
