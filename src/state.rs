//! Per-user state, kept apart from the team's devenv.toml: a developer's offload toggles, the
//! fingerprint of what was last applied, background process ids. It lives in the user's data
//! directory (`directories`), or under `$DEVENV_HOME` when set, one directory per project.
//!
//! Writes are atomic (temp file beside the target, fsync, rename) so a crash never leaves half a
//! file. Mutating commands take the project's lock so two `devenv up` never interleave; read-only
//! commands never take it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Placement;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot find a home directory for devenv's state")]
    NoHome,
    #[error("cannot {action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is damaged: {message}", .path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("another devenv command{} is still working on project \"{project}\" after {}s", holder_text(.holder), .waited.as_secs())]
    Locked {
        project: String,
        holder: Option<u32>,
        waited: Duration,
    },
}

fn holder_text(holder: &Option<u32>) -> String {
    holder
        .map(|pid| format!(" (pid {pid})"))
        .unwrap_or_default()
}

impl StateError {
    pub fn help(&self) -> Option<String> {
        match self {
            StateError::NoHome => Some("set DEVENV_HOME to a writable directory".into()),
            StateError::Corrupt { path, .. } => Some(format!(
                "move {} aside; devenv starts from empty state",
                path.display()
            )),
            StateError::Locked { holder, .. } => Some(match holder {
                Some(pid) => format!("wait for it to finish, or stop it (kill {pid}) if it hangs"),
                None => "wait for it to finish".into(),
            }),
            StateError::Io { .. } => None,
        }
    }
}

fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> StateError + 'p {
    move |source| StateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The root of devenv's per-user data.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// `$DEVENV_HOME` when given, else the platform data dir (`~/.local/share/devenv`,
    /// `~/Library/Application Support/dev.devenv.devenv`).
    pub fn locate(devenv_home: Option<PathBuf>) -> Result<StateDir, StateError> {
        let root = match devenv_home {
            Some(p) => p,
            None => directories::ProjectDirs::from("dev", "devenv", "devenv")
                .ok_or(StateError::NoHome)?
                .data_dir()
                .to_path_buf(),
        };
        Ok(StateDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one project, keyed by its name and where it lives, so two checkouts of
    /// the same project keep separate state.
    pub fn project(&self, name: &str, project_root: &Path) -> ProjectDir {
        let id = format!("{name}-{}", root_id(project_root));
        ProjectDir {
            name: name.to_string(),
            dir: self.root.join("projects").join(id),
        }
    }

    /// The state directory of the project at `project_root` whatever its name, for when
    /// devenv.toml cannot be read; the most recently used when the name changed over time.
    pub fn project_at(&self, project_root: &Path) -> Option<ProjectDir> {
        let suffix = format!("-{}", root_id(project_root));
        let entries = std::fs::read_dir(self.root.join("projects")).ok()?;
        entries
            .flatten()
            .filter_map(|e| {
                let file_name = e.file_name().into_string().ok()?;
                let name = file_name.strip_suffix(&suffix)?.to_string();
                let used = e
                    .path()
                    .join("state.json")
                    .metadata()
                    .ok()?
                    .modified()
                    .ok()?;
                Some((
                    used,
                    ProjectDir {
                        name,
                        dir: e.path(),
                    },
                ))
            })
            .max_by_key(|(used, _)| *used)
            .map(|(_, dir)| dir)
    }
}

/// The part of a project's state directory name that comes from where the project is.
fn root_id(project_root: &Path) -> String {
    let canonical = project_root
        .canonicalize()
        .unwrap_or_else(|_| project_root.to_path_buf());
    format!(
        "{:08x}",
        crate::fsutil::fnv1a(canonical.to_string_lossy().as_bytes()) as u32
    )
}

/// What devenv remembers about one project for one user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectState {
    /// The developer's own placement per service, overriding the team default.
    pub offload: BTreeMap<String, Placement>,
    /// Fingerprint of the desired state last applied successfully.
    pub applied_fingerprint: Option<String>,
    /// Services whose remote release devenv may have installed and not yet removed: coming
    /// back to the laptop uninstalls them even when their bridge was never made (a toggle
    /// interrupted after the remote release).
    pub remote_releases: BTreeSet<String>,
    /// Per service, the context hash of the image last built in the VM's Docker daemon.
    pub images: BTreeMap<String, String>,
    /// What `up` makes, as devenv.toml said when it last ran: `down` removes it from this when
    /// devenv.toml can no longer be read.
    pub footprint: Option<Footprint>,
}

/// The names of what devenv makes for a project, recorded by `up` before it changes anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Footprint {
    /// `[project] name`: the exports block's name.
    pub project: String,
    /// The minikube profile.
    pub profile: String,
    pub release: String,
    pub namespace: String,
    /// `[vm] driver` as written (`auto`, `kvm2`, …): which exports file dialect the block is in.
    pub driver: String,
    /// The remote cluster's context and the user's namespace there, with `[remote]`.
    pub remote: Option<(String, String)>,
}

impl ProjectState {
    /// Where `service` runs for this developer: their own toggle, else the team's default.
    pub fn placement(&self, name: &str, service: &crate::config::Service) -> Placement {
        self.offload.get(name).copied().unwrap_or(service.offload)
    }
}

