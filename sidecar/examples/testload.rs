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

fn cstr(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap()
}

/// execve(path) with argv = [path] and an empty environment; returns only on
/// failure, as `_exit(100 + errno)`.
fn exec_at(path: usize) -> ! {
    let argv = [path as *const libc::c_char, std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    unsafe {
        libc::execve(path as *const libc::c_char, argv.as_ptr(), envp.as_ptr());
        libc::_exit(100 + errno().min(100));
    }
}

/// Runs `attempt` (which execs, or exits 100 + errno) in a forked child N
/// times and prints how each ended: ran (exit below 100), refused (the
/// exec failed), killed (SIGKILL: the keeper refused the loaded program).
fn race(what: &str, n: usize, attempt: impl Fn()) {
    let (mut ran, mut refused, mut killed, mut other) = (0, 0, 0, 0);
    for _ in 0..n {
        match unsafe { libc::fork() } {
            0 => {
                attempt();
                unsafe { libc::_exit(99) }
            }
            pid => {
                let mut status = 0;
                unsafe { libc::waitpid(pid, &mut status, 0) };
                if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) < 100 {
                    ran += 1;
                } else if libc::WIFEXITED(status) {
                    refused += 1;
                } else if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL {
                    killed += 1;
                } else {
                    other += 1;
                }
            }
        }
    }
    println!("{what} ran={ran} refused={refused} killed={killed} other={other}");
}

/// Dies with process `parent` (PR_SET_PDEATHSIG), and at once if it is gone already.
fn die_with(parent: i32) {
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            libc::_exit(0);
        }
    }
}

/// Writes `a` then `b` at `p`, forever, byte by byte.
fn flip_forever(p: *mut u8, a: &[u8], b: &[u8]) -> ! {
    loop {
        for s in [a, b] {
            for (i, c) in s.iter().enumerate() {
                // SAFETY (test code): `p` has room for the path; the writes
                // race with the kernel's read on purpose.
                unsafe { std::ptr::write_volatile(p.add(i), *c) };
            }
        }
    }
}

/// What the CLONE_VM process of `race-exec-vm` works on (in memory it shares).
struct VmJob {
    buf: *mut u8,
    allowed: Vec<u8>,
    forbidden: Vec<u8>,
    parent: i32,
    racing: AtomicBool,
    stack: Vec<u8>,
}

/// The CLONE_VM process's leader: starts the racing thread, then exits (the
/// thread only: SYS_exit), leaving a zombie leader and a live thread.
extern "C" fn vm_leader(arg: *mut libc::c_void) -> libc::c_int {
    let job = arg as *mut VmJob;
    unsafe {
        let top = (*job).stack.as_mut_ptr().add(256 * 1024 - 64);
        libc::clone(
            vm_racer,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND,
            arg,
        );
        libc::syscall(libc::SYS_exit, 0);
    }
    0
}

