//! Inspection: a typed [`Call`] and the task that made it, turned into a
//! [`Request`]: what the call does in the model's terms (observations), what
//! an event about it says, and how an allow proceeds in enforce mode (a
//! [`Plan`]).
//!
//! This is where the target's memory and /proc are read and paths resolved,
//! once, in the target's root (`resolve`): decisions are made on real paths
//! of what the supervisor holds fds to, and emulation acts on those fds.

use std::os::fd::{AsFd, AsRawFd};
use std::time::SystemTime;

use nfguard_common::Mode;

use super::decode::{open_how, Base, Call, Flags, Ptr};
use super::emulate::Emulation;
use super::exec;
use super::failure::Failure;
use super::target::{self, Target};
use crate::event::{Category, Kind, Op};
use crate::model::{self, FileEntry, ListenEntry, Observation, PeerEntry, SocketEntry, UnixEntry};
use crate::net::{self, SockAddr, UnixAddr};
use crate::procfs;
use crate::resolve::{self, Resolved};
use crate::sys;

/// How an allowed call proceeds in enforce mode.
pub enum Plan {
    /// The kernel runs the call as asked: its arguments cannot change (they
    /// are registers), or no other task can change them (exec's proof).
    Continue,
    /// The supervisor runs the call on the arguments it checked.
    Emulate(Emulation),
}

/// What a call is, for the model, for the event, and for enforce mode.
pub struct Request {
    pub category: Category,
    pub op: Option<Op>,
    /// What the model must allow for the call to be inside it.
    pub observations: Vec<Observation>,
    pub path: Option<String>,
    pub family: Option<String>,
    pub protocol: Option<String>,
    pub address: Option<String>,
    pub port: Option<u16>,
    /// For exec: the new program's argv (read outside learn mode).
    pub argv: Option<Vec<String>>,
    /// A reason to flag the call even if the model allows it.
    pub special: Option<(Kind, String)>,
    pub plan: Plan,
    /// The errno of a refusal.
    pub deny_errno: i32,
    /// For an exec let through: the program, for the exec-session watcher.
    pub exec_program: Option<String>,
}

impl Request {
    fn new(category: Category, op: Option<Op>, deny_errno: i32) -> Request {
        Request {
            category,
            op,
            observations: Vec::new(),
            path: None,
            family: None,
            protocol: None,
            address: None,
            port: None,
            argv: None,
            special: None,
            plan: Plan::Continue,
            deny_errno,
            exec_program: None,
        }
    }

    /// Records a file the call changes, as the model names it.
    fn touches(&mut self, exe: &str, op: Op, path: String) {
        self.observations.push(Observation::File(FileEntry {
            exe: exe.to_string(),
            op: op.as_str().into(),
            path,
        }));
    }
}

/// What inspection needs beside the task: the mode, the keeper's executable
/// (its children are named as started by the launcher), and when supervision
/// started (files changed since are drift).
pub struct Scope<'a> {
    pub mode: Mode,
    pub keeper_exe: &'a str,
    pub started: SystemTime,
}

/// Inspects `call` (the syscall `syscall`) made by `t`.
pub fn inspect(
    call: &Call,
    syscall: &'static str,
    t: &Target<'_>,
    scope: &Scope<'_>,
) -> Result<Request, Failure> {
    match *call {
        Call::Exec {
            base,
            path,
            argv,
            flags,
        } => exec_request(t, scope, base, path, argv, flags),
        Call::Socket {
            family,
            kind,
            protocol,
        } => Ok(socket_request(t, family, kind, protocol)),
        Call::SockAddr {
            bind,
            fd,
            addr,
            len,
        } => sockaddr_request(t, bind, fd, addr, len),
        Call::Listen { fd, backlog } => listen_request(t, fd, backlog),
        Call::Open {
            base,
            path,
            flags,
            mode,
            truncate_to,
        } => open_request(t, base, path, flags, mode, truncate_to),
        Call::Unlink { base, path, flags } => unlink_request(t, base, path, flags),
        Call::Rename {
            old_base,
            old,
            new_base,
            new,
            flags,
        } => rename_request(t, old_base, old, new_base, new, flags),
        Call::Chmod {
            base,
            path,
            mode,
            flags,
        } => chmod_request(t, Some((base, path, flags)), None, mode),
        Call::Fchmod { fd, mode } => chmod_request(t, None, Some(fd), mode),
        Call::Debug => Ok(debug_request(syscall)),
    }
}

