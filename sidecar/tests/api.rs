//! The HTTP API over real HTTP: in process on a `Shared`, and from a real
//! `nfguard run --api` supervising the reference scenario (an attacker's
//! `which ps`, `ps -ef`, `clear`), whose timeline must read in order with the
//! process tree.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nfguard_common::Mode;
use nfguard_sidecar::event::{Category, Context, Event, Kind, Verdict};
use nfguard_sidecar::fanout::EventSink;
use nfguard_sidecar::model::{FileEntry, Model, Observation};
use nfguard_sidecar::supervisor::Shared;
use nfguard_sidecar::timeline::Call;
use serde_json::Value;

const NFGUARD: &str = env!("CARGO_BIN_EXE_nfguard");

/// GET (or another method) over a fresh connection: (status, body).
fn request(port: u16, method: &str, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get(port: u16, target: &str) -> (u16, String) {
    request(port, "GET", target)
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn event(sink: &EventSink, pid: i32, path: &str, time: &str) -> Event {
    Event {
        id: sink.next_id(),
        time: time.into(),
        category: Category::Process,
        verdict: Verdict::Alert,
        kind: Kind::OutsideModel,
        mode: Mode::Alert,
        syscall: "execve",
        pid,
        ppid: 100,
        uid: 0,
        exe: "/usr/bin/dash".into(),
        argv: vec![path.rsplit('/').next().unwrap_or("").into()],
        cwd: "/".into(),
        reason: format!("{path} is not a program this workload runs"),
        path: Some(path.into()),
        op: None,
        family: None,
        protocol: None,
        address: None,
        port: None,
        interface: None,
        datagrams: None,
        ancestors: vec![],
        context: Context {
            container: "main".into(),
            session: Some(if pid == 900 {
                "other-1".into()
            } else {
                "main-100".into()
            }),
            ..Context::default()
        },
    }
}

#[test]
fn every_endpoint_answers_over_http_and_bad_requests_say_why() {
    let shared = Arc::new(Shared::new(
        Mode::Alert,
        Model::default(),
        EventSink::new(Box::new(std::io::sink())),
        Context {
            container: "main".into(),
            ..Context::default()
        },
    ));
    let ev = &shared.events;
    let f = Observation::File(FileEntry {
        exe: "/usr/bin/dash".into(),
        op: "write".into(),
        path: "/tmp/out".into(),
    });
    ev.note_call(Call {
        pid: 101,
        session: "main-100",
        syscall: "openat",
        observation: Some(&f),
        path: Some("/tmp/out"),
        address: None,
        port: None,
        argv: None,
    });
    ev.emit(event(ev, 102, "/usr/bin/which", "2026-01-01T10:00:00Z"));
    ev.emit(event(ev, 103, "/usr/bin/ps", "2026-01-01T10:00:05Z"));
    ev.emit(event(ev, 900, "/usr/bin/id", "2026-01-01T10:00:09Z"));
    shared
        .events
        .metrics
        .observe_latency(Duration::from_micros(30));

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = nfguard_sidecar::api::serve_on(Arc::clone(&shared), listener)
        .unwrap()
        .port();

    assert_eq!(get(port, "/healthz"), (200, "ok\n".into()));
    let (code, body) = get(port, "/model");
    assert_eq!(code, 200);
    assert_eq!(json(&body)["version"], 1);

    let (code, body) = get(port, "/events");
    assert_eq!(code, 200);
    let all = json(&body);
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(all[0]["session"], "main-100");
    let (_, body) = get(port, "/events?since=1");
    assert_eq!(
        json(&body)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 3]
    );
    let (_, body) = get(port, "/events?since=2026-01-01T10:00:04Z");
    assert_eq!(json(&body).as_array().unwrap().len(), 2);
    let (_, body) = get(port, "/events?since=2026-01-01T11:00:04%2B01:00");
    assert_eq!(
        json(&body).as_array().unwrap().len(),
        2,
        "a %2B offset is a plus"
    );
    let (code, body) = get(port, "/events?since=yesterday");
    assert_eq!(code, 400);
    assert!(
        body.contains("neither an event id nor an RFC 3339 time"),
        "{body}"
    );
    let (code, body) = get(port, "/events?limit=3");
    assert_eq!(code, 400);
    assert!(body.contains("\"limit\""), "{body}");

    let (code, body) = get(port, "/timeline");
    assert_eq!(code, 200);
    let t = json(&body);
    assert_eq!(t.as_array().unwrap().len(), 4);
    assert_eq!(t[0]["verdict"], "allow");
    assert_eq!(t[0]["target"], "/tmp/out");
    assert_eq!(t[1]["event"], 1);
    let (_, body) = get(port, "/timeline?session=main-100");
    assert_eq!(json(&body).as_array().unwrap().len(), 3);
    let (code, text) = get(port, "/timeline?session=other-1&format=text");
    assert_eq!(code, 200);
    assert!(
        text.starts_with("session other-1")
            && text.contains("/usr/bin/id")
            && !text.contains("main-100"),
        "{text}"
    );
    let (code, body) = get(port, "/timeline?format=xml");
    assert_eq!(code, 400);
    assert!(body.contains("json or text"), "{body}");

    let (code, m) = get(port, "/metrics");
    assert_eq!(code, 200);
    for line in [
        "nfguard_up 1",
        "nfguard_mode{mode=\"alert\"} 1",
        "nfguard_events_total{category=\"process\",verdict=\"alert\",kind=\"outside-model\",syscall=\"execve\"} 3",
        "nfguard_decision_latency_seconds_count 1",
        "nfguard_decision_latency_seconds_bucket{le=\"0.00005\"} 1",
        "nfguard_model_entries{section=\"processes\"} 0",
        "nfguard_activity_records 4",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} missing from:\n{m}");
    }

    let (code, body) = get(port, "/secrets");
    assert_eq!(code, 404);
    assert!(body.contains("/timeline"));
    assert_eq!(request(port, "POST", "/model").0, 405);
    assert_eq!(request(port, "DELETE", "/events").0, 405);
    // Garbage on the wire does not take the server down.
    {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = s.write_all(b"\x00\x01 not http\r\n\r\n");
    }
    assert_eq!(get(port, "/healthz").0, 200);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_reference_scenario_timeline_reads_in_order_with_the_process_tree() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.json");
    let events = dir.path().join("events.jsonl");
    // The workload normally runs a shell that sleeps.
    let learn = Command::new(NFGUARD)
        .args(["run", "--mode", "learn", "--model"])
        .arg(&model)
        .args(["--", "sh", "-c", "sleep 0"])
        .output()
        .unwrap();
    assert!(learn.status.success(), "{learn:?}");

    let port = free_port();
    let script = "which ps; ps -ef > /dev/null; clear; sleep 3";
    let mut child = Command::new(NFGUARD)
        .args([
            "run",
            "--mode",
            "alert",
            "--api",
            &format!("127.0.0.1:{port}"),
            "--model",
        ])
        .arg(&model)
        .arg("--events")
        .arg(&events)
        .args(["--", "sh", "-c", script])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            drop(s.write_all(b""));
            let (code, text) = get(port, "/timeline?format=text");
            if code == 200 && text.contains("/usr/bin/sleep") {
                break text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the timeline never showed the whole scenario"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (_, tl) = get(port, "/timeline");
    let (_, metrics) = get(port, "/metrics");
    let status = child.wait().unwrap();
    assert!(status.success());
    println!("{text}");

    // Order: the shell, then which, ps, clear (flagged), then sleep (learned).
    let lines: Vec<&str> = text.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} missing:\n{text}"))
    };
    let (sh, which, ps, clear, sleep) = (
        at("execve /usr/bin/dash"),
        at("execve /usr/bin/which"),
        at("execve /usr/bin/ps"),
        at("execve /usr/bin/clear"),
        at("execve /usr/bin/sleep"),
    );
    assert!(
        sh < which && which < ps && ps < clear && clear < sleep,
        "{text}"
    );
    for l in [which, ps, clear] {
        assert!(lines[l].contains(" alert "), "{}", lines[l]);
        assert!(lines[l + 1].contains("why: /usr/bin/"), "{}", lines[l + 1]);
    }
    assert!(
        lines[sh].contains(" allow ") && lines[sleep].contains(" allow "),
        "{text}"
    );
    // The tree: the shell's children are indented under it.
    let indent = |l: &str| {
        let tree = l.get(28..).unwrap_or("");
        tree.len() - tree.trim_start().len()
    };
    for child in [which, ps, clear, sleep] {
        assert_eq!(indent(lines[child]), indent(lines[sh]) + 2, "{text}");
    }
    let sh_pid: String = lines[sh][28..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(lines[ps].contains(&format!("(parent {sh_pid})")), "{text}");

    // JSON: one session, every record carries it, in sequence.
    let tl = json(&tl);
    let records = tl.as_array().unwrap();
    let session = records[0]["session"].as_str().unwrap().to_string();
    assert!(records.iter().all(|r| r["session"] == session.as_str()));
    assert!(records
        .windows(2)
        .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()));
    assert!(text.starts_with(&format!("session {session}")));
    // The events file is untouched: one raw event per flagged call, the same
    // calls the timeline flags.
    let raw = std::fs::read_to_string(&events).unwrap();
    let flagged = records.iter().filter(|r| r["verdict"] != "allow").count();
    assert_eq!(raw.lines().count(), flagged, "{raw}");
    assert_eq!(
        raw.lines()
            .filter(|l| l.contains("\"syscall\":\"execve\""))
            .count(),
        3,
        "{raw}"
    );
    assert!(
        metrics.contains("nfguard_decisions_total{syscall=\"execve\",decision=\"allow\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nfguard_decision_latency_seconds_count"),
        "{metrics}"
    );
}
