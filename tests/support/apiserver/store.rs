//! Object storage with the semantics of the real API server's registry: resourceVersion,
//! uid, creationTimestamp and generation bookkeeping, 404/409 rules, status subresources,
//! a handful of defaults, finalizers, owner-reference cascades, and the event history that
//! watches replay.
//!
//! One lock guards everything, so every write gets the next resourceVersion and reaches
//! the event history and the open watches in the same order.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::controllers;
use super::patch;
use super::resources::{self, Resource};
use super::selector::{FieldSelector, LabelSelector};

/// An API error, rendered as the `Status` object the real server sends.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn not_found(res: &Resource, name: &str) -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", res.qualified()),
            details: details(res, name),
        }
    }

    /// For a path the server does not serve at all.
    pub fn no_route() -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: json!({}),
        }
    }

    pub fn already_exists(res: &Resource, name: &str) -> ApiError {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", res.qualified()),
            details: details(res, name),
        }
    }

    /// A server-side apply that would change fields another manager owns: the real server's
    /// details name no object, only a cause per field (`FieldManagerConflict`), as v1.20.2
    /// answered the conformance test in `tests/real_cluster.rs`.
    pub fn apply_conflict(message: String) -> ApiError {
        let causes: Vec<Value> = message
            .split([':', '\n'])
            .skip(1)
            .collect::<Vec<_>>()
            .chunks(2)
            .filter_map(|pair| match pair {
                [owner, field] => Some(json!({
                    "reason": "FieldManagerConflict",
                    "message": owner.trim(),
                    "field": field.trim(),
                })),
                _ => None,
            })
            .collect();
        ApiError {
            code: 409,
            reason: "Conflict",
            message,
            details: json!({"causes": causes}),
        }
    }

    pub fn conflict(res: &Resource, name: &str) -> ApiError {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                res.qualified()
            ),
            details: details(res, name),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: json!({}),
        }
    }

    /// A validation failure: its details name the kind (`Service`), not the resource, as the
    /// real server's do.
    pub fn invalid(res: &Resource, name: &str, message: impl Into<String>) -> ApiError {
        let mut details = details(res, name);
        details["kind"] = json!(res.kind);
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{} \"{name}\" is invalid: {}", res.kind, message.into()),
            details,
        }
    }

    pub fn other(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: json!({}),
        }
    }

    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        })
    }
}

fn details(res: &Resource, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": res.plural});
    if !res.group.is_empty() {
        d["group"] = json!(res.group);
    }
    d
}

/// Where an object lives: group, plural, namespace (`""` when cluster-scoped), name.
pub type Key = (&'static str, &'static str, String, String);

