//! The local cluster through the Kubernetes API (kube-rs): the rollout of the release watched
//! until every Deployment and StatefulSet is ready, and a pod that cannot start surfaced at once
//! with its events and last log lines instead of a silent wait until the timeout.

pub mod conditions;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, LogParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use conditions::{PodProblem, deployment_ready, pod_problem, statefulset_ready};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach the cluster of kubeconfig context {context}: {message}")]
    Connect { context: String, message: String },
    #[error("the Kubernetes API {}", describe(.0))]
    Api(#[from] kube::Error),
    #[error("{} in namespace {namespace} cannot start: {} ({})", .problem.pod, .problem.reason, .problem.message)]
    Stuck {
        namespace: String,
        problem: PodProblem,
        /// The pod's recent events, oldest first.
        events: Vec<String>,
        /// The container's last log lines.
        logs: String,
    },
    #[error("{name} in namespace {namespace} failed to roll out: {message}")]
    Failed {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("not ready after {}s in namespace {namespace}: {}", .after.as_secs(), .waiting.join(", "))]
    Timeout {
        namespace: String,
        after: Duration,
        waiting: Vec<String>,
    },
    /// The server took the connection and never answered: not the same as "could not connect"
    /// (nothing listens) or "answered with an error".
    #[error("the Kubernetes API accepted the connection but did not answer {what} within {}s", .after.as_secs())]
    Unanswered { what: String, after: Duration },
}

impl ClusterError {
    pub fn help(&self) -> Option<String> {
        match self {
            ClusterError::Connect { context, .. } => Some(format!(
                "`kubectl --context {context} get nodes` shows what is wrong; `devenv status` shows the VM"
            )),
            ClusterError::Stuck {
                namespace,
                problem,
                events,
                logs,
            } => {
                let mut h = String::new();
                if !events.is_empty() {
                    h.push_str(&format!("its events:\n  {}\n", events.join("\n  ")));
                }
                if !logs.trim().is_empty() {
                    h.push_str(&format!(
                        "its last log lines:\n  {}\n",
                        logs.trim_end().replace('\n', "\n  ")
                    ));
                }
                h.push_str(&format!(
                    "more: kubectl -n {namespace} describe pod {}",
                    problem.pod
                ));
                Some(h)
            }
            ClusterError::Timeout { namespace, .. } => Some(format!(
                "kubectl -n {namespace} get pods shows where it stands; raise project.rollout_timeout if the images are large"
            )),
            ClusterError::Unanswered { .. } => Some(
                "the API server is stuck or overloaded: `devenv status` shows the VM; `minikube ssh -p <profile> -- sudo crictl ps` shows whether kube-apiserver runs; `devenv up` again once it answers".into(),
            ),
            _ => None,
        }
    }
}

/// A client for a kubeconfig context (the local cluster's is named after the minikube profile).
pub async fn client(context: &str) -> Result<Client, ClusterError> {
    let connect = |message: String| ClusterError::Connect {
        context: context.to_string(),
        message,
    };
    let kubeconfig = read_kubeconfig().map_err(|e| connect(e.to_string()))?;
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..KubeConfigOptions::default()
    };
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| connect(e.to_string()))?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    Client::try_from(config).map_err(|e| connect(e.to_string()))
}

/// A client error in words, for a sentence that starts "the Kubernetes API …": whether the
/// server answered (its code, reason and message, never the Rust form of its Status) or could
/// not be reached at all. A 404 without an object kind means the server does not serve that
/// resource type (an API group or version it lacks), not that an object is missing.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let unserved = status.code == 404
                && status
                    .details
                    .as_ref()
                    .is_none_or(|d| d.kind.is_empty() && d.name.is_empty());
            if unserved {
                format!(
                    "does not serve this resource type (404: {})",
                    status.message
                )
            } else if status.reason.is_empty() {
                format!("answered {}: {}", status.code, status.message)
            } else {
                format!(
                    "answered {} {}: {}",
                    status.code, status.reason, status.message
                )
            }
        }
        kube::Error::HyperError(e) => format!("could not be reached: {e}"),
        kube::Error::Service(e) => format!("could not be reached: {e}"),
        other => format!("failed: {other}"),
    }
}

