//! The local half of an offloaded service (`connect = "direct"`): where the remote copy can be
//! reached from the laptop, and the selector-less Service plus EndpointSlice that give it the
//! service's usual DNS name and ports inside the local cluster.
//!
//! The remote address is a LoadBalancer ingress IP when the remote Service has one, else a node's
//! InternalIP with the Service's NodePorts. It is checked with a TCP connect before the bridge
//! points at it, so a missing route shows up here rather than as a hanging app.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::{MANAGED_BY, OffloadError, SERVICE, is_devenv, labels};

/// The remote copy's routable address and, for each port of the service, the port to dial there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub ip: Ipv4Addr,
    /// `(port the apps use, port at ip)`, in the order of devenv.toml.
    pub ports: Vec<(u16, u16)>,
    /// The name of each port the apps use, as the remote Service names it. Both copies come
    /// from the same chart, so the bridge takes the same names: when the release adopts the
    /// bridge's Service on the way back to the laptop, its ports keep matching the bridge's
    /// EndpointSlice (the proxy pairs them by name) while the local pods start.
    pub names: BTreeMap<u16, String>,
}

impl Route {
    /// The name of a bridge port: the remote Service's, else `tcp-<port>`.
    fn port_name(&self, port: u16) -> String {
        self.names
            .get(&port)
            .cloned()
            .unwrap_or_else(|| format!("tcp-{port}"))
    }
}

/// The names of `svc`'s ports, by port number (an unnamed port has the empty name).
pub fn port_names(svc: &Service) -> BTreeMap<u16, String> {
    svc.spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|p| {
            Some((
                u16::try_from(p.port).ok()?,
                p.name.clone().unwrap_or_default(),
            ))
        })
        .collect()
}

/// Where `svc` (the remote Service) can be reached for `ports`, from its LoadBalancer status or
/// from `nodes` and its NodePorts. Pure, so each case is tested on objects.
pub fn route(
    svc: &Service,
    nodes: &[Node],
    ports: &[u16],
) -> Result<Route, crate::unreadable::Unreadable> {
    let spec = svc.spec.clone().unwrap_or_default();
    let remote_ports = spec.ports.unwrap_or_default();
    let find = |p: u16| {
        remote_ports
            .iter()
            .find(|sp| sp.port == i32::from(p))
            .ok_or_else(|| format!("it has no port {p}"))
    };
    let lb_ip = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|i| {
            i.iter()
                .find_map(|x| x.ip.as_deref()?.parse::<Ipv4Addr>().ok())
        });
    if let Some(ip) = lb_ip {
        let ports = ports
            .iter()
            .map(|p| find(*p).map(|_| (*p, *p)))
            .collect::<Result<_, _>>()?;
        return Ok(Route {
            ip,
            ports,
            names: port_names(svc),
        });
    }
    let kind = spec.type_.unwrap_or_else(|| "ClusterIP".into());
    if kind != "NodePort" && kind != "LoadBalancer" {
        return Err(format!(
            "it is of type {kind} (neither a LoadBalancer ingress IP nor NodePorts)"
        )
        .into());
    }
    let ports = ports
        .iter()
        .map(|p| {
            let sp = find(*p)?;
            sp.node_port
                .and_then(|n| u16::try_from(n).ok())
                .map(|n| (*p, n))
                .ok_or_else(|| format!("port {p} has no NodePort yet"))
        })
        .collect::<Result<_, _>>()?;
    let ip = nodes
        .iter()
        .flat_map(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.addresses.clone())
                .unwrap_or_default()
        })
        .find_map(|a| {
            (a.type_ == "InternalIP")
                .then(|| a.address.parse::<Ipv4Addr>().ok())
                .flatten()
        })
        .ok_or_else(|| "no node of the remote cluster has an InternalIP address".to_string())?;
    Ok(Route {
        ip,
        ports,
        names: port_names(svc),
    })
}

/// The remote Service `host` in `namespace`.
pub async fn remote_service(
    client: Client,
    context: &str,
    namespace: &str,
    host: &str,
    service: &str,
) -> Result<Service, OffloadError> {
    let services: Api<Service> = Api::namespaced(client, namespace);
    services
        .get_opt(host)
        .await
        .map_err(|source| OffloadError::Api {
            context: context.to_string(),
            source,
        })?
        .ok_or_else(|| OffloadError::NoRemoteService {
            name: host.to_string(),
            namespace: namespace.to_string(),
            context: context.to_string(),
            service: service.to_string(),
        })
}

