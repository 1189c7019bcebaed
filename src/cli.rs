//! The command line, declared with clap's derive API. Each subcommand's arguments live next to
//! its `exec` in `commands/`; this file only assembles them and the global options.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands;

const EXAMPLES: &str = concat!(
    "\
Examples:
  devenv init --example        Write devenv.toml and an example chart into this directory
  devenv doctor                Check this laptop: VM drivers, minikube, helm, kubectl
  devenv up --dry-run          Show every step `up` would take, touching nothing
  devenv exports apply         Export the source tree to the VM over NFS (/etc/exports)
  devenv top                   CPU, memory and restarts per service, live, with alerts
  devenv completions zsh > ~/.zfunc/_devenv

Docs: ",
    env!("CARGO_PKG_REPOSITORY"),
    "/tree/v",
    env!("CARGO_PKG_VERSION"),
    "/docs"
);

/// One command for the same local Kubernetes environment on every developer's laptop.
///
/// devenv runs the team's Helm chart in a minikube VM on a native hypervisor (KVM on Linux,
/// vfkit on macOS), with the source tree exported from the host over NFS, so it stays fast on a
/// laptop. It reads devenv.toml from the current directory or the nearest parent.
#[derive(Debug, Parser)]
#[command(name = "devenv", version, after_help = EXAMPLES, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct Global {
    /// Run as if started in DIR.
    #[arg(short = 'C', value_name = "DIR", global = true)]
    pub directory: Option<PathBuf>,
    /// Use this devenv.toml instead of searching for one.
    #[arg(long, value_name = "FILE", global = true, env = "DEVENV_CONFIG")]
    pub config: Option<PathBuf>,
    /// Say more (-v: each command run; -vv: everything).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Say only what went wrong.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// When to use colours (NO_COLOR in the environment means never).
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Onboard(commands::onboard::Args),
    Init(commands::init::Args),
    Up(commands::up::Args),
    Down(commands::down::Args),
    Status(commands::status::Args),
    Doctor(commands::doctor::Args),
    Exports(commands::exports::Args),
    Offload(commands::offload::Args),
    Watch(commands::watch::Args),
    Top(commands::top::Args),
    Completions(commands::completions::Args),
    #[command(name = "tunnel-supervisor", hide = true)]
    TunnelSupervisor(commands::tunnel::Args),
}
