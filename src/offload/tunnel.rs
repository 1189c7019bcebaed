//! `connect = "tunnel"`: offloaded services reached through a port-forward over the remote
//! cluster's API server, so they work from any network the laptop is on (no route to the
//! cluster's nodes needed, as `direct` does).
//!
//! One supervisor process per project (`devenv tunnel-supervisor`, started detached by `up`)
//! listens on the host address the VM sees — never 0.0.0.0, so nothing else on the laptop's
//! networks can reach the team's database — one port per service port. Each accepted connection
//! gets its own port-forward (kube's websocket portforward, as `kubectl port-forward` does) to a
//! ready pod behind the remote Service. A prober checks each forward; when a pod restarts or a
//! stream breaks, the forward is marked down and re-established with backoff, and connections
//! arriving meanwhile wait for it instead of failing at once.
//!
//! The supervisor's files live in the project's state directory: `tunnel.json` (what to forward,
//! written by `up`), `tunnel.pid` (its pid, held under a file lock so there is one per project
//! and a stale file is told apart from a live process), `tunnel-status.json` (per forward: the
//! pod, health, reconnects, bytes moved — read by `status`, `doctor` and `up`) and `tunnel.log`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
#[cfg(test)]
use std::net::SocketAddrV4;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::forward;
pub use crate::forward::{Forward, ForwardStatus};
use crate::process::daemon::{self, Stop};
use crate::state::write_atomic;

/// How long `up` waits for a new supervisor to listen and check each forward once.
const START_WAIT: Duration = Duration::from_secs(20);

/// What the supervisor forwards: written by `up`, read by the supervisor at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// kubeconfig context of the remote cluster.
    pub context: String,
    /// The user's namespace there.
    pub namespace: String,
    /// The host address the VM sees; the only address listened on.
    pub bind: Ipv4Addr,
    pub forwards: Vec<Forward>,
}

/// The supervisor's report, rewritten whenever something in it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub spec: Spec,
    /// Unix seconds.
    pub started: u64,
    pub forwards: Vec<ForwardStatus>,
}

impl Status {
    /// The status of `service`'s forward of `port`.
    pub fn forward(&self, service: &str, port: u16) -> Option<&ForwardStatus> {
        self.forwards
            .iter()
            .find(|f| f.forward.service == service && f.forward.port == port)
    }
}

/// The supervisor's files in a project's state directory.
#[derive(Debug, Clone)]
pub struct Files {
    dir: PathBuf,
}

impl Files {
    pub fn new(project_dir: &Path) -> Files {
        Files {
            dir: project_dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn spec(&self) -> PathBuf {
        self.dir.join("tunnel.json")
    }

    pub fn status(&self) -> PathBuf {
        self.dir.join("tunnel-status.json")
    }

    pub fn pid(&self) -> PathBuf {
        self.dir.join("tunnel.pid")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("tunnel.log")
    }

    /// The supervisor's pid when one runs: its pid file is locked.
    pub fn running(&self) -> Option<u32> {
        let mut file = File::open(self.pid()).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(std::fs::TryLockError::WouldBlock) => crate::fsutil::read_pid(&mut file),
            Err(std::fs::TryLockError::Error(_)) => None,
        }
    }

    /// The last status the supervisor wrote, if any.
    pub fn read_status(&self) -> Option<Status> {
        let bytes = std::fs::read(self.status()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The running supervisor's status: `None` when none runs.
    pub fn live_status(&self) -> Option<Status> {
        let pid = self.running()?;
        self.read_status().filter(|s| s.pid == pid)
    }

    /// The last lines of the supervisor's log, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        crate::process::tail_lines(&text, n)
    }
}

/// Why the tunnel could not be set up or stopped.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("cannot start the tunnel supervisor: {0}")]
    Start(String),
    #[error("the tunnel supervisor stopped right after starting{}", tail(.log_tail))]
    Exited { log: PathBuf, log_tail: String },
    #[error(
        "the tunnel supervisor did not report within {}s{}",
        START_WAIT.as_secs(),
        tail(.log_tail)
    )]
    Slow { log: PathBuf, log_tail: String },
    #[error("the tunnel to {service} (port {port}) does not work: {error}")]
    Unhealthy {
        service: String,
        port: u16,
        error: String,
        log: PathBuf,
        context: String,
        namespace: String,
    },
    #[error("cannot stop the tunnel supervisor (pid {pid}): {message}")]
    Stop { pid: u32, message: String },
}

fn tail(text: &str) -> String {
    if text.trim().is_empty() {
        String::new()
    } else {
        format!(":\n{text}")
    }
}

