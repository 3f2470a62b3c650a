//! A workload that sends datagrams, for `tests/datagrams.rs` and
//! `tests/telecom.rs`: every way a process can name a datagram's
//! destination, and a thread that races to change it.
//!
//! Each subcommand prints one line, `key=value` pairs, so the tests can read
//! what the kernel answered; the tests check the effect from outside (what
//! the receivers they own counted), never only these lines. Raw syscalls are
//! used where the test is about one syscall: glibc's `send` is `sendto` with
//! a null address, which the filter tells apart from one with an address.
//!
//! ```text
//! datagrams send VIA HOST:PORT N        VIA: sendto | sendmsg | sendmmsg | connected | connected-sendmsg
//! datagrams race VIA LEARNED UNLEARNED N  a second thread flips the destination in memory
//! datagrams unix-send PATH N             sendto on a unix datagram socket
//! datagrams fd-pass PATH                 sendmsg of an fd (SCM_RIGHTS) to a unix datagram socket
//! datagrams ipup DEV ADDR MASK           osmo-ggsn's ipup-script: a datagram to each of NFG_UDP_TO
//! datagrams bind-unspec PORT             binds a UDP port with family AF_UNSPEC
//! datagrams wait FILE                    waits (10 s at most) until FILE exists
//! ```
//!
//! Subcommands chain with `+`. Built by `cargo test` (examples are), never shipped.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn inet(spec: &str) -> libc::sockaddr_in {
    let a: std::net::SocketAddrV4 = spec.parse().expect("HOST:PORT, IPv4");
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

const SIN_LEN: u32 = std::mem::size_of::<libc::sockaddr_in>() as u32;

fn udp_socket() -> i32 {
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    assert!(fd >= 0, "socket: errno {}", errno());
    fd
}

/// Counts what the kernel answered.
#[derive(Default)]
struct Tally {
    sent: u64,
    errors: u64,
    last_errno: i32,
}

impl Tally {
    fn add(&mut self, rc: isize, messages: u64) {
        if rc < 0 {
            self.errors += 1;
            self.last_errno = errno();
        } else {
            // A single send returns bytes; sendmmsg the messages sent.
            self.sent += if messages == 1 { 1 } else { rc as u64 };
        }
    }
    fn print(&self, what: &str) {
        println!(
            "{what} sent={} errors={} errno={}",
            self.sent, self.errors, self.last_errno
        );
    }
}

/// One datagram, `payload`, to `*to` through `via` on `fd`.
fn send_via(via: &str, fd: i32, to: *const libc::sockaddr_in, payload: &[u8]) -> (isize, u64) {
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = to as *mut libc::c_void;
    msg.msg_namelen = SIN_LEN;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    match via {
        "sendto" => unsafe {
            let r = libc::syscall(
                libc::SYS_sendto,
                fd,
                payload.as_ptr(),
                payload.len(),
                0,
                to,
                SIN_LEN,
            );
            (r as isize, 1)
        },
        "sendmsg" => unsafe { (libc::syscall(libc::SYS_sendmsg, fd, &msg, 0) as isize, 1) },
        "sendmmsg" => {
            // Four messages per call, all to the same destination buffer.
            let mut v: Vec<libc::mmsghdr> = (0..4)
                .map(|_| libc::mmsghdr {
                    msg_hdr: msg,
                    msg_len: 0,
                })
                .collect();
            let r = unsafe { libc::syscall(libc::SYS_sendmmsg, fd, v.as_mut_ptr(), 4, 0) };
            if r > 0 && v[0].msg_len as usize != payload.len() {
                println!("msg_len={} expected={}", v[0].msg_len, payload.len());
            }
            (r as isize, 4)
        }
        // A connected socket: send() is sendto with a null address.
        "connected" => unsafe {
            let r = libc::syscall(
                libc::SYS_sendto,
                fd,
                payload.as_ptr(),
                payload.len(),
                0,
                0usize,
                0,
            );
            (r as isize, 1)
        },
        "connected-sendmsg" => {
            msg.msg_name = std::ptr::null_mut();
            msg.msg_namelen = 0;
            unsafe { (libc::syscall(libc::SYS_sendmsg, fd, &msg, 0) as isize, 1) }
        }
        other => panic!("unknown way to send {other}"),
    }
}

