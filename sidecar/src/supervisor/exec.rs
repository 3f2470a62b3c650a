//! Exec: the one call that cannot be emulated (the kernel reads the path, the
//! argv and the file itself), so its allow in enforce mode needs a proof that
//! what the supervisor checked is what the kernel uses.
//!
//! Under a tracing keeper the proof is a second check on what the kernel
//! loaded, at the exec stop (`exec_verify`): this stage records the ticket it
//! will be held to. Under an untraced keeper (ptrace refused) the proof is
//! the older one: no other task can write the memory (and, for an fd exec,
//! the fd table) the kernel is about to read. See docs/security.md for what
//! each rests on and where the second is weaker.

use std::io;
use std::os::fd::AsRawFd;
use std::time::SystemTime;

use nfguard_common::Mode;

use super::decode::{Base, Ptr};
use super::exec_verify::Ticket;
use super::failure::Failure;
use super::request::{resolve_path, Request, Scope};
use super::target::{self, Target};
use crate::event::{Category, Kind};
use crate::model::{self, Observation};
use crate::resolve::{self, Resolved};
use crate::{procfs, sys};

pub fn exec(
    t: &Target<'_>,
    scope: &Scope<'_>,
    base: Base,
    path: Ptr,
    argv: Ptr,
    flags: i32,
) -> Result<Request, Failure> {
    let mut req = Request::new(Category::Process, None, libc::EPERM);
    let raw = target::read_cstring(&t.memory(), path.0)?;
    let parent = match t.exe() {
        exe if exe == scope.keeper_exe => model::LAUNCHER_PARENT.to_string(),
        exe => exe.to_string(),
    };
    let fd_exec = raw.is_empty() && flags & libc::AT_EMPTY_PATH != 0;
    let (program, meta, file) = if fd_exec {
        // Fileless exec (execveat(fd, "", AT_EMPTY_PATH)): the program is the fd.
        let Base::Fd(fd) = base else {
            return Err(Failure::Target(libc::EBADF));
        };
        let link =
            procfs::read_link(t.tid(), &format!("fd/{fd}")).ok_or(Failure::Target(libc::EBADF))?;
        let file = t.take_fd(fd)?;
        (link, nix::sys::stat::fstat(file.as_raw_fd()).ok(), file)
    } else {
        if raw.is_empty() {
            return Err(Failure::Target(libc::ENOENT));
        }
        let abs = if raw.starts_with('/') {
            raw
        } else {
            resolve::absolutize(&t.base_dir(base)?, &raw)
        };
        let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
        match resolve_path(t, scope, &abs, follow)? {
            Resolved::Existing { fd, real } => {
                (real, nix::sys::stat::fstat(fd.as_raw_fd()).ok(), fd)
            }
            Resolved::Missing { .. } => return Err(Failure::Target(libc::ENOENT)),
        }
    };
    req.path = Some(program.clone());
    if scope.mode != Mode::Learn {
        req.argv = Some(target::read_argv(&t.memory(), argv.0));
    }
    if program.starts_with("/memfd:") || program.contains(" (deleted)") {
        req.special = Some((
            Kind::Drift,
            format!("fileless exec of {program}: the program is not a file of the image"),
        ));
    } else if let Some(st) = &meta {
        if changed_since(st, scope.started) {
            req.special = Some((
                Kind::Drift,
                format!("{program} was created or modified after the workload started (binary not from the image)"),
            ));
        }
    }
    if scope.traced {
        // What the exec stop will be held to, recorded in every mode: the
        // mode may become enforce before the stop comes.
        let root = t.root().ok();
        let ticket = Ticket::new(
            parent.clone(),
            program.clone(),
            &file,
            root.as_deref(),
            || procfs::read_link(t.tid(), "cwd"),
            scope.inside_execs,
        )
        .map_err(|e| Failure::ours("record the program checked for the exec stop", e))?;
        req.ticket = Some(ticket);
    }
    req.observations.push(Observation::Exec {
        parent,
        exe: program.clone(),
    });
    req.exec_program = Some(program);
    if scope.mode == Mode::Enforce && !scope.traced {
        // execve cannot be emulated: the kernel reads the path again. It is
        // safe to let it do so only if no other task can write the memory
        // (or, for an fd, the fd table) the kernel is about to read. Under a
        // tracing keeper the exec stop checks what the kernel loaded instead.
        match memory_is_private(t.tid(), fd_exec) {
            Ok(true) => {}
            Ok(false) => {
                if req.special.is_none() {
                    req.special = Some((
                        Kind::Unverifiable,
                        "another running task shares this process's memory, so the checked path could be swapped before the kernel reads it".into(),
                    ));
                }
            }
            Err(e) => return Err(Failure::ours("check for tasks that share memory", e)),
        }
    }
    Ok(req)
}

/// Was the file of `st` changed (ctime) at or after `started`? Compared to the
/// nanosecond: whole seconds once hid a script rewritten in the second the
/// workload started. The kernel stamps ctime from a coarse clock, which can
/// lag a precise `started` by a tick; `started` is taken from the same coarse
/// clock (`Shared::new`), so a change after it is never dated before it.
pub fn changed_since(st: &libc::stat, started: SystemTime) -> bool {
    let Ok(secs) = u64::try_from(st.st_ctime) else {
        return false;
    };
    let nanos = u32::try_from(st.st_ctime_nsec)
        .unwrap_or(0)
        .min(999_999_999);
    let ctime = SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
    ctime >= started
}

/// Can a task other than `tid` write the memory (and, with `files`, the fd
/// table) that the kernel will read when `tid`'s exec continues?
///
/// True when `tid` is its process's only thread and no other process shares its
/// address space (kcmp KCMP_VM over every process we can see), except a
/// single-threaded parent suspended in vfork, which cannot run until this exec
/// completes. `tid` itself is blocked in the notification, so it writes nothing.
pub fn memory_is_private(tid: i32, files: bool) -> io::Result<bool> {
    let status =
        procfs::read_status(tid).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    if status.threads != 1 {
        return Ok(false);
    }
    for other in procfs::all_pids() {
        if other == tid {
            continue;
        }
        match sys::kcmp_same(tid, other, sys::KCMP_VM) {
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
            if let Ok(true) = sys::kcmp_same(tid, other, sys::KCMP_FILES) {
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
