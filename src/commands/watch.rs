//! `devenv watch`: react to edits on the host. Each debounced batch of changed files is routed
//! to the services whose `watch` globs match, and each service's `on_change` action runs once
//! per batch with every path that caused it: `restart` restarts its workloads through the
//! Kubernetes API, `forward` touches the files inside the VM so in-VM watchers see them, `helm`
//! runs `devenv up` again, `none` only logs. A failing action is reported and the watcher goes on.
//! Changes under an image's context run `devenv up` too (it rebuilds the image), and while the VM
//! runs a background task samples resources and reports the alerts of `[watch.alerts]`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde::Serialize;

use crate::cluster;
use crate::config::{Loaded, OnChange};
use crate::context::Context;
use crate::error::Error;
use crate::process::Cmd;
use crate::watch::{Batch, Job, Routes, Source, forward, limits};

/// Watch the source tree and apply each service's `on_change` when its files change.
///
/// Honours .gitignore and .devenvignore at the project root (and never looks inside .git).
/// Changes to the chart or the values files always re-run the release. A burst of changes
/// (a `git checkout`) runs each action once with every changed path. A change under a service's
/// image context rebuilds the image and rolls the service out (through `devenv up`). While the VM
/// runs, resources are sampled and the alerts of [watch.alerts] are printed (`devenv top` shows
/// the figures). Stop with Ctrl-C.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long the tree must be quiet before a batch of changes is acted on.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub debounce: u64,
    /// Exit after the first batch's actions complete (for scripts): 0 when every action
    /// succeeded, 1 when one failed.
    #[arg(long, conflicts_with = "max_batches")]
    pub once: bool,
    /// Exit after this many batches.
    #[arg(long, value_name = "N")]
    pub max_batches: Option<u64>,
    /// Do not sample the VM's resources for alerts ([watch.alerts]; `devenv top` shows them).
    #[arg(long)]
    pub no_alerts: bool,
}

/// How many paths a plain line names before "and N more" (all of them with -v).
const SHOWN_PATHS: usize = 3;

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let loaded = ctx.load_config()?;
    let routes = Routes::new(&loaded).map_err(|e| Error::Usage {
        message: e.to_string(),
        help: format!(
            "globs follow .gitignore syntax; see {}",
            crate::docs::url("watch.md")
        ),
    })?;
    let root = canonical(&loaded.root);
    let source_dir = canonical(&loaded.source_dir());
    let debounce = Duration::from_millis(args.debounce.max(1));
    let max_batches = if args.once { Some(1) } else { args.max_batches };
    let out = Output::new(ctx);

    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _source = Source::start(&source_dir, debounce, tx).map_err(|e| watch_error(&e))?;
    let (alert_tx, mut alert_rx) = tokio::sync::mpsc::unbounded_channel();
    let _alerts = if args.no_alerts {
        None
    } else {
        resource_alerts(ctx, &loaded, alert_tx).await
    };
    // Listen for Ctrl-C before saying "ready": a SIGINT that arrives between the two would
    // otherwise kill the process instead of stopping it cleanly.
    let mut interrupt =
        crate::process::Interrupt::listen().map_err(Error::io("listen for", "Ctrl-C"))?;
    out.ready(&source_dir, started.elapsed());

    let mut actions = Actions {
        ctx,
        loaded: &loaded,
        source_dir: source_dir.clone(),
        client: None,
    };
    let mut echoes = forward::Echoes::default();
    let mut done = 0u64;
    let mut failed = 0u64;
    loop {
        let mut batch = tokio::select! {
            b = rx.recv() => match b { Some(b) => b, None => break },
            Some(alert) = alert_rx.recv() => {
                out.alert(&alert);
                continue;
            }
            _ = interrupt.recv() => break,
        };
        // The source sends a batch once the whole tree has been quiet for the debounce time;
        // what arrived while the previous actions ran is acted on together.
        while let Ok(more) = rx.try_recv() {
            batch.merge(more);
        }
        let echoed = echoes.remove_from(&mut batch, Instant::now());
        if echoed > 0 {
            tracing::debug!("{echoed} path(s) only touched by forward's own `touch -c`: ignored");
        }
        let changed = collect(&mut batch, &out);
        if changed.is_empty() {
            continue;
        }
        done += 1;
        let rel: Vec<PathBuf> = changed
            .iter()
            .filter_map(|p| p.strip_prefix(&root).ok().map(Path::to_path_buf))
            .collect();
        let waited = batch.first_change.map(|t| t.elapsed());
        out.batch(done, &rel, waited);
        for job in with_image_builds(&loaded, routes.route(&rel), &rel) {
            let begun = Instant::now();
            let result = actions.run(&job).await;
            failed += u64::from(result.is_err());
            if job.action == OnChange::Forward {
                echoes.record(job.paths.iter().map(|p| root.join(p)), Instant::now());
            }
            out.action(done, &job, &result, begun.elapsed());
        }
        if max_batches.is_some_and(|n| done >= n) {
            // A bounded run is a script's: it learns from the exit code that an action failed.
            return Ok(if failed > 0 { 1 } else { 0 });
        }
    }
    Ok(0)
}

