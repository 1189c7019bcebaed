//! `devenv doctor`: what stands between this machine and a fast environment. The VM drivers
//! report their own checks; everything else (tools, host kernel settings, VirtualBox, the source
//! mount and `stat` latency, NFS, the chart, the remote cluster) comes from [`crate::doctor`].
//! This module runs both concurrently and renders them, grouped for people or as JSON.
//!
//! Exit code 1 when the driver devenv would use or any other check fails; warnings do not
//! change it. Nothing here changes the machine.

use devenv_drivers::{Check, CheckState, Choice, DriverStatus, Registry};
use serde_json::json;

use crate::context::Context;
use crate::doctor::{self, Finding, Group, Roots, anchor};
use crate::error::Error;
use crate::machine::{self, Machine};

/// Check this machine and project: VM drivers, tools, host settings, VirtualBox, the source
/// mount and its `stat` latency, NFS exports, the chart, the remote cluster.
///
/// Every problem comes with the command that fixes it and a link into
/// docs/troubleshooting.md. Exits 1 when something fails (the chosen VM driver, a required tool,
/// or any other check); warnings do not change the exit code. Only reads: never changes the
/// machine.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also write everything a ticket needs into one .tar.gz (default
    /// devenv-bundle-<time>.tar.gz here): doctor's findings, tool versions, the machine,
    /// devenv.toml, your offload toggles, the last runs of `up`, the exports block, minikube's
    /// status and logs, the release and its events, the tunnel. Secrets (passwords, tokens,
    /// keys, certificates, kubeconfig credentials) are removed; what cannot be collected is
    /// listed in MISSING.txt.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    pub bundle: Option<std::path::PathBuf>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    // A broken devenv.toml must not stop the machine checks: report it as one of them.
    let config = ctx.load_config();
    let config_error = match &config {
        Err(e) if !matches!(e, crate::config::ConfigError::NotFound { .. }) => Some(e.to_string()),
        _ => None,
    };
    let (choice, loaded, config_check) = match config {
        Ok(l) => (Choice::parse(&l.config.vm.driver), Some(l), None),
        Err(crate::config::ConfigError::NotFound { .. }) => (Choice::Auto, None, None),
        Err(e) => (
            Choice::Auto,
            None,
            Some(Check::fail(
                "config",
                e.to_string(),
                format!(
                    "fix devenv.toml as shown (every key is described in {})",
                    crate::docs::url("config.md")
                ),
                &doctor::doc(anchor::CONFIG),
            )),
        ),
    };
    // An impossible driver setting is a usage error, before any probe runs (a bundle is
    // still written: it is for exactly such a laptop).
    if let Choice::Named(_) = &choice
        && args.bundle.is_none()
    {
        machine::driver_for(&choice)?;
    }

    let host = Machine::probe(ctx.runner.clone()).await;
    let registry = Registry::builtin();
    let drivers = registry.for_host(machine::current_os(), machine::current_arch());
    let (statuses, mut findings) = tokio::join!(
        async {
            let mut out = Vec::new();
            for d in &drivers {
                out.push(d.status(&host).await);
            }
            out
        },
        doctor::run(ctx, loaded.as_ref(), Roots::under(ctx.host_root.as_deref()))
    );
    if let Some(c) = config_check {
        findings.insert(
            0,
            Finding {
                group: Group::Config,
                check: c,
            },
        );
    }

    let chosen: Option<&str> = match &choice {
        Choice::Named(_) => machine::driver_for(&choice).ok().map(|d| d.name()),
        Choice::Auto => statuses.iter().find(|s| s.healthy()).map(|s| s.driver),
    };
    let chosen_status = chosen.and_then(|n| statuses.iter().find(|s| s.driver == n));
    let driver_ok = chosen_status.is_some_and(DriverStatus::healthy);
    // The chosen driver's checks count; with none healthy, every driver's failures are the
    // problems to fix.
    let counted = |state: CheckState| {
        statuses
            .iter()
            .filter(|s| chosen.is_none_or(|c| c == s.driver))
            .flat_map(|s| &s.checks)
            .chain(findings.iter().map(|f| &f.check))
            .filter(|c| c.state == state)
            .count()
    };
    let (failures, warnings) = (counted(CheckState::Fail), counted(CheckState::Warn));
    let ok = driver_ok && failures == 0;

    let report = report_json(&choice, chosen, &statuses, &findings, ok);
    if let Some(path) = args.bundle {
        return write_bundle(ctx, loaded.as_ref(), config_error, &report, path, ok).await;
    }
    if ctx.ui.json {
        crate::outln!("{report}");
    } else {
        print_human(ctx, &choice, chosen, &statuses, &findings);
        let ui = &ctx.ui;
        if ok {
            let note = match warnings {
                0 => String::new(),
                1 => " (1 warning above)".to_string(),
                n => format!(" ({n} warnings above)"),
            };
            ui.say(ui.ok(&format!("Ready: run `devenv up`.{note}")));
        } else {
            let problems = failures.max(1);
            crate::outln!(
                "{}",
                ui.fail(&format!(
                    "{problems} problem{} to fix before `devenv up` can work well.",
                    if problems == 1 { "" } else { "s" }
                ))
            );
        }
    }
    Ok(if ok { 0 } else { 1 })
}

