//! Emulation: in enforce mode an allowed call whose arguments live in the
//! target's memory is made by the supervisor itself, on the copy it checked,
//! and the result handed back (an fd with `SECCOMP_IOCTL_NOTIF_ADDFD`, or a
//! return value). The kernel never reads the target's argument again, so a
//! thread racing to rewrite it changes nothing (docs/architecture.md, fact 4).
//!
//! Each emulated call runs with the calling thread's rights: a supervisor
//! thread takes its fsuid, fsgid and supplementary groups for the call
//! (per-thread raw syscalls) and takes its own back after. When those cannot
//! be read, or differ and the supervisor cannot switch (no CAP_SETUID and
//! CAP_SETGID), the call is refused with EACCES rather than made with the
//! supervisor's rights.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use super::target::{Creds, Ids, Target};
use crate::journal::Pending;
use crate::procfs;
use crate::resolve;
use crate::sys;

/// A call whose shape only a layer above knows (`sends`, `sctp`): the
/// emulator runs it with its tools (credentials, the worker pool) and the
/// reply, without depending on that layer.
pub trait Call: Send {
    fn perform(self: Box<Self>, em: &Emulator, target: &Target<'_>, reply: Reply);
}

/// A call the supervisor makes for the target.
pub enum Emulation {
    /// Open `fd` (O_PATH) again with these flags and install it in the target;
    /// with `truncate_to`, truncate it instead (`truncate(2)`).
    ///
    /// Modes here and below are as the task passed them: the task's umask is
    /// applied when the call is made (reading it costs a /proc read, paid
    /// only in enforce mode, for calls that create).
    Reopen {
        fd: OwnedFd,
        flags: i32,
        /// For O_TMPFILE: the new file's mode.
        mode: u32,
        truncate_to: Option<i64>,
        /// The open may wait (a FIFO, a device): made from a worker thread.
        may_wait: bool,
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
    /// `addr` may name a file through `/proc/self/fd/N` of a `holds` fd; a
    /// unix connect (`as_caller`) is made with the task's rights, since the
    /// kernel checks write permission on the socket file.
    Connect {
        sock: OwnedFd,
        addr: Vec<u8>,
        holds: Vec<OwnedFd>,
        as_caller: bool,
    },
    Bind {
        sock: OwnedFd,
        addr: Vec<u8>,
        holds: Vec<OwnedFd>,
    },
    Listen {
        sock: OwnedFd,
        backlog: i32,
    },
    /// A call a layer above describes and makes itself: sends with a
    /// destination from the supervisor's copy (`sends`), SCTP's options
    /// that add addresses (`sctp`).
    Call(Box<dyn Call>),
    Link {
        from: LinkFrom,
        new_dir: OwnedFd,
        new: String,
    },
    Symlink {
        points_to: String,
        dir: OwnedFd,
        name: String,
    },
    Mkdir {
        dir: OwnedFd,
        name: String,
        mode: u32,
    },
    Mknod {
        dir: OwnedFd,
        name: String,
        mode: u32,
        dev: u64,
    },
    /// Set (`value`) or remove an extended attribute of the file of `fd`.
    Xattr {
        fd: OwnedFd,
        name: String,
        value: Option<Vec<u8>>,
        flags: i32,
    },
    /// pidfd_send_signal on the pidfd that was checked.
    Signal {
        pidfd: OwnedFd,
        sig: i32,
        info: Option<Vec<u8>>,
        flags: u32,
    },
    /// pidfd_getfd on the pidfd that was checked, the fd installed in the task.
    GetFd {
        pidfd: OwnedFd,
        fd: i32,
    },
    /// F_SETOWN_EX (fcntl) or FIOSETOWN/SIOCSPGRP (ioctl) with the copy of
    /// the argument that was checked.
    SetOwner {
        fd: OwnedFd,
        cmd: u32,
        ioctl: bool,
        arg: Vec<u8>,
    },
}

/// What a link is made from.
pub enum LinkFrom {
    /// A name in a directory (the final symlink not followed).
    Name { dir: OwnedFd, name: String },
    /// A file held open (`AT_EMPTY_PATH`, or `AT_SYMLINK_FOLLOW` resolved):
    /// linked through `/proc/self/fd/N`, as linkat(2) documents for O_TMPFILE.
    Fd(OwnedFd),
}

/// The supervisor's own rights, which do not change: read once.
#[derive(Clone)]
struct Ours {
    ids: Ids,
    groups: Vec<u32>,
    /// Effective, permitted and inheritable capabilities.
    cap_eff: u64,
    cap_prm: u64,
    cap_inh: u64,
    /// CAP_SETUID and CAP_SETGID are effective: a thread can take another's ids.
    can_switch: bool,
}

/// Where an emulated call's answer goes: the listener and the notification
/// id, and the journal slot to free once it is answered.
pub struct Reply {
    pub listener: Arc<super::Listener>,
    pub id: u64,
    /// Held, never read: the journal slot is freed when the reply is dropped,
    /// after the answer.
    #[allow(dead_code)]
    pub pending: Option<Pending>,
}

impl Reply {
    fn fd(&self) -> BorrowedFd<'_> {
        self.listener.fd.as_fd()
    }

