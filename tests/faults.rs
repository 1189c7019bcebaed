//! Fault injection: devenv killed at random points of `exports apply|remove` and of `up`, many
//! writers of the exports file at once with their own temp directories, and a tool that hangs.
//! Each part prints its figures (runs and outcomes) like a benchmark and asserts what must hold
//! whatever the timing: no partial or lost block, no foreign byte lost, no process left behind
//! by a signal devenv can catch, no wait without a bound.
//!
//! Closed pipes and full disks are in `tests/cli.rs` (every command, `> /dev/full` and `| true`).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Env;

const FOREIGN: &str = "# hand-written\n/srv/share 10.0.0.5(ro,no_subtree_check)\n";

/// A benchmark-style table of what happened: one line per outcome with its count.
struct Figures {
    title: &'static str,
    rows: Vec<(String, u64)>,
}

impl Figures {
    fn new(title: &'static str) -> Figures {
        Figures {
            title,
            rows: Vec::new(),
        }
    }

    fn add(&mut self, what: impl Into<String>, n: u64) {
        let what = what.into();
        match self.rows.iter_mut().find(|(w, _)| *w == what) {
            Some((_, count)) => *count += n,
            None => self.rows.push((what, n)),
        }
    }

    fn get(&self, what: &str) -> u64 {
        self.rows
            .iter()
            .find(|(w, _)| w == what)
            .map_or(0, |(_, n)| *n)
    }
}

impl Drop for Figures {
    fn drop(&mut self) {
        eprintln!("\n{}", self.title);
        for (what, n) in &self.rows {
            eprintln!("  {what:<58} {n:>6}");
        }
    }
}

/// A small xorshift: the same "random" points on every run, so a failure can be replayed.
struct Points(u64);

impl Points {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn devenv_in(env: &Env, dir: &Path) -> Command {
    let mut cmd = env.background();
    cmd.current_dir(dir)
        .env("DEVENV_EXPORTS_RELOAD", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn temp_files_beside(file: &Path) -> usize {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!(".{name}.devenv-"))
        })
        .count()
}

