//! `devenv down`: stop the VM and keep its disk, so the next `up` is fast; `--purge` removes
//! everything devenv made for the project: the Helm release, the VM, the exports block and the
//! per-user state, and the user's namespace on the remote cluster. Both stop the tunnel
//! supervisor. Both are idempotent: on nothing, they say so and succeed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use devenv_drivers::Choice;

use crate::config::Loaded;
use crate::context::Context;
use crate::error::Error;
use crate::execute::Executor;
use crate::machine;
use crate::minikube::{self, VmState};
use crate::nfs::apply::NfsHost;
use crate::nfs::{self, Owner, apply};
use crate::offload::Step;
use crate::plan::{Action, Plan, Stage};
use crate::process::Cmd;
use crate::reconcile::{Effect, Outcome, Reporter};
use crate::state::{Footprint, ProjectDir};

/// Stop the local environment (the VM keeps its disk); --purge removes all of it.
///
/// Both stop the tunnel to offloaded services. --purge uninstalls the Helm release, deletes the
/// minikube VM, removes devenv's block from /etc/exports, deletes your namespace on the remote
/// cluster (with its data) and clears devenv's state for the project. It asks first unless
/// --yes is given.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove the release, the VM, the exports block and the project's state.
    #[arg(long)]
    pub purge: bool,
    #[command(flatten)]
    pub change: super::change::Flags,
}

/// The names of what `up` makes for `loaded`'s project, as recorded for `down`.
pub fn footprint(loaded: &Loaded, user: &str) -> Footprint {
    let c = &loaded.config;
    Footprint {
        project: c.project.name.clone(),
        profile: c.project.profile(),
        release: c.project.release().to_string(),
        namespace: c.project.namespace().to_string(),
        driver: c.vm.driver.clone(),
        remote: c.remote.as_ref().map(|r| {
            (
                r.context.clone(),
                crate::offload::remote_namespace(user, &c.project.name),
            )
        }),
    }
}

/// What `down` works on: devenv.toml's names, or when it cannot be read, what the last `up`
/// recorded in the project's state, so that a broken file never keeps the machine from being
/// cleaned up.
fn target(ctx: &Context) -> Result<(Footprint, ProjectDir), Error> {
    let broken = match ctx.load_config() {
        Ok(loaded) => {
            let fp = footprint(&loaded, &ctx.user);
            let project = ctx.state_dir()?.project(&fp.project, &loaded.root);
            return Ok((fp, project));
        }
        Err(e) => e,
    };
    let file = match &ctx.config_file {
        Some(f) => Some(f.clone()),
        None => crate::config::find(&ctx.cwd).ok(),
    };
    let root = file.as_deref().and_then(std::path::Path::parent);
    let recorded = root.and_then(|root| {
        let project = ctx.state_dir().ok()?.project_at(root)?;
        let fp = project.load().ok()?.footprint?;
        Some((fp, project))
    });
    let Some((fp, project)) = recorded else {
        return Err(broken.into());
    };
    let first = broken.to_string();
    crate::errln!(
        "{}: {}\n  devenv.toml cannot be read; working from what the last `up` recorded for project {} (minikube profile {})",
        ctx.ui.warn("warning"),
        first.lines().next().unwrap_or_default(),
        fp.project,
        fp.profile
    );
    Ok((fp, project))
}

/// Something `down` could not remove, why, and how to remove it by hand.
struct Left {
    what: String,
    why: String,
    by_hand: String,
}

/// The last part of `down`: what is left and how to remove it, or nothing. Exit code 1 when
/// anything is left.
fn report_left(ctx: &Context, left: &[Left]) -> i32 {
    if left.is_empty() {
        return 0;
    }
    crate::errln!(
        "{}: {} left behind:",
        ctx.ui.fail("error"),
        if left.len() == 1 {
            "one thing is".to_string()
        } else {
            format!("{} things are", left.len())
        }
    );
    for l in left {
        crate::errln!("  - {}: {}", l.what, l.why);
        crate::errln!("    remove it with: {}", l.by_hand);
    }
    1
}

