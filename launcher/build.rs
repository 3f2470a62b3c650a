//! Generates `$OUT_DIR/generated.rs` for the no_std launcher:
//! - `ERRNO_NAMES`, `ERRNO_DESCS`: what nix's `Errno` prints (`EAGAIN: Try
//!   again`), so the launcher's messages stay those of its nix-based version.

use std::fmt::Write as _;

fn main() {
    // The seccomp program (nfguard-policy) is x86_64 only: its syscall numbers
    // are that ABI's, and built for another the filter would silently miss
    // execve. Refuse rather than guess.
    let target = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if target != "x86_64" {
        panic!("nfguard-launcher is built for x86_64 only (target {target}): its seccomp program uses that ABI's syscall numbers");
    }
    println!("cargo::rerun-if-changed=build.rs");
    let mut out = String::new();

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
