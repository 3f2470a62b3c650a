//! The seccomp policy nfguard installs in every monitored container: which
//! syscalls reach the supervisor, which stay in the kernel, which are refused
//! outright, and how the supervisor reads each one's arguments.
//!
//! The policy is data ([`RULES`]): one line per syscall with its action, its
//! decoder (which register holds the path, the flags, the directory fd...) and
//! the reason it is there. Adding a syscall of a known shape is one line here;
//! the filter ([`PROGRAM`], compiled from the table at compile time) and the
//! supervisor's decoding (`nfguard_sidecar::supervisor::decode`, which matches on
//! [`Decoder`]) both follow from it.
//!
//! The crate is `no_std` and the program a `static`, so the launcher, which
//! links no std, carries the program as plain data.
//!
//! Why not seccompiler: it has no `SECCOMP_RET_USER_NOTIF` action, one filter
//! has a single match action (nfguard needs notify, errno and allow side by
//! side), and its architecture check kills the process where we want an errno
//! and x32 numbers refused. The program here is ~60 instructions and reviewed
//! as a table.
//!
//! Design rules (docs/architecture.md, facts 5 and 7):
//! - notify only what matters: read-only opens, reads, writes never leave the
//!   kernel (the BPF program looks at open flags, chmod modes, a send's
//!   destination pointer, a socket option's level);
//! - two programs come from the one table: [`PROGRAM`] judges a datagram's
//!   destination at `connect()` only, [`PROGRAM_DATAGRAMS`] also notifies
//!   sends that name one (a rule's `datagrams` action); the launcher installs
//!   one of them, as `NFGUARD_DATAGRAMS` says;
//! - a foreign ABI (i386 through int 0x80, x32 numbers) is refused, since the
//!   supervisor decodes x86_64 numbers only;
//! - io_uring is refused: its submissions bypass seccomp entirely;
//! - nothing the launcher calls between installing the filter and exec
//!   (sendmsg, read, close) is notified, or the launcher would wait on itself:
//!   with datagram inspection its handover `sendmsg` carries
//!   [`HANDOVER_FLAG`], which that program lets through, and [`SEAL`] refuses
//!   the flag once the listener is handed over.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub use libc::sock_filter;

/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// Syscall numbers at or above this are the x32 ABI.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The bit of O_TMPFILE that is not O_DIRECTORY (`__O_TMPFILE`): O_TMPFILE is
/// `__O_TMPFILE | O_DIRECTORY`, and testing for it whole would catch every
/// read-only `opendir`.
pub const O_TMPFILE_BIT: i32 = libc::O_TMPFILE & !libc::O_DIRECTORY;
/// Open flags that make an open worth checking: write access, create, truncate, O_TMPFILE.
pub const OPEN_WRITE_MASK: u32 =
    (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | O_TMPFILE_BIT) as u32;
/// chmod modes worth checking: any execute bit, setuid, setgid.
pub const CHMOD_EXEC_MASK: u32 = 0o6111;

/// What the filter does with a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Ask the supervisor.
    Notify,
    /// Ask the supervisor only when `arg & mask != 0` (low 32 bits of the argument).
    NotifyIfArgMask { arg: u8, mask: u32 },
    /// Ask the supervisor only when the argument (low 32 bits) is one of
    /// these (repeated values: fewer than three).
    NotifyIfArgIn { arg: u8, values: [u32; 3] },
    /// Ask the supervisor only when the argument, all 64 bits of it, is not
    /// zero: a pointer was given (`sendto`'s destination). Both halves are
    /// tested: a pointer whose low half is zero is still a pointer.
    NotifyIfArgNonZero { arg: u8 },
    /// Ask the supervisor only when both arguments (low 32 bits) have these
    /// values (`getsockopt` at SCTP's level of its one option that connects).
    NotifyIfArgsEq { first: (u8, u32), second: (u8, u32) },
    /// Ask the supervisor when argument `level` (low 32 bits) is `any`, or
    /// when `(level, name)` is one of `pairs` (`setsockopt`: every option of
    /// SCTP's level, and the few IP and IPv6 options that source-route).
    NotifyIfLevelOrOption {
        level: u8,
        name: u8,
        any: u32,
        pairs: [(u32, u32); 3],
    },
    /// Ask the supervisor unless `arg & mask != 0`: the launcher's own
    /// handover `sendmsg` carries the mask, and the [`SEAL`] it installs
    /// right after refuses every later call that does.
    NotifyUnlessArgMask { arg: u8, mask: u32 },
    /// Refuse with this errno, without asking: for calls a C library retries
    /// another way (`clone3` -> `clone`), never for an action refused.
    Errno(u32),
}

/// Where a relative path argument starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// The calling task's working directory (`open`, `unlink`...).
    Cwd,
    /// The directory fd in this argument (`openat`...; `AT_FDCWD` means the cwd).
    Arg(u8),
}

/// Where an open's flags come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFlags {
    /// This argument.
    Arg(u8),
    /// `creat`: `O_CREAT | O_WRONLY | O_TRUNC`.
    Creat,
    /// `truncate(path, len)`: a write to an existing file, to length `len`.
    Truncate { len: u8 },
    /// `openat2`: a `struct open_how` at `how`, of the size in `size`.
    How { how: u8, size: u8 },
}

/// What an xattr call names: a path (followed or not) or an fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrOf {
    Path { path: u8, follow: bool },
    Fd(u8),
}

/// Whom a signal call names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalTo {
    /// `kill(pid, sig)`, `rt_sigqueueinfo(tgid, sig, info)`: a process, a
    /// process group (0, -pgrp) or every process (-1).
    Pid,
    /// `tkill(tid, sig)`.
    Tid,
    /// `tgkill(tgid, tid, sig)`, `rt_tgsigqueueinfo(tgid, tid, sig, info)`.
    TgidTid,
    /// `pidfd_send_signal(pidfd, sig, info, flags)`.
    Pidfd,
}

/// Whom a [`Decoder::Reaches`] call names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReachOf {
    /// A pid (a tid, 0 for the caller, -1 for every process) in this argument.
    Pid(u8),
    /// A pidfd in this argument, and an fd number in the next (`pidfd_getfd`).
    Pidfd(u8),
    /// `setpriority(which, who)` / `ioprio_set(which, who)`: a process, a
    /// process group or a user; `io` says ioprio's numbering (1, 2, 3) over
    /// setpriority's (0, 1, 2).
    Which { which: u8, who: u8, io: bool },
    /// A process group this argument names to join (`setpgid`'s pgid).
    Group(u8),
}

/// How a send names its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOf {
    /// `sendto(fd, buf, len, flags, addr, addrlen)`.
    To,
    /// `sendmsg(fd, msg, flags)`.
    Msg,
    /// `sendmmsg(fd, msgvec, vlen, flags)`.
    Mmsg,
}

