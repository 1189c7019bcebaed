//! `devenv remote list`: every developer's devenv namespace on the shared dev cluster, for the
//! platform team that runs it (and for a developer who wonders what they left there). Read
//! only: the namespaces devenv made (its labels), whose they are, which project and devenv
//! made them, when an `up` or a toggle last used them, the services running there and what
//! their workloads request.

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
    }
}

async fn list(ctx: &Context, context: Option<String>) -> Result<i32, Error> {
    let context = match context {
        Some(c) => c,
        None => {
            let loaded = ctx.load_config()?;
            let remote = loaded.config.remote.ok_or_else(|| Error::Usage {
                message: "devenv.toml has no [remote] section to name the shared cluster".into(),
                help: "pass --context <kubeconfig context of the shared cluster>".into(),
            })?;
            crate::offload::allowed_server(&remote).map_err(|why| Error::Failed {
                message: why,
                help: "point the context back at the dev cluster, or pass --context".into(),
                code: 1,
                diagnostic: codes::REMOTE_NOT_ALLOWED,
            })?;
            remote.context
        }
    };
    let failed = |e: crate::cluster::ClusterError| Error::Failed {
        message: e.to_string(),
        help: crate::diagnostic::Diagnostic::help(&e).unwrap_or_default(),
        code: 1,
        diagnostic: crate::diagnostic::Diagnostic::code(&e),
    };
    let client = crate::cluster::client(&context).await.map_err(failed)?;
    let selector = format!("{MANAGED_BY}=devenv,{OWNER}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let found = bounded(
        "the list of devenv namespaces",
        namespaces.list(&ListParams::default().labels(&selector)),
    )
    .await
    .map_err(failed)?;
    let mut listed = Vec::new();
    for ns in found.items {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let labels = ns.metadata.labels.clone().unwrap_or_default();
        let annotations = ns.metadata.annotations.clone().unwrap_or_default();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &name);
        let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &name);
        let all = ListParams::default();
        let ds = bounded("the list of Deployments", deployments.list(&all))
            .await
            .map_err(failed)?;
        let ss = bounded("the list of StatefulSets", statefulsets.list(&all))
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

/// One read of the shared cluster, given [`API_TIMEOUT`]: a cluster that does not answer is
/// said to be unreachable rather than waited for.
async fn bounded<T>(
    what: &str,
    request: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, crate::cluster::ClusterError> {
    match tokio::time::timeout(API_TIMEOUT, request).await {
        Ok(answer) => answer.map_err(crate::cluster::ClusterError::Api),
        Err(_) => Err(crate::cluster::ClusterError::Unanswered {
            what: what.to_string(),
            after: Duration::from_secs(API_TIMEOUT.as_secs()),
        }),
    }
}
