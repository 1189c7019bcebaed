//! The everyday loop against the API server double, which serves `pods/log` and `pods/exec` as
//! the kubelet does behind the real API server (`support/apiserver/{podlog,exec}.rs`): the
//! example project's services run on the local cluster (`devenv-shop`) and, offloaded, in
//! ann's namespace on the shared one (`dev-cluster`).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Env;
use support::apiserver::ApiServer;

const REMOTE_NS: &str = "devenv-ann-shop";

/// The example project with both clusters in its kubeconfig; nothing deployed yet.
fn everyday_env() -> (Env, ApiServer, ApiServer) {
    let local = ApiServer::start_as("devenv-shop");
    let remote = ApiServer::start_as("dev-cluster");
    let env = Env::new();
    let kube = env.home.path().join("kube");
    let files = [local.kubeconfig(&kube), remote.kubeconfig(&kube)];
    let env = env.with_env("KUBECONFIG", std::env::join_paths(files).unwrap());
    env.example();
    (env, local, remote)
}

/// A Deployment `name` in `ns` with `replicas` ready pods labelled as the example's chart
/// labels them, each with `containers`; the pods' names.
fn deploy(
    api: &ApiServer,
    ns: &str,
    name: &str,
    replicas: u32,
    containers: &[&str],
) -> Vec<String> {
    if api.get("namespaces", "", ns).is_none() {
        api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    let labels = json!({"app.kubernetes.io/name": name});
    let containers: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": format!("shop-{name}:dev")}))
        .collect();
    api.create(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
        },
    }));
    api.mark_ready("deployments", ns, name);
    pods_of(api, ns, name)
}

