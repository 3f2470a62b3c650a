//! The seccomp filter the launcher installs: which syscalls reach the
//! supervisor, which stay in the kernel, which are refused outright.
//!
//! The policy is data (`RULES`), one line per syscall with the reason it is
//! there, compiled by a tiny assembler into classic BPF.
//!
//! Why not seccompiler: it has no `SECCOMP_RET_USER_NOTIF` action, one filter
//! has a single match action (we need notify, errno and allow side by side), and
//! its architecture check kills the process where we want an errno and x32
//! numbers refused. The program here is ~60 instructions and reviewed as a table.
//!
//! Design rules (ARCHITECTURE.md, facts 5 and 7):
//! - notify only what matters: read-only opens, reads, writes, sendmsg never
//!   leave the kernel (the BPF program looks at open flags and chmod modes);
//! - a foreign ABI (i386 through int 0x80, x32 numbers) is refused, since the
//!   supervisor decodes x86_64 numbers only;
//! - io_uring is refused: its submissions bypass seccomp entirely;
//! - nothing the launcher calls between installing the filter and exec
//!   (sendmsg, close) is notified, or the launcher would wait on itself.

use crate::sys::sock_filter;

/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// Syscall numbers at or above this are the x32 ABI.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

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

/// One line of the policy.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub nr: i64,
    pub name: &'static str,
    pub action: Action,
    pub why: &'static str,
}

const fn notify(nr: i64, name: &'static str, why: &'static str) -> Rule {
    Rule {
        nr,
        name,
        action: Action::Notify,
        why,
    }
}

const fn notify_if(nr: i64, name: &'static str, arg: u8, mask: u32, why: &'static str) -> Rule {
    Rule {
        nr,
        name,
        action: Action::NotifyIfArgMask { arg, mask },
        why,
    }
}

const fn refuse(nr: i64, name: &'static str, errno: i32, why: &'static str) -> Rule {
    Rule {
        nr,
        name,
        action: Action::Errno(errno as u32),
        why,
    }
}

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
        2,
        OPEN_WRITE_MASK,
        "opens for write, create, truncate",
    ),
    notify_if(
        libc::SYS_open,
        "open",
        1,
        OPEN_WRITE_MASK,
        "opens for write, create, truncate",
    ),
    // Processes.
    notify(
        libc::SYS_execve,
        "execve",
        "every program the workload runs",
    ),
    notify(
        libc::SYS_execveat,
        "execveat",
        "same, including fileless exec of a memfd (AT_EMPTY_PATH)",
    ),
    notify(
        libc::SYS_ptrace,
        "ptrace",
        "a tracer can rewrite another process's memory and registers",
    ),
    notify(
        libc::SYS_process_vm_writev,
        "process_vm_writev",
        "writes another process's memory",
    ),
    // Network.
    notify(
        libc::SYS_socket,
        "socket",
        "family, type and protocol: raw and packet sockets matter",
    ),
    notify(
        libc::SYS_connect,
        "connect",
        "outbound peers (TCP, and UDP destinations fixed by connect)",
    ),
    notify(
        libc::SYS_bind,
        "bind",
        "ports and unix paths the workload serves on",
    ),
    notify(
        libc::SYS_listen,
        "listen",
        "the port a stream socket starts accepting on",
    ),
    // Filesystem: the other calls that change files.
    notify(
        libc::SYS_openat2,
        "openat2",
        "flags live in a struct the BPF program cannot read",
    ),
    notify(libc::SYS_creat, "creat", "always creates or truncates"),
    notify(libc::SYS_truncate, "truncate", "changes a file by path"),
    notify(libc::SYS_unlink, "unlink", "removes a file"),
    notify(
        libc::SYS_unlinkat,
        "unlinkat",
        "removes a file or directory",
    ),
    notify(libc::SYS_rename, "rename", "replaces or moves a file"),
    notify(libc::SYS_renameat, "renameat", "replaces or moves a file"),
    notify(libc::SYS_renameat2, "renameat2", "replaces or moves a file"),
    notify_if(
        libc::SYS_chmod,
        "chmod",
        1,
        CHMOD_EXEC_MASK,
        "making a file executable",
    ),
    notify_if(
        libc::SYS_fchmod,
        "fchmod",
        1,
        CHMOD_EXEC_MASK,
        "making a file executable",
    ),
    notify_if(
        libc::SYS_fchmodat,
        "fchmodat",
        2,
        CHMOD_EXEC_MASK,
        "making a file executable",
    ),
    notify_if(
        452,
        "fchmodat2",
        2,
        CHMOD_EXEC_MASK,
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

/// The name of syscall `nr` if the policy names it.
pub fn syscall_name(nr: i32) -> &'static str {
    RULES
        .iter()
        .find(|r| r.nr == i64::from(nr))
        .map(|r| r.name)
        .unwrap_or("unknown")
}

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;

