//! What the deployment, replicaset, statefulset and daemonset controllers and the kubelet
//! would leave behind once a rollout has succeeded, written in one go when a test (or the
//! auto-ready mode) says a workload is ready.
//!
//! - Deployment: a ReplicaSet `<name>-<pod-template-hash>` controlled by it (ownerReference with
//!   `controller: true`), whose template is the Deployment's plus the `pod-template-hash` label;
//!   Helm 3's `--wait` finds it the way `deploymentutil.GetNewReplicaSet` does (list by the
//!   Deployment's selector, keep those it controls, pick the one whose template equals the
//!   Deployment's ignoring that label). Older ReplicaSets are scaled to 0. Ready pods for the
//!   new one. Status: observedGeneration, replicas, updatedReplicas, readyReplicas,
//!   availableReplicas, and the conditions Available=True (MinimumReplicasAvailable) and
//!   Progressing=True (NewReplicaSetAvailable), which kstatus (Helm 4's watcher) requires.
//! - StatefulSet: pods `<name>-<i>` labelled with the revision `<name>-<hash>`; status with
//!   observedGeneration, replica counts and currentRevision = updateRevision.
//! - DaemonSet (one node) and ReplicaSet: the matching status and pods.
//!
//! Not done: PersistentVolumeClaims from volumeClaimTemplates, ControllerRevision objects,
//! Endpoints/EndpointSlices, events. The pods are Running with every condition True; a test
//! that wants a failing pod writes its status itself.

use serde_json::{Value, json};

use super::resources::{self, Resource};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{ApiError, Propagation, Store, WriteOpts, now_rfc3339, random_u64, safe_chars};

/// The node every pod is bound to.
pub const NODE_NAME: &str = "minikube";

/// Roll `ns/name` out as its controller would once every pod is ready.
pub fn mark_ready(
    store: &mut Store,
    res: &'static Resource,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    match res.plural {
        "deployments" => deployment(store, ns, name),
        "statefulsets" => statefulset(store, ns, name),
        "daemonsets" => daemonset(store, ns, name),
        "replicasets" => replicaset(store, ns, name).map(|_| ()),
        other => Err(ApiError::bad_request(format!(
            "the double has no controller for {other}"
        ))),
    }
}

/// `pod-template-hash`: a 32-bit FNV-1a hash of the template, its decimal digits mapped onto
/// the safe alphabet, as the deployment controller renders its own hash.
pub fn pod_template_hash(template: &Value) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    let mut hash: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash.to_string()
        .bytes()
        .map(|b| b"bcdfghjklmnpqrstvwxz2456789"[usize::from(b) % 27] as char)
        .collect()
}

fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn controlled_by(obj: &Value, owner: &Value) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == owner["metadata"]["uid"] && r["controller"] == true)
        })
}

fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn generation(obj: &Value) -> Value {
    obj["metadata"]["generation"].clone()
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or("").to_string()
}

/// A condition that keeps its timestamps when nothing about it changed, as controllers do.
fn condition(old_status: &Value, kind: &str, reason: &str, message: String) -> Value {
    let now = now_rfc3339();
    let previous = old_status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .filter(|c| {
            c["status"] == "True" && c["reason"] == reason && c["message"] == message.as_str()
        });
    let (update, transition) = match previous {
        Some(c) => (c["lastUpdateTime"].clone(), c["lastTransitionTime"].clone()),
        None => (json!(now), json!(now)),
    };
    json!({
        "type": kind,
        "status": "True",
        "lastUpdateTime": update,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    })
}

