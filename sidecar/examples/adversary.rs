//! The adversary: what code running inside a monitored NF would do to defeat
//! nfguard's enforce mode, or to act unseen in alert mode (issue 11).
//!
//! It runs as the workload under `nfguard run`: the same uid as the
//! supervisor, no capabilities, only unprivileged syscalls. Each subcommand is
//! one attack (or one legitimate action, for the learning runs), and prints
//! one line per attempt, `<what> ok` or `<what> errno=N`, so the tests in
//! `tests/adversary.rs` can assert on what the kernel answered; the tests
//! check each attack's *effect* from outside (the file, the peer, the marker
//! output), never only these lines.
//!
//! Subcommands can be chained with `+` (`write A + link A B + unlink A`), and
//! `thread OP ARGS` runs one of them on a worker thread instead of the
//! thread-group leader. Raw `syscall(2)` is used on purpose: each attack makes
//! exactly the syscall it is about (glibc would pick `openat` for `open`,
//! `mknodat` for `mkfifo`, `clone3` for `posix_spawn`), with argument memory
//! under its control. Built by `cargo test` (examples are), never shipped.
//!
//! Who is who, as the workload finds them: the keeper is its parent (the
//! launcher forks the command and stays), the supervisor is the keeper's
//! parent under `nfguard run`.
//!
//! Run with no arguments, it is the program the model forbids: it prints
//! `FORBIDDEN-RAN pid=N` (standard output, which no filter sees) and exits 42.
//! The races and the mount attacks exec copies of it.
//!
//! The subcommands, by class of the issue (each arm below says why it works):
//!
//! | class | subcommands |
//! | --- | --- |
//! | legitimate actions, and class 0 through `thread` | `connect`, `bind`, `bind-listen`, `listen`, `socket`, `write`, `unlink`, `rename`, `chmod`, `exec`, `unix-connect`, `sleep` |
//! | 1 nfguard's own handles | `whoami`, `steal-listener`, `rewrite-file`, `memory`, `signal` |
//! | 2 exec proof races | `race-shm`, `race-cwd`, `race-clone-vm`, `spawn-threaded` |
//! | 3 namespaces and mounts | `userns-exec`, `userns-write`, `clone3-exec`, `clone-exec` |
//! | 4 the filesystem | `link`, `linkat`, `tmpfile-link`, `symlink`, `symlinkat`, `mkdir`, `mkdirat`, `mknod`, `mknodat`, `rmdir`, `setxattr-acl`, `open-by-handle`, `reopen-self-fd`, `reopen-dev-fd`, `oom-score-adj`, `rewrite-exec` |
//! | 5 network without connect | `fastopen` |
//! | 6 silent outcomes | `starve-fds`, `undumpable` |
//! | 7 left unsupervised | `linger` |
//! | second pass (doors the hardened supervisor missed) | `pidfd-signal`, `sigio-owner`, `perf-sigtrap`, `deprioritize`, `nfguard-thread`, `move-dir`, `plant-journals`, `hidden`, `umask`, `unix-bind`, `unix-dgram`, `bind-addr`, `openat2`, `fifo-stall`, `write-nonblock`, `plant-journals`, `tiocsti`, `via-symlink`, `mknod-dev`, `fchmodat2-empty`, `int80-mkdir`, `x32-mkdir`, `forbidden-calls`, `raw-signal` |
#![allow(clippy::undocumented_unsafe_blocks)]

use std::ffi::CString;
use std::os::raw::c_char;
use std::time::{Duration, Instant};

// ---- small helpers -------------------------------------------------------

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn cs(s: &str) -> CString {
    CString::new(s).expect("arguments hold no NUL byte")
}

/// Prints `what ok` or `what errno=N` for a raw syscall's return; returns it.
fn say(what: &str, rc: libc::c_long) -> libc::c_long {
    let e = errno();
    if rc < 0 {
        println!("{what} errno={e}");
    } else {
        println!("{what} ok");
    }
    rc
}

fn close(fd: libc::c_long) {
    if fd >= 0 {
        unsafe { libc::close(fd as i32) };
    }
}

fn write_fd(fd: libc::c_long, data: &[u8]) -> libc::c_long {
    unsafe { libc::write(fd as i32, data.as_ptr().cast(), data.len()) as libc::c_long }
}

/// `openat(AT_FDCWD, path, flags, mode)` as the raw syscall.
fn openat(path: &str, flags: i32, mode: u32) -> libc::c_long {
    let p = cs(path);
    unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, p.as_ptr(), flags, mode) }
}

fn ppid_of(pid: i32) -> i32 {
    // The fields after the command name, which may hold spaces and parens.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            rest.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn state_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            rest.split_whitespace().next().map(str::to_string)
        })
        .unwrap_or_else(|| "gone".into())
}

/// The keeper: our parent (the launcher forked us and stayed).
fn keeper() -> i32 {
    unsafe { libc::getppid() }
}

/// The supervisor: the keeper's parent under `nfguard run`.
fn supervisor() -> i32 {
    ppid_of(keeper())
}

fn target(who: &str) -> i32 {
    match who {
        "keeper" => keeper(),
        "supervisor" => supervisor(),
        other => other.parse().expect("keeper, supervisor or a pid"),
    }
}

/// `(fd, link)` for each fd of `pid` we can list.
fn fd_links(pid: i32) -> Vec<(i32, String)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut v: Vec<(i32, String)> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n: i32 = e.file_name().to_str()?.parse().ok()?;
            let l = std::fs::read_link(e.path()).ok()?;
            Some((n, l.to_string_lossy().into_owned()))
        })
        .collect();
    v.sort();
    v
}

fn link_of_own_fd(fd: libc::c_long) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn inet(host: &str, port: u16) -> libc::sockaddr_in {
    let ip: std::net::Ipv4Addr = host.parse().expect("an IPv4 address");
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn unix_addr(path: &str) -> (libc::sockaddr_un, u32) {
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as u16;
    for (i, b) in path.bytes().enumerate() {
        sa.sun_path[i] = b as c_char;
    }
    (sa, (2 + path.len() + 1) as u32)
}

fn tcp_socket() -> libc::c_long {
    unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) }
}

fn set_timeout(fd: libc::c_long, secs: i64) {
    let tv = libc::timeval {
        tv_sec: secs,
        tv_usec: 0,
    };
    for opt in [libc::SO_SNDTIMEO, libc::SO_RCVTIMEO] {
        unsafe {
            libc::setsockopt(
                fd as i32,
                libc::SOL_SOCKET,
                opt,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
    }
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn wait_status(pid: i32) -> i32 {
    let mut st = 0;
    unsafe { libc::waitpid(pid, &mut st, 0) };
    st
}

/// An empty environment for exec: the scripts below need none.
fn exec(path: *const c_char, argv: &[*const c_char]) -> libc::c_long {
    let envp = [std::ptr::null::<c_char>()];
    unsafe { libc::syscall(libc::SYS_execve, path, argv.as_ptr(), envp.as_ptr()) }
}

/// A page of memory another task writes while we exec from it: flips
/// between two paths of the same length, byte by byte, until killed.
fn flip_forever(buf: *mut u8, a: &[u8], b: &[u8]) -> ! {
    loop {
        for s in [a, b] {
            for (i, c) in s.iter().enumerate() {
                unsafe { std::ptr::write_volatile(buf.add(i), *c) };
            }
        }
    }
}

/// A MAP_SHARED page holding `a`, and a forked process that flips it
/// between `a` and `b` forever: it shares the page, not the address space.
fn shared_flipper(a: &str, b: &str) -> (*mut u8, i32) {
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as *mut u8;
    unsafe { std::ptr::copy_nonoverlapping(a.as_ptr(), page, a.len()) };
    let writer = unsafe { libc::fork() };
    if writer == 0 {
        flip_forever(page, a.as_bytes(), b.as_bytes());
    }
    (page, writer)
}

/// Tallies of a race: what each exec attempt turned into.
#[derive(Default)]
struct Tally {
    attempts: u32,
    ok: u32,
    forbidden: u32,
    refused: u32,
    killed: u32,
}

impl Tally {
    /// The forbidden program exits 42; the allowed one 0; a refused exec
    /// 100 + errno (the child's own `_exit`); a task killed before it ran
    /// (what a ptrace-based check does) by a signal.
    fn add(&mut self, status: i32) {
        self.attempts += 1;
        if libc::WIFSIGNALED(status) {
            self.killed += 1;
        } else {
            match libc::WEXITSTATUS(status) {
                0 => self.ok += 1,
                42 => self.forbidden += 1,
                _ => self.refused += 1,
            }
        }
    }
    fn print(&self, what: &str) {
        println!(
            "{what} attempts={} ok={} forbidden={} refused={} killed={}",
            self.attempts, self.ok, self.forbidden, self.refused, self.killed
        );
    }
}

/// The supervisor's threads other than its leader (their ids are no pid).
fn supervisor_threads() -> Vec<i32> {
    let sup = supervisor();
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{sup}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|t| *t != sup)
        .collect();
    v.sort();
    v
}

/// `F_SETOWN_EX` (linux/fcntl.h), which libc does not name.
fn nfguard_policy_f_setown_ex() -> libc::c_int {
    15
}

/// A page holding `bytes` that the kernel reads in our context but no other
/// process can read: `secret` (memfd_secret) or `xonly` (PROT_EXEC alone);
/// `plain` is ordinary memory, for the learned runs.
fn hidden_copy(mem: &str, bytes: &[u8]) -> *const u8 {
    assert!(bytes.len() <= 4096);
    unsafe {
        let p = match mem {
            "secret" => {
                let fd = libc::syscall(libc::SYS_memfd_secret, 0) as i32;
                if fd < 0 {
                    println!("memfd_secret errno={}", errno());
                    std::process::exit(3);
                }
                libc::ftruncate(fd, 4096);
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                )
            }
            _ => libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            ),
        } as *mut u8;
        assert!(p as isize != -1, "mmap failed");
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        if mem == "xonly" {
            libc::mprotect(p.cast(), 4096, libc::PROT_EXEC);
        }
        p
    }
}

