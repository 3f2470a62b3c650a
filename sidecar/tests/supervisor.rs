//! The supervisor on real processes under a real seccomp filter.
//!
//! Each test runs `nfguard run` (or `nfguard supervise` + `nfguard-launch`) on
//! the `testload` example or on ordinary programs, then reads the events and
//! the outcomes the workload printed. Nothing here needs root: the launcher sets
//! no_new_privs, and the supervisor reads its own children's memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{require, require_root, stdout, Reaped};

const NFGUARD: &str = env!("CARGO_BIN_EXE_nfguard");
const LAUNCH: &str = env!("CARGO_BIN_EXE_nfguard-launch");

/// The testload example, built by `cargo test` beside the binaries.
fn testload() -> PathBuf {
    let p = Path::new(NFGUARD)
        .parent()
        .unwrap()
        .join("examples/testload");
    assert!(
        p.exists(),
        "{} missing: run the tests with cargo test (it builds examples)",
        p.display()
    );
    p
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
    /// A scratch directory others may enter, with `own/` owned by nobody
    /// (65534), for the tests that run a workload as nobody (root only).
    fn with_nobodys_dir() -> Scratch {
        use std::os::unix::fs::PermissionsExt;
        let s = Scratch::new();
        std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(s.path("own")).unwrap();
        nix::unistd::chown(&s.path("own"), Some(65534.into()), Some(65534.into())).unwrap();
        s
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
    /// `supervise --mode MODE --model M --events E --socket SOCK`.
    fn supervise_args(&self, mode: &str, sock: &Path) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = ["supervise", "--mode", mode, "--model"]
            .map(Into::into)
            .to_vec();
        a.push(self.model().into());
        a.push("--events".into());
        a.push(self.events_path().into());
        a.push("--socket".into());
        a.push(sock.into());
        a
    }
    fn model(&self) -> PathBuf {
        self.path("model.json")
    }
    fn events_path(&self) -> PathBuf {
        self.path("events.jsonl")
    }

    /// `nfguard run --mode MODE --model M --events E -- CMD...`
    fn run(&self, mode: &str, cmd: &[&str]) -> Output {
        let out = Command::new(NFGUARD)
            .args(["run", "--mode", mode, "--model"])
            .arg(self.model())
            .arg("--events")
            .arg(self.events_path())
            .arg("--")
            .args(cmd)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("could not inspect"),
            "internal error: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
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

/// Waits (10 s at most) for a supervisor to create its socket.
fn wait_for_socket(sock: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "no socket from the supervisor");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `child` to exit within `limit`; fails with `why` otherwise.
fn exit_within(
    child: &mut std::process::Child,
    limit: Duration,
    why: &str,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "{why}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn summary(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["verdict"], e["syscall"], e["path"], e["reason"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn learning_then_alerting_on_the_same_workload_raises_nothing() {
    let s = Scratch::new();
    let script = format!(
        "echo hi > {out}; ls / > /dev/null; cat /etc/hostname > /dev/null; rm -f {out}.old; mv {out} {out}.old",
        out = s.s("out")
    );
    let learn = s.run("learn", &["sh", "-c", &script]);
    assert!(learn.status.success(), "{learn:?}");
    let model = std::fs::read_to_string(s.model()).unwrap();
    assert!(model.contains("\"version\": 1"), "{model}");
    let alert = s.run("alert", &["sh", "-c", &script]);
    assert!(alert.status.success(), "{alert:?}");
    assert_eq!(s.events().len(), 0, "{}", summary(&s.events()));
    // Learning again merges into the model rather than replacing it.
    let before = std::fs::read_to_string(s.model()).unwrap();
    let again = s.run("learn", &["sh", "-c", "echo more > /dev/null"]);
    assert!(again.status.success());
    let after: Value = serde_json::from_str(&std::fs::read_to_string(s.model()).unwrap()).unwrap();
    let before: Value = serde_json::from_str(&before).unwrap();
    for p in before["processes"].as_array().unwrap() {
        assert!(
            after["processes"].as_array().unwrap().contains(p),
            "lost {p}"
        );
    }
}

#[test]
fn the_attackers_commands_are_flagged_in_alert_mode_with_their_parent() {
    let s = Scratch::new();
    assert!(s.run("learn", &["sh", "-c", "true"]).status.success());
    let out = s.run(
        "alert",
        &[
            "sh",
            "-c",
            "which ps > /dev/null; ps -ef > /dev/null; echo done",
        ],
    );
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("done"),
        "alert mode must not change what runs"
    );
    let events = s.events();
    let execs: Vec<&Value> = events
        .iter()
        .filter(|e| e["category"] == "process")
        .collect();
    let find = |name: &str| {
        execs
            .iter()
            .find(|e| e["path"].as_str().unwrap_or("").contains(name))
            .unwrap_or_else(|| panic!("no event for {name}: {}", summary(&events)))
    };
    for (name, argv) in [("which", vec!["which", "ps"]), ("/ps", vec!["ps", "-ef"])] {
        let e = find(name);
        assert_eq!(e["verdict"], "alert");
        assert_eq!(e["syscall"], "execve");
        assert_eq!(
            e["exe"], "/usr/bin/dash",
            "the parent executable is the shell"
        );
        assert_eq!(e["argv"], serde_json::json!(argv));
        for field in [
            "time",
            "pid",
            "ppid",
            "uid",
            "cwd",
            "reason",
            "ancestors",
            "container",
        ] {
            assert!(!e[field].is_null(), "{field} missing in {e}");
        }
        assert!(e["reason"]
            .as_str()
            .unwrap()
            .contains("not a program this workload runs"));
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
}

#[test]
fn unlearned_connect_listen_and_write_are_flagged_then_denied() {
    let s = Scratch::new();
    let load = testload();
    let load = load.to_str().unwrap();
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let learned_port = server.local_addr().unwrap().port().to_string();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port().to_string();
    let (learned_file, other_file) = (s.s("learned.log"), s.s("other.log"));
    // Learn: a connect, a listen on a port, a write.
    let free_port = |_: ()| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let listen_port = free_port(());
    for args in [
        vec![load, "connect", "127.0.0.1", &learned_port],
        vec![load, "listen", &listen_port],
        vec![load, "write", &learned_file],
    ] {
        let o = s.run("learn", &args);
        assert!(stdout(&o).contains(" ok"), "{}", stdout(&o));
    }
    // Alert: the same calls pass silently; new ones pass with an event each.
    let unlearned_listen = free_port(());
    for (args, expect_event) in [
        (vec![load, "connect", "127.0.0.1", &learned_port], false),
        (vec![load, "listen", &listen_port], false),
        (vec![load, "write", &learned_file], false),
        (vec![load, "connect", "127.0.0.1", &other_port], true),
        (vec![load, "listen", &unlearned_listen], true),
        (vec![load, "write", &other_file], true),
    ] {
        s.clear_events();
        let o = s.run("alert", &args);
        assert!(
            stdout(&o).contains(" ok"),
            "alert mode allows: {}",
            stdout(&o)
        );
        let ev = s.events();
        assert_eq!(!ev.is_empty(), expect_event, "{args:?}: {}", summary(&ev));
        if expect_event {
            assert_eq!(ev[0]["verdict"], "alert");
        }
    }
    let e = {
        s.clear_events();
        s.run("alert", &[load, "connect", "127.0.0.1", &other_port]);
        s.events().remove(0)
    };
    assert_eq!(e["category"], "network");
    assert_eq!(e["op"], "connect");
    assert_eq!(e["family"], "inet");
    assert_eq!(e["protocol"], "tcp");
    assert_eq!(e["address"], "127.0.0.1");
    assert_eq!(e["port"].as_u64().unwrap().to_string(), other_port);
    // Enforce: learned calls still work; the others fail with the documented errno.
    std::fs::remove_file(&other_file).unwrap();
    let eacces = format!("errno={}", libc::EACCES);
    for (args, want) in [
        (
            vec![load, "connect", "127.0.0.1", &learned_port],
            " ok".to_string(),
        ),
        (vec![load, "listen", &listen_port], " ok".to_string()),
        (vec![load, "write", &learned_file], " ok".to_string()),
        (
            vec![load, "connect", "127.0.0.1", &other_port],
            eacces.clone(),
        ),
        (vec![load, "listen", &unlearned_listen], eacces.clone()),
        (vec![load, "write", &other_file], eacces.clone()),
    ] {
        s.clear_events();
        let o = s.run("enforce", &args);
        assert!(
            stdout(&o).contains(&want),
            "{args:?}: want {want}, got {}",
            stdout(&o)
        );
        assert!(o.status.success(), "the workload goes on after a denial");
        if want != " ok" {
            let ev = s.events();
            assert_eq!(ev.len(), 1, "{}", summary(&ev));
            assert_eq!(ev[0]["verdict"], "deny");
        }
    }
    assert!(
        !Path::new(&other_file).exists(),
        "a denied create leaves nothing behind"
    );
    assert_eq!(
        std::fs::read_to_string(&learned_file)
            .unwrap()
            .lines()
            .count(),
        3,
        "learn, alert, enforce"
    );
}

#[test]
fn enforce_mode_denies_unlearned_programs_with_eperm_and_the_shell_goes_on() {
    let s = Scratch::new();
    assert!(s
        .run("learn", &["sh", "-c", "ls / > /dev/null"])
        .status
        .success());
    let out = s.run(
        "enforce",
        &[
            "sh",
            "-c",
            "ls / > /dev/null; echo ls=$?; which ps; echo which=$?; ps -ef; echo ps=$?",
        ],
    );
    let text = stdout(&out);
    assert!(text.contains("ls=0"), "{text}");
    assert!(
        text.contains("which=126") && text.contains("ps=126"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"));
    let ev = s.events();
    assert!(ev.iter().all(|e| e["verdict"] == "deny"));
    assert!(
        ev.iter().any(|e| e["path"] == "/usr/bin/ps"),
        "{}",
        summary(&ev)
    );
}

#[test]
fn a_racing_thread_never_gets_a_forbidden_file_written() {
    let s = Scratch::new();
    let load = testload();
    let load = load.to_str().unwrap();
    // Same length, so the racing thread can swap one for the other in place.
    let (allowed, forbidden) = (s.s("allowed"), s.s("forbide"));
    assert_eq!(allowed.len(), forbidden.len());
    let o = s.run("learn", &[load, "race-open", &allowed, &allowed, "10"]);
    assert!(stdout(&o).contains("ok=10"), "{}", stdout(&o));
    let o = s.run(
        "enforce",
        &[load, "race-open", &allowed, &forbidden, "3000"],
    );
    let text = stdout(&o);
    assert!(
        !Path::new(&forbidden).exists(),
        "the forbidden file was created: {text}"
    );
    let ok: usize = text
        .split("ok=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        ok > 0,
        "some opens of the allowed path must still succeed: {text}"
    );
    let written = std::fs::read_to_string(&allowed).unwrap().len();
    assert_eq!(
        written,
        10 + ok,
        "every successful open wrote the allowed file"
    );
    eprintln!("race-open: {text}");
}

#[test]
fn a_racing_thread_never_gets_a_forbidden_program_executed() {
    let s = Scratch::new();
    let load = testload();
    let load = load.to_str().unwrap();
    let (allowed, forbidden) = (s.s("okprog"), s.s("badprg"));
    let marker = s.path("forbidden-ran");
    std::fs::copy("/usr/bin/true", &allowed).unwrap();
    std::fs::write(
        &forbidden,
        format!(
            "#!/bin/sh\necho forbidden-ran\necho ran > {}\n",
            marker.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&forbidden, std::fs::Permissions::from_mode(0o755)).unwrap();
    // What the forbidden program would do is allowed: only its exec is not.
    let learned_write = format!("echo learned > {}", marker.display());
    assert!(s
        .run("learn", &["sh", "-c", &learned_write])
        .status
        .success());
    std::fs::remove_file(&marker).unwrap();
    let o = s.run("learn", &[load, "race-exec", &allowed, &allowed, "5"]);
    assert!(stdout(&o).contains("ran=5"), "{o:?}");
    s.clear_events();
    let o = s.run(
        "enforce",
        &[load, "race-exec", &allowed, &forbidden, "2000"],
    );
    let text = stdout(&o);
    assert!(
        !marker.exists() && !text.contains("forbidden-ran"),
        "the forbidden program ran: {text}"
    );
    let n = |name: &str| -> usize {
        text.split(&format!("{name}="))
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {text}"))
    };
    // The keeper traces the workload: the allowed program runs from this
    // two-threaded process (refused as unverifiable before), and whatever
    // the racing thread made the kernel load instead is killed at its exec
    // stop, each with an event. The other refusals are the racer's path,
    // read by the supervisor (outside the model), or a torn read of half of
    // each (no such file, as the kernel would say, without an event).
    assert_eq!(n("ran") + n("refused") + n("killed"), 2000, "{text}");
    assert!(n("ran") > 0, "{text}");
    let ev = s.events();
    let killed_events = ev
        .iter()
        .filter(|e| {
            e["kind"] == "unverifiable"
                && e["reason"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("the program the kernel loaded is not the one nfguard checked")
        })
        .count();
    assert_eq!(killed_events, n("killed"), "{text}\n{}", summary(&ev));
    eprintln!("race-exec: {text}");
    // The same exec from a single-threaded process is allowed too.
    let script = format!("{load} exec {allowed}; echo rc=$?");
    assert!(s.run("learn", &["sh", "-c", &script]).status.success());
    let o = s.run("enforce", &["sh", "-c", &script]);
    assert!(stdout(&o).contains("rc=0"), "{}", stdout(&o));
}

#[test]
fn many_threads_and_a_fork_storm_do_not_deadlock() {
    let s = Scratch::new();
    let load = testload();
    let load = load.to_str().unwrap();
    let dir = s.s("");
    let start = Instant::now();
    let o = s.run("learn", &[load, "threads", "16", "200", &dir]);
    assert!(stdout(&o).contains("threads ok=3200"), "{}", stdout(&o));
    let o = s.run("learn", &[load, "forkstorm", "64", "/usr/bin/true"]);
    assert!(stdout(&o).contains("forkstorm ok=64"), "{}", stdout(&o));
    // Enforce mode emulates every open: the same storm must complete too.
    let o = s.run("enforce", &[load, "threads", "16", "200", &dir]);
    assert!(stdout(&o).contains("threads ok=3200"), "{}", stdout(&o));
    let o = s.run("enforce", &[load, "forkstorm", "64", "/usr/bin/true"]);
    assert!(stdout(&o).contains("forkstorm ok=64"), "{}", stdout(&o));
    assert!(
        start.elapsed() < Duration::from_secs(120),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn a_killed_supervisor_pauses_the_workload_and_its_restart_resumes_it() {
    let s = Scratch::new();
    let load = testload();
    let sock = s.path("sup.sock");
    let counter = s.path("counter");
    let supervise = |mode: &str| {
        Command::new(NFGUARD)
            .args(s.supervise_args(mode, &sock))
            .spawn()
            .map(Reaped)
            .unwrap()
    };
    // Learn what the ticking workload does, briefly.
    let mut sup = supervise("learn");
    let o = Command::new(LAUNCH)
        .arg("--socket")
        .arg(&sock)
        .arg("--")
        .arg(&load)
        .args(["tick", counter.to_str().unwrap(), "1", "3"])
        .output()
        .unwrap();
    assert!(stdout(&o).contains("tick done"), "{o:?}");
    std::thread::sleep(Duration::from_millis(1500)); // the saver writes the model each second
    sup.kill().unwrap();
    sup.wait().unwrap();
    // Enforce: start ticking, kill -9 the supervisor, check the ticks stop and
    // the workload lives, restart, check it resumes and finishes well.
    let mut sup = supervise("enforce");
    let work = Command::new(LAUNCH)
        .arg("--socket")
        .arg(&sock)
        .arg("--")
        .arg(&load)
        .args(["tick", counter.to_str().unwrap(), "20", "150"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut work = Reaped(work);
    let read = || {
        std::fs::read_to_string(&counter)
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while read().unwrap_or(0) < 5 {
        assert!(Instant::now() < deadline, "the workload does not tick");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    sup.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let paused_at = read();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        read(),
        paused_at,
        "notified syscalls must wait, not pass unchecked, while no supervisor runs"
    );
    assert!(
        work.try_wait().unwrap().is_none(),
        "the workload must survive the supervisor's death"
    );
    let mut sup = supervise("enforce");
    let status = work.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(work.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        status.success() && out.contains("tick done"),
        "{status:?} {out}"
    );
    assert_eq!(read(), Some(149));
    sup.kill().unwrap();
    sup.wait().unwrap();
    assert!(s.events().is_empty(), "{}", summary(&s.events()));
}

#[test]
fn bad_arguments_and_bad_models_get_one_clear_line_and_a_nonzero_exit() {
    let s = Scratch::new();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "run".into(),
                "--mode".into(),
                "strict".into(),
                "--".into(),
                "true".into(),
            ],
            "learn, alert, enforce",
        ),
        (
            vec![
                "run".into(),
                "--mode".into(),
                "alert".into(),
                "--model".into(),
                s.s("missing.json"),
                "--".into(),
                "true".into(),
            ],
            "does not exist",
        ),
        (
            vec![
                "run".into(),
                "--mode".into(),
                "learn".into(),
                "--model".into(),
                s.s("m.json"),
                "--".into(),
                "no-such-command-x".into(),
            ],
            "no-such-command-x: command not found",
        ),
    ];
    for (args, want) in cases {
        let o = Command::new(NFGUARD).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    std::fs::write(s.path("bad.json"), "{\"version\": 1, \"processes\": 7}").unwrap();
    let o = Command::new(NFGUARD)
        .args(["run", "--mode", "enforce", "--model"])
        .arg(s.path("bad.json"))
        .args(["--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not a valid nfguard model"), "{err}");
    let o = Command::new(NFGUARD)
        .args(["model", "show"])
        .arg(s.path("bad.json"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    // A learn run that fails to start writes no model.
    assert!(!s.path("m.json").exists());
}

#[test]
fn exit_status_and_signals_pass_through_the_launcher() {
    let s = Scratch::new();
    let o = s.run("learn", &["sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    let o = s.run("learn", &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(o.status.code(), Some(128 + libc::SIGTERM));
}

#[test]
fn io_uring_and_raw_sockets_are_covered() {
    let s = Scratch::new();
    let load = testload();
    let load = load.to_str().unwrap();
    // A TCP socket is learned; a raw ICMP one is not, then flagged and denied.
    let o = s.run("learn", &[load, "socket", "2", "1", "0"]);
    assert!(stdout(&o).contains("socket ok"));
    let raw = ["socket", "2", "3", "1"];
    s.run("alert", &[&[load][..], &raw[..]].concat());
    let ev = s.events();
    assert!(
        ev.iter()
            .any(|e| e["op"] == "socket" && e["protocol"] == "icmp"),
        "{}",
        summary(&ev)
    );
    let o = s.run("enforce", &[&[load][..], &raw[..]].concat());
    assert!(
        stdout(&o).contains(&format!("errno={}", libc::EACCES)),
        "{}",
        stdout(&o)
    );
    // io_uring bypasses seccomp: refused outright, whatever the mode.
    let o = s.run(
        "learn",
        &[load, "raw", &libc::SYS_io_uring_setup.to_string()],
    );
    assert!(
        stdout(&o).contains(&format!("raw errno={}", libc::EPERM)),
        "{}",
        stdout(&o)
    );
    // SCTP does not exist on this kernel, but socket() is still notified and decoded.
    s.clear_events();
    s.run("alert", &[load, "socket", "2", "1", "132"]);
    assert!(
        s.events().iter().any(|e| e["protocol"] == "sctp"),
        "{}",
        summary(&s.events())
    );
}

#[test]
fn a_real_network_function_is_learned_then_runs_in_alert_mode_with_no_event() {
    if !require("osmo-hlr", "osmo-hlr") {
        return;
    }
    let s = Scratch::new();
    let db = s.s("hlr.db");
    let hlr = ["osmo-hlr", "-c", "/etc/osmocom/osmo-hlr.cfg", "-l", &db];
    let run_for = |mode: &str, secs: u64| {
        let mut child = Command::new(NFGUARD)
            .args(["run", "--mode", mode, "--model"])
            .arg(s.model())
            .arg("--events")
            .arg(s.events_path())
            .arg("--")
            .args(hlr)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // While it runs, talk to it as a peer would: a GSUP client and a VTY client connect.
        std::thread::sleep(Duration::from_secs(secs));
        for port in [4222, 4258] {
            let c = std::net::TcpStream::connect(("127.0.0.1", port));
            assert!(
                c.is_ok(),
                "osmo-hlr does not serve port {port} under nfguard ({mode})"
            );
        }
        std::thread::sleep(Duration::from_millis(500));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        child.wait().unwrap()
    };
    run_for("learn", 2);
    let model = std::fs::read_to_string(s.model()).unwrap();
    assert!(
        model.contains("\"port\": 4222"),
        "GSUP port learned: {model}"
    );
    assert!(model.contains("hlr.db"), "database writes learned: {model}");
    run_for("alert", 2);
    assert!(s.events().is_empty(), "{}", summary(&s.events()));
}

#[test]
fn a_call_the_dead_supervisor_received_but_never_answered_is_answered_after_restart() {
    let s = Scratch::new();
    let load = testload();
    let sock = s.path("sup.sock");
    let counter = s.path("counter");
    let supervise = |mode: &str, crash_after: Option<u32>| {
        let mut c = Command::new(NFGUARD);
        c.args(s.supervise_args(mode, &sock)).stderr(Stdio::null());
        if let Some(n) = crash_after {
            c.env("NFGUARD_TEST_CRASH_AFTER", n.to_string());
        }
        Reaped(c.spawn().unwrap())
    };
    let tick = |n: &str| {
        Command::new(LAUNCH)
            .arg("--socket")
            .arg(&sock)
            .arg("--")
            .arg(&load)
            .args(["tick", counter.to_str().unwrap(), "5", n])
            .stdout(Stdio::piped())
            .spawn()
            .map(Reaped)
            .unwrap()
    };
    let mut sup = supervise("learn", None);
    let mut t = tick("3");
    assert!(t.wait().unwrap().success());
    let mut o = String::new();
    std::io::Read::read_to_string(t.stdout.as_mut().unwrap(), &mut o).unwrap();
    let o = Output {
        status: t.wait().unwrap(),
        stdout: o.into_bytes(),
        stderr: Vec::new(),
    };
    assert!(stdout(&o).contains("tick done"));
    std::thread::sleep(Duration::from_millis(1500));
    sup.kill().unwrap();
    sup.wait().unwrap();
    // This supervisor dies right after receiving its 4th notification (the
    // exec, then three ticks' opens), without answering it.
    let mut sup = supervise("enforce", Some(4));
    let mut work = tick("20");
    let status = sup.wait().unwrap();
    assert!(!status.success(), "the crash hook must have fired");
    // With no supervisor, the pending open is neither failed nor let
    // through: the workload waits and the counter stays where it was.
    // (Which tick it is depends on the notifications before the crash; the
    // exact count is not what this test is about.)
    let before = std::fs::read_to_string(&counter).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        work.try_wait().unwrap().is_none(),
        "the workload waits in its syscall"
    );
    let held = std::fs::read_to_string(&counter).unwrap();
    assert_eq!(held, before, "a tick was written with no supervisor");
    assert!(
        held.parse::<u32>().unwrap() < 4,
        "the crash came after the 4th notification: {held}"
    );
    // The next supervisor finds it in the journal and answers it.
    let mut sup = supervise("enforce", None);
    let status = exit_within(
        &mut work,
        Duration::from_secs(10),
        "the pending call was never answered",
    );
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "19");
    sup.kill().unwrap();
    sup.wait().unwrap();
}

#[test]
fn an_emulated_write_has_the_workloads_rights_not_the_supervisors() {
    // In enforce mode the (root) supervisor opens and creates files for the
    // workload: it must do so with the workload's filesystem ids, or a
    // learned write would succeed where the kernel would refuse it.
    if !require_root("runs a workload as another user") || !require("setpriv", "util-linux") {
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let s = Scratch::with_nobodys_dir();
    std::fs::write(s.path("roots"), "root's\n").unwrap();
    std::fs::set_permissions(s.path("roots"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let script = format!(
        "echo x > {roots}; echo roots=$?; echo y > {new}; echo new=$?",
        roots = s.s("roots"),
        new = s.s("own/new"),
    );
    let cmd = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        "sh",
        "-c",
        &script,
    ];
    let learned = stdout(&s.run("learn", &cmd));
    assert!(learned.contains("new=0"), "{learned}");
    std::fs::remove_file(s.path("own/new")).unwrap();
    let out = s.run("enforce", &cmd);
    let text = stdout(&out);
    assert!(s.events().is_empty(), "{}", summary(&s.events()));
    // The learned write to root's file is made as nobody: refused, as without nfguard.
    assert!(!text.contains("roots=0"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    assert_eq!(
        std::fs::read_to_string(s.path("roots")).unwrap(),
        "root's\n"
    );
    // The learned create is made as nobody: the new file is nobody's.
    assert!(text.contains("new=0"), "{text}");
    let meta = std::fs::metadata(s.path("own/new")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    assert_eq!(std::fs::read_to_string(s.path("own/new")).unwrap(), "y\n");
}

#[test]
fn an_emulated_write_has_the_workloads_groups_and_leaves_the_thread_its_own_rights() {
    // A root workload that drops its groups and capabilities has the
    // supervisor's uid and gid but less: its learned write to a file only
    // the supervisor's group may write must be refused, as without nfguard.
    // Then a root task with every capability, served by the same listener
    // thread, must still get its learned write (the thread took its own
    // rights back, capabilities first).
    if !require_root("runs the supervisor in a group of its own")
        || !require("setpriv", "util-linux")
    {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let (group_only, owners_only) = (s.path("group-only"), s.path("owners-only"));
    for (p, mode) in [(&group_only, 0o060), (&owners_only, 0o600)] {
        std::fs::write(p, "").unwrap();
        std::os::unix::fs::chown(p, Some(1234), Some(4242)).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let script = format!(
        "setpriv --clear-groups --bounding-set=-all -- sh -c 'echo x >> {g} && echo capless-wrote'; echo y >> {o} && echo root-wrote",
        g = group_only.display(),
        o = owners_only.display(),
    );
    let run = |mode: &str| {
        Command::new("setpriv")
            .args(["--groups", "4242", "--"])
            .arg(NFGUARD)
            .args(["run", "--mode", mode, "--model"])
            .arg(s.model())
            .arg("--events")
            .arg(s.events_path())
            .args(["--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let learned = run("learn");
    assert!(learned.status.success(), "{learned:?}");
    std::fs::write(&owners_only, "").unwrap();
    let out = run("enforce");
    let text = stdout(&out);
    assert!(!text.contains("capless-wrote"), "{out:?}");
    assert_eq!(std::fs::read_to_string(&group_only).unwrap(), "");
    assert!(text.contains("root-wrote"), "{out:?}");
    assert_eq!(std::fs::read_to_string(&owners_only).unwrap(), "y\n");
    assert!(s.events().is_empty(), "{}", summary(&s.events()));
}

#[test]
fn a_learned_write_is_refused_behind_a_directory_the_workload_cannot_search() {
    // A root supervisor resolves paths with the workload's rights in enforce
    // mode: reopening what it resolved (through /proc/self/fd) checks only
    // the file, so a root resolution would reach, for nobody, a file behind a
    // directory nobody may not enter.
    if !require_root("runs a workload as another user") || !require("setpriv", "util-linux") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::with_nobodys_dir();
    std::fs::create_dir(s.path("locked")).unwrap();
    std::fs::write(s.path("locked/f"), "before\n").unwrap();
    std::fs::set_permissions(s.path("locked/f"), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(s.path("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = format!("echo after > {f}; echo wrote=$?", f = s.s("locked/f"));
    let cmd = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        "sh",
        "-c",
        &script,
    ];
    let learned = stdout(&s.run("learn", &cmd));
    assert!(
        learned.contains("wrote=0"),
        "learned while the directory was open: {learned}"
    );
    std::fs::write(s.path("locked/f"), "before\n").unwrap();
    std::fs::set_permissions(s.path("locked"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let text = stdout(&s.run("enforce", &cmd));
    assert!(!text.contains("wrote=0"), "{text}");
    assert_eq!(
        std::fs::read_to_string(s.path("locked/f")).unwrap(),
        "before\n"
    );
}

#[test]
fn a_supervisor_that_cannot_take_the_workloads_ids_refuses_rather_than_act_as_itself() {
    // A root supervisor without CAP_SETUID/CAP_SETGID (a sidecar that runs as
    // root beside an NF that runs as another user) cannot switch to the
    // workload's ids: an allowed write is then refused in enforce mode, not
    // made with root's rights.
    if !require_root("runs a workload as another user") || !require("setpriv", "util-linux") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::with_nobodys_dir();
    let sock = s.path("sup.sock");
    let supervise = |mode: &str| {
        let _ = std::fs::remove_file(&sock);
        let sup = Command::new("setpriv")
            .args(["--bounding-set=-setuid,-setgid", "--", NFGUARD])
            .args(s.supervise_args(mode, &sock))
            .stderr(Stdio::piped())
            .spawn()
            .map(Reaped)
            .unwrap();
        wait_for_socket(&sock);
        // The launcher runs as nobody: let it connect.
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
        sup
    };
    let work = || {
        let script = format!("echo y > {}; echo f=$?", s.s("own/f"));
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(LAUNCH)
            .arg("--socket")
            .arg(&sock)
            .args(["--", "sh", "-c", &script])
            .output()
            .unwrap()
    };
    let mut sup = supervise("learn");
    let learned = work();
    assert!(stdout(&learned).contains("f=0"), "{learned:?}");
    std::thread::sleep(Duration::from_millis(1500)); // the model is saved each second
    sup.kill().unwrap();
    sup.wait().unwrap();
    std::fs::remove_file(s.path("own/f")).unwrap();

    let mut sup = supervise("enforce");
    let out = work();
    sup.kill().unwrap();
    let _ = sup.wait();
    let mut sup_out = String::new();
    std::io::Read::read_to_string(sup.stderr.as_mut().unwrap(), &mut sup_out).unwrap();
    assert!(!stdout(&out).contains("f=0"), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    assert!(
        !s.path("own/f").exists(),
        "written with the supervisor's rights"
    );
    assert!(
        sup_out.contains("runAsUser"),
        "the supervisor says why: {sup_out}"
    );
}

#[test]
fn a_supervisor_that_closes_at_once_is_retried_slowly_not_hammered() {
    // A supervisor that refuses the hello (another protocol version after an
    // upgrade, say) closes right after the handover: the keeper must back
    // off, not reconnect in a loop that eats a CPU and floods the log.
    let s = Scratch::new();
    let sock = s.path("closer.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let launcher = Command::new(LAUNCH)
        .arg("--socket")
        .arg(&sock)
        .args(["--", "true"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut launcher = Reaped(launcher);
    let (mut accepted, until) = (0, Instant::now() + Duration::from_secs(3));
    while Instant::now() < until {
        match listener.accept() {
            Ok((conn, _)) => {
                accepted += 1;
                drop(conn);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    launcher.kill().unwrap();
    let _ = launcher.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(launcher.stderr.as_mut().unwrap(), &mut err).unwrap();
    // 20, 40, 80, 160, 320, then 500 ms apart: about 10 in 3 s.
    assert!((2..=15).contains(&accepted), "{accepted} handovers in 3 s");
    let warnings = err.matches("supervisor disconnected").count();
    assert!((1..=2).contains(&warnings), "{warnings} warnings: {err}");
}

#[test]
fn a_client_that_connects_and_says_nothing_does_not_hold_up_a_keeper() {
    let s = Scratch::new();
    let sock = s.path("sup.sock");
    let mut sup = Command::new(NFGUARD)
        .args(s.supervise_args("learn", &sock))
        .spawn()
        .map(Reaped)
        .unwrap();
    wait_for_socket(&sock);
    // Connected, silent, and kept open for the whole test.
    let _silent = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let started = Instant::now();
    let mut work = Command::new(LAUNCH)
        .arg("--socket")
        .arg(&sock)
        .args(["--", "sh", "-c", "echo handed-over"])
        .stdout(Stdio::piped())
        .spawn()
        .map(Reaped)
        .unwrap();
    // Without a thread per hello the keeper waits for the silent client
    // forever; with it, well under the 5 s hello timeout.
    let status = exit_within(
        &mut work,
        Duration::from_secs(4),
        "the keeper's handover waited behind a silent client",
    );
    let mut out = String::new();
    std::io::Read::read_to_string(work.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        status.success() && out.contains("handed-over"),
        "{status:?} {out}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    sup.kill().unwrap();
    let _ = sup.wait();
}

/// A learn-mode supervisor with its API, as the sidecar runs it, and the
/// sidecar's liveness probe (`nfguard health --live`) pointed at it.
struct Probed {
    supervisor: Reaped,
    shared: PathBuf,
    sock: PathBuf,
    api: String,
}

impl Probed {
    /// Starts the supervisor and waits until the probe first passes (the
    /// API may take a moment to listen).
    fn start(s: &Scratch) -> Probed {
        let shared = s.path("shared");
        std::fs::create_dir_all(shared.join("bin")).unwrap();
        std::fs::write(shared.join("ready"), "").unwrap();
        std::fs::write(shared.join("bin/nfguard-launch"), "").unwrap();
        let sock = shared.join("supervisor.sock");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let api = format!("127.0.0.1:{port}");
        let mut args = s.supervise_args("learn", &sock);
        args.extend(["--api".into(), api.clone().into()]);
        let supervisor = Reaped(Command::new(NFGUARD).args(args).spawn().unwrap());
        wait_for_socket(&sock);
        let p = Probed {
            supervisor,
            shared,
            sock,
            api,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !p.probe().status.success() {
            assert!(Instant::now() < deadline, "never live: {:?}", p.probe());
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    fn probe(&self) -> std::process::Output {
        Command::new(NFGUARD)
            .args(["health", "--live"])
            .env("NFGUARD_SHARED_DIR", &self.shared)
            .env("NFGUARD_SOCKET", &self.sock)
            .env("NFGUARD_API_ADDR", &self.api)
            .output()
            .unwrap()
    }
}

#[test]
fn a_stopped_supervisor_fails_its_liveness_probe_and_passes_it_again_once_resumed() {
    // The sidecar's liveness probe (`nfguard health --live`) must tell a
    // supervisor that answers from one that is stopped: the kernel still
    // queues connections to a stopped process's sockets, so only an answer
    // proves it lives (the kubelet then restarts the sidecar).
    let s = Scratch::new();
    let live = Probed::start(&s);
    let (sup, probe) = (&live.supervisor, || live.probe());
    let pid = nix::unistd::Pid::from_raw(sup.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let started = Instant::now();
    let stopped = probe();
    assert!(
        !stopped.status.success(),
        "a stopped supervisor passed: {stopped:?}"
    );
    assert!(
        String::from_utf8_lossy(&stopped.stderr).contains("no answer"),
        "{stopped:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the probe must time out by itself"
    );
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let resumed = probe();
    assert!(resumed.status.success(), "{resumed:?}");
}

#[test]
fn a_listener_stuck_on_one_call_fails_the_liveness_probe_until_the_call_ends() {
    // A supervisor can be alive and answer its API while one of its
    // listeners is stuck: here, resolving a path on a FUSE mount whose
    // server never answers (an uninitialised connection holds every
    // lookup). The workload is then paused without a sound; the probe must
    // fail so the kubelet restarts the sidecar, and pass again once the
    // call ends (the FUSE connection closed: the lookup fails).
    if !require_root("runs a workload as another user") {
        return;
    }
    if !Path::new("/dev/fuse").exists() {
        let msg = "this test needs /dev/fuse (the fuse module)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let s = Scratch::new();
    let stuck = s.path("stuck");
    std::fs::create_dir(&stuck).unwrap();
    // The server: a shell that opens /dev/fuse, mounts it (`mount -i`: no
    // helper) and sleeps, never reading a request.
    let mut fuse = Reaped(
        Command::new("sh")
            .arg("-c")
            .arg(
                "exec 3<>/dev/fuse && mount -i -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0 nfguard-stuck \"$1\" && echo mounted && exec sleep 600",
            )
            .arg("sh")
            .arg(&stuck)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(fuse.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "mounted", "the FUSE mount failed");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(stuck.clone());

    let live = Probed::start(&s);
    let (sock, probe) = (&live.sock, || live.probe());
    // A write into the mount: the open is notified, and its resolution
    // waits on the FUSE server.
    let target = stuck.join("file");
    let mut work = Reaped(
        Command::new(LAUNCH)
            .arg("--socket")
            .arg(sock)
            .arg("--")
            .args(["sh", "-c", "echo x > \"$1\"; echo done", "sh"])
            .arg(&target)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let failed = loop {
        let o = probe();
        if !o.status.success() {
            break o;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a listener busy for 30 s still passes the probe"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "the probe failed before the call was stuck for 10 s: {failed:?}"
    );
    let why = String::from_utf8_lossy(&failed.stderr);
    assert!(why.contains("busy with one call"), "{failed:?}");
    assert!(
        work.try_wait().unwrap().is_none(),
        "the workload should wait on the stuck call"
    );
    // The server goes away: the connection is aborted, the lookup fails,
    // the call is answered, and the supervisor is live again.
    fuse.kill().unwrap();
    fuse.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe().status.success() {
        assert!(Instant::now() < deadline, "still not live: {:?}", probe());
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = exit_within(
        &mut work,
        Duration::from_secs(10),
        "the workload never finished once its call was answered",
    );
    let mut out = String::new();
    std::io::Read::read_to_string(work.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(out.contains("done"), "{status:?} {out}");
}
