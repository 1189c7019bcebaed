//! The steps of each OS family's plan: Homebrew on macOS, apt on Debian and Ubuntu, dnf on
//! Fedora, then the libvirt group, the services and the exports helper's sudoers rule. Pure
//! functions of the probed facts.

use super::*;

pub(super) fn macos_steps(
    facts: &Facts,
    driver: &str,
    wanted: &mut Vec<(String, bool)>,
    steps: &mut Vec<Step>,
) {
    let hyperkit = driver == "hyperkit";
    wanted.push(("brew".into(), facts.has("brew")));
    let mut formulae = Vec::new();
    let mut upgrades = Vec::new();
    let mut pinned = Vec::new();
    for (tool, formula) in [
        (Tool::Minikube, "minikube"),
        (Tool::Helm, "helm"),
        (Tool::Kubectl, "kubernetes-cli"),
    ] {
        wanted.push((tool.key().to_string(), facts.fits(tool)));
        match (facts.fits(tool), facts.pinned(tool)) {
            (true, _) => {}
            // Homebrew has only its newest version of a formula.
            (false, Some(v)) => pinned.push((tool, v)),
            (false, None) if facts.has(tool.key()) => upgrades.push(formula),
            (false, None) => formulae.push(formula),
        }
    }
    wanted.push((driver.to_string(), facts.has(driver)));
    if !facts.has(driver) {
        formulae.push(driver);
    }
    let driver_binary = "docker-machine-driver-hyperkit";
    if hyperkit {
        wanted.push((driver_binary.into(), facts.has(driver_binary)));
    }

    if !facts.has("brew") {
        let step = match &facts.brew_off_path {
            Some(brew) => Step::new(
                "homebrew-path",
                "Put Homebrew on your PATH",
                format!(
                    "Homebrew is installed at {} but your shell does not find it, so neither \
                     would devenv nor the tools it installs. Add the line below to ~/.zprofile, \
                     open a new terminal and run `devenv onboard` again.",
                    brew.display()
                ),
            )
            .manual(&format!("eval \"$({} shellenv)\"", brew.display())),
            None => Step::new(
                "homebrew",
                "Install Homebrew",
                "devenv installs minikube, helm, kubectl and the VM driver with Homebrew, \
                 which is not installed. Its installer is a script piped into bash, so devenv \
                 leaves running it to you: run the line below (from https://brew.sh), follow \
                 what it prints at the end about your PATH, then run `devenv onboard` again.",
            )
            .manual(HOMEBREW_INSTALL),
        };
        steps.push(step);
    }

    if !formulae.is_empty() {
        let mut argv = vec!["brew", "install"];
        argv.extend(&formulae);
        let mut why = format!(
            "minikube runs the cluster, helm deploys the team's chart, kubectl talks to the \
             cluster, and {driver} is the VM driver{}. Homebrew installs them as you, without \
             sudo.",
            if hyperkit {
                ""
            } else {
                " on macOS 13 and later, on Apple silicon and Intel alike"
            }
        );
        if hyperkit && formulae.contains(&"hyperkit") {
            why.push_str(
                " hyperkit is deprecated: minikube 1.37 deprecated its driver and Homebrew \
                 disabled the formula in 2025, so brew may refuse it; then build it from \
                 https://github.com/moby/hyperkit, or better prepare vfkit (run `devenv \
                 onboard` without --driver).",
            );
        }
        steps.push(Step::new("brew", "Install the tools with Homebrew", why).run(&argv));
    }

    if !upgrades.is_empty() {
        let mut argv = vec!["brew", "upgrade"];
        argv.extend(&upgrades);
        steps.push(
            Step::new(
                "brew-upgrade",
                "Upgrade tools outside devenv.toml's [requires] with Homebrew",
                format!(
                    "The newest release of each fits devenv.toml's [requires].{}",
                    [Tool::Minikube, Tool::Helm, Tool::Kubectl]
                        .into_iter()
                        .filter_map(|t| facts.outside(t))
                        .collect::<String>()
                ),
            )
            .run(&argv),
        );
    }
    for (tool, version) in pinned {
        steps.push(pinned_release(facts, tool, &version));
    }

    if hyperkit && !facts.has(driver_binary) {
        let file = facts.work_file(driver_binary);
        let url = format!("{MINIKUBE_RELEASES}/{driver_binary}");
        let dest = format!("/usr/local/bin/{driver_binary}");
        steps.push(
            Step::new(
                "hyperkit-driver",
                "Install minikube's hyperkit driver",
                "minikube drives hyperkit through docker-machine-driver-hyperkit, which must be \
                 owned by root and setuid to create the VM's network interface, hence sudo.",
            )
            .run(&["curl", "-fL", "--create-dirs", "-o", &file, &url])
            .run(&[
                "sudo", "install", "-o", "root", "-g", "wheel", "-m", "4755", &file, &dest,
            ]),
        );
    }
}

