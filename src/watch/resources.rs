//! Resource watch, the pure part: what a sample is, how the VM's `/proc` and a container's stats
//! become percentages, which devenv service a container belongs to, the history sparkline, and
//! the alert rules. The seed's laptops froze before anyone could tell what ate the CPU; these
//! figures say it, and the alert names the service to offload and the command that does it.
//!
//! Reading the figures (the hypervisor process, `minikube ssh`, the Docker daemon, the pods) is
//! [`super::sample`]'s job; nothing here does I/O, so every rule is tested on fixtures.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

/// The hypervisor process on the host (qemu for kvm2, hyperkit, vfkit): what the seed measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostProcess {
    pub name: String,
    pub pid: u32,
    /// Percent of one core.
    pub cpu_percent: f64,
    pub rss_bytes: u64,
}

/// The VM as its kernel sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmUsage {
    /// Percent of one core (400 = four cores busy).
    pub cpu_percent: f64,
    pub cpus: u32,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub memory_percent: f64,
}

/// One devenv service's containers, summed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceUsage {
    pub service: String,
    pub containers: u32,
    /// Percent of one core.
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    /// Container restarts of its pods (from the Kubernetes API), when the cluster answered.
    pub restarts: Option<u32>,
}

/// An alert raised by a sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// `vm_cpu` or `vm_memory`.
    pub kind: &'static str,
    pub message: String,
    /// The command that moves the heaviest local service off the laptop.
    pub offload: Option<String>,
}

/// Everything read at one instant; a source that could not be read is named in `errors`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the Unix epoch.
    pub time: u64,
    pub hypervisor: Option<HostProcess>,
    pub vm: Option<VmUsage>,
    pub services: Vec<ServiceUsage>,
    /// Whether the containers' CPU and memory were read: when not, the services' figures are
    /// unknown (shown as `-`), not zero.
    pub containers_read: bool,
    pub alerts: Vec<Alert>,
    pub errors: Vec<String>,
}

/// The script the VM runs through `minikube ssh`: the `cpu` lines of `/proc/stat` twice, one
/// second apart, then `/proc/meminfo`, then the exit status, which `minikube ssh` would
/// otherwise lose (contracts §4). It only reads.
pub const VM_SCRIPT: &str = "grep '^cpu' /proc/stat && sleep 1 && grep '^cpu' /proc/stat && cat /proc/meminfo; echo \"devenv-exit $?\"";

/// CPU time counters of one `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTimes {
    busy: u64,
    total: u64,
}

