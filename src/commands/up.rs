//! `devenv up`: bring the environment to the state devenv.toml describes. It reads the machine
//! (driver health, `minikube status`, the VM's mounts, the exports file, the last applied
//! fingerprint), computes the plan, and runs it; `--dry-run` prints the plan instead. A second
//! `up` with nothing changed only reads and verifies.

use crate::diagnostic::codes;
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
use crate::reconcile::{self, JsonReporter, Outcome, PlainReporter, Reporter};

/// Bring the local environment up: VM, NFS mount of the source, Helm release.
///
/// Runs the stages of the plan (preflight, exports, vm, mount, images, release, summary), independent
/// ones at the same time, and skips what is already in place: a second `up` with nothing
/// changed makes no changes. With --dry-run, prints every stage with the exact commands and file
/// edits instead, and changes nothing.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the plan (stages, commands, file edits) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Once everything is up, keep watching the source tree like `devenv watch`.
    #[arg(long, conflicts_with = "dry_run")]
    pub watch: bool,
    /// Delete and recreate the VM when its settings differ from [vm] (the cluster's contents
    /// are lost; the release is installed again).
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
    /// A toggle not recorded yet, planned as if it were (`devenv offload … --dry-run`).
    #[arg(skip)]
    pub toggle: Option<(String, Placement)>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let started = Instant::now();
    let loaded = ctx.load_config()?;
    let c = &loaded.config;
    let project = ctx.state_dir()?.project(&c.project.name, &loaded.root);
    // A mutating run holds the project's lock from the first read to the last write.
    let lock = if args.dry_run {
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
    let mut interrupt = if args.dry_run {
        None
    } else {
        crate::process::Interrupt::listen().ok()
    };
    let mut state = project.load()?;
    if let Some((service, placement)) = &args.toggle {
        state.offload.insert(service.clone(), *placement);
    }
    let placements: Vec<(String, Placement)> = c
        .services
        .iter()
        .map(|(name, s)| (name.clone(), state.placement(name, s)))
        .collect();

    let profile = c.project.profile();
    // A mutating run reads the probe with the mounts: a VM that already serves the tree is
    // then checked in the same SSH session. A dry run writes nothing, not even a probe.
    let probe = if args.dry_run {
        None
    } else {
        loaded
            .source_dir()
            .canonicalize()
            .ok()
            .and_then(|dir| Probe::write(&dir, &c.mount.target).ok())
    };
    let vm = read_vm(ctx, &profile, probe.as_ref()).await;
    drop(probe);
    // A running VM shows its driver works: skip the health probes (libvirt's can take seconds),
    // which keeps a no-op `up` fast.
    let choice = Choice::parse(&c.vm.driver);
    let stored_driver = vm.settings.as_ref().map(|s| s.driver.clone());
    let (driver, driver_failure) = if vm.state == Some(VmState::Running) {
        let driver = match vm.settings.as_ref().map(|s| s.driver.as_str()) {
            Some(name) if choice == Choice::Auto => {
                machine::driver_for(&Choice::Named(name.into()))
                    .or_else(|_| machine::driver_for(&choice))?
            }
            _ => machine::driver_for(&choice)?,
        };
        (driver, None)
    } else {
        let host = Machine::probe(ctx.runner.clone())
            .await
            .with_root(ctx.host_root.clone());
        // `auto` keeps the driver a stopped profile was created with.
        let choice = match (&choice, &stored_driver) {
            (Choice::Auto, Some(name))
                if machine::driver_for(&Choice::Named(name.clone())).is_ok() =>
            {
                Choice::Named(name.clone())
            }
            _ => choice.clone(),
        };
        let (driver, status) = machine::select_driver(&host, &choice).await?;
        let failure = status
            .first_failure()
            .map(|f| (f.reason.clone(), f.fix.clone()));
        (driver, failure)
    };

    let export = Export::at_address(ctx, &loaded, vm.ip)?;
    let change = export.set();
    let diff = nfs::read_exports(&export.host.exports)
        .map_err(|e| format!("cannot read {}: {e}", export.host.exports.display()))
        .and_then(|current| {
            let current = current.unwrap_or_default();
            candidate(
                &current,
                &export.host,
                &export.project,
                export.owner.uid,
                &change,
            )
            .map(|after| nfs::diff(&current, &after))
            .map_err(|e| e.to_string())
        });

    let vm_driver_mismatch = match (&vm.state, &stored_driver) {
        (Some(VmState::Stopped), Some(stored)) if stored != driver.name() => Some(stored.clone()),
        _ => None,
    };
    let vm_drift = match (&vm.state, &vm.settings) {
        (Some(VmState::Running), Some(s)) => minikube::drift(s, driver, &c.vm),
        _ => Vec::new(),
    };
    let recreate = args.recreate && !vm_drift.is_empty();
    let mounted = !recreate
        && vm.proc_mounts.as_deref().is_some_and(|m| {
            minikube::has_nfs_mount(m, &export.source.to_string_lossy(), &c.mount.target)
        });
    // Another checkout with the same [project] name (a second clone, a worktree) already has
    // its tree mounted in this profile's VM: taking the profile over would rewrite its export
    // and fail at the mount. A source that no longer exists is a moved checkout: no conflict.
    let other_checkout = (!recreate)
        .then_some(vm.proc_mounts.as_deref())
        .flatten()
        .and_then(|m| {
            minikube::parse_mounts(m).into_iter().find_map(|m| {
                let (_, path) = m.device.split_once(':')?;
                let path = std::path::PathBuf::from(path);
                (m.point == c.mount.target
                    && m.fstype.starts_with("nfs")
                    && path != export.source
                    && path.is_dir())
                .then_some(path)
            })
        });
    let bridged = if vm.state == Some(VmState::Running) && c.remote.is_some() {
        read_bridges(&profile, c.project.namespace()).await
    } else {
        Vec::new()
    };
    let remote_releases = state
        .remote_releases
        .iter()
        .filter(|name| c.services.contains_key(*name))
        .cloned()
        .collect();
    // Only when something is to be sent to the remote cluster: a pin that refuses its context
    // must not stop a project that runs everything locally.
    let remote_used = placements.iter().any(|(_, p)| *p == Placement::Remote)
        || !state.remote_releases.is_empty();
    let remote_refusal = c
        .remote
        .as_ref()
        .filter(|_| remote_used)
        .and_then(|r| crate::offload::allowed_server(r).err());
    let images = read_images(&loaded, &placements, &state, &vm.state, recreate);
    let overlay_file = project.path().join("values-overlay.json");
    let image_hashes: Vec<(&str, &str)> = images
        .iter()
        .filter_map(|i| Some((i.service.as_str(), i.spec.as_ref().ok()?.hash.as_str())))
        .collect();
    let fingerprint = release_fingerprint(&loaded, &placements, &profile, &image_hashes);
    let release_unchanged = !recreate
        && vm.state == Some(VmState::Running)
        && mounted
        && state.applied_fingerprint.as_deref() == Some(fingerprint.as_str());
    let version_mismatches = crate::requires::mismatches(
        ctx.runner.as_ref(),
        &c.requires,
        ctx.platform,
        c.remote
            .as_ref()
            .filter(|_| remote_used && remote_refusal.is_none())
            .map(|r| r.context.as_str()),
    )
    .await;
    let facts = Facts {
        version_mismatches,
        remote_refusal,
        host: machine::resources(ctx.host_root.as_deref()),
        driver,
        driver_failure: driver_failure.as_ref().map(|(reason, fix)| {
            format!(
                "{reason}{}",
                fix.as_ref()
                    .map(|x| format!(" (fix: {x})"))
                    .unwrap_or_default()
            )
        }),
        placements: placements.clone(),
        exports: ExportsFacts {
            file: export.host.exports.clone(),
            source: export.source.clone(),
            lines: export.lines.clone(),
            client: export.client,
            grant: Some(export.grant.clone()),
            // A recreated VM may come back on another subnet.
            awaits_vm_address: export.awaits_vm_address
                || (recreate && c.mount.export_client.is_none()),
            diff,
            sudo: export.host.privilege == Privilege::Sudo,
            reload: export.host.reload.clone(),
            reload_owed: export.host.reload_owed(),
        },
        vm_state: vm.state.clone(),
        vm_ip: vm.ip,
        vm_drift,
        vm_driver_mismatch,
        other_checkout,
        recreate,
        mounted,
        mount_probed: mounted && vm.probed,
        overlay_file,
        probe_dir: loaded
            .source_dir()
            .canonicalize()
            .unwrap_or_else(|_| loaded.source_dir()),
        remote_values: placements
            .iter()
            .filter(|(_, p)| *p == Placement::Remote)
            .map(|(name, _)| {
                let key = c.services[name].values_key.clone().unwrap_or_default();
                let mut files = vec![loaded.chart_dir().join("values.yaml")];
                files.extend(c.project.values.iter().map(|v| loaded.root.join(v)));
                let values =
                    crate::offload::subchart_values(&files, &key).map_err(|e| e.to_string());
                (name.clone(), values)
            })
            .collect(),
        release_unchanged,
        user: ctx.user.clone(),
        bridged,
        remote_releases,
        state_dir: project.path().to_path_buf(),
        tunnel_running: crate::offload::tunnel::Files::new(project.path())
            .running()
            .is_some(),
        images: images.clone(),
    };
    let plan = Plan::build(&loaded, &facts);

    if args.dry_run {
        // A run would stop at these: the dry run says so and exits 1, as the run would.
        let stops = plan.known_failures(ctx.platform);
        if ctx.ui.json {
            let mut json = plan.to_json();
            json["would_stop"] = stops
                .iter()
                .map(|(stage, message)| serde_json::json!({"stage": stage, "error": message}))
                .collect();
            crate::outln!("{json}");
        } else {
            crate::out!("{}", plan.render());
        }
        for (stage, message) in &stops {
            crate::errln!("{}: {stage} would stop: {message}", ctx.ui.fail("error"));
        }
        if !stops.is_empty() {
            crate::errln!("  (all checks with their fixes: devenv doctor)");
        }
        return Ok(if stops.is_empty() { 0 } else { 1 });
    }

    let lock = lock.expect("a mutating run holds the lock");
    let changes_exports = matches!(&facts.exports.diff, Ok(d) if !d.is_empty())
        || facts.exports.awaits_vm_address && facts.exports.diff.is_ok()
        || facts.exports.reload_owed && facts.exports.diff.is_ok();
    if changes_exports && export.host.privilege != Privilege::Direct {
        crate::commands::exports::ask_sudo_once(ctx, &export.host).await?;
    }
    // Until the release succeeds again, nothing may be taken as already applied; and a remote
    // release this run may install is on record before it exists.
    let before = state.clone();
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
        runner: ctx.runner.clone(),
        platform: ctx.platform,
        driver,
        nfs: export.host.clone(),
        project: c.project.name.clone(),
        uid: export.owner.uid,
        docker_env: Default::default(),
    };
    let screen: Arc<dyn Reporter> = if ctx.ui.json {
        Arc::new(JsonReporter)
    } else if ctx.ui.quiet {
        Arc::new(reconcile::QuietReporter)
    } else if ctx.ui.progress_bars() {
        Arc::new(crate::progress::TerminalReporter::new())
    } else {
        Arc::new(PlainReporter)
    };
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
    let reporter: Arc<dyn Reporter> = Arc::new(reconcile::Tee(reporters));
    let cancel = async move {
        match interrupt.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let result = reconcile::run(executor.stages(&plan), reporter, cancel).await;
    // What the stages did that the state records: the images built, by their context's hash.
    let mut recorded = false;
    for effect in result.effects() {
        match effect {
            reconcile::Effect::ImageBuilt { service, hash } => {
                state.images.insert(service.clone(), hash.clone());
                recorded = true;
            }
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
    let done: Vec<&str> = result
        .stages
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Done(r) if r.changed))
        .map(|(n, _)| n.as_str())
        .collect();
    let (message, stage_help, diagnostic) = if cancelled {
        ("interrupted".to_string(), String::new(), codes::INTERRUPTED)
    } else {
        match result.first_failure() {
            Some((stage, failure)) => {
                let mut message = format!("error at '{stage}': {}", failure.message);
                for cause in &failure.causes {
                    message.push_str(&format!("\n  caused by: {cause}"));
                }
                let help = failure.help.clone().unwrap_or_default();
                (message, help, failure.code)
            }
            None => (
                "a stage did not finish".to_string(),
                String::new(),
                codes::STAGE_FAILED,
            ),
        }
    };
    Err(Error::Failed {
        message,
        help: format!(
            "{}{}run `devenv up` again to continue from here (finished stages are checked and skipped); `devenv down --purge` undoes everything",
            if stage_help.is_empty() {
                String::new()
            } else {
                format!("{stage_help}\n")
            },
            if done.is_empty() {
                String::new()
            } else {
                format!("these stages made changes: {}; ", done.join(", "))
            }
        ),
        code: if cancelled { 130 } else { 1 },
        diagnostic,
    })
}

