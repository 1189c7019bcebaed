//! kvm2: minikube's Linux driver, a KVM guest managed by the system libvirt daemon
//! (`qemu:///system`).
//!
//! The checks follow what a `minikube start --driver=kvm2` needs, in the order a new machine
//! usually lacks it: minikube and its driver, a CPU and kernel that can run KVM guests, the right
//! to talk to libvirtd, libvirtd itself, and libvirt's `default` network, which minikube attaches
//! every kvm2 VM to. Each one only reads (`virsh` queries, `/proc/cpuinfo`, `/dev/kvm`); nothing
//! is installed or started. Limits: the fixes are written for Debian and Ubuntu; and libvirt
//! reports KVM guests as available whenever `/dev/kvm` exists, even on a CPU without vmx/svm where
//! they hang, so the CPU flags are read directly.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::host::{Arch, BoxFuture, Host, Os};
use crate::probe::{failure_line, last_line, not_checked, parse_version};
use crate::status::{Check, CheckState, DriverStatus};
use crate::{Driver, ExportClient, ExportsDialect, Priority, gateway_of};

/// The libvirt connection minikube is told to use; every probe asks the same daemon.
pub const QEMU_URI: &str = "qemu:///system";

const DOC: &str = "https://minikube.sigs.k8s.io/docs/drivers/kvm2/";
const NESTED_DOC: &str = "https://docs.kernel.org/virt/kvm/x86/running-nested-guests.html";
const INSTALL_LIBVIRT: &str =
    "sudo apt-get install -y libvirt-daemon-system libvirt-clients qemu-kvm";
const JOIN_GROUP: &str =
    "sudo usermod -aG libvirt $USER, then log out and back in (or run `newgrp libvirt`)";
const START_LIBVIRTD: &str = "sudo systemctl enable --now libvirtd";
const START_NETWORK: &str =
    "virsh -c qemu:///system net-start default && virsh -c qemu:///system net-autostart default";
const DEFINE_NETWORK: &str = "virsh -c qemu:///system net-define /usr/share/libvirt/networks/default.xml && virsh -c qemu:///system net-start default && virsh -c qemu:///system net-autostart default";
/// The first minikube release with the kvm2 driver built in (kubernetes/minikube#21625); older ones
/// need `docker-machine-driver-kvm2` beside them, which they download on first start.
const BUILTIN_DRIVER_SINCE: (u32, u32, u32) = (1, 38, 0);
const DRIVER_BINARY: &str = "docker-machine-driver-kvm2";

pub struct Kvm2;

impl Driver for Kvm2 {
    fn name(&self) -> &'static str {
        "kvm2"
    }

    fn description(&self) -> &'static str {
        "KVM guest managed by libvirt (Linux)"
    }

    fn priority(&self) -> Priority {
        Priority::Preferred
    }

    /// minikube builds its kvm2 driver for amd64 only: on arm64 its validation fails with
    /// "KVM is not supported on arm64" (exit 65), so it is never offered there.
    fn supports(&self, os: Os, arch: Arch) -> bool {
        os == Os::Linux && arch == Arch::X86_64
    }

    fn status<'a>(&'a self, host: &'a dyn Host) -> BoxFuture<'a, DriverStatus> {
        Box::pin(async move {
            let minikube = host.which("minikube");
            let mut checks = vec![cpu_check(host.arch())];
            checks.push(minikube_check(host.arch(), minikube.as_deref()));
            let (driver, driver_present) = driver_check(host, minikube.is_some()).await;
            checks.push(driver);
            checks.push(kvm_check(host));
            checks.push(group_check(host.uid(), &host.groups()));
            let libvirtd = libvirtd_check(host).await;
            let answered = libvirtd.state == CheckState::Ok;
            checks.push(libvirtd);
            if answered {
                checks.push(libvirt_kvm_check(host).await);
                checks.push(network_check(host).await);
            } else {
                let because = "libvirtd did not answer";
                checks.push(not_checked(
                    "kvm2.libvirt-kvm",
                    because,
                    "fix kvm2.libvirtd first",
                    DOC,
                ));
                checks.push(not_checked(
                    "kvm2.network",
                    because,
                    "fix kvm2.libvirtd first",
                    DOC,
                ));
            }
            DriverStatus {
                driver: "kvm2",
                installed: minikube.is_some() && driver_present,
                checks,
            }
        })
    }

    fn start_flags(&self) -> Vec<String> {
        vec![format!("--kvm-qemu-uri={QEMU_URI}")]
    }

    fn host_address(&self, vm_ip: Ipv4Addr) -> Ipv4Addr {
        gateway_of(vm_ip)
    }

    /// minikube's first choice for the `mk-<profile>` network; later profiles step by 11
    /// (.50, .61, ...), which is why the VM's own address is preferred once known.
    fn default_subnet(&self) -> ExportClient {
        ExportClient::Subnet {
            network: Ipv4Addr::new(192, 168, 39, 0),
            prefix: 24,
        }
    }

    fn exports_dialect(&self) -> ExportsDialect {
        ExportsDialect::Linux
    }
}

