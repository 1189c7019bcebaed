//! Checks of the host's NFS side: the server runs, and devenv's block in the exports file is
//! present, current, accepted by the server and granted only to the VM.
//!
//! Everything is read: the exports file through `ctx.exports_file` (never written here), the
//! server's state through `systemctl is-active` on Linux (or `rpcinfo -p` where systemd does not
//! run) and `nfsd status` on macOS. Whether a missing piece is a warning or a failure depends
//! on the VM: before the first `devenv up` nothing is exported yet, and `up` sets it all up;
//! with the VM running, the mount depends on it now.

use std::net::Ipv4Addr;
use std::time::Duration;

use devenv_drivers::{Check, ExportClient, ExportsDialect};

use super::{anchor, doc};
use crate::nfs::file::ExportsFile;
use crate::process::{Cmd, Output, ProcessError, Runner};

/// How the NFS server's state was learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// `systemctl is-active nfs-server` printed this (`active`, `inactive`, `failed`…);
    /// `installed` is false when systemd does not know the unit.
    Systemd { state: String, installed: bool },
    /// No systemd: whether `rpcinfo -p` lists the nfs program.
    Rpcbind { nfs_registered: bool },
    /// macOS `nfsd status`: whether it says "nfsd is running".
    Nfsd { running: bool },
    /// Nothing could tell.
    Unknown(String),
}

const PROBE: Duration = Duration::from_secs(15);

/// Ask the machine whether its NFS server runs.
pub async fn probe_server(runner: &dyn Runner, dialect: ExportsDialect) -> Server {
    if dialect == ExportsDialect::MacOs {
        let cmd = Cmd::new("nfsd").arg("status").read_only().timeout(PROBE);
        return match runner.output(&cmd).await {
            Ok(out) => Server::Nfsd {
                running: nfsd_running(&out.stdout),
            },
            Err(e) => Server::Unknown(e.to_string()),
        };
    }
    let active = Cmd::new("systemctl")
        .args(["is-active", "nfs-server"])
        .read_only()
        .timeout(PROBE);
    let load = Cmd::new("systemctl")
        .args(["show", "-p", "LoadState", "--value", "nfs-server"])
        .read_only()
        .timeout(PROBE);
    let (active, load) = tokio::join!(runner.output(&active), runner.output(&load));
    if let (Ok(active), Ok(load)) = (&active, &load)
        && systemd_answered(active)
    {
        return Server::Systemd {
            state: active.stdout.trim().to_string(),
            installed: load.stdout.trim() != "not-found",
        };
    }
    let rpc = Cmd::new("rpcinfo").arg("-p").read_only().timeout(PROBE);
    match runner.output(&rpc).await {
        Ok(out) if out.success() => Server::Rpcbind {
            nfs_registered: rpcinfo_lists_nfs(&out.stdout),
        },
        Ok(out) => Server::Unknown(format!(
            "systemd is not running here and `rpcinfo -p` failed: {}",
            crate::process::tail_lines(&format!("{}{}", out.stdout, out.stderr), 2)
        )),
        Err(ProcessError::NotFound { .. }) => {
            Server::Unknown("systemd is not running here and rpcinfo is not installed".into())
        }
        Err(e) => Server::Unknown(e.to_string()),
    }
}

/// `systemctl is-active` answers with one state word on stdout, even with a non-zero exit;
/// without a running systemd it prints nothing there (or `offline`) and complains on stderr.
fn systemd_answered(out: &Output) -> bool {
    let word = out.stdout.trim();
    !word.is_empty() && word != "offline" && !word.contains(' ')
}

/// Whether `rpcinfo -p` lists program 100003 (nfs).
pub fn rpcinfo_lists_nfs(text: &str) -> bool {
    text.lines()
        .any(|l| l.split_whitespace().next() == Some("100003"))
}

/// `nfsd status` prints "nfsd is running (pid …)" or "nfsd is not running".
pub fn nfsd_running(text: &str) -> bool {
    text.lines()
        .any(|l| l.contains("nfsd is running") && !l.contains("not running"))
}

