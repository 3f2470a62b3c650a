//! Every `unsafe` call of the bench crate, each with its SAFETY argument.
//!
//! The load binary calls the measured syscalls directly (no std wrapper that
//! could add allocation or retries inside the timed region), and the reference
//! supervisor forks and passes the listener fd with SCM_RIGHTS.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// CLOCK_MONOTONIC in nanoseconds (system-wide, so comparable across an exec).
#[inline(always)]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// getppid(2) as a raw syscall (glibc does not cache it, but be explicit).
#[inline(always)]
pub fn getppid_raw() -> i64 {
    // SAFETY: no arguments, no memory.
    unsafe { libc::syscall(libc::SYS_getppid) }
}

/// openat(2) relative to the cwd; returns the raw result (fd or -1).
#[inline(always)]
pub fn openat_raw(path: &CStr, flags: i32, mode: u32) -> i32 {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    unsafe { libc::openat(libc::AT_FDCWD, path.as_ptr(), flags, mode) }
}

/// close(2) of a raw fd this process owns and no longer uses.
pub fn close_raw(fd: i32) {
    // SAFETY: the caller owns `fd` and drops every use of it.
    unsafe { libc::close(fd) };
}

/// A TCP socket with SO_LINGER {on, 0}: its close sends RST, so thousands of
/// connects per run leave no TIME_WAIT behind to exhaust ephemeral ports.
pub fn tcp_socket_rst_on_close() -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    let fd = cvt(
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) }
            as libc::c_long,
    )?;
    // SAFETY: a new fd owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid struct of the size passed.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    } as libc::c_long)?;
    Ok(fd)
}

/// connect(2) to 127.0.0.1:`port`; returns the raw result.
#[inline(always)]
pub fn connect_loopback_raw(sock: BorrowedFd<'_>, addr: &libc::sockaddr_in) -> i32 {
    // SAFETY: `addr` is a valid sockaddr_in of the size passed.
    unsafe {
        libc::connect(
            sock.as_raw_fd(),
            (addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    }
}

/// A UDP socket (close-on-exec).
pub fn udp_socket() -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    let fd = cvt(
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) }
            as libc::c_long,
    )?;
    // SAFETY: a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// sendto(2) of `buf` to `to` (None: the connected peer, a null address) as
/// the raw syscall; returns its result.
#[inline(always)]
pub fn sendto_raw(sock: BorrowedFd<'_>, buf: &[u8], to: Option<&libc::sockaddr_in>) -> i64 {
    let (addr, len) = match to {
        Some(a) => (
            a as *const libc::sockaddr_in as usize,
            std::mem::size_of::<libc::sockaddr_in>(),
        ),
        None => (0, 0),
    };
    // SAFETY: `buf` is readable for its length; `addr` is null or a valid
    // sockaddr_in of the size passed.
    unsafe {
        libc::syscall(
            libc::SYS_sendto,
            sock.as_raw_fd(),
            buf.as_ptr(),
            buf.len(),
            0,
            addr,
            len,
        )
    }
}

