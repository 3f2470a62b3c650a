//! The notifying sinks against real HTTP receivers on loopback.
//!
//! The receiver is a small HTTP/1.1 server on a std TcpListener (keep-alive,
//! Content-Length bodies) that records every request. Events go in through
//! `EventSink::emit`, as the supervisor emits them.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nfguard_common::Mode;
use nfguard_sidecar::event::{Category, Context, Event, Kind, Verdict};
use nfguard_sidecar::fanout::EventSink;
use nfguard_sidecar::sinks::SinksConfig;
use serde_json::Value;

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Log = Arc<Mutex<Vec<Received>>>;

/// Serves `listener` forever, answering 200 to every request.
fn serve(listener: TcpListener, log: Log) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let _ = serve_connection(conn, &log);
            });
        }
    });
}

fn serve_connection(conn: TcpStream, log: &Log) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = Vec::new();
        let mut len = 0;
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        log.lock().unwrap().push(Received {
            path,
            headers,
            body,
        });
        out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")?;
    }
}

fn receiver() -> (u16, Log) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let log: Log = Arc::default();
    serve(l, Arc::clone(&log));
    (port, log)
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn event(id: u64, path: &str) -> Event {
    Event {
        id,
        time: nfguard_sidecar::event::now_rfc3339(),
        category: Category::Process,
        verdict: Verdict::Alert,
        kind: Kind::OutsideModel,
        mode: Mode::Alert,
        syscall: "execve",
        pid: 30755,
        ppid: 30750,
        uid: 0,
        exe: "/usr/bin/dash".into(),
        argv: vec!["ps".into(), "-ef".into()],
        cwd: "/tmp".into(),
        reason: format!("{path} is not a program this workload runs (started by /usr/bin/dash)"),
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
            namespace: Some("core".into()),
            pod: Some("smf-0".into()),
            container: "smf".into(),
            image: Some("oai-smf:v2".into()),
            node: Some("node-1".into()),
            session: Some("exec-7f3a".into()),
            user: Some("alice".into()),
        },
    }
}

fn sink_with(doc: &str) -> EventSink {
    let events = EventSink::new(Box::new(std::io::sink()));
    let cfg = SinksConfig::parse(doc).unwrap();
    events.attach_sinks(cfg, &Context::default()).unwrap();
    events
}

