//! Decoding: a notified syscall's registers, read as the policy table says
//! (`nfguard_policy::Decoder`), into a typed [`Call`].
//!
//! Pure and total: any register values give a `Call` (or `None` for a rule the
//! filter refuses itself), never a panic. Values are narrowed the way the
//! kernel narrows them (`int` arguments take the low 32 bits, `umode_t` the
//! low 16), so the supervisor judges what the kernel will use. Pointers stay
//! pointers: what they point to is read by `inspect`, from the target's memory.

use nfguard_policy::{Decoder, Dir, OpenFlags, ReachOf, Rule, SendOf, SignalTo, XattrOf};

/// An address in the target's memory. Never dereferenced here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ptr(pub u64);

/// Where a relative path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The calling task's working directory (`AT_FDCWD`, or a call with no dirfd).
    Cwd,
    /// A directory fd of the calling task.
    Fd(i32),
}

/// Where an open's flags are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flags {
    /// In a register: the value the kernel uses.
    Known(i32),
    /// In a `struct open_how` in the target's memory (`openat2`), of `size` bytes.
    InMemory { how: Ptr, size: u64 },
}

/// A notified call, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Exec {
        base: Base,
        path: Ptr,
        argv: Ptr,
        flags: i32,
    },
    Socket {
        family: i32,
        kind: i32,
        protocol: i32,
    },
    /// `connect` (`bind: false`) or `bind`.
    SockAddr {
        bind: bool,
        fd: i32,
        addr: Ptr,
        len: i32,
    },
    Listen {
        fd: i32,
        backlog: i32,
    },
    Open {
        base: Base,
        path: Ptr,
        flags: Flags,
        mode: u32,
        /// `truncate(path, len)`: the length; the call writes the file, opens nothing.
        truncate_to: Option<i64>,
    },
    Unlink {
        base: Base,
        path: Ptr,
        flags: i32,
    },
    Rename {
        old_base: Base,
        old: Ptr,
        new_base: Base,
        new: Ptr,
        flags: u32,
    },
    Chmod {
        base: Base,
        path: Ptr,
        mode: u32,
        flags: i32,
    },
    Fchmod {
        fd: i32,
        mode: u32,
    },
    /// A send that may name a destination: `sendto`'s buffer and address, a
    /// `msghdr` (`sendmsg`), or a vector of `mmsghdr` (`sendmmsg`).
    Send {
        fd: i32,
        of: Sends,
        flags: i32,
    },
    /// `setsockopt(fd, level, name, val, len)`, or (`get`) `getsockopt(fd,
    /// level, name, val, lenp)`, whose length is in memory at `len`.
    SockOpt {
        fd: i32,
        level: i32,
        name: i32,
        val: Ptr,
        len: u64,
        get: bool,
    },
    Rmdir {
        path: Ptr,
    },
    Link {
        old_base: Base,
        old: Ptr,
        new_base: Base,
        new: Ptr,
        flags: i32,
    },
    Symlink {
        target: Ptr,
        base: Base,
        path: Ptr,
    },
    Mkdir {
        base: Base,
        path: Ptr,
        mode: u32,
    },
    Mknod {
        base: Base,
        path: Ptr,
        mode: u32,
        dev: u64,
    },
    Xattr {
        of: XattrTarget,
        name: Ptr,
        /// The value and its size for a set; `None` for a removal.
        value: Option<(Ptr, u64)>,
        flags: i32,
    },
    /// ptrace, process_vm_writev: judged by the syscall alone, and by whom
    /// they name.
    Debug {
        pid: i32,
    },
    Signal(Signal),
    /// F_SETOWN (`arg` is the owner), F_SETOWN_EX (`arg` points at a
    /// `struct f_owner_ex`), FIOSETOWN and SIOCSPGRP (`arg` points at an int).
    SetOwner {
        fd: i32,
        cmd: u32,
        arg: u64,
        ioctl: bool,
    },
    /// A call that names another process (ReachOf).
    Reaches(Reach),
    /// `prlimit64` of another process (`pid` 0, the caller, is never notified).
    Limits {
        pid: i32,
        new: Ptr,
    },
    /// Refused in every mode (the rule says why).
    Forbidden,
}

