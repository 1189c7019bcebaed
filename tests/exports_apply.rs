//! The safe-apply path of `src/nfs/apply/` at the library level: validation with the real
//! Linux `exportfs` in a private mount namespace (root only; CI runs as root), and the exact
//! privileged commands: with the exports helper, the one command the sudoers snippet allows
//! (checked with the real `visudo`); without it, sudo command lines no snippet allows.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devenv::nfs::apply::{self, ApplyError, Change, NfsHost, Outcome, Privilege};
use devenv::process::{
    BoxFuture, Cmd, LineSink, Output, Platform, ProcessError, Runner, SystemRunner,
};
use devenv_drivers::ExportsDialect;

use support::docker::block_on;
use support::is_root;

/// A host whose exports file is a temp file, validated by the real exportfs, reloaded by `true`.
fn host(exports: &Path) -> NfsHost {
    NfsHost {
        exports: exports.to_path_buf(),
        dialect: ExportsDialect::Linux,
        privilege: Privilege::Direct,
        reload: vec![Cmd::new("true")],
        server: None,
        validate: true,
        lock_dir: std::env::temp_dir(),
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
            grant: None,
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
            grant: None,
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
            grant: None,
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

/// Records commands and answers success, as a `sudo` that accepts everything would; the
/// exports helper answers `changed` as the real one does after a write.
#[derive(Default)]
struct Recorder {
    ran: Mutex<Vec<String>>,
    stdin: Mutex<Vec<Vec<u8>>>,
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
        let stdout = if line.ends_with("devenv-exports-helper") {
            "changed /etc/exports.devenv.bak\n".to_string()
        } else {
            String::new()
        };
        self.ran.lock().unwrap().push(line);
        self.stdin
            .lock()
            .unwrap()
            .push(cmd.get_stdin().unwrap_or_default().to_vec());
        Box::pin(async move {
            Ok(Output {
                code: Some(code),
                stdout,
                ..Output::default()
            })
        })
    }
}

/// The commands a sudoers snippet allows, as written (binaries with their directories).
fn allowed(snippet: &str) -> Vec<String> {
    let body = snippet
        .split("Cmnd_Alias DEVENV_EXPORTS =")
        .nth(1)
        .unwrap()
        .split('\n')
        .take_while(|l| !l.trim().is_empty() && !l.starts_with('%') && !l.starts_with("Defaults"))
        .collect::<Vec<_>>()
        .join(" ");
    body.split(',')
        .map(|c| {
            c.replace('\\', " ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| !c.is_empty())
        .collect()
}

fn grant(dir: &Path) -> devenv::nfs::Grant {
    devenv::nfs::Grant {
        dir: dir.to_path_buf(),
        client: devenv_drivers::ExportClient::Address(std::net::Ipv4Addr::new(192, 168, 39, 15)),
        access: devenv::nfs::Access::ReadWrite,
    }
}

/// The commands one apply runs on /etc/exports as a user who cannot write it, with the
/// machine's own file only read (or taken as empty), and what each got on stdin.
fn privileged_commands(
    dialect: ExportsDialect,
    privilege: Privilege,
    reload_fails: bool,
) -> Vec<(String, Vec<u8>)> {
    let rec = Arc::new(Recorder {
        fail_reload: reload_fails,
        ..Recorder::default()
    });
    let mut host = NfsHost::for_machine(PathBuf::from("/etc/exports"), dialect, false);
    if privilege == Privilege::Sudo {
        host.reload = vec![devenv::nfs::reload(dialect, false)];
    }
    host.privilege = privilege;
    host.validate = false;
    let dir = tempfile::tempdir().unwrap();
    let grant = grant(dir.path());
    let lines = vec![devenv::nfs::export_line(
        dialect,
        dir.path(),
        grant.client,
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
            grant: Some(&grant),
        },
        Duration::from_secs(5),
    ));
    assert_eq!(
        result.is_err(),
        reload_fails,
        "only a failing reload makes the apply fail: {result:?}"
    );
    let ran = rec.ran.lock().unwrap().clone();
    let stdin = rec.stdin.lock().unwrap().clone();
    ran.into_iter()
        .zip(stdin)
        .filter(|(c, _)| c.starts_with("sudo ") && c != "sudo -n true")
        .collect()
}

fn helper_is_the_only_privileged_command(dialect: ExportsDialect, snippet: &str) {
    let path = devenv::nfs::helper::installed_path(dialect == ExportsDialect::MacOs);
    let ran = privileged_commands(dialect, Privilege::Helper(PathBuf::from(path)), false);
    assert_eq!(
        ran.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        [format!("sudo -n {path}")],
        "with the helper, sudo runs the helper and nothing else"
    );
    let request = devenv::nfs::helper::Request::parse(&ran[0].1).expect("a valid request");
    assert!(
        matches!(&request, devenv::nfs::helper::Request::Set { project, grant }
            if project == "shop-sudoers-test" && grant.client.to_string() == "192.168.39.15"),
        "{request:?}"
    );
    assert_eq!(
        allowed(snippet),
        [format!("{path} \"\"")],
        "the snippet allows the helper, without arguments, and nothing else"
    );
    assert!(snippet.contains("NOPASSWD: DEVENV_EXPORTS"), "{snippet}");
}

#[test]
fn with_the_helper_sudo_runs_only_the_helper_which_is_all_the_linux_snippet_allows() {
    helper_is_the_only_privileged_command(
        ExportsDialect::Linux,
        include_str!("../templates/sudoers.linux"),
    );
}

#[test]
fn with_the_helper_sudo_runs_only_the_helper_which_is_all_the_macos_snippet_allows() {
    helper_is_the_only_privileged_command(
        ExportsDialect::MacOs,
        include_str!("../templates/sudoers.macos"),
    );
}

#[test]
fn without_the_helper_the_fixed_sudo_lines_run_and_no_snippet_spares_their_password() {
    for (dialect, snippet) in [
        (
            ExportsDialect::Linux,
            include_str!("../templates/sudoers.linux"),
        ),
        (
            ExportsDialect::MacOs,
            include_str!("../templates/sudoers.macos"),
        ),
    ] {
        let mut ran = privileged_commands(dialect, Privilege::Sudo, false);
        ran.extend(privileged_commands(dialect, Privilege::Sudo, true));
        let ran: Vec<String> = ran.into_iter().map(|(c, _)| c).collect();
        for expected in [
            "sudo tee /etc/exports.devenv.tmp",
            "sudo mv /etc/exports.devenv.tmp /etc/exports",
            "sudo cp /etc/exports.devenv.bak /etc/exports",
            "sudo touch /etc/exports.devenv.reload",
            "sudo rm -f /etc/exports.devenv.reload",
        ] {
            assert!(ran.iter().any(|c| c == expected), "{dialect:?}: {ran:?}");
        }
        for c in &ran {
            let program = c.split_whitespace().nth(1).unwrap();
            assert!(
                !snippet.contains(&format!("/{program} ")),
                "{dialect:?}: the snippet must not allow `{c}`"
            );
        }
    }
}

#[test]
fn the_sudoers_snippets_pass_the_real_visudo() {
    let Some(visudo) = support::real_tool("visudo") else {
        return;
    };
    for name in ["sudoers.linux", "sudoers.macos"] {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("templates")
            .join(name);
        let out = std::process::Command::new(&visudo)
            .arg("-cf")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "visudo -cf {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