const RESOLVE: &str = "resolve the path in the task's root";

fn exec_request(
    t: &Target<'_>,
    scope: &Scope<'_>,
    base: Base,
    path: Ptr,
    argv: Ptr,
    flags: i32,
) -> Result<Request, Failure> {
    let mut req = Request::new(Category::Process, None, libc::EPERM);
    let raw = target::read_cstring(&t.memory(), path.0)?;
    let parent = match t.exe() {
        exe if exe == scope.keeper_exe => model::LAUNCHER_PARENT.to_string(),
        exe => exe.to_string(),
    };
    let fd_exec = raw.is_empty() && flags & libc::AT_EMPTY_PATH != 0;
    let (program, meta) = if fd_exec {
        // Fileless exec (execveat(fd, "", AT_EMPTY_PATH)): the program is the fd.
        let Base::Fd(fd) = base else {
            return Err(Failure::Target(libc::EBADF));
        };
        let link =
            procfs::read_link(t.tid(), &format!("fd/{fd}")).ok_or(Failure::Target(libc::EBADF))?;
        let file = t.take_fd(fd)?;
        (link, nix::sys::stat::fstat(file.as_raw_fd()).ok())
    } else {
        if raw.is_empty() {
            return Err(Failure::Target(libc::ENOENT));
        }
        let abs = if raw.starts_with('/') {
            raw
        } else {
            resolve::absolutize(&t.base_dir(base)?, &raw)
        };
        let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
        let root = t.root()?;
        match resolve::resolve(&root, &abs, follow).map_err(|e| Failure::theirs(RESOLVE, e))? {
            Resolved::Existing { fd, real } => (real, nix::sys::stat::fstat(fd.as_raw_fd()).ok()),
            Resolved::Missing { .. } => return Err(Failure::Target(libc::ENOENT)),
        }
    };
    req.path = Some(program.clone());
    if scope.mode != Mode::Learn {
        req.argv = Some(target::read_argv(&t.memory(), argv.0));
    }
    if program.starts_with("/memfd:") || program.contains(" (deleted)") {
        req.special = Some((
            Kind::Drift,
            format!("fileless exec of {program}: the program is not a file of the image"),
        ));
    } else if let Some(st) = &meta {
        if changed_since(st, scope.started) {
            req.special = Some((
                Kind::Drift,
                format!("{program} was created or modified after the workload started (binary not from the image)"),
            ));
        }
    }
    req.observations.push(Observation::Exec {
        parent,
        exe: program.clone(),
    });
    req.exec_program = Some(program);
    if scope.mode == Mode::Enforce {
        // execve cannot be emulated: the kernel reads the path again. It is
        // safe to let it do so only if no other task can write the memory
        // (or, for an fd, the fd table) the kernel is about to read.
        match exec::memory_is_private(t.tid(), fd_exec) {
            Ok(true) => {}
            Ok(false) => {
                if req.special.is_none() {
                    req.special = Some((
                        Kind::Unverifiable,
                        "another running task shares this process's memory, so the checked path could be swapped before the kernel reads it".into(),
                    ));
                }
            }
            Err(e) => return Err(Failure::ours("check for tasks that share memory", e)),
        }
    }
    Ok(req)
}

