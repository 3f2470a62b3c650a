//! How the UI authenticates, as `serve`'s flags say: a leaf the API's state
//! holds without depending on the pages.

use axum::http::HeaderName;
use sha2::{Digest, Sha256};

use crate::auth::Role;

/// How the UI authenticates (from `serve`'s flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--auth-proxy-header`: trust this header's value as the user's name.
    pub proxy_header: Option<HeaderName>,
    /// `--auth-proxy-role`: the role of a user the proxy names.
    pub proxy_role: Role,
    /// `--auth-proxy-secret-file`: the digest of the secret the proxy sends
    /// in [`PROXY_SECRET`]; the user header counts only with it.
    pub proxy_secret: Option<[u8; 32]>,
    /// Served over HTTPS: cookies get `Secure`.
    pub secure: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            proxy_header: None,
            proxy_role: Role::Viewer,
            proxy_secret: None,
            secure: false,
        }
    }
}

/// The header the auth proxy proves itself with.
pub const PROXY_SECRET: &str = "nfguard-proxy-secret";

/// What is kept of the proxy's secret, and compared: its SHA-256 (equal
/// digests, compared whole, say nothing of where two secrets differ).
pub fn proxy_secret_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}
