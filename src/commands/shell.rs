//! `devenv shell`: a shell, or any command, in a service's pod, wherever the service runs (the
//! laptop's cluster or, offloaded, the shared one).

use crate::context::Context;
use crate::error::Error;
use crate::workloads;

/// The command run when none is given: bash where the image has it, else sh. A fixed string,
/// never built from input.
const LOGIN: [&str; 3] = [
    "sh",
    "-c",
    "command -v bash >/dev/null 2>&1 && exec bash || exec sh",
];

/// Open a shell in a service's pod, or run a command there
///
/// Runs in the first ready pod of the service (`--pod` picks another), in its default
/// container (`--container` picks another): bash when the image has it, else sh, or the
/// command given after `--`. With a terminal, the remote side gets one too (keys, Ctrl-C and
/// window resizes go to it); without one, stdin is passed through when it is a pipe or a file.
/// devenv exits with the remote command's exit code.
///
///   devenv shell api
///   devenv shell postgres -- psql -U shop
///   devenv shell api -- sh -c 'exit 3'; echo $?    # 3
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The service (a [services.<name>] of devenv.toml).
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// The pod to use instead of the first ready one.
    #[arg(long, value_name = "POD")]
    pub pod: Option<String>,
    /// The container to use instead of the pod's default one.
    #[arg(long, short = 'c', value_name = "NAME")]
    pub container: Option<String>,
    /// The command and its arguments (default: bash, else sh).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let loaded = ctx.load_config()?;
    let located = super::locate(ctx, &loaded, std::slice::from_ref(&args.service))?;
    let at = &located[0];
    let client = crate::cluster::client(&at.context).await?;
    let pods = workloads::pods(client.clone(), at).await?;
    let pod = workloads::choose(at, &pods, args.pod.as_deref())?;
    let name = workloads::name(pod);
    let Some(container) = crate::podexec::container(pod, args.container.as_deref()) else {
        let all: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
            .collect();
        return Err(Error::Usage {
            message: format!(
                "{name} has no container {}",
                args.container.as_deref().unwrap_or_default()
            ),
            help: format!("its containers are: {}", all.join(", ")),
        });
    };
    let command: Vec<String> = if args.command.is_empty() {
        LOGIN.iter().map(|s| s.to_string()).collect()
    } else {
        args.command
    };
    Ok(crate::podexec::run(client, &at.namespace, name, &container, &command).await?)
}
