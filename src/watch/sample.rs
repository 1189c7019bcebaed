//! Reading one resource sample: the hypervisor process on the host (sysinfo), the VM's CPU and
//! memory (one read-only `minikube ssh`), every container of the project's namespace in the VM's
//! Docker daemon (bollard's one-shot stats, `stream=false`, so the daemon's own two readings a
//! second apart give the CPU), and the pods' restart counts (the Kubernetes API). The four are
//! read at the same time; one that fails is named in the sample's `errors` and the others are
//! still shown.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptionsBuilder, StatsOptionsBuilder};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use super::resources::{
    ContainerFigures, HostProcess, LABEL_NAMESPACE, Sample, ServiceNames, StatsCounters, VM_SCRIPT,
    VmUsage, container_figures, parse_vm, per_service, service_of_container, service_of_pod,
};
use crate::config::Loaded;
use crate::docker::{Daemon, DockerEnv};
use crate::minikube;
use crate::process::Runner;

/// How long the VM, the daemon or the API may take to answer one sample.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether a host process is the hypervisor of `profile`'s VM: one of the programs minikube's
/// drivers run (qemu for kvm2 through libvirt, hyperkit, vfkit) whose command line names the
/// profile (libvirt's `-name guest=<profile>`, the others' machine directory), so another VM on
/// the same laptop is never taken for this one.
pub fn is_vm_process(name: &str, cmd: &[String], profile: &str) -> bool {
    let hypervisor = name.starts_with("qemu-system") || name == "hyperkit" || name == "vfkit";
    hypervisor
        && cmd
            .iter()
            .any(|a| a.split([',', '=', '/', ' ']).any(|word| word == profile))
}

type ContainersRead = Result<Vec<(String, ContainerFigures)>, String>;

/// Keeps what sampling needs between two samples: the process table (CPU usage is a
/// difference between two readings), the Docker and Kubernetes clients.
pub struct Sampler {
    runner: Arc<dyn Runner>,
    profile: String,
    namespace: String,
    services: Vec<ServiceNames>,
    system: Option<System>,
    primed: bool,
    /// What `minikube docker-env` said, asked once per command (it is not read-only: it may
    /// restart dockerd in the VM); a failed connection reconnects from it.
    docker_env: Option<Result<DockerEnv, String>>,
    daemon: Option<Daemon>,
    kube: Option<kube::Client>,
}

impl Sampler {
    pub fn new(runner: Arc<dyn Runner>, loaded: &Loaded) -> Sampler {
        let c = &loaded.config;
        let services = c
            .services
            .iter()
            .map(|(name, s)| ServiceNames {
                service: name.clone(),
                aliases: s.values_key.iter().chain(s.host.iter()).cloned().collect(),
            })
            .collect();
        Sampler {
            runner,
            profile: c.project.profile(),
            namespace: c.project.namespace().to_string(),
            services,
            system: System::new().ok(),
            primed: false,
            docker_env: None,
            daemon: None,
            kube: None,
        }
    }

    /// One sample of everything.
    pub async fn sample(&mut self) -> Sample {
        let mut errors = Vec::new();
        let hypervisor = self.hypervisor().await;
        let runner = self.runner.clone();
        let profile = self.profile.clone();
        let (vm, containers, restarts) = tokio::join!(
            vm(runner.as_ref(), &profile),
            self.read_containers(),
            restarts_of(&self.kube, &self.profile, &self.namespace, &self.services)
        );
        let vm = vm.map_err(|e| errors.push(format!("vm: {e}"))).ok();
        let (containers, daemon, docker_env) = containers;
        self.daemon = daemon;
        self.docker_env = Some(docker_env);
        let containers_read = containers.is_ok();
        let containers = containers
            .map_err(|e| errors.push(format!("containers: {e}")))
            .unwrap_or_default();
        let (restarts, client) = restarts;
        self.kube = client;
        let restarts = restarts
            .map_err(|e| errors.push(format!("restarts: {e}")))
            .ok();
        Sample {
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
            hypervisor,
            vm,
            services: per_service(containers, restarts.as_ref()),
            containers_read,
            alerts: Vec::new(),
            errors,
        }
    }

