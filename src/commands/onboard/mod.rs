//! `devenv onboard`: from a fresh laptop to one that `devenv up` can use, through one plan the
//! developer reads before anything changes.
//!
//! It first looks at the machine with read-only probes (OS family, CPU, macOS version, what is on
//! PATH, which system packages, groups and services are already there), then builds a plan of
//! steps, each with a title, the reason for it and the exact commands, and shows all of it. Only
//! what is missing is planned, so running it again after a failure, or on a machine that is
//! already set up, is safe. Everything that needs root is a visible `sudo` command, announced
//! before it runs. The exports helper and the sudoers rule that spare the password prompt when
//! the NFS export changes are only installed after their own yes. At the end the doctor checks the result.
//!
//! Limits: it knows Homebrew on macOS, apt on Debian and Ubuntu and dnf on Fedora; elsewhere it
//! says what to install and stops. It never installs Homebrew itself: Homebrew's installer is a
//! script piped into bash, which is the developer's call to make.
//!
//! The OS family comes from the context ([`detect_platform`](crate::process::detect_platform)). A hidden `--platform` flag
//! overrides it, so the plan of every OS family can be printed and tested on any machine: macOS
//! cannot be simulated with an os-release file, and a flag keeps the override in plain sight on
//! the command line rather than in the environment, which commands do not read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use devenv_drivers::vfkit::{MIN_MACOS, macos_major};
use devenv_drivers::{Arch, Choice, Host, Os, Registry, SelectError};
use serde::Serialize;

use crate::commands::doctor;
use crate::config::{ConfigError, Requires, Vm};
use crate::context::Context;
use crate::error::Error;
use crate::machine::{self, Machine, PROBE_TIMEOUT};
use crate::process::{Cmd, DryRunRunner, Platform, Runner, join};
use crate::requires::{self, Tool};
use crate::ui::Ui;
use semver::Version;

/// The snippets `devenv exports` needs to run its sudo commands without a password prompt.
mod probe;
mod render;
mod run;
mod steps;
#[cfg(test)]
mod tests;

use probe::*;
pub use probe::{kube_minor, parse_dpkg_query, parse_rpm_query, unit_enabled};
pub use render::render;
use render::*;
use run::run_steps;
use steps::*;

const SUDOERS_LINUX: &str = include_str!("../../../templates/sudoers.linux");
const SUDOERS_MACOS: &str = include_str!("../../../templates/sudoers.macos");
const SUDOERS_PATH: &str = "/etc/sudoers.d/devenv";

const MINIKUBE_RELEASES: &str = "https://storage.googleapis.com/minikube/releases/latest";
/// Every release's packages, by tag (`v1.35.0/minikube_1.35.0-0_amd64.deb`).
const MINIKUBE_DOWNLOADS: &str = "https://github.com/kubernetes/minikube/releases/download";
const HELM_APT_KEY: &str = "https://packages.buildkite.com/helm-linux/helm-debian/gpgkey";
const HELM_APT_REPO: &str = "https://packages.buildkite.com/helm-linux/helm-debian/any/";
const HOMEBREW_INSTALL: &str = "/bin/bash -c \"$(curl -fsSL https://raw.githubusercontent.com/Homebrew/install/HEAD/install.sh)\"";
/// Where Homebrew installs itself on Apple silicon and on Intel Macs.
const HOMEBREW_PREFIXES: [&str; 2] = ["/opt/homebrew/bin/brew", "/usr/local/bin/brew"];
/// Output text width of the plan.
const WIDTH: usize = 96;