/// devenv's User-Agent on every API request, so a cluster's audit log names it.
pub const USER_AGENT: &str = concat!("devenv/", env!("CARGO_PKG_VERSION"));

/// The kubeconfig as kubectl and helm read it: every file `$KUBECONFIG` lists that exists,
/// merged in order (the first to set a value wins), else `~/.kube/config`. A listed file that
/// does not exist is skipped, as client-go skips it: a cold `offload --remote` runs before
/// minikube has written the first file of `local:remote`.
pub fn read_kubeconfig() -> Result<Kubeconfig, KubeconfigError> {
    let listed: Vec<PathBuf> = std::env::var_os("KUBECONFIG")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let paths = if listed.is_empty() {
        let home = std::env::home_dir().ok_or(KubeconfigError::NoHome)?;
        vec![home.join(".kube/config")]
    } else {
        listed
    };
    merge_kubeconfigs(&paths)
}

/// The files of `paths` that exist, merged in order.
fn merge_kubeconfigs(paths: &[PathBuf]) -> Result<Kubeconfig, KubeconfigError> {
    let mut merged: Option<Kubeconfig> = None;
    for path in paths.iter().filter(|p| p.exists()) {
        let next = Kubeconfig::read_from(path).map_err(|e| KubeconfigError::Unreadable {
            path: path.clone(),
            message: e.to_string(),
        })?;
        merged = Some(match merged {
            None => next,
            Some(m) => m.merge(next).map_err(|e| KubeconfigError::Unreadable {
                path: path.clone(),
                message: e.to_string(),
            })?,
        });
    }
    merged.ok_or_else(|| KubeconfigError::NoneExists {
        looked: paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Why the kubeconfig cannot be read as kubectl would.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("no home directory to find ~/.kube/config in")]
    NoHome,
    #[error("{}: {message}", path.display())]
    Unreadable { path: PathBuf, message: String },
    #[error("no kubeconfig file exists (looked for {looked})")]
    NoneExists { looked: String },
}

/// Service `name` of `namespace` and the pods its selector picks, sorted by name: where its
/// traffic goes. A missing Service or one without a selector is an error saying so.
pub async fn service_pods(
    client: Client,
    namespace: &str,
    name: &str,
) -> Result<(k8s_openapi::api::core::v1::Service, Vec<Pod>), ServiceError> {
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), namespace);
    let svc = services
        .get_opt(name)
        .await
        .map_err(|e| ServiceError::Read {
            name: name.to_string(),
            api: describe(&e),
        })?
        .ok_or_else(|| ServiceError::Missing {
            name: name.to_string(),
            namespace: namespace.to_string(),
        })?;
    let selector = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ServiceError::NoSelector {
            name: name.to_string(),
        })?;
    let labels = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let mut list = pods
        .list(&ListParams::default().labels(&labels))
        .await
        .map_err(|e| ServiceError::ListPods {
            name: name.to_string(),
            api: describe(&e),
        })?
        .items;
    list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok((svc, list))
}

/// Why a Service's pods cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot read Service {name}: the Kubernetes API {api}")]
    Read { name: String, api: String },
    #[error("Service {name} is missing from namespace {namespace}")]
    Missing { name: String, namespace: String },
    #[error("Service {name} has no selector")]
    NoSelector { name: String },
    #[error("cannot list the pods of Service {name}: the Kubernetes API {api}")]
    ListPods { name: String, api: String },
}

/// The longest one request of a wait may go unanswered before devenv says so and asks again.
/// kube's own read timeout is almost five minutes (it suits watches); a list that takes more
/// than this on a laptop's cluster is a stuck server, not a slow one.
pub const ANSWER_BOUND: Duration = Duration::from_secs(30);

/// What a request gets even at the very end of a wait: the last look at the rollout must be
/// able to see it ready, or say what is not.
const ANSWER_FLOOR: Duration = Duration::from_secs(5);

/// One request given `bound`: its answer, the server's error, or [`ClusterError::Unanswered`]
/// naming `what` when the server took the connection and said nothing in that time.
pub async fn answered<T>(
    what: &str,
    bound: Duration,
    request: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(bound, request).await {
        Ok(answer) => answer.map_err(ClusterError::Api),
        Err(_) => Err(ClusterError::Unanswered {
            what: what.to_string(),
            after: bound,
        }),
    }
}

