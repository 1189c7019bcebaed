//! Where each service of devenv.toml runs for this developer, and which pods are its: what
//! `logs` and `shell` act on.
//!
//! A service runs on the laptop's cluster (the profile's context, the project's namespace) or,
//! offloaded, in the developer's namespace on the shared cluster: the developer's recorded
//! choice, else the team's default, as `up` applies it. Its pods are the ones its Kubernetes
//! Service selects (the service's `host`, else its name), the same truth the tunnel forwards
//! to; a service without a Service of its own (a worker) is found by the recommended label
//! `app.kubernetes.io/name=<host or name>`, which the charts `devenv init --example` writes use.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::config::{Loaded, Placement};
use crate::state::ProjectState;

/// One service, placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    /// The name in devenv.toml.
    pub name: String,
    #[serde(rename = "where")]
    pub place: Placement,
    /// The kubeconfig context of the cluster it runs on.
    pub context: String,
    pub namespace: String,
    /// The Kubernetes Service (and `app.kubernetes.io/name`) it goes by.
    pub service: String,
    /// Its ports in devenv.toml.
    pub ports: Vec<u16>,
}

/// The services `names` (all of devenv.toml's when empty, in its order), placed by `state`
/// (the developer's choices) for `user`. A name that is not a service is an error with the
/// closest one.
pub fn locate(
    loaded: &Loaded,
    user: &str,
    state: &ProjectState,
    names: &[String],
) -> Result<Vec<Located>, WorkloadError> {
    let c = &loaded.config;
    for name in names {
        if !c.services.contains_key(name) {
            let known: Vec<&str> = c.services.keys().map(String::as_str).collect();
            return Err(WorkloadError::Unknown {
                name: name.clone(),
                help: match crate::config::closest(name, known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if known.is_empty() => {
                        "devenv.toml lists no [services.<name>] yet".to_string()
                    }
                    None => format!("the services are: {}", known.join(", ")),
                },
            });
        }
    }
    Ok(c.services
        .iter()
        .filter(|(name, _)| names.is_empty() || names.contains(name))
        .map(|(name, s)| {
            let place = state.placement(name, s);
            let (context, namespace) = match (&c.remote, place) {
                (Some(remote), Placement::Remote) => (
                    remote.context.clone(),
                    crate::offload::remote_namespace(user, &c.project.name),
                ),
                _ => (c.project.profile(), c.project.namespace().to_string()),
            };
            Located {
                name: name.clone(),
                place,
                context,
                namespace,
                service: s.host.clone().unwrap_or_else(|| name.clone()),
                ports: s.all_ports(),
            }
        })
        .collect())
}

/// One kube client per context, made when first asked for.
#[derive(Default)]
pub struct Clients(BTreeMap<String, Client>);

impl Clients {
    pub async fn get(&mut self, context: &str) -> Result<Client, crate::cluster::ClusterError> {
        if let Some(c) = self.0.get(context) {
            return Ok(c.clone());
        }
        let client = crate::cluster::client(context).await?;
        self.0.insert(context.to_string(), client.clone());
        Ok(client)
    }
}

/// Why a service's pods cannot be listed.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("{name} is not a service of devenv.toml")]
    Unknown { name: String, help: String },
    #[error(
        "cannot list the pods of {service} in namespace {namespace} ({context}): the Kubernetes API {api}"
    )]
    Api {
        service: String,
        context: String,
        namespace: String,
        api: String,
    },
    #[error(
        "{service} has no pods in namespace {namespace} ({context}): no Service {name} selects any, and none is labelled app.kubernetes.io/name={name}"
    )]
    NoPods {
        service: String,
        context: String,
        namespace: String,
        name: String,
    },
    #[error("{service} has no pod named {pod}; its pods are: {}", .pods.join(", "))]
    NoSuchPod {
        service: String,
        pod: String,
        pods: Vec<String>,
    },
    #[error("{service} has no Service {name} in namespace {namespace} ({context})")]
    NoService {
        service: String,
        context: String,
        namespace: String,
        name: String,
    },
    #[error("{service} has no ready pod in namespace {namespace} ({context})")]
    NoneReady {
        service: String,
        context: String,
        namespace: String,
    },
    #[error(
        "{service}'s pod {pod} has no controller to restart it (no Deployment, StatefulSet or DaemonSet owns it)"
    )]
    NoController { service: String, pod: String },
    #[error("cannot restart {service}'s {workload} ({context}): the Kubernetes API {api}")]
    Restart {
        service: String,
        context: String,
        workload: String,
        api: String,
    },
}

