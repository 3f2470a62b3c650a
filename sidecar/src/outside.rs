//! The exec-session watcher: every process in the pod that the launcher did not start.
//!
//! Why it exists: the launcher's seccomp filter is inherited only by its descendants
//! (docs/architecture.md, fact 1). `kubectl exec` without the injector's exec rule, exec probes run
//! by the kubelet, `crictl exec` and debug containers are started by the runtime with parent
//! pid 0 in the pod and run unfiltered. The sidecar shares the pod's PID namespace, so it
//! sees them in /proc; this module finds them, reports them, learns them, and (enforce mode
//! with `nfguard.io/exec-sessions: deny`) kills the unlearned ones.
//!
//! Cheap and prompt, without polling all of /proc, and without racing short processes:
//! - the last field of /proc/loadavg is the last pid allocated in our PID namespace: when it
//!   has not moved, no process was created and nothing is scanned;
//! - an inotify watch with `IN_OPEN` on the NF's executable directories (each keeper's
//!   `{usr/bin,bin,usr/sbin,sbin,usr/local/bin}`, resolved inside its root) fires inside
//!   every exec of a program there (the kernel opens the file) and wakes the watcher at once;
//!   otherwise it looks at loadavg every `interval` (250 ms by default) to catch forks
//!   without exec;
//! - each open names the file, so an exec is known even when its process (a `which` that
//!   lives a millisecond) is gone before /proc is read. Every open is accounted for by an
//!   exec the supervisor saw inside (`Shared::inside_execs`), by a process a scan or ptrace saw
//!   running that program, or as part of one (a script's interpreter); what is left, once a
//!   scan 50 ms later has had its chance, is reported from the open alone, with the fields
//!   that could not be read marked unknown (`session: outside-unseen`, pid -1).
//!
//! "Started by the launcher" means: a descendant of a keeper that handed a listener to this
//! supervisor (`Shared::keepers`, registered on each handover with the pid from SO_PEERCRED;
//! the process name `nfguard-launch` is never trusted on its own, anyone can run the launcher
//! against a socket of their own). A process that looks like a launcher is given two seconds
//! to hand its listener over before it is judged. Processes that were running when the
//! watcher started (the pod's pause process, the sidecar) are not judged.
//!
//! Programs are named the same however they were seen (running: the exe, or for a script
//! the script rather than its interpreter; zombie: its comm looked up in the bin directories;
//! unseen: the file opened), and the model keeps outside programs as one flat set,
//! `{"exe": E, "parent": "(outside)"}`, apart from the NF's own `(launcher)` tree: an unseen
//! program has no known parent. So a recurring exec probe learned during the learning period
//! is silent afterwards, whichever way its processes were seen.
//!
//! What it cannot do, and says: a program outside the watched directories that exits before
//! the watcher reads /proc leaves nothing to report; only ptrace (see [`trace`]) follows
//! sessions synchronously, and only programs *started by* a followed session can be stopped
//! before they run.

pub mod notify;
pub mod trace;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nfguard_common::{ExecSessions, Mode};

use crate::event::{Event, Judgement, Kind, Subject, Verdict};
use crate::model::{self, Observation};
use crate::procfs;
use crate::resolve::{self, Resolved};
use crate::supervisor::{decide, Shared};

/// Directories of executables watched in each container root.
pub const EXEC_DIRS: [&str; 5] = ["usr/bin", "bin", "usr/sbin", "sbin", "usr/local/bin"];
/// How long a process that looks like a launcher has to hand over its listener.
pub const LAUNCHER_GRACE: Duration = Duration::from_secs(2);
/// The reason every event of this module gives.
pub const REASON: &str = "entered from outside the launcher";
/// Programs the runtime uses to enter a container (the process that becomes the session
/// runs them for a moment before exec'ing the session's command): judged once they exec.
const ENTRY_HELPERS: [&str; 5] = ["nsenter", "runc", "runc:[2:INIT]", "crun", "conmon"];

