//! `devenv remote list`: every developer's devenv namespace on the shared dev cluster, for the
//! platform team that runs it (and for a developer who wonders what they left there). Read
//! only: the namespaces devenv made (its labels), whose they are, which project and devenv
//! made them, when an `up` or a toggle last used them, the services running there and what
//! their workloads request.
//!
//! `devenv remote gc --idle 14d` deletes the ones nobody used for that long: a dry run unless
//! `--yes`, never a namespace without devenv's labels, never one labelled
//! `devenv.dev/keep=true`, never one already being deleted.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use crate::context::Context;
use crate::diagnostic::codes;
use crate::error::Error;
use crate::offload::savings::{self, Requests};
use crate::offload::{API_TIMEOUT, LAST_USED, MANAGED_BY, OWNER, PROJECT, VERSION};

/// The shared dev cluster's devenv namespaces.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List every devenv namespace on the shared cluster: owner, project, last use, services
    /// and requested resources (--json for scripts).
    List {
        /// The kubeconfig context of the shared cluster (default: [remote] context of the
        /// nearest devenv.toml).
        #[arg(long, value_name = "CONTEXT")]
        context: Option<String>,
    },
    /// Delete the devenv namespaces nobody used for --idle (a dry run unless --yes); never a
    /// namespace without devenv's labels or labelled devenv.dev/keep=true.
    Gc {
        /// How long unused: `14d`, `36h`.
        #[arg(long, value_name = "AGE", value_parser = parse_idle)]
        idle: Duration,
        /// Delete them (without it, only say which would go).
        #[arg(long)]
        yes: bool,
        /// The kubeconfig context of the shared cluster (default: [remote] context of the
        /// nearest devenv.toml).
        #[arg(long, value_name = "CONTEXT")]
        context: Option<String>,
    },
}

/// The label that keeps a namespace from `remote gc`.
pub const KEEP: &str = "devenv.dev/keep";

/// `14d`, `36h`: days or hours.
fn parse_idle(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("\"{text}\" is not an age like 14d or 36h"))?;
    let hours = match unit {
        "d" => n.checked_mul(24),
        "h" => Some(n),
        _ => None,
    }
    .ok_or_else(|| format!("\"{text}\" is not an age like 14d or 36h"))?;
    if hours == 0 {
        return Err("an idle age of 0 would delete every namespace in use".into());
    }
    hours
        .checked_mul(3600)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("\"{text}\" is too long"))
}

/// One devenv namespace as listed.
#[derive(Debug, serde::Serialize)]
struct Listed {
    namespace: String,
    owner: String,
    project: String,
    version: Option<String>,
    /// RFC 3339, as the annotation holds it.
    last_used: Option<String>,
    services: Vec<String>,
    requests: Requests,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    match args.action {
        Action::List { context } => list(ctx, context).await,
        Action::Gc { idle, yes, context } => gc(ctx, context, idle, yes).await,
    }
}

/// The shared cluster's context: the one given, or `[remote] context` of devenv.toml (held to
/// `[remote] server`).
fn shared_context(ctx: &Context, context: Option<String>) -> Result<String, Error> {
    Ok(match context {
        Some(c) => c,
        None => {
            let loaded = ctx.load_config()?;
            let remote = loaded.config.remote.ok_or_else(|| Error::Usage {
                message: "devenv.toml has no [remote] section to name the shared cluster".into(),
                help: "pass --context <kubeconfig context of the shared cluster>".into(),
            })?;
            crate::offload::allowed_server(&remote).map_err(|why| Error::Failed {
                message: why.to_string(),
                help: "point the context back at the dev cluster, or pass --context".into(),
                code: 1,
                diagnostic: codes::REMOTE_NOT_ALLOWED,
            })?;
            remote.context
        }
    })
}

fn failed(e: crate::cluster::ClusterError) -> Error {
    Error::Failed {
        message: e.to_string(),
        help: crate::diagnostic::Diagnostic::help(&e).unwrap_or_default(),
        code: 1,
        diagnostic: crate::diagnostic::Diagnostic::code(&e),
    }
}

/// devenv's namespaces on the shared cluster (its labels, an owner).
async fn devenv_namespaces(client: &kube::Client) -> Result<Vec<Namespace>, Error> {
    let selector = format!("{MANAGED_BY}=devenv,{OWNER}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let found = crate::cluster::answered(
        "the list of devenv namespaces",
        API_TIMEOUT,
        namespaces.list(&ListParams::default().labels(&selector)),
    )
    .await
    .map_err(failed)?;
    Ok(found.items)
}

