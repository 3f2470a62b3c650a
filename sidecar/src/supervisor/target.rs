//! The task behind one notification, and what the supervisor reads of it:
//! its memory (the strings and structs its pointers name), its /proc entries,
//! its fds.
//!
//! A notification names a *thread* (`seccomp_notif.pid` is a tid). Everything
//! here is read per thread, never per process: `/proc/<tid>/...` (a thread's
//! cwd, root, fd table and credentials can be its own: CLONE_FS, CLONE_FILES
//! and setfsuid are per thread), and pidfds are thread pidfds (`PIDFD_THREAD`,
//! linux 6.9): `pidfd_open(tid)` without it fails for any thread but the
//! leader, which once left every call of a worker thread uninspected.
//!
//! Memory is read through the [`Memory`] seam, so the parsers of what a
//! pointer names (`read_cstring`, `read_bytes`, `read_argv`) are tested on
//! arbitrary memory contents without a process.

use std::cell::OnceCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use super::decode::{Base, Ptr};
use super::failure::Failure;
use crate::procfs;
use crate::resolve::{self, Root, RootCache};
use crate::sys;

/// Longest path read from a target (PATH_MAX).
pub const PATH_MAX: usize = 4096;
/// Most argv entries read for an event.
pub const MAX_ARGS: usize = 256;
/// The page size these reads respect: a read that crosses into an unmapped
/// page fails whole, although the string may end before it.
const PAGE: u64 = 4096;

/// Something that reads another address space.
pub trait Memory {
    /// Reads up to `buf.len()` bytes at `addr`: how many were read (0 at an
    /// unmapped address), or the error of the read itself.
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Is `addr` mapped at all? Asked when a read fails with EFAULT: memory
    /// the kernel can read for the task but `process_vm_readv` cannot (a
    /// memfd_secret page, an execute-only page) is not the task's bad pointer.
    fn mapped(&self, _addr: u64) -> bool {
        false
    }
}

/// A live task's memory (`process_vm_readv`, which takes a tid as well).
#[derive(Debug, Clone, Copy)]
pub struct TaskMemory(pub i32);

impl Memory for TaskMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        sys::read_process_memory(self.0, addr, buf)
    }

    fn mapped(&self, addr: u64) -> bool {
        std::fs::read_to_string(format!("/proc/{}/maps", self.0))
            .is_ok_and(|m| procfs::maps_unreadable_to_others(&m, addr))
    }
}

/// A read of the target's memory: EFAULT is the target's (a bad pointer, the
/// kernel would say the same); a refusal is ours (no ptrace rights over it).
fn read_mem<M: Memory>(m: &M, addr: u64, buf: &mut [u8]) -> Result<usize, Failure> {
    m.read(addr, buf).map_err(|e| match e.raw_os_error() {
        Some(libc::EFAULT) if m.mapped(addr) => Failure::refused(
            libc::EACCES,
            format!(
                "the argument at {addr:#x} is in memory nfguard cannot read (memfd_secret or execute-only)"
            ),
        ),
        Some(libc::EFAULT) => Failure::Target(libc::EFAULT),
        Some(libc::ESRCH) => Failure::Gone,
        Some(libc::EPERM) | Some(libc::EACCES) => Failure::Internal {
            step: "read the task's memory",
            error: format!(
                "{e} (the supervisor needs the workload's uid and its capabilities, or CAP_SYS_PTRACE)"
            ),
        },
        _ => Failure::ours("read the task's memory", e),
    })
}

/// Reads exactly `len` bytes at `addr`.
pub fn read_bytes<M: Memory>(m: &M, addr: u64, len: usize) -> Result<Vec<u8>, Failure> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let at = addr
            .checked_add(done as u64)
            .ok_or(Failure::Target(libc::EFAULT))?;
        let n = read_mem(m, at, &mut buf[done..])?;
        if n == 0 {
            return Err(Failure::Target(libc::EFAULT));
        }
        done += n;
    }
    Ok(buf)
}

