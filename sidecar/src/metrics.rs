//! Counters for `GET /metrics` (Prometheus text format 0.0.4).
//!
//! Why fixed arrays of atomics: decisions are counted on the supervisor's hot
//! path, for every notification, so counting must not take a lock or allocate.
//! Syscall numbers are small (below 512 on x86_64), so one atomic per
//! (syscall, decision) is an index away. Events are rarer (they already read
//! /proc), so they use a small map under a mutex.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use nfguard_common::Mode;

use crate::event::Event;

/// Syscall numbers counted one by one; larger ones share the last slot.
const NR_SLOTS: usize = 512;

/// Upper bounds of the decision-latency histogram, in seconds.
pub const LATENCY_BOUNDS: [f64; 12] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.01,
    0.1, 1.0,
];

/// What the supervisor answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

/// (category, verdict, kind, syscall)
type EventKey = (String, String, String, &'static str);

pub struct Metrics {
    decisions: Vec<[AtomicU64; 2]>,
    latency: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    latency_sum_ns: AtomicU64,
    latency_count: AtomicU64,
    events: Mutex<BTreeMap<EventKey, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            decisions: (0..NR_SLOTS)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_ns: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
            events: Mutex::new(BTreeMap::new()),
        }
    }
}

fn label<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Escapes a label value (backslash, quote, newline).
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Measures one notification's handling: records the latency when dropped.
pub struct Timer<'a> {
    metrics: &'a Metrics,
    start: std::time::Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.metrics.observe_latency(self.start.elapsed());
    }
}