fn pods_of(api: &ApiServer, ns: &str, name: &str) -> Vec<String> {
    api.list_selected("pods", Some(ns), &format!("app.kubernetes.io/name={name}"))
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Lines written a little apart, so their times differ.
fn write(api: &ApiServer, ns: &str, pod: &str, container: &str, line: &str) {
    api.append_pod_log(ns, pod, container, line);
    std::thread::sleep(Duration::from_millis(2));
}

fn run(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let out = env.devenv().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn logs_merge_every_service_in_time_order_each_line_labelled() {
    let (env, local, _remote) = everyday_env();
    let api = deploy(&local, "shop", "api", 2, &["api"]);
    let worker = deploy(&local, "shop", "worker", 1, &["worker"]);
    write(&local, "shop", &api[0], "api", "api one starts");
    write(&local, "shop", &worker[0], "worker", "worker polls");
    write(&local, "shop", &api[1], "api", "api two starts");
    write(&local, "shop", &api[0], "api", "GET /health 200");

    let (code, stdout, stderr) = run(&env, &["logs"]);
    assert_eq!(code, Some(0), "{stderr}");
    let width = format!("api/{}", api[0]).len();
    let expected = [
        format!("{:<width$} │ api one starts", format!("api/{}", api[0])),
        format!("{:<width$} │ worker polls", "worker"),
        format!("{:<width$} │ api two starts", format!("api/{}", api[1])),
        format!("{:<width$} │ GET /health 200", format!("api/{}", api[0])),
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "{stderr}");
    // The services without pods (postgres, search) are named once on stderr; the rest went on.
    assert_eq!(
        stderr.matches("postgres has no pods").count(),
        1,
        "{stderr}"
    );

    // Only the named services; the times come first with --timestamps.
    let (code, stdout, _) = run(&env, &["logs", "worker", "--timestamps"]);
    assert_eq!(code, Some(0));
    let (time, rest) = stdout.trim_end().split_once(' ').unwrap();
    assert!(time.starts_with("20") && time.ends_with('Z'), "{stdout}");
    assert_eq!(rest, "worker │ worker polls");
}

#[test]
fn logs_of_an_offloaded_service_come_from_the_shared_cluster() {
    let (env, local, remote) = everyday_env();
    env.postgres_offloaded();
    let pg = deploy(&remote, REMOTE_NS, "postgres", 1, &["postgres"]);
    let api = deploy(&local, "shop", "api", 1, &["api"]);
    write(
        &remote,
        REMOTE_NS,
        &pg[0],
        "postgres",
        "database system is ready",
    );
    write(&local, "shop", &api[0], "api", "connected to postgres:5432");

    let (code, stdout, stderr) = run(&env, &["logs", "postgres", "api", "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["service"], "postgres");
    assert_eq!(lines[0]["where"], "remote");
    assert_eq!(lines[0]["pod"], pg[0].as_str());
    assert_eq!(lines[0]["line"], "database system is ready");
    assert_eq!(lines[1]["where"], "local");
    assert!(lines[0]["time"].as_str().unwrap() < lines[1]["time"].as_str().unwrap());
    // Nothing was asked of the local cluster about postgres, nor of the remote about api.
    assert_eq!(
        local.count_requests(
            "GET",
            &format!("/api/v1/namespaces/shop/pods/{}/log", pg[0])
        ),
        0
    );
    assert!(
        remote
            .requests()
            .iter()
            .all(|r| !r.path.contains("/namespaces/shop/"))
    );
}

#[test]
fn tail_grep_since_and_previous_select_lines_as_asked() {
    let (env, local, _remote) = everyday_env();
    let api = deploy(&local, "shop", "api", 1, &["api"]);
    for i in 1..=5 {
        write(
            &local,
            "shop",
            &api[0],
            "api",
            &format!("request {i} took {}ms", i * 10),
        );
    }
    let (_, stdout, _) = run(&env, &["logs", "api", "--tail", "2"]);
    assert_eq!(
        stdout
            .lines()
            .map(|l| l.split(" │ ").nth(1).unwrap())
            .collect::<Vec<_>>(),
        ["request 4 took 40ms", "request 5 took 50ms"]
    );
    let (_, stdout, _) = run(&env, &["logs", "api", "--grep", "took [2-3]0ms$"]);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.contains("request 2") && stdout.contains("request 3"));

    local.clear_requests();
    let (code, stdout, _) = run(&env, &["logs", "api", "--since", "1h"]);
    assert_eq!((code, stdout.lines().count()), (Some(0), 5));
    let asked = local
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/log"))
        .unwrap();
    assert!(asked.query.contains("sinceSeconds=3600"), "{}", asked.query);
    assert!(asked.query.contains("timestamps=true"), "{}", asked.query);

    // Before any restart there is no previous run: the API's reason, once, and exit 1.
    let (code, _, stderr) = run(&env, &["logs", "api", "--previous"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("previous terminated container \"api\""),
        "{stderr}"
    );
    local.restart_container("shop", &api[0], "api");
    write(&local, "shop", &api[0], "api", "started again");
    let (code, stdout, stderr) = run(&env, &["logs", "api", "--previous"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    let (_, stdout, _) = run(&env, &["logs", "api"]);
    assert!(stdout.trim_end().ends_with("started again"), "{stdout}");

    let (code, _, stderr) = run(&env, &["logs", "api", "--grep", "(unclosed"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("--grep is not a regular expression"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&env, &["logs", "apl"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("did you mean `api`?"), "{stderr}");
}

#[test]
fn a_pod_that_cannot_be_read_is_named_once_and_the_rest_go_on() {
    let (env, local, _remote) = everyday_env();
    let api = deploy(&local, "shop", "api", 2, &["api"]);
    let mut status = local.get("pods", "shop", &api[1]).unwrap()["status"].clone();
    status["containerStatuses"][0]["state"] =
        json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}});
    status["containerStatuses"][0]["ready"] = json!(false);
    local.set_status("pods", "shop", &api[1], status);
    write(&local, "shop", &api[0], "api", "serving");

    let (code, stdout, stderr) = run(&env, &["logs", "api"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("serving"), "{stdout}");
    let reason = "is waiting to start: trying and failing to pull image";
    assert_eq!(stderr.matches(reason).count(), 1, "{stderr}");
    assert!(stderr.contains(&api[1]), "{stderr}");
}

/// A devenv in the background, killed when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// `devenv logs -f …` in the background, its stdout lines arriving on a channel.
fn follow(env: &Env, args: &[&str]) -> (Running, mpsc::Receiver<String>) {
    let mut child = env
        .background()
        .args(["logs", "-f"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The next line containing `text`, within 10 s.
fn expect_line(rx: &mpsc::Receiver<String>, text: &str) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no line with {text:?}; saw {seen:?}");
}

#[test]
fn follow_goes_on_through_a_restart_and_picks_up_new_pods() {
    let (env, local, _remote) = everyday_env();
    let api = deploy(&local, "shop", "api", 1, &["api"]);
    write(&local, "shop", &api[0], "api", "old line");
    let (mut child, rx) = follow(&env, &["api", "--tail", "1"]);
    assert!(expect_line(&rx, "old line").starts_with("api │"));

    write(&local, "shop", &api[0], "api", "live line");
    expect_line(&rx, "live line");

    // The container restarts: the old stream ends, the new run is streamed from its start.
    local.restart_container("shop", &api[0], "api");
    write(&local, "shop", &api[0], "api", "after the restart");
    expect_line(&rx, "after the restart");

    // A second pod appears (a scale-up): it is found within a round, labelled by pod.
    let scaled = local.http(
        "PATCH",
        "/apis/apps/v1/namespaces/shop/deployments/api",
        Some("application/merge-patch+json"),
        r#"{"spec":{"replicas":2}}"#,
    );
    assert_eq!(scaled.status, 200);
    local.mark_ready("deployments", "shop", "api");
    let pods = pods_of(&local, "shop", "api");
    let new = pods.iter().find(|p| **p != api[0]).unwrap().clone();
    std::thread::sleep(Duration::from_millis(1500));
    write(&local, "shop", &new, "api", "hello from the new pod");
    let line = expect_line(&rx, "hello from the new pod");
    assert!(line.starts_with(&format!("api/{new}")), "{line}");

    let _ = child.kill();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn follow_ends_quietly_when_its_reader_goes_away() {
    let (env, local, _remote) = everyday_env();
    let api = deploy(&local, "shop", "api", 1, &["api"]);
    write(&local, "shop", &api[0], "api", "first");
    let (mut child, rx) = follow(&env, &["api"]);
    expect_line(&rx, "first");
    drop(rx);
    // The reader thread ends at its next line, closing the pipe; the line after finds it closed.
    let until = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < until,
            "devenv logs -f went on writing into a closed pipe"
        );
        write(&local, "shop", &api[0], "api", "more");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn shell_runs_a_command_with_its_streams_and_exits_with_its_code() {
    let (env, local, _remote) = everyday_env();
    deploy(&local, "shop", "api", 2, &["api"]);
    let (code, _, stderr) = run(&env, &["shell", "api", "--", "sh", "-c", "exit 3"]);
    assert_eq!(code, Some(3), "{stderr}");
    let (code, stdout, stderr) = run(
        &env,
        &[
            "shell",
            "api",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; echo $HOSTNAME",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let first_ready = pods_of(&local, "shop", "api")[0].clone();
    assert_eq!(stdout, format!("out\n{first_ready}\n"));
    assert_eq!(stderr, "err\n");
    // A pipe on stdin is passed through, and its end reaches the remote command.
    let out = env
        .devenv()
        .args(["shell", "api", "--", "sh", "-c", "tr a-z A-Z; echo done"])
        .write_stdin("hello\n")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO\ndone\n");
    let exec = local
        .requests()
        .into_iter()
        .rfind(|r| r.path.ends_with("/exec"))
        .unwrap();
    assert!(
        exec.query.contains("stdin=true") && !exec.query.contains("tty=true"),
        "{}",
        exec.query
    );
}

#[test]
fn shell_opens_bash_where_the_image_has_it_else_sh() {
    let (env, local, _remote) = everyday_env();
    deploy(&local, "shop", "api", 1, &["api"]);
    deploy(&local, "shop", "worker", 1, &["worker"]);
    // The worker's image has sh and nothing else.
    let bin = env.home.path().join("worker-image");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("/bin/sh", bin.join("sh")).unwrap();
    local.set_image_path("shop-worker:dev", bin.to_str().unwrap());
    let login = |service: &str| {
        let out = env
            .devenv()
            .args(["shell", service])
            .write_stdin("echo \"shell=$0\"; exit 4\n")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    if support::real_tool("bash").is_some() {
        assert_eq!(login("api"), (Some(4), "shell=bash\n".to_string()));
    }
    assert_eq!(login("worker"), (Some(4), "shell=sh\n".to_string()));

    // A program the image does not have: the runtime's reason, and the way out.
    let (code, _, stderr) = run(&env, &["shell", "worker", "--", "psql"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot run `psql`"), "{stderr}");
    assert!(
        stderr.contains("executable file not found in $PATH"),
        "{stderr}"
    );
    assert!(stderr.contains("code: pod-exec"), "{stderr}");
}

#[test]
fn shell_in_an_offloaded_service_runs_on_the_shared_cluster() {
    let (env, local, remote) = everyday_env();
    env.postgres_offloaded();
    let pg = deploy(&remote, REMOTE_NS, "postgres", 1, &["postgres"]);
    let (code, stdout, stderr) = run(
        &env,
        &["shell", "postgres", "--", "sh", "-c", "echo $HOSTNAME"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.trim(), pg[0]);
    assert_eq!(
        local.count_requests(
            "GET",
            &format!("/api/v1/namespaces/{REMOTE_NS}/pods/{}/exec", pg[0])
        ),
        0
    );
}

#[test]
fn shell_says_which_pods_there_are_when_none_will_do() {
    let (env, local, _remote) = everyday_env();
    let api = deploy(&local, "shop", "api", 1, &["api"]);
    let (code, _, stderr) = run(&env, &["shell", "api", "--pod", "api-nope", "--", "true"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("its pods are: {}", api[0])),
        "{stderr}"
    );
    assert!(stderr.contains("code: service-pods"), "{stderr}");
    let (code, _, stderr) = run(&env, &["shell", "search", "--", "true"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("search has no pods in namespace shop"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&env, &["shell", "api", "-c", "sidecar", "--", "true"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("its containers are: api"), "{stderr}");
}

#[test]
fn shell_on_a_terminal_gets_a_remote_terminal_with_resizes_and_ctrl_c() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (env, local, _remote) = everyday_env();
    deploy(&local, "shop", "api", 1, &["api"]);
    let (master, slave) = support::pty(Some((100, 40))).unwrap();
    let (mut master, slave) = (std::fs::File::from(master), std::fs::File::from(slave));
    let slave_fd = slave.as_raw_fd();
    let mut cmd = env.background();
    cmd.args([
        "shell", "api", "--", "sh", "-c",
        "read a; stty size; read b; stty size; trap 'echo got-int; exit 7' INT; echo waiting; while :; do sleep 0.05; done",
    ])
    .stdin(slave.try_clone().unwrap())
    .stdout(slave.try_clone().unwrap())
    .stderr(slave);
    // SAFETY: setsid and the ioctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            libc::ioctl(slave_fd, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let mut child = Running(cmd.spawn().unwrap());
    drop(cmd);
    // Everything the terminal has shown so far.
    let shown = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut reader = master.try_clone().unwrap();
    let screen = shown.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            screen
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let wait_for = |what: &str| {
        let until = Instant::now() + Duration::from_secs(10);
        while !shown.lock().unwrap().contains(what) {
            assert!(
                Instant::now() < until,
                "no {what:?} on the terminal; it shows {:?}",
                shown.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // The size devenv sends first (a real runtime, like the double, may start the process a
    // moment before it applies it: the command reads a line first).
    master.write_all(b"one\r").unwrap();
    wait_for("40 100");
    // The window grows: the kernel tells devenv (SIGWINCH), devenv tells the remote terminal.
    let size = libc::winsize {
        ws_row: 50,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    std::thread::sleep(Duration::from_millis(300));
    master.write_all(b"two\r").unwrap();
    wait_for("50 120");
    wait_for("waiting");
    // Ctrl-C is a key in raw mode: it reaches the remote terminal, whose shell gets SIGINT.
    master.write_all(&[3]).unwrap();
    wait_for("got-int");
    let until = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < until, "devenv shell did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(7));
}

/// A Service `name` in `ns` selecting the pods `deploy` made, port `port` → `target`.
fn service(api: &ApiServer, ns: &str, name: &str, port: u16, target: u16) {
    api.create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app.kubernetes.io/name": name},
                 "ports": [{"name": "http", "port": port, "targetPort": target}]},
    }));
}

/// A server that answers each connection's first read with `name` and what it read: the
/// container's port of one pod.
fn pod_server(name: &'static str) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                if let Ok(n) = conn.read(&mut buf) {
                    let answer = format!("{name}:{}", String::from_utf8_lossy(&buf[..n]));
                    let _ = conn.write_all(answer.as_bytes());
                }
            });
        }
    });
    addr
}

/// Send `msg` through 127.0.0.1:`port` and read the answer, until the pod's server closes the
/// connection (which the forward carries back).
fn ask(port: u16, msg: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.write_all(msg.as_bytes())?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(answer)
}

/// `devenv forward api :80` in the background: the process, the local port it took (from its
/// first line) and that line.
fn forward_api(env: &Env) -> (Running, u16, String) {
    let mut child = Running(
        env.background()
            .args(["forward", "api", ":80"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let port: u16 = banner
        .strip_prefix("Forwarding 127.0.0.1:")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{banner}"));
    (child, port, banner)
}

#[test]
fn forward_listens_on_localhost_and_follows_the_pod_when_it_is_replaced() {
    let (env, local, _remote) = everyday_env();
    let first = deploy(&local, "shop", "api", 1, &["api"])[0].clone();
    service(&local, "shop", "api", 80, 8080);
    local.forward("shop", &first, 8080, pod_server("first"));

    let (mut child, port, banner) = forward_api(&env);
    assert!(
        banner.contains("→ api:80 (Service api in shop on devenv-shop)"),
        "{banner}"
    );
    assert_eq!(ask(port, "ping").unwrap(), "first:ping");

    // The pod is deleted and its ReplicaSet makes another: the next connection goes there.
    assert!(local.delete("pods", "shop", &first));
    let deleted = Instant::now();
    local.mark_ready("deployments", "shop", "api");
    let second = pods_of(&local, "shop", "api")[0].clone();
    assert_ne!(second, first);
    local.forward("shop", &second, 8080, pod_server("second"));
    let answer = loop {
        match ask(port, "again") {
            Ok(a) if a == "second:again" => break a,
            other => assert!(
                deleted.elapsed() < Duration::from_secs(15),
                "no answer from the new pod: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(answer, "second:again");
    eprintln!(
        "forward recovered {:?} after the pod was replaced",
        deleted.elapsed()
    );

    let _ = child.kill();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains(&format!("forwarding to pod {second}")),
        "{stderr}"
    );
}

#[test]
fn forward_recovers_when_the_cluster_answers_again_after_an_outage() {
    // The laptop reaches its cluster through a relay the test cuts, as a VM restart or a
    // laptop's sleep would: open connections end, new ones are refused.
    let local = ApiServer::start_as("devenv-shop");
    let relay = support::outage::Relay::start(local.addr().parse().unwrap());
    let env = Env::new();
    let file = local.kubeconfig(&env.home.path().join("kube"));
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(&local.addr(), &relay.addr().to_string()),
    )
    .unwrap();
    let env = env.with_env("KUBECONFIG", &file);
    env.example();
    let pod = deploy(&local, "shop", "api", 1, &["api"])[0].clone();
    service(&local, "shop", "api", 80, 8080);
    local.forward("shop", &pod, 8080, pod_server("api"));

    let (mut child, port, _) = forward_api(&env);
    assert_eq!(ask(port, "before").unwrap(), "api:before");

    // The outage: a connection made during it waits instead of failing, and is served once
    // the cluster answers again.
    relay.cut();
    let during = std::thread::spawn(move || ask(port, "during"));
    std::thread::sleep(Duration::from_secs(3));
    relay.restore();
    let restored = Instant::now();
    let answer = during.join().unwrap();
    let waited = restored.elapsed();
    assert_eq!(answer.unwrap(), "api:during");
    eprintln!(
        "a connection made during a 3 s outage was served {} ms after the cluster answered again",
        waited.as_millis()
    );
    assert_eq!(ask(port, "after").unwrap(), "api:after");

    let _ = child.kill();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("forwarding to pod"), "{stderr}");
}

#[test]
fn forward_refuses_a_port_the_service_does_not_have() {
    let (env, local, _remote) = everyday_env();
    deploy(&local, "shop", "api", 1, &["api"]);
    service(&local, "shop", "api", 80, 8080);
    let (code, _, stderr) = run(&env, &["forward", "api", "9000:8080"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("Service api has no port 8080"), "{stderr}");
    assert!(stderr.contains("its ports are: 80"), "{stderr}");
    deploy(&local, "shop", "worker", 1, &["worker"]);
    let (code, _, stderr) = run(&env, &["forward", "worker", "80"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("worker has no Service worker in namespace shop"),
        "{stderr}"
    );
}

#[test]
fn urls_list_ingress_hosts_node_ports_and_forwards() {
    let (env, local, remote) = everyday_env();
    assert!(env.start_vm().status.success());
    let ip = String::from_utf8(env.minikube(&["ip", "-p", "devenv-shop"]).stdout).unwrap();
    let ip = ip.trim();
    env.postgres_offloaded();
    deploy(&remote, REMOTE_NS, "postgres", 1, &["postgres"]);
    deploy(&local, "shop", "api", 1, &["api"]);
    deploy(&local, "shop", "search", 1, &["search"]);
    service(&local, "shop", "search", 9200, 9200);
    local.create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"type": "NodePort", "selector": {"app.kubernetes.io/name": "api"},
                 "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]},
    }));
    local.create(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"rules": [{"host": "shop.invalid", "http": {"paths": [
            {"path": "/api", "pathType": "Prefix",
             "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}]},
    }));

    let (code, stdout, stderr) = run(&env, &["urls", "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["vm"], ip);
    let by = |name: &str| {
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == name)
            .unwrap()
            .clone()
    };
    let api = by("api");
    assert_eq!(api["urls"][0]["url"], "http://shop.invalid/api");
    assert_eq!(api["urls"][1]["url"], format!("http://{ip}:30080"));
    assert_eq!(by("postgres")["where"], "remote");
    assert_eq!(by("postgres")["forward"], "devenv forward postgres :5432");
    assert_eq!(by("search")["forward"], "devenv forward search :9200");
    assert_eq!(by("worker")["urls"], json!([]));

    let (_, stdout, _) = run(&env, &["urls"]);
    assert!(
        stdout.contains(&format!(
            "shop.invalid does not resolve to the VM: `{ip} shop.invalid` belongs in {}",
            env.hosts.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("on the shared cluster: `devenv forward postgres :5432`"),
        "{stdout}"
    );
}

#[test]
fn up_ends_with_the_urls_of_what_has_an_ingress() {
    let Some((env, _api)) = support::cluster_env() else {
        return;
    };
    // The example chart routes shop.local to the api through an Ingress.
    let (code, stdout, stderr) = run(&env, &["up"]);
    assert_eq!(code, Some(0), "{stderr}");
    let urls = stdout
        .split("URLs (all of them: devenv urls):")
        .nth(1)
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(urls.contains("api http://shop.local/"), "{stdout}");
    assert!(urls.contains("`192.168."), "{stdout}");
    assert!(
        urls.contains("devenv urls --write-hosts"),
        "the offer: {stdout}"
    );
    assert!(!urls.contains("worker"), "only what has a URL: {stdout}");
}

#[test]
fn the_hosts_block_maps_the_ingress_hosts_to_the_vm_and_down_purge_removes_it() {
    let Some((env, _api)) = support::cluster_env() else {
        return;
    };
    let (code, _, stderr) = run(&env, &["up"]);
    assert_eq!(code, Some(0), "{stderr}");
    let ip = String::from_utf8(env.minikube(&["ip", "-p", "devenv-shop"]).stdout).unwrap();
    let ip = ip.trim();
    // A hosts file with the administrator's own lines, and no line end at its end.
    let original = "127.0.0.1\tlocalhost\n# keep this\n10.1.2.3 printer.lan";
    std::fs::write(&env.hosts, original).unwrap();

    let (code, stdout, stderr) = run(&env, &["urls", "--write-hosts", "--dry-run"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(&format!("+{ip} shop.local")), "{stdout}");
    assert_eq!(std::fs::read_to_string(&env.hosts).unwrap(), original);

    let (code, stdout, stderr) = run(&env, &["urls", "--write-hosts"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("devenv down --purge"), "{stdout}");
    let uid = unsafe { libc::getuid() };
    let block =
        format!("# BEGIN devenv shop uid={uid}\n{ip} shop.local\n# END devenv shop uid={uid}\n");
    assert_eq!(
        std::fs::read_to_string(&env.hosts).unwrap(),
        format!("{original}\n{block}")
    );
    let (_, stdout, _) = run(&env, &["urls", "--write-hosts"]);
    assert!(stdout.contains("already has"), "{stdout}");
    let (_, stdout, _) = run(&env, &["urls"]);
    assert!(!stdout.contains("does not resolve"), "{stdout}");

    // down --purge takes the block out again; every other byte is as it was.
    let (code, stdout, stderr) = run(&env, &["down", "--purge", "--dry-run"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(&format!("-{ip} shop.local")), "{stdout}");
    let (code, stdout, stderr) = run(&env, &["down", "--purge", "--yes"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "done: remove devenv's block for shop in {}",
            env.hosts.display()
        )),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&env.hosts).unwrap(),
        format!("{original}\n")
    );
}

#[test]
fn a_hosts_file_whose_markers_do_not_pair_is_refused_and_left_alone() {
    let Some((env, _api)) = support::cluster_env() else {
        return;
    };
    let (code, _, stderr) = run(&env, &["up"]);
    assert_eq!(code, Some(0), "{stderr}");
    let uid = unsafe { libc::getuid() };
    let broken =
        format!("127.0.0.1 localhost\n# BEGIN devenv shop uid={uid}\n10.0.0.1 shop.local\n");
    std::fs::write(&env.hosts, &broken).unwrap();
    let (code, _, stderr) = run(&env, &["urls", "--write-hosts"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("line 2: the BEGIN of devenv's block for shop has no END"),
        "{stderr}"
    );
    assert!(stderr.contains("hosts-file"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&env.hosts).unwrap(), broken);
}

#[test]
fn restart_rolls_the_deployment_that_owns_the_services_pods() {
    let (env, local, _remote) = everyday_env();
    let before = deploy(&local, "shop", "api", 2, &["api"]);

    let (code, stdout, stderr) = run(&env, &["restart", "api", "--dry-run"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("would restart api: deployment/api in shop (devenv-shop)"),
        "{stdout}"
    );
    let d = local.get("deployments", "shop", "api").unwrap();
    assert!(
        d["spec"]["template"]["metadata"]["annotations"].is_null(),
        "a dry run changes nothing: {d}"
    );

    let (code, stdout, stderr) = run(&env, &["restart", "api"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("restarted api: deployment/api"),
        "{stdout}"
    );
    let d = local.get("deployments", "shop", "api").unwrap();
    let at = d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(at.starts_with("20") && at.ends_with('Z'), "{d}");

    // The controller rolls a new ReplicaSet: new pods, the old ones gone.
    local.mark_ready("deployments", "shop", "api");
    let after = pods_of(&local, "shop", "api");
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} → {after:?}"
    );

    // A pod nobody owns cannot be restarted, and that is said.
    local.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "worker-by-hand", "namespace": "shop",
                     "labels": {"app.kubernetes.io/name": "worker"}},
        "spec": {"containers": [{"name": "worker", "image": "shop-worker:dev"}]},
    }));
    let (code, _, stderr) = run(&env, &["--json", "restart", "worker"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("worker-by-hand has no controller"),
        "{stderr}"
    );
}