#[test]
fn exports_apply_and_remove_killed_at_random_points_leave_the_old_or_the_new_file() {
    let env = Env::new();
    env.example();
    // A large foreign part, so that a kill in the middle of writing is likely.
    let big: String = FOREIGN.to_string()
        + &(0..20_000)
            .map(|i| format!("# foreign comment line {i}\n"))
            .collect::<String>();
    std::fs::write(&env.exports, &big).unwrap();
    // The NFS server, as far as this test can tell: a reload that takes a while and then
    // serves the file as it read it. A kill while it runs leaves the server behind the file.
    let served = env.home.path().join("served-exports");
    let reload = env.home.path().join("reload-exports");
    std::fs::write(
        &reload,
        format!(
            "#!/bin/sh\nsleep 0.05\ncp {} {}\n",
            env.exports.display(),
            served.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&reload, std::fs::Permissions::from_mode(0o755)).unwrap();
    let devenv = |action: &str| {
        let mut cmd = devenv_in(&env, &env.project);
        cmd.env("DEVENV_EXPORTS_RELOAD", &reload)
            .args(["exports", action]);
        cmd
    };
    let server_behind = || std::fs::read(&served).ok() != std::fs::read(&env.exports).ok();
    let started = Instant::now();
    assert!(devenv("apply").status().unwrap().success());
    // Kills land anywhere from the start to twice a whole run's time, so some come before the
    // commit, some after, and some while the file is being written.
    let whole_run = started.elapsed().as_micros() as u64;
    let with_block = std::fs::read_to_string(&env.exports).unwrap();
    let mut figures = Figures::new("exports apply|remove killed at random points");
    figures.add(
        "microseconds of a whole run (the kills span twice that)",
        whole_run,
    );
    let mut points = Points(0x9e37_79b9_7f4a_7c15);
    for i in 0..150 {
        let action = if i % 2 == 0 { "remove" } else { "apply" };
        let mut child = devenv(action).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(points.next(2 * whole_run)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        figures.add("runs", 1);
        figures.add(
            if status.code().is_some() {
                "finished before the kill"
            } else {
                "killed"
            },
            1,
        );
        let now = std::fs::read_to_string(&env.exports).unwrap_or_default();
        figures.add(
            if now == big {
                "file without the block afterwards"
            } else if now == with_block {
                "file with the block afterwards"
            } else {
                "partial or corrupted file"
            },
            1,
        );
        if !now.starts_with(&big[..FOREIGN.len()]) || now.len() < big.len() {
            figures.add("foreign bytes lost", 1);
        }
        if server_behind() {
            figures.add("kills that left the server behind the file", 1);
            // The command that finds nothing to change in the file must still finish the
            // reload the killed one owed.
            let nothing_to_change = if now == big { "remove" } else { "apply" };
            assert!(devenv(nothing_to_change).status().unwrap().success());
            figures.add(
                if server_behind() {
                    "server still behind after the next command"
                } else {
                    "server caught up by the next command"
                },
                1,
            );
        }
    }
    figures.add(
        "temp files beside the exports file",
        temp_files_beside(&env.exports) as u64,
    );
    // The next writer finishes any of it and clears what killed writers left.
    assert!(devenv("apply").status().unwrap().success());
    figures.add(
        "temp files left after the next apply",
        temp_files_beside(&env.exports) as u64,
    );
    assert_eq!(std::fs::read_to_string(&env.exports).unwrap(), with_block);
    // The kills did fall on both sides of the commit, or the run proved nothing.
    assert!(figures.get("killed") > 0 && figures.get("finished before the kill") > 0);
    assert!(figures.get("file without the block afterwards") > 0);
    assert_eq!(figures.get("partial or corrupted file"), 0);
    assert_eq!(figures.get("foreign bytes lost"), 0);
    assert_eq!(figures.get("temp files left after the next apply"), 0);
    assert!(figures.get("kills that left the server behind the file") > 0);
    assert_eq!(figures.get("server still behind after the next command"), 0);
    assert!(!server_behind());
}

#[test]
fn concurrent_writers_with_their_own_temp_dirs_never_lose_a_block() {
    let env = Env::new();
    std::fs::write(&env.exports, FOREIGN).unwrap();
    let writers = 6;
    let rounds = 5;
    let mut projects = Vec::new();
    for n in 0..writers {
        let dir = env.home.path().join(format!("p{n}"));
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let name = format!("shop{n}");
        env.devenv()
            .current_dir(&dir)
            .args(["init", "--example", "--name", &name])
            .assert()
            .success();
        projects.push((dir, name));
    }
    let mut figures = Figures::new("concurrent exports writers, each with its own TMPDIR");
    for round in 0..rounds {
        // Half apply, half remove, all at once; every writer its own temp directory, as
        // per-user TMPDIRs on macOS, `nix develop` or sudo give them.
        let children: Vec<_> = projects
            .iter()
            .enumerate()
            .map(|(n, (dir, _))| {
                let action = if (n + round) % 3 == 0 {
                    "remove"
                } else {
                    "apply"
                };
                let child = devenv_in(&env, dir)
                    .env("TMPDIR", dir.join("tmp"))
                    .args(["exports", action])
                    .spawn()
                    .unwrap();
                (action, child)
            })
            .collect();
        let mut expected = Vec::new();
        for ((action, mut child), (_, name)) in children.into_iter().zip(&projects) {
            let ok = child.wait().unwrap().success();
            figures.add("runs", 1);
            figures.add(if ok { "exited 0" } else { "exited non-zero" }, 1);
            expected.push((name, action == "apply"));
        }
        let text = std::fs::read_to_string(&env.exports).unwrap();
        assert!(text.starts_with(FOREIGN), "round {round}: foreign part");
        for (name, present) in expected {
            let blocks = text.matches(&format!("# BEGIN devenv {name} uid=")).count();
            match (present, blocks) {
                (true, 1) | (false, 0) => figures.add("blocks as their writer left them", 1),
                (true, 0) => figures.add("blocks lost", 1),
                _ => figures.add("blocks duplicated or left behind", 1),
            }
        }
    }
    assert_eq!(figures.get("exited non-zero"), 0);
    assert_eq!(figures.get("blocks lost"), 0);
    assert_eq!(figures.get("blocks duplicated or left behind"), 0);
}

/// Processes of this machine whose environment holds `DEVENV_FAULT_RUN=marker` (every child of
/// a devenv run inherits it), with their command lines.
fn marked_processes(marker: &str) -> Vec<(u32, String)> {
    let needle = format!("DEVENV_FAULT_RUN={marker}");
    support::procs::all()
        .into_iter()
        .filter(|p| p.has_env(&needle))
        .map(|p| (p.pid, p.command()))
        .collect()
}

#[test]
fn up_stopped_by_a_signal_at_random_points_leaves_no_process_behind() {
    if !support::is_root() {
        eprintln!("skipping: reading other processes' environments needs root (CI runs as root)");
        return;
    }
    let mut figures = Figures::new("up stopped by a signal at a random point");
    let mut points = Points(0x2545_f491_4f6c_dd1d);
    let signals = [
        ("SIGINT", libc::SIGINT),
        ("SIGTERM", libc::SIGTERM),
        ("SIGHUP", libc::SIGHUP),
        ("SIGKILL", libc::SIGKILL),
    ];
    for (run, (name, signal)) in signals.iter().cycle().take(24).enumerate() {
        let env = Env::new().kvm_host();
        env.example();
        let marker = format!("{}-{run}", std::process::id());
        // `minikube start` takes 30 s and runs a child of its own, as the driver and ssh are:
        // whatever is found running later was left, not still finishing.
        let mut child = env
            .background()
            .env("DEVENV_FAULT_RUN", &marker)
            .env("FAKE_MINIKUBE_START_SLEEP", "30")
            .arg("up")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200 + points.next(1500)));
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(child.id() as i32, *signal);
        }
        figures.add(format!("{name}: running after the next devenv command"), 0);
        let stopped = Instant::now();
        let status = child.wait().unwrap();
        figures.add(format!("{name}: runs"), 1);
        figures.add(
            format!(
                "{name}: exit {}",
                status
                    .code()
                    .map_or("by the signal".to_string(), |c| c.to_string())
            ),
            1,
        );
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "{name}: devenv took {:?} to stop",
            stopped.elapsed()
        );
        std::thread::sleep(Duration::from_millis(300));
        for (pid, cmdline) in marked_processes(&marker) {
            let direct = cmdline.contains("minikube");
            figures.add(
                format!(
                    "{name}: {} running after the signal",
                    if direct { "children" } else { "grandchildren" }
                ),
                1,
            );
            eprintln!("  {name}: running after the signal: {pid} {cmdline}");
        }
        // The next devenv, whatever the command, stops what a killed one left.
        let next = env
            .background()
            .args(["completions", "bash"])
            .output()
            .unwrap();
        assert!(next.status.success());
        std::thread::sleep(Duration::from_millis(100));
        for (pid, cmdline) in marked_processes(&marker) {
            figures.add(format!("{name}: running after the next devenv command"), 1);
            eprintln!("  {name}: left: {pid} {cmdline}");
            // SAFETY: cleaning up a process this test caused.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
    for (name, _) in &signals[..3] {
        assert_eq!(
            figures.get(&format!("{name}: children running after the signal")),
            0
        );
        assert_eq!(
            figures.get(&format!("{name}: grandchildren running after the signal")),
            0
        );
    }
    // SIGKILL cannot be caught: the kernel kills devenv's direct child (parent-death signal),
    // and what that child started runs until the next devenv command stops its group.
    assert_eq!(figures.get("SIGKILL: children running after the signal"), 0);
    for (name, _) in &signals {
        assert_eq!(
            figures.get(&format!("{name}: running after the next devenv command")),
            0
        );
    }
}

