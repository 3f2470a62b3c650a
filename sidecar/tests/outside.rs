//! The exec-session watcher on real processes: a real PID namespace (`unshare --pid --fork
//! --mount-proc`) holding `nfguard supervise --watch-outside` and a launcher-started workload,
//! and "outside" processes entered into it with `nsenter --target PID --pid --mount`, as the
//! container runtime enters a pod for `kubectl exec` or an exec probe.
//!
//! Like a real container, each test pod has executable directories of its own: read-only
//! overlays over /usr/bin, /usr/sbin and /usr/local/bin in the pod's mount namespace. The
//! watcher's inotify watches then see the pod's execs only, not those of the machine running
//! the tests (other tests, the compiler), exactly as a pod's watches see only that
//! container's root.
//!
//! Nothing here depends on the watcher winning a race against a short process: a process
//! gone before /proc is read is still reported, from its exec's `IN_OPEN`
//! (`session: outside-unseen`, pid -1). The tests run one at a time (they are timing
//! sensitive and each starts a pod).
//!
//! Needs root (namespaces, mounts, nsenter), util-linux and overlayfs; ptrace must be
//! allowed for the enforce test (it is here: no Yama).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

const NFGUARD: &str = env!("CARGO_BIN_EXE_nfguard");
const LAUNCHER: &str = env!("CARGO_BIN_EXE_nfguard-launch");

/// One pod at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A PID namespace with the supervisor (pid 2) and a workload under the launcher, which
/// stays as the namespace's init (the keeper), as in a pod. The launcher waits for the
/// supervisor's socket by itself: no process is forked in the pod once the watcher runs.
struct Pod {
    unshare: Child,
    init: i32,
    dir: tempfile::TempDir,
}

impl Drop for Pod {
    fn drop(&mut self) {
        // Killing the namespace's init kills every process in it.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.init),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// Whether some process in the PID namespace of `init` has this command line.
fn runs_in(init: i32, cmdline: &[u8]) -> bool {
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).ok();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == cmdline)
                && std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok() == ns
        })
}

