//! `devenv up` as a plan: named stages with declared dependencies, each holding the exact
//! commands and file edits it makes. The plan is computed from devenv.toml and what was read
//! (read-only) from the machine; `--dry-run` prints it and `up` executes it stage by stage
//! ([`crate::execute`]), so what a dry run shows is what runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use devenv_drivers::Driver;
use serde::Serialize;

use crate::config::{Connect, Loaded, Placement};
use crate::docker::build::ImageSpec;
use crate::minikube::{self, VmState};
use crate::process::{Cmd, quote};
use crate::{helm, process};

mod build;

/// A condition checked when the stage runs; a failed one stops the stage.
#[derive(Debug, Clone)]
pub enum Verify {
    /// The chosen driver's health, found while planning; `failure` is its first failing check.
    Driver {
        name: &'static str,
        failure: Option<String>,
    },
    /// These programs are on PATH.
    Tools(Vec<&'static str>),
    /// Something this version of devenv cannot do yet; the stage fails with this message.
    Unsupported(String),
    /// Something read while planning failed (a values file, an image's context, the exports
    /// file): the stage fails with that error, its code and help kept.
    Failed(crate::diagnostic::Failure),
    /// Versions outside `[requires]` (never empty): the stage fails naming each with its fix.
    Versions(Vec<crate::requires::Mismatch>),
    /// A file devenv writes in the source tree on the host reads back through the VM's mount.
    MountProbe {
        profile: String,
        host_dir: PathBuf,
        vm_dir: String,
    },
    /// Every Deployment and StatefulSet of the namespace becomes ready within the timeout.
    Rollout {
        context: String,
        namespace: String,
        timeout: std::time::Duration,
    },
    /// The release exists and is deployed (`helm status`), for a no-op `up`.
    Release {
        release: String,
        namespace: String,
        context: String,
    },
}

impl Verify {
    /// The failure this check will report, when it is known without running anything: an
    /// unusable driver, a missing tool, something unsupported. `up --dry-run` reports these;
    /// the executor fails the stage with the same text.
    pub fn known_failure(&self, platform: process::Platform) -> Option<String> {
        match self {
            Verify::Driver {
                name,
                failure: Some(f),
            } => Some(format!("driver {name} is not usable here: {f}")),
            Verify::Tools(tools) => {
                let missing: Vec<String> = tools
                    .iter()
                    .filter(|t| which::which(t).is_err())
                    .map(|t| format!("{t}: {}", process::install_hint(t, platform)))
                    .collect();
                (!missing.is_empty()).then(|| format!("not installed:\n{}", missing.join("\n")))
            }
            Verify::Unsupported(why) => Some(why.clone()),
            Verify::Failed(f) => Some(f.message.clone()),
            Verify::Versions(found) => Some(
                found
                    .iter()
                    .map(|m| format!("{m} (fix: {})", m.fix))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Verify::Driver { name, .. } => {
                format!("driver {name} is healthy (details: devenv doctor)")
            }
            Verify::Tools(tools) => format!("{} are installed", tools.join(", ")),
            Verify::Unsupported(why) => format!("stops here: {why}"),
            Verify::Failed(f) => format!("stops here: {}", f.message),
            Verify::Versions(_) => "the versions devenv.toml's [requires] names".to_string(),
            Verify::MountProbe {
                host_dir, vm_dir, ..
            } => format!(
                "a probe file written in {} on the host reads back from {vm_dir} in the VM",
                host_dir.display()
            ),
            Verify::Rollout {
                namespace, timeout, ..
            } => format!(
                "every Deployment and StatefulSet in namespace {namespace} is ready within {}s (a pod that cannot start stops the wait with its events and logs)",
                timeout.as_secs()
            ),
            Verify::Release {
                release, namespace, ..
            } => format!("release {release} in namespace {namespace} is deployed"),
        }
    }
}

/// The NFS mount inside the VM. The host's address is only known once the VM has its own, so a
/// plan made before the VM exists shows the driver's usual address and the mount resolves it
/// when it runs.
#[derive(Debug, Clone)]
pub struct MountSpec {
    pub profile: String,
    /// The host as the VM sees it, when the VM's address is known.
    pub host: Option<Ipv4Addr>,
    /// The address shown in the plan when `host` is not known yet.
    pub assumed_host: Ipv4Addr,
    pub source: PathBuf,
    pub target: String,
    pub options: String,
}

impl MountSpec {
    /// The two commands run inside the VM, for `host`.
    pub fn commands(&self, host: Ipv4Addr) -> [Cmd; 2] {
        let remote = format!("{host}:{}", self.source.display());
        [
            minikube::ssh(&self.profile, &["sudo", "mkdir", "-p", &self.target]),
            minikube::ssh(
                &self.profile,
                &[
                    "sudo",
                    "mount",
                    "-t",
                    "nfs",
                    "-o",
                    &self.options,
                    &remote,
                    &self.target,
                ],
            ),
        ]
    }
}

/// One step of a stage.
#[derive(Debug, Clone)]
pub enum Action {
    /// A condition verified when the stage runs.
    Verify(Verify),
    /// A command to run.
    Run(Cmd),
    /// devenv's block in the exports file: the diff shown, the lines written, then the reload.
    Exports {
        path: PathBuf,
        diff: String,
        source: PathBuf,
        lines: Vec<String>,
        /// What the lines grant, for the exports helper.
        grant: Option<crate::nfs::Grant>,
        /// The export goes to the address of this profile's VM, asked from minikube when the
        /// stage runs (`lines` and `diff` show the driver's usual network in its place).
        vm_address_of: Option<String>,
        /// The reload that follows the edit (run by the exports code, shown in the plan); with
        /// the exports helper, the helper's command, which edits and reloads as root.
        reload: Vec<Cmd>,
    },
    /// The NFS mount inside the VM.
    Mount(MountSpec),
    /// A file written whole (atomically: it is never seen half-written), with `mode` when
    /// given, else private to the user (devenv's own files).
    Write {
        path: PathBuf,
        contents: String,
        mode: Option<u32>,
    },
    /// Something that needs no action, and why.
    Note(String),
    /// A step of offloading a service to the remote cluster, or of bringing it back.
    Offload(crate::offload::Step),
    /// An image built in the VM's Docker daemon (reached through `minikube docker-env`).
    Build { profile: String, spec: ImageSpec },
    /// A command whose failure does not stop the stage: the run goes on and reports what was
    /// left (`down --purge` uninstalls the release before deleting the VM, which takes the
    /// release with it anyway). Output containing `fine_if` counts as success.
    Attempt {
        cmd: Cmd,
        fine_if: &'static str,
        /// What is left when it fails, and why that is acceptable.
        otherwise: String,
    },
    /// devenv's block removed from the exports file (the diff shown), then the reload.
    Unexport {
        path: PathBuf,
        diff: String,
        reload: Vec<Cmd>,
    },
    /// devenv's block removed from the hosts file, the file first copied to `backup`.
    Unhost {
        path: PathBuf,
        backup: PathBuf,
        diff: String,
    },
    /// Files devenv owns, removed (absent ones are fine).
    Remove(Vec<PathBuf>),
}

/// One line of a rendered plan: the verb, what it acts on, indented detail lines, and the same
/// in JSON. Each action says itself once, and the text and JSON plans are both read from it.
struct Shown {
    verb: &'static str,
    head: String,
    detail: Vec<String>,
    json: serde_json::Value,
}

fn run_json(c: &Cmd) -> serde_json::Value {
    serde_json::json!({
        "run": c.display(),
        "argv": std::iter::once(c.program().to_string())
            .chain(c.get_args().iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>(),
    })
}

fn shown_run(c: &Cmd) -> Shown {
    Shown {
        verb: "run",
        head: c.display(),
        detail: Vec::new(),
        json: run_json(c),
    }
}

fn shown_edit(path: &std::path::Path, diff: &str, reload: &[Cmd]) -> Vec<Shown> {
    std::iter::once(Shown {
        verb: "edit",
        head: quote(&process::display_path(path)),
        detail: diff.lines().map(str::to_string).collect(),
        json: serde_json::json!({"edit": path, "diff": diff}),
    })
    .chain(reload.iter().map(shown_run))
    .collect()
}

impl Action {
    /// How the action reads in a plan, text and JSON alike.
    fn shown(&self) -> Vec<Shown> {
        let one = |verb, head: String, json| {
            vec![Shown {
                verb,
                head,
                detail: Vec::new(),
                json,
            }]
        };
        match self {
            Action::Verify(v) => {
                let d = v.describe();
                one("check", d.clone(), serde_json::json!({"check": d}))
            }
            Action::Note(t) => one("note", t.clone(), serde_json::json!({"note": t})),
            Action::Offload(step) => {
                let d = step.describe();
                one("ensure", d.clone(), serde_json::json!({"offload": d}))
            }
            Action::Run(c) => vec![shown_run(c)],
            Action::Attempt { cmd, otherwise, .. } => vec![Shown {
                verb: "run",
                head: cmd.display(),
                detail: vec![format!("(if it fails: {otherwise})")],
                json: {
                    let mut j = run_json(cmd);
                    j["if_it_fails"] = serde_json::json!(otherwise);
                    j
                },
            }],
            Action::Exports {
                path, diff, reload, ..
            }
            | Action::Unexport { path, diff, reload } => shown_edit(path, diff, reload),
            Action::Unhost { path, diff, backup } => {
                let mut s = shown_edit(path, diff, &[]);
                s[0].json["backup"] = serde_json::json!(backup);
                s
            }
            Action::Mount(m) => {
                let mut shown = Vec::new();
                if m.host.is_none() {
                    shown.push(Shown {
                        verb: "note",
                        head: format!(
                            "the host is {} as seen from the VM (the driver's usual gateway); confirmed once the VM has its address",
                            m.assumed_host
                        ),
                        detail: Vec::new(),
                        json: serde_json::Value::Null,
                    });
                }
                shown.extend(
                    m.commands(m.host.unwrap_or(m.assumed_host))
                        .iter()
                        .map(shown_run),
                );
                shown
            }
            Action::Write { path, contents, .. } => vec![Shown {
                verb: "write",
                head: quote(&process::display_path(path)),
                detail: contents.lines().map(|l| format!("| {l}")).collect(),
                json: serde_json::json!({"write": path, "contents": contents}),
            }],
            Action::Remove(files) => files
                .iter()
                .map(|f| Shown {
                    verb: "remove",
                    head: quote(&process::display_path(f)),
                    detail: Vec::new(),
                    json: serde_json::json!({"remove": f}),
                })
                .collect(),
            Action::Build { profile, spec } => one(
                "build",
                format!(
                    "{} (as {}) from {} with {}, in the Docker daemon of {profile} (minikube docker-env)",
                    spec.reference,
                    spec.content_reference(),
                    quote(&process::display_path(&spec.context)),
                    spec.dockerfile
                ),
                serde_json::json!({
                    "build": spec.reference,
                    "as": spec.content_reference(),
                    "context": spec.context,
                    "dockerfile": spec.dockerfile,
                }),
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    /// Stages that must finish first.
    pub after: Vec<String>,
    pub actions: Vec<Action>,
    /// What the stage destroys, in a few words: asked before the run unless `--yes`.
    pub confirm: Option<String>,
    /// How to do the stage's work by hand, said when it fails.
    pub by_hand: Option<String>,
}

impl Stage {
    pub fn new(name: &str, after: &[&str], actions: Vec<Action>) -> Stage {
        Stage {
            name: name.to_string(),
            after: after.iter().map(|s| s.to_string()).collect(),
            actions,
            confirm: None,
            by_hand: None,
        }
    }

    /// Asked for before the run: `what` is lost.
    pub fn destroys(mut self, what: impl Into<String>) -> Stage {
        self.confirm = Some(what.into());
        self
    }

    pub fn by_hand(mut self, how: impl Into<String>) -> Stage {
        self.by_hand = Some(how.into());
        self
    }
}

#[cfg(test)]
mod tests;

#[derive(Debug, Clone)]
pub struct Plan {
    pub project: String,
    pub profile: String,
    pub driver: String,
    pub stages: Vec<Stage>,
    /// The first line of the rendered plan, when it is not about a project's VM (`init`).
    pub title: Option<String>,
}

/// The exports stage, computed by [`crate::nfs::apply::candidate`] against the current file.
pub struct ExportsFacts {
    pub file: PathBuf,
    /// The exported directory as written in the file.
    pub source: PathBuf,
    /// Whom the lines grant the export to.
    pub client: devenv_drivers::ExportClient,
    /// The lines of devenv's block.
    pub lines: Vec<String>,
    /// What the lines grant, for the exports helper.
    pub grant: Option<crate::nfs::Grant>,
    /// The client is the VM's own address, known only once the VM runs (a new or recreated
    /// VM): the exports stage then follows the vm stage and reads it.
    pub awaits_vm_address: bool,
    /// The change to the file as a diff (empty: nothing to change), or why it cannot be made.
    pub diff: Result<String, crate::diagnostic::Failure>,
    /// Whether the file is changed through sudo.
    pub sudo: bool,
    /// How the NFS server is made to re-read the file.
    pub reload: Vec<Cmd>,
    /// An interrupted change left the file as wanted but never reloaded the server
    /// ([`NfsHost::reload_owed`](crate::nfs::apply::NfsHost::reload_owed)).
    pub reload_owed: bool,
}

/// What the plan depends on besides devenv.toml, gathered (read-only) by the caller.
pub struct Facts {
    pub driver: &'static dyn Driver,
    /// What this machine has to give the VM, when it can be read.
    pub host: Option<crate::machine::Resources>,
    /// Why `[remote] server` refuses the cluster `[remote] context` points at, when something
    /// is to be sent there ([`crate::offload::allowed_server`]).
    pub remote_refusal: Option<crate::offload::ServerRefusal>,
    /// Versions on this machine (or of the shared cluster) outside `[requires]`.
    pub version_mismatches: Vec<crate::requires::Mismatch>,
    /// The first failing check of the driver, if any.
    pub driver_failure: Option<String>,
    /// Placement of every service after the user's toggles.
    pub placements: Vec<(String, Placement)>,
    pub exports: ExportsFacts,
    /// The VM's state from `minikube status`, when minikube could be asked.
    pub vm_state: Option<VmState>,
    /// The VM's address, when it runs.
    pub vm_ip: Option<Ipv4Addr>,
    /// How the running VM differs from `[vm]` (empty: same settings, or not running).
    pub vm_drift: Vec<String>,
    /// The driver a stopped profile was created with, when it is not the chosen one: minikube
    /// refuses to start it with another (GUEST_DRIVER_MISMATCH, exit 81).
    pub vm_driver_mismatch: Option<String>,
    /// Another directory this profile's VM has mounted at the target: a second checkout with
    /// the same project name.
    pub other_checkout: Option<PathBuf>,
    /// Delete and recreate a running VM whose settings differ (`up --recreate`).
    pub recreate: bool,
    /// The running VM already has the source mounted at the target from the right place.
    pub mounted: bool,
    /// ... and a probe file written on the host was read back through it while the machine
    /// was read, so the mount stage has nothing left to check.
    pub mount_probed: bool,
    /// Where the generated values overlay is written.
    pub overlay_file: PathBuf,
    /// The source tree as the host resolves it (links followed): where the mount probe
    /// writes its file.
    pub probe_dir: PathBuf,
    /// What the umbrella chart gives each offloaded service's subchart (its section and the
    /// global one of the chart's values.yaml and the team's values files), or why it could not
    /// be read ([`crate::offload::subchart_values`]).
    pub remote_values:
        std::collections::BTreeMap<String, Result<serde_json::Value, crate::diagnostic::Failure>>,
    /// Nothing that the release depends on changed since the last successful `up`.
    pub release_unchanged: bool,
    /// The developer's user name, for the remote namespace.
    pub user: String,
    /// Services that have a bridge in the local cluster (read from it when the VM runs).
    pub bridged: Vec<String>,
    /// Services whose remote release devenv may have installed (from the user's state), with a
    /// bridge or without one (a toggle stopped between the two): one back on the laptop has
    /// that release uninstalled all the same.
    pub remote_releases: Vec<String>,
    /// The project's state directory (the tunnel supervisor's files live there).
    pub state_dir: PathBuf,
    /// A tunnel supervisor runs for the project.
    pub tunnel_running: bool,
    /// The images of `[services.*.image]`, by service.
    pub images: Vec<ImageFacts>,
    /// `devenv offload <service> --local --purge`: the user's remote namespace is to be deleted
    /// once the run has brought the service back.
    pub purge_remote: Option<PurgeRemote>,
}

/// The remote namespace `offload --purge` deletes, and what still runs there.
#[derive(Debug, Clone)]
pub struct PurgeRemote {
    pub context: String,
    pub namespace: String,
    /// Services of the project that run remotely after this run: while there are any, the
    /// namespace (their data) is kept.
    pub still: Vec<String>,
}

/// One service's image as found while planning.
#[derive(Debug, Clone)]
pub struct ImageFacts {
    pub service: String,
    /// The image to build (with its context's hash), or why its context cannot be read.
    pub spec: Result<ImageSpec, crate::diagnostic::Failure>,
    /// The VM's daemon already holds the image of this very context.
    pub built: bool,
}

/// The tools `up` runs.
pub const TOOLS: [&str; 3] = ["minikube", "helm", "kubectl"];

impl Plan {
    /// The checks known to fail before anything runs, as `(stage, message)`: the run would
    /// stop there.
    pub fn known_failures(&self, platform: process::Platform) -> Vec<(String, String)> {
        self.stages
            .iter()
            .flat_map(|s| {
                s.actions.iter().filter_map(move |a| match a {
                    Action::Verify(v) => v.known_failure(platform).map(|m| (s.name.clone(), m)),
                    _ => None,
                })
            })
            .collect()
    }

    /// Whether running the plan would change anything (a no-op `up` changes nothing).
    pub fn changes_anything(&self) -> bool {
        self.stages.iter().flat_map(|s| &s.actions).any(|a| {
            matches!(
                a,
                Action::Run(_)
                    | Action::Exports { .. }
                    | Action::Mount(_)
                    | Action::Write { .. }
                    | Action::Offload(_)
                    | Action::Build { .. }
                    | Action::Attempt { .. }
                    | Action::Unexport { .. }
                    | Action::Unhost { .. }
                    | Action::Remove(_)
            )
        })
    }

    /// What the run would destroy, stage by stage: the list asked for before it starts.
    pub fn destroys(&self) -> Vec<String> {
        self.stages
            .iter()
            .filter_map(|s| s.confirm.clone())
            .collect()
    }

    /// The plan as text: stages in dependency order, one action per line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match &self.title {
            Some(title) => {
                let _ = writeln!(out, "{title}: {} stages", self.stages.len());
            }
            None => {
                let _ = writeln!(
                    out,
                    "Plan for project {} (minikube profile {}, driver {}): {} stages",
                    self.project,
                    self.profile,
                    self.driver,
                    self.stages.len()
                );
            }
        }
        for (i, s) in self.stages.iter().enumerate() {
            let after = if s.after.is_empty() {
                String::new()
            } else {
                format!("  (after {})", s.after.join(", "))
            };
            let _ = writeln!(out, "\n{}. {}{after}", i + 1, s.name);
            if let Some(what) = &s.confirm {
                let _ = writeln!(out, "   asks   {what} (--yes answers for you)");
            }
            for shown in s.actions.iter().flat_map(Action::shown) {
                let _ = writeln!(out, "   {:<6} {}", shown.verb, shown.head);
                for l in &shown.detail {
                    let _ = writeln!(out, "          {l}");
                }
            }
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        #[derive(Serialize)]
        struct JStage<'a> {
            name: &'a str,
            after: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            asks: Option<&'a str>,
            actions: Vec<serde_json::Value>,
        }
        let stages: Vec<JStage<'_>> = self
            .stages
            .iter()
            .map(|s| JStage {
                name: &s.name,
                after: &s.after,
                asks: s.confirm.as_deref(),
                actions: s
                    .actions
                    .iter()
                    .flat_map(Action::shown)
                    .map(|shown| shown.json)
                    .filter(|j| !j.is_null())
                    .collect(),
            })
            .collect();
        serde_json::json!({
            "project": self.project,
            "profile": self.profile,
            "driver": self.driver,
            "stages": stages,
        })
    }
}