impl TunnelError {
    pub fn help(&self) -> Option<String> {
        match self {
            TunnelError::Exited { log, .. } | TunnelError::Slow { log, .. } => {
                Some(format!("its log: {}", log.display()))
            }
            TunnelError::Unhealthy {
                service,
                log,
                context,
                namespace,
                ..
            } => Some(format!(
                "`kubectl --context {context} -n {namespace} get pods` shows the remote pods; the tunnel's log is {}; `devenv offload {service} --local` runs {service} on this laptop instead",
                log.display()
            )),
            TunnelError::Start(_) | TunnelError::Stop { .. } => None,
        }
    }
}

/// Make the project's supervisor forward exactly `spec`: nothing is done when one already runs
/// with it; one with another spec is replaced; ports are kept across restarts where possible so
/// the bridges need not change. Waits until every forward was checked once, and fails naming the
/// first broken one. Returns the status and whether a supervisor was started.
pub async fn ensure(files: &Files, spec: &Spec) -> Result<(Status, bool), TunnelError> {
    if let Some(status) = files.live_status()
        && status.spec == *spec
        && status.forwards.iter().all(|f| f.checked)
    {
        check_healthy(files, &status)?;
        return Ok((status, false));
    }
    stop(files).await?;
    let mut bytes = serde_json::to_vec_pretty(spec).expect("spec serialises");
    bytes.push(b'\n');
    write_atomic(&files.spec(), &bytes).map_err(|e| TunnelError::Start(e.to_string()))?;
    let exe = daemon::self_exe().map_err(|e| TunnelError::Start(e.to_string()))?;
    let dir = files.dir().to_string_lossy().into_owned();
    let pid = daemon::spawn_detached(&exe, &["tunnel-supervisor", "--dir", &dir], &files.log())
        .map_err(|e| TunnelError::Start(format!("{}: {e}", exe.display())))?;
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Some(status) = files.read_status().filter(|s| s.pid == pid)
            && status.forwards.iter().all(|f| f.checked)
        {
            check_healthy(files, &status)?;
            return Ok((status, true));
        }
        let started = files.running();
        if started.is_some_and(|p| p != pid) {
            return Err(TunnelError::Start(format!(
                "another supervisor (pid {}) started at the same time",
                started.unwrap_or_default()
            )));
        }
        let elapsed = Instant::now() >= deadline;
        if elapsed || (started.is_none() && !daemon::exists(pid)) {
            let log = files.log();
            let log_tail = files.log_tail(8);
            if elapsed {
                let _ = daemon::signal(pid, Stop::Kill);
                return Err(TunnelError::Slow { log, log_tail });
            }
            return Err(TunnelError::Exited { log, log_tail });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn check_healthy(files: &Files, status: &Status) -> Result<(), TunnelError> {
    match status.forwards.iter().find(|f| !f.healthy) {
        None => Ok(()),
        Some(f) => Err(TunnelError::Unhealthy {
            service: f.forward.service.clone(),
            port: f.forward.port,
            error: f.error.clone().unwrap_or_else(|| "not checked yet".into()),
            log: files.log(),
            context: status.spec.context.clone(),
            namespace: status.spec.namespace.clone(),
        }),
    }
}

/// Stop the project's supervisor, if one runs, and wait until it is gone. Returns its pid.
pub async fn stop(files: &Files) -> Result<Option<u32>, TunnelError> {
    let Some(pid) = files.running() else {
        return Ok(None);
    };
    let err = |e: std::io::Error| TunnelError::Stop {
        pid,
        message: e.to_string(),
    };
    daemon::signal(pid, Stop::Term).map_err(err)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while files.running() == Some(pid) {
        if Instant::now() >= deadline {
            daemon::signal(pid, Stop::Kill).map_err(err)?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The status file stays: the next supervisor takes the same ports again where it can.
    Ok(Some(pid))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A line in the supervisor's log.
fn log(line: &str) {
    crate::errln!("{} {line}", now());
}

/// Why the supervisor could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a tunnel supervisor already runs for this project ({})", pid_file.display())]
    AlreadyRuns { pid_file: PathBuf },
    #[error("{}: {message}", path.display())]
    Spec { path: PathBuf, message: String },
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("cannot listen on {bind}: {source}")]
    Listen {
        bind: std::net::Ipv4Addr,
        source: std::io::Error,
    },
    #[error("unexpected IPv6 address {0}")]
    Ipv6(std::net::SocketAddrV6),
    #[error("cannot catch SIGTERM: {0}")]
    Signal(std::io::Error),
}

/// The supervisor itself (`devenv tunnel-supervisor`): runs until SIGTERM or SIGINT.
pub async fn supervise(files: &Files) -> Result<(), SuperviseError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SuperviseError::Io { path, source }
    };
    std::fs::create_dir_all(files.dir()).map_err(io(files.dir()))?;
    let pid_path = files.pid();
    let mut pid_file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&pid_path)
        .map_err(io(&pid_path))?;
    match pid_file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(SuperviseError::AlreadyRuns { pid_file: pid_path });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(&pid_path)(e)),
    }
    let pid = std::process::id();
    crate::fsutil::write_pid(&mut pid_file).map_err(io(&pid_path))?;

    let spec_path = files.spec();
    let spec: Spec = serde_json::from_slice(&std::fs::read(&spec_path).map_err(io(&spec_path))?)
        .map_err(|e| SuperviseError::Spec {
            path: spec_path.clone(),
            message: e.to_string(),
        })?;
    log(&format!(
        "pid {pid}: forwarding {} port(s) of namespace {} on context {} from {}",
        spec.forwards.len(),
        spec.namespace,
        spec.context,
        spec.bind
    ));
    // Ports of the previous supervisor are taken again when free, so bridges stay valid.
    let previous: BTreeMap<(String, u16), u16> = files
        .read_status()
        .map(|s| {
            s.forwards
                .into_iter()
                .map(|f| ((f.forward.service, f.forward.port), f.listen.port()))
                .collect()
        })
        .unwrap_or_default();
    let client = crate::cluster::client(&spec.context).await?;

    let mut listeners = Vec::new();
    for f in &spec.forwards {
        let wanted = previous
            .get(&(f.service.clone(), f.port))
            .copied()
            .unwrap_or(0);
        let listener = match TcpListener::bind((spec.bind, wanted)).await {
            Err(_) if wanted != 0 => TcpListener::bind((spec.bind, 0)).await,
            other => other,
        }
        .map_err(|source| SuperviseError::Listen {
            bind: spec.bind,
            source,
        })?;
        let listen = match listener
            .local_addr()
            .map_err(|source| SuperviseError::Listen {
                bind: spec.bind,
                source,
            })? {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(a) => return Err(SuperviseError::Ipv6(a)),
        };
        log(&format!(
            "{} port {}: listening on {listen}",
            f.service, f.port
        ));
        listeners.push((f.clone(), listen, listener));
    }
    let lives: Vec<_> = listeners
        .into_iter()
        .map(|(f, listen, listener)| {
            forward::start(client.clone(), &spec.namespace, f, listen, listener, log)
        })
        .collect();
    let started = now();
    let snapshot = || Status {
        pid,
        spec: spec.clone(),
        started,
        forwards: lives.iter().map(|l| l.status()).collect(),
    };
    let write_status = |status: &Status| {
        let mut bytes = serde_json::to_vec_pretty(status).expect("status serialises");
        bytes.push(b'\n');
        if let Err(e) = write_atomic(&files.status(), &bytes) {
            log(&format!("cannot write the status: {e}"));
        }
    };
    let mut last = snapshot();
    write_status(&last);

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(SuperviseError::Signal)?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                let now_status = snapshot();
                if now_status != last {
                    write_status(&now_status);
                    last = now_status;
                }
            }
        }
    }
    log(&format!("pid {pid}: stopping"));
    Ok(())
}

/// A supervisor's status with one forward (postgres:5432 of devenv-ann-shop on dev-cluster,
/// listening on 192.168.39.1:40213), healthy or broken: the fixture of the tests that read one.
#[cfg(test)]
pub fn example_status(healthy: bool) -> Status {
    let forward = Forward {
        service: "postgres".into(),
        host: "postgres".into(),
        port: 5432,
    };
    Status {
        pid: 4242,
        spec: Spec {
            context: "dev-cluster".into(),
            namespace: "devenv-ann-shop".into(),
            bind: Ipv4Addr::new(192, 168, 39, 1),
            forwards: vec![forward.clone()],
        },
        started: 0,
        forwards: vec![ForwardStatus {
            forward,
            listen: SocketAddrV4::new(Ipv4Addr::new(192, 168, 39, 1), 40213),
            pod: Some("postgres-0".into()),
            healthy,
            checked: true,
            error: (!healthy).then(|| "no ready pod behind Service postgres".into()),
            reconnects: 2,
            connections: 7,
            bytes_in: 10,
            bytes_out: 20,
        }],
    }
}

/// Bytes for people: `512 B`, `1.2 kB`, `3.4 MB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests;
