//! `devenv onboard` on fake machines: a Debian, a Fedora, an Apple silicon Mac and an Intel Mac,
//! each a PATH holding only the fakes of `support/bin/onboard/` (package managers, sudo, uname,
//! sw_vers, id…), which log every call. The OS family is given with the hidden `--platform`
//! flag, so every family's plan is checked on any machine.
//!
//! The plan shows every command before anything runs; a dry run only asks read-only questions;
//! without a terminal it needs `--yes`; with `--yes` the commands run in the plan's order, root
//! ones through sudo; the first failure stops everything and says what was done; the sudoers
//! snippet needs its own yes.

mod support;

use predicates::prelude::*;
use support::Env;

const DEBIAN: &[&str] = &[
    "uname",
    "id",
    "sudo",
    "apt-get",
    "dpkg-query",
    "dpkg",
    "curl",
    "usermod",
    "groupadd",
    "systemctl",
    "install",
    "visudo",
];
const FEDORA: &[&str] = &[
    "uname",
    "id",
    "sudo",
    "dnf",
    "rpm",
    "curl",
    "usermod",
    "groupadd",
    "systemctl",
    "install",
    "visudo",
];
const MACOS: &[&str] = &[
    "uname", "sw_vers", "id", "sudo", "brew", "curl", "install", "visudo",
];

/// A Debian laptop with nothing of devenv's yet but curl and libvirt's client tools.
fn debian() -> Env {
    let env = Env::new().machine(DEBIAN, &[]);
    env.machine_has("dpkg", &["libvirt-clients"]);
    env
}

/// A Debian laptop that already has everything the plan would install.
fn debian_with_everything() -> Env {
    let env = Env::new().machine(
        DEBIAN,
        &["minikube", "helm", "kubectl", "qemu-system-x86_64"],
    );
    env.machine_has(
        "dpkg",
        &[
            "libvirt-daemon-system",
            "libvirt-clients",
            "nfs-kernel-server",
        ],
    );
    env.machine_has("units", &["libvirtd", "nfs-server"]);
    env.machine_has("groups", &["libvirt"]);
    env.machine_has("login-groups", &["ann libvirt"]);
    env
}

/// A Fedora laptop with only the NFS tools.
fn fedora() -> Env {
    let env = Env::new().machine(FEDORA, &[]);
    env.machine_has("rpm", &["nfs-utils"]);
    env
}

fn mac(present: &[&str]) -> Env {
    Env::new().machine(MACOS, present)
}

