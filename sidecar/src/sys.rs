//! Every `unsafe` call of the sidecar crate: seccomp, its notification ioctls,
//! cross-process memory and fd access, and raw socket calls.
//!
//! Each wrapper is small, takes and returns owned or borrowed fds, and turns
//! the C convention (-1 and errno) into `io::Result`. Nothing above this module
//! touches a raw pointer.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub use libc::{seccomp_notif, seccomp_notif_resp, sock_filter};

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (linux 6.6): wake the supervisor on the
/// CPU of the notifying task, and the task on the supervisor's CPU. Measured
/// here: ~6 us a round trip instead of 40-54 us (docs/architecture.md, fact 5).
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;
/// kcmp(2) types.
pub const KCMP_FILES: i32 = 2;
pub const KCMP_VM: i32 = 1;

fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_int(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `AT_FDCWD` as a borrowed fd: "relative to the current directory" for the
/// *at calls, and unused for absolute paths (saves opening `/` to have a dirfd).
pub fn cwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD (-100) is not -1, and the kernel never treats it as an
    // open file: it is only ever passed as a dirfd to *at syscalls.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

/// The time now from the kernel's coarse realtime clock, the clock file
/// timestamps are taken from: a file changed after this instant never has a
/// ctime before it (a precise clock can be a tick ahead of those stamps).
pub fn realtime_coarse() -> std::time::SystemTime {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    match (r, u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
        (0, Ok(s), Ok(ns)) => std::time::UNIX_EPOCH + std::time::Duration::new(s, ns),
        _ => std::time::SystemTime::now(),
    }
}

/// Nanoseconds of CLOCK_MONOTONIC.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Sets no_new_privs, which lets an unprivileged process install a filter
/// (seccomp(2): "the caller must have CAP_SYS_ADMIN ... or no_new_privs").
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only; no memory is passed.
    cvt_int(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(drop)
}

/// `prctl(PR_SET_DUMPABLE, on)`. Off, a process of the same uid without
/// CAP_SYS_PTRACE can no longer ptrace this one, take its fds with
/// pidfd_getfd, read or write its memory (process_vm_*, /proc/<pid>/mem) or
/// open its /proc/<pid>/fd (ptrace(2), "Ptrace access mode checking"). This
/// process still reads its own /proc/self.
pub fn set_dumpable(on: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    cvt_int(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_int::from(on), 0, 0, 0) }).map(drop)
}

/// Makes this process the reaper of orphaned descendants (it is the container's init).
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    cvt_int(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(drop)
}

/// Installs `program` on the calling thread with SECCOMP_FILTER_FLAG_NEW_LISTENER
/// and returns the notification listener.
pub fn install_filter_with_listener(program: &[sock_filter]) -> io::Result<OwnedFd> {
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
    let fprog = libc::sock_fprog {
        len,
        filter: program.as_ptr() as *mut sock_filter,
    };
    // SAFETY: `fprog` points at `program`, which outlives the call; the kernel
    // copies the program before returning.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    })?;
    // SAFETY: on success seccomp returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Asks for synchronous wake-ups on `listener`; Err(EINVAL) on kernels before 6.6.
pub fn notif_set_sync_wakeup(listener: BorrowedFd<'_>) -> io::Result<()> {
    let flags: u64 = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
    // SAFETY: the ioctl reads a u64 by value (it is _IOW but the kernel takes
    // the flags as the argument itself, see seccomp_notify_set_flags).
    cvt_int(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS as _,
            flags,
        )
    })
    .map(drop)
}

/// Receives one notification. Blocks until one is pending.
pub fn notif_recv(listener: BorrowedFd<'_>) -> io::Result<seccomp_notif> {
    // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed.
    let mut notif: seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: `notif` is a valid, writable seccomp_notif of the size the ioctl encodes.
    cvt_int(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV as _,
            &mut notif as *mut seccomp_notif,
        )
    })?;
    Ok(notif)
}

