//! The HTTPS server: `POST /mutate`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
//!
//! Hostile or broken input gets an HTTP error with a reason, never a panic and never an
//! unbounded read: the body limit is checked against Content-Length before reading, and
//! enforced while reading for chunked bodies, so a 50 MB body is refused after at most the
//! limit. Each connection takes the TLS config current at its handshake (see [`crate::tls`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::review::Injector;
use crate::tls::CertStore;

/// Largest AdmissionReview accepted. The API server's own request limit is 3 MiB; a review
/// wraps one object, so a larger body is not a real review.
pub const MAX_BODY: usize = 3 * 1024 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response<Full<Bytes>> {
    let mut m = msg.into();
    m.push('\n');
    reply(status, "text/plain; charset=utf-8", m)
}

async fn handle(
    req: Request<Incoming>,
    inj: Arc<Injector>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let resp = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok"),
        (&Method::GET, "/readyz") => text(StatusCode::OK, "ready"),
        (&Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            inj.metrics.render(),
        ),
        (&Method::POST, "/mutate") => mutate(req, &inj).await,
        (_, "/mutate" | "/healthz" | "/readyz" | "/metrics") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    Ok(resp)
}

async fn mutate(req: Request<Incoming>, inj: &Injector) -> Response<Full<Bytes>> {
    let bad = |status, msg: String| {
        inj.metrics.request();
        inj.metrics.error();
        tracing::warn!(%status, reason = %msg, "bad admission request");
        text(status, msg)
    };
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ctype.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return bad(
            StatusCode::BAD_REQUEST,
            format!("content type {ctype:?} is not application/json"),
        );
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return bad(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {MAX_BODY} bytes"),
        );
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return bad(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {MAX_BODY} bytes"),
            )
        }
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("cannot read body: {e}")),
    };
    match tokio::time::timeout(inj.budget(), inj.review(&body)).await {
        Ok(Ok(out)) => reply(StatusCode::OK, "application/json", out),
        Ok(Err(e)) => {
            tracing::warn!(reason = %e, "bad admission review");
            text(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "admission review timed out",
        ),
    }
}

/// Serves until the listener fails. `certs` gives each new connection its TLS config.
pub async fn serve(
    listener: TcpListener,
    certs: Arc<CertStore>,
    inj: Arc<Injector>,
) -> std::io::Result<()> {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(certs.current());
        let inj = inj.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(move |req| handle(req, inj.clone()));
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
