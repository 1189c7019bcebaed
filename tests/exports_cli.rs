//! `devenv exports` on a temp exports file (never the machine's): apply, update, remove, the
//! backup, conflicts, reload failures, a writer killed at random points, and concurrent writers.
//! The NFS server reload is replaced through `DEVENV_EXPORTS_RELOAD` (the real one would reload
//! the machine's server).

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use predicates::prelude::*;
use support::Env;

const FOREIGN: &str = "# hand-written\n/srv/share 10.0.0.5(ro,no_subtree_check)\n# VAGRANT-BEGIN: 501 3f2a\n\"/Users/ann/vm\" 192.168.56.10(rw,no_subtree_check,all_squash,anonuid=501,anongid=20,fsid=123)\n# VAGRANT-END: 501 3f2a\n";

fn env() -> Env {
    let env = Env::new();
    env.example();
    std::fs::write(&env.exports, FOREIGN).unwrap();
    env
}

fn exports_cmd(env: &Env) -> assert_cmd::Command {
    let mut cmd = env.devenv();
    cmd.env("DEVENV_EXPORTS_RELOAD", "true").arg("exports");
    cmd
}

fn read(env: &Env) -> String {
    std::fs::read_to_string(&env.exports).unwrap()
}

#[test]
fn apply_adds_the_block_and_remove_restores_the_file_byte_for_byte() {
    let env = env();
    exports_cmd(&env)
        .arg("apply")
        .assert()
        .success()
        .stdout(predicate::str::contains("+# BEGIN devenv shop uid="));
    let text = read(&env);
    assert!(text.starts_with(FOREIGN), "{text}");
    assert!(text.contains(&format!(
        "\"{}\" 192.168.39.0/24(rw,async,no_subtree_check,all_squash,",
        env.project.canonicalize().unwrap().display()
    )));
    exports_cmd(&env)
        .arg("apply")
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to change"));
    exports_cmd(&env).arg("remove").assert().success();
    assert_eq!(read(&env), FOREIGN);
}

#[test]
fn the_previous_version_is_kept_as_a_backup() {
    let env = env();
    exports_cmd(&env).arg("apply").assert().success();
    let backup = env.exports.with_file_name("exports.devenv.bak");
    assert_eq!(std::fs::read_to_string(backup).unwrap(), FOREIGN);
}

#[test]
fn dry_run_prints_the_diff_and_writes_nothing() {
    let env = env();
    exports_cmd(&env)
        .args(["apply", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("would change"))
        .stdout(predicate::str::contains(" # VAGRANT-END: 501 3f2a"))
        .stdout(predicate::str::contains("+# END devenv shop uid="));
    assert_eq!(read(&env), FOREIGN);
}

#[test]
fn show_reports_absent_then_up_to_date() {
    let env = env();
    exports_cmd(&env)
        .assert()
        .success()
        .stdout(predicate::str::contains("not present"));
    exports_cmd(&env).arg("apply").assert().success();
    let out = exports_cmd(&env).arg("--json").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["present"], true);
    assert_eq!(v["up_to_date"], true);
    assert_eq!(v["client"], "192.168.39.0/24");
}

#[test]
fn a_running_vm_gets_the_export_for_its_own_address_only() {
    let env = env();
    let out = Command::new(support::support_bin().join("minikube"))
        .args([
            "start",
            "-p",
            "devenv-shop",
            "--driver=kvm2",
            "--container-runtime=docker",
        ])
        .env("FAKE_MINIKUBE_STATE", &env.minikube_state)
        .env("FAKE_MINIKUBE_SUBNET", "192.168.50")
        .output()
        .unwrap();
    assert!(out.status.success());
    exports_cmd(&env).arg("apply").assert().success();
    assert!(read(&env).contains(" 192.168.50.10(rw,"), "{}", read(&env));
}

#[test]
fn a_foreign_export_of_a_parent_directory_stops_everything() {
    let env = env();
    let parent = env.project.parent().unwrap().canonicalize().unwrap();
    let foreign = format!(
        "{FOREIGN}{} 10.0.0.9(rw,no_subtree_check)\n",
        parent.display()
    );
    std::fs::write(&env.exports, &foreign).unwrap();
    exports_cmd(&env)
        .arg("apply")
        .assert()
        .failure()
        .stderr(predicate::str::contains("line 6"))
        .stderr(predicate::str::contains("help:"));
    assert_eq!(read(&env), foreign, "nothing changed");
}

