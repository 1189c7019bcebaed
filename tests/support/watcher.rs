//! A running `devenv watch --json` as the watch tests drive it: started in a project, read line
//! by line, its records waited for with a generous bound, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Env;

const CHART: &str = "apiVersion: v2\nname: shop\nversion: 0.1.0\n";

pub fn project(env: &Env, services: &str) {
    env.write("deploy/chart/Chart.yaml", CHART);
    env.write(
        "devenv.toml",
        &format!("[project]\nname = \"shop\"\nchart = \"deploy/chart\"\n\n{services}"),
    );
}

/// A running `devenv watch --json`, its stdout read line by line on a thread.
pub struct Watch {
    pub child: Child,
    lines: Receiver<Value>,
}

impl Watch {
    pub fn start(env: &Env, debounce_ms: u32, args: &[&str]) -> Watch {
        let mut cmd = env.background();
        cmd.args(["--json", "watch", "--debounce", &debounce_ms.to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start devenv watch");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let w = Watch { child, lines: rx };
        let ready = w.next("ready");
        assert!(ready["elapsed_ms"].as_u64().is_some(), "{ready}");
        w
    }

    /// The next record of this event kind (others are skipped), within a generous bound.
    pub fn next(&self, event: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if v["event"] == event => return v,
                Ok(_) => continue,
                Err(e) => panic!("no {event} record from devenv watch: {e}"),
            }
        }
    }

    /// Every action record until the process exits, which must be a success.
    pub fn actions_until_exit(self) -> Vec<Value> {
        let (actions, status) = self.actions_and_exit();
        assert!(status.success(), "devenv watch exited with {status}");
        actions
    }

    /// Every action record until the process exits, and how it exited.
    pub fn actions_and_exit(mut self) -> (Vec<Value>, std::process::ExitStatus) {
        let mut actions = Vec::new();
        while let Ok(v) = self.lines.recv_timeout(Duration::from_secs(120)) {
            if v["event"] == "action" {
                actions.push(v);
            }
        }
        (actions, self.child.wait().unwrap())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn paths_of(action: &Value) -> Vec<String> {
    action["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}
