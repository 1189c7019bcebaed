//! `devenv doctor --bundle`: one `.tar.gz` a developer attaches to a ticket instead of a
//! screenshot. It holds what the platform team asks for first (doctor's findings, every tool's
//! version, the machine, devenv.toml, the developer's toggles, the last runs of `up`, the
//! exports block, minikube's status and logs, the release and its namespace's events, the
//! tunnel), each file passed through [`redact`] before it is written.
//!
//! A broken laptop is the point: whatever cannot be collected (no minikube, a broken
//! devenv.toml, a stopped VM, an unreachable cluster) is listed with the reason in
//! `MISSING.txt`, and the rest is still written.

pub mod redact;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Loaded;
use crate::context::Context;
use crate::process::{Cmd, Output};

/// The directory every file of the archive is under.
pub const ROOT: &str = "devenv-bundle";
/// How long one program may take to answer.
const ASK: Duration = Duration::from_secs(20);
/// Lines kept of long logs.
const TAIL: usize = 300;

/// The files collected, already redacted, and what could not be.
#[derive(Debug, Default)]
pub struct Bundle {
    pub files: Vec<(String, Vec<u8>)>,
    pub missing: Vec<(String, String)>,
}

impl Bundle {
    fn text(&mut self, name: &str, text: &str) {
        self.files
            .push((name.to_string(), redact::text(text).into_bytes()));
    }

    fn json(&mut self, name: &str, value: &Value) {
        let pretty = serde_json::to_string_pretty(&redact::json(value)).expect("json") + "\n";
        self.files.push((name.to_string(), pretty.into_bytes()));
    }

    fn missed(&mut self, what: &str, why: impl Into<String>) {
        self.missing.push((what.to_string(), why.into()));
    }

    /// A program's answer as a file, or why there is none.
    fn answer(&mut self, name: &str, what: &str, cmd: &Cmd, answer: Result<Output, String>) {
        match answer {
            Ok(out) if out.success() => self.text(name, &out.stdout),
            Ok(out) => {
                let said = format!("{}{}", out.stdout, out.stderr);
                self.text(name, &said);
                self.missed(
                    what,
                    format!(
                        "`{}` exited with {}: {}",
                        redact::text(&cmd.display()),
                        out.code.map_or("a signal".into(), |c| c.to_string()),
                        redact::text(&crate::process::tail_lines(&said, 2))
                    ),
                );
            }
            Err(why) => self.missed(what, why),
        }
    }
}

/// Gather everything. `loaded` is `None` when devenv.toml is missing or broken (`config_error`
/// says why); `doctor` is doctor's JSON report.
pub async fn collect(
    ctx: &Context,
    loaded: Option<&Loaded>,
    config_error: Option<String>,
    doctor: &Value,
) -> Bundle {
    let mut b = Bundle::default();
    b.json("doctor.json", doctor);
    versions(ctx, &mut b).await;
    b.json("system.json", &system(ctx).await);
    let broken = config_error.is_some();
    config(ctx, loaded, config_error, &mut b);
    // kubectl hides certificates and tokens itself; the rest passes through redact as well.
    let kubeconfig = Cmd::new("kubectl").args(["config", "view"]);
    let answer = ask(ctx, &kubeconfig).await;
    b.answer("kubeconfig.yaml", "kubeconfig", &kubeconfig, answer);
    let Some(l) = loaded else {
        for what in [
            "state",
            "runs",
            "exports block",
            "minikube",
            "release",
            "tunnel",
        ] {
            b.missed(
                what,
                if broken {
                    "devenv.toml cannot be read, so the project (and its profile, release and state) is unknown"
                } else {
                    "not in a project (no devenv.toml from here upwards)"
                },
            );
        }
        return b;
    };
    project_files(ctx, l, &mut b);
    exports_block(ctx, l, &mut b);
    vm_and_release(ctx, l, &mut b).await;
    b
}

async fn ask(ctx: &Context, cmd: &Cmd) -> Result<Output, String> {
    ctx.runner
        .output(&cmd.clone().read_only().timeout(ASK))
        .await
        .map_err(|e| redact::text(&e.to_string()))
}

