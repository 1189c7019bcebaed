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

use crate::packages::{Need, Platform, install};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::host::{Arch, BoxFuture, Host, Os, RunFailure};
use crate::probe::{failure_line, last_line, not_checked, parse_version};
use crate::status::{Check, CheckState, DriverStatus};
use crate::{Driver, ExportClient, ExportsDialect, Priority, gateway_of};

/// The libvirt connection minikube is told to use; every probe asks the same daemon.
pub const QEMU_URI: &str = "qemu:///system";

const DOC: &str = "https://minikube.sigs.k8s.io/docs/drivers/kvm2/";
const NESTED_DOC: &str = "https://docs.kernel.org/virt/kvm/x86/running-nested-guests.html";
/// What installs libvirt and QEMU/KVM on `platform` (the package catalogue).
fn install_libvirt(platform: Platform) -> String {
    install(
        &[Need::Libvirt, Need::Qemu],
        platform,
        "libvirt and QEMU/KVM",
    )
}

/// What installs QEMU/KVM on `platform`.
fn install_qemu(platform: Platform) -> String {
    install(&[Need::Qemu], platform, "QEMU/KVM")
}
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

fn virsh_missing(id: &str, path: Option<PathBuf>, why: &str, platform: Platform) -> Check {
    let found = path.map_or(String::new(), |p| format!(" ({})", p.display()));
    Check::fail(
        id,
        format!("virsh{found} {why}: libvirt-clients is missing"),
        install_libvirt(platform),
        DOC,
    )
}

/// A `virsh` that could not run at all: missing, or hung on a daemon that accepts but never
/// answers.
fn virsh_did_not_run(id: &str, error: &RunFailure, platform: Platform) -> Check {
    if let RunFailure::NotFound(why) = error {
        return virsh_missing(id, None, &format!("could not run ({why})"), platform);
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
        return virsh_missing(ID, None, "is not on PATH", Platform::of(host));
    }
    // `uri` only connects: `virsh version` would also make libvirtd probe QEMU, which takes
    // seconds on hosts where KVM is unusable and is the next check's job anyway.
    let out = match host.run("virsh", &["-c", QEMU_URI, "uri"]).await {
        Ok(out) => out,
        Err(e) => return virsh_did_not_run(ID, &e, Platform::of(host)),
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
        Err(e) => return virsh_did_not_run(ID, &e, Platform::of(host)),
    };
    if out.success() {
        if !out.stdout.contains("<domain>kvm</domain>") {
            return Check::fail(
                ID,
                "libvirt answers but does not offer KVM guests",
                format!(
                    "{} && sudo systemctl restart libvirtd",
                    install_qemu(Platform::of(host))
                ),
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
            install_qemu(Platform::of(host)),
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
        Err(e) => return virsh_did_not_run(ID, &e, Platform::of(host)),
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
mod tests;