fn cpu_times(line: &str) -> Option<CpuTimes> {
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
    // counted in user, so only the first eight count.
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

/// Read [`VM_SCRIPT`]'s output (CRLF line ends from minikube's pty tolerated).
pub fn parse_vm(text: &str) -> Result<VmUsage, crate::unreadable::Unreadable> {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let exit = lines
        .iter()
        .find_map(|l| l.strip_prefix("devenv-exit "))
        .ok_or_else(|| {
            format!(
                "no answer from the VM: {:?}",
                crate::process::tail_lines(text, 2)
            )
        })?;
    if exit.trim() != "0" {
        return Err(format!(
            "reading /proc in the VM exited with status {}: {:?}",
            exit.trim(),
            crate::process::tail_lines(text, 3)
        )
        .into());
    }
    let totals: Vec<CpuTimes> = lines
        .iter()
        .filter(|l| l.starts_with("cpu "))
        .filter_map(|l| cpu_times(l))
        .collect();
    let [first, second] = totals[..] else {
        return Err(format!(
            "expected two `cpu` lines from /proc/stat, found {}",
            totals.len()
        )
        .into());
    };
    let per_cpu = lines
        .iter()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    let cpus = (per_cpu / 2).max(1) as u32;
    let total = second.total.saturating_sub(first.total);
    let busy = second.busy.saturating_sub(first.busy);
    let cpu_percent = if total == 0 {
        0.0
    } else {
        busy as f64 / total as f64 * f64::from(cpus) * 100.0
    };
    let kib = |key: &str| {
        lines.iter().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    let total_kib = kib("MemTotal").ok_or("no MemTotal in /proc/meminfo")?;
    let available_kib = kib("MemAvailable").ok_or("no MemAvailable in /proc/meminfo")?;
    let used = total_kib.saturating_sub(available_kib) * 1024;
    let memory_total_bytes = total_kib * 1024;
    Ok(VmUsage {
        cpu_percent,
        cpus,
        memory_used_bytes: used,
        memory_total_bytes,
        memory_percent: if memory_total_bytes == 0 {
            0.0
        } else {
            used as f64 / memory_total_bytes as f64 * 100.0
        },
    })
}

/// One container's figures from a `stream=false` stats answer, as `docker stats` computes
/// them: CPU from the two readings the daemon takes a second apart, memory without the page
/// cache the kernel can drop.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ContainerFigures {
    pub cpu_percent: f64,
    pub memory_bytes: u64,
}

/// The raw counters of a stats answer (kept apart from bollard's types so the arithmetic is
/// tested on plain numbers).
#[derive(Debug, Clone, Copy, Default)]
pub struct StatsCounters {
    pub cpu_total: u64,
    pub precpu_total: u64,
    pub system: u64,
    pub presystem: u64,
    pub online_cpus: u32,
    pub memory_usage: u64,
    /// `inactive_file` (cgroup v2) or `total_inactive_file` (cgroup v1).
    pub inactive_file: u64,
}

pub fn container_figures(c: &StatsCounters) -> ContainerFigures {
    let cpu = c.cpu_total.saturating_sub(c.precpu_total) as f64;
    let system = c.system.saturating_sub(c.presystem) as f64;
    let cpu_percent = if system > 0.0 && cpu > 0.0 {
        cpu / system * f64::from(c.online_cpus.max(1)) * 100.0
    } else {
        0.0
    };
    ContainerFigures {
        cpu_percent,
        memory_bytes: c.memory_usage.saturating_sub(c.inactive_file),
    }
}

/// The labels kubelet (dockershim / cri-dockerd) puts on every container it runs.
pub const LABEL_POD: &str = "io.kubernetes.pod.name";
pub const LABEL_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER: &str = "io.kubernetes.container.name";

/// A devenv service as the mapping sees it: its name and the other names it goes by.
#[derive(Debug, Clone)]
pub struct ServiceNames {
    pub service: String,
    /// `values_key` and `host`, when set.
    pub aliases: Vec<String>,
}

/// The devenv service a pod of `namespace` belongs to: the service whose name (or values key
/// or host) is the container's name, else the one whose name starts the pod's name
/// (`api-7d9c…`), longest first. `None` for kubelet's pause containers and foreign pods.
pub fn service_of_container(
    labels: &BTreeMap<String, String>,
    namespace: &str,
    services: &[ServiceNames],
) -> Option<String> {
    if labels.get(LABEL_NAMESPACE).map(String::as_str) != Some(namespace) {
        return None;
    }
    let container = labels.get(LABEL_CONTAINER)?;
    if container == "POD" {
        return None;
    }
    service_of_pod(labels.get(LABEL_POD)?, &[container.as_str()], services)
}

/// The devenv service of a pod, from its name and its containers' names.
pub fn service_of_pod(pod: &str, containers: &[&str], services: &[ServiceNames]) -> Option<String> {
    let names = |s: &ServiceNames| {
        std::iter::once(s.service.clone())
            .chain(s.aliases.iter().cloned())
            .collect::<Vec<_>>()
    };
    for s in services {
        if names(s).iter().any(|n| containers.contains(&n.as_str())) {
            return Some(s.service.clone());
        }
    }
    services
        .iter()
        .flat_map(|s| names(s).into_iter().map(move |n| (n, &s.service)))
        .filter(|(n, _)| {
            pod.strip_prefix(n.as_str())
                .is_some_and(|r| r.starts_with('-'))
        })
        .max_by_key(|(n, _)| n.len())
        .map(|(_, s)| s.clone())
}

/// The containers' figures summed per service, with the services' restarts when the cluster
/// answered (a service with pods but no running container still shows its restarts: a crash
/// loop is exactly when it matters).
pub fn per_service(
    containers: Vec<(String, ContainerFigures)>,
    restarts: Option<&BTreeMap<String, u32>>,
) -> Vec<ServiceUsage> {
    fn usage<'a>(
        map: &'a mut BTreeMap<String, ServiceUsage>,
        service: &str,
    ) -> &'a mut ServiceUsage {
        map.entry(service.to_string())
            .or_insert_with(|| ServiceUsage {
                service: service.to_string(),
                ..ServiceUsage::default()
            })
    }
    let mut by_service = BTreeMap::new();
    for (service, figures) in &containers {
        let u = usage(&mut by_service, service);
        u.containers += 1;
        u.cpu_percent += figures.cpu_percent;
        u.memory_bytes += figures.memory_bytes;
    }
    if let Some(restarts) = restarts {
        for (service, n) in restarts {
            usage(&mut by_service, service).restarts = Some(*n);
        }
        for u in by_service.values_mut() {
            u.restarts.get_or_insert(0);
        }
    }
    by_service.into_values().collect()
}

