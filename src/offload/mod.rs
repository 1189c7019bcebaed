//! Offloading a heavy service (Postgres, a search engine) to the shared remote dev cluster while
//! the rest of the chart keeps finding it under the same DNS name.
//!
//! The remote side is the service's subchart installed as its own Helm release in the user's
//! namespace `devenv-<user>-<project>`; the local side is a selector-less Service named after the
//! service's `host` plus an EndpointSlice pointing at the remote copy: at its routable address
//! (`connect = "direct"`, [`bridge`]) or at the host end of a port-forward through the remote
//! API server (`connect = "tunnel"`, [`tunnel`]). devenv only ever changes or deletes objects
//! that carry its labels, so a colleague's namespace or a hand-made Service is never touched.

pub mod bridge;
pub mod observe;
pub mod quota;
pub mod savings;
pub mod tunnel;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Map, Value};

/// The label every object devenv creates carries, and the one it checks before touching one.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`] on devenv's objects.
pub const DEVENV: &str = "devenv";
/// Who the remote namespace belongs to: two developers sharing a cluster never touch each other's.
pub const OWNER: &str = "devenv.dev/owner";
pub const PROJECT: &str = "devenv.dev/project";
/// On a bridge object: the service of devenv.toml it stands for, so `up` can find bridges left
/// over after a service came back to the laptop.
pub const SERVICE: &str = "devenv.dev/offload";
/// On the user's remote namespace: the devenv version that last used it.
pub const VERSION: &str = "devenv.dev/version";
/// On the user's remote namespace (an annotation): when an `up` or a toggle last used it, in
/// RFC 3339, so the platform team can find namespaces nobody uses any more.
pub const LAST_USED: &str = "devenv.dev/last-used";
/// How stale [`LAST_USED`] may be before a use writes it again: idle is measured in days, and
/// an `up` that changes nothing stays a read-only visit to the shared cluster.
const LAST_USED_GRAIN: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether the namespace's [`LAST_USED`] and [`VERSION`] are worth writing again: missing,
/// unreadable, older than [`LAST_USED_GRAIN`], or another devenv's.
fn stale_stamp(ns: &Namespace, now: k8s_openapi::jiff::Timestamp) -> bool {
    let version = ns
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(VERSION))
        .map(String::as_str);
    let then = ns
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LAST_USED))
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok());
    let fresh = then.is_some_and(|then| now.duration_since(then).unsigned_abs() < LAST_USED_GRAIN);
    version != Some(env!("CARGO_PKG_VERSION")) || !fresh
}

/// How long a single question to a cluster may take before devenv calls it unreachable.
pub const API_TIMEOUT: Duration = Duration::from_secs(15);

/// One offload step of `up`'s plan; [`crate::execute`] carries it out.
#[derive(Debug, Clone)]
pub enum Step {
    /// The user's namespace on the remote cluster exists and is theirs.
    Namespace {
        context: String,
        namespace: String,
        user: String,
        project: String,
        service: String,
        /// `[remote.quota]`, kept in the namespace (and removed with the keys).
        quota: Option<crate::config::Quota>,
    },
    /// The project's tunnel supervisor forwards exactly `forwards` (stopped when empty), from
    /// the host address the VM of `profile` sees.
    Tunnel {
        profile: String,
        /// The project's state directory, where the supervisor's files live.
        dir: PathBuf,
        context: String,
        namespace: String,
        forwards: Vec<tunnel::Forward>,
    },
    /// The local Service and EndpointSlice named `host` point at the remote copy: at its
    /// routable address, or at the tunnel's listening ports when `tunnel` names the state dir.
    Bridge {
        remote_context: String,
        remote_namespace: String,
        local_context: String,
        local_namespace: String,
        service: String,
        host: String,
        ports: Vec<u16>,
        tunnel: Option<PathBuf>,
    },
    /// The remote copy of `service` answers where the bridge will send its traffic (the tunnel's
    /// port on the host, or the remote Service's routable address): checked before the
    /// laptop's copy is turned off, so a toggle never leaves the name without a server. The
    /// laptop's Service is then kept through `release` and given the remote address.
    Reach {
        remote_context: String,
        remote_namespace: String,
        local_context: String,
        local_namespace: String,
        release: String,
        service: String,
        host: String,
        ports: Vec<u16>,
        tunnel: Option<PathBuf>,
    },
    /// A service coming back to the laptop, before the release: the bridge's Service is handed
    /// to `release`, which adopts it, so the name keeps its Service and address throughout.
    Handover {
        local_context: String,
        local_namespace: String,
        service: String,
        host: String,
        release: String,
    },
    /// The user's namespace on the remote cluster deleted, with its releases, volumes and
    /// data (`down --purge`); one that is not this user's is never touched.
    DeleteNamespace {
        context: String,
        namespace: String,
        user: String,
    },
    /// A service back on the laptop, once its local copy is rolled out: the bridge's
    /// EndpointSlice (the remote address) is deleted and the remote release uninstalled, data
    /// kept.
    Unbridge {
        local_context: String,
        local_namespace: String,
        service: String,
        host: String,
        remote_context: String,
        remote_namespace: String,
    },
}