/// Reads a NUL-terminated string of at most PATH_MAX bytes, a page at a time.
/// Not UTF-8 is refused: the model names paths as text, and a lossy name
/// would let two files share one model entry.
pub fn read_cstring<M: Memory>(m: &M, addr: u64) -> Result<String, Failure> {
    if addr == 0 {
        return Err(Failure::Target(libc::EFAULT));
    }
    let mut out = Vec::new();
    let mut at = addr;
    // Most paths are short: read 256 bytes first (never past the page, whose
    // neighbour may be unmapped), then up to a page at a time.
    let mut small = [0u8; 256];
    let mut big = vec![0u8; 0];
    while out.len() < PATH_MAX {
        let page_left = (PAGE - at % PAGE) as usize;
        let first = out.is_empty() && big.is_empty();
        let want = page_left.min(PATH_MAX - out.len()).min(if first {
            small.len()
        } else {
            PAGE as usize
        });
        let chunk = if first {
            &mut small[..want]
        } else {
            big.resize(PAGE as usize, 0);
            &mut big[..want]
        };
        let n = read_mem(m, at, chunk)?.min(want);
        if n == 0 {
            return Err(Failure::Target(libc::EFAULT));
        }
        if let Some(end) = chunk[..n].iter().position(|c| *c == 0) {
            out.extend_from_slice(&chunk[..end]);
            return String::from_utf8(out).map_err(|e| {
                Failure::refused(
                    libc::EACCES,
                    format!(
                        "the path {:?} is not UTF-8: nfguard names paths as text and will not judge this one",
                        String::from_utf8_lossy(e.as_bytes())
                    ),
                )
            });
        }
        out.extend_from_slice(&chunk[..n]);
        at = at
            .checked_add(n as u64)
            .ok_or(Failure::Target(libc::EFAULT))?;
    }
    Err(Failure::Target(libc::ENAMETOOLONG))
}

/// Reads an argv array for an event (at most MAX_ARGS entries; stops at the
/// first entry it cannot read: this is for people, not for decisions).
pub fn read_argv<M: Memory>(m: &M, addr: u64) -> Vec<String> {
    let mut argv = Vec::new();
    if addr == 0 {
        return argv;
    }
    for i in 0..MAX_ARGS as u64 {
        let Some(at) = addr.checked_add(8 * i) else {
            break;
        };
        let Ok(p) = read_bytes(m, at, 8) else {
            break;
        };
        let mut w = [0u8; 8];
        w.copy_from_slice(&p);
        let ptr = u64::from_ne_bytes(w);
        if ptr == 0 {
            break;
        }
        match read_cstring(m, ptr) {
            Ok(s) => argv.push(s),
            Err(_) => break,
        }
    }
    argv
}

/// A thread's user and group ids: real, effective, saved, filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: [u32; 4],
    pub gid: [u32; 4],
}

/// The rights of a workload's thread, for what the supervisor does for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    /// Real, effective, saved (the supervisor's own, to get back), filesystem.
    pub ids: Ids,
    pub groups: Vec<u32>,
    /// The task's effective capabilities.
    pub cap_eff: u64,
}

/// The task of one notification.
pub struct Target<'a> {
    tid: i32,
    roots: &'a RootCache,
    status: OnceCell<Option<procfs::Status>>,
    exe: OnceCell<String>,
    pidfd: OnceCell<Result<OwnedFd, i32>>,
    /// The rights to act with for it (see `Emulator::creds_for`), once found.
    pub(super) creds: OnceCell<Result<Option<Creds>, i32>>,
}