/// `devenv onboard --dry-run` with these extra arguments and environment, asserted to succeed;
/// stdout with the temp paths redacted.
fn dry_run(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> String {
    let out = env
        .onboard()
        .arg("--dry-run")
        .args(args)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    env.redact(&String::from_utf8(out.stdout).unwrap())
}

/// The calls that change the machine (downloads, Homebrew, anything through sudo), with the temp
/// paths redacted; read-only probes are left out.
fn changes(env: &Env) -> Vec<String> {
    env.machine_calls()
        .iter()
        .filter(|c| ["sudo ", "curl ", "brew "].iter().any(|p| c.starts_with(p)))
        .map(|c| env.redact(c))
        .collect()
}

/// The questions onboard may ask a machine without changing it.
const PROBES: &[&str] = &[
    "uname -m",
    "sw_vers -productVersion",
    "id -u",
    "id -un",
    "id -Gn",
    "dpkg-query -W -f ${Package} ${db:Status-Abbrev}\\n qemu-kvm libvirt-daemon-system libvirt-clients nfs-kernel-server",
    "rpm -q --qf %{NAME}\\n libvirt-daemon qemu-kvm nfs-utils",
    "systemctl is-enabled libvirtd",
    "systemctl is-enabled nfs-server",
];

fn assert_only_probes(env: &Env) {
    let calls = env.machine_calls();
    assert!(!calls.is_empty(), "onboard looked at the machine");
    for call in &calls {
        assert!(
            PROBES.contains(&call.as_str()),
            "only read-only questions, got `{call}` in {calls:#?}"
        );
    }
}

#[test]
fn debian_plan_installs_what_is_missing_with_apt_and_the_projects_own_packages() {
    let env = debian();
    insta::assert_snapshot!("debian_plan", dry_run(&env, &["--platform", "debian"], &[]));
}

#[test]
fn fedora_plan_installs_the_virtualization_group_and_minikubes_rpm() {
    let env = fedora();
    insta::assert_snapshot!("fedora_plan", dry_run(&env, &["--platform", "fedora"], &[]));
}

#[test]
fn apple_silicon_plan_installs_the_missing_formulae_and_vfkit() {
    let env = mac(&["kubectl"]);
    insta::assert_snapshot!(
        "macos_arm64_plan",
        dry_run(
            &env,
            &["--platform", "macos"],
            &[("FAKE_UNAME_M", "arm64"), ("FAKE_SW_VERS", "14.5")]
        )
    );
}

#[test]
fn intel_mac_plan_with_driver_hyperkit_installs_hyperkit_and_its_setuid_driver() {
    let env = mac(&["minikube", "helm", "kubectl"]);
    insta::assert_snapshot!(
        "macos_intel_hyperkit_plan",
        dry_run(
            &env,
            &["--platform", "macos", "--driver", "hyperkit"],
            &[("FAKE_UNAME_M", "x86_64"), ("FAKE_SW_VERS", "13.6.1")]
        )
    );
}

#[test]
fn arm64_linux_is_told_that_minikubes_kvm2_driver_is_amd64_only() {
    let env = debian();
    env.onboard()
        .args(["--platform", "debian", "--dry-run"])
        .env("FAKE_UNAME_M", "aarch64")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "minikube's kvm2 driver runs on x86_64 (amd64) only, and this machine has an aarch64 CPU",
        ))
        .stderr(predicate::str::contains("use an x86_64 machine"));
    assert!(
        !env.state.join("onboard").exists(),
        "nothing is downloaded or written"
    );
}

#[test]
fn a_dry_run_only_asks_read_only_questions_and_writes_nothing() {
    let only_asks = |env: Env, args: &[&str], vars: &[(&str, &str)]| {
        let plan = dry_run(&env, args, vars);
        assert!(plan.ends_with("Dry run: nothing was changed.\n"), "{plan}");
        assert_only_probes(&env);
        assert!(
            !env.state.join("onboard").exists(),
            "nothing is downloaded or written"
        );
    };
    only_asks(debian(), &["--platform", "debian"], &[]);
    only_asks(fedora(), &["--platform", "fedora"], &[]);
    only_asks(
        mac(&[]),
        &["--platform", "macos"],
        &[("FAKE_UNAME_M", "arm64")],
    );
    only_asks(
        mac(&[]),
        &["--platform", "macos", "--driver", "hyperkit", "--sudoers"],
        &[],
    );
}

#[test]
fn json_lists_each_step_with_its_argv_and_changes_nothing() {
    let env = debian();
    let out = env
        .onboard()
        .args(["--platform", "debian"])
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["platform"], "debian");
    assert_eq!(plan["driver"], "kvm2");
    assert_eq!(plan["next"], "devenv init");
    let steps = plan["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "helm-repository",
            "kubernetes-repository",
            "apt",
            "minikube",
            "libvirt-group",
            "services"
        ]
    );
    let apt = &steps[2];
    assert_eq!(apt["sudo"], true);
    assert_eq!(
        apt["actions"][1],
        serde_json::json!({
            "kind": "run",
            "sudo": true,
            "argv": ["sudo", "apt-get", "install", "-y", "qemu-kvm", "libvirt-daemon-system",
                     "nfs-kernel-server", "helm", "kubectl"],
        })
    );
    assert_eq!(plan["sudoers"]["actions"][0]["kind"], "write");
    assert_only_probes(&env);
}

