//! Resolving a path argument the way the kernel would for the target, once,
//! into fds the supervisor holds. Decisions are made on the *real* path of
//! what those fds name, and enforce-mode emulation acts on the same fds, so a
//! racing thread that rewrites the path string, swaps a symlink or changes the
//! target's cwd after the check changes nothing (docs/architecture.md, fact 4).
//!
//! Absolute symlinks resolve inside the target's root (`/proc/<pid>/root` with
//! RESOLVE_IN_ROOT), so a link to `/etc/passwd` in a container names the
//! container's file, never the sidecar's.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use crate::sys;

/// Symlinks followed before giving up (the kernel's MAXSYMLINKS is 40).
const MAX_LINKS: usize = 40;

/// The target's root and the prefix to strip from real paths read through it.
pub struct Root {
    pub fd: OwnedFd,
    /// `readlink /proc/<pid>/root`: "/" unless the target is chrooted below our root.
    prefix: String,
}

impl Root {
    pub fn of(pid: i32) -> io::Result<Root> {
        let fd = open_path(&format!("/proc/{pid}/root"), libc::O_DIRECTORY)?;
        // The prefix is read from the fd we hold, not from /proc/<pid>/root
        // again: the task may change its root in between.
        let prefix = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?
            .to_string_lossy()
            .into_owned();
        Ok(Root { fd, prefix })
    }

    /// This root's identity (see [`RootId`]).
    pub fn id(&self) -> io::Result<RootId> {
        sys::mount_and_inode(self.fd.as_fd(), c"").map(RootId)
    }

    /// The real path (in the target's view) of something we hold an fd to.
    pub fn real_path(&self, fd: &OwnedFd) -> io::Result<String> {
        let p = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
        let p = p.to_string_lossy();
        Ok(strip_root(&self.prefix, &p))
    }
}

/// Removes a chroot prefix from a path read through /proc/self/fd.
pub fn strip_root(prefix: &str, path: &str) -> String {
    if prefix == "/" || prefix.is_empty() {
        return path.to_string();
    }
    match path.strip_prefix(prefix) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => path.to_string(),
    }
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// An O_PATH fd for an absolute path in our own view (used for /proc paths).
pub fn open_path(path: &str, extra: i32) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    sys::openat2(sys::cwd(), &c, libc::O_PATH | libc::O_CLOEXEC | extra, 0, 0)
}

/// Opens `path` (absolute, in the target's view) beneath the target's root.
fn open_in_root(root: &Root, path: &str, flags: i32) -> io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    sys::openat2(
        root.fd.as_fd(),
        &cstr(rel)?,
        flags | libc::O_CLOEXEC,
        0,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// What a path names.
pub enum Resolved {
    /// It exists: an O_PATH fd on it and its real path.
    Existing { fd: OwnedFd, real: String },
    /// It does not exist (yet): its real parent directory and the final name.
    Missing {
        dir: OwnedFd,
        real: String,
        name: String,
    },
}

impl Resolved {
    pub fn real(&self) -> &str {
        match self {
            Resolved::Existing { real, .. } | Resolved::Missing { real, .. } => real,
        }
    }
}

/// Splits an absolute path into (parent, final component).
pub fn split_parent(path: &str) -> (&str, &str) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => ("/", trimmed),
    }
}

/// What makes two roots resolve every path alike: the mount they are on and
/// the directory's device and inode. A mount belongs to one mount namespace,
/// so the same mount and inode mean the same directory seen through the same
/// mounts; a mount id is only reused once the mount is gone, and a cached
/// [`Root`] holds its mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootId((u64, u64, u64));

impl RootId {
    /// The identity of the root of task `pid`: one statx of `/proc/<pid>/root`.
    pub fn of_task(pid: i32) -> io::Result<RootId> {
        sys::mount_and_inode(sys::cwd(), &cstr(&format!("/proc/{pid}/root"))?).map(RootId)
    }
}

