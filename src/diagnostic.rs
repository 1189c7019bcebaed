//! One shape for every error devenv shows: a message (the `Display`), its causes (the `source`
//! chain), what to do next (`help`) and a stable code that names a section of
//! docs/troubleshooting.md. Each module keeps its own typed error and implements
//! [`Diagnostic`] for it; `main` prints the four parts and the executor keeps a failed stage's
//! parts apart in a [`Failure`], so nothing is ever glued into a string and split again.
//!
//! Codes are kebab-case words, never renumbered or reused: scripts and the docs rely on them.
//! Every code is declared once in [`codes`], with a one-line meaning; a test checks that each
//! has its section in the docs.

/// An error devenv can show a user.
pub trait Diagnostic: std::error::Error {
    /// The stable code: a section of docs/troubleshooting.md ([`url`]).
    fn code(&self) -> &'static str;

    /// The user's next step, when there is one to say.
    fn help(&self) -> Option<String> {
        None
    }
}

/// Where a code is explained.
pub fn url(code: &str) -> String {
    format!("{}#{code}", crate::docs::url("troubleshooting.md"))
}

/// A failure as it is reported: the parts of a [`Diagnostic`], taken apart once. A stage that
/// fails ends with one; `up` prints it with the stage's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
    /// The `source` chain, outermost first.
    pub causes: Vec<String>,
    pub help: Option<String>,
}

