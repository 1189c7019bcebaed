//! The reconcile engine: runs named stages once their dependencies have finished, independent
//! stages concurrently on the current task, and reports every event to a [`Reporter`] (an
//! indicatif line per running stage on a terminal, one plain line per event otherwise, JSON
//! lines with `--json`).
//!
//! A failed stage stops only what depends on it; the others finish, so one run reports every
//! problem it can reach. Cancelling (Ctrl-C) drops the running stages' futures, which kills
//! their child processes (the runner sets kill-on-drop), and reports them as cancelled.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use devenv_drivers::BoxFuture;

use crate::diagnostic::Failure;

/// What a stage made happen that the caller keeps track of: `up` folds these into the
/// developer's state once the run is over, instead of guessing from stage names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The image of `service` was built from the context whose hash is `hash`.
    ImageBuilt { service: String, hash: String },
    /// Something the stage was to remove is left, and the run went on: `why` it is left.
    Left { what: String, why: String },
}

/// What a stage reports when it succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Whether the stage changed anything (false: it found everything in place).
    pub changed: bool,
    /// One line saying what it did or found.
    pub summary: String,
    /// What it did that the caller records.
    pub effects: Vec<Effect>,
}

impl Report {
    pub fn changed(summary: impl Into<String>) -> Report {
        Report {
            changed: true,
            summary: summary.into(),
            effects: Vec::new(),
        }
    }

    pub fn unchanged(summary: impl Into<String>) -> Report {
        Report {
            changed: false,
            summary: summary.into(),
            effects: Vec::new(),
        }
    }
}

/// How a stage ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(Report),
    /// The stage failed, with its error's parts kept apart.
    Failed(Failure),
    /// Not run because a stage it depends on did not finish.
    Skipped {
        because: String,
    },
    /// Stopped by the user.
    Cancelled,
}

/// One event of a run, as reporters see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started,
    /// The latest line of output of the tool the stage runs.
    Line(String),
    Finished {
        outcome: Outcome,
        elapsed: Duration,
    },
}

/// Receives events; implementations must be cheap, they run on the engine's task.
pub trait Reporter: Send + Sync {
    fn event(&self, stage: &str, event: &Event);
}

/// What a running stage may use to report progress.
#[derive(Clone)]
pub struct Progress {
    stage: String,
    reporter: Arc<dyn Reporter>,
}

impl Progress {
    pub fn line(&self, text: &str) {
        let text = text.trim();
        if !text.is_empty() {
            self.reporter
                .event(&self.stage, &Event::Line(text.to_string()));
        }
    }
}

type Work<'a> = Box<dyn FnOnce(Progress) -> BoxFuture<'a, Result<Report, Failure>> + Send + 'a>;

/// A named stage and the stages it waits for.
pub struct Stage<'a> {
    pub name: String,
    pub after: Vec<String>,
    work: Work<'a>,
}

impl<'a> Stage<'a> {
    pub fn new<F>(name: impl Into<String>, after: &[&str], work: F) -> Stage<'a>
    where
        F: FnOnce(Progress) -> BoxFuture<'a, Result<Report, Failure>> + Send + 'a,
    {
        Stage {
            name: name.into(),
            after: after.iter().map(|s| s.to_string()).collect(),
            work: Box::new(work),
        }
    }
}

/// The result of a run, stage by stage in the order they finished.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub stages: Vec<(String, Outcome)>,
    pub elapsed: Duration,
}

impl RunResult {
    pub fn ok(&self) -> bool {
        self.stages
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Done(_)))
    }

    /// The effects of every stage that finished, in stage order.
    pub fn effects(&self) -> impl Iterator<Item = &Effect> {
        self.stages.iter().flat_map(|(_, o)| match o {
            Outcome::Done(r) => r.effects.as_slice(),
            _ => &[],
        })
    }

    pub fn outcome(&self, stage: &str) -> Option<&Outcome> {
        self.stages.iter().find(|(n, _)| n == stage).map(|(_, o)| o)
    }

    /// The first failure and the stage it ended.
    pub fn first_failure(&self) -> Option<(&str, &Failure)> {
        self.stages.iter().find_map(|(n, o)| match o {
            Outcome::Failed(e) => Some((n.as_str(), e)),
            _ => None,
        })
    }
}

