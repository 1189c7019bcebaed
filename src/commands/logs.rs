//! `devenv logs`: the logs of every pod of the named services, wherever each runs (the laptop's
//! cluster or, offloaded, the shared one), merged in time order; `-f` follows, picking up new
//! pods and restarted containers as they come.
//!
//! Following is a loop that lists each service's pods every second and opens one log stream
//! per container run (keyed by its container ID): a restarted container is a new ID, so its
//! new run is streamed from its first line, and a new pod is found within a second. A stream
//! that ends while its container still runs (the API server or a proxy closed it) is opened
//! again from the last line's time, and lines up to that instant are dropped, so nothing is
//! printed twice.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures_util::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::LogParams;
use tokio::sync::mpsc;

use crate::context::Context;
use crate::error::Error;
use crate::logs::{Labels, Line, merge, render, split_timestamp};
use crate::workloads::{self, Clients, Located};

/// Show the logs of the services' pods, merged in time order.
///
/// Every pod of each named service (all of devenv.toml's when none is named), wherever it runs:
/// the laptop's cluster, or the shared cluster for an offloaded service. Each line starts with
/// its service (and pod, when the service has several) in a colour of its own. A pod that
/// cannot be read is named once with the reason, and the others go on.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Services of devenv.toml (default: all).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Keep printing new lines; new pods and restarted containers are picked up as they come.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only lines written within this long (`30s`, `10m`, `2h`).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only the last N lines of each container (default: all).
    #[arg(long, value_name = "N")]
    pub tail: Option<u32>,
    /// Only lines matching this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub grep: Option<String>,
    /// The log of each container's previous run, before its last restart (why it crashed).
    #[arg(long, short = 'p', conflicts_with = "follow")]
    pub previous: bool,
    /// Start each line with the time the container wrote it.
    #[arg(long)]
    pub timestamps: bool,
    /// Print the project's services, one per line (used by shell completion).
    #[arg(long, hide = true)]
    pub complete_names: bool,
}

/// One container run to read.
#[derive(Debug, Clone)]
struct Target {
    at: Located,
    pod: String,
    container: String,
    /// The container ID of the run the API would serve now, when there is one.
    id: Option<String>,
    running: bool,
    /// Why it has no log yet (`ContainerCreating`, `ImagePullBackOff`).
    waiting: Option<String>,
}

/// What the loop hears from the streams.
enum Event {
    Line(Line),
    /// A stream ended; `last` is the time of its last line.
    Ended {
        id: String,
        last: Option<Timestamp>,
    },
    /// A stream could not be opened.
    Failed {
        target: Box<Target>,
        why: String,
    },
}

/// Where followed lines go: the terminal ([`Printer`]) or the dashboard.
pub trait Sink {
    /// Take `line`; false ends the following (its reader is gone).
    fn line(&mut self, line: &Line) -> bool;
    /// Say `problem` (a pod that cannot be read, a cluster that does not answer).
    fn problem(&mut self, problem: String);
    /// A pod of `service` was seen with these containers (for labels).
    fn saw(&mut self, _service: &str, _pods: usize, _pod: &str, _containers: &[String]) {}
}

/// Lines go to the screen (or as JSON), filtered; a closed stdout ends the command.
struct Printer {
    labels: Labels,
    grep: Option<regex::Regex>,
    color: bool,
    json: bool,
    timestamps: bool,
    /// Problems already said, so each is said once.
    said: BTreeSet<String>,
}

impl Sink for Printer {
    fn line(&mut self, line: &Line) -> bool {
        self.print(line)
    }

    fn problem(&mut self, problem: String) {
        self.once(problem)
    }

    fn saw(&mut self, service: &str, pods: usize, pod: &str, containers: &[String]) {
        self.labels.saw(service, pods, pod, containers)
    }
}

impl Printer {
    /// Print `line`; false when stdout is gone.
    fn print(&self, line: &Line) -> bool {
        if self
            .grep
            .as_ref()
            .is_some_and(|re| !re.is_match(&line.line))
        {
            return true;
        }
        let text = if self.json {
            serde_json::to_string(line).expect("a line serialises")
        } else {
            let width = self.width();
            let body = render(&self.labels, line, self.color, width);
            if self.timestamps {
                format!("{} {body}", line.time)
            } else {
                body
            }
        };
        crate::output::out_ok(format_args!("{text}\n"))
    }

    /// The widest label, so texts line up.
    fn width(&self) -> usize {
        self.labels.widest()
    }

