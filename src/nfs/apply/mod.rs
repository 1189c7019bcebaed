//! Changing /etc/exports without ever breaking it. The file is root-owned and shared with other
//! tools and hand edits, so every change follows the same steps:
//!
//! 1. take a lock, so two devenv processes never interleave (whatever the project);
//! 2. compute the new text from the current one; nothing to do when it is unchanged;
//! 3. check the candidate: devenv's own lines with the parser, foreign exports that overlap the
//!    source tree refused, and — when devenv runs as root on Linux — the real `exportfs -ra` run
//!    against the candidate in a private mount namespace (macOS: `nfsd -F <candidate> checkexports`);
//! 4. keep a backup of the current file, write the candidate to a temp file beside the target,
//!    fsync it and rename it over the target, so readers see the old or the new file, never a mix;
//! 5. reload the NFS server; if that fails, put the backup back (or remove a file that did not
//!    exist before), reload again, and say so.
//!
//! A marker beside the file (`exports.devenv.reload`) is written before the file is replaced
//! and removed once the server has read it: a devenv killed in between leaves it, and the next
//! change (or `exports apply` with nothing to change) finishes the reload instead of finding
//! the file as wanted and saying "nothing to change" while the server still serves the old one.
//!
//! When the file is not writable by the user, the privileged exports helper does all of it as
//! root ([`super::helper`]; the only program the sudoers rule allows). Without the helper, the
//! same steps run through `sudo` with a few fixed command lines (listed in docs/nfs.md), which
//! ask for the password.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use devenv_drivers::ExportsDialect;

use super::attrs;
use super::file::{ExportsFile, FileError};
use crate::process::{Cmd, ProcessError, Runner};

mod check;
mod lock;
mod write;

pub use check::exportfs_validation;
use check::*;
use lock::*;
use write::*;

/// How devenv may write the exports file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privilege {
    /// The file and its directory are writable by this process (root, or a test's temp file).
    Direct,
    /// Through `sudo -n` and the exports helper installed at this path, which checks the request
    /// and makes the whole change as root.
    Helper(PathBuf),
    /// Through `sudo` with fixed command lines (no helper installed: sudo asks for the password).
    Sudo,
}

/// Where and how exports are managed on this host. Every part is injectable so tests never
/// touch the machine's own /etc/exports or NFS server.
#[derive(Debug, Clone)]
pub struct NfsHost {
    pub exports: PathBuf,
    pub dialect: ExportsDialect,
    pub privilege: Privilege,
    /// Commands that make the NFS server re-read the file, run in order.
    pub reload: Vec<Cmd>,
    /// A read-only probe that succeeds when the NFS server runs, and the command that starts it;
    /// the start runs before the reload when the probe fails.
    pub server: Option<(Cmd, Cmd)>,
    /// Validate candidates with the OS's own checker before writing: the real `exportfs -ra`
    /// in a private mount namespace on Linux (root only: it needs `unshare -m`), `nfsd -F
    /// <candidate> checkexports` on macOS.
    pub validate: bool,
    /// Where the exports lock lives: [`LOCK_DIR`] for every devenv of every user.
    pub lock_dir: PathBuf,
}

/// The one directory every devenv process shares for the exports lock, whoever runs it (root,
/// the helper, a user going through sudo) and whatever its `$TMPDIR`: a lock in the temp
/// directory of each process (per user on macOS, per shell under `nix develop` or sudo) was a
/// different lock for each, and concurrent applies lost each other's blocks. `/tmp` is the
/// fixed place every user may create a file in; the lock is opened without following a link,
/// and one planted by someone else can at worst keep devenv waiting, naming the file.
pub const LOCK_DIR: &str = "/tmp";

