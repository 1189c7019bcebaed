//! `forward`: replay host-side changes inside the VM. inotify does not fire on an NFS client for
//! writes made on the server, so watchers running in the VM (nodemon, webpack, air) never see an
//! edit made on the host. Touching the file inside the VM (`touch -c`, which never creates one)
//! is a local change there and wakes them.
//!
//! Every path of a batch goes into as few `minikube ssh` calls as fit under [`MAX_LINE`], each
//! word quoted for the VM's shell, so names with spaces, quotes, `$(…)` or newlines arrive intact.
//!
//! A touch in the VM is a `SETATTR` to the NFS server, which sets the times of the host's file:
//! the host's watcher sees it, and without [`Echoes`] every forward would cause the next one,
//! forever (seen with a real guest kernel and NFS server, tests/real_vm.rs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Batch;

use crate::minikube;
use crate::process::{Cmd, quote};

/// Upper bound on one command line handed to `minikube ssh`: Linux refuses a single argument
/// above 128 KiB (MAX_ARG_STRLEN), and minikube passes the line as one.
pub const MAX_LINE: usize = 64 * 1024;

/// The path inside the VM of `rel` (relative to the exported directory), below the mount target.
pub fn vm_path(target: &str, rel: &Path) -> String {
    let rel = rel.to_string_lossy();
    format!(
        "{}/{}",
        target.trim_end_matches('/'),
        rel.trim_start_matches('/')
    )
}

/// How long after a forward a metadata-only change of a forwarded path counts as its echo: the
/// server applies the touch before `minikube ssh` returns, and the host's watcher reports it
/// within its debounce; the margin covers a slow laptop. A real edit (content, rename,
/// removal) is never an echo.
pub const ECHO_WINDOW: Duration = Duration::from_secs(10);

/// The host paths devenv touched in the VM lately, so their echo does not start a batch.
#[derive(Debug, Default)]
pub struct Echoes {
    touched: HashMap<PathBuf, Instant>,
}

impl Echoes {
    /// `paths` (as the watcher reports them) were just touched in the VM.
    pub fn record(&mut self, paths: impl IntoIterator<Item = PathBuf>, now: Instant) {
        self.touched
            .retain(|_, at| now.saturating_duration_since(*at) < ECHO_WINDOW);
        self.touched.extend(paths.into_iter().map(|p| (p, now)));
    }

    /// Take out of `batch` the paths that are only the echo of a recent touch; how many.
    pub fn remove_from(&self, batch: &mut Batch, now: Instant) -> usize {
        let echoes: Vec<PathBuf> = batch
            .touched_only
            .iter()
            .filter(|p| {
                self.touched
                    .get(*p)
                    .is_some_and(|at| now.saturating_duration_since(*at) < ECHO_WINDOW)
            })
            .cloned()
            .collect();
        for p in &echoes {
            batch.paths.remove(p);
            batch.touched_only.remove(p);
        }
        echoes.len()
    }
}

/// The `touch -c --` calls that replay `vm_paths` in the VM, each under `limit` bytes of
/// quoted command line; never empty calls, never a path dropped.
pub fn touch_calls(profile: &str, vm_paths: &[String], limit: usize) -> Vec<Cmd> {
    let head = ["touch", "-c", "--"];
    let head_len: usize = head.iter().map(|w| w.len() + 1).sum();
    let mut calls = Vec::new();
    let mut words: Vec<&str> = head.to_vec();
    let mut len = head_len;
    for path in vm_paths {
        let cost = quote(path).len() + 1;
        if words.len() > head.len() && len + cost > limit {
            calls.push(minikube::ssh(profile, &words));
            words = head.to_vec();
            len = head_len;
        }
        words.push(path);
        len += cost;
    }
    if words.len() > head.len() {
        calls.push(minikube::ssh(profile, &words));
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_metadata_change_of_a_path_just_forwarded_is_its_echo() {
        let t0 = Instant::now();
        let mut echoes = Echoes::default();
        echoes.record([PathBuf::from("/p/a.rb"), PathBuf::from("/p/b.rb")], t0);
        let mut batch = Batch::default();
        for p in ["/p/a.rb", "/p/b.rb", "/p/c.rb"] {
            batch.paths.insert(PathBuf::from(p));
        }
        // a.rb was only touched (the echo), b.rb edited again, c.rb touched but never forwarded.
        batch.touched_only.insert(PathBuf::from("/p/a.rb"));
        batch.touched_only.insert(PathBuf::from("/p/c.rb"));
        assert_eq!(
            echoes.remove_from(&mut batch, t0 + Duration::from_secs(1)),
            1
        );
        assert_eq!(
            batch.paths.iter().collect::<Vec<_>>(),
            [Path::new("/p/b.rb"), Path::new("/p/c.rb")]
        );

        // After the window, a touch is the user's own again.
        let mut later = Batch::default();
        later.paths.insert(PathBuf::from("/p/a.rb"));
        later.touched_only.insert(PathBuf::from("/p/a.rb"));
        assert_eq!(echoes.remove_from(&mut later, t0 + ECHO_WINDOW), 0);
        assert_eq!(later.paths.len(), 1);
    }

    #[test]
    fn paths_go_below_the_mount_target() {
        assert_eq!(vm_path("/src", Path::new("web/a b.js")), "/src/web/a b.js");
        assert_eq!(vm_path("/src/", Path::new("x")), "/src/x");
    }

    #[test]
    fn one_call_when_the_paths_fit() {
        let calls = touch_calls(
            "devenv-shop",
            &["/src/a b".into(), "/src/$(x)".into()],
            MAX_LINE,
        );
        assert_eq!(calls.len(), 1);
        assert_eq!(
            calls[0].display(),
            "minikube ssh -p devenv-shop -- 'touch -c -- '\\''/src/a b'\\'' '\\''/src/$(x)'\\'''"
        );
    }

    #[test]
    fn long_lists_are_split_without_dropping_a_path() {
        let paths: Vec<String> = (0..1000)
            .map(|i| format!("/src/dir/file-{i}.txt"))
            .collect();
        let calls = touch_calls("p", &paths, 2000);
        assert!(calls.len() > 10);
        let mut seen = Vec::new();
        for call in &calls {
            let line = call
                .get_args()
                .last()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert!(line.len() <= 2000, "{} bytes", line.len());
            assert!(line.starts_with("touch -c -- "));
            seen.extend(line["touch -c -- ".len()..].split(' ').map(str::to_string));
        }
        assert_eq!(seen, paths);
    }

    #[test]
    fn no_paths_no_call() {
        assert!(touch_calls("p", &[], MAX_LINE).is_empty());
    }
}