impl WorkloadError {
    /// Why the Service of `at` could not be read.
    pub fn service(at: &Located, e: crate::cluster::ServiceError) -> WorkloadError {
        match e {
            crate::cluster::ServiceError::Missing { .. }
            | crate::cluster::ServiceError::NoSelector { .. } => WorkloadError::NoService {
                service: at.name.clone(),
                context: at.context.clone(),
                namespace: at.namespace.clone(),
                name: at.service.clone(),
            },
            other => WorkloadError::Api {
                service: at.name.clone(),
                context: at.context.clone(),
                namespace: at.namespace.clone(),
                api: other.to_string(),
            },
        }
    }

    pub fn help(&self) -> Option<String> {
        match self {
            WorkloadError::Unknown { help, .. } => Some(help.clone()),
            WorkloadError::Api { context, .. } => Some(format!(
                "`kubectl --context {context} get pods` shows whether the cluster answers; `devenv status` shows the VM"
            )),
            WorkloadError::NoPods { .. } => Some(
                "`devenv up` deploys the chart; `devenv status` shows what runs. A service whose pods carry other labels needs a Service named after its `host`"
                    .into(),
            ),
            WorkloadError::NoSuchPod { .. } => None,
            WorkloadError::NoService { name, .. } => Some(format!(
                "a forward goes through a Kubernetes Service: give the service a `host` naming one its chart creates, or check that `{name}` is deployed (`devenv status`)"
            )),
            WorkloadError::NoneReady { service, .. } => Some(format!(
                "`devenv logs {service}` shows why; `--pod <name>` picks a pod that is not ready"
            )),
            WorkloadError::NoController { pod, .. } => Some(format!(
                "a bare pod comes back only if something recreates it: `kubectl delete pod {pod}` removes it for good"
            )),
            WorkloadError::Restart { context, .. } => Some(format!(
                "nothing else was changed; `kubectl --context {context} auth can-i patch deployments` shows whether you may"
            )),
        }
    }
}

/// The pods of `l`, sorted by name: the ones its Service selects, else the ones labelled
/// `app.kubernetes.io/name`. None at all is [`WorkloadError::NoPods`].
pub async fn pods(client: Client, l: &Located) -> Result<Vec<Pod>, WorkloadError> {
    let api_err = |e: String| WorkloadError::Api {
        service: l.name.clone(),
        context: l.context.clone(),
        namespace: l.namespace.clone(),
        api: e,
    };
    let selected =
        match crate::cluster::service_pods(client.clone(), &l.namespace, &l.service).await {
            Ok((_, pods)) => pods,
            Err(
                crate::cluster::ServiceError::Missing { .. }
                | crate::cluster::ServiceError::NoSelector { .. },
            ) => Vec::new(),
            Err(e) => return Err(api_err(e.to_string())),
        };
    let pods = if selected.is_empty() {
        let api: Api<Pod> = Api::namespaced(client, &l.namespace);
        let label = format!("app.kubernetes.io/name={}", l.service);
        let mut list = api
            .list(&ListParams::default().labels(&label))
            .await
            .map_err(|e| api_err(crate::cluster::describe(&e)))?
            .items;
        list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        list
    } else {
        selected
    };
    if pods.is_empty() {
        return Err(WorkloadError::NoPods {
            service: l.name.clone(),
            context: l.context.clone(),
            namespace: l.namespace.clone(),
            name: l.service.clone(),
        });
    }
    Ok(pods)
}

