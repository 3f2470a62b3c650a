//! The supervisor: answers every notification of every listener handed to it.
//!
//! One thread per listener sleeps in poll(2) on it (with the kernel's
//! synchronous wake-up, the notifying task and this thread trade the CPU
//! directly) and takes each notification through five layers, each its own
//! module, dependencies running one way:
//!
//! ```text
//! registers ── decode ──► Call ── inspect (target, resolve) ──► Request
//!           (policy table)          memory, /proc, real paths     observations, plan
//!    Request ── decide (model, mode) ──► Decision ── here: learn, emit, answer
//!                                                 └─ emulate (enforce: make the call) / exec
//! ```
//!
//! - `decode`: pure; the registers as the policy table (`nfguard_policy`)
//!   says, into a typed call;
//! - `inspect`: reads the target (`target`: its memory, /proc, fds) and
//!   resolves paths in its root, into a [`inspect::Request`];
//! - `decide`: pure; the mode and the model make a [`decide::Decision`];
//! - `emulate`: performs an allowed call for the target in enforce mode;
//! - `exec`: the proof an exec needs, since it cannot be emulated;
//!   `exec_verify`: under a tracing keeper, that proof, made at the exec stop
//!   on what the kernel loaded (the keeper's connection, `keeper_link`, is
//!   read by one thread per keeper, started here).
//!
//! Rules of the hot path (they are the security argument):
//! - Every notification gets an answer. A failure to inspect becomes a denial
//!   in enforce mode and an event in every mode (`failure` says whose failure
//!   it is); nothing panics here.
//! - After reading the target's memory, the notification id is checked again
//!   (SECCOMP_IOCTL_NOTIF_ID_VALID): if the task died meanwhile its pid may
//!   name another process, whose memory we must not have judged.
//! - In enforce mode an allow is never a bare `SECCOMP_USER_NOTIF_FLAG_CONTINUE`
//!   on an argument that lives in the target's memory, because another thread
//!   can rewrite it after we read it. Instead the supervisor performs the call
//!   itself on what it checked (`emulate`), or checks what the kernel loaded
//!   at the exec stop (`exec_verify`; untraced, proves that no other task can
//!   write that memory, `exec`). Arguments passed in registers (socket's
//!   family, type, protocol) cannot change and continue.

pub(crate) mod decide;
pub(crate) mod decode;
pub(crate) mod emulate;
mod exec;
pub(crate) mod exec_verify;
pub(crate) mod failure;
mod files;
pub(crate) mod inspect;
pub(crate) mod ledger;
pub(crate) mod msg;
pub(crate) mod own;
pub(crate) mod request;
mod sctp;
pub(crate) mod sends;
mod signals;
mod sockets;
pub(crate) mod target;

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use nfguard_common::Mode;
use nfguard_policy::Decoder;

use crate::event::{Category, Context, Event, Judgement, Kind, NetDetails, Subject, Verdict};
use crate::fanout::EventSink;
use crate::journal::{Journal, Pending};
use crate::metrics::{Decision as Answer, Gauges};
use crate::model::Model;
use crate::resolve::RootCache;
use crate::{procfs, sys};

use emulate::{respond, Emulator, Reply};
use failure::Failure;
use ledger::{InsideExecs, Keepers};
use own::OwnFiles;
use request::{Plan, Request, Scope};
use target::Target;

/// State shared by every listener thread of one supervisor.
pub struct Shared {
    mode: AtomicU8,
    pub model: RwLock<Model>,
    pub model_changed: AtomicBool,
    pub events: EventSink,
    pub base_context: Context,
    /// Images by container name (from the injector).
    pub images: HashMap<String, String>,
    /// When supervision started: files changed since are "not from the image".
    /// Read from the kernel's coarse clock, as file timestamps are.
    pub started: SystemTime,
    pub stats: Stats,
    /// Keepers that handed over a listener (for the exec-session watcher).
    pub keepers: Keepers,
    /// Execs let through from inside (for the exec-session watcher).
    pub inside_execs: InsideExecs,
    /// What was decided, counted per item for the console (console_link; off without one).
    pub observed: crate::observed::Ledger,
    /// nfguard's own files, which no workload may touch.
    pub own_files: OwnFiles,
    emulator: Emulator,
    /// The listeners being served, for the liveness check.
    listeners: std::sync::Mutex<Vec<std::sync::Weak<Listener>>>,
    /// What was checked for each exec let through, until its exec stop.
    pub exec_tickets: exec_verify::ExecTickets,
}

