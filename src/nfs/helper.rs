//! The exports helper (`devenv-exports-helper`): the only program the sudoers rule of
//! `templates/sudoers.*` lets a developer run as root without a password. It replaces a rule
//! that allowed `tee`, `mv` and `exportfs` on /etc/exports, which was root in disguise: any
//! content could be written, e.g. `/` exported read-write with `no_root_squash` to the VM,
//! where the developer is root, and from there /etc/sudoers.d written on the host.
//!
//! The helper takes a request on stdin in a strict format ([`Request`]: project, directory,
//! client, rw/ro) and decides everything else itself:
//! - who asks: the uid and gid sudo puts in `SUDO_UID`/`SUDO_GID` (never a field of the
//!   request), so it only ever edits that user's block, keyed by that uid;
//! - the directory: absolute, canonical (no symbolic link at any level, no `.`/`..`), a directory
//!   owned by that user, and neither a system tree nor an ancestor of one or of the user's home;
//! - the client: one IPv4 address, or a subnet of /24 or narrower, inside the private ranges;
//! - the options: its own, from [`export_line_with`](super::export_line_with): `all_squash`
//!   with `anonuid`/`anongid` of that user (macOS `-mapall`), never `no_root_squash`, `insecure`
//!   or a wildcard.
//!
//! Why that is safe even though the user can change the directory after the check (rename it
//! and put a symbolic link to /etc in its place): every request the VM makes through the export
//! is squashed to the user's own uid and primary gid, so the export can never give the VM more
//! than the user already has on the host. The directory rules keep the export to the project
//! (not the whole home or the system) and the client rules keep it off public networks.
//!
//! The edit itself is [`apply`](super::apply::apply): the same editor, markers and byte-exact
//! rules as a direct edit, validated by the OS's own checker, replaced atomically, reloaded and
//! restored when the reload fails. A refused request writes nothing. The helper reads no
//! configuration file and no environment variable other than sudo's two; its binary
//! (`src/bin/devenv-exports-helper.rs`) clears the environment before anything runs and refuses
//! to run from a path a non-root user could replace.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use devenv_drivers::{ExportClient, ExportsDialect};

use super::apply::{self, ApplyError, Change, NfsHost, Outcome, Privilege};
use super::{Access, Grant, Owner};
use crate::process::{Cmd, Runner};

/// The first line of every request: the format's version.
pub const PROTOCOL: &str = "devenv-exports-helper 1";

/// The longest request read; anything longer is refused unread.
pub const MAX_REQUEST: usize = 4096;

/// The longest directory accepted (macOS's PATH_MAX is 1024).
const MAX_DIR: usize = 1024;

/// The only PATH the helper and what it runs see.
pub const SAFE_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Where `devenv onboard --exports-helper` installs the helper, and the only path the sudoers
/// rule names: a root-owned file in root-owned directories. Not under Homebrew's prefix, which
/// the user can write (on Intel Macs that includes /usr/local).
pub fn installed_path(macos: bool) -> &'static str {
    if macos {
        "/Library/PrivilegedHelperTools/devenv-exports-helper"
    } else {
        "/usr/local/libexec/devenv/devenv-exports-helper"
    }
}

/// Trees no export may be in or contain.
const SYSTEM_TREES: &[&str] = &[
    "/etc",
    "/usr",
    "/var",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/boot",
    "/dev",
    "/proc",
    "/sys",
    "/run",
    "/root",
    "/snap",
    "/nix",
    "/System",
    "/Library",
    "/private",
    "/Applications",
    "/cores",
];

/// Directories no export may be or contain (a project may be inside them).
const SHARED_ROOTS: &[&str] = &[
    "/", "/home", "/Users", "/tmp", "/opt", "/srv", "/mnt", "/media", "/Volumes",
];

/// One request. Rendered by devenv, parsed by the helper; nothing else is accepted.
///
/// ```text
/// devenv-exports-helper 1
/// action set
/// project shop
/// dir /home/ann/src/shop
/// client 192.168.39.15
/// access rw
/// ```
/// `remove` carries only `project`; `check` nothing (it answers whether the helper runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Check,
    Set { project: String, grant: Grant },
    Remove { project: String },
}

