//! The supervisor: answers every notification of every listener handed to it.
//!
//! One thread per listener sleeps in poll(2) on it (with the kernel's
//! synchronous wake-up, the notifying task and this thread trade the CPU
//! directly), decodes the syscall, checks it against the model and answers.
//!
//! Rules of the hot path (they are the security argument):
//! - Every notification gets an answer. A failure to inspect becomes a denial
//!   in enforce mode and an event in the others; nothing panics here.
//! - After reading the target's memory, the notification id is checked again
//!   (SECCOMP_IOCTL_NOTIF_ID_VALID): if the task died meanwhile its pid may
//!   name another process, whose memory we must not have judged.
//! - In enforce mode an allow is never a bare `SECCOMP_USER_NOTIF_FLAG_CONTINUE`
//!   on an argument that lives in the target's memory, because another thread
//!   can rewrite it after we read it. Instead the supervisor performs the call
//!   itself on what it checked (see `Allow::Emulate`), or proves that no other
//!   task can write that memory (exec: `memory_is_private`). Arguments passed in
//!   registers (socket's family, type, protocol) cannot change and continue.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use nfguard_common::Mode;

use crate::event::{Category, Context, Event, EventSink, Kind, Verdict};
use crate::journal::{Journal, Pending};
use crate::metrics::Decision;
use crate::model::{
    self, FileEntry, ListenEntry, Model, Observation, PeerEntry, SocketEntry, UnixEntry,
};
use crate::net::{self, SockAddr, UnixAddr};
use crate::resolve::{self, Resolved, Root, RootCache};
use crate::{filter, procfs, sys};
use std::rc::Rc;

/// Longest path read from a target (PATH_MAX).
const PATH_MAX: usize = 4096;
/// Most argv entries read for an event.
const MAX_ARGS: usize = 256;

/// State shared by every listener thread.
pub struct Shared {
    mode: AtomicU8,
    pub model: RwLock<Model>,
    pub model_changed: AtomicBool,
    pub events: EventSink,
    pub base_context: Context,
    /// Images by container name (from the injector).
    pub images: HashMap<String, String>,
    /// When supervision started: files changed after it are "not from the image".
    pub started: SystemTime,
    pub stats: Stats,
}

/// Counters for metrics and tests.
#[derive(Default)]
pub struct Stats {
    pub notifications: AtomicU64,
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
    pub emulated: AtomicU64,
    pub internal_errors: AtomicU64,
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
            started: SystemTime::now(),
            stats: Stats::default(),
        }
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
}

/// How an allowed call proceeds.
enum Allow {
    /// The kernel runs the call as asked (arguments proven stable).
    Continue,
    /// The supervisor runs the call on the arguments it checked.
    Emulate(Emulation),
}

enum Emulation {
    /// Open `fd` (O_PATH) again with these flags, install it in the target.
    Reopen {
        fd: OwnedFd,
        flags: i32,
        truncate_to: Option<i64>,
    },
    /// Create `name` in `dir`, install the new fd in the target.
    Create {
        dir: OwnedFd,
        name: String,
        flags: i32,
        mode: u32,
    },
    Unlink {
        dir: OwnedFd,
        name: String,
        flags: i32,
    },
    Rename {
        old_dir: OwnedFd,
        old: String,
        new_dir: OwnedFd,
        new: String,
        flags: u32,
    },
    Chmod {
        fd: OwnedFd,
        mode: u32,
    },
    Connect {
        sock: OwnedFd,
        addr: Vec<u8>,
    },
    Bind {
        sock: OwnedFd,
        addr: Vec<u8>,
    },
    Listen {
        sock: OwnedFd,
        backlog: i32,
    },
}

/// What a request is, for the model and for the event.
struct Request {
    category: Category,
    op: Option<&'static str>,
    observations: Vec<Observation>,
    path: Option<String>,
    family: Option<String>,
    protocol: Option<String>,
    address: Option<String>,
    port: Option<u16>,
    /// For exec: the new program's argv.
    argv: Option<Vec<String>>,
    /// An extra reason to flag the call even if the model allows it.
    special: Option<(Kind, String)>,
    /// How an allow proceeds in enforce mode.
    allow: Allow,
    /// Errno for a denial.
    deny_errno: i32,
}

impl Request {
    /// Records a file the call changes, as the model names it.
    fn touches(&mut self, exe: String, op: &str, path: String) {
        self.observations.push(Observation::File(FileEntry {
            exe,
            op: op.into(),
            path,
        }));
    }

    fn new(category: Category, op: Option<&'static str>, deny_errno: i32) -> Request {
        Request {
            category,
            op,
            observations: Vec::new(),
            path: None,
            family: None,
            protocol: None,
            address: None,
            port: None,
            argv: None,
            special: None,
            allow: Allow::Continue,
            deny_errno,
        }
    }
}

/// A failure to inspect a call.
enum Inspect {
    /// The notification is gone (task died or was interrupted): no answer is due.
    Gone,
    /// The call cannot succeed anyway; answer with this errno (enforce) or continue.
    Errno(i32),
    /// Something went wrong on our side.
    Internal(String),
}

impl From<io::Error> for Inspect {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::ESRCH) => Inspect::Gone,
            Some(code) => Inspect::Errno(code),
            None => Inspect::Internal(e.to_string()),
        }
    }
}

struct Handler<'a> {
    shared: &'a Shared,
    listener: &'a Arc<Listener>,
    keeper_exe: &'a str,
    n: sys::seccomp_notif,
    /// The notification's journal slot, freed when the handler is done (or
    /// moved to the thread that answers a blocking connect).
    pending: std::cell::Cell<Option<Pending>>,
    /// The root of the listener's last task (one statx per call when it is shared).
    roots: &'a RootCache,
    /// `/proc/<pid>/status` of the caller, read at most once per call.
    status: std::cell::OnceCell<Option<procfs::Status>>,
}

