//! Test harness: runs the built `devenv` binary in a temp project directory with a temp HOME, a
//! temp state dir and a temp exports file, so no test touches the machine's own files. Every
//! test double lives beside this file:
//! - `bin/minikube` stands in for minikube v1.38.1 (see its header for what it copies).
//! - `docker.rs`: the machine's real Docker Engine stands in for the daemon inside the VM.
//! - `tls.rs`: `openssl s_server` stands in for the VM daemon's TLS endpoint (client certificates).
//! - `controlplane.rs`: a real kube-apiserver, controller manager and scheduler (v1.20.2) with etcd;
//!   `kubelet.rs` stands in for the node agent in front of it.
//! - `vm.rs`: a real guest kernel under qemu (image from `vm/build-image`) and nfs-ganesha, for
//!   what happens inside the VM: the NFS mount and `/proc/mounts` as the kernel writes it.
//!
//! Real tools (helm 3 and 4, kubectl, libvirtd) are found through [`real_tool`]: under CI they
//! must exist (`.ci/run` installs them); elsewhere a test that needs a missing one says so and
//! returns.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub struct Env {
    pub home: tempfile::TempDir,
    pub project: PathBuf,
    pub state: PathBuf,
    pub exports: PathBuf,
    /// The hosts file devenv edits (`DEVENV_HOSTS_FILE`).
    pub hosts: PathBuf,
    pub minikube_state: PathBuf,
    path: OsString,
    extra_env: Vec<(String, OsString)>,
}

impl Drop for Env {
    /// Stop what guest mode started, by PID: each profile's guest, the NFS server, then the
    /// network namespace they shared.
    fn drop(&mut self) {
        if let Ok(vms) = std::fs::read_dir(self.minikube_state.join("vm")) {
            for vm in vms.flatten() {
                if vm.path().join("qemu.pid").exists() {
                    vm::stop_guest(&vm.path());
                }
            }
        }
        let ganesha = self.home.path().join("ganesha");
        if ganesha.join("ganesha.pid").exists() {
            vm::stop_ganesha(&ganesha);
        }
        vm::netns_down(&self.home.path().join("netns"));
    }
}

