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
//! The OS family comes from the context ([`Platform::detect`]). A hidden `--platform` flag
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
const SUDOERS_LINUX: &str = include_str!("../../templates/sudoers.linux");
const SUDOERS_MACOS: &str = include_str!("../../templates/sudoers.macos");
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
    /// Run the plan without asking (the exports helper still needs --exports-helper or its own
    /// yes).
    #[arg(short, long)]
    pub yes: bool,
    /// Print the plan and change nothing (read-only probes still run).
    #[arg(long)]
    pub dry_run: bool,
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

/// The whole plan, as shown and as printed by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
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
    let planning_only = args.dry_run || ctx.ui.json;
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
    if args.dry_run {
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
        run_steps(&todo, ctx.runner.as_ref(), ui).await?;
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
    if !plan.steps.is_empty() && !args.yes {
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

/// Run the steps in order, each command announced before it runs (root ones as such). The first
/// failure stops everything, and stderr says what was already done.
async fn run_steps(steps: &[&Step], runner: &dyn Runner, ui: &Ui) -> Result<(), Error> {
    let total = steps.len();
    for (i, step) in steps.iter().enumerate() {
        ui.say("");
        ui.say(ui.bold(&format!("[{}/{total}] {}", i + 1, step.title)));
        for (j, action) in step.actions.iter().enumerate() {
            if let Err(e) = run_action(action, runner, ui).await {
                report_stop(steps, i, j);
                return Err(e);
            }
        }
    }
    Ok(())
}

async fn run_action(action: &Action, runner: &dyn Runner, ui: &Ui) -> Result<(), Error> {
    match action {
        Action::Run { argv, sudo } => {
            let line = join(argv.iter().map(String::as_str));
            if *sudo {
                // Said even under --quiet: nothing runs as root unannounced.
                crate::outln!("  as root (sudo): {line}");
            } else {
                ui.say(format!("  $ {line}"));
            }
            let cmd = Cmd::new(&argv[0]).args(&argv[1..]).interactive();
            runner.run(&cmd).await?;
        }
        Action::Write { path, contents } => {
            ui.say(format!("  writing {}", path.display()));
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
            }
            std::fs::write(path, contents).map_err(Error::io("write", path))?;
        }
        Action::Manual { shell } => {
            return Err(Error::Usage {
                message: format!("this is for you to run: {shell}"),
                help: "then run `devenv onboard` again".into(),
            });
        }
    }
    Ok(())
}

/// Where onboarding stopped, what was already done and what was not, on stderr.
fn report_stop(steps: &[&Step], failed_step: usize, failed_action: usize) {
    let total = steps.len();
    let step = steps[failed_step];
    crate::errln!();
    crate::errln!(
        "onboarding stopped at step {} of {total} ({}).",
        failed_step + 1,
        step.title
    );
    let done_here = &step.actions[..failed_action];
    if failed_step == 0 && done_here.is_empty() {
        crate::errln!("nothing was done before it.");
    } else {
        crate::errln!("already done:");
        for (i, s) in steps[..failed_step].iter().enumerate() {
            crate::errln!("  {}. {}", i + 1, s.title);
        }
        for a in done_here {
            crate::errln!("  {}. (part of it) {}", failed_step + 1, a.display());
        }
    }
    let mut not_run = Vec::new();
    if failed_action + 1 < step.actions.len() {
        not_run.push(format!("the rest of step {}", failed_step + 1));
    }
    let rest: Vec<String> = (failed_step + 2..=total).map(|n| n.to_string()).collect();
    if !rest.is_empty() {
        not_run.push(format!("step{} {}", plural(rest.len()), rest.join(", ")));
    }
    if !not_run.is_empty() {
        crate::errln!("not run: {}", not_run.join(", "));
    }
    crate::errln!(
        "Fix the cause, then run `devenv onboard` again: it plans only what is still missing."
    );
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `v1.31.0` → `v1.31`; `None` for `stable`, `latest` and anything unreadable.
pub fn kube_minor(version: &str) -> Option<String> {
    let rest = version.trim().strip_prefix('v')?;
    let mut parts = rest.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    Some(format!("v{major}.{minor}"))
}

/// Ask the machine what the plan depends on. Every command here is read-only.
async fn probe(
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
fn built_exports_helper() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("devenv-exports-helper")))
        .unwrap_or_else(|| PathBuf::from("devenv-exports-helper"))
}

fn probe_cmd(program: &str, args: &[&str]) -> Cmd {
    Cmd::new(program)
        .args(args)
        .read_only()
        .timeout(PROBE_TIMEOUT)
}

/// The trimmed stdout of a probe that succeeded.
async fn answer(runner: &dyn Runner, program: &str, args: &[&str]) -> Option<String> {
    match runner.output(&probe_cmd(program, args)).await {
        Ok(out) if out.success() => Some(out.stdout.trim().to_string()),
        _ => None,
    }
}

