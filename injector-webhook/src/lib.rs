//! nfguard injector: puts a pod under nfguard at admission time, with no change to its
//! manifest or image.
//!
//! Why it is built this way:
//! - [`mutate`] is pure (a pod and the image configs already fetched in, an outcome out),
//!   so the webhook ([`server`]), the offline `inject` command ([`inject`]) and the tests
//!   all run the same code path; only the network parts ([`registry`]) are async.
//! - The webhook never blocks pod creation on its own failure: the
//!   MutatingWebhookConfiguration uses `failurePolicy: Ignore`, the registry lookup is
//!   bounded well inside the webhook timeout, and anything it cannot understand is admitted
//!   unchanged with a warning. It denies only what the operator asked it to enforce
//!   (`nfguard.io/mode: enforce`) or annotations it cannot read.
//! - The pod it writes is the contract with the sidecar; every name comes from
//!   `nfguard_common` so both sides change together.
#![forbid(unsafe_code)]

pub mod apiserver;
pub mod config;
pub mod exec;
pub mod image;
pub mod inject;
pub mod metrics;
pub mod mutate;
pub mod options;
pub mod registry;
pub mod review;
pub mod server;
pub mod tls;

pub use config::Config;
pub use mutate::{mutate, Outcome, SkipReason};

/// Version written into the `nfguard.io/status` annotation.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