/// A short history drawn as bars (▁▂▃▄▅▆▇█), scaled to the largest of `values` and `floor`
/// (so that a quiet service stays flat instead of its noise filling the bar).
pub fn sparkline(values: &[f64], floor: f64) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().fold(floor, f64::max);
    values
        .iter()
        .map(|v| {
            if max <= 0.0 || !v.is_finite() {
                return BARS[0];
            }
            let i = ((v.max(0.0) / max) * 7.0).round() as usize;
            BARS[i.min(7)]
        })
        .collect()
}

/// The last `capacity` values of one figure.
#[derive(Debug, Clone)]
pub struct History {
    capacity: usize,
    values: VecDeque<f64>,
}

impl History {
    pub fn new(capacity: usize) -> History {
        History {
            capacity,
            values: VecDeque::with_capacity(capacity),
        }
    }

    pub fn push(&mut self, value: f64) {
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    pub fn values(&self) -> Vec<f64> {
        self.values.iter().copied().collect()
    }
}

/// A threshold that must be exceeded without a break for some time before it fires: a build
/// that pegs the CPU for ten seconds is not a problem; half a minute of it is.
#[derive(Debug, Clone)]
pub struct Sustained {
    threshold: f64,
    period: Duration,
    /// When the current run above the threshold began (time since the watch started).
    since: Option<Duration>,
}

impl Sustained {
    pub fn new(threshold: f64, period: Duration) -> Sustained {
        Sustained {
            threshold,
            period,
            since: None,
        }
    }

    /// Feed the value observed at `now`; returns how long it has been above the threshold when
    /// that is at least the period.
    pub fn observe(&mut self, value: f64, now: Duration) -> Option<Duration> {
        if value <= self.threshold {
            self.since = None;
            return None;
        }
        let since = *self.since.get_or_insert(now);
        let above = now.saturating_sub(since);
        (above >= self.period).then_some(above)
    }
}

/// The alert rules of `[watch.alerts]`, with the CPU rule's memory of the recent past.
#[derive(Debug, Clone)]
pub struct AlertRules {
    cpu_threshold: u32,
    cpu: Sustained,
    memory_threshold: u32,
}

impl AlertRules {
    pub fn new(alerts: &crate::config::Alerts) -> AlertRules {
        AlertRules {
            cpu_threshold: alerts.vm_cpu,
            cpu: Sustained::new(f64::from(alerts.vm_cpu), alerts.vm_cpu_for()),
            memory_threshold: alerts.vm_memory,
        }
    }

