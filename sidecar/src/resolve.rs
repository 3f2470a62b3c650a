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

/// The task a path is resolved for: whose `/proc/self` it names, and which
/// processes are nfguard's own (their /proc entries are never the target's to use).
pub struct Task<'a> {
    /// The process (thread group) of the calling thread, in the PID namespace
    /// the target's /proc shows (the supervisor's: nfguard shares it, fact 2).
    /// Asked only for a path that needs it (reading it costs a /proc read).
    pub tgid: &'a dyn Fn() -> i32,
    pub tid: i32,
    pub is_nfguard: &'a dyn Fn(i32) -> bool,
}

/// Why a path was not resolved.
#[derive(Debug)]
pub enum ResolveError {
    /// What the kernel would say for this path (or our own failure).
    Io(io::Error),
    /// A path nfguard will not follow for the task: this errno, and why.
    Refused(i32, String),
    /// A path into nfguard's own processes: never the task's, in any mode.
    Own(String),
}

impl From<io::Error> for ResolveError {
    fn from(e: io::Error) -> Self {
        ResolveError::Io(e)
    }
}

/// `/proc/self` and `/proc/thread-self` at the start of `path`, as the task's
/// own entries (`/proc/<tgid>`, `/proc/<tgid>/task/<tid>`): resolved by the
/// supervisor they would name the supervisor's.
pub fn own_proc(path: &str, task: &Task<'_>) -> Option<String> {
    if !path.starts_with("/proc/") {
        return None;
    }
    for (name, with) in [
        ("/proc/self", format!("/proc/{}", (task.tgid)())),
        (
            "/proc/thread-self",
            format!("/proc/{}/task/{}", (task.tgid)(), task.tid),
        ),
    ] {
        if let Some(rest) = path.strip_prefix(name) {
            if rest.is_empty() || rest.starts_with('/') {
                return Some(format!("{with}{rest}"));
            }
        }
    }
    None
}

/// The pid of `/proc/<pid>/...` in a real path, if it is one.
fn proc_pid(real: &str) -> Option<i32> {
    real.strip_prefix("/proc/")?.split('/').next()?.parse().ok()
}