/// Why a request was refused. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request is larger than {MAX_REQUEST} bytes")]
    TooLarge,
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("project {project:?}: {rule}")]
    Project { project: String, rule: String },
    #[error("directory {dir:?}: {rule}")]
    Dir { dir: String, rule: String },
    #[error("client {client:?}: {rule}")]
    Client { client: String, rule: String },
    #[error("{0}")]
    Invoker(String),
    #[error("{path}: {rule}")]
    Install { path: String, rule: String },
}

impl Request {
    /// The request as the helper reads it.
    pub fn render(&self) -> String {
        let mut out = format!("{PROTOCOL}\n");
        match self {
            Request::Check => out.push_str("action check\n"),
            Request::Remove { project } => {
                out.push_str(&format!("action remove\nproject {project}\n"));
            }
            Request::Set { project, grant } => out.push_str(&format!(
                "action set\nproject {project}\ndir {}\nclient {}\naccess {}\n",
                grant.dir.display(),
                grant.client,
                grant.access.word()
            )),
        }
        out
    }

    /// Read a request: the version line, then `key value` lines in a fixed order, each ending
    /// with a line break, nothing before or after. Checks everything that needs no file system.
    pub fn parse(bytes: &[u8]) -> Result<Request, Refusal> {
        let malformed = |why: String| Refusal::Malformed(why);
        if bytes.len() > MAX_REQUEST {
            return Err(Refusal::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8".into()))?;
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("the last line has no line break".into()))?;
        let mut lines = body.split('\n');
        if lines.next() != Some(PROTOCOL) {
            return Err(malformed(format!("the first line must be `{PROTOCOL}`")));
        }
        let mut field = |key: &str| -> Result<&str, Refusal> {
            let line = lines
                .next()
                .ok_or_else(|| malformed(format!("`{key}` is missing")))?;
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            if k != key {
                return Err(malformed(format!("expected `{key}`, found {k:?}")));
            }
            if v.is_empty() {
                return Err(malformed(format!("`{key}` has no value")));
            }
            if v.chars().any(char::is_control) {
                return Err(malformed(format!("`{key}` holds a control character")));
            }
            Ok(v)
        };
        let request = match field("action")? {
            "check" => Request::Check,
            "remove" => Request::Remove {
                project: project(field("project")?)?,
            },
            "set" => {
                let project = project(field("project")?)?;
                let dir = dir(field("dir")?)?;
                let client = client(field("client")?)?;
                let access = match field("access")? {
                    "rw" => Access::ReadWrite,
                    "ro" => Access::ReadOnly,
                    other => return Err(malformed(format!("access {other:?} is not rw or ro"))),
                };
                Request::Set {
                    project,
                    grant: Grant {
                        dir,
                        client,
                        access,
                    },
                }
            }
            other => return Err(malformed(format!("unknown action {other:?}"))),
        };
        match lines.next() {
            None => Ok(request),
            Some(extra) => Err(malformed(format!(
                "unexpected line after the request: {extra:?}"
            ))),
        }
    }
}

fn project(text: &str) -> Result<String, Refusal> {
    crate::names::dns_label(text, 63).map_err(|rule| Refusal::Project {
        project: text.into(),
        rule: rule.to_string(),
    })?;
    Ok(text.into())
}

/// The textual rules for a directory: absolute, normal (every component a plain name), short,
/// and free of the characters exports files escape (`"` and `\`), so the line is plain.
fn dir(text: &str) -> Result<PathBuf, Refusal> {
    let refuse = |rule: &str| Refusal::Dir {
        dir: text.into(),
        rule: rule.into(),
    };
    if !text.starts_with('/') {
        return Err(refuse("must be an absolute path"));
    }
    if text.len() > MAX_DIR {
        return Err(refuse("is longer than 1024 bytes"));
    }
    if text.contains(['"', '\\']) {
        return Err(refuse("holds a quote or a backslash"));
    }
    if text != "/" && (text.ends_with('/') || text.contains("//")) {
        return Err(refuse(
            "is not written in its normal form (`//` or a trailing `/`)",
        ));
    }
    // By the text: `Path::components` silently drops a `.` in the middle.
    if text.split('/').any(|c| c == "." || c == "..") {
        return Err(refuse("holds `.` or `..`"));
    }
    Ok(PathBuf::from(text))
}

fn client(text: &str) -> Result<ExportClient, Refusal> {
    let client = super::parse_client(text).map_err(|rule| Refusal::Client {
        client: text.into(),
        rule: rule.to_string(),
    })?;
    match client {
        ExportClient::Subnet { prefix, .. } if prefix < 24 => Err(Refusal::Client {
            client: text.into(),
            rule: "a subnet must be /24 or narrower (the VM's host-only network)".into(),
        }),
        _ => Ok(client),
    }
}

/// The user the helper acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoker {
    pub uid: u32,
    pub gid: u32,
    /// Their home directory (from the user database), which is never exported whole.
    pub home: Option<PathBuf>,
}

