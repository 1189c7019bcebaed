//! The versions of the tools devenv drives: minikube, Helm 3 or 4, kubectl, and devenv itself
//! when `[requires]` pins it. A missing tool fails with the install command for this OS; one
//! that answers strangely is reported as it answered; one outside `[requires]` fails with the
//! command that brings a matching version.

use devenv_drivers::Check;

use super::{anchor, doc};
use crate::config::Requires;
use crate::context::Context;
use crate::helm;
use crate::machine::{PROBE_TIMEOUT, current_arch};
use crate::process::{Cmd, ProcessError, install_hint};
use crate::requires::{self, Tool};

/// The three probes, run concurrently, then devenv's own version against `[requires]`.
pub async fn checks(ctx: &Context, required: &Requires) -> Vec<Check> {
    let probe = |tool: Tool| {
        let cmd = Cmd::new(tool.key())
            .args(tool.version_args())
            .read_only()
            .timeout(PROBE_TIMEOUT);
        async move { (tool, ctx.runner.run(&cmd).await) }
    };
    let (minikube, helm, kubectl) = tokio::join!(
        probe(Tool::Minikube),
        probe(Tool::Helm),
        probe(Tool::Kubectl),
    );
    let doc = doc(anchor::TOOLS);
    let mut checks: Vec<Check> = [minikube, helm, kubectl]
        .into_iter()
        .map(|(tool, result)| {
            let program = tool.key();
            let id = format!("tool.{program}");
            match result {
                Err(ProcessError::NotFound { install, .. }) => {
                    Check::fail(&id, format!("{program} is not installed"), install, &doc)
                }
                Err(e) => Check::fail(
                    &id,
                    format!("{program} does not answer: {e}"),
                    format!("reinstall it: {}", install_hint(program, ctx.platform)),
                    &doc,
                ),
                Ok(out) => within_range(
                    version_check(
                        &id,
                        program,
                        &out.stdout,
                        &install_hint(program, ctx.platform),
                    ),
                    tool,
                    tool.read_version(&out.stdout),
                    required,
                    ctx,
                ),
            }
        })
        .collect();
    if required.devenv.is_some() {
        let version = requires::devenv_version();
        checks.insert(
            0,
            within_range(
                Check::ok("tool.devenv", format!("devenv {version}")),
                Tool::Devenv,
                Some(version),
                required,
                ctx,
            ),
        );
    }
    checks
}

/// A tool that answered, held to its `[requires]` range: unchanged when nothing is required
/// or it already failed, a fail with the fix when outside the range.
pub fn within_range(
    check: Check,
    tool: Tool,
    version: Option<semver::Version>,
    required: &Requires,
    ctx: &Context,
) -> Check {
    let Some(range) = tool.required(required) else {
        return check;
    };
    if check.state == devenv_drivers::CheckState::Fail {
        return check;
    }
    let doc = doc(anchor::REQUIRES);
    let Some(version) = version else {
        return Check::warn(
            &check.id,
            format!(
                "{} (cannot tell whether it is within devenv.toml's [requires] {tool} = \"{range}\")",
                check.reason
            ),
            format!("run `{tool} {}`", tool.version_args().join(" ")),
            &doc,
        );
    };
    match requires::check(required, tool, &version, ctx.platform, current_arch()) {
        None => Check {
            reason: format!("{} (devenv.toml requires \"{range}\")", check.reason),
            ..check
        },
        Some(m) => Check::fail(&check.id, m.to_string(), m.fix, &doc),
    }
}

/// Read a tool's version answer: Helm must be 3 or 4; kubectl's client version comes as JSON.
pub fn version_check(id: &str, program: &str, stdout: &str, install: &str) -> Check {
    let doc = doc(anchor::TOOLS);
    match program {
        "helm" => match helm::parse_short_version(stdout) {
            Some((3 | 4, v)) => Check::ok(id, format!("helm {v}")),
            Some((_, v)) => Check::fail(
                id,
                format!("helm {v} is not supported (devenv needs Helm 3 or 4)"),
                install,
                &doc,
            ),
            None => Check::warn(
                id,
                format!("cannot read helm's version from {:?}", stdout.trim()),
                "run `helm version --short` and check it is Helm 3 or 4",
                &doc,
            ),
        },
        "kubectl" => {
            let v = serde_json::from_str::<serde_json::Value>(stdout)
                .ok()
                .and_then(|j| {
                    j["clientVersion"]["gitVersion"]
                        .as_str()
                        .map(str::to_string)
                });
            match v {
                Some(v) => Check::ok(id, format!("kubectl {v}")),
                None => Check::warn(
                    id,
                    "cannot read kubectl's client version",
                    "run `kubectl version --client`",
                    &doc,
                ),
            }
        }
        _ => Check::ok(id, format!("{program} {}", stdout.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devenv_drivers::CheckState;

    #[test]
    fn helm_2_is_refused_and_3_and_4_accepted() {
        assert_eq!(
            version_check("tool.helm", "helm", "v3.17.2+gcc0bbbd", "x").state,
            CheckState::Ok
        );
        assert_eq!(
            version_check("tool.helm", "helm", "v4.1.4+g05fa379", "x").state,
            CheckState::Ok
        );
        let c = version_check("tool.helm", "helm", "v2.17.0+ga690bad", "brew install helm");
        assert_eq!(
            (c.state, c.fix.as_deref()),
            (CheckState::Fail, Some("brew install helm"))
        );
    }

    #[test]
    fn kubectl_client_version_comes_from_json() {
        let c = version_check(
            "tool.kubectl",
            "kubectl",
            r#"{"clientVersion":{"gitVersion":"v1.32.1"}}"#,
            "x",
        );
        assert_eq!(c.reason, "kubectl v1.32.1");
        assert_eq!(
            version_check("tool.kubectl", "kubectl", "garbage", "x").state,
            CheckState::Warn
        );
    }
}
