//! `devenv down`: stop the VM and keep its disk, so the next `up` is fast; `--purge` removes
//! everything devenv made for the project: the Helm release, the VM, the exports block and the
//! per-user state, and the user's namespace on the remote cluster. Both stop the tunnel
//! supervisor. Both are idempotent: on nothing, they say so and succeed.

use std::sync::Arc;
use std::time::Duration;

use devenv_drivers::Choice;

use crate::config::Loaded;
use crate::context::Context;
use crate::error::Error;
use crate::machine;
use crate::minikube::{self, VmState};
use crate::nfs::{self, Owner, apply};
use crate::process::{Cmd, DryRunRunner, Runner, check_success};
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
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print what would be done and change nothing.
    #[arg(long)]
    pub dry_run: bool,
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
    let _lock = if args.dry_run {
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
    let runner: Arc<dyn Runner> = if args.dry_run {
        Arc::new(DryRunRunner::new(ctx.runner.clone(), true))
    } else {
        ctx.runner.clone()
    };
    let mut left = Vec::new();
    // The tunnel to offloaded services only serves the VM: it stops with it.
    let tunnel = crate::offload::tunnel::Files::new(project.path());
    if let Some(pid) = tunnel.running() {
        if args.dry_run {
            ctx.ui
                .say(format!("would stop the tunnel supervisor (pid {pid})"));
        } else {
            match crate::offload::tunnel::stop(&tunnel).await {
                Ok(_) => ctx.ui.say(format!("tunnel supervisor (pid {pid}) stopped")),
                Err(e) => left.push(Left {
                    what: format!("the tunnel supervisor (pid {pid})"),
                    why: e.to_string(),
                    by_hand: format!("kill {pid}"),
                }),
            }
        }
    }
    // A missing or failing minikube leaves the VM unknown; everything else still goes.
    let vm = match ctx.runner.output(&minikube::status(&profile)).await {
        Ok(out) => Ok(minikube::parse_status(&out).unwrap_or_else(|e| VmState::Unknown(e.into()))),
        Err(e) => Err(Error::from(e)),
    };

    if !args.purge {
        match vm {
            Err(e) => left.push(Left {
                what: format!("the VM {profile} (not checked)"),
                why: why(&e),
                by_hand: format!("minikube stop -p {profile}"),
            }),
            Ok(VmState::Nonexistent) => {
                ctx.ui.say(format!(
                    "nothing to stop: there is no VM for {}",
                    fp.project
                ));
            }
            Ok(VmState::Stopped) => ctx.ui.say(format!("{profile} is already stopped")),
            Ok(_) => {
                let stop = Cmd::new("minikube").args(["stop", "-p", &profile]);
                match run(&*runner, &stop).await {
                    Ok(()) if !args.dry_run => ctx.ui.say(format!(
                        "{profile} stopped; its disk is kept, `devenv up` starts it again"
                    )),
                    Ok(()) => {}
                    Err(e) => left.push(Left {
                        what: format!("the VM {profile} (running)"),
                        why: why(&e),
                        by_hand: format!("minikube stop -p {profile}"),
                    }),
                }
            }
        }
        return Ok(report_left(ctx, &left));
    }

    let owner = Owner::current();
    let host = machine::driver_for(&Choice::parse(&fp.driver))
        .map(|driver| crate::export::host_for(ctx, driver, owner));
    let exports_text = host
        .as_ref()
        .map(|h| {
            nfs::read_exports(&h.exports)
                .ok()
                .flatten()
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let has_block = host.as_ref().is_ok_and(|h| {
        nfs::file::ExportsFile::parse_bytes(&exports_text, h.dialect)
            .ok()
            .and_then(|f| f.block_lines(&fp.project, owner.uid))
            .is_some()
    });
    let tunnel_files = crate::offload::tunnel::Files::new(project.path());
    let state_files = [
        project.path().join("state.json"),
        project.path().join("values-overlay.json"),
        tunnel_files.spec(),
        tunnel_files.status(),
        tunnel_files.pid(),
        tunnel_files.log(),
    ];
    let has_state = state_files.iter().any(|f| f.exists());
    let mut steps = Vec::new();
    if matches!(vm, Ok(VmState::Running)) {
        steps.push(format!(
            "uninstall the Helm release {} from namespace {}",
            fp.release, fp.namespace
        ));
    }
    if vm.as_ref().is_ok_and(|v| *v != VmState::Nonexistent) {
        steps.push(format!("delete the minikube VM {profile} and its disk"));
    }
    if has_block && let Ok(h) = &host {
        steps.push(format!(
            "remove devenv's block for {} from {}",
            fp.project,
            h.exports.display()
        ));
    }
    // The hosts file's block `devenv urls --write-hosts` wrote, if there is one.
    let hosts_text = std::fs::read_to_string(&ctx.hosts_file).unwrap_or_default();
    let hosts_block = crate::hosts::current(&hosts_text, &ctx.hosts_file, &fp.project, owner.uid);
    let by_hand_hosts = format!(
        "delete the lines from `# BEGIN devenv {}` to `# END devenv {}` in {}",
        fp.project,
        fp.project,
        ctx.hosts_file.display()
    );
    if let Err(e) = &hosts_block {
        left.push(Left {
            what: format!(
                "devenv's block for {} in {} (not read)",
                fp.project,
                ctx.hosts_file.display()
            ),
            why: e.to_string(),
            by_hand: by_hand_hosts.clone(),
        });
    }
    if matches!(hosts_block, Ok(Some(_))) {
        steps.push(format!(
            "remove devenv's block for {} from {}",
            fp.project,
            ctx.hosts_file.display()
        ));
    }
    if has_state {
        steps.push(format!(
            "clear devenv's state in {}",
            project.path().display()
        ));
    }
    let remote = remote_namespace(ctx, &fp).await;
    let offloaded = project
        .load()
        .is_ok_and(|state| !state.remote_releases.is_empty());
    if let Some(r) = &remote {
        match &r.found {
            Ok(true) => steps.push(format!(
                "delete your namespace {} on {} with its releases, volumes and data",
                r.namespace, r.context
            )),
            Ok(false) => {}
            // Known to hold a release of this project: it is left. Otherwise devenv may never
            // have made it (nothing was offloaded from here), and a warning says how to check.
            Err(why) if offloaded => left.push(Left {
                what: format!(
                    "your namespace {} on {} (not checked)",
                    r.namespace, r.context
                ),
                why: why.clone(),
                by_hand: format!(
                    "kubectl --context {} delete namespace {}",
                    r.context, r.namespace
                ),
            }),
            Err(why) => crate::errln!(
                "{}: your namespace {} on {} is not checked ({why}); `kubectl --context {} delete namespace {}` removes it if it exists",
                ctx.ui.warn("warning"),
                r.namespace,
                r.context,
                r.context,
                r.namespace
            ),
        }
    }
    if let Err(e) = &vm {
        left.push(Left {
            what: format!("the VM {profile} (not checked)"),
            why: why(e),
            by_hand: format!("minikube delete -p {profile}"),
        });
    }
    if let Err(e) = &host {
        left.push(Left {
            what: format!("devenv's exports block for {} (not checked)", fp.project),
            why: e.to_string(),
            by_hand: format!(
                "delete the lines from `# BEGIN devenv {}` to `# END devenv {}` in the exports file, then reload the NFS server",
                fp.project, fp.project
            ),
        });
    }
    if steps.is_empty() {
        if left.is_empty() {
            ctx.ui.say(format!("nothing to remove for {}", fp.project));
        }
        return Ok(report_left(ctx, &left));
    }
    if !args.yes && !args.dry_run {
        super::confirm(ctx, "devenv down --purge will:", &steps)?;
    }
    let mut done = Vec::new();
    if has_block
        && !args.dry_run
        && let Ok(h) = &host
        && h.privilege != apply::Privilege::Direct
    {
        crate::commands::exports::ask_sudo_once(ctx, h).await?;
    }
    if matches!(vm, Ok(VmState::Running)) {
        // Bounded: an unreachable cluster must not hold up the rest. Deleting the VM takes the
        // release with it anyway, so a failure here is only reported.
        let uninstall = Cmd::new("helm")
            .args(["uninstall", &fp.release, "--namespace", &fp.namespace])
            .args(["--kube-context", &profile, "--wait", "--timeout", "60s"])
            .timeout(Duration::from_secs(90));
        let outcome = match runner.output(&uninstall).await {
            // A release that is already gone is what --purge wants.
            Ok(out) if out.success() || out.stderr.contains("not found") => Ok(()),
            Ok(out) => check_success(&uninstall, out)
                .map(drop)
                .map_err(Error::from),
            Err(e) => Err(e.into()),
        };
        match outcome {
            Ok(()) => done.push(steps[0].clone()),
            Err(e) => crate::errln!(
                "{}: the release {} was not uninstalled ({}); deleting the VM removes it",
                ctx.ui.warn("warning"),
                fp.release,
                why(&e)
            ),
        }
    }
    if let Ok(state) = &vm
        && *state != VmState::Nonexistent
    {
        let delete = Cmd::new("minikube").args(["delete", "-p", &profile]);
        match run(&*runner, &delete).await {
            Ok(()) => done.push(format!("delete the minikube VM {profile} and its disk")),
            Err(e) => left.push(Left {
                what: format!("the VM {profile}"),
                why: why(&e),
                by_hand: format!("minikube delete -p {profile}"),
            }),
        }
    }
    if let Some(r) = &remote
        && r.found == Ok(true)
    {
        let by_hand = format!(
            "kubectl --context {} delete namespace {}",
            r.context, r.namespace
        );
        if args.dry_run {
            crate::outln!(
                "would delete namespace {} on context {}",
                r.namespace,
                r.context
            );
        } else {
            let deleted = async {
                let client = crate::cluster::client(&r.context)
                    .await
                    .map_err(|e| e.to_string())?;
                let say = |line: &str| ctx.ui.say(line);
                crate::offload::delete_namespace(client, &r.context, &r.namespace, &ctx.user, &say)
                    .await
                    .map_err(|e| e.to_string())
            };
            match deleted.await {
                Ok(_) => done.push(format!(
                    "delete your namespace {} on {} with its releases, volumes and data",
                    r.namespace, r.context
                )),
                Err(why) => left.push(Left {
                    what: format!("your namespace {} on {}", r.namespace, r.context),
                    why,
                    by_hand,
                }),
            }
        }
    }
    if has_block && let Ok(h) = &host {
        if args.dry_run {
            let after = apply::candidate(
                &exports_text,
                h,
                &fp.project,
                owner.uid,
                &apply::Change::Remove,
            )?;
            crate::outln!("would change {}:", h.exports.display());
            crate::out!("{}", nfs::diff(&exports_text, &after));
        } else {
            let removed = apply::apply(
                ctx.runner.as_ref(),
                h,
                &fp.project,
                owner.uid,
                &apply::Change::Remove,
                Duration::from_secs(60),
            )
            .await;
            match removed {
                Ok(_) => done.push(format!(
                    "remove devenv's block for {} from {}",
                    fp.project,
                    h.exports.display()
                )),
                Err(e) => left.push(Left {
                    what: format!("devenv's block for {} in {}", fp.project, h.exports.display()),
                    why: why(&Error::from(e)),
                    by_hand: format!(
                        "delete the lines from `# BEGIN devenv {}` to `# END devenv {}` in {}, then reload the NFS server",
                        fp.project,
                        fp.project,
                        h.exports.display()
                    ),
                }),
            }
        }
    }
    match &hosts_block {
        Ok(Some(_)) if args.dry_run => {
            let after =
                crate::hosts::edit(&hosts_text, &ctx.hosts_file, &fp.project, owner.uid, None)?;
            crate::outln!("would change {}:", ctx.hosts_file.display());
            crate::out!("{}", nfs::diff(hosts_text.as_bytes(), after.as_bytes()));
        }
        Ok(Some(_)) => {
            let backup = ctx.state_dir()?.root().join("hosts.bak");
            let removed = crate::hosts::apply(
                ctx.runner.as_ref(),
                &ctx.hosts_file,
                &backup,
                &fp.project,
                owner.uid,
                None,
            )
            .await;
            let what = format!(
                "devenv's block for {} in {}",
                fp.project,
                ctx.hosts_file.display()
            );
            match removed {
                Ok(_) => done.push(format!("remove {what}")),
                Err(e) => left.push(Left {
                    what,
                    why: e.to_string(),
                    by_hand: by_hand_hosts,
                }),
            }
        }
        Ok(None) | Err(_) => {}
    }
    // The state names what is left: it stays until everything is gone, so that the next
    // `down --purge` can finish even if devenv.toml is broken by then.
    if has_state && left.is_empty() {
        for f in &state_files {
            if args.dry_run {
                if f.exists() {
                    crate::outln!("would remove {}", f.display());
                }
            } else if let Err(e) = std::fs::remove_file(f)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(Error::io("remove", f)(e));
            }
        }
        done.push(format!(
            "clear devenv's state in {}",
            project.path().display()
        ));
    } else if has_state && !args.dry_run {
        crate::errln!(
            "devenv's state in {} is kept: it lets `devenv down --purge` finish later",
            project.path().display()
        );
    }
    if !args.dry_run {
        for s in &done {
            ctx.ui.say(format!("done: {s}"));
        }
    }
    Ok(report_left(ctx, &left))
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

async fn run(runner: &dyn Runner, cmd: &Cmd) -> Result<(), Error> {
    runner.run(cmd).await?;
    Ok(())
}
