//! The last few runs of `up`, kept as the JSON events `--json` prints, one file per run in the
//! project's state directory (`runs/up-<UTC time>.jsonl`, readable by the user only). When a
//! run went wrong on a laptop, `devenv doctor --bundle` attaches them: what each stage said and
//! how it ended, whatever the terminal showed at the time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::reconcile::{Event, Reporter, event_json};

/// How many runs are kept.
pub const KEEP: usize = 5;

/// Appends each event of one run to its file. Writing is best effort: a full disk must not
/// stop an `up`.
pub struct RunLog {
    file: Mutex<Option<std::fs::File>>,
}

impl RunLog {
    /// A new log for `command` in `dir`, dropping the oldest beyond [`KEEP`].
    pub fn create(project_dir: &Path, command: &str) -> RunLog {
        let file = (|| {
            let dir = project_dir.join("runs");
            std::fs::create_dir_all(&dir)?;
            let stamp = k8s_openapi::jiff::Timestamp::now()
                .strftime("%Y%m%dT%H%M%S%.3fZ")
                .to_string();
            let path = dir.join(format!("{command}-{stamp}.jsonl"));
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(&path)?;
            let runs = recent(project_dir);
            for old in runs.iter().skip(KEEP) {
                let _ = std::fs::remove_file(old);
            }
            Ok::<_, std::io::Error>(file)
        })()
        .ok();
        RunLog {
            file: Mutex::new(file),
        }
    }
}

impl Reporter for RunLog {
    fn event(&self, stage: &str, event: &Event) {
        if let Ok(mut guard) = self.file.lock()
            && let Some(file) = guard.as_mut()
            && writeln!(file, "{}", event_json(stage, event)).is_err()
        {
            *guard = None;
        }
    }
}

/// The run logs under a project's state directory, newest first.
pub fn recent(project_dir: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(project_dir.join("runs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    // The names sort by time.
    runs.sort();
    runs.reverse();
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::Outcome;

    #[test]
    fn each_run_is_a_file_of_json_events_and_only_the_last_five_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..7 {
            let log = RunLog::create(dir.path(), "up");
            log.event("vm", &Event::Line(format!("run {i}")));
            log.event(
                "vm",
                &Event::Finished {
                    outcome: Outcome::Cancelled,
                    elapsed: std::time::Duration::from_millis(5),
                },
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let runs = recent(dir.path());
        assert_eq!(runs.len(), KEEP);
        let newest = std::fs::read_to_string(&runs[0]).unwrap();
        assert_eq!(
            newest,
            "{\"event\":\"line\",\"line\":\"run 6\",\"stage\":\"vm\"}\n{\"event\":\"cancelled\",\"stage\":\"vm\"}\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&runs[0]).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
