//! vfkit: minikube's current macOS driver, a VM on Apple's Virtualization framework through the
//! `vfkit` binary, on Intel and Apple silicon alike.
//!
//! It needs only two programs and a recent enough macOS, so its checks are cheap lookups that run
//! nothing. Limit: the NAT network it asks for is macOS's shared vmnet subnet, which minikube does
//! not set explicitly; the VM's real address, once known, is what the export is granted to.

use std::net::Ipv4Addr;

use crate::host::{Arch, BoxFuture, Host, Os};
use crate::probe::parse_version;
use crate::status::{Check, DriverStatus};
use crate::{Driver, ExportClient, ExportsDialect, Priority, gateway_of};

const DOC: &str = "https://minikube.sigs.k8s.io/docs/drivers/vfkit/";
/// minikube boots its ISO in vfkit through the Virtualization framework's EFI boot loader, which
/// arrived in macOS 13.
pub const MIN_MACOS: u32 = 13;

pub struct Vfkit;

impl Driver for Vfkit {
    fn name(&self) -> &'static str {
        "vfkit"
    }

    fn description(&self) -> &'static str {
        "Apple Virtualization framework VM through vfkit (macOS)"
    }

    fn priority(&self) -> Priority {
        Priority::Preferred
    }

    fn supports(&self, os: Os, arch: Arch) -> bool {
        os == Os::MacOs && matches!(arch, Arch::X86_64 | Arch::Aarch64)
    }

    fn status<'a>(&'a self, host: &'a dyn Host) -> BoxFuture<'a, DriverStatus> {
        Box::pin(async move {
            let minikube = host.which("minikube");
            let vfkit = host.which("vfkit");
            let checks = vec![
                match &minikube {
                    Some(p) => Check::ok("vfkit.minikube", format!("minikube is {}", p.display())),
                    None => Check::fail(
                        "vfkit.minikube",
                        "minikube is not on PATH",
                        "brew install minikube",
                        "https://minikube.sigs.k8s.io/docs/start/",
                    ),
                },
                match &vfkit {
                    Some(p) => Check::ok("vfkit.vfkit", format!("vfkit is {}", p.display())),
                    None => Check::fail(
                        "vfkit.vfkit",
                        "vfkit is not on PATH",
                        "brew install vfkit",
                        DOC,
                    ),
                },
                macos_check(host.os_version().as_deref()),
            ];
            DriverStatus {
                driver: "vfkit",
                installed: minikube.is_some() && vfkit.is_some(),
                checks,
            }
        })
    }

    fn start_flags(&self) -> Vec<String> {
        vec!["--network=nat".to_string()]
    }

    fn host_address(&self, vm_ip: Ipv4Addr) -> Ipv4Addr {
        gateway_of(vm_ip)
    }

    /// macOS's shared vmnet subnet, which NAT VMs usually get.
    fn default_subnet(&self) -> ExportClient {
        ExportClient::Subnet {
            network: Ipv4Addr::new(192, 168, 64, 0),
            prefix: 24,
        }
    }

    fn exports_dialect(&self) -> ExportsDialect {
        ExportsDialect::MacOs
    }
}

/// The major version of a macOS product version ("14.5" → 14, "26.0" → 26).
pub fn macos_major(version: &str) -> Option<u32> {
    parse_version(version).map(|(major, _, _)| major)
}

