//! `pods/<name>/exec` over WebSocket, as kube-apiserver (proxying to the kubelet) serves it to
//! kube-rs and to `kubectl exec`.
//!
//! **Copied from the real server** (Kubernetes v1.34: `staging/src/k8s.io/apimachinery/pkg/util/
//! remotecommand/constants.go`, `pkg/kubelet/cri/streaming/remotecommand/{websocket,httpstream}.go`,
//! `staging/src/k8s.io/apiserver/pkg/util/wsstream/conn.go`):
//! - `GET …/pods/<pod>/exec?command=a&command=b&container=c&stdin=true&stdout=true&stderr=true
//!   &tty=true` with a websocket upgrade; the client offers subprotocols in one comma-separated
//!   header and the server takes `v5.channel.k8s.io` over `v4.channel.k8s.io`. A missing pod is
//!   a 404 `Status`; no `command` is a 400; a pod that is not running is a 400; the container
//!   is chosen as for logs (one container needs no name).
//! - Binary frames whose first byte is the channel: 0 stdin, 1 stdout, 2 stderr, 3 status,
//!   4 resize (`{"Width":w,"Height":h}`), and in v5 `[255, n]` closing the client's channel n
//!   (stdin's end of file). With a TTY, stderr is not used: the terminal carries both.
//! - When the process ends, one `Status` on channel 3: `{"metadata":{},"status":"Success"}`, or
//!   for an exit code n ≠ 0 `status: Failure`, `reason: NonZeroExitCode`, the message
//!   `command terminated with non-zero exit code: error executing command [..], exit code n` and
//!   `details.causes: [{"reason":"ExitCode","message":"n"}]`; a command that cannot start is an
//!   `InternalError` naming the runtime's `executable file not found in $PATH`, as containerd
//!   words it. Then the websocket closes.
//!
//! **Simplified**: the "container" is a process on the test machine, with `/` as its working
//! directory and the environment `PATH`, `HOSTNAME` (the pod) and with a TTY `TERM=xterm`; its
//! `PATH` is the test's own unless [`super::ApiServer::set_image_path`] gave the container's
//! image another one (to play an image without bash). With a TTY it runs on a real pseudo
//! terminal (its own session, the terminal as its controlling one), so `stty size` sees the
//! resizes.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper::Response;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::http::{Body, Shared};
use super::resources;
use super::store::ApiError;

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

/// What one exec asks for.
struct Exec {
    command: Vec<String>,
    stdin: bool,
    tty: bool,
    path: String,
    pod: String,
    v5: bool,
}

/// Answer an exec request: refuse it, or upgrade and run the command in a task.
pub fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
    ns: String,
    pod: String,
) -> Response<Body> {
    let header = |name: &str| super::http::header(&req, name);
    let raw = req.uri().query().unwrap_or("").to_string();
    let pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                super::http::percent_decode(k),
                super::http::percent_decode(v),
            )
        })
        .collect();
    let q: HashMap<String, String> = pairs.iter().cloned().collect();
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    let command: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let key = header("sec-websocket-key");
    let offered = header("sec-websocket-protocol");
    let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
    let user_agent = header("user-agent");
    let checked = (|| {
        let obj = shared.store.lock().unwrap_or_else(|e| e.into_inner()).get(
            resources::by_name("pods"),
            &ns,
            &pod,
        )?;
        if command.is_empty() {
            return Err(ApiError::bad_request(
                "you must specify at least one command for the container".to_string(),
            ));
        }
        let src = super::podlog::source(&obj, q.get("container").map(String::as_str), false)?;
        if obj["status"]["phase"] != "Running" || !src.running {
            return Err(ApiError::bad_request(format!(
                "unable to upgrade connection: container not found (\"{}\")",
                src.container
            )));
        }
        let image = obj["spec"]["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == src.container.as_str()))
            .and_then(|c| c["image"].as_str())
            .unwrap_or_default()
            .to_string();
        if key.is_empty() {
            return Err(ApiError::bad_request(
                "unable to upgrade connection: missing websocket upgrade".to_string(),
            ));
        }
        let v5 = offered.contains(&V5);
        if !v5 && !offered.contains(&V4) {
            return Err(ApiError::bad_request(format!(
                "unable to upgrade connection: none of the subprotocols {offered:?} is supported"
            )));
        }
        let path = shared
            .image_paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&image)
            .cloned()
            .unwrap_or_else(|| std::env::var("PATH").unwrap_or_default());
        Ok(Exec {
            command: command.clone(),
            stdin: flag("stdin"),
            tty: flag("tty"),
            path,
            pod: pod.clone(),
            v5,
        })
    })();
    let response = match checked {
        Err(e) => super::upgrade::refuse(&e),
        Ok(exec) => {
            let protocol = if exec.v5 { V5 } else { V4 };
            super::upgrade::accept(req, &key, protocol, move |ws| serve(ws, exec))
        }
    };
    let path = format!("/api/v1/namespaces/{ns}/pods/{pod}/exec");
    super::upgrade::record(&shared, &path, &raw, user_agent, response.status().as_u16());
    response
}

/// The Status the kubelet sends on channel 3 when the process has ended.
fn exit_status(command: &[String], code: Option<i32>) -> Value {
    match code {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        Some(n) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {n}",
                command.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": n.to_string()}]},
        }),
        // Killed by a signal: the runtime reports 128 + the signal.
        None => exit_status(command, Some(137)),
    }
}

fn internal_error(message: String) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

fn resize(master: &OwnedFd, width: u16, height: u16) {
    let size = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
}

