//! The reference supervisor: the least a seccomp user-notification supervisor
//! can do, so that nfguard's own cost per notification shows as a ratio to it.
//!
//! It installs nfguard's filter (`nfguard_sidecar::filter::program()`) with
//! SECCOMP_FILTER_FLAG_NEW_LISTENER in a forked child, receives the listener
//! over a socketpair, turns on SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, and answers
//! every notification with SECCOMP_USER_NOTIF_FLAG_CONTINUE from a thread that
//! sleeps in poll(2) and SECCOMP_IOCTL_NOTIF_RECV: the same shape as nfguard's
//! listener thread, minus the decoding, /proc reads, model and emulation.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
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

/// Runs `argv` (argv[0] an absolute path) under nfguard's filter, answering
/// every notification with CONTINUE. `stdout`, when given, becomes the
/// command's standard output.
pub fn run(argv: &[CString], stdout: Option<OwnedFd>) -> io::Result<Outcome> {
    let program = nfguard_sidecar::filter::program();
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
        // cannot wait on its own listener here (ARCHITECTURE.md, fact 7).
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
        .spawn(move || serve(listener))?;
    let wait_status = sys::wait_pid(pid)?;
    // The thread ends when no task uses the filter any more (POLLHUP).
    let notifications = server.join().unwrap_or(0);
    Ok(Outcome {
        wait_status,
        notifications,
    })
}

/// Answers every notification with CONTINUE until the filter has no users.
fn serve(listener: OwnedFd) -> u64 {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let fd = listener.as_fd();
    let mut answered = 0u64;
    loop {
        let mut pfd = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut pfd, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return answered,
        }
        let rev = pfd[0].revents().unwrap_or(PollFlags::empty());
        if rev.contains(PollFlags::POLLIN) {
            if let Ok(n) = nsys::notif_recv(fd) {
                let resp = nsys::seccomp_notif_resp {
                    id: n.id,
                    val: 0,
                    error: 0,
                    flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
                };
                if nsys::notif_send(fd, &resp).is_ok() {
                    answered += 1;
                }
            }
        } else if rev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
            return answered;
        }
    }
}
