//! `devenv urls`: how to reach each service from the laptop.

use crate::context::Context;
use crate::error::Error;
use crate::minikube;
use crate::urls::{self, ServiceUrls};

/// List how to reach each service from this laptop
///
/// Ingress hosts (served at the VM's address: the host must resolve to it, and devenv says when
/// it does not), NodePorts on the VM's address, and for the rest, offloaded services included,
/// the `devenv forward` command that puts a port on 127.0.0.1. Read-only; `--json` for scripts.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Services of devenv.toml (default: all).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let loaded = ctx.load_config()?;
    let located = super::locate(ctx, &loaded, &args.services)?;
    let c = &loaded.config;
    let profile = c.project.profile();
    let vm = match ctx.runner.output(&minikube::ip(&profile)).await {
        Ok(out) if out.success() => out.stdout.trim().parse().ok(),
        _ => None,
    };
    let client = crate::cluster::client(&profile).await.ok();
    let all = urls::gather(&located, client, c.project.namespace(), vm).await;
    if ctx.ui.json {
        crate::outln!(
            "{}",
            serde_json::json!({"vm": vm.map(|ip| ip.to_string()), "services": all})
        );
        return Ok(0);
    }
    print(ctx, &all, vm).await;
    Ok(0)
}

/// The table: one line per URL, the service's name on its first.
pub async fn print(ctx: &Context, all: &[ServiceUrls], vm: Option<std::net::IpAddr>) {
    let ui = &ctx.ui;
    let width = all.iter().map(|s| s.service.len()).max().unwrap_or(0);
    for s in all {
        let mut first = true;
        let mut label = || {
            let l = if first { s.service.as_str() } else { "" };
            first = false;
            format!("{l:<width$}")
        };
        for u in &s.urls {
            let mut line = format!("  {} {}", label(), u.url);
            if let (Some(host), Some(ip)) = (&u.host, vm)
                && !urls::resolves_to(host, ip).await
            {
                line.push_str(&ui.warn(&format!(
                    "  ({host} does not resolve to the VM: add `{ip} {host}` to /etc/hosts)"
                )));
            }
            ui.say(line);
        }
        if s.urls.is_empty() {
            let how = match (&s.forward, s.place) {
                (Some(f), crate::config::Placement::Remote) => {
                    format!("on the shared cluster: `{f}`")
                }
                (Some(f), _) => format!("no Ingress or NodePort: `{f}`"),
                (None, _) => "no Service: `devenv shell` or `devenv logs` reach it".into(),
            };
            ui.say(format!("  {} {}", label(), ui.dim(&how)));
        }
    }
}
