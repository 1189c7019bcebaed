//! devenv against a real Docker Engine, standing in for the daemon inside minikube's VM: image
//! builds from a context with `.dockerignore`, a failing build's error, `devenv up` building
//! through `minikube docker-env`, and containers' stats as `devenv top` reads them.

mod support;

use std::time::Instant;

use devenv::docker::build::{self, BuildError, ImageSpec};
use devenv::docker::context::Context;
use support::docker::{self, Cleanup, block_on};

fn spec(service: &str, dir: &std::path::Path, reference: &str) -> ImageSpec {
    let image = devenv::config::Image {
        context: dir.to_path_buf(),
        dockerfile: "Dockerfile".into(),
        tag: reference.to_string(),
    };
    ImageSpec::read(std::path::Path::new("/"), service, &image).unwrap()
}

#[test]
fn the_api_version_is_negotiated_down_to_the_daemons() {
    let daemon = docker::daemon();
    let version = daemon.api_version();
    let out = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output()
        .unwrap();
    let server = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(version, server, "bollard speaks the daemon's version");
}

#[test]
fn a_tiny_image_builds_from_scratch_and_dockerignore_keeps_files_out() {
    let daemon = docker::daemon();
    let repo = docker::image_name("ignore");
    let _cleanup = Cleanup(repo.clone());
    let dir = tempfile::tempdir().unwrap();
    // The build itself checks what arrived: a RUN fails the build if the ignored file is there.
    let ctx = docker::context(
        dir.path(),
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY busybox /bin/busybox\nCOPY . /ctx/\nRUN [\"/bin/busybox\", \"test\", \"-f\", \"/ctx/app/main.txt\"]\nRUN [\"/bin/busybox\", \"test\", \"!\", \"-e\", \"/ctx/secret.env\"]\nRUN [\"/bin/busybox\", \"test\", \"!\", \"-e\", \"/ctx/logs\"]\n",
            ),
            (".dockerignore", "secret.env\nlogs\n"),
            ("app/main.txt", "hello\n"),
            ("secret.env", "PASSWORD=x\n"),
            ("logs/today.log", "noise\n"),
        ],
    );
    let reference = format!("{repo}:dev");
    let spec = spec("api", &ctx, &reference);
    let lines = std::sync::Mutex::new(Vec::new());
    let started = Instant::now();
    let built = block_on(build::build(&daemon, &spec, &|l: &str| {
        lines.lock().unwrap().push(l.to_string())
    }))
    .unwrap_or_else(|e| panic!("{e}: {:?}", lines.lock().unwrap()));
    eprintln!(
        "built a {} KiB context in {} ms",
        built.context_bytes / 1024,
        started.elapsed().as_millis()
    );
    let lines = lines.lock().unwrap();
    assert!(
        lines.iter().any(|l| l.starts_with("Step 1/")),
        "the output was streamed: {lines:?}"
    );
    assert_eq!(built.reference, spec.content_reference());
    for reference in [&reference, &built.reference] {
        assert!(
            block_on(build::exists(&daemon, reference)).unwrap(),
            "{reference} exists"
        );
    }
    assert!(!block_on(build::exists(&daemon, &format!("{repo}:other"))).unwrap());
    // The tar holds no ignored file either.
    let sent = Context::scan(&ctx, "Dockerfile").unwrap().entries;
    assert!(
        !sent
            .iter()
            .any(|e| e.starts_with("logs") || e == "secret.env"),
        "{sent:?}"
    );
}

#[test]
fn a_failing_build_names_the_step_its_exit_code_and_the_message() {
    let daemon = docker::daemon();
    let repo = docker::image_name("fail");
    let _cleanup = Cleanup(repo.clone());
    let leftovers = docker::FailedBuildLeftovers(repo.clone());
    let dir = tempfile::tempdir().unwrap();
    let ctx = docker::context(
        dir.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM scratch\n{}\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo compiling; exit 3\"]\n",
                leftovers.label()
            ),
        )],
    );
    let spec = spec("api", &ctx, &format!("{repo}:dev"));
    let err = block_on(build::build(&daemon, &spec, &|_: &str| {})).unwrap_err();
    match &err {
        BuildError::Failed {
            step,
            code,
            message,
            ..
        } => {
            assert_eq!(code, &Some(3), "{err}");
            assert!(
                step.as_deref().unwrap_or("").starts_with("Step 4/4 : RUN"),
                "{err}"
            );
            assert!(message.contains("returned a non-zero code: 3"), "{err}");
        }
        other => panic!("expected a failed build, got {other:?}"),
    }
    assert!(err.to_string().contains("at Step 4/4"), "{err}");
    assert!(err.help().is_some());
}

