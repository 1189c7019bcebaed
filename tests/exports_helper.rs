//! The exports helper as an attacker would try it. Every hostile request — a system directory,
//! someone else's directory, a symbolic link, `..`, a smuggled line or quote, a wildcard or
//! public client, injected options, another user's block, an oversized or malformed request —
//! is refused with the rule it broke, and the exports file is byte-identical afterwards.
//!
//! The policy runs through `devenv::nfs::helper::serve`, the function the installed binary
//! calls, on a temp exports file validated by the real `exportfs` (root; CI runs as root). The
//! binary itself, with its fixed /etc/exports, runs only inside a private mount namespace where
//! /etc is a copy (see `namespace`), so the machine's own files are never touched; there a real
//! non-root user with the real `sudo` and the shipped sudoers snippet runs `devenv up`.

mod support;

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use devenv::nfs::apply::{NfsHost, Privilege};
use devenv::nfs::helper::{self, HelperError, Invoker, PROTOCOL, Refusal, Reply, System};
use devenv::process::{Cmd, Platform, SystemRunner};
use devenv_drivers::ExportsDialect;

use support::docker::block_on;
use support::is_root;

/// The developer the helper acts for: uid 4242 when the tests run as root (so "someone else's
/// directory" can be made), the test's own user otherwise.
fn developer(home: &Path) -> Invoker {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = if is_root() {
        (4242, 4242)
    } else {
        unsafe { (libc::getuid(), libc::getgid()) }
    };
    Invoker {
        uid,
        gid,
        home: Some(home.to_path_buf()),
    }
}

/// A temp machine: an exports file with a foreign export and another user's block for the same
/// project, the developer's home with a project in it.
struct Machine {
    _dir: tempfile::TempDir,
    root: PathBuf,
    exports: PathBuf,
    home: PathBuf,
    project: PathBuf,
    invoker: Invoker,
    system: System,
}

const BEFORE: &str = "# hand-written\n/srv/share 10.0.0.7(ro,no_subtree_check)\n\
# BEGIN devenv shop uid=1001\n\"/home/bob/shop\" 192.168.39.20(rw,async,no_subtree_check,all_squash,anonuid=1001,anongid=1001)\n\
# END devenv shop uid=1001\n";

impl Machine {
    fn new() -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let exports = root.join("exports");
        std::fs::write(&exports, BEFORE).unwrap();
        let home = root.join("home/ann");
        let project = home.join("src/My Projects/shop");
        std::fs::create_dir_all(&project).unwrap();
        let invoker = developer(&home);
        if is_root() {
            for d in [
                &home,
                &home.join("src"),
                &home.join("src/My Projects"),
                &project,
            ] {
                std::os::unix::fs::chown(d, Some(invoker.uid), Some(invoker.gid)).unwrap();
            }
        }
        let validate = is_root()
            && support::real_tool("exportfs").is_some()
            && support::real_tool("unshare").is_some();
        let system = System {
            host: NfsHost {
                exports: exports.clone(),
                dialect: ExportsDialect::Linux,
                privilege: Privilege::Direct,
                reload: vec![Cmd::new("true")],
                server: None,
                validate,
                lock_dir: root.clone(),
            },
            firmlinks: String::new(),
            lock_timeout: Duration::from_secs(5),
        };
        Machine {
            _dir: dir,
            root,
            exports,
            home,
            project,
            invoker,
            system,
        }
    }

    fn serve(&self, request: &[u8]) -> Result<Reply, HelperError> {
        let runner = SystemRunner::new(Platform::Debian);
        block_on(helper::serve(&runner, request, &self.invoker, &self.system))
    }

    fn file(&self) -> String {
        std::fs::read_to_string(&self.exports).unwrap()
    }

    /// A directory of the developer's under the temp root.
    fn owned_dir(&self, rel: &str) -> PathBuf {
        let d = self.root.join(rel);
        std::fs::create_dir_all(&d).unwrap();
        if is_root() {
            std::os::unix::fs::chown(&d, Some(self.invoker.uid), Some(self.invoker.gid)).unwrap();
        }
        d
    }
}

fn set(dir: &str, client: &str) -> String {
    format!("{PROTOCOL}\naction set\nproject shop\ndir {dir}\nclient {client}\naccess rw\n")
}