pub(super) fn debian_steps(facts: &Facts, wanted: &mut Vec<(String, bool)>, steps: &mut Vec<Step>) {
    for tool in Tool::PROGRAMS {
        wanted.push((tool.key().into(), facts.fits(tool)));
    }
    wanted.push(("curl".into(), facts.has("curl")));
    // A tool installed outside [requires] is installed again at a version within it, which
    // may be a downgrade; apt takes the version as a glob of the repository's releases.
    let helm = match facts.pinned(Tool::Helm) {
        Some(v) => format!("helm={}.{}.*", v.major, v.minor),
        None => "helm".to_string(),
    };
    let kubectl = match facts.outside(Tool::Kubectl) {
        Some(_) => format!("kubectl={}.*", facts.kube_minor.trim_start_matches('v')),
        None => "kubectl".to_string(),
    };
    // QEMU/KVM runs the VM, libvirt manages it, the NFS server exports the tree: the
    // package catalogue's names for them.
    use devenv_drivers::packages::{Need, packages};
    let system: Vec<&str> = [Need::Qemu, Need::Libvirt, Need::NfsServer]
        .into_iter()
        .flat_map(|n| packages(n, Platform::Debian))
        .copied()
        .collect();
    let mut apt: Vec<&str> = Vec::new();
    for package in system {
        let have = facts.packages.contains(package);
        wanted.push((package.into(), have));
        if !have {
            apt.push(package);
        }
    }

    if !facts.has("curl") {
        steps.push(
            Step::new(
                "curl",
                "Install curl",
                "The steps below download signing keys and minikube's package with curl.",
            )
            .run(&["sudo", "apt-get", "update"])
            .run(&[
                "sudo",
                "apt-get",
                "install",
                "-y",
                "curl",
                "ca-certificates",
            ]),
        );
    }
    if !facts.fits(Tool::Helm) {
        let key = facts.work_file("helm.asc");
        let list = facts.work_file("helm.list");
        let line = format!("deb [signed-by=/etc/apt/keyrings/helm.asc] {HELM_APT_REPO} any main\n");
        steps.push(
            Step::new(
                "helm-repository",
                "Add Helm's apt repository",
                "devenv deploys the team's chart with helm, which Debian and Ubuntu do not \
                 package. Helm's own signed apt repository is used rather than its install \
                 script: apt then checks the signature and upgrades helm with everything else, \
                 and no downloaded script runs as root.",
            )
            .run(&["curl", "-fsSL", "--create-dirs", "-o", &key, HELM_APT_KEY])
            .run(&[
                "sudo",
                "install",
                "-D",
                "-m",
                "0644",
                &key,
                "/etc/apt/keyrings/helm.asc",
            ])
            .write(&list, &line)
            .run(&[
                "sudo",
                "install",
                "-m",
                "0644",
                &list,
                "/etc/apt/sources.list.d/helm-stable-debian.list",
            ]),
        );
        apt.push(&helm);
    }
    if !facts.fits(Tool::Kubectl) {
        let minor = &facts.kube_minor;
        let base = format!("https://pkgs.k8s.io/core:/stable:/{minor}/deb/");
        let key = facts.work_file("kubernetes.asc");
        let list = facts.work_file("kubernetes.list");
        let line =
            format!("deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.asc] {base} /\n");
        steps.push(
            Step::new(
                "kubernetes-repository",
                format!("Add the Kubernetes apt repository ({minor})"),
                format!(
                    "kubectl comes from the Kubernetes project's own signed repository, one per \
                     minor version: {minor} matches vm.kubernetes_version, and kubectl must stay \
                     within one minor version of the cluster. (Without it, `minikube kubectl --` \
                     works by hand, but devenv needs kubectl on PATH.)"
                ),
            )
            .run(&[
                "curl",
                "-fsSL",
                "--create-dirs",
                "-o",
                &key,
                &format!("{base}Release.key"),
            ])
            .run(&[
                "sudo",
                "install",
                "-D",
                "-m",
                "0644",
                &key,
                "/etc/apt/keyrings/kubernetes-apt-keyring.asc",
            ])
            .write(&list, &line)
            .run(&[
                "sudo",
                "install",
                "-m",
                "0644",
                &list,
                "/etc/apt/sources.list.d/kubernetes.list",
            ]),
        );
        apt.push(&kubectl);
    }
    if !apt.is_empty() {
        let mut argv = vec!["sudo", "apt-get", "install", "-y"];
        if apt.iter().any(|p| p.contains('=')) {
            argv.push("--allow-downgrades");
        }
        argv.extend(&apt);
        let repos: Vec<&str> = ["helm", "kubectl"]
            .into_iter()
            .filter(|p| apt.iter().any(|a| a.split('=').next() == Some(p)))
            .collect();
        let mut why = "QEMU/KVM runs the VM, libvirt manages it for minikube's kvm2 driver, and \
                       nfs-kernel-server exports the source tree to it. Only what is missing is \
                       installed."
            .to_string();
        match repos.as_slice() {
            [] => {}
            [one] => why.push_str(&format!(" {one} comes from the repository added above.")),
            _ => why.push_str(" helm and kubectl come from the repositories added above."),
        }
        for tool in [Tool::Helm, Tool::Kubectl] {
            if let Some(outside) = facts.outside(tool) {
                why.push_str(&outside);
            }
        }
        steps.push(
            Step::new("apt", "Install the packages with apt", why)
                .run(&["sudo", "apt-get", "update"])
                .run(&argv),
        );
    }
    if !facts.fits(Tool::Minikube) {
        let arch = if facts.arch() == Arch::Aarch64 {
            "arm64"
        } else {
            "amd64"
        };
        let (name, url) = match facts.pinned(Tool::Minikube) {
            Some(v) => {
                let name = format!("minikube_{v}-0_{arch}.deb");
                let url = format!("{MINIKUBE_DOWNLOADS}/v{v}/{name}");
                (name, url)
            }
            None => {
                let name = format!("minikube_latest_{arch}.deb");
                let url = format!("{MINIKUBE_RELEASES}/{name}");
                (name, url)
            }
        };
        let file = facts.work_file(&name);
        steps.push(
            Step::new(
                "minikube",
                "Install minikube from its .deb",
                format!(
                    "minikube publishes a .deb with every release; Debian and Ubuntu do not \
                     package it. Current releases carry the kvm2 driver built in.{}",
                    requirement(facts, Tool::Minikube)
                ),
            )
            .run(&["curl", "-fL", "--create-dirs", "-o", &file, &url])
            .run(&["sudo", "dpkg", "-i", &file]),
        );
    }
    linux_access_steps(facts, steps);
}

