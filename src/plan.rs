//! `devenv up` as a plan: named stages with declared dependencies, each holding the exact
//! commands and file edits it would make. The same plan is printed by `--dry-run` and (as the
//! reconcile engine grows) executed stage by stage, so what a dry run shows is what runs.

use std::fmt::Write as _;
use std::path::PathBuf;

use devenv_drivers::Driver;
use serde::Serialize;

use crate::config::{Loaded, Placement};
use crate::minikube::{self, VmState};
use crate::process::{Cmd, quote};
use crate::{helm, process};

/// One step of a stage.
#[derive(Debug, Clone)]
pub enum Action {
    /// A condition verified before anything changes.
    Check(String),
    /// A command to run.
    Run(Cmd),
    /// Lines added to (`+`) or removed from (`-`) a file; nothing else in it changes.
    Edit { path: PathBuf, diff: String },
    /// A file devenv owns, written whole.
    Write { path: PathBuf, contents: String },
    /// Something that needs no action, and why.
    Note(String),
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    /// Stages that must finish first.
    pub after: Vec<String>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub project: String,
    pub profile: String,
    pub driver: &'static str,
    pub stages: Vec<Stage>,
}

/// The exports stage, computed by [`crate::nfs::apply::candidate`] against the current file.
pub struct ExportsFacts {
    pub file: PathBuf,
    /// The exported directory as written in the file.
    pub source: PathBuf,
    /// The change to the file as a diff (empty: nothing to change), or why it cannot be made.
    pub diff: Result<String, String>,
    /// Whether the file is changed through sudo.
    pub sudo: bool,
    /// How the NFS server is made to re-read the file.
    pub reload: Vec<Cmd>,
}

/// What the plan depends on besides devenv.toml, gathered (read-only) by the caller.
pub struct Facts {
    pub driver: &'static dyn Driver,
    /// Placement of every service after the user's toggles.
    pub placements: Vec<(String, Placement)>,
    pub exports: ExportsFacts,
    /// The VM's state from `minikube status`, when minikube could be asked.
    pub vm_state: Option<VmState>,
    /// Where the generated values overlay is written.
    pub overlay_file: PathBuf,
    /// The developer's user name, for the remote namespace.
    pub user: String,
}

