//! Aggregation of repeated deviations into alerts, for the notifying sinks.
//!
//! Why: a denied program retried in a loop, or a process hammering a
//! forbidden file, raises thousands of identical events; a person should get
//! a handful of messages, each saying how many times it happened. The raw
//! events stay on stdout, one line each.
//!
//! Rule: the first event of a deviation (same session, executable, syscall,
//! target, kind and verdict) becomes an alert at once (`count` 1: nobody
//! waits a window to learn of an attack). Repeats within `window` of that
//! first event are counted; when the window ends, one summary alert carries
//! their `count`, `first_seen`, `last_seen` and the id of the first alert
//! (`repeats_of`). The counts of all alerts add up exactly to the events.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::event::{Event, Kind, Verdict};

/// One notification: an event, or a summary of its repeats.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// The first event (for a summary: the last repeat).
    #[serde(flatten)]
    pub event: Event,
    /// How many events this alert stands for.
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// For a summary: the id of the event alerted first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeats_of: Option<u64>,
}

impl Alert {
    pub fn single(event: Event) -> Alert {
        Alert {
            first_seen: event.time.clone(),
            last_seen: event.time.clone(),
            count: 1,
            repeats_of: None,
            event,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    session: Option<String>,
    exe: String,
    syscall: &'static str,
    target: Option<String>,
    port: Option<u16>,
    kind: Kind,
    verdict: Verdict,
}

impl Key {
    fn of(e: &Event) -> Key {
        Key {
            session: e.context.session.clone(),
            exe: e.exe.clone(),
            syscall: e.syscall,
            target: e.path.clone().or_else(|| e.address.clone()),
            port: e.port,
            kind: e.kind,
            verdict: e.verdict,
        }
    }
}

struct Group {
    opened: Instant,
    first_id: u64,
    repeats: u64,
    first_seen: String,
    last: Option<Event>,
}

/// Groups events into alerts (see the module docs).
pub struct Aggregator {
    window: Duration,
    max_open: usize,
    open: HashMap<Key, Group>,
}

impl Aggregator {
    /// `max_open` bounds memory: beyond it, new deviations are alerted one by
    /// one (nothing is lost, they are only not grouped).
    pub fn new(window: Duration, max_open: usize) -> Aggregator {
        Aggregator {
            window,
            max_open,
            open: HashMap::new(),
        }
    }

    /// Takes one event; returns the alerts due now, in order.
    pub fn offer(&mut self, e: Event, now: Instant) -> Vec<Alert> {
        let mut out = Vec::new();
        let key = Key::of(&e);
        if let Some(g) = self.open.get_mut(&key) {
            if now < g.opened + self.window {
                if g.repeats == 0 {
                    g.first_seen = e.time.clone();
                }
                g.repeats += 1;
                g.last = Some(e);
                return out;
            }
            if let Some(g) = self.open.remove(&key) {
                out.extend(summary(g));
            }
        }
        if self.window > Duration::ZERO && self.open.len() < self.max_open {
            self.open.insert(
                key,
                Group {
                    opened: now,
                    first_id: e.id,
                    repeats: 0,
                    first_seen: String::new(),
                    last: None,
                },
            );
        }
        out.push(Alert::single(e));
        out
    }

    /// The summaries of the windows that ended by `now`, oldest first.
    pub fn expire(&mut self, now: Instant) -> Vec<Alert> {
        let window = self.window;
        let due: Vec<Key> = self
            .open
            .iter()
            .filter(|(_, g)| now >= g.opened + window)
            .map(|(k, _)| k.clone())
            .collect();
        let mut groups: Vec<Group> = due.iter().filter_map(|k| self.open.remove(k)).collect();
        groups.sort_by_key(|g| (g.opened, g.first_id));
        groups.into_iter().filter_map(summary).collect()
    }

    /// Every pending summary, whatever its window (at shutdown).
    pub fn flush(&mut self) -> Vec<Alert> {
        let mut groups: Vec<Group> = self.open.drain().map(|(_, g)| g).collect();
        groups.sort_by_key(|g| (g.opened, g.first_id));
        groups.into_iter().filter_map(summary).collect()
    }

    /// Deviations currently inside their window.
    pub fn open(&self) -> usize {
        self.open.len()
    }
}

fn summary(g: Group) -> Option<Alert> {
    let last = g.last?;
    Some(Alert {
        first_seen: g.first_seen,
        last_seen: last.time.clone(),
        count: g.repeats,
        repeats_of: Some(g.first_id),
        event: last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Category, Context};

    pub(crate) fn event(id: u64, path: &str) -> Event {
        Event {
            id,
            time: format!("2026-01-01T00:00:{:02}Z", id % 60),
            category: Category::Process,
            verdict: Verdict::Deny,
            kind: Kind::OutsideModel,
            mode: nfguard_common::Mode::Enforce,
            syscall: "execve",
            pid: 10,
            ppid: 1,
            uid: 0,
            exe: "/bin/sh".into(),
            argv: vec!["ps".into()],
            cwd: "/".into(),
            reason: "not learned".into(),
            path: Some(path.into()),
            op: None,
            family: None,
            protocol: None,
            address: None,
            port: None,
            interface: None,
            datagrams: None,
            ancestors: vec![],
            context: Context {
                container: "main".into(),
                session: Some("main-1".into()),
                ..Context::default()
            },
        }
    }

    #[test]
    fn a_burst_becomes_one_alert_then_one_summary_and_the_counts_add_up() {
        let t0 = Instant::now();
        let mut a = Aggregator::new(Duration::from_secs(60), 100);
        let mut alerts = Vec::new();
        for i in 0..1000 {
            alerts.extend(a.offer(event(i, if i % 2 == 0 { "/bin/ps" } else { "/bin/ls" }), t0));
        }
        assert_eq!(alerts.len(), 2);
        assert!(a.expire(t0 + Duration::from_secs(59)).is_empty());
        alerts.extend(a.expire(t0 + Duration::from_secs(60)));
        assert_eq!(alerts.len(), 4);
        assert_eq!(alerts.iter().map(|x| x.count).sum::<u64>(), 1000);
        assert_eq!(alerts[2].repeats_of, Some(0));
        assert_eq!(alerts[2].count, 499);
        assert_eq!(alerts[2].first_seen, event(2, "").time);
        assert_eq!(a.open(), 0);
    }

    #[test]
    fn a_repeat_after_the_window_closes_it_and_alerts_again() {
        let t0 = Instant::now();
        let mut a = Aggregator::new(Duration::from_secs(1), 100);
        assert_eq!(a.offer(event(1, "/x"), t0).len(), 1);
        assert!(a.offer(event(2, "/x"), t0).is_empty());
        let later = a.offer(event(3, "/x"), t0 + Duration::from_secs(2));
        assert_eq!(
            later
                .iter()
                .map(|x| (x.count, x.event.id))
                .collect::<Vec<_>>(),
            [(1, 2), (1, 3)]
        );
    }

    #[test]
    fn beyond_the_bound_events_are_alerted_one_by_one() {
        let t0 = Instant::now();
        let mut a = Aggregator::new(Duration::from_secs(60), 1);
        let n: usize = (0..10)
            .map(|i| a.offer(event(i, &format!("/p{}", i % 2)), t0).len())
            .sum();
        assert_eq!(n, 1 + 5);
        assert_eq!(a.flush().iter().map(|x| x.count).sum::<u64>(), 4);
    }
}