impl Invoker {
    /// The user who ran `sudo`, from the `SUDO_UID`/`SUDO_GID` sudo sets itself, in a process
    /// whose real and effective uid are root (a set-uid copy would let the caller set them).
    pub fn from_sudo(
        uid: Option<&OsString>,
        gid: Option<&OsString>,
        real_uid: u32,
        effective_uid: u32,
    ) -> Result<Invoker, Refusal> {
        if real_uid != 0 || effective_uid != 0 {
            return Err(Refusal::Invoker(
                "must run as root through sudo (it is not set-uid)".into(),
            ));
        }
        let id = |value: Option<&OsString>, name: &str| -> Result<u32, Refusal> {
            value
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    Refusal::Invoker(format!("{name} is not set: run the helper through sudo"))
                })
        };
        let uid = id(uid, "SUDO_UID")?;
        let gid = id(gid, "SUDO_GID")?;
        if uid == 0 {
            return Err(Refusal::Invoker(
                "acts for unprivileged users only: as root, run `devenv exports apply` directly"
                    .into(),
            ));
        }
        Ok(Invoker {
            uid,
            gid,
            home: home_of(uid),
        })
    }
}

fn home_of(uid: u32) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: getpwuid returns NULL or a pointer to a static record, read before any other
    // call; the helper is single-threaded when it asks.
    unsafe {
        let pw = libc::getpwuid(uid);
        if pw.is_null() || (*pw).pw_dir.is_null() {
            return None;
        }
        let dir = std::ffi::CStr::from_ptr((*pw).pw_dir);
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())))
    }
}

/// The file-system rules for the directory of a `set`: it exists, is a directory reached
/// without any symbolic link, belongs to the invoker, and is not a system tree or a directory
/// that holds other people's or all of the user's files.
pub fn authorize(dir: &Path, invoker: &Invoker) -> Result<(), Refusal> {
    let refuse = |rule: String| Refusal::Dir {
        dir: dir.display().to_string(),
        rule,
    };
    let meta =
        std::fs::symlink_metadata(dir).map_err(|e| refuse(format!("cannot be read: {e}")))?;
    if meta.file_type().is_symlink() {
        return Err(refuse("is a symbolic link".into()));
    }
    if !meta.is_dir() {
        return Err(refuse("is not a directory".into()));
    }
    let real =
        std::fs::canonicalize(dir).map_err(|e| refuse(format!("cannot be resolved: {e}")))?;
    if real != dir {
        return Err(refuse(format!(
            "is reached through a symbolic link: it is {}",
            real.display()
        )));
    }
    for tree in SYSTEM_TREES {
        if dir.starts_with(tree) || Path::new(tree).starts_with(dir) {
            return Err(refuse(format!("is or holds the system directory {tree}")));
        }
    }
    for root in SHARED_ROOTS {
        if Path::new(root).starts_with(dir) {
            return Err(refuse(format!(
                "is or holds {root}, which holds other people's files"
            )));
        }
    }
    if let Some(home) = &invoker.home
        && home.starts_with(dir)
    {
        return Err(refuse(format!(
            "is or holds your whole home directory {}: export the project only",
            home.display()
        )));
    }
    if meta.uid() != invoker.uid {
        return Err(refuse(format!(
            "belongs to uid {}, not to you (uid {})",
            meta.uid(),
            invoker.uid
        )));
    }
    Ok(())
}