impl<'a> Target<'a> {
    pub fn new(tid: i32, roots: &'a RootCache) -> Target<'a> {
        Target {
            tid,
            roots,
            status: OnceCell::new(),
            exe: OnceCell::new(),
            pidfd: OnceCell::new(),
            creds: OnceCell::new(),
        }
    }

    /// The process of the calling thread (its thread group's id).
    pub fn tgid(&self) -> i32 {
        self.status()
            .map(|s| s.tgid)
            .filter(|t| *t > 0)
            .unwrap_or(self.tid)
    }

    /// The calling thread's id in our PID namespace.
    pub fn tid(&self) -> i32 {
        self.tid
    }

    pub fn memory(&self) -> TaskMemory {
        TaskMemory(self.tid)
    }

    /// `/proc/<tid>/status`, read at most once per call.
    pub fn status(&self) -> Option<&procfs::Status> {
        self.status
            .get_or_init(|| procfs::read_status(self.tid))
            .as_ref()
    }

    /// The executable of the calling task (`?` when it cannot be read), read
    /// at most once per call.
    pub fn exe(&self) -> &str {
        self.exe.get_or_init(|| procfs::exe_of(self.tid))
    }

    /// A pidfd of the calling thread, opened at most once per call.
    pub fn pidfd(&self) -> Result<BorrowedFd<'_>, Failure> {
        let r = self.pidfd.get_or_init(|| {
            sys::pidfd_open_thread(self.tid)
                .or_else(|e| match e.raw_os_error() {
                    // Before linux 6.9 (no PIDFD_THREAD): a process pidfd, which
                    // only a thread-group leader has.
                    Some(libc::EINVAL) => sys::pidfd_open(self.tid),
                    _ => Err(e),
                })
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
        });
        match r {
            Ok(fd) => Ok(fd.as_fd()),
            Err(code) => Err(Failure::ours(
                "open a pidfd of the calling thread",
                io::Error::from_raw_os_error(*code),
            )),
        }
    }

    /// Fd `fd` of the calling thread, duplicated into our table
    /// (`pidfd_getfd`, which needs ptrace-attach rights over it).
    pub fn take_fd(&self, fd: i32) -> Result<OwnedFd, Failure> {
        let pidfd = self.pidfd()?;
        sys::pidfd_getfd(pidfd, fd).map_err(|e| match e.raw_os_error() {
            Some(libc::EBADF) => Failure::Target(libc::EBADF),
            Some(libc::EPERM) | Some(libc::EACCES) => Failure::Internal {
                step: "take the task's fd",
                error: format!(
                    "fd {fd} of thread {}: {e} (the supervisor needs ptrace rights over it)",
                    self.tid
                ),
            },
            _ => Failure::ours("take the task's fd", e),
        })
    }

    /// The target's root (one statx per call when it is the cached one).
    pub fn root(&self) -> Result<Rc<Root>, Failure> {
        self.roots
            .root_of(self.tid)
            .map_err(|e| Failure::ours("open the task's root", e))
    }

    /// The directory a relative path starts from, as a path in the target's
    /// view: its cwd, or what its directory fd names.
    pub fn base_dir(&self, base: Base) -> Result<String, Failure> {
        let what = match base {
            Base::Cwd => "cwd".to_string(),
            Base::Fd(fd) => format!("fd/{fd}"),
        };
        match procfs::read_link(self.tid, &what) {
            Some(p) => Ok(p),
            // Gone, or not an fd of the task: the kernel would say EBADF for the
            // latter; the former is noticed at the next step.
            None if base != Base::Cwd => Err(Failure::Target(libc::EBADF)),
            None => Err(Failure::Internal {
                step: "read the task's cwd",
                error: format!("/proc/{}/cwd is unreadable", self.tid),
            }),
        }
    }

    /// Reads a path argument and makes it absolute in the target's view.
    pub fn path_arg(&self, base: Base, addr: Ptr) -> Result<String, Failure> {
        let p = read_cstring(&self.memory(), addr.0)?;
        if p.is_empty() {
            return Err(Failure::Target(libc::ENOENT));
        }
        if p.starts_with('/') {
            return Ok(p);
        }
        // `./` components say nothing; past them, a relative path the kernel
        // takes may still be longer than PATH_MAX once made absolute, which
        // nfguard cannot resolve: said, not answered as the task's error.
        let p: Vec<&str> = p.split('/').filter(|c| *c != ".").collect();
        let abs = resolve::absolutize(&self.base_dir(base)?, &p.join("/"));
        if abs.len() >= PATH_MAX {
            return Err(Failure::refused(
                libc::ENAMETOOLONG,
                format!(
                    "a relative path of {} bytes made absolute is longer than PATH_MAX: nfguard cannot resolve it",
                    abs.len()
                ),
            ));
        }
        Ok(abs)
    }

    /// The target's cmdline (for events).
    pub fn cmdline(&self) -> Vec<String> {
        procfs::read_cmdline(self.tid)
    }