/// Send `request`, expect a refusal whose message names `rule`, and an untouched file.
fn refused(m: &Machine, request: &[u8], rule: &str) {
    let err = m
        .serve(request)
        .expect_err("a hostile request must be refused");
    assert!(
        matches!(err, HelperError::Refused(_)),
        "not refused by the policy: {err}"
    );
    assert_eq!(err.exit_code(), 2, "a refusal exits 2: nothing written");
    assert!(
        err.to_string().contains(rule),
        "{err} does not name `{rule}`"
    );
    assert_eq!(m.file(), BEFORE, "the exports file changed");
    let leftovers: Vec<_> = std::fs::read_dir(&m.root)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("exports.") || n.starts_with(".exports"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "files left beside exports: {leftovers:?}"
    );
}

#[test]
fn a_project_the_developer_owns_is_exported_to_the_vm_squashed_to_the_developer() {
    let m = Machine::new();
    let request = set(&m.project.to_string_lossy(), "192.168.39.15");
    let reply = m.serve(request.as_bytes()).unwrap();
    assert!(matches!(
        reply,
        Reply::Done(devenv::nfs::apply::Outcome::Changed { .. })
    ));
    let line = devenv::nfs::export_line(
        ExportsDialect::Linux,
        &m.project,
        devenv_drivers::ExportClient::Address("192.168.39.15".parse().unwrap()),
        devenv::nfs::Owner {
            uid: m.invoker.uid,
            gid: m.invoker.gid,
        },
    );
    let uid = m.invoker.uid;
    assert_eq!(
        m.file(),
        format!("{BEFORE}# BEGIN devenv shop uid={uid}\n{line}\n# END devenv shop uid={uid}\n"),
        "the block devenv itself would write, after everything else, byte for byte"
    );
    assert!(line.contains("all_squash") && line.contains(&format!("anonuid={uid}")));
    assert!(!line.contains("no_root_squash") && !line.contains("insecure"));

    // The same request again changes nothing; remove gives back the file byte for byte.
    assert_eq!(
        m.serve(request.as_bytes()).unwrap(),
        Reply::Done(devenv::nfs::apply::Outcome::Unchanged)
    );
    let remove = format!("{PROTOCOL}\naction remove\nproject shop\n");
    m.serve(remove.as_bytes()).unwrap();
    assert_eq!(
        m.file(),
        BEFORE,
        "bob's block and the foreign export are kept"
    );
}

#[test]
fn a_read_only_request_gets_a_read_only_line() {
    let m = Machine::new();
    let request =
        set(&m.project.to_string_lossy(), "192.168.39.0/24").replace("access rw", "access ro");
    m.serve(request.as_bytes()).unwrap();
    assert!(
        m.file()
            .contains("192.168.39.0/24(ro,async,no_subtree_check,all_squash"),
        "{}",
        m.file()
    );
}

#[test]
fn system_directories_and_directories_holding_other_peoples_files_are_refused() {
    let m = Machine::new();
    for (dir, rule) in [
        ("/", "system directory"),
        ("/etc", "system directory /etc"),
        ("/etc/sudoers.d", "system directory /etc"),
        ("/usr/local", "system directory /usr"),
        ("/var/lib", "system directory /var"),
        ("/root", "system directory /root"),
        ("/home", "/home"),
        ("/tmp", "/tmp"),
    ] {
        refused(&m, set(dir, "192.168.39.15").as_bytes(), rule);
    }
}

#[test]
fn the_whole_home_directory_is_refused() {
    let m = Machine::new();
    refused(
        &m,
        set(&m.home.to_string_lossy(), "192.168.39.15").as_bytes(),
        "whole home directory",
    );
    refused(
        &m,
        set(&m.home.parent().unwrap().to_string_lossy(), "192.168.39.15").as_bytes(),
        "whole home directory",
    );
}

#[test]
fn a_directory_owned_by_someone_else_is_refused() {
    if !is_root() {
        eprintln!("skipping: making another user's directory needs root");
        return;
    }
    let m = Machine::new();
    let theirs = m.root.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(1001), Some(1001)).unwrap();
    refused(
        &m,
        set(&theirs.to_string_lossy(), "192.168.39.15").as_bytes(),
        "belongs to uid 1001",
    );
}