/// How the supervisor reads a notified syscall's arguments: which register
/// holds what. Pure data; `nfguard_sidecar::supervisor::decode` turns it and
/// the registers into a typed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// `execve(path, argv, envp)`, `execveat(dirfd, path, argv, envp, flags)`.
    Exec {
        dir: Dir,
        path: u8,
        argv: u8,
        flags: Option<u8>,
    },
    /// `socket(family, type, protocol)`: all registers.
    Socket,
    /// `connect(fd, addr, len)`.
    Connect,
    /// `bind(fd, addr, len)`.
    Bind,
    /// `listen(fd, backlog)`.
    Listen,
    /// A send with a destination of its own (notified for `MSG_FASTOPEN`,
    /// which connects a TCP socket without `connect`).
    Send(SendOf),
    /// `setsockopt(fd, level, name, val, len)` (`get: false`) and
    /// `getsockopt(fd, level, name, val, lenp)`: notified at SCTP's level
    /// only, where options add addresses (`sctp_bindx`, `sctp_connectx`).
    SockOpt { get: bool },
    /// The open family: a path, flags and (for creates) a mode.
    Open {
        dir: Dir,
        path: u8,
        flags: OpenFlags,
        mode: Option<u8>,
    },
    /// `unlink(path)`, `unlinkat(dirfd, path, flags)`.
    Unlink {
        dir: Dir,
        path: u8,
        flags: Option<u8>,
    },
    /// `rmdir(path)`.
    Rmdir { path: u8 },
    /// `rename`, `renameat`, `renameat2`.
    Rename {
        old_dir: Dir,
        old: u8,
        new_dir: Dir,
        new: u8,
        flags: Option<u8>,
    },
    /// `link(old, new)`, `linkat(olddirfd, old, newdirfd, new, flags)`.
    Link {
        old_dir: Dir,
        old: u8,
        new_dir: Dir,
        new: u8,
        flags: Option<u8>,
    },
    /// `symlink(target, path)`, `symlinkat(target, dirfd, path)`.
    Symlink { target: u8, dir: Dir, path: u8 },
    /// `mkdir(path, mode)`, `mkdirat(dirfd, path, mode)`.
    Mkdir { dir: Dir, path: u8, mode: u8 },
    /// `mknod(path, mode, dev)`, `mknodat(dirfd, path, mode, dev)`.
    Mknod {
        dir: Dir,
        path: u8,
        mode: u8,
        dev: u8,
    },
    /// `chmod`, `fchmodat`, `fchmodat2` (whose flags may say AT_SYMLINK_NOFOLLOW).
    Chmod {
        dir: Dir,
        path: u8,
        mode: u8,
        flags: Option<u8>,
    },
    /// `fchmod(fd, mode)`.
    Fchmod { fd: u8, mode: u8 },
    /// `setxattr` and `removexattr` and their `l` and `f` forms: `value` and
    /// `size` for a set, `None` for a removal.
    Xattr {
        of: XattrOf,
        name: u8,
        value: Option<(u8, u8)>,
        flags: Option<u8>,
    },
    /// `ptrace`, `process_vm_writev`: never learned; arguments are registers
    /// (`pid` names the one whose memory is at stake).
    Debug { pid: u8 },
    /// A signal: allowed unless it reaches nfguard's own processes.
    Signal(SignalTo),
    /// `prlimit64(pid, resource, new, old)` of another process: allowed
    /// unless it changes the limits of nfguard's own (an RLIMIT_NOFILE of 0
    /// leaves the supervisor unable to open anything).
    Limits,
    /// A call that names another process (its scheduling, its fds, its
    /// memory, its events): allowed unless it reaches nfguard's own.
    Reaches(ReachOf),
    /// `fcntl(fd, F_SETOWN | F_SETOWN_EX, arg)` and `ioctl(fd, FIOSETOWN |
    /// SIOCSPGRP, &pid)`: who gets the fd's SIGIO (a signal of any number,
    /// with F_SETSIG); allowed unless it names nfguard's own processes.
    SetOwner { ioctl: bool },
    /// Refused in every mode, with an event: what a workload has no business
    /// doing under nfguard (new namespaces, mounts, io_uring). The rule's
    /// `why` is the event's reason.
    Forbidden,
    /// Refused by the filter itself with an errno a C library falls back
    /// from: never reaches the supervisor.
    Refused,
}

/// One line of the policy.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub nr: i64,
    pub name: &'static str,
    /// The action in both programs, unless `datagrams` says otherwise.
    pub action: Action,
    /// The action in the program that inspects datagrams
    /// ([`PROGRAM_DATAGRAMS`]), when it differs from `action`.
    pub datagrams: Option<Action>,
    pub decoder: Decoder,
    pub why: &'static str,
}

impl Rule {
    /// This rule with `action` in the program that inspects datagrams.
    pub const fn inspecting(self, action: Action) -> Rule {
        Rule {
            datagrams: Some(action),
            ..self
        }
    }

    /// The rule's action in the program with (`true`) or without datagram inspection.
    pub const fn action_in(&self, datagrams: bool) -> Action {
        match (datagrams, self.datagrams) {
            (true, Some(a)) => a,
            _ => self.action,
        }
    }
}

const fn notify(nr: i64, name: &'static str, decoder: Decoder, why: &'static str) -> Rule {
    Rule {
        nr,
        name,
        action: Action::Notify,
        datagrams: None,
        decoder,
        why,
    }
}

const fn notify_if(
    nr: i64,
    name: &'static str,
    (arg, mask): (u8, u32),
    decoder: Decoder,
    why: &'static str,
) -> Rule {
    Rule {
        nr,
        name,
        action: Action::NotifyIfArgMask { arg, mask },
        datagrams: None,
        decoder,
        why,
    }
}

const fn notify_in(
    nr: i64,
    name: &'static str,
    (arg, values): (u8, [u32; 3]),
    decoder: Decoder,
    why: &'static str,
) -> Rule {
    Rule {
        nr,
        name,
        action: Action::NotifyIfArgIn { arg, values },
        datagrams: None,
        decoder,
        why,
    }
}

/// Notified when argument `arg` equals `value` (low 32 bits).
/// Notified for every option of level `any`, and for `pairs` of (level,
/// option) elsewhere; `level` and `name` are the arguments holding them.
const fn notify_level_or(
    nr: i64,
    name: &'static str,
    (level, option, any): (u8, u8, u32),
    pairs: [(u32, u32); 3],
    decoder: Decoder,
    why: &'static str,
) -> Rule {
    Rule {
        nr,
        name,
        action: Action::NotifyIfLevelOrOption {
            level,
            name: option,
            any,
            pairs,
        },
        datagrams: None,
        decoder,
        why,
    }
}

const fn notify_both(
    nr: i64,
    name: &'static str,
    (first, second): ((u8, u32), (u8, u32)),
    decoder: Decoder,
    why: &'static str,
) -> Rule {
    Rule {
        nr,
        name,
        action: Action::NotifyIfArgsEq { first, second },
        datagrams: None,
        decoder,
        why,
    }
}

const fn forbid(nr: i64, name: &'static str, why: &'static str) -> Rule {
    notify(nr, name, Decoder::Forbidden, why)
}

const fn forbid_if(nr: i64, name: &'static str, arg_mask: (u8, u32), why: &'static str) -> Rule {
    notify_if(nr, name, arg_mask, Decoder::Forbidden, why)
}

const fn refuse(nr: i64, name: &'static str, errno: i32, why: &'static str) -> Rule {
    Rule {
        nr,
        name,
        action: Action::Errno(errno as u32),
        datagrams: None,
        decoder: Decoder::Refused,
        why,
    }
}

use Decoder as D;
use Dir::{Arg, Cwd};

/// The namespace flags of `clone` (`CLONE_NEWTIME` shares its bit with the
/// exit signal there) and of `unshare`.
pub const CLONE_NEW_MASK: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;
pub const UNSHARE_NEW_MASK: u32 = CLONE_NEW_MASK | 0x80; // CLONE_NEWTIME
/// What `clone` may not ask for: new namespaces, and `CLONE_UNTRACED`, a
/// child the keeper's tracing options do not follow (its execs would never
/// stop to be checked on what the kernel loaded).
pub const CLONE_FORBIDDEN_MASK: u32 = CLONE_NEW_MASK | libc::CLONE_UNTRACED as u32;
/// SCTP's socket option level (`IPPROTO_SCTP`).
pub const SOL_SCTP: u32 = 132;
/// The socket options that can route a socket's packets through hops of
/// the caller's choosing, as (level, name): `IP_OPTIONS` (LSRR, SSRR),
/// `IPV6_RTHDR` (a segment routing header needs no capability) and
/// `IPV6_2292PKTOPTIONS` (sticky options given as control messages, a
/// routing header among them).
pub const SOURCE_ROUTING_OPTIONS: [(u32, u32); 3] = [
    (libc::IPPROTO_IP as u32, libc::IP_OPTIONS as u32),
    (libc::IPPROTO_IPV6 as u32, libc::IPV6_RTHDR as u32),
    (libc::IPPROTO_IPV6 as u32, IPV6_2292PKTOPTIONS),
];
/// `IPV6_2292PKTOPTIONS` (linux/in6.h; not in the libc crate).
pub const IPV6_2292PKTOPTIONS: u32 = 6;
/// SCTP options that add addresses (linux/sctp.h): bind more local ones,
/// connect to more peers. CONNECTX3 is a getsockopt (it returns the
/// association id); the others are setsockopts.
pub const SCTP_SOCKOPT_BINDX_ADD: u32 = 100;
pub const SCTP_SOCKOPT_BINDX_REM: u32 = 101;
pub const SCTP_SOCKOPT_CONNECTX_OLD: u32 = 107;
pub const SCTP_SOCKOPT_CONNECTX: u32 = 110;
pub const SCTP_SOCKOPT_CONNECTX3: u32 = 111;
/// The flag of the launcher's handover `sendmsg` in the program that
/// inspects datagrams: that program notifies every other `sendmsg`, and
/// nobody answers the launcher's own before it has handed the listener
/// over. `MSG_CMSG_CLOEXEC` is a receive flag the kernel ignores on a send,
/// so no program sends with it; once the listener is handed over the
/// launcher installs [`SEAL`], which refuses every `sendmsg` that carries it.
pub const HANDOVER_FLAG: u32 = libc::MSG_CMSG_CLOEXEC as u32;
/// `fcntl`'s F_SETOWN_EX (linux/fcntl.h), which libc does not name.
pub const F_SETOWN_EX: u32 = 15;
/// `ioctl(TIOCSTI)`: a byte pushed into a terminal's input.
pub const TIOCSTI: u32 = 0x5412;
/// `ioctl` requests that set who gets an fd's SIGIO.
pub const FIOSETOWN: u32 = 0x8901;
pub const SIOCSPGRP: u32 = 0x8902;

