//! Onboarding's steps carried out: one plan through the executor every change uses, each step
//! a stage, each command announced before it runs, and on a failure what was done and what
//! was not.

use super::*;

/// Run the steps in order through the executor every change goes through: each step a stage
/// after the one before, each command announced before it runs (root ones as such, even with
/// `-q`). The first failure stops everything, and stderr says what was already done.
pub(super) async fn run_steps(steps: &[&Step], ctx: &Context) -> Result<(), Error> {
    let plan = executor_plan(steps);
    let reporter = Arc::new(StepReporter {
        ui: ctx.ui.clone(),
        titles: plan
            .stages
            .iter()
            .zip(steps)
            .enumerate()
            .map(|(i, (stage, step))| {
                let title = format!("[{}/{}] {}", i + 1, steps.len(), step.title);
                (stage.name.clone(), title)
            })
            .collect(),
        done: Default::default(),
    });
    let executor = crate::execute::Executor::new(
        ctx.runner.clone(),
        ctx.platform,
        "onboard",
        crate::nfs::Owner::current().uid,
    );
    let interrupt = crate::process::Interrupt::listen().ok();
    let result =
        crate::commands::change::run(&plan, &executor, vec![reporter.clone()], interrupt).await;
    if result.ok() {
        return Ok(());
    }
    let unfinished = crate::commands::change::unfinished(&plan, &result);
    let failed = unfinished
        .first()
        .map(|u| u.stage.name.as_str())
        .unwrap_or_default();
    let at = plan
        .stages
        .iter()
        .position(|s| s.name == failed)
        .unwrap_or(0);
    // The announced actions of the failed step ran, but for the last one: it failed.
    let announced = reporter
        .done
        .lock()
        .expect("reporter lock")
        .get(failed)
        .map_or(0, Vec::len);
    report_stop(steps, at, announced.saturating_sub(1));
    Err(match unfinished.first().and_then(|u| u.failure) {
        Some(f) => Error::Failed {
            message: f.message.clone(),
            help: f.help.clone().unwrap_or_default(),
            code: 1,
            diagnostic: f.code,
        },
        None => Error::Failed {
            message: "onboarding was interrupted".into(),
            help: String::new(),
            code: 130,
            diagnostic: crate::diagnostic::codes::INTERRUPTED,
        },
    })
}

/// The steps as the executor's plan: one stage per step, in order.
fn executor_plan(steps: &[&Step]) -> crate::plan::Plan {
    use crate::plan::{Action as Do, Stage, Verify};
    let mut stages: Vec<Stage> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let name = format!("{}.{}", i + 1, step.id);
        let after: Vec<&str> = stages.last().map(|s| s.name.as_str()).into_iter().collect();
        let actions = step
            .actions
            .iter()
            .map(|a| match a {
                Action::Run { argv, .. } => {
                    Do::Run(Cmd::new(&argv[0]).args(&argv[1..]).interactive())
                }
                // The user's own copy, read by a `sudo install` that follows.
                Action::Write { path, contents } => Do::Write {
                    path: path.clone(),
                    contents: contents.clone(),
                    mode: Some(0o644),
                },
                Action::Manual { shell } => Do::Verify(Verify::Unsupported(format!(
                    "this is for you to run: {shell}; then run `devenv onboard` again"
                ))),
            })
            .collect();
        let stage = Stage::new(&name, &after, actions);
        stages.push(stage);
    }
    crate::plan::Plan {
        project: String::new(),
        profile: String::new(),
        driver: String::new(),
        stages,
        title: Some("devenv onboard".into()),
    }
}

/// Onboarding's screen: each step's title as it starts, each command as it is about to run,
/// and, kept for the report of a failure, what each step announced.
struct StepReporter {
    ui: Ui,
    titles: BTreeMap<String, String>,
    done: std::sync::Mutex<BTreeMap<String, Vec<String>>>,
}

impl crate::reconcile::Reporter for StepReporter {
    fn event(&self, stage: &str, event: &crate::reconcile::Event) {
        use crate::reconcile::Event;
        match event {
            Event::Started => {
                self.ui.say("");
                self.ui.say(
                    self.ui
                        .bold(self.titles.get(stage).map_or(stage, String::as_str)),
                );
            }
            Event::Line(line) => {
                if let Some(cmd) = line.strip_prefix("$ ") {
                    if cmd.starts_with("sudo ") {
                        // Said even under --quiet: nothing runs as root unannounced.
                        crate::outln!("  as root (sudo): {cmd}");
                    } else {
                        self.ui.say(format!("  {line}"));
                    }
                } else if line.starts_with("writing ") {
                    self.ui.say(format!("  {line}"));
                } else {
                    return;
                }
                self.done
                    .lock()
                    .expect("reporter lock")
                    .entry(stage.to_string())
                    .or_default()
                    .push(line.clone());
            }
            Event::Finished { .. } => {}
        }
    }
}

/// Where onboarding stopped, what was already done and what was not, on stderr.
fn report_stop(steps: &[&Step], failed_step: usize, failed_action: usize) {
    let total = steps.len();
    let step = steps[failed_step];
    crate::errln!();
    crate::errln!(
        "onboarding stopped at step {} of {total} ({}).",
        failed_step + 1,
        step.title
    );
    let done_here = &step.actions[..failed_action];
    if failed_step == 0 && done_here.is_empty() {
        crate::errln!("nothing was done before it.");
    } else {
        crate::errln!("already done:");
        for (i, s) in steps[..failed_step].iter().enumerate() {
            crate::errln!("  {}. {}", i + 1, s.title);
        }
        for a in done_here {
            crate::errln!("  {}. (part of it) {}", failed_step + 1, a.display());
        }
    }
    let mut not_run = Vec::new();
    if failed_action + 1 < step.actions.len() {
        not_run.push(format!("the rest of step {}", failed_step + 1));
    }
    let rest: Vec<String> = (failed_step + 2..=total).map(|n| n.to_string()).collect();
    if !rest.is_empty() {
        not_run.push(format!("step{} {}", plural(rest.len()), rest.join(", ")));
    }
    if !not_run.is_empty() {
        crate::errln!("not run: {}", not_run.join(", "));
    }
    crate::errln!(
        "Fix the cause, then run `devenv onboard` again: it plans only what is still missing."
    );
}
