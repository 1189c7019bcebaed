//! Checks of the VM: whether VirtualBox is in use anywhere on the machine, and whether the source
//! tree is mounted inside devenv's VM over NFS with the configured options.
//!
//! The seed ran minikube on VirtualBox with vboxfs shared folders: 300% CPU, 4 GB of RAM and
//! pages taking about 5 s because every `stat` crossed the shared folder. A native hypervisor
//! (xhyve then, kvm2 and vfkit now) brought CPU to 20–50% and RAM under 1 GB, and NFS fixed
//! `stat`. The probes only read: `minikube profile list`, `VBoxManage list runningvms` and
//! `/proc/mounts` inside the VM.

use std::time::Duration;

use devenv_drivers::Check;
use serde_json::Value;

use super::{anchor, doc};
use crate::minikube::{self, VmState};
use crate::process::Cmd;

/// `minikube profile list -o json`: every profile with its driver, status and node address.
pub fn profile_list() -> Cmd {
    Cmd::new("minikube")
        .args(["profile", "list", "-o", "json"])
        .read_only()
        .timeout(Duration::from_secs(60))
}

/// `VBoxManage list runningvms`: one `"name" {uuid}` line per running VM.
pub fn running_vbox_vms() -> Cmd {
    Cmd::new("VBoxManage")
        .args(["list", "runningvms"])
        .read_only()
        .timeout(Duration::from_secs(20))
}

/// `/proc/mounts` of the VM, through `minikube ssh`.
pub fn read_mounts(profile: &str) -> Cmd {
    minikube::ssh(profile, &["cat", "/proc/mounts"])
        .read_only()
        .timeout(Duration::from_secs(60))
}

/// One minikube profile as `profile list` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub driver: String,
    pub status: String,
    /// The first node's address, when minikube knows it.
    pub ip: Option<String>,
}

/// Read `minikube profile list -o json` (valid and invalid profiles alike: an invalid one may
/// still have a VirtualBox VM behind it).
pub fn parse_profiles(text: &str) -> Result<Vec<Profile>, crate::unreadable::Unreadable> {
    let v: Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("cannot read `minikube profile list -o json`: {e}"))?;
    let mut out = Vec::new();
    for list in ["valid", "invalid"] {
        for p in v[list].as_array().into_iter().flatten() {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            out.push(Profile {
                name: s(&p["Name"]),
                driver: s(&p["Config"]["Driver"]),
                status: s(&p["Status"]),
                ip: p["Config"]["Nodes"][0]["IP"]
                    .as_str()
                    .filter(|ip| !ip.is_empty())
                    .map(str::to_string),
            });
        }
    }
    Ok(out)
}

/// VM names from `VBoxManage list runningvms` (`"minikube" {0b7c…}`).
pub fn parse_running_vms(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix('"')?;
            let end = rest.rfind('"')?;
            Some(rest[..end].to_string())
        })
        .collect()
}

/// What the VirtualBox probes found; `None` where a tool is not installed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VirtualBox {
    pub profiles: Option<Vec<Profile>>,
    pub running_vms: Option<Vec<String>>,
}

