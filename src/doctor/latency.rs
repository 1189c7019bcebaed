//! Metadata latency, the seed's root cause: pages took about 5 s to load because every `stat`
//! through VirtualBox's shared folder was slow, and moving the source tree to NFS fixed it.
//!
//! The same sample of files is timed twice. On the host each `std::fs::metadata` call is timed
//! on its own, giving p50 and p99. Inside the VM one `minikube ssh` runs a small shell script
//! that times a single `stat` process over the whole batch with `date +%s%N`, minus a run over
//! one file (the cost of starting `stat` and `date`), and divides: per-file timing in a shell
//! would measure `fork` rather than `stat`, so the VM side gives a mean, not percentiles.
//! Paths are passed as separate, quoted arguments of `sh -c`, so no file name is ever
//! interpreted by a shell.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devenv_drivers::Check;

use super::{anchor, doc};
use crate::minikube;
use crate::process::Cmd;

/// Files timed on the host.
pub const HOST_SAMPLE: usize = 2000;

/// Files timed in the VM: fewer, because their names travel on one command line (Linux caps a
/// single argument, which `sh -c` receives the whole line as, at 128 KiB).
pub const VM_SAMPLE: usize = 500;

/// Bytes of file names sent to the VM at most.
const VM_NAME_BYTES: usize = 64 * 1024;

/// Mean `stat` time through the mount above which pages feel it: a request touching 5,000
/// files spends 5 s in `stat` alone, the seed's symptom.
pub const VM_SLOW: Duration = Duration::from_millis(1);

/// p99 on the host above which the host's own file system is the problem.
pub const HOST_SLOW: Duration = Duration::from_millis(5);

/// Timings of `stat` on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTiming {
    pub files: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub mean: Duration,
}

/// Time `std::fs::metadata` of each file (relative to `root`); files that vanished are left out.
pub fn time_host(root: &Path, files: &[PathBuf]) -> Option<HostTiming> {
    let paths: Vec<PathBuf> = files.iter().map(|f| root.join(f)).collect();
    let mut samples: Vec<Duration> = Vec::with_capacity(paths.len());
    for p in &paths {
        let start = Instant::now();
        let found = std::fs::metadata(p).is_ok();
        let took = start.elapsed();
        if found {
            samples.push(took);
        }
    }
    summarize(samples)
}

/// p50, p99 and mean of the samples (nearest rank); `None` when there are none.
pub fn summarize(mut samples: Vec<Duration>) -> Option<HostTiming> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let total: Duration = samples.iter().sum();
    Some(HostTiming {
        files: samples.len(),
        p50: percentile(&samples, 50),
        p99: percentile(&samples, 99),
        mean: total / samples.len() as u32,
    })
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// The script run in the VM, on one line so logs of the command stay one line: `$1` is the
/// mount point, the other arguments are file names relative to it. It prints one line:
/// `devenv-stat <files> <missing> <t0> <t1> <t2>` (nanoseconds), or `devenv-stat nodir`.
/// The clock is `date +%s%N` where `date` knows `%N` (GNU's does), else `/proc/uptime` in
/// nanoseconds: BusyBox's `date` is often built without `%N` and prints the letter, as a real
/// guest's BusyBox did. Its 10 ms steps still time the few hundred stats to a few percent at
/// the speeds that matter (a slow mount spends hundreds of milliseconds on them).
const VM_SCRIPT: &str = concat!(
    r#"cd "$1" 2>/dev/null || { echo "devenv-stat nodir"; exit 0; }; shift; "#,
    r#"case $(date +%N) in *[!0-9]*|'') now() { read -r u _ < /proc/uptime; echo "${u%.*}${u#*.}0000000"; } ;; "#,
    r#"*) now() { date +%s%N; } ;; esac; "#,
    r#"a=$(now); stat -c %i -- "$1" >/dev/null 2>&1; "#,
    r#"b=$(now); stat -c %i -- "$@" >/dev/null 2>&1; "#,
    r#"c=$(now); "#,
    r#"m=0; for f in "$@"; do [ -e "$f" ] || m=$((m+1)); done; "#,
    r#"echo "devenv-stat $# $m $a $b $c""#
);