    /// The alerts `sample` raises at `now`. `local` are the services running on the laptop; the
    /// heaviest of them (CPU for a CPU alert, memory for a memory alert) is named with the
    /// command that offloads it.
    pub fn check(&mut self, sample: &Sample, local: &[String], now: Duration) -> Vec<Alert> {
        let Some(vm) = &sample.vm else {
            return Vec::new();
        };
        let candidates: Vec<&ServiceUsage> = sample
            .services
            .iter()
            .filter(|s| local.contains(&s.service))
            .collect();
        let advice = |heaviest: Option<&&ServiceUsage>, figure: String| match heaviest {
            Some(s) => (
                format!(
                    "; the heaviest local service is {} ({figure}): offload it with `devenv offload {} --remote`",
                    s.service, s.service
                ),
                Some(format!("devenv offload {} --remote", s.service)),
            ),
            None => (String::new(), None),
        };
        let mut out = Vec::new();
        if let Some(above) = self.cpu.observe(vm.cpu_percent, now) {
            let heaviest = candidates
                .iter()
                .filter(|s| s.cpu_percent > 0.0)
                .max_by(|a, b| a.cpu_percent.total_cmp(&b.cpu_percent));
            let (tail, offload) = advice(
                heaviest,
                heaviest.map_or(String::new(), |s| format!("{:.0} % CPU", s.cpu_percent)),
            );
            out.push(Alert {
                kind: "vm_cpu",
                message: format!(
                    "the VM has used {:.0} % CPU (above {} %) for {}s{tail}",
                    vm.cpu_percent,
                    self.cpu_threshold,
                    above.as_secs()
                ),
                offload,
            });
        }
        if vm.memory_percent > f64::from(self.memory_threshold) {
            let heaviest = candidates
                .iter()
                .filter(|s| s.memory_bytes > 0)
                .max_by_key(|s| s.memory_bytes);
            let (tail, offload) = advice(
                heaviest,
                heaviest.map_or(String::new(), |s| format!("{}", Bytes(s.memory_bytes))),
            );
            out.push(Alert {
                kind: "vm_memory",
                message: format!(
                    "the VM uses {:.0} % of its memory (above {} %){tail}",
                    vm.memory_percent, self.memory_threshold
                ),
                offload,
            });
        }
        out
    }
}

/// Which alerts a long-running watcher prints: each kind when it starts, then again only every
/// `every` while it lasts, so a VM that stays busy does not flood the log.
#[derive(Debug, Clone)]
pub struct Reminder {
    every: Duration,
    shown: BTreeMap<&'static str, Duration>,
}

impl Reminder {
    pub fn new(every: Duration) -> Reminder {
        Reminder {
            every,
            shown: BTreeMap::new(),
        }
    }

    /// The alerts of one sample, at `now`, that should be printed.
    pub fn filter(&mut self, alerts: Vec<Alert>, now: Duration) -> Vec<Alert> {
        self.shown
            .retain(|kind, _| alerts.iter().any(|a| a.kind == *kind));
        alerts
            .into_iter()
            .filter(|a| match self.shown.get(a.kind) {
                Some(at) if now.saturating_sub(*at) < self.every => false,
                _ => {
                    self.shown.insert(a.kind, now);
                    true
                }
            })
            .collect()
    }
}

/// Bytes for people: `512 MiB`, `1.5 GiB`.
#[derive(Debug, Clone, Copy)]
pub struct Bytes(pub u64);

impl std::fmt::Display for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0 as f64;
        const MIB: f64 = 1024.0 * 1024.0;
        if b >= 1024.0 * MIB {
            write!(f, "{:.1} GiB", b / (1024.0 * MIB))
        } else {
            write!(f, "{:.0} MiB", b / MIB)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`VM_SCRIPT`] prints on a 2-CPU VM through minikube's pty (CRLF line ends):
    /// 150 of 200 jiffies busy in the second between the readings → 150 % of one core.
    const VM_OUTPUT: &str = "cpu  1000 0 500 8000 100 0 0 0 0 0\r\ncpu0 500 0 250 4000 50 0 0 0 0 0\r\ncpu1 500 0 250 4000 50 0 0 0 0 0\r\ncpu  1100 0 550 8050 100 0 0 0 0 0\r\ncpu0 550 0 275 4025 50 0 0 0 0 0\r\ncpu1 550 0 275 4025 50 0 0 0 0 0\r\nMemTotal:        6000000 kB\r\nMemFree:          500000 kB\r\nMemAvailable:    1500000 kB\r\ndevenv-exit 0\r\n";

    #[test]
    fn vm_cpu_is_the_busy_share_of_the_interval_times_the_cpus() {
        let vm = parse_vm(VM_OUTPUT).unwrap();
        assert_eq!(vm.cpus, 2);
        assert!((vm.cpu_percent - 150.0).abs() < 0.01, "{vm:?}");
    }

    #[test]
    fn vm_memory_in_use_is_total_minus_available() {
        let vm = parse_vm(VM_OUTPUT).unwrap();
        assert_eq!(vm.memory_total_bytes, 6_000_000 * 1024);
        assert_eq!(vm.memory_used_bytes, 4_500_000 * 1024);
        assert!((vm.memory_percent - 75.0).abs() < 0.01);
    }

    #[test]
    fn a_failed_read_in_the_vm_is_an_error_with_its_status() {
        let err = parse_vm("grep: /proc/stat: No such file\r\ndevenv-exit 2\r\n").unwrap_err();
        assert!(err.to_string().contains("status 2"), "{err}");
        assert!(parse_vm("ssh: Process exited with status 1").is_err());
    }