impl Handler<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.listener.fd.as_fd()
    }

    fn pid(&self) -> i32 {
        self.n.pid as i32
    }

    fn arg(&self, i: usize) -> u64 {
        self.n.data.args[i]
    }

    fn syscall(&self) -> &'static str {
        filter::syscall_name(self.n.data.nr)
    }

    fn answer(&self, error: i32, flags: u32) {
        let resp = sys::seccomp_notif_resp {
            id: self.n.id,
            val: 0,
            error: -error,
            flags,
        };
        // ENOENT: the task was interrupted or died meanwhile; nothing to answer.
        let _ = sys::notif_send(self.fd(), &resp);
    }

    fn continue_call(&self) {
        self.shared.stats.allowed.fetch_add(1, Ordering::Relaxed);
        self.shared
            .events
            .metrics
            .decision(self.n.data.nr, Decision::Allow);
        self.answer(0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32);
    }

    fn deny(&self, errno: i32) {
        self.shared.stats.denied.fetch_add(1, Ordering::Relaxed);
        self.shared
            .events
            .metrics
            .decision(self.n.data.nr, Decision::Deny);
        self.answer(errno, 0);
    }

    fn status(&self) -> Option<&procfs::Status> {
        self.status
            .get_or_init(|| procfs::read_status(self.pid()))
            .as_ref()
    }

    fn still_valid(&self) -> bool {
        sys::notif_id_valid(self.fd(), self.n.id)
    }

    fn handle(&self) {
        // Decision latency (metrics.rs): recorded when this function returns.
        let _timer = self.shared.events.metrics.timer();
        let mode = self.shared.mode();
        if self.pid() == 0 {
            // The task is not visible in our PID namespace: we cannot inspect it
            // (the pod needs shareProcessNamespace: true).
            self.internal_error(
                mode,
                "the calling task is outside the supervisor's PID namespace",
            );
            return;
        }
        let nr = self.n.data.nr as i64;
        let request = match nr {
            libc::SYS_execve | libc::SYS_execveat => self.exec_request(mode),
            libc::SYS_socket => self.socket_request(),
            libc::SYS_connect | libc::SYS_bind => self.sockaddr_request(nr),
            libc::SYS_listen => self.listen_request(),
            libc::SYS_open
            | libc::SYS_openat
            | libc::SYS_openat2
            | libc::SYS_creat
            | libc::SYS_truncate => self.open_request(nr),
            libc::SYS_unlink | libc::SYS_unlinkat => self.unlink_request(nr),
            libc::SYS_rename | libc::SYS_renameat | libc::SYS_renameat2 => self.rename_request(nr),
            libc::SYS_chmod | libc::SYS_fchmodat | 452 | libc::SYS_fchmod => self.chmod_request(nr),
            libc::SYS_ptrace | libc::SYS_process_vm_writev => self.debug_request(),
            _ => {
                // Not ours to judge (a filter of a newer version?): let the kernel decide.
                self.continue_call();
                return;
            }
        };
        match request {
            Ok(req) => {
                if !self.still_valid() {
                    return;
                }
                self.decide(mode, req)
            }
            Err(Inspect::Gone) => {}
            Err(Inspect::Errno(e)) => {
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
            Err(Inspect::Internal(why)) => self.internal_error(mode, &why),
        }
    }

    fn internal_error(&self, mode: Mode, why: &str) {
        self.shared
            .stats
            .internal_errors
            .fetch_add(1, Ordering::Relaxed);
        let mut req = Request::new(Category::Process, None, libc::EPERM);
        let nr = self.n.data.nr as i64;
        req.category = match nr {
            libc::SYS_socket | libc::SYS_connect | libc::SYS_bind | libc::SYS_listen => {
                Category::Network
            }
            libc::SYS_execve
            | libc::SYS_execveat
            | libc::SYS_ptrace
            | libc::SYS_process_vm_writev => Category::Process,
            _ => Category::Filesystem,
        };
        let verdict = if mode == Mode::Enforce {
            Verdict::Deny
        } else {
            Verdict::Alert
        };
        self.emit(
            mode,
            &req,
            verdict,
            Kind::InternalError,
            format!("nfguard could not inspect this call: {why}"),
        );
        if mode == Mode::Enforce {
            self.deny(libc::EPERM)
        } else {
            self.continue_call()
        }
    }

    /// Applies the mode to a decoded request and answers.
    fn decide(&self, mode: Mode, req: Request) {
        let outside: Vec<&Observation> = {
            let model = self.shared.model.read().unwrap_or_else(|p| p.into_inner());
            req.observations
                .iter()
                .filter(|o| !always_allowed(o) && !model.allows(o))
                .collect()
        };
        if mode == Mode::Learn {
            if !outside.is_empty() {
                let mut model = self.shared.model.write().unwrap_or_else(|p| p.into_inner());
                for o in &outside {
                    model.learn(o);
                }
                self.shared.model_changed.store(true, Ordering::Release);
            }
            self.note_allowed(&req);
            return self.proceed(mode, req);
        }
        let verdict = if mode == Mode::Enforce {
            Verdict::Deny
        } else {
            Verdict::Alert
        };
        // One event per call, naming every reason; its kind is the most telling one.
        let mut reasons: Vec<String> = outside.iter().map(|o| describe(o)).collect();
        let mut kind = (!outside.is_empty()).then_some(Kind::OutsideModel);
        if let Some((special, why)) = &req.special {
            if *special == Kind::Drift || kind.is_none() {
                kind = Some(*special);
            }
            reasons.push(why.clone());
        }
        let flagged = kind.is_some();
        if !flagged {
            self.note_allowed(&req);
        }
        if let Some(kind) = kind {
            self.emit(mode, &req, verdict, kind, reasons.join("; "));
        }
        if flagged && mode == Mode::Enforce {
            return self.deny(req.deny_errno);
        }
        self.proceed(mode, req)
    }

    /// Lets an allowed call happen: continue outside enforce mode, or as the
    /// request says in enforce mode.
    fn proceed(&self, mode: Mode, req: Request) {
        // Tell the exec watcher about an exec that is let through (and only
        // then: a refused exec never opens the file, and a note left for it
        // would hide the next exec of that program from outside the launcher).
        if let (Category::Process, Some(path)) = (req.category, &req.path) {
            if matches!(self.n.data.nr as i64, libc::SYS_execve | libc::SYS_execveat) {
                crate::outside::note_inside_exec(path);
            }
        }
        if mode != Mode::Enforce {
            return self.continue_call();
        }
        match req.allow {
            Allow::Continue => self.continue_call(),
            Allow::Emulate(em) => {
                self.shared.stats.emulated.fetch_add(1, Ordering::Relaxed);
                self.shared.stats.allowed.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .events
                    .metrics
                    .decision(self.n.data.nr, Decision::Allow);
                self.emulate(em)
            }
        }
    }

    /// Forensics (timeline.rs): an allowed call joins the activity ring,
    /// from what was already decoded.
    fn note_allowed(&self, req: &Request) {
        self.shared.events.note_call(crate::timeline::Call {
            pid: self.pid(),
            session: &self.listener.session,
            syscall: self.syscall(),
            observation: req.observations.first(),
            path: req.path.as_deref(),
            address: req.address.as_deref(),
            port: req.port,
            argv: req.argv.as_deref(),
        });
    }

    fn emulate(&self, em: Emulation) {
        let creds = || self.target_creds();
        let answer_result = |r: io::Result<()>| respond_result(self.fd(), self.n.id, r);
        let install = |r: io::Result<OwnedFd>, cloexec: bool| match r {
            Ok(fd) => {
                if let Err(e) = sys::notif_addfd(self.fd(), self.n.id, fd.as_fd(), cloexec, true) {
                    if e.raw_os_error() != Some(libc::ENOENT) {
                        self.answer(e.raw_os_error().unwrap_or(libc::EMFILE), 0);
                    }
                }
            }
            Err(e) => self.answer(e.raw_os_error().unwrap_or(libc::EACCES), 0),
        };
        match em {
            Emulation::Reopen {
                fd,
                flags,
                truncate_to,
            } => {
                let r = with_creds(creds(), || resolve::reopen(&fd, flags));
                match truncate_to {
                    Some(len) => answer_result(r.and_then(|f| sys::ftruncate(f.as_fd(), len))),
                    None => install(r, flags & libc::O_CLOEXEC != 0),
                }
            }
            Emulation::Create {
                dir,
                name,
                flags,
                mode,
            } => {
                let r = with_creds(creds(), || resolve::create_in(&dir, &name, flags, mode));
                install(r, flags & libc::O_CLOEXEC != 0)
            }
            Emulation::Unlink { dir, name, flags } => answer_result(with_creds(creds(), || {
                sys::unlinkat(dir.as_fd(), &resolve::cstring(&name)?, flags)
            })),
            Emulation::Rename {
                old_dir,
                old,
                new_dir,
                new,
                flags,
            } => answer_result(with_creds(creds(), || {
                sys::renameat2(
                    old_dir.as_fd(),
                    &resolve::cstring(&old)?,
                    new_dir.as_fd(),
                    &resolve::cstring(&new)?,
                    flags,
                )
            })),
            Emulation::Chmod { fd, mode } => answer_result(with_creds(creds(), || {
                let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
                sys::fchmodat(sys::cwd(), &resolve::cstring(&path)?, mode)
            })),
            Emulation::Connect { sock, addr } => {
                let blocking =
                    sys::get_status_flags(sock.as_fd()).map(|f| f & libc::O_NONBLOCK == 0);
                if blocking.unwrap_or(true) {
                    // A blocking connect can take minutes (SYN retries): answer
                    // from its own thread so other notifications are not held up.
                    let listener = Arc::clone(self.listener);
                    let id = self.n.id;
                    let pending = self.pending.take();
                    connect_pool().run(Box::new(move || {
                        let r = sys::connect_raw(sock.as_fd(), &addr);
                        respond_result(listener.fd.as_fd(), id, r);
                        drop(pending);
                    }));
                } else {
                    answer_result(sys::connect_raw(sock.as_fd(), &addr))
                }
            }
            Emulation::Bind { sock, addr } => {
                answer_result(with_creds(creds(), || sys::bind_raw(sock.as_fd(), &addr)))
            }
            Emulation::Listen { sock, backlog } => {
                answer_result(sys::listen(sock.as_fd(), backlog))
            }
        }
    }

    /// The rights an emulated call must run with, when they are not ours: the
    /// calling thread's fsuid, fsgid and supplementary groups. An error when
    /// they cannot be read, or differ from ours and we cannot switch: the call
    /// must then not be made with our rights.
    fn target_creds(&self) -> io::Result<Option<Creds>> {
        let ours = our_creds();
        // PIDFD_GET_INFO (linux 6.13) gives the ids without formatting all of
        // /proc/<pid>/status, which costs more than the rest of the call; the
        // common case (the sidecar runs with the NF's uid and gid) stops here.
        static NO_PIDFD_INFO: AtomicBool = AtomicBool::new(false);
        if !NO_PIDFD_INFO.load(Ordering::Relaxed) {
            match sys::pidfd_open_thread(self.pid()).and_then(|p| sys::pidfd_fs_ids(p.as_fd())) {
                Ok(ids) if ids == (ours.uid, ours.gid) => return Ok(None),
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Err(e),
                Err(_) => NO_PIDFD_INFO.store(true, Ordering::Relaxed),
            }
        }
        let st = self
            .status()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
        let (uid, gid) = (st.uid[3], st.gid[3]);
        if (uid, gid) == (ours.uid, ours.gid) {
            return Ok(None);
        }
        if !ours.can_switch {
            static SAID: AtomicBool = AtomicBool::new(false);
            if !SAID.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "nfguard: the workload runs as uid {uid} gid {gid} and the supervisor as uid {} gid {} without CAP_SETUID and CAP_SETGID: allowed writes, creates, unlinks and binds are refused in enforce mode rather than made with the supervisor's rights; run the sidecar with the workload's runAsUser and runAsGroup",
                    ours.uid, ours.gid
                );
            }
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        Ok(Some(Creds {
            uid,
            gid,
            groups: st.groups.clone(),
        }))
    }

    // ---- reading the target ----

    /// Reads the target's memory. EFAULT is the target's (a bad pointer: the
    /// kernel would say the same); a refusal is ours (no ptrace rights over it).
    fn read_mem(&self, addr: u64, buf: &mut [u8]) -> Result<usize, Inspect> {
        sys::read_process_memory(self.pid(), addr, buf).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Inspect::Internal(format!(
                "cannot read the memory of pid {}: {e} (the supervisor needs the workload's uid and its capabilities, or CAP_SYS_PTRACE)",
                self.pid()
            )),
            _ => Inspect::from(e),
        })
    }

    fn read_bytes(&self, addr: u64, len: usize) -> Result<Vec<u8>, Inspect> {
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let n = self.read_mem(addr + done as u64, &mut buf[done..])?;
            if n == 0 {
                return Err(Inspect::Errno(libc::EFAULT));
            }
            done += n;
        }
        Ok(buf)
    }

    /// Reads a NUL-terminated string, a page at a time (a read that crosses
    /// into an unmapped page fails whole, although the string may end before it).
    fn read_cstring(&self, addr: u64) -> Result<String, Inspect> {
        if addr == 0 {
            return Err(Inspect::Errno(libc::EFAULT));
        }
        let mut out = Vec::new();
        let mut at = addr;
        // Most paths are short: read 256 bytes first (never past the page,
        // whose neighbour may be unmapped), then larger chunks.
        let mut small = [0u8; 256];
        let mut big: Vec<u8> = Vec::new();
        while out.len() < PATH_MAX {
            let page_left = 4096 - (at % 4096) as usize;
            let first = out.is_empty() && big.is_empty();
            let want =
                page_left
                    .min(PATH_MAX - out.len())
                    .min(if first { small.len() } else { 4096 });
            let chunk = if first {
                &mut small[..want]
            } else {
                big.resize(4096, 0);
                &mut big[..want]
            };
            let n = self.read_mem(at, chunk)?;
            if n == 0 {
                return Err(Inspect::Errno(libc::EFAULT));
            }
            if let Some(end) = chunk[..n].iter().position(|c| *c == 0) {
                out.extend_from_slice(&chunk[..end]);
                return String::from_utf8(out)
                    .map_err(|_| Inspect::Internal("path is not UTF-8".into()));
            }
            out.extend_from_slice(&chunk[..n]);
            at += n as u64;
        }
        Err(Inspect::Errno(libc::ENAMETOOLONG))
    }

    fn read_argv(&self, addr: u64) -> Vec<String> {
        let mut argv = Vec::new();
        if addr == 0 {
            return argv;
        }
        for i in 0..MAX_ARGS {
            let Ok(p) = self.read_bytes(addr + 8 * i as u64, 8) else {
                break;
            };
            let ptr = u64::from_ne_bytes(p.try_into().unwrap_or([0; 8]));
            if ptr == 0 {
                break;
            }
            match self.read_cstring(ptr) {
                Ok(s) => argv.push(s),
                Err(_) => break,
            }
        }
        argv
    }

    /// The directory a relative path starts from: the cwd or the directory fd.
    fn base_dir(&self, dirfd: i32) -> Result<String, Inspect> {
        let what = if dirfd == libc::AT_FDCWD {
            "cwd".to_string()
        } else {
            format!("fd/{dirfd}")
        };
        procfs::read_link(self.pid(), &what).ok_or(Inspect::Errno(libc::EBADF))
    }

    /// Reads a path argument and makes it absolute in the target's view.
    fn path_arg(&self, dirfd: i32, addr: u64) -> Result<String, Inspect> {
        let p = self.read_cstring(addr)?;
        if p.is_empty() {
            return Err(Inspect::Errno(libc::ENOENT));
        }
        if p.starts_with('/') {
            return Ok(p);
        }
        Ok(resolve::absolutize(&self.base_dir(dirfd)?, &p))
    }

    fn root(&self) -> Result<Rc<Root>, Inspect> {
        self.roots.root_of(self.pid()).map_err(Inspect::from)
    }

    fn exe(&self) -> String {
        procfs::exe_of(self.pid())
    }

    /// The socket behind fd `fd` of the target, duplicated into our table.
    fn target_socket(&self, fd: i32) -> Result<OwnedFd, Inspect> {
        let pidfd = sys::pidfd_open(self.pid())?;
        sys::pidfd_getfd(pidfd.as_fd(), fd).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Inspect::Internal(format!(
                "cannot take fd {fd} of pid {}: {e} (the supervisor needs ptrace rights over it)",
                self.pid()
            )),
            _ => Inspect::from(e),
        })
    }

    // ---- decoding each syscall ----

    fn exec_request(&self, mode: Mode) -> Result<Request, Inspect> {
        let nr = self.n.data.nr as i64;
        let (dirfd, path_addr, argv_addr, flags) = if nr == libc::SYS_execve {
            (libc::AT_FDCWD, self.arg(0), self.arg(1), 0)
        } else {
            (
                self.arg(0) as i32,
                self.arg(1),
                self.arg(2),
                self.arg(4) as i32,
            )
        };
        let mut req = Request::new(Category::Process, None, libc::EPERM);
        let raw = self.read_cstring(path_addr)?;
        let parent = {
            let exe = self.exe();
            if exe == self.keeper_exe {
                model::LAUNCHER_PARENT.to_string()
            } else {
                exe
            }
        };
        let fd_exec = raw.is_empty() && flags & libc::AT_EMPTY_PATH != 0;
        let (program, stat) = if fd_exec {
            // Fileless exec (execveat(fd, "", AT_EMPTY_PATH)): the program is the fd.
            let link = procfs::read_link(self.pid(), &format!("fd/{dirfd}"))
                .ok_or(Inspect::Errno(libc::EBADF))?;
            let file = self.target_socket(dirfd)?; // any fd, not only sockets
            let meta = std::fs::metadata(format!("/proc/self/fd/{}", file.as_raw_fd())).ok();
            (link, meta)
        } else {
            let abs = self.path_arg(dirfd, path_addr)?;
            let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
            let root = self.root()?;
            match resolve::resolve(&root, &abs, follow)? {
                Resolved::Existing { fd, real } => {
                    let meta = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok();
                    (real, meta)
                }
                Resolved::Missing { .. } => return Err(Inspect::Errno(libc::ENOENT)),
            }
        };
        req.path = Some(program.clone());
        if mode != Mode::Learn {
            req.argv = Some(self.read_argv(argv_addr));
        }
        if program.starts_with("/memfd:") || program.contains(" (deleted)") {
            req.special = Some((
                Kind::Drift,
                format!("fileless exec of {program}: the program is not a file of the image"),
            ));
        } else if let Some(meta) = &stat {
            let changed = SystemTime::UNIX_EPOCH + Duration::from_secs(meta.ctime().max(0) as u64);
            if changed > self.shared.started {
                req.special = Some((
                    Kind::Drift,
                    format!("{program} was created or modified after the workload started (binary not from the image)"),
                ));
            }
        }
        req.observations.push(Observation::Exec {
            parent,
            exe: program,
        });
        if mode == Mode::Enforce {
            // execve cannot be emulated: the kernel reads the path again. It is
            // safe to let it do so only if no other task can write the memory
            // (or, for an fd, the fd table) the kernel is about to read.
            match memory_is_private(self.pid(), fd_exec) {
                Ok(true) => {}
                Ok(false) => {
                    if req.special.is_none() {
                        req.special = Some((
                            Kind::Unverifiable,
                            "another running task shares this process's memory, so the checked path could be swapped before the kernel reads it".into(),
                        ));
                    }
                }
                Err(e) => {
                    return Err(Inspect::Internal(format!(
                        "checking for tasks that share memory: {e}"
                    )))
                }
            }
        }
        Ok(req)
    }

    fn socket_request(&self) -> Result<Request, Inspect> {
        let (family, kind, protocol) = (self.arg(0) as i32, self.arg(1) as i32, self.arg(2) as i32);
        let mut req = Request::new(Category::Network, Some("socket"), libc::EACCES);
        req.family = Some(net::family_name(family));
        req.protocol = Some(match family {
            libc::AF_INET | libc::AF_INET6 => net::protocol_name(kind, protocol),
            _ => protocol.to_string(),
        });
        req.observations.push(Observation::Socket(SocketEntry {
            exe: self.exe(),
            family: net::family_name(family),
            kind: net::type_name(kind),
            protocol,
        }));
        // All three arguments are registers: the kernel uses exactly what we saw.
        req.allow = Allow::Continue;
        Ok(req)
    }

    fn sockaddr_request(&self, nr: i64) -> Result<Request, Inspect> {
        let op = if nr == libc::SYS_connect {
            "connect"
        } else {
            "bind"
        };
        let (fd, addr_ptr, len) = (self.arg(0) as i32, self.arg(1), self.arg(2) as usize);
        let mut req = Request::new(Category::Network, Some(op), libc::EACCES);
        if !(2..=128).contains(&len) {
            return Err(Inspect::Errno(libc::EINVAL));
        }
        let bytes = self.read_bytes(addr_ptr, len)?;
        let sock = self.target_socket(fd)?;
        let family = sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_DOMAIN)
            .map_err(|_| Inspect::Errno(libc::ENOTSOCK))?;
        let kind = sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_TYPE).unwrap_or(0);
        let proto =
            sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_PROTOCOL).unwrap_or(0);
        let exe = self.exe();
        req.family = Some(net::family_name(family));
        let mut emulate_addr = bytes.clone();
        match net::parse_sockaddr(&bytes).map_err(|_| Inspect::Errno(libc::EINVAL))? {
            SockAddr::Inet { address, port } => {
                let protocol = net::protocol_name(kind, proto);
                req.protocol = Some(protocol.clone());
                req.address = Some(address.clone());
                req.port = Some(port);
                if op == "connect" {
                    req.observations.push(Observation::Connect(PeerEntry {
                        exe,
                        protocol,
                        address,
                        port,
                    }));
                } else if port != 0 {
                    req.observations.push(Observation::Listen(ListenEntry {
                        exe,
                        protocol,
                        port,
                    }));
                }
            }
            SockAddr::Unix(u) => {
                let shown = match &u {
                    UnixAddr::Path(p) => {
                        let abs = resolve::absolutize(&self.base_dir(libc::AT_FDCWD)?, p);
                        // Our bind/connect resolves a path in *our* root: reach the
                        // target's file through /proc/<pid>/root unless it is ours.
                        if procfs::read_link(self.pid(), "root").as_deref() != Some("/")
                            || !p.starts_with('/')
                            || !same_mount_ns(self.pid())
                        {
                            let via = format!("/proc/{}/root{}", self.pid(), abs);
                            if via.len() >= 108 {
                                req.special = Some((
                                    Kind::Unverifiable,
                                    format!("unix socket path {abs} is too long to act on safely"),
                                ));
                            } else {
                                let mut b = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
                                b.extend_from_slice(via.as_bytes());
                                b.push(0);
                                emulate_addr = b;
                            }
                        }
                        abs
                    }
                    UnixAddr::Abstract(name) => format!("@{name}"),
                    UnixAddr::Unnamed => String::new(),
                };
                if !shown.is_empty() {
                    req.path = Some(shown.clone());
                    req.observations.push(Observation::Unix(UnixEntry {
                        exe,
                        op: op.to_string(),
                        path: shown,
                    }));
                }
            }
            SockAddr::Unspec | SockAddr::Other(_) => {}
        }
        req.allow = Allow::Emulate(if op == "connect" {
            Emulation::Connect {
                sock,
                addr: emulate_addr,
            }
        } else {
            Emulation::Bind {
                sock,
                addr: emulate_addr,
            }
        });
        Ok(req)
    }

    fn listen_request(&self) -> Result<Request, Inspect> {
        let (fd, backlog) = (self.arg(0) as i32, self.arg(1) as i32);
        let mut req = Request::new(Category::Network, Some("listen"), libc::EACCES);
        let sock = self.target_socket(fd)?;
        let family = sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_DOMAIN)
            .map_err(|_| Inspect::Errno(libc::ENOTSOCK))?;
        req.family = Some(net::family_name(family));
        if family == libc::AF_INET || family == libc::AF_INET6 {
            let kind =
                sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_TYPE).unwrap_or(0);
            let proto =
                sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_PROTOCOL).unwrap_or(0);
            let name = sys::getsockname_raw(sock.as_fd())?;
            if let Ok(SockAddr::Inet { address, port }) = net::parse_sockaddr(&name) {
                let protocol = net::protocol_name(kind, proto);
                req.protocol = Some(protocol.clone());
                req.address = Some(address);
                req.port = Some(port);
                req.observations.push(Observation::Listen(ListenEntry {
                    exe: self.exe(),
                    protocol,
                    port,
                }));
            }
        }
        req.allow = Allow::Emulate(Emulation::Listen { sock, backlog });
        Ok(req)
    }

    fn open_request(&self, nr: i64) -> Result<Request, Inspect> {
        let (dirfd, path_addr, mut flags, mode, truncate_to) = match nr {
            libc::SYS_open => (
                libc::AT_FDCWD,
                self.arg(0),
                self.arg(1) as i32,
                self.arg(2) as u32,
                None,
            ),
            libc::SYS_creat => (
                libc::AT_FDCWD,
                self.arg(0),
                libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
                self.arg(1) as u32,
                None,
            ),
            libc::SYS_truncate => (
                libc::AT_FDCWD,
                self.arg(0),
                libc::O_WRONLY,
                0,
                Some(self.arg(1) as i64),
            ),
            libc::SYS_openat2 => {
                // struct open_how { u64 flags; u64 mode; u64 resolve; }
                if self.arg(3) < 24 {
                    return Err(Inspect::Errno(libc::EINVAL));
                }
                let how = self.read_bytes(self.arg(2), 24)?;
                let word = |i: usize| {
                    u64::from_ne_bytes(how[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]))
                };
                (
                    self.arg(0) as i32,
                    self.arg(1),
                    word(0) as i32,
                    word(1) as u32,
                    None,
                )
            }
            _ => (
                self.arg(0) as i32,
                self.arg(1),
                self.arg(2) as i32,
                self.arg(3) as u32,
                None,
            ),
        };
        let writes = flags & filter::OPEN_WRITE_MASK as i32 != 0;
        let abs = self.path_arg(dirfd, path_addr)?;
        let root = self.root()?;
        let follow = flags & libc::O_NOFOLLOW == 0
            && !(flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0);
        let resolved = resolve::resolve(&root, &abs, follow)?;
        let exe = self.exe();
        let (op, mut req);
        match resolved {
            Resolved::Existing { fd, real } => {
                if flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0 {
                    return Err(Inspect::Errno(libc::EEXIST));
                }
                op = if flags & libc::O_TMPFILE == libc::O_TMPFILE {
                    "create"
                } else {
                    "write"
                };
                req = Request::new(Category::Filesystem, Some(op), libc::EACCES);
                if writes {
                    if let Ok(st) = nix::sys::stat::fstat(fd.as_raw_fd()) {
                        let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
                        if regular && st.st_nlink > 1 {
                            req.special = Some((
                                Kind::Unverifiable,
                                format!("{real} has {} hard links: writing it through one name would change the others", st.st_nlink),
                            ));
                        }
                    }
                }
                req.path = Some(real.clone());
                if writes {
                    // The model has one op for create, write and truncate: a file
                    // created while learning is written later in normal operation.
                    req.touches(exe, "write", real);
                }
                flags &= !(libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW);
                req.allow = Allow::Emulate(Emulation::Reopen {
                    fd,
                    flags,
                    truncate_to,
                });
            }
            Resolved::Missing { dir, real, name } => {
                if flags & libc::O_CREAT == 0 {
                    return Err(Inspect::Errno(libc::ENOENT));
                }
                op = "create";
                req = Request::new(Category::Filesystem, Some(op), libc::EACCES);
                req.path = Some(real.clone());
                req.touches(exe, "write", real);
                let umask = self.status().map(|s| s.umask).unwrap_or(0o022);
                req.allow = Allow::Emulate(Emulation::Create {
                    dir,
                    name,
                    flags,
                    mode: mode & 0o7777 & !umask,
                });
            }
        }
        Ok(req)
    }

    fn unlink_request(&self, nr: i64) -> Result<Request, Inspect> {
        let (dirfd, path_addr, flags) = if nr == libc::SYS_unlink {
            (libc::AT_FDCWD, self.arg(0), 0)
        } else {
            (self.arg(0) as i32, self.arg(1), self.arg(2) as i32)
        };
        let abs = self.path_arg(dirfd, path_addr)?;
        let (dir, real, name) = resolve::resolve_parent(&*self.root()?, &abs)?;
        let mut req = Request::new(Category::Filesystem, Some("unlink"), libc::EACCES);
        req.path = Some(real.clone());
        req.touches(self.exe(), "unlink", real);
        req.allow = Allow::Emulate(Emulation::Unlink { dir, name, flags });
        Ok(req)
    }

    fn rename_request(&self, nr: i64) -> Result<Request, Inspect> {
        let (od, op_, nd, np, flags) = match nr {
            libc::SYS_rename => (libc::AT_FDCWD, self.arg(0), libc::AT_FDCWD, self.arg(1), 0),
            libc::SYS_renameat => (
                self.arg(0) as i32,
                self.arg(1),
                self.arg(2) as i32,
                self.arg(3),
                0,
            ),
            _ => (
                self.arg(0) as i32,
                self.arg(1),
                self.arg(2) as i32,
                self.arg(3),
                self.arg(4) as u32,
            ),
        };
        let root = self.root()?;
        let (old_dir, old_real, old) = resolve::resolve_parent(&root, &self.path_arg(od, op_)?)?;
        let (new_dir, new_real, new) = resolve::resolve_parent(&root, &self.path_arg(nd, np)?)?;
        let exe = self.exe();
        let mut req = Request::new(Category::Filesystem, Some("rename"), libc::EACCES);
        req.path = Some(format!("{old_real} -> {new_real}"));
        for p in [old_real, new_real] {
            req.touches(exe.clone(), "rename", p);
        }
        req.allow = Allow::Emulate(Emulation::Rename {
            old_dir,
            old,
            new_dir,
            new,
            flags,
        });
        Ok(req)
    }

    fn chmod_request(&self, nr: i64) -> Result<Request, Inspect> {
        let (fd, real, mode) = if nr == libc::SYS_fchmod {
            let f = self.target_socket(self.arg(0) as i32)?;
            let real = self.root()?.real_path(&f)?;
            (f, real, self.arg(1) as u32)
        } else {
            let (dirfd, p, mode, flags) = match nr {
                libc::SYS_chmod => (libc::AT_FDCWD, self.arg(0), self.arg(1) as u32, 0),
                libc::SYS_fchmodat => (self.arg(0) as i32, self.arg(1), self.arg(2) as u32, 0),
                _ => (
                    self.arg(0) as i32,
                    self.arg(1),
                    self.arg(2) as u32,
                    self.arg(3) as i32,
                ),
            };
            let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
            match resolve::resolve(&*self.root()?, &self.path_arg(dirfd, p)?, follow)? {
                Resolved::Existing { fd, real } => (fd, real, mode),
                Resolved::Missing { .. } => return Err(Inspect::Errno(libc::ENOENT)),
            }
        };
        let mut req = Request::new(Category::Filesystem, Some("chmod"), libc::EACCES);
        req.path = Some(real.clone());
        req.touches(self.exe(), "chmod", real);
        req.allow = Allow::Emulate(Emulation::Chmod {
            fd,
            mode: mode & 0o7777,
        });
        Ok(req)
    }

    fn debug_request(&self) -> Result<Request, Inspect> {
        let mut req = Request::new(Category::Process, None, libc::EPERM);
        req.special = Some((
            Kind::OutsideModel,
            format!(
                "{} can rewrite another process's memory; nfguard never learns it",
                self.syscall()
            ),
        ));
        // Arguments are registers (pids, requests): continuing is exact.
        req.allow = Allow::Continue;
        Ok(req)
    }

    // ---- events ----

    fn emit(&self, mode: Mode, req: &Request, verdict: Verdict, kind: Kind, reason: String) {
        let pid = self.pid();
        let status = self.status();
        let mut context = self.shared.base_context.clone();
        context.container = self.listener.container.clone();
        context.session = Some(self.listener.session.clone());
        context.user = self.listener.user.clone();
        if context.image.is_none() {
            context.image = self.shared.images.get(&self.listener.container).cloned();
        }
        let event = Event {
            id: self.shared.events.next_id(),
            time: crate::event::now_rfc3339(),
            category: req.category,
            verdict,
            kind,
            mode,
            syscall: self.syscall(),
            pid,
            ppid: status.map(|s| s.ppid).unwrap_or(0),
            uid: status.map(|s| s.uid[1]).unwrap_or(u32::MAX),
            exe: self.exe(),
            argv: req
                .argv
                .clone()
                .unwrap_or_else(|| procfs::read_cmdline(pid)),
            cwd: procfs::read_link(pid, "cwd").unwrap_or_default(),
            reason,
            path: req.path.clone(),
            op: req.op,
            family: req.family.clone(),
            protocol: req.protocol.clone(),
            address: req.address.clone(),
            port: req.port,
            ancestors: procfs::ancestors(pid, self.listener.keeper_pid, 8),
            context,
        };
        self.shared.events.emit(event);
    }
}

