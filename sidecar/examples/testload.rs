//! A workload for the supervisor's tests: each subcommand makes one kind of
//! notified syscall (or a race, a thread storm, a fork storm) and prints one
//! line per outcome, `ok` or `errno=N`, so tests can assert on what the kernel
//! answered. Built by `cargo test` (examples are), never shipped.
//!
//! Raw libc calls are used on purpose: the point is to make exactly the
//! syscall under test, with the argument memory under the test's control.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn report(what: &str, r: std::io::Result<()>) {
    match r {
        Ok(()) => println!("{what} ok"),
        Err(e) => println!("{what} errno={}", e.raw_os_error().unwrap_or(0)),
    }
}

/// A path buffer that a racing thread rewrites between two strings of the same length.
struct FlipBuf {
    buf: Box<[u8; 256]>,
}

impl FlipBuf {
    fn new(a: &str) -> FlipBuf {
        let mut buf = Box::new([0u8; 256]);
        buf[..a.len()].copy_from_slice(a.as_bytes());
        FlipBuf { buf }
    }
    fn ptr(&self) -> usize {
        self.buf.as_ptr() as usize
    }
}

/// Spawns a thread that keeps writing `a` and `b` alternately at `addr`.
fn flipper(
    addr: usize,
    a: String,
    b: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    assert_eq!(a.len(), b.len(), "race paths must have the same length");
    std::thread::spawn(move || {
        let p = addr as *mut u8;
        while !stop.load(Ordering::Relaxed) {
            for s in [&a, &b] {
                // SAFETY (test code): the buffer outlives the thread (joined
                // before it is dropped); byte-wise volatile writes race with the
                // kernel's read on purpose.
                for (i, c) in s.bytes().enumerate() {
                    unsafe { std::ptr::write_volatile(p.add(i), c) };
                }
            }
        }
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).cloned().unwrap_or_default();
    match a(0).as_str() {
        "connect" => {
            let r = TcpStream::connect_timeout(
                &format!("{}:{}", a(1), a(2)).parse().unwrap(),
                Duration::from_secs(2),
            );
            report("connect", r.map(drop));
        }
        "listen" => {
            let r = TcpListener::bind(format!("127.0.0.1:{}", a(1)));
            report("listen", r.map(drop));
        }
        "write" => {
            let r = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(a(1))
                .and_then(|mut f| f.write_all(b"x\n"));
            report("write", r);
        }
        "exec" => {
            let err = std::os::unix::process::CommandExt::exec(
                std::process::Command::new(a(1)).args(&args[2..]),
            );
            println!("exec errno={}", err.raw_os_error().unwrap_or(0));
        }
        "socket" => {
            let (family, kind, proto) = (
                a(1).parse().unwrap(),
                a(2).parse().unwrap(),
                a(3).parse().unwrap(),
            );
            let fd = unsafe { libc::socket(family, kind, proto) };
            if fd < 0 {
                println!("socket errno={}", errno());
            } else {
                println!("socket ok");
            }
        }
        "raw" => {
            // syscall(NR, 1, 0, 0, 0, 0, 0): to see whether the filter refuses it.
            let nr: libc::c_long = a(1).parse().unwrap();
            let r = unsafe { libc::syscall(nr, 1, 0, 0, 0, 0, 0) };
            if r < 0 {
                println!("raw errno={}", errno());
            } else {
                println!("raw ok");
            }
        }
        "race-open" => {
            // Open for write, N times, through a buffer a second thread flips
            // between an allowed and a forbidden path of the same length.
            let (allowed, forbidden, n): (String, String, usize) =
                (a(1), a(2), a(3).parse().unwrap());
            let fb = FlipBuf::new(&allowed);
            let stop = Arc::new(AtomicBool::new(false));
            let t = flipper(fb.ptr(), allowed, forbidden, Arc::clone(&stop));
            let (mut ok, mut denied) = (0, 0);
            for _ in 0..n {
                let fd = unsafe {
                    libc::open(
                        fb.ptr() as *const libc::c_char,
                        libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND,
                        0o644,
                    )
                };
                if fd >= 0 {
                    unsafe {
                        libc::write(fd, b"x".as_ptr().cast(), 1);
                        libc::close(fd);
                    }
                    ok += 1;
                } else {
                    denied += 1;
                }
            }
            stop.store(true, Ordering::Relaxed);
            t.join().unwrap();
            println!("race-open ok={ok} denied={denied}");
        }
        "race-exec" => {
            // N times: fork; in the child, a second thread flips the path while
            // the first calls execve on it.
            let (allowed, forbidden, n): (String, String, usize) =
                (a(1), a(2), a(3).parse().unwrap());
            let (mut ran, mut refused) = (0, 0);
            for _ in 0..n {
                match unsafe { libc::fork() } {
                    0 => {
                        let fb = FlipBuf::new(&allowed);
                        let stop = Arc::new(AtomicBool::new(false));
                        let _t = flipper(fb.ptr(), allowed.clone(), forbidden.clone(), stop);
                        let argv = [fb.ptr() as *const libc::c_char, std::ptr::null()];
                        let envp = [std::ptr::null::<libc::c_char>()];
                        unsafe {
                            libc::execve(
                                fb.ptr() as *const libc::c_char,
                                argv.as_ptr(),
                                envp.as_ptr(),
                            );
                            libc::_exit(100 + errno().min(100));
                        }
                    }
                    pid => {
                        let mut status = 0;
                        unsafe { libc::waitpid(pid, &mut status, 0) };
                        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) < 100 {
                            ran += 1;
                        } else {
                            refused += 1;
                        }
                    }
                }
            }
            println!("race-exec ran={ran} refused={refused}");
        }
        "threads" => {
            // Many threads making notified syscalls at once.
            let (threads, each): (usize, usize) = (a(1).parse().unwrap(), a(2).parse().unwrap());
            let dir = a(3);
            let hs: Vec<_> = (0..threads)
                .map(|t| {
                    let dir = dir.clone();
                    std::thread::spawn(move || {
                        let mut ok = 0;
                        for i in 0..each {
                            let p = format!("{dir}/t{t}");
                            if std::fs::write(&p, i.to_string()).is_ok() {
                                ok += 1;
                            }
                        }
                        ok
                    })
                })
                .collect();
            let total: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
            println!("threads ok={total}");
        }
        "forkstorm" => {
            // Many children at once, each exec'ing a program.
            let (n, prog): (usize, String) = (a(1).parse().unwrap(), a(2));
            let children: Vec<_> = (0..n)
                .map(|_| std::process::Command::new(&prog).spawn())
                .collect();
            let ok = children
                .into_iter()
                .filter_map(|c| c.ok())
                .filter_map(|mut c| c.wait().ok())
                .filter(|s| s.success())
                .count();
            println!("forkstorm ok={ok}");
        }
        "tick" => {
            // Writes a counter to a file every interval (a notified open each
            // time), for the supervisor-restart test.
            let (path, ms, count): (String, u64, u64) =
                (a(1), a(2).parse().unwrap(), a(3).parse().unwrap());
            for i in 0..count {
                if let Err(e) = std::fs::write(&path, i.to_string()) {
                    println!("tick errno={}", e.raw_os_error().unwrap_or(0));
                    std::process::exit(1);
                }
                std::thread::sleep(Duration::from_millis(ms));
            }
            println!("tick done");
        }
        other => {
            eprintln!("testload: unknown command {other:?}");
            std::process::exit(2);
        }
    }
}