/// Syscalls libc does not name yet (x86_64 numbers, include/uapi/asm-generic
/// and arch/x86/entry/syscalls/syscall_64.tbl).
pub mod nr {
    pub const SETXATTRAT: i64 = 463;
    pub const REMOVEXATTRAT: i64 = 466;
    pub const OPEN_TREE_ATTR: i64 = 467;
}

/// The policy, x86_64 numbers. The dispatch is a binary search over the
/// numbers (see [`compile`]), so the order here is for reading only.
pub const RULES: &[Rule] = &[
    // Filesystem: opens that can change a file (read-only opens stay in the kernel).
    notify_if(
        libc::SYS_openat,
        "openat",
        (2, OPEN_WRITE_MASK),
        D::Open {
            dir: Arg(0),
            path: 1,
            flags: OpenFlags::Arg(2),
            mode: Some(3),
        },
        "opens for write, create, truncate",
    ),
    notify_if(
        libc::SYS_open,
        "open",
        (1, OPEN_WRITE_MASK),
        D::Open {
            dir: Cwd,
            path: 0,
            flags: OpenFlags::Arg(1),
            mode: Some(2),
        },
        "opens for write, create, truncate",
    ),
    notify(
        libc::SYS_openat2,
        "openat2",
        D::Open {
            dir: Arg(0),
            path: 1,
            flags: OpenFlags::How { how: 2, size: 3 },
            mode: None,
        },
        "flags live in a struct the BPF program cannot read",
    ),
    notify(
        libc::SYS_creat,
        "creat",
        D::Open {
            dir: Cwd,
            path: 0,
            flags: OpenFlags::Creat,
            mode: Some(1),
        },
        "always creates or truncates",
    ),
    notify(
        libc::SYS_truncate,
        "truncate",
        D::Open {
            dir: Cwd,
            path: 0,
            flags: OpenFlags::Truncate { len: 1 },
            mode: None,
        },
        "changes a file by path",
    ),
    // Filesystem: names made, removed, moved.
    notify(
        libc::SYS_unlink,
        "unlink",
        D::Unlink {
            dir: Cwd,
            path: 0,
            flags: None,
        },
        "removes a file",
    ),
    notify(
        libc::SYS_unlinkat,
        "unlinkat",
        D::Unlink {
            dir: Arg(0),
            path: 1,
            flags: Some(2),
        },
        "removes a file or directory",
    ),
    notify(
        libc::SYS_rmdir,
        "rmdir",
        D::Rmdir { path: 0 },
        "removes a directory",
    ),
    notify(
        libc::SYS_rename,
        "rename",
        D::Rename {
            old_dir: Cwd,
            old: 0,
            new_dir: Cwd,
            new: 1,
            flags: None,
        },
        "replaces or moves a file",
    ),
    notify(
        libc::SYS_renameat,
        "renameat",
        D::Rename {
            old_dir: Arg(0),
            old: 1,
            new_dir: Arg(2),
            new: 3,
            flags: None,
        },
        "replaces or moves a file",
    ),
    notify(
        libc::SYS_renameat2,
        "renameat2",
        D::Rename {
            old_dir: Arg(0),
            old: 1,
            new_dir: Arg(2),
            new: 3,
            flags: Some(4),
        },
        "replaces or moves a file",
    ),
    notify(
        libc::SYS_link,
        "link",
        D::Link {
            old_dir: Cwd,
            old: 0,
            new_dir: Cwd,
            new: 1,
            flags: None,
        },
        "a new name for a file",
    ),
    notify(
        libc::SYS_linkat,
        "linkat",
        D::Link {
            old_dir: Arg(0),
            old: 1,
            new_dir: Arg(2),
            new: 3,
            flags: Some(4),
        },
        "a new name for a file, an O_TMPFILE file linked into place",
    ),
    notify(
        libc::SYS_symlink,
        "symlink",
        D::Symlink {
            target: 0,
            dir: Cwd,
            path: 1,
        },
        "a new name pointing anywhere",
    ),
    notify(
        libc::SYS_symlinkat,
        "symlinkat",
        D::Symlink {
            target: 0,
            dir: Arg(1),
            path: 2,
        },
        "a new name pointing anywhere",
    ),
    notify(
        libc::SYS_mkdir,
        "mkdir",
        D::Mkdir {
            dir: Cwd,
            path: 0,
            mode: 1,
        },
        "makes a directory",
    ),
    notify(
        libc::SYS_mkdirat,
        "mkdirat",
        D::Mkdir {
            dir: Arg(0),
            path: 1,
            mode: 2,
        },
        "makes a directory",
    ),
    notify(
        libc::SYS_mknod,
        "mknod",
        D::Mknod {
            dir: Cwd,
            path: 0,
            mode: 1,
            dev: 2,
        },
        "makes a FIFO, socket or device node",
    ),
    notify(
        libc::SYS_mknodat,
        "mknodat",
        D::Mknod {
            dir: Arg(0),
            path: 1,
            mode: 2,
            dev: 3,
        },
        "makes a FIFO, socket or device node",
    ),
    // Filesystem: modes and attributes.
    notify_if(
        libc::SYS_chmod,
        "chmod",
        (1, CHMOD_EXEC_MASK),
        D::Chmod {
            dir: Cwd,
            path: 0,
            mode: 1,
            flags: None,
        },
        "making a file executable",
    ),
    notify_if(
        libc::SYS_fchmod,
        "fchmod",
        (1, CHMOD_EXEC_MASK),
        D::Fchmod { fd: 0, mode: 1 },
        "making a file executable",
    ),
    notify_if(
        libc::SYS_fchmodat,
        "fchmodat",
        (2, CHMOD_EXEC_MASK),
        D::Chmod {
            dir: Arg(0),
            path: 1,
            mode: 2,
            flags: None,
        },
        "making a file executable",
    ),
    notify_if(
        libc::SYS_fchmodat2,
        "fchmodat2",
        (2, CHMOD_EXEC_MASK),
        D::Chmod {
            dir: Arg(0),
            path: 1,
            mode: 2,
            flags: Some(3),
        },
        "making a file executable (linux 6.6)",
    ),
    notify(
        libc::SYS_setxattr,
        "setxattr",
        D::Xattr {
            of: XattrOf::Path {
                path: 0,
                follow: true,
            },
            name: 1,
            value: Some((2, 3)),
            flags: Some(4),
        },
        "extended attributes: ACLs (execute without chmod), capabilities",
    ),
    notify(
        libc::SYS_lsetxattr,
        "lsetxattr",
        D::Xattr {
            of: XattrOf::Path {
                path: 0,
                follow: false,
            },
            name: 1,
            value: Some((2, 3)),
            flags: Some(4),
        },
        "extended attributes: ACLs (execute without chmod), capabilities",
    ),
    notify(
        libc::SYS_fsetxattr,
        "fsetxattr",
        D::Xattr {
            of: XattrOf::Fd(0),
            name: 1,
            value: Some((2, 3)),
            flags: Some(4),
        },
        "extended attributes: ACLs (execute without chmod), capabilities",
    ),
    notify(
        libc::SYS_removexattr,
        "removexattr",
        D::Xattr {
            of: XattrOf::Path {
                path: 0,
                follow: true,
            },
            name: 1,
            value: None,
            flags: None,
        },
        "removing an ACL widens access",
    ),
    notify(
        libc::SYS_lremovexattr,
        "lremovexattr",
        D::Xattr {
            of: XattrOf::Path {
                path: 0,
                follow: false,
            },
            name: 1,
            value: None,
            flags: None,
        },
        "removing an ACL widens access",
    ),
    notify(
        libc::SYS_fremovexattr,
        "fremovexattr",
        D::Xattr {
            of: XattrOf::Fd(0),
            name: 1,
            value: None,
            flags: None,
        },
        "removing an ACL widens access",
    ),
    refuse(
        nr::SETXATTRAT,
        "setxattrat",
        libc::ENOSYS,
        "linux 6.13's xattr calls keep their arguments in a struct: ENOSYS, and callers use setxattr",
    ),
    refuse(
        nr::REMOVEXATTRAT,
        "removexattrat",
        libc::ENOSYS,
        "as setxattrat: callers use removexattr",
    ),
    forbid(
        libc::SYS_open_by_handle_at,
        "open_by_handle_at",
        "opens a file by handle, past every path and directory permission",
    ),
    // Processes.
    notify(
        libc::SYS_execve,
        "execve",
        D::Exec {
            dir: Cwd,
            path: 0,
            argv: 1,
            flags: None,
        },
        "every program the workload runs",
    ),
    notify(
        libc::SYS_execveat,
        "execveat",
        D::Exec {
            dir: Arg(0),
            path: 1,
            argv: 2,
            flags: Some(4),
        },
        "same, including fileless exec of a memfd (AT_EMPTY_PATH)",
    ),
    notify(
        libc::SYS_ptrace,
        "ptrace",
        D::Debug { pid: 1 },
        "a tracer can rewrite another process's memory and registers",
    ),
    notify(
        libc::SYS_process_vm_writev,
        "process_vm_writev",
        D::Debug { pid: 0 },
        "writes another process's memory",
    ),
    forbid_if(
        libc::SYS_clone,
        "clone",
        (0, CLONE_FORBIDDEN_MASK),
        "new namespaces (a private mount table hides binds over learned paths) or CLONE_UNTRACED (a child whose execs the keeper would not stop to check)",
    ),
    refuse(
        libc::SYS_clone3,
        "clone3",
        libc::ENOSYS,
        "its flags live in a struct the BPF program cannot read: ENOSYS, and glibc falls back to clone, whose flags it can",
    ),
    forbid_if(
        libc::SYS_unshare,
        "unshare",
        (0, UNSHARE_NEW_MASK),
        "new namespaces: a private mount table hides binds over learned paths",
    ),
    forbid(
        libc::SYS_setns,
        "setns",
        "entering another namespace leaves the model's view of the container",
    ),
    // Mounts: a bind over a learned path runs or writes what the model never saw.
    forbid(libc::SYS_mount, "mount", "mounts change what every path names"),
    forbid(libc::SYS_umount2, "umount2", "mounts change what every path names"),
    forbid(libc::SYS_pivot_root, "pivot_root", "changes the root of the mount table"),
    forbid(libc::SYS_move_mount, "move_mount", "mounts change what every path names"),
    forbid(libc::SYS_open_tree, "open_tree", "detached mounts, for move_mount"),
    forbid(nr::OPEN_TREE_ATTR, "open_tree_attr", "detached mounts, for move_mount"),
    forbid(libc::SYS_fsopen, "fsopen", "a new filesystem to mount"),
    forbid(libc::SYS_fsconfig, "fsconfig", "a new filesystem to mount"),
    forbid(libc::SYS_fsmount, "fsmount", "a new filesystem to mount"),
    forbid(libc::SYS_fspick, "fspick", "reconfigures a mounted filesystem"),
    forbid(
        libc::SYS_mount_setattr,
        "mount_setattr",
        "changes a mount's flags (read-only, noexec)",
    ),
    // Signals: allowed, unless they reach nfguard's own processes.
    notify(
        libc::SYS_kill,
        "kill",
        D::Signal(SignalTo::Pid),
        "signals to nfguard's processes, their groups, or everyone",
    ),
    notify(
        libc::SYS_tkill,
        "tkill",
        D::Signal(SignalTo::Tid),
        "signals to nfguard's threads",
    ),
    notify(
        libc::SYS_tgkill,
        "tgkill",
        D::Signal(SignalTo::TgidTid),
        "signals to nfguard's threads",
    ),
    notify(
        libc::SYS_rt_sigqueueinfo,
        "rt_sigqueueinfo",
        D::Signal(SignalTo::Pid),
        "signals to nfguard's processes",
    ),
    notify(
        libc::SYS_rt_tgsigqueueinfo,
        "rt_tgsigqueueinfo",
        D::Signal(SignalTo::TgidTid),
        "signals to nfguard's threads",
    ),
    notify(
        libc::SYS_pidfd_send_signal,
        "pidfd_send_signal",
        D::Signal(SignalTo::Pidfd),
        "signals to nfguard's processes",
    ),
    notify_if(
        libc::SYS_prlimit64,
        "prlimit64",
        (0, u32::MAX),
        D::Limits,
        "another process's limits: nfguard's own must not be lowered",
    ),
    // A task in a process group of nfguard's reaches it with kill(0) and
    // setpriority(PRIO_PGRP, 0), which name the group the kernel finds at
    // the call: joining one is refused, so the caller's group is never
    // nfguard's. Notified when a group is named (setpgid(x, 0) makes one).
    notify_if(
        libc::SYS_setpgid,
        "setpgid",
        (1, u32::MAX),
        D::Reaches(ReachOf::Group(1)),
        "joining a process group of nfguard's: kill(0) would reach it",
    ),
    // Other processes, by pid: nfguard's own must be out of reach.
    notify(
        libc::SYS_process_vm_readv,
        "process_vm_readv",
        D::Reaches(ReachOf::Pid(0)),
        "reads another process's memory (nfguard's listener state among it)",
    ),
    notify(
        libc::SYS_pidfd_open,
        "pidfd_open",
        D::Reaches(ReachOf::Pid(0)),
        "a handle on another process, the first step to its fds",
    ),
    notify(
        libc::SYS_pidfd_getfd,
        "pidfd_getfd",
        D::Reaches(ReachOf::Pidfd(0)),
        "takes another process's fd (nfguard's listener)",
    ),
    notify_if(
        libc::SYS_perf_event_open,
        "perf_event_open",
        (1, u32::MAX),
        D::Reaches(ReachOf::Pid(1)),
        "events of another process; with sigtrap, a SIGTRAP at every overflow",
    ),
    notify_if(
        libc::SYS_sched_setscheduler,
        "sched_setscheduler",
        (0, u32::MAX),
        D::Reaches(ReachOf::Pid(0)),
        "another process's scheduling: nfguard must not be starved",
    ),
    notify_if(
        libc::SYS_sched_setparam,
        "sched_setparam",
        (0, u32::MAX),
        D::Reaches(ReachOf::Pid(0)),
        "another process's scheduling: nfguard must not be starved",
    ),
    notify_if(
        libc::SYS_sched_setattr,
        "sched_setattr",
        (0, u32::MAX),
        D::Reaches(ReachOf::Pid(0)),
        "another process's scheduling: nfguard must not be starved",
    ),
    notify_if(
        libc::SYS_sched_setaffinity,
        "sched_setaffinity",
        (0, u32::MAX),
        D::Reaches(ReachOf::Pid(0)),
        "another process's CPUs: nfguard must not be starved",
    ),
    notify(
        libc::SYS_setpriority,
        "setpriority",
        D::Reaches(ReachOf::Which {
            which: 0,
            who: 1,
            io: false,
        }),
        "another process's, group's or user's priority: nfguard's among them",
    ),
    notify(
        libc::SYS_ioprio_set,
        "ioprio_set",
        D::Reaches(ReachOf::Which {
            which: 0,
            who: 1,
            io: true,
        }),
        "another process's I/O priority: nfguard's among them",
    ),
    notify_in(
        libc::SYS_fcntl,
        "fcntl",
        (1, [libc::F_SETOWN as u32, F_SETOWN_EX, F_SETOWN_EX]),
        D::SetOwner { ioctl: false },
        "F_SETOWN: an fd's SIGIO, of any signal number, sent to a chosen process",
    ),
    notify_in(
        libc::SYS_ioctl,
        "ioctl",
        (1, [FIOSETOWN, SIOCSPGRP, TIOCSTI]),
        D::SetOwner { ioctl: true },
        "FIOSETOWN, SIOCSPGRP: as F_SETOWN; TIOCSTI types into the terminal, whose shell is outside the filter (forbidden)",
    ),
    // Network.
    notify(
        libc::SYS_socket,
        "socket",
        D::Socket,
        "family, type and protocol: raw and packet sockets matter",
    ),
    notify(
        libc::SYS_connect,
        "connect",
        D::Connect,
        "outbound peers (TCP, and UDP destinations fixed by connect)",
    ),
    notify(
        libc::SYS_bind,
        "bind",
        D::Bind,
        "ports and unix paths the workload serves on",
    ),
    notify(
        libc::SYS_listen,
        "listen",
        D::Listen,
        "the port a stream socket starts accepting on",
    ),
    // Sends that name a destination. Without datagram inspection
    // ([`PROGRAM`]) only MSG_FASTOPEN is notified: it connects a TCP socket
    // without connect(). With it ([`PROGRAM_DATAGRAMS`]), a sendto with a
    // destination is (a null one sends to the connected peer, judged at
    // connect(): no cost per datagram), and sendmsg and sendmmsg always are,
    // since their destination is in memory. A fast-open send with no
    // destination is refused by the kernel (EINVAL), so the address test
    // covers MSG_FASTOPEN too.
    notify_if(
        libc::SYS_sendto,
        "sendto",
        (3, libc::MSG_FASTOPEN as u32),
        D::Send(SendOf::To),
        "a destination of its own: MSG_FASTOPEN, or with datagram inspection any address",
    )
    .inspecting(Action::NotifyIfArgNonZero { arg: 4 }),
    notify_if(
        libc::SYS_sendmsg,
        "sendmsg",
        (2, libc::MSG_FASTOPEN as u32),
        D::Send(SendOf::Msg),
        "a destination in memory: MSG_FASTOPEN, or with datagram inspection every call",
    )
    .inspecting(Action::NotifyUnlessArgMask {
        arg: 2,
        mask: HANDOVER_FLAG,
    }),
    notify_if(
        libc::SYS_sendmmsg,
        "sendmmsg",
        (3, libc::MSG_FASTOPEN as u32),
        D::Send(SendOf::Mmsg),
        "destinations in memory: MSG_FASTOPEN, or with datagram inspection every call",
    )
    .inspecting(Action::Notify),
    // SCTP adds addresses through socket options (sctp_bindx, sctp_connectx),
    // and IP options source-route every packet of a socket to another first
    // hop: notified at SCTP's level and for those few IP and IPv6 options,
    // so every other option stays in the kernel.
    notify_level_or(
        libc::SYS_setsockopt,
        "setsockopt",
        (1, 2, SOL_SCTP),
        SOURCE_ROUTING_OPTIONS,
        D::SockOpt { get: false },
        "SCTP_SOCKOPT_BINDX_ADD and SCTP_SOCKOPT_CONNECTX(_OLD) bind and connect more addresses; IP_OPTIONS, IPV6_RTHDR and IPV6_2292PKTOPTIONS can source-route",
    ),
    notify_both(
        libc::SYS_getsockopt,
        "getsockopt",
        ((1, SOL_SCTP), (2, SCTP_SOCKOPT_CONNECTX3)),
        D::SockOpt { get: true },
        "SCTP_SOCKOPT_CONNECTX3, sctp_connectx's first form, connects through getsockopt",
    ),
    // io_uring submissions are not seen by seccomp at all.
    forbid(
        libc::SYS_io_uring_setup,
        "io_uring_setup",
        "io_uring submissions bypass seccomp",
    ),
    forbid(
        libc::SYS_io_uring_enter,
        "io_uring_enter",
        "io_uring submissions bypass seccomp",
    ),
    forbid(
        libc::SYS_io_uring_register,
        "io_uring_register",
        "io_uring submissions bypass seccomp",
    ),
];

