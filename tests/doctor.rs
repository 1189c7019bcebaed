//! `devenv doctor` tells the truth about this machine. The kvm2 checks run against the real
//! libvirtd that `.ci/run` starts; minikube is the double in `support/bin` (no hypervisor here).

mod support;

use predicates::prelude::*;
use serde_json::Value;
use support::{Env, real_tool};

fn doctor_json(env: &Env) -> (i32, Value) {
    let out = env.devenv().args(["--json", "doctor"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), v)
}

fn check<'a>(v: &'a Value, driver: &str, id: &str) -> &'a Value {
    v["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == driver)
        .unwrap_or_else(|| panic!("no driver {driver} in {v}"))["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {v}"))
}

fn cpu_has_virtualisation() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

#[test]
fn kvm2_status_matches_the_real_libvirtd_and_cpu_here() {
    if real_tool("virsh").is_none() {
        return;
    }
    let env = Env::new();
    let (code, v) = doctor_json(&env);
    let libvirtd = check(&v, "kvm2", "kvm2.libvirtd");
    assert_eq!(libvirtd["state"], "ok", "libvirtd answers here: {libvirtd}");
    assert!(
        libvirtd["reason"]
            .as_str()
            .unwrap()
            .contains("qemu:///system")
    );
    let kvm = check(&v, "kvm2", "kvm2.kvm");
    if cpu_has_virtualisation() {
        assert_eq!(kvm["state"], "ok", "{kvm}");
    } else {
        assert_eq!(kvm["state"], "fail", "{kvm}");
        assert!(kvm["reason"].as_str().unwrap().contains("vmx"), "{kvm}");
        assert!(kvm["fix"].as_str().is_some_and(|f| !f.is_empty()), "{kvm}");
        assert_eq!(code, 1, "the chosen driver is unhealthy");
        assert_eq!(v["ok"], false);
    }
    assert_eq!(check(&v, "kvm2", "kvm2.minikube")["state"], "ok");
}

#[test]
fn every_problem_comes_with_a_fix_line() {
    let env = Env::new().without_minikube();
    let out = env.devenv().arg("doctor").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut failures = 0;
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if t.starts_with("fail ") || t.starts_with("warn ") {
            failures += 1;
            assert!(
                lines
                    .get(i + 1)
                    .is_some_and(|n| n.trim_start().starts_with("fix: ")),
                "no fix after {l:?} in:\n{text}"
            );
        }
    }
    assert!(
        failures > 0,
        "minikube is missing, so something fails:\n{text}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn missing_minikube_is_a_failing_tool_with_the_install_command() {
    let env = Env::new().without_minikube();
    let (code, v) = doctor_json(&env);
    let tool = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "tool.minikube")
        .unwrap();
    assert_eq!(tool["state"], "fail");
    assert!(tool["fix"].as_str().unwrap().contains("minikube"), "{tool}");
    assert_eq!(code, 1);
}

#[test]
fn minikube_version_comes_from_the_binary() {
    let env = Env::new();
    let (_, v) = doctor_json(&env);
    let tool = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "tool.minikube")
        .unwrap();
    assert_eq!(tool["reason"], "minikube v1.38.1");
}