#[test]
fn each_sink_receives_the_event_in_its_documented_format() {
    let (port, log) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let doc = serde_json::json!({
        "sinks": [
            {"type": "webhook", "url": format!("http://127.0.0.1:{port}/hook"), "headers": {"x-soc-key": "k1"}},
            {"type": "falco", "url": format!("http://127.0.0.1:{port}/"), "tags": ["5g-core"]},
            {"type": "slack", "url": format!("http://127.0.0.1:{port}/services/T0/B0/x")},
            {"type": "kubernetes", "api_server": format!("http://127.0.0.1:{port}"), "token_file": token,
             "namespace": "core", "pod": "smf-0", "pod_uid": "0b9c-uid"}
        ]
    });
    let events = sink_with(&doc.to_string());
    events.emit(event(events.next_id(), "/usr/bin/ps"));
    wait_for("one request per sink", Duration::from_secs(10), || {
        log.lock().unwrap().len() >= 4
    });
    std::thread::sleep(Duration::from_millis(100));
    let got = log.lock().unwrap().clone();
    assert_eq!(got.len(), 4, "{got:#?}");
    let by_path = |p: &str| {
        got.iter()
            .find(|r| r.path == p)
            .unwrap_or_else(|| panic!("nothing posted to {p}: {got:#?}"))
    };

    // Generic webhook: the event's own fields plus the aggregation fields.
    let w = by_path("/hook");
    assert_eq!(w.header("x-soc-key"), Some("k1"));
    assert_eq!(w.header("content-type"), Some("application/json"));
    for f in [
        "id",
        "time",
        "verdict",
        "kind",
        "syscall",
        "pid",
        "exe",
        "argv",
        "reason",
        "path",
        "session",
        "pod",
        "first_seen",
        "last_seen",
    ] {
        assert!(!w.body[f].is_null(), "webhook body lacks {f}: {}", w.body);
    }
    assert_eq!(w.body["count"], 1);
    assert_eq!(w.body["session"], "exec-7f3a");

    // Falco's JSON output, as falcosidekick's types.FalcoPayload reads it:
    // uuid?, output, priority, rule, time, output_fields, source, tags, hostname;
    // its Check() refuses an empty priority, rule, time or output_fields.
    let f = by_path("/");
    let keys: HashSet<&str> = f
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let allowed: HashSet<&str> = [
        "uuid",
        "output",
        "priority",
        "rule",
        "time",
        "output_fields",
        "source",
        "tags",
        "hostname",
    ]
    .into();
    assert!(
        keys.is_subset(&allowed),
        "fields falcosidekick does not read: {:?}",
        keys.difference(&allowed)
    );
    for k in [
        "output",
        "priority",
        "rule",
        "time",
        "output_fields",
        "source",
        "tags",
        "hostname",
    ] {
        assert!(keys.contains(k), "falco payload lacks {k}");
    }
    let priorities = [
        "Emergency",
        "Alert",
        "Critical",
        "Error",
        "Warning",
        "Notice",
        "Informational",
        "Debug",
    ];
    assert!(
        priorities.contains(&f.body["priority"].as_str().unwrap()),
        "{}",
        f.body["priority"]
    );
    assert!(!f.body["rule"].as_str().unwrap().is_empty());
    let t = f.body["time"].as_str().unwrap();
    assert!(
        nfguard_sidecar::event::parse_time(t).is_some(),
        "time {t} is not RFC 3339"
    );
    let of = f.body["output_fields"].as_object().unwrap();
    assert_eq!(of["k8s.ns.name"], "core");
    assert_eq!(of["k8s.pod.name"], "smf-0");
    assert_eq!(of["proc.pid"], 30755);
    assert_eq!(of["proc.cmdline"], "ps -ef");
    assert_eq!(of["nfguard.session"], "exec-7f3a");
    assert_eq!(of["nfguard.count"], 1);
    assert_eq!(f.body["source"], "nfguard");
    assert!(f.body["tags"]
        .as_array()
        .unwrap()
        .contains(&"5g-core".into()));
    assert!(f.body["output"]
        .as_str()
        .unwrap()
        .contains("/usr/bin/ps is not a program"));

    // Slack incoming webhook: text (the notification's fallback) and blocks.
    let s = by_path("/services/T0/B0/x");
    assert!(
        s.body["text"]
            .as_str()
            .unwrap()
            .contains("session exec-7f3a"),
        "{}",
        s.body
    );
    let blocks = s.body["blocks"].as_array().unwrap();
    assert!(blocks.iter().all(|b| b["type"].is_string()));
    assert_eq!(blocks[0]["type"], "header");
    assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);

    // Kubernetes: a core/v1 Event about the pod, with the service account's token.
    let k = by_path("/api/v1/namespaces/core/events");
    assert_eq!(k.header("authorization"), Some("Bearer s3cret-token"));
    let b = &k.body;
    assert_eq!(
        (b["apiVersion"].as_str(), b["kind"].as_str()),
        (Some("v1"), Some("Event"))
    );
    assert_eq!(b["metadata"]["namespace"], "core");
    assert!(b["metadata"]["generateName"]
        .as_str()
        .unwrap()
        .starts_with("smf-0."));
    let io = &b["involvedObject"];
    assert_eq!(
        (
            io["kind"].as_str(),
            io["name"].as_str(),
            io["namespace"].as_str()
        ),
        (Some("Pod"), Some("smf-0"), Some("core"))
    );
    assert_eq!(io["uid"], "0b9c-uid");
    assert_eq!(io["fieldPath"], "spec.containers{smf}");
    assert_eq!(b["type"], "Warning");
    assert_eq!(b["reason"], "NfguardOutsideModel");
    assert_eq!(b["count"], 1);
    assert!(b["message"].as_str().unwrap().contains("session exec-7f3a"));
    let first = b["firstTimestamp"].as_str().unwrap();
    assert!(
        first.ends_with('Z') && !first.contains('.'),
        "metav1.Time is to the second: {first}"
    );
}