/// The stdout of a probe whatever its exit code (dpkg-query and rpm report missing packages
/// through it); empty when it could not run.
async fn answer_any(runner: &dyn Runner, program: &str, args: &[&str]) -> String {
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

fn macos_steps(
    facts: &Facts,
    driver: &str,
    wanted: &mut Vec<(String, bool)>,
    steps: &mut Vec<Step>,
) {
    let hyperkit = driver == "hyperkit";
    wanted.push(("brew".into(), facts.has("brew")));
    let mut formulae = Vec::new();
    let mut upgrades = Vec::new();
    let mut pinned = Vec::new();
    for (tool, formula) in [
        (Tool::Minikube, "minikube"),
        (Tool::Helm, "helm"),
        (Tool::Kubectl, "kubernetes-cli"),
    ] {
        wanted.push((tool.key().to_string(), facts.fits(tool)));
        match (facts.fits(tool), facts.pinned(tool)) {
            (true, _) => {}
            // Homebrew has only its newest version of a formula.
            (false, Some(v)) => pinned.push((tool, v)),
            (false, None) if facts.has(tool.key()) => upgrades.push(formula),
            (false, None) => formulae.push(formula),
        }
    }
    wanted.push((driver.to_string(), facts.has(driver)));
    if !facts.has(driver) {
        formulae.push(driver);
    }
    let driver_binary = "docker-machine-driver-hyperkit";
    if hyperkit {
        wanted.push((driver_binary.into(), facts.has(driver_binary)));
    }

    if !facts.has("brew") {
        let step = match &facts.brew_off_path {
            Some(brew) => Step::new(
                "homebrew-path",
                "Put Homebrew on your PATH",
                format!(
                    "Homebrew is installed at {} but your shell does not find it, so neither \
                     would devenv nor the tools it installs. Add the line below to ~/.zprofile, \
                     open a new terminal and run `devenv onboard` again.",
                    brew.display()
                ),
            )
            .manual(&format!("eval \"$({} shellenv)\"", brew.display())),
            None => Step::new(
                "homebrew",
                "Install Homebrew",
                "devenv installs minikube, helm, kubectl and the VM driver with Homebrew, \
                 which is not installed. Its installer is a script piped into bash, so devenv \
                 leaves running it to you: run the line below (from https://brew.sh), follow \
                 what it prints at the end about your PATH, then run `devenv onboard` again.",
            )
            .manual(HOMEBREW_INSTALL),
        };
        steps.push(step);
    }

    if !formulae.is_empty() {
        let mut argv = vec!["brew", "install"];
        argv.extend(&formulae);
        let mut why = format!(
            "minikube runs the cluster, helm deploys the team's chart, kubectl talks to the \
             cluster, and {driver} is the VM driver{}. Homebrew installs them as you, without \
             sudo.",
            if hyperkit {
                ""
            } else {
                " on macOS 13 and later, on Apple silicon and Intel alike"
            }
        );
        if hyperkit && formulae.contains(&"hyperkit") {
            why.push_str(
                " hyperkit is deprecated: minikube 1.37 deprecated its driver and Homebrew \
                 disabled the formula in 2025, so brew may refuse it; then build it from \
                 https://github.com/moby/hyperkit, or better prepare vfkit (run `devenv \
                 onboard` without --driver).",
            );
        }
        steps.push(Step::new("brew", "Install the tools with Homebrew", why).run(&argv));
    }

    if !upgrades.is_empty() {
        let mut argv = vec!["brew", "upgrade"];
        argv.extend(&upgrades);
        steps.push(
            Step::new(
                "brew-upgrade",
                "Upgrade tools outside devenv.toml's [requires] with Homebrew",
                format!(
                    "The newest release of each fits devenv.toml's [requires].{}",
                    [Tool::Minikube, Tool::Helm, Tool::Kubectl]
                        .into_iter()
                        .filter_map(|t| facts.outside(t))
                        .collect::<String>()
                ),
            )
            .run(&argv),
        );
    }
    for (tool, version) in pinned {
        steps.push(pinned_release(facts, tool, &version));
    }

    if hyperkit && !facts.has(driver_binary) {
        let file = facts.work_file(driver_binary);
        let url = format!("{MINIKUBE_RELEASES}/{driver_binary}");
        let dest = format!("/usr/local/bin/{driver_binary}");
        steps.push(
            Step::new(
                "hyperkit-driver",
                "Install minikube's hyperkit driver",
                "minikube drives hyperkit through docker-machine-driver-hyperkit, which must be \
                 owned by root and setuid to create the VM's network interface, hence sudo.",
            )
            .run(&["curl", "-fL", "--create-dirs", "-o", &file, &url])
            .run(&[
                "sudo", "install", "-o", "root", "-g", "wheel", "-m", "4755", &file, &dest,
            ]),
        );
    }
}

fn debian_steps(facts: &Facts, wanted: &mut Vec<(String, bool)>, steps: &mut Vec<Step>) {
    for tool in Tool::PROGRAMS {
        wanted.push((tool.key().into(), facts.fits(tool)));
    }
    wanted.push(("curl".into(), facts.has("curl")));
    // A tool installed outside [requires] is installed again at a version within it, which
    // may be a downgrade; apt takes the version as a glob of the repository's releases.
    let helm = match facts.pinned(Tool::Helm) {
        Some(v) => format!("helm={}.{}.*", v.major, v.minor),
        None => "helm".to_string(),
    };
    let kubectl = match facts.outside(Tool::Kubectl) {
        Some(_) => format!("kubectl={}.*", facts.kube_minor.trim_start_matches('v')),
        None => "kubectl".to_string(),
    };
    let system = [
        "qemu-kvm",
        "libvirt-daemon-system",
        "libvirt-clients",
        "nfs-kernel-server",
    ];
    let mut apt: Vec<&str> = Vec::new();
    for package in system {
        let have = facts.packages.contains(package);
        wanted.push((package.into(), have));
        if !have {
            apt.push(package);
        }
    }

    if !facts.has("curl") {
        steps.push(
            Step::new(
                "curl",
                "Install curl",
                "The steps below download signing keys and minikube's package with curl.",
            )
            .run(&["sudo", "apt-get", "update"])
            .run(&[
                "sudo",
                "apt-get",
                "install",
                "-y",
                "curl",
                "ca-certificates",
            ]),
        );
    }
    if !facts.fits(Tool::Helm) {
        let key = facts.work_file("helm.asc");
        let list = facts.work_file("helm.list");
        let line = format!("deb [signed-by=/etc/apt/keyrings/helm.asc] {HELM_APT_REPO} any main\n");
        steps.push(
            Step::new(
                "helm-repository",
                "Add Helm's apt repository",
                "devenv deploys the team's chart with helm, which Debian and Ubuntu do not \
                 package. Helm's own signed apt repository is used rather than its install \
                 script: apt then checks the signature and upgrades helm with everything else, \
                 and no downloaded script runs as root.",
            )
            .run(&["curl", "-fsSL", "--create-dirs", "-o", &key, HELM_APT_KEY])
            .run(&[
                "sudo",
                "install",
                "-D",
                "-m",
                "0644",
                &key,
                "/etc/apt/keyrings/helm.asc",
            ])
            .write(&list, &line)
            .run(&[
                "sudo",
                "install",
                "-m",
                "0644",
                &list,
                "/etc/apt/sources.list.d/helm-stable-debian.list",
            ]),
        );
        apt.push(&helm);
    }
    if !facts.fits(Tool::Kubectl) {
        let minor = &facts.kube_minor;
        let base = format!("https://pkgs.k8s.io/core:/stable:/{minor}/deb/");
        let key = facts.work_file("kubernetes.asc");
        let list = facts.work_file("kubernetes.list");
        let line =
            format!("deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.asc] {base} /\n");
        steps.push(
            Step::new(
                "kubernetes-repository",
                format!("Add the Kubernetes apt repository ({minor})"),
                format!(
                    "kubectl comes from the Kubernetes project's own signed repository, one per \
                     minor version: {minor} matches vm.kubernetes_version, and kubectl must stay \
                     within one minor version of the cluster. (Without it, `minikube kubectl --` \
                     works by hand, but devenv needs kubectl on PATH.)"
                ),
            )
            .run(&[
                "curl",
                "-fsSL",
                "--create-dirs",
                "-o",
                &key,
                &format!("{base}Release.key"),
            ])
            .run(&[
                "sudo",
                "install",
                "-D",
                "-m",
                "0644",
                &key,
                "/etc/apt/keyrings/kubernetes-apt-keyring.asc",
            ])
            .write(&list, &line)
            .run(&[
                "sudo",
                "install",
                "-m",
                "0644",
                &list,
                "/etc/apt/sources.list.d/kubernetes.list",
            ]),
        );
        apt.push(&kubectl);
    }
    if !apt.is_empty() {
        let mut argv = vec!["sudo", "apt-get", "install", "-y"];
        if apt.iter().any(|p| p.contains('=')) {
            argv.push("--allow-downgrades");
        }
        argv.extend(&apt);
        let repos: Vec<&str> = ["helm", "kubectl"]
            .into_iter()
            .filter(|p| apt.iter().any(|a| a.split('=').next() == Some(p)))
            .collect();
        let mut why = "QEMU/KVM runs the VM, libvirt manages it for minikube's kvm2 driver, and \
                       nfs-kernel-server exports the source tree to it. Only what is missing is \
                       installed."
            .to_string();
        match repos.as_slice() {
            [] => {}
            [one] => why.push_str(&format!(" {one} comes from the repository added above.")),
            _ => why.push_str(" helm and kubectl come from the repositories added above."),
        }
        for tool in [Tool::Helm, Tool::Kubectl] {
            if let Some(outside) = facts.outside(tool) {
                why.push_str(&outside);
            }
        }
        steps.push(
            Step::new("apt", "Install the packages with apt", why)
                .run(&["sudo", "apt-get", "update"])
                .run(&argv),
        );
    }
    if !facts.fits(Tool::Minikube) {
        let arch = if facts.arch() == Arch::Aarch64 {
            "arm64"
        } else {
            "amd64"
        };
        let (name, url) = match facts.pinned(Tool::Minikube) {
            Some(v) => {
                let name = format!("minikube_{v}-0_{arch}.deb");
                let url = format!("{MINIKUBE_DOWNLOADS}/v{v}/{name}");
                (name, url)
            }
            None => {
                let name = format!("minikube_latest_{arch}.deb");
                let url = format!("{MINIKUBE_RELEASES}/{name}");
                (name, url)
            }
        };
        let file = facts.work_file(&name);
        steps.push(
            Step::new(
                "minikube",
                "Install minikube from its .deb",
                format!(
                    "minikube publishes a .deb with every release; Debian and Ubuntu do not \
                     package it. Current releases carry the kvm2 driver built in.{}",
                    requirement(facts, Tool::Minikube)
                ),
            )
            .run(&["curl", "-fL", "--create-dirs", "-o", &file, &url])
            .run(&["sudo", "dpkg", "-i", &file]),
        );
    }
    linux_access_steps(facts, steps);
}

fn fedora_steps(facts: &Facts, wanted: &mut Vec<(String, bool)>, steps: &mut Vec<Step>) {
    for tool in Tool::PROGRAMS {
        wanted.push((tool.key().into(), facts.fits(tool)));
    }
    let mut upgrade: Vec<&str> = Vec::new();
    // Fedora packages one helm, and kubectl's repository has the newest of its minor version:
    // a range with an upper bound is met from the projects' releases.
    for tool in [Tool::Helm, Tool::Kubectl] {
        if !facts.fits(tool)
            && let Some(v) = facts.pinned(tool)
        {
            steps.push(pinned_release(facts, tool, &v));
        }
    }
    let mut dnf: Vec<&str> = Vec::new();
    let mut virtualization = false;
    for package in ["libvirt-daemon", "qemu-kvm", "nfs-utils"] {
        let have = facts.packages.contains(package);
        wanted.push((package.into(), have));
        if !have && package != "nfs-utils" {
            virtualization = true;
        }
    }
    if virtualization {
        dnf.push("@virtualization");
    }
    if !facts.packages.contains("nfs-utils") {
        dnf.push("nfs-utils");
    }
    let from_dnf = |tool: Tool| !facts.fits(tool) && facts.pinned(tool).is_none();
    if from_dnf(Tool::Helm) {
        if facts.has("helm") {
            upgrade.push("helm");
        } else {
            dnf.push("helm");
        }
    }
    if from_dnf(Tool::Kubectl) {
        let minor = &facts.kube_minor;
        let base = format!("https://pkgs.k8s.io/core:/stable:/{minor}/rpm/");
        let file = facts.work_file("kubernetes.repo");
        let repo = format!(
            "[kubernetes]\nname=Kubernetes\nbaseurl={base}\nenabled=1\ngpgcheck=1\n\
             gpgkey={base}repodata/repomd.xml.key\n"
        );
        steps.push(
            Step::new(
                "kubernetes-repository",
                format!("Add the Kubernetes rpm repository ({minor})"),
                format!(
                    "kubectl comes from the Kubernetes project's own signed repository, one per \
                     minor version: {minor} matches vm.kubernetes_version, and kubectl must stay \
                     within one minor version of the cluster."
                ),
            )
            .write(&file, &repo)
            .run(&[
                "sudo",
                "install",
                "-m",
                "0644",
                &file,
                "/etc/yum.repos.d/kubernetes.repo",
            ]),
        );
        if facts.has("kubectl") {
            upgrade.push("kubectl");
        } else {
            dnf.push("kubectl");
        }
    }
    if !dnf.is_empty() {
        let mut argv = vec!["sudo", "dnf", "install", "-y"];
        argv.extend(&dnf);
        let mut why = "Fedora's virtualization group brings QEMU/KVM and libvirt for \
                       minikube's kvm2 driver, and nfs-utils the NFS server that exports the \
                       source tree. Only what is missing is installed."
            .to_string();
        if dnf.contains(&"helm") {
            why.push_str(" Fedora packages helm itself.");
        }
        if dnf.contains(&"kubectl") {
            why.push_str(" kubectl comes from the repository added above.");
        }
        steps.push(Step::new("dnf", "Install the packages with dnf", why).run(&argv));
    }
    if !upgrade.is_empty() {
        let mut argv = vec!["sudo", "dnf", "upgrade", "-y"];
        argv.extend(&upgrade);
        let why: String = [Tool::Helm, Tool::Kubectl]
            .into_iter()
            .filter_map(|t| facts.outside(t))
            .collect();
        steps.push(
            Step::new(
                "dnf-upgrade",
                "Upgrade tools outside devenv.toml's [requires] with dnf",
                format!("The newest release of each fits devenv.toml's [requires].{why}"),
            )
            .run(&argv),
        );
    }
    if !facts.fits(Tool::Minikube) {
        let arch = if facts.arch() == Arch::Aarch64 {
            "aarch64"
        } else {
            "x86_64"
        };
        let (name, url) = match facts.pinned(Tool::Minikube) {
            Some(v) => {
                let name = format!("minikube-{v}-0.{arch}.rpm");
                let url = format!("{MINIKUBE_DOWNLOADS}/v{v}/{name}");
                (name, url)
            }
            None => {
                let name = format!("minikube-latest.{arch}.rpm");
                let url = format!("{MINIKUBE_RELEASES}/{name}");
                (name, url)
            }
        };
        let file = facts.work_file(&name);
        steps.push(
            Step::new(
                "minikube",
                "Install minikube from its .rpm",
                format!(
                    "minikube publishes an rpm with every release; Fedora does not package it. \
                     Current releases carry the kvm2 driver built in.{}",
                    requirement(facts, Tool::Minikube)
                ),
            )
            .run(&["curl", "-fL", "--create-dirs", "-o", &file, &url])
            .run(&if facts.pinned(Tool::Minikube).is_some() {
                vec!["sudo", "rpm", "-Uvh", "--oldpackage", &file]
            } else {
                vec!["sudo", "rpm", "-Uvh", &file]
            }),
        );
    }
    linux_access_steps(facts, steps);
}

/// What `[requires]` asks of `tool`, for a step's explanation: empty when nothing.
fn requirement(facts: &Facts, tool: Tool) -> String {
    let Some(range) = tool.required(&facts.requires) else {
        return String::new();
    };
    let version = facts
        .pinned(tool)
        .map_or_else(|| "the newest release".to_string(), |v| v.to_string());
    format!(
        " devenv.toml's [requires] {tool} is \"{range}\": {version} is installed.{}",
        facts.outside(tool).unwrap_or_default()
    )
}

/// `tool` at exactly `version`, from its project's releases, for a range package managers cannot
/// meet: Homebrew has only the newest release, and so has minikube's `latest` channel.
fn pinned_release(facts: &Facts, tool: Tool, version: &Version) -> Step {
    let os = if facts.os() == Os::MacOs {
        "darwin"
    } else {
        "linux"
    };
    let cpu = if facts.arch() == Arch::Aarch64 {
        "arm64"
    } else {
        "amd64"
    };
    let why = format!(
        "devenv.toml's [requires] {tool} is \"{}\", and {version} is the lowest release within \
         it: it is installed from its project's release to /usr/local/bin.{}",
        tool.required(&facts.requires).unwrap_or_default(),
        facts.outside(tool).unwrap_or_default()
    );
    let step = Step::new(
        tool.key(),
        format!("Install {tool} {version} from its release"),
        why,
    );
    let dest = format!("/usr/local/bin/{tool}");
    // The release's file, and the program inside it when it is an archive.
    let (url, file, inside) = match tool {
        Tool::Minikube => (
            format!(
                "https://github.com/kubernetes/minikube/releases/download/v{version}/minikube-{os}-{cpu}"
            ),
            format!("minikube-{version}"),
            None,
        ),
        Tool::Kubectl => (
            format!("https://dl.k8s.io/release/v{version}/bin/{os}/{cpu}/kubectl"),
            format!("kubectl-{version}"),
            None,
        ),
        _ => (
            format!("https://get.helm.sh/helm-v{version}-{os}-{cpu}.tar.gz"),
            format!("helm-v{version}-{os}-{cpu}.tar.gz"),
            Some(format!("{os}-{cpu}/helm")),
        ),
    };
    let local = facts.work_file(&file);
    let step = step.run(&["curl", "-fL", "--create-dirs", "-o", &local, &url]);
    match inside {
        None => step.run(&["sudo", "install", "-m", "0755", &local, &dest]),
        Some(inside) => {
            let dir = facts.work_file(&format!("{tool}-{version}"));
            let program = format!("{dir}/{inside}");
            step.run(&["mkdir", "-p", &dir])
                .run(&["tar", "-xzf", &local, "-C", &dir, &inside])
                .run(&["sudo", "install", "-m", "0755", &program, &dest])
        }
    }
}

/// The libvirt group and the services, the same on every Linux family.
fn linux_access_steps(facts: &Facts, steps: &mut Vec<Step>) {
    // root reaches libvirtd without the group (doctor's kvm2 check says the same).
    let as_root = facts.uid == Some(0);
    if !as_root && !facts.in_group("libvirt") && !facts.in_group("libvirtd") {
        steps.push(
            Step::new(
                "libvirt-group",
                format!("Add {} to the libvirt group", facts.user),
                "libvirtd only accepts qemu:///system connections, which minikube's kvm2 \
                 driver makes, from members of the libvirt group.",
            )
            .run(&["sudo", "usermod", "-aG", "libvirt", &facts.user])
            .after(
                "the libvirt group applies from your next login: log out and back in (or run \
                 `newgrp libvirt` in this terminal) before `devenv up`",
            ),
        );
    }
    let units: Vec<&str> = ["libvirtd", "nfs-server"]
        .into_iter()
        .filter(|u| !facts.enabled_units.contains(*u))
        .collect();
    if !units.is_empty() {
        let mut argv = vec!["sudo", "systemctl", "enable", "--now"];
        argv.extend(&units);
        steps.push(
            Step::new(
                "services",
                format!("Start {} now and at every boot", units.join(" and ")),
                "libvirtd runs the VM and nfs-server serves the source tree to it. (Package \
                 installs often enable them already; enabling them again changes nothing.)",
            )
            .run(&argv),
        );
    }
}

/// The exports helper and its sudoers rule, offered separately: the rule is written as the
/// user and checked with visudo, the helper copied root-owned to the one path the rule names,
/// and only then the rule installed with the mode sudo requires.
fn sudoers_step(facts: &Facts) -> Step {
    let file = facts.work_file("sudoers");
    let check = ["sudo", "visudo", "-cf", file.as_str()];
    let install = ["sudo", "install", "-m", "0440", file.as_str(), SUDOERS_PATH];
    let macos = facts.platform == Platform::MacOs;
    let target = crate::nfs::helper::installed_path(macos);
    let source = facts.exports_helper.to_string_lossy().into_owned();
    let copy = [
        "sudo",
        "install",
        "-o",
        "root",
        "-g",
        "0",
        "-m",
        "0755",
        source.as_str(),
        target,
    ];
    let title = "Let devenv change its own /etc/exports block without a password prompt";
    let why = |who: &str| {
        format!(
            "`devenv up` and `devenv exports` change /etc/exports and reload the NFS server as \
             root. The exports helper does that for {who} after checking the request itself: \
             only a directory you own, only to one private address, always mapped to you \
             (docs/nfs.md). It is copied root-owned to {target}, outside any directory you can \
             write, and the sudoers rule lets {who} run that one program without a password, \
             and nothing else."
        )
    };
    if macos {
        // /Library/PrivilegedHelperTools exists, root-owned, on every Mac.
        return Step::new("sudoers", title, why("administrators"))
            .write(&file, SUDOERS_MACOS)
            .run(&check)
            .run(&copy)
            .run(&install);
    }
    let dir = std::path::Path::new(target)
        .parent()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut step = Step::new("sudoers", title, why("members of the group devenv"))
        .write(&file, SUDOERS_LINUX)
        .run(&check)
        .run(&[
            "sudo", "install", "-d", "-o", "root", "-g", "0", "-m", "0755", &dir,
        ])
        .run(&copy)
        .run(&["sudo", "groupadd", "-f", "devenv"]);
    if !facts.in_group("devenv") {
        step = step
            .run(&["sudo", "usermod", "-aG", "devenv", &facts.user])
            .after(
                "the devenv group applies from your next login: until then sudo still asks \
                 for your password",
            );
    }
    step.run(&install)
}

fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::MacOs => "macOS",
        Platform::Debian => "Debian/Ubuntu",
        Platform::Fedora => "Fedora",
        Platform::Arch => "Arch Linux",
        Platform::OtherLinux => "a Linux without apt or dnf",
        Platform::Other => "an OS other than Linux and macOS",
    }
}

