//! The launcher: `nfguard-launch [--socket PATH] [--container NAME] [--grace DURATION] [--no-trace] -- CMD [ARGS...]`.
//!
//! It is the first process of a monitored container (the kubelet runs it as
//! the container's command) and it stays there as the *keeper*:
//!
//! ```text
//! keeper (pid 1 of the container)           child
//!   socketpair, block signals, fork ─────────► dumpable, own process group,
//!   not dumpable, subreaper                    no_new_privs, seccomp(NEW_LISTENER)
//!   recv listener  ◄──── SCM_RIGHTS ────────── sendmsg (not notified), close
//!                                              (inspecting datagrams: seccomp(SEAL))
//!   PTRACE_SEIZE the child (exec, fork,        read: waits for the keeper
//!   vfork, clone, exitkill), terminal to it
//!   "go" ───────────────────────────────────► execve(CMD)  ── waits for the supervisor's verdict
//!   connect to the supervisor, hand over
//!   the listener; again after each restart
//!   every exec stop of the tree: ask the supervisor, resume or SIGKILL
//!   reap, forward signals; when CMD exits: SIGTERM the rest, grace, SIGKILL,
//!   reap everything, exit with CMD's status
//! ```
//!
//! Why the keeper holds the listener: if the last fd of a listener closes,
//! every notified syscall fails with ENOSYS (docs/architecture.md, fact 6). The keeper
//! outlives supervisor crashes, so those syscalls wait instead, and the
//! restarted supervisor gets the same listener back.
//!
//! Why it traces: see `trace.rs` (an exec is verified on what the kernel
//! loaded). Why it is not dumpable: the workload runs with its uid, and a
//! dumpable keeper would let it take the listener (pidfd_getfd) and answer
//! its own notifications. Why the rest of the tree is ended with the
//! command: with the keeper gone, its filter's calls would fail with ENOSYS
//! and nothing would supervise what is left (issue 11, class 7).
//!
//! The launcher is copied into arbitrary images, so it is static and small:
//! this crate is `no_std` (core, alloc and libc only; no nix, no std runtime)
//! and the binary (`sidecar/src/bin/nfguard-launch.rs`) built with the
//! `launcher` profile (`panic = "abort"`) links no std at all, which keeps
//! std's panic and backtrace machinery (gimli, addr2line, demangling) and the
//! glibc parts its runtime pulls in (sscanf, strtod) out of the binary. The
//! seccomp program is the policy crate's (`policy/`), compiled from its table
//! when that crate is built: [`FILTER`] and [`FILTER_DATAGRAMS`] are plain
//! data, and `NFGUARD_DATAGRAMS` chooses between them. It starts no thread:
//! everything (signals, wait statuses, the supervisor's connection) goes
//! through one poll loop that never blocks on the supervisor.
#![cfg_attr(not(test), no_std)]
// Every unsafe call is sys.rs's (the C ABI, the allocator, the syscalls).
#![deny(unsafe_code)]

extern crate alloc;

mod config;
mod keeper;
#[allow(unsafe_code)]
mod sys;
pub use sys::{abort, c_args, Malloc};
mod trace;

mod generated {
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}

use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_int;

pub use config::{
    hello, json_string, parse_args, parse_millis, resolve_command, KeeperState, LaunchConfig,
    LaunchEnv, DEFAULT_GRACE_MS, DEFAULT_SOCKET, ENV_CONTAINER, ENV_DATAGRAMS, ENV_SOCKET,
    EXIT_NOT_FOUND, EXIT_SETUP, EXIT_USAGE, PROTOCOL_VERSION, USAGE,
};
/// The seccomp program the launcher installs without datagram inspection
/// (`nfguard_policy::PROGRAM`).
pub use nfguard_policy::PROGRAM as FILTER;
/// The one it installs with it (`nfguard_policy::PROGRAM_DATAGRAMS`), and the
/// seal it adds once the listener is handed over (`nfguard_policy::SEAL`).
pub use nfguard_policy::{PROGRAM_DATAGRAMS as FILTER_DATAGRAMS, SEAL};
pub use trace::{exec_line, parse_verdict, Verdict};

/// Exit status after a panic (what Rust's runtime returns).
pub const EXIT_PANIC: i32 = 101;

/// The launcher's `main`: everything std's runtime did before `main` that
/// matters here, then the arguments (`sys::c_args` of the C runtime's argv),
/// then the keeper. Returns the exit status.
pub fn main(args: Result<Vec<String>, String>) -> c_int {
    sys::init_like_std();
    let args = match args {
        Ok(a) => a,
        // std::env::args() panicked on these (exit status 101).
        Err(bad) => keeper::fail(
            EXIT_PANIC,
            format_args!("argument {bad:?} is not valid UTF-8"),
        ),
    };
    let cfg = match parse_args(args.get(1..).unwrap_or(&[]), &LaunchEnv::from_process()) {
        Ok(c) => c,
        Err(e) => {
            keeper::warn(e);
            return EXIT_USAGE;
        }
    };
    keeper::run(cfg)
}

/// What the binary's panic handler does when std is not linked: std's
/// message, then exit status 101 (a panic never unwinds out of the launcher).
/// It does not allocate (an allocation failure panics too), and a panic
/// inside it aborts.
pub fn panicked(info: &core::panic::PanicInfo<'_>) -> ! {
    static PANICKING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if PANICKING.swap(true, core::sync::atomic::Ordering::SeqCst) {
        abort()
    }
    /// Formats straight to standard error.
    struct Stderr;
    impl core::fmt::Write for Stderr {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            sys::write_stderr_quiet(s.as_bytes());
            Ok(())
        }
    }
    let _ = match info.location() {
        Some(l) => core::fmt::write(
            &mut Stderr,
            format_args!(
                "\nthread 'main' panicked at {}:{}:{}:\n{}\n",
                l.file(),
                l.line(),
                l.column(),
                info.message()
            ),
        ),
        None => core::fmt::write(
            &mut Stderr,
            format_args!("\nthread 'main' panicked:\n{}\n", info.message()),
        ),
    };
    sys::exit(EXIT_PANIC)
}
