//! What a replaced exports file keeps: the file a symbolic link points to, and the mode, owner,
//! group and extended attributes of the file it replaces.
//!
//! devenv never edits the exports file in place; it writes a new file and renames it over the
//! old one (see [`super::apply`]). A rename replaces the directory entry, so without care it
//! would replace a symbolic link (NixOS and configuration managers link /etc/exports elsewhere)
//! with a regular file, and give the file the writer's defaults (0644 root:root, no label) in
//! place of what an administrator chose: a 0640 file readable by an `nfs` group, an SELinux
//! label (`security.selinux`), an ACL (`system.posix_acl_access`), macOS's own attributes.
//! [`target_of`] finds the file to replace and [`copy_from`] copies those onto the new file
//! before the rename, so the switch is atomic and the attributes never differ.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// How many links are followed before giving up (the kernel's own limit for a path is 40).
const MAX_LINKS: usize = 40;

/// The file `path` names once every symbolic link on the way is followed: the one to replace.
/// A link whose target does not exist yet gives that target (the file is created there); a
/// path that is no link is itself. A loop gives the path as it is, and the write then fails
/// with the system's own reason.
pub fn target_of(path: &Path) -> PathBuf {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let Ok(meta) = std::fs::symlink_metadata(&current) else {
            return current;
        };
        if !meta.file_type().is_symlink() {
            return current;
        }
        let Ok(next) = std::fs::read_link(&current) else {
            return current;
        };
        current = match current.parent() {
            Some(dir) => dir.join(next),
            None => next,
        };
    }
    path.to_path_buf()
}

/// Give `to` the mode, owner, group and extended attributes of the file at `from` (when there
/// is one; a new file keeps the mode it was created with). Ownership is changed only when it
/// differs, so a user editing a file of their own (the tests) needs no privilege. An extended
/// attribute the system will not set (a label the process may not assign) is skipped and
/// logged: the change itself matters more than a label the system refuses anyway.
pub fn copy_from(from: &Path, to: &File) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = match std::fs::metadata(from) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let ours = to.metadata()?;
    if (ours.uid(), ours.gid()) != (meta.uid(), meta.gid()) {
        std::os::unix::fs::fchown(to, Some(meta.uid()), Some(meta.gid()))?;
    }
    // After the owner: chown clears the set-id bits.
    to.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    if let Ok(source) = File::open(from) {
        xattr::copy(&source, to);
    }
    Ok(())
}

