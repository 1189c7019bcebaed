//! `devenv watch` against real notify on real temp trees: the built binary runs with `--json`
//! and a bounded number of batches, the test makes changes once it says it is ready, and reads
//! what each action received. `forward` goes through the minikube double, whose `ssh` splits the
//! line with a real shell; `restart` goes to the API server double; resource alerts and image
//! rebuilds use the machine's real Docker Engine as the VM's daemon.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use support::Env;
use support::watcher::{Watch, paths_of, project};

#[test]
fn watch_a_single_change_runs_the_action_quickly() {
    let env = Env::new();
    project(
        &env,
        "[services.api]\nwatch = [\"services/api/**\"]\non_change = \"none\"\n",
    );
    env.write("services/api/main.go", "package main\n");
    let w = Watch::start(&env, 50, &["--once"]);
    let started = Instant::now();
    env.write("services/api/main.go", "package main // edited\n");
    let action = w.next("action");
    let latency = started.elapsed();
    println!("change -> action latency with a 50 ms debounce: {latency:?}");
    assert!(latency < Duration::from_secs(10), "{latency:?}");
    assert_eq!(action["action"], "none");
    assert_eq!(action["services"][0], "api");
    assert_eq!(paths_of(&action), ["services/api/main.go"]);
    assert_eq!(action["result"], "ok");
}

/// Run `devenv watch --once` (500 ms debounce) on a project whose `api` service watches
/// `services/api/**`, make the burst `write` makes in `services/api` (it returns the paths it
/// wrote, relative to the project), and check that one action received every one of them.
fn burst_reaches_one_action_with_every_path(write: impl FnOnce(&Path) -> BTreeSet<String>) {
    let env = Env::new();
    project(
        &env,
        "[services.api]\nwatch = [\"services/api/**\"]\non_change = \"none\"\n",
    );
    let base = env.project.join("services/api");
    std::fs::create_dir_all(&base).unwrap();
    let w = Watch::start(&env, 500, &["--once"]);
    let started = Instant::now();
    let want = write(&base);
    let actions = w.actions_until_exit();
    println!(
        "{}-path burst: action after {:?}",
        want.len(),
        started.elapsed()
    );
    assert_eq!(actions.len(), 1, "one action for the burst");
    let got: BTreeSet<String> = paths_of(&actions[0]).into_iter().collect();
    let missing: Vec<_> = want.difference(&got).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} paths missing, e.g. {missing:?}",
        want.len() - got.intersection(&want).count()
    );
    assert_eq!(actions[0]["count"], want.len());
}

#[test]
fn watch_a_burst_of_ten_thousand_files_reaches_the_action_once_with_every_path() {
    burst_reaches_one_action_with_every_path(|base| {
        let dir = base.join("gen");
        std::fs::create_dir_all(&dir).unwrap();
        (0..10_000)
            .map(|i| {
                std::fs::write(dir.join(format!("f{i:05}.txt")), "x").unwrap();
                format!("services/api/gen/f{i:05}.txt")
            })
            .collect()
    });
}

#[test]
fn watch_gitignore_devenvignore_and_git_dir_are_ignored() {
    let env = Env::new();
    project(
        &env,
        "[services.app]\nwatch = [\"**\"]\non_change = \"none\"\n",
    );
    env.write(".gitignore", "build/\n");
    env.write(".devenvignore", "*.tmp\n");
    for d in [".git", "build", "src"] {
        std::fs::create_dir_all(env.project.join(d)).unwrap();
    }
    let w = Watch::start(&env, 200, &["--once"]);
    env.write(".git/index", "x");
    env.write("build/out.bin", "x");
    env.write("src/scratch.tmp", "x");
    env.write("src/main.rs", "fn main() {}\n");
    let actions = w.actions_until_exit();
    assert_eq!(actions.len(), 1);
    assert_eq!(paths_of(&actions[0]), ["src/main.rs"]);
}