/// One project's state directory.
#[derive(Debug, Clone)]
pub struct ProjectDir {
    name: String,
    dir: PathBuf,
}

impl ProjectDir {
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The saved state; empty when nothing was saved yet.
    pub fn load(&self) -> Result<ProjectState, StateError> {
        let path = self.state_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProjectState::default()),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    /// Save the state atomically. Callers hold the [`ProjectLock`].
    pub fn save(&self, state: &ProjectState, _lock: &ProjectLock) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(state).expect("state serialises");
        bytes.push(b'\n');
        write_atomic(&self.state_file(), &bytes)
    }

    /// Take the project's lock, waiting up to `timeout`. `on_wait` is called once, with the
    /// holder's pid when known, if the lock is busy, so the user learns why nothing happens.
    pub fn lock(
        &self,
        timeout: Duration,
        on_wait: impl FnOnce(Option<u32>),
    ) -> Result<ProjectLock, StateError> {
        std::fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let path = self.dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open", &path))?;
        let started = Instant::now();
        let mut on_wait = Some(on_wait);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let holder = crate::fsutil::read_pid(&mut file);
                    if started.elapsed() >= timeout {
                        return Err(StateError::Locked {
                            project: self.name.clone(),
                            holder,
                            waited: started.elapsed(),
                        });
                    }
                    if let Some(f) = on_wait.take() {
                        f(holder);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", &path)(e)),
            }
        }
        crate::fsutil::write_pid(&mut file).map_err(io("write", &path))?;
        Ok(ProjectLock { _file: file })
    }
}

/// Held while a mutating command runs; released when dropped (or when the process dies, since
/// it is an OS file lock).
#[derive(Debug)]
pub struct ProjectLock {
    _file: File,
}

/// Replace `path` with `bytes` so readers see the old or the new content, never a mix: write a
/// temp file in the same directory, fsync it, rename it over the target, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    write_atomic_mode(path, bytes, None)
}

/// [`write_atomic`] with the file's permission bits: `mode`, else the temp file's 0600 (state
/// is private). The bits are set before the rename, so the file never appears with others.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), StateError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".devenv-")
        .tempfile_in(dir)
        .map_err(io("create a temp file in", dir))?;
    tmp.write_all(bytes).map_err(io("write", tmp.path()))?;
    if let Some(mode) = mode {
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io("set the permissions of", tmp.path()))?;
    }
    tmp.as_file().sync_all().map_err(io("sync", path))?;
    tmp.persist(path)
        .map_err(|e| io("replace", path)(e.error))?;
    if let Ok(d) = File::open(dir) {
        // Persist the rename itself; not all file systems support fsync on a directory.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> (tempfile::TempDir, ProjectDir) {
        let home = tempfile::tempdir().unwrap();
        let dir = StateDir::locate(Some(home.path().to_path_buf()))
            .unwrap()
            .project("shop", Path::new("/nonexistent/shop"));
        (home, dir)
    }

    #[test]
    fn state_starts_empty_and_round_trips() {
        let (_home, p) = project();
        assert_eq!(p.load().unwrap(), ProjectState::default());
        let lock = p.lock(Duration::from_secs(1), |_| {}).unwrap();
        let mut s = ProjectState::default();
        s.offload.insert("postgres".into(), Placement::Remote);
        p.save(&s, &lock).unwrap();
        assert_eq!(p.load().unwrap(), s);
    }

    #[test]
    fn a_damaged_state_file_is_reported_not_overwritten() {
        let (_home, p) = project();
        std::fs::create_dir_all(p.path()).unwrap();
        std::fs::write(p.path().join("state.json"), "{not json").unwrap();
        assert!(matches!(p.load(), Err(StateError::Corrupt { .. })));
        assert_eq!(
            std::fs::read_to_string(p.path().join("state.json")).unwrap(),
            "{not json"
        );
    }

    #[test]
    fn a_second_locker_waits_says_so_and_times_out_naming_the_holder() {
        let (_home, p) = project();
        let _held = p.lock(Duration::from_secs(1), |_| {}).unwrap();
        let mut told = None;
        let err = p
            .lock(Duration::from_millis(300), |pid| told = Some(pid))
            .unwrap_err();
        assert_eq!(told, Some(Some(std::process::id())));
        match err {
            StateError::Locked { holder, .. } => assert_eq!(holder, Some(std::process::id())),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_lock_is_free_again_once_dropped() {
        let (_home, p) = project();
        drop(p.lock(Duration::from_secs(1), |_| {}).unwrap());
        p.lock(Duration::from_millis(100), |_| panic!("should not wait"))
            .unwrap();
    }

    #[test]
    fn two_checkouts_of_one_project_get_separate_directories() {
        let home = tempfile::tempdir().unwrap();
        let s = StateDir::locate(Some(home.path().to_path_buf())).unwrap();
        assert_ne!(
            s.project("shop", Path::new("/a/shop")).path(),
            s.project("shop", Path::new("/b/shop")).path()
        );
    }

    #[test]
    fn atomic_write_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        write_atomic(&f, b"first version, long").unwrap();
        write_atomic(&f, b"second").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"second");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }
}