#[test]
fn up_builds_the_image_in_the_vms_daemon_and_a_second_up_builds_nothing() {
    // `up`'s preflight wants helm on PATH, though the release is not reached here.
    if support::real_tool("helm").is_none() {
        return;
    }
    let repo = docker::image_name("up");
    let _cleanup = Cleanup(repo.clone());
    let env = support::Env::new()
        .kvm_host()
        .with_env("FAKE_MINIKUBE_DOCKER_HOST", docker::SOCKET);
    env.example();
    env.with_image(
        "api",
        &format!("{repo}:dev"),
        "FROM scratch\nCOPY README.md /\n",
    );
    env.with_image(
        "worker",
        &format!("{repo}-worker:dev"),
        "FROM scratch\nCOPY Dockerfile /\n",
    );
    let _cleanup_worker = Cleanup(format!("{repo}-worker"));
    // No cluster here: the release fails, but the images stage (after vm) is done.
    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("images: built {repo}:dev as {repo}:devenv-")),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("images: api: Step 1/"),
        "build output streamed: {stdout}"
    );
    assert!(
        stdout.contains(&format!("built {repo}-worker:dev as")),
        "{stdout}"
    );
    // docker-env may restart dockerd in the VM: asked once for both builds.
    let asked = env
        .minikube_calls()
        .iter()
        .filter(|c| *c == "docker-env -p devenv-shop --shell none")
        .count();
    assert_eq!(asked, 1, "{:?}", env.minikube_calls());

    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("images: {repo}:dev is built from the current")),
        "{stdout}"
    );
    assert!(!stdout.contains("images: api: Step"), "{stdout}");

    // A changed file in the context is built again.
    env.write("services/api/README.md", "changed\n");
    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("images: built {repo}:dev")),
        "{stdout}"
    );
}

#[test]
fn up_stops_at_the_images_stage_with_the_failing_step_and_exit_code() {
    if support::real_tool("helm").is_none() {
        return;
    }
    let repo = docker::image_name("upfail");
    let _cleanup = Cleanup(repo.clone());
    let leftovers = docker::FailedBuildLeftovers(repo.clone());
    let env = support::Env::new()
        .kvm_host()
        .with_env("FAKE_MINIKUBE_DOCKER_HOST", docker::SOCKET);
    env.example();
    docker::context(&env.project.join("services/api"), &[]);
    env.with_image(
        "api",
        &format!("{repo}:dev"),
        &format!(
            "FROM scratch\n{}\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"false\"]\n",
            leftovers.label()
        ),
    );
    let out = env.devenv().arg("up").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("error at 'images': building"), "{stderr}");
    assert!(stderr.contains("failed at Step 4/4 : RUN"), "{stderr}");
    assert!(stderr.contains("returned a non-zero code: 1"), "{stderr}");
    assert!(
        stdout.contains("release: skipped: images did not finish"),
        "{stdout}"
    );
}

#[test]
fn a_running_containers_stats_are_read_and_mapped_to_its_service() {
    let daemon = docker::daemon();
    let image = docker::BusyboxImage::build(&daemon, "stats");
    let image = &image.reference;
    let ns = format!("stats-{}", std::process::id());
    let _pod = docker::PodContainer::start(image, &ns, "api-7d9c5-xk2p4", "api");
    // A container of another namespace is not the project's.
    let _other = docker::PodContainer::start(image, "kube-system", "coredns-1", "coredns");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let services = vec![devenv::watch::resources::ServiceNames {
        service: "api".into(),
        aliases: vec![],
    }];
    let started = Instant::now();
    let figures = block_on(devenv::watch::sample::containers(&daemon, &ns, &services)).unwrap();
    eprintln!(
        "stats of {} container(s) in {} ms",
        figures.len(),
        started.elapsed().as_millis()
    );
    assert_eq!(figures.len(), 1, "{figures:?}");
    let (service, f) = &figures[0];
    assert_eq!(service, "api");
    assert!(f.cpu_percent > 0.0, "the loop uses some CPU: {f:?}");
    assert!(f.memory_bytes > 0, "{f:?}");
}

