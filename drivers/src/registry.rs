//! Which driver a project gets: the one named in `vm.driver`, or with `"auto"` the healthy driver
//! of highest priority for this OS and CPU, as minikube picks its default.
//!
//! The registry also refuses the drivers devenv exists to move people away from. VirtualBox is the
//! seed's starting point and is refused with its figures; minikube's container and bare-metal
//! drivers are unknown here because devenv needs a VM on a host-only network whose host serves
//! NFS. A named driver is returned with its status even when unhealthy: the caller decides
//! whether to stop or only warn.

use std::fmt;

use crate::Driver;
use crate::host::{Arch, Host, Os};
use crate::hyperkit::Hyperkit;
use crate::kvm2::Kvm2;
use crate::status::DriverStatus;
use crate::vfkit::Vfkit;

static KVM2: Kvm2 = Kvm2;
static VFKIT: Vfkit = Vfkit;
static HYPERKIT: Hyperkit = Hyperkit;

/// Why VirtualBox is refused, in the seed's own figures.
const VIRTUALBOX_REASON: &str = "minikube on VirtualBox with vboxfs shared folders ran laptops at \
     300% CPU and 4 GB of RAM, and pages took about 5 s to load because every `stat` through the \
     shared folder was slow; a native hypervisor cut that to 20–50% CPU and under 1 GB, and NFS \
     fixed the file system";

/// minikube drivers that are not VMs devenv can mount its NFS export into, each with the reason.
const NOT_VM_DRIVERS: &[(&str, &str)] = &[
    ("docker", "runs the node in a container, not a VM"),
    ("podman", "runs the node in a container, not a VM"),
    ("none", "runs Kubernetes directly on this machine"),
    (
        "ssh",
        "runs Kubernetes on a remote machine devenv does not manage",
    ),
    (
        "qemu",
        "gives the VM no host-only network for NFS by default",
    ),
    (
        "qemu2",
        "gives the VM no host-only network for NFS by default",
    ),
    ("krunkit", "is not one devenv supports"),
    (
        "hyperv",
        "is not one devenv supports (devenv runs on Linux and macOS)",
    ),
    ("parallels", "is not one devenv supports"),
    ("vmware", "is not one devenv supports"),
];

/// What `vm.driver` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The healthy driver with the highest priority.
    Auto,
    /// This driver, lowercased as minikube spells driver names.
    Named(String),
}

impl Choice {
    /// Reads a `vm.driver` value; case and surrounding spaces do not matter.
    pub fn parse(text: &str) -> Choice {
        let name = text.trim().to_ascii_lowercase();
        if name == "auto" {
            Choice::Auto
        } else {
            Choice::Named(name)
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::Auto => f.write_str("auto"),
            Choice::Named(name) => f.write_str(name),
        }
    }
}

/// Why no driver could be selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// A name devenv has no driver for (including minikube's non-VM drivers).
    Unknown {
        name: String,
        known: Vec<&'static str>,
    },
    /// A driver devenv has, but not for this OS.
    Unsupported { name: String, os: Os },
    /// A driver devenv deliberately does not use, with why and what to use instead.
    Refused {
        name: String,
        reason: String,
        alternative: String,
    },
    /// `"auto"` found no healthy driver; every candidate's status says why.
    NoneHealthy { statuses: Vec<DriverStatus> },
}