async fn gc(
    ctx: &Context,
    context: Option<String>,
    idle: Duration,
    yes: bool,
) -> Result<i32, Error> {
    use k8s_openapi::jiff::Timestamp;
    let context = shared_context(ctx, context)?;
    let client = crate::cluster::client(&context).await.map_err(failed)?;
    let now = Timestamp::now();
    let mut idle_ones = Vec::new();
    let mut kept = Vec::new();
    for ns in devenv_namespaces(&client).await? {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let labels = ns.metadata.labels.clone().unwrap_or_default();
        // A namespace from before devenv stamped its use counts from its creation.
        let last_used = ns
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LAST_USED))
            .and_then(|t| t.parse::<Timestamp>().ok())
            .or_else(|| ns.metadata.creation_timestamp.as_ref().map(|t| t.0));
        // A time ahead of this clock (skew between laptops) is a use just now, not an old one.
        let unused_for = last_used.map(|t| {
            let since = now.duration_since(t);
            if since.is_negative() {
                Duration::ZERO
            } else {
                since.unsigned_abs()
            }
        });
        let why_kept = if labels.get(KEEP).map(String::as_str) == Some("true") {
            Some(format!("labelled {KEEP}=true"))
        } else if ns.metadata.deletion_timestamp.is_some() {
            Some("already being deleted".to_string())
        } else {
            match unused_for {
                Some(age) if age >= idle => None,
                Some(age) => Some(format!("used {}h ago", age.as_secs() / 3600)),
                None => Some("no record of its use or creation".to_string()),
            }
        };
        let entry = json!({
            "namespace": name,
            "owner": labels.get(OWNER),
            "project": labels.get(PROJECT),
            "last_used": last_used.map(|t| t.to_string()),
        });
        match why_kept {
            Some(why) => kept.push((entry, why)),
            None => idle_ones.push((name, entry)),
        }
    }
    let mut deleted = Vec::new();
    if yes {
        let api: Api<Namespace> = Api::all(client.clone());
        for (name, _) in &idle_ones {
            crate::cluster::answered(
                "the deletion of a namespace",
                API_TIMEOUT,
                api.delete(name, &kube::api::DeleteParams::default()),
            )
            .await
            .map_err(failed)?;
            deleted.push(name.clone());
        }
    }
    if ctx.ui.json {
        crate::outln!(
            "{}",
            json!({
                "context": context,
                "idle_secs": idle.as_secs(),
                "dry_run": !yes,
                "idle": idle_ones.iter().map(|(_, e)| e).collect::<Vec<_>>(),
                "deleted": deleted,
                "kept": kept.iter().map(|(e, why)| json!({"namespace": e["namespace"], "why": why})).collect::<Vec<_>>(),
            })
        );
        return Ok(0);
    }
    let hours = idle.as_secs() / 3600;
    if idle_ones.is_empty() {
        ctx.ui.say(format!(
            "no devenv namespace on {context} has been idle for {hours}h or more"
        ));
    }
    for (name, entry) in &idle_ones {
        let who = entry["owner"].as_str().unwrap_or("?");
        let when = entry["last_used"].as_str().unwrap_or("never");
        if yes {
            ctx.ui
                .say(format!("deleted {name} ({who}, last used {when})"));
        } else {
            ctx.ui
                .say(format!("would delete {name} ({who}, last used {when})"));
        }
    }
    for (entry, why) in &kept {
        ctx.ui.say(format!(
            "kept {}: {why}",
            entry["namespace"].as_str().unwrap_or_default()
        ));
    }
    if !yes && !idle_ones.is_empty() {
        ctx.ui
            .say("nothing was deleted: run again with --yes to delete them");
    }
    Ok(0)
}

async fn list(ctx: &Context, context: Option<String>) -> Result<i32, Error> {
    let context = shared_context(ctx, context)?;
    let client = crate::cluster::client(&context).await.map_err(failed)?;
    let mut listed = Vec::new();
    for ns in devenv_namespaces(&client).await? {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let labels = ns.metadata.labels.clone().unwrap_or_default();
        let annotations = ns.metadata.annotations.clone().unwrap_or_default();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &name);
        let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &name);
        let all = ListParams::default();
        let ds = crate::cluster::answered(
            "the list of Deployments",
            API_TIMEOUT,
            deployments.list(&all),
        )
        .await
        .map_err(failed)?;
        let ss = crate::cluster::answered(
            "the list of StatefulSets",
            API_TIMEOUT,
            statefulsets.list(&all),
        )
        .await
        .map_err(failed)?;
        let mut services: Vec<String> = ds
            .items
            .iter()
            .map(|d| d.metadata.name.clone().unwrap_or_default())
            .chain(
                ss.items
                    .iter()
                    .map(|s| s.metadata.name.clone().unwrap_or_default()),
            )
            .collect();
        services.sort();
        // The workloads as the manifests they are, summed the way a subchart's are.
        let manifests: Vec<String> = ds
            .items
            .iter()
            .map(|d| json!({"kind": "Deployment", "spec": d.spec}).to_string())
            .chain(
                ss.items
                    .iter()
                    .map(|s| json!({"kind": "StatefulSet", "spec": s.spec}).to_string()),
            )
            .collect();
        let requests = savings::sum(&manifests.join("\n---\n")).unwrap_or_default();
        listed.push(Listed {
            namespace: name,
            owner: labels.get(OWNER).cloned().unwrap_or_default(),
            project: labels.get(PROJECT).cloned().unwrap_or_default(),
            version: labels.get(VERSION).cloned(),
            last_used: annotations.get(LAST_USED).cloned(),
            services,
            requests,
        });
    }
    listed.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    if ctx.ui.json {
        crate::outln!("{}", json!({"context": context, "namespaces": listed}));
        return Ok(0);
    }
    if listed.is_empty() {
        ctx.ui
            .say(format!("no devenv namespace on context {context}"));
        return Ok(0);
    }
    crate::outln!(
        "{:<32} {:<12} {:<12} {:<21} {:<24} REQUESTS",
        "NAMESPACE",
        "OWNER",
        "PROJECT",
        "LAST USED",
        "SERVICES"
    );
    for l in &listed {
        crate::outln!(
            "{:<32} {:<12} {:<12} {:<21} {:<24} {}",
            l.namespace,
            l.owner,
            l.project,
            l.last_used
                .as_deref()
                .map(|t| t.chars().take(19).collect::<String>() + "Z")
                .unwrap_or_else(|| "never recorded".into()),
            if l.services.is_empty() {
                "-".to_string()
            } else {
                l.services.join(",")
            },
            l.requests.human()
        );
    }
    Ok(0)
}
