//! Process groups devenv started and could not stop itself.
//!
//! Each program devenv runs leads its own process group, which devenv kills on Ctrl-C, SIGTERM,
//! SIGHUP or a timeout. SIGKILL of devenv cannot be caught: the kernel's parent-death signal
//! then kills the direct child, but what that child started (minikube's driver and ssh, helm's
//! plugins) would run on. So every running group is recorded in a small file, removed when the
//! program ends or is stopped; the next devenv, whatever the command, stops the groups whose
//! devenv is gone.
//!
//! Identity is checked by start times (`/proc/<pid>/stat`), never by pid alone: a recorded
//! devenv that still runs keeps its groups, and a group id whose leader pid now belongs to
//! another process is left alone. While any member of a group lives, the kernel does not hand
//! its id out again, so killing an existing group of a recorded id reaches only its members.
//! Linux only: elsewhere nothing is recorded.

use std::path::{Path, PathBuf};

/// The directory of records, one file per running group named by its id.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

/// A group on record; the record goes when this is dropped.
#[derive(Debug)]
pub struct Record {
    path: PathBuf,
}

impl Drop for Record {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// When `pid` started (clock ticks since boot), from `/proc/<pid>/stat`; `None` when there is
/// no such process (or no /proc).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces; field 22 is the start
    // time, the 20th after the closing parenthesis.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Registry {
    pub fn new(dir: impl Into<PathBuf>) -> Registry {
        Registry { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Record the group `pgid`, whose leader just started, as this devenv's.
    pub fn record(&self, pgid: u32) -> Option<Record> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        let me = std::process::id();
        let line = format!("{me} {} {}\n", start_time(me)?, start_time(pgid)?);
        std::fs::create_dir_all(&self.dir).ok()?;
        let path = self.dir.join(pgid.to_string());
        std::fs::write(&path, line).ok()?;
        Some(Record { path })
    }

    /// Stop every recorded group whose devenv is gone, and forget it. Returns how many groups
    /// were stopped.
    pub fn reap(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut stopped = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(pgid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let fields: Vec<u64> = text
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            let [owner, owner_start, leader_start] = fields[..] else {
                let _ = std::fs::remove_file(&path);
                continue;
            };
            let owner_alive = u32::try_from(owner)
                .ok()
                .and_then(start_time)
                .is_some_and(|t| t == owner_start);
            if owner_alive {
                continue;
            }
            // The leader's pid now names another process: the recorded group is gone.
            let reused = start_time(pgid).is_some_and(|t| t != leader_start);
            if !reused
                && let Ok(id) = i32::try_from(pgid)
                // SAFETY: kill has no memory effects; a negative id names the group only.
                && unsafe { libc::kill(-id, libc::SIGKILL) } == 0
            {
                stopped += 1;
            }
            let _ = std::fs::remove_file(&path);
        }
        stopped
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn spawn_group() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap()
    }

    #[test]
    fn a_group_of_a_devenv_that_is_gone_is_stopped_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path());
        let mut child = spawn_group();
        let pgid = child.id();
        let record = registry.record(pgid).expect("recorded");
        // This devenv still runs: its group is left alone.
        assert_eq!(registry.reap(), 0);
        // As if recorded by a devenv that was killed: pid 1 with another start time.
        std::mem::forget(record);
        let path = dir.path().join(pgid.to_string());
        let line = std::fs::read_to_string(&path).unwrap();
        let leader = line.split_whitespace().nth(2).unwrap();
        std::fs::write(&path, format!("1 0 {leader}\n")).unwrap();
        assert_eq!(registry.reap(), 1);
        assert!(!child.wait().unwrap().success(), "killed");
        assert!(!path.exists());
    }

    #[test]
    fn a_record_whose_pid_now_names_another_process_is_only_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path());
        let mut child = spawn_group();
        let pgid = child.id();
        std::fs::write(dir.path().join(pgid.to_string()), "1 0 12345\n").unwrap();
        assert_eq!(registry.reap(), 0);
        assert!(child.try_wait().unwrap().is_none(), "still running");
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn a_finished_program_leaves_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(dir.path());
        let mut child = spawn_group();
        drop(registry.record(child.id()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let _ = child.kill();
        let _ = child.wait();
    }
}