/// The plan as the developer reads it: every step with its reason and exact commands, files
/// shown in full, then the separate sudoers offer.
pub fn render(plan: &Plan, ui: &Ui) -> String {
    let mut out = String::new();
    let system = match (plan.platform, plan.os_version.as_deref()) {
        (Platform::MacOs, version) => {
            let cpu = match plan.cpu.as_str() {
                "arm64" | "aarch64" => "Apple silicon",
                "x86_64" => "Intel",
                _ => "unknown CPU",
            };
            format!(
                "macOS {} on {} ({cpu})",
                version.unwrap_or("(version unknown)"),
                plan.cpu
            )
        }
        (p, _) => format!("{} on {}", platform_name(p), plan.cpu),
    };
    out.push_str(&ui.bold("devenv onboard: this machine"));
    out.push('\n');
    out.push_str(&format!("  system:  {system}\n"));
    out.push_str(&format!("  driver:  {}\n", plan.driver));
    let list = |names: &[String]| {
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    };
    out.push_str(&format!("  found:   {}\n", list(&plan.found)));
    out.push_str(&format!("  missing: {}\n", list(&plan.missing)));
    out.push('\n');

    if plan.steps.is_empty() {
        out.push_str("Plan: nothing to install.\n");
    } else {
        let n = plan.steps.len();
        out.push_str(&ui.bold(&format!("Plan: {n} step{}", plural(n))));
        if plan.steps.iter().any(|s| s.sudo) {
            out.push_str(
                " (those marked [sudo] run commands as root with sudo, which may ask for your \
                 password)",
            );
        }
        out.push('\n');
        for (i, step) in plan.steps.iter().enumerate() {
            out.push('\n');
            render_step(&mut out, &format!("{}.", i + 1), step, ui);
        }
    }
    out.push('\n');
    out.push_str(&ui.bold("Offered separately, only after its own yes (or --exports-helper):"));
    out.push('\n');
    render_step(&mut out, "-", &plan.sudoers, ui);
    out.push('\n');
    out.push_str(&format!(
        "Then `{}` checks the result, and the next command is `{}`.\n",
        plan.then, plan.next
    ));
    out
}