impl Env {
    /// A fresh, empty project with the fake minikube on PATH.
    pub fn new() -> Env {
        let home = tempfile::tempdir().expect("temp dir");
        let project = home.path().join("src/shop");
        let state = home.path().join("devenv-home");
        let minikube_state = home.path().join("minikube");
        let exports = home.path().join("exports");
        for d in [&project, &state, &minikube_state] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&exports, "# /etc/exports of a test\n").unwrap();
        let hosts = home.path().join("hosts");
        std::fs::write(
            &hosts,
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n",
        )
        .unwrap();
        let mut paths = vec![support_bin()];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        Env {
            path: std::env::join_paths(paths).unwrap(),
            home,
            project,
            state,
            exports,
            hosts,
            minikube_state,
            extra_env: Vec::new(),
        }
    }

    /// A Linux host where KVM works, for tests that run `devenv up`: `virsh` is the double in
    /// `support/bin-kvm` (libvirtd with the default network up), and `/proc/cpuinfo` (with vmx)
    /// and `/dev/kvm` come from a fixture tree through `DEVENV_HOST_ROOT`. The NFS server reload
    /// is replaced by `true`, since the machine's own server must not be touched.
    pub fn kvm_host(mut self) -> Env {
        let root = self.home.path().join("host-root");
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::create_dir_all(root.join("dev")).unwrap();
        std::fs::write(
            root.join("proc/cpuinfo"),
            "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic vmx sse sse2\n",
        )
        .unwrap();
        std::fs::write(root.join("dev/kvm"), "").unwrap();
        let mut paths = vec![support_bin().with_file_name("bin-kvm")];
        paths.extend(std::env::split_paths(&self.path));
        self.path = std::env::join_paths(paths).unwrap();
        self.extra_env
            .push(("DEVENV_HOST_ROOT".into(), root.into_os_string()));
        self.extra_env
            .push(("DEVENV_EXPORTS_RELOAD".into(), "true".into()));
        self
    }

    /// The minikube double in guest mode: `start` boots the real guest of `image` (see
    /// `vm.rs`), and the NFS server reload is `vm/ganesha-reload`, so the guest mounts only what
    /// devenv's block of the exports file exports. Guests and server stop with the `Env`.
    pub fn with_real_guest(self, image: &Path) -> Env {
        let reload = format!("bash {}", vm::ganesha_reload_script().display());
        let ganesha = self.home.path().join("ganesha");
        let netns = self.home.path().join("netns");
        self.with_env("FAKE_MINIKUBE_GUEST_IMAGE", image)
            .with_env("FAKE_GANESHA_DIR", ganesha)
            .with_env("FAKE_NETNS", netns)
            .with_env("DEVENV_EXPORTS_RELOAD", reload)
    }

    /// Move the (still empty) project to `rel` under the temp home, e.g. a path with a space.
    pub fn project_at(mut self, rel: &str) -> Env {
        self.project = self.home.path().join(rel);
        std::fs::create_dir_all(&self.project).unwrap();
        self
    }

    /// Put `dir` first on PATH (a chosen version of a real tool).
    pub fn prepend_path(mut self, dir: &Path) -> Env {
        let mut paths = vec![dir.to_path_buf()];
        paths.extend(std::env::split_paths(&self.path));
        self.path = std::env::join_paths(paths).unwrap();
        self
    }

    /// Set an environment variable for every `devenv` this environment runs.
    pub fn with_env(mut self, key: &str, value: impl Into<OsString>) -> Env {
        self.extra_env.push((key.to_string(), value.into()));
        self
    }

    /// Unset a variable an earlier step set (e.g. `kvm_host`'s `DEVENV_EXPORTS_RELOAD`, so a
    /// plan shows the real reload command).
    pub fn without_env(mut self, key: &str) -> Env {
        self.extra_env.retain(|(k, _)| k != key);
        self
    }

    /// Remove the fake minikube from PATH (a machine where minikube is not installed).
    pub fn without_minikube(mut self) -> Env {
        let paths: Vec<PathBuf> = std::env::split_paths(&self.path)
            .filter(|p| p != &support_bin())
            .collect();
        self.path = std::env::join_paths(paths).unwrap();
        self
    }

    /// `devenv` with this environment, run in the project directory.
    pub fn devenv(&self) -> Command {
        let mut cmd = Command::cargo_bin("devenv").expect("devenv binary");
        cmd.current_dir(&self.project)
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", self.home.path())
            .env("USER", "ann")
            .env("DEVENV_HOME", &self.state)
            .env("DEVENV_EXPORTS_FILE", &self.exports)
            .env("DEVENV_HOSTS_FILE", &self.hosts)
            .env("FAKE_MINIKUBE_STATE", &self.minikube_state)
            .env("NO_COLOR", "1");
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `devenv` as a plain process with this environment, run in the project directory, for tests
    /// that run it in the background (signals, races, long-running watchers).
    pub fn background(&self) -> std::process::Command {
        let template = self.devenv();
        let mut cmd = std::process::Command::new(template.get_program());
        cmd.env_clear();
        for (k, v) in template.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd.current_dir(&self.project);
        cmd
    }

    /// Write devenv.toml (and whatever the test adds) into the project.
    /// Rewrite the project's devenv.toml with `edit`.
    pub fn edit_config(&self, edit: impl FnOnce(String) -> String) {
        let toml = std::fs::read_to_string(self.project.join("devenv.toml")).unwrap();
        self.write("devenv.toml", &edit(toml));
    }

    /// The example's `[project] rollout_timeout` set to `timeout` (`"2s"`).
    pub fn rollout_timeout(&self, timeout: &str) {
        let values = "values = [\"deploy/values-dev.yaml\"]";
        self.edit_config(|toml| {
            toml.replace(
                values,
                &format!("{values}\nrollout_timeout = \"{timeout}\""),
            )
        });
    }

    /// The example's postgres on the shared cluster by the team's default.
    pub fn postgres_offloaded(&self) {
        self.edit_config(|toml| {
            toml.replacen(
                "port = 5432\noffload = \"local\"",
                "port = 5432\noffload = \"remote\"",
                1,
            )
        });
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.project.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Append `text` to the project's devenv.toml.
    pub fn append_config(&self, text: &str) {
        let path = self.project.join("devenv.toml");
        let toml = std::fs::read_to_string(&path).unwrap();
        std::fs::write(path, format!("{toml}\n{text}")).unwrap();
    }

    /// Give `service` an image built from `services/<service>` with this Dockerfile, tagged `tag`.
    pub fn with_image(&self, service: &str, tag: &str, dockerfile: &str) {
        self.write(&format!("services/{service}/Dockerfile"), dockerfile);
        self.append_config(&format!(
            "[services.{service}.image]\ncontext = \"services/{service}\"\ntag = \"{tag}\"\n"
        ));
    }

    /// `devenv --json up --dry-run`: its exit code and the plan it printed.
    pub fn json_dry_run(&self) -> (Option<i32>, serde_json::Value) {
        let out = self
            .devenv()
            .args(["--json", "up", "--dry-run"])
            .output()
            .unwrap();
        let plan = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "no JSON plan ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code(), plan)
    }

    /// `devenv init --example`, asserted to succeed.
    pub fn example(&self) -> &Env {
        self.devenv().args(["init", "--example"]).assert().success();
        self
    }

    /// The fake minikube's argv log, one invocation per line.
    pub fn minikube_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.minikube_state.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Start the project's VM in the minikube double as devenv creates it: kvm2, with Docker as
    /// its container runtime.
    pub fn start_vm(&self) -> std::process::Output {
        self.minikube(&[
            "start",
            "-p",
            "devenv-shop",
            "--driver=kvm2",
            "--container-runtime=docker",
        ])
    }

    /// Run the fake minikube directly (to prepare VM state, or to look into the VM). It sees
    /// the same guest as devenv's runs when there is a real one, but none of the faults a test
    /// set for devenv.
    pub fn minikube(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new(support_bin().join("minikube"));
        cmd.args(args)
            .env("FAKE_MINIKUBE_STATE", &self.minikube_state)
            .env("DEVENV_EXPORTS_FILE", &self.exports);
        for (k, v) in &self.extra_env {
            if k == "FAKE_MINIKUBE_GUEST_IMAGE" || k == "FAKE_GANESHA_DIR" {
                cmd.env(k, v);
            }
        }
        cmd.output().unwrap()
    }

    /// Replace the temp paths of this environment with stable placeholders (for snapshots).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (path, name) in [
            (self.project.clone(), "[PROJECT]"),
            (self.state.clone(), "[DEVENV_HOME]"),
            (self.exports.clone(), "[EXPORTS]"),
            (self.home.path().to_path_buf(), "[HOME]"),
            (built_bin_dir(), "[BIN]"),
        ] {
            if let Ok(canon) = path.canonicalize() {
                out = out.replace(&canon.to_string_lossy().into_owned(), name);
            }
            out = out.replace(&path.to_string_lossy().into_owned(), name);
        }
        // The state directory name carries a hash of the project's temp path.
        redact_hex(&out, "shop-", 8)
    }
}

