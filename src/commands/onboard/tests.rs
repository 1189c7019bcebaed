use super::*;

fn facts(platform: Platform, cpu: &str) -> Facts {
    Facts {
        platform,
        cpu: cpu.to_string(),
        macos_version: (platform == Platform::MacOs).then(|| "14.5".to_string()),
        uid: Some(1000),
        user: "ann".to_string(),
        groups: vec!["ann".to_string()],
        programs: BTreeSet::new(),
        packages: BTreeSet::new(),
        enabled_units: BTreeSet::new(),
        brew_off_path: None,
        work: PathBuf::from("/w"),
        kube_minor: "v1.31".to_string(),
        exports_helper: PathBuf::from("/b/devenv-exports-helper"),
        requires: Requires::default(),
        versions: BTreeMap::new(),
    }
}

fn argvs(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .flat_map(|s| &s.actions)
        .filter_map(|a| match a {
            Action::Run { .. } => Some(a.display()),
            _ => None,
        })
        .collect()
}

#[test]
fn kube_minor_keeps_major_and_minor() {
    assert_eq!(kube_minor("v1.31.0").as_deref(), Some("v1.31"));
    assert_eq!(kube_minor("v1.34.2").as_deref(), Some("v1.34"));
    assert_eq!(kube_minor("stable"), None);
    assert_eq!(kube_minor("1.31.0"), None);
}

#[test]
fn dpkg_query_output_counts_only_installed_packages() {
    let out = "libvirt-clients ii \nnfs-kernel-server rc \n";
    assert_eq!(parse_dpkg_query(out), vec!["libvirt-clients"]);
}

#[test]
fn rpm_query_output_skips_the_not_installed_lines() {
    let out = "libvirt-daemon\npackage qemu-kvm is not installed\nnfs-utils\n";
    assert_eq!(
        parse_rpm_query(out, &["libvirt-daemon", "qemu-kvm", "nfs-utils"]),
        vec!["libvirt-daemon", "nfs-utils"]
    );
}

#[test]
fn static_and_alias_units_count_as_enabled() {
    assert!(unit_enabled("enabled\n"));
    assert!(unit_enabled("alias"));
    assert!(!unit_enabled("disabled"));
    assert!(!unit_enabled(""));
}

#[test]
fn linux_gets_kvm2_and_macos_gets_vfkit() {
    assert_eq!(
        choose_driver(&facts(Platform::Debian, "x86_64"), None).unwrap(),
        "kvm2"
    );
    assert_eq!(
        choose_driver(&facts(Platform::MacOs, "arm64"), None).unwrap(),
        "vfkit"
    );
}

#[test]
fn hyperkit_is_only_for_intel_macs() {
    let intel = facts(Platform::MacOs, "x86_64");
    assert_eq!(choose_driver(&intel, Some("hyperkit")).unwrap(), "hyperkit");
    let err = choose_driver(&facts(Platform::MacOs, "arm64"), Some("hyperkit")).unwrap_err();
    assert!(err.to_string().contains("only on Intel Macs"), "{err}");
}

#[test]
fn vfkit_on_macos_12_is_refused_with_the_upgrade() {
    let mut old = facts(Platform::MacOs, "x86_64");
    old.macos_version = Some("12.7.6".to_string());
    let err = choose_driver(&old, None).unwrap_err();
    assert!(err.to_string().contains("macOS 13 or later"), "{err}");
    assert!(err.help().unwrap().contains("--driver hyperkit"));
}

#[test]
fn virtualbox_is_refused_by_the_registry() {
    let err = choose_driver(&facts(Platform::Debian, "x86_64"), Some("virtualbox"));
    assert!(matches!(
        err,
        Err(Error::Driver(SelectError::Refused { .. }))
    ));
}

#[test]
fn debian_installs_only_the_missing_packages() {
    let mut f = facts(Platform::Debian, "x86_64");
    f.programs.extend(["curl".to_string(), "helm".to_string()]);
    f.packages
        .extend(["libvirt-clients".to_string(), "qemu-kvm".to_string()]);
    let plan = build_plan(&f, "kvm2", "devenv init");
    let cmds = argvs(&plan);
    assert!(
        cmds.contains(
            &"sudo apt-get install -y libvirt-daemon-system nfs-kernel-server kubectl".to_string()
        ),
        "{cmds:#?}"
    );
    assert!(!plan.steps.iter().any(|s| s.id == "helm-repository"));
    assert!(!plan.steps.iter().any(|s| s.id == "curl"));
}

