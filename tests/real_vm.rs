//! devenv's commands inside the VM, run by a real guest kernel against a real NFS server
//! (`support::vm`): the mount devenv builds (its argv quoted for the VM's shell), the probe read
//! back through the mount, and `/proc/mounts` as the kernel writes it, decoded by devenv's one
//! reader; and `devenv up` itself with the minikube double in guest mode, where the VM is that
//! guest and the NFS server serves what devenv's exports block says, to the address it names
//! (guest and server share a network namespace, so the server sees the guest's own address).
//! Tests here run one at a time: each boot takes 5–10 s under TCG on a machine of two cores.

mod support;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use devenv::minikube::{has_nfs_mount, parse_mounts};
use devenv::plan::MountSpec;
use devenv::probe::Probe;
use support::vm::{Ganesha, Guest, Netns};

/// One real guest and one NFS server at a time on this machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The command line `minikube ssh -p P -- LINE` hands to the VM's shell for `cmd`.
fn vm_line(cmd: &devenv::process::Cmd) -> String {
    let args = cmd.get_args();
    assert_eq!(args[0], "ssh");
    args.last().unwrap().to_string_lossy().into_owned()
}

#[test]
fn a_project_under_a_hostile_path_mounts_with_devenvs_options_and_is_read_back_as_the_kernel_escapes_it()
 {
    let Some(image) = support::vm::image() else {
        return;
    };
    let _one = one_at_a_time();
    let root = tempfile::tempdir().unwrap();
    // A space, a tab, a quote, a command substitution, a backslash and non-ASCII letters: the
    // kernel escapes four of them in /proc/mounts, the VM's shell would run the fifth.
    let source: PathBuf = root
        .path()
        .join("My Projects")
        .join("it's\there $(touch /pwned) a\\b")
        .join("café shop");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("README.md"), "written on the host\n").unwrap();

    // Exported to the guest's own address, as devenv exports; a second directory to another
    // address of the same subnet (the server sees the guest's real address on the tap device).
    let elsewhere = root.path().join("My Projects/exported elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let netns = Netns::new();
    let _server = Ganesha::start(
        &netns,
        &[(&source, "192.168.39.10"), (&elsewhere, "192.168.39.99")],
    );
    let guest = Guest::boot(&image, Ipv4Addr::new(192, 168, 39, 10), &netns);

    let spec = MountSpec {
        profile: "devenv-shop".into(),
        host: None,
        assumed_host: Ipv4Addr::new(192, 168, 39, 1),
        source: source.clone(),
        target: "/src".into(),
        options: devenv::config::DEFAULT_MOUNT_OPTIONS.into(),
    };
    // kvm2's rule: the host is the VM's address with .1.
    let [mkdir, mount] = spec.commands(Ipv4Addr::new(192, 168, 39, 1));
    let made = guest.run(&vm_line(&mkdir));
    assert_eq!(made.status, 0, "{made:?}");

    // A directory the exports do not name, and one exported to another address, are refused
    // by the server, beside the one that is exported to this guest.
    let other = root.path().join("My Projects/not exported");
    std::fs::create_dir_all(&other).unwrap();
    for dir in [&other, &elsewhere] {
        let refused = guest.run(&format!(
            "mkdir -p /other && mount -t nfs -o {} 192.168.39.1:{} /other",
            devenv::config::DEFAULT_MOUNT_OPTIONS,
            devenv::process::quote(&dir.to_string_lossy())
        ));
        assert_ne!(refused.status, 0, "{}: {refused:?}", dir.display());
        assert!(refused.output.contains("denied"), "{refused:?}");
    }
    let mounted = guest.run(&vm_line(&mount));
    assert_eq!(
        mounted.status,
        0,
        "{mounted:?}\n{}\n{}",
        guest.console(),
        _server.log(),
    );
    assert_eq!(
        guest.run("ls /pwned").status,
        1,
        "the path was not run by the VM's shell"
    );

    let table = guest.run("cat /proc/mounts");
    assert_eq!(table.status, 0);
    // The kernel's own escapes, which the minikube double copies.
    assert!(
        table
            .output
            .contains("/My\\040Projects/it's\\011here\\040$(touch\\040/pwned)\\040a\\134b/caf"),
        "{}",
        table.output
    );
    assert!(
        has_nfs_mount(&table.output, &source.to_string_lossy(), "/src"),
        "devenv recognises its mount: {}",
        table.output
    );
    let nfs = parse_mounts(&table.output)
        .into_iter()
        .find(|m| m.point == "/src")
        .expect("the mount");
    assert_eq!(nfs.device, format!("192.168.39.1:{}", source.display()));
    assert_eq!(nfs.fstype, "nfs");
    for option in [
        "vers=3",
        "proto=tcp",
        "nolock",
        "noacl",
        // The kernel shows acregmax and acdirmax only when they differ from its default, 60.
        "acregmin=60",
        "acdirmin=60",
        "lookupcache=pos",
    ] {
        assert!(
            nfs.options.iter().any(|o| o == option),
            "{option} in {:?}",
            nfs.options
        );
    }
    // doctor's reading of the kernel's forms: every configured option is found.
    assert_eq!(
        devenv::doctor::vm::missing_options(devenv::config::DEFAULT_MOUNT_OPTIONS, &nfs.options),
        Vec::<String>::new(),
        "{:?}",
        nfs.options
    );

    // The probe devenv writes on the host reads back through the mount, quoted as devenv
    // quotes it, together with the mount table in one command (as `up` reads both).
    let probe = Probe::write(&source, "/src").unwrap();
    let line = devenv::process::ssh_command_line(&["cat", "/proc/mounts", &probe.vm_file]);
    let read = guest.run(&line);
    assert_eq!(read.status, 0, "{read:?}");
    assert!(probe.seen_in(&read.output), "{read:?}");
    assert!(has_nfs_mount(
        &read.output,
        &source.to_string_lossy(),
        "/src"
    ));

    // A file written on either side is seen on the other.
    let readme = guest.run("cat /src/README.md");
    assert_eq!(readme.output, "written on the host\n");
    let wrote = guest.run("echo written in the guest > /src/from-guest.txt");
    assert_eq!(wrote.status, 0, "{wrote:?}");
    assert_eq!(
        std::fs::read_to_string(source.join("from-guest.txt")).unwrap(),
        "written in the guest\n"
    );

    // Mounting again is an error, as on minikube's VM: the next `up` must recognise the mount.
    let again = guest.run(&vm_line(&mount));
    assert_ne!(again.status, 0, "{again:?}");
}