/// Answers a notification: `Ok(())` if the kernel took the answer, Err(ENOENT)
/// if the target was interrupted or died meanwhile.
pub fn notif_send(listener: BorrowedFd<'_>, resp: &seccomp_notif_resp) -> io::Result<()> {
    // SAFETY: `resp` is a valid seccomp_notif_resp; the kernel only reads it.
    cvt_int(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND as _,
            resp as *const seccomp_notif_resp,
        )
    })
    .map(drop)
}

/// True while notification `id` is still pending: the target has not been
/// interrupted, has not died, and so its pid still names the same task.
pub fn notif_id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: the kernel reads one u64 through the pointer.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID as _,
            &id as *const u64,
        ) == 0
    }
}

/// Is `fd` a seccomp notification listener? Its anonymous inode says so
/// (`anon_inode:seccomp notify` in /proc/self/fd).
pub fn is_seccomp_listener(fd: BorrowedFd<'_>) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|p| p.as_os_str() == "anon_inode:seccomp notify")
}

/// Installs `fd` into the target of notification `id` and, with `send`, answers
/// the notification with the new fd number in one atomic step (SECCOMP_ADDFD_FLAG_SEND).
pub fn notif_addfd(
    listener: BorrowedFd<'_>,
    id: u64,
    fd: BorrowedFd<'_>,
    cloexec: bool,
    send: bool,
) -> io::Result<i32> {
    let addfd = libc::seccomp_notif_addfd {
        id,
        flags: if send {
            libc::SECCOMP_ADDFD_FLAG_SEND as u32
        } else {
            0
        },
        srcfd: fd.as_raw_fd() as u32,
        newfd: 0,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: `addfd` is a valid seccomp_notif_addfd; the kernel only reads it.
    cvt_int(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ADDFD as _,
            &addfd as *const libc::seccomp_notif_addfd,
        )
    })
}

/// Reads `buf.len()` bytes (or fewer, at an unmapped page) at `addr` in `pid`.
pub fn read_process_memory(pid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, which is writable for its length; the
    // remote iovec is only an address in the other process, never dereferenced here.
    let n = cvt(unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) } as libc::c_long)?;
    Ok(n as usize)
}

/// A pidfd for `pid`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Duplicates fd `target_fd` of the process behind `pidfd` into this process.
/// Needs ptrace-attach rights over it, as reading its memory does.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, target_fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target_fd, 0) })?;
    // SAFETY: a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// pidfd_open(2) of one thread (`PIDFD_THREAD`, linux 6.9): a notification
/// names a thread, which need not lead its thread group.
pub fn pidfd_open_thread(tid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, tid, libc::O_EXCL) })?;
    // SAFETY: a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `struct pidfd_info` of linux/pidfd.h (its first version, 64 bytes).
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    exit_code: i32,
}

/// `PIDFD_GET_INFO`: _IOWR(0xFF, 11, struct pidfd_info).
const PIDFD_GET_INFO: u64 =
    (3 << 30) | ((std::mem::size_of::<PidfdInfo>() as u64) << 16) | (0xFF << 8) | 11;
const PIDFD_INFO_CREDS: u64 = 1 << 1;

/// What `PIDFD_GET_INFO` says of a task: its ids in our PID namespace and
/// its credentials.
#[derive(Debug, Clone, Copy)]
pub struct TaskInfo {
    pub pid: i32,
    pub tgid: i32,
    pub ruid: u32,
    pub euid: u32,
    pub suid: u32,
    pub fsuid: u32,
    pub rgid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub fsgid: u32,
}

const PIDFD_INFO_PID: u64 = 1 << 0;