    /// Answers with an errno (0: success, return value 0).
    pub fn errno(&self, error: i32) {
        respond(self.fd(), self.id, 0, error, 0);
    }

    /// Answers with a return value.
    pub fn value(&self, val: i64) {
        respond(self.fd(), self.id, val, 0, 0);
    }

    /// Answers with the result of a call that returns a count.
    pub fn count(&self, r: io::Result<usize>) {
        match r {
            Ok(n) => self.value(n as i64),
            Err(e) => self.errno(e.raw_os_error().unwrap_or(libc::EPERM)),
        }
    }

    /// Answers with the result of a call that returns nothing.
    pub fn result(&self, r: io::Result<()>) {
        match r {
            Ok(()) => self.errno(0),
            Err(e) => self.errno(e.raw_os_error().unwrap_or(libc::EPERM)),
        }
    }

    /// Installs `fd` in the target and answers with its number, in one step
    /// (SECCOMP_ADDFD_FLAG_SEND); or answers with the error that made it.
    fn install(&self, r: io::Result<OwnedFd>, cloexec: bool) {
        match r {
            Ok(fd) => {
                if let Err(e) = sys::notif_addfd(self.fd(), self.id, fd.as_fd(), cloexec, true) {
                    // ENOENT: the task was interrupted or died meanwhile.
                    if e.raw_os_error() != Some(libc::ENOENT) {
                        self.errno(e.raw_os_error().unwrap_or(libc::EMFILE));
                    }
                }
            }
            Err(e) => self.errno(e.raw_os_error().unwrap_or(libc::EACCES)),
        }
    }
}

/// Sends one answer. ENOENT (the task was interrupted or died) is not ours to handle.
pub fn respond(listener: BorrowedFd<'_>, id: u64, val: i64, error: i32, flags: u32) {
    let resp = sys::seccomp_notif_resp {
        id,
        val,
        error: -error,
        flags,
    };
    let _ = sys::notif_send(listener, &resp);
}

/// Threads that answer blocking connects (a connect can take minutes): idle
/// workers are reused, and a new one starts only when none is idle, so a slow
/// peer never holds up another connect, and a fast one costs no thread start.
type Job = Box<dyn FnOnce() + Send>;

struct ConnectPool {
    jobs: Mutex<Sender<Job>>,
    queue: Arc<Mutex<Receiver<Job>>>,
    idle: Arc<AtomicUsize>,
}

impl ConnectPool {
    fn new() -> ConnectPool {
        let (tx, rx) = mpsc::channel();
        ConnectPool {
            jobs: Mutex::new(tx),
            queue: Arc::new(Mutex::new(rx)),
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

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

/// Takes a task's rights on the calling thread, and the supervisor's back.
///
/// The task's real, effective and filesystem ids, its groups, and no
/// capability it does not have: signal permission (kill), an fd owner's
/// credentials (F_SETOWN), a unix peer's SO_PEERCRED, privileged ports and
/// every filesystem check then see the task, not the supervisor. The saved
/// ids stay the supervisor's, which is how the thread gets its own back:
/// a thread whose saved uid is 0 keeps its permitted capabilities, and
/// regains the effective ones when its effective uid returns to 0. The raw
/// syscalls change this thread only (glibc's wrappers would change them all).
pub(super) struct Switcher(Ours);

impl Switcher {
    fn as_creds<T>(&self, c: &Creds, f: impl FnOnce() -> T) -> io::Result<T> {
        let ours = &self.0;
        if c.ids != ours.ids || c.groups != ours.groups {
            sys::set_thread_gids(c.ids.gid[0], c.ids.gid[1])?;
            if let Err(e) = sys::set_thread_groups(&c.groups)
                .and_then(|_| sys::set_thread_uids(c.ids.uid[0], c.ids.uid[1]))
            {
                self.restore();
                return Err(e);
            }
            sys::set_thread_fs_ids(c.ids.uid[3], c.ids.gid[3]);
        }
        // None of ours the task lacks: effective = ours & the task's.
        if let Err(e) = sys::set_thread_caps(ours.cap_eff & c.cap_eff, ours.cap_prm, ours.cap_inh) {
            self.restore();
            return Err(e);
        }
        let r = f();
        self.restore();
        Ok(r)
    }

    /// Takes the supervisor's rights back on this thread. The capabilities
    /// come first: the ids and groups after them need CAP_SETUID and
    /// CAP_SETGID in the effective set, which a task without capabilities
    /// had emptied (its permitted set is the supervisor's still). Each step
    /// is tried whatever the one before gave.
    fn restore(&self) {
        let ours = &self.0;
        let steps = [
            sys::set_thread_caps(ours.cap_eff, ours.cap_prm, ours.cap_inh),
            sys::set_thread_uids(ours.ids.uid[0], ours.ids.uid[1]),
            sys::set_thread_gids(ours.ids.gid[0], ours.ids.gid[1]),
            sys::set_thread_groups(&ours.groups),
            // The uid change gave back the effective set's fixup; ours again.
            sys::set_thread_caps(ours.cap_eff, ours.cap_prm, ours.cap_inh),
        ];
        sys::set_thread_fs_ids(ours.ids.uid[3], ours.ids.gid[3]);
        if let Some(Err(e)) = steps.into_iter().find(|r| r.is_err()) {
            // Left with the task's rights, this thread has less, not more.
            eprintln!("nfguard: restoring the supervisor's rights on a thread failed: {e}");
        }
    }

    /// Runs `f` with `creds` (ours when None).
    pub(super) fn run<T>(
        &self,
        creds: Option<Creds>,
        f: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        match creds {
            None => f(),
            Some(c) => self.as_creds(&c, f)?,
        }
    }
}

/// What emulation keeps between calls: the supervisor's own rights, whether
/// `PIDFD_GET_INFO` works here, and the connect workers. One per supervisor
/// (owned by `Shared`), so two supervisors can run in one process.
pub struct Emulator {
    ours: OnceLock<Ours>,
    no_pidfd_info: AtomicBool,
    said_cannot_switch: AtomicBool,
    pool: ConnectPool,
}

impl Default for Emulator {
    fn default() -> Self {
        Emulator {
            ours: OnceLock::new(),
            no_pidfd_info: AtomicBool::new(false),
            said_cannot_switch: AtomicBool::new(false),
            pool: ConnectPool::new(),
        }
    }
}

impl Emulator {
    fn ours(&self) -> &Ours {
        self.ours.get_or_init(|| {
            // CAP_SETGID is capability 6, CAP_SETUID 7 (linux/capability.h).
            let caps = (1u64 << 6) | (1u64 << 7);
            let me = std::process::id() as i32;
            match (procfs::read_status(me), sys::capget(me)) {
                (Some(s), Ok((eff, prm, inh))) => Ours {
                    ids: Ids {
                        uid: s.uid,
                        gid: s.gid,
                    },
                    // Sorted, as the task's are for the comparison.
                    groups: {
                        let mut g = s.groups;
                        g.sort_unstable();
                        g
                    },
                    cap_eff: eff,
                    cap_prm: prm,
                    cap_inh: inh,
                    can_switch: eff & caps == caps,
                },
                // Unknown: compare against ids no task has, and never switch, so
                // every emulated call for another user is refused.
                _ => Ours {
                    ids: Ids {
                        uid: [u32::MAX; 4],
                        gid: [u32::MAX; 4],
                    },
                    groups: Vec::new(),
                    cap_eff: 0,
                    cap_prm: 0,
                    cap_inh: 0,
                    can_switch: false,
                },
            }
        })
    }

    /// The rights an emulated call must run with, when they are not ours: the
    /// calling thread's ids and groups, and none of our capabilities it lacks.
    /// An error when they cannot be read, or differ from ours and we cannot
    /// switch: the call must then not be made with our rights.
    pub fn creds_for(&self, target: &Target<'_>) -> io::Result<Option<Creds>> {
        target
            .creds
            .get_or_init(|| {
                self.find_creds(target)
                    .map_err(|e| e.raw_os_error().unwrap_or(libc::EACCES))
            })
            .clone()
            .map_err(io::Error::from_raw_os_error)
    }

    fn find_creds(&self, target: &Target<'_>) -> io::Result<Option<Creds>> {
        let ours = self.ours();
        // PIDFD_GET_INFO (linux 6.13) gives the ids without formatting all of
        // /proc/<tid>/status, which costs more than the rest of the call.
        let mut ids = None;
        if !self.no_pidfd_info.load(Ordering::Relaxed) {
            let info = target
                .pidfd()
                .map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))
                .and_then(sys::pidfd_info);
            match info {
                Ok(i) => {
                    ids = Some(Ids {
                        uid: [i.ruid, i.euid, i.suid, i.fsuid],
                        gid: [i.rgid, i.egid, i.sgid, i.fsgid],
                    })
                }
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Err(e),
                Err(_) => self.no_pidfd_info.store(true, Ordering::Relaxed),
            }
        }
        let ids = match ids {
            Some(i) => i,
            None => {
                let st = target
                    .status()
                    .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
                Ids {
                    uid: st.uid,
                    gid: st.gid,
                }
            }
        };
        // Capabilities: only ours can be too many (a supervisor with none has
        // nothing to give away, and saves the call).
        let cap_eff = if ours.cap_eff == 0 {
            0
        } else {
            sys::capget(target.tid())?.0
        };
        // The saved ids are not the task's business: they are how a thread
        // gets its own back.
        let same = |a: [u32; 4], b: [u32; 4]| (a[0], a[1], a[3]) == (b[0], b[1], b[3]);
        let same_ids = same(ids.uid, ours.ids.uid) && same(ids.gid, ours.ids.gid);
        // Groups: only ours can be too many. A supervisor with none has none
        // to give away, and saves reading the task's.
        let groups = if same_ids && ours.groups.is_empty() {
            Vec::new()
        } else {
            let mut g = target
                .status()
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?
                .groups
                .clone();
            g.sort_unstable();
            g
        };
        if same_ids && groups == ours.groups && ours.cap_eff & !cap_eff == 0 {
            return Ok(None);
        }
        if !same_ids && !ours.can_switch {
            if !self.said_cannot_switch.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "nfguard: the workload runs as uid {} gid {} and the supervisor as uid {} gid {} without CAP_SETUID and CAP_SETGID: allowed writes, creates, unlinks, binds and signals are refused in enforce mode rather than made with the supervisor's rights; run the sidecar with the workload's runAsUser and runAsGroup",
                    ids.uid[1], ids.gid[1], ours.ids.uid[1], ours.ids.gid[1]
                );
            }
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        Ok(Some(Creds {
            ids: Ids {
                uid: [ids.uid[0], ids.uid[1], ours.ids.uid[2], ids.uid[3]],
                gid: [ids.gid[0], ids.gid[1], ours.ids.gid[2], ids.gid[3]],
            },
            groups,
            cap_eff,
        }))
    }