/// The first line of an error and its help, for the list of what is left.
fn why(e: &Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default().to_string();
    match e.help() {
        Some(help) if !help.is_empty() => {
            format!("{first} ({})", help.lines().next().unwrap_or_default())
        }
        _ => first,
    }
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let (fp, project) = target(ctx)?;
    let profile = fp.profile.clone();
    let lock = if args.change.dry_run {
        None
    } else {
        let name = fp.project.clone();
        Some(project.lock(Duration::from_secs(120), |pid| {
            crate::errln!(
                "waiting for another devenv command on project {name}{}…",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            );
        })?)
    };
    let owner = Owner::current();
    let driver = machine::driver_for(&Choice::parse(&fp.driver));
    let host = driver
        .as_ref()
        .map_err(|e| Error::from(e.clone()))
        .map(|driver| crate::export::host_for(ctx, *driver, owner));
    let Planned { plan, mut left } = plan(ctx, &args, &fp, &project, &host, owner).await?;

    if args.change.dry_run {
        if !plan.stages.is_empty() {
            super::change::show(ctx, &plan);
        }
        return Ok(report_left(ctx, &left));
    }
    if plan.stages.is_empty() {
        return Ok(report_left(ctx, &left));
    }
    super::change::confirm(ctx, &plan, args.change, "devenv down --purge will:")?;
    if plan.stages.iter().any(|s| s.name == "exports")
        && let Ok(h) = &host
        && h.privilege != apply::Privilege::Direct
    {
        crate::commands::exports::ask_sudo_once(ctx, h).await?;
    }
    let executor = Executor {
        driver: driver.ok(),
        nfs: host.ok(),
        ..Executor::new(ctx.runner.clone(), ctx.platform, &fp.project, owner.uid)
    };
    let reporters = vec![
        super::change::screen(ctx),
        Arc::new(crate::runlog::RunLog::create(project.path(), "down")) as Arc<dyn Reporter>,
    ];
    let interrupt = crate::process::Interrupt::listen().ok();
    let result = super::change::run(&plan, &executor, reporters, interrupt).await;
    drop(lock);
    for effect in result.effects() {
        if let Effect::Left { what, why } = effect {
            crate::errln!("{}: {what} ({why})", ctx.ui.warn("warning"));
        }
    }
    for unfinished in super::change::unfinished(&plan, &result) {
        let stage = unfinished.stage;
        left.push(Left {
            what: stage.confirm.clone().unwrap_or_else(|| stage.name.clone()),
            why: match unfinished.failure {
                Some(f) => f.render().lines().next().unwrap_or_default().to_string(),
                None => "not run: a stage before it did not finish".into(),
            },
            by_hand: stage
                .by_hand
                .clone()
                .unwrap_or_else(|| "see the error above".into()),
        });
    }
    let kept_state = plan.stages.iter().any(|s| s.name == "state")
        && !matches!(result.outcome("state"), Some(Outcome::Done(_)));
    if kept_state {
        state_kept(&project);
    }
    for s in &plan.stages {
        if let Some(Outcome::Done(r)) = result.outcome(&s.name)
            && r.changed
        {
            match &s.confirm {
                // With --json the stages' events have said it.
                _ if ctx.ui.json => {}
                Some(what) => ctx.ui.say(format!("done: {what}")),
                None if s.name == "vm" => ctx.ui.say(format!(
                    "{profile} stopped; its disk is kept, `devenv up` starts it again"
                )),
                None => {}
            }
        }
    }
    Ok(report_left(ctx, &left))
}

/// The plan `down` runs, and what it found it cannot check (kept in the list of what is left).
struct Planned {
    plan: Plan,
    left: Vec<Left>,
}