/// `request`, given until `deadline` (at least [`ANSWER_FLOOR`]) and at most
/// [`ANSWER_BOUND`]; `Ok(None)` when it did not answer in that time.
async fn within<T>(
    deadline: Instant,
    request: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<Option<T>, kube::Error> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .clamp(ANSWER_FLOOR, ANSWER_BOUND);
    match tokio::time::timeout(left, request).await {
        Ok(answer) => answer.map(Some),
        Err(_) => Ok(None),
    }
}

/// Wait until every Deployment and StatefulSet of `namespace` is rolled out, reporting what it
/// waits for through `progress`; stop early when a pod cannot start by itself. The whole wait
/// ends at `timeout`, whatever the server does: a request it leaves unanswered is reported
/// after [`ANSWER_BOUND`] and asked again, and the wait ends with [`ClusterError::Unanswered`]
/// when the time is up without an answer.
pub async fn wait_rollout(
    client: Client,
    namespace: &str,
    timeout: Duration,
    progress: impl Fn(&str),
) -> Result<usize, ClusterError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    let deadline = started + timeout;
    let all = ListParams::default();
    // A request without an answer: the end of the wait once its time is up, otherwise said
    // and asked again.
    let give_up = |what: &str| {
        if Instant::now() >= deadline {
            return Some(ClusterError::Unanswered {
                what: what.to_string(),
                after: started.elapsed(),
            });
        }
        progress(&format!(
            "the Kubernetes API has not answered {what} for {}s; asking again",
            ANSWER_BOUND.as_secs()
        ));
        None
    };
    loop {
        let workloads = "the list of Deployments and StatefulSets";
        let lists = async { tokio::try_join!(deployments.list(&all), statefulsets.list(&all)) };
        let Some((ds, ss)) = within(deadline, lists).await? else {
            if let Some(e) = give_up(workloads) {
                return Err(e);
            }
            continue;
        };
        let total = ds.items.len() + ss.items.len();
        let mut waiting = Vec::new();
        for d in &ds.items {
            let name = d.metadata.name.clone().unwrap_or_default();
            match deployment_ready(d) {
                Ok(true) => {}
                Ok(false) => waiting.push(format!("deployment/{name}")),
                Err(message) => {
                    return Err(ClusterError::Failed {
                        namespace: namespace.to_string(),
                        name: format!("deployment/{name}"),
                        message: message.to_string(),
                    });
                }
            }
        }
        for s in &ss.items {
            if !statefulset_ready(s) {
                waiting.push(format!(
                    "statefulset/{}",
                    s.metadata.name.clone().unwrap_or_default()
                ));
            }
        }
        if waiting.is_empty() {
            return Ok(total);
        }
        progress(&format!(
            "{} of {total} ready; waiting for {}",
            total - waiting.len(),
            waiting.join(", ")
        ));
        let Some(pod_list) = within(deadline, pods.list(&all)).await? else {
            if let Some(e) = give_up("the list of pods") {
                return Err(e);
            }
            continue;
        };
        if let Some(problem) = pod_list.items.iter().find_map(pod_problem) {
            let (events, logs) = pod_details(&client, namespace, &problem).await;
            return Err(ClusterError::Stuck {
                namespace: namespace.to_string(),
                problem,
                events,
                logs,
            });
        }
        if started.elapsed() >= timeout {
            return Err(ClusterError::Timeout {
                namespace: namespace.to_string(),
                after: timeout,
                waiting,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The pod's last events and its container's last log lines; what cannot be read says why in
/// its place, and never hides the problem itself.
async fn pod_details(
    client: &Client,
    namespace: &str,
    problem: &PodProblem,
) -> (Vec<String>, String) {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("involvedObject.name={}", problem.pod);
    let bound = Instant::now() + ANSWER_BOUND;
    let unanswered = || format!("(no answer within {}s)", ANSWER_BOUND.as_secs());
    // The kubelet writes a pod's status and its events separately: the Warning that explains
    // a back-off may land a moment after the status that shows it. Asked again for up to a
    // second and a half while the pod has no Warning yet.
    let mut listed = within(bound, events.list(&ListParams::default().fields(&selector))).await;
    for _ in 0..3 {
        let warned = match &listed {
            Ok(Some(list)) => list
                .items
                .iter()
                .any(|e| e.type_.as_deref() == Some("Warning")),
            _ => true,
        };
        if warned {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        listed = within(bound, events.list(&ListParams::default().fields(&selector))).await;
    }
    let events = match listed {
        Ok(None) => vec![unanswered()],
        Ok(Some(list)) => {
            let mut items = list.items;
            items.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
            items
                .iter()
                .rev()
                .take(5)
                .rev()
                .map(|e| {
                    format!(
                        "{} {}: {}",
                        e.type_.clone().unwrap_or_default(),
                        e.reason.clone().unwrap_or_default(),
                        e.message.clone().unwrap_or_default()
                    )
                })
                .collect()
        }
        Err(e) => vec![format!(
            "(could not read them: the Kubernetes API {})",
            describe(&e)
        )],
    };
    let params = LogParams {
        container: Some(problem.container.clone()),
        tail_lines: Some(20),
        ..LogParams::default()
    };
    let logs = match within(bound, pods.logs(&problem.pod, &params)).await {
        Ok(None) => unanswered(),
        Ok(Some(logs)) => logs,
        Err(e) => format!("(could not read them: the Kubernetes API {})", describe(&e)),
    };
    (events, logs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REMOTE: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: dev\n  cluster:\n    server: https://dev.example:6443\ncontexts:\n- name: dev\n  context:\n    cluster: dev\n    user: dev\nusers:\n- name: dev\n  user: {}\n";

    fn status(code: u16, reason: &str, message: &str, kind: Option<&str>) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: message.into(),
            details: kind.map(|k| {
                serde_json::from_value(serde_json::json!({"kind": k, "name": "shop"})).unwrap()
            }),
            ..Default::default()
        }))
    }

    #[test]
    fn a_server_that_takes_the_connection_and_never_answers_ends_the_wait_at_its_bound() {
        // Accepts every connection and holds it open without a byte in reply.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                held.push(conn);
            }
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let said = std::sync::Mutex::new(Vec::new());
        let result = runtime.block_on(async {
            let client = Client::try_from(Config::new(url.parse().unwrap())).unwrap();
            // A generous outer bound: the wait itself must end at its own (2 s).
            tokio::time::timeout(
                Duration::from_secs(120),
                wait_rollout(client, "shop", Duration::from_secs(2), |l| {
                    said.lock().unwrap().push(l.to_string())
                }),
            )
            .await
        });
        let err = result
            .expect("the wait ended by itself")
            .expect_err("no answer is no rollout");
        assert!(
            matches!(&err, ClusterError::Unanswered { what, .. } if what == "the list of Deployments and StatefulSets"),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("the Kubernetes API accepted the connection but did not answer"),
            "{err}"
        );
        assert!(err.help().is_some());
    }

    #[test]
    fn api_errors_are_described_in_words_without_the_rust_form_of_the_status() {
        let e = status(
            409,
            "AlreadyExists",
            "namespaces \"shop\" already exists",
            Some("namespaces"),
        );
        assert_eq!(
            describe(&e),
            "answered 409 AlreadyExists: namespaces \"shop\" already exists"
        );
        let e = status(
            404,
            "NotFound",
            "namespaces \"shop\" not found",
            Some("namespaces"),
        );
        assert_eq!(
            describe(&e),
            "answered 404 NotFound: namespaces \"shop\" not found"
        );
        // What a 1.20 server answers for discovery.k8s.io/v1, which it does not serve.
        let e = status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        );
        assert_eq!(
            describe(&e),
            "does not serve this resource type (404: the server could not find the requested resource)"
        );
        let text = ClusterError::Api(e).to_string();
        assert!(!text.contains("Status {"), "{text}");
    }

    #[test]
    fn a_listed_kubeconfig_that_does_not_exist_yet_is_skipped_as_kubectl_skips_it() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("local");
        let remote = dir.path().join("remote");
        std::fs::write(&remote, REMOTE).unwrap();
        let merged = merge_kubeconfigs(&[local.clone(), remote]).unwrap();
        assert_eq!(merged.contexts.len(), 1);
        assert_eq!(merged.contexts[0].name, "dev");
        let none = merge_kubeconfigs(std::slice::from_ref(&local))
            .unwrap_err()
            .to_string();
        assert!(none.contains(&local.display().to_string()), "{none}");
    }
}
