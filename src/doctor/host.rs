//! Checks of the Linux host's kernel settings that the seed found slowing everything down or that
//! break file watching: the CPU frequency governor and the inotify limits.
//!
//! Every reader takes the root of `/sys` or `/proc` as a parameter so the tests can point it at
//! fixture trees; `devenv doctor` passes the real ones. Nothing here writes: the fixes are
//! printed for the user to run.

use std::path::Path;

use devenv_drivers::Check;

use super::{anchor, doc};

/// What `devenv watch` needs per watched directory is one inotify watch; editors and other
/// watchers take their share of the same per-user limit, hence the factor.
const WATCH_HEADROOM: usize = 2;

/// A value for `max_user_watches` that covers most monorepos; raised further for larger trees.
const RECOMMENDED_WATCHES: usize = 524_288;

/// Fewer free inotify instances than this and the next editor or watcher may fail to start.
const MIN_FREE_INSTANCES: u64 = 16;

const RECOMMENDED_INSTANCES: u64 = 512;

/// The scaling governor of each CPU that exposes one (`cpuN`, governor), sorted by CPU number.
/// Empty when the kernel exposes no cpufreq (VMs, containers, fixed-frequency machines).
pub fn governors(sys: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(sys.join("devices/system/cpu")) else {
        return Vec::new();
    };
    let mut out: Vec<(u32, String, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n: u32 = name.strip_prefix("cpu")?.parse().ok()?;
            let governor =
                std::fs::read_to_string(e.path().join("cpufreq/scaling_governor")).ok()?;
            Some((n, name, governor.trim().to_string()))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, name, g)| (name, g)).collect()
}

