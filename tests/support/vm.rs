//! Real parts for what happens inside minikube's VM: a guest kernel and a host NFS server, on a
//! private network of the test's own.
//!
//! - [`Netns`]: a network namespace (`vm/netns`) with a tap device per guest subnet, the host side
//!   at .1 as minikube's kvm2 network has it, and its own rpcbind. The NFS server sees each
//!   request come from the guest's own address, so an export's client scope is enforced for real.
//! - [`Guest`]: Debian's own kernel booted by `qemu-system-x86_64 -accel tcg` (KVM guests hang on
//!   these machines) with the initramfs of `vm/build-image` (busybox, nfs-common's `mount.nfs`, the
//!   virtio and NFSv3 client modules), on a tap device of that namespace at 192.168.39.x. So the
//!   mount runs in a real kernel with the real NFS client, and `/proc/mounts` is written by the
//!   kernel's own `mangle()`. Commands reach the guest through its command server on its own
//!   address: one line in, run by the guest's shell with stdout and stderr merged (as on
//!   minikube's pty), then `\x1eEXIT N`.
//! - [`Ganesha`]: nfs-ganesha, a user-space NFS server (the kernel of these machines has no nfsd),
//!   inside that namespace, serving what a devenv block of an exports file says.
//!
//! All of it needs root (network namespaces, tap devices, port 2049); CI runs as root. Each
//! process started is stopped by its PID when its value is dropped.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The guest image (`vmlinuz`, `initrd.gz`): `$DEVENV_VM_IMAGE`, else CI's tools directory.
/// `None` (the test skips, saying why) when it or a tool is missing outside CI; under CI a
/// missing part fails the test, since `.ci/install-tools` provides them all.
pub fn image() -> Option<PathBuf> {
    let dir = std::env::var_os("DEVENV_VM_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/devenv-ci/vm"));
    let missing: Vec<String> = [
        (
            dir.join("vmlinuz").is_file(),
            format!("{}/vmlinuz", dir.display()),
        ),
        (
            dir.join("initrd.gz").is_file(),
            format!("{}/initrd.gz", dir.display()),
        ),
        (
            which::which("qemu-system-x86_64").is_ok(),
            "qemu-system-x86_64".into(),
        ),
        (which::which("ganesha.nfsd").is_ok(), "ganesha.nfsd".into()),
        (which::which("rpcbind").is_ok(), "rpcbind".into()),
        (which::which("nsenter").is_ok(), "nsenter".into()),
        (super::is_root(), "root (network namespaces)".into()),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, what)| what)
    .collect();
    if missing.is_empty() {
        return Some(dir);
    }
    let why = format!(
        "the real guest needs {} (bash .ci/install-tools, as root)",
        missing.join(", ")
    );
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipped: {why}");
    None
}

/// `vm/netns`: the test's private network.
pub fn netns_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/vm/netns")
}

/// Stop every process in the namespace whose state is in `dir` and delete it; nothing when
/// there is none.
pub fn netns_down(dir: &Path) {
    let _ = Command::new("bash")
        .arg(netns_script())
        .arg("down")
        .arg(dir)
        .stdin(Stdio::null())
        .status();
}

/// A network namespace for a guest and its NFS server (`vm/netns`), deleted when dropped.
pub struct Netns {
    dir: tempfile::TempDir,
}

impl Netns {
    pub fn new() -> Netns {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(netns_script())
            .arg("up")
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("bash runs");
        let netns = Netns { dir };
        assert!(
            out.status.success(),
            "the network namespace: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        netns
    }

    /// The directory `vm/netns` keeps its state in (`FAKE_NETNS` of the scripts).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        netns_down(self.dir.path());
    }
}

/// A booted guest (`vm/guest`), stopped by its PID when dropped.
pub struct Guest {
    /// The guest's own address on its network (the host is .1 of it).
    pub ip: Ipv4Addr,
    dir: tempfile::TempDir,
}

/// What one command printed (stdout and stderr merged) and its exit status.
#[derive(Debug)]
pub struct Ran {
    pub output: String,
    pub status: i32,
}

/// `vm/guest`, the one place that knows how to boot, reach and stop the guest.
pub fn guest_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/vm/guest")
}