#[test]
fn a_failed_reload_restores_the_previous_file_and_says_so() {
    let env = env();
    env.devenv()
        .env("DEVENV_EXPORTS_RELOAD", "false")
        .args(["exports", "apply"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("restored from its backup"));
    assert_eq!(read(&env), FOREIGN);
}

#[test]
fn a_missing_exports_file_is_created() {
    let env = env();
    std::fs::remove_file(&env.exports).unwrap();
    exports_cmd(&env).arg("apply").assert().success();
    assert!(read(&env).starts_with("# BEGIN devenv shop uid="));
    exports_cmd(&env).arg("remove").assert().success();
    assert_eq!(read(&env), "");
}

/// A writer killed at any point leaves the old or the new file, never a mix. The foreign part is
/// large so that killing mid-write is likely.
#[test]
fn a_writer_killed_at_random_points_never_leaves_a_partial_file() {
    let env = env();
    let big: String = (0..40_000)
        .map(|i| format!("# foreign comment line {i}\n"))
        .collect();
    std::fs::write(&env.exports, &big).unwrap();
    exports_cmd(&env).arg("apply").assert().success();
    let with_block = read(&env);
    exports_cmd(&env).arg("remove").assert().success();
    assert_eq!(read(&env), big);
    let bin = assert_cmd::cargo::cargo_bin("devenv");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let runs = 200;
    for i in 0..runs {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let action = if i % 2 == 0 { "apply" } else { "remove" };
        let mut child = Command::new(&bin)
            .current_dir(&env.project)
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", env.home.path())
            .env("DEVENV_HOME", &env.state)
            .env("DEVENV_EXPORTS_FILE", &env.exports)
            .env("DEVENV_EXPORTS_RELOAD", "true")
            .env("FAKE_MINIKUBE_STATE", &env.minikube_state)
            .args(["exports", action])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(seed % 40_000));
        let _ = child.kill();
        let _ = child.wait();
        let now = read(&env);
        assert!(
            now == big || now == with_block,
            "run {i}: the file is neither version ({} bytes)",
            now.len()
        );
    }
}

#[test]
fn eight_concurrent_writers_with_their_own_temp_dirs_each_leave_their_block_exactly_once() {
    let env = Env::new();
    std::fs::write(&env.exports, FOREIGN).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("devenv");
    let mut projects = Vec::new();
    for n in 0..8 {
        let dir = env.home.path().join(format!("p{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let name = format!("shop{n}");
        env.devenv()
            .current_dir(&dir)
            .args(["init", "--example", "--name", &name])
            .assert()
            .success();
        projects.push((dir, name));
    }
    let children: Vec<_> = projects
        .iter()
        .map(|(dir, _)| {
            // Each its own temp directory, as per-user TMPDIRs on macOS, `nix develop` or sudo
            // give them: the lock must not live there.
            let tmp = dir.join("tmp");
            std::fs::create_dir_all(&tmp).unwrap();
            Command::new(&bin)
                .current_dir(dir)
                .env("TMPDIR", &tmp)
                .env("PATH", std::env::var_os("PATH").unwrap())
                .env("HOME", env.home.path())
                .env("DEVENV_HOME", &env.state)
                .env("DEVENV_EXPORTS_FILE", &env.exports)
                .env("DEVENV_EXPORTS_RELOAD", "true")
                .env("FAKE_MINIKUBE_STATE", &env.minikube_state)
                .args(["exports", "apply"])
                .output_async()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = read(&env);
    assert!(text.starts_with(FOREIGN));
    for (_, name) in &projects {
        assert_eq!(
            text.matches(&format!("# BEGIN devenv {name} uid=")).count(),
            1,
            "{name} in:\n{text}"
        );
    }
}

trait SpawnPiped {
    fn output_async(&mut self) -> std::process::Child;
}

impl SpawnPiped for Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

#[test]
fn temp_files_a_killed_writer_left_beside_the_exports_file_are_cleared_by_the_next_one() {
    let env = env();
    let dir = env.exports.parent().unwrap();
    let stale = dir.join(".exports.devenv-Xk3p9q");
    std::fs::write(&stale, "half a file\n").unwrap();
    let check = dir.join(".exports.devenv-check-7bT2aa");
    std::fs::write(&check, "half a check\n").unwrap();
    let unrelated = dir.join(".exports.swp");
    std::fs::write(&unrelated, "an editor's\n").unwrap();
    exports_cmd(&env).arg("apply").assert().success();
    assert!(!stale.exists() && !check.exists());
    assert_eq!(
        std::fs::read_to_string(&unrelated).unwrap(),
        "an editor's\n"
    );
    assert!(read(&env).starts_with(FOREIGN));
}

#[test]
fn quiet_apply_prints_nothing_and_still_writes_the_block() {
    let env = env();
    let out = exports_cmd(&env)
        .args(["apply"])
        .arg("-q")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert!(read(&env).contains("# BEGIN devenv shop uid="));
}
