//! The command line as a user meets it: help, completions, colours, `init`.

mod support;

use predicates::prelude::*;
use support::Env;

#[test]
fn top_level_help_lists_only_working_commands_and_examples() {
    let out = Env::new().devenv().arg("--help").output().unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!("help", String::from_utf8(out.stdout).unwrap());
}

#[test]
fn up_help_explains_the_stages_and_dry_run() {
    let out = Env::new().devenv().args(["up", "--help"]).output().unwrap();
    insta::assert_snapshot!("up_help", String::from_utf8(out.stdout).unwrap());
}

/// Every command that changes the machine takes the same two flags, with the same words: they
/// come from one definition (`commands::change::Flags`) and mean the same everywhere.
#[test]
fn every_command_that_changes_the_machine_has_dry_run_and_yes() {
    let env = Env::new();
    let mut words: Option<(String, String)> = None;
    for command in [
        &["up"][..],
        &["down"],
        &["offload"],
        &["exports", "apply"],
        &["exports", "remove"],
        &["init"],
        &["onboard"],
    ] {
        let out = env.devenv().args(command).arg("--help").output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        // The option's line and its description (beside it in the short help, under it in the
        // long one), up to the next option or blank line, as one line of words.
        let said = |flag: &str| {
            let lines: Vec<&str> = help.lines().map(str::trim).collect();
            let at = lines
                .iter()
                .position(|l| {
                    l.strip_prefix(flag)
                        .is_some_and(|r| r.is_empty() || r.starts_with(' '))
                })
                .unwrap_or_else(|| panic!("devenv {command:?} has no {flag}:\n{help}"));
            std::iter::once(&lines[at][flag.len()..])
                .chain(
                    lines[at + 1..]
                        .iter()
                        .copied()
                        .take_while(|l| !l.is_empty() && !l.starts_with('-')),
                )
                .flat_map(|l| l.split_whitespace())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let these = (said("--dry-run"), said("-y, --yes"));
        match &words {
            None => words = Some(these),
            Some(first) => assert_eq!(first, &these, "devenv {command:?} says it otherwise"),
        }
    }
}

#[test]
fn version_is_the_package_version() {
    Env::new()
        .devenv()
        .arg("--version")
        .assert()
        .success()
        .stdout(format!("devenv {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        Env::new()
            .devenv()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("doctor"));
    }
}

#[test]
fn bash_completion_script_is_valid_bash() {
    let env = Env::new();
    let out = env.devenv().args(["completions", "bash"]).output().unwrap();
    let file = env.write("devenv.bash", &String::from_utf8(out.stdout).unwrap());
    let status = std::process::Command::new("bash")
        .arg("-n")
        .arg(file)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Real bash: the completion function of the generated script, asked as bash asks it.
fn bash_complete(env: &Env, words: &[&str]) -> String {
    let out = env.devenv().args(["completions", "bash"]).output().unwrap();
    let file = env.write("devenv.bash", &String::from_utf8(out.stdout).unwrap());
    let bin = assert_cmd::cargo::cargo_bin("devenv");
    let words: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_devenv_with_services devenv\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display(),
        words.join(" "),
        words.len() - 1
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(&env.project)
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", bin.parent().unwrap().display()),
        )
        .env("DEVENV_HOME", &env.state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_completes_the_offloadable_services_of_the_project_at_hand() {
    let env = Env::new();
    env.example();
    assert_eq!(
        bash_complete(&env, &["devenv", "offload", ""]),
        "postgres\nsearch\n"
    );
    assert_eq!(
        bash_complete(&env, &["devenv", "offload", "se"]),
        "search\n"
    );
    // logs, shell and forward take any service, offloadable or not.
    for command in ["logs", "shell", "forward", "urls"] {
        assert_eq!(
            bash_complete(&env, &["devenv", command, ""]),
            "api\npostgres\nsearch\nworker\n",
            "{command}"
        );
    }
    assert_eq!(
        bash_complete(&env, &["devenv", "logs", "api", "w"]),
        "worker\n"
    );
    // Options and other subcommands complete as generated.
    assert!(bash_complete(&env, &["devenv", "offload", "--r"]).contains("--remote"));
    assert!(bash_complete(&env, &["devenv", "do"]).contains("doctor"));
}

#[test]
fn zsh_and_fish_ask_devenv_for_the_service_names() {
    let env = Env::new();
    let zsh = env.devenv().args(["completions", "zsh"]).output().unwrap();
    let zsh = String::from_utf8(zsh.stdout).unwrap();
    assert!(
        zsh.contains("values_key):_devenv_services'"),
        "the service argument is hooked"
    );
    assert_eq!(
        zsh.matches(":_devenv_all_services'").count(),
        5,
        "the service arguments of logs, shell, forward, urls and restart are hooked"
    );
    assert!(zsh.contains("_devenv_all_services() {"));
    let define = zsh.find("_devenv_services() {").expect("defined");
    let dispatch = zsh.rfind("if [ \"$funcstack[1]\" = \"_devenv\" ]").unwrap();
    assert!(define < dispatch, "defined before the script runs");
    let fish = env.devenv().args(["completions", "fish"]).output().unwrap();
    assert!(String::from_utf8(fish.stdout).unwrap().contains(
        "complete -c devenv -n \"__fish_seen_subcommand_from offload\" -f -a \"(devenv offload --complete-names 2>/dev/null)\"\ncomplete -c devenv -n \"__fish_seen_subcommand_from logs shell forward urls restart\" -f -a \"(devenv logs --complete-names 2>/dev/null)\""
    ));
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    Env::new()
        .devenv()
        .arg("frobnicate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unrecognized subcommand"));
}

#[test]
fn colour_is_off_with_no_color_and_on_with_color_always() {
    let env = Env::new();
    env.example();
    let plain = env.devenv().args(["doctor"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains('\x1b'));
    let coloured = env
        .devenv()
        .args(["--color", "always", "doctor"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&coloured.stdout).contains("\x1b["));
}

#[test]
fn init_writes_a_commented_starter_that_names_the_directory() {
    let env = Env::new();
    env.devenv()
        .arg("init")
        .assert()
        .success()
        .stdout(predicate::str::contains("wrote devenv.toml"));
    let text = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    assert!(text.contains("name = \"shop\""));
    assert!(text.contains("# auto picks the healthy native driver"));
    // It parses: the only problem is the chart the user has yet to point at.
    let out = env.devenv().args(["up", "--dry-run"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("project.chart"), "{err}");
    assert_eq!(err.matches("devenv.toml:").count(), 1, "{err}");
}

#[test]
fn init_points_chart_at_an_existing_chart() {
    let env = Env::new();
    env.write(
        "ops/helm/Chart.yaml",
        "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
    );
    env.devenv().arg("init").assert().success();
    let text = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    assert!(text.contains("chart = \"ops/helm\""), "{text}");
}

#[test]
fn init_finds_a_chart_at_the_root_and_the_result_loads() {
    let env = Env::new().kvm_host();
    env.write("Chart.yaml", "apiVersion: v2\nname: shop\nversion: 0.1.0\n");
    env.devenv().arg("init").assert().success();
    let text = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    assert!(text.contains("chart = \".\""), "{text}");
    let out = env.devenv().args(["up", "--dry-run"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("project.chart"), "{err}");
}

#[test]
fn init_writes_with_the_users_umask_and_keeps_the_mode_of_a_file_it_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // Under umask 027 (set for the child through the shell), a new file is 0640, not 0600.
    let env = Env::new();
    let devenv = assert_cmd::cargo::cargo_bin("devenv");
    let mut sh = std::process::Command::new("sh");
    sh.current_dir(&env.project)
        .env("HOME", env.home.path())
        .env("DEVENV_HOME", &env.state)
        .arg("-c")
        .arg("umask 027 && exec \"$0\" init")
        .arg(&devenv);
    assert!(sh.status().unwrap().success());
    assert_eq!(mode(&env.project.join("devenv.toml")), 0o640);

    // An existing file keeps its own mode through --force.
    let file = env.project.join("devenv.toml");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o604)).unwrap();
    env.devenv()
        .args(["init", "--force", "--yes"])
        .assert()
        .success();
    assert_eq!(mode(&file), 0o604);
}

#[test]
fn init_names_the_project_after_the_directory_keeping_its_letters() {
    let env = Env::new().project_at("src/ÜberShop");
    env.devenv().arg("init").assert().success();
    let text = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    assert!(text.contains("name = \"ubershop\""), "{text}");
}

#[test]
fn init_never_overwrites_without_force() {
    let env = Env::new();
    env.write("devenv.toml", "# mine\n");
    env.devenv()
        .arg("init")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already exists: devenv.toml"))
        .stderr(predicate::str::contains("--force"));
    assert_eq!(
        std::fs::read_to_string(env.project.join("devenv.toml")).unwrap(),
        "# mine\n"
    );
    // --force overwrites, and what is overwritten is lost: without a terminal only --yes
    // agrees to it, and the dry run says it will ask.
    env.devenv()
        .args(["init", "--force", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "asks   overwrite devenv.toml (what they hold now is lost)",
        ));
    env.devenv()
        .args(["init", "--force"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pass --yes"));
    assert_eq!(
        std::fs::read_to_string(env.project.join("devenv.toml")).unwrap(),
        "# mine\n"
    );
    env.devenv()
        .args(["init", "--force", "--yes"])
        .assert()
        .success();
    assert_ne!(
        std::fs::read_to_string(env.project.join("devenv.toml")).unwrap(),
        "# mine\n"
    );
}

#[test]
fn init_dry_run_writes_nothing() {
    let env = Env::new();
    env.devenv()
        .args(["init", "--example", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("write  "))
        .stdout(predicate::str::contains("deploy/chart/Chart.yaml"))
        .stdout(predicate::str::contains("| apiVersion: v2"));
    assert!(!env.project.join("devenv.toml").exists());
}

#[test]
fn init_json_lists_the_files() {
    let env = Env::new();
    let out = env
        .devenv()
        .args(["--json", "init", "--example"])
        .output()
        .unwrap();
    // The run's events, one object per line, then what was written.
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|e| e["stage"] == "write" && e["event"] == "done"),
        "{stdout}"
    );
    let v = lines.last().unwrap();
    let files = v["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f == "deploy/values-dev.yaml"));
    for f in files {
        assert!(env.project.join(f.as_str().unwrap()).is_file(), "{f}");
    }
}

#[test]
fn example_project_config_is_valid() {
    let env = Env::new().kvm_host();
    env.example();
    env.devenv().args(["up", "--dry-run"]).assert().success();
}

#[test]
fn a_dry_run_that_would_stop_at_preflight_says_so_and_exits_1() {
    // No vmx flag in this host's /proc/cpuinfo: KVM guests cannot run.
    let env = Env::new().kvm_host();
    env.example();
    std::fs::write(
        env.home.path().join("host-root/proc/cpuinfo"),
        "processor\t: 0\nflags\t\t: fpu sse sse2\n",
    )
    .unwrap();
    env.devenv()
        .args(["up", "--dry-run"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("Plan for project shop"))
        .stderr(predicate::str::contains(
            "error: preflight would stop: driver kvm2 is not usable here",
        ));
    let (code, plan) = env.json_dry_run();
    assert_eq!(code, Some(1));
    assert_eq!(plan["would_stop"][0]["stage"], "preflight", "{plan}");
}

#[test]
fn dash_c_runs_in_another_directory_and_config_names_a_file() {
    let env = Env::new();
    env.example();
    let elsewhere = env.home.path();
    Env::new()
        .kvm_host()
        .devenv()
        .current_dir(elsewhere)
        .args(["-C", env.project.to_str().unwrap(), "up", "--dry-run"])
        .env("DEVENV_EXPORTS_FILE", &env.exports)
        .assert()
        .success()
        .stdout(predicate::str::contains("Plan for project shop"));
    let cfg = env.project.join("devenv.toml");
    Env::new()
        .kvm_host()
        .devenv()
        .current_dir(elsewhere)
        .args(["--config", cfg.to_str().unwrap(), "up", "--dry-run"])
        .assert()
        .success();
}

/// Runs `devenv ARGS` with stdout going to a full disk (`/dev/full`) and to a pipe whose
/// reader is gone, as in `devenv status --json | true`.
fn output_lost(env: &Env, args: &[&str]) -> Vec<(String, Option<i32>, String)> {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let to_full = env
        .background()
        .args(args)
        .stdout(full)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let mut child = env
        .background()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let to_closed = child.wait_with_output().unwrap();
    vec![
        (
            "> /dev/full".to_string(),
            to_full.status.code(),
            String::from_utf8_lossy(&to_full.stderr).into_owned(),
        ),
        (
            "| true".to_string(),
            to_closed.status.code(),
            String::from_utf8_lossy(&to_closed.stderr).into_owned(),
        ),
    ]
}

#[test]
fn no_command_panics_when_its_output_goes_to_a_closed_pipe_or_a_full_disk() {
    let env = Env::new();
    env.example();
    for args in [
        &["status", "--json"][..],
        &["status"],
        &["up", "--dry-run"],
        &["offload"],
        &["completions", "bash"],
        &["exports"],
    ] {
        for (how, code, stderr) in output_lost(&env, args) {
            assert_ne!(code, Some(101), "devenv {args:?} {how} panicked: {stderr}");
            assert!(
                !stderr.contains("panicked"),
                "devenv {args:?} {how}: {stderr}"
            );
        }
    }
}