#[test]
fn watch_a_path_matching_two_services_triggers_both() {
    let env = Env::new();
    project(
        &env,
        "[services.api]\nwatch = [\"shared/**\"]\non_change = \"none\"\n\n\
         [services.web]\nwatch = [\"shared/*.ts\"]\non_change = \"none\"\n",
    );
    std::fs::create_dir_all(env.project.join("shared")).unwrap();
    let w = Watch::start(&env, 50, &["--once"]);
    env.write("shared/types.ts", "export {}\n");
    let actions = w.actions_until_exit();
    let services: Vec<&str> = actions
        .iter()
        .map(|a| a["services"][0].as_str().unwrap())
        .collect();
    assert_eq!(services, ["api", "web"]);
    for a in &actions {
        assert_eq!(paths_of(a), ["shared/types.ts"]);
    }
}

#[test]
fn watch_restart_stamps_the_pod_template_like_kubectl_rollout_restart() {
    let api = support::apiserver::ApiServer::start_as("devenv-shop").auto_ready();
    let env = Env::new();
    let kubeconfig = api.kubeconfig(&env.home.path().join("kube"));
    let env = env.with_env("KUBECONFIG", kubeconfig);
    project(
        &env,
        "[services.api]\nwatch = [\"services/api/**\"]\non_change = \"restart\"\n",
    );
    api.create(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "shop"}}));
    let deployment = |name: &str, app: &str| {
        serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop",
                         "labels": {"app.kubernetes.io/name": app}},
            "spec": {"replicas": 1,
                     "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        })
    };
    api.create(deployment("shop-api", "api"));
    api.create(deployment("shop-web", "web"));
    std::fs::create_dir_all(env.project.join("services/api")).unwrap();
    let w = Watch::start(&env, 50, &["--once"]);
    env.write("services/api/main.go", "package main\n");
    let actions = w.actions_until_exit();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["result"], "ok", "{}", actions[0]);
    assert_eq!(actions[0]["message"], "restarted deployment/shop-api");
    let api_dep = api.get("deployments", "shop", "shop-api").unwrap();
    let stamp = &api_dep["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"];
    assert!(
        stamp.as_str().is_some_and(|s| s.ends_with('Z')),
        "{api_dep}"
    );
    let web = api.get("deployments", "shop", "shop-web").unwrap();
    assert!(
        web["spec"]["template"]["metadata"]["annotations"].is_null(),
        "{web}"
    );
}

/// A running VM in the minikube double with the project mounted at /src over "NFS".
fn running_vm(env: &Env) {
    let out = env.start_vm();
    assert!(out.status.success(), "{out:?}");
    let ip = String::from_utf8(env.minikube(&["ip", "-p", "devenv-shop"]).stdout).unwrap();
    let gateway = format!("{}.1", ip.trim().rsplit_once('.').unwrap().0);
    let project = env.project.to_string_lossy().into_owned();
    // The host exports the project to the VM, or the mount is refused.
    std::fs::write(
        &env.exports,
        format!("\"{project}\" {}(rw,all_squash)\n", ip.trim()),
    )
    .unwrap();
    for argv in [
        vec!["sudo", "mkdir", "-p", "/src"],
        vec![
            "sudo",
            "mount",
            "-t",
            "nfs",
            "-o",
            "vers=3",
            &format!("{gateway}:{project}"),
            "/src",
        ],
    ] {
        let mut args = vec!["ssh", "-p", "devenv-shop", "--"];
        let line = devenv::process::ssh_command_line(&argv);
        args.push(&line);
        let out = env.minikube(&args);
        assert!(out.status.success(), "{argv:?}: {out:?}");
    }
}

fn touched(env: &Env) -> Vec<String> {
    let raw = std::fs::read(env.minikube_state.join("vm/devenv-shop/touched")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect()
}

#[test]
fn watch_forward_touches_hostile_names_in_the_vm_in_one_quoted_call() {
    let env = Env::new();
    project(
        &env,
        "[services.web]\nwatch = [\"web/**\"]\non_change = \"forward\"\n",
    );
    running_vm(&env);
    std::fs::create_dir_all(env.project.join("web")).unwrap();
    let names = [
        "plain.js",
        "with space.js",
        "it's.js",
        "\"dq\".js",
        "$(touch pwned).js",
        "back`tick`.js",
        "new\nline.js",
        "semi;colon&amp.js",
    ];
    let w = Watch::start(&env, 200, &["--once"]);
    for n in names {
        std::fs::write(env.project.join("web").join(n), "x").unwrap();
    }
    let actions = w.actions_until_exit();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["result"], "ok", "{}", actions[0]);
    let ssh_calls = env
        .minikube_calls()
        .iter()
        .filter(|c| c.starts_with("ssh -p devenv-shop -- touch"))
        .count();
    assert_eq!(ssh_calls, 1, "{:?}", env.minikube_calls());
    let got: BTreeSet<String> = touched(&env).into_iter().collect();
    let want: BTreeSet<String> = names.iter().map(|n| format!("/src/web/{n}")).collect();
    assert_eq!(got, want);
    assert!(!env.project.join("pwned").exists());
    assert!(!Path::new("pwned").exists());
}

