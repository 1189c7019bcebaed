//! `devenv exports` on a temp exports file (never the machine's): apply, update, remove, the
//! backup, conflicts, reload failures and stale temp files (kills and concurrent writers are in
//! `tests/faults.rs`). The NFS server reload is replaced through `DEVENV_EXPORTS_RELOAD` (the
//! real one would reload the machine's server).

mod support;

use std::process::Command;

use predicates::prelude::*;
use support::Env;

const FOREIGN: &str = "# hand-written\n/srv/share 10.0.0.5(ro,no_subtree_check)\n# VAGRANT-BEGIN: 501 3f2a\n\"/Users/ann/vm\" 192.168.56.10(rw,no_subtree_check,all_squash,anonuid=501,anongid=20,fsid=123)\n# VAGRANT-END: 501 3f2a\n";

fn env() -> Env {
    let env = Env::new();
    env.example();
    std::fs::write(&env.exports, FOREIGN).unwrap();
    env
}

fn exports_cmd(env: &Env) -> assert_cmd::Command {
    let mut cmd = env.devenv();
    cmd.env("DEVENV_EXPORTS_RELOAD", "true").arg("exports");
    cmd
}

fn read(env: &Env) -> String {
    std::fs::read_to_string(&env.exports).unwrap()
}

#[test]
fn apply_adds_the_block_and_remove_restores_the_file_byte_for_byte() {
    let env = env();
    exports_cmd(&env)
        .arg("apply")
        .assert()
        .success()
        .stdout(predicate::str::contains("+# BEGIN devenv shop uid="));
    let text = read(&env);
    assert!(text.starts_with(FOREIGN), "{text}");
    assert!(text.contains(&format!(
        "\"{}\" 192.168.39.0/24(rw,async,no_subtree_check,all_squash,",
        env.project.canonicalize().unwrap().display()
    )));
    exports_cmd(&env)
        .arg("apply")
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to change"));
    exports_cmd(&env).arg("remove").assert().success();
    assert_eq!(read(&env), FOREIGN);
}

#[test]
fn the_previous_version_is_kept_as_a_backup() {
    let env = env();
    exports_cmd(&env).arg("apply").assert().success();
    let backup = env.exports.with_file_name("exports.devenv.bak");
    assert_eq!(std::fs::read_to_string(backup).unwrap(), FOREIGN);
}

#[test]
fn dry_run_prints_the_diff_and_writes_nothing() {
    let env = env();
    exports_cmd(&env)
        .args(["apply", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("edit   "))
        .stdout(predicate::str::contains(" # VAGRANT-END: 501 3f2a"))
        .stdout(predicate::str::contains("+# END devenv shop uid="));
    assert_eq!(read(&env), FOREIGN);
}

#[test]
fn show_reports_absent_then_up_to_date() {
    let env = env();
    exports_cmd(&env)
        .assert()
        .success()
        .stdout(predicate::str::contains("not present"));
    exports_cmd(&env).arg("apply").assert().success();
    let out = exports_cmd(&env).arg("--json").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["present"], true);
    assert_eq!(v["up_to_date"], true);
    assert_eq!(v["client"], "192.168.39.0/24");
}

#[test]
fn a_running_vm_gets_the_export_for_its_own_address_only() {
    let env = env();
    let out = Command::new(support::support_bin().join("minikube"))
        .args([
            "start",
            "-p",
            "devenv-shop",
            "--driver=kvm2",
            "--container-runtime=docker",
        ])
        .env("FAKE_MINIKUBE_STATE", &env.minikube_state)
        .env("FAKE_MINIKUBE_SUBNET", "192.168.50")
        .output()
        .unwrap();
    assert!(out.status.success());
    exports_cmd(&env).arg("apply").assert().success();
    assert!(read(&env).contains(" 192.168.50.10(rw,"), "{}", read(&env));
}

