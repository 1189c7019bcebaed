//! A real Kubernetes control plane on 127.0.0.1: etcd (Debian's `etcd-server` 3.4), and
//! kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2 built from Debian's
//! `kubernetes` source package by `controlplane/build` (`.ci/install-tools` keeps them under
//! the CI tools directory). The API server serves TLS with a certificate made here by openssl,
//! takes static bearer tokens (the admin in `system:masters`; a developer `ann` and a `gc-bot`
//! with no rights of their own), signs service-account tokens with a key pair made here,
//! authorises with RBAC as a real cluster does (the admin may do everything; what the other two
//! may do is what a test binds to them, e.g. the roles docs/platform.md gives) and writes an
//! audit log (level Metadata), from which tests count the requests devenv and helm made. No kubelet can run on these machines:
//! [`super::kubelet`] stands in for one.
//!
//! One control plane per test binary, started by the first test that asks and shared by the
//! rest (tests take [`ControlPlane::exclusive`] when they use fixed names). Its processes are
//! stopped by their PIDs when the test binary exits: a watchdog process waits for the binary's
//! PID to go away, since a static value is never dropped.
//!
//! What 1.20 cannot show (the tests that need it stay on the API double, `apiserver/`):
//! `discovery.k8s.io/v1` EndpointSlices (1.21), port-forward, exec and logs (a kubelet serves
//! them), Helm 4's server-side apply of Service ports without `protocol` (fixed in 1.21), and
//! the 1.21+ refusal of loopback addresses in Endpoints and EndpointSlices.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The admin's bearer token (a test secret, never a real one).
pub const TOKEN: &str = "devenv-test-admin-token";
/// User `ann` in group `devenv-developers`: only what RBAC gives that group (nothing, until a
/// test binds a role to it).
pub const DEVELOPER_TOKEN: &str = "devenv-test-ann-token";
/// User `gc-bot` in group `devenv-gc`, for `devenv remote gc` as a platform team runs it.
pub const GC_TOKEN: &str = "devenv-test-gc-token";

/// A running control plane.
pub struct ControlPlane {
    dir: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The serving certificate's CA (PEM file).
    pub ca: PathBuf,
    /// The audit log: one JSON event per line.
    pub audit_log: PathBuf,
    _keep: tempfile::TempDir,
}