/// minikube's kvm2 driver exists for amd64 only (pkg/minikube/registry/drvs/kvm2: "KVM is not
/// supported on arm64").
fn cpu_check(arch: Arch) -> Check {
    match arch {
        Arch::X86_64 => Check::ok("kvm2.cpu", "x86_64 CPU"),
        _ => Check::fail(
            "kvm2.cpu",
            "minikube's kvm2 driver runs on x86_64 (amd64) only: on this CPU minikube refuses it with \"KVM is not supported on arm64\"",
            "devenv has no VM driver for Linux on ARM yet: use an x86_64 machine (minikube's qemu2 driver runs on ARM, but devenv does not drive it)",
            DOC,
        ),
    }
}

/// The download command for this CPU's minikube build.
fn install_minikube(arch: Arch) -> String {
    let build = match arch {
        Arch::Aarch64 => "minikube-linux-arm64",
        _ => "minikube-linux-amd64",
    };
    format!(
        "curl -LO https://storage.googleapis.com/minikube/releases/latest/{build} && sudo install {build} /usr/local/bin/minikube"
    )
}

fn minikube_check(arch: Arch, path: Option<&Path>) -> Check {
    match path {
        Some(p) => Check::ok("kvm2.minikube", format!("minikube is {}", p.display())),
        None => Check::fail(
            "kvm2.minikube",
            "minikube is not on PATH",
            install_minikube(arch),
            "https://minikube.sigs.k8s.io/docs/start/",
        ),
    }
}

/// Whether minikube can drive KVM: a `docker-machine-driver-kvm2` on PATH, or a minikube recent
/// enough to carry the driver itself. The bool says the driver is present.
async fn driver_check(host: &dyn Host, minikube: bool) -> (Check, bool) {
    const ID: &str = "kvm2.driver";
    if let Some(p) = host.which(DRIVER_BINARY) {
        let check = Check::ok(ID, format!("{DRIVER_BINARY} is {}", p.display()));
        return (check, true);
    }
    let upgrade = install_minikube(host.arch());
    if !minikube {
        let check = not_checked(
            ID,
            "minikube is missing (v1.38 and later carry the kvm2 driver)",
            &upgrade,
            DOC,
        );
        return (check, false);
    }
    let version = match host.run("minikube", &["version", "--short"]).await {
        Ok(out) if out.success() => out,
        Ok(out) => {
            let reason = format!(
                "{DRIVER_BINARY} is not on PATH and `minikube version --short` failed: {}",
                failure_line(&out)
            );
            return (Check::warn(ID, reason, upgrade, DOC), false);
        }
        Err(e) => {
            let reason = format!(
                "{DRIVER_BINARY} is not on PATH and `minikube version --short` did not run: {e}"
            );
            return (Check::warn(ID, reason, upgrade, DOC), false);
        }
    };
    let text = version.stdout.trim();
    let shown = text.lines().next().unwrap_or_default();
    match minikube_version(text) {
        Some(v) if v >= BUILTIN_DRIVER_SINCE => {
            let reason = format!("built into minikube {shown}");
            (Check::ok(ID, reason), true)
        }
        Some(_) => {
            let reason = format!(
                "{DRIVER_BINARY} is not on PATH; minikube {shown} downloads it on first start, \
                 v1.38 and later carry it built in"
            );
            (Check::warn(ID, reason, upgrade, DOC), false)
        }
        None => {
            let reason = format!(
                "{DRIVER_BINARY} is not on PATH and minikube's version \"{shown}\" is unreadable"
            );
            (Check::warn(ID, reason, upgrade, DOC), false)
        }
    }
}

/// The version in `minikube version --short` ("v1.38.1") or in the long form's first line
/// ("minikube version: v1.38.1").
pub fn minikube_version(stdout: &str) -> Option<(u32, u32, u32)> {
    let first = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let first = first.strip_prefix("minikube version:").unwrap_or(first);
    parse_version(first)
}

/// The hardware virtualisation extension a CPU advertises in `/proc/cpuinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuVirtualisation {
    /// Intel VT-x.
    Vmx,
    /// AMD-V.
    Svm,
}

impl CpuVirtualisation {
    fn label(self) -> &'static str {
        match self {
            CpuVirtualisation::Vmx => "VT-x (vmx)",
            CpuVirtualisation::Svm => "AMD-V (svm)",
        }
    }

    fn module(self) -> &'static str {
        match self {
            CpuVirtualisation::Vmx => "kvm_intel",
            CpuVirtualisation::Svm => "kvm_amd",
        }
    }
}

