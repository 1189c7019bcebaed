//! devenv.toml: the team's shared description of the environment, written once by the platform
//! team and committed at the repository root. Per-developer choices (offload toggles, a driver
//! override) never go here; they live in [`crate::state`].
//!
//! Loading is strict: unknown keys are refused with a suggestion, and every error names the file,
//! line, column and dotted key, because a typo silently ignored here costs a developer an
//! afternoon. Every key is documented in `docs/config.md`; a test keeps the two in step.

mod load;
mod locate;
mod size;
mod suggest;
mod validate;
pub use validate::watch_glob;

pub use load::{ConfigError, Loaded, Problem, find, load, parse, parse_all};
pub use locate::line_col;
pub use size::Size;
pub use suggest::closest;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name devenv looks for, from the working directory upwards.
pub const FILE_NAME: &str = "devenv.toml";

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub project: Project,
    #[serde(default)]
    pub vm: Vm,
    #[serde(default)]
    pub mount: Mount,
    #[serde(default)]
    pub remote: Option<Remote>,
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    #[serde(default)]
    pub watch: Watch,
    #[serde(default, skip_serializing_if = "Requires::is_empty")]
    pub requires: Requires,
}

/// `[requires]`: the versions this project accepts, as version ranges in Cargo's syntax
/// (`">=1.33, <1.36"`, `"~3.17"`, `"1.31"` meaning `^1.31`). A platform team pins them so that
/// every laptop runs what was tested; `doctor` and `up`'s preflight check them and `onboard`
/// installs a matching version where the package manager can ([`crate::requires`]).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    pub devenv: Option<String>,
    pub minikube: Option<String>,
    pub helm: Option<String>,
    pub kubectl: Option<String>,
    /// The Kubernetes version of the shared cluster (`[remote] context`).
    pub kubernetes: Option<String>,
}

impl Requires {
    pub fn is_empty(&self) -> bool {
        self == &Requires::default()
    }
}

/// `[watch]`: how `devenv top` and `devenv watch` sample resources, and when they warn.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Watch {
    /// Time between two resource samples (`"2s"`).
    pub interval: String,
    pub alerts: Alerts,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            interval: "5s".to_string(),
            alerts: Alerts::default(),
        }
    }
}

impl Watch {
    /// `interval` as a duration (validated when the file is loaded).
    pub fn interval(&self) -> std::time::Duration {
        parse_duration(&self.interval).unwrap_or(std::time::Duration::from_secs(5))
    }
}

/// `[watch.alerts]`: the thresholds past which the VM is too busy. The defaults are where the
/// seed's laptops froze: the VM using more than three cores for half a minute, or more than
/// 80 % of its memory.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// VM CPU in percent of one core (300 = three cores busy).
    pub vm_cpu: u32,
    /// How long `vm_cpu` must be exceeded before the alert (`"30s"`).
    pub vm_cpu_for: String,
    /// VM memory in use, in percent of the VM's memory.
    pub vm_memory: u32,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            vm_cpu: 300,
            vm_cpu_for: "30s".to_string(),
            vm_memory: 80,
        }
    }
}

impl Alerts {
    /// `vm_cpu_for` as a duration (validated when the file is loaded).
    pub fn vm_cpu_for(&self) -> std::time::Duration {
        parse_duration(&self.vm_cpu_for).unwrap_or(std::time::Duration::from_secs(30))
    }
}

/// `[project]`: names and the chart.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Names the minikube profile (`devenv-<name>`), the Helm release and the namespaces.
    pub name: String,
    /// The umbrella Helm chart, relative to the project root.
    #[serde(default = "default_chart")]
    pub chart: PathBuf,
    /// Namespace of the local release; defaults to `name`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Values files passed to Helm in order, before devenv's generated overlay.
    #[serde(default)]
    pub values: Vec<PathBuf>,
    /// How long `up` waits for every Deployment and StatefulSet to be ready (`"10m"`, `"90s"`).
    #[serde(default = "default_rollout_timeout")]
    pub rollout_timeout: String,
}

fn default_rollout_timeout() -> String {
    "10m".to_string()
}

/// A duration written as a number and a unit: `"90s"`, `"10m"`, `"1h"`.
/// The longest duration devenv.toml may give: a week.
pub const MAX_DURATION_SECS: u64 = 7 * 24 * 3600;

pub fn parse_duration(text: &str) -> Result<std::time::Duration, crate::unreadable::Unreadable> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("\"{text}\" is not a duration"))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("\"{text}\" needs a unit: s, m or h").into()),
    };
    // Helm and kubectl read durations as Go's, which end near 292 years; devenv's waits are
    // minutes. Anything past a week is a typo, not a wait.
    n.checked_mul(factor)
        .filter(|secs| *secs <= MAX_DURATION_SECS)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| {
            format!("\"{text}\" is longer than a week (168h), the longest devenv waits").into()
        })
}

fn default_chart() -> PathBuf {
    PathBuf::from("deploy/chart")
}

impl Project {
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(&self.name)
    }

    /// The minikube profile: prefixed so devenv never touches a profile it did not create.
    pub fn profile(&self) -> String {
        format!("devenv-{}", self.name)
    }

    /// The Helm release name of the local environment.
    pub fn release(&self) -> &str {
        &self.name
    }

    /// `rollout_timeout` as a duration (validated when the file is loaded).
    pub fn rollout_timeout(&self) -> std::time::Duration {
        parse_duration(&self.rollout_timeout).unwrap_or(std::time::Duration::from_secs(600))
    }
}