/// What a send names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sends {
    To {
        buf: Ptr,
        len: u64,
        addr: Ptr,
        addrlen: i32,
    },
    Msg {
        msg: Ptr,
    },
    /// A vector of `vlen` `struct mmsghdr`.
    Mmsg {
        vec: Ptr,
        vlen: u32,
    },
}

/// What an xattr call acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrTarget {
    Path { path: Ptr, follow: bool },
    Fd(i32),
}

/// Whom a [`Call::Reaches`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Pid(i32),
    /// `pidfd_getfd(pidfd, fd)`.
    Pidfd {
        pidfd: i32,
        fd: i32,
    },
    /// `which` in setpriority's numbering (0 process, 1 group, 2 user).
    Which {
        which: i32,
        who: i32,
    },
    /// A process group to join (`setpgid`).
    Group(i32),
}

/// A signal call: whom it names, and the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `kill`, `rt_sigqueueinfo`: a pid, 0 (the caller's group), -1 (all) or -pgrp.
    Pid {
        pid: i32,
        sig: i32,
    },
    Tid {
        tid: i32,
        sig: i32,
    },
    TgidTid {
        tgid: i32,
        tid: i32,
        sig: i32,
    },
    Pidfd {
        fd: i32,
        sig: i32,
        info: Ptr,
        flags: u32,
    },
}

/// The `int` value of a register (the kernel's `(int)` narrowing).
fn int(v: u64) -> i32 {
    v as u32 as i32
}

/// The `umode_t` value of a register.
fn mode(v: u64) -> u32 {
    u32::from(v as u16)
}