/// Resource alerts in the background while the VM runs (a watcher started before `up` has no VM
/// to sample, and says so once).
async fn resource_alerts(
    ctx: &Context,
    loaded: &Loaded,
    alerts: tokio::sync::mpsc::UnboundedSender<crate::watch::resources::Alert>,
) -> Option<crate::watch::sample::AlertTask> {
    let c = &loaded.config;
    let status = ctx
        .runner
        .output(&crate::minikube::status(&c.project.profile()))
        .await
        .ok()
        .and_then(|o| crate::minikube::parse_status(&o).ok());
    if status != Some(crate::minikube::VmState::Running) {
        tracing::info!("the VM is not running: no resource alerts");
        return None;
    }
    let state = ctx
        .state_dir()
        .ok()?
        .project(&c.project.name, &loaded.root)
        .load()
        .unwrap_or_default();
    let local = c
        .services
        .iter()
        .filter(|(n, s)| state.placement(n, s) == crate::config::Placement::Local)
        .map(|(n, _)| n.clone())
        .collect();
    Some(crate::watch::sample::spawn_alerts(
        ctx.runner.clone(),
        loaded,
        local,
        alerts,
    ))
}

/// The jobs of a batch with the image rebuilds it needs: a change under a local service's image
/// context runs `devenv up`, whose `images` stage rebuilds the image and whose release rolls the
/// service out on the new content tag. One `up` serves every service of the batch (it joins a
/// `helm` job if there is one), and replaces those services' own `restart`, which would only
/// restart them on the old image.
fn with_image_builds(loaded: &Loaded, mut jobs: Vec<Job>, rel: &[PathBuf]) -> Vec<Job> {
    let mut services = Vec::new();
    let mut paths = Vec::new();
    for (name, service) in &loaded.config.services {
        let Some(image) = &service.image else {
            continue;
        };
        let context: PathBuf = image
            .context
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        let under: Vec<&PathBuf> = rel.iter().filter(|p| p.starts_with(&context)).collect();
        if !under.is_empty() {
            services.push(name.clone());
            paths.extend(under.into_iter().cloned());
        }
    }
    if services.is_empty() {
        return jobs;
    }
    jobs.retain_mut(|job| {
        if job.action == OnChange::Restart {
            job.services.retain(|s| !services.contains(s));
        }
        !job.services.is_empty()
    });
    match jobs.iter_mut().find(|j| j.action == OnChange::Helm) {
        Some(helm) => {
            helm.services.extend(services);
            helm.paths.extend(paths);
            helm.paths.sort();
            helm.paths.dedup();
        }
        None => {
            paths.sort();
            paths.dedup();
            jobs.insert(
                0,
                Job {
                    action: OnChange::Helm,
                    services,
                    paths,
                },
            );
        }
    }
    jobs
}

