//! Every libc call of the launcher, each with its SAFETY argument.
//!
//! Errors keep the wording of the std/nix calls the launcher used before it
//! dropped std: `IoError` prints like `std::io::Error` (`No such file or
//! directory (os error 2)`), `Errno` like `nix::errno::Errno` (`EAGAIN: Try
//! again`, from the table build.rs takes from nix).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, c_int, c_void, CStr};
use core::fmt;

use crate::generated::{ERRNO_DESCS, ERRNO_NAMES, ERRNO_UNKNOWN};

/// The calling thread's errno.
pub fn errno() -> c_int {
    // SAFETY: __errno_location returns the calling thread's errno slot, valid
    // for the thread's lifetime.
    unsafe { *libc::__errno_location() }
}

/// An error as `std::io::Error` displays it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoError {
    /// From errno: `{strerror} (os error {n})`.
    Os(c_int),
    /// std's own messages (`path must be shorter than SUN_LEN`).
    Msg(&'static str),
}

impl IoError {
    fn last() -> IoError {
        IoError::Os(errno())
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IoError::Os(code) => write!(f, "{} (os error {code})", strerror(code)),
            IoError::Msg(m) => f.write_str(m),
        }
    }
}

/// glibc's message for `code`, as std gets it (`strerror_r`, C locale).
pub fn strerror(code: c_int) -> String {
    let mut buf = [0 as c_char; 128];
    // SAFETY: the buffer and its length describe writable memory we own.
    if unsafe { libc::strerror_r(code, buf.as_mut_ptr(), buf.len()) } < 0 {
        panic!("strerror_r failure");
    }
    // SAFETY: strerror_r NUL-terminates what it writes within `buf`, and
    // `buf` was zeroed, so a NUL exists within the array in any case.
    let msg = unsafe { CStr::from_ptr(buf.as_ptr()) };
    String::from_utf8_lossy(msg.to_bytes()).into_owned()
}

/// An error as `nix::errno::Errno` displays it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub c_int);

impl Errno {
    fn last() -> Errno {
        Errno(errno())
    }

    /// nix's `Debug`: the constant's name.
    pub fn name(self) -> &'static str {
        self.entry().0
    }

    /// nix's `desc()`.
    pub fn desc(self) -> &'static str {
        self.entry().1
    }

    fn entry(self) -> (&'static str, &'static str) {
        match usize::try_from(self.0) {
            Ok(i) if i < ERRNO_NAMES.len() => (ERRNO_NAMES[i], ERRNO_DESCS[i]),
            _ => ERRNO_UNKNOWN,
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.desc())
    }
}

/// An owned file descriptor, closed on drop.
#[derive(Debug)]
pub struct Fd(c_int);

impl Fd {
    pub fn raw(&self) -> c_int {
        self.0
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own this fd; nothing else closes it.
        unsafe { libc::close(self.0) };
    }
}

fn fd_or_io(ret: c_int) -> Result<Fd, IoError> {
    if ret < 0 {
        Err(IoError::last())
    } else {
        Ok(Fd(ret))
    }
}

fn ok_or_io(ret: c_int) -> Result<(), IoError> {
    if ret < 0 {
        Err(IoError::last())
    } else {
        Ok(())
    }
}

/// What std's runtime does before `main` and the launcher relies on: fds 0,
/// 1 and 2 exist (a closed one gets /dev/null, so no socket of ours lands
/// there and the command inherits sane stdio), and SIGPIPE is ignored (a
/// write to a closed socket fails with EPIPE instead of killing the keeper).
pub fn init_like_std() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    loop {
        // SAFETY: `fds` is an array of 3 pollfd we own.
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } != -1 {
            break;
        }
        match errno() {
            libc::EINTR => continue,
            libc::EINVAL | libc::EAGAIN | libc::ENOMEM => {
                for fd in 0..3 {
                    // SAFETY: F_GETFD only reads the fd's flags.
                    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 && errno() == libc::EBADF {
                        open_dev_null();
                    }
                }
                return ignore_sigpipe();
            }
            // SAFETY: abort never returns and takes no argument.
            _ => unsafe { libc::abort() },
        }
    }
    for pfd in fds {
        if pfd.revents & libc::POLLNVAL != 0 {
            open_dev_null();
        }
    }
    ignore_sigpipe();
}