/// Replace `<prefix><n hex digits>` with `<prefix>[HASH]`.
fn redact_hex(text: &str, prefix: &str, n: usize) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        out.push_str(&rest[..i + prefix.len()]);
        rest = &rest[i + prefix.len()..];
        let hex: String = rest.chars().take(n).collect();
        if hex.len() == n && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push_str("[HASH]");
            rest = &rest[n..];
        }
    }
    out.push_str(rest);
    out
}

pub fn support_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/bin")
}

/// A real tool by name (on PATH). Under CI a missing tool fails the test: `.ci/run` installs it.
pub fn real_tool(name: &str) -> Option<PathBuf> {
    match which::which(name) {
        Ok(p) => Some(p),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("{name} is required under CI (.ci/run installs it)")
        }
        Err(_) => {
            eprintln!("skipping: {name} is not installed here (CI installs it)");
            None
        }
    }
}

/// The example project on a KVM host with the API server double as its cluster (every pod
/// ready at once) and the real helm: what a cold `devenv up` needs to succeed.
pub fn cluster_env() -> Option<(Env, apiserver::ApiServer)> {
    cluster_env_with("helm")
}

/// Like [`cluster_env`] with `helm` being the named binary (`helm3`, `helm4`).
pub fn cluster_env_with(helm: &str) -> Option<(Env, apiserver::ApiServer)> {
    cluster_env_for(Env::new(), helm)
}

/// Like [`cluster_env_with`], starting from `env` (a project elsewhere, a real guest).
pub fn cluster_env_for(env: Env, helm: &str) -> Option<(Env, apiserver::ApiServer)> {
    let helm = real_tool(helm)?;
    let api = apiserver::ApiServer::start_as("devenv-shop").auto_ready();
    let env = env
        .with_helm(&helm)
        .with_env("FAKE_MINIKUBE_APISERVER", api.url());
    env.example();
    Some((env, api))
}

/// The example project on a KVM host whose cluster is the real control plane of this test
/// binary (`controlplane.rs`) with the kubelet stand-in as its node, and the real `helm` (`helm3`,
/// `helm4`). Tests that use it take [`controlplane::ControlPlane::exclusive`] first: the example's
/// names are fixed. The example's namespaces are gone when it returns.
pub fn real_cluster_env(
    helm: &str,
) -> Option<(
    Env,
    &'static controlplane::ControlPlane,
    &'static kubelet::Kubelet,
)> {
    let helm = real_tool(helm)?;
    let plane = controlplane::ControlPlane::shared()?;
    static KUBELET: std::sync::OnceLock<kubelet::Kubelet> = std::sync::OnceLock::new();
    let node = KUBELET.get_or_init(|| kubelet::Kubelet::start(plane, "devenv-shop"));
    plane.forget_namespace("shop");
    let env = Env::new()
        .with_helm(&helm)
        .with_env("FAKE_MINIKUBE_APISERVER", plane.url.clone())
        .with_env("FAKE_MINIKUBE_APISERVER_CA", plane.ca.clone())
        .with_env("FAKE_MINIKUBE_APISERVER_TOKEN", controlplane::TOKEN);
    env.example();
    Some((env, plane, node))
}

