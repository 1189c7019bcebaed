//! `devenv-exports-helper`: edits devenv's blocks in /etc/exports as root for the user who ran
//! `sudo`, after checking the request against rules of its own. What it allows and why that is
//! safe: `devenv::nfs::helper` and docs/nfs.md.
//!
//! Before anything else runs, the environment is replaced by a fixed PATH (only sudo's
//! `SUDO_UID` and `SUDO_GID` are read first), the umask is set and the working directory is `/`,
//! so nothing the caller controls reaches the programs it runs.

use std::process::ExitCode;

fn main() -> ExitCode {
    let uid = std::env::var_os("SUDO_UID");
    let gid = std::env::var_os("SUDO_GID");
    let keys: Vec<_> = std::env::vars_os().map(|(k, _)| k).collect();
    for key in keys {
        // SAFETY: single-threaded: no other thread exists yet to read the environment.
        unsafe { std::env::remove_var(key) };
    }
    // SAFETY: as above.
    unsafe { std::env::set_var("PATH", devenv::nfs::helper::SAFE_PATH) };
    // SAFETY: umask, getuid and geteuid have no preconditions.
    let (real, effective) = unsafe {
        libc::umask(0o022);
        (libc::getuid(), libc::geteuid())
    };
    let _ = std::env::set_current_dir("/");
    let invoker =
        devenv::nfs::helper::Invoker::from_sudo(uid.as_ref(), gid.as_ref(), real, effective);
    let exe = std::env::current_exe().unwrap_or_default();
    let code = devenv::nfs::helper::run(
        invoker,
        &exe,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
