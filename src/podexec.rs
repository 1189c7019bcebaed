//! A command in a container of a pod, over the API's `exec` subresource (a websocket: kube asks
//! for `v5.channel.k8s.io`, which can close stdin alone, and falls back to `v4`): the user's
//! stdin, stdout and stderr joined to it; a remote terminal when stdin is a terminal (raw mode
//! here, the window size sent at the start and on every resize); the remote exit code as the
//! result. The same call serves a pod on the laptop's cluster and one on the shared cluster.

use std::io::Read;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{AttachParams, TerminalSize};
use kube::{Api, Client};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::terminal::{self, Input};

/// Why a command could not be run, or its end not learnt.
#[derive(Debug, thiserror::Error)]
pub enum PodExecError {
    #[error("cannot exec in {pod} ({container}): the Kubernetes API {api}")]
    Refused {
        pod: String,
        container: String,
        api: String,
    },
    #[error("{pod} ({container}) cannot run `{command}`: {message}")]
    CannotRun {
        pod: String,
        container: String,
        command: String,
        message: String,
    },
    #[error("the connection to {pod} closed before the command's exit status came")]
    Lost { pod: String },
}

impl PodExecError {
    pub fn help(&self) -> Option<String> {
        match self {
            PodExecError::Refused { .. } => Some(
                "`devenv status` shows whether the pod runs; exec needs the `create` verb on pods/exec".into(),
            ),
            PodExecError::CannotRun { .. } => Some(
                "the image lacks that program: name one it has after `--` (`devenv shell api -- /bin/busybox sh`)".into(),
            ),
            PodExecError::Lost { .. } => Some(
                "the pod may have restarted or the network dropped: run the command again".into(),
            ),
        }
    }
}

/// The container to run in: `wanted`, else the one the pod names as its default
/// (`kubectl.kubernetes.io/default-container`, as kubectl reads it), else its first.
pub fn container(pod: &Pod, wanted: Option<&str>) -> Option<String> {
    let names: Vec<&str> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    if let Some(w) = wanted {
        return names.contains(&w).then(|| w.to_string());
    }
    let default = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubectl.kubernetes.io/default-container"))
        .filter(|d| names.contains(&d.as_str()));
    default
        .cloned()
        .or_else(|| names.first().map(|n| n.to_string()))
}

/// The exit code a `Status` from the status channel reports: 0 for Success, n for
/// `NonZeroExitCode` with an `ExitCode` cause of n; any other status is its message (the
/// command could not start).
pub fn exit_code(status: &Status) -> Result<i32, crate::unreadable::Unreadable> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.reason.as_deref() == Some("ExitCode"))
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.trim().parse::<i32>().ok());
        if let Some(code) = code {
            return Ok(code);
        }
    }
    Err(crate::unreadable::Unreadable::new(
        status
            .message
            .clone()
            .unwrap_or_else(|| "the command failed without saying why".into()),
    ))
}

/// Run `command` in `container` of `pod` with this process's terminal; its exit code.
pub async fn run(
    client: Client,
    namespace: &str,
    pod: &str,
    container: &str,
    command: &[String],
) -> Result<i32, PodExecError> {
    let input = terminal::stdin();
    let tty = input == Input::Terminal;
    let params = AttachParams::default()
        .container(container)
        .stdin(input != Input::Nothing)
        .stdout(true)
        .stderr(!tty)
        .tty(tty);
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let mut attached = api
        .exec(pod, command.iter().map(String::as_str), &params)
        .await
        .map_err(|e| PodExecError::Refused {
            pod: pod.to_string(),
            container: container.to_string(),
            api: crate::cluster::describe(&e),
        })?;
    // Raw mode from here on; the guard puts the terminal back however this ends.
    let _raw = tty.then(terminal::RawMode::enable).flatten();
    let status = attached.take_status().expect("the status is taken once");
    let out = attached
        .stdout()
        .map(|r| tokio::spawn(copy(r, Stream::Out)));
    let err = attached
        .stderr()
        .map(|r| tokio::spawn(copy(r, Stream::Err)));
    if input != Input::Nothing
        && let Some(writer) = attached.stdin()
    {
        tokio::spawn(feed_stdin(writer));
    }
    if tty && let Some(sizes) = attached.terminal_size() {
        tokio::spawn(follow_size(sizes));
    }
    let status = status.await;
    // The copies end when kube closes the streams, which it does when the session ends
    // cleanly; after a broken one they would wait forever, so what is left gets a moment.
    let drain = if status.is_some() {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(300)
    };
    for copy in [out, err].into_iter().flatten() {
        let _ = tokio::time::timeout(drain, copy).await;
    }
    let Some(status) = status else {
        return Err(PodExecError::Lost {
            pod: pod.to_string(),
        });
    };
    exit_code(&status).map_err(|message| PodExecError::CannotRun {
        pod: pod.to_string(),
        container: container.to_string(),
        command: command.join(" "),
        message: message.to_string(),
    })
}