    #[test]
    fn container_cpu_and_memory_follow_docker_stats() {
        let f = container_figures(&StatsCounters {
            cpu_total: 2_000_000_000,
            precpu_total: 1_500_000_000,
            system: 10_000_000_000,
            presystem: 8_000_000_000,
            online_cpus: 4,
            memory_usage: 300 << 20,
            inactive_file: 100 << 20,
        });
        assert!((f.cpu_percent - 100.0).abs() < 0.01, "{f:?}");
        assert_eq!(f.memory_bytes, 200 << 20);
    }

    #[test]
    fn a_first_reading_without_a_previous_one_is_zero_cpu() {
        let f = container_figures(&StatsCounters {
            cpu_total: 5,
            online_cpus: 2,
            ..StatsCounters::default()
        });
        assert_eq!(f.cpu_percent, 0.0);
    }

    fn services() -> Vec<ServiceNames> {
        vec![
            ServiceNames {
                service: "postgres".into(),
                aliases: vec!["postgresql".into()],
            },
            ServiceNames {
                service: "api".into(),
                aliases: vec![],
            },
            ServiceNames {
                service: "api-gateway".into(),
                aliases: vec![],
            },
        ]
    }

    fn labels(ns: &str, pod: &str, container: &str) -> BTreeMap<String, String> {
        [
            (LABEL_NAMESPACE, ns),
            (LABEL_POD, pod),
            (LABEL_CONTAINER, container),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn containers_map_to_services_by_container_name_then_pod_name() {
        let s = services();
        assert_eq!(
            service_of_container(&labels("shop", "postgres-0", "postgresql"), "shop", &s),
            Some("postgres".into())
        );
        assert_eq!(
            service_of_container(&labels("shop", "api-gateway-5d8f-x2", "envoy"), "shop", &s),
            Some("api-gateway".into()),
            "the longest matching prefix wins"
        );
        assert_eq!(
            service_of_container(&labels("shop", "api-7d9c-abcde", "app"), "shop", &s),
            Some("api".into())
        );
    }

    #[test]
    fn pause_containers_other_namespaces_and_strangers_belong_to_no_service() {
        let s = services();
        assert_eq!(
            service_of_container(&labels("shop", "api-1", "POD"), "shop", &s),
            None
        );
        assert_eq!(
            service_of_container(&labels("kube-system", "api-1", "api"), "shop", &s),
            None
        );
        assert_eq!(
            service_of_container(&labels("shop", "redis-0", "redis"), "shop", &s),
            None
        );
        assert_eq!(service_of_container(&BTreeMap::new(), "shop", &s), None);
    }

    #[test]
    fn containers_are_summed_per_service_with_their_restarts() {
        let f = |cpu, mib: u64| ContainerFigures {
            cpu_percent: cpu,
            memory_bytes: mib << 20,
        };
        let restarts = BTreeMap::from([("api".to_string(), 3), ("worker".to_string(), 5)]);
        let out = per_service(
            vec![
                ("api".into(), f(10.0, 100)),
                ("api".into(), f(5.0, 50)),
                ("postgres".into(), f(1.0, 300)),
            ],
            Some(&restarts),
        );
        let names: Vec<&str> = out.iter().map(|u| u.service.as_str()).collect();
        assert_eq!(names, ["api", "postgres", "worker"]);
        assert_eq!(out[0].containers, 2);
        assert!((out[0].cpu_percent - 15.0).abs() < 1e-9);
        assert_eq!(out[0].memory_bytes, 150 << 20);
        assert_eq!(out[0].restarts, Some(3));
        assert_eq!(out[1].restarts, Some(0), "no restarts counted means none");
        assert_eq!(
            (out[2].containers, out[2].restarts),
            (0, Some(5)),
            "crash-looping"
        );
        let unknown = per_service(vec![("api".into(), f(1.0, 1))], None);
        assert_eq!(unknown[0].restarts, None, "the cluster did not answer");
    }

    #[test]
    fn sparklines_scale_to_the_largest_value_or_the_floor() {
        assert_eq!(sparkline(&[0.0, 50.0, 100.0], 0.0), "▁▅█");
        assert_eq!(sparkline(&[1.0, 2.0], 100.0), "▁▁", "noise stays flat");
        assert_eq!(sparkline(&[], 100.0), "");
    }

    #[test]
    fn history_keeps_the_last_values() {
        let mut h = History::new(3);
        for v in [1.0, 2.0, 3.0, 4.0] {
            h.push(v);
        }
        assert_eq!(h.values(), vec![2.0, 3.0, 4.0]);
    }

    #[test]
    fn a_threshold_fires_only_after_it_was_exceeded_for_the_whole_period() {
        let mut s = Sustained::new(300.0, Duration::from_secs(30));
        let t = Duration::from_secs;
        assert_eq!(s.observe(350.0, t(0)), None);
        assert_eq!(s.observe(350.0, t(20)), None);
        assert_eq!(s.observe(250.0, t(25)), None, "a dip resets the window");
        assert_eq!(s.observe(350.0, t(30)), None);
        assert_eq!(s.observe(400.0, t(55)), None);
        assert_eq!(s.observe(400.0, t(60)), Some(t(30)));
        assert_eq!(s.observe(400.0, t(65)), Some(t(35)), "it keeps firing");
    }

    fn busy_sample(cpu: f64, memory: f64) -> Sample {
        Sample {
            vm: Some(VmUsage {
                cpu_percent: cpu,
                cpus: 4,
                memory_used_bytes: 0,
                memory_total_bytes: 0,
                memory_percent: memory,
            }),
            services: vec![
                ServiceUsage {
                    service: "api".into(),
                    containers: 1,
                    cpu_percent: 40.0,
                    memory_bytes: 900 << 20,
                    restarts: Some(0),
                },
                ServiceUsage {
                    service: "postgres".into(),
                    containers: 1,
                    cpu_percent: 250.0,
                    memory_bytes: 300 << 20,
                    restarts: Some(0),
                },
            ],
            ..Sample::default()
        }
    }

    #[test]
    fn the_default_cpu_alert_names_the_heaviest_local_service_and_its_offload_command() {
        let mut rules = AlertRules::new(&crate::config::Alerts::default());
        let local = vec!["api".to_string(), "postgres".to_string()];
        let t = Duration::from_secs;
        assert!(
            rules
                .check(&busy_sample(350.0, 50.0), &local, t(0))
                .is_empty()
        );
        let alerts = rules.check(&busy_sample(350.0, 50.0), &local, t(30));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].kind, "vm_cpu");
        assert!(
            alerts[0].message.contains("above 300 %"),
            "{}",
            alerts[0].message
        );
        assert_eq!(
            alerts[0].offload.as_deref(),
            Some("devenv offload postgres --remote")
        );
    }

