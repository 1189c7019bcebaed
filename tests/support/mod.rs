//! Test harness: runs the built `devenv` binary in a temp project directory with a temp HOME, a
//! temp state dir and a temp exports file, so no test touches the machine's own files. Every
//! test double lives beside this file:
//! - `bin/minikube` stands in for minikube v1.38.1 (see its header for what it copies).
//!
//! Real tools (helm 3 and 4, kubectl, libvirtd) are found through [`real_tool`]: under CI they
//! must exist (`.ci/run` installs them); elsewhere a test that needs a missing one says so and
//! returns.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub struct Env {
    pub home: tempfile::TempDir,
    pub project: PathBuf,
    pub state: PathBuf,
    pub exports: PathBuf,
    pub minikube_state: PathBuf,
    path: OsString,
}

impl Env {
    /// A fresh, empty project with the fake minikube on PATH.
    pub fn new() -> Env {
        let home = tempfile::tempdir().expect("temp dir");
        let project = home.path().join("src/shop");
        let state = home.path().join("devenv-home");
        let minikube_state = home.path().join("minikube");
        let exports = home.path().join("exports");
        for d in [&project, &state, &minikube_state] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&exports, "# /etc/exports of a test\n").unwrap();
        let mut paths = vec![support_bin()];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        Env {
            path: std::env::join_paths(paths).unwrap(),
            home,
            project,
            state,
            exports,
            minikube_state,
        }
    }

    /// Remove the fake minikube from PATH (a machine where minikube is not installed).
    pub fn without_minikube(mut self) -> Env {
        let paths: Vec<PathBuf> = std::env::split_paths(&self.path)
            .filter(|p| p != &support_bin())
            .collect();
        self.path = std::env::join_paths(paths).unwrap();
        self
    }

    /// `devenv` with this environment, run in the project directory.
    pub fn devenv(&self) -> Command {
        let mut cmd = Command::cargo_bin("devenv").expect("devenv binary");
        cmd.current_dir(&self.project)
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", self.home.path())
            .env("USER", "ann")
            .env("DEVENV_HOME", &self.state)
            .env("DEVENV_EXPORTS_FILE", &self.exports)
            .env("FAKE_MINIKUBE_STATE", &self.minikube_state)
            .env("NO_COLOR", "1");
        cmd
    }

    /// Write devenv.toml (and whatever the test adds) into the project.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.project.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `devenv init --example`, asserted to succeed.
    pub fn example(&self) -> &Env {
        self.devenv().args(["init", "--example"]).assert().success();
        self
    }

    /// The fake minikube's argv log, one invocation per line.
    pub fn minikube_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.minikube_state.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Run the fake minikube directly (to prepare VM state).
    pub fn minikube(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(support_bin().join("minikube"))
            .args(args)
            .env("FAKE_MINIKUBE_STATE", &self.minikube_state)
            .output()
            .unwrap()
    }

    /// Replace the temp paths of this environment with stable placeholders (for snapshots).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (path, name) in [
            (self.project.clone(), "[PROJECT]"),
            (self.state.clone(), "[DEVENV_HOME]"),
            (self.exports.clone(), "[EXPORTS]"),
            (self.home.path().to_path_buf(), "[HOME]"),
        ] {
            if let Ok(canon) = path.canonicalize() {
                out = out.replace(&canon.to_string_lossy().into_owned(), name);
            }
            out = out.replace(&path.to_string_lossy().into_owned(), name);
        }
        // The state directory name carries a hash of the project's temp path.
        redact_hex(&out, "shop-", 8)
    }
}

/// Replace `<prefix><n hex digits>` with `<prefix>[HASH]`.
fn redact_hex(text: &str, prefix: &str, n: usize) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        out.push_str(&rest[..i + prefix.len()]);
        rest = &rest[i + prefix.len()..];
        let hex: String = rest.chars().take(n).collect();
        if hex.len() == n && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push_str("[HASH]");
            rest = &rest[n..];
        }
    }
    out.push_str(rest);
    out
}

pub fn support_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/bin")
}

/// A real tool by name (on PATH). Under CI a missing tool fails the test: `.ci/run` installs it.
pub fn real_tool(name: &str) -> Option<PathBuf> {
    match which::which(name) {
        Ok(p) => Some(p),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("{name} is required under CI (.ci/run installs it)")
        }
        Err(_) => {
            eprintln!("skipping: {name} is not installed here (CI installs it)");
            None
        }
    }
}
