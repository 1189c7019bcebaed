//! `devenv offload`: where each service runs, and the per-user toggle that moves one to the
//! shared remote dev cluster or back. The toggle is the developer's own choice, saved in their
//! state (never in the team's devenv.toml), and applied at once by running `up`, which only
//! changes the stages it affects.

use std::time::Duration;

use serde_json::json;

use crate::commands::up;
use crate::config::{Loaded, Placement};
use crate::context::Context;
use crate::error::Error;
use crate::offload::savings::{self, Requests};
use crate::process::{Cmd, check_success};

/// Run a heavy service on the shared remote dev cluster, or bring it back to the laptop.
///
/// Without a service, lists every service: where it runs for you, where the team's default
/// puts it, and the CPU and memory its subchart requests (what the laptop saves when it runs
/// remotely). With a service and --remote or --local, runs `up` with your choice at once and
/// records it (--no-apply only records it; --dry-run prints the plan and records nothing); the
/// other services of the chart keep finding it under the same DNS name.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service (a [services.<name>] of devenv.toml with a host and a values_key).
    #[arg(value_name = "SERVICE")]
    pub service: Option<String>,
    /// Run it on the remote dev cluster (context of [remote]).
    #[arg(long, conflicts_with = "local", requires = "service")]
    pub remote: bool,
    /// Run it on the laptop again (the remote copy is uninstalled; its volumes are kept).
    #[arg(long, requires = "service")]
    pub local: bool,
    /// Record the choice only; the next `devenv up` applies it.
    #[arg(long, conflicts_with_all = ["purge", "dry_run"])]
    pub no_apply: bool,
    /// With --local: also delete your namespace on the remote cluster, volumes and data included,
    /// once no other service of the project runs there (asked first, unless --yes).
    #[arg(long, requires = "local")]
    pub purge: bool,
    // --dry-run prints the plan the toggle would run (`devenv up --dry-run` with the choice
    // applied) and changes nothing, not even the recorded choice.
    #[command(flatten)]
    pub change: super::change::Flags,
    /// How long to wait for another devenv command working on this project.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub lock_timeout: u64,
    /// Print the services that can be offloaded, one per line (used by shell completion).
    #[arg(long, hide = true, conflicts_with_all = ["service", "remote", "local"])]
    pub complete_names: bool,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let loaded = ctx.load_config()?;
    if args.complete_names {
        for name in offloadable(&loaded) {
            crate::outln!("{name}");
        }
        return Ok(0);
    }
    let c = &loaded.config;
    let project = ctx.state_dir()?.project(&c.project.name, &loaded.root);
    let Some(service) = args.service else {
        return list(ctx, &loaded, &project).await;
    };
    let valid = offloadable(&loaded);
    if !valid.contains(&service) {
        return Err(Error::Usage {
            message: format!("{service} is not a service devenv can offload"),
            help: format!(
                "services that can run remotely: {} (a [services.<name>] of devenv.toml with host and values_key)",
                if valid.is_empty() {
                    "none".to_string()
                } else {
                    valid.join(", ")
                }
            ),
        });
    }
    let placement = match (args.remote, args.local) {
        (true, _) => Placement::Remote,
        (_, true) => Placement::Local,
        _ => {
            return Err(Error::Usage {
                message: format!("say where {service} should run"),
                help: format!("devenv offload {service} --remote, or --local"),
            });
        }
    };
    if placement == Placement::Remote {
        let Some(r) = &c.remote else {
            return Err(Error::Usage {
                message:
                    "devenv.toml has no [remote] section: there is no remote cluster to run on"
                        .into(),
                help: format!(
                    "ask the platform team to add [remote] with the dev cluster's context ({})",
                    crate::docs::url("offload.md")
                ),
            });
        };
        // Checked before the choice is recorded: a toggle that cannot work changes nothing.
        let has_context = crate::cluster::read_kubeconfig()
            .is_ok_and(|k| k.contexts.iter().any(|ctx| ctx.name == r.context));
        if !has_context {
            return Err(Error::Failed {
                message: format!(
                    "no kubeconfig context {} (the remote cluster of [remote]): {service} cannot run there from this laptop",
                    r.context
                ),
                help: format!(
                    "nothing was changed; get the dev cluster's kubeconfig from the platform team (`kubectl config get-contexts` lists the contexts you have, `kubectl --context {} get namespaces` checks it)",
                    r.context
                ),
                diagnostic: crate::diagnostic::codes::OFFLOAD_REMOTE,
                code: 1,
            });
        }
        if let Err(why) = crate::offload::allowed_server(r) {
            return Err(Error::Failed {
                message: format!("{service} stays where it is: {why}"),
                help: format!(
                    "nothing was changed; point context {} at the dev cluster (`kubectl config get-contexts`), or ask the platform team whether [remote] server is right",
                    r.context
                ),
                diagnostic: crate::diagnostic::codes::REMOTE_NOT_ALLOWED,
                code: 1,
            });
        }
    }
    let where_ = match placement {
        Placement::Local => "on this laptop",
        Placement::Remote => "on the remote dev cluster",
    };
    if args.no_apply {
        let lock = project.lock(Duration::from_secs(args.lock_timeout), |pid| {
            if !ctx.ui.quiet {
                crate::errln!(
                    "waiting for another devenv command on project {}{}…",
                    c.project.name,
                    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                );
            }
        })?;
        let mut state = project.load()?;
        // Choosing the team's default again drops the override, so a later change of the
        // default reaches this developer too.
        if c.services[&service].offload == placement {
            state.offload.remove(&service);
        } else {
            state.offload.insert(service.clone(), placement);
        }
        project.save(&state, &lock)?;
        ctx.ui.say(format!(
            "{service} will run {where_}; `devenv up` applies it"
        ));
        return Ok(0);
    }
    if !args.change.dry_run {
        ctx.ui.say(format!("{service} now runs {where_}: applying"));
    }
    // The toggle is `up` with the choice applied: the same plan, question, run and state
    // (the choice is recorded by the run, once agreed to); --purge adds the stage that deletes
    // the remote namespace.
    up::exec(
        up::Args {
            change: args.change,
            watch: false,
            recreate: false,
            ui: false,
            no_open: false,
            lock_timeout: args.lock_timeout,
            toggle: Some((service, placement)),
            purge_remote: args.purge,
        },
        ctx,
    )
    .await
}

