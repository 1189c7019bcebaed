//! One module per subcommand, each with its clap `Args` and an `exec`.

pub mod completions;
pub mod doctor;
pub mod down;
pub mod exports;
pub mod init;
pub mod offload;
pub mod onboard;
pub mod status;
pub mod top;
pub mod tunnel;
pub mod up;
pub mod watch;

use crate::cli::Command;
use crate::context::Context;
use crate::error::Error;

/// Run the chosen subcommand; the exit code is returned for commands whose result is not
/// simply success or error (doctor exits 1 when a check fails).
pub async fn dispatch(command: Command, ctx: &Context) -> Result<i32, Error> {
    match command {
        Command::Onboard(args) => onboard::exec(args, ctx).await,
        Command::Init(args) => init::exec(args, ctx),
        Command::Up(args) => up::exec(args, ctx).await,
        Command::Down(args) => down::exec(args, ctx).await,
        Command::Status(args) => status::exec(args, ctx).await,
        Command::Doctor(args) => doctor::exec(args, ctx).await,
        Command::Exports(args) => exports::exec(args, ctx).await,
        Command::Offload(args) => offload::exec(args, ctx).await,
        Command::Watch(args) => watch::exec(args, ctx).await,
        Command::Top(args) => top::exec(args, ctx).await,
        Command::Completions(args) => completions::exec(args),
        Command::TunnelSupervisor(args) => tunnel::exec(args).await,
    }
}
