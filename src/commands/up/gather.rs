//! What `up` reads before it plans: [`gather`] collects every fact [`Plan::build`] needs, so
//! the plan is a pure function of devenv.toml and them.

use super::*;
use crate::diagnostic::{Failure, codes};

/// What `up` plans from, and what it needs of it afterwards.
pub(super) struct Gathered {
    pub facts: Facts,
    pub export: Export,
    pub vm: VmFacts,
    /// The release's fingerprint, recorded once the release succeeds.
    pub fingerprint: String,
}

/// Every read `up` plans from, in one place: the VM (its state, settings, address and mounts,
/// and for a mutating run a probe file read back through the mount), the driver's health when
/// the VM is not running, the exports file and the change devenv's block needs, a second
/// checkout in the same profile, the bridges in the cluster, the images and their contexts,
/// the values each offloaded subchart gets, the tools' versions and the fingerprint of the last
/// successful release. It changes nothing (the probe file is removed before it returns), so
/// [`Plan::build`] works on what it returns alone.
pub(super) async fn gather(
    ctx: &Context,
    loaded: &Loaded,
    project: &crate::state::ProjectDir,
    state: &crate::state::ProjectState,
    placements: &[(String, Placement)],
    args: &Args,
) -> Result<Gathered, Error> {
    let c = &loaded.config;
    let profile = c.project.profile();
    // A mutating run reads the probe with the mounts: a VM that already serves the tree is
    // then checked in the same SSH session. A dry run writes nothing, not even a probe.
    let probe = if args.change.dry_run {
        None
    } else {
        loaded
            .source_dir()
            .canonicalize()
            .ok()
            .and_then(|dir| Probe::write(&dir, &c.mount.target).ok())
    };
    let vm = read_vm(ctx, &profile, probe.as_ref()).await;
    drop(probe);
    // A running VM shows its driver works: skip the health probes (libvirt's can take seconds),
    // which keeps a no-op `up` fast.
    let choice = Choice::parse(&c.vm.driver);
    let stored_driver = vm.settings.as_ref().map(|s| s.driver.clone());
    let (driver, driver_failure) = if vm.state == Some(VmState::Running) {
        let driver = match vm.settings.as_ref().map(|s| s.driver.as_str()) {
            Some(name) if choice == Choice::Auto => {
                machine::driver_for(&Choice::Named(name.into()))
                    .or_else(|_| machine::driver_for(&choice))?
            }
            _ => machine::driver_for(&choice)?,
        };
        (driver, None)
    } else {
        let host = Machine::probe(ctx.runner.clone())
            .await
            .with_root(ctx.host_root.clone());
        // `auto` keeps the driver a stopped profile was created with.
        let choice = match (&choice, &stored_driver) {
            (Choice::Auto, Some(name))
                if machine::driver_for(&Choice::Named(name.clone())).is_ok() =>
            {
                Choice::Named(name.clone())
            }
            _ => choice.clone(),
        };
        let (driver, status) = machine::select_driver(&host, &choice).await?;
        let failure = status
            .first_failure()
            .map(|f| (f.reason.clone(), f.fix.clone()));
        (driver, failure)
    };

    let export = Export::at_address(ctx, loaded, vm.ip)?;
    let change = export.set();
    let diff = nfs::read_exports(&export.host.exports)
        .map_err(|e| {
            Failure::new(
                codes::EXPORTS_IO,
                format!("cannot read {}: {e}", export.host.exports.display()),
            )
        })
        .and_then(|current| {
            let current = current.unwrap_or_default();
            candidate(
                &current,
                &export.host,
                &export.project,
                export.owner.uid,
                &change,
            )
            .map(|after| nfs::diff(&current, &after))
            .map_err(|e| Failure::from(&e))
        });

    let vm_driver_mismatch = match (&vm.state, &stored_driver) {
        (Some(VmState::Stopped), Some(stored)) if stored != driver.name() => Some(stored.clone()),
        _ => None,
    };
    let vm_drift = match (&vm.state, &vm.settings) {
        (Some(VmState::Running), Some(s)) => minikube::drift(s, driver, &c.vm),
        _ => Vec::new(),
    };
    let recreate = args.recreate && !vm_drift.is_empty();
    let mounted = !recreate
        && vm.proc_mounts.as_deref().is_some_and(|m| {
            minikube::has_nfs_mount(m, &export.source.to_string_lossy(), &c.mount.target)
        });
    // Another checkout with the same [project] name (a second clone, a worktree) already has
    // its tree mounted in this profile's VM: taking the profile over would rewrite its export
    // and fail at the mount. A source that no longer exists is a moved checkout: no conflict.
    let other_checkout = (!recreate)
        .then_some(vm.proc_mounts.as_deref())
        .flatten()
        .and_then(|m| {
            minikube::parse_mounts(m).into_iter().find_map(|m| {
                let (_, path) = m.device.split_once(':')?;
                let path = std::path::PathBuf::from(path);
                (m.point == c.mount.target
                    && m.fstype.starts_with("nfs")
                    && path != export.source
                    && path.is_dir())
                .then_some(path)
            })
        });
    let bridged = if vm.state == Some(VmState::Running) && c.remote.is_some() {
        read_bridges(&profile, c.project.namespace()).await
    } else {
        Vec::new()
    };
    let remote_releases = state
        .remote_releases
        .iter()
        .filter(|name| c.services.contains_key(*name))
        .cloned()
        .collect();
    // Only when something is to be sent to the remote cluster: a pin that refuses its context
    // must not stop a project that runs everything locally.
    let remote_used = placements.iter().any(|(_, p)| *p == Placement::Remote)
        || !state.remote_releases.is_empty();
    let remote_refusal = c
        .remote
        .as_ref()
        .filter(|_| remote_used)
        .and_then(|r| crate::offload::allowed_server(r).err());
    let images = read_images(loaded, placements, state, &vm.state, recreate);
    let overlay_file = project.path().join("values-overlay.json");
    let image_hashes: Vec<(&str, &str)> = images
        .iter()
        .filter_map(|i| Some((i.service.as_str(), i.spec.as_ref().ok()?.hash.as_str())))
        .collect();
    let fingerprint = release_fingerprint(loaded, placements, &profile, &image_hashes);
    let release_unchanged = !recreate
        && vm.state == Some(VmState::Running)
        && mounted
        && state.applied_fingerprint.as_deref() == Some(fingerprint.as_str());
    let version_mismatches = crate::requires::mismatches(
        ctx.runner.as_ref(),
        &c.requires,
        ctx.platform,
        c.remote
            .as_ref()
            .filter(|_| remote_used && remote_refusal.is_none())
            .map(|r| r.context.as_str()),
    )
    .await;
    let facts = Facts {
        version_mismatches,
        remote_refusal,
        host: machine::resources(ctx.host_root.as_deref()),
        driver,
        driver_failure: driver_failure.as_ref().map(|(reason, fix)| {
            format!(
                "{reason}{}",
                fix.as_ref()
                    .map(|x| format!(" (fix: {x})"))
                    .unwrap_or_default()
            )
        }),
        placements: placements.to_vec(),
        exports: ExportsFacts {
            file: export.host.exports.clone(),
            source: export.source.clone(),
            lines: export.lines.clone(),
            client: export.client,
            grant: Some(export.grant.clone()),
            // A recreated VM may come back on another subnet.
            awaits_vm_address: export.awaits_vm_address
                || (recreate && c.mount.export_client.is_none()),
            diff,
            sudo: export.host.privilege == Privilege::Sudo,
            reload: export.host.reload.clone(),
            reload_owed: export.host.reload_owed(),
        },
        vm_state: vm.state.clone(),
        vm_ip: vm.ip,
        vm_drift,
        vm_driver_mismatch,
        other_checkout,
        recreate,
        mounted,
        mount_probed: mounted && vm.probed,
        overlay_file,
        probe_dir: loaded
            .source_dir()
            .canonicalize()
            .unwrap_or_else(|_| loaded.source_dir()),
        remote_values: placements
            .iter()
            .filter(|(_, p)| *p == Placement::Remote)
            .map(|(name, _)| {
                let key = c.services[name].values_key.clone().unwrap_or_default();
                let mut files = vec![loaded.chart_dir().join("values.yaml")];
                files.extend(c.project.values.iter().map(|v| loaded.root.join(v)));
                let values =
                    crate::offload::subchart_values(&files, &key).map_err(|e| Failure::from(&e));
                (name.clone(), values)
            })
            .collect(),
        release_unchanged,
        user: ctx.user.clone(),
        bridged,
        remote_releases,
        state_dir: project.path().to_path_buf(),
        tunnel_running: crate::offload::tunnel::Files::new(project.path())
            .running()
            .is_some(),
        images: images.clone(),
        purge_remote: c.remote.as_ref().filter(|_| args.purge_remote).map(|r| {
            crate::plan::PurgeRemote {
                context: r.context.clone(),
                namespace: crate::offload::remote_namespace(&ctx.user, &c.project.name),
                still: placements
                    .iter()
                    .filter(|(_, p)| *p == Placement::Remote)
                    .map(|(n, _)| n.clone())
                    .collect(),
            }
        }),
    };
    Ok(Gathered {
        facts,
        export,
        vm,
        fingerprint,
    })
}

