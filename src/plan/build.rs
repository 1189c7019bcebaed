//! `Plan::build`: the stages of `up` in dependency order, a pure function of the config and
//! the facts read beforehand.

use super::*;

impl Plan {
    pub fn build(loaded: &Loaded, facts: &Facts) -> Plan {
        let c = &loaded.config;
        let profile = c.project.profile();
        let driver = facts.driver;
        let remote: Vec<&str> = facts
            .placements
            .iter()
            .filter(|(_, p)| *p == Placement::Remote)
            .map(|(n, _)| n.as_str())
            .collect();
        let mut stages = Vec::new();

        let mut preflight = vec![
            Action::Verify(Verify::Driver {
                name: driver.name(),
                failure: facts.driver_failure.clone(),
            }),
            Action::Verify(Verify::Tools(TOOLS.to_vec())),
        ];
        if !facts.version_mismatches.is_empty() {
            preflight.push(Action::Verify(Verify::Versions(
                facts.version_mismatches.clone(),
            )));
        }
        if facts.exports.sudo {
            preflight.push(Action::Note(format!(
                "sudo is asked for once, before any stage starts, to edit {} and reload the NFS server",
                facts.exports.file.display()
            )));
        }
        if let Some(other) = &facts.other_checkout {
            preflight.push(Action::Verify(Verify::Unsupported(format!(
                "minikube profile {profile} already serves {} at {} (another checkout with [project] name = \"{}\"), so this one at {} would take its export and mount over: stop the other first (`devenv down` in {}), or give this checkout its own minikube profile: set another [project] name in its devenv.toml",
                other.display(),
                c.mount.target,
                c.project.name,
                facts.exports.source.display(),
                other.display()
            ))));
        }
        if let Some(why) = &facts.remote_refusal {
            preflight.push(Action::Verify(Verify::Unsupported(why.to_string())));
        }
        if !remote.is_empty() && c.remote.is_none() {
            preflight.push(Action::Verify(Verify::Unsupported(format!(
                "{} should run on the remote cluster but devenv.toml has no [remote] section; add one, or `devenv offload <service> --local`",
                remote.join(", ")
            ))));
        }
        stages.push(stage("preflight", &[], preflight));

        // vm
        let start = minikube::start(&profile, driver, &c.vm);
        let vm = match &facts.vm_state {
            Some(VmState::Running) if facts.vm_drift.is_empty() => vec![Action::Note(format!(
                "{profile} is running with the settings of [vm]"
            ))],
            Some(VmState::Running) if facts.recreate => vec![
                Action::Note(format!(
                    "{profile} differs from [vm] ({}): it is deleted and created again",
                    facts.vm_drift.join(", ")
                )),
                Action::Run(Cmd::new("minikube").args(["delete", "-p", &profile])),
                Action::Run(start),
            ],
            Some(VmState::Running) => vec![Action::Note(format!(
                "{profile} is running but differs from [vm] ({}); minikube cannot change a VM in place: `devenv up --recreate` deletes and recreates it (the cluster's contents are lost)",
                facts.vm_drift.join(", ")
            ))],
            Some(VmState::Stopped) if let Some(stored) = &facts.vm_driver_mismatch => {
                vec![Action::Verify(Verify::Unsupported(format!(
                    "{profile} was created with the {stored} driver and minikube cannot start it with {} (GUEST_DRIVER_MISMATCH): set vm.driver = \"{stored}\" (or \"auto\") to keep it, or `devenv down --purge` to delete it and let `devenv up` create it with {}",
                    driver.name(),
                    driver.name()
                )))]
            }
            Some(VmState::Stopped) => vec![
                Action::Note(format!(
                    "{profile} exists and is stopped: it is started again"
                )),
                Action::Run(start),
            ],
            Some(VmState::Unknown(why)) => vec![
                Action::Note(format!(
                    "minikube could not tell how {profile} stands ({why}): `minikube start` brings it up whichever it is"
                )),
                Action::Run(start),
            ],
            _ => vec![Action::Run(start)],
        };
        let starts = match &facts.vm_state {
            Some(VmState::Running) => facts.recreate && !facts.vm_drift.is_empty(),
            Some(VmState::Stopped) => facts.vm_driver_mismatch.is_none(),
            _ => true,
        };
        let vm = if starts {
            oversize(c, facts.host).into_iter().chain(vm).collect()
        } else {
            vm
        };
        let vm = stage("vm", &["preflight"], vm);
        stages.push(match &facts.vm_state {
            Some(VmState::Running) if facts.recreate && !facts.vm_drift.is_empty() => {
                vm.destroys(format!(
                    "delete the VM {profile} with everything its cluster holds, and create it again"
                ))
            }
            _ => vm,
        });

        // exports: after the VM, whose own address it is granted to
        let ex = &facts.exports;
        let vm_address_of = ex.awaits_vm_address.then(|| profile.clone());
        let exports = match &ex.diff {
            Ok(diff) if diff.is_empty() && vm_address_of.is_none() && !ex.reload_owed => {
                vec![Action::Note(format!(
                    "{} already exports {} to the VM",
                    ex.file.display(),
                    ex.source.display()
                ))]
            }
            Ok(diff) => {
                let mut actions = Vec::new();
                if ex.reload_owed && diff.is_empty() {
                    actions.push(Action::Note(format!(
                        "{} is as wanted, but an interrupted change never reloaded the NFS server: it is reloaded now",
                        ex.file.display()
                    )));
                }
                if vm_address_of.is_some() {
                    actions.push(Action::Note(format!(
                        "the export is granted to the VM's own address, read with `minikube ip` once it runs ({} stands in for it below)",
                        ex.client
                    )));
                }
                actions.push(Action::Exports {
                    path: ex.file.clone(),
                    diff: diff.clone(),
                    source: ex.source.clone(),
                    lines: ex.lines.clone(),
                    grant: ex.grant.clone(),
                    vm_address_of,
                    reload: ex.reload.clone(),
                });
                actions
            }
            Err(why) => vec![Action::Verify(Verify::Failed(why.clone()))],
        };
        stages.push(stage("exports", &["preflight", "vm"], exports));

        // mount
        let mount = MountSpec {
            profile: profile.clone(),
            host: facts.vm_ip.map(|ip| driver.host_address(ip)),
            assumed_host: minikube::expected_host_address(driver),
            source: ex.source.clone(),
            target: c.mount.target.clone(),
            options: c.mount.options.clone(),
        };
        let probe = Action::Verify(Verify::MountProbe {
            profile: profile.clone(),
            host_dir: facts.probe_dir.clone(),
            vm_dir: c.mount.target.clone(),
        });
        let mount_actions = if facts.mounted && facts.mount_probed {
            vec![Action::Note(format!(
                "{} is already mounted at {} in the VM, and a probe file written on the host just read back through it",
                ex.source.display(),
                c.mount.target
            ))]
        } else if facts.mounted {
            vec![
                Action::Note(format!(
                    "{} is already mounted at {} in the VM",
                    ex.source.display(),
                    c.mount.target
                )),
                probe,
            ]
        } else {
            vec![Action::Mount(mount), probe]
        };
        stages.push(stage("mount", &["exports", "vm"], mount_actions));

        // remote services and their bridges
        let mut release_after = vec!["mount".to_string()];
        let mut bridges: Vec<String> = Vec::new();
        // Stage name and step of each bridge to retire once the local copy is rolled out.
        let mut unbridges: Vec<(String, crate::offload::Step)> = Vec::new();
        let local_ns = c.project.namespace().to_string();
        if let Some(r) = &c.remote {
            let namespace = crate::offload::remote_namespace(&facts.user, &c.project.name);
            let tunnel = r.connect == Connect::Tunnel;
            // A supervisor left from before a switch to `direct` is stopped too.
            if (tunnel && !remote.is_empty()) || facts.tunnel_running {
                let forwards = remote
                    .iter()
                    .filter(|_| tunnel)
                    .flat_map(|name| {
                        let svc = &c.services[*name];
                        svc.all_ports()
                            .into_iter()
                            .map(|port| crate::offload::tunnel::Forward {
                                service: name.to_string(),
                                host: svc.host.clone().unwrap_or_default(),
                                port,
                            })
                    })
                    .collect();
                let mut after = vec!["vm".to_string()];
                after.extend(remote.iter().map(|n| format!("remote:{n}")));
                let after: Vec<&str> = after.iter().map(String::as_str).collect();
                stages.push(stage(
                    "tunnel",
                    &after,
                    vec![Action::Offload(crate::offload::Step::Tunnel {
                        profile: profile.clone(),
                        dir: facts.state_dir.clone(),
                        context: r.context.clone(),
                        namespace: namespace.clone(),
                        forwards,
                    })],
                ));
            }
            for name in &remote {
                let svc = &c.services[*name];
                let key = svc.values_key.clone().unwrap_or_default();
                let chart = loaded.chart_dir().join("charts").join(&key);
                let mut actions = vec![Action::Offload(crate::offload::Step::Namespace {
                    context: r.context.clone(),
                    namespace: namespace.clone(),
                    user: facts.user.clone(),
                    project: c.project.name.clone(),
                    service: name.to_string(),
                    quota: r.quota.clone(),
                })];
                if facts.release_unchanged {
                    actions.push(Action::Verify(Verify::Release {
                        release: name.to_string(),
                        namespace: namespace.clone(),
                        context: r.context.clone(),
                    }));
                } else {
                    let timeout = format!("{}s", c.project.rollout_timeout().as_secs());
                    // The values go through stdin (`--values -`): they are derived from the
                    // chart and the team's files, so a copy on disk would only go stale.
                    let values = match facts.remote_values.get(*name) {
                        Some(Ok(values)) => values.clone(),
                        Some(Err(why)) => {
                            actions.push(Action::Verify(Verify::Failed(why.clone())));
                            serde_json::Value::Null
                        }
                        None => serde_json::Value::Null,
                    };
                    // Values may hold passwords: the plan names where they come from only.
                    actions.push(Action::Note(format!(
                        "the release gets the values the umbrella chart gives {key}: its {key} and global sections of the chart's values.yaml and the team's values files, on stdin"
                    )));
                    actions.push(Action::Run(helm::bounded(
                        Cmd::new("helm")
                            .args(["upgrade", "--install", name])
                            .arg(chart)
                            .args(["--kube-context", &r.context])
                            .args(["--namespace", &namespace])
                            .args(["--values", "-", "--timeout", &timeout])
                            .stdin(values.to_string()),
                        c.project.rollout_timeout(),
                    )));
                    actions.push(Action::Verify(Verify::Rollout {
                        context: r.context.clone(),
                        namespace: namespace.clone(),
                        timeout: c.project.rollout_timeout(),
                    }));
                }
                stages.push(stage(&format!("remote:{name}"), &["preflight"], actions));
                let bridge = format!("bridge:{name}");
                let remote_stage = format!("remote:{name}");
                if !facts.bridged.iter().any(|b| b == name) {
                    // A toggle to remote: the release turns the laptop's copy off (and removes
                    // its Service) only once the remote copy is ready and answers where the
                    // bridge will point, so the name is without a server only while the
                    // Service is switched.
                    let reach = format!("reach:{name}");
                    let mut after = vec![remote_stage.as_str()];
                    if tunnel {
                        after.push("tunnel");
                    }
                    stages.push(stage(
                        &reach,
                        &after,
                        vec![Action::Offload(crate::offload::Step::Reach {
                            remote_context: r.context.clone(),
                            remote_namespace: namespace.clone(),
                            local_context: profile.clone(),
                            local_namespace: local_ns.clone(),
                            release: c.project.release().to_string(),
                            service: name.to_string(),
                            host: svc.host.clone().unwrap_or_default(),
                            ports: svc.all_ports(),
                            tunnel: tunnel.then(|| facts.state_dir.clone()),
                        })],
                    ));
                    release_after.push(reach);
                }
                // After the release: it removes the local subchart's own Service of the same
                // name, which the bridge replaces.
                let mut after = vec!["vm", remote_stage.as_str(), "release"];
                if tunnel {
                    after.push("tunnel");
                }
                stages.push(stage(
                    &bridge,
                    &after,
                    vec![Action::Offload(crate::offload::Step::Bridge {
                        remote_context: r.context.clone(),
                        remote_namespace: namespace.clone(),
                        local_context: profile.clone(),
                        local_namespace: local_ns.clone(),
                        service: name.to_string(),
                        host: svc.host.clone().unwrap_or_default(),
                        ports: svc.all_ports(),
                        tunnel: tunnel.then(|| facts.state_dir.clone()),
                    })],
                ));
                bridges.push(bridge);
            }
            // Readiness gates: a local service that needs an offloaded one is released only
            // once the shared cluster has that one ready (and the tunnel forwards it).
            let mut gates: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (name, placement) in &facts.placements {
                if *placement != Placement::Local {
                    continue;
                }
                for need in c.services.get(name).map(|s| &s.needs[..]).unwrap_or(&[]) {
                    if remote.contains(&need.as_str()) {
                        gates.entry(need.as_str()).or_default().push(name.as_str());
                    }
                }
            }
            for (need, by) in gates {
                let gate = format!("needs:{need}");
                let remote_stage = format!("remote:{need}");
                let mut after = vec![remote_stage.as_str()];
                if tunnel {
                    after.push("tunnel");
                }
                stages.push(stage(
                    &gate,
                    &after,
                    vec![
                        Action::Note(format!(
                            "{} need{} {need}, which runs on the shared cluster: the local release waits until it is ready there{}",
                            by.join(", "),
                            if by.len() == 1 { "s" } else { "" },
                            if tunnel { " and the tunnel forwards it" } else { "" }
                        )),
                        Action::Verify(Verify::Rollout {
                            context: r.context.clone(),
                            namespace: namespace.clone(),
                            timeout: c.project.rollout_timeout(),
                        }),
                    ],
                ));
                release_after.push(gate);
            }
            // Services back on the laptop whose bridge is still in the local cluster: the
            // release adopts the bridge's Service, and the remote address goes only once the
            // local copy is rolled out (stages added after the rollout's, below).
            let mut coming_back: Vec<&String> = facts.bridged.iter().collect();
            coming_back.extend(
                facts
                    .remote_releases
                    .iter()
                    .filter(|n| !facts.bridged.contains(n)),
            );
            for name in coming_back {
                let Some(svc) = c.services.get(name) else {
                    continue;
                };
                if remote.contains(&name.as_str()) {
                    continue;
                }
                let handover = format!("handover:{name}");
                let host = svc.host.clone().unwrap_or_default();
                stages.push(stage(
                    &handover,
                    &["vm"],
                    vec![Action::Offload(crate::offload::Step::Handover {
                        local_context: profile.clone(),
                        local_namespace: local_ns.clone(),
                        service: name.clone(),
                        host: host.clone(),
                        release: c.project.release().to_string(),
                    })],
                ));
                release_after.push(handover);
                unbridges.push((
                    format!("unbridge:{name}"),
                    crate::offload::Step::Unbridge {
                        local_context: profile.clone(),
                        local_namespace: local_ns.clone(),
                        service: name.clone(),
                        host,
                        remote_context: r.context.clone(),
                        remote_namespace: namespace.clone(),
                    },
                ));
            }
        }

        // images
        let mut images = Vec::new();
        for image in &facts.images {
            match &image.spec {
                Err(why) => {
                    images.push(Action::Verify(Verify::Failed(crate::diagnostic::Failure {
                        message: format!("the image of {}: {}", image.service, why.message),
                        ..why.clone()
                    })))
                }
                Ok(spec) if image.built => images.push(Action::Note(format!(
                    "{} is built from the current {} (as {})",
                    spec.reference,
                    spec.context.display(),
                    spec.content_reference()
                ))),
                Ok(spec) => images.push(Action::Build {
                    profile: profile.clone(),
                    spec: spec.clone(),
                }),
            }
        }
        if images.is_empty() {
            images.push(Action::Note(
                "no service has an [image]: nothing to build".into(),
            ));
        }
        stages.push(stage("images", &["vm"], images));
        release_after.push("images".to_string());

        // release
        let built: Vec<(&str, &ImageSpec)> = facts
            .images
            .iter()
            .filter_map(|i| Some((i.service.as_str(), i.spec.as_ref().ok()?)))
            .collect();
        let overlay = helm::overlay(loaded, &facts.placements, &built);
        let after: Vec<&str> = release_after.iter().map(String::as_str).collect();
        let release = if facts.release_unchanged {
            vec![
                Action::Note(
                    "the chart, the values and devenv.toml are unchanged since the last up".into(),
                ),
                Action::Verify(Verify::Release {
                    release: c.project.release().to_string(),
                    namespace: c.project.namespace().to_string(),
                    context: profile.clone(),
                }),
            ]
        } else {
            vec![
                Action::Write {
                    path: facts.overlay_file.clone(),
                    contents: serde_json::to_string_pretty(&overlay).expect("json") + "\n",
                    mode: None,
                },
                Action::Run(helm::upgrade_install(loaded, &profile, &facts.overlay_file)),
            ]
        };
        stages.push(stage("release", &after, release));
        let mut summary_after = vec!["release".to_string()];
        summary_after.extend(bridges.iter().cloned());
        if !facts.release_unchanged {
            // Watched once the bridges exist, since apps may need the offloaded services to
            // become ready.
            let mut after = vec!["release".to_string()];
            after.extend(bridges);
            let after: Vec<&str> = after.iter().map(String::as_str).collect();
            stages.push(stage(
                "rollout",
                &after,
                vec![Action::Verify(Verify::Rollout {
                    context: profile.clone(),
                    namespace: c.project.namespace().to_string(),
                    timeout: c.project.rollout_timeout(),
                })],
            ));
            summary_after = vec!["rollout".to_string()];
        }
        let unbridge_after = summary_after.clone();
        for (name, step) in unbridges {
            let after: Vec<&str> = unbridge_after.iter().map(String::as_str).collect();
            stages.push(stage(&name, &after, vec![Action::Offload(step)]));
            summary_after.push(name);
        }

        let local: Vec<&str> = facts
            .placements
            .iter()
            .filter(|(_, p)| *p == Placement::Local)
            .map(|(n, _)| n.as_str())
            .collect();
        let mut summary = vec![Action::Note(format!(
            "local: {}",
            if local.is_empty() {
                "-".into()
            } else {
                local.join(", ")
            }
        ))];
        if !remote.is_empty() {
            summary.push(Action::Note(format!("remote: {}", remote.join(", "))));
        }
        if let Some(purge) = &facts.purge_remote {
            let PurgeRemote {
                context,
                namespace,
                still,
            } = purge;
            let purge = if still.is_empty() {
                stage(
                    "purge",
                    &summary_after.iter().map(String::as_str).collect::<Vec<_>>(),
                    vec![Action::Offload(crate::offload::Step::DeleteNamespace {
                        context: context.clone(),
                        namespace: namespace.clone(),
                        user: facts.user.clone(),
                    })],
                )
                .destroys(format!(
                    "delete your namespace {namespace} on {context} with its releases, volumes and data"
                ))
                .by_hand(format!("kubectl --context {context} delete namespace {namespace}"))
            } else {
                stage(
                    "purge",
                    &["preflight"],
                    vec![Action::Verify(Verify::Unsupported(format!(
                        "namespace {namespace} on {context} is kept: {} still run there; bring them back with `devenv offload <service> --local` first, then --purge",
                        still.join(", ")
                    )))],
                )
            };
            summary_after.push(purge.name.clone());
            stages.push(purge);
        }
        let summary_after: Vec<&str> = summary_after.iter().map(String::as_str).collect();
        stages.push(stage("summary", &summary_after, summary));

        Plan {
            project: c.project.name.clone(),
            profile,
            driver: driver.name().to_string(),
            stages,
            title: None,
        }
    }
}

/// What `[vm]` asks for beyond what the machine has, said before the VM is started: more CPUs
/// than the machine has are shared (the VM and the laptop slow each other down), and memory
/// the machine does not have is taken from everything else or refused.
fn oversize(c: &crate::config::Config, host: Option<crate::machine::Resources>) -> Vec<Action> {
    let Some(host) = host else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    if c.vm.cpus > host.cpus {
        notes.push(Action::Note(format!(
            "warning: [vm] cpus = {} but this machine has {}: the VM's CPUs share the machine's and both slow down; set vm.cpus to {} or fewer",
            c.vm.cpus, host.cpus, host.cpus
        )));
    }
    if c.vm.memory.mib() > host.memory_mib {
        notes.push(Action::Note(format!(
            "warning: [vm] memory = {} MiB but this machine has {} MiB: minikube may refuse to start the VM, or the machine swaps; set vm.memory below that (half is a good start)",
            c.vm.memory.mib(),
            host.memory_mib
        )));
    }
    notes
}
fn stage(name: &str, after: &[&str], actions: Vec<Action>) -> Stage {
    Stage::new(name, after, actions)
}