impl Metrics {
    /// Starts timing a notification (see `Timer`).
    pub fn timer(&self) -> Timer<'_> {
        Timer {
            metrics: self,
            start: std::time::Instant::now(),
        }
    }

    /// Counts one answer to a notification of syscall `nr` (hot path: one atomic add).
    pub fn decision(&self, nr: i32, d: Decision) {
        let slot = usize::try_from(nr)
            .unwrap_or(NR_SLOTS - 1)
            .min(NR_SLOTS - 1);
        self.decisions[slot][d as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the time from receiving a notification to answering it.
    pub fn observe_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.latency[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ns.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_event(&self, e: &Event) {
        let key = (
            label(&e.category),
            label(&e.verdict),
            label(&e.kind),
            e.syscall,
        );
        *self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert(0) += 1;
    }

    pub fn latency_count(&self) -> u64 {
        self.latency_count.load(Ordering::Relaxed)
    }
}

/// What a running supervisor reports beside the counters kept here (read by
/// the supervisor, which owns them: this module knows nothing of it).
#[derive(Debug, Clone)]
pub struct Gauges {
    pub mode: Mode,
    pub notifications: u64,
    pub emulated: u64,
    pub internal_errors: u64,
    /// Entries of the current model, by section.
    pub model_entries: [(&'static str, usize); 6],
    pub activity_records: usize,
    pub events_written: u64,
}

/// Renders every metric of a running supervisor: the counters of `m` and the
/// gauges `g` (the notifying sinks append their own).
pub fn render(m: &Metrics, g: &Gauges) -> String {
    let mut o = String::new();
    let header = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    header(
        &mut o,
        "nfguard_up",
        "gauge",
        "1 while the supervisor answers notifications.",
    );
    o.push_str("nfguard_up 1\n");

    header(
        &mut o,
        "nfguard_mode",
        "gauge",
        "The supervisor's mode (1 for the current one).",
    );
    let mode = g.mode;
    for each in nfguard_common::Mode::ALL {
        let _ = writeln!(
            o,
            "nfguard_mode{{mode=\"{each}\"}} {}",
            u8::from(each == mode)
        );
    }

    header(
        &mut o,
        "nfguard_notifications_total",
        "counter",
        "Seccomp notifications received.",
    );
    let _ = writeln!(o, "nfguard_notifications_total {}", g.notifications);
    header(
        &mut o,
        "nfguard_emulated_total",
        "counter",
        "Allowed calls the supervisor performed itself (enforce mode).",
    );
    let _ = writeln!(o, "nfguard_emulated_total {}", g.emulated);
    header(
        &mut o,
        "nfguard_internal_errors_total",
        "counter",
        "Calls the supervisor could not inspect.",
    );
    let _ = writeln!(o, "nfguard_internal_errors_total {}", g.internal_errors);

    header(
        &mut o,
        "nfguard_decisions_total",
        "counter",
        "Answers to notifications by syscall and decision.",
    );
    for (nr, slot) in m.decisions.iter().enumerate() {
        for (d, name) in [(Decision::Allow, "allow"), (Decision::Deny, "deny")] {
            let n = slot[d as usize].load(Ordering::Relaxed);
            if n > 0 {
                let sc = nfguard_policy::syscall_name(nr as i32);
                let _ = writeln!(
                    o,
                    "nfguard_decisions_total{{syscall=\"{sc}\",decision=\"{name}\"}} {n}"
                );
            }
        }
    }

    header(
        &mut o,
        "nfguard_events_total",
        "counter",
        "Events (calls outside the model) by category, verdict, kind and syscall.",
    );
    for ((cat, verdict, kind, sc), n) in m.events.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(
            o,
            "nfguard_events_total{{category=\"{cat}\",verdict=\"{verdict}\",kind=\"{kind}\",syscall=\"{sc}\"}} {n}"
        );
    }

    header(
        &mut o,
        "nfguard_decision_latency_seconds",
        "histogram",
        "Time from receiving a notification to answering it.",
    );
    let mut cumulative = 0;
    for (i, b) in LATENCY_BOUNDS.iter().enumerate() {
        cumulative += m.latency[i].load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "nfguard_decision_latency_seconds_bucket{{le=\"{b}\"}} {cumulative}"
        );
    }
    cumulative += m.latency[LATENCY_BOUNDS.len()].load(Ordering::Relaxed);
    let _ = writeln!(
        o,
        "nfguard_decision_latency_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let sum = m.latency_sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let _ = writeln!(o, "nfguard_decision_latency_seconds_sum {sum}");
    let _ = writeln!(
        o,
        "nfguard_decision_latency_seconds_count {}",
        m.latency_count()
    );

    header(
        &mut o,
        "nfguard_model_entries",
        "gauge",
        "Entries of the current model by section.",
    );
    for (section, n) in g.model_entries {
        let _ = writeln!(o, "nfguard_model_entries{{section=\"{section}\"}} {n}");
    }

    header(
        &mut o,
        "nfguard_activity_records",
        "gauge",
        "Records in the activity ring (the timeline).",
    );
    let _ = writeln!(o, "nfguard_activity_records {}", g.activity_records);
    header(
        &mut o,
        "nfguard_events_written_total",
        "counter",
        "Events written as JSON lines (stdout or the events file).",
    );
    let _ = writeln!(o, "nfguard_events_written_total {}", g.events_written);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let m = Metrics::default();
        m.observe_latency(Duration::from_micros(3));
        m.observe_latency(Duration::from_micros(40));
        m.observe_latency(Duration::from_secs(5));
        assert_eq!(m.latency[0].load(Ordering::Relaxed), 1);
        assert_eq!(m.latency[3].load(Ordering::Relaxed), 1);
        assert_eq!(m.latency[LATENCY_BOUNDS.len()].load(Ordering::Relaxed), 1);
        assert_eq!(m.latency_count(), 3);
    }

    #[test]
    fn odd_syscall_numbers_do_not_index_out_of_range() {
        let m = Metrics::default();
        m.decision(-1, Decision::Deny);
        m.decision(100_000, Decision::Allow);
        assert_eq!(m.decisions[NR_SLOTS - 1][1].load(Ordering::Relaxed), 1);
        assert_eq!(m.decisions[NR_SLOTS - 1][0].load(Ordering::Relaxed), 1);
    }
}