/// `PIDFD_GET_INFO` (linux 6.13) of the task behind `pidfd`: ENOTTY or
/// EINVAL for an fd that is no pidfd, ESRCH for a task that is gone.
pub fn pidfd_info(pidfd: BorrowedFd<'_>) -> io::Result<TaskInfo> {
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_PID | PIDFD_INFO_CREDS,
        ..PidfdInfo::default()
    };
    // SAFETY: `info` is a valid, writable pidfd_info of the size the ioctl number encodes.
    cvt_int(unsafe {
        libc::ioctl(
            pidfd.as_raw_fd(),
            PIDFD_GET_INFO as _,
            &mut info as *mut PidfdInfo,
        )
    })?;
    if info.mask & (PIDFD_INFO_PID | PIDFD_INFO_CREDS) != PIDFD_INFO_PID | PIDFD_INFO_CREDS {
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    Ok(TaskInfo {
        pid: info.pid as i32,
        tgid: info.tgid as i32,
        ruid: info.ruid,
        euid: info.euid,
        suid: info.suid,
        fsuid: info.fsuid,
        rgid: info.rgid,
        egid: info.egid,
        sgid: info.sgid,
        fsgid: info.fsgid,
    })
}

/// The process (thread group) and task a pidfd names, in our PID namespace;
/// for a `/proc/<pid>` directory fd (pidfd_send_signal takes those too) the
/// pid of its name.
pub fn pidfd_target(fd: BorrowedFd<'_>) -> io::Result<(i32, i32)> {
    match pidfd_info(fd) {
        Ok(i) => Ok((i.tgid, i.pid)),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(e),
        Err(_) => {
            let p = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
            let pid = p
                .to_str()
                .and_then(|s| s.strip_prefix("/proc/"))
                .and_then(|s| s.parse::<i32>().ok())
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
            Ok((pid, pid))
        }
    }
}

/// The filesystem uid and gid of the task behind `pidfd` (ioctl
/// `PIDFD_GET_INFO`, linux 6.13): what /proc/<pid>/status says on its
/// `Uid:`/`Gid:` lines, without formatting the whole file.
pub fn pidfd_fs_ids(pidfd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_CREDS,
        ..PidfdInfo::default()
    };
    // SAFETY: `info` is a valid, writable pidfd_info of the size the ioctl number encodes.
    cvt_int(unsafe {
        libc::ioctl(
            pidfd.as_raw_fd(),
            PIDFD_GET_INFO as _,
            &mut info as *mut PidfdInfo,
        )
    })?;
    if info.mask & PIDFD_INFO_CREDS == 0 {
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    Ok((info.fsuid, info.fsgid))
}

/// kcmp(2): do `pid1` and `pid2` share the resource `kind` (KCMP_VM, KCMP_FILES)?
pub fn kcmp_same(pid1: i32, pid2: i32, kind: i32) -> io::Result<bool> {
    // SAFETY: integer arguments only.
    let r = cvt(unsafe { libc::syscall(libc::SYS_kcmp, pid1, pid2, kind, 0, 0) })?;
    Ok(r == 0)
}

/// openat2(2).
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain data.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        u64::from(mode)
    } else {
        0
    };
    how.resolve = resolve;
    // SAFETY: `path` is NUL-terminated and `how` is a valid open_how of the size passed.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    })?;
    // SAFETY: a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// What identifies a directory as a root: the id of the mount it is on, and
/// its device and inode (statx(2) with STATX_MNT_ID). `path` empty means the
/// fd `dir` itself (AT_EMPTY_PATH); otherwise the final symlink is followed.
pub fn mount_and_inode(dir: BorrowedFd<'_>, path: &CStr) -> io::Result<(u64, u64, u64)> {
    // SAFETY: statx is plain data.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let flags = if path.is_empty() {
        libc::AT_EMPTY_PATH
    } else {
        0
    };
    // SAFETY: `path` is NUL-terminated and `st` is a valid statx buffer.
    cvt_int(unsafe {
        libc::statx(
            dir.as_raw_fd(),
            path.as_ptr(),
            flags | libc::AT_STATX_SYNC_AS_STAT,
            libc::STATX_INO | libc::STATX_MNT_ID,
            &mut st,
        )
    })?;
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    let dev = (u64::from(st.stx_dev_major) << 32) | u64::from(st.stx_dev_minor);
    Ok((st.stx_mnt_id, dev, st.stx_ino))
}

