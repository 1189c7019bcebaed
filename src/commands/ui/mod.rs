//! `devenv ui`: a live dashboard of the environment in the browser, served by devenv itself on
//! 127.0.0.1: the stages of the running or last `up`, every service with where it runs, its
//! pods, CPU and memory, URLs and logs, the VM and its mount, the alerts, and per service the
//! actions of the command line (restart, offload, back to the laptop), run through it.
//!
//! - [`server`]: HTTP on loopback with a token, the embedded page and the event stream.
//! - [`hub`]: what is known and told, and the actions.
//! - [`gather`]: the reads, every two seconds, and the log follow.

mod gather;
mod hub;
mod server;

use std::io::Read;
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::context::Context;
use crate::error::Error;
use crate::process::Cmd;

pub use hub::{LiveReporter, LiveRun};

/// Open a live dashboard of the environment in the browser
///
/// Serves one page on 127.0.0.1 (a free port unless --port) with a random token in its URL,
/// so other users of this machine and other web pages cannot use it, and opens it in the
/// browser (unless --no-open). The page shows the stages of the running or last `devenv up`,
/// every service with where it runs, its pods, CPU and memory with their recent history, its
/// URLs and its logs (follow, filter, pause), the VM with its mount and `stat` latency, and the
/// alerts; each service's actions (restart, offload to the remote cluster, back to the laptop)
/// run the same commands as `devenv restart` and `devenv offload`, and show their output.
/// Runs until Ctrl-C.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the address, do not open the browser.
    #[arg(long)]
    pub no_open: bool,
    /// Listen on this port of 127.0.0.1 (default: any free one).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub port: u16,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<i32, Error> {
    let loaded = ctx.load_config()?;
    let dashboard = start(ctx, &loaded, args.port, None).await?;
    dashboard.announce(ctx, !args.no_open).await;
    dashboard.serve_until_interrupted(ctx).await;
    Ok(0)
}

/// A running dashboard; its tasks end when it is dropped.
pub struct Dashboard {
    pub url: String,
    pub hub: Arc<hub::Hub>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Dashboard {
    /// Say where it is (the first line of stdout, or `{"dashboard": URL}` with --json) and
    /// open it in the browser when asked.
    pub async fn announce(&self, ctx: &Context, open: bool) {
        if ctx.ui.json {
            crate::outln!("{}", serde_json::json!({"dashboard": self.url}));
        } else {
            crate::outln!("dashboard: {}", self.url);
        }
        if open {
            let opener = if cfg!(target_os = "macos") {
                "open"
            } else {
                "xdg-open"
            };
            let cmd = Cmd::new(opener)
                .arg(&self.url)
                .timeout(std::time::Duration::from_secs(10));
            match ctx.runner.output(&cmd).await {
                Ok(out) if out.success() => {}
                _ => crate::errln!(
                    "{}",
                    ctx.ui.warn(&format!(
                        "could not open a browser with {opener}: open the address above yourself"
                    ))
                ),
            }
        }
    }

    /// Keep serving until Ctrl-C (or a signal that ends devenv).
    pub async fn serve_until_interrupted(&self, ctx: &Context) {
        if !ctx.ui.json && !ctx.ui.quiet {
            crate::errln!("the dashboard is at {} until Ctrl-C", self.url);
        }
        match crate::process::Interrupt::listen() {
            Ok(mut interrupt) => interrupt.recv().await,
            Err(_) => std::future::pending::<()>().await,
        }
    }
}

/// 32 random bytes from the system, as hex.
fn token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Start serving the dashboard of `loaded` on 127.0.0.1:`port` (0: any free port); `live` is
/// the run of `devenv up --ui` it shows as it happens.
pub async fn start(
    ctx: &Context,
    loaded: &crate::config::Loaded,
    port: u16,
    live: Option<Arc<LiveRun>>,
) -> Result<Dashboard, Error> {
    let c = &loaded.config;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .map_err(|e| Error::Usage {
            message: format!("cannot listen on 127.0.0.1:{port}: {e}"),
            help: "choose another --port, or leave it out for any free one".into(),
        })?;
    let addr = listener
        .local_addr()
        .map_err(Error::io("read", "the dashboard's address"))?;
    let token = token().map_err(Error::io("read", "/dev/urandom"))?;
    let mut prefix: Vec<std::ffi::OsString> = vec![
        "--color".into(),
        "never".into(),
        "-C".into(),
        ctx.cwd.clone().into(),
    ];
    if let Some(f) = &ctx.config_file {
        prefix.push("--config".into());
        prefix.push(f.clone().into());
    }
    let launch = hub::Launch {
        program: crate::process::daemon::self_exe()
            .map_err(Error::io("find", "the devenv executable"))?,
        prefix,
    };
    let hub = Arc::new(hub::Hub::new(
        c.services.keys().cloned().collect(),
        super::offload::offloadable(loaded),
        launch,
        ctx.runner.clone(),
    ));
    let export = crate::export::Export::at_address(ctx, loaded, None)?;
    let project = ctx.state_dir()?.project(&c.project.name, &loaded.root);
    let sources = gather::Sources {
        runner: ctx.runner.clone(),
        loaded: loaded.clone(),
        project,
        user: ctx.user.clone(),
        source: export.source.to_string_lossy().into_owned(),
        live,
    };
    let (moved, placed) = tokio::sync::watch::channel(Vec::new());
    let access = Arc::new(server::Access {
        token: token.clone(),
        addr,
    });
    let tasks = vec![
        tokio::spawn(server::serve(listener, hub.clone(), access)),
        tokio::spawn(gather::pictures(hub.clone(), sources, moved)),
        tokio::spawn(gather::logs(hub.clone(), placed)),
    ];
    Ok(Dashboard {
        url: format!("http://{addr}/?token={token}"),
        hub,
        tasks,
    })
}