/// The batch's paths, once its errors and an overflow's rescan are reported.
fn collect(batch: &mut Batch, out: &Output) -> Vec<PathBuf> {
    for err in &batch.errors {
        out.error(&watch_error(err));
    }
    if let Some(found) = batch.rescan {
        out.rescan(found);
    }
    std::mem::take(&mut batch.paths).into_iter().collect()
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// A notify error as the user's error, with the sysctl to raise when a kernel limit was hit.
fn watch_error(err: &notify::Error) -> Error {
    match limits::classify(err) {
        Some(limit) => Error::Failed {
            message: format!("cannot watch the source tree: {}", limit.message()),
            help: limit.help(),
            code: 1,
            diagnostic: crate::diagnostic::codes::WATCH,
        },
        None => Error::Failed {
            message: format!("cannot watch the source tree: {err}"),
            help: format!(
                "run with -v for details; {} lists the known causes",
                crate::docs::url("watch.md")
            ),
            code: 1,
            diagnostic: crate::diagnostic::codes::WATCH,
        },
    }
}

/// What an action did, or why it could not.
type ActionResult = Result<String, String>;

struct Actions<'a> {
    ctx: &'a Context,
    loaded: &'a Loaded,
    source_dir: PathBuf,
    /// Made on the first `restart`, so a project that never restarts never needs the cluster.
    client: Option<Client>,
}

impl Actions<'_> {
    async fn run(&mut self, job: &Job) -> ActionResult {
        match job.action {
            OnChange::None => Ok("logged".into()),
            OnChange::Forward => self.forward(job).await,
            OnChange::Restart => self.restart(job).await,
            OnChange::Helm => self.helm().await,
        }
    }

    async fn forward(&self, job: &Job) -> ActionResult {
        let c = &self.loaded.config;
        let vm_paths: Vec<String> = job
            .paths
            .iter()
            .filter_map(|rel| {
                let abs = canonical(&self.loaded.root).join(rel);
                abs.strip_prefix(&self.source_dir)
                    .ok()
                    .map(|r| forward::vm_path(&c.mount.target, r))
            })
            .collect();
        let calls = forward::touch_calls(&c.project.profile(), &vm_paths, forward::MAX_LINE);
        for call in &calls {
            tracing::debug!("running {call}");
            self.ctx.runner.run(call).await.map_err(|e| {
                let help = e.help().map(|h| format!(" ({h})")).unwrap_or_default();
                format!("{e}{help}")
            })?;
        }
        Ok(format!(
            "touched {} path{} in the VM ({} ssh call{})",
            vm_paths.len(),
            plural(vm_paths.len()),
            calls.len(),
            plural(calls.len())
        ))
    }

    async fn restart(&mut self, job: &Job) -> ActionResult {
        let c = &self.loaded.config;
        if self.client.is_none() {
            let client = cluster::client(&c.project.profile())
                .await
                .map_err(|e| e.to_string())?;
            self.client = Some(client);
        }
        let client = self.client.clone().expect("client made above");
        let ns = c.project.namespace();
        let mut restarted = Vec::new();
        for service in &job.services {
            restarted.extend(rollout_restart(client.clone(), ns, service).await?);
        }
        if restarted.is_empty() {
            return Err(format!(
                "no Deployment or StatefulSet labelled app.kubernetes.io/name={} in namespace {ns}",
                job.services.join(",")
            ));
        }
        Ok(format!("restarted {}", restarted.join(", ")))
    }

    /// `devenv up` as its own process: the release stage needs the whole plan's facts (VM,
    /// mount, offload bridges), which `up` gathers, so the watcher reuses it rather than a copy.
    async fn helm(&self) -> ActionResult {
        let exe = crate::process::daemon::self_exe()
            .map_err(|e| format!("cannot find devenv itself: {e}"))?;
        let cmd = Cmd::new(exe.to_string_lossy())
            .arg("up")
            .arg("--config")
            .arg(&self.loaded.file)
            .cwd(&self.loaded.root);
        tracing::debug!("running {cmd}");
        self.ctx.runner.run(&cmd).await.map_err(|e| {
            let help = e.help().map(|h| format!(" ({h})")).unwrap_or_default();
            format!("{e}{help}")
        })?;
        Ok("ran `devenv up`".into())
    }
}

