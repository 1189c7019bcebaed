//! `devenv top`: the resources of the environment, live. Every interval it samples the
//! hypervisor process on the host, the VM, and each service's containers in the VM's Docker
//! daemon with their pods' restarts, draws one table (redrawn in place on a terminal) with a
//! short CPU history per service, and raises the alerts of `[watch.alerts]`, which name the
//! heaviest local service and the command that offloads it.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::config::{Loaded, Placement};
use crate::context::Context;
use crate::error::Error;
use crate::watch::resources::{AlertRules, Bytes, History, Sample, sparkline};
use crate::watch::sample::Sampler;

/// Show CPU, memory and restarts per service, live, with alerts.
///
/// Samples the hypervisor process on this laptop (qemu, hyperkit or vfkit: CPU and RSS), the VM
/// (CPU and memory, through one read-only `minikube ssh`), every container of the project's
/// namespace in the VM's Docker daemon, and the pods' restart counts. Alerts follow
/// [watch.alerts] in devenv.toml (default: VM CPU above 300 % for 30 s, VM memory above 80 %)
/// and name the heaviest local service with the `devenv offload` command for it. With --json,
/// prints one sample per line. Stop with Ctrl-C.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Take one sample, print it and exit.
    #[arg(long)]
    pub once: bool,
    /// Time between samples ("2s", "1m"; default: watch.interval of devenv.toml, else 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    pub interval: Option<Duration>,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    match crate::config::parse_duration(text)? {
        d if d.is_zero() => Err("must be longer than 0s".into()),
        d => Ok(d),
    }
}

/// How many samples the history column shows.
const HISTORY: usize = 20;

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let loaded = ctx.load_config()?;
    let c = &loaded.config;
    let state = ctx
        .state_dir()?
        .project(&c.project.name, &loaded.root)
        .load()?;
    let placements: Vec<(String, Placement)> = c
        .services
        .iter()
        .map(|(n, s)| (n.clone(), state.placement(n, s)))
        .collect();
    let local: Vec<String> = placements
        .iter()
        .filter(|(_, p)| *p == Placement::Local)
        .map(|(n, _)| n.clone())
        .collect();
    let interval = args.interval.unwrap_or_else(|| c.watch.interval());
    let mut sampler = Sampler::new(ctx.runner.clone(), &loaded);
    let mut rules = AlertRules::new(&c.watch.alerts);
    let mut screen = Screen::new(&loaded, placements, interval, ctx);
    let mut interrupt =
        crate::process::Interrupt::listen().map_err(Error::io("listen for", "Ctrl-C"))?;
    let started = Instant::now();
    loop {
        let begun = Instant::now();
        let mut sample = tokio::select! {
            s = sampler.sample() => s,
            _ = interrupt.recv() => break,
        };
        sample.alerts = rules.check(&sample, &local, started.elapsed());
        if ctx.ui.json {
            crate::outln!(
                "{}",
                serde_json::to_string(&sample).expect("a sample serialises")
            );
        } else {
            screen.draw(&sample);
        }
        if args.once {
            // Nothing could be read at all: say so through the exit code too.
            let nothing =
                sample.vm.is_none() && sample.hypervisor.is_none() && sample.services.is_empty();
            return Ok(i32::from(nothing));
        }
        let wait = interval.saturating_sub(begun.elapsed());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = interrupt.recv() => break,
        }
    }
    Ok(0)
}

/// The table, with each figure's recent history.
struct Screen {
    project: String,
    profile: String,
    placements: Vec<(String, Placement)>,
    interval: Duration,
    in_place: bool,
    ui: crate::ui::Ui,
    vm_cpu: History,
    host_cpu: History,
    services: std::collections::BTreeMap<String, History>,
}

impl Screen {
    fn new(
        loaded: &Loaded,
        placements: Vec<(String, Placement)>,
        interval: Duration,
        ctx: &Context,
    ) -> Screen {
        Screen {
            project: loaded.config.project.name.clone(),
            profile: loaded.config.project.profile(),
            placements,
            interval,
            in_place: std::io::stdout().is_terminal(),
            ui: ctx.ui.clone(),
            vm_cpu: History::new(HISTORY),
            host_cpu: History::new(HISTORY),
            services: Default::default(),
        }
    }