#[test]
fn up_mounts_a_project_under_a_hostile_path_in_the_real_guest_once_across_three_ups() {
    let Some(image) = support::vm::image() else {
        return;
    };
    let _one = one_at_a_time();
    // A space, a tab, a quote, a command substitution, a backslash and non-ASCII letters.
    let Some((env, _api)) = support::cluster_env_for(
        support::Env::new().project_at("src/My Projects/it's\there $(touch pwned) a\\b/café shop"),
        "helm",
    ) else {
        return;
    };
    let env = env.with_real_guest(&image);
    let source = env.project.canonicalize().unwrap();
    std::fs::write(source.join("from-host.txt"), "written on the host\n").unwrap();

    for round in 1..=3 {
        let out = env.devenv().arg("up").output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "up #{round}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if round == 1 {
            assert!(stdout.contains("mount: mounted 192.168.39.1:"), "{stdout}");
        } else {
            assert!(
                stdout.contains("a probe file written on the host just read back through it"),
                "up #{round} recognised the mount in the real /proc/mounts: {stdout}"
            );
        }
    }
    let mounts = env
        .minikube_calls()
        .iter()
        .filter(|c| c.starts_with("ssh -p devenv-shop -- sudo mount "))
        .count();
    assert_eq!(mounts, 1, "{:#?}", env.minikube_calls());

    // The guest's kernel has the tree mounted with devenv's options, and sees the host's file.
    let table = env.minikube(&["ssh", "-p", "devenv-shop", "--", "cat", "/proc/mounts"]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains("/My\\040Projects/it's\\011here\\040$(touch\\040pwned)\\040a\\134b/café\\040shop /src nfs "),
        "{table}"
    );
    assert!(
        !env.home.path().join("src/My Projects/pwned").exists(),
        "the path was never run by a shell"
    );
    assert!(
        has_nfs_mount(&table, &source.to_string_lossy(), "/src"),
        "{table}"
    );
    let read = env.minikube(&[
        "ssh",
        "-p",
        "devenv-shop",
        "--",
        "cat",
        "/src/from-host.txt",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&read.stdout).replace('\r', ""),
        "written on the host\n"
    );

    let out = env.devenv().args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["mount"]["mounted"], true, "{status}");

    // Stopped and started again (a power-off loses the mount): the next `up` mounts again.
    env.devenv().arg("down").assert().success();
    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("mount: mounted 192.168.39.1:"), "{stdout}");
}