/// How long one notification may keep its listener busy before the
/// supervisor calls itself stuck (a blocking connect is answered from a
/// worker thread, so a listener is normally busy for microseconds).
pub const STUCK: Duration = Duration::from_secs(10);

/// Counters for metrics and tests.
#[derive(Default)]
pub struct Stats {
    pub notifications: AtomicU64,
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
    pub emulated: AtomicU64,
    pub internal_errors: AtomicU64,
    /// Exec stops received from tracing keepers.
    pub exec_stops: AtomicU64,
}

fn mode_from_u8(v: u8) -> Mode {
    match v {
        0 => Mode::Learn,
        1 => Mode::Alert,
        _ => Mode::Enforce,
    }
}

fn mode_to_u8(m: Mode) -> u8 {
    match m {
        Mode::Learn => 0,
        Mode::Alert => 1,
        Mode::Enforce => 2,
    }
}

impl Shared {
    pub fn new(mode: Mode, model: Model, events: EventSink, base_context: Context) -> Shared {
        Shared {
            mode: AtomicU8::new(mode_to_u8(mode)),
            model: RwLock::new(model),
            model_changed: AtomicBool::new(false),
            events,
            base_context,
            images: HashMap::new(),
            started: sys::realtime_coarse(),
            stats: Stats::default(),
            keepers: Keepers::default(),
            inside_execs: InsideExecs::default(),
            observed: crate::observed::Ledger::default(),
            own_files: OwnFiles::default(),
            emulator: Emulator::default(),
            listeners: std::sync::Mutex::new(Vec::new()),
            exec_tickets: Default::default(),
        }
    }

    /// Is every listener answering? `Err` names one that has been busy with
    /// a single notification for longer than [`STUCK`] (the sidecar's
    /// liveness probe then restarts the supervisor; the keepers hand their
    /// listeners to the next one, and the in-flight journal has the call).
    pub fn liveness(&self) -> Result<(), String> {
        let now = monotonic_ns();
        let mut ls = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        ls.retain(|w| w.strong_count() > 0);
        for l in ls.iter().filter_map(std::sync::Weak::upgrade) {
            let since = l.busy_since.load(Ordering::Acquire);
            if since != 0 && now.saturating_sub(since) > STUCK.as_nanos() as u64 {
                return Err(format!(
                    "the listener of container {} (keeper {}) has been busy with one call for {} s",
                    l.container,
                    l.keeper_pid,
                    now.saturating_sub(since) / 1_000_000_000
                ));
            }
        }
        Ok(())
    }

    /// Is `pid` one of nfguard's processes: this supervisor, or a keeper that
    /// handed it a listener?
    ///
    /// A thread id counts as its process: a tid of the supervisor's names the
    /// supervisor to kill(2), ptrace(2) and /proc alike.
    pub fn is_nfguard(&self, pid: i32) -> bool {
        let me = std::process::id() as i32;
        let ours = |p: i32| p == me || self.keepers.live().contains_key(&p);
        if pid <= 0 {
            return false;
        }
        ours(pid) || procfs::read_status(pid).is_some_and(|s| s.tgid != pid && ours(s.tgid))
    }

    /// Is one of nfguard's processes in process group `pgrp`?
    pub fn nfguard_group(&self, pgrp: i32) -> bool {
        let ours = procfs::read_pgrp(std::process::id() as i32);
        ours == Some(pgrp)
            || self
                .keepers
                .live()
                .keys()
                .any(|k| procfs::read_pgrp(*k) == Some(pgrp))
    }

    pub fn mode(&self) -> Mode {
        mode_from_u8(self.mode.load(Ordering::Acquire))
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode_to_u8(mode), Ordering::Release);
    }

    pub fn model_snapshot(&self) -> Model {
        self.model.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `GET /metrics`: the counters, this supervisor's gauges, and the
    /// notifying sinks' own.
    pub fn render_metrics(&self) -> String {
        let model_entries = {
            let m = self.model.read().unwrap_or_else(|p| p.into_inner());
            [
                ("processes", m.processes.len()),
                ("sockets", m.network.sockets.len()),
                ("listen", m.network.listen.len()),
                ("connect", m.network.connect.len()),
                ("unix", m.network.unix.len()),
                ("filesystem", m.filesystem.len()),
            ]
        };
        let g = Gauges {
            mode: self.mode(),
            notifications: self.stats.notifications.load(Ordering::Relaxed),
            emulated: self.stats.emulated.load(Ordering::Relaxed),
            internal_errors: self.stats.internal_errors.load(Ordering::Relaxed),
            model_entries,
            activity_records: self.events.activity.len(),
            events_written: self.events.written(),
        };
        let mut out = crate::metrics::render(&self.events.metrics, &g);
        if let Some(d) = self.events.dispatcher() {
            d.render_metrics(&mut out);
        }
        out
    }
}