    /// Say `problem` on stderr unless it was said before.
    fn once(&mut self, problem: String) {
        if self.said.insert(problem.clone()) {
            crate::errln!("devenv logs: {problem}");
        }
    }
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let loaded = ctx.load_config()?;
    if args.complete_names {
        for name in loaded.config.services.keys() {
            crate::outln!("{name}");
        }
        return Ok(0);
    }
    let since = args
        .since
        .as_deref()
        .map(crate::config::parse_duration)
        .transpose()
        .map_err(|why| Error::Usage {
            message: format!("--since {why}"),
            help: "give a number and a unit: 30s, 10m, 2h".into(),
        })?;
    let grep = args
        .grep
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| Error::Usage {
            message: format!("--grep is not a regular expression: {e}"),
            help: "the syntax is Rust's regex crate's (like RE2): escape `(`, `[`, `.` with `\\`"
                .into(),
        })?;
    let located = super::locate(ctx, &loaded, &args.services)?;
    let mut printer = Printer {
        labels: Labels::default(),
        grep,
        color: ctx.ui.color(),
        json: ctx.ui.json,
        timestamps: args.timestamps,
        said: BTreeSet::new(),
    };
    let params = LogParams {
        timestamps: true,
        since_seconds: since.map(|d| d.as_secs().max(1) as i64),
        tail_lines: args.tail.map(i64::from),
        previous: args.previous,
        ..LogParams::default()
    };
    let mut clients = Clients::default();
    if args.follow {
        let mut interrupt =
            crate::process::Interrupt::listen().map_err(Error::io("listen for", "Ctrl-C"))?;
        tokio::select! {
            () = follow(&located, &mut clients, &mut printer, params) => {}
            _ = interrupt.recv() => {}
        }
        Ok(0)
    } else {
        once(&located, &mut clients, &mut printer, params).await
    }
}

/// Read every container's log once, merge, print.
async fn once(
    located: &[Located],
    clients: &mut Clients,
    printer: &mut Printer,
    params: LogParams,
) -> Result<i32, Error> {
    let targets = discover(located, clients, printer).await;
    let mut reads = Vec::new();
    for t in targets {
        let Ok(client) = clients.get(&t.at.context).await else {
            continue;
        };
        let params = LogParams {
            container: Some(t.container.clone()),
            ..params.clone()
        };
        reads.push(async move {
            let api: Api<Pod> = Api::namespaced(client, &t.at.namespace);
            let read = api.logs(&t.pod, &params).await;
            (t, read)
        });
    }
    let mut lines = Vec::new();
    let (mut read, mut failed) = (0, 0);
    for (t, result) in futures_util::future::join_all(reads).await {
        match result {
            Ok(text) => {
                read += 1;
                let mut last = Timestamp::UNIX_EPOCH;
                for raw in text.lines() {
                    let line = to_line(&t, raw, &mut last);
                    lines.push(line);
                }
            }
            Err(e) => {
                failed += 1;
                printer.once(cannot_read(&t, &e));
            }
        }
    }
    for line in merge(lines) {
        if !printer.print(&line) {
            break;
        }
    }
    Ok(i32::from(
        read == 0 && (failed > 0 || !printer.said.is_empty()),
    ))
}

/// Follow every container of `located` into `printer` until it takes no more lines.
pub async fn follow(
    located: &[Located],
    clients: &mut Clients,
    printer: &mut impl Sink,
    params: LogParams,
) {
    /// How often pods are listed again, to find new pods and restarts.
    const ROUND: Duration = Duration::from_secs(1);
    /// The first lines of all streams are gathered this long and merged before printing;
    /// later lines are printed as they come.
    const SETTLE: Duration = Duration::from_millis(400);
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    // Container ID → the time of its last line printed, and whether a stream is open.
    let mut streams: HashMap<String, (Option<Timestamp>, bool)> = HashMap::new();
    let mut first = true;
    let mut backlog: Option<Vec<Line>> = Some(Vec::new());
    let settle = tokio::time::sleep(SETTLE);
    tokio::pin!(settle);
    let mut tick = tokio::time::interval(ROUND);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                for t in discover(located, clients, printer).await {
                    let Some(id) = t.id.clone() else {
                        if let Some(why) = &t.waiting {
                            printer.problem(format!("{} {}/{}: waiting to start: {why}", t.at.name, t.pod, t.container));
                        }
                        continue;
                    };
                    let (last, open) = streams.get(&id).copied().unwrap_or((None, false));
                    let known = streams.contains_key(&id);
                    if open || (known && !t.running) {
                        continue;
                    }
                    let Ok(client) = clients.get(&t.at.context).await else { continue };
                    let mut p = LogParams {
                        container: Some(t.container.clone()),
                        follow: t.running,
                        ..LogParams::default()
                    };
                    p.timestamps = true;
                    if first {
                        // What the user asked for applies to what runs now; a run that starts
                        // later (a new pod, a restart) is shown from its first line.
                        p.since_seconds = params.since_seconds;
                        p.tail_lines = params.tail_lines;
                    }
                    if let Some(last) = last {
                        p.since_time = Some(last);
                        p.since_seconds = None;
                        p.tail_lines = None;
                    }
                    streams.insert(id.clone(), (last, true));
                    tokio::spawn(stream(client, t, id, p, last, tx.clone()));
                }
                first = false;
            }
            _ = &mut settle, if backlog.is_some() => {
                for line in merge(backlog.take().unwrap_or_default()) {
                    if !printer.line(&line) {
                        return;
                    }
                }
            }
            event = rx.recv() => match event {
                Some(Event::Line(line)) => {
                    match backlog.as_mut() {
                        Some(b) => b.push(line),
                        None => {
                            if !printer.line(&line) {
                                return;
                            }
                        }
                    }
                }
                Some(Event::Ended { id, last }) => {
                    let entry = streams.entry(id).or_insert((None, false));
                    entry.0 = last.or(entry.0);
                    entry.1 = false;
                }
                Some(Event::Failed { target, why }) => {
                    if let Some(id) = &target.id {
                        streams.remove(id);
                    }
                    printer.problem(format!("{} {}/{}: {why}", target.at.name, target.pod, target.container));
                }
                None => return,
            },
        }
    }
}