fn open_dev_null() {
    // SAFETY: a NUL-terminated literal path; the fd is meant to stay open
    // (it fills the lowest free slot, one of 0, 1, 2).
    if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0) } == -1 {
        // SAFETY: abort never returns and takes no argument.
        unsafe { libc::abort() }
    }
}

fn ignore_sigpipe() {
    // SAFETY: SIG_IGN installs no handler, so no code runs in signal context.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
        // SAFETY: abort never returns and takes no argument.
        unsafe { libc::abort() }
    }
}

/// Restores SIGPIPE's default action (an ignored disposition survives exec).
pub fn reset_sigpipe() {
    // SAFETY: SIG_DFL installs no handler, so no code runs in signal context.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// A set of signals.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl SigSet {
    pub fn empty() -> SigSet {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it.
        let mut set: libc::sigset_t = unsafe { core::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t we own.
        unsafe { libc::sigemptyset(&mut set) };
        SigSet(set)
    }

    pub fn add(&mut self, sig: c_int) {
        // SAFETY: `self.0` is an initialised sigset_t we own.
        unsafe { libc::sigaddset(&mut self.0, sig) };
    }
}

/// `sigprocmask(how, set)` (the previous mask is not asked for).
pub fn sigprocmask(how: c_int, set: &SigSet) -> Result<(), Errno> {
    // SAFETY: `set` is a valid sigset_t; a null old set is allowed.
    if unsafe { libc::sigprocmask(how, &set.0, core::ptr::null_mut()) } < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// A connected pair of SOCK_SEQPACKET unix sockets, close-on-exec.
pub fn socketpair_seqpacket() -> Result<(Fd, Fd), Errno> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two fds socketpair writes.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok((Fd(fds[0]), Fd(fds[1])))
    }
}

/// `fork()`: the child's pid in the parent, 0 in the child.
pub fn fork() -> Result<libc::pid_t, IoError> {
    // SAFETY: the launcher has exactly one thread (it starts none), so the
    // child may run any code, not only async-signal-safe code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        Err(IoError::last())
    } else {
        Ok(pid)
    }
}

/// Sets no_new_privs, which lets an unprivileged process install a filter.
pub fn set_no_new_privs() -> Result<(), IoError> {
    // SAFETY: prctl with integer arguments only; no memory is passed.
    ok_or_io(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
}

/// Makes this process the reaper of orphaned descendants.
pub fn set_child_subreaper() -> Result<(), IoError> {
    // SAFETY: prctl with integer arguments only.
    ok_or_io(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) })
}

/// Installs `program` with SECCOMP_FILTER_FLAG_NEW_LISTENER; returns the listener.
pub fn install_filter_with_listener(program: &[libc::sock_filter]) -> Result<Fd, IoError> {
    let len = u16::try_from(program.len()).map_err(|_| IoError::Msg("BPF program too long"))?;
    let fprog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `program`, which outlives the call; the
    // kernel copies the program before returning and never writes to it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        Err(IoError::last())
    } else {
        Ok(Fd(ret as c_int))
    }
}

/// Installs `program` as one more filter (no listener: it must never notify).
pub fn install_filter(program: &[libc::sock_filter]) -> Result<(), IoError> {
    let len = u16::try_from(program.len()).map_err(|_| IoError::Msg("BPF program too long"))?;
    let fprog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `program`, which outlives the call; the
    // kernel copies the program before returning and never writes to it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        Err(IoError::last())
    } else {
        Ok(())
    }
}

