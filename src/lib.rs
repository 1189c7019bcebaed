//! devenv: the same local Kubernetes environment on every developer's laptop, with one command.
//!
//! `run()` parses the command line, gathers the [`context::Context`] and dispatches to one module
//! per subcommand under `commands/`. Everything that touches the outside world goes through a
//! small set of modules: [`process`] for programs, [`state`] for per-user files, [`machine`] for
//! what the VM drivers need to know about the host.

pub mod bundle;
pub mod chart;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod context;
pub mod diagnostic;
pub mod docker;
pub mod docs;
pub mod doctor;
pub mod error;
pub mod execute;
pub mod export;
pub mod forward;
pub mod fsutil;
pub mod helm;
pub mod hosts;
pub mod logs;
pub mod machine;
pub mod minikube;
pub mod names;
pub mod nfs;
pub mod offload;
pub mod output;
pub mod plan;
pub mod podexec;
pub mod probe;
pub mod process;
pub mod progress;
pub mod reconcile;
pub mod requires;
pub mod runlog;
pub mod state;
pub mod templates;
pub mod terminal;
pub mod ui;
pub mod unreadable;
pub mod urls;
pub mod watch;
pub mod workloads;

pub use error::Error;

use clap::Parser;

/// Parse the arguments and run the command. Returns the process exit code.
pub async fn run() -> Result<i32, Error> {
    let cli = cli::Cli::parse();
    init_tracing(&cli.global);
    let ctx = context::Context::from_env(&cli.global)?;
    cli::dispatch(cli.command, &ctx).await
}

/// `-v` shows each command devenv runs and what its libraries log, `-vv` everything; logs go to
/// stderr. Without `-v` nothing is logged: devenv says what matters in its own words, and a
/// library's log line (kube's `ERROR failed with status 500`) would only repeat an error devenv
/// reports itself, in the middle of a stage's output.
fn init_tracing(global: &cli::Global) {
    let level = match global.verbose {
        0 => return,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(global.color == cli::ColorChoice::Always)
        .try_init();
}