impl NfsHost {
    /// The defaults for this machine: `/etc/exports` (or `exports` when given), the dialect of
    /// the driver, sudo unless the file is writable, the OS's reload command.
    pub fn for_machine(exports: PathBuf, dialect: ExportsDialect, as_root: bool) -> NfsHost {
        let helper = PathBuf::from(super::helper::installed_path(
            dialect == ExportsDialect::MacOs,
        ));
        let privilege = if writable(&exports) {
            Privilege::Direct
        } else if exports == Path::new(super::EXPORTS_FILE) && root_owned(&helper) {
            Privilege::Helper(helper)
        } else {
            Privilege::Sudo
        };
        let sudo = privilege == Privilege::Sudo;
        let with_sudo = |cmd: Cmd| {
            if sudo {
                Cmd::new("sudo").arg(cmd.program()).args(cmd.get_args())
            } else {
                cmd
            }
        };
        let server = match dialect {
            ExportsDialect::Linux => which::which("systemctl").ok().map(|_| {
                (
                    Cmd::new("systemctl")
                        .args(["is-active", "--quiet", "nfs-server"])
                        .read_only(),
                    with_sudo(Cmd::new("systemctl").args(["start", "nfs-server"])),
                )
            }),
            // `nfsd status` exits 0 either way; `nfsd checkexports` is not a liveness probe
            // either, so only `nfsd enable` (idempotent: enables and starts) is used.
            ExportsDialect::MacOs => None,
        };
        if let Privilege::Helper(helper) = &privilege {
            // The helper validates, replaces, reloads and starts the server itself, as root.
            return NfsHost {
                reload: vec![super::helper::invocation(helper)],
                server: None,
                validate: false,
                lock_dir: PathBuf::from(LOCK_DIR),
                exports,
                dialect,
                privilege,
            };
        }
        NfsHost {
            reload: vec![super::reload(dialect, !sudo)],
            server,
            validate: dialect == ExportsDialect::Linux
                && as_root
                && exports == Path::new(super::EXPORTS_FILE),
            lock_dir: PathBuf::from(LOCK_DIR),
            exports,
            dialect,
            privilege,
        }
    }

    /// Replace the reload with one command line (words split on whitespace), e.g. from
    /// `$DEVENV_EXPORTS_RELOAD`; the server probe is dropped with it.
    pub fn with_reload_override(mut self, line: Option<&str>) -> NfsHost {
        if let Some(line) = line {
            let mut words = line.split_whitespace();
            if let Some(program) = words.next() {
                self.reload = vec![Cmd::new(program).args(words)];
                self.server = None;
            }
        }
        self
    }

    /// The backup of the previous version, beside the file.
    pub fn backup_path(&self) -> PathBuf {
        sibling(&self.exports, ".devenv.bak")
    }

    /// The marker of a reload still owed: see the module's documentation.
    pub fn reload_marker(&self) -> PathBuf {
        sibling(&self.exports, ".devenv.reload")
    }

    /// Whether a change of the file was not followed by a reload (a devenv killed between the
    /// two): the server may still serve the previous version.
    pub fn reload_owed(&self) -> bool {
        std::fs::symlink_metadata(self.reload_marker()).is_ok()
    }
}

/// An installed helper: a regular file owned by root (the helper checks the rest itself).
fn root_owned(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.uid() == 0)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Whether this process may replace `path` itself: the directory must be writable (the rename)
/// and the file too, when it exists.
/// Whether devenv can write the exports file itself. A file no privilege can write (a
/// read-only file system, an immutable file) counts as writable: sudo would not help, and the
/// direct write then fails with the system's own reason instead of a question for a password.
fn writable(path: &Path) -> bool {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    access_w(dir) && (!path.exists() || access_w(path))
}

fn access_w(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        return true;
    }
    // EACCES is a matter of permission, which sudo or the helper has; these are not.
    matches!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EROFS | libc::EPERM | libc::ETXTBSY)
    )
}