/// Room for one SCM_RIGHTS control message carrying one fd (what
/// `nix::cmsg_space!([RawFd; 1])` reserved), 8-byte aligned.
// SAFETY: CMSG_SPACE is arithmetic on its argument.
const CMSG_ONE_FD: usize = unsafe { libc::CMSG_SPACE(4) } as usize;
#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_ONE_FD]);

/// Sends `data` with exactly one fd attached (SCM_RIGHTS), with `flags`.
pub fn send_fd(sock: &Fd, data: &[u8], fd: c_int, flags: c_int) -> Result<(), IoError> {
    let mut cbuf = CmsgBuf([0; CMSG_ONE_FD]);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = CMSG_ONE_FD;
    // SAFETY: msg_control points at CMSG_ONE_FD aligned bytes we own, room
    // for one header and one fd, so the first header and its data are in
    // bounds; the kernel only reads `data` through the iovec.
    let ret = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(4) as usize;
        core::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>(), fd);
        libc::sendmsg(sock.raw(), &msg, flags)
    };
    if ret < 0 {
        Err(IoError::last())
    } else if ret as usize != data.len() {
        // A stream socket may take part of a message: the supervisor reads
        // the hello in one go, so a part is no hello.
        Err(IoError::Os(libc::EMSGSIZE))
    } else {
        Ok(())
    }
}

