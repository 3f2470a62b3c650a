//! The one API call the injector makes: `GET /api/v1/namespaces/NS/pods/NAME`, for exec
//! reviews (which name the pod but do not carry it, see [`crate::exec`]).
//!
//! Why not kube's client: one GET does not justify a second HTTP stack, and this keeps the
//! binary `FROM scratch`-small. In a cluster the address, token and CA come from the service
//! account (`KUBERNETES_SERVICE_HOST`, `/var/run/secrets/kubernetes.io/serviceaccount`); the
//! token is read again for every call because projected tokens rotate (kubelet refreshes the
//! file). RBAC: `get` on `pods` (manifests/core/rbac.yaml).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{header, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the service account's files are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Largest pod document read (the API server's own object limit is about 1.5 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;
/// One GET, well inside the webhook's 10 s.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// How to reach the API server (plain data, part of [`crate::Config`]).
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    /// `https://HOST:PORT`.
    pub url: String,
    /// Bearer token file, read for every call; none: anonymous.
    pub token_file: Option<PathBuf>,
    /// CA certificates trusted for the API server.
    pub ca: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl ApiServerConfig {
    /// The in-cluster configuration, when running in a pod with a mounted service account.
    pub fn in_cluster() -> Option<Result<Self, String>> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let dir = PathBuf::from(SERVICE_ACCOUNT_DIR);
        let token = dir.join("token");
        if !token.exists() {
            return None;
        }
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Some(read_ca(&dir.join("ca.crt")).map(|ca| ApiServerConfig {
            url: format!("https://{host}:{port}"),
            token_file: Some(token),
            ca,
        }))
    }
}

/// Reads a PEM CA bundle; an error is one line naming the file.
pub fn read_ca(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// Why a pod could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no API server configured (--api-server, or run in a pod with a service account)")]
    NotConfigured,
    #[error("bad API server URL {0}")]
    Url(String),
    #[error("invalid object name {0:?}")]
    Name(String),
    #[error("cannot read the token {path}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot reach the API server {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("the API server answered {status} for {path}")]
    Status {
        path: String,
        status: hyper::StatusCode,
    },
    #[error("the API server's answer for {path} is not a pod: {reason}")]
    Body { path: String, reason: String },
    #[error("the API server did not answer within {TIMEOUT:?}")]
    Timeout,
}

/// Reads pods from the API server.
pub struct ApiClient {
    config: ApiServerConfig,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("url", &self.config.url)
            .finish()
    }
}

/// DNS-1123 names (pods, namespaces): nothing that could escape the URL path.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

impl ApiClient {
    pub fn new(config: ApiServerConfig) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for c in &config.ca {
            if let Err(e) = roots.add(c.clone()) {
                tracing::warn!(error = %e, "ignoring an API server CA certificate");
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        });
        Self {
            config,
            tls: Arc::new(tls),
        }
    }

    /// The pod `namespace/name` as JSON.
    pub async fn get_pod(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<serde_json::Value, ApiError> {
        for n in [namespace, name] {
            if !valid_name(n) {
                return Err(ApiError::Name(n.to_string()));
            }
        }
        let path = format!("/api/v1/namespaces/{namespace}/pods/{name}");
        tokio::time::timeout(TIMEOUT, self.get(&path))
            .await
            .map_err(|_| ApiError::Timeout)?
    }

    async fn get(&self, path: &str) -> Result<serde_json::Value, ApiError> {
        let url = &self.config.url;
        let uri: Uri = url.parse().map_err(|_| ApiError::Url(url.clone()))?;
        let host = uri
            .host()
            .ok_or_else(|| ApiError::Url(url.clone()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        let connect = |reason: String| ApiError::Connect {
            url: url.clone(),
            reason,
        };
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| connect(e.to_string()))?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| connect(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| connect(format!("TLS: {e}")))?;
        let mut req = Request::get(path)
            .header(header::HOST, uri.authority().map_or("", |a| a.as_str()))
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("nfguard-injector/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(file) = &self.config.token_file {
            let token = std::fs::read_to_string(file).map_err(|source| ApiError::Token {
                path: file.clone(),
                source,
            })?;
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", token.trim()));
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| connect(e.to_string()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| connect(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| connect(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ApiError::Status {
                path: path.to_string(),
                status,
            });
        }
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| ApiError::Body {
                path: path.to_string(),
                reason: e.to_string(),
            })?
            .to_bytes();
        let pod: serde_json::Value = serde_json::from_slice(&body).map_err(|e| ApiError::Body {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        if pod["kind"] != "Pod" {
            return Err(ApiError::Body {
                path: path.to_string(),
                reason: format!("kind is {}", pod["kind"]),
            });
        }
        Ok(pod)
    }
}
