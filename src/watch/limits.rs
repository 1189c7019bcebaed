//! The kernel limits a large tree runs into, recognised from notify's errors by pure functions so
//! the advice is tested without exhausting a real limit. On Linux each watched directory costs one
//! inotify watch (`fs.inotify.max_user_watches`, ENOSPC when spent) and each watcher one inotify
//! instance (`fs.inotify.max_user_instances`, EMFILE when spent); a process out of file
//! descriptors also reports EMFILE.

/// A limit that stopped the watcher from covering the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// ENOSPC from `inotify_add_watch`: every watch of the user is taken.
    Watches,
    /// EMFILE from `inotify_init`: every instance of the user (or every descriptor of the
    /// process) is taken.
    Instances,
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
/// other errors through as I/O errors carrying the errno; messages are the last resort.
pub fn classify(err: &notify::Error) -> Option<Limit> {
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
    pub fn message(self) -> &'static str {
        match self {
            Limit::Watches => {
                "too many watches: the inotify watch limit is reached (ENOSPC; no disk is full)"
            }
            Limit::Instances => {
                "too many open files: the inotify instance limit is reached (EMFILE)"
            }
        }
    }

    /// The fix, now and after a reboot.
    pub fn help(self) -> String {
        let (key, value) = match self {
            Limit::Watches => ("fs.inotify.max_user_watches", 524288),
            Limit::Instances => ("fs.inotify.max_user_instances", 1024),
        };
        let mut help = format!(
            "raise it now: sudo sysctl {key}={value}\n\
             keep it after a reboot: echo {key}={value} | sudo tee /etc/sysctl.d/90-devenv-inotify.conf && sudo sysctl --system"
        );
        if self == Limit::Watches {
            help.push_str(
                "\nor watch less: add large generated directories to .devenvignore (docs/watch.md)",
            );
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