fn render_step(out: &mut String, label: &str, step: &Step, ui: &Ui) {
    let mut title = format!("{label} {}", step.title);
    if step.sudo {
        title.push_str("  [sudo]");
    }
    if step.manual {
        title.push_str("  [yours to do]");
    }
    out.push_str(&ui.bold(&title));
    out.push('\n');
    out.push_str(&wrap(&step.why, "   "));
    for action in &step.actions {
        match action {
            Action::Run { argv, .. } => {
                out.push_str(&format!("   $ {}\n", join(argv.iter().map(String::as_str))));
            }
            Action::Write { path, contents } => {
                out.push_str(&format!("   write {}:\n", path.display()));
                for line in contents.lines() {
                    out.push_str(&format!("     | {line}\n"));
                }
            }
            Action::Manual { shell } => {
                out.push_str(&format!("   you run: {shell}\n"));
            }
        }
    }
    if let Some(after) = &step.after {
        out.push_str(&wrap(&format!("afterwards: {after}"), "   "));
    }
}

/// Wrap `text` at [`WIDTH`] columns, each line starting with `indent`.
fn wrap(text: &str, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > WIDTH {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(platform: Platform, cpu: &str) -> Facts {
        Facts {
            platform,
            cpu: cpu.to_string(),
            macos_version: (platform == Platform::MacOs).then(|| "14.5".to_string()),
            uid: Some(1000),
            user: "ann".to_string(),
            groups: vec!["ann".to_string()],
            programs: BTreeSet::new(),
            packages: BTreeSet::new(),
            enabled_units: BTreeSet::new(),
            brew_off_path: None,
            work: PathBuf::from("/w"),
            kube_minor: "v1.31".to_string(),
            exports_helper: PathBuf::from("/b/devenv-exports-helper"),
            requires: Requires::default(),
            versions: BTreeMap::new(),
        }
    }

    fn argvs(plan: &Plan) -> Vec<String> {
        plan.steps
            .iter()
            .flat_map(|s| &s.actions)
            .filter_map(|a| match a {
                Action::Run { .. } => Some(a.display()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn kube_minor_keeps_major_and_minor() {
        assert_eq!(kube_minor("v1.31.0").as_deref(), Some("v1.31"));
        assert_eq!(kube_minor("v1.34.2").as_deref(), Some("v1.34"));
        assert_eq!(kube_minor("stable"), None);
        assert_eq!(kube_minor("1.31.0"), None);
    }

    #[test]
    fn dpkg_query_output_counts_only_installed_packages() {
        let out = "libvirt-clients ii \nnfs-kernel-server rc \n";
        assert_eq!(parse_dpkg_query(out), vec!["libvirt-clients"]);
    }

    #[test]
    fn rpm_query_output_skips_the_not_installed_lines() {
        let out = "libvirt-daemon\npackage qemu-kvm is not installed\nnfs-utils\n";
        assert_eq!(
            parse_rpm_query(out, &["libvirt-daemon", "qemu-kvm", "nfs-utils"]),
            vec!["libvirt-daemon", "nfs-utils"]
        );
    }

    #[test]
    fn static_and_alias_units_count_as_enabled() {
        assert!(unit_enabled("enabled\n"));
        assert!(unit_enabled("alias"));
        assert!(!unit_enabled("disabled"));
        assert!(!unit_enabled(""));
    }

    #[test]
    fn linux_gets_kvm2_and_macos_gets_vfkit() {
        assert_eq!(
            choose_driver(&facts(Platform::Debian, "x86_64"), None).unwrap(),
            "kvm2"
        );
        assert_eq!(
            choose_driver(&facts(Platform::MacOs, "arm64"), None).unwrap(),
            "vfkit"
        );
    }

    #[test]
    fn hyperkit_is_only_for_intel_macs() {
        let intel = facts(Platform::MacOs, "x86_64");
        assert_eq!(choose_driver(&intel, Some("hyperkit")).unwrap(), "hyperkit");
        let err = choose_driver(&facts(Platform::MacOs, "arm64"), Some("hyperkit")).unwrap_err();
        assert!(err.to_string().contains("only on Intel Macs"), "{err}");
    }

    #[test]
    fn vfkit_on_macos_12_is_refused_with_the_upgrade() {
        let mut old = facts(Platform::MacOs, "x86_64");
        old.macos_version = Some("12.7.6".to_string());
        let err = choose_driver(&old, None).unwrap_err();
        assert!(err.to_string().contains("macOS 13 or later"), "{err}");
        assert!(err.help().unwrap().contains("--driver hyperkit"));
    }

    #[test]
    fn virtualbox_is_refused_by_the_registry() {
        let err = choose_driver(&facts(Platform::Debian, "x86_64"), Some("virtualbox"));
        assert!(matches!(
            err,
            Err(Error::Driver(SelectError::Refused { .. }))
        ));
    }

    #[test]
    fn debian_installs_only_the_missing_packages() {
        let mut f = facts(Platform::Debian, "x86_64");
        f.programs.extend(["curl".to_string(), "helm".to_string()]);
        f.packages
            .extend(["libvirt-clients".to_string(), "qemu-kvm".to_string()]);
        let plan = build_plan(&f, "kvm2", "devenv init");
        let cmds = argvs(&plan);
        assert!(
            cmds.contains(
                &"sudo apt-get install -y libvirt-daemon-system nfs-kernel-server kubectl"
                    .to_string()
            ),
            "{cmds:#?}"
        );
        assert!(!plan.steps.iter().any(|s| s.id == "helm-repository"));
        assert!(!plan.steps.iter().any(|s| s.id == "curl"));
    }

    /// `f` with every tool installed at `versions` and `[requires]` set by `edit`.
    fn installed(mut f: Facts, versions: &[(&str, &str)], edit: impl Fn(&mut Requires)) -> Facts {
        for (tool, v) in versions {
            f.programs.insert(tool.to_string());
            f.versions
                .insert(tool.to_string(), requires::loose(v).unwrap());
        }
        f.programs.insert("curl".into());
        edit(&mut f.requires);
        f
    }

    #[test]
    fn tools_within_requires_are_left_alone() {
        let f = installed(
            facts(Platform::Debian, "x86_64"),
            &[
                ("minikube", "1.35.0"),
                ("helm", "3.17.2"),
                ("kubectl", "1.31.4"),
            ],
            |r| {
                r.minikube = Some(">=1.33".into());
                r.helm = Some(">=3.14, <4".into());
                r.kubectl = Some("~1.31".into());
            },
        );
        let plan = build_plan(&f, "kvm2", "devenv up");
        let cmds = argvs(&plan).join("\n");
        assert!(!cmds.contains("minikube"), "{cmds}");
        assert!(!cmds.contains("helm"), "{cmds}");
        assert!(!cmds.contains("kubectl"), "{cmds}");
    }

    #[test]
    fn debian_installs_the_versions_requires_pins_with_apt_and_minikubes_release() {
        let f = installed(
            facts(Platform::Debian, "x86_64"),
            &[
                ("minikube", "1.38.1"),
                ("helm", "4.1.4"),
                ("kubectl", "1.33.1"),
            ],
            |r| {
                r.minikube = Some(">=1.34, <1.36".into());
                r.helm = Some(">=3.14, <4".into());
                r.kubectl = Some("<1.32".into());
            },
        );
        let plan = build_plan(&f, "kvm2", "devenv up");
        let cmds = argvs(&plan);
        assert!(
            cmds.contains(
                &"sudo apt-get install -y --allow-downgrades qemu-kvm libvirt-daemon-system libvirt-clients nfs-kernel-server 'helm=3.14.*' 'kubectl=1.31.*'".into()
            ),
            "{cmds:#?}"
        );
        assert!(plan.steps.iter().any(|s| s.id == "helm-repository"));
        assert!(
            cmds.contains(&"curl -fL --create-dirs -o /w/minikube_1.34.0-0_amd64.deb https://github.com/kubernetes/minikube/releases/download/v1.34.0/minikube_1.34.0-0_amd64.deb".into()),
            "{cmds:#?}"
        );
        let apt = plan.steps.iter().find(|s| s.id == "apt").unwrap();
        assert!(
            apt.why.contains(
                "helm 4.1.4 is installed, and devenv.toml's [requires] helm is \">=3.14, <4\"."
            ),
            "{}",
            apt.why
        );
        assert_eq!(plan.missing[..3], ["minikube", "helm", "kubectl"]);
    }

    #[test]
    fn homebrew_upgrades_to_its_newest_or_a_pinned_release_is_downloaded() {
        let f = installed(
            facts(Platform::MacOs, "arm64"),
            &[
                ("minikube", "1.30.1"),
                ("helm", "3.12.0"),
                ("kubectl", "1.31.0"),
            ],
            |r| {
                r.minikube = Some(">=1.33".into());
                r.helm = Some("~3.17.2".into());
            },
        );
        let mut f = f;
        f.programs.extend(["brew".to_string(), "vfkit".to_string()]);
        let plan = build_plan(&f, "vfkit", "devenv up");
        let cmds = argvs(&plan);
        assert!(cmds.contains(&"brew upgrade minikube".into()), "{cmds:#?}");
        assert!(
            cmds.contains(&"curl -fL --create-dirs -o /w/helm-v3.17.2-darwin-arm64.tar.gz https://get.helm.sh/helm-v3.17.2-darwin-arm64.tar.gz".into()),
            "{cmds:#?}"
        );
        assert!(
            cmds.contains(
                &"sudo install -m 0755 /w/helm-3.17.2/darwin-arm64/helm /usr/local/bin/helm".into()
            ),
            "{cmds:#?}"
        );
        assert!(
            !cmds.iter().any(|c| c.starts_with("brew install")),
            "{cmds:#?}"
        );
    }

    #[test]
    fn fedora_takes_a_pinned_helm_from_its_release_not_from_dnf() {
        let mut f = facts(Platform::Fedora, "x86_64");
        f.requires.helm = Some("=3.16.4".into());
        f.requires.minikube = Some("~1.35".into());
        let plan = build_plan(&f, "kvm2", "devenv up");
        let cmds = argvs(&plan);
        assert!(
            cmds.iter()
                .any(|c| c.ends_with("https://get.helm.sh/helm-v3.16.4-linux-amd64.tar.gz")),
            "{cmds:#?}"
        );
        let dnf = cmds
            .iter()
            .find(|c| c.starts_with("sudo dnf install"))
            .unwrap();
        assert!(!dnf.contains("helm"), "{dnf}");
        assert!(
            cmds.iter()
                .any(|c| c.ends_with("/v1.35.0/minikube-1.35.0-0.x86_64.rpm")),
            "{cmds:#?}"
        );
    }

    #[test]
    fn arm64_linux_gets_the_arm64_packages_of_minikube() {
        let deb = build_plan(&facts(Platform::Debian, "aarch64"), "kvm2", "devenv up");
        assert!(argvs(&deb).contains(&"sudo dpkg -i /w/minikube_latest_arm64.deb".to_string()));
        let rpm = build_plan(&facts(Platform::Fedora, "aarch64"), "kvm2", "devenv up");
        assert!(argvs(&rpm).contains(&"sudo rpm -Uvh /w/minikube-latest.aarch64.rpm".to_string()));
    }

    #[test]
    fn a_member_of_libvirt_is_not_added_again() {
        let mut f = facts(Platform::Fedora, "x86_64");
        f.groups.push("libvirt".to_string());
        f.enabled_units.insert("libvirtd".to_string());
        let plan = build_plan(&f, "kvm2", "devenv up");
        let cmds = argvs(&plan);
        assert!(!cmds.iter().any(|c| c.contains("usermod -aG libvirt")));
        assert!(cmds.contains(&"sudo systemctl enable --now nfs-server".to_string()));
    }

    #[test]
    fn root_is_not_added_to_the_libvirt_group() {
        let mut f = facts(Platform::Debian, "x86_64");
        f.uid = Some(0);
        let plan = build_plan(&f, "kvm2", "devenv up");
        assert!(
            !argvs(&plan)
                .iter()
                .any(|c| c.contains("usermod -aG libvirt"))
        );
    }

    #[test]
    fn nothing_missing_means_no_steps() {
        let mut f = facts(Platform::MacOs, "arm64");
        f.programs.extend(
            ["brew", "minikube", "helm", "kubectl", "vfkit"]
                .iter()
                .map(|s| s.to_string()),
        );
        let plan = build_plan(&f, "vfkit", "devenv up");
        assert!(plan.steps.is_empty());
        assert!(plan.missing.is_empty());
    }

    #[test]
    fn homebrew_off_path_is_a_step_for_the_user() {
        let mut f = facts(Platform::MacOs, "arm64");
        f.brew_off_path = Some(PathBuf::from("/opt/homebrew/bin/brew"));
        let plan = build_plan(&f, "vfkit", "devenv up");
        assert!(plan.steps[0].manual);
        assert_eq!(
            plan.steps[0].actions[0].display(),
            "eval \"$(/opt/homebrew/bin/brew shellenv)\""
        );
    }

    #[test]
    fn every_sudo_command_is_marked_and_its_step_too() {
        let plan = build_plan(&facts(Platform::Debian, "x86_64"), "kvm2", "devenv up");
        for step in plan.steps.iter().chain([&plan.sudoers]) {
            let any_sudo = step
                .actions
                .iter()
                .any(|a| matches!(a, Action::Run { argv, sudo } if *sudo && argv[0] == "sudo"));
            assert_eq!(step.sudo, any_sudo, "{}", step.title);
            for a in &step.actions {
                if let Action::Run { argv, sudo } = a {
                    assert_eq!(*sudo, argv[0] == "sudo");
                }
            }
        }
    }

    #[test]
    fn the_sudoers_snippet_is_checked_before_it_is_installed() {
        let plan = build_plan(&facts(Platform::Debian, "x86_64"), "kvm2", "devenv up");
        let shown: Vec<String> = plan.sudoers.actions.iter().map(Action::display).collect();
        let check = shown.iter().position(|c| c.starts_with("sudo visudo -cf"));
        let install = shown
            .iter()
            .position(|c| c.ends_with("/etc/sudoers.d/devenv"));
        assert!(check.unwrap() < install.unwrap(), "{shown:#?}");
        assert!(
            matches!(&plan.sudoers.actions[0], Action::Write { contents, .. } if contents == SUDOERS_LINUX)
        );
    }

    #[test]
    fn wrap_keeps_lines_within_the_width() {
        let text = "word ".repeat(60);
        for line in wrap(&text, "   ").lines() {
            assert!(line.len() <= WIDTH, "{line}");
            assert!(line.starts_with("   word"));
        }
    }
}