fn respond_result(listener: BorrowedFd<'_>, id: u64, r: io::Result<()>) {
    let resp = match r {
        Ok(()) => sys::seccomp_notif_resp {
            id,
            val: 0,
            error: 0,
            flags: 0,
        },
        Err(e) => sys::seccomp_notif_resp {
            id,
            val: 0,
            error: -e.raw_os_error().unwrap_or(libc::EPERM),
            flags: 0,
        },
    };
    let _ = sys::notif_send(listener, &resp);
}

/// Threads that answer blocking connects (a connect can take minutes): idle
/// workers are reused, and a new one starts only when none is idle, so a slow
/// peer never holds up another connect, and a fast one costs no thread start.
type Job = Box<dyn FnOnce() + Send>;

struct ConnectPool {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
    queue: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<Job>>>,
    idle: Arc<std::sync::atomic::AtomicUsize>,
}

impl ConnectPool {
    fn run(&self, job: Job) {
        if self.idle.load(Ordering::Acquire) == 0 {
            let (queue, idle) = (Arc::clone(&self.queue), Arc::clone(&self.idle));
            let _ = std::thread::Builder::new()
                .name("nfguard-connect".into())
                .spawn(move || loop {
                    idle.fetch_add(1, Ordering::AcqRel);
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    idle.fetch_sub(1, Ordering::AcqRel);
                    match next {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                });
        }
        let tx = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let _ = tx.send(job);
    }
}

fn connect_pool() -> &'static ConnectPool {
    static POOL: std::sync::OnceLock<ConnectPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        ConnectPool {
            jobs: std::sync::Mutex::new(tx),
            queue: Arc::new(std::sync::Mutex::new(rx)),
            idle: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        }
    })
}