type Output = Box<dyn AsyncRead + Unpin + Send>;

/// Where stdin's bytes go.
enum Input {
    Pipe(tokio::process::ChildStdin),
    Pty(std::fs::File),
}

impl Input {
    async fn write(&mut self, data: &[u8]) {
        match self {
            Input::Pipe(w) => {
                let _ = w.write_all(data).await;
                let _ = w.flush().await;
            }
            Input::Pty(f) => {
                use std::io::Write;
                let _ = f.write_all(data);
            }
        }
    }
}

/// Run the command and carry its streams over the websocket.
async fn serve(ws: super::upgrade::Socket, exec: Exec) {
    let (mut sink, mut stream) = ws.split();
    let mut cmd = tokio::process::Command::new(&exec.command[0]);
    cmd.args(&exec.command[1..])
        .current_dir("/")
        .env_clear()
        .env("PATH", &exec.path)
        .env("HOSTNAME", &exec.pod)
        .kill_on_drop(true);
    let mut master: Option<OwnedFd> = None;
    let spawned = if exec.tty {
        cmd.env("TERM", "xterm");
        match crate::support::pty(None) {
            Ok((m, slave)) => {
                let fd = slave.as_raw_fd();
                cmd.stdin(Stdio::from(slave.try_clone().expect("dup")))
                    .stdout(Stdio::from(slave.try_clone().expect("dup")))
                    .stderr(Stdio::from(slave));
                // SAFETY: only async-signal-safe calls between fork and exec.
                unsafe {
                    cmd.pre_exec(move || {
                        libc::setsid();
                        libc::ioctl(fd, libc::TIOCSCTTY, 0);
                        Ok(())
                    });
                }
                master = Some(m);
                cmd.spawn()
            }
            Err(e) => Err(e),
        }
    } else {
        cmd.stdin(if exec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd.spawn()
    };
    // The command keeps its copies of the terminal's process side until dropped, and the
    // master reports the end only once no copy is left.
    drop(cmd);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "exec: \"{}\": executable file not found in $PATH",
                    exec.command[0]
                )
            } else {
                e.to_string()
            };
            let status = internal_error(format!(
                "error executing command in container: failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: {why}: unknown"
            ));
            let mut frame = vec![3u8];
            frame.extend(status.to_string().as_bytes());
            let _ = sink.send(Message::binary(frame)).await;
            let _ = sink.close().await;
            return;
        }
    };
    let (to_client, mut outgoing) = mpsc::channel::<Message>(64);
    let mut input: Option<Input> = match &master {
        Some(m) => {
            // A pty is read on a thread of its own (tokio here has no file I/O).
            let mut reader = std::fs::File::from(m.try_clone().expect("dup"));
            let tx = to_client.clone();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut buf = vec![0u8; 16 * 1024];
                // The master reads EIO once the process side has closed.
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut frame = Vec::with_capacity(n + 1);
                    frame.push(1);
                    frame.extend_from_slice(&buf[..n]);
                    if tx.blocking_send(Message::binary(frame)).is_err() {
                        break;
                    }
                }
            });
            Some(Input::Pty(std::fs::File::from(m.try_clone().expect("dup"))))
        }
        None => {
            let outs: Vec<(u8, Output)> = [
                child.stdout.take().map(|o| (1, Box::new(o) as Output)),
                child.stderr.take().map(|e| (2, Box::new(e) as Output)),
            ]
            .into_iter()
            .flatten()
            .collect();
            for (channel, reader) in outs {
                tokio::spawn(super::upgrade::pump(reader, channel, to_client.clone()));
            }
            child.stdin.take().map(Input::Pipe)
        }
    };
    drop(to_client);
    let mut exited = None;
    let mut drained = false;
    while !(drained && exited.is_some()) {
        tokio::select! {
            frame = outgoing.recv(), if !drained => match frame {
                Some(frame) => {
                    if sink.send(frame).await.is_err() {
                        return;
                    }
                }
                // Every output has ended and all it said is sent.
                None => drained = true,
            },
            status = child.wait(), if exited.is_none() => {
                exited = Some(status.ok().and_then(|s| s.code()));
            },
            message = stream.next() => match message {
                Some(Ok(Message::Binary(data))) if !data.is_empty() => match data[0] {
                    0 => {
                        if let Some(w) = input.as_mut() {
                            w.write(&data[1..]).await;
                        }
                    }
                    4 => {
                        let size: Value = serde_json::from_slice(&data[1..]).unwrap_or_default();
                        if let Some(m) = &master {
                            resize(
                                m,
                                size["Width"].as_u64().unwrap_or(80) as u16,
                                size["Height"].as_u64().unwrap_or(24) as u16,
                            );
                        }
                    }
                    255 if exec.v5 && data.get(1) == Some(&0) => {
                        // End of stdin: close the process's input (with a TTY, send EOF).
                        match (&master, input.as_mut()) {
                            (Some(_), Some(w)) => w.write(&[4]).await,
                            _ => input = None,
                        }
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    // The client went away: the kubelet ends the exec session.
                    let _ = child.start_kill();
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    let status = exit_status(&exec.command, exited.flatten());
    let mut frame = vec![3u8];
    frame.extend(status.to_string().as_bytes());
    let _ = sink.send(Message::binary(frame)).await;
    let _ = sink.close().await;
    // Read what the client still sends until it closes too, as a graceful close does: a socket
    // dropped with unread data is reset by the kernel, which can lose the status on its way.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}