impl Step {
    /// One line for the plan.
    pub fn describe(&self) -> String {
        match self {
            Step::Namespace {
                context,
                namespace,
                user,
                quota,
                ..
            } => format!(
                "namespace {namespace} on context {context} exists, labelled {MANAGED_BY}={DEVENV} and {OWNER}={user} (created when missing; refused if someone else's){}",
                match quota::resource_quota(quota.as_ref()) {
                    Some(q) => format!(
                        ", with ResourceQuota {} ({}) and LimitRange {} (default requests)",
                        quota::QUOTA,
                        q.spec
                            .and_then(|s| s.hard)
                            .unwrap_or_default()
                            .iter()
                            .map(|(k, v)| format!("{k}={}", v.0))
                            .collect::<Vec<_>>()
                            .join(", "),
                        quota::DEFAULTS
                    ),
                    None => String::new(),
                }
            ),
            Step::DeleteNamespace {
                context, namespace, ..
            } => format!(
                "namespace {namespace} on context {context} is deleted with its releases, volumes and data (only if it is yours)"
            ),
            Step::Tunnel {
                dir,
                context,
                namespace,
                forwards,
                ..
            } if forwards.is_empty() => format!(
                "no service of namespace {namespace} on context {context} is tunnelled any more: the tunnel supervisor ({}) is stopped if it runs",
                dir.join("tunnel.pid").display()
            ),
            Step::Tunnel {
                dir,
                context,
                namespace,
                forwards,
                ..
            } => format!(
                "a tunnel supervisor runs in the background (pid, status and log in {}) and forwards {} through the API server of context {context} to the pods of namespace {namespace}, listening only on the host address the VM sees; it reconnects when a pod restarts and is stopped by `devenv down`",
                dir.display(),
                forwards
                    .iter()
                    .map(|f| format!("{}:{}", f.host, f.port))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Step::Bridge {
                remote_context,
                remote_namespace,
                local_namespace,
                host,
                ports,
                tunnel,
                ..
            } => format!(
                "Service {host} (ports {}) and EndpointSlice {host} in namespace {local_namespace} point at {}",
                ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                match tunnel {
                    Some(_) => format!(
                        "the tunnel's ports on the host (to Service {host} in {remote_namespace} on context {remote_context}; each forward checked first)"
                    ),
                    None => format!(
                        "the routable address of Service {host} in {remote_namespace} on context {remote_context} (direct connection; reachability checked first)"
                    ),
                }
            ),
            Step::Reach {
                remote_context,
                remote_namespace,
                service,
                host,
                tunnel,
                local_namespace,
                release,
                ..
            } => format!(
                "the remote {service} answers at {} before the laptop's copy is turned off; then Service {host} in namespace {local_namespace} is kept through the release of {release} (helm.sh/resource-policy=keep) and gets the remote address in devenv's EndpointSlice, so the name never loses its Service",
                match tunnel {
                    Some(_) => format!(
                        "the tunnel's ports on the host (Service {host} in {remote_namespace} on context {remote_context})"
                    ),
                    None => format!(
                        "the routable address of Service {host} in {remote_namespace} on context {remote_context}"
                    ),
                }
            ),
            Step::Unbridge {
                local_namespace,
                service,
                host,
                remote_context,
                remote_namespace,
                ..
            } => format!(
                "{service} is back on the laptop and rolled out: devenv's EndpointSlice {host} (the remote address) is deleted from namespace {local_namespace} and the Service left to the release, then `helm uninstall {service} --kube-context {remote_context} --namespace {remote_namespace}` (its volumes are kept)"
            ),
            Step::Handover {
                local_namespace,
                service,
                host,
                release,
                ..
            } => format!(
                "{service} comes back to the laptop: the bridge Service {host} in namespace {local_namespace} gets Helm's ownership marks for release {release}, which adopts it and adds the local pods; the remote copy keeps answering under the name until they are ready"
            ),
        }
    }
}

/// Whether `[remote] server` allows the cluster `remote.context` points at: empty allows any;
/// otherwise the context's cluster server in the kubeconfig must be one of the URLs (without a
/// trailing `/`, scheme and host compared in any case). The error says where the context points
/// and what is allowed, so a context repointed at production is refused before anything is sent.
pub fn allowed_server(remote: &crate::config::Remote) -> Result<(), ServerRefusal> {
    if remote.server.is_empty() {
        return Ok(());
    }
    let kubeconfig = crate::cluster::read_kubeconfig()?;
    let cluster = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == remote.context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| ServerRefusal::NoContext(remote.context.clone()))?;
    let server = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .ok_or_else(|| ServerRefusal::NoServer {
            context: remote.context.clone(),
            cluster: cluster.clone(),
        })?;
    let normal = |url: &str| {
        let url = url.trim().trim_end_matches('/');
        match url.split_once("://") {
            Some((scheme, rest)) => {
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                format!(
                    "{}://{}{}{path}",
                    scheme.to_ascii_lowercase(),
                    host.to_ascii_lowercase(),
                    if path.is_empty() { "" } else { "/" }
                )
            }
            None => url.to_ascii_lowercase(),
        }
    };
    if remote.server.iter().any(|s| normal(s) == normal(&server)) {
        return Ok(());
    }
    Err(ServerRefusal::Elsewhere {
        context: remote.context.clone(),
        server,
        allowed: remote
            .server
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Why `[remote] server` refuses the cluster `[remote] context` points at.
#[derive(Debug, thiserror::Error)]
pub enum ServerRefusal {
    #[error(transparent)]
    Kubeconfig(#[from] crate::cluster::KubeconfigError),
    #[error("there is no kubeconfig context {0}")]
    NoContext(String),
    #[error("kubeconfig context {context} names cluster {cluster}, which has no server")]
    NoServer { context: String, cluster: String },
    #[error(
        "kubeconfig context {context} points at {server}, which is not the shared dev cluster ([remote] server = {allowed}): devenv sends nothing there"
    )]
    Elsewhere {
        context: String,
        server: String,
        allowed: String,
    },
}

/// The user's namespace for a project on the remote cluster.
pub fn remote_namespace(user: &str, project: &str) -> String {
    format!("devenv-{user}-{project}")
}

#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    /// The remote context is missing from the kubeconfig, its server does not answer, or it
    /// refuses the credentials.
    #[error("cannot use the remote cluster of kubeconfig context {context}: {message}")]
    Remote {
        context: String,
        service: String,
        message: String,
    },
    /// The local cluster (the VM) cannot be asked.
    #[error("cannot reach the local cluster of kubeconfig context {context}: {message}")]
    Local { context: String, message: String },
    /// An object devenv would create or change exists without devenv's labels.
    #[error(
        "{kind} {name} in namespace {namespace} (context {context}) exists but was not made by devenv; devenv does not change it"
    )]
    Foreign {
        kind: &'static str,
        name: String,
        namespace: String,
        context: String,
    },
    #[error("the remote Service {name} is missing from namespace {namespace} (context {context})")]
    NoRemoteService {
        name: String,
        namespace: String,
        context: String,
        service: String,
    },
    #[error("the remote Service {name} has no address this laptop can route to: {why}")]
    NoAddress {
        name: String,
        why: String,
        service: String,
    },
    #[error("{addr} (the remote {service}) is not reachable from this laptop: {message}")]
    Unreachable {
        addr: std::net::SocketAddr,
        service: String,
        message: String,
    },
    #[error(transparent)]
    Tunnel(Box<tunnel::TunnelError>),
    #[error(
        "namespace {name} on context {context} is still terminating after {}s", .after.as_secs()
    )]
    StillTerminating {
        name: String,
        context: String,
        after: Duration,
        /// What the namespace controller still waits for.
        finalizers: Vec<String>,
    },
    #[error("the Kubernetes API of context {context} {}", crate::cluster::describe(.source))]
    Api {
        context: String,
        #[source]
        source: kube::Error,
    },
}

