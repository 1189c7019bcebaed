//! The one place that talks to notify: a recursive watch of the exported directory behind
//! notify-debouncer-full, turned into [`Batch`]es on a tokio channel.
//!
//! Nothing on the way drops an event: notify's inotify thread hands every event to the
//! debouncer's map (no bounded queue), the debouncer coalesces per path, and the channel to the
//! command is unbounded, so memory grows with the number of distinct changed paths and no more.
//! The one loss the kernel itself can cause, an overflowed inotify queue (IN_Q_OVERFLOW), comes
//! out as a batch with `rescan` set; [`walk`] then finds what changed from modification times.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, CreateKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc::UnboundedSender;

use super::filter::DEVENVIGNORE;

/// What one debounced delivery from notify holds.
#[derive(Debug, Default)]
pub struct Batch {
    /// Every path named by an event (absolute), each once.
    pub paths: BTreeSet<PathBuf>,
    /// Directories that appeared: files written into them before their watch was in place sent
    /// no event, so they are walked.
    pub new_dirs: BTreeSet<PathBuf>,
    /// The kernel's queue overflowed (or the backend lost track): events are missing.
    pub rescan: bool,
    /// Errors notify reported (a watch that could not be added for a new directory…).
    pub errors: Vec<notify::Error>,
    /// When the oldest change of the batch happened, for the latency the user sees.
    pub first_change: Option<Instant>,
}

impl Batch {
    /// Fold a later delivery into this one, so a burst longer than the debounce time still
    /// becomes one batch.
    pub fn merge(&mut self, other: Batch) {
        self.paths.extend(other.paths);
        self.new_dirs.extend(other.new_dirs);
        self.rescan |= other.rescan;
        self.errors.extend(other.errors);
        self.first_change = match (self.first_change, other.first_change) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.new_dirs.is_empty() && !self.rescan && self.errors.is_empty()
    }
}

/// A running watch; dropping it stops notify's threads.
pub struct Source {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

impl Source {
    /// Watch `root` recursively; every debounced delivery goes to `tx`.
    pub fn start(
        root: &Path,
        debounce: Duration,
        tx: UnboundedSender<Batch>,
    ) -> Result<Source, notify::Error> {
        let mut debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
            let batch = to_batch(result);
            if !batch.is_empty() {
                // The receiver is gone only when the command is stopping.
                let _ = tx.send(batch);
            }
        })?;
        debouncer.watch(root, RecursiveMode::Recursive)?;
        Ok(Source {
            _debouncer: debouncer,
        })
    }
}

fn to_batch(result: DebounceEventResult) -> Batch {
    let mut batch = Batch::default();
    match result {
        Ok(events) => {
            for event in events {
                if event.need_rescan() {
                    batch.rescan = true;
                }
                if !is_change(&event.kind) {
                    continue;
                }
                batch.first_change = Some(match batch.first_change {
                    Some(t) => t.min(event.time),
                    None => event.time,
                });
                if matches!(event.kind, EventKind::Create(CreateKind::Folder)) {
                    batch.new_dirs.extend(event.paths.iter().cloned());
                }
                batch.paths.extend(event.paths.iter().cloned());
            }
        }
        Err(errors) => batch.errors = errors,
    }
    batch
}

/// Reads are not changes: without this, `devenv up` reading the chart would trigger itself.
/// A file closed after writing is one.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Files below `dir` that the project does not ignore (`.gitignore` files at every level,
/// `.devenvignore`, never `.git/`), modified at or after `since` when given.
pub fn walk(dir: &Path, since: Option<SystemTime>) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let walker = ignore::WalkBuilder::new(dir)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .add_custom_ignore_filename(DEVENVIGNORE)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    for entry in walker.flatten() {
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        if let Some(since) = since {
            let modified = entry.metadata().ok().and_then(|m| m.modified().ok());
            if modified.is_some_and(|m| m < since) {
                continue;
            }
        }
        found.push(entry.into_path());
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_not_changes_but_writes_are() {
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
    }

    #[test]
    fn walk_skips_ignored_files_and_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("a/build")).unwrap();
        std::fs::write(root.join(".git/index"), "").unwrap();
        std::fs::write(root.join(".gitignore"), "build/\n").unwrap();
        std::fs::write(root.join(DEVENVIGNORE), "*.tmp\n").unwrap();
        std::fs::write(root.join("a/build/out"), "").unwrap();
        std::fs::write(root.join("a/x.tmp"), "").unwrap();
        std::fs::write(root.join("a/keep.rs"), "").unwrap();
        let mut files: Vec<_> = walk(root, None)
            .into_iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                PathBuf::from(".devenvignore"),
                PathBuf::from(".gitignore"),
                PathBuf::from("a/keep.rs")
            ]
        );
        let future = SystemTime::now() + Duration::from_secs(3600);
        assert!(walk(root, Some(future)).is_empty());
    }

    #[test]
    fn merged_batches_keep_every_path() {
        let mut a = Batch::default();
        a.paths.insert(PathBuf::from("/p/a"));
        let mut b = Batch::default();
        b.paths.insert(PathBuf::from("/p/b"));
        b.rescan = true;
        a.merge(b);
        assert_eq!(a.paths.len(), 2);
        assert!(a.rescan);
    }
}
