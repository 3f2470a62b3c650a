//! Fork, filter, hand over, trace, keep: the launcher's life after its arguments.

use alloc::collections::BTreeSet;
use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_int;
use core::fmt::Display;

use crate::config::{hello, path_env, resolve_command, KeeperState, LaunchConfig};
use crate::config::{EXIT_NOT_FOUND, EXIT_SETUP, EXIT_USAGE};
use crate::sys::{self, ptrace, Fd, SigSet};
use crate::trace::{self, exec_line, Report};

/// Forwarded to the command; everything else keeps its default disposition.
const FORWARDED: [c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

const MS: u64 = 1_000_000;

/// `nfguard-launch: {msg}` on stderr, as one write.
pub fn warn(msg: impl Display) {
    sys::write_stderr(format!("nfguard-launch: {msg}\n").as_bytes());
}

/// Says why and exits with `code`.
pub fn fail(code: i32, msg: impl Display) -> ! {
    warn(msg);
    sys::exit(code)
}

/// Runs the launcher; returns the exit status for the process.
pub fn run(cfg: LaunchConfig) -> i32 {
    let program = match resolve_command(&cfg.command[0], path_env().as_deref()) {
        Some(p) => p,
        None => fail(
            EXIT_NOT_FOUND,
            format_args!("{}: command not found", cfg.command[0]),
        ),
    };
    let to_c = |s: &[u8]| {
        CString::new(s).unwrap_or_else(|_| fail(EXIT_USAGE, "argument contains a NUL byte"))
    };
    let c_program = to_c(&program);
    let c_args: Vec<CString> = cfg.command.iter().map(|a| to_c(a.as_bytes())).collect();
    let bpf: &[libc::sock_filter] = if cfg.datagrams {
        &crate::FILTER_DATAGRAMS
    } else {
        &crate::FILTER
    };

    // Block the signals we handle before forking, so none is lost between fork
    // and the signalfd; the child unblocks everything before exec.
    let mut handled = SigSet::empty();
    handled.add(libc::SIGCHLD);
    for s in FORWARDED {
        handled.add(s);
    }
    if let Err(e) = sys::sigprocmask(libc::SIG_BLOCK, &handled) {
        fail(EXIT_SETUP, format_args!("sigprocmask: {e}"));
    }
    let (keeper_end, child_end) = sys::socketpair_seqpacket()
        .unwrap_or_else(|e| fail(EXIT_SETUP, format_args!("socketpair: {e}")));

    let child = match sys::fork() {
        Err(e) => fail(EXIT_SETUP, format_args!("fork: {e}")),
        Ok(0) => {
            drop(keeper_end);
            child_exec(child_end, (bpf, cfg.datagrams), &c_program, &c_args)
        }
        Ok(child) => child,
    };
    // Before the listener reaches this process: from here on a task of the
    // workload (same uid, no CAP_SYS_PTRACE) can neither ptrace the keeper,
    // nor take its fds (pidfd_getfd), nor read or write its memory, nor open
    // its /proc/<pid>/fd or mem. The child is a copy made before this call,
    // so it stays dumpable (and the keeper can trace it).
    if let Err(e) = sys::set_dumpable(false) {
        warn(format_args!(
            "cannot make the keeper non-dumpable ({e}): the workload could take its listener"
        ));
    }
    drop(child_end);
    if let Err(e) = sys::set_child_subreaper() {
        warn(format_args!(
            "cannot become subreaper ({e}); orphans are reaped by init"
        ));
    }
    // The workload gets a process group of its own, so kill(0, sig) from it
    // reaches the workload only, not the keeper (nor `nfguard run`). Both
    // sides call setpgid: whichever runs first makes the group.
    let _ = sys::setpgid(child, child);
    // A background keeper writing its warnings to a terminal with TOSTOP set
    // would be stopped by SIGTTOU: blocked, the write goes through.
    let mut ttou = SigSet::empty();
    ttou.add(libc::SIGTTOU);
    let _ = sys::sigprocmask(libc::SIG_BLOCK, &ttou);
    let listener = match sys::recv_fd(&keeper_end) {
        Ok((fd, _)) => fd,
        Err(e) => {
            // The child failed before handing over the listener; it has said why.
            sys::kill(child, libc::SIGKILL);
            let status = wait_for(child);
            if status == 0 {
                fail(
                    EXIT_SETUP,
                    format_args!("the command's filter was not handed over: {e}"),
                );
            }
            return status;
        }
    };
    // Follow the whole workload: every task it creates is attached as it is
    // created, and all of it dies with the keeper (EXITKILL).
    let traced = cfg.trace
        && match sys::ptrace_seize(child, TRACE_OPTIONS) {
            Ok(()) => true,
            Err(e) => {
                warn(format_args!(
                    "cannot trace the workload ({e}); execs are checked without seeing what the kernel loads (docs/security.md)"
                ));
                false
            }
        };
    // Interactive use (`nfguard run -- sh` at a terminal): the workload's
    // group gets the terminal, as a shell gives it to a foreground job, so
    // Ctrl-C and job control reach the workload.
    let tty = match sys::foreground_group(0) {
        Some(fg) if fg == sys::getpgrp() => sys::set_foreground_group(0, child).ok().map(|_| fg),
        _ => None,
    };
    // Let the child go on to exec: traced (or not) from its first instruction.
    let _ = sys::write_all(&keeper_end, if traced { b"T" } else { b"U" });
    drop(keeper_end);
    let sfd =
        sys::signalfd(&handled).unwrap_or_else(|e| fail(EXIT_SETUP, format_args!("signalfd: {e}")));
    let now = sys::now_ns();
    let mut k = Keeper {
        cfg: &cfg,
        child,
        listener,
        sfd,
        traced,
        exe: sys::own_exe().map(|e| String::from_utf8_lossy(&e).into_owned()),
        tty,
        conn: None,
        handoffs: 0,
        next_try: now,
        backoff: 20 * MS,
        started_waiting: now,
        warned: false,
        connected_at: 0,
        last_disconnect_warning: None,
        seq: 0,
        pending: Vec::new(),
        tracees: BTreeSet::new(),
        status: None,
        drain: None,
        no_children: false,
    };
    if traced {
        k.tracees.insert(child);
    }
    k.run()
}

/// Every descendant and thread is traced from its creation; exec stops are
/// reported; the whole tree is killed if the keeper dies.
const TRACE_OPTIONS: libc::c_ulong = ptrace::O_TRACEEXEC
    | ptrace::O_TRACEFORK
    | ptrace::O_TRACEVFORK
    | ptrace::O_TRACECLONE
    | ptrace::O_EXITKILL;

/// The child: install the filter, hand the listener to the keeper, wait
/// until the keeper traces it, exec.
fn child_exec(
    to_keeper: Fd,
    (bpf, datagrams): (&[libc::sock_filter], bool),
    program: &CString,
    args: &[CString],
) -> ! {
    // The command starts with every signal unblocked and at its default
    // action, as under any init: the keeper's own mask and the SIGPIPE
    // ignore (both inherited across exec) are not the command's business.
    let _ = sys::sigprocmask(libc::SIG_SETMASK, &SigSet::empty());
    sys::reset_sigpipe();
    // Dumpable, whatever the keeper is: until the exec the supervisor reads
    // this process's memory (the path of its execve), and the keeper must be
    // allowed to trace it.
    let _ = sys::set_dumpable(true);
    let _ = sys::setpgid(0, 0);
    if let Err(e) = sys::set_no_new_privs() {
        fail(EXIT_SETUP, format_args!("prctl(PR_SET_NO_NEW_PRIVS): {e}"));
    }
    let listener = match sys::install_filter_with_listener(bpf) {
        Ok(fd) => fd,
        Err(e) => fail(
            EXIT_SETUP,
            format_args!("seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER): {e}"),
        ),
    };
    // From here until execve, only syscalls the filter does not notify:
    // sendmsg, read, close, exit (policy/src/lib.rs keeps it that way). The
    // program that inspects datagrams notifies every sendmsg but one that
    // carries the handover flag: this one, which nobody could answer yet.
    let flags = if datagrams {
        nfguard_policy::HANDOVER_FLAG as c_int
    } else {
        0
    };
    if let Err(e) = sys::send_fd(&to_keeper, b"listener", listener.raw(), flags) {
        fail(
            EXIT_SETUP,
            format_args!("handing the listener to the keeper: {e}"),
        );
    }
    drop(listener);
    // The keeper answers once it traces us (or knows it cannot): exec before
    // that and the first program's exec stop would not be seen. No answer
    // means the keeper is gone: nothing would hold the listener, so stop.
    let mut go = [0u8; 1];
    loop {
        match sys::read(&to_keeper, &mut go) {
            Ok(1) => break,
            Err(e) if e.0 == libc::EINTR => continue,
            _ => fail(
                EXIT_SETUP,
                "the keeper went away before the command started",
            ),
        }
    }
    drop(to_keeper);
    if datagrams {
        // The flag let the handover through; from now on it lets nothing
        // through. Without the seal the command would have a way around
        // datagram inspection: better not to start it.
        if let Err(e) = sys::install_filter(&crate::SEAL) {
            fail(
                EXIT_SETUP,
                format_args!("seccomp(SECCOMP_SET_MODE_FILTER) of the seal: {e}"),
            );
        }
    }
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(core::ptr::null());
    let err = sys::execv(program, &argv);
    let code = if err.0 == libc::ENOENT {
        EXIT_NOT_FOUND
    } else {
        126
    };
    fail(
        code,
        format_args!("{}: {}", program.to_string_lossy(), err.desc()),
    )
}

/// The status a shell would report: the exit code, or 128 + the signal.
/// Every signal number counts: the nix-based keeper could not represent
/// real-time signals (34 and up), lost such a status and then never exited.
fn status_code(status: c_int) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(128 + libc::WTERMSIG(status))
    } else {
        None
    }
}

