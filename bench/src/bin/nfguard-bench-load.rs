//! The load binary: times each syscall with clock_gettime(CLOCK_MONOTONIC)
//! around it and prints every sample (see `nfguard_bench::wire`).
//!
//! ```text
//! nfguard-bench-load --dir D --port P --nop PATH --ops getppid:20000,connect:2000 [--warmup-pct 10]
//! ```
//!
//! Operations (the timed region is the syscall alone; set-up and close are not timed):
//! - `clock`: nothing (the cost of the two clock reads);
//! - `getppid`: unmonitored by the filter;
//! - `open-ro`: openat(D/ro, O_RDONLY) — the filter looks at the flags and lets it pass;
//! - `openat-write`: openat(D/w, O_WRONLY|O_CREAT, 0644) — notified;
//! - `connect`: TCP connect to 127.0.0.1:P — notified (the socket() before it is too, untimed);
//! - `execve`: fork, then in the child stamp the clock and execve the nop program,
//!   which reports when its main ran: execve + program start, notified;
//! - `fork`: fork(2) in the parent (the child _exits at once, reaped untimed):
//!   under a tracing keeper, the parent's PTRACE_EVENT_FORK stop is in it;
//! - `thread`: a thread created and joined (std::thread::spawn + join): under
//!   a tracing keeper, its PTRACE_EVENT_CLONE stop and the thread's first stop;
//! - `udp-sendto`: a 200-byte datagram to 127.0.0.1:U (`--udp-port`) with sendto and
//!   its address — notified when datagrams are inspected;
//! - `udp-connected`: the same on a socket connected to it (sendto with a null
//!   address): never notified;
//! - `udp-pfcp`: N sendto of 200 bytes paced at 3,000 a second (a PFCP-like
//!   control-plane load), each timed;
//! - `udp-blast`: 1,400-byte datagrams with sendto, as fast as they go, for N
//!   milliseconds (a GTP-U-like user-plane load); prints one sample: the
//!   datagrams sent;
//! - `sleep`: sleeps N milliseconds (lets a memory sampler catch the supervisor);
//! - `ab-getppid`, `ab-open-ro`: the filter's own cost on an unmonitored call,
//!   paired: N times, a forked child measures a block of calls natively, then
//!   another installs nfguard's filter and measures the same block; each pair
//!   prints the ratio of the two block medians in parts per million. Tight
//!   alternation cancels most of the drift that separate runs suffer from.
//!
//! Single-threaded on purpose: the fork of the execve operation is then safe.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use nfguard_bench::sys::{self, ExecArgs};
use nfguard_bench::wire;

struct Opts {
    dir: PathBuf,
    port: u16,
    nop: PathBuf,
    udp_port: u16,
    ops: Vec<(String, usize)>,
    warmup_pct: usize,
    /// The filter of the paired ops: nfguard's (default) or a one-instruction
    /// `ret ALLOW`, which isolates the kernel's fixed cost of having any filter.
    ab_allow_all: bool,
}

