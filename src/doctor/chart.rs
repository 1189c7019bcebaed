//! Lint of the team's chart as Kubernetes will receive it: `helm template` with the values files
//! devenv.toml lists, then rules from the seed applied to the rendered objects.
//!
//! - A CPU limit below 1.5× the request throttles the service at its normal load.
//! - Any CPU limit at all in the dev values: CFS throttling took a basic Python service's p99
//!   from 10 ms to 100 ms while its CPU use stayed far below the limit.
//! - A Deployment behind an Ingress needs a preStop hook that sleeps, or rolling updates drop
//!   requests: the pod gets SIGTERM while the ingress controller still sends it traffic.
//! - More pods than kubelet's `max-pods` (vm.max_pods): the seed kept about 60 per node because
//!   scheduling slowed down to minutes at 70.
//!
//! Each rule is a pure function over the parsed manifests, tested on YAML fixtures. devenv's
//! own overlay (offloaded services disabled, source path) is not applied: the rules judge the
//! team's chart and values, which every developer shares.

use std::collections::BTreeMap;
use std::time::Duration;

use devenv_drivers::Check;
use serde::Deserialize;
use serde_json::Value;

use super::{anchor, doc};
use crate::config::Loaded;
use crate::helm;
use crate::process::{Cmd, Output, ProcessError};

/// Pods minikube itself runs on the node (coredns, etcd, kube-apiserver, kube-controller-manager,
/// kube-proxy, kube-scheduler, storage-provisioner, and the ingress controller when enabled):
/// they count against `max-pods` too.
pub const MINIKUBE_SYSTEM_PODS: u64 = 8;

/// The seed's rule: a CPU limit, if any, at 1.5× the normal load or more.
pub const MIN_LIMIT_RATIO: f64 = 1.5;

/// `helm template <release> <chart> --namespace <ns> -f <values>…`. Read-only: it renders
/// locally and talks to no cluster.
pub fn template(loaded: &Loaded) -> Cmd {
    let c = &loaded.config;
    let mut cmd = Cmd::new("helm")
        .args(["template", c.project.release()])
        .arg(loaded.chart_dir())
        .args(["--namespace", c.project.namespace()])
        .cwd(&loaded.root);
    for v in &c.project.values {
        cmd = cmd.arg("-f").arg(helm::values_arg(&loaded.root, v));
    }
    cmd.read_only().timeout(Duration::from_secs(60))
}

/// Every object in a multi-document YAML stream; empty documents are skipped.
pub fn parse_manifests(text: &str) -> Result<Vec<Value>, crate::unreadable::Unreadable> {
    let mut out = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let v = Value::deserialize(document).map_err(|e| e.to_string())?;
        if v.is_object() {
            out.push(v);
        }
    }
    Ok(out)
}

/// All chart checks from helm's answer: `chart.render`, then the four rules when it rendered.
pub fn checks(
    rendered: Result<Output, ProcessError>,
    cmd: &Cmd,
    chart: &str,
    install_helm: &str,
    max_pods: u32,
) -> Vec<Check> {
    const ID: &str = "chart.render";
    let doc = doc(anchor::CHART_RENDER);
    let out = match rendered {
        Err(ProcessError::NotFound { .. }) => {
            return vec![Check::warn(
                ID,
                format!("helm is not installed, so {chart} cannot be rendered and linted"),
                install_helm,
                &doc,
            )];
        }
        Err(e) => {
            return vec![Check::fail(
                ID,
                format!("cannot render {chart}: {e}"),
                cmd.display(),
                &doc,
            )];
        }
        Ok(out) if !out.success() => {
            let tail = crate::process::tail_lines(&out.stderr, 4);
            let fix = if tail.contains("missing in charts/") {
                format!("helm dependency build {}", crate::process::quote(chart))
            } else {
                cmd.display()
            };
            return vec![Check::fail(
                ID,
                format!("helm template fails on {chart}: {tail}"),
                fix,
                &doc,
            )];
        }
        Ok(out) => out,
    };
    let objects = match parse_manifests(&out.stdout) {
        Ok(o) => o,
        Err(e) => {
            return vec![Check::fail(
                ID,
                format!("helm rendered {chart} into YAML that does not parse: {e}"),
                cmd.display(),
                &doc,
            )];
        }
    };
    vec![
        Check::ok(
            ID,
            format!(
                "helm template renders {} objects from {chart}",
                objects.len()
            ),
        ),
        cpu_limit_ratio(&objects),
        cpu_limits(&objects),
        prestop_sleep(&objects),
        pod_count(&objects, max_pods),
    ]
}

