//! Inspecting the calls that change the filesystem: opens for write, creates,
//! truncates, and every call that makes, removes, moves or re-labels a name
//! (unlink, rmdir, rename, link, symlink, mkdir, mknod, chmod, xattrs).
//!
//! Every path is resolved once, for the task and with its rights
//! (`request::resolve_path`): decisions are made on the real path of what the
//! supervisor then holds an fd to, and the emulated call acts on those fds.
//! nfguard's own files are forbidden in every mode (`request::guard_own`).

use std::os::fd::{AsRawFd, OwnedFd};

use super::decode::{open_how, Base, Flags, Ptr, XattrTarget};
use super::emulate::{Emulation, LinkFrom};
use super::failure::Failure;
use super::request::{
    guard_own, guard_own_name, resolve_parent, resolve_path, Plan, Request, Scope,
};
use super::target::{self, Target};
use crate::event::{Category, Kind, Op};
use crate::resolve::Resolved;

/// The largest xattr value the kernel takes (XATTR_SIZE_MAX).
const XATTR_SIZE_MAX: u64 = 65536;
/// The longest xattr name (XATTR_NAME_MAX).
const XATTR_NAME_MAX: usize = 255;

fn fstat(fd: &OwnedFd) -> Option<libc::stat> {
    nix::sys::stat::fstat(fd.as_raw_fd()).ok()
}

/// A request that changes `real` (shown in the event as `shown`): nfguard's
/// own files are forbidden, and the change is what the model must allow.
fn changes(
    t: &Target<'_>,
    scope: &Scope<'_>,
    (op, errno): (Op, i32),
    shown: String,
    real: &str,
    st: Option<&libc::stat>,
) -> Request {
    let mut req = Request::new(Category::Filesystem, Some(op), errno);
    req.path = Some(shown);
    guard_own(&mut req, scope, real, st);
    req.touches(t.exe(), op, real.to_string());
    req
}

/// The task's fd `fd`, taken, and the real path of its file.
fn take_file(t: &Target<'_>, fd: i32) -> Result<(OwnedFd, String), Failure> {
    let f = t.take_fd(fd)?;
    let real = t
        .root()?
        .real_path(&f)
        .map_err(|e| Failure::ours("name the file behind the fd", e))?;
    Ok((f, real))
}

/// The task's directory a path starts from, held (its cwd or its dirfd).
fn task_dir(t: &Target<'_>, base: Base) -> Result<OwnedFd, Failure> {
    match base {
        Base::Fd(fd) => t.take_fd(fd),
        Base::Cwd => crate::resolve::open_path(&format!("/proc/{}/cwd", t.tid()), 0)
            .map_err(|e| Failure::ours("open the task's cwd", e)),
    }
}

/// Resolves an openat2 path with the task's own RESOLVE_* flags, from its
/// directory, as the kernel will (magic links refused in any case: a
/// /proc/self there would be ours).
fn resolve_as_asked(
    t: &Target<'_>,
    scope: &Scope<'_>,
    base: Base,
    path: Ptr,
    follow: bool,
    how: u64,
) -> Result<Resolved, Failure> {
    let raw = target::read_cstring(&t.memory(), path.0)?;
    if raw.is_empty() {
        return Err(Failure::Target(libc::ENOENT));
    }
    let dir = task_dir(t, base)?;
    let resolve_flags = how | libc::RESOLVE_NO_MAGICLINKS;
    let asked_no_links = how & (libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_SYMLINKS) != 0;
    let open = |p: &str, extra: i32| {
        scope.emulator.as_caller(t, || {
            crate::sys::openat2(
                std::os::fd::AsFd::as_fd(&dir),
                &crate::resolve::cstring(p)?,
                libc::O_PATH | libc::O_CLOEXEC | extra,
                0,
                resolve_flags,
            )
        })
    };
    let their =
        |e: std::io::Error| {
            match e.raw_os_error() {
        Some(libc::ELOOP) if !asked_no_links => Failure::refused(
            libc::ELOOP,
            "openat2 with RESOLVE flags through a /proc magic link, which nfguard does not follow",
        ),
        Some(
            code @ (libc::EXDEV | libc::ELOOP | libc::EAGAIN | libc::ENOENT | libc::ENOTDIR
            | libc::EACCES | libc::ENAMETOOLONG | libc::EINVAL),
        ) => Failure::Target(code),
        _ => Failure::ours("resolve the path with the task's RESOLVE flags", e),
    }
        };
    let root = t.root()?;
    let name_err = |e| Failure::ours("name what was resolved", e);
    match open(&raw, if follow { 0 } else { libc::O_NOFOLLOW }) {
        Ok(fd) => {
            let real = root.real_path(&fd).map_err(name_err)?;
            Ok(Resolved::Existing { fd, real })
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let (parent, name) = crate::resolve::split_parent(&raw);
            if name.is_empty() || name == "." || name == ".." {
                return Err(Failure::Target(libc::ENOENT));
            }
            let parent = if raw.starts_with('/') || raw.contains('/') {
                parent.to_string()
            } else {
                ".".to_string()
            };
            let d = open(&parent, libc::O_DIRECTORY).map_err(their)?;
            let real_dir = root.real_path(&d).map_err(name_err)?;
            Ok(Resolved::Missing {
                real: format!("{}/{name}", real_dir.trim_end_matches('/')),
                dir: d,
                name: name.to_string(),
            })
        }
        Err(e) => Err(their(e)),
    }
}

