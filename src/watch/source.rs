//! The one place that talks to notify: the exported directory watched without its ignored parts,
//! raw events gathered into [`Batch`]es on a tokio channel once the tree has been quiet.
//!
//! On Linux every inotify watch covers one directory and costs kernel memory and a share of
//! `fs.inotify.max_user_watches`, so each directory that is not ignored gets a watch of its own
//! and an ignored one (`.git`, `node_modules`, `target`, whatever an ignore file at any level
//! says) gets none: a directory is listed right after its watch is added, its ignore files read,
//! and only then are its subdirectories judged. A directory created later is handled the same
//! way when its creation is reported, and the files already in it join the batch, since they
//! were written before their watch existed. Backends that watch a tree natively (FSEvents,
//! Windows) get one recursive watch and the same rules on each event.
//!
//! The quiet period is timed here, not by a debouncer: a batch goes out `debounce` after the
//! last event, to the tick, so a single edit is acted on `debounce` after it and a burst of any
//! length stays one batch. Nothing on the way drops an event: notify's thread hands each one to
//! an unbounded channel and every distinct path is kept, so memory grows with the paths of one
//! batch and no more. The one loss the kernel itself can cause, an overflowed inotify queue
//! (IN_Q_OVERFLOW), does not say which directories lost events, so the whole watched tree is
//! walked for files modified since the previous batch, and the batch says so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher, WatcherKind};
use tokio::sync::mpsc::UnboundedSender;

use super::filter::{Ignores, is_ignore_file};
use super::limits;

/// A tree that is never quiet (a log written every few milliseconds) still gets a batch this
/// long after its first change, so the watcher never goes silent and memory stays bounded.
const MAX_GATHER: Duration = Duration::from_secs(30);

/// Slack on "modified since the previous batch" after an overflow: a file written just before
/// that batch went out can carry an older mtime than the batch, and a path reported twice is
/// better than one missed.
const MTIME_SLACK: Duration = Duration::from_secs(1);

/// What one delivery from the source holds.
#[derive(Debug, Default)]
pub struct Batch {
    /// Every changed path (absolute) that is not ignored and not a directory, each once; a
    /// removed path is included.
    pub paths: BTreeSet<PathBuf>,
    /// The kernel's queue overflowed: events are missing, and a rescan of the tree found this
    /// many files modified since the previous batch (they are in `paths`).
    pub rescan: Option<usize>,
    /// Errors notify reported (a watch that could not be added for a new directory…).
    pub errors: Vec<notify::Error>,
    /// When the oldest change of the batch arrived, for the latency the user sees.
    pub first_change: Option<Instant>,
    /// The paths of `paths` whose every event in this batch changed only metadata (times,
    /// mode): what a `touch` reports. devenv's own `forward` touches files in the VM, and the
    /// NFS server applies that to the host's file, so these may be its echo
    /// ([`super::forward::Echoes`]).
    pub touched_only: BTreeSet<PathBuf>,
}

impl Batch {
    /// Fold a later delivery into this one, so batches queued while an action ran are acted on
    /// together.
    pub fn merge(&mut self, other: Batch) {
        let content = |b: &Batch| -> BTreeSet<PathBuf> {
            b.paths.difference(&b.touched_only).cloned().collect()
        };
        let (mine, theirs) = (content(self), content(&other));
        self.touched_only = self
            .touched_only
            .union(&other.touched_only)
            .filter(|p| !mine.contains(*p) && !theirs.contains(*p))
            .cloned()
            .collect();
        self.paths.extend(other.paths);
        self.rescan = match (self.rescan, other.rescan) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.errors.extend(other.errors);
        self.first_change = match (self.first_change, other.first_change) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.rescan.is_none() && self.errors.is_empty()
    }
}

/// A running watch; dropping it stops the gathering thread and notify's.
pub struct Source {
    stop: mpsc::Sender<Raw>,
    thread: Option<JoinHandle<()>>,
}

/// What the gathering thread receives.
enum Raw {
    /// An event and when notify handed it over: the quiet period is timed from there, however
    /// long the gathering thread took to get to it.
    Event(Instant, notify::Result<Event>),
    Stop,
}