/// What minikube says about the VM, read-only.
struct VmFacts {
    state: Option<VmState>,
    ip: Option<std::net::Ipv4Addr>,
    settings: Option<minikube::ProfileSettings>,
    proc_mounts: Option<String>,
    /// A probe file written on the host was read back through the mount while reading.
    probed: bool,
}

/// Read the VM in as few minikube calls as the answers allow, since each real one is slow
/// (a process start and config reads; `status` and the full `profile list` SSH into the VM).
/// First `profile list -l` (files only): no such profile ends the read. Then one `ssh` that
/// reads `/proc/mounts` and, when `probe` is given, the probe file through the mount: its exit
/// says whether the VM runs (83: stopped, 85: gone) and the light list already holds the
/// settings and the address. Anything less clear (the list unreadable, ssh failing otherwise,
/// a time-out) falls back to asking `status` and the rest one by one.
async fn read_vm(ctx: &Context, profile: &str, probe: Option<&Probe>) -> VmFacts {
    let listed = match ctx.runner.output(&minikube::profile_list_light()).await {
        Ok(out) if out.success() => minikube::find_profile(&out.stdout, profile).ok(),
        _ => None,
    };
    let settings = match listed {
        Some(Some(settings)) => settings,
        Some(None) => {
            return VmFacts {
                state: Some(VmState::Nonexistent),
                ip: None,
                settings: None,
                proc_mounts: None,
                probed: false,
            };
        }
        None => return read_vm_thoroughly(ctx, profile).await,
    };
    let mut argv = vec!["cat", "/proc/mounts"];
    if let Some(p) = probe {
        argv.push(&p.vm_file);
    }
    let read = minikube::ssh(profile, &argv)
        .read_only()
        .timeout(READ_TIMEOUT);
    let Ok(out) = ctx.runner.output(&read).await else {
        return read_vm_thoroughly(ctx, profile).await;
    };
    match out.code {
        Some(minikube::EXIT_NOT_RUNNING) => VmFacts {
            state: Some(VmState::Stopped),
            ip: None,
            settings: Some(settings),
            proc_mounts: None,
            probed: false,
        },
        Some(minikube::EXIT_PROFILE_NOT_FOUND) => VmFacts {
            state: Some(VmState::Nonexistent),
            ip: None,
            settings: None,
            proc_mounts: None,
            probed: false,
        },
        // 0, or 1 when the probe is not there (no mount yet): the VM ran `cat`, which the
        // mount table it printed shows (a failed SSH connection also exits 1, printing none).
        Some(0 | 1) if !minikube::parse_mounts(&out.stdout).is_empty() => VmFacts {
            state: Some(VmState::Running),
            ip: settings.node_ip,
            probed: probe.is_some_and(|p| p.seen_in(&out.stdout)),
            settings: Some(settings),
            proc_mounts: Some(out.stdout),
        },
        _ => read_vm_thoroughly(ctx, profile).await,
    }
}