/// Any minikube profile on the virtualbox driver, or any running VirtualBox VM, costs the
/// laptop what the seed measured: warn, with the way out.
pub fn virtualbox_check(found: &VirtualBox, ours: Option<&str>) -> Check {
    const ID: &str = "vm.virtualbox";
    let on_vbox: Vec<&Profile> = found
        .profiles
        .iter()
        .flatten()
        .filter(|p| p.driver == "virtualbox")
        .collect();
    let vms = found.running_vms.clone().unwrap_or_default();
    if on_vbox.is_empty() && vms.is_empty() {
        let looked = match (&found.profiles, &found.running_vms) {
            (Some(_), Some(_)) => "no minikube profile uses VirtualBox and no VirtualBox VM runs",
            (Some(_), None) => "no minikube profile uses VirtualBox; VBoxManage is not installed",
            (None, Some(_)) => "no VirtualBox VM runs; minikube's profiles could not be listed",
            (None, None) => {
                "VBoxManage is not installed and minikube's profiles could not be listed: no VirtualBox in sight"
            }
        };
        return Check::ok(ID, looked);
    }
    let mut what = Vec::new();
    if !on_vbox.is_empty() {
        let names: Vec<&str> = on_vbox.iter().map(|p| p.name.as_str()).collect();
        what.push(format!(
            "minikube profile{} {} on the virtualbox driver",
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        ));
    }
    if !vms.is_empty() {
        what.push(format!("running VirtualBox VMs: {}", vms.join(", ")));
    }
    let fix = if let Some(p) = on_vbox.iter().find(|p| Some(p.name.as_str()) == ours) {
        format!(
            "minikube delete -p {} && devenv up   (vm.driver = \"auto\" picks kvm2 on Linux, vfkit on macOS)",
            p.name
        )
    } else if let Some(p) = on_vbox.first() {
        format!(
            "minikube stop -p {}   (or move it to kvm2/vfkit: minikube delete -p {} && minikube start -p {} --driver=kvm2)",
            p.name, p.name, p.name
        )
    } else {
        format!(
            "VBoxManage controlvm {} acpipowerbutton",
            crate::process::quote(&vms[0])
        )
    };
    Check::warn(
        ID,
        format!(
            "{}: with VirtualBox and vboxfs the seed saw 300% CPU, 4 GB of RAM and pages taking ~5 s (slow stat through vboxfs); kvm2/vfkit with NFS ran at 20–50% CPU and under 1 GB",
            what.join("; ")
        ),
        fix,
        &doc(anchor::VIRTUALBOX),
    )
}

pub use crate::minikube::{Mount, parse_mounts};

/// The configured options that the kernel's view of the mount does not show. The kernel
/// rewrites some: `tcp` appears as `proto=tcp`, `actimeo=N` as the four `ac*=N`, `nfsvers` as
/// `vers`, `vers=4` as `vers=4.2`, `lookupcache=positive` as `lookupcache=pos`; `async` is the
/// default and never shown, nor are `ac*` values equal to the kernel's own defaults. Options the
/// kernel does not report at all cannot be checked and are not listed.
pub fn missing_options(configured: &str, effective: &[String]) -> Vec<String> {
    let has = |o: &str| effective.iter().any(|e| e == o);
    let value = |k: &str| {
        effective
            .iter()
            .find_map(|e| e.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
    };
    configured
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .filter(|o| {
            let (key, val) = o.split_once('=').unwrap_or((o, ""));
            let ok = match key {
                "tcp" | "udp" => value("proto").is_none_or(|p| p.starts_with(key)),
                "vers" | "nfsvers" => {
                    value("vers").is_none_or(|v| v == val || v.starts_with(&format!("{val}.")))
                }
                "actimeo" => ["acregmin", "acregmax", "acdirmin", "acdirmax"]
                    .iter()
                    .all(|k| value(k).is_none_or(|v| v == val)),
                // The kernel shows lookupcache=positive as `pos`, `all` (the default) not at all.
                "lookupcache" => match val {
                    "all" => value(key).is_none(),
                    "positive" | "pos" => value(key).is_some_and(|v| v == "pos" || v == "positive"),
                    _ => value(key).is_none_or(|v| v == val),
                },
                "nolock" | "noacl" | "hard" | "soft" | "ro" | "rw" | "noac" | "sync" => has(key),
                "lock" => !has("nolock"),
                "acl" => !has("noacl"),
                "async" => !has("sync"),
                "rsize" | "wsize" | "timeo" | "retrans" | "acregmin" | "acregmax" | "acdirmin"
                | "acdirmax" | "port" | "mountport" | "sec" => {
                    // The server may lower rsize/wsize; only a different value is reported.
                    value(key).is_none_or(|v| v == val || matches!(key, "rsize" | "wsize"))
                }
                _ => true,
            };
            !ok
        })
        .map(str::to_string)
        .collect()
}

/// Why the VM's state is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    /// minikube is not installed; the install command.
    NoMinikube(String),
    Failed(String),
}

/// What the mount probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountProbe {
    /// The VM is not running: nothing was asked.
    NotRunning(VmState),
    /// minikube could not say whether it runs.
    Unknown(Unknown),
    Read(Vec<Mount>),
    Failed(String),
}

/// What `devenv up` mounts.
pub struct Wanted<'a> {
    pub profile: &'a str,
    pub target: &'a str,
    pub options: &'a str,
    /// The exported directory as the host writes it, when known.
    pub source: Option<&'a str>,
}

