//! What the dashboard knows and tells: the latest picture of the environment (the `state`
//! event), the recent log lines (`log`), the actions asked from the page (`action`) and the
//! problems met while reading (`problem`), each kept for a page that connects later and sent
//! to every page already connected.
//!
//! Actions are run as devenv itself (`devenv restart`, `devenv offload … --remote|--local`),
//! a child process of the dashboard with the same directory and configuration: the page goes
//! through exactly the code the command line does, with its locking, its checks and its
//! output, which the page shows.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::logs::Line;
use crate::process::{Cmd, Runner};
use crate::reconcile::{Event, Reporter, event_json};

/// Log lines kept for a page that connects later.
const LOG_LINES: usize = 500;
/// Finished actions kept.
const ACTIONS: usize = 20;
/// Output lines of an action shown.
const ACTION_OUTPUT: usize = 40;
/// How long an action may run (a toggle deploys to two clusters).
const ACTION_LIMIT: Duration = Duration::from_secs(20 * 60);

/// How devenv is run for an action: this executable with the dashboard's directory and
/// configuration file.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub prefix: Vec<OsString>,
}

#[derive(Default)]
struct Inner {
    state: Option<Arc<str>>,
    logs: VecDeque<Arc<str>>,
    actions: VecDeque<Value>,
    problems: BTreeSet<String>,
    next_action: u64,
    /// The action running now: one at a time, as the project's lock would have it anyway.
    busy: Option<String>,
}

pub struct Hub {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<str>>,
    /// Every service of devenv.toml, and the ones that can be offloaded.
    services: Vec<String>,
    offloadable: Vec<String>,
    launch: Launch,
    runner: Arc<dyn Runner>,
    /// Woken when something changed that the next picture should show at once.
    pub refresh: Notify,
}

/// One server-sent event.
fn frame(event: &str, data: &Value) -> Arc<str> {
    Arc::from(format!("event: {event}\ndata: {data}\n\n"))
}