/// What minikube says about the VM, read-only.
pub(super) struct VmFacts {
    pub state: Option<VmState>,
    pub ip: Option<std::net::Ipv4Addr>,
    settings: Option<minikube::ProfileSettings>,
    proc_mounts: Option<String>,
    /// A probe file written on the host was read back through the mount while reading.
    probed: bool,
}

/// Read the VM in as few minikube calls as the answers allow, since each real one is slow
/// (a process start and config reads; `status` and the full `profile list` SSH into the VM).
/// First `profile list -l` (files only): no such profile ends the read. Then one `ssh` that
/// reads `/proc/mounts` and, when `probe` is given, the probe file through the mount: its exit
/// says whether the VM runs (83: stopped, 85: gone) and the light list already holds the
/// settings and the address. Anything less clear (the list unreadable, ssh failing otherwise,
/// a time-out) falls back to asking `status` and the rest one by one.
async fn read_vm(ctx: &Context, profile: &str, probe: Option<&Probe>) -> VmFacts {
    let listed = match ctx.runner.output(&minikube::profile_list_light()).await {
        Ok(out) if out.success() => minikube::find_profile(&out.stdout, profile).ok(),
        _ => None,
    };
    let settings = match listed {
        Some(Some(settings)) => settings,
        Some(None) => {
            return VmFacts {
                state: Some(VmState::Nonexistent),
                ip: None,
                settings: None,
                proc_mounts: None,
                probed: false,
            };
        }
        None => return read_vm_thoroughly(ctx, profile).await,
    };
    let mut argv = vec!["cat", "/proc/mounts"];
    if let Some(p) = probe {
        argv.push(&p.vm_file);
    }
    let read = minikube::ssh(profile, &argv)
        .read_only()
        .timeout(READ_TIMEOUT);
    let Ok(out) = ctx.runner.output(&read).await else {
        return read_vm_thoroughly(ctx, profile).await;
    };
    match out.code {
        Some(minikube::EXIT_NOT_RUNNING) => VmFacts {
            state: Some(VmState::Stopped),
            ip: None,
            settings: Some(settings),
            proc_mounts: None,
            probed: false,
        },
        Some(minikube::EXIT_PROFILE_NOT_FOUND) => VmFacts {
            state: Some(VmState::Nonexistent),
            ip: None,
            settings: None,
            proc_mounts: None,
            probed: false,
        },
        // 0, or 1 when the probe is not there (no mount yet): the VM ran `cat`, which the
        // mount table it printed shows (a failed SSH connection also exits 1, printing none).
        Some(0 | 1) if !minikube::parse_mounts(&out.stdout).is_empty() => VmFacts {
            state: Some(VmState::Running),
            ip: settings.node_ip,
            probed: probe.is_some_and(|p| p.seen_in(&out.stdout)),
            settings: Some(settings),
            proc_mounts: Some(out.stdout),
        },
        _ => read_vm_thoroughly(ctx, profile).await,
    }
}