impl Failure {
    /// A failure that is not a module's error (a check of the executor's own).
    pub fn new(code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            causes: Vec::new(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Failure {
        self.help = Some(help.into());
        self
    }

    /// Put `more` before the help there is: what the caller knows about the likely causes.
    pub fn and_help(mut self, more: impl Into<String>) -> Failure {
        let more = more.into();
        self.help = Some(match self.help {
            Some(h) if !h.is_empty() => format!("{h}\n{more}"),
            _ => more,
        });
        self
    }

    /// The message, the causes each on a line, and the help: one block for a stage's line.
    pub fn render(&self) -> String {
        let mut out = self.message.clone();
        for cause in &self.causes {
            out.push_str(&format!("\n  caused by: {cause}"));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("\nhelp: {help}"));
        }
        out
    }
}

impl<E: Diagnostic + ?Sized> From<&E> for Failure {
    fn from(e: &E) -> Failure {
        let mut chain = Vec::new();
        let mut source = e.source();
        while let Some(cause) = source {
            chain.push(cause.to_string());
            source = cause.source();
        }
        let message = e.to_string();
        // A layer that only repeats what is said already (kube's `ApiError: X (Status {…})`
        // around the server's X, the server's X under a message quoting it) adds nothing but
        // noise to the screen.
        let causes = chain
            .iter()
            .enumerate()
            .filter(|(i, cause)| {
                let repeats_later = chain[i + 1..].iter().any(|l| cause.contains(l.as_str()));
                let said = message.contains(cause.as_str())
                    || cause
                        .rsplit_once(": ")
                        .is_some_and(|(head, _)| message.contains(head));
                !repeats_later && !said
            })
            .map(|(_, c)| c.clone())
            .collect();
        Failure {
            code: e.code(),
            message,
            causes,
            help: e.help(),
        }
    }
}

/// Declares every code once, with its meaning, and the list of all of them.
macro_rules! codes {
    ($($name:ident = $code:literal : $meaning:literal;)*) => {
        $(
            #[doc = $meaning]
            pub const $name: &str = $code;
        )*
        /// Every code with its meaning, in declaration order.
        pub const ALL: &[(&str, &str)] = &[$(($code, $meaning)),*];
    };
}

/// The codes, grouped by the module whose errors carry them.
pub mod codes {
    codes! {
        USAGE = "usage": "the command was used in a way it does not support";
        IO = "io": "a file devenv reads or writes could not be";
        STAGE_FAILED = "stage-failed": "a stage of a plan failed; the stage's own error follows";
        PREFLIGHT = "preflight": "a check before anything changed found what would stop the run";
        VM_ADDRESS = "vm-address": "the VM's address could not be read";
        MOUNT = "mount": "the VM could not mount the project over NFS";
        RELEASE = "release": "the Helm release is not deployed";
        INTERRUPTED = "interrupted": "the command was stopped by Ctrl-C or a signal";
        CONFIG_NOT_FOUND = "config-not-found": "no devenv.toml here or above";
        CONFIG_READ = "config-read": "devenv.toml exists but cannot be read";
        CONFIG_INVALID = "config-invalid": "devenv.toml has problems, each with its line and key";
        STATE_NO_HOME = "state-no-home": "no home directory to keep devenv's state in";
        STATE_IO = "state-io": "devenv's state directory cannot be read or written";
        STATE_CORRUPT = "state-corrupt": "a state file is damaged";
        STATE_LOCKED = "state-locked": "another devenv command works on this project";
        TOOL_MISSING = "tool-missing": "a program devenv runs is not installed";
        TOOL_START = "tool-start": "a program devenv runs could not be started";
        TOOL_FAILED = "tool-failed": "a program devenv runs exited with an error";
        TOOL_TIMEOUT = "tool-timeout": "a program devenv runs did not finish in its time";
        DRIVER_UNKNOWN = "driver-unknown": "vm.driver names no driver devenv knows";
        DRIVER_UNSUPPORTED = "driver-unsupported": "the driver does not run on this OS";
        DRIVER_REFUSED = "driver-refused": "a driver devenv will not use (VirtualBox)";
        DRIVER_NONE = "driver-none": "no driver is ready on this machine";
        CHART_MISSING = "chart-missing": "the chart directory has no Chart.yaml";
        CHART_READ = "chart-read": "a chart file cannot be read";
        CHART_YAML = "chart-yaml": "a chart file is not valid YAML";
        EXPORTS_IO = "exports-io": "the exports file cannot be read or written";
        EXPORTS_BLOCK = "exports-block": "devenv's block in the exports file is damaged";
        EXPORTS_CONFLICT = "exports-conflict": "another export overlaps the project's directory";
        EXPORTS_INVALID = "exports-invalid": "the NFS server would refuse the new exports file";
        EXPORTS_LOCKED = "exports-locked": "another devenv command is editing the exports file";
        EXPORTS_RELOAD = "exports-reload": "the NFS server did not reload the exports file";
        EXPORTS_RESTORE = "exports-restore": "a failed change could not be undone";
        EXPORTS_HELPER = "exports-helper": "the exports helper did not make the change";
        DOCKER_ENV = "docker-env": "the VM's Docker settings cannot be read";
        DOCKER_CLIENT = "docker-client": "the VM's Docker daemon cannot be reached";
        DOCKER_REQUEST = "docker-request": "the VM's Docker daemon refused a request";
        BUILD_CONTEXT = "build-context": "an image's build context cannot be read";
        BUILD_FAILED = "build-failed": "an image did not build";
        CLUSTER_CONNECT = "cluster-connect": "a cluster's API cannot be reached";
        CLUSTER_API = "cluster-api": "a cluster's API answered with an error";
        CLUSTER_STUCK = "cluster-stuck": "a pod cannot start by itself";
        CLUSTER_ROLLOUT = "cluster-rollout": "a workload did not roll out in time";
        CLUSTER_UNANSWERED = "cluster-unanswered": "a cluster's API took the connection and never answered";
        OFFLOAD_REMOTE = "offload-remote": "the remote cluster cannot be used";
        REMOTE_NOT_ALLOWED = "remote-not-allowed": "the remote context points at a cluster [remote] server does not allow";
        OFFLOAD_LOCAL = "offload-local": "the local cluster cannot take an offload's bridge";
        OFFLOAD_FOREIGN = "offload-foreign": "a Service devenv would replace is not devenv's";
        OFFLOAD_UNREACHABLE = "offload-unreachable": "an offloaded service does not answer";
        OFFLOAD_TERMINATING = "offload-terminating": "the remote namespace is still being deleted";
        OFFLOAD_IN_USE = "offload-in-use": "remote data is kept because services still run there";
        TUNNEL = "tunnel": "the tunnel to the remote cluster failed";
        WATCH = "watch": "the source tree cannot be watched";
        VERSION_REQUIRED = "version-required": "a tool's version is outside devenv.toml's [requires]";
        SERVICE_PODS = "service-pods": "a service has no pod to act on";
        POD_EXEC = "pod-exec": "a command could not be run in a service's container";
        HOSTS_FILE = "hosts-file": "the hosts file's managed block could not be written";
    }
}

impl Diagnostic for crate::probe::ProbeError {
    fn code(&self) -> &'static str {
        codes::MOUNT
    }

