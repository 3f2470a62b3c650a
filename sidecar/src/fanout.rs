//! Where events go. `EventSink::emit` is called on the supervisor's thread
//! while the workload waits for its answer, so everything it does is local and
//! bounded: the JSON line to the writer (stdout in the pod, every raw event,
//! unaggregated), the ring of recent events and the activity ring for the API,
//! the metrics, and a non-blocking hand-off to the notifying sinks (`sinks`),
//! whose network and disk work runs on their own thread.
//!
//! The fan-out sits above the event types (`event`), the activity ring
//! (`timeline`), the counters (`metrics`) and the sinks, which know nothing of
//! it: dependencies run one way.

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::event::{now_rfc3339, parse_time, Context, Event, Since, Stamp};
use crate::sinks::{ConfigError, Dispatcher, SinksConfig};

/// Where events go: JSON lines to a writer (a file, or stderr), and a bounded
/// ring of recent events for the API.
pub struct EventSink {
    out: Mutex<Box<dyn Write + Send>>,
    recent: Mutex<VecDeque<Event>>,
    next_id: AtomicU64,
    written: AtomicU64,
    write_errors: AtomicU64,
    /// Recent activity, allowed and flagged (the timeline).
    pub activity: crate::timeline::Timeline,
    pub metrics: crate::metrics::Metrics,
    dispatcher: OnceLock<Dispatcher>,
}

/// How many recent events the sink keeps in memory.
pub const RECENT: usize = 4096;

impl EventSink {
    pub fn new(out: Box<dyn Write + Send>) -> EventSink {
        EventSink {
            out: Mutex::new(out),
            recent: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(1),
            written: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            activity: crate::timeline::Timeline::default(),
            metrics: crate::metrics::Metrics::default(),
            dispatcher: OnceLock::new(),
        }
    }

    /// Sends every event from now on to the notifying sinks as well (once;
    /// a second dispatcher is handed back).
    pub fn attach(&self, dispatcher: Dispatcher) -> Result<(), Dispatcher> {
        self.dispatcher.set(dispatcher)
    }

    /// Starts the notifying sinks of `cfg` and attaches them (once).
    pub fn attach_sinks(&self, cfg: SinksConfig, context: &Context) -> Result<(), ConfigError> {
        crate::sinks::start(cfg, context, |d| self.attach(d).is_ok())
    }

    /// `--sinks FILE` of `nfguard run` and `nfguard supervise`.
    pub fn attach_sinks_file(&self, path: &Path, context: &Context) -> Result<(), ConfigError> {
        self.attach_sinks(SinksConfig::load(path)?, context)
    }

    /// The sidecar's sinks, configured from the environment (spool default:
    /// `<shared_dir>/spool`).
    pub fn attach_sinks_env(
        &self,
        context: &Context,
        shared_dir: &Path,
    ) -> Result<(), ConfigError> {
        let Some(mut cfg) = crate::sinks::config_from_env(|k| std::env::var(k).ok())? else {
            return Ok(());
        };
        if cfg.spool.is_none() {
            cfg.spool = Some(shared_dir.join("spool"));
        }
        self.attach_sinks(cfg, context)
    }

    pub fn dispatcher(&self) -> Option<&Dispatcher> {
        self.dispatcher.get()
    }

    /// Records an allowed call in the activity ring (see `timeline`).
    pub fn note_call(&self, call: crate::timeline::Call<'_>) {
        self.activity.note_call(call)
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The next event's id, and the time now.
    pub fn stamp(&self) -> Stamp {
        Stamp {
            id: self.next_id(),
            time: now_rfc3339(),
        }
    }

    /// Writes one event as one line, flushed at once (a crash loses nothing written).
    pub fn emit(&self, event: Event) {
        let mut line = match serde_json::to_vec(&event) {
            Ok(l) => l,
            Err(_) => return,
        };
        line.push(b'\n');
        {
            let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
            if out.write_all(&line).and_then(|_| out.flush()).is_err() {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
            } else {
                self.written.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.metrics.count_event(&event);
        self.activity.note_event(&event);
        if let Some(d) = self.dispatcher.get() {
            d.submit(event.clone());
        }
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(event);
    }

    pub fn recent(&self) -> Vec<Event> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Recent events after `since` (an event id or a time).
    pub fn recent_since(&self, since: Option<&Since>) -> Vec<Event> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .filter(|e| match since {
                None => true,
                Some(Since::Id(id)) => e.id > *id,
                Some(Since::Time(t)) => parse_time(&e.time).is_some_and(|et| et > *t),
            })
            .cloned()
            .collect()
    }

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}