/// Which extension the x86 `flags` lines of `/proc/cpuinfo` list, if any. A VM whose host does not
/// pass virtualisation through lists `hypervisor` but neither flag, and KVM guests inside it hang.
pub fn cpu_virtualisation(cpuinfo: &str) -> Option<CpuVirtualisation> {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| key.trim() == "flags")
        .flat_map(|(_, flags)| flags.split_whitespace())
        .find_map(|flag| match flag {
            "vmx" => Some(CpuVirtualisation::Vmx),
            "svm" => Some(CpuVirtualisation::Svm),
            _ => None,
        })
}

/// `/dev/kvm` must exist and, on x86, the CPU must expose vmx or svm. Access to `/dev/kvm` by the
/// user is only mentioned: with `qemu:///system` libvirt opens it for the guest as its own user.
fn kvm_check(host: &dyn Host) -> Check {
    const ID: &str = "kvm2.kvm";
    let dev = host.file_info(Path::new("/dev/kvm"));
    let arch = host.arch();
    let cpuinfo = if arch == Arch::X86_64 {
        host.read_file(Path::new("/proc/cpuinfo"))
    } else {
        None
    };
    let virt = cpuinfo.as_deref().map(cpu_virtualisation);
    if let Some(None) = virt {
        let device = if dev.is_some() {
            "/dev/kvm exists but "
        } else {
            ""
        };
        return Check::fail(
            ID,
            format!(
                "KVM is unusable: {device}the CPU exposes no vmx/svm flag in /proc/cpuinfo \
                 (nested virtualisation off?), so KVM guests cannot run"
            ),
            "enable VT-x/AMD-V in the firmware settings, or if this machine is itself a VM, \
             enable nested virtualisation on its host; then `grep -cwE 'vmx|svm' /proc/cpuinfo` \
             prints more than 0",
            NESTED_DOC,
        );
    }
    let virt = virt.flatten();
    let Some(dev) = dev else {
        let module = virt.map_or("kvm", CpuVirtualisation::module);
        let cpu = virt.map_or(String::new(), |v| {
            format!(" although the CPU has {}", v.label())
        });
        return Check::fail(
            ID,
            format!("/dev/kvm does not exist{cpu}: the kvm module is not loaded"),
            format!("sudo modprobe {module}"),
            DOC,
        );
    };
    let access = if dev.read_write || host.uid() == 0 {
        ""
    } else {
        "; it is not read/write for you, which qemu:///system does not need (libvirt opens it for \
         the guest)"
    };
    match (arch, virt) {
        (Arch::X86_64, None) => Check::warn(
            ID,
            format!(
                "/dev/kvm exists but /proc/cpuinfo is unreadable, so vmx/svm is unconfirmed{access}"
            ),
            "grep -cwE 'vmx|svm' /proc/cpuinfo (must print more than 0)",
            NESTED_DOC,
        ),
        (_, Some(v)) => Check::ok(
            ID,
            format!("/dev/kvm exists and the CPU has {}{access}", v.label()),
        ),
        (_, None) => Check::ok(ID, format!("/dev/kvm exists{access}")),
    }
}

/// Debian and Ubuntu give the group `libvirt` (older Ubuntu: `libvirtd`) the daemon's socket;
/// anyone else goes through polkit, which has no agent in a plain terminal.
fn group_check(uid: u32, groups: &[String]) -> Check {
    const ID: &str = "kvm2.libvirt-group";
    if uid == 0 {
        return Check::ok(ID, "running as root, which needs no libvirt group");
    }
    if let Some(g) = groups.iter().find(|g| *g == "libvirt" || *g == "libvirtd") {
        return Check::ok(ID, format!("you are in the {g} group"));
    }
    Check::fail(
        ID,
        "you are not in the libvirt group, so libvirtd refuses your qemu:///system connections",
        JOIN_GROUP,
        DOC,
    )
}

fn virsh_missing(id: &str, path: Option<PathBuf>, why: &str) -> Check {
    let found = path.map_or(String::new(), |p| format!(" ({})", p.display()));
    Check::fail(
        id,
        format!("virsh{found} {why}: libvirt-clients is missing"),
        INSTALL_LIBVIRT,
        DOC,
    )
}

/// A `virsh` that could not run at all: missing, or hung on a daemon that accepts but never
/// answers.
fn virsh_did_not_run(id: &str, error: &str) -> Check {
    let lower = error.to_lowercase();
    if lower.contains("not found") || lower.contains("no such file") {
        return virsh_missing(id, None, &format!("could not run ({error})"));
    }
    Check::fail(
        id,
        format!("virsh did not answer: {error}"),
        "sudo systemctl restart libvirtd",
        DOC,
    )
}