/// Prepare this laptop: minikube, helm, kubectl, the VM driver and the NFS server
///
/// Looks at this machine, shows a plan of every command it would run (those needing root are
/// marked [sudo]) and asks before running it. Installs only what is missing: with Homebrew on
/// macOS (vfkit, or hyperkit on an Intel Mac with --driver hyperkit), with apt on Debian and
/// Ubuntu and with dnf on Fedora (QEMU/KVM, libvirt, the NFS server, minikube's own package,
/// helm and kubectl from their projects' repositories), adds you to the libvirt group and
/// enables the services. Offers the exports helper and its sudoers rule separately (they let
/// `devenv up` change /etc/exports without a password, and nothing else). Ends with `devenv
/// doctor` and exits with its code.
#[derive(Debug, clap::Args)]
pub struct Args {
    // --yes runs the plan without asking; the exports helper still needs --exports-helper or
    // its own yes.
    #[command(flatten)]
    pub change: super::change::Flags,
    /// VM driver to prepare: vfkit (macOS 13 or later), hyperkit (Intel Macs only; deprecated)
    /// or kvm2 (Linux). Default: vm.driver of the project's devenv.toml, else the best for this
    /// machine.
    #[arg(long, value_name = "DRIVER")]
    pub driver: Option<String>,
    /// Also install the exports helper and its sudoers rule shown in the plan, without asking:
    /// a root-owned program that changes only your own project's block of /etc/exports, the
    /// one thing the rule lets you run as root without a password (docs/nfs.md). Run it again
    /// after upgrading devenv.
    #[arg(long = "exports-helper", alias = "sudoers")]
    pub sudoers: bool,
    /// Plan for this OS family instead of the detected one (macos, debian, fedora, arch,
    /// other-linux); for tests and for printing another machine's plan.
    #[arg(long, hide = true, value_name = "FAMILY", value_parser = parse_platform)]
    pub platform: Option<Platform>,
}

fn parse_platform(text: &str) -> Result<Platform, String> {
    match text {
        "macos" => Ok(Platform::MacOs),
        "debian" => Ok(Platform::Debian),
        "fedora" => Ok(Platform::Fedora),
        "arch" => Ok(Platform::Arch),
        "other-linux" => Ok(Platform::OtherLinux),
        _ => Err("expected one of: macos, debian, fedora, arch, other-linux".to_string()),
    }
}

/// What the read-only probes found. The plan is a pure function of it.
#[derive(Debug, Clone)]
pub struct Facts {
    pub platform: Platform,
    /// The CPU as `uname -m` names it (`x86_64`, `arm64` on macOS, `aarch64` on Linux).
    pub cpu: String,
    /// `sw_vers -productVersion` on macOS.
    pub macos_version: Option<String>,
    /// `id -u`, when it answered.
    pub uid: Option<u32>,
    /// The login name (`id -un`), for `usermod`.
    pub user: String,
    pub groups: Vec<String>,
    /// Programs found on PATH.
    pub programs: BTreeSet<String>,
    /// System packages already installed (dpkg or rpm names).
    pub packages: BTreeSet<String>,
    /// systemd units already enabled.
    pub enabled_units: BTreeSet<String>,
    /// Homebrew's location when it is installed but not on PATH.
    pub brew_off_path: Option<PathBuf>,
    /// Where downloads and files bound for system directories are put first.
    pub work: PathBuf,
    /// Kubernetes minor version (`v1.31`) whose package repository provides kubectl, so that
    /// kubectl stays within one minor version of the cluster.
    pub kube_minor: String,
    /// The exports helper built with this devenv (beside its binary), installed from there.
    pub exports_helper: PathBuf,
    /// The project's `[requires]` (empty outside a project).
    pub requires: Requires,
    /// The versions of the installed tools `[requires]` names, where they answered.
    pub versions: BTreeMap<String, Version>,
}

impl Facts {
    fn arch(&self) -> Arch {
        match self.cpu.as_str() {
            "x86_64" | "amd64" => Arch::X86_64,
            "arm64" | "aarch64" => Arch::Aarch64,
            _ => Arch::Other,
        }
    }

    fn os(&self) -> Os {
        match self.platform {
            Platform::MacOs => Os::MacOs,
            Platform::Other => Os::Other,
            _ => Os::Linux,
        }
    }

    fn has(&self, program: &str) -> bool {
        self.programs.contains(program)
    }

