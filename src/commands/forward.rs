//! `devenv forward`: a port of a service on 127.0.0.1, in the foreground, healing itself when
//! the pod behind it is replaced (see [`crate::forward`] for how and how fast).

use std::net::{Ipv4Addr, SocketAddr};

use serde_json::json;

use crate::context::Context;
use crate::error::Error;
use crate::forward::Forward;
use crate::workloads::WorkloadError;

/// Forward a port of a service to this laptop (127.0.0.1 only), until Ctrl-C
///
/// PORT is a port of the service's Kubernetes Service; LOCAL the port to listen on (default:
/// the same; empty, as in `:5432`, for a free one, printed). Each connection goes to a ready
/// pod chosen when it arrives, so a restarted or replaced pod is followed; a broken forward is
/// retried every few seconds and connections wait for it meanwhile. Works for offloaded
/// services too (through the shared cluster's API server).
///
///   devenv forward api 8080
///   devenv forward api 9000:8080
///   devenv forward postgres :5432
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The service (a [services.<name>] of devenv.toml).
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// `[LOCAL:]PORT`: the Service port, and the local port to listen on.
    #[arg(value_name = "[LOCAL:]PORT", value_parser = parse_ports)]
    pub ports: (u16, u16),
}

/// `8080` → (8080, 8080); `9000:8080` → (9000, 8080); `:8080` → (0, 8080), 0 meaning any.
fn parse_ports(text: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("\"{p}\" is not a port (1-65535)"))
    };
    match text.split_once(':') {
        None => port(text).map(|p| (p, p)),
        Some(("", remote)) => Ok((0, port(remote)?)),
        Some((local, remote)) => Ok((port(local)?, port(remote)?)),
    }
}

/// The forward's events, on stderr.
fn say(line: &str) {
    crate::errln!("devenv forward: {line}");
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let loaded = ctx.load_config()?;
    let located = super::locate(ctx, &loaded, std::slice::from_ref(&args.service))?;
    let at = &located[0];
    let (local, port) = args.ports;
    let client = crate::cluster::client(&at.context).await?;
    let (svc, _) = crate::cluster::service_pods(client.clone(), &at.namespace, &at.service)
        .await
        .map_err(|e| WorkloadError::service(at, e))?;
    let ports: Vec<i32> = svc
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .iter()
        .map(|p| p.port)
        .collect();
    if !ports.contains(&i32::from(port)) {
        let list: Vec<String> = ports.iter().map(i32::to_string).collect();
        return Err(Error::Usage {
            message: format!("Service {} has no port {port}", at.service),
            help: format!("its ports are: {}", list.join(", ")),
        });
    }
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, local))
        .await
        .map_err(|e| Error::Usage {
            message: format!("cannot listen on 127.0.0.1:{local}: {e}"),
            help: format!(
                "pick another local port: `devenv forward {} {}:{port}`, or `:{port}` for any free one",
                at.name,
                local.saturating_add(1)
            ),
        })?;
    let listen = match listener
        .local_addr()
        .map_err(Error::io("read", "the listening address"))?
    {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => unreachable!("bound to an IPv4 address"),
    };
    let forward = Forward {
        service: at.name.clone(),
        host: at.service.clone(),
        port,
    };
    let mut interrupt =
        crate::process::Interrupt::listen().map_err(Error::io("listen for", "Ctrl-C"))?;
    let _live = crate::forward::start(client, &at.namespace, forward, listen, listener, say);
    if ctx.ui.json {
        crate::outln!(
            "{}",
            json!({"listen": listen.to_string(), "service": at.name, "port": port,
                   "where": at.place, "context": at.context, "namespace": at.namespace})
        );
    } else {
        crate::outln!(
            "Forwarding {listen} → {}:{port} (Service {} in {} on {}). Ctrl-C stops.",
            at.name,
            at.service,
            at.namespace,
            at.context
        );
    }
    let _ = interrupt.recv().await;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_the_remote_one_and_optionally_a_local_one() {
        assert_eq!(parse_ports("8080"), Ok((8080, 8080)));
        assert_eq!(parse_ports("9000:8080"), Ok((9000, 8080)));
        assert_eq!(parse_ports(":5432"), Ok((0, 5432)));
        assert!(parse_ports("0").unwrap_err().contains("not a port"));
        assert!(parse_ports("http").is_err());
        assert!(parse_ports("1:99999").is_err());
    }
}