impl OffloadError {
    /// The user's next step.
    pub fn help(&self) -> Option<String> {
        let back =
            |s: &str| format!("`devenv offload {s} --local` runs {s} on this laptop instead");
        match self {
            OffloadError::Remote {
                context, service, ..
            } if service.is_empty() => Some(format!(
                "`kubectl --context {context} get namespaces` shows the problem (missing context, unreachable server or refused credentials)"
            )),
            OffloadError::Remote {
                context, service, ..
            } => Some(format!(
                "`kubectl --context {context} get namespaces` shows the problem (missing context, unreachable server or refused credentials); {}",
                back(service)
            )),
            OffloadError::StillTerminating {
                name,
                context,
                finalizers,
                ..
            } => Some(format!(
                "the cluster is still deleting what was in it{}; `kubectl --context {context} get namespace {name} -o yaml` shows its conditions; run the command again once it is gone",
                if finalizers.is_empty() {
                    String::new()
                } else {
                    format!(" (finalizers: {})", finalizers.join(", "))
                }
            )),
            OffloadError::Foreign {
                kind,
                name,
                namespace,
                context,
            } => Some(format!(
                "look at it with `kubectl --context {context} -n {namespace} get {} {name} -o yaml`; delete or rename it yourself if it is not needed",
                kind.to_lowercase()
            )),
            OffloadError::NoRemoteService {
                name,
                namespace,
                context,
                service,
            } => Some(format!(
                "the subchart must create a Service named {name}: `kubectl --context {context} -n {namespace} get services`; {}",
                back(service)
            )),
            OffloadError::NoAddress { service, .. } => Some(format!(
                "connect = \"direct\" needs the remote Service to be of type LoadBalancer (with an ingress IP) or NodePort; {}",
                back(service)
            )),
            OffloadError::Unreachable { service, .. } => Some(format!(
                "connect = \"direct\" needs a route from this laptop to the remote cluster's nodes (VPN?); {}",
                back(service)
            )),
            OffloadError::Local { context, .. } => Some(format!(
                "`kubectl --context {context} get nodes` shows the problem; `devenv status` shows the VM"
            )),
            OffloadError::Tunnel(e) => e.help(),
            OffloadError::Api { .. } => None,
        }
    }
}