/// Reads the machine (read-only) and plans `down` for `fp`: stop the tunnel and the VM, or with
/// `--purge` remove everything `up` made, the state last.
async fn plan(
    ctx: &Context,
    args: &Args,
    fp: &Footprint,
    project: &ProjectDir,
    host: &Result<NfsHost, Error>,
    owner: Owner,
) -> Result<Planned, Error> {
    let profile = &fp.profile;
    let mut left = Vec::new();
    let mut stages = Vec::new();
    // The tunnel to offloaded services only serves the VM: it stops with it.
    let tunnel = crate::offload::tunnel::Files::new(project.path());
    if let Some(pid) = tunnel.running() {
        let (context, namespace) = fp.remote.clone().unwrap_or_default();
        stages.push(
            Stage::new(
                "tunnel",
                &[],
                vec![Action::Offload(Step::Tunnel {
                    profile: profile.clone(),
                    dir: project.path().to_path_buf(),
                    context,
                    namespace,
                    forwards: Vec::new(),
                })],
            )
            .by_hand(format!("kill {pid}")),
        );
    }
    // A missing or failing minikube leaves the VM unknown; everything else still goes.
    let vm = match ctx.runner.output(&minikube::status(profile)).await {
        Ok(out) => Ok(minikube::parse_status(&out).unwrap_or_else(|e| VmState::Unknown(e.into()))),
        Err(e) => Err(Error::from(e)),
    };
    let plan = |stages| Plan {
        project: fp.project.clone(),
        profile: profile.clone(),
        driver: fp.driver.clone(),
        stages,
        title: None,
    };

    if !args.purge {
        match vm {
            Err(e) => left.push(Left {
                what: format!("the VM {profile} (not checked)"),
                why: why(&e),
                by_hand: format!("minikube stop -p {profile}"),
            }),
            Ok(VmState::Nonexistent) => {
                note(
                    ctx,
                    &format!("nothing to stop: there is no VM for {}", fp.project),
                );
            }
            Ok(VmState::Stopped) => note(ctx, &format!("{profile} is already stopped")),
            Ok(_) => stages.push(
                Stage::new(
                    "vm",
                    &[],
                    vec![Action::Run(
                        Cmd::new("minikube").args(["stop", "-p", profile]),
                    )],
                )
                .by_hand(format!("minikube stop -p {profile}")),
            ),
        }
        return Ok(Planned {
            plan: plan(stages),
            left,
        });
    }

    if matches!(vm, Ok(VmState::Running)) {
        // Bounded: an unreachable cluster must not hold up the rest. Deleting the VM takes the
        // release with it anyway, so a failure here is only reported.
        let uninstall = Cmd::new("helm")
            .args(["uninstall", &fp.release, "--namespace", &fp.namespace])
            .args(["--kube-context", profile, "--wait", "--timeout", "60s"])
            .timeout(Duration::from_secs(90));
        stages.push(
            Stage::new(
                "release",
                &[],
                vec![Action::Attempt {
                    cmd: uninstall,
                    // A release that is already gone is what --purge wants.
                    fine_if: "not found",
                    otherwise: format!(
                        "the release {} was not uninstalled; deleting the VM removes it",
                        fp.release
                    ),
                }],
            )
            .destroys(format!(
                "uninstall the Helm release {} from namespace {}",
                fp.release, fp.namespace
            )),
        );
    }
    match &vm {
        Ok(VmState::Nonexistent) => {}
        Ok(_) => {
            let after: &[&str] = if stages.iter().any(|s| s.name == "release") {
                &["release"]
            } else {
                &[]
            };
            stages.push(
                Stage::new(
                    "vm",
                    after,
                    vec![Action::Run(
                        Cmd::new("minikube").args(["delete", "-p", profile]),
                    )],
                )
                .destroys(format!("delete the minikube VM {profile} and its disk"))
                .by_hand(format!("minikube delete -p {profile}")),
            );
        }
        Err(e) => left.push(Left {
            what: format!("the VM {profile} (not checked)"),
            why: why(e),
            by_hand: format!("minikube delete -p {profile}"),
        }),
    }

    let remote = remote_namespace(ctx, fp).await;
    let offloaded = project
        .load()
        .is_ok_and(|state| !state.remote_releases.is_empty());
    if let Some(r) = &remote {
        let by_hand = format!(
            "kubectl --context {} delete namespace {}",
            r.context, r.namespace
        );
        match &r.found {
            Ok(true) => stages.push(
                Stage::new(
                    "remote",
                    &[],
                    vec![Action::Offload(Step::DeleteNamespace {
                        context: r.context.clone(),
                        namespace: r.namespace.clone(),
                        user: ctx.user.clone(),
                    })],
                )
                .destroys(format!(
                    "delete your namespace {} on {} with its releases, volumes and data",
                    r.namespace, r.context
                ))
                .by_hand(by_hand),
            ),
            Ok(false) => {}
            // Known to hold a release of this project: it is left. Otherwise devenv may never
            // have made it (nothing was offloaded from here), and a warning says how to check.
            Err(why) if offloaded => left.push(Left {
                what: format!(
                    "your namespace {} on {} (not checked)",
                    r.namespace, r.context
                ),
                why: why.clone(),
                by_hand,
            }),
            Err(why) => crate::errln!(
                "{}: your namespace {} on {} is not checked ({why}); `{by_hand}` removes it if it exists",
                ctx.ui.warn("warning"),
                r.namespace,
                r.context,
            ),
        }
    }

    match host {
        Ok(h) => {
            let text = nfs::read_exports(&h.exports)
                .ok()
                .flatten()
                .unwrap_or_default();
            let has_block = nfs::file::ExportsFile::parse_bytes(&text, h.dialect)
                .ok()
                .and_then(|f| f.block_lines(&fp.project, owner.uid))
                .is_some();
            if has_block {
                let after =
                    apply::candidate(&text, h, &fp.project, owner.uid, &apply::Change::Remove)?;
                stages.push(
                    Stage::new(
                        "exports",
                        &[],
                        vec![Action::Unexport {
                            path: h.exports.clone(),
                            diff: nfs::diff(&text, &after),
                            reload: h.reload.clone(),
                        }],
                    )
                    .destroys(format!(
                        "remove devenv's block for {} from {}",
                        fp.project,
                        h.exports.display()
                    ))
                    .by_hand(format!(
                        "delete the lines from `# BEGIN devenv {}` to `# END devenv {}` in {}, then reload the NFS server",
                        fp.project,
                        fp.project,
                        h.exports.display()
                    )),
                );
            }
        }
        Err(e) => left.push(Left {
            what: format!("devenv's exports block for {} (not checked)", fp.project),
            why: e.to_string(),
            by_hand: format!(
                "delete the lines from `# BEGIN devenv {}` to `# END devenv {}` in the exports file, then reload the NFS server",
                fp.project, fp.project
            ),
        }),
    }

    // The hosts file's block `devenv urls --write-hosts` wrote, if there is one.
    let hosts_text = std::fs::read_to_string(&ctx.hosts_file).unwrap_or_default();
    let by_hand_hosts = format!(
        "delete the lines from `# BEGIN devenv {}` to `# END devenv {}` in {}",
        fp.project,
        fp.project,
        ctx.hosts_file.display()
    );
    match crate::hosts::current(&hosts_text, &ctx.hosts_file, &fp.project, owner.uid) {
        Ok(Some(_)) => {
            let after =
                crate::hosts::edit(&hosts_text, &ctx.hosts_file, &fp.project, owner.uid, None)?;
            stages.push(
                Stage::new(
                    "hosts",
                    &[],
                    vec![Action::Unhost {
                        path: ctx.hosts_file.clone(),
                        backup: ctx.state_dir()?.root().join("hosts.bak"),
                        diff: nfs::diff(hosts_text.as_bytes(), after.as_bytes()),
                    }],
                )
                .destroys(format!(
                    "remove devenv's block for {} in {}",
                    fp.project,
                    ctx.hosts_file.display()
                ))
                .by_hand(by_hand_hosts),
            );
        }
        Ok(None) => {}
        Err(e) => left.push(Left {
            what: format!(
                "devenv's block for {} in {} (not read)",
                fp.project,
                ctx.hosts_file.display()
            ),
            why: e.to_string(),
            by_hand: by_hand_hosts,
        }),
    }

    // The state names what is left: it goes last, and only once everything else is gone, so
    // that the next `down --purge` can finish even if devenv.toml is broken by then.
    let tunnel_files = crate::offload::tunnel::Files::new(project.path());
    let state_files: Vec<PathBuf> = [
        project.path().join("state.json"),
        project.path().join("values-overlay.json"),
        tunnel_files.spec(),
        tunnel_files.status(),
        tunnel_files.pid(),
        tunnel_files.log(),
    ]
    .into_iter()
    .filter(|f| f.exists())
    .collect();
    if !state_files.is_empty() {
        if left.is_empty() {
            let before: Vec<String> = stages.iter().map(|s| s.name.clone()).collect();
            let before: Vec<&str> = before.iter().map(String::as_str).collect();
            stages.push(
                Stage::new("state", &before, vec![Action::Remove(state_files)]).destroys(format!(
                    "clear devenv's state in {}",
                    project.path().display()
                )),
            );
        } else if !args.change.dry_run {
            state_kept(project);
        }
    }
    if stages.is_empty() && left.is_empty() {
        note(ctx, &format!("nothing to remove for {}", fp.project));
    }
    Ok(Planned {
        plan: plan(stages),
        left,
    })
}