    /// Runs `f` on this thread with the rights `creds` says (ours when None),
    /// then takes ours back. The raw syscalls change this thread only.
    pub fn with_creds<T>(
        &self,
        creds: io::Result<Option<Creds>>,
        f: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        let Some(c) = creds? else {
            return f();
        };
        self.as_creds(&c, f)?
    }

    /// Runs `f` with `c`'s rights on this thread; Err when they cannot be taken.
    pub fn as_creds<T>(&self, c: &Creds, f: impl FnOnce() -> T) -> io::Result<T> {
        self.switcher().as_creds(c, f)
    }

    /// What another thread needs to take a task's rights and ours back.
    fn switcher(&self) -> Switcher {
        Switcher(self.ours().clone())
    }

    /// The same, for a job handed to [`Emulator::background`].
    pub(super) fn background_switcher(&self) -> Switcher {
        self.switcher()
    }

    /// Runs `job` on a worker thread (a call that waits, as the task's
    /// would, must not hold up the listener's other notifications).
    pub(super) fn background(&self, job: Box<dyn FnOnce() + Send>) {
        self.pool.run(job)
    }

    /// Runs `f` with the task's rights when they differ from ours and can be
    /// taken, with ours otherwise (resolution for judging: an emulated call
    /// that cannot take the task's rights is refused later anyway).
    pub fn as_caller<T>(&self, target: &Target<'_>, f: impl FnOnce() -> T) -> T {
        if !self.ours().can_switch {
            // Nothing to switch to: without CAP_SETUID the supervisor has no
            // rights over files beyond its uid's (the sidecar runs as the NF's).
            return f();
        }
        match self.creds_for(target) {
            Ok(Some(c)) => {
                let mut f = Some(f);
                match self.as_creds(&c, || (f.take().expect("called once"))()) {
                    Ok(r) => r,
                    Err(_) => (f.take().expect("not called"))(),
                }
            }
            _ => f(),
        }
    }