/// What to do about a write that no privilege could have made.
fn io_help(source: &std::io::Error) -> Option<String> {
    match source.raw_os_error() {
        Some(libc::EROFS) => Some(
            "the file system is mounted read-only, which sudo does not change: remount it read-write (or, on an image-based system, export through its own configuration)".into(),
        ),
        Some(libc::EPERM) => Some(
            "the file is immutable or append-only (Linux: `lsattr` shows `i` or `a`; macOS: `ls -lO` shows `uchg`/`schg`), which sudo does not change: clear the flag (`sudo chattr -i`, `sudo chflags nouchg`) if that is intended".into(),
        ),
        Some(libc::ENOSPC) => Some("the disk is full: free some space, then run the command again; the exports file is as it was".into()),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot {action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has a damaged devenv block", .path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: FileError,
    },
    #[error("{} already exports an overlapping directory:\n{}", .path.display(), .conflicts.join("\n"))]
    Conflict {
        path: PathBuf,
        conflicts: Vec<String>,
    },
    #[error("the new exports would be invalid:\n{}", .problems.join("\n"))]
    Invalid { problems: Vec<String> },
    #[error("{} holds the exports lock {} since {}s", .holder.as_deref().unwrap_or("another process"), .lock.display(), .waited.as_secs())]
    Locked {
        lock: PathBuf,
        waited: Duration,
        /// Who holds it, as it wrote itself into the lock file (`pid 123: devenv up`).
        holder: Option<String>,
    },
    #[error("reloading the NFS server failed, so {} {}", .path.display(), .restored.describe())]
    ReloadFailed {
        path: PathBuf,
        restored: Restored,
        #[source]
        source: ProcessError,
    },
    #[error("reloading the NFS server failed and restoring {} failed too", .path.display())]
    RestoreFailed {
        path: PathBuf,
        /// The previous version, when there was one (otherwise the file is new and the way back
        /// is to delete it).
        backup: Option<PathBuf>,
        #[source]
        source: Box<ApplyError>,
    },
    #[error("an earlier change of {} was not followed by a reload of the NFS server, and reloading now failed", .path.display())]
    ReloadOwed {
        path: PathBuf,
        #[source]
        source: ProcessError,
    },
    #[error("the exports helper did not make the change: {message}")]
    Helper {
        message: String,
        help: Option<String>,
    },
    #[error(
        "the exports helper needs the directory and client of the export, which were not given"
    )]
    NoGrant,
    #[error(transparent)]
    Process(#[from] ProcessError),
}

impl ApplyError {
    pub fn help(&self) -> Option<String> {
        match self {
            ApplyError::Conflict { .. } => Some(
                "devenv never changes other exports: remove or narrow the line shown, or export a different directory (mount.source)".into(),
            ),
            ApplyError::Parse { path, .. } => Some(format!(
                "fix the devenv block in {} by hand ({} shows what it looks like), or delete it",
                path.display(),
                crate::docs::url("nfs.md")
            )),
            ApplyError::Invalid { .. } => Some("nothing was changed".into()),
            ApplyError::Locked { .. } => Some("wait for the other devenv command to finish".into()),
            ApplyError::ReloadFailed { source, .. } => Some(format!(
                "{}the exports file is as it was; {SERVER_STATUS}",
                server_said(source)
            )),
            ApplyError::ReloadOwed { source, .. } => Some(format!(
                "{}the file is as wanted, and the next devenv command that edits exports reloads again; {SERVER_STATUS}",
                server_said(source)
            )),
            ApplyError::RestoreFailed { path, backup, .. } => Some(match backup {
                Some(backup) => format!(
                    "free what stopped the restore, then put the previous version back by hand: sudo cp {} {}",
                    backup.display(),
                    path.display()
                ),
                None => format!(
                    "the file did not exist before: remove it by hand with `sudo rm {}`",
                    path.display()
                ),
            }),
            ApplyError::Helper { help, .. } => help.clone(),
            ApplyError::Process(e) => e.help(),
            ApplyError::Io { source, .. } => io_help(source),
            ApplyError::NoGrant => None,
        }
    }
}

const SERVER_STATUS: &str =
    "check the NFS server (Linux: `systemctl status nfs-server`; macOS: `sudo nfsd status`)";

/// What the reload printed, as the first part of a help line (exportfs names the line it
/// rejects there; without it the user sees only an exit status).
fn server_said(source: &ProcessError) -> String {
    match source {
        ProcessError::Exited { tail, .. } if !tail.trim().is_empty() => {
            format!("the server said:\n{}\n", tail.trim_end())
        }
        _ => String::new(),
    }
}

/// What a failed reload left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// The previous version is back.
    Backup,
    /// The file did not exist before, and was removed again.
    Removed,
}

impl Restored {
    fn describe(self) -> &'static str {
        match self {
            Restored::Backup => "was restored from its backup",
            Restored::Removed => "was removed again (it did not exist before)",
        }
    }
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The file already had exactly this content.
    Unchanged,
    /// The file already had this content, but an interrupted change had not been followed by
    /// a reload: the NFS server was reloaded now.
    Reloaded,
    /// The file was replaced and the server reloaded; the previous version is in the backup.
    Changed { backup: Option<PathBuf> },
}

