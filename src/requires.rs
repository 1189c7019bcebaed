//! `[requires]`: the versions of devenv, minikube, helm, kubectl and the shared cluster's
//! Kubernetes that a project accepts. A platform team pins them so that hundreds of laptops run
//! what was tested (a minikube that changed its default runtime, a Helm 4 that renders ports
//! differently); `doctor` and `up`'s preflight check them, and `onboard` installs a matching
//! version where the package manager can pin one.
//!
//! Ranges use Cargo's syntax (the `semver` crate). Tools print more than a version
//! (`v3.17.2+gcc0bbbd`, `v1.28.3-eks-4f4795d`), so only the numbers are compared: a
//! distribution's build suffix is not a pre-release.

use std::fmt;

use semver::{Op, Version, VersionReq};

use devenv_drivers::Arch;

use crate::config::Requires;
use crate::process::Platform;

/// What `[requires]` can pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tool {
    Devenv,
    Minikube,
    Helm,
    Kubectl,
    /// The shared cluster's API server.
    Kubernetes,
}

impl Tool {
    pub const ALL: [Tool; 5] = [
        Tool::Devenv,
        Tool::Minikube,
        Tool::Helm,
        Tool::Kubectl,
        Tool::Kubernetes,
    ];
    /// The programs on the laptop, in the order doctor lists them.
    pub const PROGRAMS: [Tool; 3] = [Tool::Minikube, Tool::Helm, Tool::Kubectl];

    /// Its key in `[requires]`, and the program's name.
    pub fn key(self) -> &'static str {
        match self {
            Tool::Devenv => "devenv",
            Tool::Minikube => "minikube",
            Tool::Helm => "helm",
            Tool::Kubectl => "kubectl",
            Tool::Kubernetes => "kubernetes",
        }
    }

    /// The arguments that make the program print its version (read-only, fast).
    pub fn version_args(self) -> &'static [&'static str] {
        match self {
            Tool::Minikube | Tool::Helm => &["version", "--short"],
            Tool::Kubectl => &["version", "--client", "-o", "json"],
            Tool::Devenv | Tool::Kubernetes => &[],
        }
    }

    /// The version in the program's answer to [`Tool::version_args`]: `v1.35.0` (minikube),
    /// `v3.17.2+gcc0bbbd` (helm), `{"clientVersion": {"gitVersion": "v1.33.1", …}}` (kubectl).
    pub fn read_version(self, stdout: &str) -> Option<Version> {
        match self {
            Tool::Kubectl => {
                let json: serde_json::Value = serde_json::from_str(stdout).ok()?;
                loose(json["clientVersion"]["gitVersion"].as_str()?)
            }
            _ => loose(stdout.lines().find(|l| !l.trim().is_empty())?),
        }
    }

    /// The range `[requires]` gives this tool, if any.
    pub fn required(self, r: &Requires) -> Option<&str> {
        match self {
            Tool::Devenv => r.devenv.as_deref(),
            Tool::Minikube => r.minikube.as_deref(),
            Tool::Helm => r.helm.as_deref(),
            Tool::Kubectl => r.kubectl.as_deref(),
            Tool::Kubernetes => r.kubernetes.as_deref(),
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// This devenv's own version.
pub fn devenv_version() -> Version {
    Version::parse(env!("CARGO_PKG_VERSION")).expect("Cargo.toml's version is semver")
}

/// A range as `[requires]` writes it (the file's check refused any other when it was loaded).
pub fn parse_range(text: &str) -> Result<VersionReq, RangeError> {
    VersionReq::parse(text.trim()).map_err(|source| RangeError {
        text: text.to_string(),
        source,
    })
}

/// A `[requires]` value that is not a version range.
#[derive(Debug, thiserror::Error)]
#[error("\"{text}\" is not a version range: {source}")]
pub struct RangeError {
    pub text: String,
    pub source: semver::Error,
}

/// The numbers of a version as tools print them: an optional `v`, one to three numbers, and
/// whatever suffix (`+gcc0bbbd`, `-eks-4f4795d`, `-0`) dropped.
pub fn loose(text: &str) -> Option<Version> {
    let text = text.trim();
    let text = text.strip_prefix('v').unwrap_or(text);
    let end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let mut numbers = text[..end].split('.').filter(|p| !p.is_empty());
    let major = numbers.next()?.parse().ok()?;
    let minor = numbers.next().map_or(Some(0), |n| n.parse().ok())?;
    let patch = numbers.next().map_or(Some(0), |n| n.parse().ok())?;
    Some(Version::new(major, minor, patch))
}

/// An installed version outside its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub tool: Tool,
    pub installed: Version,
    pub required: String,
    /// The command (or the person) that brings a matching version.
    pub fix: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tool {
            Tool::Kubernetes => write!(
                f,
                "the shared cluster runs Kubernetes {}, and devenv.toml's [requires] kubernetes is \"{}\"",
                self.installed, self.required
            ),
            tool => write!(
                f,
                "{tool} {} is installed, and devenv.toml's [requires] {tool} is \"{}\"",
                self.installed, self.required
            ),
        }
    }
}

