//! The picture the dashboard draws, read again every two seconds (at once after an action or
//! a stage of a live `up`): where each service runs and how its pods are, its URLs and the
//! stages of the running or last `up`. What costs the laptop more is read less often: the VM's
//! state and the CPU and memory `devenv top` reads (each a `minikube` run, one of them through
//! ssh) at `[watch] interval`, as `top` does, and the mount with its `stat` latency every 30 s. Every read has a short timeout and whatever
//! cannot be read is left out with the reason, so one slow part never stalls the page.
//!
//! The logs are a second loop, the follow of `devenv logs -f` writing into the hub, started
//! again when a service moves between the clusters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::hub::{Hub, LiveRun, fold_stages};
use crate::commands::logs::{Sink, follow};
use crate::config::{Loaded, Placement};
use crate::logs::Line;
use crate::minikube::{self, VmState};
use crate::process::Runner;
use crate::state::ProjectDir;
use crate::watch::resources::{AlertRules, History};
use crate::watch::sample::Sampler;
use crate::workloads::{self, Clients, Located};

/// How often the picture is read again.
const ROUND: Duration = Duration::from_secs(2);
/// Samples kept for the CPU and memory history of each service (five minutes at the default
/// `[watch] interval` of 5 s).
const HISTORY: usize = 60;
/// How often the mount and its `stat` latency are read (a probe over 500 files in the VM).
const MOUNT_EVERY: Duration = Duration::from_secs(30);
/// A read of the VM that takes longer is given up for this round.
const PROBE: Duration = Duration::from_secs(10);

/// What the gatherer reads from.
pub struct Sources {
    pub runner: Arc<dyn Runner>,
    pub loaded: Loaded,
    pub project: ProjectDir,
    pub user: String,
    /// The exported source tree, as the VM's `/proc/mounts` names it.
    pub source: String,
    /// The run of `devenv up --ui`, when the dashboard belongs to one.
    pub live: Option<Arc<LiveRun>>,
}

/// The machine as last read: the VM's state and settings, a resource sample and its alerts.
struct Machine {
    read: Instant,
    state: VmState,
    settings: Option<minikube::ProfileSettings>,
    sample: crate::watch::resources::Sample,
    alerts: Vec<crate::watch::resources::Alert>,
}

/// Where each service runs now (the developer's choices can change under the dashboard).
fn placed(s: &Sources) -> Vec<Located> {
    let state = s.project.load().unwrap_or_default();
    workloads::locate(&s.loaded, &s.user, &state, &[]).unwrap_or_default()
}

