//! The HTTP side: URL layout, verbs, content types, status codes and watch streaming of the
//! real kube-apiserver, over plain HTTP/1.1 with keep-alive.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::channel::Channel;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::Request;
use super::protobuf;
use super::resources::{self, Resource};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{ApiError, PatchKind, Propagation, Store, WatchStart, Watcher, WriteOpts};

/// What the server and the test thread share.
pub struct Shared {
    pub store: Mutex<Store>,
    pub log: Mutex<Vec<Request>>,
    /// Where `(namespace, pod, port)` leads for portforward (see `portforward.rs`).
    pub forwards: Mutex<HashMap<(String, String, u16), std::net::SocketAddr>>,
    /// The `PATH` of exec'd commands by container image (see `exec.rs`).
    pub image_paths: Mutex<HashMap<String, String>>,
}

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Everything a handler can answer.
enum Reply {
    Json(u16, Value),
    Raw(u16, &'static str, Bytes),
    /// A watch: the events to send at once, then whatever arrives, until the timeout.
    Watch(Vec<Value>, UnboundedReceiver<Value>, Duration),
}

impl Reply {
    fn error(e: ApiError) -> Reply {
        Reply::Json(e.code, e.to_status())
    }

    /// A path outside every served API group and version: the real server's catch-all
    /// handler answers plain text, not a Status (seen from kube-apiserver 1.20 in
    /// `tests/real_cluster.rs`), so clients cannot read a reason from it.
    fn not_served() -> Reply {
        Reply::Raw(
            404,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"404 page not found\n"),
        )
    }

    fn status(&self) -> u16 {
        match self {
            Reply::Json(code, _) | Reply::Raw(code, _, _) => *code,
            Reply::Watch(..) => 200,
        }
    }

    fn into_response(self) -> Response<Body> {
        let (code, content_type, body) = match self {
            Reply::Json(code, v) => (
                code,
                "application/json",
                Full::new(Bytes::from(v.to_string())).boxed_unsync(),
            ),
            Reply::Raw(code, ct, bytes) => (code, ct, Full::new(bytes).boxed_unsync()),
            Reply::Watch(first, rx, timeout) => {
                (200, "application/json", watch_body(first, rx, timeout))
            }
        };
        Response::builder()
            .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header("Content-Type", content_type)
            .header("Cache-Control", "no-cache, private")
            .body(body)
            .expect("static headers are valid")
    }
}