impl Guest {
    /// Boot the guest of `image` at `ip` (a 192.168.39.x address) in `netns` and wait for its
    /// command server: about 5–10 s under TCG.
    pub fn boot(image: &Path, ip: Ipv4Addr, netns: &Netns) -> Guest {
        Guest::boot_sharing(image, ip, netns, None)
    }

    /// [`Guest::boot`], with `share` offered to the guest over virtio 9p as the tag `share`.
    pub fn boot_sharing(image: &Path, ip: Ipv4Addr, netns: &Netns, share: Option<&Path>) -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(guest_script())
            .arg("boot")
            .arg(dir.path())
            .arg(image)
            .arg(ip.to_string())
            .arg(netns.dir())
            .args(share)
            .stdin(Stdio::null())
            .output()
            .expect("bash runs");
        let guest = Guest { ip, dir };
        assert!(
            out.status.success(),
            "the guest did not boot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        guest
    }

    /// Run one command line with the guest's shell.
    pub fn run(&self, line: &str) -> Ran {
        assert!(!line.contains('\n'), "one line: {line:?}");
        let out = Command::new("bash")
            .arg(guest_script())
            .arg("run")
            .arg(self.dir.path())
            .arg(line)
            .stdin(Stdio::null())
            .output()
            .expect("bash runs");
        Ran {
            output: String::from_utf8_lossy(&out.stdout).into_owned(),
            status: out.status.code().expect("an exit status"),
        }
    }

    /// The guest's serial console so far (kernel messages).
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        stop_guest(self.dir.path());
    }
}

/// Stop the guest whose state `vm/guest boot` wrote to `dir`, by its PID; nothing when none runs.
pub fn stop_guest(dir: &Path) {
    let _ = Command::new("bash")
        .arg(guest_script())
        .arg("stop")
        .arg(dir)
        .stdin(Stdio::null())
        .status();
}

/// Stop the NFS server whose state `vm/ganesha-reload` keeps in `dir`, by its PID.
pub fn stop_ganesha(dir: &Path) {
    let _ = Command::new("bash")
        .arg(ganesha_reload_script())
        .arg("stop")
        .env("FAKE_GANESHA_DIR", dir)
        .stdin(Stdio::null())
        .status();
}

/// `vm/ganesha-reload`: serves what devenv's blocks of an exports file export.
pub fn ganesha_reload_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/vm/ganesha-reload")
}

/// nfs-ganesha on port 2049 of a [`Netns`], run by `vm/ganesha-reload` (the same translator
/// devenv's reload runs in the VM-backed tests), stopped by its PID when dropped.
pub struct Ganesha {
    dir: tempfile::TempDir,
    netns: PathBuf,
}

impl Ganesha {
    /// Serve each directory read-write to its client (an address or a subnet), as a devenv block
    /// of an exports file would.
    pub fn start(netns: &Netns, exports: &[(&Path, &str)]) -> Ganesha {
        let dir = tempfile::tempdir().unwrap();
        let mut file = String::from("# BEGIN devenv test uid=0\n");
        for (path, client) in exports {
            let path = path.to_str().expect("a UTF-8 path");
            file.push_str(&format!(
                "{} {client}(rw,no_root_squash)\n",
                devenv::nfs::escape_path(path)
            ));
        }
        file.push_str("# END devenv test uid=0\n");
        let exports_file = dir.path().join("exports");
        std::fs::write(&exports_file, file).unwrap();
        let ganesha = Ganesha {
            dir,
            netns: netns.dir().to_path_buf(),
        };
        let out = ganesha
            .reload_command()
            .env("DEVENV_EXPORTS_FILE", &exports_file)
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "nfs-ganesha did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ganesha
    }

    fn reload_command(&self) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(ganesha_reload_script())
            .env("FAKE_GANESHA_DIR", self.dir.path().join("server"))
            .env("FAKE_NETNS", &self.netns)
            .stdin(Stdio::null());
        cmd
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server/ganesha.log")).unwrap_or_default()
    }
}

impl Drop for Ganesha {
    fn drop(&mut self) {
        stop_ganesha(&self.dir.path().join("server"));
    }
}
