//! What inspection makes of a call: a [`Request`] (observations for the
//! model, fields for the event, a [`Plan`] for enforce mode), and the
//! [`Scope`] it is made in. Shared by the inspectors of each kind of call
//! (`files`, `sockets`, `signals`, `exec`).

use std::time::SystemTime;

use nfguard_common::Mode;

use super::emulate::{Emulation, Emulator};
use super::failure::Failure;
use super::own::OwnFiles;
use super::target::Target;
use crate::event::{Category, Kind, Op};
use crate::model::{FileEntry, Observation};
use crate::resolve::{self, ResolveError, Resolved};

/// How an allowed call proceeds in enforce mode.
pub enum Plan {
    /// The kernel runs the call as asked: its arguments cannot change (they
    /// are registers), or no other task can change them (exec's proof).
    Continue,
    /// The supervisor runs the call on the arguments it checked.
    Emulate(Emulation),
}

/// What a call is, for the model, for the event, and for enforce mode.
pub struct Request {
    pub category: Category,
    pub op: Option<Op>,
    /// What the model must allow for the call to be inside it.
    pub observations: Vec<Observation>,
    pub path: Option<String>,
    pub family: Option<String>,
    pub protocol: Option<String>,
    pub address: Option<String>,
    pub port: Option<u16>,
    /// For exec: the new program's argv (read outside learn mode).
    pub argv: Option<Vec<String>>,
    /// A reason to flag the call even if the model allows it (drift,
    /// unverifiable), or to refuse it in every mode (forbidden).
    pub special: Option<(Kind, String)>,
    pub plan: Plan,
    /// The errno of a refusal.
    pub deny_errno: i32,
    /// For an exec let through: the program, for the exec-session watcher.
    pub exec_program: Option<String>,
    /// For an exec under a tracing keeper: what its exec stop is held to.
    pub ticket: Option<super::exec_verify::Ticket>,
}

impl Request {
    pub fn new(category: Category, op: Option<Op>, deny_errno: i32) -> Request {
        Request {
            category,
            op,
            observations: Vec::new(),
            path: None,
            family: None,
            protocol: None,
            address: None,
            port: None,
            argv: None,
            special: None,
            plan: Plan::Continue,
            deny_errno,
            exec_program: None,
            ticket: None,
        }
    }

    /// Records a file the call changes, as the model names it.
    pub fn touches(&mut self, exe: &str, op: Op, path: String) {
        self.observations.push(Observation::File(FileEntry {
            exe: exe.to_string(),
            op: op.as_str().into(),
            path,
        }));
    }

    /// Refuses the call in every mode, whatever the model says.
    pub fn forbid(&mut self, why: String) {
        self.special = Some((Kind::Forbidden, why));
    }
}

/// What inspection needs beside the task.
pub struct Scope<'a> {
    pub mode: Mode,
    /// The keeper's executable: its children are named as started by the launcher.
    pub keeper_exe: &'a str,
    /// When supervision started: files changed since are drift.
    pub started: SystemTime,
    /// Whose rights paths are resolved with.
    pub emulator: &'a Emulator,
    /// nfguard's own files.
    pub own_files: &'a OwnFiles,
    /// Is this pid one of nfguard's processes (the supervisor, a keeper)?
    pub is_nfguard: &'a dyn Fn(i32) -> bool,
    /// Is one of nfguard's processes in this process group?
    pub nfguard_group: &'a dyn Fn(i32) -> bool,
    /// The keeper traces the workload: each exec is checked again at its
    /// exec stop on what the kernel loaded (`exec_verify`).
    pub traced: bool,
    /// Where nfguard's own reads of a program (a `#!` line) are noted, so the
    /// exec-session watcher does not take them for execs from outside.
    pub inside_execs: &'a super::ledger::InsideExecs,
}

/// The step every path failure names.
pub const RESOLVE: &str = "resolve the path in the task's root";

fn resolution(e: ResolveError) -> Failure {
    match e {
        ResolveError::Io(e) => Failure::theirs(RESOLVE, e),
        ResolveError::Refused(errno, why) => Failure::Refused { errno, why },
        ResolveError::Own(why) => Failure::Forbidden(why),
    }
}

/// Runs a resolution for the task: with its rights in enforce mode, where
/// the supervisor then makes the call on what it resolved (reopening an fd
/// does not check the directories again); with ours otherwise, where the
/// kernel makes the call itself, with the task's rights, and the
/// resolution only names it (which saves reading the task's ids).
fn for_task<T>(t: &Target<'_>, scope: &Scope<'_>, f: impl FnOnce() -> T) -> T {
    if scope.mode == Mode::Enforce {
        scope.emulator.as_caller(t, f)
    } else {
        f()
    }
}

/// Resolves `abs` for the task as the kernel would for it (its `/proc/self`,
/// its magic links), with its rights (in enforce mode, see [`for_task`]).
pub fn resolve_path(
    t: &Target<'_>,
    scope: &Scope<'_>,
    abs: &str,
    follow: bool,
) -> Result<Resolved, Failure> {
    let root = t.root()?;
    let tgid = || t.tgid();
    let task = resolve::Task {
        tgid: &tgid,
        tid: t.tid(),
        is_nfguard: scope.is_nfguard,
    };
    for_task(t, scope, || resolve::resolve_for(&root, abs, follow, &task)).map_err(resolution)
}

/// Resolves the parent of `abs` for the task (see [`resolve_path`]); the
/// final name is kept as it is.
pub fn resolve_parent(
    t: &Target<'_>,
    scope: &Scope<'_>,
    abs: &str,
) -> Result<(std::os::fd::OwnedFd, String, String), Failure> {
    let root = t.root()?;
    let tgid = || t.tgid();
    let task = resolve::Task {
        tgid: &tgid,
        tid: t.tid(),
        is_nfguard: scope.is_nfguard,
    };
    for_task(t, scope, || resolve::resolve_parent_for(&root, abs, &task)).map_err(resolution)
}

/// Forbids the call when `real` is nfguard's own file (or `st` its identity).
pub fn guard_own(req: &mut Request, scope: &Scope<'_>, real: &str, st: Option<&libc::stat>) {
    if scope.own_files.is_empty() {
        return;
    }
    let by_id = st.is_some_and(|st| scope.own_files.covers_id(st.st_dev, st.st_ino));
    if by_id || scope.own_files.covers(real) {
        req.forbid(format!("{real} is nfguard's own file"));
    }
}

/// For a call that removes or moves the name `real`: forbidden as well when
/// it is a directory above nfguard's own files (they would go with it).
pub fn guard_own_name(req: &mut Request, scope: &Scope<'_>, real: &str) {
    guard_own(req, scope, real, None);
    if req.special.is_none() && scope.own_files.beneath(real) {
        req.forbid(format!("{real} holds nfguard's own files"));
    }
}