impl SelectError {
    /// The user's next step, for the `help:` line under the error.
    pub fn help(&self) -> Option<String> {
        match self {
            SelectError::Unknown { name, known } => {
                let valid = known.join(", ");
                Some(match not_vm_reason(name) {
                    Some(why) => format!(
                        "minikube's {name} driver {why}; devenv needs a VM whose host serves its \
                         NFS export: set vm.driver to \"auto\" or one of {valid}"
                    ),
                    None => format!("set vm.driver to \"auto\" or one of {valid}"),
                })
            }
            SelectError::Unsupported { os, .. } => Some(match preferred(*os) {
                Some(d) => format!(
                    "set vm.driver = \"{d}\" (or \"auto\"), the driver for {}",
                    os_name(*os)
                ),
                None => "devenv runs VMs on Linux (kvm2) and macOS (vfkit)".to_string(),
            }),
            SelectError::Refused { alternative, .. } => Some(format!(
                "use {alternative}: set vm.driver = \"auto\" to let devenv pick it"
            )),
            SelectError::NoneHealthy { statuses } => {
                let first = statuses
                    .iter()
                    .find_map(|s| s.first_failure().map(|c| (s.driver, c)));
                Some(match first {
                    Some((driver, check)) => format!(
                        "{driver}: {}; `devenv doctor` lists every check",
                        check.fix.as_deref().unwrap_or(&check.reason)
                    ),
                    None => "devenv runs VMs on Linux (kvm2) and macOS (vfkit)".to_string(),
                })
            }
        }
    }
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::Unknown { name, known } => write!(
                f,
                "unknown VM driver \"{name}\" (known: {})",
                known.join(", ")
            ),
            SelectError::Unsupported { name, os } => {
                write!(f, "the {name} driver does not run on {}", os_name(*os))
            }
            SelectError::Refused { name, reason, .. } => {
                write!(f, "devenv does not use the {name} driver: {reason}")
            }
            SelectError::NoneHealthy { statuses } if statuses.is_empty() => {
                f.write_str("no VM driver runs on this OS")
            }
            SelectError::NoneHealthy { statuses } => {
                f.write_str("no healthy VM driver on this host")?;
                for (i, s) in statuses.iter().enumerate() {
                    let sep = if i == 0 { ": " } else { "; " };
                    let why = s.first_failure().map_or("unhealthy", |c| c.reason.as_str());
                    write!(f, "{sep}{} ({why})", s.driver)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for SelectError {}

fn os_name(os: Os) -> &'static str {
    match os {
        Os::Linux => "Linux",
        Os::MacOs => "macOS",
        Os::Other => "this OS",
    }
}

/// The driver `"auto"` would prefer on `os`, to name as the way out.
fn preferred(os: Os) -> Option<&'static str> {
    match os {
        Os::Linux => Some("kvm2"),
        Os::MacOs => Some("vfkit"),
        Os::Other => None,
    }
}

fn not_vm_reason(name: &str) -> Option<&'static str> {
    NOT_VM_DRIVERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, why)| *why)
}

/// VirtualBox, refused whatever the OS; `os` only picks the alternative to name.
fn refusal(name: &str, os: Option<Os>) -> Option<SelectError> {
    if !matches!(name, "virtualbox" | "vbox") {
        return None;
    }
    let alternative = match os.and_then(preferred) {
        Some(d) => d.to_string(),
        None => "kvm2 on Linux or vfkit on macOS".to_string(),
    };
    Some(SelectError::Refused {
        name: name.to_string(),
        reason: VIRTUALBOX_REASON.to_string(),
        alternative,
    })
}

/// Whether `driver` exists for `os` on any CPU. A named driver is only refused for the wrong OS;
/// the wrong CPU is one of its failing checks, which says more ("hyperkit needs an Intel Mac").
fn runs_on(driver: &dyn Driver, os: Os) -> bool {
    [Arch::X86_64, Arch::Aarch64]
        .into_iter()
        .any(|arch| driver.supports(os, arch))
}

/// The drivers devenv knows, in a fixed order that breaks priority ties.
pub struct Registry {
    drivers: Vec<&'static dyn Driver>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

impl Registry {
    pub fn builtin() -> Registry {
        Registry {
            drivers: vec![&KVM2, &VFKIT, &HYPERKIT],
        }
    }

    pub fn all(&self) -> &[&'static dyn Driver] {
        &self.drivers
    }

    /// Names valid in `vm.driver` besides `"auto"`.
    pub fn names(&self) -> Vec<&'static str> {
        self.drivers.iter().map(|d| d.name()).collect()
    }