/// Sets this thread's filesystem uid and gid (setfsuid(2) is per thread), so
/// that an emulated call is checked by the kernel with the target's rights.
pub fn set_thread_fs_ids(uid: u32, gid: u32) {
    // SAFETY: raw per-thread syscalls with integer arguments; glibc's wrappers
    // are not used because they would change every thread of the process.
    unsafe {
        libc::syscall(libc::SYS_setfsgid, gid);
        libc::syscall(libc::SYS_setfsuid, uid);
    }
}

/// Sets this thread's real and effective uid, leaving the saved one (the
/// raw syscall changes this thread only). With a saved uid of 0 the thread
/// keeps its permitted capabilities, and gets its effective ones back when
/// its effective uid returns to 0 (capabilities(7), "Effect of user ID
/// changes on capabilities").
pub fn set_thread_uids(ruid: u32, euid: u32) -> io::Result<()> {
    // SAFETY: raw per-thread syscall with integer arguments (-1 keeps the saved id).
    cvt(unsafe { libc::syscall(libc::SYS_setresuid, ruid, euid, u32::MAX) }).map(drop)
}

/// Sets this thread's real and effective gid, leaving the saved one.
pub fn set_thread_gids(rgid: u32, egid: u32) -> io::Result<()> {
    // SAFETY: raw per-thread syscall with integer arguments.
    cvt(unsafe { libc::syscall(libc::SYS_setresgid, rgid, egid, u32::MAX) }).map(drop)
}

/// `struct __user_cap_header_struct` and `__user_cap_data_struct` (v3: two data entries).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// capget(2) of task `tid`: (effective, permitted, inheritable).
pub fn capget(tid: i32) -> io::Result<(u64, u64, u64)> {
    let mut h = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: tid,
    };
    let mut d = [CapData::default(); 2];
    // SAFETY: `h` is a valid header and `d` holds the two entries version 3 writes.
    cvt(unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut CapHeader, d.as_mut_ptr()) })?;
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(d[0].effective, d[1].effective),
        join(d[0].permitted, d[1].permitted),
        join(d[0].inheritable, d[1].inheritable),
    ))
}

/// capset(2) of this thread (pid 0: the caller; capabilities are per thread).
pub fn set_thread_caps(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    let mut h = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (e, p, i) = (split(effective), split(permitted), split(inheritable));
    let d = [
        CapData {
            effective: e.0,
            permitted: p.0,
            inheritable: i.0,
        },
        CapData {
            effective: e.1,
            permitted: p.1,
            inheritable: i.1,
        },
    ];
    // SAFETY: `h` is a valid header and `d` the two entries version 3 reads.
    cvt(unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut CapHeader, d.as_ptr()) }).map(drop)
}