    /// Installed, and within `[requires]` when it names the tool and its version could be
    /// read (`doctor` reports one that cannot be).
    fn fits(&self, tool: Tool) -> bool {
        let Some(range) = tool.required(&self.requires) else {
            return self.has(tool.key());
        };
        self.has(tool.key())
            && self
                .versions
                .get(tool.key())
                .is_none_or(|v| requires::parse_range(range).is_ok_and(|range| range.matches(v)))
    }

    /// The exact version to install for `[requires]`, when its range has an upper bound.
    fn pinned(&self, tool: Tool) -> Option<Version> {
        requires::pinned(&requires::parse_range(tool.required(&self.requires)?).ok()?)
    }

    /// A tool that is installed but outside `[requires]`, for the plan's explanations.
    fn outside(&self, tool: Tool) -> Option<String> {
        let v = self.versions.get(tool.key())?;
        (!self.fits(tool)).then(|| {
            format!(
                " {tool} {v} is installed, and devenv.toml's [requires] {tool} is \"{}\".",
                tool.required(&self.requires).unwrap_or_default()
            )
        })
    }

    fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    fn work_file(&self, name: &str) -> String {
        self.work.join(name).to_string_lossy().into_owned()
    }
}

/// The platform as JSON names it (`debian`, `macos`).
fn platform_json<S: serde::Serializer>(p: &Platform, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

/// The whole plan, as shown and as printed by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    #[serde(serialize_with = "platform_json")]
    pub platform: Platform,
    pub cpu: String,
    pub os_version: Option<String>,
    pub driver: &'static str,
    /// What is already there and what is missing (programs and system packages).
    pub found: Vec<String>,
    pub missing: Vec<String>,
    pub steps: Vec<Step>,
    /// The exports helper and its sudoers rule: offered after the steps; installed only after
    /// its own yes (or `--exports-helper`).
    pub sudoers: Step,
    /// Runs once the steps are done.
    pub then: String,
    /// The command to run after onboarding.
    pub next: String,
}

/// One step of the plan: what, why, and the exact actions.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub id: &'static str,
    pub title: String,
    pub why: String,
    /// Some action runs as root through sudo.
    pub sudo: bool,
    /// devenv does not do this step itself: the plan stops here and says how.
    pub manual: bool,
    pub actions: Vec<Action>,
    /// What the user must know once the step has run (a new login, for instance).
    pub after: Option<String>,
}

impl Step {
    fn new(id: &'static str, title: impl Into<String>, why: impl Into<String>) -> Step {
        Step {
            id,
            title: title.into(),
            why: why.into(),
            sudo: false,
            manual: false,
            actions: Vec::new(),
            after: None,
        }
    }

    fn run(mut self, argv: &[&str]) -> Step {
        let sudo = argv.first() == Some(&"sudo");
        self.sudo |= sudo;
        self.actions.push(Action::Run {
            argv: argv.iter().map(|a| a.to_string()).collect(),
            sudo,
        });
        self
    }

    fn write(mut self, path: &str, contents: &str) -> Step {
        self.actions.push(Action::Write {
            path: PathBuf::from(path),
            contents: contents.to_string(),
        });
        self
    }

    fn manual(mut self, shell: &str) -> Step {
        self.manual = true;
        self.actions.push(Action::Manual {
            shell: shell.to_string(),
        });
        self
    }

    fn after(mut self, note: impl Into<String>) -> Step {
        self.after = Some(note.into());
        self
    }
}

/// One thing a step does.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// A program devenv runs, connected to the terminal (apt's progress, sudo's password prompt).
    Run { argv: Vec<String>, sudo: bool },
    /// A file devenv writes as the user, shown in full, before a `sudo install` moves it into a
    /// system directory (so no shell pipe into `sudo tee` is needed).
    Write { path: PathBuf, contents: String },
    /// A command line for the user to run.
    Manual { shell: String },
}