pub fn open(
    t: &Target<'_>,
    scope: &Scope<'_>,
    base: Base,
    path: Ptr,
    flags: Flags,
    mode: u32,
    truncate_to: Option<i64>,
) -> Result<Request, Failure> {
    let (mut flags, mode, how) = match flags {
        Flags::Known(f) => (f, mode, 0),
        Flags::InMemory { how, size } => {
            if size < 24 {
                return Err(Failure::Target(libc::EINVAL));
            }
            let bytes = target::read_bytes(&t.memory(), how.0, 24)?;
            open_how(&bytes).ok_or(Failure::Target(libc::EINVAL))?
        }
    };
    let writes = flags & nfguard_policy::OPEN_WRITE_MASK as i32 != 0;
    let exclusive = flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0;
    let follow = flags & libc::O_NOFOLLOW == 0 && !exclusive;
    let resolved = if how != 0 {
        // openat2 with RESOLVE_* flags: the task confines its own names
        // (beneath its dirfd, no symlinks...): resolved as the kernel would,
        // from the task's directory, with those flags.
        resolve_as_asked(t, scope, base, path, follow, how)?
    } else {
        let abs = t.path_arg(base, path)?;
        resolve_path(t, scope, &abs, follow)?
    };
    let exe = t.exe();
    let mut req;
    match resolved {
        Resolved::Existing { fd, real } => {
            if exclusive {
                return Err(Failure::Target(libc::EEXIST));
            }
            let op = if flags & libc::O_TMPFILE == libc::O_TMPFILE {
                Op::Create
            } else {
                Op::Write
            };
            req = Request::new(Category::Filesystem, Some(op), libc::EACCES);
            let st = fstat(&fd);
            if writes {
                if let Some(st) = &st {
                    let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
                    if regular && st.st_nlink > 1 {
                        req.special = Some((
                            Kind::Unverifiable,
                            format!("{real} has {} hard links: writing it through one name would change the others", st.st_nlink),
                        ));
                    }
                }
            }
            req.path = Some(real.clone());
            if writes {
                guard_own(&mut req, scope, &real, st.as_ref());
                // The model has one op for create, write and truncate: a file
                // created while learning is written later in normal operation.
                req.touches(exe, Op::Write, real);
            }
            flags &= !(libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW);
            // Opening a FIFO, a device or a socket may wait (a FIFO for its
            // reader): made from a worker thread, so other calls are not held.
            let kind = st
                .as_ref()
                .map_or(libc::S_IFREG, |s| s.st_mode & libc::S_IFMT);
            let may_wait =
                !matches!(kind, libc::S_IFREG | libc::S_IFDIR) && flags & libc::O_NONBLOCK == 0;
            req.plan = Plan::Emulate(Emulation::Reopen {
                fd,
                flags,
                mode: mode & 0o7777,
                truncate_to,
                may_wait,
            });
        }
        Resolved::Missing { dir, real, name } => {
            if flags & libc::O_CREAT == 0 {
                return Err(Failure::Target(libc::ENOENT));
            }
            req = Request::new(Category::Filesystem, Some(Op::Create), libc::EACCES);
            req.path = Some(real.clone());
            guard_own(&mut req, scope, &real, None);
            req.touches(exe, Op::Write, real);
            req.plan = Plan::Emulate(Emulation::Create {
                dir,
                name,
                flags,
                mode: mode & 0o7777,
            });
        }
    }
    Ok(req)
}

/// unlink, unlinkat (`flags` may be AT_REMOVEDIR), rmdir (`rmdir`).
pub fn unlink(
    t: &Target<'_>,
    scope: &Scope<'_>,
    base: Base,
    path: Ptr,
    flags: i32,
) -> Result<Request, Failure> {
    let abs = t.path_arg(base, path)?;
    let (dir, real, name) = resolve_parent(t, scope, &abs)?;
    let mut req = changes(
        t,
        scope,
        (Op::Unlink, libc::EACCES),
        real.clone(),
        &real,
        None,
    );
    guard_own_name(&mut req, scope, &real);
    req.plan = Plan::Emulate(Emulation::Unlink { dir, name, flags });
    Ok(req)
}

