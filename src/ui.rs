//! Terminal output: colour decided once (flag, NO_COLOR, whether stdout is a terminal), quiet
//! and verbose levels, and the few styles devenv uses.

use std::io::IsTerminal;

use anstyle::{AnsiColor, Style};

/// `TERM=dumb`: a terminal (an editor's shell buffer, some CI consoles) that takes no escape
/// sequences, neither colours nor cursor moves.
pub fn dumb_terminal() -> bool {
    std::env::var_os("TERM").is_some_and(|t| t == "dumb")
}

#[derive(Debug, Clone)]
pub struct Ui {
    color: bool,
    pub quiet: bool,
    pub verbose: u8,
    pub json: bool,
}

impl Ui {
    pub fn new(
        choice: ColorChoice,
        no_color_env: bool,
        quiet: bool,
        verbose: u8,
        json: bool,
    ) -> Ui {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color_env && std::io::stdout().is_terminal(),
        };
        Ui {
            color: color && !json,
            quiet,
            verbose,
            json,
        }
    }

    /// Live progress lines only on a terminal that can redraw them; pipes, logs and a
    /// `TERM=dumb` terminal (where the progress library draws nothing at all) get one line
    /// per event.
    pub fn progress_bars(&self) -> bool {
        !self.json && !self.quiet && std::io::stderr().is_terminal() && !dumb_terminal()
    }

    pub fn color(&self) -> bool {
        self.color
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }

    pub fn ok(&self, text: &str) -> String {
        self.paint(AnsiColor::Green.on_default(), text)
    }

    pub fn warn(&self, text: &str) -> String {
        self.paint(AnsiColor::Yellow.on_default(), text)
    }

    pub fn fail(&self, text: &str) -> String {
        self.paint(AnsiColor::Red.on_default().bold(), text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint(Style::new().bold(), text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint(Style::new().dimmed(), text)
    }

    /// A line of normal output, suppressed by `--quiet`.
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.quiet {
            crate::outln!("{}", text.as_ref());
        }
    }
}

/// `--color`: when to use colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}