/// A kube client for the remote context, checked by asking the server its version, so a missing
/// context, a dead server or refused credentials are reported here with the way out.
pub async fn connect_remote(context: &str, service: &str) -> Result<Client, OffloadError> {
    let remote = |message: String| OffloadError::Remote {
        context: context.to_string(),
        service: service.to_string(),
        message,
    };
    let client = crate::cluster::client(context)
        .await
        .map_err(|e| remote(e.to_string()))?;
    match tokio::time::timeout(API_TIMEOUT, client.apiserver_version()).await {
        Err(_) => Err(remote(format!(
            "no answer within {}s",
            API_TIMEOUT.as_secs()
        ))),
        Ok(Err(e)) => Err(remote(e.to_string())),
        Ok(Ok(_)) => Ok(client),
    }
}

/// The values the umbrella chart would hand the subchart under `key`, for its remote release:
/// the `key` section and the `global` section of each file in order (the chart's values.yaml,
/// then the team's values files), merged as Helm merges them. Without this the remote copy
/// would run with the subchart's bare defaults (another database name, another password).
pub fn subchart_values(files: &[PathBuf], key: &str) -> Result<Value, ValuesError> {
    let mut out = Value::Object(Map::new());
    for file in files {
        if !file.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(file).map_err(|source| ValuesError::Read {
            path: file.clone(),
            source,
        })?;
        let values: Value = serde_norway::from_str(&text).map_err(|e| ValuesError::Yaml {
            path: file.clone(),
            message: e.to_string(),
        })?;
        if let Some(section) = values.get(key) {
            merge(&mut out, section);
        }
        if let Some(global) = values.get("global") {
            merge(&mut out, &serde_json::json!({ "global": global }));
        }
    }
    if let Value::Object(map) = &mut out {
        // The switch of the umbrella chart, meaningless to the subchart on its own.
        map.remove("enabled");
    }
    Ok(out)
}

