//! The safe-apply path of `src/nfs/apply.rs` at the library level: validation with the real
//! Linux `exportfs` in a private mount namespace (root only; CI runs as root), and the exact
//! sudo command lines, checked against the sudoers snippet users install.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devenv::nfs::apply::{self, ApplyError, Change, NfsHost, Outcome, Privilege};
use devenv::process::{
    BoxFuture, Cmd, LineSink, Output, Platform, ProcessError, Runner, SystemRunner,
};
use devenv_drivers::ExportsDialect;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

/// A host whose exports file is a temp file, validated by the real exportfs, reloaded by `true`.
fn host(exports: &Path) -> NfsHost {
    NfsHost {
        exports: exports.to_path_buf(),
        dialect: ExportsDialect::Linux,
        privilege: Privilege::Direct,
        reload: vec![Cmd::new("true")],
        server: None,
        exportfs_check: true,
    }
}

fn line(path: &Path) -> String {
    format!(
        "\"{}\" 192.168.39.0/24(rw,async,no_subtree_check,all_squash,anonuid=1000,anongid=1000)",
        path.display()
    )
}

fn exportfs_usable() -> bool {
    if !is_root() {
        eprintln!("skipping: validating with exportfs needs root");
        return false;
    }
    support::real_tool("exportfs").is_some() && support::real_tool("unshare").is_some()
}

#[test]
fn a_valid_block_passes_the_real_exportfs_and_is_written() {
    if !exportfs_usable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    std::fs::write(&exports, "# mine\n").unwrap();
    let lines = vec![line(dir.path())];
    let runner = SystemRunner::new(Platform::Debian);
    let out = block_on(apply::apply(
        &runner,
        &host(&exports),
        "shop",
        1000,
        &Change::Set {
            source: dir.path(),
            lines: &lines,
        },
        Duration::from_secs(5),
    ))
    .unwrap();
    assert!(matches!(out, Outcome::Changed { .. }));
    assert!(
        std::fs::read_to_string(&exports)
            .unwrap()
            .contains(&lines[0])
    );
}

#[test]
fn exportfs_rejection_stops_the_change_and_leaves_the_file() {
    if !exportfs_usable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    std::fs::write(&exports, "# mine\n").unwrap();
    let missing = PathBuf::from("/nonexistent/devenv-source");
    let lines = vec![line(&missing)];
    let runner = SystemRunner::new(Platform::Debian);
    let err = block_on(apply::apply(
        &runner,
        &host(&exports),
        "shop",
        1000,
        &Change::Set {
            source: &missing,
            lines: &lines,
        },
        Duration::from_secs(5),
    ))
    .unwrap_err();
    let ApplyError::Invalid { problems } = &err else {
        panic!("{err:?}")
    };
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Failed to stat /nonexistent/devenv-source")),
        "{problems:?}"
    );
    assert_eq!(std::fs::read_to_string(&exports).unwrap(), "# mine\n");
}

#[test]
fn a_stale_foreign_line_that_exportfs_already_rejects_does_not_block_devenv() {
    if !exportfs_usable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    let stale = "/gone/away 10.0.0.7(rw,no_subtree_check)\n";
    std::fs::write(&exports, stale).unwrap();
    let lines = vec![line(dir.path())];
    let runner = SystemRunner::new(Platform::Debian);
    block_on(apply::apply(
        &runner,
        &host(&exports),
        "shop",
        1000,
        &Change::Set {
            source: dir.path(),
            lines: &lines,
        },
        Duration::from_secs(5),
    ))
    .unwrap();
    assert!(
        std::fs::read_to_string(&exports)
            .unwrap()
            .starts_with(stale)
    );
}

/// Records commands and answers success, as a `sudo` that accepts everything would.
#[derive(Default)]
struct Recorder {
    ran: Mutex<Vec<String>>,
    /// Make the NFS reload fail, to see the restore path.
    fail_reload: bool,
}

