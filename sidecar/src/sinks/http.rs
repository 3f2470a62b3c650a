//! A small HTTP/1.1 client for the sinks: POST a JSON body, plain or TLS.
//!
//! Why not a client library: the sinks need one verb, one connection per
//! sink kept alive between messages, a per-request timeout, and TLS either
//! against the public roots (Slack) or a CA file (the cluster's API server).
//! hyper's connection API and rustls do exactly that with what the workspace
//! already builds (the injector uses the same crates).

use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where a sink posts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query.
    pub path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "{url:?}: only http:// and https:// URLs are supported"
                ))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("{url:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        Ok(Endpoint {
            https,
            host,
            port,
            path,
        })
    }

    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.https, self.port) {
            (true, 443) | (false, 80) => host,
            _ => format!("{host}:{}", self.port),
        }
    }
}

/// Whose certificates a TLS connection trusts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The public web roots (webpki-roots).
    Public,
    /// The CA bundle in this PEM file, read at each connection (it rotates).
    CaFile(PathBuf),
}

/// One sink's connection.
pub struct Client {
    endpoint: Endpoint,
    trust: Trust,
    timeout: Duration,
    conn: Option<SendRequest<Full<Bytes>>>,
}

/// The answer to a POST.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Client {
    pub fn new(endpoint: Endpoint, trust: Trust, timeout: Duration) -> Client {
        Client {
            endpoint,
            trust,
            timeout,
            conn: None,
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// POSTs `body` as JSON to `path` (the endpoint's own path when `None`).
    pub async fn post(
        &mut self,
        path: Option<&str>,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.post_inner(path, headers, body)).await {
            Ok(r) => r.inspect_err(|_| self.conn = None),
            Err(_) => {
                self.conn = None;
                Err(format!("no answer within {timeout:?}"))
            }
        }
    }

    async fn post_inner(
        &mut self,
        path: Option<&str>,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        let reuse = self.conn.as_ref().is_some_and(|c| c.is_ready());
        if !reuse {
            self.conn = Some(self.connect().await?);
        }
        let conn = self.conn.as_mut().ok_or("no connection")?;
        let path = path.unwrap_or(&self.endpoint.path);
        let mut req = Request::post(path)
            .header(hyper::header::HOST, self.endpoint.authority())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("nfguard/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("bad request: {e}"))?;
        conn.ready()
            .await
            .map_err(|e| format!("connection lost: {e}"))?;
        let resp = conn
            .send_request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(Answer { status, body })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let ep = &self.endpoint;
        let tcp = TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .map_err(|e| format!("connecting to {}:{}: {e}", ep.host, ep.port))?;
        let _ = tcp.set_nodelay(true);
        if ep.https {
            let config = tls_config(&self.trust)?;
            let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
                .map_err(|e| format!("{}: not a TLS server name: {e}", ep.host))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {}: {e}", ep.host))?;
            handshake(TokioIo::new(tls)).await
        } else {
            handshake(TokioIo::new(tcp)).await
        }
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// A rustls client configuration for `trust`.
pub fn tls_config(trust: &Trust) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match trust {
        Trust::Public => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Trust::CaFile(path) => {
            let f = std::fs::File::open(path)
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut BufReader::new(f)) {
                let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("CA file {} holds no certificate", path.display()));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_endpoints() {
        let e = Endpoint::parse("https://hooks.slack.com/services/T/B/x").unwrap();
        assert_eq!(
            (e.https, e.host.as_str(), e.port, e.path.as_str()),
            (true, "hooks.slack.com", 443, "/services/T/B/x")
        );
        let e = Endpoint::parse("http://[::1]:2801").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("::1", 2801, "/")
        );
        assert_eq!(e.authority(), "[::1]:2801");
        assert!(Endpoint::parse("ftp://x/").is_err());
        assert!(Endpoint::parse("not a url").is_err());
    }
}