#[test]
fn without_a_terminal_or_yes_it_shows_the_plan_and_changes_nothing() {
    let env = debian();
    env.onboard()
        .args(["--platform", "debian"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains(
            "$ sudo apt-get install -y qemu-kvm libvirt-daemon-system nfs-kernel-server helm kubectl",
        ))
        .stderr(predicate::str::contains(
            "there is no terminal to ask on: nothing was changed",
        ))
        .stderr(predicate::str::contains("devenv onboard --yes"));
    assert_only_probes(&env);
}

#[test]
fn yes_runs_every_command_in_the_plans_order_then_the_doctor() {
    let env = debian();
    let out = env
        .onboard()
        .args(["--platform", "debian", "--yes"])
        .output()
        .unwrap();
    let stdout = env.redact(&String::from_utf8_lossy(&out.stdout));
    let w = "[DEVENV_HOME]/onboard";
    assert_eq!(
        changes(&env),
        [
            format!(
                "curl -fsSL --create-dirs -o {w}/helm.asc https://packages.buildkite.com/helm-linux/helm-debian/gpgkey"
            ),
            format!("sudo install -D -m 0644 {w}/helm.asc /etc/apt/keyrings/helm.asc"),
            format!(
                "sudo install -m 0644 {w}/helm.list /etc/apt/sources.list.d/helm-stable-debian.list"
            ),
            format!(
                "curl -fsSL --create-dirs -o {w}/kubernetes.asc https://pkgs.k8s.io/core:/stable:/v1.31/deb/Release.key"
            ),
            format!(
                "sudo install -D -m 0644 {w}/kubernetes.asc /etc/apt/keyrings/kubernetes-apt-keyring.asc"
            ),
            format!(
                "sudo install -m 0644 {w}/kubernetes.list /etc/apt/sources.list.d/kubernetes.list"
            ),
            "sudo apt-get update".to_string(),
            "sudo apt-get install -y qemu-kvm libvirt-daemon-system nfs-kernel-server helm kubectl"
                .to_string(),
            format!(
                "curl -fL --create-dirs -o {w}/minikube_latest_amd64.deb https://storage.googleapis.com/minikube/releases/latest/minikube_latest_amd64.deb"
            ),
            format!("sudo dpkg -i {w}/minikube_latest_amd64.deb"),
            "sudo usermod -aG libvirt ann".to_string(),
            "sudo systemctl enable --now libvirtd nfs-server".to_string(),
        ],
        "{stdout}"
    );
    // The apt sources were written as the user before `sudo install` put them in place.
    assert_eq!(
        std::fs::read_to_string(env.state.join("onboard/helm.list")).unwrap(),
        "deb [signed-by=/etc/apt/keyrings/helm.asc] https://packages.buildkite.com/helm-linux/helm-debian/any/ any main\n"
    );
    // Each root command was announced as such before it ran.
    assert!(
        stdout.contains("  as root (sudo): sudo usermod -aG libvirt ann\n"),
        "{stdout}"
    );
    assert!(stdout.contains("[6/6] Start libvirtd and nfs-server now and at every boot"));
    assert!(stdout.contains("note: the libvirt group applies from your next login"));
    // The exports helper and its rule were not installed: --yes does not answer for them.
    assert!(!env.machine_calls().iter().any(|c| c.contains("visudo")));
    assert!(
        !env.machine_calls()
            .iter()
            .any(|c| c.contains("devenv-exports-helper")),
        "{:#?}",
        env.machine_calls()
    );
    assert!(
        stdout.contains("devenv onboard --exports-helper"),
        "{stdout}"
    );
    // Then the doctor ran, and its verdict is onboard's exit code (on this fake machine the
    // kvm2 checks cannot pass, so only the order is specified here).
    let doctor = stdout.find("==> devenv doctor").expect("the doctor ran");
    assert!(doctor > stdout.find("[6/6]").unwrap());
    assert_eq!(out.status.code(), Some(1), "{stdout}");
}

#[test]
fn a_failing_step_stops_with_the_command_its_exit_code_and_what_was_done() {
    let env = debian();
    env.onboard()
        .args(["--platform", "debian", "--yes"])
        .env("FAKE_APT_GET_FAIL", "100")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "onboarding stopped at step 3 of 6 (Install the packages with apt).\n\
             already done:\n  \
             1. Add Helm's apt repository\n  \
             2. Add the Kubernetes apt repository (v1.31)\n  \
             3. (part of it) sudo apt-get update\n\
             not run: steps 4, 5, 6\n",
        ))
        .stderr(predicate::str::contains(
            "error: `sudo apt-get install -y qemu-kvm libvirt-daemon-system nfs-kernel-server helm kubectl` exited with status 100",
        ))
        .stdout(predicate::str::contains("==> devenv doctor").not());
    let calls = env.machine_calls();
    assert_eq!(
        calls.last().unwrap(),
        "sudo apt-get install -y qemu-kvm libvirt-daemon-system nfs-kernel-server helm kubectl",
        "nothing ran after the failure"
    );
}

