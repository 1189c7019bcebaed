//! `devenv up`: bring the environment to the state devenv.toml describes. This version computes
//! the whole plan (preflight, exports, vm, mount, offloaded services, release, summary) and
//! prints it with `--dry-run`; it only reads (`minikube status`, the exports file, driver
//! health) to decide what would change.

use devenv_drivers::Choice;

use crate::commands::exports::Export;
use crate::config::Placement;
use crate::context::Context;
use crate::error::Error;
use crate::machine::{self, Machine};
use crate::minikube;
use crate::nfs::{self, apply::Change, apply::Privilege, apply::candidate};
use crate::plan::{ExportsFacts, Facts, Plan};

/// Bring the local environment up: VM, NFS mount of the source, offloaded services, Helm release.
///
/// With --dry-run, print every stage in dependency order with the exact commands and file edits
/// it would make, and change nothing. Applying the plan is not available in this version:
/// --dry-run is required.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the plan (stages, commands, file edits) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    if !args.dry_run {
        return Err(Error::Usage {
            message: "`devenv up` can only show its plan in this version".into(),
            help: "run `devenv up --dry-run` to see every step it would take".into(),
        });
    }
    let loaded = ctx.load_config()?;
    let c = &loaded.config;
    let project = ctx.state_dir()?.project(&c.project.name, &loaded.root);
    let state = project.load()?;
    let placements: Vec<(String, Placement)> = c
        .services
        .iter()
        .map(|(name, s)| {
            (
                name.clone(),
                state.offload.get(name).copied().unwrap_or(s.offload),
            )
        })
        .collect();

    let host = Machine::probe(ctx.runner.clone()).await;
    let (driver, status) = machine::select_driver(&host, &Choice::parse(&c.vm.driver)).await?;

    let vm_state = match ctx
        .runner
        .output(&minikube::status(&c.project.profile()))
        .await
    {
        Ok(out) => minikube::parse_status(&out).ok(),
        Err(_) => None,
    };
    let export = Export::for_project(ctx, &loaded).await?;
    let current = std::fs::read_to_string(&export.host.exports).unwrap_or_default();
    let change = Change::Set {
        source: &export.source,
        lines: &export.lines,
    };
    let diff = candidate(
        &current,
        &export.host,
        &export.project,
        export.owner.uid,
        &change,
    )
    .map(|after| nfs::diff(&current, &after))
    .map_err(|e| e.to_string());
    let facts = Facts {
        driver,
        placements,
        exports: ExportsFacts {
            file: export.host.exports.clone(),
            source: export.source.clone(),
            diff,
            sudo: export.host.privilege == Privilege::Sudo,
            reload: export.host.reload.clone(),
        },
        vm_state,
        overlay_file: project.path().join("values-overlay.json"),
        user: ctx.user.clone(),
    };
    let plan = Plan::build(&loaded, &facts);
    if ctx.ui.json {
        println!("{}", plan.to_json());
    } else {
        print!("{}", plan.render());
    }
    if let Some(fail) = status.first_failure() {
        eprintln!(
            "{}: preflight would stop: driver {} is not usable here: {}",
            ctx.ui.warn("warning"),
            driver.name(),
            fail.reason
        );
        if let Some(fix) = &fail.fix {
            eprintln!("  fix: {fix}");
        }
        eprintln!("  (all checks: devenv doctor)");
    }
    Ok(0)
}
