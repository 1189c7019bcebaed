//! `devenv up` and `devenv down` run for real against the minikube double (and, for the
//! release, the Kubernetes API server double with the real helm): stages in order, failures
//! stopping only what depends on them, a second `up` changing nothing, `down` and `--purge`
//! undoing it all, the project lock and Ctrl-C.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use predicates::prelude::*;
use support::Env;

const EXPORTS: &str = "# /etc/exports of a test\n";

fn kvm_env() -> Env {
    let env = Env::new().kvm_host();
    env.example();
    env
}

fn calls_with(env: &Env, what: &str) -> usize {
    env.minikube_calls()
        .iter()
        .filter(|c| c.starts_with(what))
        .count()
}

#[test]
fn up_stops_at_preflight_when_the_driver_is_unusable() {
    // This machine's own KVM is unusable (no vmx/svm) or libvirt is absent.
    let env = Env::new().with_env("DEVENV_HOST_ROOT", "/nonexistent-root");
    env.example();
    env.devenv()
        .arg("up")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("error at 'preflight'"))
        .stderr(predicate::str::contains("devenv up"));
    assert_eq!(calls_with(&env, "start"), 0, "no VM was started");
    assert_eq!(std::fs::read_to_string(&env.exports).unwrap(), EXPORTS);
}

#[test]
fn without_a_cluster_up_does_exports_vm_and_mount_then_fails_at_release() {
    let env = kvm_env();
    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("error at 'release'"), "{stderr}");
    assert!(stderr.contains("these stages made changes: "), "{stderr}");
    assert!(
        stdout.contains("rollout: skipped: release did not finish"),
        "{stdout}"
    );
    assert!(
        stdout.contains("summary: skipped: rollout did not finish"),
        "{stdout}"
    );
    assert_eq!(calls_with(&env, "start -p devenv-shop --driver=kvm2"), 1);
    assert_eq!(
        calls_with(&env, "ssh -p devenv-shop -- sudo mount -t nfs"),
        1
    );
    let exports = std::fs::read_to_string(&env.exports).unwrap();
    assert!(
        exports.starts_with(EXPORTS) && exports.contains("# BEGIN devenv shop"),
        "{exports}"
    );

    // The next run finds the VM, the export and the mount in place and only retries the release.
    let before = env.minikube_calls().len();
    env.devenv().arg("up").assert().code(1);
    let again: Vec<String> = env.minikube_calls()[before..].to_vec();
    assert!(!again.iter().any(|c| c.starts_with("start")), "{again:?}");
    assert!(!again.iter().any(|c| c.contains("sudo mount")), "{again:?}");
}

#[test]
fn a_project_under_a_path_with_a_space_is_seen_mounted_by_the_next_up() {
    // The kernel writes the space as \040 in /proc/mounts (the double does too): the second
    // `up` must read that as the mount it made, not mount again ("busy or already mounted").
    let env = Env::new().project_at("src/My Projects/shop").kvm_host();
    env.example();
    let first = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("mount: mounted 192.168.39.1:"), "{stdout}");
    let second = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&second.stdout);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!stderr.contains("error at 'mount'"), "{stdout}\n{stderr}");
    assert!(!stderr.contains("already mounted"), "{stderr}");
    assert_eq!(
        calls_with(&env, "ssh -p devenv-shop -- sudo mount "),
        1,
        "{:#?}",
        env.minikube_calls()
    );
    let out = env.devenv().args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["mount"]["mounted"], true, "{status}");
}

