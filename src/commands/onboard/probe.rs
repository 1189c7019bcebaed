//! What `devenv onboard` asks the machine before it plans: every command here is read-only.

use super::*;

/// `v1.31.0` → `v1.31`; `None` for `stable`, `latest` and anything unreadable.
pub fn kube_minor(version: &str) -> Option<String> {
    let rest = version.trim().strip_prefix('v')?;
    let mut parts = rest.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    Some(format!("v{major}.{minor}"))
}

/// Ask the machine what the plan depends on. Every command here is read-only.
pub(super) async fn probe(
    runner: Arc<dyn Runner>,
    platform: Platform,
    work: PathBuf,
    kube_minor: String,
) -> Result<Facts, Error> {
    let r = runner.as_ref();
    let cpu = match answer(r, "uname", &["-m"]).await {
        Some(cpu) => cpu,
        None => match machine::current_arch() {
            Arch::Aarch64 if platform == Platform::MacOs => "arm64".to_string(),
            Arch::Aarch64 => "aarch64".to_string(),
            Arch::X86_64 => "x86_64".to_string(),
            Arch::Other => "unknown".to_string(),
        },
    };
    let macos_version = if platform == Platform::MacOs {
        answer(r, "sw_vers", &["-productVersion"]).await
    } else {
        None
    };
    let uid = answer(r, "id", &["-u"]).await.and_then(|u| u.parse().ok());
    let user = answer(r, "id", &["-un"])
        .await
        .ok_or_else(|| Error::Usage {
            message: "cannot tell who you are: `id -un` did not answer".into(),
            help: "check that `id -un` prints your login name".into(),
        })?;
    let host = Machine::probe(runner.clone()).await;
    let groups = host.groups();

    let mut candidates = vec!["minikube", "helm", "kubectl"];
    match platform {
        Platform::MacOs => candidates.extend([
            "brew",
            "vfkit",
            "hyperkit",
            "docker-machine-driver-hyperkit",
        ]),
        _ => candidates.extend(["curl", "qemu-system-x86_64", "qemu-system-aarch64"]),
    }
    let programs: BTreeSet<String> = candidates
        .into_iter()
        .filter(|p| host.which(p).is_some())
        .map(str::to_string)
        .collect();

    let mut packages = BTreeSet::new();
    match platform {
        Platform::Debian => {
            let out = answer_any(
                r,
                "dpkg-query",
                &[
                    "-W",
                    "-f",
                    "${Package} ${db:Status-Abbrev}\\n",
                    "qemu-kvm",
                    "libvirt-daemon-system",
                    "libvirt-clients",
                    "nfs-kernel-server",
                ],
            )
            .await;
            packages.extend(parse_dpkg_query(&out));
        }
        Platform::Fedora => {
            let out = answer_any(
                r,
                "rpm",
                &[
                    "-q",
                    "--qf",
                    "%{NAME}\\n",
                    "libvirt-daemon",
                    "qemu-kvm",
                    "nfs-utils",
                ],
            )
            .await;
            packages.extend(parse_rpm_query(
                &out,
                &["libvirt-daemon", "qemu-kvm", "nfs-utils"],
            ));
        }
        _ => {}
    }
    // Debian's qemu-kvm is a virtual package (qemu-system-x86 provides it), which dpkg-query
    // does not know: the emulator on PATH is the proof.
    let qemu = match cpu.as_str() {
        "aarch64" | "arm64" => "qemu-system-aarch64",
        _ => "qemu-system-x86_64",
    };
    if programs.contains(qemu) {
        packages.insert("qemu-kvm".to_string());
    }

    let mut enabled_units = BTreeSet::new();
    if platform != Platform::MacOs {
        for unit in ["libvirtd", "nfs-server"] {
            let state = answer_any(r, "systemctl", &["is-enabled", unit]).await;
            if unit_enabled(&state) {
                enabled_units.insert(unit.to_string());
            }
        }
    }

    let brew_off_path = if platform == Platform::MacOs && !programs.contains("brew") {
        HOMEBREW_PREFIXES
            .iter()
            .map(PathBuf::from)
            .find(|p| host.file_info(p).is_some())
    } else {
        None
    };

    Ok(Facts {
        platform,
        cpu,
        macos_version,
        uid,
        user,
        groups,
        programs,
        packages,
        enabled_units,
        brew_off_path,
        work,
        kube_minor,
        exports_helper: built_exports_helper(),
        requires: Requires::default(),
        versions: BTreeMap::new(),
    })
}

/// `devenv-exports-helper` beside the running `devenv`, where `cargo install` and Homebrew put it.
pub(super) fn built_exports_helper() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("devenv-exports-helper")))
        .unwrap_or_else(|| PathBuf::from("devenv-exports-helper"))
}

pub(super) fn probe_cmd(program: &str, args: &[&str]) -> Cmd {
    Cmd::new(program)
        .args(args)
        .read_only()
        .timeout(PROBE_TIMEOUT)
}

/// The trimmed stdout of a probe that succeeded.
pub(super) async fn answer(runner: &dyn Runner, program: &str, args: &[&str]) -> Option<String> {
    match runner.output(&probe_cmd(program, args)).await {
        Ok(out) if out.success() => Some(out.stdout.trim().to_string()),
        _ => None,
    }
}

/// The stdout of a probe whatever its exit code (dpkg-query and rpm report missing packages
/// through it); empty when it could not run.
pub(super) async fn answer_any(runner: &dyn Runner, program: &str, args: &[&str]) -> String {
    match runner.output(&probe_cmd(program, args)).await {
        Ok(out) => out.stdout,
        Err(_) => String::new(),
    }
}

/// Installed packages in `dpkg-query -W -f '${Package} ${db:Status-Abbrev}\n'` output: state
/// `ii` (wanted install, installed). `rc` (removed, config files left) is not installed.
pub fn parse_dpkg_query(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let status = words.next()?;
            status.starts_with("ii").then(|| name.to_string())
        })
        .collect()
}

/// Installed packages in `rpm -q --qf '%{NAME}\n' …` output, which prints the name of each
/// installed package and `package X is not installed` for the others.
pub fn parse_rpm_query(stdout: &str, asked: &[&str]) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|line| asked.contains(line))
        .map(str::to_string)
        .collect()
}

/// `systemctl is-enabled` states that start the unit at boot or on demand.
pub fn unit_enabled(stdout: &str) -> bool {
    matches!(
        stdout.trim(),
        "enabled" | "enabled-runtime" | "static" | "indirect" | "alias"
    )
}