/// Refuse to run from a file a non-root user could replace: the binary and every directory
/// above it must belong to root and be writable by root only (a sticky directory such as /tmp
/// protects root's entries in it, so it counts as safe).
pub fn check_install(exe: &Path) -> Result<(), Refusal> {
    let refuse = |path: &Path, rule: &str| Refusal::Install {
        path: path.display().to_string(),
        rule: format!(
            "{rule}: the helper must be installed root-owned ({})",
            crate::docs::url("nfs.md")
        ),
    };
    let mut path = Some(exe);
    while let Some(p) = path {
        let meta = std::fs::symlink_metadata(p).map_err(|_| refuse(p, "cannot be read"))?;
        let sticky = meta.mode() & 0o1000 != 0 && meta.is_dir();
        if meta.uid() != 0 {
            return Err(refuse(p, "is not owned by root"));
        }
        if meta.mode() & 0o020 != 0 && meta.gid() != 0 && !sticky {
            return Err(refuse(p, "is writable by a group other than root's"));
        }
        if meta.mode() & 0o002 != 0 && !sticky {
            return Err(refuse(p, "is writable by everyone"));
        }
        path = p.parent();
    }
    Ok(())
}

/// Where and how the helper edits: fixed for the OS in the installed helper, a temp file in
/// the tests of the policy.
#[derive(Debug, Clone)]
pub struct System {
    pub host: NfsHost,
    /// macOS firmlinks (`/usr/share/firmlinks`), to write a path under its Data-volume name.
    pub firmlinks: String,
    pub lock_timeout: Duration,
}

impl System {
    /// The machine's /etc/exports, validated by the OS's checker, reloaded by the OS's command,
    /// every program named by its absolute path.
    pub fn installed() -> System {
        let macos = cfg!(target_os = "macos");
        let dialect = if macos {
            ExportsDialect::MacOs
        } else {
            ExportsDialect::Linux
        };
        let (reload, server) = if macos {
            (vec![Cmd::new("/sbin/nfsd").arg("update")], None)
        } else {
            // Only a host booted with systemd has an nfs-server unit to start (sd_booted(3)).
            let systemd = Path::new("/run/systemd/system").is_dir();
            let systemctl = if Path::new("/usr/bin/systemctl").exists() {
                "/usr/bin/systemctl"
            } else {
                "/bin/systemctl"
            };
            (
                vec![Cmd::new("/usr/sbin/exportfs").arg("-ra")],
                systemd.then(|| {
                    (
                        Cmd::new(systemctl)
                            .args(["is-active", "--quiet", "nfs-server"])
                            .read_only(),
                        Cmd::new(systemctl).args(["start", "nfs-server"]),
                    )
                }),
            )
        };
        System {
            host: NfsHost {
                exports: PathBuf::from(super::EXPORTS_FILE),
                dialect,
                privilege: Privilege::Direct,
                reload,
                server,
                validate: true,
                lock_dir: PathBuf::from(super::apply::LOCK_DIR),
            },
            firmlinks: if macos {
                std::fs::read_to_string("/usr/share/firmlinks").unwrap_or_default()
            } else {
                String::new()
            },
            lock_timeout: Duration::from_secs(60),
        }
    }
}

/// What the helper did, as its one line on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `check`: the helper runs and speaks this version.
    Checked,
    Done(Outcome),
}

impl Reply {
    pub fn line(&self) -> String {
        match self {
            Reply::Checked => format!("ok {PROTOCOL}"),
            Reply::Done(Outcome::Unchanged) => "unchanged".into(),
            Reply::Done(Outcome::Reloaded) => "reloaded".into(),
            Reply::Done(Outcome::Changed { backup: None }) => "changed".into(),
            Reply::Done(Outcome::Changed { backup: Some(b) }) => {
                format!("changed {}", b.display())
            }
        }
    }

    pub fn parse(stdout: &str) -> Option<Reply> {
        let line = stdout.lines().next()?;
        match line {
            "unchanged" => Some(Reply::Done(Outcome::Unchanged)),
            "reloaded" => Some(Reply::Done(Outcome::Reloaded)),
            "changed" => Some(Reply::Done(Outcome::Changed { backup: None })),
            _ if line == format!("ok {PROTOCOL}") => Some(Reply::Checked),
            _ => line.strip_prefix("changed ").map(|b| {
                Reply::Done(Outcome::Changed {
                    backup: Some(PathBuf::from(b)),
                })
            }),
        }
    }
}

