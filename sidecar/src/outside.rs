//! The exec-session watcher: every process in the pod that the launcher did not start.
//!
//! Why it exists: the launcher's seccomp filter is inherited only by its descendants
//! (ARCHITECTURE.md, fact 1). `kubectl exec` without the injector's exec rule, exec probes run
//! by the kubelet, `crictl exec` and debug containers are started by the runtime with parent
//! pid 0 in the pod and run unfiltered. The sidecar shares the pod's PID namespace, so it
//! sees them in /proc; this module finds them, reports them, learns them, and (enforce mode
//! with `nfguard.io/exec-sessions: deny`) kills the unlearned ones.
//!
//! Cheap and prompt, without polling all of /proc:
//! - the last field of /proc/loadavg is the last pid allocated in our PID namespace: when it
//!   has not moved, no process was created and nothing is scanned;
//! - an inotify watch with `IN_OPEN` on the NF's executable directories, through
//!   `/proc/<keeper>/root/{usr/bin,bin,usr/sbin,sbin,usr/local/bin}`, fires inside every
//!   exec of a program there (the kernel opens the file), even of a `which` that lives a
//!   millisecond, and wakes the watcher at once; otherwise it looks at loadavg every
//!   `interval` (250 ms by default) to catch forks without exec.
//!
//! "Started by the launcher" means: a descendant of a keeper that handed a listener to this
//! supervisor (`register_keeper`, called on each handover with the pid from SO_PEERCRED;
//! the process name `nfguard-launch` is never trusted on its own, anyone can run the launcher
//! against a socket of their own). A process that looks like a launcher is given two seconds
//! to hand its listener over before it is judged. Processes that were running when the
//! watcher started (the pod's pause process, the sidecar) are not judged.
//!
//! In the model an outside process is `{"exe": E, "parent": "(outside)"}` and each program it
//! starts `{"exe": E2, "parent": E}`, apart from the NF's own `(launcher)` tree, so a recurring
//! exec probe learned during the learning period is silent afterwards.
//!
//! What it cannot do, and says: a process that exits before the watcher reads /proc (a few
//! hundred microseconds after its exec) leaves nothing to report; in that case only ptrace
//! (see [`trace`]) follows sessions synchronously, and only programs *started by* a followed
//! session can be stopped before they run.

pub mod notify;
pub mod trace;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nfguard_common::{ExecSessions, Mode};

use crate::event::{Category, Event, Kind, Verdict};
use crate::model::{self, Observation};
use crate::procfs;
use crate::supervisor::Shared;

/// Directories of executables watched in each container root.
pub const EXEC_DIRS: [&str; 5] = ["usr/bin", "bin", "usr/sbin", "sbin", "usr/local/bin"];
/// How long a process that looks like a launcher has to hand over its listener.
pub const LAUNCHER_GRACE: Duration = Duration::from_secs(2);
/// The reason every event of this module gives.
pub const REASON: &str = "entered from outside the launcher";
/// Programs the runtime uses to enter a container (the process that becomes the session
/// runs them for a moment before exec'ing the session's command): judged once they exec.
const ENTRY_HELPERS: [&str; 5] = ["nsenter", "runc", "runc:[2:INIT]", "crun", "conmon"];

/// Keepers that handed over a listener: pid -> (start time, container). One supervisor per
/// process, so a process-wide registry (filled by `server.rs`, read by the watcher).
static KEEPERS: Mutex<BTreeMap<i32, (u64, String)>> = Mutex::new(BTreeMap::new());

/// Records a keeper (its pid in our PID namespace, from SO_PEERCRED).
pub fn register_keeper(pid: i32, container: &str) {
    let start = procfs::read_stat(pid).map(|(_, s)| s).unwrap_or(0);
    KEEPERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(pid, (start, container.to_string()));
}

fn keepers() -> BTreeMap<i32, (u64, String)> {
    let mut k = KEEPERS.lock().unwrap_or_else(|p| p.into_inner());
    // A dead keeper's pid may be reused: keep only those whose start time still matches.
    k.retain(|pid, (start, _)| procfs::read_stat(*pid).is_some_and(|(_, s)| s == *start));
    k.clone()
}

/// The watcher's settings.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub policy: ExecSessions,
    /// How often loadavg is looked at when inotify stays quiet.
    pub interval: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            policy: ExecSessions::Alert,
            interval: Duration::from_millis(250),
        }
    }
}