/// The rule for syscall `nr`, if the policy names it.
pub fn rule(nr: i32) -> Option<&'static Rule> {
    SORTED
        .binary_search_by_key(&i64::from(nr), |r| r.nr)
        .ok()
        .map(|i| &SORTED[i])
}

/// The name of syscall `nr` if the policy names it.
pub fn syscall_name(nr: i32) -> &'static str {
    rule(nr).map(|r| r.name).unwrap_or("unknown")
}

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
pub const BPF_LD_W_ABS: u16 = 0x20;
pub const BPF_JMP_JEQ_K: u16 = 0x15;
pub const BPF_JMP_JGE_K: u16 = 0x35;
pub const BPF_JMP_JSET_K: u16 = 0x45;
pub const BPF_RET_K: u16 = 0x06;

// Offsets in struct seccomp_data.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg_low(arg: u8) -> u32 {
    // args[] starts at 16; x86_64 is little-endian, so the low half comes first.
    16 + 8 * arg as u32
}
const fn off_arg_high(arg: u8) -> u32 {
    off_arg_low(arg) + 4
}

pub const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub const RET_NOTIFY: u32 = libc::SECCOMP_RET_USER_NOTIF;
pub const fn ret_errno(errno: u32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno & libc::SECCOMP_RET_DATA)
}

const fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Instructions of one rule's body, which always ends in a `ret`.
const fn body_len(r: &Rule, datagrams: bool) -> usize {
    match r.action_in(datagrams) {
        Action::Notify | Action::Errno(_) => 1,
        // ld arg; jset mask; ret notify; ret allow
        Action::NotifyIfArgMask { .. } | Action::NotifyUnlessArgMask { .. } => 4,
        // ld arg; jeq a; jeq b; ret allow; ret notify
        Action::NotifyIfArgIn { .. } => 6,
        // ld low; jeq 0; ret notify; ld high; jeq 0; ret allow; ret notify
        Action::NotifyIfArgNonZero { .. } => 7,
        // ld a; jeq; ld b; jeq; ret allow; ret notify
        Action::NotifyIfArgsEq { .. } => 6,
        // ld level; jeq any; per pair (ld level; jeq; ld name; jeq); ret allow; ret notify
        Action::NotifyIfLevelOrOption { .. } => 16,
    }
}

/// The prologue: the architecture check and the x32 check.
const PROLOGUE: usize = 6;
/// Rules a leaf of the dispatch tree compares one by one.
const LEAF: usize = 3;

/// [`RULES`] sorted by number, for the dispatch tree and [`rule`].
pub static SORTED: [Rule; RULES.len()] = sorted(RULES);

/// `rules` sorted by syscall number (an insertion sort: this runs at compile time).
pub const fn sorted<const N: usize>(rules: &[Rule]) -> [Rule; N] {
    assert!(N == rules.len(), "N must be rules.len()");
    let mut out = [rules[0]; N];
    let mut i = 0;
    while i < N {
        out[i] = rules[i];
        let mut j = i;
        while j > 0 && out[j - 1].nr > out[j].nr {
            let t = out[j - 1];
            out[j - 1] = out[j];
            out[j] = t;
            j -= 1;
        }
        i += 1;
    }
    i = 1;
    while i < N {
        assert!(
            out[i - 1].nr != out[i].nr,
            "a syscall is in the policy twice"
        );
        i += 1;
    }
    out
}

/// Instructions of the dispatch (sub)tree over `sorted[lo..hi]`.
const fn tree_len(sorted: &[Rule], lo: usize, hi: usize, datagrams: bool) -> usize {
    if hi - lo <= LEAF {
        // Each rule: jeq then its body inline; then `ret ALLOW` for every other number.
        let mut n = 1;
        let mut i = lo;
        while i < hi {
            n += 1 + body_len(&sorted[i], datagrams);
            i += 1;
        }
        n
    } else {
        let mid = (lo + hi) / 2;
        1 + tree_len(sorted, lo, mid, datagrams) + tree_len(sorted, mid, hi, datagrams)
    }
}