/// Sets this thread's supplementary groups (the raw syscall is per thread,
/// like setfsuid; glibc's setgroups would change every thread).
pub fn set_thread_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` is a valid array of gid_t of the length passed.
    cvt(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) }).map(drop)
}

/// The filesystem type of the file behind `fd` (`statfs.f_type`).
pub fn fstatfs_type(fd: BorrowedFd<'_>) -> io::Result<i64> {
    // SAFETY: statfs is plain data; all-zero is valid.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable statfs.
    cvt_int(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?;
    Ok(st.f_type as i64)
}

/// `PROC_SUPER_MAGIC` (linux/magic.h).
pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// unlinkat(2) on a directory fd.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt_int(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

/// renameat2(2) between two directory fds.
pub fn renameat2(
    old_dir: BorrowedFd<'_>,
    old: &CStr,
    new_dir: BorrowedFd<'_>,
    new: &CStr,
    flags: u32,
) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated.
    cvt_int(unsafe {
        libc::renameat2(
            old_dir.as_raw_fd(),
            old.as_ptr(),
            new_dir.as_raw_fd(),
            new.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// fchmodat(2) on a directory fd (never follows a final symlink: the caller resolved it).
pub fn fchmodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt_int(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode, 0) }).map(drop)
}

/// linkat(2).
pub fn linkat(
    old_dir: BorrowedFd<'_>,
    old: &CStr,
    new_dir: BorrowedFd<'_>,
    new: &CStr,
    flags: i32,
) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated.
    cvt_int(unsafe {
        libc::linkat(
            old_dir.as_raw_fd(),
            old.as_ptr(),
            new_dir.as_raw_fd(),
            new.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// symlinkat(2): `name` in `dir`, pointing at `target`.
pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated.
    cvt_int(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// mkdirat(2).
pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt_int(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// mknodat(2).
pub fn mknodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt_int(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) }).map(drop)
}

/// setxattr(2) (follows the final symlink: the path is a /proc/self/fd link).
pub fn setxattr(path: &CStr, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and `value` is readable for its length.
    cvt_int(unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

/// removexattr(2).
pub fn removexattr(path: &CStr, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated.
    cvt_int(unsafe { libc::removexattr(path.as_ptr(), name.as_ptr()) }).map(drop)
}

/// sendmsg(2) of one buffer to `addr` (or the socket's peer): the count sent.
pub fn sendmsg_raw(
    sock: BorrowedFd<'_>,
    addr: Option<&[u8]>,
    data: &[u8],
    flags: i32,
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(a) = addr {
        msg.msg_name = a.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = a.len() as libc::socklen_t;
    }
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: `msg` points at `iov` and `addr`, which outlive the call; the
    // kernel only reads through them for a send.
    let n = cvt(unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, flags) } as libc::c_long)?;
    Ok(n as usize)
}

/// sendmsg(2) of one message the supervisor holds a copy of: `addr` (or the
/// socket's peer), `data`, and `control` (cmsgs, 8-byte aligned as the
/// kernel reads them). The count sent.
pub fn sendmsg_copy(
    sock: BorrowedFd<'_>,
    addr: Option<&[u8]>,
    data: &[u8],
    control: &[u64],
    control_len: usize,
    flags: i32,
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(a) = addr {
        msg.msg_name = a.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = a.len() as libc::socklen_t;
    }
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if control_len > 0 {
        msg.msg_control = control.as_ptr() as *mut libc::c_void;
        msg.msg_controllen = control_len.min(control.len() * 8);
    }
    // SAFETY: `msg` points at `iov`, `addr` and `control`, which outlive the
    // call, with lengths within them; the kernel only reads through them for
    // a send.
    let n = cvt(unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, flags) } as libc::c_long)?;
    Ok(n as usize)
}

/// Writes `data` at `addr` in `pid` (process_vm_writev): the count written.
/// For what the kernel itself writes back into a task's memory when the
/// supervisor made its call (sendmmsg's msg_len).
pub fn write_process_memory(pid: i32, addr: u64, data: &[u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: `local` describes `data`, readable for its length; the remote
    // iovec is only an address in the other process, never dereferenced here.
    let n = cvt(unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) } as libc::c_long)?;
    Ok(n as usize)
}

/// setsockopt(2) with a copy of the value; the call's return value (SCTP's
/// CONNECTX returns the new association's id).
pub fn setsockopt_raw(
    sock: BorrowedFd<'_>,
    level: i32,
    name: i32,
    value: &[u8],
) -> io::Result<i32> {
    // SAFETY: `value` is readable for its length, which is what we pass.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    cvt_int(r)
}

/// getsockopt(2) into `buf`: the call's return value and the length the
/// kernel wrote (SCTP_SOCKOPT_CONNECTX3 connects, and answers in `buf`).
pub fn getsockopt_raw(
    sock: BorrowedFd<'_>,
    level: i32,
    name: i32,
    buf: &mut [u8],
) -> io::Result<(i32, usize)> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is writable for `len` bytes and `len` is a valid
    // socklen_t the kernel may update.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            level,
            name,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    Ok((cvt_int(r)?, len as usize))
}

/// pidfd_send_signal(2); `info` is a siginfo_t (128 bytes) when given.
pub fn pidfd_send_signal(
    pidfd: BorrowedFd<'_>,
    sig: i32,
    info: Option<&[u8]>,
    flags: u32,
) -> io::Result<()> {
    let mut buf = [0u8; 128];
    let info_ptr = match info {
        Some(i) => {
            let n = i.len().min(buf.len());
            buf[..n].copy_from_slice(&i[..n]);
            buf.as_ptr()
        }
        None => std::ptr::null(),
    };
    // SAFETY: `info_ptr` is null or points at 128 readable bytes (a siginfo_t's size).
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            info_ptr,
            flags,
        )
    })
    .map(drop)
}

/// F_SETOWN_EX (`fcntl`) or an owner-setting `ioctl` with `arg` copied from
/// the task (a `struct f_owner_ex` or an int).
pub fn set_owner_raw(fd: BorrowedFd<'_>, cmd: u32, ioctl: bool, arg: &[u8]) -> io::Result<()> {
    let mut buf = [0u8; 8];
    let n = arg.len().min(buf.len());
    buf[..n].copy_from_slice(&arg[..n]);
    // SAFETY: both calls read at most 8 bytes (f_owner_ex, or an int) from `buf`.
    let r = unsafe {
        if ioctl {
            libc::ioctl(fd.as_raw_fd(), cmd as _, buf.as_ptr())
        } else {
            libc::fcntl(fd.as_raw_fd(), cmd as i32, buf.as_ptr())
        }
    };
    cvt_int(r).map(drop)
}

/// Gives the calling thread its own filesystem context (cwd, root, umask:
/// `unshare(CLONE_FS)`), so the supervisor's threads can set a umask of 0 for
/// the calls they make for tasks (which carry the task's umask already)
/// without changing the process's.
pub fn thread_umask_zero() -> io::Result<()> {
    // SAFETY: unshare with a flag, then umask; neither takes a pointer.
    unsafe {
        cvt_int(libc::unshare(libc::CLONE_FS))?;
        libc::umask(0);
    }
    Ok(())
}

/// fchmod(2).
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt_int(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop)
}

/// ftruncate(2).
pub fn ftruncate(fd: BorrowedFd<'_>, len: i64) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt_int(unsafe { libc::ftruncate(fd.as_raw_fd(), len) }).map(drop)
}

/// connect(2) with a sockaddr given as raw bytes (as read from the target).
pub fn connect_raw(sock: BorrowedFd<'_>, addr: &[u8]) -> io::Result<()> {
    // SAFETY: `addr` is readable for its length, which is passed as the sockaddr length.
    cvt_int(unsafe {
        libc::connect(
            sock.as_raw_fd(),
            addr.as_ptr().cast(),
            addr.len() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// bind(2) with a sockaddr given as raw bytes.
pub fn bind_raw(sock: BorrowedFd<'_>, addr: &[u8]) -> io::Result<()> {
    // SAFETY: `addr` is readable for its length, which is passed as the sockaddr length.
    cvt_int(unsafe {
        libc::bind(
            sock.as_raw_fd(),
            addr.as_ptr().cast(),
            addr.len() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// listen(2).
pub fn listen(sock: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt_int(unsafe { libc::listen(sock.as_raw_fd(), backlog) }).map(drop)
}

/// getsockname(2) as raw bytes.
pub fn getsockname_raw(sock: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; 128];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is writable for `len` bytes and `len` is a valid in/out length.
    cvt_int(unsafe { libc::getsockname(sock.as_raw_fd(), buf.as_mut_ptr().cast(), &mut len) })?;
    Ok(buf[..(len as usize).min(buf.len())].to_vec())
}

/// An int-valued socket option (SO_TYPE, SO_PROTOCOL, SO_DOMAIN).
pub fn getsockopt_int(sock: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` is a writable c_int and `len` its size.
    cvt_int(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// fcntl(F_GETFL).
pub fn get_status_flags(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: integer arguments only.
    cvt_int(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })
}

