//! Forensics: a bounded ring of recent activity, allowed and flagged, that the
//! API serves as a timeline (`GET /timeline`).
//!
//! Why a second ring beside the events: an event says what was outside the
//! model, but a responder also needs what the same session did around it (the
//! shell that was started, the files it wrote, the peers it reached, all
//! allowed). Allowed calls are far more frequent than events, so a record is
//! cheap: it is built from what the supervisor already decoded (no /proc read,
//! except one small /proc/<pid>/stat read for an exec, to learn who started
//! whom), pushed under a short mutex, and the ring is bounded (`CAPACITY`
//! records, the oldest dropped first). Times are kept as `SystemTime` and only
//! formatted when served.
//!
//! The text view groups records by session (every event carries its session)
//! and indents each process under the process that started it.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use crate::event::Event;
use crate::model::Observation;

/// How many activity records the ring keeps.
pub const CAPACITY: usize = 20_000;
/// How many pid -> parent links are remembered for calls that do not say.
const PARENTS: usize = 8192;

/// One allowed call, as the supervisor decoded it (see `EventSink::note_call`).
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub pid: i32,
    pub session: &'a str,
    pub syscall: &'static str,
    /// The first observation of the call (it names the acting executable).
    pub observation: Option<&'a Observation>,
    pub path: Option<&'a str>,
    pub address: Option<&'a str>,
    pub port: Option<u16>,
    /// For exec: the new program's argv, when it was read.
    pub argv: Option<&'a [String]>,
}

/// One record of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    pub seq: u64,
    #[serde(serialize_with = "serialize_time")]
    pub time: SystemTime,
    pub session: String,
    pub pid: i32,
    /// The parent pid, 0 when unknown.
    pub ppid: i32,
    /// The acting executable (for an exec: the image that called exec).
    pub exe: String,
    pub syscall: &'static str,
    /// For an exec: the program started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// The file, socket path or address:port the call acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `allow`, `alert` or `deny`.
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The event that flagged the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<u64>,
}

fn serialize_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

/// RFC 3339 in UTC with microseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let micro = dt.microsecond();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{micro:06}Z",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

fn is_exec(syscall: &str) -> bool {
    syscall == "execve" || syscall == "execveat"
}

struct Ring {
    records: VecDeque<Activity>,
    next_seq: u64,
    /// pid -> ppid, learned from execs and events.
    parents: HashMap<i32, i32>,
}

/// The activity ring.
pub struct Timeline {
    ring: Mutex<Ring>,
    capacity: usize,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::with_capacity(CAPACITY)
    }
}

impl Timeline {
    pub fn with_capacity(capacity: usize) -> Timeline {
        Timeline {
            ring: Mutex::new(Ring {
                records: VecDeque::with_capacity(capacity.min(1024)),
                next_seq: 1,
                parents: HashMap::new(),
            }),
            capacity: capacity.max(1),
        }
    }