#[test]
fn symbolic_links_at_any_level_are_refused() {
    let m = Machine::new();
    let mine = m.owned_dir("mine");
    let to_etc = mine.join("etc-link");
    std::os::unix::fs::symlink("/etc", &to_etc).unwrap();
    refused(
        &m,
        set(&to_etc.to_string_lossy(), "192.168.39.15").as_bytes(),
        "symbolic link",
    );
    // A link to the developer's own project, and a path through such a link.
    let to_project = mine.join("project-link");
    std::os::unix::fs::symlink(&m.project, &to_project).unwrap();
    refused(
        &m,
        set(&to_project.to_string_lossy(), "192.168.39.15").as_bytes(),
        "symbolic link",
    );
    std::fs::create_dir(m.project.join("sub")).unwrap();
    if is_root() {
        std::os::unix::fs::chown(m.project.join("sub"), Some(m.invoker.uid), None).unwrap();
    }
    refused(
        &m,
        set(&to_project.join("sub").to_string_lossy(), "192.168.39.15").as_bytes(),
        "reached through a symbolic link",
    );
}

#[test]
fn dot_dot_quotes_and_smuggled_lines_are_refused() {
    let m = Machine::new();
    let p = m.project.to_string_lossy().into_owned();
    refused(
        &m,
        set(&format!("{p}/../../../../../etc"), "192.168.39.15").as_bytes(),
        "`..`",
    );
    refused(
        &m,
        set("relative/shop", "192.168.39.15").as_bytes(),
        "absolute",
    );
    refused(
        &m,
        set("/nonexistent/devenv-project", "192.168.39.15").as_bytes(),
        "cannot be read",
    );
    let file = m.project.join("file");
    std::fs::write(&file, "").unwrap();
    refused(
        &m,
        set(&file.to_string_lossy(), "192.168.39.15").as_bytes(),
        "not a directory",
    );
    // A second export line smuggled through the directory, with a line break or a quote.
    refused(
        &m,
        set(
            &format!("{p}\n/ 10.0.0.1(rw,no_root_squash)"),
            "192.168.39.15",
        )
        .as_bytes(),
        "malformed",
    );
    refused(
        &m,
        set(
            &format!("{p}\" 10.0.0.1(rw,no_root_squash) \"/"),
            "192.168.39.15",
        )
        .as_bytes(),
        "quote",
    );
    refused(
        &m,
        set(&format!("{p}\t"), "192.168.39.15").as_bytes(),
        "control character",
    );
}

#[test]
fn wildcard_public_and_named_clients_and_injected_options_are_refused() {
    let m = Machine::new();
    let p = m.project.to_string_lossy().into_owned();
    for (client, rule) in [
        ("*", "every host"),
        ("0.0.0.0/0", "every host"),
        ("8.8.8.8", "private ranges"),
        ("1.2.3.0/24", "private ranges"),
        ("vm.local", "not an IPv4"),
        ("@netgroup", "not an IPv4"),
        ("10.0.0.0/8", "/24 or narrower"),
        ("192.168.39.15(rw,no_root_squash)", "not an IPv4"),
        ("192.168.39.15 *(rw,no_root_squash,insecure)", "not an IPv4"),
    ] {
        refused(&m, set(&p, client).as_bytes(), rule);
    }
    refused(
        &m,
        set(&p, "192.168.39.15")
            .replace("access rw", "access rw,no_root_squash")
            .as_bytes(),
        "not rw or ro",
    );
}

#[test]
fn another_users_block_cannot_be_named() {
    let m = Machine::new();
    let p = m.project.to_string_lossy().into_owned();
    // There is no uid in a request: an extra field is malformed, and a project name carrying a
    // marker's `uid=` is not a DNS label.
    refused(
        &m,
        format!("{}uid 1001\n", set(&p, "192.168.39.15")).as_bytes(),
        "unexpected line",
    );
    refused(
        &m,
        set(&p, "192.168.39.15")
            .replace("project shop", "project shop uid=1001")
            .as_bytes(),
        "DNS label",
    );
    refused(
        &m,
        format!("{PROTOCOL}\naction remove\nproject shop uid=1001\n").as_bytes(),
        "DNS label",
    );
    // Removing "shop" as the developer leaves bob's block of the same project alone.
    m.serve(format!("{PROTOCOL}\naction remove\nproject shop\n").as_bytes())
        .unwrap();
    assert_eq!(m.file(), BEFORE);
}