/// `versions.txt`: what each program devenv may drive says about itself.
async fn versions(ctx: &Context, b: &mut Bundle) {
    let programs: [(&str, &[&str]); 9] = [
        ("minikube", &["version"]),
        ("helm", &["version"]),
        ("kubectl", &["version", "--client"]),
        ("docker", &["--version"]),
        ("virsh", &["--version"]),
        ("qemu-system-x86_64", &["--version"]),
        ("vfkit", &["--version"]),
        ("hyperkit", &["-v"]),
        ("exportfs", &["-v"]),
    ];
    let answers = futures_util::future::join_all(
        programs
            .iter()
            .map(|(p, args)| async move { (p, ask(ctx, &Cmd::new(*p).args(*args)).await) }),
    )
    .await;
    let mut text = format!("devenv {}\n", env!("CARGO_PKG_VERSION"));
    for (program, answer) in answers {
        let said = match answer {
            Ok(out) => format!("{}{}", out.stdout, out.stderr),
            Err(why) => format!("({why})\n"),
        };
        text.push_str(&format!("\n$ {program}\n{}", said.trim_end()));
        text.push('\n');
    }
    b.text("versions.txt", &text);
}

/// `system.json`: the OS, the CPU and what the machine has to give a VM.
async fn system(ctx: &Context) -> Value {
    let uname = ask(ctx, &Cmd::new("uname").arg("-srvm")).await.ok();
    let os_release = std::fs::read_to_string("/etc/os-release").ok();
    let sw_vers = if cfg!(target_os = "macos") {
        ask(ctx, &Cmd::new("sw_vers")).await.ok().map(|o| o.stdout)
    } else {
        None
    };
    let resources = crate::machine::resources(ctx.host_root.as_deref());
    json!({
        "devenv": env!("CARGO_PKG_VERSION"),
        "platform": ctx.platform.name(),
        "os": format!("{:?}", crate::machine::current_os()).to_lowercase(),
        "arch": format!("{:?}", crate::machine::current_arch()).to_lowercase(),
        "uname": uname.map(|o| o.stdout.trim().to_string()),
        "os_release": os_release,
        "sw_vers": sw_vers,
        "cpus": resources.map(|r| r.cpus),
        "memory_mib": resources.map(|r| r.memory_mib),
    })
}

/// `devenv.toml` as it is on disk (even when it does not load) and the error when it does not.
fn config(ctx: &Context, loaded: Option<&Loaded>, error: Option<String>, b: &mut Bundle) {
    let file = loaded.map(|l| l.file.clone()).or_else(|| {
        ctx.config_file
            .clone()
            .or_else(|| crate::config::find(&ctx.cwd).ok())
    });
    match file.map(|f| (std::fs::read(&f), f)) {
        Some((Ok(bytes), _)) => b.text("devenv.toml", &String::from_utf8_lossy(&bytes)),
        Some((Err(e), f)) => b.missed("devenv.toml", format!("{}: {e}", f.display())),
        None => b.missed("devenv.toml", "there is none from here upwards"),
    }
    if let Some(e) = error {
        b.text("devenv.toml.error.txt", &e);
    }
}

/// The developer's state, the last runs of `up` and the tunnel's files.
fn project_files(ctx: &Context, l: &Loaded, b: &mut Bundle) {
    let Ok(dir) = ctx.state_dir() else {
        b.missed("state", "devenv's state directory cannot be found ($HOME?)");
        return;
    };
    let project = dir.project(&l.config.project.name, &l.root);
    match project.load() {
        Ok(state) => b.json(
            "state.json",
            &serde_json::to_value(&state).unwrap_or_default(),
        ),
        Err(e) => b.missed("state", e.to_string()),
    }
    let runs = crate::runlog::recent(project.path());
    if runs.is_empty() {
        b.missed("runs", "no `devenv up` has run in this project yet");
    }
    for run in runs {
        let name = run.file_name().unwrap_or_default().to_string_lossy();
        match std::fs::read_to_string(&run) {
            Ok(text) => {
                let lines: Vec<String> = text
                    .lines()
                    .map(|l| match serde_json::from_str::<Value>(l) {
                        Ok(v) => redact::json(&v).to_string(),
                        Err(_) => redact::text(l),
                    })
                    .collect();
                b.files.push((
                    format!("runs/{name}"),
                    (lines.join("\n") + "\n").into_bytes(),
                ));
            }
            Err(e) => b.missed(&format!("runs/{name}"), e.to_string()),
        }
    }
    let tunnel = crate::offload::tunnel::Files::new(project.path());
    match std::fs::read(tunnel.status()) {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => b.json("tunnel-status.json", &v),
            Err(_) => b.text("tunnel-status.json", &String::from_utf8_lossy(&bytes)),
        },
        Err(_) => b.missed("tunnel status", "no tunnel has run for this project"),
    }
    if tunnel.log().exists() {
        b.text("tunnel.log", &tunnel.log_tail(TAIL));
    }
}