/// Why the helper did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl HelperError {
    /// 2 when nothing was written (a refusal, a conflict, an invalid result, the lock), 1 when
    /// the failure came after the file was replaced (its message says whether it was restored).
    pub fn exit_code(&self) -> i32 {
        match self {
            HelperError::Refused(_)
            | HelperError::Apply(
                ApplyError::Conflict { .. }
                | ApplyError::Parse { .. }
                | ApplyError::Invalid { .. }
                | ApplyError::Locked { .. },
            ) => 2,
            HelperError::Apply(_) => 1,
        }
    }

    pub fn help(&self) -> Option<String> {
        match self {
            HelperError::Refused(_) => Some(format!(
                "nothing was changed; {} lists what the exports helper allows",
                crate::docs::url("nfs.md")
            )),
            HelperError::Apply(e) => e.help(),
        }
    }
}

/// Carry out one request for `invoker`.
pub async fn serve(
    runner: &dyn Runner,
    request: &[u8],
    invoker: &Invoker,
    system: &System,
) -> Result<Reply, HelperError> {
    let request = Request::parse(request)?;
    let host = &system.host;
    let outcome = match request {
        Request::Check => return Ok(Reply::Checked),
        Request::Remove { project } => {
            apply::apply(
                runner,
                host,
                &project,
                invoker.uid,
                &Change::Remove,
                system.lock_timeout,
            )
            .await?
        }
        Request::Set { project, grant } => {
            authorize(&grant.dir, invoker)?;
            let owner = Owner {
                uid: invoker.uid,
                gid: invoker.gid,
            };
            let source = super::exported_path(host.dialect, &grant.dir, &system.firmlinks);
            let line =
                super::export_line_with(host.dialect, &source, grant.client, owner, grant.access);
            let change = Change::Set {
                source: &source,
                lines: std::slice::from_ref(&line),
                grant: None,
            };
            apply::apply(
                runner,
                host,
                &project,
                invoker.uid,
                &change,
                system.lock_timeout,
            )
            .await?
        }
    };
    Ok(Reply::Done(outcome))
}

/// The helper's whole run once its binary has cleared the environment: who asks, whether it
/// is installed safely, the request from `input` (at most [`MAX_REQUEST`] bytes read), the edit.
/// Writes one line to `out` on success, the error and its help to `err` otherwise, and
/// returns the exit code.
pub fn run(
    invoker: Result<Invoker, Refusal>,
    exe: &Path,
    input: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let result = (|| -> Result<Reply, HelperError> {
        check_install(exe)?;
        let invoker = invoker?;
        let mut request = Vec::new();
        input
            .take(MAX_REQUEST as u64 + 1)
            .read_to_end(&mut request)
            .map_err(|e| Refusal::Malformed(format!("cannot read stdin: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Refusal::Invoker(format!("cannot start: {e}")))?;
        let runner = crate::process::SystemRunner::new(crate::process::detect_platform());
        runtime.block_on(serve(&runner, &request, &invoker, &System::installed()))
    })();
    match result {
        Ok(reply) => {
            let _ = writeln!(out, "{}", reply.line());
            0
        }
        Err(e) => {
            let _ = writeln!(err, "devenv-exports-helper: {e}");
            if let Some(help) = e.help() {
                let _ = writeln!(err, "help: {help}");
            }
            e.exit_code()
        }
    }
}

/// The command devenv runs to send `request`: `sudo -n` (devenv asks for a password first
/// when one is needed) and the helper's path, no arguments, the request on stdin.
pub fn command(helper: &Path, request: &Request) -> Cmd {
    let cmd = invocation(helper)
        .stdin(request.render().into_bytes())
        .timeout(Duration::from_secs(90));
    match request {
        Request::Check => cmd.read_only(),
        _ => cmd,
    }
}

/// `sudo -n <helper>`, as plans show it (the request goes on stdin).
pub fn invocation(helper: &Path) -> Cmd {
    Cmd::new("sudo").arg("-n").arg(helper)
}

/// The message and help the helper printed on stderr.
pub fn failure(stderr: &str) -> (String, Option<String>) {
    let mut message = Vec::new();
    let mut help = Vec::new();
    for line in stderr.lines() {
        if let Some(h) = line.strip_prefix("help: ") {
            help.push(h.to_string());
        } else if !help.is_empty() {
            help.push(line.to_string());
        } else {
            message.push(line.strip_prefix("devenv-exports-helper: ").unwrap_or(line));
        }
    }
    let message = message.join("\n").trim().to_string();
    let help = (!help.is_empty()).then(|| help.join("\n"));
    (message, help)
}

#[cfg(test)]
mod tests;