/// Is our mount namespace the target's?
fn same_mount_ns(pid: i32) -> bool {
    let a = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    let b = std::fs::read_link("/proc/self/ns/mnt").ok();
    a.is_some() && a == b
}

/// The rights of a workload's thread, for an emulated call.
struct Creds {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

/// The supervisor's own rights, which do not change: read once.
struct Ours {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    /// CAP_SETUID and CAP_SETGID are effective: a thread can take another's ids.
    can_switch: bool,
}

fn our_creds() -> &'static Ours {
    static OURS: std::sync::OnceLock<Ours> = std::sync::OnceLock::new();
    OURS.get_or_init(|| {
        // CAP_SETGID is capability 6, CAP_SETUID 7 (linux/capability.h).
        let caps = (1u64 << 6) | (1u64 << 7);
        match procfs::read_status(std::process::id() as i32) {
            Some(s) => Ours {
                uid: s.uid[3],
                gid: s.gid[3],
                groups: s.groups,
                can_switch: s.cap_eff & caps == caps,
            },
            // Unknown: compare against ids no task has, and never switch, so
            // every emulated call for another user is refused.
            None => Ours {
                uid: u32::MAX,
                gid: u32::MAX,
                groups: Vec::new(),
                can_switch: false,
            },
        }
    })
}

