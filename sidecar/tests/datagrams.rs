//! Datagram destinations (issue 15) on real processes under the real filter:
//! `nfguard run` on the `datagrams` example, with UDP and unix receivers the
//! test owns counting what arrives. What must hold is checked from outside:
//! in enforce mode an unlearned peer receives nothing, whatever the way of
//! sending and however a second thread races to change the destination; a
//! learned one receives everything; connected sockets cost no notification.
//!
//! No root needed: the launcher sets no_new_privs, and the supervisor reads
//! its own children's memory and takes their fds.

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

const NFGUARD: &str = env!("CARGO_BIN_EXE_nfguard");

fn workload() -> String {
    let p = Path::new(NFGUARD)
        .parent()
        .unwrap()
        .join("examples/datagrams");
    assert!(
        p.exists(),
        "{} missing: run the tests with cargo test (it builds examples)",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

/// A UDP receiver on 127.0.0.1 that counts datagrams on its own thread.
struct Receiver {
    port: u16,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn new() -> Receiver {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Room for a burst of native sends (the kernel caps it at rmem_max).
        let _ = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBuf, &(4 << 20));
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let (count, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (c, s) = (Arc::clone(&count), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if sock.recv(&mut buf).is_ok() {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Whatever is still queued counts too.
            sock.set_nonblocking(true).unwrap();
            while sock.recv(&mut buf).is_ok() {
                c.fetch_add(1, Ordering::Relaxed);
            }
        });
        Receiver {
            port,
            count,
            stop,
            thread: Some(thread),
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What arrived, once the last datagram had time to (loopback: at once).
    fn received(&self) -> u64 {
        std::thread::sleep(Duration::from_millis(100));
        self.count.load(Ordering::Relaxed)
    }

    fn reset(&self) {
        std::thread::sleep(Duration::from_millis(100));
        self.count.store(0, Ordering::Relaxed);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn model(&self) -> PathBuf {
        self.path("model.json")
    }
    fn events_path(&self) -> PathBuf {
        self.path("events.jsonl")
    }

    fn command(&self, mode: &str, extra: &[&str], cmd: &[&str]) -> Command {
        let mut c = Command::new(NFGUARD);
        c.args(["run", "--mode", mode, "--model"])
            .arg(self.model())
            .arg("--events")
            .arg(self.events_path())
            .args(extra)
            .arg("--")
            .args(cmd)
            .stdin(Stdio::null());
        c
    }

    /// `nfguard run --mode MODE [EXTRA] -- datagrams ARGS...`
    fn run_with(&self, mode: &str, extra: &[&str], args: &[&str]) -> Output {
        let w = workload();
        let mut cmd = vec![w.as_str()];
        cmd.extend_from_slice(args);
        let out = self.command(mode, extra, &cmd).output().unwrap();
        assert!(
            out.status.success(),
            "{mode} {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn run(&self, mode: &str, args: &[&str]) -> Output {
        self.run_with(mode, &[], args)
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.events_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each event is one JSON object"))
            .collect()
    }

    fn clear_events(&self) {
        let _ = std::fs::remove_file(self.events_path());
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `key=N` of the line that starts with `what`.
fn number(out: &str, what: &str, key: &str) -> u64 {
    out.lines()
        .find(|l| l.starts_with(what))
        .and_then(|l| l.split(&format!("{key}=")).nth(1))
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {key} on a line starting with {what:?} in {out}"))
}

fn summary(events: &[Value]) -> String {
    events
        .iter()
        .take(6)
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["verdict"], e["syscall"], e["port"], e["reason"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const WAYS: [&str; 3] = ["sendto", "sendmsg", "sendmmsg"];

#[test]
fn a_datagrams_destination_is_learned_flagged_and_refused_whichever_way_it_is_sent() {
    let s = Scratch::new();
    let (learned, other) = (Receiver::new(), Receiver::new());
    for via in WAYS {
        s.run("learn", &["send", via, &learned.addr(), "3"]);
    }
    assert_eq!(learned.received(), 3 + 3 + 12, "learning sends them all");
    learned.reset();
    for via in WAYS {
        // Alert: the learned peer raises nothing, the other an event per
        // call that names it; both receive.
        s.clear_events();
        let o = s.run(
            "alert",
            &[
                "send",
                via,
                &learned.addr(),
                "2",
                "+",
                "send",
                via,
                &other.addr(),
                "2",
            ],
        );
        let ev = s.events();
        assert_eq!(ev.len(), 2, "{via}: {}\n{}", summary(&ev), stdout(&o));
        for e in &ev {
            assert_eq!(
                (
                    e["verdict"].as_str(),
                    e["syscall"].as_str(),
                    e["op"].as_str()
                ),
                (Some("alert"), Some(via), Some("send")),
                "{e}"
            );
            assert_eq!(e["port"], other.port, "{e}");
            assert_eq!(e["protocol"], "udp");
            assert_eq!(e["datagrams"], "inspect", "events say which program runs");
            let why = e["reason"].as_str().unwrap();
            assert!(
                why.ends_with(&format!("does not talk to udp {}", other.addr())),
                "{why}"
            );
        }
        let per = if via == "sendmmsg" { 8 } else { 2 };
        assert_eq!((learned.received(), other.received()), (per, per), "{via}");
        learned.reset();
        other.reset();
        // Enforce: the learned peer receives everything, the other nothing,
        // and the call fails with EACCES.
        s.clear_events();
        let o = s.run(
            "enforce",
            &[
                "send",
                via,
                &learned.addr(),
                "5",
                "+",
                "send",
                via,
                &other.addr(),
                "5",
            ],
        );
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].contains("errors=0"), "{out}");
        assert!(lines[1].contains("sent=0 errors=5 errno=13"), "{out}");
        let per = if via == "sendmmsg" { 20 } else { 5 };
        assert_eq!(
            (learned.received(), other.received()),
            (per, 0),
            "{via}: {out}"
        );
        let ev = s.events();
        assert_eq!(ev.len(), 5, "{via}: {}", summary(&ev));
        assert!(ev
            .iter()
            .all(|e| e["verdict"] == "deny" && e["port"] == other.port));
        learned.reset();
    }
}

#[test]
fn a_racing_thread_cannot_redirect_an_enforced_send() {
    let s = Scratch::new();
    let (learned, other) = (Receiver::new(), Receiver::new());
    for via in WAYS {
        s.run("learn", &["send", via, &learned.addr(), "1"]);
    }
    learned.reset();
    for via in WAYS {
        // Thousands of sends from a buffer that a second thread flips
        // between the learned peer and the other as fast as it can.
        let tries = if via == "sendmmsg" { "1000" } else { "3000" };
        let o = s.run(
            "enforce",
            &["race", via, &learned.addr(), &other.addr(), tries],
        );
        let out = stdout(&o);
        let sent = number(&out, &format!("race {via}"), "sent");
        assert!(
            number(&out, "race flips", "flips") > 1000,
            "the race ran: {out}"
        );
        assert_eq!(
            other.received(),
            0,
            "{via}: the unlearned peer got datagrams: {out}"
        );
        assert_eq!(
            learned.received(),
            sent,
            "{via}: every send that succeeded went where it was judged: {out}"
        );
        assert!(sent > 0, "{via}: {out}");
        learned.reset();
    }
}

/// GET `path` from the API at `addr`: the body.
fn http_get(addr: &str, path: &str) -> String {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

/// The supervisor's decisions for `syscall` so far, from /metrics.
fn decisions(metrics: &str, syscall: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("nfguard_decisions_total{{syscall=\"{syscall}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_connected_socket_is_judged_at_connect_and_costs_nothing_per_datagram() {
    let s = Scratch::new();
    let peer = Receiver::new();
    let api = format!("127.0.0.1:{}", free_port());
    let done = s.path("done");
    let done_s = done.to_string_lossy().into_owned();
    // send() on a connected socket is sendto with a null address: the
    // filter lets it through. sendmsg's destination is in memory: every
    // one is notified, even with no name.
    let w = workload();
    let mut child = s
        .command(
            "learn",
            &["--api", &api],
            &[
                &w,
                "send",
                "connected",
                &peer.addr(),
                "1000",
                "+",
                "send",
                "connected-sendmsg",
                &peer.addr(),
                "50",
                "+",
                "wait",
                &done_s,
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut pipe = child.stdout.take().unwrap();
    let mut buf = [0u8; 256];
    while !out.contains("send connected-sendmsg") {
        let n = pipe.read(&mut buf).unwrap();
        assert!(n > 0, "the workload ended early: {out}");
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let metrics = http_get(&api, "/metrics");
    std::fs::write(&done, "").unwrap();
    pipe.read_to_string(&mut out).unwrap();
    assert!(child.wait().unwrap().success(), "{out}");
    assert_eq!(peer.received(), 1050, "{out}");
    assert_eq!(
        decisions(&metrics, "connect"),
        2,
        "one per socket: {metrics}"
    );
    assert_eq!(
        decisions(&metrics, "sendto"),
        0,
        "1,000 sends on a connected socket notified nothing: {metrics}"
    );
    assert_eq!(decisions(&metrics, "sendmsg"), 50, "{metrics}");
    // The peer was learned at connect() and the sends to it raise nothing.
    s.clear_events();
    s.run(
        "enforce",
        &[
            "send",
            "connected",
            &peer.addr(),
            "10",
            "+",
            "send",
            "connected-sendmsg",
            &peer.addr(),
            "10",
        ],
    );
    assert_eq!(s.events().len(), 0, "{}", summary(&s.events()));
}

#[test]
fn with_datagrams_off_only_connect_is_judged_and_events_say_so() {
    let s = Scratch::new();
    let (learned, other) = (Receiver::new(), Receiver::new());
    s.run("learn", &["send", "sendto", &learned.addr(), "1"]);
    learned.reset();
    let off = ["--datagrams", "off"];
    s.clear_events();
    s.run_with(
        "enforce",
        &off,
        &[
            "send",
            "sendto",
            &other.addr(),
            "3",
            "+",
            "send",
            "connected",
            &other.addr(),
            "1",
        ],
    );
    // The sendto is not seen (the program without datagram inspection);
    // the connect is, and refused.
    assert_eq!(other.received(), 3);
    let ev = s.events();
    assert_eq!(ev.len(), 1, "{}", summary(&ev));
    assert_eq!(
        (ev[0]["syscall"].as_str(), ev[0]["datagrams"].as_str()),
        (Some("connect"), Some("off"))
    );
    // The environment says the same to the launcher; a bad value stops
    // before the command starts.
    let w = workload();
    let o = s
        .command("learn", &[], &[&w, "send", "sendto", &other.addr(), "1"])
        .env("NFGUARD_DATAGRAMS", "maybe")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid NFGUARD_DATAGRAMS \"maybe\""),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_unix_datagram_goes_to_the_socket_judged_and_passes_fds_through_the_supervisor() {
    let s = Scratch::new();
    let (a, b) = (s.path("a.sock"), s.path("b.sock"));
    let ra = UnixDatagram::bind(&a).unwrap();
    let rb = UnixDatagram::bind(&b).unwrap();
    for r in [&ra, &rb] {
        r.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
    }
    let (a_s, b_s) = (
        a.to_string_lossy().into_owned(),
        b.to_string_lossy().into_owned(),
    );
    s.run("learn", &["unix-send", &a_s, "1", "+", "fd-pass", &a_s]);
    let mut buf = [0u8; 64];
    while ra.recv(&mut buf).is_ok() {}
    s.clear_events();
    let o = s.run(
        "enforce",
        &[
            "unix-send",
            &a_s,
            "2",
            "+",
            "unix-send",
            &b_s,
            "2",
            "+",
            "fd-pass",
            &a_s,
        ],
    );
    let out = stdout(&o);
    assert!(out.contains("unix-send sent=2 errors=0"), "{out}");
    assert!(out.contains("unix-send sent=0 errors=2 errno=13"), "{out}");
    assert!(out.contains("fd-pass sent=1 errors=0"), "{out}");
    assert_eq!(ra.recv(&mut buf).unwrap(), 4);
    assert_eq!(ra.recv(&mut buf).unwrap(), 4);
    assert!(
        rb.recv(&mut buf).is_err(),
        "the unlearned socket received a datagram"
    );
    // The fd the supervisor sent on the task's behalf is the task's pipe.
    let fd = recv_fd(&ra);
    let mut text = String::new();
    std::fs::File::from(fd).read_to_string(&mut text).unwrap();
    assert_eq!(text, "through the supervisor");
    let ev = s.events();
    assert_eq!(ev.len(), 2, "{}", summary(&ev));
    assert!(ev
        .iter()
        .all(|e| e["path"] == b_s.as_str() && e["verdict"] == "deny"));
}

/// One datagram with one fd (SCM_RIGHTS) from `sock`.
fn recv_fd(sock: &UnixDatagram) -> std::os::fd::OwnedFd {
    use std::os::fd::AsFd;
    nfguard_sidecar::launch::recv_fd(sock.as_fd()).unwrap().0
}

#[test]
fn a_port_bound_as_af_unspec_is_judged_as_the_af_inet_port_it_is() {
    // inet_bind takes AF_UNSPEC with INADDR_ANY as AF_INET, so the family
    // field must not hide a served port.
    let s = Scratch::new();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    s.run("learn", &["send", "sendto", "127.0.0.1:9", "1"]);
    s.clear_events();
    let o = s.run("enforce", &["bind-unspec", &port.to_string()]);
    assert!(
        stdout(&o).contains("bind-unspec sent=0 errors=1 errno=13"),
        "{}",
        stdout(&o)
    );
    let ev = s.events();
    assert_eq!(ev.len(), 1, "{}", summary(&ev));
    assert_eq!(
        (ev[0]["syscall"].as_str(), ev[0]["port"].as_u64()),
        (Some("bind"), Some(u64::from(port)))
    );
}

#[test]
fn a_core_interface_is_named_in_events_and_in_the_model() {
    let s = Scratch::new();
    let other = Receiver::new();
    s.run("learn", &["send", "sendto", &other.addr(), "1"]);
    // Nothing listens on 8805 (PFCP): a UDP send there still succeeds, and
    // nothing leaves loopback.
    s.clear_events();
    s.run("alert", &["send", "sendto", "127.0.0.1:8805", "1"]);
    let ev = s.events();
    assert_eq!(ev.len(), 1, "{}", summary(&ev));
    assert_eq!(ev[0]["interface"], "PFCP (N4)");
    assert_eq!(
        ev[0]["protocol"], "udp",
        "the existing fields stay as they are"
    );
    assert_eq!(ev[0]["port"], 8805);
    let why = ev[0]["reason"].as_str().unwrap();
    assert!(
        why.ends_with("does not talk PFCP (N4) to 127.0.0.1:8805"),
        "{why}"
    );
    s.run("learn", &["send", "sendto", "127.0.0.1:8805", "1"]);
    let show = Command::new(NFGUARD)
        .args(["model", "show"])
        .arg(s.model())
        .output()
        .unwrap();
    let show = stdout(&show);
    assert!(show.contains("PFCP (N4) to 127.0.0.1:8805"), "{show}");
}