impl Action {
    fn display(&self) -> String {
        match self {
            Action::Run { argv, .. } => join(argv.iter().map(String::as_str)),
            Action::Write { path, .. } => format!("write {}", path.display()),
            Action::Manual { shell } => shell.clone(),
        }
    }
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let planning_only = args.change.dry_run || ctx.ui.json;
    let (plan, facts) = plan_for(&args, ctx, planning_only).await?;
    // As root, `id -un` names root and the groups are root's: the plan can be shown, not run.
    let as_root = facts.uid == Some(0);
    if as_root && !planning_only {
        return Err(Error::Usage {
            message: "devenv onboard runs as you, not as root".into(),
            help: "run `devenv onboard` without sudo: it runs the commands that need root with \
                   sudo itself, and says so before each one"
                .into(),
        });
    }

    if ctx.ui.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("the plan serialises")
        );
        return Ok(0);
    }
    crate::out!("{}", render(&plan, &ctx.ui));
    if as_root {
        crate::errln!(
            "{}: this plan is for root (you are running as root); run `devenv onboard` as \
             your own user for yours",
            ctx.ui.warn("warning")
        );
    }
    if args.change.dry_run {
        ctx.ui.say("");
        ctx.ui.say("Dry run: nothing was changed.");
        return Ok(0);
    }
    if let Some(step) = plan.steps.iter().find(|s| s.manual) {
        return Err(Error::Usage {
            message: format!("{}: devenv leaves this step to you", step.title),
            help: "do it as shown above, then run `devenv onboard` again".into(),
        });
    }

    let ui = &ctx.ui;
    let Some(sudoers) = confirm(&args, ctx, &plan)? else {
        ui.say("Nothing was changed.");
        return Ok(1);
    };
    let mut todo: Vec<&Step> = plan.steps.iter().collect();
    if sudoers {
        todo.push(&plan.sudoers);
    }
    if todo.is_empty() {
        ui.say("Nothing to install: everything devenv needs is already here.");
    } else {
        std::fs::create_dir_all(&facts.work).map_err(Error::io("create", &facts.work))?;
        run_steps(&todo, ctx).await?;
        ui.say("");
        ui.say(ui.ok(&format!("Done: {} step{}.", todo.len(), plural(todo.len()))));
        for note in todo.iter().filter_map(|s| s.after.as_deref()) {
            ui.say(format!("  note: {note}"));
        }
    }

    ui.say("");
    ui.say(ui.bold("==> devenv doctor"));
    let code = doctor::exec(doctor_defaults()?, ctx).await?;
    ui.say("");
    if code == 0 {
        ui.say(format!("Next: {}", plan.next));
    } else {
        ui.say(format!(
            "Next: fix what the doctor reports above (a group you were just added to only \
             applies after a new login), run `devenv doctor` again, then `{}`.",
            plan.next
        ));
    }
    Ok(code)
}

