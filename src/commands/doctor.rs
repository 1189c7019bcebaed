//! `devenv doctor`: what stands between this machine and a fast environment. This part checks
//! the VM drivers (each with reason, fix and doc) and the tools devenv drives (minikube, Helm 3
//! or 4, kubectl). Exit code 1 when the chosen driver or a required tool fails.

use devenv_drivers::{Check, CheckState, Choice, DriverStatus, Registry};
use serde_json::json;

use crate::context::Context;
use crate::error::Error;
use crate::helm;
use crate::machine::{self, Machine, PROBE_TIMEOUT};
use crate::process::{Cmd, ProcessError, install_hint};

/// Check this machine: VM drivers, minikube, helm and kubectl, each problem with its fix.
///
/// Exits 1 when the driver devenv would use (vm.driver, or the best healthy one for `auto`) or a
/// required tool has a failing check; warnings do not change the exit code.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn exec(_args: Args, ctx: &Context) -> Result<i32, Error> {
    // A broken devenv.toml must not stop the machine checks: report it as one of them.
    let (choice, config_check) = match ctx.load_config() {
        Ok(l) => (Choice::parse(&l.config.vm.driver), None),
        Err(crate::config::ConfigError::NotFound { .. }) => (Choice::Auto, None),
        Err(e) => (
            Choice::Auto,
            Some(Check::fail(
                "config",
                e.to_string(),
                "fix devenv.toml as shown",
                "docs/config.md",
            )),
        ),
    };

    let host = Machine::probe(ctx.runner.clone()).await;
    let registry = Registry::builtin();
    let drivers = registry.for_host(machine::current_os(), machine::current_arch());
    let (statuses, tools) = tokio::join!(
        async {
            let mut out = Vec::new();
            for d in &drivers {
                out.push(d.status(&host).await);
            }
            out
        },
        tool_checks(ctx)
    );

    let chosen: Option<&str> = match &choice {
        Choice::Named(_) => Some(machine::driver_for(&choice)?.name()),
        Choice::Auto => statuses.iter().find(|s| s.healthy()).map(|s| s.driver),
    };
    let chosen_status = chosen.and_then(|n| statuses.iter().find(|s| s.driver == n));
    let driver_ok = chosen_status.is_some_and(DriverStatus::healthy);
    let tools_ok = tools.iter().all(|c| c.state != CheckState::Fail);
    let ok = driver_ok && tools_ok && config_check.is_none();

    if ctx.ui.json {
        let drivers_json: Vec<_> = statuses
            .iter()
            .map(|s| {
                json!({
                    "name": s.driver,
                    "chosen": Some(s.driver) == chosen,
                    "installed": s.installed,
                    "healthy": s.healthy(),
                    "state": s.state().as_str(),
                    "checks": s.checks.iter().map(check_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "ok": ok,
                "os": format!("{:?}", machine::current_os()).to_lowercase(),
                "arch": format!("{:?}", machine::current_arch()).to_lowercase(),
                "driver_setting": match &choice { Choice::Auto => "auto".to_string(), Choice::Named(n) => n.clone() },
                "chosen_driver": chosen,
                "drivers": drivers_json,
                "tools": tools.iter().map(check_json).collect::<Vec<_>>(),
                "config": config_check.as_ref().map(check_json),
            })
        );
        return Ok(if ok { 0 } else { 1 });
    }

    let ui = &ctx.ui;
    if let Some(c) = &config_check {
        ui.say(ui.bold("Configuration"));
        print_check(ctx, c);
        ui.say("");
    }
    ui.say(ui.bold(&format!(
        "VM drivers ({:?} {:?}, vm.driver = {})",
        machine::current_os(),
        machine::current_arch(),
        match &choice {
            Choice::Auto => "auto".to_string(),
            Choice::Named(n) => format!("\"{n}\""),
        }
    )));
    for s in &statuses {
        let tag = if Some(s.driver) == chosen {
            " (chosen)"
        } else {
            ""
        };
        ui.say(format!(
            "  {}{tag}: {}",
            s.driver,
            state_word(ctx, s.state())
        ));
        for c in &s.checks {
            print_check(ctx, c);
        }
    }
    if chosen.is_none() {
        ui.say(format!(
            "  {}",
            ui.fail("no driver is healthy on this machine: fix the failures above")
        ));
    }
    ui.say("");
    ui.say(ui.bold("Tools"));
    for c in &tools {
        print_check(ctx, c);
    }
    ui.say("");
    let problems = statuses
        .iter()
        .filter(|s| Some(s.driver) == chosen)
        .flat_map(|s| &s.checks)
        .chain(&tools)
        .chain(&config_check)
        .filter(|c| c.state == CheckState::Fail)
        .count();
    if ok {
        ui.say(ui.ok("Ready: run `devenv up`."));
    } else {
        println!(
            "{}",
            ui.fail(&format!(
                "{} problem{} to fix before `devenv up` can work.",
                problems.max(1),
                if problems == 1 { "" } else { "s" }
            ))
        );
    }
    Ok(if ok { 0 } else { 1 })
}

fn state_word(ctx: &Context, s: CheckState) -> String {
    match s {
        CheckState::Ok => ctx.ui.ok("ok"),
        CheckState::Warn => ctx.ui.warn("warn"),
        CheckState::Fail => ctx.ui.fail("fail"),
    }
}

fn print_check(ctx: &Context, c: &Check) {
    let word = state_word(ctx, c.state);
    let pad = " ".repeat(4usize.saturating_sub(c.state.as_str().len()));
    ctx.ui.say(format!("    {word}{pad}  {}", c.reason));
    if let Some(fix) = &c.fix {
        ctx.ui.say(format!("          fix: {fix}"));
    }
    if let Some(doc) = &c.doc
        && c.state != CheckState::Ok
    {
        ctx.ui.say(ctx.ui.dim(&format!("          doc: {doc}")));
    }
}

fn check_json(c: &Check) -> serde_json::Value {
    json!({
        "id": c.id,
        "state": c.state.as_str(),
        "reason": c.reason,
        "fix": c.fix,
        "doc": c.doc,
    })
}

/// The versions of the tools devenv drives, probed concurrently.
async fn tool_checks(ctx: &Context) -> Vec<Check> {
    let probe = |program: &'static str, args: &'static [&'static str]| {
        let cmd = Cmd::new(program)
            .args(args)
            .read_only()
            .timeout(PROBE_TIMEOUT);
        async move { (program, ctx.runner.run(&cmd).await) }
    };
    let (minikube, helm, kubectl) = tokio::join!(
        probe("minikube", &["version", "--short"]),
        probe("helm", &["version", "--short"]),
        probe("kubectl", &["version", "--client", "-o", "json"]),
    );
    let mut checks = Vec::new();
    for (program, result) in [minikube, helm, kubectl] {
        let id = format!("tool.{program}");
        let check = match result {
            Err(ProcessError::NotFound { install, .. }) => Check::fail(
                &id,
                format!("{program} is not installed"),
                install,
                doc_for(program),
            ),
            Err(e) => Check::fail(
                &id,
                format!("{program} does not answer: {e}"),
                format!("reinstall it: {}", install_hint(program, ctx.platform)),
                doc_for(program),
            ),
            Ok(out) => version_check(&id, program, &out.stdout, ctx),
        };
        checks.push(check);
    }
    checks
}

fn version_check(id: &str, program: &str, stdout: &str, ctx: &Context) -> Check {
    match program {
        "helm" => match helm::parse_short_version(stdout) {
            Some((3 | 4, v)) => Check::ok(id, format!("helm {v}")),
            Some((_, v)) => Check::fail(
                id,
                format!("helm {v} is not supported (devenv needs Helm 3 or 4)"),
                install_hint("helm", ctx.platform),
                doc_for("helm"),
            ),
            None => Check::warn(
                id,
                format!("cannot read helm's version from {:?}", stdout.trim()),
                "run `helm version --short` and check it is Helm 3 or 4",
                doc_for("helm"),
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
                    doc_for("kubectl"),
                ),
            }
        }
        _ => Check::ok(id, format!("{program} {}", stdout.trim())),
    }
}

fn doc_for(program: &str) -> &'static str {
    match program {
        "minikube" => "https://minikube.sigs.k8s.io/docs/start/",
        "helm" => "https://helm.sh/docs/intro/install/",
        _ => "https://kubernetes.io/docs/tasks/tools/",
    }
}