/// Find the remote Service `host` in `namespace` and where it can be reached.
pub async fn remote_route(
    client: Client,
    context: &str,
    namespace: &str,
    host: &str,
    ports: &[u16],
    service: &str,
) -> Result<Route, OffloadError> {
    let api_err = |source| OffloadError::Api {
        context: context.to_string(),
        source,
    };
    let svc = remote_service(client.clone(), context, namespace, host, service).await?;
    // A NodePort is reached at a node's address (docs/platform.md's role lists nodes).
    let nodes: Api<Node> = Api::all(client);
    let nodes = nodes
        .list(&ListParams::default())
        .await
        .map_err(api_err)?
        .items;
    route(&svc, &nodes, ports).map_err(|why| OffloadError::NoAddress {
        name: host.to_string(),
        why: why.to_string(),
        service: service.to_string(),
    })
}

/// A TCP connect to each port of the route, within `timeout` each.
pub async fn check_reachable(
    route: &Route,
    service: &str,
    timeout: Duration,
) -> Result<(), OffloadError> {
    for (_, port) in &route.ports {
        let addr = SocketAddr::new(IpAddr::V4(route.ip), *port);
        let unreachable = |message: String| OffloadError::Unreachable {
            addr,
            service: service.to_string(),
            message,
        };
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {}s",
                    timeout.as_secs()
                )));
            }
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Ok(Ok(_)) => {}
        }
    }
    Ok(())
}

/// The local objects of a bridge and the names it uses.
pub struct BridgeSpec<'a> {
    pub context: &'a str,
    pub namespace: &'a str,
    /// The service's name in devenv.toml.
    pub service: &'a str,
    /// The DNS name the apps use: the bridge Service's name.
    pub host: &'a str,
}

