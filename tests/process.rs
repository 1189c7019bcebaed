//! The process runner against real processes, and the `minikube ssh` quoting against real shells.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use devenv::process::{
    Cmd, DryRunRunner, Platform, ProcessError, Runner, Stream, SystemRunner, ssh_command_line,
};

fn runner() -> SystemRunner {
    SystemRunner::new(Platform::Debian)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn output_is_captured_with_the_exit_code() {
    let out =
        block_on(runner().output(&Cmd::new("sh").args(["-c", "echo out; echo err >&2; exit 3"])))
            .unwrap();
    assert_eq!(out.code, Some(3));
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
}

#[test]
fn a_failing_command_names_itself_and_its_last_stderr_lines() {
    let cmd = Cmd::new("sh").args([
        "-c",
        "for i in $(seq 1 30); do echo line$i >&2; done; exit 4",
    ]);
    let err = block_on(runner().run(&cmd)).unwrap_err();
    let ProcessError::Exited {
        command,
        code,
        tail,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*code, Some(4));
    assert!(command.starts_with("sh -c 'for i in"), "{command}");
    assert!(tail.ends_with("line30"), "{tail}");
    assert!(!tail.contains("line1\n"), "only the tail is kept: {tail}");
    assert!(err.to_string().contains("exited with status 4"));
}

#[test]
fn a_missing_program_says_how_to_install_it() {
    let err =
        block_on(runner().run(&Cmd::new("exportfs").env("PATH", "/nonexistent"))).unwrap_err();
    assert!(matches!(err, ProcessError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.help().unwrap(),
        "install it: sudo apt-get install -y nfs-kernel-server"
    );
}

#[test]
fn a_command_past_its_limit_is_killed_and_reported() {
    let started = std::time::Instant::now();
    let err = block_on(
        runner().run(
            &Cmd::new("sleep")
                .arg("30")
                .timeout(Duration::from_millis(200)),
        ),
    )
    .unwrap_err();
    assert!(matches!(err, ProcessError::TimedOut { .. }), "{err:?}");
    assert!(err.to_string().contains("`sleep 30` did not finish"));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it was not waited for"
    );
}

#[test]
fn lines_are_streamed_as_they_arrive() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink_seen = seen.clone();
    let sink = move |stream: Stream, line: &str| {
        sink_seen.lock().unwrap().push((stream, line.to_string()));
    };
    block_on(runner().output_streaming(
        &Cmd::new("sh").args(["-c", "echo one; echo two >&2; printf three"]),
        Some(&sink),
    ))
    .unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        seen,
        vec![
            (Stream::Stdout, "one".to_string()),
            (Stream::Stdout, "three".to_string()),
            (Stream::Stderr, "two".to_string()),
        ]
    );
}

#[test]
fn stdin_is_fed_to_the_program() {
    let out = block_on(runner().run(&Cmd::new("cat").stdin("hello"))).unwrap();
    assert_eq!(out.stdout, "hello");
}

#[test]
fn dry_run_runs_probes_but_only_records_changes() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("touched");
    let dry = DryRunRunner::new(Arc::new(runner()), false);
    let probe = block_on(dry.run(&Cmd::new("echo").arg("probe").read_only())).unwrap();
    assert_eq!(probe.stdout, "probe\n");
    let change = Cmd::new("touch").arg(&marker);
    block_on(dry.run(&change)).unwrap();
    assert!(!marker.exists(), "the mutating command did not run");
    assert_eq!(dry.skipped(), vec![change.display()]);
}

/// Words that would be interpreted by a shell if they were not quoted.
const NASTY: &[&str] = &[
    "/Users/ann/My Projects/shop",
    "it's",
    "say \"hi\"",
    "$(touch /tmp/devenv-pwned)",
    "`touch /tmp/devenv-pwned`",
    "a; touch /tmp/devenv-pwned",
    "line one\nline two",
    "tab\there",
    "ünïcödé/日本語",
    "*",
    "~",
    "$HOME",
    "back\\slash",
    "",
    "-n",
    "&& || | > < #",
];

#[test]
fn ssh_command_line_reaches_real_shells_intact() {
    let line = ssh_command_line(&[["printf", "%s\\0"].as_slice(), NASTY].concat());
    for shell in ["sh", "bash", "dash"] {
        if which::which(shell).is_err() {
            continue;
        }
        let out = std::process::Command::new(shell)
            .args(["-c", &line])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let words: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split('\0')
            .map(str::to_string)
            .collect();
        assert_eq!(&words[..NASTY.len()], NASTY, "through {shell}");
    }
    assert!(!std::path::Path::new("/tmp/devenv-pwned").exists());
}

#[test]
fn display_quotes_what_a_shell_would_split() {
    let cmd = Cmd::new("helm")
        .args(["upgrade", "--values", "/my dir/v.yaml"])
        .env("KUBECONFIG", "/a b");
    assert_eq!(
        cmd.display(),
        "KUBECONFIG='/a b' helm upgrade --values '/my dir/v.yaml'"
    );
}
