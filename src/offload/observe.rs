//! Where each offloadable service actually runs and whether it answers, read from the local
//! cluster (and, for tunnelled services, the tunnel supervisor's status) for `devenv offload`'s
//! listing. Only reads; every question is bounded by [`super::API_TIMEOUT`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{Api, Client};
use serde::Serialize;

use super::tunnel::Status;
use crate::config::{Connect, Placement};

/// What was seen of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seen {
    /// Where it runs now: remote when the local cluster has devenv's bridge for it, local when
    /// it has none; `None` when the local cluster could not be asked (VM not running).
    pub runs: Option<Placement>,
    /// Whether the name answers: ready pods behind the local Service, a working tunnel, or a
    /// TCP connect to the direct address. `None` when unknown.
    pub reachable: Option<bool>,
    /// Why not, or where to.
    pub detail: String,
}

/// How long a TCP connect to a direct address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// One service as [`observe`] needs it.
pub struct Target<'a> {
    pub service: &'a str,
    pub host: &'a str,
    pub ports: Vec<u16>,
}

/// What the local cluster (`local`: `None` when the VM is not running) says of each target.
pub async fn observe(
    local: Option<Client>,
    namespace: &str,
    targets: &[Target<'_>],
    connect: Connect,
    tunnel: Option<&Status>,
) -> Vec<Seen> {
    let Some(client) = local else {
        return targets
            .iter()
            .map(|_| Seen {
                runs: None,
                reachable: None,
                detail: "the VM is not running".into(),
            })
            .collect();
    };
    let bridged = tokio::time::timeout(
        super::API_TIMEOUT,
        super::bridge::bridged_services(client.clone(), namespace),
    )
    .await;
    let bridged = match bridged {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return unknown(
                targets,
                &format!(
                    "cannot ask the local cluster: the Kubernetes API {}",
                    crate::cluster::describe(&e)
                ),
            );
        }
        Err(_) => return unknown(targets, "the local cluster does not answer"),
    };
    let mut out = Vec::new();
    for t in targets {
        let seen = if bridged.iter().any(|b| b == t.service) {
            let (reachable, detail) = match connect {
                Connect::Tunnel => tunnel_health(t, tunnel),
                Connect::Direct => direct_health(client.clone(), namespace, t).await,
            };
            Seen {
                runs: Some(Placement::Remote),
                reachable: Some(reachable),
                detail,
            }
        } else {
            let (reachable, detail) = local_health(client.clone(), namespace, t).await;
            Seen {
                runs: Some(Placement::Local),
                reachable: Some(reachable),
                detail,
            }
        };
        out.push(seen);
    }
    out
}

fn unknown(targets: &[Target<'_>], why: &str) -> Vec<Seen> {
    targets
        .iter()
        .map(|_| Seen {
            runs: None,
            reachable: None,
            detail: why.to_string(),
        })
        .collect()
}

/// Every port of the service forwarded by a running supervisor whose last check passed.
pub fn tunnel_health(t: &Target<'_>, status: Option<&Status>) -> (bool, String) {
    let Some(status) = status else {
        return (false, "no tunnel supervisor runs: `devenv up`".into());
    };
    for port in &t.ports {
        match status.forward(t.service, *port) {
            None => return (false, format!("the tunnel does not forward port {port}")),
            Some(f) if !f.healthy => {
                return (
                    false,
                    format!(
                        "tunnel broken: {}",
                        f.error.as_deref().unwrap_or("not checked yet")
                    ),
                );
            }
            Some(_) => {}
        }
    }
    (true, format!("through the tunnel (pid {})", status.pid))
}

async fn local_health(client: Client, namespace: &str, t: &Target<'_>) -> (bool, String) {
    let ask = crate::cluster::service_pods(client, namespace, t.host);
    match tokio::time::timeout(super::API_TIMEOUT, ask).await {
        Err(_) => (false, "the local cluster does not answer".into()),
        Ok(Err(e)) => (false, e.to_string()),
        Ok(Ok((_, pods))) => {
            let ready = pods
                .iter()
                .filter(|p| crate::cluster::conditions::pod_ready(p))
                .count();
            if ready == 0 {
                (false, format!("no ready pod behind Service {}", t.host))
            } else {
                (true, format!("{ready} ready pod(s)"))
            }
        }
    }
}

/// A TCP connect to each address and port of the bridge's EndpointSlice.
async fn direct_health(client: Client, namespace: &str, t: &Target<'_>) -> (bool, String) {
    let slices: Api<EndpointSlice> = Api::namespaced(client, namespace);
    let slice = match tokio::time::timeout(super::API_TIMEOUT, slices.get_opt(t.host)).await {
        Err(_) => return (false, "the local cluster does not answer".into()),
        Ok(Err(e)) => return (false, e.to_string()),
        Ok(Ok(None)) => return (false, format!("EndpointSlice {} is missing", t.host)),
        Ok(Ok(Some(s))) => s,
    };
    let ips: Vec<IpAddr> = slice
        .endpoints
        .iter()
        .flat_map(|e| &e.addresses)
        .filter_map(|a| a.parse().ok())
        .collect();
    let ports: Vec<u16> = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.port.and_then(|n| u16::try_from(n).ok()))
        .collect();
    let Some(ip) = ips.first() else {
        return (false, "the bridge has no address".into());
    };
    for port in &ports {
        let addr = SocketAddr::new(*ip, *port);
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return (false, format!("{addr}: {e}")),
            Err(_) => return (false, format!("{addr}: no answer within 3s")),
        }
    }
    (true, format!("direct to {ip}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::tunnel::example_status as status;

    #[test]
    fn a_tunnelled_service_answers_when_every_port_is_forwarded_and_healthy() {
        let t = Target {
            service: "postgres",
            host: "postgres",
            ports: vec![5432],
        };
        assert!(tunnel_health(&t, Some(&status(true))).0);
        let (ok, why) = tunnel_health(&t, Some(&status(false)));
        assert!(!ok && why.contains("no ready pod"), "{why}");
        let (ok, why) = tunnel_health(&t, None);
        assert!(!ok && why.contains("devenv up"), "{why}");
        let two = Target {
            ports: vec![5432, 9187],
            ..t
        };
        let (ok, why) = tunnel_health(&two, Some(&status(true)));
        assert!(!ok && why.contains("port 9187"), "{why}");
    }
}