/// How long an open, an inside exec, a sighting or an expected open waits for its match.
const MATCH_WINDOW: Duration = Duration::from_secs(5);
/// How long after an open a scan must start before the program is named from the open
/// alone: covers a process read in the middle of its execve (open done, exe not yet switched).
const SETTLE: Duration = Duration::from_millis(50);
/// The session of an exec known only from its open (`outside-unseen`).
pub const UNSEEN: &str = "unseen";

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
    /// /proc/<pid>/exe as last read (`?` when it could not be read).
    exe: String,
    /// What the process is named by in the model and events ([`Watcher::program_of`]).
    program: String,
}

/// An `IN_OPEN` in a watched directory, not yet matched with a process or an inside exec.
#[derive(Debug, Clone)]
struct Open {
    at: Instant,
    keeper: i32,
    /// The file opened, in the container's view (`/usr/bin/which.debianutils`).
    path: String,
}

/// The watcher's state (one thread).
struct Watcher {
    shared: Arc<Shared>,
    opts: WatchOptions,
    me: i32,
    procs: HashMap<i32, Proc>,
    last_pid: Option<i32>,
    pid_max: i32,
    notify: Option<notify::Inotify>,
    watched_roots: Vec<i32>,
    /// Watch descriptor -> (keeper, directory in the container's view).
    dirs: HashMap<i32, (i32, String)>,
    /// Keeper -> its root, to resolve paths as the container sees them.
    roots: HashMap<i32, resolve::Root>,
    tracer: Option<trace::Tracer>,
    /// (pid, program) already judged, so a program is reported once.
    judged: HashSet<(i32, String)>,
    /// Opens waiting to be accounted for.
    opens: Vec<Open>,
    /// Opens that are part of an exec already counted (a script's interpreter, the
    /// interpreter reading the script) or our own reads: ignored once each, until the deadline.
    expected: Vec<(Instant, String)>,
    /// Programs seen running (or as zombies) by a scan or at a ptrace exec stop, each of
    /// which accounts for one open of that program.
    sightings: Vec<(Instant, String)>,
    scripts: Scripts,
    /// Last time something from outside was in evidence: a process classed outside,
    /// entering or pending, or a pid allocated in our namespace that no scan saw.
    evidence: Option<Instant>,
    last_scan: Instant,
}

/// Starts the watcher thread. It says once on stderr when ptrace cannot follow sessions.
pub fn spawn(shared: Arc<Shared>, opts: WatchOptions) -> std::io::Result<()> {
    shared.inside_execs.start_watching();
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

fn read_last_pid() -> Option<i32> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    parse_last_pid(&text)?.parse().ok()
}

/// The pids allocated after `prev` up to `cur` (wrapping at `pid_max`), at most `cap` of
/// them; `None` when there are more.
pub fn pid_range(prev: i32, cur: i32, pid_max: i32, cap: usize) -> Option<Vec<i32>> {
    let v: Vec<i32> = if cur >= prev {
        (prev + 1..=cur).take(cap + 1).collect()
    } else {
        (prev + 1..=pid_max).chain(1..=cur).take(cap + 1).collect()
    };
    (v.len() <= cap).then_some(v)
}

/// The interpreter line of a script (`#!/bin/sh -e` -> ("/bin/sh", Some("-e"))),
/// read as the kernel reads it (the exec stop's reading).
pub fn parse_shebang(head: &[u8]) -> Option<(String, Option<String>)> {
    crate::supervisor::exec_verify::parse_shebang(head)
}

/// Where a script's path sits in the argv the kernel builds for it: `[interp, (arg),
/// script, args...]`.
pub fn script_candidates(argv: &[String]) -> Vec<&str> {
    let mut c = Vec::new();
    if let Some(a) = argv.get(1) {
        c.push(a.as_str());
        if a.starts_with('-') {
            if let Some(b) = argv.get(2) {
                c.push(b.as_str());
            }
        }
    }
    c.retain(|a| !a.is_empty() && !a.starts_with('-'));
    c
}