/// Runs `f` on this thread with the rights `creds` says (ours when None),
/// then takes ours back. The raw syscalls change this thread only.
fn with_creds<T>(
    creds: io::Result<Option<Creds>>,
    f: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    let Some(c) = creds? else {
        return f();
    };
    let ours = our_creds();
    sys::set_thread_groups(&c.groups)?;
    sys::set_thread_fs_ids(c.uid, c.gid);
    let r = f();
    sys::set_thread_fs_ids(ours.uid, ours.gid);
    if let Err(e) = sys::set_thread_groups(&ours.groups) {
        // Left with the workload's groups, this thread has less, not more.
        eprintln!("nfguard: restoring the supervisor's groups failed: {e}");
    }
    r
}

/// Devices every program may write without it being learned: writing them
/// changes nothing on disk and discloses nothing.
const ALWAYS_WRITABLE: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"];

fn always_allowed(o: &Observation) -> bool {
    matches!(o, Observation::File(f) if f.op == "write" && ALWAYS_WRITABLE.contains(&f.path.as_str()))
}

/// One sentence on why an observation is outside the model.
fn describe(o: &Observation) -> String {
    match o {
        Observation::Exec { parent, exe } => {
            format!("{exe} is not a program this workload runs (started by {parent})")
        }
        Observation::Socket(s) => format!(
            "{} does not open {} {} sockets (protocol {})",
            s.exe, s.family, s.kind, s.protocol
        ),
        Observation::Listen(l) => {
            format!("{} does not serve {} port {}", l.exe, l.protocol, l.port)
        }
        Observation::Connect(c) => format!(
            "{} does not talk to {} {}",
            c.exe,
            c.protocol,
            model::join_host_port(&c.address, c.port)
        ),
        Observation::Unix(u) => format!("{} does not {} unix socket {}", u.exe, u.op, u.path),
        Observation::File(f) => format!("{} does not {} {}", f.exe, f.op, f.path),
    }
}