#[test]
fn watch_forward_does_not_forward_the_echo_of_its_own_touch() {
    // The touch in the VM reaches the host's file through the NFS mount (the double sets its
    // times there, as the server does): the host's watcher sees it, and must not take it for
    // an edit, or every forward would cause the next one.
    let env = Env::new();
    project(
        &env,
        "[services.web]\nwatch = [\"web/**\"]\non_change = \"forward\"\n",
    );
    running_vm(&env);
    env.write("web/a.js", "x");
    let w = Watch::start(&env, 100, &["--max-batches", "2"]);
    env.write("web/a.js", "edited");
    let first = w.next("action");
    assert_eq!(first["result"], "ok", "{first}");
    assert_eq!(paths_of(&first), ["web/a.js"]);
    // Long enough for the echo's batch (one debounce after the touch) to come first.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    env.write("web/b.js", "new");
    let second = w.next("action");
    assert_eq!(paths_of(&second), ["web/b.js"], "{second}");
    drop(w);
}

#[test]
fn watch_a_failing_action_does_not_stop_the_watcher() {
    let env = Env::new();
    // No VM: every forward fails.
    project(
        &env,
        "[services.web]\nwatch = [\"web/**\"]\non_change = \"forward\"\n",
    );
    std::fs::create_dir_all(env.project.join("web")).unwrap();
    let w = Watch::start(&env, 50, &["--max-batches", "2"]);
    env.write("web/a.js", "x");
    let first = w.next("action");
    assert_eq!(first["result"], "error", "{first}");
    assert!(
        first["message"].as_str().unwrap().contains("minikube"),
        "{first}"
    );
    env.write("web/b.js", "x");
    let second = w.next("action");
    assert_eq!(second["result"], "error");
    assert_eq!(paths_of(&second), ["web/b.js"]);
    // The batches it was asked for ran; that their actions failed is the exit code's to say.
    let (actions, status) = w.actions_and_exit();
    assert!(actions.is_empty());
    assert_eq!(status.code(), Some(1));
}

#[test]
fn watch_stops_cleanly_on_ctrl_c() {
    let env = Env::new();
    project(&env, "");
    let mut w = Watch::start(&env, 50, &[]);
    let pid = w.child.id() as i32;
    // SAFETY: kill(2) on the child this test started; no memory is shared.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = w.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "still running 10 s after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The inodes of the directories a process has inotify watches on, from the kernel's own
/// account of its inotify descriptors (`/proc/PID/fdinfo`, one `inotify wd:… ino:…` line per
/// watch).
fn watched_inodes(pid: u32) -> BTreeSet<u64> {
    let mut inodes = BTreeSet::new();
    let dir = format!("/proc/{pid}/fdinfo");
    for entry in std::fs::read_dir(&dir).expect("fdinfo of devenv watch") {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.starts_with("inotify wd:")) {
            let ino = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix("ino:"))
                .expect("ino field");
            inodes.insert(u64::from_str_radix(ino, 16).unwrap());
        }
    }
    inodes
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

/// The project directories (relative) among `dirs` that the process watches.
fn watched_among(pid: u32, root: &Path, dirs: &[&str]) -> Vec<String> {
    let inodes = watched_inodes(pid);
    dirs.iter()
        .filter(|d| inodes.contains(&inode(&root.join(d))))
        .map(|d| d.to_string())
        .collect()
}