#[test]
fn a_failed_first_download_stops_before_anything_runs_as_root() {
    let env = debian();
    env.onboard()
        .args(["--platform", "debian", "--yes"])
        .env("FAKE_CURL_FAIL", "22")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "onboarding stopped at step 1 of 6 (Add Helm's apt repository).\n\
             nothing was done before it.\n\
             not run: the rest of step 1, steps 2, 3, 4, 5, 6\n",
        ))
        .stderr(predicate::str::contains("exited with status 22"));
    assert!(
        !env.machine_calls().iter().any(|c| c.starts_with("sudo ")),
        "{:#?}",
        env.machine_calls()
    );
}

#[test]
fn the_exports_helper_is_installed_root_owned_before_the_rule_that_names_it() {
    let env = debian_with_everything();
    let out = env
        .onboard()
        .args(["--platform", "debian", "--yes", "--exports-helper"])
        .output()
        .unwrap();
    let stdout = env.redact(&String::from_utf8_lossy(&out.stdout));
    let w = "[DEVENV_HOME]/onboard";
    let helper = "/usr/local/libexec/devenv/devenv-exports-helper";
    assert_eq!(
        changes(&env),
        [
            format!("sudo visudo -cf {w}/sudoers"),
            "sudo install -d -o root -g 0 -m 0755 /usr/local/libexec/devenv".to_string(),
            format!("sudo install -o root -g 0 -m 0755 [BIN]/devenv-exports-helper {helper}"),
            "sudo groupadd -f devenv".to_string(),
            "sudo usermod -aG devenv ann".to_string(),
            format!("sudo install -m 0440 {w}/sudoers /etc/sudoers.d/devenv"),
        ],
        "{stdout}"
    );
    assert!(
        std::path::Path::new(&format!(
            "{}/devenv-exports-helper",
            support::built_bin_dir().display()
        ))
        .is_file(),
        "the helper installed is the one built beside devenv"
    );
    assert!(
        include_str!("../templates/sudoers.linux").contains(&format!("= {helper} \"\"")),
        "the rule names the path the helper is installed at"
    );
    assert_eq!(
        std::fs::read_to_string(env.state.join("onboard/sudoers")).unwrap(),
        include_str!("../templates/sudoers.linux"),
        "the snippet installed is the one shown"
    );
    assert!(stdout.contains("Plan: nothing to install."), "{stdout}");
    assert!(
        stdout.contains(
            "[1/1] Let devenv change its own /etc/exports block without a password prompt"
        )
    );
}