fn parse_args() -> Result<Opts> {
    let mut a = std::env::args().skip(1);
    let mut o = Opts {
        dir: std::env::temp_dir(),
        port: 0,
        nop: PathBuf::new(),
        udp_port: 9,
        ops: Vec::new(),
        warmup_pct: 10,
        ab_allow_all: false,
    };
    while let Some(flag) = a.next() {
        let mut val = || a.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => o.dir = val()?.into(),
            "--port" => o.port = val()?.parse()?,
            "--udp-port" => o.udp_port = val()?.parse()?,
            "--nop" => o.nop = val()?.into(),
            "--warmup-pct" => o.warmup_pct = val()?.parse()?,
            "--ab-filter" => {
                o.ab_allow_all = match val()?.as_str() {
                    "nfguard" => false,
                    "allow" => true,
                    other => bail!("--ab-filter: nfguard or allow, not {other}"),
                }
            }
            "--ops" => {
                for spec in val()?.split(',') {
                    let (name, n) = spec
                        .split_once(':')
                        .with_context(|| format!("bad op {spec}: want name:count"))?;
                    o.ops.push((name.to_string(), n.parse()?));
                }
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(o)
}

/// Runs `f` warm-up + n times; keeps the n timed samples.
fn timed(n: usize, warm: usize, mut f: impl FnMut() -> Result<u64>) -> Result<Vec<u64>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..warm + n {
        let ns = f()?;
        if i >= warm {
            out.push(ns);
        }
    }
    Ok(out)
}

fn cpath(p: &std::path::Path) -> Result<CString> {
    Ok(CString::new(p.as_os_str().as_bytes())?)
}

fn run_op(o: &Opts, name: &str, n: usize) -> Result<Vec<u64>> {
    let warm = (n * o.warmup_pct / 100).max(1);
    match name {
        "clock" => timed(n, warm, || {
            let t0 = sys::now_ns();
            let t1 = sys::now_ns();
            Ok(t1 - t0)
        }),
        "getppid" => timed(n, warm, || {
            let t0 = sys::now_ns();
            let r = sys::getppid_raw();
            let t1 = sys::now_ns();
            if r <= 0 {
                bail!("getppid returned {r}");
            }
            Ok(t1 - t0)
        }),
        "open-ro" | "openat-write" => {
            let (path, flags) = if name == "open-ro" {
                let p = o.dir.join("ro");
                if !p.exists() {
                    std::fs::write(&p, b"ro\n")?;
                }
                (p, libc::O_RDONLY | libc::O_CLOEXEC)
            } else {
                (
                    o.dir.join("w"),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
                )
            };
            let c = cpath(&path)?;
            timed(n, warm, || {
                let t0 = sys::now_ns();
                let fd = sys::openat_raw(&c, flags, 0o644);
                let t1 = sys::now_ns();
                if fd < 0 {
                    bail!(
                        "openat {}: {}",
                        path.display(),
                        std::io::Error::last_os_error()
                    );
                }
                sys::close_raw(fd);
                Ok(t1 - t0)
            })
        }
        "connect" => {
            let addr = sys::loopback(o.port);
            timed(n, warm, || {
                let sock = sys::tcp_socket_rst_on_close()?;
                let t0 = sys::now_ns();
                let r = sys::connect_loopback_raw(sock.as_fd(), &addr);
                let t1 = sys::now_ns();
                if r < 0 {
                    bail!(
                        "connect 127.0.0.1:{}: {}",
                        o.port,
                        std::io::Error::last_os_error()
                    );
                }
                Ok(t1 - t0)
            })
        }
        "execve" => {
            let nop = cpath(&o.nop)?;
            let args = ExecArgs::new(&[nop.clone(), CString::new("0")?]).with_stamp_slot(1);
            timed(n, warm, || {
                let (r, w) = sys::pipe()?;
                let wfd = w.as_raw_fd();
                let pid = sys::fork_then(|| {
                    if !sys::dup2_raw(wfd, 1) {
                        return sys::exit_now(126);
                    }
                    args.write_stamp(sys::now_ns());
                    sys::exec_or_exit(&nop, &args)
                })?;
                drop(w);
                let mut out = String::new();
                std::fs::File::from(r).read_to_string(&mut out)?;
                let status = sys::wait_pid(pid)?;
                if status != 0 {
                    bail!("{} exited with wait status {status:#x}", o.nop.display());
                }
                out.trim()
                    .parse::<u64>()
                    .with_context(|| format!("nop printed {out:?}"))
            })
        }
        "fork" => timed(n, warm, || {
            let t0 = sys::now_ns();
            let pid = sys::fork_then(|| sys::exit_now(0))?;
            let t1 = sys::now_ns();
            let status = sys::wait_pid(pid)?;
            if status != 0 {
                bail!("the forked child exited with wait status {status:#x}");
            }
            Ok(t1 - t0)
        }),
        "thread" => timed(n, warm, || {
            // Joined before the next sample: between samples the process is
            // single-threaded again, as the fork of the other ops needs.
            let t0 = sys::now_ns();
            std::thread::spawn(|| ())
                .join()
                .map_err(|_| anyhow::anyhow!("the thread panicked"))?;
            Ok(sys::now_ns() - t0)
        }),
        "ab-getppid" | "ab-open-ro" => {
            let inner = name.trim_start_matches("ab-");
            let mut ratios = Vec::with_capacity(n);
            for _ in 0..n {
                let a = block_median(o, inner, false)?;
                let b = block_median(o, inner, true)?;
                ratios.push(b * 1_000_000 / a.max(1));
            }
            Ok(ratios)
        }
        "udp-sendto" | "udp-connected" => {
            let sock = sys::udp_socket()?;
            let to = sys::loopback(o.udp_port);
            let connected = name == "udp-connected";
            if connected && sys::connect_loopback_raw(sock.as_fd(), &to) < 0 {
                bail!("connect udp: {}", std::io::Error::last_os_error());
            }
            let buf = [0x20u8; 200];
            let dest = (!connected).then_some(&to);
            timed(n, warm, || {
                let t0 = sys::now_ns();
                let r = sys::sendto_raw(sock.as_fd(), &buf, dest);
                let t1 = sys::now_ns();
                if r < 0 {
                    bail!("sendto: {}", std::io::Error::last_os_error());
                }
                Ok(t1 - t0)
            })
        }
        "udp-pfcp" => {
            // 3,000 a second: each send starts on its slot, as a PFCP
            // association's heartbeats and session requests would.
            let sock = sys::udp_socket()?;
            let to = sys::loopback(o.udp_port);
            let buf = [0x21u8; 200];
            let start = sys::now_ns();
            let mut out = Vec::with_capacity(n);
            for i in 0..n as u64 {
                let slot = start + i * 1_000_000_000 / 3000;
                while sys::now_ns() < slot {
                    std::thread::sleep(std::time::Duration::from_nanos(
                        slot.saturating_sub(sys::now_ns()).min(200_000),
                    ));
                }
                let t0 = sys::now_ns();
                let r = sys::sendto_raw(sock.as_fd(), &buf, Some(&to));
                let t1 = sys::now_ns();
                if r < 0 {
                    bail!("sendto: {}", std::io::Error::last_os_error());
                }
                out.push(t1 - t0);
            }
            Ok(out)
        }
        "udp-blast" => {
            let sock = sys::udp_socket()?;
            let to = sys::loopback(o.udp_port);
            let buf = [0x22u8; 1400];
            let until = sys::now_ns() + n as u64 * 1_000_000;
            let mut sent = 0u64;
            while sys::now_ns() < until {
                for _ in 0..64 {
                    if sys::sendto_raw(sock.as_fd(), &buf, Some(&to)) >= 0 {
                        sent += 1;
                    }
                }
            }
            Ok(vec![sent])
        }
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_millis(n as u64));
            Ok(vec![n as u64 * 1_000_000])
        }
        other => bail!("unknown op {other}"),
    }
}