/// Run `stages`, each once all of its `after` stages are done, until all have ended or
/// `cancel` completes. Stage names must be unique and dependencies must name earlier stages.
pub async fn run<'a>(
    stages: Vec<Stage<'a>>,
    reporter: Arc<dyn Reporter>,
    cancel: impl Future<Output = ()>,
) -> RunResult {
    let started = Instant::now();
    let names: BTreeSet<String> = stages.iter().map(|s| s.name.clone()).collect();
    for s in &stages {
        for dep in &s.after {
            assert!(
                names.contains(dep),
                "stage {} waits for unknown {dep}",
                s.name
            );
        }
    }
    let mut waiting: Vec<Stage<'a>> = stages;
    let mut results: Vec<(String, Outcome)> = Vec::new();
    let mut finished: BTreeMap<String, bool> = BTreeMap::new();
    type Running<'a> =
        Pin<Box<dyn Future<Output = (String, Instant, Result<Report, Failure>)> + Send + 'a>>;
    let mut running: Vec<Running<'a>> = Vec::new();
    let mut running_names: Vec<String> = Vec::new();
    let mut cancel = std::pin::pin!(cancel);

    loop {
        // Skip what can no longer run, start what is ready.
        let mut i = 0;
        while i < waiting.len() {
            let failed_dep = waiting[i]
                .after
                .iter()
                .find(|d| finished.get(*d) == Some(&false))
                .cloned();
            if let Some(dep) = failed_dep {
                let s = waiting.remove(i);
                let outcome = Outcome::Skipped {
                    because: format!("{dep} did not finish"),
                };
                reporter.event(
                    &s.name,
                    &Event::Finished {
                        outcome: outcome.clone(),
                        elapsed: Duration::ZERO,
                    },
                );
                finished.insert(s.name.clone(), false);
                results.push((s.name, outcome));
                i = 0;
                continue;
            }
            if waiting[i]
                .after
                .iter()
                .all(|d| finished.get(d) == Some(&true))
            {
                let s = waiting.remove(i);
                reporter.event(&s.name, &Event::Started);
                let progress = Progress {
                    stage: s.name.clone(),
                    reporter: reporter.clone(),
                };
                let name = s.name.clone();
                let fut = (s.work)(progress);
                let begun = Instant::now();
                running_names.push(name.clone());
                running.push(Box::pin(async move { (name, begun, fut.await) }));
                continue;
            }
            i += 1;
        }
        if running.is_empty() {
            // Anything left waits for something that never ran (only possible with a cycle).
            for s in waiting.drain(..) {
                let outcome = Outcome::Skipped {
                    because: "its dependencies never finished".into(),
                };
                reporter.event(
                    &s.name,
                    &Event::Finished {
                        outcome: outcome.clone(),
                        elapsed: Duration::ZERO,
                    },
                );
                results.push((s.name, outcome));
            }
            break;
        }
        let next = std::future::poll_fn(|cx| {
            if cancel.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            for (idx, fut) in running.iter_mut().enumerate() {
                if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                    return Poll::Ready(Some((idx, out)));
                }
            }
            Poll::Pending
        })
        .await;
        match next {
            Some((idx, (name, begun, result))) => {
                drop(running.remove(idx));
                running_names.remove(idx);
                let ok = result.is_ok();
                let outcome = match result {
                    Ok(report) => Outcome::Done(report),
                    Err(e) => Outcome::Failed(e),
                };
                reporter.event(
                    &name,
                    &Event::Finished {
                        outcome: outcome.clone(),
                        elapsed: begun.elapsed(),
                    },
                );
                finished.insert(name.clone(), ok);
                results.push((name, outcome));
            }
            None => {
                // Dropping the futures kills their child processes.
                running.clear();
                for name in running_names
                    .drain(..)
                    .chain(waiting.drain(..).map(|s| s.name))
                {
                    reporter.event(
                        &name,
                        &Event::Finished {
                            outcome: Outcome::Cancelled,
                            elapsed: Duration::ZERO,
                        },
                    );
                    results.push((name, Outcome::Cancelled));
                }
                break;
            }
        }
    }
    RunResult {
        stages: results,
        elapsed: started.elapsed(),
    }
}

