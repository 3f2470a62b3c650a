//! inotify with `IN_OPEN` on executable directories: a wake-up for every exec there.
//!
//! The kernel opens the program file inside execve (fs/exec.c, `do_open_execat` calls
//! `fsnotify_open`), so a watch on `/proc/<pid>/root/usr/bin` sees `which` run in that
//! container even if it exits a millisecond later, with no privilege beyond reading the
//! directory (ARCHITECTURE.md, fact 1). The events' contents are not used: they only say
//! "look now". Watches through /proc/<pid>/root hold the directory's inode, not the path, so
//! they stay valid after the process that lent its root exits.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

pub struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    pub fn new() -> io::Result<Self> {
        // SAFETY: inotify_init1 takes flags only and returns a new fd or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Watches opens of files in `dir`.
    pub fn watch_open(&self, dir: &str) -> io::Result<()> {
        let path = CString::new(dir).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `path` is a valid NUL-terminated string that outlives the call; the fd is ours.
        let wd = unsafe {
            libc::inotify_add_watch(
                self.fd.as_raw_fd(),
                path.as_ptr(),
                libc::IN_OPEN | libc::IN_ONLYDIR,
            )
        };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sleeps until an open happens in a watched directory or `timeout` passes; drains the
    /// queue. True when something was opened.
    pub fn wait(&self, timeout: Duration) -> bool {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut pfd = [nix::poll::PollFd::new(
            self.fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if !matches!(nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(ms)), Ok(n) if n > 0) {
            return false;
        }
        let mut buf = [0u8; 4096];
        let mut any = false;
        loop {
            match nix::unistd::read(self.fd.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => any = true,
                _ => return any,
            }
        }
    }
}