fn key(res: &Resource, ns: &str, name: &str) -> Key {
    (res.group, res.plural, ns.to_string(), name.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One committed change, kept for watches that start from an older resourceVersion.
#[derive(Debug, Clone)]
struct Event {
    rv: u64,
    kind: EventType,
    res: &'static Resource,
    ns: String,
    object: Value,
    /// The object before a modification: a watch with a selector turns a change that leaves or
    /// enters the selection into DELETED or ADDED, as the real watch cache does.
    old: Option<Value>,
}

/// An open watch: what it selects, and where its events go.
pub struct Watcher {
    pub res: &'static Resource,
    pub ns: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub tx: UnboundedSender<Value>,
}

impl Watcher {
    fn selects(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The watch event this watcher sees for a committed change, if any.
    fn translate(&self, ev: &Event) -> Option<Value> {
        if !std::ptr::eq(ev.res, self.res) || self.ns.as_ref().is_some_and(|ns| *ns != ev.ns) {
            return None;
        }
        let now = self.selects(&ev.object);
        let before = ev.old.as_ref().is_some_and(|o| self.selects(o));
        let kind = match ev.kind {
            EventType::Added if now => "ADDED",
            EventType::Modified if now && before => "MODIFIED",
            EventType::Modified if now => "ADDED",
            EventType::Modified if before => "DELETED",
            EventType::Deleted if now => "DELETED",
            _ => return None,
        };
        Some(json!({"type": kind, "object": ev.object}))
    }
}

/// How a watch starts.
pub enum WatchStart {
    /// `resourceVersion=N`: every change after N, then live changes.
    After(u64),
    /// No resourceVersion (or `0`): an ADDED event per existing object first, then live changes;
    /// with `sendInitialEvents=true` a BOOKMARK annotated `k8s.io/initial-events-end` follows the
    /// initial events, as client-go's streaming list expects.
    Current { bookmark: bool },
}

/// Options that every write takes from its query string.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// `fieldManager=`; server-side apply keeps one applied configuration per manager.
    pub manager: String,
    /// `force=true` on a server-side apply: take over the fields other managers own.
    pub force: bool,
}

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents (objects whose ownerReferences name the deleted one) are deleted too. The real
    /// garbage collector does this shortly after; the double does it at once.
    Background,
    /// As Background: the owner is not kept around until its dependents are gone.
    Foreground,
    /// Dependents lose their ownerReference to the deleted object and stay.
    Orphan,
}

pub enum PatchKind {
    Merge,
    Strategic,
    Json,
    Apply,
}

pub struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: Vec<Event>,
    watchers: Vec<Watcher>,
    /// Last configuration applied by each field manager, per object (see `patch::apply`).
    applied: HashMap<(Key, String), Value>,
    /// Container logs that tests provide, served at `pods/<name>/log`: (ns, pod, container).
    /// Log lines by `(namespace, pod, container ID)`, see `podlog.rs`.
    pod_logs: HashMap<(String, String, String), Vec<(Timestamp, String)>>,
    pub auto_ready: bool,
    seed: u64,
    serial: u64,
    /// Namespaces being deleted, and when the namespace controller is done with each: a real
    /// server keeps a deleted namespace in phase Terminating while it empties it (seconds on
    /// an idle 1.20 control plane, seen with `tests/real_cluster.rs`), refusing new objects in
    /// it meanwhile. [`Store::reap`] finishes the ones that are due.
    terminating: BTreeMap<String, std::time::Instant>,
    /// In auto-ready mode, how long a written Deployment or StatefulSet takes to roll out: a
    /// real one is never ready at once (a fresh pod takes seconds even with its image cached;
    /// 1.5 s behind the kubelet stand-in of `tests/real_cluster.rs`).
    pub ready_after: std::time::Duration,
    /// Rollouts due: (plural, namespace, name) and when.
    pending_ready: BTreeMap<(&'static str, String, String), std::time::Instant>,
}

/// How long a deleted namespace stays Terminating in the double.
pub const NAMESPACE_TERMINATION: std::time::Duration = std::time::Duration::from_millis(700);

/// Random bits for uids and generated names (no extra dependency: std's hasher seeds).
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}

/// Now, as [`rfc3339`].
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    rfc3339(secs)
}

/// Seconds since the epoch in RFC 3339, UTC, second precision: how `metav1.Time` is serialised.
pub fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The alphabet Kubernetes uses for generated name suffixes and hashes (no vowels, no
/// look-alike characters).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `n` characters of [`SAFE_ALPHABET`] derived from `bits`.
pub fn safe_chars(mut bits: u64, n: usize) -> String {
    (0..n)
        .map(|_| {
            let c = SAFE_ALPHABET[(bits % SAFE_ALPHABET.len() as u64) as usize];
            bits /= SAFE_ALPHABET.len() as u64;
            c as char
        })
        .collect()
}

/// Standard base64 with padding, as `[]byte` fields are written in JSON.
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn rv_of(obj: &Value) -> &str {
    obj["metadata"]["resourceVersion"].as_str().unwrap_or("")
}

/// The object without metadata and status: what `metadata.generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("made an object above")
}

/// Set `obj[path…]` to `value` unless something is there already.
fn default_at(obj: &mut Value, path: &[&str], value: Value) {
    let mut slot = obj;
    for step in path {
        if slot.is_null() {
            *slot = json!({});
        }
        if !slot.is_object() {
            return;
        }
        slot = slot
            .as_object_mut()
            .expect("checked above")
            .entry(step.to_string())
            .or_insert(Value::Null);
    }
    if slot.is_null() {
        *slot = value;
    }
}

