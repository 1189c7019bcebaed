//! The `minikube` commands devenv runs and how it reads their answers. Formats and exit codes
//! follow minikube v1.38 (see the contracts in the design notes): `status -o json` prints one
//! object per node (an array for several), exits with a bit set (1 host, 2 kubelet/apiserver,
//! 4 kubeconfig) and 85 when the profile does not exist.

use std::net::Ipv4Addr;

use devenv_drivers::Driver;
use serde::Deserialize;

use crate::config::Vm;
use crate::process::{Cmd, Output, ssh_command_line};

/// Exit code of any minikube command on a profile that does not exist (GUEST_NOT_FOUND).
pub const EXIT_PROFILE_NOT_FOUND: i32 = 85;
/// Exit code of commands that need a running host when it is stopped (GUEST_NOT_RUNNING).
pub const EXIT_NOT_RUNNING: i32 = 83;

/// `minikube start` for the profile with the driver's flags and the `[vm]` settings.
pub fn start(profile: &str, driver: &dyn Driver, vm: &Vm) -> Cmd {
    Cmd::new("minikube")
        .args(["start", "-p", profile])
        .arg(format!("--driver={}", driver.name()))
        .args(driver.start_flags())
        .arg(format!("--cpus={}", vm.cpus))
        .arg(format!("--memory={}", vm.memory.minikube_flag()))
        .arg(format!("--disk-size={}", vm.disk.minikube_flag()))
        .arg(format!("--kubernetes-version={}", vm.kubernetes_version))
        .arg(format!("--extra-config=kubelet.max-pods={}", vm.max_pods))
}

/// `minikube status` of the profile, as JSON. Read-only.
pub fn status(profile: &str) -> Cmd {
    Cmd::new("minikube")
        .args(["status", "-p", profile, "-o", "json"])
        .read_only()
        .timeout(std::time::Duration::from_secs(60))
}

/// `minikube ip` of the profile: the VM's address (exit 83 when stopped, 85 when missing).
pub fn ip(profile: &str) -> Cmd {
    Cmd::new("minikube")
        .args(["ip", "-p", profile])
        .read_only()
        .timeout(std::time::Duration::from_secs(60))
}

/// `minikube ssh` running `argv` inside the VM, each word quoted for the VM's shell (minikube
/// joins its arguments with spaces and hands them to a shell).
pub fn ssh<S: AsRef<str>>(profile: &str, argv: &[S]) -> Cmd {
    Cmd::new("minikube")
        .args(["ssh", "-p", profile, "--"])
        .arg(ssh_command_line(argv))
}

/// Where the profile's VM stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmState {
    /// No such profile, or its machine is gone.
    Nonexistent,
    Running,
    Stopped,
    /// Any other host state minikube reports (`Error`, `InsufficientStorage`, ...).
    Other(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeStatus {
    host: String,
}

/// Read `minikube status -p P -o json`'s output and exit code.
pub fn parse_status(out: &Output) -> Result<VmState, String> {
    if out.code == Some(EXIT_PROFILE_NOT_FOUND) {
        return Ok(VmState::Nonexistent);
    }
    let text = out.stdout.trim();
    if text == "null" {
        // The profile's config exists but its machine does not.
        return Ok(VmState::Nonexistent);
    }
    let nodes: Vec<NodeStatus> = if text.starts_with('[') {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        vec![serde_json::from_str(text).map_err(|e| format!("{e} in {text:?}"))?]
    };
    let host = nodes
        .first()
        .map(|n| n.host.as_str())
        .ok_or("no nodes in status")?;
    Ok(match host {
        "Running" => VmState::Running,
        "Stopped" => VmState::Stopped,
        "Nonexistent" => VmState::Nonexistent,
        other => VmState::Other(other.to_string()),
    })
}

/// The address of the host inside the VM, before the VM exists: the gateway of the driver's
/// default host-only network.
pub fn expected_host_address(driver: &dyn Driver) -> Ipv4Addr {
    match driver.default_subnet() {
        devenv_drivers::ExportClient::Subnet { network, .. } => driver.host_address(network),
        devenv_drivers::ExportClient::Address(ip) => driver.host_address(ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32, stdout: &str) -> Output {
        Output {
            code: Some(code),
            stdout: stdout.into(),
            ..Output::default()
        }
    }

    #[test]
    fn a_running_profile_is_running() {
        let o = out(
            0,
            r#"{"Name":"devenv-shop","Host":"Running","Kubelet":"Running","APIServer":"Running","Kubeconfig":"Configured","Worker":false}"#,
        );
        assert_eq!(parse_status(&o), Ok(VmState::Running));
    }

    #[test]
    fn a_stopped_profile_exits_7_and_is_stopped() {
        let o = out(
            7,
            r#"{"Name":"devenv-shop","Host":"Stopped","Kubelet":"Stopped","APIServer":"Stopped","Kubeconfig":"Stopped","Worker":false}"#,
        );
        assert_eq!(parse_status(&o), Ok(VmState::Stopped));
    }

    #[test]
    fn exit_85_means_no_profile_whatever_is_printed() {
        let o = out(
            85,
            r#"{"specversion":"1.0","type":"io.k8s.sigs.minikube.info"}"#,
        );
        assert_eq!(parse_status(&o), Ok(VmState::Nonexistent));
    }

    #[test]
    fn null_means_the_machine_is_gone() {
        assert_eq!(parse_status(&out(7, "null")), Ok(VmState::Nonexistent));
    }

    #[test]
    fn several_nodes_come_as_an_array() {
        let o = out(
            0,
            r#"[{"Name":"m01","Host":"Running","Kubelet":"Running","APIServer":"Running","Kubeconfig":"Configured","Worker":false}]"#,
        );
        assert_eq!(parse_status(&o), Ok(VmState::Running));
    }

    #[test]
    fn ssh_quotes_every_word_into_one_argument() {
        let cmd = ssh("devenv-shop", &["ls", "/src/my dir"]);
        assert_eq!(
            cmd.display(),
            r#"minikube ssh -p devenv-shop -- 'ls '\''/src/my dir'\'''"#
        );
    }
}
