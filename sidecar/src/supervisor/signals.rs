//! Inspecting the calls that signal another process, and those that choose
//! who an fd's SIGIO goes to: allowed (they are not part of a model) unless
//! they reach nfguard's own processes, which is forbidden in every mode.
//!
//! Why: the keeper and the supervisor often run with the workload's uid, so
//! the kernel lets the workload signal them. A stopped supervisor pauses every
//! notified call (closed, not open, but the NF stops too); a killed keeper
//! takes the container with it. `F_SETOWN` with `F_SETSIG` lets an fd's I/O
//! send any signal, SIGKILL included, to a process of the caller's choosing,
//! checked only when it is sent.
//!
//! The targets are registers (continued as they are), except a pidfd (an fd
//! number another thread can swap: the supervisor sends the signal itself on
//! the pidfd it checked) and the owner structs of F_SETOWN_EX, FIOSETOWN and
//! SIOCSPGRP (in memory: the supervisor sets the owner from its copy).

use std::os::fd::AsFd;

use super::decode::{Ptr, Signal};
use super::emulate::Emulation;
use super::failure::Failure;
use super::request::{Plan, Request, Scope};
use super::target::{self, Target};
use crate::event::Category;
use crate::procfs;
use crate::sys;

/// pidfd_send_signal's flag that signals the target's whole process group (linux 6.9).
const PIDFD_SIGNAL_PROCESS_GROUP: u32 = 4;

/// F_OWNER_PID, F_OWNER_PGRP (linux/fcntl.h; F_OWNER_TID is 0).
const F_OWNER_PID: i32 = 1;
const F_OWNER_PGRP: i32 = 2;

fn request() -> Request {
    let mut req = Request::new(Category::Process, None, libc::EPERM);
    req.plan = Plan::Continue;
    req
}

/// Whom a pid argument of kill(2) (or F_SETOWN) reaches, if nfguard: `None`
/// when it reaches none of nfguard's processes.
fn reaches_nfguard(t: &Target<'_>, scope: &Scope<'_>, pid: i32) -> Option<String> {
    match pid {
        -1 => Some("every process the caller may signal, nfguard's among them".into()),
        0 => {
            let group = procfs::read_pgrp(t.tid()).unwrap_or(0);
            (scope.nfguard_group)(group).then(|| {
                format!("the caller's process group {group}, which holds nfguard's processes")
            })
        }
        // i32::MIN has no group (the kernel answers ESRCH): nothing to reach.
        p if p < 0 => p.checked_neg().and_then(|g| {
            (scope.nfguard_group)(g)
                .then(|| format!("process group {g}, which holds nfguard's processes"))
        }),
        // A tid names its process too.
        p => thread_of_nfguard(scope, p),
    }
}

/// A thread `tid` of nfguard's (of a process nfguard runs).
fn thread_of_nfguard(scope: &Scope<'_>, tid: i32) -> Option<String> {
    let tgid = procfs::read_status(tid).map(|s| s.tgid).unwrap_or(tid);
    (scope.is_nfguard)(tgid).then(|| format!("a thread ({tid}) of nfguard's own process {tgid}"))
}

pub fn signal(
    t: &Target<'_>,
    scope: &Scope<'_>,
    syscall: &str,
    s: Signal,
) -> Result<Request, Failure> {
    let mut req = request();
    let (who, sig) = match s {
        Signal::Pid { pid, sig } => (reaches_nfguard(t, scope, pid), sig),
        Signal::Tid { tid, sig } => (thread_of_nfguard(scope, tid), sig),
        Signal::TgidTid { tgid, tid, sig } => (
            (scope.is_nfguard)(tgid)
                .then(|| format!("nfguard's own process {tgid}"))
                .or_else(|| thread_of_nfguard(scope, tid)),
            sig,
        ),
        Signal::Pidfd {
            fd,
            sig,
            info,
            flags,
        } => {
            let pidfd = t.take_fd(fd)?;
            // A thread pidfd names a thread of its process, and a /proc/<pid>
            // directory fd is a pidfd to this call too: judged by the process.
            let (pid, _) = sys::pidfd_target(pidfd.as_fd())
                .map_err(|e| Failure::theirs("read the pidfd's process", e))?;
            let info = match info {
                Ptr(0) => None,
                Ptr(p) => Some(target::read_bytes(&t.memory(), p, 128)?),
            };
            req.plan = Plan::Emulate(Emulation::Signal {
                pidfd,
                sig,
                info,
                flags,
            });
            let group = (flags & PIDFD_SIGNAL_PROCESS_GROUP != 0)
                .then(|| procfs::read_pgrp(pid))
                .flatten();
            let who = match group {
                Some(g) => (scope.nfguard_group)(g)
                    .then(|| format!("process group {g}, which holds nfguard's processes")),
                None => thread_of_nfguard(scope, pid),
            };
            (who, sig)
        }
    };
    // Signal 0 only asks whether the target exists.
    if let (Some(who), true) = (who, sig != 0) {
        req.forbid(format!("{syscall} of signal {sig} to {who}"));
    }
    Ok(req)
}

