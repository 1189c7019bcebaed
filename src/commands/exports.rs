//! `devenv exports`: the project's NFS export on the host. Shows devenv's block in the exports
//! file and anything in the way; `apply` writes or updates it and reloads the NFS server;
//! `remove` takes it out again, leaving the rest of the file as it was.

use std::path::PathBuf;
use std::time::Duration;

use devenv_drivers::{Choice, ExportClient};
use serde_json::json;

use crate::config::Loaded;
use crate::context::Context;
use crate::error::Error;
use crate::machine;
use crate::minikube;
use crate::nfs::apply::{self, Change, NfsHost, Outcome, Privilege};
use crate::nfs::file::ExportsFile;
use crate::nfs::{self, Owner, helper};
use crate::process::Cmd;

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
        /// Print the diff and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove the block, then reload the NFS server.
    Remove {
        /// Print the diff and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// How long to wait for another devenv process editing the exports file.
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything needed to write this project's block.
pub struct Export {
    pub host: NfsHost,
    pub project: String,
    pub owner: Owner,
    /// The exported directory as written in the file (firmlinks resolved on macOS).
    pub source: PathBuf,
    pub client: ExportClient,
    pub lines: Vec<String>,
    /// What the lines grant, as the exports helper is asked for it.
    pub grant: nfs::Grant,
    /// The client should be the VM's own address, which is not known yet (the VM does not
    /// run): `client` and `lines` hold the driver's usual host-only network in its place.
    pub awaits_vm_address: bool,
}

/// The NFS server of this machine as VMs of `driver` use it, for `owner`.
pub fn host_for(ctx: &Context, driver: &dyn devenv_drivers::Driver, owner: Owner) -> NfsHost {
    NfsHost::for_machine(
        ctx.exports_file.clone(),
        driver.exports_dialect(),
        owner.uid == 0,
    )
    .with_reload_override(ctx.exports_reload.as_deref())
}

impl Export {
    /// The export for a project: the VM's address when the VM runs (asked read-only from
    /// minikube), otherwise the driver's host-only network.
    pub async fn for_project(ctx: &Context, loaded: &Loaded) -> Result<Export, Error> {
        let profile = loaded.config.project.profile();
        let ip = match ctx.runner.output(&minikube::ip(&profile)).await {
            Ok(out) if out.success() => out.stdout.trim().parse().ok(),
            _ => None,
        };
        Export::at_address(ctx, loaded, ip)
    }

    /// The export for a VM whose address is already known (`None`: no running VM).
    pub fn at_address(
        ctx: &Context,
        loaded: &Loaded,
        ip: Option<std::net::Ipv4Addr>,
    ) -> Result<Export, Error> {
        let c = &loaded.config;
        let driver = machine::driver_for(&Choice::parse(&c.vm.driver))?;
        let client = match &c.mount.export_client {
            Some(text) => nfs::parse_client(text).map_err(|why| Error::Usage {
                message: format!("mount.export_client: {why}"),
                help: format!("see {}", crate::docs::url("config.md")),
            })?,
            // The VM's own address: minikube puts a new VM on the first free subnet (.39,
            // .50, .61, ... for kvm2), so no network can be assumed before it runs. Without a
            // VM, the driver's usual network stands in (`devenv exports apply` alone); `up`
            // writes the export only once the VM has its address.
            None => driver.export_client(ip),
        };
        let awaits_vm_address = c.mount.export_client.is_none() && ip.is_none();
        let owner = Owner::current();
        let canonical = loaded
            .source_dir()
            .canonicalize()
            .map_err(Error::io("resolve", loaded.source_dir()))?;
        // The path travels as text from here on (the exports line, the helper's request, the
        // mount command in the VM, /proc/mounts): a byte that is not UTF-8 would turn into
        // U+FFFD on the way and name a directory that does not exist.
        if canonical.to_str().is_none() {
            return Err(Error::Usage {
                message: format!(
                    "the exported directory {} has a name that is not UTF-8",
                    canonical.display()
                ),
                help: "rename the directory (or the one above it whose name shows a \u{fffd}) to a UTF-8 name: NFS clients and minikube read paths as UTF-8".into(),
            });
        }
        let source = nfs::exported_path(driver.exports_dialect(), &canonical, &ctx.firmlinks);
        let line = nfs::export_line(driver.exports_dialect(), &source, client, owner);
        let grant = nfs::Grant {
            dir: canonical,
            client,
            access: nfs::Access::ReadWrite,
        };
        Ok(Export {
            host: host_for(ctx, driver, owner),
            project: c.project.name.clone(),
            owner,
            source,
            client,
            lines: vec![line],
            grant,
            awaits_vm_address,
        })
    }

    /// The change that writes this export.
    pub fn set(&self) -> Change<'_> {
        Change::Set {
            source: &self.source,
            lines: &self.lines,
            grant: Some(&self.grant),
        }
    }

    fn current(&self) -> Result<Vec<u8>, Error> {
        nfs::read_exports(&self.host.exports)
            .map(Option::unwrap_or_default)
            .map_err(Error::io("read", &self.host.exports))
    }
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let loaded = ctx.load_config()?;
    let export = Export::for_project(ctx, &loaded).await?;
    match args.action.unwrap_or(Action::Show) {
        Action::Show => show(ctx, &export),
        Action::Apply { dry_run } => change_block(ctx, &export, &export.set(), dry_run).await,
        Action::Remove { dry_run } => change_block(ctx, &export, &Change::Remove, dry_run).await,
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

async fn change_block(
    ctx: &Context,
    export: &Export,
    change: &Change<'_>,
    dry_run: bool,
) -> Result<i32, Error> {
    let current = export.current()?;
    let after = apply::candidate(
        &current,
        &export.host,
        &export.project,
        export.owner.uid,
        change,
    )?;
    let diff = nfs::diff(&current, &after);
    let owed = export.host.reload_owed();
    if dry_run || (after == current && !owed) {
        if ctx.ui.json {
            crate::outln!(
                "{}",
                json!({ "file": export.host.exports, "changed": after != current, "dry_run": dry_run, "diff": diff, "reload_owed": owed })
            );
        } else if after == current && owed {
            ctx.ui.say(format!(
                "{}: as wanted, but an interrupted change never reloaded the NFS server: `devenv exports apply` reloads it",
                export.host.exports.display()
            ));
        } else if after == current {
            ctx.ui.say(format!(
                "{}: nothing to change",
                export.host.exports.display()
            ));
        } else {
            ctx.ui
                .say(format!("would change {}:", export.host.exports.display()));
            crate::out!("{diff}");
        }
        return Ok(0);
    }
    if export.host.privilege != Privilege::Direct {
        ask_sudo_once(ctx, &export.host).await?;
    }
    let outcome = apply::apply(
        ctx.runner.as_ref(),
        &export.host,
        &export.project,
        export.owner.uid,
        change,
        LOCK_TIMEOUT,
    )
    .await?;
    let backup = match &outcome {
        Outcome::Changed { backup } => backup.clone(),
        Outcome::Unchanged | Outcome::Reloaded => None,
    };
    let changed = matches!(outcome, Outcome::Changed { .. });
    if ctx.ui.json {
        crate::outln!(
            "{}",
            json!({ "file": export.host.exports, "changed": changed, "dry_run": false, "diff": diff, "backup": backup, "reloaded": outcome != Outcome::Unchanged })
        );
    } else if outcome == Outcome::Unchanged {
        ctx.ui.say(format!(
            "{}: nothing to change",
            export.host.exports.display()
        ));
    } else if outcome == Outcome::Reloaded {
        ctx.ui.say(format!(
            "{}: as wanted; NFS server reloaded (an interrupted change had not)",
            export.host.exports.display()
        ));
    } else {
        ctx.ui
            .say(format!("changed {}:", export.host.exports.display()));
        if !ctx.ui.quiet {
            crate::out!("{diff}");
        }
        if let Some(b) = backup {
            ctx.ui
                .say(format!("previous version kept in {}", b.display()));
        }
        ctx.ui.say("NFS server reloaded");
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
