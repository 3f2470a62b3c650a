//! The reference supervisor: the least a seccomp user-notification supervisor
//! can do, so that nfguard's own cost per notification shows as a ratio to it.
//!
//! It installs nfguard's filter (`nfguard_policy::PROGRAM`) with
//! SECCOMP_FILTER_FLAG_NEW_LISTENER in a forked child, receives the listener
//! over a socketpair, turns on SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, and answers
//! every notification with SECCOMP_USER_NOTIF_FLAG_CONTINUE from a thread that
//! sleeps in poll(2) and SECCOMP_IOCTL_NOTIF_RECV: the same shape as nfguard's
//! listener thread, minus the decoding, /proc reads, model and emulation.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nfguard_sidecar::sys as nsys;

use crate::sys::{self, ExecArgs};

/// How a supervised command ended.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Raw wait status of the command.
    pub wait_status: i32,
    /// Notifications answered.
    pub notifications: u64,
    /// Of those, the calls the supervisor made itself (`Answer::Emulate`).
    pub emulated: u64,
}

impl Outcome {
    /// Exit code, or 128+signal.
    pub fn exit_code(&self) -> i32 {
        let s = self.wait_status;
        if libc::WIFEXITED(s) {
            libc::WEXITSTATUS(s)
        } else {
            128 + libc::WTERMSIG(s)
        }
    }
}

/// How the reference supervisor answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Every notification with CONTINUE: the floor of any supervisor.
    Continue,
    /// `openat` and `connect` emulated the least way that is safe against a
    /// racing thread: the supervisor opens the path itself and installs the fd
    /// with SECCOMP_IOCTL_NOTIF_ADDFD (flag SEND), or connects its own copy of
    /// the socket (pidfd_getfd) and answers with the result; every other call
    /// with CONTINUE. The floor of a supervisor that enforces on what it
    /// checked, which is what nfguard's enforce mode does.
    Emulate,
}

/// Runs `argv` (argv[0] an absolute path) under nfguard's filter, answering
/// every notification as `answer` says. `stdout`, when given, becomes the
/// command's standard output.
pub fn run(argv: &[CString], stdout: Option<OwnedFd>, answer: Answer) -> io::Result<Outcome> {
    let program = nfguard_policy::PROGRAM.to_vec();
    let args = ExecArgs::new(argv);
    let path = argv
        .first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?
        .clone();
    let (ours, theirs) = UnixStream::pair()?;
    let theirs_fd = theirs.as_raw_fd();
    let out_fd = stdout.as_ref().map(|f| f.as_raw_fd());
    let pid = sys::fork_then(|| {
        // Child: raw syscalls on memory prepared before the fork only.
        if let Some(fd) = out_fd {
            if !sys::dup2_raw(fd, 1) {
                return sys::exit_now(125);
            }
        }
        if nsys::set_no_new_privs().is_err() {
            return sys::exit_now(125);
        }
        let listener = match nsys::install_filter_with_listener(&program) {
            Ok(l) => l,
            Err(_) => return sys::exit_now(125),
        };
        // sendmsg and close are not notified by the filter, so the child
        // cannot wait on its own listener here (docs/architecture.md, fact 7).
        if !sys::send_fd_raw(theirs_fd, listener.as_raw_fd()) {
            return sys::exit_now(125);
        }
        drop(listener);
        sys::exec_or_exit(&path, &args)
    })?;
    drop(theirs);
    drop(stdout);
    let listener = match nfguard_sidecar::launch::recv_fd(ours.as_fd()) {
        Ok((l, _)) => l,
        Err(e) => {
            let status = sys::wait_pid(pid)?;
            return Err(io::Error::other(format!(
                "the child did not hand over a listener ({e}); wait status {status:#x}"
            )));
        }
    };
    if let Err(e) = nsys::notif_set_sync_wakeup(listener.as_fd()) {
        eprintln!("nfguard-bench: reference supervisor without sync wake-up: {e}");
    }
    let server = std::thread::Builder::new()
        .name("refsup".into())
        .spawn(move || serve(listener, answer))?;
    let wait_status = sys::wait_pid(pid)?;
    // The thread ends when no task uses the filter any more (POLLHUP).
    let (notifications, emulated) = server.join().unwrap_or((0, 0));
    Ok(Outcome {
        wait_status,
        notifications,
        emulated,
    })
}

/// Answers every notification until the filter has no users; returns how
/// many it answered and how many of those it emulated.
fn serve(listener: OwnedFd, answer: Answer) -> (u64, u64) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let fd = listener.as_fd();
    let (mut answered, mut emulated) = (0u64, 0u64);
    loop {
        let mut pfd = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut pfd, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return (answered, emulated),
        }
        let rev = pfd[0].revents().unwrap_or(PollFlags::empty());
        if rev.contains(PollFlags::POLLIN) {
            if let Ok(n) = nsys::notif_recv(fd) {
                if answer == Answer::Emulate && emulate(fd, &n) {
                    emulated += 1;
                    answered += 1;
                } else if continue_call(fd, n.id) {
                    answered += 1;
                }
            }
        } else if rev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
            return (answered, emulated);
        }
    }
}

fn continue_call(fd: BorrowedFd<'_>, id: u64) -> bool {
    let resp = nsys::seccomp_notif_resp {
        id,
        val: 0,
        error: 0,
        flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
    };
    nsys::notif_send(fd, &resp).is_ok()
}

fn send_result(fd: BorrowedFd<'_>, id: u64, r: io::Result<()>) -> bool {
    let error = match r {
        Ok(()) => 0,
        Err(e) => -e.raw_os_error().unwrap_or(libc::EPERM),
    };
    let resp = nsys::seccomp_notif_resp {
        id,
        val: 0,
        error,
        flags: 0,
    };
    nsys::notif_send(fd, &resp).is_ok()
}

/// Emulates `openat` (absolute paths) and `connect`; false for anything else,
/// which the caller continues.
fn emulate(fd: BorrowedFd<'_>, n: &nsys::seccomp_notif) -> bool {
    let (pid, args) = (n.pid as i32, n.data.args);
    match i64::from(n.data.nr) {
        libc::SYS_openat => {
            let mut buf = [0u8; 256];
            let Ok(len) = nsys::read_process_memory(pid, args[1], &mut buf) else {
                return false;
            };
            let Some(end) = buf[..len].iter().position(|b| *b == 0) else {
                return false;
            };
            let Ok(path) = std::ffi::CStr::from_bytes_with_nul(&buf[..=end]) else {
                return false;
            };
            if !path.to_bytes().starts_with(b"/") {
                return false;
            }
            let flags = args[2] as i32;
            match nsys::openat2(nsys::cwd(), path, flags, args[3] as u32, 0) {
                Ok(file) => {
                    let cloexec = flags & libc::O_CLOEXEC != 0;
                    nsys::notif_addfd(fd, n.id, file.as_fd(), cloexec, true).is_ok()
                }
                Err(e) => send_result(fd, n.id, Err(e)),
            }
        }
        libc::SYS_connect => {
            let len = (args[2] as usize).min(128);
            let mut addr = vec![0u8; len];
            if !matches!(nsys::read_process_memory(pid, args[1], &mut addr), Ok(n) if n == len) {
                return false;
            }
            let sock =
                nsys::pidfd_open(pid).and_then(|p| nsys::pidfd_getfd(p.as_fd(), args[0] as i32));
            match sock {
                Ok(sock) => send_result(fd, n.id, nsys::connect_raw(sock.as_fd(), &addr)),
                Err(_) => false,
            }
        }
        _ => false,
    }
}