pub(super) fn fedora_steps(facts: &Facts, wanted: &mut Vec<(String, bool)>, steps: &mut Vec<Step>) {
    for tool in Tool::PROGRAMS {
        wanted.push((tool.key().into(), facts.fits(tool)));
    }
    let mut upgrade: Vec<&str> = Vec::new();
    // Fedora packages one helm, and kubectl's repository has the newest of its minor version:
    // a range with an upper bound is met from the projects' releases.
    for tool in [Tool::Helm, Tool::Kubectl] {
        if !facts.fits(tool)
            && let Some(v) = facts.pinned(tool)
        {
            steps.push(pinned_release(facts, tool, &v));
        }
    }
    let mut dnf: Vec<&str> = Vec::new();
    let mut virtualization = false;
    for package in ["libvirt-daemon", "qemu-kvm", "nfs-utils"] {
        let have = facts.packages.contains(package);
        wanted.push((package.into(), have));
        if !have && package != "nfs-utils" {
            virtualization = true;
        }
    }
    if virtualization {
        dnf.push("@virtualization");
    }
    for nfs in devenv_drivers::packages::packages(
        devenv_drivers::packages::Need::NfsServer,
        Platform::Fedora,
    ) {
        if !facts.packages.contains(*nfs) {
            dnf.push(nfs);
        }
    }
    let from_dnf = |tool: Tool| !facts.fits(tool) && facts.pinned(tool).is_none();
    if from_dnf(Tool::Helm) {
        if facts.has("helm") {
            upgrade.push("helm");
        } else {
            dnf.push("helm");
        }
    }
    if from_dnf(Tool::Kubectl) {
        let minor = &facts.kube_minor;
        let base = format!("https://pkgs.k8s.io/core:/stable:/{minor}/rpm/");
        let file = facts.work_file("kubernetes.repo");
        let repo = format!(
            "[kubernetes]\nname=Kubernetes\nbaseurl={base}\nenabled=1\ngpgcheck=1\n\
             gpgkey={base}repodata/repomd.xml.key\n"
        );
        steps.push(
            Step::new(
                "kubernetes-repository",
                format!("Add the Kubernetes rpm repository ({minor})"),
                format!(
                    "kubectl comes from the Kubernetes project's own signed repository, one per \
                     minor version: {minor} matches vm.kubernetes_version, and kubectl must stay \
                     within one minor version of the cluster."
                ),
            )
            .write(&file, &repo)
            .run(&[
                "sudo",
                "install",
                "-m",
                "0644",
                &file,
                "/etc/yum.repos.d/kubernetes.repo",
            ]),
        );
        if facts.has("kubectl") {
            upgrade.push("kubectl");
        } else {
            dnf.push("kubectl");
        }
    }
    if !dnf.is_empty() {
        let mut argv = vec!["sudo", "dnf", "install", "-y"];
        argv.extend(&dnf);
        let mut why = "Fedora's virtualization group brings QEMU/KVM and libvirt for \
                       minikube's kvm2 driver, and nfs-utils the NFS server that exports the \
                       source tree. Only what is missing is installed."
            .to_string();
        if dnf.contains(&"helm") {
            why.push_str(" Fedora packages helm itself.");
        }
        if dnf.contains(&"kubectl") {
            why.push_str(" kubectl comes from the repository added above.");
        }
        steps.push(Step::new("dnf", "Install the packages with dnf", why).run(&argv));
    }
    if !upgrade.is_empty() {
        let mut argv = vec!["sudo", "dnf", "upgrade", "-y"];
        argv.extend(&upgrade);
        let why: String = [Tool::Helm, Tool::Kubectl]
            .into_iter()
            .filter_map(|t| facts.outside(t))
            .collect();
        steps.push(
            Step::new(
                "dnf-upgrade",
                "Upgrade tools outside devenv.toml's [requires] with dnf",
                format!("The newest release of each fits devenv.toml's [requires].{why}"),
            )
            .run(&argv),
        );
    }
    if !facts.fits(Tool::Minikube) {
        let arch = if facts.arch() == Arch::Aarch64 {
            "aarch64"
        } else {
            "x86_64"
        };
        let (name, url) = match facts.pinned(Tool::Minikube) {
            Some(v) => {
                let name = format!("minikube-{v}-0.{arch}.rpm");
                let url = format!("{MINIKUBE_DOWNLOADS}/v{v}/{name}");
                (name, url)
            }
            None => {
                let name = format!("minikube-latest.{arch}.rpm");
                let url = format!("{MINIKUBE_RELEASES}/{name}");
                (name, url)
            }
        };
        let file = facts.work_file(&name);
        steps.push(
            Step::new(
                "minikube",
                "Install minikube from its .rpm",
                format!(
                    "minikube publishes an rpm with every release; Fedora does not package it. \
                     Current releases carry the kvm2 driver built in.{}",
                    requirement(facts, Tool::Minikube)
                ),
            )
            .run(&["curl", "-fL", "--create-dirs", "-o", &file, &url])
            .run(&if facts.pinned(Tool::Minikube).is_some() {
                vec!["sudo", "rpm", "-Uvh", "--oldpackage", &file]
            } else {
                vec!["sudo", "rpm", "-Uvh", &file]
            }),
        );
    }
    linux_access_steps(facts, steps);
}