/// Wait, within a generous bound, until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn watch_ignored_directories_get_no_inotify_watch_and_new_ones_do() {
    let env = Env::new();
    project(&env, "");
    env.write(".gitignore", "node_modules/\n/target\n");
    env.write("web/.gitignore", "dist/\n");
    env.write(".devenvignore", "fixtures/\n");
    let dirs = [
        ".",
        ".git",
        ".git/objects/ab",
        "node_modules",
        "node_modules/left-pad",
        "target",
        "target/debug",
        "fixtures",
        "deploy",
        "deploy/chart",
        "src",
        "src/api",
        "web",
        "web/dist",
        "web/src",
    ];
    for d in dirs {
        std::fs::create_dir_all(env.project.join(d)).unwrap();
    }
    let w = Watch::start(&env, 50, &[]);
    let pid = w.child.id();
    let root = &env.project;
    assert_eq!(
        watched_among(pid, root, &dirs),
        [
            ".",
            "deploy",
            "deploy/chart",
            "src",
            "src/api",
            "web",
            "web/src"
        ]
    );
    assert_eq!(
        watched_inodes(pid).len(),
        7,
        "a watch on something outside the tree"
    );

    let later = [
        "src/new",
        "src/new/deeper",
        "web/dist/later",
        "node_modules/later",
        "src/new/node_modules",
    ];
    std::fs::create_dir_all(root.join("src/new/deeper")).unwrap();
    std::fs::create_dir_all(root.join("src/new/node_modules")).unwrap();
    std::fs::create_dir_all(root.join("web/dist/later")).unwrap();
    std::fs::create_dir_all(root.join("node_modules/later")).unwrap();
    eventually("the new directories are watched", || {
        watched_among(pid, root, &later).len() == 2
    });
    assert_eq!(
        watched_among(pid, root, &later),
        ["src/new", "src/new/deeper"]
    );
}

#[test]
fn watch_a_nested_gitignore_is_honoured_for_live_events_and_when_it_changes() {
    let env = Env::new();
    project(
        &env,
        "[services.web]\nwatch = [\"web/**\"]\non_change = \"none\"\n",
    );
    env.write("web/.gitignore", "*.gen.ts\n");
    std::fs::create_dir_all(env.project.join("web/src")).unwrap();
    let w = Watch::start(&env, 100, &["--max-batches", "3"]);
    env.write("web/src/a.gen.ts", "x");
    env.write("web/src/a.ts", "x");
    assert_eq!(paths_of(&w.next("action")), ["web/src/a.ts"]);

    env.write("web/src/.gitignore", "*.log\nout/\n");
    assert_eq!(paths_of(&w.next("action")), ["web/src/.gitignore"]);

    std::fs::create_dir_all(env.project.join("web/src/out")).unwrap();
    env.write("web/src/out/bundle.js", "x");
    env.write("web/src/debug.log", "x");
    env.write("web/src/b.gen.ts", "x");
    env.write("web/src/b.ts", "x");
    assert_eq!(paths_of(&w.next("action")), ["web/src/b.ts"]);
    assert!(w.actions_until_exit().is_empty());
}

#[test]
fn watch_a_burst_that_creates_directories_reaches_the_action_once_with_every_path() {
    // A checkout that brings 100 new directories of 100 files each: most files land before
    // their directory's watch exists.
    burst_reaches_one_action_with_every_path(|base| {
        let mut wrote = BTreeSet::new();
        for d in 0..100 {
            let dir = base.join(format!("pkg{d:02}/mod"));
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..100 {
                std::fs::write(dir.join(format!("f{f:02}.go")), "x").unwrap();
                wrote.insert(format!("services/api/pkg{d:02}/mod/f{f:02}.go"));
            }
        }
        wrote
    });
}

#[test]
fn a_memory_alert_names_the_heaviest_local_service_and_its_offload_command() {
    use support::docker;
    let daemon = docker::daemon();
    let image = docker::BusyboxImage::build(&daemon, "alert");
    let env = docker::running_example();
    // Any VM memory use passes a 1 % threshold; samples come every second.
    env.append_config("[watch]\ninterval = \"1s\"\n[watch.alerts]\nvm_memory = 1\n");
    let pod = format!("search-{}", std::process::id());
    let _pod = docker::PodContainer::start(&image.reference, "shop", &pod, "search");
    let w = Watch::start(&env, 100, &[]);
    let alert = w.next("alert");
    assert_eq!(alert["action"], "vm_memory", "{alert}");
    assert!(
        alert["message"].as_str().unwrap().contains("above 1 %"),
        "{alert}"
    );
    assert_eq!(
        alert["offload"], "devenv offload search --remote",
        "{alert}"
    );
}

