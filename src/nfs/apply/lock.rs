//! One writer at a time: the lock beside the exports file, who holds it, and the temporary
//! files a killed writer left.

use super::*;

/// The prefix of the temp files devenv writes beside the exports file before renaming one over
/// it (or handing one to `nfsd checkexports`).
pub(super) const TEMP_PREFIX: &str = ".exports.devenv-";

/// Delete the temp files a devenv killed mid-write left beside the exports file. Called with the
/// exports lock held, so no live devenv is writing one; only regular files with devenv's
/// prefix are touched, never a link.
pub(super) fn remove_stale_temp_files(exports: &Path) {
    let dir = exports
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .file_name()
            .as_encoded_bytes()
            .starts_with(TEMP_PREFIX.as_bytes())
            && entry.file_type().is_ok_and(|t| t.is_file());
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Write who holds the lock into it (`<pid> <command line>`), for whoever waits; a lock file
/// another user created is read-only here, and then says nothing.
pub(super) fn write_holder(file: &std::fs::File) {
    use std::io::{Seek, Write};
    let command: Vec<String> = std::env::args()
        .map(|a| a.rsplit('/').next().unwrap_or(&a).to_string())
        .collect();
    let mut f = file;
    let _ = f.set_len(0);
    let _ = f.seek(std::io::SeekFrom::Start(0));
    let _ = writeln!(f, "{} {}", std::process::id(), command.join(" "));
}

/// The holder a lock file names, if that process still runs (`pid 123: devenv exports apply`).
pub(super) fn holder(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let (pid, command) = text.lines().next()?.split_once(' ')?;
    let pid: i32 = pid.parse().ok()?;
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    alive.then(|| format!("pid {pid}: {command}"))
}

/// The exports lock: one per exports file, shared by every user and project, in `dir`
/// ([`LOCK_DIR`]; /etc is not writable without root). It is opened without following a link,
/// read-only when someone else created it (a lock needs no write access).
pub(super) async fn lock(
    dir: &Path,
    exports: &Path,
    timeout: Duration,
) -> Result<std::fs::File, ApplyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = format!(
        "devenv-exports-{:016x}.lock",
        crate::fsutil::fnv1a(exports.as_os_str().as_encoded_bytes())
    );
    let path = dir.join(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .or_else(|_| {
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
        })
        .map_err(|source| ApplyError::Io {
            action: "open",
            path: path.clone(),
            source,
        })?;
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => {
                write_holder(&file);
                return Ok(file);
            }
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < timeout => {
                if !said && started.elapsed() > Duration::from_secs(1) {
                    said = true;
                    crate::errln!(
                        "waiting for the exports lock {}, held by {}…",
                        path.display(),
                        holder(&path).as_deref().unwrap_or("another process")
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(ApplyError::Locked {
                    holder: holder(&path),
                    lock: path,
                    waited: started.elapsed(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(ApplyError::Io {
                    action: "lock",
                    path,
                    source,
                });
            }
        }
    }
}