/// What `[requires]` asks of `tool`, for a step's explanation: empty when nothing.
pub(super) fn requirement(facts: &Facts, tool: Tool) -> String {
    let Some(range) = tool.required(&facts.requires) else {
        return String::new();
    };
    let version = facts
        .pinned(tool)
        .map_or_else(|| "the newest release".to_string(), |v| v.to_string());
    format!(
        " devenv.toml's [requires] {tool} is \"{range}\": {version} is installed.{}",
        facts.outside(tool).unwrap_or_default()
    )
}

/// `tool` at exactly `version`, from its project's releases, for a range package managers cannot
/// meet: Homebrew has only the newest release, and so has minikube's `latest` channel.
pub(super) fn pinned_release(facts: &Facts, tool: Tool, version: &Version) -> Step {
    let why = format!(
        "devenv.toml's [requires] {tool} is \"{}\", and {version} is the lowest release within \
         it: it is installed from its project's release to /usr/local/bin.{}",
        tool.required(&facts.requires).unwrap_or_default(),
        facts.outside(tool).unwrap_or_default()
    );
    let step = Step::new(
        tool.key(),
        format!("Install {tool} {version} from its release"),
        why,
    );
    let dest = format!("/usr/local/bin/{tool}");
    let platform = if facts.os() == Os::MacOs {
        Platform::MacOs
    } else {
        facts.platform
    };
    let requires::Release { url, file, inside } =
        requires::release(tool, version, platform, facts.arch())
            .expect("only minikube, kubectl and helm are pinned to a release");
    // Versioned, so that two pins never reuse each other's download (helm's tarball is).
    let file = match inside {
        Some(_) => file,
        None => format!("{tool}-{version}"),
    };
    let local = facts.work_file(&file);
    let step = step.run(&["curl", "-fL", "--create-dirs", "-o", &local, &url]);
    match inside {
        None => step.run(&["sudo", "install", "-m", "0755", &local, &dest]),
        Some(inside) => {
            let dir = facts.work_file(&format!("{tool}-{version}"));
            let program = format!("{dir}/{inside}");
            step.run(&["mkdir", "-p", &dir])
                .run(&["tar", "-xzf", &local, "-C", &dir, &inside])
                .run(&["sudo", "install", "-m", "0755", &program, &dest])
        }
    }
}

