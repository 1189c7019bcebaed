//! `pods/<name>/portforward` over WebSocket, as kube-apiserver (proxying to the kubelet) serves
//! it to kube-rs and to `kubectl port-forward` in its websocket mode.
//!
//! **Copied from the real server**
//! - `GET /api/v1/namespaces/<ns>/pods/<name>/portforward?ports=<p>[,<p>…]` with
//!   `Connection: Upgrade`, `Upgrade: websocket`; the client offers subprotocols in one
//!   comma-separated `Sec-WebSocket-Protocol` header and the server picks
//!   `v4.channel.k8s.io` (the kubelet's portforward does not speak v5). A missing pod is a 404
//!   `Status` before any upgrade; a pod that is not Running is a 400 (`unable to upgrade
//!   connection: pod … is not running`); no `ports` is a 400.
//! - After `101 Switching Protocols`: binary frames whose first byte is the channel; port *i* of
//!   the query uses channel `2i` for data and `2i+1` for errors. The server first sends, on both
//!   channels of each port, the port number as two little-endian bytes.
//! - The kubelet dials the pod's port when the stream opens. A refused dial is reported as one
//!   text message on the error channel (`error forwarding port <p> to pod <name>, uid <uid>:
//!   … connect: connection refused`) and the port is then unusable. When the pod's side closes
//!   the connection the server closes the websocket.
//!
//! **Simplified**: where a pod's port leads is set by the test ([`super::ApiServer::forward`]),
//! since the double has no pod network; a port without a target is refused like a closed port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::http::{Body, Shared};
use super::resources;
use super::store::ApiError;

const PROTOCOL: &str = "v4.channel.k8s.io";

fn status_reply(code: u16, reason: &str, message: String) -> Response<Body> {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST))
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(status.to_string())).boxed_unsync())
        .expect("static headers are valid")
}

/// Answer a portforward request: refuse it, or upgrade and serve the streams in a task.
pub fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
    ns: String,
    pod: String,
) -> Response<Body> {
    let header = |name: &str| super::http::header(&req, name);
    let query = req.uri().query().unwrap_or("").to_string();
    let ports: Vec<u16> = super::http::parse_query(&query)
        .get("ports")
        .map(|p| p.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default();
    let key = header("sec-websocket-key");
    let offered = header("sec-websocket-protocol");
    let user_agent = header("user-agent");
    let pod_obj = shared.store.lock().unwrap_or_else(|e| e.into_inner()).get(
        resources::by_name("pods"),
        &ns,
        &pod,
    );
    let response = match pod_obj {
        Err(e) => {
            let e: ApiError = e;
            Response::builder()
                .status(StatusCode::from_u16(e.code).unwrap_or(StatusCode::NOT_FOUND))
                .header("Content-Type", "application/json")
                .body(Full::new(Bytes::from(e.to_status().to_string())).boxed_unsync())
                .expect("static headers are valid")
        }
        Ok(obj) if obj["status"]["phase"] != "Running" => status_reply(
            400,
            "BadRequest",
            format!("unable to upgrade connection: pod {pod} is not running"),
        ),
        Ok(_) if ports.is_empty() => status_reply(
            400,
            "BadRequest",
            "unable to upgrade connection: at least one port must be specified".into(),
        ),
        Ok(_) if !header("upgrade").eq_ignore_ascii_case("websocket") || key.is_empty() => {
            status_reply(
                400,
                "BadRequest",
                "unable to upgrade connection: missing websocket upgrade".into(),
            )
        }
        Ok(_) if !offered.split(',').any(|p| p.trim() == PROTOCOL) => status_reply(
            400,
            "BadRequest",
            format!(
                "unable to upgrade connection: none of the subprotocols {offered:?} is supported"
            ),
        ),
        Ok(obj) => {
            let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
            let targets: Vec<Option<SocketAddr>> = {
                let map = shared.forwards.lock().unwrap_or_else(|e| e.into_inner());
                ports
                    .iter()
                    .map(|p| map.get(&(ns.clone(), pod.clone(), *p)).copied())
                    .collect()
            };
            let pod_name = pod.clone();
            super::upgrade::accept(req, &key, PROTOCOL, move |ws| {
                serve(ws, pod_name, uid, ports, targets)
            })
        }
    };
    let path = format!("/api/v1/namespaces/{ns}/pods/{pod}/portforward");
    super::upgrade::record(
        &shared,
        &path,
        &query,
        user_agent,
        response.status().as_u16(),
    );
    response
}

/// The streams of one portforward connection.
async fn serve<S>(
    ws: WebSocketStream<S>,
    pod: String,
    uid: String,
    ports: Vec<u16>,
    targets: Vec<Option<SocketAddr>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (to_client, mut outgoing) = mpsc::channel::<Message>(64);
    // Port numbers first, on the data and the error channel of each port.
    for (i, port) in ports.iter().enumerate() {
        for ch in [2 * i as u8, 2 * i as u8 + 1] {
            let mut frame = vec![ch];
            frame.extend(port.to_le_bytes());
            if sink.send(Message::binary(frame)).await.is_err() {
                return;
            }
        }
    }
    let mut writers: HashMap<u8, tokio::net::tcp::OwnedWriteHalf> = HashMap::new();
    let mut open = 0usize;
    let (closed_tx, mut closed_rx) = mpsc::channel::<()>(ports.len().max(1));
    for (i, (port, target)) in ports.iter().zip(&targets).enumerate() {
        let data = 2 * i as u8;
        let dialled = match target {
            // Go words it `connect: connection refused`: no capital, no errno.
            Some(addr) => TcpStream::connect(addr).await.map_err(|e| {
                let text = e.to_string().to_lowercase();
                text.split(" (os error").next().unwrap_or("").to_string()
            }),
            None => Err("connection refused".to_string()),
        };
        match dialled {
            Ok(conn) => {
                let (read, write) = conn.into_split();
                writers.insert(data, write);
                open += 1;
                let tx = to_client.clone();
                let closed = closed_tx.clone();
                tokio::spawn(async move {
                    super::upgrade::pump(read, data, tx).await;
                    let _ = closed.send(()).await;
                });
            }
            Err(e) => {
                let message = format!(
                    "error forwarding port {port} to pod {pod}, uid {uid}: failed to connect to localhost:{port} inside namespace \"{pod}\", IPv4: dial tcp4 127.0.0.1:{port}: connect: {e}"
                );
                let mut frame = vec![data + 1];
                frame.extend(message.as_bytes());
                let _ = to_client.send(Message::binary(frame)).await;
            }
        }
    }
    drop(to_client);
    if open == 0 {
        // Every port failed: the errors are sent, then the connection ends.
        while let Some(msg) = outgoing.recv().await {
            if sink.send(msg).await.is_err() {
                return;
            }
        }
        let _ = sink.send(Message::Close(None)).await;
        return;
    }
    let mut ended = 0usize;
    let mut drained = false;
    loop {
        tokio::select! {
            msg = outgoing.recv(), if !drained => match msg {
                Some(msg) => if sink.send(msg).await.is_err() { break },
                None => drained = true,
            },
            _ = closed_rx.recv() => {
                ended += 1;
                if ended == open {
                    // Drain what the pod sent before it closed, then close.
                    while let Ok(msg) = outgoing.try_recv() {
                        let _ = sink.send(msg).await;
                    }
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Binary(bytes))) if !bytes.is_empty() => {
                    let ch = bytes[0];
                    if let Some(w) = writers.get_mut(&ch)
                        && w.write_all(&bytes[1..]).await.is_err()
                    {
                        writers.remove(&ch);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}