impl BridgeSpec<'_> {
    fn api_err(&self) -> impl Fn(kube::Error) -> OffloadError + '_ {
        |source| OffloadError::Api {
            context: self.context.to_string(),
            source,
        }
    }

    fn foreign(&self, kind: &'static str) -> OffloadError {
        OffloadError::Foreign {
            kind,
            name: self.host.to_string(),
            namespace: self.namespace.to_string(),
            context: self.context.to_string(),
        }
    }

    /// Whether `svc` is this bridge's Service: devenv's, or being handed to the release (see
    /// [`BridgeSpec::hand_to_helm`]), which it marks with the service's name.
    fn is_ours(&self, svc: &Service) -> bool {
        let labels = svc.metadata.labels.as_ref();
        is_devenv(labels)
            || labels.and_then(|l| l.get(SERVICE)).map(String::as_str) == Some(self.service)
    }

    /// Refuse when a Service or EndpointSlice of the bridge's name exists without devenv's label
    /// (the local release's own Service, or one made by hand). Returns whether the bridge exists.
    pub async fn check_owned(&self, client: Client) -> Result<bool, OffloadError> {
        let services: Api<Service> = Api::namespaced(client.clone(), self.namespace);
        let slices: Api<EndpointSlice> = Api::namespaced(client, self.namespace);
        let svc = services.get_opt(self.host).await.map_err(self.api_err())?;
        if let Some(s) = &svc
            && !self.is_ours(s)
        {
            return Err(self.foreign("Service"));
        }
        let slice = slices.get_opt(self.host).await.map_err(self.api_err())?;
        if let Some(s) = &slice
            && !is_devenv(s.metadata.labels.as_ref())
        {
            return Err(self.foreign("EndpointSlice"));
        }
        Ok(svc.is_some())
    }

    /// Create or update the bridge: the namespace when missing (the release has not created it
    /// yet on a first `up`), the selector-less Service and its EndpointSlice. Returns whether
    /// anything changed (a bridge already pointing at `route` is left as it is).
    pub async fn apply(&self, client: Client, route: &Route) -> Result<bool, OffloadError> {
        self.check_owned(client.clone()).await?;
        // An unchanged bridge is only read: a no-op `up` writes nothing.
        if self.points_at(client.clone(), route).await? {
            return Ok(false);
        }
        let before = self.versions(client.clone()).await?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        if namespaces
            .get_opt(self.namespace)
            .await
            .map_err(self.api_err())?
            .is_none()
        {
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(self.namespace.to_string()),
                    labels: Some(labels(&[])),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            };
            namespaces
                .create(&PostParams::default(), &ns)
                .await
                .map_err(self.api_err())?;
        }
        let params = PatchParams::apply(super::DEVENV).force();
        let labels = labels(&[(SERVICE, self.service)]);
        let services: Api<Service> = Api::namespaced(client.clone(), self.namespace);
        let svc = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": self.host, "namespace": self.namespace, "labels": labels},
            "spec": {"ports": route.ports.iter().map(|(port, target)| json!({
                "name": route.port_name(*port), "port": port, "targetPort": target, "protocol": "TCP",
            })).collect::<Vec<_>>()},
        });
        let svc = services
            .patch(self.host, &params, &Patch::Apply(&svc))
            .await
            .map_err(self.api_err())?;
        self.apply_slice(client.clone(), route, svc.metadata.uid.as_deref())
            .await?;
        // A Service kept through the release (`keep_through_release`) still has the chart's
        // selector and Helm's marks, which other managers own: a merge patch drops them.
        let selector = svc.spec.as_ref().and_then(|s| s.selector.as_ref());
        let annotations = svc.metadata.annotations.unwrap_or_default();
        if selector.is_some_and(|s| !s.is_empty())
            || HELM_MARKS.iter().any(|k| annotations.contains_key(*k))
        {
            let mut unset = json!({"spec": {"selector": null}, "metadata": {"annotations": {}}});
            for k in HELM_MARKS {
                unset["metadata"]["annotations"][k] = Value::Null;
            }
            services
                .patch(self.host, &PatchParams::default(), &Patch::Merge(&unset))
                .await
                .map_err(self.api_err())?;
        }
        Ok(self.versions(client).await? != before)
    }

    /// devenv's EndpointSlice for the Service (uid `owner`): the remote address and ports.
    async fn apply_slice(
        &self,
        client: Client,
        route: &Route,
        owner: Option<&str>,
    ) -> Result<(), OffloadError> {
        let mut slice_labels = labels(&[(SERVICE, self.service)]);
        slice_labels.insert("kubernetes.io/service-name".into(), self.host.to_string());
        let slices: Api<EndpointSlice> = Api::namespaced(client, self.namespace);
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": self.host,
                "namespace": self.namespace,
                "labels": slice_labels,
                // Deleting the Service takes its slice with it, as for the slices Kubernetes makes.
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Service", "name": self.host,
                    "uid": owner.unwrap_or_default(),
                }],
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [route.ip.to_string()], "conditions": {"ready": true}}],
            "ports": route.ports.iter().map(|(port, target)| json!({
                "name": route.port_name(*port), "port": target, "protocol": "TCP",
            })).collect::<Vec<_>>(),
        });
        slices
            .patch(
                self.host,
                &PatchParams::apply(super::DEVENV).force(),
                &Patch::Apply(&slice),
            )
            .await
            .map_err(self.api_err())?;
        Ok(())
    }

    /// A toggle to remote, before the release turns the laptop's copy off: keep its Service
    /// through the release and add the remote address to it now.
    ///
    /// The release would delete the subchart's Service, and the name would have no Service
    /// until the bridge stage made its own. Helm skips deleting an object whose live
    /// annotations say `helm.sh/resource-policy: keep`, so the release's Service gets that
    /// annotation and devenv's [`SERVICE`] label (which makes it the bridge to be), and devenv's
    /// EndpointSlice with the remote address joins the local pods' endpoints: the name keeps
    /// its Service and address, and is answered by the remote copy once the local pods are
    /// gone. The bridge stage then drops the chart's selector and Helm's marks. A Service that
    /// is not the release's is left alone (the bridge stage refuses it). Returns whether
    /// anything changed.
    pub async fn keep_through_release(
        &self,
        client: Client,
        release: &str,
        route: &Route,
    ) -> Result<bool, OffloadError> {
        let services: Api<Service> = Api::namespaced(client.clone(), self.namespace);
        let Some(svc) = services.get_opt(self.host).await.map_err(self.api_err())? else {
            return Ok(false);
        };
        if self.is_ours(&svc) {
            return Ok(false);
        }
        let annotations = svc.metadata.annotations.clone().unwrap_or_default();
        let releases = |k: &str, v: &str| annotations.get(k).is_some_and(|a| a == v);
        if !releases(RELEASE_NAME, release) || !releases(RELEASE_NAMESPACE, self.namespace) {
            return Ok(false);
        }
        let keep = json!({"metadata": {
            "labels": {SERVICE: self.service},
            "annotations": {RESOURCE_POLICY: "keep"},
        }});
        services
            .patch(self.host, &PatchParams::default(), &Patch::Merge(&keep))
            .await
            .map_err(self.api_err())?;
        self.apply_slice(client, route, svc.metadata.uid.as_deref())
            .await?;
        Ok(true)
    }

    /// Whether the bridge exists with exactly `route`'s ports and address.
    async fn points_at(&self, client: Client, route: &Route) -> Result<bool, OffloadError> {
        let services: Api<Service> = Api::namespaced(client.clone(), self.namespace);
        let slices: Api<EndpointSlice> = Api::namespaced(client, self.namespace);
        let (Some(svc), Some(slice)) = (
            services.get_opt(self.host).await.map_err(self.api_err())?,
            slices.get_opt(self.host).await.map_err(self.api_err())?,
        ) else {
            return Ok(false);
        };
        // Still the release's Service, kept through the release: not yet a bridge.
        let plain = is_devenv(svc.metadata.labels.as_ref())
            && svc
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_none_or(|s| s.is_empty());
        let svc_ports: Vec<(i32, String)> = svc
            .spec
            .and_then(|s| s.ports)
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.port, p.name.unwrap_or_default()))
            .collect();
        let want_svc: Vec<(i32, String)> = route
            .ports
            .iter()
            .map(|(port, _)| (i32::from(*port), route.port_name(*port)))
            .collect();
        let slice_ports: Vec<(Option<i32>, String)> = slice
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.port, p.name.unwrap_or_default()))
            .collect();
        let want_slice: Vec<(Option<i32>, String)> = route
            .ports
            .iter()
            .map(|(port, target)| (Some(i32::from(*target)), route.port_name(*port)))
            .collect();
        let addresses: Vec<String> = slice
            .endpoints
            .into_iter()
            .flat_map(|e| e.addresses)
            .collect();
        Ok(plain
            && svc_ports == want_svc
            && slice_ports == want_slice
            && addresses == [route.ip.to_string()])
    }

    /// The resourceVersions of the bridge's Service and EndpointSlice: the API server keeps
    /// them when a write changes nothing.
    async fn versions(
        &self,
        client: Client,
    ) -> Result<(Option<String>, Option<String>), OffloadError> {
        let services: Api<Service> = Api::namespaced(client.clone(), self.namespace);
        let slices: Api<EndpointSlice> = Api::namespaced(client, self.namespace);
        let svc = services.get_opt(self.host).await.map_err(self.api_err())?;
        let slice = slices.get_opt(self.host).await.map_err(self.api_err())?;
        Ok((
            svc.and_then(|s| s.metadata.resource_version),
            slice.and_then(|s| s.metadata.resource_version),
        ))
    }

    /// Hand the bridge's Service to the local release, for a service coming back to the laptop.
    ///
    /// Deleting the bridge before the release re-creates the chart's Service would leave the
    /// name without a Service (and without an address) until then, and without a server until
    /// the local pods are ready. Instead the Service stays: it gets Helm's ownership label and
    /// annotations, so the release adopts it (Helm 3 and 4 both adopt an existing object marked
    /// as the release's) and gives it the chart's selector and ports, while devenv's
    /// EndpointSlice keeps sending traffic to the remote copy until [`BridgeSpec::retire`].
    ///
    /// Helm 4 writes with server-side apply and does not force: a field devenv owns with another
    /// value (the ports' targets) would make the release fail with a conflict. So the fields
    /// are handed over as server-side apply intends: the current values are applied under
    /// Helm's field manager, then devenv applies only its [`SERVICE`] label, which marks the
    /// hand-over until `retire`. Returns whether anything changed.
    pub async fn hand_to_helm(&self, client: Client, release: &str) -> Result<bool, OffloadError> {
        let services: Api<Service> = Api::namespaced(client, self.namespace);
        let Some(svc) = services.get_opt(self.host).await.map_err(self.api_err())? else {
            return Ok(false);
        };
        if !self.is_ours(&svc) {
            // Not a bridge (a toggle that stopped before its bridge left the release's own
            // Service): nothing to hand over.
            return Ok(false);
        }
        let labels = svc.metadata.labels.clone().unwrap_or_default();
        let annotations = svc.metadata.annotations.clone().unwrap_or_default();
        let marks = [(RELEASE_NAME, release), (RELEASE_NAMESPACE, self.namespace)];
        if labels.get(MANAGED_BY).map(String::as_str) == Some(HELM)
            && marks
                .iter()
                .all(|(k, v)| annotations.get(*k).map(String::as_str) == Some(*v))
        {
            return Ok(false);
        }
        let ports: Vec<_> = svc
            .spec
            .and_then(|s| s.ports)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                json!({"name": p.name, "port": p.port, "targetPort": p.target_port,
                    "protocol": p.protocol.unwrap_or_else(|| "TCP".into())})
            })
            .collect();
        let as_helm = json!({
            "labels": {MANAGED_BY: HELM},
            "annotations": BTreeMap::from(marks),
        });
        self.apply_service_as(
            &services,
            HELM_FIELD_MANAGER,
            as_helm,
            json!({"ports": ports}),
        )
        .await?;
        let mine = json!({"labels": {SERVICE: self.service}});
        self.apply_service_as(&services, super::DEVENV, mine, Value::Null)
            .await?;
        Ok(true)
    }

    /// A forced server-side apply of the bridge's Service as `manager`, setting exactly
    /// `metadata` (beside the name) and `spec` (none when null): what that manager owns after.
    async fn apply_service_as(
        &self,
        services: &Api<Service>,
        manager: &str,
        metadata: Value,
        spec: Value,
    ) -> Result<(), OffloadError> {
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata});
        svc["metadata"]["name"] = json!(self.host);
        svc["metadata"]["namespace"] = json!(self.namespace);
        if !spec.is_null() {
            svc["spec"] = spec;
        }
        services
            .patch(
                self.host,
                &PatchParams::apply(manager).force(),
                &Patch::Apply(&svc),
            )
            .await
            .map_err(self.api_err())?;
        Ok(())
    }

    /// Once the laptop's copy is rolled out: delete devenv's EndpointSlice (the remote address)
    /// and let go of the Service, which the release now owns. A Service the release did not
    /// adopt (still devenv's, because the chart has no Service of that name) is deleted. Only
    /// objects carrying devenv's labels are touched; anything else of the name is the release's
    /// or someone else's and stays. Returns what was done, one phrase each.
    pub async fn retire(&self, client: Client) -> Result<Vec<String>, OffloadError> {
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), self.namespace);
        let services: Api<Service> = Api::namespaced(client, self.namespace);
        let mut done = Vec::new();
        let slice = slices.get_opt(self.host).await.map_err(self.api_err())?;
        if slice.is_some_and(|s| is_devenv(s.metadata.labels.as_ref())) {
            slices
                .delete(self.host, &DeleteParams::default())
                .await
                .map_err(self.api_err())?;
            done.push(format!("deleted the bridge's EndpointSlice {}", self.host));
        }
        let svc = services.get_opt(self.host).await.map_err(self.api_err())?;
        match svc.filter(|s| self.is_ours(s)) {
            Some(svc) if is_devenv(svc.metadata.labels.as_ref()) => {
                services
                    .delete(self.host, &DeleteParams::default())
                    .await
                    .map_err(self.api_err())?;
                done.push(format!("deleted the bridge Service {}", self.host));
            }
            Some(_) => {
                // An apply that sets nothing gives up devenv's last field, the hand-over label.
                self.apply_service_as(&services, super::DEVENV, json!({}), Value::Null)
                    .await?;
                done.push(format!("Service {} is the release's", self.host));
            }
            None => {}
        }
        Ok(done)
    }
}

