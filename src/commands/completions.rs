//! `devenv completions <shell>`: shell completion scripts from the clap definition.

use clap_complete::Shell;

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

/// `cmd` is devenv's whole command line, which the caller assembles.
pub fn exec(args: Args, mut cmd: clap::Command) -> Result<i32, Error> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "devenv", &mut script);
    let script = String::from_utf8_lossy(&script);
    crate::out!("{}", with_service_names(args.shell, &script));
    Ok(0)
}

/// The services of the project at hand are only known when completing, so the generated script
/// is given a hook that asks devenv (which reads the nearest devenv.toml) for the service
/// argument: `devenv offload --complete-names` for `offload` (only the services that can be
/// offloaded), `devenv logs --complete-names` for `logs`, `shell`, `forward`, `urls` and `restart` (all of them).
/// Shells without a hook here complete the rest as generated.
fn with_service_names(shell: Shell, script: &str) -> String {
    const OFFLOADABLE: &str = "devenv offload --complete-names 2>/dev/null";
    const ALL: &str = "devenv logs --complete-names 2>/dev/null";
    match shell {
        Shell::Bash => format!(
            r#"{script}
_devenv_with_services() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" w ask=""
    for w in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
        case "$w" in
            offload) ask=offload ;;
            logs|shell|forward|urls|restart) ask=all ;;
        esac
    done
    if [[ -n $ask && "$cur" != -* ]]; then
        if [[ $ask == offload ]]; then
            COMPREPLY=( $(compgen -W "$({OFFLOADABLE})" -- "$cur") )
        else
            COMPREPLY=( $(compgen -W "$({ALL})" -- "$cur") )
        fi
        return 0
    fi
    _devenv "$@"
}}
complete -F _devenv_with_services -o nosort -o bashdefault -o default devenv
"#
        ),
        Shell::Zsh => {
            let hooked = script
                .replace(
                    "of devenv.toml with a host and a values_key):_default' \\",
                    "of devenv.toml with a host and a values_key):_devenv_services' \\",
                )
                .replace(
                    "Services of devenv.toml (default\\: all):_default' \\",
                    "Services of devenv.toml (default\\: all):_devenv_all_services' \\",
                )
                .replace(
                    "Services of devenv.toml:_default' \\",
                    "Services of devenv.toml:_devenv_all_services' \\",
                )
                .replace(
                    "The service (a \\[services.<name>\\] of devenv.toml):_default' \\",
                    "The service (a \\[services.<name>\\] of devenv.toml):_devenv_all_services' \\",
                );
            let define = format!(
                "_devenv_services() {{\n    local -a names\n    names=(${{(f)\"$({OFFLOADABLE})\"}})\n    compadd -a names\n}}\n\n\
                 _devenv_all_services() {{\n    local -a names\n    names=(${{(f)\"$({ALL})\"}})\n    compadd -a names\n}}\n\n"
            );
            match hooked.rfind("if [ \"$funcstack[1]\" = \"_devenv\" ]") {
                Some(at) => format!("{}{define}{}", &hooked[..at], &hooked[at..]),
                None => format!("{hooked}\n{define}"),
            }
        }
        Shell::Fish => format!(
            "{script}complete -c devenv -n \"__fish_seen_subcommand_from offload\" -f -a \"({OFFLOADABLE})\"\n\
             complete -c devenv -n \"__fish_seen_subcommand_from logs shell forward urls restart\" -f -a \"({ALL})\"\n"
        ),
        _ => script.to_string(),
    }
}