#[test]
fn oversized_and_malformed_requests_are_refused() {
    let m = Machine::new();
    let p = m.project.to_string_lossy().into_owned();
    let big = set(
        &format!("{p}/{}", "a".repeat(helper::MAX_REQUEST)),
        "192.168.39.15",
    );
    refused(&m, big.as_bytes(), "larger than 4096 bytes");
    for (bad, rule) in [
        (b"".to_vec(), "line break"),
        (b"\xff\xfe\n".to_vec(), "not UTF-8"),
        (b"hello\n".to_vec(), "first line"),
        (format!("{PROTOCOL}\n").into_bytes(), "`action` is missing"),
        (
            format!("{PROTOCOL}\naction chmod\n").into_bytes(),
            "unknown action",
        ),
        (
            set(&p, "192.168.39.15").trim_end().as_bytes().to_vec(),
            "line break",
        ),
        (
            set(&p, "192.168.39.15")
                .replace("client", "host")
                .into_bytes(),
            "expected `client`",
        ),
    ] {
        refused(&m, &bad, rule);
    }
}

#[test]
fn an_export_overlapping_someone_elses_is_refused_by_the_shared_editor() {
    let m = Machine::new();
    let share = m.owned_dir("srv-share");
    std::fs::write(
        &m.exports,
        format!("{BEFORE}\"{}\" 10.0.0.9(ro)\n", share.display()),
    )
    .unwrap();
    let before = m.file();
    let sub = share.join("shop");
    std::fs::create_dir(&sub).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&sub, Some(m.invoker.uid), None).unwrap();
    }
    let err = m
        .serve(set(&sub.to_string_lossy(), "192.168.39.15").as_bytes())
        .unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(err.to_string().contains("overlapping"), "{err}");
    assert_eq!(m.file(), before);
}

#[test]
fn check_answers_without_touching_anything() {
    let m = Machine::new();
    assert_eq!(
        m.serve(format!("{PROTOCOL}\naction check\n").as_bytes())
            .unwrap(),
        Reply::Checked
    );
    assert_eq!(m.file(), BEFORE);
}

#[test]
fn the_helper_will_not_run_from_a_path_a_user_can_replace() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let exe = open.join("devenv-exports-helper");
    std::fs::write(&exe, "").unwrap();
    let err = helper::check_install(&exe).unwrap_err();
    assert!(matches!(err, Refusal::Install { .. }), "{err}");
    if is_root() {
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&exe, Some(4242), None).unwrap();
        assert!(
            helper::check_install(&exe)
                .unwrap_err()
                .to_string()
                .contains("not owned by root")
        );
        std::os::unix::fs::chown(&exe, Some(0), None).unwrap();
        helper::check_install(&exe).expect("root-owned in root-owned directories (/tmp is sticky)");
    }
}

/// A private mount namespace for the installed helper: /etc is a copy holding a real non-root
/// developer (uid 4242, in the group `devenv`) and the shipped sudoers snippet, the helper is
/// installed root-owned at its path on a tmpfs over /usr/local, and /var/lib/nfs and /run are
/// private too. Inside it, the real `sudo` and the real helper binary with its fixed
/// /etc/exports run; the machine's own /etc, /usr/local, /run and NFS state are never touched.
struct Namespace {
    dir: tempfile::TempDir,
}

const DEVELOPER: &str = "devenv-dev";
const DEVELOPER_UID: u32 = 4242;

