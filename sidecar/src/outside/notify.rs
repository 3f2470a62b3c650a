//! inotify with `IN_OPEN` on executable directories: every exec of a program there, by name.
//!
//! The kernel opens the program file inside execve (fs/exec.c, `do_open_execat` calls
//! `fsnotify_open`), and for a script it opens the interpreter too (binfmt_script), so a
//! watch on `/proc/<pid>/root/usr/bin` sees `which` run in that container even if it exits a
//! millisecond later, with no privilege beyond reading the directory (docs/architecture.md, fact
//! 1). Each event carries the name of the file opened (the file itself, after symlinks:
//! `/usr/bin/which` opens `which.debianutils`, `/bin/sh` opens `dash`), which is what names a
//! program whose process is gone before /proc is read. Watches through /proc/<pid>/root hold
//! the directory's inode, not the path, so they stay valid after the process that lent its
//! root exits; two paths to one directory (`bin` -> `usr/bin`) share one watch descriptor.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

pub struct Inotify {
    fd: OwnedFd,
}

/// One event read from the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// `name` was opened in the directory watched as `wd`.
    File { wd: i32, name: String },
    /// The kernel's queue overflowed: names were lost.
    Overflow,
}

/// Parses a buffer of `struct inotify_event` records (wd, mask, cookie, len, name[len]).
pub fn parse_events(buf: &[u8]) -> Vec<Opened> {
    let mut out = Vec::new();
    let mut i = 0;
    let word = |at: usize| -> Option<[u8; 4]> { buf.get(at..at + 4)?.try_into().ok() };
    while let (Some(wd), Some(mask), Some(len)) = (word(i), word(i + 4), word(i + 12)) {
        let wd = i32::from_ne_bytes(wd);
        let mask = u32::from_ne_bytes(mask);
        let len = u32::from_ne_bytes(len) as usize;
        let Some(raw) = buf.get(i + 16..i + 16 + len) else {
            break;
        };
        i += 16 + len;
        if mask & libc::IN_Q_OVERFLOW != 0 {
            out.push(Opened::Overflow);
            continue;
        }
        if mask & libc::IN_OPEN == 0 || mask & libc::IN_ISDIR != 0 {
            continue;
        }
        let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
        if end == 0 {
            continue;
        }
        out.push(Opened::File {
            wd,
            name: String::from_utf8_lossy(&raw[..end]).into_owned(),
        });
    }
    out
}

impl Inotify {
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            fd: crate::sys::inotify_init()?,
        })
    }

    /// Watches opens of files in `dir`; returns the watch descriptor.
    pub fn watch_open(&self, dir: &str) -> io::Result<i32> {
        let path = CString::new(dir).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        crate::sys::inotify_add_watch(self.fd.as_fd(), &path, libc::IN_OPEN | libc::IN_ONLYDIR)
    }

    /// Sleeps until an open happens in a watched directory or `timeout` passes; returns
    /// everything queued (empty on timeout).
    pub fn wait(&self, timeout: Duration) -> Vec<Opened> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut pfd = [nix::poll::PollFd::new(
            self.fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if !matches!(nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(ms)), Ok(n) if n > 0) {
            return Vec::new();
        }
        // Large enough for any single event (16 + NAME_MAX + 1).
        let mut buf = [0u8; 16384];
        let mut out = Vec::new();
        loop {
            match nix::unistd::read(self.fd.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => out.extend(parse_events(&buf[..n])),
                _ => return out,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(wd: i32, mask: u32, name: &str) -> Vec<u8> {
        let mut name = name.as_bytes().to_vec();
        name.resize(name.len().div_ceil(16).max(1) * 16, 0);
        let mut v = Vec::new();
        v.extend(wd.to_ne_bytes());
        v.extend(mask.to_ne_bytes());
        v.extend(0u32.to_ne_bytes());
        v.extend((name.len() as u32).to_ne_bytes());
        v.extend(name);
        v
    }

    #[test]
    fn events_are_parsed_with_their_padded_names() {
        let mut buf = record(1, libc::IN_OPEN, "which.debianutils");
        buf.extend(record(1, libc::IN_OPEN | libc::IN_ISDIR, "sub"));
        buf.extend(record(2, libc::IN_OPEN, "dash"));
        buf.extend(record(-1, libc::IN_Q_OVERFLOW, ""));
        assert_eq!(
            parse_events(&buf),
            vec![
                Opened::File {
                    wd: 1,
                    name: "which.debianutils".into()
                },
                Opened::File {
                    wd: 2,
                    name: "dash".into()
                },
                Opened::Overflow,
            ]
        );
        // A truncated record is ignored, not read past.
        assert_eq!(parse_events(&buf[..20]), vec![]);
    }
}