#[test]
fn a_null_status_is_unknown_not_gone_and_purge_still_deletes_the_vm() {
    let env = kvm_env();
    let _ = env.devenv().arg("up").output().unwrap();
    let null = |cmd: &mut assert_cmd::Command| {
        cmd.env("FAKE_MINIKUBE_STATUS_NULL", "1");
    };
    let mut status = env.devenv();
    null(&mut status);
    let out = status.args(["status", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let state = v["vm"]["state"].as_str().unwrap();
    assert!(
        state.starts_with("unknown: `minikube status` printed null"),
        "{state}"
    );
    let mut purge = env.devenv();
    null(&mut purge);
    purge
        .args(["down", "--purge", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "delete the minikube VM devenv-shop",
        ));
    assert_eq!(
        calls_with(&env, "delete -p devenv-shop"),
        1,
        "{:#?}",
        env.minikube_calls()
    );
}

#[test]
fn a_stopped_profile_of_another_driver_is_explained_before_a_start_that_would_exit_81() {
    let env = kvm_env();
    // A profile made earlier with another Linux driver name minikube knows (qemu2), stopped.
    assert!(
        env.minikube(&[
            "start",
            "-p",
            "devenv-shop",
            "--driver=qemu2",
            "--container-runtime=docker"
        ])
        .status
        .success()
    );
    assert!(
        env.minikube(&["stop", "-p", "devenv-shop"])
            .status
            .success()
    );
    let starts = calls_with(&env, "start");
    env.devenv()
        .arg("up")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "devenv-shop was created with the qemu2 driver and minikube cannot start it with kvm2",
        ))
        .stderr(predicate::str::contains("devenv down --purge"));
    assert_eq!(
        calls_with(&env, "start"),
        starts,
        "no start that would exit 81"
    );
}

#[test]
fn the_export_goes_to_the_vms_own_address_on_whatever_subnet_minikube_chose() {
    let Some((env, _api)) = cluster_env() else {
        return;
    };
    // Another minikube network already holds 192.168.39.0/24: the VM lands on .50. A block an
    // older devenv wrote for the whole usual /24 is there too.
    let env = env.with_env("FAKE_MINIKUBE_SUBNET", "192.168.50");
    let project = env.project.canonicalize().unwrap();
    let uid = unsafe { libc::getuid() };
    let gid = unsafe { libc::getgid() };
    let stale = format!(
        "# BEGIN devenv shop uid={uid}\n\"{}\" 192.168.39.0/24(rw,async,no_subtree_check,all_squash,anonuid={uid},anongid={gid})\n# END devenv shop uid={uid}\n",
        project.display()
    );
    std::fs::write(&env.exports, format!("{EXPORTS}{stale}")).unwrap();
    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exports = std::fs::read_to_string(&env.exports).unwrap();
    assert_eq!(
        exports,
        format!(
            "{EXPORTS}# BEGIN devenv shop uid={uid}\n\"{}\" 192.168.50.10(rw,async,no_subtree_check,all_squash,anonuid={uid},anongid={gid})\n# END devenv shop uid={uid}\n",
            project.display()
        ),
        "the old block is replaced by one for the VM's own address, nothing wider"
    );
    // The next `up` finds it in place.
    env.devenv()
        .arg("up")
        .assert()
        .success()
        .stdout(predicate::str::contains("(0 stages changed something)"));
}

#[test]
fn a_second_checkout_with_the_same_project_name_is_refused_with_both_paths() {
    let env = kvm_env();
    // The first checkout is up as far as the mount (there is no cluster for the release).
    let _ = env.devenv().arg("up").output().unwrap();
    assert_eq!(calls_with(&env, "ssh -p devenv-shop -- sudo mount "), 1);
    // A second clone of the same repository, elsewhere.
    let second = env.home.path().join("work/shop-clone");
    std::fs::create_dir_all(second.parent().unwrap()).unwrap();
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(&env.project)
        .arg(&second)
        .status()
        .unwrap();
    assert!(copy.success());
    let exports = std::fs::read_to_string(&env.exports).unwrap();
    let first = env.project.canonicalize().unwrap();
    let out = env
        .devenv()
        .current_dir(&second)
        .arg("up")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "minikube profile devenv-shop already serves {}",
            first.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&second.canonicalize().unwrap().display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("set another [project] name"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&env.exports).unwrap(),
        exports,
        "the first checkout's export is untouched"
    );
    assert_eq!(
        calls_with(&env, "ssh -p devenv-shop -- sudo mount "),
        1,
        "no second mount"
    );
}

