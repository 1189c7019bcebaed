//! `devenv doctor`'s checks beyond the VM drivers: every cause of a slow or broken environment
//! that the seed found the hard way, each turned into a [`Check`] with a stable id, what was
//! found, the exact command that fixes it and its section in `docs/troubleshooting.md`.
//!
//! The work is split in two. Probes gather facts and only ever read: programs run through the
//! context's runner as read-only commands with short timeouts, files are read, nothing is
//! written or started. Verdicts are pure functions of those facts, one module per concern, so
//! each is tested without a machine. Independent probes run concurrently; only the ones that
//! need a running VM (its mounts, `stat` through the mount) wait for `minikube status`.
//!
//! Each tunnel to an offloaded service is checked from its supervisor's status.

pub mod chart;
pub mod host;
pub mod latency;
pub mod nfs;
pub mod remote;
pub mod tools;
pub mod tree;
pub mod vm;

use std::path::PathBuf;

use devenv_drivers::{Check, CheckState, ExportsDialect, Os};

use crate::config::Loaded;
use crate::context::Context;
use crate::export::Export;
use crate::machine;
use crate::minikube::{self, VmState};
use crate::process::{ProcessError, install_hint};

/// The user guide page every check links into.
pub const TROUBLESHOOTING: &str = "docs/troubleshooting.md";

/// A check's doc link: the absolute URL of its section of [`TROUBLESHOOTING`].
pub fn doc(anchor: &str) -> String {
    format!("{}{TROUBLESHOOTING}#{anchor}", crate::docs::BASE)
}

/// Section anchors of `docs/troubleshooting.md`, one per check (GitHub's heading slugs).
pub mod anchor {
    pub const CONFIG: &str = "config";
    pub const VM_DRIVERS: &str = "vm-drivers";
    pub const TOOLS: &str = "tools";
    pub const CPU_GOVERNOR: &str = "cpu-governor";
    pub const INOTIFY_WATCHES: &str = "inotify-watches";
    pub const INOTIFY_INSTANCES: &str = "inotify-instances";
    pub const VIRTUALBOX: &str = "virtualbox";
    pub const SOURCE_MOUNT: &str = "source-mount";
    pub const STAT_LATENCY: &str = "stat-latency";
    pub const NFS_SERVER: &str = "nfs-server";
    pub const NFS_EXPORTS: &str = "nfs-exports";
    pub const EXPORTS_VALID: &str = "exports-file-validity";
    pub const EXPORT_SCOPE: &str = "export-scope";
    pub const CHART_RENDER: &str = "chart-rendering";
    pub const CPU_LIMIT_RATIO: &str = "cpu-limit-ratio";
    pub const CPU_LIMITS: &str = "cpu-limits";
    pub const PRESTOP_SLEEP: &str = "prestop-sleep";
    pub const MAX_PODS: &str = "max-pods";
    pub const REMOTE_CONTEXT: &str = "remote-context";
    pub const REMOTE_ACCESS: &str = "remote-access";
    pub const REMOTE_TUNNEL: &str = "remote-tunnel";
    pub const REQUIRES: &str = "required-versions";

    /// Every anchor, for the test that keeps the page and the links in step.
    pub const ALL: &[&str] = &[
        CONFIG,
        VM_DRIVERS,
        TOOLS,
        CPU_GOVERNOR,
        INOTIFY_WATCHES,
        INOTIFY_INSTANCES,
        VIRTUALBOX,
        SOURCE_MOUNT,
        STAT_LATENCY,
        NFS_SERVER,
        NFS_EXPORTS,
        EXPORTS_VALID,
        EXPORT_SCOPE,
        CHART_RENDER,
        CPU_LIMIT_RATIO,
        CPU_LIMITS,
        PRESTOP_SLEEP,
        MAX_PODS,
        REMOTE_CONTEXT,
        REMOTE_ACCESS,
        REMOTE_TUNNEL,
        REQUIRES,
    ];
}

/// How the checks are grouped in the output, in display order. The VM drivers come before
/// all of these and are reported per driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    Config,
    Tools,
    Host,
    Vm,
    Nfs,
    Chart,
    Remote,
}

impl Group {
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Config => "config",
            Group::Tools => "tools",
            Group::Host => "host",
            Group::Vm => "vm",
            Group::Nfs => "nfs",
            Group::Chart => "chart",
            Group::Remote => "remote",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Group::Config => "Configuration",
            Group::Tools => "Tools",
            Group::Host => "Host",
            Group::Vm => "VM and source mount",
            Group::Nfs => "NFS",
            Group::Chart => "Chart",
            Group::Remote => "Remote cluster",
        }
    }
}