/// A listener handed over by a keeper.
pub struct Listener {
    pub fd: OwnedFd,
    pub container: String,
    /// Every event of this listener's process tree carries this id: an exec
    /// session's id, or `<container>-<keeper pid>` for the NF's own tree.
    pub session: String,
    /// The API user who opened an exec session, when the injector's exec rule wrapped it.
    pub user: Option<String>,
    /// The keeper's pid in our PID namespace (SO_PEERCRED).
    pub keeper_pid: i32,
    /// Kept open: the keeper learns of our death when it closes.
    pub connection: Option<std::os::unix::net::UnixStream>,
    /// Where this listener's in-flight journal lives (beside the socket).
    pub journal: Option<std::path::PathBuf>,
    /// When (monotonic ns) the notification being handled was received; 0 idle.
    pub busy_since: AtomicU64,
    /// The keeper follows the workload with ptrace and sends exec stops
    /// (keeper_link.rs): an exec is then verified on what the kernel loaded.
    pub traced: bool,
    /// The keeper's executable as it says (its /proc/<pid>/exe cannot be read
    /// without CAP_SYS_PTRACE: the keeper is not dumpable).
    pub keeper_exe: Option<String>,
    /// Which of the two programs the keeper installed (its hello says).
    pub datagrams: nfguard_common::Datagrams,
}

/// Nanoseconds of the monotonic clock, 1 at least (0 means idle).
fn monotonic_ns() -> u64 {
    sys::monotonic_ns().max(1)
}

/// The category of events about a syscall of this decoder.
fn category(d: Decoder) -> Category {
    match d {
        Decoder::Exec { .. }
        | Decoder::Debug { .. }
        | Decoder::Signal(_)
        | Decoder::SetOwner { .. }
        | Decoder::Limits
        | Decoder::Reaches(_)
        | Decoder::Forbidden
        | Decoder::Refused => Category::Process,
        Decoder::Socket
        | Decoder::Connect
        | Decoder::Bind
        | Decoder::Listen
        | Decoder::Send(_)
        | Decoder::SockOpt { .. } => Category::Network,
        Decoder::Open { .. }
        | Decoder::Unlink { .. }
        | Decoder::Rmdir { .. }
        | Decoder::Rename { .. }
        | Decoder::Link { .. }
        | Decoder::Symlink { .. }
        | Decoder::Mkdir { .. }
        | Decoder::Mknod { .. }
        | Decoder::Chmod { .. }
        | Decoder::Fchmod { .. }
        | Decoder::Xattr { .. } => Category::Filesystem,
    }
}

/// One notification, from receipt to answer.
struct Handler<'a> {
    shared: &'a Shared,
    listener: &'a Arc<Listener>,
    keeper_exe: &'a str,
    n: sys::seccomp_notif,
    /// The notification's journal slot, freed when the handler is done (or
    /// moved to whoever answers an emulated call).
    pending: std::cell::Cell<Option<Pending>>,
    /// The root of the listener's last task (one statx per call when it is shared).
    roots: &'a RootCache,
}

