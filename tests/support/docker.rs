//! The machine's real Docker Engine (Debian's `docker.io`, API 1.41), which stands in for the
//! Docker daemon inside minikube's VM: `.ci/start-services` starts it, and the minikube double
//! points `docker-env` at it when `FAKE_MINIKUBE_DOCKER_HOST` is set. Nothing can be pulled, so
//! images are built `FROM scratch` with the static `/bin/busybox` copied in.

use std::path::{Path, PathBuf};

use devenv::docker::{Daemon, DockerEnv};

/// The socket of the local daemon.
pub const SOCKET: &str = "unix:///var/run/docker.sock";

/// Run a future on a fresh runtime (the tests are plain `#[test]`s).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The local daemon, connected as devenv connects to the VM's. A daemon that does not answer
/// fails the test with what to do: these tests need a real one.
pub fn daemon() -> Daemon {
    let env = DockerEnv {
        host: SOCKET.to_string(),
        tls_verify: false,
        cert_path: None,
    };
    match block_on(Daemon::connect(&env)) {
        Ok(d) => d,
        Err(e) => panic!(
            "these tests need a running Docker Engine at {SOCKET} ({e}); start it with `sudo bash .ci/start-services` (CI does)"
        ),
    }
}

/// A unique image name for one test, so tests running at once never share an image.
pub fn image_name(test: &str) -> String {
    format!("devenv-test-{}-{test}", std::process::id())
}

/// Write a build context: `busybox` (the static binary) plus the given files.
pub fn context(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy("/bin/busybox", dir.join("busybox"))
        .expect("/bin/busybox (busybox-static) is needed to build test images");
    for (rel, text) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir.to_path_buf()
}

/// Remove every image whose repository is `repository` (all its tags), ignoring absent ones.
pub fn remove_images(repository: &str) {
    let out = std::process::Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}", repository])
        .output()
        .unwrap();
    for reference in String::from_utf8_lossy(&out.stdout).lines() {
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", reference])
            .output();
    }
}

/// Removes the test's images when dropped, even when the test fails.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_images(&self.0);
    }
}

/// An image holding only the static busybox, built with devenv's own build code for one test,
/// removed (with every tag of its repository) when dropped.
pub struct BusyboxImage {
    pub reference: String,
    _cleanup: Cleanup,
    _dir: tempfile::TempDir,
}

impl BusyboxImage {
    pub fn build(daemon: &Daemon, test: &str) -> BusyboxImage {
        let repository = image_name(test);
        let cleanup = Cleanup(repository.clone());
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(
            dir.path(),
            &[("Dockerfile", "FROM scratch\nCOPY busybox /bin/busybox\n")],
        );
        let image = devenv::config::Image {
            context: ctx,
            dockerfile: "Dockerfile".into(),
            tag: format!("{repository}:busybox"),
        };
        let spec =
            devenv::docker::build::ImageSpec::read(Path::new("/"), "busybox", &image).unwrap();
        block_on(devenv::docker::build::build(daemon, &spec, &|_: &str| {})).unwrap();
        BusyboxImage {
            reference: image.tag,
            _cleanup: cleanup,
            _dir: dir,
        }
    }
}

/// The example project on the minikube double with its VM running, whose `docker-env` points
/// at the local daemon.
pub fn running_example() -> crate::support::Env {
    let env = crate::support::Env::new().with_env("FAKE_MINIKUBE_DOCKER_HOST", SOCKET);
    env.example();
    // A VM as devenv creates it: Docker as the container runtime.
    env.start_vm();
    env
}

/// A running container labelled as kubelet labels a pod's container, burning a little CPU.
/// Removed when dropped.
pub struct PodContainer {
    pub name: String,
}

impl PodContainer {
    pub fn start(image: &str, namespace: &str, pod: &str, container: &str) -> PodContainer {
        let name = format!("{pod}-{}", std::process::id());
        let out = std::process::Command::new("docker")
            .args(["run", "-d", "--name", &name])
            .args(["--label", &format!("io.kubernetes.pod.namespace={namespace}")])
            .args(["--label", &format!("io.kubernetes.pod.name={pod}")])
            .args(["--label", &format!("io.kubernetes.container.name={container}")])
            .args([image, "/bin/busybox", "sh", "-c"])
            .arg("while :; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; /bin/busybox usleep 10000; done")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PodContainer { name }
    }
}

impl Drop for PodContainer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// The untagged image a failed build leaves behind (its last good step), removed when dropped.
/// The failing Dockerfile starts with `LABEL devenv-test=<label>` (see [`FailedBuildLeftovers::label`]),
/// which every later step inherits, so only this test's leftovers are removed.
pub struct FailedBuildLeftovers(pub String);

impl FailedBuildLeftovers {
    /// The Dockerfile line that marks the build's images.
    pub fn label(&self) -> String {
        format!("LABEL devenv-test={}", self.0)
    }
}

impl Drop for FailedBuildLeftovers {
    fn drop(&mut self) {
        let out = std::process::Command::new("docker")
            .args(["images", "-q", "--filter", "dangling=true", "--filter"])
            .arg(format!("label=devenv-test={}", self.0))
            .output()
            .unwrap();
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = std::process::Command::new("docker")
                .args(["rmi", id])
                .output();
        }
    }
}