/// Stream one container run's log into `tx`, from after `last` when given.
async fn stream(
    client: kube::Client,
    t: Target,
    id: String,
    params: LogParams,
    last: Option<Timestamp>,
    tx: mpsc::Sender<Event>,
) {
    let api: Api<Pod> = Api::namespaced(client, &t.at.namespace);
    let reader = match api.log_stream(&t.pod, &params).await {
        Ok(r) => r,
        Err(e) => {
            let why = crate::cluster::describe(&e);
            let _ = tx
                .send(Event::Failed {
                    target: Box::new(t),
                    why,
                })
                .await;
            return;
        }
    };
    let mut lines = reader.lines().boxed();
    let mut newest = last;
    let mut clock = last.unwrap_or(Timestamp::UNIX_EPOCH);
    while let Ok(Some(raw)) = lines.try_next().await {
        let line = to_line(&t, &raw, &mut clock);
        if last.is_some_and(|l| line.time <= l) {
            continue;
        }
        newest = Some(line.time);
        if tx.send(Event::Line(line)).await.is_err() {
            return;
        }
    }
    let _ = tx.send(Event::Ended { id, last: newest }).await;
}

/// A raw API line of `t` as a [`Line`]; a line without a time takes `clock`, the time of the
/// line before it, so it stays in place.
fn to_line(t: &Target, raw: &str, clock: &mut Timestamp) -> Line {
    let (time, text) = split_timestamp(raw);
    if let Some(time) = time {
        *clock = time;
    }
    Line {
        time: *clock,
        service: t.at.name.clone(),
        pod: t.pod.clone(),
        container: t.container.clone(),
        place: t.at.place,
        line: text.to_string(),
    }
}

fn cannot_read(t: &Target, e: &kube::Error) -> String {
    let why = match e {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => crate::cluster::describe(other),
    };
    format!("{} {}/{}: {why}", t.at.name, t.pod, t.container)
}

/// Every container of every pod of `located`, with the run the API would serve; problems
/// (a cluster that does not answer, a service without pods) are said once.
async fn discover(
    located: &[Located],
    clients: &mut Clients,
    printer: &mut impl Sink,
) -> Vec<Target> {
    let mut targets = Vec::new();
    for at in located {
        let client = match clients.get(&at.context).await {
            Ok(c) => c,
            Err(e) => {
                printer.problem(format!("{}: {e}", at.name));
                continue;
            }
        };
        let pods = match workloads::pods(client, at).await {
            Ok(pods) => pods,
            Err(e) => {
                printer.problem(e.to_string());
                continue;
            }
        };
        for pod in &pods {
            let containers: Vec<String> = pod
                .spec
                .as_ref()
                .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
                .unwrap_or_default();
            let name = workloads::name(pod).to_string();
            printer.saw(&at.name, pods.len(), &name, &containers);
            for container in containers {
                targets.push(target(at, pod, &name, &container));
            }
        }
    }
    targets
}

/// Which run of `container` the API serves now (as the kubelet chooses: the running one, else
/// the one that ended last), or why there is none.
fn target(at: &Located, pod: &Pod, name: &str, container: &str) -> Target {
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|s| s.name == container));
    let mut t = Target {
        at: at.clone(),
        pod: name.to_string(),
        container: container.to_string(),
        id: None,
        running: false,
        waiting: Some("ContainerCreating".into()),
    };
    let Some(s) = status else {
        return t;
    };
    let state = s.state.as_ref();
    let last = s.last_state.as_ref().and_then(|l| l.terminated.as_ref());
    let id = |v: Option<&String>| v.filter(|i| !i.is_empty()).cloned();
    if state.and_then(|st| st.running.as_ref()).is_some() {
        t.id = id(s.container_id.as_ref()).or_else(|| Some(format!("{name}/{container}")));
        t.running = true;
        t.waiting = None;
    } else if let Some(term) = state.and_then(|st| st.terminated.as_ref()) {
        t.id = id(term.container_id.as_ref())
            .or_else(|| last.and_then(|l| id(l.container_id.as_ref())));
        t.waiting = None;
    } else if let Some(l) = last {
        t.id = id(l.container_id.as_ref());
        t.waiting = None;
    } else {
        t.waiting = state
            .and_then(|st| st.waiting.as_ref())
            .and_then(|w| w.reason.clone())
            .or(t.waiting);
    }
    t
}