/// How long the one read through `minikube ssh` may take: a hung NFS mount blocks `cat`.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The VM read the long way: `status`, then the address, the settings and the mounts.
async fn read_vm_thoroughly(ctx: &Context, profile: &str) -> VmFacts {
    let state = match ctx.runner.output(&minikube::status(profile)).await {
        Ok(out) => minikube::parse_status(&out).ok(),
        Err(_) => None,
    };
    if state == Some(VmState::Stopped) {
        // A stopped profile keeps its driver, which `start` may not change (exit 81).
        let list = ctx.runner.output(&minikube::profile_list_light()).await;
        return VmFacts {
            state,
            ip: None,
            settings: list
                .ok()
                .and_then(|o| minikube::parse_profile(&o.stdout, profile)),
            proc_mounts: None,
            probed: false,
        };
    }
    if state != Some(VmState::Running) {
        return VmFacts {
            state,
            ip: None,
            settings: None,
            proc_mounts: None,
            probed: false,
        };
    }
    let mounts_cmd = minikube::ssh(profile, &["cat", "/proc/mounts"])
        .read_only()
        .timeout(READ_TIMEOUT);
    let list_cmd = minikube::profile_list_light();
    let (ip, list, mounts) = tokio::join!(
        read_ip(ctx, profile),
        ctx.runner.output(&list_cmd),
        ctx.runner.output(&mounts_cmd),
    );
    VmFacts {
        state,
        ip,
        settings: list
            .ok()
            .and_then(|o| minikube::parse_profile(&o.stdout, profile)),
        proc_mounts: mounts.ok().filter(|o| o.success()).map(|o| o.stdout),
        probed: false,
    }
}