/// One container of one workload.
struct Container<'a> {
    /// `Deployment/api`.
    owner: String,
    name: &'a str,
    spec: &'a Value,
}

/// The pod template of a workload object, if it is one.
fn pod_spec(o: &Value) -> Option<&Value> {
    let spec = match o["kind"].as_str()? {
        "Pod" => &o["spec"],
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            &o["spec"]["template"]["spec"]
        }
        "CronJob" => &o["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => return None,
    };
    spec.is_object().then_some(spec)
}

fn owner(o: &Value) -> String {
    format!(
        "{}/{}",
        o["kind"].as_str().unwrap_or("?"),
        o["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn containers(objects: &[Value]) -> Vec<Container<'_>> {
    let mut out = Vec::new();
    for o in objects {
        let Some(spec) = pod_spec(o) else { continue };
        for list in ["initContainers", "containers"] {
            for c in spec[list].as_array().into_iter().flatten() {
                out.push(Container {
                    owner: owner(o),
                    name: c["name"].as_str().unwrap_or("?"),
                    spec: c,
                });
            }
        }
    }
    out
}

/// A CPU quantity in cores: `500m`, `1`, `1.5`, `250000u`, or a YAML number.
pub fn cpu_cores(q: &Value) -> Option<f64> {
    if let Some(n) = q.as_f64() {
        return Some(n);
    }
    let s = q.as_str()?.trim();
    let (num, scale) = match s.char_indices().last()? {
        (i, 'm') => (&s[..i], 1e-3),
        (i, 'u') => (&s[..i], 1e-6),
        (i, 'n') => (&s[..i], 1e-9),
        (i, 'k') => (&s[..i], 1e3),
        _ => (s, 1.0),
    };
    num.parse::<f64>().ok().map(|n| n * scale)
}

fn quantity(q: &Value) -> String {
    q.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| q.to_string())
}

fn list(items: &[String]) -> String {
    let mut shown: Vec<String> = items.iter().take(4).cloned().collect();
    if items.len() > 4 {
        shown.push(format!("and {} more", items.len() - 4));
    }
    shown.join("; ")
}

/// CPU limits below 1.5× the request (a limit without a request counts as 1×: Kubernetes then
/// sets the request to the limit).
pub fn cpu_limit_ratio(objects: &[Value]) -> Check {
    const ID: &str = "chart.cpu-limit-ratio";
    let mut low = Vec::new();
    for c in containers(objects) {
        let res = &c.spec["resources"];
        let Some(limit) = cpu_cores(&res["limits"]["cpu"]) else {
            continue;
        };
        let request = cpu_cores(&res["requests"]["cpu"]).unwrap_or(limit);
        if request > 0.0 && limit < MIN_LIMIT_RATIO * request {
            low.push(format!(
                "{} container {}: limit {} is {:.1}× its request {}",
                c.owner,
                c.name,
                quantity(&res["limits"]["cpu"]),
                limit / request,
                if res["requests"]["cpu"].is_null() {
                    "(defaulted to the limit)".to_string()
                } else {
                    quantity(&res["requests"]["cpu"])
                }
            ));
        }
    }
    if low.is_empty() {
        return Check::ok(ID, "no CPU limit below 1.5× its request");
    }
    Check::warn(
        ID,
        format!(
            "CPU limits below 1.5× the request throttle a service at its normal load: {}",
            list(&low)
        ),
        "raise resources.limits.cpu to at least 1.5× resources.requests.cpu in the values, or drop the CPU limit for development",
        &doc(anchor::CPU_LIMIT_RATIO),
    )
}

/// Any CPU limit at all: in development it only adds latency.
pub fn cpu_limits(objects: &[Value]) -> Check {
    const ID: &str = "chart.cpu-limits";
    let limited: Vec<String> = containers(objects)
        .iter()
        .filter(|c| !c.spec["resources"]["limits"]["cpu"].is_null())
        .map(|c| {
            format!(
                "{} container {} (cpu {})",
                c.owner,
                c.name,
                quantity(&c.spec["resources"]["limits"]["cpu"])
            )
        })
        .collect();
    if limited.is_empty() {
        return Check::ok(ID, "no container has a CPU limit");
    }
    Check::warn(
        ID,
        format!(
            "{} container{} with a CPU limit: the seed's service went from p99 100 ms to 10 ms when its limit was removed, at the same CPU use: {}",
            limited.len(),
            if limited.len() == 1 { "" } else { "s" },
            list(&limited)
        ),
        "remove resources.limits.cpu for these containers in the dev values (keep the request and the memory limit)",
        &doc(anchor::CPU_LIMITS),
    )
}

/// Names of the Services an Ingress sends traffic to (networking.k8s.io/v1 and the older
/// extensions/v1beta1 spelling).
fn ingress_backends(ingress: &Value) -> Vec<&str> {
    fn name(b: &Value) -> Option<&str> {
        b["service"]["name"].as_str().or(b["serviceName"].as_str())
    }
    let spec = &ingress["spec"];
    let mut names: Vec<&str> = [&spec["defaultBackend"], &spec["backend"]]
        .into_iter()
        .filter_map(name)
        .collect();
    for rule in spec["rules"].as_array().into_iter().flatten() {
        for path in rule["http"]["paths"].as_array().into_iter().flatten() {
            names.extend(name(&path["backend"]));
        }
    }
    names.sort_unstable();
    names.dedup();
    names
}

fn namespace(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or("")
}

/// Whether a preStop hook waits: `sleep N` in an exec command (directly or inside `sh -c`) or
/// the `sleep` action of Kubernetes 1.29+, with N above zero.
pub fn prestop_sleeps(container: &Value) -> bool {
    let pre = &container["lifecycle"]["preStop"];
    if pre["sleep"]["seconds"].as_f64().is_some_and(|s| s > 0.0) {
        return true;
    }
    let words: Vec<&str> = pre["exec"]["command"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .flat_map(|w| w.split(|c: char| c.is_whitespace() || c == ';' || c == '&'))
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).any(|w| {
        w[0].rsplit('/').next() == Some("sleep")
            && w[1]
                .trim_end_matches('s')
                .parse::<f64>()
                .is_ok_and(|n| n > 0.0)
    })
}

/// Deployments selected by a Service that an Ingress routes to, whose serving containers (those
/// with ports, or all when none declares one) have no preStop sleep.
pub fn prestop_sleep(objects: &[Value]) -> Check {
    const ID: &str = "chart.prestop";
    fn kind<'a>(objects: &'a [Value], k: &'a str) -> impl Iterator<Item = &'a Value> {
        objects.iter().filter(move |o| o["kind"] == k)
    }
    let mut behind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ing in kind(objects, "Ingress") {
        for svc_name in ingress_backends(ing) {
            let Some(svc) = kind(objects, "Service")
                .find(|s| s["metadata"]["name"] == svc_name && namespace(s) == namespace(ing))
            else {
                continue;
            };
            let Some(selector) = svc["spec"]["selector"]
                .as_object()
                .filter(|s| !s.is_empty())
            else {
                continue;
            };
            for dep in kind(objects, "Deployment").filter(|d| namespace(d) == namespace(svc)) {
                let labels = &dep["spec"]["template"]["metadata"]["labels"];
                if selector.iter().all(|(k, v)| &labels[k] == v) {
                    behind.entry(owner(dep)).or_default().push(format!(
                        "Ingress/{}",
                        ing["metadata"]["name"].as_str().unwrap_or("?")
                    ));
                }
            }
        }
    }
    if behind.is_empty() {
        return Check::ok(ID, "no Deployment is behind an Ingress");
    }
    let mut missing = Vec::new();
    for dep in kind(objects, "Deployment") {
        let Some(ingresses) = behind.get(&owner(dep)) else {
            continue;
        };
        let all: Vec<&Value> = dep["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let serving: Vec<&Value> = all
            .iter()
            .copied()
            .filter(|c| c["ports"].as_array().is_some_and(|p| !p.is_empty()))
            .collect();
        let serving = if serving.is_empty() { all } else { serving };
        for c in serving.iter().filter(|c| !prestop_sleeps(c)) {
            let mut via = ingresses.clone();
            via.dedup();
            missing.push(format!(
                "{} container {} (behind {})",
                owner(dep),
                c["name"].as_str().unwrap_or("?"),
                via.join(", ")
            ));
        }
    }
    if missing.is_empty() {
        return Check::ok(
            ID,
            format!(
                "every Deployment behind an Ingress sleeps in preStop ({})",
                behind.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
    }
    Check::warn(
        ID,
        format!(
            "no preStop sleep, so rolling updates fail requests (SIGTERM arrives while the ingress still routes to the pod): {}",
            list(&missing)
        ),
        "add to each container: lifecycle: {preStop: {exec: {command: [\"sleep\", \"5\"]}}}  (terminationGracePeriodSeconds must stay above the sleep)",
        &doc(anchor::PRESTOP_SLEEP),
    )
}

/// Pods the chart asks for: replicas of Deployments, StatefulSets and ReplicaSets (1 when not
/// set), one per DaemonSet (one node) and bare Pods; plus minikube's own.
pub fn pod_count(objects: &[Value], max_pods: u32) -> Check {
    const ID: &str = "chart.max-pods";
    let chart: u64 = objects
        .iter()
        .map(|o| match o["kind"].as_str() {
            Some("Deployment" | "StatefulSet" | "ReplicaSet") => {
                o["spec"]["replicas"].as_u64().unwrap_or(1)
            }
            Some("DaemonSet" | "Pod") => 1,
            _ => 0,
        })
        .sum();
    let total = chart + MINIKUBE_SYSTEM_PODS;
    let text = format!(
        "{chart} pods from the chart + about {MINIKUBE_SYSTEM_PODS} of minikube's own = {total}, vm.max_pods = {max_pods}"
    );
    if total <= u64::from(max_pods) {
        return Check::ok(ID, text);
    }
    Check::warn(
        ID,
        format!(
            "{text}: pods beyond the limit stay Pending; the seed kept ~60 per node because scheduling slowed to minutes at 70"
        ),
        "offload heavy services (devenv offload <service> --remote) or lower replicas in the dev values; raise vm.max_pods only up to about 60",
        &doc(anchor::MAX_PODS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use devenv_drivers::CheckState;

    fn fixture(name: &str) -> Vec<Value> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/doctor/manifests")
            .join(name);
        parse_manifests(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn multi_document_yaml_skips_empty_documents() {
        let objs =
            parse_manifests("---\n# Source: x\n---\nkind: Service\nmetadata: {name: a}\n---\n\n")
                .unwrap();
        assert_eq!(objs.len(), 1);
        assert!(parse_manifests("kind: [unclosed").is_err());
    }

    #[test]
    fn cpu_quantities_in_cores() {
        use serde_json::json;
        assert_eq!(cpu_cores(&json!("500m")), Some(0.5));
        assert_eq!(cpu_cores(&json!("2")), Some(2.0));
        assert_eq!(cpu_cores(&json!(1.5)), Some(1.5));
        assert_eq!(cpu_cores(&json!("250000u")), Some(0.25));
        assert_eq!(cpu_cores(&Value::Null), None);
        assert_eq!(cpu_cores(&json!("lots")), None);
    }

    #[test]
    fn a_clean_chart_passes_every_rule() {
        let objs = fixture("clean.yaml");
        for c in [
            cpu_limit_ratio(&objs),
            cpu_limits(&objs),
            prestop_sleep(&objs),
            pod_count(&objs, 60),
        ] {
            assert_eq!(c.state, CheckState::Ok, "{c:?}");
        }
        assert_eq!(
            prestop_sleep(&objs).reason,
            "every Deployment behind an Ingress sleeps in preStop (Deployment/api)"
        );
    }

    #[test]
    fn a_limit_below_one_and_a_half_times_the_request_warns() {
        let c = cpu_limit_ratio(&fixture("cpu-limits.yaml"));
        assert_eq!(c.state, CheckState::Warn);
        assert!(
            c.reason
                .contains("Deployment/api container api: limit 1 is 1.0× its request 1"),
            "{}",
            c.reason
        );
        assert!(c.reason.contains("Deployment/worker container worker: limit 500m is 1.0× its request (defaulted to the limit)"), "{}", c.reason);
        assert!(!c.reason.contains("search"), "2× is fine: {}", c.reason);
        assert_eq!(
            c.doc.as_deref(),
            Some(crate::doctor::doc("cpu-limit-ratio").as_str())
        );
    }

    #[test]
    fn any_cpu_limit_warns_with_the_seeds_latency_figures() {
        let c = cpu_limits(&fixture("cpu-limits.yaml"));
        assert_eq!(c.state, CheckState::Warn);
        assert!(
            c.reason.starts_with("3 containers with a CPU limit"),
            "{}",
            c.reason
        );
        assert!(c.reason.contains("p99 100 ms to 10 ms"));
        assert!(
            c.reason
                .contains("StatefulSet/search container search (cpu 2)")
        );
    }

    #[test]
    fn a_deployment_behind_an_ingress_without_a_sleep_warns() {
        let objs = fixture("no-prestop.yaml");
        let c = prestop_sleep(&objs);
        assert_eq!(c.state, CheckState::Warn);
        assert!(
            c.reason
                .contains("Deployment/web container web (behind Ingress/web)"),
            "{}",
            c.reason
        );
        // The sidecar serves nothing; the admin Deployment is not selected by the Service.
        assert!(
            !c.reason.contains("log-shipper") && !c.reason.contains("admin"),
            "{}",
            c.reason
        );
        assert!(
            c.reason
                .contains("Deployment/legacy container legacy (behind Ingress/legacy)"),
            "{}",
            c.reason
        );
        assert!(
            !c.reason.contains("shell"),
            "sh -c 'sleep 10; …' counts: {}",
            c.reason
        );
    }

    #[test]
    fn sleeps_are_recognised_in_their_common_spellings() {
        use serde_json::json;
        let with = |pre: Value| json!({"lifecycle": {"preStop": pre}});
        assert!(prestop_sleeps(&with(
            json!({"exec": {"command": ["sleep", "5"]}})
        )));
        assert!(prestop_sleeps(&with(
            json!({"exec": {"command": ["/bin/sh", "-c", "sleep 15 && nginx -s quit"]}})
        )));
        assert!(prestop_sleeps(&with(
            json!({"exec": {"command": ["/bin/sleep", "5s"]}})
        )));
        assert!(prestop_sleeps(&with(json!({"sleep": {"seconds": 5}}))));
        assert!(!prestop_sleeps(&with(
            json!({"exec": {"command": ["sleep", "0"]}})
        )));
        assert!(!prestop_sleeps(&with(
            json!({"httpGet": {"path": "/quit", "port": 80}})
        )));
        assert!(!prestop_sleeps(&json!({})));
    }

    #[test]
    fn more_pods_than_max_pods_warns_counting_minikubes_own() {
        let objs = fixture("many-pods.yaml");
        let c = pod_count(&objs, 60);
        assert_eq!(c.state, CheckState::Warn);
        assert_eq!(
            c.reason.split(':').next().unwrap(),
            "55 pods from the chart + about 8 of minikube's own = 63, vm.max_pods = 60"
        );
        assert_eq!(pod_count(&objs, 63).state, CheckState::Ok);
    }

    #[test]
    fn helm_missing_or_failing_is_reported_by_the_render_check() {
        let cmd = Cmd::new("helm").args(["template", "shop", "deploy/chart"]);
        let missing = Err(ProcessError::NotFound {
            program: "helm".into(),
            install: "brew install helm".into(),
        });
        let c = &checks(missing, &cmd, "deploy/chart", "brew install helm", 60)[0];
        assert_eq!(
            (c.state, c.fix.as_deref()),
            (CheckState::Warn, Some("brew install helm"))
        );
        assert!(c.reason.contains("helm is not installed"));

        let failed = Ok(Output {
            code: Some(1),
            stderr: "Error: found in Chart.yaml, but missing in charts/ directory: postgresql\n"
                .into(),
            ..Output::default()
        });
        let c = &checks(failed, &cmd, "deploy/chart", "x", 60)[0];
        assert_eq!(
            (c.state, c.fix.as_deref()),
            (CheckState::Fail, Some("helm dependency build deploy/chart"))
        );

        let rendered = Ok(Output {
            code: Some(0),
            stdout: std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/doctor/manifests/clean.yaml"),
            )
            .unwrap(),
            ..Output::default()
        });
        let all = checks(rendered, &cmd, "deploy/chart", "x", 60);
        let ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "chart.render",
                "chart.cpu-limit-ratio",
                "chart.cpu-limits",
                "chart.prestop",
                "chart.max-pods"
            ]
        );
    }
}