    /// The VM's hypervisor process: the one whose command line names the profile (another
    /// minikube or libvirt VM on the same laptop is not ours).
    async fn hypervisor(&mut self) -> Option<HostProcess> {
        // Without tasks: on Linux sysinfo lists every thread as a process of its own, with the
        // command line of its process, and a thread of the VM is not the VM.
        let kind = ProcessRefreshKind::nothing()
            .without_tasks()
            .with_cpu()
            .with_memory()
            .with_cmd(UpdateKind::OnlyIfNotSet);
        let system = self.system.as_mut()?;
        system.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
        if !self.primed {
            // CPU usage is the difference between two readings.
            self.primed = true;
            tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL).await;
            system.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
        }
        system
            .processes()
            .values()
            .filter(|p| p.thread_kind().is_none())
            .find(|p| {
                let cmd: Vec<String> = p
                    .cmd()
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                is_vm_process(&p.name().to_string_lossy(), &cmd, &self.profile)
            })
            .map(|p| HostProcess {
                name: p.name().to_string_lossy().into_owned(),
                pid: p.pid().as_u32(),
                cpu_percent: f64::from(p.cpu_usage()),
                rss_bytes: p.memory(),
            })
    }

    /// The containers' figures, connecting to the daemon first when needed; the client is handed
    /// back to be kept, or dropped after a failure so the next sample connects again.
    async fn read_containers(&self) -> (ContainersRead, Option<Daemon>, Result<DockerEnv, String>) {
        let env = match &self.docker_env {
            Some(env) => env.clone(),
            // A VM without Docker has no per-service figures: say why, not only that.
            None => DockerEnv::for_profile(self.runner.as_ref(), &self.profile)
                .await
                .map_err(|e| match e.help() {
                    Some(help) if e.wrong_runtime() => format!("{e}: {help}"),
                    _ => e.to_string(),
                }),
        };
        let kept = env.clone();
        let daemon = match (&self.daemon, env) {
            (Some(d), _) => d.clone(),
            (None, Ok(env)) => match Daemon::connect(&env).await {
                Ok(d) => d,
                Err(e) => return (Err(e.to_string()), None, kept),
            },
            (None, Err(e)) => return (Err(e), None, kept),
        };
        match tokio::time::timeout(
            SOURCE_TIMEOUT,
            containers(&daemon, &self.namespace, &self.services),
        )
        .await
        {
            Ok(Ok(figures)) => (Ok(figures), Some(daemon), kept),
            Ok(Err(e)) => (Err(e), None, kept),
            Err(_) => (
                Err(format!(
                    "the Docker daemon gave no stats within {}s",
                    SOURCE_TIMEOUT.as_secs()
                )),
                None,
                kept,
            ),
        }
    }
}

/// The VM's CPU and memory through one read-only `minikube ssh`.
pub async fn vm(
    runner: &dyn Runner,
    profile: &str,
) -> Result<VmUsage, crate::unreadable::Unreadable> {
    let cmd = minikube::ssh(profile, &["sh", "-c", VM_SCRIPT])
        .read_only()
        .timeout(SOURCE_TIMEOUT);
    let out = runner.output(&cmd).await.map_err(|e| e.to_string())?;
    parse_vm(&format!("{}{}", out.stdout, out.stderr))
}

