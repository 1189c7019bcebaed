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
    /// Map the Ingress hosts to the VM's address in a block of the hosts file that devenv
    /// manages (`devenv down --purge` removes it); asks sudo when the file is root's.
    #[arg(long)]
    pub write_hosts: bool,
    /// With --write-hosts: print the change to the hosts file and make none.
    #[arg(long, requires = "write_hosts")]
    pub dry_run: bool,
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
    if args.write_hosts {
        return write_hosts(ctx, &c.project.name, &all, vm, args.dry_run).await;
    }
    if ctx.ui.json {
        crate::outln!(
            "{}",
            serde_json::json!({"vm": vm.map(|ip| ip.to_string()), "services": all})
        );
        return Ok(0);
    }
    print(ctx, &c.project.name, &all, vm).await;
    Ok(0)
}

/// The hosts file's block for `project` set to the Ingress hosts of `all` at the VM's address.
async fn write_hosts(
    ctx: &Context,
    project: &str,
    all: &[ServiceUrls],
    vm: Option<std::net::IpAddr>,
    dry_run: bool,
) -> Result<i32, Error> {
    let Some(std::net::IpAddr::V4(ip)) = vm else {
        return Err(Error::Usage {
            message: "the VM has no address: the hosts file would map its names to nothing".into(),
            help: "start the environment with `devenv up` first".into(),
        });
    };
    let names: Vec<String> = all
        .iter()
        .flat_map(|s| s.urls.iter().filter_map(|u| u.host.clone()))
        .collect();
    let lines = crate::hosts::block_lines(ip, &names)?;
    let path = &ctx.hosts_file;
    let uid = crate::nfs::Owner::current().uid;
    if dry_run {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let after = crate::hosts::edit(&text, path, project, uid, Some(&lines))?;
        if after == text {
            crate::outln!("{} already maps {}", path.display(), names.join(", "));
        } else {
            crate::outln!("would change {}:", path.display());
            crate::out!("{}", crate::nfs::diff(text.as_bytes(), after.as_bytes()));
        }
        return Ok(0);
    }
    let backup = ctx.state_dir()?.root().join("hosts.bak");
    let done = crate::hosts::apply(
        ctx.runner.as_ref(),
        path,
        &backup,
        project,
        uid,
        Some(&lines),
    )
    .await?;
    let what = if lines.is_empty() {
        "no Ingress host to map".to_string()
    } else {
        lines.join(", ")
    };
    match done {
        crate::hosts::Applied::Unchanged => {
            ctx.ui.say(format!("{} already has {what}", path.display()))
        }
        crate::hosts::Applied::Written => ctx.ui.say(format!(
            "{}: {what} (devenv's block for {project}; the old file is {}; `devenv down --purge` removes the block)",
            path.display(),
            backup.display()
        )),
    }
    Ok(0)
}

/// The table: one line per URL, the service's name on its first.
pub async fn print(
    ctx: &Context,
    project: &str,
    all: &[ServiceUrls],
    vm: Option<std::net::IpAddr>,
) {
    let ui = &ctx.ui;
    // Names devenv's own block maps to the VM count as resolved, whatever the resolver says:
    // in the tests the block is in another file, and a resolver may cache an older answer.
    let managed: Vec<String> = std::fs::read_to_string(&ctx.hosts_file)
        .ok()
        .and_then(|text| {
            crate::hosts::current(
                &text,
                &ctx.hosts_file,
                project,
                crate::nfs::Owner::current().uid,
            )
            .ok()
            .flatten()
        })
        .unwrap_or_default();
    let in_block = |host: &str, ip: std::net::IpAddr| {
        managed.iter().any(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some(ip.to_string().as_str()) && words.any(|w| w == host)
        })
    };
    let mut unresolved = false;
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
                && !in_block(host, ip)
                && !urls::resolves_to(host, ip).await
            {
                unresolved = true;
                line.push_str(&ui.warn(&format!(
                    "  ({host} does not resolve to the VM: `{ip} {host}` belongs in {})",
                    ctx.hosts_file.display()
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
    if unresolved {
        ui.say(format!(
            "  to map them in a block of {} that devenv manages: devenv urls --write-hosts",
            ctx.hosts_file.display()
        ));
    }
}
