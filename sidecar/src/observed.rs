//! The ledger: how often, and when first and last, each model item was seen,
//! per monitored container, since the console link last took it.
//!
//! Owned by the supervisor's `Shared` and fed from its decision path by one
//! call (`note`), so it must cost next to nothing there: when no console is
//! configured it is one relaxed atomic load; otherwise one mutex and one map
//! update per observation, no I/O and no allocation beyond the key (the
//! console link's thread does the rest, `console_link`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::model::Observation;

use crate::console_wire::{Item, Observed};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tally {
    count: u64,
    first_ms: i64,
    last_ms: i64,
}

/// Items seen, by container.
#[derive(Default)]
pub struct Ledger {
    on: AtomicBool,
    seen: Mutex<HashMap<String, BTreeMap<Item, Tally>>>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Ledger {
    /// The supervisor's hook: every observation of a decided call, inside the
    /// model or not (a console link counts both: the first are provenance, the
    /// second candidates).
    pub fn note<'a>(
        &self,
        container: &str,
        observations: impl IntoIterator<Item = &'a Observation>,
    ) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        self.note_at(container, observations, now_ms());
    }

    /// Starts counting (the console link calls this once configured).
    pub fn enable(&self) {
        self.on.store(true, Ordering::Relaxed);
    }

    pub fn note_at<'a>(
        &self,
        container: &str,
        observations: impl IntoIterator<Item = &'a Observation>,
        now: i64,
    ) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let per = match seen.get_mut(container) {
            Some(p) => p,
            None => seen.entry(container.to_string()).or_default(),
        };
        for o in observations {
            per.entry(Item::of(o))
                .and_modify(|t| {
                    t.count += 1;
                    t.last_ms = now;
                })
                .or_insert(Tally {
                    count: 1,
                    first_ms: now,
                    last_ms: now,
                });
        }
    }

    /// Makes sure `items` are reported, without counting them (what the local
    /// model learned by a path the ledger does not see: counted nowhere else).
    pub fn ensure_at(&self, container: &str, items: &[Item], now: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let per = seen.entry(container.to_string()).or_default();
        for i in items {
            per.entry(i.clone()).or_insert(Tally {
                count: 0,
                first_ms: now,
                last_ms: now,
            });
        }
    }

    /// Takes what `container` saw since the last take.
    pub fn take(&self, container: &str) -> Vec<Observed> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.remove(container)
            .unwrap_or_default()
            .into_iter()
            .map(|(item, t)| Observed {
                item,
                count: t.count,
                first_ms: t.first_ms,
                last_ms: t.last_ms,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FileEntry;

    #[test]
    fn repeated_observations_are_one_item_with_a_count_and_times() {
        let l = Ledger::default();
        let f = |p: &str| {
            Observation::File(FileEntry {
                exe: "/bin/nf".into(),
                op: "write".into(),
                path: p.into(),
            })
        };
        l.note_at("nf", [&f("/proc/1/x"), &f("/proc/2/x")], 10);
        l.note_at("nf", [&f("/proc/3/x")], 30);
        l.note_at("other", [&f("/a")], 40);
        let got = l.take("nf");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].count, got[0].first_ms, got[0].last_ms), (3, 10, 30));
        assert!(l.take("nf").is_empty(), "taken once");
        assert_eq!(l.take("other").len(), 1);
    }
}