/// The files sent to the VM: at most [`VM_SAMPLE`], and at most [`VM_NAME_BYTES`] of names.
pub fn vm_sample(files: &[PathBuf]) -> Vec<String> {
    let mut bytes = 0;
    files
        .iter()
        .take(VM_SAMPLE)
        .map(|f| f.to_string_lossy().into_owned())
        .take_while(|f| {
            bytes += f.len() + 3;
            bytes <= VM_NAME_BYTES
        })
        .collect()
}

/// `minikube ssh` running [`VM_SCRIPT`] over `files` under `target`. Read-only.
pub fn vm_probe(profile: &str, target: &str, files: &[String]) -> Cmd {
    let mut argv: Vec<&str> = vec!["sh", "-c", VM_SCRIPT, "sh", target];
    argv.extend(files.iter().map(String::as_str));
    minikube::ssh(profile, &argv)
        .read_only()
        .timeout(Duration::from_secs(120))
}

/// What the VM said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmTiming {
    pub files: usize,
    /// Names that do not exist under the mount point.
    pub missing: usize,
    pub per_file: Duration,
}

/// Read the script's output (CRLF line ends and other lines from the login shell tolerated).
pub fn parse_vm_output(
    text: &str,
    target: &str,
) -> Result<VmTiming, crate::unreadable::Unreadable> {
    let line = text
        .lines()
        .map(|l| l.trim_end_matches('\r').trim())
        .find_map(|l| l.strip_prefix("devenv-stat "))
        .ok_or_else(|| {
            format!(
                "no timing in the VM's answer: {:?}",
                crate::process::tail_lines(text, 2)
            )
        })?;
    if line == "nodir" {
        return Err(format!("{target} does not exist in the VM").into());
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let [files, missing, a, b, c] = words[..] else {
        return Err(format!("unexpected timing line {line:?}").into());
    };
    let count = |w: &str| {
        w.parse::<usize>()
            .map_err(|_| format!("unexpected timing line {line:?}"))
    };
    let ns = |w: &str| {
        w.parse::<u128>()
            .map_err(|_| "the VM's `date` cannot print nanoseconds (%N)".to_string())
    };
    let (files, missing) = (count(files)?, count(missing)?);
    let (a, b, c) = (ns(a)?, ns(b)?, ns(c)?);
    if files < 2 {
        return Err("too few files to time".into());
    }
    // (c - b) is process start-up plus every stat, (b - a) start-up plus one.
    let extra = (c.saturating_sub(b)).saturating_sub(b.saturating_sub(a));
    let per_file = extra / (files as u128 - 1);
    Ok(VmTiming {
        files,
        missing,
        per_file: Duration::from_nanos(u64::try_from(per_file).unwrap_or(u64::MAX)),
    })
}

/// The VM side, as far as it could be measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmSide {
    /// No project, or the VM is not running: host figures only.
    NotMeasured(String),
    Measured(VmTiming),
    Failed(String),
}

