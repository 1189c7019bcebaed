//! The resource types the double serves, and the discovery documents built from them.
//!
//! Every type is stored the same way (as JSON); this table only says where it lives in the URL
//! space, what kind it holds, whether it is namespaced, and the few server behaviours that differ
//! between types (a `status` subresource, `metadata.generation`).

use serde_json::{Value, json};

/// One REST resource (`deployments` in `apps/v1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group; `""` is the core group served under `/api`.
    pub group: &'static str,
    pub version: &'static str,
    /// Plural name, as in the URL.
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Has a `status` subresource: writes to the object keep the stored `.status`, and only
    /// writes to `<name>/status` change it (as for every built-in type with a status).
    pub status: bool,
    /// `metadata.generation` is kept and bumped when anything outside metadata and status
    /// changes (the workload, Ingress and policy types do this; Secrets, Services and Pods do not).
    pub generation: bool,
}

impl Resource {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource name the real server puts in messages: `deployments.apps`, `secrets`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

#[allow(clippy::too_many_arguments)]
const fn res(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    status: bool,
    generation: bool,
) -> Resource {
    Resource {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        status,
        generation,
    }
}

/// Everything helm and devenv touch, plus the common types a team's chart may hold. A chart
/// with another kind fails in helm with "no matches for kind", as against a cluster without it.
#[rustfmt::skip]
pub static RESOURCES: &[Resource] = &[
    res("", "v1", "namespaces", "namespace", "Namespace", false, &["ns"], true, false),
    res("", "v1", "nodes", "node", "Node", false, &["no"], true, false),
    res("", "v1", "secrets", "secret", "Secret", true, &[], false, false),
    res("", "v1", "configmaps", "configmap", "ConfigMap", true, &["cm"], false, false),
    res("", "v1", "services", "service", "Service", true, &["svc"], true, false),
    res("", "v1", "pods", "pod", "Pod", true, &["po"], true, false),
    res("", "v1", "events", "event", "Event", true, &["ev"], false, false),
    res("", "v1", "endpoints", "endpoints", "Endpoints", true, &["ep"], false, false),
    res("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, &["sa"], false, false),
    res("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true, &["pvc"], true, false),
    res("", "v1", "resourcequotas", "resourcequota", "ResourceQuota", true, &["quota"], true, false),
    res("", "v1", "limitranges", "limitrange", "LimitRange", true, &["limits"], false, false),
    res("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", false, &["pv"], true, false),
    res("apps", "v1", "deployments", "deployment", "Deployment", true, &["deploy"], true, true),
    res("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, &["sts"], true, true),
    res("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, &["rs"], true, true),
    res("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, &["ds"], true, true),
    res("apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", true, &[], false, false),
    res("batch", "v1", "jobs", "job", "Job", true, &[], true, true),
    res("batch", "v1", "cronjobs", "cronjob", "CronJob", true, &["cj"], true, true),
    res("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", true, &["ing"], true, true),
    res("networking.k8s.io", "v1", "ingressclasses", "ingressclass", "IngressClass", false, &[], false, false),
    res("networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", true, &["netpol"], false, true),
    res("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", true, &[], false, false),
    res("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true, &["pdb"], true, true),
    res("autoscaling", "v2", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true, &["hpa"], true, false),
    res("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true, &[], false, false),
    res("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", true, &[], false, false),
    res("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", false, &[], false, false),
    res("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", false, &[], false, false),
    res("storage.k8s.io", "v1", "storageclasses", "storageclass", "StorageClass", false, &["sc"], false, false),
    res("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, &[], false, false),
];

/// The resource served at `<group>/<version>/<plural>`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource with this plural in this group (any version: the double serves one per group).
pub fn find_plural(group: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
}

/// The resource for a name a test uses: a plural (`deployments`), or `plural.group` when the
/// plural alone is ambiguous. Panics on an unknown name: that is a bug in the test.
pub fn by_name(name: &str) -> &'static Resource {
    let (plural, group) = name.split_once('.').unwrap_or((name, ""));
    let found: Vec<_> = RESOURCES
        .iter()
        .filter(|r| r.plural == plural && (group.is_empty() || r.group == group))
        .collect();
    match found.as_slice() {
        [one] => one,
        [] => panic!("the API double serves no resource named {name:?}"),
        _ => panic!("{name:?} is ambiguous: qualify it with its group"),
    }
}

/// The resource that holds objects of `apiVersion`/`kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// Groups in the order `/apis` lists them (the core group is served under `/api`).
fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// `GET /api`.
pub fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    })
}

fn group_json(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis`: the plain (not aggregated) group list, which makes client-go fetch each
/// `/apis/<group>/<version>` in turn.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups().iter().map(|(g, v)| group_json(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`, if the group is served.
pub fn api_group(group: &str) -> Option<Value> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == group)?;
    let mut doc = group_json(g, v);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `GET /api/v1` or `GET /apis/<group>/<version>`, if served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let members: Vec<&Resource> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if members.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for r in members {
        let verbs = [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        list.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs,
            "shortNames": r.short_names,
        }));
        if r.status {
            list.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.plural == "pods" {
            list.push(json!({
                "name": "pods/log",
                "singularName": "",
                "namespaced": true,
                "kind": "Pod",
                "verbs": ["get"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": list,
    }))
}