impl Store {
    pub fn new() -> Store {
        Store {
            objects: BTreeMap::new(),
            rv: 1000,
            history: Vec::new(),
            watchers: Vec::new(),
            applied: HashMap::new(),
            pod_logs: HashMap::new(),
            auto_ready: false,
            seed: random_u64(),
            serial: 0,
            terminating: BTreeMap::new(),
            ready_after: std::time::Duration::from_millis(300),
            pending_ready: BTreeMap::new(),
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    fn new_uid(&mut self) -> String {
        let n = self.next_serial();
        let s = self.seed;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            s >> 32,
            (s >> 16) & 0xffff,
            s & 0xfff,
            (s >> 12) & 0xfff,
            n
        )
    }

    // ----- reads -----

    pub fn get(&self, res: &Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&key(res, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(res, name))
    }

    /// Objects of one resource, in one namespace or all, in key order.
    pub fn select(
        &self,
        res: &Resource,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((g, p, n, _), o)| {
                *g == res.group
                    && *p == res.plural
                    && ns.is_none_or(|ns| ns == n)
                    && labels.matches(o)
                    && fields.matches(o)
            })
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// A `<Kind>List`. Items carry no apiVersion/kind, as from the real server.
    pub fn list(
        &self,
        res: &Resource,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Value {
        let items: Vec<Value> = self
            .select(res, ns, labels, fields)
            .into_iter()
            .map(|mut o| {
                if let Some(m) = o.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                o
            })
            .collect();
        json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": {"resourceVersion": self.rv.to_string()},
            "items": items,
        })
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        let namespaces = resources::by_name("namespaces");
        self.objects.contains_key(&key(namespaces, "", ns))
    }

    // ----- watches -----

    /// Register a watch; returns the events to send first. Later changes go to `watcher.tx`.
    pub fn watch(&mut self, watcher: Watcher, start: WatchStart) -> Vec<Value> {
        let mut first = Vec::new();
        match start {
            WatchStart::After(rv) => {
                for ev in self.history.iter().filter(|e| e.rv > rv) {
                    first.extend(watcher.translate(ev));
                }
            }
            WatchStart::Current { bookmark } => {
                let ns = watcher.ns.as_deref();
                for obj in self.select(watcher.res, ns, &watcher.labels, &watcher.fields) {
                    first.push(json!({"type": "ADDED", "object": obj}));
                }
                if bookmark {
                    first.push(json!({
                        "type": "BOOKMARK",
                        "object": {
                            "kind": watcher.res.kind,
                            "apiVersion": watcher.res.api_version(),
                            "metadata": {
                                "resourceVersion": self.rv.to_string(),
                                "annotations": {"k8s.io/initial-events-end": "true"},
                            },
                        },
                    }));
                }
            }
        }
        self.watchers.push(watcher);
        first
    }

    fn record(
        &mut self,
        kind: EventType,
        res: &'static Resource,
        object: &Value,
        old: Option<Value>,
    ) {
        let ev = Event {
            rv: self.rv,
            kind,
            res,
            ns: object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            object: object.clone(),
            old,
        };
        // A watcher whose client went away has a closed channel: drop it.
        self.watchers.retain(|w| match w.translate(&ev) {
            Some(msg) => w.tx.send(msg).is_ok(),
            None => !w.tx.is_closed(),
        });
        self.history.push(ev);
    }

    // ----- writes -----