// Offsets in struct seccomp_data.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg_low(arg: u8) -> u32 {
    // args[] starts at 16; x86_64 is little-endian, so the low half comes first.
    16 + 8 * arg as u32
}

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_NOTIFY: u32 = libc::SECCOMP_RET_USER_NOTIF;
const fn ret_errno(errno: u32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno & libc::SECCOMP_RET_DATA)
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Compiles `rules` into a BPF program.
///
/// Layout: the architecture check, the x32 check, one `jeq` per rule jumping
/// to that rule's body, `ret ALLOW`, then the bodies. Bodies are 1 instruction
/// (notify, errno) or 3 (load the argument, `jset` the mask, allow).
pub fn compile(rules: &[Rule]) -> Vec<sock_filter> {
    let body_len = |r: &Rule| match r.action {
        Action::NotifyIfArgMask { .. } => 4,
        _ => 1,
    };
    let mut prog = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        // Foreign ABI: refuse (the supervisor decodes x86_64 numbers only).
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, ret_errno(libc::EPERM as u32)),
        stmt(BPF_LD_W_ABS, OFF_NR),
        jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, ret_errno(libc::EPERM as u32)),
    ];
    // Dispatch: the jeq for rule i sits at dispatch_start + i; its body starts
    // after all remaining jeqs, the final allow, and the bodies before it.
    let n = rules.len();
    let mut body_offsets = Vec::with_capacity(n);
    let mut acc = 0usize;
    for r in rules {
        body_offsets.push(acc);
        acc += body_len(r);
    }
    for (i, r) in rules.iter().enumerate() {
        // From instruction i (0-based in dispatch), the next is i+1; the bodies
        // start at dispatch index n+1 (after the allow).
        let target = n + 1 + body_offsets[i];
        let jt = target - (i + 1);
        let jt = u8::try_from(jt).expect("BPF jump too long: too many rules");
        prog.push(jump(BPF_JMP_JEQ_K, r.nr as u32, jt, 0));
    }
    prog.push(stmt(BPF_RET_K, RET_ALLOW));
    for r in rules {
        match r.action {
            Action::Notify => prog.push(stmt(BPF_RET_K, RET_NOTIFY)),
            Action::Errno(e) => prog.push(stmt(BPF_RET_K, ret_errno(e))),
            Action::NotifyIfArgMask { arg, mask } => {
                prog.push(stmt(BPF_LD_W_ABS, off_arg_low(arg)));
                prog.push(jump(BPF_JMP_JSET_K, mask, 0, 1));
                prog.push(stmt(BPF_RET_K, RET_NOTIFY));
                prog.push(stmt(BPF_RET_K, RET_ALLOW));
            }
        }
    }
    prog
}

/// The program the launcher installs.
pub fn program() -> Vec<sock_filter> {
    compile(RULES)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic-BPF interpreter for the few opcodes `compile` emits, so the
    /// dispatch arithmetic is checked for every rule without a kernel. The
    /// kernel-level tests in tests/ check the same program for real.
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
        let prog = program();
        for r in RULES {
            let got = run(&prog, AUDIT_ARCH_X86_64, r.nr as u32, [0; 6]);
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
                    run(&prog, AUDIT_ARCH_X86_64, r.nr as u32, args),
                    RET_NOTIFY,
                    "{}",
                    r.name
                );
            }
        }
    }

    #[test]
    fn read_only_opens_and_unlisted_syscalls_stay_in_the_kernel() {
        let prog = program();
        let ro = [
            0,
            libc::O_RDONLY as u64 | libc::O_CLOEXEC as u64,
            0,
            0,
            0,
            0,
        ];
        assert_eq!(
            run(&prog, AUDIT_ARCH_X86_64, libc::SYS_open as u32, ro),
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
            run(&prog, AUDIT_ARCH_X86_64, libc::SYS_openat as u32, ro_at),
            RET_ALLOW
        );
        let creat_at = [0, 0, (libc::O_WRONLY | libc::O_CREAT) as u64, 0o644, 0, 0];
        assert_eq!(
            run(&prog, AUDIT_ARCH_X86_64, libc::SYS_openat as u32, creat_at),
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
                run(&prog, AUDIT_ARCH_X86_64, nr as u32, [0; 6]),
                RET_ALLOW,
                "{nr}"
            );
        }
        let chmod_ro = [0, 0o644, 0, 0, 0, 0];
        assert_eq!(
            run(&prog, AUDIT_ARCH_X86_64, libc::SYS_chmod as u32, chmod_ro),
            RET_ALLOW
        );
    }

    #[test]
    fn foreign_abis_are_refused() {
        let prog = program();
        const AUDIT_ARCH_I386: u32 = 0x4000_0003;
        let eperm = ret_errno(libc::EPERM as u32);
        assert_eq!(run(&prog, AUDIT_ARCH_I386, 11, [0; 6]), eperm);
        assert_eq!(
            run(&prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 59, [0; 6]),
            eperm
        );
    }
}