/// The median of one block of `op` measured in a forked child, with or
/// without nfguard's filter installed in that child (no listener is needed:
/// an unmonitored call never notifies).
fn block_median(o: &Opts, op: &str, filtered: bool) -> Result<u64> {
    const BLOCK: usize = 2000;
    let (r, w) = sys::pipe()?;
    let program = if o.ab_allow_all {
        vec![nfguard_sidecar::sys::sock_filter {
            code: 0x06, // BPF_RET | BPF_K
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        }]
    } else {
        nfguard_policy::PROGRAM.to_vec()
    };
    // The load binary is single-threaded, so its forked child may allocate.
    let pid = sys::fork_then(|| {
        let code = (|| -> Result<()> {
            let _listener = if filtered {
                nfguard_sidecar::sys::set_no_new_privs()?;
                Some(nfguard_sidecar::sys::install_filter_with_listener(
                    &program,
                )?)
            } else {
                None
            };
            let mut s = run_op(o, op, BLOCK)?;
            s.sort_unstable();
            let mut f = std::fs::File::from(w.try_clone()?);
            f.write_all(&s[s.len() / 2].to_le_bytes())?;
            Ok(())
        })()
        .map_or(1, |()| 0);
        sys::exit_now(code)
    })?;
    drop(w);
    let mut buf = [0u8; 8];
    std::fs::File::from(r)
        .read_exact(&mut buf)
        .context("paired block: child reported nothing")?;
    let status = sys::wait_pid(pid)?;
    if status != 0 {
        bail!("paired block child exited with wait status {status:#x}");
    }
    Ok(u64::from_le_bytes(buf))
}

fn main() -> Result<()> {
    let o = parse_args()?;
    let mut stdout = std::io::stdout().lock();
    for (name, n) in &o.ops {
        let samples = run_op(&o, name, *n).with_context(|| format!("op {name}"))?;
        writeln!(stdout, "{}", wire::format_samples(name, &samples))?;
    }
    Ok(())
}
