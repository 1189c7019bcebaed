//! What a driver may ask about the machine it runs on. devenv answers with real probes (its
//! process runner, the file system); tests answer with fixtures.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// A boxed future, so that [`crate::Driver`] and [`Host`] stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    MacOs,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
    Other,
}

/// Why a probe's program did not run at all. A driver's check tells a missing program (which
/// an install fixes) from one that hung or could not start (which a restart of its daemon may
/// fix) by the variant, never by the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunFailure {
    /// The program is not installed (not on PATH, or gone when it was started).
    NotFound(String),
    /// It could not be started, or did not finish in its time: why, in words for a check.
    Other(String),
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunFailure::NotFound(why) | RunFailure::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for RunFailure {}

/// What a finished probe printed. `code` is `None` when it was killed by a signal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ProbeOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Metadata of a path, as much as the checks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// Owner uid.
    pub uid: u32,
    /// `st_mode` bits (permissions, setuid, ...).
    pub mode: u32,
    /// The current user can open it for reading and writing (`access(R_OK|W_OK)`).
    pub read_write: bool,
}

/// The machine, as the driver checks see it. Every method must be cheap or time-bounded.
pub trait Host: Send + Sync {
    fn os(&self) -> Os;
    fn arch(&self) -> Arch;
    /// macOS product version (`sw_vers -productVersion`, e.g. "14.5"); `None` elsewhere.
    fn os_version(&self) -> Option<String>;
    /// The current user's uid (0 for root).
    fn uid(&self) -> u32;
    /// Names of the current user's groups.
    fn groups(&self) -> Vec<String>;
    /// Look a program up on PATH.
    fn which(&self, program: &str) -> Option<PathBuf>;
    /// Metadata of a path, `None` when it does not exist.
    fn file_info(&self, path: &Path) -> Option<FileInfo>;
    /// Text of a small file (`/proc/cpuinfo`), `None` when unreadable.
    fn read_file(&self, path: &Path) -> Option<String>;
    /// Run a read-only program with a short timeout. `Err` carries why it could not run at all
    /// (not found, timed out) in words fit for a check's reason.
    fn run<'a>(
        &'a self,
        program: &'a str,
        args: &'a [&'a str],
    ) -> BoxFuture<'a, Result<ProbeOutput, RunFailure>>;
}