/// Services that can move: a `host` the bridge can take over and a subchart to disable.
pub fn offloadable(loaded: &Loaded) -> Vec<String> {
    loaded
        .config
        .services
        .iter()
        .filter(|(_, s)| s.host.is_some() && s.values_key.is_some())
        .map(|(n, _)| n.clone())
        .collect()
}

async fn list(
    ctx: &Context,
    loaded: &Loaded,
    project: &crate::state::ProjectDir,
) -> Result<i32, Error> {
    let state = &project.load()?;
    let c = &loaded.config;
    let seen = observe(ctx, loaded, project).await;
    let mut rows = Vec::new();
    for (name, svc) in &c.services {
        let now = state.placement(name, svc);
        let can = svc.host.is_some() && svc.values_key.is_some();
        let saves = match &svc.values_key {
            Some(key) if can => Some(requests(ctx, loaded, name, key).await),
            _ => None,
        };
        let seen = seen.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone());
        rows.push((name, svc, now, can, saves, seen));
    }
    let word = |p: Placement| match p {
        Placement::Local => "local",
        Placement::Remote => "remote",
    };
    if ctx.ui.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(name, svc, now, can, saves, seen)| {
                json!({
                    "service": name,
                    "placement": word(*now),
                    "runs": seen.as_ref().and_then(|s| s.runs).map(word),
                    "reachable": seen.as_ref().and_then(|s| s.reachable),
                    "detail": seen.as_ref().map(|s| s.detail.clone()),
                    "default": word(svc.offload),
                    "overridden": state.offload.contains_key(*name),
                    "offloadable": can,
                    "host": svc.host,
                    "ports": svc.all_ports(),
                    "saves": match saves {
                        Some(Ok(r)) => json!(r),
                        Some(Err(e)) => json!({"error": e}),
                        None => serde_json::Value::Null,
                    },
                })
            })
            .collect();
        crate::outln!("{}", serde_json::Value::Array(v));
        return Ok(0);
    }
    crate::outln!(
        "{:<12} {:<8} {:<8} {:<8} {:<10} LAPTOP SAVES WHEN REMOTE",
        "SERVICE",
        "WANTED",
        "DEFAULT",
        "RUNS",
        "ANSWERS"
    );
    for (name, svc, now, _can, saves, seen) in &rows {
        let saves = match saves {
            Some(Ok(r)) => r.human(),
            Some(Err(e)) => format!("? ({e})"),
            None => "- (not offloadable)".into(),
        };
        let mark = if state.offload.contains_key(*name) {
            " (your choice)"
        } else {
            ""
        };
        let runs = seen.as_ref().and_then(|s| s.runs).map_or("-", word);
        let answers = match seen.as_ref().and_then(|s| s.reachable) {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        crate::outln!(
            "{name:<12} {:<8} {:<8} {runs:<8} {answers:<10} {saves}{mark}",
            word(*now),
            word(svc.offload)
        );
    }
    let problems: Vec<String> = rows
        .iter()
        .filter_map(|(name, _, now, _, _, seen)| {
            let s = seen.as_ref()?;
            let wrong_place = s.runs.is_some_and(|r| r != *now);
            (s.reachable == Some(false) || wrong_place).then(|| {
                let mut line = format!("{name}: {}", s.detail);
                if wrong_place {
                    line.push_str(&format!(
                        "; it should run {} (`devenv up` moves it)",
                        word(*now)
                    ));
                }
                line
            })
        })
        .collect();
    if !problems.is_empty() {
        crate::outln!();
        for p in problems {
            crate::outln!("{p}");
        }
    }
    if let Some(r) = &c.remote {
        crate::outln!(
            "\nremote: context {}, namespace {}; change with `devenv offload <service> --remote|--local`",
            r.context,
            crate::offload::remote_namespace(&ctx.user, &c.project.name)
        );
    }
    Ok(0)
}

