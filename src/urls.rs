//! How to reach each service from the laptop: the hosts of the Ingresses that route to its
//! Service (served by the VM's ingress controller, so the host must resolve to the VM's
//! address), and its NodePorts on the VM's address. A service with neither, or one offloaded to
//! the shared cluster, is reached with `devenv forward`, which is said instead.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use serde::Serialize;

use crate::config::Placement;
use crate::workloads::Located;

/// One way in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Url {
    pub url: String,
    /// `ingress` or `nodeport`.
    pub via: &'static str,
    /// The Ingress host, when the URL names one: it must resolve to the VM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The Service port it leads to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// A service and its ways in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceUrls {
    pub service: String,
    #[serde(rename = "where")]
    pub place: Placement,
    pub urls: Vec<Url>,
    /// The `devenv forward` command that reaches it from 127.0.0.1, when it has a Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward: Option<String>,
}

/// The URLs of the Service `name` (`svc`, when it exists) given the namespace's Ingresses and
/// the VM's address: Ingress rules whose backend is the Service (https when the Ingress's TLS
/// lists the host; a rule without a host is the VM's address), then NodePorts.
pub fn urls(
    name: &str,
    svc: Option<&Service>,
    ingresses: &[Ingress],
    vm: Option<IpAddr>,
) -> Vec<Url> {
    let mut out = Vec::new();
    for ing in ingresses {
        let Some(spec) = &ing.spec else { continue };
        let tls_hosts: Vec<&str> = spec
            .tls
            .iter()
            .flatten()
            .flat_map(|t| t.hosts.iter().flatten())
            .map(String::as_str)
            .collect();
        for rule in spec.rules.iter().flatten() {
            let host = rule.host.clone();
            let authority = match (&host, vm) {
                (Some(h), _) => h.clone(),
                (None, Some(ip)) => ip.to_string(),
                (None, None) => continue,
            };
            let scheme = if host.as_deref().is_some_and(|h| tls_hosts.contains(&h)) {
                "https"
            } else {
                "http"
            };
            for path in rule.http.iter().flat_map(|h| &h.paths) {
                let Some(backend) = &path.backend.service else {
                    continue;
                };
                if backend.name != name {
                    continue;
                }
                let p = path.path.as_deref().unwrap_or("/");
                out.push(Url {
                    url: format!("{scheme}://{authority}{p}"),
                    via: "ingress",
                    host: host.clone(),
                    port: backend.port.as_ref().and_then(|p| p.number),
                });
            }
        }
    }
    if let (Some(svc), Some(ip)) = (svc, vm) {
        let spec = svc.spec.as_ref();
        let kind = spec.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
        if kind == "NodePort" || kind == "LoadBalancer" {
            for p in spec.and_then(|s| s.ports.as_ref()).into_iter().flatten() {
                if let Some(node_port) = p.node_port {
                    out.push(Url {
                        url: format!("http://{ip}:{node_port}"),
                        via: "nodeport",
                        host: None,
                        port: Some(p.port),
                    });
                }
            }
        }
    }
    out
}

/// The `devenv forward` line for `at` when its Service has ports (the first one).
pub fn forward_hint(at: &Located, svc: Option<&Service>) -> Option<String> {
    let port = svc?.spec.as_ref()?.ports.as_ref()?.first()?.port;
    Some(format!("devenv forward {} :{port}", at.name))
}

/// Whether `host` resolves to `ip` here (the hosts file or DNS), within a second.
pub async fn resolves_to(host: &str, ip: IpAddr) -> bool {
    let lookup = tokio::net::lookup_host((host, 80));
    match tokio::time::timeout(std::time::Duration::from_secs(1), lookup).await {
        Ok(Ok(mut addrs)) => addrs.any(|a| a.ip() == ip),
        _ => false,
    }
}

/// The ways in of every service of `located`: local ones from the local cluster's Services and
/// Ingresses (`client`, or none when it cannot be reached), offloaded ones as a forward.
pub async fn gather(
    located: &[Located],
    client: Option<kube::Client>,
    namespace: &str,
    vm: Option<IpAddr>,
) -> Vec<ServiceUrls> {
    use kube::Api;
    let ingresses: Vec<Ingress> = match &client {
        Some(c) => Api::<Ingress>::namespaced(c.clone(), namespace)
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for at in located {
        if at.place == Placement::Remote {
            out.push(ServiceUrls {
                service: at.name.clone(),
                place: at.place,
                urls: Vec::new(),
                forward: at
                    .ports
                    .first()
                    .map(|p| format!("devenv forward {} :{p}", at.name)),
            });
            continue;
        }
        let svc = match &client {
            Some(c) => Api::<Service>::namespaced(c.clone(), namespace)
                .get_opt(&at.service)
                .await
                .ok()
                .flatten(),
            None => None,
        };
        out.push(ServiceUrls {
            service: at.name.clone(),
            place: at.place,
            urls: urls(&at.service, svc.as_ref(), &ingresses, vm),
            forward: forward_hint(at, svc.as_ref()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
        serde_norway::from_str(text).unwrap()
    }

    const VM: &str = "192.168.39.2";

    #[test]
    fn an_ingress_rule_gives_its_host_and_path_https_when_its_tls_lists_the_host() {
        let ing: Ingress = yaml(
            "metadata: {name: shop}\nspec:\n  tls: [{hosts: [secure.shop.test]}]\n  rules:\n  - host: shop.test\n    http: {paths: [{path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}, {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}\n  - host: secure.shop.test\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}]}\n  - http: {paths: [{path: /health, pathType: Exact, backend: {service: {name: api, port: {number: 80}}}}]}\n",
        );
        let found = urls("api", None, &[ing], Some(VM.parse().unwrap()));
        let list: Vec<&str> = found.iter().map(|u| u.url.as_str()).collect();
        assert_eq!(
            list,
            [
                "http://shop.test/api",
                "https://secure.shop.test/",
                "http://192.168.39.2/health"
            ]
        );
        assert_eq!(found[0].host.as_deref(), Some("shop.test"));
        assert_eq!(found[0].port, Some(80));
    }

    #[test]
    fn node_ports_are_on_the_vms_address_and_cluster_ips_give_nothing() {
        let svc: Service = yaml(
            "metadata: {name: api}\nspec:\n  type: NodePort\n  ports: [{name: http, port: 80, nodePort: 30080}]\n",
        );
        let found = urls("api", Some(&svc), &[], Some(VM.parse().unwrap()));
        assert_eq!(found[0].url, "http://192.168.39.2:30080");
        assert_eq!(found[0].via, "nodeport");
        let plain: Service = yaml("metadata: {name: api}\nspec:\n  ports: [{port: 80}]\n");
        assert!(urls("api", Some(&plain), &[], Some(VM.parse().unwrap())).is_empty());
        // Without the VM's address there is no URL to give.
        assert!(urls("api", Some(&svc), &[], None).is_empty());
    }
}
