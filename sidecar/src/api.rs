//! The sidecar's HTTP API (health, model, events, timeline, metrics).
//!
//! Placeholder: the server is being written (issue 6); `spawn` is the entry
//! point `nfguard sidecar` calls.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::supervisor::Shared;

/// Starts the API on `addr` in the background.
pub fn spawn(_shared: Arc<Shared>, _addr: SocketAddr) -> std::io::Result<()> {
    Ok(())
}
