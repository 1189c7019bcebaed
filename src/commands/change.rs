//! The one way a command changes the machine. The command builds a [`Plan`]; this module shows
//! it (`--dry-run`, as text or with `--json`), asks before the stages that destroy something
//! (unless `--yes`), and runs it through the [`Executor`] with the reporter the output options
//! choose (`--json` events, `-q`, progress bars on a terminal, plain lines otherwise). `up`,
//! `offload` and `down` all come through here, so the flags mean the same in each and are
//! tested once, on the path they share.

use std::sync::Arc;

use crate::context::Context;
use crate::diagnostic::{Failure, codes};
use crate::error::Error;
use crate::execute::Executor;
use crate::plan::Plan;
use crate::reconcile::{self, JsonReporter, Outcome, PlainReporter, Reporter, RunResult};

/// The flags every mutating command takes.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Flags {
    /// Print the plan (stages, commands, file edits) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Answer yes to the question the plan asks before it runs (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `--dry-run`: the plan on stdout (text, or JSON with `--json`), and every check known to
/// stop the run on stderr. The exit code is the run's: 1 when it would stop.
pub fn show(ctx: &Context, plan: &Plan) -> i32 {
    let stops = plan.known_failures(ctx.platform);
    if ctx.ui.json {
        let mut json = plan.to_json();
        json["would_stop"] = stops
            .iter()
            .map(|(stage, message)| serde_json::json!({"stage": stage, "error": message}))
            .collect();
        crate::outln!("{json}");
    } else {
        crate::out!("{}", plan.render());
    }
    for (stage, message) in &stops {
        crate::errln!("{}: {stage} would stop: {message}", ctx.ui.fail("error"));
    }
    if !stops.is_empty() {
        crate::errln!("  (all checks with their fixes: devenv doctor)");
    }
    if stops.is_empty() { 0 } else { 1 }
}

/// Before a run: what the plan destroys is listed and must be agreed to, on the terminal or
/// by `--yes`. Without a terminal and without `--yes` nothing runs.
pub fn confirm(ctx: &Context, plan: &Plan, flags: Flags, title: &str) -> Result<(), Error> {
    let destroys = plan.destroys();
    if destroys.is_empty() || flags.yes {
        return Ok(());
    }
    super::confirm(ctx, title, &destroys)
}

/// The reporter for the screen, as the output options ask.
pub fn screen(ctx: &Context) -> Arc<dyn Reporter> {
    if ctx.ui.json {
        Arc::new(JsonReporter)
    } else if ctx.ui.quiet {
        Arc::new(reconcile::QuietReporter)
    } else if ctx.ui.progress_bars() {
        Arc::new(crate::progress::TerminalReporter::new())
    } else {
        Arc::new(PlainReporter)
    }
}

/// Run the plan's stages, every event to each of `reporters`, until done or until `interrupt`
/// (Ctrl-C, SIGTERM, SIGHUP; listened for by the caller once it holds the project's lock)
/// cancels the running stages.
pub async fn run(
    plan: &Plan,
    executor: &Executor,
    reporters: Vec<Arc<dyn Reporter>>,
    mut interrupt: Option<crate::process::Interrupt>,
) -> RunResult {
    let reporter: Arc<dyn Reporter> = Arc::new(reconcile::Tee(reporters));
    let cancel = async move {
        match interrupt.as_mut() {
            Some(signal) => signal.recv().await,
            None => std::future::pending::<()>().await,
        }
    };
    reconcile::run(executor.stages(plan), reporter, cancel).await
}

/// The error of a run that did not finish: the first failed stage with its causes and help,
/// what the run changed, and `again` (how to go on from here).
pub fn failed(result: &RunResult, again: &str) -> Error {
    let cancelled = result.stages.iter().any(|(_, o)| *o == Outcome::Cancelled);
    let done: Vec<&str> = result
        .stages
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Done(r) if r.changed))
        .map(|(n, _)| n.as_str())
        .collect();
    let (message, stage_help, diagnostic) = if cancelled {
        ("interrupted".to_string(), String::new(), codes::INTERRUPTED)
    } else {
        match result.first_failure() {
            Some((stage, failure)) => {
                let mut message = format!("error at '{stage}': {}", failure.message);
                for cause in &failure.causes {
                    message.push_str(&format!("\n  caused by: {cause}"));
                }
                let help = failure.help.clone().unwrap_or_default();
                (message, help, failure.code)
            }
            None => (
                "a stage did not finish".to_string(),
                String::new(),
                codes::STAGE_FAILED,
            ),
        }
    };
    Error::Failed {
        message,
        help: format!(
            "{}{}{again}",
            if stage_help.is_empty() {
                String::new()
            } else {
                format!("{stage_help}\n")
            },
            if done.is_empty() {
                String::new()
            } else {
                format!("these stages made changes: {}; ", done.join(", "))
            }
        ),
        code: if cancelled { 130 } else { 1 },
        diagnostic,
    }
}

/// A stage that did not finish (its `by_hand` says how to do its work by hand), with its error:
/// none when it was skipped or cancelled.
pub struct Unfinished<'a> {
    pub stage: &'a crate::plan::Stage,
    pub failure: Option<&'a Failure>,
}

/// The stages of `plan` that did not finish in `result`, in the plan's order.
pub fn unfinished<'a>(plan: &'a Plan, result: &'a RunResult) -> Vec<Unfinished<'a>> {
    plan.stages
        .iter()
        .filter_map(|s| {
            let failure = match result.outcome(&s.name)? {
                Outcome::Done(_) => return None,
                Outcome::Failed(f) => Some(f),
                Outcome::Skipped { .. } | Outcome::Cancelled => None,
            };
            Some(Unfinished { stage: s, failure })
        })
        .collect()
}
