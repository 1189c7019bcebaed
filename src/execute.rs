//! Runs a [`Plan`] for real: each stage of the plan becomes a stage of the reconcile engine, and
//! each action is carried out through the same runner, exports code and state files that the
//! rest of devenv uses. A failing action stops its stage with an error that says what happened
//! and what to do.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use devenv_drivers::Driver;

use crate::diagnostic::{Failure, codes};
use crate::minikube;
use crate::nfs::apply::{self, Change, NfsHost};
use crate::offload::bridge::{self, BridgeSpec};
use crate::offload::{self, OffloadError, Step, tunnel};
use crate::plan::{Action, MountSpec, Plan, Verify};
use crate::process::{Cmd, Platform, Runner, Stream, check_success, tail_lines};
use crate::reconcile::{Effect, Progress, Report, Stage};
use crate::state::write_atomic_mode;

/// Where the bridge of a tunnelled service points: the supervisor's listening ports.
fn tunnel_route(
    files: &tunnel::Files,
    service: &str,
    ports: &[u16],
) -> Result<bridge::Route, OffloadError> {
    let missing = || {
        OffloadError::Tunnel(Box::new(tunnel::TunnelError::Start(format!(
            "no tunnel supervisor forwards {service}"
        ))))
    };
    let status = files.live_status().ok_or_else(missing)?;
    let ports = ports
        .iter()
        .map(|p| {
            status
                .forward(service, *p)
                .map(|f| (*p, f.listen.port()))
                .ok_or_else(missing)
        })
        .collect::<Result<_, _>>()?;
    Ok(bridge::Route {
        ip: status.spec.bind,
        ports,
        names: Default::default(),
    })
}

/// Where the bridge of `service` sends its traffic, checked to answer: the tunnel's listening
/// ports when `via_tunnel` names the state directory, else the remote Service's routable
/// address.
async fn reachable_route(
    remote_context: &str,
    remote_namespace: &str,
    service: &str,
    host: &str,
    ports: &[u16],
    via_tunnel: Option<&std::path::Path>,
    progress: &Progress,
) -> Result<bridge::Route, OffloadError> {
    let route = match via_tunnel {
        Some(dir) => {
            let mut route = tunnel_route(&tunnel::Files::new(dir), service, ports)?;
            let remote = offload::connect_remote(remote_context, service).await?;
            let svc =
                bridge::remote_service(remote, remote_context, remote_namespace, host, service)
                    .await?;
            route.names = bridge::port_names(&svc);
            route
        }
        None => {
            let remote = offload::connect_remote(remote_context, service).await?;
            let route = bridge::remote_route(
                remote,
                remote_context,
                remote_namespace,
                host,
                ports,
                service,
            )
            .await?;
            progress.line(&format!("remote {service} is at {}", route.ip));
            route
        }
    };
    bridge::check_reachable(&route, service, Duration::from_secs(3)).await?;
    Ok(route)
}

/// What executing actions needs besides the plan.
pub struct Executor {
    pub runner: Arc<dyn Runner>,
    pub platform: Platform,
    /// The VM's driver; `None` when it is not known (`down` on a profile made elsewhere), and
    /// then no action that needs it is planned.
    pub driver: Option<&'static dyn Driver>,
    /// The NFS server's files; `None` as for the driver.
    pub nfs: Option<NfsHost>,
    pub project: String,
    pub uid: u32,
    /// `minikube docker-env`, asked once for every build of the run (it may restart dockerd
    /// in the VM, so it is not asked again per image).
    pub docker_env: tokio::sync::OnceCell<Result<crate::docker::DockerEnv, Failure>>,
}

impl Executor {
    /// An executor for `project` that knows no VM driver and no NFS server yet: enough for
    /// plans that touch neither (`init`); `up` and `down` set them.
    pub fn new(runner: Arc<dyn Runner>, platform: Platform, project: &str, uid: u32) -> Executor {
        Executor {
            runner,
            platform,
            driver: None,
            nfs: None,
            project: project.to_string(),
            uid,
            docker_env: Default::default(),
        }
    }