#[test]
fn a_failing_vm_start_shows_minikubes_error_and_skips_what_needs_the_vm() {
    let env = Env::new()
        .kvm_host()
        .with_env("FAKE_MINIKUBE_START_EXIT", "80");
    env.example();
    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("error at 'vm'"), "{stderr}");
    assert!(stdout.contains("GUEST_PROVISION"), "{stdout}");
    assert!(stdout.contains("mount: skipped"), "{stdout}");
    assert!(stdout.contains("release: skipped"), "{stdout}");
    assert!(
        stdout.contains("exports: "),
        "exports ran beside vm: {stdout}"
    );
    assert!(stderr.contains("code: tool-failed ("), "{stderr}");

    // The same failure as a script sees it: the stage's event keeps the parts apart.
    let out = env.devenv().args(["--json", "up"]).output().unwrap();
    let failed: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "failed")
        .expect("a failed event");
    assert_eq!(failed["stage"], "vm");
    assert_eq!(failed["code"], "tool-failed");
    assert!(
        failed["error"].as_str().unwrap().contains("minikube"),
        "{failed}"
    );
    assert!(
        failed["help"].as_str().unwrap().contains("GUEST_PROVISION"),
        "the help carries minikube's last lines: {failed}"
    );
}

#[test]
fn down_stops_the_vm_and_purge_removes_everything_devenv_made() {
    let env = kvm_env();
    env.devenv().arg("up").assert().code(1);
    env.devenv()
        .arg("down")
        .assert()
        .success()
        .stdout(predicate::str::contains("stopped; its disk is kept"));
    env.devenv()
        .arg("down")
        .assert()
        .success()
        .stdout(predicate::str::contains("already stopped"));
    env.devenv()
        .args(["down", "--purge"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pass --yes"));
    assert!(
        env.minikube_state.join("profiles/devenv-shop.env").exists(),
        "nothing removed without --yes"
    );
    // With --json, stdout is the run's events, one object per line, and nothing else.
    let out = env
        .devenv()
        .args(["--json", "down", "--purge", "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["stage"] == "vm" && e["event"] == "done" && e["changed"] == true),
        "{stdout}"
    );
    assert!(!env.minikube_state.join("profiles/devenv-shop.env").exists());
    assert_eq!(
        std::fs::read_to_string(&env.exports).unwrap(),
        EXPORTS,
        "byte for byte"
    );
    env.devenv()
        .args(["down", "--purge", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to remove"));
    env.devenv()
        .args(["--json", "down", "--purge", "--yes"])
        .assert()
        .success()
        .stdout("{\"note\":\"nothing to remove for shop\"}\n");
    env.devenv()
        .arg("down")
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to stop"));
}

#[test]
fn purge_with_a_broken_config_works_from_what_the_last_up_recorded() {
    let env = kvm_env();
    env.devenv().arg("up").assert().code(1);
    // The chart moved and the file no longer parses: down must still clean up.
    env.write("devenv.toml", "[project\nname = \"shop\"\n");
    env.devenv()
        .args(["down", "--purge", "--yes"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "working from what the last `up` recorded for project shop (minikube profile devenv-shop)",
        ))
        .stdout(predicate::str::contains(
            "done: delete the minikube VM devenv-shop",
        ))
        .stdout(predicate::str::contains("done: remove devenv's block for shop"));
    assert!(!env.minikube_state.join("profiles/devenv-shop.env").exists());
    assert_eq!(std::fs::read_to_string(&env.exports).unwrap(), EXPORTS);
    // Nothing is recorded any more: now the broken file is the answer.
    env.devenv()
        .args(["down", "--purge", "--yes"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("devenv.toml"));
}

#[test]
fn purge_without_minikube_removes_the_rest_lists_the_vm_and_a_later_purge_finishes() {
    let env = kvm_env();
    env.devenv().arg("up").assert().code(1);
    let env = env.without_minikube();
    env.devenv()
        .args(["down", "--purge", "--yes"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "done: remove devenv's block for shop",
        ))
        .stderr(predicate::str::contains("one thing is left behind"))
        .stderr(predicate::str::contains("the VM devenv-shop (not checked)"))
        .stderr(predicate::str::contains(
            "remove it with: minikube delete -p devenv-shop",
        ))
        .stderr(predicate::str::contains(
            "is kept: it lets `devenv down --purge` finish later",
        ));
    assert_eq!(std::fs::read_to_string(&env.exports).unwrap(), EXPORTS);
    assert!(env.minikube_state.join("profiles/devenv-shop.env").exists());

    // minikube is back, devenv.toml broken meanwhile: the recorded state finishes the job.
    let env = env.prepend_path(&support::support_bin());
    env.write("devenv.toml", "not toml at all = = =\n");
    env.devenv()
        .args(["down", "--purge", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "done: delete the minikube VM devenv-shop",
        ));
    assert!(!env.minikube_state.join("profiles/devenv-shop.env").exists());
}

#[test]
fn purge_with_an_unreachable_cluster_still_deletes_the_vm_and_the_block() {
    let Some((env, api)) = cluster_env() else {
        return;
    };
    env.devenv().arg("up").assert().success();
    drop(api);
    env.devenv()
        .args(["down", "--purge", "--yes"])
        .assert()
        .success()
        .stderr(predicate::str::contains("was not uninstalled"))
        .stderr(predicate::str::contains("deleting the VM removes it"))
        .stdout(predicate::str::contains(
            "done: delete the minikube VM devenv-shop",
        ));
    assert!(!env.minikube_state.join("profiles/devenv-shop.env").exists());
    assert_eq!(std::fs::read_to_string(&env.exports).unwrap(), EXPORTS);
}

#[test]
fn down_without_minikube_says_what_is_left_and_how_to_stop_it() {
    let env = kvm_env();
    env.devenv().arg("up").assert().code(1);
    let env = env.without_minikube();
    env.devenv()
        .arg("down")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the VM devenv-shop (not checked)"))
        .stderr(predicate::str::contains("minikube stop -p devenv-shop"));
}

#[test]
fn down_dry_run_prints_and_changes_nothing() {
    let env = kvm_env();
    env.devenv().arg("up").assert().code(1);
    env.devenv()
        .args(["down", "--purge", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "run    minikube delete -p devenv-shop",
        ))
        .stdout(predicate::str::contains(
            "asks   delete the minikube VM devenv-shop and its disk",
        ))
        .stdout(predicate::str::contains("-# BEGIN devenv shop"));
    assert!(env.minikube_state.join("profiles/devenv-shop.env").exists());
    assert!(
        std::fs::read_to_string(&env.exports)
            .unwrap()
            .contains("# BEGIN devenv shop")
    );
}

#[test]
fn status_reports_the_vm_the_export_and_the_mount() {
    let env = kvm_env();
    env.devenv()
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("not created"));
    env.devenv().arg("up").assert().code(1);
    let out = env.devenv().args(["--json", "status"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["vm"]["state"], "running");
    assert_eq!(v["vm"]["driver"], "kvm2");
    assert_eq!(v["vm"]["cpus"], 4);
    assert_eq!(v["exports"]["block"], "ok");
    assert_eq!(v["mount"]["mounted"], true);
}

fn spawn_up(env: &Env, extra: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = env.background();
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.arg("up")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_second_up_on_the_same_project_waits_and_gives_up_with_a_clear_message() {
    let env = kvm_env();
    let mut first = spawn_up(&env, &[("FAKE_MINIKUBE_START_SLEEP", "4")]);
    std::thread::sleep(Duration::from_millis(800));
    env.devenv()
        .args(["up", "--lock-timeout", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "waiting for another devenv command on project shop",
        ))
        .stderr(predicate::str::contains(
            "is still working on project \"shop\"",
        ));
    let _ = first.kill();
    let _ = first.wait();
}

#[test]
fn ctrl_c_cancels_the_running_stage_and_the_next_up_resumes() {
    let env = kvm_env();
    let child = spawn_up(&env, &[("FAKE_MINIKUBE_START_SLEEP", "30")]);
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: sending SIGINT to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the stage was not waited for"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stdout.contains("vm: cancelled"), "{stdout}");
    // The lock was released: the next up runs (and starts the VM the interrupted one did not).
    env.devenv()
        .args(["up", "--lock-timeout", "2"])
        .assert()
        .code(1);
    assert!(calls_with(&env, "start -p devenv-shop") >= 2);
}

/// The example project on the minikube double, whose cluster is the API server double (with
/// workloads becoming ready as soon as they are written), driven by the real helm.
fn cluster_env() -> Option<(Env, support::apiserver::ApiServer)> {
    support::cluster_env()
}

/// Like [`cluster_env`], but nothing becomes ready unless the test says so.
fn cluster_env_not_ready() -> Option<(Env, support::apiserver::ApiServer)> {
    let (env, api) = cluster_env()?;
    api.set_auto_ready(false);
    Some((env, api))
}

fn cluster_env_with(helm: &str) -> Option<(Env, support::apiserver::ApiServer)> {
    support::cluster_env_with(helm)
}

fn mutating(api: &support::apiserver::ApiServer) -> Vec<String> {
    api.requests()
        .iter()
        .filter(|r| !r.is_read_only())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

const READ_ONLY_MINIKUBE: [&str; 6] = [
    "version --short",
    "status -p devenv-shop -o json",
    "ip -p devenv-shop",
    "profile list -o json",
    "profile list -l -o json",
    "ssh -p devenv-shop -- cat ",
];

fn is_read_only_call(call: &str) -> bool {
    READ_ONLY_MINIKUBE.iter().any(|r| call.starts_with(r))
}

/// `devenv up`, asserted to bring the project up; its stdout.
fn up_succeeds(env: &Env) -> String {
    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("shop is up"), "{stdout}");
    stdout
}

#[test]
fn cold_up_brings_the_example_project_up_and_a_second_up_changes_nothing() {
    let Some((env, api)) = cluster_env() else {
        return;
    };
    up_succeeds(&env);
    assert_eq!(api.names("deployments", "shop"), ["api", "worker"]);
    assert_eq!(api.names("statefulsets", "shop"), ["postgres", "search"]);
    let release = api.list_selected("secrets", Some("shop"), "owner=helm,name=shop");
    assert_eq!(release.len(), 1);

    api.clear_requests();
    let calls_before = env.minikube_calls().len();
    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("(0 stages changed something)"), "{stdout}");
    assert!(mutating(&api).is_empty(), "{:?}", mutating(&api));
    let calls = env.minikube_calls()[calls_before..].to_vec();
    for c in &calls {
        assert!(is_read_only_call(c), "a no-op up ran `minikube {c}`");
    }
    // Each real minikube call is slow: the stored settings and address from the light list,
    // then one SSH session for the VM's state, its mounts and the probe through the mount.
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0], "profile list -l -o json");
    assert!(
        calls[1].starts_with("ssh -p devenv-shop -- cat /proc/mounts /src/.devenv-probe-"),
        "{calls:#?}"
    );
    assert!(
        stdout.contains("a probe file written on the host just read back through it"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&env.exports)
            .unwrap()
            .matches("# BEGIN devenv shop")
            .count(),
        1
    );
}

#[test]
fn a_values_change_reruns_only_the_release() {
    let Some((env, api)) = cluster_env() else {
        return;
    };
    env.devenv().arg("up").assert().success();
    let values = env.project.join("deploy/values-dev.yaml");
    let text = std::fs::read_to_string(&values).unwrap();
    std::fs::write(
        &values,
        text.replace("api:\n  replicas: 1", "api:\n  replicas: 2"),
    )
    .unwrap();
    api.clear_requests();
    let calls_before = env.minikube_calls().len();
    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("(1 stage changed something)"), "{stdout}");
    let calls = env.minikube_calls()[calls_before..].to_vec();
    assert!(calls.iter().all(|c| is_read_only_call(c)), "{calls:?}");
    let api_deployment = api.get("deployments", "shop", "api").unwrap();
    assert_eq!(api_deployment["spec"]["replicas"], 2);
}

#[test]
fn the_vm_is_created_with_docker_and_a_containerd_profile_is_drift_with_the_way_out() {
    let Some((env, _api)) = cluster_env() else {
        return;
    };
    env.devenv().arg("up").assert().success();
    let start = env
        .minikube_calls()
        .into_iter()
        .find(|c| c.starts_with("start"))
        .unwrap();
    assert!(start.contains("--container-runtime=docker"), "{start}");
    // The same profile as plain `minikube start` of v1.39 makes it: containerd, where
    // `docker-env` (the images stage, `top`) exits 14.
    let profile = env.minikube_state.join("profiles/devenv-shop.env");
    let text = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(
        &profile,
        text.replace("runtime=docker", "runtime=containerd"),
    )
    .unwrap();
    assert_eq!(
        env.minikube(&["docker-env", "-p", "devenv-shop", "--shell", "none"])
            .status
            .code(),
        Some(14)
    );
    env.devenv()
        .arg("up")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "differs from [vm] (container runtime containerd → docker",
        ))
        .stdout(predicate::str::contains("devenv up --recreate"));
    env.devenv()
        .args(["up", "--recreate", "--yes"])
        .assert()
        .success();
    assert!(
        env.minikube(&["docker-env", "-p", "devenv-shop", "--shell", "none"])
            .status
            .success()
    );
}

#[test]
fn kubernetes_version_stable_is_not_drift_once_minikube_has_resolved_it() {
    let Some((env, _api)) = cluster_env() else {
        return;
    };
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    let pinned = toml
        .lines()
        .find(|l| l.starts_with("kubernetes_version"))
        .expect("the example pins a version")
        .to_string();
    env.write(
        "devenv.toml",
        &toml.replace(&pinned, "kubernetes_version = \"stable\""),
    );
    env.devenv().arg("up").assert().success();
    env.devenv()
        .arg("up")
        .assert()
        .success()
        .stdout(predicate::str::contains("differs from [vm]").not())
        .stdout(predicate::str::contains("(0 stages changed something)"));
    env.devenv().args(["up", "--recreate"]).assert().success();
    assert_eq!(
        calls_with(&env, "delete"),
        0,
        "--recreate has nothing to recreate"
    );
}

#[test]
fn a_changed_vm_setting_is_reported_with_how_to_apply_it() {
    let Some((env, _api)) = cluster_env() else {
        return;
    };
    env.devenv().arg("up").assert().success();
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    env.write("devenv.toml", &toml.replace("cpus = 4", "cpus = 2"));
    env.devenv()
        .arg("up")
        .assert()
        .success()
        .stdout(predicate::str::contains("differs from [vm] (cpus 4 → 2)"))
        .stdout(predicate::str::contains("devenv up --recreate"));
    assert_eq!(calls_with(&env, "start"), 1, "the VM was not restarted");
    // Deleting the VM loses what its cluster holds: asked first, and without a terminal only
    // --yes answers. The dry run says it will ask.
    env.devenv()
        .args(["up", "--recreate", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "asks   delete the VM devenv-shop with everything its cluster holds",
        ));
    env.devenv()
        .args(["up", "--recreate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pass --yes"));
    assert_eq!(calls_with(&env, "delete -p devenv-shop"), 0);
    env.devenv()
        .args(["up", "--recreate", "--yes"])
        .assert()
        .success();
    assert_eq!(calls_with(&env, "delete -p devenv-shop"), 1);
    assert_eq!(calls_with(&env, "start"), 2);
    let out = env.devenv().args(["--json", "status"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["vm"]["cpus"], 2);
    assert_eq!(v["mount"]["mounted"], true);
    assert_eq!(v["release"]["status"], "deployed");
}

#[test]
fn status_after_up_shows_the_release_and_ready_workloads() {
    let Some((env, _api)) = cluster_env() else {
        return;
    };
    env.devenv().arg("up").assert().success();
    let out = env.devenv().args(["--json", "status"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["release"]["status"], "deployed");
    assert_eq!(v["release"]["revision"], 1);
    let workloads = v["workloads"].as_array().unwrap();
    assert_eq!(workloads.len(), 4, "{v}");
    for w in workloads {
        assert_eq!(w["ready"], w["desired"], "{w}");
    }
}

#[test]
fn purge_after_a_successful_up_uninstalls_the_release_and_deletes_the_vm() {
    let Some((env, api)) = cluster_env() else {
        return;
    };
    env.devenv().arg("up").assert().success();
    env.devenv()
        .args(["down", "--purge", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("uninstall the Helm release shop"));
    assert!(api.names("deployments", "shop").is_empty());
    assert!(!env.minikube_state.join("profiles/devenv-shop.env").exists());
    assert_eq!(std::fs::read_to_string(&env.exports).unwrap(), EXPORTS);
}

#[test]
fn cold_up_and_no_op_up_work_with_helm_3_and_helm_4() {
    for helm in ["helm3", "helm4"] {
        let Some((env, api)) = cluster_env_with(helm) else {
            return;
        };
        env.devenv().arg("up").assert().success();
        assert_eq!(
            api.names("deployments", "shop"),
            ["api", "worker"],
            "{helm}"
        );
        api.clear_requests();
        env.devenv()
            .arg("up")
            .assert()
            .success()
            .stdout(predicate::str::contains("(0 stages changed something)"));
        assert!(mutating(&api).is_empty(), "{helm}: {:?}", mutating(&api));
    }
}

#[test]
fn a_crash_looping_pod_stops_the_rollout_with_its_events_and_logs() {
    let Some((env, api)) = cluster_env_not_ready() else {
        return;
    };
    let child = spawn_up(&env, &[]);
    let waited = Instant::now();
    while api.get("deployments", "shop", "api").is_none() {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "helm never created the api"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    api.create(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "api-5d9c-x7", "namespace": "shop", "labels": {"app.kubernetes.io/name": "api"}},
        "spec": {"containers": [{"name": "api", "image": "shop-api:dev"}]},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "api", "image": "shop-api:dev", "imageID": "", "ready": false, "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container=api"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "containerID": "docker://5d9c0000dead"}}
        }]}
    }));
    api.set_pod_log(
        "shop",
        "api-5d9c-x7",
        "api",
        "starting api\npanic: cannot connect to postgres:5432\n",
    );
    api.create(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "api-5d9c-x7.1", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "api-5d9c-x7", "namespace": "shop"},
        "type": "Warning",
        "reason": "BackOff",
        "message": "Back-off restarting failed container api in pod api-5d9c-x7"
    }));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error at 'rollout'"), "{stderr}");
    assert!(
        stderr.contains("api-5d9c-x7 in namespace shop cannot start: CrashLoopBackOff"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("panic: cannot connect to postgres:5432"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Warning BackOff: Back-off restarting failed container"),
        "{stdout}"
    );
}

#[test]
fn a_rollout_that_never_gets_ready_times_out_naming_what_it_waited_for() {
    let Some((env, _api)) = cluster_env_not_ready() else {
        return;
    };
    env.rollout_timeout("2s");
    env.devenv()
        .arg("up")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "not ready after 2s in namespace shop",
        ))
        .stderr(predicate::str::contains("deployment/api"))
        .stderr(predicate::str::contains("statefulset/postgres"));
}