/// Receives one message with one fd (MSG_CMSG_CLOEXEC, so it never leaks
/// into the command); returns the fd and the message bytes. Extra fds are
/// closed; a truncated control message is an error (ENOBUFS, as nix had it).
pub fn recv_fd(sock: &Fd) -> Result<(Fd, Vec<u8>), IoError> {
    let mut buf = vec![0u8; 4096];
    let mut cbuf = CmsgBuf([0; CMSG_ONE_FD]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = CMSG_ONE_FD;
    // SAFETY: the iovec and the control buffer are memory we own, of the
    // lengths given.
    let n = unsafe { libc::recvmsg(sock.raw(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(IoError::last());
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(IoError::Os(libc::ENOBUFS));
    }
    let mut fd = None;
    // SAFETY: the kernel filled `msg_controllen` bytes of our control buffer
    // with well-formed headers; CMSG_FIRSTHDR/NXTHDR stay within them, and
    // an SCM_RIGHTS payload is `cmsg_len - CMSG_LEN(0)` bytes of fds that
    // were installed in our table for us alone.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<c_int>();
                let count = ((*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..count {
                    let owned = Fd(core::ptr::read_unaligned(data.add(i)));
                    if fd.is_none() {
                        fd = Some(owned);
                    } // extra fds are closed by the drop
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let n = n as usize;
    buf.truncate(n);
    match fd {
        Some(fd) => Ok((fd, buf)),
        None if n == 0 => Err(IoError::Msg("peer closed")),
        None => Err(IoError::Msg("message without an fd")),
    }
}

/// `execv(program, args)`; returns only on failure.
pub fn execv(program: &CStr, args: &[*const c_char]) -> Errno {
    debug_assert!(args.last().is_some_and(|p| p.is_null()));
    // SAFETY: `program` is NUL-terminated and `args` a NULL-terminated array
    // of NUL-terminated strings, all alive for the call.
    unsafe { libc::execv(program.as_ptr(), args.as_ptr()) };
    Errno::last()
}

/// `kill(pid, sig)`, errors ignored.
pub fn kill(pid: libc::pid_t, sig: c_int) {
    // SAFETY: kill takes integers only.
    unsafe { libc::kill(pid, sig) };
}

/// `waitpid(pid, flags)`: Ok(None) when WNOHANG finds nothing, else the pid
/// and its raw status.
pub fn waitpid(pid: libc::pid_t, flags: c_int) -> Result<Option<(libc::pid_t, c_int)>, Errno> {
    let mut status = 0;
    // SAFETY: `status` is an int we own.
    let ret = unsafe { libc::waitpid(pid, &mut status, flags) };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some((pid, status))),
    }
}

/// A non-blocking, close-on-exec signalfd for `set`.
pub fn signalfd(set: &SigSet) -> Result<Fd, Errno> {
    // SAFETY: `set` is a valid sigset_t; -1 asks for a new fd.
    let ret = unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(Fd(ret))
    }
}

/// The next pending signal's number: Ok(None) when none is pending.
pub fn read_signal(sfd: &Fd) -> Result<Option<c_int>, Errno> {
    // SAFETY: signalfd_siginfo is plain data.
    let mut info: libc::signalfd_siginfo = unsafe { core::mem::zeroed() };
    let size = core::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is `size` writable bytes we own.
    let n = unsafe {
        libc::read(
            sfd.raw(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        )
    };
    match n {
        -1 if errno() == libc::EAGAIN => Ok(None),
        -1 => Err(Errno::last()),
        n if n as usize == size => Ok(Some(info.ssi_signo as c_int)),
        _ => unreachable!("partial read on signalfd"),
    }
}

/// `poll(fds, timeout_ms)`.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: c_int) -> Result<(), Errno> {
    // SAFETY: `fds` is a slice of pollfd we own, of the length given.
    if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) } < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `read(fd, buf)`.
pub fn read(fd: &Fd, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable memory we own, of the length given.
    let n = unsafe { libc::read(fd.raw(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}

/// A connected SOCK_STREAM unix socket to `path`, as `UnixStream::connect`
/// makes it (close-on-exec, same address rules and messages).
pub fn connect_unix(path: &[u8]) -> Result<Fd, IoError> {
    // SAFETY: sockaddr_un is plain data; all-zero is valid.
    let mut addr: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.contains(&0) {
        return Err(IoError::Msg("paths must not contain interior null bytes"));
    }
    if path.len() >= addr.sun_path.len() {
        return Err(IoError::Msg("path must be shorter than SUN_LEN"));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(path) {
        *dst = *src as c_char;
    }
    let mut len = core::mem::offset_of!(libc::sockaddr_un, sun_path) + path.len();
    if !path.is_empty() {
        len += 1; // the terminating NUL of a pathname address
    }
    // SAFETY: socket takes integers only.
    let sock = fd_or_io(unsafe {
        libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: `addr` is a sockaddr_un we own and `len` is within it.
    let ret = unsafe {
        libc::connect(
            sock.raw(),
            (&addr as *const libc::sockaddr_un).cast(),
            len as libc::socklen_t,
        )
    };
    ok_or_io(ret)?;
    Ok(sock)
}

/// CLOCK_MONOTONIC in nanoseconds (what `std::time::Instant` reads).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether `path` (symlinks followed) is a regular file with an execute bit.
pub fn is_executable_file(path: &CStr) -> bool {
    // SAFETY: stat is plain data.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` a stat we own.
    if unsafe { libc::stat(path.as_ptr(), &mut st) } != 0 {
        return false;
    }
    st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_mode & 0o111 != 0
}

/// The value of environment variable `name`, if set, copied.
///
/// Only for the launcher's single thread: getenv takes no lock, so a thread
/// changing the environment at the same time would race with it.
pub(crate) fn getenv(name: &CStr) -> Option<Vec<u8>> {
    // SAFETY: `name` is NUL-terminated; the launcher is single-threaded and
    // never modifies its environment, so the string stays valid while copied.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        None
    } else {
        // SAFETY: getenv returned a NUL-terminated string (see above).
        Some(unsafe { CStr::from_ptr(p) }.to_bytes().to_vec())
    }
}

/// Writes all of `bytes` to stderr as `eprintln!` did: a closed stderr
/// (EBADF) swallows the text; any other failure panics.
pub fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is readable memory of the length given.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        match n {
            -1 if errno() == libc::EINTR => continue,
            -1 if errno() == libc::EBADF => return,
            -1 => panic!("failed printing to stderr: {}", IoError::last()),
            0 => panic!("failed printing to stderr: failed to write whole buffer"),
            n => bytes = &bytes[n as usize..],
        }
    }
}

/// Writes `bytes` to stderr, ignoring every failure (for the panic handler).
pub fn write_stderr_quiet(bytes: &[u8]) {
    // SAFETY: `bytes` is readable memory of the length given.
    unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}

/// `exit(code)`: atexit handlers and stdio flushing, as `std::process::exit`.
pub fn exit(code: c_int) -> ! {
    // SAFETY: exit never returns; the launcher registers no atexit handler
    // that could observe a half-torn-down state.
    unsafe { libc::exit(code) }
}

/// `prctl(PR_SET_DUMPABLE, on)`. A non-dumpable process cannot be reached
/// by a process of the same uid without CAP_SYS_PTRACE: no ptrace, no
/// pidfd_getfd, no process_vm_readv/writev, no /proc/<pid>/{fd,mem,environ}
/// (ptrace(2), "Ptrace access mode checking"). exec makes a process dumpable
/// again (unless it changes credentials), so this lasts until the next exec.
pub fn set_dumpable(on: bool) -> Result<(), IoError> {
    // SAFETY: prctl with integer arguments only.
    ok_or_io(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, c_int::from(on), 0, 0, 0) })
}

/// `setpgid(pid, pgid)`.
pub fn setpgid(pid: libc::pid_t, pgid: libc::pid_t) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    if unsafe { libc::setpgid(pid, pgid) } < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `getpgrp()`: this process's group.
pub fn getpgrp() -> libc::pid_t {
    // SAFETY: getpgrp takes no argument and cannot fail.
    unsafe { libc::getpgrp() }
}

/// The foreground process group of the terminal on `fd`, if `fd` is a terminal.
pub fn foreground_group(fd: c_int) -> Option<libc::pid_t> {
    // SAFETY: isatty and tcgetpgrp take an integer only.
    unsafe {
        if libc::isatty(fd) != 1 {
            return None;
        }
        let pg = libc::tcgetpgrp(fd);
        (pg > 0).then_some(pg)
    }
}

/// Makes `pgid` the foreground group of the terminal on `fd`. SIGTTOU is
/// blocked for the call: a process of a background group that calls
/// tcsetpgrp gets SIGTTOU (stop) unless it blocks or ignores it (this is
/// how shells take the terminal back from a finished job).
pub fn set_foreground_group(fd: c_int, pgid: libc::pid_t) -> Result<(), Errno> {
    let mut ttou = SigSet::empty();
    ttou.add(libc::SIGTTOU);
    // SAFETY: sigset_t is plain data, filled by the kernel.
    let mut old: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: valid sigset pointers we own.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &ttou.0, &mut old) };
    // SAFETY: integer arguments only.
    let r = unsafe { libc::tcsetpgrp(fd, pgid) };
    let err = Errno::last();
    // SAFETY: restores the mask saved above (no SIGTTOU is left pending: the
    // kernel sends none to a caller that blocks it, tty_check_change).
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, core::ptr::null_mut()) };
    if r < 0 {
        Err(err)
    } else {
        Ok(())
    }
}