fn pods_of(store: &Store, ns: &str, owner: &Value) -> Vec<Value> {
    let pods = resources::by_name("pods");
    store
        .select(
            pods,
            Some(ns),
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .into_iter()
        .filter(|p| controlled_by(p, owner))
        .collect()
}

/// A pod as the kubelet reports it once all its containers run and pass their probes.
fn ready_pod(
    ns: &str,
    name: &str,
    labels: Value,
    owner: &Value,
    template: &Value,
    index: u64,
) -> Value {
    let now = now_rfc3339();
    let mut spec = template["spec"].clone();
    spec["nodeName"] = json!(NODE_NAME);
    let statuses: Vec<Value> = spec["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    json!({
                        "name": c["name"],
                        "image": c["image"],
                        "imageID": "",
                        "containerID": format!("docker://{:016x}", random_u64()),
                        "ready": true,
                        "started": true,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": now}},
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let conditions: Vec<Value> = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    .iter()
    .map(|t| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now}))
    .collect();
    let mut metadata = json!({
        "name": name,
        "namespace": ns,
        "labels": labels,
        "ownerReferences": [owner_ref(owner)],
    });
    if template["metadata"]["annotations"].is_object() {
        metadata["annotations"] = template["metadata"]["annotations"].clone();
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
        "status": {
            "phase": "Running",
            "conditions": conditions,
            "hostIP": "192.168.49.2",
            "podIP": format!("10.244.0.{}", 10 + index % 240),
            "startTime": now,
            "containerStatuses": statuses,
            "qosClass": "Burstable",
        },
    })
}

