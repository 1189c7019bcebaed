use super::*;

fn pod(yaml: &str) -> Pod {
    serde_norway::from_str(yaml).unwrap()
}

#[test]
fn a_named_target_port_is_looked_up_in_the_pod_containers() {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let p = pod(
        "metadata: {name: pg-0}\nspec:\n  containers:\n  - name: pg\n    ports: [{name: postgresql, containerPort: 5433}]\n",
    );
    assert_eq!(
        target_port(&p, Some(&IntOrString::String("postgresql".into())), 5432),
        Ok(5433)
    );
    assert_eq!(
        target_port(&p, Some(&IntOrString::Int(6000)), 5432),
        Ok(6000)
    );
    assert_eq!(target_port(&p, None, 5432), Ok(5432));
    let err = target_port(&p, Some(&IntOrString::String("http".into())), 80).unwrap_err();
    assert!(err.contains("no container port named http"), "{err}");
}

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
