//! Events: one JSON object per deviation, with everything a responder needs.
//!
//! This module is a leaf: the types of an event and their constructors. Where
//! events go (the JSON writer, the rings, metrics, the notifying sinks) is
//! `fanout`, one module above.
//!
//! Events are built by one constructor per category ([`Event::process`],
//! [`Event::network`], [`Event::filesystem`]) from the same parts: a
//! [`Stamp`] (id and time, from the sink), a [`Judgement`] (verdict, kind,
//! mode, reason), the acting process ([`Subject`]) and where it runs
//! ([`Context`]).

use nfguard_common::{Datagrams, Mode};
use serde::Serialize;

use crate::procfs::Ancestor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Process,
    Network,
    Filesystem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Allowed, but outside the model (alert mode).
    Alert,
    /// Refused (enforce mode).
    Deny,
}

/// Why an event was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The action is not in the learned model.
    OutsideModel,
    /// A program created or modified after the workload started ("binary not from the image").
    Drift,
    /// The action may be in the model but cannot be verified race-free.
    Unverifiable,
    /// The supervisor could not inspect the action.
    InternalError,
    /// Refused in every mode: what a workload has no business doing under
    /// nfguard (new namespaces, mounts, io_uring, reaching nfguard itself).
    Forbidden,
}

/// Where the workload runs (empty on a plain host).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Context {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    pub container: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The process tree the event belongs to (exec session or the NF's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The API user who opened the exec session, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: u64,
    pub time: String,
    pub category: Category,
    pub verdict: Verdict,
    pub kind: Kind,
    pub mode: Mode,
    pub syscall: &'static str,
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    /// Executable of the acting process.
    pub exe: String,
    /// For process events, the argv passed to exec; otherwise the acting process's command line.
    pub argv: Vec<String>,
    pub cwd: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<Op>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The core interface of `protocol` and `port` (`PFCP (N4)`, `GSUP`),
    /// when `nfguard_common::interfaces` names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Network events: whether this process tree's datagrams are inspected
    /// (`inspect`) or judged at connect() only (`off`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datagrams: Option<Datagrams>,
    /// Parents of the acting process, nearest first.
    pub ancestors: Vec<Ancestor>,
    #[serde(flatten)]
    pub context: Context,
}

/// What a network or filesystem call does (`op` in events; the model's file
/// and unix entries name theirs with [`Op::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Socket,
    Connect,
    Bind,
    Listen,
    Write,
    Create,
    Unlink,
    Rename,
    Chmod,
    Link,
    Symlink,
    Mkdir,
    Mknod,
    Setxattr,
    Send,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Socket => "socket",
            Op::Connect => "connect",
            Op::Bind => "bind",
            Op::Listen => "listen",
            Op::Write => "write",
            Op::Create => "create",
            Op::Unlink => "unlink",
            Op::Rename => "rename",
            Op::Chmod => "chmod",
            Op::Link => "link",
            Op::Symlink => "symlink",
            Op::Mkdir => "mkdir",
            Op::Mknod => "mknod",
            Op::Setxattr => "setxattr",
            Op::Send => "send",
        }
    }
}

/// An event's id and time, handed out by the sink (`EventSink::stamp`).
#[derive(Debug, Clone)]
pub struct Stamp {
    pub id: u64,
    pub time: String,
}

/// What nfguard concluded about the action.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub verdict: Verdict,
    pub kind: Kind,
    pub mode: Mode,
    /// One sentence (or several, joined with "; ") on why.
    pub reason: String,
}

/// The acting process, as an event names it.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    pub exe: String,
    pub argv: Vec<String>,
    pub cwd: String,
    pub ancestors: Vec<Ancestor>,
}

/// What a network event adds: the operation and the socket's peer or name.
#[derive(Debug, Clone, Default)]
pub struct NetDetails {
    pub op: Option<Op>,
    pub family: Option<String>,
    pub protocol: Option<String>,
    pub address: Option<String>,
    pub port: Option<u16>,
    /// A unix socket's path.
    pub path: Option<String>,
    /// Which program the process tree runs under.
    pub datagrams: Option<Datagrams>,
}

impl Event {
    fn with(
        stamp: Stamp,
        category: Category,
        j: Judgement,
        syscall: &'static str,
        who: Subject,
        context: Context,
    ) -> Event {
        Event {
            id: stamp.id,
            time: stamp.time,
            category,
            verdict: j.verdict,
            kind: j.kind,
            mode: j.mode,
            syscall,
            pid: who.pid,
            ppid: who.ppid,
            uid: who.uid,
            exe: who.exe,
            argv: who.argv,
            cwd: who.cwd,
            reason: j.reason,
            path: None,
            op: None,
            family: None,
            protocol: None,
            address: None,
            port: None,
            interface: None,
            datagrams: None,
            ancestors: who.ancestors,
            context,
        }
    }

    /// A process event: `program` is what was executed (its path), when known.
    pub fn process(
        stamp: Stamp,
        j: Judgement,
        syscall: &'static str,
        who: Subject,
        program: Option<String>,
        context: Context,
    ) -> Event {
        let mut e = Event::with(stamp, Category::Process, j, syscall, who, context);
        e.path = program;
        e
    }

    /// A network event.
    pub fn network(
        stamp: Stamp,
        j: Judgement,
        syscall: &'static str,
        who: Subject,
        net: NetDetails,
        context: Context,
    ) -> Event {
        let mut e = Event::with(stamp, Category::Network, j, syscall, who, context);
        e.op = net.op;
        e.family = net.family;
        e.protocol = net.protocol;
        e.address = net.address;
        e.port = net.port;
        e.path = net.path;
        e.datagrams = net.datagrams;
        if let (Some(protocol), Some(port)) = (&e.protocol, e.port) {
            e.interface = nfguard_common::interfaces::lookup(protocol, port).map(|i| i.label());
        }
        e
    }

    /// A filesystem event.
    pub fn filesystem(
        stamp: Stamp,
        j: Judgement,
        syscall: &'static str,
        who: Subject,
        op: Option<Op>,
        path: Option<String>,
        context: Context,
    ) -> Event {
        let mut e = Event::with(stamp, Category::Filesystem, j, syscall, who, context);
        e.op = op;
        e.path = path;
        e
    }
}

/// The current time as RFC 3339 (UTC, microseconds).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// Where `GET /events?since=` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    Id(u64),
    Time(time::OffsetDateTime),
}

impl std::str::FromStr for Since {
    type Err = String;
    fn from_str(s: &str) -> Result<Since, String> {
        if let Ok(id) = s.parse::<u64>() {
            return Ok(Since::Id(id));
        }
        parse_time(s)
            .map(Since::Time)
            .ok_or_else(|| format!("since={s:?} is neither an event id nor an RFC 3339 time"))
    }
}

/// Parses an RFC 3339 time.
pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}