impl Namespace {
    fn new(home: &Path) -> Option<Namespace> {
        if !is_root() {
            eprintln!("skipping: a namespace with another user needs root");
            return None;
        }
        for tool in ["sudo", "unshare", "runuser", "exportfs"] {
            support::real_tool(tool)?;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let etc = dir.path().join("etc");
        let cp = std::process::Command::new("cp")
            .arg("-a")
            .arg("/etc")
            .arg(&etc)
            .status()
            .unwrap();
        assert!(cp.success(), "copy /etc");
        let edit = |name: &str, line: String| {
            let path = etc.join(name);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let kept: String = text
                .lines()
                .filter(|l| !l.starts_with(&format!("{DEVELOPER}:")) && !l.starts_with("devenv:"))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(&path, format!("{kept}{line}")).unwrap();
        };
        let uid = DEVELOPER_UID;
        edit(
            "passwd",
            format!(
                "{DEVELOPER}:x:{uid}:{uid}:devenv test developer:{}:/bin/sh\n",
                home.display()
            ),
        );
        edit(
            "group",
            format!("{DEVELOPER}:x:{uid}:\ndevenv:x:{}:{DEVELOPER}\n", uid + 1),
        );
        edit("shadow", format!("{DEVELOPER}:*:19000:0:99999:7:::\n"));
        // The kvm2 driver's preflight wants the developer in the libvirt group, as onboard
        // arranges.
        let group = std::fs::read_to_string(etc.join("group")).unwrap();
        let group: String = group
            .lines()
            .map(|l| match l.strip_prefix("libvirt:") {
                Some(rest) if rest.ends_with(':') => format!("{l}{DEVELOPER}\n"),
                Some(_) => format!("{l},{DEVELOPER}\n"),
                None => format!("{l}\n"),
            })
            .collect();
        std::fs::write(etc.join("group"), group).unwrap();
        let sudoers = etc.join("sudoers.d/devenv");
        std::fs::create_dir_all(sudoers.parent().unwrap()).unwrap();
        std::fs::write(&sudoers, include_str!("../templates/sudoers.linux")).unwrap();
        std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o440)).unwrap();
        std::fs::create_dir(dir.path().join("nfs")).unwrap();
        std::fs::copy(
            env!("CARGO_BIN_EXE_devenv-exports-helper"),
            dir.path().join("helper"),
        )
        .unwrap();
        Some(Namespace { dir })
    }

    /// The namespace's /etc/exports (the machine's own is never written).
    fn exports(&self) -> PathBuf {
        self.dir.path().join("etc/exports")
    }

    /// A copy of `dir` the developer can read and run (a CI checkout may be mode 0700), made
    /// with its parent directory, since the support scripts find their siblings by path.
    fn readable_copy(&self, dir: &Path) -> PathBuf {
        let parent = dir.parent().unwrap();
        let to = self.dir.path().join(format!(
            "copy-{}",
            parent.file_name().unwrap().to_string_lossy()
        ));
        if !to.exists() {
            let status = std::process::Command::new("cp")
                .arg("-a")
                .arg(parent)
                .arg(&to)
                .status()
                .unwrap();
            assert!(status.success());
            let status = std::process::Command::new("chmod")
                .args(["-R", "a+rX"])
                .arg(&to)
                .status()
                .unwrap();
            assert!(status.success());
        }
        to.join(dir.file_name().unwrap())
    }

    /// A copy of the file at `path` the developer can run.
    fn readable_file(&self, path: &Path) -> PathBuf {
        let to = self.dir.path().join(path.file_name().unwrap());
        std::fs::copy(path, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        to
    }

    /// Run `program args` as the developer in the namespace with exactly `env`, `stdin` on its
    /// standard input and no terminal.
    fn run_as_developer(
        &self,
        env: &[(OsString, OsString)],
        cwd: &Path,
        program: &Path,
        args: &[&str],
        stdin: &[u8],
    ) -> std::process::Output {
        let script = "set -e\n\
            d=$1; cwd=$2; shift 2\n\
            mount --bind \"$d/etc\" /etc\n\
            mount --bind \"$d/nfs\" /var/lib/nfs\n\
            mount -t tmpfs -o mode=0755 devenv-test-run /run\n\
            mount -t tmpfs -o mode=0755 devenv-test-local /usr/local\n\
            mkdir -p /usr/local/libexec/devenv\n\
            install -o root -g 0 -m 0755 \"$d/helper\" /usr/local/libexec/devenv/devenv-exports-helper\n\
            cd \"$cwd\"\n\
            exec runuser -u devenv-dev -- env -i \"$@\"\n";
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(self.dir.path())
            .arg(cwd);
        for (k, v) in env {
            let mut kv = k.clone();
            kv.push("=");
            kv.push(v);
            cmd.arg(kv);
        }
        cmd.arg(program).args(args);
        cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin).unwrap();
        child.wait_with_output().unwrap()
    }
}