async fn libvirtd_check(host: &dyn Host) -> Check {
    const ID: &str = "kvm2.libvirtd";
    if host.which("virsh").is_none() {
        return virsh_missing(ID, None, "is not on PATH");
    }
    // `uri` only connects: `virsh version` would also make libvirtd probe QEMU, which takes
    // seconds on hosts where KVM is unusable and is the next check's job anyway.
    let out = match host.run("virsh", &["-c", QEMU_URI, "uri"]).await {
        Ok(out) => out,
        Err(e) => return virsh_did_not_run(ID, &e),
    };
    if out.success() {
        return Check::ok(ID, format!("libvirtd answers on {QEMU_URI}"));
    }
    let line = failure_line(&out);
    if line.contains("libvirt-sock")
        && (line.contains("No such file") || line.contains("Connection refused"))
    {
        return Check::fail(
            ID,
            format!("libvirtd is not running: {line}"),
            START_LIBVIRTD,
            DOC,
        );
    }
    if line.contains("Permission denied")
        || line.contains("system bus")
        || line.contains("authentication")
    {
        return Check::fail(
            ID,
            format!("libvirtd refuses this user: {line}"),
            JOIN_GROUP,
            DOC,
        );
    }
    Check::fail(
        ID,
        format!("libvirtd does not answer on {QEMU_URI}: {line}"),
        "sudo systemctl restart libvirtd (and read `journalctl -u libvirtd`)",
        DOC,
    )
}

async fn libvirt_kvm_check(host: &dyn Host) -> Check {
    const ID: &str = "kvm2.libvirt-kvm";
    let args = ["-c", QEMU_URI, "domcapabilities", "--virttype", "kvm"];
    let out = match host.run("virsh", &args).await {
        Ok(out) => out,
        Err(e) => return virsh_did_not_run(ID, &e),
    };
    if out.success() {
        if !out.stdout.contains("<domain>kvm</domain>") {
            return Check::fail(
                ID,
                "libvirt answers but does not offer KVM guests",
                "sudo apt-get install -y qemu-kvm && sudo systemctl restart libvirtd",
                DOC,
            );
        }
        let emulator = xml_text(&out.stdout, "path").map_or(String::new(), |p| format!(" ({p})"));
        return Check::ok(ID, format!("libvirt offers KVM guests{emulator}"));
    }
    let line = failure_line(&out);
    if line.contains("emulator") {
        return Check::fail(
            ID,
            format!("libvirt has no QEMU for KVM guests: {line}"),
            "sudo apt-get install -y qemu-kvm",
            DOC,
        );
    }
    Check::fail(
        ID,
        format!("libvirt cannot create KVM guests: {line}"),
        "sudo modprobe kvm_intel (or kvm_amd), then check `virt-host-validate qemu`",
        DOC,
    )
}

/// The text of the first `<tag>…</tag>` in a flat XML document such as domcapabilities.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..start + len])
}

/// What `virsh net-info` says about a libvirt network.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NetInfo {
    pub active: Option<bool>,
    pub autostart: Option<bool>,
    pub bridge: Option<String>,
}

/// Parses `virsh net-info NAME` ("Active:         yes" lines); unknown keys and values are left
/// out rather than guessed.
pub fn parse_net_info(stdout: &str) -> NetInfo {
    let yes_no = |v: &str| match v {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    };
    let mut info = NetInfo::default();
    for line in stdout.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "Active" => info.active = yes_no(value),
            "Autostart" => info.autostart = yes_no(value),
            "Bridge" if !value.is_empty() => info.bridge = Some(value.to_string()),
            _ => {}
        }
    }
    info
}

