//! Events: one JSON object per deviation, with everything a responder needs.
//!
//! `EventSink::emit` is called on the supervisor's thread while the workload
//! waits for its answer, so everything it does is local and bounded: the JSON
//! line to the writer (stdout in the pod, every raw event, unaggregated, as
//! before), the ring of recent events and the activity ring for the API, the
//! metrics, and a non-blocking hand-off to the notifying sinks (`sinks`), whose
//! network and disk work runs on their own thread.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use nfguard_common::Mode;
use serde::Serialize;

use crate::procfs::Ancestor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Process,
    Network,
    Filesystem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Allowed, but outside the model (alert mode).
    Alert,
    /// Refused (enforce mode).
    Deny,
}

/// Why an event was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The action is not in the learned model.
    OutsideModel,
    /// A program created or modified after the workload started ("binary not from the image").
    Drift,
    /// The action may be in the model but cannot be verified race-free.
    Unverifiable,
    /// The supervisor could not inspect the action.
    InternalError,
}

/// Where the workload runs (empty on a plain host).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Context {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    pub container: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The process tree the event belongs to (exec session or the NF's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The API user who opened the exec session, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: u64,
    pub time: String,
    pub category: Category,
    pub verdict: Verdict,
    pub kind: Kind,
    pub mode: Mode,
    pub syscall: &'static str,
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    /// Executable of the acting process.
    pub exe: String,
    /// For process events, the argv passed to exec; otherwise the acting process's command line.
    pub argv: Vec<String>,
    pub cwd: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Parents of the acting process, nearest first.
    pub ancestors: Vec<Ancestor>,
    #[serde(flatten)]
    pub context: Context,
}

/// The current time as RFC 3339 (UTC, microseconds).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

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
    dispatcher: OnceLock<crate::sinks::Dispatcher>,
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
    pub fn attach(
        &self,
        dispatcher: crate::sinks::Dispatcher,
    ) -> Result<(), crate::sinks::Dispatcher> {
        self.dispatcher.set(dispatcher)
    }

    pub fn dispatcher(&self) -> Option<&crate::sinks::Dispatcher> {
        self.dispatcher.get()
    }

    /// Records an allowed call in the activity ring (see `timeline`).
    pub fn note_call(&self, call: crate::timeline::Call<'_>) {
        self.activity.note_call(call)
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
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

/// Where `GET /events?since=` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    Id(u64),
    Time(time::OffsetDateTime),
}

impl std::str::FromStr for Since {
    type Err = String;
    fn from_str(s: &str) -> Result<Since, String> {
        if let Ok(id) = s.parse::<u64>() {
            return Ok(Since::Id(id));
        }
        parse_time(s)
            .map(Since::Time)
            .ok_or_else(|| format!("since={s:?} is neither an event id nor an RFC 3339 time"))
    }
}

/// Parses an RFC 3339 time.
pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}
