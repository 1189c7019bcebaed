//! `cargo bench --bench up`: what a cold `devenv up` and a no-op `devenv up` cost, against the
//! minikube double and the Kubernetes API server double with the real helm. Prints, for each,
//! the wall time, the external calls by kind (mutating and read-only) and the API requests,
//! twice: with the doubles answering at once (devenv's own cost), and with the minikube double
//! taking what each real command takes (its cost model, `FAKE_MINIKUBE_LATENCY=published`:
//! `profile list` 1 s, `status` 1 s, `ssh` 0.5 s, `ip` 0.2 s, a new VM's `start` 90 s; the
//! figures and their sources are in tests/support/bin/minikube). Figures, not assertions: a
//! no-op `up` should show 0 mutating calls, at most 2 minikube calls and under 1 s modelled.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::Env;
use support::apiserver::ApiServer;

struct Run {
    wall: Duration,
    minikube_calls: Vec<String>,
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
        "ssh -p devenv-shop -- cat /proc/mounts",
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
        minikube_calls: calls.clone(),
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
    let fast = rounds(5, 5, false);
    print_table(
        "devenv up against the doubles answering at once (devenv's own cost)",
        fast,
    );
    // A modelled cold `up` waits out a new VM's start (90 s): one round of it is enough.
    let modelled = rounds(1, 5, true);
    print_table(
        "devenv up with minikube's published latencies (FAKE_MINIKUBE_LATENCY=published)",
        modelled,
    );
}

/// `cold` rounds of a cold `up`, each followed by a no-op `up`, and further no-op rounds up to
/// `noop` on the last project.
fn rounds(cold: usize, noop: usize, modelled: bool) -> (Vec<Run>, Vec<Run>) {
    let mut cold_runs = Vec::new();
    let mut noop_runs = Vec::new();
    for round in 0..cold {
        let api = ApiServer::start_as("devenv-shop").auto_ready();
        let env = Env::new();
        let kubeconfig = env.home.path().join("kubeconfig");
        let mut env = env
            .kvm_host()
            .with_env("FAKE_MINIKUBE_APISERVER", api.url())
            .with_env("KUBECONFIG", kubeconfig);
        if modelled {
            env = env.with_env("FAKE_MINIKUBE_LATENCY", "published");
        }
        env.example();
        cold_runs.push(measure(&env, &api));
        let repeat = if round + 1 == cold {
            noop.saturating_sub(cold - 1)
        } else {
            1
        };
        for _ in 0..repeat {
            noop_runs.push(measure(&env, &api));
        }
    }
    (cold_runs, noop_runs)
}

fn print_table(title: &str, (mut cold, mut noop): (Vec<Run>, Vec<Run>)) {
    println!(
        "{title}: median wall time of {} cold, {} no-op",
        cold.len(),
        noop.len()
    );
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
    let m = &noop[noop.len() / 2];
    println!("no-op minikube calls:");
    for call in &m.minikube_calls {
        println!("  minikube {call}");
    }
    println!();
}
