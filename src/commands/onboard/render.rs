//! The plan as people read it: each step's title, why, and its exact commands, sudo marked.

use super::*;

pub(super) fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::MacOs => "macOS",
        Platform::Debian => "Debian/Ubuntu",
        Platform::Fedora => "Fedora",
        Platform::Arch => "Arch Linux",
        Platform::OtherLinux => "a Linux without apt or dnf",
        Platform::Other => "an OS other than Linux and macOS",
    }
}

/// The plan as the developer reads it: every step with its reason and exact commands, files
/// shown in full, then the separate sudoers offer.
pub fn render(plan: &Plan, ui: &Ui) -> String {
    let mut out = String::new();
    let system = match (plan.platform, plan.os_version.as_deref()) {
        (Platform::MacOs, version) => {
            let cpu = match plan.cpu.as_str() {
                "arm64" | "aarch64" => "Apple silicon",
                "x86_64" => "Intel",
                _ => "unknown CPU",
            };
            format!(
                "macOS {} on {} ({cpu})",
                version.unwrap_or("(version unknown)"),
                plan.cpu
            )
        }
        (p, _) => format!("{} on {}", platform_name(p), plan.cpu),
    };
    out.push_str(&ui.bold("devenv onboard: this machine"));
    out.push('\n');
    out.push_str(&format!("  system:  {system}\n"));
    out.push_str(&format!("  driver:  {}\n", plan.driver));
    let list = |names: &[String]| {
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    };
    out.push_str(&format!("  found:   {}\n", list(&plan.found)));
    out.push_str(&format!("  missing: {}\n", list(&plan.missing)));
    out.push('\n');

    if plan.steps.is_empty() {
        out.push_str("Plan: nothing to install.\n");
    } else {
        let n = plan.steps.len();
        out.push_str(&ui.bold(&format!("Plan: {n} step{}", plural(n))));
        if plan.steps.iter().any(|s| s.sudo) {
            out.push_str(
                " (those marked [sudo] run commands as root with sudo, which may ask for your \
                 password)",
            );
        }
        out.push('\n');
        for (i, step) in plan.steps.iter().enumerate() {
            out.push('\n');
            render_step(&mut out, &format!("{}.", i + 1), step, ui);
        }
    }
    out.push('\n');
    out.push_str(&ui.bold("Offered separately, only after its own yes (or --exports-helper):"));
    out.push('\n');
    render_step(&mut out, "-", &plan.sudoers, ui);
    out.push('\n');
    out.push_str(&format!(
        "Then `{}` checks the result, and the next command is `{}`.\n",
        plan.then, plan.next
    ));
    out
}

pub(super) fn render_step(out: &mut String, label: &str, step: &Step, ui: &Ui) {
    let mut title = format!("{label} {}", step.title);
    if step.sudo {
        title.push_str("  [sudo]");
    }
    if step.manual {
        title.push_str("  [yours to do]");
    }
    out.push_str(&ui.bold(&title));
    out.push('\n');
    out.push_str(&wrap(&step.why, "   "));
    for action in &step.actions {
        match action {
            Action::Run { argv, .. } => {
                out.push_str(&format!("   $ {}\n", join(argv.iter().map(String::as_str))));
            }
            Action::Write { path, contents } => {
                out.push_str(&format!("   write {}:\n", path.display()));
                for line in contents.lines() {
                    out.push_str(&format!("     | {line}\n"));
                }
            }
            Action::Manual { shell } => {
                out.push_str(&format!("   you run: {shell}\n"));
            }
        }
    }
    if let Some(after) = &step.after {
        out.push_str(&wrap(&format!("afterwards: {after}"), "   "));
    }
}

/// Wrap `text` at [`WIDTH`] columns, each line starting with `indent`.
pub(super) fn wrap(text: &str, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > WIDTH {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}
