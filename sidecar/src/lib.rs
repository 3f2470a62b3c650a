//! nfguard's sidecar: the supervisor that answers seccomp user notifications
//! against a learned model, and the static launcher (keeper) that installs the
//! filter in the monitored container.
//!
//! Module map:
//! - `filter`: the seccomp policy as data and its BPF compiler;
//! - `launch`: the supervisor's side of the launcher (`nfguard-launch`, crate `launcher/`);
//! - `supervisor`: the notification loop, decisions, enforce-mode emulation;
//! - `resolve`: path resolution in the target's root, the heart of TOCTOU safety;
//! - `model`, `event`: the learned model and the events;
//! - `procfs`, `net`: pure parsers of /proc files and socket addresses;
//! - `sys`: every `unsafe` call, each with its SAFETY argument.

pub mod api;
pub mod event;
pub mod filter;
pub mod journal;
pub mod launch;
pub mod metrics;
pub mod model;
pub mod net;
pub mod outside;
pub mod procfs;
pub mod resolve;
pub mod run;
pub mod server;
pub mod sidecar;
pub mod sinks;
pub mod supervisor;
pub mod sys;
pub mod timeline;