#[test]
fn a_foreign_export_of_a_parent_directory_stops_everything() {
    let env = env();
    let parent = env.project.parent().unwrap().canonicalize().unwrap();
    let foreign = format!(
        "{FOREIGN}{} 10.0.0.9(rw,no_subtree_check)\n",
        parent.display()
    );
    std::fs::write(&env.exports, &foreign).unwrap();
    exports_cmd(&env)
        .arg("apply")
        .assert()
        .failure()
        .stderr(predicate::str::contains("line 6"))
        .stderr(predicate::str::contains("help:"));
    assert_eq!(read(&env), foreign, "nothing changed");
}

#[test]
fn a_failed_reload_restores_the_previous_file_and_says_so() {
    let env = env();
    env.devenv()
        .env("DEVENV_EXPORTS_RELOAD", "false")
        .args(["exports", "apply"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("restored from its backup"));
    assert_eq!(read(&env), FOREIGN);
}

#[test]
fn a_missing_exports_file_is_created() {
    let env = env();
    std::fs::remove_file(&env.exports).unwrap();
    exports_cmd(&env).arg("apply").assert().success();
    assert!(read(&env).starts_with("# BEGIN devenv shop uid="));
    exports_cmd(&env).arg("remove").assert().success();
    assert_eq!(read(&env), "");
}

#[test]
fn temp_files_a_killed_writer_left_beside_the_exports_file_are_cleared_by_the_next_one() {
    let env = env();
    let dir = env.exports.parent().unwrap();
    let stale = dir.join(".exports.devenv-Xk3p9q");
    std::fs::write(&stale, "half a file\n").unwrap();
    let check = dir.join(".exports.devenv-check-7bT2aa");
    std::fs::write(&check, "half a check\n").unwrap();
    let unrelated = dir.join(".exports.swp");
    std::fs::write(&unrelated, "an editor's\n").unwrap();
    exports_cmd(&env).arg("apply").assert().success();
    assert!(!stale.exists() && !check.exists());
    assert_eq!(
        std::fs::read_to_string(&unrelated).unwrap(),
        "an editor's\n"
    );
    assert!(read(&env).starts_with(FOREIGN));
}

#[test]
fn quiet_apply_prints_nothing_and_still_writes_the_block() {
    let env = env();
    let out = exports_cmd(&env)
        .args(["apply"])
        .arg("-q")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert!(read(&env).contains("# BEGIN devenv shop uid="));
}

/// `chattr -i` on drop, so a failing test leaves a deletable temp dir.
struct Immutable<'a>(&'a std::path::Path);

impl Drop for Immutable<'_> {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(self.0).status();
    }
}

/// Whether this machine can flip the immutable flag of a file: root on a file system with
/// `chattr` (CI has both). The flag is left cleared.
fn chattr_works(path: &std::path::Path) -> bool {
    let works = support::is_root()
        && Command::new("chattr")
            .arg("-i")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
    if !works {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root on ext4");
        eprintln!("skipping: needs root and a file system with chattr +i");
    }
    works
}

/// An executable script in the test's home.
fn script(env: &Env, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = env.home.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn an_immutable_exports_file_is_named_as_such_even_as_root() {
    let env = env();
    if !chattr_works(&env.exports) {
        return;
    }
    let _flag = Immutable(&env.exports);
    assert!(
        Command::new("chattr")
            .arg("+i")
            .arg(&env.exports)
            .status()
            .unwrap()
            .success()
    );
    exports_cmd(&env)
        .arg("apply")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("immutable"))
        .stderr(predicate::str::contains("password").not());
    drop(_flag);
    assert_eq!(read(&env), FOREIGN);
}