    #[test]
    fn the_memory_alert_is_immediate_and_names_the_largest_local_service() {
        let mut rules = AlertRules::new(&crate::config::Alerts::default());
        let alerts = rules.check(
            &busy_sample(10.0, 85.0),
            &["api".into(), "postgres".into()],
            Duration::ZERO,
        );
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, "vm_memory");
        assert_eq!(
            alerts[0].offload.as_deref(),
            Some("devenv offload api --remote")
        );
    }

    #[test]
    fn a_lasting_alert_is_repeated_only_every_so_often_and_again_after_it_ended() {
        let alert = || Alert {
            kind: "vm_cpu",
            message: "busy".into(),
            offload: None,
        };
        let mut r = Reminder::new(Duration::from_secs(300));
        let t = Duration::from_secs;
        assert_eq!(r.filter(vec![alert()], t(0)).len(), 1);
        assert_eq!(r.filter(vec![alert()], t(5)).len(), 0);
        assert_eq!(r.filter(vec![alert()], t(300)).len(), 1);
        assert_eq!(r.filter(vec![], t(305)).len(), 0);
        assert_eq!(r.filter(vec![alert()], t(310)).len(), 1, "a new episode");
    }

    #[test]
    fn remote_services_are_never_suggested() {
        let mut rules = AlertRules::new(&crate::config::Alerts::default());
        let alerts = rules.check(
            &busy_sample(10.0, 85.0),
            &["postgres".into()],
            Duration::ZERO,
        );
        assert_eq!(
            alerts[0].offload.as_deref(),
            Some("devenv offload postgres --remote")
        );
        let none = rules.check(&busy_sample(10.0, 85.0), &[], Duration::ZERO);
        assert_eq!(none[0].offload, None);
        assert!(!none[0].message.contains("offload"), "{}", none[0].message);
    }
}