/// The racing thread: flips the path until the exec'ing process is gone.
extern "C" fn vm_racer(arg: *mut libc::c_void) -> libc::c_int {
    let job = arg as *const VmJob;
    unsafe {
        die_with((*job).parent);
        (*job).racing.store(true, Ordering::SeqCst);
        flip_forever((*job).buf, &(*job).allowed, &(*job).forbidden)
    }
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
            race("race-exec", n, || {
                let fb = FlipBuf::new(&allowed);
                let stop = Arc::new(AtomicBool::new(false));
                let _t = flipper(fb.ptr(), allowed.clone(), forbidden.clone(), stop);
                exec_at(fb.ptr())
            });
        }
        "race-exec-shared" => {
            // The path lives in a MAP_SHARED page that a forked process (no
            // thread, no shared address space) rewrites.
            let (allowed, forbidden, n): (String, String, usize) =
                (a(1), a(2), a(3).parse().unwrap());
            race("race-exec-shared", n, || unsafe {
                let page = libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                ) as *mut u8;
                assert!(page as *mut libc::c_void != libc::MAP_FAILED);
                std::ptr::copy_nonoverlapping(allowed.as_ptr(), page, allowed.len());
                let started = page.add(2048) as *const AtomicBool;
                let me = libc::getpid();
                if libc::fork() == 0 {
                    die_with(me);
                    (*started).store(true, Ordering::SeqCst);
                    flip_forever(page, allowed.as_bytes(), forbidden.as_bytes());
                }
                while !(*started).load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
                exec_at(page as usize)
            });
        }
        "race-exec-cwd" => {
            // execve of a relative name while a CLONE_FS sibling (another
            // process sharing the cwd) moves the cwd between two directories.
            let (dir_a, dir_b, name, n): (String, String, String, usize) =
                (a(1), a(2), a(3), a(4).parse().unwrap());
            race("race-exec-cwd", n, || unsafe {
                let (ca, cb) = (cstr(&dir_a), cstr(&dir_b));
                let cname = cstr(&name);
                assert_eq!(libc::chdir(ca.as_ptr()), 0);
                let me = libc::getpid();
                let pid = libc::syscall(
                    libc::SYS_clone,
                    libc::CLONE_FS | libc::SIGCHLD,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                );
                if pid == 0 {
                    die_with(me);
                    loop {
                        libc::chdir(cb.as_ptr());
                        libc::chdir(ca.as_ptr());
                    }
                }
                assert!(pid > 0, "clone(CLONE_FS): {}", errno());
                exec_at(cname.as_ptr() as usize)
            });
        }
        "race-exec-vm" => {
            // The path lives in memory shared (CLONE_VM) with another process
            // whose thread-group leader has exited: its racing thread is not
            // listed in /proc, only under /proc/<leader>/task.
            let (allowed, forbidden, n): (String, String, usize) =
                (a(1), a(2), a(3).parse().unwrap());
            race("race-exec-vm", n, || unsafe {
                let fb = FlipBuf::new(&allowed);
                let job = Box::leak(Box::new(VmJob {
                    buf: fb.ptr() as *mut u8,
                    allowed: allowed.clone().into_bytes(),
                    forbidden: forbidden.clone().into_bytes(),
                    parent: libc::getpid(),
                    racing: AtomicBool::new(false),
                    stack: vec![0u8; 256 * 1024],
                }));
                let top = job.stack.as_mut_ptr().add(128 * 1024);
                let leader = libc::clone(
                    vm_leader,
                    top.cast(),
                    libc::CLONE_VM | libc::SIGCHLD,
                    (job as *mut VmJob).cast(),
                );
                assert!(leader > 0, "clone(CLONE_VM): {}", errno());
                while !job.racing.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
                // Until the leader is a zombie (its racing thread lives on).
                let stat = format!("/proc/{leader}/stat");
                for _ in 0..100_000 {
                    let s = std::fs::read_to_string(&stat).unwrap_or_default();
                    if s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')) {
                        break;
                    }
                    std::thread::yield_now();
                }
                std::mem::forget(fb);
                exec_at(job.buf as usize)
            });
        }
        "spawn-threaded" => {
            // posix_spawn (what Command::spawn uses) from a process with
            // several threads, as a threaded NF or Go's os/exec does.
            let prog = a(1);
            let stop = Arc::new(AtomicBool::new(false));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let stop = Arc::clone(&stop);
                    std::thread::spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    })
                })
                .collect();
            let r = std::process::Command::new(&prog).status();
            stop.store(true, Ordering::Relaxed);
            for t in threads {
                t.join().unwrap();
            }
            match r {
                Ok(st) => println!("spawn-threaded status={}", st.code().unwrap_or(-1)),
                Err(e) => println!("spawn-threaded errno={}", e.raw_os_error().unwrap_or(0)),
            }
        }
        "thread-exec" => {
            // execve(PROG ARGS...) from a thread that is not the thread-group
            // leader: the kernel gives the execing thread the leader's id.
            let args: Vec<std::ffi::CString> = args[1..].iter().map(|s| cstr(s)).collect();
            let t = std::thread::spawn(move || {
                let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
                argv.push(std::ptr::null());
                unsafe { libc::execv(args[0].as_ptr(), argv.as_ptr()) };
                errno()
            });
            let e = t.join().unwrap();
            println!("thread-exec errno={e}");
        }
        "steal" => {
            // What a workload of the same uid can take from process PID
            // (the keeper, the supervisor): fds, memory, /proc entries.
            let pid: i32 = a(1).parse().unwrap();
            // Each step is tried whatever the one before gave: every layer
            // that stops it is seen (the filter, the dumpable flag).
            let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
            if pidfd < 0 {
                println!("steal pidfd_open errno={}", errno());
            } else {
                let (mut taken, mut eperm, mut other) = (0, 0, 0);
                for fd in 0..64 {
                    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) };
                    match (r, errno()) {
                        (r, _) if r >= 0 => taken += 1,
                        (_, libc::EPERM) => eperm += 1,
                        _ => other += 1,
                    }
                }
                println!("steal getfd taken={taken} eperm={eperm} other={other}");
            }
            let mut byte = [0u8; 8];
            let local = libc::iovec {
                iov_base: byte.as_mut_ptr().cast(),
                iov_len: 8,
            };
            let remote = libc::iovec {
                iov_base: 0x1000 as *mut libc::c_void,
                iov_len: 8,
            };
            let r = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
            println!("steal vm_readv errno={}", if r < 0 { errno() } else { 0 });
            for what in ["fd", "mem", "environ"] {
                let r = std::fs::read_dir(format!("/proc/{pid}/{what}"))
                    .map(drop)
                    .or_else(|_| std::fs::File::open(format!("/proc/{pid}/{what}")).map(drop));
                report(&format!("steal open-{what}"), r);
            }
            let r = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
            println!("steal ptrace errno={}", if r < 0 { errno() } else { 0 });
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