/// The verdict on the server.
pub fn server_check(server: &Server, vm_running: bool, install: &str) -> Check {
    const ID: &str = "nfs.server";
    let doc = doc(anchor::NFS_SERVER);
    let not_running = |reason: String, fix: &str| {
        if vm_running {
            Check::fail(
                ID,
                format!("{reason}: the VM's source mount hangs or goes stale"),
                fix,
                &doc,
            )
        } else {
            Check::warn(ID, format!("{reason} (`devenv up` starts it)"), fix, &doc)
        }
    };
    match server {
        Server::Systemd { state, .. } if state == "active" => {
            Check::ok(ID, "nfs-server is active (systemd)")
        }
        Server::Systemd {
            installed: false, ..
        } => Check::fail(
            ID,
            "no NFS server is installed (systemd has no nfs-server unit)",
            install,
            &doc,
        ),
        Server::Systemd { state, .. } => not_running(
            format!("nfs-server is {state}"),
            "sudo systemctl enable --now nfs-server",
        ),
        Server::Rpcbind {
            nfs_registered: true,
        } => Check::ok(ID, "an NFS server is registered with rpcbind (rpcinfo -p)"),
        Server::Rpcbind {
            nfs_registered: false,
        } => not_running(
            "rpcbind runs but no NFS server is registered with it".into(),
            "start the NFS server with your init system (sudo systemctl enable --now nfs-server), then check with `rpcinfo -p`",
        ),
        Server::Nfsd { running: true } => Check::ok(ID, "nfsd is running"),
        Server::Nfsd { running: false } => {
            not_running("nfsd is not running".into(), "sudo nfsd enable")
        }
        Server::Unknown(why) => Check::warn(
            ID,
            format!("cannot tell whether an NFS server runs: {why}"),
            "start the NFS server (sudo systemctl enable --now nfs-server, or rpcbind and rpc.nfsd by hand); then `rpcinfo -p` lists program 100003 (nfs)",
            &doc,
        ),
    }
}

/// The block devenv would write, as `devenv exports` computes it.
#[derive(Debug, Clone)]
pub struct WantedBlock {
    pub project: String,
    pub uid: u32,
    pub lines: Vec<String>,
    pub dialect: ExportsDialect,
    /// Where the exports file is, for messages.
    pub file: String,
}

/// The VM as the exports checks need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vm {
    pub running: bool,
    pub ip: Option<Ipv4Addr>,
}

/// The exports file's checks: `nfs.exports` (block present and current), `nfs.exports-valid`
/// (what the server would refuse) and `nfs.exports-scope` (granted only to the VM's private
/// network, and to the VM's address when it runs). `text` is `None` when the file is absent.
pub fn exports_checks(want: &WantedBlock, text: Option<&[u8]>, vm: Vm) -> Vec<Check> {
    let file = &want.file;
    let apply = "devenv exports apply";
    let file_doc = doc(anchor::NFS_EXPORTS);
    let parsed = match ExportsFile::parse_bytes(text.unwrap_or_default(), want.dialect) {
        Ok(f) => f,
        Err(e) => {
            return vec![Check::fail(
                "nfs.exports",
                format!("{file}: {e}"),
                format!(
                    "edit {file}{}: devenv's BEGIN and END markers must pair up",
                    e.line()
                        .map(|l| format!(" at line {l}"))
                        .unwrap_or_default()
                ),
                &file_doc,
            )];
        }
    };
    let mut out = Vec::new();
    let present = parsed.block_lines(&want.project, want.uid);
    let block_check = match &present {
        None => {
            let reason = format!(
                "{file} has no devenv block for {} (uid {})",
                want.project, want.uid
            );
            if vm.running {
                Check::fail(
                    "nfs.exports",
                    format!("{reason}: the VM cannot mount the source tree"),
                    apply,
                    &file_doc,
                )
            } else {
                Check::warn(
                    "nfs.exports",
                    format!("{reason} yet (`devenv up` writes it)"),
                    apply,
                    &file_doc,
                )
            }
        }
        Some(lines) if *lines == want.lines => Check::ok(
            "nfs.exports",
            format!(
                "{file}: devenv's block for {} is present and current",
                want.project
            ),
        ),
        Some(lines) => Check::warn(
            "nfs.exports",
            format!(
                "{file}: devenv's block for {} is outdated: it holds {:?}, devenv would write {:?}",
                want.project,
                lines.join(" | "),
                want.lines.join(" | ")
            ),
            apply,
            &file_doc,
        ),
    };
    out.push(block_check);

    let problems = parsed.check();
    let (ours, theirs): (Vec<_>, Vec<_>) = problems
        .iter()
        .partition(|p| p.in_devenv_block(&want.project, want.uid));
    let list = |ps: &[&crate::nfs::file::LineProblem]| {
        let mut s: Vec<String> = ps.iter().take(3).map(|p| p.to_string()).collect();
        if ps.len() > 3 {
            s.push(format!("and {} more", ps.len() - 3));
        }
        s.join("; ")
    };
    let valid_doc = doc(anchor::EXPORTS_VALID);
    out.push(if !ours.is_empty() {
        Check::fail(
            "nfs.exports-valid",
            format!("{file}: devenv's block would be refused: {}", list(&ours)),
            apply,
            &valid_doc,
        )
    } else if !theirs.is_empty() {
        Check::warn(
            "nfs.exports-valid",
            format!(
                "{file}: lines outside devenv's block the NFS server refuses or ignores: {}",
                list(&theirs)
            ),
            format!(
                "edit {file} at line {} (devenv never changes lines it did not write)",
                theirs[0].line
            ),
            &valid_doc,
        )
    } else {
        Check::ok(
            "nfs.exports-valid",
            format!("{file}: no line the NFS server would refuse"),
        )
    });

    if present.is_some() {
        out.push(scope_check(&parsed, want, vm));
    }
    out
}

