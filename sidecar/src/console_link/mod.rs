//! The sidecar's link to the console (placeholder; see below).
pub mod ledger;
pub mod wire;
