//! The one way devenv starts external programs (minikube, helm, kubectl, virsh, exportfs, sudo…).
//!
//! A [`Cmd`] says what to run, for how long at most, and whether it changes anything. A [`Runner`]
//! runs it: [`SystemRunner`] for real, [`DryRunRunner`] to print what would run while still
//! answering read-only probes. Commands that mutate are thus never executed by accident in a
//! dry run, and business logic never calls `std::process` or `tokio::process` itself.
//!
//! Errors keep "could not start" (not installed → the install command for this OS) apart from
//! "exited with N" (the command line and the last lines of stderr) and "timed out".

pub mod daemon;
mod install;
pub mod orphans;
mod quote;

pub use install::{Platform, detect_platform, install_hint};
pub use quote::{join, quote, ssh_command_line};

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use devenv_drivers::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};

/// How long a command may run when its builder does not say: long enough for `minikube start`
/// on a slow laptop, short enough that a hung tool does not hang devenv forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How many trailing stderr lines an "exited with N" error keeps.
const STDERR_TAIL_LINES: usize = 12;

/// A command to run.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: String,
    args: Vec<OsString>,
    env: Vec<(String, OsString)>,
    cwd: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    read_only: bool,
    interactive: bool,
}

impl Cmd {
    /// A command that may change something (the safe default: a dry run will not execute it).
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
            read_only: false,
            interactive: false,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.into(), value.as_ref().to_owned()));
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// What is written to the command's stdin, if anything.
    pub fn get_stdin(&self) -> Option<&[u8]> {
        self.stdin.as_deref()
    }

    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// Marks a probe that only reads: a dry run executes it for real to decide what would change.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Connects the program to devenv's own terminal (a password prompt); nothing is captured.
    pub fn interactive(mut self) -> Self {
        self.interactive = true;
        self
    }

    /// Whether the program gets devenv's terminal (see [`Cmd::interactive`]).
    pub fn is_interactive(&self) -> bool {
        self.interactive
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn get_timeout(&self) -> Duration {
        self.timeout
    }

    /// The command line as a user could paste it into a shell, every word quoted as needed.
    /// Environment variables set on the command come first (`KEY=value cmd …`).
    pub fn display(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", quote(&v.to_string_lossy())))
            .collect();
        let cmd =
            join(std::iter::once(self.program.as_str()).chain(args.iter().map(String::as_str)));
        if env.is_empty() {
            cmd
        } else {
            format!("{} {cmd}", env.join(" "))
        }
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

/// What a finished command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit code; `None` when the process was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Which stream a line came from, for [`Runner::output_streaming`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Receives each line of output as it arrives (for the progress UI).
pub type LineSink<'a> = &'a (dyn Fn(Stream, &str) + Send + Sync);

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program is not on PATH.
    #[error("`{program}` is not installed (not found on PATH)")]
    NotFound { program: String, install: String },
    /// The program exists but could not be started.
    #[error("could not start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// The program ran and failed.
    #[error("`{command}` {}", exit_description(*.code))]
    Exited {
        command: String,
        code: Option<i32>,
        /// The last lines of its stderr (or stdout when stderr was empty).
        tail: String,
    },
    /// The program ran past its time limit and was killed.
    #[error("`{command}` did not finish within {}s and was stopped", .after.as_secs())]
    TimedOut { command: String, after: Duration },
}

fn exit_description(code: Option<i32>) -> String {
    match code {
        Some(n) => format!("exited with status {n}"),
        None => "was killed by a signal".to_string(),
    }
}

impl ProcessError {
    /// The next step for the user.
    pub fn help(&self) -> Option<String> {
        match self {
            ProcessError::NotFound { install, .. } => Some(format!("install it: {install}")),
            ProcessError::Exited { tail, .. } if !tail.is_empty() => {
                Some(format!("its last output was:\n{tail}"))
            }
            ProcessError::TimedOut { command, .. } => {
                Some(format!("run `{command}` yourself to see where it hangs"))
            }
            _ => None,
        }
    }
}

/// Runs commands. Object-safe so the runner can be swapped (real, dry run, test recorder)
/// without touching the logic that builds the commands.
pub trait Runner: Send + Sync {
    /// Run `cmd` to completion and return its output whatever its exit code (probes such as
    /// `minikube status` report through the exit code). `sink` sees each line as it arrives.
    fn output_streaming<'a>(
        &'a self,
        cmd: &'a Cmd,
        sink: Option<LineSink<'a>>,
    ) -> BoxFuture<'a, Result<Output, ProcessError>>;

    /// Like [`Runner::output_streaming`] without a sink.
    fn output<'a>(&'a self, cmd: &'a Cmd) -> BoxFuture<'a, Result<Output, ProcessError>> {
        self.output_streaming(cmd, None)
    }

    /// Run `cmd` and turn a non-zero exit into [`ProcessError::Exited`].
    fn run<'a>(&'a self, cmd: &'a Cmd) -> BoxFuture<'a, Result<Output, ProcessError>> {
        Box::pin(async move {
            let out = self.output(cmd).await?;
            check_success(cmd, out)
        })
    }
}

