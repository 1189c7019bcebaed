//! `devenv up`: bring the environment to the state devenv.toml describes. It reads the machine
//! (driver health, `minikube status`, the VM's mounts, the exports file, the last applied
//! fingerprint), computes the plan, and runs it; `--dry-run` prints the plan instead. A second
//! `up` with nothing changed only reads and verifies.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use devenv_drivers::Choice;

use crate::config::{Loaded, Placement};
use crate::context::Context;
use crate::docker::build::ImageSpec;
use crate::error::Error;
use crate::execute::Executor;
use crate::export::Export;
use crate::fsutil::fnv1a;
use crate::machine::{self, Machine};
use crate::minikube::{self, VmState};
use crate::nfs::{self, apply::Privilege, apply::candidate};
use crate::plan::{ExportsFacts, Facts, ImageFacts, Plan};
use crate::probe::Probe;
use crate::reconcile::{self, Outcome, Reporter};

mod gather;
use gather::{Gathered, gather, read_ip};

/// Bring the local environment up: VM, NFS mount of the source, Helm release.
///
/// Runs the stages of the plan (preflight, exports, vm, mount, images, release, summary), independent
/// ones at the same time, and skips what is already in place: a second `up` with nothing
/// changed makes no changes. With --dry-run, prints every stage with the exact commands and file
/// edits instead, and changes nothing.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub change: super::change::Flags,
    /// Once everything is up, keep watching the source tree like `devenv watch`.
    #[arg(long, conflicts_with = "dry_run")]
    pub watch: bool,
    /// Delete and recreate the VM when its settings differ from [vm] (the cluster's contents
    /// are lost; the release is installed again). Asked first, unless --yes.
    #[arg(long)]
    pub recreate: bool,
    /// Show the run, then the environment, in the dashboard (`devenv ui`) and keep serving it
    /// until Ctrl-C.
    #[arg(long, conflicts_with = "dry_run")]
    pub ui: bool,
    /// With --ui: print the dashboard's address, do not open the browser.
    #[arg(long, requires = "ui")]
    pub no_open: bool,
    /// How long to wait for another devenv command working on this project.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub lock_timeout: u64,
    /// A service's new place (`devenv offload`): planned with it, and recorded in the state
    /// by the run once agreed to (a dry run records nothing).
    #[arg(skip)]
    pub toggle: Option<(String, Placement)>,
    /// With a toggle back to the laptop: delete the user's remote namespace once nothing of the
    /// project runs there (`devenv offload … --local --purge`).
    #[arg(skip)]
    pub purge_remote: bool,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let started = Instant::now();
    let loaded = ctx.load_config()?;
    let c = &loaded.config;
    let project = ctx.state_dir()?.project(&c.project.name, &loaded.root);
    // A mutating run holds the project's lock from the first read to the last write.
    let lock = if args.change.dry_run {
        None
    } else {
        let name = c.project.name.clone();
        let quiet = ctx.ui.quiet;
        Some(project.lock(Duration::from_secs(args.lock_timeout), |pid| {
            if !quiet {
                crate::errln!(
                    "waiting for another devenv command on project {name}{}…",
                    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                );
            }
        })?)
    };
    // Catch Ctrl-C once the lock is held (waiting for it stays interruptible): one pressed
    // while the machine is being read is kept and cancels the run as soon as it begins.
    let interrupt = if args.change.dry_run {
        None
    } else {
        crate::process::Interrupt::listen().ok()
    };
    let recorded = project.load()?;
    let mut state = recorded.clone();
    // A toggle is recorded with the rest of the run's state, once the run is agreed to.
    // Choosing the team's default again drops the override, so a later change of the default
    // reaches this developer too.
    if let Some((service, placement)) = &args.toggle {
        if c.services
            .get(service)
            .is_some_and(|s| s.offload == *placement)
        {
            state.offload.remove(service);
        } else {
            state.offload.insert(service.clone(), *placement);
        }
    }
    let placements: Vec<(String, Placement)> = c
        .services
        .iter()
        .map(|(name, s)| (name.clone(), state.placement(name, s)))
        .collect();

    let Gathered {
        facts,
        export,
        vm,
        fingerprint,
    } = gather(ctx, &loaded, &project, &state, &placements, &args).await?;
    let profile = c.project.profile();
    let driver = facts.driver;
    let recreate = facts.recreate;
    let release_unchanged = facts.release_unchanged;
    let plan = Plan::build(&loaded, &facts);

    if args.change.dry_run {
        return Ok(super::change::show(ctx, &plan));
    }
    super::change::confirm(ctx, &plan, args.change, "devenv up will:")?;

    let lock = lock.expect("a mutating run holds the lock");
    let changes_exports = matches!(&facts.exports.diff, Ok(d) if !d.is_empty())
        || facts.exports.awaits_vm_address && facts.exports.diff.is_ok()
        || facts.exports.reload_owed && facts.exports.diff.is_ok();
    if changes_exports && export.host.privilege != Privilege::Direct {
        crate::commands::exports::ask_sudo_once(ctx, &export.host).await?;
    }
    // Until the release succeeds again, nothing may be taken as already applied; and a remote
    // release this run may install is on record before it exists.
    let before = recorded;
    if !release_unchanged {
        state.applied_fingerprint = None;
    }
    // What this run may make, so that `down` can remove it even once devenv.toml is broken.
    state.footprint = Some(crate::commands::down::footprint(&loaded, &ctx.user));
    state.remote_releases.extend(
        placements
            .iter()
            .filter(|(_, p)| *p == Placement::Remote)
            .map(|(n, _)| n.clone()),
    );
    if state != before {
        project.save(&state, &lock)?;
    }
    let executor = Executor {
        driver: Some(driver),
        nfs: Some(export.host.clone()),
        ..Executor::new(
            ctx.runner.clone(),
            ctx.platform,
            &c.project.name,
            export.owner.uid,
        )
    };
    let screen = super::change::screen(ctx);
    // Kept for `devenv doctor --bundle`, whatever the screen showed.
    let mut reporters: Vec<Arc<dyn Reporter>> = vec![
        screen,
        Arc::new(crate::runlog::RunLog::create(project.path(), "up")),
    ];
    let dashboard = if args.ui {
        let live = Arc::new(super::ui::LiveRun::default());
        let dashboard = super::ui::start(ctx, &loaded, 0, Some(live.clone())).await?;
        dashboard.announce(ctx, !args.no_open).await;
        reporters.push(Arc::new(super::ui::LiveReporter {
            run: live,
            hub: dashboard.hub.clone(),
        }));
        Some(dashboard)
    } else {
        None
    };
    let result = super::change::run(&plan, &executor, reporters, interrupt).await;
    // What the stages did that the state records: the images built, by their context's hash.
    let mut recorded = false;
    for effect in result.effects() {
        match effect {
            reconcile::Effect::ImageBuilt { service, hash } => {
                state.images.insert(service.clone(), hash.clone());
                recorded = true;
            }
            reconcile::Effect::Left { .. } => {}
        }
    }
    if recorded {
        project.save(&state, &lock)?;
    }

    if result.ok() {
        state.applied_fingerprint = Some(fingerprint);
        // Every service back on the laptop had its remote release removed by this run.
        state.remote_releases = placements
            .iter()
            .filter(|(_, p)| *p == Placement::Remote)
            .map(|(n, _)| n.clone())
            .collect();
        project.save(&state, &lock)?;
        if !ctx.ui.json {
            let changed = result
                .stages
                .iter()
                .filter(|(_, o)| matches!(o, Outcome::Done(r) if r.changed))
                .count();
            ctx.ui.say(format!(
                "\n{} in {:.1}s ({changed} stage{} changed something)",
                ctx.ui.ok(&format!("{} is up", c.project.name)),
                started.elapsed().as_secs_f64(),
                if changed == 1 { "" } else { "s" }
            ));
            for (name, placement) in &placements {
                ctx.ui.say(format!(
                    "  {name:<12} {}",
                    match placement {
                        Placement::Local => "local",
                        Placement::Remote => "remote",
                    }
                ));
            }
            // The address read before the run holds unless this run started the VM.
            let ip = match vm.ip {
                Some(ip) if vm.state == Some(VmState::Running) && !recreate => Some(ip),
                _ => read_ip(ctx, &profile).await,
            };
            if let Some(ip) = ip {
                ctx.ui.say(format!(
                    "  VM {ip}: kubectl --context {profile} -n {} get pods",
                    c.project.namespace()
                ));
            }
            // How to reach what has an Ingress or a NodePort (`devenv urls` lists the rest).
            if let Ok(located) = crate::workloads::locate(&loaded, &ctx.user, &state, &[]) {
                let client = crate::cluster::client(&profile).await.ok();
                let vm = ip.map(std::net::IpAddr::V4);
                let reachable: Vec<_> =
                    crate::urls::gather(&located, client, c.project.namespace(), vm)
                        .await
                        .into_iter()
                        .filter(|s| !s.urls.is_empty())
                        .collect();
                if !reachable.is_empty() {
                    ctx.ui.say("  URLs (all of them: devenv urls):");
                    crate::commands::urls::print(ctx, &c.project.name, &reachable, vm).await;
                }
            }
        }
        if args.watch {
            // The watcher's `helm` action runs `up` again, which takes the project's lock.
            drop(lock);
            let watch = crate::commands::watch::Args {
                debounce: 100,
                once: false,
                max_batches: None,
                no_alerts: false,
            };
            return crate::commands::watch::exec(watch, ctx).await;
        }
        if let Some(d) = &dashboard {
            // The dashboard's actions run devenv commands, which take the project's lock.
            drop(lock);
            d.serve_until_interrupted(ctx).await;
        }
        return Ok(0);
    }
    let cancelled = result.stages.iter().any(|(_, o)| *o == Outcome::Cancelled);
    // A failed run stays on the dashboard until Ctrl-C; an interrupted one ends at once.
    if let Some(d) = dashboard.as_ref().filter(|_| !cancelled) {
        drop(lock);
        ctx.ui.say(
            ctx.ui
                .warn("the run failed: its stages are on the dashboard"),
        );
        d.serve_until_interrupted(ctx).await;
    }
    Err(super::change::failed(
        &result,
        "run `devenv up` again to continue from here (finished stages are checked and skipped); `devenv down --purge` undoes everything",
    ))
}
