//! Reading what a probe printed: the one line worth quoting from a failure, and version numbers.
//! Shared by the drivers so that every check quotes failures the same way.

use crate::host::ProbeOutput;
use crate::status::Check;

/// The last non-empty line of `text`, without the `error: ` prefix virsh puts on every line. The
/// last line is the specific one: virsh prints a generic summary first ("failed to connect to the
/// hypervisor") and the cause after it.
pub(crate) fn last_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
}

/// What to quote from a failed probe: its last stderr line, else its last stdout line, else how it
/// ended.
pub(crate) fn failure_line(out: &ProbeOutput) -> String {
    if let Some(line) = last_line(&out.stderr).or_else(|| last_line(&out.stdout)) {
        return line.to_string();
    }
    match out.code {
        Some(code) => format!("exited with {code} and printed nothing"),
        None => "was killed by a signal".to_string(),
    }
}

/// `major.minor.patch` from text such as "v1.38.1", "14.5", "13.0.1" or "1.36.0-beta.0"; missing
/// parts count as 0. `None` when it does not start with a number.
pub(crate) fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let text = text.trim();
    let text = text.strip_prefix('v').unwrap_or(text);
    let mut parts = text.split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// A check that could not be made because an earlier one failed: a warning, so the earlier
/// failure stays the one reported first, with the fix that unblocks both.
pub(crate) fn not_checked(id: &str, because: &str, fix: &str, doc: &str) -> Check {
    Check::warn(id, format!("not checked: {because}"), fix, doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_quotes_the_cause_not_virshs_summary() {
        let stderr = "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory\n";
        assert_eq!(
            last_line(stderr),
            Some(
                "Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory"
            )
        );
    }

    #[test]
    fn last_line_skips_trailing_blank_lines() {
        assert_eq!(last_line("one\ntwo\n\n  \n"), Some("two"));
        assert_eq!(last_line("\n\n"), None);
    }

    #[test]
    fn failure_line_falls_back_to_stdout_then_the_exit_code() {
        let mut out = ProbeOutput {
            code: Some(3),
            stdout: "only stdout\n".into(),
            stderr: String::new(),
        };
        assert_eq!(failure_line(&out), "only stdout");
        out.stdout = "\n".into();
        assert_eq!(failure_line(&out), "exited with 3 and printed nothing");
        out.code = None;
        assert_eq!(failure_line(&out), "was killed by a signal");
    }

    #[test]
    fn parse_version_reads_minikube_and_macos_versions() {
        assert_eq!(parse_version("v1.38.1\n"), Some((1, 38, 1)));
        assert_eq!(parse_version("14.5"), Some((14, 5, 0)));
        assert_eq!(parse_version("13.0.1"), Some((13, 0, 1)));
        assert_eq!(parse_version("26.0"), Some((26, 0, 0)));
        assert_eq!(parse_version("26"), Some((26, 0, 0)));
        assert_eq!(parse_version("v1.36.0-beta.0"), Some((1, 36, 0)));
        assert_eq!(parse_version("unknown"), None);
        assert_eq!(parse_version(""), None);
    }
}