impl Handler<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.listener.fd.as_fd()
    }

    fn tid(&self) -> i32 {
        self.n.pid as i32
    }

    fn syscall(&self) -> &'static str {
        nfguard_policy::syscall_name(self.n.data.nr)
    }

    fn continue_call(&self) {
        self.shared.stats.allowed.fetch_add(1, Ordering::Relaxed);
        self.shared
            .events
            .metrics
            .decision(self.n.data.nr, Answer::Allow);
        respond(
            self.fd(),
            self.n.id,
            0,
            0,
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        );
    }

    fn deny(&self, errno: i32) {
        self.shared.stats.denied.fetch_add(1, Ordering::Relaxed);
        self.shared
            .events
            .metrics
            .decision(self.n.data.nr, Answer::Deny);
        respond(self.fd(), self.n.id, 0, errno, 0);
    }

    fn still_valid(&self) -> bool {
        sys::notif_id_valid(self.fd(), self.n.id)
    }

    fn handle(&self) {
        // Decision latency (metrics.rs): recorded when this function returns.
        let _timer = self.shared.events.metrics.timer();
        let mode = self.shared.mode();
        let target = Target::new(self.tid(), self.roots);
        let Some(rule) = nfguard_policy::rule(self.n.data.nr) else {
            // Not ours to judge (a filter of a newer version?): let the kernel decide.
            return self.continue_call();
        };
        let category = category(rule.decoder);
        if self.tid() == 0 {
            // The task is not visible in our PID namespace: we cannot inspect it
            // (the pod needs shareProcessNamespace: true).
            return self.internal_error(
                mode,
                &target,
                category,
                "the calling task is outside the supervisor's PID namespace",
            );
        }
        let Some(call) = decode::decode(rule, &self.n.data.args) else {
            // A refused rule never notifies; if one did, the kernel decides.
            return self.continue_call();
        };
        let is_nfguard = |pid: i32| self.shared.is_nfguard(pid);
        let nfguard_group = |pgrp: i32| self.shared.nfguard_group(pgrp);
        let scope = Scope {
            mode,
            keeper_exe: self.keeper_exe,
            started: self.shared.started,
            emulator: &self.shared.emulator,
            own_files: &self.shared.own_files,
            is_nfguard: &is_nfguard,
            nfguard_group: &nfguard_group,
            traced: self.listener.traced,
            inside_execs: &self.shared.inside_execs,
        };
        match inspect::inspect(&call, (rule.name, rule.why), &target, &scope) {
            Ok(req) => {
                if self.still_valid() {
                    self.decide(mode, &target, req)
                }
            }
            Err(Failure::Gone) => {}
            Err(Failure::Target(e)) => {
                if !self.still_valid() {
                    return;
                }
                // The call would fail in the kernel too (bad pointer, missing
                // file, ...). In enforce mode answer it ourselves: continuing would
                // let a racing thread turn the failing argument into a working one.
                if mode == Mode::Enforce {
                    self.deny(e)
                } else {
                    self.continue_call()
                }
            }
            Err(Failure::Refused { errno, why }) => {
                if !self.still_valid() {
                    return;
                }
                let verdict = verdict_of(mode);
                let reason = format!("nfguard will not judge this call: {why}");
                self.emit_bare(mode, &target, category, verdict, Kind::Unverifiable, reason);
                if mode == Mode::Enforce {
                    self.deny(errno)
                } else {
                    self.continue_call()
                }
            }
            Err(Failure::Forbidden(why)) => {
                if !self.still_valid() {
                    return;
                }
                self.emit_bare(mode, &target, category, Verdict::Deny, Kind::Forbidden, why);
                self.deny(libc::EACCES)
            }
            Err(f @ Failure::Internal { .. }) => {
                self.internal_error(mode, &target, category, &f.to_string())
            }
        }
    }

    fn internal_error(&self, mode: Mode, target: &Target<'_>, category: Category, why: &str) {
        self.shared
            .stats
            .internal_errors
            .fetch_add(1, Ordering::Relaxed);
        self.emit_bare(
            mode,
            target,
            category,
            verdict_of(mode),
            Kind::InternalError,
            format!("nfguard could not inspect this call: {why}"),
        );
        if mode == Mode::Enforce {
            self.deny(libc::EPERM)
        } else {
            self.continue_call()
        }
    }

    /// Applies the mode to an inspected call and answers.
    fn decide(&self, mode: Mode, target: &Target<'_>, req: Request) {
        // console_link: counts and first/last seen of each item, for the
        // console's provenance (a relaxed load when no console is set).
        self.shared.observed.note(
            &self.listener.container,
            req.observations
                .iter()
                .filter(|o| !decide::always_allowed(o)),
        );
        let (flag, allow) = {
            let model = self.shared.model.read().unwrap_or_else(|p| p.into_inner());
            let d = decide::decide(mode, &model, &req.observations, req.special.as_ref());
            if mode == Mode::Learn && !d.outside.is_empty() {
                let learn: Vec<_> = d.outside.iter().map(|o| (*o).clone()).collect();
                drop(model);
                let mut model = self.shared.model.write().unwrap_or_else(|p| p.into_inner());
                for o in &learn {
                    model.learn(o);
                }
                self.shared.model_changed.store(true, Ordering::Release);
            }
            (d.flag, d.allow)
        };
        match flag {
            Some(f) => self.emit(mode, target, &req, f.verdict, f.kind, f.reason),
            None => self.note_allowed(&req),
        }
        if !allow {
            return self.deny(req.deny_errno);
        }
        self.proceed(mode, target, req)
    }

    /// Lets an allowed call happen: continue outside enforce mode, or as the
    /// request's plan says in enforce mode.
    fn proceed(&self, mode: Mode, target: &Target<'_>, mut req: Request) {
        // The exec stop that follows (a tracing keeper) is judged against
        // what was checked here: recorded before the answer lets it happen.
        if let Some(t) = req.ticket.take() {
            self.shared.exec_tickets.approve(self.tid(), t);
        }
        // Tell the exec watcher about an exec that is let through (and only
        // then: a refused exec never opens the file, and a note left for it
        // would hide the next exec of that program from outside the launcher).
        if let Some(program) = &req.exec_program {
            self.shared.inside_execs.note(program);
        }
        if mode != Mode::Enforce {
            return self.continue_call();
        }
        match req.plan {
            Plan::Continue => self.continue_call(),
            Plan::Emulate(em) => {
                self.shared.stats.emulated.fetch_add(1, Ordering::Relaxed);
                self.shared.stats.allowed.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .events
                    .metrics
                    .decision(self.n.data.nr, Answer::Allow);
                let reply = Reply {
                    listener: Arc::clone(self.listener),
                    id: self.n.id,
                    pending: self.pending.take(),
                };
                self.shared.emulator.perform(em, target, reply)
            }
        }
    }

    /// Forensics (timeline.rs): an allowed call joins the activity ring,
    /// from what was already decoded.
    fn note_allowed(&self, req: &Request) {
        self.shared.events.note_call(crate::timeline::Call {
            pid: self.tid(),
            session: &self.listener.session,
            syscall: self.syscall(),
            observation: req.observations.first(),
            path: req.path.as_deref(),
            address: req.address.as_deref(),
            port: req.port,
            argv: req.argv.as_deref(),
        });
    }

    // ---- events ----

    fn subject(&self, target: &Target<'_>, argv: Option<&[String]>) -> Subject {
        let status = target.status();
        Subject {
            pid: self.tid(),
            ppid: status.map(|s| s.ppid).unwrap_or(0),
            uid: status.map(|s| s.uid[1]).unwrap_or(u32::MAX),
            exe: target.exe().to_string(),
            argv: argv
                .map(<[String]>::to_vec)
                .unwrap_or_else(|| target.cmdline()),
            cwd: target.cwd(),
            ancestors: procfs::ancestors(self.tid(), self.listener.keeper_pid, 8),
        }
    }

    fn context(&self) -> Context {
        let mut context = self.shared.base_context.clone();
        context.container = self.listener.container.clone();
        context.session = Some(self.listener.session.clone());
        context.user = self.listener.user.clone();
        if context.image.is_none() {
            context.image = self.shared.images.get(&self.listener.container).cloned();
        }
        context
    }

    fn emit(
        &self,
        mode: Mode,
        target: &Target<'_>,
        req: &Request,
        verdict: Verdict,
        kind: Kind,
        reason: String,
    ) {
        let j = Judgement {
            verdict,
            kind,
            mode,
            reason,
        };
        let stamp = self.shared.events.stamp();
        let who = self.subject(target, req.argv.as_deref());
        let (syscall, context) = (self.syscall(), self.context());
        let event = match req.category {
            Category::Process => Event::process(stamp, j, syscall, who, req.path.clone(), context),
            Category::Network => Event::network(
                stamp,
                j,
                syscall,
                who,
                NetDetails {
                    op: req.op,
                    family: req.family.clone(),
                    protocol: req.protocol.clone(),
                    address: req.address.clone(),
                    port: req.port,
                    path: req.path.clone(),
                    datagrams: Some(self.listener.datagrams),
                },
                context,
            ),
            Category::Filesystem => {
                Event::filesystem(stamp, j, syscall, who, req.op, req.path.clone(), context)
            }
        };
        self.shared.events.emit(event);
    }

    /// An event about a call that could not be inspected (nothing decoded).
    fn emit_bare(
        &self,
        mode: Mode,
        target: &Target<'_>,
        category: Category,
        verdict: Verdict,
        kind: Kind,
        reason: String,
    ) {
        self.emit(mode, target, &inspect_less(category), verdict, kind, reason)
    }
}

