//! devenv's commands inside the VM, run by a real guest kernel against a real NFS server
//! (`support::vm`): the mount devenv builds (its argv quoted for the VM's shell), the probe read
//! back through the mount, and `/proc/mounts` as the kernel writes it, decoded by devenv's one
//! reader. One guest and one server for the whole file: booting takes 5–10 s under TCG.

mod support;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use devenv::minikube::{has_nfs_mount, parse_mounts};
use devenv::plan::MountSpec;
use devenv::probe::Probe;
use support::vm::{Ganesha, Guest};

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

    let _server = Ganesha::start(&[&source]);
    let guest = Guest::boot(&image, Ipv4Addr::new(192, 168, 39, 10));

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
    let mounted = guest.run(&vm_line(&mount));
    assert_eq!(
        mounted.status,
        0,
        "{mounted:?}\n{}\n{}",
        guest.console(),
        _server.log()
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
        "acregmax=1",
        "acdirmax=1",
    ] {
        assert!(
            nfs.options.iter().any(|o| o == option),
            "{option} in {:?}",
            nfs.options
        );
    }

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
