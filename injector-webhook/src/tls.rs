//! The webhook's serving certificate, reloaded when its files change.
//!
//! cert-manager (or `gen-certs.sh`) rotates the Secret; the kubelet updates the mounted files
//! in place. Polling the files' mtimes is enough (rotation happens days apart) and works on
//! every volume type, unlike inotify on the kubelet's symlink swaps. A new `ServerConfig` is
//! swapped in behind an `Arc`: new handshakes use it, open connections keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;

/// Why the certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no PEM private key found")]
    NoKey { path: PathBuf },
    #[error("certificate {cert} and key {key} do not make a TLS config: {source}")]
    Config {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// Builds a server config (HTTP/2 and HTTP/1.1 by ALPN) from PEM files.
pub fn load(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let private = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::NoKey {
            path: key.to_path_buf(),
        })?;
    let config_err = |source| TlsError::Config {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    };
    let mut cfg =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(config_err)?
            .with_no_client_auth()
            .with_single_cert(certs, private)
            .map_err(config_err)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The current server config, swapped when the files change.
#[derive(Debug)]
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

fn mtimes(cert: &Path, key: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(cert), m(key))
}

impl CertStore {
    pub fn new(cert: PathBuf, key: PathBuf) -> Result<Arc<Self>, TlsError> {
        let cfg = load(&cert, &key)?;
        Ok(Arc::new(Self {
            cert,
            key,
            current: RwLock::new(Arc::new(cfg)),
        }))
    }

    /// The config for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Polls the files every `every` and swaps the config when they change and load cleanly
    /// (a half-written pair keeps the old config until the next poll).
    pub fn spawn_reloader(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut last = mtimes(&me.cert, &me.key);
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let now = mtimes(&me.cert, &me.key);
                if now == last {
                    continue;
                }
                match load(&me.cert, &me.key) {
                    Ok(cfg) => {
                        if let Ok(mut g) = me.current.write() {
                            *g = Arc::new(cfg);
                        }
                        last = now;
                        tracing::info!(cert = %me.cert.display(), "serving certificate reloaded");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "certificate changed but does not load yet; keeping the old one")
                    }
                }
            }
        })
    }
}