/// One check and where it is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub group: Group,
    pub check: Check,
}

/// Where the kernel's pseudo file systems are: the real ones, or fixture trees in tests.
#[derive(Debug, Clone)]
pub struct Roots {
    pub sys: PathBuf,
    pub proc: PathBuf,
}

impl Roots {
    /// Below `root` when one is given (`$DEVENV_HOST_ROOT`, a fixture host in tests), else the
    /// machine's own.
    pub fn under(root: Option<&std::path::Path>) -> Roots {
        match root {
            Some(r) => Roots {
                sys: r.join("sys"),
                proc: r.join("proc"),
            },
            None => Roots::default(),
        }
    }
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
        }
    }
}

/// What the blocking part (file system walks and reads) found.
struct HostFacts {
    governors: Vec<(String, String)>,
    cpufreq_driver: Option<String>,
    inotify: host::Inotify,
    /// `None` without a project.
    tree: Option<Result<(tree::Tree, Option<latency::HostTiming>), String>>,
}

fn gather_host(roots: Roots, source: Option<PathBuf>, uid: u32) -> HostFacts {
    let tree = source.map(|dir| {
        tree::scan(&dir, latency::HOST_SAMPLE)
            .map(|t| {
                let timing = latency::time_host(&dir, &t.files);
                (t, timing)
            })
            .map_err(|e| format!("cannot read the source tree {}: {e}", dir.display()))
    });
    HostFacts {
        governors: host::governors(&roots.sys),
        cpufreq_driver: host::cpufreq_driver(&roots.sys),
        inotify: host::read_inotify(&roots.proc, uid),
        tree,
    }
}

