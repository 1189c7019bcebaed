//! `pods/<name>/log`, as kube-apiserver serves it by proxying to the kubelet, which reads the
//! container runtime's log file.
//!
//! **Copied from the real server** (Kubernetes v1.34: `pkg/registry/core/pod/strategy.go`
//! `LogLocation`; `pkg/kubelet/kubelet_pods.go` `validateContainerLogStatus` and
//! `GetContainerLogs`; `pkg/kubelet/kuberuntime/logs` for the options):
//! - which container's log is read: with `previous=true` the one in `lastState.terminated`
//!   (none: 400 `previous terminated container "c" in pod "p" not found`); else the running one;
//!   else a terminated one, or the last terminated; else, when it waits, 400 `container "c" in
//!   pod "p" is waiting to start: <reason>` (`image can't be pulled` and `trying and failing to
//!   pull image` for ErrImagePull and ImagePullBackOff). A crash-looping container therefore
//!   serves the log of its last run. No container name and several containers: 400 `a container
//!   name must be specified…`; an unknown one: 400 `container c is not valid for pod p`; a pod
//!   without a node: 400 `pod p does not have a host assigned`.
//! - `timestamps=true` puts each line's RFC 3339 time with nanoseconds (trailing zeros dropped,
//!   as Go's `RFC3339Nano`) and a space before it; `sinceSeconds` / `sinceTime` keep lines at or
//!   after that time (both: 400); `tailLines` keeps the last N of those.
//! - `follow=true` streams: what is there, then each new line as it is written, until that
//!   container stops (a restart ends the stream: the next one is another container) or the pod
//!   is deleted. Nothing is sent for a quiet container (no keep-alive lines).
//!
//! **Simplified**: a line is what the test writes ([`super::ApiServer::append_pod_log`]), timed
//! when written; the runtime's stream (stdout or stderr) is not kept; `limitBytes` and
//! `insecureSkipTLSVerifyBackend` are ignored. A running container status without a
//! `containerID` (written by hand in a test) has its log under the container's name.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::http::{Body, Shared};
use super::resources;
use super::store::ApiError;

/// How often a follow stream looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(40);

/// Which log a request reads: the container, the key its lines are kept under, and whether that
/// container is the one running now (only then can a follow stream go on).
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub container: String,
    pub id: String,
    pub running: bool,
}

/// The kubelet's choice of container log for `pod` (see the header).
pub fn source(pod: &Value, container: Option<&str>, previous: bool) -> Result<Source, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let container = match container {
        Some(c) => c,
        None if names.len() == 1 => names[0],
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    if !names.contains(&container) {
        return Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    if pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
        && pod["status"]["containerStatuses"].is_null()
    {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == container));
    let Some(status) = status else {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    };
    let id_of = |v: &Value| {
        v["containerID"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_string)
    };
    let found = |id: String, running: bool| {
        Ok(Source {
            container: container.to_string(),
            id,
            running,
        })
    };
    let last = &status["lastState"]["terminated"];
    let state = &status["state"];
    if previous {
        return match id_of(last) {
            Some(id) if last.is_object() => found(id, false),
            _ => Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            ))),
        };
    }
    if state["running"].is_object() {
        return found(id_of(status).unwrap_or_else(|| container.to_string()), true);
    }
    let terminated = |v: &Value| {
        id_of(v).ok_or_else(|| {
            ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is terminated"
            ))
        })
    };
    if state["terminated"].is_object() {
        let id = id_of(&state["terminated"]).or_else(|| id_of(last));
        return match id {
            Some(id) => found(id, false),
            None => Err(terminated(&Value::Null).unwrap_err()),
        };
    }
    if last.is_object() {
        return found(terminated(last)?, false);
    }
    let reason = match state["waiting"]["reason"].as_str() {
        Some("ErrImagePull") => "image can't be pulled".to_string(),
        Some("ImagePullBackOff") => "trying and failing to pull image".to_string(),
        Some(reason) => reason.to_string(),
        None => {
            return Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start - no logs yet"
            )));
        }
    };
    Err(ApiError::bad_request(format!(
        "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
    )))
}

/// The options of one request, checked as the API server checks `PodLogOptions`.
struct Options {
    container: Option<String>,
    previous: bool,
    follow: bool,
    timestamps: bool,
    since: Option<Timestamp>,
    tail: Option<usize>,
}