impl Plan {
    pub fn build(loaded: &Loaded, facts: &Facts) -> Plan {
        let c = &loaded.config;
        let profile = c.project.profile();
        let driver = facts.driver;
        let remote: Vec<&str> = facts
            .placements
            .iter()
            .filter(|(_, p)| *p == Placement::Remote)
            .map(|(n, _)| n.as_str())
            .collect();
        let mut stages = Vec::new();

        let mut preflight = vec![
            Action::Check("devenv.toml is valid".into()),
            Action::Check(format!(
                "driver {} is healthy (details: devenv doctor)",
                driver.name()
            )),
            Action::Check("minikube, helm and kubectl are installed".into()),
        ];
        if facts.exports.sudo {
            preflight.push(Action::Check(format!(
                "sudo may edit {} and reload the NFS server (asked once, up front)",
                facts.exports.file.display()
            )));
        }
        stages.push(stage("preflight", &[], preflight));

        // exports
        let ex = &facts.exports;
        let source = ex.source.clone();
        let exports = match &ex.diff {
            Ok(diff) if diff.is_empty() => vec![Action::Note(format!(
                "{} already exports {} to the VM",
                ex.file.display(),
                source.display()
            ))],
            Ok(diff) => {
                let mut actions = vec![Action::Edit {
                    path: ex.file.clone(),
                    diff: diff.clone(),
                }];
                actions.extend(ex.reload.iter().cloned().map(Action::Run));
                actions
            }
            Err(why) => vec![Action::Check(format!("would stop here: {why}"))],
        };
        stages.push(stage("exports", &["preflight"], exports));

        // vm
        let start = minikube::start(&profile, driver, &c.vm);
        let vm = match &facts.vm_state {
            Some(VmState::Running) => vec![Action::Note(format!(
                "{profile} is running; its settings are compared with [vm] and nothing is restarted"
            ))],
            Some(VmState::Stopped) => vec![
                Action::Note(format!(
                    "{profile} exists and is stopped: it is started again"
                )),
                Action::Run(start),
            ],
            _ => vec![Action::Run(start)],
        };
        stages.push(stage("vm", &["preflight"], vm));

        // mount
        let host = minikube::expected_host_address(driver);
        let target = &c.mount.target;
        let remote_path = format!("{host}:{}", source.display());
        let mkdir = ["sudo", "mkdir", "-p", target.as_str()];
        let mount = [
            "sudo",
            "mount",
            "-t",
            "nfs",
            "-o",
            c.mount.options.as_str(),
            remote_path.as_str(),
            target.as_str(),
        ];
        stages.push(stage(
            "mount",
            &["exports", "vm"],
            vec![
                Action::Note(format!(
                    "the host is {host} as seen from the VM (the gateway of {}); confirmed once the VM has its address",
                    driver.default_subnet()
                )),
                Action::Run(minikube::ssh(&profile, &mkdir)),
                Action::Run(minikube::ssh(&profile, &mount)),
                Action::Check(format!(
                    "a probe file written in {} on the host reads back from {target} in the VM",
                    source.display()
                )),
            ],
        ));

        // remote services and their bridges
        let mut release_after = vec!["mount".to_string()];
        if let Some(r) = &c.remote {
            let namespace = format!("devenv-{}-{}", facts.user, c.project.name);
            for name in &remote {
                let svc = &c.services[*name];
                let key = svc.values_key.clone().unwrap_or_default();
                let chart = loaded.chart_dir().join("charts").join(&key);
                stages.push(stage(
                    &format!("remote:{name}"),
                    &["preflight"],
                    vec![Action::Run(
                        Cmd::new("helm")
                            .args(["upgrade", "--install", name])
                            .arg(chart)
                            .args(["--kube-context", &r.context])
                            .args(["--namespace", &namespace, "--create-namespace", "--wait"]),
                    )],
                ));
                let host = svc.host.clone().unwrap_or_default();
                let bridge = format!("bridge:{name}");
                stages.push(stage(
                    &bridge,
                    &["vm", &format!("remote:{name}")],
                    vec![Action::Note(format!(
                        "Service {host} (ports {}) and its EndpointSlice in namespace {} point at {name} in {} on context {} ({:?} connection)",
                        svc.all_ports()
                            .iter()
                            .map(u16::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        c.project.namespace(),
                        namespace,
                        r.context,
                        r.connect
                    ).to_lowercase())],
                ));
                release_after.push(bridge);
            }
        }

        // release
        let overlay = helm::overlay(loaded, &facts.placements);
        let after: Vec<&str> = release_after.iter().map(String::as_str).collect();
        stages.push(stage(
            "release",
            &after,
            vec![
                Action::Write {
                    path: facts.overlay_file.clone(),
                    contents: serde_json::to_string_pretty(&overlay).expect("json") + "\n",
                },
                Action::Run(helm::upgrade_install(loaded, &profile, &facts.overlay_file)),
                Action::Check(format!(
                    "every Deployment and StatefulSet in namespace {} becomes ready",
                    c.project.namespace()
                )),
            ],
        ));

        let local: Vec<&str> = facts
            .placements
            .iter()
            .filter(|(_, p)| *p == Placement::Local)
            .map(|(n, _)| n.as_str())
            .collect();
        let mut summary = vec![Action::Note(format!(
            "local: {}",
            if local.is_empty() {
                "-".into()
            } else {
                local.join(", ")
            }
        ))];
        if !remote.is_empty() {
            summary.push(Action::Note(format!("remote: {}", remote.join(", "))));
        }
        stages.push(stage("summary", &["release"], summary));

        Plan {
            project: c.project.name.clone(),
            profile,
            driver: driver.name(),
            stages,
        }
    }

    /// The plan as text: stages in dependency order, one action per line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Plan for project {} (minikube profile {}, driver {}): {} stages",
            self.project,
            self.profile,
            self.driver,
            self.stages.len()
        );
        for (i, s) in self.stages.iter().enumerate() {
            let after = if s.after.is_empty() {
                String::new()
            } else {
                format!("  (after {})", s.after.join(", "))
            };
            let _ = writeln!(out, "\n{}. {}{after}", i + 1, s.name);
            for a in &s.actions {
                match a {
                    Action::Check(t) => {
                        let _ = writeln!(out, "   check  {t}");
                    }
                    Action::Note(t) => {
                        let _ = writeln!(out, "   note   {t}");
                    }
                    Action::Run(cmd) => {
                        let _ = writeln!(out, "   run    {}", cmd.display());
                    }
                    Action::Edit { path, diff } => {
                        let _ = writeln!(out, "   edit   {}", quote(&process::display_path(path)));
                        for l in diff.lines() {
                            let _ = writeln!(out, "          {l}");
                        }
                    }
                    Action::Write { path, contents } => {
                        let _ = writeln!(out, "   write  {}", quote(&process::display_path(path)));
                        for l in contents.lines() {
                            let _ = writeln!(out, "          | {l}");
                        }
                    }
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
            actions: Vec<serde_json::Value>,
        }
        let stages: Vec<JStage<'_>> = self
            .stages
            .iter()
            .map(|s| JStage {
                name: &s.name,
                after: &s.after,
                actions: s
                    .actions
                    .iter()
                    .map(|a| match a {
                        Action::Check(t) => serde_json::json!({"check": t}),
                        Action::Note(t) => serde_json::json!({"note": t}),
                        Action::Run(c) => serde_json::json!({
                            "run": c.display(),
                            "argv": std::iter::once(c.program().to_string())
                                .chain(c.get_args().iter().map(|a| a.to_string_lossy().into_owned()))
                                .collect::<Vec<_>>(),
                        }),
                        Action::Edit { path, diff } => {
                            serde_json::json!({"edit": path, "diff": diff})
                        }
                        Action::Write { path, contents } => {
                            serde_json::json!({"write": path, "contents": contents})
                        }
                    })
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

fn stage(name: &str, after: &[&str], actions: Vec<Action>) -> Stage {
    Stage {
        name: name.to_string(),
        after: after.iter().map(|s| s.to_string()).collect(),
        actions,
    }
}