#[test]
fn bytes_that_are_not_utf8_are_kept_as_bytes_through_apply_and_remove() {
    let env = env();
    let mut foreign = FOREIGN.as_bytes().to_vec();
    foreign
        .extend_from_slice(b"# caf\xe9 (Latin-1)\n/srv/d\xe9j\xe0 10.0.0.6(ro,no_subtree_check)\n");
    std::fs::write(&env.exports, &foreign).unwrap();
    exports_cmd(&env)
        .args(["apply", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("+# BEGIN devenv shop uid="));
    exports_cmd(&env).arg("apply").assert().success();
    let applied = std::fs::read(&env.exports).unwrap();
    assert!(
        applied.starts_with(&foreign),
        "the foreign bytes lead, unchanged"
    );
    exports_cmd(&env)
        .arg("--json")
        .assert()
        .success()
        .stdout(predicate::str::contains("\"up_to_date\":true"));
    exports_cmd(&env).arg("remove").assert().success();
    assert_eq!(std::fs::read(&env.exports).unwrap(), foreign);
}

#[test]
fn a_line_someone_added_inside_the_block_is_kept_after_it_and_named() {
    let env = env();
    exports_cmd(&env).arg("apply").assert().success();
    let text = read(&env);
    let begin = text.find("# BEGIN devenv shop").unwrap();
    let after_begin = begin + text[begin..].find('\n').unwrap() + 1;
    let edited = format!(
        "{}# my own note\n{}",
        &text[..after_begin],
        &text[after_begin..]
    );
    std::fs::write(&env.exports, &edited).unwrap();
    let note_line = edited[..after_begin].lines().count() + 1;

    exports_cmd(&env)
        .arg("apply")
        .assert()
        .success()
        .stderr(predicate::str::contains(format!(
            "exports:{note_line}: `# my own note` is inside devenv's block but not devenv's: kept, after the block"
        )));
    let fixed = read(&env);
    assert_eq!(fixed.matches("# my own note").count(), 1);
    let end = fixed.find("# END devenv shop").unwrap();
    assert!(fixed.find("# my own note").unwrap() > end, "{fixed}");
    exports_cmd(&env).arg("remove").assert().success();
    assert_eq!(read(&env), format!("{FOREIGN}# my own note\n"));
}

/// A reload command that prints what exportfs prints for a bad line and fails.
fn failing_reload(env: &Env) -> std::path::PathBuf {
    script(
        env,
        "reload-fails",
        "echo 'exportfs: /etc/exports:7: unknown keyword \"bogus\"' >&2\nexit 1\n",
    )
}

#[test]
fn a_failed_reload_shows_what_the_server_said() {
    let env = env();
    env.devenv()
        .env("DEVENV_EXPORTS_RELOAD", failing_reload(&env))
        .args(["exports", "apply"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("restored from its backup"))
        .stderr(predicate::str::contains(
            "the server said:\nexportfs: /etc/exports:7: unknown keyword \"bogus\"",
        ));
    assert_eq!(read(&env), FOREIGN);
}

#[test]
fn a_failed_reload_of_a_file_that_did_not_exist_removes_it_again() {
    let env = env();
    std::fs::remove_file(&env.exports).unwrap();
    env.devenv()
        .env("DEVENV_EXPORTS_RELOAD", "false")
        .args(["exports", "apply"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "was removed again (it did not exist before)",
        ));
    assert!(!env.exports.exists());
}

#[test]
fn removing_the_last_block_removes_the_backup_too() {
    let env = env();
    exports_cmd(&env).arg("apply").assert().success();
    let backup = env.exports.with_file_name("exports.devenv.bak");
    assert!(backup.exists());
    exports_cmd(&env)
        .arg("remove")
        .assert()
        .success()
        .stdout(predicate::str::contains("previous version kept").not());
    assert!(
        !backup.exists(),
        "no devenv file is left beside the exports"
    );
    assert_eq!(read(&env), FOREIGN);
}

#[test]
fn a_reload_a_killed_change_owed_is_finished_by_the_next_command_with_nothing_to_change() {
    let env = env();
    exports_cmd(&env).arg("apply").assert().success();
    // What a devenv killed between replacing the file and reloading the server leaves.
    let marker = env.exports.with_file_name("exports.devenv.reload");
    std::fs::write(&marker, "").unwrap();
    exports_cmd(&env)
        .args(["apply", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("never reloaded the NFS server"));
    exports_cmd(&env)
        .arg("apply")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "NFS server reloaded (an interrupted change had not)",
        ));
    assert!(!marker.exists());
    exports_cmd(&env)
        .arg("apply")
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to change"));
    // A reload that fails keeps the debt for the next command.
    std::fs::write(&marker, "").unwrap();
    env.devenv()
        .env("DEVENV_EXPORTS_RELOAD", "false")
        .args(["exports", "apply"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("was not followed by a reload"));
    assert!(marker.exists());
}

#[test]
fn a_restore_that_fails_says_why_and_how_to_finish_by_hand() {
    let env = env();
    if !chattr_works(&env.exports) {
        return;
    }
    // The reload fails after making the file immutable: the restore cannot replace it.
    let script = script(
        &env,
        "reload-locks",
        &format!("chattr +i {}\nexit 1\n", env.exports.display()),
    );
    let _unlock = Immutable(&env.exports);
    let out = env
        .devenv()
        .env("DEVENV_EXPORTS_RELOAD", &script)
        .args(["exports", "apply"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("restoring"), "{stderr}");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    assert!(!stderr.contains("could not start"), "{stderr}");
    assert!(
        stderr.contains("put the previous version back by hand: sudo cp"),
        "{stderr}"
    );
}

#[test]
fn a_linked_exports_file_is_written_where_the_link_points_keeping_mode_owner_and_attributes() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = env();
    // /etc/exports -> static/exports, as NixOS and configuration managers link it.
    let dir = env.exports.parent().unwrap();
    let real = dir.join("static").join("exports");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::rename(&env.exports, &real).unwrap();
    std::os::unix::fs::symlink("static/exports", &env.exports).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    let owner = if support::is_root() {
        std::os::unix::fs::chown(&real, Some(4321), Some(8765)).unwrap();
        (4321, 8765)
    } else {
        let m = std::fs::metadata(&real).unwrap();
        (m.uid(), m.gid())
    };
    let name = c"user.devenv-label";
    let path = std::ffi::CString::new(real.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: both strings are NUL-terminated and the value is 5 readable bytes.
    let labelled =
        unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), b"kept!".as_ptr().cast(), 5, 0) }
            == 0;
    assert!(
        labelled || std::env::var_os("CI").is_none(),
        "CI's ext4 has user attributes"
    );

    exports_cmd(&env).arg("apply").assert().success();
    assert!(
        std::fs::symlink_metadata(&env.exports)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link stays a link"
    );
    let written = std::fs::read_to_string(&real).unwrap();
    assert!(written.starts_with(FOREIGN) && written.contains("# BEGIN devenv shop"));
    let meta = std::fs::metadata(&real).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), owner);
    if labelled {
        let mut value = [0u8; 16];
        // SAFETY: as above; `value` has room for 16 bytes.
        let n = unsafe {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert_eq!(&value[..usize::try_from(n).unwrap_or(0)], b"kept!");
    }
    let backup = env.exports.with_file_name("exports.devenv.bak");
    assert_eq!(
        std::fs::metadata(&backup).unwrap().mode() & 0o7777,
        0o640,
        "the backup is no more readable than the file"
    );
    assert!(
        std::fs::read_dir(real.parent().unwrap())
            .unwrap()
            .all(|e| e.unwrap().file_name() == "exports"),
        "no temp file left beside the target"
    );

    exports_cmd(&env).arg("remove").assert().success();
    assert!(
        std::fs::symlink_metadata(&env.exports)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&real).unwrap(), FOREIGN);
}

#[test]
fn a_project_directory_whose_name_is_not_utf8_is_refused_with_the_reason() {
    use std::os::unix::ffi::OsStrExt;
    let env = env();
    let odd = env
        .project
        .parent()
        .unwrap()
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9-shop"));
    std::fs::rename(&env.project, &odd).unwrap();
    exports_cmd(&env)
        .current_dir(&odd)
        .arg("apply")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("has a name that is not UTF-8"))
        .stderr(predicate::str::contains("rename the directory"));
    assert_eq!(read(&env), FOREIGN, "nothing written");
}