/// One of this process's outputs.
#[derive(Clone, Copy)]
enum Stream {
    Out,
    Err,
}

/// Copy a remote stream to ours, flushing as it comes (a prompt has no newline). The writes
/// are the standard library's: a terminal takes them at once.
async fn copy(mut from: impl AsyncRead + Unpin, to: Stream) {
    use std::io::Write;
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    // Once ours is closed (`devenv shell api -- cat big | head`), the rest is read and dropped,
    // so the remote command is never held up by a full buffer.
    let mut closed = false;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if closed {
            continue;
        }
        let written = match to {
            Stream::Out => {
                let mut out = std::io::stdout().lock();
                out.write_all(&buf[..n]).and_then(|()| out.flush())
            }
            Stream::Err => {
                let mut err = std::io::stderr().lock();
                err.write_all(&buf[..n]).and_then(|()| err.flush())
            }
        };
        closed = written.is_err();
    }
}

/// Our stdin to the remote one, then its end. Read on a thread of its own: a read of a
/// terminal cannot be cancelled, and a thread outside the runtime does not hold up devenv's
/// exit when the remote command ends first.
async fn feed_stdin(mut writer: impl AsyncWrite + Unpin) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 8 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    while let Some(chunk) = rx.recv().await {
        if writer.write_all(&chunk).await.is_err() {
            return;
        }
    }
    // End of file: dropping the writer makes kube tell the server stdin is closed.
    let _ = writer.shutdown().await;
}

/// Send the window size now and after every SIGWINCH.
async fn follow_size<S>(mut sizes: S)
where
    S: futures_util::Sink<TerminalSize> + Unpin,
{
    use futures_util::SinkExt;
    let size = || terminal::size().map(|(width, height)| TerminalSize { width, height });
    if let Some(s) = size()
        && sizes.send(s).await.is_err()
    {
        return;
    }
    let Ok(mut winch) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    else {
        return;
    };
    while winch.recv().await.is_some() {
        if let Some(s) = size()
            && sizes.send(s).await.is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: serde_json::Value) -> Status {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_status_channel_gives_the_exit_code() {
        assert_eq!(
            exit_code(&status(
                serde_json::json!({"metadata": {}, "status": "Success"})
            )),
            Ok(0)
        );
        let three = status(serde_json::json!({
            "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
        }));
        assert_eq!(exit_code(&three), Ok(3));
        let missing = status(serde_json::json!({
            "metadata": {}, "status": "Failure", "reason": "InternalError",
            "message": "Internal error occurred: exec: \"psql\": executable file not found in $PATH",
        }));
        assert_eq!(
            exit_code(&missing),
            Err(
                "Internal error occurred: exec: \"psql\": executable file not found in $PATH"
                    .into()
            )
        );
    }

    #[test]
    fn the_container_is_the_named_one_else_the_pods_default_else_the_first() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-1", "annotations": {"kubectl.kubernetes.io/default-container": "app"}},
            "spec": {"containers": [{"name": "proxy"}, {"name": "app"}]},
        }))
        .unwrap();
        assert_eq!(container(&pod, None).as_deref(), Some("app"));
        assert_eq!(container(&pod, Some("proxy")).as_deref(), Some("proxy"));
        assert_eq!(container(&pod, Some("nope")), None);
        let mut plain = pod.clone();
        plain.metadata.annotations = None;
        assert_eq!(container(&plain, None).as_deref(), Some("proxy"));
    }
}