impl Env {
    /// A KVM host with `helm` (a real binary) first on PATH and a kubeconfig of its own.
    fn with_helm(self, helm: &Path) -> Env {
        let kubeconfig = self.home.path().join("kubeconfig");
        let bin = self.home.path().join("helm-bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(helm, bin.join("helm")).unwrap();
        self.kvm_host()
            .prepend_path(&bin)
            .with_env("KUBECONFIG", kubeconfig)
    }
}

/// An address of this machine that a real cluster would accept in an Endpoints or
/// EndpointSlice (they refuse 127.0.0.0/8 since Kubernetes 1.21) and that is the `.1` of its
/// /24, as the host is on minikube's network: Docker's bridge (172.17.0.1) where dockerd runs,
/// as CI starts it. `None` (the test says so and returns) when there is none outside CI.
pub fn bridge_host_address() -> Option<std::net::Ipv4Addr> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    let found = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let cidr = l.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
            cidr.split('/').next()?.parse::<std::net::Ipv4Addr>().ok()
        })
        .find(|ip| ip.octets()[3] == 1);
    if found.is_none() {
        let why = "no address of this machine is the .1 of a network (dockerd's docker0 gives one: bash .ci/start-services)";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
    }
    found
}

/// Whether the tests run as root (CI does): some real tools need it.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The directory cargo built `devenv` (and `devenv-exports-helper`) into.
pub fn built_bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_devenv"))
        .parent()
        .expect("a directory")
        .to_path_buf()
}

pub mod apiserver;
pub mod controlplane;
pub mod docker;
pub mod kubelet;
pub mod offload;
pub mod outage;
pub mod postgres;
pub mod procs;
pub mod tls;
pub mod vm;
pub mod watcher;
pub mod webdriver;

/// The fakes of a machine for `devenv onboard` (package managers, sudo, uname, …), in
/// `bin/onboard/`: kept out of `bin/` itself so that no other test finds them on its PATH.
pub fn machine_fakes() -> PathBuf {
    support_bin().join("onboard")
}

impl Env {
    /// Turn this environment into a fake machine for `devenv onboard`: PATH holds only `bash`
    /// (which the fakes run on), the named fakes from `bin/onboard/`, and for each name in
    /// `present` a stand-in that is merely found on PATH. Nothing else of the real machine is
    /// reachable, so the plan depends on the test alone.
    pub fn machine(mut self, fakes: &[&str], present: &[&str]) -> Env {
        let bin = self.machine_bin();
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(self.machine_state()).unwrap();
        let bash = which::which("bash").expect("bash runs the fakes");
        std::os::unix::fs::symlink(bash, bin.join("bash")).unwrap();
        for fake in fakes {
            let source = machine_fakes().join(fake);
            assert!(
                source.is_file(),
                "no fake {fake} in {}",
                machine_fakes().display()
            );
            std::os::unix::fs::symlink(source, bin.join(fake)).unwrap();
        }
        for program in present {
            std::os::unix::fs::symlink(machine_fakes().join("present"), bin.join(program)).unwrap();
        }
        self.path = bin.into_os_string();
        self
    }

    /// The fake machine's only PATH entry.
    pub fn machine_bin(&self) -> PathBuf {
        self.home.path().join("machine/bin")
    }

    /// Where the fake machine's tools keep their state (`calls.log`, `dpkg`, `groups`, …).
    pub fn machine_state(&self) -> PathBuf {
        self.home.path().join("machine/state")
    }

    /// Write one of the fake machine's state files (`dpkg`, `rpm`, `units`, `groups`), one
    /// entry a line: what is already installed, enabled or created before the test starts.
    pub fn machine_has(&self, file: &str, lines: &[&str]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(self.machine_state().join(file), text).unwrap();
    }

    /// Every call the fake machine's tools received, in order (`sudo apt-get update`, …).
    pub fn machine_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.machine_state().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `devenv onboard` on the fake machine.
    pub fn onboard(&self) -> Command {
        let mut cmd = self.devenv();
        cmd.env("FAKE_MACHINE_STATE", self.machine_state())
            .arg("onboard");
        cmd
    }
}

/// A pseudo terminal (master, slave), with the window `cols` × `rows` when given: for the exec
/// double's TTY and for running devenv on a terminal.
pub fn pty(
    size: Option<(u16, u16)>,
) -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    let window = size.map(|(cols, rows)| libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    let window_ptr = window
        .as_ref()
        .map_or(std::ptr::null(), |w| w as *const libc::winsize);
    // SAFETY: openpty writes two descriptors it opened and reads the optional winsize.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            window_ptr,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) })
}