/// Resolves `path` (absolute in the target's view) for `task`, as the kernel
/// would for it: `/proc/self` is the task's, a /proc magic link of the task
/// (`/proc/self/fd/3`, `/dev/stdout`) names the task's own open file, and a
/// magic link of any other process, or an entry of nfguard's own processes,
/// is refused.
///
/// The common path is one `openat2` (RESOLVE_IN_ROOT, no magic links); only a
/// path that meets a magic link (ELOOP there) or lands in nfguard's own /proc
/// takes the walk of [`walk`], component by component.
pub fn resolve_for(
    root: &Root,
    path: &str,
    follow: bool,
    task: &Task<'_>,
) -> Result<Resolved, ResolveError> {
    let path = own_proc(path, task).unwrap_or_else(|| path.to_string());
    match resolve(root, &path, follow) {
        Ok(r) => match proc_pid(r.real()) {
            Some(p) if p == std::process::id() as i32 || (task.is_nfguard)(p) => {
                walk(root, &path, follow, task)
            }
            _ => Ok(r),
        },
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => walk(root, &path, follow, task),
        // A path into a non-dumpable process's /proc entries (nfguard's own
        // are) is refused by the kernel before any magic link: the walk says
        // whose it is (and gives the same EACCES for anyone else's).
        Err(e) if e.raw_os_error() == Some(libc::EACCES) && path.contains("/proc") => {
            match walk(root, &path, follow, task) {
                Err(ResolveError::Own(why)) => Err(ResolveError::Own(why)),
                _ => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The parent of `path` resolved for `task` (see [`resolve_for`]), and the
/// final name kept as it is.
pub fn resolve_parent_for(
    root: &Root,
    path: &str,
    task: &Task<'_>,
) -> Result<(OwnedFd, String, String), ResolveError> {
    let path = own_proc(path, task).unwrap_or_else(|| path.to_string());
    let (dir_path, name) = split_parent(&path);
    if name.is_empty() || name == "." || name == ".." {
        return Err(io::Error::from_raw_os_error(libc::EINVAL).into());
    }
    match resolve_for(root, dir_path, true, task)? {
        Resolved::Existing { fd, real } => {
            let real = format!("{}/{name}", real.trim_end_matches('/'));
            Ok((fd, real, name.to_string()))
        }
        Resolved::Missing { .. } => Err(io::Error::from_raw_os_error(libc::ENOENT).into()),
    }
}

/// A /proc magic link, by where it sits.
#[derive(Debug, PartialEq, Eq)]
enum Magic {
    /// `/proc/<pid>[/task/<tid>]/fd/<n>`: thread `tid`'s fd `n`.
    Fd { pid: i32, tid: i32, fd: i32 },
    /// `/proc/<pid>[/task/<tid>]/{cwd,root,exe}`.
    Named { pid: i32, tid: i32, name: String },
    /// Any other (`map_files`, `ns`), or a malformed one.
    Other { pid: i32 },
}

/// Which magic link `comps` (a path in a procfs, from its root: `[pid, ...]`)
/// is, if any. Only per-process entries are magic; `/proc/mounts` and
/// `/proc/net` are plain symlinks into `self`.
fn magic(comps: &[&str]) -> Option<Magic> {
    let pid: i32 = comps.first()?.parse().ok()?;
    let (tid, rest) = match comps.get(1..)? {
        ["task", t, rest @ ..] => (t.parse().ok()?, rest),
        rest => (pid, rest),
    };
    match rest {
        [name] if matches!(*name, "cwd" | "root" | "exe") => Some(Magic::Named {
            pid,
            tid,
            name: name.to_string(),
        }),
        ["fd", n] => Some(match n.parse() {
            Ok(fd) => Magic::Fd { pid, tid, fd },
            Err(_) => Magic::Other { pid },
        }),
        [dir, _] if matches!(*dir, "map_files" | "ns" | "fd") => Some(Magic::Other { pid }),
        _ => None,
    }
}

/// The file a magic link of `task` names, opened for us: the task's own fd
/// (taken with pidfd_getfd), or its cwd, root or executable.
fn open_magic(m: Magic, shown: &str, task: &Task<'_>) -> Result<OwnedFd, ResolveError> {
    let ours = |pid: i32| pid == std::process::id() as i32 || (task.is_nfguard)(pid);
    let refuse = |why: String| ResolveError::Refused(libc::EACCES, why);
    let (pid, tid) = match &m {
        Magic::Fd { pid, tid, .. } | Magic::Named { pid, tid, .. } => (*pid, *tid),
        Magic::Other { pid } => (*pid, *pid),
    };
    if ours(pid) {
        return Err(ResolveError::Own(format!(
            "{shown} is an entry of nfguard's own process {pid}"
        )));
    }
    let thread_of_task =
        pid == (task.tgid)() && crate::procfs::read_status(tid).is_some_and(|s| s.tgid == pid);
    if !thread_of_task {
        return Err(refuse(format!(
            "{shown} is a /proc magic link of another process ({pid}), which nfguard does not follow"
        )));
    }
    match m {
        Magic::Fd { tid, fd, .. } => {
            let pidfd = sys::pidfd_open_thread(tid)?;
            Ok(sys::pidfd_getfd(pidfd.as_fd(), fd)?)
        }
        Magic::Named { tid, name, .. } => Ok(open_path(&format!("/proc/{tid}/{name}"), 0)?),
        Magic::Other { .. } => Err(refuse(format!(
            "{shown} is a /proc magic link nfguard does not follow"
        ))),
    }
}

/// Resolves `path` for `task` one component at a time, following symlinks
/// itself: `self` and `thread-self` in a procfs are the task's, and a magic
/// link of the task is replaced by what it names (see [`resolve_for`]).
///
/// Each step opens one name beneath the directory reached (O_PATH,
/// O_NOFOLLOW); `..` returns to the directory the walk came from, never above
/// the root, as RESOLVE_IN_ROOT does. A magic link to a directory continues
/// from that directory's real path.
fn walk(root: &Root, path: &str, follow: bool, task: &Task<'_>) -> Result<Resolved, ResolveError> {
    let dup = |fd: &OwnedFd| fd.try_clone();
    // The directories walked through, from the root: (fd, name, whether it is
    // the root of a procfs, the first procfs directory the walk entered).
    let mut stack: Vec<(OwnedFd, String, bool)> = vec![(dup(&root.fd)?, String::new(), false)];
    let mut queue: std::collections::VecDeque<String> =
        path.split('/').map(str::to_string).collect();
    let mut links = 0;
    while let Some(c) = queue.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            _ => {}
        }
        let last = queue.iter().all(|q| q.is_empty() || q == ".");
        // The components below the procfs this walk is in, if it is in one.
        let in_proc = stack.iter().position(|(_, _, p)| *p);
        let below_proc: Vec<&str> = match in_proc {
            Some(i) => stack[i + 1..].iter().map(|(_, n, _)| n.as_str()).collect(),
            None => Vec::new(),
        };
        let c = match (in_proc, below_proc.is_empty(), c.as_str()) {
            (Some(_), true, "self") => (task.tgid)().to_string(),
            (Some(_), true, "thread-self") => {
                queue.push_front(task.tid.to_string());
                queue.push_front("task".into());
                (task.tgid)().to_string()
            }
            _ => c,
        };
        let (dir, _, _) = stack
            .last()
            .ok_or(io::Error::from_raw_os_error(libc::EIO))?;
        let opened = sys::openat2(
            dir.as_fd(),
            &cstr(&c)?,
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
            libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_BENEATH,
        );
        let fd = match opened {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && last => {
                let real_dir = root.real_path(dir)?;
                return Ok(Resolved::Missing {
                    dir: dup(dir)?,
                    real: format!("{}/{c}", real_dir.trim_end_matches('/')),
                    name: c,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(io::Error::from)?;
        let kind = st.st_mode & libc::S_IFMT;
        if kind == libc::S_IFLNK && (!last || follow) {
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP).into());
            }
            if in_proc.is_some() {
                let mut comps = below_proc.clone();
                comps.push(&c);
                if let Some(m) = magic(&comps) {
                    let shown = format!("/proc/{}", comps.join("/"));
                    let target = open_magic(m, &shown, task)?;
                    let real = root.real_path(&target)?;
                    if last {
                        return Ok(Resolved::Existing { fd: target, real });
                    }
                    // A directory (a cwd, a root, an fd of a directory): go on
                    // from its real path, as from an absolute symlink.
                    if !real.starts_with('/') {
                        return Err(io::Error::from_raw_os_error(libc::ENOTDIR).into());
                    }
                    stack.truncate(1);
                    for part in real.rsplit('/') {
                        queue.push_front(part.to_string());
                    }
                    continue;
                }
            }
            let target =
                nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "").map_err(io::Error::from)?;
            let target = target.to_string_lossy().into_owned();
            if target.starts_with('/') {
                stack.truncate(1);
            }
            for part in target.rsplit('/') {
                queue.push_front(part.to_string());
            }
            continue;
        }
        if last {
            let real = root.real_path(&fd)?;
            return Ok(Resolved::Existing { fd, real });
        }
        if kind != libc::S_IFDIR {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR).into());
        }
        let is_proc = in_proc.is_some()
            || sys::fstatfs_type(fd.as_fd()).is_ok_and(|t| t == sys::PROC_SUPER_MAGIC);
        stack.push((fd, c, is_proc && in_proc.is_none()));
        // Entering nfguard's own /proc/<pid>: refused whatever follows.
        if let Some(i) = stack.iter().position(|(_, _, p)| *p) {
            if stack.len() == i + 2 {
                if let Ok(pid) = stack[i + 1].1.parse::<i32>() {
                    if pid == std::process::id() as i32 || (task.is_nfguard)(pid) {
                        return Err(ResolveError::Own(format!(
                            "/proc/{pid} is nfguard's own process"
                        )));
                    }
                }
            }
        }
    }
    // The path ended on a directory (`/`, a trailing `..`).
    let (dir, _, _) = stack
        .last()
        .ok_or(io::Error::from_raw_os_error(libc::EIO))?;
    let fd = dup(dir)?;
    let real = root.real_path(&fd)?;
    Ok(Resolved::Existing { fd, real })
}

