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

extern crate alloc;

mod config;
mod keeper;
mod sys;
mod trace;

mod generated {
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}

use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, c_int, c_void, CStr};

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
/// matters here, then the arguments, then the keeper. Returns the exit status.
///
/// # Safety
/// `argv` must hold `argc` NUL-terminated strings, as the C runtime passes them.
pub unsafe fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    sys::init_like_std();
    // SAFETY: the caller's contract.
    let args = match unsafe { args(argc, argv) } {
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

/// `argv` as strings; Err(lossy text) for the first that is not UTF-8.
///
/// # Safety
/// `argv` must hold `argc` NUL-terminated strings.
unsafe fn args(argc: c_int, argv: *const *const c_char) -> Result<Vec<String>, String> {
    let n = usize::try_from(argc).unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: the caller's contract: argv[i] for i < argc is a valid
        // NUL-terminated string.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) }.to_bytes();
        match core::str::from_utf8(arg) {
            Ok(s) => out.push(String::from(s)),
            Err(_) => return Err(String::from_utf8_lossy(arg).into_owned()),
        }
    }
    Ok(out)
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

/// `abort()`: SIGABRT, no cleanup.
pub fn abort() -> ! {
    // SAFETY: abort takes no argument and never returns.
    unsafe { libc::abort() }
}

/// The C allocator, as std's `System` uses it on Linux.
#[derive(Debug, Clone, Copy)]
pub struct Malloc;

/// The alignment malloc guarantees on x86_64.
const MALLOC_ALIGN: usize = 16;

// SAFETY: malloc, realloc and free honour the GlobalAlloc contract for
// alignments up to MALLOC_ALIGN when the size is at least the alignment;
// everything else goes through posix_memalign.
unsafe impl GlobalAlloc for Malloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN && layout.align() <= layout.size() {
            // SAFETY: any size is valid for malloc.
            unsafe { libc::malloc(layout.size()) }.cast()
        } else {
            let mut out: *mut c_void = core::ptr::null_mut();
            let align = layout.align().max(core::mem::size_of::<usize>());
            // SAFETY: `align` is a power of two and a multiple of
            // sizeof(void *), as posix_memalign requires.
            match unsafe { libc::posix_memalign(&mut out, align, layout.size()) } {
                0 => out.cast(),
                _ => core::ptr::null_mut(),
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from malloc or posix_memalign (alloc above).
        unsafe { libc::free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN && layout.align() <= new_size {
            // SAFETY: `ptr` came from this allocator; realloc keeps malloc's
            // alignment, enough for `layout.align()`.
            unsafe { libc::realloc(ptr.cast(), new_size) }.cast()
        } else {
            // SAFETY: the GlobalAlloc contract for the new layout (same
            // alignment, nonzero size) holds, as the caller guarantees.
            unsafe {
                let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}