/// devenv's blocks of the exports file (the rest of the file is other people's).
fn exports_block(ctx: &Context, l: &Loaded, b: &mut Bundle) {
    let path = &ctx.exports_file;
    let dialect = if crate::machine::current_os() == devenv_drivers::Os::MacOs {
        devenv_drivers::ExportsDialect::MacOs
    } else {
        devenv_drivers::ExportsDialect::Linux
    };
    let bytes = match crate::nfs::read_exports(path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return b.missed(
                "exports block",
                format!("{} does not exist", path.display()),
            );
        }
        Err(e) => return b.missed("exports block", format!("{}: {e}", path.display())),
    };
    match crate::nfs::file::ExportsFile::parse_bytes(&bytes, dialect) {
        Ok(file) => {
            let mut text = format!("# devenv's blocks of {}\n", path.display());
            for key in file.blocks() {
                text.push_str(&format!("\n# {key}\n"));
                for line in file.block_lines(&key.project, key.uid).unwrap_or_default() {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
            if file.blocks().is_empty() {
                text.push_str(&format!("(none; project {})\n", l.config.project.name));
            }
            b.text("exports.txt", &text);
        }
        Err(e) => b.missed(
            "exports block",
            format!("{} cannot be read: {e}", path.display()),
        ),
    }
}

/// minikube's view of the VM, the release and the namespace's recent events.
async fn vm_and_release(ctx: &Context, l: &Loaded, b: &mut Bundle) {
    let c = &l.config;
    let profile = c.project.profile();
    let status = crate::minikube::status(&profile);
    let logs = Cmd::new("minikube").args(["logs", "-p", &profile, "--length", "200"]);
    let helm = Cmd::new("helm")
        .args(["status", c.project.release()])
        .args(["--namespace", c.project.namespace()])
        .args(["--kube-context", &profile]);
    let (s, lg, h, events) = tokio::join!(
        ask(ctx, &status),
        ask(ctx, &logs),
        ask(ctx, &helm),
        recent_events(&profile, c.project.namespace())
    );
    // `minikube status` exits non-zero for a stopped VM, and says so: that is the answer.
    match s {
        Ok(out) => b.text(
            "minikube-status.json",
            &format!("{}{}", out.stdout, out.stderr),
        ),
        Err(why) => b.missed("minikube status", why),
    }
    b.answer("minikube-logs.txt", "minikube logs", &logs, lg);
    b.answer("release.txt", "the release's status", &helm, h);
    match events {
        Ok(v) => b.json("events.json", &v),
        Err(why) => b.missed("events", why),
    }
}

/// The last 50 events of the release's namespace, oldest first.
async fn recent_events(context: &str, namespace: &str) -> Result<Value, String> {
    use k8s_openapi::api::core::v1::Event;
    let client = crate::cluster::client(context)
        .await
        .map_err(|e| e.to_string())?;
    let api: kube::Api<Event> = kube::Api::namespaced(client, namespace);
    let list = crate::cluster::answered(
        "the namespace's events",
        Duration::from_secs(15),
        api.list(&Default::default()),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut items = list.items;
    items.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    let start = items.len().saturating_sub(50);
    Ok(Value::Array(
        items[start..]
            .iter()
            .map(|e| {
                json!({
                    "time": e.last_timestamp.as_ref().map(|t| t.0.to_string()),
                    "type": e.type_,
                    "reason": e.reason,
                    "object": format!(
                        "{}/{}",
                        e.involved_object.kind.clone().unwrap_or_default(),
                        e.involved_object.name.clone().unwrap_or_default()
                    ),
                    "message": e.message,
                    "count": e.count,
                })
            })
            .collect(),
    ))
}

/// The default file name: `devenv-bundle-<UTC time>.tar.gz` in the working directory.
pub fn default_path(cwd: &Path) -> PathBuf {
    let stamp = k8s_openapi::jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
    cwd.join(format!("devenv-bundle-{stamp}.tar.gz"))
}

/// Write the archive to `path` (readable by the user only), never half: it is written beside
/// and renamed into place. `MISSING.txt` lists what could not be collected.
pub fn write(bundle: &Bundle, path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".devenv-bundle")
        .tempfile_in(dir)?;
    {
        let gz = flate2::write::GzEncoder::new(tmp.as_file(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mut missing = String::new();
        for (what, why) in &bundle.missing {
            missing.push_str(&format!("{what}: {why}\n"));
        }
        let extra =
            (!missing.is_empty()).then(|| ("MISSING.txt".to_string(), missing.into_bytes()));
        for (name, bytes) in bundle.files.iter().chain(extra.iter()) {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o600);
            header.set_mtime(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            );
            header.set_cksum();
            tar.append_data(&mut header, format!("{ROOT}/{name}"), bytes.as_slice())?;
        }
        tar.into_inner()?.finish()?.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
