//! A stand-in for the kubelet of minikube's one node, which cannot run on these machines, in
//! front of the real control plane of [`super::controlplane`]. It copies what the kubelet does
//! that devenv can see through the API (pkg/kubelet in Kubernetes v1.20: `kubelet_node_status.go`,
//! `nodelease`, `status/status_manager.go`, `kuberuntime`'s back-off; and minikube's
//! storage-provisioner for claims):
//! - one Node named after the profile, Ready, its status and its Lease in `kube-node-lease`
//!   renewed every few seconds, so the node lifecycle controller keeps it schedulable;
//! - each pod the scheduler binds to it is `Pending` with `ContainerCreating` first, then after
//!   [`Kubelet::ready_after`] `Running` with every container started and ready, a pod IP, and
//!   `Scheduled`/`Pulled`/`Created`/`Started` events as the kubelet records them;
//! - a pod whose name starts with a prefix given to [`Kubelet::crash`] crash-loops instead:
//!   `waiting: CrashLoopBackOff`, the last state terminated with exit code 1, its restart count
//!   going up, and `BackOff` events; [`Kubelet::no_image`] gives `ImagePullBackOff` the same way;
//! - a pod being deleted is removed once its grace period would have let it stop (at once here:
//!   the containers are not real), as the kubelet deletes it with grace 0;
//! - a Pending claim gets a hostPath PersistentVolume bound to it, as minikube's provisioner does.
//!
//! It runs on its own thread for the life of the test binary, polling every 200 ms.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::controlplane::ControlPlane;

#[derive(Default)]
struct Behaviour {
    ready_after: Duration,
    crash: Vec<String>,
    no_image: Vec<String>,
}

/// The running stand-in; its settings can change while it runs.
#[derive(Clone)]
pub struct Kubelet {
    behaviour: Arc<Mutex<Behaviour>>,
    pub node: String,
}

impl Kubelet {
    /// Start the node `node` against `plane` (once per node and test binary).
    pub fn start(plane: &ControlPlane, node: &str) -> Kubelet {
        let kubelet = Kubelet {
            behaviour: Arc::new(Mutex::new(Behaviour {
                ready_after: Duration::from_millis(1500),
                ..Behaviour::default()
            })),
            node: node.to_string(),
        };
        let config = plane.kubeconfig_text(node);
        let me = kubelet.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = client(&config).await;
                register(&client, &me.node).await;
                let _ = ready_tx.send(());
                me.run(client).await;
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the node registered");
        kubelet
    }

    /// How long a pod takes from bound to Running and Ready.
    pub fn ready_after(&self, delay: Duration) {
        self.behaviour.lock().unwrap().ready_after = delay;
    }

    /// Pods whose name starts with `prefix` crash-loop, until the value returned is dropped.
    pub fn crash(&self, prefix: &str) -> Misbehaving {
        self.behaviour.lock().unwrap().crash.push(prefix.into());
        Misbehaving {
            kubelet: self.clone(),
            prefix: prefix.into(),
        }
    }

    /// Pods whose name starts with `prefix` cannot pull their image, until the value returned
    /// is dropped.
    pub fn no_image(&self, prefix: &str) -> Misbehaving {
        self.behaviour.lock().unwrap().no_image.push(prefix.into());
        Misbehaving {
            kubelet: self.clone(),
            prefix: prefix.into(),
        }
    }