/// `installed` against the range `[requires]` gives `tool`: `None` when it fits or nothing
/// is required (a range that does not parse was refused when the file was loaded).
pub fn check(
    requires: &Requires,
    tool: Tool,
    installed: &Version,
    platform: Platform,
    arch: Arch,
) -> Option<Mismatch> {
    let required = tool.required(requires)?;
    let range = parse_range(required).ok()?;
    (!range.matches(installed)).then(|| Mismatch {
        tool,
        installed: installed.clone(),
        required: required.to_string(),
        fix: fix(tool, &range, platform, arch),
    })
}

/// The version to install for a range: `None` when the newest release fits (the range has
/// no upper bound) or nothing names one (only an upper bound), else the lowest version the range accepts, because package managers and
/// release pages can be asked for an exact version but not for "the newest below 1.36".
pub fn pinned(range: &VersionReq) -> Option<Version> {
    let bounded = range
        .comparators
        .iter()
        .any(|c| !matches!(c.op, Op::Greater | Op::GreaterEq));
    if !bounded {
        return None;
    }
    let lowest = range
        .comparators
        .iter()
        .filter(|c| !matches!(c.op, Op::Less | Op::LessEq))
        .map(|c| {
            let v = Version::new(c.major, c.minor.unwrap_or(0), c.patch.unwrap_or(0));
            match c.op {
                Op::Greater if c.patch.is_some() => Version::new(v.major, v.minor, v.patch + 1),
                Op::Greater if c.minor.is_some() => Version::new(v.major, v.minor + 1, 0),
                Op::Greater => Version::new(v.major + 1, 0, 0),
                _ => v,
            }
        })
        .max()?;
    range.matches(&lowest).then_some(lowest)
}

/// The Kubernetes minor version (`v1.31`) whose kubectl the range accepts, when `preferred`
/// (the VM's) is not one of them: kubectl's package repositories are one per minor version.
pub fn kubectl_minor(range: &VersionReq, preferred: &str) -> Option<String> {
    let fits =
        |major: u64, minor: u64| (0..100).any(|p| range.matches(&Version::new(major, minor, p)));
    if let Some(v) = loose(preferred)
        && fits(v.major, v.minor)
    {
        return None;
    }
    let v = pinned(range).or_else(|| {
        range
            .comparators
            .iter()
            .map(|c| Version::new(c.major, c.minor.unwrap_or(0), 0))
            .max()
    })?;
    Some(format!("v{}.{}", v.major, v.minor))
}

/// One release of a tool as its project publishes it: where to download it, and the program
/// inside it when it is an archive (helm's tarball).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub url: String,
    /// The downloaded file's name.
    pub file: String,
    pub inside: Option<String>,
}

