//! How to install a missing program on this OS, for the "not found" error. Commands, not prose:
//! the user should be able to paste the line.

pub use devenv_drivers::packages::Platform;
use devenv_drivers::packages::{Need, install};

/// The platform this binary runs on; on Linux decided by `/etc/os-release`.
pub fn detect_platform() -> Platform {
    if cfg!(target_os = "macos") {
        Platform::MacOs
    } else if cfg!(target_os = "linux") {
        let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        Platform::from_os_release(&text)
    } else {
        Platform::Other
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
        ("virsh" | "libvirtd", _) => install(&[Need::Libvirt], platform, "libvirt"),
        ("qemu-system-x86_64", _) => install(&[Need::Qemu], platform, "QEMU with KVM"),
        ("exportfs", _) => install(&[Need::NfsServer], platform, "the NFS server"),
        ("docker", _) => install(&[Need::Docker], platform, "Docker"),
        (_, MacOs) => brew(program),
        _ => pkg(program, program, program),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