    fn help(&self) -> Option<String> {
        Some(
            "devenv checks the mount by writing a small file in the project's source tree: make it writable for you"
                .into(),
        )
    }
}

impl Diagnostic for crate::config::ConfigError {
    fn code(&self) -> &'static str {
        use crate::config::ConfigError::*;
        match self {
            NotFound { .. } => codes::CONFIG_NOT_FOUND,
            Read { .. } => codes::CONFIG_READ,
            Invalid { .. } => codes::CONFIG_INVALID,
        }
    }

    fn help(&self) -> Option<String> {
        crate::config::ConfigError::help(self)
    }
}

impl Diagnostic for crate::state::StateError {
    fn code(&self) -> &'static str {
        use crate::state::StateError::*;
        match self {
            NoHome => codes::STATE_NO_HOME,
            Io { .. } => codes::STATE_IO,
            Corrupt { .. } => codes::STATE_CORRUPT,
            Locked { .. } => codes::STATE_LOCKED,
        }
    }

    fn help(&self) -> Option<String> {
        crate::state::StateError::help(self)
    }
}

impl Diagnostic for crate::process::ProcessError {
    fn code(&self) -> &'static str {
        use crate::process::ProcessError::*;
        match self {
            NotFound { .. } => codes::TOOL_MISSING,
            Spawn { .. } => codes::TOOL_START,
            Exited { .. } => codes::TOOL_FAILED,
            TimedOut { .. } => codes::TOOL_TIMEOUT,
        }
    }

    fn help(&self) -> Option<String> {
        crate::process::ProcessError::help(self)
    }
}

impl Diagnostic for devenv_drivers::SelectError {
    fn code(&self) -> &'static str {
        use devenv_drivers::SelectError::*;
        match self {
            Unknown { .. } => codes::DRIVER_UNKNOWN,
            Unsupported { .. } => codes::DRIVER_UNSUPPORTED,
            Refused { .. } => codes::DRIVER_REFUSED,
            NoneHealthy { .. } => codes::DRIVER_NONE,
        }
    }

    fn help(&self) -> Option<String> {
        devenv_drivers::SelectError::help(self)
    }
}

impl Diagnostic for crate::chart::ChartError {
    fn code(&self) -> &'static str {
        use crate::chart::ChartError::*;
        match self {
            NoChart { .. } => codes::CHART_MISSING,
            Read { .. } => codes::CHART_READ,
            Yaml { .. } => codes::CHART_YAML,
        }
    }
}

impl Diagnostic for crate::nfs::apply::ApplyError {
    fn code(&self) -> &'static str {
        use crate::nfs::apply::ApplyError::*;
        match self {
            Io { .. } => codes::EXPORTS_IO,
            Parse { .. } => codes::EXPORTS_BLOCK,
            Conflict { .. } => codes::EXPORTS_CONFLICT,
            Invalid { .. } => codes::EXPORTS_INVALID,
            Locked { .. } => codes::EXPORTS_LOCKED,
            ReloadFailed { .. } | ReloadOwed { .. } => codes::EXPORTS_RELOAD,
            RestoreFailed { .. } => codes::EXPORTS_RESTORE,
            Helper { .. } | NoGrant => codes::EXPORTS_HELPER,
            Process(e) => e.code(),
        }
    }

    fn help(&self) -> Option<String> {
        crate::nfs::apply::ApplyError::help(self)
    }
}

impl Diagnostic for crate::docker::DockerError {
    fn code(&self) -> &'static str {
        use crate::docker::DockerError::*;
        match self {
            Env { .. } | Parse { .. } => codes::DOCKER_ENV,
            Client { .. } | Certificates { .. } | Unreachable { .. } => codes::DOCKER_CLIENT,
            Request { .. } => codes::DOCKER_REQUEST,
        }
    }

    fn help(&self) -> Option<String> {
        crate::docker::DockerError::help(self)
    }
}

impl Diagnostic for crate::offload::ValuesError {
    fn code(&self) -> &'static str {
        match self {
            crate::offload::ValuesError::Read { .. } => codes::CHART_READ,
            crate::offload::ValuesError::Yaml { .. } => codes::CHART_YAML,
        }
    }

    fn help(&self) -> Option<String> {
        Some(
            "the subchart's values come from the chart's values.yaml and the files of [project] values; fix the file named, then run the command again"
                .into(),
        )
    }
}

