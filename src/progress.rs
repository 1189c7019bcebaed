//! Progress on a terminal: one indicatif line per running stage with its elapsed time and the
//! latest line of the tool it runs, replaced by a ✓ / ✗ line when it ends.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::reconcile::{Event, Outcome, Reporter};

pub struct TerminalReporter {
    multi: MultiProgress,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl TerminalReporter {
    pub fn new() -> TerminalReporter {
        TerminalReporter {
            multi: MultiProgress::new(),
            bars: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Default for TerminalReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for TerminalReporter {
    fn event(&self, stage: &str, event: &Event) {
        let mut bars = self.bars.lock().expect("progress lock");
        match event {
            Event::Started => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:<12} {elapsed:>4} {wide_msg}")
                        .expect("valid template"),
                );
                bar.set_prefix(stage.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.insert(stage.to_string(), bar);
            }
            Event::Line(line) => {
                if let Some(bar) = bars.get(stage) {
                    bar.set_message(line.clone());
                }
            }
            Event::Finished { outcome, elapsed } => {
                let text = match outcome {
                    Outcome::Done(r) => format!(
                        "✓ {stage:<12} {:>5.1}s {}",
                        elapsed.as_secs_f64(),
                        r.summary
                    ),
                    Outcome::Failed(e) => format!(
                        "✗ {stage:<12} {:>5.1}s {}",
                        elapsed.as_secs_f64(),
                        e.message.lines().next().unwrap_or_default()
                    ),
                    Outcome::Skipped { because } => {
                        format!("- {stage:<12}        skipped: {because}")
                    }
                    Outcome::Cancelled => format!("✗ {stage:<12}        cancelled"),
                };
                match bars.remove(stage) {
                    Some(bar) => {
                        bar.set_style(
                            ProgressStyle::with_template("{msg}").expect("valid template"),
                        );
                        bar.finish_with_message(text);
                    }
                    None => {
                        let _ = self.multi.println(text);
                    }
                }
            }
        }
    }
}