    /// The plan's stages as reconcile stages.
    pub fn stages<'a>(&'a self, plan: &'a Plan) -> Vec<Stage<'a>> {
        plan.stages
            .iter()
            .map(|s| {
                let after: Vec<&str> = s.after.iter().map(String::as_str).collect();
                Stage::new(s.name.clone(), &after, move |progress| {
                    Box::pin(async move {
                        let mut changed = false;
                        let mut said = Vec::new();
                        let mut effects = Vec::new();
                        for action in &s.actions {
                            if let Some(what) =
                                self.execute(action, &progress, &mut effects).await?
                            {
                                changed = true;
                                said.push(what);
                            }
                            if let Action::Build { spec, .. } = action {
                                effects.push(Effect::ImageBuilt {
                                    service: spec.service.clone(),
                                    hash: spec.hash.clone(),
                                });
                            }
                        }
                        let summary = if said.is_empty() {
                            s.actions
                                .iter()
                                .find_map(|a| match a {
                                    Action::Note(n) => Some(n.clone()),
                                    _ => None,
                                })
                                .unwrap_or_else(|| "ok".into())
                        } else {
                            said.join("; ")
                        };
                        Ok(Report {
                            changed,
                            summary,
                            effects,
                        })
                    })
                })
            })
            .collect()
    }

