//! nfguard-console: one model per workload, shared by its replicas, kept
//! across restarts and image versions, with a lifecycle and incidents.
//!
//! Module map:
//! - `lifecycle`: learning -> dry-run -> active -> archived, as a pure function;
//! - `incident`: how events group into incidents and repeats are throttled (pure);
//! - `store`: the database (SQLite or PostgreSQL through sqlx), the only state;
//! - `auth`: operators' tokens with roles, sidecars' join tokens and TokenReview;
//! - `api`: the HTTP API (axum) and `serve`: the listener, TLS, the ticker;
//! - `yaml`: `kind: NfguardModel` documents (export, import, diff);
//! - `radar`: the map of workloads and the peers their models talk to;
//! - `client`: the small HTTP client of the CLI and the TokenReview;
//! - `ui`: the web UI's pages, on the same functions as the API.
//!
//! The sidecar's half (what it sends, how it spools and caches) is
//! `nfguard_sidecar::console_link`; the wire types live there.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod client;
pub mod devdb;
pub mod incident;
pub mod lifecycle;
pub mod radar;
pub mod serve;
pub mod store;
pub mod ui;
pub mod yaml;
