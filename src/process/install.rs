//! How to install a missing program on this OS, for the "not found" error. Commands, not prose:
//! the user should be able to paste the line.

/// The family of the host OS, as far as installing packages goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
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
    /// The platform this binary runs on; on Linux decided by `/etc/os-release`.
    pub fn detect() -> Platform {
        if cfg!(target_os = "macos") {
            Platform::MacOs
        } else if cfg!(target_os = "linux") {
            let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
            Platform::from_os_release(&text)
        } else {
            Platform::Other
        }
    }

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
}

const MINIKUBE_LINUX: &str = "curl -LO https://storage.googleapis.com/minikube/releases/latest/minikube-linux-amd64 && sudo install minikube-linux-amd64 /usr/local/bin/minikube";
/// What `devenv onboard` does for helm and kubectl on Debian and Ubuntu: never a script piped
/// into a shell.
fn from_onboard(program: &str) -> String {
    format!(
        "`devenv onboard` adds {program}'s signed apt repository and installs {program} (it shows each command first)"
    )
}

/// The command that installs `program` on `platform`, or a pointer to where it comes from.
pub fn install_hint(program: &str, platform: Platform) -> String {
    use Platform::*;
    let brew = |formula: &str| format!("brew install {formula}");
    let pkg = |deb: &str, rpm: &str, arch: &str| -> String {
        match platform {
            Debian => format!("sudo apt-get install -y {deb}"),
            Fedora => format!("sudo dnf install -y {rpm}"),
            Arch => format!("sudo pacman -S --needed {arch}"),
            _ => format!("install {program} with your package manager"),
        }
    };
    match (program, platform) {
        ("minikube", MacOs) => brew("minikube"),
        ("minikube", Debian | Fedora | Arch | OtherLinux) => MINIKUBE_LINUX.to_string(),
        ("helm", MacOs) => brew("helm"),
        ("helm" | "kubectl", Debian) => from_onboard(program),
        ("helm", Arch | Fedora) => pkg("", "helm", "helm"),
        ("helm", _) => "see https://helm.sh/docs/intro/install/ (a signed package of your distribution)".to_string(),
        ("kubectl", MacOs) => brew("kubernetes-cli"),
        ("kubectl", Arch) => pkg("", "", "kubectl"),
        ("kubectl", _) => {
            "see https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/ (or: sudo snap install kubectl --classic)".to_string()
        }
        ("vfkit", MacOs) => brew("vfkit"),
        ("hyperkit", MacOs) => {
            "hyperkit is disabled in Homebrew since 2025: use the vfkit driver (brew install vfkit)"
                .to_string()
        }
        ("docker-machine-driver-kvm2", _) => {
            "download docker-machine-driver-kvm2 from https://github.com/kubernetes/minikube/releases and install it to /usr/local/bin".to_string()
        }
        ("virsh" | "libvirtd", _) => pkg(
            "libvirt-daemon-system libvirt-clients",
            "libvirt-daemon-kvm libvirt-client",
            "libvirt",
        ),
        ("qemu-system-x86_64", _) => pkg("qemu-kvm", "qemu-kvm", "qemu-full"),
        ("exportfs", _) => pkg("nfs-kernel-server", "nfs-utils", "nfs-utils"),
        ("docker", MacOs) => brew("docker"),
        ("docker", _) => pkg("docker.io", "moby-engine", "docker"),
        (_, MacOs) => brew(program),
        _ => pkg(program, program, program),
    }
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
    fn missing_minikube_on_macos_is_a_brew_install() {
        assert_eq!(
            install_hint("minikube", Platform::MacOs),
            "brew install minikube"
        );
    }

    #[test]
    fn missing_exportfs_on_debian_names_the_package() {
        assert_eq!(
            install_hint("exportfs", Platform::Debian),
            "sudo apt-get install -y nfs-kernel-server"
        );
    }

    #[test]
    fn missing_kubectl_on_macos_is_the_kubernetes_cli_formula() {
        assert_eq!(
            install_hint("kubectl", Platform::MacOs),
            "brew install kubernetes-cli"
        );
    }
}