impl Pod {
    fn start(mode: &str, model: Option<&str>, extra: &[&str]) -> Pod {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        if let Some(m) = model {
            std::fs::write(d.join("m.json"), m).unwrap();
        }
        std::fs::create_dir(d.join("empty")).unwrap();
        let script = format!(
            "for b in /usr/bin /usr/sbin /usr/local/bin; do \
               [ -d $b ] && [ ! -L $b ] && {{ mount -t overlay overlay -o lowerdir=$b:{empty} $b || echo \"overlay on $b failed\" >&2; }}; \
             done; \
             {NFGUARD} supervise --mode {mode} --model {m} --events {e} --socket {s} --watch-outside --watch-interval 50ms {extra} 2>{err} & \
             exec {LAUNCHER} --socket {s} --container nf -- sleep 1000",
            empty = d.join("empty").display(),
            m = d.join("m.json").display(),
            e = d.join("e.jsonl").display(),
            s = d.join("s.sock").display(),
            err = d.join("sup.err").display(),
            extra = extra.join(" "),
        );
        let unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script])
            .stdout(Stdio::null())
            .spawn()
            .expect("unshare (util-linux) is needed");
        let upid = unshare.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(20);
        let init = loop {
            let kids = std::fs::read_to_string(format!("/proc/{upid}/task/{upid}/children"))
                .unwrap_or_default();
            if let Some(p) = kids.split_whitespace().next() {
                break p.parse().unwrap();
            }
            assert!(Instant::now() < deadline, "no namespace init");
            std::thread::sleep(Duration::from_millis(20));
        };
        let pod = Pod { unshare, init, dir };
        // Ready when the workload's `sleep 1000` runs in the namespace and the watcher
        // watches the container's executable directories (it says so once). Looked at from
        // here, not from inside: a `ps` entered into the pod would itself be an outside
        // process.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(runs_in(init, b"sleep\x001000\x00")
            && pod.stderr().contains("watching execs in container nf"))
        {
            assert!(
                Instant::now() < deadline,
                "pod did not start: {}",
                pod.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        pod
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("sup.err")).unwrap_or_default()
    }

    /// Runs `cmd` inside the namespace from outside, as `runc exec` would.
    fn outside(&self, cmd: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["--target", &self.init.to_string(), "--pid", "--mount", "--"])
            .args(cmd)
            .output()
            .expect("nsenter")
    }

    /// The watcher's events (session `outside-*`).
    fn outside_events(&self) -> Vec<Value> {
        read_events(&self.path("e.jsonl"))
            .into_iter()
            .filter(|e| {
                e["session"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("outside-"))
            })
            .collect()
    }

    /// The first event after the first `skip` that satisfies `f`, waiting up to `within`.
    fn wait_for(
        &self,
        what: &str,
        skip: usize,
        f: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.outside_events().into_iter().skip(skip).find(|e| f(e)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no event for {what} within {within:?}; events: {:#?}\nsupervisor: {}",
                self.outside_events(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_for_log(&self, line: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.stderr().contains(line) {
            assert!(
                Instant::now() < deadline,
                "supervisor never said {line:?}: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn read_events(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Does the event name the program `word` (`/usr/bin/which`, or the file it links to,
/// `/usr/bin/which.debianutils`)?
fn names(e: &Value, word: &str) -> bool {
    e["exe"].as_str().is_some_and(|x| {
        let base = x.rsplit('/').next().unwrap_or(x);
        base == word || base.starts_with(&format!("{word}.")) || x == format!("[{word}]")
    })
}

/// An event of a process that had exited before /proc was read: everything but the program
/// is marked unknown.
fn unseen(e: &Value) -> bool {
    e["session"] == "outside-unseen"
}

const EMPTY_MODEL: &str =
    r#"{"version": 1, "processes": [{"exe": "/usr/bin/sleep", "parent": "(launcher)"}]}"#;

#[test]
fn which_ps_and_ps_ef_entered_from_outside_each_raise_an_event_within_a_second() {
    let _one = serial();
    let pod = Pod::start("alert", Some(EMPTY_MODEL), &[]);
    let before = pod.outside_events().len();
    assert!(pod.outside(&["which", "ps"]).status.success());
    let which = pod.wait_for(
        "which ps",
        before,
        |e| names(e, "which"),
        Duration::from_secs(1),
    );
    // `which` is a script here: its interpreter's open is part of its exec, not a program
    // of its own (and `ps` is only its argument).
    std::thread::sleep(Duration::from_millis(200));
    let after_which = pod.outside_events();
    assert!(
        after_which[before..].iter().all(|e| names(e, "which")),
        "{:#?}",
        &after_which[before..]
    );
    let before = after_which.len();
    let ps = pod.outside(&["ps", "-ef"]);
    assert!(ps.status.success());
    let ps_event = pod.wait_for(
        "ps -ef",
        before,
        |e| e["exe"] == "/usr/bin/ps",
        Duration::from_secs(1),
    );
    for e in [&which, &ps_event] {
        assert_eq!(e["category"], "process");
        assert_eq!(e["verdict"], "alert");
        let reason = e["reason"].as_str().unwrap();
        assert!(reason.contains("entered from outside the launcher"), "{e}");
        assert!(reason.contains("is not in the model"), "{e}");
        assert_eq!(e["container"], "nf", "{e}");
        if unseen(e) {
            assert_eq!(e["pid"], -1, "{e}");
            assert_eq!(e["ppid"], -1, "{e}");
            assert!(reason.contains("opened for exec"), "{e}");
        } else {
            assert_eq!(e["ppid"], 0, "entered from outside the namespace: {e}");
        }
    }
    eprintln!(
        "which: {} (pid {}), ps: {} (pid {})",
        which["exe"], which["pid"], ps_event["exe"], ps_event["pid"]
    );
    if !unseen(&ps_event) {
        // Seen running: its argv, unless it became a zombie (cmdline empty)
        // between the scan that found it and the read of its command line.
        let argv = &ps_event["argv"];
        assert!(
            *argv == serde_json::json!(["ps", "-ef"]) || *argv == serde_json::json!([]),
            "{ps_event}"
        );
    }
    // The workload's own processes are not outside ones.
    assert!(
        pod.outside_events().iter().all(|e| !names(e, "sleep")),
        "{:#?}",
        pod.outside_events()
    );
}

/// An exec probe (`sh -c 'which ...; cat ...'` every few seconds, sped up here) learned
/// during the learning period raises nothing afterwards, over 30 runs, whether the watcher
/// sees its processes running, as zombies or not at all; something new still does.
#[test]
fn a_recurring_probe_learned_while_learning_stays_silent_afterwards() {
    let _one = serial();
    let pod = Pod::start("learn", None, &["--learning-period", "6s"]);
    let probe = [
        "sh",
        "-c",
        "which cat > /dev/null && cat /proc/loadavg > /dev/null && test -d /proc/1",
    ];
    for _ in 0..8 {
        assert!(pod.outside(&probe).status.success());
        std::thread::sleep(Duration::from_millis(100));
    }
    pod.wait_for_log(
        "learning period over; now in alert mode",
        Duration::from_secs(20),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(pod.path("m.json")).is_ok_and(|m| m.contains("(outside)")) {
        assert!(Instant::now() < deadline, "the model was not saved");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        pod.outside_events(),
        Vec::<Value>::new(),
        "learning is silent"
    );
    for _ in 0..30 {
        assert!(pod.outside(&probe).status.success());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Whatever is still to be settled is settled well within this.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        pod.outside_events(),
        Vec::<Value>::new(),
        "model: {}\nsupervisor: {}",
        std::fs::read_to_string(pod.path("m.json")).unwrap_or_default(),
        pod.stderr()
    );
    assert!(pod.outside(&["id"]).status.success());
    let e = pod.wait_for("id", 0, |e| names(e, "id"), Duration::from_secs(1));
    assert_eq!(e["verdict"], "alert");
}

/// Enforce + exec-sessions=deny: a learned session shell is followed with ptrace, and the
/// unlearned program it starts is killed at its exec event, before it prints anything.
#[test]
fn enforce_deny_kills_an_unlearned_program_of_an_outside_session_before_it_runs() {
    let _one = serial();
    let model = r#"{"version": 1, "processes": [{"exe": "/usr/bin/dash", "parent": "(outside)"}, {"exe": "/usr/bin/sleep", "parent": "(launcher)"}]}"#;
    let pod = Pod::start("enforce", Some(model), &["--exec-sessions", "deny"]);
    assert!(
        !pod.stderr().contains("not followed with ptrace"),
        "{}",
        pod.stderr()
    );
    // The shell is learned; it spins (builtins only, about a second) long enough to be
    // followed, then runs `id`.
    let out = pod.outside(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; id; echo rc=$?",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("uid="), "id ran: {stdout}");
    assert!(
        stdout.contains("rc=137"),
        "id was not killed by SIGKILL: {stdout}"
    );
    let e = pod.wait_for("id", 0, |e| names(e, "id"), Duration::from_secs(1));
    assert_eq!(e["verdict"], "deny");
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("killed at its exec, before it ran"),
        "{e}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        pod.outside_events().len(),
        1,
        "one event for id, none for the learned shell: {:#?}",
        pod.outside_events()
    );
}

/// An exec session wrapped in the launcher (as the injector's exec rule runs `kubectl
/// exec`): its execs are inside ones, although the supervisor opens each program to read
/// its `#!` line for the exec stop (the session's keeper traces it). That open of
/// nfguard's own is noted for the watcher, as the exec's own open is, so neither is taken
/// for an exec from outside.
#[test]
fn inside_execs_are_not_taken_for_outside_ones_when_nfguard_reads_their_programs() {
    let _one = serial();
    let pod = Pod::start("alert", Some(EMPTY_MODEL), &[]);
    let sock = pod.path("s.sock");
    let session = pod.outside(&[
        LAUNCHER,
        "--socket",
        sock.to_str().unwrap(),
        "--container",
        "nf",
        "--session",
        "wrapped",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10; do /usr/bin/id > /dev/null; /usr/bin/which id > /dev/null; done; echo done",
    ]);
    assert!(
        String::from_utf8_lossy(&session.stdout).contains("done"),
        "{session:?}\nsupervisor: {}",
        pod.stderr()
    );
    // Whatever is still to be settled is settled well within this.
    std::thread::sleep(Duration::from_secs(2));
    let events = read_events(&pod.path("e.jsonl"));
    let outside: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["session"]
                .as_str()
                .is_some_and(|s| s.starts_with("outside-"))
        })
        .collect();
    assert!(
        outside.is_empty(),
        "{outside:#?}\nsupervisor: {}",
        pod.stderr()
    );
    // The session's execs were judged inside, in its own session.
    assert!(
        events
            .iter()
            .any(|e| e["session"] == "wrapped" && e["path"] == "/usr/bin/id"),
        "{events:#?}"
    );
}
