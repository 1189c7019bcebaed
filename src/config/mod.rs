//! devenv.toml: the team's shared description of the environment, written once by the platform
//! team and committed at the repository root. Per-developer choices (offload toggles, a driver
//! override) never go here; they live in [`crate::state`].
//!
//! Loading is strict: unknown keys are refused with a suggestion, and every error names the file,
//! line, column and dotted key, because a typo silently ignored here costs a developer an
//! afternoon. Every key is documented in `docs/config.md`; a test keeps the two in step.

mod locate;
mod size;
mod suggest;
mod validate;
pub use validate::watch_glob;

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

pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
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
        _ => return Err(format!("\"{text}\" needs a unit: s, m or h")),
    };
    // Helm and kubectl read durations as Go's, which end near 292 years; devenv's waits are
    // minutes. Anything past a week is a typo, not a wait.
    n.checked_mul(factor)
        .filter(|secs| *secs <= MAX_DURATION_SECS)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("\"{text}\" is longer than a week (168h), the longest devenv waits"))
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

/// A devenv.toml that parsed and passed validation, with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The file, as found or given.
    pub file: PathBuf,
    /// The project root: the directory holding the file. Relative paths start here.
    pub root: PathBuf,
    pub config: Config,
}

impl Loaded {
    pub fn chart_dir(&self) -> PathBuf {
        self.root.join(&self.config.project.chart)
    }

    pub fn source_dir(&self) -> PathBuf {
        self.root.join(&self.config.mount.source)
    }
}

/// One thing wrong with the file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// Dotted key path, empty when the problem is not about one key (a syntax error).
    pub key: String,
    pub message: String,
    pub help: Option<String>,
    /// The offending source line, for display.
    pub snippet: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no {FILE_NAME} in {} or any parent directory", .start.display())]
    NotFound { start: PathBuf },
    #[error("cannot read {}", .file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_problems(.file, .problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    pub fn help(&self) -> Option<String> {
        match self {
            ConfigError::NotFound { .. } => Some(
                "run `devenv init` to write a starter devenv.toml (or `devenv init --example` for a complete example project), or point at one with --config".to_string(),
            ),
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { .. } => {
                Some(format!(
                    "every key is described in {}",
                    crate::docs::url("config.md")
                ))
            }
        }
    }

    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

fn render_problems(file: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let key = if p.key.is_empty() {
            String::new()
        } else {
            format!("{}: ", p.key)
        };
        out.push_str(&format!(
            "{}:{}:{}: {key}{}",
            file.display(),
            p.line,
            p.column,
            p.message
        ));
        if !p.snippet.is_empty() {
            out.push_str(&format!(
                "\n  {:>4} | {}\n       | {}^",
                p.line,
                p.snippet,
                " ".repeat(p.column.saturating_sub(1))
            ));
        }
        if let Some(h) = &p.help {
            out.push_str(&format!("\n       = help: {h}"));
        }
    }
    out
}

/// Find devenv.toml in `start` or the nearest parent directory.
pub fn find(start: &Path) -> Result<PathBuf, ConfigError> {
    for dir in start.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(ConfigError::NotFound {
        start: start.to_path_buf(),
    })
}

/// Read, parse and validate a devenv.toml.
pub fn load(file: &Path) -> Result<Loaded, ConfigError> {
    let bytes = std::fs::read(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let source = String::from_utf8(bytes).map_err(|e| ConfigError::Invalid {
        file: file.to_path_buf(),
        problems: vec![not_utf8(e.as_bytes(), e.utf8_error())],
    })?;
    let root = file
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .unwrap_or_else(|| PathBuf::from("."));
    let invalid = |problems| ConfigError::Invalid {
        file: file.to_path_buf(),
        problems,
    };
    let (config, mut problems) = parse_all(&source);
    let Some(config) = config else {
        return Err(invalid(problems));
    };
    let loaded = Loaded {
        file: file.to_path_buf(),
        root,
        config,
    };
    // What the checks find in the rest of the file is reported with the type errors: one run
    // shows every problem. A key set aside for its type error is at its default here, and
    // its line already has a problem.
    let reported: Vec<usize> = problems.iter().map(|p| p.line).collect();
    problems.extend(
        validate::validate(&loaded, &source)
            .into_iter()
            .filter(|p| !reported.contains(&p.line)),
    );
    problems.sort_by_key(|p| (p.line, p.column));
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(invalid(problems))
    }
}