/// What `kubectl rollout restart` does: stamp the pod template with
/// `kubectl.kubernetes.io/restartedAt`, so the controller rolls out new pods, on every
/// Deployment and StatefulSet of the service.
async fn rollout_restart(client: Client, ns: &str, service: &str) -> Result<Vec<String>, String> {
    let now = k8s_openapi::jiff::Timestamp::now();
    let stamp = k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string());
    let patch = serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": stamp
    }}}}});
    let selector = ListParams::default().labels(&format!("app.kubernetes.io/name={service}"));
    let params = PatchParams::default();
    let mut done = Vec::new();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for d in deployments
        .list(&selector)
        .await
        .map_err(|e| e.to_string())?
    {
        let name = d.metadata.name.unwrap_or_default();
        deployments
            .patch(&name, &params, &Patch::Strategic(&patch))
            .await
            .map_err(|e| format!("deployment/{name}: {e}"))?;
        done.push(format!("deployment/{name}"));
    }
    let statefulsets: Api<StatefulSet> = Api::namespaced(client, ns);
    for s in statefulsets
        .list(&selector)
        .await
        .map_err(|e| e.to_string())?
    {
        let name = s.metadata.name.unwrap_or_default();
        statefulsets
            .patch(&name, &params, &Patch::Strategic(&patch))
            .await
            .map_err(|e| format!("statefulset/{name}: {e}"))?;
        done.push(format!("statefulset/{name}"));
    }
    Ok(done)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn action_name(action: OnChange) -> &'static str {
    match action {
        OnChange::Restart => "restart",
        OnChange::Helm => "helm",
        OnChange::Forward => "forward",
        OnChange::None => "none",
    }
}

/// One JSON line per event with `--json`; one plain line per event otherwise.
struct Output {
    json: bool,
    quiet: bool,
    verbose: bool,
    ui: crate::ui::Ui,
}

#[derive(Serialize)]
struct Record<'a> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    services: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    paths: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_ms: Option<u128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offload: Option<String>,
}

impl Record<'_> {
    fn new(event: &str) -> Record<'_> {
        Record {
            event,
            batch: None,
            action: None,
            services: None,
            count: None,
            paths: None,
            result: None,
            message: None,
            elapsed_ms: None,
            offload: None,
        }
    }
}

impl Output {
    fn new(ctx: &Context) -> Output {
        Output {
            json: ctx.ui.json,
            quiet: ctx.ui.quiet,
            verbose: ctx.ui.verbose > 0,
            ui: ctx.ui.clone(),
        }
    }

    fn emit(&self, record: Record<'_>, plain: impl FnOnce() -> String) {
        if self.json {
            if let Ok(line) = serde_json::to_string(&record) {
                crate::outln!("{line}");
            }
        } else if !self.quiet {
            crate::outln!("{}", plain());
        }
    }

    fn ready(&self, dir: &Path, took: Duration) {
        let mut r = Record::new("ready");
        r.message = Some(dir.display().to_string());
        r.elapsed_ms = Some(took.as_millis());
        self.emit(r, || {
            format!(
                "watching {} (ready in {} ms; Ctrl-C stops)",
                dir.display(),
                took.as_millis()
            )
        });
    }

    fn batch(&self, n: u64, paths: &[PathBuf], waited: Option<Duration>) {
        let mut r = Record::new("batch");
        r.batch = Some(n);
        r.count = Some(paths.len());
        r.elapsed_ms = waited.map(|w| w.as_millis());
        self.emit(r, || {
            format!(
                "batch {n}: {} changed path{}",
                paths.len(),
                plural(paths.len())
            )
        });
    }

    fn rescan(&self, found: usize) {
        let mut r = Record::new("rescan");
        r.count = Some(found);
        r.message = Some("the kernel's event queue overflowed; rescanned the tree".into());
        self.emit(r, || {
            format!(
                "{}: the kernel's event queue overflowed (IN_Q_OVERFLOW); rescanned the tree and found {found} changed file{}",
                self.ui.warn("warning"),
                plural(found)
            )
        });
    }

