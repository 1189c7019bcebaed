//! `devenv ui` in a real headless Chromium (Debian's `chromium` under `chromedriver`), on the
//! example project deployed by the real helm onto two API server doubles (the laptop's cluster
//! and the shared one): the page refuses a request without its token, shows the services,
//! shows a line written in a pod within a second, and its "Offload" and "Bring back" buttons
//! move postgres between the clusters through `devenv offload`, as its listing then says.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::offload::{expose_remote_postgres, node_listener, offload_env, output};
use support::webdriver::Browser;

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One raw HTTP/1.0 GET to the dashboard with `host` as the Host header: status and body.
fn get(addr: &str, path: &str, host: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

/// Where postgres runs for ann, as `devenv offload` lists it.
fn placement(env: &support::Env, service: &str) -> String {
    let (code, stdout, stderr) = output(env, &["--json", "offload"]);
    assert_eq!(code, Some(0), "{stderr}");
    let all: Value = serde_json::from_str(&stdout).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == service)
        .map(|s| s["placement"].as_str().unwrap().to_string())
        .unwrap()
}

/// Click `button` (the `nth` action of the page, counting from 1) and wait up to `limit` for
/// that action to end: its state, then its text (command, result, output).
fn act(browser: &Browser, button: &str, nth: usize, limit: Duration) -> String {
    browser.click(button);
    browser.wait_for(
        "the action to be listed",
        &format!("return document.querySelectorAll('#actions li[data-state]').length === {nth}"),
        Duration::from_secs(10),
    );
    let done = browser.wait_for(
        "the action to end",
        "const a = document.querySelector('#actions li[data-state]');
         return a.dataset.state !== 'running' ? a.dataset.state + '\\n' + a.innerText : null;",
        limit,
    );
    done.as_str().unwrap().to_string()
}

