//! The error `run()` returns: each module's typed error, plus what the user should do next.
//! `main` prints `error: <message>`, the causes, and a `help:` line.

use std::path::PathBuf;

use crate::chart::ChartError;
use crate::config::ConfigError;
use crate::docker::DockerError;
use crate::nfs::apply::ApplyError;
use crate::process::ProcessError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Driver(#[from] devenv_drivers::SelectError),
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error(transparent)]
    Exports(#[from] ApplyError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Cluster(Box<crate::cluster::ClusterError>),
    #[error(transparent)]
    Workload(#[from] crate::workloads::WorkloadError),
    #[error(transparent)]
    PodExec(#[from] crate::podexec::PodExecError),
    #[error(transparent)]
    Hosts(#[from] crate::hosts::HostsError),
    #[error("cannot {action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A run of stages failed or was interrupted; the message names the stage.
    #[error("{message}")]
    Failed {
        message: String,
        help: String,
        /// The exit code.
        code: i32,
        /// The diagnostic code ([`crate::diagnostic::codes`]).
        diagnostic: &'static str,
    },
    /// The command was used in a way it does not support; `help` says the right way.
    #[error("{message}")]
    Usage { message: String, help: String },
}

/// A cluster error is boxed: it is the largest, and every `Result` carries the size.
impl From<crate::cluster::ClusterError> for Error {
    fn from(e: crate::cluster::ClusterError) -> Error {
        Error::Cluster(Box::new(e))
    }
}

impl Error {
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    /// The user's next step, shown as `help:`.
    pub fn help(&self) -> Option<String> {
        match self {
            Error::Config(e) => e.help(),
            Error::State(e) => e.help(),
            Error::Process(e) => e.help(),
            Error::Driver(e) => e.help(),
            Error::Chart(_) => None,
            Error::Exports(e) => e.help(),
            Error::Docker(e) => e.help(),
            Error::Cluster(e) => e.help(),
            Error::Workload(e) => e.help(),
            Error::PodExec(e) => e.help(),
            Error::Hosts(e) => e.help(),
            Error::Io { .. } => None,
            Error::Usage { help, .. } | Error::Failed { help, .. } => Some(help.clone()),
        }
    }

    /// Exit code: 2 for a problem with what the user asked or wrote (usage, devenv.toml missing
    /// or invalid), 1 for everything that failed while doing it; 130 (interrupted) comes as a
    /// `Failed` code. The README's table lists them.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage { .. }
            | Error::Workload(crate::workloads::WorkloadError::Unknown { .. })
            | Error::Config(ConfigError::Invalid { .. } | ConfigError::NotFound { .. }) => 2,
            Error::Failed { code, .. } => *code,
            _ => 1,
        }
    }
}

impl crate::diagnostic::Diagnostic for Error {
    fn code(&self) -> &'static str {
        use crate::diagnostic::codes;
        match self {
            Error::Config(e) => e.code(),
            Error::State(e) => e.code(),
            Error::Process(e) => e.code(),
            Error::Driver(e) => e.code(),
            Error::Chart(e) => e.code(),
            Error::Exports(e) => e.code(),
            Error::Docker(e) => e.code(),
            Error::Cluster(e) => e.code(),
            Error::Workload(e) => e.code(),
            Error::PodExec(e) => e.code(),
            Error::Hosts(e) => e.code(),
            Error::Io { .. } => codes::IO,
            Error::Failed { diagnostic, .. } => diagnostic,
            Error::Usage { .. } => codes::USAGE,
        }
    }

    fn help(&self) -> Option<String> {
        Error::help(self)
    }
}
