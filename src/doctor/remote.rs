//! Checks of the shared dev cluster that takes offloaded services: its kubeconfig context exists
//! and the cluster answers, within a short timeout, that this developer may work in their
//! namespace. Both probes only read (`kubectl config get-contexts`, `kubectl auth can-i`).
//! With `connect = "tunnel"`, each offloaded service's forwards are checked from the tunnel
//! supervisor's status file (no probe of its own: the supervisor checks them every 10 s).

use std::time::Duration;

use devenv_drivers::Check;

use super::{anchor, doc};
use crate::process::{Cmd, Output, ProcessError, quote};

/// `remote.tunnel`: every port of every service this developer runs remotely is forwarded by a
/// running supervisor, and its last check passed.
pub fn tunnel_checks(
    tunnelled: &[String],
    status: Option<&crate::offload::tunnel::Status>,
    log: &std::path::Path,
) -> Vec<Check> {
    let tunnel_doc = doc(anchor::REMOTE_TUNNEL);
    if tunnelled.is_empty() {
        return Vec::new();
    }
    let Some(status) = status else {
        return vec![Check::fail(
            "remote.tunnel",
            format!(
                "{} run(s) on the remote cluster but no tunnel supervisor runs for this project",
                tunnelled.join(", ")
            ),
            "devenv up (starts it; `devenv down` stops it)",
            &tunnel_doc,
        )];
    };
    let mut out = Vec::new();
    for service in tunnelled {
        let forwards: Vec<_> = status
            .forwards
            .iter()
            .filter(|f| f.forward.service == *service)
            .collect();
        if forwards.is_empty() {
            out.push(Check::fail(
                "remote.tunnel",
                format!(
                    "{service} runs on the remote cluster but the tunnel supervisor (pid {}) does not forward it",
                    status.pid
                ),
                "devenv up",
                &tunnel_doc,
            ));
        }
        for f in forwards {
            let what = format!(
                "tunnel {} → {}:{}",
                f.listen, f.forward.host, f.forward.port
            );
            out.push(if f.healthy {
                Check::ok(
                    "remote.tunnel",
                    format!(
                        "{what} is healthy (pod {}, {} reconnects)",
                        f.pod.as_deref().unwrap_or("-"),
                        f.reconnects
                    ),
                )
            } else {
                Check::fail(
                    "remote.tunnel",
                    format!(
                        "{what} is broken: {}",
                        f.error.as_deref().unwrap_or("not checked yet")
                    ),
                    format!(
                        "kubectl --context {} -n {} get pods shows the remote pods; the supervisor retries by itself and logs to {}",
                        quote(&status.spec.context),
                        quote(&status.spec.namespace),
                        log.display()
                    ),
                    &tunnel_doc,
                )
            });
        }
    }
    out
}

/// How long the API server may take to answer.
pub const REQUEST_TIMEOUT: &str = "5s";

/// `kubectl config get-contexts -o name`.
pub fn contexts() -> Cmd {
    Cmd::new("kubectl")
        .args(["config", "get-contexts", "-o", "name"])
        .read_only()
        .timeout(Duration::from_secs(15))
}

/// `kubectl --context C auth can-i get pods --namespace NS`, bounded by [`REQUEST_TIMEOUT`].
pub fn can_i(context: &str, namespace: &str) -> Cmd {
    Cmd::new("kubectl")
        .args(["--context", context])
        .arg(format!("--request-timeout={REQUEST_TIMEOUT}"))
        .args(["auth", "can-i", "get", "pods", "--namespace", namespace])
        .read_only()
        .timeout(Duration::from_secs(20))
}

/// `kubectl --context C version -o json`: the server's version, for `[requires] kubernetes`.
pub fn server_version(context: &str) -> Cmd {
    Cmd::new("kubectl")
        .args(["--context", context])
        .arg(format!("--request-timeout={REQUEST_TIMEOUT}"))
        .args(["version", "-o", "json"])
        .read_only()
        .timeout(Duration::from_secs(20))
}