    /// Makes the call and answers the notification.
    pub fn perform(&self, em: Emulation, target: &Target<'_>, reply: Reply) {
        let creds = || self.creds_for(target);
        let umask = || target.status().map(|s| s.umask).unwrap_or(0o022);
        match em {
            Emulation::Reopen {
                fd,
                flags,
                mode,
                truncate_to,
                may_wait,
            } => {
                let mode = if flags & libc::O_TMPFILE == libc::O_TMPFILE {
                    mode & !umask()
                } else {
                    0
                };
                let creds = match creds() {
                    Ok(c) => c,
                    Err(e) => return reply.result(Err(e)),
                };
                let me = self.switcher();
                let open = move || {
                    let r = me.run(creds, || resolve::reopen_with_mode(&fd, flags, mode));
                    match truncate_to {
                        Some(len) => reply.result(r.and_then(|f| sys::ftruncate(f.as_fd(), len))),
                        None => reply.install(r, flags & libc::O_CLOEXEC != 0),
                    }
                };
                if may_wait {
                    // A FIFO waits for its other end: not on the listener thread.
                    self.pool.run(Box::new(open));
                } else {
                    open()
                }
            }
            Emulation::Create {
                dir,
                name,
                flags,
                mode,
            } => {
                let mode = mode & !umask();
                let r = self.with_creds(creds(), || resolve::create_in(&dir, &name, flags, mode));
                reply.install(r, flags & libc::O_CLOEXEC != 0)
            }
            Emulation::Unlink { dir, name, flags } => {
                reply.result(self.with_creds(creds(), || {
                    sys::unlinkat(dir.as_fd(), &resolve::cstring(&name)?, flags)
                }))
            }
            Emulation::Rename {
                old_dir,
                old,
                new_dir,
                new,
                flags,
            } => reply.result(self.with_creds(creds(), || {
                sys::renameat2(
                    old_dir.as_fd(),
                    &resolve::cstring(&old)?,
                    new_dir.as_fd(),
                    &resolve::cstring(&new)?,
                    flags,
                )
            })),
            Emulation::Chmod { fd, mode } => reply.result(self.with_creds(creds(), || {
                let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
                sys::fchmodat(sys::cwd(), &resolve::cstring(&path)?, mode)
            })),
            Emulation::Connect {
                sock,
                addr,
                holds,
                as_caller,
            } => {
                let creds = if as_caller { creds() } else { Ok(None) };
                let creds = match creds {
                    Ok(c) => c,
                    Err(e) => return reply.result(Err(e)),
                };
                let blocking =
                    sys::get_status_flags(sock.as_fd()).map(|f| f & libc::O_NONBLOCK == 0);
                if blocking.unwrap_or(true) {
                    // A blocking connect can take minutes (SYN retries): answer
                    // from its own thread so other notifications are not held up.
                    let me = self.switcher();
                    self.pool.run(Box::new(move || {
                        let r = me.run(creds, || sys::connect_raw(sock.as_fd(), &addr));
                        drop(holds);
                        reply.result(r);
                    }));
                } else {
                    let r = self.with_creds(Ok(creds), || sys::connect_raw(sock.as_fd(), &addr));
                    drop(holds);
                    reply.result(r)
                }
            }
            Emulation::Bind { sock, addr, holds } => {
                // A unix socket file takes the binder's umask; this thread's is 0.
                let mask = umask();
                let r = self.with_creds(creds(), || {
                    sys::set_umask(mask);
                    let r = sys::bind_raw(sock.as_fd(), &addr);
                    sys::set_umask(0);
                    r
                });
                drop(holds);
                reply.result(r)
            }
            Emulation::Call(call) => call.perform(self, target, reply),
            Emulation::Link { from, new_dir, new } => {
                reply.result(self.with_creds(creds(), || {
                    let new = resolve::cstring(&new)?;
                    match &from {
                        LinkFrom::Name { dir, name } => sys::linkat(
                            dir.as_fd(),
                            &resolve::cstring(name)?,
                            new_dir.as_fd(),
                            &new,
                            0,
                        ),
                        LinkFrom::Fd(fd) => {
                            let path =
                                resolve::cstring(&format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
                            sys::linkat(
                                sys::cwd(),
                                &path,
                                new_dir.as_fd(),
                                &new,
                                libc::AT_SYMLINK_FOLLOW,
                            )
                        }
                    }
                }))
            }
            Emulation::Symlink {
                points_to,
                dir,
                name,
            } => reply.result(self.with_creds(creds(), || {
                sys::symlinkat(
                    &resolve::cstring(&points_to)?,
                    dir.as_fd(),
                    &resolve::cstring(&name)?,
                )
            })),
            Emulation::Mkdir { dir, name, mode } => {
                let mode = mode & !umask();
                reply.result(self.with_creds(creds(), || {
                    sys::mkdirat(dir.as_fd(), &resolve::cstring(&name)?, mode)
                }))
            }
            Emulation::Mknod {
                dir,
                name,
                mode,
                dev,
            } => {
                let mode = (mode & libc::S_IFMT) | (mode & 0o7777 & !umask());
                reply.result(self.with_creds(creds(), || {
                    sys::mknodat(dir.as_fd(), &resolve::cstring(&name)?, mode, dev)
                }))
            }
            Emulation::Xattr {
                fd,
                name,
                value,
                flags,
            } => reply.result(self.with_creds(creds(), || {
                let path = resolve::cstring(&format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
                let name = resolve::cstring(&name)?;
                match &value {
                    Some(v) => sys::setxattr(&path, &name, v, flags),
                    None => sys::removexattr(&path, &name),
                }
            })),
            Emulation::Signal {
                pidfd,
                sig,
                info,
                flags,
            } => reply.result(self.with_creds(creds(), || {
                // With the task's ids: the kernel checks a signal's permission
                // against its sender's.
                sys::pidfd_send_signal(pidfd.as_fd(), sig, info.as_deref(), flags)
            })),
            Emulation::SetOwner {
                fd,
                cmd,
                ioctl,
                arg,
            } => reply.result(self.with_creds(creds(), || {
                // The owner's credentials are the setter's: they decide whom
                // its SIGIO may reach.
                sys::set_owner_raw(fd.as_fd(), cmd, ioctl, &arg)
            })),
            Emulation::GetFd { pidfd, fd } => {
                // With the task's ids: the kernel checks ptrace access with them.
                let r = self.with_creds(creds(), || sys::pidfd_getfd(pidfd.as_fd(), fd));
                // pidfd_getfd's fds are always close-on-exec.
                reply.install(r, true)
            }
            // A unix listener's clients see the credentials of the task that
            // listened (SO_PEERCRED is taken at listen): the task's ids, then.
            Emulation::Listen { sock, backlog } => {
                reply.result(self.with_creds(creds(), || sys::listen(sock.as_fd(), backlog)))
            }
        }
    }
}