/// Read the picture every round, forever; tell the log loop when a service moved.
pub async fn pictures(hub: Arc<Hub>, s: Sources, moved: watch::Sender<Vec<Located>>) {
    let c = &s.loaded.config;
    let profile = c.project.profile();
    let mut sampler = Sampler::new(s.runner.clone(), &s.loaded);
    let mut rules = AlertRules::new(&c.watch.alerts);
    let mut history: BTreeMap<String, (History, History)> = BTreeMap::new();
    let mut clients = Clients::default();
    let started = Instant::now();
    let files = sample_files(&s.loaded.root);
    let mut mount = json!({"state": "unknown"});
    let mut mount_read: Option<Instant> = None;
    let interval = c.watch.interval();
    let mut machine: Option<Machine> = None;
    loop {
        let located = placed(&s);
        moved.send_if_modified(|old| {
            let changed = *old != located;
            if changed {
                *old = located.clone();
            }
            changed
        });
        let vm_state = async {
            match tokio::time::timeout(PROBE, s.runner.output(&minikube::status(&profile))).await {
                Ok(Ok(out)) => {
                    minikube::parse_status(&out).unwrap_or_else(|e| VmState::Unknown(e.into()))
                }
                Ok(Err(e)) => VmState::Unknown(e.to_string()),
                Err(_) => VmState::Unknown("minikube status did not answer in time".into()),
            }
        };
        let profiles = async {
            let out = tokio::time::timeout(PROBE, s.runner.output(&minikube::profile_list_light()))
                .await
                .ok()?
                .ok()?;
            minikube::parse_profile(&out.stdout, &profile)
        };
        let due = machine
            .as_ref()
            .is_none_or(|m| m.read.elapsed() >= interval);
        let read = async {
            if due {
                Some(tokio::join!(vm_state, profiles, sampler.sample()))
            } else {
                None
            }
        };
        let (read, services) = tokio::join!(read, services(&located, &mut clients));
        if let Some((state, settings, sample)) = read {
            let local: Vec<String> = located
                .iter()
                .filter(|l| l.place == Placement::Local)
                .map(|l| l.name.clone())
                .collect();
            let alerts = rules.check(&sample, &local, started.elapsed());
            if sample.containers_read {
                for u in &sample.services {
                    let (cpu, memory) = history
                        .entry(u.service.clone())
                        .or_insert_with(|| (History::new(HISTORY), History::new(HISTORY)));
                    cpu.push(u.cpu_percent);
                    memory.push(u.memory_bytes as f64);
                }
            }
            machine = Some(Machine {
                read: Instant::now(),
                state,
                settings,
                sample,
                alerts,
            });
        }
        let Some(Machine {
            state: vm_state,
            settings,
            sample,
            alerts,
            ..
        }) = machine.as_ref()
        else {
            continue;
        };
        let running = *vm_state == VmState::Running;
        if !running {
            mount = json!({"state": "unknown", "why": "the VM is not running"});
            mount_read = None;
        } else if mount_read.is_none_or(|t| t.elapsed() >= MOUNT_EVERY) {
            mount = read_mount(&s, &profile, &files).await;
            mount_read = Some(Instant::now());
        }
        let address = settings.as_ref().and_then(|p| p.node_ip);
        let client = clients.get(&profile).await.ok();
        let urls = crate::urls::gather(
            &located,
            client,
            c.project.namespace(),
            address.map(std::net::IpAddr::V4),
        )
        .await;
        let usage: BTreeMap<&str, &crate::watch::resources::ServiceUsage> = sample
            .services
            .iter()
            .map(|u| (u.service.as_str(), u))
            .collect();
        let mut rows = Vec::new();
        for (at, pods) in located.iter().zip(services) {
            let (cpu, memory) = history
                .entry(at.name.clone())
                .or_insert_with(|| (History::new(HISTORY), History::new(HISTORY)));
            let used = usage.get(at.name.as_str());
            let urls = urls.iter().find(|u| u.service == at.name);
            rows.push(json!({
                "name": at.name,
                "where": at.place,
                "context": at.context,
                "namespace": at.namespace,
                "offloadable": c.services.get(&at.name).is_some_and(|s| s.host.is_some() && s.values_key.is_some()),
                "pods": pods.as_ref().map(|p| pod_rows(p)).unwrap_or_default(),
                "problem": pods.as_ref().err(),
                "cpu_percent": used.filter(|_| sample.containers_read).map(|u| u.cpu_percent),
                "memory_bytes": used.filter(|_| sample.containers_read).map(|u| u.memory_bytes),
                "cpu_history": cpu.values(),
                "memory_history": memory.values(),
                "urls": urls.map(|u| json!(u.urls)).unwrap_or(json!([])),
                "forward": urls.and_then(|u| u.forward.clone()),
                "shell": format!("devenv shell {}", at.name),
            }));
        }
        let run = match s.live.as_ref().and_then(|l| l.stages()) {
            Some(stages) => json!({"live": true, "stages": stages}),
            None => last_run(&s.project),
        };
        hub.set_state(&json!({
            "project": c.project.name,
            "namespace": c.project.namespace(),
            "run": run,
            "services": rows,
            "vm": {
                "profile": profile,
                "state": vm_word(vm_state),
                "driver": settings.as_ref().map(|p| p.driver.clone()),
                "address": address.map(|a| a.to_string()),
                "cpus": settings.as_ref().map(|p| p.cpus),
                "memory_mib": settings.as_ref().map(|p| p.memory_mib),
                "usage": sample.vm,
                "hypervisor": sample.hypervisor,
                "mount": mount,
                "target": c.mount.target,
            },
            "alerts": alerts,
            "errors": sample.errors,
        }));
        tokio::select! {
            () = tokio::time::sleep(ROUND) => {}
            () = hub.refresh.notified() => {}
        }
    }
}

