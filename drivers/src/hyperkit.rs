//! hyperkit: the Intel-Mac driver the seed's team moved to from VirtualBox (as xhyve), kept for
//! machines that cannot run vfkit.
//!
//! minikube deprecated it in v1.37 and Homebrew disabled its formula in 2025, so it has the lowest
//! priority and always reports a warning pointing at vfkit. Its one sharp edge is that minikube's
//! `docker-machine-driver-hyperkit` must be setuid root to create the VM's network interface; the
//! checks read that from the file's owner and mode and never run anything.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::host::{Arch, BoxFuture, FileInfo, Host, Os};
use crate::status::{Check, DriverStatus};
use crate::{Driver, ExportClient, ExportsDialect, Priority, gateway_of};

const DOC: &str = "https://minikube.sigs.k8s.io/docs/drivers/hyperkit/";
const USE_VFKIT: &str =
    "use vfkit: set vm.driver = \"vfkit\" in devenv.toml or remove the override";
const DRIVER_BINARY: &str = "docker-machine-driver-hyperkit";
const INSTALL_DRIVER: &str = "curl -LO https://storage.googleapis.com/minikube/releases/latest/docker-machine-driver-hyperkit && sudo install -o root -g wheel -m 4755 docker-machine-driver-hyperkit /usr/local/bin/";
const SETUID_DRIVER: &str = "sudo chown root:wheel $(which docker-machine-driver-hyperkit) && sudo chmod u+s $(which docker-machine-driver-hyperkit)";

/// The setuid bit of `st_mode`.
const SETUID: u32 = 0o4000;

pub struct Hyperkit;

impl Driver for Hyperkit {
    fn name(&self) -> &'static str {
        "hyperkit"
    }

    fn description(&self) -> &'static str {
        "hyperkit VM (Intel macOS; deprecated, use vfkit)"
    }

    fn priority(&self) -> Priority {
        Priority::Deprecated
    }

    fn supports(&self, os: Os, arch: Arch) -> bool {
        os == Os::MacOs && arch == Arch::X86_64
    }

    fn status<'a>(&'a self, host: &'a dyn Host) -> BoxFuture<'a, DriverStatus> {
        Box::pin(async move {
            let minikube = host.which("minikube");
            let hyperkit = host.which("hyperkit");
            let driver = host.which(DRIVER_BINARY);
            let driver_info = driver.as_deref().and_then(|p| host.file_info(p));
            let checks = vec![
                Check::warn(
                    "hyperkit.deprecated",
                    "minikube deprecated the hyperkit driver in v1.37 and Homebrew disabled its \
                     formula in 2025",
                    USE_VFKIT,
                    "https://minikube.sigs.k8s.io/docs/drivers/vfkit/",
                ),
                cpu_check(host.arch()),
                match &minikube {
                    Some(p) => {
                        Check::ok("hyperkit.minikube", format!("minikube is {}", p.display()))
                    }
                    None => Check::fail(
                        "hyperkit.minikube",
                        "minikube is not on PATH",
                        "brew install minikube",
                        "https://minikube.sigs.k8s.io/docs/start/",
                    ),
                },
                match &hyperkit {
                    Some(p) => {
                        Check::ok("hyperkit.hyperkit", format!("hyperkit is {}", p.display()))
                    }
                    None => Check::fail(
                        "hyperkit.hyperkit",
                        "hyperkit is not on PATH",
                        "brew install hyperkit (Homebrew disabled the formula in 2025: if it \
                         refuses, build hyperkit from https://github.com/moby/hyperkit and \
                         install docker-machine-driver-hyperkit from minikube's releases; \
                         better, use vfkit)",
                        DOC,
                    ),
                },
                driver_check(driver.as_deref(), driver_info),
            ];
            DriverStatus {
                driver: "hyperkit",
                installed: minikube.is_some() && hyperkit.is_some() && driver.is_some(),
                checks,
            }
        })
    }

    fn start_flags(&self) -> Vec<String> {
        Vec::new()
    }

    fn host_address(&self, vm_ip: Ipv4Addr) -> Ipv4Addr {
        gateway_of(vm_ip)
    }

    /// vmnet's shared network, from which hyperkit VMs take their addresses.
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

fn cpu_check(arch: Arch) -> Check {
    match arch {
        Arch::X86_64 => Check::ok("hyperkit.cpu", "Intel CPU"),
        _ => Check::fail(
            "hyperkit.cpu",
            "hyperkit needs an Intel Mac",
            USE_VFKIT,
            DOC,
        ),
    }
}

/// Whether the driver binary can create the VM's vmnet interface, which macOS only allows root.
pub fn is_setuid_root(info: &FileInfo) -> bool {
    info.uid == 0 && info.mode & SETUID != 0
}

