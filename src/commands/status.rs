//! `devenv status`: one screen on the environment, read-only and without waiting: the VM
//! (state, driver, address, CPUs, memory), the NFS export and mount, the Helm release and each
//! workload's readiness. Every probe runs at the same time with a short timeout.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{Connect, Placement};
use crate::context::Context;
use crate::error::Error;
use crate::export::Export;
use crate::minikube::{self, VmState};
use crate::nfs::file::ExportsFile;
use crate::offload::tunnel;
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
        Ok(out) => minikube::parse_status(&out).unwrap_or_else(|e| VmState::Unknown(e.into())),
        Err(e) => VmState::Unknown(e.to_string()),
    };
    let running = vm == VmState::Running;

    let ip_cmd = minikube::ip(&profile);
    let list_cmd = minikube::profile_list_light();
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
    let export = Export::at_address(
        ctx,
        &loaded,
        ip.as_deref().and_then(|ip| ip.trim().parse().ok()),
    )?;
    let mounted = mounts
        .as_deref()
        .map(|m| minikube::has_nfs_mount(m, &export.source.to_string_lossy(), &c.mount.target));
    let exports_text = crate::nfs::read_exports(&export.host.exports)
        .ok()
        .flatten()
        .unwrap_or_default();
    let block = ExportsFile::parse_bytes(&exports_text, export.host.dialect)
        .ok()
        .and_then(|f| f.block_lines(&export.project, export.owner.uid));
    let export_state = match &block {
        None => "missing",
        Some(lines) if *lines == export.lines && export.host.reload_owed() => "reload-owed",
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

    let project = ctx.state_dir()?.project(&c.project.name, &loaded.root);
    let offloaded = offloaded(ctx, &loaded, &project)?;

    let vm_word = match &vm {
        VmState::Running => "running".to_string(),
        VmState::Stopped => "stopped".to_string(),
        VmState::Nonexistent => "not created".to_string(),
        VmState::Other(s) => s.to_lowercase(),
        VmState::Unknown(why) => format!("unknown: {why}"),
    };
    if ctx.ui.json {
        crate::outln!(
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
                "offloaded": offloaded,
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
            "reload-owed" => ui.warn(
                "written, but the NFS server was never reloaded with it: run `devenv exports apply`"
            ),
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
    for o in &offloaded {
        ui.say(format!(
            "offload  {} → Service {} in {} on {} ({})",
            o["service"].as_str().unwrap_or_default(),
            o["host"].as_str().unwrap_or_default(),
            o["namespace"].as_str().unwrap_or_default(),
            o["context"].as_str().unwrap_or_default(),
            o["connect"].as_str().unwrap_or_default(),
        ));
        if o["connect"] != "tunnel" {
            continue;
        }
        let Some(forwards) = o["tunnel"].as_array() else {
            ui.say(format!(
                "  tunnel {}",
                ui.fail("not running: `devenv up` starts it")
            ));
            continue;
        };
        for f in forwards {
            let health = if f["healthy"] == true {
                ui.ok("healthy")
            } else {
                ui.fail(&format!(
                    "broken: {}",
                    f["error"].as_str().unwrap_or("not checked yet")
                ))
            };
            ui.say(format!(
                "  tunnel {} → {}:{} (pod {}) {health}, {} reconnects, {} in, {} out, {} connections",
                f["listen"].as_str().unwrap_or_default(),
                f["host"].as_str().unwrap_or_default(),
                f["port"],
                f["pod"].as_str().unwrap_or("-"),
                f["reconnects"],
                tunnel::human_bytes(f["bytes_in"].as_u64().unwrap_or(0)),
                tunnel::human_bytes(f["bytes_out"].as_u64().unwrap_or(0)),
                f["connections"],
            ));
        }
    }
    Ok(0)
}

/// Each service the user runs on the remote cluster: where it is and, with `connect = "tunnel"`,
/// the live state of its forwards (`tunnel` is null when no supervisor runs).
fn offloaded(
    ctx: &Context,
    loaded: &crate::config::Loaded,
    project: &crate::state::ProjectDir,
) -> Result<Vec<Value>, Error> {
    let c = &loaded.config;
    let Some(remote) = &c.remote else {
        return Ok(Vec::new());
    };
    let state = project.load()?;
    let live = tunnel::Files::new(project.path()).live_status();
    let namespace = crate::offload::remote_namespace(&ctx.user, &c.project.name);
    Ok(c.services
        .iter()
        .filter(|(name, s)| state.placement(name, s) == Placement::Remote)
        .map(|(name, s)| {
            let tunnel = match (remote.connect, &live) {
                (Connect::Tunnel, Some(status)) => {
                    let forwards: Vec<Value> = status
                        .forwards
                        .iter()
                        .filter(|f| f.forward.service == *name)
                        .map(|f| serde_json::to_value(f).expect("status serialises"))
                        .collect();
                    (!forwards.is_empty()).then_some(Value::Array(forwards))
                }
                _ => None,
            };
            json!({
                "service": name,
                "host": s.host,
                "ports": s.all_ports(),
                "context": remote.context,
                "namespace": namespace,
                "connect": remote.connect,
                "tunnel": tunnel,
            })
        })
        .collect())
}
