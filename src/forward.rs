//! A port-forward to a Service that heals itself: what the offload tunnel runs for each
//! offloaded port (in its supervisor) and `devenv forward` runs in the foreground.
//!
//! Each accepted connection gets its own port-forward (kube's websocket portforward, as
//! `kubectl port-forward` does) to a ready pod behind the Service, chosen when the connection
//! arrives: a pod that was deleted or restarted is simply not chosen again, so the next
//! connection goes to its successor as soon as that is ready. A prober checks the forward every
//! 10 s, and at once when a connection saw it break; a broken forward is retried with backoff
//! (0.2 s doubling to 5 s), and connections arriving meanwhile wait up to 30 s for it instead of
//! failing at once. After a laptop sleep or a VM restart the first connection finds the
//! forward broken, wakes the prober, and waits: it recovers within one backoff step of the
//! cluster answering again (at most about 5 s).

use std::net::SocketAddrV4;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// How often a healthy forward is checked.
const PROBE_EVERY: Duration = Duration::from_secs(10);
/// How long a probe waits for the API server to report a failure on the forward's error channel.
const PROBE_GRACE: Duration = Duration::from_millis(500);
/// The first and the longest wait between attempts to re-establish a broken forward.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a new connection waits for a broken forward to come back before it is closed.
const CONNECT_WAIT: Duration = Duration::from_secs(30);

/// One port of one offloaded service to forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The service's name in devenv.toml.
    pub service: String,
    /// The remote Service's name (the service's `host`).
    pub host: String,
    /// The Service port the apps use.
    pub port: u16,
}

/// One forward as it was last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardStatus {
    #[serde(flatten)]
    pub forward: Forward,
    /// The address and port listened on (for the tunnel, where the local cluster's bridge
    /// points).
    pub listen: SocketAddrV4,
    /// The pod connections currently go to.
    pub pod: Option<String>,
    /// Whether the last check of the forward succeeded.
    pub healthy: bool,
    /// Whether it was checked at all yet.
    pub checked: bool,
    /// Why the last check failed.
    pub error: Option<String>,
    /// How often the forward was re-established after breaking.
    pub reconnects: u64,
    /// Connections accepted so far.
    pub connections: u64,
    /// Bytes from the remote service to local clients.
    pub bytes_in: u64,
    /// Bytes from local clients to the remote service.
    pub bytes_out: u64,
}

/// Serve `forward` (a port of the Service `forward.host` in `namespace`) on `listener`, which
/// listens on `listen`: a prober and an accept loop, in tasks of their own, for as long as the
/// runtime runs. Events (the pod it goes to, a break, a recovery) are said through `log`.
pub fn start(
    client: Client,
    namespace: &str,
    forward: Forward,
    listen: SocketAddrV4,
    listener: TcpListener,
    log: fn(&str),
) -> Arc<Live> {
    let (healthy, _) = watch::channel(false);
    let live = Arc::new(Live {
        forward,
        log,
        listen,
        state: Mutex::new(Health::default()),
        healthy,
        suspect: Notify::new(),
        connections: AtomicU64::new(0),
        bytes_in: Arc::new(AtomicU64::new(0)),
        bytes_out: Arc::new(AtomicU64::new(0)),
    });
    let ctx = Ctx {
        client,
        namespace: namespace.to_string(),
        live: Arc::clone(&live),
    };
    tokio::spawn(probe_loop(ctx.clone()));
    tokio::spawn(accept_loop(ctx, listener));
    live
}

/// Live counters and state of one forward.
pub struct Live {
    forward: Forward,
    /// Where its events are said.
    log: fn(&str),
    listen: SocketAddrV4,
    state: Mutex<Health>,
    healthy: watch::Sender<bool>,
    /// Woken when a connection saw the forward break, so it is checked at once.
    suspect: Notify,
    connections: AtomicU64,
    bytes_in: Arc<AtomicU64>,
    bytes_out: Arc<AtomicU64>,
}

#[derive(Default)]
struct Health {
    pod: Option<String>,
    checked: bool,
    error: Option<String>,
    reconnects: u64,
}

