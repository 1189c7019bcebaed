//! `devenv status`: one screen on the environment, read-only and without waiting: the VM
//! (state, driver, address, CPUs, memory), the NFS export and mount, the Helm release and each
//! workload's readiness. Every probe runs at the same time with a short timeout.

use std::time::Duration;

use serde_json::{Value, json};

use crate::commands::exports::Export;
use crate::context::Context;
use crate::error::Error;
use crate::minikube::{self, VmState};
use crate::nfs::file::ExportsFile;
use crate::process::Cmd;

/// Show the VM, the NFS export and mount, the release and each workload (read-only, fast).
#[derive(Debug, clap::Args)]
pub struct Args {}

const PROBE: Duration = Duration::from_secs(15);

pub async fn exec(_args: Args, ctx: &Context) -> Result<i32, Error> {
    let loaded = ctx.load_config()?;
    let c = &loaded.config;
    let profile = c.project.profile();
    let ns = c.project.namespace();
    let vm = match ctx.runner.output(&minikube::status(&profile)).await {
        Ok(out) => minikube::parse_status(&out).unwrap_or(VmState::Nonexistent),
        Err(_) => VmState::Nonexistent,
    };
    let running = vm == VmState::Running;
    let export = Export::for_project(ctx, &loaded).await?;

    let ip_cmd = minikube::ip(&profile);
    let list_cmd = minikube::profile_list();
    let mounts_cmd = minikube::ssh(&profile, &["cat", "/proc/mounts"])
        .read_only()
        .timeout(PROBE);
    let helm_cmd = Cmd::new("helm")
        .args(["status", c.project.release(), "--namespace", ns])
        .args(["--kube-context", &profile, "-o", "json"])
        .read_only()
        .timeout(PROBE);
    let kubectl_cmd = Cmd::new("kubectl")
        .args(["--context", &profile, "--namespace", ns])
        .args(["get", "deployments,statefulsets", "-o", "json"])
        .args(["--request-timeout", "10s"])
        .read_only()
        .timeout(PROBE);
    let when_running = |cmd: &'_ Cmd| {
        let runner = ctx.runner.clone();
        let cmd = cmd.clone();
        async move {
            if running {
                runner
                    .output(&cmd)
                    .await
                    .ok()
                    .filter(|o| o.success())
                    .map(|o| o.stdout)
            } else {
                None
            }
        }
    };
    let (ip, list, mounts, release, workloads) = tokio::join!(
        when_running(&ip_cmd),
        when_running(&list_cmd),
        when_running(&mounts_cmd),
        when_running(&helm_cmd),
        when_running(&kubectl_cmd),
    );
    let settings = list.and_then(|l| minikube::parse_profile(&l, &profile));
    let mounted = mounts
        .as_deref()
        .map(|m| minikube::has_nfs_mount(m, &export.source.to_string_lossy(), &c.mount.target));
    let exports_text = std::fs::read_to_string(&export.host.exports).unwrap_or_default();
    let block = ExportsFile::parse(&exports_text, export.host.dialect)
        .ok()
        .and_then(|f| f.block_lines(&export.project, export.owner.uid));
    let export_state = match &block {
        None => "missing",
        Some(lines) if *lines == export.lines => "ok",
        Some(_) => "outdated",
    };
    let release: Option<Value> = release.and_then(|r| serde_json::from_str(&r).ok());
    let workloads: Vec<Value> = workloads
        .and_then(|w| serde_json::from_str::<Value>(&w).ok())
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|item| {
            let desired = item["spec"]["replicas"].as_u64().unwrap_or(1);
            let ready = item["status"]["readyReplicas"].as_u64().unwrap_or(0);
            json!({
                "kind": item["kind"],
                "name": item["metadata"]["name"],
                "ready": ready,
                "desired": desired,
            })
        })
        .collect();

    let vm_word = match &vm {
        VmState::Running => "running".to_string(),
        VmState::Stopped => "stopped".to_string(),
        VmState::Nonexistent => "not created".to_string(),
        VmState::Other(s) => s.to_lowercase(),
    };
    if ctx.ui.json {
        println!(
            "{}",
            json!({
                "project": c.project.name,
                "vm": {
                    "profile": profile,
                    "state": vm_word,
                    "ip": ip.as_deref().map(str::trim),
                    "driver": settings.as_ref().map(|s| s.driver.clone()),
                    "cpus": settings.as_ref().map(|s| s.cpus),
                    "memory_mib": settings.as_ref().map(|s| s.memory_mib),
                },
                "exports": {"file": export.host.exports, "block": export_state},
                "mount": {"target": c.mount.target, "mounted": mounted},
                "release": release.as_ref().map(|r| json!({
                    "name": r["name"],
                    "revision": r["version"],
                    "status": r["info"]["status"],
                })),
                "workloads": workloads,
            })
        );
        return Ok(0);
    }
    let ui = &ctx.ui;
    let mut vm_line = format!("{profile}: {vm_word}");
    if let Some(ip) = &ip {
        vm_line.push_str(&format!(" at {}", ip.trim()));
    }
    if let Some(s) = &settings {
        vm_line.push_str(&format!(
            " ({}, {} cpus, {} MiB)",
            s.driver, s.cpus, s.memory_mib
        ));
    }
    ui.say(format!("VM       {vm_line}"));
    ui.say(format!(
        "exports  {} ({})",
        match export_state {
            "ok" => ui.ok("ok"),
            "outdated" => ui.warn("outdated: run `devenv up`"),
            _ => ui.warn("missing: run `devenv up`"),
        },
        export.host.exports.display()
    ));
    ui.say(format!(
        "mount    {}",
        match mounted {
            Some(true) => ui.ok(&format!("{} mounted over NFS", c.mount.target)),
            Some(false) => ui.fail(&format!("{} not mounted: run `devenv up`", c.mount.target)),
            None => ui.dim("unknown (VM not running)"),
        }
    ));
    match &release {
        Some(r) => ui.say(format!(
            "release  {} revision {} {}",
            r["name"].as_str().unwrap_or_default(),
            r["version"],
            r["info"]["status"].as_str().unwrap_or_default()
        )),
        None => ui.say(format!(
            "release  {}",
            ui.dim("not installed or not reachable")
        )),
    }
    for w in &workloads {
        let ready = w["ready"] == w["desired"];
        ui.say(format!(
            "  {:<12} {:<24} {}/{} {}",
            w["kind"].as_str().unwrap_or_default(),
            w["name"].as_str().unwrap_or_default(),
            w["ready"],
            w["desired"],
            if ready {
                ui.ok("ready")
            } else {
                ui.warn("not ready")
            }
        ));
    }
    Ok(0)
}
