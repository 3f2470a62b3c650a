//! What the supervisor tells the exec-session watcher (`outside`): which
//! keepers handed over a listener, and which execs it let through from inside
//! the launcher's tree. Owned by `Shared`, written by the supervisor and the
//! socket server, read by the watcher; no process-wide state, so two
//! supervisors can run in one process.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::procfs;

/// How long an inside exec waits for the watcher to match it with an open.
pub const MATCH_WINDOW: Duration = Duration::from_secs(5);
/// Most inside execs kept.
const MAX_INSIDE: usize = 4096;

/// Keepers that handed over a listener: pid -> (start time, container).
#[derive(Default)]
pub struct Keepers(Mutex<BTreeMap<i32, (u64, String)>>);

impl Keepers {
    /// Records a keeper (its pid in our PID namespace, from SO_PEERCRED).
    pub fn register(&self, pid: i32, container: &str) {
        let start = procfs::read_stat(pid).map(|(_, s)| s).unwrap_or(0);
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid, (start, container.to_string()));
    }

    /// The live keepers (a dead keeper's pid may be reused: only those whose
    /// start time still matches are kept).
    pub fn live(&self) -> BTreeMap<i32, (u64, String)> {
        let mut k = self.0.lock().unwrap_or_else(|p| p.into_inner());
        k.retain(|pid, (start, _)| procfs::read_stat(*pid).is_some_and(|(_, s)| s == *start));
        k.clone()
    }

    /// The container of keeper `pid`, as last registered.
    pub fn container(&self, pid: i32) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pid)
            .map(|(_, c)| c.clone())
    }
}

/// Execs the supervisor saw from inside the launcher's tree: (when, real path
/// in the container). The supervisor records each one while it holds the
/// execve notification, before the kernel opens the file, so the watcher
/// finds the record when the open arrives.
#[derive(Default)]
pub struct InsideExecs {
    /// Whether a watcher runs (otherwise nothing is kept).
    watching: AtomicBool,
    q: Mutex<VecDeque<(Instant, String)>>,
}

impl InsideExecs {
    /// From now on, keep inside execs for a watcher.
    pub fn start_watching(&self) {
        self.watching.store(true, Ordering::Relaxed);
    }

    /// Records an exec let through from inside.
    pub fn note(&self, program: &str) {
        if !self.watching.load(Ordering::Relaxed) {
            return;
        }
        let mut q = self.q.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while q.len() >= MAX_INSIDE
            || q.front()
                .is_some_and(|(t, _)| now.duration_since(*t) > MATCH_WINDOW)
        {
            q.pop_front();
        }
        q.push_back((now, program.to_string()));
    }

    /// Takes the inside exec of `path` recorded at most `MATCH_WINDOW` before `at`.
    pub fn take(&self, path: &str, at: Instant) -> bool {
        let mut q = self.q.lock().unwrap_or_else(|p| p.into_inner());
        let found = q
            .iter()
            .position(|(t, p)| p == path && *t <= at && at.duration_since(*t) <= MATCH_WINDOW);
        found.map(|i| q.remove(i)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_execs_are_kept_only_while_watched_and_matched_once() {
        let l = InsideExecs::default();
        l.note("/usr/bin/ps");
        assert!(
            !l.take("/usr/bin/ps", Instant::now()),
            "not watching: nothing kept"
        );
        l.start_watching();
        l.note("/usr/bin/ps");
        let later = Instant::now();
        assert!(!l.take("/usr/bin/id", later));
        assert!(l.take("/usr/bin/ps", later));
        assert!(
            !l.take("/usr/bin/ps", later),
            "one exec accounts for one open"
        );
    }

    #[test]
    fn two_ledgers_do_not_share_state() {
        let (a, b) = (Keepers::default(), Keepers::default());
        let me = std::process::id() as i32;
        a.register(me, "nf");
        assert_eq!(a.live().len(), 1);
        assert!(b.live().is_empty());
        assert_eq!(a.container(me).as_deref(), Some("nf"));
    }
}