/// (dev, ino, mtime, size): a file read again only when one of these changed.
type FileVersion = (u64, u64, i64, u64);

/// Which files are scripts and what they run: read once per version of each file.
#[derive(Default)]
struct Scripts {
    /// Real path -> ((dev, ino, mtime, size), the programs an exec of it opens next).
    cache: HashMap<String, (FileVersion, Option<Vec<String>>)>,
}

impl Scripts {
    /// For a script, the programs the kernel opens after it (its interpreter and, for
    /// `#!/usr/bin/env prog`, `prog`), as real paths in `root`; `None` for anything else.
    /// A file read here is opened by us: its `IN_OPEN` is pushed to `expected`.
    fn chain(
        &mut self,
        root: &resolve::Root,
        path: &str,
        expected: &mut Vec<(Instant, String)>,
    ) -> Option<Vec<String>> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let Ok(Resolved::Existing { fd, real }) = resolve::resolve(root, path, true) else {
            return None;
        };
        let meta = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
        if !meta.is_file() {
            return None;
        }
        let key = (meta.dev(), meta.ino(), meta.mtime(), meta.size());
        if let Some((k, chain)) = self.cache.get(&real) {
            if *k == key {
                return chain.clone();
            }
        }
        let mut head = [0u8; 256];
        let n = match resolve::reopen(&fd, libc::O_RDONLY | libc::O_CLOEXEC) {
            Ok(file) => {
                expected.push((Instant::now() + MATCH_WINDOW, real.clone()));
                std::fs::File::from(file).read(&mut head).unwrap_or(0)
            }
            Err(_) => 0,
        };
        let chain = parse_shebang(&head[..n]).and_then(|(interp, arg)| {
            let interp = real_in(root, &interp)?;
            let mut chain = vec![interp.clone()];
            if base_name(&interp) == "env" {
                let prog = arg.as_deref().and_then(|a| {
                    a.split_whitespace()
                        .find(|w| !w.starts_with('-') && !w.contains('='))
                })?;
                chain.push(in_path(root, prog)?);
            }
            Some(chain)
        });
        if self.cache.len() > 1024 {
            self.cache.clear();
        }
        self.cache.insert(real, (key, chain.clone()));
        chain
    }
}

/// The real path of an existing `path` in `root`.
fn real_in(root: &resolve::Root, path: &str) -> Option<String> {
    match resolve::resolve(root, path, true) {
        Ok(Resolved::Existing { real, .. }) => Some(real),
        _ => None,
    }
}

/// A command name found as a shell would in the container's executable directories, as a
/// real path (`sh` -> `/usr/bin/dash`).
fn in_path(root: &resolve::Root, name: &str) -> Option<String> {
    if name.contains('/') {
        return real_in(root, name);
    }
    [
        "usr/local/sbin",
        "usr/local/bin",
        "usr/sbin",
        "usr/bin",
        "sbin",
        "bin",
    ]
    .iter()
    .find_map(|d| real_in(root, &format!("/{d}/{name}")))
}