/// What the watcher concluded about one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Running before the watcher started (pause, the sidecar): not judged.
    Baseline,
    /// A keeper or one of its descendants: the supervisor sees it through the filter.
    Inside,
    /// The sidecar itself or one of its children.
    Own,
    /// Looks like a launcher that has not handed over yet (since when).
    Pending(Instant),
    /// The runtime entering the container (nsenter, runc): judged when it execs.
    Entering,
    /// From outside: `root` is the pid that entered the pod.
    Outside { root: i32 },
}

/// What the classifier knows of the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent<'a> {
    /// Parent pid 0: created from outside the PID namespace (runc exec, nsenter).
    None,
    Keeper,
    Myself,
    Known(&'a Class),
    /// Not seen (exited already): treated as the start of a session.
    Unknown,
}

fn base_name(exe: &str) -> &str {
    exe.rsplit('/').next().unwrap_or(exe)
}

/// Pure decision for a new process from its parent's class and its executable.
pub fn classify(pid: i32, parent: Parent<'_>, exe: &str, now: Instant) -> Class {
    let looks_launcher = base_name(exe) == "nfguard-launch";
    let root = || {
        if looks_launcher {
            Class::Pending(now)
        } else if ENTRY_HELPERS.contains(&base_name(exe)) || exe.starts_with("/memfd:runc") {
            Class::Entering
        } else {
            Class::Outside { root: pid }
        }
    };
    match parent {
        Parent::Keeper | Parent::Known(Class::Inside) => Class::Inside,
        Parent::Myself | Parent::Known(Class::Own) => Class::Own,
        Parent::Known(Class::Pending(t)) => Class::Pending(*t),
        Parent::Known(Class::Outside { root }) => Class::Outside { root: *root },
        Parent::None | Parent::Unknown | Parent::Known(Class::Baseline) => root(),
        // The helper forked before exec'ing (nsenter does): the child is the session.
        Parent::Known(Class::Entering) => root(),
    }
}

struct Proc {
    start: u64,
    class: Class,
    exe: String,
}

/// The watcher's state (one thread).
struct Watcher {
    shared: Arc<Shared>,
    opts: WatchOptions,
    me: i32,
    procs: HashMap<i32, Proc>,
    last_pid: Option<String>,
    notify: Option<notify::Inotify>,
    watched_roots: Vec<i32>,
    tracer: Option<trace::Tracer>,
    /// (pid, program) already judged, so a program is reported once.
    judged: std::collections::HashSet<(i32, String)>,
}

/// Starts the watcher thread. It says once on stderr when ptrace cannot follow sessions.
pub fn spawn(shared: Arc<Shared>, opts: WatchOptions) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("nfguard-outside".into())
        .spawn(move || {
            let mut w = Watcher::new(shared, opts);
            w.run();
        })
        .map(drop)
}

/// Last pid allocated in our PID namespace: the 5th field of /proc/loadavg.
pub fn parse_last_pid(loadavg: &str) -> Option<&str> {
    loadavg.split_whitespace().nth(4)
}

impl Watcher {
    fn new(shared: Arc<Shared>, opts: WatchOptions) -> Self {
        let me = std::process::id() as i32;
        let mut procs = HashMap::new();
        for pid in procfs::all_pids() {
            if let Some((_, start)) = procfs::read_stat(pid) {
                procs.insert(
                    pid,
                    Proc {
                        start,
                        class: if pid == me {
                            Class::Own
                        } else {
                            Class::Baseline
                        },
                        exe: procfs::exe_of(pid),
                    },
                );
            }
        }
        let notify = match notify::Inotify::new() {
            Ok(n) => Some(n),
            Err(e) => {
                eprintln!("nfguard: inotify unavailable ({e}); outside processes are found every interval only");
                None
            }
        };
        let tracer = match trace::Tracer::check() {
            Ok(t) => Some(t),
            Err(why) => {
                eprintln!("nfguard: exec sessions are not followed with ptrace: {why}; outside programs are reported (and killed under enforce + exec-sessions=deny) after they start");
                None
            }
        };
        Self {
            shared,
            opts,
            me,
            procs,
            last_pid: None,
            notify,
            watched_roots: Vec::new(),
            tracer,
            judged: Default::default(),
        }
    }