impl Diagnostic for crate::docker::build::BuildError {
    fn code(&self) -> &'static str {
        use crate::docker::build::BuildError::*;
        match self {
            Context(_) => codes::BUILD_CONTEXT,
            Docker(e) => e.code(),
            Failed { .. } => codes::BUILD_FAILED,
        }
    }

    fn help(&self) -> Option<String> {
        crate::docker::build::BuildError::help(self)
    }
}

impl Diagnostic for crate::cluster::ClusterError {
    fn code(&self) -> &'static str {
        use crate::cluster::ClusterError::*;
        match self {
            Connect { .. } => codes::CLUSTER_CONNECT,
            Api(_) => codes::CLUSTER_API,
            Stuck { .. } => codes::CLUSTER_STUCK,
            Failed { .. } | Timeout { .. } => codes::CLUSTER_ROLLOUT,
            Unanswered { .. } => codes::CLUSTER_UNANSWERED,
        }
    }

    fn help(&self) -> Option<String> {
        crate::cluster::ClusterError::help(self)
    }
}

impl Diagnostic for crate::workloads::WorkloadError {
    fn code(&self) -> &'static str {
        use crate::workloads::WorkloadError::*;
        match self {
            Unknown { .. } => codes::USAGE,
            Api { .. } => codes::CLUSTER_API,
            NoPods { .. }
            | NoSuchPod { .. }
            | NoneReady { .. }
            | NoService { .. }
            | NoController { .. } => codes::SERVICE_PODS,
            Restart { .. } => codes::CLUSTER_API,
        }
    }

    fn help(&self) -> Option<String> {
        crate::workloads::WorkloadError::help(self)
    }
}

impl Diagnostic for crate::hosts::HostsError {
    fn code(&self) -> &'static str {
        codes::HOSTS_FILE
    }

    fn help(&self) -> Option<String> {
        crate::hosts::HostsError::help(self)
    }
}

impl Diagnostic for crate::podexec::PodExecError {
    fn code(&self) -> &'static str {
        use crate::podexec::PodExecError::*;
        match self {
            Refused { .. } => codes::CLUSTER_API,
            CannotRun { .. } | Lost { .. } => codes::POD_EXEC,
        }
    }

    fn help(&self) -> Option<String> {
        crate::podexec::PodExecError::help(self)
    }
}

impl Diagnostic for crate::offload::OffloadError {
    fn code(&self) -> &'static str {
        use crate::offload::OffloadError::*;
        match self {
            Remote { .. } | NoRemoteService { .. } | Api { .. } => codes::OFFLOAD_REMOTE,
            Local { .. } => codes::OFFLOAD_LOCAL,
            Foreign { .. } => codes::OFFLOAD_FOREIGN,
            NoAddress { .. } | Unreachable { .. } => codes::OFFLOAD_UNREACHABLE,
            Tunnel(_) => codes::TUNNEL,
            StillTerminating { .. } => codes::OFFLOAD_TERMINATING,
        }
    }

    fn help(&self) -> Option<String> {
        crate::offload::OffloadError::help(self)
    }
}

impl Diagnostic for crate::offload::tunnel::TunnelError {
    fn code(&self) -> &'static str {
        codes::TUNNEL
    }

    fn help(&self) -> Option<String> {
        crate::offload::tunnel::TunnelError::help(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_unique_and_explained_in_its_own_section_of_the_docs() {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/troubleshooting.md"),
        )
        .unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for (code, _) in codes::ALL {
            assert!(seen.insert(code), "{code} is declared twice");
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{code}: kebab-case words only (they are URL anchors)"
            );
            assert!(
                docs.contains(&format!("\n### `{code}`\n")),
                "docs/troubleshooting.md has no `### `{code}`` section"
            );
        }
    }

    #[test]
    fn a_failure_keeps_the_message_causes_help_and_code_apart() {
        let e = crate::nfs::apply::ApplyError::Io {
            action: "replace",
            path: "/etc/exports".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        let f = Failure::from(&e);
        assert_eq!(f.code, codes::EXPORTS_IO);
        assert_eq!(f.message, "cannot replace /etc/exports");
        assert_eq!(f.causes.len(), 1);
        assert!(f.help.as_deref().unwrap().contains("disk is full"));
        assert_eq!(
            f.render().lines().next().unwrap(),
            "cannot replace /etc/exports"
        );
    }
}