impl Watcher {
    fn new(shared: Arc<Shared>, opts: WatchOptions) -> Self {
        let me = std::process::id() as i32;
        // The last pid first: every pid allocated after it is either listed below or
        // looked for by a later scan.
        let last_pid = read_last_pid();
        let mut procs = HashMap::new();
        for pid in procfs::all_pids() {
            if let Some((_, start)) = procfs::read_stat(pid) {
                let exe = procfs::exe_of(pid);
                procs.insert(
                    pid,
                    Proc {
                        start,
                        class: if pid == me {
                            Class::Own
                        } else {
                            Class::Baseline
                        },
                        program: exe.clone(),
                        exe,
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
        let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4_194_304);
        Self {
            shared,
            opts,
            me,
            procs,
            last_pid,
            pid_max,
            notify,
            watched_roots: Vec::new(),
            dirs: HashMap::new(),
            roots: HashMap::new(),
            tracer,
            judged: Default::default(),
            opens: Vec::new(),
            expected: Vec::new(),
            sightings: Vec::new(),
            scripts: Scripts::default(),
            evidence: None,
            last_scan: Instant::now(),
        }
    }

    fn run(&mut self) {
        loop {
            let opened = match &self.notify {
                Some(n) => n.wait(self.wait_time()),
                None => {
                    std::thread::sleep(self.wait_time());
                    Vec::new()
                }
            };
            let woke = !opened.is_empty();
            self.watch_new_roots();
            self.take_opens(opened);
            let last = read_last_pid();
            let prev = self.last_pid;
            let moved = last != prev;
            if last.is_some() {
                self.last_pid = last;
            }
            let pending = self
                .procs
                .values()
                .any(|p| matches!(p.class, Class::Pending(_) | Class::Entering));
            let due = self.opens.iter().any(|o| o.at + SETTLE <= Instant::now());
            if moved || woke || pending || due {
                self.scan(prev, last);
            }
            if let Some(t) = &mut self.tracer {
                for (pid, verdict) in t.poll() {
                    self.on_traced_exec(pid, verdict);
                }
            }
            self.settle_opens();
        }
    }

    fn wait_time(&self) -> Duration {
        let base = match &self.tracer {
            Some(t) if t.active() => Duration::from_millis(5),
            _ => self.opts.interval,
        };
        // An open waiting for its settle scan: wake for it, not before.
        match self.opens.iter().map(|o| o.at + SETTLE).min() {
            Some(due) => base.min(
                due.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ),
            None => base,
        }
    }

    /// Adds the executable directories of each new keeper's root, resolved inside that root
    /// (`bin` -> `/usr/bin` in a merged-/usr image, one watch for both).
    fn watch_new_roots(&mut self) {
        let Some(n) = &self.notify else { return };
        for (pid, (_, container)) in self.shared.keepers.live() {
            if self.watched_roots.contains(&pid) {
                continue;
            }
            self.watched_roots.push(pid);
            let Ok(root) = resolve::Root::of(keeper_view(pid)) else {
                continue;
            };
            let mut watched: Vec<String> = Vec::new();
            for dir in EXEC_DIRS {
                // Missing directories (a distroless image has no /sbin) are fine.
                let Ok(Resolved::Existing { fd, real }) =
                    resolve::resolve(&root, &format!("/{dir}"), true)
                else {
                    continue;
                };
                let Ok(wd) = n.watch_open(&format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
                    continue;
                };
                if !watched.contains(&real) {
                    watched.push(real.clone());
                }
                self.dirs.insert(wd, (pid, real));
            }
            eprintln!(
                "nfguard: watching execs in container {container} (keeper pid {pid}): {}",
                watched.join(" ")
            );
            self.roots.insert(pid, root);
        }
        self.roots.retain(|k, _| self.watched_roots.contains(k));
    }

    /// Turns inotify events into opens to account for: drops our own reads and the opens
    /// that belong to an exec already counted (a script's interpreter, its re-read).
    fn take_opens(&mut self, opened: Vec<notify::Opened>) {
        let now = Instant::now();
        self.expected.retain(|(deadline, _)| *deadline > now);
        for o in opened {
            let notify::Opened::File { wd, name } = o else {
                eprintln!(
                    "nfguard: inotify queue overflowed: some execs are known only from /proc"
                );
                continue;
            };
            let Some((keeper, dir)) = self.dirs.get(&wd).cloned() else {
                continue;
            };
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            if let Some(i) = self.expected.iter().position(|(_, p)| *p == path) {
                self.expected.remove(i);
                continue;
            }
            // The runtime's entry helpers are judged by what they exec.
            if ENTRY_HELPERS.contains(&name.as_str()) {
                continue;
            }
            if let Some(root) = self.roots.get(&keeper) {
                if let Some(chain) = self.scripts.chain(root, &path, &mut self.expected) {
                    // binfmt_script opens the interpreter, which then opens the script to read it.
                    for p in chain.into_iter().chain([path.clone()]) {
                        self.expected.push((now + MATCH_WINDOW, p));
                    }
                }
            }
            self.opens.push(Open {
                at: now,
                keeper,
                path,
            });
        }
    }

    /// Matches each open, once a scan has had the time to see its process, with an exec
    /// the supervisor saw inside, or a process a scan or ptrace saw running that program;
    /// what is left is an exec whose process was gone before /proc was read.
    fn settle_opens(&mut self) {
        let now = Instant::now();
        self.sightings
            .retain(|(t, _)| now.duration_since(*t) <= MATCH_WINDOW * 2);
        let opens = std::mem::take(&mut self.opens);
        for o in opens {
            if self.shared.inside_execs.take(&o.path, o.at) {
                continue;
            }
            if let Some(i) = self
                .sightings
                .iter()
                .position(|(t, p)| *p == o.path && *t + MATCH_WINDOW >= o.at)
            {
                self.sightings.remove(i);
                continue;
            }
            if self.last_scan < o.at + SETTLE {
                self.opens.push(o);
                continue;
            }
            // Only when something from outside was about: an open by a process of another
            // PID namespace (a node agent reading the image) is no exec in this pod.
            if self.evidence.is_some_and(|e| e + MATCH_WINDOW >= o.at) {
                self.judge_unseen(&o);
            }
        }
    }

    /// Names a process: its executable, or for a script (`/bin/sh /usr/bin/which ps`) the
    /// script, as the kernel opened it; for a zombie, its command name found like a shell
    /// would. The same name an `IN_OPEN` gives, so learning and alerting agree however the
    /// process was seen.
    fn program_of(&mut self, pid: i32, exe: &str) -> String {
        if exe == "?" {
            let Some(comm) = comm_of(pid) else {
                return exe.to_string();
            };
            return self
                .roots
                .values()
                .next()
                .and_then(|r| in_path(r, &comm))
                .unwrap_or_else(|| format!("[{comm}]"));
        }
        let argv = procfs::read_cmdline(pid);
        let candidates = script_candidates(&argv);
        if candidates.is_empty() {
            return exe.to_string();
        }
        let Ok(root) = resolve::Root::of(pid) else {
            return exe.to_string();
        };
        let cwd = procfs::read_link(pid, "cwd").unwrap_or_else(|| "/".into());
        for c in candidates {
            let Some(real) = real_in(&root, &resolve::absolutize(&cwd, c)) else {
                continue;
            };
            if self
                .scripts
                .chain(&root, &real, &mut self.expected)
                .is_some_and(|chain| chain.iter().any(|p| p == exe))
            {
                return real;
            }
        }
        exe.to_string()
    }

    fn sighted(&mut self, program: &str) {
        if self.sightings.len() > 4096 {
            self.sightings.remove(0);
        }
        self.sightings.push((Instant::now(), program.to_string()));
    }

    fn scan(&mut self, prev_last: Option<i32>, last: Option<i32>) {
        self.last_scan = Instant::now();
        let keepers = self.shared.keepers.live();
        let now = Instant::now();
        let mut fresh: Vec<(u64, i32, i32)> = Vec::new();
        let mut alive = HashSet::new();
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
        // Pids allocated since the last look that are neither listed nor a live thread: a
        // process that came and went between two looks.
        let unseen = match (prev_last, last) {
            (Some(p), Some(c)) if p != c => match pid_range(p, c, self.pid_max, 4096) {
                Some(pids) => pids.into_iter().any(|pid| {
                    !alive.contains(&pid) && !std::path::Path::new(&format!("/proc/{pid}")).exists()
                }),
                None => true,
            },
            _ => false,
        };
        let outsiderish = |c: &Class| {
            matches!(
                c,
                Class::Outside { .. } | Class::Entering | Class::Pending(_)
            )
        };
        let vanished = self
            .procs
            .iter()
            .any(|(pid, p)| !alive.contains(pid) && outsiderish(&p.class));
        self.procs.retain(|pid, _| alive.contains(pid));
        self.judged.retain(|(pid, _)| alive.contains(pid));
        // Parents before children.
        fresh.sort();
        for (start, pid, ppid) in fresh {
            let exe = procfs::exe_of(pid);
            // A zombie (exited, not yet reaped) is named from its command name.
            let program = self.program_of(pid, &exe);
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
                classify(pid, parent, &program, now)
            };
            let parent_program = self.procs.get(&ppid).map(|p| p.program.clone());
            self.procs.insert(
                pid,
                Proc {
                    start,
                    class: class.clone(),
                    exe: exe.clone(),
                    program: program.clone(),
                },
            );
            // A fork without exec runs its parent's program: no exec, no open to account for.
            let forked_only = parent_program.as_deref() == Some(program.as_str());
            if !forked_only && program != "?" && !program.starts_with('[') {
                self.sighted(&program);
            }
            let traced = self.tracer.as_ref().is_some_and(|t| t.is_traced(pid));
            if let (Class::Outside { root }, false) =
                (&class, (traced || forked_only) && root_of(&class) != pid)
            {
                let root = *root;
                let parent = if root == pid {
                    model::OUTSIDE_PARENT.to_string()
                } else {
                    parent_program.unwrap_or_else(|| procfs::exe_of(ppid))
                };
                self.judge(pid, root, parent, &program, false);
            }
        }
        // Settle launchers, runtime helpers, and programs that outside processes exec'd.
        let pids: Vec<i32> = self.procs.keys().copied().collect();
        for pid in pids {
            let Some((class, old_exe, old_program)) = self
                .procs
                .get(&pid)
                .map(|p| (p.class.clone(), p.exe.clone(), p.program.clone()))
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
                            let program = self.program_of(pid, &exe);
                            self.judge(pid, pid, model::OUTSIDE_PARENT.into(), &program, false);
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
                    let program = self.program_of(pid, &exe);
                    self.sighted(&program);
                    let session_root = match class {
                        Class::Entering => true,
                        Class::Outside { root } => root == pid,
                        _ => false,
                    };
                    if session_root && base_name(&program) == "nfguard-launch" {
                        // Seen before its exec (runc's init, a shell's fork): a launcher gets
                        // its grace whenever it is first seen as one.
                        if let Some(p) = self.procs.get_mut(&pid) {
                            p.exe = exe;
                            p.program = program;
                            p.class = Class::Pending(Instant::now());
                        }
                        continue;
                    }
                    let (root, parent) = match class {
                        Class::Outside { root } => (root, old_program),
                        _ => (pid, model::OUTSIDE_PARENT.to_string()),
                    };
                    if let Some(p) = self.procs.get_mut(&pid) {
                        p.exe = exe;
                        p.program = program.clone();
                        p.class = Class::Outside { root };
                    }
                    self.judge(pid, root, parent, &program, false);
                }
                _ => {}
            }
        }
        if unseen || vanished || self.procs.values().any(|p| outsiderish(&p.class)) {
            self.evidence = Some(Instant::now());
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

    /// Learns `exe` as an outside program, or says whether the model has it. The model
    /// keeps one flat set of outside programs (`parent: "(outside)"`): a program seen only
    /// through its open has no known parent, and a name must mean the same whether its
    /// process was seen or not. `parent` is still honoured when a model names it (older
    /// models learned `{exe, parent: <the program that started it>}`).
    fn learn_or_check(&self, exe: &str, parent: Option<&str>) -> bool {
        let obs = [Observation::Exec {
            parent: model::OUTSIDE_PARENT.to_string(),
            exe: exe.to_string(),
        }];
        let mode = self.shared.mode();
        let known = {
            let m = self.shared.model.read().unwrap_or_else(|p| p.into_inner());
            let d = decide::decide(mode, &m, &obs, None);
            if mode != Mode::Learn {
                d.outside.is_empty()
                    || parent.is_some_and(|parent| {
                        m.allows(&Observation::Exec {
                            parent: parent.to_string(),
                            exe: exe.to_string(),
                        })
                    })
            } else if d.outside.is_empty() {
                true
            } else {
                drop(m);
                let mut m = self.shared.model.write().unwrap_or_else(|p| p.into_inner());
                if m.learn(&obs[0]) {
                    self.shared
                        .model_changed
                        .store(true, std::sync::atomic::Ordering::Release);
                }
                true
            }
        };
        known
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
        let mode = self.shared.mode();
        let known = self.learn_or_check(exe, Some(&parent));
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

    /// An exec known only from its open: the process was gone before /proc was read.
    fn judge_unseen(&mut self, o: &Open) {
        let mode = self.shared.mode();
        let known = self.learn_or_check(&o.path, None);
        if mode == Mode::Learn || (known && self.opts.policy != ExecSessions::Allow) {
            return;
        }
        let gone = "it had exited before /proc was read, so its pid, parent, user, argv and \
                    cwd are unknown (-1, -1, 4294967295, [], ?)";
        let why = if known {
            format!("{REASON} (break-glass: nfguard.io/exec-sessions=allow; in the model): {}, seen only as it was opened for exec; {gone}", o.path)
        } else {
            let late = if mode == Mode::Enforce && self.opts.policy == ExecSessions::Deny {
                "; too late to kill"
            } else {
                ""
            };
            format!(
                "{REASON}: {} is not in the model; seen only as it was opened for exec; {gone}{late}",
                o.path
            )
        };
        let mut context = self.shared.base_context.clone();
        if let Some(c) = self.shared.keepers.container(o.keeper) {
            context.container = c;
        }
        if context.image.is_none() {
            context.image = self.shared.images.get(&context.container).cloned();
        }
        context.session = Some(format!("outside-{UNSEEN}"));
        let who = Subject {
            pid: -1,
            ppid: -1,
            uid: u32::MAX,
            exe: o.path.clone(),
            argv: Vec::new(),
            cwd: "?".into(),
            ancestors: Vec::new(),
        };
        let j = Judgement {
            verdict: Verdict::Alert,
            kind: Kind::OutsideModel,
            mode,
            reason: why,
        };
        // The program: for an exec event, path names what was executed.
        let event = Event::process(
            self.shared.events.stamp(),
            j,
            "execve",
            who,
            Some(o.path.clone()),
            context,
        );
        self.shared.events.emit(event);
    }

    /// A followed process reached an exec event.
    fn on_traced_exec(&mut self, pid: i32, exec: trace::ExecStop) {
        let (root, previous) = match self.procs.get(&pid) {
            Some(p) => (
                match p.class {
                    Class::Outside { root } => root,
                    _ => pid,
                },
                p.program.clone(),
            ),
            None => (pid, exec.previous_exe.clone()),
        };
        let program = self.program_of(pid, &exec.exe);
        self.sighted(&program);
        if base_name(&program) == "nfguard-launch" {
            // An exec session wrapped by the injector's exec rule (`runc exec`
            // of the launcher): it gets a launcher's grace to hand its listener
            // over, and is no longer followed: from now on its own filter
            // reports its every exec to the supervisor, which refuses with EPERM.
            if let Some(t) = self.tracer.as_mut() {
                t.detach(pid);
            }
            if let Some(p) = self.procs.get_mut(&pid) {
                p.exe = exec.exe.clone();
                p.program = program;
                p.class = Class::Pending(Instant::now());
            }
            return;
        }
        if let Some(p) = self.procs.get_mut(&pid) {
            p.exe = exec.exe.clone();
            p.program = program.clone();
        }
        self.judge(pid, root, previous, &program, true);
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
        let keepers = self.shared.keepers.live();
        // A zombie has no mount namespace left to compare: with one container, it is that one.
        let only = || {
            (keepers.len() == 1)
                .then(|| keepers.values().next().map(|(_, c)| c.clone()))
                .flatten()
        };
        context.container = container_of(&keepers, pid)
            .or_else(only)
            .unwrap_or_else(|| context.container.clone());
        if context.image.is_none() {
            context.image = self.shared.images.get(&context.container).cloned();
        }
        let start_note = start
            .map(|s| format!(" (start {s} ticks after boot)"))
            .unwrap_or_default();
        context.session = Some(format!("outside-{root}"));
        let who = Subject {
            pid,
            ppid: status.as_ref().map(|s| s.ppid).unwrap_or(0),
            uid: status.as_ref().map(|s| s.uid[1]).unwrap_or(u32::MAX),
            exe: exe.clone().unwrap_or_else(|| procfs::exe_of(pid)),
            argv: procfs::read_cmdline(pid),
            cwd: procfs::read_link(pid, "cwd").unwrap_or_default(),
            ancestors: procfs::ancestors(pid, 0, 8),
        };
        let j = Judgement {
            verdict,
            kind: Kind::OutsideModel,
            mode,
            reason: format!("{reason}{start_note}"),
        };
        // The program: for an exec event, path names what was executed.
        let event = Event::process(self.shared.events.stamp(), j, "execve", who, exe, context);
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

/// The process to read keeper `pid`'s root and mount namespace from. The
/// keeper is not dumpable (so the workload cannot reach it): without
/// CAP_SYS_PTRACE its /proc/<pid>/root and ns/mnt cannot be opened. Its
/// first child, the command, was forked in the same root and namespace and
/// is dumpable (its `children` file is readable by anyone).
fn keeper_view(pid: i32) -> i32 {
    if procfs::read_link(pid, "ns/mnt").is_some() {
        return pid;
    }
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(pid)
}

/// The container of `pid`: the keeper whose mount namespace it shares.
fn container_of(keepers: &BTreeMap<i32, (u64, String)>, pid: i32) -> Option<String> {
    let ns = procfs::read_link(pid, "ns/mnt")?;
    keepers
        .iter()
        .find(|(k, _)| {
            procfs::read_link(keeper_view(**k), "ns/mnt").as_deref() == Some(ns.as_str())
        })
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
    #[test]
    fn new_pids_are_the_range_since_the_last_look_wrapping_at_pid_max() {
        assert_eq!(pid_range(10, 13, 100, 10), Some(vec![11, 12, 13]));
        assert_eq!(pid_range(98, 2, 100, 10), Some(vec![99, 100, 1, 2]));
        assert_eq!(
            pid_range(10, 30, 100, 5),
            None,
            "too many: assume one was missed"
        );
    }

    #[test]
    fn a_script_is_named_by_its_path_in_the_argv_the_kernel_built() {
        // Debian's `which` starts with `#! /bin/sh`: the kernel allows the space.
        assert_eq!(
            parse_shebang(b"#! /bin/sh\nset -e\n"),
            Some(("/bin/sh".into(), None))
        );
        assert_eq!(
            parse_shebang(b"#!/bin/sh -e\n"),
            Some(("/bin/sh".into(), Some("-e".into())))
        );
        assert_eq!(
            parse_shebang(b"#!/usr/bin/env python3\n"),
            Some(("/usr/bin/env".into(), Some("python3".into())))
        );
        assert_eq!(parse_shebang(b"\x7fELF"), None);
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            script_candidates(&argv(&["/bin/sh", "/usr/bin/which", "ps"])),
            ["/usr/bin/which"]
        );
        assert_eq!(
            script_candidates(&argv(&["/bin/sh", "-e", "/usr/local/bin/probe"])),
            ["/usr/local/bin/probe"]
        );
        assert!(script_candidates(&argv(&["sh", "-c"])).is_empty());
        assert!(script_candidates(&argv(&["ps"])).is_empty());
    }
}