/// Why the values of a subchart cannot be gathered.
#[derive(Debug, thiserror::Error)]
pub enum ValuesError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid YAML: {message}", path.display())]
    Yaml { path: PathBuf, message: String },
}

/// Deep-merge `src` into `dst`: maps key by key, anything else replaced.
fn merge(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                merge(d.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (d, s) => *d = s.clone(),
    }
}

/// Whether an object's labels say devenv made it.
pub fn is_devenv(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels
        .and_then(|l| l.get(MANAGED_BY))
        .is_some_and(|v| v == DEVENV)
}

/// Whether a remote namespace is devenv's and belongs to `user`: the only kind devenv reuses or
/// deletes.
pub fn is_users_namespace(ns: &Namespace, user: &str) -> bool {
    let labels = ns.metadata.labels.as_ref();
    is_devenv(labels) && labels.and_then(|l| l.get(OWNER)).map(String::as_str) == Some(user)
}

/// Create the user's namespace on the remote cluster when missing. An existing namespace must
/// be devenv's and this user's: another developer's, or one made by hand, is refused.
/// Returns whether it was created.
pub async fn ensure_namespace(
    client: Client,
    context: &str,
    name: &str,
    user: &str,
    project: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<bool, OffloadError> {
    let api_err = |source| OffloadError::Api {
        context: context.to_string(),
        source,
    };
    let api: Api<Namespace> = Api::all(client);
    let instant = k8s_openapi::jiff::Timestamp::now();
    let now = instant.to_string();
    let version = env!("CARGO_PKG_VERSION");
    if let Some(ns) = users_namespace(&api, context, name, user).await? {
        if !is_terminating(&ns) {
            if !stale_stamp(&ns, instant) {
                return Ok(false);
            }
            let stamp = serde_json::json!({"metadata": {
                "labels": {VERSION: version},
                "annotations": {LAST_USED: now},
            }});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&stamp))
                .await
                .map_err(api_err)?;
            return Ok(false);
        }
        // Deleted moments ago (`down --purge`, `--local --purge`): nothing can be created in
        // it until the namespace controller has emptied it, so wait for it to go.
        progress(&format!(
            "namespace {name} on {context} is still terminating: waiting for it to go (at most {}s)",
            TERMINATION_BOUND.as_secs()
        ));
        wait_gone(&api, context, name, TERMINATION_BOUND, progress).await?;
    }
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels(&[
                (OWNER, user),
                (PROJECT, project),
                (VERSION, version),
            ])),
            annotations: Some(BTreeMap::from([(LAST_USED.to_string(), now)])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    api.create(&PostParams::default(), &ns)
        .await
        .map_err(api_err)?;
    Ok(true)
}

async fn read_namespace(
    api: &Api<Namespace>,
    context: &str,
    name: &str,
) -> Result<Option<Namespace>, OffloadError> {
    api.get_opt(name).await.map_err(|source| OffloadError::Api {
        context: context.to_string(),
        source,
    })
}

/// Namespace `name` when it exists; an error when it is not devenv's and this user's.
async fn users_namespace(
    api: &Api<Namespace>,
    context: &str,
    name: &str,
    user: &str,
) -> Result<Option<Namespace>, OffloadError> {
    match read_namespace(api, context, name).await? {
        Some(ns) if !is_users_namespace(&ns, user) => Err(OffloadError::Foreign {
            kind: "Namespace",
            name: name.to_string(),
            namespace: name.to_string(),
            context: context.to_string(),
        }),
        ns => Ok(ns),
    }
}