fn vm_word(vm: &VmState) -> String {
    match vm {
        VmState::Running => "running".into(),
        VmState::Stopped => "stopped".into(),
        VmState::Nonexistent => "not created".into(),
        VmState::Other(s) => s.to_lowercase(),
        VmState::Unknown(why) => format!("unknown: {why}"),
    }
}

/// The pods of each service, or why they cannot be listed.
async fn services(located: &[Located], clients: &mut Clients) -> Vec<Result<Vec<Pod>, String>> {
    let mut out = Vec::new();
    for at in located {
        let pods = match clients.get(&at.context).await {
            Ok(client) => match tokio::time::timeout(PROBE, workloads::pods(client, at)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("{} did not answer in time", at.context)),
            },
            Err(e) => Err(e.to_string()),
        };
        out.push(pods);
    }
    out
}

fn pod_rows(pods: &[Pod]) -> Vec<Value> {
    pods.iter()
        .map(|p| {
            let restarts: i32 = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map(|all| all.iter().map(|c| c.restart_count).sum())
                .unwrap_or(0);
            json!({
                "name": workloads::name(p),
                "ready": crate::cluster::conditions::pod_ready(p),
                "phase": p.status.as_ref().and_then(|s| s.phase.clone()),
                "restarts": restarts,
            })
        })
        .collect()
}

/// The stages of the newest run log.
fn last_run(project: &ProjectDir) -> Value {
    let Some(file) = crate::runlog::recent(project.path()).into_iter().next() else {
        return json!({"live": false, "stages": []});
    };
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    json!({
        "live": false,
        "file": file.file_name().map(|n| n.to_string_lossy().into_owned()),
        "stages": fold_stages(events.iter()),
    })
}

/// Files of the source tree to time `stat` on in the VM (the doctor's sample).
fn sample_files(root: &std::path::Path) -> Vec<String> {
    crate::doctor::tree::scan(root, crate::doctor::latency::HOST_SAMPLE)
        .map(|t| crate::doctor::latency::vm_sample(&t.files))
        .unwrap_or_default()
}

/// Whether the source tree is mounted in the VM, and the mean `stat` time through it.
async fn read_mount(s: &Sources, profile: &str, files: &[String]) -> Value {
    let target = &s.loaded.config.mount.target;
    let mounts = minikube::ssh(profile, &["cat", "/proc/mounts"])
        .read_only()
        .timeout(PROBE);
    let mounted = match s.runner.output(&mounts).await {
        Ok(out) if out.success() => minikube::has_nfs_mount(&out.stdout, &s.source, target),
        _ => return json!({"state": "unknown", "why": "the VM's mounts could not be read"}),
    };
    if !mounted {
        return json!({"state": "not mounted"});
    }
    if files.len() < 2 {
        return json!({"state": "mounted"});
    }
    let probe = crate::doctor::latency::vm_probe(profile, target, files);
    match s.runner.output(&probe).await {
        Ok(out) => match crate::doctor::latency::parse_vm_output(&out.stdout, target) {
            Ok(t) => json!({
                "state": "mounted",
                "stat_us": t.per_file.as_secs_f64() * 1e6,
                "files": t.files,
                "slow": t.per_file > crate::doctor::latency::VM_SLOW,
            }),
            Err(why) => json!({"state": "mounted", "why": why.to_string()}),
        },
        Err(e) => json!({"state": "mounted", "why": e.to_string()}),
    }
}

/// Follow the logs of every service into the hub; start again where the services run when
/// one moves.
pub async fn logs(hub: Arc<Hub>, mut moved: watch::Receiver<Vec<Located>>) {
    struct Into(Arc<Hub>);
    impl Sink for Into {
        fn line(&mut self, line: &Line) -> bool {
            self.0.log(line);
            true
        }
        fn problem(&mut self, problem: String) {
            self.0.problem(problem);
        }
    }
    loop {
        let located = moved.borrow_and_update().clone();
        let mut clients = Clients::default();
        let mut sink = Into(hub.clone());
        let params = LogParams {
            timestamps: true,
            tail_lines: Some(100),
            ..LogParams::default()
        };
        tokio::select! {
            () = follow(&located, &mut clients, &mut sink, params) => {
                tokio::time::sleep(ROUND).await;
            }
            changed = moved.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