impl Hub {
    pub fn new(
        services: Vec<String>,
        offloadable: Vec<String>,
        launch: Launch,
        runner: Arc<dyn Runner>,
    ) -> Hub {
        Hub {
            inner: Mutex::new(Inner::default()),
            tx: broadcast::channel(1024).0,
            services,
            offloadable,
            launch,
            runner,
            refresh: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }

    /// What a page that connects now is told first: the picture, the recent log lines, the
    /// recent actions and problems.
    pub fn backlog(&self) -> Vec<Arc<str>> {
        let inner = self.lock();
        let mut out: Vec<Arc<str>> = inner.state.iter().cloned().collect();
        out.extend(inner.logs.iter().cloned());
        out.extend(inner.actions.iter().map(|a| frame("action", a)));
        out.extend(
            inner
                .problems
                .iter()
                .map(|p| frame("problem", &json!({"problem": p}))),
        );
        out
    }

    /// A new picture, sent only when it differs from the last.
    pub fn set_state(&self, state: &Value) {
        let f = frame("state", state);
        let mut inner = self.lock();
        if inner.state.as_deref() == Some(&*f) {
            return;
        }
        inner.state = Some(f.clone());
        drop(inner);
        let _ = self.tx.send(f);
    }

    /// A log line; one already sent (a stream opened again after a service moved) is not
    /// sent twice.
    pub fn log(&self, line: &Line) {
        let value = serde_json::to_value(line).unwrap_or(Value::Null);
        let f = frame("log", &value);
        let mut inner = self.lock();
        if inner.logs.iter().any(|l| *l == f) {
            return;
        }
        if inner.logs.len() == LOG_LINES {
            inner.logs.pop_front();
        }
        inner.logs.push_back(f.clone());
        drop(inner);
        let _ = self.tx.send(f);
    }

    /// A problem met while reading, said once.
    pub fn problem(&self, problem: String) {
        if self.lock().problems.insert(problem.clone()) {
            let _ = self.tx.send(frame("problem", &json!({"problem": problem})));
        }
    }

    fn record_action(&self, action: Value) {
        let mut inner = self.lock();
        let id = action["id"].clone();
        inner.actions.retain(|a| a["id"] != id);
        if inner.actions.len() == ACTIONS {
            inner.actions.pop_front();
        }
        inner.actions.push_back(action.clone());
        drop(inner);
        let _ = self.tx.send(frame("action", &action));
    }

    /// The devenv arguments of `action` on `service`, or why it cannot be done.
    fn command_of(&self, service: &str, action: &str) -> Result<Vec<String>, String> {
        if !self.services.iter().any(|s| s == service) {
            return Err(format!("{service} is not a service of devenv.toml"));
        }
        let offload = |to: &str| {
            if self.offloadable.iter().any(|s| s == service) {
                Ok(vec!["offload".into(), service.into(), to.into()])
            } else {
                Err(format!(
                    "{service} cannot be offloaded (it needs a host and a values_key in devenv.toml)"
                ))
            }
        };
        match action {
            "restart" => Ok(vec!["restart".into(), service.into()]),
            "remote" => offload("--remote"),
            "local" => offload("--local"),
            other => Err(format!(
                "no action {other}: restart, remote and local are the actions"
            )),
        }
    }

    /// Start `action` on `service`; the page hears how it went through `action` events.
    pub fn act(
        self: &Arc<Self>,
        service: &str,
        action: &str,
    ) -> Result<Value, (StatusCode, String)> {
        let args = self
            .command_of(service, action)
            .map_err(|why| (StatusCode::BAD_REQUEST, why))?;
        let command = format!("devenv {}", args.join(" "));
        let id = {
            let mut inner = self.lock();
            if let Some(running) = &inner.busy {
                return Err((
                    StatusCode::CONFLICT,
                    format!("`{running}` is still running; wait for it to finish"),
                ));
            }
            inner.busy = Some(command.clone());
            inner.next_action += 1;
            inner.next_action
        };
        let started = k8s_openapi::jiff::Timestamp::now().to_string();
        let mut record = json!({
            "id": id, "service": service, "action": action, "command": command,
            "state": "running", "started": started,
        });
        self.record_action(record.clone());
        let hub = self.clone();
        let cmd = Cmd::new(self.launch.program.to_string_lossy())
            .args(&self.launch.prefix)
            .args(&args)
            .timeout(ACTION_LIMIT);
        tokio::spawn(async move {
            let begun = Instant::now();
            let (state, code, output) = match hub.runner.output(&cmd).await {
                Ok(out) => (
                    if out.success() { "ok" } else { "failed" },
                    out.code,
                    crate::process::tail_lines(
                        &format!("{}{}", out.stdout, out.stderr),
                        ACTION_OUTPUT,
                    ),
                ),
                Err(e) => ("failed", None, e.to_string()),
            };
            record["state"] = json!(state);
            record["code"] = json!(code);
            record["output"] = json!(output);
            record["elapsed_ms"] = json!(begun.elapsed().as_millis() as u64);
            hub.lock().busy = None;
            hub.record_action(record);
            hub.refresh.notify_one();
        });
        Ok(json!({"id": id, "command": command}))
    }
}

/// The stages of one `up` run, from its events (the run log's lines, or live): each stage in
/// the order it first appeared, with how it ended, its time and its last lines of output.
pub fn fold_stages<'a>(events: impl IntoIterator<Item = &'a Value>) -> Vec<Value> {
    /// Output lines kept per stage.
    const LINES: usize = 30;
    let mut stages: Vec<Value> = Vec::new();
    for e in events {
        let Some(name) = e["stage"].as_str() else {
            continue;
        };
        let i = match stages.iter().position(|s| s["stage"] == name) {
            Some(i) => i,
            None => {
                stages.push(json!({"stage": name, "state": "waiting", "lines": []}));
                stages.len() - 1
            }
        };
        let s = &mut stages[i];
        match e["event"].as_str() {
            Some("started") => s["state"] = json!("running"),
            Some("line") => {
                if let Some(lines) = s["lines"].as_array_mut() {
                    lines.push(e["line"].clone());
                    if lines.len() > LINES {
                        lines.remove(0);
                    }
                }
            }
            Some(end @ ("done" | "failed" | "skipped" | "cancelled")) => {
                s["state"] = json!(end);
                for key in [
                    "summary",
                    "changed",
                    "elapsed_ms",
                    "error",
                    "help",
                    "because",
                ] {
                    if !e[key].is_null() {
                        s[key] = e[key].clone();
                    }
                }
            }
            _ => {}
        }
    }
    stages
}