/// How long a namespace may take to terminate before devenv gives up waiting: the namespace
/// controller deletes every object in it first, volumes and finalizers included, which takes
/// seconds on an idle cluster and a few minutes on a busy one.
pub const TERMINATION_BOUND: Duration = Duration::from_secs(300);

fn is_terminating(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
}

/// Wait until namespace `name` is gone, saying every 10 s how long it has waited, for at most
/// `within`.
async fn wait_gone(
    api: &Api<Namespace>,
    context: &str,
    name: &str,
    within: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), OffloadError> {
    let started = std::time::Instant::now();
    let mut said = started;
    loop {
        let Some(ns) = read_namespace(api, context, name).await? else {
            return Ok(());
        };
        if started.elapsed() >= within {
            let left = ns
                .spec
                .as_ref()
                .and_then(|s| s.finalizers.clone())
                .unwrap_or_default();
            return Err(OffloadError::StillTerminating {
                name: name.to_string(),
                context: context.to_string(),
                after: within,
                finalizers: left,
            });
        }
        if said.elapsed() >= Duration::from_secs(10) {
            said = std::time::Instant::now();
            progress(&format!(
                "namespace {name} on {context}: still terminating after {}s",
                started.elapsed().as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Delete the user's remote namespace, with everything in it, when it is devenv's and this
/// user's, and wait (at most [`TERMINATION_BOUND`]) until the server has really removed it, so
/// the next `offload --remote` can create it again. Returns whether it existed.
pub async fn delete_namespace(
    client: Client,
    context: &str,
    name: &str,
    user: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<bool, OffloadError> {
    let api_err = |source| OffloadError::Api {
        context: context.to_string(),
        source,
    };
    let api: Api<Namespace> = Api::all(client);
    let Some(ns) = users_namespace(&api, context, name, user).await? else {
        return Ok(false);
    };
    if !is_terminating(&ns) {
        api.delete(name, &kube::api::DeleteParams::default())
            .await
            .map_err(api_err)?;
    }
    wait_gone(&api, context, name, TERMINATION_BOUND, progress).await?;
    Ok(true)
}

/// devenv's labels plus `extra`.
pub fn labels(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    std::iter::once((MANAGED_BY, DEVENV))
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_namespace_names_the_user_and_the_project() {
        assert_eq!(remote_namespace("ann", "shop"), "devenv-ann-shop");
    }

    #[test]
    fn the_remote_release_gets_the_umbrella_and_team_values_of_its_subchart() {
        let dir = tempfile::tempdir().unwrap();
        let chart = dir.path().join("values.yaml");
        let team = dir.path().join("values-dev.yaml");
        std::fs::write(
            &chart,
            "global:\n  partOf: shop\npostgresql:\n  enabled: true\n  database: shop\n  storage:\n    size: 1Gi\napi:\n  replicas: 1\n",
        )
        .unwrap();
        std::fs::write(&team, "postgresql:\n  storage:\n    size: 5Gi\n").unwrap();
        let v = subchart_values(
            &[chart, team, dir.path().join("missing.yaml")],
            "postgresql",
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "database": "shop",
                "storage": {"size": "5Gi"},
                "global": {"partOf": "shop"},
            })
        );
    }

    #[test]
    fn only_objects_labelled_by_devenv_count_as_its_own() {
        assert!(is_devenv(Some(&labels(&[]))));
        let helm: BTreeMap<String, String> = [(MANAGED_BY.to_string(), "Helm".to_string())].into();
        assert!(!is_devenv(Some(&helm)));
        assert!(!is_devenv(None));
    }

    #[test]
    fn a_remote_failure_names_the_context_the_kubectl_command_and_the_way_back() {
        let e = OffloadError::Remote {
            context: "dev-cluster".into(),
            service: "postgres".into(),
            message: "context not found".into(),
        };
        assert!(e.to_string().contains("dev-cluster"));
        let help = e.help().unwrap();
        assert!(help.contains("kubectl --context dev-cluster get namespaces"));
        assert!(help.contains("devenv offload postgres --local"));
    }
}