/// Re-opens an O_PATH fd with real access flags through /proc/self/fd (the
/// kernel checks permissions again on this open).
pub fn reopen(fd: &OwnedFd, flags: i32) -> io::Result<OwnedFd> {
    reopen_with_mode(fd, flags, 0)
}

/// [`reopen`] with the mode an O_TMPFILE open of a directory creates its file with.
pub fn reopen_with_mode(fd: &OwnedFd, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(&format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    sys::openat2(sys::cwd(), &c, flags, mode, 0)
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

    fn me() -> i32 {
        std::process::id() as i32
    }

    #[test]
    fn proc_self_names_the_task_not_the_resolver() {
        // The task here is another process (a sleeping child): its
        // /proc/self is its own, even through a symlink to /proc/self.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let tgid = || pid;
        let none = |_: i32| false;
        let task = Task {
            tgid: &tgid,
            tid: pid,
            is_nfguard: &none,
        };
        let root = Root::of(me()).unwrap();
        let r = resolve_for(&root, "/proc/self/comm", true, &task).unwrap();
        assert_eq!(r.real(), format!("/proc/{pid}/comm"));
        let d = tempfile::tempdir().unwrap();
        let link = d.path().join("self-link");
        std::os::unix::fs::symlink("/proc/self/comm", &link).unwrap();
        let r = resolve_for(&root, link.to_str().unwrap(), true, &task).unwrap();
        assert_eq!(
            r.real(),
            format!("/proc/{pid}/comm"),
            "through a symlink too"
        );
        let r = resolve_for(&root, "/proc/thread-self/comm", true, &task).unwrap();
        assert_eq!(r.real(), format!("/proc/{pid}/task/{pid}/comm"));
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn a_magic_link_of_the_task_is_its_open_file_and_of_another_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("opened");
        std::fs::write(&file, "x").unwrap();
        // The task: a process whose fd 0 is `opened`, reached through
        // /proc/self/fd/0, /dev/fd/0 and /dev/stdin (symlinks into /proc/self).
        let mut task_proc = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::fs::File::open(&file).unwrap())
            .spawn()
            .unwrap();
        let pid = task_proc.id() as i32;
        let tgid = || pid;
        let none = |_: i32| false;
        let task = Task {
            tgid: &tgid,
            tid: pid,
            is_nfguard: &none,
        };
        let root = Root::of(me()).unwrap();
        let real = std::fs::canonicalize(&file).unwrap();
        for p in ["/proc/self/fd/0", "/dev/fd/0", "/dev/stdin"] {
            let r = resolve_for(&root, p, true, &task).unwrap();
            assert_eq!(r.real(), real.to_str().unwrap(), "{p}");
        }
        // Another process's fd is refused, with a reason.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let other = child.id();
        match resolve_for(&root, &format!("/proc/{other}/fd/0"), true, &task) {
            Err(ResolveError::Refused(_, why)) => assert!(why.contains("another process"), "{why}"),
            other => panic!("not refused: {:?}", other.map(|r| r.real().to_string())),
        }
        // nfguard's own processes are never the task's.
        let ours = |p: i32| p == other as i32;
        let task = Task {
            tgid: &tgid,
            tid: pid,
            is_nfguard: &ours,
        };
        assert!(matches!(
            resolve_for(&root, &format!("/proc/{other}/comm"), true, &task),
            Err(ResolveError::Own(_))
        ));
        for c in [&mut child, &mut task_proc] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    #[test]
    fn the_walk_resolves_like_the_kernel_for_dotdot_and_symlinks() {
        // A path that meets a magic link takes the walk: its `..` and
        // relative links must come out where openat2 would.
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let b = base.to_str().unwrap();
        std::fs::create_dir_all(format!("{b}/a/b")).unwrap();
        std::fs::write(format!("{b}/a/f"), "").unwrap();
        std::os::unix::fs::symlink("b/..", format!("{b}/a/up")).unwrap();
        std::os::unix::fs::symlink(format!("{b}/a/f"), format!("{b}/abs")).unwrap();
        let tgid = me;
        let none = |_: i32| false;
        let task = Task {
            tgid: &tgid,
            tid: me(),
            is_nfguard: &none,
        };
        let root = Root::of(me()).unwrap();
        for (path, want) in [
            (format!("{b}/a/up/f"), format!("{b}/a/f")),
            (format!("{b}/a/b/../f"), format!("{b}/a/f")),
            (format!("{b}/abs"), format!("{b}/a/f")),
            (format!("{b}/a/b/../../a/f"), format!("{b}/a/f")),
        ] {
            let fast = resolve(&root, &path, true).unwrap();
            let walked = walk(&root, &path, true, &task).unwrap();
            assert_eq!(fast.real(), want, "{path}");
            assert_eq!(walked.real(), want, "{path}");
        }
        match walk(&root, &format!("{b}/a/new"), true, &task).unwrap() {
            Resolved::Missing { real, name, .. } => {
                assert_eq!(
                    (real.as_str(), name.as_str()),
                    (format!("{b}/a/new").as_str(), "new")
                )
            }
            Resolved::Existing { .. } => panic!("a/new does not exist"),
        }
        std::os::unix::fs::symlink("loop", format!("{b}/loop")).unwrap();
        assert!(matches!(
            walk(&root, &format!("{b}/loop"), true, &task),
            Err(ResolveError::Io(e)) if e.raw_os_error() == Some(libc::ELOOP)
        ));
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