fn scope_check(file: &ExportsFile, want: &WantedBlock, vm: Vm) -> Check {
    const ID: &str = "nfs.exports-scope";
    let doc = doc(anchor::EXPORT_SCOPE);
    let key = crate::nfs::file::BlockKey::new(want.project.clone(), want.uid);
    let mut clients = Vec::new();
    for entry in file
        .entries()
        .into_iter()
        .filter(|e| e.block.as_ref() == Some(&key))
    {
        for text in clients_of(want.dialect, &entry.rest) {
            match crate::nfs::parse_client(&text) {
                Ok(c) => clients.push(c),
                Err(why) => {
                    return Check::fail(
                        ID,
                        format!("line {}: {why}", entry.line),
                        "devenv exports apply",
                        &doc,
                    );
                }
            }
        }
    }
    if clients.is_empty() {
        return Check::fail(
            ID,
            "devenv's block names no client: the server would export to every host",
            "devenv exports apply",
            &doc,
        );
    }
    let names: Vec<String> = clients.iter().map(ToString::to_string).collect();
    if vm.running
        && let Some(ip) = vm.ip
        && !clients.iter().any(|c| contains(*c, ip))
    {
        return Check::fail(
            ID,
            format!(
                "the source tree is exported to {}, but the VM's address is {ip}: its mount is refused",
                names.join(", ")
            ),
            "devenv exports apply",
            &doc,
        );
    }
    let whom = match (vm.running, vm.ip) {
        (true, Some(ip)) => format!(", which holds the VM's address {ip}"),
        _ => String::new(),
    };
    Check::ok(
        ID,
        format!("exported only to {} (private){whom}", names.join(", ")),
    )
}