/// `kill(pid, sig)`, with its result.
pub fn try_kill(pid: libc::pid_t, sig: c_int) -> Result<(), Errno> {
    // SAFETY: kill takes integers only.
    if unsafe { libc::kill(pid, sig) } < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// The ptrace requests and options the keeper uses (linux/ptrace.h).
pub mod ptrace {
    pub const SEIZE: libc::c_uint = 0x4206;
    pub const LISTEN: libc::c_uint = 0x4208;
    pub const CONT: libc::c_uint = 7;
    pub const GETEVENTMSG: libc::c_uint = 0x4201;
    pub const O_TRACEFORK: libc::c_ulong = 1 << 1;
    pub const O_TRACEVFORK: libc::c_ulong = 1 << 2;
    pub const O_TRACECLONE: libc::c_ulong = 1 << 3;
    pub const O_TRACEEXEC: libc::c_ulong = 1 << 4;
    pub const O_EXITKILL: libc::c_ulong = 1 << 20;
    pub const EVENT_FORK: i32 = 1;
    pub const EVENT_VFORK: i32 = 2;
    pub const EVENT_CLONE: i32 = 3;
    pub const EVENT_EXEC: i32 = 4;
    pub const EVENT_STOP: i32 = 128;
}

fn ptrace_raw(req: libc::c_uint, pid: libc::pid_t, addr: usize, data: usize) -> Result<(), Errno> {
    // SAFETY: the requests used here (SEIZE, CONT, LISTEN) take integers in
    // addr and data; GETEVENTMSG's data is a pointer, passed by
    // `ptrace_event_msg` to a c_ulong it owns.
    if unsafe { libc::ptrace(req, pid, addr, data) } < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `PTRACE_SEIZE` with `options`: attaches without stopping the task.
pub fn ptrace_seize(pid: libc::pid_t, options: libc::c_ulong) -> Result<(), Errno> {
    ptrace_raw(ptrace::SEIZE, pid, 0, options as usize)
}

/// `PTRACE_CONT`, delivering `sig` (0: none).
pub fn ptrace_cont(pid: libc::pid_t, sig: c_int) -> Result<(), Errno> {
    ptrace_raw(ptrace::CONT, pid, 0, sig as usize)
}

/// `PTRACE_LISTEN`: a tracee in group-stop stays stopped but is not ptrace-
/// stopped any more, so SIGCONT (or a new event) wakes it as if untraced.
pub fn ptrace_listen(pid: libc::pid_t) -> Result<(), Errno> {
    ptrace_raw(ptrace::LISTEN, pid, 0, 0)
}

/// `PTRACE_GETEVENTMSG`: the new task's tid at a fork/vfork/clone stop, the
/// former tid at an exec stop.
pub fn ptrace_event_msg(pid: libc::pid_t) -> Result<libc::c_ulong, Errno> {
    let mut msg: libc::c_ulong = 0;
    ptrace_raw(
        ptrace::GETEVENTMSG,
        pid,
        0,
        &mut msg as *mut libc::c_ulong as usize,
    )?;
    Ok(msg)
}

/// Sets O_NONBLOCK on `fd`.
pub fn set_nonblocking(fd: &Fd) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    let flags = unsafe { libc::fcntl(fd.raw(), libc::F_GETFL) };
    // SAFETY: integer arguments only.
    if flags < 0 || unsafe { libc::fcntl(fd.raw(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `send(fd, bytes, MSG_NOSIGNAL | MSG_DONTWAIT)`: how many bytes went.
pub fn send_some(fd: &Fd, bytes: &[u8]) -> Result<usize, Errno> {
    // SAFETY: `bytes` is readable memory of the length given.
    let n = unsafe {
        libc::send(
            fd.raw(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}

/// Writes all of `bytes` to `fd` (a socketpair end: one small message).
pub fn write_all(fd: &Fd, bytes: &[u8]) -> Result<(), Errno> {
    // SAFETY: `bytes` is readable memory of the length given.
    let n = unsafe { libc::write(fd.raw(), bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        Err(Errno::last())
    } else if n as usize != bytes.len() {
        Err(Errno(libc::EMSGSIZE))
    } else {
        Ok(())
    }
}

/// `readlink("/proc/self/exe")`: this program's path, as the kernel names it.
pub fn own_exe() -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` is writable memory of the length given; the path is a
    // NUL-terminated literal.
    let n = unsafe {
        libc::readlink(
            c"/proc/self/exe".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n <= 0 || n as usize >= buf.len() {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn errors_read_as_std_and_nix_printed_them() {
        for n in -1..300 {
            assert_eq!(
                IoError::Os(n).to_string(),
                std::io::Error::from_raw_os_error(n).to_string()
            );
            let nix = nix::errno::Errno::from_raw(n);
            assert_eq!(Errno(n).to_string(), nix.to_string(), "errno {n}");
            assert_eq!(Errno(n).desc(), nix.desc());
        }
    }

    #[test]
    fn unix_socket_addresses_fail_as_std_failed() {
        let cases: [&[u8]; 4] = [
            &[b'x'; 108],
            b"",
            b"/nonexistent/nfguard.sock",
            b"/proc/self/stat",
        ];
        for path in cases {
            let ours = connect_unix(path).unwrap_err().to_string();
            let std = std::os::unix::net::UnixStream::connect(std::ffi::OsStr::from_bytes(path))
                .unwrap_err()
                .to_string();
            assert_eq!(ours, std, "{:?}", String::from_utf8_lossy(path));
        }
    }

    #[test]
    fn a_listener_fd_goes_through_a_socketpair() {
        let (a, b) = socketpair_seqpacket().unwrap();
        let (r, _w) = {
            let mut p = [0; 2];
            // SAFETY: `p` has room for the two fds pipe writes.
            assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
            (Fd(p[0]), Fd(p[1]))
        };
        send_fd(&a, b"listener", r.raw(), 0).unwrap();
        let (got, bytes) = recv_fd(&b).unwrap();
        assert_eq!(bytes, b"listener");
        assert_ne!(got.raw(), r.raw());
        // SAFETY: F_GETFD only reads the fd's flags.
        let flags = unsafe { libc::fcntl(got.raw(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        drop(a);
        assert_eq!(recv_fd(&b).unwrap_err(), IoError::Msg("peer closed"));
    }
}

/// `argv` as strings; Err(lossy text) for the first that is not UTF-8.
///
/// # Safety
/// `argv` must hold `argc` NUL-terminated strings.
pub unsafe fn c_args(argc: c_int, argv: *const *const c_char) -> Result<Vec<String>, String> {
    let n = usize::try_from(argc).unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: the caller's contract: argv[i] for i < argc is a valid
        // NUL-terminated string.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) }.to_bytes();
        match core::str::from_utf8(arg) {
            Ok(s) => out.push(String::from(s)),
            Err(_) => return Err(String::from_utf8_lossy(arg).into_owned()),
        }
    }
    Ok(out)
}

/// `abort()`: SIGABRT, no cleanup.
pub fn abort() -> ! {
    // SAFETY: abort takes no argument and never returns.
    unsafe { libc::abort() }
}

/// The C allocator, as std's `System` uses it on Linux.
#[derive(Debug, Clone, Copy)]
pub struct Malloc;

/// The alignment malloc guarantees on x86_64.
const MALLOC_ALIGN: usize = 16;

// SAFETY: malloc, realloc and free honour the GlobalAlloc contract for
// alignments up to MALLOC_ALIGN when the size is at least the alignment;
// everything else goes through posix_memalign.
unsafe impl GlobalAlloc for Malloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN && layout.align() <= layout.size() {
            // SAFETY: any size is valid for malloc.
            unsafe { libc::malloc(layout.size()) }.cast()
        } else {
            let mut out: *mut c_void = core::ptr::null_mut();
            let align = layout.align().max(core::mem::size_of::<usize>());
            // SAFETY: `align` is a power of two and a multiple of
            // sizeof(void *), as posix_memalign requires.
            match unsafe { libc::posix_memalign(&mut out, align, layout.size()) } {
                0 => out.cast(),
                _ => core::ptr::null_mut(),
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from malloc or posix_memalign (alloc above).
        unsafe { libc::free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN && layout.align() <= new_size {
            // SAFETY: `ptr` came from this allocator; realloc keeps malloc's
            // alignment, enough for `layout.align()`.
            unsafe { libc::realloc(ptr.cast(), new_size) }.cast()
        } else {
            // SAFETY: the GlobalAlloc contract for the new layout (same
            // alignment, nonzero size) holds, as the caller guarantees.
            unsafe {
                let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}