/// The cpufreq driver (`intel_pstate`, `acpi-cpufreq`, `amd-pstate`…), for the message.
pub fn cpufreq_driver(sys: &Path) -> Option<String> {
    std::fs::read_to_string(sys.join("devices/system/cpu/cpu0/cpufreq/scaling_driver"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `powersave` on any CPU is the seed's first finding: services ran slower on new servers until
/// the governor was switched to `performance`.
pub fn governor_check(governors: &[(String, String)], driver: Option<&str>) -> Check {
    const ID: &str = "host.cpu-governor";
    if governors.is_empty() {
        return Check::ok(
            ID,
            "CPU frequency scaling is not exposed (VM or fixed frequency): nothing to tune",
        );
    }
    let slow: Vec<&str> = governors
        .iter()
        .filter(|(_, g)| g == "powersave")
        .map(|(cpu, _)| cpu.as_str())
        .collect();
    let via = driver.map(|d| format!(" ({d})")).unwrap_or_default();
    if slow.is_empty() {
        let mut kinds: Vec<&str> = governors.iter().map(|(_, g)| g.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        return Check::ok(
            ID,
            format!(
                "CPU governor {}{via} on {} CPUs",
                kinds.join(", "),
                governors.len()
            ),
        );
    }
    Check::warn(
        ID,
        format!(
            "{} of {} CPUs use the powersave governor{via}: the seed's services ran measurably slower until it was switched to performance",
            slow.len(),
            governors.len()
        ),
        "sudo cpupower frequency-set -g performance   (or: echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)",
        &doc(anchor::CPU_GOVERNOR),
    )
}

/// The per-user inotify limits and how many instances this user already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inotify {
    pub max_user_watches: Option<u64>,
    pub max_user_instances: Option<u64>,
    /// Inotify instances open in processes of `uid`; `None` when `/proc` cannot be read.
    pub instances_in_use: Option<u64>,
}

/// Read the limits under `proc/sys/fs/inotify` and count the inotify file descriptors of the
/// processes owned by `uid` (an open fd that links to `anon_inode:inotify` is one instance).
pub fn read_inotify(proc: &Path, uid: u32) -> Inotify {
    let number = |name: &str| {
        std::fs::read_to_string(proc.join("sys/fs/inotify").join(name))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    };
    Inotify {
        max_user_watches: number("max_user_watches"),
        max_user_instances: number("max_user_instances"),
        instances_in_use: count_instances(proc, uid),
    }
}

fn count_instances(proc: &Path, uid: u32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut count = 0;
    for entry in std::fs::read_dir(proc).ok()?.filter_map(Result::ok) {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if entry.metadata().map(|m| m.uid()).ok() != Some(uid) {
            continue;
        }
        // Another user's process, or one that just exited: not ours to count.
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        count += fds
            .filter_map(Result::ok)
            .filter(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| target.as_os_str() == "anon_inode:inotify")
            })
            .count() as u64;
    }
    Some(count)
}

/// `devenv watch` takes one watch per directory of the source tree; with less than twice that
/// in the limit, it (or the editor beside it) fails with "no space left on device".
pub fn watches_check(limits: &Inotify, dirs: Option<usize>) -> Check {
    const ID: &str = "host.inotify-watches";
    let Some(max) = limits.max_user_watches else {
        return Check::ok(ID, "inotify limits are not readable here: nothing to check");
    };
    let Some(dirs) = dirs else {
        return Check::ok(
            ID,
            format!("fs.inotify.max_user_watches = {max} (no project here to compare it with)"),
        );
    };
    let needed = dirs.saturating_mul(WATCH_HEADROOM);
    if max >= needed as u64 {
        return Check::ok(
            ID,
            format!(
                "fs.inotify.max_user_watches = {max}, enough for the {dirs} directories of the source tree"
            ),
        );
    }
    let want = RECOMMENDED_WATCHES.max(needed.next_power_of_two());
    Check::warn(
        ID,
        format!(
            "fs.inotify.max_user_watches = {max}, but the source tree has {dirs} directories (one watch each, and editors need their share): watching will fail with \"no space left on device\""
        ),
        format!(
            "sudo sysctl fs.inotify.max_user_watches={want} && echo fs.inotify.max_user_watches={want} | sudo tee /etc/sysctl.d/90-devenv-inotify.conf"
        ),
        &doc(anchor::INOTIFY_WATCHES),
    )
}

/// Each watching program (devenv, every editor window, webpack…) holds one instance; the default
/// limit of 128 runs out on busy desktops, and the next watcher then fails to start.
pub fn instances_check(limits: &Inotify) -> Check {
    const ID: &str = "host.inotify-instances";
    let Some(max) = limits.max_user_instances else {
        return Check::ok(ID, "inotify limits are not readable here: nothing to check");
    };
    let used = limits.instances_in_use.unwrap_or(0);
    let free = max.saturating_sub(used);
    let in_use = limits
        .instances_in_use
        .map(|n| format!(", {n} in use"))
        .unwrap_or_default();
    if free >= MIN_FREE_INSTANCES {
        return Check::ok(ID, format!("fs.inotify.max_user_instances = {max}{in_use}"));
    }
    Check::warn(
        ID,
        format!(
            "fs.inotify.max_user_instances = {max}{in_use}: {free} left, so the next watcher (devenv watch, an editor) may fail to start"
        ),
        format!(
            "sudo sysctl fs.inotify.max_user_instances={RECOMMENDED_INSTANCES} && echo fs.inotify.max_user_instances={RECOMMENDED_INSTANCES} | sudo tee /etc/sysctl.d/91-devenv-inotify-instances.conf"
        ),
        &doc(anchor::INOTIFY_INSTANCES),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use devenv_drivers::CheckState;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/doctor")
            .join(name)
    }

    #[test]
    fn powersave_on_any_cpu_warns_with_the_cpupower_fix() {
        let sys = fixture("sys-powersave");
        let g = governors(&sys);
        assert_eq!(
            g,
            vec![
                ("cpu0".to_string(), "powersave".to_string()),
                ("cpu1".to_string(), "powersave".to_string()),
                ("cpu2".to_string(), "performance".to_string()),
                ("cpu10".to_string(), "powersave".to_string()),
            ]
        );
        let c = governor_check(&g, cpufreq_driver(&sys).as_deref());
        assert_eq!(c.state, CheckState::Warn);
        assert!(
            c.reason
                .starts_with("3 of 4 CPUs use the powersave governor (intel_pstate)"),
            "{}",
            c.reason
        );
        assert!(
            c.fix
                .unwrap()
                .starts_with("sudo cpupower frequency-set -g performance")
        );
        assert_eq!(
            c.doc.as_deref(),
            Some(crate::doctor::doc("cpu-governor").as_str())
        );
    }

    #[test]
    fn performance_everywhere_is_ok() {
        let sys = fixture("sys-performance");
        let c = governor_check(&governors(&sys), cpufreq_driver(&sys).as_deref());
        assert_eq!(c.state, CheckState::Ok);
        assert_eq!(
            c.reason,
            "CPU governor performance (acpi-cpufreq) on 2 CPUs"
        );
    }

    #[test]
    fn no_cpufreq_directory_is_ok_and_says_why() {
        let sys = fixture("sys-no-cpufreq");
        let g = governors(&sys);
        assert!(g.is_empty());
        let c = governor_check(&g, None);
        assert_eq!(c.state, CheckState::Ok);
        assert!(c.reason.contains("not exposed (VM or fixed frequency)"));
        assert!(governors(&fixture("does-not-exist")).is_empty());
    }

    #[test]
    fn watches_below_twice_the_directories_warn_with_sysctl_and_persistence() {
        let limits = read_inotify(&fixture("proc-low-inotify"), u32::MAX);
        assert_eq!(limits.max_user_watches, Some(8192));
        assert_eq!(limits.max_user_instances, Some(128));
        let c = watches_check(&limits, Some(5000));
        assert_eq!(c.state, CheckState::Warn);
        assert!(c.reason.contains("5000 directories"), "{}", c.reason);
        let fix = c.fix.unwrap();
        assert!(
            fix.starts_with("sudo sysctl fs.inotify.max_user_watches=524288"),
            "{fix}"
        );
        assert!(fix.contains("/etc/sysctl.d/"), "{fix}");
        assert_eq!(watches_check(&limits, Some(4096)).state, CheckState::Ok);
    }

    #[test]
    fn a_tree_larger_than_the_recommendation_gets_a_larger_number() {
        let limits = Inotify {
            max_user_watches: Some(524_288),
            ..Inotify::default()
        };
        let c = watches_check(&limits, Some(400_000));
        assert!(c.fix.unwrap().contains("max_user_watches=1048576"));
    }

    #[test]
    fn without_a_project_the_limit_is_only_reported() {
        let limits = read_inotify(&fixture("proc-low-inotify"), u32::MAX);
        let c = watches_check(&limits, None);
        assert_eq!(c.state, CheckState::Ok);
        assert!(c.reason.contains("8192"));
    }

    #[test]
    fn instances_nearly_used_up_warn() {
        let mut limits = read_inotify(&fixture("proc-low-inotify"), u32::MAX);
        assert_eq!(limits.instances_in_use, Some(0), "no process of that uid");
        assert_eq!(instances_check(&limits).state, CheckState::Ok);
        limits.instances_in_use = Some(120);
        let c = instances_check(&limits);
        assert_eq!(c.state, CheckState::Warn);
        assert!(c.reason.contains("120 in use: 8 left"), "{}", c.reason);
        assert!(c.fix.unwrap().contains("max_user_instances=512"));
    }

    #[test]
    fn inotify_descriptors_of_the_users_processes_are_counted() {
        use std::os::unix::fs::symlink;
        let proc = tempfile::tempdir().unwrap();
        let fd = proc.path().join("4242/fd");
        std::fs::create_dir_all(&fd).unwrap();
        symlink("anon_inode:inotify", fd.join("3")).unwrap();
        symlink("anon_inode:inotify", fd.join("4")).unwrap();
        symlink("/dev/null", fd.join("0")).unwrap();
        std::fs::create_dir_all(proc.path().join("self/fd")).unwrap();
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        assert_eq!(read_inotify(proc.path(), me).instances_in_use, Some(2));
        assert_eq!(
            read_inotify(proc.path(), me.wrapping_add(1)).instances_in_use,
            Some(0)
        );
    }
}