/// The release of minikube, kubectl or helm at `version` for this OS and CPU (`None` for
/// devenv and the cluster, which are not downloaded).
pub fn release(tool: Tool, version: &Version, platform: Platform, arch: Arch) -> Option<Release> {
    let os = if platform == Platform::MacOs {
        "darwin"
    } else {
        "linux"
    };
    let cpu = if arch == Arch::Aarch64 {
        "arm64"
    } else {
        "amd64"
    };
    Some(match tool {
        Tool::Minikube => Release {
            url: format!(
                "https://github.com/kubernetes/minikube/releases/download/v{version}/minikube-{os}-{cpu}"
            ),
            file: format!("minikube-{os}-{cpu}"),
            inside: None,
        },
        Tool::Kubectl => Release {
            url: format!("https://dl.k8s.io/release/v{version}/bin/{os}/{cpu}/kubectl"),
            file: "kubectl".into(),
            inside: None,
        },
        Tool::Helm => Release {
            url: format!("https://get.helm.sh/helm-v{version}-{os}-{cpu}.tar.gz"),
            file: format!("helm-v{version}-{os}-{cpu}.tar.gz"),
            inside: Some(format!("{os}-{cpu}/helm")),
        },
        Tool::Devenv | Tool::Kubernetes => return None,
    })
}

/// How to get a version of `tool` inside `range` on this machine.
pub fn fix(tool: Tool, range: &VersionReq, platform: Platform, arch: Arch) -> String {
    let pin = pinned(range);
    let cpu = if arch == Arch::Aarch64 {
        "arm64"
    } else {
        "amd64"
    };
    // A single binary, downloaded and installed as the command line says.
    let binary = |v: &Version| {
        let r = release(tool, v, platform, arch).expect("minikube and kubectl have releases");
        format!(
            "curl -fLO {} && sudo install {} /usr/local/bin/{tool}",
            r.url, r.file
        )
    };
    match (tool, &pin, platform) {
        (Tool::Devenv, _, Platform::MacOs) if pin.is_none() => "brew upgrade devenv".into(),
        (Tool::Devenv, _, _) => format!(
            "install devenv {}: from a checkout of that version, `cargo install --locked --path .`",
            pin.as_ref()
                .map_or_else(|| format!("\"{range}\""), ToString::to_string)
        ),
        (Tool::Kubernetes, ..) => {
            "the shared cluster is the platform team's: ask them which version devenv.toml should require".into()
        }
        (Tool::Minikube, None, Platform::MacOs) => "brew upgrade minikube".into(),
        (Tool::Helm, None, Platform::MacOs) => "brew upgrade helm".into(),
        (Tool::Kubectl, None, Platform::MacOs) => "brew upgrade kubernetes-cli".into(),
        (Tool::Minikube, None, _) => format!(
            "curl -fLO https://storage.googleapis.com/minikube/releases/latest/minikube-linux-{cpu} && sudo install minikube-linux-{cpu} /usr/local/bin/minikube"
        ),
        (Tool::Minikube, Some(v), _) => binary(v),
        (Tool::Helm, None, Platform::Debian) => {
            "sudo apt-get update && sudo apt-get install -y --only-upgrade helm".into()
        }
        (Tool::Helm, Some(v), Platform::Debian) => format!(
            "sudo apt-get update && sudo apt-get install -y --allow-downgrades 'helm={}.{}.*'",
            v.major, v.minor
        ),
        (Tool::Helm, None, Platform::Fedora) => "sudo dnf upgrade -y helm".into(),
        (Tool::Helm, pin, _) => format!(
            "download helm {} from https://github.com/helm/helm/releases and put its `helm` on PATH",
            pin.as_ref()
                .map_or_else(|| format!("\"{range}\""), |v| format!("v{v}"))
        ),
        (Tool::Kubectl, None, Platform::Debian) => {
            "sudo apt-get update && sudo apt-get install -y --only-upgrade kubectl".into()
        }
        (Tool::Kubectl, None, Platform::Fedora) => "sudo dnf upgrade -y kubectl".into(),
        (Tool::Kubectl, None, _) => format!(
            "download kubectl from https://kubernetes.io/releases/download/ into a directory on PATH (\"{range}\")"
        ),
        (Tool::Kubectl, Some(v), _) => binary(v),
    }
}