fn chown_tree(dir: &Path, uid: u32) {
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_developer_in_the_devenv_group_runs_up_without_a_password_and_gets_a_scoped_squashed_export() {
    let Some((env, _api)) = support::cluster_env() else {
        return;
    };
    let Some(ns) = Namespace::new(env.home.path()) else {
        return;
    };
    let machine_exports = std::fs::read("/etc/exports").ok();
    chown_tree(env.home.path(), DEVELOPER_UID);
    std::fs::set_permissions(env.home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = std::fs::read_to_string(ns.exports()).unwrap_or_default();

    // The environment of the test's `devenv`, but with the machine's /etc/exports (no
    // DEVENV_EXPORTS_FILE) and the checkout's directories on PATH copied where the developer
    // can read them.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let template = env.background();
    let mut vars: Vec<(OsString, OsString)> = Vec::new();
    for (k, v) in template.get_envs() {
        let (Some(v), false) = (v, k == "DEVENV_EXPORTS_FILE") else {
            continue;
        };
        let v = if k == "PATH" {
            let dirs: Vec<PathBuf> = std::env::split_paths(v)
                .map(|p| {
                    if p.starts_with(manifest) {
                        ns.readable_copy(&p)
                    } else {
                        p
                    }
                })
                .collect();
            std::env::join_paths(dirs).unwrap()
        } else {
            v.to_os_string()
        };
        vars.push((k.to_os_string(), v));
    }
    let devenv = ns.readable_file(Path::new(env!("CARGO_BIN_EXE_devenv")));

    let out = ns.run_as_developer(&vars, &env.project, &devenv, &["up"], b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("shop is up"), "{stdout}");
    assert!(
        !stderr.contains("password"),
        "no password was asked for: {stderr}"
    );

    let after = std::fs::read_to_string(ns.exports()).unwrap();
    let block = after
        .strip_prefix(before.as_str())
        .expect("everything before is kept");
    let uid = DEVELOPER_UID;
    let project = env.project.canonicalize().unwrap();
    assert!(
        block.starts_with(&format!(
            "# BEGIN devenv shop uid={uid}\n\"{}\" ",
            project.display()
        )),
        "{block}"
    );
    assert!(
        block.contains(&format!(
            "(rw,async,no_subtree_check,all_squash,anonuid={uid},anongid={uid})"
        )),
        "squashed to the developer: {block}"
    );
    assert!(
        block.contains(" 192.168.39."),
        "scoped to the VM's network: {block}"
    );
    assert_eq!(
        std::fs::read("/etc/exports").ok(),
        machine_exports,
        "the machine's own exports file is untouched"
    );

    // The same developer, through the same sudo rule, cannot get anything else out of it.
    let helper = Path::new(helper::installed_path(false));
    let sudo = Path::new("/usr/bin/sudo");
    let path_only = [(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))];
    for (dir, client, rule) in [
        ("/etc", "192.168.39.15", "refused: directory \"/etc\""),
        (project.to_str().unwrap(), "*", "refused: client \"*\""),
    ] {
        let hostile = format!(
            "{PROTOCOL}\naction set\nproject shop\ndir {dir}\nclient {client}\naccess rw\n"
        );
        let out = ns.run_as_developer(
            &path_only,
            &env.project,
            sudo,
            &["-n", helper.to_str().unwrap()],
            hostile.as_bytes(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(rule), "{stderr}");
    }
    // Any other command through sudo needs the password the developer does not have.
    let out = ns.run_as_developer(
        &path_only,
        &env.project,
        sudo,
        &["-n", "/usr/bin/tee", "/etc/exports"],
        b"/ *(rw,no_root_squash)\n",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("password is required"));
    assert_eq!(
        std::fs::read_to_string(ns.exports()).unwrap(),
        after,
        "nothing else was written"
    );
}

proptest::proptest! {
    /// The parser root runs on untrusted bytes (also a fuzz target, `fuzz/run.sh 60
    /// helper_request`): requests stitched from valid and hostile pieces never panic it, and
    /// whatever it accepts has one spelling only, the one devenv renders.
    #[test]
    fn the_request_parser_accepts_one_spelling_and_never_panics(
        pieces in proptest::collection::vec(proptest::sample::select(vec![
            "devenv-exports-helper 1\n", "action set\n", "action remove\n", "action check\n",
            "project shop\n", "project Shop\n", "project shop uid=0\n", "dir /home/ann/shop\n",
            "dir /home/ann/../../etc\n", "dir /a b\n", "dir /x\"y\n", "client 192.168.39.15\n",
            "client 192.168.39.0/24\n", "client 192.168.39.0/024\n", "client *\n",
            "client 10.0.0.0/8\n", "access rw\n", "access ro\n", "access rw,no_root_squash\n",
            "\r\n", "\n", " ", "\u{0}", "\u{e9}",
        ]), 0..9),
    ) {
        let text: String = pieces.concat();
        if let Ok(request) = helper::Request::parse(text.as_bytes()) {
            proptest::prop_assert_eq!(request.render(), text);
        }
    }
}
