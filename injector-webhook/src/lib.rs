//! nfguard injector (placeholder while the webhook is built).
#![forbid(unsafe_code)]