/// Probe the machine and build its plan. The project's devenv.toml, when there is one, gives
/// the driver (unless `--driver` does) and the Kubernetes version kubectl must match.
async fn plan_for(args: &Args, ctx: &Context, planning_only: bool) -> Result<(Plan, Facts), Error> {
    let platform = args.platform.unwrap_or(ctx.platform);
    if !matches!(
        platform,
        Platform::MacOs | Platform::Debian | Platform::Fedora
    ) {
        return Err(Error::Usage {
            message: format!(
                "devenv onboard knows Homebrew (macOS), apt (Debian, Ubuntu) and dnf (Fedora), \
                 not this system ({})",
                platform_name(platform)
            ),
            help: "install minikube, helm, kubectl, QEMU/KVM with libvirt and an NFS server with \
                   your package manager (docs/onboarding.md lists them), then run `devenv doctor`"
                .into(),
        });
    }
    // When nothing may change, even the probes go through a dry-run runner: only commands
    // marked read-only can run at all.
    let runner: Arc<dyn Runner> = if planning_only {
        Arc::new(DryRunRunner::new(ctx.runner.clone(), true))
    } else {
        ctx.runner.clone()
    };

    let config = ctx.load_config();
    let has_config = !matches!(config, Err(ConfigError::NotFound { .. }));
    let (project_driver, kube_version, required) = match &config {
        Ok(l) => (
            Some(l.config.vm.driver.clone()),
            l.config.vm.kubernetes_version.clone(),
            l.config.requires.clone(),
        ),
        Err(_) => (None, Vm::default().kubernetes_version, Requires::default()),
    };
    // kubectl's repository is one per minor version: the VM's, unless [requires] wants another.
    let kube_minor = required
        .kubectl
        .as_deref()
        .and_then(|r| requires::kubectl_minor(&requires::parse_range(r).ok()?, &kube_version))
        .or_else(|| kube_minor(&kube_version))
        .or_else(|| kube_minor(&Vm::default().kubernetes_version))
        .unwrap_or_else(|| "v1.31".to_string());
    let work = ctx.state_dir()?.root().join("onboard");
    let mut facts = probe(runner.clone(), platform, work, kube_minor).await?;
    for tool in Tool::PROGRAMS {
        if tool.required(&required).is_some() && facts.has(tool.key()) {
            let answer = runner
                .output(&probe_cmd(tool.key(), tool.version_args()))
                .await;
            if let Some(v) = answer.ok().and_then(|o| tool.read_version(&o.stdout)) {
                facts.versions.insert(tool.key().to_string(), v);
            }
        }
    }
    facts.requires = required;

    let requested = args
        .driver
        .clone()
        .or_else(|| project_driver.filter(|d| Choice::parse(d) != Choice::Auto));
    let driver = choose_driver(&facts, requested.as_deref())?;
    let next = if has_config {
        "devenv up"
    } else {
        "devenv init"
    };
    Ok((build_plan(&facts, driver, next), facts))
}

/// The two yeses: one for the plan (`--yes`, or asked on the terminal; without either onboard
/// refuses), then a separate one for the exports helper (`--exports-helper`, or asked). `None` when
/// the plan was declined; otherwise whether to install the helper.
fn confirm(args: &Args, ctx: &Context, plan: &Plan) -> Result<Option<bool>, Error> {
    if !plan.steps.is_empty() && !args.change.yes {
        if !ctx.interactive {
            return Err(Error::Usage {
                message: "devenv onboard asks before it changes anything, and there is no \
                          terminal to ask on: nothing was changed"
                    .into(),
                help: "read the plan above, then run `devenv onboard --yes` (add \
                       --exports-helper to install the exports helper and its sudoers rule too)"
                    .into(),
            });
        }
        let n = plan.steps.len();
        let question = if n == 1 {
            "Run this step?".to_string()
        } else {
            format!("Run these {n} steps?")
        };
        if !ask(&question)? {
            return Ok(None);
        }
    }
    let sudoers = if args.sudoers {
        true
    } else if ctx.interactive {
        ask(&format!(
            "Also install the exports helper and its sudoers rule shown above ({SUDOERS_PATH})?"
        ))?
    } else {
        ctx.ui.say(format!(
            "The exports helper and its sudoers rule are not installed (they need their own \
             yes): run `devenv onboard --exports-helper` to install them ({SUDOERS_PATH}); until \
             then sudo asks for your password when /etc/exports changes."
        ));
        false
    };
    Ok(Some(sudoers))
}

/// The doctor's arguments as if it had been run bare, whatever options it grows.
fn doctor_defaults() -> Result<doctor::Args, Error> {
    #[derive(Parser)]
    struct Bare {
        #[command(flatten)]
        args: doctor::Args,
    }
    Bare::try_parse_from(["devenv-doctor"])
        .map(|b| b.args)
        .map_err(|e| Error::Usage {
            message: format!("cannot run the doctor: {e}"),
            help: "run `devenv doctor` yourself".into(),
        })
}