/// The root of the last task asked about, reused while the next task's root
/// has the same [`RootId`]: one statx per call instead of an open, a readlink
/// and a close (the tasks of one container almost always share their root).
#[derive(Default)]
pub struct RootCache(std::cell::RefCell<Option<(RootId, std::rc::Rc<Root>)>>);

impl RootCache {
    pub fn root_of(&self, pid: i32) -> io::Result<std::rc::Rc<Root>> {
        let id = RootId::of_task(pid)?;
        if let Some((cached, root)) = &*self.0.borrow() {
            if *cached == id {
                return Ok(std::rc::Rc::clone(root));
            }
        }
        let root = std::rc::Rc::new(Root::of(pid)?);
        // Keep it only if it is the root just identified (the task may have
        // changed its root between the statx and the open).
        if root.id().ok() == Some(id) {
            *self.0.borrow_mut() = Some((id, std::rc::Rc::clone(&root)));
        }
        Ok(root)
    }
}

/// Resolves `path` (absolute in the target's view). With `follow`, a final
/// symlink is followed, dangling ones included (as open(O_CREAT) would).
pub fn resolve(root: &Root, path: &str, follow: bool) -> io::Result<Resolved> {
    let mut path = path.to_string();
    for _ in 0..MAX_LINKS {
        let flags = libc::O_PATH | if follow { 0 } else { libc::O_NOFOLLOW };
        match open_in_root(root, &path, flags) {
            Ok(fd) => {
                let real = root.real_path(&fd)?;
                return Ok(Resolved::Existing { fd, real });
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let (dir_path, name) = split_parent(&path);
        if name.is_empty() || name == "." || name == ".." {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let dir = open_in_root(root, dir_path, libc::O_PATH | libc::O_DIRECTORY)?;
        let real_dir = root.real_path(&dir)?;
        if follow {
            // A dangling symlink: follow it, as the kernel would on create.
            if let Ok(target) = nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name) {
                let t = target.as_bytes();
                let t = String::from_utf8_lossy(t).into_owned();
                path = if t.starts_with('/') {
                    t
                } else {
                    format!("{}/{t}", real_dir.trim_end_matches('/'))
                };
                continue;
            }
        }
        let real = format!("{}/{name}", real_dir.trim_end_matches('/'));
        return Ok(Resolved::Missing {
            dir,
            real,
            name: name.to_string(),
        });
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

/// Resolves the parent of `path` and keeps the final name as it is (unlink,
/// rename and friends act on the link itself, never on what it points to).
pub fn resolve_parent(root: &Root, path: &str) -> io::Result<(OwnedFd, String, String)> {
    let (dir_path, name) = split_parent(path);
    if name.is_empty() || name == "." || name == ".." {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let dir = open_in_root(root, dir_path, libc::O_PATH | libc::O_DIRECTORY)?;
    let real_dir = root.real_path(&dir)?;
    let real = format!("{}/{name}", real_dir.trim_end_matches('/'));
    Ok((dir, real, name.to_string()))
}

/// Re-opens an O_PATH fd with real access flags through /proc/self/fd (the
/// kernel checks permissions again on this open).
pub fn reopen(fd: &OwnedFd, flags: i32) -> io::Result<OwnedFd> {
    let c = cstr(&format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    sys::openat2(sys::cwd(), &c, flags, 0, 0)
}

/// Creates `name` in `dir` without following a symlink that might have
/// appeared there since it was resolved.
pub fn create_in(dir: &OwnedFd, name: &str, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    sys::openat2(dir.as_fd(), &cstr(name)?, flags | libc::O_NOFOLLOW, mode, 0)
}

/// An absolute path for `path`, relative to `base` when it is relative.
pub fn absolutize(base: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", base.trim_end_matches('/'))
    }
}

pub fn cstring(s: &str) -> io::Result<CString> {
    cstr(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_and_names_split_like_dirname_and_basename() {
        assert_eq!(split_parent("/etc/passwd"), ("/etc", "passwd"));
        assert_eq!(split_parent("/x"), ("/", "x"));
        assert_eq!(split_parent("/a/b/"), ("/a", "b"));
        assert_eq!(absolutize("/home/u", "f"), "/home/u/f");
        assert_eq!(absolutize("/", "f"), "/f");
        assert_eq!(absolutize("/home", "/abs"), "/abs");
    }

    #[test]
    fn chroot_prefixes_are_stripped_only_at_a_component_boundary() {
        assert_eq!(strip_root("/", "/etc/x"), "/etc/x");
        assert_eq!(strip_root("/srv/jail", "/srv/jail/etc/x"), "/etc/x");
        assert_eq!(strip_root("/srv/jail", "/srv/jail"), "/");
        assert_eq!(
            strip_root("/srv/jail", "/srv/jailbreak/x"),
            "/srv/jailbreak/x"
        );
    }

    #[test]
    fn symlinks_resolve_inside_the_root_and_missing_files_name_their_real_parent() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        std::fs::create_dir(format!("{d}/real")).unwrap();
        std::os::unix::fs::symlink(format!("{d}/real"), format!("{d}/link")).unwrap();
        std::os::unix::fs::symlink(format!("{d}/real/target"), format!("{d}/dangling")).unwrap();
        let root = Root::of(std::process::id() as i32).unwrap();
        match resolve(&root, &format!("{d}/link/new"), true).unwrap() {
            Resolved::Missing { real, name, .. } => {
                assert_eq!(real, format!("{d}/real/new"));
                assert_eq!(name, "new");
            }
            Resolved::Existing { .. } => panic!("should not exist"),
        }
        let r = resolve(&root, &format!("{d}/dangling"), true).unwrap();
        assert_eq!(
            r.real(),
            format!("{d}/real/target"),
            "a dangling link is followed"
        );
        let r = resolve(&root, &format!("{d}/dangling"), false).unwrap();
        assert_eq!(r.real(), format!("{d}/dangling"), "unless told not to");
    }

    #[test]
    fn the_root_cache_is_reused_for_the_same_root_and_follows_a_chrooted_task() {
        let me = std::process::id() as i32;
        let cache = RootCache::default();
        let first = cache.root_of(me).unwrap();
        assert!(
            std::rc::Rc::ptr_eq(&first, &cache.root_of(me).unwrap()),
            "the same root is served from the cache"
        );
        if !nix::unistd::geteuid().is_root() {
            let msg = "the chroot half of this test needs root";
            assert!(std::env::var_os("CI").is_none(), "{msg}");
            eprintln!("SKIPPED: {msg}");
            return;
        }
        // A task in a chroot with its own /etc/marker (perl is in Debian's
        // essential set: it chroots after its exec, so needs no files inside).
        let jail = tempfile::tempdir().unwrap();
        std::fs::create_dir(jail.path().join("etc")).unwrap();
        std::fs::write(jail.path().join("etc/marker"), "jailed\n").unwrap();
        let mut child = std::process::Command::new("perl")
            .args(["-e", "chroot($ARGV[0]) or die $!; chdir '/'; sleep 30"])
            .arg(jail.path())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let ours = RootId::of_task(me).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while RootId::of_task(pid).unwrap() == ours {
            assert!(std::time::Instant::now() < deadline, "perl never chrooted");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let theirs = cache.root_of(pid).unwrap();
        assert!(!std::rc::Rc::ptr_eq(&first, &theirs));
        match resolve(&theirs, "/etc/marker", true).unwrap() {
            Resolved::Existing { fd, real } => {
                assert_eq!(real, "/etc/marker", "named in the task's view");
                let text =
                    std::fs::read_to_string(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
                assert_eq!(text, "jailed\n", "the jail's file, not ours");
            }
            Resolved::Missing { .. } => panic!("/etc/marker exists in the jail"),
        }
        // Back to our own root: the jail's files are not seen any more.
        let again = cache.root_of(me).unwrap();
        assert!(matches!(
            resolve(&again, "/etc/marker", true).unwrap(),
            Resolved::Missing { .. }
        ));
        let _ = child.kill();
        let _ = child.wait();
    }
}