/// How long the one read through `minikube ssh` may take: a hung NFS mount blocks `cat`.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The VM read the long way: `status`, then the address, the settings and the mounts.
async fn read_vm_thoroughly(ctx: &Context, profile: &str) -> VmFacts {
    let state = match ctx.runner.output(&minikube::status(profile)).await {
        Ok(out) => minikube::parse_status(&out).ok(),
        Err(_) => None,
    };
    if state == Some(VmState::Stopped) {
        // A stopped profile keeps its driver, which `start` may not change (exit 81).
        let list = ctx.runner.output(&minikube::profile_list_light()).await;
        return VmFacts {
            state,
            ip: None,
            settings: list
                .ok()
                .and_then(|o| minikube::parse_profile(&o.stdout, profile)),
            proc_mounts: None,
            probed: false,
        };
    }
    if state != Some(VmState::Running) {
        return VmFacts {
            state,
            ip: None,
            settings: None,
            proc_mounts: None,
            probed: false,
        };
    }
    let mounts_cmd = minikube::ssh(profile, &["cat", "/proc/mounts"])
        .read_only()
        .timeout(READ_TIMEOUT);
    let list_cmd = minikube::profile_list_light();
    let (ip, list, mounts) = tokio::join!(
        read_ip(ctx, profile),
        ctx.runner.output(&list_cmd),
        ctx.runner.output(&mounts_cmd),
    );
    VmFacts {
        state,
        ip,
        settings: list
            .ok()
            .and_then(|o| minikube::parse_profile(&o.stdout, profile)),
        proc_mounts: mounts.ok().filter(|o| o.success()).map(|o| o.stdout),
        probed: false,
    }
}

