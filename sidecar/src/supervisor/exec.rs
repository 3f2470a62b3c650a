//! Exec: the one call that cannot be emulated (the kernel reads the path, the
//! argv and the file itself), so its allow in enforce mode needs a proof that
//! what the supervisor checked is what the kernel uses.
//!
//! The proof here: no other task can write the memory (and, for an fd exec,
//! the fd table) the kernel is about to read. See docs/security.md for what it
//! rests on and where it is weaker.

use std::io;

use crate::{procfs, sys};

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