/// The mount at the target: NFS (nfs or nfs4) with the configured options, from this project.
pub fn mount_check(probe: &MountProbe, want: &Wanted<'_>) -> Check {
    const ID: &str = "vm.mount";
    let doc = doc(anchor::SOURCE_MOUNT);
    let profile = want.profile;
    let target = want.target;
    let mounts = match probe {
        MountProbe::NotRunning(state) => {
            let why = match state {
                VmState::Nonexistent => format!("{profile} does not exist yet"),
                VmState::Stopped => format!("{profile} is stopped"),
                VmState::Running => format!("{profile} runs"),
                VmState::Other(s) => format!("{profile} is {s}"),
                VmState::Unknown(why) => format!("the state of {profile} is unknown ({why})"),
            };
            return Check::warn(
                ID,
                format!("{why}: the source mount in the VM was not checked"),
                "devenv up",
                &doc,
            );
        }
        MountProbe::Unknown(Unknown::NoMinikube(install)) => {
            return Check::warn(
                ID,
                format!(
                    "minikube is not installed, so {profile} and its source mount were not checked"
                ),
                install.clone(),
                &doc,
            );
        }
        MountProbe::Unknown(Unknown::Failed(why)) => {
            return Check::warn(
                ID,
                format!(
                    "minikube could not tell whether {profile} runs ({why}): the source mount was not checked"
                ),
                format!("minikube status -p {profile}"),
                &doc,
            );
        }
        MountProbe::Failed(why) => {
            return Check::fail(
                ID,
                format!("cannot read /proc/mounts in {profile}: {why}"),
                read_mounts(profile).display(),
                &doc,
            );
        }
        MountProbe::Read(m) => m,
    };
    let umount = minikube::ssh(profile, &["sudo", "umount", target]).display();
    // The last mount on a point hides the earlier ones.
    let Some(m) = mounts.iter().rev().find(|m| m.point == target) else {
        return Check::fail(
            ID,
            format!(
                "nothing is mounted at {target} in {profile}: pods see an empty directory instead of the source tree"
            ),
            "devenv up",
            &doc,
        );
    };
    match m.fstype.as_str() {
        "nfs" | "nfs4" => {}
        "vboxsf" => {
            return Check::warn(
                ID,
                format!(
                    "{target} is a VirtualBox shared folder (vboxsf): every stat crosses it, the seed's ~5 s page loads"
                ),
                format!("minikube delete -p {profile} && devenv up   (kvm2/vfkit with NFS)"),
                &doc,
            );
        }
        other => {
            let what = match other {
                "9p" => "a 9p share (`minikube mount`), slow on stat-heavy workloads".to_string(),
                "virtiofs" => "a virtio-fs share, not the NFS export devenv manages".to_string(),
                _ => format!("of type {other}, not NFS"),
            };
            return Check::warn(
                ID,
                format!("{target} in {profile} is {what}"),
                format!("{umount} && devenv up"),
                &doc,
            );
        }
    }
    let mut problems = Vec::new();
    let missing = missing_options(want.options, &m.options);
    if !missing.is_empty() {
        problems.push(format!(
            "mounted without {} from mount.options (the kernel shows {})",
            missing.join(","),
            m.options.join(",")
        ));
    }
    if let Some(source) = want.source {
        let from = m
            .device
            .split_once(':')
            .map(|(_, p)| p)
            .unwrap_or(&m.device);
        if from.trim_end_matches('/') != source.trim_end_matches('/') {
            problems.push(format!(
                "mounted from {}, not this project's {source}",
                m.device
            ));
        }
    }
    if problems.is_empty() {
        Check::ok(
            ID,
            format!(
                "{target} is {} from {} with {}",
                m.fstype, m.device, want.options
            ),
        )
    } else {
        Check::warn(
            ID,
            format!("{target} is {} but {}", m.fstype, problems.join("; ")),
            format!("{umount} && devenv up"),
            &doc,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devenv_drivers::CheckState;

    const PROFILES: &str = r#"{"invalid":[],"valid":[
      {"Name":"devenv-shop","Status":"OK","Config":{"Name":"devenv-shop","Driver":"kvm2","Nodes":[{"Name":"","IP":"192.168.39.10","Port":8443}]}},
      {"Name":"old","Status":"Stopped","Config":{"Name":"old","Driver":"virtualbox","Nodes":[{"Name":"","IP":"","Port":8443}]}}]}"#;

    fn vbox(profiles: &str, vms: Option<&str>) -> VirtualBox {
        VirtualBox {
            profiles: Some(parse_profiles(profiles).unwrap()),
            running_vms: vms.map(parse_running_vms),
        }
    }

    #[test]
    fn profiles_carry_driver_status_and_address() {
        let p = parse_profiles(PROFILES).unwrap();
        assert_eq!(p[0].ip.as_deref(), Some("192.168.39.10"));
        assert_eq!(
            (p[1].driver.as_str(), p[1].ip.as_deref()),
            ("virtualbox", None)
        );
        assert!(
            parse_profiles(r#"{"invalid":[],"valid":[]}"#)
                .unwrap()
                .is_empty()
        );
        assert!(parse_profiles("not json").is_err());
    }

    #[test]
    fn a_virtualbox_profile_warns_with_the_seeds_figures() {
        let c = virtualbox_check(&vbox(PROFILES, None), Some("devenv-shop"));
        assert_eq!(c.state, CheckState::Warn);
        assert!(
            c.reason
                .starts_with("minikube profile old on the virtualbox driver")
        );
        for figure in ["300% CPU", "4 GB", "~5 s", "20–50% CPU", "under 1 GB"] {
            assert!(c.reason.contains(figure), "{figure}: {}", c.reason);
        }
        assert!(c.fix.unwrap().starts_with("minikube stop -p old"));
    }

    #[test]
    fn devenvs_own_profile_on_virtualbox_is_recreated() {
        let text = PROFILES.replace("\"kvm2\"", "\"virtualbox\"");
        let c = virtualbox_check(&vbox(&text, None), Some("devenv-shop"));
        assert!(
            c.fix
                .unwrap()
                .starts_with("minikube delete -p devenv-shop && devenv up")
        );
    }

    #[test]
    fn running_virtualbox_vms_are_named() {
        let vms = "\"minikube\" {0b7cdd5b-1a0e-4c5d-9f3e-2a1b6f0e8c11}\n\"my vm\" {1b7cdd5b-1a0e-4c5d-9f3e-2a1b6f0e8c11}\n";
        let c = virtualbox_check(&vbox(r#"{"invalid":[],"valid":[]}"#, Some(vms)), None);
        assert_eq!(c.state, CheckState::Warn);
        assert!(
            c.reason
                .starts_with("running VirtualBox VMs: minikube, my vm"),
            "{}",
            c.reason
        );
        assert_eq!(
            c.fix.unwrap(),
            "VBoxManage controlvm minikube acpipowerbutton"
        );
    }

    #[test]
    fn no_virtualbox_anywhere_is_ok() {
        let c = virtualbox_check(&vbox(r#"{"invalid":[],"valid":[]}"#, Some("")), None);
        assert_eq!(c.state, CheckState::Ok);
        assert_eq!(
            c.reason,
            "no minikube profile uses VirtualBox and no VirtualBox VM runs"
        );
    }

    const NFS_MOUNTS: &str = "rootfs / rootfs rw 0 0\r\n\
        192.168.39.1:/home/ann/src/my\\040shop /src nfs rw,relatime,vers=3,rsize=1048576,wsize=1048576,namlen=255,acregmin=1,acregmax=1,acdirmin=1,acdirmax=1,hard,nolock,noacl,proto=tcp,timeo=600,retrans=2,sec=sys,mountaddr=192.168.39.1,mountvers=3,mountport=20048,mountproto=tcp,local_lock=all,addr=192.168.39.1 0 0\r\n";

    fn want<'a>(source: Option<&'a str>) -> Wanted<'a> {
        Wanted {
            profile: "devenv-shop",
            target: "/src",
            options: "vers=3,tcp,nolock,noacl,async,actimeo=1",
            source,
        }
    }

    #[test]
    fn an_nfs_mount_with_the_configured_options_is_ok() {
        let m = parse_mounts(NFS_MOUNTS);
        assert_eq!(m[1].device, "192.168.39.1:/home/ann/src/my shop");
        assert!(
            missing_options("vers=3,tcp,nolock,noacl,async,actimeo=1", &m[1].options).is_empty()
        );
        let c = mount_check(&MountProbe::Read(m), &want(Some("/home/ann/src/my shop")));
        assert_eq!(c.state, CheckState::Ok, "{}", c.reason);
    }

    #[test]
    fn lookupcache_is_read_in_the_kernels_short_form() {
        let shown = |opts: &[&str]| opts.iter().map(|o| o.to_string()).collect::<Vec<_>>();
        let configured = "lookupcache=positive";
        assert!(missing_options(configured, &shown(&["lookupcache=pos"])).is_empty());
        assert_eq!(
            missing_options(configured, &shown(&["vers=3"])),
            [configured]
        );
        assert_eq!(
            missing_options("lookupcache=all", &shown(&["lookupcache=pos"])),
            ["lookupcache=all"]
        );
        assert!(missing_options("lookupcache=none", &shown(&["lookupcache=none"])).is_empty());
    }

    #[test]
    fn options_the_kernel_does_not_show_are_reported() {
        let m = parse_mounts(
            &NFS_MOUNTS
                .replace("acregmin=1,acregmax=1", "acregmin=3,acregmax=60")
                .replace(",nolock", ""),
        );
        let missing = missing_options("vers=3,tcp,nolock,noacl,async,actimeo=1", &m[1].options);
        assert_eq!(missing, vec!["nolock", "actimeo=1"]);
        let c = mount_check(&MountProbe::Read(m), &want(None));
        assert_eq!(c.state, CheckState::Warn);
        assert!(
            c.reason.contains("without nolock,actimeo=1"),
            "{}",
            c.reason
        );
        assert_eq!(
            c.fix.unwrap(),
            "minikube ssh -p devenv-shop -- 'sudo umount /src' && devenv up"
        );
    }

    #[test]
    fn nfs4_version_and_another_projects_export_are_told_apart() {
        let m = parse_mounts("h:/other /src nfs4 rw,vers=4.2,proto=tcp,hard 0 0\n");
        assert!(missing_options("vers=4,tcp,hard", &m[0].options).is_empty());
        assert_eq!(missing_options("vers=3", &m[0].options), vec!["vers=3"]);
        let c = mount_check(
            &MountProbe::Read(m),
            &Wanted {
                options: "vers=4",
                ..want(Some("/home/ann/src/shop"))
            },
        );
        assert_eq!(c.state, CheckState::Warn);
        assert!(
            c.reason
                .contains("mounted from h:/other, not this project's /home/ann/src/shop")
        );
    }

    #[test]
    fn vboxsf_and_9p_are_not_the_nfs_mount() {
        let c = mount_check(
            &MountProbe::Read(parse_mounts("src /src vboxsf rw 0 0\n")),
            &want(None),
        );
        assert_eq!(c.state, CheckState::Warn);
        assert!(c.reason.contains("vboxsf"));
        assert!(c.fix.unwrap().starts_with("minikube delete -p devenv-shop"));
        let c = mount_check(
            &MountProbe::Read(parse_mounts("192.168.39.1 /src 9p rw,trans=tcp 0 0\n")),
            &want(None),
        );
        assert_eq!(c.state, CheckState::Warn);
        assert!(c.reason.contains("9p"));
    }

    #[test]
    fn the_last_mount_on_a_point_wins() {
        let text = format!("{NFS_MOUNTS}src /src vboxsf rw 0 0\n");
        let c = mount_check(&MountProbe::Read(parse_mounts(&text)), &want(None));
        assert!(c.reason.contains("vboxsf"));
    }

    #[test]
    fn nothing_mounted_fails_and_a_stopped_vm_is_only_a_warning() {
        let c = mount_check(
            &MountProbe::Read(parse_mounts("rootfs / rootfs rw 0 0\n")),
            &want(None),
        );
        assert_eq!(c.state, CheckState::Fail);
        assert_eq!(c.fix.as_deref(), Some("devenv up"));
        let c = mount_check(&MountProbe::NotRunning(VmState::Stopped), &want(None));
        assert_eq!(c.state, CheckState::Warn);
        assert_eq!(
            c.reason,
            "devenv-shop is stopped: the source mount in the VM was not checked"
        );
    }
}