/// The services with a bridge in the local cluster, so that one back on the laptop has its
/// bridge removed before the release re-creates the subchart's Service. A cluster that cannot
/// be asked has none that devenv can remove; the release then says what is in its way.
async fn read_bridges(profile: &str, namespace: &str) -> Vec<String> {
    let ask = async {
        let client = crate::cluster::client(profile).await.ok()?;
        crate::offload::bridge::bridged_services(client, namespace)
            .await
            .ok()
    };
    tokio::time::timeout(crate::offload::API_TIMEOUT, ask)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

pub(super) async fn read_ip(ctx: &Context, profile: &str) -> Option<std::net::Ipv4Addr> {
    let out = ctx.runner.output(&minikube::ip(profile)).await.ok()?;
    out.success()
        .then(|| out.stdout.trim().parse().ok())
        .flatten()
}

/// The images of the services that run locally, each with its context's hash and whether the
/// VM's daemon already has it: built by a previous `up` from the same content, on a VM that still
/// exists (a stopped VM keeps its images; a deleted or recreated one does not).
fn read_images(
    loaded: &Loaded,
    placements: &[(String, Placement)],
    state: &crate::state::ProjectState,
    vm: &Option<VmState>,
    recreate: bool,
) -> Vec<ImageFacts> {
    let vm_keeps_images =
        matches!(vm, Some(VmState::Running) | Some(VmState::Stopped)) && !recreate;
    placements
        .iter()
        .filter(|(_, p)| *p == Placement::Local)
        .filter_map(|(name, _)| {
            let image = loaded.config.services.get(name)?.image.as_ref()?;
            let spec = ImageSpec::read(&loaded.root, name, image)
                .map_err(|e| Failure::from(&crate::docker::build::BuildError::Context(e)));
            let built = vm_keeps_images
                && spec
                    .as_ref()
                    .is_ok_and(|s| state.images.get(name) == Some(&s.hash));
            Some(ImageFacts {
                service: name.clone(),
                spec,
                built,
            })
        })
        .collect()
}

/// A hash of everything the release depends on: devenv.toml, the values files, every file of
/// the chart, the placements, the profile and the images' content. Equal fingerprints mean
/// `helm upgrade` would change nothing.
fn release_fingerprint(
    loaded: &Loaded,
    placements: &[(String, Placement)],
    profile: &str,
    images: &[(&str, &str)],
) -> String {
    let mut bytes = Vec::new();
    let mut add = |label: &str, data: &[u8]| {
        bytes.extend_from_slice(label.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
        bytes.extend_from_slice(data);
    };
    add("config", &std::fs::read(&loaded.file).unwrap_or_default());
    for v in &loaded.config.project.values {
        add(
            "values",
            &std::fs::read(loaded.root.join(v)).unwrap_or_default(),
        );
    }
    let mut files = Vec::new();
    collect_files(&loaded.chart_dir(), &mut files);
    files.sort();
    for f in files {
        add(&f.to_string_lossy(), &std::fs::read(&f).unwrap_or_default());
    }
    add("placements", format!("{placements:?}").as_bytes());
    add("profile", profile.as_bytes());
    add("images", format!("{images:?}").as_bytes());
    format!("{:016x}", fnv1a(&bytes))
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}
