//! The exec-session watcher on real processes: a real PID namespace (`unshare --pid --fork
//! --mount-proc`) holding `nfguard supervise --watch-outside` and a launcher-started workload,
//! and "outside" processes entered into it with `nsenter --target PID --pid --mount`, as the
//! container runtime enters a pod for `kubectl exec` or an exec probe.
//!
//! Needs root (namespaces, nsenter) and util-linux; ptrace must be allowed for the enforce
//! test (it is here: no Yama).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const NFGUARD: &str = env!("CARGO_BIN_EXE_nfguard");
const LAUNCHER: &str = env!("CARGO_BIN_EXE_nfguard-launch");

/// A PID namespace with the supervisor (pid 2) and a workload under the launcher.
struct Pod {
    unshare: Child,
    init: i32,
    dir: tempfile::TempDir,
}

impl Drop for Pod {
    fn drop(&mut self) {
        // Killing the namespace's init kills every process in it.
        let _ = Command::new("kill")
            .args(["-KILL", &self.init.to_string()])
            .status();
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

impl Pod {
    fn start(mode: &str, model: Option<&str>, extra: &[&str]) -> Pod {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        if let Some(m) = model {
            std::fs::write(d.join("m.json"), m).unwrap();
        }
        let script = format!(
            "{NFGUARD} supervise --mode {mode} --model {m} --events {e} --socket {s} --watch-outside --watch-interval 50ms {extra} 2>{err} & \
             while [ ! -S {s} ]; do sleep 0.05; done; exec_sleep=1; {LAUNCHER} --socket {s} --container nf -- sleep 1000",
            m = d.join("m.json").display(),
            e = d.join("e.jsonl").display(),
            s = d.join("s.sock").display(),
            err = d.join("sup.err").display(),
            extra = extra.join(" "),
        );
        let unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare (util-linux) is needed");
        let upid = unshare.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
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
        // Ready when the workload's `sleep 1000` runs in the namespace (the keeper handed over).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&pod.outside(&["ps", "-eo", "args"]).stdout)
            .contains("sleep 1000")
        {
            assert!(
                Instant::now() < deadline,
                "workload did not start: {}",
                pod.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
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

    fn wait_for(&self, what: &str, f: impl Fn(&Value) -> bool, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.outside_events().into_iter().find(|e| f(e)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no event for {what} within {within:?}; events: {:#?}\nsupervisor: {}",
                self.outside_events(),
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

fn mentions(e: &Value, word: &str) -> bool {
    e["exe"]
        .as_str()
        .is_some_and(|x| x.ends_with(&format!("/{word}")) || x == format!("[{word}]"))
        || e["argv"].as_array().is_some_and(|a| {
            a.iter()
                .any(|s| s.as_str().is_some_and(|s| s.ends_with(word)))
        })
}

const EMPTY_MODEL: &str =
    r#"{"version": 1, "processes": [{"exe": "/usr/bin/sleep", "parent": "(launcher)"}]}"#;

#[test]
fn which_ps_and_ps_ef_entered_from_outside_each_raise_an_event_within_a_second() {
    let pod = Pod::start("alert", Some(EMPTY_MODEL), &[]);
    let t = Instant::now();
    assert!(pod.outside(&["which", "ps"]).status.success());
    let which = pod.wait_for("which ps", |e| mentions(e, "which"), Duration::from_secs(1));
    let ps = pod.outside(&["ps", "-ef"]);
    assert!(ps.status.success());
    let ps_event = pod.wait_for(
        "ps -ef",
        |e| e["exe"] == "/usr/bin/ps",
        Duration::from_secs(1),
    );
    eprintln!("both events after {:?}", t.elapsed());
    for e in [&which, &ps_event] {
        assert_eq!(e["category"], "process");
        assert_eq!(e["verdict"], "alert");
        assert_eq!(e["ppid"], 0, "entered from outside the namespace: {e}");
        assert!(
            e["reason"]
                .as_str()
                .unwrap()
                .contains("entered from outside the launcher"),
            "{e}"
        );
        assert_eq!(e["container"], "nf", "{e}");
    }
    assert_eq!(ps_event["argv"], serde_json::json!(["ps", "-ef"]));
    assert!(
        which["argv"].to_string().contains("which") || which["exe"] == "/usr/bin/which",
        "{which}"
    );
    // The workload's own processes are not outside ones.
    assert!(
        pod.outside_events().iter().all(|e| !mentions(e, "sleep")),
        "{:#?}",
        pod.outside_events()
    );
}

/// An exec probe (`sh -c 'cat ...'` every few seconds, sped up here) learned during the
/// learning period raises nothing afterwards, over 30 runs; something new still does.
#[test]
fn a_recurring_probe_learned_while_learning_stays_silent_afterwards() {
    let pod = Pod::start("learn", None, &["--learning-period", "4s"]);
    let probe = [
        "sh",
        "-c",
        "cat /proc/loadavg > /dev/null && test -d /proc/1",
    ];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert!(pod.outside(&probe).status.success());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2)); // the period is over: alert mode
    let model = std::fs::read_to_string(pod.path("m.json")).unwrap();
    assert!(model.contains("(outside)"), "{model}");
    for _ in 0..30 {
        assert!(pod.outside(&probe).status.success());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        pod.outside_events(),
        Vec::<Value>::new(),
        "{}",
        pod.stderr()
    );
    assert!(pod.outside(&["id"]).status.success());
    pod.wait_for("id", |e| mentions(e, "id"), Duration::from_secs(1));
}

/// Enforce + exec-sessions=deny: a learned session shell is followed with ptrace, and the
/// unlearned program it starts is killed at its exec event, before it prints anything.
#[test]
fn enforce_deny_kills_an_unlearned_program_of_an_outside_session_before_it_runs() {
    let model = r#"{"version": 1, "processes": [{"exe": "/usr/bin/dash", "parent": "(outside)"}, {"exe": "/usr/bin/sleep", "parent": "(launcher)"}]}"#;
    let pod = Pod::start("enforce", Some(model), &["--exec-sessions", "deny"]);
    assert!(
        !pod.stderr().contains("not followed with ptrace"),
        "{}",
        pod.stderr()
    );
    // The shell is learned; it spins (builtins only) long enough to be followed, then runs `id`.
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
    let e = pod.wait_for("id", |e| mentions(e, "id"), Duration::from_secs(1));
    assert_eq!(e["verdict"], "deny");
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("killed at its exec, before it ran"),
        "{e}"
    );
}