/// An empty request of `category`, for events about calls not inspected.
fn inspect_less(category: Category) -> Request {
    Request {
        category,
        op: None,
        observations: Vec::new(),
        path: None,
        family: None,
        protocol: None,
        address: None,
        port: None,
        argv: None,
        special: None,
        plan: Plan::Continue,
        deny_errno: libc::EPERM,
        exec_program: None,
        ticket: None,
    }
}

fn verdict_of(mode: Mode) -> Verdict {
    if mode == Mode::Enforce {
        Verdict::Deny
    } else {
        Verdict::Alert
    }
}

/// Starts a thread serving `listener`.
pub fn spawn(
    shared: Arc<Shared>,
    listener: Listener,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let container = listener.container.clone();
    let listener = Arc::new(listener);
    shared
        .listeners
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Arc::downgrade(&listener));
    // The keeper connection's reader: exec stops, and the keeper's end.
    let reader = spawn_reader(Arc::clone(&shared), Arc::clone(&listener));
    std::thread::Builder::new()
        .name(format!("nfguard-{container}"))
        .spawn(move || serve(shared, listener, reader))
}

/// Starts the thread that serves `listener`'s keeper connection
/// (`keeper_link`): each exec stop is judged by the exec tickets
/// (`exec_verify`), a refusal or a flag is an event.
fn spawn_reader(
    shared: Arc<Shared>,
    listener: Arc<Listener>,
) -> Option<std::thread::JoinHandle<()>> {
    listener.connection.as_ref()?;
    let keeper = listener.keeper_pid;
    let spawned = std::thread::Builder::new()
        .name("nfguard-keeper".into())
        .spawn(move || {
            let Some(conn) = &listener.connection else {
                return;
            };
            let crash_at = exec_stop_crash_hook();
            let result = crate::keeper_link::serve(conn, keeper, |stop| {
                let n = shared.stats.exec_stops.fetch_add(1, Ordering::Relaxed) + 1;
                if crash_at.is_some_and(|at| n >= at) {
                    // Test hook: die with this exec stop received and unanswered.
                    std::process::abort();
                }
                let mode = shared.mode();
                let verdict = {
                    let model = shared.model.read().unwrap_or_else(|p| p.into_inner());
                    shared.exec_tickets.verify(&stop, &model, mode)
                };
                match verdict {
                    exec_verify::Verdict::Resume => true,
                    exec_verify::Verdict::Flag(r) => {
                        emit_exec_stop(&shared, &listener, mode, stop.pid, Verdict::Alert, r);
                        true
                    }
                    exec_verify::Verdict::Kill(r) => {
                        shared.stats.denied.fetch_add(1, Ordering::Relaxed);
                        emit_exec_stop(&shared, &listener, mode, stop.pid, Verdict::Deny, r);
                        false
                    }
                }
            });
            if let Err(e) = result {
                eprintln!("nfguard: {e}; closing its connection");
                let _ = conn.shutdown(std::net::Shutdown::Both);
            }
        });
    match spawned {
        Ok(h) => Some(h),
        Err(e) => {
            // Without it exec stops go unanswered: those tasks wait, stopped.
            eprintln!("nfguard: no thread for keeper {keeper}'s exec stops: {e}");
            None
        }
    }
}

