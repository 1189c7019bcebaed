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
        let Some(helm) = real_tool(name) else { return };
        let env = Env::new();
        let bin = env.home.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(&helm, bin.join("helm")).unwrap();
        let path = std::env::join_paths(
            std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
        )
        .unwrap();
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