/// Decodes `args` as `rule` says; `None` for a rule the filter refuses itself.
pub fn decode(rule: &Rule, args: &[u64; 6]) -> Option<Call> {
    // Indexes come from the policy table; `get` keeps this total even for a
    // table that named a seventh argument.
    let a = |i: u8| args.get(usize::from(i)).copied().unwrap_or(0);
    let base = |d: Dir| match d {
        Dir::Cwd => Base::Cwd,
        Dir::Arg(i) => match int(a(i)) {
            libc::AT_FDCWD => Base::Cwd,
            fd => Base::Fd(fd),
        },
    };
    Some(match rule.decoder {
        Decoder::Refused => return None,
        Decoder::Exec {
            dir,
            path,
            argv,
            flags,
        } => Call::Exec {
            base: base(dir),
            path: Ptr(a(path)),
            argv: Ptr(a(argv)),
            flags: flags.map_or(0, |f| int(a(f))),
        },
        Decoder::Socket => Call::Socket {
            family: int(a(0)),
            kind: int(a(1)),
            protocol: int(a(2)),
        },
        Decoder::Connect | Decoder::Bind => Call::SockAddr {
            bind: rule.decoder == Decoder::Bind,
            fd: int(a(0)),
            addr: Ptr(a(1)),
            len: int(a(2)),
        },
        Decoder::Listen => Call::Listen {
            fd: int(a(0)),
            backlog: int(a(1)),
        },
        Decoder::Open {
            dir,
            path,
            flags,
            mode: m,
        } => {
            let (flags, truncate_to) = match flags {
                OpenFlags::Arg(i) => (Flags::Known(int(a(i))), None),
                OpenFlags::Creat => (
                    Flags::Known(libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC),
                    None,
                ),
                OpenFlags::Truncate { len } => (Flags::Known(libc::O_WRONLY), Some(a(len) as i64)),
                OpenFlags::How { how, size } => (
                    Flags::InMemory {
                        how: Ptr(a(how)),
                        size: a(size),
                    },
                    None,
                ),
            };
            Call::Open {
                base: base(dir),
                path: Ptr(a(path)),
                flags,
                mode: m.map_or(0, |i| mode(a(i))),
                truncate_to,
            }
        }
        Decoder::Unlink { dir, path, flags } => Call::Unlink {
            base: base(dir),
            path: Ptr(a(path)),
            flags: flags.map_or(0, |f| int(a(f))),
        },
        Decoder::Rename {
            old_dir,
            old,
            new_dir,
            new,
            flags,
        } => Call::Rename {
            old_base: base(old_dir),
            old: Ptr(a(old)),
            new_base: base(new_dir),
            new: Ptr(a(new)),
            flags: flags.map_or(0, |f| a(f) as u32),
        },
        Decoder::Chmod {
            dir,
            path,
            mode: m,
            flags,
        } => Call::Chmod {
            base: base(dir),
            path: Ptr(a(path)),
            mode: mode(a(m)),
            flags: flags.map_or(0, |f| int(a(f))),
        },
        Decoder::Fchmod { fd, mode: m } => Call::Fchmod {
            fd: int(a(fd)),
            mode: mode(a(m)),
        },
        Decoder::Debug { pid } => Call::Debug { pid: int(a(pid)) },
        Decoder::Forbidden => Call::Forbidden,
        Decoder::Reaches(r) => Call::Reaches(match r {
            ReachOf::Pid(i) => Reach::Pid(int(a(i))),
            ReachOf::Pidfd(i) => Reach::Pidfd {
                pidfd: int(a(i)),
                fd: int(a(i + 1)),
            },
            ReachOf::Which { which, who, io } => {
                let w = int(a(which));
                // ioprio numbers them 1, 2, 3; setpriority 0, 1, 2.
                let which = if io { w.wrapping_sub(1) } else { w };
                Reach::Which {
                    which,
                    who: int(a(who)),
                }
            }
            ReachOf::Group(i) => Reach::Group(int(a(i))),
        }),
        Decoder::Limits => Call::Limits {
            pid: int(a(0)),
            new: Ptr(a(2)),
        },
        Decoder::Send(of) => {
            let (of, flags) = match of {
                SendOf::To => (
                    Sends::To {
                        buf: Ptr(a(1)),
                        len: a(2),
                        addr: Ptr(a(4)),
                        addrlen: int(a(5)),
                    },
                    int(a(3)),
                ),
                SendOf::Msg => (Sends::Msg { msg: Ptr(a(1)) }, int(a(2))),
                SendOf::Mmsg => (
                    Sends::Mmsg {
                        vec: Ptr(a(1)),
                        vlen: a(2) as u32,
                    },
                    int(a(3)),
                ),
            };
            Call::Send {
                fd: int(a(0)),
                of,
                flags,
            }
        }
        Decoder::SockOpt { get } => Call::SockOpt {
            fd: int(a(0)),
            level: int(a(1)),
            name: int(a(2)),
            val: Ptr(a(3)),
            // setsockopt's length is an int; getsockopt's a pointer to one.
            len: if get { a(4) } else { u64::from(a(4) as u32) },
            get,
        },
        Decoder::Rmdir { path } => Call::Rmdir { path: Ptr(a(path)) },
        Decoder::Link {
            old_dir,
            old,
            new_dir,
            new,
            flags,
        } => Call::Link {
            old_base: base(old_dir),
            old: Ptr(a(old)),
            new_base: base(new_dir),
            new: Ptr(a(new)),
            flags: flags.map_or(0, |f| int(a(f))),
        },
        Decoder::Symlink { target, dir, path } => Call::Symlink {
            target: Ptr(a(target)),
            base: base(dir),
            path: Ptr(a(path)),
        },
        Decoder::Mkdir { dir, path, mode: m } => Call::Mkdir {
            base: base(dir),
            path: Ptr(a(path)),
            mode: mode(a(m)),
        },
        Decoder::Mknod {
            dir,
            path,
            mode: m,
            dev,
        } => Call::Mknod {
            base: base(dir),
            path: Ptr(a(path)),
            mode: mode(a(m)),
            // mknod's dev is an `unsigned int` (new_decode_dev of 32 bits).
            dev: u64::from(a(dev) as u32),
        },
        Decoder::Xattr {
            of,
            name,
            value,
            flags,
        } => Call::Xattr {
            of: match of {
                XattrOf::Path { path, follow } => XattrTarget::Path {
                    path: Ptr(a(path)),
                    follow,
                },
                XattrOf::Fd(fd) => XattrTarget::Fd(int(a(fd))),
            },
            name: Ptr(a(name)),
            value: value.map(|(v, size)| (Ptr(a(v)), a(size))),
            flags: flags.map_or(0, |f| int(a(f))),
        },
        Decoder::Signal(to) => Call::Signal(match to {
            SignalTo::Pid => Signal::Pid {
                pid: int(a(0)),
                sig: int(a(1)),
            },
            SignalTo::Tid => Signal::Tid {
                tid: int(a(0)),
                sig: int(a(1)),
            },
            SignalTo::TgidTid => Signal::TgidTid {
                tgid: int(a(0)),
                tid: int(a(1)),
                sig: int(a(2)),
            },
            SignalTo::Pidfd => Signal::Pidfd {
                fd: int(a(0)),
                sig: int(a(1)),
                info: Ptr(a(2)),
                flags: a(3) as u32,
            },
        }),
        Decoder::SetOwner { ioctl } => Call::SetOwner {
            fd: int(a(0)),
            cmd: a(1) as u32,
            arg: a(2),
            ioctl,
        },
    })
}