/// The event for an exec stop refused or flagged: the task as it is now (the
/// new program's argv, stopped before running it).
fn emit_exec_stop(
    shared: &Shared,
    listener: &Listener,
    mode: Mode,
    pid: i32,
    verdict: Verdict,
    r: exec_verify::Refusal,
) {
    let status = procfs::read_status(pid);
    let who = Subject {
        pid,
        ppid: status.as_ref().map(|s| s.ppid).unwrap_or(0),
        uid: status.as_ref().map(|s| s.uid[1]).unwrap_or(u32::MAX),
        exe: procfs::exe_of(pid),
        argv: procfs::read_cmdline(pid),
        cwd: procfs::read_link(pid, "cwd").unwrap_or_default(),
        ancestors: procfs::ancestors(pid, listener.keeper_pid, 8),
    };
    let mut context = shared.base_context.clone();
    context.container = listener.container.clone();
    context.session = Some(listener.session.clone());
    context.user = listener.user.clone();
    if context.image.is_none() {
        context.image = shared.images.get(&listener.container).cloned();
    }
    let j = Judgement {
        verdict,
        kind: r.kind,
        mode,
        reason: r.reason,
    };
    let stamp = shared.events.stamp();
    shared.events.emit(Event::process(
        stamp,
        j,
        "execve",
        who,
        Some(r.loaded),
        context,
    ));
}

