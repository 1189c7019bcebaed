//! Everything a command may learn about its surroundings, gathered once at start-up: the
//! working directory, the relevant environment variables, the output settings and the process
//! runner. Commands never read `std::env` themselves, so tests control all of it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{self, ConfigError, Loaded};
use crate::error::Error;
use crate::process::{Platform, Runner, SystemRunner};
use crate::state::StateDir;
use crate::ui::ColorChoice;
use crate::ui::Ui;

pub struct Context {
    /// The directory devenv acts in (`-C` applied).
    pub cwd: PathBuf,
    /// `--config`, when given.
    pub config_file: Option<PathBuf>,
    /// `$DEVENV_HOME`, when set.
    pub devenv_home: Option<PathBuf>,
    pub platform: Platform,
    /// The NFS exports file (`$DEVENV_EXPORTS_FILE`, else /etc/exports): tests point it at a
    /// temp file so the machine's own is never touched.
    pub exports_file: PathBuf,
    /// The hosts file (`$DEVENV_HOSTS_FILE`, else /etc/hosts): tests point it at a temp file.
    pub hosts_file: PathBuf,
    /// The developer's login name, for names on the shared cluster.
    pub user: String,
    /// `/usr/share/firmlinks` on macOS (or `$DEVENV_FIRMLINKS_FILE`): which top-level paths are
    /// firmlinks into `/System/Volumes/Data`. Empty elsewhere.
    pub firmlinks: String,
    /// `$DEVENV_EXPORTS_RELOAD`: a command line that replaces the NFS server reload (for tests
    /// and NFS servers devenv does not know).
    pub exports_reload: Option<String>,
    /// Whether a person can answer prompts (stdin is a terminal).
    pub interactive: bool,
    /// `$DEVENV_HOST_ROOT`: read `/proc` and `/dev` below this directory (tests of a KVM host).
    pub host_root: Option<PathBuf>,
    pub ui: Ui,
    pub runner: Arc<dyn Runner>,
}

impl Context {
    /// Gather the context from the process environment.
    pub fn from_env(global: &Global) -> Result<Context, Error> {
        let start = std::env::current_dir().map_err(Error::io("read", "the current directory"))?;
        let cwd = match &global.directory {
            Some(dir) if dir.is_absolute() => dir.clone(),
            Some(dir) => start.join(dir),
            None => start,
        };
        if !cwd.is_dir() {
            return Err(Error::Usage {
                message: format!("-C {}: no such directory", cwd.display()),
                help: "give an existing directory".into(),
            });
        }
        let config_file = global.config.as_ref().map(|f| {
            if f.is_absolute() {
                f.clone()
            } else {
                cwd.join(f)
            }
        });
        // NO_COLOR (no-color.org), or a terminal that says it understands no escape sequences.
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
            || crate::ui::dumb_terminal();
        let platform = crate::process::detect_platform();
        let devenv_home = std::env::var_os("DEVENV_HOME").map(PathBuf::from);
        Ok(Context {
            cwd,
            config_file,
            runner: Arc::new(runner(platform, devenv_home.clone())),
            devenv_home,
            platform,
            hosts_file: std::env::var_os("DEVENV_HOSTS_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(crate::hosts::HOSTS_FILE)),
            exports_file: std::env::var_os("DEVENV_EXPORTS_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(crate::nfs::EXPORTS_FILE)),
            user: user_name(
                std::env::var("USER")
                    .or_else(|_| std::env::var("LOGNAME"))
                    .ok(),
            ),
            firmlinks: std::env::var_os("DEVENV_FIRMLINKS_FILE")
                .map(PathBuf::from)
                .or_else(|| {
                    cfg!(target_os = "macos").then(|| PathBuf::from("/usr/share/firmlinks"))
                })
                .and_then(|f| std::fs::read_to_string(f).ok())
                .unwrap_or_default(),
            exports_reload: std::env::var("DEVENV_EXPORTS_RELOAD").ok(),
            interactive: std::io::stdin().is_terminal(),
            host_root: std::env::var_os("DEVENV_HOST_ROOT").map(PathBuf::from),
            ui: Ui::new(
                global.color,
                no_color,
                global.quiet,
                global.verbose,
                global.json,
            ),
        })
    }

    /// Find and load devenv.toml (`--config`, else the nearest one upwards from the cwd).
    pub fn load_config(&self) -> Result<Loaded, ConfigError> {
        let file = match &self.config_file {
            Some(f) => f.clone(),
            None => config::find(&self.cwd)?,
        };
        config::load(&file)
    }

    pub fn state_dir(&self) -> Result<StateDir, Error> {
        Ok(StateDir::locate(self.devenv_home.clone())?)
    }
}

/// The runner, recording its process groups under the state directory (`run/groups`) so that
/// a devenv killed with SIGKILL leaves nothing running past the next command.
fn runner(platform: Platform, devenv_home: Option<PathBuf>) -> SystemRunner {
    let runner = SystemRunner::new(platform);
    match StateDir::locate(devenv_home) {
        Ok(state) => runner.with_orphan_registry(crate::process::orphans::Registry::new(
            state.root().join("run/groups"),
        )),
        Err(_) => runner,
    }
}

/// The login name as a DNS label fragment (it becomes part of a namespace name).
fn user_name(raw: Option<String>) -> String {
    let cleaned: String = raw
        .unwrap_or_default()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let cleaned = cleaned.trim_matches('-').to_string();
    if cleaned.is_empty() {
        // SAFETY: getuid has no preconditions and cannot fail.
        format!("uid{}", unsafe { libc::getuid() })
    } else {
        cleaned
    }
}

/// The options every command takes.
#[derive(Debug, clap::Args)]
pub struct Global {
    /// Run as if started in DIR.
    #[arg(short = 'C', value_name = "DIR", global = true)]
    pub directory: Option<PathBuf>,
    /// Use this devenv.toml instead of searching for one.
    #[arg(long, value_name = "FILE", global = true, env = "DEVENV_CONFIG")]
    pub config: Option<PathBuf>,
    /// Say more (-v: each command run; -vv: everything).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Say only what went wrong.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// When to use colours (NO_COLOR in the environment means never).
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}
