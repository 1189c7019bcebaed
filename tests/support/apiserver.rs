//! An in-process stand-in for kube-apiserver (which cannot run on this machine), good enough
//! for the real `helm` 3 and 4 binaries and devenv's kube client: it plays the local minikube
//! cluster and the remote shared cluster (two instances coexist, each on its own port and
//! kubeconfig context).
//!
//! **Copied from the real server**
//! - Plain HTTP/1.1 on `127.0.0.1:<random port>` with keep-alive (client-go accepts
//!   `server: http://…` in a kubeconfig); JSON only (`Accept` asking for protobuf *and* JSON gets
//!   JSON). Request bodies are JSON, or protobuf for Secrets and ConfigMaps, which client-go's
//!   typed clients (Helm's release storage) send that way (`apiserver/protobuf.rs`); any other
//!   protobuf body gets 415.
//! - Discovery: `/version` (v1.34.0), `/api`, `/api/v1`, `/apis`, `/apis/<group>[/<version>]`,
//!   for the types in `apiserver/resources.rs`. Only the plain documents are served: client-go
//!   asks for aggregated discovery first and, given `application/json` APIGroupList, falls back
//!   to fetching each group version, as against servers before 1.26.
//! - `/openapi/v2` answers 200 with an empty protobuf document (a valid, empty
//!   `openapi_v2.Document`); `/openapi/v3` is 404, so kubectl's field-validation verifier falls
//!   back to v2. Helm's client-side schema validation ("Strict") then finds no schema for any
//!   kind and accepts every object, as it does for a kind whose schema a server does not publish:
//!   Helm runs with validation on and passes, but the double catches no misspelt field.
//! - Generic storage keyed by group/resource/namespace/name, for: GET (404 with a `Status`);
//!   LIST with `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, exists, `!`) and `fieldSelector`
//!   (`=`, `!=` on any dotted path); WATCH (`?watch=true` or `/watch/…`): from a
//!   `resourceVersion` every later change, without one an ADDED per current object first
//!   (`sendInitialEvents=true` adds the `k8s.io/initial-events-end` BOOKMARK), newline-delimited
//!   JSON in HTTP chunks, closed after `timeoutSeconds`; a selector turns a change that leaves or
//!   enters it into DELETED or ADDED. POST (409 AlreadyExists; 404 when the namespace is missing;
//!   `generateName`); PUT (409 Conflict on a stale `resourceVersion`, none = unconditional; 404
//!   when missing); PATCH as merge, strategic merge (the merge keys Helm relies on, see
//!   `apiserver/patch.rs`), JSON patch, and server-side apply (creates when missing); DELETE with
//!   `propagationPolicy` (404 when missing); DELETE on a collection; `dryRun=All`.
//! - Bookkeeping: one monotonically increasing resourceVersion; `uid`, `creationTimestamp`;
//!   `generation` on the types that keep it, bumped when anything but metadata and status
//!   changes; writes that change nothing are no-ops (no new resourceVersion, no event); the
//!   `status` subresource (writes to the object keep the stored status; `<name>/status` writes
//!   only the status; a new object starts with an empty status, Pods `Pending`, Namespaces
//!   `Active`); finalizers (DELETE sets `deletionTimestamp`, the object goes when they are gone).
//! - The defaults clients read back: workload replicas and update strategies,
//!   `progressDeadlineSeconds`, Job counts, a Service's `type`, `clusterIP` (allocated in
//!   10.96.0.0/12, kept across updates) and port protocol/targetPort, Secret `stringData`
//!   folded into base64 `data`, a Namespace's `kubernetes.io/metadata.name` label.
//! - `pods/<name>/log` with the kubelet's choice of container run, `previous`, `follow`,
//!   `timestamps`, `sinceSeconds`/`sinceTime` and `tailLines`, serving what a test wrote
//!   (`apiserver/podlog.rs`).
//! - Namespaces `default`, `kube-system`, `kube-public` and `kube-node-lease` exist from the start.
//!
//! **Not copied**
//! - No scheduler, kubelet or workload controllers run by themselves: nothing becomes ready
//!   unless a test says so. [`ApiServer::mark_ready`] writes what the controllers and the kubelet
//!   would after a successful rollout (see `apiserver/controllers.rs`: the Deployment's
//!   ReplicaSet with the matching `pod-template-hash`, ready pods, `.status` with
//!   observedGeneration, replica counts and the Available/Progressing conditions), which is what
//!   Helm 3's `--wait` and Helm 4's kstatus watcher read; [`ApiServer::auto_ready`] does it
//!   300 ms after a Deployment or StatefulSet is created or changed (never at once, as no real
//!   rollout is; [`ApiServer::set_ready_after`]). Pods of failing workloads are
//!   written by tests with [`ApiServer::set_status`].
//! - No admission, no authentication or authorisation (every request is allowed), no schema
//!   validation or pruning of unknown fields, no defaults inside pod templates. ResourceQuotas
//!   and LimitRanges are stored, never enforced or applied, and a quota's status is never
//!   counted: `tests/real_cluster.rs` shows devenv's on the real server's admission.
//! - The garbage collector is reduced to: deleting an object deletes its dependents (by
//!   ownerReferences uid) at once, unless `propagationPolicy=Orphan`; a deleted Namespace is
//!   Terminating for a moment (`store::NAMESPACE_TERMINATION`), refusing new objects with the
//!   NamespaceLifecycle plugin's 403 as the real server does, then goes with its contents
//!   (checked against the real server by `tests/real_cluster.rs`); Pods go without a grace
//!   period.
//! - Server-side apply keeps no real managedFields and never reports a conflict; it merges the
//!   applied configuration into the live object and removes what the same field manager applied
//!   before and dropped (`apiserver/patch.rs`).
//! - LIST ignores `limit`/`continue` (everything comes in one page, which the API allows) and
//!   `resourceVersion`/`resourceVersionMatch` (always the latest state); WATCH never answers
//!   410 Gone (the whole history is kept) and sends no periodic bookmarks.
//! - No aggregated discovery, no `/openapi/v3`, no Table output, no protobuf or CBOR answers, no
//!   subresources besides `status`, `pods/log`, `pods/portforward` and `pods/exec` (no `scale`,
//!   `eviction`).
//! - No objects that other controllers derive: Endpoints and EndpointSlices of Services, PVCs of
//!   volumeClaimTemplates, ControllerRevisions, Events.
//!
//! Every request is logged ([`ApiServer::requests`]) so tests can assert on API traffic, e.g.
//! that a no-op `devenv up` makes only read-only calls.