/// Every running container of `namespace` that belongs to a devenv service, with its figures
/// from one stats call each (all at once).
pub async fn containers(
    daemon: &Daemon,
    namespace: &str,
    services: &[ServiceNames],
) -> Result<Vec<(String, ContainerFigures)>, String> {
    let filters: HashMap<&str, Vec<String>> =
        HashMap::from([("label", vec![format!("{LABEL_NAMESPACE}={namespace}")])]);
    let list = daemon
        .docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| e.to_string())?;
    let mine: Vec<(String, String)> = list
        .into_iter()
        .filter_map(|c| {
            let labels: BTreeMap<String, String> =
                c.labels.unwrap_or_default().into_iter().collect();
            let service = service_of_container(&labels, namespace, services)?;
            Some((c.id?, service))
        })
        .collect();
    let reads = mine.iter().map(|(id, service)| async move {
        stats(daemon, id)
            .await
            .map(|figures| (service.clone(), figures))
            .map_err(String::from)
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .collect()
}

/// One container's figures from a single `stream=false` stats call.
pub async fn stats(
    daemon: &Daemon,
    id: &str,
) -> Result<ContainerFigures, crate::unreadable::Unreadable> {
    let options = StatsOptionsBuilder::new().stream(false).build();
    let mut stream = daemon.docker.stats(id, Some(options));
    let answer = stream
        .next()
        .await
        .ok_or_else(|| format!("no stats for container {id}"))?
        .map_err(|e| format!("stats of container {id}: {e}"))?;
    let cpu = answer.cpu_stats.unwrap_or_default();
    let precpu = answer.precpu_stats.unwrap_or_default();
    let memory = answer.memory_stats.unwrap_or_default();
    let inactive = memory
        .stats
        .as_ref()
        .and_then(|s| {
            s.get("inactive_file")
                .or_else(|| s.get("total_inactive_file"))
        })
        .copied()
        .unwrap_or(0);
    Ok(container_figures(&StatsCounters {
        cpu_total: cpu.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
        precpu_total: precpu.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
        system: cpu.system_cpu_usage.unwrap_or(0),
        presystem: precpu.system_cpu_usage.unwrap_or(0),
        online_cpus: cpu.online_cpus.unwrap_or(1),
        memory_usage: memory.usage.unwrap_or(0),
        inactive_file: inactive,
    }))
}

/// Container restarts per service, from the pods of the namespace. The client is handed back
/// to be kept (made on first use).
async fn restarts_of(
    client: &Option<kube::Client>,
    context: &str,
    namespace: &str,
    services: &[ServiceNames],
) -> (Result<BTreeMap<String, u32>, String>, Option<kube::Client>) {
    let client = match client {
        Some(c) => c.clone(),
        None => match tokio::time::timeout(SOURCE_TIMEOUT, crate::cluster::client(context)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return (Err(e.to_string()), None),
            Err(_) => return (Err("the cluster did not answer".into()), None),
        },
    };
    let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), namespace);
    let list = match tokio::time::timeout(SOURCE_TIMEOUT, pods.list(&ListParams::default())).await {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => return (Err(e.to_string()), None),
        Err(_) => return (Err("the cluster did not answer".into()), None),
    };
    let mut out: BTreeMap<String, u32> = BTreeMap::new();
    for pod in list {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let statuses = pod
            .status
            .and_then(|s| s.container_statuses)
            .unwrap_or_default();
        let containers: Vec<&str> = statuses.iter().map(|c| c.name.as_str()).collect();
        if let Some(service) = service_of_pod(&name, &containers, services) {
            let n: i32 = statuses.iter().map(|c| c.restart_count).sum();
            *out.entry(service).or_default() += n.max(0) as u32;
        }
    }
    (Ok(out), Some(client))
}

/// How often an alert that lasts is printed again by a watcher.
const REMIND_EVERY: Duration = Duration::from_secs(300);

/// Sample in the background every `[watch] interval` and send the alerts of `[watch.alerts]`
/// (each when it starts, then every five minutes while it lasts) to `alerts`. `local` are the
/// services running on the laptop. The task stops when the handle is dropped.
pub fn spawn_alerts(
    runner: Arc<dyn Runner>,
    loaded: &Loaded,
    local: Vec<String>,
    alerts: tokio::sync::mpsc::UnboundedSender<super::resources::Alert>,
) -> AlertTask {
    let mut sampler = Sampler::new(runner, loaded);
    let mut rules = super::resources::AlertRules::new(&loaded.config.watch.alerts);
    let mut reminder = super::resources::Reminder::new(REMIND_EVERY);
    let interval = loaded.config.watch.interval();
    let started = std::time::Instant::now();
    AlertTask(tokio::spawn(async move {
        loop {
            let begun = std::time::Instant::now();
            let sample = sampler.sample().await;
            let now = started.elapsed();
            for alert in reminder.filter(rules.check(&sample, &local, now), now) {
                if alerts.send(alert).is_err() {
                    return;
                }
            }
            tokio::time::sleep(interval.saturating_sub(begun.elapsed())).await;
        }
    }))
}

/// The background sampling of [`spawn_alerts`]; stops it when dropped.
pub struct AlertTask(tokio::task::JoinHandle<()>);

impl Drop for AlertTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(cmd: &str) -> Vec<String> {
        cmd.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_vms_hypervisor_is_the_one_naming_the_profile() {
        let qemu =
            words("/usr/bin/qemu-system-x86_64 -name guest=devenv-shop,debug-threads=on -m 6144");
        assert!(is_vm_process("qemu-system-x86_64", &qemu, "devenv-shop"));
        assert!(
            !is_vm_process("qemu-system-x86_64", &qemu, "devenv-sho"),
            "a profile whose name is a prefix is another VM"
        );
        let vfkit = words(
            "vfkit --device virtio-blk,path=/Users/ann/.minikube/machines/devenv-shop/devenv-shop.rawdisk",
        );
        assert!(is_vm_process("vfkit", &vfkit, "devenv-shop"));
        assert!(!is_vm_process(
            "bash",
            &words("bash -c devenv-shop"),
            "devenv-shop"
        ));
    }
}
