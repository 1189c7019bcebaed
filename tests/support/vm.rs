//! Real parts for what happens inside minikube's VM: a guest kernel and a host NFS server.
//!
//! - [`Guest`]: Debian's own kernel booted by `qemu-system-x86_64 -accel tcg` (KVM guests hang on
//!   these machines) with the initramfs of `vm/build-image` (busybox, nfs-common's `mount.nfs`, the
//!   virtio and NFSv3 client modules). Its network is qemu's user network laid out as minikube's
//!   kvm2 network: the guest on 192.168.39.x, the host as .1. So the mount runs in a real kernel
//!   with the real NFS client, and `/proc/mounts` is written by the kernel's own `mangle()`.
//!   Commands reach the guest through its command server on a forwarded port: one line in, run by
//!   the guest's shell with stdout and stderr merged (as on minikube's pty), then `\x1eEXIT N`.
//! - [`Ganesha`]: nfs-ganesha, a user-space NFS server, on 127.0.0.1 (the kernel of these machines
//!   has no nfsd), registered with the machine's rpcbind (`.ci/start-services` starts it).
//!
//! What this cannot show: qemu's user network makes every guest connection arrive at the host from
//! 127.0.0.1, so the server cannot check an export's client address here. Each process started
//! is stopped by its PID when its value is dropped.

use std::io::{BufRead, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        (rpcbind_answers(), "rpcbind on 127.0.0.1".into()),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, what)| what)
    .collect();
    if missing.is_empty() {
        return Some(dir);
    }
    let why = format!(
        "the real guest needs {} (bash .ci/install-tools && bash .ci/start-services)",
        missing.join(", ")
    );
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipped: {why}");
    None
}

fn rpcbind_answers() -> bool {
    Command::new("rpcinfo")
        .args(["-p", "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Poll `ready` until it holds or `limit` passes.
fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what} not ready within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A booted guest.
pub struct Guest {
    qemu: Child,
    port: u16,
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

impl Guest {
    /// Boot the guest of `image` at `ip` (a 192.168.39.x address) and wait for its command
    /// server: about 5–10 s under TCG.
    pub fn boot(image: &Path, ip: Ipv4Addr) -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let console = dir.path().join("console.log");
        let port = free_port();
        let [a, b, c, _] = ip.octets();
        let net = format!("{a}.{b}.{c}");
        let qemu = Command::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-m", "512", "-smp", "2"])
            .args(["-display", "none", "-no-reboot", "-nodefaults"])
            .arg("-kernel")
            .arg(image.join("vmlinuz"))
            .arg("-initrd")
            .arg(image.join("initrd.gz"))
            .args([
                "-append",
                &format!("console=ttyS0 panic=-1 devenv.ip={ip}"),
            ])
            .args([
                "-netdev",
                &format!(
                    "user,id=n0,ipv6=off,net={net}.0/24,host={net}.1,hostfwd=tcp:127.0.0.1:{port}-{ip}:7000"
                ),
            ])
            .args(["-device", "virtio-net-pci,netdev=n0"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-x86_64 starts");
        let mut guest = Guest {
            qemu,
            port,
            ip,
            dir,
        };
        // The ready line on the serial console, not a poll of the forwarded port: connecting
        // too early sends slirp into its retry backoff (about 20 s).
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&console).unwrap_or_default();
            if text.contains("devenv-guest ready") {
                break;
            }
            if let Ok(Some(status)) = guest.qemu.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = guest.qemu.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("qemu exited ({status}) before the guest was ready: {err}\n{text}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "the guest did not boot within 90 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        guest
    }

    /// Run one command line with the guest's shell.
    pub fn run(&self, line: &str) -> Ran {
        assert!(!line.contains('\n'), "one line: {line:?}");
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("the guest answers");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        stream.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut out = Vec::new();
        std::io::BufReader::new(stream)
            .read_until(0, &mut out)
            .expect("the guest's answer");
        let text = String::from_utf8_lossy(&out).into_owned();
        let (output, status) = text
            .rsplit_once("\x1eEXIT ")
            .unwrap_or_else(|| panic!("no exit status from the guest for {line:?}: {text:?}"));
        Ran {
            output: output.to_string(),
            status: status.trim().parse().expect("an exit status"),
        }
    }

    /// The guest's serial console so far (kernel messages).
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

/// nfs-ganesha serving directories of this machine over NFSv3 on 127.0.0.1:2049.
pub struct Ganesha {
    server: Child,
    dir: tempfile::TempDir,
}

impl Ganesha {
    /// Start the server with one read-write export per directory (no root squash; no attribute
    /// or directory cache in the server, which otherwise hides host edits for seconds and serves
    /// the old inode after a rename-over save).
    /// Only one can run on a machine at a time (the port is fixed, as mount.nfs expects 2049).
    pub fn start(exports: &[&Path]) -> Ganesha {
        let dir = tempfile::tempdir().unwrap();
        let mut conf = String::from(
            "NFS_CORE_PARAM { Bind_addr = 127.0.0.1; NFS_Port = 2049; MNT_Port = 20048; \
             Enable_NLM = false; Enable_RQUOTA = false; Protocols = 3, 4; }\n\
             NFSV4 { Graceless = true; }\nMDCACHE { Dir_Chunk = 0; }\n",
        );
        for (i, path) in exports.iter().enumerate() {
            let path = ganesha_string(path);
            conf.push_str(&format!(
                "EXPORT {{ Export_Id = {}; Path = {path}; Pseudo = {path}; Access_Type = RW; \
                 Squash = No_Root_Squash; Attr_Expiration_Time = 0; FSAL {{ Name = VFS; }} }}\n",
                i + 1
            ));
        }
        let conf_file = dir.path().join("ganesha.conf");
        std::fs::write(&conf_file, conf).unwrap();
        let log = dir.path().join("ganesha.log");
        let server = Command::new("ganesha.nfsd")
            .arg("-F")
            .arg("-f")
            .arg(&conf_file)
            .arg("-L")
            .arg(&log)
            .arg("-p")
            .arg(dir.path().join("ganesha.pid"))
            .args(["-N", "NIV_EVENT"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ganesha.nfsd starts");
        let mut ganesha = Ganesha { server, dir };
        wait_for("nfs-ganesha", Duration::from_secs(30), || {
            if let Ok(Some(status)) = ganesha.server.try_wait() {
                panic!("ganesha.nfsd exited ({status}):\n{}", ganesha.log());
            }
            ganesha.log().contains("NFS SERVER INITIALIZED")
        });
        ganesha
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ganesha.log")).unwrap_or_default()
    }
}

impl Drop for Ganesha {
    fn drop(&mut self) {
        // SIGTERM lets it unregister from rpcbind; it takes 1–3 s to exit.
        // SAFETY: kill(2) on our own child's PID.
        unsafe {
            libc::kill(self.server.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.server.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// A path as a string of ganesha's configuration language: in double quotes, with `"` and `\`
/// escaped by a backslash.
fn ganesha_string(path: &Path) -> String {
    let text = path.to_str().expect("a UTF-8 path");
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
