//! The dashboard's HTTP side: hyper on 127.0.0.1, one page, its two static assets, a stream of
//! server-sent events and one action endpoint.
//!
//! Who may use it: the listener is on loopback only, so other machines cannot; other local
//! users and web pages open in the browser could, so every request that reads or changes
//! anything must carry the random token printed in the URL (as `?token=` for the page and
//! the event stream, which `EventSource` cannot give headers, and as the `X-Devenv-Token`
//! header for actions, which a cross-site form cannot set). The `Host` header must name the
//! loopback address, so a DNS-rebinding page cannot reach the server under a name of its own.
//! Responses forbid framing, scripts from elsewhere and leaking the URL as a referrer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use super::hub::Hub;

type Body = BoxBody<Bytes, Infallible>;

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// How often an idle event stream sends a comment, so proxies and the browser keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What every request is checked against.
pub struct Access {
    pub token: String,
    pub addr: SocketAddr,
}

/// Serve connections on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, hub: Arc<Hub>, access: Arc<Access>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, most likely: give the open connections time to end.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let hub = hub.clone();
        let access = access.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper::service::service_fn(move |req| {
                let hub = hub.clone();
                let access = access.clone();
                async move { Ok::<_, Infallible>(handle(req, &hub, &access).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// The value of `name` in the query string of `query`.
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Equal without telling, through the time taken, how much of `given` was right.
fn same_secret(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Whether the `Host` header names this server on loopback (`127.0.0.1:PORT`, `localhost:PORT`).
pub fn host_allowed(host: Option<&str>, port: u16) -> bool {
    let Some(host) = host else {
        return false;
    };
    let Some((name, p)) = host.rsplit_once(':') else {
        return false;
    };
    p == port.to_string() && matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

fn response(status: StatusCode, kind: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert("content-type", kind.parse().expect("a header value"));
    h.insert("cache-control", "no-store".parse().expect("a header value"));
    h.insert(
        "x-content-type-options",
        "nosniff".parse().expect("a header value"),
    );
    h.insert(
        "referrer-policy",
        "no-referrer".parse().expect("a header value"),
    );
    h.insert(
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            .parse()
            .expect("a header value"),
    );
    r
}

fn refused(status: StatusCode, why: &str) -> Response<Body> {
    response(
        status,
        "text/plain; charset=utf-8",
        format!("{why}\n\nThe dashboard's address, with its token, is printed by `devenv ui`.\n"),
    )
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    response(status, "application/json", value.to_string())
}

async fn handle(req: Request<Incoming>, hub: &Arc<Hub>, access: &Access) -> Response<Body> {
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    if !host_allowed(host.as_deref(), access.addr.port()) {
        return refused(
            StatusCode::FORBIDDEN,
            "This dashboard answers only at 127.0.0.1 or localhost.",
        );
    }
    let path = req.uri().path().to_string();
    // The assets hold no data of the project; everything else needs the token.
    match (req.method(), path.as_str()) {
        (&Method::GET, "/app.js") => {
            return response(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT);
        }
        (&Method::GET, "/app.css") => {
            return response(StatusCode::OK, "text/css; charset=utf-8", STYLE);
        }
        _ => {}
    }
    let given = query_param(req.uri().query(), "token")
        .map(str::to_string)
        .or_else(|| {
            req.headers()
                .get("x-devenv-token")
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        });
    let Some(given) = given else {
        return refused(StatusCode::UNAUTHORIZED, "This dashboard needs its token.");
    };
    if !same_secret(&given, &access.token) {
        return refused(StatusCode::FORBIDDEN, "This token is not the dashboard's.");
    }
    match (req.method(), path.as_str()) {
        (&Method::GET, "/") => response(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        (&Method::GET, "/events") => events(hub),
        (&Method::POST, p) if p.starts_with("/api/services/") => {
            // Actions change things: the token must come as a header, which a page of another
            // origin cannot send without the browser asking this server first.
            if req.headers().get("x-devenv-token").is_none() {
                return refused(
                    StatusCode::FORBIDDEN,
                    "Actions need the token in the X-Devenv-Token header.",
                );
            }
            let mut parts = p["/api/services/".len()..].splitn(2, '/');
            let (Some(service), Some(action)) = (parts.next(), parts.next()) else {
                return refused(StatusCode::NOT_FOUND, "No such action.");
            };
            match hub.act(service, action) {
                Ok(v) => json(StatusCode::ACCEPTED, &v),
                Err((status, why)) => json(status, &serde_json::json!({"error": why})),
            }
        }
        _ => refused(StatusCode::NOT_FOUND, "Nothing here."),
    }
}

/// The event stream: what is known now (state, recent log lines, recent actions), then every
/// change as it happens. A reader too slow for the log is skipped ahead, not blocked on.
fn events(hub: &Arc<Hub>) -> Response<Body> {
    let rx = hub.subscribe();
    let first: Vec<Arc<str>> = hub.backlog();
    let frames =
        futures_util::stream::unfold((first.into_iter(), rx), |(mut first, mut rx)| async move {
            if let Some(frame) = first.next() {
                return Some((frame, (first, rx)));
            }
            loop {
                match tokio::time::timeout(KEEP_ALIVE, rx.recv()).await {
                    Ok(Ok(frame)) => return Some((frame, (first, rx))),
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    Err(_) => return Some((Arc::from(": keep-alive\n\n"), (first, rx))),
                }
            }
        });
    let body = StreamBody::new(futures_util::StreamExt::map(frames, |f| {
        Ok::<_, Infallible>(Frame::data(Bytes::from(f.as_bytes().to_vec())))
    }));
    let mut r = response(StatusCode::OK, "text/event-stream", "");
    *r.body_mut() = BodyExt::boxed(body);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_loopback_names_with_this_port_are_accepted_as_host() {
        assert!(host_allowed(Some("127.0.0.1:4000"), 4000));
        assert!(host_allowed(Some("localhost:4000"), 4000));
        assert!(!host_allowed(Some("127.0.0.1:4001"), 4000));
        assert!(
            !host_allowed(Some("evil.example:4000"), 4000),
            "a rebound DNS name"
        );
        assert!(!host_allowed(Some("127.0.0.1"), 4000));
        assert!(!host_allowed(None, 4000));
    }

    #[test]
    fn the_token_is_compared_whole() {
        assert!(same_secret("abc123", "abc123"));
        assert!(!same_secret("abc124", "abc123"));
        assert!(!same_secret("abc12", "abc123"));
        assert!(!same_secret("", "abc123"));
    }

    #[test]
    fn the_token_is_read_from_the_query() {
        assert_eq!(query_param(Some("a=1&token=xyz"), "token"), Some("xyz"));
        assert_eq!(query_param(Some("tokens=1"), "token"), None);
        assert_eq!(query_param(None, "token"), None);
    }
}