#[test]
fn a_helm_that_hangs_is_stopped_at_its_bound_and_named() {
    let Some((env, _api)) = support::cluster_env() else {
        return;
    };
    // A helm that never answers for `upgrade` (a cluster that accepts connections and never
    // replies looks the same to devenv), with a 1 s rollout timeout: the bound is 11 s.
    let bin = env.home.path().join("hanging-helm");
    std::fs::create_dir_all(&bin).unwrap();
    let real = support::real_tool("helm").unwrap();
    std::fs::write(
        bin.join("helm"),
        format!(
            "#!/bin/sh\ncase \"$1\" in upgrade) exec sleep 600;; esac\nexec '{}' \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        bin.join("helm"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let env = env.prepend_path(&bin);
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    env.write(
        "devenv.toml",
        &toml.replace(
            "values = [\"deploy/values-dev.yaml\"]",
            "values = [\"deploy/values-dev.yaml\"]\nrollout_timeout = \"1s\"",
        ),
    );
    let started = Instant::now();
    let out = env.devenv().arg("up").output().unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut figures = Figures::new("a hanging helm upgrade");
    figures.add("seconds until up gave up", took.as_secs());
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not finish within 11s"), "{stderr}");
    assert!(stderr.contains("helm upgrade --install shop"), "{stderr}");
    assert!(took < Duration::from_secs(30), "{took:?}");
}