fn macos_check(version: Option<&str>) -> Check {
    const ID: &str = "vfkit.macos";
    const UPGRADE: &str =
        "upgrade macOS to 13 (Ventura) or later in System Settings > General > Software Update";
    let Some(version) = version else {
        return Check::warn(
            ID,
            "could not read the macOS version",
            "sw_vers -productVersion (vfkit needs 13 or later)",
            DOC,
        );
    };
    match macos_major(version) {
        Some(major) if major >= MIN_MACOS => Check::ok(ID, format!("macOS {version}")),
        Some(_) => Check::fail(
            ID,
            format!("macOS {version} is too old: vfkit needs macOS {MIN_MACOS} or later"),
            UPGRADE,
            DOC,
        ),
        None => Check::warn(
            ID,
            format!("unreadable macOS version \"{version}\""),
            "sw_vers -productVersion (vfkit needs 13 or later)",
            DOC,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::*;
    use crate::status::CheckState;

    fn mac(arch: Arch, version: &str) -> FakeHost {
        FakeHost::mac(arch, version)
            .program("minikube")
            .program("vfkit")
    }

    fn status(host: &FakeHost) -> DriverStatus {
        block_on(Vfkit.status(host))
    }

    #[test]
    fn vfkit_is_healthy_on_a_recent_mac_of_either_cpu() {
        for arch in [Arch::Aarch64, Arch::X86_64] {
            let host = mac(arch, "14.5");
            let s = status(&host);
            assert_eq!(s.state(), CheckState::Ok, "{s:#?}");
            assert!(s.installed);
            assert_eq!(check(&s, "vfkit.macos").reason, "macOS 14.5");
            assert!(host.ran().is_empty());
        }
    }

    #[test]
    fn vfkit_fails_without_minikube_or_vfkit_with_the_brew_command() {
        let s = status(&mac(Arch::Aarch64, "15.1").without_program("vfkit"));
        let c = check(&s, "vfkit.vfkit");
        assert_eq!(c.state, CheckState::Fail);
        assert_eq!(c.fix.as_deref(), Some("brew install vfkit"));
        assert!(!s.installed);

        let s = status(&mac(Arch::Aarch64, "15.1").without_program("minikube"));
        let c = check(&s, "vfkit.minikube");
        assert_eq!(c.state, CheckState::Fail);
        assert_eq!(c.fix.as_deref(), Some("brew install minikube"));
    }

    #[test]
    fn vfkit_needs_macos_13_or_later() {
        let s = status(&mac(Arch::X86_64, "12.7.6"));
        let c = check(&s, "vfkit.macos");
        assert_eq!(c.state, CheckState::Fail);
        assert_eq!(
            c.reason,
            "macOS 12.7.6 is too old: vfkit needs macOS 13 or later"
        );
        assert!(c.fix.as_deref().unwrap().starts_with("upgrade macOS to 13"));

        for ok in ["13.0.1", "13.0", "26.0"] {
            let s = status(&mac(Arch::Aarch64, ok));
            assert_eq!(check(&s, "vfkit.macos").state, CheckState::Ok, "{ok}");
        }
    }

    #[test]
    fn vfkit_only_warns_when_the_macos_version_is_unknown() {
        let s = status(&mac(Arch::Aarch64, "14.5").no_os_version());
        let c = check(&s, "vfkit.macos");
        assert_eq!(c.state, CheckState::Warn);
        assert!(s.healthy());

        let s = status(&mac(Arch::Aarch64, "Sonoma"));
        assert_eq!(check(&s, "vfkit.macos").state, CheckState::Warn);
    }

    #[test]
    fn macos_version_parsing_takes_the_major_number() {
        assert_eq!(macos_major("14.5"), Some(14));
        assert_eq!(macos_major("13.0.1"), Some(13));
        assert_eq!(macos_major("26.0"), Some(26));
        assert_eq!(macos_major("10.15.7"), Some(10));
        assert_eq!(macos_major(" 15.2\n"), Some(15));
        assert_eq!(macos_major(""), None);
    }

    #[test]
    fn vfkit_runs_on_both_mac_cpus_with_nat_networking() {
        assert!(Vfkit.supports(Os::MacOs, Arch::Aarch64));
        assert!(Vfkit.supports(Os::MacOs, Arch::X86_64));
        assert!(!Vfkit.supports(Os::Linux, Arch::Aarch64));
        assert_eq!(Vfkit.start_flags(), ["--network=nat"]);
        assert_eq!(Vfkit.priority(), Priority::Preferred);
        assert_eq!(Vfkit.exports_dialect(), ExportsDialect::MacOs);
        assert_eq!(Vfkit.export_client(None).to_string(), "192.168.64.0/24");
        let vm = Ipv4Addr::new(192, 168, 64, 3);
        assert_eq!(Vfkit.host_address(vm), Ipv4Addr::new(192, 168, 64, 1));
    }
}