fn options(q: &HashMap<String, String>) -> Result<Options, ApiError> {
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    let since_seconds = q.get("sinceSeconds").map(|s| s.parse::<i64>());
    let since_time = q.get("sinceTime").map(|s| s.parse::<Timestamp>());
    let since = match (since_seconds, since_time) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "at most one of `sinceTime` or `sinceSeconds` may be specified".to_string(),
            ));
        }
        (Some(Ok(s)), None) if s > 0 => Some(Timestamp::now() - SignedDuration::from_secs(s)),
        (Some(_), None) => {
            return Err(ApiError::bad_request(
                "sinceSeconds: Invalid value: must be greater than 0".to_string(),
            ));
        }
        (None, Some(Ok(t))) => Some(t),
        (None, Some(Err(e))) => {
            return Err(ApiError::bad_request(format!("sinceTime: {e}")));
        }
        (None, None) => None,
    };
    let tail = match q.get("tailLines").map(|n| n.parse::<i64>()) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n as usize),
        Some(_) => {
            return Err(ApiError::bad_request(
                "tailLines: Invalid value: must be greater than or equal to 0".to_string(),
            ));
        }
    };
    Ok(Options {
        container: q.get("container").cloned(),
        previous: flag("previous"),
        follow: flag("follow"),
        timestamps: flag("timestamps"),
        since,
        tail,
    })
}

fn render(lines: &[(Timestamp, String)], timestamps: bool) -> String {
    lines
        .iter()
        .map(|(t, text)| {
            if timestamps {
                format!("{t} {text}\n")
            } else {
                format!("{text}\n")
            }
        })
        .collect()
}

fn error_response(e: ApiError) -> (u16, Response<Body>) {
    (e.code, super::upgrade::refuse(&e))
}

/// Answer a log request; the status code comes back too, for the request log.
pub fn handle(
    shared: Arc<Shared>,
    ns: String,
    pod: String,
    q: &HashMap<String, String>,
) -> (u16, Response<Body>) {
    let opts = match options(q) {
        Ok(o) => o,
        Err(e) => return error_response(e),
    };
    let (src, first, from) = {
        let mut store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
        store.reap();
        let obj = match store.get(resources::by_name("pods"), &ns, &pod) {
            Ok(obj) => obj,
            Err(e) => return error_response(e),
        };
        let src = match source(&obj, opts.container.as_deref(), opts.previous) {
            Ok(src) => src,
            Err(e) => return error_response(e),
        };
        let all = store.pod_log(&ns, &pod, &src.id);
        let lines: Vec<(Timestamp, String)> = all
            .iter()
            .filter(|(t, _)| opts.since.is_none_or(|since| *t >= since))
            .cloned()
            .collect();
        let kept = &lines[lines.len().saturating_sub(opts.tail.unwrap_or(usize::MAX))..];
        let from = all.len();
        (src, render(kept, opts.timestamps), from)
    };
    let body = if opts.follow && src.running {
        let followed = Followed {
            ns,
            pod,
            src,
            timestamps: opts.timestamps,
        };
        follow(shared, followed, first, from)
    } else {
        Full::new(Bytes::from(first)).boxed_unsync()
    };
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "text/plain")
        .body(body)
        .expect("static headers are valid");
    (200, response)
}

/// Stream `src`'s new lines (from index `from`) until its container stops or the pod goes.
/// The container a follow stream reads.
struct Followed {
    ns: String,
    pod: String,
    src: Source,
    timestamps: bool,
}

fn follow(shared: Arc<Shared>, f: Followed, first: String, mut from: usize) -> Body {
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(64);
    tokio::spawn(async move {
        if !first.is_empty() && tx.send_data(Bytes::from(first)).await.is_err() {
            return;
        }
        loop {
            let (new, going_on) = {
                let mut store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
                store.reap();
                let lines = store.pod_log(&f.ns, &f.pod, &f.src.id);
                let new = render(lines.get(from..).unwrap_or_default(), f.timestamps);
                from = lines.len();
                let current = store
                    .get(resources::by_name("pods"), &f.ns, &f.pod)
                    .ok()
                    .and_then(|obj| source(&obj, Some(&f.src.container), false).ok());
                (new, current.is_some_and(|c| c.running && c.id == f.src.id))
            };
            if !new.is_empty() && tx.send_data(Bytes::from(new)).await.is_err() {
                return;
            }
            if !going_on {
                return;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    });
    body.boxed_unsync()
}