/// Write `bytes` to a temp file (named `prefix…`) beside `path`, fsync it, rename it over
/// `path`, fsync the directory: a reader sees the old file or the new one, never a part. The
/// new file takes the mode, owner and extended attributes of `like` when that exists
/// ([`copy_from`]), and is 0644 otherwise (exports and hosts files are world-readable). `path`
/// must be the file itself, not a link to it ([`target_of`]). An error says what was being done.
pub fn replace(
    path: &Path,
    bytes: &[u8],
    like: Option<&Path>,
    prefix: &str,
) -> Result<(), (&'static str, io::Error)> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(dir)
        .map_err(|e| ("create a temp file beside", e))?;
    tmp.write_all(bytes)
        .map_err(|e| ("write a temp file beside", e))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(|e| ("set permissions beside", e))?;
    if let Some(like) = like {
        copy_from(like, tmp.as_file()).map_err(|e| ("keep the owner and mode of", e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| ("sync a temp file beside", e))?;
    tmp.persist(path).map_err(|e| ("replace", e.error))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Extended attributes through the system calls of each OS (their signatures differ: macOS
/// adds a position and options).
mod xattr {
    use std::ffi::{CStr, c_char, c_void};
    use std::fs::File;
    use std::os::fd::AsRawFd;

    /// Copy every extended attribute of `from` onto `to`; one that cannot be read or set is
    /// skipped.
    pub fn copy(from: &File, to: &File) {
        let Some(names) = list(from) else {
            return;
        };
        for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let mut name = name.to_vec();
            name.push(0);
            let Ok(name) = CStr::from_bytes_with_nul(&name) else {
                continue;
            };
            let Some(value) = get(from, name) else {
                continue;
            };
            if !set(to, name, &value) {
                tracing::debug!(
                    "extended attribute {} not kept: {}",
                    name.to_string_lossy(),
                    std::io::Error::last_os_error()
                );
            }
        }
    }

    /// The names, each ending in a NUL; `None` when the file system has none or refuses.
    fn list(file: &File) -> Option<Vec<u8>> {
        let size = sys::list(file.as_raw_fd(), std::ptr::null_mut(), 0);
        if size <= 0 {
            return None;
        }
        let mut buf = vec![0u8; usize::try_from(size).ok()?];
        let got = sys::list(
            file.as_raw_fd(),
            buf.as_mut_ptr().cast::<c_char>(),
            buf.len(),
        );
        buf.truncate(usize::try_from(got).ok()?);
        Some(buf)
    }

    pub(super) fn get(file: &File, name: &CStr) -> Option<Vec<u8>> {
        let size = sys::get(file.as_raw_fd(), name, std::ptr::null_mut(), 0);
        let mut buf = vec![0u8; usize::try_from(size).ok()?];
        let got = sys::get(
            file.as_raw_fd(),
            name,
            buf.as_mut_ptr().cast::<c_void>(),
            buf.len(),
        );
        buf.truncate(usize::try_from(got).ok()?);
        Some(buf)
    }

    pub(super) fn set(file: &File, name: &CStr, value: &[u8]) -> bool {
        sys::set(
            file.as_raw_fd(),
            name,
            value.as_ptr().cast::<c_void>(),
            value.len(),
        ) == 0
    }

    #[cfg(target_os = "linux")]
    mod sys {
        use std::ffi::{CStr, c_char, c_void};

        pub fn list(fd: i32, buf: *mut c_char, size: usize) -> isize {
            // SAFETY: `buf` is null with size 0, or points to `size` writable bytes.
            unsafe { libc::flistxattr(fd, buf, size) }
        }

        pub fn get(fd: i32, name: &CStr, buf: *mut c_void, size: usize) -> isize {
            // SAFETY: as above; `name` is NUL-terminated.
            unsafe { libc::fgetxattr(fd, name.as_ptr(), buf, size) }
        }

        pub fn set(fd: i32, name: &CStr, value: *const c_void, size: usize) -> i32 {
            // SAFETY: `value` points to `size` readable bytes; `name` is NUL-terminated.
            unsafe { libc::fsetxattr(fd, name.as_ptr(), value, size, 0) }
        }
    }

    #[cfg(target_os = "macos")]
    mod sys {
        use std::ffi::{CStr, c_char, c_void};

        pub fn list(fd: i32, buf: *mut c_char, size: usize) -> isize {
            // SAFETY: `buf` is null with size 0, or points to `size` writable bytes.
            unsafe { libc::flistxattr(fd, buf, size, 0) }
        }

        pub fn get(fd: i32, name: &CStr, buf: *mut c_void, size: usize) -> isize {
            // SAFETY: as above; `name` is NUL-terminated.
            unsafe { libc::fgetxattr(fd, name.as_ptr(), buf, size, 0, 0) }
        }

        pub fn set(fd: i32, name: &CStr, value: *const c_void, size: usize) -> i32 {
            // SAFETY: `value` points to `size` readable bytes; `name` is NUL-terminated.
            unsafe { libc::fsetxattr(fd, name.as_ptr(), value, size, 0, 0) }
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    mod sys {
        use std::ffi::{CStr, c_char, c_void};

        pub fn list(_: i32, _: *mut c_char, _: usize) -> isize {
            -1
        }

        pub fn get(_: i32, _: &CStr, _: *mut c_void, _: usize) -> isize {
            -1
        }

        pub fn set(_: i32, _: &CStr, _: *const c_void, _: usize) -> i32 {
            -1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_of_links_leads_to_the_file_and_a_dangling_one_to_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("exports"), "x").unwrap();
        std::os::unix::fs::symlink("real/exports", dir.path().join("static")).unwrap();
        std::os::unix::fs::symlink("static", dir.path().join("exports")).unwrap();
        assert_eq!(
            target_of(&dir.path().join("exports")),
            dir.path().join("real/exports")
        );
        std::os::unix::fs::symlink("nowhere/exports", dir.path().join("dangling")).unwrap();
        assert_eq!(
            target_of(&dir.path().join("dangling")),
            dir.path().join("nowhere/exports")
        );
        assert_eq!(target_of(&real.join("exports")), real.join("exports"));
        std::os::unix::fs::symlink("loop", dir.path().join("loop")).unwrap();
        assert_eq!(target_of(&dir.path().join("loop")), dir.path().join("loop"));
    }

    #[test]
    fn the_replacement_gets_the_mode_and_extended_attributes_of_the_original() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let original = dir.path().join("exports");
        std::fs::write(&original, "old").unwrap();
        std::fs::set_permissions(&original, std::fs::Permissions::from_mode(0o640)).unwrap();
        let name = c"user.devenv-test";
        // A file system without user attributes (tmpfs before Linux 6.6) checks the mode only.
        let has_xattrs = xattr::set(&File::open(&original).unwrap(), name, b"kept");
        let new = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        copy_from(&original, new.as_file()).unwrap();
        let meta = new.as_file().metadata().unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        if has_xattrs {
            let source = File::open(new.path()).unwrap();
            assert_eq!(xattr::get(&source, name).as_deref(), Some(&b"kept"[..]));
        }
    }
}