#[test]
fn a_machine_that_has_everything_needs_no_confirmation() {
    let env = debian_with_everything();
    let out = env
        .onboard()
        .args(["--platform", "debian"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("  missing: (none)\n"), "{stdout}");
    assert!(stdout.contains("Nothing to install: everything devenv needs is already here."));
    assert!(stdout.contains("==> devenv doctor"));
    assert!(changes(&env).is_empty(), "{:?}", changes(&env));
}

#[test]
fn homebrew_runs_as_the_user_and_installs_only_missing_formulae() {
    let env = mac(&["helm"]);
    let out = env
        .onboard()
        .args(["--platform", "macos", "--yes"])
        .env("FAKE_UNAME_M", "arm64")
        .output()
        .unwrap();
    assert_eq!(
        changes(&env),
        ["brew install minikube kubernetes-cli vfkit"],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("  $ brew install minikube kubernetes-cli vfkit\n")
    );
}

#[test]
fn a_mac_without_homebrew_is_told_how_to_install_it_and_nothing_runs() {
    let env = Env::new().machine(&["uname", "sw_vers", "id", "sudo", "curl"], &[]);
    env.onboard()
        .args(["--platform", "macos", "--yes"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("1. Install Homebrew  [yours to do]"))
        .stdout(predicate::str::contains(
            "you run: /bin/bash -c \"$(curl -fsSL https://raw.githubusercontent.com/Homebrew/install/HEAD/install.sh)\"",
        ))
        .stderr(predicate::str::contains(
            "Install Homebrew: devenv leaves this step to you",
        ));
    assert_only_probes(&env);
}

#[test]
fn hyperkit_is_refused_on_apple_silicon() {
    let env = mac(&[]);
    env.onboard()
        .args(["--platform", "macos", "--driver", "hyperkit", "--dry-run"])
        .env("FAKE_UNAME_M", "arm64")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "hyperkit runs only on Intel Macs, and this one has an arm64 CPU",
        ));
}

#[test]
fn macos_12_is_refused_for_vfkit_with_the_way_out() {
    let env = mac(&[]);
    env.onboard()
        .args(["--platform", "macos", "--dry-run"])
        .env("FAKE_SW_VERS", "12.7.6")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "vfkit needs macOS 13 or later, and this Mac runs macOS 12.7.6",
        ))
        .stderr(predicate::str::contains("--driver hyperkit"));
}

#[test]
fn root_may_print_the_plan_but_not_run_it() {
    let env = debian();
    env.onboard()
        .args(["--platform", "debian", "--dry-run"])
        .env("FAKE_ID_UID", "0")
        .assert()
        .success()
        .stderr(predicate::str::contains("this plan is for root"));
    env.onboard()
        .args(["--platform", "debian", "--yes"])
        .env("FAKE_ID_UID", "0")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "devenv onboard runs as you, not as root",
        ));
    assert_only_probes(&env);
}

#[test]
fn an_os_family_without_a_known_package_manager_is_told_what_to_install() {
    let env = debian();
    env.onboard()
        .args(["--platform", "arch", "--dry-run"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not this system (Arch Linux)"))
        .stderr(predicate::str::contains("docs/onboarding.md"));
}

#[test]
fn an_installed_helm_outside_requires_is_replaced_by_the_pinned_one() {
    let env = debian_with_everything();
    env.write(
        "devenv.toml",
        "[project]\nname = \"shop\"\nchart = \".\"\n\n[requires]\nhelm = \">=3.14, <4\"\n",
    );
    env.write("Chart.yaml", "apiVersion: v2\nname: shop\nversion: 0.1.0\n");
    // The installed helm answers its version, as the real one does.
    let helm = env.machine_bin().join("helm");
    std::fs::remove_file(&helm).unwrap();
    std::fs::write(&helm, "#!/usr/bin/env bash\necho 'v4.1.4+g05fa379'\n").unwrap();
    std::fs::set_permissions(&helm, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let plan = dry_run(&env, &["--platform", "debian"], &[]);
    assert!(plan.contains("'helm=3.14.*'"), "{plan}");
    assert!(plan.contains("--allow-downgrades"), "{plan}");
    assert!(
        plan.contains("helm 4.1.4 is installed, and devenv.toml's [requires] helm is"),
        "{plan}"
    );
    assert!(
        !plan.contains("minikube_"),
        "minikube is not pinned: {plan}"
    );
    assert_only_probes(&env);
}