// ---- seccomp user notification, from the attacker's side ------------------

#[repr(C)]
#[derive(Default)]
struct SeccompData {
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Default)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// `_IOWR('!', 0, struct seccomp_notif)` and `_IOWR('!', 1, struct seccomp_notif_resp)`.
const NOTIF_RECV: u64 = 0xc050_2100;
const NOTIF_SEND: u64 = 0xc018_2101;
const FLAG_CONTINUE: u32 = 1;

/// Forks a process that answers every notification on `listener` with
/// CONTINUE (the kernel then runs the call as asked) until `stop` closes.
/// Returns its pid and the write end that stops it.
fn spawn_answerer(listener: libc::c_long) -> (i32, i32) {
    let mut p = [0i32; 2];
    unsafe { libc::pipe(p.as_mut_ptr()) };
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe { libc::close(p[1]) };
        let mut answered = 0u32;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: listener as i32,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: p[0],
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            unsafe { libc::poll(fds.as_mut_ptr(), 2, 1000) };
            if fds[1].revents != 0 {
                break;
            }
            if fds[0].revents & libc::POLLIN != 0 {
                let mut n = SeccompNotif::default();
                if unsafe { libc::ioctl(listener as i32, NOTIF_RECV, &mut n) } == 0 {
                    let r = SeccompNotifResp {
                        id: n.id,
                        val: 0,
                        error: 0,
                        flags: FLAG_CONTINUE,
                    };
                    if unsafe { libc::ioctl(listener as i32, NOTIF_SEND, &r) } == 0 {
                        answered += 1;
                    }
                }
            }
        }
        println!("answerer answered={answered}");
        unsafe { libc::_exit(0) };
    }
    unsafe { libc::close(p[0]) };
    (pid, p[1])
}

/// With a stolen listener: stop the supervisor, answer our own
/// notifications, do what the model forbids, then put things back so the
/// run can end (an attacker would not).
fn takeover(listener: libc::c_long, forbidden: &str) {
    let sup = supervisor();
    say("stop supervisor", unsafe {
        libc::kill(sup, libc::SIGSTOP) as libc::c_long
    });
    let (answerer, stop) = spawn_answerer(listener);
    sleep_ms(50);
    // If the supervisor still runs, it and the answerer race for each
    // notification: try a few times.
    let mut rc = -1;
    for _ in 0..20 {
        rc = openat(
            forbidden,
            libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND,
            0o644,
        );
        if rc >= 0 {
            write_fd(rc, b"taken over\n");
            close(rc);
            break;
        }
        sleep_ms(20);
    }
    say("forbidden write", rc);
    unsafe { libc::close(stop) };
    wait_status(answerer);
    unsafe { libc::kill(sup, libc::SIGCONT) };
}

// ---- the subcommands -----------------------------------------------------

