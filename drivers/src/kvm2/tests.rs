//! The kvm2 driver's checks, each a specification on what the host reports.

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
        .text("/etc/os-release", "NAME=\"Debian GNU/Linux\"\nID=debian\n")
        .answer(URI, out("qemu:///system\n"))
        .answer(DOMCAPS, out(DOMCAPS_KVM))
        .answer(NET_INFO, out(NET_INFO_AUTOSTART))
}

fn status(host: &FakeHost) -> DriverStatus {
    block_on(Kvm2.status(host))
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
        Some("sudo usermod -aG libvirt $USER, then log out and back in (or run `newgrp libvirt`)")
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
    assert_eq!(
        c.fix.as_deref(),
        Some("sudo apt-get install -y libvirt-daemon-system libvirt-clients qemu-kvm")
    );
    assert!(host.ran().is_empty(), "{:?}", host.ran());
}

#[test]
fn kvm2_names_fedoras_packages_and_dnf_on_fedora() {
    let host = healthy()
        .text("/etc/os-release", "ID=fedora\nVERSION_ID=41\n")
        .without_program("virsh");
    let s = status(&host);
    let c = check(&s, "kvm2.libvirtd");
    assert_eq!(
        c.fix.as_deref(),
        Some("sudo dnf install -y libvirt-daemon-kvm libvirt-client qemu-kvm")
    );
}

#[test]
fn kvm2_says_libvirt_clients_is_missing_when_virsh_cannot_be_run() {
    let host = healthy().answer(URI, Err(RunFailure::NotFound("virsh: not found".into())));
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
    let host = healthy().answer(URI, Err(RunFailure::Other("timed out after 5s".into())));
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
