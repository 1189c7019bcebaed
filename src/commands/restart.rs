//! `devenv restart`: roll a service's pods, wherever it runs (the laptop's cluster or,
//! offloaded, the shared one), the way `kubectl rollout restart` does, so a developer need not
//! know which Deployment or StatefulSet the chart made, nor which context and namespace.

use serde_json::json;

use crate::context::Context;
use crate::error::Error;
use crate::workloads;

/// Restart a service's pods (a rolling restart of the workloads that own them)
///
/// Finds the Deployments, StatefulSets and DaemonSets that own the service's pods and sets
/// `kubectl.kubernetes.io/restartedAt` on their pod templates, as `kubectl rollout restart`
/// does: each controller then replaces the pods by its own update strategy (a Deployment
/// starts the new pods before it stops the old ones). Returns once the change is made;
/// `devenv logs -f SERVICE` follows the new pods.
///
///   devenv restart api
///   devenv restart api worker --dry-run
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Services of devenv.toml.
    #[arg(value_name = "SERVICE", required = true)]
    pub services: Vec<String>,
    /// Print what would be restarted and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let loaded = ctx.load_config()?;
    let located = super::locate(ctx, &loaded, &args.services)?;
    let at = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut done = Vec::new();
    for l in &located {
        let client = crate::cluster::client(&l.context).await?;
        let pods = workloads::pods(client.clone(), l).await?;
        let owners = workloads::controllers(client.clone(), l, &pods).await?;
        for (kind, name) in &owners {
            let workload = format!("{}/{name}", kind.to_lowercase());
            if !args.dry_run {
                workloads::restart(client.clone(), l, kind, name, &at).await?;
            }
            if !ctx.ui.json {
                let verb = if args.dry_run {
                    "would restart"
                } else {
                    "restarted"
                };
                crate::outln!(
                    "{verb} {}: {workload} in {} ({})",
                    l.name,
                    l.namespace,
                    l.context
                );
            }
            done.push(json!({
                "service": l.name,
                "workload": workload,
                "namespace": l.namespace,
                "context": l.context,
            }));
        }
    }
    if ctx.ui.json {
        crate::outln!(
            "{}",
            json!({"dry_run": args.dry_run, "restarted": done, "at": at})
        );
    } else if !args.dry_run && !ctx.ui.quiet {
        crate::outln!(
            "the controllers replace the pods now; `devenv logs -f {}` follows them",
            args.services.join(" ")
        );
    }
    Ok(0)
}