/// `f` with every tool installed at `versions` and `[requires]` set by `edit`.
fn installed(mut f: Facts, versions: &[(&str, &str)], edit: impl Fn(&mut Requires)) -> Facts {
    for (tool, v) in versions {
        f.programs.insert(tool.to_string());
        f.versions
            .insert(tool.to_string(), requires::loose(v).unwrap());
    }
    f.programs.insert("curl".into());
    edit(&mut f.requires);
    f
}

#[test]
fn tools_within_requires_are_left_alone() {
    let f = installed(
        facts(Platform::Debian, "x86_64"),
        &[
            ("minikube", "1.35.0"),
            ("helm", "3.17.2"),
            ("kubectl", "1.31.4"),
        ],
        |r| {
            r.minikube = Some(">=1.33".into());
            r.helm = Some(">=3.14, <4".into());
            r.kubectl = Some("~1.31".into());
        },
    );
    let plan = build_plan(&f, "kvm2", "devenv up");
    let cmds = argvs(&plan).join("\n");
    assert!(!cmds.contains("minikube"), "{cmds}");
    assert!(!cmds.contains("helm"), "{cmds}");
    assert!(!cmds.contains("kubectl"), "{cmds}");
}

#[test]
fn debian_installs_the_versions_requires_pins_with_apt_and_minikubes_release() {
    let f = installed(
        facts(Platform::Debian, "x86_64"),
        &[
            ("minikube", "1.38.1"),
            ("helm", "4.1.4"),
            ("kubectl", "1.33.1"),
        ],
        |r| {
            r.minikube = Some(">=1.34, <1.36".into());
            r.helm = Some(">=3.14, <4".into());
            r.kubectl = Some("<1.32".into());
        },
    );
    let plan = build_plan(&f, "kvm2", "devenv up");
    let cmds = argvs(&plan);
    assert!(
        cmds.contains(
            &"sudo apt-get install -y --allow-downgrades qemu-kvm libvirt-daemon-system libvirt-clients nfs-kernel-server 'helm=3.14.*' 'kubectl=1.31.*'".into()
        ),
        "{cmds:#?}"
    );
    assert!(plan.steps.iter().any(|s| s.id == "helm-repository"));
    assert!(
        cmds.contains(&"curl -fL --create-dirs -o /w/minikube_1.34.0-0_amd64.deb https://github.com/kubernetes/minikube/releases/download/v1.34.0/minikube_1.34.0-0_amd64.deb".into()),
        "{cmds:#?}"
    );
    let apt = plan.steps.iter().find(|s| s.id == "apt").unwrap();
    assert!(
        apt.why.contains(
            "helm 4.1.4 is installed, and devenv.toml's [requires] helm is \">=3.14, <4\"."
        ),
        "{}",
        apt.why
    );
    assert_eq!(plan.missing[..3], ["minikube", "helm", "kubectl"]);
}

#[test]
fn homebrew_upgrades_to_its_newest_or_a_pinned_release_is_downloaded() {
    let f = installed(
        facts(Platform::MacOs, "arm64"),
        &[
            ("minikube", "1.30.1"),
            ("helm", "3.12.0"),
            ("kubectl", "1.31.0"),
        ],
        |r| {
            r.minikube = Some(">=1.33".into());
            r.helm = Some("~3.17.2".into());
        },
    );
    let mut f = f;
    f.programs.extend(["brew".to_string(), "vfkit".to_string()]);
    let plan = build_plan(&f, "vfkit", "devenv up");
    let cmds = argvs(&plan);
    assert!(cmds.contains(&"brew upgrade minikube".into()), "{cmds:#?}");
    assert!(
        cmds.contains(&"curl -fL --create-dirs -o /w/helm-v3.17.2-darwin-arm64.tar.gz https://get.helm.sh/helm-v3.17.2-darwin-arm64.tar.gz".into()),
        "{cmds:#?}"
    );
    assert!(
        cmds.contains(
            &"sudo install -m 0755 /w/helm-3.17.2/darwin-arm64/helm /usr/local/bin/helm".into()
        ),
        "{cmds:#?}"
    );
    assert!(
        !cmds.iter().any(|c| c.starts_with("brew install")),
        "{cmds:#?}"
    );
}