#[test]
fn helm_3_and_helm_4_are_both_accepted() {
    for name in ["helm3", "helm4"] {
        let env = Env::new();
        let Some(path) = path_with_helm(&env, name) else {
            return;
        };
        let out = env
            .devenv()
            .env("PATH", path)
            .args(["--json", "doctor"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let tool = v["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == "tool.helm")
            .unwrap();
        assert_eq!(tool["state"], "ok", "{name}: {tool}");
        let major = if name == "helm3" {
            "helm v3."
        } else {
            "helm v4."
        };
        assert!(
            tool["reason"].as_str().unwrap().starts_with(major),
            "{tool}"
        );
    }
}

#[test]
fn a_broken_devenv_toml_is_reported_and_the_machine_still_checked() {
    let env = Env::new();
    env.write("devenv.toml", "[project]\nname = \"shop\"\n[vm]\ncpu = 2\n");
    let (code, v) = doctor_json(&env);
    assert_eq!(code, 1);
    assert_eq!(v["config"]["state"], "fail");
    assert!(
        v["config"]["reason"]
            .as_str()
            .unwrap()
            .contains("devenv.toml:4:1")
    );
    assert!(!v["drivers"].as_array().unwrap().is_empty());
}

#[test]
fn a_driver_for_another_os_is_refused_with_the_alternative() {
    let env = Env::new();
    env.example();
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    env.write(
        "devenv.toml",
        &toml.replace("driver = \"auto\"", "driver = \"vfkit\""),
    );
    env.devenv()
        .arg("doctor")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("vfkit"))
        .stderr(predicate::str::contains("help:"));
}

// ---------------------------------------------------------------------------------------------
// The checks beyond the drivers: each is {id, group, state, reason, fix, doc} in `checks`.

const TROUBLESHOOTING: &str = include_str!("../docs/troubleshooting.md");

fn finding<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {v:#}"))
}

fn has_finding(v: &Value, id: &str) -> bool {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == id)
}

fn reason(c: &Value) -> &str {
    c["reason"].as_str().unwrap()
}

/// GitHub's anchor for a heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The example project with its devenv.toml edited.
fn example_with(env: &Env, edit: impl Fn(String) -> String) {
    env.example();
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    env.write("devenv.toml", &edit(toml));
}

/// Start the fake VM of the example project (profile devenv-shop).
fn start_vm(env: &Env) {
    let out = env.start_vm();
    assert!(out.status.success(), "{out:?}");
}

/// `devenv exports apply` for the running VM (its own address), so that a mount made by hand
/// is allowed by the host, as with `devenv up`.
fn export_to_vm(env: &Env) {
    env.devenv()
        .args(["exports", "apply"])
        .env("DEVENV_EXPORTS_RELOAD", "true")
        .assert()
        .success();
}

/// PATH with the real `helm3` or `helm4` first, as `helm`.
fn path_with_helm(env: &Env, name: &str) -> Option<std::ffi::OsString> {
    let helm = real_tool(name)?;
    let bin = env.home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(&helm, bin.join("helm")).unwrap();
    let path = std::env::var_os("PATH").unwrap();
    Some(std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path))).unwrap())
}

/// PATH for `devenv` with the fake minikube, without any directory that holds a `helm`.
fn path_without_helm() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(support::support_bin())
        .chain(std::env::split_paths(&path).filter(|d| !d.join("helm").exists()));
    std::env::join_paths(dirs).unwrap()
}

#[test]
fn every_problem_links_to_its_section_of_the_troubleshooting_page() {
    let env = Env::new();
    env.example();
    let (_, v) = doctor_json(&env);
    let sections: Vec<String> = TROUBLESHOOTING
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(slug)
        .collect();
    let checks = v["checks"].as_array().unwrap();
    assert!(checks.len() >= 15, "{v:#}");
    for c in checks {
        assert!(!c["id"].as_str().unwrap().is_empty(), "{c}");
        assert!(!reason(c).is_empty(), "{c}");
        let group = c["group"].as_str().unwrap();
        assert!(
            ["config", "tools", "host", "vm", "nfs", "chart", "remote"].contains(&group),
            "{c}"
        );
        if c["state"] != "ok" {
            assert!(
                c["fix"].as_str().is_some_and(|f| !f.is_empty()),
                "no fix: {c}"
            );
            let doc = c["doc"].as_str().unwrap();
            let anchor = doc
                .split_once("/docs/troubleshooting.md#")
                .filter(|(base, _)| base.starts_with("https://"))
                .map(|(_, anchor)| anchor)
                .unwrap_or_else(|| panic!("{doc} is not a troubleshooting section"));
            assert!(sections.iter().any(|s| s == anchor), "no section #{anchor}");
        }
    }
}

#[test]
fn human_output_groups_the_checks_after_the_drivers() {
    let env = Env::new();
    env.example();
    let out = env.devenv().arg("doctor").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut at = 0;
    let mut headings = vec!["VM drivers", "Tools"];
    if cfg!(target_os = "linux") {
        headings.push("Host");
    }
    headings.extend(["VM and source mount", "NFS", "Chart", "Remote cluster"]);
    for heading in headings {
        let found = text[at..]
            .lines()
            .position(|l| l.starts_with(heading))
            .unwrap_or_else(|| panic!("no {heading:?} after byte {at} in:\n{text}"));
        at += text[at..]
            .lines()
            .take(found + 1)
            .map(|l| l.len() + 1)
            .sum::<usize>();
    }
}

#[test]
fn outside_a_project_only_the_machine_is_checked() {
    let env = Env::new();
    let (_, v) = doctor_json(&env);
    assert!(has_finding(&v, "vm.virtualbox"));
    assert!(has_finding(&v, "nfs.server"));
    for id in [
        "vm.mount",
        "vm.stat-latency",
        "nfs.exports",
        "chart.render",
        "remote.context",
    ] {
        assert!(!has_finding(&v, id), "{id} needs a project: {v:#}");
    }
}

