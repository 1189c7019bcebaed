//! Asking the NFS server's own parser about a candidate file before it replaces the real one:
//! `exportfs` on Linux, `nfsd checkexports` on macOS.

use super::*;

/// macOS: `nfsd -F <candidate> checkexports` on a copy of the candidate beside the file.
pub(super) async fn nfsd_check(
    runner: &dyn Runner,
    exports: &Path,
    candidate: &[u8],
) -> Result<(), ApplyError> {
    let dir = exports
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}check-"))
        .tempfile_in(dir)
        .map_err(|source| ApplyError::Io {
            action: "create a temp file beside",
            path: exports.to_path_buf(),
            source,
        })?;
    tmp.write_all(candidate).map_err(|source| ApplyError::Io {
        action: "write a temp file beside",
        path: exports.to_path_buf(),
        source,
    })?;
    let nfsd = if Path::new("/sbin/nfsd").exists() {
        "/sbin/nfsd"
    } else {
        "nfsd"
    };
    let out = runner
        .output(
            &Cmd::new(nfsd)
                .arg("-F")
                .arg(tmp.path())
                .arg("checkexports")
                .read_only(),
        )
        .await?;
    if out.success() {
        Ok(())
    } else {
        Err(ApplyError::Invalid {
            problems: out
                .stderr
                .lines()
                .chain(out.stdout.lines())
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

/// Run the real `exportfs -ra` against `candidate` in a private mount namespace, and report the
/// messages the current file does not already produce (a stale foreign line is not devenv's to
/// fix, but it must not add a new one).
pub(super) async fn exportfs_check(
    runner: &dyn Runner,
    current: &[u8],
    candidate: &[u8],
) -> Result<(), ApplyError> {
    let errors_of = |text: Vec<u8>| async move {
        let dir = tempfile::tempdir().map_err(|source| ApplyError::Io {
            action: "create a temp dir for",
            path: PathBuf::from("exportfs validation"),
            source,
        })?;
        let file = dir.path().join("exports");
        let empty = dir.path().join("nfs-state");
        std::fs::create_dir(&empty).map_err(|source| ApplyError::Io {
            action: "create",
            path: empty.clone(),
            source,
        })?;
        std::fs::write(&file, text).map_err(|source| ApplyError::Io {
            action: "write",
            path: file.clone(),
            source,
        })?;
        let out = runner.output(&exportfs_validation(&file, &empty)).await?;
        let messages: Vec<String> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("exportfs:"))
            .filter(|l| !l.contains("Neither 'subtree_check' or 'no_subtree_check'"))
            .map(|l| l.replace("/etc/exports", "exports"))
            .collect();
        // A failure without a word from exportfs means the check itself did not run (the
        // namespace or a bind mount failed): that is no pass.
        if !out.success() && messages.is_empty() {
            return Err(ApplyError::Invalid {
                problems: vec![format!(
                    "the candidate could not be checked with exportfs: {}",
                    crate::process::tail_lines(&out.stderr, 3)
                )],
            });
        }
        Ok::<_, ApplyError>(messages)
    };
    let before = errors_of(current.to_vec()).await?;
    let after = errors_of(candidate.to_vec()).await?;
    let new: Vec<String> = after.into_iter().filter(|l| !before.contains(l)).collect();
    if new.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Invalid { problems: new })
    }
}

/// `exportfs -ra` reading `candidate` as /etc/exports and keeping its state in `state_dir`,
/// inside a private mount namespace so neither the real file nor the kernel's export table is
/// touched: /proc/fs/nfsd and /proc/net/rpc, through which exportfs would update a running
/// server, are hidden under empty tmpfs mounts there. The paths are passed as positional parameters, never spliced into the script.
pub fn exportfs_validation(candidate: &Path, state_dir: &Path) -> Cmd {
    Cmd::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount --bind \"$1\" /etc/exports && mount --bind \"$2\" /var/lib/nfs \\
             && for d in /proc/fs/nfsd /proc/net/rpc; do \\
                  if [ -d \"$d\" ]; then mount -t tmpfs devenv-check \"$d\" || exit 1; fi; \\
                done && exportfs -ra",
        )
        .arg("exportfs-check")
        .arg(candidate)
        .arg(state_dir)
        .read_only()
        .timeout(Duration::from_secs(30))
}
