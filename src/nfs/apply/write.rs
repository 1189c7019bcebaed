//! Replacing the exports file: atomically as its owner, or staged and moved with sudo's fixed
//! command lines; the new file keeps the old one's mode, owner and extended attributes.

use super::*;

/// Write `bytes` to a temp file beside `path`, fsync it, rename it over `path`, fsync the
/// directory. The new file takes the mode, owner and extended attributes of `like` when that
/// exists ([`attrs::copy_from`]), and is 0644 otherwise, as exports files are world-readable.
/// `path` must be the file itself, not a link to it ([`attrs::target_of`]).
pub(super) fn write_replace(
    path: &Path,
    bytes: &[u8],
    like: Option<&Path>,
) -> Result<(), ApplyError> {
    attrs::replace(path, bytes, like, TEMP_PREFIX).map_err(|(action, source)| ApplyError::Io {
        action,
        path: path.to_path_buf(),
        source,
    })
}

/// The fixed sudo command lines (see docs/nfs.md): a staging file beside the file, made a copy
/// of it first (`cp -p`: mode and owner) and then overwritten with `tee` (which keeps them),
/// validated (macOS), the current file backed up, the staging file moved over the file. `file`
/// is the exports file with any link followed, so a link stays a link.
pub(super) async fn sudo_replace(
    runner: &dyn Runner,
    host: &NfsHost,
    file: &Path,
    exists: bool,
    text: &[u8],
) -> Result<(), ApplyError> {
    let staging = sibling(file, ".devenv.tmp");
    if exists {
        runner
            .run(&Cmd::new("sudo").args(["cp", "-p"]).arg(file).arg(&staging))
            .await?;
    }
    runner
        .run(
            &Cmd::new("sudo")
                .arg("tee")
                .arg(&staging)
                .stdin(text.to_vec()),
        )
        .await?;
    if host.dialect == ExportsDialect::MacOs {
        runner
            .run(
                &Cmd::new("sudo")
                    .args(["nfsd", "-F"])
                    .arg(&staging)
                    .arg("checkexports"),
            )
            .await?;
    }
    if exists {
        runner
            .run(
                &Cmd::new("sudo")
                    .args(["cp", "-p"])
                    .arg(file)
                    .arg(host.backup_path()),
            )
            .await?;
    }
    runner
        .run(&Cmd::new("sudo").arg("mv").arg(&staging).arg(file))
        .await?;
    Ok(())
}