    fn push(&self, mut a: Activity) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if a.ppid != 0 {
            if ring.parents.len() >= PARENTS {
                ring.parents.clear();
            }
            ring.parents.insert(a.pid, a.ppid);
        } else if let Some(pp) = ring.parents.get(&a.pid) {
            a.ppid = *pp;
        }
        a.seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.records.len() >= self.capacity {
            ring.records.pop_front();
        }
        ring.records.push_back(a);
    }

    /// Records an allowed call.
    pub fn note_call(&self, call: Call<'_>) {
        let exec = is_exec(call.syscall);
        let (exe, program) = match call.observation {
            Some(Observation::Exec { parent, exe }) => (parent.clone(), Some(exe.clone())),
            Some(Observation::Socket(s)) => (s.exe.clone(), None),
            Some(Observation::Listen(l)) => (l.exe.clone(), None),
            Some(Observation::Connect(c)) => (c.exe.clone(), None),
            Some(Observation::Unix(u)) => (u.exe.clone(), None),
            Some(Observation::File(f)) => (f.exe.clone(), None),
            None => ("?".to_string(), None),
        };
        // Who started whom: an exec is rare next to the other calls, and its
        // parent is what makes the tree; one read of /proc/<pid>/stat.
        let ppid = if exec {
            crate::procfs::read_stat(call.pid)
                .map(|(pp, _)| pp)
                .unwrap_or(0)
        } else {
            0
        };
        self.push(Activity {
            seq: 0,
            time: SystemTime::now(),
            session: call.session.to_string(),
            pid: call.pid,
            ppid,
            exe,
            syscall: call.syscall,
            program: if exec {
                program.or_else(|| call.path.map(str::to_string))
            } else {
                None
            },
            argv: call.argv.map(<[String]>::to_vec),
            target: if exec {
                None
            } else {
                target(call.path, call.address, call.port)
            },
            verdict: "allow",
            reason: None,
            event: None,
        });
    }

    /// Records a flagged call from its event.
    pub fn note_event(&self, e: &Event) {
        let exec = is_exec(e.syscall);
        self.push(Activity {
            seq: 0,
            time: SystemTime::now(),
            session: e.context.session.clone().unwrap_or_default(),
            pid: e.pid,
            ppid: e.ppid,
            exe: e.exe.clone(),
            syscall: e.syscall,
            program: if exec { e.path.clone() } else { None },
            argv: exec.then(|| e.argv.clone()),
            target: if exec {
                None
            } else {
                target(e.path.as_deref(), e.address.as_deref(), e.port)
            },
            verdict: match e.verdict {
                crate::event::Verdict::Alert => "alert",
                crate::event::Verdict::Deny => "deny",
            },
            reason: Some(e.reason.clone()),
            event: Some(e.id),
        });
    }

    /// The records, oldest first, of one session or of all.
    pub fn records(&self, session: Option<&str>) -> Vec<Activity> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.records
            .iter()
            .filter(|a| session.is_none_or(|s| a.session == s))
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.ring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .records
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn target(path: Option<&str>, address: Option<&str>, port: Option<u16>) -> Option<String> {
    match (path, address, port) {
        (Some(p), _, _) => Some(p.to_string()),
        (None, Some(a), Some(port)) => Some(crate::model::join_host_port(a, port)),
        (None, Some(a), None) => Some(a.to_string()),
        (None, None, Some(port)) => Some(format!("port {port}")),
        (None, None, None) => None,
    }
}