    /// The target's cwd, for events (empty when unreadable).
    pub fn cwd(&self) -> String {
        procfs::read_link(self.tid, "cwd").unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An address space for tests: `data` mapped at `base`, nothing else.
    struct Fake {
        base: u64,
        data: Vec<u8>,
        /// Fail every read with this errno instead.
        error: Option<i32>,
    }

    impl Memory for Fake {
        fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
            if let Some(e) = self.error {
                return Err(io::Error::from_raw_os_error(e));
            }
            let from = addr.wrapping_sub(self.base);
            if addr < self.base || from >= self.data.len() as u64 {
                return Err(io::Error::from_raw_os_error(libc::EFAULT));
            }
            let from = from as usize;
            let n = buf.len().min(self.data.len() - from);
            buf[..n].copy_from_slice(&self.data[from..from + n]);
            Ok(n)
        }
    }

    fn mem(data: &[u8]) -> Fake {
        Fake {
            base: 0x10_0000,
            data: data.to_vec(),
            error: None,
        }
    }

    #[test]
    fn strings_end_at_their_nul_even_across_pages() {
        // The kernel's limit: PATH_MAX bytes with the NUL. Read from an
        // address 100 bytes into a page, so the string crosses a page.
        let mut data = vec![b'a'; 5000];
        data[100 + 4095] = 0;
        let m = mem(&data);
        assert_eq!(read_cstring(&m, 0x10_0000 + 100).unwrap().len(), 4095);
        data[100 + 4095] = b'a';
        data[100 + 4096] = 0;
        let m = mem(&data);
        assert!(matches!(
            read_cstring(&m, 0x10_0000 + 100),
            Err(Failure::Target(libc::ENAMETOOLONG))
        ));
        let m = mem(b"/etc/passwd\0garbage");
        assert_eq!(read_cstring(&m, 0x10_0000).unwrap(), "/etc/passwd");
        // A string that runs into unmapped memory is a bad pointer.
        let m = mem(b"/etc/pas");
        assert!(matches!(
            read_cstring(&m, 0x10_0000),
            Err(Failure::Target(libc::EFAULT))
        ));
        assert!(matches!(
            read_cstring(&m, 0),
            Err(Failure::Target(libc::EFAULT))
        ));
    }

    #[test]
    fn a_path_longer_than_path_max_is_enametoolong() {
        let m = mem(&[b'x'; 9000]);
        assert!(matches!(
            read_cstring(&m, 0x10_0000),
            Err(Failure::Target(libc::ENAMETOOLONG))
        ));
    }

    #[test]
    fn no_rights_over_the_task_is_our_failure_not_its() {
        let m = Fake {
            base: 0,
            data: vec![],
            error: Some(libc::EPERM),
        };
        assert!(matches!(read_cstring(&m, 8), Err(Failure::Internal { .. })));
        let m = Fake {
            base: 0,
            data: vec![],
            error: Some(libc::ESRCH),
        };
        assert!(matches!(read_bytes(&m, 8, 4), Err(Failure::Gone)));
    }

    #[test]
    fn argv_is_read_until_its_null_pointer() {
        // [ptr "ps", ptr "-ef", 0] at base, strings after it.
        let base = 0x10_0000u64;
        let mut data = Vec::new();
        data.extend_from_slice(&(base + 24).to_ne_bytes());
        data.extend_from_slice(&(base + 27).to_ne_bytes());
        data.extend_from_slice(&0u64.to_ne_bytes());
        data.extend_from_slice(b"ps\0-ef\0");
        let m = Fake {
            base,
            data,
            error: None,
        };
        assert_eq!(read_argv(&m, base), vec!["ps", "-ef"]);
        assert!(read_argv(&m, 0).is_empty());
    }

    proptest! {
        /// Any memory contents at any address: an answer, never a panic.
        #[test]
        fn any_memory_reads_without_panic(
            data in proptest::collection::vec(any::<u8>(), 0..9000),
            base in any::<u64>(),
            offset in 0u64..10_000,
            len in 0usize..300,
        ) {
            let m = Fake { base, data, error: None };
            let addr = base.wrapping_add(offset);
            let _ = read_cstring(&m, addr);
            let _ = read_bytes(&m, addr, len);
            let _ = read_argv(&m, addr);
        }
    }
}
