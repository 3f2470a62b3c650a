//! A small hand-written Prometheus registry: a handful of counters and one histogram do not
//! justify a metrics crate, and the text format is simple
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the admission latency histogram.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Injector metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    injections: AtomicU64,
    dry_run_injections: AtomicU64,
    denials: AtomicU64,
    errors: AtomicU64,
    skips: Mutex<BTreeMap<&'static str, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    pub fn injection(&self, dry_run: bool) {
        let c = if dry_run {
            &self.dry_run_injections
        } else {
            &self.injections
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
    pub fn denial(&self) {
        self.denials.fetch_add(1, Ordering::Relaxed);
    }
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn skip(&self, reason: &'static str) {
        if let Ok(mut m) = self.skips.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(
            d.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "nfguard_injector_requests_total",
            "Admission reviews received.",
            get(&self.requests),
        );
        counter(
            "nfguard_injector_injections_total",
            "Pods injected.",
            get(&self.injections),
        );
        counter(
            "nfguard_injector_dry_run_injections_total",
            "Dry-run pods that would be injected.",
            get(&self.dry_run_injections),
        );
        counter(
            "nfguard_injector_denials_total",
            "Pods refused.",
            get(&self.denials),
        );
        counter(
            "nfguard_injector_errors_total",
            "Bad requests and internal errors.",
            get(&self.errors),
        );
        let _ = writeln!(s, "# HELP nfguard_injector_skips_total Pods admitted unchanged, by reason.\n# TYPE nfguard_injector_skips_total counter");
        if let Ok(m) = self.skips.lock() {
            for (reason, v) in m.iter() {
                let _ = writeln!(s, "nfguard_injector_skips_total{{reason=\"{reason}\"}} {v}");
            }
        }
        let name = "nfguard_injector_admission_duration_seconds";
        let _ = writeln!(
            s,
            "# HELP {name} Time to answer an admission review.\n# TYPE {name} histogram"
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(s, "{name}_bucket{{le=\"{b}\"}} {}", get(&self.buckets[i]));
        }
        let count = get(&self.latency_count);
        let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(s, "{name}_sum {}", get(&self.latency_sum_us) as f64 / 1e6);
        let _ = writeln!(s, "{name}_count {count}");
        s
    }
}
