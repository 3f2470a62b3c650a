//! Helpers for the cross-part tests in `tests/tests/`.
#![forbid(unsafe_code)]
