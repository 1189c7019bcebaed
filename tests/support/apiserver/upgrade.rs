//! What the streaming subresources (`pods/log`, `pods/exec`, `pods/portforward`) share: their
//! URL, the `Status` answer that refuses one, the websocket upgrade (`101 Switching Protocols`
//! with the chosen subprotocol, as the API server's `wsstream` answers), and their line in the
//! request log.

use std::future::Future;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::Request;
use super::http::{Body, Shared};
use super::store::ApiError;

/// The websocket of an upgraded request.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// `(namespace, pod)` when `path` is `/api/v1/namespaces/<ns>/pods/<pod>/<sub>`.
pub fn pod_subresource(path: &str, sub: &str) -> Option<(String, String)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, s] if *s == sub => {
            Some((ns.to_string(), name.to_string()))
        }
        _ => None,
    }
}

/// The refusal of a request, as a `Status` with the error's code.
pub fn refuse(e: &ApiError) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST))
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(e.to_status().to_string())).boxed_unsync())
        .expect("static headers are valid")
}

/// Upgrade `req` (whose `Sec-WebSocket-Key` is `key`) to a websocket speaking `protocol`, and
/// run `serve` on it in a task; the `101` answer.
pub fn accept<F, Fut>(
    req: hyper::Request<Incoming>,
    key: &str,
    protocol: &str,
    serve: F,
) -> Response<Body>
where
    F: FnOnce(Socket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let accept = derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        serve(ws).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Accept", accept)
        .header("Sec-WebSocket-Protocol", protocol)
        .body(Full::new(Bytes::new()).boxed_unsync())
        .expect("static headers are valid")
}

/// Log a GET of a streaming subresource, which the generic router never sees.
pub fn record(shared: &Shared, path: &str, raw_query: &str, user_agent: String, status: u16) {
    shared
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Request {
            method: "GET".into(),
            path: path.to_string(),
            query: super::http::percent_decode(raw_query),
            content_type: String::new(),
            accept: String::new(),
            user_agent,
            status,
            body: String::new(),
        });
}

/// Carry what `reader` yields to `tx` as binary frames on `channel` (the first byte), until it
/// ends, fails, or nobody listens.
pub async fn pump<R: AsyncRead + Unpin>(mut reader: R, channel: u8, tx: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut frame = Vec::with_capacity(n + 1);
                frame.push(channel);
                frame.extend_from_slice(&buf[..n]);
                if tx.send(Message::binary(frame)).await.is_err() {
                    break;
                }
            }
        }
    }
}