/// Runs one subcommand; `args[0]` is its name.
fn run(args: &[String]) {
    let a = |i: usize| args.get(i).cloned().unwrap_or_default();
    let port = |i: usize| -> u16 { a(i).parse().expect("a port") };
    match a(0).as_str() {
        // -- legitimate actions (learned), and the notified calls of class 0 --
        "connect" => {
            // TCP connect, then a line for the peer to receive.
            let fd = say("socket", tcp_socket());
            set_timeout(fd, 2);
            let sa = inet(&a(1), port(2));
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_connect,
                    fd,
                    &sa as *const libc::sockaddr_in,
                    std::mem::size_of::<libc::sockaddr_in>(),
                )
            };
            if say("connect", rc) == 0 {
                write_fd(fd, b"hello\n");
            }
            close(fd);
        }
        "bind" => {
            let fd = say("socket", tcp_socket());
            let sa = inet("127.0.0.1", port(1));
            say("bind", unsafe {
                libc::syscall(
                    libc::SYS_bind,
                    fd,
                    &sa as *const libc::sockaddr_in,
                    std::mem::size_of::<libc::sockaddr_in>(),
                )
            });
            close(fd);
        }
        "bind-listen" => {
            // bind() then listen() on the same thread: the learned way to serve.
            let fd = say("socket", tcp_socket());
            let sa = inet("127.0.0.1", port(1));
            say("bind", unsafe {
                libc::syscall(
                    libc::SYS_bind,
                    fd,
                    &sa as *const libc::sockaddr_in,
                    std::mem::size_of::<libc::sockaddr_in>(),
                )
            });
            say("listen", unsafe { libc::syscall(libc::SYS_listen, fd, 8) });
            close(fd);
        }
        "listen" => {
            // listen() on an unbound socket: the kernel picks a port (autobind),
            // so listen is judged on its own, with no bind() before it.
            let fd = say("socket", tcp_socket());
            let rc = say("listen", unsafe { libc::syscall(libc::SYS_listen, fd, 8) });
            if rc == 0 {
                let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::sockaddr_in>() as u32;
                unsafe {
                    libc::getsockname(
                        fd as i32,
                        (&mut sa as *mut libc::sockaddr_in).cast(),
                        &mut len,
                    )
                };
                println!("listening port={}", u16::from_be(sa.sin_port));
            }
            close(fd);
        }
        "socket" => {
            let (f, t, p): (i32, i32, i32) = (
                a(1).parse().unwrap(),
                a(2).parse().unwrap(),
                a(3).parse().unwrap(),
            );
            close(say("socket", unsafe {
                libc::syscall(libc::SYS_socket, f, t, p)
            }));
        }
        "write" => {
            let fd = say(
                "write",
                openat(
                    &a(1),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND,
                    0o644,
                ),
            );
            write_fd(fd, b"x\n");
            close(fd);
        }
        "unlink" => {
            let p = cs(&a(1));
            say("unlink", unsafe {
                libc::syscall(libc::SYS_unlink, p.as_ptr())
            });
        }
        "rename" => {
            let (o, n) = (cs(&a(1)), cs(&a(2)));
            say("rename", unsafe {
                libc::syscall(libc::SYS_rename, o.as_ptr(), n.as_ptr())
            });
        }
        "chmod" => {
            let p = cs(&a(1));
            let mode = u32::from_str_radix(&a(2), 8).expect("an octal mode");
            say("chmod", unsafe {
                libc::syscall(libc::SYS_chmod, p.as_ptr(), mode)
            });
        }
        "exec" => {
            let owned: Vec<CString> = args[1..].iter().map(|s| cs(s)).collect();
            let mut argv: Vec<*const c_char> = owned.iter().map(|s| s.as_ptr()).collect();
            argv.push(std::ptr::null());
            say("exec", exec(owned[0].as_ptr(), &argv));
        }
        "sleep" => sleep_ms(a(1).parse().unwrap()),
        "undumpable" => {
            // Class 6: a task the supervisor cannot read (no ptrace rights
            // over a non-dumpable task): every call it makes must then be an
            // internal-error event, not a silent pass.
            say("undumpable", unsafe {
                libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) as libc::c_long
            });
        }

        // -- class 1: nfguard's own handles --
        "whoami" => {
            // For the tests: which pids an event about this attack may name.
            println!(
                "who self={} keeper={} supervisor={}",
                std::process::id(),
                keeper(),
                supervisor()
            );
        }
        "steal-listener" => {
            // The keeper holds the seccomp listener and is our parent with our
            // uid; the supervisor holds a copy. pidfd_getfd needs only ptrace
            // rights (same uid, dumpable), and is not notified. With the
            // listener, stop the supervisor and answer our own calls with
            // CONTINUE: the model no longer applies, and nothing is logged.
            // The /proc/<pid>/fd variants try reopening it instead.
            let (who, how) = a(1)
                .split_once('-')
                .map(|(w, h)| (w.to_string(), h.to_string()))
                .unwrap_or_default();
            let pid = target(&who);
            let mut listener = -1;
            let candidates: Vec<i32> = {
                let listed: Vec<i32> = fd_links(pid)
                    .into_iter()
                    .filter(|(_, l)| l.contains("seccomp"))
                    .map(|(n, _)| n)
                    .collect();
                // /proc/<pid>/fd unreadable: try fd numbers blindly.
                if listed.is_empty() {
                    (0..64).collect()
                } else {
                    listed
                }
            };
            if how == "getfd" {
                let pidfd = say(&format!("pidfd_open {who}"), unsafe {
                    libc::syscall(libc::SYS_pidfd_open, pid, 0)
                });
                let mut last = 0;
                for n in candidates {
                    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, n, 0) };
                    if fd < 0 {
                        last = errno();
                        continue;
                    }
                    if link_of_own_fd(fd).contains("seccomp") {
                        listener = fd;
                        break;
                    }
                    close(fd);
                }
                if listener >= 0 {
                    println!("pidfd_getfd {who} ok");
                } else {
                    println!("pidfd_getfd {who} errno={last}");
                }
            } else {
                let mut last = 0;
                for n in candidates {
                    let fd = openat(&format!("/proc/{pid}/fd/{n}"), libc::O_RDONLY, 0);
                    if fd < 0 {
                        last = errno();
                        continue;
                    }
                    if link_of_own_fd(fd).contains("seccomp") {
                        listener = fd;
                        break;
                    }
                    close(fd);
                }
                if listener >= 0 {
                    println!("reopen {who} ok");
                } else {
                    println!("reopen {who} errno={last}");
                }
            }
            if listener >= 0 {
                takeover(listener, &a(2));
            } else {
                run(&["write".into(), a(2)]);
            }
        }
        "rewrite-file" => {
            // Truncate and forge a file of nfguard's (the events file, the
            // model) through every door: a plain open, the supervisor's own fd
            // (pidfd_getfd, or /proc/<supervisor>/fd/N), its cwd, and our own
            // read-only fd reopened for write through /proc/self/fd or /dev/fd.
            let (how, path) = (a(1), a(2));
            let forged = b"{\"forged\":true}\n";
            let sup = supervisor();
            let sup_fd = || {
                let want = std::fs::canonicalize(&path)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| path.clone());
                fd_links(sup)
                    .into_iter()
                    .find(|(_, l)| *l == want)
                    .map(|(n, _)| n)
            };
            let trunc = libc::O_WRONLY | libc::O_TRUNC;
            let fd = match how.as_str() {
                "direct" => openat(&path, trunc, 0),
                "supervisor-getfd" => {
                    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, sup, 0) };
                    match sup_fd() {
                        Some(n) => {
                            let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, n, 0) };
                            if fd >= 0 {
                                unsafe { libc::ftruncate(fd as i32, 0) };
                            }
                            fd
                        }
                        None => {
                            // Unlisted: try the first fds blindly, as an attacker would.
                            (0..16)
                                .map(|n| unsafe {
                                    libc::syscall(libc::SYS_pidfd_getfd, pidfd, n, 0)
                                })
                                .find(|fd| *fd >= 0 && link_of_own_fd(*fd).ends_with(&path))
                                .unwrap_or(-1)
                        }
                    }
                }
                // A supervisor that is not dumpable hides its fd list: the
                // attacker then guesses (its events file is an early fd).
                "supervisor-procfd" => match sup_fd() {
                    Some(n) => openat(&format!("/proc/{sup}/fd/{n}"), trunc, 0),
                    None => openat(&format!("/proc/{sup}/fd/3"), trunc, 0),
                },
                "supervisor-cwd" => {
                    let name = path.rsplit('/').next().unwrap_or_default();
                    openat(&format!("/proc/{sup}/cwd/{name}"), trunc, 0)
                }
                "self-procfd" | "dev-fd" => {
                    let ro = openat(&path, libc::O_RDONLY, 0);
                    let dir = if how == "dev-fd" {
                        "/dev/fd"
                    } else {
                        "/proc/self/fd"
                    };
                    openat(&format!("{dir}/{ro}"), trunc, 0)
                }
                other => panic!("rewrite-file: unknown way {other}"),
            };
            if say(&format!("rewrite {how}"), fd) >= 0 {
                write_fd(fd, forged);
                close(fd);
            }
        }
        "memory" => {
            // Read and write the keeper's and the supervisor's memory, and
            // attach to them. Writes put back 8 zero bytes at the very end
            // of the stack mapping (below the end marker: always zero), so a
            // successful write changes nothing but proves it could.
            let how = a(1);
            for who in ["keeper", "supervisor"] {
                let pid = target(who);
                let addr = std::fs::read_to_string(format!("/proc/{pid}/maps"))
                    .ok()
                    .and_then(|m| {
                        let line = m.lines().find(|l| l.ends_with("[stack]"))?.to_string();
                        let end = line.split(['-', ' ']).nth(1)?.to_string();
                        u64::from_str_radix(&end, 16).ok()
                    })
                    .map(|end| end - 8)
                    // Maps unreadable: an unmapped address, so the errno shows
                    // whether we were refused (EPERM) or merely missed (EFAULT).
                    .unwrap_or(0x1000);
                let mut buf = [0u8; 8];
                let local = libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: 8,
                };
                let remote = libc::iovec {
                    iov_base: addr as *mut libc::c_void,
                    iov_len: 8,
                };
                let what = format!("{how} {who}");
                match how.as_str() {
                    "vm-readv" => say(&what, unsafe {
                        libc::syscall(libc::SYS_process_vm_readv, pid, &local, 1, &remote, 1, 0)
                    }),
                    "vm-writev" => say(&what, unsafe {
                        libc::syscall(libc::SYS_process_vm_writev, pid, &local, 1, &remote, 1, 0)
                    }),
                    "mem-read" | "mem-write" => {
                        let flags = if how == "mem-read" {
                            libc::O_RDONLY
                        } else {
                            libc::O_RDWR
                        };
                        let fd = openat(&format!("/proc/{pid}/mem"), flags, 0);
                        if fd < 0 {
                            say(&what, fd)
                        } else {
                            let rc = unsafe {
                                if how == "mem-read" {
                                    libc::pread(fd as i32, buf.as_mut_ptr().cast(), 8, addr as i64)
                                } else {
                                    libc::pwrite(fd as i32, buf.as_ptr().cast(), 8, addr as i64)
                                }
                            };
                            close(fd);
                            say(&what, rc as libc::c_long)
                        }
                    }
                    "ptrace" => {
                        // PTRACE_SEIZE does not stop the tracee; our exit detaches.
                        say(&what, unsafe {
                            libc::syscall(libc::SYS_ptrace, libc::PTRACE_SEIZE, pid, 0, 0)
                        })
                    }
                    other => panic!("memory: unknown way {other}"),
                };
            }
        }
        "signal" => {
            // Signals reach every process of our uid: stop or kill the
            // supervisor or the keeper, everyone (-1) or our process group (0:
            // `nfguard run` does not give the workload a group of its own).
            let (who, sig): (String, i32) = (a(1), a(2).parse().unwrap());
            let pid = match who.as_str() {
                "all" => -1,
                "group" => 0,
                "child" => {
                    // The legitimate use: signalling our own child.
                    let c = unsafe { libc::fork() };
                    if c == 0 {
                        unsafe { libc::pause() };
                        unsafe { libc::_exit(0) };
                    }
                    c
                }
                other => target(other),
            };
            let watched = if pid > 0 { pid } else { supervisor() };
            say(&format!("kill {who}"), unsafe {
                libc::kill(pid, sig) as libc::c_long
            });
            sleep_ms(150);
            println!("{who} state={}", state_of(watched));
            if who == "child" {
                wait_status(pid);
            } else if sig == libc::SIGSTOP {
                // Let the run finish (an attacker would leave it stopped).
                unsafe { libc::kill(watched, libc::SIGCONT) };
            }
        }

        // -- class 2: exec proof races --
        "race-shm" => {
            // The proof "single-threaded and no process shares its mm" misses a
            // MAP_SHARED page: a forked writer shares the page, not the mm.
            let (ok, bad, n, secs) = race_args(args);
            let (page, writer) = shared_flipper(&ok, &bad);
            let mut t = Tally::default();
            let deadline = Instant::now() + Duration::from_secs(secs);
            while t.attempts < n && Instant::now() < deadline {
                let c = unsafe { libc::fork() };
                if c == 0 {
                    let argv = [page as *const c_char, std::ptr::null()];
                    exec(page as *const c_char, &argv);
                    unsafe { libc::_exit(100 + errno().min(100)) };
                }
                t.add(wait_status(c));
            }
            unsafe { libc::kill(writer, libc::SIGKILL) };
            wait_status(writer);
            t.print("race-shm");
        }
        "exec-as-option" => {
            // A learned script exec'd under a name that begins with '-' (a
            // link in DIR): the kernel writes `INTERP NAME ARGS`, and the
            // interpreter takes NAME for an option (`sh -c ARGS`).
            let (dir, name) = (cs(&a(1)), cs(&a(2)));
            unsafe { libc::chdir(dir.as_ptr()) };
            let text = cs("echo FORBIDDEN-RAN pid=$$; exit 42");
            let argv = [name.as_ptr(), text.as_ptr(), std::ptr::null()];
            say("exec-as-option", exec(name.as_ptr(), &argv));
        }
        "join-group" => {
            // Into the keeper's process group: from there, kill(0) and
            // setpriority(PRIO_PGRP, 0) reach nfguard's processes, and a
            // thread that joins and leaves it races the check of those calls.
            let group = unsafe { libc::getpgid(libc::getppid()) };
            say("join-group", unsafe {
                libc::syscall(libc::SYS_setpgid, 0, group)
            });
            let now = unsafe { libc::getpgid(0) };
            println!("join-group in-keepers-group={}", u8::from(now == group));
        }
        "race-script" => {
            // A learned script and, under a path of the same length, its
            // interpreter: the race makes the kernel load the interpreter
            // directly, with an argv of ours that puts the script's path
            // where the kernel would (`sh -s SCRIPT`), so the interpreter
            // reads its commands from our stdin instead.
            let (script, interp, n, secs) = race_args(args);
            let (page, writer) = shared_flipper(&script, &interp);
            let (sh, dash_s, path) = (cs("sh"), cs("-s"), cs(&script));
            let mut t = Tally::default();
            let deadline = Instant::now() + Duration::from_secs(secs);
            while t.attempts < n && Instant::now() < deadline {
                let mut fds = [0i32; 2];
                unsafe { libc::pipe(fds.as_mut_ptr()) };
                let cmd = b"echo FORBIDDEN-RAN pid=$$; exit 42\n";
                unsafe { libc::write(fds[1], cmd.as_ptr().cast(), cmd.len()) };
                unsafe { libc::close(fds[1]) };
                let c = unsafe { libc::fork() };
                if c == 0 {
                    unsafe { libc::dup2(fds[0], 0) };
                    let argv = [
                        sh.as_ptr(),
                        dash_s.as_ptr(),
                        path.as_ptr(),
                        std::ptr::null(),
                    ];
                    exec(page as *const c_char, &argv);
                    unsafe { libc::_exit(100 + errno().min(100)) };
                }
                unsafe { libc::close(fds[0]) };
                t.add(wait_status(c));
            }
            unsafe { libc::kill(writer, libc::SIGKILL) };
            wait_status(writer);
            t.print("race-script");
        }
        "race-untraced" => {
            // The same race from children made with CLONE_UNTRACED: the
            // keeper's tracing options do not follow them, so no exec stop
            // ever checks what the kernel loaded after the seccomp check.
            let (ok, bad, n, secs) = race_args(args);
            let (page, writer) = shared_flipper(&ok, &bad);
            let mut t = Tally::default();
            let deadline = Instant::now() + Duration::from_secs(secs);
            let flags = (libc::CLONE_UNTRACED | libc::SIGCHLD) as u64;
            while t.attempts < n && Instant::now() < deadline {
                let c = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
                if c < 0 {
                    println!("race-untraced clone errno={}", errno());
                    break;
                }
                if c == 0 {
                    let argv = [page as *const c_char, std::ptr::null()];
                    exec(page as *const c_char, &argv);
                    unsafe { libc::_exit(100 + errno().min(100)) };
                }
                t.add(wait_status(c as i32));
            }
            unsafe { libc::kill(writer, libc::SIGKILL) };
            wait_status(writer);
            t.print("race-untraced");
        }
        "race-cwd" => {
            // A relative path is resolved against the cwd, which a CLONE_FS
            // sibling shares and changes: the supervisor reads the cwd, then
            // the kernel resolves against another one.
            let (dir_a, dir_b, name): (String, String, String) = (a(1), a(2), a(3));
            let n: u32 = a(4).parse().unwrap();
            let secs: u64 = a(5).parse().unwrap();
            let (ca, cb, cname) = (cs(&dir_a), cs(&dir_b), cs(&name));
            unsafe { libc::chdir(ca.as_ptr()) };
            // The sibling and every exec'ing child share one fs_struct.
            let sib = unsafe {
                libc::syscall(libc::SYS_clone, libc::CLONE_FS | libc::SIGCHLD, 0, 0, 0, 0)
            };
            if sib == 0 {
                loop {
                    unsafe {
                        libc::chdir(cb.as_ptr());
                        libc::chdir(ca.as_ptr());
                    }
                }
            }
            let mut t = Tally::default();
            let deadline = Instant::now() + Duration::from_secs(secs);
            while t.attempts < n && Instant::now() < deadline {
                let c = unsafe {
                    libc::syscall(libc::SYS_clone, libc::CLONE_FS | libc::SIGCHLD, 0, 0, 0, 0)
                };
                if c == 0 {
                    let argv = [cname.as_ptr(), std::ptr::null()];
                    exec(cname.as_ptr(), &argv);
                    unsafe { libc::_exit(100 + errno().min(100)) };
                }
                t.add(wait_status(c as i32));
            }
            unsafe { libc::kill(sib as i32, libc::SIGKILL) };
            wait_status(sib as i32);
            t.print("race-cwd");
        }
        "race-clone-vm" => {
            // A CLONE_VM process P shares our memory; P starts a thread T and
            // its leader exits. P's /proc entry is a zombie with no mm (kcmp
            // says "not shared"), and T is listed only under /proc/P/task.
            // T rewrites the path while we exec.
            let (ok, bad, n, secs) = race_args(args);
            let mut t = Tally::default();
            let deadline = Instant::now() + Duration::from_secs(secs);
            while t.attempts < n && Instant::now() < deadline {
                let mut p = [0i32; 2];
                unsafe { libc::pipe(p.as_mut_ptr()) };
                let c = unsafe { libc::fork() };
                if c == 0 {
                    clone_vm_victim(&ok, &bad, p[1]);
                }
                unsafe { libc::close(p[1]) };
                let mut pid_bytes = [0u8; 4];
                let got = unsafe { libc::read(p[0], pid_bytes.as_mut_ptr().cast(), 4) };
                unsafe { libc::close(p[0]) };
                t.add(wait_status(c));
                if got == 4 {
                    // Kills T (the whole thread group of P).
                    unsafe { libc::kill(i32::from_ne_bytes(pid_bytes), libc::SIGKILL) };
                }
            }
            t.print("race-clone-vm");
        }
        "spawn-threaded" => {
            // A multi-threaded program starting a learned program the way
            // glibc's posix_spawn does (a CLONE_VM|CLONE_VFORK child execs):
            // legitimate, and refused today in enforce mode.
            let _busy = std::thread::spawn(|| sleep_ms(3000));
            let prog = cs(&a(1));
            let argv = [prog.as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null::<c_char>()];
            let mut pid = 0;
            let rc = unsafe {
                libc::posix_spawn(
                    &mut pid,
                    prog.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    argv.as_ptr() as *const *mut c_char,
                    envp.as_ptr() as *const *mut c_char,
                )
            };
            if rc != 0 {
                println!("spawn-threaded errno={rc}");
            } else {
                let st = wait_status(pid);
                println!("spawn-threaded ok status={}", libc::WEXITSTATUS(st));
            }
        }

        // -- class 3: namespaces and mounts --
        "userns-exec" | "userns-write" => {
            // In a user namespace of our own we hold CAP_SYS_ADMIN over a copy
            // of the mount table: bind-mount another file over a learned path.
            // The supervisor resolves the path in our namespace, finds the
            // learned name, and the kernel runs (or writes) the other file.
            say("unshare", unsafe {
                libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER | libc::CLONE_NEWNS)
            });
            mount_over_then(&a(0), &a(1), &a(2));
        }
        "clone3-exec" | "clone-exec" => {
            // The same from a child created in new namespaces: clone3's flags
            // are in memory the BPF program cannot read; clone's are a register.
            let flags = (libc::CLONE_NEWUSER | libc::CLONE_NEWNS) as u64;
            let c = if a(0) == "clone3-exec" {
                let mut ca = [0u64; 11]; // struct clone_args, CLONE_ARGS_SIZE_VER2
                ca[0] = flags;
                ca[4] = libc::SIGCHLD as u64; // exit_signal
                unsafe {
                    libc::syscall(
                        libc::SYS_clone3,
                        ca.as_mut_ptr(),
                        std::mem::size_of_val(&ca),
                    )
                }
            } else {
                unsafe { libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD as u64, 0, 0, 0, 0) }
            };
            if c == 0 {
                mount_over_then("userns-exec", &a(1), &a(2));
                unsafe { libc::_exit(1) };
            }
            if say(&a(0), c) > 0 {
                wait_status(c as i32);
            }
        }

        // -- class 4: every way to change the filesystem --
        "link" | "linkat" => {
            // A second name for a file: neither call is notified, so the new
            // name appears with no event (and a learned unlink of the first
            // name completes a move the model never saw).
            let (src, dst) = (cs(&a(1)), cs(&a(2)));
            say(&a(0), unsafe {
                if a(0) == "link" {
                    libc::syscall(libc::SYS_link, src.as_ptr(), dst.as_ptr())
                } else {
                    libc::syscall(
                        libc::SYS_linkat,
                        libc::AT_FDCWD,
                        src.as_ptr(),
                        libc::AT_FDCWD,
                        dst.as_ptr(),
                        0,
                    )
                }
            });
        }
        "symlink" | "symlinkat" => {
            // A new name that leads anywhere (a learned path turned into a
            // pointer to another file or socket): not notified.
            let (target, path) = (cs(&a(1)), cs(&a(2)));
            say(&a(0), unsafe {
                if a(0) == "symlink" {
                    libc::syscall(libc::SYS_symlink, target.as_ptr(), path.as_ptr())
                } else {
                    libc::syscall(
                        libc::SYS_symlinkat,
                        target.as_ptr(),
                        libc::AT_FDCWD,
                        path.as_ptr(),
                    )
                }
            });
        }
        "mkdir" | "mkdirat" => {
            // Directories appear with no event (glibc's mkdir is mkdir(2)).
            let p = cs(&a(1));
            say(&a(0), unsafe {
                if a(0) == "mkdir" {
                    libc::syscall(libc::SYS_mkdir, p.as_ptr(), 0o755)
                } else {
                    libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, p.as_ptr(), 0o755)
                }
            });
        }
        "mknod" | "mknodat" => {
            // A FIFO, with no event: mkfifo(3) is mknodat(2) in glibc.
            let p = cs(&a(1));
            let mode = libc::S_IFIFO | 0o644;
            say(&a(0), unsafe {
                if a(0) == "mknod" {
                    libc::syscall(libc::SYS_mknod, p.as_ptr(), mode, 0)
                } else {
                    libc::syscall(libc::SYS_mknodat, libc::AT_FDCWD, p.as_ptr(), mode, 0)
                }
            });
        }
        "rmdir" => {
            // unlinkat(AT_REMOVEDIR) is notified; rmdir(2) is another syscall.
            let p = cs(&a(1));
            say("rmdir", unsafe {
                libc::syscall(libc::SYS_rmdir, p.as_ptr())
            });
        }
        "setxattr-acl" => {
            // chmod +x without chmod: an access ACL equivalent to mode 0755
            // sets the mode bits (posix_acl_update_mode) and stores nothing.
            let p = cs(&a(1));
            let mut acl: Vec<u8> = 2u32.to_le_bytes().to_vec(); // POSIX_ACL_XATTR_VERSION
            for (tag, perm) in [(0x01u16, 7u16), (0x04, 5), (0x20, 5)] {
                // ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER; id ACL_UNDEFINED_ID
                acl.extend_from_slice(&tag.to_le_bytes());
                acl.extend_from_slice(&perm.to_le_bytes());
                acl.extend_from_slice(&u32::MAX.to_le_bytes());
            }
            let name = cs("system.posix_acl_access");
            say("setxattr", unsafe {
                libc::syscall(
                    libc::SYS_setxattr,
                    p.as_ptr(),
                    name.as_ptr(),
                    acl.as_ptr(),
                    acl.len(),
                    0,
                )
            });
        }
        "open-by-handle" => {
            // A file opened for write by handle: no path to judge.
            let path = a(1);
            let mut fh = vec![0u8; 8 + 128]; // struct file_handle, MAX_HANDLE_SZ
            fh[..4].copy_from_slice(&128u32.to_ne_bytes());
            let mut mount_id = 0i32;
            let p = cs(&path);
            say("name_to_handle_at", unsafe {
                libc::syscall(
                    libc::SYS_name_to_handle_at,
                    libc::AT_FDCWD,
                    p.as_ptr(),
                    fh.as_mut_ptr(),
                    &mut mount_id,
                    0,
                )
            });
            let dir = path
                .rsplit_once('/')
                .map(|(d, _)| d.to_string())
                .unwrap_or(".".into());
            let mfd = openat(&dir, libc::O_RDONLY | libc::O_DIRECTORY, 0);
            let fd = say("open_by_handle_at", unsafe {
                libc::syscall(
                    libc::SYS_open_by_handle_at,
                    mfd,
                    fh.as_ptr(),
                    libc::O_WRONLY | libc::O_APPEND,
                )
            });
            write_fd(fd, b"by handle\n");
            close(fd);
        }
        "reopen-self-fd" | "reopen-dev-fd" => {
            // A read-only open stays in the kernel; reopening our own fd for
            // write through the magic link is notified, but which file is it?
            let ro = say("open read-only", openat(&a(1), libc::O_RDONLY, 0));
            let dir = if a(0) == "reopen-dev-fd" {
                "/dev/fd"
            } else {
                "/proc/self/fd"
            };
            let fd = say(
                &a(0),
                openat(&format!("{dir}/{ro}"), libc::O_WRONLY | libc::O_APPEND, 0),
            );
            write_fd(fd, b"reopened\n");
            close(fd);
        }
        "tmpfile-link" => {
            // An unnamed file in an allowed directory, then a name anywhere
            // on that filesystem: linkat is not notified.
            let fd = say(
                "tmpfile",
                openat(&a(1), libc::O_TMPFILE | libc::O_WRONLY, 0o644),
            );
            write_fd(fd, b"from a tmpfile\n");
            let (src, dst) = (cs(&format!("/proc/self/fd/{fd}")), cs(&a(2)));
            say("linkat", unsafe {
                libc::syscall(
                    libc::SYS_linkat,
                    libc::AT_FDCWD,
                    src.as_ptr(),
                    libc::AT_FDCWD,
                    dst.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            });
            close(fd);
        }
        "oom-score-adj" => {
            // A learned write to /proc/self/...: whose /proc/self?
            let fd = say(
                "open oom_score_adj",
                openat("/proc/self/oom_score_adj", libc::O_WRONLY, 0),
            );
            say("write oom_score_adj", write_fd(fd, a(1).as_bytes()));
            close(fd);
            let read = |p: &str| {
                std::fs::read_to_string(p)
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default()
            };
            println!(
                "oom own={} supervisor={}",
                read("/proc/self/oom_score_adj"),
                read(&format!("/proc/{}/oom_score_adj", supervisor()))
            );
        }
        "rewrite-exec" => {
            // Rewrite a learned script (a learned write) and run it at once:
            // drift, unless the rewrite falls in the second the workload started.
            let fd = say("rewrite", openat(&a(1), libc::O_WRONLY | libc::O_TRUNC, 0));
            write_fd(fd, format!("#!/bin/sh\necho {}\n", a(2)).as_bytes());
            close(fd);
            run(&["exec".into(), a(1)]);
        }

        // -- class 5: network without connect() --
        "fastopen" => {
            // TCP Fast Open: sendto/sendmsg with MSG_FASTOPEN and a destination
            // opens the connection and carries the data; no connect() at all.
            let fd = say("socket", tcp_socket());
            set_timeout(fd, 2);
            let sa = inet(&a(2), port(3));
            let data = b"FASTOPEN-DATA\n";
            let salen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            let rc = if a(1) == "sendto" {
                unsafe {
                    libc::syscall(
                        libc::SYS_sendto,
                        fd,
                        data.as_ptr(),
                        data.len(),
                        libc::MSG_FASTOPEN,
                        &sa as *const libc::sockaddr_in,
                        salen,
                    )
                }
            } else {
                let mut iov = libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                };
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_name = (&sa as *const libc::sockaddr_in) as *mut libc::c_void;
                msg.msg_namelen = salen;
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                if a(1) == "sendmmsg" {
                    // One mmsghdr: struct msghdr then the count sent.
                    let mut mm: libc::mmsghdr = unsafe { std::mem::zeroed() };
                    mm.msg_hdr = msg;
                    unsafe { libc::syscall(libc::SYS_sendmmsg, fd, &mut mm, 1, libc::MSG_FASTOPEN) }
                } else {
                    unsafe { libc::syscall(libc::SYS_sendmsg, fd, &msg, libc::MSG_FASTOPEN) }
                }
            };
            say(&format!("fastopen {}", a(1)), rc);
            sleep_ms(100);
            close(fd);
        }
        "unix-connect" => {
            let fd = say("socket", unsafe {
                libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0)
            });
            let (sa, len) = unix_addr(&a(1));
            let rc = say("unix-connect", unsafe {
                libc::syscall(libc::SYS_connect, fd, &sa as *const libc::sockaddr_un, len)
            });
            if rc == 0 {
                write_fd(fd, b"hello\n");
            }
            close(fd);
        }

        // -- class 6: silent outcomes --
        "starve-fds" => {
            // RLIMIT_NOFILE of a process of our uid is ours to lower
            // (prlimit needs no capability for that): at 0 the supervisor
            // cannot open anything, so every inspection fails on its side.
            let sup = supervisor();
            let mut old: libc::rlimit64 = unsafe { std::mem::zeroed() };
            let new = libc::rlimit64 {
                rlim_cur: 0,
                rlim_max: libc::RLIM64_INFINITY,
            };
            unsafe {
                libc::syscall(
                    libc::SYS_prlimit64,
                    sup,
                    libc::RLIMIT_NOFILE,
                    std::ptr::null::<libc::rlimit64>(),
                    &mut old,
                )
            };
            let new = libc::rlimit64 {
                rlim_max: old.rlim_max,
                ..new
            };
            say("prlimit supervisor", unsafe {
                libc::syscall(
                    libc::SYS_prlimit64,
                    sup,
                    libc::RLIMIT_NOFILE,
                    &new,
                    std::ptr::null_mut::<libc::rlimit64>(),
                )
            });
            // Put the limit back after 1.5 s, from a thread (our own call may
            // not be answered before): a starved supervisor logs each failed
            // accept in a busy loop, and the test's stderr file must stay small.
            std::thread::spawn(move || {
                sleep_ms(1500);
                unsafe {
                    libc::syscall(
                        libc::SYS_prlimit64,
                        sup,
                        libc::RLIMIT_NOFILE,
                        &old,
                        std::ptr::null_mut::<libc::rlimit64>(),
                    )
                };
            });
            // Two calls: the first meets the starved inspection, the second
            // a listener thread that may have given up meanwhile.
            for (n, what) in ["first", "second"].iter().enumerate() {
                let started = Instant::now();
                run(&["write".into(), format!("{}{}", a(1), n + 1)]);
                println!("{what} took={}ms", started.elapsed().as_millis());
                sleep_ms(100);
            }
        }

        // -- class 7: nothing left unsupervised --
        "linger" => {
            // A descendant that outlives the command `nfguard run` started
            // (optionally in a session of its own, out of the process group).
            if a(2) == "setsid" {
                say("setsid", unsafe { libc::setsid() as libc::c_long });
            }
            println!("linger pid={}", std::process::id());
            sleep_ms(a(1).parse::<u64>().unwrap() * 1000);
            println!("linger done");
        }

        // -- the second pass (review1): doors the hardened supervisor misses --
        "pidfd-signal" => {
            // pidfd_send_signal(SIG) through a door the check does not know:
            // - `thread`: a thread pidfd (PIDFD_THREAD, linux 6.9) of one of
            //   the supervisor's threads: its fdinfo names the thread's id,
            //   which is no pid of nfguard's, and a fatal signal to a thread
            //   kills its whole process;
            // - `procdir`: an fd of the directory /proc/<supervisor>, which
            //   pidfd_send_signal takes as a pidfd (it has no fdinfo `Pid:`);
            // - `group`: PIDFD_SIGNAL_PROCESS_GROUP (linux 6.9) on a pidfd of
            //   the leader of the supervisor's process group when that leader
            //   is not nfguard (a shell that started `nfguard run`); sent from
            //   a child in a group of its own, which survives to tell;
            // - a pid: a plain pidfd of that process.
            let (how, sig): (String, i32) = (a(1), a(2).parse().unwrap());
            let sup = supervisor();
            let send = |fd: libc::c_long, flags: u32| unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd,
                    sig,
                    std::ptr::null::<libc::siginfo_t>(),
                    flags,
                )
            };
            match how.as_str() {
                "thread" => {
                    let tid = supervisor_threads().into_iter().next().unwrap_or(sup);
                    println!("supervisor thread={tid}");
                    // PIDFD_THREAD is O_EXCL.
                    let fd = say("pidfd_open thread", unsafe {
                        libc::syscall(libc::SYS_pidfd_open, tid, libc::O_EXCL)
                    });
                    say("pidfd_send_signal thread", send(fd, 0));
                }
                "procdir" => {
                    let fd = say(
                        "open /proc/supervisor",
                        openat(
                            &format!("/proc/{sup}"),
                            libc::O_RDONLY | libc::O_DIRECTORY,
                            0,
                        ),
                    );
                    say("pidfd_send_signal procdir", send(fd, 0));
                }
                "group" => {
                    let leader = ppid_of(sup);
                    println!("group leader={leader}");
                    let c = unsafe { libc::fork() };
                    if c == 0 {
                        unsafe { libc::setpgid(0, 0) };
                        let fd = say("pidfd_open leader", unsafe {
                            libc::syscall(libc::SYS_pidfd_open, leader, 0)
                        });
                        // PIDFD_SIGNAL_PROCESS_GROUP.
                        say("pidfd_send_signal group", send(fd, 1 << 2));
                        sleep_ms(150);
                        println!("supervisor state={}", state_of(sup));
                        unsafe { libc::_exit(0) };
                    }
                    wait_status(c);
                }
                pid => {
                    let pid: i32 = pid.parse().expect("thread, procdir, group or a pid");
                    let fd = say("pidfd_open", unsafe {
                        libc::syscall(libc::SYS_pidfd_open, pid, 0)
                    });
                    say("pidfd_send_signal", send(fd, 0));
                }
            }
            sleep_ms(150);
            println!("supervisor state={}", state_of(sup));
        }
        "sigio-owner" => {
            // Who gets an fd's SIGIO, with F_SETSIG any signal, SIGKILL
            // included: owner set with F_SETOWN (a register), F_SETOWN_EX
            // or FIOSETOWN (in memory: the supervisor makes these calls on
            // its copy, and the kernel records the caller's credentials
            // as the owner's, which decide whom the signal may reach).
            let (how, who, sig): (String, String, i32) = (a(1), a(2), a(3).parse().unwrap());
            let pid = target(&who);
            let mut sv = [0i32; 2];
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) };
            let fd = sv[0];
            let rc = match how.as_str() {
                "setown" => unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_SETOWN, pid) },
                "setown-ex" => {
                    // struct f_owner_ex { int type; pid_t pid; }, F_OWNER_PID = 1.
                    let ex: [i32; 2] = [1, pid];
                    unsafe {
                        libc::syscall(
                            libc::SYS_fcntl,
                            fd,
                            nfguard_policy_f_setown_ex(),
                            ex.as_ptr(),
                        )
                    }
                }
                "fiosetown" => unsafe {
                    libc::syscall(libc::SYS_ioctl, fd, 0x8901, &pid as *const i32)
                },
                other => panic!("sigio-owner: unknown way {other}"),
            };
            say(&format!("{how} {who}"), rc);
            unsafe {
                // F_SETSIG (10), which libc does not name on this target.
                libc::fcntl(fd, 10, sig);
                let fl = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, fl | libc::O_ASYNC);
            }
            // Data arriving on fd raises its SIGIO.
            write_fd(sv[1] as libc::c_long, b"x");
            sleep_ms(200);
            println!("{who} state={}", state_of(pid));
        }
        "hidden" => {
            // The call's argument in memory the kernel reads in the caller's
            // context but another process cannot: a memfd_secret page (no
            // process_vm_readv, no /proc/<pid>/mem: EFAULT, EIO), or an
            // execute-only page (PROT_EXEC alone is readable to the kernel on
            // a CPU without protection keys; process_vm_readv refuses it
            // without FOLL_FORCE). The supervisor's read fails with EFAULT,
            // which it takes for the caller's own bad pointer.
            let (mem, op) = (a(1), a(2));
            let place = |bytes: &[u8]| -> *const u8 { hidden_copy(&mem, bytes) };
            let what = format!("hidden {mem} {op}");
            match op.as_str() {
                "write" => {
                    let mut p = a(3).into_bytes();
                    p.push(0);
                    let at = place(&p);
                    let fd = say(&what, unsafe {
                        libc::syscall(
                            libc::SYS_openat,
                            libc::AT_FDCWD,
                            at,
                            libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND,
                            0o644,
                        )
                    });
                    write_fd(fd, b"hidden write\n");
                    close(fd);
                }
                "connect" => {
                    let fd = tcp_socket();
                    set_timeout(fd, 2);
                    let sa = inet(&a(3), port(4));
                    let bytes = unsafe {
                        std::slice::from_raw_parts(
                            (&sa as *const libc::sockaddr_in).cast::<u8>(),
                            std::mem::size_of::<libc::sockaddr_in>(),
                        )
                    };
                    let at = place(bytes);
                    let rc = say(&what, unsafe {
                        libc::syscall(libc::SYS_connect, fd, at, bytes.len())
                    });
                    if rc == 0 {
                        write_fd(fd, b"hello\n");
                    }
                    close(fd);
                }
                "exec" => {
                    let mut p = a(3).into_bytes();
                    p.push(0);
                    let at = place(&p) as *const c_char;
                    let argv0 = cs(&a(3));
                    let argv = [argv0.as_ptr(), std::ptr::null()];
                    say(&what, exec(at, &argv));
                }
                other => panic!("hidden: unknown call {other}"),
            }
        }
        "nfguard-thread" => {
            // nfguard's process by one of its threads' ids: /proc/<tid> is
            // the process's /proc entry too (unlisted, but there), and
            // ptrace, process_vm_writev and pidfds take a tid.
            let sup = supervisor();
            let tid = supervisor_threads().into_iter().next().unwrap_or(sup);
            println!("supervisor thread={tid}");
            match a(1).as_str() {
                "oom" => {
                    let fd = say(
                        "open thread oom_score_adj",
                        openat(&format!("/proc/{tid}/oom_score_adj"), libc::O_WRONLY, 0),
                    );
                    say("write thread oom_score_adj", write_fd(fd, a(2).as_bytes()));
                    close(fd);
                    let now = std::fs::read_to_string(format!("/proc/{sup}/oom_score_adj"))
                        .map(|s| s.trim().to_string())
                        .unwrap_or_default();
                    println!("supervisor oom_score_adj={now}");
                }
                "ptrace" => {
                    say("ptrace seize thread", unsafe {
                        libc::syscall(libc::SYS_ptrace, libc::PTRACE_SEIZE, tid, 0, 0)
                    });
                }
                "vm-writev" => {
                    // 8 zero bytes at the very end of the stack mapping (always
                    // zero: the write changes nothing but proves it could).
                    let addr = std::fs::read_to_string(format!("/proc/{sup}/maps"))
                        .ok()
                        .and_then(|m| {
                            let line = m.lines().find(|l| l.ends_with("[stack]"))?.to_string();
                            let end = line.split(['-', ' ']).nth(1)?.to_string();
                            u64::from_str_radix(&end, 16).ok()
                        })
                        .map_or(0x1000, |end| end - 8);
                    let buf = [0u8; 8];
                    let local = libc::iovec {
                        iov_base: buf.as_ptr() as *mut libc::c_void,
                        iov_len: 8,
                    };
                    let remote = libc::iovec {
                        iov_base: addr as *mut libc::c_void,
                        iov_len: 8,
                    };
                    say("vm-writev thread", unsafe {
                        libc::syscall(libc::SYS_process_vm_writev, tid, &local, 1, &remote, 1, 0)
                    });
                }
                "procfd" => {
                    // The supervisor's fd of a file of its own (the events
                    // file), reopened for write through the thread's fd table.
                    let want = std::fs::canonicalize(a(2))
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_else(|_| a(2));
                    let n = fd_links(sup)
                        .into_iter()
                        .find(|(_, l)| *l == want)
                        .map_or(-1, |(n, _)| n);
                    let fd = say(
                        "rewrite thread procfd",
                        openat(
                            &format!("/proc/{tid}/fd/{n}"),
                            libc::O_WRONLY | libc::O_TRUNC,
                            0,
                        ),
                    );
                    write_fd(fd, b"{\"forged\":true}\n");
                    close(fd);
                }
                other => panic!("nfguard-thread: unknown way {other}"),
            }
        }
        "umask" => {
            let m = u32::from_str_radix(&a(1), 8).expect("an octal umask");
            unsafe { libc::umask(m) };
        }
        "unix-bind" => {
            // A unix stream socket bound at PATH and listening; with a
            // duration, it accepts for that long and says so (for a test
            // that connects to it).
            let fd = say("socket", unsafe {
                libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0)
            });
            let (sa, len) = unix_addr(&a(1));
            say("unix-bind", unsafe {
                libc::syscall(libc::SYS_bind, fd, &sa as *const libc::sockaddr_un, len)
            });
            say("unix-listen", unsafe {
                libc::syscall(libc::SYS_listen, fd, 8)
            });
            if let Ok(ms) = a(2).parse::<u64>() {
                println!("serving pid={}", std::process::id());
                set_timeout(fd, 1);
                let until = Instant::now() + Duration::from_millis(ms);
                while Instant::now() < until {
                    let c = unsafe {
                        libc::accept(fd as i32, std::ptr::null_mut(), std::ptr::null_mut())
                    };
                    if c >= 0 {
                        write_fd(c as libc::c_long, b"served\n");
                        close(c as libc::c_long);
                    }
                }
            }
            close(fd);
        }
        "source-route" => {
            // IP options on a UDP socket: LSRR through HOP, so every packet
            // of the socket, to a learned peer too, would go to HOP first.
            // No capability is needed. Then reads back what the socket holds.
            let fd = say("socket", unsafe {
                libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_DGRAM, 0)
            });
            let hop: std::net::Ipv4Addr = a(1).parse().expect("an IPv4 address");
            let mut opt = vec![1u8, 131, 7, 4];
            opt.extend(hop.octets());
            say("setsockopt", unsafe {
                libc::syscall(
                    libc::SYS_setsockopt,
                    fd,
                    libc::IPPROTO_IP,
                    libc::IP_OPTIONS,
                    opt.as_ptr(),
                    opt.len(),
                )
            });
            let mut back = [0u8; 40];
            let mut len: libc::socklen_t = back.len() as libc::socklen_t;
            unsafe {
                libc::getsockopt(
                    fd as i32,
                    libc::IPPROTO_IP,
                    libc::IP_OPTIONS,
                    back.as_mut_ptr().cast(),
                    &mut len,
                )
            };
            println!("source-route held={len}");
            close(fd);
        }
        "bind-addr" => {
            // A TCP listener on ADDR:PORT, for as long as it takes to bind.
            let fd = say("socket", tcp_socket());
            let sa = inet(&a(1), port(2));
            say("bind", unsafe {
                libc::syscall(
                    libc::SYS_bind,
                    fd,
                    &sa as *const libc::sockaddr_in,
                    std::mem::size_of::<libc::sockaddr_in>(),
                )
            });
            say("listen", unsafe { libc::syscall(libc::SYS_listen, fd, 8) });
            close(fd);
        }
        "unix-dgram" => {
            // A unix datagram to PATH: `connect` then send (the learned way),
            // or `sendto` with the path as destination (no connect at all).
            let fd = say("socket", unsafe {
                libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_DGRAM, 0)
            });
            let (sa, len) = unix_addr(&a(2));
            let data = b"DATAGRAM\n";
            if a(1) == "connect" {
                if say("unix-dgram connect", unsafe {
                    libc::syscall(libc::SYS_connect, fd, &sa as *const libc::sockaddr_un, len)
                }) == 0
                {
                    write_fd(fd, data);
                }
            } else {
                say("unix-dgram sendto", unsafe {
                    libc::syscall(
                        libc::SYS_sendto,
                        fd,
                        data.as_ptr(),
                        data.len(),
                        0,
                        &sa as *const libc::sockaddr_un,
                        len,
                    )
                });
            }
            close(fd);
        }
        "move-dir" => {
            // nfguard's FILE in DIR, reached by renaming DIR: the file's real
            // path is then no protected path; its name is freed, a forged
            // file put in its place, and DIR renamed back.
            let (dir, file) = (a(1), a(2));
            let moved = format!("{dir}.moved");
            let (d, m) = (cs(&dir), cs(&moved));
            say("rename dir", unsafe {
                libc::syscall(libc::SYS_rename, d.as_ptr(), m.as_ptr())
            });
            let inside = cs(&format!("{moved}/{file}"));
            say("unlink moved file", unsafe {
                libc::syscall(libc::SYS_unlink, inside.as_ptr())
            });
            let fd = say(
                "forge file",
                openat(
                    &format!("{moved}/{file}"),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                    0o644,
                ),
            );
            write_fd(fd, b"{\"forged\":true}\n");
            close(fd);
            say("rename dir back", unsafe {
                libc::syscall(libc::SYS_rename, m.as_ptr(), d.as_ptr())
            });
        }
        "openat2" => {
            // openat2(DIR, NAME, O_WRONLY|O_CREAT|O_APPEND, RESOLVE) with
            // RESOLVE one of beneath, no-symlinks (what the caller asked the
            // kernel to refuse: EXDEV, ELOOP).
            let resolve: u64 = match a(1).as_str() {
                "beneath" => 0x08,
                "no-symlinks" => 0x04,
                "none" => 0,
                other => panic!("openat2: unknown resolve {other}"),
            };
            let dir = cs(&a(2));
            let dfd = unsafe { libc::open(dir.as_ptr(), libc::O_PATH | libc::O_DIRECTORY) };
            // struct open_how { u64 flags; u64 mode; u64 resolve; }
            let how: [u64; 3] = [
                (libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND) as u64,
                0o644,
                resolve,
            ];
            let name = cs(&a(3));
            let fd = say(&format!("openat2 {}", a(1)), unsafe {
                libc::syscall(libc::SYS_openat2, dfd, name.as_ptr(), how.as_ptr(), 24usize)
            });
            write_fd(fd, b"via openat2\n");
            close(fd);
        }
        "fifo-stall" => {
            // A thread opens a FIFO for write (it waits for a reader, as the
            // kernel lets it); meanwhile the main thread makes an ordinary
            // learned write, which must not wait on the first.
            let fifo = a(1);
            std::thread::spawn(move || {
                let fd = openat(&fifo, libc::O_WRONLY, 0);
                println!("fifo open returned {fd}");
            });
            sleep_ms(200);
            let started = Instant::now();
            run(&["write".into(), a(2)]);
            println!("second took={}ms", started.elapsed().as_millis());
        }
        "write-nonblock" => {
            // An open for write that does not wait (a FIFO with no reader: ENXIO).
            say(
                "write-nonblock",
                openat(&a(1), libc::O_WRONLY | libc::O_NONBLOCK, 0),
            );
        }

        "perf-sigtrap" => {
            // perf_event_open(2) on one of WHO's threads with `sigtrap`
            // (linux 5.13): at each overflow the kernel sends SIGTRAP to the
            // monitored thread, whose default action kills its process. It
            // needs ptrace-attach rights only (same uid, dumpable), and is
            // not notified. The listener thread counts task-clock while it
            // answers our calls, so we make some.
            let who = a(1);
            let pid = target(&who);
            let tid = std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .find(|t| {
                    std::fs::read_to_string(format!("/proc/{pid}/task/{t}/comm"))
                        .is_ok_and(|c| c.trim() == "nfguard-main")
                })
                .unwrap_or(pid);
            println!("{who} thread={tid}");
            let mut attr = [0u8; 136];
            attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
            attr[4..8].copy_from_slice(&136u32.to_ne_bytes());
            attr[8..16].copy_from_slice(&1u64.to_ne_bytes()); // PERF_COUNT_SW_TASK_CLOCK
            attr[16..24].copy_from_slice(&100_000u64.to_ne_bytes()); // ns of task clock
                                                                     // exclude_kernel, exclude_hv, remove_on_exec, sigtrap
            let flags: u64 = (1 << 5) | (1 << 6) | (1 << 36) | (1 << 37);
            attr[40..48].copy_from_slice(&flags.to_ne_bytes());
            let fd = say("perf_event_open", unsafe {
                libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), tid, -1, -1, 0)
            });
            // Notified calls that cost the listener thread CPU time.
            for _ in 0..2000 {
                unsafe { libc::syscall(libc::SYS_kill, std::process::id(), 0) };
            }
            sleep_ms(100);
            println!("{who} state={}", state_of(pid));
            close(fd);
        }
        "deprioritize" => {
            // The supervisor's scheduling: SCHED_IDLE and nice 19 (a process
            // of our uid is ours to lower, with no capability), so that it
            // runs only when nothing else wants the CPU.
            let pid = target(&a(1));
            let param = libc::sched_param { sched_priority: 0 };
            say("sched_setscheduler idle", unsafe {
                libc::sched_setscheduler(pid, libc::SCHED_IDLE, &param) as libc::c_long
            });
            say("setpriority 19", unsafe {
                libc::setpriority(libc::PRIO_PROCESS, pid as u32, 19) as libc::c_long
            });
            let policy = unsafe { libc::sched_getscheduler(pid) };
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, pid as u32) };
            println!("{} policy={policy} nice={nice}", a(1));
        }

        "plant-journals" => {
            // Symlinks at the names the supervisor will give the in-flight
            // journals of the next keepers (`.inflight-<keeper pid>` beside
            // its socket): pids are handed out in order, so the next N are
            // the ones to cover. A journal is opened (created, resized,
            // mapped and written) by name when its keeper hands over.
            let (dir, target, n): (String, String, i32) = (a(1), a(2), a(3).parse().unwrap());
            let last: i32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            let t = cs(&target);
            let mut made = 0;
            for pid in last + 1..=last + n {
                let name = cs(&format!("{dir}/.inflight-{pid}"));
                let rc = unsafe {
                    libc::syscall(
                        libc::SYS_symlinkat,
                        t.as_ptr(),
                        libc::AT_FDCWD,
                        name.as_ptr(),
                    )
                };
                if rc == 0 {
                    made += 1;
                }
            }
            println!("planted {made} journals from pid {}", last + 1);
        }

        "tiocsti" => {
            // TIOCSTI: push bytes into the controlling terminal's input, as
            // if typed (dev.tty.legacy_tiocsti=1 lets any process with the
            // terminal as its own do it). Whatever reads the terminal next
            // (the shell that started `nfguard run`, once it returns) runs
            // them, outside the filter. ioctl is notified for FIOSETOWN and
            // SIOCSPGRP only.
            let text = format!("{}\n", a(1));
            let mut sent = 0;
            for b in text.bytes() {
                if unsafe { libc::ioctl(0, libc::TIOCSTI, &b as *const u8) } == 0 {
                    sent += 1;
                }
            }
            println!("tiocsti sent={sent} of {} errno={}", text.len(), errno());
        }

        "via-symlink" => {
            // A symlink of ours into the supervisor's /proc entry, then a
            // write through it: the supervisor's resolution follows plain
            // symlinks in one openat2 and must see where it landed.
            let (link, file, value) = (a(1), a(2), a(3));
            let sup = supervisor();
            let (t, l) = (cs(&format!("/proc/{sup}/{file}")), cs(&link));
            let _ = std::fs::remove_file(&link);
            say("symlink into the supervisor's /proc", unsafe {
                libc::syscall(libc::SYS_symlink, t.as_ptr(), l.as_ptr())
            });
            let fd = say("open through it", openat(&link, libc::O_WRONLY, 0));
            write_fd(fd, value.as_bytes());
            close(fd);
            let now = std::fs::read_to_string(format!("/proc/{sup}/{file}"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            println!("supervisor {file}={now}");
        }
        "mknod-dev" => {
            // A character device node (1, 3: /dev/null's numbers), which
            // needs CAP_MKNOD.
            let p = cs(&a(1));
            say("mknod-dev", unsafe {
                libc::syscall(
                    libc::SYS_mknod,
                    p.as_ptr(),
                    libc::S_IFCHR | 0o666,
                    libc::makedev(1, 3),
                )
            });
        }

        "fchmodat2-empty" => {
            // fchmodat2(fd, "", MODE, AT_EMPTY_PATH) (linux 6.6): the mode
            // of the file an fd (an O_PATH one will do) names, by an empty
            // path.
            let fd = say("open O_PATH", openat(&a(1), libc::O_PATH, 0));
            let mode = u32::from_str_radix(&a(2), 8).expect("an octal mode");
            let empty = cs("");
            say("fchmodat2 empty", unsafe {
                libc::syscall(
                    libc::SYS_fchmodat2,
                    fd,
                    empty.as_ptr(),
                    mode,
                    libc::AT_EMPTY_PATH,
                )
            });
            close(fd);
        }

        "int80-mkdir" | "x32-mkdir" => {
            // mkdir through another ABI: i386's `int 0x80` (number 39, the
            // path in memory below 4 GiB, where a 32-bit register can name
            // it) or an x32 number (0x40000000 | 83). The supervisor decodes
            // x86_64 numbers only: the filter must refuse both.
            let mut p = a(1).into_bytes();
            p.push(0);
            let rc: libc::c_long = if a(0) == "int80-mkdir" {
                let page = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                        -1,
                        0,
                    )
                } as *mut u8;
                unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), page, p.len()) };
                let mut ret: i32 = 39;
                unsafe {
                    // ebx holds the path; LLVM keeps rbx for itself, so swap it in and out.
                    std::arch::asm!(
                        "xchg rbx, {path}",
                        "int 0x80",
                        "xchg rbx, {path}",
                        path = inout(reg) page as u64 => _,
                        inlateout("eax") ret,
                        in("ecx") 0o755u32,
                        options(nostack)
                    )
                };
                if ret < 0 {
                    unsafe { *libc::__errno_location() = -ret };
                    -1
                } else {
                    0
                }
            } else {
                unsafe { libc::syscall(0x4000_0000 | libc::SYS_mkdir, p.as_ptr(), 0o755) }
            };
            say(&a(0), rc);
        }

        "forbidden-calls" => {
            // Every call the policy forbids, with arguments that would fail
            // anyway (bad fds, null pointers): each must reach the
            // supervisor and be refused with an event, whatever the mode.
            let calls: [(&str, libc::c_long, [libc::c_long; 5]); 16] = [
                ("setns", libc::SYS_setns, [-1, 0, 0, 0, 0]),
                ("mount", libc::SYS_mount, [0, 0, 0, 0, 0]),
                ("umount2", libc::SYS_umount2, [0, 0, 0, 0, 0]),
                ("pivot_root", libc::SYS_pivot_root, [0, 0, 0, 0, 0]),
                ("move_mount", libc::SYS_move_mount, [-1, 0, -1, 0, 0]),
                ("open_tree", libc::SYS_open_tree, [-1, 0, 0, 0, 0]),
                ("open_tree_attr", 467, [-1, 0, 0, 0, 0]),
                ("fsopen", libc::SYS_fsopen, [0, 0, 0, 0, 0]),
                ("fsconfig", libc::SYS_fsconfig, [-1, 0, 0, 0, 0]),
                ("fsmount", libc::SYS_fsmount, [-1, 0, 0, 0, 0]),
                ("fspick", libc::SYS_fspick, [-1, 0, 0, 0, 0]),
                ("mount_setattr", libc::SYS_mount_setattr, [-1, 0, 0, 0, 0]),
                (
                    "open_by_handle_at",
                    libc::SYS_open_by_handle_at,
                    [-1, 0, 0, 0, 0],
                ),
                ("io_uring_setup", libc::SYS_io_uring_setup, [1, 0, 0, 0, 0]),
                ("io_uring_enter", libc::SYS_io_uring_enter, [-1, 0, 0, 0, 0]),
                (
                    "io_uring_register",
                    libc::SYS_io_uring_register,
                    [-1, 0, 0, 0, 0],
                ),
            ];
            for (name, nr, x) in calls {
                say(name, unsafe {
                    libc::syscall(nr, x[0], x[1], x[2], x[3], x[4])
                });
            }
        }

        "raw-signal" => {
            // The other signal calls, aimed at the supervisor: tkill and
            // tgkill of one of its threads, rt_sigqueueinfo of its process,
            // rt_tgsigqueueinfo of a thread (a queued signal carries a
            // siginfo of ours, si_code SI_QUEUE as sigqueue(3) makes it).
            let (how, sig): (String, i32) = (a(1), a(2).parse().unwrap());
            let sup = supervisor();
            let tid = supervisor_threads().into_iter().next().unwrap_or(sup);
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            info.si_signo = sig;
            info.si_code = -1; // SI_QUEUE
            let rc = unsafe {
                match how.as_str() {
                    "tkill" => libc::syscall(libc::SYS_tkill, tid, sig),
                    "tgkill" => libc::syscall(libc::SYS_tgkill, sup, tid, sig),
                    "rt_sigqueueinfo" => {
                        libc::syscall(libc::SYS_rt_sigqueueinfo, sup, sig, &info as *const _)
                    }
                    "rt_tgsigqueueinfo" => libc::syscall(
                        libc::SYS_rt_tgsigqueueinfo,
                        sup,
                        tid,
                        sig,
                        &info as *const _,
                    ),
                    other => panic!("raw-signal: unknown call {other}"),
                }
            };
            say(&how, rc);
            sleep_ms(150);
            println!("supervisor state={}", state_of(sup));
        }

        "thread" => {
            // Class 0: the same call from a thread that is not the
            // thread-group leader (its tid is not a pid: pidfd_open(tid)
            // fails with ENOENT unless PIDFD_THREAD is asked for).
            let rest: Vec<String> = args[1..].to_vec();
            std::thread::spawn(move || run(&rest)).join().unwrap();
        }
        other => {
            eprintln!("adversary: unknown subcommand {other:?}");
            std::process::exit(2);
        }
    }
}