pub fn rename(
    t: &Target<'_>,
    scope: &Scope<'_>,
    (old_base, old): (Base, Ptr),
    (new_base, new): (Base, Ptr),
    flags: u32,
) -> Result<Request, Failure> {
    let (old_dir, old_real, old) = resolve_parent(t, scope, &t.path_arg(old_base, old)?)?;
    let (new_dir, new_real, new) = resolve_parent(t, scope, &t.path_arg(new_base, new)?)?;
    let mut req = Request::new(Category::Filesystem, Some(Op::Rename), libc::EACCES);
    req.path = Some(format!("{old_real} -> {new_real}"));
    for p in [old_real, new_real] {
        guard_own_name(&mut req, scope, &p);
        req.touches(t.exe(), Op::Rename, p);
    }
    req.plan = Plan::Emulate(Emulation::Rename {
        old_dir,
        old,
        new_dir,
        new,
        flags,
    });
    Ok(req)
}

/// link, linkat: a new name for an existing file. Judged as a `link` at the
/// new name; writing the file later through either name is refused anyway
/// (a file with several links is unverifiable to write).
pub fn link(
    t: &Target<'_>,
    scope: &Scope<'_>,
    (old_base, old): (Base, Ptr),
    (new_base, new): (Base, Ptr),
    flags: i32,
) -> Result<Request, Failure> {
    let old_raw = target::read_cstring(&t.memory(), old.0)?;
    let (from, old_real) = if old_raw.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
        // linkat(fd, "", ..., AT_EMPTY_PATH): the fd's file (an O_TMPFILE
        // file linked into place is the usual case).
        let Base::Fd(fd) = old_base else {
            return Err(Failure::Target(libc::ENOENT));
        };
        let (file, real) = take_file(t, fd)?;
        (LinkFrom::Fd(file), real)
    } else {
        let abs = if old_raw.starts_with('/') {
            old_raw
        } else if old_raw.is_empty() {
            return Err(Failure::Target(libc::ENOENT));
        } else {
            crate::resolve::absolutize(&t.base_dir(old_base)?, &old_raw)
        };
        if flags & libc::AT_SYMLINK_FOLLOW != 0 {
            match resolve_path(t, scope, &abs, true)? {
                Resolved::Existing { fd, real } => (LinkFrom::Fd(fd), real),
                Resolved::Missing { .. } => return Err(Failure::Target(libc::ENOENT)),
            }
        } else {
            let (dir, real, name) = resolve_parent(t, scope, &abs)?;
            (LinkFrom::Name { dir, name }, real)
        }
    };
    let (new_dir, new_real, new) = resolve_parent(t, scope, &t.path_arg(new_base, new)?)?;
    let shown = format!("{old_real} -> {new_real}");
    let mut req = changes(t, scope, (Op::Link, libc::EACCES), shown, &new_real, None);
    guard_own(&mut req, scope, &old_real, None);
    req.plan = Plan::Emulate(Emulation::Link { from, new_dir, new });
    Ok(req)
}

/// symlink, symlinkat: judged as a `symlink` at the new name. What it points
/// to is judged whenever it is followed (paths are resolved in full).
pub fn symlink(
    t: &Target<'_>,
    scope: &Scope<'_>,
    target_ptr: Ptr,
    base: Base,
    path: Ptr,
) -> Result<Request, Failure> {
    let points_to = target::read_cstring(&t.memory(), target_ptr.0)?;
    if points_to.is_empty() {
        return Err(Failure::Target(libc::ENOENT));
    }
    let (dir, real, name) = resolve_parent(t, scope, &t.path_arg(base, path)?)?;
    let shown = format!("{real} -> {points_to}");
    let mut req = changes(t, scope, (Op::Symlink, libc::EACCES), shown, &real, None);
    req.plan = Plan::Emulate(Emulation::Symlink {
        points_to,
        dir,
        name,
    });
    Ok(req)
}

pub fn mkdir(
    t: &Target<'_>,
    scope: &Scope<'_>,
    base: Base,
    path: Ptr,
    mode: u32,
) -> Result<Request, Failure> {
    let (dir, real, name) = resolve_parent(t, scope, &t.path_arg(base, path)?)?;
    let mut req = changes(
        t,
        scope,
        (Op::Mkdir, libc::EACCES),
        real.clone(),
        &real,
        None,
    );
    req.plan = Plan::Emulate(Emulation::Mkdir {
        dir,
        name,
        mode: mode & 0o7777,
    });
    Ok(req)
}