/// Emits the dispatch (sub)tree over `sorted[lo..hi]` at `at`; returns where it ends.
///
/// A node compares the number with the middle rule's (`jge`): below it, the
/// left half follows at once; at or above it, the jump skips the left half.
/// A leaf compares each of its rules (`jeq`, falling into that rule's body,
/// which ends in `ret`, or skipping it), then allows. An unlisted syscall thus
/// costs about log2(rules) comparisons, not one per rule.
const fn emit<const N: usize>(
    prog: &mut [sock_filter; N],
    mut at: usize,
    sorted: &[Rule],
    (lo, hi): (usize, usize),
    datagrams: bool,
) -> usize {
    if hi - lo <= LEAF {
        let mut i = lo;
        while i < hi {
            let r = &sorted[i];
            let body = body_len(r, datagrams);
            assert!(body <= u8::MAX as usize);
            prog[at] = jump(BPF_JMP_JEQ_K, r.nr as u32, 0, body as u8);
            at += 1;
            match r.action_in(datagrams) {
                Action::Notify => prog[at] = stmt(BPF_RET_K, RET_NOTIFY),
                Action::Errno(e) => prog[at] = stmt(BPF_RET_K, ret_errno(e)),
                Action::NotifyIfArgMask { arg, mask } => {
                    prog[at] = stmt(BPF_LD_W_ABS, off_arg_low(arg));
                    prog[at + 1] = jump(BPF_JMP_JSET_K, mask, 0, 1);
                    prog[at + 2] = stmt(BPF_RET_K, RET_NOTIFY);
                    prog[at + 3] = stmt(BPF_RET_K, RET_ALLOW);
                }
                Action::NotifyUnlessArgMask { arg, mask } => {
                    prog[at] = stmt(BPF_LD_W_ABS, off_arg_low(arg));
                    prog[at + 1] = jump(BPF_JMP_JSET_K, mask, 0, 1);
                    prog[at + 2] = stmt(BPF_RET_K, RET_ALLOW);
                    prog[at + 3] = stmt(BPF_RET_K, RET_NOTIFY);
                }
                Action::NotifyIfArgIn { arg, values } => {
                    prog[at] = stmt(BPF_LD_W_ABS, off_arg_low(arg));
                    prog[at + 1] = jump(BPF_JMP_JEQ_K, values[0], 3, 0);
                    prog[at + 2] = jump(BPF_JMP_JEQ_K, values[1], 2, 0);
                    prog[at + 3] = jump(BPF_JMP_JEQ_K, values[2], 1, 0);
                    prog[at + 4] = stmt(BPF_RET_K, RET_ALLOW);
                    prog[at + 5] = stmt(BPF_RET_K, RET_NOTIFY);
                }
                Action::NotifyIfArgNonZero { arg } => {
                    // Low half zero: the high half decides; otherwise notify.
                    prog[at] = stmt(BPF_LD_W_ABS, off_arg_low(arg));
                    prog[at + 1] = jump(BPF_JMP_JEQ_K, 0, 1, 0);
                    prog[at + 2] = stmt(BPF_RET_K, RET_NOTIFY);
                    prog[at + 3] = stmt(BPF_LD_W_ABS, off_arg_high(arg));
                    prog[at + 4] = jump(BPF_JMP_JEQ_K, 0, 0, 1);
                    prog[at + 5] = stmt(BPF_RET_K, RET_ALLOW);
                    prog[at + 6] = stmt(BPF_RET_K, RET_NOTIFY);
                }
                Action::NotifyIfArgsEq {
                    first: (a, va),
                    second: (b, vb),
                } => {
                    prog[at] = stmt(BPF_LD_W_ABS, off_arg_low(a));
                    prog[at + 1] = jump(BPF_JMP_JEQ_K, va, 0, 2);
                    prog[at + 2] = stmt(BPF_LD_W_ABS, off_arg_low(b));
                    prog[at + 3] = jump(BPF_JMP_JEQ_K, vb, 1, 0);
                    prog[at + 4] = stmt(BPF_RET_K, RET_ALLOW);
                    prog[at + 5] = stmt(BPF_RET_K, RET_NOTIFY);
                }
                Action::NotifyIfLevelOrOption {
                    level,
                    name,
                    any,
                    pairs,
                } => {
                    // The notify is the body's last instruction, at `at + 15`;
                    // a jump from `i` to it skips `15 - i - 1`.
                    prog[at] = stmt(BPF_LD_W_ABS, off_arg_low(level));
                    prog[at + 1] = jump(BPF_JMP_JEQ_K, any, 13, 0);
                    let mut p = 0;
                    while p < 3 {
                        // Loading the name replaces the level: each pair loads it again.
                        let b = 2 + 4 * p;
                        prog[at + b] = stmt(BPF_LD_W_ABS, off_arg_low(level));
                        prog[at + b + 1] = jump(BPF_JMP_JEQ_K, pairs[p].0, 0, 2);
                        prog[at + b + 2] = stmt(BPF_LD_W_ABS, off_arg_low(name));
                        prog[at + b + 3] =
                            jump(BPF_JMP_JEQ_K, pairs[p].1, (15 - (b + 3) - 1) as u8, 0);
                        p += 1;
                    }
                    prog[at + 14] = stmt(BPF_RET_K, RET_ALLOW);
                    prog[at + 15] = stmt(BPF_RET_K, RET_NOTIFY);
                }
            }
            at += body;
            i += 1;
        }
        prog[at] = stmt(BPF_RET_K, RET_ALLOW);
        at + 1
    } else {
        let mid = (lo + hi) / 2;
        let left = tree_len(sorted, lo, mid, datagrams);
        assert!(
            left <= u8::MAX as usize,
            "BPF jump too long: split the tree further"
        );
        prog[at] = jump(BPF_JMP_JGE_K, sorted[mid].nr as u32, left as u8, 0);
        let at = emit(prog, at + 1, sorted, (lo, mid), datagrams);
        emit(prog, at, sorted, (mid, hi), datagrams)
    }
}

/// The length of the program `compile(rules, datagrams)` makes.
pub const fn program_len<const R: usize>(rules: &[Rule], datagrams: bool) -> usize {
    let s = sorted::<R>(rules);
    PROLOGUE + tree_len(&s, 0, R, datagrams)
}

/// Compiles `rules` (`R` of them) into a BPF program of `N` instructions
/// (`program_len::<R>(rules, datagrams)`), with each rule's action in the
/// program that inspects datagrams (`datagrams`) or in the one that does not.
///
/// Layout: the architecture check, the x32 check, then the dispatch tree with
/// each rule's body inline. A `const fn`, so a table whose jumps do not fit a
/// BPF offset fails the build, not the launcher.
pub const fn compile<const R: usize, const N: usize>(
    rules: &[Rule],
    datagrams: bool,
) -> [sock_filter; N] {
    assert!(
        N == program_len::<R>(rules, datagrams),
        "N must be program_len(rules, datagrams)"
    );
    let s = sorted::<R>(rules);
    let mut prog = [stmt(0, 0); N];
    prog[0] = stmt(BPF_LD_W_ABS, OFF_ARCH);
    // Foreign ABI: refuse (the supervisor decodes x86_64 numbers only).
    prog[1] = jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0);
    prog[2] = stmt(BPF_RET_K, ret_errno(libc::EPERM as u32));
    prog[3] = stmt(BPF_LD_W_ABS, OFF_NR);
    prog[4] = jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1);
    prog[5] = stmt(BPF_RET_K, ret_errno(libc::EPERM as u32));
    let end = emit(&mut prog, PROLOGUE, &s, (0, R), datagrams);
    assert!(end == N);
    prog
}

/// The number of instructions of [`PROGRAM`].
pub const PROGRAM_LEN: usize = program_len::<{ RULES.len() }>(RULES, false);
/// The number of instructions of [`PROGRAM_DATAGRAMS`].
pub const PROGRAM_DATAGRAMS_LEN: usize = program_len::<{ RULES.len() }>(RULES, true);

/// The program the launcher installs without datagram inspection, compiled
/// from [`RULES`] when this crate is: a datagram's destination is judged at
/// `connect()` only.
pub static PROGRAM: [sock_filter; PROGRAM_LEN] =
    compile::<{ RULES.len() }, PROGRAM_LEN>(RULES, false);

/// The program the launcher installs with datagram inspection: from the same
/// table, with each rule's `datagrams` action.
pub static PROGRAM_DATAGRAMS: [sock_filter; PROGRAM_DATAGRAMS_LEN] =
    compile::<{ RULES.len() }, PROGRAM_DATAGRAMS_LEN>(RULES, true);

/// The program `datagrams` names (true: with datagram inspection).
pub fn program(datagrams: bool) -> &'static [sock_filter] {
    if datagrams {
        &PROGRAM_DATAGRAMS
    } else {
        &PROGRAM
    }
}