/// Where each offloadable service runs now and whether it answers, asked of the local cluster
/// only when the VM runs (read-only).
async fn observe(
    ctx: &Context,
    loaded: &Loaded,
    project: &crate::state::ProjectDir,
) -> Vec<(String, crate::offload::observe::Seen)> {
    use crate::offload::observe::{self, Target};
    let c = &loaded.config;
    let names = offloadable(loaded);
    let targets: Vec<Target<'_>> = names
        .iter()
        .map(|n| {
            let s = &c.services[n];
            Target {
                service: n,
                host: s.host.as_deref().unwrap_or_default(),
                ports: s.all_ports(),
            }
        })
        .collect();
    let profile = c.project.profile();
    let running = match ctx.runner.output(&crate::minikube::status(&profile)).await {
        Ok(out) => crate::minikube::parse_status(&out) == Ok(crate::minikube::VmState::Running),
        Err(_) => false,
    };
    let local = if running {
        crate::cluster::client(&profile).await.ok()
    } else {
        None
    };
    let connect = c.remote.as_ref().map(|r| r.connect).unwrap_or_default();
    let status = crate::offload::tunnel::Files::new(project.path()).live_status();
    let seen = observe::observe(
        local,
        c.project.namespace(),
        &targets,
        connect,
        status.as_ref(),
    )
    .await;
    names.into_iter().zip(seen).collect()
}

/// The requests of the service's subchart, rendered alone by `helm template`.
async fn requests(
    ctx: &Context,
    loaded: &Loaded,
    name: &str,
    key: &str,
) -> Result<Requests, String> {
    let chart = loaded.chart_dir().join("charts").join(key);
    if !chart.join("Chart.yaml").is_file() {
        return Err(format!("no subchart at charts/{key}"));
    }
    let cmd = Cmd::new("helm")
        .args(["template", name])
        .arg(&chart)
        .read_only()
        .timeout(Duration::from_secs(60));
    let out = ctx.runner.output(&cmd).await.map_err(|e| e.to_string())?;
    let out = check_success(&cmd, out).map_err(|e| e.to_string())?;
    savings::sum(&out.stdout).map_err(String::from)
}