    /// The part of the real server's validation that devenv's objects could break: a Service's
    /// ports (pkg/apis/core/validation: `validateServicePort`) and, as from 1.21, no loopback
    /// address in Endpoints or an EndpointSlice. Everything else is accepted.
    fn validate(res: &Resource, name: &str, obj: &Value) -> Result<(), ApiError> {
        // Since 1.21 (validateNonSpecialIP): no loopback address as an endpoint.
        let loopback = |field: String, ip: &str| -> Result<(), ApiError> {
            if ip
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
            {
                return Err(ApiError::invalid(
                    res,
                    name,
                    format!(
                        "{field}: Invalid value: \"{ip}\": may not be in the loopback range (127.0.0.0/8, ::1/128)"
                    ),
                ));
            }
            Ok(())
        };
        match res.plural {
            "endpointslices" => {
                let endpoints = obj["endpoints"].as_array().cloned().unwrap_or_default();
                for (i, e) in endpoints.iter().enumerate() {
                    let addresses = e["addresses"].as_array().cloned().unwrap_or_default();
                    for (j, a) in addresses.iter().enumerate() {
                        loopback(
                            format!("endpoints[{i}].addresses[{j}]"),
                            a.as_str().unwrap_or(""),
                        )?;
                    }
                }
                return Ok(());
            }
            "endpoints" => {
                let subsets = obj["subsets"].as_array().cloned().unwrap_or_default();
                for (i, s) in subsets.iter().enumerate() {
                    let addresses = s["addresses"].as_array().cloned().unwrap_or_default();
                    for (j, a) in addresses.iter().enumerate() {
                        loopback(
                            format!("subsets[{i}].addresses[{j}].ip"),
                            a["ip"].as_str().unwrap_or(""),
                        )?;
                    }
                }
                return Ok(());
            }
            "services" => {}
            _ => return Ok(()),
        }
        let ports = obj["spec"]["ports"].as_array().cloned().unwrap_or_default();
        for (i, p) in ports.iter().enumerate() {
            let port = p["port"].as_i64().unwrap_or(0);
            if !(1..=65535).contains(&port) {
                return Err(ApiError::invalid(
                    res,
                    name,
                    format!(
                        "spec.ports[{i}].port: Invalid value: {port}: must be between 1 and 65535, inclusive"
                    ),
                ));
            }
            if let Some(proto) = p["protocol"].as_str()
                && !["TCP", "UDP", "SCTP"].contains(&proto)
            {
                return Err(ApiError::invalid(
                    res,
                    name,
                    format!(
                        "spec.ports[{i}].protocol: Unsupported value: \"{proto}\": supported values: \"SCTP\", \"TCP\", \"UDP\""
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_type(res: &Resource, obj: &mut Value) -> Result<(), ApiError> {
        let Some(map) = obj.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object",
            ));
        };
        let want = res.api_version();
        match map.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                map.insert("apiVersion".into(), json!(want));
            }
            Some(v) if v == want => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({want})"
                )));
            }
        }
        match map.get("kind").and_then(Value::as_str) {
            None | Some("") => {
                map.insert("kind".into(), json!(res.kind));
            }
            Some(k) if k == res.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    res.kind
                )));
            }
        }
        Ok(())
    }

    fn check_namespace(res: &Resource, ns: &str, obj: &mut Value) -> Result<(), ApiError> {
        let meta = metadata_mut(obj);
        if res.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                None | Some("") => {
                    meta.insert("namespace".into(), json!(ns));
                }
                Some(n) if n == ns => {}
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
        } else {
            meta.remove("namespace");
        }
        Ok(())
    }

    /// The status a newly created object starts with (what the type's create strategy sets).
    fn initial_status(res: &Resource) -> Value {
        match res.plural {
            "namespaces" => json!({"phase": "Active"}),
            "pods" | "persistentvolumeclaims" => json!({"phase": "Pending"}),
            "services" => json!({"loadBalancer": {}}),
            _ => json!({}),
        }
    }

    /// The defaults the real server fills in that clients read back: those the readiness
    /// checks of Helm 3 and kstatus depend on (workload replicas and update strategies, a
    /// Service's clusterIP), Secret `stringData` folded into `data`, and a Namespace's name
    /// label and finalizer. Defaults inside pod templates are not applied.
    fn apply_defaults(&mut self, res: &Resource, obj: &mut Value, old: Option<&Value>) {
        match res.plural {
            "secrets" => {
                if let Some(Value::Object(strings)) =
                    obj.as_object_mut().and_then(|m| m.remove("stringData"))
                {
                    for (k, v) in strings {
                        let text = v
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string());
                        default_at(obj, &["data"], json!({}));
                        obj["data"][k] = json!(base64(text.as_bytes()));
                    }
                }
                default_at(obj, &["type"], json!("Opaque"));
            }
            "namespaces" => {
                let name = obj["metadata"]["name"].clone();
                default_at(obj, &["metadata", "labels"], json!({}));
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
                default_at(obj, &["spec", "finalizers"], json!(["kubernetes"]));
            }
            "services" => {
                default_at(obj, &["spec", "type"], json!("ClusterIP"));
                if obj["spec"]["type"] != "ExternalName" {
                    let kept = old
                        .map(|o| o["spec"]["clusterIP"].clone())
                        .filter(|ip| ip.is_string());
                    let current = obj["spec"]["clusterIP"].as_str().unwrap_or("");
                    if current.is_empty() {
                        let ip = match kept {
                            Some(ip) => ip,
                            None => {
                                let n = self.next_serial();
                                json!(format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 2))
                            }
                        };
                        obj["spec"]["clusterIP"] = ip;
                    }
                    let ip = obj["spec"]["clusterIP"].clone();
                    default_at(obj, &["spec", "clusterIPs"], json!([ip]));
                    default_at(obj, &["spec", "sessionAffinity"], json!("None"));
                }
                if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
                    for p in ports {
                        default_at(p, &["protocol"], json!("TCP"));
                        let port = p["port"].clone();
                        default_at(p, &["targetPort"], port);
                    }
                }
            }
            "deployments" => {
                default_at(obj, &["spec", "replicas"], json!(1));
                default_at(
                    obj,
                    &["spec", "strategy"],
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
                );
                default_at(obj, &["spec", "revisionHistoryLimit"], json!(10));
                default_at(obj, &["spec", "progressDeadlineSeconds"], json!(600));
            }
            "statefulsets" => {
                default_at(obj, &["spec", "replicas"], json!(1));
                default_at(
                    obj,
                    &["spec", "updateStrategy", "type"],
                    json!("RollingUpdate"),
                );
                if obj["spec"]["updateStrategy"]["type"] == "RollingUpdate" {
                    default_at(
                        obj,
                        &["spec", "updateStrategy", "rollingUpdate", "partition"],
                        json!(0),
                    );
                }
                default_at(obj, &["spec", "podManagementPolicy"], json!("OrderedReady"));
                default_at(obj, &["spec", "revisionHistoryLimit"], json!(10));
            }
            "daemonsets" => {
                default_at(
                    obj,
                    &["spec", "updateStrategy"],
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                );
            }
            "replicasets" => default_at(obj, &["spec", "replicas"], json!(1)),
            "jobs" => {
                default_at(obj, &["spec", "backoffLimit"], json!(6));
                default_at(obj, &["spec", "completions"], json!(1));
                default_at(obj, &["spec", "parallelism"], json!(1));
            }
            _ => {}
        }
    }

    /// Create through the API: the request's checks, then [`Store::insert`].
    pub fn create(
        &mut self,
        res: &'static Resource,
        ns: &str,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        Self::check_type(res, &mut obj)?;
        Self::check_namespace(res, ns, &mut obj)?;
        if res.namespaced && !self.namespace_exists(ns) {
            return Err(ApiError::not_found(resources::by_name("namespaces"), ns));
        }
        if res.namespaced && self.terminating.contains_key(ns) {
            // The NamespaceLifecycle admission plugin's answer.
            return Err(ApiError {
                code: 403,
                reason: "Forbidden",
                message: format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    res.plural,
                    obj["metadata"]["name"].as_str().unwrap_or("")
                ),
                details: details(res, obj["metadata"]["name"].as_str().unwrap_or("")),
            });
        }
        if res.status {
            obj["status"] = Self::initial_status(res);
        }
        let created = self.insert(res, obj, opts.dry_run)?;
        if !opts.dry_run {
            self.after_write(res, &created);
        }
        Ok(created)
    }

    /// Store a new object as it is (status included): metadata filled in, ADDED recorded. Tests
    /// use this directly to put objects in place; it still refuses duplicates.
    pub fn insert(
        &mut self,
        res: &'static Resource,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        Self::check_type(res, &mut obj)?;
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mut name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        if name.is_empty() {
            let prefix = obj["metadata"]["generateName"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    res,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
            name = format!("{prefix}{}", safe_chars(random_u64(), 5));
            obj["metadata"]["name"] = json!(name);
        }
        let k = key(res, &ns, &name);
        if self.objects.contains_key(&k) {
            return Err(ApiError::already_exists(res, &name));
        }
        Self::validate(res, &name, &obj)?;
        self.apply_defaults(res, &mut obj, None);
        let uid = self.new_uid();
        let meta = metadata_mut(&mut obj);
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.remove("deletionTimestamp");
        meta.remove("managedFields");
        if res.generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        if dry_run {
            return Ok(obj);
        }
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(k, obj.clone());
        self.record(EventType::Added, res, &obj, None);
        Ok(obj)
    }

    /// PUT: replace the object (or only its status), with the optimistic-concurrency check.
    pub fn update(
        &mut self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        mut obj: Value,
        status_only: bool,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let old = self.get(res, ns, name)?;
        Self::check_type(res, &mut obj)?;
        Self::check_namespace(res, ns, &mut obj)?;
        match obj["metadata"]["name"].as_str() {
            None | Some("") => obj["metadata"]["name"] = json!(name),
            Some(n) if n == name => {}
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        let sent_rv = rv_of(&obj);
        if !sent_rv.is_empty() && sent_rv != rv_of(&old) {
            return Err(ApiError::conflict(res, name));
        }
        let new = if status_only {
            let mut n = old.clone();
            n["status"] = obj["status"].clone();
            n
        } else {
            if res.status {
                match old.get("status") {
                    Some(s) => obj["status"] = s.clone(),
                    None => {
                        if let Some(m) = obj.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            self.apply_defaults(res, &mut obj, Some(&old));
            obj
        };
        if !status_only {
            Self::validate(res, name, &new)?;
        }
        let updated = self.commit_update(res, old, new, opts.dry_run);
        if !status_only && !opts.dry_run {
            self.after_write(res, &updated);
        }
        Ok(updated)
    }

    /// Keep the server-owned metadata, bump generation on spec changes, skip no-op writes,
    /// finish a deletion whose last finalizer went away, and record the change.
    fn commit_update(
        &mut self,
        res: &'static Resource,
        old: Value,
        mut new: Value,
        dry_run: bool,
    ) -> Value {
        let old_meta = old["metadata"].clone();
        {
            let meta = metadata_mut(&mut new);
            for field in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
                "generation",
            ] {
                match old_meta.get(field) {
                    Some(v) => meta.insert(field.into(), v.clone()),
                    None => meta.remove(field),
                };
            }
            meta.remove("managedFields");
        }
        if res.generation && spec_part(&old) != spec_part(&new) {
            let generation = old_meta["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        if new == old || dry_run {
            return new;
        }
        let ns = new["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = new["metadata"]["name"].as_str().unwrap_or("").to_string();
        let finalizers_done = new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
        if !new["metadata"]["deletionTimestamp"].is_null() && finalizers_done {
            self.objects.insert(key(res, &ns, &name), new);
            return self.remove(res, &ns, &name, Propagation::Background);
        }
        self.rv += 1;
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key(res, &ns, &name), new.clone());
        self.record(EventType::Modified, res, &new, Some(old));
        new
    }

    /// Replace `.status` (what a controller or the kubelet does), with no precondition.
    pub fn set_status(
        &mut self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        status: Value,
    ) -> Result<Value, ApiError> {
        let old = self.get(res, ns, name)?;
        let mut new = old.clone();
        new["status"] = status;
        Ok(self.commit_update(res, old, new, false))
    }

    /// Write an object the way a controller does (no status change, no auto-ready).
    pub fn put_spec(&mut self, res: &'static Resource, obj: Value) -> Result<Value, ApiError> {
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let old = self.get(res, &ns, &name)?;
        let mut new = obj;
        self.apply_defaults(res, &mut new, Some(&old));
        Ok(self.commit_update(res, old, new, false))
    }

    /// PATCH. Server-side apply creates a missing object (201); the other types need it to exist.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: &Value,
        status_only: bool,
        opts: &WriteOpts,
    ) -> Result<(u16, Value), ApiError> {
        let existing = self.get(res, ns, name);
        if let PatchKind::Apply = kind {
            let mut applied = body.clone();
            Self::check_type(res, &mut applied)?;
            match applied["metadata"]["name"].as_str() {
                Some(n) if n == name => {}
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object does not match the name on the URL ({name})"
                    )));
                }
            }
            let k = (key(res, ns, name), opts.manager.clone());
            let result = match existing {
                Err(_) if status_only => return Err(ApiError::not_found(res, name)),
                Err(_) => (201, self.create(res, ns, applied.clone(), opts)?),
                Ok(old) => {
                    // The other managers' fields, as they stand after this apply.
                    let mut others: Vec<(String, Value)> = self
                        .applied
                        .iter()
                        .filter(|((o, m), _)| *o == k.0 && *m != k.1)
                        .map(|((_, m), c)| (m.clone(), c.clone()))
                        .collect();
                    let mut views: Vec<(&str, &mut Value)> =
                        others.iter_mut().map(|(m, c)| (m.as_str(), c)).collect();
                    let merged =
                        patch::apply(&old, self.applied.get(&k), &mut views, &applied, opts.force)
                            .map_err(ApiError::apply_conflict)?;
                    let result = (200, self.update(res, ns, name, merged, status_only, opts)?);
                    if !opts.dry_run {
                        for (m, c) in others {
                            self.applied.insert((k.0.clone(), m), c);
                        }
                    }
                    result
                }
            };
            if !opts.dry_run {
                self.applied.insert(k, applied);
            }
            return Ok(result);
        }
        let old = existing?;
        let mut new = old.clone();
        match kind {
            PatchKind::Merge => patch::merge_patch(&mut new, body),
            PatchKind::Strategic => patch::strategic_merge_patch(&mut new, body),
            PatchKind::Json => {
                patch::json_patch(&mut new, body).map_err(|e| ApiError::invalid(res, name, e))?
            }
            PatchKind::Apply => unreachable!("handled above"),
        }
        // The patched object keeps the stored resourceVersion unless the patch set one, which
        // then acts as a precondition (as on the real server).
        Ok((200, self.update(res, ns, name, new, status_only, opts)?))
    }

    /// DELETE. With finalizers the object only gets a deletionTimestamp and goes once a write
    /// empties `metadata.finalizers`; otherwise it goes at once, with its dependents.
    pub fn delete(
        &mut self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        policy: Propagation,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let old = self.get(res, ns, name)?;
        if opts.dry_run {
            return Ok(old);
        }
        if res.plural == "namespaces" {
            // Terminating first; the namespace controller removes it and its contents later.
            if self.terminating.contains_key(name) {
                return Ok(old);
            }
            let mut new = old.clone();
            new["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            new["status"]["phase"] = json!("Terminating");
            self.rv += 1;
            new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            self.objects.insert(key(res, ns, name), new.clone());
            self.record(EventType::Modified, res, &new, Some(old));
            self.terminating.insert(
                name.to_string(),
                std::time::Instant::now() + NAMESPACE_TERMINATION,
            );
            return Ok(new);
        }
        let has_finalizers = old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if !old["metadata"]["deletionTimestamp"].is_null() {
                return Ok(old);
            }
            let mut new = old.clone();
            new["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            self.rv += 1;
            new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            self.objects.insert(key(res, ns, name), new.clone());
            self.record(EventType::Modified, res, &new, Some(old));
            return Ok(new);
        }
        Ok(self.remove(res, ns, name, policy))
    }

    /// Finish what is due: rollouts of auto-ready mode, and namespaces whose termination is
    /// over (each removed with its contents).
    pub fn reap(&mut self) {
        let now = std::time::Instant::now();
        let ready: Vec<(&'static str, String, String)> = self
            .pending_ready
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for (plural, ns, name) in ready {
            self.pending_ready
                .remove(&(plural, ns.clone(), name.clone()));
            // Gone in the meantime (deleted, or its namespace): nothing to roll out.
            let _ = controllers::mark_ready(self, resources::by_name(plural), &ns, &name);
        }
        let due: Vec<String> = self
            .terminating
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            self.terminating.remove(&name);
            self.remove(
                resources::by_name("namespaces"),
                "",
                &name,
                Propagation::Background,
            );
        }
    }

    /// Remove an object now; a Namespace takes its contents with it (the namespace
    /// controller's job; [`Store::reap`] calls it once the Terminating phase is over).
    fn remove(
        &mut self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        policy: Propagation,
    ) -> Value {
        if res.plural == "namespaces" {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|(_, _, n, _)| n == name)
                .cloned()
                .collect();
            for (g, p, n, o) in inside {
                let still_there = self.objects.contains_key(&(g, p, n.clone(), o.clone()));
                if let (true, Some(r)) = (still_there, resources::find_plural(g, p)) {
                    self.remove(r, &n, &o, Propagation::Background);
                }
            }
        }
        let k = key(res, ns, name);
        let Some(mut obj) = self.objects.remove(&k) else {
            return Value::Null;
        };
        self.applied.retain(|(key, _), _| *key != k);
        if res.plural == "pods" {
            self.pod_logs.retain(|(n, p, _), _| !(n == ns && p == name));
        }
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(EventType::Deleted, res, &obj, None);
        let uid = obj["metadata"]["uid"].clone();
        let dependents: Vec<(&'static Resource, Value)> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
            })
            .filter_map(|((g, p, _, _), o)| Some((resources::find_plural(g, p)?, o.clone())))
            .collect();
        for (r, dep) in dependents {
            let dns = dep["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let dname = dep["metadata"]["name"].as_str().unwrap_or("").to_string();
            if policy == Propagation::Orphan {
                let mut new = dep.clone();
                if let Some(refs) = new["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid);
                }
                self.commit_update(r, dep, new, false);
            } else {
                self.remove(r, &dns, &dname, Propagation::Background);
            }
        }
        obj
    }

    /// DELETE on a collection: every selected object, as one DELETE each.
    pub fn delete_collection(
        &mut self,
        res: &'static Resource,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        policy: Propagation,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let chosen = self.select(res, ns, labels, fields);
        let mut items = Vec::new();
        for obj in chosen {
            let ons = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            items.push(self.delete(res, &ons, &name, policy, opts)?);
        }
        Ok(json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": {"resourceVersion": self.rv.to_string()},
            "items": items,
        }))
    }

    /// In auto-ready mode a Deployment or StatefulSet that was written is rolled out
    /// [`Store::ready_after`] later (by [`Store::reap`]).
    pub fn after_write(&mut self, res: &'static Resource, obj: &Value) {
        if self.auto_ready && matches!(res.plural, "deployments" | "statefulsets") {
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            if self.ready_after.is_zero() {
                // The object was just written, so it exists and the rollout cannot fail.
                let _ = controllers::mark_ready(self, res, &ns, &name);
            } else {
                let due = std::time::Instant::now() + self.ready_after;
                self.pending_ready
                    .entry((res.plural, ns, name))
                    .or_insert(due);
            }
        }
    }

    // ----- pod logs -----

    /// Replace the log the kubelet would serve now for `container` with `text`'s lines.
    pub fn set_pod_log(&mut self, ns: &str, pod: &str, container: &str, text: &str) {
        let id = self.log_id(ns, pod, container);
        self.pod_logs
            .insert((ns.into(), pod.into(), id), Vec::new());
        for line in text.lines() {
            self.append_pod_log(ns, pod, container, line);
        }
    }

    /// Write one line to the log of `container`'s current run, timed now.
    pub fn append_pod_log(&mut self, ns: &str, pod: &str, container: &str, line: &str) {
        let id = self.log_id(ns, pod, container);
        let lines = self
            .pod_logs
            .entry((ns.into(), pod.into(), id))
            .or_default();
        // Two lines written in the same nanosecond keep their order.
        let now = Timestamp::now();
        let at = match lines.last() {
            Some((last, _)) if *last >= now => *last + SignedDuration::from_nanos(1),
            _ => now,
        };
        lines.push((at, line.to_string()));
    }

    fn log_id(&self, ns: &str, pod: &str, container: &str) -> String {
        let obj = self
            .get(resources::by_name("pods"), ns, pod)
            .unwrap_or_else(|e| panic!("pod {ns}/{pod}: {}", e.message));
        super::podlog::source(&obj, Some(container), false)
            .unwrap_or_else(|e| panic!("no log to write for {pod}/{container}: {}", e.message))
            .id
    }

    /// What the kubelet writes when `container` exits and is started again at once: the old
    /// run in `lastState.terminated` (exit code 1), a new container ID running, the restart
    /// count up by one. (A real restart passes through a moment of `terminated` or
    /// `CrashLoopBackOff`; this one does not.)
    pub fn restart_container(
        &mut self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> Result<Value, ApiError> {
        let pods = resources::by_name("pods");
        let obj = self.get(pods, ns, pod)?;
        let mut status = obj["status"].clone();
        let now = now_rfc3339();
        let mut found = false;
        for s in status["containerStatuses"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if s["name"] != container {
                continue;
            }
            found = true;
            s["lastState"] = json!({"terminated": {
                "exitCode": 1, "reason": "Error",
                "startedAt": s["state"]["running"]["startedAt"].clone(),
                "finishedAt": now, "containerID": s["containerID"].clone(),
            }});
            s["state"] = json!({"running": {"startedAt": now}});
            s["containerID"] = json!(format!("docker://{:016x}", random_u64()));
            s["restartCount"] = json!(s["restartCount"].as_u64().unwrap_or(0) + 1);
        }
        if !found {
            return Err(ApiError::bad_request(format!(
                "pod {pod} has no status for container {container}"
            )));
        }
        self.set_status(pods, ns, pod, status)
    }

    /// The lines of one container run (see [`super::podlog::source`]).
    pub fn pod_log(&self, ns: &str, pod: &str, id: &str) -> &[(Timestamp, String)] {
        self.pod_logs
            .get(&(ns.to_string(), pod.to_string(), id.to_string()))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}
