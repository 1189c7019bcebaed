//! `devenv exports`: the project's NFS export on the host. Shows devenv's block in the exports
//! file and anything in the way; `apply` writes or updates it and reloads the NFS server;
//! `remove` takes it out again, leaving the rest of the file as it was.

use serde_json::json;

use crate::context::Context;
use crate::error::Error;
use crate::execute::Executor;
pub use crate::export::{Export, host_for};
use crate::nfs::apply::{self, Change, NfsHost, Privilege};
use crate::nfs::file::ExportsFile;
use crate::nfs::{self, helper};
use crate::plan::{self, Plan};
use crate::process::Cmd;
use crate::reconcile;

/// Show, write or remove this project's NFS export in /etc/exports.
///
/// devenv keeps one marked block per project and user; nothing else in the file is changed.
/// Without a subcommand, shows the block, the line it should hold and any export in the way.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Show the block and conflicts (the default).
    Show,
    /// Write or update the block, then reload the NFS server.
    Apply {
        #[command(flatten)]
        change: super::change::Flags,
    },
    /// Remove the block, then reload the NFS server.
    Remove {
        #[command(flatten)]
        change: super::change::Flags,
    },
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let loaded = ctx.load_config()?;
    let export = Export::for_project(ctx, &loaded).await?;
    match args.action.unwrap_or(Action::Show) {
        Action::Show => show(ctx, &export),
        Action::Apply { change } => change_block(ctx, &loaded, &export, false, change).await,
        Action::Remove { change } => change_block(ctx, &loaded, &export, true, change).await,
    }
}

fn show(ctx: &Context, export: &Export) -> Result<i32, Error> {
    let current = export.current()?;
    let file = ExportsFile::parse_bytes(&current, export.host.dialect).map_err(|source| {
        apply::ApplyError::Parse {
            path: export.host.exports.clone(),
            source,
        }
    })?;
    let present = file.block_lines(&export.project, export.owner.uid);
    let up_to_date = present.as_deref() == Some(export.lines.as_slice());
    let conflicts: Vec<String> = file
        .conflicts(&export.source, &export.project, export.owner.uid)
        .iter()
        .map(|c| c.to_string())
        .collect();
    if ctx.ui.json {
        crate::outln!(
            "{}",
            json!({
                "file": export.host.exports,
                "project": export.project,
                "uid": export.owner.uid,
                "present": present.is_some(),
                "up_to_date": up_to_date,
                "lines": present,
                "wanted": export.lines,
                "client": export.client.to_string(),
                "conflicts": conflicts,
            })
        );
        return Ok(0);
    }
    let ui = &ctx.ui;
    let begin = nfs::begin_marker(&export.project, export.owner.uid);
    ui.say(format!("{}: {begin}", export.host.exports.display()));
    match &present {
        None => ui.say(format!(
            "  {}",
            ui.warn("not present: run `devenv exports apply`")
        )),
        Some(_) if up_to_date => ui.say(format!("  {}", ui.ok("present and up to date"))),
        Some(lines) => {
            ui.say(format!(
                "  {}",
                ui.warn("present but outdated: run `devenv exports apply`")
            ));
            for l in lines {
                ui.say(format!("  - {l}"));
            }
        }
    }
    for l in &export.lines {
        ui.say(format!("  {} {l}", if up_to_date { " " } else { "+" }));
    }
    for c in &conflicts {
        ui.say(format!("  {} {c}", ui.fail("conflict:")));
    }
    Ok(if conflicts.is_empty() { 0 } else { 1 })
}

