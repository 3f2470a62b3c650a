//! nfguard's sidecar: the supervisor that answers seccomp user notifications
//! against a learned model, and the static launcher (keeper) that installs the
//! filter in the monitored container.
//!
//! Module map (dependencies run down the list, never up):
//! - `bin/`, `run`, `sidecar`: the entry points (`nfguard run`, `supervise`,
//!   `sidecar`); `server`: the socket keepers hand their listeners to;
//! - `api`: the HTTP API; `outside`: the exec-session watcher;
//!   `console_link`: the sync with nfguard-console (its wire types in
//!   `console_wire`, the supervisor's per-item counts in `observed`);
//! - `supervisor`: the notification loop and its layers (decode, inspect,
//!   decide, emulate, exec; exec stops of a tracing keeper checked in
//!   `exec_verify`); the policy itself is the `nfguard-policy` crate;
//! - `keeper_link`: the keeper connection's protocol after the hello (exec
//!   stops in, verdicts out);
//! - `fanout`: where events go (writer, rings, metrics, sinks); `sinks`: the
//!   notifying sinks; `timeline`, `metrics`;
//! - `event`, `model`: the events and the learned model (leaves);
//! - `resolve`: path resolution in the target's root, the heart of TOCTOU
//!   safety; `journal`: the in-flight journal; `launch`: the handover;
//! - `procfs`, `net`: pure parsers of /proc files and socket addresses;
//! - `sys`: every `unsafe` call, each with its SAFETY argument.

#![deny(unsafe_code)]

pub mod api;
pub mod console_link;
pub mod console_wire;
pub mod event;
pub mod fanout;
pub(crate) mod journal;
pub mod keeper_link;
pub mod launch;
pub(crate) mod metrics;
pub mod model;
pub(crate) mod net;
pub mod observed;
pub mod outside;
pub(crate) mod private_file;
pub(crate) mod procfs;
pub(crate) mod resolve;
pub mod run;
pub(crate) mod server;
pub mod sidecar;
pub mod sinks;
pub mod supervisor;
#[allow(unsafe_code)]
pub mod sys;
pub mod timeline;