#[test]
fn fedora_takes_a_pinned_helm_from_its_release_not_from_dnf() {
    let mut f = facts(Platform::Fedora, "x86_64");
    f.requires.helm = Some("=3.16.4".into());
    f.requires.minikube = Some("~1.35".into());
    let plan = build_plan(&f, "kvm2", "devenv up");
    let cmds = argvs(&plan);
    assert!(
        cmds.iter()
            .any(|c| c.ends_with("https://get.helm.sh/helm-v3.16.4-linux-amd64.tar.gz")),
        "{cmds:#?}"
    );
    let dnf = cmds
        .iter()
        .find(|c| c.starts_with("sudo dnf install"))
        .unwrap();
    assert!(!dnf.contains("helm"), "{dnf}");
    assert!(
        cmds.iter()
            .any(|c| c.ends_with("/v1.35.0/minikube-1.35.0-0.x86_64.rpm")),
        "{cmds:#?}"
    );
}

#[test]
fn arm64_linux_gets_the_arm64_packages_of_minikube() {
    let deb = build_plan(&facts(Platform::Debian, "aarch64"), "kvm2", "devenv up");
    assert!(argvs(&deb).contains(&"sudo dpkg -i /w/minikube_latest_arm64.deb".to_string()));
    let rpm = build_plan(&facts(Platform::Fedora, "aarch64"), "kvm2", "devenv up");
    assert!(argvs(&rpm).contains(&"sudo rpm -Uvh /w/minikube-latest.aarch64.rpm".to_string()));
}

#[test]
fn a_member_of_libvirt_is_not_added_again() {
    let mut f = facts(Platform::Fedora, "x86_64");
    f.groups.push("libvirt".to_string());
    f.enabled_units.insert("libvirtd".to_string());
    let plan = build_plan(&f, "kvm2", "devenv up");
    let cmds = argvs(&plan);
    assert!(!cmds.iter().any(|c| c.contains("usermod -aG libvirt")));
    assert!(cmds.contains(&"sudo systemctl enable --now nfs-server".to_string()));
}

#[test]
fn root_is_not_added_to_the_libvirt_group() {
    let mut f = facts(Platform::Debian, "x86_64");
    f.uid = Some(0);
    let plan = build_plan(&f, "kvm2", "devenv up");
    assert!(
        !argvs(&plan)
            .iter()
            .any(|c| c.contains("usermod -aG libvirt"))
    );
}

#[test]
fn nothing_missing_means_no_steps() {
    let mut f = facts(Platform::MacOs, "arm64");
    f.programs.extend(
        ["brew", "minikube", "helm", "kubectl", "vfkit"]
            .iter()
            .map(|s| s.to_string()),
    );
    let plan = build_plan(&f, "vfkit", "devenv up");
    assert!(plan.steps.is_empty());
    assert!(plan.missing.is_empty());
}

#[test]
fn homebrew_off_path_is_a_step_for_the_user() {
    let mut f = facts(Platform::MacOs, "arm64");
    f.brew_off_path = Some(PathBuf::from("/opt/homebrew/bin/brew"));
    let plan = build_plan(&f, "vfkit", "devenv up");
    assert!(plan.steps[0].manual);
    assert_eq!(
        plan.steps[0].actions[0].display(),
        "eval \"$(/opt/homebrew/bin/brew shellenv)\""
    );
}

#[test]
fn every_sudo_command_is_marked_and_its_step_too() {
    let plan = build_plan(&facts(Platform::Debian, "x86_64"), "kvm2", "devenv up");
    for step in plan.steps.iter().chain([&plan.sudoers]) {
        let any_sudo = step
            .actions
            .iter()
            .any(|a| matches!(a, Action::Run { argv, sudo } if *sudo && argv[0] == "sudo"));
        assert_eq!(step.sudo, any_sudo, "{}", step.title);
        for a in &step.actions {
            if let Action::Run { argv, sudo } = a {
                assert_eq!(*sudo, argv[0] == "sudo");
            }
        }
    }
}

#[test]
fn the_sudoers_snippet_is_checked_before_it_is_installed() {
    let plan = build_plan(&facts(Platform::Debian, "x86_64"), "kvm2", "devenv up");
    let shown: Vec<String> = plan.sudoers.actions.iter().map(Action::display).collect();
    let check = shown.iter().position(|c| c.starts_with("sudo visudo -cf"));
    let install = shown
        .iter()
        .position(|c| c.ends_with("/etc/sudoers.d/devenv"));
    assert!(check.unwrap() < install.unwrap(), "{shown:#?}");
    assert!(
        matches!(&plan.sudoers.actions[0], Action::Write { contents, .. } if contents == SUDOERS_LINUX)
    );
}

#[test]
fn wrap_keeps_lines_within_the_width() {
    let text = "word ".repeat(60);
    for line in wrap(&text, "   ").lines() {
        assert!(line.len() <= WIDTH, "{line}");
        assert!(line.starts_with("   word"));
    }
}
