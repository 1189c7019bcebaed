//! The kernel limits a large tree runs into, recognised from notify's errors by pure functions so
//! the advice is tested without exhausting a real limit. On Linux each watched directory costs one
//! inotify watch (`fs.inotify.max_user_watches`, ENOSPC when spent) and each watcher one inotify
//! instance (`fs.inotify.max_user_instances`, EMFILE when spent); a process out of file
//! descriptors also reports EMFILE, told apart by counting its open descriptors against its
//! `RLIMIT_NOFILE` (the fix is then `ulimit -n`, not a sysctl).

/// A limit that stopped the watcher from covering the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// ENOSPC from `inotify_add_watch`: every watch of the user is taken.
    Watches,
    /// EMFILE from `inotify_init`: every instance of the user is taken.
    Instances,
    /// EMFILE with every file descriptor of the process taken (`ulimit -n`).
    Descriptors {
        /// The soft limit on open files.
        limit: u64,
    },
}

/// ENOSPC and EMFILE on Linux (the only kernel whose watcher has these limits).
const ENOSPC: i32 = 28;
const EMFILE: i32 = 24;

/// The limit an OS error number stands for, if any.
pub fn classify_errno(errno: i32) -> Option<Limit> {
    match errno {
        ENOSPC => Some(Limit::Watches),
        EMFILE => Some(Limit::Instances),
        _ => None,
    }
}

/// The limit a notify error stands for: notify turns ENOSPC into `MaxFilesWatch` and passes
/// other errors through as I/O errors carrying the errno; messages are the last resort. An
/// EMFILE of a process that has used up its own descriptors is that limit, not inotify's.
pub fn classify(err: &notify::Error) -> Option<Limit> {
    let limit = classify_kind(err)?;
    Some(refine(limit, descriptors()))
}

/// `Instances` becomes `Descriptors` when the process holds (nearly) all the descriptors it may
/// open: `open` and the soft limit, as [`descriptors`] reads them.
pub fn refine(limit: Limit, descriptors: Option<(u64, u64)>) -> Limit {
    match (limit, descriptors) {
        // The descriptor that was refused is not among the open ones, and others (a directory
        // being read) may have been closed since: within 16 of the limit, it is the limit.
        (Limit::Instances, Some((open, soft))) if open + 16 >= soft => {
            Limit::Descriptors { limit: soft }
        }
        (limit, _) => limit,
    }
}

/// This process's open descriptors and its soft limit on them (Linux: `/proc/self/fd`).
fn descriptors() -> Option<(u64, u64)> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return None;
    }
    let soft: u64 = rl.rlim_cur;
    let open = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir.count() as u64,
        // Not even the directory can be opened: every descriptor is taken.
        Err(e) if e.raw_os_error() == Some(EMFILE) => soft,
        Err(_) => return None,
    };
    Some((open, soft))
}

fn classify_kind(err: &notify::Error) -> Option<Limit> {
    match &err.kind {
        notify::ErrorKind::MaxFilesWatch => Some(Limit::Watches),
        notify::ErrorKind::Io(io) => io
            .raw_os_error()
            .and_then(classify_errno)
            .or_else(|| classify_message(&io.to_string())),
        notify::ErrorKind::Generic(text) => classify_message(text),
        _ => None,
    }
}

/// Recognise the limit from an error's text ("No space left on device" is ENOSPC's message,
/// which misleads: no disk is full).
pub fn classify_message(text: &str) -> Option<Limit> {
    let t = text.to_lowercase();
    if t.contains("no space left on device") || t.contains("too many watches") {
        Some(Limit::Watches)
    } else if t.contains("too many open files") {
        Some(Limit::Instances)
    } else {
        None
    }
}

