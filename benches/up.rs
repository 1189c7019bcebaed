//! `cargo bench --bench up`: what a cold `devenv up` and a no-op `devenv up` cost, against the
//! minikube double and the Kubernetes API server double with the real helm. Prints, for each,
//! the wall time, the external calls by kind (mutating and read-only) and the API requests.
//! Figures, not assertions: a no-op `up` should show 0 mutating calls.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::Env;
use support::apiserver::ApiServer;

struct Run {
    wall: Duration,
    minikube_mutating: usize,
    minikube_read_only: usize,
    api_mutating: usize,
    api_read_only: usize,
}

fn read_only_minikube(call: &str) -> bool {
    [
        "version",
        "status ",
        "ip ",
        "profile list",
        "ssh -p devenv-shop -- cat ",
    ]
    .iter()
    .any(|p| call.starts_with(p))
}

fn measure(env: &Env, api: &ApiServer) -> Run {
    api.clear_requests();
    let before = env.minikube_calls().len();
    let started = Instant::now();
    let out = env.devenv().arg("up").output().expect("devenv runs");
    let wall = started.elapsed();
    assert!(
        out.status.success(),
        "up failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = env.minikube_calls()[before..].to_vec();
    let requests = api.requests();
    Run {
        wall,
        minikube_mutating: calls.iter().filter(|c| !read_only_minikube(c)).count(),
        minikube_read_only: calls.iter().filter(|c| read_only_minikube(c)).count(),
        api_mutating: requests.iter().filter(|r| !r.is_read_only()).count(),
        api_read_only: requests.iter().filter(|r| r.is_read_only()).count(),
    }
}

fn main() {
    if which::which("helm").is_err() {
        eprintln!("helm is not on PATH (.ci/install-tools puts it in /opt/devenv-ci/bin)");
        std::process::exit(1);
    }
    let rounds = 5;
    let mut cold = Vec::new();
    let mut noop = Vec::new();
    for _ in 0..rounds {
        let api = ApiServer::start_as("devenv-shop").auto_ready();
        let env = Env::new();
        let kubeconfig = env.home.path().join("kubeconfig");
        let env = env
            .kvm_host()
            .with_env("FAKE_MINIKUBE_APISERVER", api.url())
            .with_env("KUBECONFIG", kubeconfig);
        env.example();
        cold.push(measure(&env, &api));
        noop.push(measure(&env, &api));
    }
    println!("devenv up against the doubles, {rounds} rounds (median wall time)");
    println!(
        "{:<8} {:>10} {:>18} {:>18} {:>16} {:>16}",
        "run",
        "wall ms",
        "minikube mutating",
        "minikube read-only",
        "API mutating",
        "API read-only"
    );
    for (name, runs) in [("cold", &mut cold), ("no-op", &mut noop)] {
        runs.sort_by_key(|r| r.wall);
        let m = &runs[runs.len() / 2];
        println!(
            "{:<8} {:>10} {:>18} {:>18} {:>16} {:>16}",
            name,
            m.wall.as_millis(),
            m.minikube_mutating,
            m.minikube_read_only,
            m.api_mutating,
            m.api_read_only
        );
    }
}