fn spooled_items(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
                .map(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .lines()
                        .count()
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_receiver_down_for_a_while_gets_everything_that_happened_meanwhile_in_order() {
    // A port nobody listens on yet: connections are refused.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let spool = tempfile::tempdir().unwrap();
    let doc = serde_json::json!({
        "window": "0s",
        "spool": spool.path(),
        "memory_queue": 4,
        "backoff": {"initial": "50ms", "max": "400ms"},
        "timeout": "2s",
        "sinks": [{"type": "webhook", "name": "soc", "url": format!("http://127.0.0.1:{port}/in")}]
    });
    let events = sink_with(&doc.to_string());
    let d = events.dispatcher().unwrap();
    for i in 0..300 {
        events.emit(event(events.next_id(), &format!("/tmp/tool-{i}")));
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    // While the receiver is down, what happened is on disk, not only in memory.
    let dir = spool.path().join("soc");
    wait_for(
        "the alerts to reach the spool",
        Duration::from_secs(10),
        || spooled_items(&dir) >= 300,
    );
    assert!(
        d.sinks[0]
            .stats
            .retries
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    assert_eq!(d.sinks[0].stats.delivered().0, 0);
    std::thread::sleep(Duration::from_millis(500));

    // The receiver comes back on the same port.
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let log: Log = Arc::default();
    serve(l, Arc::clone(&log));
    // More events while it drains: they must come after.
    for i in 300..310 {
        events.emit(event(events.next_id(), &format!("/tmp/tool-{i}")));
    }
    wait_for("everything to arrive", Duration::from_secs(20), || {
        log.lock().unwrap().len() >= 310
    });
    std::thread::sleep(Duration::from_millis(300));
    let got = log.lock().unwrap().clone();
    let ids: Vec<u64> = got.iter().map(|r| r.body["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=310).collect::<Vec<u64>>(), "in order, once each");
    wait_for("the spool to drain", Duration::from_secs(5), || {
        spooled_items(&dir) == 0
    });
    assert_eq!(d.sinks[0].queue.depth(), (0, 0, 0));
    assert_eq!(
        d.sinks[0]
            .stats
            .dropped_alerts
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn ten_thousand_events_in_a_burst_become_a_handful_of_alerts_whose_counts_add_up() {
    let (port, log) = receiver();
    let doc = serde_json::json!({
        "window": "1s",
        "sinks": [{"type": "webhook", "url": format!("http://127.0.0.1:{port}/in")}]
    });
    let events = sink_with(&doc.to_string());
    let targets = [
        "/usr/bin/ps",
        "/usr/bin/which",
        "/usr/bin/clear",
        "/usr/bin/id",
        "/usr/bin/curl",
    ];
    let start = Instant::now();
    for i in 0..10_000 {
        events.emit(event(events.next_id(), targets[i % targets.len()]));
    }
    let burst = start.elapsed();
    let total = || {
        log.lock()
            .unwrap()
            .iter()
            .map(|r| r.body["count"].as_u64().unwrap())
            .sum::<u64>()
    };
    wait_for("the counts to reach 10000", Duration::from_secs(20), || {
        total() >= 10_000
    });
    std::thread::sleep(Duration::from_millis(1500));
    let got = log.lock().unwrap().clone();
    assert_eq!(total(), 10_000, "nothing lost, nothing counted twice");
    // Per deviation: one alert at once, then one summary per window the burst spans.
    let windows = burst.as_secs() as usize + 2;
    assert!(
        got.len() <= targets.len() * (1 + windows),
        "{} alerts for a {burst:?} burst",
        got.len()
    );
    let d = events.dispatcher().unwrap();
    assert_eq!(
        d.stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    for t in targets {
        let mine: Vec<&Received> = got.iter().filter(|r| r.body["path"] == t).collect();
        assert_eq!(
            mine.iter()
                .map(|r| r.body["count"].as_u64().unwrap())
                .sum::<u64>(),
            2000,
            "{t}"
        );
        assert_eq!(mine[0].body["count"], 1, "the first one is alerted at once");
        for r in &mine[1..] {
            assert!(r.body["repeats_of"].is_u64(), "{}", r.body);
            assert!(r.body["first_seen"].as_str() <= r.body["last_seen"].as_str());
        }
        assert!(mine.iter().all(|r| r.body["session"] == "exec-7f3a"));
    }
    let ids: HashSet<u64> = got.iter().map(|r| r.body["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), got.len(), "no alert delivered twice");
}