mod client;
mod controllers;
mod exec;
mod http;
mod patch;
mod podlog;
mod portforward;
mod protobuf;
mod resources;
mod selector;
mod store;
mod upgrade;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use serde_json::{Value, json};

pub use client::{Response, WatchStream};
use http::Shared;
use selector::{FieldSelector, LabelSelector};
use store::{Propagation, Store, WriteOpts};

/// One request as the double received it, for tests that assert on API traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The query string, percent-decoded (`labelSelector=name=shop,owner=helm`).
    pub query: String,
    pub content_type: String,
    pub accept: String,
    pub user_agent: String,
    /// The status code answered (200 for a watch that was opened).
    pub status: u16,
    pub body: String,
}

impl Request {
    /// A read that changes nothing (GET, and LIST/WATCH which are GETs too).
    pub fn is_read_only(&self) -> bool {
        self.method == "GET"
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if !self.query.is_empty() {
            write!(f, "?{}", self.query)?;
        }
        if !self.content_type.is_empty() && self.method != "GET" {
            write!(f, " [{}]", self.content_type)?;
        }
        write!(f, " -> {}", self.status)
    }
}

/// A running API server double; it stops when dropped.
pub struct ApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    context: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The namespaces every fresh cluster has.
const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl ApiServer {
    /// Start on a random port; the kubeconfig context is `apiserver-<port>`.
    pub fn start() -> ApiServer {
        ApiServer::start_named(None)
    }

    /// Start with a chosen kubeconfig context name (`devenv-shop`, `remote`…).
    pub fn start_as(context: &str) -> ApiServer {
        ApiServer::start_named(Some(context))
    }

    fn start_named(context: Option<&str>) -> ApiServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let mut store = Store::new();
        let namespaces = resources::by_name("namespaces");
        for ns in INITIAL_NAMESPACES {
            let obj = json!({"metadata": {"name": ns}, "status": {"phase": "Active"}});
            store.insert(namespaces, obj, false).expect("fresh store");
        }
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            log: Mutex::new(Vec::new()),
            forwards: Mutex::new(std::collections::HashMap::new()),
            image_paths: Mutex::new(std::collections::HashMap::new()),
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("apiserver-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                runtime.block_on(serve(listener, server, rx));
            })
            .expect("spawn the API double's thread");
        ApiServer {
            shared,
            addr,
            context: context.map_or_else(|| format!("apiserver-{}", addr.port()), str::to_string),
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// In this mode every Deployment and StatefulSet is rolled out (see [`ApiServer::mark_ready`])
    /// as soon as it is created or changed.
    pub fn auto_ready(self) -> ApiServer {
        self.set_auto_ready(true);
        self
    }

    pub fn set_auto_ready(&self, on: bool) {
        self.store().auto_ready = on;
    }

    /// How long an auto-ready rollout takes (300 ms unless set; zero: at once).
    pub fn set_ready_after(&self, delay: std::time::Duration) {
        self.store().ready_after = delay;
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The context name in [`ApiServer::kubeconfig`].
    pub fn context(&self) -> &str {
        &self.context
    }

    /// Write `<dir>/<context>.kubeconfig` with one cluster, user and context, all named after
    /// the context, and make it current. Several files combine through `KUBECONFIG=a:b`.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let name = &self.context;
        let text = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: {name}\n  cluster:\n    server: {url}\n\
             users:\n\
             - name: {name}\n  user: {{}}\n\
             contexts:\n\
             - name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n    namespace: default\n\
             current-context: {name}\n",
            url = self.url()
        );
        std::fs::create_dir_all(dir).expect("create the kubeconfig's directory");
        let path = dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&path, text).expect("write the kubeconfig");
        path
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        let mut store = self.shared.store.lock().unwrap_or_else(|e| e.into_inner());
        store.reap();
        store
    }

    /// An object by resource name (`deployments`, `secrets`…); `ns` is `""` for cluster-scoped.
    pub fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.store()
            .get(resources::by_name(resource), ns, name)
            .ok()
    }

    /// Objects of a resource in one namespace (`Some`) or all, in namespace/name order.
    pub fn list(&self, resource: &str, ns: Option<&str>) -> Vec<Value> {
        self.list_selected(resource, ns, "")
    }

    /// As [`ApiServer::list`], with a label selector (`name=shop,owner=helm`).
    pub fn list_selected(&self, resource: &str, ns: Option<&str>, labels: &str) -> Vec<Value> {
        let labels = LabelSelector::parse(labels).expect("a valid label selector");
        self.store().select(
            resources::by_name(resource),
            ns,
            &labels,
            &FieldSelector::default(),
        )
    }

    /// Names of the objects of a resource in a namespace.
    pub fn names(&self, resource: &str, ns: &str) -> Vec<String> {
        self.list(resource, Some(ns))
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Put an object in place as it is, status included (the type comes from its apiVersion
    /// and kind). Returns it as stored.
    pub fn create(&self, obj: Value) -> Value {
        let res = resources::by_kind(
            obj["apiVersion"].as_str().unwrap_or(""),
            obj["kind"].as_str().unwrap_or(""),
        )
        .unwrap_or_else(|| {
            panic!(
                "the API double does not serve {}/{}",
                obj["apiVersion"], obj["kind"]
            )
        });
        let mut store = self.store();
        let created = store.insert(res, obj, false).expect("create");
        store.after_write(res, &created);
        created
    }

    /// Replace an object's `.status`, as its controller or the kubelet would.
    pub fn set_status(&self, resource: &str, ns: &str, name: &str, status: Value) -> Value {
        self.store()
            .set_status(resources::by_name(resource), ns, name, status)
            .unwrap_or_else(|e| panic!("set status of {resource} {ns}/{name}: {}", e.message))
    }

    /// Write what the controllers and the kubelet leave after a successful rollout of a
    /// Deployment, StatefulSet, DaemonSet or ReplicaSet.
    pub fn mark_ready(&self, resource: &str, ns: &str, name: &str) {
        controllers::mark_ready(&mut self.store(), resources::by_name(resource), ns, name)
            .unwrap_or_else(|e| panic!("mark {resource} {ns}/{name} ready: {}", e.message));
    }

    /// [`ApiServer::mark_ready`] for every Deployment, StatefulSet and DaemonSet in `ns`;
    /// returns `kind/name` of each.
    pub fn mark_all_ready(&self, ns: &str) -> Vec<String> {
        let mut done = Vec::new();
        let mut store = self.store();
        for plural in ["deployments", "statefulsets", "daemonsets"] {
            let res = resources::by_name(plural);
            let all = store.select(
                res,
                Some(ns),
                &LabelSelector::default(),
                &FieldSelector::default(),
            );
            for obj in all {
                let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
                controllers::mark_ready(&mut store, res, ns, &name).expect("roll out");
                done.push(format!("{}/{name}", res.kind));
            }
        }
        done
    }

    /// Delete as `DELETE` with the default (background) propagation; false when missing.
    pub fn delete(&self, resource: &str, ns: &str, name: &str) -> bool {
        self.store()
            .delete(
                resources::by_name(resource),
                ns,
                name,
                Propagation::Background,
                &WriteOpts::default(),
            )
            .is_ok()
    }

    /// Where a portforward to `port` of pod `ns/pod` leads (the double has no pod network):
    /// usually a real server on 127.0.0.1. A port without a target is refused.
    pub fn forward(&self, ns: &str, pod: &str, port: u16, target: SocketAddr) {
        self.shared
            .forwards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((ns.to_string(), pod.to_string(), port), target);
    }

    /// What `GET pods/<pod>/log?container=<container>` returns.
    pub fn set_pod_log(&self, ns: &str, pod: &str, container: &str, text: &str) {
        self.store().set_pod_log(ns, pod, container, text);
    }

    /// Commands exec'd in containers of `image` find their programs in `path` only (a
    /// directory list, as `PATH`): an image without bash, say.
    pub fn set_image_path(&self, image: &str, path: &str) {
        self.shared
            .image_paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(image.to_string(), path.to_string());
    }

    /// Write one line to the log of `container`'s current run in `pod` (timed now): what a
    /// follow stream sends next.
    pub fn append_pod_log(&self, ns: &str, pod: &str, container: &str, line: &str) {
        self.store().append_pod_log(ns, pod, container, line);
    }

    /// Restart one container of `pod` as the kubelet does after it exits: see
    /// `Store::restart_container`. Its log starts empty; the old one is `previous`.
    pub fn restart_container(&self, ns: &str, pod: &str, container: &str) -> Value {
        self.store()
            .restart_container(ns, pod, container)
            .unwrap_or_else(|e| panic!("restart {ns}/{pod}/{container}: {}", e.message))
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store().resource_version()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many requests had this method and exactly this path.
    pub fn count_requests(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }

    /// Forget the requests so far.
    pub fn clear_requests(&self) {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Send one raw request (`target` is path and query).
    pub fn http(
        &self,
        method: &str,
        target: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Response {
        client::request(&self.addr(), method, target, content_type, body.as_bytes())
    }

    /// Open a watch (`target` is path and query, including `watch=true`).
    pub fn watch(&self, target: &str) -> WatchStream {
        WatchStream::open(&self.addr(), target)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accept connections until shutdown; each connection is served by hyper with keep-alive.
async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("register the listener");
    // The controllers' clock: what is due (a rollout, a namespace's end) happens on time and
    // reaches open watches, whether or not a request comes.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                shared.store.lock().unwrap_or_else(|e| e.into_inner()).reap();
            }
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| http::handle(Arc::clone(&shared), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        }
    }
}