/// Where the built binaries are: `$DEVENV_K8S`, else the CI tools directory's.
fn k8s_bin() -> PathBuf {
    std::env::var_os("DEVENV_K8S")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/devenv-ci/k8s"))
        .join("bin")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static SHARED: OnceLock<Option<ControlPlane>> = OnceLock::new();
static EXCLUSIVE: Mutex<()> = Mutex::new(());

impl ControlPlane {
    /// The test binary's control plane, started on first use (about 10 s). `None` outside CI
    /// when the binaries are missing (the test says so and returns); under CI that fails.
    pub fn shared() -> Option<&'static ControlPlane> {
        SHARED.get_or_init(ControlPlane::start).as_ref()
    }

    /// One test at a time for tests that use fixed names (the example's namespace `shop`).
    pub fn exclusive() -> MutexGuard<'static, ()> {
        EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start() -> Option<ControlPlane> {
        let bin = k8s_bin();
        let mut missing: Vec<String> = [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ]
        .iter()
        .filter(|b| !bin.join(b).is_file())
        .map(|b| bin.join(b).display().to_string())
        .collect();
        for tool in ["etcd", "openssl"] {
            if which::which(tool).is_err() {
                missing.push(tool.into());
            }
        }
        if !missing.is_empty() {
            let why = format!(
                "the real control plane needs {} (bash tests/run builds it once)",
                missing.join(", ")
            );
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: {why}");
            return None;
        }
        let keep = tempfile::tempdir().unwrap();
        let dir = keep.path().to_path_buf();
        certificates(&dir);
        std::fs::write(
            dir.join("tokens.csv"),
            format!(
                "{TOKEN},admin,admin,system:masters\n{DEVELOPER_TOKEN},ann,ann,devenv-developers\n{GC_TOKEN},gc-bot,gc-bot,devenv-gc\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
        )
        .unwrap();

        let (etcd_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        let url = format!("https://127.0.0.1:{api_port}");
        let log = |name: &str| std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let mut children: Vec<Child> = Vec::new();
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        children.push(
            Command::new("etcd")
                .args(["--name", "default", "--data-dir"])
                .arg(dir.join("etcd"))
                .args(["--listen-client-urls", &etcd_url])
                .args(["--advertise-client-urls", &etcd_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &format!("default={peer_url}")])
                .stdout(log("etcd"))
                .stderr(log("etcd-err"))
                .spawn()
                .expect("etcd"),
        );
        let p = |f: &str| dir.join(f).display().to_string();
        children.push(
            Command::new(bin.join("kube-apiserver"))
                .args([
                    &format!("--etcd-servers={etcd_url}"),
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    &format!("--secure-port={api_port}"),
                    "--insecure-port=0",
                    &format!("--tls-cert-file={}", p("server.crt")),
                    &format!("--tls-private-key-file={}", p("server.key")),
                    &format!("--client-ca-file={}", p("ca.crt")),
                    &format!("--token-auth-file={}", p("tokens.csv")),
                    "--authorization-mode=RBAC",
                    &format!("--service-account-key-file={}", p("sa.pub")),
                    &format!("--service-account-signing-key-file={}", p("sa.key")),
                    "--service-account-issuer=https://kubernetes.default.svc",
                    "--service-cluster-ip-range=10.96.0.0/16",
                    &format!("--audit-policy-file={}", p("audit-policy.yaml")),
                    &format!("--audit-log-path={}", p("audit.log")),
                    "--audit-log-mode=blocking",
                ])
                .stdout(log("kube-apiserver"))
                .stderr(log("kube-apiserver-err"))
                .spawn()
                .expect("kube-apiserver"),
        );
        let plane = ControlPlane {
            url: url.clone(),
            ca: dir.join("ca.crt"),
            audit_log: dir.join("audit.log"),
            dir: dir.clone(),
            _keep: keep,
        };
        let admin = plane.kubeconfig(&dir, "admin");
        watchdog(&children);
        plane.wait_ready(Duration::from_secs(90));
        let admin = admin.display().to_string();
        for (name, args) in [
            (
                "kube-controller-manager",
                vec![
                    format!("--kubeconfig={admin}"),
                    "--leader-elect=false".into(),
                    "--port=0".into(),
                    "--secure-port=0".into(),
                    format!("--service-account-private-key-file={}", p("sa.key")),
                    format!("--root-ca-file={}", p("ca.crt")),
                    "--use-service-account-credentials=false".into(),
                    "--controllers=*".into(),
                ],
            ),
            (
                "kube-scheduler",
                vec![
                    format!("--kubeconfig={admin}"),
                    "--leader-elect=false".into(),
                    "--port=0".into(),
                    "--secure-port=0".into(),
                ],
            ),
        ] {
            let child = Command::new(bin.join(name))
                .args(&args)
                .stdout(log(name))
                .stderr(log(&format!("{name}-err")))
                .spawn()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            watchdog(std::slice::from_ref(&child));
            children.push(child);
        }
        std::mem::forget(children);
        Some(plane)
    }

    /// Poll `/readyz` until the API server answers ok.
    fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let out = Command::new("openssl")
                .args(["s_client", "-quiet", "-connect"])
                .arg(self.url.trim_start_matches("https://"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    let mut stdin = c.stdin.take().unwrap();
                    let _ = write!(
                        stdin,
                        "GET /readyz HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
                    );
                    drop(stdin);
                    c.wait_with_output()
                });
            if let Ok(out) = out
                && String::from_utf8_lossy(&out.stdout).starts_with("HTTP/1.1 200")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver was not ready within {within:?}: {}",
                self.log("kube-apiserver-err")
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A kubeconfig file in `dir` for the admin, its context named `context`.
    pub fn kubeconfig(&self, dir: &Path, context: &str) -> PathBuf {
        let path = dir.join(format!("{context}.kubeconfig"));
        std::fs::write(&path, self.kubeconfig_text(context)).unwrap();
        path
    }

    /// The kubeconfig text for the admin, its cluster, user and context named `context`.
    pub fn kubeconfig_text(&self, context: &str) -> String {
        self.kubeconfig_as(context, TOKEN)
    }

    /// A kubeconfig whose user authenticates with `token` ([`DEVELOPER_TOKEN`], [`GC_TOKEN`]).
    pub fn kubeconfig_as(&self, context: &str, token: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {}\n    certificate-authority: {}\ncontexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n    namespace: default\ncurrent-context: {context}\nusers:\n- name: {context}\n  user:\n    token: {token}\n",
            self.url,
            self.ca.display()
        )
    }

    /// A client as the admin (within a tokio runtime: kube spawns its connection tasks there).
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_text("admin")).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// The namespace's phase (`Active`, `Terminating`), or `None` when it does not exist.
    pub fn namespace_phase(&self, ns: &str) -> Option<String> {
        super::docker::block_on(async {
            let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
                kube::Api::all(self.client().await);
            api.get_opt(ns)
                .await
                .unwrap()
                .map(|n| n.status.and_then(|s| s.phase).unwrap_or_default())
        })
    }

    /// Delete the namespace if it exists and wait (a minute at most) until it is gone, so a
    /// test starts from an empty cluster.
    pub fn forget_namespace(&self, ns: &str) {
        if self.namespace_phase(ns).is_none() {
            return;
        }
        super::docker::block_on(async {
            let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
                kube::Api::all(self.client().await);
            let _ = api.delete(ns, &Default::default()).await;
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.namespace_phase(ns).is_some() {
            assert!(Instant::now() < deadline, "namespace {ns} was not deleted");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// One of the processes' logs (`kube-apiserver-err`, `etcd`, …).
    pub fn log(&self, name: &str) -> String {
        let text =
            std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The audit events logged so far (each a JSON object), only the completed requests.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["stage"] == "ResponseComplete")
            .collect()
    }

    /// How many audit events there are so far: a mark to count from.
    pub fn audit_mark(&self) -> usize {
        self.audit().len()
    }

    /// The mutating requests (create, update, patch, delete) logged after `mark` whose
    /// User-Agent starts with one of `agents`, as `VERB URI (agent)` lines.
    pub fn mutations_since(&self, mark: usize, agents: &[&str]) -> Vec<String> {
        self.audit()
            .into_iter()
            .skip(mark)
            .filter(|e| {
                matches!(
                    e["verb"].as_str(),
                    Some("create" | "update" | "patch" | "delete" | "deletecollection")
                )
            })
            .filter(|e| {
                let agent = e["userAgent"].as_str().unwrap_or("");
                agents.iter().any(|a| agent.starts_with(a))
            })
            .map(|e| {
                format!(
                    "{} {} ({})",
                    e["verb"].as_str().unwrap_or(""),
                    e["requestURI"].as_str().unwrap_or(""),
                    e["userAgent"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// The User-Agents of the requests logged after `mark`.
    pub fn agents_since(&self, mark: usize) -> Vec<String> {
        let mut agents: Vec<String> = self
            .audit()
            .into_iter()
            .skip(mark)
            .map(|e| e["userAgent"].as_str().unwrap_or("").to_string())
            .collect();
        agents.sort();
        agents.dedup();
        agents
    }
}

/// The CA, the API server's serving certificate (for 127.0.0.1 and the in-cluster names) and
/// the service-account key pair, made with openssl in `dir`.
fn certificates(dir: &Path) {
    run(dir, "openssl", &["genrsa", "-out", "ca.key", "2048"]);
    run(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-days",
            "2",
            "-subj",
            "/CN=devenv-test-ca",
            "-out",
            "ca.crt",
        ],
    );
    run(dir, "openssl", &["genrsa", "-out", "server.key", "2048"]);
    run(
        dir,
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            "server.key",
            "-subj",
            "/CN=kube-apiserver",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n",
    )
    .unwrap();
    run(
        dir,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
    run(dir, "openssl", &["genrsa", "-out", "sa.key", "2048"]);
    run(
        dir,
        "openssl",
        &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"],
    );
}

/// A process that stops `children` by their PIDs once this test binary has exited.
// Never waited for: it outlives this process on purpose, and is reaped by init after it.
#[allow(clippy::zombie_processes)]
fn watchdog(children: &[Child]) {
    let pids: Vec<String> = children.iter().map(|c| c.id().to_string()).collect();
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; kill -TERM {pids} 2>/dev/null; sleep 3; kill -KILL {pids} 2>/dev/null; exit 0",
        parent = std::process::id(),
        pids = pids.join(" ")
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sh");
}
