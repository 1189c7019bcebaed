//! `devenv top` against real processes of this machine: the hypervisor is found among the host's
//! processes by sysinfo (a real qemu, paused, stands in for the VM's), and a source that cannot
//! be read is named without hiding the others.

mod support;

use std::process::{Child, Command, Stdio};

use support::Env;

/// A real qemu process, paused before its first instruction, named like a libvirt guest;
/// killed when dropped.
struct Qemu(Child);

impl Qemu {
    fn start(qemu: &std::path::Path, guest: &str) -> Qemu {
        let child = Command::new(qemu)
            .args(["-machine", "none", "-S", "-display", "none", "-nodefaults"])
            .arg("-name")
            .arg(format!("guest={guest},debug-threads=on"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Qemu(child)
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_hypervisor_is_the_qemu_process_of_this_profile_only() {
    let Some(qemu) = support::real_tool("qemu-system-x86_64") else {
        return;
    };
    let ours = Qemu::start(&qemu, "devenv-shop");
    let _other = Qemu::start(&qemu, "devenv-shopping");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let env = Env::new();
    env.example();
    let out = env
        .devenv()
        .args(["--json", "top", "--once"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sample: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let h = &sample["hypervisor"];
    assert_eq!(h["pid"], ours.0.id(), "{sample}");
    assert!(
        h["name"].as_str().unwrap().starts_with("qemu-system"),
        "{sample}"
    );
    assert!(h["rss_bytes"].as_u64().unwrap() > 0, "{sample}");
    // No VM in the minikube double: the VM and the containers are named as not read.
    let errors = sample["errors"].to_string();
    assert!(errors.contains("vm: "), "{errors}");
    assert!(errors.contains("containers: "), "{errors}");
    assert!(out.status.success(), "the hypervisor was read");
}

#[test]
fn without_any_source_top_once_exits_1_and_says_what_it_could_not_read() {
    let env = Env::new();
    env.example();
    let out = env.devenv().args(["top", "--once"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.contains("(pid ") {
        // A qemu of a profile named devenv-shop runs on this machine; nothing to check here.
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("not read: vm:"), "{stdout}");
    assert!(stdout.contains("SERVICE"), "{stdout}");
    // The containers were not read: their figures are unknown, never shown as zero.
    let api = stdout
        .lines()
        .find(|l| l.starts_with("api "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let words: Vec<&str> = api.split_whitespace().collect();
    assert_eq!(&words[..5], ["api", "local", "-", "-", "-"], "{stdout}");
    assert!(!stdout.contains(" 0.0 "), "{stdout}");
}