/// Was the file of `st` changed (ctime) at or after `started`? Compared to the
/// nanosecond: whole seconds once hid a script rewritten in the second the
/// workload started. The kernel stamps ctime from a coarse clock, which can
/// lag a precise `started` by a tick; `started` is taken from the same coarse
/// clock (`Shared::new`), so a change after it is never dated before it.
pub fn changed_since(st: &libc::stat, started: SystemTime) -> bool {
    let Ok(secs) = u64::try_from(st.st_ctime) else {
        return false;
    };
    let nanos = u32::try_from(st.st_ctime_nsec)
        .unwrap_or(0)
        .min(999_999_999);
    let ctime = SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
    ctime >= started
}

fn socket_request(t: &Target<'_>, family: i32, kind: i32, protocol: i32) -> Request {
    let mut req = Request::new(Category::Network, Some(Op::Socket), libc::EACCES);
    req.family = Some(net::family_name(family));
    req.protocol = Some(match family {
        libc::AF_INET | libc::AF_INET6 => net::protocol_name(kind, protocol),
        _ => protocol.to_string(),
    });
    req.observations.push(Observation::Socket(SocketEntry {
        exe: t.exe().to_string(),
        family: net::family_name(family),
        kind: net::type_name(kind),
        protocol,
    }));
    // All three arguments are registers: the kernel uses exactly what we saw.
    req.plan = Plan::Continue;
    req
}

/// Is our mount namespace the task's?
fn same_mount_ns(tid: i32) -> bool {
    let a = std::fs::read_link(format!("/proc/{tid}/ns/mnt")).ok();
    let b = std::fs::read_link("/proc/self/ns/mnt").ok();
    a.is_some() && a == b
}

/// The socket behind the task's fd, with its domain, type and protocol.
fn socket_of(t: &Target<'_>, fd: i32) -> Result<(std::os::fd::OwnedFd, i32, i32, i32), Failure> {
    let sock = t.take_fd(fd)?;
    let opt = |name| sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, name);
    let family = opt(libc::SO_DOMAIN).map_err(|_| Failure::Target(libc::ENOTSOCK))?;
    let kind = opt(libc::SO_TYPE).unwrap_or(0);
    let proto = opt(libc::SO_PROTOCOL).unwrap_or(0);
    Ok((sock, family, kind, proto))
}

fn sockaddr_request(
    t: &Target<'_>,
    bind: bool,
    fd: i32,
    addr: Ptr,
    len: i32,
) -> Result<Request, Failure> {
    let op = if bind { Op::Bind } else { Op::Connect };
    let mut req = Request::new(Category::Network, Some(op), libc::EACCES);
    // The kernel's bounds (move_addr_to_kernel: 0..=sizeof(sockaddr_storage));
    // a sockaddr shorter than its family field is EINVAL for every family.
    let len = match usize::try_from(len) {
        Ok(l) if (2..=128).contains(&l) => l,
        _ => return Err(Failure::Target(libc::EINVAL)),
    };
    let bytes = target::read_bytes(&t.memory(), addr.0, len)?;
    let (sock, family, kind, proto) = socket_of(t, fd)?;
    let exe = t.exe().to_string();
    req.family = Some(net::family_name(family));
    let mut emulate_addr = bytes.clone();
    match net::parse_sockaddr(&bytes).map_err(|_| Failure::Target(libc::EINVAL))? {
        SockAddr::Inet { address, port } => {
            let protocol = net::protocol_name(kind, proto);
            req.protocol = Some(protocol.clone());
            req.address = Some(address.clone());
            req.port = Some(port);
            if !bind {
                req.observations.push(Observation::Connect(PeerEntry {
                    exe,
                    protocol,
                    address,
                    port,
                }));
            } else if port != 0 {
                req.observations.push(Observation::Listen(ListenEntry {
                    exe,
                    protocol,
                    port,
                }));
            }
        }
        SockAddr::Unix(u) => {
            let shown = match &u {
                UnixAddr::Path(p) => {
                    let abs = resolve::absolutize(&t.base_dir(Base::Cwd)?, p);
                    // Our bind/connect resolves a path in *our* root: reach the
                    // target's file through /proc/<tid>/root unless it is ours.
                    if procfs::read_link(t.tid(), "root").as_deref() != Some("/")
                        || !p.starts_with('/')
                        || !same_mount_ns(t.tid())
                    {
                        let via = format!("/proc/{}/root{}", t.tid(), abs);
                        if via.len() >= 108 {
                            req.special = Some((
                                Kind::Unverifiable,
                                format!("unix socket path {abs} is too long to act on safely"),
                            ));
                        } else {
                            let mut b = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
                            b.extend_from_slice(via.as_bytes());
                            b.push(0);
                            emulate_addr = b;
                        }
                    }
                    abs
                }
                UnixAddr::Abstract(name) => format!("@{name}"),
                UnixAddr::Unnamed => String::new(),
            };
            if !shown.is_empty() {
                req.path = Some(shown.clone());
                req.observations.push(Observation::Unix(UnixEntry {
                    exe,
                    op: op.as_str().into(),
                    path: shown,
                }));
            }
        }
        SockAddr::Unspec | SockAddr::Other(_) => {}
    }
    req.plan = Plan::Emulate(if bind {
        Emulation::Bind {
            sock,
            addr: emulate_addr,
        }
    } else {
        Emulation::Connect {
            sock,
            addr: emulate_addr,
        }
    });
    Ok(req)
}