    fn run(&mut self) {
        loop {
            let woke = match &self.notify {
                Some(n) => n.wait(self.wait_time()),
                None => {
                    std::thread::sleep(self.wait_time());
                    false
                }
            };
            self.watch_new_roots();
            let last = std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|l| parse_last_pid(&l).map(String::from));
            let moved = last != self.last_pid;
            self.last_pid = last;
            let pending = self
                .procs
                .values()
                .any(|p| matches!(p.class, Class::Pending(_) | Class::Entering));
            if moved || woke || pending {
                self.scan();
            }
            if let Some(t) = &mut self.tracer {
                for (pid, verdict) in t.poll() {
                    self.on_traced_exec(pid, verdict);
                }
            }
        }
    }

    fn wait_time(&self) -> Duration {
        match &self.tracer {
            Some(t) if t.active() => Duration::from_millis(5),
            _ => self.opts.interval,
        }
    }

    /// Adds the executable directories of each new keeper's root.
    fn watch_new_roots(&mut self) {
        let Some(n) = &self.notify else { return };
        for pid in keepers().keys() {
            if self.watched_roots.contains(pid) {
                continue;
            }
            self.watched_roots.push(*pid);
            for dir in EXEC_DIRS {
                // Missing directories (a distroless image has no /sbin) are fine.
                let _ = n.watch_open(&format!("/proc/{pid}/root/{dir}"));
            }
        }
    }

    fn scan(&mut self) {
        let keepers = keepers();
        let now = Instant::now();
        let mut fresh: Vec<(u64, i32, i32)> = Vec::new();
        let mut alive = std::collections::HashSet::new();
        for pid in procfs::all_pids() {
            let Some((ppid, start)) = procfs::read_stat(pid) else {
                continue;
            };
            alive.insert(pid);
            match self.procs.get(&pid) {
                Some(p) if p.start == start => {}
                _ => fresh.push((start, pid, ppid)),
            }
        }
        self.procs.retain(|pid, _| alive.contains(pid));
        self.judged.retain(|(pid, _)| alive.contains(pid));
        // Parents before children.
        fresh.sort();
        for (start, pid, ppid) in fresh {
            let mut exe = procfs::exe_of(pid);
            if exe == "?" {
                // Exited already (a zombie until its parent reaps it): its command name is
                // all that is left, e.g. `[which]`. Learned and reported under that name.
                if let Some(comm) = comm_of(pid) {
                    exe = resolve_comm(&comm, keepers.keys().next().copied())
                        .unwrap_or_else(|| format!("[{comm}]"));
                }
            }
            let parent = if ppid == 0 {
                Parent::None
            } else if keepers.contains_key(&ppid) || keepers.contains_key(&pid) {
                Parent::Keeper
            } else if ppid == self.me {
                Parent::Myself
            } else {
                match self.procs.get(&ppid) {
                    Some(p) => Parent::Known(&p.class),
                    None => Parent::Unknown,
                }
            };
            let class = if keepers.contains_key(&pid) {
                Class::Inside
            } else {
                classify(pid, parent, &exe, now)
            };
            let parent_exe = self.procs.get(&ppid).map(|p| p.exe.clone());
            self.procs.insert(
                pid,
                Proc {
                    start,
                    class: class.clone(),
                    exe: exe.clone(),
                },
            );
            let traced = self.tracer.as_ref().is_some_and(|t| t.is_traced(pid));
            let forked_only = traced || parent_exe.as_deref() == Some(exe.as_str());
            if let (Class::Outside { root }, false) =
                (&class, forked_only && root_of(&class) != pid)
            {
                let root = *root;
                let parent = if root == pid {
                    model::OUTSIDE_PARENT.to_string()
                } else {
                    parent_exe.unwrap_or_else(|| procfs::exe_of(ppid))
                };
                self.judge(pid, root, parent, &exe, false);
            }
        }
        // Settle launchers, runtime helpers, and programs that outside processes exec'd.
        let pids: Vec<i32> = self.procs.keys().copied().collect();
        for pid in pids {
            let Some((class, old_exe)) = self
                .procs
                .get(&pid)
                .map(|p| (p.class.clone(), p.exe.clone()))
            else {
                continue;
            };
            match class {
                Class::Pending(since) => {
                    let settled = if keepers.contains_key(&pid) {
                        Some(Class::Inside)
                    } else if since.elapsed() > LAUNCHER_GRACE {
                        Some(Class::Outside { root: pid })
                    } else {
                        None
                    };
                    if let Some(c) = settled {
                        self.reclass_tree(pid, &c);
                        if matches!(c, Class::Outside { .. }) {
                            let exe = procfs::exe_of(pid);
                            self.judge(pid, pid, model::OUTSIDE_PARENT.into(), &exe, false);
                        }
                    }
                }
                Class::Entering | Class::Outside { .. } => {
                    let exe = procfs::exe_of(pid);
                    let traced = self.tracer.as_ref().is_some_and(|t| t.is_traced(pid));
                    // A followed process's execs are judged at its exec event (on_traced_exec).
                    if exe == old_exe || exe == "?" || traced {
                        continue;
                    }
                    let (root, parent) = match class {
                        Class::Outside { root } => (root, old_exe),
                        _ => (pid, model::OUTSIDE_PARENT.to_string()),
                    };
                    if let Some(p) = self.procs.get_mut(&pid) {
                        p.exe = exe.clone();
                        p.class = Class::Outside { root };
                    }
                    self.judge(pid, root, parent, &exe, false);
                }
                _ => {}
            }
        }
    }

    fn reclass_tree(&mut self, top: i32, class: &Class) {
        let mut stack = vec![top];
        while let Some(pid) = stack.pop() {
            if let Some(p) = self.procs.get_mut(&pid) {
                p.class = class.clone();
            }
            for (child, _) in self.procs.iter().filter(|(c, _)| {
                procfs::read_stat(**c).is_some_and(|(pp, _)| pp == pid) && **c != pid
            }) {
                stack.push(*child);
            }
        }
    }

    /// Learns, reports or kills one outside program, once per (pid, program). `at_exec_stop`:
    /// the process is held by ptrace at its exec event and must be resumed or killed here.
    fn judge(&mut self, pid: i32, root: i32, parent: String, exe: &str, at_exec_stop: bool) {
        let first = exe != "?" && self.judged.insert((pid, exe.to_string()));
        if !first {
            if at_exec_stop {
                if let Some(t) = &mut self.tracer {
                    t.resume(pid, false);
                }
            }
            return;
        }
        let obs = Observation::Exec {
            parent: parent.clone(),
            exe: exe.to_string(),
        };
        let mode = self.shared.mode();
        let known = if mode == Mode::Learn {
            let mut m = self.shared.model.write().unwrap_or_else(|p| p.into_inner());
            if m.learn(&obs) {
                self.shared
                    .model_changed
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            true
        } else {
            self.shared
                .model
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .allows(&obs)
        };
        let kill = !known && mode == Mode::Enforce && self.opts.policy == ExecSessions::Deny;
        match (&mut self.tracer, at_exec_stop) {
            (Some(t), true) => t.resume(pid, kill),
            // Without ptrace it is too late to refuse the exec itself: stop the program now,
            // before it does more.
            _ if kill => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            _ => {}
        }
        let report = mode != Mode::Learn && (!known || self.opts.policy == ExecSessions::Allow);
        if report {
            let why = if known {
                format!("{REASON} (break-glass: nfguard.io/exec-sessions=allow; in the model)")
            } else {
                let how = match (kill, at_exec_stop) {
                    (true, true) => "; killed at its exec, before it ran",
                    (true, false) => "; killed",
                    _ => "",
                };
                format!("{REASON}: {exe} started by {parent} is not in the model{how}")
            };
            let verdict = if kill { Verdict::Deny } else { Verdict::Alert };
            self.emit_with(pid, root, mode, verdict, why, Some(exe.to_string()));
        }
        if !kill {
            if let Some(t) = &mut self.tracer {
                // Follow the session: what it starts next is judged at its exec.
                let _ = t.seize(pid);
            }
        }
    }

    /// A followed process reached an exec event.
    fn on_traced_exec(&mut self, pid: i32, exec: trace::ExecStop) {
        let root = match self.procs.get(&pid).map(|p| p.class.clone()) {
            Some(Class::Outside { root }) => root,
            _ => pid,
        };
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exe = exec.exe.clone();
        }
        self.judge(pid, root, exec.previous_exe, &exec.exe, true);
    }

    fn emit_with(
        &self,
        pid: i32,
        root: i32,
        mode: Mode,
        verdict: Verdict,
        reason: String,
        exe: Option<String>,
    ) {
        let status = procfs::read_status(pid);
        let start = procfs::read_stat(pid).map(|(_, s)| s);
        let mut context = self.shared.base_context.clone();
        context.container = container_of(pid).unwrap_or_else(|| context.container.clone());
        if context.image.is_none() {
            context.image = self.shared.images.get(&context.container).cloned();
        }
        let start_note = start
            .map(|s| format!(" (start {s} ticks after boot)"))
            .unwrap_or_default();
        context.session = Some(format!("outside-{root}"));
        let event = Event {
            id: self.shared.events.next_id(),
            time: crate::event::now_rfc3339(),
            category: Category::Process,
            verdict,
            kind: Kind::OutsideModel,
            mode,
            syscall: "execve",
            pid,
            ppid: status.as_ref().map(|s| s.ppid).unwrap_or(0),
            uid: status.as_ref().map(|s| s.uid[1]).unwrap_or(u32::MAX),
            exe: exe.unwrap_or_else(|| procfs::exe_of(pid)),
            argv: procfs::read_cmdline(pid),
            cwd: procfs::read_link(pid, "cwd").unwrap_or_default(),
            reason: format!("{reason}{start_note}"),
            path: None,
            op: None,
            family: None,
            protocol: None,
            address: None,
            port: None,
            ancestors: procfs::ancestors(pid, 0, 8),
            context,
        };
        self.shared.events.emit(event);
    }
}