    async fn run(&self, client: Client) {
        let pods: Api<Pod> = Api::all(client.clone());
        let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
        let mut first_seen: BTreeMap<String, Instant> = BTreeMap::new();
        let mut heartbeat = Instant::now();
        loop {
            if heartbeat.elapsed() > Duration::from_secs(5) {
                heartbeat = Instant::now();
                renew(&client, &self.node).await;
            }
            let on_node = ListParams::default().fields(&format!("spec.nodeName={}", self.node));
            if let Ok(list) = pods.list(&on_node).await {
                for pod in list.items {
                    self.tend(&client, &pod, &mut first_seen).await;
                }
            }
            if let Ok(list) = claims.list(&ListParams::default()).await {
                for claim in list.items {
                    provision(&client, &claim).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn tend(&self, client: &Client, pod: &Pod, first_seen: &mut BTreeMap<String, Instant>) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let pod_ref = PodRef {
            client,
            ns: &ns,
            name: &name,
            uid: &uid,
        };
        if pod.metadata.deletion_timestamp.is_some() {
            let _ = api
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
            first_seen.remove(&uid);
            return;
        }
        let seen = *first_seen.entry(uid.clone()).or_insert_with(Instant::now);
        let (ready_after, crash, no_image) = {
            let b = self.behaviour.lock().unwrap();
            (
                b.ready_after,
                b.crash.iter().any(|p| name.starts_with(p.as_str())),
                b.no_image.iter().any(|p| name.starts_with(p.as_str())),
            )
        };
        let status = pod.status.clone().unwrap_or_default();
        let phase = status.phase.clone().unwrap_or_default();
        let containers: Vec<(String, String)> = pod
            .spec
            .as_ref()
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let now = chrono_now();
        let ip = format!("10.244.0.{}", 2 + (fnv(&uid) % 250));
        let condition = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastTransitionTime": now});

        if status.host_ip.is_none() {
            // Accepted (the scheduler set only PodScheduled): Pending, containers being created.
            let waiting: Vec<_> = containers
                .iter()
                .map(|(c, image)| json!({"name": c, "image": image, "imageID": "", "ready": false, "restartCount": 0, "started": false, "state": {"waiting": {"reason": "ContainerCreating"}}}))
                .collect();
            let _ = patch_status(&api, &name, json!({"status": {
                "phase": "Pending", "hostIP": "192.168.39.10", "startTime": now,
                "conditions": [condition("Initialized", true), condition("Ready", false), condition("ContainersReady", false), condition("PodScheduled", true)],
                "containerStatuses": waiting,
            }}))
            .await;
            pod_ref
                .event(
                    "Normal",
                    "Pulling",
                    &format!(
                        "Pulling image \"{}\"",
                        containers.first().map(|c| c.1.as_str()).unwrap_or("")
                    ),
                )
                .await;
            return;
        }
        if seen.elapsed() < ready_after {
            return;
        }
        if no_image {
            if !already_waiting(&status, "ImagePullBackOff") {
                let statuses: Vec<_> = containers
                    .iter()
                    .map(|(c, image)| json!({"name": c, "image": image, "imageID": "", "ready": false, "restartCount": 0, "started": false, "state": {"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\"")}}}))
                    .collect();
                let _ = patch_status(
                    &api,
                    &name,
                    json!({"status": {"containerStatuses": statuses}}),
                )
                .await;
                for (_, image) in &containers {
                    pod_ref.event("Warning", "Failed", &format!("Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found")).await;
                    pod_ref
                        .event(
                            "Normal",
                            "BackOff",
                            &format!("Back-off pulling image \"{image}\""),
                        )
                        .await;
                }
            }
            return;
        }
        if crash {
            let restarts = status
                .container_statuses
                .as_ref()
                .and_then(|s| s.first())
                .map(|s| s.restart_count)
                .unwrap_or(0);
            // One restart every couple of seconds, as the back-off starts.
            let due = Duration::from_secs(2 * (restarts as u64 + 1));
            if seen.elapsed() >= ready_after + due || restarts == 0 {
                let statuses: Vec<_> = containers
                    .iter()
                    .map(|(c, image)| json!({"name": c, "image": image, "imageID": format!("docker-pullable://{image}"), "ready": false, "restartCount": restarts + 1, "started": false,
                        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 10s restarting failed container={c} pod={name}")}},
                        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}}}))
                    .collect();
                let _ = patch_status(&api, &name, json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "containerStatuses": statuses}})).await;
                pod_ref
                    .event("Warning", "BackOff", "Back-off restarting failed container")
                    .await;
            }
            return;
        }
        if phase != "Running" {
            let statuses: Vec<_> = containers
                .iter()
                .map(|(c, image)| json!({"name": c, "image": image, "imageID": format!("docker-pullable://{image}"), "containerID": format!("docker://{}", uid.replace('-', "")), "ready": true, "restartCount": 0, "started": true, "state": {"running": {"startedAt": now}}}))
                .collect();
            let _ = patch_status(&api, &name, json!({"status": {
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [condition("Initialized", true), condition("Ready", true), condition("ContainersReady", true), condition("PodScheduled", true)],
                "containerStatuses": statuses,
            }}))
            .await;
            for (c, _) in &containers {
                pod_ref
                    .event("Normal", "Started", &format!("Started container {c}"))
                    .await;
            }
        }
    }
}

/// A fault of [`Kubelet::crash`] or [`Kubelet::no_image`], healed when dropped.
#[must_use]
pub struct Misbehaving {
    kubelet: Kubelet,
    prefix: String,
}

impl Drop for Misbehaving {
    fn drop(&mut self) {
        let mut b = self.kubelet.behaviour.lock().unwrap();
        b.crash.retain(|p| *p != self.prefix);
        b.no_image.retain(|p| *p != self.prefix);
    }
}

fn already_waiting(status: &k8s_openapi::api::core::v1::PodStatus, reason: &str) -> bool {
    status
        .container_statuses
        .as_ref()
        .and_then(|s| s.first())
        .and_then(|s| s.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref())
        == Some(reason)
}