#[test]
fn doctor_only_reads() {
    let env = Env::new();
    env.example();
    start_vm(&env);
    let before = std::fs::read(&env.exports).unwrap();
    let _ = doctor_json(&env);
    assert_eq!(std::fs::read(&env.exports).unwrap(), before);
    let calls = env.minikube_calls();
    assert!(
        calls
            .iter()
            .any(|c| c == "ssh -p devenv-shop -- cat /proc/mounts"),
        "{calls:?}"
    );
    for c in calls.iter().skip(1) {
        assert!(
            [
                "version",
                "status",
                "profile list",
                "ip",
                "ssh -p devenv-shop -- cat /proc/mounts",
                "ssh -p devenv-shop -- sh -c"
            ]
            .iter()
            .any(|ok| c.starts_with(ok)),
            "doctor ran `minikube {c}`"
        );
    }
}

#[test]
fn a_virtualbox_profile_is_reported_with_the_seeds_figures_and_the_way_out() {
    let env = Env::new();
    env.example();
    let out = env.minikube(&["start", "-p", "old", "--driver=virtualbox"]);
    assert!(out.status.success());
    let (_, v) = doctor_json(&env);
    let c = finding(&v, "vm.virtualbox");
    assert_eq!(c["state"], "warn", "{c}");
    assert!(
        reason(c).starts_with("minikube profile old on the virtualbox driver"),
        "{c}"
    );
    assert!(reason(c).contains("300% CPU, 4 GB of RAM"), "{c}");
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .starts_with("minikube stop -p old"),
        "{c}"
    );
    assert!(
        c["doc"].as_str().is_some_and(
            |d| d.starts_with("https://") && d.ends_with("/docs/troubleshooting.md#virtualbox")
        ),
        "{c}"
    );
}

#[test]
fn no_virtualbox_profile_is_ok() {
    let env = Env::new();
    env.example();
    start_vm(&env);
    let (_, v) = doctor_json(&env);
    assert_eq!(finding(&v, "vm.virtualbox")["state"], "ok");
}

#[test]
fn a_stopped_vm_is_reported_as_such_and_not_entered() {
    let env = Env::new();
    env.example();
    start_vm(&env);
    assert!(
        env.minikube(&["stop", "-p", "devenv-shop"])
            .status
            .success()
    );
    let (_, v) = doctor_json(&env);
    let c = finding(&v, "vm.mount");
    assert_eq!(c["state"], "warn");
    assert_eq!(
        reason(c),
        "devenv-shop is stopped: the source mount in the VM was not checked"
    );
    assert_eq!(c["fix"], "devenv up");
    // The host side is timed for real: on a loaded machine its p99 can pass the slow-disk
    // threshold and warn about the host instead. Either way only the host was timed.
    let latency = finding(&v, "vm.stat-latency");
    assert!(reason(latency).starts_with("host: p50 "), "{latency}");
    match latency["state"].as_str() {
        Some("ok") => assert!(
            reason(latency).ends_with("devenv-shop is not running, so only the host was timed"),
            "{latency}"
        ),
        Some("warn") => assert!(
            reason(latency).contains("the host's own file system is slow"),
            "{latency}"
        ),
        _ => panic!("{latency}"),
    }
    assert!(!env.minikube_calls().iter().any(|c| c.starts_with("ssh")));
}

#[test]
fn a_running_vm_without_the_source_mount_fails_with_devenv_up() {
    let env = Env::new();
    env.example();
    start_vm(&env);
    let (code, v) = doctor_json(&env);
    let c = finding(&v, "vm.mount");
    assert_eq!(c["state"], "fail", "{c}");
    assert!(
        reason(c).starts_with("nothing is mounted at /src in devenv-shop"),
        "{c}"
    );
    assert_eq!(c["fix"], "devenv up");
    assert_eq!(code, 1);
}

