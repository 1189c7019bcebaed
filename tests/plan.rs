//! `devenv up --dry-run` prints the whole plan for the example project (stages in dependency
//! order, exact commands and file edits) and changes nothing.

mod support;

use predicates::prelude::*;
use support::Env;

/// The dry run's plan, asserting it would not stop (KVM usable: `Env::kvm_host`).
fn plan(env: &Env) -> String {
    plan_with_code(env, 0)
}

fn plan_with_code(env: &Env, code: i32) -> String {
    let out = env.devenv().args(["up", "--dry-run"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.redact(&String::from_utf8(out.stdout).unwrap())
}

/// The plan of `--json up --dry-run`.
fn json_plan(env: &Env) -> serde_json::Value {
    env.json_dry_run().1
}

/// The names of a JSON plan's stages, in order.
fn stage_names(plan: &serde_json::Value) -> Vec<&str> {
    plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

/// uid/gid differ between machines; the snapshots are taken as root.
fn redact_owner(text: &str) -> String {
    // SAFETY: getuid/getgid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    text.replace(
        &format!("anonuid={uid},anongid={gid}"),
        "anonuid=[UID],anongid=[GID]",
    )
    .replace(&format!(" uid={uid}"), " uid=[UID]")
}

#[test]
fn cold_plan_for_the_example_project() {
    let env = Env::new().kvm_host().without_env("DEVENV_EXPORTS_RELOAD");
    env.example();
    insta::assert_snapshot!("cold_plan", redact_owner(&plan(&env)));
}

#[test]
fn the_dry_run_only_asks_minikube_read_only_questions() {
    let env = Env::new().kvm_host();
    env.example();
    plan(&env);
    let calls = env.minikube_calls();
    assert!(
        calls.contains(&"profile list -l -o json".to_string()),
        "{calls:?}"
    );
    for call in &calls {
        assert!(
            [
                "profile list -l -o json",
                "status -p devenv-shop -o json",
                "ip -p devenv-shop",
                "version --short",
            ]
            .contains(&call.as_str()),
            "only read-only minikube calls, got {call}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&env.exports).unwrap(),
        "# /etc/exports of a test\n",
        "the exports file is untouched"
    );
    assert!(!env.state.join("projects").exists() || walk_files(&env.state).is_empty());
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_running_vm_is_left_alone() {
    let env = Env::new().kvm_host();
    env.example();
    assert!(
        env.minikube(&[
            "start",
            "-p",
            "devenv-shop",
            "--driver=kvm2",
            "--cpus=4",
            "--memory=6g"
        ])
        .status
        .success()
    );
    let p = plan(&env);
    assert!(p.contains("devenv-shop is running"), "{p}");
    assert!(!p.contains("run    minikube start"), "{p}");
}

#[test]
fn a_stopped_vm_is_started_again() {
    let env = Env::new().kvm_host();
    env.example();
    env.start_vm();
    env.minikube(&["stop", "-p", "devenv-shop"]);
    let p = plan(&env);
    assert!(p.contains("exists and is stopped"), "{p}");
    assert!(p.contains("run    minikube start -p devenv-shop"), "{p}");
}

#[test]
fn without_minikube_the_plan_still_shows_the_start() {
    let env = Env::new().kvm_host().without_minikube();
    env.example();
    // The run would stop at preflight (minikube is not installed), which exits 1.
    let p = plan_with_code(&env, 1);
    assert!(
        p.contains("run    minikube start -p devenv-shop --driver=kvm2"),
        "{p}"
    );
}

#[test]
fn an_existing_block_for_the_running_vm_needs_no_edit() {
    let env = Env::new().kvm_host();
    env.example();
    // With the VM running its address is known, so the plan shows the exact line.
    env.start_vm();
    let first = plan(&env);
    assert!(
        first.contains(" 192.168.39.10(rw,"),
        "the VM's own address: {first}"
    );
    // Put exactly the block the plan shows into the exports file.
    let block: String = first
        .lines()
        .skip_while(|l| !l.contains("+# BEGIN devenv shop"))
        .take(3)
        .map(|l| l.trim().trim_start_matches('+').to_string() + "\n")
        .collect();
    let block = block.replace(
        "[PROJECT]",
        &env.project.canonicalize().unwrap().to_string_lossy(),
    );
    std::fs::write(&env.exports, format!("# other\n{block}")).unwrap();
    let second = plan(&env);
    assert!(second.contains("already exports"), "{second}");
    assert!(!second.contains("exportfs -ra"), "{second}");
}

#[test]
fn json_plan_has_argv_for_every_command() {
    let env = Env::new().kvm_host();
    env.example();
    let v = json_plan(&env);
    let names = stage_names(&v);
    assert_eq!(
        names,
        [
            "preflight",
            "vm",
            "exports",
            "mount",
            "images",
            "release",
            "rollout",
            "summary"
        ]
    );
    let vm = &v["stages"][1]["actions"][0]["argv"];
    assert_eq!(vm[0], "minikube");
    assert!(
        vm.as_array()
            .unwrap()
            .contains(&serde_json::json!("--extra-config=kubelet.max-pods=60"))
    );
}

#[test]
fn a_service_offloaded_by_the_team_gets_remote_and_bridge_stages() {
    let env = Env::new().kvm_host();
    env.example();
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    env.write(
        "devenv.toml",
        &toml.replacen(
            "port = 9200\noffload = \"local\"",
            "port = 9200\noffload = \"remote\"",
            1,
        ),
    );
    let p = plan(&env);
    assert!(p.contains("remote:search  (after preflight)"), "{p}");
    // The team's connect mode is the tunnel: it runs once the VM and the remote copy exist.
    assert!(p.contains("tunnel  (after vm, remote:search)"), "{p}");
    assert!(
        p.contains("a tunnel supervisor runs in the background"),
        "{p}"
    );
    assert!(
        p.contains("forwards search:9200 through the API server of context dev-cluster"),
        "{p}"
    );
    // The remote copy must answer through the tunnel before the release turns the laptop's
    // copy off (and removes the subchart's own Service, whose name the bridge then takes); the
    // rollout is watched once the bridge exists.
    assert!(
        p.contains("reach:search  (after remote:search, tunnel)"),
        "{p}"
    );
    assert!(
        p.contains("the remote search answers at the tunnel's ports on the host"),
        "{p}"
    );
    assert!(
        p.contains("release  (after mount, reach:search, images)"),
        "{p}"
    );
    assert!(
        p.contains("bridge:search  (after vm, remote:search, release, tunnel)"),
        "{p}"
    );
    assert!(p.contains("the tunnel's ports on the host"), "{p}");
    assert!(p.contains("rollout  (after release, bridge:search)"), "{p}");
    assert!(p.contains("\"enabled\": false"), "{p}");
    assert!(p.contains("--namespace devenv-ann-shop"), "{p}");
}

#[test]
fn an_unhealthy_driver_stops_the_dry_run_with_its_fix() {
    let env = Env::new().without_minikube();
    env.example();
    env.devenv()
        .args(["up", "--dry-run"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("preflight would stop"))
        .stderr(predicate::str::contains("fix:"))
        .stderr(predicate::str::contains("devenv doctor"));
}

#[test]
fn a_service_with_an_image_gets_a_build_in_the_images_stage_and_its_tag_in_the_overlay() {
    let env = Env::new().kvm_host();
    env.example();
    env.with_image("api", "shop-api:dev", "FROM scratch\nCOPY README.md /\n");
    let p = plan(&env);
    assert!(p.contains("images  (after vm)"), "{p}");
    assert!(
        p.contains("build  shop-api:dev (as shop-api:devenv-"),
        "{p}"
    );
    assert!(p.contains("\"pullPolicy\": \"Never\""), "{p}");
    assert!(p.contains("\"repository\": \"shop-api\""), "{p}");
}

#[test]
fn getting_started_lists_the_stages_the_plan_has() {
    let env = Env::new().kvm_host();
    env.example();
    let plan = json_plan(&env);
    let stages = stage_names(&plan);
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/getting-started.md"),
    )
    .unwrap();
    let section = doc
        .split("## Reading the plan")
        .nth(1)
        .expect("the section")
        .split("\n## ")
        .next()
        .unwrap();
    let listed: Vec<&str> = section
        .lines()
        .filter_map(|l| {
            let (n, rest) = l.split_once(". `")?;
            n.parse::<u32>().ok()?;
            rest.split('`').next()
        })
        .collect();
    assert_eq!(listed, stages, "docs/getting-started.md, Reading the plan");
}

/// The example asks for 4 CPUs and 6 GiB; a host of `cpus` and `mib` under the fake host root.
fn vm_notes_on_a_host_of(cpus: usize, mib: u64) -> Vec<String> {
    let env = Env::new().kvm_host();
    env.example();
    let root = env.home.path().join("host-root/proc");
    let processors: String = (0..cpus)
        .map(|i| format!("processor\t: {i}\nflags\t\t: fpu vmx sse2\n\n"))
        .collect();
    std::fs::write(root.join("cpuinfo"), processors).unwrap();
    std::fs::write(
        root.join("meminfo"),
        format!(
            "MemTotal:       {} kB\nMemFree:         1024 kB\n",
            mib * 1024
        ),
    )
    .unwrap();
    let plan = json_plan(&env);
    let vm = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "vm")
        .unwrap()
        .clone();
    vm["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["note"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_vm_larger_than_the_machine_is_warned_about_before_it_starts() {
    let notes = vm_notes_on_a_host_of(2, 4096);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("[vm] cpus = 4 but this machine has 2")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("[vm] memory = 6144 MiB but this machine has 4096 MiB")),
        "{notes:?}"
    );
    assert!(vm_notes_on_a_host_of(8, 32768).is_empty());
}

#[test]
fn a_version_outside_requires_stops_up_at_preflight_with_its_code_and_fix() {
    let env = Env::new().kvm_host();
    env.example();
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    // The minikube double says v1.38.1; helm is not asked, since nothing pins it.
    env.write(
        "devenv.toml",
        &format!("{toml}\n[requires]\nminikube = \"<1.36\"\ndevenv = \"<99\"\n"),
    );
    let (code, plan) = env.json_dry_run();
    assert_eq!(code, Some(1));
    assert_eq!(plan["would_stop"][0]["stage"], "preflight", "{plan}");
    let error = plan["would_stop"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "minikube 1.38.1 is installed, and devenv.toml's [requires] minikube is \"<1.36\" (fix: "
        ),
        "{error}"
    );
    assert!(!error.contains("devenv "), "devenv is within <99: {error}");

    let out = env.devenv().arg("up").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("code: version-required"), "{stderr}");
    assert!(
        !env.minikube_calls().iter().any(|c| c.starts_with("start")),
        "nothing starts: {:?}",
        env.minikube_calls()
    );

    env.write(
        "devenv.toml",
        &format!("{toml}\n[requires]\nminikube = \">=1.38\"\n"),
    );
    let (code, plan) = env.json_dry_run();
    assert_eq!(code, Some(0), "{plan}");
}