fn root_of(c: &Class) -> i32 {
    match c {
        Class::Outside { root } => *root,
        _ => 0,
    }
}

/// The command name (`comm`) from /proc/<pid>/stat: readable even for a zombie.
fn comm_of(pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    Some(text.get(open + 1..close)?.to_string())
}

/// The program a command name most likely is, found as the shell would in the container's
/// executable directories and canonicalised like /proc/<pid>/exe (`sh` -> `/usr/bin/dash`),
/// so a probe seen alive or seen as a zombie gives the same model entry.
fn resolve_comm(comm: &str, keeper: Option<i32>) -> Option<String> {
    let root = format!("/proc/{}/root", keeper?);
    ["usr/local/bin", "usr/bin", "bin", "usr/sbin", "sbin"]
        .iter()
        .find_map(|d| {
            let p = std::fs::canonicalize(format!("{root}/{d}/{comm}")).ok()?;
            let p = p.to_str()?;
            // Canonicalising through /proc/<pid>/root gives the host view of a container's root
            // only when the roots are the same; keep the path inside the container otherwise.
            Some(p.strip_prefix(&root).unwrap_or(p).to_string())
        })
}

/// The container of `pid`: the keeper whose mount namespace it shares.
fn container_of(pid: i32) -> Option<String> {
    let ns = procfs::read_link(pid, "ns/mnt")?;
    keepers()
        .iter()
        .find(|(k, _)| procfs::read_link(**k, "ns/mnt").as_deref() == Some(ns.as_str()))
        .map(|(_, (_, c))| c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_pid_is_the_fifth_field_of_loadavg() {
        assert_eq!(
            parse_last_pid("0.08 0.03 0.01 1/123 45678\n"),
            Some("45678")
        );
        assert_eq!(parse_last_pid("garbage"), None);
    }

    #[test]
    fn processes_are_classified_by_their_parent_never_by_their_name_alone() {
        let now = Instant::now();
        assert_eq!(
            classify(7, Parent::None, "/usr/bin/dash", now),
            Class::Outside { root: 7 }
        );
        assert_eq!(
            classify(7, Parent::Keeper, "/usr/bin/dash", now),
            Class::Inside
        );
        assert_eq!(classify(7, Parent::Myself, "/usr/bin/ps", now), Class::Own);
        let out = Class::Outside { root: 3 };
        assert_eq!(classify(7, Parent::Known(&out), "/usr/bin/ps", now), out);
        // A launcher gets time to hand its listener over; it is not trusted for its name.
        assert_eq!(
            classify(7, Parent::None, "/nfguard/bin/nfguard-launch", now),
            Class::Pending(now)
        );
        // The runtime's helper is judged when it execs the session's command.
        assert_eq!(
            classify(7, Parent::None, "/usr/bin/nsenter", now),
            Class::Entering
        );
        assert_eq!(
            classify(8, Parent::Known(&Class::Entering), "/usr/bin/which", now),
            Class::Outside { root: 8 }
        );
        assert_eq!(
            classify(8, Parent::Known(&Class::Baseline), "/usr/bin/sh", now),
            Class::Outside { root: 8 }
        );
    }
}