    fn action(&self, n: u64, job: &Job, result: &ActionResult, took: Duration) {
        let paths: Vec<String> = job
            .paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let mut r = Record::new("action");
        r.batch = Some(n);
        r.action = Some(action_name(job.action));
        r.services = Some(&job.services);
        r.count = Some(paths.len());
        r.result = Some(if result.is_ok() { "ok" } else { "error" });
        r.message = Some(match result {
            Ok(m) | Err(m) => m.clone(),
        });
        r.elapsed_ms = Some(took.as_millis());
        let shown = if self.verbose {
            paths.len()
        } else {
            SHOWN_PATHS
        };
        let list = {
            let mut s = paths
                .iter()
                .take(shown)
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            if paths.len() > shown {
                s.push_str(&format!(", and {} more", paths.len() - shown));
            }
            s
        };
        let line = format!(
            "batch {n}: {} {} ({} path{}: {list}): ",
            action_name(job.action),
            job.services.join(","),
            paths.len(),
            plural(paths.len())
        );
        let plain = match result {
            Ok(m) => format!("{line}{m}"),
            Err(m) => format!("{line}{} {m}", self.ui.fail("failed:")),
        };
        if result.is_err() && !self.json {
            // Failures are shown even with --quiet, on stderr where errors go.
            crate::errln!("{plain}");
            return;
        }
        r.paths = Some(paths);
        self.emit(r, || plain);
    }

    /// A resource alert: on stderr with the errors (shown even with --quiet), or a record.
    fn alert(&self, alert: &crate::watch::resources::Alert) {
        let mut r = Record::new("alert");
        r.action = Some(alert.kind);
        r.message = Some(alert.message.clone());
        r.offload = alert.offload.clone();
        if self.json {
            self.emit(r, String::new);
        } else {
            crate::errln!("{}: {}", self.ui.warn("alert"), alert.message);
        }
    }

    fn error(&self, err: &Error) {
        let help = err.help().unwrap_or_default();
        let mut r = Record::new("error");
        r.result = Some("error");
        r.message = Some(format!(
            "{err}{}",
            if help.is_empty() {
                String::new()
            } else {
                format!("; {help}")
            }
        ));
        if self.json {
            self.emit(r, String::new);
        } else {
            crate::errln!("{}: {err}", self.ui.fail("error"));
            if !help.is_empty() {
                crate::errln!("help: {help}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(toml: &str) -> Loaded {
        Loaded {
            file: PathBuf::from("devenv.toml"),
            root: PathBuf::from("."),
            config: crate::config::parse(toml).unwrap(),
        }
    }

    const TOML: &str = "[project]\nname = \"shop\"\n[services.api]\nvalues_key = \"api\"\nwatch = [\"services/api/**\"]\non_change = \"restart\"\n[services.api.image]\ncontext = \"./services/api\"\ntag = \"shop-api:dev\"\n[services.worker]\nwatch = [\"services/worker/**\"]\non_change = \"restart\"\n";

    fn restart(service: &str, path: &str) -> Job {
        Job {
            action: OnChange::Restart,
            services: vec![service.into()],
            paths: vec![path.into()],
        }
    }

    #[test]
    fn a_change_in_an_image_context_runs_up_instead_of_a_restart_on_the_old_image() {
        let rel = vec![
            PathBuf::from("services/api/main.go"),
            PathBuf::from("services/worker/w.go"),
        ];
        let jobs = vec![
            restart("api", "services/api/main.go"),
            restart("worker", "services/worker/w.go"),
        ];
        let jobs = with_image_builds(&loaded(TOML), jobs, &rel);
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        assert_eq!(jobs[0].action, OnChange::Helm);
        assert_eq!(jobs[0].services, vec!["api"]);
        assert_eq!(jobs[0].paths, vec![PathBuf::from("services/api/main.go")]);
        assert_eq!(jobs[1].services, vec!["worker"], "other restarts stay");
    }

    #[test]
    fn changes_outside_every_context_leave_the_jobs_alone() {
        let rel = vec![PathBuf::from("services/worker/w.go")];
        let jobs = vec![restart("worker", "services/worker/w.go")];
        let out = with_image_builds(&loaded(TOML), jobs, &rel);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].action, OnChange::Restart);
    }
}