/// The libvirt group and the services, the same on every Linux family.
pub(super) fn linux_access_steps(facts: &Facts, steps: &mut Vec<Step>) {
    // root reaches libvirtd without the group (doctor's kvm2 check says the same).
    let as_root = facts.uid == Some(0);
    if !as_root && !facts.in_group("libvirt") && !facts.in_group("libvirtd") {
        steps.push(
            Step::new(
                "libvirt-group",
                format!("Add {} to the libvirt group", facts.user),
                "libvirtd only accepts qemu:///system connections, which minikube's kvm2 \
                 driver makes, from members of the libvirt group.",
            )
            .run(&["sudo", "usermod", "-aG", "libvirt", &facts.user])
            .after(
                "the libvirt group applies from your next login: log out and back in (or run \
                 `newgrp libvirt` in this terminal) before `devenv up`",
            ),
        );
    }
    let units: Vec<&str> = ["libvirtd", "nfs-server"]
        .into_iter()
        .filter(|u| !facts.enabled_units.contains(*u))
        .collect();
    if !units.is_empty() {
        let mut argv = vec!["sudo", "systemctl", "enable", "--now"];
        argv.extend(&units);
        steps.push(
            Step::new(
                "services",
                format!("Start {} now and at every boot", units.join(" and ")),
                "libvirtd runs the VM and nfs-server serves the source tree to it. (Package \
                 installs often enable them already; enabling them again changes nothing.)",
            )
            .run(&argv),
        );
    }
}

/// The exports helper and its sudoers rule, offered separately: the rule is written as the
/// user and checked with visudo, the helper copied root-owned to the one path the rule names,
/// and only then the rule installed with the mode sudo requires.
pub(super) fn sudoers_step(facts: &Facts) -> Step {
    let file = facts.work_file("sudoers");
    let check = ["sudo", "visudo", "-cf", file.as_str()];
    let install = ["sudo", "install", "-m", "0440", file.as_str(), SUDOERS_PATH];
    let macos = facts.platform == Platform::MacOs;
    let target = crate::nfs::helper::installed_path(macos);
    let source = facts.exports_helper.to_string_lossy().into_owned();
    let copy = [
        "sudo",
        "install",
        "-o",
        "root",
        "-g",
        "0",
        "-m",
        "0755",
        source.as_str(),
        target,
    ];
    let title = "Let devenv change its own /etc/exports block without a password prompt";
    let why = |who: &str| {
        format!(
            "`devenv up` and `devenv exports` change /etc/exports and reload the NFS server as \
             root. The exports helper does that for {who} after checking the request itself: \
             only a directory you own, only to one private address, always mapped to you \
             (docs/nfs.md). It is copied root-owned to {target}, outside any directory you can \
             write, and the sudoers rule lets {who} run that one program without a password, \
             and nothing else."
        )
    };
    if macos {
        // /Library/PrivilegedHelperTools exists, root-owned, on every Mac.
        return Step::new("sudoers", title, why("administrators"))
            .write(&file, SUDOERS_MACOS)
            .run(&check)
            .run(&copy)
            .run(&install);
    }
    let dir = std::path::Path::new(target)
        .parent()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut step = Step::new("sudoers", title, why("members of the group devenv"))
        .write(&file, SUDOERS_LINUX)
        .run(&check)
        .run(&[
            "sudo", "install", "-d", "-o", "root", "-g", "0", "-m", "0755", &dir,
        ])
        .run(&copy)
        .run(&["sudo", "groupadd", "-f", "devenv"]);
    if !facts.in_group("devenv") {
        step = step
            .run(&["sudo", "usermod", "-aG", "devenv", &facts.user])
            .after(
                "the devenv group applies from your next login: until then sudo still asks \
                 for your password",
            );
    }
    step.run(&install)
}