#[test]
fn top_json_once_prints_one_sample_with_the_vm_and_each_services_containers() {
    let daemon = docker::daemon();
    let image = docker::BusyboxImage::build(&daemon, "top");
    // The cluster is the API double; postgres's pod has restarted twice.
    let api = support::apiserver::ApiServer::start_as("devenv-shop");
    api.create(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}
    }));
    api.create(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "postgres-0", "namespace": "shop"},
        "spec": {"containers": [{"name": "postgresql", "image": "postgres"}]}
    }));
    api.set_status(
        "pods",
        "shop",
        "postgres-0",
        serde_json::json!({"phase": "Running", "containerStatuses": [{
            "name": "postgresql", "image": "postgres", "imageID": "", "ready": true,
            "restartCount": 2
        }]}),
    );
    let env = docker::running_example();
    let kubeconfig = api.kubeconfig(env.home.path());
    let env = env.with_env("KUBECONFIG", kubeconfig);
    // The example's namespace is `shop`; other tests' containers use their own namespaces.
    let pod = format!("postgres-{}", std::process::id());
    let _pod = docker::PodContainer::start(&image.reference, "shop", &pod, "postgresql");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let started = Instant::now();
    let out = env
        .devenv()
        .args(["--json", "top", "--once"])
        .output()
        .unwrap();
    eprintln!(
        "devenv top --once took {} ms",
        started.elapsed().as_millis()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one sample, one line: {stdout}");
    let sample: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let vm = &sample["vm"];
    assert!(vm["cpus"].as_u64().unwrap() >= 1, "{sample}");
    assert!(vm["memory_percent"].as_f64().unwrap() > 0.0, "{sample}");
    let postgres = sample["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "postgres")
        .unwrap_or_else(|| panic!("postgres's container is found: {sample}"));
    assert_eq!(postgres["containers"], 1);
    assert_eq!(postgres["restarts"], 2, "{sample}");
    let api_service = sample["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "api");
    assert!(api_service.is_none_or(|s| s["restarts"] == 0), "{sample}");
    assert_eq!(sample["errors"], serde_json::json!([]), "{sample}");
    assert!(postgres["memory_bytes"].as_u64().unwrap() > 0, "{sample}");
    assert!(
        env.minikube_calls()
            .iter()
            .any(|c| c.starts_with("ssh -p devenv-shop -- sh -c")),
        "the VM was read through minikube ssh"
    );
}

#[test]
fn top_on_a_vm_without_docker_says_the_runtime_is_why_and_how_to_recreate() {
    let env = support::Env::new();
    env.example();
    // A VM as plain `minikube start` of v1.39 makes it: containerd.
    env.minikube(&["start", "-p", "devenv-shop", "--driver=kvm2"]);
    let out = env
        .devenv()
        .args(["--json", "top", "--once"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("not Docker"), "{stdout}");
    assert!(stdout.contains("devenv up --recreate"), "{stdout}");
}

#[test]
fn top_without_a_reachable_daemon_names_what_it_could_not_read() {
    let env = support::Env::new();
    env.example();
    env.start_vm();
    // The double's default docker-env points at tcp://192.168.39.10:2376, where no daemon is.
    let out = env
        .devenv()
        .args(["top", "--once"])
        .env(
            "FAKE_MINIKUBE_DOCKER_HOST",
            "unix:///nonexistent/docker.sock",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("not read: containers:"), "{stdout}");
    assert!(stdout.contains("SERVICE"), "{stdout}");
    assert!(
        stdout.contains("VM           CPU"),
        "the VM is still shown: {stdout}"
    );
}

#[test]
fn top_asks_minikube_for_the_daemon_once_however_often_it_fails_to_connect() {
    let env = support::Env::new();
    env.example();
    env.start_vm();
    let mut top = env
        .background()
        .args(["--json", "top", "--interval", "1s"])
        .env(
            "FAKE_MINIKUBE_DOCKER_HOST",
            "unix:///nonexistent/docker.sock",
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(top.stdout.take().unwrap()));
    let samples: Vec<String> = lines.take(3).map(|l| l.unwrap()).collect();
    let _ = top.kill();
    let _ = top.wait();
    assert_eq!(samples.len(), 3);
    assert!(
        samples.iter().all(|s| s.contains("containers:")),
        "every sample says the daemon was not reached: {samples:?}"
    );
    let asked = env
        .minikube_calls()
        .iter()
        .filter(|c| c.starts_with("docker-env"))
        .count();
    assert_eq!(asked, 1, "{:?}", env.minikube_calls());
}

#[test]
fn minikubes_tls_endpoint_is_reached_with_the_client_certificates_and_version_negotiated() {
    if support::real_tool("openssl").is_none() {
        return;
    }
    let tls = support::tls::TlsDaemon::start();
    let env = devenv::docker::DockerEnv {
        host: format!("tcp://{}", tls.address),
        tls_verify: true,
        cert_path: Some(tls.certs.clone()),
    };
    let daemon = block_on(devenv::docker::Daemon::connect(&env)).unwrap();
    assert_eq!(daemon.api_version(), "1.41");
}

#[test]
fn a_missing_client_certificate_is_named_before_any_handshake() {
    if support::real_tool("openssl").is_none() {
        return;
    }
    let tls = support::tls::TlsDaemon::start();
    std::fs::remove_file(tls.certs.join("cert.pem")).unwrap();
    let env = devenv::docker::DockerEnv {
        host: format!("tcp://{}", tls.address),
        tls_verify: true,
        cert_path: Some(tls.certs.clone()),
    };
    let err = block_on(devenv::docker::Daemon::connect(&env)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} has no cert.pem", tls.certs.display())
    );
    let help = err.help().unwrap_or_default();
    assert!(help.contains("docker-env"), "{help}");
}