/// The change to make to devenv's block of one project and user.
#[derive(Debug, Clone)]
pub enum Change<'a> {
    /// Put these lines in the block (creating it when missing).
    Set {
        /// The exported directory, to check foreign exports against.
        source: &'a Path,
        lines: &'a [String],
        /// What the lines grant, as the exports helper is asked for it (the helper derives the
        /// same lines itself). Needed only with [`Privilege::Helper`].
        grant: Option<&'a super::Grant>,
    },
    Remove,
}

/// Compute the new text of the exports file for a change, refusing overlaps with foreign
/// exports and invalid lines. Pure: used for the dry-run diff and by [`apply`].
pub fn candidate(
    current: &[u8],
    host: &NfsHost,
    project: &str,
    uid: u32,
    change: &Change<'_>,
) -> Result<Vec<u8>, ApplyError> {
    let mut file =
        ExportsFile::parse_bytes(current, host.dialect).map_err(|source| ApplyError::Parse {
            path: host.exports.clone(),
            source,
        })?;
    match change {
        Change::Set { source, lines, .. } => {
            let conflicts = file.conflicts(source, project, uid);
            if !conflicts.is_empty() {
                return Err(ApplyError::Conflict {
                    path: host.exports.clone(),
                    conflicts: conflicts.iter().map(|c| c.to_string()).collect(),
                });
            }
            file.set_block(project, uid, lines);
        }
        Change::Remove => {
            file.remove_block(project, uid);
        }
    }
    let text = file.to_bytes();
    let reparsed =
        ExportsFile::parse_bytes(&text, host.dialect).map_err(|source| ApplyError::Parse {
            path: host.exports.clone(),
            source,
        })?;
    let problems: Vec<String> = reparsed
        .check()
        .into_iter()
        .filter(|p| p.affects(project, uid))
        .map(|p| p.to_string())
        .collect();
    if !problems.is_empty() {
        return Err(ApplyError::Invalid { problems });
    }
    Ok(text)
}

/// A change that would alter the file: its current text (`None`: no file yet), that text or
/// empty, and the candidate.
struct Pending {
    current: Option<Vec<u8>>,
    before: Vec<u8>,
    after: Vec<u8>,
}

/// Read the file and compute the candidate; `None` when the change would leave it as it is.
fn pending(
    host: &NfsHost,
    project: &str,
    uid: u32,
    change: &Change<'_>,
) -> Result<Option<Pending>, ApplyError> {
    let current = super::read_exports(&host.exports).map_err(|source| ApplyError::Io {
        action: "read",
        path: host.exports.clone(),
        source,
    })?;
    let before = current.clone().unwrap_or_default();
    let after = candidate(&before, host, project, uid, change)?;
    warn_foreign_in_block(host, &before, project, uid);
    let unchanged = match &current {
        Some(_) => after == before,
        None => after.is_empty(),
    };
    Ok((!unchanged).then_some(Pending {
        current,
        before,
        after,
    }))
}

/// Say which lines someone put inside devenv's block: the edit keeps them, after the block.
fn warn_foreign_in_block(host: &NfsHost, current: &[u8], project: &str, uid: u32) {
    let Ok(file) = ExportsFile::parse_bytes(current, host.dialect) else {
        return;
    };
    for (line, text) in file.foreign_in_block(project, uid) {
        crate::errln!(
            "warning: {}:{line}: `{text}` is inside devenv's block but not devenv's: kept, after the block",
            host.exports.display()
        );
    }
}

