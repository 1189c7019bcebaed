//! `devenv completions <shell>`: shell completion scripts from the clap definition.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::Error;

/// Print a shell completion script
///
/// bash: devenv completions bash > ~/.local/share/bash-completion/completions/devenv
/// zsh:  devenv completions zsh > "${fpath[1]}/_devenv"
/// fish: devenv completions fish > ~/.config/fish/completions/devenv.fish
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The shell to write completions for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn exec(args: Args) -> Result<i32, Error> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "devenv", &mut std::io::stdout());
    Ok(0)
}
