//! `devenv up`: bring the environment to the state devenv.toml describes. This version computes
//! the whole plan (preflight, exports, vm, mount, offloaded services, release, summary) and
//! prints it with `--dry-run`; it only reads (`minikube status`, the exports file, driver
//! health) to decide what would change.

use devenv_drivers::{Choice, Registry, SelectError};

use crate::config::Placement;
use crate::context::Context;
use crate::error::Error;
use crate::machine::{self, Machine};
use crate::minikube;
use crate::nfs::Owner;
use crate::plan::{Facts, Plan};

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
    let registry = Registry::builtin();
    let choice = Choice::parse(&c.vm.driver);
    let (driver, status) = match registry.choose(&choice, &host).await {
        Ok(found) => found,
        Err(SelectError::NoneHealthy { statuses }) => {
            // Show the plan with the driver `auto` would prefer; preflight will stop there.
            let best = registry
                .for_host(machine::current_os(), machine::current_arch())
                .into_iter()
                .next()
                .ok_or(SelectError::NoneHealthy {
                    statuses: statuses.clone(),
                })?;
            let status = statuses
                .into_iter()
                .find(|s| s.driver == best.name())
                .expect("a status for every supported driver");
            (best, status)
        }
        Err(e) => return Err(e.into()),
    };

    let vm_state = match ctx
        .runner
        .output(&minikube::status(&c.project.profile()))
        .await
    {
        Ok(out) => minikube::parse_status(&out).ok(),
        Err(_) => None,
    };
    let facts = Facts {
        driver,
        placements,
        owner: Owner::current(),
        as_root: Owner::current().uid == 0,
        exports_file: ctx.exports_file.clone(),
        exports_current: std::fs::read_to_string(&ctx.exports_file).ok(),
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