fn template_labels(template: &Value) -> serde_json::Map<String, Value> {
    template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn delete_pod(store: &mut Store, ns: &str, pod: &Value) -> Result<(), ApiError> {
    let pods = resources::by_name("pods");
    store
        .delete(
            pods,
            ns,
            &name_of(pod),
            Propagation::Background,
            &WriteOpts::default(),
        )
        .map(|_| ())
}

/// Ready pods with generated names for a ReplicaSet or DaemonSet, `count` of them.
fn ensure_generated_pods(
    store: &mut Store,
    ns: &str,
    owner: &Value,
    count: i64,
) -> Result<(), ApiError> {
    let pods = resources::by_name("pods");
    let template = &owner["spec"]["template"];
    let mut existing = pods_of(store, ns, owner);
    while existing.len() as i64 > count {
        let pod = existing.pop().expect("non-empty");
        delete_pod(store, ns, &pod)?;
    }
    for i in existing.len() as i64..count {
        let name = format!("{}-{}", name_of(owner), safe_chars(random_u64(), 5));
        let labels = Value::Object(template_labels(template));
        let pod = ready_pod(ns, &name, labels, owner, template, i as u64);
        store.insert(pods, pod, false)?;
    }
    Ok(())
}

/// Status and pods of a ReplicaSet at its desired size; returns the ReplicaSet.
fn replicaset(store: &mut Store, ns: &str, name: &str) -> Result<Value, ApiError> {
    let rss = resources::by_name("replicasets");
    let rs = store.get(rss, ns, name)?;
    let n = replicas(&rs);
    ensure_generated_pods(store, ns, &rs, n)?;
    let mut status = json!({
        "replicas": n,
        "fullyLabeledReplicas": n,
        "readyReplicas": n,
        "availableReplicas": n,
        "observedGeneration": generation(&rs),
    });
    if n == 0 {
        status = json!({"replicas": 0, "observedGeneration": generation(&rs)});
    }
    store.set_status(rss, ns, name, status)
}

fn deployment(store: &mut Store, ns: &str, name: &str) -> Result<(), ApiError> {
    let deployments = resources::by_name("deployments");
    let rss = resources::by_name("replicasets");
    let dep = store.get(deployments, ns, name)?;
    let n = replicas(&dep);
    let template = dep["spec"]["template"].clone();
    let hash = pod_template_hash(&template);
    let new_name = format!("{name}-{hash}");
    let owned: Vec<Value> = store
        .select(
            rss,
            Some(ns),
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .into_iter()
        .filter(|rs| controlled_by(rs, &dep))
        .collect();

    let mut labels = template_labels(&template);
    labels.insert("pod-template-hash".into(), json!(hash));
    match owned.iter().find(|rs| name_of(rs) == new_name) {
        Some(rs) => {
            let mut rs = rs.clone();
            rs["spec"]["replicas"] = json!(n);
            store.put_spec(rss, rs)?;
        }
        None => {
            let revision = owned
                .iter()
                .filter_map(|rs| {
                    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                        .as_str()
                        .and_then(|r| r.parse::<u64>().ok())
                })
                .max()
                .unwrap_or(0)
                + 1;
            let mut rs_template = template.clone();
            rs_template["metadata"]["labels"] = Value::Object(labels.clone());
            let mut selector = dep["spec"]["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let rs = json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": new_name,
                    "namespace": ns,
                    "labels": labels,
                    "annotations": {
                        "deployment.kubernetes.io/revision": revision.to_string(),
                        "deployment.kubernetes.io/desired-replicas": n.to_string(),
                        "deployment.kubernetes.io/max-replicas": n.to_string(),
                    },
                    "ownerReferences": [owner_ref(&dep)],
                },
                "spec": {"replicas": n, "selector": selector, "template": rs_template},
            });
            store.insert(rss, rs, false)?;
        }
    }
    replicaset(store, ns, &new_name)?;
    for old in owned.iter().filter(|rs| name_of(rs) != new_name) {
        let mut old = old.clone();
        old["spec"]["replicas"] = json!(0);
        store.put_spec(rss, old.clone())?;
        replicaset(store, ns, &name_of(&old))?;
    }

    let status = json!({
        "observedGeneration": generation(&dep),
        "replicas": n,
        "updatedReplicas": n,
        "readyReplicas": n,
        "availableReplicas": n,
        "conditions": [
            condition(&dep["status"], "Available", "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into()),
            condition(&dep["status"], "Progressing", "NewReplicaSetAvailable",
                format!("ReplicaSet \"{new_name}\" has successfully progressed.")),
        ],
    });
    store.set_status(deployments, ns, name, status).map(|_| ())
}

fn statefulset(store: &mut Store, ns: &str, name: &str) -> Result<(), ApiError> {
    let statefulsets = resources::by_name("statefulsets");
    let pods = resources::by_name("pods");
    let sts = store.get(statefulsets, ns, name)?;
    let n = replicas(&sts);
    let template = sts["spec"]["template"].clone();
    let revision = format!("{name}-{}", pod_template_hash(&template));
    for pod in pods_of(store, ns, &sts) {
        let index = pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"]
            .as_str()
            .and_then(|i| i.parse::<i64>().ok())
            .unwrap_or(i64::MAX);
        let current = pod["metadata"]["labels"]["controller-revision-hash"] == revision.as_str();
        if index >= n || !current {
            delete_pod(store, ns, &pod)?;
        }
    }
    for i in 0..n {
        let pod_name = format!("{name}-{i}");
        if store.get(pods, ns, &pod_name).is_ok() {
            continue;
        }
        let mut labels = template_labels(&template);
        labels.insert("controller-revision-hash".into(), json!(revision));
        labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(pod_name));
        labels.insert("apps.kubernetes.io/pod-index".into(), json!(i.to_string()));
        let pod = ready_pod(
            ns,
            &pod_name,
            Value::Object(labels),
            &sts,
            &template,
            i as u64,
        );
        store.insert(pods, pod, false)?;
    }
    let status = json!({
        "observedGeneration": generation(&sts),
        "replicas": n,
        "readyReplicas": n,
        "currentReplicas": n,
        "updatedReplicas": n,
        "availableReplicas": n,
        "currentRevision": revision,
        "updateRevision": revision,
        "collisionCount": 0,
    });
    store.set_status(statefulsets, ns, name, status).map(|_| ())
}

fn daemonset(store: &mut Store, ns: &str, name: &str) -> Result<(), ApiError> {
    let daemonsets = resources::by_name("daemonsets");
    let ds = store.get(daemonsets, ns, name)?;
    ensure_generated_pods(store, ns, &ds, 1)?;
    let status = json!({
        "observedGeneration": generation(&ds),
        "currentNumberScheduled": 1,
        "desiredNumberScheduled": 1,
        "numberAvailable": 1,
        "numberMisscheduled": 0,
        "numberReady": 1,
        "updatedNumberScheduled": 1,
    });
    store.set_status(daemonsets, ns, name, status).map(|_| ())
}