/// Turn a failed [`Output`] into the error that names the command and its last stderr lines.
pub fn check_success(cmd: &Cmd, out: Output) -> Result<Output, ProcessError> {
    if out.success() {
        return Ok(out);
    }
    let text = if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    Err(ProcessError::Exited {
        command: cmd.display(),
        code: out.code,
        tail: tail_lines(text, STDERR_TAIL_LINES),
    })
}

/// The last `n` non-empty lines of `text`, carriage returns (from `minikube ssh`'s tty) removed.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs commands on this machine.
#[derive(Debug, Clone)]
pub struct SystemRunner {
    platform: Platform,
    /// Where running process groups are recorded, for a later devenv to stop them if this one
    /// is killed (see [`orphans`]).
    groups: Option<orphans::Registry>,
}

/// The process group of a running child (its pid, as it leads the group). Dropped before the
/// child ended by itself — a cancelled stage, a timeout — it kills the whole group. Its record
/// (if any) goes with it.
struct ProcessGroup {
    pgid: Option<u32>,
    /// Dropped after the group is killed (fields drop after `drop`).
    _record: Option<orphans::Record>,
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill has no memory effects; a negative pid names the child's own group,
            // which it leads (process_group(0)), never devenv's.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// SIGINT (Ctrl-C), SIGTERM (`kill`, a system shutdown) and SIGHUP (the terminal closed): each
/// the same request to stop cleanly, so a long command ends its stages and children the same way
/// whichever it gets.
pub struct Interrupt {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Interrupt {
    /// Start catching the three signals (from now on they no longer kill the process).
    pub fn listen() -> std::io::Result<Interrupt> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Interrupt {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Wait for the next of them.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

impl SystemRunner {
    pub fn new(platform: Platform) -> Self {
        SystemRunner {
            platform,
            groups: None,
        }
    }

    /// Record running groups in `registry`, and first stop those a killed devenv left.
    pub fn with_orphan_registry(mut self, registry: orphans::Registry) -> Self {
        let stopped = registry.reap();
        if stopped > 0 {
            tracing::info!(
                stopped,
                "stopped process groups a killed devenv left running"
            );
        }
        self.groups = Some(registry);
        self
    }

    /// Where `program` would be found, honouring a `PATH` set on the command.
    fn resolve(&self, cmd: &Cmd) -> Result<PathBuf, ProcessError> {
        let path_override = cmd.env.iter().rev().find(|(k, _)| k == "PATH");
        let found = match path_override {
            Some((_, path)) => {
                let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
                which::which_in(&cmd.program, Some(path), cwd)
            }
            None => which::which(&cmd.program),
        };
        found.map_err(|_| ProcessError::NotFound {
            program: cmd.program.clone(),
            install: install_hint(&cmd.program, self.platform),
        })
    }
}

impl Runner for SystemRunner {
    fn output_streaming<'a>(
        &'a self,
        cmd: &'a Cmd,
        sink: Option<LineSink<'a>>,
    ) -> BoxFuture<'a, Result<Output, ProcessError>> {
        Box::pin(async move {
            let program = self.resolve(cmd)?;
            let started = Instant::now();
            let mut command = tokio::process::Command::new(&program);
            command.args(&cmd.args);
            if cmd.interactive {
                let status = command
                    .status()
                    .await
                    .map_err(|source| ProcessError::Spawn {
                        command: cmd.display(),
                        source,
                    })?;
                return Ok(Output {
                    code: status.code(),
                    elapsed: started.elapsed(),
                    ..Output::default()
                });
            }
            // Its own process group, so a cancel or a timeout stops what it started too
            // (`minikube start` runs the driver and ssh; helm its plugins), not only itself.
            // Interactive commands (above) keep the terminal's group: they may ask for a
            // password on it.
            command.process_group(0);
            #[cfg(target_os = "linux")]
            // SAFETY: the closure runs in the forked child before exec and only calls prctl,
            // which is async-signal-safe.
            unsafe {
                command.pre_exec(|| {
                    // SIGKILL of devenv cannot be caught to stop the group: the kernel then
                    // kills the child itself. (It fires when the spawning thread ends; the
                    // runtime spawns from its one thread, which lives as long as devenv.)
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            command
                .stdin(if cmd.stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            for (k, v) in &cmd.env {
                command.env(k, v);
            }
            if let Some(dir) = &cmd.cwd {
                command.current_dir(dir);
            }
            tracing::debug!(command = %cmd.display(), "running");
            let mut child = command.spawn().map_err(|source| ProcessError::Spawn {
                command: cmd.display(),
                source,
            })?;
            let record = child
                .id()
                .and_then(|pgid| self.groups.as_ref()?.record(pgid));
            let mut group = ProcessGroup {
                pgid: child.id(),
                _record: record,
            };
            if let (Some(data), Some(mut stdin)) = (cmd.stdin.clone(), child.stdin.take()) {
                tokio::spawn(async move {
                    // A child that exits without reading its input is not an error here; its
                    // exit status says what happened.
                    let _ = stdin.write_all(&data).await;
                });
            }
            let stdout = child.stdout.take().expect("stdout is piped");
            let stderr = child.stderr.take().expect("stderr is piped");
            let work = async {
                let (out, err, status) = tokio::join!(
                    collect_lines(stdout, Stream::Stdout, sink),
                    collect_lines(stderr, Stream::Stderr, sink),
                    child.wait()
                );
                (out, err, status)
            };
            match tokio::time::timeout(cmd.timeout, work).await {
                Ok((stdout, stderr, status)) => {
                    // It ended by itself: what it left running in its group was meant to stay.
                    group.pgid = None;
                    let status = status.map_err(|source| ProcessError::Spawn {
                        command: cmd.display(),
                        source,
                    })?;
                    let out = Output {
                        code: status.code(),
                        stdout,
                        stderr,
                        elapsed: started.elapsed(),
                    };
                    tracing::debug!(command = %cmd.display(), code = ?out.code, elapsed = ?out.elapsed, "finished");
                    Ok(out)
                }
                Err(_) => {
                    // Kill the whole group now, so the error is only reported once all of it
                    // is gone.
                    drop(group);
                    let _ = child.kill().await;
                    Err(ProcessError::TimedOut {
                        command: cmd.display(),
                        after: cmd.timeout,
                    })
                }
            }
        })
    }
}

async fn collect_lines(
    reader: impl AsyncRead + Unpin,
    stream: Stream,
    sink: Option<LineSink<'_>>,
) -> String {
    let mut reader = BufReader::new(reader);
    let mut all = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if let Some(sink) = sink {
                    let text = String::from_utf8_lossy(&line);
                    sink(stream, text.trim_end_matches(['\n', '\r']));
                }
                all.extend_from_slice(&line);
            }
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// Prints commands that would change something instead of running them; read-only probes still
/// run through the inner runner so the dry run can tell what would change.
pub struct DryRunRunner {
    inner: Arc<dyn Runner>,
    skipped: Mutex<Vec<String>>,
    print: bool,
}

impl DryRunRunner {
    /// `print`: write each skipped command to stdout as `would run: …` as it happens.
    pub fn new(inner: Arc<dyn Runner>, print: bool) -> Self {
        DryRunRunner {
            inner,
            skipped: Mutex::new(Vec::new()),
            print,
        }
    }

    /// Every mutating command that was not run, in order.
    pub fn skipped(&self) -> Vec<String> {
        self.skipped.lock().expect("lock poisoned").clone()
    }
}

impl Runner for DryRunRunner {
    fn output_streaming<'a>(
        &'a self,
        cmd: &'a Cmd,
        sink: Option<LineSink<'a>>,
    ) -> BoxFuture<'a, Result<Output, ProcessError>> {
        if cmd.is_read_only() {
            return self.inner.output_streaming(cmd, sink);
        }
        let line = cmd.display();
        if self.print {
            crate::outln!("would run: {line}");
        }
        self.skipped.lock().expect("lock poisoned").push(line);
        Box::pin(async {
            Ok(Output {
                code: Some(0),
                ..Output::default()
            })
        })
    }
}

/// The absolute form of `path` for messages, without touching the file system.
pub fn display_path(path: &Path) -> String {
    path.display().to_string()
}
