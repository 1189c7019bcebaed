use super::*;

#[test]
fn a_pid_file_nobody_holds_is_not_a_running_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::new(dir.path());
    assert_eq!(files.running(), None);
    std::fs::write(files.pid(), "4242").unwrap();
    assert_eq!(files.running(), None, "a stale pid file is not a process");
    let held = File::open(files.pid()).unwrap();
    held.lock().unwrap();
    assert_eq!(files.running(), Some(4242));
}

#[test]
fn bytes_are_shown_in_decimal_units() {
    assert_eq!(human_bytes(512), "512 B");
    assert_eq!(human_bytes(1_234), "1.2 kB");
    assert_eq!(human_bytes(3_400_000), "3.4 MB");
}