/// Can a task other than `pid` write the memory (and, with `files`, the fd
/// table) that the kernel will read when `pid`'s exec continues?
///
/// True when `pid` is its process's only thread and no other process shares its
/// address space (kcmp KCMP_VM over every process we can see), except a
/// single-threaded parent suspended in vfork, which cannot run until this exec
/// completes. `pid` itself is blocked in the notification, so it writes nothing.
pub fn memory_is_private(pid: i32, files: bool) -> io::Result<bool> {
    let status =
        procfs::read_status(pid).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    if status.threads != 1 {
        return Ok(false);
    }
    for other in procfs::all_pids() {
        if other == pid {
            continue;
        }
        match sys::kcmp_same(pid, other, sys::KCMP_VM) {
            Ok(true) => {
                let vfork_parent = other == status.ppid
                    && procfs::read_status(other).is_some_and(|s| s.threads == 1)
                    && in_vfork(other);
                if !vfork_parent {
                    return Ok(false);
                }
            }
            Ok(false) => {}
            // Gone, or not ours to compare: a task we cannot inspect cannot have
            // been created by the target with CLONE_VM (it would carry our rights).
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ESRCH) | Some(libc::EPERM) | Some(libc::EACCES)
                ) => {}
            Err(e) => return Err(e),
        }
        if files {
            if let Ok(true) = sys::kcmp_same(pid, other, sys::KCMP_FILES) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Is `pid` blocked in a vfork-style clone?
fn in_vfork(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|n| n.parse::<i64>().ok())
        })
        .is_some_and(|nr| nr == libc::SYS_vfork || nr == libc::SYS_clone || nr == libc::SYS_clone3)
}

/// Starts a thread serving `listener`.
pub fn spawn(shared: Arc<Shared>, listener: Listener) -> std::thread::JoinHandle<()> {
    let container = listener.container.clone();
    std::thread::Builder::new()
        .name(format!("nfguard-{container}"))
        .spawn(move || serve(shared, Arc::new(listener)))
        .expect("spawning a listener thread")
}

/// Serves `listener` until no task uses its filter any more.
fn serve(shared: Arc<Shared>, listener: Arc<Listener>) {
    let fd = listener.fd.as_fd();
    if let Err(e) = sys::notif_set_sync_wakeup(fd) {
        eprintln!("nfguard: synchronous wake-up unavailable ({e}); notifications cost more (linux 6.6+ has it)");
    }
    let keeper_exe = procfs::exe_of(listener.keeper_pid);
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
        Handler {
            shared: &shared,
            listener: &listener,
            keeper_exe: &keeper_exe,
            n,
            pending: std::cell::Cell::new(pending),
            roots: &roots,
            status: Default::default(),
        }
        .handle();
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
            if let Some(conn) = &listener.connection {
                let mut buf = [0u8; 64];
                while matches!(std::io::Read::read(&mut &*conn, &mut buf), Ok(n) if n > 0) {}
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
