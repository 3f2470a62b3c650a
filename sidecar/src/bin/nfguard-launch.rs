//! `nfguard-launch [--socket PATH] [--container NAME] -- CMD [ARGS...]`: see
//! the `nfguard-launcher` crate (launcher/), which does all the work.
//!
//! Built with `cargo build --profile launcher` (panic = "abort"), this binary
//! links no std: the small static launcher that goes into pods. In any other
//! profile (tests, `--release`) std is linked only as the panic runtime, and
//! a panic ends the launcher with status 101 either way.
#![cfg_attr(panic = "abort", no_std)]
#![cfg_attr(not(test), no_main)]

#[global_allocator]
static ALLOC: nfguard_launcher::Malloc = nfguard_launcher::Malloc;

#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(
    argc: core::ffi::c_int,
    argv: *const *const core::ffi::c_char,
) -> core::ffi::c_int {
    // SAFETY: the C runtime passes argc strings in argv.
    let run = || nfguard_launcher::main(unsafe { nfguard_launcher::c_args(argc, argv) });
    #[cfg(panic = "abort")]
    return run();
    #[cfg(not(panic = "abort"))]
    return std::panic::catch_unwind(run).unwrap_or(nfguard_launcher::EXIT_PANIC);
}

#[cfg(panic = "abort")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    nfguard_launcher::panicked(info)
}

// The precompiled core and alloc keep unwinding tables that name this
// routine; with panic = "abort" no Rust frame ever unwinds, so it is never
// called (and would end the process if it were).
#[cfg(panic = "abort")]
#[no_mangle]
extern "C" fn rust_eh_personality() {
    nfguard_launcher::abort()
}

// Without std, nothing else links the C library (the workspace's libc crate
// has its `std` feature, which leaves that to std), nor, statically, the
// unwinder glibc's own objects refer to (_Unwind_Resume in cancellation paths).
#[cfg(panic = "abort")]
#[link(name = "c")]
extern "C" {}
#[cfg(all(panic = "abort", target_feature = "crt-static"))]
#[link(name = "gcc_eh", kind = "static", modifiers = "-bundle")]
extern "C" {}