/// Quotes an argv for a person: words as they are, others in double quotes.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a.clone()
            } else {
                format!("{a:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The plain-text timeline: per session, in order, each process indented under
/// the one that started it.
pub fn render_text(records: &[Activity]) -> String {
    let mut sessions: Vec<&str> = Vec::new();
    for a in records {
        if !sessions.contains(&a.session.as_str()) {
            sessions.push(&a.session);
        }
    }
    let mut out = String::new();
    if records.is_empty() {
        out.push_str("no activity recorded\n");
        return out;
    }
    for session in sessions {
        let mine: Vec<&Activity> = records.iter().filter(|a| a.session == session).collect();
        let first = mine.first().map(|a| rfc3339(a.time)).unwrap_or_default();
        let _ = writeln!(out, "session {session} (from {first})");
        let _ = writeln!(
            out,
            "  {:<15}  {:<7}  PROCESS TREE",
            "TIME (UTC)", "VERDICT"
        );
        let mut depth: HashMap<i32, usize> = HashMap::new();
        for a in mine {
            let d = match depth.get(&a.pid) {
                Some(d) => *d,
                None => {
                    let d = depth.get(&a.ppid).map(|d| d + 1).unwrap_or(0);
                    depth.insert(a.pid, d);
                    d
                }
            };
            let clock = rfc3339(a.time);
            let clock = clock.get(11..26).unwrap_or(&clock);
            let indent = "  ".repeat(d);
            let parent = if a.ppid != 0 {
                format!(" (parent {})", a.ppid)
            } else {
                String::new()
            };
            let what = match (&a.program, &a.argv) {
                (Some(prog), Some(argv)) if !argv.is_empty() => {
                    format!(
                        "{} {prog}: {}  [by {}]",
                        a.syscall,
                        shell_words(argv),
                        a.exe
                    )
                }
                (Some(prog), _) => format!("{} {prog}  [by {}]", a.syscall, a.exe),
                (None, _) => format!(
                    "{} {}{}",
                    a.exe,
                    a.syscall,
                    a.target
                        .as_deref()
                        .map(|t| format!(" {t}"))
                        .unwrap_or_default()
                ),
            };
            let _ = writeln!(
                out,
                "  {clock:<15}  {:<7}  {indent}{}{parent} {what}",
                a.verdict, a.pid
            );
            if let Some(reason) = &a.reason {
                let event = a
                    .event
                    .map(|id| format!(" (event {id})"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {:<15}  {:<7}  {indent}  why: {reason}{event}",
                    "", ""
                );
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FileEntry;

    fn exec(t: &Timeline, pid: i32, session: &str, parent: &str, exe: &str, argv: &[&str]) {
        let o = Observation::Exec {
            parent: parent.into(),
            exe: exe.into(),
        };
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        t.note_call(Call {
            pid,
            session,
            syscall: "execve",
            observation: Some(&o),
            path: Some(exe),
            address: None,
            port: None,
            argv: Some(&argv),
        });
    }

    #[test]
    fn the_ring_keeps_the_newest_records_in_order() {
        let t = Timeline::with_capacity(3);
        for i in 0..5 {
            exec(&t, 100 + i, "s", "/bin/sh", "/bin/true", &["true"]);
        }
        let r = t.records(None);
        assert_eq!(r.iter().map(|a| a.pid).collect::<Vec<_>>(), [102, 103, 104]);
        assert!(r.windows(2).all(|w| w[0].seq < w[1].seq));
    }

    #[test]
    fn calls_without_a_parent_take_it_from_an_earlier_record_and_sessions_filter() {
        let t = Timeline::default();
        t.push(Activity {
            seq: 0,
            time: SystemTime::now(),
            session: "a".into(),
            pid: 7,
            ppid: 3,
            exe: "/bin/sh".into(),
            syscall: "execve",
            program: Some("/bin/sh".into()),
            argv: None,
            target: None,
            verdict: "allow",
            reason: None,
            event: None,
        });
        let f = Observation::File(FileEntry {
            exe: "/bin/sh".into(),
            op: "write".into(),
            path: "/tmp/x".into(),
        });
        for session in ["a", "b"] {
            t.note_call(Call {
                pid: 7,
                session,
                syscall: "openat",
                observation: Some(&f),
                path: Some("/tmp/x"),
                address: None,
                port: None,
                argv: None,
            });
        }
        let a = t.records(Some("a"));
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].ppid, 3);
        assert_eq!(a[1].target.as_deref(), Some("/tmp/x"));
        assert_eq!(t.records(Some("b")).len(), 1);
        let text = render_text(&t.records(None));
        assert!(
            text.contains("session a") && text.contains("session b"),
            "{text}"
        );
        assert!(text.contains("/bin/sh openat /tmp/x"), "{text}");
    }

    #[test]
    fn the_text_view_indents_children_under_their_parent() {
        let mk = |pid, ppid, prog: &str, verdict| Activity {
            seq: 0,
            time: SystemTime::UNIX_EPOCH,
            session: "main-1".into(),
            pid,
            ppid,
            exe: "/usr/bin/dash".into(),
            syscall: "execve",
            program: Some(prog.into()),
            argv: Some(vec![
                prog.rsplit('/').next().unwrap_or("").into(),
                "-ef".into(),
            ]),
            target: None,
            verdict,
            reason: (verdict != "allow").then(|| "not learned".into()),
            event: None,
        };
        let text = render_text(&[
            mk(10, 1, "/usr/bin/dash", "allow"),
            mk(11, 10, "/usr/bin/ps", "alert"),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[2].contains("allow    10 (parent 1) execve /usr/bin/dash: dash -ef"),
            "{text}"
        );
        assert!(
            lines[3].contains("alert      11 (parent 10) execve /usr/bin/ps: ps -ef"),
            "{text}"
        );
        assert!(lines[4].contains("why: not learned"), "{text}");
    }
}