/// Apply a change to the exports file: lock, check, back up, replace atomically, reload, and
/// restore the backup when the reload fails.
pub async fn apply(
    runner: &dyn Runner,
    host: &NfsHost,
    project: &str,
    uid: u32,
    change: &Change<'_>,
    lock_timeout: Duration,
) -> Result<Outcome, ApplyError> {
    if let Privilege::Helper(helper) = &host.privilege {
        return through_helper(runner, host, helper, project, uid, change).await;
    }
    let _lock = lock(&host.lock_dir, &host.exports, lock_timeout).await?;
    // A linked exports file (NixOS, a configuration manager) is written where the link points.
    let file = attrs::target_of(&host.exports);
    if host.privilege == Privilege::Direct {
        remove_stale_temp_files(&file);
    }
    let Some(Pending {
        current,
        before,
        after,
    }) = pending(host, project, uid, change)?
    else {
        if !host.reload_owed() {
            return Ok(Outcome::Unchanged);
        }
        reload(runner, host)
            .await
            .map_err(|source| ApplyError::ReloadOwed {
                path: host.exports.clone(),
                source,
            })?;
        settle(runner, host).await;
        return Ok(Outcome::Reloaded);
    };
    if host.validate {
        match host.dialect {
            ExportsDialect::Linux => exportfs_check(runner, &before, &after).await?,
            ExportsDialect::MacOs => nfsd_check(runner, &host.exports, &after).await?,
        }
    }
    let backup = current.as_ref().map(|_| host.backup_path());
    owe_reload(runner, host).await?;
    match host.privilege {
        Privilege::Direct => {
            if let (Some(text), Some(backup)) = (&current, &backup) {
                write_replace(backup, text, Some(&file))?;
            }
            write_replace(&file, &after, Some(&file))?;
        }
        Privilege::Sudo => sudo_replace(runner, host, &file, current.is_some(), &after).await?,
        Privilege::Helper(_) => unreachable!("the helper makes the change itself"),
    }
    if let Err(e) = reload(runner, host).await {
        let restored = restore(runner, host, &file, backup.as_deref(), &before).await;
        if let Err(source) = restored {
            return Err(ApplyError::RestoreFailed {
                path: host.exports.clone(),
                backup,
                source: Box::new(source),
            });
        }
        // Bring the server back to the restored file; its own failure is the reported one,
        // and the marker stays for the next command to try again.
        if reload(runner, host).await.is_ok() {
            settle(runner, host).await;
        }
        return Err(ApplyError::ReloadFailed {
            path: host.exports.clone(),
            restored: if backup.is_some() {
                Restored::Backup
            } else {
                Restored::Removed
            },
            source: e,
        });
    }
    settle(runner, host).await;
    // The last devenv block gone: the backup (a version with a block) has nothing left to
    // give back, and `down --purge` leaves no file of devenv's behind.
    let last_block_gone = matches!(change, Change::Remove)
        && ExportsFile::parse_bytes(&after, host.dialect).is_ok_and(|f| f.blocks().is_empty());
    if last_block_gone && let Some(path) = &backup {
        remove_file(runner, host, path).await?;
        return Ok(Outcome::Changed { backup: None });
    }
    Ok(Outcome::Changed { backup })
}

/// Put the file back as it was before a change whose reload failed: the backup's bytes, or no
/// file at all when there was none.
async fn restore(
    runner: &dyn Runner,
    host: &NfsHost,
    file: &Path,
    backup: Option<&Path>,
    before: &[u8],
) -> Result<(), ApplyError> {
    match (&host.privilege, backup) {
        (Privilege::Direct, Some(_)) => write_replace(file, before, Some(file)),
        (Privilege::Direct | Privilege::Sudo, None) => remove_file(runner, host, file).await,
        // `cp` onto an existing file rewrites it in place: its mode and owner stay.
        (Privilege::Sudo, Some(backup)) => Ok(runner
            .run(&Cmd::new("sudo").arg("cp").arg(backup).arg(file))
            .await
            .map(|_| ())?),
        (Privilege::Helper(_), _) => unreachable!("the helper makes the change itself"),
    }
}

/// Remove one of the files devenv keeps beside the exports file (or the file itself); one that
/// is already gone is fine.
async fn remove_file(runner: &dyn Runner, host: &NfsHost, path: &Path) -> Result<(), ApplyError> {
    match host.privilege {
        Privilege::Sudo => Ok(runner
            .run(&Cmd::new("sudo").args(["rm", "-f"]).arg(path))
            .await
            .map(|_| ())?),
        _ => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ApplyError::Io {
                action: "remove",
                path: path.to_path_buf(),
                source: e,
            }),
            _ => Ok(()),
        },
    }
}

/// Record that a reload is owed, before the file changes (see the module's documentation).
async fn owe_reload(runner: &dyn Runner, host: &NfsHost) -> Result<(), ApplyError> {
    let marker = host.reload_marker();
    if host.privilege == Privilege::Sudo {
        runner
            .run(&Cmd::new("sudo").arg("touch").arg(&marker))
            .await?;
        return Ok(());
    }
    write_replace(&marker, b"", None)
}