/// A call that names another process (its memory, its fds, its scheduling,
/// its events): forbidden when it reaches nfguard's own, continued otherwise
/// (its arguments are registers), except `pidfd_getfd`, whose pidfd is an fd
/// number another thread could swap: the supervisor takes the fd itself, on
/// the pidfd it checked, with the task's rights.
pub fn reaches(
    t: &Target<'_>,
    scope: &Scope<'_>,
    syscall: &str,
    r: super::decode::Reach,
) -> Result<Request, Failure> {
    use super::decode::Reach;
    let mut req = request();
    let who = match r {
        Reach::Pid(pid) if pid > 0 => thread_of_nfguard(scope, pid),
        Reach::Pid(-1) => Some("every process, nfguard's among them".to_string()),
        Reach::Pid(_) => None,
        Reach::Pidfd { pidfd, fd } => {
            let pidfd = t.take_fd(pidfd)?;
            let (pid, _) = sys::pidfd_target(pidfd.as_fd())
                .map_err(|e| Failure::theirs("read the pidfd's process", e))?;
            req.plan = Plan::Emulate(Emulation::GetFd { pidfd, fd });
            thread_of_nfguard(scope, pid)
        }
        // setpriority's numbering: process, group, user; 0 is the caller's.
        Reach::Which { which: 0, who } if who > 0 => thread_of_nfguard(scope, who),
        Reach::Which { which: 1, who } => {
            let group = if who == 0 {
                procfs::read_pgrp(t.tid()).unwrap_or(0)
            } else {
                who
            };
            (scope.nfguard_group)(group)
                .then(|| format!("process group {group}, which holds nfguard's processes"))
        }
        Reach::Which { which: 2, who } => {
            let uid = if who == 0 {
                t.status().map(|s| s.uid[0]).unwrap_or(0)
            } else {
                who as u32
            };
            let me = procfs::read_status(std::process::id() as i32);
            me.is_some_and(|s| s.uid[0] == uid)
                .then(|| format!("every process of uid {uid}, nfguard's among them"))
        }
        Reach::Which { .. } => None,
        // 0: a group named by the caller's pid, which is not nfguard's.
        Reach::Group(group) => (group != 0 && (scope.nfguard_group)(group)).then(|| {
            format!(
                "process group {group}, which holds nfguard's processes (kill(0) would reach them)"
            )
        }),
    };
    if let Some(who) = who {
        req.forbid(format!("{syscall} of {who}"));
    }
    Ok(req)
}

/// prlimit64 of another process: reading limits is harmless; setting those
/// of nfguard's processes is forbidden (registers only: continued as they are).
pub fn limits(scope: &Scope<'_>, syscall: &str, pid: i32, new: Ptr) -> Request {
    let mut req = request();
    if new.0 != 0 {
        if let Some(who) = thread_of_nfguard(scope, pid) {
            req.forbid(format!("{syscall} would change the limits of {who}"));
        }
    }
    req
}

/// F_SETOWN, F_SETOWN_EX (fcntl) and FIOSETOWN, SIOCSPGRP (ioctl).
pub fn set_owner(
    t: &Target<'_>,
    scope: &Scope<'_>,
    syscall: &str,
    fd: i32,
    cmd: u32,
    arg: u64,
    ioctl: bool,
) -> Result<Request, Failure> {
    let mut req = request();
    if ioctl && cmd == nfguard_policy::TIOCSTI {
        req.forbid(format!(
            "{syscall} TIOCSTI types into a terminal, whose shell runs outside the filter"
        ));
        return Ok(req);
    }
    // (owner type, pid) as F_SETOWN_EX takes them, and the bytes the call
    // reads from memory (the supervisor makes the call on its copy).
    let (kind, pid, copy) = if ioctl {
        let b = target::read_bytes(&t.memory(), arg, 4)?;
        let v = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        // FIOSETOWN and SIOCSPGRP take F_SETOWN's convention: -pgrp for a group.
        let (kind, pid) = if v < 0 {
            (F_OWNER_PGRP, v.checked_neg().unwrap_or(0))
        } else {
            (F_OWNER_PID, v)
        };
        (kind, pid, Some(b))
    } else if cmd == nfguard_policy::F_SETOWN_EX {
        let b = target::read_bytes(&t.memory(), arg, 8)?;
        let kind = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let pid = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        (kind, pid, Some(b))
    } else {
        let v = arg as u32 as i32;
        if v < 0 {
            (F_OWNER_PGRP, v.checked_neg().unwrap_or(0), None)
        } else {
            (F_OWNER_PID, v, None)
        }
    };
    let who = match kind {
        _ if pid == 0 => None,
        F_OWNER_PGRP => (scope.nfguard_group)(pid)
            .then(|| format!("process group {pid}, which holds nfguard's processes")),
        _ => thread_of_nfguard(scope, pid),
    };
    if let Some(who) = who {
        req.forbid(format!(
            "{syscall} would send the fd's I/O signals (any signal, with F_SETSIG) to {who}"
        ));
    }
    if let Some(arg) = copy {
        req.plan = Plan::Emulate(Emulation::SetOwner {
            fd: t.take_fd(fd)?,
            cmd,
            ioctl,
            arg,
        });
    }
    Ok(req)
}