/// `[vm]`: the minikube VM.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Vm {
    /// `auto`, or a driver name (`kvm2`, `vfkit`, `hyperkit`).
    pub driver: String,
    pub cpus: u32,
    pub memory: Size,
    pub disk: Size,
    pub kubernetes_version: String,
    /// kubelet's `max-pods`: the seed kept scheduling fast at about 60 pods per node.
    pub max_pods: u32,
}

impl Default for Vm {
    fn default() -> Self {
        Vm {
            driver: "auto".to_string(),
            cpus: 4,
            memory: Size::from_gib(6),
            disk: Size::from_gib(40),
            kubernetes_version: "v1.31.0".to_string(),
            max_pods: 60,
        }
    }
}

/// `[mount]`: the source tree, exported by the host over NFS and mounted inside the VM.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Mount {
    /// Directory exported from the host, relative to the project root.
    pub source: PathBuf,
    /// Mount point inside the VM; the chart mounts it into pods with hostPath.
    pub target: String,
    /// NFS mount options used inside the VM.
    pub options: String,
    /// Who the export is granted to instead of the driver's choice: one private IPv4 address
    /// or private subnet (`192.168.39.0/24`).
    pub export_client: Option<String>,
    /// `source` may be a directory that holds the project (a monorepo's root above it): set
    /// only when exporting that much is meant.
    pub allow_outside_project: bool,
}

/// NFSv3 over TCP without locking or ACL round trips, attributes cached for a minute (a repeated
/// walk costs no round trip per file; `forward`'s touch refreshes an edited path) and no cache
/// of names not found: chosen by `cargo bench --bench mount`, figures in docs/nfs.md.
pub const DEFAULT_MOUNT_OPTIONS: &str =
    "vers=3,tcp,nolock,noacl,async,actimeo=60,lookupcache=positive";

impl Default for Mount {
    fn default() -> Self {
        Mount {
            source: PathBuf::from("."),
            target: "/src".to_string(),
            options: DEFAULT_MOUNT_OPTIONS.to_string(),
            export_client: None,
            allow_outside_project: false,
        }
    }
}

/// `[remote]`: the shared dev cluster that takes offloaded services.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Remote {
    /// kubeconfig context of the shared dev cluster.
    pub context: String,
    #[serde(default)]
    pub connect: Connect,
    /// The API server URL(s) the context may point at (a string or a list); empty: any. A
    /// context that points elsewhere (a production cluster) never receives a release.
    #[serde(default, deserialize_with = "one_or_many")]
    pub server: Vec<String>,
    /// What each developer's namespace on the shared cluster may request in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

/// `[remote.quota]`: a ResourceQuota (and a LimitRange giving containers that request nothing
/// a default request, which a quota on requests needs) in each developer's namespace, so that
/// one laptop's offloaded services cannot take the shared cluster. Kubernetes quantities.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Total CPU requests (`"4"`, `"2500m"`).
    pub cpu: Option<String>,
    /// Total memory requests (`"8Gi"`).
    pub memory: Option<String>,
    /// Number of pods.
    pub pods: Option<u32>,
}

/// A string or a list of strings, as a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// How local pods reach an offloaded service.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Connect {
    /// A port-forward through the remote API server (works from any network).
    #[default]
    Tunnel,
    /// The remote Service's routable address (needs a route from the laptop).
    Direct,
}

/// `[services.<name>]`: one service of the chart that devenv knows about.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Top-level key of the chart's values that holds this service (`<key>.enabled`).
    #[serde(default)]
    pub values_key: Option<String>,
    /// DNS name the other services use to reach it.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub ports: Vec<u16>,
    /// The team's default placement; `devenv offload` overrides it per developer.
    #[serde(default)]
    pub offload: Placement,
    /// Globs (relative to the project root) whose changes trigger `on_change`.
    #[serde(default)]
    pub watch: Vec<String>,
    #[serde(default)]
    pub on_change: OnChange,
    /// An image devenv builds for this service inside the VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    /// Offloaded services this one needs before it can start: the local release waits until
    /// they are ready on the shared cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
}

/// `[services.<name>.image]`: an image built in the VM's Docker daemon from a directory of the
/// project, never pushed: the release runs it with `imagePullPolicy: Never`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// The build context, relative to the project root.
    pub context: PathBuf,
    /// The Dockerfile, relative to the context.
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
    /// The image reference people see (`shop-api:dev`).
    pub tag: String,
}

/// A reference split into repository and tag (`registry:5000/team/api:dev` →
/// `registry:5000/team/api`, `dev`); no tag means `latest`, as in Docker.
pub fn split_reference(reference: &str) -> (&str, &str) {
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[slash..].rfind(':') {
        Some(i) => (&reference[..slash + i], &reference[slash + i + 1..]),
        None => (reference, "latest"),
    }
}

fn default_dockerfile() -> String {
    "Dockerfile".to_string()
}

impl Service {
    /// `port` and `ports` together, in order.
    pub fn all_ports(&self) -> Vec<u16> {
        self.port
            .iter()
            .copied()
            .chain(self.ports.iter().copied())
            .collect()
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    #[default]
    Local,
    Remote,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnChange {
    Restart,
    Helm,
    Forward,
    #[default]
    None,
}

#[cfg(test)]
mod tests;