/// TOML is UTF-8: the first byte that is not, with its line and column (the text before it on
/// that line shown as the snippet).
fn not_utf8(bytes: &[u8], err: std::str::Utf8Error) -> Problem {
    let valid = &bytes[..err.valid_up_to()];
    let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let before = String::from_utf8_lossy(&valid[line_start..]).into_owned();
    Problem {
        line,
        column: before.chars().count() + 1,
        key: String::new(),
        message: format!(
            "byte 0x{:02X} is not UTF-8 text (TOML files are UTF-8)",
            bytes[err.valid_up_to()]
        ),
        help: Some("save devenv.toml as UTF-8 (an editor's \"encoding\" setting, or `iconv -f latin1 -t utf-8`)".into()),
        snippet: before,
    }
}

/// The most problems one read reports; a file with more is mostly something else.
const MAX_PROBLEMS: usize = 20;

/// Parse the text, reporting every key whose value cannot be read rather than the first: the
/// line of each problem is set aside (blanked, so offsets and line numbers stay) and the text
/// parsed again, a table header with its whole table. Returns the [`Config`] of what is left,
/// when that parses, and the problems. Recovery stops at a problem that cannot be set aside (a
/// syntax error, a required key missing, one set aside) so no problem is an echo of another.
pub fn parse_all(source: &str) -> (Option<Config>, Vec<Problem>) {
    let mut text = source.to_string();
    let mut problems: Vec<Problem> = Vec::new();
    let mut set_aside: Vec<usize> = Vec::new();
    while problems.len() < MAX_PROBLEMS {
        let err = match toml::from_str::<Config>(&text) {
            Ok(config) => return (Some(config), problems),
            Err(err) => err,
        };
        let syntax = toml::from_str::<toml::Table>(&text).is_err();
        let problem = problem_from_toml(source, &err);
        if !problems.is_empty() && (syntax || set_aside.contains(&problem.line)) {
            break;
        }
        let missing = err.message().starts_with("missing field");
        if missing && !problems.is_empty() {
            // Perhaps the key set aside for its type: an echo, not a problem of its own.
            break;
        }
        let line = problem.line;
        problems.push(problem);
        if syntax || missing || !blank_out(&mut text, line) {
            break;
        }
        set_aside.push(line);
    }
    (None, problems)
}

/// Replace line `line` (1-based) with spaces, and when it is a table header the lines of its
/// table too; false when there is nothing to blank.
fn blank_out(text: &mut String, line: usize) -> bool {
    let mut out = String::with_capacity(text.len());
    let mut in_table = false;
    let mut blanked = false;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        let header = l.trim_start().starts_with('[');
        if i + 1 == line {
            in_table = header;
        } else if header {
            in_table = false;
        }
        if i + 1 == line || (in_table && i + 1 > line) {
            let body = l.trim_end_matches(['\n', '\r']);
            out.push_str(&" ".repeat(body.len()));
            out.push_str(&l[body.len()..]);
            blanked = true;
        } else {
            out.push_str(l);
        }
    }
    *text = out;
    blanked
}

/// Parse the text into a [`Config`], locating any error.
pub fn parse(source: &str) -> Result<Config, Problem> {
    toml::from_str::<Config>(source).map_err(|e| problem_from_toml(source, &e))
}

