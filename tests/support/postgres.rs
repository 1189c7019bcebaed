//! A real PostgreSQL server (Debian's `postgresql` package, installed by `.ci/run`) in a temp
//! directory, listening on 127.0.0.1 only, with trust authentication. Not a double: the offload
//! tunnel is tested with real bytes of the real protocol, and with a real restart.
//!
//! PostgreSQL refuses to run as root, so under root the server runs as the `postgres` user that
//! the package creates.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Postgres {
    bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

/// The directory of `initdb`, `pg_ctl` and `postgres` (Debian keeps them out of PATH).
fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|p| p.join("pg_ctl").is_file())
        .collect();
    found.sort();
    found.pop()
}

use super::is_root;

impl Postgres {
    /// Create and start a server; `None` (with a note) where PostgreSQL is not installed,
    /// a failed test under CI.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = server_bin() else {
            if std::env::var_os("CI").is_some() {
                panic!("PostgreSQL is required under CI (.ci/run installs it)");
            }
            eprintln!("skipping: PostgreSQL is not installed here (CI installs it)");
            return None;
        };
        super::real_tool("psql")?;
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Postgres { bin, dir, port };
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of the data directory");
        }
        let out = pg.as_server_user(
            "initdb",
            &[
                "-D",
                &pg.data().to_string_lossy(),
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_server();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_server_user(&self, tool: &str, args: &[&str]) -> Output {
        let program = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        // The temp dir's parent may not be readable by the server user; start from the data dir.
        cmd.current_dir(self.dir.path())
            .args(args)
            .output()
            .unwrap()
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data().to_string_lossy().into_owned();
        let log = self.dir.path().join("server.log");
        let mut all = vec!["-D", &data, "-w", "-t", "30"];
        let log_s = log.to_string_lossy().into_owned();
        let opts = format!(
            "-h 127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.path().display()
        );
        if args.first() == Some(&"start") {
            all.extend(["-l", &log_s, "-o", &opts]);
        }
        all.extend(args);
        let out = self.as_server_user("pg_ctl", &all);
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn start_server(&self) {
        self.pg_ctl(&["start"]);
    }

    /// Stop the server (fast: open sessions are ended) and wait until it is gone.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast"]);
    }

    /// Start it again on the same port.
    pub fn restart(&self) {
        self.start_server();
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data().to_string_lossy().into_owned();
        let _ = self.as_server_user("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
    }
}

/// Run one SQL statement with the real `psql` against `port` on 127.0.0.1; the output of `-At`
/// (values only) or the error.
pub fn psql(port: u16, sql: &str) -> Result<String, String> {
    psql_at("127.0.0.1", port, sql)
}

/// [`psql`] against `host`.
pub fn psql_at(host: &str, port: u16, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-h", host, "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-X", "-At", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "20")
        .current_dir(Path::new("/"))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
