//! A malformed devenv.toml is reported with file, line, column and key, exits 2, and never
//! panics. Each case is a kind of mistake people make.

mod support;

use support::Env;

/// A valid base the cases below break one piece of.
const CHART: &str = "apiVersion: v2\nname: shop\nversion: 0.1.0\ndependencies:\n  - name: postgresql\n    version: 0.1.0\n";

fn env_with_chart() -> Env {
    let env = Env::new();
    env.write("deploy/chart/Chart.yaml", CHART);
    env.write("deploy/chart/values.yaml", "api:\n  replicas: 1\n");
    env
}

/// Run `devenv up --dry-run` on `toml` and return stderr, asserting exit code 2 and no panic.
fn rejected(toml: &str) -> String {
    let env = env_with_chart();
    env.write("devenv.toml", toml);
    let out = env.devenv().args(["up", "--dry-run"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing planned for a broken file");
    stderr
}

/// The error names `devenv.toml:<line>:<col>: <key>:`.
fn assert_located(stderr: &str, line: usize, key: &str) {
    let needle = format!("devenv.toml:{line}:");
    let at = stderr
        .find(&needle)
        .unwrap_or_else(|| panic!("no {needle} in:\n{stderr}"));
    let rest = &stderr[at + needle.len()..];
    let after_col = rest.split_once(": ").map(|(_, r)| r).unwrap_or("");
    assert!(
        after_col.starts_with(&format!("{key}: ")),
        "expected key {key} after the position in:\n{stderr}"
    );
}

#[test]
fn toml_syntax_error_points_at_the_line() {
    let e = rejected("[project]\nname = \"shop\n");
    assert!(e.contains("devenv.toml:2:"), "{e}");
}

#[test]
fn unknown_key_suggests_the_right_one() {
    let e = rejected("[project]\nname = \"shop\"\n\n[vm]\ncpu = 4\n");
    assert_located(&e, 5, "vm.cpu");
    assert!(e.contains("did you mean `cpus`?"), "{e}");
}

#[test]
fn unknown_table_is_refused() {
    let e = rejected("[project]\nname = \"shop\"\n\n[mounts]\nsource = \".\"\n");
    assert_located(&e, 4, "mounts");
    assert!(e.contains("did you mean `mount`?"), "{e}");
}

#[test]
fn wrong_type_names_the_key() {
    let e = rejected("[project]\nname = \"shop\"\n[vm]\ncpus = \"four\"\n");
    assert_located(&e, 4, "vm.cpus");
    assert!(
        e.contains("expected a whole number, 0 or more, found the text \"four\""),
        "{e}"
    );
}

#[test]
fn type_errors_are_said_without_rust_words() {
    let e = rejected("[project]\nname = \"shop\"\n[vm]\ncpus = 2.5\n");
    assert_located(&e, 4, "vm.cpus");
    assert!(
        e.contains("expected a whole number, 0 or more, found 2.5"),
        "{e}"
    );
    let e = rejected("[project]\nname = \"shop\"\n[services.api]\nports = [80, \"x\"]\n");
    assert!(
        e.contains("devenv.toml:4:14:"),
        "points at the element: {e}"
    );
    assert!(e.contains("a whole number from 0 to 65535"), "{e}");
    for rust in ["u16", "u32", "invalid type", "floating point", "sequence"] {
        assert!(!e.contains(rust), "{rust} in: {e}");
    }
}

#[test]
fn a_table_written_twice_is_named() {
    let e = rejected(
        "[project]\nname = \"shop\"\n[services.api]\nport = 80\n[services.api]\nhost = \"a\"\n",
    );
    assert!(e.contains("devenv.toml:5:"), "{e}");
    assert!(e.contains("[services.api] appears twice"), "{e}");
}

#[test]
fn missing_project_name_is_named() {
    let e = rejected("[project]\nchart = \"deploy/chart\"\n");
    assert!(e.contains("project.name: missing field `name`"), "{e}");
}

#[test]
fn memory_without_a_unit_is_refused() {
    let e = rejected("[project]\nname = \"shop\"\n[vm]\nmemory = \"6144\"\n");
    assert_located(&e, 4, "vm.memory");
    assert!(e.contains("has no unit"), "{e}");
}

#[test]
fn memory_with_an_unknown_unit_is_refused() {
    let e = rejected("[project]\nname = \"shop\"\n[vm]\nmemory = \"6q\"\n");
    assert_located(&e, 4, "vm.memory");
}

#[test]
fn too_few_cpus_for_minikube() {
    let e = rejected("[project]\nname = \"shop\"\n[vm]\ncpus = 1\n");
    assert_located(&e, 4, "vm.cpus");
    assert!(e.contains("at least 2"), "{e}");
}

#[test]
fn too_little_memory_is_out_of_range() {
    let e = rejected("[project]\nname = \"shop\"\n[vm]\nmemory = \"512m\"\n");
    assert_located(&e, 4, "vm.memory");
    assert!(e.contains("out of range"), "{e}");
}

#[test]
fn virtualbox_is_refused_with_the_reason() {
    let e = rejected("[project]\nname = \"shop\"\n[vm]\ndriver = \"virtualbox\"\n");
    assert_located(&e, 4, "vm.driver");
    assert!(e.contains("300%"), "{e}");
}

#[test]
fn project_name_must_be_a_dns_label() {
    let e = rejected("[project]\nname = \"My Shop\"\n");
    assert_located(&e, 2, "project.name");
}

#[test]
fn chart_directory_must_exist() {
    let e = rejected("[project]\nname = \"shop\"\nchart = \"nowhere\"\n");
    assert_located(&e, 3, "project.chart");
    assert!(e.contains("not a Helm chart"), "{e}");
}

#[test]
fn values_files_must_exist() {
    let e = rejected("[project]\nname = \"shop\"\nvalues = [\"deploy/missing.yaml\"]\n");
    assert_located(&e, 3, "project.values.0");
}

#[test]
fn values_key_must_exist_in_the_chart() {
    let e =
        rejected("[project]\nname = \"shop\"\n\n[services.postgres]\nvalues_key = \"postgres\"\n");
    assert_located(&e, 5, "services.postgres.values_key");
    assert!(e.contains("did you mean `postgresql`?"), "{e}");
}

#[test]
fn two_services_cannot_share_a_host() {
    let e = rejected(
        "[project]\nname = \"shop\"\n[services.a]\nhost = \"db\"\n[services.b]\nhost = \"db\"\n",
    );
    assert_located(&e, 6, "services.b.host");
    assert!(e.contains("already used by service \"a\""), "{e}");
}

#[test]
fn duplicate_service_tables_are_a_syntax_error() {
    let e =
        rejected("[project]\nname = \"shop\"\n[services.a]\nport = 1\n[services.a]\nport = 2\n");
    assert!(e.contains("devenv.toml:5:"), "{e}");
}

#[test]
fn misspelt_on_change_value_suggests_the_valid_one() {
    let e = rejected("[project]\nname = \"shop\"\n[services.api]\non_change = \"restat\"\n");
    assert_located(&e, 4, "services.api.on_change");
    assert!(e.contains("did you mean `restart`?"), "{e}");
}

#[test]
fn port_out_of_range_is_refused() {
    let e = rejected("[project]\nname = \"shop\"\n[services.db]\nport = 70000\n");
    assert_located(&e, 4, "services.db.port");
}

#[test]
fn offloaded_service_needs_a_remote_section() {
    let e = rejected(
        "[project]\nname = \"shop\"\n[services.db]\nvalues_key = \"postgresql\"\nhost = \"db\"\nport = 5432\noffload = \"remote\"\n",
    );
    assert_located(&e, 7, "services.db.offload");
    assert!(e.contains("[remote]"), "{e}");
}

#[test]
fn relative_mount_target_is_refused() {
    let e = rejected("[project]\nname = \"shop\"\n[mount]\ntarget = \"src\"\n");
    assert_located(&e, 4, "mount.target");
}

#[test]
fn bad_kubernetes_version_is_refused() {
    let e = rejected("[project]\nname = \"shop\"\n[vm]\nkubernetes_version = \"1.31\"\n");
    assert_located(&e, 4, "vm.kubernetes_version");
}

#[test]
fn several_problems_are_reported_together() {
    let e = rejected("[project]\nname = \"shop\"\n[vm]\ncpus = 1\nmax_pods = 5000\n");
    assert_located(&e, 4, "vm.cpus");
    assert_located(&e, 5, "vm.max_pods");
}

#[test]
fn no_config_at_all_says_how_to_make_one() {
    let env = Env::new();
    env.devenv()
        .args(["up", "--dry-run"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no devenv.toml"))
        .stderr(predicates::str::contains("devenv init"));
}

#[test]
fn an_image_context_that_does_not_exist_and_a_bad_tag_are_both_located() {
    let e = rejected(
        "[project]\nname = \"shop\"\n\n[services.api]\nvalues_key = \"api\"\n\n[services.api.image]\ncontext = \"services/nope\"\ntag = \"Shop API\"\n",
    );
    assert_located(&e, 8, "services.api.image.context");
    assert!(e.contains("services/nope is not a directory"), "{e}");
    assert_located(&e, 9, "services.api.image.tag");
    assert!(e.contains("is not an image reference"), "{e}");
}

#[test]
fn an_image_without_a_values_key_is_refused() {
    let e = rejected(
        "[project]\nname = \"shop\"\n\n[services.api]\n\n[services.api.image]\ncontext = \".\"\ntag = \"shop-api:dev\"\n",
    );
    assert!(
        e.contains("services.api.image: a built image needs `values_key`"),
        "{e}"
    );
}

#[test]
fn alert_thresholds_out_of_range_are_located() {
    let e = rejected(
        "[project]\nname = \"shop\"\n\n[watch.alerts]\nvm_memory = 120\nvm_cpu_for = \"30\"\n",
    );
    assert_located(&e, 5, "watch.alerts.vm_memory");
    assert_located(&e, 6, "watch.alerts.vm_cpu_for");
}

#[test]
fn a_watch_glob_that_does_not_compile_is_refused_at_load_with_its_line() {
    let e = rejected(
        "[project]\nname = \"shop\"\n[services.api]\nwatch = [\"src/**\", \"src/{a,b\"]\n",
    );
    assert_located(&e, 4, "services.api.watch.1");
    assert!(e.contains("\"src/{a,b\" is not a valid glob"), "{e}");
}

#[test]
fn a_source_that_holds_the_project_is_refused_unless_meant() {
    let e = rejected("[project]\nname = \"shop\"\n[mount]\nsource = \"..\"\n");
    assert_located(&e, 4, "mount.source");
    assert!(
        e.contains("holds the project instead of being in it"),
        "{e}"
    );
    assert!(e.contains("allow_outside_project = true"), "{e}");
    let env = env_with_chart();
    env.write(
        "devenv.toml",
        "[project]\nname = \"shop\"\n[mount]\nsource = \"..\"\nallow_outside_project = true\n",
    );
    let out = env.devenv().args(["up", "--dry-run"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("holds the project"), "{stderr}");
}

#[test]
fn a_mount_point_in_the_vms_system_directories_is_refused() {
    for target in ["/etc/src", "/src/../etc", "/proc", "/usr/local/src", "//"] {
        let e = rejected(&format!(
            "[project]\nname = \"shop\"\n[mount]\ntarget = \"{target}\"\n"
        ));
        assert_located(&e, 4, "mount.target");
    }
    let e = rejected("[project]\nname = \"shop\"\n[mount]\ntarget = \"/var/lib/docker\"\n");
    assert!(e.contains("would break it"), "{e}");
}

#[test]
fn a_duration_longer_than_a_week_is_refused_without_overflow() {
    let e = rejected("[project]\nname = \"shop\"\nrollout_timeout = \"99999999999999999h\"\n");
    assert_located(&e, 3, "project.rollout_timeout");
    assert!(e.contains("longer than a week"), "{e}");
}

#[test]
fn every_problem_of_the_file_is_reported_in_one_run() {
    let e = rejected(
        "[project]\nname = \"shop\"\nchart = \"deploy/chart\"\nrollout_timeout = 5\n\n[vm]\ncpus = \"four\"\nmax_pods = 5000\nmemory = \"lots\"\n\n[servics.api]\nx = 1\n\n[services.api]\nports = [\"http\"]\non_change = \"restrat\"\n",
    );
    for (line, key) in [
        (4, "project.rollout_timeout"),
        (7, "vm.cpus"),
        (8, "vm.max_pods"),
        (9, "vm.memory"),
        (11, "servics"),
        (15, "services.api.ports"),
        (16, "services.api.on_change"),
    ] {
        assert_located(&e, line, key);
    }
    assert!(
        !e.contains("devenv.toml:12:"),
        "the misspelt table's keys are not reported one by one:\n{e}"
    );
}

#[test]
fn a_required_key_with_the_wrong_type_is_one_problem_not_two() {
    let e = rejected("[project]\nname = 5\n");
    assert_located(&e, 2, "project.name");
    assert!(!e.contains("missing"), "no echo of the key set aside:\n{e}");
    assert_eq!(e.matches("devenv.toml:").count(), 1, "{e}");
}

#[test]
fn a_file_that_is_not_utf8_names_the_line_and_the_byte() {
    let env = env_with_chart();
    std::fs::write(
        env.project.join("devenv.toml"),
        b"[project]\nname = \"shop\"\n# caf\xe9\n",
    )
    .unwrap();
    let out = env.devenv().args(["up", "--dry-run"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("devenv.toml:3:6: byte 0xE9 is not UTF-8"),
        "{stderr}"
    );
    assert!(stderr.contains("save devenv.toml as UTF-8"), "{stderr}");
}

#[test]
fn every_error_ends_with_its_code_and_where_it_is_explained() {
    let env = Env::new();
    let out = env.devenv().args(["up", "--dry-run"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("code: config-not-found (https://")
            && last.ends_with("/docs/troubleshooting.md#config-not-found)"),
        "{stderr}"
    );
    let e = rejected("[project]\nname = 5\n");
    assert!(e.contains("code: config-invalid ("), "{e}");
}

#[test]
fn platform_keys_are_checked_where_they_are_written() {
    let e = rejected(
        "[project]\nname = \"shop\"\n\n[requires]\nhelm = \">= three\"\n\n[remote]\ncontext = \"dev\"\n\n[remote.quota]\nmemory = \"8GB\"\n\n[services.api]\nneeds = [\"postgress\"]\n\n[services.postgres]\n",
    );
    assert_located(&e, 5, "requires.helm");
    assert!(e.contains("is not a version range"), "{e}");
    assert_located(&e, 11, "remote.quota.memory");
    assert!(e.contains("write it like \"8Gi\""), "{e}");
    assert_located(&e, 14, "services.api.needs.0");
    assert!(e.contains("did you mean \"postgres\"?"), "{e}");
}