/// `9.0 s`, `1.2 ms`, `85 µs`.
pub fn human(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1e6 {
        format!("{:.1} s", us / 1e6)
    } else if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// The verdict. `mount_type` is what the mount check found at the target (for the fix).
pub fn latency_check(
    host: Option<&HostTiming>,
    vm: &VmSide,
    profile: &str,
    target: &str,
    mount_type: Option<&str>,
) -> Check {
    const ID: &str = "vm.stat-latency";
    let Some(host) = host else {
        return Check::ok(ID, "no files in the source tree to time");
    };
    let host_text = format!(
        "host: p50 {}, p99 {} over {} files",
        human(host.p50),
        human(host.p99),
        host.files
    );
    if host.p99 > HOST_SLOW {
        return Check::warn(
            ID,
            format!(
                "{host_text}: the host's own file system is slow (network home directory, on-access virus scanning, a failing disk), and every page load through the VM pays for it"
            ),
            "move the source tree to a local disk, or exclude it from on-access scanning",
            &doc(anchor::STAT_LATENCY),
        );
    }
    match vm {
        VmSide::NotMeasured(why) => Check::ok(ID, format!("{host_text}; {why}")),
        VmSide::Failed(why) => Check::warn(
            ID,
            format!("{host_text}; could not time stat in the VM: {why}"),
            minikube::ssh(profile, &["ls", "-la", target]).display(),
            &doc(anchor::STAT_LATENCY),
        ),
        VmSide::Measured(t) if t.missing == t.files => Check::warn(
            ID,
            format!(
                "{host_text}; none of {} sampled files exist under {target} in the VM: the source tree is not mounted there",
                t.files
            ),
            "devenv up",
            &doc(anchor::STAT_LATENCY),
        ),
        VmSide::Measured(t) => {
            let ratio = t.per_file.as_secs_f64() / host.mean.as_secs_f64().max(1e-9);
            let vm_text = format!(
                "VM ({target}): {} per stat (mean over {} files), {ratio:.0}× the host",
                human(t.per_file),
                t.files
            );
            if t.per_file <= VM_SLOW {
                return Check::ok(ID, format!("{host_text}; {vm_text}"));
            }
            let fix = match mount_type {
                Some("nfs" | "nfs4") => format!(
                    "{}, then `devenv up` (remounts with mount.options; keep its attribute cache, actimeo=60)",
                    minikube::ssh(profile, &["sudo", "umount", target]).display()
                ),
                _ => format!(
                    "minikube delete -p {profile} && devenv up   (recreates the VM on kvm2/vfkit with the NFS mount)"
                ),
            };
            Check::warn(
                ID,
                format!(
                    "{host_text}; {vm_text}: a request that stats 5,000 files spends {} in stat alone (the seed's 5 s page loads over vboxsf)",
                    human(t.per_file * 5000)
                ),
                fix,
                &doc(anchor::STAT_LATENCY),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devenv_drivers::CheckState;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn host(p50: u64, p99: u64, mean: u64) -> HostTiming {
        HostTiming {
            files: 2000,
            p50: us(p50),
            p99: us(p99),
            mean: us(mean),
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let s: Vec<Duration> = (1..=100).map(us).collect();
        assert_eq!(percentile(&s, 50), us(50));
        assert_eq!(percentile(&s, 99), us(99));
        assert_eq!(percentile(&[us(7)], 99), us(7));
        let t = summarize(vec![us(3), us(1), us(2)]).unwrap();
        assert_eq!((t.p50, t.p99, t.mean, t.files), (us(2), us(3), us(2), 3));
        assert_eq!(summarize(Vec::new()), None);
    }

    #[test]
    fn the_vm_line_gives_the_mean_cost_of_one_extra_stat() {
        // 501 files: 4 ms for one, 54 ms for all → 50 ms / 500 = 100 µs each.
        let text = "Welcome\r\ndevenv-stat 501 0 1000000000000000000 1000000000004000000 1000000000058000000\r\n";
        let t = parse_vm_output(text, "/src").unwrap();
        assert_eq!(
            t,
            VmTiming {
                files: 501,
                missing: 0,
                per_file: us(100)
            }
        );
    }

    #[test]
    fn a_missing_mount_point_or_date_without_nanoseconds_is_explained() {
        assert_eq!(
            parse_vm_output("devenv-stat nodir\r\n", "/src"),
            Err("/src does not exist in the VM".into())
        );
        let e = parse_vm_output("devenv-stat 3 0 170000000N 170000000N 170000001N", "/src")
            .unwrap_err();
        assert!(e.to_string().contains("%N"), "{e}");
        assert!(parse_vm_output("ssh: Process exited with status 1", "/src").is_err());
    }

    #[test]
    fn names_are_passed_as_quoted_words_never_interpreted() {
        let files = vec![
            "a b".to_string(),
            "$(reboot)".to_string(),
            "it's".to_string(),
        ];
        let cmd = vm_probe("devenv-shop", "/src", &files);
        let args: Vec<String> = cmd
            .get_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&args[..4], ["ssh", "-p", "devenv-shop", "--"]);
        assert_eq!(args.len(), 5, "one word for the VM's shell: {args:?}");
        assert!(
            args[4].ends_with(r#" sh /src 'a b' '$(reboot)' 'it'\''s'"#),
            "{}",
            args[4]
        );
        assert!(cmd.is_read_only());
    }

    #[test]
    fn the_script_times_stat_when_run_by_a_real_shell() {
        // The same line the VM's login shell receives, run by this machine's sh.
        let dir = tempfile::tempdir().unwrap();
        let names = ["plain", "with space", "$(touch pwned)", "-dash", "it's"];
        for n in names {
            std::fs::write(dir.path().join(n), "x").unwrap();
        }
        let files: Vec<String> = names
            .iter()
            .map(|s| s.to_string())
            .chain(["gone".to_string()])
            .collect();
        let cmd = vm_probe("p", &dir.path().to_string_lossy(), &files);
        let line = cmd.get_args()[4].to_string_lossy().into_owned();
        let runner = crate::process::SystemRunner::new(crate::process::detect_platform());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let out = rt
            .block_on(crate::process::Runner::run(
                &runner,
                &Cmd::new("sh").args(["-c", &line]),
            ))
            .unwrap();
        let t = parse_vm_output(&out.stdout, "/x").unwrap();
        assert_eq!((t.files, t.missing), (6, 1));
        assert!(!dir.path().join("pwned").exists());
    }

    #[test]
    fn the_vm_sample_is_bounded_by_count_and_bytes() {
        let many: Vec<PathBuf> = (0..2000).map(|i| PathBuf::from(format!("f{i}"))).collect();
        assert_eq!(vm_sample(&many).len(), VM_SAMPLE);
        let long: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("{i}{}", "x".repeat(2000))))
            .collect();
        assert!(vm_sample(&long).len() < 40);
    }

    #[test]
    fn nfs_speed_through_the_vm_is_ok_and_reports_the_ratio() {
        let vm = VmSide::Measured(VmTiming {
            files: 500,
            missing: 0,
            per_file: us(150),
        });
        let c = latency_check(
            Some(&host(2, 20, 3)),
            &vm,
            "devenv-shop",
            "/src",
            Some("nfs"),
        );
        assert_eq!(c.state, CheckState::Ok);
        assert_eq!(
            c.reason,
            "host: p50 2 µs, p99 20 µs over 2000 files; VM (/src): 150 µs per stat (mean over 500 files), 50× the host"
        );
    }

    #[test]
    fn vboxsf_speed_warns_with_the_seeds_figures_and_the_move_to_nfs() {
        let vm = VmSide::Measured(VmTiming {
            files: 500,
            missing: 0,
            per_file: us(1800),
        });
        let c = latency_check(
            Some(&host(2, 20, 3)),
            &vm,
            "devenv-shop",
            "/src",
            Some("vboxsf"),
        );
        assert_eq!(c.state, CheckState::Warn);
        assert!(
            c.reason.contains("spends 9.0 s in stat alone"),
            "{}",
            c.reason
        );
        assert!(
            c.fix
                .unwrap()
                .starts_with("minikube delete -p devenv-shop && devenv up")
        );
        assert_eq!(
            c.doc.as_deref(),
            Some(crate::doctor::doc("stat-latency").as_str())
        );
    }

    #[test]
    fn slow_nfs_points_at_the_mount_options() {
        let vm = VmSide::Measured(VmTiming {
            files: 500,
            missing: 0,
            per_file: us(2500),
        });
        let c = latency_check(
            Some(&host(2, 20, 3)),
            &vm,
            "devenv-shop",
            "/src",
            Some("nfs"),
        );
        assert_eq!(c.state, CheckState::Warn);
        assert!(
            c.fix
                .unwrap()
                .starts_with("minikube ssh -p devenv-shop -- 'sudo umount /src'")
        );
    }

    #[test]
    fn a_slow_host_file_system_is_named_as_the_cause() {
        let c = latency_check(
            Some(&host(40, 9000, 200)),
            &VmSide::NotMeasured("x".into()),
            "p",
            "/src",
            None,
        );
        assert_eq!(c.state, CheckState::Warn);
        assert!(c.reason.contains("host's own file system is slow"));
    }

    #[test]
    fn without_the_vm_the_host_figures_are_still_given() {
        let c = latency_check(
            Some(&host(2, 20, 3)),
            &VmSide::NotMeasured("devenv-shop is not running, so only the host was timed".into()),
            "devenv-shop",
            "/src",
            None,
        );
        assert_eq!(c.state, CheckState::Ok);
        assert!(c.reason.starts_with("host: p50 2 µs"));
        assert!(c.reason.ends_with("only the host was timed"));
    }

    #[test]
    fn an_empty_mount_point_is_not_mistaken_for_a_fast_one() {
        let vm = VmSide::Measured(VmTiming {
            files: 20,
            missing: 20,
            per_file: us(1),
        });
        let c = latency_check(Some(&host(2, 20, 3)), &vm, "p", "/src", None);
        assert_eq!(c.state, CheckState::Warn);
        assert!(c.reason.contains("not mounted"));
    }
}