impl Limit {
    /// What happened, in the user's words.
    pub fn message(self) -> String {
        match self {
            Limit::Watches => {
                "too many watches: the inotify watch limit is reached (ENOSPC; no disk is full)"
                    .into()
            }
            Limit::Instances => {
                "too many open files: the inotify instance limit is reached (EMFILE)".into()
            }
            Limit::Descriptors { limit } => format!(
                "too many open files: devenv may open only {limit} files (EMFILE; `ulimit -n` is {limit})"
            ),
        }
    }

    /// The fix, now and after a reboot.
    pub fn help(self) -> String {
        let (key, value) = match self {
            Limit::Watches => ("fs.inotify.max_user_watches", 524288),
            Limit::Instances => ("fs.inotify.max_user_instances", 1024),
            Limit::Descriptors { .. } => {
                return "raise it in this shell: ulimit -n 4096 (the shell's own hard limit is `ulimit -Hn`); a service manager sets it with LimitNOFILE= (systemd) or ulimit in the unit".into();
            }
        };
        let mut help = format!(
            "raise it now: sudo sysctl {key}={value}\n\
             keep it after a reboot: echo {key}={value} | sudo tee /etc/sysctl.d/90-devenv-inotify.conf && sudo sysctl --system"
        );
        if self == Limit::Watches {
            help.push_str(&format!(
                "\nor watch less: add large generated directories to .devenvignore ({})",
                crate::docs::url("watch.md")
            ));
        } else {
            help.push_str("\nother watchers (editors, language servers) share the same limit");
        }
        help
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_the_watch_limit() {
        assert_eq!(classify_errno(28), Some(Limit::Watches));
        let err = notify::Error::new(notify::ErrorKind::MaxFilesWatch);
        assert_eq!(classify(&err), Some(Limit::Watches));
        let io = notify::Error::io(std::io::Error::from_raw_os_error(28));
        assert_eq!(classify(&io), Some(Limit::Watches));
        assert!(
            Limit::Watches
                .help()
                .contains("sudo sysctl fs.inotify.max_user_watches=524288")
        );
        assert!(Limit::Watches.help().contains("/etc/sysctl.d/"));
    }

    #[test]
    fn emfile_is_the_instance_limit() {
        assert_eq!(classify_errno(24), Some(Limit::Instances));
        let io = notify::Error::io(std::io::Error::from_raw_os_error(24));
        assert_eq!(classify(&io), Some(Limit::Instances));
        assert!(
            Limit::Instances
                .help()
                .contains("fs.inotify.max_user_instances")
        );
        assert!(Limit::Instances.message().contains("too many open files"));
    }

    #[test]
    fn emfile_with_every_descriptor_taken_is_the_process_limit() {
        assert_eq!(
            refine(Limit::Instances, Some((1021, 1024))),
            Limit::Descriptors { limit: 1024 }
        );
        assert_eq!(
            refine(Limit::Instances, Some((9, 13))),
            Limit::Descriptors { limit: 13 }
        );
        assert_eq!(refine(Limit::Instances, Some((12, 1024))), Limit::Instances);
        assert_eq!(refine(Limit::Instances, None), Limit::Instances);
        assert_eq!(refine(Limit::Watches, Some((1024, 1024))), Limit::Watches);
        let d = Limit::Descriptors { limit: 256 };
        assert!(
            d.message().contains("`ulimit -n` is 256"),
            "{}",
            d.message()
        );
        assert!(d.help().contains("ulimit -n 4096"));
        assert!(!d.help().contains("sysctl"));
    }

    #[test]
    fn messages_are_recognised_when_no_errno_is_left() {
        let generic = notify::Error::generic("Too many open files (os error 24)");
        assert_eq!(classify(&generic), Some(Limit::Instances));
        assert_eq!(
            classify_message("No space left on device (os error 28)"),
            Some(Limit::Watches)
        );
    }

    #[test]
    fn other_errors_are_not_limits() {
        assert_eq!(classify_errno(2), None);
        let nf = notify::Error::path_not_found();
        assert_eq!(classify(&nf), None);
        let io = notify::Error::io(std::io::Error::from_raw_os_error(13));
        assert_eq!(classify(&io), None);
    }
}
