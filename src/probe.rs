//! The mount probe: a file with a fresh token written in the source tree on the host and read
//! back inside the VM through the NFS mount. It is the one check that the VM sees the host's
//! files *now* (a mount in `/proc/mounts` may be stale or served by a dead server). `up` reads it
//! together with `/proc/mounts` in the one `minikube ssh` that also tells whether the VM runs, so
//! a no-op `up` pays one SSH session for all three; the mount stage reads it again after a mount.

use std::path::{Path, PathBuf};

/// A probe file on the host, removed when dropped.
#[derive(Debug)]
pub struct Probe {
    host_file: PathBuf,
    /// The same file as the VM sees it under the mount target.
    pub vm_file: String,
    token: String,
}

/// The probe file could not be written in the source tree.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the probe {}: {source}", path.display())]
pub struct ProbeError {
    pub path: std::path::PathBuf,
    pub source: std::io::Error,
}

impl Probe {
    /// Write a new probe in `host_dir`, to be read at `vm_dir` in the VM.
    pub fn write(host_dir: &Path, vm_dir: &str) -> Result<Probe, ProbeError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!(".devenv-probe-{}-{nanos}", std::process::id());
        let token = format!("devenv probe {nanos}");
        let host_file = host_dir.join(&name);
        std::fs::write(&host_file, &token).map_err(|source| ProbeError {
            path: host_file.clone(),
            source,
        })?;
        Ok(Probe {
            host_file,
            vm_file: format!("{}/{name}", vm_dir.trim_end_matches('/')),
            token,
        })
    }

    /// Whether `output` (a `cat` of the probe in the VM, alone or after other files, CRLF line
    /// ends from minikube's pty) holds the token on a line of its own.
    pub fn seen_in(&self, output: &str) -> bool {
        output
            .split('\n')
            .any(|l| l.trim_end_matches('\r') == self.token)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.host_file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_seen_only_with_its_own_token_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let probe = Probe::write(dir.path(), "/src/").unwrap();
        assert!(probe.vm_file.starts_with("/src/.devenv-probe-"));
        let on_host =
            std::fs::read_to_string(dir.path().join(probe.vm_file.trim_start_matches("/src/")))
                .unwrap();
        assert!(probe.seen_in(&format!("/dev/vda1 / ext4 rw 0 0\r\n{on_host}\r\n")));
        assert!(probe.seen_in(&on_host));
        assert!(!probe.seen_in("devenv probe 1\r\n"));
        assert!(!probe.seen_in(&format!("x{on_host}")));
        drop(probe);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