    /// Drivers that can exist on this OS and CPU, best first.
    pub fn for_host(&self, os: Os, arch: Arch) -> Vec<&'static dyn Driver> {
        let mut drivers: Vec<_> = self
            .drivers
            .iter()
            .copied()
            .filter(|d| d.supports(os, arch))
            .collect();
        drivers.sort_by_key(|d| std::cmp::Reverse(d.priority()));
        drivers
    }

    /// The driver called `name` (minikube's `kvm` alias included), on any OS.
    pub fn get(&self, name: &str) -> Result<&'static dyn Driver, SelectError> {
        self.lookup(name, None)
    }

    fn lookup(&self, name: &str, os: Option<Os>) -> Result<&'static dyn Driver, SelectError> {
        let name = name.trim().to_ascii_lowercase();
        if let Some(refused) = refusal(&name, os) {
            return Err(refused);
        }
        let wanted = if name == "kvm" { "kvm2" } else { name.as_str() };
        self.drivers
            .iter()
            .copied()
            .find(|d| d.name() == wanted)
            .ok_or_else(|| SelectError::Unknown {
                name,
                known: self.names(),
            })
    }

    /// Resolves `vm.driver` on this host. `Auto` checks the candidates best first and stops at the
    /// first healthy one, so a lower-priority driver is only probed when the better ones fail.
    pub async fn choose(
        &self,
        choice: &Choice,
        host: &dyn Host,
    ) -> Result<(&'static dyn Driver, DriverStatus), SelectError> {
        let os = host.os();
        match choice {
            Choice::Named(name) => {
                let driver = self.lookup(name, Some(os))?;
                if !runs_on(driver, os) {
                    return Err(SelectError::Unsupported {
                        name: driver.name().to_string(),
                        os,
                    });
                }
                let status = driver.status(host).await;
                Ok((driver, status))
            }
            Choice::Auto => {
                let mut statuses = Vec::new();
                for driver in self.for_host(os, host.arch()) {
                    let status = driver.status(host).await;
                    if status.healthy() {
                        return Ok((driver, status));
                    }
                    statuses.push(status);
                }
                if statuses.is_empty() {
                    // No driver for this CPU (kvm2 on ARM Linux): the OS's drivers say why,
                    // through their failing CPU checks, and none of them is chosen.
                    for driver in self.drivers.iter().filter(|d| runs_on(**d, os)) {
                        statuses.push(driver.status(host).await);
                    }
                }
                Err(SelectError::NoneHealthy { statuses })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::*;
    use crate::host::FileInfo;
    use crate::status::CheckState;

    fn choose(choice: &str, host: &FakeHost) -> Result<(&'static str, DriverStatus), SelectError> {
        block_on(Registry::builtin().choose(&Choice::parse(choice), host))
            .map(|(d, s)| (d.name(), s))
    }

    fn healthy_linux() -> FakeHost {
        FakeHost::linux()
            .groups(&["libvirt"])
            .program("minikube")
            .program("docker-machine-driver-kvm2")
            .program("virsh")
            .file("/dev/kvm", DEV_KVM_RW)
            .text("/proc/cpuinfo", CPUINFO_VMX)
            .answer("virsh -c qemu:///system uri", out("qemu:///system\n"))
            .answer(
                "virsh -c qemu:///system domcapabilities --virttype kvm",
                out(DOMCAPS_KVM),
            )
            .answer(
                "virsh -c qemu:///system net-info default",
                out(NET_INFO_AUTOSTART),
            )
    }

    fn intel_mac() -> FakeHost {
        FakeHost::mac(Arch::X86_64, "14.5")
            .program("minikube")
            .program("vfkit")
            .program("hyperkit")
            .program("docker-machine-driver-hyperkit")
            .file(
                "/usr/local/bin/docker-machine-driver-hyperkit",
                FileInfo {
                    uid: 0,
                    mode: 0o104755,
                    read_write: false,
                },
            )
    }

    #[test]
    fn choice_parse_reads_auto_and_lowercases_names() {
        assert_eq!(Choice::parse("auto"), Choice::Auto);
        assert_eq!(Choice::parse(" Auto "), Choice::Auto);
        assert_eq!(Choice::parse("KVM2"), Choice::Named("kvm2".into()));
        assert_eq!(Choice::parse("vfkit").to_string(), "vfkit");
    }

    #[test]
    fn for_host_lists_the_drivers_of_this_os_and_cpu_best_first() {
        let r = Registry::builtin();
        let names =
            |os, arch| -> Vec<_> { r.for_host(os, arch).iter().map(|d| d.name()).collect() };
        assert_eq!(names(Os::Linux, Arch::X86_64), ["kvm2"]);
        assert_eq!(names(Os::MacOs, Arch::X86_64), ["vfkit", "hyperkit"]);
        assert_eq!(names(Os::MacOs, Arch::Aarch64), ["vfkit"]);
        assert!(names(Os::Other, Arch::X86_64).is_empty());
        assert!(
            names(Os::Linux, Arch::Aarch64).is_empty(),
            "kvm2 is amd64 only"
        );
        assert_eq!(r.names(), ["kvm2", "vfkit", "hyperkit"]);
        assert_eq!(r.all().len(), 3);
    }

    #[test]
    fn auto_on_arm_linux_chooses_nothing_and_says_kvm2_is_amd64_only() {
        let host = FakeHost::linux().arch(Arch::Aarch64);
        let Err(SelectError::NoneHealthy { statuses }) =
            block_on(Registry::builtin().choose(&Choice::Auto, &host))
        else {
            panic!("auto must choose nothing here")
        };
        assert_eq!(statuses.len(), 1);
        let cpu = statuses[0]
            .checks
            .iter()
            .find(|c| c.id == "kvm2.cpu")
            .unwrap();
        assert_eq!(cpu.state, CheckState::Fail);
    }

    #[test]
    fn auto_picks_the_healthy_driver_with_the_highest_priority() {
        let host = intel_mac();
        let (name, status) = choose("auto", &host).unwrap();
        assert_eq!(name, "vfkit");
        assert!(status.healthy());
        assert!(host.ran().is_empty());

        let (name, _) = choose("auto", &healthy_linux()).unwrap();
        assert_eq!(name, "kvm2");
    }

    #[test]
    fn auto_falls_back_to_a_lower_priority_driver_when_the_preferred_one_is_unhealthy() {
        let (name, status) = choose("auto", &intel_mac().without_program("vfkit")).unwrap();
        assert_eq!(name, "hyperkit");
        assert_eq!(status.state(), CheckState::Warn);
    }

    #[test]
    fn auto_reports_every_candidates_status_when_none_is_healthy() {
        let host = intel_mac()
            .without_program("vfkit")
            .without_program("hyperkit");
        let err = choose("auto", &host).unwrap_err();
        let SelectError::NoneHealthy { statuses } = &err else {
            panic!("{err:?}");
        };
        let drivers: Vec<_> = statuses.iter().map(|s| s.driver).collect();
        assert_eq!(drivers, ["vfkit", "hyperkit"]);
        assert_eq!(
            err.to_string(),
            "no healthy VM driver on this host: vfkit (vfkit is not on PATH); \
             hyperkit (hyperkit is not on PATH)"
        );
        assert_eq!(
            err.help().as_deref(),
            Some("vfkit: brew install vfkit; `devenv doctor` lists every check")
        );
    }

    #[test]
    fn auto_on_a_machine_without_vmx_names_the_cpu_as_the_reason() {
        let host = healthy_linux().text("/proc/cpuinfo", CPUINFO_NO_VIRT);
        let err = choose("auto", &host).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no healthy VM driver on this host: kvm2 (KVM is unusable: "),
            "{err}"
        );
    }

    #[test]
    fn auto_on_an_unsupported_os_says_no_driver_runs_there() {
        let err = choose("auto", &FakeHost::other()).unwrap_err();
        assert_eq!(err, SelectError::NoneHealthy { statuses: vec![] });
        assert_eq!(err.to_string(), "no VM driver runs on this OS");
        assert!(err.help().unwrap().contains("kvm2"));
    }

    #[test]
    fn a_named_driver_is_returned_with_its_status_even_when_unhealthy() {
        let (name, status) = choose("hyperkit", &intel_mac().without_program("hyperkit")).unwrap();
        assert_eq!(name, "hyperkit");
        assert!(!status.healthy());
    }

    #[test]
    fn a_named_driver_for_another_cpu_fails_its_checks_rather_than_the_selection() {
        let host = intel_mac().arch(Arch::Aarch64);
        let (name, status) = choose("hyperkit", &host).unwrap();
        assert_eq!(name, "hyperkit");
        assert_eq!(
            status.first_failure().unwrap().reason,
            "hyperkit needs an Intel Mac"
        );
    }

    #[test]
    fn a_named_driver_unsupported_on_this_os_is_refused_with_the_one_to_use() {
        let err = choose("vfkit", &healthy_linux()).unwrap_err();
        assert_eq!(
            err,
            SelectError::Unsupported {
                name: "vfkit".into(),
                os: Os::Linux
            }
        );
        assert_eq!(err.to_string(), "the vfkit driver does not run on Linux");
        assert_eq!(
            err.help().as_deref(),
            Some("set vm.driver = \"kvm2\" (or \"auto\"), the driver for Linux")
        );

        let err = choose("kvm2", &intel_mac()).unwrap_err();
        assert_eq!(err.to_string(), "the kvm2 driver does not run on macOS");
    }

    #[test]
    fn virtualbox_is_refused_with_the_seeds_figures_and_the_native_alternative() {
        for name in ["virtualbox", "VirtualBox", "vbox"] {
            let err = choose(name, &intel_mac()).unwrap_err();
            let SelectError::Refused {
                reason,
                alternative,
                ..
            } = &err
            else {
                panic!("{err:?}");
            };
            assert!(reason.contains("300% CPU and 4 GB"), "{reason}");
            assert!(reason.contains("20–50% CPU and under 1 GB"), "{reason}");
            assert!(reason.contains("about 5 s"), "{reason}");
            assert_eq!(alternative, "vfkit");
        }
        let err = choose("virtualbox", &healthy_linux()).unwrap_err();
        assert!(err.to_string().starts_with(
            "devenv does not use the virtualbox driver: minikube on VirtualBox with vboxfs"
        ));
        assert_eq!(
            err.help().as_deref(),
            Some("use kvm2: set vm.driver = \"auto\" to let devenv pick it")
        );
        let Err(SelectError::Refused { alternative, .. }) = Registry::builtin().get("virtualbox")
        else {
            panic!("virtualbox must be refused");
        };
        assert_eq!(alternative, "kvm2 on Linux or vfkit on macOS");
    }

    #[test]
    fn an_unknown_name_lists_the_known_drivers() {
        let err = Registry::builtin().get("xhyve").err().unwrap();
        assert_eq!(
            err,
            SelectError::Unknown {
                name: "xhyve".into(),
                known: vec!["kvm2", "vfkit", "hyperkit"],
            }
        );
        assert_eq!(
            err.to_string(),
            "unknown VM driver \"xhyve\" (known: kvm2, vfkit, hyperkit)"
        );
        assert_eq!(
            err.help().as_deref(),
            Some("set vm.driver to \"auto\" or one of kvm2, vfkit, hyperkit")
        );
    }

    #[test]
    fn minikubes_container_and_bare_metal_drivers_are_unknown_with_the_reason() {
        for name in ["docker", "podman", "none", "qemu2", "ssh"] {
            let err = Registry::builtin().get(name).err().unwrap();
            assert!(
                matches!(err, SelectError::Unknown { .. }),
                "{name}: {err:?}"
            );
            let help = err.help().unwrap();
            assert!(
                help.starts_with(&format!("minikube's {name} driver ")),
                "{help}"
            );
            assert!(
                help.contains("needs a VM whose host serves its NFS export"),
                "{help}"
            );
        }
    }

    #[test]
    fn get_accepts_minikubes_kvm_alias_and_any_case() {
        assert_eq!(Registry::builtin().get("kvm").unwrap().name(), "kvm2");
        assert_eq!(Registry::builtin().get("VFKit").unwrap().name(), "vfkit");
    }

    #[test]
    fn messages_start_lowercase_and_end_without_a_period() {
        let errors = [
            SelectError::Unknown {
                name: "x".into(),
                known: vec!["kvm2"],
            },
            SelectError::Unsupported {
                name: "kvm2".into(),
                os: Os::MacOs,
            },
            refusal("virtualbox", Some(Os::Linux)).unwrap(),
            SelectError::NoneHealthy { statuses: vec![] },
        ];
        for e in errors {
            let msg = e.to_string();
            assert!(msg.starts_with(|c: char| c.is_lowercase()), "{msg}");
            assert!(!msg.ends_with('.'), "{msg}");
            let help = e.help().unwrap();
            assert!(!help.ends_with('.'), "{help}");
        }
    }
}