impl Source {
    /// Watch `root` and every directory below it that is not ignored; returns once every watch
    /// is in place, so whatever changes afterwards is seen. Each batch goes to `tx`.
    ///
    /// Fails when the kernel refuses a watch for a limit ([`limits::classify`]) or the root
    /// itself cannot be watched; a subdirectory that cannot be read is reported in the first
    /// batch and skipped.
    pub fn start(
        root: &Path,
        debounce: Duration,
        tx: UnboundedSender<Batch>,
    ) -> Result<Source, notify::Error> {
        let (raw_tx, raw_rx) = mpsc::channel();
        let mut tree = Tree::new(root, raw_tx.clone())?;
        tree.sync(root, Files::None)?;
        if !tree.pending.errors.is_empty() {
            let _ = tx.send(std::mem::take(&mut tree.pending));
        }
        let thread = std::thread::Builder::new()
            .name("devenv-watch".into())
            .spawn(move || tree.run(raw_rx, debounce, tx))
            .map_err(notify::Error::io)?;
        Ok(Source {
            stop: raw_tx,
            thread: Some(thread),
        })
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        let _ = self.stop.send(Raw::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Which files a walk of the tree reports.
#[derive(Clone, Copy)]
enum Files {
    None,
    All,
    ModifiedSince(SystemTime),
}

/// The watched tree and the batch being gathered, owned by the gathering thread.
struct Tree {
    root: PathBuf,
    /// One non-recursive watch per directory (inotify, kqueue) rather than one for the tree.
    per_directory: bool,
    watcher: RecommendedWatcher,
    ignores: Ignores,
    /// Directories with a watch of their own.
    watched: BTreeSet<PathBuf>,
    pending: Batch,
    last_event: Option<Instant>,
    /// When the previous batch went out, less [`MTIME_SLACK`].
    last_batch: SystemTime,
}

impl Tree {
    /// The root watched (alone, or recursively where the backend watches trees natively);
    /// every change notify reports goes to `events`.
    fn new(root: &Path, events: mpsc::Sender<Raw>) -> Result<Tree, notify::Error> {
        let watcher = RecommendedWatcher::new(
            move |event: notify::Result<Event>| {
                // Reads are the bulk of what inotify reports on a busy tree; they never start
                // or prolong a batch.
                if event.as_ref().is_ok_and(|e| !is_change(&e.kind)) {
                    return;
                }
                let _ = events.send(Raw::Event(Instant::now(), event));
            },
            notify::Config::default(),
        )?;
        let mut tree = Tree {
            root: root.to_path_buf(),
            per_directory: !matches!(
                RecommendedWatcher::kind(),
                WatcherKind::Fsevent | WatcherKind::ReadDirectoryChangesWatcher
            ),
            watcher,
            ignores: Ignores::new(root),
            watched: BTreeSet::new(),
            pending: Batch::default(),
            last_event: None,
            last_batch: SystemTime::now() - MTIME_SLACK,
        };
        if tree.per_directory {
            tree.watcher.watch(root, RecursiveMode::NonRecursive)?;
            tree.watched.insert(root.to_path_buf());
        } else {
            tree.watcher.watch(root, RecursiveMode::Recursive)?;
        }
        Ok(tree)
    }

    fn run(mut self, rx: mpsc::Receiver<Raw>, debounce: Duration, tx: UnboundedSender<Batch>) {
        loop {
            let received = match self.deadline(debounce) {
                // Nothing pending: sleep until the kernel has something to say.
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match received {
                Ok(Raw::Event(at, event)) => self.take(at, event),
                Ok(Raw::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    let batch = self.flush();
                    if !batch.is_empty() && tx.send(batch).is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// When the pending batch is due: `debounce` after its last event, or [`MAX_GATHER`] after
    /// its first.
    fn deadline(&self, debounce: Duration) -> Option<Instant> {
        let last = self.last_event?;
        let quiet = last + debounce;
        Some(match self.pending.first_change {
            Some(first) => quiet.min(first + MAX_GATHER),
            None => quiet,
        })
    }

    fn take(&mut self, at: Instant, event: notify::Result<Event>) {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                self.pending.errors.push(err);
                self.mark(at);
                return;
            }
        };
        if event.need_rescan() {
            self.pending.rescan.get_or_insert(0);
            self.mark(at);
        }
        for path in event.paths {
            let dir_event = matches!(
                event.kind,
                EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder)
            );
            if self.ignores.is_ignored(&path, dir_event) {
                continue;
            }
            match event.kind {
                EventKind::Create(CreateKind::Folder) => self.add_dir(&path),
                EventKind::Remove(RemoveKind::Folder) => self.forget_dir(&path, false),
                // A directory renamed into the tree is new to it; one renamed away keeps its
                // watches in the kernel, which must go.
                EventKind::Modify(ModifyKind::Name(_)) => match std::fs::symlink_metadata(&path) {
                    Ok(meta) if meta.is_dir() => self.add_dir(&path),
                    Ok(_) => {}
                    Err(_) => self.forget_dir(&path, true),
                },
                _ => {}
            }
            if is_ignore_file(&path)
                && let Some(dir) = path.parent()
            {
                // New rules can hide a watched directory or reveal an ignored one.
                let dir = dir.to_path_buf();
                if let Err(err) = self.sync(&dir, Files::None) {
                    self.pending.errors.push(err);
                }
            }
            if matches!(event.kind, EventKind::Modify(ModifyKind::Metadata(_))) {
                if !self.pending.paths.contains(&path) {
                    self.pending.touched_only.insert(path.clone());
                }
            } else {
                self.pending.touched_only.remove(&path);
            }
            self.pending.paths.insert(path);
            self.mark(at);
        }
    }

    /// Something worth a batch arrived at `at`: the quiet period starts again.
    fn mark(&mut self, at: Instant) {
        self.last_event = Some(self.last_event.map_or(at, |last| last.max(at)));
        self.pending.first_change.get_or_insert(at);
    }

    /// A directory appeared: watch it and what is below it, and report the files already in it.
    fn add_dir(&mut self, dir: &Path) {
        if self.ignores.is_ignored(dir, true) {
            return;
        }
        match self.sync(dir, Files::All) {
            Ok(found) => self.pending.paths.extend(found),
            Err(err) => self.pending.errors.push(err),
        }
    }

    /// A directory went away (or was renamed away): its watches and rules with it.
    fn forget_dir(&mut self, dir: &Path, unwatch: bool) {
        let below: Vec<PathBuf> = self
            .watched
            .range(dir.to_path_buf()..)
            .take_while(|d| d.starts_with(dir))
            .cloned()
            .collect();
        for d in below {
            self.watched.remove(&d);
            if unwatch {
                let _ = self.watcher.unwatch(&d);
            }
        }
        self.ignores.forget(dir);
    }

    /// The pending batch, made ready to go out: after an overflow, the tree walked for what
    /// the lost events would have said; directories dropped (their files speak for them).
    fn flush(&mut self) -> Batch {
        let started = SystemTime::now();
        self.last_event = None;
        let mut batch = std::mem::take(&mut self.pending);
        if batch.rescan.is_some() {
            let root = self.root.clone();
            match self.sync(&root, Files::ModifiedSince(self.last_batch)) {
                Ok(found) => {
                    batch.rescan = Some(found.len());
                    batch.paths.extend(found);
                }
                Err(err) => batch.errors.push(err),
            }
        }
        batch.paths.retain(|p| !p.is_dir());
        self.last_batch = started - MTIME_SLACK;
        batch
    }

    /// Bring `dir` and everything below it in line with the rules: each directory that is not
    /// ignored is watched (before it is listed, so nothing created in between is missed), its
    /// ignore files are read, and watches of directories now ignored or gone are removed.
    /// Returns the files found that `files` asks for.
    ///
    /// Fails only when the kernel refuses a watch for a limit: every further directory would
    /// fail the same way. Other errors (a directory that cannot be read) go into the batch.
    fn sync(&mut self, dir: &Path, files: Files) -> Result<Vec<PathBuf>, notify::Error> {
        let mut found = Vec::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            if self.per_directory && !self.watched.contains(&dir) {
                match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.watched.insert(dir.clone());
                    }
                    Err(err) if limits::classify(&err).is_some() => return Err(err),
                    Err(err) => {
                        if !matches!(err.kind, notify::ErrorKind::PathNotFound) {
                            self.pending.errors.push(err);
                        }
                        continue;
                    }
                }
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(err) => {
                    if err.kind() != std::io::ErrorKind::NotFound {
                        self.pending
                            .errors
                            .push(notify::Error::io(err).add_path(dir));
                    }
                    continue;
                }
            };
            seen.insert(dir.clone());
            // The directory's own rules first: they decide about its entries.
            self.ignores.read_dir(&dir);
            for entry in entries.flatten() {
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                // Most of a tree is files: when none is asked for, none is judged.
                if !is_dir && matches!(files, Files::None) {
                    continue;
                }
                let path = entry.path();
                if self.ignores.is_ignored(&path, is_dir) {
                    continue;
                }
                if is_dir {
                    stack.push(path);
                } else if wanted(&path, files) {
                    found.push(path);
                }
            }
        }
        let stale: Vec<PathBuf> = self
            .watched
            .range(dir.to_path_buf()..)
            .take_while(|d| d.starts_with(dir))
            .filter(|d| !seen.contains(*d))
            .cloned()
            .collect();
        for d in stale {
            self.watched.remove(&d);
            let _ = self.watcher.unwatch(&d);
        }
        Ok(found)
    }
}

fn wanted(file: &Path, files: Files) -> bool {
    match files {
        Files::None => false,
        Files::All => true,
        Files::ModifiedSince(since) => std::fs::symlink_metadata(file)
            .and_then(|m| m.modified())
            .map_or(true, |m| m >= since),
    }
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
    fn a_path_stays_touched_only_when_no_batch_changed_its_content() {
        let path = |p: &str| PathBuf::from(p);
        let batch = |content: &[&str], touched: &[&str]| {
            let mut b = Batch::default();
            b.paths
                .extend(content.iter().chain(touched).map(|p| path(p)));
            b.touched_only.extend(touched.iter().map(|p| path(p)));
            b
        };
        let mut a = batch(&["/p/edited"], &["/p/touched", "/p/later-edited"]);
        a.merge(batch(
            &["/p/later-edited"],
            &["/p/touched", "/p/edited", "/p/new"],
        ));
        assert_eq!(
            a.touched_only,
            BTreeSet::from([path("/p/touched"), path("/p/new")])
        );
        assert_eq!(a.paths.len(), 4);
    }

    #[test]
    fn merged_batches_keep_every_path_and_every_rescan() {
        let mut a = Batch::default();
        a.paths.insert(PathBuf::from("/p/a"));
        a.rescan = Some(2);
        let mut b = Batch::default();
        b.paths.insert(PathBuf::from("/p/b"));
        b.rescan = Some(3);
        a.merge(b);
        assert_eq!(a.paths.len(), 2);
        assert_eq!(a.rescan, Some(5));
    }

    /// A project tree: `.git`, a `.gitignore`d `node_modules` and `target`, and a nested
    /// `.gitignore` in `web` that ignores `dist`.
    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in [
            ".git/objects/ab",
            "node_modules/left-pad",
            "target/debug",
            "src/api",
            "web/dist/assets",
            "web/src",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join(".gitignore"), "node_modules/\n/target\n").unwrap();
        std::fs::write(root.join("web/.gitignore"), "dist/\n").unwrap();
        for f in [
            "src/api/main.go",
            "web/src/app.ts",
            "web/dist/app.js",
            ".git/HEAD",
        ] {
            std::fs::write(root.join(f), "x").unwrap();
        }
        dir
    }

    /// The project tree, walked by a [`Tree`] that reports `files`; the temp dir lives as long
    /// as the first value.
    fn walked_project(files: Files) -> (tempfile::TempDir, PathBuf, Tree, Vec<PathBuf>) {
        let dir = project();
        let root = dir.path().canonicalize().unwrap();
        let (tx, _rx) = mpsc::channel();
        let mut tree = Tree::new(&root, tx).unwrap();
        let found = tree.sync(&root, files).unwrap();
        (dir, root, tree, found)
    }

    fn relative(root: &Path, paths: impl IntoIterator<Item = PathBuf>) -> Vec<String> {
        let mut rel: Vec<String> = paths
            .into_iter()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect();
        rel.sort();
        rel
    }

    #[test]
    fn every_directory_is_watched_except_ignored_ones() {
        let (_dir, root, tree, files) = walked_project(Files::All);
        if tree.per_directory {
            assert_eq!(
                relative(&root, tree.watched.clone()),
                ["", "src", "src/api", "web", "web/src"]
            );
        }
        assert_eq!(
            relative(&root, files),
            [
                ".gitignore",
                "src/api/main.go",
                "web/.gitignore",
                "web/src/app.ts"
            ]
        );
    }

    #[test]
    fn a_rule_added_later_drops_the_watches_it_ignores() {
        let (_dir, root, mut tree, _) = walked_project(Files::None);
        std::fs::write(root.join("src/.gitignore"), "api/\n").unwrap();
        std::fs::remove_file(root.join("web/.gitignore")).unwrap();
        tree.sync(&root, Files::None).unwrap();
        if tree.per_directory {
            assert_eq!(
                relative(&root, tree.watched.clone()),
                ["", "src", "web", "web/dist", "web/dist/assets", "web/src"]
            );
        }
        assert!(
            tree.ignores
                .is_ignored(&root.join("src/api/main.go"), false)
        );
        assert!(
            !tree
                .ignores
                .is_ignored(&root.join("web/dist/app.js"), false)
        );
    }

    #[test]
    fn after_an_overflow_the_tree_is_rescanned_for_files_modified_since_the_last_batch() {
        let (_dir, root, mut tree, _) = walked_project(Files::None);
        let old = SystemTime::now() - Duration::from_secs(3600);
        for f in [
            ".gitignore",
            "src/api/main.go",
            "web/.gitignore",
            "web/src/app.ts",
        ] {
            let file = std::fs::File::options()
                .write(true)
                .open(root.join(f))
                .unwrap();
            file.set_modified(old).unwrap();
        }
        std::fs::write(root.join("web/src/new.ts"), "x").unwrap();
        std::fs::write(root.join("node_modules/left-pad/index.js"), "x").unwrap();
        tree.pending.rescan = Some(0);
        let batch = tree.flush();
        assert_eq!(batch.rescan, Some(1));
        assert_eq!(relative(&root, batch.paths), ["web/src/new.ts"]);
    }
}