/// `remote.version`: the shared cluster's Kubernetes against `[requires] kubernetes`.
pub fn version_check(
    context: &str,
    answer: Result<Output, ProcessError>,
    required: &crate::config::Requires,
    ctx: &crate::context::Context,
) -> Check {
    let doc = doc(anchor::REQUIRES);
    let version = answer.as_ref().ok().and_then(|out| {
        let json: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        crate::requires::loose(json["serverVersion"]["gitVersion"].as_str()?)
    });
    let check = match (&answer, &version) {
        (_, Some(v)) => Check::ok("remote.version", format!("{context} runs Kubernetes {v}")),
        (Err(e), None) => Check::warn(
            "remote.version",
            format!("cannot ask {context} for its version: {e}"),
            format!("kubectl --context {} version", quote(context)),
            &doc,
        ),
        (Ok(out), None) => Check::warn(
            "remote.version",
            format!(
                "{context} did not say its version: {}",
                crate::process::tail_lines(&format!("{}{}", out.stderr, out.stdout), 2)
            ),
            format!("kubectl --context {} version", quote(context)),
            &doc,
        ),
    };
    super::tools::within_range(
        check,
        crate::requires::Tool::Kubernetes,
        version,
        required,
        ctx,
    )
}

/// `remote.context` and `remote.access` from the two probes' answers.
pub fn checks(
    context: &str,
    namespace: &str,
    contexts: Result<Output, ProcessError>,
    access: Result<Output, ProcessError>,
    install_kubectl: &str,
) -> Vec<Check> {
    let context_doc = doc(anchor::REMOTE_CONTEXT);
    let names = match contexts {
        Err(ProcessError::NotFound { .. }) => {
            return vec![Check::warn(
                "remote.context",
                format!("kubectl is not installed, so the context {context} cannot be checked"),
                install_kubectl,
                &context_doc,
            )];
        }
        Err(e) => {
            return vec![Check::fail(
                "remote.context",
                format!("cannot list kubeconfig contexts: {e}"),
                "kubectl config get-contexts",
                &context_doc,
            )];
        }
        Ok(out) if !out.success() => {
            return vec![Check::fail(
                "remote.context",
                format!(
                    "kubectl cannot read the kubeconfig: {}",
                    crate::process::tail_lines(&out.stderr, 3)
                ),
                "kubectl config view",
                &context_doc,
            )];
        }
        Ok(out) => out
            .stdout
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>(),
    };
    if !names.iter().any(|n| n == context) {
        let found = if names.is_empty() {
            "it has none".to_string()
        } else {
            format!("it has {}", names.join(", "))
        };
        return vec![Check::fail(
            "remote.context",
            format!(
                "your kubeconfig has no context {context} (remote.context in devenv.toml); {found}"
            ),
            format!(
                "get the dev cluster's kubeconfig from your platform team, add it (KUBECONFIG=~/.kube/config:dev-cluster.yaml kubectl config view --flatten > merged && mv merged ~/.kube/config), then check: kubectl config get-contexts {}",
                quote(context)
            ),
            &context_doc,
        )];
    }
    let ok_context = Check::ok(
        "remote.context",
        format!("kubeconfig context {context} exists"),
    );
    let access_doc = doc(anchor::REMOTE_ACCESS);
    let show = format!("kubectl --context {} version", quote(context));
    let access = match access {
        Ok(out) if out.success() && out.stdout.trim() == "yes" => Check::ok(
            "remote.access",
            format!("{context} answers: you may get pods in namespace {namespace}"),
        ),
        Ok(out) if out.stdout.trim_start().starts_with("no") => Check::fail(
            "remote.access",
            format!("{context} answers, but you may not get pods in namespace {namespace}"),
            format!(
                "ask the cluster's admins for access; kubectl --context {} auth can-i --list --namespace {} shows what you may do",
                quote(context),
                quote(namespace)
            ),
            &access_doc,
        ),
        Ok(out) => Check::fail(
            "remote.access",
            format!(
                "{context} does not answer: {}",
                crate::process::tail_lines(&format!("{}{}", out.stderr, out.stdout), 2)
            ),
            show,
            &access_doc,
        ),
        Err(e) => Check::fail(
            "remote.access",
            format!("{context} does not answer: {e}"),
            show,
            &access_doc,
        ),
    };
    vec![ok_context, access]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::tunnel::example_status as tunnel_status;
    use devenv_drivers::CheckState;

    #[test]
    fn each_tunnelled_service_needs_a_running_healthy_forward() {
        let log = std::path::Path::new("/state/tunnel.log");
        assert!(
            tunnel_checks(&[], None, log).is_empty(),
            "nothing offloaded"
        );

        let none = tunnel_checks(&["postgres".into()], None, log);
        assert_eq!(none[0].state, CheckState::Fail);
        assert!(none[0].reason.contains("no tunnel supervisor runs"));

        let ok = tunnel_checks(&["postgres".into()], Some(&tunnel_status(true)), log);
        assert_eq!(ok[0].state, CheckState::Ok);
        assert!(
            ok[0].reason.contains(
                "192.168.39.1:40213 → postgres:5432 is healthy (pod postgres-0, 2 reconnects)"
            ),
            "{}",
            ok[0].reason
        );

        let broken = tunnel_checks(&["postgres".into()], Some(&tunnel_status(false)), log);
        assert_eq!(broken[0].state, CheckState::Fail);
        assert!(
            broken[0]
                .reason
                .contains("no ready pod behind Service postgres")
        );
        let fix = broken[0].fix.clone().unwrap_or_default();
        assert!(
            fix.contains("kubectl --context dev-cluster -n devenv-ann-shop get pods"),
            "{fix}"
        );
        assert!(fix.contains("/state/tunnel.log"), "{fix}");

        let other = tunnel_checks(&["search".into()], Some(&tunnel_status(true)), log);
        assert!(other[0].reason.contains("does not forward it"));
    }

    fn out(code: i32, stdout: &str, stderr: &str) -> Result<Output, ProcessError> {
        Ok(Output {
            code: Some(code),
            stdout: stdout.into(),
            stderr: stderr.into(),
            ..Output::default()
        })
    }

    #[test]
    fn a_missing_context_fails_and_lists_the_ones_there_are() {
        let c = checks(
            "dev-cluster",
            "devenv-ann-shop",
            out(0, "minikube\ndevenv-shop\n", ""),
            out(1, "", ""),
            "x",
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].state, CheckState::Fail);
        assert!(
            c[0].reason.ends_with("it has minikube, devenv-shop"),
            "{}",
            c[0].reason
        );
        assert!(
            c[0].fix
                .as_deref()
                .unwrap()
                .ends_with("kubectl config get-contexts dev-cluster")
        );
    }

    #[test]
    fn an_authorised_answer_is_ok() {
        let c = checks(
            "dev-cluster",
            "devenv-ann-shop",
            out(0, "dev-cluster\n", ""),
            out(0, "yes\n", ""),
            "x",
        );
        assert!(c.iter().all(|c| c.state == CheckState::Ok), "{c:?}");
        assert_eq!(
            c[1].reason,
            "dev-cluster answers: you may get pods in namespace devenv-ann-shop"
        );
    }

    #[test]
    fn a_refusal_and_an_unreachable_server_are_told_apart() {
        let denied = checks("dev", "ns", out(0, "dev\n", ""), out(1, "no\n", ""), "x");
        assert_eq!(denied[1].state, CheckState::Fail);
        assert!(
            denied[1]
                .fix
                .as_deref()
                .unwrap()
                .contains("auth can-i --list --namespace ns")
        );
        let down = checks(
            "dev",
            "ns",
            out(0, "dev\n", ""),
            out(
                1,
                "",
                "E0101 memcache.go:265] couldn't get current server API group list\nThe connection to the server 10.0.0.1:6443 was refused - did you specify the right host or port?\n",
            ),
            "x",
        );
        assert_eq!(down[1].state, CheckState::Fail);
        assert!(down[1].reason.contains("was refused"), "{}", down[1].reason);
        assert_eq!(
            down[1].fix.as_deref(),
            Some("kubectl --context dev version")
        );
    }

    #[test]
    fn without_kubectl_the_check_says_how_to_install_it() {
        let missing = Err(ProcessError::NotFound {
            program: "kubectl".into(),
            install: "brew install kubernetes-cli".into(),
        });
        let c = checks(
            "dev",
            "ns",
            missing,
            out(1, "", ""),
            "brew install kubernetes-cli",
        );
        assert_eq!(
            (c[0].state, c[0].fix.as_deref()),
            (CheckState::Warn, Some("brew install kubernetes-cli"))
        );
    }

    #[test]
    fn the_access_probe_is_bounded_and_read_only() {
        let cmd = can_i("dev cluster", "devenv-ann-shop");
        assert_eq!(
            cmd.display(),
            "kubectl --context 'dev cluster' --request-timeout=5s auth can-i get pods --namespace devenv-ann-shop"
        );
        assert!(cmd.is_read_only());
    }
}