/// Collects events in memory (tests, and the summary of a run).
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<(String, Event)>>,
}

impl Reporter for Recorder {
    fn event(&self, stage: &str, event: &Event) {
        self.events
            .lock()
            .expect("recorder lock")
            .push((stage.to_string(), event.clone()));
    }
}

/// One plain line per event, for logs and pipes.
pub struct PlainReporter;

/// `-q`: stage events are not shown; a failure still ends the command with its error.
pub struct QuietReporter;

impl Reporter for QuietReporter {
    fn event(&self, _stage: &str, _event: &Event) {}
}

impl Reporter for PlainReporter {
    fn event(&self, stage: &str, event: &Event) {
        match event {
            Event::Started => crate::outln!("{stage}: started"),
            Event::Line(l) => crate::outln!("{stage}: {l}"),
            Event::Finished { outcome, elapsed } => {
                let secs = elapsed.as_secs_f64();
                match outcome {
                    Outcome::Done(r) => crate::outln!(
                        "{stage}: {} ({secs:.1}s)",
                        if r.summary.is_empty() {
                            "done"
                        } else {
                            &r.summary
                        }
                    ),
                    Outcome::Failed(e) => {
                        crate::outln!("{stage}: failed ({secs:.1}s): {}", e.render())
                    }
                    Outcome::Skipped { because } => crate::outln!("{stage}: skipped: {because}"),
                    Outcome::Cancelled => crate::outln!("{stage}: cancelled"),
                }
            }
        }
    }
}

/// JSON lines: `{"stage": …, "event": "started" | "line" | "done" | "failed" | "skipped" | "cancelled", …}`.
pub struct JsonReporter;

/// One event as the JSON line `--json` prints and the run log keeps.
pub fn event_json(stage: &str, event: &Event) -> serde_json::Value {
    match event {
        Event::Started => serde_json::json!({"stage": stage, "event": "started"}),
        Event::Line(l) => serde_json::json!({"stage": stage, "event": "line", "line": l}),
        Event::Finished { outcome, elapsed } => {
            let ms = elapsed.as_millis() as u64;
            match outcome {
                Outcome::Done(r) => {
                    serde_json::json!({"stage": stage, "event": "done", "changed": r.changed, "summary": r.summary, "elapsed_ms": ms})
                }
                Outcome::Failed(e) => {
                    serde_json::json!({"stage": stage, "event": "failed", "error": e.message, "causes": e.causes, "help": e.help, "code": e.code, "elapsed_ms": ms})
                }
                Outcome::Skipped { because } => {
                    serde_json::json!({"stage": stage, "event": "skipped", "because": because})
                }
                Outcome::Cancelled => serde_json::json!({"stage": stage, "event": "cancelled"}),
            }
        }
    }
}

impl Reporter for JsonReporter {
    fn event(&self, stage: &str, event: &Event) {
        crate::outln!("{}", event_json(stage, event));
    }
}

/// Every event to each of the reporters, in order: the screen and the run log.
pub struct Tee(pub Vec<Arc<dyn Reporter>>);