#[test]
fn the_nfs_mount_devenv_makes_passes_and_stat_is_probed_through_it() {
    let env = Env::new();
    env.example();
    start_vm(&env);
    export_to_vm(&env);
    let source = env.project.canonicalize().unwrap();
    let mount = format!(
        "sudo mount -t nfs -o vers=3,tcp,nolock,noacl,async,actimeo=60,lookupcache=positive 192.168.39.1:{} /src",
        source.display()
    );
    for line in ["sudo mkdir -p /src", mount.as_str()] {
        let out = env.minikube(&["ssh", "-p", "devenv-shop", "--", line]);
        assert!(out.status.success(), "{line}: {out:?}");
    }
    let (_, v) = doctor_json(&env);
    let c = finding(&v, "vm.mount");
    assert_eq!(c["state"], "ok", "{c}");
    assert_eq!(
        reason(c),
        format!(
            "/src is nfs from 192.168.39.1:{} with vers=3,tcp,nolock,noacl,async,actimeo=60,lookupcache=positive",
            source.display()
        )
    );
    // One ssh with the file names as separate quoted words after `sh -c SCRIPT sh /src`.
    let probe = env
        .minikube_calls()
        .into_iter()
        .find(|c| c.starts_with("ssh -p devenv-shop -- sh -c "))
        .expect("the stat probe ran in the VM");
    assert!(probe.contains(" sh /src "), "{probe}");
    assert!(probe.contains(" devenv.toml"), "{probe}");
    let latency = finding(&v, "vm.stat-latency");
    assert!(reason(latency).starts_with("host: p50 "), "{latency}");
}

#[test]
fn mount_options_missing_from_the_mount_are_named() {
    let env = Env::new();
    env.example();
    start_vm(&env);
    export_to_vm(&env);
    let source = env.project.canonicalize().unwrap();
    let mount = format!(
        "sudo mount -t nfs -o vers=3,tcp 192.168.39.1:{} /src",
        source.display()
    );
    for line in ["sudo mkdir -p /src", mount.as_str()] {
        assert!(
            env.minikube(&["ssh", "-p", "devenv-shop", "--", line])
                .status
                .success()
        );
    }
    let (_, v) = doctor_json(&env);
    let c = finding(&v, "vm.mount");
    assert_eq!(c["state"], "warn", "{c}");
    assert!(reason(c).contains("without nolock,noacl"), "{c}");
    assert_eq!(
        c["fix"],
        "minikube ssh -p devenv-shop -- 'sudo umount /src' && devenv up"
    );
}

#[test]
fn a_missing_exports_block_warns_before_up_and_fails_with_the_vm_running() {
    let env = Env::new();
    env.example();
    let (_, v) = doctor_json(&env);
    let c = finding(&v, "nfs.exports");
    assert_eq!(c["state"], "warn", "{c}");
    assert_eq!(c["fix"], "devenv exports apply");
    start_vm(&env);
    let (_, v) = doctor_json(&env);
    assert_eq!(finding(&v, "nfs.exports")["state"], "fail");
}

/// The block `devenv exports` would write, put into the test's exports file.
fn write_block(env: &Env, edit: impl Fn(&str) -> String) {
    let out = env.devenv().args(["--json", "exports"]).output().unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let uid = shown["uid"].as_u64().unwrap();
    let lines: Vec<String> = shown["wanted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| edit(l.as_str().unwrap()))
        .collect();
    std::fs::write(
        &env.exports,
        format!(
            "# /etc/exports of a test\n# BEGIN devenv shop uid={uid}\n{}\n# END devenv shop uid={uid}\n",
            lines.join("\n")
        ),
    )
    .unwrap();
}

#[test]
fn the_block_devenv_writes_passes_every_exports_check() {
    let env = Env::new();
    env.example();
    start_vm(&env);
    write_block(&env, str::to_string);
    let (_, v) = doctor_json(&env);
    for id in ["nfs.exports", "nfs.exports-valid", "nfs.exports-scope"] {
        assert_eq!(finding(&v, id)["state"], "ok", "{}", finding(&v, id));
    }
    assert!(reason(finding(&v, "nfs.exports-scope")).starts_with("exported only to 192.168.39."));
}

#[test]
fn an_export_to_every_host_fails_the_scope_rule() {
    let env = Env::new();
    env.example();
    write_block(&env, |l| l.replace("192.168.39.0/24", "*"));
    let (code, v) = doctor_json(&env);
    let c = finding(&v, "nfs.exports-scope");
    assert_eq!(c["state"], "fail", "{c}");
    assert_eq!(c["fix"], "devenv exports apply");
    assert_eq!(code, 1);
}

#[test]
fn an_export_to_another_network_than_the_running_vm_fails() {
    let env = Env::new();
    env.example();
    start_vm(&env);
    write_block(&env, |l| {
        let client = l
            .split(' ')
            .nth(1)
            .unwrap()
            .split('(')
            .next()
            .unwrap()
            .to_string();
        l.replace(&client, "10.1.2.3")
    });
    let (_, v) = doctor_json(&env);
    let c = finding(&v, "nfs.exports-scope");
    assert_eq!(c["state"], "fail", "{c}");
    assert!(
        reason(c).contains("but the VM's address is 192.168.39."),
        "{c}"
    );
}

#[test]
fn powersave_and_low_inotify_limits_on_the_host_are_reported() {
    let env = Env::new();
    let root = env.home.path().join("host");
    let cpu = root.join("sys/devices/system/cpu/cpu0/cpufreq");
    let inotify = root.join("proc/sys/fs/inotify");
    std::fs::create_dir_all(&cpu).unwrap();
    std::fs::create_dir_all(&inotify).unwrap();
    std::fs::write(cpu.join("scaling_governor"), "powersave\n").unwrap();
    std::fs::write(inotify.join("max_user_watches"), "10\n").unwrap();
    std::fs::write(inotify.join("max_user_instances"), "128\n").unwrap();
    let env = env.with_env("DEVENV_HOST_ROOT", &root);
    env.example();
    let (_, v) = doctor_json(&env);
    if !cfg!(target_os = "linux") {
        return;
    }
    let c = finding(&v, "host.cpu-governor");
    assert_eq!(c["state"], "warn", "{c}");
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .starts_with("sudo cpupower frequency-set -g performance")
    );
    let c = finding(&v, "host.inotify-watches");
    assert_eq!(c["state"], "warn", "{c}");
    assert!(
        reason(c).starts_with("fs.inotify.max_user_watches = 10, but the source tree has "),
        "{c}"
    );
    assert!(c["fix"].as_str().unwrap().contains("/etc/sysctl.d/"), "{c}");
    assert_eq!(finding(&v, "host.inotify-instances")["state"], "ok");
}