async fn network_check(host: &dyn Host) -> Check {
    const ID: &str = "kvm2.network";
    let out = match host
        .run("virsh", &["-c", QEMU_URI, "net-info", "default"])
        .await
    {
        Ok(out) => out,
        Err(e) => return virsh_did_not_run(ID, &e),
    };
    if !out.success() {
        let line = failure_line(&out);
        if line.contains("Network not found") {
            return Check::fail(
                ID,
                format!(
                    "libvirt has no network named default, which minikube attaches every kvm2 VM to: {line}"
                ),
                DEFINE_NETWORK,
                DOC,
            );
        }
        return Check::fail(
            ID,
            format!("could not read libvirt's default network: {line}"),
            START_NETWORK,
            DOC,
        );
    }
    let info = parse_net_info(&out.stdout);
    let bridge = info
        .bridge
        .as_deref()
        .map_or(String::new(), |b| format!(" (bridge {b})"));
    match (info.active, info.autostart) {
        (Some(true), Some(true)) => Check::ok(
            ID,
            format!("libvirt's default network is active and starts at boot{bridge}"),
        ),
        (Some(true), _) => Check::warn(
            ID,
            format!(
                "libvirt's default network is active{bridge} but will not start after a reboot"
            ),
            "virsh -c qemu:///system net-autostart default",
            DOC,
        ),
        (Some(false), _) => Check::fail(
            ID,
            format!(
                "libvirt's default network is inactive{bridge}, and minikube attaches every kvm2 VM to it"
            ),
            START_NETWORK,
            DOC,
        ),
        (None, _) => Check::warn(
            ID,
            format!(
                "`virsh net-info default` did not say whether the network is active: {}",
                last_line(&out.stdout).unwrap_or("no output")
            ),
            START_NETWORK,
            DOC,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::*;
    use crate::host::FileInfo;

    const URI: &str = "virsh -c qemu:///system uri";
    const DOMCAPS: &str = "virsh -c qemu:///system domcapabilities --virttype kvm";
    const NET_INFO: &str = "virsh -c qemu:///system net-info default";

    /// A Linux laptop with VT-x where everything minikube needs is in place.
    fn healthy() -> FakeHost {
        FakeHost::linux()
            .groups(&["dev", "libvirt"])
            .program("minikube")
            .program("docker-machine-driver-kvm2")
            .program("virsh")
            .file("/dev/kvm", DEV_KVM_RW)
            .text("/proc/cpuinfo", CPUINFO_VMX)
            .answer(URI, out("qemu:///system\n"))
            .answer(DOMCAPS, out(DOMCAPS_KVM))
            .answer(NET_INFO, out(NET_INFO_AUTOSTART))
    }

    fn status(host: &FakeHost) -> DriverStatus {
        block_on(Kvm2.status(host))
    }

    fn check<'a>(status: &'a DriverStatus, id: &str) -> &'a Check {
        status
            .checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no check {id} in {status:#?}"))
    }

    #[test]
    fn kvm2_is_healthy_and_installed_when_every_prerequisite_is_met() {
        let s = status(&healthy());
        assert!(s.healthy(), "{s:#?}");
        assert_eq!(s.state(), CheckState::Ok, "{s:#?}");
        assert!(s.installed);
        assert_eq!(s.driver, "kvm2");
        let ids: Vec<_> = s.checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "kvm2.cpu",
                "kvm2.minikube",
                "kvm2.driver",
                "kvm2.kvm",
                "kvm2.libvirt-group",
                "kvm2.libvirtd",
                "kvm2.libvirt-kvm",
                "kvm2.network",
            ]
        );
        assert_eq!(
            check(&s, "kvm2.libvirtd").reason,
            "libvirtd answers on qemu:///system"
        );
        assert_eq!(
            check(&s, "kvm2.libvirt-kvm").reason,
            "libvirt offers KVM guests (/usr/bin/qemu-system-x86_64)"
        );
        assert!(s.checks.iter().all(|c| c.fix.is_none()));
    }

    #[test]
    fn kvm2_accepts_amd_v_as_well_as_vt_x() {
        let s = status(&healthy().text("/proc/cpuinfo", CPUINFO_SVM));
        let c = check(&s, "kvm2.kvm");
        assert_eq!(c.state, CheckState::Ok);
        assert_eq!(c.reason, "/dev/kvm exists and the CPU has AMD-V (svm)");
    }

    #[test]
    fn kvm2_fails_without_minikube_with_the_download_for_this_cpu() {
        let s = status(&healthy().without_program("minikube"));
        let c = check(&s, "kvm2.minikube");
        assert_eq!(c.state, CheckState::Fail);
        assert_eq!(
            c.fix.as_deref(),
            Some(
                "curl -LO https://storage.googleapis.com/minikube/releases/latest/minikube-linux-amd64 && sudo install minikube-linux-amd64 /usr/local/bin/minikube"
            )
        );
        assert!(!s.installed);
        assert!(!s.healthy());

        let arm = status(&healthy().arch(Arch::Aarch64).without_program("minikube"));
        assert!(
            check(&arm, "kvm2.minikube")
                .fix
                .as_deref()
                .unwrap()
                .contains("minikube-linux-arm64")
        );
    }

    #[test]
    fn kvm2_needs_no_driver_binary_with_minikube_1_38_or_later() {
        let host = healthy()
            .without_program("docker-machine-driver-kvm2")
            .answer("minikube version --short", out("v1.38.1\n"));
        let s = status(&host);
        let c = check(&s, "kvm2.driver");
        assert_eq!(c.state, CheckState::Ok);
        assert_eq!(c.reason, "built into minikube v1.38.1");
        assert!(s.installed);
    }

    #[test]
    fn kvm2_warns_when_an_older_minikube_lacks_the_driver_binary() {
        let host = healthy()
            .without_program("docker-machine-driver-kvm2")
            .answer("minikube version --short", out("v1.37.0\n"));
        let s = status(&host);
        let c = check(&s, "kvm2.driver");
        assert_eq!(c.state, CheckState::Warn);
        assert!(c.reason.contains("minikube v1.37.0 downloads it"), "{c:?}");
        assert!(c.fix.as_deref().unwrap().contains("minikube-linux-amd64"));
        assert!(!s.installed);
        assert!(s.healthy());
    }

    #[test]
    fn kvm2_does_not_ask_minikube_its_version_when_minikube_is_missing() {
        let host = healthy()
            .without_program("minikube")
            .without_program("docker-machine-driver-kvm2");
        let s = status(&host);
        let c = check(&s, "kvm2.driver");
        assert_eq!(c.state, CheckState::Warn);
        assert!(c.reason.starts_with("not checked: minikube is missing"));
        assert!(!host.ran().iter().any(|argv| argv.starts_with("minikube")));
    }

    #[test]
    fn kvm2_reports_kvm_unusable_when_cpu_lacks_vmx_and_svm() {
        let s = status(&healthy().text("/proc/cpuinfo", CPUINFO_NO_VIRT));
        let c = check(&s, "kvm2.kvm");
        assert_eq!(c.state, CheckState::Fail);
        assert_eq!(
            c.reason,
            "KVM is unusable: /dev/kvm exists but the CPU exposes no vmx/svm flag in /proc/cpuinfo \
             (nested virtualisation off?), so KVM guests cannot run"
        );
        assert!(c.fix.as_deref().unwrap().contains("nested virtualisation"));
        assert_eq!(c.doc.as_deref(), Some(NESTED_DOC));
        assert!(!s.healthy());
        assert_eq!(s.first_failure().unwrap().id, "kvm2.kvm");
    }

    #[test]
    fn kvm2_fails_on_the_cpu_even_though_libvirt_offers_kvm_guests() {
        // What this machine reports: domcapabilities succeeds, yet KVM guests hang.
        let s = status(&healthy().text("/proc/cpuinfo", CPUINFO_NO_VIRT));
        assert_eq!(check(&s, "kvm2.libvirt-kvm").state, CheckState::Ok);
        assert_eq!(check(&s, "kvm2.kvm").state, CheckState::Fail);
    }

    #[test]
    fn kvm2_suggests_loading_the_module_when_dev_kvm_is_missing() {
        let s = status(&healthy().without_file("/dev/kvm"));
        let c = check(&s, "kvm2.kvm");
        assert_eq!(c.state, CheckState::Fail);
        assert_eq!(
            c.reason,
            "/dev/kvm does not exist although the CPU has VT-x (vmx): the kvm module is not loaded"
        );
        assert_eq!(c.fix.as_deref(), Some("sudo modprobe kvm_intel"));

        let amd = status(
            &healthy()
                .without_file("/dev/kvm")
                .text("/proc/cpuinfo", CPUINFO_SVM),
        );
        assert_eq!(
            check(&amd, "kvm2.kvm").fix.as_deref(),
            Some("sudo modprobe kvm_amd")
        );
    }

    #[test]
    fn kvm2_blames_the_cpu_first_when_neither_dev_kvm_nor_vmx_exist() {
        let s = status(
            &healthy()
                .without_file("/dev/kvm")
                .text("/proc/cpuinfo", CPUINFO_NO_VIRT),
        );
        let c = check(&s, "kvm2.kvm");
        assert!(
            c.reason
                .starts_with("KVM is unusable: the CPU exposes no vmx/svm"),
            "{c:?}"
        );
    }

    #[test]
    fn kvm2_only_mentions_a_dev_kvm_the_user_cannot_open() {
        let locked = FileInfo {
            uid: 0,
            mode: 0o20660,
            read_write: false,
        };
        let s = status(&healthy().file("/dev/kvm", locked));
        let c = check(&s, "kvm2.kvm");
        assert_eq!(c.state, CheckState::Ok);
        assert!(c.reason.contains("not read/write for you"), "{c:?}");
    }

    #[test]
    fn kvm2_warns_when_cpuinfo_cannot_be_read() {
        let s = status(&healthy().without_text("/proc/cpuinfo"));
        let c = check(&s, "kvm2.kvm");
        assert_eq!(c.state, CheckState::Warn);
        assert!(c.fix.as_deref().unwrap().contains("grep -cwE 'vmx|svm'"));
    }

    #[test]
    fn kvm2_on_arm_relies_on_dev_kvm_alone() {
        let s = status(&healthy().arch(Arch::Aarch64).without_text("/proc/cpuinfo"));
        let c = check(&s, "kvm2.kvm");
        assert_eq!(c.state, CheckState::Ok);
        assert_eq!(c.reason, "/dev/kvm exists");
    }

    #[test]
    fn kvm2_on_arm_fails_its_cpu_check_as_minikube_refuses_it() {
        let s = status(&healthy().arch(Arch::Aarch64));
        let c = check(&s, "kvm2.cpu");
        assert_eq!(c.state, CheckState::Fail);
        assert!(c.reason.contains("x86_64 (amd64) only"), "{}", c.reason);
        assert!(!s.healthy());
        assert_eq!(check(&status(&healthy()), "kvm2.cpu").state, CheckState::Ok);
    }

    #[test]
    fn kvm2_fails_outside_the_libvirt_group_with_the_usermod_fix() {
        let s = status(&healthy().groups(&["dev", "docker"]));
        let c = check(&s, "kvm2.libvirt-group");
        assert_eq!(c.state, CheckState::Fail);
        assert_eq!(
            c.fix.as_deref(),
            Some(
                "sudo usermod -aG libvirt $USER, then log out and back in (or run `newgrp libvirt`)"
            )
        );
    }

    #[test]
    fn kvm2_accepts_the_older_libvirtd_group_name() {
        let s = status(&healthy().groups(&["libvirtd"]));
        assert_eq!(check(&s, "kvm2.libvirt-group").state, CheckState::Ok);
    }

    #[test]
    fn kvm2_root_needs_no_libvirt_group() {
        let s = status(&healthy().uid(0).groups(&["root"]));
        let c = check(&s, "kvm2.libvirt-group");
        assert_eq!(c.state, CheckState::Ok);
        assert_eq!(c.reason, "running as root, which needs no libvirt group");
    }

    #[test]
    fn kvm2_says_libvirt_clients_is_missing_without_virsh() {
        let host = healthy().without_program("virsh");
        let s = status(&host);
        let c = check(&s, "kvm2.libvirtd");
        assert_eq!(c.state, CheckState::Fail);
        assert_eq!(c.reason, "virsh is not on PATH: libvirt-clients is missing");
        assert_eq!(c.fix.as_deref(), Some(INSTALL_LIBVIRT));
        assert!(host.ran().is_empty(), "{:?}", host.ran());
    }

    #[test]
    fn kvm2_says_libvirt_clients_is_missing_when_virsh_cannot_be_run() {
        let host = healthy().answer(URI, Err("virsh: not found".into()));
        let c = check(&status(&host), "kvm2.libvirtd").clone();
        assert_eq!(c.state, CheckState::Fail);
        assert!(c.reason.contains("libvirt-clients is missing"), "{c:?}");
    }

    #[test]
    fn kvm2_quotes_the_socket_error_when_libvirtd_is_not_running() {
        let host = healthy().answer(URI, exit(1, "", VIRSH_NO_SOCKET));
        let s = status(&host);
        let c = check(&s, "kvm2.libvirtd");
        assert_eq!(c.state, CheckState::Fail);
        assert_eq!(
            c.reason,
            "libvirtd is not running: Failed to connect socket to \
             '/var/run/libvirt/libvirt-sock': No such file or directory"
        );
        assert_eq!(
            c.fix.as_deref(),
            Some("sudo systemctl enable --now libvirtd")
        );
    }

    #[test]
    fn kvm2_skips_the_libvirt_queries_when_libvirtd_does_not_answer() {
        let host = healthy().answer(URI, exit(1, "", VIRSH_NO_SOCKET));
        let s = status(&host);
        for id in ["kvm2.libvirt-kvm", "kvm2.network"] {
            let c = check(&s, id);
            assert_eq!(c.state, CheckState::Warn);
            assert_eq!(c.reason, "not checked: libvirtd did not answer");
        }
        assert_eq!(host.ran(), [URI]);
        assert_eq!(s.first_failure().unwrap().id, "kvm2.libvirtd");
    }

    #[test]
    fn kvm2_sends_a_refused_user_to_the_libvirt_group() {
        let host = healthy().answer(URI, exit(1, "", VIRSH_NO_BUS));
        let c = check(&status(&host), "kvm2.libvirtd").clone();
        assert_eq!(c.state, CheckState::Fail);
        assert!(c.reason.starts_with(
            "libvirtd refuses this user: internal error: Unable to get system bus connection"
        ));
        assert_eq!(c.fix.as_deref(), Some(JOIN_GROUP));
    }

    #[test]
    fn kvm2_suggests_a_restart_when_virsh_hangs() {
        let host = healthy().answer(URI, Err("timed out after 5s".into()));
        let c = check(&status(&host), "kvm2.libvirtd").clone();
        assert_eq!(c.reason, "virsh did not answer: timed out after 5s");
        assert_eq!(c.fix.as_deref(), Some("sudo systemctl restart libvirtd"));
    }

    #[test]
    fn kvm2_quotes_libvirt_when_it_cannot_serve_kvm_guests() {
        let host = healthy().answer(DOMCAPS, exit(1, "\n", DOMCAPS_NO_EMULATOR));
        let c = check(&status(&host), "kvm2.libvirt-kvm").clone();
        assert_eq!(c.state, CheckState::Fail);
        assert_eq!(
            c.reason,
            "libvirt has no QEMU for KVM guests: unsupported configuration: unable to find any \
             emulator to serve '(null)' architecture"
        );
        assert_eq!(c.fix.as_deref(), Some("sudo apt-get install -y qemu-kvm"));

        let other = healthy().answer(
            DOMCAPS,
            exit(
                1,
                "",
                "error: Could not access KVM kernel module: Permission denied\n",
            ),
        );
        let c = check(&status(&other), "kvm2.libvirt-kvm").clone();
        assert_eq!(
            c.reason,
            "libvirt cannot create KVM guests: Could not access KVM kernel module: Permission denied"
        );
    }

    #[test]
    fn kvm2_fails_on_an_inactive_default_network_with_start_and_autostart() {
        let s = status(&healthy().answer(NET_INFO, out(NET_INFO_INACTIVE)));
        let c = check(&s, "kvm2.network");
        assert_eq!(c.state, CheckState::Fail);
        assert!(
            c.reason
                .starts_with("libvirt's default network is inactive (bridge virbr0)")
        );
        assert_eq!(
            c.fix.as_deref(),
            Some(
                "virsh -c qemu:///system net-start default && virsh -c qemu:///system net-autostart default"
            )
        );
    }

    #[test]
    fn kvm2_defines_the_default_network_first_when_it_is_missing() {
        let s = status(&healthy().answer(NET_INFO, exit(1, "\n", NET_INFO_MISSING)));
        let c = check(&s, "kvm2.network");
        assert_eq!(c.state, CheckState::Fail);
        assert!(
            c.reason
                .ends_with("Network not found: no network with matching name 'default'")
        );
        assert!(c.fix.as_deref().unwrap().starts_with(
            "virsh -c qemu:///system net-define /usr/share/libvirt/networks/default.xml && "
        ));
    }

    #[test]
    fn kvm2_warns_when_the_default_network_will_not_survive_a_reboot() {
        let s = status(&healthy().answer(NET_INFO, out(NET_INFO_ACTIVE)));
        let c = check(&s, "kvm2.network");
        assert_eq!(c.state, CheckState::Warn);
        assert_eq!(
            c.fix.as_deref(),
            Some("virsh -c qemu:///system net-autostart default")
        );
        assert!(s.healthy());
    }

    #[test]
    fn net_info_parsing_reads_active_autostart_and_bridge() {
        assert_eq!(
            parse_net_info(NET_INFO_INACTIVE),
            NetInfo {
                active: Some(false),
                autostart: Some(false),
                bridge: Some("virbr0".into()),
            }
        );
        assert_eq!(
            parse_net_info(NET_INFO_ACTIVE),
            NetInfo {
                active: Some(true),
                autostart: Some(false),
                bridge: Some("virbr0".into()),
            }
        );
        assert_eq!(parse_net_info(NET_INFO_AUTOSTART).autostart, Some(true));
        assert_eq!(parse_net_info(""), NetInfo::default());
        assert_eq!(parse_net_info("Active:  maybe\n").active, None);
    }

    #[test]
    fn cpuinfo_parsing_finds_vmx_or_svm_only_in_flags_lines() {
        assert_eq!(
            cpu_virtualisation(CPUINFO_VMX),
            Some(CpuVirtualisation::Vmx)
        );
        assert_eq!(
            cpu_virtualisation(CPUINFO_SVM),
            Some(CpuVirtualisation::Svm)
        );
        assert_eq!(cpu_virtualisation(CPUINFO_NO_VIRT), None);
        assert_eq!(cpu_virtualisation(""), None);
        // Whole words only, and only in `flags`: `vmx flags` lists features, not the extension.
        assert_eq!(cpu_virtualisation("flags\t\t: fpu vmxe svm_lock\n"), None);
        assert_eq!(cpu_virtualisation("model name\t: vmx svm\n"), None);
        assert_eq!(cpu_virtualisation("vmx flags\t: vnmi ept\n"), None);
    }

    #[test]
    fn minikube_version_reads_short_and_long_forms() {
        assert_eq!(minikube_version("v1.38.1\n"), Some((1, 38, 1)));
        assert_eq!(
            minikube_version(
                "minikube version: v1.37.0\ncommit: 65318f4cfff9c12cc87ec9eb8f4cdd57b25047f3\n"
            ),
            Some((1, 37, 0))
        );
        assert_eq!(minikube_version(""), None);
    }

    #[test]
    fn kvm2_runs_on_linux_only_and_tells_minikube_which_libvirt() {
        assert!(Kvm2.supports(Os::Linux, Arch::X86_64));
        assert!(!Kvm2.supports(Os::Linux, Arch::Aarch64));
        assert!(!Kvm2.supports(Os::MacOs, Arch::X86_64));
        assert!(!Kvm2.supports(Os::Linux, Arch::Other));
        assert_eq!(Kvm2.start_flags(), ["--kvm-qemu-uri=qemu:///system"]);
        assert_eq!(Kvm2.priority(), Priority::Preferred);
        assert_eq!(Kvm2.exports_dialect(), ExportsDialect::Linux);
    }

    #[test]
    fn kvm2_exports_to_the_vm_or_minikubes_first_subnet_and_serves_nfs_on_its_gateway() {
        let vm = Ipv4Addr::new(192, 168, 39, 57);
        assert_eq!(Kvm2.host_address(vm), Ipv4Addr::new(192, 168, 39, 1));
        assert_eq!(Kvm2.export_client(Some(vm)).to_string(), "192.168.39.57");
        assert_eq!(Kvm2.export_client(None).to_string(), "192.168.39.0/24");
    }
}
