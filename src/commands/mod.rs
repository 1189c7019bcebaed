//! One module per subcommand, each with its clap `Args` and an `exec`.

pub mod change;
pub mod completions;
pub mod doctor;
pub mod down;
pub mod exports;
pub mod forward;
pub mod init;
pub mod logs;
pub mod offload;
pub mod onboard;
pub mod remote;
pub mod restart;
pub mod shell;
pub mod status;
pub mod top;
pub mod tunnel;
pub mod ui;
pub mod up;
pub mod urls;
pub mod watch;

use crate::context::Context;
use crate::error::Error;

/// Ask before a destructive change: `title`, then one line per step, then `Continue? [y/N]`.
/// Without a terminal it refuses (exit 2) and says to pass --yes; nothing has changed then.
pub fn confirm(ctx: &Context, title: &str, steps: &[String]) -> Result<(), Error> {
    if !ctx.interactive {
        return Err(Error::Usage {
            message: format!("{title} {}", steps.join(", ")),
            help: "nothing was changed; pass --yes to confirm without a terminal".into(),
        });
    }
    crate::errln!("{title}");
    for s in steps {
        crate::errln!("  - {s}");
    }
    crate::err!("Continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(Error::io("read", "the answer"))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::Usage {
            message: "cancelled".into(),
            help: "nothing was changed".into(),
        })
    }
}

/// The services `names` of the project (all when empty), each where it runs for this developer:
/// what `logs` and `shell` act on.
pub fn locate(
    ctx: &Context,
    loaded: &crate::config::Loaded,
    names: &[String],
) -> Result<Vec<crate::workloads::Located>, Error> {
    let c = &loaded.config;
    let state = ctx
        .state_dir()?
        .project(&c.project.name, &loaded.root)
        .load()?;
    Ok(crate::workloads::locate(loaded, &ctx.user, &state, names)?)
}