/// The client words of one export: Linux `client(options)` words (an empty client before `(`
/// means everyone), macOS `-network N [-mask M]` or host addresses.
pub fn clients_of(dialect: ExportsDialect, rest: &[String]) -> Vec<String> {
    match dialect {
        ExportsDialect::Linux => rest
            .iter()
            .filter(|w| !w.starts_with('-'))
            .map(|w| {
                let c = w.split('(').next().unwrap_or_default();
                if c.is_empty() {
                    "*".to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
        ExportsDialect::MacOs => {
            let mut out = Vec::new();
            let mut network: Option<String> = None;
            let mut mask: Option<String> = None;
            let mut words = rest.iter();
            while let Some(w) = words.next() {
                let (flag, inline) = match w.split_once('=') {
                    Some((f, v)) => (f, Some(v.to_string())),
                    None => (w.as_str(), None),
                };
                match flag {
                    "-network" | "-net" => network = inline.or_else(|| words.next().cloned()),
                    "-mask" => mask = inline.or_else(|| words.next().cloned()),
                    f if f.starts_with('-') => {}
                    _ => out.push(w.clone()),
                }
            }
            if let Some(net) = network {
                match mask.as_deref().and_then(|m| m.parse::<Ipv4Addr>().ok()) {
                    Some(m) if !net.contains('/') => {
                        out.push(format!("{net}/{}", u32::from(m).leading_ones()))
                    }
                    _ => out.push(net),
                }
            }
            out
        }
    }
}

fn contains(client: ExportClient, ip: Ipv4Addr) -> bool {
    match client {
        ExportClient::Address(a) => a == ip,
        ExportClient::Subnet { network, prefix } => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            u32::from(ip) & mask == u32::from(network) & mask
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devenv_drivers::CheckState;

    const LINE: &str = "\"/home/ann/src/shop\" 192.168.39.0/24(rw,async,no_subtree_check,all_squash,anonuid=1000,anongid=1000)";

    fn want() -> WantedBlock {
        WantedBlock {
            project: "shop".into(),
            uid: 1000,
            lines: vec![LINE.into()],
            dialect: ExportsDialect::Linux,
            file: "/etc/exports".into(),
        }
    }

    fn block(line: &str) -> String {
        format!(
            "# mine\n/srv 10.0.0.5(ro)\n# BEGIN devenv shop uid=1000\n{line}\n# END devenv shop uid=1000\n"
        )
    }

    const STOPPED: Vm = Vm {
        running: false,
        ip: None,
    };

    fn by_id<'a>(checks: &'a [Check], id: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no {id} in {checks:?}"))
    }

    #[test]
    fn a_current_block_for_the_vm_network_passes_all_three() {
        let text = block(LINE);
        let vm = Vm {
            running: true,
            ip: Some(Ipv4Addr::new(192, 168, 39, 10)),
        };
        let checks = exports_checks(&want(), Some(text.as_bytes()), vm);
        assert_eq!(checks.len(), 3);
        for c in &checks {
            assert_eq!(c.state, CheckState::Ok, "{c:?}");
        }
        assert_eq!(
            by_id(&checks, "nfs.exports-scope").reason,
            "exported only to 192.168.39.0/24 (private), which holds the VM's address 192.168.39.10"
        );
    }

    #[test]
    fn a_missing_block_warns_before_up_and_fails_with_the_vm_running() {
        let checks = exports_checks(&want(), None, STOPPED);
        let c = by_id(&checks, "nfs.exports");
        assert_eq!(c.state, CheckState::Warn);
        assert_eq!(c.fix.as_deref(), Some("devenv exports apply"));
        assert!(checks.iter().all(|c| c.id != "nfs.exports-scope"));
        let running = Vm {
            running: true,
            ip: None,
        };
        assert_eq!(
            by_id(
                &exports_checks(&want(), Some(b"# empty\n"), running),
                "nfs.exports"
            )
            .state,
            CheckState::Fail
        );
    }

    #[test]
    fn an_outdated_block_says_what_it_holds_and_what_devenv_would_write() {
        let old = LINE.replace("192.168.39.0/24", "192.168.39.77");
        let checks = exports_checks(&want(), Some(block(&old).as_bytes()), STOPPED);
        let c = by_id(&checks, "nfs.exports");
        assert_eq!(c.state, CheckState::Warn);
        assert!(c.reason.contains("outdated"));
    }

    #[test]
    fn a_block_exported_to_everyone_fails_the_scope_rule() {
        let wide = LINE.replace("192.168.39.0/24", "*");
        let checks = exports_checks(&want(), Some(block(&wide).as_bytes()), STOPPED);
        assert_eq!(by_id(&checks, "nfs.exports-scope").state, CheckState::Fail);
        assert_eq!(
            by_id(&checks, "nfs.exports-valid").state,
            CheckState::Fail,
            "check() refuses it too"
        );
        let public = LINE.replace("192.168.39.0/24", "8.8.8.0/24");
        let c = by_id(
            &exports_checks(&want(), Some(block(&public).as_bytes()), STOPPED),
            "nfs.exports-scope",
        )
        .clone();
        assert_eq!(c.state, CheckState::Fail);
        assert!(c.reason.contains("private range"), "{}", c.reason);
    }

    #[test]
    fn an_export_that_misses_the_running_vm_fails() {
        let vm = Vm {
            running: true,
            ip: Some(Ipv4Addr::new(192, 168, 50, 10)),
        };
        let c = by_id(
            &exports_checks(&want(), Some(block(LINE).as_bytes()), vm),
            "nfs.exports-scope",
        )
        .clone();
        assert_eq!(c.state, CheckState::Fail);
        assert!(c.reason.contains("the VM's address is 192.168.50.10"));
    }

    #[test]
    fn problems_outside_the_block_only_warn_and_name_the_line() {
        let text = format!("/srv 10.0.0.5(bogusopt)\n{}", block(LINE));
        let checks = exports_checks(&want(), Some(text.as_bytes()), STOPPED);
        let c = by_id(&checks, "nfs.exports-valid");
        assert_eq!(c.state, CheckState::Warn, "{c:?}");
        assert!(
            c.fix
                .as_deref()
                .unwrap()
                .starts_with("edit /etc/exports at line 1")
        );
    }

    #[test]
    fn broken_markers_fail_with_the_line() {
        let text = "# BEGIN devenv shop uid=1000\n/x 10.0.0.1(rw)\n";
        let checks = exports_checks(&want(), Some(text.as_bytes()), STOPPED);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].state, CheckState::Fail);
        assert!(checks[0].fix.as_deref().unwrap().contains("at line 1"));
    }

    #[test]
    fn macos_clients_come_from_network_and_mask_or_addresses() {
        let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            clients_of(
                ExportsDialect::MacOs,
                &words("-alldirs -mapall=501:20 -network 192.168.64.0 -mask 255.255.255.0")
            ),
            vec!["192.168.64.0/24"]
        );
        assert_eq!(
            clients_of(
                ExportsDialect::MacOs,
                &words("-alldirs -mapall=501:20 192.168.64.12")
            ),
            vec!["192.168.64.12"]
        );
        assert_eq!(
            clients_of(
                ExportsDialect::Linux,
                &words("192.168.39.12(rw) (ro) -sync")
            ),
            vec!["192.168.39.12", "*"]
        );
    }

    #[test]
    fn server_states_map_to_fixes() {
        let inactive = Server::Systemd {
            state: "inactive".into(),
            installed: true,
        };
        let c = server_check(&inactive, false, "x");
        assert_eq!(c.state, CheckState::Warn);
        assert_eq!(
            c.fix.as_deref(),
            Some("sudo systemctl enable --now nfs-server")
        );
        assert_eq!(server_check(&inactive, true, "x").state, CheckState::Fail);
        let absent = Server::Systemd {
            state: "inactive".into(),
            installed: false,
        };
        let c = server_check(&absent, false, "sudo apt-get install -y nfs-kernel-server");
        assert_eq!(
            (c.state, c.fix.as_deref()),
            (
                CheckState::Fail,
                Some("sudo apt-get install -y nfs-kernel-server")
            )
        );
        let active = Server::Systemd {
            state: "active".into(),
            installed: true,
        };
        assert_eq!(server_check(&active, true, "x").state, CheckState::Ok);
        assert_eq!(
            server_check(&Server::Nfsd { running: false }, false, "x")
                .fix
                .as_deref(),
            Some("sudo nfsd enable")
        );
        assert_eq!(
            server_check(&Server::Unknown("?".into()), true, "x").state,
            CheckState::Warn
        );
    }

    #[test]
    fn rpcinfo_and_nfsd_outputs_are_read() {
        let rpc = "   program vers proto   port  service\n    100000    4   tcp    111  portmapper\n    100003    3   tcp   2049  nfs\n";
        assert!(rpcinfo_lists_nfs(rpc));
        assert!(!rpcinfo_lists_nfs(
            "    100000    4   tcp    111  portmapper\n"
        ));
        assert!(nfsd_running(
            "nfsd service is enabled\nnfsd is running (pid 402, 8 threads)\n"
        ));
        assert!(!nfsd_running(
            "nfsd service is disabled\nnfsd is not running\n"
        ));
    }
}
