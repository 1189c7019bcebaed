//! The kernel's inotify queue overflowing for real (IN_Q_OVERFLOW): `devenv watch` must say so
//! and find the changes by a rescan, none lost.
//!
//! The queue's size is `fs.inotify.max_queued_events`, a machine-wide setting that the kernel
//! reads when an inotify instance is created. It is lowered only while this watcher starts and
//! restored as soon as it is ready (and on any panic), which is why this test is a binary of its
//! own: no other test of this crate runs meanwhile. It needs root to write the setting.

mod support;

use std::collections::BTreeSet;
use support::Env;
use support::watcher::{Watch, paths_of, project};

const QUEUE: &str = "/proc/sys/fs/inotify/max_queued_events";

/// The setting as it was, written back when dropped.
struct Restore(String);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(QUEUE, &self.0);
    }
}

#[test]
fn an_overflowing_kernel_queue_is_reported_and_rescanned_with_every_change_found() {
    let Ok(before) = std::fs::read_to_string(QUEUE) else {
        eprintln!("skipping: no {QUEUE} here");
        return;
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root to lower {QUEUE}"
        );
        eprintln!("skipping: lowering {QUEUE} needs root");
        return;
    }
    let env = Env::new();
    project(
        &env,
        "[services.api]\nwatch = [\"src/**\"]\non_change = \"none\"\n",
    );
    for d in 0..20 {
        env.write(&format!("src/d{d}/.keep"), "");
    }
    let w = {
        let _restore = Restore(before.clone());
        std::fs::write(QUEUE, "16").unwrap();
        Watch::start(&env, 100, &["--max-batches", "1"])
    };
    assert_eq!(std::fs::read_to_string(QUEUE).unwrap(), before, "restored");

    // 2,000 new files in one go: far more events than a queue of 16 holds. The watcher is
    // stopped (SIGSTOP) meanwhile, so it cannot drain the queue as fast as the files are
    // written: the overflow happens on every machine, however fast its reader.
    let pid = libc::pid_t::try_from(w.child.id()).unwrap();
    // SAFETY: kill has no memory preconditions; the pid is our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    // kill() returns before the signal is acted on: a thread still running reads the first
    // events and starts a quiet period, which then ends (on resume) before the overflow is
    // read, and the one batch this run allows goes out without it. Write only once every
    // thread has stopped.
    wait_stopped(pid);
    let mut written = BTreeSet::new();
    for i in 0..2000 {
        let rel = format!("src/d{}/f{i}.txt", i % 20);
        std::fs::write(env.project.join(&rel), "x").unwrap();
        written.insert(rel);
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let rescan = w.next("rescan");
    assert!(
        rescan["message"]
            .as_str()
            .unwrap()
            .contains("event queue overflowed"),
        "{rescan}"
    );
    // The rescan reports every file as possibly changed, the chart's among them, whose action
    // (`up`) fails on this machine without KVM: the exit code says so (1), and is not what
    // this test is about.
    let (actions, status) = w.actions_and_exit();
    assert!(matches!(status.code(), Some(0 | 1)), "{status}");
    let got: BTreeSet<String> = actions.iter().flat_map(paths_of).collect();
    let missing: Vec<&String> = written.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "{} of {} changes lost, e.g. {:?}",
        missing.len(),
        written.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Until every thread of `pid` is in the stopped state ("T" in `/proc/<pid>/task/*/stat`).
fn wait_stopped(pid: libc::pid_t) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the watcher's threads");
        let all_stopped = tasks.flatten().all(|t| {
            std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
                // The state follows the command name, which is in parentheses.
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
            })
        });
        if all_stopped {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "devenv watch did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