/// The flags of a `struct open_how` (`{ u64 flags; u64 mode; u64 resolve; }`),
/// from the bytes read at its address: `None` when it is shorter than the
/// kernel accepts, or when its flags have bits above the 32 the kernel knows
/// (both EINVAL in the kernel).
pub fn open_how(bytes: &[u8]) -> Option<(i32, u32, u64)> {
    if bytes.len() < 24 {
        return None;
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(w)
    };
    let flags = u32::try_from(word(0)).ok()?;
    Some((flags as i32, mode(word(1)), word(2)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(nr: i64) -> &'static Rule {
        nfguard_policy::rule(nr as i32).unwrap()
    }

    #[test]
    fn each_syscall_is_read_from_its_own_registers() {
        let args = [10, 0x1000, 0x2000, 0x3000, 0x100, 6];
        assert_eq!(
            decode(rule(libc::SYS_execveat), &args),
            Some(Call::Exec {
                base: Base::Fd(10),
                path: Ptr(0x1000),
                argv: Ptr(0x2000),
                flags: 0x100
            })
        );
        assert_eq!(
            decode(rule(libc::SYS_execve), &args),
            Some(Call::Exec {
                base: Base::Cwd,
                path: Ptr(10),
                argv: Ptr(0x1000),
                flags: 0
            })
        );
        let at = [libc::AT_FDCWD as u32 as u64, 0x1000, 0x241, 0o1644, 0, 0];
        assert_eq!(
            decode(rule(libc::SYS_openat), &at),
            Some(Call::Open {
                base: Base::Cwd,
                path: Ptr(0x1000),
                flags: Flags::Known(0x241),
                mode: 0o1644,
                truncate_to: None
            }),
            "AT_FDCWD as the kernel sees it (an int) means the cwd"
        );
        assert_eq!(
            decode(rule(libc::SYS_truncate), &[0x1000, 77, 0, 0, 0, 0]),
            Some(Call::Open {
                base: Base::Cwd,
                path: Ptr(0x1000),
                flags: Flags::Known(libc::O_WRONLY),
                mode: 0,
                truncate_to: Some(77)
            })
        );
        assert_eq!(
            decode(rule(libc::SYS_creat), &[0x1000, 0o600, 0, 0, 0, 0]),
            Some(Call::Open {
                base: Base::Cwd,
                path: Ptr(0x1000),
                flags: Flags::Known(libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC),
                mode: 0o600,
                truncate_to: None
            })
        );
        assert_eq!(
            decode(rule(libc::SYS_openat2), &[3, 0x1000, 0x2000, 24, 0, 0]),
            Some(Call::Open {
                base: Base::Fd(3),
                path: Ptr(0x1000),
                flags: Flags::InMemory {
                    how: Ptr(0x2000),
                    size: 24
                },
                mode: 0,
                truncate_to: None
            })
        );
        assert_eq!(
            decode(rule(libc::SYS_renameat2), &[1, 2, 3, 4, 5, 0]),
            Some(Call::Rename {
                old_base: Base::Fd(1),
                old: Ptr(2),
                new_base: Base::Fd(3),
                new: Ptr(4),
                flags: 5
            })
        );
        assert_eq!(
            decode(rule(libc::SYS_fchmodat2), &[1, 2, 0o755, 0x100, 0, 0]),
            Some(Call::Chmod {
                base: Base::Fd(1),
                path: Ptr(2),
                mode: 0o755,
                flags: 0x100
            })
        );
        assert_eq!(
            decode(rule(libc::SYS_connect), &[4, 0x1000, 16, 0, 0, 0]),
            Some(Call::SockAddr {
                bind: false,
                fd: 4,
                addr: Ptr(0x1000),
                len: 16
            })
        );
        assert_eq!(
            decode(rule(libc::SYS_bind), &[4, 0x1000, 16, 0, 0, 0]),
            Some(Call::SockAddr {
                bind: true,
                fd: 4,
                addr: Ptr(0x1000),
                len: 16
            })
        );
        assert_eq!(
            decode(
                rule(libc::SYS_setsockopt),
                &[4, 0x1_0000_0084, 100, 0x1000, 32, 0]
            ),
            Some(Call::SockOpt {
                fd: 4,
                level: 132,
                name: 100,
                val: Ptr(0x1000),
                len: 32,
                get: false
            }),
            "the level is an int: a high half is dropped"
        );
        assert_eq!(
            decode(
                rule(libc::SYS_getsockopt),
                &[4, 132, 111, 0x1000, 0x7ffd_0000_2000, 0]
            ),
            Some(Call::SockOpt {
                fd: 4,
                level: 132,
                name: 111,
                val: Ptr(0x1000),
                len: 0x7ffd_0000_2000,
                get: true
            }),
            "getsockopt's length is a pointer"
        );
        assert_eq!(
            decode(rule(libc::SYS_sendto), &[5, 0x1000, 9, 0x4000, 0x2000, 16]),
            Some(Call::Send {
                fd: 5,
                of: Sends::To {
                    buf: Ptr(0x1000),
                    len: 9,
                    addr: Ptr(0x2000),
                    addrlen: 16
                },
                flags: 0x4000
            })
        );
        assert_eq!(
            decode(
                rule(libc::SYS_sendmmsg),
                &[5, 0x1000, 0x1_0000_0003, 0x40, 0, 0]
            ),
            Some(Call::Send {
                fd: 5,
                of: Sends::Mmsg {
                    vec: Ptr(0x1000),
                    vlen: 3
                },
                flags: 0x40
            }),
            "vlen is an unsigned int"
        );
        assert_eq!(decode(rule(libc::SYS_clone3), &args), None);
        assert_eq!(
            decode(rule(libc::SYS_io_uring_setup), &args),
            Some(Call::Forbidden)
        );
    }

    #[test]
    fn the_calls_added_by_the_hardening_are_read_from_their_registers() {
        let args = [7, 0x1000, 0x2000, 0x3000, 0x4000, 20];
        assert_eq!(
            decode(rule(libc::SYS_linkat), &args),
            Some(Call::Link {
                old_base: Base::Fd(7),
                old: Ptr(0x1000),
                new_base: Base::Fd(0x2000),
                new: Ptr(0x3000),
                flags: 0x4000
            })
        );
        assert_eq!(
            decode(rule(libc::SYS_symlinkat), &args),
            Some(Call::Symlink {
                target: Ptr(7),
                base: Base::Fd(0x1000),
                path: Ptr(0x2000)
            })
        );
        assert_eq!(
            decode(
                rule(libc::SYS_mknodat),
                &[3, 0x1000, 0o10644, 0x1_0000_0042, 0, 0]
            ),
            Some(Call::Mknod {
                base: Base::Fd(3),
                path: Ptr(0x1000),
                mode: 0o10644,
                dev: 0x42
            }),
            "mknod's dev is 32 bits"
        );
        assert_eq!(
            decode(rule(libc::SYS_sendto), &args),
            Some(Call::Send {
                fd: 7,
                of: Sends::To {
                    buf: Ptr(0x1000),
                    len: 0x2000,
                    addr: Ptr(0x4000),
                    addrlen: 20
                },
                flags: 0x3000
            })
        );
        assert_eq!(
            decode(rule(libc::SYS_sendmmsg), &args),
            Some(Call::Send {
                fd: 7,
                of: Sends::Mmsg {
                    vec: Ptr(0x1000),
                    vlen: 0x2000
                },
                flags: 0x3000
            })
        );
        assert_eq!(
            decode(rule(libc::SYS_kill), &[u64::MAX, 9, 0, 0, 0, 0]),
            Some(Call::Signal(Signal::Pid { pid: -1, sig: 9 })),
            "kill(-1) as the kernel reads a pid_t"
        );
        assert_eq!(
            decode(rule(libc::SYS_tgkill), &[10, 11, 19, 0, 0, 0]),
            Some(Call::Signal(Signal::TgidTid {
                tgid: 10,
                tid: 11,
                sig: 19
            }))
        );
        assert_eq!(
            decode(rule(libc::SYS_fsetxattr), &[5, 0x1000, 0x2000, 28, 1, 0]),
            Some(Call::Xattr {
                of: XattrTarget::Fd(5),
                name: Ptr(0x1000),
                value: Some((Ptr(0x2000), 28)),
                flags: 1
            })
        );
        assert_eq!(
            decode(rule(libc::SYS_lremovexattr), &[0x1000, 0x2000, 0, 0, 0, 0]),
            Some(Call::Xattr {
                of: XattrTarget::Path {
                    path: Ptr(0x1000),
                    follow: false
                },
                name: Ptr(0x2000),
                value: None,
                flags: 0
            })
        );
        assert_eq!(
            decode(rule(libc::SYS_ptrace), &[16, 4242, 0, 0, 0, 0]),
            Some(Call::Debug { pid: 4242 })
        );
        assert_eq!(
            decode(rule(libc::SYS_prlimit64), &[4242, 7, 0x1000, 0, 0, 0]),
            Some(Call::Limits {
                pid: 4242,
                new: Ptr(0x1000)
            })
        );
        assert_eq!(decode(rule(libc::SYS_mount), &args), Some(Call::Forbidden));
        assert_eq!(
            decode(rule(libc::SYS_unshare), &args),
            Some(Call::Forbidden)
        );
    }

    #[test]
    fn high_register_bits_are_dropped_as_the_kernel_drops_them() {
        // connect's addrlen and open's flags are ints: a value with high bits
        // set is what the kernel narrows, not an error.
        let c = decode(
            rule(libc::SYS_connect),
            &[0xdead_0000_0004, 1, 0x7_0000_0010, 0, 0, 0],
        );
        assert_eq!(
            c,
            Some(Call::SockAddr {
                bind: false,
                fd: 4,
                addr: Ptr(1),
                len: 16
            })
        );
        let o = decode(
            rule(libc::SYS_open),
            &[1, 0xffff_0000_0000_0001, 0x7_0000_01a0, 0, 0, 0],
        );
        assert_eq!(
            o,
            Some(Call::Open {
                base: Base::Cwd,
                path: Ptr(1),
                flags: Flags::Known(1),
                mode: 0o640,
                truncate_to: None
            }),
            "umode_t keeps 16 bits"
        );
    }

    #[test]
    fn an_open_how_shorter_than_its_first_version_is_refused() {
        assert_eq!(open_how(&[0; 23]), None);
        let mut how = [0u8; 24];
        how[..8].copy_from_slice(&0x42u64.to_ne_bytes());
        how[8..16].copy_from_slice(&0o644u64.to_ne_bytes());
        assert_eq!(open_how(&how), Some((0x42, 0o644, 0)));
        how[..8].copy_from_slice(&0x1_0000_0042u64.to_ne_bytes());
        assert_eq!(open_how(&how), None, "flags the kernel does not know");
    }

    proptest! {
        /// Any register values, for every rule of the policy: a typed call or
        /// `None` (refused rules only), never a panic.
        #[test]
        fn any_registers_decode_without_panic(
            which in 0..nfguard_policy::RULES.len(),
            args in proptest::array::uniform6(any::<u64>()),
        ) {
            let r = &nfguard_policy::RULES[which];
            let c = decode(r, &args);
            prop_assert_eq!(c.is_none(), r.decoder == Decoder::Refused);
        }

        #[test]
        fn any_open_how_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = open_how(&bytes);
        }
    }
}