/// The services with a bridge in the local cluster, so that one back on the laptop has its
/// bridge removed before the release re-creates the subchart's Service. A cluster that cannot
/// be asked has none that devenv can remove; the release then says what is in its way.
async fn read_bridges(profile: &str, namespace: &str) -> Vec<String> {
    let ask = async {
        let client = crate::cluster::client(profile).await.ok()?;
        crate::offload::bridge::bridged_services(client, namespace)
            .await
            .ok()
    };
    tokio::time::timeout(crate::offload::API_TIMEOUT, ask)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

async fn read_ip(ctx: &Context, profile: &str) -> Option<std::net::Ipv4Addr> {
    let out = ctx.runner.output(&minikube::ip(profile)).await.ok()?;
    out.success()
        .then(|| out.stdout.trim().parse().ok())
        .flatten()
}

/// The images of the services that run locally, each with its context's hash and whether the
/// VM's daemon already has it: built by a previous `up` from the same content, on a VM that still
/// exists (a stopped VM keeps its images; a deleted or recreated one does not).
fn read_images(
    loaded: &Loaded,
    placements: &[(String, Placement)],
    state: &crate::state::ProjectState,
    vm: &Option<VmState>,
    recreate: bool,
) -> Vec<ImageFacts> {
    let vm_keeps_images =
        matches!(vm, Some(VmState::Running) | Some(VmState::Stopped)) && !recreate;
    placements
        .iter()
        .filter(|(_, p)| *p == Placement::Local)
        .filter_map(|(name, _)| {
            let image = loaded.config.services.get(name)?.image.as_ref()?;
            let spec = ImageSpec::read(&loaded.root, name, image).map_err(|e| e.to_string());
            let built = vm_keeps_images
                && spec
                    .as_ref()
                    .is_ok_and(|s| state.images.get(name) == Some(&s.hash));
            Some(ImageFacts {
                service: name.clone(),
                spec,
                built,
            })
        })
        .collect()
}

/// A hash of everything the release depends on: devenv.toml, the values files, every file of
/// the chart, the placements, the profile and the images' content. Equal fingerprints mean
/// `helm upgrade` would change nothing.
fn release_fingerprint(
    loaded: &Loaded,
    placements: &[(String, Placement)],
    profile: &str,
    images: &[(&str, &str)],
) -> String {
    let mut bytes = Vec::new();
    let mut add = |label: &str, data: &[u8]| {
        bytes.extend_from_slice(label.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
        bytes.extend_from_slice(data);
    };
    add("config", &std::fs::read(&loaded.file).unwrap_or_default());
    for v in &loaded.config.project.values {
        add(
            "values",
            &std::fs::read(loaded.root.join(v)).unwrap_or_default(),
        );
    }
    let mut files = Vec::new();
    collect_files(&loaded.chart_dir(), &mut files);
    files.sort();
    for f in files {
        add(&f.to_string_lossy(), &std::fs::read(&f).unwrap_or_default());
    }
    add("placements", format!("{placements:?}").as_bytes());
    add("profile", profile.as_bytes());
    add("images", format!("{images:?}").as_bytes());
    format!("{:016x}", fnv1a(&bytes))
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}