/// The sockaddr for 127.0.0.1:`port`.
pub fn loopback(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// A pipe, both ends close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a writable array of two ints.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } as libc::c_long)?;
    // SAFETY: two new fds owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// argv/envp as NUL-terminated pointer arrays, built before a fork so the
/// child allocates nothing.
pub struct ExecArgs {
    _strings: Vec<std::ffi::CString>,
    ptrs: Vec<*const libc::c_char>,
    env_ptrs: Vec<*const libc::c_char>,
    _env: Vec<std::ffi::CString>,
    stamp: *mut u8,
}

impl ExecArgs {
    pub fn new(argv: &[std::ffi::CString]) -> ExecArgs {
        use std::os::unix::ffi::OsStrExt;
        let env: Vec<std::ffi::CString> = std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                std::ffi::CString::new(kv).ok()
            })
            .collect();
        // The pointers point into the heap buffers of the CStrings kept here,
        // which do not move when the vectors holding them move.
        let strings = argv.to_vec();
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
        env_ptrs.push(std::ptr::null());
        ExecArgs {
            _strings: strings,
            ptrs,
            env_ptrs,
            _env: env,
            stamp: std::ptr::null_mut(),
        }
    }

    /// Makes argv[`i`] a 16-hex-digit slot that `write_stamp` fills, so a
    /// forked child can pass a timestamp taken just before execve without
    /// allocating.
    pub fn with_stamp_slot(mut self, i: usize) -> ExecArgs {
        let slot: &'static mut [u8; 24] = Box::leak(Box::new([b'0'; 24]));
        slot[16] = 0;
        self.stamp = slot.as_mut_ptr();
        self.ptrs[i] = self.stamp.cast_const().cast();
        self
    }

    /// Writes `v` as 16 hex digits into the stamp slot (no allocation).
    pub fn write_stamp(&self, v: u64) {
        if self.stamp.is_null() {
            return;
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for k in 0..16 {
            let digit = HEX[((v >> (60 - 4 * k)) & 0xf) as usize];
            // SAFETY: the slot is a leaked 24-byte buffer (never freed) that only
            // this ExecArgs points at; k < 16 stays inside it; the load binary is
            // single-threaded, and a forked child has its own copy.
            unsafe { self.stamp.add(k).write(digit) };
        }
    }
}

/// What a forked child may do: only async-signal-safe calls, no allocation.
pub enum Child {}

/// fork(2). In the child, `child` runs and must end in exec or `exit_now`.
///
/// The child of a multi-threaded parent may only make async-signal-safe calls
/// (fork(2), signal-safety(7)); every `child` closure in this crate uses raw
/// syscalls on memory prepared before the fork.
pub fn fork_then(child: impl FnOnce() -> Child) -> io::Result<i32> {
    // SAFETY: see above: the child runs only `child`, which allocates nothing
    // and never returns (it execs or calls _exit).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        child();
    }
    Ok(pid)
}

/// execve(2) with prepared arguments; on failure, _exit(127).
pub fn exec_or_exit(path: &CStr, args: &ExecArgs) -> Child {
    // SAFETY: `path`, argv and envp are NUL-terminated and NULL-terminated
    // arrays that live in memory the child inherited unchanged.
    unsafe {
        libc::execve(path.as_ptr(), args.ptrs.as_ptr(), args.env_ptrs.as_ptr());
    }
    exit_now(127)
}

/// _exit(2): leaves the child without running the parent's atexit handlers.
pub fn exit_now(code: i32) -> Child {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// dup2(2) for a child (no allocation).
pub fn dup2_raw(from: i32, to: i32) -> bool {
    // SAFETY: integer arguments only.
    unsafe { libc::dup2(from, to) >= 0 }
}

/// waitpid(2) for `pid`; returns the raw wait status.
pub fn wait_pid(pid: i32) -> io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a writable int.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Sends `fd` over the unix socket `sock` with SCM_RIGHTS, exactly one fd in
/// one message (unix(7)); no allocation, so a forked child may call it. The
/// parent receives it with the sidecar's `launch::recv_fd`.
pub fn send_fd_raw(sock: i32, fd: i32) -> bool {
    const SPACE: usize = 32; // CMSG_SPACE(sizeof(int)) is 24 on x86_64
    #[repr(C, align(8))]
    struct Buf([u8; SPACE]);
    let mut cbuf = Buf([0; SPACE]);
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    // SAFETY: the control buffer is aligned, zeroed and at least CMSG_SPACE(int)
    // long, so CMSG_FIRSTHDR is non-null and the int after the header fits.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd);
    }
    // SAFETY: `msg` describes valid buffers that outlive the call.
    unsafe { libc::sendmsg(sock, &msg, 0) == 1 }
}

/// Sends `sig` to `pid`.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::kill(pid, sig) } as libc::c_long).map(drop)
}