/// Sets the process umask (the supervisor applies each target's umask itself).
pub fn set_umask(mask: u32) {
    // SAFETY: umask cannot fail.
    unsafe {
        libc::umask(mask);
    }
}

/// Sends `sig` to thread `tid` of process `tgid`.
pub fn tgkill(tgid: i32, tid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::syscall(libc::SYS_tgkill, tgid, tid, sig) }).map(drop)
}

/// `PTRACE_SEIZE` of `pid` with `options` (it does not stop the tracee).
pub fn ptrace_seize(pid: i32, options: libc::c_int) -> io::Result<()> {
    // SAFETY: PTRACE_SEIZE takes no pointer (addr 0, data is the options bitmask).
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_SEIZE,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            options as libc::c_long,
        )
    };
    cvt(r).map(drop)
}

/// `PTRACE_CONT`, `PTRACE_LISTEN` or `PTRACE_DETACH` of a stopped tracee,
/// delivering signal `sig` (0: none).
pub fn ptrace_resume(request: libc::c_uint, pid: i32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: these requests take no pointer; data is a signal number.
    let r = unsafe {
        libc::ptrace(
            request,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            sig as libc::c_long,
        )
    };
    cvt(r).map(drop)
}

/// `PTRACE_GETEVENTMSG`: the message of the tracee's last ptrace event (a new
/// child's pid, a former tid).
pub fn ptrace_event_msg(pid: i32) -> io::Result<u64> {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: PTRACE_GETEVENTMSG writes one unsigned long to `data`, which
    // points at `msg`.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETEVENTMSG,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            &mut msg as *mut libc::c_ulong,
        )
    };
    cvt(r).map(|_| msg)
}