fn listen_request(t: &Target<'_>, fd: i32, backlog: i32) -> Result<Request, Failure> {
    let mut req = Request::new(Category::Network, Some(Op::Listen), libc::EACCES);
    let (sock, family, kind, proto) = socket_of(t, fd)?;
    req.family = Some(net::family_name(family));
    if family == libc::AF_INET || family == libc::AF_INET6 {
        let name = sys::getsockname_raw(sock.as_fd())
            .map_err(|e| Failure::ours("read the socket's name", e))?;
        if let Ok(SockAddr::Inet { address, port }) = net::parse_sockaddr(&name) {
            let protocol = net::protocol_name(kind, proto);
            req.protocol = Some(protocol.clone());
            req.address = Some(address);
            req.port = Some(port);
            req.observations.push(Observation::Listen(ListenEntry {
                exe: t.exe().to_string(),
                protocol,
                port,
            }));
        }
    }
    req.plan = Plan::Emulate(Emulation::Listen { sock, backlog });
    Ok(req)
}

fn open_request(
    t: &Target<'_>,
    base: Base,
    path: Ptr,
    flags: Flags,
    mode: u32,
    truncate_to: Option<i64>,
) -> Result<Request, Failure> {
    let (mut flags, mode) = match flags {
        Flags::Known(f) => (f, mode),
        Flags::InMemory { how, size } => {
            if size < 24 {
                return Err(Failure::Target(libc::EINVAL));
            }
            let bytes = target::read_bytes(&t.memory(), how.0, 24)?;
            open_how(&bytes).ok_or(Failure::Target(libc::EINVAL))?
        }
    };
    let writes = flags & nfguard_policy::OPEN_WRITE_MASK as i32 != 0;
    let abs = t.path_arg(base, path)?;
    let root = t.root()?;
    let exclusive = flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0;
    let follow = flags & libc::O_NOFOLLOW == 0 && !exclusive;
    let resolved =
        resolve::resolve(&root, &abs, follow).map_err(|e| Failure::theirs(RESOLVE, e))?;
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
            if writes {
                if let Ok(st) = nix::sys::stat::fstat(fd.as_raw_fd()) {
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
                // The model has one op for create, write and truncate: a file
                // created while learning is written later in normal operation.
                req.touches(exe, Op::Write, real);
            }
            flags &= !(libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW);
            req.plan = Plan::Emulate(Emulation::Reopen {
                fd,
                flags,
                truncate_to,
            });
        }
        Resolved::Missing { dir, real, name } => {
            if flags & libc::O_CREAT == 0 {
                return Err(Failure::Target(libc::ENOENT));
            }
            req = Request::new(Category::Filesystem, Some(Op::Create), libc::EACCES);
            req.path = Some(real.clone());
            req.touches(exe, Op::Write, real);
            let umask = t.status().map(|s| s.umask).unwrap_or(0o022);
            req.plan = Plan::Emulate(Emulation::Create {
                dir,
                name,
                flags,
                mode: mode & 0o7777 & !umask,
            });
        }
    }
    Ok(req)
}