/// `doctor --json` with `helm` on PATH being the real Helm 3 or 4.
fn doctor_with_helm(env: &Env, helm: &std::path::Path) -> Value {
    let bin = env.home.path().join("helm-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let _ = std::fs::remove_file(bin.join("helm"));
    std::os::unix::fs::symlink(helm, bin.join("helm")).unwrap();
    let path = std::env::join_paths(
        [bin, support::support_bin()]
            .into_iter()
            .chain(std::env::split_paths(&path_without_helm())),
    )
    .unwrap();
    let out = env
        .devenv()
        .env("PATH", path)
        .args(["--json", "doctor"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_example_chart_is_clean_on_every_chart_check_with_helm_3_and_4() {
    for name in ["helm3", "helm4"] {
        let Some(helm) = real_tool(name) else { return };
        let env = Env::new();
        env.example();
        let v = doctor_with_helm(&env, &helm);
        for id in [
            "chart.render",
            "chart.cpu-limit-ratio",
            "chart.cpu-limits",
            "chart.prestop",
            "chart.max-pods",
        ] {
            assert_eq!(
                finding(&v, id)["state"],
                "ok",
                "{name}: {}",
                finding(&v, id)
            );
        }
        assert_eq!(
            reason(finding(&v, "chart.prestop")),
            "every Deployment behind an Ingress sleeps in preStop (Deployment/api)"
        );
    }
}

#[test]
fn a_cpu_limit_in_the_dev_values_is_reported_with_both_rules() {
    let Some(helm) = real_tool("helm3") else {
        return;
    };
    let env = Env::new();
    env.example();
    let values = std::fs::read_to_string(env.project.join("deploy/values-dev.yaml")).unwrap();
    env.write(
        "deploy/values-dev.yaml",
        &values.replace(
            "api:\n  replicas: 1\n",
            "api:\n  replicas: 1\n  resources:\n    requests:\n      cpu: 500m\n    limits:\n      cpu: 500m\n",
        ),
    );
    let v = doctor_with_helm(&env, &helm);
    let ratio = finding(&v, "chart.cpu-limit-ratio");
    assert_eq!(ratio["state"], "warn", "{ratio}");
    assert!(
        reason(ratio).contains("Deployment/api container api: limit 500m is 1.0× its request 500m"),
        "{ratio}"
    );
    let limits = finding(&v, "chart.cpu-limits");
    assert_eq!(limits["state"], "warn", "{limits}");
    assert!(reason(limits).contains("p99 100 ms to 10 ms"), "{limits}");
}

#[test]
fn an_ingress_backend_without_a_prestop_sleep_is_reported() {
    let Some(helm) = real_tool("helm3") else {
        return;
    };
    let env = Env::new();
    env.example();
    let api = env.project.join("deploy/chart/templates/api.yaml");
    let text = std::fs::read_to_string(&api).unwrap();
    assert!(text.contains("command: [\"sleep\", \"5\"]"));
    std::fs::write(
        &api,
        text.replace("command: [\"sleep\", \"5\"]", "command: [\"true\"]"),
    )
    .unwrap();
    let v = doctor_with_helm(&env, &helm);
    let c = finding(&v, "chart.prestop");
    assert_eq!(c["state"], "warn", "{c}");
    assert!(
        reason(c).contains("Deployment/api container api (behind Ingress/api)"),
        "{c}"
    );
}

#[test]
fn more_replicas_than_max_pods_are_reported() {
    let Some(helm) = real_tool("helm3") else {
        return;
    };
    let env = Env::new();
    example_with(&env, |t| t.replace("max_pods = 60", "max_pods = 20"));
    let values = std::fs::read_to_string(env.project.join("deploy/values-dev.yaml")).unwrap();
    env.write(
        "deploy/values-dev.yaml",
        &values.replace("worker:\n  replicas: 1", "worker:\n  replicas: 12"),
    );
    let v = doctor_with_helm(&env, &helm);
    let c = finding(&v, "chart.max-pods");
    assert_eq!(c["state"], "warn", "{c}");
    assert!(
        reason(c).starts_with(
            "15 pods from the chart + about 8 of minikube's own = 23, vm.max_pods = 20"
        ),
        "{c}"
    );
}

#[test]
fn without_helm_the_chart_check_gives_the_install_command() {
    let env = Env::new();
    env.example();
    let out = env
        .devenv()
        .env("PATH", path_without_helm())
        .args(["--json", "doctor"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = finding(&v, "chart.render");
    assert_eq!(c["state"], "warn", "{c}");
    assert!(reason(c).starts_with("helm is not installed"), "{c}");
    assert!(c["fix"].as_str().unwrap().contains("helm"), "{c}");
    assert!(!has_finding(&v, "chart.cpu-limits"));
}

#[test]
fn without_a_remote_section_there_is_no_remote_check() {
    let env = Env::new();
    example_with(&env, |t| {
        t.replace(
            "[remote]\ncontext = \"dev-cluster\"\nconnect = \"tunnel\"\n",
            "",
        )
    });
    let (_, v) = doctor_json(&env);
    assert!(!has_finding(&v, "remote.context"), "{v:#}");
}

/// Make the example's search service run on the remote cluster by the team's default.
fn offload_search(env: &Env) {
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    env.write(
        "devenv.toml",
        &toml.replacen(
            "port = 9200\noffload = \"local\"",
            "port = 9200\noffload = \"remote\"",
            1,
        ),
    );
}

#[test]
fn a_missing_remote_context_only_warns_while_no_service_is_offloaded() {
    if real_tool("kubectl").is_none() {
        return;
    }
    let env = Env::new();
    env.example();
    let (_, v) = doctor_json(&env);
    let c = finding(&v, "remote.context");
    assert_eq!(c["state"], "warn", "{c}");
    assert!(
        reason(c).ends_with("(no service is offloaded yet, so nothing needs it)"),
        "{c}"
    );
}

#[test]
fn a_remote_context_missing_from_the_kubeconfig_fails_with_how_to_add_it() {
    if real_tool("kubectl").is_none() {
        return;
    }
    let env = Env::new();
    env.example();
    offload_search(&env);
    let (code, v) = doctor_json(&env);
    let c = finding(&v, "remote.context");
    assert_eq!(c["state"], "fail", "{c}");
    assert!(
        reason(c).starts_with("your kubeconfig has no context dev-cluster"),
        "{c}"
    );
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .ends_with("kubectl config get-contexts dev-cluster")
    );
    assert!(!has_finding(&v, "remote.access"));
    assert_eq!(code, 1);
}

#[test]
fn an_unreachable_remote_cluster_fails_with_the_kubectl_command_that_shows_why() {
    if real_tool("kubectl").is_none() {
        return;
    }
    let env = Env::new();
    env.example();
    offload_search(&env);
    // A cluster on a port nothing listens on: the connection is refused at once.
    env.write(
        "../../.kube/config",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dev\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: dev-cluster\n  context:\n    cluster: dev\n    user: ann\nusers:\n- name: ann\n  user:\n    token: t\ncurrent-context: dev-cluster\n",
    );
    let (_, v) = doctor_json(&env);
    assert_eq!(finding(&v, "remote.context")["state"], "ok");
    let c = finding(&v, "remote.access");
    assert_eq!(c["state"], "fail", "{c}");
    assert!(reason(c).starts_with("dev-cluster does not answer"), "{c}");
    assert_eq!(c["fix"], "kubectl --context dev-cluster version");
}

/// The example project with `[requires]` set to `table` (TOML lines).
fn require(env: &Env, table: &str) {
    example_with(env, |toml| format!("{toml}\n[requires]\n{table}\n"));
}

fn tool<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {v}"))
}

#[test]
fn a_tool_outside_requires_fails_with_the_installed_version_the_range_and_the_fix() {
    let env = Env::new();
    // The minikube double says v1.38.1.
    require(&env, "minikube = \">=1.33, <1.36\"");
    let (code, v) = doctor_json(&env);
    let m = tool(&v, "tool.minikube");
    assert_eq!(m["state"], "fail", "{m}");
    assert_eq!(
        reason(m),
        "minikube 1.38.1 is installed, and devenv.toml's [requires] minikube is \">=1.33, <1.36\""
    );
    assert!(
        m["fix"]
            .as_str()
            .unwrap()
            .contains("/releases/download/v1.33.0/minikube-linux-"),
        "the lowest version within the range, from minikube's releases: {m}"
    );
    assert!(
        m["doc"].as_str().unwrap().ends_with("#required-versions"),
        "{m}"
    );
    assert_eq!(code, 1);
}

#[test]
fn a_tool_within_requires_says_so_and_devenv_checks_itself() {
    let env = Env::new();
    require(&env, "minikube = \"~1.38\"\ndevenv = \">=99\"");
    let (_, v) = doctor_json(&env);
    let m = tool(&v, "tool.minikube");
    assert_eq!(m["state"], "ok", "{m}");
    assert_eq!(
        reason(m),
        "minikube v1.38.1 (devenv.toml requires \"~1.38\")"
    );
    let d = tool(&v, "tool.devenv");
    assert_eq!(d["state"], "fail", "{d}");
    assert!(
        reason(d).starts_with(&format!(
            "devenv {} is installed",
            env!("CARGO_PKG_VERSION")
        )),
        "{d}"
    );
    assert!(
        !v["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["id"] == "remote.version"),
        "nothing asks the shared cluster without requires.kubernetes"
    );
}

#[test]
fn requires_helm_below_4_keeps_the_real_helm_4_away() {
    for (name, state) in [("helm3", "ok"), ("helm4", "fail")] {
        let env = Env::new();
        require(&env, "helm = \">=3.14, <4\"");
        let Some(path) = path_with_helm(&env, name) else {
            return;
        };
        let out = env
            .devenv()
            .env("PATH", path)
            .args(["--json", "doctor"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let h = tool(&v, "tool.helm");
        assert_eq!(h["state"], state, "{name}: {h}");
        if state == "fail" {
            assert!(reason(h).starts_with("helm 4."), "{h}");
        }
    }
}

/// Every file of a bundle, by its name inside `devenv-bundle/`.
fn open_bundle(path: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut e, &mut text).unwrap();
            let name = name
                .strip_prefix("devenv-bundle/")
                .unwrap_or_else(|| panic!("{name} outside devenv-bundle/"))
                .to_string();
            (name, text)
        })
        .collect()
}

/// A second kubeconfig with a client certificate, key and token for another cluster.
fn planted_kubeconfig(env: &Env) -> std::path::PathBuf {
    let path = env.home.path().join("other.kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://admin:planted-url-password@prod.example:6443\n\
         users:\n- name: prod\n  user:\n    token: planted-kube-token\n    client-key-data: cGxhbnRlZC1rZXktZGF0YQ==\n    client-certificate-data: cGxhbnRlZC1jZXJ0\n\
         contexts:\n- name: prod\n  context:\n    cluster: prod\n    user: prod\n",
    )
    .unwrap();
    path
}

/// No planted secret anywhere in the bundle.
fn assert_clean(files: &std::collections::BTreeMap<String, String>, planted: &[&str]) {
    for (name, text) in files {
        for secret in planted {
            assert!(
                !text.contains(secret),
                "{secret} leaked into {name}:\n{text}"
            );
        }
    }
}

#[test]
fn a_bundle_from_a_broken_laptop_opens_says_what_is_missing_and_holds_no_planted_secret() {
    let env = Env::new().without_minikube();
    env.example();
    // A broken devenv.toml with a secret in it, and a kubeconfig full of credentials.
    env.edit_config(|toml| {
        toml.replacen(
            "[project]\n",
            "[project]\napi_token = \"planted-config-token\"\n# admin password: planted-comment-password\n",
            1,
        )
    });
    let kubeconfig = planted_kubeconfig(&env);
    let out = env
        .devenv()
        .env("KUBECONFIG", &kubeconfig)
        .args(["doctor", "--bundle", "ticket.tar.gz"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ticket.tar.gz (secrets removed)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("doctor.json"),
        "it lists what it wrote: {stdout}"
    );
    let files = open_bundle(&env.project.join("ticket.tar.gz"));
    for name in [
        "doctor.json",
        "versions.txt",
        "system.json",
        "devenv.toml",
        "devenv.toml.error.txt",
        "kubeconfig.yaml",
        "MISSING.txt",
    ] {
        assert!(files.contains_key(name), "no {name}: {:?}", files.keys());
    }
    assert!(
        files["devenv.toml.error.txt"].contains("expected one of: name, chart"),
        "{}",
        files["devenv.toml.error.txt"]
    );
    assert!(
        files["versions.txt"].contains("$ minikube\n(`minikube` is not installed"),
        "{}",
        files["versions.txt"]
    );
    assert!(
        files["MISSING.txt"].contains("devenv.toml cannot be read"),
        "{}",
        files["MISSING.txt"]
    );
    let doctor: Value = serde_json::from_str(&files["doctor.json"]).unwrap();
    assert_eq!(doctor["ok"], false);
    assert_clean(
        &files,
        &[
            "planted-config-token",
            "planted-comment-password",
            "planted-kube-token",
            "cGxhbnRlZC1rZXktZGF0YQ",
            "cGxhbnRlZC1jZXJ0",
            "planted-url-password",
        ],
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.project.join("ticket.tar.gz"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only the user may read it");
    }
}

#[test]
fn a_bundle_of_a_running_project_holds_its_logs_events_and_runs_without_their_secrets() {
    let Some((env, api)) = support::cluster_env() else {
        return;
    };
    let out = env.devenv().arg("up").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Secrets where each source could carry one.
    let project_dir = std::fs::read_dir(env.state.join("projects"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(
        project_dir.join("tunnel.log"),
        "forward postgres: Authorization: Bearer planted-tunnel-token\n",
    )
    .unwrap();
    let run = std::fs::read_dir(project_dir.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut log = std::fs::read_to_string(&run).unwrap();
    log.push_str("{\"stage\":\"release\",\"event\":\"line\",\"line\":\"DB_PASSWORD=planted-run-password\"}\n");
    std::fs::write(&run, log).unwrap();
    std::fs::create_dir_all(env.minikube_state.join("logs")).unwrap();
    std::fs::write(
        env.minikube_state.join("logs/devenv-shop"),
        "I1207 apiserver flags: --token-auth-file=/x --password planted-minikube-password\n\
         -----BEGIN RSA PRIVATE KEY-----\nplanted-pem-body\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    api.create(serde_json::json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "api.1", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "api-1"},
        "reason": "Failed", "type": "Warning",
        "message": "connect postgres://app:planted-event-password@postgres:5432 failed",
        "lastTimestamp": "2026-12-07T05:00:00Z",
    }));

    let out = env
        .devenv()
        .args(["--json", "doctor", "--bundle", "b.tar.gz"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(v["bundle"].as_str().unwrap().ends_with("b.tar.gz"), "{v}");
    let files = open_bundle(&env.project.join("b.tar.gz"));
    for name in [
        "state.json",
        "tunnel.log",
        "minikube-logs.txt",
        "minikube-status.json",
        "events.json",
        "exports.txt",
        "kubeconfig.yaml",
    ] {
        assert!(
            files.contains_key(name),
            "no {name}: {:?} {v}",
            files.keys()
        );
    }
    assert!(
        files.keys().any(|k| k.starts_with("runs/up-")),
        "{:?}",
        files.keys()
    );
    assert!(
        files["events.json"].contains("postgres://[REDACTED]@postgres:5432"),
        "{}",
        files["events.json"]
    );
    assert!(
        files["minikube-logs.txt"].contains("==> Last Start <=="),
        "{}",
        files["minikube-logs.txt"]
    );
    assert!(
        files["tunnel.log"].contains("Bearer [REDACTED]"),
        "{}",
        files["tunnel.log"]
    );
    assert_clean(
        &files,
        &[
            "planted-tunnel-token",
            "planted-run-password",
            "planted-minikube-password",
            "planted-pem-body",
            "planted-event-password",
        ],
    );
}