    fn draw(&mut self, s: &Sample) {
        let text = self.render(s);
        if self.in_place {
            // Home the cursor and clear the screen, then draw: the table stays in one place.
            crate::out!("\x1b[H\x1b[2J{text}");
        } else {
            crate::outln!("{text}");
        }
    }

    fn render(&mut self, s: &Sample) -> String {
        let mut out = format!(
            "{} · {} ({}) · every {}s\n\n",
            self.ui.bold("devenv top"),
            self.project,
            self.profile,
            self.interval.as_secs_f64()
        );
        match &s.hypervisor {
            Some(h) => {
                self.host_cpu.push(h.cpu_percent);
                out.push_str(&format!(
                    "{:<12} {} (pid {}): CPU {:.0} %, RSS {}  {}\n",
                    "hypervisor",
                    h.name,
                    h.pid,
                    h.cpu_percent,
                    Bytes(h.rss_bytes),
                    sparkline(&self.host_cpu.values(), 100.0)
                ));
            }
            None => out.push_str(&format!(
                "{:<12} {}\n",
                "hypervisor",
                self.ui
                    .dim("no qemu, hyperkit or vfkit process of this profile on this machine")
            )),
        }
        match &s.vm {
            Some(vm) => {
                self.vm_cpu.push(vm.cpu_percent);
                out.push_str(&format!(
                    "{:<12} CPU {:.0} % of {} cpus, memory {} of {} ({:.0} %)  {}\n",
                    "VM",
                    vm.cpu_percent,
                    vm.cpus,
                    Bytes(vm.memory_used_bytes),
                    Bytes(vm.memory_total_bytes),
                    vm.memory_percent,
                    sparkline(&self.vm_cpu.values(), 100.0)
                ));
            }
            None => out.push_str(&format!("{:<12} {}\n", "VM", self.ui.dim("not read"))),
        }
        out.push_str(&format!(
            "\n{:<16} {:<7} {:>7} {:>10} {:>8}  {}\n",
            "SERVICE", "WHERE", "CPU %", "MEMORY", "RESTARTS", "CPU HISTORY"
        ));
        for (name, placement) in &self.placements {
            let usage = s.services.iter().find(|u| &u.service == name);
            let history = self
                .services
                .entry(name.clone())
                .or_insert_with(|| History::new(HISTORY));
            let restarts_of = |u: Option<&crate::watch::resources::ServiceUsage>| {
                u.and_then(|u| u.restarts)
                    .map_or("-".to_string(), |r| r.to_string())
            };
            let (cpu, memory, restarts) = match (placement, usage) {
                (Placement::Remote, _) => ("-".to_string(), "-".to_string(), "-".to_string()),
                // Figures that could not be read are unknown, not zero (the reason is below).
                (Placement::Local, u) if !s.containers_read => {
                    ("-".to_string(), "-".to_string(), restarts_of(u))
                }
                (Placement::Local, Some(u)) => {
                    history.push(u.cpu_percent);
                    (
                        format!("{:.1}", u.cpu_percent),
                        Bytes(u.memory_bytes).to_string(),
                        u.restarts.map_or("?".to_string(), |r| r.to_string()),
                    )
                }
                (Placement::Local, None) => {
                    history.push(0.0);
                    ("0.0".to_string(), "-".to_string(), "-".to_string())
                }
            };
            let where_ = match placement {
                Placement::Local => "local",
                Placement::Remote => "remote",
            };
            out.push_str(&format!(
                "{name:<16} {where_:<7} {cpu:>7} {memory:>10} {restarts:>8}  {}\n",
                sparkline(&history.values(), 100.0)
            ));
        }
        for a in &s.alerts {
            out.push_str(&format!("\n{}: {}", self.ui.warn("alert"), a.message));
        }
        for e in &s.errors {
            out.push_str(&format!("\n{}: {e}", self.ui.dim("not read")));
        }
        if !s.alerts.is_empty() || !s.errors.is_empty() {
            out.push('\n');
        }
        out
    }
}