impl Live {
    /// Record `pod` as where connections go, saying so when it changed or the forward came
    /// back (`again`).
    fn note_pod(&self, h: &mut Health, pod: &str, again: bool) {
        if again || h.pod.as_deref() != Some(pod) {
            (self.log)(&format!(
                "{} port {}: forwarding to pod {pod}{}",
                self.forward.service,
                self.forward.port,
                if again { " again" } else { "" }
            ));
        }
        h.pod = Some(pod.to_string());
    }

    /// How the forward stands now.
    pub fn status(&self) -> ForwardStatus {
        let h = self.state.lock().unwrap_or_else(|e| e.into_inner());
        ForwardStatus {
            forward: self.forward.clone(),
            listen: self.listen,
            pod: h.pod.clone(),
            healthy: *self.healthy.borrow(),
            checked: h.checked,
            error: h.error.clone(),
            reconnects: h.reconnects,
            connections: self.connections.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }
}

#[derive(Clone)]
struct Ctx {
    client: Client,
    namespace: String,
    live: Arc<Live>,
}

/// Check the forward now and then, and at once when a connection saw it break; a broken forward
/// is retried with backoff until it works again.
async fn probe_loop(ctx: Ctx) {
    let live = &ctx.live;
    let mut backoff = BACKOFF_FIRST;
    let mut broken = false;
    loop {
        match probe(&ctx).await {
            Ok(pod) => {
                {
                    let mut h = live.state.lock().unwrap_or_else(|e| e.into_inner());
                    if broken {
                        h.reconnects += 1;
                    }
                    live.note_pod(&mut h, &pod, broken);
                    h.error = None;
                    h.checked = true;
                }
                live.healthy.send_replace(true);
                broken = false;
                backoff = BACKOFF_FIRST;
                tokio::select! {
                    _ = tokio::time::sleep(PROBE_EVERY) => {}
                    _ = live.suspect.notified() => {}
                }
            }
            Err(error) => {
                live.healthy.send_replace(false);
                {
                    let mut h = live.state.lock().unwrap_or_else(|e| e.into_inner());
                    if h.error.as_deref() != Some(error.as_str()) {
                        (live.log)(&format!(
                            "{} port {}: {error}; retrying",
                            live.forward.service, live.forward.port
                        ));
                    }
                    h.error = Some(error);
                    h.checked = true;
                }
                broken = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// A ready pod behind the remote Service and the pod port its `port` goes to.
async fn resolve(ctx: &Ctx) -> Result<(String, u16), String> {
    let f = &ctx.live.forward;
    let (svc, pods) = crate::cluster::service_pods(ctx.client.clone(), &ctx.namespace, &f.host)
        .await
        .map_err(|e| e.to_string())?;
    let target = svc
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.port == i32::from(f.port))
        .ok_or_else(|| format!("Service {} has no port {}", f.host, f.port))?
        .target_port;
    let pod = pods
        .into_iter()
        .find(crate::cluster::conditions::pod_ready)
        .ok_or_else(|| format!("no ready pod behind Service {}", f.host))?;
    let port = target_port(&pod, target.as_ref(), f.port)?;
    Ok((pod.metadata.name.unwrap_or_default(), port))
}

/// The pod port a Service port leads to: its targetPort, by number or by the container port's
/// name; the Service port itself when targetPort is not set.
fn target_port(
    pod: &Pod,
    target: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    port: u16,
) -> Result<u16, String> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match target {
        None => Ok(port),
        Some(IntOrString::Int(n)) => {
            u16::try_from(*n).map_err(|_| format!("targetPort {n} is out of range"))
        }
        Some(IntOrString::String(name)) => pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| {
                format!(
                    "pod {} has no container port named {name}",
                    pod.metadata.name.as_deref().unwrap_or("?")
                )
            }),
    }
}

/// Open a forward to the current pod and see that the API server reports no failure on it.
async fn probe(ctx: &Ctx) -> Result<String, String> {
    let (pod, port, mut pf) = open(ctx).await?;
    let error = pf.take_error(port);
    let stream = pf.take_stream(port);
    let result = match error {
        Some(error) => match tokio::time::timeout(PROBE_GRACE, error).await {
            Ok(Some(message)) => Err(message),
            _ => Ok(pod),
        },
        None => Ok(pod),
    };
    drop(stream);
    pf.abort();
    result
}

async fn accept_loop(ctx: Ctx, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                ctx.live.connections.fetch_add(1, Ordering::Relaxed);
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(&ctx, socket).await {
                        (ctx.live.log)(&format!(
                            "{} port {}: connection from {peer}: {e}",
                            ctx.live.forward.service, ctx.live.forward.port
                        ));
                    }
                });
            }
            Err(e) => {
                (ctx.live.log)(&format!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Carry one local connection to the remote pod and back. Opening it is tried until it works
/// or [`CONNECT_WAIT`] has passed: a failure marks the forward broken and wakes the prober, and
/// the connection waits for the prober to see the cluster answer again, so a connection made
/// just as the VM restarts or the laptop wakes is served late rather than reset.
async fn serve(ctx: &Ctx, socket: TcpStream) -> Result<(), String> {
    let live = &ctx.live;
    let deadline = tokio::time::Instant::now() + CONNECT_WAIT;
    let mut healthy = live.healthy.subscribe();
    let (pod, port, mut pf) = loop {
        tokio::time::timeout_at(deadline, healthy.wait_for(|h| *h))
            .await
            .map_err(|_| {
                format!(
                    "closed: the forward did not come back within {}s",
                    CONNECT_WAIT.as_secs()
                )
            })?
            .map_err(|e| e.to_string())?;
        match open(ctx).await {
            Ok(opened) => break opened,
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => {
                live.healthy.send_replace(false);
                live.suspect.notify_one();
            }
        }
    };
    // A replaced pod is seen here first, before the next probe: say so now.
    live.note_pod(
        &mut live.state.lock().unwrap_or_else(|e| e.into_inner()),
        &pod,
        false,
    );
    let upstream = pf.take_stream(port).ok_or("no stream for the port")?;
    let error = pf.take_error(port);
    let _ = socket.set_nodelay(true);
    let mut local = Counted {
        inner: socket,
        count: Arc::clone(&live.bytes_out),
    };
    let mut remote = Counted {
        inner: upstream,
        count: Arc::clone(&live.bytes_in),
    };
    let copy = tokio::io::copy_bidirectional(&mut local, &mut remote);
    let outcome = match error {
        Some(error) => {
            tokio::select! {
                r = copy => r.map(|_| ()).map_err(|e| e.to_string()),
                Some(message) = error => Err(message),
            }
        }
        None => copy.await.map(|_| ()).map_err(|e| e.to_string()),
    };
    pf.abort();
    // The remote side ended the connection: a restarting pod does that too, so look now.
    live.suspect.notify_one();
    outcome
}

/// A port-forward to a ready pod behind the Service, as it is now.
async fn open(ctx: &Ctx) -> Result<(String, u16, kube::api::Portforwarder), String> {
    let (pod, port) = resolve(ctx).await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let pf = tokio::time::timeout(Duration::from_secs(15), pods.portforward(&pod, &[port]))
        .await
        .map_err(|_| format!("no answer from the API server for pod {pod}"))?
        .map_err(|e| {
            format!(
                "cannot port-forward to pod {pod}: the Kubernetes API {}",
                crate::cluster::describe(&e)
            )
        })?;
    Ok((pod, port, pf))
}

/// A stream that counts the bytes read from it.
struct Counted<S> {
    inner: S,
    count: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn a_named_target_port_is_looked_up_in_the_pod_containers() {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let p = pod(
            "metadata: {name: pg-0}\nspec:\n  containers:\n  - name: pg\n    ports: [{name: postgresql, containerPort: 5433}]\n",
        );
        assert_eq!(
            target_port(&p, Some(&IntOrString::String("postgresql".into())), 5432),
            Ok(5433)
        );
        assert_eq!(
            target_port(&p, Some(&IntOrString::Int(6000)), 5432),
            Ok(6000)
        );
        assert_eq!(target_port(&p, None, 5432), Ok(5432));
        let err = target_port(&p, Some(&IntOrString::String("http".into())), 80).unwrap_err();
        assert!(err.contains("no container port named http"), "{err}");
    }
}
