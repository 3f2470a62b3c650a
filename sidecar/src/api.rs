//! The sidecar's HTTP API: health, model, events, timeline, metrics.
//!
//! Plain HTTP/1.1 on 127.0.0.1:9901 by default (`NFGUARD_API_ADDR`): inside
//! the pod, for the kubelet's probes, `kubectl port-forward` and a
//! Prometheus scrape. Every endpoint is read-only: nothing here changes the
//! mode, the model or the sinks, so exposing it discloses but cannot disarm.
//!
//! The server runs on its own thread with a single-threaded tokio runtime,
//! apart from the supervisor's threads: a slow client costs the API, never a
//! notification. Routing is a pure function (`respond`) of the shared state,
//! the path and the query, tested without a socket; it never panics, a bad
//! query is a 400 that says why.
//!
//! | path | answer |
//! | --- | --- |
//! | `GET /healthz` | `ok`, or 503 and why when a listener is stuck |
//! | `GET /model` | the current model (JSON) |
//! | `GET /events[?since=ID or RFC 3339 time]` | recent events, JSON array |
//! | `GET /timeline[?session=ID][&format=text\|json]` | recent activity |
//! | `GET /metrics` | Prometheus text |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::event::Since;
use crate::supervisor::Shared;

/// Starts the API on `addr` in the background.
pub fn spawn(shared: Arc<Shared>, addr: SocketAddr) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(addr)?;
    serve_on(shared, listener).map(drop)
}

/// Serves the API on a bound listener (port 0 in tests); returns its address.
pub fn serve_on(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
) -> std::io::Result<SocketAddr> {
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("nfguard-api".into())
        .spawn(move || rt.block_on(accept(shared, listener)))?;
    Ok(addr)
}

async fn accept(shared: Arc<Shared>, listener: std::net::TcpListener) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("nfguard: API listener: {e}");
            return;
        }
    };
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: wait a little rather than spin.
                eprintln!("nfguard: API accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(handle(&shared, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn handle(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) =
        if req.method() != Method::GET && req.method() != Method::HEAD {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                "read-only API: use GET\n".to_string(),
            )
        } else {
            respond(shared, req.uri().path(), req.uri().query())
        };
    let mut resp = Response::new(Full::new(Bytes::from(if req.method() == Method::HEAD {
        String::new()
    } else {
        body
    })));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Decodes `%XX` escapes. `+` stays a plus: RFC 3339 offsets contain it.
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("bad escape in {s:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape in {s:?}"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8"))
}

/// Parses a query, accepting only the parameters in `allowed`.
fn query(q: Option<&str>, allowed: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k)?;
        if !allowed.contains(&k.as_str()) {
            return Err(if allowed.is_empty() {
                format!("this endpoint takes no parameter (got {k:?})")
            } else {
                format!("unknown parameter {k:?} (allowed: {})", allowed.join(", "))
            });
        }
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(format!("parameter {k:?} given twice"));
        }
        out.push((k, percent_decode(v)?));
    }
    Ok(out)
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn json_body<T: serde::Serialize>(v: &T) -> (StatusCode, &'static str, String) {
    match serde_json::to_string_pretty(v) {
        Ok(mut s) => {
            s.push('\n');
            (StatusCode::OK, JSON, s)
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            TEXT,
            format!("cannot encode: {e}\n"),
        ),
    }
}

/// The answer to `GET path?query`: (status, content type, body).
pub fn respond(shared: &Shared, path: &str, q: Option<&str>) -> (StatusCode, &'static str, String) {
    let bad = |why: String| (StatusCode::BAD_REQUEST, TEXT, format!("{why}\n"));
    match path {
        "/healthz" => match query(q, &[]) {
            Ok(_) => match shared.liveness() {
                Ok(()) => (StatusCode::OK, TEXT, "ok\n".into()),
                Err(why) => (StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{why}\n")),
            },
            Err(e) => bad(e),
        },
        "/model" => match query(q, &[]) {
            Ok(_) => json_body(&shared.model_snapshot()),
            Err(e) => bad(e),
        },
        "/events" => {
            let q = match query(q, &["since"]) {
                Ok(q) => q,
                Err(e) => return bad(e),
            };
            let since = match param(&q, "since").map(str::parse::<Since>).transpose() {
                Ok(s) => s,
                Err(e) => return bad(e),
            };
            json_body(&shared.events.recent_since(since.as_ref()))
        }
        "/timeline" => {
            let q = match query(q, &["session", "format"]) {
                Ok(q) => q,
                Err(e) => return bad(e),
            };
            let records = shared.events.activity.records(param(&q, "session"));
            match param(&q, "format").unwrap_or("json") {
                "json" => json_body(&records),
                "text" => (StatusCode::OK, TEXT, crate::timeline::render_text(&records)),
                other => bad(format!("format={other:?}: expected json or text")),
            }
        }
        "/metrics" => match query(q, &[]) {
            Ok(_) => (StatusCode::OK, PROMETHEUS, shared.render_metrics()),
            Err(e) => bad(e),
        },
        _ => (
            StatusCode::NOT_FOUND,
            TEXT,
            format!(
                "no such endpoint {path:?}: try /healthz, /model, /events, /timeline, /metrics\n"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_escapes_keep_plus_and_refuse_strangers() {
        let q = query(Some("since=2026-01-01T00:00:00%2B01:00&x"), &["since", "x"]).unwrap();
        assert_eq!(param(&q, "since"), Some("2026-01-01T00:00:00+01:00"));
        let q = query(Some("since=2026-01-01T00:00:00+01:00"), &["since"]).unwrap();
        assert_eq!(param(&q, "since"), Some("2026-01-01T00:00:00+01:00"));
        assert!(query(Some("sinse=1"), &["since"])
            .unwrap_err()
            .contains("sinse"));
        assert!(query(Some("since=%G1"), &["since"]).is_err());
        assert!(query(Some("since=%4"), &["since"]).is_err());
        assert!(query(Some("since=1&since=2"), &["since"]).is_err());
    }
}