#[test]
fn a_mount_that_times_out_names_the_likely_causes_and_the_next_up_recovers() {
    let env = Env::new()
        .kvm_host()
        .with_env("FAKE_MINIKUBE_NFS_DOWN", "1");
    env.example();
    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error at 'mount'"), "{stderr}");
    assert!(
        stdout.contains("mount.nfs: Connection timed out"),
        "{stdout}"
    );
    for cause in ["systemctl status nfs-server", "exportfs -v", "firewall"] {
        assert!(stderr.contains(cause), "no {cause} in {stderr}");
    }
    assert!(stdout.contains("release: skipped"), "{stdout}");
    // With the server answering again, the next up mounts without starting the VM again.
    let before = env.minikube_calls().len();
    let retry = std::process::Command::new(assert_cmd::cargo::cargo_bin("devenv"))
        .current_dir(&env.project)
        .envs(
            env.devenv()
                .get_envs()
                .filter(|(k, _)| *k != "FAKE_MINIKUBE_NFS_DOWN")
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .env_remove("FAKE_MINIKUBE_NFS_DOWN")
        .arg("up")
        .output()
        .unwrap();
    let again = env.minikube_calls()[before..].to_vec();
    assert!(again.iter().any(|c| c.contains("sudo mount")), "{again:?}");
    assert!(!again.iter().any(|c| c.starts_with("start")), "{again:?}");
    assert!(
        String::from_utf8_lossy(&retry.stdout).contains("mount: mounted"),
        "{}",
        String::from_utf8_lossy(&retry.stdout)
    );
}

#[test]
fn an_overlapping_foreign_export_stops_the_exports_stage_and_what_needs_it() {
    let env = kvm_env();
    let parent = env.project.parent().unwrap().canonicalize().unwrap();
    std::fs::write(
        &env.exports,
        format!(
            "{EXPORTS}{} 10.0.0.9(rw,no_subtree_check)\n",
            parent.display()
        ),
    )
    .unwrap();
    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("error at 'exports'"), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(
        stdout.contains("mount: skipped: exports did not finish"),
        "{stdout}"
    );
    assert_eq!(calls_with(&env, "ssh -p devenv-shop -- sudo mount"), 0);
}

#[test]
fn up_watch_brings_the_project_up_then_restarts_a_service_when_its_files_change() {
    use std::io::BufRead;
    let Some((env, api)) = cluster_env() else {
        return;
    };
    let mut child = env
        .background()
        .args(["up", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                if line.contains(needle) {
                    return;
                }
                seen.push(line);
            }
        }
        panic!("no {needle:?} in:\n{}", seen.join("\n"));
    };
    wait_for("shop is up");
    wait_for("watching ");
    std::fs::write(
        env.project.join("services/api/main.py"),
        "print('edited')\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let restarted = loop {
        let d = api.get("deployments", "shop", "api").unwrap();
        let stamp =
            d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
                .clone();
        if !stamp.is_null() || Instant::now() > deadline {
            break stamp;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // SAFETY: sending SIGINT to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let _ = child.wait();
    assert!(
        !restarted.is_null(),
        "the api was not restarted after its file changed"
    );
    let worker = api.get("deployments", "shop", "worker").unwrap();
    assert!(
        worker["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_null(),
        "only the service whose files changed restarts"
    );
}

#[test]
fn after_down_the_context_is_gone_as_minikube_leaves_it_and_the_next_up_brings_the_cluster_back() {
    let Some((env, _api)) = cluster_env() else {
        return;
    };
    env.devenv().arg("up").assert().success();
    env.devenv().arg("down").assert().success();
    let kubeconfig = std::fs::read_to_string(env.home.path().join("kubeconfig")).unwrap();
    assert!(!kubeconfig.contains("devenv-shop"), "{kubeconfig}");
    let out = env.devenv().args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["vm"]["state"], "stopped", "{status}");

    up_succeeds(&env);
}

/// Processes of this machine whose command line is exactly `words`.
fn processes_running(words: &[&str]) -> Vec<u32> {
    support::procs::all()
        .into_iter()
        .filter(|p| p.argv == words)
        .map(|p| p.pid)
        .collect()
}

#[test]
fn sigterm_stops_up_like_ctrl_c_and_takes_what_minikube_started_with_it() {
    let env = kvm_env();
    // The double's start runs `sleep 41`: a child of minikube, as the driver and ssh are.
    let child = spawn_up(&env, &[("FAKE_MINIKUBE_START_SLEEP", "41")]);
    let started = Instant::now();
    while processes_running(&["sleep", "41"]).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "minikube start never began"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: sending SIGTERM to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stdout.contains("vm: cancelled"), "{stdout}");
    let gone = Instant::now();
    while !processes_running(&["sleep", "41"]).is_empty() {
        assert!(
            gone.elapsed() < Duration::from_secs(2),
            "minikube's child outlived the cancelled up: {:?}",
            processes_running(&["sleep", "41"])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn quiet_up_says_nothing_when_it_succeeds_and_only_the_error_when_it_fails() {
    let Some((env, _api)) = cluster_env() else {
        return;
    };
    let out = env.devenv().args(["-q", "up"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "stage lines under -q"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");

    let failing = kvm_env().with_env("FAKE_MINIKUBE_START_EXIT", "80");
    let out = failing.devenv().args(["-q", "up"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error at 'vm'"), "{stderr}");
}

#[test]
fn on_a_dumb_terminal_up_prints_plain_stage_lines_without_escape_sequences() {
    let Some((env, _api)) = cluster_env() else {
        return;
    };
    if support::real_tool("script").is_none() {
        return;
    }
    // `script` gives devenv a real terminal (a pty) whose TERM says it takes no escapes.
    let template = env.background();
    let mut cmd = std::process::Command::new("script");
    cmd.env_clear();
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let line = format!(
        "{} up",
        devenv::process::quote(&template.get_program().to_string_lossy())
    );
    let out = cmd
        .env("TERM", "dumb")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .current_dir(&env.project)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("release: started"), "stage lines: {text}");
    assert!(!text.contains('\u{1b}'), "escape sequences: {text:?}");
}