/// `OK BAD N SECS` of the exec races (OK and BAD of the same length).
fn race_args(args: &[String]) -> (String, String, u32, u64) {
    let (ok, bad) = (args[1].clone(), args[2].clone());
    assert_eq!(ok.len(), bad.len(), "race paths must have the same length");
    (ok, bad, args[3].parse().unwrap(), args[4].parse().unwrap())
}

/// The victim of the CLONE_VM race (a forked child, single-threaded). Never returns.
fn clone_vm_victim(ok: &str, bad: &str, report: i32) -> ! {
    // The path the kernel will read: in our memory, which P and T share.
    let buf: &'static mut [u8; 256] = Box::leak(Box::new([0u8; 256]));
    buf[..ok.len()].copy_from_slice(ok.as_bytes());
    struct Shared {
        buf: *mut u8,
        a: &'static [u8],
        b: &'static [u8],
        stack: *mut u8,
    }
    let a: &'static [u8] = Box::leak(ok.as_bytes().to_vec().into_boxed_slice());
    let b: &'static [u8] = Box::leak(bad.as_bytes().to_vec().into_boxed_slice());
    let stack_p: &'static mut [u8] = Box::leak(vec![0u8; 64 * 1024].into_boxed_slice());
    let stack_t: &'static mut [u8] = Box::leak(vec![0u8; 64 * 1024].into_boxed_slice());
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        buf: buf.as_mut_ptr(),
        a,
        b,
        stack: unsafe { stack_t.as_mut_ptr().add(stack_t.len()) },
    }));
    // T: flips the path forever. It runs on its own stack, with the TLS of
    // the victim (no CLONE_SETTLS): only volatile stores, no libc.
    extern "C" fn t_main(arg: *mut libc::c_void) -> i32 {
        let s = unsafe { &*(arg as *const Shared) };
        // Let P's leader run to its exit first (two CPUs, and T would spin on one).
        for _ in 0..50 {
            unsafe { libc::syscall(libc::SYS_sched_yield) };
        }
        flip_forever(s.buf, s.a, s.b)
    }
    // P: starts T in its own thread group, then its leader exits (glibc's
    // clone returns into SYS_exit, not exit_group).
    extern "C" fn p_main(arg: *mut libc::c_void) -> i32 {
        let s = unsafe { &*(arg as *const Shared) };
        unsafe {
            libc::clone(
                t_main,
                s.stack.cast(),
                libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND,
                arg,
            )
        };
        0
    }
    let p = unsafe {
        libc::clone(
            p_main,
            stack_p.as_mut_ptr().add(stack_p.len()).cast(),
            libc::CLONE_VM | libc::SIGCHLD,
            (shared as *const Shared) as *mut libc::c_void,
        )
    };
    unsafe { libc::write(report, (&p as *const i32).cast(), 4) };
    // Wait until P's leader is a zombie: from then on /proc shows no live
    // task sharing our memory.
    for _ in 0..2000 {
        if state_of(p) == "Z" {
            break;
        }
        std::thread::yield_now();
    }
    let argv = [buf.as_ptr() as *const c_char, std::ptr::null()];
    exec(buf.as_ptr() as *const c_char, &argv);
    unsafe { libc::_exit(100 + errno().min(100)) }
}

/// In a fresh mount namespace (we hold CAP_SYS_ADMIN over it): bind-mounts
/// `other` over the learned path, then execs it or appends to it.
fn mount_over_then(what: &str, learned: &str, other: &str) {
    let (src, dst) = (cs(other), cs(learned));
    say("mount", unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ) as libc::c_long
    });
    if what == "userns-exec" {
        run(&["exec".into(), learned.into()]);
    } else {
        let fd = say(
            "write learned",
            openat(learned, libc::O_WRONLY | libc::O_APPEND, 0),
        );
        write_fd(fd, b"hidden write\n");
        close(fd);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        // Run with no arguments (a copy of it, exec'd as the races and the
        // mount attacks do), it is the program the model forbids: it says so
        // on standard output, which no filter sees, and exits 42.
        println!("FORBIDDEN-RAN pid={}", std::process::id());
        std::process::exit(42);
    }
    for step in args.split(|a| a == "+") {
        run(step);
    }
}