impl Runner for Recorder {
    fn output_streaming<'a>(
        &'a self,
        cmd: &'a Cmd,
        _sink: Option<LineSink<'a>>,
    ) -> BoxFuture<'a, Result<Output, ProcessError>> {
        let line = cmd.display();
        let code = if self.fail_reload
            && (line.ends_with("exportfs -ra") || line.ends_with("nfsd update"))
        {
            1
        } else {
            0
        };
        self.ran.lock().unwrap().push(line);
        Box::pin(async move {
            Ok(Output {
                code: Some(code),
                ..Output::default()
            })
        })
    }
}

/// The commands a sudoers snippet allows, without the binaries' directories.
fn allowed(snippet: &str) -> Vec<String> {
    let body = snippet
        .split("Cmnd_Alias DEVENV_EXPORTS =")
        .nth(1)
        .unwrap()
        .split("\n%")
        .next()
        .unwrap();
    body.split(',')
        .map(|c| {
            c.replace('\\', " ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| !c.is_empty())
        .map(|c| {
            let (bin, rest) = c.split_once(' ').unwrap_or((&c, ""));
            let bin = bin.rsplit('/').next().unwrap();
            format!("{bin} {rest}").trim().to_string()
        })
        .collect()
}

fn sudo_commands(dialect: ExportsDialect, reload_fails: bool) -> Vec<String> {
    let rec = Arc::new(Recorder {
        fail_reload: reload_fails,
        ..Recorder::default()
    });
    let mut host = NfsHost::for_machine(PathBuf::from("/etc/exports"), dialect, false);
    host.privilege = Privilege::Sudo;
    host.exportfs_check = false;
    host.reload = vec![devenv::nfs::reload(dialect, false)];
    // The current text comes from the machine's /etc/exports (read only) or is empty.
    let dir = tempfile::tempdir().unwrap();
    let lines = vec![devenv::nfs::export_line(
        dialect,
        dir.path(),
        devenv_drivers::ExportClient::Subnet {
            network: std::net::Ipv4Addr::new(192, 168, 39, 0),
            prefix: 24,
        },
        devenv::nfs::Owner {
            uid: 4242,
            gid: 4242,
        },
    )];
    let result = block_on(apply::apply(
        rec.as_ref(),
        &host,
        "shop-sudoers-test",
        4242,
        &Change::Set {
            source: dir.path(),
            lines: &lines,
        },
        Duration::from_secs(5),
    ));
    assert_eq!(
        result.is_err(),
        reload_fails,
        "only a failing reload makes the apply fail: {result:?}"
    );
    let ran = rec.ran.lock().unwrap().clone();
    ran.into_iter()
        .filter_map(|c| c.strip_prefix("sudo ").map(str::to_string))
        .filter(|c| c != "-n true")
        .collect()
}

#[test]
fn every_sudo_command_on_linux_is_in_the_sudoers_snippet() {
    let allowed = allowed(include_str!("../templates/sudoers.linux"));
    let mut ran = sudo_commands(ExportsDialect::Linux, false);
    ran.extend(sudo_commands(ExportsDialect::Linux, true));
    assert!(
        ran.iter()
            .any(|c| c == "cp /etc/exports.devenv.bak /etc/exports"),
        "{ran:?}"
    );
    assert!(
        ran.iter().any(|c| c == "tee /etc/exports.devenv.tmp"),
        "{ran:?}"
    );
    assert!(
        ran.iter()
            .any(|c| c == "mv /etc/exports.devenv.tmp /etc/exports"),
        "{ran:?}"
    );
    for c in &ran {
        assert!(
            allowed.contains(c),
            "`sudo {c}` is not in templates/sudoers.linux: {allowed:?}"
        );
    }
}

#[test]
fn every_sudo_command_on_macos_is_in_the_sudoers_snippet() {
    let allowed = allowed(include_str!("../templates/sudoers.macos"));
    let mut ran = sudo_commands(ExportsDialect::MacOs, false);
    ran.extend(sudo_commands(ExportsDialect::MacOs, true));
    assert!(
        ran.iter()
            .any(|c| c == "nfsd -F /etc/exports.devenv.tmp checkexports"),
        "{ran:?}"
    );
    for c in &ran {
        assert!(
            allowed.contains(c),
            "`sudo {c}` is not in templates/sudoers.macos: {allowed:?}"
        );
    }
}
