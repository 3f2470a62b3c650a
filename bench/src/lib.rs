//! nfguard-bench: what nfguard costs a network function.
//!
//! One command (`scripts/bench`) measures, in one run and on one machine:
//! per-syscall latency natively, under a minimal reference supervisor, under
//! `nfguard run` in each mode and under strace; a real server (nginx) under
//! load natively and under enforce; the admission webhook over HTTPS; and
//! memory and binary sizes. Speed is only ever reported, never asserted.
//!
//! Module map:
//! - `stats`: percentiles of latency samples;
//! - `wire`: the text the load binary prints and its parser;
//! - `bigmodel`: the 10,000-entry model of the memory benchmark;
//! - `refsup`: the reference supervisor (every notification continues);
//! - `report`: the JSON report and the table;
//! - `sys`: every `unsafe` call of this crate, each with its SAFETY argument.

pub mod bigmodel;
pub mod refsup;
pub mod report;
pub mod stats;
pub mod sys;
pub mod wire;
pub mod wrk;