fn problem_from_toml(source: &str, err: &toml::de::Error) -> Problem {
    let offset = err.span().map(|s| s.start).unwrap_or(0);
    let doc = locate::Doc::parse(source);
    let mut key = doc
        .as_ref()
        .and_then(|d| d.path_at(offset))
        .unwrap_or_default();
    let message = err.message().trim().to_string();
    let mut help = None;
    if let Some(rest) = message.strip_prefix("missing field ") {
        let field = rest.trim_matches('`');
        key = if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        };
        help = Some(format!(
            "add `{field} = …` here; see {}",
            crate::docs::url("config.md")
        ));
    } else if let Some((word, expected)) = unknown_and_expected(&message) {
        if let Some(best) = closest(&word, expected.iter().map(String::as_str)) {
            help = Some(format!("did you mean `{best}`?"));
        } else {
            help = Some(format!("expected one of: {}", expected.join(", ")));
        }
    }
    let (line, column) = line_col(source, offset);
    let snippet = locate::line_text(source, line).to_string();
    Problem {
        line,
        column,
        key,
        message: plain_words(&message, &snippet),
        help,
        snippet,
    }
}

/// The parser's and serde's messages in the words of devenv.toml rather than of Rust:
/// "invalid type: floating point `2.5`, expected u32" becomes "expected a whole number, found
/// 2.5"; "duplicate key" names the table or key that is there twice.
fn plain_words(message: &str, line: &str) -> String {
    fn kind(rust: &str) -> String {
        let rust = rust.trim();
        let number = |t: &str| {
            matches!(
                t,
                "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize"
            )
        };
        if number(rust) {
            return match rust {
                "u16" => "a whole number from 0 to 65535".into(),
                r if r.starts_with('u') => "a whole number, 0 or more".into(),
                _ => "a whole number".into(),
            };
        }
        if let Some(v) = rust.strip_prefix("floating point ") {
            return v.trim_matches('`').to_string();
        }
        if let Some(v) = rust.strip_prefix("integer ") {
            return v.trim_matches('`').to_string();
        }
        if let Some(v) = rust.strip_prefix("boolean ") {
            return v.trim_matches('`').to_string();
        }
        if let Some(v) = rust.strip_prefix("string ") {
            return format!("the text {v}");
        }
        match rust {
            "f32" | "f64" => "a number".into(),
            "a sequence" | "sequence" => "a list".into(),
            "a map" | "map" => "a table".into(),
            "a boolean" | "bool" => "true or false".into(),
            r if r.starts_with("struct ") => "a table".into(),
            r => r.to_string(),
        }
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.rsplit_once(", expected ")
        {
            return format!("expected {}, found {}", kind(expected), kind(found));
        }
    }
    if message == "duplicate key" {
        let line = line.trim();
        if line.starts_with('[') {
            return format!("{line} appears twice: each table is written once (merge the two)");
        }
        if let Some((key, _)) = line.split_once('=') {
            return format!("`{}` is set twice in this table", key.trim());
        }
    }
    message.to_string()
}

/// From serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown variant"), the
/// misspelt word and the valid ones.
fn unknown_and_expected(message: &str) -> Option<(String, Vec<String>)> {
    if !message.starts_with("unknown field") && !message.starts_with("unknown variant") {
        return None;
    }
    let words: Vec<String> = message
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    let (first, rest) = words.split_first()?;
    Some((first.clone(), rest.to_vec()))
}

/// Build a [`Problem`] at a key path of `source` (used by validation).
pub(crate) fn problem_at(
    source: &str,
    doc: Option<&locate::Doc<'_>>,
    path: &[&str],
    message: impl Into<String>,
    help: Option<String>,
) -> Problem {
    let offset = doc
        .and_then(|d| d.span_of(path).or_else(|| d.key_span_of(path)))
        .or_else(|| {
            // A key left at its default is not in the file: point at its table instead.
            doc.and_then(|d| d.key_span_of(&path[..path.len().saturating_sub(1)]))
        })
        .map(|s| s.start)
        .unwrap_or(0);
    let (line, column) = line_col(source, offset);
    Problem {
        line,
        column,
        key: path.join("."),
        message: message.into(),
        help,
        snippet: locate::line_text(source, line).to_string(),
    }
}

#[cfg(test)]
mod tests;
