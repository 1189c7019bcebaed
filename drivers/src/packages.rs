//! The one catalogue of what devenv asks a developer to install, per OS family and
//! distribution. The install hints of "not found" errors, the drivers' fixes and `devenv
//! onboard`'s package lists all read it, so a Fedora laptop is never told to use apt and a
//! package renamed by a distribution is changed in one place.

use crate::host::{Host, Os};

/// The family of the host OS, as far as installing packages goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    MacOs,
    /// Debian, Ubuntu and derivatives (apt).
    Debian,
    /// Fedora, RHEL and derivatives (dnf).
    Fedora,
    /// Arch and derivatives (pacman).
    Arch,
    OtherLinux,
    Other,
}

impl Platform {
    /// Classify a Linux `/etc/os-release` by its `ID` and `ID_LIKE` fields.
    pub fn from_os_release(text: &str) -> Platform {
        let mut ids = Vec::new();
        for line in text.lines() {
            if let Some(v) = line
                .strip_prefix("ID=")
                .or_else(|| line.strip_prefix("ID_LIKE="))
            {
                ids.extend(v.trim_matches('"').split_whitespace().map(str::to_string));
            }
        }
        let has = |names: &[&str]| ids.iter().any(|i| names.contains(&i.as_str()));
        if has(&["debian", "ubuntu"]) {
            Platform::Debian
        } else if has(&["fedora", "rhel", "centos"]) {
            Platform::Fedora
        } else if has(&["arch"]) {
            Platform::Arch
        } else {
            Platform::OtherLinux
        }
    }

    /// The platform of `host`: its OS, and on Linux its `/etc/os-release`.
    pub fn of(host: &dyn Host) -> Platform {
        match host.os() {
            Os::MacOs => Platform::MacOs,
            Os::Linux => Platform::from_os_release(
                &host
                    .read_file(std::path::Path::new("/etc/os-release"))
                    .unwrap_or_default(),
            ),
            Os::Other => Platform::Other,
        }
    }

    /// The lowercase name (`debian`, `macos`), for JSON.
    pub fn name(self) -> &'static str {
        match self {
            Platform::MacOs => "macos",
            Platform::Debian => "debian",
            Platform::Fedora => "fedora",
            Platform::Arch => "arch",
            Platform::OtherLinux => "otherlinux",
            Platform::Other => "other",
        }
    }
}

/// What a developer may have to install from their distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// libvirt's daemon and `virsh` (the kvm2 driver).
    Libvirt,
    /// QEMU with KVM, which libvirt runs the VM in.
    Qemu,
    /// The kernel NFS server and `exportfs`.
    NfsServer,
    /// Docker (the CLI on macOS, the engine on Linux).
    Docker,
}

/// The packages of `need` on `platform` (Homebrew formulae on macOS); none where devenv knows
/// no package.
pub fn packages(need: Need, platform: Platform) -> &'static [&'static str] {
    use Need::*;
    use Platform::*;
    match (need, platform) {
        (Libvirt, Debian) => &["libvirt-daemon-system", "libvirt-clients"],
        (Libvirt, Fedora) => &["libvirt-daemon-kvm", "libvirt-client"],
        (Libvirt, Arch) => &["libvirt"],
        (Qemu, Debian | Fedora) => &["qemu-kvm"],
        (Qemu, Arch) => &["qemu-full"],
        (NfsServer, Debian) => &["nfs-kernel-server"],
        (NfsServer, Fedora | Arch) => &["nfs-utils"],
        (Docker, Debian) => &["docker.io"],
        (Docker, Fedora) => &["moby-engine"],
        (Docker, Arch | MacOs) => &["docker"],
        _ => &[],
    }
}

/// The command that installs `names` with `platform`'s package manager; `None` where devenv
/// knows none.
pub fn install_command(names: &[&str], platform: Platform) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    let names = names.join(" ");
    Some(match platform {
        Platform::Debian => format!("sudo apt-get install -y {names}"),
        Platform::Fedora => format!("sudo dnf install -y {names}"),
        Platform::Arch => format!("sudo pacman -S --needed {names}"),
        Platform::MacOs => format!("brew install {names}"),
        Platform::OtherLinux | Platform::Other => return None,
    })
}

/// The command that installs what `needs` name on `platform`, or words saying what to install
/// where no package is known.
pub fn install(needs: &[Need], platform: Platform, what: &str) -> String {
    let names: Vec<&str> = needs
        .iter()
        .flat_map(|n| packages(*n, platform))
        .copied()
        .collect();
    install_command(&names, platform)
        .unwrap_or_else(|| format!("install {what} with your distribution's package manager"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_of_ubuntu_is_debian_family() {
        let text = "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n";
        assert_eq!(Platform::from_os_release(text), Platform::Debian);
    }

    #[test]
    fn os_release_of_rocky_is_fedora_family() {
        let text = "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n";
        assert_eq!(Platform::from_os_release(text), Platform::Fedora);
    }

    #[test]
    fn each_family_gets_its_own_package_manager_and_names() {
        let libvirt = [Need::Libvirt, Need::Qemu];
        assert_eq!(
            install(&libvirt, Platform::Debian, "libvirt"),
            "sudo apt-get install -y libvirt-daemon-system libvirt-clients qemu-kvm"
        );
        assert_eq!(
            install(&libvirt, Platform::Fedora, "libvirt"),
            "sudo dnf install -y libvirt-daemon-kvm libvirt-client qemu-kvm"
        );
        assert_eq!(
            install(&libvirt, Platform::Arch, "libvirt"),
            "sudo pacman -S --needed libvirt qemu-full"
        );
        assert_eq!(
            install(&[Need::NfsServer], Platform::OtherLinux, "an NFS server"),
            "install an NFS server with your distribution's package manager"
        );
    }
}