/// The pod name of `pod`.
pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

/// The pod to exec into: `wanted` when given (one of the service's pods), else the first ready
/// one by name.
pub fn choose<'a>(
    l: &Located,
    pods: &'a [Pod],
    wanted: Option<&str>,
) -> Result<&'a Pod, WorkloadError> {
    match wanted {
        Some(w) => pods
            .iter()
            .find(|p| name(p) == w)
            .ok_or_else(|| WorkloadError::NoSuchPod {
                service: l.name.clone(),
                pod: w.to_string(),
                pods: pods.iter().map(|p| name(p).to_string()).collect(),
            }),
        None => pods
            .iter()
            .find(|p| crate::cluster::conditions::pod_ready(p))
            .ok_or_else(|| WorkloadError::NoneReady {
                service: l.name.clone(),
                context: l.context.clone(),
                namespace: l.namespace.clone(),
            }),
    }
}

/// The kubectl annotation whose change on a pod template rolls the workload's pods, as
/// `kubectl rollout restart` sets it.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The controllers (`deployment/api`, `statefulset/postgres`) that own `pods`, found through
/// their ownerReferences (a ReplicaSet's own owner, its Deployment, when it has one), sorted.
/// A pod no controller owns is [`WorkloadError::NoController`].
pub async fn controllers(
    client: Client,
    l: &Located,
    pods: &[Pod],
) -> Result<Vec<(String, String)>, WorkloadError> {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    let mut found = std::collections::BTreeSet::new();
    for pod in pods {
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .ok_or_else(|| WorkloadError::NoController {
                service: l.name.clone(),
                pod: name(pod).to_string(),
            })?;
        let (kind, owner_name) = if owner.kind == "ReplicaSet" {
            let rs = Api::<ReplicaSet>::namespaced(client.clone(), &l.namespace)
                .get(&owner.name)
                .await
                .map_err(|e| WorkloadError::Api {
                    service: l.name.clone(),
                    context: l.context.clone(),
                    namespace: l.namespace.clone(),
                    api: crate::cluster::describe(&e),
                })?;
            match rs
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true) && o.kind == "Deployment")
            {
                Some(d) => ("Deployment".to_string(), d.name.clone()),
                None => ("ReplicaSet".to_string(), owner.name.clone()),
            }
        } else {
            (owner.kind.clone(), owner.name.clone())
        };
        if !matches!(kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet") {
            return Err(WorkloadError::NoController {
                service: l.name.clone(),
                pod: name(pod).to_string(),
            });
        }
        found.insert((kind, owner_name));
    }
    Ok(found.into_iter().collect())
}

/// Roll the pods of `kind/name` as `kubectl rollout restart` does: a new [`RESTARTED_AT`] on
/// its pod template, so its controller replaces the pods by its own update strategy (new
/// ready before old gone, for a Deployment).
pub async fn restart(
    client: Client,
    l: &Located,
    kind: &str,
    workload: &str,
    at: &str,
) -> Result<(), WorkloadError> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
    use kube::api::{Patch, PatchParams};
    let patch = Patch::Merge(serde_json::json!({"spec": {"template": {"metadata": {
        "annotations": {RESTARTED_AT: at}
    }}}}));
    let params = PatchParams::default();
    let ns = &l.namespace;
    let result = match kind {
        "Deployment" => Api::<Deployment>::namespaced(client, ns)
            .patch(workload, &params, &patch)
            .await
            .map(drop),
        "StatefulSet" => Api::<StatefulSet>::namespaced(client, ns)
            .patch(workload, &params, &patch)
            .await
            .map(drop),
        _ => Api::<DaemonSet>::namespaced(client, ns)
            .patch(workload, &params, &patch)
            .await
            .map(drop),
    };
    result.map_err(|e| WorkloadError::Restart {
        service: l.name.clone(),
        context: l.context.clone(),
        workload: format!("{}/{workload}", kind.to_lowercase()),
        api: crate::cluster::describe(&e),
    })
}