    /// Carry out one action. `Some(text)` says what changed; `None` means nothing did.
    async fn execute(
        &self,
        action: &Action,
        progress: &Progress,
        effects: &mut Vec<Effect>,
    ) -> Result<Option<String>, Failure> {
        match action {
            Action::Attempt {
                cmd,
                fine_if,
                otherwise,
            } => {
                let failed = match self.output(cmd, progress).await {
                    Ok(out) if out.success() || out.stderr.contains(fine_if) => None,
                    Ok(out) => check_success(cmd, out).err().map(|e| Failure::from(&e)),
                    Err(f) => Some(f),
                };
                match failed {
                    None => Ok(Some(short(cmd))),
                    Some(f) => {
                        progress.line(&format!("{otherwise}: {}", f.message));
                        effects.push(Effect::Left {
                            what: otherwise.clone(),
                            why: f.message,
                        });
                        Ok(None)
                    }
                }
            }
            Action::Unexport { path, .. } => {
                let outcome = apply::apply(
                    self.runner.as_ref(),
                    self.nfs()?,
                    &self.project,
                    self.uid,
                    &Change::Remove,
                    Duration::from_secs(60),
                )
                .await
                .map_err(|e| Failure::from(&e))?;
                Ok(said_of(path, &outcome))
            }
            Action::Unhost { path, backup, .. } => {
                crate::hosts::apply(
                    self.runner.as_ref(),
                    path,
                    backup,
                    &self.project,
                    self.uid,
                    None,
                )
                .await
                .map_err(|e| Failure::from(&e))?;
                Ok(Some(format!(
                    "devenv's block removed from {}",
                    path.display()
                )))
            }
            Action::Remove(files) => {
                let mut removed = 0;
                for f in files {
                    match std::fs::remove_file(f) {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(Failure::new(
                                codes::STATE_IO,
                                format!("cannot remove {}: {e}", f.display()),
                            ));
                        }
                    }
                }
                Ok((removed > 0).then(|| format!("removed {removed} files")))
            }
            Action::Note(_) => Ok(None),
            Action::Verify(v) => self.verify(v, progress).await.map(|()| None),
            Action::Run(cmd) => {
                // A program on the terminal may ask for a password: it is announced first.
                if cmd.is_interactive() {
                    progress.line(&format!("$ {}", cmd.display()));
                }
                self.run(cmd, progress).await?;
                Ok(Some(short(cmd)))
            }
            Action::Write {
                path,
                contents,
                mode,
            } => {
                progress.line(&format!("writing {}", path.display()));
                write_atomic_mode(path, contents.as_bytes(), *mode)
                    .map_err(|e| Failure::from(&e))?;
                Ok(Some(format!("wrote {}", path.display())))
            }
            Action::Exports {
                path,
                source,
                lines,
                grant,
                vm_address_of,
                ..
            } => {
                // The VM's own address, now that it runs: the lines are made for it here.
                let (lines, grant) = match vm_address_of {
                    Some(profile) => {
                        let ip = self.vm_address(profile).await?;
                        let client = devenv_drivers::ExportClient::Address(ip);
                        let line = crate::nfs::export_line(
                            self.nfs()?.dialect,
                            source,
                            client,
                            crate::nfs::Owner::current(),
                        );
                        let grant = grant.as_ref().map(|g| crate::nfs::Grant {
                            client,
                            ..g.clone()
                        });
                        (vec![line], grant)
                    }
                    None => (lines.clone(), grant.clone()),
                };
                let change = Change::Set {
                    source,
                    lines: &lines,
                    grant: grant.as_ref(),
                };
                let outcome = apply::apply(
                    self.runner.as_ref(),
                    self.nfs()?,
                    &self.project,
                    self.uid,
                    &change,
                    Duration::from_secs(60),
                )
                .await
                .map_err(|e| Failure::from(&e))?;
                Ok(said_of(path, &outcome))
            }
            Action::Mount(m) => self.mount(m, progress).await.map(Some),
            Action::Build { profile, spec } => {
                let env = self
                    .docker_env
                    .get_or_init(|| async {
                        crate::docker::DockerEnv::for_profile(self.runner.as_ref(), profile)
                            .await
                            .map_err(|e| Failure::from(&e))
                    })
                    .await
                    .clone()?;
                let daemon = crate::docker::Daemon::connect(&env)
                    .await
                    .map_err(|e| Failure::from(&e))?;
                let line = |l: &str| progress.line(&format!("{}: {l}", spec.service));
                let built = crate::docker::build::build(&daemon, spec, &line)
                    .await
                    .map_err(|e| Failure::from(&e))?;
                Ok(Some(format!(
                    "built {} as {} in {:.1}s",
                    spec.reference,
                    built.reference,
                    built.elapsed.as_secs_f64()
                )))
            }
            Action::Offload(step) => self
                .offload(step, progress)
                .await
                .map_err(|e| Failure::from(&e)),
        }
    }

    /// One offload step; `Some(text)` when it changed something.
    async fn offload(
        &self,
        step: &Step,
        progress: &Progress,
    ) -> Result<Option<String>, OffloadError> {
        match step {
            Step::Namespace {
                context,
                namespace,
                user,
                project,
                service,
                quota,
            } => {
                let client = offload::connect_remote(context, service).await?;
                let say = |line: &str| progress.line(line);
                let created = offload::ensure_namespace(
                    client.clone(),
                    context,
                    namespace,
                    user,
                    project,
                    &say,
                )
                .await?;
                let mut said = Vec::new();
                if created {
                    said.push(format!("created namespace {namespace} on {context}"));
                }
                said.extend(
                    offload::quota::ensure(client, context, namespace, quota.as_ref()).await?,
                );
                Ok((!said.is_empty()).then(|| said.join("; ")))
            }
            Step::DeleteNamespace {
                context,
                namespace,
                user,
            } => {
                // No service: the namespace is the whole project's.
                let client = offload::connect_remote(context, "").await?;
                let say = |line: &str| progress.line(line);
                let deleted =
                    offload::delete_namespace(client, context, namespace, user, &say).await?;
                Ok(deleted.then(|| format!("deleted namespace {namespace} on {context}")))
            }
            Step::Tunnel {
                profile,
                dir,
                context,
                namespace,
                forwards,
            } => {
                let files = tunnel::Files::new(dir);
                if forwards.is_empty() {
                    let stopped = tunnel::stop(&files)
                        .await
                        .map_err(|e| OffloadError::Tunnel(Box::new(e)))?;
                    return Ok(stopped.map(|pid| format!("tunnel supervisor (pid {pid}) stopped")));
                }
                let bind =
                    self.host_address(profile)
                        .await
                        .map_err(|failure| OffloadError::Local {
                            context: profile.clone(),
                            message: failure.message,
                        })?;
                progress.line(&format!("tunnel from {bind} through context {context}"));
                let spec = tunnel::Spec {
                    context: context.clone(),
                    namespace: namespace.clone(),
                    bind,
                    forwards: forwards.clone(),
                };
                let (status, started) = tunnel::ensure(&files, &spec)
                    .await
                    .map_err(|e| OffloadError::Tunnel(Box::new(e)))?;
                Ok(started.then(|| {
                    format!(
                        "tunnel supervisor (pid {}) forwards {}",
                        status.pid,
                        status
                            .forwards
                            .iter()
                            .map(|f| format!(
                                "{} → {}:{}",
                                f.listen, f.forward.host, f.forward.port
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }))
            }
            Step::Bridge {
                remote_context,
                remote_namespace,
                local_context,
                local_namespace,
                service,
                host,
                ports,
                tunnel: via_tunnel,
            } => {
                let (spec, local) =
                    local_bridge(local_context, local_namespace, service, host).await?;
                // A foreign object of the same name stops the stage before anything else.
                spec.check_owned(local.clone()).await?;
                let route = reachable_route(
                    remote_context,
                    remote_namespace,
                    service,
                    host,
                    ports,
                    via_tunnel.as_deref(),
                    progress,
                )
                .await?;
                let changed = spec.apply(local, &route).await?;
                Ok(changed.then(|| {
                    format!(
                        "{host} → {}:{}",
                        route.ip,
                        route
                            .ports
                            .iter()
                            .map(|(_, p)| p.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                }))
            }
            Step::Reach {
                remote_context,
                remote_namespace,
                local_context,
                local_namespace,
                release,
                service,
                host,
                ports,
                tunnel: via_tunnel,
            } => {
                let route = reachable_route(
                    remote_context,
                    remote_namespace,
                    service,
                    host,
                    ports,
                    via_tunnel.as_deref(),
                    progress,
                )
                .await?;
                progress.line(&format!("the remote {service} answers at {}", route.ip));
                let (spec, local) =
                    local_bridge(local_context, local_namespace, service, host).await?;
                let kept = spec.keep_through_release(local, release, &route).await?;
                Ok(kept.then(|| {
                    format!("Service {host} is kept through the release, with the remote address")
                }))
            }
            Step::Handover {
                local_context,
                local_namespace,
                service,
                host,
                release,
            } => {
                let (spec, local) =
                    local_bridge(local_context, local_namespace, service, host).await?;
                let handed = spec.hand_to_helm(local, release).await?;
                Ok(handed.then(|| format!("Service {host} handed to release {release}")))
            }
            Step::Unbridge {
                local_context,
                local_namespace,
                service,
                host,
                remote_context,
                remote_namespace,
            } => {
                let (spec, local) =
                    local_bridge(local_context, local_namespace, service, host).await?;
                let mut said = spec.retire(local).await?;
                // The laptop no longer needs the remote copy; failing to remove it must not keep
                // the service from coming back, so it is reported rather than fatal.
                let cmd = Cmd::new("helm")
                    .args(["uninstall", service, "--ignore-not-found"])
                    .args(["--kube-context", remote_context])
                    .args(["--namespace", remote_namespace])
                    .timeout(Duration::from_secs(120));
                match self.run(&cmd, progress).await {
                    Ok(_) => said.push(format!(
                        "uninstalled {service} from {remote_namespace} on {remote_context} (volumes kept)"
                    )),
                    Err(e) => progress.line(&format!(
                        "the remote release {service} is left in place: {}",
                        e.message
                    )),
                }
                Ok((!said.is_empty()).then(|| said.join("; ")))
            }
        }
    }

    /// Run `cmd`, its output lines shown as the stage's progress; a non-zero exit is a failure.
    async fn run(&self, cmd: &Cmd, progress: &Progress) -> Result<crate::process::Output, Failure> {
        let out = self.output(cmd, progress).await?;
        check_success(cmd, out).map_err(|e| Failure::from(&e))
    }

    /// Run `cmd`, its output lines shown as the stage's progress, whatever its exit.
    async fn output(
        &self,
        cmd: &Cmd,
        progress: &Progress,
    ) -> Result<crate::process::Output, Failure> {
        let sink = |_: Stream, line: &str| progress.line(line);
        self.runner
            .output_streaming(cmd, Some(&sink))
            .await
            .map_err(|e| Failure::from(&e))
    }

    async fn verify(&self, v: &Verify, progress: &Progress) -> Result<(), Failure> {
        match v {
            Verify::Versions(found) => Err(Failure::new(
                codes::VERSION_REQUIRED,
                v.known_failure(self.platform).unwrap_or_default(),
            )
            .with_help(format!(
                "install a version within the range, or ask whoever keeps devenv.toml to widen [requires]{}",
                if found.iter().any(|m| m.tool == crate::requires::Tool::Kubernetes) {
                    " (the shared cluster's version is the platform team's)"
                } else {
                    ""
                }
            ))),
            Verify::Failed(f) => Err(f.clone()),
            Verify::Driver { .. } | Verify::Tools(_) | Verify::Unsupported(_) => {
                match v.known_failure(self.platform) {
                    None => Ok(()),
                    Some(f) if matches!(v, Verify::Driver { .. }) => {
                        Err(Failure::new(codes::PREFLIGHT, f)
                            .with_help("`devenv doctor` shows every check with its fix"))
                    }
                    Some(f) => Err(Failure::new(codes::PREFLIGHT, f)),
                }
            }
            Verify::MountProbe {
                profile,
                host_dir,
                vm_dir,
            } => {
                let probe = crate::probe::Probe::write(host_dir, vm_dir)
                    .map_err(|e| Failure::from(&e))?;
                let vm_file = probe.vm_file.clone();
                let read = self
                    .runner
                    .output(&minikube::ssh(profile, &["cat", &vm_file]).read_only())
                    .await;
                let out = read.map_err(|e| Failure::from(&e))?;
                let seen = out.stdout.replace('\r', "");
                if out.success() && probe.seen_in(&seen) {
                    Ok(())
                } else {
                    Err(Failure::new(
                        codes::MOUNT,
                        format!(
                            "the VM does not see the host's files at {vm_dir}: reading {vm_file} gave {:?}",
                            tail_lines(&format!("{seen}{}", out.stderr), 3)
                        ),
                    )
                    .with_help(mount_causes(self.dialect())))
                }
            }
            Verify::Rollout {
                context,
                namespace,
                timeout,
            } => {
                let fail = |e: crate::cluster::ClusterError| Failure::from(&e);
                let client = crate::cluster::client(context).await.map_err(fail)?;
                let n =
                    crate::cluster::wait_rollout(client, namespace, *timeout, |l| progress.line(l))
                        .await
                        .map_err(fail)?;
                progress.line(&format!("{n} workloads ready"));
                Ok(())
            }
            Verify::Release {
                release,
                namespace,
                context,
            } => {
                let cmd = Cmd::new("helm")
                    .args(["status", release, "--namespace", namespace])
                    .args(["--kube-context", context, "-o", "json"])
                    .read_only()
                    .timeout(Duration::from_secs(60));
                let out = self
                    .runner
                    .output(&cmd)
                    .await
                    .map_err(|e| Failure::from(&e))?;
                let status = serde_json::from_str::<serde_json::Value>(&out.stdout)
                    .ok()
                    .and_then(|v| v["info"]["status"].as_str().map(str::to_string));
                match status.as_deref() {
                    Some("deployed") => Ok(()),
                    Some(other) => Err(Failure::new(
                        codes::RELEASE,
                        format!("release {release} is {other}"),
                    )
                    .with_help(format!(
                        "run `devenv up` again after fixing it (helm history {release} -n {namespace})"
                    ))),
                    None => Err(Failure::new(
                        codes::RELEASE,
                        format!(
                            "release {release} is missing from namespace {namespace}: {}",
                            tail_lines(&out.stderr, 3)
                        ),
                    )),
                }
            }
        }
    }

    /// The host's address as the VM of `profile` sees it (the VM must run).
    async fn host_address(&self, profile: &str) -> Result<Ipv4Addr, Failure> {
        let driver = self
            .driver
            .ok_or_else(|| Failure::new(codes::DRIVER_UNKNOWN, "the VM's driver is not known"))?;
        Ok(driver.host_address(self.vm_address(profile).await?))
    }

    fn nfs(&self) -> Result<&NfsHost, Failure> {
        self.nfs.as_ref().ok_or_else(|| {
            Failure::new(
                codes::DRIVER_UNKNOWN,
                "the NFS server of this machine is not known for the VM's driver",
            )
        })
    }

    /// The dialect of the exports file, for the help of a failed mount.
    fn dialect(&self) -> devenv_drivers::ExportsDialect {
        self.nfs
            .as_ref()
            .map_or(devenv_drivers::ExportsDialect::Linux, |n| n.dialect)
    }

    /// The VM's own address, from `minikube ip`.
    async fn vm_address(&self, profile: &str) -> Result<Ipv4Addr, Failure> {
        let out = self
            .runner
            .output(&minikube::ip(profile))
            .await
            .map_err(|e| Failure::from(&e))?;
        let ip: Ipv4Addr = out.stdout.trim().parse().map_err(|_| {
            Failure::new(
                codes::VM_ADDRESS,
                format!(
                    "`minikube ip -p {profile}` did not give an address: {}",
                    tail_lines(&format!("{}{}", out.stdout, out.stderr), 3)
                ),
            )
        })?;
        Ok(ip)
    }

    async fn mount(&self, m: &MountSpec, progress: &Progress) -> Result<String, Failure> {
        let host = match m.host {
            Some(h) => h,
            None => self.host_address(&m.profile).await?,
        };
        let [mkdir, mount] = m.commands(host);
        self.run(&mkdir, progress).await?;
        self.run(&mount, progress).await.map_err(|e| {
            Failure {
                code: codes::MOUNT,
                message: format!("the NFS mount failed: {}", e.message),
                ..e
            }
            .and_help(format!("likely causes:\n{}", mount_causes(self.dialect())))
        })?;
        Ok(format!(
            "mounted {host}:{} at {}",
            m.source.display(),
            m.target
        ))
    }
}

/// A client for the local cluster, with its failure in the offload error's terms.
/// The bridge of `service` in the local cluster of `context`, and a client for that cluster.
async fn local_bridge<'a>(
    context: &'a str,
    namespace: &'a str,
    service: &'a str,
    host: &'a str,
) -> Result<(BridgeSpec<'a>, kube::Client), OffloadError> {
    let client = local_client(context).await?;
    let spec = BridgeSpec {
        context,
        namespace,
        service,
        host,
    };
    Ok((spec, client))
}

async fn local_client(context: &str) -> Result<kube::Client, OffloadError> {
    crate::cluster::client(context)
        .await
        .map_err(|e| OffloadError::Local {
            context: context.to_string(),
            message: e.to_string(),
        })
}

/// What usually stops an NFS mount from the VM, with the command that checks each.
fn mount_causes(dialect: devenv_drivers::ExportsDialect) -> String {
    match dialect {
        devenv_drivers::ExportsDialect::Linux => [
            "- the NFS server is not running: systemctl status nfs-server",
            "- the export does not include the VM: sudo exportfs -v (and devenv exports)",
            "- a firewall blocks NFS from the VM: sudo ufw status / sudo firewall-cmd --list-services",
        ]
        .join("\n"),
        devenv_drivers::ExportsDialect::MacOs => [
            "- nfsd is not running: sudo nfsd status",
            "- the export does not include the VM: showmount -e (and devenv exports)",
            "- the macOS firewall blocks nfsd: System Settings > Network > Firewall",
        ]
        .join("\n"),
    }
}

/// A command shortened for a summary line: the program and its first two words.
/// What a change of the exports file did, in a line (`None`: nothing).
fn said_of(path: &std::path::Path, outcome: &apply::Outcome) -> Option<String> {
    match outcome {
        apply::Outcome::Unchanged => None,
        apply::Outcome::Reloaded => Some(format!(
            "{}: as wanted; NFS server reloaded (an interrupted change had not)",
            path.display()
        )),
        apply::Outcome::Changed { backup } => Some(format!(
            "{} changed{}; NFS server reloaded",
            path.display(),
            backup
                .as_ref()
                .map(|b| format!(" (previous version kept in {})", b.display()))
                .unwrap_or_default()
        )),
    }
}

fn short(cmd: &Cmd) -> String {
    let words: Vec<String> = std::iter::once(cmd.program().to_string())
        .chain(
            cmd.get_args()
                .iter()
                .take(2)
                .map(|a| a.to_string_lossy().into_owned()),
        )
        .collect();
    format!("ran {}", words.join(" "))
}
