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
    let dir = tempfile::tempdir().unwrap();
    let ctx = docker::context(
        dir.path(),
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo compiling; exit 3\"]\n",
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
                step.as_deref().unwrap_or("").starts_with("Step 3/3 : RUN"),
                "{err}"
            );
            assert!(message.contains("returned a non-zero code: 3"), "{err}");
        }
        other => panic!("expected a failed build, got {other:?}"),
    }
    assert!(err.to_string().contains("at Step 3/3"), "{err}");
    assert!(err.help().is_some());
}

#[test]
fn up_builds_the_image_in_the_vms_daemon_and_a_second_up_builds_nothing() {
    let repo = docker::image_name("up");
    let _cleanup = Cleanup(repo.clone());
    let env = support::Env::new()
        .kvm_host()
        .with_env("FAKE_MINIKUBE_DOCKER_HOST", docker::SOCKET);
    env.example();
    docker::context(
        &env.project.join("services/api"),
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY busybox /bin/busybox\nCOPY README.md /\n",
        )],
    );
    let toml = std::fs::read_to_string(env.project.join("devenv.toml")).unwrap();
    env.write(
        "devenv.toml",
        &format!(
            "{toml}\n[services.api.image]\ncontext = \"services/api\"\ntag = \"{repo}:dev\"\n"
        ),
    );
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
        env.minikube_calls()
            .iter()
            .any(|c| c == "docker-env -p devenv-shop --shell none")
    );

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