fn run(args: &[String]) {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(0) {
        "send" => {
            let (via, to, n) = (arg(1), inet(arg(2)), arg(3).parse::<u64>().unwrap());
            let fd = udp_socket();
            if via.starts_with("connected") {
                let rc =
                    unsafe { libc::connect(fd, (&to as *const libc::sockaddr_in).cast(), SIN_LEN) };
                if rc < 0 {
                    println!("connect errno={}", errno());
                    return;
                }
            }
            let mut t = Tally::default();
            for i in 0..n {
                let (rc, m) = send_via(via, fd, &to, format!("nfguard {i}").as_bytes());
                t.add(rc, m);
            }
            t.print(&format!("send {via}"));
            unsafe { libc::close(fd) };
        }
        "race" => {
            let (via, good, bad) = (arg(1), inet(arg(2)), inet(arg(3)));
            let n = arg(4).parse::<u64>().unwrap();
            let fd = udp_socket();
            // The destination lives in memory both threads see; the second
            // thread rewrites it as fast as it can while the first sends.
            let shared: &'static mut libc::sockaddr_in = Box::leak(Box::new(good));
            let ptr = shared as *mut libc::sockaddr_in as usize;
            static STOP: AtomicBool = AtomicBool::new(false);
            STOP.store(false, Ordering::Relaxed);
            let flipper = std::thread::spawn(move || {
                let p = ptr as *mut libc::sockaddr_in;
                let mut flips = 0u64;
                while !STOP.load(Ordering::Relaxed) {
                    unsafe {
                        std::ptr::write_volatile(p, bad);
                        std::ptr::write_volatile(p, good);
                    }
                    flips += 1;
                }
                flips
            });
            let mut t = Tally::default();
            for _ in 0..n {
                let (rc, m) = send_via(via, fd, ptr as *const libc::sockaddr_in, b"race");
                t.add(rc, m);
            }
            STOP.store(true, Ordering::Relaxed);
            let flips = flipper.join().unwrap();
            println!("race flips={flips}");
            t.print(&format!("race {via} tries={n}"));
        }
        "unix-send" => {
            let (path, n) = (arg(1), arg(2).parse::<u64>().unwrap());
            let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0) };
            let (sa, len) = unix_addr(path);
            let mut t = Tally::default();
            for _ in 0..n {
                let rc = unsafe {
                    libc::syscall(
                        libc::SYS_sendto,
                        fd,
                        b"unix".as_ptr(),
                        4,
                        0,
                        &sa as *const libc::sockaddr_un,
                        len,
                    )
                };
                t.add(rc as isize, 1);
            }
            t.print("unix-send");
        }
        "fd-pass" => {
            // Sends an fd of a pipe holding "through the supervisor".
            let mut p = [0i32; 2];
            unsafe { libc::pipe(p.as_mut_ptr()) };
            let text = b"through the supervisor";
            unsafe { libc::write(p[1], text.as_ptr().cast(), text.len()) };
            unsafe { libc::close(p[1]) };
            let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0) };
            let (mut sa, len) = unix_addr(arg(1));
            let mut data = *b"fd";
            let mut iov = libc::iovec {
                iov_base: data.as_mut_ptr().cast(),
                iov_len: data.len(),
            };
            #[repr(C, align(8))]
            struct Ctl([u8; 24]);
            let mut ctl = Ctl([0; 24]);
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut sa as *mut libc::sockaddr_un).cast();
            msg.msg_namelen = len;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = ctl.0.as_mut_ptr().cast();
            msg.msg_controllen = 24;
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), p[0]);
            }
            let rc = unsafe { libc::syscall(libc::SYS_sendmsg, fd, &msg, 0) };
            let mut t = Tally::default();
            t.add(rc as isize, 1);
            t.print("fd-pass");
        }
        "ipup" => {
            // osmo-ggsn runs its ipup-script as `script DEV ADDR MASK`
            // through system(): this one sends a datagram to each peer of
            // NFG_UDP_TO (HOST:PORT,...). Learned sending to one peer, the
            // same script sending to another is the attack from inside the
            // GGSN's tree.
            let to = std::env::var("NFG_UDP_TO").unwrap_or_default();
            let fd = udp_socket();
            for peer in to.split(',').filter(|p| !p.is_empty()) {
                let mut t = Tally::default();
                let (rc, m) = send_via("sendto", fd, &inet(peer), b"from the ggsn's tree");
                t.add(rc, m);
                t.print(&format!("ipup {} to {peer}", args[1..].join(" ")));
            }
            unsafe { libc::close(fd) };
        }
        "bind-unspec" => {
            // inet_bind takes AF_UNSPEC with INADDR_ANY as AF_INET: a
            // served port under another family number.
            let fd = udp_socket();
            let mut sa = inet(&format!("0.0.0.0:{}", arg(1)));
            sa.sin_family = libc::AF_UNSPEC as u16;
            let rc = unsafe { libc::syscall(libc::SYS_bind, fd, &sa, SIN_LEN) };
            let mut t = Tally::default();
            t.add(rc as isize, 1);
            t.print("bind-unspec");
        }
        "wait" => {
            let until = Instant::now() + Duration::from_secs(10);
            while !std::path::Path::new(arg(1)).exists() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            println!("waited");
        }
        other => panic!("unknown subcommand {other:?}"),
    }
}

fn unix_addr(path: &str) -> (libc::sockaddr_un, u32) {
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as u16;
    for (i, b) in path.bytes().enumerate() {
        sa.sun_path[i] = b as libc::c_char;
    }
    (sa, (2 + path.len() + 1) as u32)
}

fn main() {
    use std::io::Write;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for part in args.split(|a| a == "+") {
        run(part);
        let _ = std::io::stdout().flush();
    }
}
