//! What running a service remotely saves the laptop: the CPU and memory its subchart's workloads
//! request, read from the subchart rendered by `helm template` (the same manifests the release
//! would apply, so the figure follows the chart and its values). Requests, not usage: they are
//! what the local scheduler reserves, and what the VM's size must leave room for.

use serde_json::Value;

/// Resource requests summed over a subchart's workloads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Requests {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

impl Requests {
    /// `750m CPU, 1.5Gi` for a listing.
    pub fn human(&self) -> String {
        let gib = self.memory_bytes as f64 / f64::from(1u32 << 30);
        let memory = if gib >= 1.0 {
            format!("{}Gi", trim(gib))
        } else {
            format!("{}Mi", self.memory_bytes >> 20)
        };
        format!("{}m CPU, {memory}", self.cpu_millis)
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Sum the requests of every Deployment, StatefulSet, DaemonSet (counted once), Job and Pod in
/// `manifests` (multi-document YAML), times their replicas.
pub fn sum(manifests: &str) -> Result<Requests, crate::unreadable::Unreadable> {
    let mut total = Requests::default();
    for doc in serde_norway::Deserializer::from_str(manifests) {
        let value: Value = serde::Deserialize::deserialize(doc).map_err(|e| e.to_string())?;
        let kind = value["kind"].as_str().unwrap_or_default();
        let (pod_spec, replicas) = match kind {
            "Deployment" | "StatefulSet" | "ReplicaSet" => (
                &value["spec"]["template"]["spec"],
                value["spec"]["replicas"].as_u64().unwrap_or(1),
            ),
            "DaemonSet" | "Job" => (&value["spec"]["template"]["spec"], 1),
            "Pod" => (&value["spec"], 1),
            _ => continue,
        };
        for c in pod_spec["containers"].as_array().into_iter().flatten() {
            let requests = &c["resources"]["requests"];
            if let Some(cpu) = requests["cpu"]
                .as_str()
                .map(str::to_string)
                .or_else(|| requests["cpu"].as_f64().map(|f| f.to_string()))
            {
                total.cpu_millis += replicas * cpu_millis(&cpu)?;
            }
            if let Some(mem) = requests["memory"]
                .as_str()
                .map(str::to_string)
                .or_else(|| requests["memory"].as_u64().map(|n| n.to_string()))
            {
                total.memory_bytes += replicas * bytes(&mem)?;
            }
        }
    }
    Ok(total)
}

/// A CPU quantity (`250m`, `1`, `0.5`) in millicores.
pub fn cpu_millis(q: &str) -> Result<u64, crate::unreadable::Unreadable> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m
            .parse()
            .map_err(|_| format!("bad CPU quantity {q:?}").into());
    }
    q.parse::<f64>()
        .map(|c| (c * 1000.0).round() as u64)
        .map_err(|_| format!("bad CPU quantity {q:?}").into())
}

/// A memory quantity (`512Mi`, `1Gi`, `1G`, `1000000`) in bytes.
pub fn bytes(q: &str) -> Result<u64, crate::unreadable::Unreadable> {
    let q = q.trim();
    const UNITS: [(&str, u64); 10] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("K", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("", 1),
    ];
    for (suffix, factor) in UNITS {
        if let Some(n) = q.strip_suffix(suffix) {
            if let Ok(n) = n.parse::<f64>() {
                return Ok((n * factor as f64).round() as u64);
            }
            if !suffix.is_empty() {
                continue;
            }
        }
    }
    Err(format!("bad memory quantity {q:?}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_kubernetes_notation() {
        assert_eq!(cpu_millis("250m").unwrap(), 250);
        assert_eq!(cpu_millis("1").unwrap(), 1000);
        assert_eq!(cpu_millis("0.5").unwrap(), 500);
        assert_eq!(bytes("512Mi").unwrap(), 512 << 20);
        assert_eq!(bytes("1Gi").unwrap(), 1 << 30);
        assert_eq!(bytes("1G").unwrap(), 1_000_000_000);
        assert_eq!(bytes("1000").unwrap(), 1000);
        assert!(bytes("lots").is_err());
    }

    #[test]
    fn requests_are_summed_over_workloads_and_replicas() {
        let manifests = "\
---
apiVersion: v1
kind: Service
metadata: {name: postgres}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: postgres}
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: db
          resources: {requests: {cpu: 250m, memory: 512Mi}, limits: {memory: 1Gi}}
        - name: exporter
          resources: {requests: {cpu: 50m}}
";
        let r = sum(manifests).unwrap();
        assert_eq!(r.cpu_millis, 600);
        assert_eq!(r.memory_bytes, 1 << 30);
        assert_eq!(r.human(), "600m CPU, 1Gi");
    }
}
