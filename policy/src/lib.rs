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
//! - notify only what matters: read-only opens, reads, writes, sendmsg never
//!   leave the kernel (the BPF program looks at open flags and chmod modes);
//! - a foreign ABI (i386 through int 0x80, x32 numbers) is refused, since the
//!   supervisor decodes x86_64 numbers only;
//! - io_uring is refused: its submissions bypass seccomp entirely;
//! - nothing the launcher calls between installing the filter and exec
//!   (sendmsg, read, close) is notified, or the launcher would wait on itself.
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
    /// Refuse with this errno, without asking.
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
    /// `rename`, `renameat`, `renameat2`.
    Rename {
        old_dir: Dir,
        old: u8,
        new_dir: Dir,
        new: u8,
        flags: Option<u8>,
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
    /// `ptrace`, `process_vm_writev`: never learned; arguments are registers.
    Debug,
    /// Refused by the filter itself: never reaches the supervisor.
    Refused,
}

/// One line of the policy.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub nr: i64,
    pub name: &'static str,
    pub action: Action,
    pub decoder: Decoder,
    pub why: &'static str,
}

const fn notify(nr: i64, name: &'static str, decoder: Decoder, why: &'static str) -> Rule {
    Rule {
        nr,
        name,
        action: Action::Notify,
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
        decoder,
        why,
    }
}

const fn refuse(nr: i64, name: &'static str, errno: i32, why: &'static str) -> Rule {
    Rule {
        nr,
        name,
        action: Action::Errno(errno as u32),
        decoder: Decoder::Refused,
        why,
    }
}

use Decoder as D;
use Dir::{Arg, Cwd};

/// The policy, x86_64 numbers.
///
/// Order matters for speed only: the dispatch is a chain of comparisons, so the
/// calls a workload makes most (every open, read-only ones included, has to pass
/// the flags test) come first. The benchmark measured it: a read-only open costs
/// about one point less over native with `openat` first than tenth.
pub const RULES: &[Rule] = &[
    // Filesystem: only opens that can change a file. First: the most frequent.
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
        D::Debug,
        "a tracer can rewrite another process's memory and registers",
    ),
    notify(
        libc::SYS_process_vm_writev,
        "process_vm_writev",
        D::Debug,
        "writes another process's memory",
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
    // Filesystem: the other calls that change files.
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
    // Refused outright.
    refuse(
        libc::SYS_io_uring_setup,
        "io_uring_setup",
        libc::EPERM,
        "io_uring submissions bypass seccomp",
    ),
    refuse(
        libc::SYS_io_uring_enter,
        "io_uring_enter",
        libc::EPERM,
        "io_uring submissions bypass seccomp",
    ),
    refuse(
        libc::SYS_io_uring_register,
        "io_uring_register",
        libc::EPERM,
        "io_uring submissions bypass seccomp",
    ),
];

/// The rule for syscall `nr`, if the policy names it.
pub fn rule(nr: i32) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.nr == i64::from(nr))
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

/// Instructions of one rule's body: 1 (notify, errno) or 4 (load the
/// argument, `jset` the mask, notify, allow).
const fn body_len(r: &Rule) -> usize {
    match r.action {
        Action::NotifyIfArgMask { .. } => 4,
        _ => 1,
    }
}

/// The prologue: the architecture check and the x32 check.
const PROLOGUE: usize = 6;

/// The length of the program `compile(rules)` makes.
pub const fn program_len(rules: &[Rule]) -> usize {
    let mut n = PROLOGUE + rules.len() + 1;
    let mut i = 0;
    while i < rules.len() {
        n += body_len(&rules[i]);
        i += 1;
    }
    n
}

/// Compiles `rules` into a BPF program of `N` instructions (`program_len(rules)`).
///
/// Layout: the architecture check, the x32 check, one `jeq` per rule jumping
/// to that rule's body, `ret ALLOW`, then the bodies. A `const fn`, so a table
/// whose jumps do not fit a BPF offset fails the build, not the launcher.
pub const fn compile<const N: usize>(rules: &[Rule]) -> [sock_filter; N] {
    assert!(N == program_len(rules), "N must be program_len(rules)");
    let mut prog = [stmt(0, 0); N];
    prog[0] = stmt(BPF_LD_W_ABS, OFF_ARCH);
    // Foreign ABI: refuse (the supervisor decodes x86_64 numbers only).
    prog[1] = jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0);
    prog[2] = stmt(BPF_RET_K, ret_errno(libc::EPERM as u32));
    prog[3] = stmt(BPF_LD_W_ABS, OFF_NR);
    prog[4] = jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1);
    prog[5] = stmt(BPF_RET_K, ret_errno(libc::EPERM as u32));
    // Dispatch: the jeq of rule i sits at PROLOGUE + i; the bodies start after
    // all the jeqs and the final allow, at PROLOGUE + n + 1.
    let n = rules.len();
    let mut body = 0usize;
    let mut i = 0;
    while i < n {
        let jt = n + 1 + body - (i + 1);
        assert!(jt <= u8::MAX as usize, "BPF jump too long: too many rules");
        prog[PROLOGUE + i] = jump(BPF_JMP_JEQ_K, rules[i].nr as u32, jt as u8, 0);
        body += body_len(&rules[i]);
        i += 1;
    }
    prog[PROLOGUE + n] = stmt(BPF_RET_K, RET_ALLOW);
    let mut at = PROLOGUE + n + 1;
    let mut i = 0;
    while i < n {
        match rules[i].action {
            Action::Notify => prog[at] = stmt(BPF_RET_K, RET_NOTIFY),
            Action::Errno(e) => prog[at] = stmt(BPF_RET_K, ret_errno(e)),
            Action::NotifyIfArgMask { arg, mask } => {
                prog[at] = stmt(BPF_LD_W_ABS, off_arg_low(arg));
                prog[at + 1] = jump(BPF_JMP_JSET_K, mask, 0, 1);
                prog[at + 2] = stmt(BPF_RET_K, RET_NOTIFY);
                prog[at + 3] = stmt(BPF_RET_K, RET_ALLOW);
            }
        }
        at += body_len(&rules[i]);
        i += 1;
    }
    prog
}

/// The number of instructions of [`PROGRAM`].
pub const PROGRAM_LEN: usize = program_len(RULES);

/// The program the launcher installs, compiled from [`RULES`] when this crate is.
pub static PROGRAM: [sock_filter; PROGRAM_LEN] = compile(RULES);

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

    #[test]
    fn every_rule_dispatches_to_its_own_action() {
        for r in RULES {
            let got = run(&PROGRAM, AUDIT_ARCH_X86_64, r.nr as u32, [0; 6]);
            let want = match r.action {
                Action::Notify => RET_NOTIFY,
                Action::Errno(e) => ret_errno(e),
                Action::NotifyIfArgMask { .. } => RET_ALLOW,
            };
            assert_eq!(got, want, "{}", r.name);
            if let Action::NotifyIfArgMask { arg, mask } = r.action {
                let mut args = [0u64; 6];
                args[arg as usize] = u64::from(mask & mask.wrapping_neg()); // lowest bit of the mask
                assert_eq!(
                    run(&PROGRAM, AUDIT_ARCH_X86_64, r.nr as u32, args),
                    RET_NOTIFY,
                    "{}",
                    r.name
                );
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
        assert_eq!(run(&PROGRAM, AUDIT_ARCH_I386, 11, [0; 6]), eperm);
        assert_eq!(
            run(&PROGRAM, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 59, [0; 6]),
            eperm
        );
    }
}
