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

/// The container runtime devenv asks for. minikube v1.39 made containerd the default, but
/// devenv builds images in the VM's Docker daemon (`docker-env`, which exits 14 with any other
/// runtime on a VM driver) and reads per-service figures from it, and only with Docker does the
/// kubelet see those images.
pub const CONTAINER_RUNTIME: &str = "docker";

/// `minikube start` for the profile with the driver's flags and the `[vm]` settings.
pub fn start(profile: &str, driver: &dyn Driver, vm: &Vm) -> Cmd {
    Cmd::new("minikube")
        .args(["start", "-p", profile])
        .arg(format!("--driver={}", driver.name()))
        .arg(format!("--container-runtime={CONTAINER_RUNTIME}"))
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

/// `minikube docker-env` of the profile in the `KEY=value` form (`--shell none`: no quoting and
/// no usage hint to strip); exit 83 when the VM is stopped, 85 when missing, 14 when the runtime
/// is not Docker. It changes nothing devenv owns, but it is not read-only inside the VM (it runs
/// `docker version` and may restart dockerd), so a command asks it once
/// ([`crate::docker::DockerEnv::for_profile`]).
pub fn docker_env(profile: &str) -> Cmd {
    Cmd::new("minikube")
        .args(["docker-env", "-p", profile, "--shell", "none"])
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
    /// minikube could not tell, and why: `status` prints `null` whenever reading the node
    /// fails (libvirt unreachable, no IP yet, the SSH check failing while the VM boots), not
    /// only for a missing machine. Never taken for "not created".
    Unknown(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeStatus {
    host: String,
}

/// Read `minikube status -p P -o json`'s output and exit code.
pub fn parse_status(out: &Output) -> Result<VmState, crate::unreadable::Unreadable> {
    if out.code == Some(EXIT_PROFILE_NOT_FOUND) {
        return Ok(VmState::Nonexistent);
    }
    let text = out.stdout.trim();
    if text == "null" {
        return Ok(VmState::Unknown(format!(
            "`minikube status` printed null (exit {}): the machine could not be read (libvirt \
             unreachable, no address yet, or still booting)",
            out.code.map_or("by signal".to_string(), |c| c.to_string())
        )));
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

/// `minikube profile list -o json`. Read-only.
pub fn profile_list() -> Cmd {
    Cmd::new("minikube")
        .args(["profile", "list", "-o", "json"])
        .read_only()
        .timeout(std::time::Duration::from_secs(60))
}

/// `minikube profile list -l -o json`: every profile's stored settings from minikube's config
/// files, without asking any machine for its state (`Status` is "Skipped"). The full list asks
/// each profile's machine and SSHes into every running one (0.2–2.5 s, minikube #9970); this
/// one only reads files. Read-only.
pub fn profile_list_light() -> Cmd {
    Cmd::new("minikube")
        .args(["profile", "list", "-l", "-o", "json"])
        .read_only()
        .timeout(std::time::Duration::from_secs(60))
}

/// Whether `profile list -o json` (light or not) could be read, and the profile's settings
/// in it: `Ok(None)` is a list without the profile.
pub fn find_profile(
    json: &str,
    profile: &str,
) -> Result<Option<ProfileSettings>, crate::unreadable::Unreadable> {
    let list: ProfileList = serde_json::from_str(json.trim()).map_err(|e| e.to_string())?;
    Ok(list
        .valid
        .into_iter()
        .find(|p| p.name == profile)
        .and_then(settings_of))
}

/// The settings minikube keeps for a profile, as far as devenv sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSettings {
    pub driver: String,
    pub cpus: u32,
    pub memory_mib: u64,
    pub disk_mib: u64,
    pub kubernetes_version: String,
    pub max_pods: Option<u32>,
    /// `KubernetesConfig.ContainerRuntime` (profiles of minikube before v1.39 may leave it
    /// empty, which meant docker).
    pub container_runtime: String,
    /// The control plane's `Nodes[].IP`, stored by the last `start`: what `minikube ip`
    /// prints for a running VM driver (it reads the same field, `driver.ControlPlaneEndpoint`).
    pub node_ip: Option<Ipv4Addr>,
}

#[derive(Deserialize)]
struct ProfileList {
    /// Always there when the list could be read (`[]`, never null); `{"error": …}` otherwise.
    valid: Vec<ProfileEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProfileEntry {
    name: String,
    config: Option<ProfileConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProfileConfig {
    #[serde(default)]
    memory: u64,
    #[serde(rename = "CPUs", default)]
    cpus: u32,
    #[serde(default)]
    disk_size: u64,
    #[serde(default)]
    driver: String,
    kubernetes_config: Option<KubernetesConfig>,
    #[serde(default)]
    nodes: Option<Vec<NodeConfig>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeConfig {
    #[serde(rename = "IP", default)]
    ip: String,
    #[serde(default)]
    control_plane: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KubernetesConfig {
    #[serde(default)]
    kubernetes_version: String,
    #[serde(default)]
    container_runtime: String,
    #[serde(default)]
    extra_options: Option<Vec<ExtraOption>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExtraOption {
    component: String,
    key: String,
    value: String,
}

/// The settings of `profile` from `minikube profile list -o json`.
pub fn parse_profile(json: &str, profile: &str) -> Option<ProfileSettings> {
    find_profile(json, profile).ok().flatten()
}

fn settings_of(entry: ProfileEntry) -> Option<ProfileSettings> {
    let c = entry.config?;
    let node_ip = c
        .nodes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|n| n.control_plane)
        .and_then(|n| n.ip.parse().ok());
    let k = c.kubernetes_config;
    let max_pods = k
        .as_ref()
        .and_then(|k| k.extra_options.as_ref())
        .and_then(|opts| {
            opts.iter()
                .find(|o| o.component == "kubelet" && o.key == "max-pods")
        })
        .and_then(|o| o.value.parse().ok());
    Some(ProfileSettings {
        driver: c.driver,
        cpus: c.cpus,
        memory_mib: c.memory,
        disk_mib: c.disk_size,
        container_runtime: k
            .as_ref()
            .map(|k| k.container_runtime.clone())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| CONTAINER_RUNTIME.to_string()),
        kubernetes_version: k.map(|k| k.kubernetes_version).unwrap_or_default(),
        max_pods,
        node_ip,
    })
}

/// How a running profile differs from what `[vm]` asks for, one phrase per setting.
pub fn drift(actual: &ProfileSettings, driver: &dyn Driver, vm: &Vm) -> Vec<String> {
    let mut out = Vec::new();
    if actual.driver != driver.name() {
        out.push(format!("driver {} → {}", actual.driver, driver.name()));
    }
    if actual.cpus != vm.cpus {
        out.push(format!("cpus {} → {}", actual.cpus, vm.cpus));
    }
    if actual.memory_mib != vm.memory.mib() {
        out.push(format!("memory {}m → {}", actual.memory_mib, vm.memory));
    }
    if actual.disk_mib != vm.disk.mib() {
        out.push(format!("disk {}m → {}", actual.disk_mib, vm.disk));
    }
    // minikube stores "stable" and "latest" resolved to the version it chose (v1.35.1): any
    // stored version satisfies them, or every `up` would see drift and `--recreate` would loop.
    let floating = matches!(vm.kubernetes_version.as_str(), "stable" | "latest");
    if !floating && actual.kubernetes_version != vm.kubernetes_version {
        out.push(format!(
            "kubernetes_version {} → {}",
            actual.kubernetes_version, vm.kubernetes_version
        ));
    }
    if actual.max_pods != Some(vm.max_pods) {
        let was = actual
            .max_pods
            .map_or("default".to_string(), |n| n.to_string());
        out.push(format!("max_pods {was} → {}", vm.max_pods));
    }
    if actual.container_runtime != CONTAINER_RUNTIME {
        // minikube keeps a profile's runtime: only a new VM changes it.
        out.push(format!(
            "container runtime {} → {CONTAINER_RUNTIME} (images are built in the VM's Docker daemon)",
            actual.container_runtime
        ));
    }
    out
}

/// One line of `/proc/mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub point: String,
    pub fstype: String,
    pub options: Vec<String>,
}

/// Read `/proc/mounts` as the kernel writes it: fields separated by blanks, and in the device
/// and mount point a space, tab, newline and backslash written as `\040`, `\011`, `\012` and
/// `\134` (`mangle()` in fs/proc_namespace.c), decoded here; CRLF from minikube's pty tolerated.
/// The one reader of the VM's mounts, for `up`, `status` and `doctor` alike.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.trim_end_matches('\r').split_whitespace();
            let device = unescape(w.next()?);
            let point = unescape(w.next()?);
            let fstype = w.next()?.to_string();
            let options = w.next()?.split(',').map(str::to_string).collect();
            // dump and pass: what tells a mount line from other output read with it.
            let numeric =
                |f: Option<&str>| f.is_some_and(|f| f.bytes().all(|b| b.is_ascii_digit()));
            if !(numeric(w.next()) && numeric(w.next()) && w.next().is_none()) {
                return None;
            }
            Some(Mount {
                device,
                point,
                fstype,
                options,
            })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `/proc/mounts` of the VM (as `cat /proc/mounts` prints it through `minikube ssh`)
/// has `source` mounted over NFS at `target`.
pub fn has_nfs_mount(proc_mounts: &str, source: &str, target: &str) -> bool {
    let device = format!(":{source}");
    parse_mounts(proc_mounts)
        .iter()
        .any(|m| m.point == target && m.fstype.starts_with("nfs") && m.device.ends_with(&device))
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
    fn null_means_minikube_could_not_tell() {
        assert!(
            matches!(parse_status(&out(7, "null")), Ok(VmState::Unknown(why)) if why.contains("null"))
        );
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
    fn profile_settings_are_read_from_profile_list() {
        let json = r#"{"invalid":[],"valid":[{"Name":"devenv-shop","Status":"OK","Config":{"Name":"devenv-shop","Memory":6144,"CPUs":4,"DiskSize":40960,"Driver":"kvm2","KubernetesConfig":{"KubernetesVersion":"v1.31.0","ContainerRuntime":"docker","ExtraOptions":[{"Component":"kubelet","Key":"max-pods","Value":"60"}]},"Nodes":[]},"Active":false,"ActiveKubeContext":false}]}"#;
        let p = parse_profile(json, "devenv-shop").unwrap();
        assert_eq!(p.cpus, 4);
        assert_eq!(p.memory_mib, 6144);
        assert_eq!(p.max_pods, Some(60));
        assert!(parse_profile(json, "other").is_none());
        let vm = Vm::default();
        assert!(drift(&p, &devenv_drivers::kvm2::Kvm2, &vm).is_empty());
        let smaller = Vm {
            cpus: 2,
            ..Vm::default()
        };
        assert_eq!(
            drift(&p, &devenv_drivers::kvm2::Kvm2, &smaller),
            vec!["cpus 4 → 2"]
        );
    }

    #[test]
    fn the_light_list_gives_the_control_planes_address_and_tells_a_missing_profile_from_no_list() {
        let json = r#"{"invalid":[],"valid":[{"Name":"devenv-shop","Status":"Skipped","Config":{"Name":"devenv-shop","Memory":6144,"CPUs":4,"DiskSize":40960,"Driver":"kvm2","KubernetesConfig":{"KubernetesVersion":"v1.31.0","ContainerRuntime":"docker"},"Nodes":[{"Name":"m02","IP":"192.168.50.11","ControlPlane":false,"Worker":true},{"Name":"","IP":"192.168.50.10","Port":8443,"ControlPlane":true,"Worker":true}]},"Active":false,"ActiveKubeContext":false}]}"#;
        let p = find_profile(json, "devenv-shop").unwrap().unwrap();
        assert_eq!(p.node_ip, Some("192.168.50.10".parse().unwrap()));
        assert_eq!(find_profile(json, "devenv-other"), Ok(None));
        assert_eq!(
            find_profile(r#"{"invalid":[],"valid":[]}"#, "devenv-shop"),
            Ok(None)
        );
        assert!(find_profile("", "devenv-shop").is_err());
        assert!(find_profile(r#"{"error":{}}"#, "devenv-shop").is_err());
    }

    #[test]
    fn only_mount_lines_are_read_from_output_that_also_holds_other_files() {
        let out = "/dev/vda1 / ext4 rw,relatime 0 0\r\n\
                   192.168.39.1:/home/ann/shop /src nfs rw 0 0\r\n\
                   devenv probe 17\r\n\
                   cat: /src/.devenv-probe-1: No such file or directory\r\n\
                   a b c d e f g\r\n";
        let mounts = parse_mounts(out);
        assert_eq!(mounts.len(), 2, "{mounts:?}");
        assert_eq!(mounts[1].point, "/src");
    }

    #[test]
    fn nfs_mounts_are_found_in_proc_mounts() {
        let m = "/dev/vda1 / ext4 rw 0 0\r\n192.168.39.1:/home/ann/shop /src nfs rw,vers=3 0 0\r\n";
        assert!(has_nfs_mount(m, "/home/ann/shop", "/src"));
        assert!(!has_nfs_mount(m, "/home/ann/other", "/src"));
        assert!(!has_nfs_mount(m, "/home/ann/shop", "/app"));
    }

    #[test]
    fn paths_with_blanks_and_backslashes_are_read_as_the_kernel_escapes_them() {
        // The kernel's mangle(): space, tab, newline and backslash as octal escapes.
        let m = "192.168.39.1:/home/ann/My\\040Projects/a\\011b\\134c /src\\040dir nfs rw 0 0\r\n";
        assert!(has_nfs_mount(
            m,
            "/home/ann/My Projects/a\tb\\c",
            "/src dir"
        ));
        assert!(!has_nfs_mount(
            m,
            "/home/ann/My\\040Projects/a\\011b\\134c",
            "/src\\040dir"
        ));
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