fn unlink_request(t: &Target<'_>, base: Base, path: Ptr, flags: i32) -> Result<Request, Failure> {
    let abs = t.path_arg(base, path)?;
    let (dir, real, name) =
        resolve::resolve_parent(&*t.root()?, &abs).map_err(|e| Failure::theirs(RESOLVE, e))?;
    let mut req = Request::new(Category::Filesystem, Some(Op::Unlink), libc::EACCES);
    req.path = Some(real.clone());
    req.touches(t.exe(), Op::Unlink, real);
    req.plan = Plan::Emulate(Emulation::Unlink { dir, name, flags });
    Ok(req)
}

fn rename_request(
    t: &Target<'_>,
    old_base: Base,
    old: Ptr,
    new_base: Base,
    new: Ptr,
    flags: u32,
) -> Result<Request, Failure> {
    let root = t.root()?;
    let (old_dir, old_real, old) = resolve::resolve_parent(&root, &t.path_arg(old_base, old)?)
        .map_err(|e| Failure::theirs(RESOLVE, e))?;
    let (new_dir, new_real, new) = resolve::resolve_parent(&root, &t.path_arg(new_base, new)?)
        .map_err(|e| Failure::theirs(RESOLVE, e))?;
    let mut req = Request::new(Category::Filesystem, Some(Op::Rename), libc::EACCES);
    req.path = Some(format!("{old_real} -> {new_real}"));
    for p in [old_real, new_real] {
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

/// chmod by path (`chmod`, `fchmodat`, `fchmodat2`) or by fd (`fchmod`).
fn chmod_request(
    t: &Target<'_>,
    by_path: Option<(Base, Ptr, i32)>,
    by_fd: Option<i32>,
    mode: u32,
) -> Result<Request, Failure> {
    let (fd, real) = match (by_path, by_fd) {
        (_, Some(fd)) => {
            let f = t.take_fd(fd)?;
            let real = t
                .root()?
                .real_path(&f)
                .map_err(|e| Failure::ours("name the file behind the fd", e))?;
            (f, real)
        }
        (Some((base, path, flags)), None) => {
            let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
            let abs = t.path_arg(base, path)?;
            match resolve::resolve(&*t.root()?, &abs, follow)
                .map_err(|e| Failure::theirs(RESOLVE, e))?
            {
                Resolved::Existing { fd, real } => (fd, real),
                Resolved::Missing { .. } => return Err(Failure::Target(libc::ENOENT)),
            }
        }
        (None, None) => return Err(Failure::Target(libc::EINVAL)),
    };
    let mut req = Request::new(Category::Filesystem, Some(Op::Chmod), libc::EACCES);
    req.path = Some(real.clone());
    req.touches(t.exe(), Op::Chmod, real);
    req.plan = Plan::Emulate(Emulation::Chmod {
        fd,
        mode: mode & 0o7777,
    });
    Ok(req)
}

fn debug_request(syscall: &str) -> Request {
    let mut req = Request::new(Category::Process, None, libc::EPERM);
    req.special = Some((
        Kind::OutsideModel,
        format!("{syscall} can rewrite another process's memory; nfguard never learns it"),
    ));
    // Arguments are registers (pids, requests): continuing is exact.
    req.plan = Plan::Continue;
    req
}
