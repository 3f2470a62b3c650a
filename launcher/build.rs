//! Generates `$OUT_DIR/generated.rs` for the no_std launcher:
//! - `FILTER`: the seccomp program, compiled here from the sidecar's policy
//!   (`sidecar/src/filter.rs`, the same source the supervisor decodes with),
//!   so the launcher carries the program as data and needs no allocator or
//!   std to build it;
//! - `ERRNO_NAMES`, `ERRNO_DESCS`: what nix's `Errno` prints (`EAGAIN: Try
//!   again`), so the launcher's messages stay those of its nix-based version.

use std::fmt::Write as _;

#[allow(dead_code)]
#[path = "../sidecar/src/filter.rs"]
mod filter;

/// What `filter.rs` expects from the sidecar's `sys` module.
mod sys {
    pub use libc::sock_filter;
}

fn main() {
    // filter.rs takes its syscall numbers and open flags from the libc of the
    // machine that runs this script, and the program it makes accepts x86_64
    // only: built anywhere else, the numbers would be another ABI's and the
    // filter would silently miss execve. Refuse rather than guess.
    let target = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if target != "x86_64" || !cfg!(target_arch = "x86_64") {
        panic!(
            "nfguard-launcher is built for and on x86_64 only (target {target}, host {}): its seccomp program uses the build machine's syscall numbers",
            std::env::consts::ARCH
        );
    }
    println!("cargo::rerun-if-changed=../sidecar/src/filter.rs");
    println!("cargo::rerun-if-changed=build.rs");
    let mut out = String::new();

    let program = filter::program();
    writeln!(
        out,
        "/// The seccomp program (`nfguard_sidecar::filter::program()`).\n\
         pub static FILTER: [libc::sock_filter; {}] = [",
        program.len()
    )
    .unwrap();
    for i in &program {
        writeln!(
            out,
            "    libc::sock_filter {{ code: {:#06x}, jt: {}, jf: {}, k: {:#010x} }},",
            i.code, i.jt, i.jf, i.k
        )
        .unwrap();
    }
    out.push_str("];\n");

    // nix knows the errnos of this target up to some number; past it every
    // value is UnknownErrno.
    use nix::errno::Errno;
    let unknown = Errno::UnknownErrno;
    let known: Vec<Errno> = (0..4096).map(Errno::from_raw).collect();
    let known = &known[..=known.iter().rposition(|e| *e != unknown).unwrap_or(0)];
    writeln!(
        out,
        "/// nix's `Debug` of errno `i` (its constant's name), at index `i`.\n\
         pub static ERRNO_NAMES: [&str; {}] = [",
        known.len()
    )
    .unwrap();
    for e in known {
        writeln!(out, "    {:?},", format!("{e:?}")).unwrap();
    }
    out.push_str("];\n");
    writeln!(
        out,
        "/// nix's `desc()` of errno `i`, at index `i`.\n\
         pub static ERRNO_DESCS: [&str; {}] = [",
        known.len()
    )
    .unwrap();
    for e in known {
        writeln!(out, "    {:?},", e.desc()).unwrap();
    }
    out.push_str("];\n");
    writeln!(
        out,
        "/// nix's `Debug` and `desc()` of an errno it does not know.\n\
         pub const ERRNO_UNKNOWN: (&str, &str) = ({:?}, {:?});",
        format!("{unknown:?}"),
        unknown.desc()
    )
    .unwrap();

    let dest = std::path::Path::new(&std::env::var_os("OUT_DIR").unwrap()).join("generated.rs");
    std::fs::write(dest, out).unwrap();
}