impl Reporter for Tee {
    fn event(&self, stage: &str, event: &Event) {
        for r in &self.0 {
            r.event(stage, event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn sleeper<'a>(name: &str, after: &[&str], ms: u64, log: Arc<Mutex<Vec<String>>>) -> Stage<'a> {
        let n = name.to_string();
        Stage::new(name, after, move |_| {
            Box::pin(async move {
                log.lock().unwrap().push(format!("start {n}"));
                tokio::time::sleep(Duration::from_millis(ms)).await;
                log.lock().unwrap().push(format!("end {n}"));
                Ok(Report::changed(n))
            })
        })
    }

    #[test]
    fn independent_stages_run_concurrently_and_dependents_wait() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stages = vec![
            sleeper("preflight", &[], 1, log.clone()),
            sleeper("vm", &["preflight"], 60, log.clone()),
            sleeper("remote", &["preflight"], 10, log.clone()),
            sleeper("release", &["vm", "remote"], 1, log.clone()),
        ];
        let result = block_on(run(
            stages,
            Arc::new(Recorder::default()),
            std::future::pending(),
        ));
        assert!(result.ok());
        let log = log.lock().unwrap().clone();
        let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
        assert!(pos("start remote") < pos("end vm"), "{log:?}");
        assert!(pos("start vm") < pos("end remote"), "{log:?}");
        assert!(pos("start release") > pos("end vm"), "{log:?}");
        assert!(pos("start release") > pos("end remote"), "{log:?}");
    }

    #[test]
    fn the_effects_of_finished_stages_reach_the_caller_and_a_failed_stages_do_not() {
        let built = |service: &str| Effect::ImageBuilt {
            service: service.into(),
            hash: format!("{service}-hash"),
        };
        let (api, worker) = (built("api"), built("worker"));
        let stages = vec![
            Stage::new("images", &[], move |_| {
                let api = api.clone();
                Box::pin(async move {
                    let mut r = Report::changed("built api");
                    r.effects.push(api);
                    Ok(r)
                })
            }),
            Stage::new("more-images", &[], move |_| {
                let _never_recorded = worker.clone();
                Box::pin(async {
                    Err(Failure::new(
                        crate::diagnostic::codes::TOOL_FAILED,
                        "the build failed",
                    ))
                })
            }),
        ];
        let result = block_on(run(
            stages,
            Arc::new(Recorder::default()),
            std::future::pending(),
        ));
        let effects: Vec<&Effect> = result.effects().collect();
        assert_eq!(effects, [&built("api")]);
    }

    #[test]
    fn a_failure_skips_only_its_dependents() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stages = vec![
            Stage::new("vm", &[], |_| {
                Box::pin(async {
                    Err(Failure::new(
                        crate::diagnostic::codes::TOOL_FAILED,
                        "minikube exited with status 80",
                    ))
                })
            }),
            sleeper("remote", &[], 5, log.clone()),
            sleeper("mount", &["vm"], 1, log.clone()),
            sleeper("release", &["mount", "remote"], 1, log.clone()),
        ];
        let result = block_on(run(
            stages,
            Arc::new(Recorder::default()),
            std::future::pending(),
        ));
        assert!(!result.ok());
        assert!(matches!(result.outcome("remote"), Some(Outcome::Done(_))));
        assert!(matches!(
            result.outcome("mount"),
            Some(Outcome::Skipped { .. })
        ));
        assert!(matches!(
            result.outcome("release"),
            Some(Outcome::Skipped { .. })
        ));
        let (stage, failure) = result.first_failure().unwrap();
        assert_eq!(stage, "vm");
        assert_eq!(failure.message, "minikube exited with status 80");
    }

    #[test]
    fn cancelling_stops_running_stages_and_reports_them() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stages = vec![
            sleeper("quick", &[], 1, log.clone()),
            sleeper("slow", &["quick"], 10_000, log.clone()),
            sleeper("after", &["slow"], 1, log.clone()),
        ];
        let started = Instant::now();
        let result = block_on(run(stages, Arc::new(Recorder::default()), async {
            tokio::time::sleep(Duration::from_millis(50)).await
        }));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(result.outcome("quick"), Some(Outcome::Done(_))));
        assert_eq!(result.outcome("slow"), Some(&Outcome::Cancelled));
        assert_eq!(result.outcome("after"), Some(&Outcome::Cancelled));
        assert!(!log.lock().unwrap().contains(&"end slow".to_string()));
    }

    #[test]
    fn progress_lines_reach_the_reporter() {
        let rec = Arc::new(Recorder::default());
        let stages = vec![Stage::new("vm", &[], |p: Progress| {
            Box::pin(async move {
                p.line("🔥  Creating kvm2 VM ...\r");
                Ok(Report::unchanged("running"))
            })
        })];
        block_on(run(stages, rec.clone(), std::future::pending()));
        let events = rec.events.lock().unwrap().clone();
        assert_eq!(events[0], ("vm".to_string(), Event::Started));
        assert_eq!(
            events[1],
            (
                "vm".to_string(),
                Event::Line("🔥  Creating kvm2 VM ...".to_string())
            )
        );
        assert!(matches!(
            events[2].1,
            Event::Finished {
                outcome: Outcome::Done(_),
                ..
            }
        ));
    }
}