/// mknod, mknodat. FIFOs, sockets and regular files are emulated; a device
/// node is refused in enforce mode even when learned, since the supervisor
/// would make it with its own capabilities (CAP_MKNOD), not the task's.
pub fn mknod(
    t: &Target<'_>,
    scope: &Scope<'_>,
    base: Base,
    path: Ptr,
    mode: u32,
    dev: u64,
) -> Result<Request, Failure> {
    let (dir, real, name) = resolve_parent(t, scope, &t.path_arg(base, path)?)?;
    let mut req = changes(
        t,
        scope,
        (Op::Mknod, libc::EPERM),
        real.clone(),
        &real,
        None,
    );
    let kind = mode & libc::S_IFMT;
    if (kind == libc::S_IFCHR || kind == libc::S_IFBLK) && req.special.is_none() {
        req.special = Some((
            Kind::Unverifiable,
            format!("{real}: a device node would be made with the supervisor's capabilities, not the task's"),
        ));
    }
    req.plan = Plan::Emulate(Emulation::Mknod {
        dir,
        name,
        mode: kind | (mode & 0o7777),
        dev,
    });
    Ok(req)
}

/// chmod by path (`chmod`, `fchmodat`, `fchmodat2`) or by fd (`fchmod`).
pub fn chmod(
    t: &Target<'_>,
    scope: &Scope<'_>,
    by_path: Option<(Base, Ptr, i32)>,
    by_fd: Option<i32>,
    mode: u32,
) -> Result<Request, Failure> {
    let (fd, real) = match (by_path, by_fd) {
        (_, Some(fd)) => take_file(t, fd)?,
        // fchmodat2(fd, "", mode, AT_EMPTY_PATH): the fd's own file.
        (Some((Base::Fd(fd), path, flags)), None)
            if flags & libc::AT_EMPTY_PATH != 0
                && target::read_cstring(&t.memory(), path.0)?.is_empty() =>
        {
            take_file(t, fd)?
        }
        (Some((base, path, flags)), None) => {
            let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
            match resolve_path(t, scope, &t.path_arg(base, path)?, follow)? {
                Resolved::Existing { fd, real } => (fd, real),
                Resolved::Missing { .. } => return Err(Failure::Target(libc::ENOENT)),
            }
        }
        (None, None) => return Err(Failure::Target(libc::EINVAL)),
    };
    let st = fstat(&fd);
    let mut req = changes(
        t,
        scope,
        (Op::Chmod, libc::EACCES),
        real.clone(),
        &real,
        st.as_ref(),
    );
    req.plan = Plan::Emulate(Emulation::Chmod {
        fd,
        mode: mode & 0o7777,
    });
    Ok(req)
}

/// setxattr, removexattr and their `l` and `f` forms: judged as a
/// `setxattr` of the file (an ACL can make a file executable without chmod).
pub fn xattr(
    t: &Target<'_>,
    scope: &Scope<'_>,
    of: XattrTarget,
    name: Ptr,
    value: Option<(Ptr, u64)>,
    flags: i32,
) -> Result<Request, Failure> {
    let attr = target::read_cstring(&t.memory(), name.0)?;
    if attr.is_empty() || attr.len() > XATTR_NAME_MAX {
        return Err(Failure::Target(libc::ERANGE));
    }
    let value = match value {
        Some((_, size)) if size > XATTR_SIZE_MAX => return Err(Failure::Target(libc::E2BIG)),
        Some((ptr, size)) => Some(target::read_bytes(&t.memory(), ptr.0, size as usize)?),
        None => None,
    };
    let (fd, real) = match of {
        XattrTarget::Fd(fd) => take_file(t, fd)?,
        XattrTarget::Path { path, follow } => {
            match resolve_path(t, scope, &t.path_arg(Base::Cwd, path)?, follow)? {
                Resolved::Existing { fd, real } => (fd, real),
                Resolved::Missing { .. } => return Err(Failure::Target(libc::ENOENT)),
            }
        }
    };
    let st = fstat(&fd);
    let mut req = changes(
        t,
        scope,
        (Op::Setxattr, libc::EACCES),
        real.clone(),
        &real,
        st.as_ref(),
    );
    if st.is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK) && req.special.is_none() {
        // Reached through /proc/self/fd, a symlink would be followed.
        req.special = Some((
            Kind::Unverifiable,
            format!("{real} is a symbolic link: nfguard does not set attributes of links"),
        ));
    }
    req.plan = Plan::Emulate(Emulation::Xattr {
        fd,
        name: attr,
        value,
        flags,
    });
    Ok(req)
}