/// The state names what is left: it stays until everything is gone.
fn state_kept(project: &ProjectDir) {
    crate::errln!(
        "devenv's state in {} is kept: it lets `devenv down --purge` finish later",
        project.path().display()
    );
}

/// Something `down` found with nothing to do about it: a line, or with `--json` an object, so
/// that stdout stays one JSON object per line.
fn note(ctx: &Context, text: &str) {
    if ctx.ui.json {
        crate::outln!("{}", serde_json::json!({ "note": text }));
    } else {
        ctx.ui.say(text);
    }
}

/// The user's namespace on the remote cluster and whether it is there to delete.
struct RemoteNamespace {
    context: String,
    namespace: String,
    /// Present and this user's; `Err` when the cluster could not be asked.
    found: Result<bool, String>,
}

/// Look (read-only, bounded) for the user's remote namespace. One made by someone else is
/// reported as not found: it is never deleted.
async fn remote_namespace(ctx: &Context, fp: &Footprint) -> Option<RemoteNamespace> {
    use k8s_openapi::api::core::v1::Namespace;
    let (context, namespace) = fp.remote.clone()?;
    let ask = async {
        let client = crate::cluster::client(&context)
            .await
            .map_err(|e| e.to_string())?;
        let api: kube::Api<Namespace> = kube::Api::all(client);
        let ns = api.get_opt(&namespace).await.map_err(|e| e.to_string())?;
        Ok::<bool, String>(ns.is_some_and(|ns| crate::offload::is_users_namespace(&ns, &ctx.user)))
    };
    let found = match tokio::time::timeout(crate::offload::API_TIMEOUT, ask).await {
        Ok(found) => found,
        Err(_) => Err(format!(
            "no answer within {}s",
            crate::offload::API_TIMEOUT.as_secs()
        )),
    };
    Some(RemoteNamespace {
        context,
        namespace,
        found,
    })
}
