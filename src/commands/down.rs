//! `devenv down`: stop the VM and keep its disk, so the next `up` is fast; `--purge` removes
//! everything devenv made for the project: the Helm release, the VM, the exports block and the
//! per-user state, and the user's namespace on the remote cluster. Both stop the tunnel
//! supervisor. Both are idempotent: on nothing, they say so and succeed.

use std::sync::Arc;
use std::time::Duration;

use crate::commands::exports::{Export, ask_sudo_once};
use crate::context::Context;
use crate::error::Error;
use crate::minikube::{self, VmState};
use crate::nfs::{self, apply};
use crate::process::{Cmd, DryRunRunner, Runner, check_success};

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

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let loaded = ctx.load_config()?;
    let c = &loaded.config;
    let profile = c.project.profile();
    let project = ctx.state_dir()?.project(&c.project.name, &loaded.root);
    let _lock = if args.dry_run {
        None
    } else {
        let name = c.project.name.clone();
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
    // The tunnel to offloaded services only serves the VM: it stops with it.
    let tunnel = crate::offload::tunnel::Files::new(project.path());
    if let Some(pid) = tunnel.running() {
        if args.dry_run {
            ctx.ui
                .say(format!("would stop the tunnel supervisor (pid {pid})"));
        } else {
            crate::offload::tunnel::stop(&tunnel)
                .await
                .map_err(|e| Error::Failed {
                    help: e.help().unwrap_or_default(),
                    message: e.to_string(),
                    code: 1,
                })?;
            ctx.ui.say(format!("tunnel supervisor (pid {pid}) stopped"));
        }
    }
    let vm = match ctx.runner.output(&minikube::status(&profile)).await {
        Ok(out) => minikube::parse_status(&out).unwrap_or_else(VmState::Unknown),
        Err(e) => return Err(e.into()),
    };

    if !args.purge {
        match vm {
            VmState::Nonexistent => {
                ctx.ui.say(format!(
                    "nothing to stop: there is no VM for {}",
                    c.project.name
                ));
            }
            VmState::Stopped => ctx.ui.say(format!("{profile} is already stopped")),
            _ => {
                run(
                    &*runner,
                    &Cmd::new("minikube").args(["stop", "-p", &profile]),
                )
                .await?;
                if !args.dry_run {
                    ctx.ui.say(format!(
                        "{profile} stopped; its disk is kept, `devenv up` starts it again"
                    ));
                }
            }
        }
        return Ok(0);
    }

    let export = Export::for_project(ctx, &loaded).await?;
    let exports_text = std::fs::read_to_string(&export.host.exports).unwrap_or_default();
    let has_block = nfs::file::ExportsFile::parse(&exports_text, export.host.dialect)
        .ok()
        .and_then(|f| f.block_lines(&export.project, export.owner.uid))
        .is_some();
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
    if vm == VmState::Running {
        steps.push(format!(
            "uninstall the Helm release {} from namespace {}",
            c.project.release(),
            c.project.namespace()
        ));
    }
    if vm != VmState::Nonexistent {
        steps.push(format!("delete the minikube VM {profile} and its disk"));
    }
    if has_block {
        steps.push(format!(
            "remove devenv's block for {} from {}",
            c.project.name,
            export.host.exports.display()
        ));
    }
    if has_state {
        steps.push(format!(
            "clear devenv's state in {}",
            project.path().display()
        ));
    }
    let remote = remote_namespace(ctx, &loaded).await;
    if let Some(r) = &remote {
        match &r.found {
            Ok(true) => steps.push(format!(
                "delete your namespace {} on {} with its releases, volumes and data",
                r.namespace, r.context
            )),
            Ok(false) => {}
            Err(why) => crate::errln!(
                "{}: your namespace {} on {} is not checked ({why}); `kubectl --context {} delete namespace {}` removes it later",
                ctx.ui.warn("warning"),
                r.namespace,
                r.context,
                r.context,
                r.namespace
            ),
        }
    }
    if steps.is_empty() {
        ctx.ui
            .say(format!("nothing to remove for {}", c.project.name));
        return Ok(0);
    }
    if !args.yes && !args.dry_run {
        confirm(ctx, &steps)?;
    }
    if has_block && !args.dry_run && export.host.privilege != apply::Privilege::Direct {
        ask_sudo_once(ctx, &export).await?;
    }
    if vm == VmState::Running {
        let uninstall = Cmd::new("helm")
            .args([
                "uninstall",
                c.project.release(),
                "--namespace",
                c.project.namespace(),
            ])
            .args(["--kube-context", &profile, "--wait", "--timeout", "5m"]);
        let out = runner.output(&uninstall).await?;
        // A release that is already gone is what --purge wants.
        if !out.success() && !out.stderr.contains("not found") {
            check_success(&uninstall, out)?;
        }
    }
    if vm != VmState::Nonexistent {
        run(
            &*runner,
            &Cmd::new("minikube").args(["delete", "-p", &profile]),
        )
        .await?;
    }
    if let Some(r) = &remote
        && r.found == Ok(true)
    {
        if args.dry_run {
            crate::outln!(
                "would delete namespace {} on context {}",
                r.namespace,
                r.context
            );
        } else {
            let failed = |e: crate::offload::OffloadError| Error::Failed {
                help: e.help().unwrap_or_default(),
                message: e.to_string(),
                code: 1,
            };
            let client = crate::cluster::client(&r.context)
                .await
                .map_err(|e| Error::Failed {
                    message: e.to_string(),
                    help: format!("kubectl --context {} get namespaces", r.context),
                    code: 1,
                })?;
            let say = |line: &str| ctx.ui.say(line);
            crate::offload::delete_namespace(client, &r.context, &r.namespace, &ctx.user, &say)
                .await
                .map_err(failed)?;
        }
    }
    if has_block {
        if args.dry_run {
            let after = apply::candidate(
                &exports_text,
                &export.host,
                &export.project,
                export.owner.uid,
                &apply::Change::Remove,
            )?;
            crate::outln!("would change {}:", export.host.exports.display());
            crate::out!("{}", nfs::diff(&exports_text, &after));
        } else {
            apply::apply(
                ctx.runner.as_ref(),
                &export.host,
                &export.project,
                export.owner.uid,
                &apply::Change::Remove,
                Duration::from_secs(60),
            )
            .await?;
        }
    }
    if has_state {
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
    }
    if !args.dry_run {
        for s in &steps {
            ctx.ui.say(format!("done: {s}"));
        }
    }
    Ok(0)
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
async fn remote_namespace(
    ctx: &Context,
    loaded: &crate::config::Loaded,
) -> Option<RemoteNamespace> {
    use k8s_openapi::api::core::v1::Namespace;
    let c = &loaded.config;
    let r = c.remote.as_ref()?;
    let namespace = crate::offload::remote_namespace(&ctx.user, &c.project.name);
    let ask = async {
        let client = crate::cluster::client(&r.context)
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
        context: r.context.clone(),
        namespace,
        found,
    })
}

async fn run(runner: &dyn Runner, cmd: &Cmd) -> Result<(), Error> {
    runner.run(cmd).await?;
    Ok(())
}

fn confirm(ctx: &Context, steps: &[String]) -> Result<(), Error> {
    if !ctx.interactive {
        return Err(Error::Usage {
            message: format!("--purge would {}", steps.join(", ")),
            help: "nothing was changed; pass --yes to confirm without a terminal".into(),
        });
    }
    crate::errln!("devenv down --purge will:");
    for s in steps {
        crate::errln!("  - {s}");
    }
    crate::err!("Continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(Error::io("read", "the answer"))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::Usage {
            message: "cancelled".into(),
            help: "nothing was changed".into(),
        })
    }
}