/// Helm's ownership marks: an existing object carrying them is adopted by that release.
const HELM: &str = "Helm";
const RELEASE_NAME: &str = "meta.helm.sh/release-name";
const RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";
/// Helm skips deleting an object (on upgrade and uninstall) whose live annotations say `keep`.
const RESOURCE_POLICY: &str = "helm.sh/resource-policy";
/// What a Service kept through the release carries that a bridge does not.
const HELM_MARKS: [&str; 3] = [RELEASE_NAME, RELEASE_NAMESPACE, RESOURCE_POLICY];
/// The field manager Helm 4's server-side apply writes as (`kube.ManagedFieldsManager`).
const HELM_FIELD_MANAGER: &str = "helm";

/// The services (names in devenv.toml) that have a bridge in the local namespace, including one
/// being handed back to the release.
pub async fn bridged_services(client: Client, namespace: &str) -> Result<Vec<String>, kube::Error> {
    let services: Api<Service> = Api::namespaced(client, namespace);
    // Any Service with the label: a bridge being handed to the release is still one.
    let list = services
        .list(&ListParams::default().labels(SERVICE))
        .await?;
    Ok(list
        .items
        .iter()
        .filter_map(|s| s.metadata.labels.as_ref()?.get(SERVICE).cloned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(yaml: &str) -> Service {
        serde_norway::from_str(yaml).unwrap()
    }

    fn node(ip: &str) -> Node {
        serde_norway::from_str(&format!(
            "metadata: {{name: n1}}\nstatus:\n  addresses:\n  - {{type: Hostname, address: n1}}\n  - {{type: InternalIP, address: \"{ip}\"}}\n"
        ))
        .unwrap()
    }

    #[test]
    fn a_load_balancer_ingress_ip_is_used_with_the_service_ports() {
        let svc = service(
            "metadata: {name: postgres}\nspec:\n  type: LoadBalancer\n  ports: [{name: tcp-postgresql, port: 5432, nodePort: 31000}]\nstatus:\n  loadBalancer:\n    ingress: [{ip: 10.1.2.3}]\n",
        );
        assert_eq!(
            route(&svc, &[node("10.0.0.5")], &[5432]).unwrap(),
            Route {
                ip: "10.1.2.3".parse().unwrap(),
                ports: vec![(5432, 5432)],
                names: [(5432, "tcp-postgresql".to_string())].into(),
            }
        );
    }

    #[test]
    fn without_an_ingress_a_node_address_and_the_node_ports_are_used() {
        let svc = service(
            "metadata: {name: postgres}\nspec:\n  type: NodePort\n  ports: [{port: 5432, nodePort: 31000}]\n",
        );
        assert_eq!(
            route(&svc, &[node("10.0.0.5")], &[5432]).unwrap(),
            Route {
                ip: "10.0.0.5".parse().unwrap(),
                ports: vec![(5432, 31000)],
                names: [(5432, String::new())].into(),
            }
        );
    }

    #[test]
    fn a_cluster_ip_service_has_no_routable_address() {
        let svc = service("metadata: {name: postgres}\nspec:\n  ports: [{port: 5432}]\n");
        let err = route(&svc, &[node("10.0.0.5")], &[5432]).unwrap_err();
        assert!(err.to_string().contains("ClusterIP"), "{err}");
    }

    #[test]
    fn a_port_the_remote_service_lacks_is_named() {
        let svc = service(
            "metadata: {name: postgres}\nspec:\n  type: NodePort\n  ports: [{port: 5432, nodePort: 31000}]\n",
        );
        let err = route(&svc, &[node("10.0.0.5")], &[5433]).unwrap_err();
        assert!(err.to_string().contains("no port 5433"), "{err}");
    }

    #[test]
    fn node_ports_without_a_node_address_are_refused() {
        let svc = service(
            "metadata: {name: postgres}\nspec:\n  type: NodePort\n  ports: [{port: 5432, nodePort: 31000}]\n",
        );
        assert!(
            route(&svc, &[], &[5432])
                .unwrap_err()
                .to_string()
                .contains("InternalIP")
        );
    }
}