/// Every pinned version that does not hold on this machine, for `up`'s preflight: the tools
/// `[requires]` names are asked concurrently (only those), and the shared cluster only when
/// `remote_context` is given, because something is to be sent there. What cannot be read is
/// left to the stages that use it: a missing tool fails preflight's own check, an unreachable
/// cluster its stage.
pub async fn mismatches(
    runner: &dyn crate::process::Runner,
    required: &Requires,
    platform: Platform,
    remote_context: Option<&str>,
) -> Vec<Mismatch> {
    if required.is_empty() {
        return Vec::new();
    }
    let arch = crate::machine::current_arch();
    let program = |tool: Tool| async move {
        tool.required(required)?;
        let cmd = crate::process::Cmd::new(tool.key())
            .args(tool.version_args())
            .read_only()
            .timeout(crate::machine::PROBE_TIMEOUT);
        let out = runner.output(&cmd).await.ok()?;
        out.success()
            .then(|| tool.read_version(&out.stdout))
            .flatten()
    };
    let cluster = async {
        required.kubernetes.as_ref()?;
        let client = crate::cluster::client(remote_context?).await.ok()?;
        let info = crate::cluster::answered(
            "the shared cluster's version",
            std::time::Duration::from_secs(10),
            client.apiserver_version(),
        )
        .await
        .ok()?;
        loose(&info.git_version)
    };
    let (minikube, helm, kubectl, kubernetes) = tokio::join!(
        program(Tool::Minikube),
        program(Tool::Helm),
        program(Tool::Kubectl),
        cluster
    );
    [
        (Tool::Devenv, Some(devenv_version())),
        (Tool::Minikube, minikube),
        (Tool::Helm, helm),
        (Tool::Kubectl, kubectl),
        (Tool::Kubernetes, kubernetes),
    ]
    .into_iter()
    .filter_map(|(tool, v)| check(required, tool, &v?, platform, arch))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(devenv: &str) -> VersionReq {
        parse_range(devenv).unwrap()
    }

    #[test]
    fn tool_versions_are_read_without_their_suffixes() {
        let v = |tool: Tool, out: &str| tool.read_version(out).map(|v| v.to_string());
        assert_eq!(v(Tool::Minikube, "v1.35.0\n").as_deref(), Some("1.35.0"));
        assert_eq!(
            v(Tool::Helm, "v3.17.2+gcc0bbbd\n").as_deref(),
            Some("3.17.2")
        );
        assert_eq!(
            v(
                Tool::Kubectl,
                r#"{"clientVersion":{"gitVersion":"v1.33.1"},"kustomizeVersion":"v5"}"#
            )
            .as_deref(),
            Some("1.33.1")
        );
        assert_eq!(loose("v1.28.3-eks-4f4795d"), Some(Version::new(1, 28, 3)));
        assert_eq!(loose("v1.20"), Some(Version::new(1, 20, 0)));
        assert_eq!(v(Tool::Helm, "garbage"), None);
        assert_eq!(v(Tool::Kubectl, "v1.33.1"), None);
    }

    #[test]
    fn a_build_suffix_does_not_make_a_version_a_prerelease() {
        // semver would read 1.28.3-eks as a pre-release, which ">=1.27" does not accept.
        let requires = Requires {
            kubernetes: Some(">=1.27".into()),
            ..Requires::default()
        };
        let v = loose("v1.28.3-eks-4f4795d").unwrap();
        assert_eq!(
            check(
                &requires,
                Tool::Kubernetes,
                &v,
                Platform::Debian,
                Arch::X86_64
            ),
            None
        );
    }

    #[test]
    fn a_version_outside_the_range_is_a_mismatch_with_its_fix() {
        let requires = Requires {
            helm: Some(">=3.14, <4".into()),
            ..Requires::default()
        };
        let m = check(
            &requires,
            Tool::Helm,
            &Version::new(4, 1, 4),
            Platform::Debian,
            Arch::X86_64,
        )
        .unwrap();
        assert_eq!(
            m.to_string(),
            "helm 4.1.4 is installed, and devenv.toml's [requires] helm is \">=3.14, <4\""
        );
        assert!(m.fix.contains("'helm=3.14.*'"), "{}", m.fix);
        assert_eq!(
            check(
                &requires,
                Tool::Helm,
                &Version::new(3, 17, 2),
                Platform::Debian,
                Arch::X86_64
            ),
            None
        );
        assert_eq!(
            check(
                &requires,
                Tool::Minikube,
                &Version::new(0, 1, 0),
                Platform::Debian,
                Arch::X86_64
            ),
            None,
            "nothing required of minikube"
        );
    }

    #[test]
    fn an_open_range_installs_the_newest_and_a_bounded_one_its_lowest() {
        assert_eq!(pinned(&req(">=1.33")), None);
        assert_eq!(pinned(&req(">1.33")), None);
        assert_eq!(pinned(&req(">=1.33, <1.36")), Some(Version::new(1, 33, 0)));
        assert_eq!(pinned(&req(">1.33.1, <2")), Some(Version::new(1, 33, 2)));
        assert_eq!(pinned(&req(">1.33, <2")), Some(Version::new(1, 34, 0)));
        assert_eq!(pinned(&req("~3.17.2")), Some(Version::new(3, 17, 2)));
        assert_eq!(pinned(&req("=1.35.0")), Some(Version::new(1, 35, 0)));
        assert_eq!(pinned(&req("1.31")), Some(Version::new(1, 31, 0)));
        assert_eq!(pinned(&req("<1.36")), None, "no lower bound to install");
        assert_eq!(
            pinned(&req(">=2, <1")),
            None,
            "an empty range has no version"
        );
    }

    #[test]
    fn kubectl_takes_the_vms_minor_when_the_range_accepts_it() {
        assert_eq!(kubectl_minor(&req(">=1.29"), "v1.31.0"), None);
        assert_eq!(
            kubectl_minor(&req(">=1.32, <1.34"), "v1.31.0").as_deref(),
            Some("v1.32")
        );
        assert_eq!(
            kubectl_minor(&req(">=1.33"), "v1.31.0").as_deref(),
            Some("v1.33")
        );
        assert_eq!(
            kubectl_minor(&req("~1.30.4"), "stable").as_deref(),
            Some("v1.30")
        );
    }

    #[test]
    fn fixes_name_this_machines_package_manager_and_the_pinned_version() {
        let f = |tool, range: &str, platform| fix(tool, &req(range), platform, Arch::Aarch64);
        assert_eq!(
            f(Tool::Minikube, ">=1.33", Platform::MacOs),
            "brew upgrade minikube"
        );
        assert_eq!(
            f(Tool::Minikube, "~1.34.0", Platform::MacOs),
            "curl -fLO https://github.com/kubernetes/minikube/releases/download/v1.34.0/minikube-darwin-arm64 && sudo install minikube-darwin-arm64 /usr/local/bin/minikube"
        );
        assert_eq!(
            f(Tool::Kubectl, "=1.30.2", Platform::Debian),
            "curl -fLO https://dl.k8s.io/release/v1.30.2/bin/linux/arm64/kubectl && sudo install kubectl /usr/local/bin/kubectl"
        );
        assert_eq!(
            f(Tool::Helm, ">=3.14", Platform::Fedora),
            "sudo dnf upgrade -y helm"
        );
        assert!(f(Tool::Devenv, "~0.3", Platform::Debian).starts_with("install devenv 0.3.0:"));
        assert!(f(Tool::Kubernetes, ">=1.30", Platform::MacOs).contains("platform team"));
    }

    #[test]
    fn ranges_that_are_not_ranges_are_refused_with_the_text() {
        let e = parse_range(">= one").unwrap_err().to_string();
        assert!(e.starts_with("\">= one\" is not a version range"), "{e}");
    }
}