#[test]
fn a_change_in_an_image_context_rebuilds_the_image_through_up() {
    use support::docker;
    // `up`'s preflight wants helm on PATH.
    if support::real_tool("helm").is_none() {
        return;
    }
    let repo = docker::image_name("watch");
    let _cleanup = docker::Cleanup(repo.clone());
    let env = Env::new()
        .kvm_host()
        .with_env("FAKE_MINIKUBE_DOCKER_HOST", docker::SOCKET);
    env.example();
    docker::context(&env.project.join("services/api"), &[("main.txt", "v1")]);
    env.with_image(
        "api",
        &format!("{repo}:dev"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY main.txt /\n",
    );
    let w = Watch::start(&env, 100, &["--once", "--no-alerts"]);
    env.write("services/api/main.txt", "v2");
    let (actions, status) = w.actions_and_exit();
    assert_eq!(actions.len(), 1, "{actions:?}");
    // The up it runs builds the image, then stops at the release: there is no cluster here,
    // so the action failed and --once says so.
    assert_eq!(actions[0]["action"], "helm", "{}", actions[0]);
    assert_eq!(actions[0]["result"], "error", "{}", actions[0]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(actions[0]["services"], serde_json::json!(["api"]));
    assert_eq!(paths_of(&actions[0]), ["services/api/main.txt"]);
    let out = std::process::Command::new("docker")
        .args(["images", "--format", "{{.Tag}}", &repo])
        .output()
        .unwrap();
    let tags = String::from_utf8_lossy(&out.stdout);
    assert!(tags.lines().any(|t| t == "dev"), "{tags}");
    assert!(tags.lines().any(|t| t.starts_with("devenv-")), "{tags}");
}

#[test]
fn a_process_out_of_file_descriptors_is_told_to_raise_ulimit_not_a_sysctl() {
    let env = Env::new();
    project(&env, "");
    let template = env.background();
    // The soft limit at which devenv starts but cannot watch depends on how many descriptors
    // its runtime takes first: raise it one by one until the watcher runs (stopped after 3 s).
    let mut told = Vec::new();
    for n in 8..=32 {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("ulimit -n \"$1\" && shift && exec timeout 3 \"$@\"")
            .args(["sh", &n.to_string()])
            .arg(template.get_program())
            .args(["watch", "--once", "--no-alerts"])
            .env_clear()
            .envs(template.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .current_dir(&env.project)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("cannot watch the source tree") {
            // Refused at start, it exits 1; refused later (a directory it reads), it says so
            // and goes on watching, until `timeout` stops it.
            let started = stdout.contains("watching");
            assert_eq!(
                out.status.code(),
                Some(if started { 124 } else { 1 }),
                "{stdout}{stderr}"
            );
            assert!(
                stderr.contains(&format!("devenv may open only {n} files")),
                "ulimit -n {n}: {stderr}"
            );
            assert!(stderr.contains("ulimit -n 4096"), "{stderr}");
            assert!(
                !stderr.contains("sysctl"),
                "not the inotify limit: {stderr}"
            );
            told.push(n);
        } else if stdout.contains("watching") {
            break;
        }
    }
    assert!(
        !told.is_empty(),
        "no limit stopped the watcher before it ran"
    );
}

#[test]
fn watch_once_exits_1_when_an_action_failed() {
    // `restart` with no cluster to restart in: the action fails.
    let env = Env::new().with_env("KUBECONFIG", "/nonexistent/kubeconfig");
    project(
        &env,
        "[services.api]\nwatch = [\"src/**\"]\non_change = \"restart\"\n",
    );
    std::fs::create_dir_all(env.project.join("src")).unwrap();
    let w = Watch::start(&env, 50, &["--once"]);
    env.write("src/main.rs", "fn main() {}\n");
    let (actions, status) = w.actions_and_exit();
    assert_eq!(actions.len(), 1);
    assert_ne!(actions[0]["result"], "ok", "{}", actions[0]);
    assert_eq!(status.code(), Some(1), "{actions:?}");
}
