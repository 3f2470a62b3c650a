//! `nfguard-console serve`: the listener (plain HTTP on loopback, or TLS with
//! rustls on any address), and the ticker that moves models on time when no
//! sidecar syncs them.
//!
//! Without TLS flags the console refuses a non-loopback address: tokens would
//! cross the network in clear. The certificate and key are read again when
//! their files change (checked every 10 s), so a rotated certificate
//! (cert-manager) is served without a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tower::ServiceExt;

use crate::api::App;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "{addr} is not a loopback address: serving beyond loopback needs --tls-cert and --tls-key"
    )]
    PlainOutsideLoopback { addr: SocketAddr },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Reads a certificate chain and its key into a rustls server configuration (HTTP/2 and 1.1).
pub fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, ServeError> {
    let e = |p: &Path, m: String| ServeError::Tls(format!("{}: {m}", p.display()));
    let certs = crate::client::read_certs(cert).map_err(ServeError::Tls)?;
    let kf = std::fs::File::open(key).map_err(|x| e(key, x.to_string()))?;
    let key_der = rustls_pemfile::private_key(&mut std::io::BufReader::new(kf))
        .map_err(|x| e(key, x.to_string()))?
        .ok_or_else(|| e(key, "holds no private key".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|x| ServeError::Tls(x.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|x| e(cert, format!("does not match its key: {x}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Binds (checked before anything else runs) and returns the listener.
pub async fn bind(
    addr: SocketAddr,
    tls: Option<&Tls>,
) -> Result<tokio::net::TcpListener, ServeError> {
    if tls.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::PlainOutsideLoopback { addr });
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Posts due incidents to their sinks (at least once: a console that dies
/// mid-delivery leaves the row claimed until its lease ends, then it is sent again).
async fn deliver(app: &App) {
    let now = crate::store::now_ms();
    let due = match app.store.claim_deliveries(now, 30_000, 50).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("nfguard-console: {e}");
            return;
        }
    };
    for (id, sink, body, attempts) in due {
        let r = crate::client::request(
            hyper::Method::POST,
            &sink,
            &[("content-type", "application/json".into())],
            Some(body.into_bytes()),
            Some(&crate::client::Trust::Public),
            Duration::from_secs(5),
        )
        .await;
        let ok = matches!(&r, Ok(a) if a.status.is_success());
        if !ok && attempts == 0 {
            let why = match r {
                Ok(a) => a.status.to_string(),
                Err(e) => e,
            };
            eprintln!("nfguard-console: incident sink {sink}: {why}; retrying");
        }
        // Backoff: 2 s doubling, at most 5 minutes.
        let retry = now + (2_000i64 << attempts.clamp(0, 8)).min(300_000);
        if let Err(e) = app
            .store
            .delivered(id, ok, retry, crate::store::now_ms())
            .await
        {
            eprintln!("nfguard-console: {e}");
        }
    }
}

/// Serves until the process ends.
pub async fn run(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    tls: Option<Tls>,
    tick: Duration,
) {
    let router = crate::api::router(Arc::clone(&app), crate::ui::routes());
    // The ticker: promotions on time and archiving, for models no sidecar syncs.
    {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(tick);
            loop {
                every.tick().await;
                if let Err(e) = app.store.tick(crate::store::now_ms()).await {
                    eprintln!("nfguard-console: {e}");
                }
                deliver(&app).await;
            }
        });
    }
    let acceptor = match &tls {
        Some(t) => match tls_config(&t.cert, &t.key) {
            Ok(cfg) => Some(Arc::new(RwLock::new(Arc::new(cfg)))),
            Err(e) => {
                eprintln!("nfguard-console: {e}");
                return;
            }
        },
        None => None,
    };
    if let (Some(t), Some(current)) = (&tls, &acceptor) {
        let (cert, key, current) = (t.cert.clone(), t.key.clone(), Arc::clone(current));
        tokio::spawn(async move {
            let mut seen = (mtime(&cert), mtime(&key));
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let now = (mtime(&cert), mtime(&key));
                if now != seen {
                    match tls_config(&cert, &key) {
                        Ok(cfg) => {
                            *current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cfg);
                            eprintln!("nfguard-console: certificate {} reloaded", cert.display());
                            seen = now;
                        }
                        Err(e) => eprintln!("nfguard-console: keeping the old certificate: {e}"),
                    }
                }
            }
        });
    }
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("nfguard-console: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let router = router.clone();
                    async move { router.oneshot(req.map(axum::body::Body::new)).await }
                });
            let builder = auto::Builder::new(TokioExecutor::new());
            match acceptor {
                Some(a) => {
                    let cfg = a.read().unwrap_or_else(|p| p.into_inner()).clone();
                    let tls = match tokio::time::timeout(
                        Duration::from_secs(10),
                        tokio_rustls::TlsAcceptor::from(cfg).accept(tcp),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        _ => return,
                    };
                    let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                }
                None => {
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                }
            }
        });
    }
}
