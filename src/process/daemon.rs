//! Background processes that outlive the command that started them (the tunnel supervisor):
//! started detached from the terminal, with their output appended to a log file, and stopped by
//! pid. Kept here with the rest of process handling so no other module starts or signals one.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The running devenv binary, so a supervisor is the same version as the command starting it.
pub fn self_exe() -> std::io::Result<PathBuf> {
    std::env::current_exe()
}

/// Start `program args` in a new session (no controlling terminal, so closing the shell or a
/// Ctrl-C in it does not reach it), stdin from /dev/null, stdout and stderr appended to `log`.
/// Returns its pid; the caller does not wait for it.
pub fn spawn_detached(program: &Path, args: &[&str], log: &Path) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    let out = OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let pid = child.id();
    // Reap it from a thread so an early exit leaves no zombie behind while this command runs.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(pid)
}

/// How to ask a process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: finish cleanly.
    Term,
    /// SIGKILL: for a process that did not stop when asked.
    Kill,
}

/// Send `how` to `pid`. A process that is already gone is not an error.
pub fn signal(pid: u32, how: Stop) -> std::io::Result<()> {
    let sig = match how {
        Stop::Term => libc::SIGTERM,
        Stop::Kill => libc::SIGKILL,
    };
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill has no memory effects; a positive pid names one process.
    if unsafe { libc::kill(pid, sig) } == -1 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(())
}

/// Whether a process with this pid exists (a child that exited is reaped by [`spawn_detached`]).
pub fn exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn alive(pid: u32) -> bool {
        exists(pid)
    }

    #[test]
    fn a_detached_process_writes_to_its_log_and_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let pid = spawn_detached(
            Path::new("/bin/sh"),
            &["-c", "echo started; exec sleep 30"],
            &log,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&log).unwrap_or_default() != "started\n" {
            assert!(Instant::now() < deadline, "the log never got the output");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(alive(pid));
        signal(pid, Stop::Term).unwrap();
        while alive(pid) {
            assert!(Instant::now() < deadline, "the process did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Signalling a process that is gone is fine: `down` may race with its exit.
        signal(pid, Stop::Term).unwrap();
    }
}
