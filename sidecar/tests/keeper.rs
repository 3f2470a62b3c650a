//! The keeper as the workload's tracer (issue 11, classes 1, 2 and 7), on
//! real processes under the real filter:
//! - execs verified at the exec stop on what the kernel loaded: learned execs
//!   from multi-threaded processes now run in enforce mode, and races that the
//!   old "nobody else can write this memory" proof missed never run a
//!   forbidden program;
//! - an exec stop pending across a supervisor's death;
//! - the keeper's and the supervisor's handles out of the workload's reach;
//! - nothing of the workload outliving its command; signals and statuses.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{require, require_root, stdout, Reaped};

const NFGUARD: &str = env!("CARGO_BIN_EXE_nfguard");
const LAUNCH: &str = env!("CARGO_BIN_EXE_nfguard-launch");

/// The testload example, built by `cargo test` beside the binaries.
fn testload() -> String {
    let p = Path::new(NFGUARD)
        .parent()
        .unwrap()
        .join("examples/testload");
    assert!(
        p.exists(),
        "{} missing: run the tests with cargo test (it builds examples)",
        p.display()
    );
    p.to_string_lossy().into_owned()
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
    fn s(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
    fn model(&self) -> PathBuf {
        self.path("model.json")
    }
    fn events_path(&self) -> PathBuf {
        self.path("events.jsonl")
    }
    fn cmd(&self, mode: &str, extra: &[&str], cmd: &[&str]) -> Command {
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
    /// `nfguard run --mode MODE ... -- CMD...`, to the end.
    fn run(&self, mode: &str, cmd: &[&str]) -> Output {
        self.cmd(mode, &[], cmd).output().unwrap()
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
    fn executable(&self, name: &str, text: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_string_lossy().into_owned()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn summary(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["verdict"], e["kind"], e["path"], e["reason"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `name=N` in a testload line.
fn count(text: &str, name: &str) -> usize {
    text.split(&format!("{name}="))
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {text:?}"))
}

#[test]
fn a_learned_exec_from_a_multi_threaded_process_runs_in_enforce_mode() {
    // Refused as unverifiable before the keeper traced the workload: the
    // kernel reads the path after the check, and any thread could change it.
    let s = Scratch::new();
    let load = testload();
    let spawn = [&load[..], "spawn-threaded", "/usr/bin/true"];
    let thread = [
        &load[..],
        "thread-exec",
        "/usr/bin/echo",
        "exec-from-a-thread",
    ];
    assert!(stdout(&s.run("learn", &spawn)).contains("spawn-threaded status=0"));
    assert!(stdout(&s.run("learn", &thread)).contains("exec-from-a-thread"));
    s.clear_events();
    let o = s.run("enforce", &spawn);
    assert!(stdout(&o).contains("spawn-threaded status=0"), "{o:?}");
    // A non-leader thread's exec: the task's id changes to the leader's.
    let o = s.run("enforce", &thread);
    assert!(stdout(&o).contains("exec-from-a-thread"), "{o:?}");
    assert!(o.status.success(), "{o:?}");
    assert!(s.events().is_empty(), "{}", summary(&s.events()));
    // An unlearned program from a thread is still refused, with an event.
    let o = s.run(
        "enforce",
        &[&load[..], "thread-exec", "/usr/bin/printf", "unlearned"],
    );
    assert!(!stdout(&o).contains("unlearned"), "{o:?}");
    assert!(
        stdout(&o).contains(&format!("thread-exec errno={}", libc::EPERM)),
        "{o:?}"
    );
    let ev = s.events();
    assert!(
        ev.iter()
            .any(|e| e["kind"] == "outside-model" && e["path"] == "/usr/bin/printf"),
        "{}",
        summary(&ev)
    );
}

/// A race between an allowed and a forbidden program, run `n` times in
/// enforce mode: the forbidden one (a script that says so on stdout and
/// writes `marker`, a write the model allows, so only the exec check stands
/// in its way) must never run. Returns testload's line.
fn race_never_runs_the_forbidden_program(race: &[&str], learn: &[&str], s: &Scratch) -> String {
    let marker = s.s("marker");
    // What the forbidden program would do is allowed: only its exec is not.
    let learned_write = format!("echo learned > {marker}");
    assert!(s
        .run("learn", &["sh", "-c", &learned_write])
        .status
        .success());
    assert!(s.run("learn", learn).status.success());
    std::fs::remove_file(&marker).unwrap();
    s.clear_events();
    let o = s.run("enforce", race);
    let text = stdout(&o);
    assert!(
        !text.contains("forbidden-ran") && !Path::new(&marker).exists(),
        "the forbidden program ran: {text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains(" ran="))
        .unwrap_or_else(|| panic!("{o:?}"))
        .to_string();
    let n: usize = race.last().unwrap().parse().unwrap();
    let (ran, refused, killed) = (
        count(&line, "ran"),
        count(&line, "refused"),
        count(&line, "killed"),
    );
    assert_eq!(ran + refused + killed, n, "{line}");
    assert!(ran > 0, "the allowed program must still run: {line}");
    // Every kill at the exec stop is an event naming it.
    let ev = s.events();
    let unverifiable = ev
        .iter()
        .filter(|e| {
            e["kind"] == "unverifiable"
                && e["reason"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("the program the kernel loaded is not the one nfguard checked")
        })
        .count();
    assert_eq!(unverifiable, killed, "{line}\n{}", summary(&ev));
    eprintln!("{line}");
    line
}

/// The allowed program (a copy of true) and the forbidden script, of equal path lengths.
fn race_programs(s: &Scratch) -> (String, String) {
    let allowed = s.s("okprog");
    std::fs::copy("/usr/bin/true", &allowed).unwrap();
    let forbidden = s.executable(
        "badprg",
        &format!(
            "#!/bin/sh\necho forbidden-ran\necho ran > {}\n",
            s.s("marker")
        ),
    );
    assert_eq!(allowed.len(), forbidden.len());
    (allowed, forbidden)
}

#[test]
fn a_map_shared_page_rewritten_by_another_process_never_runs_a_forbidden_program() {
    // The exec'ing process has one thread and shares its address space with
    // nobody, which the old proof took as safe; its path is in a MAP_SHARED
    // page that a forked process rewrites.
    let s = Scratch::new();
    let load = testload();
    let (ok, bad) = race_programs(&s);
    race_never_runs_the_forbidden_program(
        &[&load, "race-exec-shared", &ok, &bad, "2000"],
        &[&load, "race-exec-shared", &ok, &ok, "5"],
        &s,
    );
}

#[test]
fn a_clone_fs_sibling_moving_the_cwd_never_runs_a_forbidden_program() {
    // execve("prog") while another process sharing the cwd (CLONE_FS)
    // moves it between a directory where prog is allowed and one where it is not.
    let s = Scratch::new();
    let load = testload();
    let (ok, bad) = race_programs(&s);
    for (dir, prog) in [("a", &ok), ("b", &bad)] {
        std::fs::create_dir(s.path(dir)).unwrap();
        std::fs::copy(prog, s.path(dir).join("prog")).unwrap();
    }
    let (a, b) = (s.s("a"), s.s("b"));
    race_never_runs_the_forbidden_program(
        &[&load, "race-exec-cwd", &a, &b, "prog", "2000"],
        &[&load, "race-exec-cwd", &a, &a, "prog", "5"],
        &s,
    );
}

#[test]
fn a_clone_vm_process_whose_leader_exited_never_runs_a_forbidden_program() {
    // The path is in memory shared (CLONE_VM) with another process whose
    // leader has exited: its racing thread is listed nowhere in /proc's top level.
    let s = Scratch::new();
    let load = testload();
    let (ok, bad) = race_programs(&s);
    race_never_runs_the_forbidden_program(
        &[&load, "race-exec-vm", &ok, &bad, "2000"],
        &[&load, "race-exec-vm", &ok, &ok, "5"],
        &s,
    );
}

#[test]
fn an_exec_stop_pending_while_the_supervisor_dies_is_answered_by_the_next_one() {
    let s = Scratch::new();
    let sock = s.path("sup.sock");
    let supervise = |mode: &str, crash_at: Option<u32>| {
        let _ = std::fs::remove_file(&sock);
        let mut c = Command::new(NFGUARD);
        c.args(["supervise", "--mode", mode, "--model"])
            .arg(s.model())
            .arg("--events")
            .arg(s.events_path())
            .arg("--socket")
            .arg(&sock)
            .stderr(Stdio::null());
        if let Some(n) = crash_at {
            c.env("NFGUARD_TEST_CRASH_AT_EXEC_STOP", n.to_string());
        }
        let sup = Reaped(c.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "no socket from the supervisor");
            std::thread::sleep(Duration::from_millis(10));
        }
        sup
    };
    let out = s.path("out");
    let script = format!(
        "echo one > {o}; /usr/bin/echo two >> {o}",
        o = out.display()
    );
    let work = || {
        Command::new(LAUNCH)
            .arg("--socket")
            .arg(&sock)
            .args(["--", "sh", "-c", &script])
            .stderr(Stdio::piped())
            .spawn()
            .map(Reaped)
            .unwrap()
    };
    let mut sup = supervise("learn", None);
    let mut w = work();
    assert!(w.0.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(1500)); // the model is saved each second
    sup.0.kill().unwrap();
    sup.0.wait().unwrap();
    std::fs::remove_file(&out).unwrap();
    // This supervisor dies when the second exec stop (/usr/bin/echo) comes,
    // after letting its execve through and before answering the stop.
    let mut sup = supervise("enforce", Some(2));
    let mut w = work();
    let status = sup.0.wait().unwrap();
    assert!(!status.success(), "the crash hook must have fired");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        w.0.try_wait().unwrap().is_none(),
        "the task waits, stopped at its exec"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "one\n");
    // The next supervisor gets the stop again and resumes it: the execve it
    // let through was recorded where it can read it.
    let _sup = supervise("enforce", None);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = w.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the pending exec stop was never answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    w.0.stderr
        .as_mut()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status:?} {err}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "one\ntwo\n",
        "{err}"
    );
    assert!(s.events().is_empty(), "{}", summary(&s.events()));
}

#[test]
fn the_workload_cannot_take_the_keepers_or_the_supervisors_handles() {
    // The injected sidecar runs with the workload's uid: a workload of that
    // uid without CAP_SYS_PTRACE must reach neither process. Two layers stop
    // it: inside the filter, the calls that name nfguard's processes are
    // forbidden; outside it (an exec session the runtime started, with the
    // same uid), the kernel's ptrace access check refuses a non-dumpable
    // process. Everything runs as nobody, as in a pod that drops every
    // capability.
    if !require_root("runs nfguard as another user") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let load = testload();
    let (pids, done) = (s.path("pids"), s.path("done"));
    // $PPID is the keeper; its parent is `nfguard run`, the supervisor. A
    // background sleep of the same uid, dumpable, shows what the steal does
    // when nothing stops it. The workload then waits while the test steals
    // from outside the filter.
    let script = format!(
        "sup=$(cut -d' ' -f4 /proc/$PPID/stat); \
         sleep 30 & echo '== sleep'; {load} steal $!; kill $!; \
         echo '== keeper'; {load} steal $PPID; echo '== supervisor'; {load} steal $sup; \
         echo $PPID $sup > {pids}.new && mv {pids}.new {pids}; \
         while [ ! -e {done} ]; do sleep 0.05; done",
        pids = pids.display(),
        done = done.display(),
    );
    let inside = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(NFGUARD)
        .args(["run", "--mode", "learn", "--model"])
        .arg(s.model())
        .args(["--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pids.exists() {
        assert!(Instant::now() < deadline, "the workload never got to wait");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ours: Vec<String> = std::fs::read_to_string(&pids)
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    let outside: Vec<String> = ours
        .iter()
        .map(|pid| {
            let o = Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(&load)
                .args(["steal", pid])
                .output()
                .unwrap();
            stdout(&o)
        })
        .collect();
    std::fs::write(&done, "").unwrap();
    let o = inside.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    let block = |name: &str| -> String {
        let start = text
            .find(&format!("== {name}\n"))
            .unwrap_or_else(|| panic!("no {name} block: {text}"));
        let rest = &text[start + name.len() + 4..];
        rest[..rest.find("== ").unwrap_or(rest.len())].to_string()
    };
    assert!(
        count(&block("sleep"), "taken") > 0 && !block("sleep").contains("taken=0"),
        "a dumpable process of the same uid gives its fds: {text}"
    );
    let events = String::from_utf8_lossy(&o.stderr).into_owned();
    for (who, pid, inner, outer) in [
        ("keeper", &ours[0], block("keeper"), &outside[0]),
        ("supervisor", &ours[1], block("supervisor"), &outside[1]),
    ] {
        // Inside the filter: forbidden, with an event naming the process.
        assert!(
            inner.contains("steal pidfd_open errno=1"),
            "the {who}'s pidfd: {inner}"
        );
        assert!(
            events.contains(&format!(
                "pidfd_open of a thread ({pid}) of nfguard's own process"
            )),
            "no forbidden event for the {who}: {events}"
        );
        // Outside it: the dumpable flag.
        assert!(
            outer.starts_with("steal getfd taken=0 eperm=64 other=0"),
            "the {who}'s fds from outside the filter: {outer}"
        );
        for b in [&inner, outer] {
            for (what, errno) in [
                ("vm_readv", libc::EPERM),
                ("open-fd", libc::EACCES),
                ("open-mem", libc::EACCES),
                ("open-environ", libc::EACCES),
                ("ptrace", libc::EPERM),
            ] {
                assert!(
                    b.contains(&format!("steal {what} errno={errno}")),
                    "{who} {what}: {b}"
                );
            }
        }
    }
    // A supervisor that cannot read the non-dumpable keeper's /proc/<pid>/exe
    // still knows the launcher's first exec for what it is.
    let model = std::fs::read_to_string(s.model()).unwrap();
    assert!(model.contains("\"parent\": \"(launcher)\""), "{model}");
}

#[test]
fn nothing_of_the_workload_outlives_its_command() {
    // An NF started by a wrapper (`sh -c 'nf & ...'`) used to outlive
    // `nfguard run`, with a filter whose listener was gone.
    let s = Scratch::new();
    let alive = |pid: &str| Path::new(&format!("/proc/{pid}")).exists();
    let o = s.run("learn", &["sh", "-c", "sleep 1000 & echo $!; exec true"]);
    let pid = stdout(&o).trim().to_string();
    assert!(o.status.success(), "{o:?}");
    assert!(
        !pid.is_empty() && !alive(&pid),
        "sleep {pid} outlived the command"
    );
    // One that ignores SIGTERM, and one that left the process group and the
    // session, get SIGKILL after the grace period; the command's own status
    // is what `nfguard run` reports, once everything is gone.
    let stubborn = "sh -c 'trap \"\" TERM; while :; do sleep 0.05; done' & echo $!; setsid sleep 1000 & echo $!; sleep 0.2; exit 3";
    let started = Instant::now();
    let o = s
        .cmd("learn", &["--grace", "1s"], &["sh", "-c", stubborn])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let pids: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(pids.len(), 2, "{o:?}");
    for pid in &pids {
        assert!(!alive(pid), "{pid} survived: {o:?}");
    }
    assert!(
        took >= Duration::from_millis(900),
        "SIGKILL came before the grace period: {took:?}"
    );
}

#[test]
fn signals_stops_and_exit_statuses_pass_through_a_traced_workload() {
    let s = Scratch::new();
    // A signal the workload handles itself (a signal-delivery stop, re-injected).
    let o = s.run(
        "learn",
        &[
            "sh",
            "-c",
            "trap 'echo got-usr1' USR1; kill -USR1 $$; exit 5",
        ],
    );
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    assert!(stdout(&o).contains("got-usr1"), "{o:?}");
    // A stop and a continue (group-stop under PTRACE_SEIZE: PTRACE_LISTEN).
    let o = s.run(
        "learn",
        &[
            "sh",
            "-c",
            "(sleep 0.3; kill -CONT $$) & kill -STOP $$; echo resumed; wait",
        ],
    );
    assert!(
        stdout(&o).contains("resumed") && o.status.success(),
        "{o:?}"
    );
    // A signal sent to `nfguard run` reaches the workload through the keeper.
    // (SIGTERM: a test run from a background job inherits SIGINT ignored,
    // and a shell cannot trap a signal ignored at its start.)
    let mut c = s
        .cmd(
            "learn",
            &[],
            &[
                "sh",
                "-c",
                "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done",
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .map(Reaped)
        .unwrap();
    let mut first = [0u8; 6];
    c.0.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(c.0.wait().unwrap().code(), Some(42));
    // kill(0, SIGKILL) from the workload kills its own process group, not
    // nfguard: the status is reported, not suffered.
    let o = s.run("learn", &["sh", "-c", "kill -KILL 0"]);
    assert_eq!(o.status.code(), Some(128 + libc::SIGKILL), "{o:?}");
}

#[test]
fn at_a_terminal_the_workload_gets_the_foreground() {
    // `nfguard run -- sh` at a terminal: the workload has its own process
    // group, so the keeper hands it the terminal as a shell hands it to a job
    // (Ctrl-C and job control then reach the workload), and takes it back.
    if !require("script", "util-linux") {
        return;
    }
    let s = Scratch::new();
    // Field 5 of /proc/<pid>/stat is the process group, 8 the terminal's
    // foreground group.
    let probe = "awk '{print ($5 == $8) ? \"fg-workload\" : \"bg-workload\"}' /proc/$$/stat";
    let inner = format!(
        "{NFGUARD} run --mode learn --model {} -- sh -c {}; awk '{{print ($5 == $8) ? \"fg-after\" : \"bg-after\"}}' /proc/$$/stat",
        s.model().display(),
        shell_quote(probe)
    );
    let o = Command::new("script")
        .args(["-q", "-e", "-c", &inner, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&o);
    assert!(text.contains("fg-workload"), "{o:?}");
    assert!(text.contains("fg-after"), "the terminal came back: {o:?}");
}

/// `s` as one single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn a_keeper_that_cannot_trace_says_so_once_and_keeps_the_old_exec_proof() {
    // Under a debugger (strace -f attaches the keeper's child first) the
    // keeper cannot trace: a task has one tracer. It goes on untraced, says
    // so in one line, and the supervisor falls back on "nobody else can
    // write this memory": a single-threaded exec runs, a threaded one is
    // refused as unverifiable.
    if !require("strace", "strace") {
        return;
    }
    let s = Scratch::new();
    let load = testload();
    let sock = s.path("sup.sock");
    let supervise = |mode: &str| {
        let _ = std::fs::remove_file(&sock);
        let sup = Reaped(
            Command::new(NFGUARD)
                .args(["supervise", "--mode", mode, "--model"])
                .arg(s.model())
                .arg("--events")
                .arg(s.events_path())
                .arg("--socket")
                .arg(&sock)
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "no socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        sup
    };
    let under_strace = |args: &[&str]| {
        Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", LAUNCH, "--socket"])
            .arg(&sock)
            .arg("--")
            .args(args)
            .output()
            .unwrap()
    };
    let single = ["/usr/bin/echo", "single-threaded"];
    let threaded = [&load[..], "thread-exec", "/usr/bin/echo", "from-a-thread"];
    let mut sup = supervise("learn");
    assert!(stdout(&under_strace(&single)).contains("single-threaded"));
    assert!(stdout(&under_strace(&threaded)).contains("from-a-thread"));
    std::thread::sleep(Duration::from_millis(1500));
    sup.0.kill().unwrap();
    let _ = sup.0.wait();
    let _sup = supervise("enforce");
    let o = under_strace(&single);
    assert!(stdout(&o).contains("single-threaded"), "{o:?}");
    assert_eq!(
        stderr(&o).matches("cannot trace the workload").count(),
        1,
        "{o:?}"
    );
    let o = under_strace(&threaded);
    assert!(!stdout(&o).contains("from-a-thread"), "{o:?}");
    let ev = s.events();
    assert!(
        ev.iter().any(|e| e["kind"] == "unverifiable"),
        "{}",
        summary(&ev)
    );
}