/// One JSON document per line, each line its own chunk, as the real watch stream is framed.
fn watch_body(first: Vec<Value>, mut rx: UnboundedReceiver<Value>, timeout: Duration) -> Body {
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(64);
    tokio::spawn(async move {
        let line = |v: &Value| Bytes::from(format!("{v}\n"));
        for ev in &first {
            if tx.send_data(line(ev)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                ev = rx.recv() => match ev {
                    Some(ev) => {
                        if tx.send_data(line(&ev)).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
    });
    body.boxed_unsync()
}

/// Decode `%XX` and `+` in a query component.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_query(raw: &str) -> HashMap<String, String> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// A request header as text, empty when missing or not text.
pub fn header(req: &hyper::Request<Incoming>, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Serve one request and log it.
pub async fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    if method == "GET"
        && let Some((ns, pod)) = super::upgrade::pod_subresource(&path, "portforward")
    {
        return Ok(super::portforward::handle(shared, req, ns, pod));
    }
    if method == "GET"
        && let Some((ns, pod)) = super::upgrade::pod_subresource(&path, "exec")
    {
        return Ok(super::exec::handle(shared, req, ns, pod));
    }
    let raw_query = req.uri().query().unwrap_or("").to_string();
    if method == "GET"
        && let Some((ns, pod)) = super::upgrade::pod_subresource(&path, "log")
    {
        let (status, response) =
            super::podlog::handle(shared.clone(), ns, pod, &parse_query(&raw_query));
        let user_agent = header(&req, "user-agent");
        super::upgrade::record(&shared, &path, &raw_query, user_agent, status);
        return Ok(response);
    }
    let header = |name: &str| header(&req, name);
    let content_type = header("content-type");
    let accept = header("accept");
    let user_agent = header("user-agent");
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let query = parse_query(&raw_query);
    let reply = route(
        &shared,
        &method,
        &path,
        &query,
        &content_type,
        &accept,
        &body,
    );
    let record = Request {
        method,
        path,
        query: percent_decode(&raw_query),
        content_type,
        accept,
        user_agent,
        status: reply.status(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    shared
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(record);
    Ok(reply.into_response())
}

/// `GET /version` of the Kubernetes release the double claims to be.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "34",
        "gitVersion": "v1.34.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-08-27T00:00:00Z",
        "goVersion": "go1.24.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn route(
    shared: &Shared,
    method: &str,
    path: &str,
    q: &HashMap<String, String>,
    content_type: &str,
    accept: &str,
    body: &[u8],
) -> Reply {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        ("GET", ["version"]) => Reply::Json(200, version()),
        ("GET", ["api"]) => Reply::Json(200, resources::api_versions()),
        ("GET", ["apis"]) => Reply::Json(200, resources::api_group_list()),
        ("GET", ["api", "v1"]) => Reply::Json(
            200,
            resources::api_resource_list("", "v1").expect("core/v1 is served"),
        ),
        ("GET", ["apis", group]) => match resources::api_group(group) {
            Some(doc) => Reply::Json(200, doc),
            None => Reply::not_served(),
        },
        ("GET", ["apis", group, version]) => match resources::api_resource_list(group, version) {
            Some(doc) => Reply::Json(200, doc),
            None => Reply::not_served(),
        },
        // An empty protobuf message is a valid, empty openapi_v2.Document: kubectl's validator
        // then knows no schema for any kind and accepts every object (see the module header).
        // Clients ask for `…spec.v2@v1.0+protobuf`; kube-openapi answers with the dotted form,
        // because Go's mime parser (which client-go runs on every response) rejects the `@`.
        ("GET", ["openapi", "v2"]) if accept.contains("protobuf") => Reply::Raw(
            200,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            Bytes::new(),
        ),
        ("GET", ["openapi", "v2"]) => Reply::Json(
            200,
            json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.34.0"}, "paths": {}, "definitions": {}}),
        ),
        ("GET", ["healthz" | "livez" | "readyz"]) => {
            Reply::Raw(200, "text/plain; charset=utf-8", Bytes::from_static(b"ok"))
        }
        (_, ["api", "v1", rest @ ..]) if !rest.is_empty() => {
            resource(shared, "", "v1", rest, method, q, content_type, body)
        }
        (_, ["apis", group, version, rest @ ..])
            if !rest.is_empty() && resources::api_resource_list(group, version).is_some() =>
        {
            resource(shared, group, version, rest, method, q, content_type, body)
        }
        _ => Reply::not_served(),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))
}

/// Server-side apply bodies are YAML; JSON (what Helm 4 sends) is taken as is.
fn parse_yaml(body: &[u8]) -> Result<Value, ApiError> {
    parse_json(body).or_else(|_| {
        serde_norway::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid YAML in the request body: {e}")))
    })
}

fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// `propagationPolicy` from the query or the DeleteOptions body; Background by default.
fn propagation(q: &HashMap<String, String>, body: &[u8]) -> Propagation {
    let options: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let policy = q
        .get("propagationPolicy")
        .cloned()
        .or_else(|| options["propagationPolicy"].as_str().map(str::to_string));
    match policy.as_deref() {
        Some("Orphan") => Propagation::Orphan,
        Some("Foreground") => Propagation::Foreground,
        _ if options["orphanDependents"] == true => Propagation::Orphan,
        _ => Propagation::Background,
    }
}

#[allow(clippy::too_many_arguments)]
fn resource(
    shared: &Shared,
    group: &str,
    version: &str,
    rest: &[&str],
    method: &str,
    q: &HashMap<String, String>,
    content_type: &str,
    body: &[u8],
) -> Reply {
    match serve_resource(shared, group, version, rest, method, q, content_type, body) {
        Ok(reply) => reply,
        Err(e) => Reply::error(e),
    }
}

#[allow(clippy::too_many_arguments)]
fn serve_resource(
    shared: &Shared,
    group: &str,
    version: &str,
    rest: &[&str],
    method: &str,
    q: &HashMap<String, String>,
    content_type: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let mut rest = rest.to_vec();
    let mut watch = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    // The legacy `/watch/` path prefix.
    if rest.first() == Some(&"watch") {
        watch = true;
        rest.remove(0);
    }
    let namespaced_path = rest.len() >= 3
        && rest[0] == "namespaces"
        && resources::find(group, version, rest[2]).is_some_and(|r| r.namespaced);
    let (ns, rest) = if namespaced_path {
        (Some(rest[1].to_string()), rest[2..].to_vec())
    } else {
        (None, rest)
    };
    let res: &'static Resource = rest
        .first()
        .and_then(|p| resources::find(group, version, p))
        .ok_or_else(ApiError::no_route)?;
    let name = rest.get(1).copied();
    let sub = rest.get(2).copied();
    if rest.len() > 3 || (res.namespaced && name.is_some() && ns.is_none()) {
        return Err(ApiError::no_route());
    }
    let status_sub = match sub {
        None => false,
        Some("status") if res.status => true,
        Some("log") if res.plural == "pods" && method == "GET" => false,
        Some(_) => return Err(ApiError::no_route()),
    };
    let ns_str = ns.clone().unwrap_or_default();
    let opts = WriteOpts {
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
        manager: q.get("fieldManager").cloned().unwrap_or_default(),
        force: q.get("force").is_some_and(|v| v == "true"),
    };
    let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let protobuf = media_type(content_type) == "application/vnd.kubernetes.protobuf";
    let parse_body = |body: &[u8]| -> Result<Value, ApiError> {
        if protobuf {
            protobuf::decode(body).map_err(|e| ApiError::other(415, "UnsupportedMediaType", e))
        } else {
            parse_json(body)
        }
    };

    let mut store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
    store.reap();
    let reply = match (method, name, sub) {
        ("GET", None, None) if watch => {
            let start = if q.get("sendInitialEvents").is_some_and(|v| v == "true") {
                WatchStart::Current { bookmark: true }
            } else {
                match q.get("resourceVersion").map(String::as_str) {
                    None | Some("") | Some("0") => WatchStart::Current { bookmark: false },
                    Some(rv) => WatchStart::After(rv.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                    })?),
                }
            };
            let timeout = q
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .map_or(Duration::from_secs(1800), Duration::from_secs);
            let (tx, rx) = unbounded_channel();
            let watcher = Watcher {
                res,
                ns: ns.clone(),
                labels,
                fields,
                tx,
            };
            let first = store.watch(watcher, start);
            Reply::Watch(first, rx, timeout)
        }
        ("GET", None, None) => Reply::Json(200, store.list(res, ns.as_deref(), &labels, &fields)),
        ("GET", Some(name), _) => Reply::Json(200, store.get(res, &ns_str, name)?),
        ("POST", None, None) if ns.is_some() || !res.namespaced => {
            Reply::Json(201, store.create(res, &ns_str, parse_body(body)?, &opts)?)
        }
        ("PUT", Some(name), _) => Reply::Json(
            200,
            store.update(res, &ns_str, name, parse_body(body)?, status_sub, &opts)?,
        ),
        ("PATCH", Some(name), _) => {
            let (kind, patch) = match media_type(content_type) {
                "application/merge-patch+json" => (PatchKind::Merge, parse_json(body)?),
                "application/strategic-merge-patch+json" => {
                    (PatchKind::Strategic, parse_json(body)?)
                }
                "application/json-patch+json" => (PatchKind::Json, parse_json(body)?),
                "application/apply-patch+yaml" => {
                    if opts.manager.is_empty() {
                        return Err(ApiError::other(
                            422,
                            "Invalid",
                            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                        ));
                    }
                    (PatchKind::Apply, parse_yaml(body)?)
                }
                other => {
                    return Err(ApiError::other(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format ({other}) - accepted media types include: \
                             application/json-patch+json, application/merge-patch+json, \
                             application/apply-patch+yaml, application/strategic-merge-patch+json"
                        ),
                    ));
                }
            };
            let (code, obj) = store.patch(res, &ns_str, name, kind, &patch, status_sub, &opts)?;
            Reply::Json(code, obj)
        }
        ("DELETE", Some(name), None) => Reply::Json(
            200,
            store.delete(res, &ns_str, name, propagation(q, body), &opts)?,
        ),
        ("DELETE", None, None) => Reply::Json(
            200,
            store.delete_collection(
                res,
                ns.as_deref(),
                &labels,
                &fields,
                propagation(q, body),
                &opts,
            )?,
        ),
        _ => {
            return Err(ApiError::other(
                405,
                "MethodNotAllowed",
                format!(
                    "the server does not allow this method on the requested resource ({method})"
                ),
            ));
        }
    };
    Ok(reply)
}