fn wait_for(child: libc::pid_t) -> i32 {
    loop {
        match sys::waitpid(child, 0) {
            Ok(Some((_, s))) => {
                if let Some(code) = status_code(s) {
                    return code;
                }
            }
            Ok(None) => {}
            Err(e) if e.0 == libc::EINTR => continue,
            Err(_) => return EXIT_SETUP,
        }
    }
}

/// How long a supervisor must keep a handover before a disconnect resets the
/// backoff (one that closes at once is retried ever more slowly, up to 0.5 s).
const STABLE: u64 = 1_000 * MS;

/// The longest line the supervisor may send (a verdict is about 50 bytes).
const MAX_LINE: usize = 4096;

/// An exec stop waiting for the supervisor's verdict (the task stays stopped).
struct Pending {
    seq: u64,
    /// The task, stopped at PTRACE_EVENT_EXEC (its thread group id).
    pid: libc::pid_t,
    /// The thread that called execve.
    tid: libc::pid_t,
}

/// The connection to the supervisor, non-blocking once the hello is sent.
struct Conn {
    fd: Fd,
    /// Lines not yet written (the socket was full).
    out: Vec<u8>,
    /// Bytes read, up to the next newline.
    input: Vec<u8>,
}

/// After the command exited: the rest of the tree got SIGTERM; SIGKILL at `kill_at`.
struct Drain {
    kill_at: u64,
    killed: bool,
    /// When to look again for tasks that vanished without a report (a safety net).
    next_prune: u64,
}