/// The stages of a run as it happens, for `devenv up --ui`: every event of the run, folded
/// into the picture the next time it is drawn.
#[derive(Default)]
pub struct LiveRun {
    events: Mutex<Vec<Value>>,
}

impl LiveRun {
    pub fn stages(&self) -> Option<Vec<Value>> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        (!events.is_empty()).then(|| fold_stages(events.iter()))
    }
}

/// Feeds a [`LiveRun`] and wakes the dashboard.
pub struct LiveReporter {
    pub run: Arc<LiveRun>,
    pub hub: Arc<Hub>,
}

impl Reporter for LiveReporter {
    fn event(&self, stage: &str, event: &Event) {
        self.run
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event_json(stage, event));
        self.hub.refresh.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub::new(
            vec!["api".into(), "postgres".into()],
            vec!["postgres".into()],
            Launch {
                program: PathBuf::from("devenv"),
                prefix: Vec::new(),
            },
            Arc::new(crate::process::SystemRunner::new(
                crate::process::detect_platform(),
            )),
        )
    }

    #[test]
    fn actions_are_devenvs_own_commands_on_known_services_only() {
        let h = hub();
        assert_eq!(h.command_of("api", "restart").unwrap(), ["restart", "api"]);
        assert_eq!(
            h.command_of("postgres", "remote").unwrap(),
            ["offload", "postgres", "--remote"]
        );
        assert_eq!(
            h.command_of("postgres", "local").unwrap(),
            ["offload", "postgres", "--local"]
        );
        assert!(
            h.command_of("api", "remote")
                .unwrap_err()
                .contains("cannot be offloaded")
        );
        assert!(
            h.command_of("api; rm -rf /", "restart")
                .unwrap_err()
                .contains("not a service")
        );
        assert!(h.command_of("api", "delete").is_err());
    }

    #[test]
    fn stages_fold_into_their_last_state_with_time_and_output() {
        let events: Vec<Value> = [
            json!({"stage": "vm", "event": "started"}),
            json!({"stage": "vm", "event": "line", "line": "starting minikube"}),
            json!({"stage": "images", "event": "started"}),
            json!({"stage": "vm", "event": "done", "changed": true, "summary": "started", "elapsed_ms": 900}),
            json!({"stage": "images", "event": "failed", "error": "build failed", "help": "see the log", "elapsed_ms": 50}),
            json!({"stage": "release", "event": "skipped", "because": "images did not finish"}),
        ]
        .into();
        let stages = fold_stages(events.iter());
        let names: Vec<&str> = stages
            .iter()
            .map(|s| s["stage"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["vm", "images", "release"]);
        assert_eq!(stages[0]["state"], "done");
        assert_eq!(stages[0]["elapsed_ms"], 900);
        assert_eq!(stages[0]["lines"], json!(["starting minikube"]));
        assert_eq!(stages[1]["state"], "failed");
        assert_eq!(stages[1]["help"], "see the log");
        assert_eq!(stages[2]["because"], "images did not finish");
    }

    #[test]
    fn a_picture_is_sent_only_when_it_changed_and_a_line_only_once() {
        let h = hub();
        let mut rx = h.subscribe();
        h.set_state(&json!({"a": 1}));
        h.set_state(&json!({"a": 1}));
        h.set_state(&json!({"a": 2}));
        let line = Line {
            time: k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            service: "api".into(),
            pod: "api-1".into(),
            container: "api".into(),
            place: crate::config::Placement::Local,
            line: "hello".into(),
        };
        h.log(&line);
        h.log(&line);
        let mut got = Vec::new();
        while let Ok(f) = rx.try_recv() {
            got.push(f.to_string());
        }
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with("event: state\ndata: {\"a\":1}"));
        assert!(got[2].starts_with("event: log\n") && got[2].contains("hello"));
        assert_eq!(h.backlog().len(), 2, "the last picture and the line");
    }
}
