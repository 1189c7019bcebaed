//! `[remote.quota]` in each developer's namespace on the shared cluster: a ResourceQuota caps
//! what the namespace may request in all, and a LimitRange gives containers that request
//! nothing a default request, because a quota on `requests.cpu` makes the API server refuse
//! every pod that does not say its own (Kubernetes' ResourceQuota admission).
//!
//! Both objects carry devenv's label and fixed names, are written only when they differ from
//! what the file asks (quantities compared by value: the server stores `0.5` as `500m`), and
//! are deleted when the keys go, so a no-op `up` only reads them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{OffloadError, labels};
use crate::config::Quota;

/// The ResourceQuota's name.
pub const QUOTA: &str = "devenv-quota";
/// The LimitRange's name.
pub const DEFAULTS: &str = "devenv-defaults";
/// What a container that requests nothing is given under a quota.
pub const DEFAULT_CPU: &str = "100m";
pub const DEFAULT_MEMORY: &str = "128Mi";

/// The ResourceQuota `[remote.quota]` asks for; `None` without one.
pub fn resource_quota(quota: Option<&Quota>) -> Option<ResourceQuota> {
    let q = quota?;
    let mut hard = BTreeMap::new();
    if let Some(cpu) = &q.cpu {
        hard.insert("requests.cpu".to_string(), Quantity(cpu.clone()));
    }
    if let Some(memory) = &q.memory {
        hard.insert("requests.memory".to_string(), Quantity(memory.clone()));
    }
    if let Some(pods) = q.pods {
        hard.insert("pods".to_string(), Quantity(pods.to_string()));
    }
    (!hard.is_empty()).then(|| ResourceQuota {
        metadata: meta(QUOTA),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    })
}

/// The LimitRange that goes with it: default requests for the resources the quota caps.
pub fn limit_range(quota: Option<&Quota>) -> Option<LimitRange> {
    let q = quota?;
    let mut defaults = BTreeMap::new();
    if q.cpu.is_some() {
        defaults.insert("cpu".to_string(), Quantity(DEFAULT_CPU.into()));
    }
    if q.memory.is_some() {
        defaults.insert("memory".to_string(), Quantity(DEFAULT_MEMORY.into()));
    }
    (!defaults.is_empty()).then(|| LimitRange {
        metadata: meta(DEFAULTS),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default_request: Some(defaults),
                ..LimitRangeItem::default()
            }],
        }),
    })
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(labels(&[])),
        ..ObjectMeta::default()
    }
}

/// Make the namespace's quota objects what `quota` asks: written when they differ, deleted
/// (only devenv's own) when it asks for none. Returns what changed, for the stage's report.
pub async fn ensure(
    client: Client,
    context: &str,
    namespace: &str,
    quota: Option<&Quota>,
) -> Result<Vec<String>, OffloadError> {
    let mut said = Vec::new();
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), namespace);
    let wanted = resource_quota(quota);
    if let Some(s) = converge(&quotas, context, "ResourceQuota", QUOTA, wanted, |a, b| {
        same_map(
            a.spec.as_ref().and_then(|s| s.hard.as_ref()),
            b.spec.as_ref().and_then(|s| s.hard.as_ref()),
        )
    })
    .await?
    {
        said.push(format!("{s} ResourceQuota {QUOTA} in {namespace}"));
    }
    let ranges: Api<LimitRange> = Api::namespaced(client, namespace);
    let wanted = limit_range(quota);
    if let Some(s) = converge(&ranges, context, "LimitRange", DEFAULTS, wanted, |a, b| {
        let requests = |r: &LimitRange| {
            r.spec
                .as_ref()
                .and_then(|s| s.limits.first())
                .and_then(|l| l.default_request.clone())
        };
        same_map(requests(a).as_ref(), requests(b).as_ref())
    })
    .await?
    {
        said.push(format!("{s} LimitRange {DEFAULTS} in {namespace}"));
    }
    Ok(said)
}

/// One object to `wanted`: `Some("wrote" | "deleted")` when a request changed it.
async fn converge<K>(
    api: &Api<K>,
    context: &str,
    kind: &'static str,
    name: &str,
    wanted: Option<K>,
    same: impl Fn(&K, &K) -> bool,
) -> Result<Option<&'static str>, OffloadError>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api_err = |source| OffloadError::Api {
        context: context.to_string(),
        source,
    };
    let found = api.get_opt(name).await.map_err(api_err)?;
    let ours = found
        .as_ref()
        .is_some_and(|f| super::is_devenv(f.meta().labels.as_ref()));
    match (found, wanted) {
        (Some(found), Some(wanted)) if ours && same(&found, &wanted) => Ok(None),
        (Some(found), Some(_)) if !ours => Err(OffloadError::Foreign {
            kind,
            name: name.to_string(),
            namespace: found.meta().namespace.clone().unwrap_or_default(),
            context: context.to_string(),
        }),
        (_, Some(wanted)) => {
            let params = PatchParams::apply("devenv").force();
            api.patch(name, &params, &Patch::Apply(&wanted))
                .await
                .map_err(api_err)?;
            Ok(Some("wrote"))
        }
        (Some(_), None) if ours => {
            api.delete(name, &DeleteParams::default())
                .await
                .map_err(api_err)?;
            Ok(Some("deleted"))
        }
        (_, None) => Ok(None),
    }
}

fn same_map(
    a: Option<&BTreeMap<String, Quantity>>,
    b: Option<&BTreeMap<String, Quantity>>,
) -> bool {
    let (a, b) = (
        a.cloned().unwrap_or_default(),
        b.cloned().unwrap_or_default(),
    );
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| same_quantity(&v.0, &w.0)))
}

/// Two Kubernetes quantities of the same value (`4` and `4000m`, `0.5` and `500m`).
pub fn same_quantity(a: &str, b: &str) -> bool {
    match (value(a), value(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

fn value(q: &str) -> Option<f64> {
    let digits = q.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let scale = match &q[digits.len()..] {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(digits.parse::<f64>().ok()? * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_compare_by_value_as_the_server_rewrites_them() {
        assert!(same_quantity("0.5", "500m"));
        assert!(same_quantity("4", "4000m"));
        assert!(same_quantity("8Gi", "8589934592"));
        assert!(same_quantity("1G", "1000M"));
        assert!(!same_quantity("8Gi", "8G"));
        assert!(!same_quantity("2", "2500m"));
    }

    #[test]
    fn the_quota_caps_requests_and_the_defaults_cover_what_it_caps() {
        let q = Quota {
            cpu: Some("4".into()),
            memory: None,
            pods: Some(20),
        };
        let rq = resource_quota(Some(&q)).unwrap();
        let hard = rq.spec.unwrap().hard.unwrap();
        assert_eq!(
            hard.keys().collect::<Vec<_>>(),
            ["pods", "requests.cpu"],
            "no memory cap without quota.memory"
        );
        let lr = limit_range(Some(&q)).unwrap();
        let defaults = lr.spec.unwrap().limits[0].default_request.clone().unwrap();
        assert_eq!(defaults.keys().collect::<Vec<_>>(), ["cpu"]);
        assert_eq!(
            rq.metadata.labels.unwrap()[super::super::MANAGED_BY],
            "devenv"
        );

        let pods_only = Quota {
            pods: Some(3),
            ..Quota::default()
        };
        assert!(
            limit_range(Some(&pods_only)).is_none(),
            "a pod count needs no default requests"
        );
        assert!(resource_quota(None).is_none());
        assert!(resource_quota(Some(&Quota::default())).is_none());
    }
}