/// Run every check except the drivers'. `loaded` is `None` outside a project (or with a broken
/// devenv.toml): then only the machine is checked.
pub async fn run(ctx: &Context, loaded: Option<&Loaded>, roots: Roots) -> Vec<Finding> {
    let os = machine::current_os();
    let dialect = if os == Os::MacOs {
        ExportsDialect::MacOs
    } else {
        ExportsDialect::Linux
    };
    let profile = loaded.map(|l| l.config.project.profile());
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let source = loaded.map(|l| l.source_dir());
    let runner = ctx.runner.as_ref();

    let host_facts = async {
        let roots = roots.clone();
        tokio::task::spawn_blocking(move || gather_host(roots, source, uid))
            .await
            .expect("the host probe does not panic")
    };
    let vm_state = async {
        let profile = profile.as_deref()?;
        Some(match runner.output(&minikube::status(profile)).await {
            Ok(out) => minikube::parse_status(&out).map_err(|why| {
                vm::Unknown::Failed(format!("cannot read `minikube status`: {why}"))
            }),
            Err(ProcessError::NotFound { install, .. }) => Err(vm::Unknown::NoMinikube(install)),
            Err(e) => Err(vm::Unknown::Failed(e.to_string())),
        })
    };
    let virtualbox = async {
        let (list, vbox) = (vm::profile_list(), vm::running_vbox_vms());
        let (profiles, vms) = tokio::join!(runner.output(&list), runner.output(&vbox));
        vm::VirtualBox {
            profiles: profiles
                .ok()
                .filter(|o| o.success())
                .and_then(|o| vm::parse_profiles(&o.stdout).ok()),
            running_vms: vms
                .ok()
                .filter(|o| o.success())
                .map(|o| vm::parse_running_vms(&o.stdout)),
        }
    };
    let server = nfs::probe_server(runner, dialect);
    let export = async {
        let loaded = loaded?;
        Some(Export::for_project(ctx, loaded).await)
    };
    let rendered = async {
        let loaded = loaded?;
        let cmd = chart::template(loaded);
        let out = runner.output(&cmd).await;
        Some((cmd, out))
    };
    let remote_namespace = loaded.map(|l| format!("devenv-{}-{}", ctx.user, l.config.project.name));
    let required = loaded
        .map(|l| l.config.requires.clone())
        .unwrap_or_default();
    let remote = async {
        let r = loaded?.config.remote.as_ref()?;
        let ns = remote_namespace.as_deref()?;
        let (list, can_i) = (remote::contexts(), remote::can_i(&r.context, ns));
        let version = async {
            match required.kubernetes {
                Some(_) => Some(runner.output(&remote::server_version(&r.context)).await),
                None => None,
            }
        };
        let (contexts, access, version) =
            tokio::join!(runner.output(&list), runner.output(&can_i), version);
        Some((r.context.clone(), ns.to_string(), contexts, access, version))
    };
    let (tools, host_facts, vm_state, virtualbox, server, export, rendered, remote) = tokio::join!(
        tools::checks(ctx, &required),
        host_facts,
        vm_state,
        virtualbox,
        server,
        export,
        rendered,
        remote
    );
    let running = matches!(vm_state, Some(Ok(VmState::Running)));
    let vm_ip = virtualbox
        .profiles
        .iter()
        .flatten()
        .find(|p| Some(&p.name) == profile.as_ref())
        .and_then(|p| p.ip.as_deref())
        .and_then(|ip| ip.parse().ok());

    // What needs the running VM.
    let sample: Vec<String> = match &host_facts.tree {
        Some(Ok((t, _))) => latency::vm_sample(&t.files),
        _ => Vec::new(),
    };
    let (mounts, vm_timing) = match (loaded, profile.as_deref()) {
        (Some(l), Some(p)) if running => {
            let target = &l.config.mount.target;
            let timing = async {
                if sample.len() < 2 {
                    return latency::VmSide::NotMeasured("too few files to time in the VM".into());
                }
                match runner.output(&latency::vm_probe(p, target, &sample)).await {
                    Ok(out) => match latency::parse_vm_output(&out.stdout, target) {
                        Ok(t) => latency::VmSide::Measured(t),
                        Err(why) => latency::VmSide::Failed(why.to_string()),
                    },
                    Err(e) => latency::VmSide::Failed(e.to_string()),
                }
            };
            let mounts = async {
                match runner.output(&vm::read_mounts(p)).await {
                    Ok(out) if out.success() => vm::MountProbe::Read(vm::parse_mounts(&out.stdout)),
                    Ok(out) => vm::MountProbe::Failed(crate::process::tail_lines(
                        &format!("{}{}", out.stdout, out.stderr),
                        2,
                    )),
                    Err(e) => vm::MountProbe::Failed(e.to_string()),
                }
            };
            tokio::join!(mounts, timing)
        }
        (_, Some(p)) => (
            match vm_state.clone() {
                Some(Ok(state)) => vm::MountProbe::NotRunning(state),
                Some(Err(why)) => vm::MountProbe::Unknown(why),
                None => vm::MountProbe::Unknown(vm::Unknown::Failed(String::new())),
            },
            latency::VmSide::NotMeasured(format!("{p} is not running, so only the host was timed")),
        ),
        _ => (
            vm::MountProbe::Unknown(vm::Unknown::Failed(String::new())),
            latency::VmSide::NotMeasured(String::new()),
        ),
    };

    let mut out = Vec::new();
    let mut add = |group: Group, check: Check| out.push(Finding { group, check });
    for c in tools {
        add(Group::Tools, c);
    }

    // Host
    if os == Os::Linux {
        add(
            Group::Host,
            host::governor_check(&host_facts.governors, host_facts.cpufreq_driver.as_deref()),
        );
        let dirs = match &host_facts.tree {
            Some(Ok((t, _))) => Some(t.dirs),
            _ => None,
        };
        add(Group::Host, host::watches_check(&host_facts.inotify, dirs));
        add(Group::Host, host::instances_check(&host_facts.inotify));
    }

    // VM
    add(
        Group::Vm,
        vm::virtualbox_check(&virtualbox, profile.as_deref()),
    );
    let exported_source = match &export {
        Some(Ok(e)) => Some(e.source.display().to_string()),
        _ => None,
    };
    let mount_type = match &mounts {
        vm::MountProbe::Read(ms) => loaded.and_then(|l| {
            ms.iter()
                .rev()
                .find(|m| m.point == l.config.mount.target)
                .map(|m| m.fstype.clone())
        }),
        _ => None,
    };
    if let (Some(l), Some(p)) = (loaded, profile.as_deref()) {
        let m = &l.config.mount;
        add(
            Group::Vm,
            vm::mount_check(
                &mounts,
                &vm::Wanted {
                    profile: p,
                    target: &m.target,
                    options: &m.options,
                    source: exported_source.as_deref(),
                },
            ),
        );
        add(
            Group::Vm,
            match &host_facts.tree {
                Some(Ok((_, timing))) => latency::latency_check(
                    timing.as_ref(),
                    &vm_timing,
                    p,
                    &m.target,
                    mount_type.as_deref(),
                ),
                Some(Err(why)) => Check::fail(
                    "vm.stat-latency",
                    why.clone(),
                    "fix mount.source in devenv.toml (it is relative to the project root)",
                    &doc(anchor::STAT_LATENCY),
                ),
                None => Check::ok("vm.stat-latency", "no project"),
            },
        );
    }

    // NFS
    add(
        Group::Nfs,
        nfs::server_check(&server, running, &install_hint("exportfs", ctx.platform)),
    );
    match export {
        Some(Ok(e)) => {
            let file = ctx.exports_file.display().to_string();
            let want = nfs::WantedBlock {
                project: e.project.clone(),
                uid: e.owner.uid,
                lines: e.lines.clone(),
                dialect: e.host.dialect,
                file: file.clone(),
            };
            match crate::nfs::read_exports(&ctx.exports_file) {
                Ok(bytes) => {
                    let vm = nfs::Vm { running, ip: vm_ip };
                    for c in nfs::exports_checks(&want, bytes.as_deref(), vm) {
                        add(Group::Nfs, c);
                    }
                }
                Err(err) => add(
                    Group::Nfs,
                    Check::fail(
                        "nfs.exports",
                        format!("cannot read {file}: {err}"),
                        format!("ls -l {}", crate::process::quote(&file)),
                        &doc(anchor::NFS_EXPORTS),
                    ),
                ),
            }
        }
        Some(Err(e)) => add(
            Group::Nfs,
            Check::fail(
                "nfs.exports",
                format!("cannot work out this project's export: {e}"),
                e.help()
                    .unwrap_or_else(|| format!("see {}", crate::docs::url("nfs.md"))),
                &doc(anchor::NFS_EXPORTS),
            ),
        ),
        None => {}
    }

    // Chart
    if let (Some(l), Some((cmd, result))) = (loaded, rendered) {
        let chart_dir = l.config.project.chart.display().to_string();
        for c in chart::checks(
            result,
            &cmd,
            &chart_dir,
            &install_hint("helm", ctx.platform),
            l.config.vm.max_pods,
        ) {
            add(Group::Chart, c);
        }
    }

    // Remote
    if let Some((context, ns, contexts, access, version)) = remote {
        // Until a service runs remotely, a missing or unreachable dev cluster stops nothing.
        let offloaded = loaded.is_some_and(|l| {
            l.config
                .services
                .values()
                .any(|s| s.offload == crate::config::Placement::Remote)
        });
        for mut c in remote::checks(
            &context,
            &ns,
            contexts,
            access,
            &install_hint("kubectl", ctx.platform),
        ) {
            if !offloaded && c.state == CheckState::Fail {
                c.state = CheckState::Warn;
                c.reason
                    .push_str(" (no service is offloaded yet, so nothing needs it)");
            }
            add(Group::Remote, c);
        }
        if let Some(answer) = version {
            add(
                Group::Remote,
                remote::version_check(&context, answer, &required, ctx),
            );
        }
    }
    if let Some(l) = loaded
        && let Some(r) = &l.config.remote
        && r.connect == crate::config::Connect::Tunnel
        && let Ok(dir) = ctx.state_dir()
    {
        let project = dir.project(&l.config.project.name, &l.root);
        let state = project.load().unwrap_or_default();
        let tunnelled: Vec<String> = l
            .config
            .services
            .iter()
            .filter(|(n, s)| state.placement(n, s) == crate::config::Placement::Remote)
            .map(|(n, _)| n.clone())
            .collect();
        let files = crate::offload::tunnel::Files::new(project.path());
        for c in remote::tunnel_checks(&tunnelled, files.live_status().as_ref(), &files.log()) {
            add(Group::Remote, c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
    fn slug(heading: &str) -> String {
        heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect()
    }

    #[test]
    fn every_anchor_is_a_section_of_troubleshooting_md() {
        let page = include_str!("../../docs/troubleshooting.md");
        let sections: Vec<String> = page
            .lines()
            .filter_map(|l| l.strip_prefix("## ").or_else(|| l.strip_prefix("### ")))
            .map(slug)
            .collect();
        for a in anchor::ALL {
            assert!(
                sections.iter().any(|s| s == a),
                "no section #{a} in {TROUBLESHOOTING}: {sections:?}"
            );
        }
    }

    #[test]
    fn doc_links_point_into_the_page() {
        assert_eq!(
            doc(anchor::CPU_GOVERNOR),
            format!(
                "https://github.com/devenv-dev/devenv/blob/v{}/docs/troubleshooting.md#cpu-governor",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