/// `waitpid(-1, flags)`: the pid and raw status of a child (or tracee) that
/// changed state, `None` when there is none (WNOHANG) or on error.
pub fn waitpid_any(flags: libc::c_int) -> Option<(i32, libc::c_int)> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid out-pointer for the duration of the call.
    let pid = unsafe { libc::waitpid(-1, &mut status, flags) };
    (pid > 0).then_some((pid, status))
}

/// A new inotify instance (non-blocking, close-on-exec).
pub fn inotify_init() -> io::Result<OwnedFd> {
    // SAFETY: inotify_init1 takes flags only and returns a new fd or -1.
    let fd = cvt_int(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `inotify_add_watch(2)`: the watch descriptor.
pub fn inotify_add_watch(inotify: BorrowedFd<'_>, path: &CStr, mask: u32) -> io::Result<i32> {
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    cvt_int(unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), path.as_ptr(), mask) })
}

/// Takes ownership of an fd that SCM_RIGHTS installed in our table.
pub fn own_received_fd(raw: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed `raw` in our fd table for this message
    // alone; nothing else refers to it.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// mmap of a shared file mapping, for the in-flight journal.
pub struct SharedMap {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; callers serialise access to each slot.
unsafe impl Send for SharedMap {}
// SAFETY: as above; concurrent slot writers never touch the same slot.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    pub fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<SharedMap> {
        // SAFETY: a fresh shared mapping of `len` bytes of `fd`; the kernel picks the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedMap {
            ptr: ptr.cast(),
            len,
        })
    }

    /// Copies `data` into the mapping at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) {
        assert!(
            offset + data.len() <= self.len,
            "journal write out of range"
        );
        // SAFETY: the range is inside the mapping (checked above) and `data`
        // cannot overlap it (it lives in our own heap or stack).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(offset), data.len()) }
    }

    /// Copies bytes out of the mapping at `offset`.
    pub fn read(&self, offset: usize, out: &mut [u8]) {
        assert!(offset + out.len() <= self.len, "journal read out of range");
        // SAFETY: the range is inside the mapping (checked above).
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(offset), out.as_mut_ptr(), out.len()) }
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// The raw bytes of a notification, for the in-flight journal.
pub fn notif_to_bytes(n: &seccomp_notif) -> [u8; std::mem::size_of::<seccomp_notif>()] {
    // SAFETY: seccomp_notif is a plain C struct with no padding-sensitive invariants.
    unsafe { std::mem::transmute_copy(n) }
}

/// The inverse of `notif_to_bytes`.
pub fn notif_from_bytes(b: &[u8; std::mem::size_of::<seccomp_notif>()]) -> seccomp_notif {
    // SAFETY: every bit pattern is a valid seccomp_notif (integers only).
    unsafe { std::mem::transmute_copy(b) }
}