async fn patch_status(api: &Api<Pod>, name: &str, patch: serde_json::Value) -> kube::Result<Pod> {
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

/// The pod an [`PodRef::event`] is about.
struct PodRef<'a> {
    client: &'a Client,
    ns: &'a str,
    name: &'a str,
    uid: &'a str,
}

impl PodRef<'_> {
    /// An Event about the pod, from the kubelet as its source.
    async fn event(&self, kind: &str, reason: &str, message: &str) {
        let events: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.client.clone(), self.ns);
        let now = chrono_now();
        let (ns, pod, uid) = (self.ns, self.name, self.uid);
        let name = format!("{pod}.{:x}", fnv(&format!("{reason}{message}{now}{uid}")));
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {"kind": "Pod", "namespace": ns, "name": pod, "uid": uid, "apiVersion": "v1"},
            "reason": reason, "message": message, "type": kind, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": "kubelet", "host": "devenv-shop"},
        });
        if let Ok(event) = serde_json::from_value(event) {
            let _ = events.create(&PostParams::default(), &event).await;
        }
    }
}

/// A hostPath volume bound in advance to a Pending claim.
async fn provision(client: &Client, claim: &PersistentVolumeClaim) {
    let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some("Pending") || claim.metadata.deletion_timestamp.is_some() {
        return;
    }
    let ns = claim.metadata.namespace.clone().unwrap_or_default();
    let name = claim.metadata.name.clone().unwrap_or_default();
    let uid = claim.metadata.uid.clone().unwrap_or_default();
    let spec = claim.spec.clone().unwrap_or_default();
    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
        .unwrap_or_else(|| "1Gi".into());
    let pv = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": format!("pvc-{uid}"), "annotations": {"pv.kubernetes.io/provisioned-by": "k8s.io/minikube-hostpath"}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.access_modes.clone().unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
            "hostPath": {"path": format!("/tmp/hostpath-provisioner/{ns}/{name}")},
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": spec.storage_class_name.clone().unwrap_or_default(),
            "claimRef": {"namespace": ns, "name": name, "uid": uid, "kind": "PersistentVolumeClaim", "apiVersion": "v1"},
        },
    });
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    if let Ok(pv) = serde_json::from_value::<PersistentVolume>(pv) {
        let _ = volumes.create(&PostParams::default(), &pv).await;
    }
}

async fn client(kubeconfig: &str) -> Client {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static("fake-kubelet/v1.20.2"),
    ));
    Client::try_from(config).unwrap()
}

async fn register(client: &Client, node: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = chrono_now();
    let obj = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "minikube.k8s.io/name": node, "node-role.kubernetes.io/control-plane": ""}},
        "status": node_status(&now),
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match nodes
            .create(
                &PostParams::default(),
                &serde_json::from_value(obj.clone()).unwrap(),
            )
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 409 => break,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the node could not register: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    renew(client, node).await;
}

fn node_status(now: &str) -> serde_json::Value {
    let cond = |t: &str, s: &str, reason: &str| json!({"type": t, "status": s, "reason": reason, "lastHeartbeatTime": now, "lastTransitionTime": now});
    json!({
        "capacity": {"cpu": "4", "memory": "6144Mi", "pods": "110", "ephemeral-storage": "40Gi"},
        "allocatable": {"cpu": "4", "memory": "6144Mi", "pods": "110", "ephemeral-storage": "40Gi"},
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID"),
            cond("Ready", "True", "KubeletReady"),
        ],
        "addresses": [{"type": "InternalIP", "address": "192.168.39.10"}, {"type": "Hostname", "address": "devenv-shop"}],
        "nodeInfo": {"kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2", "containerRuntimeVersion": "docker://20.10.24", "operatingSystem": "linux", "architecture": "amd64", "osImage": "Buildroot 2021.02.12", "kernelVersion": "5.10.57", "machineID": "", "systemUUID": "", "bootID": ""},
    })
}

/// The node's heartbeat: its status conditions and its Lease.
async fn renew(client: &Client, node: &str) {
    let now = chrono_now();
    let nodes: Api<Node> = Api::all(client.clone());
    let _ = nodes
        .patch_status(
            node,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": node_status(&now)})),
        )
        .await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let micro = chrono_micro();
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": micro},
    });
    let _ = leases
        .patch(
            node,
            &PatchParams::apply("fake-kubelet").force(),
            &Patch::Apply(&lease),
        )
        .await;
}

/// RFC 3339 UTC time, seconds (the Time fields of the API).
fn chrono_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    rfc3339(secs, None)
}

/// RFC 3339 UTC time with microseconds (MicroTime fields, a Lease's renewTime).
fn chrono_micro() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    rfc3339(d.as_secs(), Some(d.subsec_micros()))
}

fn rfc3339(secs: u64, micros: Option<u32>) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    let frac = micros.map(|u| format!(".{u:06}")).unwrap_or_default();
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}