/// `NFGUARD_TEST_CRASH_AT_EXEC_STOP=N`: abort when the Nth exec stop arrives,
/// before answering it (tests of a restart with a stop pending only).
fn exec_stop_crash_hook() -> Option<u64> {
    std::env::var("NFGUARD_TEST_CRASH_AT_EXEC_STOP")
        .ok()?
        .parse()
        .ok()
}

/// Serves `listener` until no task uses its filter any more.
fn serve(
    shared: Arc<Shared>,
    listener: Arc<Listener>,
    mut reader: Option<std::thread::JoinHandle<()>>,
) {
    let fd = listener.fd.as_fd();
    // Calls made for tasks carry the task's umask already: this thread's own
    // umask must not narrow them again (the process's stays as it is).
    if let Err(e) = sys::thread_umask_zero() {
        eprintln!("nfguard: no umask of its own for this thread ({e}); files made for the workload may get narrower modes");
    }
    if let Err(e) = sys::notif_set_sync_wakeup(fd) {
        eprintln!("nfguard: synchronous wake-up unavailable ({e}); notifications cost more (linux 6.6+ has it)");
    }
    let keeper_exe = match (procfs::exe_of(listener.keeper_pid), &listener.keeper_exe) {
        (exe, Some(said)) if exe == "?" => said.clone(),
        (exe, _) => exe,
    };
    let journal = listener.journal.as_ref().and_then(|p| match Journal::open(p) {
        Ok(j) => Some(j),
        Err(e) => {
            eprintln!("nfguard: in-flight journal {} unavailable ({e}); a crash may leave a call waiting", p.display());
            None
        }
    });
    let crash_after = crash_hook();
    let roots = RootCache::default();
    let handle = |n: sys::seccomp_notif| {
        let pending = journal.as_ref().and_then(|j| j.record(&n));
        if let Some(limit) = crash_after {
            if shared.stats.notifications.load(Ordering::Relaxed) >= limit {
                // Test hook: die with the notification received and unanswered.
                std::process::abort();
            }
        }
        listener.busy_since.store(monotonic_ns(), Ordering::Release);
        Handler {
            shared: &shared,
            listener: &listener,
            keeper_exe: &keeper_exe,
            n,
            pending: std::cell::Cell::new(pending),
            roots: &roots,
        }
        .handle();
        listener.busy_since.store(0, Ordering::Release);
    };
    // What a previous supervisor received but did not answer: decide it now.
    if let Some(j) = &journal {
        for n in j.take_pending() {
            if sys::notif_id_valid(fd, n.id) {
                handle(n);
            }
        }
    }
    loop {
        let mut pfd = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
        match nix::poll::poll(&mut pfd, nix::poll::PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("nfguard: poll on the listener failed: {e}");
                return;
            }
        }
        let revents = pfd[0].revents().unwrap_or(nix::poll::PollFlags::empty());
        if revents.contains(nix::poll::PollFlags::POLLIN) {
            match sys::notif_recv(fd) {
                Ok(n) => {
                    shared.stats.notifications.fetch_add(1, Ordering::Relaxed);
                    handle(n);
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EINTR)) => {}
                Err(e) => {
                    eprintln!("nfguard: receiving a notification failed: {e}");
                    return;
                }
            }
        } else if revents.intersects(nix::poll::PollFlags::POLLHUP | nix::poll::PollFlags::POLLERR)
        {
            // No task uses the filter any more. The kernel says so before the
            // last task is reaped, so hold the keeper's connection until the
            // keeper itself closes it: a close from our side means "supervisor
            // gone" to the keeper, which would then hand the listener over again.
            // The connection's reader (keeper_link) ends when the keeper closes.
            if let Some(r) = reader.take() {
                let _ = r.join();
            }
            if let Some(p) = &listener.journal {
                let _ = std::fs::remove_file(p);
            }
            return;
        }
    }
}

/// `NFGUARD_TEST_CRASH_AFTER=N`: abort right after receiving the Nth
/// notification (tests of crash recovery only).
fn crash_hook() -> Option<u64> {
    std::env::var("NFGUARD_TEST_CRASH_AFTER").ok()?.parse().ok()
}