/// The server has read the file: no reload is owed any more. A marker that cannot be removed
/// costs one extra reload later, nothing else.
async fn settle(runner: &dyn Runner, host: &NfsHost) {
    if let Err(e) = remove_file(runner, host, &host.reload_marker()).await {
        tracing::debug!("the reload marker stays: {e}");
    }
}

/// The change made by the exports helper as root. The candidate is computed here first (the
/// file is world-readable), so an unchanged file costs no sudo and a conflict reads the same
/// as without the helper; the helper then checks and computes everything again itself.
async fn through_helper(
    runner: &dyn Runner,
    host: &NfsHost,
    helper: &Path,
    project: &str,
    uid: u32,
    change: &Change<'_>,
) -> Result<Outcome, ApplyError> {
    use super::helper::{self, Reply, Request};
    if pending(host, project, uid, change)?.is_none() && !host.reload_owed() {
        return Ok(Outcome::Unchanged);
    }
    let request = match change {
        Change::Set {
            grant: Some(grant), ..
        } => Request::Set {
            project: project.to_string(),
            grant: (*grant).clone(),
        },
        Change::Set { grant: None, .. } => return Err(ApplyError::NoGrant),
        Change::Remove => Request::Remove {
            project: project.to_string(),
        },
    };
    let out = runner.output(&helper::command(helper, &request)).await?;
    if out.success() {
        return match Reply::parse(&out.stdout) {
            Some(Reply::Done(outcome)) => Ok(outcome),
            _ => Err(ApplyError::Helper {
                message: format!("unexpected answer {:?}", out.stdout.trim()),
                help: Some(format!(
                    "reinstall the helper at {} with `devenv onboard --exports-helper`",
                    helper.display()
                )),
            }),
        };
    }
    let (message, help) = helper::failure(&out.stderr);
    let message = if message.is_empty() {
        format!("exited with status {:?}", out.code)
    } else {
        message
    };
    Err(ApplyError::Helper { message, help })
}

async fn reload(runner: &dyn Runner, host: &NfsHost) -> Result<(), ProcessError> {
    if let Some((probe, start)) = &host.server {
        let running = runner.output(probe).await.is_ok_and(|o| o.success());
        if !running {
            runner.run(start).await?;
        }
    }
    for cmd in &host.reload {
        runner.run(cmd).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_every_user_take_the_same_exports_lock_whatever_their_temp_dir() {
        let exports = PathBuf::from(super::super::EXPORTS_FILE);
        for dialect in [ExportsDialect::Linux, ExportsDialect::MacOs] {
            let root = NfsHost::for_machine(exports.clone(), dialect, true);
            let user = NfsHost::for_machine(exports.clone(), dialect, false);
            assert_eq!(root.lock_dir, user.lock_dir);
            assert_eq!(user.lock_dir, Path::new(LOCK_DIR));
        }
    }

    #[test]
    fn a_write_no_privilege_can_make_says_why_instead_of_asking_for_a_password() {
        let ro = ApplyError::Io {
            action: "write",
            path: PathBuf::from("/etc/exports"),
            source: std::io::Error::from_raw_os_error(libc::EROFS),
        };
        assert!(ro.help().unwrap().contains("read-only"));
        let immutable = ApplyError::Io {
            action: "write",
            path: PathBuf::from("/etc/exports"),
            source: std::io::Error::from_raw_os_error(libc::EPERM),
        };
        assert!(immutable.help().unwrap().contains("immutable"));
        let full = ApplyError::Io {
            action: "write",
            path: PathBuf::from("/etc/exports"),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert!(full.help().unwrap().contains("disk is full"));
    }

    #[test]
    fn a_writer_kept_waiting_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let exports = dir.path().join("exports");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let _held = lock(dir.path(), &exports, Duration::from_secs(1))
                .await
                .unwrap();
            let err = lock(dir.path(), &exports, Duration::from_millis(100))
                .await
                .unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("pid {}: ", std::process::id())),
                "{text}"
            );
            assert!(text.contains("holds the exports lock"), "{text}");
        });
    }
}