/// `apply` (or with `remove`, `remove`) as a plan of one stage, run like every change.
async fn change_block(
    ctx: &Context,
    loaded: &crate::config::Loaded,
    export: &Export,
    remove: bool,
    flags: super::change::Flags,
) -> Result<i32, Error> {
    let current = export.current()?;
    let change = if remove { Change::Remove } else { export.set() };
    let after = apply::candidate(
        &current,
        &export.host,
        &export.project,
        export.owner.uid,
        &change,
    )?;
    let diff = nfs::diff(&current, &after);
    let owed = export.host.reload_owed();
    let file = &export.host.exports;
    let mut actions = Vec::new();
    if after == current && !owed {
        actions.push(plan::Action::Note(format!(
            "{}: nothing to change",
            file.display()
        )));
    } else {
        if after == current {
            actions.push(plan::Action::Note(format!(
                "{}: as wanted, but an interrupted change never reloaded the NFS server: it is reloaded now",
                file.display()
            )));
        }
        actions.push(if remove {
            plan::Action::Unexport {
                path: file.clone(),
                diff: diff.clone(),
                reload: export.host.reload.clone(),
            }
        } else {
            plan::Action::Exports {
                path: file.clone(),
                diff: diff.clone(),
                source: export.source.clone(),
                lines: export.lines.clone(),
                grant: Some(export.grant.clone()),
                vm_address_of: None,
                reload: export.host.reload.clone(),
            }
        });
    }
    let c = &loaded.config;
    let plan = Plan {
        project: c.project.name.clone(),
        profile: c.project.profile(),
        driver: c.vm.driver.clone(),
        stages: vec![plan::Stage::new("exports", &[], actions)],
        title: Some(format!(
            "Plan for devenv's block of project {} in {}",
            c.project.name,
            file.display()
        )),
    };
    if flags.dry_run {
        return Ok(super::change::show(ctx, &plan));
    }
    super::change::confirm(ctx, &plan, flags, "devenv exports will:")?;
    if plan.changes_anything() && export.host.privilege != Privilege::Direct {
        ask_sudo_once(ctx, &export.host).await?;
    }
    let executor = Executor {
        nfs: Some(export.host.clone()),
        ..Executor::new(
            ctx.runner.clone(),
            ctx.platform,
            &export.project,
            export.owner.uid,
        )
    };
    let result = super::change::run(&plan, &executor, vec![super::change::screen(ctx)], None).await;
    if !result.ok() {
        return Err(super::change::failed(
            &result,
            "`devenv exports` shows the block as it is now",
        ));
    }
    let changed =
        matches!(result.outcome("exports"), Some(reconcile::Outcome::Done(r)) if r.changed);
    if changed && !diff.is_empty() && !ctx.ui.quiet && !ctx.ui.json {
        crate::outln!("the change to {}:", file.display());
        crate::out!("{diff}");
    }
    Ok(0)
}

/// Make sure the change can run without a prompt halfway: with the exports helper, ask it
/// whether it runs without a password (the sudoers rule); otherwise, or when the rule is not in
/// effect yet, ask for the sudo password once, before anything changes.
pub async fn ask_sudo_once(ctx: &Context, host: &NfsHost) -> Result<(), Error> {
    match &host.privilege {
        Privilege::Direct => return Ok(()),
        Privilege::Helper(path) => {
            let check = helper::command(path, &helper::Request::Check);
            let out = ctx.runner.output(&check).await?;
            if out.success() {
                return match helper::Reply::parse(&out.stdout) {
                    Some(helper::Reply::Checked) => Ok(()),
                    _ => Err(Error::Usage {
                        message: format!(
                            "{} answered {:?} instead of `ok {}`",
                            path.display(),
                            out.stdout.trim(),
                            helper::PROTOCOL
                        ),
                        help: "install this version of the helper: devenv onboard --exports-helper"
                            .into(),
                    }),
                };
            }
            if !out.stderr.contains("password is required") {
                let (message, help) = helper::failure(&out.stderr);
                return Err(Error::Usage {
                    message: format!(
                        "the exports helper {} does not run: {message}",
                        path.display()
                    ),
                    help: help.unwrap_or_else(|| {
                        format!(
                            "reinstall it: devenv onboard --exports-helper ({})",
                            crate::docs::url("nfs.md")
                        )
                    }),
                });
            }
            crate::errln!(
                "the exports helper {} is installed, but sudo asks for a password to run it: the \
                 sudoers rule from `devenv onboard --exports-helper` is missing, or your membership \
                 of its group applies from your next login",
                path.display()
            );
        }
        Privilege::Sudo => {
            let quiet = Cmd::new("sudo").args(["-n", "true"]).read_only();
            if ctx.runner.output(&quiet).await.is_ok_and(|o| o.success()) {
                return Ok(());
            }
            crate::errln!(
                "no exports helper at {}: sudo asks for your password for each change of {} \
                 (`devenv onboard --exports-helper` installs the helper and its sudoers rule)",
                helper::installed_path(host.dialect == devenv_drivers::ExportsDialect::MacOs),
                host.exports.display()
            );
        }
    }
    if !ctx.interactive {
        return Err(Error::Usage {
            message: format!(
                "{} is not writable and sudo needs a password, but there is no terminal to ask on",
                host.exports.display()
            ),
            help: "run once in a terminal, or install the exports helper: devenv onboard --exports-helper"
                .into(),
        });
    }
    crate::errln!(
        "devenv needs sudo to change {} (the exact commands are in {})",
        host.exports.display(),
        crate::docs::url("nfs.md")
    );
    let status = ctx
        .runner
        .output(&Cmd::new("sudo").arg("-v").interactive().read_only())
        .await?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Usage {
            message: "sudo was refused".into(),
            help: "nothing was changed".into(),
        })
    }
}
