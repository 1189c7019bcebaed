//! The command line, declared with clap's derive API. Each subcommand's arguments live next to
//! its `exec` in `commands/`; this file only assembles them and the global options.

use clap::{CommandFactory, Parser, Subcommand};

use crate::commands;
use crate::context::Context;
pub use crate::context::Global;
use crate::error::Error;
pub use crate::ui::ColorChoice;

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
    Remote(commands::remote::Args),
    Watch(commands::watch::Args),
    Top(commands::top::Args),
    Logs(commands::logs::Args),
    Shell(commands::shell::Args),
    Forward(commands::forward::Args),
    Urls(commands::urls::Args),
    Restart(commands::restart::Args),
    Ui(commands::ui::Args),
    Completions(commands::completions::Args),
    #[command(name = "tunnel-supervisor", hide = true)]
    TunnelSupervisor(commands::tunnel::Args),
}

/// Run the chosen subcommand; the exit code is returned for commands whose result is not
/// simply success or error (doctor exits 1 when a check fails).
pub async fn dispatch(command: Command, ctx: &Context) -> Result<i32, Error> {
    use commands::*;
    match command {
        Command::Onboard(args) => onboard::exec(args, ctx).await,
        Command::Init(args) => init::exec(args, ctx).await,
        Command::Up(args) => up::exec(args, ctx).await,
        Command::Down(args) => down::exec(args, ctx).await,
        Command::Status(args) => status::exec(args, ctx).await,
        Command::Doctor(args) => doctor::exec(args, ctx).await,
        Command::Exports(args) => exports::exec(args, ctx).await,
        Command::Offload(args) => offload::exec(args, ctx).await,
        Command::Remote(args) => remote::exec(args, ctx).await,
        Command::Watch(args) => watch::exec(args, ctx).await,
        Command::Top(args) => top::exec(args, ctx).await,
        Command::Logs(args) => logs::exec(args, ctx).await,
        Command::Shell(args) => shell::exec(args, ctx).await,
        Command::Forward(args) => forward::exec(args, ctx).await,
        Command::Urls(args) => urls::exec(args, ctx).await,
        Command::Restart(args) => restart::exec(args, ctx).await,
        Command::Ui(args) => ui::exec(args, ctx).await,
        Command::Completions(args) => completions::exec(args, Cli::command()),
        Command::TunnelSupervisor(args) => tunnel::exec(args).await,
    }
}