fn choice_text(choice: &Choice) -> String {
    match choice {
        Choice::Auto => "auto".to_string(),
        Choice::Named(n) => n.clone(),
    }
}

/// `devenv doctor --bundle`: the archive, and what is in it.
async fn write_bundle(
    ctx: &Context,
    loaded: Option<&crate::config::Loaded>,
    config_error: Option<String>,
    report: &serde_json::Value,
    path: std::path::PathBuf,
    ok: bool,
) -> Result<i32, Error> {
    let path = if path.as_os_str().is_empty() {
        crate::bundle::default_path(&ctx.cwd)
    } else {
        ctx.cwd.join(path)
    };
    let bundle = crate::bundle::collect(ctx, loaded, config_error, report).await;
    crate::bundle::write(&bundle, &path).map_err(|source| Error::Io {
        action: "write the bundle",
        path: path.clone(),
        source,
    })?;
    if ctx.ui.json {
        crate::outln!(
            "{}",
            json!({
                "bundle": path,
                "files": bundle.files.iter().map(|(n, b)| json!({"name": n, "bytes": b.len()})).collect::<Vec<_>>(),
                "missing": bundle.missing.iter().map(|(w, y)| json!({"what": w, "why": y})).collect::<Vec<_>>(),
                "doctor_ok": ok,
            })
        );
        return Ok(0);
    }
    let ui = &ctx.ui;
    ui.say(ui.ok(&format!(
        "Wrote {} (secrets removed): attach it to your ticket.",
        path.display()
    )));
    for (name, bytes) in &bundle.files {
        crate::outln!("  {:<28} {:>8} bytes", name, bytes.len());
    }
    if !bundle.missing.is_empty() {
        crate::outln!("Not collected (listed in MISSING.txt):");
        for (what, why) in &bundle.missing {
            crate::outln!("  {what}: {why}");
        }
    }
    if !ok {
        crate::outln!("doctor found problems: they are in doctor.json, or run `devenv doctor`.");
    }
    Ok(0)
}

fn report_json(
    choice: &Choice,
    chosen: Option<&str>,
    statuses: &[DriverStatus],
    findings: &[Finding],
    ok: bool,
) -> serde_json::Value {
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
    let in_group = |g: Group| -> Vec<serde_json::Value> {
        findings
            .iter()
            .filter(|f| f.group == g)
            .map(|f| check_json(&f.check))
            .collect()
    };
    let checks: Vec<_> = findings
        .iter()
        .map(|f| {
            let mut v = check_json(&f.check);
            v["group"] = json!(f.group.as_str());
            v
        })
        .collect();
    json!({
            "ok": ok,
            "os": format!("{:?}", machine::current_os()).to_lowercase(),
            "arch": format!("{:?}", machine::current_arch()).to_lowercase(),
            "driver_setting": choice_text(choice),
            "chosen_driver": chosen,
            "drivers": drivers_json,
            "tools": in_group(Group::Tools),
            "config": findings.iter().find(|f| f.group == Group::Config).map(|f| check_json(&f.check)),
            "checks": checks,
    })
}

fn print_human(
    ctx: &Context,
    choice: &Choice,
    chosen: Option<&str>,
    statuses: &[DriverStatus],
    findings: &[Finding],
) {
    let ui = &ctx.ui;
    let groups = |range: &[Group]| {
        for g in range {
            let in_group: Vec<&Finding> = findings.iter().filter(|f| f.group == *g).collect();
            if in_group.is_empty() {
                continue;
            }
            ui.say(ui.bold(g.title()));
            for f in in_group {
                print_check(ctx, &f.check);
            }
            ui.say("");
        }
    };
    groups(&[Group::Config]);
    ui.say(ui.bold(&format!(
        "VM drivers ({:?} {:?}, vm.driver = {})",
        machine::current_os(),
        machine::current_arch(),
        match choice {
            Choice::Auto => "auto".to_string(),
            Choice::Named(n) => format!("\"{n}\""),
        }
    )));
    for s in statuses {
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
    groups(&[
        Group::Tools,
        Group::Host,
        Group::Vm,
        Group::Nfs,
        Group::Chart,
        Group::Remote,
    ]);
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