fn driver_check(path: Option<&Path>, info: Option<FileInfo>) -> Check {
    const ID: &str = "hyperkit.driver";
    let Some(path) = path else {
        return Check::fail(
            ID,
            format!("{DRIVER_BINARY} is not on PATH"),
            INSTALL_DRIVER,
            DOC,
        );
    };
    match info {
        Some(info) if is_setuid_root(&info) => {
            Check::ok(ID, format!("{} is setuid root", path.display()))
        }
        Some(info) => Check::fail(
            ID,
            format!(
                "{} is not setuid root (owner uid {}, mode {:o}), so it cannot create the VM's \
                 network interface",
                path.display(),
                info.uid,
                info.mode & 0o7777
            ),
            SETUID_DRIVER,
            DOC,
        ),
        None => Check::warn(
            ID,
            format!("could not read the owner and mode of {}", path.display()),
            format!(
                "ls -l {}  (must be owned by root with mode -rwsr-xr-x)",
                path.display()
            ),
            DOC,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::*;
    use crate::status::CheckState;

    const DRIVER_PATH: &str = "/usr/local/bin/docker-machine-driver-hyperkit";
    const SETUID_ROOT: FileInfo = FileInfo {
        uid: 0,
        mode: 0o104755,
        read_write: false,
    };

    fn intel_mac() -> FakeHost {
        FakeHost::mac(Arch::X86_64, "13.6.9")
            .program("minikube")
            .program("hyperkit")
            .program(DRIVER_BINARY)
            .file(DRIVER_PATH, SETUID_ROOT)
    }

    fn status(host: &FakeHost) -> DriverStatus {
        block_on(Hyperkit.status(host))
    }

    #[test]
    fn hyperkit_is_usable_but_always_warns_that_it_is_deprecated() {
        let s = status(&intel_mac());
        assert!(s.healthy(), "{s:#?}");
        assert!(s.installed);
        assert_eq!(s.state(), CheckState::Warn);
        let c = check(&s, "hyperkit.deprecated");
        assert_eq!(c.state, CheckState::Warn);
        assert!(c.reason.contains("v1.37"));
        assert!(c.reason.contains("Homebrew disabled its formula in 2025"));
        assert_eq!(
            c.fix.as_deref(),
            Some("use vfkit: set vm.driver = \"vfkit\" in devenv.toml or remove the override")
        );
    }

    #[test]
    fn hyperkit_fails_when_the_driver_is_not_setuid_root() {
        let plain = FileInfo {
            uid: 501,
            mode: 0o100755,
            read_write: false,
        };
        let s = status(&intel_mac().file(DRIVER_PATH, plain));
        let c = check(&s, "hyperkit.driver");
        assert_eq!(c.state, CheckState::Fail);
        assert!(
            c.reason
                .contains("not setuid root (owner uid 501, mode 755)"),
            "{c:?}"
        );
        assert_eq!(c.fix.as_deref(), Some(SETUID_DRIVER));
        assert!(!s.healthy());
    }

    #[test]
    fn hyperkit_needs_both_root_ownership_and_the_setuid_bit() {
        assert!(is_setuid_root(&SETUID_ROOT));
        let not_root = FileInfo {
            uid: 501,
            ..SETUID_ROOT
        };
        assert!(!is_setuid_root(&not_root));
        let no_bit = FileInfo {
            mode: 0o100755,
            ..SETUID_ROOT
        };
        assert!(!is_setuid_root(&no_bit));
    }

    #[test]
    fn hyperkit_fails_without_its_driver_binary_with_the_download() {
        let s = status(&intel_mac().without_program(DRIVER_BINARY));
        let c = check(&s, "hyperkit.driver");
        assert_eq!(c.state, CheckState::Fail);
        assert_eq!(c.fix.as_deref(), Some(INSTALL_DRIVER));
        assert!(!s.installed);
    }

    #[test]
    fn hyperkit_fails_without_hyperkit_and_says_homebrew_disabled_it() {
        let s = status(&intel_mac().without_program("hyperkit"));
        let c = check(&s, "hyperkit.hyperkit");
        assert_eq!(c.state, CheckState::Fail);
        let fix = c.fix.as_deref().unwrap();
        assert!(fix.starts_with("brew install hyperkit"));
        assert!(fix.contains("disabled the formula"));
        assert!(fix.contains("docker-machine-driver-hyperkit from minikube's releases"));
    }

    #[test]
    fn hyperkit_fails_without_minikube() {
        let s = status(&intel_mac().without_program("minikube"));
        let c = check(&s, "hyperkit.minikube");
        assert_eq!(c.state, CheckState::Fail);
        assert_eq!(c.fix.as_deref(), Some("brew install minikube"));
    }

    #[test]
    fn hyperkit_needs_an_intel_mac() {
        let s = status(&intel_mac().arch(Arch::Aarch64));
        let c = check(&s, "hyperkit.cpu");
        assert_eq!(c.state, CheckState::Fail);
        assert_eq!(c.reason, "hyperkit needs an Intel Mac");
        assert!(!Hyperkit.supports(Os::MacOs, Arch::Aarch64));
        assert!(Hyperkit.supports(Os::MacOs, Arch::X86_64));
        assert!(!Hyperkit.supports(Os::Linux, Arch::X86_64));
    }

    #[test]
    fn hyperkit_exports_to_vmnets_shared_subnet_in_the_macos_dialect() {
        assert_eq!(Hyperkit.export_client(None).to_string(), "192.168.64.0/24");
        let vm = Ipv4Addr::new(192, 168, 64, 5);
        assert_eq!(Hyperkit.host_address(vm), Ipv4Addr::new(192, 168, 64, 1));
        assert_eq!(Hyperkit.exports_dialect(), ExportsDialect::MacOs);
        assert!(Hyperkit.start_flags().is_empty());
        assert_eq!(Hyperkit.priority(), Priority::Deprecated);
    }
}