/// Ask a yes/no question on the terminal; anything but y or yes is no.
fn ask(question: &str) -> Result<bool, Error> {
    let mut err = std::io::stderr();
    // The prompt is best effort: a closed stderr must not stop the answer being read.
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(Error::io("read", "standard input"))?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The driver to prepare: the one asked for (flag or devenv.toml) if it can run here, else the
/// best for this OS: kvm2 on Linux, vfkit on macOS 13 or later. hyperkit is only ever prepared
/// when asked for, because minikube deprecated it.
pub fn choose_driver(facts: &Facts, requested: Option<&str>) -> Result<&'static str, Error> {
    let os = facts.os();
    let arch = facts.arch();
    let macos_major = facts.macos_version.as_deref().and_then(macos_major);
    let too_old_for_vfkit = macos_major.is_some_and(|m| m < MIN_MACOS);
    let name = match requested {
        Some(name) => Registry::builtin().get(name)?.name(),
        None => match os {
            Os::MacOs => "vfkit",
            _ => "kvm2",
        },
    };
    let driver = Registry::builtin().get(name)?;
    if !driver.supports(os, arch) {
        if name == "hyperkit" && os == Os::MacOs {
            return Err(Error::Usage {
                message: format!(
                    "hyperkit runs only on Intel Macs, and this one has an {} CPU",
                    facts.cpu
                ),
                help: "use vfkit: run `devenv onboard` without --driver".into(),
            });
        }
        if name == "kvm2" && os == Os::Linux && arch == Arch::Aarch64 {
            return Err(Error::Usage {
                message: format!(
                    "minikube's kvm2 driver runs on x86_64 (amd64) only, and this machine has an {} CPU",
                    facts.cpu
                ),
                help: "devenv has no VM driver for Linux on ARM yet: use an x86_64 machine \
                       (minikube's qemu2 driver runs on ARM, but devenv does not drive it)"
                    .into(),
            });
        }
        if matches!(arch, Arch::Other) {
            return Err(Error::Usage {
                message: format!("the {name} driver does not run on a {} CPU", facts.cpu),
                help: "devenv's VM drivers run on x86_64 Linux and on macOS (x86_64 and Apple silicon)"
                    .into(),
            });
        }
        return Err(SelectError::Unsupported {
            name: name.to_string(),
            os,
        }
        .into());
    }
    if name == "vfkit" && too_old_for_vfkit {
        let version = facts.macos_version.as_deref().unwrap_or_default();
        let intel = if arch == Arch::X86_64 {
            "; on this Intel Mac, `devenv onboard --driver hyperkit` prepares the deprecated \
             hyperkit driver instead"
        } else {
            ""
        };
        return Err(Error::Usage {
            message: format!(
                "vfkit needs macOS {MIN_MACOS} or later, and this Mac runs macOS {version}"
            ),
            help: format!("upgrade macOS in System Settings > General > Software Update{intel}"),
        });
    }
    Ok(driver.name())
}

/// The plan for these facts and this driver.
pub fn build_plan(facts: &Facts, driver: &'static str, next: &str) -> Plan {
    let mut wanted: Vec<(String, bool)> = Vec::new();
    let mut steps = Vec::new();
    match facts.platform {
        Platform::MacOs => macos_steps(facts, driver, &mut wanted, &mut steps),
        Platform::Fedora => fedora_steps(facts, &mut wanted, &mut steps),
        _ => debian_steps(facts, &mut wanted, &mut steps),
    }
    let (found, missing): (Vec<_>, Vec<_>) = wanted.into_iter().partition(|(_, have)| *have);
    Plan {
        platform: facts.platform,
        cpu: facts.cpu.clone(),
        os_version: facts.macos_version.clone(),
        driver,
        found: found.into_iter().map(|(n, _)| n).collect(),
        missing: missing.into_iter().map(|(n, _)| n).collect(),
        steps,
        sudoers: sudoers_step(facts),
        then: "devenv doctor".to_string(),
        next: next.to_string(),
    }
}