#[test]
fn forward_wakes_an_in_guest_directory_watcher_for_a_host_edit_and_an_editors_rename_over_save() {
    let Some(image) = support::vm::image() else {
        return;
    };
    let _one = one_at_a_time();
    let Some((env, _api)) = support::cluster_env_for(support::Env::new(), "helm") else {
        return;
    };
    let env = env.with_real_guest(&image);
    env.devenv().arg("up").assert().success();
    // The worker's edits are forwarded into the VM instead of restarting it.
    let config = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    let config = config.replacen(
        "watch = [\"services/worker/**\"]\non_change = \"restart\"",
        "watch = [\"services/worker/**\"]\non_change = \"forward\"",
        1,
    );
    assert!(config.contains("on_change = \"forward\""));
    env.write("devenv.toml", &config);
    env.write("services/worker/main.rb", "puts 1\n");

    // Two watchers in the guest, as nodemon or webpack would hold them: one on the directory,
    // one on the file itself.
    let ssh = |line: &str| {
        let out = env.minikube(&["ssh", "-p", "devenv-shop", "--", line]);
        String::from_utf8_lossy(&out.stdout).replace('\r', "")
    };
    ssh("fsbench inotify /src/services/worker 60000 > /run/dir.ev 2>&1 &");
    ssh("fsbench inotify /src/services/worker/main.rb 60000 > /run/file.ev 2>&1 &");
    let watching = || {
        ssh("cat /run/dir.ev /run/file.ev")
            .matches("watching")
            .count()
            == 2
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !watching() {
        assert!(std::time::Instant::now() < deadline, "the guest's watchers");
    }

    let events = |file: &str| -> Vec<String> {
        ssh(&format!("cat /run/{file}"))
            .lines()
            .filter(|l| l.starts_with("event "))
            .map(str::to_string)
            .collect()
    };
    // IN_ATTRIB (0x4), what devenv's `touch -c` makes the guest's kernel report.
    const DIR_ATTRIB: &str = "event mask=0x4 name=main.rb";
    const FILE_ATTRIB: &str = "event mask=0x4 name=";
    let count = |file: &str, event: &str| events(file).iter().filter(|e| *e == event).count();
    // Waits (20 s at most) until the directory's watcher has heard of more than `seen`
    // touches of main.rb, then until the watcher has been quiet for a second.
    let settled_beyond = |seen: usize| -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while count("dir.ev", DIR_ATTRIB) <= seen {
            assert!(
                std::time::Instant::now() < deadline,
                "no forwarded touch reached the guest: {:?} {:#?}",
                events("dir.ev"),
                env.minikube_calls()
            );
        }
        loop {
            let now = count("dir.ev", DIR_ATTRIB);
            std::thread::sleep(std::time::Duration::from_secs(2));
            if count("dir.ev", DIR_ATTRIB) == now {
                return now;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the touches never stop: each forward's touch reaches the host's file through \
                 NFS, and must not be forwarded again: {:#?}",
                env.minikube_calls()
            );
        }
    };

    let w = support::watcher::Watch::start(&env, 100, &[]);
    // An edit in place: the NFS client in the guest is told nothing by the server, devenv's
    // forward touches the path, and both watchers hear it.
    env.write("services/worker/main.rb", "puts 2\n");
    let after_edit = settled_beyond(0);
    assert!(
        events("file.ev").iter().any(|e| e == FILE_ATTRIB),
        "{:?}",
        events("file.ev")
    );
    let file_events = events("file.ev").len();

    // An editor's save: a new file renamed over the old one, so the name has a new inode.
    env.write("services/worker/.main.rb.swp", "puts 3\n");
    std::fs::rename(
        env.project.join("services/worker/.main.rb.swp"),
        env.project.join("services/worker/main.rb"),
    )
    .unwrap();
    // The directory's watcher hears of the new file under the old name...
    settled_beyond(after_edit);
    assert_eq!(ssh("cat /src/services/worker/main.rb"), "puts 3\n");
    // One touch per edit: the touch's own echo on the host (the NFS server sets the file's
    // times) is not forwarded again.
    let touches = env
        .minikube_calls()
        .iter()
        .filter(|c| {
            c.starts_with("ssh -p devenv-shop -- touch -c -- ")
                && c.split(' ').any(|w| w == "/src/services/worker/main.rb")
        })
        .count();
    assert_eq!(touches, 2, "{:#?}", env.minikube_calls());
    // ...while a watch held on the old file's inode hears nothing more (the `cat` above opened
    // the new one): the guest's kernel never saw the rename, which happened on the host.
    // docs/watch.md says to watch directories.
    assert_eq!(
        events("file.ev").len(),
        file_events,
        "{:?}",
        events("file.ev")
    );
    drop(w);
}

#[test]
fn doctor_times_stat_through_the_real_mount_and_top_reads_the_guests_own_proc() {
    let Some(image) = support::vm::image() else {
        return;
    };
    let _one = one_at_a_time();
    let Some((env, _api)) = support::cluster_env_for(support::Env::new(), "helm") else {
        return;
    };
    let env = env.with_real_guest(&image);
    env.devenv().arg("up").assert().success();

    // doctor: the mount is the real kernel's NFS mount with devenv's options, and the stat
    // probe ran through it (a mean per stat measured in the guest, not "not mounted").
    let out = env.devenv().args(["--json", "doctor"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let finding = |id: &str| -> serde_json::Value {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {report}"))
            .clone()
    };
    let mount = finding("vm.mount");
    assert_eq!(mount["state"], "ok", "{mount}");
    let latency = finding("vm.stat-latency");
    let reason = latency["reason"].as_str().unwrap();
    assert!(reason.contains("; VM (/src): "), "{latency}");
    assert!(reason.contains(" per stat (mean over "), "{latency}");
    eprintln!("doctor in the real guest: {reason}");

    // top: the VM's figures are the guest's own /proc (qemu runs it with 2 CPUs and 512 MiB).
    let out = env
        .devenv()
        .args(["--json", "top", "--once"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sample: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let vm = &sample["vm"];
    assert_eq!(vm["cpus"], 2, "{sample}");
    let total = vm["memory_total_bytes"].as_u64().unwrap();
    assert!(
        (256 << 20..=512 << 20).contains(&total),
        "MemTotal of a 512 MiB guest: {sample}"
    );
    let used = vm["memory_used_bytes"].as_u64().unwrap();
    assert!(used > 0 && used < total, "{sample}");
    let cpu = vm["cpu_percent"].as_f64().unwrap();
    assert!((0.0..=200.0).contains(&cpu), "{sample}");
}