/// The second filter the launcher installs over [`PROGRAM_DATAGRAMS`] once
/// it has handed the listener over: `sendmsg` with [`HANDOVER_FLAG`], which
/// the first program lets through unasked for the launcher's own handover,
/// is refused (EINVAL) from then on. It needs no listener (it never
/// notifies); of two filters the kernel takes the stricter answer, so an
/// errno here overrides the first program's allow. Foreign ABIs are left to
/// the first program, which refuses them.
pub static SEAL: [sock_filter; 8] = [
    stmt(BPF_LD_W_ABS, OFF_ARCH),
    jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 0, 5),
    stmt(BPF_LD_W_ABS, OFF_NR),
    jump(BPF_JMP_JEQ_K, libc::SYS_sendmsg as u32, 0, 3),
    stmt(BPF_LD_W_ABS, off_arg_low(2)),
    jump(BPF_JMP_JSET_K, HANDOVER_FLAG, 0, 1),
    stmt(BPF_RET_K, ret_errno(libc::EINVAL as u32)),
    stmt(BPF_RET_K, RET_ALLOW),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic-BPF interpreter for the few opcodes `compile` emits, so the
    /// dispatch arithmetic is checked for every rule without a kernel. The
    /// kernel-level tests in sidecar/tests/ check the same program for real.
    fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = prog[pc];
            pc += 1;
            match ins.code {
                BPF_LD_W_ABS => {
                    let o = ins.k as usize;
                    acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
                }
                BPF_JMP_JEQ_K | BPF_JMP_JGE_K | BPF_JMP_JSET_K => {
                    let taken = match ins.code {
                        BPF_JMP_JEQ_K => acc == ins.k,
                        BPF_JMP_JGE_K => acc >= ins.k,
                        _ => acc & ins.k != 0,
                    };
                    pc += if taken { ins.jt } else { ins.jf } as usize;
                }
                BPF_RET_K => return ins.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    /// The kernel's answer when several filters are installed: the strictest
    /// action wins (seccomp compares the action parts as signed ints; ERRNO
    /// is stricter than USER_NOTIF, which is stricter than ALLOW).
    fn stacked(progs: &[&[sock_filter]], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        progs
            .iter()
            .map(|p| run(p, arch, nr, args))
            .min_by_key(|r| (r & libc::SECCOMP_RET_ACTION_FULL) as i32)
            .unwrap()
    }

    const BOTH: [(bool, &[sock_filter]); 2] = [(false, &PROGRAM), (true, &PROGRAM_DATAGRAMS)];

    #[test]
    fn every_rule_dispatches_to_its_own_action_in_both_programs() {
        for (datagrams, prog) in BOTH {
            for r in RULES {
                let name = format!("{} (datagrams: {datagrams})", r.name);
                let at = |args: [u64; 6]| run(prog, AUDIT_ARCH_X86_64, r.nr as u32, args);
                let mut args = [0u64; 6];
                match r.action_in(datagrams) {
                    Action::Notify => assert_eq!(at(args), RET_NOTIFY, "{name}"),
                    Action::Errno(e) => assert_eq!(at(args), ret_errno(e), "{name}"),
                    Action::NotifyIfArgMask { arg, mask } => {
                        assert_eq!(at(args), RET_ALLOW, "{name}");
                        // Each bit of the mask on its own notifies; a high half never does.
                        for bit in 0..32 {
                            if mask & (1 << bit) != 0 {
                                args[arg as usize] = 1 << bit;
                                assert_eq!(at(args), RET_NOTIFY, "{name}");
                            }
                        }
                        args[arg as usize] = u64::from(!mask) | (u64::from(mask) << 32);
                        assert_eq!(at(args), RET_ALLOW, "{name}");
                    }
                    Action::NotifyUnlessArgMask { arg, mask } => {
                        assert_eq!(at(args), RET_NOTIFY, "{name}");
                        args[arg as usize] = u64::from(!mask) | (u64::from(mask) << 32);
                        assert_eq!(
                            at(args),
                            RET_NOTIFY,
                            "{name}: a high half counts for nothing"
                        );
                        args[arg as usize] = u64::from(mask);
                        assert_eq!(at(args), RET_ALLOW, "{name}");
                    }
                    Action::NotifyIfArgIn { arg, values } => {
                        assert_eq!(at(args), RET_ALLOW, "{name}");
                        for v in values {
                            args[arg as usize] = u64::from(v);
                            assert_eq!(at(args), RET_NOTIFY, "{name}");
                            // An int argument: the kernel drops the high half, so does the test.
                            args[arg as usize] = u64::from(v) | 0xdead_beef_0000_0000;
                            assert_eq!(at(args), RET_NOTIFY, "{name}");
                        }
                        args[arg as usize] = u64::from(values[0] + values[1] + values[2] + 1);
                        assert_eq!(at(args), RET_ALLOW, "{name}");
                    }
                    Action::NotifyIfArgNonZero { arg } => {
                        assert_eq!(at(args), RET_ALLOW, "{name}: a null pointer");
                        for v in [1, 0x7fff_0000_1000, 0x1_0000_0000, u64::MAX, 0x8000_0000] {
                            args[arg as usize] = v;
                            assert_eq!(at(args), RET_NOTIFY, "{name}: {v:#x}");
                        }
                    }
                    Action::NotifyIfLevelOrOption {
                        level,
                        name: opt,
                        any,
                        pairs,
                    } => {
                        assert_eq!(at(args), RET_ALLOW, "{name}");
                        args[level as usize] = u64::from(any) | 0xdead_beef_0000_0000;
                        for o in [0, 1, 100, u32::MAX] {
                            args[opt as usize] = u64::from(o);
                            assert_eq!(at(args), RET_NOTIFY, "{name}: any option at {any}");
                        }
                        for (l, o) in pairs {
                            args[level as usize] = u64::from(l);
                            args[opt as usize] = u64::from(o) | 0xdead_beef_0000_0000;
                            assert_eq!(at(args), RET_NOTIFY, "{name}: ({l}, {o})");
                            args[opt as usize] = u64::from(o + 1000);
                            assert_eq!(at(args), RET_ALLOW, "{name}: ({l}, another)");
                        }
                        args[level as usize] = 1; // SOL_SOCKET
                        args[opt as usize] = u64::from(pairs[0].1);
                        assert_eq!(at(args), RET_ALLOW, "{name}: the name at another level");
                    }
                    Action::NotifyIfArgsEq {
                        first: (a, va),
                        second: (b, vb),
                    } => {
                        assert_eq!(at(args), RET_ALLOW, "{name}");
                        args[a as usize] = u64::from(va);
                        assert_eq!(at(args), RET_ALLOW, "{name}: the first alone");
                        args[b as usize] = u64::from(vb);
                        assert_eq!(at(args), RET_NOTIFY, "{name}: both");
                        args[a as usize] = u64::from(va + 1);
                        assert_eq!(at(args), RET_ALLOW, "{name}: the second alone");
                    }
                }
            }
        }
    }

    #[test]
    fn a_sendto_is_notified_for_its_destination_only_with_datagram_inspection() {
        let sendto = libc::SYS_sendto as u32;
        // sendto(fd, buf, len, flags, addr, addrlen)
        let with = |addr: u64, flags: u64| [5, 0x1000, 64, flags, addr, 16];
        let fastopen = libc::MSG_FASTOPEN as u64;
        for (addr, flags, off, inspect) in [
            (0, 0, RET_ALLOW, RET_ALLOW), // connected: judged at connect()
            (0x7ffd_1234_5678, 0, RET_ALLOW, RET_NOTIFY),
            (0x1_0000_0000, 0, RET_ALLOW, RET_NOTIFY), // low half zero: still a pointer
            (0x7ffd_1234_5678, fastopen, RET_NOTIFY, RET_NOTIFY),
            // A fast-open send needs a destination: without one the kernel refuses it.
            (0, fastopen, RET_NOTIFY, RET_ALLOW),
        ] {
            let args = with(addr, flags);
            assert_eq!(
                run(&PROGRAM, AUDIT_ARCH_X86_64, sendto, args),
                off,
                "{addr:#x} {flags:#x}"
            );
            assert_eq!(
                run(&PROGRAM_DATAGRAMS, AUDIT_ARCH_X86_64, sendto, args),
                inspect,
                "{addr:#x} {flags:#x}"
            );
        }
        for nr in [libc::SYS_sendmsg, libc::SYS_sendmmsg] {
            let args = [5, 0x1000, 1, 0, 0, 0];
            assert_eq!(run(&PROGRAM, AUDIT_ARCH_X86_64, nr as u32, args), RET_ALLOW);
            assert_eq!(
                run(&PROGRAM_DATAGRAMS, AUDIT_ARCH_X86_64, nr as u32, args),
                RET_NOTIFY
            );
        }
        // Calls without a destination stay in the kernel in both programs.
        for nr in [
            libc::SYS_write,
            libc::SYS_writev,
            libc::SYS_recvfrom,
            libc::SYS_recvmsg,
        ] {
            for (_, prog) in BOTH {
                assert_eq!(
                    run(prog, AUDIT_ARCH_X86_64, nr as u32, [5, 1, 2, 3, 4, 5]),
                    RET_ALLOW
                );
            }
        }
    }

    #[test]
    fn the_launchers_handover_passes_once_and_the_seal_refuses_it_after() {
        let sendmsg = libc::SYS_sendmsg as u32;
        let handover = [3, 0x1000, u64::from(HANDOVER_FLAG), 0, 0, 0];
        let plain = [3, 0x1000, libc::MSG_NOSIGNAL as u64, 0, 0, 0];
        let first: &[sock_filter] = &PROGRAM_DATAGRAMS;
        // Before the seal: the handover is not notified (nobody could answer
        // it yet), every other sendmsg is.
        assert_eq!(
            stacked(&[first], AUDIT_ARCH_X86_64, sendmsg, handover),
            RET_ALLOW
        );
        assert_eq!(
            stacked(&[first], AUDIT_ARCH_X86_64, sendmsg, plain),
            RET_NOTIFY
        );
        // After: the flag is an error, the rest is as before.
        let both = [first, &SEAL[..]];
        let einval = ret_errno(libc::EINVAL as u32);
        assert_eq!(stacked(&both, AUDIT_ARCH_X86_64, sendmsg, handover), einval);
        let mixed = [
            3,
            0x1000,
            u64::from(HANDOVER_FLAG) | libc::MSG_FASTOPEN as u64,
            0,
            0,
            0,
        ];
        assert_eq!(stacked(&both, AUDIT_ARCH_X86_64, sendmsg, mixed), einval);
        assert_eq!(
            stacked(&both, AUDIT_ARCH_X86_64, sendmsg, plain),
            RET_NOTIFY
        );
        // The seal changes nothing else, whatever the arguments.
        for r in RULES {
            for args in [[0; 6], [u64::MAX; 6], handover] {
                if r.nr as u32 == sendmsg {
                    continue;
                }
                assert_eq!(
                    stacked(&both, AUDIT_ARCH_X86_64, r.nr as u32, args),
                    run(first, AUDIT_ARCH_X86_64, r.nr as u32, args),
                    "{}",
                    r.name
                );
            }
        }
        assert_eq!(
            run(&SEAL, AUDIT_ARCH_X86_64, libc::SYS_getpid as u32, handover),
            RET_ALLOW
        );
        // A foreign ABI's number 46 is not sendmsg: the first program refuses it anyway.
        const AUDIT_ARCH_I386: u32 = 0x4000_0003;
        assert_eq!(run(&SEAL, AUDIT_ARCH_I386, sendmsg, handover), RET_ALLOW);
        assert_eq!(
            stacked(&both, AUDIT_ARCH_I386, sendmsg, handover),
            ret_errno(libc::EPERM as u32)
        );
    }

    #[test]
    fn only_sctps_socket_options_and_those_that_source_route_reach_the_supervisor() {
        let (set, get) = (libc::SYS_setsockopt as u32, libc::SYS_getsockopt as u32);
        let sctp = u64::from(SOL_SCTP);
        for (_, prog) in BOTH {
            let at = |nr, level: u64, name: u32| {
                run(
                    prog,
                    AUDIT_ARCH_X86_64,
                    nr,
                    [4, level, u64::from(name), 0x1000, 16, 0],
                )
            };
            for name in [
                SCTP_SOCKOPT_BINDX_ADD,
                SCTP_SOCKOPT_CONNECTX,
                SCTP_SOCKOPT_CONNECTX_OLD,
                3, // SCTP_NODELAY: notified too, and continued at once
            ] {
                assert_eq!(at(set, sctp, name), RET_NOTIFY, "setsockopt {name}");
            }
            // The level is an int: a high half does not hide SCTP's level.
            assert_eq!(at(set, sctp | 1 << 32, SCTP_SOCKOPT_BINDX_ADD), RET_NOTIFY);
            for level in [
                libc::SOL_SOCKET,
                libc::IPPROTO_IP,
                libc::IPPROTO_TCP,
                libc::IPPROTO_IPV6,
            ] {
                // SO_REUSEADDR 2, IP_TOS 1, IPV6_V6ONLY 26: the kernel's.
                for name in [SCTP_SOCKOPT_BINDX_ADD, libc::SO_REUSEADDR as u32, 1, 26] {
                    assert_eq!(at(set, level as u64, name), RET_ALLOW, "{level} {name}");
                    assert_eq!(at(get, level as u64, name), RET_ALLOW, "{level} {name}");
                }
                assert_eq!(at(get, level as u64, SCTP_SOCKOPT_CONNECTX3), RET_ALLOW);
            }
            assert_eq!(at(get, sctp, SCTP_SOCKOPT_CONNECTX3), RET_NOTIFY);
            // getsockopt(SCTP_STATUS) and the like stay in the kernel.
            assert_eq!(at(get, sctp, 14), RET_ALLOW);
            // The options that source-route are set through setsockopt; read
            // back through getsockopt, they are the kernel's.
            for (level, name) in SOURCE_ROUTING_OPTIONS {
                assert_eq!(
                    at(set, u64::from(level), name),
                    RET_NOTIFY,
                    "{level} {name}"
                );
                assert_eq!(at(get, u64::from(level), name), RET_ALLOW, "{level} {name}");
            }
        }
    }

    #[test]
    fn every_other_syscall_number_is_allowed_and_cheap_to_tell() {
        // Unlisted numbers are allowed, however the tree splits them, and the
        // dispatch takes a handful of comparisons, not one per rule.
        let (mut most, listed) = (0, |nr: u32| RULES.iter().any(|r| r.nr as u32 == nr));
        for nr in 0..1024u32 {
            if listed(nr) {
                continue;
            }
            for (_, prog) in BOTH {
                assert_eq!(
                    run(prog, AUDIT_ARCH_X86_64, nr, [u64::MAX; 6]),
                    RET_ALLOW,
                    "{nr}"
                );
                most = most.max(steps(prog, nr));
            }
        }
        eprintln!("an unlisted syscall runs through at most {most} instructions ({} rules, {PROGRAM_LEN} instructions)", RULES.len());
        assert!(most <= 16, "an unlisted syscall takes {most} instructions");
    }

    /// Instructions an unlisted syscall `nr` runs through.
    fn steps(prog: &[sock_filter], nr: u32) -> usize {
        let (mut pc, mut acc, mut n) = (0usize, 0u32, 0);
        loop {
            let ins = prog[pc];
            pc += 1;
            n += 1;
            match ins.code {
                BPF_LD_W_ABS => acc = if ins.k == 4 { AUDIT_ARCH_X86_64 } else { nr },
                BPF_JMP_JEQ_K | BPF_JMP_JGE_K | BPF_JMP_JSET_K => {
                    let taken = match ins.code {
                        BPF_JMP_JEQ_K => acc == ins.k,
                        BPF_JMP_JGE_K => acc >= ins.k,
                        _ => acc & ins.k != 0,
                    };
                    pc += if taken { ins.jt } else { ins.jf } as usize;
                }
                _ => return n,
            }
        }
    }

    #[test]
    fn every_rule_is_named_once_and_refused_rules_have_no_decoder() {
        for (i, r) in RULES.iter().enumerate() {
            assert!(
                RULES[i + 1..].iter().all(|o| o.nr != r.nr),
                "{} twice",
                r.name
            );
            assert_eq!(
                matches!(r.action, Action::Errno(_)),
                r.decoder == Decoder::Refused,
                "{}: a refused call is never decoded, a notified one always is",
                r.name
            );
            assert_eq!(rule(r.nr as i32).map(|x| x.name), Some(r.name));
        }
        assert_eq!(syscall_name(libc::SYS_getpid as i32), "unknown");
    }

    #[test]
    fn read_only_opens_and_unlisted_syscalls_stay_in_the_kernel() {
        let ro = [
            0,
            libc::O_RDONLY as u64 | libc::O_CLOEXEC as u64,
            0,
            0,
            0,
            0,
        ];
        assert_eq!(
            run(&PROGRAM, AUDIT_ARCH_X86_64, libc::SYS_open as u32, ro),
            RET_ALLOW
        );
        let ro_at = [
            0,
            0,
            libc::O_CLOEXEC as u64 | libc::O_DIRECTORY as u64,
            0,
            0,
            0,
        ];
        assert_eq!(
            run(&PROGRAM, AUDIT_ARCH_X86_64, libc::SYS_openat as u32, ro_at),
            RET_ALLOW
        );
        let creat_at = [0, 0, (libc::O_WRONLY | libc::O_CREAT) as u64, 0o644, 0, 0];
        assert_eq!(
            run(
                &PROGRAM,
                AUDIT_ARCH_X86_64,
                libc::SYS_openat as u32,
                creat_at
            ),
            RET_NOTIFY
        );
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_getppid,
            libc::SYS_sendmsg,
            libc::SYS_close,
        ] {
            assert_eq!(
                run(&PROGRAM, AUDIT_ARCH_X86_64, nr as u32, [0; 6]),
                RET_ALLOW,
                "{nr}"
            );
        }
        let chmod_ro = [0, 0o644, 0, 0, 0, 0];
        assert_eq!(
            run(
                &PROGRAM,
                AUDIT_ARCH_X86_64,
                libc::SYS_chmod as u32,
                chmod_ro
            ),
            RET_ALLOW
        );
    }

    #[test]
    fn foreign_abis_are_refused() {
        const AUDIT_ARCH_I386: u32 = 0x4000_0003;
        let eperm = ret_errno(libc::EPERM as u32);
        for (_, prog) in BOTH {
            assert_eq!(run(prog, AUDIT_ARCH_I386, 11, [0; 6]), eperm);
            assert_eq!(
                run(prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 59, [0; 6]),
                eperm
            );
            // x32's sendmsg (518) is no way around the destination check.
            assert_eq!(
                run(prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 518, [0; 6]),
                eperm
            );
        }
    }
}