/// The keeper's state between two polls.
struct Keeper<'a> {
    cfg: &'a LaunchConfig,
    child: libc::pid_t,
    listener: Fd,
    sfd: Fd,
    traced: bool,
    exe: Option<String>,
    /// The terminal was given to the workload's group; this group takes it back.
    tty: Option<libc::pid_t>,
    conn: Option<Conn>,
    handoffs: u32,
    next_try: u64,
    backoff: u64,
    started_waiting: u64,
    warned: bool,
    connected_at: u64,
    last_disconnect_warning: Option<u64>,
    seq: u64,
    pending: Vec<Pending>,
    /// Every task of the workload known alive (tids: threads too), when traced.
    tracees: BTreeSet<libc::pid_t>,
    /// The command's exit status, once it has exited.
    status: Option<i32>,
    drain: Option<Drain>,
    /// The last wait found no child and no tracee at all (ECHILD).
    no_children: bool,
}

impl Keeper<'_> {
    /// The keeper's loop: hand the listener over (again after each
    /// supervisor restart), follow the workload, forward signals, reap, and
    /// return the command's exit status once nothing of the workload is left.
    fn run(&mut self) -> i32 {
        loop {
            self.connect_if_due();
            if let Some(code) = self.finished() {
                return code;
            }
            let timeout = self.timeout_ms();
            let conn_events = match &self.conn {
                Some(c) if !c.out.is_empty() => libc::POLLIN | libc::POLLOUT,
                _ => libc::POLLIN,
            };
            let mut fds = [
                libc::pollfd {
                    fd: self.sfd.raw(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.conn.as_ref().map_or(-1, |c| c.fd.raw()),
                    events: conn_events,
                    revents: 0,
                },
            ];
            let nfds = if self.conn.is_some() { 2 } else { 1 };
            match sys::poll(&mut fds[..nfds], timeout) {
                Ok(()) => {}
                Err(e) if e.0 == libc::EINTR => {}
                Err(e) => fail(EXIT_SETUP, format_args!("poll: {e}")),
            }
            if fds[0].revents != 0 {
                self.signals();
            }
            if nfds == 2 && fds[1].revents != 0 {
                self.connection(fds[1].revents);
            }
            self.drain_tick();
        }
    }

    /// The command's status once it has exited and nothing else is left.
    fn finished(&self) -> Option<i32> {
        self.status
            .filter(|_| self.no_children && self.tracees.is_empty())
    }

    fn timeout_ms(&self) -> c_int {
        let now = sys::now_ns();
        let mut until: Option<u64> = None;
        let mut at = |t: u64| until = Some(until.map_or(t, |u| u.min(t)));
        if self.conn.is_none() {
            at(self.next_try);
        }
        if let Some(d) = &self.drain {
            at(if d.killed { d.next_prune } else { d.kill_at });
        }
        match until {
            // Whole milliseconds, rounded down (as Duration::as_millis).
            Some(t) => (t.saturating_sub(now) / MS).min(1000) as c_int,
            None => -1,
        }
    }

    fn connect_if_due(&mut self) {
        if self.conn.is_some() || sys::now_ns() < self.next_try {
            return;
        }
        match sys::connect_unix(&self.cfg.socket) {
            Ok(s) => {
                let msg = hello(
                    self.cfg,
                    &KeeperState {
                        child: self.child,
                        handoffs: self.handoffs,
                        traced: self.traced,
                        exe: self.exe.clone(),
                    },
                );
                match sys::send_fd(&s, msg.as_bytes(), self.listener.raw(), 0) {
                    Ok(()) => {
                        self.handoffs += 1;
                        self.connected_at = sys::now_ns();
                        // From now on the keeper never waits on the socket.
                        let _ = sys::set_nonblocking(&s);
                        let mut conn = Conn {
                            fd: s,
                            out: Vec::new(),
                            input: Vec::new(),
                        };
                        // Exec stops still waiting (a previous supervisor
                        // died before answering): ask this one.
                        for p in &self.pending {
                            conn.out
                                .extend_from_slice(exec_line(p.pid, p.tid, p.seq).as_bytes());
                        }
                        self.conn = Some(conn);
                        self.flush();
                    }
                    Err(e) => warn(format_args!("handing over the listener: {e}")),
                }
            }
            Err(e) => {
                if !self.warned && sys::now_ns().saturating_sub(self.started_waiting) > 5_000 * MS {
                    warn(format_args!(
                        "waiting for the supervisor at {}: {e}",
                        String::from_utf8_lossy(&self.cfg.socket)
                    ));
                    self.warned = true;
                }
            }
        }
        if self.conn.is_none() {
            self.next_try = sys::now_ns() + self.backoff;
            self.backoff = (self.backoff * 2).min(500 * MS);
        }
    }

    fn signals(&mut self) {
        while let Ok(Some(sig)) = sys::read_signal(&self.sfd) {
            if sig == libc::SIGCHLD {
                self.wait_all();
            } else if self.status.is_none() {
                sys::kill(self.child, sig);
            } else {
                // The command is gone: the signal is for what is left of it.
                self.signal_rest(sig);
            }
        }
    }

    /// Takes every wait status there is (children and tracees).
    fn wait_all(&mut self) {
        loop {
            match sys::waitpid(-1, libc::WNOHANG | libc::__WALL) {
                Ok(None) => {
                    self.no_children = false;
                    return;
                }
                Ok(Some((pid, status))) => self.on_status(pid, status),
                Err(e) if e.0 == libc::EINTR => continue,
                Err(e) => {
                    self.no_children = e.0 == libc::ECHILD;
                    return;
                }
            }
        }
    }

    /// One task's change of state (ptrace(2), "Stopped states", for SEIZE).
    fn on_status(&mut self, pid: libc::pid_t, status: c_int) {
        match trace::classify(status) {
            Report::Gone(st) => {
                self.tracees.remove(&pid);
                self.pending.retain(|p| p.pid != pid);
                if pid == self.child && self.status.is_none() {
                    self.command_exited(st);
                }
            }
            Report::Exec => {
                // A non-leader thread that execs takes the leader's tid; the
                // event message is the tid it had (its old id is never
                // reported dead).
                let former = sys::ptrace_event_msg(pid)
                    .ok()
                    .and_then(|m| libc::pid_t::try_from(m).ok())
                    .unwrap_or(pid);
                if former != pid {
                    self.tracees.remove(&former);
                }
                self.tracees.insert(pid);
                self.seq += 1;
                let p = Pending {
                    seq: self.seq,
                    pid,
                    tid: former,
                };
                if let Some(c) = &mut self.conn {
                    c.out
                        .extend_from_slice(exec_line(p.pid, p.tid, p.seq).as_bytes());
                }
                self.pending.push(p);
                self.flush();
            }
            Report::NewTask => {
                // The new task is attached already; its own first stop may
                // even have been reported before this one.
                if let Some(new) = sys::ptrace_event_msg(pid)
                    .ok()
                    .and_then(|m| libc::pid_t::try_from(m).ok())
                {
                    self.tracees.insert(new);
                }
                self.tracees.insert(pid);
                let _ = sys::ptrace_cont(pid, 0);
            }
            Report::GroupStop => {
                self.tracees.insert(pid);
                let _ = sys::ptrace_listen(pid);
            }
            Report::EventStop | Report::OtherEvent => {
                self.tracees.insert(pid);
                let _ = sys::ptrace_cont(pid, 0);
            }
            Report::Signal(sig) => {
                let _ = sys::ptrace_cont(pid, sig);
            }
            Report::Ignore => {}
        }
    }

    /// The command has exited: give the terminal back, and end the rest of
    /// the workload (class 7 of issue 11: nothing runs on unsupervised).
    fn command_exited(&mut self, status: c_int) {
        self.status = Some(status_code(status).unwrap_or(EXIT_SETUP));
        if let Some(pg) = self.tty.take() {
            let _ = sys::set_foreground_group(0, pg);
        }
        let now = sys::now_ns();
        self.drain = Some(Drain {
            kill_at: now.saturating_add(self.cfg.grace_ms.saturating_mul(MS)),
            killed: false,
            next_prune: now,
        });
        self.signal_rest(libc::SIGTERM);
        // A stopped task would not see SIGTERM until continued.
        self.signal_rest(libc::SIGCONT);
        self.wait_all();
    }

    /// Sends `sig` to every task left of the workload: each traced task (kill
    /// with a thread's id signals its whole process); untraced, the
    /// workload's process group, all there is to go by (once the group is
    /// empty its id may be reused, so only while we still have children).
    fn signal_rest(&self, sig: c_int) {
        for &tid in &self.tracees {
            sys::kill(tid, sig);
        }
        if !self.traced && !self.no_children {
            sys::kill(-self.child, sig);
        }
    }

    fn drain_tick(&mut self) {
        let now = sys::now_ns();
        let Some(d) = &mut self.drain else { return };
        if !d.killed {
            if now < d.kill_at {
                return;
            }
            d.killed = true;
            d.next_prune = now + 1_000 * MS;
            self.signal_rest(libc::SIGKILL);
            return;
        }
        if now >= d.next_prune {
            d.next_prune = now + 1_000 * MS;
            // Each task's end is reported to us; this only guards against a
            // report we did not expect never coming (the keeper would wait
            // forever for a task that no longer exists).
            self.tracees
                .retain(|&tid| sys::try_kill(tid, 0).map_or_else(|e| e.0 != libc::ESRCH, |_| true));
            self.wait_all();
        }
    }

    fn connection(&mut self, revents: libc::c_short) {
        let mut closed = false;
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            closed = self.read_verdicts();
        }
        if !closed && revents & libc::POLLOUT != 0 {
            self.flush();
            closed = self.conn.is_none();
        }
        if closed {
            self.disconnected();
        }
    }

    /// Reads what the supervisor sent and carries out its verdicts; true when
    /// the connection is over (it closed, failed, or sent something that is
    /// not a verdict).
    fn read_verdicts(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        let mut verdicts = Vec::new();
        let mut over = false;
        if let Some(c) = &mut self.conn {
            'reading: loop {
                match sys::read(&c.fd, &mut buf) {
                    Ok(0) => over = true,
                    Ok(n) => c.input.extend_from_slice(&buf[..n]),
                    Err(e) if e.0 == libc::EAGAIN => break,
                    Err(e) if e.0 == libc::EINTR => continue,
                    Err(_) => over = true,
                }
                while let Some(end) = c.input.iter().position(|b| *b == b'\n') {
                    match trace::parse_verdict(&c.input[..end]) {
                        Some(v) => verdicts.push(v),
                        None => {
                            warn(
                                "the supervisor sent something other than a verdict; reconnecting",
                            );
                            over = true;
                            break 'reading;
                        }
                    }
                    c.input.drain(..=end);
                }
                if c.input.len() > MAX_LINE {
                    warn("the supervisor sent an over-long line; reconnecting");
                    over = true;
                }
                if over {
                    break;
                }
            }
        } else {
            over = true;
        }
        for v in verdicts {
            self.apply(v);
        }
        over
    }

    /// Carries out a verdict on a pending exec stop.
    fn apply(&mut self, v: trace::Verdict) {
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.seq == v.seq && p.pid == v.pid)
        else {
            // Answered already (by a supervisor that died after answering),
            // or the task died meanwhile.
            return;
        };
        let p = self.pending.remove(i);
        if v.resume {
            let _ = sys::ptrace_cont(p.pid, 0);
        } else {
            // Delivered while the task is stopped at the exec: the program
            // the kernel loaded never runs an instruction.
            sys::kill(p.pid, libc::SIGKILL);
        }
    }

    /// Writes what the socket takes now; drops the connection on an error.
    fn flush(&mut self) {
        let Some(c) = &mut self.conn else { return };
        while !c.out.is_empty() {
            match sys::send_some(&c.fd, &c.out) {
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.0 == libc::EAGAIN => return,
                Err(e) if e.0 == libc::EINTR => continue,
                Err(_) => {
                    self.disconnected();
                    return;
                }
            }
        }
    }

    /// The supervisor went away (died or restarts): exec stops stay pending,
    /// notified calls wait, and the keeper comes back to the next one.
    fn disconnected(&mut self) {
        if self.conn.take().is_none() {
            return;
        }
        // The supervisor also closes when the filter has no user left, i.e.
        // when the workload has just ended: reap before worrying.
        self.wait_all();
        if self.finished().is_some() {
            return;
        }
        let now = sys::now_ns();
        if now.saturating_sub(self.connected_at) >= STABLE {
            // It served, then went: come back as soon as it does.
            self.backoff = 20 * MS;
            self.next_try = now;
        } else {
            // It closed right after the handover (a bad hello, another
            // protocol version): keep backing off, do not spin.
            self.next_try = now + self.backoff;
            self.backoff = (self.backoff * 2).min(500 * MS);
        }
        if self
            .last_disconnect_warning
            .is_none_or(|t| now.saturating_sub(t) >= 10_000 * MS)
        {
            warn("supervisor disconnected; notified syscalls wait until it is back");
            self.last_disconnect_warning = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::status_code;

    #[test]
    fn exit_codes_and_signals_read_as_a_shell_reports_them() {
        assert_eq!(status_code(3 << 8), Some(3));
        assert_eq!(status_code(libc::SIGTERM), Some(143));
        assert_eq!(
            status_code(libc::SIGRTMIN() + 3),
            Some(128 + libc::SIGRTMIN() + 3)
        );
        assert_eq!(status_code(libc::SIGKILL | 0x80), Some(137)); // core dumped
        assert_eq!(status_code(0x137f), None); // stopped by SIGSTOP
    }
}