#[test]
fn the_dashboard_shows_the_services_streams_logs_and_toggles_an_offload() {
    let Some((env, local, remote)) = offload_env() else {
        return;
    };
    let Some(browser) = Browser::start() else {
        return;
    };
    let (code, stdout, stderr) = output(&env, &["up"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    // The shared cluster's postgres exposed as the platform team would, then ann's choice put
    // back to the laptop without applying it: postgres runs locally, ready to be offloaded.
    let Some(node) = node_listener() else {
        return;
    };
    expose_remote_postgres(&env, &remote, &node);
    let (code, _, stderr) = output(&env, &["offload", "postgres", "--local", "--no-apply"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(placement(&env, "postgres"), "local");

    let mut child = env
        .background()
        .args(["ui", "--no-open"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _ui = Running(child);
    let url = first
        .trim()
        .strip_prefix("dashboard: ")
        .unwrap_or_else(|| panic!("the first line is the address: {first:?}"))
        .to_string();
    let (base, token) = url.split_once("/?token=").unwrap();
    assert!(base.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(token.len(), 64, "32 random bytes: {token}");
    let addr = base.trim_start_matches("http://");

    // Refused: no token, another token, a name other than the loopback's (DNS rebinding).
    let (status, body) = get(addr, "/", addr);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("needs its token"), "{body}");
    let (status, _) = get(addr, "/events?token=0123", addr);
    assert_eq!(status, 403);
    let port = addr.rsplit(':').next().unwrap();
    let (status, _) = get(
        addr,
        &format!("/?token={token}"),
        &format!("rebound.example:{port}"),
    );
    assert_eq!(status, 403);
    // An action with the token only in the URL (what a form of another site could send) is
    // refused: actions need it in a header.
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "POST /api/services/postgres/remote?token={token} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 403"), "{answer}");
    browser.goto(&format!("{base}/"));
    let text = browser.eval("return document.body.innerText");
    assert!(text.as_str().unwrap().contains("needs its token"), "{text}");

    // With it: every service of the example project, with where it runs.
    browser.goto(&url);
    browser.wait_for(
        "the connection",
        "return document.getElementById('conn').textContent === 'live'",
        Duration::from_secs(20),
    );
    let names = browser.wait_for(
        "the services",
        "const r = [...document.querySelectorAll('#services tbody tr')].map(r => r.dataset.service);
         return r.length === 4 ? r.join(',') : null;",
        Duration::from_secs(30),
    );
    let mut names: Vec<&str> = names.as_str().unwrap().split(',').collect();
    names.sort();
    assert_eq!(names, ["api", "postgres", "search", "worker"]);
    let where_ = browser
        .eval("return document.querySelector('tr[data-service=postgres] td.where').innerText");
    assert_eq!(where_, "laptop");

    // A line written in a pod: the first shows that api's stream is open, the second is timed.
    let pods = local.list_selected("pods", Some("shop"), "app.kubernetes.io/name=api");
    let pod = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    let container = pods[0]["spec"]["containers"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let seen = |text: &str| {
        format!(
            "return [...document.querySelectorAll('#logs .line .text')].some(e => e.textContent === '{text}')"
        )
    };
    local.append_pod_log("shop", &pod, &container, "GET /health 200 (first)");
    browser.wait_for(
        "the first log line",
        &seen("GET /health 200 (first)"),
        Duration::from_secs(30),
    );
    let written = Instant::now();
    local.append_pod_log("shop", &pod, &container, "GET /orders 200 (timed)");
    browser.wait_for(
        "the timed log line",
        &seen("GET /orders 200 (timed)"),
        Duration::from_secs(1),
    );
    eprintln!(
        "a line written in api's pod was on the page {} ms later",
        written.elapsed().as_millis()
    );

    // Offload: the click runs `devenv offload postgres --remote`; the listing agrees.
    let done = act(
        &browser,
        "tr[data-service=postgres] button[data-action=remote]",
        1,
        Duration::from_secs(180),
    );
    assert!(done.starts_with("ok\n"), "{done}");
    assert!(done.contains("devenv offload postgres --remote"), "{done}");
    assert_eq!(placement(&env, "postgres"), "remote");
    browser.wait_for(
        "postgres shown on the shared cluster",
        "const r = document.querySelector('tr[data-service=postgres]');
         return r.querySelector('td.where').innerText.startsWith('remote')
             && r.querySelector('button[data-action=local]').textContent === 'Bring back';",
        Duration::from_secs(20),
    );
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    browser.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");
    eprintln!("screenshot: {} ({} bytes)", shot.display(), png.len());

    // Restart: the click runs `devenv restart api`, which marks api's pod template.
    let done = act(
        &browser,
        "tr[data-service=api] button[data-action=restart]",
        2,
        Duration::from_secs(60),
    );
    assert!(done.starts_with("ok\n"), "{done}");
    let api = local.get("deployments", "shop", "api").unwrap();
    assert!(
        api["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "{api}"
    );

    // And back to the laptop.
    let done = act(
        &browser,
        "tr[data-service=postgres] button[data-action=local]",
        3,
        Duration::from_secs(180),
    );
    assert!(done.starts_with("ok\n"), "{done}");
    assert_eq!(placement(&env, "postgres"), "local");
    drop(node);
}

/// The `state` events of the dashboard at `addr` (an HTTP/1.0 reader of its event stream),
/// until `done` holds for one; that one.
fn wait_state(addr: &str, token: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    write!(
        s,
        "GET /events?token={token} HTTP/1.0\r\nHost: {addr}\r\n\r\n"
    )
    .unwrap();
    let deadline = Instant::now() + limit;
    let mut text = String::new();
    let mut buf = [0u8; 65536];
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            if let Some(data) = frame.strip_prefix("event: state\ndata: ") {
                last = serde_json::from_str(data.trim_end()).unwrap();
                if done(&last) {
                    return last;
                }
            }
        }
    }
    panic!("no such state within {limit:?}; the last: {last}");
}

#[test]
fn up_with_the_dashboard_shows_its_stages_as_they_run_and_serves_until_ctrl_c() {
    let Some((env, _local, _remote)) = offload_env() else {
        return;
    };
    let mut child = env
        .background()
        .args(["up", "--ui", "--no-open"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let stderr = child.stderr.take().unwrap();
    let ui = Running(child);
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "no dashboard line");
        if let Some(url) = line.trim().strip_prefix("dashboard: ") {
            break url.to_string();
        }
    };
    let (base, token) = url.split_once("/?token=").unwrap();
    let addr = base.trim_start_matches("http://").to_string();
    let state = wait_state(&addr, token, Duration::from_secs(120), |s| {
        let stages = s["run"]["stages"].as_array();
        s["run"]["live"] == true
            && stages.is_some_and(|st| {
                st.iter().any(|x| x["stage"] == "release")
                    && st.iter().all(|x| x["state"] == "done")
            })
    });
    let names: Vec<&str> = state["run"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"vm") && names.contains(&"release"),
        "{names:?}"
    );

    // The run is over; the dashboard stays until Ctrl-C, and then devenv exits 0.
    let mut rest = String::new();
    let reader = std::thread::spawn(move || {
        let mut e = String::new();
        BufReader::new(stderr).read_to_string(&mut e).unwrap();
        e
    });
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = get(&addr, &format!("/?token={token}"), &addr);
    assert_eq!(status, 200, "still serving after the run");
    let mut ui = ui;
    unsafe { libc::kill(ui.0.id() as i32, libc::SIGINT) };
    let code = ui.0.wait().unwrap().code();
    out.read_to_string(&mut rest).unwrap();
    let err = reader.join().unwrap();
    assert_eq!(code, Some(0), "{rest}\n{err}");
    assert!(err.contains("until Ctrl-C"), "{err}");
}
